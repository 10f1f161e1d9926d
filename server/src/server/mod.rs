//! Shared server state.
//!
//! Concurrency model: connections run as tokio tasks on a multi-threaded runtime and do
//! their socket I/O in parallel; everything that must have one total order (the
//! keyspace, blocked clients, Pub/Sub routing, WATCH bookkeeping, the replication
//! stream) lives in [`Store`] behind one mutex. A connection takes the lock once per
//! batch of pipelined commands. The lock is never held across an `.await`.

pub mod aof_file;
pub mod aof_writer;
pub mod backlog;
pub mod busy;
pub mod error_stats;
pub mod migrate_sockets;
pub mod persist_state;
pub mod repl;
pub mod shutdown_state;
pub mod sync_stream;

use crate::config::Config;
use crate::db::Db;
use crate::pubsub::PubSub;
use crate::util::Mono;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use crate::client::{ClientHandle, ClientId, ClientInfo};

/// Clients watching one key, each with its "dirty CAS" flag.
pub type Watchers = Vec<(ClientId, Arc<AtomicBool>)>;

pub use crate::util::{now_ms, random_hex40};
pub use shutdown_state::{stopping, ShutdownFlags, ShutdownRequest};

/// Counters reported by INFO stats; atomics because every connection bumps them.
#[derive(Debug, Default)]
pub struct Stats {
    pub total_connections_received: AtomicU64,
    pub total_commands_processed: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub expired_keys: AtomicU64,
    pub evicted_keys: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub total_error_replies: AtomicU64,
    pub unexpected_error_replies: AtomicU64,
    pub pubsub_messages: AtomicU64,
    /// The most `used_memory` seen (INFO `used_memory_peak`; not reset by CONFIG
    /// RESETSTAT, as in Redis). Sampled every 100 ms and at each INFO, so a spike
    /// shorter than that between two samples is missed.
    pub used_memory_peak: AtomicU64,
    /// INFO errorstats. A lock, not atomics: the set of prefixes grows, and only
    /// error replies take it.
    pub errors: Mutex<error_stats::ErrorStats>,
}

