//! Tandem operator: reconciles `RedisReplication` resources into StatefulSets of tandem-server.
//!
//! Layout: `crd` (the API types), `names` (names/labels/ordinals), `model` (the spec
//! normalised once), `build` (pure desired objects), `controller` (the reconcile driver and
//! its steps), `failover` (the one subsystem deciding and moving roles), `settings`,
//! `metrics`, `leader`, `http`, `local` (local cluster mode), `tls` (a set's TLS Secret and
//! the operator's TLS client).

pub mod build;
pub mod controller;
pub mod crd;
pub mod failover;
pub mod http;
pub mod leader;
pub mod local;
pub mod metrics;
pub mod model;
pub mod names;
pub mod settings;
pub mod tls;
