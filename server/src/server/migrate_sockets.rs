//! MIGRATE's cached connections to target servers (state only; the protocol is in
//! `commands::migrate`). As in Redis, one connection per `host:port` is kept while it
//! is used at least every [`IDLE_TTL`], at most [`MAX_CACHED`] of them, remembering
//! the database last selected on it so the next MIGRATE can skip its SELECT.
//!
//! The map has its own lock (the cron closes idle connections without taking the
//! store lock). A MIGRATE takes its connection out of the map for the duration of the
//! transfer and puts it back afterwards, so no lock is held across the network I/O.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A cached connection is closed after this long unused.
pub const IDLE_TTL: Duration = Duration::from_secs(10);
/// At most this many cached connections; a new one replaces an arbitrary old one.
pub const MAX_CACHED: usize = 64;

#[derive(Debug)]
pub struct Cached {
    pub stream: TcpStream,
    /// The database selected on the target, -1 when unknown (forces a SELECT).
    pub last_dbid: i64,
    pub last_use: Instant,
}

#[derive(Debug, Default)]
pub struct MigrateSockets(Mutex<HashMap<String, Cached>>);

impl MigrateSockets {
    /// Takes the cached connection to `name` (`host:port`) out of the cache.
    pub fn take(&self, name: &str) -> Option<Cached> {
        self.0.lock().remove(name)
    }

    /// Caches `conn` for `name`, making room when the cache is full.
    pub fn put(&self, name: String, conn: Cached) {
        let mut map = self.0.lock();
        if map.len() >= MAX_CACHED && !map.contains_key(&name) {
            if let Some(victim) = map.keys().next().cloned() {
                map.remove(&victim);
            }
        }
        map.insert(name, conn);
    }

    /// Closes the connections unused for [`IDLE_TTL`]; returns how many.
    pub fn close_idle(&self, now: Instant) -> usize {
        let mut map = self.0.lock();
        let before = map.len();
        map.retain(|_, c| now.saturating_duration_since(c.last_use) < IDLE_TTL);
        before - map.len()
    }

    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
