//! Keyspace layer: the list type (`Value::List`), a chain of packed nodes in the
//! spirit of Redis's quicklist.
//!
//! Why: a `VecDeque<Bytes>` paid one heap block per element (a 32-byte handle plus
//! its bytes) and a ring buffer that doubled, so a growing list faulted in fresh
//! pages far more often than Redis (docs/benchmarks.md, optimisation log). Here the
//! elements sit back to back in byte blocks ("nodes") of a few KiB, so a push copies
//! the element's bytes and allocates only when a node is full.
//!
//! Node sizes follow `list-max-listpack-size` (the list's `fill`, read when the list
//! is created, as Redis does): a negative fill caps a node's bytes at 4, 8, 16, 32 or
//! 64 KiB (-1 .. -5); a positive fill caps its element count, with an 8 KiB safety
//! cap on bytes. An element too big for any node gets a node of its own. OBJECT
//! ENCODING says `quicklist` for every list, as Redis 7.0 does, so the node layout is
//! not visible to clients; RDB files are written in Redis's node size whatever the
//! fill (rdb/writer.rs).
//!
//! Byte layout of a node's elements (`Node::data`), back to back, no header:
//!
//! ```text
//! entry := varint(len) bytes rev_varint(len)      (see types/varint.rs)
//! ```
//!
//! The length at both ends lets a node be read from either end (RPOP, LPOS with a
//! negative rank) without scanning it. A node keeps free room at the front of its
//! block as well as at the back (`Node::head`), so LPUSH writes in front of the
//! first element instead of moving the node's bytes.

use super::varint::{encode, get_varint, get_varint_rev, varint_len};
use bytes::Bytes;
use std::collections::VecDeque;

/// Redis 7.0's default `list-max-listpack-size`.
pub const DEFAULT_FILL: i32 = -2;
/// Node byte caps for fills -1 .. -5.
const SIZE_CLASSES: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// The byte cap under a positive (count) fill.
const SAFETY_BYTES: usize = 8192;
/// Smallest block a growing node takes.
const MIN_BLOCK: usize = 32;

/// What one node may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cap {
    bytes: usize,
    count: usize,
}

impl Cap {
    fn of(fill: i32) -> Cap {
        if fill < 0 {
            let class = (fill.unsigned_abs() as usize).min(SIZE_CLASSES.len());
            Cap {
                bytes: SIZE_CLASSES[class - 1],
                count: usize::MAX,
            }
        } else {
            // Fill 0 lets no second element into a node, as in Redis.
            Cap {
                bytes: SAFETY_BYTES,
                count: (fill as usize).max(1),
            }
        }
    }
}

/// Encoded size of an element of `n` bytes.
#[inline]
fn entry_len(n: usize) -> usize {
    2 * varint_len(n) + n
}

/// Writes the entry for `v` into `dst`, which is exactly `entry_len(v.len())` long.
#[inline]
fn write_entry(dst: &mut [u8], v: &[u8]) {
    let (hdr, k) = encode(v.len());
    dst[..k].copy_from_slice(&hdr[..k]);
    dst[k..k + v.len()].copy_from_slice(v);
    for (d, s) in dst[k + v.len()..].iter_mut().zip(hdr[..k].iter().rev()) {
        *d = *s;
    }
}

/// Reads the element starting at `pos`: (element, offset of the next entry).
#[inline]
fn read_fwd(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    // Most elements are shorter than 128 bytes: one length byte at each end.
    let first = *data.get(pos)?;
    if first < 0x80 {
        let n = first as usize;
        let e = data.get(pos + 1..pos + 1 + n)?;
        return Some((e, pos + 2 + n));
    }
    let mut p = pos;
    let n = get_varint(data, &mut p)?;
    let e = data.get(p..p.checked_add(n)?)?;
    Some((e, p + n + varint_len(n)))
}

/// Reads the element ending at `end`: (element, offset of its entry's start).
#[inline]
fn read_back(data: &[u8], end: usize) -> Option<(&[u8], usize)> {
    let mut p = end;
    let n = get_varint_rev(data, &mut p)?;
    let s = p.checked_sub(n)?;
    let e = data.get(s..p)?;
    Some((e, s.checked_sub(varint_len(n))?))
}

