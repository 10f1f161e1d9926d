//! Keyspace layer: the hash type (`Value::Hash`) in Redis 7.0's two encodings.
//!
//! - `Compact` (what OBJECT ENCODING calls `listpack`): every field and value in one
//!   exactly-sized byte block, scanned linearly. Used while the hash has at most
//!   `hash-max-listpack-entries` fields and every field and value written has at
//!   most `hash-max-listpack-value` bytes ([`Limits`]). Keeps insertion order, as a
//!   listpack does, so HGETALL/HKEYS/HSCAN answer in Redis's order.
//! - `Table` (`hashtable`): a hash map, once a limit is crossed. Like Redis, a hash
//!   never converts back while it lives (a reload rebuilds it by the load rules).
//!
//! Why: a 2-field hash as a `HashMap` of `Bytes` took about 460 bytes; the compact
//! shape takes a 32-byte header block (this type behind `Value`'s box) and one block
//! of its bytes (48 for the benchmark's 2 x 10-byte fields, see docs/benchmarks.md).
//!
//! Block layout (`Compact::buf`), field/value pairs one after the other:
//!
//! ```text
//! pair  := varint(field_len) field varint(value_len) value
//! varint:= LEB128, 7 bits a byte, low group first, high bit = more follow
//! ```
//!
//! Lengths are below 2^30 (the block is capped at [`COMPACT_MAX_BYTES`], Redis's
//! listpack safety limit), so a length takes 1 to 5 bytes; a field appears once.

mod table;

use super::varint::{get_item, put_varint, varint_len};
use super::{HashMapB, Hasher};
use bytes::Bytes;
use std::collections::HashMap;
use table::Table;

/// Redis's cap on a listpack's size (`LISTPACK_MAX_SAFETY_SIZE`): a write that would
/// make the compact block larger converts the hash first.
pub const COMPACT_MAX_BYTES: usize = 1 << 30;

/// The thresholds of the compact encoding (`hash-max-listpack-entries` and
/// `hash-max-listpack-value`, `Limits::hash`), read from the configuration at each write.
pub use super::Limits;

#[derive(Debug, Clone)]
pub struct Hash(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Compact(Compact),
    /// Boxed: keeps `Hash` 24 bytes (its box a 32-byte chunk) for the compact shape.
    Table(Box<Table>),
}

/// The compact shape: the pair block and the number of pairs in it.
#[derive(Debug, Clone, Default)]
struct Compact {
    buf: Box<[u8]>,
    len: u32,
}

/// Where one pair sits in a compact block.
#[derive(Debug, Clone, Copy)]
struct Found {
    /// First byte of the pair (its field's length).
    start: usize,
    /// First byte of the value's length.
    value_hdr: usize,
    /// The value's bytes.
    value: (usize, usize),
}

fn encoded_pair_len(f: &[u8], v: &[u8]) -> usize {
    varint_len(f.len()) + f.len() + varint_len(v.len()) + v.len()
}

impl Compact {
    fn iter(&self) -> CompactIter<'_> {
        CompactIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    fn find(&self, field: &[u8]) -> Option<Found> {
        let buf = &self.buf[..];
        let mut pos = 0;
        while pos < buf.len() {
            let start = pos;
            let f = get_item(buf, &mut pos)?;
            let value_hdr = pos;
            let v = get_item(buf, &mut pos)?;
            if f == field {
                return Some(Found {
                    start,
                    value_hdr,
                    value: (pos - v.len(), pos),
                });
            }
        }
        None
    }

    /// Replaces `range` of the block with `with`, keeping the block exactly sized.
    fn splice(&mut self, range: std::ops::Range<usize>, with: &[u8]) {
        let mut v = std::mem::take(&mut self.buf).into_vec();
        if with.len() > range.len() {
            v.reserve_exact(with.len() - range.len());
        }
        v.splice(range, with.iter().copied());
        self.buf = v.into_boxed_slice();
    }

