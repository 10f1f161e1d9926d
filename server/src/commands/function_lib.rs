//! Subsystem layer: Redis 7.0 Functions — the library registry (FUNCTION LOAD and
//! friends) and the runner behind FCALL/FCALL_RO.
//!
//! Libraries live in their own Lua state (as in Redis), created on first use and
//! sharing the busy/kill machinery with EVAL. A library's code runs once when it is
//! loaded, with a global table that offers only `redis.register_function`,
//! `redis.log`, the `LOG_*` levels and the version fields; the functions it
//! registers keep that table as their environment, which after the load reads
//! through to the sandboxed globals scripts run with.
//!
//! The registry is part of the dataset: its libraries' codes are what the RDB
//! (opcode FUNCTION2) and FUNCTION DUMP carry, and loading them back re-runs them.

use crate::commands::{CmdError, Ctx};
use crate::resp::Reply;
use crate::scripting::busy::HOOK_EVERY;
use crate::scripting::vm::{self, ReplyError};
use crate::scripting::{Busy, ScriptFlags, Scripts};
use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, MultiValue, Table, Value, VmState};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a library's load-time code may run (Redis's fixed 500 ms).
const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// The chunk name library code is compiled under: errors read `user_function:<line>`.
const CHUNK: &str = "@user_function";

/// Bytes INFO counts for an empty registry and per library / function besides the
/// code (approximations of Redis 7.0.15's struct and dict overheads).
const EMPTY_OVERHEAD: usize = 200;
const LIBRARY_OVERHEAD: usize = 120;
const FUNCTION_OVERHEAD: usize = 100;

/// Why a library could not be loaded or restored (texts are Redis 7.0's).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FunctionError {
    #[error("ERR Missing library metadata")]
    MissingMetadata,
    #[error("ERR Invalid library metadata")]
    InvalidMetadata,
    #[error("ERR Invalid metadata value, name argument was given multiple times")]
    NameTwice,
    #[error("ERR Invalid metadata value given: {0}")]
    MetadataValue(String),
    #[error("ERR Library name was not given")]
    NoName,
    #[error("ERR Engine '{0}' not found")]
    Engine(String),
    #[error("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long")]
    BadLibraryName,
    #[error("ERR Library '{0}' already exists")]
    LibraryExists(String),
    #[error("ERR Error compiling function: {0}")]
    Compile(String),
    #[error("ERR Error registering functions: {0}")]
    Register(String),
    #[error("ERR No functions registered")]
    NoFunctions,
    #[error("ERR Library {0} already exists")]
    RestoreLibraryExists(String),
    #[error("ERR Function {0} already exists")]
    FunctionExists(String),
    #[error("ERR the Lua scripting engine could not be started")]
    NoVm,
}

impl From<FunctionError> for CmdError {
    fn from(e: FunctionError) -> Self {
        CmdError::msg(e.to_string())
    }
}

/// One registered function.
#[derive(Debug)]
pub struct FunctionDef {
    pub name: String,
    pub description: Option<Bytes>,
    pub flags: ScriptFlags,
    callback: Function,
}

/// One library: its name, code (shebang included, as loaded) and functions by name.
#[derive(Debug)]
pub struct Library {
    pub name: String,
    pub code: Bytes,
    pub functions: BTreeMap<String, FunctionDef>,
}

/// The function registry of a server (a field of the store).
#[derive(Debug, Default)]
pub struct Functions {
    pub(crate) vm: Option<Box<vm::Vm>>,
    /// Libraries by name (sorted: FUNCTION LIST, DUMP and the RDB list them in order).
    libs: BTreeMap<String, Library>,
    /// Function name, ASCII-lowercased (FCALL and the name clash checks ignore case,
    /// as Redis 7.0's function dict does) -> (library name, name as registered).
    index: HashMap<String, (String, String)>,
}

/// INFO memory's function fields.
#[derive(Debug, Clone, Copy)]
pub struct MemoryInfo {
    pub vm: usize,
    pub functions: usize,
    pub number_of_functions: usize,
    pub number_of_libraries: usize,
}

/// Redis 7.0.15's `used_memory_vm_functions` for a function engine with no library.
const EMPTY_VM_MEMORY: usize = 33792;

/// A library's metadata line: `#!<engine> name=<name>`, and the code after it.
struct Metadata<'a> {
    engine: String,
    name: String,
    body: &'a [u8],
}

