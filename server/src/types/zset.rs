//! Sorted set: a member -> score map plus an ordered index of (score, member).

use bytes::Bytes;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

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

#[derive(Debug, Clone, Default)]
pub struct ZSet {
    scores: HashMap<Bytes, f64, super::Hasher>,
    /// Ordered by score, then member bytes, as Redis's skiplist.
    index: BTreeSet<(Score, Bytes)>,
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
            self.index.remove(&(Score(o), member.clone()));
        }
        self.index.insert((Score(score), member));
        old
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (m, s) = self.scores.remove_entry(member)?;
        self.index.remove(&(Score(s), m));
        Some(s)
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.index.iter().map(|(s, m)| (m, s.0))
    }

    /// Zero-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let s = self.score(member)?;
        let key = (Score(s), Bytes::copy_from_slice(member));
        Some(self.index.range(..key).count())
    }

    /// The ordered index, for range queries.
    pub fn index(&self) -> &BTreeSet<(Score, Bytes)> {
        &self.index
    }
}

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
        use std::ops::Bound;
        let empty = range.is_empty() || range.min.value.is_nan() || range.max.value.is_nan();
        // -0.0 sorts below 0.0 in total order, so it is a safe lower start for 0.
        let lo = if empty || range.min.value == f64::NEG_INFINITY {
            Bound::Unbounded
        } else {
            Bound::Included((Score(range.min.value), Bytes::new()))
        };
        let hi = if empty {
            Bound::Excluded((Score(f64::NEG_INFINITY), Bytes::new()))
        } else if range.max.value == f64::INFINITY {
            Bound::Unbounded
        } else {
            Bound::Excluded((Score(next_up(range.max.value)), Bytes::new()))
        };
        let lo = if empty {
            Bound::Included((Score(f64::NEG_INFINITY), Bytes::new()))
        } else {
            lo
        };
        self.index
            .range((lo, hi))
            .filter(move |(s, _)| !empty && range.contains(s.0))
            .map(|(s, m)| (m, s.0))
    }

    /// Members inside a lexicographic interval, in set order (meaningful when all
    /// scores are equal, as Redis documents).
    pub fn range_by_lex<'a>(
        &'a self,
        range: &'a LexRange,
    ) -> impl DoubleEndedIterator<Item = (&'a Bytes, f64)> + 'a {
        let empty = range.is_empty();
        self.index
            .iter()
            .filter(move |(_, m)| !empty && range.contains(m))
            .map(|(s, m)| (m, s.0))
    }

    /// Members at ascending ranks `start..=end` (already clamped to the set).
    pub fn range_by_rank(
        &self,
        start: usize,
        end: usize,
    ) -> impl Iterator<Item = (&Bytes, f64)> + '_ {
        let n = if end >= start { end - start + 1 } else { 0 };
        self.iter().skip(start).take(n)
    }

    /// Removes and returns up to `count` members from the low (`max == false`) or
    /// high end.
    pub fn pop(&mut self, count: usize, max: bool) -> Vec<(Bytes, f64)> {
        let mut out = Vec::with_capacity(count.min(self.len()));
        for _ in 0..count {
            let first = if max {
                self.index.pop_last()
            } else {
                self.index.pop_first()
            };
            let Some((s, m)) = first else { break };
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
        assert_eq!(z.range_by_lex(&r).count(), 2);
        let popped = z.pop(2, true);
        assert_eq!(popped[0].0, "c");
        assert_eq!(z.len(), 1);
    }
}
