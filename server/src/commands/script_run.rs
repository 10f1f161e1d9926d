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
use crate::scripting::{busy, convert, raw, vm, Busy, ScriptError, ScriptFlags, Scripts};
use bytes::Bytes;
use mlua::Function;
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
    let (func, mut flags, sha) = match script {
        EvalTarget::Source(src) => {
            let sha = scripts.load(src)?;
            let (func, flags, _) = scripts.cached(sha.as_bytes())?;
            (func, flags, std::borrow::Cow::Owned(sha))
        }
        // The script's name in errors is its sha1 in lowercase, as the cache keys it.
        EvalTarget::Sha(sha) => scripts.cached(sha)?,
    };
    if read_only {
        // A script without a shebang may still run: its writes are refused one by
        // one. One that declares it may write is refused as it starts.
        flags.ro_command = true;
        if flags.compat {
            flags.no_writes = true;
        }
    }
    run_callee(ctx, out, Slot::Eval, func, &sha, keys, args, flags)
}

/// What EVAL runs: a source text or the sha1 of a cached one.
#[derive(Debug, Clone, Copy)]
pub enum EvalTarget<'a> {
    Source(&'a [u8]),
    Sha(&'a [u8]),
}

/// The checks made once when a script with a shebang starts (a script without one
/// meets them per command instead, in the exec door).
#[inline]
fn start_refusal(ctx: &mut Ctx, flags: ScriptFlags) -> Option<String> {
    if flags.compat || ctx.client.is_master {
        return None;
    }
    flagged_start_refusal(ctx, flags)
}

/// [`start_refusal`] for a script with a shebang (out of line: most scripts have none).
#[inline(never)]
fn flagged_start_refusal(ctx: &mut Ctx, flags: ScriptFlags) -> Option<String> {
    let may_write = !flags.no_writes;
    let store = &*ctx.store;
    if may_write {
        // Redis's order: a read-only replica, a failed save, too few good replicas, a
        // read-only command.
        if store.is_replica && store.hot.replica_read_only {
            return Some("READONLY You can't write against a read only replica.".into());
        }
        if let Some(e) = crate::persist::write_refusal(ctx.server, store) {
            return Some(e);
        }
        let cfg = &store.hot;
        if store.repl.master.is_none()
            && cfg.min_replicas_to_write > 0
            && cfg.min_replicas_max_lag > 0
            && (store.repl.good_replicas_now(cfg.min_replicas_max_lag) as u64)
                < cfg.min_replicas_to_write
        {
            return Some("NOREPLICAS Not enough good replicas to write.".into());
        }
        if flags.ro_command {
            return Some("ERR Can not execute a script with write flag using *_ro command.".into());
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

/// [`run`] of a function held in the VM of `slot` (FCALL runs library functions in
/// their own state).
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
    let func = raw::Callee::Function(func);
    run_callee(ctx, out, slot, func, label, keys, args, flags)
}

/// Which VM a run uses: EVAL's, or the function libraries' own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Eval,
    Functions,
}

/// The VM of `slot` in the store.
fn vm_slot<'a>(ctx: &'a mut Ctx<'_>, slot: Slot) -> &'a mut Option<Box<vm::Vm>> {
    match slot {
        Slot::Eval => &mut scripts(ctx).vm,
        Slot::Functions => &mut super::function_lib::registry(ctx.store).vm,
    }
}

/// The VM of `slot` and the runs' scratch ([`Spare`]), both taken out of the store
/// for a run: for EVAL with one look-up of the scripting state (each look-up is a
/// downcast, two calls through `Any`'s vtable, and a run made four).
fn take_parts(ctx: &mut Ctx<'_>, slot: Slot) -> (Option<Box<vm::Vm>>, Box<Spare>) {
    let (vm, spare) = match slot {
        Slot::Eval => {
            let s = scripts(ctx);
            (s.vm.take(), s.spare.take())
        }
        Slot::Functions => {
            let vm = super::function_lib::registry(ctx.store).vm.take();
            (vm, scripts(ctx).spare.take())
        }
    };
    let spare = spare
        .and_then(|b| b.downcast::<Spare>().ok())
        .unwrap_or_else(Spare::new);
    (vm, spare)
}

/// Puts back what [`take_parts`] took.
fn put_parts(ctx: &mut Ctx<'_>, slot: Slot, vm: Option<Box<vm::Vm>>, spare: Box<Spare>) {
    match slot {
        Slot::Eval => {
            let s = scripts(ctx);
            if vm.is_some() {
                s.vm = vm;
            }
            s.spare = Some(spare);
        }
        Slot::Functions => {
            if vm.is_some() {
                super::function_lib::registry(ctx.store).vm = vm;
            }
            scripts(ctx).spare = Some(spare);
        }
    }
}

/// [`run_on`] of a function or of a cached script's registry reference.
#[allow(clippy::too_many_arguments)]
fn run_callee(
    ctx: &mut Ctx,
    out: &mut Reply,
    slot: Slot,
    func: raw::Callee<'_>,
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
    let mark = out.len();
    let (vm, mut spare) = take_parts(ctx, slot);
    let Some(mut vm) = vm else {
        put_parts(ctx, slot, None, spare);
        return Err(vm_lost(ctx, slot));
    };
    // The server's (the scripting state holds the same): borrowed, not a reference
    // count taken and dropped per run.
    let server = ctx.server;
    let busy: &Busy = &server.script_busy;
    busy.set_function(slot == Slot::Functions);
    let rules = ScriptRules {
        read_only: flags.no_writes,
        oom_at_start: oom,
        wrote: false,
        bgsave_ok: false,
    };
    busy.set_replica(ctx.store.is_replica);
    let running = busy::Running::start(busy, ctx.store.hot.busy_reply_threshold);
    let run = raw::Run {
        func,
        keys,
        args,
        fresh_tables: slot == Slot::Functions,
        label,
    };
    let result = match redis_call(&mut vm) {
        Ok(()) => match &vm.call {
            Some((_, lent)) => run_in_vm(ctx, &vm, &mut spare, lent, busy, &run, rules, out),
            // `redis_call` just made sure it is there.
            None => Err(ScriptFailed(ScriptError::NoVm.to_string())),
        },
        Err(e) => Err(e),
    };
    // Read before the state goes back: the run reset it (`run_in_vm`).
    let counted = result.is_ok() && vm.flags.error_counted.load(Ordering::Relaxed);
    drop(running);
    // What the commands served meanwhile left for the store, before anyone else runs.
    for job in busy.take_deferred() {
        job(ctx.store);
    }
    // Lua 5.1 has no emergency collection: garbage a script left (say, after it
    // failed for lack of memory) would make the next ones fail too.
    if raw::used_memory(&vm.refs) > vm::MEMORY_LIMIT / 4 {
        let _ = vm.lua.gc_collect();
    }
    put_parts(ctx, slot, Some(vm), spare);
    let result = result.and_then(|ran| match ran {
        raw::Ran::Written => Ok(()),
        raw::Ran::Failed(text) => Err(ScriptFailed(text)),
        raw::Ran::Table(value) => table_result(ctx, slot, value, label, out),
    });
    // An error already counted when the command the script called answered it is
    // not counted again as the script's reply (EVAL still fails); any other error
    // reply (a refusal of the script, a Lua error, an `{err=...}` it returned) is
    // counted once, here or as the handler's error.
    match result {
        Ok(()) => {
            if !counted && out.buf.get(mark) == Some(&b'-') {
                server.stats.error_reply_encoded(&out.buf[mark..]);
            }
            Ok(())
        }
        Err(ScriptFailed(text)) if counted => {
            out.buf.truncate(mark);
            out.error(&text);
            Ok(())
        }
        Err(ScriptFailed(text)) => Err(CmdError::msg(text)),
    }
}

/// A state lost to a panic in an earlier run (or never created): starts over, with a
/// cache that no longer refers to the old state.
#[cold]
#[inline(never)]
fn vm_lost(ctx: &mut Ctx, slot: Slot) -> CmdError {
    match slot {
        Slot::Eval => scripts(ctx).flush(),
        Slot::Functions => super::function_lib::registry(ctx.store).flush(),
    }
    ScriptError::NoVm.into()
}

/// A result the direct conversion left as a table, converted with the VM back in
/// place (the conversion runs Lua code). Out of line: a script's common results
/// (a status, a number, a string) never get here.
#[inline(never)]
fn table_result(
    ctx: &mut Ctx,
    slot: Slot,
    value: mlua::Value,
    label: &str,
    out: &mut Reply,
) -> Result<(), ScriptFailed> {
    let mark = out.len();
    let Some(vm) = vm_slot(ctx, slot).as_ref() else {
        return Err(ScriptFailed(ScriptError::NoVm.to_string()));
    };
    let resp3 = vm.flags.resp3.load(Ordering::Relaxed);
    let mut errors = convert::NestedErrors::default();
    convert::lua_to_reply(&vm.flatten, value, resp3, out, &mut errors).map_err(|e| {
        out.buf.truncate(mark);
        lua_failure(&e, label)
    })?;
    // Errors inside an array: counted in INFO errorstats here unless a command of the
    // script already counted them; the script's command fails once for those counted
    // now and once for each counted before (as Redis 7.0 counts them).
    for &at in &errors.uncounted {
        ctx.server.stats.error_reply_encoded(&out.buf[at..]);
    }
    ctx.nested_failures = u32::from(!errors.uncounted.is_empty()) + errors.counted;
    Ok(())
}

/// A run's final error text.
struct ScriptFailed(String);

/// The text of an error of the binding itself (not of the script).
fn lua_failure(e: &mlua::Error, label: &str) -> ScriptFailed {
    ScriptFailed(format!(
        "ERR Error running script {label}: {}",
        vm::error_text(e)
    ))
}

/// What the per-run `redis.call` borrows: the store and server through the handler's
/// context, and the script's own client (its db follows SELECT inside the script).
struct RunEnv<'a, 'b> {
    ctx: &'a mut Ctx<'b>,
    spare: &'a mut Spare,
    rules: ScriptRules,
    busy: &'a Busy,
    flags: &'a vm::RunFlags,
    /// The error the current call raises.
    err_text: String,
}

/// Makes and installs the state's `redis.call` on first use (then `vm.call` holds it
/// and the slot each run lends its context through; a run borrows the slot there, no
/// reference count taken).
fn redis_call(vm: &mut vm::Vm) -> Result<(), ScriptFailed> {
    if vm.call.is_some() {
        return Ok(());
    }
    let failed = |e: mlua::Error| ScriptFailed(format!("ERR {}", vm::error_text(&e)));
    let slot = Arc::new(AtomicUsize::new(0));
    let addr = Arc::as_ptr(&slot) as *mut std::ffi::c_void;
    // SAFETY: the closure pushes a light userdata and a C closure over it (the stack
    // has room for 3 values in exec_raw's protected call); nothing in its frame has
    // a destructor. The address stays valid as long as the state: the Vm keeps the
    // Arc beside the state in `vm.call`.
    #[allow(unsafe_code)]
    let f: Function = unsafe {
        vm.lua.exec_raw((), |l| {
            mlua::ffi::lua_pushlightuserdata(l, addr);
            mlua::ffi::lua_pushcclosure(l, redis_call_c, 1);
        })
    }
    .map_err(failed)?;
    // SAFETY: as above; `redis.acl_check_cmd` reads the same slot.
    #[allow(unsafe_code)]
    let acl_check: Function = unsafe {
        vm.lua.exec_raw((), |l| {
            mlua::ffi::lua_pushlightuserdata(l, addr);
            mlua::ffi::lua_pushcclosure(l, acl_check_c, 1);
        })
    }
    .map_err(failed)?;
    vm.install.call::<()>((&f, acl_check)).map_err(failed)?;
    vm.call = Some((f, slot));
    Ok(())
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
    spare: &mut Spare,
    slot: &AtomicUsize,
    busy: &Busy,
    run: &raw::Run<'_>,
    rules: ScriptRules,
    out: &mut Reply,
) -> Result<raw::Ran, ScriptFailed> {
    vm.flags.reset();
    // The script's client and buffers are kept from run to run, in their box (moving
    // them out and back cost an allocation and two copies of the client per run).
    let client = &mut spare.client;
    client.id = ctx.client.id;
    client.db = ctx.client.db;
    client.authenticated = true;
    client.is_master = ctx.client.is_master;
    client.frozen_time_ms = ctx.now_ms;
    client.user.clone_from(&ctx.client.user);
    let env = RefCell::new(RunEnv {
        ctx: &mut *ctx,
        spare: &mut *spare,
        rules,
        busy,
        flags: &vm.flags,
        err_text: String::new(),
    });
    slot.store(&env as *const RefCell<RunEnv> as usize, Ordering::Release);
    let lent = Lent(slot);
    let ran = raw::run(&vm.lua, &vm.refs, &vm.flags, run, out);
    drop(lent);
    drop(env);
    spare.argv.clear();
    // As Redis after each run: a MULTI the script called (DEBUG
    // SET-DISABLE-DENY-SCRIPTS) does not outlive it.
    spare.client.multi = None;
    spare.client.multi_error = false;
    ran.map_err(|e| lua_failure(&e, run.label))
}

/// The script client, reply buffer, argv and argument arena kept between runs.
struct Spare {
    client: ClientState,
    reply: Reply,
    argv: Vec<Bytes>,
    /// The arena of the calls' small arguments (see [`ARG_CHUNK`]).
    arg_buf: bytes::BytesMut,
    /// The small arguments of the previous calls, by position (see [`reuse_arg`]).
    last: Vec<Bytes>,
}

impl Spare {
    /// The first run's (later runs reuse it).
    #[cold]
    #[inline(never)]
    fn new() -> Box<Spare> {
        let mut client = ClientState::new(0);
        client.lua = true;
        Box::new(Spare {
            client,
            reply: Reply::new(false),
            argv: Vec::new(),
            arg_buf: bytes::BytesMut::with_capacity(ARG_CHUNK),
            last: Vec::new(),
        })
    }
}

/// The smallest block of the argument arena. The arguments of `redis.call` up to
/// `resp::SLICE_MAX` bytes are slices of one shared block, as a connection's
/// arguments are slices of its read buffer (and, as there, whatever keeps one beyond
/// its command copies it: `util::detach`); longer ones get their own copy. A block is
/// filled by many calls and reused in place once no argument refers to it: most calls
/// allocate nothing for their arguments.
const ARG_CHUNK: usize = 4096;

/// A small argument's place in `argv` until the arena is split: a static slice of
/// this block with the argument's length (no allocation, no reference count), told
/// from the other arguments (own copies, reused ones) by its address.
static PENDING: [u8; crate::resp::SLICE_MAX] = [0; crate::resp::SLICE_MAX];

/// The placeholder of a small argument of `n` bytes (`n <= SLICE_MAX`).
fn pending(n: usize) -> Bytes {
    Bytes::from_static(PENDING.get(..n).unwrap_or(&[]))
}

fn is_pending(arg: &Bytes) -> bool {
    std::ptr::eq(arg.as_ptr(), PENDING.as_ptr())
}

/// How many leading argument positions [`Spare::last`] remembers.
const LAST_ARGS: usize = 8;

/// What a `redis.call` came to, before anything is pushed (plain data: the pushes
/// may raise a Lua error, which must not skip destructors).
#[derive(Clone, Copy)]
enum CallOutcome {
    /// The reply is in `RunEnv::reply`.
    Reply,
    /// The error text is in `RunEnv::err_text`.
    Error,
    /// As `Error`, for an error already counted in INFO errorstats (the command's
    /// reply, or the script door's refusal): raised marked so.
    CountedError,
    Reentered,
    Panicked,
    /// `redis.acl_check_cmd`'s answer.
    Flag(bool),
}

/// What the lending slot holds (upvalue 1 of the `redis` library's C functions): the
/// address of the running script's `RefCell<RunEnv>`, or 0 between runs.
#[allow(unsafe_code)]
#[inline(always)]
unsafe fn lent_addr(l: *mut mlua::ffi::lua_State) -> usize {
    use mlua::ffi;
    let slot = ffi::lua_touserdata(l, ffi::lua_upvalueindex(1)) as *const AtomicUsize;
    // SAFETY: upvalue 1 is the address of the Arc'd slot the Vm keeps alive as long
    // as this state (see `redis_call`).
    if slot.is_null() {
        0
    } else {
        (*slot).load(Ordering::Acquire)
    }
}

/// `redis.call` as a Lua C function: its arguments are read straight off the stack
/// into the dispatch argv, the command's reply is pushed straight onto it, and an
/// error is raised as Redis raises it, an `{err=...}` table. Upvalue 1 is the
/// address of the state's lending slot (see [`redis_call`]).
#[allow(unsafe_code)]
unsafe extern "C-unwind" fn redis_call_c(l: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    let addr = lent_addr(l);
    if addr == 0 {
        raise_text(l, b"redis.call can only be called while a script runs");
    }
    // SAFETY: a non-zero `addr` is the address of the `RefCell<RunEnv>` that
    // `run_in_vm` holds on its stack: it stores it before calling the script and a
    // `Lent` guard resets it to 0 when that call returns, before the value is moved
    // or dropped. Lua runs on the thread that runs the script, so while `addr` is set
    // the value is alive and not moved; only shared references are made here (the
    // RefCell guards against re-entry).
    let env = &*(addr as *const RefCell<RunEnv<'_, '_>>);
    let outcome =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call_phase(l, env))) {
            Ok(o) => o,
            Err(_) => CallOutcome::Panicked,
        };
    finish_lib_call(l, env, outcome)
}

