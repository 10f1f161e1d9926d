//! The hot path of a script run, on Lua's raw stack (`mlua::ffi`): per EVALSHA the
//! binding's generic machinery (argument conversion, its protected calls, result
//! collection) cost more than the script. Here a run is one protected call into
//! mlua ([`mlua::Lua::exec_raw`]) inside which the KEYS/ARGV tables (kept between
//! runs) are refilled, the script is called with `lua_pcall` under the error handler,
//! and its result is written as RESP straight from the stack; `redis.call`'s reply
//! is pushed straight onto the stack ([`push_reply`]).
//!
//! Unsafe code is allowed in this module because it is the FFI boundary. Two rules
//! hold for every function here that calls the Lua API:
//! - A Lua API call may raise an error (longjmp) — at least on memory exhaustion —
//!   so no value with a destructor is alive in these frames while one runs (a
//!   longjmp would skip the destructor); `String`s are only built from borrowed
//!   slices once no Lua call follows.
//! - Nothing here panics (no unwrap, no unchecked indexing), since a panic cannot
//!   cross the C frames.
#![allow(unsafe_code)]

use super::convert::{number_to_i64, one_line, write_error, write_status};
use super::vm::RunFlags;
use crate::resp::Reply;
use bytes::Bytes;
use mlua::{ffi, Function, Lua, Table, Value};
use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, Ordering};

/// How deep a command reply may nest (our commands never come close).
const MAX_REPLY_DEPTH: usize = 128;

/// A KEYS/ARGV table that held more entries than this is replaced rather than kept
/// (Lua never shrinks a table's parts).
const REUSE_LIMIT: usize = 1024;

/// Registry references (`luaL_ref`) to the values every run uses, made once per
/// state, so a run reaches them with `lua_rawgeti` and allocates nothing.
#[derive(Debug, Default)]
pub struct RawRefs {
    handler: c_int,
    keys: c_int,
    argv: c_int,
    string_meta: c_int,
    string_proxy: c_int,
    k_err: c_int,
    k_ok: c_int,
    k_source: c_int,
    k_line: c_int,
    k_index: c_int,
    k_keys: c_int,
    k_argv: c_int,
    /// [`run_entry`], and the slot where it leaves a table result.
    runner: c_int,
    result: c_int,
    /// The state's main thread (`*mut lua_State`; an address, so the Vm stays Send).
    state: usize,
    /// The globals `KEYS` and `ARGV` are the kept tables (`keys`, `argv`): set by the
    /// first run that reuses them, so later ones only refill them. Scripts cannot
    /// assign a global (the sandbox's proxies refuse), so only a run here changes
    /// them: one with fresh tables (FCALL's state) or one that replaces an outgrown
    /// kept table.
    globals_kept: AtomicBool,
}

impl RawRefs {
    /// References to the error handler, the reused KEYS/ARGV tables, the string
    /// metatable and the string library proxy (sandbox.lua), and the key strings.
    pub fn new(
        lua: &Lua,
        handler: &Function,
        keys: Table,
        argv: Table,
        string_meta: Table,
        string_proxy: Table,
    ) -> mlua::Result<RawRefs> {
        let mut refs = RawRefs::default();
        let r = &mut refs;
        let args = (handler.clone(), keys, argv, string_meta, string_proxy);
        // SAFETY: exec_raw runs the closure in a protected call on the state's main
        // thread with the five values at stack indices 1..=5; luaL_ref pops the top value (hence the reverse
        // order) and may raise an error only on memory exhaustion, with nothing
        // owned in the closure's frame.
        unsafe {
            lua.exec_raw::<()>(args, |l| {
                r.string_proxy = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                r.string_meta = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                r.argv = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                r.keys = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                r.handler = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                for (slot, name) in [
                    (&mut r.k_err, "err"),
                    (&mut r.k_ok, "ok"),
                    (&mut r.k_source, "source"),
                    (&mut r.k_line, "line"),
                    (&mut r.k_index, "__index"),
                    (&mut r.k_keys, "KEYS"),
                    (&mut r.k_argv, "ARGV"),
                ] {
                    push_bytes(l, name.as_bytes());
                    *slot = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                }
                // The mark's key stays alive under a named registry key, so pushing it
                // finds the interned string and allocates nothing. Not one more
                // numbered slot: with one, a cached script's slot was later found nil
                // (observed under Redis's scripting suite; `luaL_ref` takes the
                // registry's length as the next free slot, and `result` is left nil
                // between runs, a hole that length may stop at).
                push_bytes(l, COUNTED_FIELD.as_bytes());
                ffi::lua_setfield(l, ffi::LUA_REGISTRYINDEX, c"tandem.counted_field".as_ptr());
                ffi::lua_pushcfunction(l, run_entry);
                r.runner = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                // A slot of its own (luaL_ref of nil would not reserve one).
                ffi::lua_pushboolean(l, 0);
                r.result = ffi::luaL_ref(l, ffi::LUA_REGISTRYINDEX);
                // exec_raw runs the closure on the main thread (not in a callback).
                r.state = l as usize;
            })?;
        }
        Ok(refs)
    }
}

