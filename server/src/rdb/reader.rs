//! RDB decoder. Every length read from the file is bounds-checked against the data
//! actually present: strings are read in chunks of at most 1 MiB and collections
//! grow as elements arrive, so a forged length fails with "truncated" instead of
//! allocating what the file claims.

use super::listpack::LpEntry;
use super::*;
use crate::db::Db;
use crate::types::hash::{Hash, Limits};
use crate::types::stream::{Consumer, ConsumerGroup, PendingEntry, StreamId};
use crate::types::{List, Set, Stream, Value, ZSet};
use bytes::Bytes;
use std::io::Read;

const CHUNK: usize = 1 << 20;
/// Upper bound for capacity hints taken from the file.
const MAX_HINT: usize = 4096;
/// Largest key count a `RESIZEDB` opcode pre-sizes a database for (16M keys: the
/// count is only a hint read from the file).
const RESIZEDB_MAX_RESERVE: u64 = 1 << 24;

struct Rd<'a, R: Read> {
    r: &'a mut R,
    off: u64,
    crc: u64,
}

enum Len {
    Len(u64),
    Enc(u8),
}

impl<R: Read> Rd<'_, R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RdbError> {
        match self.r.read_exact(buf) {
            Ok(()) => {
                self.crc = crc64::update(self.crc, buf);
                self.off += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(RdbError::Truncated(self.off))
            }
            Err(e) => Err(RdbError::Io(e)),
        }
    }

    fn corrupt(&self, what: impl Into<String>) -> RdbError {
        RdbError::Corrupt {
            offset: self.off,
            what: what.into(),
        }
    }

    fn u8(&mut self) -> Result<u8, RdbError> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }

    fn arr<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut b = [0u8; N];
        self.fill(&mut b)?;
        Ok(b)
    }

    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, RdbError> {
        let n = usize::try_from(n).map_err(|_| self.corrupt("length too large"))?;
        let mut v = Vec::with_capacity(n.min(CHUNK));
        while v.len() < n {
            let start = v.len();
            let step = (n - start).min(CHUNK);
            v.resize(start + step, 0);
            self.fill(&mut v[start..])?;
        }
        Ok(v)
    }

    fn len_or_enc(&mut self) -> Result<Len, RdbError> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Len::Len((b & 0x3f) as u64),
            1 => Len::Len(((b & 0x3f) as u64) << 8 | self.u8()? as u64),
            3 => Len::Enc(b & 0x3f),
            _ => match b {
                0x80 => Len::Len(u32::from_be_bytes(self.arr()?) as u64),
                0x81 => Len::Len(u64::from_be_bytes(self.arr()?)),
                _ => return Err(self.corrupt(format!("unknown length encoding 0x{b:02x}"))),
            },
        })
    }

    fn len(&mut self) -> Result<u64, RdbError> {
        match self.len_or_enc()? {
            Len::Len(n) => Ok(n),
            Len::Enc(_) => Err(self.corrupt("string encoding where a length was expected")),
        }
    }

    fn count(&mut self) -> Result<u64, RdbError> {
        self.len()
    }

    fn string(&mut self) -> Result<Bytes, RdbError> {
        match self.len_or_enc()? {
            Len::Len(n) => Ok(Bytes::from(self.bytes(n)?)),
            Len::Enc(0) => Ok(Bytes::from((self.u8()? as i8).to_string())),
            Len::Enc(1) => Ok(Bytes::from(i16::from_le_bytes(self.arr()?).to_string())),
            Len::Enc(2) => Ok(Bytes::from(i32::from_le_bytes(self.arr()?).to_string())),
            Len::Enc(3) => {
                let clen = self.len()?;
                let ulen = self.len()?;
                let data = self.bytes(clen)?;
                // LZF expands at most ~ 264/2 x; a larger claim is corrupt.
                if ulen > clen.saturating_mul(140).saturating_add(64) {
                    return Err(self.corrupt("LZF uncompressed length out of range"));
                }
                lzf::decompress(&data, ulen as usize)
                    .map(Bytes::from)
                    .ok_or_else(|| self.corrupt("invalid LZF data"))
            }
            Len::Enc(e) => Err(self.corrupt(format!("unknown string encoding {e}"))),
        }
    }

    /// [`Self::bytes`] into `out` (cleared first): no allocation once `out` has
    /// grown, and no zeroing beyond the bytes read.
    fn bytes_into(&mut self, n: u64, out: &mut Vec<u8>) -> Result<(), RdbError> {
        let n = usize::try_from(n).map_err(|_| self.corrupt("length too large"))?;
        out.clear();
        while out.len() < n {
            let start = out.len();
            let step = (n - start).min(CHUNK);
            out.resize(start + step, 0);
            self.fill(&mut out[start..])?;
        }
        Ok(())
    }

    /// [`Self::string`] into `out` (`scratch` holds compressed input), for strings
    /// copied into their own storage right after: the loader reads a million keys
    /// and values without an allocation each for the transient copy.
    fn string_into(&mut self, out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> Result<(), RdbError> {
        match self.len_or_enc()? {
            Len::Len(n) => self.bytes_into(n, out),
            Len::Enc(3) => {
                let clen = self.len()?;
                let ulen = self.len()?;
                self.bytes_into(clen, scratch)?;
                if ulen > clen.saturating_mul(140).saturating_add(64) {
                    return Err(self.corrupt("LZF uncompressed length out of range"));
                }
                if lzf::decompress_into(scratch, ulen as usize, out) {
                    Ok(())
                } else {
                    Err(self.corrupt("invalid LZF data"))
                }
            }
            Len::Enc(e @ 0..=2) => {
                let v: i64 = match e {
                    0 => (self.u8()? as i8).into(),
                    1 => i16::from_le_bytes(self.arr()?).into(),
                    _ => i32::from_le_bytes(self.arr()?).into(),
                };
                out.clear();
                out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
                Ok(())
            }
            Len::Enc(e) => Err(self.corrupt(format!("unknown string encoding {e}"))),
        }
    }

    fn double_ascii(&mut self) -> Result<f64, RdbError> {
        let n = self.u8()?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let b = self.bytes(n as u64)?;
                parse_double(&b).ok_or_else(|| self.corrupt("invalid double"))
            }
        }
    }

    /// Skips a module-serialised value (opcodes until 0).
    fn skip_module_value(&mut self) -> Result<(), RdbError> {
        for _ in 0..u32::MAX {
            match self.len()? {
                0 => return Ok(()),
                1 | 2 => {
                    self.len()?;
                }
                3 => {
                    self.arr::<4>()?;
                }
                4 => {
                    self.arr::<8>()?;
                }
                5 => {
                    self.string()?;
                }
                op => return Err(self.corrupt(format!("unknown module opcode {op}"))),
            }
        }
        Err(self.corrupt("module value too long"))
    }
}

