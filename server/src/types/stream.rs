//! Stream values, kept in the form Redis 7.0 persists them so that an RDB round trip
//! (load then save) reproduces the stream exactly: the entries stay in their listpack
//! blobs (validated on load, keyed by the 16-byte big-endian master ID), next to the
//! stream metadata and the consumer groups. There are no stream commands yet; this
//! type exists so that snapshots and full resyncs carry streams unchanged.
//!
//! Stream listpack layout (all numbers are listpack integers):
//! * master entry: `count` (live entries), `deleted`, `num_fields`, the field names,
//!   then `0`;
//! * each entry: `flags` (1 = deleted, 2 = same fields as the master), `ms_delta`,
//!   `seq_delta` (relative to the master ID), then with SAMEFIELDS the `num_fields`
//!   values in master order, otherwise `num_fields` and the field/value pairs; last
//!   `lp_count`, the number of elements of the entry before it.

use crate::rdb::listpack::{self, LpEntry};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// Entry flags inside a stream listpack.
pub const FLAG_DELETED: i64 = 1;
pub const FLAG_SAMEFIELDS: i64 = 2;

/// Value of `entries_read` when it is unknown (SCG_INVALID_ENTRIES_READ).
pub const INVALID_ENTRIES_READ: i64 = -1;

/// A stream ID; ordering is (ms, seq), the same as the big-endian byte encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The 128-bit big-endian form used as rax key and in PELs.
    pub fn to_be(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    pub fn from_be(b: &[u8; 16]) -> Self {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&b[..8]);
        seq.copy_from_slice(&b[8..]);
        StreamId {
            ms: u64::from_be_bytes(ms),
            seq: u64::from_be_bytes(seq),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.ms == 0 && self.seq == 0
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A pending (delivered, not acknowledged) entry of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// Last delivery time, Unix ms.
    pub delivery_time: i64,
    pub delivery_count: u64,
    /// Owning consumer (set when the consumers are loaded).
    pub consumer: Option<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// Last time the consumer was seen, Unix ms.
    pub seen_time: i64,
    /// Last successful interaction (RDB type 21 / Redis 7.2 only; not written back).
    pub active_time: Option<i64>,
    /// IDs of the entries pending for this consumer (each also in the group PEL).
    pub pel: BTreeSet<StreamId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroup {
    pub last_id: StreamId,
    /// Logical read counter; -1 when unknown.
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, PendingEntry>,
    pub consumers: BTreeMap<Bytes, Consumer>,
}

/// A stream in its persisted form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    /// Listpack nodes by master ID (validated blobs).
    pub listpacks: BTreeMap<StreamId, Bytes>,
    /// Number of live entries.
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    pub groups: BTreeMap<Bytes, ConsumerGroup>,
}

/// One entry walked out of a listpack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: StreamId,
    pub deleted: bool,
    pub fields: Vec<(Bytes, Bytes)>,
}

/// Why a stream listpack was refused.
pub type LpError = &'static str;

fn int(e: Option<&LpEntry<'_>>) -> Result<i64, LpError> {
    match e {
        Some(LpEntry::Int(i)) => Ok(*i),
        Some(LpEntry::Str(_)) => Err("string where a stream listpack integer was expected"),
        None => Err("stream listpack entry is truncated"),
    }
}

fn elem<'a>(e: Option<&'a LpEntry<'a>>) -> Result<&'a LpEntry<'a>, LpError> {
    e.ok_or("stream listpack entry is truncated")
}

