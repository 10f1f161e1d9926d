//! The libraries Redis adds to its Lua 5.1 state, with their documented semantics:
//! `cjson` (lua-cjson 2.1.0), `cmsgpack` (lua-cmsgpack 0.4.0), `struct` (lua-struct 0.2
//! with Redis's bounds checks) and `bit` (LuaBitOp). Installed by [`register`] into a fresh
//! state before the globals are protected.
//!
//! Written in Rust against mlua; the observable behaviour (results, number formatting,
//! error texts, limits) follows Redis 7.0.15's C copies, checked side by side by
//! `server/tests/lua_libs.rs`.
//!
//! How errors reach Lua: an mlua callback that fails raises a userdata error, but the C
//! libraries raise plain strings (`pcall(cjson.decode, s)` gives a string scripts match
//! on). So each library function is a small Lua wrapper around its Rust body: the body
//! returns either its results or a private marker followed by the message, and the
//! wrapper raises the message as a string with `error(msg, level)`, the level pointing
//! at the script line that called the library (the position `luaL_error` in a C
//! function adds; errors of the Lua core itself, like `table index is nil`, get none).
//! Long argument lists and long result lists cross between the wrapper and the body in
//! a table, so they never become thousands of mlua handles. One
//! difference remains: when a script tail-calls a library function (`return
//! cjson.decode(s)`), Lua 5.1 drops the caller's frame for a Lua wrapper but not for a C
//! function, so there Redis names the function and the line and Tandem says `'?'` and
//! gives no line.
//!
//! Limits: nesting is bounded as Redis bounds it (depth settings and the 8000-slot C
//! stack Lua 5.1 gives a C function, modelled by [`CSTACK_SLOTS`]); decoders and
//! encoders walk nested values with explicit stacks, never native recursion; encoder
//! output is capped at [`MAX_OUTPUT_BYTES`] so a table graph whose encoding explodes
//! (a DAG that shares subtables) fails instead of exhausting memory.

mod bit;
mod cjson;
mod cmsgpack;
mod lua_struct;
mod numfmt;

use mlua::{Function, LightUserData, Lua, MultiValue, Table, Value};

pub use numfmt::format_g;

/// Lua 5.1's `LUAI_MAXCSTACK`: the slots a C function may use on its stack. The C
/// libraries check against it (`lua_checkstack`) before every nested push; the Rust
/// bodies keep the same count so the same inputs fail with the same message.
pub(crate) const CSTACK_SLOTS: usize = 8000;

/// Largest string an encoder (cjson, cmsgpack) produces: Redis's largest string value
/// (`proto-max-bulk-len` default). Redis itself has no cap and grows until malloc fails.
pub(crate) const MAX_OUTPUT_BYTES: usize = 512 * 1024 * 1024;

/// Installs the libraries as globals of `lua`.
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let kit = Kit::new(lua)?;
    let globals = lua.globals();
    globals.set("cjson", cjson::module(lua, &kit)?)?;
    globals.set("cmsgpack", cmsgpack::module(lua, &kit)?)?;
    globals.set("struct", lua_struct::module(lua, &kit)?)?;
    globals.set("bit", bit::module(lua, &kit)?)?;
    Ok(())
}

/// Why a library call failed, before it is turned into the string Lua sees.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LibError {
    /// `luaL_argerror`: the final text names the function as its caller sees it.
    #[error("bad argument #{arg} ({msg})")]
    BadArg { arg: usize, msg: String },
    /// `luaL_error` from a C function: the text, after the caller's position.
    #[error("{0}")]
    Raise(String),
    /// An error the Lua core raises inside a C function (`table index is nil`): no
    /// position.
    #[error("{0}")]
    Bare(String),
    /// mlua failed (out of memory, ...).
    #[error(transparent)]
    Lua(#[from] mlua::Error),
}

pub(crate) type LibResult<T> = Result<T, LibError>;

pub(crate) fn raise<T>(msg: impl Into<String>) -> LibResult<T> {
    Err(LibError::Raise(msg.into()))
}

