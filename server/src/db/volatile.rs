//! The expiry index of one database (Redis's `expires` dict): for each key with a
//! TTL, its slot position in `Db::slots` and its absolute expiry time (ms since the
//! epoch).
//!
//! Layout (memory per key with a TTL, see docs/benchmarks.md): two dense vectors,
//! `slot` (u32) and `at` (i64), 12 bytes per key, in positions 0..len (active expiry
//! and volatile-* eviction pick a uniformly random position), and `index`, a hash
//! table of `u32` positions into them hashed by the key's bytes (the key itself is
//! not copied: it is read from its slot). An `IndexMap<Key, i64>` took 32 bytes of
//! entry (hash, `Key`, time) plus 9 of index per bucket, and a heap copy of every
//! key longer than 14 bytes.
//!
//! `Db` keeps this in step with its slots: it adds an item when a key gets a TTL
//! (`Meta::has_expire`), removes it when the key loses its TTL or is deleted, and
//! repoints it (`moved`) when `swap_remove` moves a slot.

use super::{hash_of, Slot};
use hashbrown::HashTable;

#[derive(Debug, Default, Clone)]
pub(super) struct Volatile {
    /// Slot position of each key with a TTL.
    slot: Vec<u32>,
    /// Its expiry time, at the same position.
    at: Vec<i64>,
    index: HashTable<u32>,
}

impl Volatile {
    pub(super) fn len(&self) -> usize {
        self.slot.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.slot.is_empty()
    }

    /// The position of the item of `key` (whose hash is `h`).
    fn find(&self, slots: &[Slot], h: u64, key: &[u8]) -> Option<usize> {
        let slot = &self.slot;
        self.index
            .find(h, |&j| key_of(slots, slot, j) == key)
            .map(|&j| j as usize)
    }

    /// The expiry time of `key`, if it has one.
    pub(super) fn get(&self, slots: &[Slot], h: u64, key: &[u8]) -> Option<i64> {
        self.at.get(self.find(slots, h, key)?).copied()
    }

    /// Changes the expiry time of `key` (hash `h`), which has an item.
    pub(super) fn update(&mut self, slots: &[Slot], h: u64, key: &[u8], at: i64) {
        if let Some(t) = self.find(slots, h, key).and_then(|j| self.at.get_mut(j)) {
            *t = at;
        }
    }

    /// Adds the item of the key at slot `pos` (hash `h`), which has none.
    pub(super) fn insert(&mut self, slots: &[Slot], h: u64, pos: usize, at: i64) {
        let j = self.slot.len() as u32;
        self.slot.push(pos as u32);
        self.at.push(at);
        let slot = &self.slot;
        self.index.insert_unique(h, j, |&j| rehash(slots, slot, j));
    }

    /// Removes the item of `key` (hash `h`), if any.
    pub(super) fn remove(&mut self, slots: &[Slot], h: u64, key: &[u8]) {
        let slot = &self.slot;
        let Ok(found) = self.index.find_entry(h, |&j| key_of(slots, slot, j) == key) else {
            return;
        };
        let (j, _) = found.remove();
        let j = j as usize;
        let last = self.slot.len() - 1;
        if j != last {
            // The last item moves into the hole: repoint its index entry.
            let h = rehash(slots, &self.slot, last as u32);
            if let Some(p) = self.index.find_mut(h, |&k| k as usize == last) {
                *p = j as u32;
            }
        }
        self.slot.swap_remove(j);
        self.at.swap_remove(j);
    }

    /// The key at slot `from` (hash `h`, with a TTL) is moving to slot `to`.
    pub(super) fn moved(&mut self, h: u64, from: usize, to: usize) {
        let slot = &self.slot;
        let found = self
            .index
            .find(h, |&j| slot.get(j as usize) == Some(&(from as u32)))
            .copied();
        if let Some(s) = found.and_then(|j| self.slot.get_mut(j as usize)) {
            *s = to as u32;
        }
    }

    /// A uniformly random item: (slot position, expiry time).
    pub(super) fn random(&self) -> Option<(usize, i64)> {
        if self.slot.is_empty() {
            return None;
        }
        let j = rand::random::<usize>() % self.slot.len();
        Some((*self.slot.get(j)? as usize, *self.at.get(j)?))
    }
}

/// The key of item `j` (empty if out of range: the index only holds valid items).
fn key_of<'a>(slots: &'a [Slot], slot: &[u32], j: u32) -> &'a [u8] {
    slot.get(j as usize)
        .and_then(|&s| slots.get(s as usize))
        .map_or(&[], |s| s.key.as_bytes())
}

/// The hash of the key of item `j` (for moving index entries as the table grows).
fn rehash(slots: &[Slot], slot: &[u32], j: u32) -> u64 {
    hash_of(key_of(slots, slot, j))
}
