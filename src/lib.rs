//! Tandem operator: reconciles `RedisReplication` resources into StatefulSets of tandem-server.
//!
//! Layout: `crd` (the API types), `names` (names/labels), `build` (pure desired objects),
//! `controller` (the reconcile driver and its steps), `roles` (pure failover and
//! topology planners), `metrics`, `leader`, `http`.

pub mod build;
pub mod controller;
pub mod crd;
pub mod http;
pub mod leader;
pub mod local;
pub mod metrics;
pub mod names;
pub mod failover;