pub(crate) fn parse_double(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?.trim();
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        t => t.parse().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lp_score(e: &LpEntry) -> Option<f64> {
    match e {
        LpEntry::Int(i) => Some(*i as f64),
        LpEntry::Str(s) => parse_double(s),
    }
}

/// A hash from the pairs of a compact body (listpack, ziplist or zipmap).
fn pairs_to_hash(entries: &[LpEntry], limits: &Limits) -> Option<Value> {
    if entries.len() & 1 == 1 {
        return None;
    }
    let pairs = entries
        .chunks_exact(2)
        .map(|p| (p[0].to_bytes(), p[1].to_bytes()))
        .collect();
    Some(Value::Hash(Box::new(Hash::from_loaded(
        pairs, true, limits,
    ))))
}

fn pairs_to_zset(entries: &[LpEntry], shapes: &Shapes) -> Option<Value> {
    if entries.len() & 1 == 1 {
        return None;
    }
    let mut items = Vec::with_capacity(entries.len() / 2);
    for p in entries.chunks_exact(2) {
        items.push((p[0].to_bytes(), lp_score(&p[1])?));
    }
    // A listpack stays one unless it has too many entries (Redis checks only the
    // count here, not the member lengths).
    let lim = crate::types::zset::Limits {
        value: u32::MAX as usize - 1,
        ..shapes.zset
    };
    Some(Value::ZSet(Box::new(ZSet::from_items(items, lim))))
}

fn read_value<R: Read>(
    rd: &mut Rd<R>,
    t: u8,
    key: &[u8],
    opts: &LoadOptions,
) -> Result<Value, RdbError> {
    let bad = |rd: &Rd<R>, what: &str| rd.corrupt(format!("{what} (key '{}')", lossy(key)));
    Ok(match t {
        T_STRING => Value::Str(rd.string()?.into()),
        T_LIST => {
            let n = rd.count()?;
            let mut l = List::new(opts.shapes.list_fill);
            for _ in 0..n {
                l.push_back(&rd.string()?);
            }
            Value::List(Box::new(l))
        }
        T_SET => {
            let n = rd.count()?;
            let mut s = Set::new();
            for _ in 0..n {
                s.insert(&rd.string()?, opts.shapes.set_max_intset_entries);
            }
            Value::Set(Box::new(s))
        }
        T_ZSET | T_ZSET_2 => {
            let n = rd.count()?;
            let mut items = Vec::with_capacity((n as usize).min(MAX_HINT));
            for _ in 0..n {
                let m = rd.string()?;
                let score = if t == T_ZSET {
                    rd.double_ascii()?
                } else {
                    f64::from_le_bytes(rd.arr()?)
                };
                if score.is_nan() {
                    return Err(bad(rd, "NaN score in sorted set"));
                }
                items.push((m, score));
            }
            // Small enough sets load compact, as Redis converts them after loading.
            Value::ZSet(Box::new(ZSet::from_items(items, opts.shapes.zset)))
        }
        T_HASH => {
            let n = rd.count()?;
            let mut pairs = Vec::with_capacity((n as usize).min(MAX_HINT));
            for _ in 0..n {
                let f = rd.string()?;
                let v = rd.string()?;
                pairs.push((f, v));
            }
            Value::Hash(Box::new(Hash::from_loaded(pairs, false, &opts.shapes.hash)))
        }
        T_HASH_ZIPMAP => {
            let blob = rd.string()?;
            let pairs = zipmap::parse(&blob).ok_or_else(|| bad(rd, "invalid zipmap"))?;
            let pairs = pairs
                .into_iter()
                .map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v)))
                .collect();
            Value::Hash(Box::new(Hash::from_loaded(pairs, true, &opts.shapes.hash)))
        }
        T_LIST_ZIPLIST => {
            let blob = rd.string()?;
            let e = ziplist::parse(&blob).ok_or_else(|| bad(rd, "invalid ziplist"))?;
            let mut l = List::new(opts.shapes.list_fill);
            l.extend(e.iter().map(|x| x.to_bytes()));
            Value::List(Box::new(l))
        }
        T_SET_INTSET => {
            let blob = rd.string()?;
            let v = intset::parse(&blob).ok_or_else(|| bad(rd, "invalid intset"))?;
            let mut s = Set::new();
            let mut buf = itoa::Buffer::new();
            for i in v {
                s.insert(buf.format(i).as_bytes(), opts.shapes.set_max_intset_entries);
            }
            Value::Set(Box::new(s))
        }
        T_SET_LISTPACK => {
            let blob = rd.string()?;
            let e = listpack::parse(&blob).ok_or_else(|| bad(rd, "invalid listpack"))?;
            let mut s = Set::new();
            for x in e.iter() {
                s.insert(&x.to_bytes(), opts.shapes.set_max_intset_entries);
            }
            Value::Set(Box::new(s))
        }
        T_ZSET_ZIPLIST | T_HASH_ZIPLIST => {
            let blob = rd.string()?;
            let e = ziplist::parse(&blob).ok_or_else(|| bad(rd, "invalid ziplist"))?;
            let v = if t == T_ZSET_ZIPLIST {
                pairs_to_zset(&e, &opts.shapes)
            } else {
                pairs_to_hash(&e, &opts.shapes.hash)
            };
            v.ok_or_else(|| bad(rd, "invalid ziplist pairs"))?
        }
        T_HASH_LISTPACK | T_ZSET_LISTPACK => {
            let blob = rd.string()?;
            let e = listpack::parse(&blob).ok_or_else(|| bad(rd, "invalid listpack"))?;
            let v = if t == T_ZSET_LISTPACK {
                pairs_to_zset(&e, &opts.shapes)
            } else {
                pairs_to_hash(&e, &opts.shapes.hash)
            };
            v.ok_or_else(|| bad(rd, "invalid listpack pairs"))?
        }
        T_LIST_QUICKLIST | T_LIST_QUICKLIST_2 => {
            let n = rd.count()?;
            let mut l = List::new(opts.shapes.list_fill);
            for _ in 0..n {
                let container = if t == T_LIST_QUICKLIST_2 {
                    rd.len()?
                } else {
                    2
                };
                let blob = rd.string()?;
                match container {
                    1 => l.push_back(&blob),
                    2 => {
                        let e = if t == T_LIST_QUICKLIST {
                            ziplist::parse(&blob)
                        } else {
                            listpack::parse(&blob)
                        }
                        .ok_or_else(|| bad(rd, "invalid quicklist node"))?;
                        l.extend(e.iter().map(|x| x.to_bytes()));
                    }
                    c => return Err(bad(rd, &format!("unknown quicklist container {c}"))),
                }
            }
            Value::List(Box::new(l))
        }
        T_STREAM_LISTPACKS | T_STREAM_LISTPACKS_2 | T_STREAM_LISTPACKS_3 => {
            Value::Stream(Box::new(read_stream(rd, t, key)?))
        }
        6 | 7 => {
            return Err(RdbError::ModuleNotSupported {
                rdb_type: t,
                key: lossy(key),
            })
        }
        _ => return Err(bad(rd, &format!("unknown value type {t}"))),
    })
}

