//! Conversions between RESP and Lua values, as Redis documents them:
//! - a command's reply to Lua (`raw::push_reply`, on the raw stack): integers to numbers, bulk strings to
//!   strings, nil to `false` (RESP2) or `nil` (RESP3), status to `{ok=...}`, errors to
//!   `{err=...}`, arrays to tables; under RESP3 maps to `{map=...}`, sets to
//!   `{set=...}`, doubles to `{double=...}`, big numbers to `{big_number=...}`...
//! - a script's result to RESP ([`lua_to_reply`]): numbers truncated to integers,
//!   `false` to nil, tables to arrays up to the first nil, `{err=}`/`{ok=}` tables,
//!   and the RESP3 forms. Nesting is walked without recursion and, like Redis (whose
//!   Lua C stack runs out), an element nested deeper than [`MAX_DEPTH`] becomes an
//!   error. Results are read through a Lua-side flattening ([`FLATTEN`]).

use crate::resp::Reply;
use mlua::{Table, Value};

/// How deep a returned table may nest before its element becomes Redis's
/// `reached lua stack limit` error (measured on Redis 7.0.15).
pub const MAX_DEPTH: usize = 7995;

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
pub(crate) fn one_line(s: &[u8]) -> String {
    String::from_utf8_lossy(s).replace(['\r', '\n'], " ")
}

/// Writes a status reply (`{ok=...}`) as [`one_line`] gives it. A text that is
/// valid UTF-8 without CR or LF (`OK`, `QUEUED`, `PONG`...: every status a command
/// answers) goes to the reply as it is: no `String` built and freed per EVALSHA.
pub(crate) fn write_status(out: &mut Reply, s: &[u8]) {
    match std::str::from_utf8(s) {
        Ok(text) if !s.iter().any(|&c| c == b'\r' || c == b'\n') => out.simple(text),
        _ => out.simple(&one_line(s)),
    }
}

/// Writes an error reply (`{err=...}`) as [`one_line`] gives it (`Reply::error`
/// itself replaces CR and LF): valid UTF-8 goes to the reply without a copy.
pub(crate) fn write_error(out: &mut Reply, s: &[u8]) {
    match std::str::from_utf8(s) {
        Ok(text) => out.error(text),
        Err(_) => out.error(&one_line(s)),
    }
}

/// Flattens a script's result into a sequence of (code, value) tokens in one Lua
/// table, so Rust reads it one token at a time: holding a Lua value in Rust takes a
/// slot of a bounded reference stack, and a result may have millions of elements or
/// nest thousands deep. Iterative, with its own stack. Codes: see [`Token`].
pub const FLATTEN: &str = r#"
local type, rawget, next = type, rawget, next
return function(root, maxdepth)
  local out, n = {}, 0
  local vs, ds, sp = { root }, { 0 }, 1
  local function emit(code, v)
    out[n + 1] = code
    out[n + 2] = v
    n = n + 2
  end
  local function push(v, d)
    sp = sp + 1
    vs[sp] = v
    ds[sp] = d
  end
  while sp > 0 do
    local v, d = vs[sp], ds[sp]
    vs[sp] = nil
    sp = sp - 1
    local ty = type(v)
    if d >= maxdepth then
      emit(14, 0)
    elseif ty == 'string' then
      emit(1, v)
    elseif ty == 'number' then
      emit(2, v)
    elseif ty == 'boolean' then
      emit(4, v)
    elseif ty == 'table' then
      local e, ok, dbl, big = rawget(v, 'err'), rawget(v, 'ok'), rawget(v, 'double'), rawget(v, 'big_number')
      local map, set, verb = rawget(v, 'map'), rawget(v, 'set'), rawget(v, 'verbatim_string')
      if type(e) == 'string' then
        emit(rawget(v, 'ignore_error_stats_update') and 15 or 5, e)
      elseif type(ok) == 'string' then
        emit(6, ok)
      elseif type(dbl) == 'number' then
        emit(7, dbl)
      elseif type(big) == 'string' then
        emit(8, big)
      elseif type(map) == 'table' then
        local items, c = {}, 0
        for k, x in next, map do
          items[c + 1] = k
          items[c + 2] = x
          c = c + 2
        end
        emit(10, c / 2)
        for i = c, 1, -1 do push(items[i], d + 1) end
      elseif type(set) == 'table' then
        local items, c = {}, 0
        for k in next, set do
          c = c + 1
          items[c] = k
        end
        emit(11, c)
        for i = c, 1, -1 do push(items[i], d + 1) end
      elseif type(verb) == 'table' and type(rawget(verb, 'format')) == 'string'
          and type(rawget(verb, 'string')) == 'string' then
        emit(12, rawget(verb, 'format'))
        emit(13, rawget(verb, 'string'))
      else
        local len = 0
        while rawget(v, len + 1) ~= nil do len = len + 1 end
        emit(9, len)
        for i = len, 1, -1 do push(rawget(v, i), d + 1) end
      end
    else
      emit(3, 0)
    end
  end
  return out, n
