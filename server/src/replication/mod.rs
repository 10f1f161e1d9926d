//! Master–replica replication as Redis 7.0 does it.
//!
//! * [`backlog`]: the retained stream tail (byte-level offset semantics).
//! * [`psync`]: the pure PSYNC accept/reject decision.
//! * [`primary`]: the master side (SYNC/PSYNC, snapshot transfer, replica outputs,
//!   ACKs, PINGs, WAIT, timeouts).
//! * [`replica`]: the replica side (handshake, RDB transfer, applying and proxying
//!   the stream, ACKs, reconnects, cached master).
//!
//! All replication state that must be ordered with the keyspace lives in
//! [`ReplState`] inside the locked `Store` (`store.repl`).

pub mod backlog;
pub mod codec;
pub mod primary;
pub mod psync;
pub mod replica;
pub mod sync_stream;

use crate::server::{ClientHandle, ClientId, Server, Store};
use backlog::Backlog;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// A cleared replication id (`replid2` when there is no previous history).
pub const NULL_REPLID: &str = "0000000000000000000000000000000000000000";

/// `*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n`
pub const GETACK: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";
/// The master's keepalive, lowercase as Redis sends it.
pub const PING: &[u8] = b"*1\r\n$4\r\nping\r\n";

/// Master-side state of one replica connection (Redis `slave->replstate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Waiting for the snapshot to start (`WAIT_BGSAVE_START`).
    WaitBgsaveStart,
    /// Snapshot being produced (`WAIT_BGSAVE_END`).
    WaitBgsaveEnd,
    SendBulk,
    Online,
}

impl ReplicaState {
    pub fn info_name(self) -> &'static str {
        match self {
            ReplicaState::WaitBgsaveStart | ReplicaState::WaitBgsaveEnd => "wait_bgsave",
            ReplicaState::SendBulk => "send_bulk",
            ReplicaState::Online => "online",
        }
    }
}

/// What a replica announced with REPLCONF before SYNC/PSYNC.
#[derive(Debug, Clone, Default)]
pub struct ReplConf {
    pub listening_port: u16,
    pub ip_address: Option<String>,
    pub capa_eof: bool,
    pub capa_psync2: bool,
}

/// A replica attached to this node.
#[derive(Debug)]
pub struct ReplicaLink {
    pub client_id: ClientId,
    pub handle: Arc<ClientHandle>,
    /// Announced ip, else the peer ip.
    pub ip: String,
    pub port: u16,
    pub state: ReplicaState,
    pub ack_off: i64,
    pub ack_time: Instant,
    pub conf: ReplConf,
    /// Legacy SYNC: no +FULLRESYNC, not expected to ACK.
    pub pre_psync: bool,
    /// Stream bytes for this replica; `None` until its snapshot point is fixed.
    pub tx: Option<mpsc::UnboundedSender<Bytes>>,
    /// The snapshot this replica receives, once its sync point is fixed.
    pub ticket: Option<Ticket>,
    /// Stream receiver prepared by another replica's task that gathered this one
    /// into its snapshot.
    pub pending_rx: Option<mpsc::UnboundedReceiver<Bytes>>,
    /// Stream bytes queued for this replica and not yet written to its socket.
    pub queued: Arc<std::sync::atomic::AtomicU64>,
}

/// Result of a snapshot job, shared by every replica synced from it.
pub type SnapshotResult = Option<Arc<Result<Bytes, String>>>;

/// A snapshot cut at stream offset `offset` of history `replid`; `done` yields the
/// serialised RDB once produced. Several replicas may share one.
#[derive(Debug, Clone)]
pub struct Ticket {
    pub offset: i64,
    pub replid: String,
    pub eof: bool,
    pub done: tokio::sync::watch::Receiver<SnapshotResult>,
    /// Socket target: each replica's chunk receiver until its task takes it.
    pub feeds: sync_stream::Feeds,
}