fn read_id_lens<R: Read>(rd: &mut Rd<R>) -> Result<StreamId, RdbError> {
    let ms = rd.len()?;
    let seq = rd.len()?;
    Ok(StreamId { ms, seq })
}

fn read_raw_id<R: Read>(rd: &mut Rd<R>) -> Result<StreamId, RdbError> {
    Ok(StreamId::from_be(&rd.arr::<16>()?))
}

/// Types 15 (5.0-6.2), 19 (7.0) and 21 (7.2). Type 15 lacks first_id, max_deleted_id,
/// entries_added and the groups' entries_read: they are derived the way Redis 7.0
/// derives them. Type 21's per-consumer active time is kept but not written back.
fn read_stream<R: Read>(rd: &mut Rd<R>, t: u8, key: &[u8]) -> Result<Stream, RdbError> {
    let bad = |rd: &Rd<R>, what: &str| rd.corrupt(format!("{what} (stream key '{}')", lossy(key)));
    let mut s = Stream::default();
    let nodes = rd.count()?;
    let mut live_total: u64 = 0;
    for _ in 0..nodes {
        let master = rd.string()?;
        let Ok(master) = <[u8; 16]>::try_from(&master[..]) else {
            return Err(bad(rd, "stream node key is not the size of a stream ID"));
        };
        let master = StreamId::from_be(&master);
        let blob = rd.string()?;
        live_total += s
            .insert_node(master, Vec::from(blob))
            .map_err(|e| bad(rd, e))?;
    }
    s.length = rd.len()?;
    if s.length != live_total {
        return Err(bad(rd, "stream length does not match its live entries"));
    }
    s.last_id = read_id_lens(rd)?;
    if t == T_STREAM_LISTPACKS {
        s.max_deleted_id = StreamId::default();
        s.entries_added = s.length;
        s.first_id = s.first_live_id();
    } else {
        s.first_id = read_id_lens(rd)?;
        s.max_deleted_id = read_id_lens(rd)?;
        s.entries_added = rd.len()?;
    }
    let ngroups = rd.count()?;
    for _ in 0..ngroups {
        let name = rd.string()?;
        let last_id = read_id_lens(rd)?;
        let entries_read = if t == T_STREAM_LISTPACKS {
            s.estimate_entries_read(last_id)
        } else {
            rd.len()? as i64
        };
        let mut g = ConsumerGroup {
            last_id,
            entries_read,
            pel: Default::default(),
            consumers: Default::default(),
        };
        let npel = rd.count()?;
        for _ in 0..npel {
            let id = read_raw_id(rd)?;
            let delivery_time = i64::from_le_bytes(rd.arr()?);
            let delivery_count = rd.len()?;
            let nack = PendingEntry {
                delivery_time,
                delivery_count,
                consumer: None,
            };
            if g.pel.insert(id, nack).is_some() {
                return Err(bad(
                    rd,
                    "duplicated global PEL entry in stream consumer group",
                ));
            }
        }
        let ncons = rd.count()?;
        for _ in 0..ncons {
            let cname = rd.string()?;
            let seen_time = i64::from_le_bytes(rd.arr()?);
            let active_time = if t == T_STREAM_LISTPACKS_3 {
                Some(i64::from_le_bytes(rd.arr()?))
            } else {
                None
            };
            let mut c = Consumer {
                seen_time,
                active_time,
                pel: Default::default(),
            };
            let n = rd.count()?;
            for _ in 0..n {
                let id = read_raw_id(rd)?;
                let Some(nack) = g.pel.get_mut(&id) else {
                    return Err(bad(rd, "consumer PEL entry not found in the group PEL"));
                };
                if nack.consumer.is_some() || !c.pel.insert(id) {
                    return Err(bad(rd, "duplicated consumer PEL entry"));
                }
                nack.consumer = Some(cname.clone());
            }
            if g.consumers.insert(cname, c).is_some() {
                return Err(bad(rd, "duplicated stream consumer"));
            }
        }
        if s.groups.insert(name, g).is_some() {
            return Err(bad(rd, "duplicated stream consumer group name"));
        }
    }
    Ok(s)
}

