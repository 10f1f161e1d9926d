//! Keyspace layer: one logical database (`SELECT n`) with its expiry index.
//!
//! Keys live in an insertion-indexed hash map so a uniformly random key can be picked
//! in O(1) (RANDOMKEY, eviction sampling) and SCAN can walk positions. Keys with a TTL
//! are also kept in `volatile` (`db/volatile.rs`), which active expiry samples, like
//! Redis's `expires` dict.
//!
//! SCAN cursor: a position counted from the top. `swap_remove` moves the *last* entry
//! into the hole, and insertions append at the end, so walking downwards from the end
//! never misses a key that exists for the whole scan (a moved key can only be reported
//! twice). Cursor 0 starts and ends an iteration.

mod volatile;

use crate::types::key::Key;
use crate::types::{Hasher, Value};
use bytes::Bytes;
use hashbrown::HashTable;
use std::hash::BuildHasher;
use volatile::Volatile;

/// A key's metadata, packed in 4 bytes kept beside its slot (`Db::meta`): the
/// LRU/LFU field in the low [`Meta::LRU_BITS`] bits, then three flags.
///
/// The field holds, under an LRU policy, the last access in seconds of the server
/// clock (`Server::lru_clock`, seconds since start from `LRU_EPOCH`, 2^28: 29 bits
/// leave 8.5 years of uptime and of idle time before it), and under
/// an LFU policy 16 bits of minutes and an 8-bit counter (`crate::evict::Lfu`, 24
/// bits). Values are masked to the field's width.
///
/// Flags: `has_expire` says whether the key's expiry time is in the database's
/// `volatile` map (`Db::expire_of`), so keys without a TTL pay nothing for it; it is
/// kept by `Db` alone. `promoted`: a hash, set or sorted set that outgrew its compact
/// encoding and, like Redis, keeps the big one (hashtable/skiplist) even after
/// shrinking, or a string edited in place (APPEND, SETRANGE, SETBIT...) that Redis
/// keeps `raw`. `verbatim`: a string Redis stores as its command built it, without
/// re-encoding it as an integer (INCRBYFLOAT's result is `embstr` even when it reads
/// `5000`). Both on: a string COPY duplicated, whose encoding is derived as usual but
/// which is never one of Redis's shared integers (OBJECT REFCOUNT 1). Both string marks
/// are reset when the value is replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta(u32);

impl Meta {
    /// Width of the LRU/LFU field.
    pub const LRU_BITS: u32 = 29;
    /// Largest LRU/LFU field.
    pub const LRU_MAX: u32 = (1 << Self::LRU_BITS) - 1;
    const VERBATIM: u32 = 1 << 29;
    const HAS_EXPIRE: u32 = 1 << 30;
    const PROMOTED: u32 = 1 << 31;

    fn new(lru: u32) -> Self {
        Meta(lru & Self::LRU_MAX)
    }

    /// The LRU clock of the last access, or the LFU field (OBJECT IDLETIME/FREQ).
    pub fn lru(self) -> u32 {
        self.0 & Self::LRU_MAX
    }

    pub fn set_lru(&mut self, lru: u32) {
        self.0 = (self.0 & !Self::LRU_MAX) | (lru & Self::LRU_MAX);
    }

    /// True if the key has a TTL (its time: `Db::expire_of`).
    pub fn has_expire(self) -> bool {
        self.0 & Self::HAS_EXPIRE != 0
    }

    /// Only `Db` sets this flag: it must follow the `volatile` map.
    fn set_has_expire(&mut self, on: bool) {
        self.set_flag(Self::HAS_EXPIRE, on);
    }

    /// Whether the value has taken its big encoding for good (OBJECT ENCODING).
    pub fn promoted(self) -> bool {
        self.0 & Self::PROMOTED != 0
    }

    pub fn set_promoted(&mut self, on: bool) {
        self.set_flag(Self::PROMOTED, on);
    }

    /// Whether a string keeps the encoding its command gave it (never `int`).
    pub fn verbatim(self) -> bool {
        self.0 & Self::VERBATIM != 0
    }

