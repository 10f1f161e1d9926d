//! Stream values (the storage layer under the stream commands).
//!
//! A stream is an ordered index (`BTreeMap`, standing in for Redis's rax) of nodes,
//! each a Redis-format listpack keyed by its master ID, plus the stream metadata and
//! the consumer groups. The nodes are kept in exactly the byte layout Redis 7.0 uses
//! in memory and in RDB files, so an RDB round trip reproduces a stream byte for
//! byte, and appends edit the last node in place (amortised O(1)): a node is closed
//! (and shrunk to fit) when it reaches `stream-node-max-bytes` or
//! `stream-node-max-entries`, as `streamAppendItem` does. Deletion only flags an entry
//! (a tombstone); a node whose entries are all deleted is dropped.
//!
//! Stream listpack layout (all numbers are listpack integers):
//! * master entry: `count` (live entries), `deleted`, `num_fields`, the field names,
//!   then `0`;
//! * each entry: `flags` (1 = deleted, 2 = same fields as the master), `ms_delta`,
//!   `seq_delta` (relative to the master ID), then with SAMEFIELDS the `num_fields`
//!   values in master order, otherwise `num_fields` and the field/value pairs; last
//!   `lp_count`, the number of elements of the entry before it.
//!
//! The ID argument parsers shared by every stream command (`-`, `+`, `<ms>`,
//! `<ms>-<seq>`, `<ms>-*`, `(` exclusive ranges) live here too, with their errors.

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

/// A stream: listpack nodes by master ID plus metadata and consumer groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stream {
    /// Listpack nodes by master ID (each a valid stream listpack; the last one may
    /// have spare capacity while it is being appended to).
    pub listpacks: BTreeMap<StreamId, Vec<u8>>,
    /// Number of live entries.
    pub length: u64,
    pub last_id: StreamId,
    /// First live entry ID (0-0 when empty).
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

/// Largest listpack node (STREAM_LISTPACK_MAX_SIZE), whatever the configuration says.
pub const NODE_MAX_SIZE: usize = 1 << 30;

/// Bytes reserved for a new node (STREAM_LISTPACK_MAX_PRE_ALLOCATE).
const NODE_PREALLOC: usize = 4096;

/// Errors of stream operations and ID arguments, with Redis's texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("ERR Invalid stream ID specified as stream command argument")]
    InvalidId,
    #[error("ERR The ID specified in XADD is equal or smaller than the target stream top item")]
    IdTooSmall,
    #[error("ERR The ID specified in XADD must be greater than 0-0")]
    IdZero,
    #[error("ERR The stream has exhausted the last possible ID, unable to add more items")]
    Exhausted,
    #[error("ERR Elements are too large to be stored")]
    TooLarge,
    #[error("ERR invalid start ID for the interval")]
    InvalidStart,
    #[error("ERR invalid end ID for the interval")]
    InvalidEnd,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };

    /// The next ID (streamIncrID); None past the maximum.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                return None;
            }
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID (streamDecrID); None before 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                return None;
            }
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }
}

// ---------------------------------------------------------------------------
// ID arguments

/// Parses an unsigned 64-bit number the way Redis's `string2ull` does: a canonical
/// non-negative integer, or else what C's `strtoull` accepts in full (leading
/// whitespace, an optional sign, leading zeros; a `-` wraps around) without overflow.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if let Some(v) = crate::resp::parse_i64(s) {
        if crate::types::is_canonical_int(s) {
            return u64::try_from(v).ok();
        }
    }
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if let Some(&c) = s.get(i) {
        if c == b'+' || c == b'-' {
            neg = c == b'-';
            i += 1;
        }
    }
    let digits = s.get(i..)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// What XADD was asked to use as the new entry's ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddId {
    /// `*`: generated from the clock.
    Auto,
    /// `<ms>-*`: the sequence is generated.
    Ms(u64),
    /// A full ID (`<ms>` alone means `<ms>-0`).
    Exact(StreamId),
}

/// Longest ID argument Redis accepts (its parse buffer holds 127 characters).
const MAX_ID_LEN: usize = 127;

/// Parses `<ms>[-<seq>]`, `-` and `+`; `missing_seq` fills an absent sequence
/// (streamParseID). With `strict`, `-` and `+` are refused. With `allow_star`,
/// `<ms>-*` yields `Ok((id with seq 0, false))`; the bool says the sequence was given.
fn parse_id_generic(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_star: bool,
) -> Result<(StreamId, bool), StreamError> {
    if arg.len() > MAX_ID_LEN {
        return Err(StreamError::InvalidId);
    }
    match arg {
        b"-" if !strict => return Ok((StreamId::MIN, true)),
        b"+" if !strict => return Ok((StreamId::MAX, true)),
        b"-" | b"+" => return Err(StreamError::InvalidId),
        _ => {}
    }
    let (ms_part, seq_part) = match arg.iter().position(|&c| c == b'-') {
        Some(d) => (&arg[..d], Some(&arg[d + 1..])),
        None => (arg, None),
    };
    let ms = parse_u64(ms_part).ok_or(StreamError::InvalidId)?;
    match seq_part {
        None => Ok((StreamId::new(ms, missing_seq), true)),
        Some(b"*") if allow_star => Ok((StreamId::new(ms, 0), false)),
        Some(seq) => {
            let seq = parse_u64(seq).ok_or(StreamError::InvalidId)?;
            Ok((StreamId::new(ms, seq), true))
        }
    }
}

