//! Consumer-group state of a stream (Redis 7.0 `t_stream.c` group semantics), as
//! plain operations on [`ConsumerGroup`]: the group PEL and the per-consumer PELs kept
//! in step, delivery counts and times, the last delivered ID and the `entries_read`
//! counter with the lag derived from it. No command parsing and no replies here: the
//! command layer (`commands::stream_groups`) decides what to call and what to answer.
//!
//! Invariant kept by every function: an ID is in `consumers[c].pel` exactly when the
//! group PEL has it with `consumer == Some(c)`.

use super::stream::{
    Consumer, ConsumerGroup, PendingEntry, Stream, StreamId, INVALID_ENTRIES_READ,
};
use bytes::Bytes;

/// How a claim changes the delivery counter of the entries it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryCount {
    /// Add one (a plain XCLAIM / XAUTOCLAIM).
    Increment,
    /// Leave it (JUSTID without RETRYCOUNT).
    Keep,
    /// Set it (RETRYCOUNT).
    Set(u64),
}

/// The group PEL summary XPENDING answers without a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSummary {
    pub count: usize,
    /// Smallest and greatest pending IDs; None when nothing is pending.
    pub bounds: Option<(StreamId, StreamId)>,
    /// Consumers with at least one pending entry, by name, with their counts.
    pub per_consumer: Vec<(Bytes, usize)>,
}

/// Whether the stream may hold a tombstone at or after `start` (Redis
/// `streamRangeHasTombstones(s, start, NULL)`): only the greatest deleted ID is
/// known, so "may" is all that can be said.
pub fn has_tombstones_from(s: &Stream, start: StreamId) -> bool {
    if s.length == 0 || s.max_deleted_id.is_zero() {
        return false;
    }
    if s.first_id > s.max_deleted_id {
        return false;
    }
    start <= s.max_deleted_id
}

/// The number of nodes of the radix tree Redis would index these listpack nodes
/// with (XINFO's `radix-tree-nodes`). Keys are the 16-byte big-endian master IDs;
/// Redis's rax keeps them as a compressed trie: a chain of single-child positions
/// is one node, every branching position is one node, every key ends in one leaf
/// node, and an empty tree is its root alone.
pub fn rax_node_count<'a>(masters: impl Iterator<Item = &'a StreamId>) -> usize {
    let keys: Vec<[u8; 16]> = masters.map(|m| m.to_be()).collect();
    if keys.is_empty() {
        return 1;
    }
    subtree_nodes(&keys, 0)
}

/// Nodes of the subtree holding `keys` (sorted, sharing their first `depth` bytes),
/// counted from the node at `depth`.
fn subtree_nodes(keys: &[[u8; 16]], depth: usize) -> usize {
    let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
        return 0;
    };
    if keys.len() == 1 {
        // The rest of the key in one compressed node (if any is left), then the leaf.
        return if depth < 16 { 2 } else { 1 };
    }
    // Sorted keys: the common prefix of all is the common prefix of the extremes.
    let mut split = depth;
    while split < 16 && first[split] == last[split] {
        split += 1;
    }
    // Distinct fixed-length keys always branch before their end.
    let mut n = usize::from(split > depth) + 1;
    let mut rest = keys;
    while let Some(head) = rest.first() {
        let c = head[split];
        let end = rest
            .iter()
            .position(|k| k[split] != c)
            .unwrap_or(rest.len());
        n += subtree_nodes(&rest[..end], split + 1);
        rest = &rest[end..];
    }
    n
}

impl Consumer {
    pub fn new(now_ms: i64) -> Self {
        Consumer {
            seen_time: now_ms,
            active_time: None,
            pel: Default::default(),
        }
    }
}

impl ConsumerGroup {
    pub fn new(last_id: StreamId, entries_read: i64) -> Self {
        ConsumerGroup {
            last_id,
            entries_read,
            pel: Default::default(),
            consumers: Default::default(),
        }
    }

