//! The directive table: every directive Redis 7.0.15 knows (its `CONFIG GET *` set),
//! with its kind, default, and whether Tandem acts on it.
//!
//! One row per directive is the single source of truth for parsing (file, command
//! line, CONFIG SET), for CONFIG GET, for CONFIG REWRITE and for the startup warning
//! that names the directives Tandem accepts but does not act on. To wire a directive,
//! flip its `A` flag once the code honours it.

/// How a directive's value is validated and canonicalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `yes` / `no`.
    Bool,
    /// Strict decimal integer within `[min, max]`.
    Int(i64, i64),
    /// Non-negative byte count with optional unit (1k, 1kb, 1m, 1mb, 1g, 1gb), within `[min, max]`.
    Memory(i64, i64),
    /// One of the listed words (case-insensitive; canonical form lower-case).
    Enum(&'static [&'static str]),
    /// Any single string.
    Str,
    /// Own parser in `mod.rs` (save, bind, replicaof, client-output-buffer-limit, ...).
    Special,
}

/// Tandem acts on this directive.
pub const A: u8 = 1;
/// Cannot be changed by CONFIG SET ("can't set immutable config").
pub const I: u8 = 2;
/// Protected: CONFIG SET refused while `enable-protected-configs` is `no`.
pub const P: u8 = 4;
/// Tandem cannot honour a non-default value safely: startup stops with a message.
pub const U: u8 = 8;
/// Takes several arguments (a single argument is re-split on spaces).
pub const M: u8 = 16;
/// Defines the listening sockets: Redis rebinds on CONFIG SET, Tandem refuses a
/// runtime change rather than keep serving the old address silently.
pub const L: u8 = 32;
/// Sensitive: its value is a secret, shown as `(redacted)` in the `CONFIG SET`
/// arguments SLOWLOG and MONITOR show (see [`crate::redact`]).
pub const S: u8 = 64;
/// Hidden (a debugging knob in Redis): left out of `CONFIG GET` patterns, found only
/// by its exact name.
pub const H: u8 = 128;

#[derive(Debug)]
pub struct Directive {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub kind: Kind,
    /// Default in canonical form (what CONFIG GET shows on a fresh server).
    pub default: &'static str,
    pub flags: u8,
}

impl Directive {
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
    pub fn acted(&self) -> bool {
        self.has(A)
    }
}

const fn d(
    name: &'static str,
    alias: Option<&'static str>,
    kind: Kind,
    default: &'static str,
    flags: u8,
) -> Directive {
    Directive {
        name,
        alias,
        kind,
        default,
        flags,
    }
}

use Kind::*;

const IMAX: i64 = i32::MAX as i64;
const IMIN: i64 = i32::MIN as i64;
const LMAX: i64 = i64::MAX;
const PORT: Kind = Int(0, 65535);
const MB: i64 = 1024 * 1024;

pub const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning"];
pub const POLICIES: &[&str] = &[
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
];
const YES_NO_LOCAL: &[&str] = &["no", "yes", "local"];