/// An ID argument where `-` and `+` are allowed (XRANGE ends, XREAD ids...).
pub fn parse_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, StreamError> {
    parse_id_generic(arg, missing_seq, false, false).map(|(id, _)| id)
}

/// An ID argument where `-` and `+` are refused (XDEL, XSETID, XCLAIM...).
pub fn parse_id_strict(arg: &[u8], missing_seq: u64) -> Result<StreamId, StreamError> {
    parse_id_generic(arg, missing_seq, true, false).map(|(id, _)| id)
}

/// XADD's ID argument: `*`, `<ms>-*`, or a strict ID.
pub fn parse_add_id(arg: &[u8]) -> Result<AddId, StreamError> {
    if arg == b"*" {
        return Ok(AddId::Auto);
    }
    let (id, seq_given) = parse_id_generic(arg, 0, true, true)?;
    Ok(if seq_given {
        AddId::Exact(id)
    } else {
        AddId::Ms(id.ms)
    })
}

/// A range end that may be exclusive (`(` prefix, then a strict ID); returns the
/// ID and whether it was exclusive (streamParseIntervalIDOrReply).
pub fn parse_interval(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), StreamError> {
    match arg {
        [b'(', rest @ ..] if !rest.is_empty() => Ok((parse_id_strict(rest, missing_seq)?, true)),
        _ => Ok((parse_id(arg, missing_seq)?, false)),
    }
}

/// The lower end of an XRANGE-style interval, exclusive ends resolved.
pub fn parse_range_start(arg: &[u8]) -> Result<StreamId, StreamError> {
    match parse_interval(arg, 0)? {
        (id, true) => id.incr().ok_or(StreamError::InvalidStart),
        (id, false) => Ok(id),
    }
}

/// The upper end of an XRANGE-style interval, exclusive ends resolved.
pub fn parse_range_end(arg: &[u8]) -> Result<StreamId, StreamError> {
    match parse_interval(arg, u64::MAX)? {
        (id, true) => id.decr().ok_or(StreamError::InvalidEnd),
        (id, false) => Ok(id),
    }
}

// ---------------------------------------------------------------------------
// Node codec

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
        if !(0..=3).contains(&flags) {
            return Err("bad stream entry flags");
        }
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
    if out.first().is_some_and(|e| e.id < master) {
        return Err("stream listpack entry precedes its master ID");
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

/// Whether a listpack element holds exactly the bytes `s` (lpCompare).
pub fn lp_eq(e: &LpEntry<'_>, s: &[u8]) -> bool {
    match e {
        LpEntry::Str(b) => *b == s,
        LpEntry::Int(i) => {
            crate::resp::parse_i64(s) == Some(*i) && crate::types::is_canonical_int(s)
        }
    }
}

/// The decoded master entry of a node.
struct Header<'a> {
    count: i64,
    deleted: i64,
    fields: Vec<LpEntry<'a>>,
    /// Offset of the `deleted` counter.
    deleted_pos: usize,
    /// Offset of the first entry (or the terminator).
    first_entry: usize,
}

fn next_el(blob: &[u8], p: usize) -> Option<(LpEntry<'_>, usize)> {
    listpack::next_at(blob, p)?
}

fn next_int(blob: &[u8], p: usize) -> Option<(i64, usize)> {
    match next_el(blob, p)? {
        (LpEntry::Int(i), n) => Some((i, n)),
        _ => None,
    }
}

fn header(blob: &[u8]) -> Option<Header<'_>> {
    listpack::check_header(blob)?;
    let (count, p) = next_int(blob, listpack::FIRST)?;
    let deleted_pos = p;
    let (deleted, p) = next_int(blob, p)?;
    let (nf, mut p) = next_int(blob, p)?;
    let nf = usize::try_from(nf).ok().filter(|&n| n <= blob.len())?;
    let mut fields = Vec::with_capacity(nf);
    for _ in 0..nf {
        let (f, n) = next_el(blob, p)?;
        fields.push(f);
        p = n;
    }
    let (_zero, p) = next_int(blob, p)?;
    Some(Header {
        count,
        deleted,
        fields,
        deleted_pos,
        first_entry: p,
    })
}

/// One entry of a node, located but not decoded.
#[derive(Clone, Copy)]
struct RawEntry {
    id: StreamId,
    flags: i64,
    /// Offset of the flags element.
    pos: usize,
    /// Offset of the first value (SAMEFIELDS) or of the first field.
    data: usize,
    /// Number of field/value pairs.
    pairs: usize,
    same: bool,
    /// Offset of the next entry.
    next: usize,
}

/// Locates the entry at `pos`; None at the terminator or on a malformed node.
fn raw_entry(blob: &[u8], master: StreamId, nfields: usize, pos: usize) -> Option<RawEntry> {
    let (flags, p) = next_int(blob, pos)?;
    let (ms_delta, p) = next_int(blob, p)?;
    let (seq_delta, mut p) = next_int(blob, p)?;
    let same = flags & FLAG_SAMEFIELDS != 0;
    let pairs = if same {
        nfields
    } else {
        let (n, q) = next_int(blob, p)?;
        p = q;
        usize::try_from(n).ok().filter(|&n| n <= blob.len())?
    };
    let data = p;
    let skip = if same { pairs } else { pairs * 2 };
    for _ in 0..skip {
        p = next_el(blob, p)?.1;
    }
    let (_lp_count, next) = next_int(blob, p)?;
    Some(RawEntry {
        id: StreamId::new(
            master.ms.wrapping_add(ms_delta as u64),
            master.seq.wrapping_add(seq_delta as u64),
        ),
        flags,
        pos,
        data,
        pairs,
        same,
        next,
    })
}

