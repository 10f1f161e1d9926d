//! One Lua state as Redis sets it up: the base, table, string and math libraries,
//! Redis's C libraries, the `redis` table, Redis's `math.random`, the sandbox
//! (`sandbox.lua`), the error handler that gives errors their script position, and
//! the instruction hook of the busy machinery.

use super::busy::{Busy, HOOK_EVERY};
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

/// Lua memory a state may hold: a script that builds more fails with Lua's
/// "not enough memory" instead of taking the machine's memory.
pub const MEMORY_LIMIT: usize = 1 << 30;

/// The sandbox chunk's name; the error handler skips its frames.
const INTERNAL_CHUNK: &str = "=tandem";

const SANDBOX: &str = include_str!("sandbox.lua");

/// Redis's `math.random` generator (the `lrand48` algorithm), whose state outlives
/// SCRIPT FLUSH like Redis's process-wide one.
#[derive(Debug)]
pub struct Rand48(AtomicU64);

impl Default for Rand48 {
    fn default() -> Self {
        // lrand48's state before any srand48 call.
        Rand48(AtomicU64::new(0x1234_ABCD_330E))
    }
}

impl Rand48 {
    const MASK: u64 = (1 << 48) - 1;

    /// The next value in [0, 1), as Redis's `math.random` computes it.
    fn next(&self) -> f64 {
        let x = self.0.load(Ordering::Relaxed);
        let x = (x.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB)) & Self::MASK;
        self.0.store(x, Ordering::Relaxed);
        let r = (x >> 17) as i64;
        (r % 2_147_483_647) as f64 / 2_147_483_647.0
    }

    fn seed(&self, seed: i32) {
        self.0
            .store((((seed as u32) as u64) << 16) | 0x330E, Ordering::Relaxed);
    }
}

/// Per-run settings a script changes through the `redis` table (`redis.setresp`,
/// `redis.set_repl`), read by the runner's dispatcher.
#[derive(Debug, Default)]
pub struct RunFlags {
    pub resp3: AtomicBool,
    /// `redis.set_repl` (REPL_NONE = 0 ... REPL_ALL = 3).
    pub repl: AtomicU8,
    /// The run's error (raised, or returned as its result) is a table marked
    /// [`super::raw::COUNTED_FIELD`]: counted when the command answered it.
    pub error_counted: AtomicBool,
}

impl RunFlags {
    pub fn reset(&self) {
        self.resp3.store(false, Ordering::Relaxed);
        self.repl.store(3, Ordering::Relaxed);
        self.error_counted.store(false, Ordering::Relaxed);
    }
}

/// An error reply raised by `redis.call` (or SCRIPT KILL): its text is the final
/// error, with its code. Other errors raised from Rust are Lua-style messages that
/// get Redis's `ERR ` prefix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReplyError(pub String);

/// What sandbox.lua returns: the globals proxy, `install`, the KEYS and ARGV tables,
/// the string metatable and the string library proxy.
type SandboxParts = (Table, Function, Table, Table, Table, Table);

/// A ready Lua state and the handles the runner needs.
pub struct Vm {
    pub lua: Lua,
    /// The protected globals scripts run with.
    pub env: Table,
    /// Sets `redis.call` (see sandbox.lua).
    pub install: Function,
    /// What each run reaches on the raw stack (the handler, KEYS/ARGV...).
    pub refs: super::raw::RawRefs,
    pub flags: Arc<RunFlags>,
    /// The result flattener (`convert::FLATTEN`).
    pub flatten: Function,
    /// `redis.call` as the layer running scripts made it for this state, once (a C
    /// function), with the slot through which each run lends it that run's context
    /// (see `commands::script_run`). None until the first run.
    pub call: Option<(Function, Arc<std::sync::atomic::AtomicUsize>)>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("used_memory", &self.lua.used_memory())
            .finish()
    }
}

/// The position prefix Lua's `luaL_error` gives an error raised by a C function:
/// `source:line: ` of its caller, empty when the caller is not Lua code.
pub fn position(lua: &Lua) -> String {
    lua.inspect_stack(1, |d| {
        let src = d.source();
        if src.what == "C" {
            return String::new();
        }
        match (src.short_src.as_deref(), d.current_line()) {
            (Some(s), Some(l)) => format!("{s}:{l}: "),
            _ => String::new(),
        }
    })
    .unwrap_or_default()
}

/// A Lua-style error from a Rust function, positioned like `luaL_error`.
fn lua_error(lua: &Lua, msg: &str) -> mlua::Error {
    mlua::Error::runtime(format!("{}{msg}", position(lua)))
}

