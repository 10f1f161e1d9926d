//! Command layer: the command table (name, arity, flags, key positions, handler) and
//! the execution context handlers run in. One file per command family; each exports
//! `COMMANDS`, and [`table`] joins them. The table's flags drive arity checks,
//! READONLY rejection on replicas, OOM checks, and propagation.

pub mod acl;
pub mod bitmaps;
pub mod cluster;
pub mod command_cmd;
pub mod config_cmd;
pub mod connection;
pub mod dump;
pub mod failover;
pub mod function_lib;
pub mod functions;
pub mod geo;
pub mod hashes;
pub mod hll;
pub mod info;
pub mod keys;
pub mod keyspecs;
pub mod latency;
pub mod lists;
pub mod meta;
pub mod meta_types;
pub mod migrate;
pub mod persistence;
pub mod pubsub;
pub mod replication;
pub mod script_run;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod sort;
pub mod stream_groups;
pub mod streams;
pub mod strings;
pub mod transactions;
pub mod while_busy;
pub mod zsets;

use crate::db::{Db, EntryMut};
use crate::resp::Reply;
use crate::server::{ClientId, Server, Stats, Store};
use crate::types::Value;
use bytes::Bytes;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

/// Command flags (a subset of Redis's, with the same meaning).
pub use crate::flags;

/// A command's flags as the dispatch checks see them: EXEC also carries the flags of
/// every command in its queue (it writes if one of them writes). One rule for the
/// fence, MISCONF and min-replicas checks (CLIENT PAUSE reads [`call_flags_with_queue`]).
pub fn effective_flags(cmd: &Command, client: &ClientState) -> u32 {
    if cmd.name != "exec" {
        return cmd.flags;
    }
    let queued = client.multi.as_ref().map_or(0, |q| {
        q.iter()
            .filter_map(|argv| argv.first().and_then(|n| lookup(n)))
            .fold(0, |acc, c| acc | c.flags)
    });
    cmd.flags | queued
}

/// The flags Redis decides a call by (its `getCommandFlags`): those of the table,
/// except that EVAL, EVALSHA and FCALL (and their _RO forms) of a script or function
/// that declares flags take them from the declaration: `WRITE` unless `no-writes`,
/// never `MAY_REPLICATE` (the declaration says whether it writes). An unknown script
/// or function, or one without a shebang, keeps the table's (EVAL's `MAY_REPLICATE`).
pub fn call_flags(store: &mut Store, cmd: &Command, argv: &[Bytes]) -> u32 {
    let declared = match cmd.name {
        "eval" | "eval_ro" | "evalsha" | "evalsha_ro" => {
            scripting::declared_flags(store, cmd, argv)
        }
        "fcall" | "fcall_ro" => argv
            .get(1)
            .and_then(|n| function_lib::function_flags(store, n)),
        _ => return cmd.flags,
    };
    match declared {
        Some(f) if !f.compat => {
            let mut out =
                cmd.flags & !(flags::STALE | flags::DENYOOM | flags::WRITE | flags::MAY_REPLICATE);
            if !f.no_writes {
                out |= flags::WRITE;
                if !f.allow_oom {
                    out |= flags::DENYOOM;
                }
            }
            if f.allow_stale {
                out |= flags::STALE;
            }
            out
        }
        _ => cmd.flags,
    }
}

/// [`call_flags`] of a request, and for EXEC those of every queued command too (Redis
/// keeps them as the commands are queued).
pub fn call_flags_with_queue(
    store: &mut Store,
    client: &ClientState,
    cmd: &Command,
    argv: &[Bytes],
) -> u32 {
    let own = call_flags(store, cmd, argv);
    if cmd.name != "exec" {
        return own;
    }
    client.multi.as_ref().map_or(own, |q| {
        q.iter().fold(own, |acc, queued| {
            match queued.first().and_then(|n| lookup(n)) {
                Some(c) => acc | call_flags(store, c, queued),
                None => acc,
            }
        })
    })
}

/// Whether a stale replica (`replica-serve-stale-data no`, link down) may run the
/// command: it has the STALE flag and, for EXEC, so has every queued command (the
/// link may have gone down after they were queued).
pub fn allowed_when_stale(cmd: &Command, client: &ClientState) -> bool {
    if !cmd.is(flags::STALE) {
        return false;
    }
    cmd.name != "exec"
        || client.multi.as_ref().is_none_or(|q| {
            q.iter().all(|argv| {
                argv.first()
                    .and_then(|n| lookup(n))
                    .is_some_and(|c| c.is(flags::STALE))
            })
        })
}

/// A command error; the text carries Redis's prefix (`ERR`, `WRONGTYPE`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError(pub Cow<'static, str>);

impl CmdError {
    pub fn msg(s: impl Into<Cow<'static, str>>) -> Self {
        CmdError(s.into())
    }
}

impl std::fmt::Display for CmdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type CmdResult = Result<(), CmdError>;