impl Stats {
    pub fn incr(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// `incr` for a counter that only holders of the store write (the `&mut Store`
    /// borrow is the proof; CONFIG RESETSTAT's reset runs as a command, so under it
    /// too): a plain load and store instead of a locked add, which as a full barrier
    /// cost about 2.5 % of a pipelined LPUSH's user time when counting every command
    /// (docs/benchmarks.md, optimisation log entry 42). Readers that do not hold the
    /// store (INFO, the metrics endpoint) still see one value or the other.
    pub fn incr_held(_store: &mut Store, c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Counts an error reply (`total_error_replies` and INFO errorstats), `text`
    /// being the reply without its leading `-` (`ERR syntax error`).
    pub fn error_reply(&self, text: &[u8]) {
        Self::incr(&self.total_error_replies, 1);
        if let error_stats::Noted::JustDisabled(dropped) = self.errors.lock().note(text) {
            crate::warning!(
                "Errorstats stopped adding new errors because the number of different \
                 error prefixes reached {}; CONFIG RESETSTAT counts them again. The \
                 prefixes were: {}",
                error_stats::MAX_PREFIXES,
                dropped.join(", ")
            );
        }
    }

    /// [`Stats::error_reply`] for an encoded reply (`-ERR syntax error\r\n`);
    /// anything else is not an error and is not counted.
    pub fn error_reply_encoded(&self, reply: &[u8]) {
        if let Some(rest) = reply.strip_prefix(b"-") {
            let end = rest.iter().position(|&c| c == b'\r').unwrap_or(rest.len());
            self.error_reply(&rest[..end]);
        }
    }

    /// `used_memory` now, recorded in the peak; returns (used, peak).
    pub fn sample_memory(&self) -> (u64, u64) {
        let used = crate::evict::used_memory();
        let before = self.used_memory_peak.fetch_max(used, Ordering::Relaxed);
        (used, before.max(used))
    }

    pub fn reset(&self) {
        for c in [
            &self.total_connections_received,
            &self.total_commands_processed,
            &self.rejected_connections,
            &self.expired_keys,
            &self.evicted_keys,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.net_input_bytes,
            &self.net_output_bytes,
            &self.total_error_replies,
            &self.unexpected_error_replies,
            &self.pubsub_messages,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        self.errors.lock().reset();
    }
}

/// A client blocked on keys (BLPOP & co.), served in FIFO order by the write that
/// makes one of its keys ready.
#[derive(Debug)]
pub struct Waiter {
    pub db: usize,
    pub keys: Vec<Bytes>,
    pub argv: Vec<Bytes>,
    pub resp3: bool,
    /// Receives the encoded reply once served.
    pub tx: tokio::sync::oneshot::Sender<Vec<u8>>,
}

/// Config values read on every command, copied into the store (whose lock the
/// command already holds) so the hot path takes no config lock. Refreshed at start
/// and by CONFIG SET.
#[derive(Debug, Clone)]
pub struct HotConfig {
    pub slowlog_log_slower_than: i64,
    pub maxmemory: u64,
    pub replica_read_only: bool,
    pub replica_serve_stale_data: bool,
    pub min_replicas_to_write: u64,
    pub min_replicas_max_lag: u64,
    /// `stop-writes-on-bgsave-error yes` with save points configured.
    pub stop_writes_on_bgsave_error: bool,
    /// `client-output-buffer-limit`, per class.
    pub obuf_limits: crate::outbuf::Limits,
    /// `timeout`: seconds after which an idle normal client is closed (0 = never).
    pub idle_timeout: u64,
    /// `client-query-buffer-limit`.
    pub query_buffer_limit: usize,
    /// `notify-keyspace-events`: the enabled event classes (`crate::notify`).
    pub notify_classes: crate::notify::Classes,
    /// `stream-node-max-bytes` and `stream-node-max-entries` (0 = no limit).
    pub stream_node_max_bytes: usize,
    pub stream_node_max_entries: usize,
    /// `busy-reply-threshold` (ms), read when a script starts.
    pub busy_reply_threshold: u64,
    /// `latency-monitor-threshold` (ms, 0 = the latency monitor is off).
    pub latency_monitor_threshold: u64,
    /// `latency-tracking`: per-command latency histograms.
    pub latency_tracking: bool,
    /// `tracking-table-max-keys` (0 = no limit).
    pub tracking_table_max_keys: u64,
    /// Under an LFU `maxmemory-policy`: the counter's parameters (keys then carry an
    /// LFU counter instead of an LRU clock, see `crate::evict::Lfu`).
    pub lfu: Option<crate::evict::Lfu>,
}

impl HotConfig {
    pub fn from_config(c: &Config) -> Self {
        HotConfig {
            slowlog_log_slower_than: c.slowlog_log_slower_than,
            maxmemory: c.maxmemory,
            replica_read_only: c.replica_read_only,
            replica_serve_stale_data: c.replica_serve_stale_data,
            min_replicas_to_write: c.min_replicas_to_write,
            min_replicas_max_lag: c.min_replicas_max_lag,
            stop_writes_on_bgsave_error: c.stop_writes_on_bgsave_error && !c.save.is_empty(),
            obuf_limits: c.output_limits(),
            idle_timeout: c.timeout,
            query_buffer_limit: c.client_query_buffer_limit,
            notify_classes: crate::notify::parse(c.get("notify-keyspace-events").unwrap_or(""))
                .unwrap_or(0),
            stream_node_max_bytes: c
                .get("stream-node-max-bytes")
                .and_then(crate::config::parse_memory)
                .map_or(4096, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            stream_node_max_entries: c
                .get("stream-node-max-entries")
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(100, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            busy_reply_threshold: c
                .get("busy-reply-threshold")
                .and_then(|v| v.parse().ok())
                .unwrap_or(5000),
            latency_monitor_threshold: c
                .get("latency-monitor-threshold")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0),
            latency_tracking: c.get("latency-tracking") != Some("no"),
            tracking_table_max_keys: c
                .get("tracking-table-max-keys")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1_000_000),
            lfu: c
                .get("maxmemory-policy")
                .is_some_and(|p| p.ends_with("-lfu"))
                .then(|| crate::evict::Lfu {
                    log_factor: c
                        .get("lfu-log-factor")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(10),
                    decay_time: c
                        .get("lfu-decay-time")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1),
                }),
        }
    }
}

/// Everything ordered together with the keyspace. See the module doc for the lock.
/// The scripting subsystem's state (its Lua VM and script cache). It lives under the store
/// lock with the data scripts run against, but its type belongs to `scripting`, a layer
/// above this one: the store holds it opaque and `scripting::state` gives it its type back.
#[derive(Default)]
pub struct ScriptSlot(pub Option<Box<dyn std::any::Any + Send>>);

impl std::fmt::Debug for ScriptSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ScriptSlot(..)"
        } else {
            "ScriptSlot(empty)"
        })
    }
}

