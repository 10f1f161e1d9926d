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
    // Persistence (issue 3).
    /// `save <seconds> <changes>` rules; empty = no automatic snapshots.
    pub save_points: Vec<(u64, u64)>,
    pub dbfilename: String,
    pub rdbcompression: bool,
    pub rdbchecksum: bool,
    pub stop_writes_on_bgsave_error: bool,
    pub appendonly: bool,
    pub appendfilename: String,
    pub appenddirname: String,
    /// "always" | "everysec" | "no".
    pub appendfsync: String,
    pub aof_load_truncated: bool,
    pub aof_use_rdb_preamble: bool,
    pub auto_aof_rewrite_percentage: u64,
    pub auto_aof_rewrite_min_size: u64,
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
            save_points: vec![(3600, 1), (300, 100), (60, 10000)],
            dbfilename: "dump.rdb".into(),
            rdbcompression: true,
            rdbchecksum: true,
            stop_writes_on_bgsave_error: true,
            appendonly: false,
            appendfilename: "appendonly.aof".into(),
            appenddirname: "appendonlydir".into(),
            appendfsync: "everysec".into(),
            aof_load_truncated: true,
            aof_use_rdb_preamble: true,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 * 1024 * 1024,
        }
    }
}

/// Builds the configuration from the command line (`[configfile] [--name value ...]`).
/// Minimal form: only `--name value` pairs for the directives below; the full
/// redis.conf parser replaces it.
pub fn load_from_args(args: &[String]) -> Result<Config, String> {
    let mut c = Config::default();
    let mut save_seen = false;
    let mut i = 0;
    while i < args.len() {
        let name = args[i].trim_start_matches("--").to_ascii_lowercase();
        let val = args.get(i + 1).cloned().unwrap_or_default();
        match name.as_str() {
            "port" => c.port = val.parse().map_err(|_| "Invalid port\n".to_string())?,
            "bind" => c.bind = val.split_whitespace().map(String::from).collect(),
            "requirepass" => c.requirepass = Some(val),
            "dir" => c.dir = val,
            "dbfilename" => c.dbfilename = val,
            "save" => {
                // The first `save` replaces the defaults, later ones add rules.
                if !save_seen {
                    c.save_points.clear();
                    save_seen = true;
                }
                c.save_points.extend(parse_save_points(&val)?);
            }
            "rdbcompression" => c.rdbcompression = parse_bool(&name, &val)?,
            "rdbchecksum" => c.rdbchecksum = parse_bool(&name, &val)?,
            "stop-writes-on-bgsave-error" => {
                c.stop_writes_on_bgsave_error = parse_bool(&name, &val)?
            }
            "appendonly" => c.appendonly = parse_bool(&name, &val)?,
            "appendfilename" => c.appendfilename = val,
            "appenddirname" => c.appenddirname = val,
            "appendfsync" => match val.to_ascii_lowercase().as_str() {
                v @ ("always" | "everysec" | "no") => c.appendfsync = v.to_string(),
                _ => return Err(format!("Invalid argument '{val}' for 'appendfsync'\n")),
            },
            "aof-load-truncated" => c.aof_load_truncated = parse_bool(&name, &val)?,
            "aof-use-rdb-preamble" => c.aof_use_rdb_preamble = parse_bool(&name, &val)?,
            "auto-aof-rewrite-percentage" => {
                c.auto_aof_rewrite_percentage = val
                    .parse()
                    .map_err(|_| format!("Invalid argument '{val}' for '{name}'\n"))?
            }
            "auto-aof-rewrite-min-size" => {
                c.auto_aof_rewrite_min_size = parse_memory(&val)
                    .ok_or_else(|| format!("Invalid argument '{val}' for '{name}'\n"))?
            }
            _ => {}
        }
        i += 2;
    }
    Ok(c)
}

fn parse_bool(name: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("argument must be 'yes' or 'no' for '{name}'\n")),
    }
}

/// `"3600 1 300 100"` -> [(3600, 1), (300, 100)]; `""` -> none.
pub fn parse_save_points(v: &str) -> Result<Vec<(u64, u64)>, String> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() & 1 == 1 {
        return Err("Invalid save parameters\n".into());
    }
    parts
        .chunks(2)
        .map(|p| match (p[0].parse(), p[1].parse()) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => Err("Invalid save parameters\n".to_string()),
        })
        .collect()
}

/// `64mb`, `1gb`, `100` (bytes), as redis.conf memory units.
pub fn parse_memory(v: &str) -> Option<u64> {
    let l = v.to_ascii_lowercase();
    let (num, mul) = [
        ("kb", 1024u64),
        ("mb", 1 << 20),
        ("gb", 1 << 30),
        ("k", 1000),
        ("m", 1_000_000),
        ("g", 1_000_000_000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suf, m)| l.strip_suffix(suf).map(|n| (n.to_string(), *m)))
    .unwrap_or((l.clone(), 1));
    num.parse::<u64>().ok()?.checked_mul(mul)
}