/// Common errors with Redis's exact texts.
pub mod err {
    use super::CmdError;
    use std::borrow::Cow;
    pub const WRONGTYPE: CmdError = CmdError(Cow::Borrowed(
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    ));
    pub const NOT_INT: CmdError =
        CmdError(Cow::Borrowed("ERR value is not an integer or out of range"));
    pub const NOT_FLOAT: CmdError = CmdError(Cow::Borrowed("ERR value is not a valid float"));
    pub const SYNTAX: CmdError = CmdError(Cow::Borrowed("ERR syntax error"));
    pub const NO_SUCH_KEY: CmdError = CmdError(Cow::Borrowed("ERR no such key"));
    pub const OVERFLOW: CmdError =
        CmdError(Cow::Borrowed("ERR increment or decrement would overflow"));
    pub const OUT_OF_RANGE: CmdError = CmdError(Cow::Borrowed("ERR index out of range"));
    pub const DB_INDEX: CmdError = CmdError(Cow::Borrowed("ERR DB index is out of range"));
    pub const TIMEOUT: CmdError =
        CmdError(Cow::Borrowed("ERR timeout is not a float or out of range"));
    pub const NEG_TIMEOUT: CmdError = CmdError(Cow::Borrowed("ERR timeout is negative"));
    pub const INVALID_EXPIRE: CmdError =
        CmdError(Cow::Borrowed("ERR invalid expire time in 'set' command"));
}

pub type Handler = fn(&mut Ctx<'_>, &mut Reply, &[Bytes]) -> CmdResult;

/// Extracts key argument positions for commands whose keys are not a fixed range
/// (e.g. `ZUNIONSTORE dst numkeys k1 k2 ...`).
pub type KeysFn = fn(&[Bytes]) -> Vec<usize>;

/// One row of the command table.
#[derive(Clone, Copy)]
pub struct Command {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: N = exactly N args (incl. the name), -N = at least N.
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    /// Last key position; negative counts from the end (-1 = last argument).
    pub last_key: i32,
    pub step: i32,
    pub keys_fn: Option<KeysFn>,
    pub handler: Handler,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command").field("name", &self.name).finish()
    }
}

impl Command {
    /// A table row with no key arguments.
    pub const fn new(name: &'static str, arity: i32, flags: u32, handler: Handler) -> Self {
        Command {
            name,
            arity,
            flags,
            first_key: 0,
            last_key: 0,
            step: 0,
            keys_fn: None,
            handler,
        }
    }

    /// Declares the key positions (Redis `firstkey, lastkey, keystep`).
    pub const fn keys(mut self, first: i32, last: i32, step: i32) -> Self {
        self.first_key = first;
        self.last_key = last;
        self.step = step;
        self
    }

    pub const fn keys_with(mut self, f: KeysFn) -> Self {
        self.keys_fn = Some(f);
        self
    }

    pub fn is(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        (a >= 0 && argc == a as usize) || (a < 0 && argc >= (-a) as usize)
    }

    /// Positions of the key arguments in `argv`.
    pub fn key_positions(&self, argv: &[Bytes]) -> Vec<usize> {
        self.key_positions_iter(argv).collect()
    }

    /// [`Command::key_positions`] without collecting them: no allocation for a
    /// command with fixed key positions (the dispatch walks them after every write).
    pub fn key_positions_iter(&self, argv: &[Bytes]) -> KeyPositions {
        let argc = argv.len();
        let (listed, next, last, step) = match self.keys_fn {
            Some(f) => (f(argv), 1, 0, 1),
            None if self.first_key <= 0 => (Vec::new(), 1, 0, 1),
            None => {
                let last = if self.last_key < 0 {
                    argc as i32 + self.last_key
                } else {
                    self.last_key
                };
                let step = self.step.max(1) as usize;
                (
                    Vec::new(),
                    self.first_key as usize,
                    last.max(0) as usize,
                    step,
                )
            }
        };
        KeyPositions {
            listed: listed.into_iter(),
            next,
            last,
            step,
            argc,
        }
    }
}

/// The key positions of a command's argv ([`Command::key_positions_iter`]): those a
/// key function listed, then `next..=last` by `step`, all below `argc`. A plain
/// loop: the chained, stepped and filtered iterator it replaces took ~230
/// instructions to yield the one key of an INCR.
#[derive(Debug)]
pub struct KeyPositions {
    listed: std::vec::IntoIter<usize>,
    next: usize,
    last: usize,
    step: usize,
    argc: usize,
}

impl Iterator for KeyPositions {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if let Some(i) = self.listed.by_ref().find(|&i| i < self.argc) {
            return Some(i);
        }
        let i = self.next;
        // The range only grows: past `argc` nothing more can qualify.
        if i > self.last || i >= self.argc {
            return None;
        }
        self.next = i.saturating_add(self.step);
        if self.next == i {
            self.last = 0;
            self.next = 1;
        }
        Some(i)
    }
}

/// Command families: (COMMAND DOCS group, ACL category, commands). The one list
/// both the dispatch table and COMMAND introspection are built from.
pub const FAMILIES: &[(&str, &str, &[Command])] = &[
    ("server", "", config_cmd::COMMANDS),
    ("connection", "@connection", connection::COMMANDS),
    ("hash", "@hash", hashes::COMMANDS),
    ("generic", "@keyspace", keys::COMMANDS),
    ("list", "@list", lists::COMMANDS),
    ("pubsub", "@pubsub", pubsub::COMMANDS),
    ("server", "", server::COMMANDS),
    ("set", "@set", sets::COMMANDS),
    ("string", "@string", strings::COMMANDS),
    ("transactions", "@transaction", transactions::COMMANDS),
    ("sorted-set", "@sortedset", zsets::COMMANDS),
    ("server", "", persistence::COMMANDS),
    ("server", "", replication::COMMANDS),
    ("bitmap", "@bitmap", bitmaps::COMMANDS),
    ("generic", "@keyspace", dump::COMMANDS),
    ("generic", "@keyspace", migrate::COMMANDS),
    ("hyperloglog", "@hyperloglog", hll::COMMANDS),
    ("generic", "@keyspace", sort::COMMANDS),
    ("cluster", "", cluster::COMMANDS),
    ("geo", "@geo", geo::COMMANDS),
    ("stream", "@stream", stream_groups::COMMANDS),
    ("stream", "@stream", streams::COMMANDS),
    ("server", "", failover::COMMANDS),
    ("scripting", "@scripting", scripting::COMMANDS),
    ("server", "", latency::COMMANDS),
    ("scripting", "@scripting", functions::COMMANDS),
    ("server", "", acl::COMMANDS),
];

