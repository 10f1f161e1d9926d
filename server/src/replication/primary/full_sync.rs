//! Full resync on the master: fixing the snapshot point (joining a snapshot or
//! cutting a new one), `+FULLRESYNC`, and sending the payload — `$<len>` from a
//! disk-target snapshot or `$EOF:<mark>` streamed from a socket-target one.

use super::{bulk_send, snapshot, with_link, write_or_killed};
use crate::replication::sync_stream::{Feed, FeedRx, FeedTx, Feeds, FEED_DEPTH};
use crate::replication::{ReplState, ReplicaState, Ticket};
use crate::server::{ClientHandle, ClientId, Server};
use crate::tls::WriteHalf;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::{self, UnboundedReceiver};

/// What a failed snapshot tells the replica before the link closes.
const BGSAVE_FAILED: &[u8] = b"-ERR BGSAVE failed, replication can't continue\r\n";

/// Full resync: fixes the snapshot point, sends +FULLRESYNC and the RDB. Returns
/// the stream receiver once the replica is online.
pub(super) async fn full_sync(
    server: &Arc<Server>,
    wr: &mut WriteHalf,
    handle: &Arc<ClientHandle>,
    acked: &tokio::sync::Notify,
) -> Option<UnboundedReceiver<Bytes>> {
    let id = handle.id;
    let (diskless, delay, max_waiting) = {
        let c = server.config.read();
        (
            c.repl_diskless_sync,
            c.repl_diskless_sync_delay,
            c.repl_diskless_sync_max_replicas,
        )
    };
    let (capa_eof, pre_psync, name) =
        with_link(server, id, |l| (l.conf.capa_eof, l.pre_psync, l.name()))?;
    let use_eof = diskless && capa_eof;
    if use_eof {
        wait_for_company(server, wr, handle, delay, max_waiting).await?;
    }
    let (rx, ticket) = fix_sync_point(server, id, use_eof)?;
    if !pre_psync {
        let line = format!("+FULLRESYNC {} {}\r\n", ticket.replid, ticket.offset);
        write_or_killed(wr, handle, line.as_bytes()).await.ok()?;
    }
    if ticket.eof {
        let feed = ticket.feeds.lock().remove(&id)?;
        stream_snapshot(server, wr, handle, feed, &name, acked).await?;
    } else {
        send_disk_payload(server, wr, handle, &ticket).await?;
    }
    crate::notice!("Synchronization with replica {name} succeeded");
    {
        let lag = server.config.read().min_replicas_max_lag;
        server.store.lock().repl.refresh_good_replicas(lag);
    }
    Some(rx)
}

/// Redis waits up to `repl-diskless-sync-delay` seconds for more replicas to arrive
/// before forking a diskless snapshot, and starts as soon as
/// `repl-diskless-sync-max-replicas` (when not 0) are waiting; newlines keep the
/// replica from timing out meanwhile. Another replica's task may gather this one
/// into its snapshot in the meantime.
async fn wait_for_company(
    server: &Server,
    wr: &mut WriteHalf,
    handle: &ClientHandle,
    delay: u64,
    max_waiting: u64,
) -> Option<()> {
    const STEP: Duration = Duration::from_millis(100);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(delay);
    let mut newline_at = start + Duration::from_secs(1);
    loop {
        if with_link(server, handle.id, |l| l.ticket.is_some())?
            || Instant::now() >= deadline
            || enough_waiting(server, max_waiting)
        {
            return Some(());
        }
        tokio::time::sleep(STEP).await;
        if Instant::now() >= newline_at {
            newline_at += Duration::from_secs(1);
            write_or_killed(wr, handle, b"\n").await.ok()?;
        }
    }
}

/// `repl-diskless-sync-max-replicas` replicas wait for a snapshot (0 = no limit).
fn enough_waiting(server: &Server, max_waiting: u64) -> bool {
    if max_waiting == 0 {
        return false;
    }
    let store = server.store.lock();
    let waiting = store
        .repl
        .replicas
        .iter()
        .filter(|l| l.state == ReplicaState::WaitBgsaveStart)
        .count();
    waiting as u64 >= max_waiting
}

