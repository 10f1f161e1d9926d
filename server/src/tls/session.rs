//! The server's TLS session cache (`tls-session-caching`, `tls-session-cache-size`,
//! `tls-session-cache-timeout`): resumable sessions by id, at most `size` of them,
//! each for `timeout`. The oldest entry goes first when full.

use indexmap::IndexMap;
use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// A session's encoding and when it was stored, by session id.
type Entries = IndexMap<Vec<u8>, (Vec<u8>, Instant)>;

#[derive(Debug)]
pub struct SessionCache {
    /// Shared by every handshake on the TLS listener (rustls calls in from the
    /// connection tasks); held only for a map operation.
    map: Mutex<Entries>,
    size: usize,
    timeout: Duration,
}

impl SessionCache {
    pub fn new(size: usize, timeout: Duration) -> Self {
        SessionCache {
            map: Mutex::new(IndexMap::new()),
            size: size.max(1),
            timeout,
        }
    }

    fn live(&self, at: Instant) -> bool {
        at.elapsed() < self.timeout
    }
}

impl rustls::server::StoresServerSessions for SessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut map = self.map.lock();
        map.shift_remove(&key);
        while map.len() >= self.size {
            map.shift_remove_index(0);
        }
        map.insert(key, (value, Instant::now()));
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let map = self.map.lock();
        let (v, at) = map.get(key)?;
        self.live(*at).then(|| v.clone())
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let (v, at) = self.map.lock().shift_remove(key)?;
        self.live(at).then_some(v)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::StoresServerSessions;

    #[test]
    fn cache_is_bounded_and_entries_expire() {
        let c = SessionCache::new(2, Duration::from_secs(60));
        for k in [b"a", b"b", b"c"] {
            assert!(c.put(k.to_vec(), k.to_vec()));
        }
        assert_eq!(c.get(b"a"), None);
        assert_eq!(c.get(b"c"), Some(b"c".to_vec()));
        assert_eq!(c.take(b"b"), Some(b"b".to_vec()));
        assert_eq!(c.take(b"b"), None);
        let expired = SessionCache::new(4, Duration::ZERO);
        expired.put(b"k".to_vec(), b"v".to_vec());
        assert_eq!(expired.get(b"k"), None);
    }
}