/// All commands, by lower-case name.
pub fn table() -> &'static HashMap<&'static str, Command, crate::types::Hasher> {
    // ahash rather than SipHash: this lookup runs once per command.
    // Not state: built once from the constant FAMILIES list and never changed after,
    // a lookup index over compile-time data (every server in the process shares it).
    static TABLE: OnceLock<HashMap<&'static str, Command, crate::types::Hasher>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut m = HashMap::default();
        for (_, _, family) in FAMILIES {
            for c in family.iter() {
                let mut c = *c;
                if meta_types::meta(c.name).is_some_and(|m| !m.subs.is_empty()) {
                    c.flags |= flags::CONTAINER;
                }
                m.insert(c.name, c);
            }
        }
        m
    })
}

/// Looks a command up by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static Command> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let lower = std::str::from_utf8(&buf[..name.len()]).ok()?;
    table().get(lower)
}

/// Per-connection state that commands read and change.
#[derive(Debug)]
pub struct ClientState {
    pub id: ClientId,
    pub db: usize,
    pub resp3: bool,
    pub authenticated: bool,
    pub name: Option<Bytes>,
    /// Inside MULTI: the queued commands.
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// A queued command had an error: EXEC answers EXECABORT.
    pub multi_error: bool,
    /// WATCHed keys and the flag `touch_key` raises when one of them changes.
    pub watched: Vec<(usize, Bytes)>,
    pub watch_dirty: Arc<AtomicBool>,
    /// Pub/Sub subscriptions (channels, patterns).
    pub channels: Vec<Bytes>,
    pub patterns: Vec<Bytes>,
    /// Shard channel subscriptions (SSUBSCRIBE), counted apart from the others.
    pub shard_channels: Vec<Bytes>,
    /// This connection is the link from our master: its commands apply to expired
    /// keys and bypass READONLY.
    pub is_master: bool,
    /// This connection is a replica that sent SYNC/PSYNC.
    pub is_replica: bool,
    /// The client a script's `redis.call` runs as (MONITOR shows it as `lua`).
    pub lua: bool,
    /// The clock this client's commands check expiry against while it is frozen, 0
    /// when it is not (see [`Ctx::expiry_now_ms`]): for the script client, when its
    /// script started; for a client running EXEC, when EXEC started (Redis 7.0 takes
    /// one time for the expiry decisions of a whole top-level call).
    pub frozen_time_ms: i64,
    /// The connection's read buffer as the running batch of requests began (this
    /// request's bytes included): CLIENT LIST/INFO's `qbuf` of the calling client,
    /// as Redis shows its query buffer while a command runs.
    pub query_buf_len: usize,
    pub reply_off: bool,
    /// The request a CLIENT PAUSE holds back, handed from `exec::process` to the
    /// connection with `Outcome::Paused`.
    pub paused_request: Option<Vec<Bytes>>,
    /// CLIENT REPLY SKIP was the previous command: this one's reply is dropped
    /// (unless it is CLIENT REPLY ON, which clears this). Redis's `CLIENT_REPLY_SKIP`.
    pub reply_skip: bool,
    /// CLIENT REPLY SKIP ran: the next command gets [`ClientState::reply_skip`].
    /// Redis's `CLIENT_REPLY_SKIP_NEXT`.
    pub reply_skip_next: bool,
    /// Set by (P|S)(UN)SUBSCRIBE: their confirmations bypass CLIENT REPLY OFF|SKIP.
    pub last_reply_is_push: bool,
    /// Where the command's reply starts in the output buffer when tracking messages
    /// were written ahead of it (`exec::write_ahead`): CLIENT REPLY OFF|SKIP keeps them.
    pub reply_start: Option<usize>,
    pub no_evict: bool,
    pub lib_name: Option<String>,
    pub lib_ver: Option<String>,
    /// Set on writes: replication offset after this client's last write (WAIT).
    pub woff: i64,
    /// Where Pub/Sub messages for this connection are sent.
    pub msg_tx: Option<crate::pubsub::MsgSender>,
    /// What a would-be replica announced with REPLCONF (port, ip, capabilities).
    pub repl_conf: Option<Box<crate::replication::ReplConf>>,
    /// The last command looked up by name (clients mostly repeat one command).
    pub cmd_cache: CmdCache,
    /// The ACL user this connection runs as (none for internal clients).
    pub user: crate::acl::Session,
}

/// Remembers the last command name a client sent, exactly as spelled, and the
/// table entry it names: a repeat costs one short compare instead of a lowercase
/// copy and a hash lookup.
#[derive(Debug, Default)]
pub struct CmdCache {
    name: [u8; 16],
    len: u8,
    cmd: Option<&'static Command>,
    /// The same name as static bytes, when it is spelled all in lower or all in
    /// upper case ([`static_name`]); empty otherwise.
    spelled: &'static [u8],
}