fn parse_metadata(code: &[u8]) -> Result<Metadata<'_>, FunctionError> {
    if !code.starts_with(b"#!") {
        return Err(FunctionError::MissingMetadata);
    }
    // The first line ends at a newline; a NUL before it ends the search (C strings).
    let nl = code
        .iter()
        .position(|&c| c == b'\n' || c == 0)
        .filter(|&i| code[i] == b'\n')
        .ok_or(FunctionError::InvalidMetadata)?;
    // Tokenised like a config line (quotes allowed); the first token is `#!<engine>`.
    let parts = crate::resp::split_args(&code[..nl])
        .filter(|p| !p.is_empty())
        .ok_or(FunctionError::InvalidMetadata)?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let engine = text(parts[0].get(2..).unwrap_or_default());
    let mut name = None;
    for part in &parts[1..] {
        match part.get(..5) {
            Some(p) if p.eq_ignore_ascii_case(b"name=") => {
                if name.is_some() {
                    return Err(FunctionError::NameTwice);
                }
                name = Some(text(&part[5..]));
            }
            _ => return Err(FunctionError::MetadataValue(text(part))),
        }
    }
    Ok(Metadata {
        engine,
        name: name.ok_or(FunctionError::NoName)?,
        body: &code[nl..],
    })
}

/// Library and function names: letters, digits and underscores, at least one.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// What FUNCTION RESTORE does with libraries that already exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    Flush,
    Append,
    Replace,
}

impl Functions {
    fn vm(&mut self, scripts: &Scripts) -> Result<&vm::Vm, FunctionError> {
        if self.vm.is_none() {
            let vm = vm::Vm::new(scripts.busy.clone(), scripts.rand.clone(), is_command)
                .map_err(|_| FunctionError::NoVm)?;
            self.vm = Some(Box::new(vm));
        }
        self.vm.as_deref().ok_or(FunctionError::NoVm)
    }

    pub fn libraries(&self) -> impl Iterator<Item = &Library> {
        self.libs.values()
    }

    pub fn library(&self, name: &str) -> Option<&Library> {
        self.libs.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.libs.is_empty()
    }

    /// The codes of every library, in name order (what the RDB and DUMP carry).
    pub fn codes(&self) -> Vec<Bytes> {
        self.libs.values().map(|l| l.code.clone()).collect()
    }

    /// FUNCTION LOAD: compiles and runs `code`, registering its library. With
    /// `replace`, an existing library of the same name is replaced (only if the new
    /// one loads). Returns the library name.
    pub fn load(
        &mut self,
        scripts: &Scripts,
        code: &[u8],
        replace: bool,
    ) -> Result<String, FunctionError> {
        let lib = self.compile_library(scripts, code, replace)?;
        let name = lib.name.clone();
        self.install(lib)?;
        Ok(name)
    }

