//! Configuration: the values the server runs with.
//!
//! - [`table`]: every Redis 7.0 directive (kind, default, acted on or not).
//! - [`parse`]: the redis.conf reader and the `[configfile] [-] [--name value ...]`
//!   command line.
//! - [`rewrite`]: CONFIG REWRITE.
//!
//! The canonical string value of every directive lives in [`Config::values`] (what
//! CONFIG GET shows); the typed fields below are derived from it by
//! [`Config::apply_typed`] each time a directive is set, so the two never disagree.

pub mod oom;
pub mod parse;
pub mod propagation;
pub mod rewrite;
mod special;
pub mod table;

pub use parse::load_from_args;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use table::{Directive, Kind};

/// Runtime configuration (defaults = Redis 7.0 defaults).
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: Vec<String>,
    pub port: u16,
    pub requirepass: Option<String>,
    pub databases: usize,
    pub maxclients: usize,
    pub proto_max_bulk_len: i64,
    pub client_query_buffer_limit: usize,
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    pub maxmemory_samples: usize,
    pub lazyfree_lazy_expire: bool,
    /// `lazyfree-lazy-eviction`: evictions propagate as UNLINK instead of DEL.
    pub lazyfree_lazy_eviction: bool,
    pub replica_read_only: bool,
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: usize,
    pub enable_debug_command: String,
    pub hz: u32,
    pub timeout: u64,
    pub dir: String,
    pub logfile: String,
    pub loglevel: String,
    pub daemonize: bool,
    pub pidfile: String,
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    pub list_max_listpack_size: i64,
    pub always_show_logo: bool,
    pub enable_protected_configs: String,
    // Persistence (parsed and typed; wired by the persistence work).
    /// RDB save points `(seconds, changes)`; empty = no automatic saves.
    pub save: Vec<(u64, u64)>,
    pub dbfilename: String,
    pub appendonly: bool,
    pub appendfilename: String,
    pub appenddirname: String,
    pub appendfsync: String,
    pub rdbcompression: bool,
    pub rdbchecksum: bool,
    pub rdb_del_sync_files: bool,
    pub stop_writes_on_bgsave_error: bool,
    pub aof_use_rdb_preamble: bool,
    pub aof_load_truncated: bool,
    pub aof_timestamp_enabled: bool,
    pub auto_aof_rewrite_percentage: u64,
    pub auto_aof_rewrite_min_size: u64,
    pub no_appendfsync_on_rewrite: bool,
    // Replication (parsed and typed; wired by the replication work).
    pub replicaof: Option<(String, u16)>,
    pub masterauth: Option<String>,
    pub masteruser: Option<String>,
    /// `user` directives, each the user name and its rules.
    pub acl_users: Vec<Vec<String>>,
    pub repl_backlog_size: u64,
    pub repl_backlog_ttl: u64,
    pub repl_timeout: u64,
    pub repl_ping_replica_period: u64,
    pub repl_diskless_sync: bool,
    pub repl_diskless_sync_delay: u64,
    pub repl_diskless_sync_max_replicas: u64,
    pub repl_diskless_load: String,
    pub repl_disable_tcp_nodelay: bool,
    pub min_replicas_to_write: u64,
    pub min_replicas_max_lag: u64,
    pub replica_serve_stale_data: bool,
    pub replica_priority: u64,
    pub replica_announce_ip: Option<String>,
    pub replica_announce_port: u16,
    pub replica_announced: bool,
    pub replica_lazy_flush: bool,
    pub replica_ignore_maxmemory: bool,
    pub shutdown_timeout: u64,
    /// `rdb-key-save-delay` and `key-load-delay` (see [`crate::rdb::key_delay`]).
    pub rdb_key_save_delay: i32,
    pub key_load_delay: i32,
    /// Tandem: `tandem-fenced-start` (start fenced unless `replicaof` is set).
    pub tandem_fenced_start: bool,
    /// Tandem: `tandem-admin-port` (HTTP admin listener; 0 = off).
    pub tandem_admin_port: u16,
    /// Canonical value of every directive, by canonical name (CONFIG GET).
    pub values: BTreeMap<&'static str, String>,
    /// Directives that appeared in the config file or on the command line.
    pub explicit: BTreeSet<&'static str>,
    /// Absolute path of the config file, if one was given (CONFIG REWRITE).
    pub config_file: Option<PathBuf>,
    /// True when no argument at all was given (the "no config file" warning).
    pub no_args: bool,
}