impl CmdCache {
    /// `lookup(name)`, answered from the cache when `name` is the same bytes as last time.
    pub fn lookup(&mut self, name: &[u8]) -> Option<&'static Command> {
        if let Some(cmd) = self.cmd {
            // The parser's handle on `spelled` itself (the usual case): the same
            // bytes without comparing them.
            let same_bytes = std::ptr::eq(name, self.spelled) && !name.is_empty();
            if same_bytes || (name.len() == self.len as usize && name == &self.name[..name.len()]) {
                return Some(cmd);
            }
        }
        let cmd = lookup(name)?;
        if name.len() <= self.name.len() {
            self.name[..name.len()].copy_from_slice(name);
            self.len = name.len() as u8;
            self.cmd = Some(cmd);
            self.spelled = static_name(cmd, name).unwrap_or_default();
        }
        Some(cmd)
    }

    /// The last command name looked up, as static bytes (empty when it had mixed
    /// case or was not cached): the connection's parser hands it out as the next
    /// requests' first argument when they spell the same name, a handle that costs
    /// no reference count (docs/benchmarks.md, optimisation log entry 42).
    pub fn spelled(&self) -> &'static [u8] {
        self.spelled
    }
}

/// Static bytes equal to `name`, when it is `cmd`'s name in lower case or in upper
/// case (what clients send); None for any other spelling.
pub fn static_name(cmd: &'static Command, name: &[u8]) -> Option<&'static [u8]> {
    if name == cmd.name.as_bytes() {
        return Some(cmd.name.as_bytes());
    }
    // Not state: the upper-case spellings of the constant table's names, built once.
    static UPPER: OnceLock<HashMap<&'static str, Box<str>, crate::types::Hasher>> = OnceLock::new();
    let upper = UPPER.get_or_init(|| {
        table()
            .keys()
            .map(|&k| (k, k.to_ascii_uppercase().into_boxed_str()))
            .collect()
    });
    let up: &'static str = upper.get(cmd.name)?;
    (name == up.as_bytes()).then_some(up.as_bytes())
}

impl ClientState {
    pub fn new(id: ClientId) -> Self {
        ClientState {
            id,
            db: 0,
            resp3: false,
            authenticated: false,
            name: None,
            multi: None,
            multi_error: false,
            watched: Vec::new(),
            watch_dirty: Arc::new(AtomicBool::new(false)),
            channels: Vec::new(),
            patterns: Vec::new(),
            shard_channels: Vec::new(),
            is_master: false,
            is_replica: false,
            lua: false,
            frozen_time_ms: 0,
            reply_off: false,
            query_buf_len: 0,
            paused_request: None,
            reply_skip: false,
            reply_skip_next: false,
            last_reply_is_push: false,
            reply_start: None,
            no_evict: false,
            lib_name: None,
            lib_ver: None,
            woff: 0,
            msg_tx: None,
            repl_conf: None,
            cmd_cache: CmdCache::default(),
            user: crate::acl::Session::default(),
        }
    }

    /// Every subscription: non-zero puts a RESP2 client in Pub/Sub mode.
    pub fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }

    /// The count (P)(UN)SUBSCRIBE confirmations report: channels and patterns only.
    pub fn channel_subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }
}

/// What a handler asks the connection to do after the store lock is released.
#[derive(Debug)]
pub enum Action {
    /// Close after writing the reply (QUIT, CLIENT KILL of self).
    Close,
    /// Block until a key is served or the timeout (ms, 0 = forever) passes. `argv`,
    /// when set, is the command re-run for the waiter instead of its own (XREAD
    /// stores `$` resolved to the IDs it saw).
    Block {
        keys: Vec<Bytes>,
        timeout_ms: u64,
        argv: Option<Vec<Bytes>>,
    },
    /// Enter MONITOR mode.
    Monitor,
    /// Stop the server (SHUTDOWN with these flags); the client waits for the outcome.
    Shutdown(crate::server::ShutdownFlags),
    /// WAIT: block until `num` replicas acknowledged `offset` or the timeout (ms, 0 =
    /// forever) passes, then reply with the count.
    WaitReplicas {
        num: i64,
        offset: i64,
        timeout_ms: u64,
    },
    /// Sleep without holding the lock (never used for DEBUG SLEEP, which blocks all like Redis).
    Sleep(std::time::Duration),
}

/// The context a handler runs in: the locked store, the calling client, time.
pub struct Ctx<'a> {
    pub store: &'a mut Store,
    pub server: &'a Arc<Server>,
    pub client: &'a mut ClientState,
    /// Command time (Redis caches one `mstime()` per command).
    pub now_ms: i64,
    /// The time keys are checked for expiry against: `now_ms`, except for a script's
    /// commands, which see the time the script started, and the commands EXEC runs,
    /// which see the time EXEC started (as Redis 7.0: a key expires before a script or
    /// a transaction or after it, never half-way through, so its replicas agree).
    pub expiry_now_ms: i64,
    /// LRU clock at command time (seconds since start), stamped on accessed keys.
    pub lru: u32,
    /// Ops this command propagates before its own argv (lazy-expire DELs...).
    pub also: Vec<(usize, Vec<Bytes>)>,
    /// Replaces the command's own argv in the propagated stream.
    pub rewrite: Option<Vec<Bytes>>,
    /// Suppresses propagation of the command's own argv.
    pub no_propagate: bool,
    /// False inside MULTI/EXEC and when serving a blocked client: blocking commands
    /// then behave as if their timeout expired.
    pub may_block: bool,
    pub action: Option<Action>,
    /// A key (by its place among the command's keys) the write left unchanged, so
    /// WATCH and client-side caching are not told of it: SMOVE of a member the
    /// destination already holds (Redis signals only the keys it modified).
    pub unchanged_key: Option<usize>,
    /// Failed calls INFO commandstats counts for this command beside its own error
    /// reply: a script whose result holds error replies inside an array (Redis counts
    /// one for all the nested errors it counts in errorstats, and one for each it
    /// does not, having counted it when the script's command answered it).
    pub nested_failures: u32,
    /// Under an LFU policy: the keys (hashed with their db) this command already
    /// counted an access to. Handlers often look a key up twice (type check, then
    /// write); Redis counts one access per command there.
    lfu_seen: Vec<u64>,
}