    /// Builds a library from its code, checking the name against the registry but
    /// changing nothing.
    fn compile_library(
        &mut self,
        scripts: &Scripts,
        code: &[u8],
        replace: bool,
    ) -> Result<Library, FunctionError> {
        let md = parse_metadata(code)?;
        if !valid_name(&md.name) {
            return Err(FunctionError::BadLibraryName);
        }
        if !md.engine.eq_ignore_ascii_case("lua") {
            return Err(FunctionError::Engine(md.engine));
        }
        if !replace && self.libs.contains_key(&md.name) {
            return Err(FunctionError::LibraryExists(md.name));
        }
        let busy = scripts.busy.clone();
        let vm = self.vm(scripts)?;
        let functions = run_library_code(&vm.lua, &vm.env, md.body);
        // The load swapped the VM's instruction hook for its timeout: put back the
        // busy/kill hook scripts run under.
        vm.lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                busy.on_hook()
                    .map(|_| VmState::Continue)
                    .map_err(|e| mlua::Error::external(ReplyError(e.to_string())))
            },
        )?;
        let functions = functions?;
        if functions.is_empty() {
            return Err(FunctionError::NoFunctions);
        }
        Ok(Library {
            name: md.name,
            code: Bytes::copy_from_slice(code),
            functions,
        })
    }

    /// Adds a library, replacing one of the same name; fails (changing nothing) if
    /// one of its functions belongs to another library.
    fn install(&mut self, lib: Library) -> Result<(), FunctionError> {
        for f in lib.functions.keys() {
            if let Some((owner, _)) = self.index.get(&f.to_ascii_lowercase()) {
                if *owner != lib.name {
                    return Err(FunctionError::FunctionExists(f.clone()));
                }
            }
        }
        self.delete(&lib.name);
        for f in lib.functions.keys() {
            self.index
                .insert(f.to_ascii_lowercase(), (lib.name.clone(), f.clone()));
        }
        self.libs.insert(lib.name.clone(), lib);
        Ok(())
    }

    /// FUNCTION DELETE: false if there is no such library.
    pub fn delete(&mut self, name: &str) -> bool {
        let Some(lib) = self.libs.remove(name) else {
            return false;
        };
        for f in lib.functions.keys() {
            self.index.remove(&f.to_ascii_lowercase());
        }
        true
    }

    /// FUNCTION FLUSH: drops every library and the Lua state they lived in.
    pub fn flush(&mut self) {
        self.libs.clear();
        self.index.clear();
        self.vm = None;
    }

    /// FUNCTION RESTORE / loading an RDB: installs the libraries of `codes` under
    /// `policy`, all or nothing.
    pub fn restore(
        &mut self,
        scripts: &Scripts,
        codes: &[Bytes],
        policy: RestorePolicy,
    ) -> Result<(), FunctionError> {
        // Built against an empty registry so the new set is checked on its own.
        let mut fresh = Functions {
            vm: self.vm.take(),
            ..Default::default()
        };
        let built = (|| {
            for code in codes {
                fresh.load(scripts, code, false)?;
            }
            Ok::<_, FunctionError>(())
        })();
        let mut fresh_libs = std::mem::take(&mut fresh.libs);
        self.vm = fresh.vm.take();
        built?;
        if policy == RestorePolicy::Flush {
            self.libs.clear();
            self.index.clear();
        }
        if policy == RestorePolicy::Append {
            if let Some(name) = fresh_libs.keys().find(|n| self.libs.contains_key(*n)) {
                return Err(FunctionError::RestoreLibraryExists(name.clone()));
            }
        }
        // Function collisions with the libraries that stay.
        for lib in fresh_libs.values() {
            for f in lib.functions.keys() {
                if let Some((owner, _)) = self.index.get(&f.to_ascii_lowercase()) {
                    if !fresh_libs.contains_key(owner) {
                        return Err(FunctionError::FunctionExists(f.clone()));
                    }
                }
            }
        }
        // Libraries being replaced go first, so no function moving between two
        // restored libraries meets its old owner.
        for name in fresh_libs.keys() {
            self.delete(name);
        }
        for (_, lib) in std::mem::take(&mut fresh_libs) {
            self.install(lib)?;
        }
        Ok(())
    }

    /// The function `name`, with its flags.
    fn function(&self, name: &[u8]) -> Option<(Function, ScriptFlags)> {
        let name = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        let (lib, name) = self.index.get(&name)?;
        let f = self.libs.get(lib)?.functions.get(name)?;
        Some((f.callback.clone(), f.flags))
    }

    pub fn memory(&self) -> MemoryInfo {
        let functions = EMPTY_OVERHEAD
            + self
                .libs
                .values()
                .map(|l| {
                    LIBRARY_OVERHEAD
                        + l.name.len()
                        + l.code.len()
                        + l.functions
                            .values()
                            .map(|f| {
                                FUNCTION_OVERHEAD
                                    + f.name.len()
                                    + f.description.as_ref().map_or(0, |d| d.len())
                            })
                            .sum::<usize>()
                })
                .sum::<usize>();
        MemoryInfo {
            vm: self
                .vm
                .as_ref()
                .map_or(EMPTY_VM_MEMORY, |v| v.used_memory()),
            functions,
            number_of_functions: self.index.len(),
            number_of_libraries: self.libs.len(),
        }
    }
}

impl From<mlua::Error> for FunctionError {
    fn from(e: mlua::Error) -> Self {
        FunctionError::Register(load_error_text(&e))
    }
}