impl Default for Config {
    fn default() -> Self {
        let mut c = Config {
            bind: Vec::new(),
            port: 0,
            requirepass: None,
            databases: 0,
            maxclients: 0,
            proto_max_bulk_len: 0,
            client_query_buffer_limit: 0,
            maxmemory: 0,
            maxmemory_policy: String::new(),
            maxmemory_samples: 0,
            lazyfree_lazy_expire: false,
            lazyfree_lazy_eviction: false,
            replica_read_only: false,
            slowlog_log_slower_than: 0,
            slowlog_max_len: 0,
            enable_debug_command: String::new(),
            hz: 0,
            timeout: 0,
            dir: String::new(),
            logfile: String::new(),
            loglevel: String::new(),
            daemonize: false,
            pidfile: String::new(),
            hash_max_listpack_entries: 0,
            hash_max_listpack_value: 0,
            set_max_intset_entries: 0,
            zset_max_listpack_entries: 0,
            zset_max_listpack_value: 0,
            list_max_listpack_size: 0,
            always_show_logo: false,
            enable_protected_configs: String::new(),
            save: Vec::new(),
            dbfilename: String::new(),
            appendonly: false,
            appendfilename: String::new(),
            appenddirname: String::new(),
            appendfsync: String::new(),
            rdbcompression: false,
            rdbchecksum: false,
            rdb_del_sync_files: false,
            stop_writes_on_bgsave_error: false,
            aof_use_rdb_preamble: false,
            aof_load_truncated: false,
            aof_timestamp_enabled: false,
            auto_aof_rewrite_percentage: 0,
            auto_aof_rewrite_min_size: 0,
            no_appendfsync_on_rewrite: false,
            replicaof: None,
            masterauth: None,
            masteruser: None,
            acl_users: Vec::new(),
            repl_backlog_size: 0,
            repl_backlog_ttl: 0,
            repl_timeout: 0,
            repl_ping_replica_period: 0,
            repl_diskless_sync: false,
            repl_diskless_sync_delay: 0,
            repl_diskless_sync_max_replicas: 0,
            repl_diskless_load: String::new(),
            repl_disable_tcp_nodelay: false,
            min_replicas_to_write: 0,
            min_replicas_max_lag: 0,
            replica_serve_stale_data: false,
            replica_priority: 0,
            replica_announce_ip: None,
            replica_announce_port: 0,
            replica_announced: false,
            replica_lazy_flush: false,
            replica_ignore_maxmemory: false,
            shutdown_timeout: 0,
            rdb_key_save_delay: 0,
            key_load_delay: 0,
            tandem_fenced_start: false,
            tandem_admin_port: 0,
            values: BTreeMap::new(),
            explicit: BTreeSet::new(),
            config_file: None,
            no_args: true,
        };
        for d in table::all() {
            c.values.insert(d.name, d.default.to_string());
            c.apply_typed(d.name);
        }
        c.dir = "./".into();
        c
    }
}