/// Pushes what a `redis` library call written in Rust came to, or raises its error.
#[allow(unsafe_code)]
unsafe fn finish_lib_call(
    l: *mut mlua::ffi::lua_State,
    env: &RefCell<RunEnv<'_, '_>>,
    outcome: CallOutcome,
) -> std::ffi::c_int {
    // From here only plain values and references live in this frame: pushing may
    // raise a Lua error (longjmp). The RefCell is not borrowed any more; RunEnv is
    // only read, through a shared reference that ends before this function returns.
    let env = &*env.as_ptr();
    match outcome {
        CallOutcome::Reply => {
            if raw::push_reply(l, &env.spare.reply.buf) {
                1
            } else {
                raise_error(l, b"ERR unexpected reply from command")
            }
        }
        CallOutcome::Error => raise_error(l, env.err_text.as_bytes()),
        CallOutcome::CountedError => raise_counted_error(l, env.err_text.as_bytes()),
        CallOutcome::Reentered => raise_text(l, b"redis.call re-entered"),
        CallOutcome::Panicked => raise_error(l, b"ERR internal error in redis.call"),
        CallOutcome::Flag(b) => {
            mlua::ffi::lua_checkstack(l, 1);
            mlua::ffi::lua_pushboolean(l, std::ffi::c_int::from(b));
            1
        }
    }
}