/// A load-time error as Redis words it: an error raised by `register_function`
/// keeps its own text, a Lua error gets `ERR `.
fn load_error_text(e: &mlua::Error) -> String {
    if let Some(ReplyError(m)) = e.downcast_ref::<ReplyError>() {
        return m.clone();
    }
    match e {
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => {
            load_error_text(cause)
        }
        mlua::Error::ExternalError(inner) => match inner.downcast_ref::<ReplyError>() {
            Some(ReplyError(m)) => m.clone(),
            None => format!("ERR {inner}"),
        },
        other => format!("ERR {}", vm::error_text(other)),
    }
}

/// Lua helpers for library environments: `(env, api)` builds a library's global
/// table, which reads `api` during the load (then, once switched, the sandboxed
/// globals) and refuses writes.
const ENV_SETUP: &str = r#"
local api, setmetatable, error, tostring = ...
local function missing(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end
setmetatable(api, { __index = missing })
setmetatable(api.redis, { __index = missing, __newindex = function() error('Attempt to modify a readonly table', 2) end })
local function readonly() error('Attempt to modify a readonly table', 2) end
local mt = { __index = api, __newindex = readonly, __metatable = false }
return setmetatable({}, mt), mt
"#;

/// An error of `register_function` (or the load timeout): a plain message, which
/// the load's error path gives Redis's `ERR ` prefix.
fn reg_error(msg: &str) -> mlua::Error {
    mlua::Error::runtime(msg)
}

/// Compiles and runs a library's code; returns the functions it registered.
fn run_library_code(
    lua: &Lua,
    globals: &Table,
    body: &[u8],
) -> Result<BTreeMap<String, FunctionDef>, FunctionError> {
    let redis: Table = globals.get("redis")?;
    let api_redis = lua.create_table()?;
    for key in [
        "log",
        "LOG_DEBUG",
        "LOG_VERBOSE",
        "LOG_NOTICE",
        "LOG_WARNING",
        "REDIS_VERSION",
        "REDIS_VERSION_NUM",
    ] {
        api_redis.raw_set(key, redis.get::<Value>(key)?)?;
    }
    let api = lua.create_table()?;
    api.raw_set("redis", api_redis.clone())?;
    let (env, mt): (Table, Table) = lua.load(ENV_SETUP).set_name("=tandem").call((
        api,
        globals_raw(lua, "setmetatable")?,
        globals_raw(lua, "error")?,
        globals_raw(lua, "tostring")?,
    ))?;
    let chunk = lua
        .load(body)
        .set_name(CHUNK)
        .set_mode(mlua::chunk::ChunkMode::Text)
        .set_environment(env)
        .into_function()
        .map_err(|e| match e {
            mlua::Error::SyntaxError { message, .. } => FunctionError::Compile(message),
            other => FunctionError::Compile(vm::error_text(&other)),
        })?;
    let pcall: Function = lua.globals().raw_get("pcall")?;
    let registered: RefCell<BTreeMap<String, FunctionDef>> = RefCell::new(BTreeMap::new());
    let deadline = Instant::now() + LOAD_TIMEOUT;
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY / 10),
        move |_, _| {
            if Instant::now() >= deadline {
                Err(reg_error("FUNCTION LOAD timeout"))
            } else {
                Ok(VmState::Continue)
            }
        },
    )?;
    let ran = lua.scope(|scope| {
        let register = scope.create_function(|lua, args: MultiValue| {
            let mut def = parse_registration(lua, args)?;
            def.callback = make_wrapper(lua, &def.callback)?;
            let mut reg = registered.borrow_mut();
            if reg.contains_key(&def.name) {
                return Err(reg_error("Function already exists in the library"));
            }
            reg.insert(def.name.clone(), def);
            Ok(())
        })?;
        api_redis.raw_set("register_function", register)?;
        // Through Lua's own pcall: the error comes back as the raw value Lua raised
        // (no traceback appended).
        let r = pcall.call::<(bool, Value)>(&chunk);
        // A function that kept a reference to the API finds it refusing (Redis checks
        // that a load is running).
        let outside = lua.create_function(|_, _: MultiValue| {
            Err::<(), _>(mlua::Error::external(ReplyError(
                "ERR redis.register_function can only be called on FUNCTION LOAD command"
                    .to_string(),
            )))
        })?;
        api_redis.raw_set("register_function", outside)?;
        r
    });
    // From now on the library's functions see the sandboxed globals.
    mt.raw_set("__index", globals.clone())?;
    match ran? {
        (true, _) => {}
        (false, Value::Error(e)) => return Err(FunctionError::Register(load_error_text(&e))),
        (false, Value::String(s)) => {
            return Err(FunctionError::Register(format!(
                "ERR {}",
                s.to_string_lossy()
            )))
        }
        (false, Value::Table(t)) => {
            let text = match t.raw_get::<Value>("err")? {
                Value::String(s) => s.to_string_lossy(),
                _ => "ERR unknown error".to_string(),
            };
            return Err(FunctionError::Register(text));
        }
        (false, other) => {
            return Err(FunctionError::Register(format!(
                "ERR {}",
                other.to_string().unwrap_or_default()
            )))
        }
    }
    Ok(registered.into_inner())
}