/// Every directive, sorted by name (CONFIG GET * order does not matter to clients,
/// but a sorted table keeps REWRITE output stable).
pub static DIRECTIVES: &[Directive] = &[
    d(
        "acl-pubsub-default",
        None,
        Enum(&["allchannels", "resetchannels"]),
        "resetchannels",
        A,
    ),
    d("aclfile", None, Str, "", A | I),
    d("acllog-max-len", None, Int(0, LMAX), "128", A),
    d("active-defrag-cycle-max", None, Int(1, 99), "25", 0),
    d("active-defrag-cycle-min", None, Int(1, 99), "1", 0),
    d(
        "active-defrag-ignore-bytes",
        None,
        Memory(1, LMAX),
        "104857600",
        0,
    ),
    d(
        "active-defrag-max-scan-fields",
        None,
        Int(1, LMAX),
        "1000",
        0,
    ),
    d("active-defrag-threshold-lower", None, Int(0, 1000), "10", 0),
    d(
        "active-defrag-threshold-upper",
        None,
        Int(0, 1000),
        "100",
        0,
    ),
    d("active-expire-effort", None, Int(1, 10), "1", 0),
    d("activedefrag", None, Bool, "no", 0),
    d("activerehashing", None, Bool, "yes", 0),
    d("always-show-logo", None, Bool, "no", A | I),
    d("aof-disable-auto-gc", None, Bool, "no", A),
    d("aof-load-truncated", None, Bool, "yes", A),
    d("aof-rewrite-incremental-fsync", None, Bool, "yes", 0),
    d("aof-timestamp-enabled", None, Bool, "no", A),
    d("aof-use-rdb-preamble", None, Bool, "yes", A),
    d("aof_rewrite_cpulist", None, Str, "", I),
    d("appenddirname", None, Str, "appendonlydir", A | I),
    d("appendfilename", None, Str, "appendonly.aof", A | I),
    d(
        "appendfsync",
        None,
        Enum(&["always", "everysec", "no"]),
        "everysec",
        A,
    ),
    d("appendonly", None, Bool, "no", A),
    d(
        "auto-aof-rewrite-min-size",
        None,
        Memory(0, LMAX),
        "67108864",
        A,
    ),
    d("auto-aof-rewrite-percentage", None, Int(0, IMAX), "100", A),
    d("bgsave_cpulist", None, Str, "", I),
    d("bind", None, Special, "* -::*", A | M | L),
    d("bind-source-addr", None, Str, "", A),
    d("bio_cpulist", None, Str, "", I),
    d(
        "busy-reply-threshold",
        Some("lua-time-limit"),
        Int(0, LMAX),
        "5000",
        A,
    ),
    d(
        "client-output-buffer-limit",
        None,
        Special,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        A | M,
    ),
    d(
        "client-query-buffer-limit",
        None,
        Memory(MB, LMAX),
        "1073741824",
        A,
    ),
    d("cluster-allow-pubsubshard-when-down", None, Bool, "yes", 0),
    d("cluster-allow-reads-when-down", None, Bool, "no", 0),
    d("cluster-allow-replica-migration", None, Bool, "yes", 0),
    d("cluster-announce-bus-port", None, PORT, "0", 0),
    d("cluster-announce-hostname", None, Str, "", 0),
    d("cluster-announce-ip", None, Str, "", 0),
    d("cluster-announce-port", None, PORT, "0", 0),
    d("cluster-announce-tls-port", None, PORT, "0", 0),
    d("cluster-config-file", None, Str, "nodes.conf", I),
    d("cluster-enabled", None, Bool, "no", I | U),
    d("cluster-link-sendbuf-limit", None, Memory(0, LMAX), "0", 0),
    d("cluster-migration-barrier", None, Int(0, IMAX), "1", 0),
    d("cluster-node-timeout", None, Int(0, LMAX), "15000", 0),
    d("cluster-port", None, PORT, "0", I),
    d(
        "cluster-preferred-endpoint-type",
        None,
        Enum(&["ip", "hostname", "unknown-endpoint"]),
        "ip",
        0,
    ),
    d(
        "cluster-replica-no-failover",
        Some("cluster-slave-no-failover"),
        Bool,
        "no",
        0,
    ),
    d(
        "cluster-replica-validity-factor",
        Some("cluster-slave-validity-factor"),
        Int(0, IMAX),
        "10",
        0,
    ),
    d("cluster-require-full-coverage", None, Bool, "yes", 0),
    d("crash-log-enabled", None, Bool, "yes", A),
    d("crash-memcheck-enabled", None, Bool, "yes", 0),
    d("daemonize", None, Bool, "no", A | I),
    d("databases", None, Int(1, IMAX), "16", A | I),
    d("dbfilename", None, Str, "dump.rdb", A | P),
    d("dir", None, Special, "", A | P),
    d("disable-thp", None, Bool, "yes", I),
    d("dynamic-hz", None, Bool, "yes", 0),
    d(
        "enable-debug-command",
        None,
        Enum(YES_NO_LOCAL),
        "no",
        A | I,
    ),
    d(
        "enable-module-command",
        None,
        Enum(YES_NO_LOCAL),
        "no",
        A | I,
    ),
    d(
        "enable-protected-configs",
        None,
        Enum(YES_NO_LOCAL),
        "no",
        A | I,
    ),
    d(
        "hash-max-listpack-entries",
        Some("hash-max-ziplist-entries"),
        Int(0, LMAX),
        "512",
        A,
    ),
    d(
        "hash-max-listpack-value",
        Some("hash-max-ziplist-value"),
        Memory(0, LMAX),
        "64",
        A,
    ),
    d("hll-sparse-max-bytes", None, Memory(0, LMAX), "3000", A),
    d("hz", None, Int(0, IMAX), "10", A),
    d("ignore-warnings", None, Str, "", 0),
    d("io-threads", None, Int(1, 128), "1", A | I),
    d("io-threads-do-reads", None, Bool, "no", I),
    d("jemalloc-bg-thread", None, Bool, "yes", 0),
    d("key-load-delay", None, Int(IMIN, IMAX), "0", A | H),
    d("latency-monitor-threshold", None, Int(0, LMAX), "0", A),
    d("latency-tracking", None, Bool, "yes", A),
    d(
        "latency-tracking-info-percentiles",
        None,
        Special,
        "50 99 99.9",
        A | M,
    ),
    d("lazyfree-lazy-eviction", None, Bool, "no", A),
    d("lazyfree-lazy-expire", None, Bool, "no", A),
    d("lazyfree-lazy-server-del", None, Bool, "no", 0),
    d("lazyfree-lazy-user-del", None, Bool, "no", 0),
    d("lazyfree-lazy-user-flush", None, Bool, "no", 0),
    d("lfu-decay-time", None, Int(0, IMAX), "1", A),
    d("lfu-log-factor", None, Int(0, IMAX), "10", A),
    d("list-compress-depth", None, Int(0, IMAX), "0", 0),
    d(
        "list-max-listpack-size",
        Some("list-max-ziplist-size"),
        Int(i32::MIN as i64, IMAX),
        "-2",
        A,
    ),
    d(
        "loading-process-events-interval-bytes",
        None,
        Int(1024, IMAX),
        "2097152",
        H,
    ),
    // Tandem extension of Redis 7.0: logfile can be changed at runtime (Redis refuses).
    d("logfile", None, Special, "", A),
    d("loglevel", None, Enum(LOGLEVELS), "notice", A),
    d("masterauth", None, Str, "", A | S),
    d("masteruser", None, Str, "", A | S),
    d("maxclients", None, Int(1, u32::MAX as i64), "10000", A),
    d("maxmemory", None, Memory(0, LMAX), "0", A),
    d("maxmemory-clients", None, Special, "0", 0),
    d("maxmemory-eviction-tenacity", None, Int(0, 100), "10", 0),
    d("maxmemory-policy", None, Enum(POLICIES), "noeviction", A),
    d("maxmemory-samples", None, Int(1, IMAX), "5", A),
    d(
        "min-replicas-max-lag",
        Some("min-slaves-max-lag"),
        Int(0, IMAX),
        "10",
        A,
    ),
    d(
        "min-replicas-to-write",
        Some("min-slaves-to-write"),
        Int(0, IMAX),
        "0",
        A,
    ),
    d("no-appendfsync-on-rewrite", None, Bool, "no", 0),
    d("notify-keyspace-events", None, Special, "", A),
    d(
        "oom-score-adj",
        None,
        Enum(&["no", "yes", "relative", "absolute"]),
        "no",
        A,
    ),
    d("oom-score-adj-values", None, Special, "0 200 800", A | M),
    d("pidfile", None, Str, "", A | I),
    d("port", None, PORT, "6379", A | L),
    d(
        "proc-title-template",
        None,
        Str,
        "{title} {listen-addr} {server-mode}",
        A,
    ),
    d(
        "propagation-error-behavior",
        None,
        Enum(&["ignore", "panic", "panic-on-replicas"]),
        "ignore",
        A,
    ),
    d("protected-mode", None, Bool, "yes", A),
    d("proto-max-bulk-len", None, Memory(MB, LMAX), "536870912", A),
    d("rdb-del-sync-files", None, Bool, "no", A),
    d("rdb-key-save-delay", None, Int(IMIN, IMAX), "0", A | H),
    d("rdb-save-incremental-fsync", None, Bool, "yes", 0),
    d("rdbchecksum", None, Bool, "yes", A | I),
    d("rdbcompression", None, Bool, "yes", A),
    d("repl-backlog-size", None, Memory(1, LMAX), "1048576", A),
    d("repl-backlog-ttl", None, Int(0, LMAX), "3600", A),
    d("repl-disable-tcp-nodelay", None, Bool, "no", 0),
    d(
        "repl-diskless-load",
        None,
        Enum(&["disabled", "on-empty-db", "swapdb"]),
        "disabled",
        A,
    ),
    d("repl-diskless-sync", None, Bool, "yes", A),
    d("repl-diskless-sync-delay", None, Int(0, IMAX), "5", A),
    d(
        "repl-diskless-sync-max-replicas",
        None,
        Int(0, IMAX),
        "0",
        A,
    ),
    d(
        "repl-ping-replica-period",
        Some("repl-ping-slave-period"),
        Int(1, IMAX),
        "10",
        A,
    ),
    d("repl-timeout", None, Int(1, IMAX), "60", A),
    d("replica-announce-ip", Some("slave-announce-ip"), Str, "", A),
    d(
        "replica-announce-port",
        Some("slave-announce-port"),
        PORT,
        "0",
        A,
    ),
    d("replica-announced", None, Bool, "yes", A),
    d("replica-ignore-disk-write-errors", None, Bool, "no", 0),
    d(
        "replica-ignore-maxmemory",
        Some("slave-ignore-maxmemory"),
        Bool,
        "yes",
        0,
    ),
    d(
        "replica-lazy-flush",
        Some("slave-lazy-flush"),
        Bool,
        "no",
        0,
    ),
    d(
        "replica-priority",
        Some("slave-priority"),
        Int(0, IMAX),
        "100",
        A,
    ),
    d("replica-read-only", Some("slave-read-only"), Bool, "yes", A),
    d(
        "replica-serve-stale-data",
        Some("slave-serve-stale-data"),
        Bool,
        "yes",
        A,
    ),
    // Changed at runtime by the REPLICAOF command, not CONFIG SET (as in Redis).
    d("replicaof", Some("slaveof"), Special, "", A | M | I),
    d("requirepass", None, Str, "", A | S),
    d(
        "sanitize-dump-payload",
        None,
        Enum(&["no", "yes", "clients"]),
        "no",
        0,
    ),
    d("save", None, Special, "3600 1 300 100 60 10000", A | M),
    d("server_cpulist", None, Str, "", I),
    d("set-max-intset-entries", None, Int(0, LMAX), "512", A),
    d("set-proc-title", None, Bool, "yes", A | I),
    d("shutdown-on-sigint", None, Special, "default", A | M),
    d("shutdown-on-sigterm", None, Special, "default", A | M),
    d("shutdown-timeout", None, Int(0, IMAX), "10", A),
    d("slowlog-log-slower-than", None, Int(-1, LMAX), "10000", A),
    d("slowlog-max-len", None, Int(0, LMAX), "128", A),
    d("socket-mark-id", None, Int(0, u32::MAX as i64), "0", I),
    d("stop-writes-on-bgsave-error", None, Bool, "yes", A),
    d("stream-node-max-bytes", None, Memory(0, LMAX), "4096", A),
    d("stream-node-max-entries", None, Int(0, LMAX), "100", A),
    d(
        "supervised",
        None,
        Enum(&["upstart", "systemd", "auto", "no"]),
        "no",
        I,
    ),
    d("syslog-enabled", None, Bool, "no", I),
    d(
        "syslog-facility",
        None,
        Enum(&[
            "user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
        ]),
        "local0",
        I,
    ),
    d("syslog-ident", None, Str, "redis", I),
    d("tcp-backlog", None, Int(0, IMAX), "511", I),
    d("tcp-keepalive", None, Int(0, IMAX), "300", A),
    d("timeout", None, Int(0, IMAX), "0", A),
    d(
        "tls-auth-clients",
        None,
        Enum(&["no", "yes", "optional"]),
        "yes",
        A,
    ),
    d("tls-ca-cert-dir", None, Str, "", A),
    d("tls-ca-cert-file", None, Str, "", A),
    d("tls-cert-file", None, Str, "", A),
    d("tls-ciphers", None, Str, "", A),
    d("tls-ciphersuites", None, Str, "", A),
    d("tls-client-cert-file", None, Str, "", A),
    d("tls-client-key-file", None, Str, "", A),
    d("tls-client-key-file-pass", None, Str, "", A | S),
    d("tls-cluster", None, Bool, "no", U),
    d("tls-dh-params-file", None, Str, "", 0),
    d("tls-key-file", None, Str, "", A),
    d("tls-key-file-pass", None, Str, "", A | S),
    d("tls-port", None, PORT, "0", A | L),
    d("tls-prefer-server-ciphers", None, Bool, "no", A),
    d("tls-protocols", None, Str, "", A),
    d("tls-replication", None, Bool, "no", A),
    d("tls-session-cache-size", None, Int(0, IMAX), "20480", A),
    d("tls-session-cache-timeout", None, Int(0, IMAX), "300", A),
    d("tls-session-caching", None, Bool, "yes", A),
    d("tracking-table-max-keys", None, Int(0, LMAX), "1000000", A),
    d("unixsocket", None, Str, "", A | I),
    d("unixsocketperm", None, Special, "0", A | I),
    d("use-exit-on-panic", None, Bool, "no", A | H),
    d("watchdog-period", None, Int(0, IMAX), "0", H),
    d(
        "zset-max-listpack-entries",
        Some("zset-max-ziplist-entries"),
        Int(0, LMAX),
        "128",
        A,
    ),
    d(
        "zset-max-listpack-value",
        Some("zset-max-ziplist-value"),
        Memory(0, LMAX),
        "64",
        A,
    ),
];

