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

use crate::types::key::Key;
use crate::types::{Hasher, Value};
use bytes::Bytes;
use hashbrown::HashTable;
use indexmap::IndexMap;
use std::hash::BuildHasher;

/// A stored value. Its absolute expiry time (ms since the epoch), if any, lives in
/// the database's `volatile` map (like Redis's `expires` dict), so keys without a
/// TTL do not pay 8 bytes for it; `has_expire` says whether to look there
/// (`Db::expire_of`).
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// Last access, in seconds of the server clock (for OBJECT IDLETIME and LRU eviction).
    pub lru: u32,
    has_expire: bool,
    /// A hash, set or sorted set that outgrew its compact encoding: like Redis, it
    /// keeps the big one (hashtable/skiplist) even after shrinking; a string edited
    /// in place (APPEND, SETRANGE, SETBIT...) that Redis keeps `raw`. Reset when the
    /// value is replaced.
    promoted: bool,
}

impl Entry {
    /// Whether the value has taken its big encoding for good (OBJECT ENCODING).
    pub fn promoted(&self) -> bool {
        self.promoted
    }

    pub fn set_promoted(&mut self, on: bool) {
        self.promoted = on;
    }

    /// True if the key has a TTL (its time: `Db::expire_of`).
    pub fn has_expire(&self) -> bool {
        self.has_expire
    }
}

/// One key and its entry, in insertion-indexed order.
#[derive(Debug, Clone)]
struct Slot {
    key: Key,
    entry: Entry,
}

/// The keyspace of one database.
///
/// Layout (chosen for memory per key, see docs/benchmarks.md): `slots` holds the
/// keys and entries densely, in positions 0..len (random pick and SCAN by position);
/// `index` is a hash table of `u32` positions into `slots`, with no stored hash (it
/// is recomputed from the key when the table grows). That is 16 + 24 bytes per slot
/// (`Key` + `Entry`, whose `Value` is 16) plus about 5-10 bytes of index, against
/// 152 + 16 with an `IndexMap<Bytes, _>`.
/// Expiry times are in `volatile` (key -> ms), only for keys that have one.
/// Positions are `u32`: 4 billion keys would need hundreds of GB before reaching that.
#[derive(Debug, Default, Clone)]
pub struct Db {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    volatile: IndexMap<Key, i64, Hasher>,
    /// Keys created since the last `take_new_keys`, recorded only while keyspace
    /// notifications of class `n` are on (`crate::notify`); `None` = not recording.
    new_keys: Option<Vec<Bytes>>,
    /// Under an LFU policy a replaced value keeps its key's access counter (Redis
    /// `dbOverwrite`): a hot key written often stays hot.
    keep_lfu: bool,
}

/// Most keys `Db::try_reserve` makes room for at once (16M keys, about 1 GB).
pub const RESERVE_MAX: usize = 1 << 24;

#[inline]
fn hash_of(key: &[u8]) -> u64 {
    Hasher.hash_one(key)
}

impl Db {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Number of keys with a TTL (INFO keyspace `expires=`).
    pub fn expires_count(&self) -> usize {
        self.volatile.len()
    }

