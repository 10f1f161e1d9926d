//! Master side of replication: SYNC/PSYNC (partial or full resync), the snapshot
//! transfer (`$<len>` or diskless `$EOF:<mark>`), streaming to online replicas,
//! REPLCONF ACK handling, PINGs, timeouts, WAIT and the backlog TTL.
//!
//! * [`sync`]: SYNC/PSYNC and REPLCONF — the decisions, then registering the replica.
//! * [`full_sync`]: fixing the snapshot point, `+FULLRESYNC` and the payload.
//! * [`bulk_send`]: a disk-target payload's bytes, sent off the runtime worker.
//! * [`snapshot`]: the snapshot job (forked child or in-process copy).
//! * here: the replica connection after the handoff, the cron, WAIT and ROLE.
//!
//! A replica connection starts as a normal client; once SYNC/PSYNC succeeds the
//! connection task hands its socket to [`serve_replica`]. There a reader task
//! consumes ACKs and keepalive newlines while the writer sends the snapshot and then
//! the stream bytes queued by `ReplState::append_stream`.

mod bulk_send;
mod full_sync;
mod snapshot;
mod sync;

pub use sync::{handle_sync, replconf, replconf_client};

use super::{Handoff, ReplicaLink, ReplicaState, GETACK, PING};
use crate::resp::{Request, RequestParser};
use crate::server::{ClientHandle, ClientId, Server};
use crate::tls::{ReadHalf, Stream, WriteHalf};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Runs a replica connection after SYNC/PSYNC until it is lost.
pub async fn serve_replica(
    server: Arc<Server>,
    stream: Stream,
    inbuf: BytesMut,
    handle: Arc<ClientHandle>,
) {
    let id = handle.id;
    {
        let mut info = handle.info.lock();
        if !info.flags.contains('S') {
            info.flags.push('S');
        }
    }
    let handoff = server.store.lock().repl.handoffs.remove(&id);
    let (rd, mut wr) = stream.into_split();
    let acked = Arc::new(tokio::sync::Notify::new());
    let reader = tokio::spawn(read_from_replica(
        server.clone(),
        rd,
        inbuf,
        handle.clone(),
        acked.clone(),
    ));
    let link = async {
        let rx = match handoff {
            Some(Handoff::Continue(rx)) => Some(rx),
            Some(Handoff::Full) => full_sync::full_sync(&server, &mut wr, &handle, &acked).await,
            None => None,
        };
        if let Some(rx) = rx {
            stream_to_replica(&server, &mut wr, &handle, rx).await;
        }
    };
    // Subscribed only now, possibly after the shutdown was signalled (the replica's
    // PSYNC came in just before the accept loop stopped): `stopping` sees that too,
    // so the link never outlives the server.
    let mut stop = server.shutdown.subscribe();
    tokio::select! {
        _ = link => {}
        _ = crate::server::stopping(&mut stop) => {}
    }
    reader.abort();
    let mut store = server.store.lock();
    let r = &mut store.repl;
    if let Some(pos) = r.replicas.iter().position(|l| l.client_id == id) {
        let link = r.replicas.remove(pos);
        if let Some(t) = &link.ticket {
            // A chunk receiver it never took must not hold the pipe reader up.
            t.feeds.lock().remove(&id);
        }
        crate::warning!("Connection with replica {} lost.", link.name());
        if r.replicas.is_empty() {
            r.no_replicas_since = Instant::now();
        }
        let lag = server.config.read().min_replicas_max_lag;
        r.refresh_good_replicas(lag);
    }
    r.handoffs.remove(&id);
}

fn with_link<T>(server: &Server, id: ClientId, f: impl FnOnce(&mut ReplicaLink) -> T) -> Option<T> {
    let mut store = server.store.lock();
    store
        .repl
        .replicas
        .iter_mut()
        .find(|l| l.client_id == id)
        .map(f)
}

/// Like [`with_link`] for something the replica sent: its ACK time is refreshed unless
/// this process is resuming from a stall (then it was sent while we were stopped).
fn with_ack<T>(server: &Server, id: ClientId, f: impl FnOnce(&mut ReplicaLink) -> T) -> Option<T> {
    let now = Instant::now();
    let fresh = server.stall.trusts_acks(now);
    with_link(server, id, |l| {
        if fresh {
            l.ack_time = now;
        }
        f(l)
    })
}

/// Writes `bytes` unless the connection is killed first.
async fn write_or_killed(
    wr: &mut WriteHalf,
    handle: &ClientHandle,
    bytes: &[u8],
) -> Result<(), ()> {
    if handle.is_killed() {
        return Err(());
    }
    tokio::select! {
        r = wr.write_all(bytes) => r.map_err(|_| ()),
        _ = handle.kill_notify.notified() => Err(()),
    }
}