impl Vm {
    pub fn new(
        busy: Arc<Busy>,
        rand: Arc<Rand48>,
        is_command: super::IsCommand,
    ) -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        lua.set_memory_limit(MEMORY_LIMIT)?;
        super::libs::register(&lua)?;
        install_random(&lua, rand)?;
        let flatten: Function = lua
            .load(super::convert::FLATTEN)
            .set_name(INTERNAL_CHUNK)
            .eval()?;
        let flags = Arc::new(RunFlags::default());
        let killed = {
            let busy = busy.clone();
            lua.create_function(move |_, ()| Ok(busy.killed()))?
        };
        let errtext = lua.create_function(|_, v: Value| {
            Ok(match v {
                Value::Error(e) => error_text(&e),
                other => other.to_string().unwrap_or_default(),
            })
        })?;
        let native = native_functions(&lua, &flags, is_command)?;
        let (env, install, keys, argv, string_meta, string_proxy): SandboxParts = lua
            .load(SANDBOX)
            .set_name(INTERNAL_CHUNK)
            .call((native, killed, errtext))?;
        let handler = lua.create_function(error_handler)?;
        let refs = super::raw::RawRefs::new(&lua, &handler, keys, argv, string_meta, string_proxy)?;
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                busy.on_hook()
                    .map(|_| VmState::Continue)
                    .map_err(|e| mlua::Error::external(ReplyError(e.to_string())))
            },
        )?;
        lua.gc_collect()?;
        Ok(Vm {
            lua,
            env,
            install,
            refs,
            flags,
            flatten,
            call: None,
        })
    }

    /// Compiles a script body; the error text is Redis's.
    pub fn compile(&self, body: &[u8], chunk: &str) -> Result<Function, String> {
        self.lua
            .load(body)
            .set_name(chunk)
            .set_mode(mlua::chunk::ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| match e {
                mlua::Error::SyntaxError { message, .. } => message,
                other => error_text(&other),
            })
    }

    /// Lua's memory in use, as Redis reports it (whole KB).
    pub fn used_memory(&self) -> usize {
        self.lua.used_memory() / 1024 * 1024
    }
}

fn runtime(msg: &str) -> mlua::Error {
    mlua::Error::runtime(msg)
}

/// The `redis.*` functions written in Rust (not redis.call/pcall, which the runner
/// adds per run).
fn native_functions(
    lua: &Lua,
    flags: &Arc<RunFlags>,
    is_command: super::IsCommand,
) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "sha1hex",
        lua.create_function(|lua, args: MultiValue| {
            let s = match (args.len(), args.front()) {
                (1, Some(v @ (Value::String(_) | Value::Number(_) | Value::Integer(_)))) => {
                    lua.coerce_string(v.clone())?
                }
                _ => None,
            };
            let Some(s) = s else {
                return Err(runtime("wrong number of arguments"));
            };
            Ok(sha1_hex(&s.as_bytes()))
        })?,
    )?;
    t.raw_set("log", lua.create_function(log)?)?;
    let f = flags.clone();
    t.raw_set(
        "setresp",
        lua.create_function(move |_, args: MultiValue| {
            if args.len() != 1 {
                return Err(runtime("redis.setresp() requires one argument."));
            }
            match args.front().and_then(number) {
                Some(2.0) => f.resp3.store(false, Ordering::Relaxed),
                Some(3.0) => f.resp3.store(true, Ordering::Relaxed),
                _ => return Err(runtime("RESP version must be 2 or 3.")),
            }
            Ok(())
        })?,
    )?;
    let f = flags.clone();
    t.raw_set(
        "set_repl",
        lua.create_function(move |_, args: MultiValue| {
            if args.len() != 1 {
                return Err(runtime("redis.set_repl() requires one argument."));
            }
            match args.front().and_then(number) {
                Some(n) if n == n.trunc() && (0.0..=3.0).contains(&n) => {
                    f.repl.store(n as u8, Ordering::Relaxed)
                }
                _ => return Err(runtime(
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                )),
            }
            Ok(())
        })?,
    )?;
    t.raw_set(
        "acl_check_cmd",
        lua.create_function(move |_, args: MultiValue| {
            let known = match args.front() {
                Some(Value::String(name)) => is_command(&name.as_bytes()),
                None => {
                    return Err(runtime(
                        "Please specify at least one argument for this redis lib call",
                    ))
                }
                _ => false,
            };
            if !known {
                return Err(runtime("Invalid command passed to redis.acl_check_cmd()"));
            }
            Ok(true)
        })?,
    )?;
    Ok(t)
}

