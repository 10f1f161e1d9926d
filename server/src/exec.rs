//! Command execution (Redis `processCommand` + `call`): the checks every command goes
//! through in Redis's order, MULTI queueing, running the handler with the store
//! locked, propagation with MULTI/EXEC wrapping, WATCH invalidation and serving
//! clients blocked on keys that the command made ready.
//!
//! The one dispatch: every command in the server runs through one of two doors here.
//! - [`process`]: a request with every check a client gets (lookup, arity, AUTH,
//!   MULTI, fence, OOM, MISCONF, read-only replica, min-replicas, Pub/Sub context).
//!   Client connections (`net`) and the replica's master stream
//!   (`replication::replica::stream`, as the master client, which the checks exempt
//!   where Redis does) enter here.
//! - [`script_call`]: a script's `redis.call`/`redis.pcall` (EVAL, later FCALL): the
//!   checks Redis applies to commands called from scripts, then [`call`].
//! - [`replay`]: the AOF loader's client: the lookup and arity checks, then the
//!   command runs as Redis's AOF-loading client does (no AUTH, OOM or replica checks).
//!
//! Nothing else calls a command handler; subsystems never look commands up to run
//! them. Propagation of what ran leaves from one place, [`flush_propagated`].

use crate::commands::{self, flags, Action, ClientState, Command, Ctx};
use crate::resp::Reply;
use crate::server::{ClientHandle, ClientId, Server, Stats, Store, Waiter};
use crate::util::Mono;
use bytes::Bytes;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// What the connection must do after the lock is released.
#[derive(Debug)]
pub enum Outcome {
    Done,
    Close,
    /// Blocked: wait for `rx` (the reply of the served command) or the timeout.
    Blocked {
        rx: tokio::sync::oneshot::Receiver<Vec<u8>>,
        timeout_ms: u64,
        null_array: bool,
    },
    Monitor,
    Shutdown(crate::server::ShutdownFlags),
    /// WAIT numreplicas timeout: wait for replica ACKs, reply with the count.
    WaitReplicas {
        num: i64,
        offset: i64,
        timeout_ms: u64,
    },
    /// A CLIENT PAUSE holds the command back: it passed every check, and runs (checked
    /// again) once the pause ends. The request is handed back unrun in
    /// [`ClientState::paused_request`] (a payload here would give every outcome a drop
    /// to run on the command path).
    Paused,
}

/// Formats Redis's unknown-command error. Redis prints the name and arguments as C
/// strings (`%.*s`), so each stops at its first NUL byte, and the limits count bytes.
pub(crate) fn unknown_command(argv: &[Bytes]) -> String {
    let name = commands::c_string(&argv[0], 128);
    let mut args = String::new();
    for a in argv.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        args.push('\'');
        args.push_str(&commands::c_string(a, 128 - args.len() + 1));
        args.push_str("' ");
    }
    format!("ERR unknown command '{name}', with args beginning with: {args}")
}

/// Why [`check_argv`] refused a command.
#[derive(Debug, Clone, Copy)]
pub enum ArgvRefusal {
    UnknownCommand,
    WrongArity(&'static Command),
}

/// The checks of a request that depend on its arguments only: the command table
/// lookup and the arity. `process` applies the same two to every client request;
/// the AOF loader replays through this so a corrupt file meets them too instead
/// of reaching a handler with the wrong number of arguments.
pub fn check_argv(argv: &[Bytes]) -> Result<&'static Command, ArgvRefusal> {
    let cmd = argv
        .first()
        .and_then(|name| commands::lookup(name))
        .ok_or(ArgvRefusal::UnknownCommand)?;
    if cmd.arity_ok(argv.len()) {
        Ok(cmd)
    } else {
        Err(ArgvRefusal::WrongArity(cmd))
    }
}

/// Runs one request from a client: checks, MULTI queueing or execution.
///
/// Every request runs through here, so its common path (a known command that passes
/// every check, outside MULTI) is kept to few cache lines: refusals and queueing are
/// out of line.
pub fn process(
    server: &Arc<Server>,
    store: &mut Store,
    client: &mut ClientState,
    // Unused since MONITOR lines are built after the command (`call_argv`), which
    // looks the address up itself; kept so the connection layer's call is unchanged.
    _handle: Option<&ClientHandle>,
    argv: Vec<Bytes>,
    out: &mut Reply,
) -> Outcome {
    let Some(cmd) = client.cmd_cache.lookup(&argv[0]) else {
        return refuse_unknown(server, client, out, &argv);
    };
    let refused = refusal(server, store, client, cmd, &argv);
    if let Some(pushes) = store.tracking.take_ahead() {
        write_ahead(client, pushes, out);
    }
    if let Some(msg) = refused {
        return refuse(server, store, client, (cmd, &argv), out, msg);
    }
    // As Redis: after every check (a refused command is answered at once) and
    // before MULTI queueing (a write waits rather than being queued).
    if server.client_pause.is_paused() && must_wait_for_pause(server, store, client, cmd, &argv) {
        client.paused_request = Some(argv);
        return Outcome::Paused;
    }
    if client.multi.is_some() && !cmd.is(flags::NO_MULTI) {
        return queue_in_multi(client, &argv, out);
    }
    let before = store.propagated.len();
    store.tracking.current = Some(client.id);
    // As Redis counts: each command that runs (here, in EXEC and in scripts), not
    // one refused or only queued. Written with the store held; the one writer
    // without it (`while_busy`) runs only while a script holds the store.
    Stats::incr_held(store, &server.stats.total_commands_processed, 1);
    let mut argv = Cow::Owned(argv);
    let outcome = call_argv(server, store, client, cmd, &mut argv, out, true);
    // Not moved into a propagated op (a read, a write that changed nothing): into
    // the pool, from which connections draw their parsers' argument vectors.
    if let Cow::Owned(v) = argv {
        recycle_op(store, v);
    }
    // Looked at only when there is more than one op to wrap: SCAN and RANDOMKEY
    // run directly leave the DELs of the keys they found expired bare.
    if store.propagated.len() - before > 1 && !cmd.is(flags::TOUCHES_ARBITRARY_KEYS) {
        wrap_in_multi(store, before);
    }
    serve_blocked(server, store);
    let wrote = !store.propagated.is_empty();
    flush_propagated(server, store);
    store.tracking.current = None;
    // CLIENT CACHING covers the next command (the whole transaction in MULTI).
    store
        .tracking
        .after_command(client.id, cmd.name == "client" || client.multi.is_some());
    store.tracking_after();
    if wrote {
        // WAIT waits for the replication offset after this client's last write.
        client.woff = store.repl.master_repl_offset;
    }
    outcome
}

