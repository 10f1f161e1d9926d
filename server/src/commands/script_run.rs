//! Command layer: how a command runs a Lua script — the checks made when a script starts,
//! the VM taken out of the store for the run, and `redis.call`/`redis.pcall` sent through
//! `exec`'s script door ([`crate::exec::script_call`]). The engine itself (VM, sandbox,
//! conversions, cache, busy state) is `crate::scripting`, a layer below: it knows nothing
//! of commands.
//!
//! What is not EVAL-specific, for Functions to reuse: [`run`] (flags, conversions, the
//! busy/kill machinery, the exec door) takes any compiled function, a label for error
//! messages, and the script's flags.

use super::{ClientState, CmdError, Ctx};
use crate::exec::ScriptRules;
use crate::resp::Reply;
use crate::scripting::{busy, convert, vm, Busy, ScriptError, ScriptFlags, Scripts};
use bytes::Bytes;
use mlua::{Function, MultiValue, Value};
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

impl From<ScriptError> for CmdError {
    fn from(e: ScriptError) -> Self {
        CmdError::msg(e.to_string())
    }
}

/// Whether `name` is a command of the table (for `redis.acl_check_cmd`).
fn is_command(name: &[u8]) -> bool {
    super::lookup(name).is_some()
}

/// The store's scripting state.
pub fn scripts<'a>(ctx: &'a mut Ctx<'_>) -> &'a mut Scripts {
    crate::scripting::state(ctx.store, &ctx.server.script_busy, is_command)
}

/// The scripting state at server start (so INFO shows the VM from the beginning).
pub fn init(server: &std::sync::Arc<crate::server::Server>) {
    crate::scripting::state(&mut server.store.lock(), &server.script_busy, is_command);
}

/// EVAL/EVALSHA (and their _RO forms): finds or compiles the script, then [`run`]s it.
pub fn eval(
    ctx: &mut Ctx,
    out: &mut Reply,
    script: EvalTarget<'_>,
    keys: &[Bytes],
    args: &[Bytes],
    read_only: bool,
) -> Result<(), CmdError> {
    let scripts = scripts(ctx);
    let (sha, (func, mut flags)): (std::borrow::Cow<str>, _) = match script {
        EvalTarget::Source(src) => {
            let sha = scripts.load(src)?;
            let f = scripts.cached(sha.as_bytes())?;
            (sha.into(), f)
        }
        EvalTarget::Sha(sha) => {
            let f = scripts.cached(sha)?;
            // Found, so ASCII hex: lowercase it only if it is not already.
            let label = match std::str::from_utf8(sha) {
                Ok(s) if !s.bytes().any(|c| c.is_ascii_uppercase()) => s.into(),
                _ => String::from_utf8_lossy(sha).to_ascii_lowercase().into(),
            };
            (label, f)
        }
    };
    if read_only {
        flags.no_writes = true;
    }
    run(ctx, out, &func, &sha, keys, args, flags)
}

/// What EVAL runs: a source text or the sha1 of a cached one.
#[derive(Debug, Clone, Copy)]
pub enum EvalTarget<'a> {
    Source(&'a [u8]),
    Sha(&'a [u8]),
}

/// The checks made once when a script with a shebang starts (a script without one
/// meets them per command instead, in the exec door).
fn start_refusal(ctx: &mut Ctx, flags: ScriptFlags) -> Option<String> {
    if flags.compat || ctx.client.is_master {
        return None;
    }
    let may_write = !flags.no_writes;
    let store = &*ctx.store;
    if may_write {
        if store.is_replica && store.hot.replica_read_only {
            return Some("READONLY You can't write against a read only replica.".into());
        }
        if let Some(e) = crate::persist::write_refusal(ctx.server, store) {
            return Some(e);
        }
    }
    if !flags.allow_stale
        && store.repl.master.is_some()
        && !store.hot.replica_serve_stale_data
        && !store.repl.link_connected()
    {
        return Some(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                .into(),
        );
    }
    None
}

/// Whether the server is over `maxmemory` as a script starts (Redis evicts first).
fn oom_at_start(ctx: &mut Ctx) -> bool {
    if ctx.client.is_master || ctx.store.hot.maxmemory == 0 {
        return false;
    }
    crate::evict::ensure_memory(ctx.server, ctx.store).is_err()
}

/// Runs a compiled script function with KEYS and ARGV, writing its result (or its
/// error, in Redis's format with `label` as the script's name) to `out`. The
/// commands it calls go through [`crate::exec::script_call`]; the script itself is
/// not propagated, the writes of its commands are.
pub fn run(
    ctx: &mut Ctx,
    out: &mut Reply,
    func: &Function,
    label: &str,
    keys: &[Bytes],
    args: &[Bytes],
    flags: ScriptFlags,
) -> Result<(), CmdError> {
    run_on(ctx, out, Slot::Eval, func, label, keys, args, flags)
}

/// Which VM a run uses: EVAL's, or the function libraries' own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Eval,
    Functions,
}

