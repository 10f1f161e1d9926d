//! `cjson`: lua-cjson 2.1.0 as Redis 7.0 vendors it.
//!
//! Encoding: numbers with `%.14g` (`encode_number_precision`, 1..14); NaN and Inf are an
//! error unless `encode_invalid_numbers` is `on` (`nan`/`inf` text) or `null`; strings
//! escape `"` `\` `/`, control characters (`\b \t \n \f \r`, others `\u00XX`) and DEL,
//! other bytes pass through; a table is an array when all its keys are integers >= 1
//! (holes encode as `null`), unless it is excessively sparse (largest index above
//! `ratio` x items and above `safe`: an error, or an object with
//! `encode_sparse_array(true)`); any other table, the empty one included, is an object
//! whose keys must be strings or numbers; `cjson.null` is `null`; nesting beyond
//! `encode_max_depth` (1000) is an error.
//!
//! Decoding: RFC JSON plus what lua-cjson accepts (`decode_invalid_numbers`, on by
//! default: hex, leading zeros, `+`, `inf`, `nan`, as C `strtod` reads them); a NUL byte
//! ends the text; `\uXXXX` escapes become UTF-8, surrogate pairs combine and lone
//! surrogates are errors; `null` is `cjson.null`; nesting beyond `decode_max_depth`
//! (1000) is an error. Errors name the token as lua-cjson does (`T_OBJ_END`, ...) and a
//! 1-based character position.
//!
//! Both directions walk nested values with explicit stacks (no native recursion) and
//! keep the C stack slot count of the original, which also bounds nesting. Depth
//! settings above [`MAX_DEPTH`] (1000, the default) act as 1000: Redis would follow a
//! raised setting until its C stack ends (about 4000 to 8000 levels).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mlua::{Function, LightUserData, Lua, Table, Value};

use super::{
    c_double_to_i32, format_g, number_of, raise, type_name, Args, Kit, LibError, LibResult, Ret,
    CSTACK_SLOTS, MAX_DEPTH, MAX_OUTPUT_BYTES,
};

/// One cjson instance's settings (`cjson` and every `cjson.new()` have their own).
#[derive(Clone, Debug)]
struct Config {
    sparse_convert: bool,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    precision: i32,
    keep_buffer: bool,
    /// 0 off, 1 on, 2 null.
    encode_invalid: usize,
    decode_invalid: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            precision: 14,
            keep_buffer: true,
            encode_invalid: 0,
            decode_invalid: true,
        }
    }
}

type Shared = Arc<Mutex<Config>>;

fn lock(cfg: &Shared) -> MutexGuard<'_, Config> {
    // The settings are plain values: a panic elsewhere cannot leave them half-written.
    cfg.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The library table (also what `cjson.new()` returns, with fresh settings).
