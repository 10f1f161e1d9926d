//! Conversions between RESP and Lua values, as Redis documents them:
//! - a command's reply to Lua ([`reply_to_lua`]): integers to numbers, bulk strings to
//!   strings, nil to `false` (RESP2) or `nil` (RESP3), status to `{ok=...}`, errors to
//!   `{err=...}`, arrays to tables; under RESP3 maps to `{map=...}`, sets to
//!   `{set=...}`, doubles to `{double=...}`, big numbers to `{big_number=...}`...
//! - a script's result to RESP ([`lua_to_reply`]): numbers truncated to integers,
//!   `false` to nil, tables to arrays up to the first nil, `{err=}`/`{ok=}` tables,
//!   and the RESP3 forms. Nesting is walked without recursion and, like Redis (whose
//!   Lua C stack runs out), an element nested deeper than [`MAX_DEPTH`] becomes an
//!   error.

use crate::resp::Reply;
use mlua::{Lua, Table, Value};

/// How deep a returned table may nest before its element becomes Redis's
/// `reached lua stack limit` error (measured on Redis 7.0.15).
pub const MAX_DEPTH: usize = 7995;

/// How deep a command reply may nest (our commands never come close).
const MAX_REPLY_DEPTH: usize = 128;

/// A Lua number as Redis's `(long long)` cast turns it into an integer (the x86
/// conversion: NaN and out-of-range values become `i64::MIN`).
pub fn number_to_i64(n: f64) -> i64 {
    if n.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// Replaces CR and LF by spaces, as Redis does for status and error texts.
fn one_line(s: &[u8]) -> String {
    String::from_utf8_lossy(s).replace(['\r', '\n'], " ")
}

/// Writes a script's result to `out`. `script_resp3` is the script's
/// `redis.setresp` (it decides how booleans are sent), `out.resp3` the caller's.
pub fn lua_to_reply(v: Value, script_resp3: bool, out: &mut Reply) -> mlua::Result<()> {
    let mut stack: Vec<(Value, usize)> = vec![(v, 0)];
    while let Some((v, depth)) = stack.pop() {
        if depth >= MAX_DEPTH {
            out.error("ERR reached lua stack limit");
            continue;
        }
        match v {
            Value::String(s) => out.bulk(&s.as_bytes()),
            Value::Boolean(b) => {
                if script_resp3 {
                    out.boolean(b);
                } else if b {
                    out.int(1);
                } else {
                    out.null();
                }
            }
            Value::Integer(i) => out.int(i as i64),
            Value::Number(n) => out.int(number_to_i64(n)),
            Value::Table(t) => table_to_reply(t, depth, &mut stack, out)?,
            _ => out.null(),
        }
    }
    Ok(())
}

fn table_to_reply(
    t: Table,
    depth: usize,
    stack: &mut Vec<(Value, usize)>,
    out: &mut Reply,
) -> mlua::Result<()> {
    if let Value::String(e) = t.raw_get::<Value>("err")? {
        out.error(&one_line(&e.as_bytes()));
        return Ok(());
    }
    if let Value::String(s) = t.raw_get::<Value>("ok")? {
        out.simple(&one_line(&s.as_bytes()));
        return Ok(());
    }
    if let Some(d) = number(&t.raw_get::<Value>("double")?) {
        out.double(d);
        return Ok(());
    }
    if let Value::String(s) = t.raw_get::<Value>("big_number")? {
        let s = one_line(&s.as_bytes());
        if out.resp3 {
            out.raw(format!("({s}\r\n").as_bytes());
        } else {
            out.bulk(s.as_bytes());
        }
        return Ok(());
    }
    if let Value::Table(m) = t.raw_get::<Value>("map")? {
        let mut items = Vec::new();
        for pair in m.pairs::<Value, Value>() {
            let (k, v) = pair?;
            items.push((k, v));
        }
        out.map(items.len());
        for (k, v) in items.into_iter().rev() {
            stack.push((v, depth + 1));
            stack.push((k, depth + 1));
        }
        return Ok(());
    }
    if let Value::Table(s) = t.raw_get::<Value>("set")? {
        let mut items = Vec::new();
        for pair in s.pairs::<Value, Value>() {
            items.push(pair?.0);
        }
        out.set(items.len());
        for k in items.into_iter().rev() {
            stack.push((k, depth + 1));
        }
        return Ok(());
    }
    if let Value::Table(v) = t.raw_get::<Value>("verbatim_string")? {
        if let (Value::String(f), Value::String(s)) =
            (v.raw_get::<Value>("format")?, v.raw_get::<Value>("string")?)
        {
            let (f, s) = (f.as_bytes(), s.as_bytes());
            if out.resp3 {
                out.raw(format!("={}\r\n", s.len() + 4).as_bytes());
                out.raw(&f[..f.len().min(3)]);
                out.raw(b":");
                out.raw(&s);
                out.raw(b"\r\n");
            } else {
                out.bulk(&s);
            }
            return Ok(());
        }
    }
    // An array: elements 1, 2, ... up to the first nil.
    let mut items = Vec::new();
    loop {
        let v: Value = t.raw_get(items.len() + 1)?;
        if v.is_nil() {
            break;
        }
        items.push(v);
    }
    out.array(items.len());
    for v in items.into_iter().rev() {
        stack.push((v, depth + 1));
    }
    Ok(())
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// A command's reply (the bytes it wrote) as the Lua value `redis.call` returns;
/// the flag says it was an error reply (`redis.call` then raises it).
pub fn reply_to_lua(lua: &Lua, buf: &[u8]) -> mlua::Result<(Value, bool)> {
    let failed = buf.first() == Some(&b'-');
    let mut p = Parser { buf, pos: 0 };
    let v = if buf.is_empty() {
        // A command that produced no reply (it would have blocked): nil, like Redis.
        Value::Boolean(false)
    } else {
        p.value(lua, 0)?
    };
    Ok((v, failed))
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed() -> mlua::Error {
    mlua::Error::runtime("ERR unexpected reply from command")
}

impl<'a> Parser<'a> {
    fn line(&mut self) -> mlua::Result<&'a [u8]> {
        let rest = self.buf.get(self.pos..).ok_or_else(malformed)?;
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(malformed)?;
        self.pos += end + 2;
        Ok(&rest[..end])
    }

    fn int(&mut self) -> mlua::Result<i64> {
        crate::resp::parse_i64(self.line()?).ok_or_else(malformed)
    }

    fn bytes(&mut self, n: usize) -> mlua::Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(malformed)?;
        let s = self.buf.get(self.pos..end).ok_or_else(malformed)?;
        self.pos = end + 2;
        Ok(s)
    }

    fn value(&mut self, lua: &Lua, depth: usize) -> mlua::Result<Value> {
        if depth > MAX_REPLY_DEPTH {
            return Err(malformed());
        }
        let kind = *self.buf.get(self.pos).ok_or_else(malformed)?;
        self.pos += 1;
        Ok(match kind {
            b'+' => {
                let t = lua.create_table()?;
                t.raw_set("ok", lua.create_string(self.line()?)?)?;
                Value::Table(t)
            }
            b'-' => {
                let t = lua.create_table()?;
                t.raw_set("err", lua.create_string(self.line()?)?)?;
                Value::Table(t)
            }
            b':' => Value::Number(self.int()? as f64),
            b'$' | b'=' => {
                let n = self.int()?;
                if n < 0 {
                    return Ok(Value::Boolean(false));
                }
                let s = self.bytes(n as usize)?;
                if kind == b'=' {
                    let t = lua.create_table()?;
                    let (f, body) = if s.len() >= 4 {
                        s.split_at(4)
                    } else {
                        (s, &[][..])
                    };
                    t.raw_set("format", lua.create_string(&f[..f.len().min(3)])?)?;
                    t.raw_set("string", lua.create_string(body)?)?;
                    let outer = lua.create_table()?;
                    outer.raw_set("verbatim_string", t)?;
                    Value::Table(outer)
                } else {
                    Value::String(lua.create_string(s)?)
                }
            }
            b'*' | b'>' | b'~' | b'%' => {
                let n = self.int()?;
                if n < 0 {
                    return Ok(Value::Boolean(false));
                }
                let n = n as usize;
                let t =
                    lua.create_table_with_capacity(if kind == b'*' { n.min(1024) } else { 0 }, 0)?;
                match kind {
                    b'~' => {
                        for _ in 0..n {
                            let k = self.value(lua, depth + 1)?;
                            t.raw_set(k, true)?;
                        }
                        wrap(lua, "set", t)?
                    }
                    b'%' => {
                        for _ in 0..n {
                            let k = self.value(lua, depth + 1)?;
                            let v = self.value(lua, depth + 1)?;
                            t.raw_set(k, v)?;
                        }
                        wrap(lua, "map", t)?
                    }
                    _ => {
                        for i in 1..=n {
                            let v = self.value(lua, depth + 1)?;
                            t.raw_set(i, v)?;
                        }
                        Value::Table(t)
                    }
                }
            }
            b'_' => {
                self.line()?;
                Value::Nil
            }
            b'#' => Value::Boolean(self.line()? == b"t"),
            b',' => {
                let s = self.line()?;
                let d = std::str::from_utf8(s)
                    .ok()
                    .and_then(|s| match s {
                        "inf" => Some(f64::INFINITY),
                        "-inf" => Some(f64::NEG_INFINITY),
                        "nan" => Some(f64::NAN),
                        s => s.parse().ok(),
                    })
                    .ok_or_else(malformed)?;
                let t = lua.create_table()?;
                t.raw_set("double", d)?;
                Value::Table(t)
            }
            b'(' => {
                let t = lua.create_table()?;
                t.raw_set("big_number", lua.create_string(self.line()?)?)?;
                Value::Table(t)
            }
            _ => return Err(malformed()),
        })
    }
}

fn wrap(lua: &Lua, key: &str, t: Table) -> mlua::Result<Value> {
    let outer = lua.create_table()?;
    outer.raw_set(key, t)?;
    Ok(Value::Table(outer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_truncate_like_a_c_cast() {
        assert_eq!(number_to_i64(3.99), 3);
        assert_eq!(number_to_i64(-3.99), -3);
        assert_eq!(number_to_i64(f64::INFINITY), i64::MIN);
        assert_eq!(number_to_i64(f64::NAN), i64::MIN);
        assert_eq!(number_to_i64(-1e300), i64::MIN);
    }

    #[test]
    fn replies_parse_into_lua_values() {
        let lua = Lua::new();
        let (v, failed) = reply_to_lua(&lua, b"*3\r\n:1\r\n$-1\r\n+OK\r\n").unwrap();
        assert!(!failed);
        let mut out = Reply::new(false);
        lua_to_reply(v, false, &mut out).unwrap();
        assert_eq!(out.buf, b"*3\r\n:1\r\n$-1\r\n+OK\r\n");
        let (_, failed) = reply_to_lua(&lua, b"-ERR x\r\n").unwrap();
        assert!(failed);
        assert!(reply_to_lua(&lua, b"$5\r\nab").is_err());
        assert!(reply_to_lua(&lua, b"*9999999999\r\n").is_err());
    }
}