/// Whether an active CLIENT PAUSE holds `cmd` back. Never the master link or a
/// replica (Redis 7.0 exempts replicas only and pauses its master client too: a
/// known difference, see `crate::pause`).
#[cold]
#[inline(never)]
fn must_wait_for_pause(
    server: &Server,
    store: &mut Store,
    client: &ClientState,
    cmd: &Command,
    argv: &[Bytes],
) -> bool {
    !client.is_master
        && !client.is_replica
        && server
            .client_pause
            .holds(commands::call_flags_with_queue(store, client, cmd, argv))
}

/// The checks of [`process`] in Redis's order: the refusal's text, or `None` when
/// the command may run. Building a refusal's text is out of line.
#[inline]
fn refusal(
    server: &Arc<Server>,
    store: &mut Store,
    client: &mut ClientState,
    cmd: &Command,
    argv: &[Bytes],
) -> Option<String> {
    if !cmd.arity_ok(argv.len()) {
        return Some(wrong_arity(cmd.name));
    }
    if cmd.is(flags::CONTAINER) {
        if let Some(msg) = unknown_sub_refusal(cmd, argv).or_else(|| sub_arity_refusal(cmd, argv)) {
            return Some(msg);
        }
    }
    if !client.authenticated && !cmd.is(flags::NO_AUTH) {
        return Some(no_auth());
    }
    if let Err(r) = acl_check(server, client, cmd, argv) {
        return Some(commands::acl::noperm_text(&r));
    }
    precheck(server, store, client, (cmd, argv)).or_else(|| refused_in_multi(client, cmd))
}

#[cold]
#[inline(never)]
fn wrong_arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

#[cold]
#[inline(never)]
fn no_auth() -> String {
    "NOAUTH Authentication required.".to_string()
}

/// The ACL check of a user that may not run everything ([`acl_check`] past its
/// fast path).
#[cold]
#[inline(never)]
fn restricted_acl_check(
    server: &Server,
    client: &mut ClientState,
    cmd: &Command,
    argv: &[Bytes],
) -> Result<(), commands::acl::Refusal> {
    let context = match client.multi {
        Some(_) => crate::acl::log::Context::Multi,
        None => crate::acl::log::Context::Toplevel,
    };
    commands::acl::check(server, client, cmd, argv, context)
}

#[cold]
#[inline(never)]
fn refuse_unknown(
    server: &Server,
    client: &mut ClientState,
    out: &mut Reply,
    argv: &[Bytes],
) -> Outcome {
    reject(server, client, out, &unknown_command(argv));
    Outcome::Done
}

/// A command [`refusal`] refused: counted, and answered with `msg`.
#[cold]
#[inline(never)]
fn refuse(
    server: &Server,
    store: &mut Store,
    client: &mut ClientState,
    (cmd, argv): (&Command, &[Bytes]),
    out: &mut Reply,
    msg: String,
) -> Outcome {
    count_rejected(store, cmd, argv);
    if cmd.name == "exec" && client.multi.is_some() {
        // A refused EXEC discards the transaction (Redis `execCommandAbort`).
        discard_transaction(store, client);
        let text = format!(
            "EXECABORT Transaction discarded because of: {}",
            msg.strip_prefix("ERR ").unwrap_or(&msg)
        );
        server.stats.error_reply(text.as_bytes());
        out.error(&text);
    } else {
        reject(server, client, out, &msg);
    }
    Outcome::Done
}

/// Inside MULTI: the command is queued (unless the transaction will abort).
#[cold]
#[inline(never)]
fn queue_in_multi(client: &mut ClientState, argv: &[Bytes], out: &mut Reply) -> Outcome {
    // A transaction that will abort queues nothing more (as Redis: CLIENT LIST
    // and ACL LOG show the count of what EXEC would have run).
    if let Some(q) = client.multi.as_mut().filter(|_| !client.multi_error) {
        // Queued commands may wait long: they must not pin read buffers.
        q.push(argv.iter().map(crate::util::detach).collect());
    }
    out.simple("QUEUED");
    Outcome::Done
}

/// Counts the call, feeds the latency monitor and, with `latency-tracking`, the
/// command's histogram (under its full name, `config|get`, and its own FAST flag,
/// as Redis keys them).
/// A command that blocked is counted now, as in Redis, but its histogram sample waits
/// for its answer ([`observe_unblocked`]).
fn observe_latency(
    store: &mut Store,
    cmd: &Command,
    argv: &[Bytes],
    elapsed_ns: u64,
    (failed, blocked): (u64, bool),
) {
    let (threshold, tracking) = (
        store.hot.latency_monitor_threshold,
        store.hot.latency_tracking && !blocked,
    );
    let Some((name, fast)) = stat_name(cmd, argv) else {
        return;
    };
    store
        .latency
        .observe_command((threshold, tracking), (name, fast, failed), elapsed_ns);
}

/// The name a command's statistics go under (`get`, `config|get`) and its FAST flag;
/// `None` for an unknown subcommand, which Redis never looks up as a command. A
/// container called alone counts under its own name.
#[inline]
fn stat_name(cmd: &Command, argv: &[Bytes]) -> Option<(&'static str, bool)> {
    if !cmd.is(flags::CONTAINER) {
        return Some((cmd.name, cmd.is(flags::FAST)));
    }
    container_stat_name(cmd, argv)
}

#[cold]
#[inline(never)]
fn container_stat_name(cmd: &Command, argv: &[Bytes]) -> Option<(&'static str, bool)> {
    match argv.get(1) {
        None => Some((cmd.name, cmd.is(flags::FAST))),
        Some(s) => commands::meta_types::meta(cmd.name)?
            .sub(s)
            .map(|m| (m.name, m.has_flag("fast"))),
    }
}

/// Counts a refused command in INFO commandstats (`rejected_calls`).
fn count_rejected(store: &mut Store, cmd: &Command, argv: &[Bytes]) {
    if let Some((name, _)) = stat_name(cmd, argv) {
        store.latency.reject_command(name);
    }
}

/// A container called with a subcommand Redis 7.0.15's table does not have: Redis
/// finds no command, so it refuses the call before anything else (inside MULTI at
/// queue time, which then aborts the EXEC), with the container's HELP in the message.
pub(crate) fn unknown_sub_refusal(cmd: &Command, argv: &[Bytes]) -> Option<String> {
    let sub = argv.get(1)?;
    let meta = commands::meta_types::meta(cmd.name)?;
    if meta.subs.is_empty()
        || meta.sub(sub).is_some()
        || commands::meta_types::is_extra(cmd.name, sub)
    {
        return None;
    }
    let upper = cmd.name.to_ascii_uppercase();
    Some(commands::connection::unknown_subcommand(sub, &upper).to_string())
}