/// Walks a stream listpack: checks its structure (master entry, every entry's
/// element count and back-count, the live/deleted counters) and returns the entries,
/// tombstones included. `master` is the node's key.
pub fn walk_listpack(master: StreamId, blob: &[u8]) -> Result<Vec<StreamEntry>, LpError> {
    let els = listpack::parse(blob).ok_or("invalid listpack")?;
    if els.is_empty() {
        return Err("empty listpack inside stream");
    }
    let mut it = els.iter();
    let count = int(it.next())?;
    let deleted = int(it.next())?;
    let nf = int(it.next())?;
    if count < 0 || deleted < 0 || nf < 0 || nf as usize > els.len() {
        return Err("bad stream listpack master entry");
    }
    let mut master_fields = Vec::with_capacity(nf as usize);
    for _ in 0..nf {
        master_fields.push(elem(it.next())?.to_bytes());
    }
    if int(it.next())? != 0 {
        return Err("stream listpack master entry not terminated by 0");
    }
    let mut out = Vec::new();
    let (mut live, mut dead) = (0i64, 0i64);
    while let Some(first) = it.next() {
        let flags = int(Some(first))?;
        let ms_delta = int(it.next())?;
        let seq_delta = int(it.next())?;
        let id = StreamId {
            ms: master.ms.wrapping_add(ms_delta as u64),
            seq: master.seq.wrapping_add(seq_delta as u64),
        };
        let mut fields = Vec::new();
        let lp_count_expected = if flags & FLAG_SAMEFIELDS != 0 {
            for f in &master_fields {
                fields.push((f.clone(), elem(it.next())?.to_bytes()));
            }
            3 + master_fields.len() as i64
        } else {
            let n = int(it.next())?;
            if n < 0 || n as usize > els.len() {
                return Err("bad stream entry field count");
            }
            for _ in 0..n {
                let f = elem(it.next())?.to_bytes();
                let v = elem(it.next())?.to_bytes();
                fields.push((f, v));
            }
            4 + 2 * n
        };
        if int(it.next())? != lp_count_expected {
            return Err("stream entry lp-count mismatch");
        }
        let del = flags & FLAG_DELETED != 0;
        if del {
            dead += 1;
        } else {
            live += 1;
        }
        out.push(StreamEntry {
            id,
            deleted: del,
            fields,
        });
    }
    if live != count || dead != deleted {
        return Err("stream listpack master counters do not match its entries");
    }
    for w in out.windows(2) {
        if w[0].id >= w[1].id {
            return Err("stream listpack IDs are not increasing");
        }
    }
    Ok(out)
}

/// Encodes live entries (IDs increasing, all >= the first) as one stream listpack
/// node the way `streamAppendItem` lays it out: the first entry's fields become the
/// master fields and later entries with the same field names use SAMEFIELDS.
/// Returns the master ID (the first entry's ID) and the blob; None when empty.
pub fn encode_listpack(entries: &[(StreamId, Vec<(Bytes, Bytes)>)]) -> Option<(StreamId, Vec<u8>)> {
    let (master, first_fields) = entries.first()?;
    let mut w = listpack::LpWriter::new();
    w.push_int(entries.len() as i64);
    w.push_int(0);
    w.push_int(first_fields.len() as i64);
    for (f, _) in first_fields {
        w.push(f);
    }
    w.push_int(0);
    for (id, fields) in entries {
        let same = fields.len() == first_fields.len()
            && fields.iter().zip(first_fields).all(|(a, b)| a.0 == b.0);
        w.push_int(if same { FLAG_SAMEFIELDS } else { 0 });
        w.push_int(id.ms.wrapping_sub(master.ms) as i64);
        w.push_int(id.seq.wrapping_sub(master.seq) as i64);
        if same {
            for (_, v) in fields {
                w.push(v);
            }
            w.push_int(3 + fields.len() as i64);
        } else {
            w.push_int(fields.len() as i64);
            for (f, v) in fields {
                w.push(f);
                w.push(v);
            }
            w.push_int(4 + 2 * fields.len() as i64);
        }
    }
    Some((*master, w.finish()))
}

impl Stream {
    /// Live entries in ID order (blobs were validated on load; a blob that fails to
    /// walk is skipped rather than panicking).
    pub fn entries(&self) -> Vec<StreamEntry> {
        let mut out = Vec::new();
        for (master, blob) in &self.listpacks {
            if let Ok(es) = walk_listpack(*master, blob) {
                out.extend(es.into_iter().filter(|e| !e.deleted));
            }
        }
        out
    }

    /// First live entry ID, or `StreamId::MAX` when empty (streamGetEdgeID).
    pub fn first_live_id(&self) -> StreamId {
        for (master, blob) in &self.listpacks {
            if let Ok(es) = walk_listpack(*master, blob) {
                if let Some(e) = es.into_iter().find(|e| !e.deleted) {
                    return e.id;
                }
            }
        }
        StreamId::MAX
    }