/// `redis.acl_check_cmd` as a Lua C function (upvalue 1 as for [`redis_call_c`]):
/// whether the script's caller may run the command its arguments make, keys and
/// channels included (nothing is logged, nothing runs). An unknown command is an
/// error, as in Redis 7.0.
#[allow(unsafe_code)]
unsafe extern "C-unwind" fn acl_check_c(l: *mut mlua::ffi::lua_State) -> std::ffi::c_int {
    let addr = lent_addr(l);
    if addr == 0 {
        raise_error(
            l,
            b"ERR redis.acl_check_cmd can only be called inside a script invocation",
        );
    }
    // SAFETY: as in `redis_call_c`.
    let env = &*(addr as *const RefCell<RunEnv<'_, '_>>);
    let outcome =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| acl_check_phase(l, env))) {
            Ok(o) => o,
            Err(_) => CallOutcome::Panicked,
        };
    finish_lib_call(l, env, outcome)
}

/// The Rust part of `redis.acl_check_cmd` (no Lua call here raises).
#[allow(unsafe_code)]
unsafe fn acl_check_phase(l: *mut mlua::ffi::lua_State, env: &RefCell<RunEnv>) -> CallOutcome {
    let Ok(mut env) = env.try_borrow_mut() else {
        return CallOutcome::Reentered;
    };
    let RunEnv {
        ctx,
        spare,
        err_text,
        ..
    } = &mut *env;
    let Spare {
        argv,
        arg_buf,
        last,
        ..
    } = &mut **spare;
    if let Err(text) = read_args(l, arg_buf, argv, last) {
        return failed(err_text, text);
    }
    let cmd =
        super::lookup(&argv[0]).filter(|cmd| crate::exec::unknown_sub_refusal(cmd, argv).is_none());
    let outcome = match cmd {
        Some(cmd) => CallOutcome::Flag(super::acl::permits(
            ctx.server,
            &mut ctx.client.user,
            cmd,
            argv,
        )),
        None => failed(
            err_text,
            "ERR Invalid command passed to redis.acl_check_cmd()",
        ),
    };
    argv.clear();
    outcome
}