/// The bytes the state holds, as Lua counts them (no lock taken, unlike
/// `Lua::used_memory`: read after every run).
pub fn used_memory(refs: &RawRefs) -> usize {
    let l = refs.state as *mut ffi::lua_State;
    // SAFETY: `l` is the main thread of the state `refs` was made for, which the
    // caller holds (as in `run_direct`); LUA_GCCOUNT/LUA_GCCOUNTB only read a counter.
    let (kb, rest) = unsafe {
        (
            ffi::lua_gc(l, ffi::LUA_GCCOUNT, 0),
            ffi::lua_gc(l, ffi::LUA_GCCOUNTB, 0),
        )
    };
    usize::try_from(kb).unwrap_or(0) * 1024 + usize::try_from(rest).unwrap_or(0)
}

/// The field of an `{err=...}` table that marks an error already counted in INFO
/// errorstats when the command a script called answered it (as Redis marks the
/// tables `redis.call` raises and `redis.pcall` returns): the run's reply does not
/// count it again.
pub const COUNTED_FIELD: &str = "ignore_error_stats_update";

/// Whether the value on top of the stack is a table marked [`COUNTED_FIELD`] (a raw
/// read; the key is an interned string the registry keeps alive, so pushing it
/// allocates and raises nothing; takes two stack slots).
unsafe fn counted_mark(l: *mut ffi::lua_State) -> bool {
    if ffi::lua_type(l, -1) != ffi::LUA_TTABLE {
        return false;
    }
    push_bytes(l, COUNTED_FIELD.as_bytes());
    ffi::lua_rawget(l, -2);
    let marked = ffi::lua_toboolean(l, -1) != 0;
    ffi::lua_pop(l, 1);
    marked
}

/// How a run ended.
#[derive(Debug)]
pub enum Ran {
    /// The result was written to the reply.
    Written,
    /// The result is a table the direct conversion leaves to
    /// [`super::convert::lua_to_reply`].
    Table(Value),
    /// The script failed: Redis's error text (with the script's label).
    Failed(String),
}

/// The function a run calls.
#[derive(Debug, Clone, Copy)]
pub enum Callee<'a> {
    /// A registry reference (an EVAL script in the cache).
    Registry(c_int),
    Function(&'a Function),
}

/// What a run needs beside the state.
pub struct Run<'a> {
    pub func: Callee<'a>,
    pub keys: &'a [Bytes],
    pub args: &'a [Bytes],
    /// New KEYS/ARGV tables for this run (FCALL hands them to library code, which
    /// may keep them) instead of the reused ones.
    pub fresh_tables: bool,
    /// The script's name in error texts.
    pub label: &'a str,
}

/// What the raw part of a run reports (plain data: it crosses the C frames).
#[derive(Clone, Copy)]
enum Step {
    Written,
    Table,
    Failed,
}

/// Runs a compiled script (or library function wrapper) with KEYS and ARGV, writing a
/// plain result to `out`.
pub fn run(
    lua: &Lua,
    refs: &RawRefs,
    flags: &RunFlags,
    run: &Run<'_>,
    out: &mut Reply,
) -> mlua::Result<Ran> {
    let mark = out.len();
    let mut failure = String::new();
    let step = match run.func {
        Callee::Registry(id) => run_direct(lua, refs, flags, run, id, out, &mut failure),
        Callee::Function(f) => run_in_exec_raw(lua, refs, flags, run, f, out, &mut failure),
    };
    let step = step.inspect_err(|_| out.buf.truncate(mark))?;
    Ok(match step {
        Stepped::Written => Ran::Written,
        Stepped::Table(v) => Ran::Table(v),
        Stepped::Failed => Ran::Failed(failure),
    })
}