/// The VM of `slot` in the store.
fn vm_slot<'a>(ctx: &'a mut Ctx<'_>, slot: Slot) -> &'a mut Option<vm::Vm> {
    match slot {
        Slot::Eval => &mut scripts(ctx).vm,
        Slot::Functions => &mut super::function_lib::registry(ctx.store).vm,
    }
}

/// [`run`] on the VM in `slot` (FCALL runs library functions in their own state).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_on(
    ctx: &mut Ctx,
    out: &mut Reply,
    slot: Slot,
    func: &Function,
    label: &str,
    keys: &[Bytes],
    args: &[Bytes],
    flags: ScriptFlags,
) -> Result<(), CmdError> {
    ctx.no_propagate = true;
    if let Some(e) = start_refusal(ctx, flags) {
        return Err(CmdError::msg(e));
    }
    let oom = !flags.no_writes && !flags.allow_oom && oom_at_start(ctx);
    if oom && !flags.compat {
        return Err(CmdError::msg(crate::evict::Oom.to_string()));
    }
    let Some(mut vm) = vm_slot(ctx, slot).take() else {
        // Lost to a panic in an earlier run (or never created): start over, with a
        // cache that no longer refers to the old state.
        match slot {
            Slot::Eval => scripts(ctx).flush(),
            Slot::Functions => super::function_lib::registry(ctx.store).flush(),
        }
        return Err(ScriptError::NoVm.into());
    };
    let busy = scripts(ctx).busy.clone();
    busy.set_function(slot == Slot::Functions);
    let rules = ScriptRules {
        read_only: flags.no_writes,
        oom_at_start: oom,
        wrote: false,
    };
    busy.set_replica(ctx.store.is_replica);
    let running = busy::Running::start(&busy, ctx.store.hot.busy_reply_threshold);
    let result = match redis_call(&mut vm) {
        Ok((call, lent)) => run_in_vm(ctx, &vm, (&call, &lent), &busy, func, keys, args, rules),
        Err(e) => Err(RunError::Lua(e)),
    };
    drop(running);
    // What the commands served meanwhile left for the store, before anyone else runs.
    for job in busy.take_deferred() {
        job(ctx.store);
    }
    // Lua 5.1 has no emergency collection: garbage a script left (say, after it
    // failed for lack of memory) would make the next ones fail too.
    if vm.lua.used_memory() > vm::MEMORY_LIMIT / 4 {
        let _ = vm.lua.gc_collect();
    }
    *vm_slot(ctx, slot) = Some(vm);
    let result = result.and_then(|(value, resp3)| {
        // Converted with the VM back in place (the conversion runs Lua code).
        let mark = out.len();
        let vm = vm_slot(ctx, slot).as_ref().ok_or(RunError::NoVm)?;
        convert::lua_to_reply(&vm.flatten, value, resp3, out).map_err(|e| {
            out.buf.truncate(mark);
            RunError::Lua(e)
        })
    });
    match result {
        Ok(()) => Ok(()),
        Err(RunError::NoVm) => Err(ScriptError::NoVm.into()),
        Err(RunError::Script(err)) => Err(CmdError::msg(script_error(&err, label))),
        Err(RunError::Lua(e)) => Err(CmdError::msg(format!(
            "ERR Error running script {label}: {}",
            vm::error_text(&e)
        ))),
    }
}

enum RunError {
    /// The script failed: the error table (or value) its handler produced.
    Script(Value),
    Lua(mlua::Error),
    NoVm,
}

impl From<mlua::Error> for RunError {
    fn from(e: mlua::Error) -> Self {
        RunError::Lua(e)
    }
}

/// Redis's text for a failed script: `<err> script: <label>, on <source>:<line>.`
fn script_error(err: &Value, label: &str) -> String {
    let Value::Table(t) = err else {
        let text = match err {
            Value::String(s) => s.to_string_lossy(),
            _ => "unknown error".to_string(),
        };
        return format!("ERR {text}");
    };
    let msg = match t.raw_get::<Value>("err") {
        Ok(Value::String(s)) => s.to_string_lossy(),
        _ => "ERR unknown error".to_string(),
    };
    let source = t.raw_get::<Value>("source").ok();
    let line = t.raw_get::<Value>("line").ok();
    match (source, line.as_ref().and_then(as_number)) {
        (Some(Value::String(s)), Some(l)) => {
            format!(
                "{msg} script: {label}, on {}:{}.",
                s.to_string_lossy(),
                l as i64
            )
        }
        _ => msg,
    }
}