/// One node: elements packed in `buf[head..]`.
#[derive(Clone, Default)]
struct Node {
    buf: Vec<u8>,
    /// Free bytes at the front of `buf` (room for LPUSH).
    head: usize,
    count: u32,
}

impl Node {
    /// An empty node whose block has room for `room` bytes, at the front if `front`.
    fn with_room(room: usize, front: bool) -> Node {
        let buf = if front {
            vec![0; room]
        } else {
            Vec::with_capacity(room)
        };
        Node {
            head: buf.len(),
            buf,
            count: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.head..]
    }

    fn bytes(&self) -> usize {
        self.buf.len() - self.head
    }

    fn fits(&self, need: usize, cap: Cap) -> bool {
        (self.count as usize) < cap.count && self.bytes() + need <= cap.bytes
    }

    fn over(&self, cap: Cap) -> bool {
        self.count > 1 && (self.bytes() > cap.bytes || self.count as usize > cap.count)
    }

    fn push_back(&mut self, v: &[u8], cap: Cap) {
        let (hdr, k) = encode(v.len());
        let need = 2 * k + v.len();
        if self.buf.capacity() - self.buf.len() < need && self.head >= self.bytes() {
            // At least half the block was popped from the front (a queue: RPUSH and
            // LPOP): slide the elements down rather than grow the block forever.
            let h = self.head;
            self.buf.copy_within(h.., 0);
            self.buf.truncate(self.buf.len() - h);
            self.head = 0;
        }
        if self.buf.capacity() - self.buf.len() < need {
            // About double, but not past the cap: a full node's block is its cap.
            let want = self.buf.len() + need;
            let total = (want * 2)
                .max(MIN_BLOCK)
                .next_power_of_two()
                .min(self.head + cap.bytes.max(self.bytes() + need));
            self.buf.reserve_exact(total - self.buf.len());
        }
        self.buf.extend_from_slice(&hdr[..k]);
        self.buf.extend_from_slice(v);
        self.buf.extend(hdr[..k].iter().rev());
        self.count += 1;
    }

    fn push_front(&mut self, v: &[u8], cap: Cap) {
        let need = entry_len(v.len());
        if self.head < need {
            self.grow_front(need, cap);
        }
        let start = self.head - need;
        write_entry(&mut self.buf[start..self.head], v);
        self.head = start;
        self.count += 1;
    }

    /// Moves the elements to the end of a larger block (about double, within the
    /// node's cap) so that at least `need` bytes are free in front.
    fn grow_front(&mut self, need: usize, cap: Cap) {
        let used = self.bytes();
        let want = used + need;
        let total = (want * 2)
            .max(MIN_BLOCK)
            .next_power_of_two()
            .min(cap.bytes.max(want));
        let slack = total - used;
        let mut buf = Vec::with_capacity(total);
        buf.resize(slack, 0);
        buf.extend_from_slice(self.data());
        self.buf = buf;
        self.head = slack;
    }

    /// Byte offset (in `data`) where element `k` starts; `bytes()` for `k == count`.
    fn offset_of(&self, k: usize) -> usize {
        let data = self.data();
        let count = self.count as usize;
        if k >= count {
            return data.len();
        }
        if k <= count / 2 {
            let mut pos = 0;
            for _ in 0..k {
                match read_fwd(data, pos) {
                    Some((_, next)) => pos = next,
                    None => return data.len(),
                }
            }
            pos
        } else {
            let mut end = data.len();
            for _ in k..count {
                match read_back(data, end) {
                    Some((_, start)) => end = start,
                    None => return 0,
                }
            }
            end
        }
    }

    fn get(&self, k: usize) -> Option<&[u8]> {
        read_fwd(self.data(), self.offset_of(k)).map(|(e, _)| e)
    }

    /// Replaces `data[from..to]` with `with`.
    fn splice(&mut self, from: usize, to: usize, with: &[u8]) {
        let h = self.head;
        self.buf.splice(h + from..h + to, with.iter().copied());
    }