/// Tandem's own directives (extensions for the operator), kept apart from Redis's
/// set so [`DIRECTIVES`] stays exactly what Redis 7.0.15 knows. Sorted by name.
pub static TANDEM_DIRECTIVES: &[Directive] = &[
    // Addresses (like `bind`) of the admin HTTP port; empty = the first `bind`
    // address (after `TANDEM_BIND`), not every address. Read at startup.
    d("tandem-admin-bind", None, Special, "", A | I | M),
    // HTTP admin port (/healthz, /readyz, /metrics) on the main listener's
    // addresses; 0 = off. Read at startup.
    d("tandem-admin-port", None, PORT, "0", A | I),
    // Plain-TCP clients are served by event-loop threads (`net::evloop`) rather than
    // a runtime task each; `no` is the task-per-connection path. Read at startup.
    d("tandem-event-loop", None, Bool, "yes", A | I),
    // Start fenced (no writes, no replica syncs) unless `replicaof` is configured,
    // until REPLICAOF assigns a role. Read at startup; CONFIG SET affects the next
    // start only (with CONFIG REWRITE).
    d("tandem-fenced-start", None, Bool, "no", A),
    // Tandem extension: the default user's passwords, one per line, re-read when
    // the file changes (see `commands::acl`).
    d("tandem-requirepass-file", None, Str, "", A | I),
];

