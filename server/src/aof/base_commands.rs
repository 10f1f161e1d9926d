//! The AOF base written as commands (`aof-use-rdb-preamble no`, a `.base.aof` file),
//! in the form Redis 7.0 writes it, so either server loads the other's:
//! * one `FUNCTION LOAD <code>` per function library, first;
//! * per non-empty db, `SELECT <db>`, then per key the commands that rebuild it:
//!   `SET`; `RPUSH`, `SADD`, `ZADD` (score before member, `%.17g`) and `HMSET` with
//!   at most 64 elements (pairs) each; a stream as one `XADD` per entry (an empty
//!   stream as `XADD key MAXLEN 0 0-1 x y`), `XSETID key <last> ENTRIESADDED <n>
//!   MAXDELETEDID <id>`, per group `XGROUP CREATE key group <last> ENTRIESREAD <n>`,
//!   then per consumer `XGROUP CREATECONSUMER` (no pending entries) or one `XCLAIM key
//!   group consumer 0 <id> TIME <ms> RETRYCOUNT <n> JUSTID FORCE` per pending entry;
//! * `PEXPIREAT key <ms>` after a key with an expiry;
//! * with `aof-timestamp-enabled yes`, a `#TS:<unix time>` line first.
//!
//! Every argument is a RESP bulk string, numbers included.

use crate::db::Db;
use crate::rdb::SaveOptions;
use crate::types::stream::{Stream, StreamId};
use crate::types::Value;
use std::io::{self, Write};

/// The most elements (or pairs) one rebuilding command carries (Redis's
/// `AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_CMD: usize = 64;

/// A RESP command being written: its argument count first, then bulk strings.
struct Out<'a, W: Write> {
    w: &'a mut W,
}