    /// XGROUP CREATECONSUMER: true when the consumer was created. An existing
    /// consumer is left as it is (its seen time does not move).
    pub fn create_consumer(&mut self, name: &[u8], now_ms: i64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        // A copy: `name` may be a slice of a connection's read buffer.
        self.consumers
            .insert(Bytes::copy_from_slice(name), Consumer::new(now_ms));
        true
    }

    /// Looks a consumer up for a command that acts as it (XREADGROUP, XCLAIM,
    /// XAUTOCLAIM), creating it if needed and marking it seen now. True when created.
    pub fn touch_consumer(&mut self, name: &[u8], now_ms: i64) -> bool {
        match self.consumers.get_mut(name) {
            Some(c) => {
                c.seen_time = now_ms;
                false
            }
            None => self.create_consumer(name, now_ms),
        }
    }

    /// The group's own copy of a consumer's name (what pending entries point to).
    fn owner(&self, name: &[u8]) -> Bytes {
        self.consumers
            .get_key_value(name)
            .map_or_else(|| Bytes::copy_from_slice(name), |(k, _)| k.clone())
    }

    /// XGROUP DELCONSUMER: removes the consumer and its pending entries from the
    /// group PEL; the number of entries it had pending, None when it did not exist.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pel {
            self.pel.remove(id);
        }
        Some(c.pel.len())
    }

    /// Moves the group past `id`, an entry just delivered with `>`: the last
    /// delivered ID and the logical read counter. The counter simply counts on
    /// while it is known and no deleted entry can lie ahead; otherwise it is
    /// estimated again from the stream (and may become unknown).
    pub fn advance(&mut self, s: &Stream, id: StreamId) {
        if id <= self.last_id {
            return;
        }
        if self.entries_read != INVALID_ENTRIES_READ && !has_tombstones_from(s, id) {
            // The counter can be set to anything (XGROUP SETID ... ENTRIESREAD, an
            // RDB file): it wraps as Redis's long long does in practice.
            self.entries_read = self.entries_read.wrapping_add(1);
        } else if s.entries_added != 0 {
            self.entries_read = s.estimate_entries_read(id);
        }
        self.last_id = id;
    }

    /// Records the delivery of `id` to `consumer` (which must exist) at `now_ms`:
    /// a new pending entry, or one that another consumer held, which changes owner
    /// and restarts with one delivery. Returns the entry as it now is.
    pub fn deliver(&mut self, id: StreamId, consumer: &[u8], now_ms: i64) -> PendingEntry {
        let fresh = PendingEntry {
            delivery_time: now_ms,
            delivery_count: 1,
            consumer: Some(self.owner(consumer)),
        };
        if let Some(old) = self.pel.insert(id, fresh.clone()) {
            self.unlink(&old, id);
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
        fresh
    }

    /// Re-delivers an entry already pending for `consumer` (a history read): the
    /// delivery time and count move on; the owner stays.
    pub fn redeliver(&mut self, id: StreamId, now_ms: i64) {
        if let Some(p) = self.pel.get_mut(&id) {
            p.delivery_time = now_ms;
            p.delivery_count = p.delivery_count.saturating_add(1);
        }
    }

    /// Removes `id` from the group PEL and its owner's PEL (XACK, and a claim that
    /// finds the entry deleted from the stream). Returns what was pending.
    pub fn remove_pending(&mut self, id: StreamId) -> Option<PendingEntry> {
        let p = self.pel.remove(&id)?;
        self.unlink(&p, id);
        Some(p)
    }

    /// Drops `id` from the PEL of the consumer that `p` names.
    fn unlink(&mut self, p: &PendingEntry, id: StreamId) {
        if let Some(c) = p.consumer.as_ref().and_then(|n| self.consumers.get_mut(n)) {
            c.pel.remove(&id);
        }
    }

    /// Gives pending `id` to `consumer` (which must exist) with delivery time
    /// `time`; `force` creates the pending entry when there is none (the caller
    /// has checked that the stream holds the entry). Returns the entry after the
    /// claim, None when `id` was not pending and not forced.
    pub fn claim(
        &mut self,
        id: StreamId,
        consumer: &[u8],
        time: i64,
        count: DeliveryCount,
        force: bool,
    ) -> Option<PendingEntry> {
        if force && !self.pel.contains_key(&id) {
            // A forced entry starts as a fresh delivery (count 1), then is claimed
            // like any other, so a plain forced claim leaves it at 2 as in Redis.
            self.pel.insert(
                id,
                PendingEntry {
                    delivery_time: time,
                    delivery_count: 1,
                    consumer: None,
                },
            );
        }
        let owner = self.owner(consumer);
        let p = self.pel.get_mut(&id)?;
        let previous = p.consumer.replace(owner);
        p.delivery_time = time;
        match count {
            DeliveryCount::Increment => p.delivery_count = p.delivery_count.saturating_add(1),
            DeliveryCount::Keep => {}
            DeliveryCount::Set(n) => p.delivery_count = n,
        }
        let after = p.clone();
        if previous.as_deref() != Some(consumer) {
            if let Some(c) = previous.as_ref().and_then(|n| self.consumers.get_mut(n)) {
                c.pel.remove(&id);
            }
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
        Some(after)
    }

    /// The number of entries not yet delivered to the group, None when deleted
    /// entries make it unknowable (Redis `streamReplyWithCGLag`).
    pub fn lag(&self, s: &Stream) -> Option<i64> {
        if s.entries_added == 0 {
            return Some(0);
        }
        let added = s.entries_added as i64;
        if self.entries_read != INVALID_ENTRIES_READ && !has_tombstones_from(s, self.last_id) {
            return Some(added.wrapping_sub(self.entries_read));
        }
        let read = s.estimate_entries_read(self.last_id);
        (read != INVALID_ENTRIES_READ).then(|| added.wrapping_sub(read))
    }

    /// `entries_read` as XINFO shows it (None = unknown).
    pub fn entries_read_known(&self) -> Option<i64> {
        (self.entries_read != INVALID_ENTRIES_READ).then_some(self.entries_read)
    }

    pub fn pending_summary(&self) -> PendingSummary {
        let bounds = match (self.pel.keys().next(), self.pel.keys().next_back()) {
            (Some(a), Some(b)) => Some((*a, *b)),
            _ => None,
        };
        let per_consumer = self
            .consumers
            .iter()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(n, c)| (n.clone(), c.pel.len()))
            .collect();
        PendingSummary {
            count: self.pel.len(),
            bounds,
            per_consumer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn id(ms: u64) -> StreamId {
        StreamId::new(ms, 0)
    }

    /// Checks the invariant between the group PEL and the consumer PELs.
    fn consistent(g: &ConsumerGroup) {
        for (i, p) in &g.pel {
            let owner = p.consumer.as_ref().expect("owner");
            assert!(
                g.consumers[owner].pel.contains(i),
                "{i} missing in {owner:?}"
            );
        }
        for (n, c) in &g.consumers {
            for i in &c.pel {
                assert_eq!(g.pel[i].consumer.as_ref(), Some(n));
            }
        }
    }

    fn stream(entries_added: u64, length: u64, first: u64, last: u64, max_del: u64) -> Stream {
        Stream {
            length,
            entries_added,
            first_id: id(first),
            last_id: id(last),
            max_deleted_id: id(max_del),
            ..Default::default()
        }
    }

    #[test]
    fn delivery_moves_entries_between_consumers_and_ack_removes_them() {
        let mut g = ConsumerGroup::new(StreamId::default(), 0);
        let (a, c) = (b("alice"), b("carol"));
        assert!(g.touch_consumer(&a, 5));
        assert!(g.touch_consumer(&c, 6));
        assert!(!g.touch_consumer(&a, 9));
        assert_eq!(g.consumers[&a].seen_time, 9);
        g.deliver(id(1), &a, 10);
        g.deliver(id(2), &a, 10);
        let p = g.deliver(id(1), &c, 20);
        assert_eq!((p.delivery_count, p.delivery_time), (1, 20));
        consistent(&g);
        assert_eq!(g.consumers[&a].pel.len(), 1);
        g.redeliver(id(2), 30);
        assert_eq!(g.pel[&id(2)].delivery_count, 2);
        assert!(g.remove_pending(id(2)).is_some());
        assert!(g.remove_pending(id(2)).is_none());
        consistent(&g);
        assert_eq!(g.delete_consumer(&c), Some(1));
        assert!(g.pel.is_empty());
        assert_eq!(g.delete_consumer(&c), None);
    }

    #[test]
    fn claims_count_like_redis() {
        let mut g = ConsumerGroup::new(StreamId::default(), 0);
        let (a, c) = (b("a"), b("c"));
        g.touch_consumer(&a, 0);
        g.touch_consumer(&c, 0);
        g.deliver(id(1), &a, 10);
        let p = g.claim(id(1), &c, 50, DeliveryCount::Increment, false);
        assert_eq!(p.map(|p| p.delivery_count), Some(2));
        let p = g.claim(id(1), &c, 60, DeliveryCount::Keep, false);
        assert_eq!(
            p.map(|p| (p.delivery_count, p.delivery_time)),
            Some((2, 60))
        );
        assert!(g.claim(id(7), &c, 60, DeliveryCount::Keep, false).is_none());
        // A forced claim of an entry nobody had: a fresh delivery, then claimed.
        let p = g.claim(id(7), &a, 70, DeliveryCount::Increment, true);
        assert_eq!(p.map(|p| p.delivery_count), Some(2));
        let p = g.claim(id(8), &a, 70, DeliveryCount::Set(9), true);
        assert_eq!(p.map(|p| p.delivery_count), Some(9));
        consistent(&g);
        let s = g.pending_summary();
        assert_eq!(s.count, 3);
        assert_eq!(s.bounds, Some((id(1), id(8))));
        assert_eq!(s.per_consumer, vec![(a, 2), (c, 1)]);
    }

    #[test]
    fn rax_nodes_count_like_a_compressed_trie() {
        assert_eq!(rax_node_count([].iter()), 1);
        assert_eq!(rax_node_count([id(5)].iter()), 2);
        // Keys that differ in their last byte: prefix, branch, two leaves.
        assert_eq!(
            rax_node_count([StreamId::new(1, 1), StreamId::new(1, 2)].iter()),
            4
        );
        // Differing one byte earlier: each branch keeps a one-byte node.
        assert_eq!(
            rax_node_count([StreamId::new(1, 1), StreamId::new(1, 256)].iter()),
            6
        );
    }

    #[test]
    fn read_counter_and_lag_follow_the_stream() {
        // Five entries added, none deleted.
        let s = stream(5, 5, 1, 5, 0);
        let mut g = ConsumerGroup::new(StreamId::default(), 0);
        assert_eq!(g.lag(&s), Some(5));
        g.advance(&s, id(1));
        g.advance(&s, id(2));
        assert_eq!((g.entries_read, g.lag(&s)), (2, Some(3)));
        g.advance(&s, id(2));
        assert_eq!(g.entries_read, 2);
        // An unknown counter is estimated again when the last entry is read.
        let mut g = ConsumerGroup::new(StreamId::default(), INVALID_ENTRIES_READ);
        assert_eq!(g.lag(&s), Some(5));
        g.advance(&s, id(5));
        assert_eq!((g.entries_read, g.lag(&s)), (5, Some(0)));
        // A deleted entry ahead of the group makes the lag unknown.
        let s = stream(5, 4, 1, 5, 3);
        let g = ConsumerGroup::new(id(2), 2);
        assert_eq!(g.lag(&s), None);
        assert!(has_tombstones_from(&s, id(2)));
        assert!(!has_tombstones_from(&s, id(4)));
        // A new, empty stream has no lag.
        assert_eq!(g.lag(&Stream::default()), Some(0));
    }
}