/// Raises `{err = text}`, as Redis's redis.call raises a command's error.
#[allow(unsafe_code)]
unsafe fn raise_error(l: *mut mlua::ffi::lua_State, text: &[u8]) -> ! {
    use mlua::ffi;
    ffi::lua_checkstack(l, 2);
    ffi::lua_createtable(l, 0, 1);
    ffi::lua_pushlstring(l, text.as_ptr().cast(), text.len());
    ffi::lua_setfield(l, -2, c"err".as_ptr());
    ffi::lua_error(l)
}

/// Raises `{err = text}` marked as counted already ([`raw::COUNTED_FIELD`]), as
/// Redis's redis.call raises an error its command (or its refusal) counted.
#[allow(unsafe_code)]
unsafe fn raise_counted_error(l: *mut mlua::ffi::lua_State, text: &[u8]) -> ! {
    use mlua::ffi;
    ffi::lua_checkstack(l, 3);
    ffi::lua_createtable(l, 0, 2);
    ffi::lua_pushlstring(l, text.as_ptr().cast(), text.len());
    ffi::lua_setfield(l, -2, c"err".as_ptr());
    ffi::lua_pushboolean(l, 1);
    // The key is `raw::COUNTED_FIELD`.
    ffi::lua_setfield(l, -2, c"ignore_error_stats_update".as_ptr());
    ffi::lua_error(l)
}

