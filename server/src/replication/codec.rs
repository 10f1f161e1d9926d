//! The RDB codec used for full syncs: the shared persistence codec (`crate::rdb`),
//! re-exported so replication names one place.

pub use crate::rdb::{load, load_delayed, save, LoadOptions, ReplInfo, SaveOptions};