/// Loads an RDB from `r` into `dbs` (which the caller has emptied). On error `dbs`
/// may be partially filled: callers load into fresh Dbs and swap on success, so a
/// failed load never replaces live data.
pub fn load<R: Read>(r: &mut R, dbs: &mut [Db], opts: &LoadOptions) -> Result<LoadInfo, RdbError> {
    load_delayed(r, dbs, opts, 0)
}

/// A loaded string value from the reused buffer: copied into its own exact
/// block (or inline), or for a large one the buffer itself is taken, as `Str`
/// would keep it anyway.
fn stored_str(buf: &mut Vec<u8>) -> crate::types::Str {
    if buf.len() > crate::types::string::SHARED_MIN {
        crate::types::Str::from(std::mem::take(buf))
    } else {
        crate::types::Str::new(buf)
    }
}

/// [`load`] with `key-load-delay`: a pause per key read (see [`key_delay`]).
pub fn load_delayed<R: Read>(
    r: &mut R,
    dbs: &mut [Db],
    opts: &LoadOptions,
    key_delay: i32,
) -> Result<LoadInfo, RdbError> {
    let mut rd = Rd { r, off: 0, crc: 0 };
    let magic: [u8; 9] = rd.arr().map_err(|e| match e {
        RdbError::Truncated(_) => RdbError::WrongSignature,
        e => e,
    })?;
    if &magic[..5] != b"REDIS" {
        return Err(RdbError::WrongSignature);
    }
    let version: u32 = std::str::from_utf8(&magic[5..])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(RdbError::WrongSignature)?;
    if !(1..=10).contains(&version) {
        return Err(RdbError::UnsupportedVersion(version));
    }
    let mut info = LoadInfo {
        version,
        ..Default::default()
    };
    let (mut repl_id, mut repl_off, mut repl_db) = (None::<String>, None::<i64>, None::<i64>);
    let mut db = 0usize;
    let mut expire: Option<i64> = None;
    let mut read = 0u64;
    // Reused for every key and string value (see `Rd::string_into`).
    let (mut key, mut val, mut lzf_in) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let t = rd.u8()?;
        match t {
            OP_EOF => break,
            OP_SELECTDB => {
                let n = rd.len()?;
                if n >= dbs.len() as u64 {
                    return Err(RdbError::TooManyDbs(dbs.len()));
                }
                db = n as usize;
            }
            OP_EXPIRETIME => expire = Some(i32::from_le_bytes(rd.arr()?) as i64 * 1000),
            OP_EXPIRETIME_MS => expire = Some(i64::from_le_bytes(rd.arr()?)),
            OP_RESIZEDB => {
                let keys = rd.len()?;
                rd.len()?;
                // Pre-size the table (bounded: the count comes from the file).
                if let Some(d) = dbs.get_mut(db) {
                    d.try_reserve(keys.min(RESIZEDB_MAX_RESERVE) as usize);
                }
            }
            OP_FREQ => {
                rd.u8()?;
            }
            OP_IDLE => {
                rd.len()?;
            }
            OP_AUX => {
                let k = rd.string()?;
                let v = rd.string()?;
                let vs = lossy(&v);
                match &k[..] {
                    b"redis-ver" => info.redis_ver = Some(vs),
                    b"ctime" => info.ctime = vs.parse().ok(),
                    b"used-mem" => info.used_mem = vs.parse().ok(),
                    b"aof-base" => info.aof_base = vs.parse::<i64>().is_ok_and(|v| v != 0),
                    b"repl-id" if v.len() == 40 => repl_id = Some(vs),
                    b"repl-offset" => repl_off = vs.parse().ok(),
                    b"repl-stream-db" => repl_db = vs.parse().ok(),
                    _ => {}
                }
            }
            OP_MODULE_AUX => {
                rd.len()?; // module id
                let when_op = rd.len()?;
                if when_op != 2 {
                    return Err(rd.corrupt("module aux 'when' opcode is not UINT"));
                }
                rd.len()?;
                rd.skip_module_value()?;
            }
            OP_FUNCTION | OP_FUNCTION2 => {
                info.functions
                    .push(function_code(&mut rd, t).map_err(|(_, e)| e)?);
            }
            t => {
                read += 1;
                super::key_delay(key_delay, read);
                rd.string_into(&mut key, &mut lzf_in)?;
                let value = if t == T_STRING {
                    rd.string_into(&mut val, &mut lzf_in)?;
                    Value::Str(stored_str(&mut val))
                } else {
                    read_value(&mut rd, t, &key, opts)?
                };
                let at = expire.take();
                if value.is_empty_container() {
                    info.empty_skipped += 1;
                    continue;
                }
                let Some(d) = dbs.get_mut(db) else {
                    return Err(RdbError::TooManyDbs(dbs.len()));
                };
                let duplicate = || RdbError::DuplicateKey {
                    key: lossy(&key),
                    db,
                };
                if opts.drop_expired && at.is_some_and(|a| a < opts.now_ms) {
                    if d.contains(&key) {
                        return Err(duplicate());
                    }
                    info.expired += 1;
                    info.expired_keys
                        .push((db, bytes::Bytes::copy_from_slice(&key)));
                    continue;
                }
                if d.insert_new(&key, value, at, 0).is_err() {
                    return Err(duplicate());
                }
                info.keys += 1;
            }
        }
    }
    if version >= 5 {
        let expected = rd.crc;
        let got = u64::from_le_bytes(rd.arr()?);
        info.checksum_disabled = got == 0;
        if got != 0 && got != expected {
            return Err(RdbError::BadChecksum { expected, got });
        }
    }
    if let (Some(id), Some(off), Some(sdb)) = (repl_id, repl_off, repl_db) {
        if off != -1 && sdb != -1 {
            info.repl = Some(ReplInfo {
                replid: id,
                offset: off,
                stream_db: sdb,
            });
        }
    }
    Ok(info)
}