/// An entry borrowed from its node: field names and values as listpack elements.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryRef<'a> {
    pub id: StreamId,
    pub fields: Vec<(LpEntry<'a>, LpEntry<'a>)>,
}

impl EntryRef<'_> {
    pub fn to_owned(&self) -> StreamEntry {
        StreamEntry {
            id: self.id,
            deleted: false,
            fields: self
                .fields
                .iter()
                .map(|(f, v)| (f.to_bytes(), v.to_bytes()))
                .collect(),
        }
    }
}

fn decode_fields<'a>(
    blob: &'a [u8],
    h: &Header<'a>,
    e: &RawEntry,
) -> Vec<(LpEntry<'a>, LpEntry<'a>)> {
    let mut out = Vec::with_capacity(e.pairs);
    let mut p = e.data;
    for k in 0..e.pairs {
        if e.same {
            let Some((v, n)) = next_el(blob, p) else {
                break;
            };
            let Some(f) = h.fields.get(k) else { break };
            out.push((f.clone(), v));
            p = n;
        } else {
            let Some((f, n)) = next_el(blob, p) else {
                break;
            };
            let Some((v, n)) = next_el(blob, n) else {
                break;
            };
            out.push((f, v));
            p = n;
        }
    }
    out
}

/// Replaces the integer element at `pos` by `v`, resizing the blob when the
/// encoding's size changes (lpReplaceInteger) and keeping the header's total size;
/// returns by how many bytes later elements moved.
fn replace_int(blob: &mut Vec<u8>, pos: usize, v: i64) -> Option<isize> {
    let (_, end) = next_el(blob, pos)?;
    // Small integers (the flags, and counters up to 127) are one byte plus a one-byte
    // backlen: rewritten in place without building the encoding.
    if (0..=127).contains(&v) && end - pos == 2 {
        *blob.get_mut(pos)? = v as u8;
        return Some(0);
    }
    let mut enc = Vec::with_capacity(10);
    listpack::encode_int(&mut enc, v);
    if enc.len() == end - pos {
        blob.get_mut(pos..end)?.copy_from_slice(&enc);
        return Some(0);
    }
    // Rare: the counter crossed an encoding boundary (127 -> 128 live entries...).
    let delta = enc.len() as isize - (end - pos) as isize;
    blob.splice(pos..end, enc);
    set_total(blob);
    Some(delta)
}

fn set_total(blob: &mut [u8]) {
    let total = blob.len() as u32;
    if let Some(h) = blob.get_mut(0..4) {
        h.copy_from_slice(&total.to_le_bytes());
    }
}

/// Adds `n` to the header's element count (65535 = unknown stays unknown).
fn add_num_elements(blob: &mut [u8], n: usize) {
    let Some(h) = blob.get_mut(4..6) else { return };
    let cur = u16::from_le_bytes([h[0], h[1]]) as usize;
    if cur != 65535 {
        let v = (cur + n).min(65535) as u16;
        h.copy_from_slice(&v.to_le_bytes());
    }
}

/// Node size limits (`stream-node-max-bytes`, `stream-node-max-entries`); 0 = no
/// limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLimits {
    pub max_bytes: usize,
    pub max_entries: usize,
}

impl Default for NodeLimits {
    fn default() -> Self {
        NodeLimits {
            max_bytes: 4096,
            max_entries: 100,
        }
    }
}

/// How XADD/XTRIM trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

// ---------------------------------------------------------------------------
// Iteration

/// Live entries of a stream between two IDs (inclusive), in order or reversed,
/// decoded one node at a time.
pub struct Range<'a> {
    nodes: Box<dyn Iterator<Item = (&'a StreamId, &'a Vec<u8>)> + 'a>,
    node: Option<NodeCursor<'a>>,
    start: StreamId,
    end: StreamId,
    rev: bool,
    done: bool,
}

struct NodeCursor<'a> {
    blob: &'a [u8],
    master: StreamId,
    header: Header<'a>,
    /// Forward: next entry offset. Unused in reverse.
    pos: usize,
    /// Reverse: entry offsets still to visit (popped from the back).
    stack: Vec<usize>,
}

impl<'a> NodeCursor<'a> {
    fn open(master: StreamId, blob: &'a [u8], rev: bool) -> Option<Self> {
        let header = header(blob)?;
        let mut c = NodeCursor {
            blob,
            master,
            pos: header.first_entry,
            header,
            stack: Vec::new(),
        };
        if rev {
            let mut p = c.pos;
            while let Some(e) = raw_entry(blob, master, c.header.fields.len(), p) {
                c.stack.push(p);
                p = e.next;
            }
        }
        Some(c)
    }

    fn next(&mut self, rev: bool) -> Option<RawEntry> {
        let nf = self.header.fields.len();
        if rev {
            let p = self.stack.pop()?;
            raw_entry(self.blob, self.master, nf, p)
        } else {
            let e = raw_entry(self.blob, self.master, nf, self.pos)?;
            self.pos = e.next;
            Some(e)
        }
    }
}