pub(crate) fn module(lua: &Lua, kit: &Kit) -> mlua::Result<Table> {
    let cfg: Shared = Arc::new(Mutex::new(Config::default()));
    let t = lua.create_table()?;
    let c = cfg.clone();
    t.set(
        "encode",
        kit.function(lua, move |lua, a| encode(lua, &c, a))?,
    )?;
    let c = cfg.clone();
    t.set(
        "decode",
        kit.function(lua, move |lua, a| decode(lua, &c, a))?,
    )?;
    let c = cfg.clone();
    t.set(
        "encode_sparse_array",
        kit.function(lua, move |_, a| cfg_sparse(&c, a))?,
    )?;
    let c = cfg.clone();
    t.set(
        "encode_max_depth",
        kit.function(lua, move |_, a| {
            cfg_int(&c, a, 1, i32::MAX, |c| &mut c.encode_max_depth)
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "decode_max_depth",
        kit.function(lua, move |_, a| {
            cfg_int(&c, a, 1, i32::MAX, |c| &mut c.decode_max_depth)
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "encode_number_precision",
        kit.function(lua, move |_, a| cfg_int(&c, a, 1, 14, |c| &mut c.precision))?,
    )?;
    let c = cfg.clone();
    t.set(
        "encode_keep_buffer",
        kit.function(lua, move |_, a| cfg_bool(&c, a, |c| &mut c.keep_buffer))?,
    )?;
    let c = cfg.clone();
    t.set(
        "encode_invalid_numbers",
        kit.function(lua, move |_, a| cfg_encode_invalid(&c, a))?,
    )?;
    let c = cfg;
    t.set(
        "decode_invalid_numbers",
        kit.function(lua, move |_, a| cfg_bool(&c, a, |c| &mut c.decode_invalid))?,
    )?;
    // `new` builds a fresh instance; the functions it makes need the shared pieces again.
    t.set(
        "new",
        kit.function(lua, move |lua, _a| {
            Ok(Ret::One(Value::Table(module(lua, &Kit)?)))
        })?,
    )?;
    t.set("null", Value::LightUserData(null()))?;
    t.set("_NAME", "cjson")?;
    t.set("_VERSION", "2.1.0")?;
    Ok(t)
}

fn null() -> LightUserData {
    LightUserData(std::ptr::null_mut())
}

// ----------------------------------------------------------------------------------
// Settings

/// `json_arg_init`: at most `n` arguments.
fn arg_init(a: &Args, n: usize) -> LibResult<()> {
    if a.top() > n {
        return Err(LibError::BadArg {
            arg: n + 1,
            msg: "found too many arguments".into(),
        });
    }
    Ok(())
}

/// `json_integer_option`: sets from argument `i` when not nil; the range error always
/// names argument 1, as the original does.
fn int_option(a: &Args, i: usize, setting: &mut i32, min: i32, max: i32) -> LibResult<Value> {
    if !a.is_none_or_nil(i) {
        let value = a.check_integer(i)? as i32;
        if value < min || value > max {
            return Err(LibError::BadArg {
                arg: 1,
                msg: format!("expected integer between {min} and {max}"),
            });
        }
        *setting = value;
    }
    Ok(Value::Number(f64::from(*setting)))
}

/// `json_enum_option`: a boolean, or one of `options` by name.
fn enum_option(a: &Args, i: usize, setting: &mut usize, options: &[&str]) -> LibResult<Value> {
    if !a.is_none_or_nil(i) {
        if let Some(Value::Boolean(b)) = a.get(i) {
            *setting = usize::from(b);
        } else {
            let s = a.check_bytes(i)?;
            let s = s.as_bytes();
            match options.iter().position(|o| o.as_bytes() == &s[..]) {
                Some(p) => *setting = p,
                None => {
                    let shown = String::from_utf8_lossy(&s).into_owned();
                    return Err(LibError::BadArg {
                        arg: i,
                        msg: format!("invalid option '{shown}'"),
                    });
                }
            }
        }
    }
    Ok(match *setting {
        0 => Value::Boolean(false),
        1 => Value::Boolean(true),
        n => Value::String(a.lua.create_string(options.get(n).copied().unwrap_or(""))?),
    })
}

const BOOL_OPTIONS: &[&str] = &["off", "on"];

fn cfg_sparse(cfg: &Shared, a: Args) -> LibResult<Ret> {
    arg_init(&a, 3)?;
    let mut c = lock(cfg);
    let mut convert = usize::from(c.sparse_convert);
    let r1 = enum_option(&a, 1, &mut convert, BOOL_OPTIONS);
    c.sparse_convert = convert == 1;
    let r1 = r1?;
    let r2 = int_option(&a, 2, &mut c.sparse_ratio, 0, i32::MAX)?;
    let r3 = int_option(&a, 3, &mut c.sparse_safe, 0, i32::MAX)?;
    Ok(Ret::Values(vec![r1, r2, r3]))
}

fn cfg_int(
    cfg: &Shared,
    a: Args,
    min: i32,
    max: i32,
    field: fn(&mut Config) -> &mut i32,
) -> LibResult<Ret> {
    arg_init(&a, 1)?;
    let mut c = lock(cfg);
    Ok(Ret::One(int_option(&a, 1, field(&mut c), min, max)?))
}

fn cfg_bool(cfg: &Shared, a: Args, field: fn(&mut Config) -> &mut bool) -> LibResult<Ret> {
    arg_init(&a, 1)?;
    let mut c = lock(cfg);
    let slot = field(&mut c);
    let mut v = usize::from(*slot);
    let r = enum_option(&a, 1, &mut v, BOOL_OPTIONS);
    *slot = v == 1;
    Ok(Ret::One(r?))
}

fn cfg_encode_invalid(cfg: &Shared, a: Args) -> LibResult<Ret> {
    arg_init(&a, 1)?;
    let mut c = lock(cfg);
    Ok(Ret::One(enum_option(
        &a,
        1,
        &mut c.encode_invalid,
        &["off", "on", "null"],
    )?))
}

// ----------------------------------------------------------------------------------
// Encoding

fn encode(lua: &Lua, cfg: &Shared, a: Args) -> LibResult<Ret> {
    if a.top() != 1 {
        return Err(LibError::BadArg {
            arg: 1,
            msg: "expected 1 argument".into(),
        });
    }
    let cfg = lock(cfg).clone();
    let v = a.get(1).unwrap_or(Value::Nil);
    let next = Kit::next(lua)?;
    let out = Encoder {
        cfg,
        next,
        out: Vec::new(),
    }
    .run(v)?;
    Ok(Ret::One(Value::String(lua.create_string(out)?)))
}

/// A table being written. Only the table and the current key are held (as mlua
/// references), so an open level costs at most two of them.
enum Open {
    Array {
        table: Table,
        len: i32,
        next: i32,
    },
    Object {
        table: Table,
        key: Value,
        first: bool,
    },
}

impl Open {
    /// Stack slots the original holds at this level while a child is written: the
    /// element (arrays) or the key and value (objects).
    fn slots(&self) -> usize {
        match self {
            Open::Array { .. } => 1,
            Open::Object { .. } => 2,
        }
    }
}

struct Encoder {
    cfg: Config,
    /// Lua's `next`: objects are walked one pair at a time, in `next` order.
    next: Function,
    out: Vec<u8>,
}

impl Encoder {
    fn run(mut self, v: Value) -> LibResult<Vec<u8>> {
        let mut stack: Vec<Open> = Vec::new();
        let mut pending = Some(v);
        loop {
            if let Some(v) = pending.take() {
                match v {
                    Value::Table(t) => self.open(t, &mut stack)?,
                    other => self.scalar(&other)?,
                }
                self.check_size()?;
            }
            let Some(top) = stack.last_mut() else { break };
            match top {
                Open::Array { table, len, next } => {
                    if *next > *len {
                        self.out.push(b']');
                        stack.pop();
                    } else {
                        if *next > 1 {
                            self.out.push(b',');
                        }
                        pending = Some(table.raw_get(*next)?);
                        *next += 1;
                    }
                }
                Open::Object { table, key, first } => {
                    let prev = std::mem::replace(key, Value::Nil);
                    let (k, v): (Value, Value) = self.next.call((table.clone(), prev))?;
                    if k.is_nil() {
                        self.out.push(b'}');
                        stack.pop();
                    } else {
                        if !*first {
                            self.out.push(b',');
                        }
                        *first = false;
                        self.key(&k)?;
                        *key = k;
                        pending = Some(v);
                    }
                }
            }
        }
        Ok(self.out)
    }

    fn check_size(&self) -> LibResult<()> {
        if self.out.len() > MAX_OUTPUT_BYTES {
            return raise(format!(
                "Cannot serialise: output exceeds {MAX_OUTPUT_BYTES} bytes"
            ));
        }
        Ok(())
    }

    fn open(&mut self, t: Table, stack: &mut Vec<Open>) -> LibResult<()> {
        let depth = stack.len() + 1;
        let slots = 1 + stack.iter().map(Open::slots).sum::<usize>();
        let limit = usize::try_from(self.cfg.encode_max_depth)
            .unwrap_or(0)
            .min(MAX_DEPTH);
        if depth > limit || slots + 3 > CSTACK_SLOTS {
            return raise(format!("Cannot serialise, excessive nesting ({depth})"));
        }
        let len = self.array_length(&t)?;
        if len > 0 {
            self.out.push(b'[');
            stack.push(Open::Array {
                table: t,
                len,
                next: 1,
            });
        } else {
            self.out.push(b'{');
            stack.push(Open::Object {
                table: t,
                key: Value::Nil,
                first: true,
            });
        }
        Ok(())
    }

    /// `lua_array_length`: the largest index when every key is an integer >= 1 (and the
    /// table is not excessively sparse), else -1. The index goes through a C `int`.
    fn array_length(&self, t: &Table) -> LibResult<i32> {
        let mut max: i32 = 0;
        let mut items: i32 = 0;
        let mut array = true;
        t.for_each(|k: Value, _v: Value| {
            if !array {
                return Ok(());
            }
            match number_of(&k) {
                Some(n) if n != 0.0 && n.floor() == n && n >= 1.0 => {
                    if n > f64::from(max) {
                        max = c_double_to_i32(n);
                    }
                    items = items.wrapping_add(1);
                }
                _ => array = false,
            }
            Ok(())
        })?;
        if !array {
            return Ok(-1);
        }
        let c = &self.cfg;
        if c.sparse_ratio > 0 && max > items.wrapping_mul(c.sparse_ratio) && max > c.sparse_safe {
            if !c.sparse_convert {
                return raise("Cannot serialise table: excessively sparse array");
            }
            return Ok(-1);
        }
        Ok(max)
    }

    fn key(&mut self, k: &Value) -> LibResult<()> {
        match k {
            Value::Integer(_) | Value::Number(_) => {
                self.out.push(b'"');
                self.number(number_of(k).unwrap_or(0.0))?;
                self.out.extend_from_slice(b"\":");
            }
            Value::String(s) => {
                self.string(&s.as_bytes());
                self.out.push(b':');
            }
            other => {
                return raise(format!(
                    "Cannot serialise {}: table key must be a number or string",
                    type_name(other)
                ))
            }
        }
        Ok(())
    }

    fn scalar(&mut self, v: &Value) -> LibResult<()> {
        match v {
            Value::String(s) => self.string(&s.as_bytes()),
            Value::Integer(_) | Value::Number(_) => self.number(number_of(v).unwrap_or(0.0))?,
            Value::Boolean(true) => self.out.extend_from_slice(b"true"),
            Value::Boolean(false) => self.out.extend_from_slice(b"false"),
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            other => {
                return raise(format!(
                    "Cannot serialise {}: type not supported",
                    type_name(other)
                ))
            }
        }
        Ok(())
    }

    fn number(&mut self, n: f64) -> LibResult<()> {
        let bad = n.is_nan() || n.is_infinite();
        match self.cfg.encode_invalid {
            0 if bad => return raise("Cannot serialise number: must not be NaN or Inf"),
            1 if n.is_nan() => {
                self.out.extend_from_slice(b"nan");
                return Ok(());
            }
            2 if bad => {
                self.out.extend_from_slice(b"null");
                return Ok(());
            }
            _ => {}
        }
        let p = usize::try_from(self.cfg.precision).unwrap_or(14);
        self.out.extend_from_slice(format_g(n, p).as_bytes());
        Ok(())
    }

    fn string(&mut self, s: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.out.reserve(s.len() + 2);
        self.out.push(b'"');
        for &b in s {
            match b {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'/' => self.out.extend_from_slice(b"\\/"),
                0x08 => self.out.extend_from_slice(b"\\b"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                0x0c => self.out.extend_from_slice(b"\\f"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                0..=0x1f | 0x7f => {
                    self.out.extend_from_slice(b"\\u00");
                    self.out.push(HEX[usize::from(b >> 4)]);
                    self.out.push(HEX[usize::from(b & 15)]);
                }
                _ => self.out.push(b),
            }
        }
        self.out.push(b'"');
    }
}

// ----------------------------------------------------------------------------------
// Decoding

#[derive(Clone, Copy, PartialEq, Debug)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Num,
    Bool,
    Null,
    Colon,
    Comma,
    End,
    Error,
}

impl Tok {
    /// How lua-cjson names a token in "Expected ... but found ...".
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Num => "T_NUMBER",
            Tok::Bool => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error => "T_ERROR",
        }
    }
}

struct Token {
    kind: Tok,
    /// 0-based offset where the token (or the error inside it) starts.
    index: usize,
    string: Vec<u8>,
    number: f64,
    boolean: bool,
    /// What was wrong, for `Tok::Error`.
    error: &'static str,
}

impl Token {
    fn new(kind: Tok, index: usize) -> Token {
        Token {
            kind,
            index,
            string: Vec::new(),
            number: 0.0,
            boolean: false,
            error: "",
        }
    }
}

struct Lexer<'a> {
    data: &'a [u8],
    pos: usize,
    decode_invalid: bool,
}

impl<'a> Lexer<'a> {
    /// The byte at `i`; the text is NUL-terminated as a C string is.
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn starts_with(&self, word: &[u8]) -> bool {
        self.data
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(word))
    }

    fn error(&self, msg: &'static str) -> Token {
        let mut t = Token::new(Tok::Error, self.pos);
        t.error = msg;
        t
    }

    fn next(&mut self) -> Token {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\r' | b'\n') {
            self.pos += 1;
        }
        let start = self.pos;
        let ch = self.at(start);
        let single = match ch {
            0 => return Token::new(Tok::End, start),
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b':' => Some(Tok::Colon),
            b',' => Some(Tok::Comma),
            _ => None,
        };
        if let Some(kind) = single {
            self.pos += 1;
            return Token::new(kind, start);
        }
        match ch {
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => {
                if !self.decode_invalid && self.is_invalid_number() {
                    return self.error("invalid number");
                }
                self.number()
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                if self.starts_with(b"true") {
                    self.pos += 4;
                    let mut t = Token::new(Tok::Bool, start);
                    t.boolean = true;
                    t
                } else if self.starts_with(b"false") {
                    self.pos += 5;
                    Token::new(Tok::Bool, start)
                } else if self.starts_with(b"null") {
                    self.pos += 4;
                    Token::new(Tok::Null, start)
                } else if self.decode_invalid && self.is_invalid_number() {
                    self.number()
                } else {
                    self.error("invalid token")
                }
            }
            _ => self.error("invalid token"),
        }
    }

    /// `json_is_invalid_number`: text that is a number to `strtod` but not to JSON.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.pos;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        }
        // A signed `char` compare: bytes from 0x80 count as "an ordinary number".
        if c <= b'9' || c >= 0x80 {
            return false;
        }
        let rest = self.data.get(p..).unwrap_or_default();
        let ci =
            |w: &[u8]| rest.len() >= 3 && rest.get(..3).is_some_and(|r| r.eq_ignore_ascii_case(w));
        ci(b"inf") || ci(b"nan")
    }

    fn number(&mut self) -> Token {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        match strtod(rest) {
            Some((n, used)) => {
                let mut t = Token::new(Tok::Num, self.pos);
                t.number = n;
                self.pos += used;
                t
            }
            None => self.error("invalid number"),
        }
    }

    fn string(&mut self) -> Token {
        let start = self.pos;
        self.pos += 1;
        let mut buf = Vec::new();
        loop {
            let ch = self.at(self.pos);
            match ch {
                b'"' => break,
                0 => return self.error("unexpected end of string"),
                b'\\' => {
                    let esc = match self.at(self.pos + 1) {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            if !self.unicode_escape(&mut buf) {
                                return self.error("invalid unicode escape code");
                            }
                            continue;
                        }
                        _ => return self.error("invalid escape code"),
                    };
                    buf.push(esc);
                    self.pos += 2;
                }
                _ => {
                    buf.push(ch);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        let mut t = Token::new(Tok::Str, start);
        t.string = buf;
        t
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0u32;
        for i in 0..4 {
            let d = char::from(self.at(at + i)).to_digit(16)?;
            v = (v << 4) | d;
        }
        Some(v)
    }

    /// `\uXXXX` (and a following low surrogate) at `pos`, appended as UTF-8.
    fn unicode_escape(&mut self, buf: &mut Vec<u8>) -> bool {
        let Some(mut cp) = self.hex4(self.pos + 2) else {
            return false;
        };
        let mut len = 6;
        if cp & 0xf800 == 0xd800 {
            if cp & 0x400 != 0 {
                return false;
            }
            if self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.pos + 8) else {
                return false;
            };
            if low & 0xfc00 != 0xdc00 {
                return false;
            }
            cp = (((cp & 0x3ff) << 10) | (low & 0x3ff)) + 0x10000;
            len = 12;
        }
        let mut tmp = [0u8; 4];
        match char::from_u32(cp) {
            Some(c) => buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes()),
            None => return false,
        }
        self.pos += len;
        true
    }
}