/// A known subcommand with the wrong number of arguments, refused as Redis refuses it
/// (`ERR wrong number of arguments for 'config|get' command`). Unknown subcommands are
/// left to the command, which names its own HELP.
pub(crate) fn sub_arity_refusal(cmd: &Command, argv: &[Bytes]) -> Option<String> {
    if !cmd.is(flags::CONTAINER) || argv.len() < 2 {
        return None;
    }
    let sub = commands::meta_types::meta(cmd.name)?.sub(&argv[1])?;
    if !commands::meta_types::implemented(sub.name) {
        return None;
    }
    let a = sub.arity;
    let ok = (a >= 0 && argv.len() == a as usize) || (a < 0 && argv.len() >= (-a) as usize);
    (!ok).then(|| format!("ERR wrong number of arguments for '{}' command", sub.name))
}

/// What the checks of [`script_call`] need to know about the running script.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScriptRules {
    /// EVAL_RO, FCALL_RO or the `no-writes` flag: write commands are refused.
    pub read_only: bool,
    /// The server was over `maxmemory` when the script started (and it may write):
    /// memory-growing commands are refused until the script has written once.
    pub oom_at_start: bool,
    /// The script already called a write command.
    pub wrote: bool,
    /// A write of this run already passed the failed-BGSAVE check
    /// (`stop-writes-on-bgsave-error`), which is not made again for the run's later
    /// writes: in Redis the BGSAVE status cannot change while a script runs (the
    /// cron that reaps the child does not run meanwhile), here a saving thread could
    /// change it, and a script refused half-way would leave half its writes done.
    pub bgsave_ok: bool,
}

/// Why [`script_call`] refused a command; the text is Redis's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScriptRefusal(pub String);

/// The script door: a command a script calls, with `client` standing for the script
/// (Redis `scriptCall`). Applies lookup, arity, NOSCRIPT, the write rules (read-only
/// scripts, fenced server, read-only replica, MISCONF, min-replicas) and the OOM
/// rule, then runs the command through [`call`]; its reply (in the protocol of
/// `out`) is appended to `out`. Writes land in `store.propagated` like any command's:
/// the op is `argv` itself, moved there (a copy of each argument is an atomic
/// reference count taken and later dropped); `argv` is then an empty vector of the
/// op pool. Otherwise `argv` is left as it was, for the caller to reuse.
///
/// A refusal is counted as Redis counts it: in INFO errorstats and
/// `total_error_replies` at once, and as a rejected call of the command when there
/// is one (the script's own reply does not count it again).
pub fn script_call(
    server: &Arc<Server>,
    store: &mut Store,
    client: &mut ClientState,
    rules: &mut ScriptRules,
    argv: &mut Vec<Bytes>,
    out: &mut Reply,
) -> Result<(), ScriptRefusal> {
    let r = script_door(server, store, client, rules, argv, out);
    if let Err(refusal) = &r {
        count_script_refusal(server, store, client, argv, refusal);
    }
    r
}

/// Counts a refusal of [`script_call`] (out of line: rare).
#[cold]
#[inline(never)]
fn count_script_refusal(
    server: &Server,
    store: &mut Store,
    client: &mut ClientState,
    argv: &[Bytes],
    refusal: &ScriptRefusal,
) {
    server.stats.error_reply(refusal.0.as_bytes());
    if let Some(cmd) = argv.first().and_then(|n| client.cmd_cache.lookup(n)) {
        count_rejected(store, cmd, argv);
    }
}

/// The checks and the run of [`script_call`].
#[inline(always)]
fn script_door(
    server: &Arc<Server>,
    store: &mut Store,
    client: &mut ClientState,
    rules: &mut ScriptRules,
    argv: &mut Vec<Bytes>,
    out: &mut Reply,
) -> Result<(), ScriptRefusal> {
    // The script's client is kept from run to run: a script calling the same command
    // over and over finds it by a byte comparison.
    let Some(cmd) = argv.first().and_then(|n| client.cmd_cache.lookup(n)) else {
        return refused("ERR Unknown Redis command called from script");
    };
    if !cmd.arity_ok(argv.len()) {
        return refused("ERR Wrong number of args calling Redis command from script");
    }
    if cmd.is(flags::NO_SCRIPT | flags::CONTAINER) {
        if let Some(text) = script_denial(server, cmd, argv) {
            return refused(text);
        }
    }
    if store.repl.master.is_some() && !cmd.is(flags::STALE) && stale_replica(store) {
        return refused("ERR Can not execute the command on a stale replica");
    }
    // Unrestricted users (the default user) pass on one flag test, as in `acl_check`.
    if !client.user.unrestricted(&server.acl) {
        if let Err(r) =
            commands::acl::check(server, client, cmd, argv, crate::acl::log::Context::Lua)
        {
            return refused(commands::acl::script_text(&r));
        }
    }
    let writes = cmd.is(flags::WRITE);
    if rules.read_only && (writes || cmd.is(flags::MAY_REPLICATE)) {
        return refused("ERR Write commands are not allowed from read-only scripts.");
    }
    if writes && !client.is_master {
        if let Some(msg) = crate::replication::fence::precheck(store, false, true) {
            return Err(ScriptRefusal(msg));
        }
        if store.is_replica && store.hot.replica_read_only {
            return refused("READONLY You can't write against a read only replica.");
        }
        if !rules.bgsave_ok {
            if let Some(msg) = crate::persist::bgsave_write_refusal(server, store) {
                return Err(ScriptRefusal(msg));
            }
            rules.bgsave_ok = true;
        }
        if let Some(msg) = crate::aof::write_refusal(server) {
            return Err(ScriptRefusal(msg));
        }
        if let Some(msg) = crate::replication::precheck(server, store, client, cmd) {
            return Err(ScriptRefusal(msg));
        }
    }
    if rules.oom_at_start
        && !rules.wrote
        && !client.is_master
        && store.hot.maxmemory != 0
        && cmd.is(flags::DENYOOM)
    {
        return Err(ScriptRefusal(crate::evict::Oom.to_string()));
    }
    if writes {
        rules.wrote = true;
    }
    let mut owned = Cow::Owned(std::mem::take(argv));
    // Timed on its own clock reading, as Redis times each call of a script: the
    // batch's chained clock (`Store::cmd_clock`) would charge it the Lua time since
    // the previous command ended (INFO commandstats, latency, slow log).
    let outer_clock = store.cmd_clock.take();
    // Atomically: `while_busy` may count a command it answers meanwhile.
    Stats::incr(&server.stats.total_commands_processed, 1);
    call_argv(server, store, client, cmd, &mut owned, out, false);
    store.cmd_clock = outer_clock;
    *argv = match owned {
        Cow::Owned(v) => v,
        // Moved into the propagated op.
        Cow::Borrowed(_) => store.op_pool.pop().unwrap_or_default(),
    };
    Ok(())
}