impl ReplicaLink {
    /// `ip:port` as Redis names a replica in logs (IPv6 in brackets).
    pub fn name(&self) -> String {
        replica_name(&self.ip, self.port)
    }
}

pub fn replica_name(ip: &str, port: u16) -> String {
    let ip = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    if port == 0 {
        format!("{ip}:<unknown-replica-port>")
    } else {
        format!("{ip}:{port}")
    }
}

/// How a new replica connection continues once its socket is handed over.
#[derive(Debug)]
pub enum Handoff {
    /// Partial resync accepted: stream from `rx` (backlog bytes already queued).
    Continue(mpsc::UnboundedReceiver<Bytes>),
    /// Full resync: the snapshot point is fixed by the serving task.
    Full,
}

/// Replica-side link state (Redis `server.repl_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Connect,
    Connecting,
    Handshake,
    Transfer,
    Connected,
}

impl LinkState {
    pub fn role_name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Transfer => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// Saved state of a former master link, used to PSYNC later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedMaster {
    pub replid: String,
    pub reploff: i64,
    pub db: usize,
}

/// The master this node replicates from and the live link's progress.
#[derive(Debug)]
pub struct MasterLink {
    pub host: String,
    pub port: u16,
    pub state: LinkState,
    /// Bumped on every REPLICAOF; a link task whose generation is stale stops.
    pub generation: u64,
    /// Live master client: (read_reploff, reploff, db); None when no master client.
    pub client: Option<(i64, i64, usize)>,
    pub last_io: Instant,
    /// When the link last went down (None = never up since start/promotion).
    pub down_since: Option<Instant>,
    /// During TRANSFER: (total bytes or -1 / 0 for EOF form, read bytes).
    pub transfer: Option<(i64, i64)>,
    pub transfer_last_io: Instant,
}

/// All replication state, ordered with the keyspace (lives in `Store`).
#[derive(Debug)]
pub struct ReplState {
    pub replid: String,
    pub replid2: String,
    pub second_replid_offset: i64,
    pub master_repl_offset: i64,
    pub backlog: Option<Backlog>,
    /// Db of the last SELECT in the stream (-1 = next command needs one).
    pub slaveseldb: i64,
    pub replicas: Vec<ReplicaLink>,
    pub handoffs: std::collections::HashMap<ClientId, Handoff>,
    pub no_replicas_since: Instant,
    pub master: Option<MasterLink>,
    pub cached_master: Option<CachedMaster>,
    pub link_generation: u64,
    pub sync_full: u64,
    pub sync_partial_ok: u64,
    pub sync_partial_err: u64,
    /// Replicas online with a recent ACK (min-replicas-to-write).
    pub good_replicas: usize,
    /// Woken on every REPLCONF ACK (WAIT).
    pub ack_notify: Arc<tokio::sync::Notify>,
    /// The disk-target snapshot being produced, which later replicas may join.
    pub snapshot: Option<Ticket>,
    /// Tandem fenced start: no writes, no syncs served, no active expiry (see `crate::fence`).
    pub fenced: bool,
    /// `client-output-buffer-limit replica` (kept in step by `Store::set_hot`).
    pub obuf_limit: crate::outbuf::Limit,
}

impl Default for ReplState {
    fn default() -> Self {
        ReplState {
            replid: crate::server::random_hex40(),
            replid2: NULL_REPLID.to_string(),
            second_replid_offset: -1,
            master_repl_offset: 0,
            backlog: None,
            slaveseldb: -1,
            replicas: Vec::new(),
            handoffs: Default::default(),
            no_replicas_since: Instant::now(),
            master: None,
            cached_master: None,
            link_generation: 0,
            sync_full: 0,
            sync_partial_ok: 0,
            sync_partial_err: 0,
            good_replicas: 0,
            ack_notify: Arc::new(tokio::sync::Notify::new()),
            snapshot: None,
            fenced: false,
            obuf_limit: Default::default(),
        }
    }
}