/// Decodes one value from its RDB encoding (type byte and body, no key): the inverse
/// of `writer::value_bytes`. Bytes after the value are ignored, as Redis's RESTORE does.
pub fn value_from_bytes(buf: &[u8], opts: &LoadOptions) -> Result<Value, RdbError> {
    let mut r = buf;
    let mut rd = Rd {
        r: &mut r,
        off: 0,
        crc: 0,
    };
    let t = rd.u8()?;
    read_value(&mut rd, t, b"", opts)
}

/// A library's code from a function opcode. FUNCTION2 holds the code as loaded;
/// FUNCTION (the 7.0-rc1/rc2 layout) holds name, engine, an optional description and
/// the code without its metadata line, which is rebuilt (the description dropped)
/// as Redis 7.0 does. A failure comes with Redis's text for the part not read.
fn function_code<R: Read>(rd: &mut Rd<'_, R>, op: u8) -> Result<Bytes, (&'static str, RdbError)> {
    let mut string = |what: &'static str| rd.string().map_err(|e| (what, e));
    if op == OP_FUNCTION2 {
        return string("Failed loading library payload");
    }
    let name = string("Failed loading library name")?;
    let engine = string("Failed loading engine name")?;
    let has_desc = rd
        .len()
        .map_err(|e| ("Failed loading library description indicator", e))?;
    if has_desc != 0 {
        rd.string()
            .map_err(|e| ("Failed loading library description", e))?;
    }
    let body = rd
        .string()
        .map_err(|e| ("Failed loading library blob", e))?;
    // Redis joins the parts as C strings: each ends at its first NUL.
    let c_str = |b: &[u8]| -> Vec<u8> { b.split(|&c| c == 0).next().unwrap_or_default().to_vec() };
    let mut code = b"#!".to_vec();
    code.extend(c_str(&engine));
    code.extend_from_slice(b" name=");
    code.extend(c_str(&name));
    code.push(b'\n');
    code.extend(c_str(&body));
    Ok(code.into())
}