/// Why each directive Tandem accepts but does not act on is not acted on: one line per
/// directive, shown in docs/config.md (generated by `server/tests/config_parity.rs`).
/// A unit test below requires a reason for every directive without [`A`].
pub static DECLARED: &[(&str, &str)] = &[
    (
        "active-defrag-cycle-max",
        "no active defragmentation: Rust's allocator has no defrag hooks",
    ),
    (
        "active-defrag-cycle-min",
        "no active defragmentation: Rust's allocator has no defrag hooks",
    ),
    (
        "active-defrag-ignore-bytes",
        "no active defragmentation: Rust's allocator has no defrag hooks",
    ),
    (
        "active-defrag-max-scan-fields",
        "no active defragmentation: Rust's allocator has no defrag hooks",
    ),
    (
        "active-defrag-threshold-lower",
        "no active defragmentation: Rust's allocator has no defrag hooks",
    ),
    (
        "active-defrag-threshold-upper",
        "no active defragmentation: Rust's allocator has no defrag hooks",
    ),
    (
        "active-expire-effort",
        "the active expiry cycle has one fixed effort (its own work item)",
    ),
    (
        "activedefrag",
        "no active defragmentation: Rust's allocator has no defrag hooks",
    ),
    (
        "activerehashing",
        "Rust hash maps rehash on insert; there is no incremental rehash step to turn off",
    ),
    (
        "aof-rewrite-incremental-fsync",
        "the rewrite fsyncs once at the end",
    ),
    ("aof_rewrite_cpulist", "no CPU affinity for background work"),
    ("bgsave_cpulist", "no CPU affinity for background work"),
    ("bio_cpulist", "no CPU affinity for background work"),
    (
        "cluster-allow-pubsubshard-when-down",
        "cluster mode is not supported",
    ),
    (
        "cluster-allow-reads-when-down",
        "cluster mode is not supported",
    ),
    (
        "cluster-allow-replica-migration",
        "cluster mode is not supported",
    ),
    ("cluster-announce-bus-port", "cluster mode is not supported"),
    ("cluster-announce-hostname", "cluster mode is not supported"),
    ("cluster-announce-ip", "cluster mode is not supported"),
    ("cluster-announce-port", "cluster mode is not supported"),
    ("cluster-announce-tls-port", "cluster mode is not supported"),
    ("cluster-config-file", "cluster mode is not supported"),
    (
        "cluster-enabled",
        "cluster mode is not supported (yes stops startup)",
    ),
    (
        "cluster-link-sendbuf-limit",
        "cluster mode is not supported",
    ),
    ("cluster-migration-barrier", "cluster mode is not supported"),
    ("cluster-node-timeout", "cluster mode is not supported"),
    ("cluster-port", "cluster mode is not supported"),
    (
        "cluster-preferred-endpoint-type",
        "cluster mode is not supported",
    ),
    (
        "cluster-replica-no-failover",
        "cluster mode is not supported",
    ),
    (
        "cluster-replica-validity-factor",
        "cluster mode is not supported",
    ),
    (
        "cluster-require-full-coverage",
        "cluster mode is not supported",
    ),
    (
        "crash-memcheck-enabled",
        "a Rust panic is logged by the panic hook, not by a crash report",
    ),
    (
        "disable-thp",
        "transparent huge pages are left as the system sets them",
    ),
    ("dynamic-hz", "the cron runs at `hz` (its own work item)"),
    (
        "ignore-warnings",
        "Tandem emits none of the kernel warnings it silences",
    ),
    (
        "io-threads-do-reads",
        "connections are served by the `io-threads` event loops (or runtime workers), reads included",
    ),
    (
        "jemalloc-bg-thread",
        "not applicable: Tandem does not use jemalloc",
    ),
    (
        "lazyfree-lazy-server-del",
        "values are freed in place; replies and propagation are the same either way",
    ),
    (
        "lazyfree-lazy-user-del",
        "values are freed in place; replies and propagation are the same either way",
    ),
    (
        "lazyfree-lazy-user-flush",
        "values are freed in place; replies and propagation are the same either way",
    ),
    (
        "list-compress-depth",
        "encoding internals only: list nodes are never compressed",
    ),
    (
        "loading-process-events-interval-bytes",
        "clients are not served while a dataset loads",
    ),
    (
        "maxmemory-clients",
        "client memory is not counted for eviction",
    ),
    (
        "maxmemory-eviction-tenacity",
        "eviction runs until under the limit in one go",
    ),
    (
        "no-appendfsync-on-rewrite",
        "fsync is not paused during a rewrite",
    ),
    (
        "rdb-save-incremental-fsync",
        "the snapshot fsyncs once at the end",
    ),
    (
        "repl-disable-tcp-nodelay",
        "replica links always use TCP_NODELAY",
    ),
    (
        "replica-ignore-disk-write-errors",
        "a replica applies its master's writes even when it cannot persist them (Redis's `yes`)",
    ),
    (
        "replica-ignore-maxmemory",
        "replicas never evict (the default `yes`)",
    ),
    ("replica-lazy-flush", "values are freed in place"),
    (
        "sanitize-dump-payload",
        "RESTORE payloads are always fully validated (as `yes`)",
    ),
    ("server_cpulist", "no CPU affinity"),
    ("socket-mark-id", "sockets are not marked"),
    ("supervised", "no upstart/systemd notification"),
    (
        "syslog-enabled",
        "logs go to the log file or stdout, not syslog",
    ),
    (
        "syslog-facility",
        "logs go to the log file or stdout, not syslog",
    ),
    (
        "syslog-ident",
        "logs go to the log file or stdout, not syslog",
    ),
    ("tcp-backlog", "the listen backlog is the runtime's"),
    (
        "tls-cluster",
        "TLS belongs to the TLS work (yes stops startup)",
    ),
    ("tls-dh-params-file", "TLS belongs to the TLS work"),
    ("watchdog-period", "no software watchdog"),
];

