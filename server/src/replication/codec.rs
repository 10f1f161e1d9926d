//! The RDB codec used for full syncs.
//!
//! TEMPORARY: until the `rdb` branch (the real codec: `crate::rdb::{save, load}`)
//! is merged, this is a minimal stand-in with the same interface: it writes RDB v10
//! with plain encodings (string, list, set, hash, zset2; CRC64 written as 0, which
//! Redis accepts as "no checksum") and reads those plus int/LZF-encoded strings.
//! Once `crate::rdb` exists this file becomes `pub use crate::rdb::{...}`.

use crate::db::Db;
use crate::types::Value;
use bytes::Bytes;
use std::io::{Read, Write};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplInfo {
    pub replid: String,
    pub offset: i64,
    pub stream_db: i64,
}

#[derive(Debug, Clone)]
pub struct SaveOptions {
    pub compression: bool,
    pub checksum: bool,
    pub repl: Option<ReplInfo>,
    pub aof_base: bool,
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub now_ms: i64,
    pub drop_expired: bool,
}

#[derive(Debug, Clone, Default)]
pub struct LoadInfo {
    pub keys: u64,
    pub expired: u64,
    pub repl: Option<ReplInfo>,
    pub version: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Format(String),
}

fn put_len(w: &mut Vec<u8>, n: u64) {
    if n < 64 {
        w.push(n as u8);
    } else if n < 16384 {
        w.push(0x40 | (n >> 8) as u8);
        w.push(n as u8);
    } else if n <= u32::MAX as u64 {
        w.push(0x80);
        w.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        w.push(0x81);
        w.extend_from_slice(&n.to_be_bytes());
    }
}

fn put_str(w: &mut Vec<u8>, s: &[u8]) {
    put_len(w, s.len() as u64);
    w.extend_from_slice(s);
}

pub fn save<W: Write>(dbs: &[Db], opts: &SaveOptions, w: &mut W) -> std::io::Result<()> {
    let mut b = Vec::new();
    b.extend_from_slice(b"REDIS0010");
    let mut aux = |k: &str, v: &str| {
        b.push(0xFA);
        put_str(&mut b, k.as_bytes());
        put_str(&mut b, v.as_bytes());
    };
    aux("redis-ver", crate::REDIS_VERSION);
    aux("redis-bits", "64");
    aux("ctime", &(crate::server::now_ms() / 1000).to_string());
    aux("used-mem", "0");
    if let Some(r) = &opts.repl {
        aux("repl-stream-db", &r.stream_db.to_string());
        aux("repl-id", &r.replid);
        aux("repl-offset", &r.offset.to_string());
    }
    aux("aof-base", if opts.aof_base { "1" } else { "0" });
    for (i, db) in dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        b.push(0xFE);
        put_len(&mut b, i as u64);
        b.push(0xFB);
        put_len(&mut b, db.len() as u64);
        put_len(&mut b, db.expires_count() as u64);
        for (k, e) in db.iter() {
            if let Some(at) = e.expire() {
                b.push(0xFC);
                b.extend_from_slice(&at.to_le_bytes());
            }
            match &e.value {
                Value::Str(s) => {
                    b.push(0);
                    put_str(&mut b, k);
                    put_str(&mut b, s);
                }
                Value::List(l) => {
                    b.push(1);
                    put_str(&mut b, k);
                    put_len(&mut b, l.len() as u64);
                    for x in l {
                        put_str(&mut b, x);
                    }
                }
                Value::Set(s) => {
                    b.push(2);
                    put_str(&mut b, k);
                    put_len(&mut b, s.len() as u64);
                    for x in s {
                        put_str(&mut b, x);
                    }
                }
                Value::ZSet(z) => {
                    b.push(5);
                    put_str(&mut b, k);
                    put_len(&mut b, z.len() as u64);
                    for (m, sc) in z.iter() {
                        put_str(&mut b, m);
                        b.extend_from_slice(&sc.to_le_bytes());
                    }
                }
                Value::Hash(h) => {
                    b.push(4);
                    put_str(&mut b, k);
                    put_len(&mut b, h.len() as u64);
                    for (f, v) in h {
                        put_str(&mut b, f);
                        put_str(&mut b, v);
                    }
                }
            }
        }
    }
    b.push(0xFF);
    b.extend_from_slice(&[0u8; 8]);
    w.write_all(&b)
}