/// What the per-run dispatcher borrows: the store and server through the handler's
/// context, and the script's own client (its db follows SELECT inside the script).
struct RunEnv<'a, 'b> {
    ctx: &'a mut Ctx<'b>,
    client: ClientState,
    rules: ScriptRules,
    busy: &'a Busy,
    reply: Reply,
    /// The arguments of the current call, in one buffer (one allocation per call).
    arg_buf: bytes::BytesMut,
}

/// The state's `redis.call` (made on first use) and the slot each run lends its
/// context through.
fn redis_call(vm: &mut vm::Vm) -> mlua::Result<(Function, Arc<AtomicUsize>)> {
    if let Some((f, slot)) = &vm.call {
        return Ok((f.clone(), slot.clone()));
    }
    let slot = Arc::new(AtomicUsize::new(0));
    let f = make_redis_call(&vm.lua, vm.flags.clone(), slot.clone())?;
    vm.call = Some((f.clone(), slot.clone()));
    Ok((f, slot))
}

/// `redis.call`, made once per Lua state. Each run lends it the run's context (store,
/// server, script client) by putting the address of its `RefCell<RunEnv>` in `slot`
/// for the duration of the run, instead of `mlua::Lua::scope`, which builds and tears
/// down a function per run (most of the per-EVALSHA cost of the binding).
#[allow(unsafe_code)]
fn make_redis_call(
    lua: &mlua::Lua,
    flags: Arc<vm::RunFlags>,
    slot: Arc<AtomicUsize>,
) -> mlua::Result<Function> {
    lua.create_function(move |lua, args: MultiValue| {
        let addr = slot.load(Ordering::Acquire);
        if addr == 0 {
            return Err(mlua::Error::runtime(
                "redis.call can only be called while a script runs",
            ));
        }
        // SAFETY: a non-zero `addr` is the address of the `RefCell<RunEnv>` that
        // `run_in_vm` holds on its stack: it stores it before calling the script and a
        // `Lent` guard resets it to 0 when that call returns or unwinds, before the
        // value is moved or dropped. Lua runs on the thread that runs the script, so
        // while `addr` is set the value is alive and not moved; only shared
        // references are made (the RefCell guards against re-entry), and none outlives
        // this call.
        let env = unsafe { &*(addr as *const RefCell<RunEnv<'_, '_>>) };
        dispatch(lua, env, &flags, args)?.map_err(|e| mlua::Error::external(vm::ReplyError(e)))
    })
}

/// Resets the lending slot when a run ends, however it ends.
struct Lent<'a>(&'a AtomicUsize);

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

#[allow(clippy::too_many_arguments)]
fn run_in_vm(
    ctx: &mut Ctx,
    vm: &vm::Vm,
    (call, slot): (&Function, &AtomicUsize),
    busy: &Busy,
    func: &Function,
    keys: &[Bytes],
    args: &[Bytes],
    rules: ScriptRules,
) -> Result<(Value, bool), RunError> {
    let lua = &vm.lua;
    vm.flags.reset();
    // The script's client and reply buffer are kept from run to run.
    let (mut client, reply) = scripts(ctx)
        .spare
        .take()
        .and_then(|b| b.downcast::<(ClientState, Reply)>().ok())
        .map_or_else(|| (ClientState::new(0), Reply::new(false)), |b| *b);
    client.id = ctx.client.id;
    client.db = ctx.client.db;
    client.authenticated = true;
    client.is_master = ctx.client.is_master;
    client.user = ctx.client.user.clone();
    let env = RefCell::new(RunEnv {
        ctx,
        client,
        rules,
        busy,
        reply,
        arg_buf: bytes::BytesMut::new(),
    });
    let flags = &*vm.flags;
    // UTF-8 arguments are pushed straight onto the Lua stack; others become strings
    // first (which costs a protected call and a reference each).
    let strings = keys
        .iter()
        .chain(args)
        .map(|a| match std::str::from_utf8(a) {
            Ok(s) => Ok(mlua::Either::Left(s)),
            Err(_) => lua.create_string(a).map(mlua::Either::Right),
        })
        .collect::<mlua::Result<Vec<_>>>()?;
    slot.store(&env as *const RefCell<RunEnv> as usize, Ordering::Release);
    let lent = Lent(slot);
    let outcome: mlua::Result<MultiValue> = vm.runner.call((
        func,
        &vm.handler,
        call,
        keys.len(),
        mlua::Variadic::from(strings),
    ));
    drop(lent);
    let resp3 = flags.resp3.load(Ordering::Relaxed);
    let env = env.into_inner();
    scripts(env.ctx).spare = Some(Box::new((env.client, env.reply)));
    let mut values = outcome?.into_iter();
    match values.next() {
        Some(Value::Boolean(true)) => Ok((values.next().unwrap_or(Value::Nil), resp3)),
        _ => Err(RunError::Script(values.next().unwrap_or(Value::Nil))),
    }
}

