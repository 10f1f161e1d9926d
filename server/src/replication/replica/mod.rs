//! Replica side of replication: the link to our master.
//!
//! One task per REPLICAOF (identified by `ReplState::link_generation`; a task whose
//! generation is stale stops at its next step) runs Redis's link state machine,
//! one module per state that [`LinkState`] names:
//!
//! * CONNECT / CONNECTING ([`connect`], here): open the socket.
//! * HANDSHAKE ([`handshake`]): PING → [AUTH] + REPLCONF listening-port
//!   [+ ip-address] + capa, read the replies → PSYNC → `+CONTINUE` (partial) or
//!   `+FULLRESYNC` (or the legacy SYNC fallback).
//! * TRANSFER ([`transfer`]): the RDB (`$<len>` or `$EOF:<mark>`), loaded into
//!   fresh databases while it arrives and swapped in at once (a half-loaded
//!   dataset is never visible), written to the sync file ([`sync_file`]).
//! * CONNECTED ([`stream`]): apply the stream as the master client, proxying the
//!   exact applied bytes to our own backlog and sub-replicas, ACKing every second.
//!
//! Each state returns the next one (with what it carries) or how the attempt
//! ended ([`LinkEnd`]); each module's typed error is logged once, with Redis's
//! wording, where it becomes a [`LinkEnd`]. When an established link drops, its
//! state becomes the cached master used for the next PSYNC.

mod handshake;
mod link_io;
mod stream;
mod sync_file;
mod transfer;

use super::{CachedMaster, LinkOffsets, LinkState, MasterLink};
use crate::server::{Server, Store};
use link_io::{io_text, LinkIo};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Makes this node a replica of `host:port` (REPLICAOF or the `replicaof`
/// directive) and starts the link. `runtime` = issued while running: a former
/// master then synthesises a cached master from its own history so it may
/// partially resync with the new master.
pub fn set_master(server: &Arc<Server>, store: &mut Store, host: &str, port: u16, runtime: bool) {
    let r = &mut store.repl;
    let was_master = r.master.is_none();
    if let Some(o) = r.master.as_ref().and_then(|m| m.offsets) {
        crate::warning!("Connection with master lost.");
        crate::notice!("Caching the disconnected master state.");
        r.cached_master = Some(o.cache(&r.replid));
    }
    if was_master && runtime {
        r.cached_master = None;
        crate::notice!(
            "Before turning into a replica, using my own master parameters to synthesize a cached master: I may be able to synchronize with the new master with just a partial transfer."
        );
        r.cached_master = Some(CachedMaster {
            replid: r.replid.clone(),
            reploff: r.master_repl_offset,
            db: 0,
        });
    }
    r.link_generation += 1;
    let generation = r.link_generation;
    let down_since = r.master.as_ref().and_then(|m| m.down_since);
    r.master = Some(MasterLink {
        host: host.to_string(),
        port,
        state: LinkState::Connect,
        generation,
        offsets: None,
        last_io: Instant::now(),
        down_since,
        transfer: None,
        transfer_last_io: Instant::now(),
    });
    store.is_replica = true;
    disconnect_blocked_clients(server, store);
    crate::log::set_role(b'S');
    let oom = server
        .oom_score
        .apply(&server.config.read(), crate::config::oom::Class::Replica);
    if let Err(e) = oom {
        crate::warning!("{e}");
    }
    crate::notice!("Connecting to MASTER {host}:{port}");
    tokio::spawn(run_link(server.clone(), generation, host.to_string(), port));
}

/// Redis's answer to the blocked clients when a node turns into a replica: an
/// UNBLOCKED error, then the connection closes. The master's stream will change the
/// keys a client waits on, and a replica that served a blocked pop from them would
/// diverge from its master; a WAIT has no replicas left to wait for (it sees the
/// change when `ack_notify` rings, see `primary::wait_replicas`).
fn disconnect_blocked_clients(server: &Server, store: &mut Store) {
    store.repl.ack_notify.notify_waiters();
    if store.waiters.is_empty() {
        return;
    }
    let ids: Vec<_> = store.waiters.keys().copied().collect();
    let clients = server.clients.lock();
    for id in ids {
        let Some(w) = store.unblock(id) else {
            continue;
        };
        if let Some(h) = clients.get(&id) {
            h.close_after_reply
                .store(true, std::sync::atomic::Ordering::Release);
        }
        let mut r = crate::resp::Reply::new(w.resp3);
        let text = crate::replication::primary::RoleChanged::REPLY;
        server.stats.error_reply(text.as_bytes());
        r.error(text);
        let _ = w.tx.send(r.buf);
    }
}

/// REPLICAOF NO ONE: promotion (Redis `replicationUnsetMaster`). The current
/// history becomes the secondary id so former siblings can partially resync.
pub fn unset_master(store: &mut Store, requester: &str) {
    if promote(store) {
        crate::notice!("MASTER MODE enabled (user request from '{requester}')");
    }
}

/// The promotion itself, logged by the caller with who asked for it (a user,
/// a failover request, an aborted failover). False if we were no replica.
pub fn promote(store: &mut Store) -> bool {
    let r = &mut store.repl;
    let Some(m) = r.master.take() else {
        return false;
    };
    crate::log::set_role(b'M');
    if m.offsets.is_some() {
        crate::warning!("Connection with master lost.");
        crate::notice!("Caching the disconnected master state.");
    }
    if m.offsets.is_some() || r.cached_master.is_some() {
        crate::notice!("Discarding previously cached master state.");
    }
    r.cached_master = None;
    r.link_generation += 1;
    r.shift_replid();
    r.disconnect_replicas();
    r.slaveseldb = -1;
    r.no_replicas_since = Instant::now();
    store.is_replica = false;
    true
}

/// How one connection attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum LinkEnd {
    /// Handshake/transfer failed: retry after a second ("Connecting to MASTER").
    Failed,
    /// An established link dropped: reconnect at once ("Reconnecting to MASTER").
    Lost,
    /// A newer REPLICAOF replaced this link.
    Stale,
}

