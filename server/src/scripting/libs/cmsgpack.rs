//! `cmsgpack`: lua-cmsgpack 0.4.0 as Redis vendors it — `pack(...)`, `unpack(s)`,
//! `unpack_one(s [, offset])`, `unpack_limit(s, limit [, offset])`.
//!
//! Encoding: numbers that are exact 64-bit integers use the smallest integer form,
//! others a float32 when that is lossless, else a float64; strings the smallest str
//! form (fixstr, str8, str16, str32); a table whose keys are exactly the integers 1..n
//! (the empty table included) is an array, any other table a map in `next` order;
//! tables nested 16 deep, and every other type, encode as nil.
//!
//! Decoding accepts the formats lua-cmsgpack knows (no bin/ext types: "Bad data
//! format"). 64-bit unsigned integers come back through a signed conversion, as in the
//! original. Nesting is bounded by the C stack a Lua 5.1 C function gets: the same slot
//! count is kept here ([`CSTACK_SLOTS`]) so deep input fails with the same message, and
//! by [`MAX_DEPTH`] (Redis reaches about 4000 levels; here deeper input gets the same
//! "stack overflow" error at 1000).

use mlua::{Lua, Table, Value};

use super::{
    c_double_to_i32, c_double_to_i64, number_of, raise, Args, Kit, LibError, LibResult, Ret,
    CSTACK_SLOTS, MAX_DEPTH, MAX_OUTPUT_BYTES,
};

/// Tables nested deeper than this encode as nil (`LUACMSGPACK_MAX_NESTING`).
const MAX_NESTING: usize = 16;

/// The library table.
pub(crate) fn module(lua: &Lua, kit: &Kit) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("pack", kit.function(lua, pack)?)?;
    t.set("unpack", kit.function(lua, unpack)?)?;
    t.set("unpack_one", kit.function(lua, unpack_one)?)?;
    t.set("unpack_limit", kit.function(lua, unpack_limit)?)?;
    t.set("_NAME", "cmsgpack")?;
    t.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

// ----------------------------------------------------------------------------------
// Encoding

/// Output buffer with the size cap.
struct Out(Vec<u8>);