    /// Moves the elements from `k` on into a new node.
    fn split_off(&mut self, k: usize) -> Node {
        let off = self.offset_of(k);
        let tail = Node {
            buf: self.data()[off..].to_vec(),
            head: 0,
            count: self.count - k as u32,
        };
        self.buf.truncate(self.head + off);
        self.count = k as u32;
        tail
    }

    /// Removes the elements equal to `target` whose rank among the node's matches
    /// (counted from the front) is in `skip..skip + max`; returns how many.
    fn remove_matches(&mut self, target: &[u8], skip: usize, max: usize) -> usize {
        let h = self.head;
        let end = self.buf.len();
        let (mut read, mut write) = (h, h);
        let (mut seen, mut removed) = (0usize, 0usize);
        while read < end {
            let Some((e, next)) = read_fwd(&self.buf[..end], read) else {
                break;
            };
            let drop = e == target && {
                seen += 1;
                seen > skip && removed < max
            };
            if drop {
                removed += 1;
            } else {
                self.buf.copy_within(read..next, write);
                write += next - read;
            }
            read = next;
        }
        self.buf.truncate(write);
        self.count -= removed as u32;
        removed
    }

    /// Gives back a block mostly left empty by a trim or removals (pops leave it: the
    /// node is either refilled or dropped soon).
    fn shrink_if_sparse(&mut self) {
        if self.buf.capacity() > 4 * self.bytes() + 2 * MIN_BLOCK {
            self.buf = self.data().to_vec();
            self.head = 0;
        }
    }

    fn count_matches(&self, target: &[u8]) -> usize {
        NodeIter::new(self.data()).filter(|e| *e == target).count()
    }
}

/// The elements of one node's data, front to back.
struct NodeIter<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> NodeIter<'a> {
    fn new(data: &'a [u8]) -> Self {
        NodeIter { data, pos: 0 }
    }
}

impl<'a> Iterator for NodeIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let (e, next) = read_fwd(self.data, self.pos)?;
        self.pos = next;
        Some(e)
    }
}

/// A Redis list.
#[derive(Clone)]
pub struct List {
    nodes: VecDeque<Node>,
    len: usize,
    fill: i32,
}

impl Default for List {
    fn default() -> Self {
        List::new(DEFAULT_FILL)
    }
}

impl List {
    /// An empty list whose nodes follow `fill` (`list-max-listpack-size`).
    pub fn new(fill: i32) -> List {
        List {
            nodes: VecDeque::new(),
            len: 0,
            fill,
        }
    }