end
"#;

/// The token codes [`FLATTEN`] emits.
struct Token;

impl Token {
    const BULK: i64 = 1;
    const NUMBER: i64 = 2;
    const NULL: i64 = 3;
    const BOOLEAN: i64 = 4;
    const ERROR: i64 = 5;
    const STATUS: i64 = 6;
    const DOUBLE: i64 = 7;
    const BIG_NUMBER: i64 = 8;
    const ARRAY: i64 = 9;
    const MAP: i64 = 10;
    const SET: i64 = 11;
    const VERBATIM_FORMAT: i64 = 12;
    const VERBATIM_TEXT: i64 = 13;
    const TOO_DEEP: i64 = 14;
    /// An error already counted in INFO errorstats (marked [`super::raw::COUNTED_FIELD`]).
    const COUNTED_ERROR: i64 = 15;
}

/// The error replies a table result wrote inside its aggregates (the caller counts
/// a top-level one): Redis counts each in INFO errorstats unless it is marked as
/// already counted, and the script's command as failed.
#[derive(Debug, Default)]
pub struct NestedErrors {
    /// Where each error not counted yet starts in the reply.
    pub uncounted: Vec<usize>,
    /// How many were marked as already counted.
    pub counted: u32,
}

/// Writes a script's result to `out`. `script_resp3` is the script's
/// `redis.setresp` (it decides how booleans are sent), `out.resp3` the caller's.
/// `flatten` is the compiled [`FLATTEN`] function.
pub fn lua_to_reply(
    flatten: &mlua::Function,
    v: Value,
    script_resp3: bool,
    out: &mut Reply,
    errors: &mut NestedErrors,
) -> mlua::Result<()> {
    let Value::Table(t) = &v else {
        scalar(v, script_resp3, out);
        return Ok(());
    };
    // The common `{ok=...}` / `{err=...}` tables (every status or error reply of
    // redis.call) without the Lua-side walk, read in the walk's order.
    if let Value::String(e) = t.raw_get::<Value>("err")? {
        write_error(out, &e.as_bytes());
        return Ok(());
    }
    if let Value::String(s) = t.raw_get::<Value>("ok")? {
        write_status(out, &s.as_bytes());
        return Ok(());
    }
    let (tokens, n): (Table, usize) = flatten.call((v, MAX_DEPTH))?;
    let mut format = Vec::new();
    let mut i = 1;
    while i < n {
        let code: i64 = tokens.raw_get(i)?;
        let v: Value = tokens.raw_get(i + 1)?;
        i += 2;
        let text = || match &v {
            Value::String(s) => s.as_bytes().to_vec(),
            _ => Vec::new(),
        };
        match code {
            Token::ARRAY => out.array(count(&v)),
            Token::MAP => out.map(count(&v)),
            Token::SET => out.set(count(&v)),
            Token::ERROR => {
                errors.uncounted.push(out.len());
                write_error(out, &text());
            }
            Token::COUNTED_ERROR => {
                errors.counted += 1;
                write_error(out, &text());
            }
            Token::STATUS => write_status(out, &text()),
            Token::DOUBLE => out.double(number(&v).unwrap_or(0.0)),
            Token::BIG_NUMBER => {
                let s = one_line(&text());
                if out.resp3 {
                    out.raw(format!("({s}\r\n").as_bytes());
                } else {
                    out.bulk(s.as_bytes());
                }
            }
            Token::VERBATIM_FORMAT => format = text(),
            Token::VERBATIM_TEXT => {
                let s = text();
                if out.resp3 {
                    out.raw(format!("={}\r\n", s.len() + 4).as_bytes());
                    out.raw(&format[..format.len().min(3)]);
                    out.raw(b":");
                    out.raw(&s);
                    out.raw(b"\r\n");
                } else {
                    out.bulk(&s);
                }
            }
            Token::TOO_DEEP => {
                errors.uncounted.push(out.len());
                out.error("ERR reached lua stack limit");
            }
            Token::BULK | Token::NUMBER | Token::BOOLEAN | Token::NULL => {
                scalar(v, script_resp3, out)
            }
            _ => out.null(),
        }
    }
    Ok(())
}

/// A header's element count.
fn count(v: &Value) -> usize {
    number(v).map_or(0, |n| n.max(0.0) as usize)
}

/// A result that is not a table.
fn scalar(v: Value, script_resp3: bool, out: &mut Reply) {
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
        Value::Integer(i) => out.int(i),
        Value::Number(n) => out.int(number_to_i64(n)),
        _ => out.null(),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
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
}