/// Parses a memory value like Redis's `memtoull`: digits with an optional
/// case-insensitive unit b, k, kb, m, mb, g, gb; no sign, no fraction.
pub fn parse_memory(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    if num.is_empty() {
        return None;
    }
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// Renders bytes the way CONFIG REWRITE does: the largest exact unit (gb, mb, kb).
pub fn format_memory(n: u64) -> String {
    const GB: u64 = 1024 * 1024 * 1024;
    const MB: u64 = 1024 * 1024;
    if n == 0 {
        "0".into()
    } else if n.is_multiple_of(GB) {
        format!("{}gb", n / GB)
    } else if n.is_multiple_of(MB) {
        format!("{}mb", n / MB)
    } else if n.is_multiple_of(1024) {
        format!("{}kb", n / 1024)
    } else {
        n.to_string()
    }
}

/// Strict decimal integer (no leading '+', no spaces), as Redis's `string2ll`.
/// The first argument of a one-value directive ("" if none).
fn first(args: &[String]) -> &str {
    args.first().map(String::as_str).unwrap_or("")
}

pub(crate) fn parse_int(s: &str) -> Option<i64> {
    crate::resp::parse_i64(s.as_bytes())
}

/// Where a directive is being set from: some checks differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Config file or command line: `dir` changes the working directory right away.
    Startup,
    /// CONFIG SET: validation only; the caller applies side effects after commit.
    Runtime,
}

impl Config {
    /// Sets a directive from its arguments (already tokenised). `name` may be an
    /// alias, in any case. Errors carry Redis's reason text (no prefix).
    pub fn set(&mut self, name: &str, args: &[String], origin: Origin) -> Result<(), String> {
        let lname = name.to_ascii_lowercase();
        let d = table::find(&lname)
            .ok_or_else(|| "Bad directive or wrong number of arguments".to_string())?;
        let canon = self.canonical(d, args, origin)?;
        self.values.insert(d.name, canon);
        self.apply_typed(d.name);
        Ok(())
    }