/// [`Step`] with the table a result left for the slow conversion.
enum Stepped {
    Written,
    Table(Value),
    Failed,
}

/// A run of a function held by mlua: one protected call through mlua's `exec_raw`.
fn run_in_exec_raw(
    lua: &Lua,
    refs: &RawRefs,
    flags: &RunFlags,
    run: &Run<'_>,
    func: &Function,
    out: &mut Reply,
    failure: &mut String,
) -> mlua::Result<Stepped> {
    let mut step = Step::Written;
    // SAFETY: exec_raw calls the closure in a protected call with the function at
    // stack index 1. The closure's frames hold only references and plain values (the
    // String and Reply it writes live in the caller's frame, above the protected
    // call), so an error raised by the Lua API inside it skips no destructor; it
    // does not panic.
    let value: Value = unsafe {
        lua.exec_raw(func, |l| {
            step = run_raw(l, refs, flags, run, out, failure, Guard::Own);
            if let Step::Table = step {
                // run_raw left the table alone at index 1: it is what exec_raw
                // returns. (A `lua_replace(l, 1)` here, with the table on top at
                // index 1, popped it and FCALL answered nil for every table.)
                ffi::lua_settop(l, 1);
            }
        })?
    };
    Ok(match step {
        Step::Written => Stepped::Written,
        Step::Table => Stepped::Table(value),
        Step::Failed => Stepped::Failed,
    })
}

/// What [`run_entry`] gets from [`run_direct`] (through a light userdata).
struct Params<'a, 'b> {
    refs: &'a RawRefs,
    flags: &'a RunFlags,
    run: &'a Run<'b>,
    id: c_int,
    out: &'a mut Reply,
    failure: &'a mut String,
    step: Step,
}

/// A run of a cached script (a registry reference): `lua_pcall` of [`run_entry`],
/// kept in the registry, on the state's main thread, with no allocation — mlua's
/// `exec_raw` creates two C closures per call on Lua 5.1. The slow conversion's
/// table goes through the registry (`RawRefs::result`).
fn run_direct(
    lua: &Lua,
    refs: &RawRefs,
    flags: &RunFlags,
    run: &Run<'_>,
    id: c_int,
    out: &mut Reply,
    failure: &mut String,
) -> mlua::Result<Stepped> {
    let l = refs.state as *mut ffi::lua_State;
    let mut params = Params {
        refs,
        flags,
        run,
        id,
        out,
        failure,
        step: Step::Failed,
    };
    // SAFETY: `l` is the main thread of `lua`'s state (taken in `RawRefs::new`),
    // alive as long as `lua`, which the caller holds; the state is used by this
    // thread only (the Vm is taken out of the store for the run). Outside a protected
    // call only calls that raise nothing are made (lua_checkstack only grows the stack
    // of a thread mlua leaves nearly empty between calls, a registry read, a light
    // userdata push, lua_pcall itself); after a failed call the error value (the
    // handler's table, or a string for a memory error) is read by `script_error`
    // with calls that raise nothing either (registry reads, raw gets, strings read
    // only when they are strings), in the slots reserved here.
    // Inside, `run_entry` follows the module's rules; `params` lives in this frame,
    // above the protected call.
    unsafe {
        let top = ffi::lua_gettop(l);
        if ffi::lua_checkstack(l, 4) == 0 {
            return Err(mlua::Error::runtime("stack overflow"));
        }
        // The error handler is this call's message handler: the script runs inside
        // it with a plain `lua_call` (one protected call per run, not two).
        ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, refs.handler);
        ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, refs.runner);
        ffi::lua_pushlightuserdata(l, (&mut params as *mut Params).cast());
        if ffi::lua_pcall(l, 1, 1, top + 1) != ffi::LUA_OK {
            flags
                .error_counted
                .store(counted_mark(l), Ordering::Relaxed);
            script_error(l, refs, run.label, params.failure);
            params.step = Step::Failed;
        }
        ffi::lua_settop(l, top);
    }
    Ok(match params.step {
        Step::Written => Stepped::Written,
        Step::Failed => Stepped::Failed,
        Step::Table => {
            // SAFETY: exec_raw's closure reads the registry slot run_entry filled and
            // clears it (no allocation: assigning to an existing key). Cleared to
            // false, not nil: a nil would leave a hole in the registry's numbered
            // slots, and `luaL_ref` takes the registry's length (which may stop at
            // a hole) as the next free slot, so a script cached later could be given
            // this slot and be overwritten by the next table result.
            let value: Value = unsafe {
                lua.exec_raw((), |l| {
                    ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, refs.result);
                    ffi::lua_pushboolean(l, 0);
                    ffi::lua_rawseti_(l, ffi::LUA_REGISTRYINDEX, refs.result);
                })?
            };
            Stepped::Table(value)
        }
    })
}

