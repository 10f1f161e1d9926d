//! Keyspace layer: the set type (`Value::Set`), in three shapes chosen by content
//! and size the way Redis 7.0 chooses its encodings, so that a small set costs a
//! small block and not a hash table (issue 21, docs/benchmarks.md entry 17 (b)).
//!
//! - `Ints`: an intset, the members as sorted integers in one exactly-sized block of
//!   the narrowest width that holds them all (2, 4 or 8 bytes, widened when a member
//!   needs it and never narrowed, like Redis's intset). Used while every member is
//!   the canonical decimal form of an i64 and there are at most
//!   `set-max-intset-entries` of them; OBJECT ENCODING says "intset" and members come
//!   out in ascending order, as Redis's do.
//! - `Small`: up to [`SMALL_MAX_ENTRIES`] members of at most [`SMALL_MAX_LEN`] bytes
//!   as one exactly-sized block of 16-byte [`Str`] handles (members of up to 14 bytes
//!   sit inline in their handle), looked up by a linear scan. Redis 7.0 has no compact
//!   encoding for sets of strings, so OBJECT ENCODING says "hashtable" for this shape
//!   too; it is only a cheaper way to hold what Redis holds in a small dict. The limits
//!   are the ones Redis 7.2 gave its listpack sets (`set-max-listpack-entries` 128,
//!   `-value` 64): a scan of at most 128 short members costs about what one hash
//!   lookup plus its cache misses does, and the block stays under 2 KiB.
//! - `Hash`: a hash table of members.
//!
//! Conversions only go towards `Hash`: `Ints` becomes `Small` or `Hash` when a
//! non-integer member arrives or it grows past the intset limit; `Small` becomes
//! `Hash` past its limits. Removing members never converts back (Redis doesn't).

use super::{Hasher, Str};
use bytes::Bytes;
use hashbrown::hash_table::{Entry, HashTable};
use rand::Rng;
use std::hash::BuildHasher;

/// Most members a `Small` set holds (see the module docs for why).
pub const SMALL_MAX_ENTRIES: usize = 128;
/// Longest member (bytes) a `Small` set holds.
pub const SMALL_MAX_LEN: usize = 64;

/// The big shape's table: 16-byte `Str` members (a member of up to 14 bytes inline,
/// longer ones one exact block) in a `hashbrown::HashTable`, so that SADD hashes a
/// member once for its lookup and its insert (a `std` `HashSet` has no entry API:
/// `contains` then `insert` hashed and probed twice). Hashes are those of the
/// member's bytes, recomputed when the table grows.
#[derive(Clone, Debug, Default)]
pub struct HashSetS(HashTable<Str>);

#[inline]
fn hash_of(m: &[u8]) -> u64 {
    Hasher.hash_one(m)
}

#[inline]
fn rehash(s: &Str) -> u64 {
    hash_of(s.as_bytes())
}

impl HashSetS {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.0.capacity()
    }

    pub fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional, rehash);
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        self.0.find(hash_of(m), |x| x.as_bytes() == m).is_some()
    }

    /// Prefetches the block of the first member the table offers for `m`'s hash
    /// (almost always `m` itself, if present; see `Db::prefetch`).
    pub fn prefetch(&self, m: &[u8]) {
        if let Some(x) = self.0.find(hash_of(m), |_| true) {
            crate::prefetch::read(x.as_bytes().as_ptr());
        }
    }

    /// Adds a copy of `m` (made only when it is new); true if it was not there.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        match self.0.entry(hash_of(m), |x| x.as_bytes() == m, rehash) {
            Entry::Occupied(_) => false,
            Entry::Vacant(e) => {
                e.insert(Str::new(m));
                true
            }
        }
    }

    /// Adds `m` itself (a member moved from another shape); true if it was not there.
    pub fn insert_str(&mut self, m: Str) -> bool {
        let b = m.as_bytes();
        match self.0.entry(hash_of(b), |x| x.as_bytes() == b, rehash) {
            Entry::Occupied(_) => false,
            Entry::Vacant(e) => {
                e.insert(m);
                true
            }
        }
    }

    /// Removes `m`; true if it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self.0.find_entry(hash_of(m), |x| x.as_bytes() == m) {
            Ok(e) => {
                e.remove();
                true
            }
            Err(_) => false,
        }
    }

    pub fn iter(&self) -> hashbrown::hash_table::Iter<'_, Str> {
        self.0.iter()
    }
}