/// Raises a plain Lua error message (the error handler gives it the `ERR ` prefix).
#[allow(unsafe_code)]
unsafe fn raise_text(l: *mut mlua::ffi::lua_State, text: &[u8]) -> ! {
    use mlua::ffi;
    ffi::lua_checkstack(l, 1);
    ffi::lua_pushlstring(l, text.as_ptr().cast(), text.len());
    ffi::lua_error(l)
}

/// The Rust part of one `redis.call` (no Lua call here raises): reads the arguments
/// off the stack and runs the command through the exec door.
#[allow(unsafe_code)]
unsafe fn call_phase(l: *mut mlua::ffi::lua_State, env: &RefCell<RunEnv>) -> CallOutcome {
    use std::sync::atomic::Ordering::Relaxed;
    let Ok(mut env) = env.try_borrow_mut() else {
        return CallOutcome::Reentered;
    };
    let RunEnv {
        ctx,
        spare,
        rules,
        busy,
        flags,
        err_text,
    } = &mut *env;
    let Spare {
        client,
        reply,
        argv,
        arg_buf,
        last,
    } = &mut **spare;
    if let Err(text) = read_args(l, arg_buf, argv, last) {
        return failed(err_text, text);
    }
    let resp3 = flags.resp3.load(Relaxed);
    let repl = flags.repl.load(Relaxed);
    reply.buf.clear();
    reply.resp3 = resp3;
    client.resp3 = resp3;
    let before = ctx.store.propagated.len();
    let r = crate::exec::script_call(ctx.server, ctx.store, client, rules, argv, reply);
    argv.clear();
    if rules.wrote {
        busy.mark_wrote();
    }
    propagate_to(ctx.store, before, repl);
    if let Err(refusal) = r {
        failed(err_text, &refusal.0);
        return CallOutcome::CountedError;
    }
    if reply.buf.first() == Some(&b'-') {
        return error_reply(err_text, &reply.buf);
    }
    CallOutcome::Reply
}