/// The C function [`run_direct`] calls: argument 1 is a light userdata pointing to
/// its [`Params`].
unsafe extern "C-unwind" fn run_entry(l: *mut ffi::lua_State) -> c_int {
    // SAFETY: run_direct pushes the address of its live `Params` as the only
    // argument; nothing else calls this function (it is only in the registry).
    let p = &mut *(ffi::lua_touserdata(l, 1) as *mut Params<'_, '_>);
    ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, p.id);
    ffi::lua_replace(l, 1);
    p.step = run_raw(l, p.refs, p.flags, p.run, p.out, p.failure, Guard::Caller);
    if let Step::Table = p.step {
        ffi::lua_rawseti_(l, ffi::LUA_REGISTRYINDEX, p.refs.result);
    }
    0
}

/// How [`run_raw`] calls the script.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Guard {
    /// In a protected call of its own, with the error handler.
    Own,
    /// Plainly: the caller's protected call has the error handler as its message
    /// handler ([`run_direct`]) and reads a failure's error itself.
    Caller,
}

/// The run proper (see [`run`]); the script is at stack index 1.
unsafe fn run_raw(
    l: *mut ffi::lua_State,
    refs: &RawRefs,
    flags: &RunFlags,
    run: &Run<'_>,
    out: &mut Reply,
    failure: &mut String,
    guard: Guard,
) -> Step {
    // Room for what this function pushes (clearing a table takes 5 slots).
    if ffi::lua_checkstack(l, 12) == 0 {
        failure.push_str("ERR Error running script: stack overflow");
        return Step::Failed;
    }
    // A script may have replaced the string metatable's __index (an existing key,
    // so the sealed metatable does not refuse it): restore it before every run.
    ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, refs.string_meta);
    ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, refs.k_index);
    ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, refs.string_proxy);
    ffi::lua_rawset(l, -3);
    ffi::lua_pop(l, 1);
    if run.fresh_tables {
        refs.globals_kept.store(false, Ordering::Relaxed);
    }
    let kept = refs.globals_kept.load(Ordering::Relaxed);
    set_array(l, refs.k_keys, refs.keys, run.keys, run.fresh_tables, kept);
    set_array(l, refs.k_argv, refs.argv, run.args, run.fresh_tables, kept);
    if !run.fresh_tables {
        // (Not reached if a set_array above raised: the next run sets them again.)
        refs.globals_kept.store(true, Ordering::Relaxed);
    }
    ffi::lua_settop(l, 1);
    // Either way the result ends alone on the stack, at index 1.
    match guard {
        Guard::Caller => ffi::lua_call(l, 0, 1),
        Guard::Own => {
            ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, refs.handler);
            ffi::lua_pushvalue(l, 1);
            if ffi::lua_pcall(l, 0, 1, 2) != ffi::LUA_OK {
                flags
                    .error_counted
                    .store(counted_mark(l), Ordering::Relaxed);
                script_error(l, refs, run.label, failure);
                ffi::lua_settop(l, 0);
                return Step::Failed;
            }
            ffi::lua_replace(l, 1);
            ffi::lua_settop(l, 1);
        }
    }
    let resp3 = flags.resp3.load(Ordering::Relaxed);
    flags
        .error_counted
        .store(counted_mark(l), Ordering::Relaxed);
    if write_result(l, refs, resp3, out) {
        ffi::lua_settop(l, 0);
        Step::Written
    } else {
        Step::Table
    }
}