/// The library codes of a FUNCTION DUMP payload (see `writer::functions_payload`),
/// checked as FUNCTION RESTORE checks them; the error is Redis's reply text.
pub fn functions_from_payload(payload: &[u8]) -> Result<Vec<Bytes>, String> {
    const BAD: &str = "ERR DUMP payload version or checksum are wrong";
    let body_len = payload.len().checked_sub(10).ok_or(BAD)?;
    let footer = &payload[body_len..];
    let ver = u16::from_le_bytes([footer[0], footer[1]]);
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    let crc = u64::from_le_bytes(crc);
    if ver > 10 || crc != super::crc64::crc64(&payload[..body_len + 2]) {
        return Err(BAD.to_string());
    }
    // As Redis's reader, entries are read from the whole payload while more than the
    // footer is left: a cut entry reads into the footer's bytes.
    let mut r = payload;
    let mut rd = Rd {
        r: &mut r,
        off: 0,
        crc: 0,
    };
    let mut codes = Vec::new();
    while payload.len() - (rd.off as usize) > 10 {
        let t = rd.u8().map_err(|_| "ERR payload is corrupt".to_string())?;
        match t {
            OP_FUNCTION | OP_FUNCTION2 => {
                codes.push(function_code(&mut rd, t).map_err(|(what, _)| format!("ERR {what}"))?)
            }
            _ => return Err("ERR given type is not a function".to_string()),
        }
    }
    Ok(codes)
}