/// Reads a `redis` library call's arguments off the Lua stack into `argv` (small ones
/// as slices of the arena), or the error the call raises for them. (Inlined: it is
/// most of `redis.call`'s hot path.)
#[allow(unsafe_code)]
#[inline(always)]
unsafe fn read_args(
    l: *mut mlua::ffi::lua_State,
    arg_buf: &mut bytes::BytesMut,
    argv: &mut Vec<Bytes>,
    last: &mut Vec<Bytes>,
) -> Result<(), &'static str> {
    use mlua::ffi;
    // Small arguments go to the arena and become slices of it once all are read
    // (a placeholder in `argv` until then, see [`PENDING`]).
    arg_buf.clear();
    argv.clear();
    let mut int_text = itoa::Buffer::new();
    for i in 1..=ffi::lua_gettop(l) {
        match ffi::lua_type(l, i) {
            ffi::LUA_TSTRING => {
                let mut len = 0usize;
                let p = ffi::lua_tolstring(l, i, &mut len);
                let b: &[u8] = if p.is_null() {
                    &[]
                } else {
                    // SAFETY: a string on the stack: `len` bytes at `p`, alive while
                    // it stays there (for this call).
                    std::slice::from_raw_parts(p.cast(), len)
                };
                if !reuse_arg(last, argv, b) {
                    push_arg(arg_buf, argv, b);
                }
            }
            ffi::LUA_TNUMBER => {
                let n = ffi::lua_tonumber(l, i);
                match lua_integer(n) {
                    Some(i) => {
                        let b = int_text.format(i).as_bytes();
                        if !reuse_arg(last, argv, b) {
                            push_arg(arg_buf, argv, b);
                        }
                    }
                    None => push_arg(arg_buf, argv, lua_number_text(n).as_bytes()),
                }
            }
            _ => return Err(ARGS_ERR),
        }
    }
    if argv.is_empty() {
        return Err("ERR Please specify at least one argument for this redis lib call");
    }
    if !arg_buf.is_empty() {
        let mut small = arg_buf.split().freeze();
        for (i, arg) in argv.iter_mut().enumerate() {
            if !is_pending(arg) {
                continue;
            }
            // The arena holds exactly the small arguments not reused, in order; the
            // last one takes what is left (each split takes a reference, an atomic
            // add, and its drop an atomic subtract).
            let n = arg.len();
            *arg = if n >= small.len() {
                std::mem::take(&mut small)
            } else {
                small.split_to(n)
            };
            remember_arg(last, i, arg);
        }
    }
    Ok(())
}