    /// The fill of `list-max-listpack-size` as configured (the config allows any i32).
    pub fn fill_of(c: &crate::config::Config) -> i32 {
        c.list_max_listpack_size
            .clamp(i32::MIN as i64, i32::MAX as i64) as i32
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn cap(&self) -> Cap {
        Cap::of(self.fill)
    }

    /// The block size of a node opened because its neighbour is full: the whole cap
    /// at once when the list already fills nodes, just the element for a new list
    /// (small lists stay small).
    fn new_node_room(&self, need: usize, cap: Cap) -> usize {
        if self.nodes.is_empty() || need > cap.bytes {
            need
        } else {
            cap.bytes
        }
    }

    pub fn push_front(&mut self, v: &[u8]) {
        let cap = self.cap();
        let need = entry_len(v.len());
        match self.nodes.front_mut() {
            Some(n) if n.fits(need, cap) => n.push_front(v, cap),
            _ => {
                let mut n = Node::with_room(self.new_node_room(need, cap), true);
                n.push_front(v, cap);
                self.push_node_front(n);
            }
        }
        self.len += 1;
    }

    pub fn push_back(&mut self, v: &[u8]) {
        let cap = self.cap();
        let need = entry_len(v.len());
        match self.nodes.back_mut() {
            Some(n) if n.fits(need, cap) => n.push_back(v, cap),
            _ => {
                let mut n = Node::with_room(self.new_node_room(need, cap), false);
                n.push_back(v, cap);
                self.push_node_back(n);
            }
        }
        self.len += 1;
    }

    pub fn push(&mut self, v: &[u8], front: bool) {
        if front {
            self.push_front(v);
        } else {
            self.push_back(v);
        }
    }

    fn push_node_front(&mut self, n: Node) {
        // The first node of a list takes exactly one slot (most lists are one node).
        if self.nodes.capacity() == 0 {
            self.nodes.reserve_exact(1);
        }
        self.nodes.push_front(n);
    }

    fn push_node_back(&mut self, n: Node) {
        if self.nodes.capacity() == 0 {
            self.nodes.reserve_exact(1);
        }
        self.nodes.push_back(n);
    }

    /// Removes the first (`front`) or last element, handing it to `f` first.
    pub fn pop_with<R>(&mut self, front: bool, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let node = if front {
            self.nodes.front_mut()?
        } else {
            self.nodes.back_mut()?
        };
        let data = node.data();
        let r;
        if front {
            let (e, next) = read_fwd(data, 0)?;
            r = f(e);
            node.head += next;
        } else {
            let (e, start) = read_back(data, data.len())?;
            r = f(e);
            node.buf.truncate(node.head + start);
        }
        node.count -= 1;
        if node.count == 0 {
            if front {
                self.nodes.pop_front();
            } else {
                self.nodes.pop_back();
            }
        }
        self.len -= 1;
        Some(r)
    }

    /// Removes and returns the first (`front`) or last element.
    pub fn pop(&mut self, front: bool) -> Option<Bytes> {
        self.pop_with(front, Bytes::copy_from_slice)
    }

    /// The node holding element `i` (< len) and the element's index in it.
    fn locate(&self, i: usize) -> (usize, usize) {
        if i < self.len / 2 {
            let mut k = i;
            for (ni, n) in self.nodes.iter().enumerate() {
                let c = n.count as usize;
                if k < c {
                    return (ni, k);
                }
                k -= c;
            }
        } else {
            let mut from_end = self.len - i; // >= 1
            for (ni, n) in self.nodes.iter().enumerate().rev() {
                let c = n.count as usize;
                if from_end <= c {
                    return (ni, c - from_end);
                }
                from_end -= c;
            }
        }
        (self.nodes.len(), 0)
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len {
            return None;
        }
        let (ni, k) = self.locate(i);
        self.nodes.get(ni)?.get(k)
    }

    /// Replaces element `i`; false if out of range.
    pub fn set(&mut self, i: usize, v: &[u8]) -> bool {
        if i >= self.len {
            return false;
        }
        let (ni, k) = self.locate(i);
        let Some(node) = self.nodes.get_mut(ni) else {
            return false;
        };
        let from = node.offset_of(k);
        let Some((_, to)) = read_fwd(node.data(), from) else {
            return false;
        };
        let mut enc = vec![0; entry_len(v.len())];
        write_entry(&mut enc, v);
        node.splice(from, to, &enc);
        self.split_if_over(ni);
        true
    }

    /// Inserts `v` so that it becomes element `i` (`i <= len`).
    pub fn insert(&mut self, i: usize, v: &[u8]) {
        if i == 0 {
            return self.push_front(v);
        }
        if i >= self.len {
            return self.push_back(v);
        }
        let (ni, k) = self.locate(i);
        let Some(node) = self.nodes.get_mut(ni) else {
            return;
        };
        let at = node.offset_of(k);
        let mut enc = vec![0; entry_len(v.len())];
        write_entry(&mut enc, v);
        node.splice(at, at, &enc);
        node.count += 1;
        self.len += 1;
        self.split_if_over(ni);
    }

    /// Splits node `ni` in halves (and those again) while it is over the cap.
    fn split_if_over(&mut self, ni: usize) {
        let cap = self.cap();
        let mut stack = vec![ni];
        while let Some(ni) = stack.pop() {
            let Some(node) = self.nodes.get_mut(ni) else {
                continue;
            };
            if !node.over(cap) {
                continue;
            }
            let half = node.count as usize / 2;
            let tail = node.split_off(half);
            self.nodes.insert(ni + 1, tail);
            // Later nodes shift by one: handle the right half first.
            stack.push(ni);
            stack.push(ni + 1);
        }
    }

    /// The index of the first element equal to `v`.
    pub fn position(&self, v: &[u8]) -> Option<usize> {
        self.iter().position(|e| e == v)
    }

    /// LPOS: indexes of the elements equal to `target`, skipping the first
    /// `|rank| - 1` matches, from the front (rank > 0) or the back, looking at no more
    /// than `maxlen` elements (0 = all), stopping after `want` matches.
    pub fn positions(&self, target: &[u8], rank: i64, want: usize, maxlen: usize) -> Vec<usize> {
        let scan = if maxlen == 0 {
            self.len
        } else {
            maxlen.min(self.len)
        };
        let mut skip = rank.unsigned_abs().saturating_sub(1);
        let mut found = Vec::new();
        let mut visit = |idx: usize, e: &[u8]| {
            if e != target {
                return true;
            }
            if skip > 0 {
                skip -= 1;
                return true;
            }
            found.push(idx);
            found.len() < want
        };
        if rank > 0 {
            for (i, e) in self.iter().take(scan).enumerate() {
                if !visit(i, e) {
                    break;
                }
            }
        } else {
            for (step, e) in self.iter_rev().take(scan).enumerate() {
                if !visit(self.len - 1 - step, e) {
                    break;
                }
            }
        }
        found
    }

    /// LREM: removes up to `count` elements equal to `target` from the front
    /// (`count > 0`), from the back (`count < 0`) or all of them (0); returns how many.
    pub fn remove(&mut self, target: &[u8], count: i64) -> usize {
        let mut left = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        let mut removed = 0;
        let order: Vec<usize> = if count >= 0 {
            (0..self.nodes.len()).collect()
        } else {
            (0..self.nodes.len()).rev().collect()
        };
        for ni in order {
            if left == 0 {
                break;
            }
            let node = &mut self.nodes[ni];
            let r = if count >= 0 {
                node.remove_matches(target, 0, left)
            } else {
                let m = node.count_matches(target);
                let r = m.min(left);
                node.remove_matches(target, m - r, r)
            };
            if r > 0 {
                node.shrink_if_sparse();
            }
            left -= r;
            removed += r;
        }
        self.len -= removed;
        if removed > 0 {
            self.nodes.retain(|n| n.count > 0);
            self.merge_small_nodes();
        }
        removed
    }

    /// Joins neighbouring nodes that fit in one (after removals left them sparse).
    fn merge_small_nodes(&mut self) {
        let cap = self.cap();
        let mut i = 0;
        while i + 1 < self.nodes.len() {
            let (a, b) = (&self.nodes[i], &self.nodes[i + 1]);
            let fits =
                a.bytes() + b.bytes() <= cap.bytes && (a.count + b.count) as usize <= cap.count;
            if fits {
                if let Some(b) = self.nodes.remove(i + 1) {
                    let a = &mut self.nodes[i];
                    a.buf.extend_from_slice(b.data());
                    a.count += b.count;
                }
            } else {
                i += 1;
            }
        }
    }

    /// LTRIM: keeps elements `start..=end` (already clamped to the list).
    pub fn trim(&mut self, start: usize, end: usize) {
        if start > end || start >= self.len {
            return self.clear();
        }
        let end = end.min(self.len - 1);
        self.drop_back(self.len - 1 - end);
        self.drop_front(start);
    }

    pub fn clear(&mut self) {
        self.nodes.clear();
        self.len = 0;
    }

    /// Removes the first `n` elements.
    fn drop_front(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(node) = self.nodes.front_mut() else {
                break;
            };
            let c = node.count as usize;
            if c <= n {
                self.nodes.pop_front();
                n -= c;
            } else {
                let off = node.offset_of(n);
                node.head += off;
                node.count -= n as u32;
                node.shrink_if_sparse();
                n = 0;
            }
        }
    }

