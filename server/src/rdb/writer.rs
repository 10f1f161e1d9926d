//! RDB encoder (version 10), choosing the encodings Redis 7.0 would write.

use super::*;
use crate::db::Db;
use crate::types::stream::{Stream, StreamId};
use crate::types::Value;
use std::io::{self, Write};

struct Wr<'a, W: Write> {
    w: &'a mut W,
    crc: u64,
    compression: bool,
    /// Scratch reused by every compressed string of this save.
    lzf: lzf::Compressor,
}

impl<W: Write> Wr<'_, W> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.crc = crc64::update(self.crc, b);
        self.w.write_all(b)
    }

    fn u8(&mut self, b: u8) -> io::Result<()> {
        self.put(&[b])
    }

    fn len(&mut self, n: u64) -> io::Result<()> {
        if n < 64 {
            self.u8(n as u8)
        } else if n < 16384 {
            self.put(&[0x40 | (n >> 8) as u8, (n & 0xff) as u8])
        } else if n <= u32::MAX as u64 {
            self.u8(0x80)?;
            self.put(&(n as u32).to_be_bytes())
        } else {
            self.u8(0x81)?;
            self.put(&n.to_be_bytes())
        }
    }

    fn string(&mut self, s: &[u8]) -> io::Result<()> {
        if s.len() <= 11 && crate::types::is_canonical_int(s) {
            if let Some(v) = crate::resp::parse_i64(s) {
                if let Ok(v) = i8::try_from(v) {
                    return self.put(&[0xC0, v as u8]);
                } else if let Ok(v) = i16::try_from(v) {
                    self.u8(0xC1)?;
                    return self.put(&v.to_le_bytes());
                } else if let Ok(v) = i32::try_from(v) {
                    self.u8(0xC2)?;
                    return self.put(&v.to_le_bytes());
                }
            }
        }
        if self.compression && s.len() > 20 {
            // Taken out for the call so the output can be written through `self`.
            let mut lzf = std::mem::take(&mut self.lzf);
            let written = lzf
                .compress(s, s.len() - 4)
                .map(|c| self.compressed(c, s.len()));
            self.lzf = lzf;
            if let Some(r) = written {
                return r;
            }
        }
        self.len(s.len() as u64)?;
        self.put(s)
    }

    /// An LZF string: 0xC3, compressed length, original length, the bytes.
    fn compressed(&mut self, c: &[u8], orig_len: usize) -> io::Result<()> {
        self.u8(0xC3)?;
        self.len(c.len() as u64)?;
        self.len(orig_len as u64)?;
        self.put(c)
    }

    fn aux(&mut self, k: &str, v: &str) -> io::Result<()> {
        self.u8(OP_AUX)?;
        self.string(k.as_bytes())?;
        self.string(v.as_bytes())
    }

    fn value(&mut self, key: &[u8], v: &Value) -> io::Result<()> {
        match v {
            Value::Str(s) => {
                self.u8(T_STRING)?;
                self.string(key)?;
                self.string(s)
            }
            Value::List(l) => {
                self.u8(T_LIST_QUICKLIST_2)?;
                self.string(key)?;
                // Pack elements into listpack nodes of about 8 KiB (at least one each).
                let mut nodes: Vec<Vec<u8>> = Vec::new();
                let mut cur = listpack::LpWriter::new();
                for e in l.iter() {
                    if !cur.is_empty() && cur.size() + e.len() + 11 > LIST_NODE_MAX_BYTES {
                        nodes.push(std::mem::take(&mut cur).finish());
                    }
                    cur.push(e);
                }
                if !cur.is_empty() {
                    nodes.push(cur.finish());
                }
                self.len(nodes.len() as u64)?;
                for n in nodes {
                    self.len(2)?; // PACKED
                    self.string(&n)?;
                }
                Ok(())
            }
            Value::Hash(h) => {
                // Written in the encoding it has, as Redis does.
                if h.is_compact() {
                    self.u8(T_HASH_LISTPACK)?;
                    self.string(key)?;
                    let mut lp = listpack::LpWriter::new();
                    for (f, v) in h.iter() {
                        lp.push(f);
                        lp.push(v);
                    }
                    self.string(&lp.finish())
                } else {
                    self.u8(T_HASH)?;
                    self.string(key)?;
                    self.len(h.len() as u64)?;
                    for (f, v) in h.iter() {
                        self.string(f)?;
                        self.string(v)?;
                    }
                    Ok(())
                }
            }
            Value::Set(s) => {
                // An intset is written as one (RDB type 11, as Redis does); a small
                // all-integer set of another shape too, since a reader (ours or
                // Redis's) makes such a set an intset again on load anyway.
                let ints: Option<Vec<i64>> = match s.ints() {
                    Some(it) => Some(it.collect()),
                    None if s.len() <= SET_MAX_INTSET_ENTRIES => {
                        s.iter().map(|m| m.with(crate::resp::parse_i64)).collect()
                    }
                    None => None,
                };
                match ints {
                    Some(mut v) if !v.is_empty() => {
                        self.u8(T_SET_INTSET)?;
                        self.string(key)?;
                        self.string(&intset::build(&mut v))
                    }
                    _ => {
                        self.u8(T_SET)?;
                        self.string(key)?;
                        self.len(s.len() as u64)?;
                        for m in s.iter() {
                            m.with(|b| self.string(b))?;
                        }
                        Ok(())
                    }
                }
            }
            Value::ZSet(z) => {
                // The RDB type follows the shape, as Redis writes its encoding.
                if z.is_compact() {
                    self.u8(T_ZSET_LISTPACK)?;
                    self.string(key)?;
                    let mut lp = listpack::LpWriter::new();
                    for (m, s) in z.iter() {
                        lp.push(m);
                        lp.push(crate::resp::format_double(s).as_bytes());
                    }
                    self.string(&lp.finish())
                } else {
                    self.u8(T_ZSET_2)?;
                    self.string(key)?;
                    self.len(z.len() as u64)?;
                    // 7.0 writes from the highest score to the lowest.
                    for (m, s) in z.iter().rev() {
                        self.string(m)?;
                        self.put(&s.to_le_bytes())?;
                    }
                    Ok(())
                }
            }
            Value::Stream(st) => {
                self.u8(T_STREAM_LISTPACKS_2)?;
                self.string(key)?;
                self.stream(st)
            }
        }
    }

    fn id_lens(&mut self, id: StreamId) -> io::Result<()> {
        self.len(id.ms)?;
        self.len(id.seq)
    }

    /// Type 19 body in Redis 7.0's layout (REPLICATION.md 6.9).
    fn stream(&mut self, st: &Stream) -> io::Result<()> {
        self.len(st.listpacks.len() as u64)?;
        for (master, blob) in &st.listpacks {
            self.string(&master.to_be())?;
            self.string(blob)?;
        }
        self.len(st.length)?;
        self.id_lens(st.last_id)?;
        self.id_lens(st.first_id)?;
        self.id_lens(st.max_deleted_id)?;
        self.len(st.entries_added)?;
        self.len(st.groups.len() as u64)?;
        for (name, g) in &st.groups {
            self.string(name)?;
            self.id_lens(g.last_id)?;
            self.len(g.entries_read as u64)?;
            self.len(g.pel.len() as u64)?;
            for (id, nack) in &g.pel {
                self.put(&id.to_be())?;
                self.put(&nack.delivery_time.to_le_bytes())?;
                self.len(nack.delivery_count)?;
            }
            self.len(g.consumers.len() as u64)?;
            for (cname, c) in &g.consumers {
                self.string(cname)?;
                self.put(&c.seen_time.to_le_bytes())?;
                self.len(c.pel.len() as u64)?;
                for id in &c.pel {
                    self.put(&id.to_be())?;
                }
            }
        }
        Ok(())
    }
}