impl ReplState {
    /// Appends bytes to the stream: offset, backlog and every replica with a fixed
    /// snapshot point. Redis `feedReplicationBuffer`.
    pub fn append_stream(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.master_repl_offset += bytes.len() as i64;
        if let Some(b) = self.backlog.as_mut() {
            b.append(&bytes);
        }
        for r in &self.replicas {
            if let Some(tx) = &r.tx {
                let q = r
                    .queued
                    .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                // A replica that falls this far behind is disconnected (it will resync).
                let used = q + bytes.len() as u64;
                if !r.handle.is_killed() && r.handle.obuf.over(used, &self.obuf_limit) {
                    crate::outbuf::log_closing(&format!(
                        "id={} addr={} flags=S",
                        r.client_id, r.handle.addr
                    ));
                    r.handle.kill();
                }
                let _ = tx.send(bytes.clone());
            }
        }
    }

    /// Whether this node generates stream content (a top-level master with a
    /// backlog or replicas). Replicas only proxy their master's bytes.
    pub fn should_generate(&self) -> bool {
        self.master.is_none() && (self.backlog.is_some() || !self.replicas.is_empty())
    }

    /// Creates the backlog if missing (stream continues at the current offset).
    pub fn ensure_backlog(&mut self, size: u64) {
        if self.backlog.is_none() {
            self.backlog = Some(Backlog::new(size as usize, self.master_repl_offset));
        }
    }

    /// Redis `shiftReplicationId`: the current history becomes the secondary one.
    pub fn shift_replid(&mut self) {
        self.replid2 = std::mem::replace(&mut self.replid, crate::server::random_hex40());
        self.second_replid_offset = self.master_repl_offset + 1;
        crate::warning!(
            "Setting secondary replication ID to {}, valid up to offset: {}. New replication ID is {}",
            self.replid2,
            self.second_replid_offset,
            self.replid
        );
    }

    pub fn clear_replid2(&mut self) {
        self.replid2 = NULL_REPLID.to_string();
        self.second_replid_offset = -1;
    }

    /// Closes every replica connection (they reconnect and PSYNC again).
    pub fn disconnect_replicas(&mut self) {
        for r in &self.replicas {
            r.handle.kill();
        }
    }

    pub fn link_connected(&self) -> bool {
        self.master
            .as_ref()
            .is_some_and(|m| m.state == LinkState::Connected)
    }

    /// Counts online replicas whose ACK reached `offset` (WAIT).
    pub fn acked_replicas(&self, offset: i64) -> usize {
        self.replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Online && r.ack_off >= offset)
            .count()
    }

    /// Recomputes `good_replicas` (Redis `refreshGoodSlavesCount`).
    pub fn refresh_good_replicas(&mut self, max_lag: u64) {
        self.good_replicas = self
            .replicas
            .iter()
            .filter(|r| {
                r.state == ReplicaState::Online && r.ack_time.elapsed().as_secs() <= max_lag
            })
            .count();
    }
}

/// Replication info to store in an RDB (Redis `rdbPopulateSaveInfo`): on a master
/// with a backlog, or a replica with a master link or cached master.
pub fn save_info(store: &Store) -> Option<(String, i64, i64)> {
    let r = &store.repl;
    match &r.master {
        None if r.backlog.is_some() => {
            Some((r.replid.clone(), r.master_repl_offset, r.slaveseldb.max(0)))
        }
        None => None,
        Some(m) => match (m.client, &r.cached_master) {
            (Some((_, off, db)), _) => Some((r.replid.clone(), off, db as i64)),
            (None, Some(c)) => Some((c.replid.clone(), c.reploff, c.db as i64)),
            (None, None) => None,
        },
    }
}

/// [`save_info`] in the codec's form, for every RDB save (SAVE, BGSAVE, shutdown).
pub fn rdb_repl_info(store: &Store) -> Option<crate::rdb::ReplInfo> {
    save_info(store).map(|(replid, offset, stream_db)| crate::rdb::ReplInfo {
        replid,
        offset,
        stream_db,
    })
}