/// Sets global `KEYS` or `ARGV` (registry refs `key` and `table`) to `items`: the
/// kept table cleared and refilled, or a new one when `fresh`. `kept`: the global
/// already is the kept table (see [`RawRefs`]), which then is only refilled.
unsafe fn set_array(
    l: *mut ffi::lua_State,
    key: c_int,
    table: c_int,
    items: &[Bytes],
    fresh: bool,
    kept: bool,
) {
    let mut set_global = !kept;
    if fresh {
        ffi::lua_createtable(l, to_int(items.len()), 0);
        set_global = true;
    } else {
        ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, table);
        if clear(l) > REUSE_LIMIT {
            ffi::lua_pop(l, 1);
            ffi::lua_createtable(l, to_int(items.len()), 0);
            ffi::lua_pushvalue(l, -1);
            ffi::lua_rawseti_(l, ffi::LUA_REGISTRYINDEX, table);
            // The global follows at once, before the filling (which may raise): the
            // kept table and the global never differ past this call. (No allocation:
            // the global exists, the outgrown table having been filled before.)
            ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, key);
            ffi::lua_pushvalue(l, -2);
            ffi::lua_rawset(l, ffi::LUA_GLOBALSINDEX);
        }
    }
    for (i, item) in items.iter().enumerate() {
        push_bytes(l, item);
        ffi::lua_rawseti_(l, -2, to_int(i + 1));
    }
    if set_global {
        ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, key);
        ffi::lua_insert(l, -2);
        ffi::lua_rawset(l, ffi::LUA_GLOBALSINDEX);
    } else {
        ffi::lua_pop(l, 1);
    }
}

/// Empties the table on top of the stack, metatable included (what the last script
/// left in it); returns how many entries it had.
unsafe fn clear(l: *mut ffi::lua_State) -> usize {
    // Reading the metatable is cheaper than setting nil over none (the usual case).
    if ffi::lua_getmetatable(l, -1) != 0 {
        ffi::lua_pop(l, 1);
        ffi::lua_pushnil(l);
        ffi::lua_setmetatable(l, -2);
    }
    let mut n = 0;
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        // key at -2, value at -1: t[key] = nil keeps the traversal valid.
        ffi::lua_pop(l, 1);
        ffi::lua_pushvalue(l, -1);
        ffi::lua_pushnil(l);
        ffi::lua_rawset(l, -4);
        n += 1;
    }
    n
}

fn to_int(n: usize) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

unsafe fn push_bytes(l: *mut ffi::lua_State, b: &[u8]) {
    ffi::lua_pushlstring(l, b.as_ptr().cast(), b.len());
}

/// The bytes of the string at `idx` (empty if it is not a string or number).
/// Only call on a string: on a number Lua converts in place, which allocates.
unsafe fn bytes_at<'a>(l: *mut ffi::lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, idx, &mut len);
    if p.is_null() {
        &[]
    } else {
        // SAFETY: Lua guarantees `len` bytes at `p`, alive while the string is
        // reachable (the callers keep it on the stack or in a table on the stack).
        std::slice::from_raw_parts(p.cast(), len)
    }
}

/// The string field (registry ref `key`) of the table on top, if it is a string.
unsafe fn field_str<'a>(l: *mut ffi::lua_State, key: c_int) -> Option<&'a [u8]> {
    ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, key);
    ffi::lua_rawget(l, -2);
    let s = (ffi::lua_type(l, -1) == ffi::LUA_TSTRING).then(|| bytes_at(l, -1));
    // Still referenced by the table, which stays on the stack.
    ffi::lua_pop(l, 1);
    s
}

/// Writes the result on top of the stack to `out` when it is a plain value or an
/// `{err=}`/`{ok=}` table (what `redis.call` returns for a status or error); false
/// for other tables. `script_resp3` is the script's `redis.setresp`.
unsafe fn write_result(
    l: *mut ffi::lua_State,
    refs: &RawRefs,
    script_resp3: bool,
    out: &mut Reply,
) -> bool {
    match ffi::lua_type(l, -1) {
        ffi::LUA_TSTRING => out.bulk(bytes_at(l, -1)),
        ffi::LUA_TNUMBER => out.int(number_to_i64(ffi::lua_tonumber(l, -1))),
        ffi::LUA_TBOOLEAN => {
            let b = ffi::lua_toboolean(l, -1) != 0;
            if script_resp3 {
                out.boolean(b);
            } else if b {
                out.int(1);
            } else {
                out.null();
            }
        }
        ffi::LUA_TTABLE => {
            if let Some(e) = field_str(l, refs.k_err) {
                write_error(out, e);
            } else if let Some(s) = field_str(l, refs.k_ok) {
                write_status(out, s);
            } else {
                return false;
            }
        }
        _ => out.null(),
    }
    true
}

