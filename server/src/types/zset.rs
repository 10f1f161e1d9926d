//! Sorted set: one API over two shapes, a compact block for small sets and a
//! map plus a blocked ordered index for big ones (see [`ZSet`]).

mod big;
mod small;

use big::{Big, BigIter};
use bytes::Bytes;
use std::cmp::Ordering;

/// A score ordered totally (NaN never enters a sorted set).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    /// IEEE order, with -0.0 equal to 0.0 as in Redis's comparisons (a big set
    /// keeps a -0 score as given; the small shape stores it as 0, as a listpack
    /// does).
    fn cmp(&self, other: &Self) -> Ordering {
        if self.0 == other.0 {
            Ordering::Equal
        } else {
            self.0.total_cmp(&other.0)
        }
    }
}

/// Redis's listpack limits for sorted sets (`zset-max-listpack-entries`,
/// `zset-max-listpack-value`, `Limits::zset`): the small shape holds at most `entries`
/// members of at most `value` bytes each.
pub use super::Limits;

impl Limits {
    /// Whether `n` members, the longest `longest` bytes, fit the small shape.
    fn admit(&self, n: usize, longest: usize) -> bool {
        n <= self.entries && longest <= self.value && longest < u32::MAX as usize
    }
}

/// Largest small block, whatever the limits say (Redis's listpack safety size: a
/// listpack never grows past 1 GiB, the set converts instead).
const SMALL_MAX_BYTES: usize = 1 << 30;

/// A sorted set.
///
/// Two shapes, as in Redis 7.0. `Small` (Redis's listpack): every pair in one
/// exactly-sized block in (score, member) order, scanned linearly (layout in
/// `zset/small.rs`); used while the set is within [`Limits`]. `Big` (Redis's
/// skiplist, layout in `zset/big.rs`): O(1) ZSCORE and O(log n) updates. A write
/// that would take a small set past its limits converts it once, and it stays big
/// after shrinking (Redis never converts back); a set built whole
/// ([`ZSet::from_items`]: ZUNIONSTORE, GEOSEARCHSTORE, RDB load) takes the small
/// shape when its contents fit. OBJECT ENCODING and the RDB type follow the shape.
#[derive(Debug, Clone)]
pub struct ZSet(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Small(Box<[u8]>),
    Big(Box<Big>),
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet(Repr::Small(Box::default()))
    }
}

fn entries(buf: &[u8]) -> small::Entries<'_> {
    small::Entries { buf, off: 0 }
}

/// glibc's chunk for a request of `n` bytes (none for 0).
fn chunk(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 8).div_ceil(16).max(2) * 16
    }
}

/// Inserts an entry at its (score, member) position in a small block.
fn small_insert(buf: &mut Box<[u8]>, member: &[u8], score: f64) {
    let at = entries(buf)
        .find(|(_, m, s)| {
            Score(*s).cmp(&Score(score)).then_with(|| (*m).cmp(member)) != Ordering::Less
        })
        .map_or(buf.len(), |(at, _, _)| at);
    let mut v = std::mem::take(buf).into_vec();
    let add = small::encoded_len(member, score);
    v.reserve_exact(add);
    small::encode(&mut v, member, score);
    if let Some(tail) = v.get_mut(at..) {
        tail.rotate_right(add);
    }
    *buf = v.into_boxed_slice();
}

/// Moves the entry at `at` (scored `old`) to its place for `score`.
fn small_rescore(buf: &mut Box<[u8]>, at: usize, old: f64, member: &[u8], score: f64) {
    if old != score {
        let end = small::decode(buf, at).map_or(at, |e| e.2);
        small_cut(buf, at..end);
        small_insert(buf, member, score);
    }
}

/// Removes the bytes `range` from a small block.
fn small_cut(buf: &mut Box<[u8]>, range: std::ops::Range<usize>) {
    let mut v = std::mem::take(buf).into_vec();
    if range.end <= v.len() && range.start <= range.end {
        v.drain(range);
    }
    *buf = v.into_boxed_slice();
}