    /// Sets `field` to `value`; true if the field is new.
    fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        let mut enc = Vec::with_capacity(encoded_pair_len(field, value));
        match self.find(field) {
            Some(at) => {
                put_varint(&mut enc, value.len());
                enc.extend_from_slice(value);
                self.splice(at.value_hdr..at.value.1, &enc);
                false
            }
            None => {
                put_varint(&mut enc, field.len());
                enc.extend_from_slice(field);
                put_varint(&mut enc, value.len());
                enc.extend_from_slice(value);
                let end = self.buf.len();
                self.splice(end..end, &enc);
                self.len += 1;
                true
            }
        }
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        match self.find(field) {
            Some(at) => {
                self.splice(at.start..at.value.1, &[]);
                self.len -= 1;
                true
            }
            None => false,
        }
    }
}

/// Field/value pairs of a compact block, in order.
#[derive(Clone)]
struct CompactIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for CompactIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let f = get_item(self.buf, &mut self.pos)?;
        let v = get_item(self.buf, &mut self.pos)?;
        Some((f, v))
    }
}

/// Field/value pairs of a hash: in insertion order for the compact shape, in the
/// map's order for the table.
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Compact(CompactIter<'a>),
    Table(table::Iter<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Compact(it) => it.next(),
            IterRepr::Table(it) => it.next(),
        }
    }
}

impl Default for Hash {
    fn default() -> Self {
        Hash::new()
    }
}

impl Hash {
    /// An empty hash in the compact shape (no heap block until the first field).
    pub fn new() -> Self {
        Hash(Repr::Compact(Compact::default()))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Compact(c) => c.len as usize,
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True in the compact (listpack) shape.
    pub fn is_compact(&self) -> bool {
        matches!(self.0, Repr::Compact(_))
    }

    /// What OBJECT ENCODING reports: the shape, as Redis 7.0 names it.
    pub fn encoding(&self) -> &'static str {
        if self.is_compact() {
            "listpack"
        } else {
            "hashtable"
        }
    }

    /// Starts loading what looking `field` up will touch, for the table shape (the
    /// compact one is one block, loaded with the hash itself).
    #[inline]
    pub fn prefetch(&self, field: &[u8]) {
        if let Repr::Table(t) = &self.0 {
            t.prefetch(field);
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.0 {
            Repr::Compact(c) => c
                .find(field)
                .and_then(|at| c.buf.get(at.value.0..at.value.1)),
            Repr::Table(t) => t.get(field),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        match &self.0 {
            Repr::Compact(c) => c.find(field).is_some(),
            Repr::Table(t) => t.contains(field),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter(match &self.0 {
            Repr::Compact(c) => IterRepr::Compact(c.iter()),
            Repr::Table(t) => IterRepr::Table(t.iter()),
        })
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(f, _)| f)
    }

    pub fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(_, v)| v)
    }

    /// The pair at position `i` of the iteration order (a random pick: O(n)).
    pub fn nth(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.iter().nth(i)
    }

    /// Converts to the table shape if `args` (fields and values about to be
    /// written) break the compact limits: one longer than `limits.value`, or all
    /// together too many bytes for the block (Redis `hashTypeTryConversion`, which
    /// HSET runs before writing its pairs).
    pub fn prepare_write<A: AsRef<[u8]>>(&mut self, args: &[A], limits: &Limits) {
        let Repr::Compact(c) = &self.0 else {
            return;
        };
        let block = c.buf.len();
        let mut sum = 0usize;
        for a in args {
            let n = a.as_ref().len();
            if n > limits.value {
                self.convert();
                return;
            }
            sum = sum.saturating_add(n);
        }
        if block.saturating_add(sum) > COMPACT_MAX_BYTES {
            self.convert();
        }
    }

    /// Sets `field` to `value`; true if the field is new (Redis `hashTypeSet`): a
    /// field or value longer than `limits.value` converts a compact hash first,
    /// more than `limits.entries` fields afterwards.
    pub fn insert(&mut self, field: &Bytes, value: &Bytes, limits: &Limits) -> bool {
        if let Repr::Compact(c) = &self.0 {
            let too_long = field.len() > limits.value || value.len() > limits.value;
            let too_big =
                c.buf.len().saturating_add(encoded_pair_len(field, value)) > COMPACT_MAX_BYTES;
            if too_long || too_big {
                self.convert();
            }
        }
        let created = match &mut self.0 {
            Repr::Compact(c) => c.insert(field, value),
            // One hash of the field; an existing field's value is overwritten in
            // place when its length is unchanged (table.rs).
            Repr::Table(t) => t.insert(field, value),
        };
        if self.is_compact() && self.len() > limits.entries {
            self.convert();
        }
        created
    }