fn globals_raw(lua: &Lua, name: &str) -> mlua::Result<Value> {
    lua.globals().raw_get(name)
}

/// The arguments of `redis.register_function`: `(name, callback)` or a table with
/// `function_name`, `callback`, `flags` and `description`.
fn parse_registration(lua: &Lua, args: MultiValue) -> mlua::Result<FunctionDef> {
    let mut args = args.into_iter();
    let (first, second, third) = (args.next(), args.next(), args.next());
    if third.is_some() || first.is_none() {
        return Err(reg_error(
            "wrong number of arguments to redis.register_function",
        ));
    }
    let (name, callback, flags, description) = match (first, second) {
        (Some(Value::Table(t)), None) => named_registration(lua, &t)?,
        (Some(_), None) => {
            return Err(reg_error("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."))
        }
        (Some(name), Some(cb)) => {
            let Some(name) = to_text(lua, name)? else {
                return Err(reg_error(
                    "first argument to redis.register_function must be a string",
                ));
            };
            let Value::Function(cb) = cb else {
                return Err(reg_error(
                    "second argument to redis.register_function must be a function",
                ));
            };
            (Some(name), Some(cb), ScriptFlags::default(), None)
        }
        (None, _) => unreachable_args()?,
    };
    let Some(name) = name else {
        return Err(reg_error(
            "redis.register_function must get a function name argument",
        ));
    };
    let Some(callback) = callback else {
        return Err(reg_error(
            "redis.register_function must get a callback argument",
        ));
    };
    if !valid_name(&name) {
        return Err(reg_error("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"));
    }
    Ok(FunctionDef {
        name,
        description,
        flags,
        callback,
    })
}

fn unreachable_args<T>() -> mlua::Result<T> {
    Err(reg_error(
        "wrong number of arguments to redis.register_function",
    ))
}

type Registration = (Option<String>, Option<Function>, ScriptFlags, Option<Bytes>);

fn named_registration(lua: &Lua, t: &Table) -> mlua::Result<Registration> {
    let (mut name, mut cb, mut flags, mut desc) = (None, None, ScriptFlags::default(), None);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, v) = pair?;
        // Keys are matched ignoring case; a number key is read as its text (and so
        // is an unknown argument), as in Redis.
        let Some(key) = to_text(lua, k)? else {
            return Err(reg_error(
                "named argument key given to redis.register_function is not a string",
            ));
        };
        match key.to_ascii_lowercase().as_str() {
            "function_name" => {
                name = to_text(lua, v)?;
                if name.is_none() {
                    return Err(reg_error(
                        "function_name argument given to redis.register_function must be a string",
                    ));
                }
            }
            "callback" => match v {
                Value::Function(f) => cb = Some(f),
                _ => {
                    return Err(reg_error(
                        "callback argument given to redis.register_function must be a function",
                    ))
                }
            },
            "description" => {
                desc = to_text(lua, v)?.map(Bytes::from);
                if desc.is_none() {
                    return Err(reg_error(
                        "description argument given to redis.register_function must be a string",
                    ));
                }
            }
            "flags" => flags = parse_flags(&v)?,
            _ => {
                return Err(reg_error(
                    "unknown argument given to redis.register_function",
                ))
            }
        }
    }
    Ok((name, cb, flags, desc))
}