/// Deepest nesting the encoders and decoders follow. Redis's copies stop where the C
/// stack of a Lua 5.1 function ends (about 4000 to 8000 levels, and cjson's default
/// limit is 1000); here every open level holds an mlua reference, and a Lua state has
/// about 8000 of those in all, so levels past this cap fail with the library's own
/// nesting error instead of exhausting them.
pub(crate) const MAX_DEPTH: usize = 1000;

/// What a Rust body returns: a few values, or the values stored in `table[1..=n]` (for
/// results that may be numerous, so they never all live as mlua references at once).
pub(crate) enum Ret {
    Values(Vec<Value>),
    One(Value),
    Spread(Table, usize),
}

/// Builds the wrapped functions of every library. It holds no mlua handle (a Lua state
/// has about 8000 of those in all, and each library function lives as long as Lua keeps
/// it): the wrapper factory and `next` live in the Lua registry, and the markers
/// between a Rust body and its wrapper are light userdata (see [`Tag`]).
#[derive(Clone, Copy)]
pub(crate) struct Kit;

/// Registry names of the pieces [`Kit`] needs.
const WRAP_KEY: &str = "tandem.scripting.libs.wrap";
const NEXT_KEY: &str = "tandem.scripting.libs.next";

/// Markers passed between a Rust body and its Lua wrapper: light userdata with small
/// addresses, which no script value can equal (the only light userdata scripts see is
/// `cjson.null`, address 0).
#[derive(Clone, Copy)]
enum Tag {
    /// First result of a failed body; the message and the `error` level follow.
    Fail = 1,
    /// Sole result of a body that returns no values at all.
    Empty = 2,
    /// First result when the results are in a table; the table and the count follow.
    Spread = 3,
    /// First argument when the wrapper passes a long argument list as a table; the
    /// table and the count follow.
    Packed = 4,
}

impl Tag {
    fn value(self) -> Value {
        Value::LightUserData(LightUserData(std::ptr::without_provenance_mut(
            self as usize,
        )))
    }

    fn is(self, v: Option<&Value>) -> bool {
        matches!(v, Some(Value::LightUserData(p)) if p.0.addr() == self as usize)
    }
}

/// `error(msg, level)` levels, seen from `pass` in [`WRAPPER_SOURCE`]: 1 is `pass`, 2
/// the wrapper it replaced by a tail call (Lua 5.1 still counts it), 3 the script that
/// called the wrapper.
const POSITION_OF_CALLER: i64 = 3;
const NO_POSITION: i64 = 0;

const WRAPPER_SOURCE: &str = r#"
local fail_tag, empty_tag, spread_tag, packed_tag, error, unpack = ...
local select = select
local function spread(t, i, n)
    if n - i < 7000 then return unpack(t, i, n) end
    return t[i], t[i + 1], t[i + 2], t[i + 3], t[i + 4], t[i + 5], t[i + 6], t[i + 7], spread(t, i + 8, n)
end
local function pass(first, ...)
    if first == fail_tag then
        local msg, level = ...
        error(msg, level)
    end
    if first == empty_tag then return end
    if first == spread_tag then
        local t, n = ...
        return spread(t, 1, n)
    end
    return first, ...
end
return function(impl)
    return function(...)
        local n = select('#', ...)
        if n > 32 then return pass(impl(packed_tag, {...}, n)) end
        return pass(impl(...))
    end
end
"#;

impl Kit {
    fn new(lua: &Lua) -> mlua::Result<Kit> {
        // The factory returns a builder bound to the tags and to the original `error`
        // and `unpack` (scripts cannot swap them out later).
        let factory = lua.load(WRAPPER_SOURCE).set_name("=libs").into_function()?;
        let globals = lua.globals();
        let error: Function = globals.get("error")?;
        let unpack: Function = globals.get("unpack")?;
        let builder: Function = factory.call((
            Tag::Fail.value(),
            Tag::Empty.value(),
            Tag::Spread.value(),
            Tag::Packed.value(),
            error,
            unpack,
        ))?;
        lua.set_named_registry_value(WRAP_KEY, builder)?;
        let next: Function = globals.get("next")?;
        lua.set_named_registry_value(NEXT_KEY, next)?;
        Ok(Kit)
    }

    /// Lua's `next` as it was when the libraries were installed.
    pub(crate) fn next(lua: &Lua) -> mlua::Result<Function> {
        lua.named_registry_value(NEXT_KEY)
    }