/// A call that failed before its command ran, with `text` as its error. Out of line,
/// as the other rare paths of a `redis.call`: a script runs the common path many
/// times per EVALSHA, and keeping it to few cache lines is most of its cost beside
/// Redis's (see docs/benchmarks.md, optimisation log).
#[cold]
#[inline(never)]
fn failed(err_text: &mut String, text: &str) -> CallOutcome {
    err_text.clear();
    err_text.push_str(text);
    CallOutcome::Error
}

/// A command that answered an error: its text, without the `-` and the CR LF.
#[cold]
#[inline(never)]
fn error_reply(err_text: &mut String, reply: &[u8]) -> CallOutcome {
    let text = reply.strip_prefix(b"-").unwrap_or(reply);
    let text = text.strip_suffix(b"\r\n").unwrap_or(text);
    *err_text = String::from_utf8_lossy(text).into_owned();
    // The command counted it when it answered.
    CallOutcome::CountedError
}

/// Appends the argument at the next position as the previous calls' argument at
/// that position, if it is the same bytes: a script calling one command over and
/// over (`redis.call('incr', KEYS[1])` in a loop) passes the same name and often the
/// same key each time, and a shared copy is cheaper than a new one (a reference
/// count instead of a copy into the arena and a split of it). False otherwise.
#[inline]
fn reuse_arg(last: &[Bytes], argv: &mut Vec<Bytes>, b: &[u8]) -> bool {
    match last.get(argv.len()) {
        Some(prev) if prev.as_ref() == b => {
            argv.push(prev.clone());
            true
        }
        _ => false,
    }
}