/// The one destination of an op that is not propagated to both the AOF and the
/// replicas (see [`Store::propagate_only`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagateTarget {
    Aof,
    Replicas,
}

#[derive(Debug)]
pub struct Store {
    pub dbs: Vec<Db>,
    /// Writes since the last successful save (Redis `server.dirty`).
    pub dirty: u64,
    pub pubsub: PubSub,
    /// (db, key) -> FIFO of blocked client ids.
    pub blocking_keys: HashMap<(usize, Bytes), VecDeque<ClientId>>,
    pub waiters: HashMap<ClientId, Waiter>,
    /// (db, key) -> clients that WATCH it, with their "dirty CAS" flag.
    pub watched: HashMap<(usize, Bytes), Watchers>,
    /// Keys that received a write while clients were blocked on them.
    pub ready_keys: Vec<(usize, Bytes)>,
    /// Operations to hand to replication / AOF, in execution order.
    pub propagated: Vec<(usize, Vec<Bytes>)>,
    /// The ops of `propagated` (by index) that go to the AOF only or to replicas only
    /// (a script's `redis.set_repl`); every other op goes to both. Usually empty.
    pub propagate_only: Vec<(usize, PropagateTarget)>,
    /// Emptied argument vectors of flushed ops, reused by the next ops a command
    /// copies (`exec::pooled_op`): an allocation and a free less per write.
    pub op_pool: Vec<Vec<Bytes>>,
    /// True while this server replicates from a master (keys are then never expired
    /// actively, and lazily expired keys are hidden but not deleted).
    pub is_replica: bool,
    /// Unix time (s) of the last successful save.
    pub lastsave: i64,
    /// Replication ids, offsets, backlog, replicas and master link.
    pub repl: repl::ReplState,
    /// Hot configuration values (see [`HotConfig`]).
    pub hot: HotConfig,
    /// Within a batch of commands run under one lock hold: when the previous command
    /// ended, which is when the next one starts (one clock reading per command instead
    /// of two). `None` outside such a batch; whoever sets it clears it before the lock
    /// is released, so idle time is never charged to a command.
    pub cmd_clock: Option<Mono>,
    /// The Lua scripting state: VM, script cache (see `crate::scripting`).
    pub scripts: ScriptSlot,
    /// The function libraries (FUNCTION/FCALL), part of the dataset; opaque here like
    /// `scripts` (see `commands::function_lib`).
    pub functions: ScriptSlot,
    /// The latency monitor and per-command histograms (LATENCY, INFO latencystats).
    pub latency: crate::latency::Latency,
    /// On a writable replica: keys its own clients gave a TTL (Redis
    /// `slaveKeysWithExpire`). The master never sends DELs for them, so the replica
    /// expires them itself ([`crate::expire`]).
    pub replica_volatile: std::collections::HashSet<(usize, Bytes)>,
    /// Client-side caching: who read which keys (CLIENT TRACKING).
    pub tracking: crate::tracking::Tracking,
}

impl Store {
    /// Installs refreshed hot configuration, and the parts of it that subsystems in
    /// the store keep for themselves (the replica output limit).
    pub fn set_hot(&mut self, hot: HotConfig) {
        self.repl.obuf_limit = hot.obuf_limits[crate::outbuf::Class::Replica as usize];
        self.hot = hot;
        crate::notify::record_new_keys(&mut self.dbs, self.hot.notify_classes);
        let lfu = self.hot.lfu.is_some();
        for db in &mut self.dbs {
            db.keep_lfu_on_replace(lfu);
        }
    }