    /// A Lua function whose body is `body`.
    pub(crate) fn function<F>(&self, lua: &Lua, body: F) -> mlua::Result<Function>
    where
        F: Fn(&Lua, Args) -> LibResult<Ret> + Send + 'static,
    {
        let inner = lua.create_function(move |lua, args: MultiValue| {
            let out = match body(lua, Args::from_call(lua, args)) {
                Ok(Ret::One(v)) => MultiValue::from_vec(vec![v]),
                Ok(Ret::Values(vs)) if vs.is_empty() => {
                    MultiValue::from_vec(vec![Tag::Empty.value()])
                }
                Ok(Ret::Values(vs)) => MultiValue::from_vec(vs),
                Ok(Ret::Spread(_, 0)) => MultiValue::from_vec(vec![Tag::Empty.value()]),
                Ok(Ret::Spread(t, n)) => MultiValue::from_vec(vec![
                    Tag::Spread.value(),
                    Value::Table(t),
                    Value::Number(n as f64),
                ]),
                Err(e) => {
                    let level = match e {
                        LibError::BadArg { .. } | LibError::Raise(_) => POSITION_OF_CALLER,
                        LibError::Bare(_) | LibError::Lua(_) => NO_POSITION,
                    };
                    let msg = error_text(lua, e);
                    MultiValue::from_vec(vec![
                        Tag::Fail.value(),
                        Value::String(lua.create_string(msg)?),
                        Value::Integer(level),
                    ])
                }
            };
            Ok(out)
        })?;
        let builder: Function = lua.named_registry_value(WRAP_KEY)?;
        builder.call(inner)
    }
}

/// The message Lua sees for `e`, as `luaL_argerror` / `luaL_error` word it.
fn error_text(lua: &Lua, e: LibError) -> String {
    match e {
        LibError::BadArg { arg, msg } => {
            // Level 0 is this Rust function, level 1 the Lua wrapper: its name as the
            // script called it, which is what Redis's C function would report.
            let names = lua.inspect_stack(1, |d| {
                let n = d.names();
                (n.name.map(|s| s.into_owned()), n.name_what)
            });
            let (name, what) = names.unwrap_or((None, None));
            let mut arg = arg;
            if what == Some("method") {
                arg = arg.saturating_sub(1);
                if arg == 0 {
                    return format!(
                        "calling '{}' on bad self ({msg})",
                        name.as_deref().unwrap_or("?")
                    );
                }
            }
            format!(
                "bad argument #{arg} to '{}' ({msg})",
                name.as_deref().unwrap_or("?")
            )
        }
        LibError::Raise(s) | LibError::Bare(s) => s,
        LibError::Lua(e) => match e {
            mlua::Error::MemoryError(_) => "not enough memory".to_string(),
            other => other.to_string(),
        },
    }
}

/// The arguments of one call, 1-based like the Lua C API.
pub(crate) struct Args<'a> {
    pub lua: &'a Lua,
    src: ArgSrc,
    /// Reads argument `top + 1` as nil rather than "no value" (a marker the original
    /// pushed above its arguments).
    nil_above: bool,
}

/// Where the arguments are: as values, or (for long argument lists) in a table, so a
/// call with thousands of arguments never holds thousands of mlua references.
enum ArgSrc {
    Direct(Vec<Value>),
    Packed(Table, usize),
}

