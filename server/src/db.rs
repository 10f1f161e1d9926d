//! Keyspace layer: one logical database (`SELECT n`) with its expiry index.
//!
//! Keys live in an insertion-indexed hash map so a uniformly random key can be picked
//! in O(1) (RANDOMKEY, eviction sampling) and SCAN can walk positions. Keys with a TTL
//! are also kept in `volatile`, which active expiry samples, like Redis's `expires` dict.
//!
//! SCAN cursor: a position counted from the top. `swap_remove` moves the *last* entry
//! into the hole, and insertions append at the end, so walking downwards from the end
//! never misses a key that exists for the whole scan (a moved key can only be reported
//! twice). Cursor 0 starts and ends an iteration.

use crate::types::{Hasher, Value};
use bytes::Bytes;
use indexmap::{IndexMap, IndexSet};

/// A stored value and its absolute expiry time (ms since the epoch), if any.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    expire: Option<i64>,
    /// Last access, in seconds of the server clock (for OBJECT IDLETIME and LRU eviction).
    pub lru: u32,
}

impl Entry {
    pub fn expire(&self) -> Option<i64> {
        self.expire
    }
}

#[derive(Debug, Default, Clone)]
pub struct Db {
    map: IndexMap<Bytes, Entry, Hasher>,
    volatile: IndexSet<Bytes, Hasher>,
}

impl Db {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of keys with a TTL (INFO keyspace `expires=`).
    pub fn expires_count(&self) -> usize {
        self.volatile.len()
    }

    /// The raw entry, with no expiry check (callers decide what "expired" means).
    pub fn entry(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    pub fn entry_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.map.get_mut(key)
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }

    /// Sets `key` to `value`, dropping any TTL (like Redis `setKey` without KEEPTTL).
    pub fn set(&mut self, key: Bytes, value: Value, lru: u32) {
        self.volatile.swap_remove(&key[..]);
        self.map.insert(
            key,
            Entry {
                value,
                expire: None,
                lru,
            },
        );
    }

    /// Replaces the value of `key` keeping its TTL (KEEPTTL, in-place updates).
    pub fn set_keep_ttl(&mut self, key: Bytes, value: Value, lru: u32) {
        match self.map.get_mut(&key[..]) {
            Some(e) => {
                e.value = value;
                e.lru = lru;
            }
            None => self.set(key, value, lru),
        }
    }

    /// Inserts with an expiry (RDB/AOF loading, RESTORE, COPY).
    pub fn set_with_expire(&mut self, key: Bytes, value: Value, expire: Option<i64>, lru: u32) {
        self.set(key.clone(), value, lru);
        if let Some(at) = expire {
            self.set_expire(&key, at);
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let e = self.map.swap_remove(key)?;
        if e.expire.is_some() {
            self.volatile.swap_remove(key);
        }
        Some(e)
    }

    /// Sets an absolute expiry on an existing key; false if the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], at_ms: i64) -> bool {
        match self.map.get_full_mut(key) {
            Some((_, k, e)) => {
                if e.expire.is_none() {
                    self.volatile.insert(k.clone());
                }
                e.expire = Some(at_ms);
                true
            }
            None => false,
        }
    }

    /// Removes the TTL; true if there was one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        match self.map.get_mut(key) {
            Some(e) if e.expire.is_some() => {
                e.expire = None;
                self.volatile.swap_remove(key);
                true
            }
            _ => false,
        }
    }

    pub fn expire_of(&self, key: &[u8]) -> Option<i64> {
        self.map.get(key).and_then(|e| e.expire)
    }

    pub fn clear(&mut self) {
        self.map = IndexMap::default();
        self.volatile = IndexSet::default();
    }

    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.map.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Entry)> {
        self.map.iter()
    }

    /// The key at a position (0..len), for random sampling.
    pub fn key_at(&self, i: usize) -> Option<&Bytes> {
        self.map.get_index(i).map(|(k, _)| k)
    }

    pub fn random_key(&self) -> Option<&Bytes> {
        if self.map.is_empty() {
            return None;
        }
        self.key_at(rand::random::<usize>() % self.map.len())
    }

    /// A random key that has a TTL, with its expiry (active expiry, volatile-* eviction).
    pub fn random_volatile(&self) -> Option<(&Bytes, i64)> {
        if self.volatile.is_empty() {
            return None;
        }
        let k = self
            .volatile
            .get_index(rand::random::<usize>() % self.volatile.len())?;
        let at = self.map.get(&k[..]).and_then(|e| e.expire)?;
        Some((k, at))
    }

    /// One SCAN step: returns the next cursor (0 = done) and up to about `count` keys.
    pub fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<Bytes>) {
        let len = self.map.len() as u64;
        let top = if cursor == 0 || cursor > len {
            len
        } else {
            cursor
        };
        let bottom = top.saturating_sub(count.max(1) as u64);
        let keys = (bottom..top)
            .rev()
            .filter_map(|i| self.key_at(i as usize).cloned())
            .collect();
        (bottom, keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn expiry_index_follows_set_persist_and_remove() {
        let mut db = Db::new();
        db.set(b("a"), Value::Str(b("1")), 0);
        db.set(b("b"), Value::Str(b("2")), 0);
        assert!(db.set_expire(b"a", 1000));
        assert!(!db.set_expire(b"zz", 1000));
        assert_eq!(db.expires_count(), 1);
        assert_eq!(
            db.random_volatile().map(|(k, at)| (k.clone(), at)),
            Some((b("a"), 1000))
        );
        // Overwriting drops the TTL, like SET without KEEPTTL.
        db.set(b("a"), Value::Str(b("3")), 0);
        assert_eq!(db.expires_count(), 0);
        db.set_expire(b"b", 5);
        db.set_keep_ttl(b("b"), Value::Str(b("4")), 0);
        assert_eq!(db.expire_of(b"b"), Some(5));
        assert!(db.persist(b"b"));
        assert!(!db.persist(b"b"));
        db.set_expire(b"b", 5);
        db.remove(b"b");
        assert_eq!(db.expires_count(), 0);
    }

    #[test]
    fn scan_returns_every_key_present_throughout_despite_deletes() {
        let mut db = Db::new();
        for i in 0..100 {
            db.set(b(&format!("k{i}")), Value::Str(b("v")), 0);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step = 0;
        loop {
            let (next, keys) = db.scan(cursor, 7);
            seen.extend(keys);
            // Delete keys with even numbers while scanning; odd ones stay throughout.
            for i in (step * 10..step * 10 + 10).step_by(2) {
                db.remove(format!("k{i}").as_bytes());
            }
            step += 1;
            db.set(b(&format!("new{step}")), Value::Str(b("v")), 0);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for i in (1..100).step_by(2) {
            assert!(seen.contains(&b(&format!("k{i}"))), "missed k{i}");
        }
    }
}