    /// Removes the last `n` elements.
    fn drop_back(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(node) = self.nodes.back_mut() else {
                break;
            };
            let c = node.count as usize;
            if c <= n {
                self.nodes.pop_back();
                n -= c;
            } else {
                let off = node.offset_of(c - n);
                node.buf.truncate(node.head + off);
                node.count -= n as u32;
                node.shrink_if_sparse();
                n = 0;
            }
        }
    }

    /// The elements front to back.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            nodes: &self.nodes,
            node: 0,
            rest: &[],
            left: self.len,
        }
    }

    /// Elements `start..start + count` front to back (clipped to the list).
    pub fn range(&self, start: usize, count: usize) -> Iter<'_> {
        if start >= self.len {
            return Iter {
                nodes: &self.nodes,
                node: self.nodes.len(),
                rest: &[],
                left: 0,
            };
        }
        let (ni, k) = self.locate(start);
        let rest = self
            .nodes
            .get(ni)
            .map_or(&[][..], |n| &n.data()[n.offset_of(k)..]);
        Iter {
            nodes: &self.nodes,
            node: ni + 1,
            rest,
            left: count.min(self.len - start),
        }
    }

    /// The elements back to front.
    pub fn iter_rev(&self) -> RevIter<'_> {
        RevIter {
            nodes: &self.nodes,
            node: self.nodes.len(),
            end: self.nodes.back().map_or(0, Node::bytes),
            left: self.len,
        }
    }

    pub fn contains(&self, v: &[u8]) -> bool {
        self.iter().any(|e| e == v)
    }

    /// Heap bytes held (MEMORY USAGE): the header, the node table and the blocks.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<List>()
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.nodes.iter().map(|n| n.buf.capacity()).sum::<usize>()
    }

    /// How many nodes the list has (for tests and DEBUG-style reports).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