/// Redis's text for a failed script, from the error on top of the stack (the
/// handler's table): `<err> script: <label>, on <source>:<line>.`
unsafe fn script_error(l: *mut ffi::lua_State, refs: &RawRefs, label: &str, failure: &mut String) {
    if ffi::lua_type(l, -1) != ffi::LUA_TTABLE {
        // A memory error (no handler runs: in the script, or while KEYS/ARGV are
        // filled) or a failing handler: a string. Redis 7.0 answers these with
        // `Error running script <name>, <message>`, the message cut at 100 bytes.
        let text = if ffi::lua_type(l, -1) == ffi::LUA_TSTRING {
            bytes_at(l, -1)
        } else {
            b"execution failure"
        };
        let text = text.get(..100).unwrap_or(text);
        failure.push_str("ERR Error running script ");
        failure.push_str(label);
        failure.push_str(", ");
        let end = text
            .iter()
            .rposition(|&c| c != b'\r' && c != b'\n')
            .map_or(0, |i| i + 1);
        failure.push_str(&one_line(text.get(..end).unwrap_or(text)));
        return;
    }
    let msg = field_str(l, refs.k_err);
    let source = field_str(l, refs.k_source);
    ffi::lua_rawgeti_(l, ffi::LUA_REGISTRYINDEX, refs.k_line);
    ffi::lua_rawget(l, -2);
    let line = (ffi::lua_type(l, -1) == ffi::LUA_TNUMBER).then(|| ffi::lua_tonumber(l, -1));
    ffi::lua_pop(l, 1);
    // No Lua call follows: owned strings from here on.
    match msg {
        Some(m) => failure.push_str(&String::from_utf8_lossy(m)),
        None => failure.push_str("ERR unknown error"),
    }
    if let (Some(s), Some(line)) = (source, line) {
        let s = String::from_utf8_lossy(s);
        failure.push_str(&format!(" script: {label}, on {s}:{}.", line as i64));
    }
}

/// Pushes a command's reply (the bytes it wrote) as the Lua value `redis.call`
/// returns: integers to numbers, bulk strings to strings, nil to `false`, status to
/// `{ok=...}`, errors to `{err=...}`, arrays to tables; under RESP3 maps to
/// `{map=...}`, sets to `{set=...}`, doubles to `{double=...}`, big numbers to
/// `{big_number=...}`, verbatim strings to `{verbatim_string={format=,string=}}`.
/// An empty reply (a command that would have blocked) is `false`, like Redis.
/// False if the reply is malformed (then what was pushed is left on the stack).
///
/// # Safety
/// `l` is a Lua state in a protected context (a C function called by Lua or a
/// protected call); frames above hold no values with destructors; its stack has
/// room for one more value (as a C function's has on entry: Lua guarantees it
/// `LUA_MINSTACK` free slots), more is checked here.
pub unsafe fn push_reply(l: *mut ffi::lua_State, buf: &[u8]) -> bool {
    if buf.is_empty() {
        if ffi::lua_checkstack(l, 1) == 0 {
            return false;
        }
        ffi::lua_pushboolean(l, 0);
        return true;
    }
    // The usual reply of a command a script calls (INCR, DEL, EXISTS...) is a lone
    // integer: read it in one pass, without the general parser's line search.
    if let Some(n) = lone_int(buf) {
        // One slot: the caller guarantees it (see Safety).
        ffi::lua_pushnumber(l, n as f64);
        return true;
    }
    let mut p = Parser { buf, pos: 0 };
    push_value(l, &mut p, 0)
}