/// `redis.log(level, message...)`.
fn log(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    use crate::log::Level;
    if args.len() < 2 {
        return Err(runtime("redis.log() requires two arguments or more."));
    }
    let Some(level) = args.front().and_then(number) else {
        return Err(runtime("First argument must be a number (log level)."));
    };
    let level = match level as i64 {
        0 => Level::Debug,
        1 => Level::Verbose,
        2 => Level::Notice,
        3 => Level::Warning,
        _ => return Err(runtime("Invalid debug level.")),
    };
    let mut msg = String::new();
    for v in args.iter().skip(1) {
        if let Some(s) = lua.coerce_string(v.clone())? {
            if !msg.is_empty() {
                msg.push(' ');
            }
            msg.push_str(&s.to_string_lossy());
        }
    }
    crate::log::log(level, &msg);
    Ok(())
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

/// An integer argument of a math function (`luaL_checkint`), with Lua's errors.
fn int_arg(lua: &Lua, args: &MultiValue, i: usize, fname: &str) -> mlua::Result<f64> {
    let got = match args.get(i - 1) {
        Some(v) => match lua.coerce_number(v.clone())? {
            Some(n) => return Ok(n.trunc()),
            None => v.type_name(),
        },
        None => "no value",
    };
    Err(lua_error(
        lua,
        &format!("bad argument #{i} to '{fname}' (number expected, got {got})"),
    ))
}

/// `math.random` and `math.randomseed` over [`Rand48`], with Lua 5.1's argument
/// rules and error texts.
fn install_random(lua: &Lua, rand: Arc<Rand48>) -> mlua::Result<()> {
    let math: Table = lua.globals().raw_get("math")?;
    let r = rand.clone();
    let random = lua.create_function(move |lua, args: MultiValue| {
        let x = r.next();
        match args.len() {
            0 => Ok(x),
            1 => {
                let u = int_arg(lua, &args, 1, "random")?;
                if u < 1.0 {
                    return Err(lua_error(
                        lua,
                        "bad argument #1 to 'random' (interval is empty)",
                    ));
                }
                Ok((x * u).floor() + 1.0)
            }
            2 => {
                let l = int_arg(lua, &args, 1, "random")?;
                let u = int_arg(lua, &args, 2, "random")?;
                if l > u {
                    return Err(lua_error(
                        lua,
                        "bad argument #2 to 'random' (interval is empty)",
                    ));
                }
                Ok((x * (u - l + 1.0)).floor() + l)
            }
            _ => Err(lua_error(lua, "wrong number of arguments")),
        }
    })?;
    let randomseed = lua.create_function(move |lua, args: MultiValue| {
        let n = int_arg(lua, &args, 1, "randomseed")?;
        rand.seed(super::convert::number_to_i64(n) as i32);
        Ok(())
    })?;
    math.raw_set("random", random)?;
    math.raw_set("randomseed", randomseed)?;
    Ok(())
}

/// Lowercase hex SHA1, as `redis.sha1hex` and the script cache use.
pub fn sha1_hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}

/// The text of an error raised from Rust (a hook or callback), innermost cause.
pub fn error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::MemoryError(_) => "not enough memory".to_string(),
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        mlua::Error::WithContext { cause, .. } => error_text(cause),
        mlua::Error::ExternalError(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// The xpcall handler: turns any error into an error table `{err=...}` carrying the
/// source and line of the script frame that raised it (Redis's error handler).
fn error_handler(lua: &Lua, err: Value) -> mlua::Result<Table> {
    let t = match err {
        Value::Table(t) => t,
        other => {
            let text = match &other {
                Value::String(s) => format!("ERR {}", s.to_string_lossy()),
                Value::Nil => "ERR nil".to_string(),
                Value::Boolean(b) => format!("ERR {b}"),
                Value::Number(n) => format!("ERR {}", crate::resp::format_g(*n, 14)),
                Value::Integer(i) => format!("ERR {i}"),
                Value::Error(e) => match e.downcast_ref::<ReplyError>() {
                    Some(ReplyError(m)) => m.clone(),
                    None => format!("ERR {}", error_text(e)),
                },
                v => format!("ERR {}", v.type_name()),
            };
            let t = lua.create_table()?;
            t.raw_set("err", text)?;
            t
        }
    };
    for level in 1..256 {
        let Some(found) = lua.inspect_stack(level, |d| {
            let src = d.source();
            if src.what == "C" {
                return None;
            }
            let source = src.source.as_deref().unwrap_or("");
            if source == INTERNAL_CHUNK {
                return None;
            }
            Some((source.to_string(), d.current_line().unwrap_or(0)))
        }) else {
            break;
        };
        if let Some((source, line)) = found {
            t.raw_set("source", source)?;
            t.raw_set("line", line)?;
            break;
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_follows_redis_sequence() {
        let r = Rand48::default();
        // The first values a fresh Redis 7.0.15 gives math.random().
        assert_eq!(format!("{:.14}", r.next()), "0.39646477363839");
        assert_eq!(format!("{:.14}", r.next()), "0.84048536971234");
        r.seed(0);
        assert_eq!(format!("{:.14}", r.next()), "0.17082803611217");
    }
}