/// Why a script may not call `cmd` (a container or a `noscript` command), checked as
/// Redis checks a script's call: an unknown subcommand is an unknown command, a known
/// one has its own arity and flags; `noscript` holds unless DEBUG
/// SET-DISABLE-DENY-SCRIPTS lifted it. Out of line: few commands are either.
#[cold]
#[inline(never)]
fn script_denial(server: &Server, cmd: &Command, argv: &[Bytes]) -> Option<&'static str> {
    let mut no_script = cmd.is(flags::NO_SCRIPT);
    let mut name = cmd.name;
    if cmd.is(flags::CONTAINER) && argv.len() >= 2 {
        if unknown_sub_refusal(cmd, argv).is_some() {
            return Some("ERR Unknown Redis command called from script");
        }
        if sub_arity_refusal(cmd, argv).is_some() {
            return Some("ERR Wrong number of args calling Redis command from script");
        }
        if let Some(sub) = commands::meta_types::meta(cmd.name).and_then(|m| m.sub(&argv[1])) {
            no_script = sub.has_flag("noscript");
            name = sub.name;
        }
    }
    if !no_script {
        return None;
    }
    let lifted = server
        .script_deny_lifted
        .load(std::sync::atomic::Ordering::Relaxed);
    if lifted && !never_from_script(name, argv) {
        return None;
    }
    Some("ERR This Redis command is not allowed from script")
}

/// The `noscript` commands a script may not call even when DEBUG
/// SET-DISABLE-DENY-SCRIPTS lifted the rule: those that would start a script inside
/// the running one (Redis 7.0 aborts on an assertion there), and those that would
/// replace a Lua state or the scripts and functions compiled in it while a script
/// runs (the states are out of the store during a run; Redis crashes on SCRIPT FLUSH
/// from a script). `name` is the full name (`script|load`).
fn never_from_script(name: &str, argv: &[Bytes]) -> bool {
    match name {
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => true,
        "script|load" | "script|flush" => true,
        "function|load" | "function|delete" | "function|flush" | "function|restore" => true,
        // Both load functions from a file.
        "debug" => argv.get(1).is_some_and(|s| {
            s.eq_ignore_ascii_case(b"reload") || s.eq_ignore_ascii_case(b"loadaof")
        }),
        _ => false,
    }
}

/// Whether a replica is cut from its master and told not to serve stale data: a
/// script (run with `allow-stale`) may then only call commands flagged STALE.
#[cold]
#[inline(never)]
fn stale_replica(store: &Store) -> bool {
    !store.hot.replica_serve_stale_data && !store.repl.link_connected()
}

/// A refusal of [`script_call`] (out of line: the script door's hot path stays short).
#[cold]
#[inline(never)]
fn refused(text: &str) -> Result<(), ScriptRefusal> {
    Err(ScriptRefusal(text.to_string()))
}

/// The ACL check of a client request (Redis checks queued commands at queue time
/// too, logged with the `multi` context). Unrestricted users pass on one flag test.
#[inline]
pub(crate) fn acl_check(
    server: &Server,
    client: &mut ClientState,
    cmd: &Command,
    argv: &[Bytes],
) -> Result<(), commands::acl::Refusal> {
    if client.user.unrestricted(&server.acl) {
        return Ok(());
    }
    restricted_acl_check(server, client, cmd, argv)
}

/// Checks that depend on server state (OOM, read-only replica, Pub/Sub context).
fn precheck(
    server: &Arc<Server>,
    store: &mut Store,
    client: &ClientState,
    (cmd, argv): (&Command, &[Bytes]),
) -> Option<String> {
    // EXEC is checked as the commands it would run (the server may have changed
    // since they were queued: out of memory, turned replica).
    let effective = commands::effective_flags(cmd, client);
    let writes = effective & flags::WRITE != 0;
    if let Some(msg) = crate::replication::fence::precheck(store, client.is_master, writes) {
        return Some(msg);
    }
    if !client.is_master && crate::evict::over_limit(store) {
        // As Redis, every command evicts; only those that may add memory are refused
        // when that is not enough. Inside MULTI that is anything but EXEC, DISCARD,
        // QUIT and RESET (the queue itself takes memory).
        let oom = evict_before(server, store, client.id).err();
        let deny = effective & flags::DENYOOM != 0
            || (client.multi.is_some()
                && !matches!(cmd.name, "exec" | "discard" | "quit" | "reset"));
        if let Some(e) = oom.filter(|_| deny) {
            // Keys evicted before giving up still reach replicas and the AOF now,
            // since the command itself does not run.
            flush_propagated(server, store);
            return Some(e.to_string());
        }
    }
    // MISCONF (Redis `writeCommandsDeniedByDiskError`): after a failed BGSAVE or AOF
    // write, writes and PING are refused; the master link never is.
    if !client.is_master && (writes || cmd.name == "ping") {
        if let Some(e) = crate::persist::write_refusal(server, store) {
            return Some(e);
        }
    }
    if store.is_replica && writes && !client.is_master && store.hot.replica_read_only {
        return Some("READONLY You can't write against a read only replica.".into());
    }
    if let Some(msg) = crate::replication::precheck(server, store, client, cmd) {
        return Some(msg);
    }
    subscribed_refusal(client, cmd, argv)
}

/// `maxmemory` eviction before client `id`'s command runs (Redis `performEvictions`
/// in `processCommand`). The client counts as the running one (a NOLOOP client is
/// not told of keys evicted for its own command, as in Redis), and invalidations for
/// its own connection are held for [`process`] to write ahead of the reply.
#[inline(never)]
fn evict_before(
    server: &Arc<Server>,
    store: &mut Store,
    id: ClientId,
) -> Result<(), crate::evict::Oom> {
    store.tracking.current = Some(id);
    store.tracking.admitting = Some(id);
    let result = crate::evict::ensure_memory(server, store);
    store.tracking.admitting = None;
    store.tracking.current = None;
    result
}

/// Writes the tracking messages [`evict_before`] held for the client's own
/// connection, ahead of the reply, and marks where the reply starts (CLIENT REPLY
/// OFF|SKIP drops the reply, not these).
#[cold]
#[inline(never)]
fn write_ahead(client: &mut ClientState, pushes: Vec<crate::tracking::Push>, out: &mut Reply) {
    let subscribed = client.subscriptions() > 0;
    for p in pushes {
        p.encode(out, client.resp3, subscribed);
    }
    out.resp3 = client.resp3;
    client.reply_start = Some(out.len());
}