/// Disk target: waits for the shared payload (newlines meanwhile), then sends
/// `$<len>` and the payload.
async fn send_disk_payload(
    server: &Server,
    wr: &mut WriteHalf,
    handle: &Arc<ClientHandle>,
    ticket: &Ticket,
) -> Option<()> {
    let mut done = ticket.done.clone();
    let payload = loop {
        if let Some(r) = done.borrow_and_update().clone() {
            break r;
        }
        tokio::select! {
            r = done.changed() => r.ok()?,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                write_or_killed(wr, handle, b"\n").await.ok()?;
            }
            _ = handle.kill_notify.notified() => return None,
        }
    };
    let payload = match payload {
        Ok(p) => p,
        Err(e) => {
            crate::warning!("BGSAVE for replication failed: {e}");
            let _ = wr.write_all(BGSAVE_FAILED).await;
            return None;
        }
    };
    crate::notice!("Background saving terminated with success");
    with_link(server, handle.id, |l| l.state = ReplicaState::SendBulk);
    // Header and payload written as they are: the payload is shared by every
    // replica of the snapshot and never copied into a framed buffer.
    let header = format!("${}\r\n", payload.len());
    write_or_killed(wr, handle, header.as_bytes()).await.ok()?;
    bulk_send::send_payload(wr, handle, payload).await.ok()?;
    with_link(server, handle.id, |l| {
        l.state = ReplicaState::Online;
        l.ack_time = Instant::now();
    })
}

/// Socket target: sends `$EOF:<mark>`, then each chunk of the child's output as
/// the pipe reader hands it over, then the mark once the child succeeded; then
/// waits for the replica's first ACK before the stream may follow. A child that
/// fails midway breaks the transfer (the link is closed without the mark).
async fn stream_snapshot(
    server: &Arc<Server>,
    wr: &mut WriteHalf,
    handle: &Arc<ClientHandle>,
    mut feed: FeedRx,
    name: &str,
    acked: &tokio::sync::Notify,
) -> Option<()> {
    let first = first_feed(&mut feed, handle).await?;
    if let Feed::Done(Err(e)) = &first {
        crate::warning!("BGSAVE for replication failed: {e}");
        let _ = wr.write_all(BGSAVE_FAILED).await;
        return None;
    }
    with_link(server, handle.id, |l| l.state = ReplicaState::SendBulk);
    send_feed(server, wr, handle, first, feed, name).await?;
    crate::notice!(
        "Streamed RDB transfer with replica {name} succeeded (socket). Waiting for REPLCONF ACK from slave to enable streaming"
    );
    with_link(server, handle.id, |l| {
        l.state = ReplicaState::Online;
        l.ack_time = Instant::now();
    })?;
    // Nothing may follow the mark until the replica ACKs (a 7.0 replica would
    // otherwise never find the mark's end).
    tokio::select! {
        _ = acked.notified() => {}
        _ = handle.kill_notify.notified() => return None,
    }
    Some(())
}

/// Waits for the child's first output (or failure) while the replica lives.
async fn first_feed(feed: &mut FeedRx, handle: &ClientHandle) -> Option<Feed> {
    loop {
        tokio::select! {
            m = feed.recv() => return m,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if handle.is_killed() {
                    // The replica went away: drop our interest in the snapshot
                    // (a diskless child with no taker left is killed).
                    return None;
                }
            }
            _ = handle.kill_notify.notified() => return None,
        }
    }
}

/// Writes `$EOF:<mark>`, the chunks from `first` on, and the mark.
async fn send_feed(
    server: &Server,
    wr: &mut WriteHalf,
    handle: &ClientHandle,
    first: Feed,
    mut feed: FeedRx,
    name: &str,
) -> Option<()> {
    let timeout = Duration::from_secs(server.config.read().repl_timeout.max(1));
    let mark = crate::server::random_hex40();
    let mut next = Some(first);
    let mut header = Some(format!("$EOF:{mark}\r\n"));
    loop {
        let msg = match next.take() {
            Some(m) => m,
            None => tokio::select! {
                m = feed.recv() => m?,
                _ = handle.kill_notify.notified() => return None,
            },
        };
        let bytes: &[u8] = match &msg {
            Feed::Chunk(c) => c,
            Feed::Done(Ok(())) => mark.as_bytes(),
            Feed::Done(Err(_)) => {
                // No mark: the replica sees a broken transfer and keeps its data.
                crate::warning!("SYNC failed. BGSAVE child returned an error");
                return None;
            }
        };
        if let Some(h) = header.take() {
            write_or_killed(wr, handle, h.as_bytes()).await.ok()?;
        }
        match tokio::time::timeout(timeout, write_or_killed(wr, handle, bytes)).await {
            Ok(r) => r.ok()?,
            Err(_) => {
                crate::warning!("Disconnecting timedout replica (full sync): {name}");
                handle.kill();
                return None;
            }
        }
        if matches!(msg, Feed::Done(_)) {
            return Some(());
        }
    }
}

/// A replica's sync point: its stream receiver and the snapshot it gets.
type SyncPoint = (UnboundedReceiver<Bytes>, Ticket);

