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
        let val = args.get(i + 1).cloned().unwrap_or_default();
        match name.as_str() {
            "port" => c.port = val.parse().map_err(|_| "Invalid port\n".to_string())?,
            "bind" => c.bind = val.split_whitespace().map(String::from).collect(),
            "requirepass" => c.requirepass = Some(val),
            "enable-debug-command" => c.enable_debug_command = val,
            "slowlog-log-slower-than" => {
                c.slowlog_log_slower_than = val.parse().map_err(|_| "Invalid slowlog\n")?
            }
            "databases" => c.databases = val.parse().map_err(|_| "Invalid databases\n")?,
            _ => {}
        }
        i += 2;
    }
    Ok(c)
}