/// A RESP2 client with subscriptions may run only the Pub/Sub commands, PING, QUIT
/// and RESET.
/// The command is named by its full name (`pubsub|channels`), as Redis names it.
pub(crate) fn subscribed_refusal(
    client: &ClientState,
    cmd: &Command,
    argv: &[Bytes],
) -> Option<String> {
    (client.subscriptions() > 0 && !client.resp3 && !cmd.is(flags::SUBSCRIBED)).then(|| {
        format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            stat_name(cmd, argv).map_or(cmd.name, |(name, _)| name)
        )
    })
}

/// Commands Redis refuses to queue (`no_multi` in COMMAND INFO: SAVE, SHUTDOWN,
/// SYNC, PSYNC); the refusal also aborts the transaction at EXEC. The command table's
/// metadata is the one source of that flag.
#[inline]
pub(crate) fn refused_in_multi(client: &ClientState, cmd: &Command) -> Option<String> {
    let queued = client.multi.is_some() && !cmd.is(flags::NO_MULTI);
    // Outside MULTI (nearly every command) the metadata is not searched: the search
    // (a binary search by name) was about 3 % of a pipelined SET's server time.
    let no_multi =
        || commands::meta_types::meta(cmd.name).is_some_and(|m| m.flags.contains(&"no_multi"));
    (queued && no_multi()).then(|| "ERR Command not allowed inside a transaction".to_string())
}

/// After a write that dirtied the dataset: WATCH, blocked clients, client-side
/// caching and OBJECT ENCODING hear of its keys. Client-side caching only of those
/// the command could have changed: not of a DEL of a key that was never there.
/// The key the handler said it left `unchanged` is skipped altogether.
fn touch_written_keys(
    store: &mut Store,
    (db, cmd, argv): (usize, &Command, &[Bytes]),
    (existed, unchanged): (Option<&[bool]>, Option<usize>),
) {
    for (n, pos) in cmd.key_positions_iter(argv).enumerate() {
        if unchanged == Some(n) {
            continue;
        }
        let changed = existed.is_none_or(|e| {
            e.get(n).copied().unwrap_or(true) || store.dbs[db].contains(&argv[pos])
        });
        if changed {
            store.tracking_invalidate(&argv[pos]);
        }
        store.touch_watchers(db, &argv[pos]);
        commands::keys::note_encoding(store, (db, &argv[pos]), cmd.name, argv);
    }
}

/// With client-side caching in use, which keys of a write command exist before it
/// runs (`None` otherwise: every key counts as changed).
#[inline]
fn keys_before_write(store: &Store, db: usize, cmd: &Command, argv: &[Bytes]) -> Option<Vec<bool>> {
    if !store.tracking.active() || !cmd.is(flags::WRITE) {
        return None;
    }
    keys_existing(store, db, cmd, argv)
}

#[cold]
#[inline(never)]
fn keys_existing(store: &Store, db: usize, cmd: &Command, argv: &[Bytes]) -> Option<Vec<bool>> {
    let d = store.dbs.get(db)?;
    Some(
        cmd.key_positions(argv)
            .into_iter()
            .map(|p| argv.get(p).is_some_and(|k| d.contains(k)))
            .collect(),
    )
}

/// Client-side caching: a tracking client's read-only command records the keys it
/// read (read-only scripts are left out: the commands they call are recorded, for
/// the client that ran the script, which the script's own client (id 0) stands for).
fn track_reads(store: &mut Store, client: &ClientState, cmd: &Command, argv: &[Bytes]) {
    let script = matches!(
        cmd.name,
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro"
    );
    // A read a script runs tracks the keys the script declared, once it ends (as
    // Redis tracks its caller's command keys), not the keys the read named.
    let script_read = script && std::mem::take(&mut store.tracking.script_read);
    if client.lua {
        if cmd.is(flags::READONLY) && !cmd.is(flags::PUBSUB) {
            store.tracking.script_read = true;
        }
        return;
    }
    // The AOF loader's client reads for nobody.
    let reader = match client.id {
        0 => return,
        id => id,
    };
    let reads = if script {
        script_read
    } else {
        cmd.is(flags::READONLY) && !cmd.is(flags::PUBSUB)
    };
    if !reads || !store.tracking.wants_keys(reader) {
        return;
    }
    for pos in cmd.key_positions_iter(argv) {
        if let Some(key) = argv.get(pos) {
            store.tracking.remember(reader, key);
        }
    }
}

/// A write on a writable replica by one of its own clients: the keys it left with a
/// TTL are tracked so the replica expires them itself.
#[cold]
#[inline(never)]
fn remember_replica_volatile(store: &mut Store, db: usize, cmd: &Command, argv: &[Bytes]) {
    for pos in cmd.key_positions(argv) {
        let Some(key) = argv.get(pos) else {
            continue;
        };
        let volatile = store
            .dbs
            .get(db)
            .is_some_and(|d| d.expire_of(key).is_some());
        if volatile {
            store
                .replica_volatile
                .insert((db, crate::util::detach(key)));
        }
    }
}

/// Drops a client's MULTI state and its WATCHes.
fn discard_transaction(store: &mut Store, client: &mut ClientState) {
    client.multi = None;
    client.multi_error = false;
    let watched = std::mem::take(&mut client.watched);
    store.unwatch_all(client.id, &watched);
    client
        .watch_dirty
        .store(false, std::sync::atomic::Ordering::SeqCst);
}

fn reject(server: &Server, client: &mut ClientState, out: &mut Reply, msg: &str) {
    if client.multi.is_some() {
        client.multi_error = true;
    }
    server.stats.error_reply(msg.as_bytes());
    out.error(msg);
}

/// The AOF loader's door (see the module doc): `argv` is looked up and its arity
/// checked as for a client, then it runs with `client` standing for the file.
pub fn replay(
    server: &Arc<Server>,
    store: &mut Store,
    client: &mut ClientState,
    argv: &[Bytes],
    out: &mut Reply,
) -> Result<&'static Command, ArgvRefusal> {
    let cmd = check_argv(argv)?;
    call(server, store, client, cmd, argv, out, false);
    Ok(cmd)
}

/// Executes a command (already checked) with the store locked. Used by `process`,
/// by EXEC for each queued command, by `replay` and when serving blocked clients.
pub(crate) fn call(
    server: &Arc<Server>,
    store: &mut Store,
    client: &mut ClientState,
    cmd: &Command,
    argv: &[Bytes],
    out: &mut Reply,
    may_block: bool,
) -> Outcome {
    call_argv(
        server,
        store,
        client,
        cmd,
        &mut Cow::Borrowed(argv),
        out,
        may_block,
    )
}