impl<'a> Ctx<'a> {
    /// The configuration, read-locked (what most handlers need from the server).
    pub fn config(&self) -> parking_lot::RwLockReadGuard<'a, crate::config::Config> {
        self.server.config.read()
    }

    /// The client table (CLIENT LIST / KILL / INFO).
    pub fn clients(
        &self,
    ) -> parking_lot::MutexGuard<
        'a,
        std::collections::HashMap<crate::client::ClientId, Arc<crate::client::ClientHandle>>,
    > {
        self.server.clients.lock()
    }

    /// The slow log (SLOWLOG).
    pub fn slowlog(&self) -> parking_lot::MutexGuard<'a, crate::slowlog::SlowLog> {
        self.server.slowlog.lock()
    }

    pub fn new(store: &'a mut Store, server: &'a Arc<Server>, client: &'a mut ClientState) -> Self {
        Self::at(store, server, client, crate::util::Mono::now())
    }

    /// A context for a command that started at `t` (one clock reading per command).
    pub fn at(
        store: &'a mut Store,
        server: &'a Arc<Server>,
        client: &'a mut ClientState,
        t: crate::util::Mono,
    ) -> Self {
        let (now_ms, lru) = server.clock_at(t);
        // Under an LFU policy, keys created by this command start with a fresh counter.
        let lru = match store.hot.lfu {
            Some(_) => crate::evict::Lfu::init(now_ms),
            None => lru,
        };
        Ctx {
            store,
            server,
            client,
            now_ms,
            expiry_now_ms: now_ms,
            lru,
            also: Vec::new(),
            rewrite: None,
            no_propagate: false,
            may_block: true,
            action: None,
            unchanged_key: None,
            nested_failures: 0,
            lfu_seen: Vec::new(),
        }
    }

    /// The selected database.
    pub fn db(&mut self) -> &mut Db {
        &mut self.store.dbs[self.client.db]
    }

    pub fn db_ref(&self) -> &Db {
        &self.store.dbs[self.client.db]
    }

    /// Records `n` changes to the dataset (drives propagation and save points).
    pub fn dirty(&mut self, n: u64) {
        self.store.dirty += n;
    }

    /// Raises keyspace event `event` of `class` (`crate::notify::STRING`...) on `key`
    /// in the selected database. Call it where Redis calls `notifyKeyspaceEvent`,
    /// after the change, with Redis's event name; it costs one AND when the class is off.
    #[inline]
    pub fn notify(&mut self, class: crate::notify::Classes, event: &str, key: &[u8]) {
        let db = self.client.db;
        self.store.notify(class, event, key, db);
    }

    /// Propagates `argv` in `db` as part of this command (before its own argv).
    pub fn also_propagate(&mut self, db: usize, argv: Vec<Bytes>) {
        self.also.push((db, argv));
    }

    /// Whether a key is logically expired for this client, deleting it (and
    /// propagating DEL) when this server is a master. Redis `expireIfNeeded`.
    pub fn expire_if_needed(&mut self, key: &[u8]) -> bool {
        self.expire_if_needed_as(key, false)
    }

    /// [`Ctx::expire_if_needed`]; `for_write`: a write is about to replace the key, so
    /// a writable replica deletes it too (and propagates the DEL to its own replicas
    /// and AOF), as Redis's write lookups do: the new value must not inherit the
    /// expired key's TTL.
    fn expire_if_needed_as(&mut self, key: &[u8], for_write: bool) -> bool {
        let db = self.client.db;
        let Some(at) = self.store.dbs[db].expire_of(key) else {
            return false;
        };
        if at > self.expiry_now_ms {
            return false;
        }
        self.expired(db, key, for_write)
    }

    /// [`Ctx::expire_if_needed_as`] for a key past its TTL (out of line: the common
    /// case, a live key, stays small enough to inline into the lookups).
    #[cold]
    #[inline(never)]
    fn expired(&mut self, db: usize, key: &[u8], for_write: bool) -> bool {
        // The master's commands see every key as alive: the master decides expiry.
        if self.client.is_master {
            return false;
        }
        if (self.store.is_replica || self.store.repl.fenced) && !for_write {
            return true;
        }
        // As Redis: a CLIENT PAUSE keeps the dataset as it is (the key is deleted
        // after the pause, or by the new primary after a failover). A write that
        // runs anyway (later in the EXEC that started the pause) still deletes the
        // key it is about to replace, so the new value does not inherit its TTL.
        if !for_write && self.server.client_pause.is_paused() {
            return true;
        }
        self.delete_expired(db, key);
        true
    }

    /// Deletes an expired key on a master and propagates the deletion.
    pub fn delete_expired(&mut self, db: usize, key: &[u8]) {
        if self.store.dbs[db].remove(key).is_some() {
            Stats::incr(&self.server.stats.expired_keys, 1);
            let lazy = self.server.config.read().lazyfree_lazy_expire;
            let cmd: &'static [u8] = if lazy { b"UNLINK" } else { b"DEL" };
            self.also.push((
                db,
                vec![Bytes::from_static(cmd), Bytes::copy_from_slice(key)],
            ));
            self.store.dirty += 1;
            self.store
                .notify(crate::notify::EXPIRED, "expired", key, db);
            self.store.touch_expired_key(db, key);
        }
    }

    /// Looks a key up for reading (expired = missing); counts hits/misses.
    pub fn lookup_read(&mut self, key: &[u8]) -> Option<EntryMut<'_>> {
        let stats = &self.server.stats;
        if self.expire_if_needed(key) {
            Stats::incr(&stats.keyspace_misses, 1);
            self.notify(crate::notify::KEY_MISS, "keymiss", key);
            return None;
        }
        let lru = self.lru;
        let db = self.client.db;
        // A miss raises `keymiss`, which needs the store again: only then is the key
        // looked up twice (`contains`, then `entry_mut`).
        if self.store.hot.notify_classes & crate::notify::KEY_MISS != 0
            && !self.store.dbs[db].contains(key)
        {
            Stats::incr(&stats.keyspace_misses, 1);
            self.notify(crate::notify::KEY_MISS, "keymiss", key);
            return None;
        }
        let (lfu, now_ms) = (self.lfu_first_access(key), self.now_ms);
        let stamp = lfu.is_some() || self.store.hot.lfu.is_none();
        match self.store.dbs[db].entry_mut(key) {
            Some(e) => {
                Stats::incr(&stats.keyspace_hits, 1);
                if stamp {
                    e.meta.set_lru(touched(e.meta.lru(), lru, lfu, now_ms));
                }
                Some(e)
            }
            None => {
                Stats::incr(&stats.keyspace_misses, 1);
                None
            }
        }
    }

    /// Looks a key up for writing (expired = missing, and deleted, on a writable
    /// replica too).
    pub fn lookup_write(&mut self, key: &[u8]) -> Option<EntryMut<'_>> {
        if self.expire_if_needed_as(key, true) {
            return None;
        }
        let (lru, lfu, now_ms) = (self.lru, self.lfu_first_access(key), self.now_ms);
        let stamp = lfu.is_some() || self.store.hot.lfu.is_none();
        let e = self.db().entry_mut(key)?;
        if stamp {
            e.meta.set_lru(touched(e.meta.lru(), lru, lfu, now_ms));
        }
        Some(e)
    }

    /// Under an LFU policy, an overwritten key keeps its counter after counting the
    /// write as an access (Redis `setKey`: `lookupKeyWrite`, then `dbOverwrite`).
    pub fn lfu_touch_before_overwrite(&mut self, key: &[u8]) {
        if self.store.hot.lfu.is_some() {
            let _ = self.lookup_write(key);
        }
    }

    /// The LFU parameters if this is the command's first access to `key` under an LFU
    /// policy (then remembered); None otherwise.
    #[inline]
    fn lfu_first_access(&mut self, key: &[u8]) -> Option<crate::evict::Lfu> {
        let lfu = self.store.hot.lfu?;
        self.lfu_first_access_of(key, lfu)
    }

    /// [`Self::lfu_first_access`] under an LFU policy (out of line: with the default
    /// policy every lookup skips it on one test).
    #[cold]
    #[inline(never)]
    fn lfu_first_access_of(
        &mut self,
        key: &[u8],
        lfu: crate::evict::Lfu,
    ) -> Option<crate::evict::Lfu> {
        let h = std::hash::BuildHasher::hash_one(&crate::types::Hasher, (self.client.db, key));
        if self.lfu_seen.contains(&h) {
            return None;
        }
        self.lfu_seen.push(h);
        Some(lfu)
    }

    /// The value for reading, or None if missing/expired.
    pub fn get(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.lookup_read(key).map(|e| e.value)
    }

    /// The value for writing, or None if missing/expired.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.lookup_write(key).map(|e| e.value)
    }

    /// Whether a live key exists (no hit/miss accounting).
    pub fn exists(&mut self, key: &[u8]) -> bool {
        !self.expire_if_needed(key) && self.db_ref().contains(key)
    }

    /// Sets a key, dropping its TTL.
    pub fn set(&mut self, key: impl AsRef<[u8]>, value: Value) {
        self.lfu_touch_before_overwrite(key.as_ref());
        let lru = self.lru;
        let db = self.client.db;
        self.store.dbs[db].set(key, value, lru);
    }

    /// Deletes a live key; true if it existed.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        if self.expire_if_needed(key) {
            return false;
        }
        self.db().remove(key).is_some()
    }

    /// Deletes `key` if its container value became empty (Redis removes empty keys),
    /// raising the `del` event as Redis does; true if it was deleted. Call it after
    /// the command's own event.
    pub fn delete_if_empty(&mut self, key: &[u8]) -> bool {
        let empty = self
            .db_ref()
            .entry(key)
            .is_some_and(|e| e.value.is_empty_container());
        if empty {
            self.db().remove(key);
            self.notify(crate::notify::GENERIC, "del", key);
        }
        empty
    }
}