/// The state of one connection attempt, with what the next step needs.
enum Step {
    /// CONNECT: open the socket.
    Connect,
    /// HANDSHAKE on an open connection.
    Handshake(LinkIo),
    /// TRANSFER: the master answered `+FULLRESYNC` (or SYNC) with this point.
    Transfer(LinkIo, handshake::FullResync),
    /// CONNECTED: apply the stream from these offsets.
    Stream(LinkIo, LinkOffsets),
}

/// Runs the link to `host:port` for generation `gen` until it is replaced.
pub async fn run_link(server: Arc<Server>, gen: u64, host: String, port: u16) {
    loop {
        let end = attempt(&server, gen, &host, port).await;
        if end == LinkEnd::Stale || !update(&server, gen, |_, m| m.state = LinkState::Connect) {
            return;
        }
        match end {
            LinkEnd::Lost => crate::notice!("Reconnecting to MASTER {host}:{port}"),
            _ => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if !update(&server, gen, |_, _| {}) {
                    return;
                }
                crate::notice!("Connecting to MASTER {host}:{port}");
            }
        }
    }
}

/// One connection attempt: the states in order until the link ends.
async fn attempt(server: &Arc<Server>, gen: u64, host: &str, port: u16) -> LinkEnd {
    let mut step = Step::Connect;
    loop {
        let next = match step {
            Step::Connect => connect(server, gen, host, port).await,
            Step::Handshake(io) => handshake::run(server, gen, io).await,
            Step::Transfer(io, full) => transfer::run(server, gen, io, full).await,
            Step::Stream(io, offsets) => return stream::run(server, gen, io, offsets).await,
        };
        step = match next {
            Ok(s) => s,
            Err(end) => return end,
        };
    }
}