/// Sends queued stream bytes until the link dies (the caller ends it at shutdown).
async fn stream_to_replica(
    server: &Arc<Server>,
    wr: &mut WriteHalf,
    handle: &Arc<ClientHandle>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) {
    let queued = with_link(server, handle.id, |l| l.queued.clone()).unwrap_or_default();
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        if handle.is_killed() {
            return;
        }
        let first = tokio::select! {
            b = rx.recv() => b,
            _ = handle.kill_notify.notified() => return,
        };
        let Some(first) = first else { return };
        buf.clear();
        buf.extend_from_slice(&first);
        while buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(b) => buf.extend_from_slice(&b),
                Err(_) => break,
            }
        }
        if write_or_killed(wr, handle, &buf).await.is_err() {
            return;
        }
        let n = buf.len() as u64;
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        let _ = queued.fetch_update(relaxed, relaxed, |q| Some(q.saturating_sub(n)));
    }
}

/// Reads what a replica sends: `REPLCONF ACK <off>` and keepalive newlines. Anything
/// unparsable closes the link.
async fn read_from_replica(
    server: Arc<Server>,
    mut rd: ReadHalf,
    mut inbuf: BytesMut,
    handle: Arc<ClientHandle>,
    acked: Arc<tokio::sync::Notify>,
) {
    let id = handle.id;
    let mut parser = RequestParser::new(512 * 1024 * 1024);
    loop {
        loop {
            match parser.parse(&mut inbuf) {
                Ok(None) => break,
                Ok(Some(Request::Empty)) => {
                    with_ack(&server, id, |_| {});
                }
                Ok(Some(Request::Command(argv))) => {
                    if argv.len() >= 3
                        && argv[0].eq_ignore_ascii_case(b"replconf")
                        && argv[1].eq_ignore_ascii_case(b"ack")
                    {
                        if let Some(off) = crate::resp::parse_i64(&argv[2]) {
                            let online = with_ack(&server, id, |l| {
                                l.ack_off = l.ack_off.max(off);
                                l.state == ReplicaState::Online
                            });
                            if online == Some(true) {
                                acked.notify_one();
                            }
                            let store = server.store.lock();
                            store.repl.ack_notify.notify_waiters();
                        }
                    }
                }
                Err(e) => {
                    crate::notice!(
                        "Protocol error ({e}) from replica client id={id} addr={}, closing the connection",
                        handle.addr
                    );
                    handle.kill();
                    return;
                }
            }
        }
        if inbuf.len() > 64 * 1024 * 1024 {
            handle.kill();
            return;
        }
        match rd.read_buf(&mut inbuf).await {
            Ok(0) | Err(_) => {
                handle.kill();
                return;
            }
            Ok(_) => {}
        }
    }
}

/// Once-per-second replication housekeeping (Redis `replicationCron`).
pub async fn cron(server: Arc<Server>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = server.shutdown.subscribe();
    let mut loops: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::server::stopping(&mut shutdown) => return,
        }
        // A busy script holds the store; the housekeeping waits for it (Redis's
        // cron does not run during a script either).
        if server.script_busy.is_busy() || server.cron_paused() {
            continue;
        }
        loops += 1;
        let (period, timeout, ttl, lag, backlog_size) = {
            let c = server.config.read();
            (
                c.repl_ping_replica_period.max(1),
                c.repl_timeout.max(1),
                c.repl_backlog_ttl,
                c.min_replicas_max_lag,
                c.repl_backlog_size,
            )
        };
        let mut store = server.store.lock();
        let r = &mut store.repl;
        if let Some(b) = r.backlog.as_mut() {
            if b.size() != (backlog_size as usize).max(super::backlog::MIN_SIZE) {
                b.resize(backlog_size as usize);
            }
        }
        // Top-level masters ping their replicas; the ping goes through the stream
        // in the current db (never causes a SELECT).
        if r.master.is_none()
            && !r.replicas.is_empty()
            && loops.is_multiple_of(period)
            && !super::failover::holds_pings(r, &server)
        {
            r.append_stream(Bytes::from_static(PING));
        }
        for l in &r.replicas {
            if l.state == ReplicaState::Online
                && !l.pre_psync
                && l.ack_time.elapsed() > Duration::from_secs(timeout)
            {
                crate::warning!(
                    "Disconnecting timedout replica (streaming sync): {}",
                    l.name()
                );
                l.handle.kill();
            }
        }
        if r.master.is_none()
            && r.replicas.is_empty()
            && ttl > 0
            && r.backlog.is_some()
            && r.no_replicas_since.elapsed() > Duration::from_secs(ttl)
        {
            r.replid = crate::server::random_hex40();
            r.clear_replid2();
            r.backlog = None;
            crate::notice!(
                "Replication backlog freed after {ttl} seconds without connected replicas."
            );
        }
        r.refresh_good_replicas(lag);
    }
}

