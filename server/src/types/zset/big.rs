//! The big shape of a sorted set (Redis's "skiplist" encoding): a member -> score
//! map plus an ordered index of (score, member) kept in sorted blocks.

use super::Score;
use bytes::Bytes;
use std::cmp::Ordering;
use std::collections::HashMap;

/// Elements per block after a split; a block splits when it reaches twice this.
const BLOCK: usize = 128;

type Item = (Score, Bytes);

/// Layout: `scores` answers ZSCORE in O(1); the order lives in `blocks`, a list of
/// sorted, non-empty vectors whose concatenation is the whole set in (score, member)
/// order (Redis's skiplist order). Finding a position is two binary searches;
/// insert/remove shift at most `2 * BLOCK` elements; a rank is the sum of the block
/// lengths before the position, so ZRANK / ZRANGE by index cost O(n / BLOCK) small
/// additions instead of walking n elements, while memory stays close to a flat array.
#[derive(Debug, Clone, Default)]
pub(super) struct Big {
    scores: HashMap<Bytes, f64, crate::types::Hasher>,
    blocks: Vec<Vec<Item>>,
}

/// A position in `blocks`: (block, offset). `(blocks.len(), 0)` is the end.
type Pos = (usize, usize);

fn cmp_key(e: &Item, s: Score, m: &[u8]) -> Ordering {
    e.0.cmp(&s).then_with(|| e.1[..].cmp(m))
}

impl Big {
    pub(super) fn len(&self) -> usize {
        self.scores.len()
    }

    pub(super) fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Inserts or updates (the score already normalised); returns the previous score.
    pub(super) fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        if let Some(cur) = self.scores.get_mut(&member[..]) {
            let old = *cur;
            // The same score keeps its place in the order (Redis skips the index too):
            // a ZADD that changes nothing costs one map lookup, not a remove and an
            // insert that shift up to 2 * BLOCK elements each.
            if Score(old) == Score(score) {
                return Some(old);
            }
            *cur = score;
            self.unlink(Score(old), &member);
            self.link(Score(score), member);
            return Some(old);
        }
        self.scores.insert(member.clone(), score);
        self.link(Score(score), member);
        None
    }

    pub(super) fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (m, s) = self.scores.remove_entry(member)?;
        self.unlink(Score(s), &m);
        Some(s)
    }

    pub(super) fn iter(&self) -> BigIter<'_> {
        self.between((0, 0), (self.blocks.len(), 0), self.len())
    }

    pub(super) fn rank(&self, member: &[u8]) -> Option<usize> {
        let s = self.score(member)?;
        let pos = self.lower_bound(Score(s), member);
        Some(self.index_of(pos))
    }

    /// The elements from the first at or above `(lo, "")` up to (excluding) the
    /// first at or above `(hi, "")`; `hi == None` runs to the end.
    pub(super) fn score_span(&self, lo: f64, hi: Option<f64>) -> BigIter<'_> {
        let from = self.lower_bound(Score(lo), b"");
        let to = match hi {
            None => (self.blocks.len(), 0),
            Some(h) => self.lower_bound(Score(h), b""),
        };
        let n = self.index_of(to).saturating_sub(self.index_of(from));
        self.between(from, to, n)
    }

    /// Members at ascending ranks `start..=end` (`end < len`, `start <= end`).
    pub(super) fn range_by_rank(&self, start: usize, end: usize) -> BigIter<'_> {
        self.between(self.pos_of(start), self.pos_of(end + 1), end - start + 1)
    }

    pub(super) fn pop(&mut self, count: usize, max: bool) -> Vec<(Bytes, f64)> {
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

    /// Heap bytes held, estimated from capacities and glibc's 16-byte chunk rounding.
    pub(super) fn heap_bytes(&self) -> usize {
        let chunk = |n: usize| (n + 8).div_ceil(16).max(2) * 16;
        let map = self.scores.capacity() * (32 + 8 + 1) + 16;
        let index = chunk(self.blocks.capacity() * 24)
            + self
                .blocks
                .iter()
                .map(|b| chunk(b.capacity() * 40))
                .sum::<usize>();
        // Members are shared by the map and the index: one block each.
        let members: usize = self.scores.keys().map(|m| chunk(m.len())).sum();
        chunk(std::mem::size_of::<Self>()) + map + index + members
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
        self.blocks.iter().take(pos.0).map(Vec::len).sum::<usize>() + pos.1
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
    fn between(&self, from: Pos, to: Pos, n: usize) -> BigIter<'_> {
        BigIter {
            blocks: &self.blocks,
            front: from,
            back: to,
            remaining: n,
        }
    }
}

/// Ordered iterator over a [`Big`] (both directions, exact size).
#[derive(Debug, Clone)]
pub(super) struct BigIter<'a> {
    blocks: &'a [Vec<Item>],
    front: Pos,
    /// Exclusive end.
    back: Pos,
    remaining: usize,
}

impl<'a> Iterator for BigIter<'a> {
    type Item = (&'a [u8], f64);

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
        Some((&m[..], s.0))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for BigIter<'_> {
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
        Some((&m[..], s.0))
    }
}

impl ExactSizeIterator for BigIter<'_> {}
