//! Shared test support (each test binary uses a subset).
#![allow(dead_code)]

pub mod api;
pub mod local;
pub mod loopback_servers;
pub mod schema;