    /// Raises keyspace event `event` of `class` on `key` in database `db` (see
    /// `crate::notify`): one AND when the class is off.
    #[inline]
    pub fn notify(&mut self, class: crate::notify::Classes, event: &str, key: &[u8], db: usize) {
        if self.hot.notify_classes & class != 0 {
            self.publish_event(event, key, db);
        }
    }

    fn publish_event(&mut self, event: &str, key: &[u8], db: usize) {
        // Keys created earlier in the command are announced first, as Redis does
        // from `dbAdd`.
        self.flush_new_keys();
        let limit = self.hot.obuf_limits[crate::outbuf::Class::PubSub as usize];
        crate::notify::publish(
            &self.pubsub,
            &limit,
            self.hot.notify_classes,
            event,
            key,
            db,
        );
    }

    /// Before each command: a database replaced by a load (full sync, DEBUG RELOAD)
    /// starts without recording created keys. One AND unless class `n` is on.
    #[inline]
    pub fn begin_command(&mut self) {
        if self.hot.notify_classes & crate::notify::NEW != 0 {
            crate::notify::record_new_keys(&mut self.dbs, self.hot.notify_classes);
        }
    }

    /// Publishes the `new` events of the keys created since the last call (after each
    /// command). One AND unless class `n` is on.
    #[inline]
    pub fn flush_new_keys(&mut self) {
        let on = self.hot.notify_classes;
        if on & crate::notify::NEW != 0 {
            let limit = self.hot.obuf_limits[crate::outbuf::Class::PubSub as usize];
            crate::notify::publish_new_keys(&mut self.dbs, &self.pubsub, &limit, on);
        }
    }

    pub fn new(databases: usize) -> Self {
        let mut store = Store {
            dbs: (0..databases.max(1)).map(|_| Db::new()).collect(),
            dirty: 0,
            pubsub: PubSub::default(),
            blocking_keys: HashMap::new(),
            waiters: HashMap::new(),
            watched: HashMap::new(),
            ready_keys: Vec::new(),
            propagated: Vec::new(),
            propagate_only: Vec::new(),
            op_pool: Vec::new(),
            is_replica: false,
            lastsave: now_ms() / 1000,
            repl: repl::ReplState::default(),
            hot: HotConfig::from_config(&Config::default()),
            cmd_clock: None,
            scripts: ScriptSlot::default(),
            functions: ScriptSlot::default(),
            latency: Default::default(),
            replica_volatile: Default::default(),
            tracking: Default::default(),
        };
        store.set_hot(HotConfig::from_config(&Config::default()));
        store
    }

    /// Marks WATCHers of `key` as dirty and, if clients are blocked on it, queues it
    /// to be served (Redis `signalModifiedKey` + `signalKeyAsReady`).
    /// Also invalidates the key for client-side caching (Redis `trackingInvalidateKey`).
    pub fn touch_key(&mut self, db: usize, key: &[u8]) {
        self.tracking_invalidate(key);
        self.touch_watchers(db, key);
    }

    /// [`Store::touch_key`] for a key deleted because it expired (or was evicted by
    /// `maxmemory`): like Redis (`signalModifiedKey` with no client), the deletion is
    /// nobody's modification, so a NOLOOP BCAST client gets its invalidation even
    /// when its own read found the key expired (see `Tracking::expiring`).
    pub fn touch_expired_key(&mut self, db: usize, key: &[u8]) {
        self.tracking.expiring = true;
        self.touch_key(db, key);
        self.tracking.expiring = false;
    }

    /// The client-side caching half of [`Store::touch_key`].
    pub fn tracking_invalidate(&mut self, key: &[u8]) {
        if self.tracking.active() {
            let limit = self.hot.obuf_limits[crate::outbuf::Class::Normal as usize];
            self.tracking.invalidate(key, true, &limit);
        }
    }

    /// The WATCH and blocked-clients half of [`Store::touch_key`].
    #[inline]
    pub fn touch_watchers(&mut self, db: usize, key: &[u8]) {
        // After every write: with no WATCH and no blocked client (the common case)
        // two length tests, inlined, and the lookups out of line.
        if !self.watched.is_empty() || !self.blocking_keys.is_empty() {
            self.touch_watchers_of(db, key);
        }
    }