impl ZSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// A set built whole from `items` (later duplicates win): small when the pairs
    /// given fit `lim`, as Redis shapes the results of ZUNIONSTORE and RDB loads.
    pub fn from_items(mut items: Vec<(Bytes, f64)>, lim: Limits) -> Self {
        let longest = items.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        if !lim.admit(items.len(), longest) {
            let mut b = Big::default();
            for (m, s) in items {
                b.insert(m, s);
            }
            return ZSet(Repr::Big(Box::new(b)));
        }
        // Stable sort of the reversed input then dedup keeps each member's last pair.
        items.reverse();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items.dedup_by(|later, first| later.0 == first.0);
        items.sort_by(|a, b| Score(a.1).cmp(&Score(b.1)).then_with(|| a.0.cmp(&b.0)));
        let size: usize = items.iter().map(|(m, s)| small::encoded_len(m, *s)).sum();
        if size > SMALL_MAX_BYTES {
            return ZSet::from_items(items, Limits { entries: 0, ..lim });
        }
        let mut v = Vec::with_capacity(size);
        for (m, s) in &items {
            small::encode(&mut v, m, *s);
        }
        ZSet(Repr::Small(v.into_boxed_slice()))
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Small(buf) => entries(buf).count(),
            Repr::Big(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match &self.0 {
            Repr::Small(buf) => buf.is_empty(),
            Repr::Big(b) => b.len() == 0,
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.0 {
            Repr::Small(buf) => entries(buf).find(|(_, m, _)| *m == member).map(|e| e.2),
            Repr::Big(b) => b.score(member),
        }
    }

    /// Inserts or updates; returns the previous score. Adding a member to a small
    /// set converts it to the big shape first when the result would exceed `lim`
    /// (updating an existing member never converts, as in Redis).
    pub fn insert(&mut self, member: Bytes, score: f64, lim: Limits) -> Option<f64> {
        if let Repr::Small(buf) = &mut self.0 {
            let mut n = 0;
            let mut found = None;
            for (at, m, s) in entries(buf) {
                n += 1;
                if found.is_none() && m == &member[..] {
                    found = Some((at, s));
                }
            }
            match found {
                Some((at, old)) => {
                    small_rescore(buf, at, old, &member, score);
                    return Some(old);
                }
                None if lim.admit(n + 1, member.len())
                    && buf.len() + small::encoded_len(&member, score) <= SMALL_MAX_BYTES =>
                {
                    small_insert(buf, &member, score);
                    return None;
                }
                None => self.promote(),
            }
        }
        match &mut self.0 {
            Repr::Big(b) => b.insert(member, score),
            // `promote` just made it big.
            Repr::Small(_) => None,
        }
    }

    /// One element of a ZADD, looked up once: `decide` gets the member's current
    /// score (None when absent) and returns the score to store, or None to leave
    /// the set as it is. An existing member is borrowed, so moving it copies
    /// nothing; `own` makes the stored copy of a new one. Adding may convert the
    /// shape as [`ZSet::insert`] does; an update never converts.
    pub fn add_with(
        &mut self,
        member: &[u8],
        own: impl FnOnce() -> Bytes,
        lim: Limits,
        decide: impl FnOnce(Option<f64>) -> Option<f64>,
    ) {
        let buf = match &mut self.0 {
            Repr::Big(b) => return b.add_with(member, own, decide),
            Repr::Small(buf) => buf,
        };
        let found = entries(buf)
            .find(|(_, m, _)| *m == member)
            .map(|(at, _, s)| (at, s));
        match (found, decide(found.map(|f| f.1))) {
            (_, None) => {}
            (Some((at, old)), Some(new)) => small_rescore(buf, at, old, member, new),
            (None, Some(new)) => {
                self.insert(own(), new, lim);
            }
        }
    }

    /// Converts a small set to the big shape (once; a big set stays big).
    fn promote(&mut self) {
        if let Repr::Small(buf) = &self.0 {
            let mut b = Big::default();
            for (_, m, s) in entries(buf) {
                b.insert(Bytes::copy_from_slice(m), s);
            }
            self.0 = Repr::Big(Box::new(b));
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.0 {
            Repr::Small(buf) => {
                let (at, s) = entries(buf)
                    .find(|(_, m, _)| *m == member)
                    .map(|(at, _, s)| (at, s))?;
                let end = small::decode(buf, at).map_or(at, |e| e.2);
                small_cut(buf, at..end);
                Some(s)
            }
            Repr::Big(b) => b.remove(member),
        }
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::Small(buf) => Iter::small(entries(buf).map(|(_, m, s)| (m, s)).collect()),
            Repr::Big(b) => Iter(IterRepr::Big(b.iter())),
        }
    }

    /// Zero-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.0 {
            Repr::Small(buf) => entries(buf).position(|(_, m, _)| m == member),
            Repr::Big(b) => b.rank(member),
        }
    }

    /// Whether the set is in the small shape (Redis's listpack).
    pub fn is_compact(&self) -> bool {
        matches!(self.0, Repr::Small(_))
    }

    /// The encoding OBJECT ENCODING reports: the shape's Redis name.
    pub fn encoding(&self) -> &'static str {
        if self.is_compact() {
            "listpack"
        } else {
            "skiplist"
        }
    }

    /// Heap bytes a boxed set holds (`Value::ZSet`'s box and all it owns), in malloc
    /// chunks, for MEMORY USAGE.
    pub fn heap_bytes(&self) -> usize {
        let own = chunk(std::mem::size_of::<Self>());
        match &self.0 {
            Repr::Small(buf) => own + chunk(buf.len()),
            Repr::Big(b) => own + b.heap_bytes(),
        }
    }
}

