//! Shared test support (each test binary uses a subset).
#![allow(dead_code)]

pub mod api;
pub mod certs;
pub mod local;
pub mod loopback_servers;
pub mod nemesis;
pub mod nemesis_check;
pub mod nemesis_round;
pub mod nemesis_workload;
pub mod schema;