    #[cold]
    #[inline(never)]
    fn touch_watchers_of(&mut self, db: usize, key: &[u8]) {
        if !self.watched.is_empty() {
            if let Some(list) = self.watched.get(&(db, Bytes::copy_from_slice(key))) {
                for (_, flag) in list {
                    flag.store(true, Ordering::SeqCst);
                }
            }
        }
        if !self.blocking_keys.is_empty() {
            let k = (db, Bytes::copy_from_slice(key));
            if self.blocking_keys.contains_key(&k) && !self.ready_keys.contains(&k) {
                self.ready_keys.push(k);
            }
        }
    }

    /// Marks every WATCHer of any key in `db` (or every db with `None`) dirty:
    /// FLUSHDB, FLUSHALL, SWAPDB.
    pub fn touch_all(&mut self, db: Option<usize>) {
        if db.is_none() {
            self.tracking_flush();
        }
        for ((d, _), list) in self.watched.iter() {
            if db.is_none_or(|x| x == *d) {
                for (_, flag) in list {
                    flag.store(true, Ordering::SeqCst);
                }
            }
        }
        // Keys clients block on changed too: they are looked at again (a key
        // that is gone serves nobody, except XREADGROUP, which gets an error).
        let queued: std::collections::HashSet<(usize, Bytes)> =
            self.ready_keys.iter().cloned().collect();
        for k in self.blocking_keys.keys() {
            if db.is_none_or(|x| x == k.0) && !queued.contains(k) {
                self.ready_keys.push(k.clone());
            }
        }
    }

    /// The dataset was flushed: tracking clients drop everything they cached.
    pub fn tracking_flush(&mut self) {
        let limit = self.hot.obuf_limits[crate::outbuf::Class::Normal as usize];
        self.tracking.flush(&limit);
    }

    /// Sends the BCAST invalidations collected since the last call and keeps the
    /// tracking table within `tracking-table-max-keys` (Redis does both before
    /// sleeping; here after each command and each expiry cycle).
    pub fn tracking_after(&mut self) {
        if !self.tracking.active() {
            return;
        }
        let max_keys = self.hot.tracking_table_max_keys;
        let limit = self.hot.obuf_limits[crate::outbuf::Class::Normal as usize];
        self.tracking.flush_bcast(&limit);
        self.tracking.limit(max_keys, &limit);
    }

    /// Removes a blocked client from every key it waits on; returns its waiter.
    pub fn unblock(&mut self, id: ClientId) -> Option<Waiter> {
        let w = self.waiters.remove(&id)?;
        for k in &w.keys {
            let key = (w.db, k.clone());
            if let Some(q) = self.blocking_keys.get_mut(&key) {
                q.retain(|c| *c != id);
                if q.is_empty() {
                    self.blocking_keys.remove(&key);
                }
            }
        }
        Some(w)
    }

    pub fn unwatch_all(&mut self, id: ClientId, keys: &[(usize, Bytes)]) {
        for k in keys {
            if let Some(list) = self.watched.get_mut(k) {
                list.retain(|(c, _)| *c != id);
                if list.is_empty() {
                    self.watched.remove(k);
                }
            }
        }
    }
}

/// The store's mutex. `lock` behaves like the mutex's, except while a script is
/// busy (it holds the lock for as long as it runs): a tokio worker that must wait
/// then first hands its core to another thread (`block_in_place`), so a task stuck
/// behind the script (a cron, a closing connection) never stalls the others.
#[derive(Debug)]
pub struct StoreLock {
    inner: Mutex<Store>,
    busy: Arc<busy::Busy>,
}

