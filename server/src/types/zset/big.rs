//! The big shape of a sorted set (Redis's "skiplist" encoding): a member -> score
//! map plus an ordered index of (score, member) kept in sorted blocks.

use super::Score;
use bytes::Bytes;
use std::collections::HashMap;

/// Elements per block after a split; a block splits when it reaches twice this.
/// A move (ZADD of an existing member with a new score) shifts about one block's
/// worth of 40-byte elements in two blocks; finding a block reads only `lasts`, so
/// smaller blocks no longer cost a cache miss per probe (docs/benchmarks.md, log
/// entries 29 and 31).
const BLOCK: usize = 64;

type Item = (Score, Bytes);

/// Layout: `scores` answers ZSCORE in O(1); the order lives in `blocks`, a list of
/// sorted, non-empty vectors whose concatenation is the whole set in (score, member)
/// order (Redis's skiplist order), and `lasts`, the score of each block's last
/// element in one flat array (`lasts[i]` is `blocks[i].last().0`). Finding a
/// position is a binary search over `lasts` (one small contiguous array, where a
/// search over `blocks` dereferenced one block per probe), members compared only
/// when a block ends on the very score sought, then one within the block;
/// insert/remove shift at most `2 * BLOCK` elements. A rank is the sum of the block
/// lengths before the position, kept in `counts`, a Fenwick tree over the block
/// lengths: ZRANK and ZRANGE by index find their place in O(log(n / BLOCK)) steps,
/// as Redis's skiplist spans do, instead of adding up every block before it. Memory
/// stays close to a flat array.
#[derive(Debug, Clone, Default)]
pub(super) struct Big {
    scores: HashMap<Bytes, f64, crate::types::Hasher>,
    blocks: Vec<Vec<Item>>,
    lasts: Vec<Score>,
    counts: Fenwick,
}

/// Prefix sums of the block lengths (a Fenwick, or binary indexed, tree): node `i`
/// (1-based) holds the total length of the `i & -i` blocks ending at block `i`.
/// An element added to or removed from a block updates O(log blocks) nodes; a
/// block split off or dropped (once per `BLOCK` insertions or removals at most)
/// rebuilds the tree in O(blocks).
#[derive(Debug, Clone, Default)]
struct Fenwick {
    tree: Vec<u32>,
}

impl Fenwick {
    /// Rebuilds from the block lengths, in linear time.
    fn rebuild(&mut self, blocks: &[Vec<Item>]) {
        self.tree.clear();
        self.tree.extend(blocks.iter().map(|b| b.len() as u32));
        let n = self.tree.len();
        for i in 1..=n {
            let j = i + (i & i.wrapping_neg());
            if j <= n {
                let add = self.tree[i - 1];
                self.tree[j - 1] += add;
            }
        }
    }

    /// Block `bi` gained one element (`grow`) or lost one.
    fn step(&mut self, bi: usize, grow: bool) {
        let mut i = bi + 1;
        while let Some(node) = self.tree.get_mut(i - 1) {
            if grow {
                *node += 1;
            } else {
                *node -= 1;
            }
            i += i & i.wrapping_neg();
        }
    }

    /// Elements in the blocks before block `bi`.
    fn before(&self, bi: usize) -> usize {
        let mut i = bi.min(self.tree.len());
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i - 1] as usize;
            i &= i - 1;
        }
        sum
    }

    /// The block holding global index `k` and the offset in it; `None` past the end.
    fn find(&self, mut k: usize) -> Option<(usize, usize)> {
        let n = self.tree.len();
        let mut pos = 0;
        let mut bit = if n == 0 { 0 } else { 1 << n.ilog2() };
        while bit > 0 {
            if let Some(&node) = self.tree.get(pos + bit - 1) {
                if (node as usize) <= k {
                    pos += bit;
                    k -= node as usize;
                }
            }
            bit >>= 1;
        }
        (pos < n).then_some((pos, k))
    }
}

/// A position in `blocks`: (block, offset). `(blocks.len(), 0)` is the end.
type Pos = (usize, usize);