    pub fn set_verbatim(&mut self, on: bool) {
        self.set_flag(Self::VERBATIM, on);
    }

    /// A string edited in place: `raw` from now on.
    pub fn mark_raw(&mut self) {
        self.set_flag(Self::PROMOTED, true);
        self.set_flag(Self::VERBATIM, false);
    }

    /// A new value replaced the old one in place: its encoding is derived again.
    pub fn reset_encoding(&mut self) {
        self.set_flag(Self::PROMOTED | Self::VERBATIM, false);
    }

    fn set_flag(&mut self, flag: u32, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
    }
}

/// A stored key's value and metadata, taken out of the database (`Db::remove`) or
/// copied (`EntryRef::to_entry`).
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    pub meta: Meta,
}

/// A stored key's value and metadata, read in place (`Db::entry`, `Db::iter`).
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    pub value: &'a Value,
    pub meta: Meta,
}

impl EntryRef<'_> {
    /// A copy of the value and metadata (COPY).
    pub fn to_entry(self) -> Entry {
        Entry {
            value: self.value.clone(),
            meta: self.meta,
        }
    }
}

/// A stored key's value and metadata, for changing in place (`Db::entry_mut`).
#[derive(Debug)]
pub struct EntryMut<'a> {
    pub value: &'a mut Value,
    pub meta: &'a mut Meta,
}

impl EntryMut<'_> {
    /// A read view of the same entry.
    pub fn read(&self) -> EntryRef<'_> {
        EntryRef {
            value: self.value,
            meta: *self.meta,
        }
    }
}

/// One key and its value, in insertion-indexed order (its `Meta` sits at the same
/// position of `Db::meta`).
#[derive(Debug, Clone)]
struct Slot {
    key: Key,
    value: Value,
}

/// The keyspace of one database.
///
/// Layout (chosen for memory per key, see docs/benchmarks.md): `slots` holds the
/// keys and values densely, in positions 0..len (random pick and SCAN by position),
/// and `meta` each key's 4-byte `Meta` at the same position (apart, so a slot is 32
/// bytes rather than 36 padded to 40); the two vectors always have the same length
/// and change together (push, swap_remove, reserve). `index` is a hash table of
/// `u32` positions, with no stored hash (it is recomputed from the key when the
/// table grows). That is 16 + 16 + 4 bytes per key (`Key`, `Value`, `Meta`) plus
/// about 5-10 bytes of index, against 152 + 16 with an `IndexMap<Bytes, _>`.
/// Expiry times are in `volatile` (slot position and ms, 12 bytes plus 5-10 of its
/// own index), only for keys that have one.
/// Positions are `u32`: 4 billion keys would need hundreds of GB before reaching that.
#[derive(Debug, Default, Clone)]
pub struct Db {
    index: HashTable<u32>,
    slots: Vec<Slot>,
    meta: Vec<Meta>,
    volatile: Volatile,
    /// Keys created since the last `take_new_keys`, recorded only while keyspace
    /// notifications of class `n` are on (`crate::notify`); `None` = not recording.
    new_keys: Option<Vec<Bytes>>,
    /// Under an LFU policy a replaced value keeps its key's access counter (Redis
    /// `dbOverwrite`): a hot key written often stays hot.
    keep_lfu: bool,
}