/// `call` with an argv that may be owned: an owned argv is moved into the
/// propagated ops instead of cloned (a clone costs an allocation per argument), and
/// `argv_cow` is then left empty and borrowed; otherwise it is left as it was.
fn call_argv(
    server: &Arc<Server>,
    store: &mut Store,
    client: &mut ClientState,
    cmd: &Command,
    argv_cow: &mut Cow<'_, [Bytes]>,
    out: &mut Reply,
    may_block: bool,
) -> Outcome {
    let argv: &[Bytes] = argv_cow;
    let dirty_before = store.dirty;
    let existed = keys_before_write(store, client.db, cmd, argv);
    let started = store.cmd_clock.unwrap_or_else(Mono::now);
    store.begin_command();
    let mut ctx = Ctx::at(store, server, client, started);
    ctx.may_block = may_block;
    if ctx.client.frozen_time_ms != 0 {
        ctx.expiry_now_ms = ctx.client.frozen_time_ms;
    }
    let reply_start = out.len();
    if let Err(e) = (cmd.handler)(&mut ctx, out, argv) {
        handler_failed(server, out, reply_start, &e.0);
    }
    ctx.store.flush_new_keys();
    let Ctx {
        also,
        rewrite,
        no_propagate,
        action,
        unchanged_key,
        nested_failures,
        ..
    } = ctx;
    track_reads(store, client, cmd, argv);
    let ended = Mono::now();
    if store.cmd_clock.is_some() {
        store.cmd_clock = Some(ended);
    }
    let elapsed_ns = ended.nanos_since(started);
    let threshold = store.hot.slowlog_log_slower_than;
    if threshold >= 0 && (elapsed_ns / 1000) as i64 >= threshold {
        let who = (client.id, client.name.clone());
        log_slow(server, who, (cmd, argv), threshold, ended.since(started));
    }
    let blocked = matches!(action, Some(Action::Block { .. }));
    let failed = match blocked {
        true => 0,
        false => u64::from(out.buf.get(reply_start) == Some(&b'-')) + u64::from(nested_failures),
    };
    observe_latency(store, cmd, argv, elapsed_ns, (failed, blocked));
    // After the command, as Redis 7.0 does: the line shows the database it left
    // selected, and commands run by EXEC are fed one by one.
    feed_monitors(server, client, cmd, argv);

    let dirtied = store.dirty > dirty_before;
    let db = client.db;
    if !also.is_empty() {
        store.propagated.extend(also);
    }
    if dirtied && !cmd.is(flags::NO_PROPAGATE) {
        // Only a write changes its keys; a read that dirtied the dataset deleted an
        // expired key, which `delete_expired` already signalled (WATCH of such a key
        // must not abort the transaction).
        if cmd.is(flags::WRITE) {
            touch_written_keys(store, (db, cmd, argv), (existed.as_deref(), unchanged_key));
            if store.is_replica && !client.is_master {
                remember_replica_volatile(store, db, cmd, argv);
            }
        }
        // Only writes: a MAY_REPLICATE command propagates what it did itself (PFCOUNT
        // its cache refresh, a script the writes of its commands), never its own call.
        if !no_propagate && cmd.is(flags::WRITE) {
            let op = match rewrite {
                Some(r) => r,
                // A blocking command still needs its argv below.
                None if matches!(action, Some(Action::Block { .. })) => pooled_op(store, argv),
                None => match std::mem::replace(argv_cow, Cow::Borrowed(&[])) {
                    Cow::Owned(v) => v,
                    Cow::Borrowed(a) => pooled_op(store, a),
                },
            };
            store.propagated.push((db, op));
        }
    }
    match action {
        None => Outcome::Done,
        Some(action) => action_outcome(store, client, (db, argv_cow), action, may_block),
    }
}

/// What the connection does after a command that asked for more than its reply
/// (out of line: most commands ask for nothing).
#[cold]
#[inline(never)]
fn action_outcome(
    store: &mut Store,
    client: &ClientState,
    (db, argv): (usize, &[Bytes]),
    action: Action,
    may_block: bool,
) -> Outcome {
    match action {
        Action::Close => Outcome::Close,
        Action::Monitor => Outcome::Monitor,
        Action::Shutdown(flags) => Outcome::Shutdown(flags),
        Action::Sleep(_) => Outcome::Done,
        Action::WaitReplicas {
            num,
            offset,
            timeout_ms,
        } => Outcome::WaitReplicas {
            num,
            offset,
            timeout_ms,
        },
        Action::Block {
            keys,
            timeout_ms,
            argv: stored,
        } => {
            if !may_block {
                return Outcome::Done;
            }
            let argv = stored.as_deref().unwrap_or(argv);
            block_client(store, client, (db, &keys, argv), timeout_ms)
        }
    }
}

/// A handler's error as the reply (out of line, as are the other rare paths of
/// [`call_argv`]: every command, and every `redis.call` of a script, runs through it,
/// so its common path is kept to few cache lines).
#[cold]
#[inline(never)]
fn handler_failed(server: &Server, out: &mut Reply, reply_start: usize, text: &str) {
    // A handler validates before writing, but never leave half a reply behind.
    out.buf.truncate(reply_start);
    server.stats.error_reply(text.as_bytes());
    out.error(text);
}

/// Records a command that ran over `slowlog-log-slower-than`.
#[cold]
#[inline(never)]
/// `who` is the client's id and name (SLOWLOG GET shows its address and name).
fn log_slow(
    server: &Server,
    (id, name): (ClientId, Option<Bytes>),
    (cmd, argv): (&Command, &[Bytes]),
    threshold: i64,
    elapsed: Duration,
) {
    // As Redis 7.0: EXEC (`skip_slowlog`) is not logged, the commands it ran are.
    if cmd.name == "exec" {
        return;
    }
    let max_len = server.config.read().slowlog_max_len;
    let mut log = server.slowlog.lock();
    if log.observe((threshold, max_len), cmd.name, argv, elapsed) {
        // Rare (slow commands only): fill in who ran it, as SLOWLOG GET shows.
        if let Some(e) = log.entries.front_mut() {
            if let Some(h) = server.clients.lock().get(&id) {
                e.addr = h.addr.clone();
            }
            if let Some(n) = &name {
                e.name = String::from_utf8_lossy(n).into_owned();
            }
        }
    }
}