impl Extend<Str> for HashSetS {
    fn extend<I: IntoIterator<Item = Str>>(&mut self, iter: I) {
        for m in iter {
            self.insert_str(m);
        }
    }
}

#[derive(Clone, Debug)]
pub enum Set {
    Ints(IntSet),
    Small(Box<[Str]>),
    // Boxed: the table's header is 32 bytes; boxed it keeps `Set` at 24.
    Hash(Box<HashSetS>),
}

impl Default for Set {
    fn default() -> Self {
        Set::Ints(IntSet::default())
    }
}

/// One member as the set holds it: an integer of an intset or the bytes of a string.
#[derive(Clone, Copy, Debug)]
pub enum Member<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// Runs `f` on the member's bytes (an integer rendered in decimal).
    pub fn with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Member::Int(n) => f(itoa::Buffer::new().format(*n).as_bytes()),
            Member::Bytes(b) => f(b),
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        match self {
            Member::Int(n) => Bytes::copy_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Member::Bytes(b) => Bytes::copy_from_slice(b),
        }
    }

    /// The member's length in bytes.
    pub fn len(&self) -> usize {
        self.with(|b| b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The integer a member is stored as in an intset: only canonical decimals (so
/// "007" or "+1" stay strings, as in Redis).
fn as_int(m: &[u8]) -> Option<i64> {
    crate::resp::parse_i64(m)
}

impl Set {
    pub fn new() -> Self {
        Set::default()
    }

    /// A set of `members` (duplicates collapse), in the shape inserting them one by
    /// one would give.
    pub fn from_members<'a, I>(members: I, max_intset: usize) -> Self
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut s = Set::new();
        for m in members {
            s.insert(m, max_intset);
        }
        s
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Ints(i) => i.len(),
            Set::Small(v) => v.len(),
            Set::Hash(h) => h.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What OBJECT ENCODING reports (Redis 7.0 has no compact set of strings).
    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Ints(_) => "intset",
            Set::Small(_) | Set::Hash(_) => "hashtable",
        }
    }

    /// Starts loading what looking `m` up will touch, for the hash shape (the
    /// others are one block, loaded with the set itself).
    #[inline]
    pub fn prefetch(&self, m: &[u8]) {
        if let Set::Hash(h) = self {
            h.prefetch(m);
        }
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            Set::Ints(i) => as_int(m).is_some_and(|n| i.contains(n)),
            Set::Small(v) => v.iter().any(|x| x.as_bytes() == m),
            Set::Hash(h) => h.contains(m),
        }
    }

    /// Adds `m`; true if it was not there. `max_intset` is `set-max-intset-entries`.
    pub fn insert(&mut self, m: &[u8], max_intset: usize) -> bool {
        match self {
            Set::Ints(i) => match as_int(m) {
                Some(n) => {
                    if !i.insert(n) {
                        return false;
                    }
                    if i.len() > max_intset {
                        self.leave_intset(None);
                    }
                    true
                }
                None => {
                    self.leave_intset(Some(m));
                    true
                }
            },
            Set::Small(v) => {
                if v.iter().any(|x| x.as_bytes() == m) {
                    return false;
                }
                if v.len() >= SMALL_MAX_ENTRIES || m.len() > SMALL_MAX_LEN {
                    self.make_hash().insert(m);
                } else {
                    let mut grown = std::mem::take(v).into_vec();
                    grown.reserve_exact(1);
                    grown.push(Str::new(m));
                    *v = grown.into_boxed_slice();
                }
                true
            }
            Set::Hash(h) => h.insert(m),
        }
    }

    /// Removes `m`; true if it was there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Set::Ints(i) => as_int(m).is_some_and(|n| i.remove(n)),
            Set::Small(v) => {
                let Some(pos) = v.iter().position(|x| x.as_bytes() == m) else {
                    return false;
                };
                let mut shrunk = std::mem::take(v).into_vec();
                shrunk.swap_remove(pos);
                *v = shrunk.into_boxed_slice();
                true
            }
            Set::Hash(h) => h.remove(m),
        }
    }

    /// The members in the set's order (ascending for an intset).
    pub fn iter(&self) -> Iter<'_> {
        match self {
            Set::Ints(i) => Iter::Ints(i, 0),
            Set::Small(v) => Iter::Small(v.iter()),
            Set::Hash(h) => Iter::Hash(h.iter()),
        }
    }

    /// A member drawn uniformly at random, or None when empty.
    pub fn random<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<Member<'_>> {
        if self.is_empty() {
            return None;
        }
        let i = rng.gen_range(0..self.len());
        match self {
            Set::Ints(s) => s.get(i).map(Member::Int),
            Set::Small(v) => v.get(i).map(|x| Member::Bytes(x.as_bytes())),
            // A hash table has no index; walking to the i-th member keeps the draw
            // uniform (O(n), as before this type existed).
            Set::Hash(h) => h.iter().nth(i).map(|x| Member::Bytes(x.as_bytes())),
        }
    }

    /// The members as a hash set of `Bytes` (for commands that combine a set with
    /// other containers).
    pub fn to_hash_set(&self) -> super::HashSetB {
        self.iter().map(|m| m.to_bytes()).collect()
    }

    /// The integers of an intset-shaped set, ascending; None for the other shapes.
    pub fn ints(&self) -> Option<impl Iterator<Item = i64> + '_> {
        match self {
            Set::Ints(i) => Some((0..i.len()).filter_map(|k| i.get(k))),
            _ => None,
        }
    }

    /// Heap bytes this set holds, as MEMORY USAGE reports them: the `Set` box, its
    /// block(s) and the members' own blocks.
    pub fn heap_size(&self) -> usize {
        let own = std::mem::size_of::<Set>();
        let member = |s: &Str| if s.is_inline() { 0 } else { s.len() };
        own + match self {
            Set::Ints(i) if i.is_inline() => 0,
            Set::Ints(i) => i.len() * i.width(),
            Set::Small(v) => v.iter().map(|s| 16 + member(s)).sum(),
            Set::Hash(h) => {
                // hashbrown: a power-of-two table of 16-byte slots plus a control
                // byte each (and a group of spare control bytes), at 7/8 load.
                let buckets = (h.capacity() * 8 / 7).next_power_of_two().max(4);
                32 + buckets * 17 + 16 + h.iter().map(member).sum::<usize>()
            }
        }
    }

    /// Turns an intset into the string shape that fits its size, adding `extra`.
    fn leave_intset(&mut self, extra: Option<&[u8]>) {
        let Set::Ints(i) = self else {
            return;
        };
        let n = i.len() + usize::from(extra.is_some());
        let small = n <= SMALL_MAX_ENTRIES && extra.is_none_or(|m| m.len() <= SMALL_MAX_LEN);
        let mut buf = itoa::Buffer::new();
        let ints = (0..i.len()).filter_map(|k| i.get(k));
        if small {
            let mut v: Vec<Str> = Vec::with_capacity(n);
            v.extend(ints.map(|x| Str::new(buf.format(x).as_bytes())));
            v.extend(extra.map(Str::new));
            *self = Set::Small(v.into_boxed_slice());
        } else {
            let mut h = HashSetS::default();
            h.reserve(n);
            h.extend(ints.map(|x| Str::new(buf.format(x).as_bytes())));
            h.extend(extra.map(Str::new));
            *self = Set::Hash(Box::new(h));
        }
    }

    /// Converts to the hash shape (from any shape) and returns its table.
    fn make_hash(&mut self) -> &mut HashSetS {
        if !matches!(self, Set::Hash(_)) {
            let mut h = HashSetS::default();
            h.reserve(self.len() + 1);
            match std::mem::take(self) {
                Set::Small(v) => h.extend(v.into_vec()),
                other => h.extend(other.iter().map(|m| m.with(Str::new))),
            }
            *self = Set::Hash(Box::new(h));
        }
        match self {
            Set::Hash(h) => h,
            // Made a table just above.
            _ => unreachable!("Set::make_hash: the set was just converted"),
        }
    }
}