impl StoreLock {
    pub fn lock(&self) -> parking_lot::MutexGuard<'_, Store> {
        if let Some(g) = self.inner.try_lock() {
            return g;
        }
        // Waits in slices: a script that holds the lock may become busy meanwhile
        // (a task waiting on an event loop's script), and then this thread must
        // hand its worker core away rather than stall the runtime's other tasks.
        loop {
            if self.busy.is_busy() {
                return busy::blocking(|| self.inner.lock());
            }
            if let Some(g) = self
                .inner
                .try_lock_for(std::time::Duration::from_millis(10))
            {
                return g;
            }
        }
    }

    /// The lock, or None once a script is busy (connections then answer BUSY).
    pub fn lock_unless_busy(&self) -> Option<parking_lot::MutexGuard<'_, Store>> {
        loop {
            if self.busy.is_busy() {
                return None;
            }
            if let Some(g) = self
                .inner
                .try_lock_for(std::time::Duration::from_millis(10))
            {
                return Some(g);
            }
        }
    }
}

/// Process-wide state shared by every connection.
#[derive(Debug)]
pub struct Server {
    pub store: StoreLock,
    /// Runtime configuration (CONFIG SET writes it).
    pub config: RwLock<Config>,
    pub stats: Stats,
    pub clients: Mutex<HashMap<ClientId, Arc<ClientHandle>>>,
    pub next_client_id: AtomicU64,
    pub started: Instant,
    /// `started` as a [`Mono`] reading: the origin of command times and of the LRU
    /// clock.
    pub started_mono: Mono,
    pub run_id: String,
    /// Connections in MONITOR mode receive every executed command here.
    pub monitors: Mutex<Vec<(Arc<ClientHandle>, tokio::sync::mpsc::UnboundedSender<Bytes>)>>,
    /// Number of MONITOR clients, so commands skip the `monitors` lock when none.
    pub monitor_count: std::sync::atomic::AtomicUsize,
    /// Wall-clock µs minus monotonic µs since `started`: command times are derived
    /// from one monotonic reading per command (see [`Server::clock_at`]) and this
    /// offset is re-read from the wall clock ten times a second. Kept in µs so a
    /// command time never runs ahead of the wall clock (two ms truncations could
    /// put it 1 ms ahead, and a Redis replica clamps times from its future, e.g.
    /// the TIME of a propagated XCLAIM).
    pub wall_offset_us: std::sync::atomic::AtomicI64,
    /// Signalled by SHUTDOWN (and SIGTERM/SIGINT) to stop the accept loops.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Copies of the listening sockets, so that an exit that cannot wait for the
    /// accept loops (SHUTDOWN NOSAVE while a script is busy) stops listening before
    /// it exits, as Redis closes its listeners first (see `crate::net`).
    pub listeners: Mutex<Vec<std::os::fd::OwnedFd>>,
    /// The event-loop threads serving plain-TCP clients (`tandem-event-loop`), once
    /// started; unset, every connection is a runtime task. Opaque here (the network
    /// layer's `net::evloop::EventLoops`): the state layer names no subsystem.
    pub event_loops: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
    /// Whether this process was stopped or stalled (replica ACK freshness, see
    /// [`repl::StallClock`]).
    pub stall: repl::StallClock,
    /// RDB persistence status (BGSAVE in progress, last results); see `crate::persist`.
    pub persist: Mutex<persist_state::PersistState>,
    /// False while `persist`'s `last_bgsave_ok` is; set with it, under its lock. Read
    /// by the MISCONF check before every write without taking that lock.
    pub bgsave_failed: AtomicBool,
    /// Running snapshot children (BGSAVE, BGREWRITEAOF, full sync), killed at shutdown.
    pub children: crate::snapshot::Children,
    /// Whether `aof` holds a file: read on every write without taking the AOF lock
    /// (set once, when the AOF is opened at startup).
    pub aof_on: AtomicBool,
    /// The append-only file while `appendonly` is on; see `crate::aof`.
    pub aof: Mutex<Option<aof_file::AofState>>,
    /// True until the dataset has been loaded at startup (the admin port's `/readyz`).
    pub loading: AtomicBool,
    /// The shutdown request and its progress (see `crate::shutdown`).
    pub shutdown_req: ShutdownRequest,
    /// INFO's instantaneous ops/sec sample: (when, commands then, the rate).
    pub ops_sample: Mutex<(Instant, u64, u64)>,
    pub slowlog: Mutex<crate::slowlog::SlowLog>,
    /// DEBUG SET-ACTIVE-EXPIRE: the active expiry cycle runs only while this is true.
    pub active_expire_enabled: AtomicBool,
    /// DEBUG PAUSE-CRON: the periodic tasks (Redis `serverCron`: active expiry and the
    /// tracking table limit, save points and AOF housekeeping, replication
    /// housekeeping) skip their ticks while this is true.
    pub cron_paused: AtomicBool,
    /// DEBUG SET-DISABLE-DENY-SCRIPTS: scripts may call commands flagged `noscript`
    /// (all but those [`crate::exec::script_call`] can never run from a script).
    pub script_deny_lifted: AtomicBool,
    /// CLIENT PAUSE state; the connection loop holds back paused commands.
    pub client_pause: crate::pause::ClientPause,
    /// The process title (`proc-title-template`), rewritten by CONFIG SET.
    pub proc_title: crate::proctitle::ProcTitle,
    /// The running script's busy state, shared with the store's scripting state:
    /// connections read it without the store lock (see [`busy`]).
    pub script_busy: Arc<busy::Busy>,
    /// ACL users and log (see [`crate::acl`]); connections cache their user.
    pub acl: crate::acl::Shared,
    /// The process's OOM score before `oom-score-adj` changed it.
    pub oom_score: crate::config::oom::OomScore,
    /// MIGRATE's cached connections to its targets.
    pub migrate_sockets: migrate_sockets::MigrateSockets,
    /// The TLS configurations in use (tls-port, tls-replication); see `crate::tls`.
    pub tls: crate::tls::Tls,
}

