//! Sorted set: a member -> score map plus an ordered index of (score, member)
//! kept in sorted blocks (see [`ZSet`]).

use bytes::Bytes;
use std::cmp::Ordering;
use std::collections::HashMap;

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
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Elements per block after a split; a block splits when it reaches twice this.
const BLOCK: usize = 128;

type Item = (Score, Bytes);

/// A sorted set.
///
/// Layout: `scores` answers ZSCORE in O(1); the order lives in `blocks`, a list of
/// sorted, non-empty vectors whose concatenation is the whole set in (score, member)
/// order (Redis's skiplist order). Finding a position is two binary searches;
/// insert/remove shift at most `2 * BLOCK` elements; a rank is the sum of the block
/// lengths before the position, so ZRANK / ZRANGE by index cost O(n / BLOCK) small
/// additions instead of walking n elements, while memory stays close to a flat array.
#[derive(Debug, Clone, Default)]
pub struct ZSet {
    scores: HashMap<Bytes, f64, super::Hasher>,
    blocks: Vec<Vec<Item>>,
}

/// A position in `blocks`: (block, offset). `(blocks.len(), 0)` is the end.
type Pos = (usize, usize);

fn cmp_key(e: &Item, s: Score, m: &[u8]) -> Ordering {
    e.0.cmp(&s).then_with(|| e.1[..].cmp(m))
}

impl ZSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Inserts or updates; returns the previous score.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        // Normalise -0.0 so ordering and equality agree with Redis.
        let score = if score == 0.0 { 0.0 } else { score };
        let old = self.scores.insert(member.clone(), score);
        if let Some(o) = old {
            self.unlink(Score(o), &member);
        }
        self.link(Score(score), member);
        old
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (m, s) = self.scores.remove_entry(member)?;
        self.unlink(Score(s), &m);
        Some(s)
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> Iter<'_> {
        self.between((0, 0), (self.blocks.len(), 0), self.len())
    }

    /// Zero-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let s = self.score(member)?;
        let pos = self.lower_bound(Score(s), member);
        Some(self.index_of(pos))
    }

    /// The encoding OBJECT ENCODING reports and an RDB writer would choose, from the
    /// current contents: Redis keeps small sets (at most `max_entries` members, each
    /// at most `max_value` bytes) as a listpack. Redis never converts a skiplist back
    /// on deletion; this reports what the set qualifies for now.
    pub fn encoding(&self, max_entries: usize, max_value: usize) -> &'static str {
        if self.len() <= max_entries && self.scores.keys().all(|m| m.len() <= max_value) {
            "listpack"
        } else {
            "skiplist"
        }
    }

    /// First position whose element is >= (s, m).
    fn lower_bound(&self, s: Score, m: &[u8]) -> Pos {
        let bi = self.blocks.partition_point(|b| {
            b.last()
                .is_none_or(|last| cmp_key(last, s, m) == Ordering::Less)
        });
        match self.blocks.get(bi) {
            None => (self.blocks.len(), 0),
            Some(b) => (
                bi,
                b.partition_point(|e| cmp_key(e, s, m) == Ordering::Less),
            ),
        }
    }

    /// Global index of a position.
    fn index_of(&self, pos: Pos) -> usize {
        self.blocks[..pos.0].iter().map(Vec::len).sum::<usize>() + pos.1
    }

    /// Position of the element at global index `i` (the end if `i >= len`).
    fn pos_of(&self, mut i: usize) -> Pos {
        for (bi, b) in self.blocks.iter().enumerate() {
            if i < b.len() {
                return (bi, i);
            }
            i -= b.len();
        }
        (self.blocks.len(), 0)
    }

    fn link(&mut self, s: Score, m: Bytes) {
        let (mut bi, mut off) = self.lower_bound(s, &m);
        if self.blocks.is_empty() {
            self.blocks.push(Vec::with_capacity(4));
        }
        if bi == self.blocks.len() {
            bi -= 1;
            off = self.blocks[bi].len();
        }
        let b = &mut self.blocks[bi];
        b.insert(off, (s, m));
        if b.len() >= 2 * BLOCK {
            let tail = b.split_off(BLOCK);
            self.blocks.insert(bi + 1, tail);
        }
    }

    fn unlink(&mut self, s: Score, m: &[u8]) {
        let (bi, off) = self.lower_bound(s, m);
        let Some(b) = self.blocks.get_mut(bi) else {
            return;
        };
        if b.get(off).is_some_and(|e| e.0 == s && e.1[..] == *m) {
            b.remove(off);
            if b.is_empty() {
                self.blocks.remove(bi);
            }
        }
    }

    /// Iterator over `[from, to)` holding `n` elements.
    fn between(&self, from: Pos, to: Pos, n: usize) -> Iter<'_> {
        Iter {
            blocks: &self.blocks,
            front: from,
            back: to,
            remaining: n,
        }
    }
}

