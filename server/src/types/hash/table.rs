//! Keyspace layer: the big shape of a hash (`hashtable` in OBJECT ENCODING), a hash
//! table of field/value pairs, each pair one heap block.
//!
//! Why (docs/benchmarks.md, optimisation log entry 34): the table was a
//! `HashMap<Bytes, Bytes>`, 64-byte buckets and two heap blocks per field (each a
//! 32-byte `Bytes` handle pointing at its own block), and HSET of an existing field
//! allocated a new value block and freed the old one; on one hash of 100k fields the
//! allocator's work (frees, consolidation) was the largest source of data-cache
//! misses per HSET. Now a bucket is a 16-byte [`Pair`] (a boxed byte slice) and a
//! pair's field and value share one exactly-sized block, so:
//!
//! - a new field is one allocation, an existing field whose new value has the old
//!   value's length (a counter, a fixed-width flag) none: the bytes are overwritten
//!   in place;
//! - lookup and insert hash the field once (`hashbrown::HashTable`'s entry API);
//! - a field of the benchmark's size (20 bytes, a 3-byte value) costs a 32-byte
//!   block and 17 bytes of bucket (plus load slack), against two 32-byte blocks and
//!   65 bytes of bucket before.
//!
//! Block layout (`Pair`), the whole block being exactly this long:
//!
//! ```text
//! pair := varint(field_len) field value
//! ```
//!
//! `varint` is the compact shape's LEB128 (7 bits a byte, low group first, high bit
//! = more follow); the value's length is what is left after the field. Hashes are
//! those of the field's bytes with the keyspace's [`Hasher`], recomputed from the
//! block when the table grows (no stored hash: 8 bytes a field saved, one block read
//! per field when the table doubles).

use super::super::Hasher;
use crate::types::varint::{get_varint, put_varint, varint_len};
use hashbrown::hash_table::{Entry, HashTable};
use std::hash::BuildHasher;

/// One field and its value in one block (see the module docs for the layout).
#[derive(Clone, Debug)]
pub struct Pair(Box<[u8]>);

impl Pair {
    pub fn new(field: &[u8], value: &[u8]) -> Pair {
        let mut v = Vec::with_capacity(varint_len(field.len()) + field.len() + value.len());
        put_varint(&mut v, field.len());
        v.extend_from_slice(field);
        v.extend_from_slice(value);
        // Exactly sized above: no reallocation.
        Pair(v.into_boxed_slice())
    }

    /// Where the field ends and the value starts (the field starts after its length).
    #[inline]
    fn bounds(&self) -> (usize, usize) {
        let mut hdr = 0;
        let (flen, hdr) = match get_varint(&self.0, &mut hdr) {
            Some(n) => (n, hdr),
            None => (0, 0),
        };
        (hdr, hdr.saturating_add(flen).min(self.0.len()))
    }

    #[inline]
    pub fn field(&self) -> &[u8] {
        let (start, end) = self.bounds();
        self.0.get(start..end).unwrap_or_default()
    }

    #[inline]
    pub fn value(&self) -> &[u8] {
        let (_, end) = self.bounds();
        self.0.get(end..).unwrap_or_default()
    }

    #[inline]
    pub fn split(&self) -> (&[u8], &[u8]) {
        let (start, end) = self.bounds();
        let (head, value) = self.0.split_at(end);
        (head.get(start..).unwrap_or_default(), value)
    }

    /// Replaces the value: in place when the length is the same, otherwise one new
    /// block with the field copied over.
    pub fn set_value(&mut self, value: &[u8]) {
        let (_, end) = self.bounds();
        if let Some(old) = self.0.get_mut(end..) {
            if old.len() == value.len() {
                old.copy_from_slice(value);
                return;
            }
        }
        let mut v = Vec::with_capacity(end + value.len());
        v.extend_from_slice(self.0.get(..end).unwrap_or_default());
        v.extend_from_slice(value);
        self.0 = v.into_boxed_slice();
    }

    /// Bytes of the block (MEMORY USAGE).
    pub fn block_len(&self) -> usize {
        self.0.len()
    }
}

#[inline]
fn hash_of(field: &[u8]) -> u64 {
    Hasher.hash_one(field)
}

#[inline]
fn rehash(p: &Pair) -> u64 {
    hash_of(p.field())
}

/// The pairs of a big hash. Iteration order is the table's (arbitrary, stable while
/// the table does not change), as for Redis's dict.
#[derive(Clone, Debug, Default)]
pub struct Table(HashTable<Pair>);