/// A key's LRU/LFU field after an access: the command's LRU clock, or under an LFU
/// policy its counter incremented.
#[inline]
fn touched(old: u32, lru: u32, lfu: Option<crate::evict::Lfu>, now_ms: i64) -> u32 {
    match lfu {
        Some(l) => l.touch(old, now_ms),
        None => lru,
    }
}

/// Parses an integer argument (`ERR value is not an integer or out of range`).
pub fn arg_i64(a: &[u8]) -> Result<i64, CmdError> {
    crate::resp::parse_i64(a).ok_or(err::NOT_INT)
}

/// Parses a float argument like Redis's `getDoubleFromObject` (`inf`, `-inf`,
/// `+inf` accepted, NaN and trailing garbage rejected).
pub fn arg_f64(a: &[u8]) -> Result<f64, CmdError> {
    parse_f64(a).ok_or(err::NOT_FLOAT)
}

pub fn parse_f64(a: &[u8]) -> Option<f64> {
    if let Some(v) = plain_integer(a) {
        return Some(v);
    }
    let s = std::str::from_utf8(a).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    // Compared in place: a lowercased copy cost an allocation per parsed score.
    let word = |w: &[&str]| w.iter().any(|w| s.eq_ignore_ascii_case(w));
    let v = if word(&["inf", "+inf", "infinity", "+infinity"]) {
        f64::INFINITY
    } else if word(&["-inf", "-infinity"]) {
        f64::NEG_INFINITY
    } else {
        // strtod sets ERANGE on overflow and on underflow of a nonzero literal to zero;
        // Redis refuses both.
        let (v, nonzero) = match s.parse::<f64>() {
            Ok(v) => {
                let mantissa = s.split(['e', 'E']).next().unwrap_or("");
                (v, mantissa.bytes().any(|c| matches!(c, b'1'..=b'9')))
            }
            Err(_) => {
                let h = hex_float(a)?;
                (h.to_f64(), h.mant != 0)
            }
        };
        if v.is_infinite() || (v == 0.0 && nonzero) {
            return None;
        }
        v
    };
    if v.is_nan() {
        return None;
    }
    Some(v)
}

