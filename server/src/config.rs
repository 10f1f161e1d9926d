//! Configuration: the values the server runs with. The redis.conf parser that fills
//! them lives in `config/parse` (see the config issue work); this module is the data.

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
    // Replication (issue 4).
    /// `replicaof host port` (None = master).
    pub replicaof: Option<(String, u16)>,
    pub masterauth: Option<String>,
    pub masteruser: Option<String>,
    pub replica_serve_stale_data: bool,
    pub replica_priority: i64,
    pub replica_announce_ip: Option<String>,
    pub replica_announce_port: u16,
    pub replica_announced: bool,
    pub repl_backlog_size: u64,
    pub repl_backlog_ttl: u64,
    pub repl_ping_replica_period: u64,
    pub repl_timeout: u64,
    pub repl_diskless_sync: bool,
    pub repl_diskless_sync_delay: u64,
    pub min_replicas_to_write: u64,
    pub min_replicas_max_lag: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: vec!["*".into(), "-::*".into()],
            port: 6379,
            requirepass: None,
            databases: 16,
            maxclients: 10000,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            maxmemory_samples: 5,
            lazyfree_lazy_expire: false,
            replica_read_only: true,
            slowlog_log_slower_than: 10000,
            slowlog_max_len: 128,
            enable_debug_command: "no".into(),
            hz: 10,
            timeout: 0,
            dir: "./".into(),
            logfile: String::new(),
            loglevel: "notice".into(),
            daemonize: false,
            pidfile: String::new(),
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
            replicaof: None,
            masterauth: None,
            masteruser: None,
            replica_serve_stale_data: true,
            replica_priority: 100,
            replica_announce_ip: None,
            replica_announce_port: 0,
            replica_announced: true,
            repl_backlog_size: 1024 * 1024,
            repl_backlog_ttl: 3600,
            repl_ping_replica_period: 10,
            repl_timeout: 60,
            repl_diskless_sync: true,
            repl_diskless_sync_delay: 5,
            min_replicas_to_write: 0,
            min_replicas_max_lag: 10,
        }
    }
}

/// Builds the configuration from the command line (`[configfile] [--name value ...]`).
/// Minimal form: only `--name value` pairs for the directives below; the full
/// redis.conf parser replaces it.
pub fn load_from_args(args: &[String]) -> Result<Config, String> {
    let mut c = Config::default();
    let mut i = 0;
    while i < args.len() {
        let name = args[i].trim_start_matches("--").to_ascii_lowercase();
        // A directive takes every argument up to the next `--name` (as redis-server).
        let mut vals = Vec::new();
        i += 1;
        while i < args.len() && !(args[i].starts_with("--") && args[i].len() > 2) {
            vals.push(args[i].clone());
            i += 1;
        }
        let val = vals.join(" ");
        let bad = |what: &str| format!("Invalid {what}\n");
        let yes_no = |v: &str| match v.to_ascii_lowercase().as_str() {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err("argument must be 'yes' or 'no'\n".to_string()),
        };
        let num = |v: &str| v.parse::<u64>().map_err(|_| bad("argument"));
        match name.as_str() {
            "port" => c.port = val.parse().map_err(|_| "Invalid port\n".to_string())?,
            "bind" => c.bind = val.split_whitespace().map(String::from).collect(),
            "requirepass" => c.requirepass = Some(val),
            "dir" => c.dir = val,
            "replicaof" | "slaveof" => {
                let parts: Vec<&str> = val.split_whitespace().collect();
                match parts.as_slice() {
                    [h, p] if h.eq_ignore_ascii_case("no") && p.eq_ignore_ascii_case("one") => {
                        c.replicaof = None
                    }
                    [h, p] => {
                        let port = p.parse::<u16>().map_err(|_| bad("master port"))?;
                        c.replicaof = Some((h.to_string(), port));
                    }
                    _ => return Err("wrong number of arguments\n".into()),
                }
            }
            "masterauth" => c.masterauth = Some(val).filter(|v| !v.is_empty()),
            "masteruser" => c.masteruser = Some(val).filter(|v| !v.is_empty()),
            "replica-read-only" | "slave-read-only" => c.replica_read_only = yes_no(&val)?,
            "replica-serve-stale-data" | "slave-serve-stale-data" => {
                c.replica_serve_stale_data = yes_no(&val)?
            }
            "replica-priority" | "slave-priority" => {
                c.replica_priority = val.parse().map_err(|_| bad("argument"))?
            }
            "replica-announce-ip" | "slave-announce-ip" => {
                c.replica_announce_ip = Some(val).filter(|v| !v.is_empty())
            }
            "replica-announce-port" | "slave-announce-port" => {
                c.replica_announce_port = val.parse().map_err(|_| bad("argument"))?
            }
            "replica-announced" => c.replica_announced = yes_no(&val)?,
            "repl-backlog-size" => {
                c.repl_backlog_size = parse_memory(&val).ok_or_else(|| bad("argument"))?
            }
            "repl-backlog-ttl" => c.repl_backlog_ttl = num(&val)?,
            "repl-ping-replica-period" | "repl-ping-slave-period" => {
                c.repl_ping_replica_period = num(&val)?.max(1)
            }
            "repl-timeout" => c.repl_timeout = num(&val)?.max(1),
            "repl-diskless-sync" => c.repl_diskless_sync = yes_no(&val)?,
            "repl-diskless-sync-delay" => c.repl_diskless_sync_delay = num(&val)?,
            "min-replicas-to-write" | "min-slaves-to-write" => c.min_replicas_to_write = num(&val)?,
            "min-replicas-max-lag" | "min-slaves-max-lag" => c.min_replicas_max_lag = num(&val)?,
            _ => {}
        }
    }
    Ok(c)
}

/// Parses a memory amount like Redis's `memtoull`: `1024`, `1k`/`1kb`, `1m`/`1mb`,
/// `1g`/`1gb` (`k` = 1000, `kb` = 1024), case-insensitive.
pub fn parse_memory(s: &str) -> Option<u64> {
    let l = s.trim().to_ascii_lowercase();
    let (digits, mul) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suf, m)| l.strip_suffix(suf).map(|d| (d.to_string(), *m)))
    .unwrap_or((l.clone(), 1));
    digits.parse::<u64>().ok()?.checked_mul(mul)
}