/// Parks a client on the keys of a blocking command (its `argv` is run again when
/// one of them is served).
#[cold]
#[inline(never)]
fn block_client(
    store: &mut Store,
    client: &ClientState,
    (db, keys, argv): (usize, &[Bytes], &[Bytes]),
    timeout_ms: u64,
) -> Outcome {
    let (tx, rx) = tokio::sync::oneshot::channel();
    for k in keys {
        store
            .blocking_keys
            .entry((db, crate::util::detach(k)))
            .or_default()
            .push_back(client.id);
    }
    store.waiters.insert(
        client.id,
        Waiter {
            db,
            keys: keys.iter().map(crate::util::detach).collect(),
            argv: argv.iter().map(crate::util::detach).collect(),
            resp3: client.resp3,
            tx,
        },
    );
    Outcome::Blocked {
        rx,
        timeout_ms,
        // Redis 7.0 answers a timed-out list block with a null array for
        // every list command, BLMOVE and BRPOPLPUSH included (verified).
        null_array: true,
    }
}

/// Wraps the ops a top-level command produced in MULTI/EXEC when there is more than one.
pub fn finish_propagation(store: &mut Store, before: usize) {
    if store.propagated.len() - before > 1 {
        wrap_in_multi(store, before);
    }
}

/// Wraps the ops from index `before` (more than one) in MULTI/EXEC (out of line: most
/// commands propagate one op or none).
#[inline(never)]
fn wrap_in_multi(store: &mut Store, before: usize) {
    let first_db = store.propagated[before].0;
    let last_db = store.propagated[store.propagated.len() - 1].0;
    let multi = pooled_op(store, &[Bytes::from_static(b"MULTI")]);
    store.propagated.insert(before, (first_db, multi));
    // MULTI/EXEC go to both destinations; the ops after MULTI moved by one.
    for (i, _) in store.propagate_only.iter_mut() {
        if *i >= before {
            *i += 1;
        }
    }
    let exec = pooled_op(store, &[Bytes::from_static(b"EXEC")]);
    store.propagated.push((last_db, exec));
}

/// How many emptied op vectors [`flush_propagated`] keeps for reuse, and the largest
/// capacity it keeps (a command with many arguments frees its vector as before).
const OP_POOL_MAX: usize = 64;
const OP_POOL_CAPACITY_MAX: usize = 16;

/// A propagated op holding a copy of `argv`, in a vector of the store's pool when
/// there is one (a script's `redis.call` and MULTI/EXEC copy their op; a client's
/// own argv is moved in without one).
fn pooled_op(store: &mut Store, argv: &[Bytes]) -> Vec<Bytes> {
    let mut v = store.op_pool.pop().unwrap_or_default();
    v.extend_from_slice(argv);
    v
}

/// Keeps an argument vector (emptied) in the op pool, if it has room and the vector
/// is small.
fn recycle_op(store: &mut Store, mut argv: Vec<Bytes>) {
    if store.op_pool.len() < OP_POOL_MAX && argv.capacity() <= OP_POOL_CAPACITY_MAX {
        argv.clear();
        store.op_pool.push(argv);
    }
}

/// Hands the propagated ops to the replication stream and the AOF.
pub fn flush_propagated(server: &Arc<Server>, store: &mut Store) {
    if store.propagated.is_empty() {
        return;
    }
    // Taken out while it is fed, then put back empty: its allocation is reused by
    // the next write instead of a new one per command.
    let mut ops = std::mem::take(&mut store.propagated);
    if store.propagate_only.is_empty() {
        crate::propagate::feed(server, store, &ops);
    } else {
        let only = std::mem::take(&mut store.propagate_only);
        crate::propagate::feed_split(server, store, &ops, &only);
    }
    for (_, argv) in ops.drain(..) {
        recycle_op(store, argv);
    }
    if store.propagated.is_empty() {
        store.propagated = ops;
    }
}

/// Serves clients blocked on keys that became ready (Redis `handleClientsBlockedOnKeys`).
pub fn serve_blocked(server: &Arc<Server>, store: &mut Store) {
    let mut rounds = 0;
    while !store.ready_keys.is_empty() && rounds < 1000 {
        rounds += 1;
        let ready = std::mem::take(&mut store.ready_keys);
        for (db, key) in ready {
            // The waiters in arrival order, as they were when the key became ready.
            let queue: Vec<_> = store
                .blocking_keys
                .get(&(db, key.clone()))
                .map(|q| q.iter().copied().collect())
                .unwrap_or_default();
            for id in queue {
                // Gone meanwhile (served through another key, timed out...).
                let Some(w) = store.waiters.get(&id) else {
                    continue;
                };
                let stream_reader = crate::util::is_kw(&w.argv[0], "xread")
                    || crate::util::is_kw(&w.argv[0], "xreadgroup");
                // A missing key serves nobody, except XREADGROUP, which Redis 7.0
                // answers with an error when the stream it waits on goes away.
                if !store.dbs[db].contains(&key) && !crate::util::is_kw(&w.argv[0], "xreadgroup") {
                    continue;
                }
                let argv = w.argv.clone();
                let Some(cmd) = commands::lookup(&argv[0]) else {
                    continue;
                };
                let mut tmp = ClientState::new(id);
                tmp.db = w.db;
                tmp.resp3 = w.resp3;
                tmp.authenticated = true;
                let mut out = Reply::new(w.resp3);
                let before = store.propagated.len();
                // Served like a fresh call that must not block: if it still finds
                // nothing it produces no reply and the client keeps waiting.
                let mut ctx_client = tmp;
                let started = Mono::now();
                let outcome = call_for_waiter(server, store, &mut ctx_client, cmd, &argv, &mut out);
                finish_propagation(store, before);
                if outcome {
                    let failed = out.buf.first() == Some(&b'-');
                    let elapsed_ns = Mono::now().nanos_since(started);
                    observe_unblocked(server, store, (id, &argv), elapsed_ns, (failed, &out.buf));
                }
                if !outcome {
                    // What one list waiter could not pop, the next cannot either;
                    // stream readers wait for different things (their own group,
                    // their own ID), so each of them is tried, as in Redis.
                    if stream_reader {
                        continue;
                    }
                    break;
                }
                if let Some(w) = store.unblock(id) {
                    let _ = w.tx.send(out.buf);
                }
            }
        }
    }
}