/// The one-line reason a directive is accepted but not acted on.
pub fn why_declared(name: &str) -> Option<&'static str> {
    DECLARED.iter().find(|(n, _)| *n == name).map(|(_, w)| *w)
}

/// Every directive: Redis's, then Tandem's.
pub fn all() -> impl Iterator<Item = &'static Directive> {
    DIRECTIVES.iter().chain(TANDEM_DIRECTIVES.iter())
}

/// Finds a directive by (lower-case) name or alias.
pub fn find(name: &str) -> Option<&'static Directive> {
    all().find(|d| d.name == name || d.alias == Some(name))
}

/// Why a non-default value of a `U` directive stops startup.
pub fn unsafe_reason(name: &str) -> &'static str {
    match name {
        "cluster-enabled" => "Redis Cluster mode is not supported by Tandem",
        "tls-cluster" => "Redis Cluster mode (and so its TLS bus) is not supported by Tandem",
        _ => "this setting is not supported by Tandem",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_sorted() {
        let mut prev = "";
        for d in DIRECTIVES {
            assert_eq!(d.name, d.name.to_ascii_lowercase());
            assert!(d.name > prev, "{} after {}", d.name, prev);
            prev = d.name;
            if let Some(a) = d.alias {
                assert!(find(a).is_some_and(|x| x.name == d.name));
            }
        }
    }

    #[test]
    fn tandem_directives_are_separate_prefixed_and_sorted() {
        let names: Vec<&str> = TANDEM_DIRECTIVES.iter().map(|d| d.name).collect();
        assert_eq!(
            names,
            vec![
                "tandem-admin-bind",
                "tandem-admin-port",
                "tandem-event-loop",
                "tandem-fenced-start",
                "tandem-requirepass-file"
            ]
        );
        for d in TANDEM_DIRECTIVES {
            assert!(d.name.starts_with("tandem-"), "{}", d.name);
            assert!(d.alias.is_none());
            assert!(d.acted(), "{}", d.name);
            assert!(!DIRECTIVES.iter().any(|r| r.name == d.name));
            assert!(find(d.name).is_some_and(|x| std::ptr::eq(x, d)));
        }
        assert_eq!(all().count(), DIRECTIVES.len() + TANDEM_DIRECTIVES.len());
    }

    #[test]
    fn every_declared_directive_says_why() {
        for d in all().filter(|d| !d.acted()) {
            assert!(why_declared(d.name).is_some(), "{} has no reason", d.name);
        }
        let mut prev = "";
        for (n, w) in DECLARED {
            assert!(find(n).is_some(), "{n} is not a directive");
            assert!(
                !find(n).is_some_and(|d| d.acted()),
                "{n} is acted on: drop its reason"
            );
            assert!(*n > prev, "{n} after {prev}");
            assert!(!w.is_empty());
            prev = n;
        }
    }

    #[test]
    fn table_covers_redis_7_config_get_star() {
        // Redis 7.0.15's `CONFIG GET *` answers for 192 names (aliases included).
        let n: usize = DIRECTIVES
            .iter()
            .filter(|d| !d.has(H))
            .map(|d| 1 + usize::from(d.alias.is_some()))
            .sum();
        assert_eq!(n, 192);
    }
}