/// Most requests one `Db::prefetch` call looks ahead at (a `-P 16` batch; what it
/// found is kept on the stack between its passes).
pub const PREFETCH_MAX: usize = 16;

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
        self.position_hashed(hash_of(key), key)
    }

    /// `position` of a key whose hash is known.
    #[inline]
    fn position_hashed(&self, h: u64, key: &[u8]) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(h, |&i| slots[i as usize].key.as_bytes() == key)
            .map(|&i| i as usize)
    }

    /// Starts loading what looking up each request's key will touch, so that the
    /// cache misses of a pipelined batch's keys overlap instead of each command
    /// waiting for its own: a lookup of a random key in a large keyspace is a chain
    /// of dependent misses (the index group and its position, the slot and its
    /// metadata, a key of more than `key::INLINE` bytes in its own block), which
    /// took most of a `GET -P 16`'s user time. `reqs` gives each request's key and
    /// the argument after it (a member or field, looked up in a big set or hash the
    /// key holds). Passes over at most [`PREFETCH_MAX`] requests: the first probes
    /// the index (the loads of different keys overlap) and prefetches the slot it
    /// points to, the second the blocks that slot points to, the third the members. A
    /// hint only: nothing changes, and a key that is absent (or an argument that is
    /// no key) costs a probe; a key repeated by consecutive requests is probed once.
    pub fn prefetch<'a, I>(&self, reqs: I)
    where
        I: Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + Clone,
    {
        // One entry per run of requests on the same key, so that a pipeline on one
        // list or set probes it once: the key and the first position the index
        // offers for its hash (without comparing keys: the 7-bit tag in the index's
        // control bytes makes it the right one almost always).
        let mut keys: [(&[u8], Option<u32>); PREFETCH_MAX] = [(&[], None); PREFETCH_MAX];
        let mut nk = 0;
        for (key, _) in reqs.clone().take(PREFETCH_MAX) {
            if nk > 0 && keys[nk - 1].0 == key {
                continue;
            }
            let at = self.index.find(hash_of(key), |_| true).copied();
            if let Some(i) = at {
                crate::prefetch::read(self.slots.as_ptr().wrapping_add(i as usize));
                crate::prefetch::read(self.meta.as_ptr().wrapping_add(i as usize));
            }
            keys[nk] = (key, at);
            nk += 1;
        }
        let mut containers: [Option<&Value>; PREFETCH_MAX] = [None; PREFETCH_MAX];
        let mut any_container = false;
        for (&(_, at), container) in keys[..nk].iter().zip(containers.iter_mut()) {
            let Some(slot) = at.and_then(|i| self.slots.get(i as usize)) else {
                continue;
            };
            crate::prefetch::read(slot.key.as_bytes().as_ptr());
            match &slot.value {
                Value::Str(s) => crate::prefetch::read(s.as_bytes().as_ptr()),
                v @ (Value::Set(_) | Value::Hash(_)) => {
                    *container = Some(v);
                    any_container = true;
                }
                _ => {}
            }
        }
        if !any_container {
            return;
        }
        // The same runs again, now for the members.
        let mut k = 0;
        for (r, (key, member)) in reqs.take(PREFETCH_MAX).enumerate() {
            if r > 0 && keys.get(k).is_some_and(|&(run, _)| run != key) {
                k += 1;
            }
            if let (Some(m), Some(Some(v))) = (member, containers.get(k)) {
                v.prefetch_member(m);
            }
        }
    }

    /// The view of the entry at position `i` (a position from `index`).
    fn at(&self, i: usize) -> Option<EntryRef<'_>> {
        Some(EntryRef {
            value: &self.slots.get(i)?.value,
            meta: *self.meta.get(i)?,
        })
    }

    /// The raw entry, with no expiry check (callers decide what "expired" means).
    pub fn entry(&self, key: &[u8]) -> Option<EntryRef<'_>> {
        self.at(self.position(key)?)
    }

    pub fn entry_mut(&mut self, key: &[u8]) -> Option<EntryMut<'_>> {
        let i = self.position(key)?;
        Some(EntryMut {
            value: &mut self.slots.get_mut(i)?.value,
            meta: self.meta.get_mut(i)?,
        })
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.position(key).is_some()
    }

    /// Appends a slot and its metadata (the two vectors move together).
    fn push(&mut self, key: Key, value: Value, meta: Meta) {
        self.slots.push(Slot { key, value });
        self.meta.push(meta);
    }

    /// Inserts or replaces the value of `key` with no TTL (the stored key is kept on
    /// replace).
    fn put(&mut self, key: &[u8], value: Value, meta: Meta) {
        let h = hash_of(key);
        if let Some(i) = self.position_hashed(h, key) {
            let old = self.meta[i];
            if old.has_expire() {
                self.volatile.remove(&self.slots, h, key);
            }
            self.slots[i].value = value;
            self.meta[i] = meta;
            if self.keep_lfu {
                self.meta[i].set_lru(old.lru());
            }
            return;
        }
        let pos = self.slots.len() as u32;
        self.push(Key::new(key), value, meta);
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
        if self.slots.try_reserve(additional).is_err() || self.meta.try_reserve(additional).is_err()
        {
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
        let mut meta = Meta::new(lru);
        meta.set_has_expire(expire.is_some());
        self.push(Key::new(key), value, meta);
        if let Some(at) = expire {
            self.volatile.insert(&self.slots, h, pos as usize, at);
        }
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
        self.put(key, value, Meta::new(lru));
    }

    /// Replaces the value of `key` keeping its TTL (KEEPTTL, in-place updates).
    pub fn set_keep_ttl(&mut self, key: impl AsRef<[u8]>, value: Value, lru: u32) {
        let keep_lfu = self.keep_lfu;
        match self.entry_mut(key.as_ref()) {
            Some(e) => {
                *e.value = value;
                if !keep_lfu {
                    e.meta.set_lru(lru);
                }
                e.meta.reset_encoding();
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
        let h = hash_of(key);
        let slots = &self.slots;
        let found = self
            .index
            .find_entry(h, |&i| slots[i as usize].key.as_bytes() == key)
            .ok()?;
        let (i, _) = found.remove();
        let i = i as usize;
        if self.meta[i].has_expire() {
            self.volatile.remove(&self.slots, h, key);
        }
        let last = self.slots.len() - 1;
        if i != last {
            // The last slot moves into the hole: repoint its index entry and its
            // expiry item.
            let slots = &self.slots;
            let h = hash_of(slots[last].key.as_bytes());
            if let Some(p) = self.index.find_mut(h, |&j| j as usize == last) {
                *p = i as u32;
            }
            if self.meta[last].has_expire() {
                self.volatile.moved(h, last, i);
            }
        }
        let slot = self.slots.swap_remove(i);
        let meta = self.meta.swap_remove(i);
        Some(Entry {
            value: slot.value,
            meta,
        })
    }

    /// Sets an absolute expiry on an existing key; false if the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], at_ms: i64) -> bool {
        let h = hash_of(key);
        let Some(i) = self.position_hashed(h, key) else {
            return false;
        };
        let Some(meta) = self.meta.get_mut(i) else {
            return false;
        };
        if meta.has_expire() {
            self.volatile.update(&self.slots, h, key, at_ms);
        } else {
            meta.set_has_expire(true);
            self.volatile.insert(&self.slots, h, i, at_ms);
        }
        true
    }

    /// Removes the TTL; true if there was one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        let h = hash_of(key);
        let Some(i) = self.position_hashed(h, key) else {
            return false;
        };
        match self.meta.get_mut(i) {
            Some(meta) if meta.has_expire() => {
                meta.set_has_expire(false);
                self.volatile.remove(&self.slots, h, key);
                true
            }
            _ => false,
        }
    }

    pub fn expire_of(&self, key: &[u8]) -> Option<i64> {
        if self.volatile.is_empty() {
            return None;
        }
        self.volatile.get(&self.slots, hash_of(key), key)
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

    pub fn iter(&self) -> impl Iterator<Item = (&Key, EntryRef<'_>)> {
        self.slots.iter().zip(&self.meta).map(|(s, &meta)| {
            (
                &s.key,
                EntryRef {
                    value: &s.value,
                    meta,
                },
            )
        })
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
        let (pos, at) = self.volatile.random()?;
        Some((&self.slots.get(pos)?.key, at))
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
    fn prefetching_a_batch_changes_nothing_and_takes_any_arguments() {
        // A hint over any mix: present and absent keys, runs of one key, short and
        // long keys, strings, big and small sets and hashes, members that are and
        // are not there, more requests than PREFETCH_MAX, no requests at all.
        use crate::types::{Hash, Limits, Set};
        let mut db = Db::new();
        let mut big_set = Set::new();
        let mut big_hash = Hash::new();
        for i in 0..300 {
            let m = format!("element:{i:012}");
            big_set.insert(m.as_bytes(), 512);
            big_hash.insert(&b(&m), &b("xxx"), &Limits::HASH);
        }
        let mut small_set = Set::new();
        small_set.insert(b"1", 512);
        db.set(b("bigset"), Value::Set(Box::new(big_set)), 0);
        db.set(b("bighash"), Value::Hash(Box::new(big_hash)), 0);
        db.set(b("smallset"), Value::Set(Box::new(small_set)), 0);
        for i in 0..100 {
            db.set(
                format!("key:{i:012}").as_bytes(),
                Value::Str(b("v").into()),
                0,
            );
        }
        let owned: Vec<(String, Option<String>)> = (0..80)
            .map(|i| match i % 8 {
                0 | 1 => ("bigset".into(), Some(format!("element:{:012}", i * 7))),
                2 => ("bighash".into(), Some(format!("element:{i:012}"))),
                3 => ("smallset".into(), Some("1".into())),
                4 => (format!("key:{i:012}"), None),
                5 => ("absent".into(), Some("x".into())),
                6 => (String::new(), None),
                _ => (format!("key:{i:012}"), Some("a value".into())),
            })
            .collect();
        let before: Vec<Option<String>> = owned
            .iter()
            .map(|(k, _)| db.entry(k.as_bytes()).map(|e| format!("{:?}", e.value)))
            .collect();
        db.prefetch(std::iter::empty());
        db.prefetch(
            owned
                .iter()
                .map(|(k, m)| (k.as_bytes(), m.as_deref().map(str::as_bytes))),
        );
        let after: Vec<Option<String>> = owned
            .iter()
            .map(|(k, _)| db.entry(k.as_bytes()).map(|e| format!("{:?}", e.value)))
            .collect();
        assert_eq!(before, after);
        assert_eq!(db.len(), 103);
    }

    #[test]
    fn a_key_takes_a_32_byte_slot_and_4_bytes_of_metadata() {
        // The per-key layout of docs/benchmarks.md's optimisation log: 16-byte key and
        // 16-byte value in the slot, the LRU/LFU field and two flags in a parallel u32.
        assert_eq!(std::mem::size_of::<Value>(), 16);
        assert_eq!(std::mem::size_of::<Slot>(), 32);
        assert_eq!(std::mem::size_of::<Meta>(), 4);
    }

    #[test]
    fn meta_keeps_the_field_and_flags_apart() {
        // Every LFU field (16 bits of minutes, 8 of counter) and LRU clock of up to
        // 29 bits round-trips with either flag on or off.
        for lru in [0, 1, 5, 0xFF_FFFF, 12345, Meta::LRU_MAX] {
            for (expire, promoted) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut m = Meta::new(lru);
                m.set_has_expire(expire);
                m.set_promoted(promoted);
                assert_eq!(
                    (m.lru(), m.has_expire(), m.promoted()),
                    (lru, expire, promoted)
                );
                m.set_lru(7);
                assert_eq!(
                    (m.lru(), m.has_expire(), m.promoted()),
                    (7, expire, promoted)
                );
                m.set_promoted(!promoted);
                m.set_has_expire(!expire);
                assert_eq!(
                    (m.lru(), m.has_expire(), m.promoted()),
                    (7, !expire, !promoted)
                );
            }
        }
        // The verbatim mark is a flag of its own, cleared with `promoted` by a reset.
        let mut m = Meta::new(Meta::LRU_MAX);
        m.set_verbatim(true);
        m.set_promoted(true);
        assert_eq!(
            (m.lru(), m.verbatim(), m.has_expire()),
            (Meta::LRU_MAX, true, false)
        );
        m.reset_encoding();
        assert_eq!(
            (m.lru(), m.verbatim(), m.promoted()),
            (Meta::LRU_MAX, false, false)
        );
        // A wider value is cut to the field and never reaches the flags.
        let m = Meta::new(u32::MAX);
        assert_eq!(
            (m.lru(), m.has_expire(), m.promoted()),
            (Meta::LRU_MAX, false, false)
        );
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
    fn replacing_a_value_resets_the_flags_and_keeps_the_field_only_under_lfu() {
        let mut db = Db::new();
        for keep_lfu in [false, true] {
            db.keep_lfu_on_replace(keep_lfu);
            db.set(b("k"), Value::Str(b("1").into()), 10);
            db.set_expire(b"k", 99);
            if let Some(e) = db.entry_mut(b"k") {
                e.meta.set_promoted(true);
            }
            db.set(b("k"), Value::Str(b("2").into()), 20);
            let e = db.entry(b"k").expect("present");
            let lru = if keep_lfu { 10 } else { 20 };
            assert_eq!(
                (e.meta.lru(), e.meta.has_expire(), e.meta.promoted()),
                (lru, false, false)
            );
            assert_eq!(db.expire_of(b"k"), None);
            // KEEPTTL keeps the expiry flag and time, and drops `promoted` too.
            db.set_expire(b"k", 99);
            if let Some(e) = db.entry_mut(b"k") {
                e.meta.set_promoted(true);
            }
            db.set_keep_ttl(b("k"), Value::Str(b("3").into()), 30);
            let e = db.entry(b"k").expect("present");
            let lru = if keep_lfu { 10 } else { 30 };
            assert_eq!(
                (e.meta.lru(), e.meta.has_expire(), e.meta.promoted()),
                (lru, true, false)
            );
            assert_eq!(db.expire_of(b"k"), Some(99));
            let removed = db.remove(b"k").expect("present");
            assert!(matches!(&removed.value, Value::Str(v) if v == &b("3")));
            assert_eq!(removed.meta.lru(), lru);
        }
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
            if i.is_multiple_of(7) || i.is_multiple_of(11) {
                db.set_expire(key(i).as_bytes(), i as i64 - 1);
                db.set_expire(key(i).as_bytes(), i as i64);
            }
            if i.is_multiple_of(11) && !i.is_multiple_of(7) {
                assert!(db.persist(key(i).as_bytes()));
            }
            if i.is_multiple_of(5) {
                if let Some(e) = db.entry_mut(key(i).as_bytes()) {
                    e.meta.set_promoted(true);
                }
            }
        }
        assert_eq!(db.len(), model.len());
        for (k, i) in &model {
            let e = db.entry(k.as_bytes()).expect("present");
            assert!(matches!(&e.value, Value::Str(v) if v == &b(&i.to_string())));
            assert_eq!(e.meta.lru(), *i);
            assert_eq!(
                db.expire_of(k.as_bytes()),
                (i.is_multiple_of(7)).then_some(*i as i64)
            );
            assert_eq!(e.meta.has_expire(), i.is_multiple_of(7));
            // Keys whose number is a multiple of 5 were promoted: the flag moved with
            // its key through every swap_remove.
            assert_eq!(e.meta.promoted(), i.is_multiple_of(5));
        }
        assert_eq!(db.keys().count(), model.len());
        for (k, e) in db.iter() {
            let i = model[std::str::from_utf8(k.as_bytes()).expect("ascii")];
            assert_eq!((e.meta.lru(), e.meta.promoted()), (i, i.is_multiple_of(5)));
        }
        assert_eq!(
            db.expires_count(),
            model.values().filter(|i| i.is_multiple_of(7)).count()
        );
        // The expiry items followed their keys through every move.
        for _ in 0..500 {
            let (k, at) = db.random_volatile().expect("some keys have a TTL");
            let i = model[std::str::from_utf8(k.as_bytes()).expect("ascii")];
            assert_eq!(at, i as i64);
            assert_eq!(db.expire_of(k.as_bytes()), Some(at));
        }
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