/// Whether `e` sorts before `(s, m)` in (score, member) order. Plain float
/// comparisons: no NaN is ever stored, so `<` and `==` order scores exactly as
/// [`Score`]'s `Ord` does (-0 equal to 0), a few instructions less per probe.
#[inline]
fn before(e: &Item, s: Score, m: &[u8]) -> bool {
    e.0 .0 < s.0 || (e.0 .0 == s.0 && e.1[..] < *m)
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
            self.relink(Score(old), Score(score), &member);
            return Some(old);
        }
        self.scores.insert(member.clone(), score);
        self.link(Score(score), member);
        None
    }

    /// [`super::ZSet::add_with`] for this shape: one map lookup for an existing
    /// member (moved without copying it), two for a new one.
    pub(super) fn add_with(
        &mut self,
        member: &[u8],
        own: impl FnOnce() -> Bytes,
        decide: impl FnOnce(Option<f64>) -> Option<f64>,
    ) {
        if let Some(cur) = self.scores.get_mut(member) {
            let old = *cur;
            if let Some(new) = decide(Some(old)).filter(|new| Score(*new) != Score(old)) {
                *cur = new;
                self.relink(Score(old), Score(new), member);
            }
            return;
        }
        if let Some(new) = decide(None) {
            let m = own();
            self.scores.insert(m.clone(), new);
            self.link(Score(new), m);
        }
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
            let off = if max {
                self.blocks.get(bi).map_or(0, |b| b.len().saturating_sub(1))
            } else {
                0
            };
            let item = self.take_at(bi, off);
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
            + chunk(self.lasts.capacity() * 8)
            + chunk(self.counts.tree.capacity() * 4)
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
        let mut bi = self.lasts.partition_point(|l| l.0 < s.0);
        // Blocks ending on the score sought: their last members decide (rare
        // outside sets with many equal scores, where it is what Redis compares too).
        while self.lasts.get(bi).is_some_and(|l| *l == s)
            && self
                .blocks
                .get(bi)
                .and_then(|b| b.last())
                .is_some_and(|last| last.1[..] < *m)
        {
            bi += 1;
        }
        match self.blocks.get(bi) {
            None => (self.blocks.len(), 0),
            Some(b) => (bi, b.partition_point(|e| before(e, s, m))),
        }
    }

    /// Global index of a position.
    fn index_of(&self, pos: Pos) -> usize {
        self.counts.before(pos.0) + pos.1
    }

    /// Position of the element at global index `i` (the end if `i >= len`).
    fn pos_of(&self, i: usize) -> Pos {
        self.counts.find(i).unwrap_or((self.blocks.len(), 0))
    }

    fn link(&mut self, s: Score, m: Bytes) {
        let (mut bi, mut off) = self.lower_bound(s, &m);
        if self.blocks.is_empty() {
            self.blocks.push(Vec::with_capacity(4));
            self.lasts.push(s);
            self.counts.rebuild(&self.blocks);
        }
        if bi == self.blocks.len() {
            bi -= 1;
            off = self.blocks[bi].len();
        }
        let b = &mut self.blocks[bi];
        let at_end = off == b.len();
        b.insert(off, (s, m));
        if at_end {
            self.lasts[bi] = s;
        }
        let b = &mut self.blocks[bi];
        if b.len() >= 2 * BLOCK {
            let tail = b.split_off(BLOCK);
            let head_last = b.last().map_or(s, |e| e.0);
            let tail_last = self.lasts[bi];
            self.lasts[bi] = head_last;
            self.blocks.insert(bi + 1, tail);
            self.lasts.insert(bi + 1, tail_last);
            self.counts.rebuild(&self.blocks);
        } else {
            self.counts.step(bi, true);
        }
    }

    fn unlink(&mut self, s: Score, m: &[u8]) {
        let (bi, off) = self.lower_bound(s, m);
        self.remove_at(bi, off, s, m);
    }

    /// Removes the element at `(bi, off)` if it is `(s, m)`.
    fn remove_at(&mut self, bi: usize, off: usize, s: Score, m: &[u8]) {
        let Some(b) = self.blocks.get_mut(bi) else {
            return;
        };
        if !b.get(off).is_some_and(|e| e.0 == s && e.1[..] == *m) {
            return;
        }
        self.take_at(bi, off);
    }

    /// Removes and returns the element at `(bi, off)`, dropping the block when it
    /// empties and keeping `lasts` in step.
    fn take_at(&mut self, bi: usize, off: usize) -> Option<Item> {
        let b = self.blocks.get_mut(bi)?;
        if off >= b.len() {
            return None;
        }
        let item = b.remove(off);
        match b.last() {
            None => {
                self.blocks.remove(bi);
                self.lasts.remove(bi);
                self.counts.rebuild(&self.blocks);
                return Some(item);
            }
            Some(last) if off == b.len() => {
                if let Some(l) = self.lasts.get_mut(bi) {
                    *l = last.0;
                }
            }
            Some(_) => {}
        }
        self.counts.step(bi, false);
        Some(item)
    }

    /// Moves `m` from score `old` to `new` in the order. When the new place is in
    /// the same block, the elements between the two places shift by one (one
    /// rotation, the member's handle kept) instead of a removal and an insertion.
    fn relink(&mut self, old: Score, new: Score, m: &[u8]) {
        let (bi, from) = self.lower_bound(old, m);
        let last_block = self.blocks.len().saturating_sub(1);
        let Some(b) = self.blocks.get_mut(bi) else {
            return;
        };
        if !b.get(from).is_some_and(|e| e.0 == old && e.1[..] == *m) {
            return;
        }
        // Elements of this block other than `m` that sort before the new key (`m`
        // itself, at its old key, sorts before it exactly when old < new).
        let below = b.partition_point(|e| before(e, new, m));
        let dest = if old < new {
            below.saturating_sub(1)
        } else {
            below
        };
        let others = b.len() - 1;
        // The new place is inside this block when some other element of it stays
        // on each side (or the block is the first / last one, with nothing beyond).
        if (dest > 0 || bi == 0) && (dest < others || bi == last_block) {
            let span = if dest >= from {
                b.get_mut(from..=dest).map(|x| x.rotate_left(1))
            } else {
                b.get_mut(dest..=from).map(|x| x.rotate_right(1))
            };
            if let (Some(()), Some(e)) = (span, b.get_mut(dest)) {
                e.0 = new;
            }
            if let (Some(l), Some(e)) = (self.lasts.get_mut(bi), b.last()) {
                *l = e.0;
            }
            return;
        }
        if let Some((_, handle)) = self.take_at(bi, from) {
            self.link(new, handle);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;
    use std::collections::BTreeSet;

    fn cmp_key(e: &Item, s: Score, m: &[u8]) -> Ordering {
        e.0.cmp(&s).then_with(|| e.1[..].cmp(m))
    }

    #[test]
    fn before_orders_as_score_then_member() {
        let scores = [
            f64::NEG_INFINITY,
            -1.5,
            -0.0,
            0.0,
            1e-310,
            2.0,
            f64::INFINITY,
        ];
        let members: [&[u8]; 3] = [b"", b"a", b"b"];
        for &a in &scores {
            for &b in &scores {
                for ma in members {
                    for mb in members {
                        let e = (Score(a), Bytes::copy_from_slice(ma));
                        let want = cmp_key(&e, Score(b), mb) == Ordering::Less;
                        assert_eq!(before(&e, Score(b), mb), want, "{a} {ma:?} / {b} {mb:?}");
                    }
                }
            }
        }
    }

    impl Big {
        /// The layout's invariants: blocks non-empty and sorted within and across,
        /// `lasts` mirroring each block's last score, the map holding exactly the
        /// indexed members with their scores.
        fn check_layout(&self) {
            assert_eq!(self.lasts.len(), self.blocks.len());
            let mut prev: Option<&Item> = None;
            let mut n = 0;
            for (b, last) in self.blocks.iter().zip(&self.lasts) {
                assert!(!b.is_empty() && b.len() < 2 * BLOCK);
                assert_eq!(b.last().map(|e| e.0), Some(*last));
                for e in b {
                    if let Some(p) = prev {
                        assert_eq!(cmp_key(p, e.0, &e.1), Ordering::Less, "out of order");
                    }
                    assert_eq!(self.scores.get(&e.1).map(|s| Score(*s)), Some(e.0));
                    prev = Some(e);
                    n += 1;
                }
            }
            assert_eq!(n, self.scores.len());
            // The tree's prefix sums are the block lengths added up, and every
            // index maps back to its block and offset.
            let mut sum = 0;
            for (bi, b) in self.blocks.iter().enumerate() {
                assert_eq!(self.counts.before(bi), sum, "prefix before block {bi}");
                for off in [0, b.len() - 1] {
                    assert_eq!(self.counts.find(sum + off), Some((bi, off)));
                }
                sum += b.len();
            }
            assert_eq!(self.counts.before(self.blocks.len()), n);
            assert_eq!(self.counts.find(n), None);
        }
    }

    /// Seeded ZADD / ZINCRBY / ZREM / ZPOP-style steps against a BTreeSet of
    /// (score, member): after every step the layout holds, the whole order and the
    /// touched member's score and rank agree with the model. Three shapes of input:
    /// few distinct scores (ties decided by member, blocks ending on equal scores),
    /// a wide score range (moves across blocks), and a pool small enough that most
    /// moves stay inside one block.
    #[test]
    fn random_moves_match_a_sorted_model_after_every_step() {
        for (members, scores, steps) in [(700, 3, 3000), (1500, 1_000_000, 3000), (150, 400, 3000)]
        {
            model_run(members, scores, steps);
        }
    }

    fn model_run(members: u64, scores: u64, steps: usize) {
        let mut big = Big::default();
        let mut model: BTreeSet<(Score, Bytes)> = BTreeSet::new();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d ^ members;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let model_score = |model: &BTreeSet<(Score, Bytes)>, m: &Bytes| {
            model.iter().find(|(_, x)| x == m).map(|(s, _)| s.0)
        };
        for step in 0..steps {
            let r = next();
            let member = Bytes::from(format!("m{}", r % members));
            let raw = ((r >> 24) % scores) as f64;
            let score = match (r >> 56) % 16 {
                0 => -0.0,
                1 => raw / 8.0 - 3.0,
                _ => raw,
            };
            let before = model_score(&model, &member);
            // Grow first, then churn: a third of the steps fill, the rest mostly move.
            let op = if step < steps / 3 { 0 } else { (r >> 4) % 10 };
            match op {
                0..=4 => {
                    assert_eq!(big.insert(member.clone(), score), before);
                    if let Some(old) = before {
                        model.remove(&(Score(old), member.clone()));
                    }
                    model.insert((Score(score), member.clone()));
                }
                5 | 6 => {
                    // ZINCRBY: existing members move by a delta, new ones are added.
                    let delta = if r % 2 == 0 { 1.0 } else { -(raw % 7.0) };
                    let new = before.map_or(delta, |s| s + delta);
                    let mut seen = None;
                    big.add_with(
                        &member,
                        || member.clone(),
                        |cur| {
                            seen = Some(cur);
                            Some(new)
                        },
                    );
                    assert_eq!(seen, Some(before));
                    if let Some(old) = before {
                        model.remove(&(Score(old), member.clone()));
                    }
                    model.insert((Score(new), member.clone()));
                }
                7 | 8 => {
                    assert_eq!(big.remove(&member), before);
                    if let Some(old) = before {
                        model.remove(&(Score(old), member.clone()));
                    }
                }
                _ => {
                    let max = r % 2 == 0;
                    for (m, s) in big.pop(((r >> 9) % 3) as usize, max) {
                        let want = if max {
                            model.pop_last()
                        } else {
                            model.pop_first()
                        };
                        assert_eq!(want, Some((Score(s), m)));
                    }
                }
            }
            big.check_layout();
            assert_eq!(big.len(), model.len());
            assert!(
                big.iter()
                    .map(|(m, s)| (Score(s), m))
                    .eq(model.iter().map(|(s, m)| (*s, &m[..]))),
                "order differs at step {step}"
            );
            let rank = model.iter().position(|(_, m)| *m == member);
            assert_eq!(big.rank(&member), rank);
            assert_eq!(big.score(&member), model_score(&model, &member));
            if let Some(i) = rank {
                let at = big.range_by_rank(i, i).next().map(|(m, _)| m.to_vec());
                assert_eq!(at, Some(member.to_vec()));
            }
        }
        assert!(
            big.blocks.len() > 1 || members < BLOCK as u64,
            "the run split blocks"
        );
    }

    #[test]
    fn add_with_stores_only_what_the_decision_returns() {
        let mut big = Big::default();
        let a = Bytes::from_static(b"a");
        big.add_with(b"a", || a.clone(), |cur| cur.map_or(Some(1.0), |_| None));
        big.add_with(
            b"a",
            || unreachable!("a exists"),
            |cur| cur.map_or(Some(9.0), |_| None),
        );
        assert_eq!(big.score(b"a"), Some(1.0));
        big.add_with(b"b", || Bytes::from_static(b"b"), |_| None);
        assert_eq!(big.len(), 1);
        big.add_with(
            b"a",
            || unreachable!("a exists"),
            |cur| cur.map(|s| s + 2.0),
        );
        assert_eq!(big.score(b"a"), Some(3.0));
        big.check_layout();
    }
}