    /// Validates `args` for `d` and returns the canonical value.
    fn canonical(&self, d: &Directive, args: &[String], origin: Origin) -> Result<String, String> {
        // Multi-argument directives given as one string are re-split on spaces.
        let split: Vec<String>;
        let args = if d.has(table::M) && args.len() == 1 {
            split = args[0]
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            &split[..]
        } else {
            args
        };
        if !d.has(table::M) && args.len() != 1 {
            return Err("wrong number of arguments".into());
        }
        if d.name == "proc-title-template" {
            crate::proctitle::validate(&args[0], self)?;
        }
        match d.kind {
            Kind::Bool => match args[0].to_ascii_lowercase().as_str() {
                v @ ("yes" | "no") => Ok(v.to_string()),
                _ => Err("argument must be 'yes' or 'no'".into()),
            },
            Kind::Int(min, max) => {
                let v = parse_int(&args[0]).ok_or("argument couldn't be parsed into an integer")?;
                if v < min || v > max {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                // Redis stores hz clamped to its supported range (CONFIG GET shows it).
                let v = if d.name == "hz" { v.clamp(1, 500) } else { v };
                Ok(v.to_string())
            }
            Kind::Memory(min, max) => {
                let v = parse_memory(&args[0]).ok_or("argument must be a memory value")?;
                if (v as i128) < min as i128 || (v as i128) > max as i128 {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                Ok(v.to_string())
            }
            Kind::Enum(words) => {
                let v = args[0].to_ascii_lowercase();
                if words.contains(&v.as_str()) {
                    Ok(v)
                } else {
                    Err(format!(
                        "argument(s) must be one of the following: {}",
                        words.join(", ")
                    ))
                }
            }
            Kind::Str => Ok(args[0].clone()),
            Kind::Special => self.special(d.name, args, origin),
        }
    }

    /// Directives with their own syntax; each arm's rules live in [`special`].
    fn special(&self, name: &str, args: &[String], origin: Origin) -> Result<String, String> {
        self.special_value(name, args, origin)
            .map_err(|e| e.to_string())
    }

    fn special_value(&self, name: &str, args: &[String], origin: Origin) -> special::Checked {
        match name {
            "save" => special::save_points(args),
            // Tandem's `tandem-admin-bind` reads like `bind`; empty means the first `bind`.
            "bind" | "tandem-admin-bind" => special::addresses(args),
            "replicaof" => special::replicaof(args),
            "client-output-buffer-limit" => {
                let current = self.get("client-output-buffer-limit").unwrap_or("");
                special::output_buffer_limit(current, args)
            }
            "oom-score-adj-values" => special::oom_score_adj(args),
            "latency-tracking-info-percentiles" => special::percentiles(args),
            "shutdown-on-sigint" | "shutdown-on-sigterm" => special::shutdown_on_signal(args),
            "maxmemory-clients" => special::maxmemory_clients(first(args)),
            "notify-keyspace-events" => special::keyspace_events(first(args)),
            "unixsocketperm" => special::octal_perm(first(args)),
            "dir" => special::dir(first(args), origin),
            "logfile" => Ok(first(args).to_string()),
            _ => Err(special::Invalid::BadDirective),
        }
    }

    /// The canonical value of a directive (by name or alias, lower-case).
    pub fn get(&self, name: &str) -> Option<&str> {
        let d = table::find(name)?;
        self.values.get(d.name).map(String::as_str)
    }

    fn b(&self, n: &str) -> bool {
        self.get(n) == Some("yes")
    }

    fn i(&self, n: &str) -> i64 {
        self.get(n).and_then(parse_int).unwrap_or(0)
    }

    fn u(&self, n: &str) -> u64 {
        self.i(n).max(0) as u64
    }

    fn s(&self, n: &str) -> String {
        self.get(n).unwrap_or("").to_string()
    }

    fn opt(&self, n: &str) -> Option<String> {
        Some(self.s(n)).filter(|s| !s.is_empty())
    }

    /// `client-output-buffer-limit` per client class.
    pub fn output_limits(&self) -> crate::outbuf::Limits {
        crate::outbuf::parse(self.get("client-output-buffer-limit").unwrap_or(""))
    }

    /// Recomputes the typed field(s) of one directive from its canonical value.
    pub fn apply_typed(&mut self, name: &str) {
        match name {
            "bind" => {
                self.bind = self
                    .s(name)
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "port" => self.port = self.i(name) as u16,
            "requirepass" => self.requirepass = self.opt(name),
            "databases" => self.databases = self.u(name) as usize,
            "maxclients" => self.maxclients = self.u(name) as usize,
            "proto-max-bulk-len" => self.proto_max_bulk_len = self.i(name),
            "client-query-buffer-limit" => self.client_query_buffer_limit = self.u(name) as usize,
            "maxmemory" => self.maxmemory = self.u(name),
            "maxmemory-policy" => self.maxmemory_policy = self.s(name),
            "maxmemory-samples" => self.maxmemory_samples = self.u(name) as usize,
            "lazyfree-lazy-expire" => self.lazyfree_lazy_expire = self.b(name),
            "lazyfree-lazy-eviction" => self.lazyfree_lazy_eviction = self.b(name),
            "replica-read-only" => self.replica_read_only = self.b(name),
            "slowlog-log-slower-than" => self.slowlog_log_slower_than = self.i(name),
            "slowlog-max-len" => self.slowlog_max_len = self.u(name) as usize,
            "enable-debug-command" => self.enable_debug_command = self.s(name),
            "enable-protected-configs" => self.enable_protected_configs = self.s(name),
            "hz" => self.hz = self.u(name) as u32,
            "timeout" => self.timeout = self.u(name),
            "dir" => {
                let v = self.s(name);
                if !v.is_empty() {
                    self.dir = v;
                }
            }
            "logfile" => self.logfile = self.s(name),
            "loglevel" => self.loglevel = self.s(name),
            "daemonize" => self.daemonize = self.b(name),
            "pidfile" => self.pidfile = self.s(name),
            "hash-max-listpack-entries" => self.hash_max_listpack_entries = self.u(name) as usize,
            "hash-max-listpack-value" => self.hash_max_listpack_value = self.u(name) as usize,
            "set-max-intset-entries" => self.set_max_intset_entries = self.u(name) as usize,
            "zset-max-listpack-entries" => self.zset_max_listpack_entries = self.u(name) as usize,
            "zset-max-listpack-value" => self.zset_max_listpack_value = self.u(name) as usize,
            "list-max-listpack-size" => self.list_max_listpack_size = self.i(name),
            "always-show-logo" => self.always_show_logo = self.b(name),
            "save" => {
                let nums: Vec<u64> = self
                    .s(name)
                    .split(' ')
                    .filter_map(|s| s.parse().ok())
                    .collect();
                self.save = nums
                    .chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (c[0], c[1]))
                    .collect();
            }
            "dbfilename" => self.dbfilename = self.s(name),
            "appendonly" => self.appendonly = self.b(name),
            "appendfilename" => self.appendfilename = self.s(name),
            "appenddirname" => self.appenddirname = self.s(name),
            "appendfsync" => self.appendfsync = self.s(name),
            "rdbcompression" => self.rdbcompression = self.b(name),
            "rdbchecksum" => self.rdbchecksum = self.b(name),
            "rdb-del-sync-files" => self.rdb_del_sync_files = self.b(name),
            "stop-writes-on-bgsave-error" => self.stop_writes_on_bgsave_error = self.b(name),
            "aof-use-rdb-preamble" => self.aof_use_rdb_preamble = self.b(name),
            "aof-load-truncated" => self.aof_load_truncated = self.b(name),
            "aof-timestamp-enabled" => self.aof_timestamp_enabled = self.b(name),
            "auto-aof-rewrite-percentage" => self.auto_aof_rewrite_percentage = self.u(name),
            "auto-aof-rewrite-min-size" => self.auto_aof_rewrite_min_size = self.u(name),
            "no-appendfsync-on-rewrite" => self.no_appendfsync_on_rewrite = self.b(name),
            "replicaof" => {
                let v = self.s(name);
                self.replicaof = v
                    .rsplit_once(' ')
                    .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)));
            }
            "masterauth" => self.masterauth = self.opt(name),
            "masteruser" => self.masteruser = self.opt(name),
            "repl-backlog-size" => self.repl_backlog_size = self.u(name),
            "repl-backlog-ttl" => self.repl_backlog_ttl = self.u(name),
            "repl-timeout" => self.repl_timeout = self.u(name),
            "repl-ping-replica-period" => self.repl_ping_replica_period = self.u(name),
            "repl-diskless-sync" => self.repl_diskless_sync = self.b(name),
            "repl-diskless-sync-delay" => self.repl_diskless_sync_delay = self.u(name),
            "repl-diskless-sync-max-replicas" => {
                self.repl_diskless_sync_max_replicas = self.u(name)
            }
            "repl-diskless-load" => self.repl_diskless_load = self.s(name),
            "repl-disable-tcp-nodelay" => self.repl_disable_tcp_nodelay = self.b(name),
            "min-replicas-to-write" => self.min_replicas_to_write = self.u(name),
            "min-replicas-max-lag" => self.min_replicas_max_lag = self.u(name),
            "replica-serve-stale-data" => self.replica_serve_stale_data = self.b(name),
            "replica-priority" => self.replica_priority = self.u(name),
            "replica-announce-ip" => self.replica_announce_ip = self.opt(name),
            "replica-announce-port" => self.replica_announce_port = self.u(name) as u16,
            "replica-announced" => self.replica_announced = self.b(name),
            "replica-lazy-flush" => self.replica_lazy_flush = self.b(name),
            "replica-ignore-maxmemory" => self.replica_ignore_maxmemory = self.b(name),
            "shutdown-timeout" => self.shutdown_timeout = self.u(name),
            "rdb-key-save-delay" => self.rdb_key_save_delay = self.i(name) as i32,
            "key-load-delay" => self.key_load_delay = self.i(name) as i32,
            "tandem-fenced-start" => self.tandem_fenced_start = self.b(name),
            "tandem-admin-port" => self.tandem_admin_port = self.i(name) as u16,
            _ => {}
        }
    }

    /// Tandem extension: a non-empty `TANDEM_BIND` (space-separated addresses) replaces
    /// the `bind` directive, whatever the config file or command line said. Returns the
    /// addresses applied, `None` when the variable is unset or blank.
    pub fn apply_env_bind(&mut self, env: Option<&str>) -> Result<Option<Vec<String>>, String> {
        let addrs: Vec<String> = env
            .unwrap_or("")
            .split_ascii_whitespace()
            .map(String::from)
            .collect();
        if addrs.is_empty() {
            return Ok(None);
        }
        self.set("bind", &addrs, Origin::Startup)
            .map_err(|e| format!("TANDEM_BIND: {e}"))?;
        Ok(Some(addrs))
    }

    /// Directives given explicitly that Tandem accepts but does not act on.
    pub fn not_acted_on(&self) -> Vec<&'static str> {
        self.explicit
            .iter()
            .copied()
            .filter(|n| table::find(n).is_some_and(|d| !d.acted()))
            .collect()
    }

    /// A directive set to something Tandem cannot honour safely, with the reason.
    pub fn refused(&self) -> Option<(&'static str, &'static str)> {
        table::all()
            .filter(|d| d.has(table::U))
            .find(|d| self.values.get(d.name).map(String::as_str) != Some(d.default))
            .map(|d| (d.name, table::unsafe_reason(d.name)))
    }

    /// (name, value) pairs whose name or alias matches `pattern` (CONFIG GET).
    pub fn matching(&self, pattern: &[u8]) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        // As in Redis, a hidden directive answers only to its exact name, not a glob.
        let glob = pattern.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
        for d in table::all() {
            if glob && d.has(table::H) {
                continue;
            }
            for n in std::iter::once(d.name).chain(d.alias) {
                if crate::util::glob_match(pattern, n.as_bytes(), true) {
                    let v = if d.name == "dir" {
                        current_dir()
                    } else {
                        self.values.get(d.name).cloned().unwrap_or_default()
                    };
                    out.push((n, v));
                }
            }
        }
        out
    }
}