/// The value of a reply that is exactly `:<digits>\r\n` (at most 18 digits, an
/// optional `-`, no leading zero: what `Reply::int` writes); `None` for anything
/// else, which [`push_value`] reads.
#[inline]
fn lone_int(buf: &[u8]) -> Option<i64> {
    let rest = buf.strip_prefix(b":")?;
    let rest = rest.strip_suffix(b"\r\n")?;
    let (neg, digits) = match rest.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, rest),
    };
    if digits.is_empty() || digits.len() > 18 || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + i64::from(d);
    }
    Some(if neg { -v } else { v })
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn line(&mut self) -> Option<&'a [u8]> {
        let rest = self.buf.get(self.pos..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        self.pos += end + 2;
        rest.get(..end)
    }

    fn int(&mut self) -> Option<i64> {
        crate::resp::parse_i64(self.line()?)
    }

    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end + 2;
        Some(s)
    }

    fn double(&mut self) -> Option<f64> {
        match std::str::from_utf8(self.line()?).ok()? {
            "inf" => Some(f64::INFINITY),
            "-inf" => Some(f64::NEG_INFINITY),
            "nan" => Some(f64::NAN),
            s => s.parse().ok(),
        }
    }
}

/// A one-field table `{name = <value on top>}` replaces the value on top.
unsafe fn wrap(l: *mut ffi::lua_State, name: &std::ffi::CStr) {
    ffi::lua_createtable(l, 0, 1);
    ffi::lua_insert(l, -2);
    ffi::lua_setfield(l, -2, name.as_ptr());
}

unsafe fn push_value(l: *mut ffi::lua_State, p: &mut Parser<'_>, depth: usize) -> bool {
    if depth > MAX_REPLY_DEPTH || ffi::lua_checkstack(l, 4) == 0 {
        return false;
    }
    let Some(&kind) = p.buf.get(p.pos) else {
        return false;
    };
    p.pos += 1;
    match kind {
        b'+' | b'-' | b'(' => {
            let Some(s) = p.line() else { return false };
            push_bytes(l, s);
            wrap(
                l,
                match kind {
                    b'+' => c"ok",
                    b'-' => c"err",
                    _ => c"big_number",
                },
            );
        }
        b':' => {
            let Some(n) = p.int() else { return false };
            ffi::lua_pushnumber(l, n as f64);
        }
        b'$' | b'=' => {
            let Some(n) = p.int() else { return false };
            if n < 0 {
                ffi::lua_pushboolean(l, 0);
                return true;
            }
            let Some(s) = p.bytes(n as usize) else {
                return false;
            };
            if kind == b'=' {
                let (f, body) = s.split_at_checked(4).unwrap_or((s, &[]));
                ffi::lua_createtable(l, 0, 2);
                push_bytes(l, f.get(..3).unwrap_or(f));
                ffi::lua_setfield(l, -2, c"format".as_ptr());
                push_bytes(l, body);
                ffi::lua_setfield(l, -2, c"string".as_ptr());
                wrap(l, c"verbatim_string");
            } else {
                push_bytes(l, s);
            }
        }
        b'*' | b'>' | b'~' | b'%' => return push_aggregate(l, p, kind, depth),
        b'|' => {
            // An attribute: read and dropped (Redis 7.0 does not show attributes to
            // scripts); the value is the reply that follows it.
            let Some(n) = p.int() else { return false };
            for _ in 0..n.max(0).saturating_mul(2) {
                if !push_value(l, p, depth + 1) {
                    return false;
                }
                ffi::lua_settop(l, -2);
            }
            return push_value(l, p, depth);
        }
        b'_' => {
            if p.line().is_none() {
                return false;
            }
            ffi::lua_pushnil(l);
        }
        b'#' => {
            let Some(s) = p.line() else { return false };
            ffi::lua_pushboolean(l, c_int::from(s == b"t"));
        }
        b',' => {
            let Some(d) = p.double() else { return false };
            ffi::lua_pushnumber(l, d);
            wrap(l, c"double");
        }
        _ => return false,
    }
    true
}