/// Applies replication info read from an RDB at startup (Redis `loadDataFromDisk`):
/// a replica continues that history from a synthesised cached master; a master
/// keeps it as its secondary id so its replicas can partially resync.
/// `as_replica`: the server is configured with `replicaof`.
pub fn restore_from_rdb(
    store: &mut Store,
    as_replica: bool,
    backlog_size: u64,
    replid: &str,
    offset: i64,
    db: i64,
) {
    if replid.len() != 40 {
        return;
    }
    let r = &mut store.repl;
    if as_replica {
        r.replid = replid.to_string();
        r.master_repl_offset = offset;
        r.cached_master = Some(CachedMaster {
            replid: replid.to_string(),
            reploff: offset,
            db: db.max(0) as usize,
        });
    } else {
        r.replid = crate::server::random_hex40();
        r.replid2 = replid.to_string();
        r.second_replid_offset = offset + 1;
        r.master_repl_offset = offset;
        r.backlog = Some(Backlog::new(backlog_size as usize, offset));
    }
}

/// INFO stats counters owned by replication.
pub fn stats_fields(store: &Store) -> Vec<(String, String)> {
    let r = &store.repl;
    vec![
        ("sync_full".into(), r.sync_full.to_string()),
        ("sync_partial_ok".into(), r.sync_partial_ok.to_string()),
        ("sync_partial_err".into(), r.sync_partial_err.to_string()),
    ]
}

/// Every `INFO replication` field of Redis 7.0, in order.
pub fn info_fields(server: &Server, store: &Store) -> Vec<(String, String)> {
    let cfg = server.config.read();
    let r = &store.repl;
    let mut f: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: String| f.push((k.to_string(), v));
    match &r.master {
        None => add("role", "master".into()),
        Some(m) => {
            add("role", "slave".into());
            add("master_host", m.host.clone());
            add("master_port", m.port.to_string());
            add(
                "master_link_status",
                if m.state == LinkState::Connected {
                    "up"
                } else {
                    "down"
                }
                .into(),
            );
            add(
                "master_last_io_seconds_ago",
                match m.client {
                    Some(_) => m.last_io.elapsed().as_secs().to_string(),
                    None => "-1".into(),
                },
            );
            add(
                "master_sync_in_progress",
                if m.state == LinkState::Transfer {
                    "1"
                } else {
                    "0"
                }
                .into(),
            );
            let (read, applied) = match (m.client, &r.cached_master) {
                (Some((read, applied, _)), _) => (read, applied),
                (None, Some(c)) => (c.reploff, c.reploff),
                (None, None) => (1, 1),
            };
            add("slave_read_repl_offset", read.to_string());
            add("slave_repl_offset", applied.to_string());
            if m.state == LinkState::Transfer {
                let (total, read) = m.transfer.unwrap_or((-1, 0));
                add("master_sync_total_bytes", total.to_string());
                add("master_sync_read_bytes", read.to_string());
                let left = if total > 0 { total - read } else { 0 };
                add("master_sync_left_bytes", left.to_string());
                let perc = if total > 0 {
                    read as f64 * 100.0 / total as f64
                } else {
                    0.0
                };
                add("master_sync_perc", format!("{perc:.2}"));
                add(
                    "master_sync_last_io_seconds_ago",
                    m.transfer_last_io.elapsed().as_secs().to_string(),
                );
            }
            if m.state != LinkState::Connected {
                add(
                    "master_link_down_since_seconds",
                    m.down_since
                        .map_or("-1".to_string(), |t| t.elapsed().as_secs().to_string()),
                );
            }
            add("slave_priority", cfg.replica_priority.to_string());
            add("slave_read_only", (cfg.replica_read_only as u8).to_string());
            add(
                "replica_announced",
                (cfg.replica_announced as u8).to_string(),
            );
        }
    }
    add("connected_slaves", r.replicas.len().to_string());
    if cfg.min_replicas_to_write > 0 && cfg.min_replicas_max_lag > 0 {
        add("min_slaves_good_slaves", r.good_replicas.to_string());
    }
    for (i, s) in r.replicas.iter().enumerate() {
        let lag = if s.state == ReplicaState::Online {
            s.ack_time.elapsed().as_secs()
        } else {
            0
        };
        add(
            &format!("slave{i}"),
            format!(
                "ip={},port={},state={},offset={},lag={}",
                s.ip,
                s.port,
                s.state.info_name(),
                s.ack_off,
                lag
            ),
        );
    }
    add("master_failover_state", "no-failover".into());
    add("master_replid", r.replid.clone());
    add("master_replid2", r.replid2.clone());
    add("master_repl_offset", r.master_repl_offset.to_string());
    add("second_repl_offset", r.second_replid_offset.to_string());
    match &r.backlog {
        Some(b) => {
            add("repl_backlog_active", "1".into());
            add("repl_backlog_size", cfg.repl_backlog_size.to_string());
            add("repl_backlog_first_byte_offset", b.first_byte().to_string());
            add("repl_backlog_histlen", b.histlen().to_string());
        }
        None => {
            add("repl_backlog_active", "0".into());
            add("repl_backlog_size", cfg.repl_backlog_size.to_string());
            add("repl_backlog_first_byte_offset", "0".into());
            add("repl_backlog_histlen", "0".into());
        }
    }
    // Tandem extension, last in the section.
    add("tandem_fenced", (r.fenced as u8).to_string());
    f
}