/// Redis's default `set-max-intset-entries`, for sets built outside a command
/// (conversions and tests).
const DEFAULT_MAX_INTSET: usize = 512;

impl<T: AsRef<[u8]>> FromIterator<T> for Set {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut s = Set::new();
        for m in iter {
            s.insert(m.as_ref(), DEFAULT_MAX_INTSET);
        }
        s
    }
}

impl From<super::HashSetB> for Set {
    fn from(h: super::HashSetB) -> Self {
        h.iter().collect()
    }
}

/// Iterator over a set's members (see [`Set::iter`]).
pub enum Iter<'a> {
    Ints(&'a IntSet, usize),
    Small(std::slice::Iter<'a, Str>),
    Hash(hashbrown::hash_table::Iter<'a, Str>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = Member<'a>;
    fn next(&mut self) -> Option<Member<'a>> {
        match self {
            Iter::Ints(s, k) => {
                let n = s.get(*k)?;
                *k += 1;
                Some(Member::Int(n))
            }
            Iter::Small(it) => it.next().map(|x| Member::Bytes(x.as_bytes())),
            Iter::Hash(it) => it.next().map(|x| Member::Bytes(x.as_bytes())),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match self {
            Iter::Ints(s, k) => s.len().saturating_sub(*k),
            Iter::Small(it) => it.len(),
            Iter::Hash(it) => it.len(),
        };
        (n, Some(n))
    }
}

/// Sorted distinct integers of the narrowest width that has held them (Redis's
/// intset: widened on demand, never narrowed). Up to [`INLINE16`] 2-byte or
/// [`INLINE32`] 4-byte members sit inline in the handle itself, so a small set of
/// small integers is one 32-byte block in all (the boxed `Set`); larger ones are one
/// exactly-sized block.
#[derive(Clone, Debug)]
pub enum IntSet {
    In16(u8, [i16; INLINE16]),
    In32(u8, [i32; INLINE32]),
    W16(Box<[i16]>),
    W32(Box<[i32]>),
    W64(Box<[i64]>),
}

/// Members held inline at each width: as many as fit beside the tag and the length
/// in the 24 bytes the boxed variants take anyway.
pub const INLINE16: usize = 10;
pub const INLINE32: usize = 5;

impl Default for IntSet {
    fn default() -> Self {
        IntSet::In16(0, [0; INLINE16])
    }
}

/// A borrowed view of an intset's members at their width.
enum View<'a> {
    S16(&'a [i16]),
    S32(&'a [i32]),
    S64(&'a [i64]),
}

fn find<T: Copy + Into<i64>>(s: &[T], n: i64) -> Result<usize, usize> {
    s.binary_search_by(|x| (*x).into().cmp(&n))
}

/// Inserts `n` (which fits `T`) at its sorted place; false if present.
fn insert_sorted<T: Copy + Into<i64> + TryFrom<i64>>(b: &mut Box<[T]>, n: i64) -> bool {
    let Err(pos) = find(b, n) else {
        return false;
    };
    let Ok(x) = T::try_from(n) else {
        return false;
    };
    let mut v = std::mem::take(b).into_vec();
    v.reserve_exact(1);
    v.insert(pos, x);
    *b = v.into_boxed_slice();
    true
}

fn remove_sorted<T: Copy + Into<i64>>(b: &mut Box<[T]>, n: i64) -> bool {
    let Ok(pos) = find(b, n) else {
        return false;
    };
    let mut v = std::mem::take(b).into_vec();
    v.remove(pos);
    *b = v.into_boxed_slice();
    true
}

/// Bytes an integer needs in an intset.
fn width_of(n: i64) -> usize {
    if i16::try_from(n).is_ok() {
        2
    } else if i32::try_from(n).is_ok() {
        4
    } else {
        8
    }
}

/// The members of `v` narrowed to `T` (all of them fit: the width was chosen so).
fn narrow<T: TryFrom<i64>>(v: &[i64]) -> impl Iterator<Item = T> + '_ {
    v.iter().filter_map(|&x| T::try_from(x).ok())
}

impl IntSet {
    /// An intset of the sorted distinct `v`, at least `min_width` bytes wide.
    fn from_sorted(v: &[i64], min_width: usize) -> IntSet {
        let width = v.iter().map(|&x| width_of(x)).fold(min_width, usize::max);
        match width {
            2 if v.len() <= INLINE16 => {
                let mut d = [0; INLINE16];
                for (slot, x) in d.iter_mut().zip(narrow(v)) {
                    *slot = x;
                }
                IntSet::In16(v.len() as u8, d)
            }
            2 | 4 if v.len() <= INLINE32 => {
                let mut d = [0; INLINE32];
                for (slot, x) in d.iter_mut().zip(narrow(v)) {
                    *slot = x;
                }
                IntSet::In32(v.len() as u8, d)
            }
            2 => IntSet::W16(narrow(v).collect()),
            4 => IntSet::W32(narrow(v).collect()),
            _ => IntSet::W64(v.into()),
        }
    }

    fn view(&self) -> View<'_> {
        match self {
            IntSet::In16(n, d) => View::S16(d.get(..usize::from(*n)).unwrap_or_default()),
            IntSet::In32(n, d) => View::S32(d.get(..usize::from(*n)).unwrap_or_default()),
            IntSet::W16(b) => View::S16(b),
            IntSet::W32(b) => View::S32(b),
            IntSet::W64(b) => View::S64(b),
        }
    }

    pub fn len(&self) -> usize {
        match self.view() {
            View::S16(s) => s.len(),
            View::S32(s) => s.len(),
            View::S64(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes per element.
    pub fn width(&self) -> usize {
        match self.view() {
            View::S16(_) => 2,
            View::S32(_) => 4,
            View::S64(_) => 8,
        }
    }

    /// Whether the members sit in the handle, with no block of their own.
    pub fn is_inline(&self) -> bool {
        matches!(self, IntSet::In16(..) | IntSet::In32(..))
    }

    /// The `k`-th smallest member.
    pub fn get(&self, k: usize) -> Option<i64> {
        match self.view() {
            View::S16(s) => s.get(k).map(|&x| x.into()),
            View::S32(s) => s.get(k).map(|&x| x.into()),
            View::S64(s) => s.get(k).copied(),
        }
    }

    pub fn contains(&self, n: i64) -> bool {
        match self.view() {
            View::S16(s) => find(s, n).is_ok(),
            View::S32(s) => find(s, n).is_ok(),
            View::S64(s) => find(s, n).is_ok(),
        }
    }

    fn to_vec(&self) -> Vec<i64> {
        (0..self.len()).filter_map(|k| self.get(k)).collect()
    }

    /// Adds `n`, widening first if `n` needs more bytes; false if present.
    pub fn insert(&mut self, n: i64) -> bool {
        if self.is_inline() || width_of(n) > self.width() {
            // A small rebuild: inline sets hold at most 10 members, and widening
            // copies every member anyway.
            let mut v = self.to_vec();
            let Err(pos) = v.binary_search(&n) else {
                return false;
            };
            v.insert(pos, n);
            *self = IntSet::from_sorted(&v, self.width());
            return true;
        }
        match self {
            IntSet::W16(b) => insert_sorted(b, n),
            IntSet::W32(b) => insert_sorted(b, n),
            IntSet::W64(b) => insert_sorted(b, n),
            IntSet::In16(..) | IntSet::In32(..) => false,
        }
    }

    pub fn remove(&mut self, n: i64) -> bool {
        match self {
            IntSet::W16(b) => remove_sorted(b, n),
            IntSet::W32(b) => remove_sorted(b, n),
            IntSet::W64(b) => remove_sorted(b, n),
            IntSet::In16(..) | IntSet::In32(..) => {
                let mut v = self.to_vec();
                let Ok(pos) = v.binary_search(&n) else {
                    return false;
                };
                v.remove(pos);
                *self = IntSet::from_sorted(&v, self.width());
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    fn shape(s: &Set) -> &'static str {
        match s {
            Set::Ints(_) => "ints",
            Set::Small(_) => "small",
            Set::Hash(_) => "hash",
        }
    }

    fn members(s: &Set) -> Vec<Vec<u8>> {
        s.iter().map(|m| m.to_bytes().to_vec()).collect()
    }

    #[test]
    fn sizes_stay_small() {
        assert_eq!(std::mem::size_of::<Set>(), 24);
        assert_eq!(std::mem::size_of::<super::super::Value>(), 16);
    }

    #[test]
    fn intset_is_ascending_and_widens_like_redis() {
        let mut s = Set::new();
        for m in ["5", "-3", "100", "0"] {
            assert!(s.insert(m.as_bytes(), 512));
        }
        let Set::Ints(i) = &s else { panic!("{s:?}") };
        assert_eq!((i.width(), i.is_inline()), (2, true));
        assert!(s.insert(b"70000", 512));
        let Set::Ints(i) = &s else { panic!("{s:?}") };
        assert_eq!(i.width(), 4);
        assert!(s.insert(b"-9000000000", 512));
        assert!(!s.insert(b"-9000000000", 512));
        let Set::Ints(i) = &s else { panic!("{s:?}") };
        assert_eq!(i.width(), 8);
        let got: Vec<Vec<u8>> = members(&s);
        let want: Vec<Vec<u8>> = ["-9000000000", "-3", "0", "5", "100", "70000"]
            .iter()
            .map(|x| x.as_bytes().to_vec())
            .collect();
        assert_eq!(got, want);
        // Removing the wide member does not narrow the block (Redis doesn't).
        assert!(s.remove(b"-9000000000"));
        let Set::Ints(i) = &s else { panic!("{s:?}") };
        assert_eq!(i.width(), 8);
        assert_eq!(s.encoding(), "intset");
    }

    #[test]
    fn small_intsets_stay_inline_until_they_outgrow_it() {
        let mut s = Set::new();
        for i in 0..INLINE16 as i64 {
            s.insert(i.to_string().as_bytes(), 512);
        }
        assert!(matches!(&s, Set::Ints(IntSet::In16(10, _))), "{s:?}");
        s.insert(b"10", 512);
        assert!(matches!(&s, Set::Ints(IntSet::W16(_))), "{s:?}");
        let mut s = Set::new();
        for m in ["1", "100000", "-3", "7", "8"] {
            s.insert(m.as_bytes(), 512);
        }
        assert!(matches!(&s, Set::Ints(IntSet::In32(5, _))), "{s:?}");
        s.insert(b"9", 512);
        assert!(matches!(&s, Set::Ints(IntSet::W32(_))), "{s:?}");
        s.insert(b"5000000000", 512);
        assert!(matches!(&s, Set::Ints(IntSet::W64(_))), "{s:?}");
        assert_eq!(members(&s).len(), 7);
        assert_eq!(
            s.ints().map(|i| i.collect::<Vec<_>>()).unwrap_or_default()[0],
            -3
        );
    }

    /// Random operations on few small integers cross the inline limits both ways.
    #[test]
    fn small_intsets_match_a_model() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut s = Set::new();
        let mut model = BTreeSet::new();
        for _ in 0..5000 {
            let n: i64 = match rng.gen_range(0..8) {
                0 => rng.gen_range(-70000..70000),
                1 => rng.gen(),
                _ => rng.gen_range(-8..8),
            };
            let m = n.to_string();
            if rng.gen_bool(0.5) {
                assert_eq!(s.insert(m.as_bytes(), 512), model.insert(n));
            } else {
                assert_eq!(s.remove(m.as_bytes()), model.remove(&n));
            }
            let got: Vec<i64> = s.ints().map(|i| i.collect()).unwrap_or_default();
            assert_eq!(got, model.iter().copied().collect::<Vec<_>>());
            if model.len() > 14 {
                s = Set::new();
                model.clear();
            }
        }
    }

    #[test]
    fn non_canonical_integers_are_strings() {
        for m in ["007", "+1", " 1", "1.0", "-0", "9223372036854775808", ""] {
            let mut s = Set::new();
            s.insert(b"1", 512);
            s.insert(m.as_bytes(), 512);
            assert_eq!(shape(&s), "small", "{m:?}");
            assert_eq!(s.encoding(), "hashtable");
            assert!(s.contains(m.as_bytes()) && s.contains(b"1"));
        }
        let mut s = Set::new();
        s.insert(b"-9223372036854775808", 512);
        s.insert(b"9223372036854775807", 512);
        assert_eq!(shape(&s), "ints");
    }

    #[test]
    fn conversions_follow_the_limits_and_never_go_back() {
        let mut s = Set::new();
        for i in 0..512 {
            s.insert(i.to_string().as_bytes(), 512);
        }
        assert_eq!(shape(&s), "ints");
        s.insert(b"512", 512);
        assert_eq!(shape(&s), "hash");
        for i in 0..400 {
            s.remove(i.to_string().as_bytes());
        }
        assert_eq!(shape(&s), "hash");

        let mut s = Set::new();
        for i in 0..20 {
            s.insert(i.to_string().as_bytes(), 10);
        }
        assert_eq!(shape(&s), "small", "past a lowered intset limit");

        let mut s = Set::new();
        for i in 0..SMALL_MAX_ENTRIES {
            s.insert(format!("m{i}").as_bytes(), 512);
        }
        assert_eq!(shape(&s), "small");
        s.insert(b"one more", 512);
        assert_eq!(shape(&s), "hash");

        let mut s = Set::new();
        s.insert(&[b'x'; SMALL_MAX_LEN], 512);
        assert_eq!(shape(&s), "small");
        s.insert(&[b'y'; SMALL_MAX_LEN + 1], 512);
        assert_eq!(shape(&s), "hash");
        assert_eq!(s.len(), 2);

        let mut s = Set::new();
        s.insert(b"1", 512);
        s.insert(&[b'y'; SMALL_MAX_LEN + 1], 512);
        assert_eq!(shape(&s), "hash");
        assert!(s.contains(b"1"));
    }

    /// Random operations against a BTreeSet model, in every shape and across the
    /// conversions.
    #[test]
    fn matches_a_model_over_random_operations() {
        let mut rng = StdRng::seed_from_u64(21);
        for round in 0..6 {
            let max_intset = [512, 16, 0, 512, 3, 100][round];
            let mut s = Set::new();
            let mut model: BTreeSet<Vec<u8>> = BTreeSet::new();
            for _ in 0..4000 {
                let m: Vec<u8> = match rng.gen_range(0..10) {
                    0..=5 => rng.gen_range(-300i64..300).to_string().into_bytes(),
                    6 => rng.gen::<i64>().to_string().into_bytes(),
                    7 if round % 2 == 1 => format!("s{}", rng.gen_range(0..200)).into_bytes(),
                    8 if round >= 3 => vec![b'z'; rng.gen_range(0..80)],
                    _ => rng.gen_range(-40000i64..40000).to_string().into_bytes(),
                };
                match rng.gen_range(0..3) {
                    0 | 1 => assert_eq!(s.insert(&m, max_intset), model.insert(m.clone())),
                    _ => assert_eq!(s.remove(&m), model.remove(&m)),
                }
                assert_eq!(s.len(), model.len());
                assert_eq!(s.contains(&m), model.contains(&m));
            }
            let mut got = members(&s);
            if matches!(s, Set::Ints(_)) {
                let ints: Vec<i64> = s.ints().map(|i| i.collect()).unwrap_or_default();
                assert!(ints.windows(2).all(|w| w[0] < w[1]), "intset ascending");
            }
            got.sort();
            assert_eq!(
                got,
                model.iter().cloned().collect::<Vec<_>>(),
                "round {round}"
            );
        }
    }

    /// The big shape's table alone, through several growths: seeded inserts (by
    /// bytes and by moved `Str`), removals and lookups against a `std` `HashSet`,
    /// with members inline (up to 14 bytes) and on the heap.
    #[test]
    fn the_table_matches_a_std_hash_set() {
        for seed in 0..3u64 {
            let mut rng = StdRng::seed_from_u64(0x5e7 + seed);
            let mut t = HashSetS::default();
            let mut model: std::collections::HashSet<Vec<u8>> = Default::default();
            let range = [50usize, 2000, 30000][seed as usize];
            for _ in 0..20_000 {
                let n = rng.gen_range(0..range);
                let m = if rng.gen_bool(0.5) {
                    format!("{n}").into_bytes()
                } else {
                    format!("element:{n:012}").into_bytes()
                };
                match rng.gen_range(0..10) {
                    0..=3 => assert_eq!(t.insert(&m), model.insert(m.clone())),
                    4..=5 => assert_eq!(t.insert_str(Str::new(&m)), model.insert(m.clone())),
                    6..=7 => assert_eq!(t.remove(&m), model.remove(&m)),
                    _ => {}
                }
                assert_eq!(t.contains(&m), model.contains(&m));
                assert_eq!(t.len(), model.len());
            }
            let got: std::collections::HashSet<Vec<u8>> =
                t.iter().map(|m| m.as_bytes().to_vec()).collect();
            assert_eq!(got, model);
            assert!(t.capacity() >= t.len());
        }
    }

    #[test]
    fn random_draws_are_uniform_in_every_shape() {
        let mut rng = StdRng::seed_from_u64(7);
        let shapes: [Vec<String>; 3] = [
            (0..10).map(|i| i.to_string()).collect(),
            (0..10).map(|i| format!("m{i}")).collect(),
            (0..10).map(|i| format!("{i}{}", "x".repeat(70))).collect(),
        ];
        for ms in shapes {
            let s = Set::from_members(ms.iter().map(|m| m.as_bytes()), 512);
            let mut counts = std::collections::HashMap::new();
            for _ in 0..20_000 {
                let m = s.random(&mut rng).map(|m| m.to_bytes());
                *counts.entry(m).or_insert(0u32) += 1;
            }
            assert_eq!(counts.len(), 10, "{}", shape(&s));
            // Expected 2000 each; 5 sigma is about 212.
            assert!(
                counts.values().all(|&c| (1750..2250).contains(&c)),
                "{counts:?}"
            );
        }
        assert!(Set::new().random(&mut rng).is_none());
    }
}