/// One `redis.call`: the command's reply as a Lua value, or the error text it
/// raises (redis.pcall, in Lua, turns that into an `{err=...}` table).
fn dispatch(
    lua: &mlua::Lua,
    env: &RefCell<RunEnv>,
    flags: &vm::RunFlags,
    args: MultiValue,
) -> mlua::Result<Result<Value, String>> {
    use std::sync::atomic::Ordering::Relaxed;
    let Ok(mut env) = env.try_borrow_mut() else {
        return Err(mlua::Error::runtime("redis.call re-entered"));
    };
    let RunEnv {
        ctx,
        client,
        rules,
        busy,
        reply,
        arg_buf,
    } = &mut *env;
    // The arguments' bytes go to one buffer, split into the argv afterwards.
    let mut lens: smallvec_lens::Lens = Default::default();
    arg_buf.clear();
    for v in args.iter() {
        match v {
            Value::String(s) => {
                let b = s.as_bytes();
                arg_buf.extend_from_slice(&b);
                lens.push(b.len());
            }
            Value::Number(_) | Value::Integer(_) => match lua.coerce_string(v.clone())? {
                Some(s) => {
                    let b = s.as_bytes();
                    arg_buf.extend_from_slice(&b);
                    lens.push(b.len());
                }
                None => return Ok(Err(ARGS_ERR.to_string())),
            },
            _ => return Ok(Err(ARGS_ERR.to_string())),
        }
    }
    drop(args);
    if lens.is_empty() {
        return Ok(Err(
            "ERR Please specify at least one argument for this redis lib call".to_string(),
        ));
    }
    let mut all = arg_buf.split().freeze();
    let argv: Vec<Bytes> = lens.iter().map(|&n| all.split_to(n)).collect();
    let resp3 = flags.resp3.load(Relaxed);
    let repl = flags.repl.load(Relaxed);
    reply.buf.clear();
    reply.resp3 = resp3;
    client.resp3 = resp3;
    let before = ctx.store.propagated.len();
    let r = crate::exec::script_call(ctx.server, ctx.store, client, rules, &argv, reply);
    if rules.wrote {
        busy.mark_wrote();
    }
    propagate_to(ctx.store, before, repl);
    if let Err(refusal) = r {
        return Ok(Err(refusal.0));
    }
    if let Some(text) = reply.buf.strip_prefix(b"-") {
        let text = text.strip_suffix(b"\r\n").unwrap_or(text);
        return Ok(Err(String::from_utf8_lossy(text).into_owned()));
    }
    Ok(Ok(convert::reply_to_lua(lua, &reply.buf)?.0))
}

/// Where the ops a call just added (from index `before`) go, after the script's
/// `redis.set_repl` (REPL_NONE = 0, REPL_AOF = 1, REPL_REPLICA = 2, REPL_ALL = 3).
fn propagate_to(store: &mut crate::server::Store, before: usize, repl: u8) {
    use crate::server::PropagateTarget;
    let only = match repl {
        // REPL_NONE: the writes stay local.
        0 => return store.propagated.truncate(before),
        1 => PropagateTarget::Aof,
        2 => PropagateTarget::Replicas,
        _ => return,
    };
    let added = before..store.propagated.len();
    store.propagate_only.extend(added.map(|i| (i, only)));
}

/// Argument lengths of one call, without a heap allocation for the usual few.
mod smallvec_lens {
    #[derive(Default)]
    pub struct Lens {
        inline: [usize; 8],
        len: usize,
        more: Vec<usize>,
    }

    impl Lens {
        pub fn push(&mut self, n: usize) {
            if self.len < self.inline.len() && self.more.is_empty() {
                self.inline[self.len] = n;
                self.len += 1;
            } else {
                if self.more.is_empty() {
                    self.more.extend_from_slice(&self.inline[..self.len]);
                }
                self.more.push(n);
            }
        }

        pub fn is_empty(&self) -> bool {
            self.len == 0 && self.more.is_empty()
        }

        pub fn iter(&self) -> std::slice::Iter<'_, usize> {
            if self.more.is_empty() {
                self.inline[..self.len].iter()
            } else {
                self.more.iter()
            }
        }
    }
}

/// A Lua number, whichever way mlua surfaced it.
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

const ARGS_ERR: &str = "ERR Lua redis lib command arguments must be strings or integers";
