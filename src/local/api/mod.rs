//! Embedded Kubernetes API (placeholder doc, replaced below).
pub mod apply;
pub mod error;
pub mod selectors;
pub mod store;
pub mod types;