struct Rd<'a, R: Read> {
    r: &'a mut R,
}

fn fmt_err(s: &str) -> RdbError {
    RdbError::Format(s.to_string())
}

impl<R: Read> Rd<'_, R> {
    fn bytes(&mut self, n: usize) -> Result<Vec<u8>, RdbError> {
        if n > 1 << 30 {
            return Err(fmt_err("length too large"));
        }
        let mut v = vec![0u8; n];
        self.r.read_exact(&mut v).map_err(|_| {
            fmt_err("Short read or OOM loading DB. Unrecoverable error, aborting now.")
        })?;
        Ok(v)
    }
    fn u8(&mut self) -> Result<u8, RdbError> {
        Ok(self.bytes(1)?[0])
    }
    /// (length, is_special_encoding)
    fn len(&mut self) -> Result<(u64, bool), RdbError> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => ((b & 0x3f) as u64, false),
            1 => ((((b & 0x3f) as u64) << 8) | self.u8()? as u64, false),
            2 if b == 0x80 => {
                let v = self.bytes(4)?;
                (u32::from_be_bytes([v[0], v[1], v[2], v[3]]) as u64, false)
            }
            2 if b == 0x81 => {
                let v = self.bytes(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(&v);
                (u64::from_be_bytes(a), false)
            }
            3 => ((b & 0x3f) as u64, true),
            _ => return Err(fmt_err("Unknown length encoding in rdbLoadLen()")),
        })
    }
    fn plain_len(&mut self) -> Result<u64, RdbError> {
        match self.len()? {
            (n, false) => Ok(n),
            _ => Err(fmt_err("unexpected encoded length")),
        }
    }
    fn string(&mut self) -> Result<Bytes, RdbError> {
        let (n, enc) = self.len()?;
        if !enc {
            return Ok(Bytes::from(self.bytes(n as usize)?));
        }
        let v: i64 = match n {
            0 => self.u8()? as i8 as i64,
            1 => {
                let b = self.bytes(2)?;
                i16::from_le_bytes([b[0], b[1]]) as i64
            }
            2 => {
                let b = self.bytes(4)?;
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64
            }
            3 => {
                let clen = self.plain_len()? as usize;
                let ulen = self.plain_len()? as usize;
                let c = self.bytes(clen)?;
                return lzf_decompress(&c, ulen).map(Bytes::from);
            }
            _ => return Err(fmt_err("Unknown RDB string encoding type")),
        };
        Ok(Bytes::from(v.to_string()))
    }
}

fn lzf_decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, RdbError> {
    let mut out: Vec<u8> = Vec::with_capacity(out_len);
    let mut i = 0;
    let bad = || fmt_err("Invalid LZF compressed string");
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            let lit = input.get(i..i + n).ok_or_else(bad)?;
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(i).ok_or_else(bad)? as usize;
                i += 1;
            }
            let lo = *input.get(i).ok_or_else(bad)? as usize;
            i += 1;
            let back = ((ctrl & 0x1f) << 8) + lo + 1;
            if back > out.len() {
                return Err(bad());
            }
            let start = out.len() - back;
            for k in 0..len + 2 {
                let c = out[start + k];
                out.push(c);
            }
        }
    }
    if out.len() != out_len {
        return Err(bad());
    }
    Ok(out)
}