/// Resident memory of this process in bytes (used-mem aux field), 0 if unknown.
fn used_memory() -> i64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// Writes a whole RDB (v10) of `dbs` to `w`.
pub fn save<W: Write>(dbs: &[Db], opts: &SaveOptions, w: &mut W) -> io::Result<()> {
    let mut wr = Wr {
        w,
        crc: 0,
        compression: opts.compression,
        lzf: lzf::Compressor::default(),
    };
    wr.put(b"REDIS0010")?;
    wr.aux("redis-ver", crate::REDIS_VERSION)?;
    wr.aux("redis-bits", "64")?;
    let ctime = crate::util::now_ms() / 1000;
    wr.aux("ctime", &ctime.to_string())?;
    wr.aux("used-mem", &used_memory().to_string())?;
    if let Some(r) = &opts.repl {
        wr.aux("repl-stream-db", &r.stream_db.to_string())?;
        wr.aux("repl-id", &r.replid)?;
        wr.aux("repl-offset", &r.offset.to_string())?;
    }
    wr.aux("aof-base", if opts.aof_base { "1" } else { "0" })?;
    let mut written = 0u64;
    for code in &opts.functions {
        wr.u8(OP_FUNCTION2)?;
        wr.string(code)?;
    }
    for (i, db) in dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        wr.u8(OP_SELECTDB)?;
        wr.len(i as u64)?;
        wr.u8(OP_RESIZEDB)?;
        wr.len(db.len() as u64)?;
        wr.len(db.expires_count() as u64)?;
        for (k, e) in db.iter() {
            if e.value.is_empty_container() {
                continue;
            }
            written += 1;
            super::key_delay(opts.key_delay, written);
            if let Some(at) = e.meta.has_expire().then(|| db.expire_of(k)).flatten() {
                wr.u8(OP_EXPIRETIME_MS)?;
                wr.put(&at.to_le_bytes())?;
            }
            wr.value(k, e.value)?;
        }
    }
    wr.u8(OP_EOF)?;
    let crc = if opts.checksum { wr.crc } else { 0 };
    wr.w.write_all(&crc.to_le_bytes())?;
    wr.w.flush()
}

/// The RDB encoding of one value: its type byte and body, without a key (the
/// payload DUMP wraps). Writes the value under an empty key, whose encoding is the
/// single length byte 0x00 right after the type byte, and cuts that byte out.
pub fn value_bytes(v: &Value, compression: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut wr = Wr {
        w: &mut out,
        crc: 0,
        compression,
        lzf: lzf::Compressor::default(),
    };
    // Writing to a Vec cannot fail.
    if wr.value(b"", v).is_ok() && out.len() >= 2 {
        out.remove(1);
    }
    out
}

/// A FUNCTION DUMP payload: a FUNCTION2 record per library code, then the RDB
/// version (u16 LE) and the CRC64 of everything before it (u64 LE).
pub fn functions_payload(codes: &[bytes::Bytes], compression: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut wr = Wr {
        w: &mut out,
        crc: 0,
        compression,
        lzf: lzf::Compressor::default(),
    };
    for code in codes {
        // Writing to a Vec cannot fail.
        let _ = wr.u8(OP_FUNCTION2).and_then(|_| wr.string(code));
    }
    out.extend_from_slice(&10u16.to_le_bytes());
    let crc = crc64::crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}