/// Renders `info_fields` as an INFO section (used by our own tests and until the
/// INFO command wires it in).
pub fn info_section(server: &Server, store: &Store) -> String {
    let mut s = String::from("# Replication\r\n");
    for (k, v) in info_fields(server, store) {
        s.push_str(&k);
        s.push(':');
        s.push_str(&v);
        s.push_str("\r\n");
    }
    s
}

/// Starts replication background work: the once-per-second cron and, with
/// `replicaof` configured, the link to the master. Call after "Ready to accept
/// connections".
pub fn start(server: &Arc<Server>) {
    let (target, backlog_size, fenced_start) = {
        let c = server.config.read();
        (
            c.replicaof.clone(),
            c.repl_backlog_size,
            c.tandem_fenced_start,
        )
    };
    crate::fence::at_startup(&mut server.store.lock(), fenced_start, target.is_some());
    if let Some(info) = crate::persist::loaded_repl_info(server) {
        let mut store = server.store.lock();
        restore_from_rdb(
            &mut store,
            target.is_some(),
            backlog_size,
            &info.replid,
            info.offset,
            info.stream_db,
        );
    }
    if let Some((host, port)) = target {
        let mut store = server.store.lock();
        replica::set_master(server, &mut store, &host, port, false);
    }
    tokio::spawn(primary::cron(server.clone()));
}