/// Fixes the snapshot point for replica `id` (Redis `replicationSetupSlaveForFullResync`
/// and `startBgsaveForReplication`): joins a snapshot another task already set up
/// for it or, for disk targets, one in progress whose following stream bytes are
/// still in the backlog; otherwise cuts a new one at the current offset, gathering
/// every other compatible replica waiting to start, and produces it off the lock.
fn fix_sync_point(server: &Arc<Server>, id: ClientId, use_eof: bool) -> Option<SyncPoint> {
    let mut store = server.store.lock();
    let store = &mut *store;
    let r = &mut store.repl;
    let pos = r.replicas.iter().position(|l| l.client_id == id)?;
    if let Some(found) = take_assigned(r, pos) {
        return found;
    }
    if !use_eof && r.snapshot.is_some() && r.backlog.is_some() {
        if let Some(found) = join_running(r, pos) {
            return Some(found);
        }
        crate::notice!(
            "Can't attach the replica to the current BGSAVE. Waiting for next BGSAVE for SYNC"
        );
    }
    let (done_tx, done_rx) = tokio::sync::watch::channel(None);
    let ticket = Ticket {
        offset: r.master_repl_offset,
        replid: r.replid.clone(),
        eof: use_eof,
        done: done_rx,
        feeds: Feeds::default(),
    };
    // The first command after the snapshot point must carry a SELECT.
    r.slaveseldb = -1;
    let (own, feed_txs) = gather(r, pos, &ticket);
    if !use_eof {
        r.snapshot = Some(ticket.clone());
    }
    crate::notice!(
        "Starting BGSAVE for SYNC with target: {}",
        if use_eof { "replicas sockets" } else { "disk" }
    );
    snapshot::start(
        server,
        &store.dbs,
        crate::commands::function_lib::codes(store),
        &ticket,
        done_tx,
        feed_txs,
    );
    Some((own?, ticket))
}

/// Another replica's task already gathered this one into its snapshot: its
/// receiver waits here. `Some(None)` when the ticket is there but not the
/// receiver.
fn take_assigned(r: &mut ReplState, pos: usize) -> Option<Option<SyncPoint>> {
    let link = r.replicas.get_mut(pos)?;
    let t = link.ticket.clone()?;
    let Some(rx) = link.pending_rx.take() else {
        return Some(None);
    };
    crate::notice!("Waiting for end of BGSAVE for SYNC");
    Some(Some((rx, t)))
}

/// Joins the disk-target snapshot in progress if the stream since its point is
/// still in the backlog (it is queued for the replica now).
fn join_running(r: &mut ReplState, pos: usize) -> Option<SyncPoint> {
    let t = r.snapshot.clone()?;
    if t.replid != r.replid || t.eof {
        return None;
    }
    let tail = r.backlog.as_ref()?.since(t.offset + 1)?;
    let (tx, rx) = mpsc::unbounded_channel();
    if !tail.is_empty() {
        let _ = tx.send(Bytes::copy_from_slice(tail));
    }
    let link = r.replicas.get_mut(pos)?;
    link.tx = Some(tx);
    link.state = ReplicaState::WaitBgsaveEnd;
    link.ticket = Some(t.clone());
    crate::notice!("Waiting for end of BGSAVE for SYNC");
    Some((rx, t))
}

/// Puts replica `pos` and every other replica waiting to start (that can take
/// the ticket's form) on `ticket`. Returns `pos`'s stream receiver and, for a
/// socket target, the chunk senders of every gathered replica.
fn gather(
    r: &mut ReplState,
    pos: usize,
    ticket: &Ticket,
) -> (Option<UnboundedReceiver<Bytes>>, Vec<FeedTx>) {
    let use_eof = ticket.eof;
    let mut own = None;
    let mut feed_txs = Vec::new();
    for (i, l) in r.replicas.iter_mut().enumerate() {
        let compatible = i == pos
            || (l.state == ReplicaState::WaitBgsaveStart
                && l.ticket.is_none()
                && (!use_eof || l.conf.capa_eof));
        if !compatible {
            continue;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        l.tx = Some(tx);
        l.state = ReplicaState::WaitBgsaveEnd;
        l.ticket = Some(ticket.clone());
        if use_eof {
            let (ftx, frx) = tokio::sync::mpsc::channel(FEED_DEPTH);
            feed_txs.push(ftx);
            ticket.feeds.lock().insert(l.client_id, frx);
        }
        if i == pos {
            own = Some(rx);
        } else {
            l.pending_rx = Some(rx);
        }
    }
    (own, feed_txs)
}
