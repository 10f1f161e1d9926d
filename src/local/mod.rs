//! Local cluster mode (issue 6): the embedded Kubernetes API ([`api`]), the pod sandbox
//! ([`sandbox`]), the process runtime ([`runtime`]) and `tandem-operator local` ([`cli`]).

pub mod api;
pub mod cli;
pub mod runtime;
pub mod sandbox;
