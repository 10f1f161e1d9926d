//! Shared test support.
pub mod fake_api;
pub mod schema;
