//! Replication state: what `Store::repl` holds (ids, offsets, backlog, the replicas
//! attached to this node, the link to our master). The logic that drives it lives in
//! `crate::replication`, which re-exports these types; they live here, in the state
//! layer, so the `Store` that owns them needs nothing from the layers above.

use super::backlog::Backlog;
use super::sync_stream;
use super::{ClientHandle, ClientId};
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
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

/// Result of a disk-target snapshot job (`None` while it runs), shared by every
/// replica synced from it.
pub type SnapshotResult = Option<Result<Bytes, sync_stream::SnapshotError>>;

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

/// Where the live master client stands in its master's stream (Redis keeps these
/// on `server.master`: `read_reploff`, `reploff`, `db`). One value, owned by the
/// streaming task and published to [`MasterLink::offsets`] after every batch.
/// The replica ACKs (`REPLCONF ACK`) and answers GETACK with `applied`; there is
/// no separate acknowledged offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkOffsets {
    /// Stream offset up to which bytes were read from the socket (applied or
    /// still buffered): INFO `slave_read_repl_offset`.
    pub read: i64,
    /// Stream offset up to which commands were applied (a MULTI counts at its
    /// EXEC): INFO `slave_repl_offset`, ROLE, the ACK, the cached master.
    pub applied: i64,
    /// Database the master client has selected (the stream's current SELECT).
    pub db: usize,
}

impl LinkOffsets {
    /// A fresh link positioned at `offset` (nothing read beyond it yet).
    pub fn at(offset: i64, db: usize) -> Self {
        LinkOffsets {
            read: offset,
            applied: offset,
            db,
        }
    }

    /// A link that continues a cached master (partial resync).
    pub fn resumed(c: &CachedMaster) -> Self {
        LinkOffsets::at(c.reploff, c.db)
    }

    /// The state to cache when this link drops, for a later PSYNC of `replid`.
    pub fn cache(&self, replid: &str) -> CachedMaster {
        CachedMaster {
            replid: replid.to_string(),
            reploff: self.applied,
            db: self.db,
        }
    }
}

/// Progress of the RDB payload during TRANSFER (INFO `master_sync_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferProgress {
    /// Payload length from `$<len>`; 0 for the `$EOF:` form; -1 before the
    /// header arrived.
    pub total: i64,
    /// Payload bytes read so far.
    pub read: i64,
}

/// The master this node replicates from and the live link's progress.
#[derive(Debug)]
pub struct MasterLink {
    pub host: String,
    pub port: u16,
    pub state: LinkState,
    /// Bumped on every REPLICAOF; a link task whose generation is stale stops.
    pub generation: u64,
    /// The live master client's offsets; `None` while there is no master client
    /// (before the first sync completed, and once the link dropped).
    pub offsets: Option<LinkOffsets>,
    pub last_io: Instant,
    /// When the link last went down (None = never up since start/promotion).
    pub down_since: Option<Instant>,
    /// Payload progress, during TRANSFER only.
    pub transfer: Option<TransferProgress>,
    pub transfer_last_io: Instant,
}

/// Where a coordinated FAILOVER stands (Redis `server.failover_state`); the
/// state machine that moves it is `crate::replication::failover`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailoverState {
    #[default]
    NoFailover,
    /// Writes paused, waiting for the target (or any replica) to ack our offset.
    WaitForSync,
    /// Demoted to a replica of the target, handing over with `PSYNC ... FAILOVER`.
    InProgress,
}

impl FailoverState {
    /// INFO `master_failover_state`.
    pub fn info_name(self) -> &'static str {
        match self {
            FailoverState::NoFailover => "no-failover",
            FailoverState::WaitForSync => "waiting-for-sync",
            FailoverState::InProgress => "failover-in-progress",
        }
    }
}

/// A coordinated FAILOVER of this master (FAILOVER command).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failover {
    pub state: FailoverState,
    /// `TO host port`, or the replica found caught up when none was named.
    pub target: Option<(String, u16)>,
    /// `TIMEOUT`: when waiting for the sync gives up (or, with FORCE, fails over).
    pub deadline: Option<Instant>,
    pub force: bool,
    /// Bumped by every FAILOVER, so a driver task of an older one stops.
    pub generation: u64,
}

/// All replication state, ordered with the keyspace (lives in `Store`).
#[derive(Debug)]
pub struct ReplState {
    pub replid: String,
    pub replid2: String,
    pub second_replid_offset: i64,
    /// This node's own stream offset: what its backlog and its replicas see. On a
    /// replica the applied master stream is proxied into it, so after every
    /// batch it equals the link's [`LinkOffsets::applied`]; it is kept here (not
    /// derived) because it is also the offset of a master, and of a replica
    /// between links.
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
    /// Clients blocked in WAIT (INFO's `blocked_clients` counts them, as Redis does).
    pub waiting_clients: usize,
    /// The disk-target snapshot being produced, which later replicas may join.
    pub snapshot: Option<Ticket>,
    /// Tandem fenced start: no writes, no syncs served, no active expiry (see `crate::replication::fence`).
    pub fenced: bool,
    /// `client-output-buffer-limit replica` (kept in step by `Store::set_hot`).
    pub obuf_limit: crate::outbuf::Limit,
    /// The coordinated FAILOVER, if one runs.
    pub failover: Failover,
}