/// The process's working directory as a string (CONFIG GET dir).
pub fn current_dir() -> String {
    std::env::current_dir()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The C library's wording for an I/O error ("No such file or directory").
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_bind_replaces_the_bind_directive() {
        let mut c = Config::default();
        c.set("bind", &["0.0.0.0".into()], Origin::Startup).unwrap();
        assert_eq!(c.apply_env_bind(None).unwrap(), None);
        assert_eq!(c.apply_env_bind(Some("  ")).unwrap(), None);
        assert_eq!(c.bind, vec!["0.0.0.0"]);
        let got = c.apply_env_bind(Some(" 127.0.0.2  -::1 ")).unwrap();
        assert_eq!(got, Some(vec!["127.0.0.2".to_string(), "-::1".to_string()]));
        assert_eq!(c.bind, vec!["127.0.0.2", "-::1"]);
        assert_eq!(c.get("bind"), Some("127.0.0.2 -::1"));
        let many = vec!["127.0.0.1"; 17].join(" ");
        assert!(c.apply_env_bind(Some(&many)).is_err());
    }

    #[test]
    fn memory_units_like_redis() {
        assert_eq!(parse_memory("0"), Some(0));
        assert_eq!(parse_memory("100"), Some(100));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("1KB"), Some(1024));
        assert_eq!(parse_memory("2m"), Some(2_000_000));
        assert_eq!(parse_memory("2Mb"), Some(2 * 1024 * 1024));
        assert_eq!(parse_memory("1g"), Some(1_000_000_000));
        assert_eq!(parse_memory("1gB"), Some(1 << 30));
        assert_eq!(parse_memory("5b"), Some(5));
        for bad in ["", "-1", "1.5mb", "1 mb", "mb", "1tb", "+1"] {
            assert_eq!(parse_memory(bad), None, "{bad}");
        }
        assert_eq!(format_memory(64 << 20), "64mb");
        assert_eq!(format_memory(1 << 30), "1gb");
        assert_eq!(format_memory(1500), "1500");
    }

    #[test]
    fn defaults_match_redis_7() {
        let c = Config::default();
        assert_eq!(c.port, 6379);
        assert_eq!(c.bind, vec!["*", "-::*"]);
        assert_eq!(c.databases, 16);
        assert_eq!(c.save, vec![(3600, 1), (300, 100), (60, 10000)]);
        assert_eq!(c.maxmemory_policy, "noeviction");
        assert_eq!(c.proto_max_bulk_len, 512 << 20);
        assert_eq!(c.repl_backlog_size, 1 << 20);
        assert_eq!(c.requirepass, None);
        assert_eq!(c.replicaof, None);
        assert_eq!(c.dbfilename, "dump.rdb");
        assert!(c.refused().is_none());
    }

    #[test]
    fn typed_values_follow_sets() {
        let mut c = Config::default();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        c.set("MAXMEMORY", &s(&["10mb"]), Origin::Runtime).unwrap();
        assert_eq!(c.maxmemory, 10 << 20);
        assert_eq!(c.get("maxmemory"), Some("10485760"));
        c.set("slaveof", &s(&["10.0.0.1", "6380"]), Origin::Runtime)
            .unwrap();
        assert_eq!(c.replicaof, Some(("10.0.0.1".into(), 6380)));
        assert_eq!(c.get("replicaof"), Some("10.0.0.1 6380"));
        c.set("replicaof", &s(&["no", "one"]), Origin::Runtime)
            .unwrap();
        assert_eq!(c.replicaof, None);
        c.set("save", &s(&["100 10"]), Origin::Runtime).unwrap();
        assert_eq!(c.save, vec![(100, 10)]);
        c.set("save", &s(&[""]), Origin::Runtime).unwrap();
        assert!(c.save.is_empty());
        c.set(
            "client-output-buffer-limit",
            &s(&["pubsub", "64mb", "16mb", "30"]),
            Origin::Runtime,
        )
        .unwrap();
        assert_eq!(
            c.get("client-output-buffer-limit"),
            Some("normal 0 0 0 slave 268435456 67108864 60 pubsub 67108864 16777216 30")
        );
        assert_eq!(
            c.set("appendonly", &s(&["maybe"]), Origin::Runtime),
            Err("argument must be 'yes' or 'no'".into())
        );
        assert_eq!(
            c.set("port", &s(&["70000"]), Origin::Runtime),
            Err("argument must be between 0 and 65535 inclusive".into())
        );
        assert_eq!(
            c.set("port", &s(&["1", "2"]), Origin::Runtime),
            Err("wrong number of arguments".into())
        );
        c.set("requirepass", &s(&["pw"]), Origin::Runtime).unwrap();
        assert_eq!(c.requirepass.as_deref(), Some("pw"));
        c.set("requirepass", &s(&[""]), Origin::Runtime).unwrap();
        assert_eq!(c.requirepass, None);
    }

    #[test]
    fn config_get_patterns_include_aliases() {
        let c = Config::default();
        let m = c.matching(b"*slave*read*");
        assert_eq!(m, vec![("slave-read-only", "yes".to_string())]);
        assert_eq!(c.matching(b"*").len(), 192 + table::TANDEM_DIRECTIVES.len());
        assert_eq!(
            c.matching(b"tandem-*"),
            vec![
                ("tandem-admin-bind", String::new()),
                ("tandem-admin-port", "0".to_string()),
                ("tandem-event-loop", "yes".to_string()),
                ("tandem-fenced-start", "no".to_string()),
                ("tandem-requirepass-file", String::new())
            ]
        );
        assert_eq!(c.matching(b"MAXMEMORY").len(), 1);
        let mut c = c;
        let s = |v: &str| vec![v.to_string()];
        c.set("notify-keyspace-events", &s("KEA"), Origin::Runtime)
            .unwrap();
        assert_eq!(c.get("notify-keyspace-events"), Some("AKE"));
        c.set("notify-keyspace-events", &s("Elx"), Origin::Runtime)
            .unwrap();
        assert_eq!(c.get("notify-keyspace-events"), Some("lxE"));
    }
}