impl Table {
    pub fn with_capacity(n: usize) -> Table {
        Table(HashTable::with_capacity(n))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Slots the table holds before it grows.
    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// Buckets allocated (a power of two, or 0): what the table's block holds.
    pub fn buckets(&self) -> usize {
        let cap = self.capacity();
        if cap == 0 {
            0
        } else if cap < 8 {
            // Tables of 4 and 8 buckets hold one fewer than their size.
            (cap + 1).next_power_of_two()
        } else {
            (cap.saturating_mul(8) / 7).next_power_of_two()
        }
    }

    /// Prefetches the block of the first pair the table offers for `field`'s hash
    /// (almost always `field`'s, if present; see `Db::prefetch`).
    pub fn prefetch(&self, field: &[u8]) {
        if let Some(p) = self.0.find(hash_of(field), |_| true) {
            crate::prefetch::read(p.0.as_ptr());
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.0
            .find(hash_of(field), |p| p.field() == field)
            .map(Pair::value)
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets `field` to `value` (one hash of the field); true if the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        match self.0.entry(hash_of(field), |p| p.field() == field, rehash) {
            Entry::Occupied(mut e) => {
                e.get_mut().set_value(value);
                false
            }
            Entry::Vacant(e) => {
                e.insert(Pair::new(field, value));
                true
            }
        }
    }

    /// Removes `field`; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.0.find_entry(hash_of(field), |p| p.field() == field) {
            Ok(e) => {
                e.remove();
                true
            }
            Err(_) => false,
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter(self.0.iter())
    }

    /// The block lengths of every pair (MEMORY USAGE adds their chunk sizes).
    pub fn blocks(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().map(Pair::block_len)
    }
}

/// Field/value pairs of a [`Table`], in its order.
#[derive(Clone)]
pub struct Iter<'a>(hashbrown::hash_table::Iter<'a, Pair>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(Pair::split)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<F: AsRef<[u8]>, V: AsRef<[u8]>> Extend<(F, V)> for Table {
    /// Inserts every pair; a repeated field keeps its last value.
    fn extend<I: IntoIterator<Item = (F, V)>>(&mut self, iter: I) {
        for (f, v) in iter {
            self.insert(f.as_ref(), v.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::collections::HashMap;

    #[test]
    fn a_pair_is_a_sixteen_byte_handle_of_one_exact_block() {
        assert_eq!(std::mem::size_of::<Pair>(), 16);
        let p = Pair::new(b"element:000000000042", b"xxx");
        // One length byte, the field, the value.
        assert_eq!(p.block_len(), 1 + 20 + 3);
        assert_eq!(p.split(), (&b"element:000000000042"[..], &b"xxx"[..]));
        assert_eq!((p.field(), p.value()), p.split());
    }

    #[test]
    fn pairs_round_trip_at_every_length_width() {
        for flen in [0usize, 1, 127, 128, 300, 16384, 70000] {
            for vlen in [0usize, 1, 3, 200] {
                let f: Vec<u8> = (0..flen).map(|i| (i * 31 + 7) as u8).collect();
                let v: Vec<u8> = (0..vlen).map(|i| (i * 17 + 1) as u8).collect();
                let mut p = Pair::new(&f, &v);
                assert_eq!(p.block_len(), varint_len(flen) + flen + vlen);
                assert_eq!((p.field(), p.value()), (&f[..], &v[..]));
                // Same length: in place; other lengths: the field is kept.
                let same: Vec<u8> = v.iter().map(|b| b.wrapping_add(1)).collect();
                p.set_value(&same);
                assert_eq!((p.field(), p.value()), (&f[..], &same[..]));
                for w in [&b""[..], b"a", &[9u8; 150][..]] {
                    p.set_value(w);
                    assert_eq!((p.field(), p.value()), (&f[..], w));
                    assert_eq!(p.block_len(), varint_len(flen) + flen + w.len());
                }
            }
        }
    }

    #[test]
    fn a_field_is_found_whatever_its_value_and_only_by_its_bytes() {
        let mut t = Table::default();
        assert!(t.insert(b"ab", b"c"));
        assert!(t.insert(b"a", b"bc"));
        assert!(t.insert(b"", b""));
        assert_eq!(t.get(b"ab"), Some(&b"c"[..]));
        assert_eq!(t.get(b"a"), Some(&b"bc"[..]));
        assert_eq!(t.get(b""), Some(&b""[..]));
        assert_eq!(t.get(b"abc"), None);
        assert!(!t.insert(b"a", b"x"));
        assert_eq!((t.len(), t.get(b"a")), (3, Some(&b"x"[..])));
    }

    /// Seeded random inserts, replacements (same and other value lengths), removals
    /// and lookups against a `std` `HashMap`, checked after every step, through
    /// several growths of the table.
    #[test]
    fn random_operations_match_a_std_hash_map() {
        for seed in 0..4u64 {
            let mut rng = StdRng::seed_from_u64(0x7ab1e + seed);
            let mut t = Table::default();
            let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            let fields = [40usize, 400, 3000, 20000][seed as usize];
            for _ in 0..20_000 {
                let flen = rng.gen_range(0..6);
                let f = format!("{:0w$}", rng.gen_range(0..fields), w = flen).into_bytes();
                let vlen = if rng.gen_bool(0.6) {
                    3
                } else {
                    rng.gen_range(0..140)
                };
                let v: Vec<u8> = (0..vlen).map(|_| rng.gen()).collect();
                match rng.gen_range(0..10) {
                    0..=5 => assert_eq!(t.insert(&f, &v), model.insert(f.clone(), v).is_none()),
                    6..=7 => assert_eq!(t.remove(&f), model.remove(&f).is_some()),
                    _ => assert_eq!(t.get(&f), model.get(&f).map(|v| &v[..])),
                }
                assert_eq!(t.len(), model.len());
                assert_eq!(t.contains(&f), model.contains_key(&f));
            }
            let got: HashMap<Vec<u8>, Vec<u8>> =
                t.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            assert_eq!(got, model);
            assert_eq!(t.iter().count(), model.len());
            assert_eq!(t.blocks().count(), model.len());
            assert!(t.buckets() >= t.len());
        }
    }
}