/// Tandem extension: notices that the process itself was stopped (SIGSTOP, a frozen VM) or
/// stalled, so a master resumed after a pause does not count the REPLCONF ACKs its replicas
/// sent while it was stopped as fresh (they sat in its socket buffers and are all read at
/// once on resume, before it sees the replicas went away): with min-replicas-to-write it
/// would otherwise take writes that its replicas, already following a new master, never
/// get. The stall watch (`crate::replication::stall`) ticks it every [`StallClock::TICK`].
/// Atomics, not the store lock: the watch must keep ticking while a command or script
/// holds the store.
#[derive(Debug)]
pub struct StallClock {
    base: Instant,
    /// µs since `base` of the last tick.
    last_tick: AtomicU64,
    /// µs since `base` of the tick that ended the last stall (`u64::MAX`: none yet).
    resumed_at: AtomicU64,
}

impl Default for StallClock {
    fn default() -> Self {
        StallClock {
            base: Instant::now(),
            last_tick: AtomicU64::new(0),
            resumed_at: AtomicU64::new(u64::MAX),
        }
    }
}

impl StallClock {
    pub const TICK: Duration = Duration::from_millis(100);
    /// A tick this much later than the previous one means the process was stalled.
    pub const STALL: Duration = Duration::from_secs(1);
    /// After a stall, ACKs read this soon may be the ones queued while it lasted: on a
    /// loaded machine the resumed process can take hundreds of ms to drain its sockets. A
    /// replica that still follows is counted again at its first ACK after this.
    pub const GRACE: Duration = Duration::from_secs(2);

    fn us(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX)
    }

    /// The stall watch's tick at `now`; returns the length of the stall it ends, if any.
    pub fn tick(&self, now: Instant) -> Option<Duration> {
        let now = self.us(now);
        let gap = now.saturating_sub(self.last_tick.swap(now, Ordering::Relaxed));
        let gap = Duration::from_micros(gap);
        (gap > Self::STALL).then(|| {
            self.resumed_at.store(now, Ordering::Relaxed);
            gap
        })
    }

    /// Whether an ACK read at `now` may count as recent: not while the process is resuming
    /// from a stall (the tick has not run yet, or ran less than GRACE ago).
    pub fn trusts_acks(&self, now: Instant) -> bool {
        let now = self.us(now);
        let since = |t: u64| Duration::from_micros(now.saturating_sub(t));
        let resumed = self.resumed_at.load(Ordering::Relaxed);
        since(self.last_tick.load(Ordering::Relaxed)) <= Self::STALL
            && (resumed == u64::MAX || since(resumed) >= Self::GRACE)
    }
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
            waiting_clients: 0,
            snapshot: None,
            fenced: false,
            obuf_limit: Default::default(),
            failover: Failover::default(),
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
        self.good_replicas = self.good_replicas_now(max_lag);
    }

    /// Replicas online whose last ACK is at most `max_lag` whole seconds old, counted at
    /// this instant.
    pub fn good_replicas_now(&self, max_lag: u64) -> usize {
        self.replicas
            .iter()
            .filter(|r| {
                r.state == ReplicaState::Online && r.ack_time.elapsed().as_secs() <= max_lag
            })
            .count()
    }
}

#[cfg(test)]
mod stall_tests {
    use super::*;

    #[test]
    fn acks_read_while_resuming_from_a_stall_are_not_recent() {
        let c = StallClock::default();
        let t0 = c.base;
        assert!(c.trusts_acks(t0 + Duration::from_millis(150)));
        assert_eq!(c.tick(t0 + StallClock::TICK), None);
        // Stopped for 5 s: ACKs read before the tick runs are stale...
        let resumed = t0 + Duration::from_secs(5);
        assert!(!c.trusts_acks(resumed));
        // ...and so are those read just after it.
        assert_eq!(c.tick(resumed), Some(resumed - (t0 + StallClock::TICK)));
        let mut t = resumed;
        while t + StallClock::TICK < resumed + StallClock::GRACE {
            t += StallClock::TICK;
            assert_eq!(c.tick(t), None);
            assert!(!c.trusts_acks(t), "{:?} after resuming", t - resumed);
        }
        assert!(c.trusts_acks(resumed + StallClock::GRACE));
    }
}
