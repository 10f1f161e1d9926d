//! Local cluster mode (issue 6): the embedded Kubernetes API; the process runtime and
//! `tandem-operator local` come later.

pub mod api;
pub mod sandbox;
pub mod runtime;