/// A WAIT that ended because this node turned into a replica (REPLICAOF host port)
/// while it waited: like Redis, the client gets [`RoleChanged::REPLY`] and its
/// connection closes, as do the clients blocked on keys.
#[derive(Debug, PartialEq, Eq)]
pub struct RoleChanged;

impl RoleChanged {
    pub const REPLY: &'static str = "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)";
}

/// A client counted in `waiting_clients` for as long as it waits (the count is
/// taken back under the store lock, which the waiting loop never holds across its
/// returns).
struct Waiting<'a>(&'a Server);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut store = self.0.store.lock();
        store.repl.waiting_clients = store.repl.waiting_clients.saturating_sub(1);
    }
}

/// WAIT: asks replicas for ACKs and waits until `num` acknowledged `offset` or the
/// timeout (ms, 0 = forever) passes; returns the count.
pub async fn wait_replicas(
    server: &Arc<Server>,
    handle: Option<&ClientHandle>,
    offset: i64,
    num: i64,
    timeout_ms: u64,
) -> Result<i64, RoleChanged> {
    let notify = {
        let mut store = server.store.lock();
        let r = &mut store.repl;
        if !r.replicas.is_empty() && r.master.is_none() {
            r.append_stream(Bytes::from_static(GETACK));
        }
        r.waiting_clients += 1;
        r.ack_notify.clone()
    };
    let _counted = Waiting(server);
    let deadline =
        (timeout_ms > 0).then(|| tokio::time::Instant::now() + Duration::from_millis(timeout_ms));
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (count, replica) = {
            let store = server.store.lock();
            let r = &store.repl;
            (r.acked_replicas(offset) as i64, r.master.is_some())
        };
        // WAIT is refused on a replica, so a replica now is one since it began
        // (`replica::set_master` rings `ack_notify`).
        if replica {
            return Err(RoleChanged);
        }
        if count >= num {
            return Ok(count);
        }
        let killed = async {
            match handle {
                Some(h) => h.kill_notify.notified().await,
                None => std::future::pending().await,
            }
        };
        match deadline {
            Some(d) => {
                if tokio::time::Instant::now() >= d {
                    return Ok(count);
                }
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep_until(d) => {}
                    _ = killed => return Ok(count),
                }
            }
            None => {
                tokio::select! {
                    _ = notified => {}
                    _ = killed => return Ok(count),
                }
            }
        }
    }
}

/// Builds the master-side view used by ROLE: online replicas as (ip, port, ack).
pub fn role_replicas(r: &super::ReplState) -> Vec<(String, u16, i64)> {
    r.replicas
        .iter()
        .filter(|l| l.state == ReplicaState::Online)
        .map(|l| (l.ip.clone(), l.port, l.ack_off))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica handed over after the shutdown was signalled (its PSYNC came in
    /// just before the accept loop stopped) is let go at once: the link must not
    /// outlive the server, which in a shared process would keep the replica's link
    /// up with a master that is gone.
    #[tokio::test]
    async fn a_replica_handed_over_after_shutdown_is_let_go() {
        let server = Server::new(crate::config::Config::default());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (sock, _) = l.accept().await.unwrap();
        let handle = Arc::new(ClientHandle::new(
            7,
            "127.0.0.1:1".into(),
            "127.0.0.1:2".into(),
            Default::default(),
        ));
        // The stream stays open: only the shutdown can end the link.
        let (_stream_tx, stream_rx) = mpsc::unbounded_channel();
        server
            .store
            .lock()
            .repl
            .handoffs
            .insert(7, Handoff::Continue(stream_rx));
        server.shutdown.send_replace(true);
        let served = serve_replica(server.clone(), Stream::Plain(sock), BytesMut::new(), handle);
        assert!(
            tokio::time::timeout(Duration::from_secs(10), served)
                .await
                .is_ok(),
            "the link ends with the server"
        );
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(10), peer.read(&mut b)).await;
        assert!(
            matches!(n, Ok(Ok(0))),
            "the replica sees the link closed: {n:?}"
        );
    }
}