impl<'a> Args<'a> {
    fn from_call(lua: &'a Lua, args: MultiValue) -> Args<'a> {
        let mut vals = args.into_vec();
        let packed = Tag::Packed.is(vals.first());
        let src = if packed && vals.len() == 3 {
            let n = vals.pop().and_then(|v| number_of(&v)).unwrap_or(0.0);
            match vals.pop() {
                Some(Value::Table(t)) => ArgSrc::Packed(t, n as usize),
                _ => ArgSrc::Direct(Vec::new()),
            }
        } else {
            ArgSrc::Direct(vals)
        };
        Args {
            lua,
            src,
            nil_above: false,
        }
    }

    /// Makes argument `top + 1` read as nil.
    pub(crate) fn set_nil_above(&mut self) {
        self.nil_above = true;
    }

    /// Number of arguments (`lua_gettop`).
    pub(crate) fn top(&self) -> usize {
        match &self.src {
            ArgSrc::Direct(v) => v.len(),
            ArgSrc::Packed(_, n) => *n,
        }
    }

    /// Argument `i` (1-based), `None` when absent ("no value").
    pub(crate) fn get(&self, i: usize) -> Option<Value> {
        if i == 0 {
            return None;
        }
        if i > self.top() {
            return (self.nil_above && i == self.top() + 1).then_some(Value::Nil);
        }
        match &self.src {
            ArgSrc::Direct(v) => v.get(i - 1).cloned(),
            ArgSrc::Packed(t, _) => Some(t.raw_get::<Value>(i).unwrap_or(Value::Nil)),
        }
    }

    /// `lua_isnoneornil`.
    pub(crate) fn is_none_or_nil(&self, i: usize) -> bool {
        matches!(self.get(i), None | Some(Value::Nil))
    }

    /// `lua_tonumber` (numbers and numeric strings), `None` when not convertible.
    pub(crate) fn to_number(&self, i: usize) -> LibResult<Option<f64>> {
        match self.get(i) {
            None => Ok(None),
            Some(v) => to_number(self.lua, &v),
        }
    }

    /// `luaL_checknumber`.
    pub(crate) fn check_number(&self, i: usize) -> LibResult<f64> {
        match self.to_number(i)? {
            Some(n) => Ok(n),
            None => Err(self.type_error(i, "number")),
        }
    }

    /// `luaL_checkinteger` (`lua_Integer` is 64-bit; the C cast truncates).
    pub(crate) fn check_integer(&self, i: usize) -> LibResult<i64> {
        self.check_number(i).map(c_double_to_i64)
    }

    /// `luaL_optinteger`.
    pub(crate) fn opt_integer(&self, i: usize, default: i64) -> LibResult<i64> {
        if self.is_none_or_nil(i) {
            Ok(default)
        } else {
            self.check_integer(i)
        }
    }

    /// `luaL_checklstring`: strings, and numbers converted as Lua converts them.
    pub(crate) fn check_bytes(&self, i: usize) -> LibResult<mlua::LuaString> {
        let converted = match self.get(i) {
            Some(Value::String(s)) => Some(s),
            Some(v @ (Value::Number(_) | Value::Integer(_))) => self.lua.coerce_string(v)?,
            _ => None,
        };
        converted.ok_or_else(|| self.type_error(i, "string"))
    }

    /// `luaL_typerror`.
    pub(crate) fn type_error(&self, i: usize, expected: &str) -> LibError {
        let got = self.get(i).as_ref().map(type_name).unwrap_or("no value");
        LibError::BadArg {
            arg: i,
            msg: format!("{expected} expected, got {got}"),
        }
    }
}

/// `lua_tonumber` of one value.
pub(crate) fn to_number(lua: &Lua, v: &Value) -> LibResult<Option<f64>> {
    Ok(match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        Value::String(_) => lua.coerce_number(v.clone())?,
        _ => None,
    })
}

/// The number a numeric value holds (no string conversion).
pub(crate) fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// `lua_typename(lua_type(v))`.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) | Value::UserData(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

/// A C cast `(int64_t)d` as x86-64 performs it: out of range and NaN give `INT64_MIN`.
pub(crate) fn c_double_to_i64(d: f64) -> i64 {
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d) {
        d as i64
    } else {
        i64::MIN
    }
}

/// A C cast `(int)d` as x86-64 performs it: out of range and NaN give `INT_MIN`.
pub(crate) fn c_double_to_i32(d: f64) -> i32 {
    if d > -2_147_483_649.0 && d < 2_147_483_648.0 {
        d as i32
    } else {
        i32::MIN
    }
}

/// A C cast `(uint64_t)d` as gcc compiles it on x86-64: from 2^63 up it converts
/// `d - 2^63` and flips the top bit; below (and NaN) it is the signed conversion.
pub(crate) fn c_double_to_u64(d: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if d >= TWO63 {
        (c_double_to_i64(d - TWO63) as u64) ^ (1u64 << 63)
    } else {
        c_double_to_i64(d) as u64
    }
}

#[cfg(test)]
mod tests;