    /// Redis 7.0's estimate of a group's `entries_read` for a group at `id`, used
    /// when loading RDB type 15, which lacks the counter
    /// (streamEstimateDistanceFromFirstEverEntry).
    pub fn estimate_entries_read(&self, id: StreamId) -> i64 {
        let added = self.entries_added as i64;
        if self.entries_added == 0 {
            return 0;
        }
        if self.length == 0 && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        } else if id > self.last_id {
            return INVALID_ENTRIES_READ;
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            if id < self.first_id {
                return added - self.length as i64;
            } else if id == self.first_id {
                return added - self.length as i64 + 1;
            }
        }
        INVALID_ENTRIES_READ
    }

    /// Approximate payload size (for DEBUG OBJECT / memory estimates).
    pub fn approx_size(&self) -> usize {
        let lp: usize = self.listpacks.values().map(|b| b.len() + 16).sum();
        let groups: usize = self
            .groups
            .iter()
            .map(|(n, g)| {
                n.len()
                    + g.pel.len() * 40
                    + g.consumers
                        .iter()
                        .map(|(c, k)| c.len() + 16 + k.pel.len() * 16)
                        .sum::<usize>()
            })
            .sum();
        lp + groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::listpack::LpWriter;

    fn lp(master: &[&[u8]], entries: &[(i64, i64, i64, Vec<&[u8]>)]) -> Vec<u8> {
        let mut w = LpWriter::new();
        let live = entries.iter().filter(|e| e.0 & FLAG_DELETED == 0).count();
        w.push_int(live as i64);
        w.push_int((entries.len() - live) as i64);
        w.push_int(master.len() as i64);
        for f in master {
            w.push(f);
        }
        w.push_int(0);
        for (flags, ms, seq, vals) in entries {
            w.push_int(*flags);
            w.push_int(*ms);
            w.push_int(*seq);
            if flags & FLAG_SAMEFIELDS != 0 {
                for v in vals {
                    w.push(v);
                }
                w.push_int(3 + vals.len() as i64);
            } else {
                w.push_int(vals.len() as i64 / 2);
                for v in vals {
                    w.push(v);
                }
                w.push_int(4 + vals.len() as i64);
            }
        }
        w.finish()
    }

    #[test]
    fn walks_samefields_and_explicit_entries() {
        let blob = lp(
            &[b"a", b"b"],
            &[
                (2, 0, 0, vec![b"1", b"x"]),
                (3, 0, 1, vec![b"2", b"y"]),
                (0, 5, 0, vec![b"c", b"z"]),
            ],
        );
        let es = walk_listpack(StreamId::new(100, 0), &blob).unwrap();
        assert_eq!(es.len(), 3);
        assert_eq!(es[0].id, StreamId::new(100, 0));
        assert_eq!(
            es[0].fields,
            vec![
                (Bytes::from("a"), Bytes::from("1")),
                (Bytes::from("b"), Bytes::from("x"))
            ]
        );
        assert!(es[1].deleted);
        assert_eq!(es[2].id, StreamId::new(105, 0));
        assert_eq!(es[2].fields, vec![(Bytes::from("c"), Bytes::from("z"))]);
    }

    #[test]
    fn bad_counters_and_truncation_are_refused() {
        let mut w = LpWriter::new();
        w.push_int(1);
        w.push_int(0);
        w.push_int(0);
        w.push_int(0);
        let blob = w.finish();
        assert!(walk_listpack(StreamId::default(), &blob).is_err());
        let good = lp(&[b"a"], &[(2, 0, 0, vec![b"1"])]);
        assert!(walk_listpack(StreamId::default(), &good).is_ok());
        for cut in 0..good.len() {
            assert!(walk_listpack(StreamId::default(), &good[..cut]).is_err());
        }
    }

    #[test]
    fn id_be_round_trip_and_order() {
        let a = StreamId::new(1, u64::MAX);
        let b = StreamId::new(2, 0);
        assert!(a < b);
        assert!(a.to_be() < b.to_be());
        assert_eq!(StreamId::from_be(&a.to_be()), a);
    }
}