impl Server {
    /// INFO's `blocked_clients`, as Redis counts it: clients waiting in a blocking
    /// command or in WAIT, and those whose next command waits for a CLIENT PAUSE
    /// to end.
    pub fn blocked_clients(&self, store: &Store) -> usize {
        store.waiters.len()
            + store.repl.waiting_clients
            + self.client_pause.waiting_clients()
            + self.shutdown_req.waiting()
    }

    pub fn new(config: Config) -> Arc<Self> {
        let dbs = config.databases;
        let mut store = Store::new(dbs);
        store.set_hot(HotConfig::from_config(&config));
        let script_busy = Arc::new(busy::Busy::default());
        Arc::new(Server {
            store: StoreLock {
                inner: Mutex::new(store),
                busy: script_busy.clone(),
            },
            config: RwLock::new(config),
            stats: Stats::default(),
            clients: Mutex::new(HashMap::new()),
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            started_mono: Mono::now(),
            run_id: random_hex40(),
            monitors: Mutex::new(Vec::new()),
            monitor_count: std::sync::atomic::AtomicUsize::new(0),
            wall_offset_us: std::sync::atomic::AtomicI64::new(wall_us()),
            shutdown: tokio::sync::watch::channel(false).0,
            listeners: Mutex::new(Vec::new()),
            event_loops: std::sync::OnceLock::new(),
            stall: repl::StallClock::default(),
            shutdown_req: Default::default(),
            loading: AtomicBool::new(true),
            persist: Mutex::new(Default::default()),
            bgsave_failed: AtomicBool::new(false),
            aof: Mutex::new(None),
            aof_on: AtomicBool::new(false),
            children: Default::default(),
            ops_sample: Mutex::new((Instant::now(), 0, 0)),
            slowlog: Mutex::new(crate::slowlog::SlowLog::default()),
            active_expire_enabled: AtomicBool::new(true),
            cron_paused: AtomicBool::new(false),
            script_deny_lifted: AtomicBool::new(false),
            client_pause: crate::pause::ClientPause::default(),
            proc_title: crate::proctitle::ProcTitle::default(),
            script_busy,
            acl: Default::default(),
            migrate_sockets: Default::default(),
            oom_score: Default::default(),
            tls: Default::default(),
        })
    }

    /// DEBUG PAUSE-CRON is on: the periodic tasks skip their ticks.
    pub fn cron_paused(&self) -> bool {
        self.cron_paused.load(Ordering::Relaxed)
    }

    /// Tells every task that the process exits: the `shutdown` watch, and each
    /// client's bell (connection loops wait on their bell, not on the watch).
    pub fn announce_shutdown(&self) {
        // Stored even when no task listens now (`send` would drop it): a task that
        // subscribes later still finds it.
        self.shutdown.send_replace(true);
        for h in self.clients.lock().values() {
            h.bell.ring();
        }
    }