/// A C99 hexadecimal float literal, `[+-]0x<hex digits>[.<hex digits>][p[+-]<decimal>]`,
/// which `strtod` and `strtold` (and so Redis's float arguments) accept: the value is
/// `mant * 2^exp2`, exactly, with `sticky` set when nonzero digits beyond the 120 bits
/// kept in `mant` were dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HexFloat {
    pub neg: bool,
    pub mant: u128,
    pub exp2: i64,
    pub sticky: bool,
}

/// Parses a whole argument as a [`HexFloat`]; `None` if it is not one (or has anything
/// after it, which `strtod` would leave unread and Redis then refuses).
pub fn hex_float(a: &[u8]) -> Option<HexFloat> {
    let (neg, rest) = match a.split_first() {
        Some((b'-', r)) => (true, r),
        Some((b'+', r)) => (false, r),
        _ => (false, a),
    };
    let rest = rest
        .strip_prefix(b"0x")
        .or_else(|| rest.strip_prefix(b"0X"))?;
    let (mut mant, mut exp2, mut sticky) = (0u128, 0i64, false);
    let (mut digits, mut dot, mut i) = (0usize, false, 0usize);
    while let Some(&c) = rest.get(i) {
        if c == b'.' && !dot {
            dot = true;
        } else if let Some(d) = (c as char).to_digit(16) {
            digits += 1;
            if mant >> 120 == 0 {
                mant = mant << 4 | u128::from(d);
                exp2 -= if dot { 4 } else { 0 };
            } else {
                sticky |= d != 0;
                exp2 += if dot { 0 } else { 4 };
            }
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if let Some(&p) = rest.get(i) {
        if p | 0x20 != b'p' {
            return None;
        }
        let e = &rest[i + 1..];
        let (eneg, edigits) = match e.split_first() {
            Some((b'-', r)) => (true, r),
            Some((b'+', r)) => (false, r),
            _ => (false, e),
        };
        if edigits.is_empty() || !edigits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // Far beyond any float's range either way: saturate.
        let ev = edigits
            .iter()
            .fold(0i64, |n, &c| (n * 10 + i64::from(c - b'0')).min(1 << 40));
        exp2 += if eneg { -ev } else { ev };
    }
    Some(HexFloat {
        neg,
        mant,
        exp2,
        sticky,
    })
}

impl HexFloat {
    /// The nearest f64 (ties to even, subnormals included); infinite on overflow and
    /// zero on underflow, as `strtod` returns them.
    pub fn to_f64(&self) -> f64 {
        let sign = if self.neg { -1.0 } else { 1.0 };
        if self.mant == 0 {
            return sign * 0.0;
        }
        let len = i64::from(128 - self.mant.leading_zeros());
        // The binary exponent of the leading bit, and how many bits an f64 keeps there.
        let lead = self.exp2 + len - 1;
        if lead > 1023 {
            return sign * f64::INFINITY;
        }
        let keep = if lead >= -1022 {
            53
        } else {
            53 - (-1022 - lead)
        };
        let drop = len - keep;
        let (q, e) = if drop <= 0 {
            (self.mant, self.exp2)
        } else if drop > 127 {
            return sign * 0.0;
        } else {
            let q = self.mant >> drop;
            let rem = self.mant & ((1u128 << drop) - 1);
            let half = 1u128 << (drop - 1);
            let up = rem > half || (rem == half && (self.sticky || q & 1 == 1));
            (q + u128::from(up), self.exp2 + drop)
        };
        // q < 2^54 is exact in an f64; scaling by powers of two in steps keeps every
        // intermediate exact, so only the final product can overflow.
        let mut v = q as f64;
        let mut e = e;
        while e > 1000 {
            v *= 2f64.powi(1000);
            e -= 1000;
        }
        while e < -1000 {
            v *= 2f64.powi(-1000);
            e += 1000;
        }
        sign * v * 2f64.powi(e as i32)
    }
}

/// `-?[0-9]{1,15}` read directly (scores are mostly sent this way): up to 15
/// digits are exact in an f64, so this is what the general parser would return.
fn plain_integer(a: &[u8]) -> Option<f64> {
    let (neg, digits) = match a.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, a),
    };
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(c - b'0');
    }
    let v = n as f64;
    Some(if neg { -v } else { v })
}