/// Statistics for a blocked command answered from outside its own call (served,
/// refused because its key or group went away, CLIENT UNBLOCK): the call was counted
/// when it blocked; this adds `elapsed_ns`, a failed call when `failed`, counts
/// `reply` (INFO errorstats, `total_error_replies`) when it is an error, and logs
/// the command, as the client sent it (`BLPOP`, not the `LPOP` it propagates as),
/// in the slow log when `elapsed_ns` passes `slowlog-log-slower-than` (Redis's
/// `updateStatsOnUnblock`).
pub fn observe_unblocked(
    server: &Server,
    store: &mut Store,
    (id, argv): (ClientId, &[Bytes]),
    elapsed_ns: u64,
    (failed, reply): (bool, &[u8]),
) {
    server.stats.error_reply_encoded(reply);
    let Some(cmd) = argv.first().and_then(|c| commands::lookup(c)) else {
        return;
    };
    let threshold = store.hot.slowlog_log_slower_than;
    if threshold >= 0 && (elapsed_ns / 1000) as i64 >= threshold {
        let name = server
            .clients
            .lock()
            .get(&id)
            .and_then(|h| h.info.lock().name.clone());
        let elapsed = Duration::from_nanos(elapsed_ns);
        log_slow(server, (id, name), (cmd, argv), threshold, elapsed);
    }
    let Some((name, _)) = stat_name(cmd, argv) else {
        return;
    };
    let tracking = store.hot.latency_tracking;
    store
        .latency
        .observe_unblocked(tracking, (name, failed), elapsed_ns);
}

/// Runs a blocked client's command; false if it would block again.
fn call_for_waiter(
    server: &Arc<Server>,
    store: &mut Store,
    client: &mut ClientState,
    cmd: &Command,
    argv: &[Bytes],
    out: &mut Reply,
) -> bool {
    let dirty_before = store.dirty;
    store.begin_command();
    let mut ctx = Ctx::new(store, server, client);
    ctx.may_block = true;
    let res = (cmd.handler)(&mut ctx, out, argv);
    ctx.store.flush_new_keys();
    let Ctx {
        also,
        rewrite,
        no_propagate,
        action,
        ..
    } = ctx;
    // What the attempt did on the way stays done even if the waiter keeps waiting:
    // a lazily expired key was deleted and its DEL must reach replicas and the AOF.
    if !also.is_empty() {
        store.propagated.extend(also);
    }
    if matches!(action, Some(Action::Block { .. })) {
        out.buf.clear();
        return false;
    }
    if let Err(e) = res {
        // A key that became another type does not serve the waiter: like Redis, it
        // keeps waiting for a key of the type it wants.
        if e.0.starts_with("WRONGTYPE") {
            out.buf.clear();
            return false;
        }
        out.buf.clear();
        out.error(&e.0);
    }
    let db = client.db;
    if store.dirty > dirty_before {
        for pos in cmd.key_positions(argv) {
            store.touch_key(db, &argv[pos]);
        }
        if !no_propagate {
            store
                .propagated
                .push((db, rewrite.unwrap_or_else(|| argv.to_vec())));
        }
    }
    true
}

/// Sends the command to MONITOR clients in Redis's format:
/// `+1339518083.107412 [0 127.0.0.1:60866] "keys" "*"`, secrets redacted
/// ([`crate::redact`]); ADMIN commands and subcommands (CONFIG, DEBUG, ACL SETUSER...)
/// are not shown.
#[inline]
fn feed_monitors(server: &Server, client: &ClientState, cmd: &Command, argv: &[Bytes]) {
    if server
        .monitor_count
        .load(std::sync::atomic::Ordering::Relaxed)
        != 0
        && !cmd.is(flags::NO_MONITOR | flags::ADMIN)
    {
        feed_monitor_clients(server, client, cmd, argv);
    }
}

/// Shows a script-running command (EVAL, EVALSHA, FCALL and their `_RO` forms) to
/// MONITOR clients before it runs, as Redis 7.0 does: the line comes before those of
/// the commands the script calls, and a call that fails (NOSCRIPT, a bad key count,
/// an error in the script) is shown too. These commands carry `NO_MONITOR`, so the
/// dispatch does not show them again after they ran.
pub fn feed_monitors_before_script(server: &Server, client: &ClientState, argv: &[Bytes]) {
    if server
        .monitor_count
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        return;
    }
    if let Some(cmd) = argv.first().and_then(|n| commands::lookup(n)) {
        feed_monitor_clients(server, client, cmd, argv);
    }
}

/// [`feed_monitors`] once a MONITOR client is known to exist.
#[cold]
#[inline(never)]
fn feed_monitor_clients(server: &Server, client: &ClientState, cmd: &Command, argv: &[Bytes]) {
    // As in Redis 7.0 the flags are the subcommand's: ACL SETUSER, CLIENT KILL... are
    // ADMIN (not shown) while their containers are not.
    let admin_sub = argv.get(1).is_some_and(|sub| {
        commands::meta_types::meta(cmd.name)
            .and_then(|m| m.sub(sub))
            .is_some_and(|m| m.has_flag("admin"))
    });
    if admin_sub {
        return;
    }
    let mut mons = server.monitors.lock();
    if mons.is_empty() {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let addr = if client.lua {
        // A script's call, whoever ran the script.
        "lua".to_string()
    } else if client.is_master {
        "master".to_string()
    } else {
        let clients = server.clients.lock();
        let addr = clients
            .get(&client.id)
            .map(|h| h.addr.clone())
            .unwrap_or_default();
        // A Unix socket client (`<path>:0`; a TCP address never starts with '/')
        // shows as `unix:<path>`.
        match addr.strip_suffix(":0").filter(|p| p.starts_with('/')) {
            Some(path) => format!("unix:{path}"),
            None => addr,
        }
    };
    let mut line = format!(
        "+{}.{:06} [{} {}]",
        now.as_secs(),
        now.subsec_micros(),
        client.db,
        addr
    );
    for a in crate::redact::redacted(cmd.name, argv).iter() {
        line.push_str(" \"");
        line.push_str(&crate::util::repr_bytes(a));
        line.push('"');
    }
    line.push_str("\r\n");
    let limit = server.config.read().output_limits()[crate::outbuf::Class::Normal as usize];
    server.feed_monitor_line(&mut mons, Bytes::from(line), &limit);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_message_matches_redis() {
        let argv: Vec<Bytes> = vec!["foo".into(), "a".into(), "b".into()];
        assert_eq!(
            unknown_command(&argv),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        let argv: Vec<Bytes> = vec!["foo".into()];
        assert_eq!(
            unknown_command(&argv),
            "ERR unknown command 'foo', with args beginning with: "
        );
        // Each part stops at its first NUL, as a C string does.
        let argv: Vec<Bytes> = vec!["f\0oo".into(), Bytes::from_static(b"b\0\xff"), "NX".into()];
        assert_eq!(
            unknown_command(&argv),
            "ERR unknown command 'f', with args beginning with: 'b' 'NX' "
        );
    }
}