pub fn load<R: Read>(r: &mut R, dbs: &mut [Db], opts: &LoadOptions) -> Result<LoadInfo, RdbError> {
    let mut rd = Rd { r };
    let magic = rd.bytes(9)?;
    if &magic[..5] != b"REDIS" {
        return Err(fmt_err("Wrong signature trying to load DB from file"));
    }
    let version: u32 = std::str::from_utf8(&magic[5..])
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|v| (1..=10).contains(v))
        .ok_or_else(|| fmt_err("Can't handle RDB format version"))?;
    let mut info = LoadInfo {
        version,
        ..Default::default()
    };
    let (mut rid, mut roff, mut rdb_db) = (None, None, 0i64);
    let mut db = 0usize;
    let mut expire: Option<i64> = None;
    loop {
        let t = rd.u8()?;
        match t {
            0xFF => break,
            0xFE => {
                db = rd.plain_len()? as usize;
                if db >= dbs.len() {
                    return Err(fmt_err("DB index out of range"));
                }
            }
            0xFB => {
                rd.plain_len()?;
                rd.plain_len()?;
            }
            0xFA => {
                let k = rd.string()?;
                let v = rd.string()?;
                let v = String::from_utf8_lossy(&v).into_owned();
                match &k[..] {
                    b"repl-id" => rid = Some(v),
                    b"repl-offset" => roff = v.parse::<i64>().ok(),
                    b"repl-stream-db" => rdb_db = v.parse().unwrap_or(0),
                    _ => {}
                }
            }
            0xFC => {
                let b = rd.bytes(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(&b);
                expire = Some(i64::from_le_bytes(a));
            }
            0xFD => {
                let b = rd.bytes(4)?;
                expire = Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64 * 1000);
            }
            0xF8 => {
                rd.plain_len()?;
            }
            0xF9 => {
                rd.u8()?;
            }
            0..=5 => {
                let key = rd.string()?;
                let value = match t {
                    0 => Value::Str(rd.string()?),
                    1 => {
                        let n = rd.plain_len()?;
                        let mut l = std::collections::VecDeque::new();
                        for _ in 0..n {
                            l.push_back(rd.string()?);
                        }
                        Value::List(l)
                    }
                    2 => {
                        let n = rd.plain_len()?;
                        let mut s = crate::types::HashSetB::default();
                        for _ in 0..n {
                            s.insert(rd.string()?);
                        }
                        Value::Set(s)
                    }
                    4 => {
                        let n = rd.plain_len()?;
                        let mut h = crate::types::HashMapB::default();
                        for _ in 0..n {
                            let f = rd.string()?;
                            h.insert(f, rd.string()?);
                        }
                        Value::Hash(h)
                    }
                    5 => {
                        let n = rd.plain_len()?;
                        let mut z = crate::types::ZSet::new();
                        for _ in 0..n {
                            let m = rd.string()?;
                            let b = rd.bytes(8)?;
                            let mut a = [0u8; 8];
                            a.copy_from_slice(&b);
                            z.insert(m, f64::from_le_bytes(a));
                        }
                        Value::ZSet(z)
                    }
                    _ => return Err(fmt_err("Unsupported RDB value type (zset v1)")),
                };
                let exp = expire.take();
                if opts.drop_expired && exp.is_some_and(|at| at <= opts.now_ms) {
                    info.expired += 1;
                    continue;
                }
                dbs[db].set_with_expire(key, value, exp, 0);
                info.keys += 1;
            }
            other => {
                return Err(fmt_err(&format!(
                "Unknown RDB value type {other} (this stand-in codec reads plain encodings only)"
            )))
            }
        }
    }
    // Checksum (not verified by the stand-in).
    rd.bytes(8)?;
    if let (Some(replid), Some(offset)) = (rid, roff) {
        info.repl = Some(ReplInfo {
            replid,
            offset,
            stream_db: rdb_db,
        });
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_repl_info() {
        let mut dbs = vec![Db::new(), Db::new()];
        dbs[1].set(Bytes::from("k"), Value::Str(Bytes::from("v")), 0);
        dbs[1].set_expire(b"k", 99_999_999_999_999);
        let opts = SaveOptions {
            compression: false,
            checksum: false,
            repl: Some(ReplInfo {
                replid: "a".repeat(40),
                offset: 42,
                stream_db: 1,
            }),
            aof_base: false,
        };
        let mut out = Vec::new();
        save(&dbs, &opts, &mut out).expect("save");
        let mut back = vec![Db::new(), Db::new()];
        let lo = LoadOptions {
            now_ms: 0,
            drop_expired: false,
        };
        let info = load(&mut &out[..], &mut back, &lo).expect("load");
        assert_eq!(info.keys, 1);
        assert_eq!(info.repl.map(|r| (r.offset, r.stream_db)), Some((42, 1)));
        assert_eq!(back[1].expire_of(b"k"), Some(99_999_999_999_999));
        // Truncated input is an error, not a panic.
        for cut in [0, 5, 20, out.len() - 3] {
            let mut b = vec![Db::new(), Db::new()];
            assert!(load(&mut &out[..cut], &mut b, &lo).is_err());
        }
    }
}