pub use crate::util::is_kw;

/// An argument as Redis prints it in an error with `%.*s`: a C string, so up to its
/// first NUL byte, and at most `max` bytes.
pub fn c_string(a: &[u8], max: usize) -> String {
    let a = a.split(|&c| c == 0).next().unwrap_or(&[]);
    String::from_utf8_lossy(&a[..a.len().min(max)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_in_one_case_are_cached_as_static_bytes() {
        let mut cache = CmdCache::default();
        for (sent, static_bytes) in [
            (&b"LPUSH"[..], true),
            (b"lpush", true),
            (b"LPush", false),
            (b"CLIENT", true),
            (b"nosuchcommand", false),
        ] {
            let found = cache.lookup(sent).is_some();
            assert_eq!(found, sent != b"nosuchcommand");
            if found {
                let spelled = cache.spelled();
                assert_eq!(!spelled.is_empty(), static_bytes, "{sent:?}");
                if static_bytes {
                    assert_eq!(spelled, sent);
                }
            }
        }
        // An unknown name leaves the last known one in place.
        assert_eq!(cache.spelled(), b"CLIENT");
    }

    #[test]
    fn hexadecimal_floats_parse_as_strtod_reads_them() {
        let f = |a: &str| parse_f64(a.as_bytes());
        assert_eq!(f("0x10"), Some(16.0));
        assert_eq!(f("-0X1.8p1"), Some(-3.0));
        assert_eq!(f("0x.8"), Some(0.5));
        assert_eq!(f("+0x1p-2"), Some(0.25));
        assert_eq!(f("0x1p-1074"), Some(f64::from_bits(1)));
        assert_eq!(f("0x1.fffffffffffff8p0"), Some(2.0));
        assert_eq!(f("0x1.fffffffffffffp1023"), Some(f64::MAX));
        // Overflow and underflow are ERANGE, which Redis refuses.
        for bad in [
            "0x1p1024",
            "0x1p-1080",
            "0x",
            "0x.",
            "0xg",
            "0x1p",
            "0x1p+",
            " 0x1",
            "0x1 ",
            "0x1.2.3",
        ] {
            assert_eq!(f(bad), None, "{bad}");
        }
        assert_eq!(f("0x0p99999999999999"), Some(0.0));
    }

    #[test]
    fn plain_integers_parse_as_the_general_float_parser_does() {
        for a in [
            "0",
            "-0",
            "7",
            "-7",
            "000000000022",
            "999999999999999",
            "-999999999999999",
        ] {
            let want: f64 = a.parse().expect("valid float");
            let got = plain_integer(a.as_bytes()).expect("takes the fast path");
            assert_eq!(got.to_bits(), want.to_bits(), "{a}");
            assert_eq!(
                parse_f64(a.as_bytes()).map(f64::to_bits),
                Some(want.to_bits())
            );
        }
        // Longer or signed-plus or non-digit inputs go to the general parser.
        for a in ["1000000000000000", "+5", "-", "", "1.5", "1e3", " 1", "1 "] {
            assert_eq!(plain_integer(a.as_bytes()), None, "{a}");
        }
        assert_eq!(parse_f64(b"1000000000000000"), Some(1e15));
        assert_eq!(parse_f64(b"+5"), Some(5.0));
        assert_eq!(parse_f64(b"-"), None);
    }

    #[test]
    fn every_command_has_a_lowercase_name_and_sane_arity() {
        for (name, c) in table() {
            assert_eq!(*name, c.name);
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(c.arity != 0, "{} has arity 0", c.name);
            assert!(
                !(c.is(flags::WRITE) && c.is(flags::READONLY)),
                "{} is both WRITE and READONLY",
                c.name
            );
        }
    }

    #[test]
    fn key_positions_follow_first_last_step() {
        let h: Handler = |_, _, _| Ok(());
        let argv: Vec<Bytes> = ["mset", "a", "1", "b", "2"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        let c = Command::new("mset", -3, flags::WRITE, h).keys(1, -1, 2);
        assert_eq!(c.key_positions(&argv), vec![1, 3]);
        let c = Command::new("get", 2, flags::READONLY, h).keys(1, 1, 1);
        assert_eq!(c.key_positions(&argv[..2]), vec![1]);
    }

    #[test]
    fn float_arguments_parse_like_redis() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b"1.5x"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b""), None);
        assert_eq!(parse_f64(b"1e400"), None);
        assert_eq!(parse_f64(b"1e-400"), None);
        assert_eq!(parse_f64(b"0e5"), Some(0.0));
    }
}