unsafe fn push_aggregate(
    l: *mut ffi::lua_State,
    p: &mut Parser<'_>,
    kind: u8,
    depth: usize,
) -> bool {
    let Some(n) = p.int() else { return false };
    if n < 0 {
        ffi::lua_pushboolean(l, 0);
        return true;
    }
    let n = n as usize;
    let array_hint = if kind == b'*' || kind == b'>' {
        n.min(1024)
    } else {
        0
    };
    ffi::lua_createtable(l, to_int(array_hint), 0);
    match kind {
        b'~' => {
            for _ in 0..n {
                if !push_value(l, p, depth + 1) {
                    return false;
                }
                ffi::lua_pushboolean(l, 1);
                ffi::lua_rawset(l, -3);
            }
            wrap(l, c"set");
        }
        b'%' => {
            for _ in 0..n {
                if !push_value(l, p, depth + 1) || !push_value(l, p, depth + 1) {
                    return false;
                }
                ffi::lua_rawset(l, -3);
            }
            wrap(l, c"map");
        }
        _ => {
            for i in 1..=n {
                if !push_value(l, p, depth + 1) {
                    return false;
                }
                ffi::lua_rawseti_(l, -2, to_int(i));
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `push_reply` then the script-result conversion gives the reply back.
    fn round_trip(reply: &[u8]) -> Option<Vec<u8>> {
        let lua = Lua::new();
        let flatten: Function = lua.load(super::super::convert::FLATTEN).eval().unwrap();
        let mut ok = false;
        // SAFETY: test-only; the closure holds no owned values.
        let v: Value = unsafe {
            lua.exec_raw((), |l| {
                ok = push_reply(l, reply);
            })
        }
        .unwrap();
        if !ok {
            return None;
        }
        let mut out = Reply::new(false);
        let mut errors = super::super::convert::NestedErrors::default();
        super::super::convert::lua_to_reply(&flatten, v, false, &mut out, &mut errors).unwrap();
        Some(out.buf)
    }

    #[test]
    fn lone_integers_read_as_the_general_parser_reads_them() {
        for n in [
            0,
            1,
            -1,
            9,
            10,
            -99,
            123_456_789,
            999_999_999_999_999_999,
            -999_999_999_999_999_999,
            1_000_000_000_000_000_000,
            i64::MAX,
            i64::MIN,
        ] {
            let reply = format!(":{n}\r\n");
            let general = crate::resp::parse_i64(&reply.as_bytes()[1..reply.len() - 2]);
            assert_eq!(general, Some(n));
            // Beyond 18 digits the general parser takes over.
            let fast = lone_int(reply.as_bytes());
            assert!(fast.is_none() || fast == Some(n), "{n}");
            if n.unsigned_abs() < 1 << 53 {
                assert_eq!(
                    round_trip(reply.as_bytes()).as_deref(),
                    Some(reply.as_bytes()),
                    "{n}"
                );
            }
        }
        for bad in [
            &b":\r\n"[..],
            b":-\r\n",
            b":-0\r\n",
            b":01\r\n",
            b":1x\r\n",
            b":1\r",
            b":1\r\n:2\r\n",
            b"+1\r\n",
        ] {
            assert_eq!(lone_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn replies_become_lua_values() {
        assert_eq!(
            round_trip(b"*3\r\n:1\r\n$-1\r\n+OK\r\n").as_deref(),
            Some(&b"*3\r\n:1\r\n$-1\r\n+OK\r\n"[..])
        );
        assert_eq!(
            round_trip(b"-ERR x\r\n").as_deref(),
            Some(&b"-ERR x\r\n"[..])
        );
        assert_eq!(
            round_trip(b"$3\r\nabc\r\n").as_deref(),
            Some(&b"$3\r\nabc\r\n"[..])
        );
        assert_eq!(round_trip(b"$5\r\nab"), None);
        assert_eq!(round_trip(b"*9999999999\r\n"), None);
        assert_eq!(round_trip(b"?\r\n"), None);
    }

    /// An attribute (RESP3 `|`) is read past: the script sees the reply after it,
    /// nested aggregates in the attribute included.
    #[test]
    fn attributes_are_skipped() {
        assert_eq!(
            round_trip(b"|1\r\n$3\r\nkey\r\n*2\r\n$1\r\na\r\n:90\r\n$2\r\nhi\r\n").as_deref(),
            Some(&b"$2\r\nhi\r\n"[..])
        );
        assert_eq!(
            round_trip(b"*2\r\n|1\r\n:1\r\n:2\r\n:3\r\n:4\r\n").as_deref(),
            Some(&b"*2\r\n:3\r\n:4\r\n"[..])
        );
        assert_eq!(round_trip(b"|1\r\n:1\r\n"), None);
    }
}