/// CONNECT → CONNECTING → HANDSHAKE: opens the socket within `repl-timeout`.
async fn connect(server: &Arc<Server>, gen: u64, host: &str, port: u16) -> Result<Step, LinkEnd> {
    if !update(server, gen, |_, m| m.state = LinkState::Connecting) {
        return Err(LinkEnd::Stale);
    }
    crate::notice!("MASTER <-> REPLICA sync started");
    let timeout = repl_timeout(server);
    let source = server
        .config
        .read()
        .get("bind-source-addr")
        .map(str::to_string);
    let stream = match tokio::time::timeout(timeout, open(host, port, source)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            crate::warning!("Error condition on socket for SYNC: {}", io_text(&e));
            return Err(LinkEnd::Failed);
        }
        Err(_) => {
            crate::warning!("Timeout connecting to the MASTER...");
            return Err(LinkEnd::Failed);
        }
    };
    let _ = stream.set_nodelay(true);
    let stream = if crate::tls::for_replication(&server.config.read()) {
        match crate::tls::connect(&server.tls, stream, host).await {
            Ok(s) => s,
            Err(e) => {
                crate::warning!("Error condition on socket for SYNC: {e}");
                return Err(LinkEnd::Failed);
            }
        }
    } else {
        crate::tls::Stream::Plain(stream)
    };
    crate::notice!("Non blocking connect for SYNC fired the event.");
    if !update(server, gen, |_, m| m.state = LinkState::Handshake) {
        return Err(LinkEnd::Stale);
    }
    Ok(Step::Handshake(LinkIo::new(stream)))
}

/// Connects to the master, from `bind-source-addr` when set. As in Redis the source
/// binding is best effort: an address that cannot be bound (or is not an IP of the
/// target's family) is skipped and the kernel picks the source.
async fn open(host: &str, port: u16, source: Option<String>) -> std::io::Result<TcpStream> {
    let source: Option<std::net::IpAddr> = source.and_then(|s| s.parse().ok());
    let Some(source) = source else {
        return TcpStream::connect((host, port)).await;
    };
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if source.is_ipv4() == addr.is_ipv4() {
            let _ = socket.bind(std::net::SocketAddr::new(source, 0));
        }
        match socket.connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the master")
    }))
}

/// `repl-timeout` (at least a second).
fn repl_timeout(server: &Server) -> Duration {
    Duration::from_secs(server.config.read().repl_timeout.max(1))
}

/// Runs `f` on the store and master link if `gen` is still current.
fn update(server: &Server, gen: u64, f: impl FnOnce(&mut Store, &mut MasterLink)) -> bool {
    let mut store = server.store.lock();
    let Some(mut m) = store.repl.master.take() else {
        return false;
    };
    let current = m.generation == gen;
    if current {
        f(&mut store, &mut m);
    }
    store.repl.master = Some(m);
    current
}

/// Records the dropped link as the cached master.
fn link_lost(server: &Server, gen: u64, offsets: LinkOffsets) -> LinkEnd {
    let ok = update(server, gen, |store, m| {
        crate::warning!("Connection with master lost.");
        crate::notice!("Caching the disconnected master state.");
        let r = &mut store.repl;
        r.cached_master = Some(offsets.cache(&r.replid));
        m.offsets = None;
        m.state = LinkState::Connect;
        m.down_since = Some(Instant::now());
    });
    if ok {
        LinkEnd::Lost
    } else {
        LinkEnd::Stale
    }
}

/// Drops the link without caching it (protocol corruption).
fn link_broken(server: &Server, gen: u64) -> LinkEnd {
    let ok = update(server, gen, |store, m| {
        store.repl.cached_master = None;
        m.offsets = None;
        m.state = LinkState::Connect;
        m.down_since = Some(Instant::now());
    });
    if ok {
        LinkEnd::Failed
    } else {
        LinkEnd::Stale
    }
}