fn parse_flags(v: &Value) -> mlua::Result<ScriptFlags> {
    let Value::Table(t) = v else {
        return Err(reg_error(
            "flags argument to redis.register_function must be a table representing function flags",
        ));
    };
    let mut flags = ScriptFlags::default();
    for f in t.clone().sequence_values::<Value>() {
        // Flag names ignore case here (not in an EVAL shebang), as in Redis.
        let ok = match f? {
            Value::String(s) => flags.set(&s.to_string_lossy().to_ascii_lowercase()),
            _ => false,
        };
        if !ok {
            return Err(reg_error("unknown flag given"));
        }
    }
    Ok(flags)
}

/// A string or number argument as text (Lua's `tostring` rules for numbers).
fn to_text(lua: &Lua, v: Value) -> mlua::Result<Option<String>> {
    Ok(match v {
        Value::String(_) | Value::Integer(_) | Value::Number(_) => {
            lua.coerce_string(v)?.map(|s| s.to_string_lossy())
        }
        _ => None,
    })
}

/// The flags of a function in Redis's order, as FUNCTION LIST shows them.
pub fn flag_names(f: &ScriptFlags) -> Vec<&'static str> {
    let mut v = Vec::new();
    if f.no_writes {
        v.push("no-writes");
    }
    if f.allow_oom {
        v.push("allow-oom");
    }
    if f.allow_stale {
        v.push("allow-stale");
    }
    if f.no_cluster {
        v.push("no-cluster");
    }
    if f.allow_cross_slot_keys {
        v.push("allow-cross-slot-keys");
    }
    v
}

/// FCALL's reply for a name no library registered.
pub const NOT_FOUND: &str = "ERR Function not found";

/// Whether a library registered function `name` (case ignored).
pub fn has_function(store: &mut crate::server::Store, name: &[u8]) -> bool {
    registry(store).function(name).is_some()
}

/// The flags function `name` declares, if a library registered it.
pub fn function_flags(store: &mut crate::server::Store, name: &[u8]) -> Option<ScriptFlags> {
    registry(store).function(name).map(|(_, flags)| flags)
}

/// FCALL / FCALL_RO: runs function `name` with KEYS and ARGV.
pub fn fcall(
    ctx: &mut Ctx,
    out: &mut Reply,
    command: &[Bytes],
    keys: &[Bytes],
    args: &[Bytes],
    read_only: bool,
) -> Result<(), CmdError> {
    let name: &[u8] = command.get(1).map_or(&[], |n| n);
    let Some((func, mut flags)) = registry(ctx.store).function(name) else {
        return Err(CmdError::msg(NOT_FOUND));
    };
    // Refused as the function starts when it may write (`script_run`'s start checks).
    flags.ro_command = read_only;
    let label = String::from_utf8_lossy(name).into_owned();
    let busy = ctx.server.script_busy.clone();
    let reg = registry(ctx.store);
    busy.set_running_function(Some(crate::scripting::busy::RunningFunction {
        name: label.clone(),
        command: command.to_vec(),
        libraries: reg.libs.len(),
        functions: reg.index.len(),
    }));
    let r = super::script_run::run_on(
        ctx,
        out,
        super::script_run::Slot::Functions,
        &func,
        &label,
        keys,
        args,
        flags,
    );
    busy.set_running_function(None);
    r
}

/// The function the shared runner calls like a script body: it hands the callback
/// the run's KEYS and ARGV as its two arguments and takes them out of the globals
/// (functions have no KEYS/ARGV globals in Redis). Compiled against the raw
/// globals table, where the runner put them.
fn make_wrapper(lua: &Lua, func: &Function) -> mlua::Result<Function> {
    let make: Function = lua
        .load(
            "local f = ... return function() \
               local k, a = KEYS, ARGV KEYS = nil ARGV = nil return f(k, a) end",
        )
        .set_name("=tandem")
        .into_function()?;
    make.call(func.clone())
}

/// Replaces the registry with the libraries an RDB carried (startup, AOF base,
/// full sync). A library that no longer loads is logged and skipped.
pub fn install_loaded(store: &mut crate::server::Store, codes: &[Bytes]) {
    let busy = busy_of(store);
    let (functions, scripts) = parts(store, &busy);
    if let Err(e) = functions.restore(scripts, codes, RestorePolicy::Flush) {
        crate::warning!("Failed loading the function libraries of the RDB: {e}");
    }
}