impl Out {
    fn put(&mut self, bytes: &[u8]) -> LibResult<()> {
        if self.0.len().saturating_add(bytes.len()) > MAX_OUTPUT_BYTES {
            return raise(format!(
                "MessagePack output exceeds {MAX_OUTPUT_BYTES} bytes"
            ));
        }
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

fn pack(lua: &Lua, a: Args) -> LibResult<Ret> {
    if a.top() == 0 {
        return Err(LibError::BadArg {
            arg: 0,
            msg: "MessagePack pack needs input.".into(),
        });
    }
    // The original reserves a stack slot per argument for its partial results.
    if 2 * a.top() > CSTACK_SLOTS {
        return Err(LibError::BadArg {
            arg: 0,
            msg: "Too many arguments for MessagePack pack.".into(),
        });
    }
    let mut out = Out(Vec::new());
    for i in 1..=a.top() {
        let v = a.get(i).unwrap_or(Value::Nil);
        encode_value(lua, &mut out, &v, 0)?;
    }
    Ok(Ret::One(Value::String(lua.create_string(out.0)?)))
}

fn encode_value(lua: &Lua, out: &mut Out, v: &Value, level: usize) -> LibResult<()> {
    match v {
        Value::String(s) => encode_bytes(out, &s.as_bytes()),
        Value::Boolean(b) => out.put(&[if *b { 0xc3 } else { 0xc2 }]),
        Value::Integer(_) | Value::Number(_) => encode_number(out, number_of(v).unwrap_or(0.0)),
        Value::Table(t) if level < MAX_NESTING => encode_table(lua, out, t, level),
        _ => out.put(&[0xc0]),
    }
}

fn encode_bytes(out: &mut Out, s: &[u8]) -> LibResult<()> {
    let len = s.len();
    if len < 32 {
        out.put(&[0xa0 | len as u8])?;
    } else if len <= 0xff {
        out.put(&[0xd9, len as u8])?;
    } else if len <= 0xffff {
        out.put(&[0xda])?;
        out.put(&(len as u16).to_be_bytes())?;
    } else {
        out.put(&[0xdb])?;
        out.put(&(len as u32).to_be_bytes())?;
    }
    out.put(s)
}

fn encode_number(out: &mut Out, n: f64) -> LibResult<()> {
    let i = c_double_to_i64(n);
    if !n.is_infinite() && i as f64 == n {
        encode_int(out, i)
    } else {
        let f = n as f32;
        if f64::from(f) == n {
            out.put(&[0xca])?;
            out.put(&f.to_be_bytes())
        } else {
            out.put(&[0xcb])?;
            out.put(&n.to_be_bytes())
        }
    }
}

fn encode_int(out: &mut Out, n: i64) -> LibResult<()> {
    if n >= 0 {
        if n <= 127 {
            out.put(&[n as u8])
        } else if n <= 0xff {
            out.put(&[0xcc, n as u8])
        } else if n <= 0xffff {
            out.put(&[0xcd])?;
            out.put(&(n as u16).to_be_bytes())
        } else if n <= 0xffff_ffff {
            out.put(&[0xce])?;
            out.put(&(n as u32).to_be_bytes())
        } else {
            out.put(&[0xcf])?;
            out.put(&(n as u64).to_be_bytes())
        }
    } else if n >= -32 {
        out.put(&[n as i8 as u8])
    } else if n >= -128 {
        out.put(&[0xd0, n as i8 as u8])
    } else if n >= -32768 {
        out.put(&[0xd1])?;
        out.put(&(n as i16).to_be_bytes())
    } else if n >= -2_147_483_648 {
        out.put(&[0xd2])?;
        out.put(&(n as i32).to_be_bytes())
    } else {
        out.put(&[0xd3])?;
        out.put(&n.to_be_bytes())
    }
}

fn encode_table(lua: &Lua, out: &mut Out, t: &Table, level: usize) -> LibResult<()> {
    // First pass (`table_is_an_array`): keys only, nothing kept.
    let mut max: i32 = 0;
    let mut count: i32 = 0;
    let mut array = true;
    let mut pairs: u64 = 0;
    t.for_each(|k: Value, _v: Value| {
        pairs += 1;
        if array {
            match positive_int_key(&k) {
                Some(n) => {
                    max = max.max(n);
                    count = count.wrapping_add(1);
                }
                None => array = false,
            }
        }
        Ok(())
    })?;
    if array && max == count {
        let len = t.raw_len();
        encode_header(out, len as u64, 0x90, 0xdc, 0xdd)?;
        for j in 1..=len {
            let v: Value = t.raw_get(j)?;
            encode_value(lua, out, &v, level + 1)?;
        }
    } else {
        encode_header(out, pairs, 0x80, 0xde, 0xdf)?;
        // Nesting is at most 16 levels, so walking each level with its own iterator
        // (and recursing per pair) keeps few references alive.
        for kv in t.pairs::<Value, Value>() {
            let (k, v) = kv?;
            encode_value(lua, out, &k, level + 1)?;
            encode_value(lua, out, &v, level + 1)?;
        }
    }
    Ok(())
}

/// A key that lets a table stay an array: a number that is a positive C `int`.
fn positive_int_key(k: &Value) -> Option<i32> {
    let n = number_of(k)?;
    let i = c_double_to_i32(n);
    (n > 0.0 && !n.is_infinite() && f64::from(i) == n).then_some(i)
}

fn encode_header(out: &mut Out, n: u64, fix: u8, h16: u8, h32: u8) -> LibResult<()> {
    if n <= 15 {
        out.put(&[fix | n as u8])
    } else if n <= 0xffff {
        out.put(&[h16])?;
        out.put(&(n as u16).to_be_bytes())
    } else {
        out.put(&[h32])?;
        out.put(&(n as u32).to_be_bytes())
    }
}

// ----------------------------------------------------------------------------------
// Decoding

/// Why decoding stopped.
enum DecodeError {
    /// Input ended inside a value ("Missing bytes in input.").
    Eof,
    /// A first byte lua-cmsgpack does not know ("Bad data format in input.").
    BadFormat,
    /// Anything raised at once (stack overflow, nil/NaN map key, mlua failure).
    Now(LibError),
}

impl From<mlua::Error> for DecodeError {
    fn from(e: mlua::Error) -> DecodeError {
        DecodeError::Now(LibError::Lua(e))
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes, consumed; `Eof` when fewer remain.
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.left() < n {
            return Err(DecodeError::Eof);
        }
        let s = self
            .data
            .get(self.pos..self.pos + n)
            .ok_or(DecodeError::Eof)?;
        self.pos += n;
        Ok(s)
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }
}

/// A container being filled.
enum Frame {
    Array {
        table: Table,
        remaining: u64,
        index: f64,
    },
    Map {
        table: Table,
        remaining: u64,
        key: Option<Value>,
    },
}

impl Frame {
    /// Stack slots the original holds for this level while decoding its next item.
    fn slots(&self) -> usize {
        match self {
            Frame::Array { .. } => 2,
            Frame::Map { key, .. } => 1 + usize::from(key.is_some()),
        }
    }
}

/// What the first byte announced.
enum Item {
    Value(Value),
    Array(u64),
    Map(u64),
}

fn read_item(lua: &Lua, c: &mut Cursor) -> Result<Item, DecodeError> {
    let [tag] = c.be::<1>()?;
    let num = |n: f64| Ok(Item::Value(Value::Number(n)));
    let string = |b: &[u8]| -> Result<Item, DecodeError> {
        Ok(Item::Value(Value::String(lua.create_string(b)?)))
    };
    match tag {
        0xcc => num(f64::from(c.be::<1>()?[0])),
        0xd0 => num(f64::from(c.be::<1>()?[0] as i8)),
        0xcd => num(f64::from(u16::from_be_bytes(c.be()?))),
        0xd1 => num(f64::from(i16::from_be_bytes(c.be()?))),
        0xce => num(f64::from(u32::from_be_bytes(c.be()?))),
        0xd2 => num(f64::from(i32::from_be_bytes(c.be()?))),
        // Pushed as a signed lua_Integer in the original: the top bit makes it negative.
        0xcf => num(u64::from_be_bytes(c.be()?) as i64 as f64),
        0xd3 => num(i64::from_be_bytes(c.be()?) as f64),
        0xc0 => Ok(Item::Value(Value::Nil)),
        0xc3 => Ok(Item::Value(Value::Boolean(true))),
        0xc2 => Ok(Item::Value(Value::Boolean(false))),
        0xca => num(f64::from(f32::from_be_bytes(c.be()?))),
        0xcb => num(f64::from_be_bytes(c.be()?)),
        0xd9 => {
            let n = usize::from(c.be::<1>()?[0]);
            string(c.take(n)?)
        }
        0xda => {
            let n = usize::from(u16::from_be_bytes(c.be()?));
            string(c.take(n)?)
        }
        0xdb => {
            let n = usize::try_from(u32::from_be_bytes(c.be()?)).unwrap_or(usize::MAX);
            string(c.take(n)?)
        }
        0xdc => Ok(Item::Array(u64::from(u16::from_be_bytes(c.be()?)))),
        0xdd => Ok(Item::Array(u64::from(u32::from_be_bytes(c.be()?)))),
        0xde => Ok(Item::Map(u64::from(u16::from_be_bytes(c.be()?)))),
        0xdf => Ok(Item::Map(u64::from(u32::from_be_bytes(c.be()?)))),
        t if t & 0x80 == 0 => num(f64::from(t)),
        t if t & 0xe0 == 0xe0 => num(f64::from(t as i8)),
        t if t & 0xe0 == 0xa0 => string(c.take(usize::from(t & 0x1f))?),
        t if t & 0xf0 == 0x90 => Ok(Item::Array(u64::from(t & 0x0f))),
        t if t & 0xf0 == 0x80 => Ok(Item::Map(u64::from(t & 0x0f))),
        _ => Err(DecodeError::BadFormat),
    }
}

fn stack_overflow(what: &str) -> DecodeError {
    DecodeError::Now(LibError::Raise(format!("stack overflow ({what})")))
}

/// Decodes one value with `base` stack slots already in use, without native recursion.
fn decode_one(lua: &Lua, c: &mut Cursor, base: usize) -> Result<Value, DecodeError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut used = base;
    loop {
        if c.left() == 0 {
            return Err(DecodeError::Eof);
        }
        if used + 1 > CSTACK_SLOTS {
            return Err(stack_overflow(
                "too many return values at once; use unpack_one or unpack_limit instead.",
            ));
        }
        let mut value = match read_item(lua, c)? {
            Item::Value(v) => v,
            Item::Array(n) => {
                if used + 2 > CSTACK_SLOTS || stack.len() >= MAX_DEPTH {
                    return Err(stack_overflow("in function mp_decode_to_lua_array"));
                }
                let table = lua.create_table()?;
                if n == 0 {
                    Value::Table(table)
                } else {
                    stack.push(Frame::Array {
                        table,
                        remaining: n,
                        index: 1.0,
                    });
                    used += 2;
                    continue;
                }
            }
            Item::Map(n) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(stack_overflow(
                        "too many return values at once; use unpack_one or unpack_limit instead.",
                    ));
                }
                let table = lua.create_table()?;
                if n == 0 {
                    Value::Table(table)
                } else {
                    stack.push(Frame::Map {
                        table,
                        remaining: n,
                        key: None,
                    });
                    used += 1;
                    continue;
                }
            }
        };
        // Store the finished value in its container; finished containers bubble up.
        loop {
            let Some(frame) = stack.last_mut() else {
                return Ok(value);
            };
            let done = match frame {
                Frame::Array {
                    table,
                    remaining,
                    index,
                } => {
                    table.raw_set(*index, value)?;
                    *index += 1.0;
                    *remaining -= 1;
                    *remaining == 0
                }
                Frame::Map {
                    table,
                    remaining,
                    key,
                } => match key.take() {
                    None => {
                        *key = Some(value);
                        used += 1;
                        break;
                    }
                    Some(k) => {
                        used -= 1;
                        set_field(table, k, value)?;
                        *remaining -= 1;
                        *remaining == 0
                    }
                },
            };
            if !done {
                break;
            }
            // `stack.last_mut()` was a container just above, so this pops it.
            let Some(finished) = stack.pop() else {
                return Err(DecodeError::BadFormat);
            };
            used -= finished.slots();
            value = match finished {
                Frame::Array { table, .. } | Frame::Map { table, .. } => Value::Table(table),
            };
        }
    }
}