impl<'a> Iterator for Range<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        while !self.done {
            if self.node.is_none() {
                let Some((master, blob)) = self.nodes.next() else {
                    self.done = true;
                    break;
                };
                self.node = NodeCursor::open(*master, blob, self.rev);
                continue;
            }
            let Some(node) = self.node.as_mut() else {
                continue;
            };
            let Some(e) = node.next(self.rev) else {
                self.node = None;
                continue;
            };
            if (!self.rev && e.id > self.end) || (self.rev && e.id < self.start) {
                self.done = true;
                break;
            }
            if e.flags & FLAG_DELETED != 0 || e.id < self.start || e.id > self.end {
                continue;
            }
            let fields = decode_fields(node.blob, &node.header, &e);
            return Some(EntryRef { id: e.id, fields });
        }
        None
    }
}

/// Where `id` is (or would be) in a node: its master key, if any node can hold it.
fn node_for(listpacks: &BTreeMap<StreamId, Vec<u8>>, id: StreamId) -> Option<StreamId> {
    listpacks.range(..=id).next_back().map(|(k, _)| *k)
}

impl Stream {
    /// Live entries with `start <= id <= end`, ascending (or descending with `rev`).
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool) -> Range<'_> {
        let empty = start > end;
        let nodes: Box<dyn Iterator<Item = (&StreamId, &Vec<u8>)>> = if empty {
            Box::new(std::iter::empty())
        } else if rev {
            Box::new(self.listpacks.range(..=end).rev())
        } else {
            let from = node_for(&self.listpacks, start).unwrap_or(start);
            Box::new(self.listpacks.range(from..=end))
        };
        Range {
            nodes,
            node: None,
            start,
            end,
            rev,
            done: empty,
        }
    }

    /// One live entry by ID.
    pub fn get(&self, id: StreamId) -> Option<StreamEntry> {
        self.range(id, id, false).next().map(|e| e.to_owned())
    }

    /// Whether a live entry with this ID exists.
    pub fn contains(&self, id: StreamId) -> bool {
        self.range(id, id, false).next().is_some()
    }

    /// Live entries in ID order (whole stream; for digests and tests).
    pub fn entries(&self) -> Vec<StreamEntry> {
        self.range(StreamId::MIN, StreamId::MAX, false)
            .map(|e| e.to_owned())
            .collect()
    }

    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// First live entry ID, or `StreamId::MAX` when empty (streamGetEdgeID).
    pub fn first_live_id(&self) -> StreamId {
        self.edge_id(true, true)
    }

    /// The first or last entry ID (tombstones included unless `skip_tombstones`);
    /// MAX (first) or 0-0 (last) when there is none (streamGetEdgeID).
    pub fn edge_id(&self, first: bool, skip_tombstones: bool) -> StreamId {
        let none = if first { StreamId::MAX } else { StreamId::MIN };
        let mut nodes: Box<dyn Iterator<Item = (&StreamId, &Vec<u8>)>> = if first {
            Box::new(self.listpacks.iter())
        } else {
            Box::new(self.listpacks.iter().rev())
        };
        nodes
            .find_map(|(m, blob)| {
                let mut c = NodeCursor::open(*m, blob, !first)?;
                std::iter::from_fn(|| c.next(!first))
                    .find(|e| !skip_tombstones || e.flags & FLAG_DELETED == 0)
                    .map(|e| e.id)
            })
            .unwrap_or(none)
    }

    /// Adds a node loaded from a file (validated); returns its live entry count.
    pub fn insert_node(&mut self, master: StreamId, blob: Vec<u8>) -> Result<u64, LpError> {
        let entries = walk_listpack(master, &blob)?;
        if self.listpacks.contains_key(&master) {
            return Err("stream listpack re-added with an existing master ID");
        }
        let live = entries.iter().filter(|e| !e.deleted).count() as u64;
        self.listpacks.insert(master, blob);
        Ok(live)
    }

    /// The ID XADD would give an entry for `spec` at time `now_ms` (streamAppendItem's
    /// rules), or why it cannot.
    pub fn next_id(&self, spec: AddId, now_ms: u64) -> Result<StreamId, StreamError> {
        if self.last_id == StreamId::MAX {
            return Err(StreamError::Exhausted);
        }
        let id = match spec {
            AddId::Auto => {
                if now_ms > self.last_id.ms {
                    StreamId::new(now_ms, 0)
                } else {
                    self.last_id.incr().ok_or(StreamError::Exhausted)?
                }
            }
            AddId::Ms(ms) if ms == self.last_id.ms => {
                // Redis 7.0.15 reports this overflow with the "too large" text.
                if self.last_id.seq == u64::MAX {
                    return Err(StreamError::TooLarge);
                }
                StreamId::new(ms, self.last_id.seq + 1)
            }
            AddId::Ms(ms) => StreamId::new(ms, 0),
            AddId::Exact(id) => id,
        };
        if id <= self.last_id {
            return Err(StreamError::IdTooSmall);
        }
        Ok(id)
    }

    /// Appends an entry (`fields` = field, value, field, value...) with the ID `spec`
    /// asks for; returns the new ID. Errors leave the stream unchanged.
    pub fn append<B: AsRef<[u8]>>(
        &mut self,
        spec: AddId,
        now_ms: u64,
        fields: &[B],
        limits: NodeLimits,
    ) -> Result<StreamId, StreamError> {
        let total: usize = fields.iter().map(|f| f.as_ref().len()).sum();
        if total > NODE_MAX_SIZE {
            return Err(StreamError::TooLarge);
        }
        let id = self.next_id(spec, now_ms)?;
        let max_bytes = match limits.max_bytes {
            0 => NODE_MAX_SIZE,
            n => n.min(NODE_MAX_SIZE),
        };
        // Append to the last node unless it is full; a full node is closed and gives
        // back its spare capacity.
        let mut appended = false;
        if let Some((&master, blob)) = self.listpacks.iter_mut().next_back() {
            let state = node_state(blob, fields);
            let full = blob.len() + total >= max_bytes
                || state.is_none_or(|(count, deleted, _)| {
                    limits.max_entries > 0
                        && count.saturating_add(deleted) >= limits.max_entries as i64
                });
            match state {
                Some((count, _, same)) if !full => {
                    appended = append_entry(blob, master, id, fields, count, same).is_some();
                }
                _ => blob.shrink_to_fit(),
            }
        }
        if !appended {
            self.listpacks
                .insert(id, new_node(fields, max_bytes.min(NODE_PREALLOC)));
        }
        self.length += 1;
        self.entries_added += 1;
        self.last_id = id;
        if self.length == 1 {
            self.first_id = id;
        }
        Ok(id)
    }

    /// Flags one live entry as deleted (dropping its node when it was the node's
    /// last live entry); false if there is no such live entry (streamDeleteItem).
    /// Leaves `first_id` and `max_deleted_id` to the caller (see [`Stream::xdel`]).
    pub fn remove(&mut self, id: StreamId) -> bool {
        let Some(master) = node_for(&self.listpacks, id) else {
            return false;
        };
        let Some(blob) = self.listpacks.get_mut(&master) else {
            return false;
        };
        let Some(h) = header(blob) else { return false };
        let (count, deleted, deleted_pos, nf) = (h.count, h.deleted, h.deleted_pos, h.fields.len());
        let mut p = h.first_entry;
        let found = loop {
            let Some(e) = raw_entry(blob, master, nf, p) else {
                break None;
            };
            if e.id >= id {
                break (e.id == id && e.flags & FLAG_DELETED == 0).then_some(e);
            }
            p = e.next;
        };
        let Some(e) = found else { return false };
        if count <= 1 {
            self.listpacks.remove(&master);
        } else {
            // Later offsets are unaffected by edits behind them: edit back to front.
            let ok = replace_int(blob, e.pos, e.flags | FLAG_DELETED).is_some()
                && replace_int(blob, deleted_pos, deleted + 1).is_some()
                && replace_int(blob, listpack::FIRST, count - 1).is_some();
            if !ok {
                return false;
            }
        }
        self.length = self.length.saturating_sub(1);
        true
    }

    /// XDEL: deletes the given IDs, updating `max_deleted_id` and `first_id`;
    /// returns how many were deleted.
    pub fn xdel(&mut self, ids: &[StreamId]) -> u64 {
        let mut deleted = 0;
        let mut first_entry = false;
        for &id in ids {
            if self.remove(id) {
                first_entry |= id == self.first_id;
                if id > self.max_deleted_id {
                    self.max_deleted_id = id;
                }
                deleted += 1;
            }
        }
        if deleted > 0 {
            if self.length == 0 {
                self.first_id = StreamId::MIN;
            } else if first_entry {
                self.first_id = self.first_live_id();
            }
        }
        deleted
    }

    /// Trims by MAXLEN or MINID (streamTrim): whole nodes are dropped from the head;
    /// with `approx` it stops at the first node it cannot drop whole, otherwise it
    /// flags the remaining entries of that node. `limit` (0 = none) caps the entries
    /// removed. Returns the number of entries removed.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut removed: u64 = 0;
        loop {
            if let Trim::MaxLen(max) = how {
                if self.length <= max {
                    break;
                }
            }
            let Some((&master, blob)) = self.listpacks.iter_mut().next() else {
                break;
            };
            let Some(h) = header(blob) else { break };
            let entries = h.count.max(0) as u64;
            if limit > 0 && removed + entries > limit {
                break;
            }
            let remove_node = match how {
                Trim::MaxLen(max) => self.length - entries >= max,
                Trim::MinId(min) => last_raw_id(blob, master, &h).is_some_and(|l| l < min),
            };
            if remove_node {
                self.listpacks.remove(&master);
                self.length = self.length.saturating_sub(entries);
                removed += entries;
                continue;
            }
            if approx {
                break;
            }
            let (deleted, deleted_pos, nf) = (h.deleted, h.deleted_pos, h.fields.len());
            let mut p = h.first_entry;
            let mut flagged = 0i64;
            while let Some(e) = raw_entry(blob, master, nf, p) {
                let stop = match how {
                    Trim::MaxLen(max) => self.length <= max,
                    Trim::MinId(min) => e.id >= min,
                };
                if stop {
                    break;
                }
                p = e.next;
                if e.flags & FLAG_DELETED == 0 {
                    let Some(moved) = replace_int(blob, e.pos, e.flags | FLAG_DELETED) else {
                        break;
                    };
                    p = p.saturating_add_signed(moved);
                    flagged += 1;
                    self.length -= 1;
                }
            }
            removed += flagged as u64;
            let _ = replace_int(blob, deleted_pos, deleted + flagged);
            let _ = replace_int(blob, listpack::FIRST, h_count(blob) - flagged);
            break;
        }
        if self.length == 0 {
            self.first_id = StreamId::MIN;
        } else {
            self.first_id = self.first_live_id();
        }
        removed
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

    /// Heap bytes used by the entries (node blobs and index) and the groups, for
    /// MEMORY USAGE and DEBUG OBJECT.
    pub fn approx_size(&self) -> usize {
        let lp: usize = self
            .listpacks
            .values()
            .map(|b| b.capacity() + 16 + 24)
            .sum();
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

fn h_count(blob: &[u8]) -> i64 {
    next_int(blob, listpack::FIRST).map_or(0, |(c, _)| c)
}

/// The ID of a node's last entry, tombstone or not (lpGetEdgeStreamID).
fn last_raw_id(blob: &[u8], master: StreamId, h: &Header<'_>) -> Option<StreamId> {
    let mut p = h.first_entry;
    let mut last = None;
    while let Some(e) = raw_entry(blob, master, h.fields.len(), p) {
        last = Some(e.id);
        p = e.next;
    }
    last
}

/// A new node holding one entry whose fields become the master fields.
fn new_node<B: AsRef<[u8]>>(fields: &[B], capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(capacity);
    buf.extend_from_slice(&[0; listpack::FIRST]);
    let nf = fields.len() / 2;
    listpack::encode_int(&mut buf, 1);
    listpack::encode_int(&mut buf, 0);
    listpack::encode_int(&mut buf, nf as i64);
    for f in fields.iter().step_by(2) {
        listpack::encode(&mut buf, f.as_ref());
    }
    listpack::encode_int(&mut buf, 0);
    listpack::encode_int(&mut buf, FLAG_SAMEFIELDS);
    listpack::encode_int(&mut buf, 0);
    listpack::encode_int(&mut buf, 0);
    for v in fields.iter().skip(1).step_by(2) {
        listpack::encode(&mut buf, v.as_ref());
    }
    listpack::encode_int(&mut buf, 3 + nf as i64);
    buf.push(0xFF);
    set_total(&mut buf);
    let n = (3 + nf + 1 + 4 + nf) as u64;
    let n = n.min(65535) as u16;
    buf[4..6].copy_from_slice(&n.to_le_bytes());
    buf
}

/// Appends an entry to an existing node in place; None if the node is malformed
/// (the caller then starts a new node).
/// A node's live and deleted counts, and whether `fields` (field, value, ...) has the
/// master entry's field names (the entry can then be SAMEFIELDS). Reads the master
/// entry in place (this runs on every append).
fn node_state<B: AsRef<[u8]>>(blob: &[u8], fields: &[B]) -> Option<(i64, i64, bool)> {
    listpack::check_header(blob)?;
    let (count, p) = next_int(blob, listpack::FIRST)?;
    let (deleted, p) = next_int(blob, p)?;
    let (nf, mut p) = next_int(blob, p)?;
    let mut same = usize::try_from(nf).ok() == Some(fields.len() / 2);
    let mut names = fields.iter().step_by(2);
    for _ in 0..nf.max(0) {
        let (f, n) = next_el(blob, p)?;
        if same {
            same = names.next().is_some_and(|name| lp_eq(&f, name.as_ref()));
        }
        p = n;
    }
    Some((count, deleted, same))
}

fn append_entry<B: AsRef<[u8]>>(
    blob: &mut Vec<u8>,
    master: StreamId,
    id: StreamId,
    fields: &[B],
    count: i64,
    same: bool,
) -> Option<()> {
    let nf = fields.len() / 2;
    if blob.pop() != Some(0xFF) {
        return None;
    }
    let before = blob.len();
    listpack::encode_int(blob, if same { FLAG_SAMEFIELDS } else { 0 });
    listpack::encode_int(blob, id.ms.wrapping_sub(master.ms) as i64);
    listpack::encode_int(blob, id.seq.wrapping_sub(master.seq) as i64);
    let elements = if same {
        for v in fields.iter().skip(1).step_by(2) {
            listpack::encode(blob, v.as_ref());
        }
        listpack::encode_int(blob, 3 + nf as i64);
        4 + nf
    } else {
        listpack::encode_int(blob, nf as i64);
        for f in fields.iter().take(nf * 2) {
            listpack::encode(blob, f.as_ref());
        }
        listpack::encode_int(blob, 4 + 2 * nf as i64);
        5 + 2 * nf
    };
    debug_assert!(blob.len() > before);
    blob.push(0xFF);
    set_total(blob);
    add_num_elements(blob, elements);
    replace_int(blob, listpack::FIRST, count + 1).map(|_| ())
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

    fn fv(f: &str, v: &str) -> Vec<Bytes> {
        vec![Bytes::from(f.to_string()), Bytes::from(v.to_string())]
    }

    fn ids(st: &Stream, rev: bool) -> Vec<StreamId> {
        st.range(StreamId::MIN, StreamId::MAX, rev)
            .map(|e| e.id)
            .collect()
    }

    /// Every node still walks (valid layout, counters consistent).
    fn check(st: &Stream) {
        let mut live = 0;
        for (m, blob) in &st.listpacks {
            let es = walk_listpack(*m, blob).unwrap();
            assert_eq!(es.first().unwrap().id, *m);
            live += es.iter().filter(|e| !e.deleted).count() as u64;
        }
        assert_eq!(live, st.length);
    }

    #[test]
    fn appends_fill_nodes_to_the_limits_in_redis_layout() {
        let mut st = Stream::default();
        let lim = NodeLimits {
            max_bytes: 4096,
            max_entries: 3,
        };
        let mut model = Vec::new();
        for i in 1..=7u64 {
            let f = if i == 5 {
                fv("other", "x")
            } else {
                fv("f", &i.to_string())
            };
            let id = st
                .append(AddId::Exact(StreamId::new(i, 0)), 0, &f, lim)
                .unwrap();
            model.push((id, vec![(f[0].clone(), f[1].clone())]));
        }
        check(&st);
        assert_eq!(st.listpacks.len(), 3);
        // Same bytes as a node built in one go (the Redis layout).
        let (m, blob) = encode_listpack(&model[..3]).unwrap();
        assert_eq!(st.listpacks.get(&m).unwrap(), &blob);
        let (m, blob) = encode_listpack(&model[3..6]).unwrap();
        assert_eq!(st.listpacks.get(&m).unwrap(), &blob);
        assert_eq!(st.length, 7);
        assert_eq!(st.first_id, StreamId::new(1, 0));
        assert_eq!(st.last_id, StreamId::new(7, 0));
        assert_eq!(st.entries_added, 7);
        let got: Vec<_> = st.entries().into_iter().map(|e| (e.id, e.fields)).collect();
        assert_eq!(got, model);
    }

    #[test]
    fn ids_are_generated_and_checked_like_xadd() {
        let mut st = Stream::default();
        let lim = NodeLimits::default();
        let f = fv("a", "b");
        assert_eq!(st.append(AddId::Auto, 5, &f, lim), Ok(StreamId::new(5, 0)));
        assert_eq!(st.append(AddId::Auto, 5, &f, lim), Ok(StreamId::new(5, 1)));
        assert_eq!(st.append(AddId::Auto, 4, &f, lim), Ok(StreamId::new(5, 2)));
        assert_eq!(st.append(AddId::Ms(5), 0, &f, lim), Ok(StreamId::new(5, 3)));
        assert_eq!(st.append(AddId::Ms(9), 0, &f, lim), Ok(StreamId::new(9, 0)));
        assert_eq!(
            st.append(AddId::Exact(StreamId::new(9, 0)), 0, &f, lim),
            Err(StreamError::IdTooSmall)
        );
        assert_eq!(
            st.append(AddId::Ms(3), 0, &f, lim),
            Err(StreamError::IdTooSmall)
        );
        let near = StreamId::new(u64::MAX - 1, u64::MAX);
        assert_eq!(st.append(AddId::Exact(near), 0, &f, lim), Ok(near));
        assert_eq!(
            st.append(AddId::Ms(u64::MAX - 1), 0, &f, lim),
            Err(StreamError::TooLarge)
        );
        let top = StreamId::new(u64::MAX, u64::MAX);
        assert_eq!(st.append(AddId::Exact(top), 0, &f, lim), Ok(top));
        assert_eq!(
            st.append(AddId::Auto, 0, &f, lim),
            Err(StreamError::Exhausted)
        );
        assert_eq!(st.length, 7);
        check(&st);
    }

    #[test]
    fn ranges_deletes_and_trims_follow_a_model() {
        let mut st = Stream::default();
        let lim = NodeLimits {
            max_bytes: 200,
            max_entries: 10,
        };
        let mut model: Vec<StreamId> = Vec::new();
        for i in 0..300u64 {
            let id = st
                .append(
                    AddId::Exact(StreamId::new(i / 3 + 1, i % 3)),
                    0,
                    &fv("k", &"v".repeat((i % 7) as usize)),
                    lim,
                )
                .unwrap();
            model.push(id);
        }
        check(&st);
        for k in (0..300).step_by(7) {
            let id = model[k];
            assert!(st.remove(id));
            assert!(!st.remove(id));
        }
        model = model
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % 7 != 0)
            .map(|(_, id)| id)
            .collect();
        check(&st);
        assert_eq!(ids(&st, false), model);
        let mut rev = model.clone();
        rev.reverse();
        assert_eq!(ids(&st, true), rev);
        let (a, b) = (StreamId::new(20, 1), StreamId::new(60, 0));
        let want: Vec<_> = model
            .iter()
            .copied()
            .filter(|id| *id >= a && *id <= b)
            .collect();
        assert_eq!(
            st.range(a, b, false).map(|e| e.id).collect::<Vec<_>>(),
            want
        );
        let mut wr = want.clone();
        wr.reverse();
        assert_eq!(st.range(a, b, true).map(|e| e.id).collect::<Vec<_>>(), wr);
        assert!(st.get(model[5]).is_some());
        assert!(st.get(StreamId::new(1, 0)).is_none());
        // Exact MAXLEN keeps exactly the newest entries.
        let n = st.trim(Trim::MaxLen(100), false, 0);
        assert_eq!(n as usize, model.len() - 100);
        model.drain(..model.len() - 100);
        assert_eq!(ids(&st, false), model);
        assert_eq!(st.first_id, model[0]);
        check(&st);
        // Approximate MINID only drops whole nodes.
        let min = model[50];
        st.trim(Trim::MinId(min), true, 0);
        check(&st);
        let left = ids(&st, false);
        assert!(left.len() >= 50 && left.len() < 100 && left.contains(&min));
        st.trim(Trim::MinId(min), false, 0);
        assert_eq!(ids(&st, false), model[50..].to_vec());
        check(&st);
        // Deleting everything leaves an empty stream with its metadata.
        let all = ids(&st, false);
        assert_eq!(st.xdel(&all), all.len() as u64);
        assert!(st.listpacks.is_empty());
        assert_eq!(st.first_id, StreamId::MIN);
        assert_eq!(st.max_deleted_id, *all.last().unwrap());
    }

    /// The same checks as the `stream` fuzz target's ops mode, over a seeded random
    /// sequence: every node walks after every edit and the live entries equal a model.
    #[test]
    fn seeded_random_edits_keep_nodes_valid_and_match_a_model() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(0x57_3e_a4);
        for round in 0..20 {
            let lim = NodeLimits {
                max_bytes: rng.gen_range(40..600),
                max_entries: rng.gen_range(0..9),
            };
            let mut st = Stream::default();
            let mut model: BTreeMap<StreamId, Vec<(Bytes, Bytes)>> = BTreeMap::new();
            let mut now = 1;
            for _ in 0..400 {
                match rng.gen_range(0..10) {
                    0..=4 => {
                        let spec = match rng.gen_range(0..4) {
                            0 => AddId::Auto,
                            1 => AddId::Ms(rng.gen_range(0..80)),
                            _ => AddId::Exact(StreamId::new(
                                rng.gen_range(0..80),
                                rng.gen_range(0..300),
                            )),
                        };
                        now += rng.gen_range(0..3);
                        let mut f = vec![
                            Bytes::from(if rng.gen_bool(0.8) { "f" } else { "g" }),
                            Bytes::from(rng.gen_range(-200..200i64).to_string()),
                        ];
                        if rng.gen_bool(0.2) {
                            f.push(Bytes::from("n"));
                            f.push(Bytes::from("x".repeat(rng.gen_range(0..70))));
                        }
                        if let Ok(id) = st.append(spec, now, &f, lim) {
                            let pairs = f.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
                            assert!(model.insert(id, pairs).is_none());
                        }
                    }
                    5 | 6 => {
                        let id = match model.keys().nth(rng.gen_range(0..model.len().max(1))) {
                            Some(id) if rng.gen_bool(0.8) => *id,
                            _ => StreamId::new(rng.gen_range(0..80), rng.gen_range(0..9)),
                        };
                        let had = model.remove(&id).is_some();
                        assert_eq!(st.xdel(&[id]), u64::from(had));
                    }
                    7 | 8 => {
                        let approx = rng.gen_bool(0.5);
                        let limit = if approx { rng.gen_range(0..20) } else { 0 };
                        let how = if rng.gen_bool(0.5) {
                            Trim::MaxLen(rng.gen_range(0..40))
                        } else {
                            Trim::MinId(StreamId::new(rng.gen_range(0..90), 0))
                        };
                        let before = st.length;
                        let removed = st.trim(how, approx, limit);
                        assert_eq!(before - removed, st.length);
                        if let (Trim::MaxLen(n), false) = (how, approx) {
                            assert_eq!(st.length, before.min(n));
                        }
                        while model.len() as u64 > st.length {
                            model.pop_first();
                        }
                    }
                    _ => {
                        let a = StreamId::new(rng.gen_range(0..90), 0);
                        let b = StreamId::new(rng.gen_range(0..90), u64::MAX);
                        let want: Vec<StreamId> = if a <= b {
                            model.range(a..=b).map(|(k, _)| *k).collect()
                        } else {
                            Vec::new()
                        };
                        let got: Vec<StreamId> = st.range(a, b, false).map(|e| e.id).collect();
                        assert_eq!(got, want);
                        let mut rev: Vec<StreamId> = st.range(a, b, true).map(|e| e.id).collect();
                        rev.reverse();
                        assert_eq!(rev, want);
                    }
                }
                check(&st);
                let got: Vec<(StreamId, Vec<(Bytes, Bytes)>)> =
                    st.entries().into_iter().map(|e| (e.id, e.fields)).collect();
                let want: Vec<_> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
                assert_eq!(got, want, "round {round}");
                if let Some(first) = model.keys().next() {
                    assert_eq!(st.first_id, *first, "round {round}");
                }
            }
        }
    }

    #[test]
    fn id_arguments_parse_like_redis() {
        assert_eq!(parse_id(b"-", 0), Ok(StreamId::MIN));
        assert_eq!(parse_id(b"+", 0), Ok(StreamId::MAX));
        assert_eq!(parse_id_strict(b"+", 0), Err(StreamError::InvalidId));
        assert_eq!(parse_id(b"5", 7), Ok(StreamId::new(5, 7)));
        assert_eq!(
            parse_id(b"18446744073709551615-18446744073709551615", 0),
            Ok(StreamId::MAX)
        );
        assert_eq!(
            parse_id(b"18446744073709551616", 0),
            Err(StreamError::InvalidId)
        );
        assert_eq!(parse_id(b"1-x", 0), Err(StreamError::InvalidId));
        assert_eq!(parse_id(b"", 0), Err(StreamError::InvalidId));
        assert_eq!(parse_add_id(b"*"), Ok(AddId::Auto));
        assert_eq!(parse_add_id(b"7-*"), Ok(AddId::Ms(7)));
        assert_eq!(parse_add_id(b"7"), Ok(AddId::Exact(StreamId::new(7, 0))));
        assert_eq!(parse_range_start(b"(1-1"), Ok(StreamId::new(1, 2)));
        assert_eq!(parse_range_end(b"(1-0"), Ok(StreamId::new(0, u64::MAX)));
        assert_eq!(parse_range_end(b"(0-0"), Err(StreamError::InvalidEnd));
        assert_eq!(
            parse_range_start(b"(18446744073709551615-18446744073709551615"),
            Err(StreamError::InvalidStart)
        );
        assert_eq!(parse_range_start(b"(-"), Err(StreamError::InvalidId));
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