/// DEBUG RELOAD's function step (as Redis 7.0 loads an RDB's libraries): each one
/// goes on top of the registry in file order, replacing a library of the same name
/// only with `replace` (MERGE). The first that fails ends the load and the
/// libraries before it stay.
pub fn load_each(
    store: &mut crate::server::Store,
    codes: &[Bytes],
    replace: bool,
) -> Result<(), FunctionError> {
    let busy = busy_of(store);
    let (functions, scripts) = parts(store, &busy);
    for code in codes {
        functions.load(scripts, code, replace)?;
    }
    Ok(())
}

/// Drops every library (DEBUG RELOAD empties the dataset, functions included).
pub fn flush(store: &mut crate::server::Store) {
    registry(store).flush();
}

/// The server's busy state: the scripting state exists from server start and holds it.
fn busy_of(store: &crate::server::Store) -> Arc<Busy> {
    store
        .scripts
        .0
        .as_ref()
        .and_then(|b| b.downcast_ref::<Scripts>())
        .map_or_else(|| Arc::new(Busy::default()), |s| s.busy.clone())
}

/// Whether `name` is a command of the table (for `redis.acl_check_cmd`).
fn is_command(name: &[u8]) -> bool {
    super::lookup(name).is_some()
}

/// The registry in the store's opaque slot (created empty on first use).
fn functions_in(slot: &mut crate::server::ScriptSlot) -> &mut Functions {
    let b = slot.0.get_or_insert_with(|| Box::new(Functions::default()));
    if !b.is::<Functions>() {
        *b = Box::new(Functions::default());
    }
    match b.downcast_mut::<Functions>() {
        Some(f) => f,
        // Checked (or replaced) just above.
        None => unreachable!("the function slot holds Functions"),
    }
}

/// The store's function registry.
pub fn registry(store: &mut crate::server::Store) -> &mut Functions {
    functions_in(&mut store.functions)
}

/// The registry and the scripting state together (loading a library needs both).
pub fn parts<'a>(
    store: &'a mut crate::server::Store,
    busy: &Arc<Busy>,
) -> (&'a mut Functions, &'a mut Scripts) {
    let crate::server::Store {
        functions, scripts, ..
    } = store;
    (
        functions_in(functions),
        crate::scripting::state_in(scripts, busy, is_command),
    )
}

/// The library codes, in name order (what the RDB, AOF base and full sync carry).
pub fn codes(store: &crate::server::Store) -> Vec<Bytes> {
    store
        .functions
        .0
        .as_ref()
        .and_then(|b| b.downcast_ref::<Functions>())
        .map_or_else(Vec::new, Functions::codes)
}

/// INFO's function figures.
pub fn memory(store: &crate::server::Store) -> MemoryInfo {
    store
        .functions
        .0
        .as_ref()
        .and_then(|b| b.downcast_ref::<Functions>())
        .map_or_else(|| Functions::default().memory(), Functions::memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_errors_match_redis() {
        let err = |c: &[u8]| parse_metadata(c).err().map(|e| e.to_string());
        assert_eq!(
            err(b"return 1").as_deref(),
            Some("ERR Missing library metadata")
        );
        assert_eq!(
            err(b"#!lua name=x").as_deref(),
            Some("ERR Invalid library metadata")
        );
        assert_eq!(
            err(b"#!lua\n").as_deref(),
            Some("ERR Library name was not given")
        );
        assert_eq!(
            err(b"#!lua name=a foo=bar\n").as_deref(),
            Some("ERR Invalid metadata value given: foo=bar")
        );
        let md = parse_metadata(b"#!lua name=lib\nreturn").unwrap();
        assert_eq!((md.engine.as_str(), md.name.as_str()), ("lua", "lib"));
        assert_eq!(md.body, b"\nreturn");
        // Quotes are read as in a config line; "#! " leaves the engine empty.
        let md = parse_metadata(b"#!lua name=\"lib\"\nreturn").unwrap();
        assert_eq!(md.name, "lib");
        let md = parse_metadata(b"#! name=lib\n").unwrap();
        assert_eq!((md.engine.as_str(), md.name.as_str()), ("", "lib"));
        assert_eq!(
            err(b"#!lua name=\"lib\n").as_deref(),
            Some("ERR Invalid library metadata")
        );
        assert_eq!(
            err(b"#!lua name=lib\0\n").as_deref(),
            Some("ERR Invalid library metadata")
        );
        assert!(valid_name("a_B9") && !valid_name("") && !valid_name("a-b"));
    }
}