    /// Removes `field`; true if it was there. The shape is kept (Redis never
    /// converts back).
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.0 {
            Repr::Compact(c) => c.remove(field),
            Repr::Table(t) => t.remove(field),
        }
    }

    /// Moves every pair into the table shape (no-op if already there).
    pub fn convert(&mut self) {
        if let Repr::Compact(c) = &self.0 {
            let mut t = Table::with_capacity(c.len as usize);
            t.extend(c.iter());
            self.0 = Repr::Table(Box::new(t));
        }
    }

    /// A hash loaded from an RDB file or a RESTORE payload, shaped by Redis's load
    /// rules: `from_compact` (a listpack, ziplist or zipmap body) stays compact
    /// unless it has more than `limits.entries` fields; a hashtable body (`false`)
    /// is compact only if it has at most that many and no field or value is longer
    /// than `limits.value`. A repeated field keeps its last value.
    pub fn from_loaded(pairs: Vec<(Bytes, Bytes)>, from_compact: bool, limits: &Limits) -> Self {
        let compact = pairs.len() <= limits.entries
            && (from_compact
                || pairs
                    .iter()
                    .all(|(f, v)| f.len() <= limits.value && v.len() <= limits.value));
        let bytes: usize = pairs.iter().map(|(f, v)| encoded_pair_len(f, v)).sum();
        if !compact || bytes > COMPACT_MAX_BYTES {
            let mut t = Table::with_capacity(pairs.len());
            t.extend(pairs);
            return Hash(Repr::Table(Box::new(t)));
        }
        // Repeated fields (only in a damaged or hand-made file) keep their last
        // value: a pair is kept if no later pair has its field. Short hashes (the
        // common case) compare directly; longer ones use a map of last positions,
        // so loading stays linear however long the hash is.
        const DIRECT: usize = 16;
        let last: HashMap<&[u8], usize, Hasher> = if pairs.len() > DIRECT {
            let mut m = HashMap::with_capacity_and_hasher(pairs.len(), Hasher);
            for (i, (f, _)) in pairs.iter().enumerate() {
                m.insert(&f[..], i);
            }
            m
        } else {
            HashMap::default()
        };
        let is_last = |i: usize, f: &[u8]| match last.get(f) {
            Some(&at) => at == i,
            None => pairs
                .get(i + 1..)
                .is_none_or(|rest| rest.iter().all(|(g, _)| g != f)),
        };
        let mut buf = Vec::with_capacity(bytes);
        let mut len = 0u32;
        for (i, (f, v)) in pairs.iter().enumerate() {
            if is_last(i, f) {
                put_varint(&mut buf, f.len());
                buf.extend_from_slice(f);
                put_varint(&mut buf, v.len());
                buf.extend_from_slice(v);
                len += 1;
            }
        }
        buf.shrink_to_fit();
        Hash(Repr::Compact(Compact {
            buf: buf.into_boxed_slice(),
            len,
        }))
    }

    /// Heap bytes of a boxed hash (MEMORY USAGE): `Value`'s box, then the block of
    /// the compact shape, or the table's blocks and each pair's two.
    pub fn footprint(&self) -> usize {
        malloc_chunk(std::mem::size_of::<Hash>()) + self.held_bytes()
    }

    fn held_bytes(&self) -> usize {
        match &self.0 {
            Repr::Compact(c) => malloc_chunk(c.buf.len()),
            Repr::Table(t) => {
                // hashbrown: one block of 16-byte buckets plus a control byte each
                // (and a group's worth more); the table header's block; one block
                // per pair.
                let buckets = t.buckets();
                let table = if buckets == 0 {
                    0
                } else {
                    malloc_chunk(buckets.saturating_mul(17).saturating_add(16))
                };
                malloc_chunk(std::mem::size_of::<Table>())
                    + table
                    + t.blocks().map(malloc_chunk).sum::<usize>()
            }
        }
    }
}