/// Front-to-back elements of a list.
pub struct Iter<'a> {
    nodes: &'a VecDeque<Node>,
    /// The next node to read once `rest` is done.
    node: usize,
    /// The unread entries of the node being read.
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iter<'a> {
    /// Moves to the next node's entries; None at the end of the list.
    #[cold]
    fn next_node(&mut self) -> Option<()> {
        loop {
            self.rest = self.nodes.get(self.node)?.data();
            self.node += 1;
            if !self.rest.is_empty() {
                return Some(());
            }
        }
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];
    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        if self.rest.is_empty() {
            self.next_node()?;
        }
        let (e, next) = read_fwd(self.rest, 0)?;
        self.rest = self.rest.get(next..)?;
        self.left -= 1;
        Some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// Back-to-front elements of a list.
pub struct RevIter<'a> {
    nodes: &'a VecDeque<Node>,
    /// One past the node being read (0 = none left).
    node: usize,
    /// End of the next element in that node's data.
    end: usize,
    left: usize,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        loop {
            let idx = self.node.checked_sub(1)?;
            if self.end > 0 {
                let data = self.nodes.get(idx)?.data();
                let (e, start) = read_back(data, self.end)?;
                self.end = start;
                self.left -= 1;
                return Some(e);
            }
            self.node = idx;
            let prev = self.nodes.get(idx.checked_sub(1)?)?;
            self.end = prev.bytes();
        }
    }
}

impl<'a> IntoIterator for &'a List {
    type Item = &'a [u8];
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<T: AsRef<[u8]>> FromIterator<T> for List {
    fn from_iter<I: IntoIterator<Item = T>>(it: I) -> List {
        let mut l = List::default();
        l.extend(it);
        l
    }
}

impl<T: AsRef<[u8]>> Extend<T> for List {
    fn extend<I: IntoIterator<Item = T>>(&mut self, it: I) {
        for v in it {
            self.push_back(v.as_ref());
        }
    }
}

impl<T: AsRef<[u8]>> From<Vec<T>> for List {
    fn from(v: Vec<T>) -> List {
        v.into_iter().collect()
    }
}

impl<T: AsRef<[u8]>> From<VecDeque<T>> for List {
    fn from(v: VecDeque<T>) -> List {
        v.into_iter().collect()
    }
}

impl PartialEq for List {
    fn eq(&self, other: &List) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for List {
    /// Like a list of `Bytes` (`[b"a", b"1"]`), whatever the node layout.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(Bytes::copy_from_slice))
            .finish()
    }
}

#[cfg(test)]
mod tests;