/// C `strtod` on the front of `s`: the value and the bytes it used, `None` when nothing
/// converts. Decimal text is parsed by Rust (correctly rounded, as glibc is).
pub(crate) fn strtod(s: &[u8]) -> Option<(f64, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = 0;
    while matches!(at(i), b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        i += 1;
    }
    let negative = at(i) == b'-';
    if matches!(at(i), b'+' | b'-') {
        i += 1;
    }
    let apply = |v: f64| if negative { -v } else { v };
    let rest = s.get(i..).unwrap_or_default();
    let word = |w: &[u8]| {
        rest.len() >= w.len()
            && rest
                .get(..w.len())
                .is_some_and(|r| r.eq_ignore_ascii_case(w))
    };
    if word(b"infinity") {
        return Some((apply(f64::INFINITY), i + 8));
    }
    if word(b"inf") {
        return Some((apply(f64::INFINITY), i + 3));
    }
    if word(b"nan") {
        let mut end = i + 3;
        if at(end) == b'(' {
            let mut j = end + 1;
            while at(j).is_ascii_alphanumeric() || at(j) == b'_' {
                j += 1;
            }
            if at(j) == b')' {
                end = j + 1;
            }
        }
        return Some((apply(f64::NAN), end));
    }
    if at(i) == b'0' && (at(i + 1) | 0x20) == b'x' {
        if let Some((v, used)) = hex_float(s.get(i + 2..).unwrap_or_default()) {
            return Some((apply(v), i + 2 + used));
        }
        return Some((apply(0.0), i + 1));
    }
    let digits_from = i;
    let mut j = i;
    let mut mantissa_digits = 0;
    while at(j).is_ascii_digit() {
        j += 1;
        mantissa_digits += 1;
    }
    if at(j) == b'.' {
        j += 1;
        while at(j).is_ascii_digit() {
            j += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 {
        return None;
    }
    if (at(j) | 0x20) == b'e' {
        let mut k = j + 1;
        if matches!(at(k), b'+' | b'-') {
            k += 1;
        }
        if at(k).is_ascii_digit() {
            while at(k).is_ascii_digit() {
                k += 1;
            }
            j = k;
        }
    }
    let text = std::str::from_utf8(s.get(digits_from..j).unwrap_or_default()).ok()?;
    let v: f64 = text
        .parse()
        .ok()
        .or_else(|| format!("{text}0").parse().ok())?;
    Some((apply(v), j))
}

/// The part of a hex float after `0x`: hex digits with an optional point, then an
/// optional binary exponent `p[+-]digits`.
fn hex_float(s: &[u8]) -> Option<(f64, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = 0;
    let mut mant: u64 = 0;
    let mut exp: i64 = 0;
    let mut digits = 0;
    let mut sticky = false;
    let mut seen_point = false;
    loop {
        let c = at(i);
        if c == b'.' && !seen_point {
            seen_point = true;
            i += 1;
            continue;
        }
        let Some(d) = char::from(c).to_digit(16) else {
            break;
        };
        digits += 1;
        if mant >> 56 == 0 {
            mant = (mant << 4) | u64::from(d);
            if seen_point {
                exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !seen_point {
                exp += 4;
            }
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if (at(i) | 0x20) == b'p' {
        let mut k = i + 1;
        let neg = at(k) == b'-';
        if matches!(at(k), b'+' | b'-') {
            k += 1;
        }
        if at(k).is_ascii_digit() {
            let mut e: i64 = 0;
            while at(k).is_ascii_digit() {
                e = (e * 10 + i64::from(at(k) - b'0')).min(1_000_000);
                k += 1;
            }
            exp += if neg { -e } else { e };
            i = k;
        }
    }
    if sticky {
        mant |= 1;
    }
    // mant < 2^60: round it to 53 bits by hand, then scale (exact but for subnormals).
    let mut v = mant as f64;
    let mut e = exp;
    while e > 0 {
        let step = e.min(1000);
        v *= 2f64.powi(step as i32);
        e -= step;
    }
    while e < 0 {
        let step = (-e).min(1000);
        v /= 2f64.powi(step as i32);
        e += step;
    }
    Some((v, i))
}

/// An open container while decoding.
enum Nest {
    Array { table: Table, next: usize },
    Object { table: Table, key: Vec<u8> },
}

impl Nest {
    /// Stack slots the original holds for this level while a value inside is decoded.
    fn slots(&self) -> usize {
        match self {
            Nest::Array { .. } => 1,
            Nest::Object { .. } => 2,
        }
    }
}

fn parse_error(expected: &str, t: &Token) -> LibError {
    let found = if t.kind == Tok::Error {
        t.error
    } else {
        t.kind.name()
    };
    LibError::Raise(format!(
        "Expected {expected} but found {found} at character {}",
        t.index + 1
    ))
}

fn decode(lua: &Lua, cfg: &Shared, a: Args) -> LibResult<Ret> {
    if a.top() != 1 {
        return Err(LibError::BadArg {
            arg: 1,
            msg: "expected 1 argument".into(),
        });
    }
    let text = a.check_bytes(1)?;
    let data = text.as_bytes();
    if data.len() >= 2 && (data.first() == Some(&0) || data.get(1) == Some(&0)) {
        return raise("JSON parser does not support UTF-16 or UTF-32");
    }
    let cfg = lock(cfg).clone();
    let mut lx = Lexer {
        data: &data,
        pos: 0,
        decode_invalid: cfg.decode_invalid,
    };
    let tok = lx.next();
    let v = parse_value(lua, &mut lx, tok, &cfg)?;
    let end = lx.next();
    if end.kind != Tok::End {
        return Err(parse_error("the end", &end));
    }
    Ok(Ret::One(v))
}

/// Parses the value starting with `tok`, containers with an explicit stack.
fn parse_value(lua: &Lua, lx: &mut Lexer, mut tok: Token, cfg: &Config) -> LibResult<Value> {
    let max_depth = usize::try_from(cfg.decode_max_depth).unwrap_or(0);
    let mut stack: Vec<Nest> = Vec::new();
    loop {
        let mut value = match tok.kind {
            Tok::Str => Value::String(lua.create_string(&tok.string)?),
            Tok::Num => Value::Number(tok.number),
            Tok::Bool => Value::Boolean(tok.boolean),
            Tok::Null => Value::LightUserData(null()),
            Tok::ObjBegin | Tok::ArrBegin => {
                let is_obj = tok.kind == Tok::ObjBegin;
                let depth = stack.len() + 1;
                let used = 1 + stack.iter().map(Nest::slots).sum::<usize>();
                let need = if is_obj { 3 } else { 2 };
                if depth > max_depth.min(MAX_DEPTH) || used + need > CSTACK_SLOTS {
                    return raise(format!(
                        "Found too many nested data structures ({depth}) at character {}",
                        lx.pos
                    ));
                }
                let table = lua.create_table()?;
                let t = lx.next();
                let close = if is_obj { Tok::ObjEnd } else { Tok::ArrEnd };
                if t.kind == close {
                    Value::Table(table)
                } else if is_obj {
                    let key = object_key(lx, t)?;
                    stack.push(Nest::Object { table, key });
                    tok = lx.next();
                    continue;
                } else {
                    stack.push(Nest::Array { table, next: 1 });
                    tok = t;
                    continue;
                }
            }
            _ => return Err(parse_error("value", &tok)),
        };
        // Store the value; closed containers become values of their parents.
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok(value);
            };
            let t = match top {
                Nest::Array { table, next } => {
                    table.raw_set(*next, value)?;
                    *next += 1;
                    let t = lx.next();
                    if t.kind == Tok::ArrEnd {
                        None
                    } else if t.kind != Tok::Comma {
                        return Err(parse_error("comma or array end", &t));
                    } else {
                        Some(lx.next())
                    }
                }
                Nest::Object { table, key } => {
                    table.raw_set(lua.create_string(&*key)?, value)?;
                    let t = lx.next();
                    if t.kind == Tok::ObjEnd {
                        None
                    } else if t.kind != Tok::Comma {
                        return Err(parse_error("comma or object end", &t));
                    } else {
                        let key_tok = lx.next();
                        *key = object_key(lx, key_tok)?;
                        Some(lx.next())
                    }
                }
            };
            match t {
                Some(next_tok) => {
                    tok = next_tok;
                    break;
                }
                None => {
                    // `stack.last_mut()` was a container just above, so this pops it.
                    let Some(Nest::Array { table, .. } | Nest::Object { table, .. }) = stack.pop()
                    else {
                        return raise("internal: decode stack empty");
                    };
                    value = Value::Table(table);
                }
            }
        }
    }
}

/// An object key (`t`) and the colon after it.
fn object_key(lx: &mut Lexer, t: Token) -> LibResult<Vec<u8>> {
    if t.kind != Tok::Str {
        return Err(parse_error("object key string", &t));
    }
    let colon = lx.next();
    if colon.kind != Tok::Colon {
        return Err(parse_error("colon", &colon));
    }
    Ok(t.string)
}