/// The size of the allocator's chunk for a request of `n` bytes (glibc on 64-bit:
/// 8 bytes of header, 16-byte steps, 32 at least); 0 for no request.
pub fn malloc_chunk(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n.saturating_add(8 + 15) & !15).max(32)
    }
}

impl From<HashMapB> for Hash {
    /// A hash built in code (tests, tools): shaped as if loaded with the default
    /// limits from a hashtable body.
    fn from(m: HashMapB) -> Self {
        Hash::from_loaded(m.into_iter().collect(), false, &Limits::HASH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn b(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    #[test]
    fn value_stays_sixteen_bytes_and_the_box_is_small() {
        assert_eq!(std::mem::size_of::<super::super::Value>(), 16);
        // A 24-byte request is a 32-byte glibc chunk (the per-hash header).
        assert!(std::mem::size_of::<Hash>() <= 24);
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        for n in [
            0usize,
            1,
            127,
            128,
            16383,
            16384,
            (1 << 21) - 1,
            1 << 21,
            1 << 29,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, n);
            assert_eq!(buf.len(), varint_len(n));
            buf.extend(std::iter::repeat_n(7u8, n.min(300)));
            let mut pos = 0;
            let got = get_item(&buf, &mut pos);
            if n <= 300 {
                assert_eq!(got.map(|s| s.len()), Some(n));
            } else {
                // The announced bytes are not there: None, not a panic.
                assert_eq!(got, None);
            }
        }
        // Too many continuation bytes: refused.
        assert_eq!(get_item(&[0xff; 8], &mut 0), None);
    }

    #[test]
    fn compact_keeps_insertion_order_and_replaces_in_place() {
        let lim = Limits::HASH;
        let mut h = Hash::new();
        assert!(h.insert(&b(b"a"), &b(b"1"), &lim));
        assert!(h.insert(&b(b"b"), &b(b"2"), &lim));
        assert!(h.insert(&b(b"c"), &b(b"3"), &lim));
        assert!(!h.insert(&b(b"b"), &b(b"twenty"), &lim));
        let got: Vec<_> = h.iter().collect();
        assert_eq!(
            got,
            vec![(&b"a"[..], &b"1"[..]), (b"b", b"twenty"), (b"c", b"3")]
        );
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        assert_eq!(h.keys().collect::<Vec<_>>(), vec![&b"b"[..], b"c"]);
        assert_eq!(h.encoding(), "listpack");
    }

    #[test]
    fn converts_once_a_limit_is_crossed_and_never_back() {
        let lim = Limits {
            entries: 3,
            value: 5,
        };
        let mut h = Hash::new();
        for i in 0..3 {
            h.insert(&b(format!("f{i}").as_bytes()), &b(b"v"), &lim);
        }
        assert!(h.is_compact());
        h.insert(&b(b"f3"), &b(b"v"), &lim);
        assert!(!h.is_compact());
        for i in 0..4 {
            h.remove(format!("f{i}").as_bytes());
        }
        h.insert(&b(b"x"), &b(b"y"), &lim);
        assert_eq!((h.len(), h.encoding()), (1, "hashtable"));

        let mut h = Hash::new();
        h.insert(&b(b"a"), &b(b"1"), &lim);
        h.prepare_write(&[&b"a"[..], b"12345"], &lim);
        assert!(h.is_compact());
        h.prepare_write(&[&b"a"[..], b"123456"], &lim);
        assert!(!h.is_compact());
        assert_eq!(h.get(b"a"), Some(&b"1"[..]));
        // A value written longer than the limit converts too (HINCRBY's result).
        let mut h = Hash::new();
        h.insert(&b(b"n"), &b(b"99999"), &lim);
        assert!(h.is_compact());
        h.insert(&b(b"n"), &b(b"100000"), &lim);
        assert_eq!(
            (h.encoding(), h.get(b"n")),
            ("hashtable", Some(&b"100000"[..]))
        );
    }

    #[test]
    fn loading_follows_the_load_rules() {
        let lim = Limits {
            entries: 2,
            value: 3,
        };
        let pairs = |n: usize, vlen: usize| -> Vec<(Bytes, Bytes)> {
            (0..n)
                .map(|i| (b(format!("f{i}").as_bytes()), Bytes::from(vec![b'v'; vlen])))
                .collect()
        };
        assert!(Hash::from_loaded(pairs(2, 3), false, &lim).is_compact());
        assert!(!Hash::from_loaded(pairs(2, 4), false, &lim).is_compact());
        // A listpack body is not checked for long values, only for its count.
        assert!(Hash::from_loaded(pairs(2, 4), true, &lim).is_compact());
        assert!(!Hash::from_loaded(pairs(3, 1), true, &lim).is_compact());
        // A repeated field keeps its last value, once.
        let dup = vec![(b(b"a"), b(b"1")), (b(b"b"), b(b"2")), (b(b"a"), b(b"3"))];
        let h = Hash::from_loaded(dup, true, &Limits::HASH);
        assert_eq!(h.len(), 2);
        assert_eq!(h.get(b"a"), Some(&b"3"[..]));
        // The same past the direct-comparison length.
        let mut long = pairs(40, 1);
        long.push((b(b"f7"), b(b"last")));
        let h = Hash::from_loaded(long, true, &Limits::HASH);
        assert_eq!((h.len(), h.get(b"f7")), (40, Some(&b"last"[..])));
        assert_eq!(h.iter().count(), 40);
    }

    /// Thousands of seeded random operations against a `BTreeMap` model, across the
    /// limits (small ones, so conversions happen), checking every answer.
    #[test]
    fn random_operations_match_a_map_model() {
        for seed in 0..6u64 {
            let mut rng = StdRng::seed_from_u64(0x4a5b + seed);
            let lim = Limits {
                entries: rng.gen_range(1..40),
                value: rng.gen_range(1..200),
            };
            let mut h = Hash::new();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut was_table = false;
            for _ in 0..3000 {
                let f = format!("f{}", rng.gen_range(0..60)).into_bytes();
                let vlen = rng.gen_range(0..260);
                let v: Vec<u8> = (0..vlen).map(|_| rng.gen()).collect();
                match rng.gen_range(0..10) {
                    0..=4 => {
                        let (fb, vb) = (Bytes::from(f.clone()), Bytes::from(v.clone()));
                        if rng.gen_bool(0.5) {
                            h.prepare_write(&[&fb, &vb], &lim);
                        }
                        let created = h.insert(&fb, &vb, &lim);
                        assert_eq!(created, model.insert(f.clone(), v).is_none());
                        if vlen > lim.value || model.len() > lim.entries {
                            assert!(!h.is_compact());
                        }
                    }
                    5..=7 => assert_eq!(h.remove(&f), model.remove(&f).is_some()),
                    _ => assert_eq!(h.get(&f), model.get(&f).map(|v| &v[..])),
                }
                assert_eq!(h.len(), model.len());
                assert_eq!(h.contains(&f), model.contains_key(&f));
                if was_table {
                    assert!(!h.is_compact(), "a table never converts back");
                }
                was_table = !h.is_compact();
            }
            let got: BTreeMap<Vec<u8>, Vec<u8>> =
                h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            assert_eq!(got, model);
            assert_eq!(h.iter().count(), model.len());
        }
    }

    #[test]
    fn memory_estimate_counts_the_compact_block() {
        let mut h = Hash::new();
        let lim = Limits::HASH;
        h.insert(&b(b"field:a"), &b(b"va:0000001"), &lim);
        h.insert(&b(b"field:b"), &b(b"vb:0000001"), &lim);
        // The box (a 32-byte chunk), then 4 one-byte lengths + 34 bytes: a 38-byte
        // block, a 48-byte chunk.
        assert_eq!(h.footprint(), 32 + 48);
        h.convert();
        // As a table: header 48, 4 buckets (4 x 17 + 16 -> 96), two pair blocks of
        // 18 bytes (32-byte chunks).
        assert_eq!(h.footprint(), 32 + 48 + 96 + 2 * 32);
    }
}
