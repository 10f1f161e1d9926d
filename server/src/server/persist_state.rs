//! RDB persistence status (BGSAVE in progress, last results, what the startup load
//! found), owned by the `Server` value (`Server::persist`); `crate::persist` acts.

use crate::rdb;
use std::time::Instant;

#[derive(Debug)]
pub struct PersistState {
    pub bgsave_in_progress: bool,
    /// The running BGSAVE's child (none when it saves from an in-process copy).
    pub bgsave_pid: Option<i32>,
    /// The running BGSAVE was killed on purpose (FLUSHALL): its end is no error.
    pub bgsave_aborted: bool,
    pub bgsave_started: Option<Instant>,
    pub dirty_before_bgsave: u64,
    pub last_bgsave_ok: bool,
    /// Duration of the last BGSAVE in seconds, -1 if none.
    pub last_bgsave_time_sec: i64,
    /// Unix seconds of the last BGSAVE attempt (for the retry delay).
    pub last_bgsave_try: i64,
    pub rdb_saves: u64,
    pub last_load_keys_loaded: u64,
    pub last_load_keys_expired: u64,
    /// Replication identity found in the RDB loaded at startup (for PSYNC after a restart).
    pub loaded_repl: Option<rdb::ReplInfo>,
    /// The keys that RDB held already expired (dropped at load, when a master):
    /// their DELs go into the backlog that `loaded_repl` restores.
    pub loaded_expired: Vec<(usize, bytes::Bytes)>,
    /// A BGSAVE asked for inside EXEC: started by the persistence cron, since a
    /// transaction does not fork (Redis `rdb_bgsave_scheduled`).
    pub bgsave_scheduled: bool,
    /// A BGREWRITEAOF asked for inside EXEC or while a BGSAVE runs: started by the
    /// AOF cron (Redis `aof_rewrite_scheduled`).
    pub aof_rewrite_scheduled: bool,
}

impl Default for PersistState {
    fn default() -> Self {
        PersistState {
            bgsave_in_progress: false,
            bgsave_pid: None,
            bgsave_aborted: false,
            bgsave_started: None,
            dirty_before_bgsave: 0,
            last_bgsave_ok: true,
            last_bgsave_time_sec: -1,
            last_bgsave_try: 0,
            rdb_saves: 0,
            last_load_keys_loaded: 0,
            last_load_keys_expired: 0,
            loaded_repl: None,
            loaded_expired: Vec::new(),
            bgsave_scheduled: false,
            aof_rewrite_scheduled: false,
        }
    }
}