impl<W: Write> Out<'_, W> {
    fn count(&mut self, n: usize) -> io::Result<()> {
        write!(self.w, "*{n}\r\n")
    }

    fn bulk(&mut self, b: &[u8]) -> io::Result<()> {
        write!(self.w, "${}\r\n", b.len())?;
        self.w.write_all(b)?;
        self.w.write_all(b"\r\n")
    }

    fn num(&mut self, n: impl itoa::Integer) -> io::Result<()> {
        self.bulk(itoa::Buffer::new().format(n).as_bytes())
    }

    fn id(&mut self, id: StreamId) -> io::Result<()> {
        self.bulk(id.to_string().as_bytes())
    }

    fn cmd(&mut self, args: &[&[u8]]) -> io::Result<()> {
        self.count(args.len())?;
        args.iter().try_for_each(|a| self.bulk(a))
    }

    /// `name key` then `items` in commands of at most [`ITEMS_PER_CMD`] items of
    /// `width` arguments each, written by `put`.
    fn batched<T>(
        &mut self,
        name: &[u8],
        key: &[u8],
        len: usize,
        width: usize,
        items: impl Iterator<Item = T>,
        mut put: impl FnMut(&mut Self, T) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut left = len;
        let mut in_cmd = 0;
        for item in items {
            if in_cmd == 0 {
                let n = left.min(ITEMS_PER_CMD);
                self.count(2 + n * width)?;
                self.bulk(name)?;
                self.bulk(key)?;
            }
            put(self, item)?;
            in_cmd += 1;
            if in_cmd == ITEMS_PER_CMD {
                in_cmd = 0;
            }
            left = left.saturating_sub(1);
        }
        Ok(())
    }

    fn value(&mut self, key: &[u8], v: &Value) -> io::Result<()> {
        match v {
            Value::Str(s) => self.cmd(&[b"SET", key, s]),
            Value::List(l) => self.batched(b"RPUSH", key, l.len(), 1, l.iter(), |o, e| o.bulk(e)),
            Value::Set(s) => self.batched(b"SADD", key, s.len(), 1, s.iter(), |o, m| {
                m.with(|b| o.bulk(b))
            }),
            Value::ZSet(z) => self.batched(b"ZADD", key, z.len(), 2, z.iter(), |o, (m, sc)| {
                o.bulk(crate::resp::format_double(sc).as_bytes())?;
                o.bulk(m)
            }),
            Value::Hash(h) => self.batched(b"HMSET", key, h.len(), 2, h.iter(), |o, (f, v)| {
                o.bulk(f)?;
                o.bulk(v)
            }),
            Value::Stream(st) => self.stream(key, st),
        }
    }

    fn stream(&mut self, key: &[u8], st: &Stream) -> io::Result<()> {
        if st.is_empty() {
            // An empty stream still exists (with its last ID and groups): one entry
            // trimmed away at once creates it.
            self.cmd(&[b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"])?;
        } else {
            for e in st.range(StreamId::MIN, StreamId::MAX, false) {
                self.count(3 + e.fields.len() * 2)?;
                self.bulk(b"XADD")?;
                self.bulk(key)?;
                self.id(e.id)?;
                for (f, v) in &e.fields {
                    self.bulk(&f.to_bytes())?;
                    self.bulk(&v.to_bytes())?;
                }
            }
        }
        self.count(7)?;
        self.bulk(b"XSETID")?;
        self.bulk(key)?;
        self.id(st.last_id)?;
        self.bulk(b"ENTRIESADDED")?;
        self.num(st.entries_added)?;
        self.bulk(b"MAXDELETEDID")?;
        self.id(st.max_deleted_id)?;
        for (name, g) in &st.groups {
            self.count(7)?;
            self.bulk(b"XGROUP")?;
            self.bulk(b"CREATE")?;
            self.bulk(key)?;
            self.bulk(name)?;
            self.id(g.last_id)?;
            self.bulk(b"ENTRIESREAD")?;
            self.num(g.entries_read)?;
            for (cname, c) in &g.consumers {
                if c.pel.is_empty() {
                    self.cmd(&[b"XGROUP", b"CREATECONSUMER", key, name, cname])?;
                    continue;
                }
                for id in &c.pel {
                    let (time, count) = g
                        .pel
                        .get(id)
                        .map(|n| (n.delivery_time, n.delivery_count))
                        .unwrap_or((0, 0));
                    self.count(12)?;
                    self.bulk(b"XCLAIM")?;
                    self.bulk(key)?;
                    self.bulk(name)?;
                    self.bulk(cname)?;
                    self.bulk(b"0")?;
                    self.id(*id)?;
                    self.bulk(b"TIME")?;
                    self.num(time)?;
                    self.bulk(b"RETRYCOUNT")?;
                    self.num(count)?;
                    self.bulk(b"JUSTID")?;
                    self.bulk(b"FORCE")?;
                }
            }
        }
        Ok(())
    }
}

/// Writes `dbs` (and `opts.functions`) as the commands that rebuild them.
pub fn write<W: Write>(dbs: &[Db], opts: &SaveOptions, w: &mut W) -> io::Result<()> {
    let mut out = Out { w };
    if opts.timestamp {
        write!(out.w, "#TS:{}\r\n", crate::util::now_ms() / 1000)?;
    }
    for code in &opts.functions {
        out.cmd(&[b"FUNCTION", b"LOAD", code])?;
    }
    let mut written = 0u64;
    for (i, db) in dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        out.count(2)?;
        out.bulk(b"SELECT")?;
        out.num(i)?;
        for (k, e) in db.iter() {
            if e.value.is_empty_container() {
                continue;
            }
            written += 1;
            crate::rdb::key_delay(opts.key_delay, written);
            out.value(k, e.value)?;
            if let Some(at) = e.meta.has_expire().then(|| db.expire_of(k)).flatten() {
                out.count(3)?;
                out.bulk(b"PEXPIREAT")?;
                out.bulk(k)?;
                out.num(at)?;
            }
        }
    }
    out.w.flush()
}