/// Keeps a small argument copied for position `i` for the next calls' [`reuse_arg`].
#[inline]
fn remember_arg(last: &mut Vec<Bytes>, i: usize, arg: &Bytes) {
    if let Some(slot) = last.get_mut(i) {
        slot.clone_from(arg);
    } else if i == last.len() && i < LAST_ARGS {
        last.push(arg.clone());
    }
}

/// Appends one argument of a call: to the arena if small, else as its own copy.
fn push_arg(arena: &mut bytes::BytesMut, argv: &mut Vec<Bytes>, b: &[u8]) {
    if b.len() > crate::resp::SLICE_MAX {
        push_own_copy(argv, b);
    } else {
        // A full block shared with live arguments is left to them: `reserve` then
        // starts a new one of at least the arena's first size (ARG_CHUNK).
        arena.extend_from_slice(b);
        argv.push(pending(b.len()));
    }
}

/// An argument too long for the arena: its own copy.
#[cold]
#[inline(never)]
fn push_own_copy(argv: &mut Vec<Bytes>, b: &[u8]) {
    argv.push(Bytes::copy_from_slice(b));
}

/// A number argument that `%.17g` prints as an integer (the common case).
fn lua_integer(n: f64) -> Option<i64> {
    let i = n as i64;
    (i as f64 == n
        && i.unsigned_abs() < 100_000_000_000_000_000
        && !(n == 0.0 && n.is_sign_negative()))
    .then_some(i)
}

/// A number argument of redis.call as Redis 7.0 turns it into a string (`%.17g`,
/// not Lua's own `%.14g`), without calling into Lua.
#[cold]
#[inline(never)]
fn lua_number_text(n: f64) -> String {
    if let Some(i) = lua_integer(n) {
        return i.to_string();
    }
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    crate::resp::format_g(n, 17)
}

/// Where the ops a call just added (from index `before`) go, after the script's
/// `redis.set_repl` (REPL_NONE = 0, REPL_AOF = 1, REPL_REPLICA = 2, REPL_ALL = 3).
fn propagate_to(store: &mut crate::server::Store, before: usize, repl: u8) {
    use crate::server::PropagateTarget;
    let only = match repl {
        // REPL_NONE: the writes stay local (and so does the one destination of
        // any of them that had one, such as PUBLISH's).
        0 => {
            store.propagated.truncate(before);
            return store.propagate_only.retain(|&(i, _)| i < before);
        }
        1 => PropagateTarget::Aof,
        2 => PropagateTarget::Replicas,
        _ => return,
    };
    let added = before..store.propagated.len();
    store.propagate_only.extend(added.map(|i| (i, only)));
}

const ARGS_ERR: &str = "ERR Lua redis lib command arguments must be strings or integers";