/// Ordered iterator over a [`ZSet`] (both directions, exact size). A small set's
/// span is decoded up front (at most `zset-max-listpack-entries` pairs).
#[derive(Debug, Clone)]
pub struct Iter<'a>(IterRepr<'a>);

#[derive(Debug, Clone)]
enum IterRepr<'a> {
    Small(std::vec::IntoIter<(&'a [u8], f64)>),
    Big(BigIter<'a>),
}

impl<'a> Iter<'a> {
    fn small(v: Vec<(&'a [u8], f64)>) -> Self {
        Iter(IterRepr::Small(v.into_iter()))
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Small(it) => it.next(),
            IterRepr::Big(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.0 {
            IterRepr::Small(it) => it.size_hint(),
            IterRepr::Big(it) => it.size_hint(),
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Small(it) => it.next_back(),
            IterRepr::Big(it) => it.next_back(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// One end of a score interval (`ZRANGEBYSCORE` syntax: `1.5`, `(1.5`, `-inf`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

/// A score interval; [`ScoreRange::contains`] says whether a score falls inside.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    pub min: ScoreBound,
    pub max: ScoreBound,
}

impl ScoreRange {
    pub fn above_min(&self, s: f64) -> bool {
        if self.min.exclusive {
            s > self.min.value
        } else {
            s >= self.min.value
        }
    }

    pub fn below_max(&self, s: f64) -> bool {
        if self.max.exclusive {
            s < self.max.value
        } else {
            s <= self.max.value
        }
    }

    pub fn contains(&self, s: f64) -> bool {
        self.above_min(s) && self.below_max(s)
    }

    /// True when no score can satisfy the interval (Redis checks this up front).
    pub fn is_empty(&self) -> bool {
        self.min.value > self.max.value
            || (self.min.value == self.max.value && (self.min.exclusive || self.max.exclusive))
    }
}

/// One end of a lexicographic interval (`ZRANGEBYLEX` syntax: `-`, `+`, `[a`, `(a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    NegInf,
    PosInf,
    Incl(Bytes),
    Excl(Bytes),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LexRange {
    pub min: LexBound,
    pub max: LexBound,
}

impl LexRange {
    pub fn above_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::NegInf => true,
            LexBound::PosInf => false,
            LexBound::Incl(b) => m >= &b[..],
            LexBound::Excl(b) => m > &b[..],
        }
    }

    pub fn below_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(b) => m <= &b[..],
            LexBound::Excl(b) => m < &b[..],
        }
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        self.above_min(m) && self.below_max(m)
    }

    /// True when no member can satisfy the interval.
    pub fn is_empty(&self) -> bool {
        match (&self.min, &self.max) {
            (LexBound::PosInf, _) | (_, LexBound::NegInf) => true,
            (LexBound::NegInf, _) | (_, LexBound::PosInf) => false,
            (LexBound::Incl(a), LexBound::Incl(b)) => a > b,
            (LexBound::Incl(a) | LexBound::Excl(a), LexBound::Incl(b) | LexBound::Excl(b)) => {
                a >= b
            }
        }
    }
}

/// The smallest f64 strictly greater than `x` (finite, non-NaN `x`).
fn next_up(x: f64) -> f64 {
    if x == 0.0 {
        return f64::from_bits(1);
    }
    let bits = x.to_bits();
    if x > 0.0 {
        f64::from_bits(bits + 1)
    } else {
        f64::from_bits(bits - 1)
    }
}

impl ZSet {
    /// Members whose score lies in `range`, ascending (reverse the iterator for
    /// descending). Starts from the position of the lower bound, so only the
    /// matching part of the set is walked.
    pub fn range_by_score(
        &self,
        range: ScoreRange,
    ) -> impl DoubleEndedIterator<Item = (&[u8], f64)> + '_ {
        let empty = range.is_empty() || range.min.value.is_nan() || range.max.value.is_nan();
        let span = match &self.0 {
            _ if empty => Iter::small(Vec::new()),
            Repr::Small(buf) => Iter::small(
                entries(buf)
                    .skip_while(|(_, _, s)| !range.above_min(*s))
                    .take_while(|(_, _, s)| range.below_max(*s))
                    .map(|(_, m, s)| (m, s))
                    .collect(),
            ),
            // The span starts at the first element scored at or above min and ends
            // before the first above max; the filter below applies the exclusive
            // comparisons.
            Repr::Big(b) => {
                let hi = (range.max.value != f64::INFINITY).then(|| next_up(range.max.value));
                Iter(IterRepr::Big(b.score_span(range.min.value, hi)))
            }
        };
        span.filter(move |(_, s)| range.contains(*s))
    }

    /// The members a lexicographic range selects, as an ascending span (reverse it
    /// for the REV forms). Lex ranges are meant for sets whose scores are all equal;
    /// for mixed scores this follows Redis's listpack walk: the range is first
    /// checked against the two ends, then the span starts at the first member (from
    /// the head, or from the tail when `rev`) inside the near bound and runs while
    /// members stay inside the far bound.
    pub fn lex_span(&self, range: &LexRange, rev: bool) -> Iter<'_> {
        let none = Iter::small(Vec::new());
        if range.is_empty() {
            return none;
        }
        let (Some((first, _)), Some((last, _))) = (self.iter().next(), self.iter().next_back())
        else {
            return none;
        };
        if !range.above_min(last) || !range.below_max(first) {
            return none;
        }
        let n = self.len();
        if !rev {
            let Some(start) = self.iter().position(|(m, _)| range.above_min(m)) else {
                return none;
            };
            let len = self
                .range_by_rank(start, n - 1)
                .take_while(|(m, _)| range.below_max(m))
                .count();
            if len == 0 {
                return none;
            }
            self.range_by_rank(start, start + len - 1)
        } else {
            let Some(from_end) = self.iter().rev().position(|(m, _)| range.below_max(m)) else {
                return none;
            };
            let end = n - 1 - from_end;
            let len = self
                .range_by_rank(0, end)
                .rev()
                .take_while(|(m, _)| range.above_min(m))
                .count();
            if len == 0 {
                return none;
            }
            self.range_by_rank(end + 1 - len, end)
        }
    }

    /// Members at ascending ranks `start..=end` (clamped to the set).
    pub fn range_by_rank(&self, start: usize, end: usize) -> Iter<'_> {
        let n = self.len();
        if end < start || start >= n {
            return Iter::small(Vec::new());
        }
        let end = end.min(n - 1);
        match &self.0 {
            Repr::Small(buf) => Iter::small(
                entries(buf)
                    .skip(start)
                    .take(end - start + 1)
                    .map(|(_, m, s)| (m, s))
                    .collect(),
            ),
            Repr::Big(b) => Iter(IterRepr::Big(b.range_by_rank(start, end))),
        }
    }

    /// Removes and returns up to `count` members from the low (`max == false`) or
    /// high end, in the order popped.
    pub fn pop(&mut self, count: usize, max: bool) -> Vec<(Bytes, f64)> {
        let buf = match &mut self.0 {
            Repr::Big(b) => return b.pop(count, max),
            Repr::Small(buf) => buf,
        };
        let all: Vec<(usize, &[u8], f64)> = entries(buf).collect();
        let k = count.min(all.len());
        let owned = |e: &(usize, &[u8], f64)| (Bytes::copy_from_slice(e.1), e.2);
        let (out, cut) = if max {
            let from = all.len() - k;
            let at = all.get(from).map_or(buf.len(), |e| e.0);
            (all[from..].iter().rev().map(owned).collect(), at..buf.len())
        } else {
            let to = all.get(k).map_or(buf.len(), |e| e.0);
            (all[..k].iter().map(owned).collect(), 0..to)
        };
        small_cut(buf, cut);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zs(items: &[(&str, f64)]) -> ZSet {
        let mut z = ZSet::new();
        for (m, s) in items {
            z.insert(Bytes::copy_from_slice(m.as_bytes()), *s, Limits::ZSET);
        }
        z
    }

    fn incl(v: f64) -> ScoreBound {
        ScoreBound {
            value: v,
            exclusive: false,
        }
    }

    fn excl(v: f64) -> ScoreBound {
        ScoreBound {
            value: v,
            exclusive: true,
        }
    }

    #[test]
    fn orders_by_score_then_member_and_ranks() {
        let z = zs(&[("b", 1.0), ("a", 1.0), ("c", 0.5)]);
        let names: Vec<_> = z.iter().map(|(m, _)| Bytes::copy_from_slice(m)).collect();
        assert_eq!(names, vec!["c", "a", "b"]);
        assert_eq!(z.rank(b"b"), Some(2));
        assert_eq!(z.rank(b"zz"), None);
    }

    #[test]
    fn score_ranges_honour_exclusive_bounds_and_infinities() {
        let z = zs(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", f64::INFINITY)]);
        let r = ScoreRange {
            min: excl(1.0),
            max: incl(3.0),
        };
        let got: Vec<_> = z
            .range_by_score(r)
            .map(|(m, _)| Bytes::copy_from_slice(m))
            .collect();
        assert_eq!(got, vec!["b", "c"]);
        let r = ScoreRange {
            min: incl(2.0),
            max: incl(f64::INFINITY),
        };
        let got: Vec<_> = z
            .range_by_score(r)
            .rev()
            .map(|(m, _)| Bytes::copy_from_slice(m))
            .collect();
        assert_eq!(got, vec!["d", "c", "b"]);
        let r = ScoreRange {
            min: excl(2.0),
            max: excl(2.0),
        };
        assert_eq!(z.range_by_score(r).count(), 0);
    }

    #[test]
    fn negative_zero_is_stored_as_zero() {
        let mut z = ZSet::new();
        z.insert(Bytes::from_static(b"a"), -0.0, Limits::ZSET);
        assert!(z.score(b"a").is_some_and(|s| s.is_sign_positive()));
        let r = ScoreRange {
            min: incl(-0.0),
            max: incl(-0.0),
        };
        assert_eq!(z.range_by_score(r).count(), 1);
    }

    #[test]
    fn lex_ranges_and_pop() {
        let mut z = zs(&[("a", 0.0), ("b", 0.0), ("c", 0.0)]);
        let r = LexRange {
            min: LexBound::Excl(Bytes::from_static(b"a")),
            max: LexBound::PosInf,
        };
        assert_eq!(z.lex_span(&r, false).count(), 2);
        assert_eq!(z.lex_span(&r, true).count(), 2);
        let popped = z.pop(2, true);
        assert_eq!(popped[0].0, "c");
        assert_eq!(z.len(), 1);
    }

    fn lim(entries: usize, value: usize) -> Limits {
        Limits { entries, value }
    }

    #[test]
    fn a_small_set_is_one_exact_block_behind_a_small_handle() {
        assert!(std::mem::size_of::<ZSet>() <= 24);
        let mut z = ZSet::new();
        assert_eq!(z.heap_bytes(), 32, "an empty set owns no block");
        z.insert(Bytes::from_static(b"ma:0000001"), 1.0, Limits::ZSET);
        z.insert(Bytes::from_static(b"mb:0000001"), 2.0, Limits::ZSET);
        assert!(z.is_compact());
        // The 32-byte chunk of the box plus one 32-byte chunk of 24 bytes of pairs.
        assert_eq!(z.heap_bytes(), 64);
    }

    #[test]
    fn converts_once_past_either_limit_and_never_back() {
        let mut z = ZSet::new();
        for i in 0..3 {
            assert_eq!(z.insert(Bytes::from(format!("m{i}")), 1.0, lim(3, 4)), None);
        }
        assert!(z.is_compact());
        // Updating (even to a new score) never converts.
        assert_eq!(
            z.insert(Bytes::from_static(b"m1"), 7.5, lim(0, 0)),
            Some(1.0)
        );
        assert!(z.is_compact());
        assert_eq!(z.rank(b"m1"), Some(2));
        z.insert(Bytes::from_static(b"m3"), 0.0, lim(3, 4));
        assert!(!z.is_compact(), "a fourth member crosses entries = 3");
        for m in [&b"m0"[..], b"m1", b"m2"] {
            z.remove(m);
        }
        assert!(!z.is_compact());
        let mut z = ZSet::new();
        z.insert(Bytes::from_static(b"abcd"), 1.0, lim(3, 4));
        assert!(z.is_compact());
        z.insert(Bytes::from_static(b"abcde"), 2.0, lim(3, 4));
        assert!(!z.is_compact(), "a 5-byte member crosses value = 4");
        let got: Vec<_> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
        assert_eq!(got, vec![(b"abcd".to_vec(), 1.0), (b"abcde".to_vec(), 2.0)]);
    }

    #[test]
    fn sets_built_whole_are_shaped_by_contents_and_later_duplicates_win() {
        let items = |v: &[(&'static str, f64)]| {
            v.iter()
                .map(|(m, s)| (Bytes::from_static(m.as_bytes()), *s))
                .collect::<Vec<_>>()
        };
        let input = items(&[("b", 2.0), ("a", 5.0), ("b", -1.0), ("c", 0.5)]);
        // The shape is chosen from the pairs given (a duplicate counts).
        for (l, compact) in [(lim(4, 1), true), (lim(3, 1), false), (lim(4, 0), false)] {
            let z = ZSet::from_items(input.clone(), l);
            assert_eq!(z.is_compact(), compact, "{l:?}");
            let got: Vec<_> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
            assert_eq!(
                got,
                vec![
                    (b"b".to_vec(), -1.0),
                    (b"c".to_vec(), 0.5),
                    (b"a".to_vec(), 5.0)
                ]
            );
        }
        assert!(ZSet::from_items(Vec::new(), Limits::ZSET).is_empty());
    }

    #[test]
    fn negative_zero_equals_zero_and_stays_in_the_big_shape_only() {
        let mut small = ZSet::new();
        small.insert(Bytes::from_static(b"x"), -0.0, Limits::ZSET);
        small.insert(Bytes::from_static(b"a"), 0.0, Limits::ZSET);
        let mut big = ZSet::new();
        big.insert(Bytes::from_static(b"x"), -0.0, lim(0, 0));
        big.insert(Bytes::from_static(b"a"), 0.0, lim(0, 0));
        for z in [&small, &big] {
            let order: Vec<_> = z.iter().map(|(m, _)| m.to_vec()).collect();
            assert_eq!(order, vec![b"a".to_vec(), b"x".to_vec()], "ties by member");
        }
        assert!(small.score(b"x").is_some_and(|s| s.is_sign_positive()));
        assert!(big.score(b"x").is_some_and(|s| s.is_sign_negative()));
    }

    #[test]
    fn pops_take_from_either_end_of_the_small_shape() {
        let mut z = zs(&[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]);
        let got = z.pop(2, true);
        assert_eq!(got, vec![(Bytes::from("d"), 4.0), (Bytes::from("c"), 3.0)]);
        let got = z.pop(5, false);
        assert_eq!(got, vec![(Bytes::from("a"), 1.0), (Bytes::from("b"), 2.0)]);
        assert!(z.is_empty() && z.is_compact());
    }

    /// Drives many inserts, updates, removals and pops through both shapes (small
    /// only, big from the start, and small converting to big at Redis's default
    /// limits) and checks scores, order, ranks and ranges against a plain model.
    #[test]
    fn both_shapes_match_a_sorted_model() {
        let small_only = Limits {
            entries: usize::MAX,
            value: 64,
        };
        let big_only = Limits {
            entries: 0,
            value: 64,
        };
        for (lim, compact_at_end) in [
            (small_only, Some(true)),
            (big_only, Some(false)),
            (Limits::ZSET, None),
        ] {
            model_run(lim, compact_at_end);
        }
    }

    fn model_run(lim: Limits, compact_at_end: Option<bool>) {
        use std::collections::BTreeMap;
        let mut z = ZSet::new();
        let mut was_big = false;
        let mut model: BTreeMap<Bytes, f64> = BTreeMap::new();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..6000 {
            let r = next();
            let member = Bytes::from(format!("m{}", r % 900));
            match r % 10 {
                0..=5 => {
                    // Integral, fractional and infinite scores: every score width.
                    let score = match (r >> 40) % 8 {
                        0 => ((r >> 20) % 50) as f64 / 4.0 - 6.0,
                        1 => ((r >> 20) % 70_000) as f64 - 35_000.0,
                        2 => f64::INFINITY,
                        _ => ((r >> 20) % 50) as f64 - 25.0,
                    };
                    let old = z.insert(member.clone(), score, lim);
                    assert_eq!(old, model.insert(member, score));
                }
                6 | 7 => {
                    assert_eq!(z.remove(&member), model.remove(&member));
                }
                _ => {
                    let max = r % 2 == 0;
                    let popped = z.pop(((r >> 8) % 4) as usize, max);
                    for (m, s) in popped {
                        assert_eq!(model.remove(&m), Some(s));
                    }
                }
            }
            was_big |= !z.is_compact();
            assert!(!(was_big && z.is_compact()), "a big set never turns small");
            if round % 97 != 0 {
                continue;
            }
            assert_eq!(z.len(), model.len());
            for (m, s) in &model {
                assert_eq!(z.score(m), Some(*s));
            }
            let mut sorted: Vec<(Bytes, f64)> = model
                .iter()
                .map(|(m, s)| (Bytes::copy_from_slice(m), *s))
                .collect();
            sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            let got: Vec<(Bytes, f64)> = z
                .iter()
                .map(|(m, s)| (Bytes::copy_from_slice(m), s))
                .collect();
            assert_eq!(got, sorted);
            let back: Vec<(Bytes, f64)> = z
                .iter()
                .rev()
                .map(|(m, s)| (Bytes::copy_from_slice(m), s))
                .collect();
            assert_eq!(back.len(), sorted.len());
            assert!(back.iter().rev().eq(sorted.iter()));
            for (i, (m, _)) in sorted.iter().enumerate().step_by(7) {
                assert_eq!(z.rank(m), Some(i));
                assert_eq!(
                    z.range_by_rank(i, i)
                        .next()
                        .map(|(m, _)| Bytes::copy_from_slice(m)),
                    Some(Bytes::copy_from_slice(m))
                );
            }
            if sorted.len() > 10 {
                let window: Vec<_> = z
                    .range_by_rank(3, 9)
                    .map(|(m, _)| Bytes::copy_from_slice(m))
                    .collect();
                let want: Vec<_> = sorted[3..=9]
                    .iter()
                    .map(|(m, _)| Bytes::copy_from_slice(m))
                    .collect();
                assert_eq!(window, want);
            }
            let r = ScoreRange {
                min: excl(-3.0),
                max: incl(7.0),
            };
            let got: Vec<_> = z
                .range_by_score(r)
                .rev()
                .map(|(m, _)| Bytes::copy_from_slice(m))
                .collect();
            let want: Vec<_> = sorted
                .iter()
                .rev()
                .filter(|(_, s)| *s > -3.0 && *s <= 7.0)
                .map(|(m, _)| Bytes::copy_from_slice(m))
                .collect();
            assert_eq!(got, want);
        }
        assert_eq!(z.len(), model.len());
        if let Some(c) = compact_at_end {
            assert_eq!(z.is_compact(), c);
        } else {
            assert!(was_big, "the default limits were crossed");
        }
    }
}