    /// Registers or drops a MONITOR client, keeping `monitor_count` in step.
    pub fn set_monitor(
        &self,
        id: ClientId,
        tx: Option<(Arc<ClientHandle>, tokio::sync::mpsc::UnboundedSender<Bytes>)>,
    ) {
        let mut mons = self.monitors.lock();
        mons.retain(|(m, _)| m.id != id);
        if let Some(tx) = tx {
            mons.push(tx);
        }
        self.monitor_count.store(mons.len(), Ordering::Relaxed);
    }

    /// Sends one MONITOR line to every monitor within its output limit (MONITOR
    /// clients are of the `normal` class, as in Redis); drops closed ones.
    pub fn feed_monitor_line(
        &self,
        mons: &mut Vec<(Arc<ClientHandle>, tokio::sync::mpsc::UnboundedSender<Bytes>)>,
        line: Bytes,
        limit: &crate::outbuf::Limit,
    ) {
        mons.retain(|(h, tx)| {
            if !h.try_queue(line.len() as u64, limit) {
                return !h.is_killed();
            }
            tx.send(line.clone()).is_ok()
        });
        self.monitor_count.store(mons.len(), Ordering::Relaxed);
    }

    /// Wall-clock ms and LRU clock ([`LRU_EPOCH`] + s since start) for the instant
    /// `t`, from one monotonic reading: commands read the clock once, not once per
    /// lookup.
    pub fn clock_at(&self, t: Mono) -> (i64, u32) {
        let since_ns = t.nanos_since(self.started_mono);
        let us = (since_ns / 1000) as i64 + self.wall_offset_us.load(Ordering::Relaxed);
        (us.div_euclid(1000), lru_at(since_ns))
    }

    /// Re-reads the wall clock, so command times follow clock adjustments.
    pub fn reanchor_clock(&self) {
        // Wall first: the offset errs low, so command times lag, never lead.
        let wall = wall_us();
        let mono = (Mono::now().nanos_since(self.started_mono) / 1000) as i64;
        self.wall_offset_us.store(wall - mono, Ordering::Relaxed);
    }

    pub fn lru_clock(&self) -> u32 {
        lru_at(Mono::now().nanos_since(self.started_mono))
    }
}

/// Where the LRU clock starts: keys can then be given an idle time longer than the
/// uptime (RESTORE ... IDLETIME, which Redis, whose clock is the wall clock, takes
/// as given) of up to 2^28 s (8.5 years), and the clock runs for as long again
/// within the 29 bits a key keeps (`crate::db::Meta`).
pub const LRU_EPOCH: u32 = 1 << 28;

/// The LRU clock `since_ns` after the server started.
fn lru_at(since_ns: u64) -> u32 {
    LRU_EPOCH.saturating_add((since_ns / 1_000_000_000) as u32)
}

/// Wall-clock µs since the Unix epoch (0 before it).
fn wall_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_clock_follows_the_wall_clock() {
        let server = Server::new(Config::default());
        let (ms, lru) = server.clock_at(Mono::now());
        assert!((ms - now_ms()).abs() < 1000, "{ms} vs {}", now_ms());
        assert_eq!(lru, server.lru_clock());
        // A wall-clock step is picked up at the next re-anchoring.
        server
            .wall_offset_us
            .fetch_sub(60_000_000, std::sync::atomic::Ordering::Relaxed);
        assert!(server.clock_at(Mono::now()).0 < now_ms() - 50_000);
        server.reanchor_clock();
        assert!((server.clock_at(Mono::now()).0 - now_ms()).abs() < 1000);
        // Not ahead of the wall clock (times a replica would clamp). The offset errs low,
        // but the wall clock itself can be stepped back by time sync between two reads
        // (seen once on this VM: 1 ms), so 2 ms of slack, not 0.
        for _ in 0..2000 {
            let (ms, _) = server.clock_at(Mono::now());
            assert!(ms <= now_ms() + 2, "{ms} ahead of {}", now_ms());
        }
    }
}