/// Replication checks of `processCommand`: MASTERDOWN on a stale replica and
/// NOREPLICAS under min-replicas-to-write.
pub fn precheck(
    _server: &Server,
    store: &Store,
    client: &crate::commands::ClientState,
    cmd: &crate::commands::Command,
) -> Option<String> {
    use crate::commands::flags;
    if client.is_master {
        return None;
    }
    let r = &store.repl;
    let cfg = &store.hot;
    if r.master.is_some()
        && !cfg.replica_serve_stale_data
        && !r.link_connected()
        && !cmd.is(flags::STALE)
    {
        return Some(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                .into(),
        );
    }
    if r.master.is_none() && cfg.min_replicas_to_write > 0 && cfg.min_replicas_max_lag > 0 {
        let writes = cmd.is(flags::WRITE)
            || (cmd.name == "exec"
                && client.multi.as_ref().is_some_and(|q| {
                    q.iter().any(|argv| {
                        crate::commands::lookup(&argv[0]).is_some_and(|c| c.is(flags::WRITE))
                    })
                }));
        if writes && (r.good_replicas as u64) < cfg.min_replicas_to_write {
            return Some("NOREPLICAS Not enough good replicas to write.".into());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(f: &[(String, String)]) -> Vec<&str> {
        f.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn info_fields_of_a_master_follow_redis_order() {
        let server = Server::new(crate::config::Config::default());
        let store = server.store.lock();
        let f = info_fields(&server, &store);
        assert_eq!(
            keys(&f),
            vec![
                "role",
                "connected_slaves",
                "master_failover_state",
                "master_replid",
                "master_replid2",
                "master_repl_offset",
                "second_repl_offset",
                "repl_backlog_active",
                "repl_backlog_size",
                "repl_backlog_first_byte_offset",
                "repl_backlog_histlen",
                "tandem_fenced",
            ]
        );
        assert_eq!(f[11].1, "0");
        assert_eq!(f[0].1, "master");
        assert_eq!(f[4].1, NULL_REPLID);
        assert_eq!(f[6].1, "-1");
        assert_eq!(f[8].1, "1048576");
    }

    #[test]
    fn info_fields_of_a_replica_whose_link_never_came_up() {
        let server = Server::new(crate::config::Config::default());
        let mut store = server.store.lock();
        store.repl.master = Some(MasterLink {
            host: "127.0.0.1".into(),
            port: 7001,
            state: LinkState::Connect,
            generation: 1,
            client: None,
            last_io: Instant::now(),
            down_since: None,
            transfer: None,
            transfer_last_io: Instant::now(),
        });
        let f = info_fields(&server, &store);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            keys(&f)[..12],
            [
                "role",
                "master_host",
                "master_port",
                "master_link_status",
                "master_last_io_seconds_ago",
                "master_sync_in_progress",
                "slave_read_repl_offset",
                "slave_repl_offset",
                "master_link_down_since_seconds",
                "slave_priority",
                "slave_read_only",
                "replica_announced",
            ]
        );
        assert_eq!(get("role"), Some("slave"));
        assert_eq!(get("master_link_status"), Some("down"));
        assert_eq!(get("master_last_io_seconds_ago"), Some("-1"));
        assert_eq!(get("slave_repl_offset"), Some("1"));
        assert_eq!(get("master_link_down_since_seconds"), Some("-1"));
    }

    #[test]
    fn promotion_shifts_the_history_to_replid2() {
        let server = Server::new(crate::config::Config::default());
        let mut store = server.store.lock();
        let old = store.repl.replid.clone();
        store.repl.master_repl_offset = 4222;
        store.repl.master = Some(MasterLink {
            host: "h".into(),
            port: 1,
            state: LinkState::Connected,
            generation: 1,
            client: Some((4222, 4222, 0)),
            last_io: Instant::now(),
            down_since: None,
            transfer: None,
            transfer_last_io: Instant::now(),
        });
        store.is_replica = true;
        replica::unset_master(&mut store, "test");
        assert!(store.repl.master.is_none());
        assert!(!store.is_replica);
        assert_eq!(store.repl.replid2, old);
        assert_eq!(store.repl.second_replid_offset, 4223);
        assert_ne!(store.repl.replid, old);
        assert_eq!(store.repl.slaveseldb, -1);
    }

    #[test]
    fn save_info_follows_role() {
        let server = Server::new(crate::config::Config::default());
        let mut store = server.store.lock();
        assert_eq!(save_info(&store), None);
        store.repl.ensure_backlog(1 << 20);
        store.repl.master_repl_offset = 10;
        store.repl.slaveseldb = 3;
        let id = store.repl.replid.clone();
        assert_eq!(save_info(&store), Some((id.clone(), 10, 3)));
        restore_from_rdb(&mut store, false, 1 << 20, &id, 10, 3);
        assert_eq!(store.repl.replid2, id);
        assert_eq!(store.repl.second_replid_offset, 11);
    }
}