    #[inline]
    fn position(&self, key: &[u8]) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash_of(key), |&i| slots[i as usize].key.as_bytes() == key)
            .map(|&i| i as usize)
    }

    /// The raw entry, with no expiry check (callers decide what "expired" means).
    pub fn entry(&self, key: &[u8]) -> Option<&Entry> {
        self.position(key).map(|i| &self.slots[i].entry)
    }

    pub fn entry_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        self.position(key).map(|i| &mut self.slots[i].entry)
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.position(key).is_some()
    }

    /// Inserts or replaces the entry of `key` (the stored key is kept on replace).
    fn put(&mut self, key: &[u8], entry: Entry) {
        let h = hash_of(key);
        let slots = &mut self.slots;
        if let Some(&i) = self
            .index
            .find(h, |&i| slots[i as usize].key.as_bytes() == key)
        {
            let slot = &mut slots[i as usize];
            let lru = slot.entry.lru;
            slot.entry = entry;
            if self.keep_lfu {
                slot.entry.lru = lru;
            }
            return;
        }
        let pos = slots.len() as u32;
        slots.push(Slot {
            key: Key::new(key),
            entry,
        });
        if let Some(new) = &mut self.new_keys {
            new.push(Bytes::copy_from_slice(key));
        }
        let slots = &self.slots;
        self.index
            .insert_unique(h, pos, |&i| hash_of(slots[i as usize].key.as_bytes()));
    }

    /// Makes room for `additional` more keys (RDB `RESIZEDB`, DEBUG POPULATE), so
    /// loading does not grow and rehash the table step by step, and the slots take
    /// no doubling slack. Best effort and bounded by [`RESERVE_MAX`] (the count is a
    /// hint from a file or a request): past that the table grows as keys arrive.
    pub fn try_reserve(&mut self, additional: usize) {
        let additional = additional.min(RESERVE_MAX);
        if self.slots.try_reserve(additional).is_err() {
            return;
        }
        let slots = &self.slots;
        let _ = self
            .index
            .try_reserve(additional, |&i| hash_of(slots[i as usize].key.as_bytes()));
    }

    /// Inserts a key that must not exist yet (RDB loading), with one hash lookup.
    /// Gives the value back if the key exists.
    pub fn insert_new(
        &mut self,
        key: &[u8],
        value: Value,
        expire: Option<i64>,
        lru: u32,
    ) -> Result<(), Value> {
        let h = hash_of(key);
        let slots = &self.slots;
        if self
            .index
            .find(h, |&i| slots[i as usize].key.as_bytes() == key)
            .is_some()
        {
            return Err(value);
        }
        let pos = self.slots.len() as u32;
        let k = Key::new(key);
        if let Some(at) = expire {
            self.volatile.insert(k.clone(), at);
        }
        self.slots.push(Slot {
            key: k,
            entry: Entry {
                value,
                lru,
                has_expire: expire.is_some(),
                promoted: false,
            },
        });
        let slots = &self.slots;
        self.index
            .insert_unique(h, pos, |&i| hash_of(slots[i as usize].key.as_bytes()));
        Ok(())
    }

    /// Sets `key` to `value`, dropping any TTL (like Redis `setKey` without KEEPTTL).
    pub fn set(&mut self, key: impl AsRef<[u8]>, value: Value, lru: u32) {
        self.set_slice(key.as_ref(), value, lru);
    }

    /// `set` taking the key as a slice (no `Bytes` needed: the key is copied anyway).
    pub fn set_slice(&mut self, key: &[u8], value: Value, lru: u32) {
        if !self.volatile.is_empty() {
            self.volatile.swap_remove(key);
        }
        self.put(
            key,
            Entry {
                value,
                lru,
                has_expire: false,
                promoted: false,
            },
        );
    }

    /// Replaces the value of `key` keeping its TTL (KEEPTTL, in-place updates).
    pub fn set_keep_ttl(&mut self, key: impl AsRef<[u8]>, value: Value, lru: u32) {
        let keep_lfu = self.keep_lfu;
        match self.entry_mut(key.as_ref()) {
            Some(e) => {
                e.value = value;
                if !keep_lfu {
                    e.lru = lru;
                }
                e.promoted = false;
            }
            None => self.set(key, value, lru),
        }
    }

    /// Inserts with an expiry (RDB/AOF loading, RESTORE, COPY).
    pub fn set_with_expire(
        &mut self,
        key: impl AsRef<[u8]>,
        value: Value,
        expire: Option<i64>,
        lru: u32,
    ) {
        let key = key.as_ref();
        self.set_slice(key, value, lru);
        if let Some(at) = expire {
            self.set_expire(key, at);
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let slots = &self.slots;
        let found = self
            .index
            .find_entry(hash_of(key), |&i| slots[i as usize].key.as_bytes() == key)
            .ok()?;
        let (i, _) = found.remove();
        let i = i as usize;
        let last = self.slots.len() - 1;
        if i != last {
            // The last slot moves into the hole: repoint its index entry.
            let slots = &self.slots;
            let h = hash_of(slots[last].key.as_bytes());
            if let Some(p) = self.index.find_mut(h, |&j| j as usize == last) {
                *p = i as u32;
            }
        }
        let slot = self.slots.swap_remove(i);
        if slot.entry.has_expire {
            self.volatile.swap_remove(key);
        }
        Some(slot.entry)
    }

    /// Sets an absolute expiry on an existing key; false if the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], at_ms: i64) -> bool {
        match self.position(key) {
            Some(i) => {
                let slot = &mut self.slots[i];
                if slot.entry.has_expire {
                    if let Some(at) = self.volatile.get_mut(key) {
                        *at = at_ms;
                    }
                } else {
                    slot.entry.has_expire = true;
                    self.volatile.insert(slot.key.clone(), at_ms);
                }
                true
            }
            None => false,
        }
    }

    /// Removes the TTL; true if there was one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        match self.entry_mut(key) {
            Some(e) if e.has_expire => {
                e.has_expire = false;
                self.volatile.swap_remove(key);
                true
            }
            _ => false,
        }
    }

    pub fn expire_of(&self, key: &[u8]) -> Option<i64> {
        if self.volatile.is_empty() {
            return None;
        }
        self.volatile.get(key).copied()
    }

    pub fn clear(&mut self) {
        let (recording, keep_lfu) = (self.new_keys.is_some(), self.keep_lfu);
        *self = Db::default();
        self.record_new_keys(recording);
        self.keep_lfu = keep_lfu;
    }

    /// Whether replacing a value keeps the key's LFU counter (LFU policies).
    pub fn keep_lfu_on_replace(&mut self, on: bool) {
        self.keep_lfu = on;
    }

    /// Starts or stops recording created keys (keyspace event `new`).
    pub fn record_new_keys(&mut self, on: bool) {
        if on != self.new_keys.is_some() {
            self.new_keys = on.then(Vec::new);
        }
    }

    /// The keys created since the last call, if any.
    pub fn take_new_keys(&mut self) -> Option<Vec<Bytes>> {
        match &mut self.new_keys {
            Some(v) if !v.is_empty() => Some(std::mem::take(v)),
            _ => None,
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.slots.iter().map(|s| &s.key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.slots.iter().map(|s| (&s.key, &s.entry))
    }

    /// The key at a position (0..len), for random sampling.
    pub fn key_at(&self, i: usize) -> Option<&Key> {
        self.slots.get(i).map(|s| &s.key)
    }

    pub fn random_key(&self) -> Option<&Key> {
        if self.slots.is_empty() {
            return None;
        }
        self.key_at(rand::random::<usize>() % self.slots.len())
    }

    /// A random key that has a TTL, with its expiry (active expiry, volatile-* eviction).
    pub fn random_volatile(&self) -> Option<(&Key, i64)> {
        if self.volatile.is_empty() {
            return None;
        }
        let (k, at) = self
            .volatile
            .get_index(rand::random::<usize>() % self.volatile.len())?;
        Some((k, *at))
    }

    /// One SCAN step: returns the next cursor (0 = done) and up to about `count` keys.
    pub fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<Bytes>) {
        let len = self.slots.len() as u64;
        let top = if cursor == 0 || cursor > len {
            len
        } else {
            cursor
        };
        let bottom = top.saturating_sub(count.max(1) as u64);
        let keys = (bottom..top)
            .rev()
            .filter_map(|i| self.key_at(i as usize).map(Key::to_bytes))
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
    fn a_slot_is_forty_bytes() {
        // The per-key layout of docs/benchmarks.md's optimisation log: 16-byte key,
        // 16-byte value, 4-byte LRU clock and two flags, padded to 8.
        assert_eq!(std::mem::size_of::<Value>(), 16);
        assert_eq!(std::mem::size_of::<Entry>(), 24);
        assert_eq!(std::mem::size_of::<Slot>(), 40);
    }

    #[test]
    fn expiry_index_follows_set_persist_and_remove() {
        let mut db = Db::new();
        db.set(b("a"), Value::Str(b("1").into()), 0);
        db.set(b("b"), Value::Str(b("2").into()), 0);
        assert!(db.set_expire(b"a", 1000));
        assert!(!db.set_expire(b"zz", 1000));
        assert_eq!(db.expires_count(), 1);
        assert_eq!(
            db.random_volatile().map(|(k, at)| (k.clone(), at)),
            Some((Key::new(b"a"), 1000))
        );
        // Overwriting drops the TTL, like SET without KEEPTTL.
        db.set(b("a"), Value::Str(b("3").into()), 0);
        assert_eq!(db.expires_count(), 0);
        db.set_expire(b"b", 5);
        db.set_keep_ttl(b("b"), Value::Str(b("4").into()), 0);
        assert_eq!(db.expire_of(b"b"), Some(5));
        assert!(db.persist(b"b"));
        assert!(!db.persist(b"b"));
        db.set_expire(b"b", 5);
        db.remove(b"b");
        assert_eq!(db.expires_count(), 0);
    }

    #[test]
    fn index_stays_consistent_through_inserts_removes_and_growth() {
        // Keys of both kinds (inline and heap), removals from the middle and the end
        // (the last slot moves into the hole), and a model to compare with.
        let mut db = Db::new();
        db.try_reserve(10);
        let mut model = std::collections::HashMap::new();
        let key = |i: u32| {
            if i.is_multiple_of(3) {
                format!("a-rather-long-key-{i}")
            } else {
                format!("k{i}")
            }
        };
        for i in 0..3000u32 {
            db.set(key(i).as_bytes(), Value::Str(b(&i.to_string()).into()), i);
            model.insert(key(i), i);
            if i % 4 == 1 {
                let victim = key(i / 2);
                assert_eq!(
                    db.remove(victim.as_bytes()).is_some(),
                    model.remove(&victim).is_some()
                );
            }
            if i.is_multiple_of(7) {
                db.set_expire(key(i).as_bytes(), i as i64);
            }
        }
        assert_eq!(db.len(), model.len());
        for (k, i) in &model {
            let e = db.entry(k.as_bytes()).expect("present");
            assert!(matches!(&e.value, Value::Str(v) if v == &b(&i.to_string())));
            assert_eq!(e.lru, *i);
            assert_eq!(
                db.expire_of(k.as_bytes()),
                (i.is_multiple_of(7)).then_some(*i as i64)
            );
            assert_eq!(e.has_expire(), i.is_multiple_of(7));
        }
        assert_eq!(db.keys().count(), model.len());
        assert_eq!(
            db.expires_count(),
            model.values().filter(|i| i.is_multiple_of(7)).count()
        );
        // insert_new refuses an existing key and hands the value back.
        let existing = model.keys().next().cloned().expect("non-empty");
        assert!(db
            .insert_new(existing.as_bytes(), Value::Str(b("x").into()), None, 0)
            .is_err());
        assert!(db
            .insert_new(b"fresh", Value::Str(b("x").into()), Some(5), 0)
            .is_ok());
        assert_eq!(db.expire_of(b"fresh"), Some(5));
        assert_eq!(db.len(), model.len() + 1);
        // Removing everything leaves an empty, usable table.
        for k in model.keys() {
            assert!(db.remove(k.as_bytes()).is_some());
        }
        assert!(db.remove(b"fresh").is_some());
        assert!(db.is_empty());
        assert_eq!(db.expires_count(), 0);
        db.set(b"again", Value::Str(b("1").into()), 0);
        assert!(db.contains(b"again"));
    }

    #[test]
    fn scan_returns_every_key_present_throughout_despite_deletes() {
        let mut db = Db::new();
        for i in 0..100 {
            db.set(b(&format!("k{i}")), Value::Str(b("v").into()), 0);
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
            db.set(b(&format!("new{step}")), Value::Str(b("v").into()), 0);
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