/// `lua_settable` on a fresh table: nil and NaN keys are errors of the Lua core.
fn set_field(table: &Table, k: Value, v: Value) -> Result<(), DecodeError> {
    match &k {
        Value::Nil => {
            return Err(DecodeError::Now(LibError::Bare(
                "table index is nil".into(),
            )))
        }
        Value::Number(n) if n.is_nan() => {
            return Err(DecodeError::Now(LibError::Bare(
                "table index is NaN".into(),
            )))
        }
        _ => {}
    }
    table.raw_set(k, v)?;
    Ok(())
}

/// `mp_unpack_full`: `top` is the number of arguments left on the C stack.
fn unpack_full(lua: &Lua, s: &[u8], top: usize, limit: i64, offset: i64) -> LibResult<Ret> {
    let decode_all = limit == 0 && offset == 0;
    let len = s.len();
    if offset < 0 || limit < 0 {
        return raise(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, len as i32
        ));
    }
    if u64::try_from(offset).unwrap_or(u64::MAX) > len as u64 {
        return raise(format!(
            "Start offset {} greater than input length {}.",
            offset as i32, len as i32
        ));
    }
    let limit = if decode_all {
        i64::from(i32::MAX)
    } else {
        limit
    };
    let start = usize::try_from(offset).unwrap_or(len);
    let mut c = Cursor {
        data: s,
        pos: start,
    };
    // Results go straight into a table: there may be thousands.
    let results = lua.create_table()?;
    let first = if decode_all { 1 } else { 2 };
    let mut count: usize = 0;
    while c.left() > 0 && (count as i64) < limit {
        match decode_one(lua, &mut c, top + count) {
            Ok(v) => results.raw_set(first + count, v)?,
            Err(DecodeError::Eof) => return raise("Missing bytes in input."),
            Err(DecodeError::BadFormat) => return raise("Bad data format in input."),
            Err(DecodeError::Now(e)) => return Err(e),
        }
        count += 1;
    }
    if !decode_all {
        if top + count + 1 > CSTACK_SLOTS {
            return raise("stack overflow (in function mp_unpack_full)");
        }
        let next = if c.left() == 0 { -1.0 } else { c.pos as f64 };
        results.raw_set(1, next)?;
        count += 1;
    }
    Ok(Ret::Spread(results, count))
}

fn unpack(lua: &Lua, a: Args) -> LibResult<Ret> {
    let s = a.check_bytes(1)?;
    unpack_full(lua, &s.as_bytes(), a.top(), 0, 0)
}

fn unpack_one(lua: &Lua, a: Args) -> LibResult<Ret> {
    let offset = a.opt_integer(2, 0)?;
    let s = a.check_bytes(1)?;
    unpack_full(lua, &s.as_bytes(), 1, 1, offset)
}

fn unpack_limit(lua: &Lua, a: Args) -> LibResult<Ret> {
    let limit = a.check_integer(2)?;
    let offset = a.opt_integer(3, 0)?;
    let s = a.check_bytes(1)?;
    unpack_full(lua, &s.as_bytes(), 1, limit, offset)
}