/// Ordered iterator over a [`ZSet`] (both directions, exact size).
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    blocks: &'a [Vec<Item>],
    front: Pos,
    /// Exclusive end.
    back: Pos,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Bytes, f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let b = self.blocks.get(self.front.0)?;
        let (s, m) = b.get(self.front.1)?;
        self.front.1 += 1;
        if self.front.1 == b.len() {
            self.front = (self.front.0 + 1, 0);
        }
        self.remaining -= 1;
        Some((m, s.0))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        if self.back.1 == 0 {
            let bi = self.back.0.checked_sub(1)?;
            self.back = (bi, self.blocks.get(bi)?.len());
        }
        self.back.1 -= 1;
        let (s, m) = self.blocks.get(self.back.0)?.get(self.back.1)?;
        self.remaining -= 1;
        Some((m, s.0))
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
    /// descending). Starts from the index position of the lower bound, so only the
    /// matching part of the set is walked.
    pub fn range_by_score(
        &self,
        range: ScoreRange,
    ) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> + '_ {
        let empty = range.is_empty() || range.min.value.is_nan() || range.max.value.is_nan();
        let (from, to) = if empty {
            ((0, 0), (0, 0))
        } else {
            // -0.0 sorts below 0.0 in total order, so it is a safe lower start for 0;
            // the filter below applies the exact (and exclusive) comparisons.
            let from = self.lower_bound(Score(range.min.value), b"");
            let to = if range.max.value == f64::INFINITY {
                (self.blocks.len(), 0)
            } else {
                self.lower_bound(Score(next_up(range.max.value)), b"")
            };
            (from, to)
        };
        let n = if empty {
            0
        } else {
            self.index_of(to).saturating_sub(self.index_of(from))
        };
        self.between(from, to, n)
            .filter(move |(_, s)| range.contains(*s))
    }

    /// The members a lexicographic range selects, as an ascending span (reverse it
    /// for the REV forms). Lex ranges are meant for sets whose scores are all equal;
    /// for mixed scores this follows Redis's listpack walk: the range is first
    /// checked against the two ends, then the span starts at the first member (from
    /// the head, or from the tail when `rev`) inside the near bound and runs while
    /// members stay inside the far bound.
    pub fn lex_span(&self, range: &LexRange, rev: bool) -> Iter<'_> {
        let none = self.between((0, 0), (0, 0), 0);
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

    /// Members at ascending ranks `start..=end` (already clamped to the set).
    pub fn range_by_rank(&self, start: usize, end: usize) -> Iter<'_> {
        if end < start || start >= self.len() {
            return self.between((0, 0), (0, 0), 0);
        }
        let end = end.min(self.len() - 1);
        self.between(self.pos_of(start), self.pos_of(end + 1), end - start + 1)
    }

    /// Removes and returns up to `count` members from the low (`max == false`) or
    /// high end.
    pub fn pop(&mut self, count: usize, max: bool) -> Vec<(Bytes, f64)> {
        let mut out = Vec::with_capacity(count.min(self.len()));
        while out.len() < count {
            let bi = if max {
                match self.blocks.len().checked_sub(1) {
                    Some(i) => i,
                    None => break,
                }
            } else {
                0
            };
            let Some(b) = self.blocks.get_mut(bi) else {
                break;
            };
            let item = if max || b.is_empty() {
                b.pop()
            } else {
                Some(b.remove(0))
            };
            if b.is_empty() {
                self.blocks.remove(bi);
            }
            let Some((s, m)) = item else { break };
            self.scores.remove(&m);
            out.push((m, s.0));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zs(items: &[(&str, f64)]) -> ZSet {
        let mut z = ZSet::new();
        for (m, s) in items {
            z.insert(Bytes::copy_from_slice(m.as_bytes()), *s);
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
        let names: Vec<_> = z.iter().map(|(m, _)| m.clone()).collect();
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
        let got: Vec<_> = z.range_by_score(r).map(|(m, _)| m.clone()).collect();
        assert_eq!(got, vec!["b", "c"]);
        let r = ScoreRange {
            min: incl(2.0),
            max: incl(f64::INFINITY),
        };
        let got: Vec<_> = z.range_by_score(r).rev().map(|(m, _)| m.clone()).collect();
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
        z.insert(Bytes::from_static(b"a"), -0.0);
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

    /// Drives many inserts, updates, removals and pops through the blocked layout
    /// and checks order, ranks and ranges against a plain sorted model.
    #[test]
    fn blocked_layout_matches_a_sorted_model() {
        use std::collections::BTreeMap;
        let mut z = ZSet::new();
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
                    let score = ((r >> 20) % 50) as f64 - 25.0;
                    z.insert(member.clone(), score);
                    model.insert(member, score);
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
            if round % 500 != 0 {
                continue;
            }
            let mut sorted: Vec<(Bytes, f64)> =
                model.iter().map(|(m, s)| (m.clone(), *s)).collect();
            sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            let got: Vec<(Bytes, f64)> = z.iter().map(|(m, s)| (m.clone(), s)).collect();
            assert_eq!(got, sorted);
            let back: Vec<(Bytes, f64)> = z.iter().rev().map(|(m, s)| (m.clone(), s)).collect();
            assert_eq!(back.len(), sorted.len());
            assert!(back.iter().rev().eq(sorted.iter()));
            for (i, (m, _)) in sorted.iter().enumerate().step_by(7) {
                assert_eq!(z.rank(m), Some(i));
                assert_eq!(
                    z.range_by_rank(i, i).next().map(|(m, _)| m.clone()),
                    Some(m.clone())
                );
            }
            if sorted.len() > 10 {
                let window: Vec<_> = z.range_by_rank(3, 9).map(|(m, _)| m.clone()).collect();
                let want: Vec<_> = sorted[3..=9].iter().map(|(m, _)| m.clone()).collect();
                assert_eq!(window, want);
            }
            let r = ScoreRange {
                min: excl(-3.0),
                max: incl(7.0),
            };
            let got: Vec<_> = z.range_by_score(r).rev().map(|(m, _)| m.clone()).collect();
            let want: Vec<_> = sorted
                .iter()
                .rev()
                .filter(|(_, s)| *s > -3.0 && *s <= 7.0)
                .map(|(m, _)| m.clone())
                .collect();
            assert_eq!(got, want);
        }
        assert_eq!(z.len(), model.len());
    }
}
