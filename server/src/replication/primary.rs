//! Master side of replication: SYNC/PSYNC (partial or full resync), the snapshot
//! transfer (`$<len>` or diskless `$EOF:<mark>`), streaming to online replicas,
//! REPLCONF ACK handling, PINGs, timeouts, WAIT and the backlog TTL.
//!
//! A replica connection starts as a normal client; once SYNC/PSYNC succeeds the
//! connection task hands its socket to [`serve_replica`]. There a reader task
//! consumes ACKs and keepalive newlines while the writer sends the snapshot and then
//! the stream bytes queued by `ReplState::append_stream`.

use super::psync::{self, Decision, History};
use super::sync_stream::{Broadcast, Feed, FeedRx, FEED_DEPTH};
use super::{replica_name, Handoff, ReplConf, ReplicaLink, ReplicaState, GETACK, PING};
use crate::commands::{err, CmdError, CmdResult, Ctx};
use crate::resp::{Reply, Request, RequestParser};
use crate::server::{ClientHandle, ClientId, Server};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// SYNC (`legacy`) and PSYNC: decides partial vs full resync and registers the
/// replica; the connection then hands its socket to [`serve_replica`].
pub fn handle_sync(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], legacy: bool) -> CmdResult {
    if ctx.client.is_replica {
        // Already a replica: ignored, as Redis does.
        return Ok(());
    }
    if ctx.store.repl.fenced {
        return Err(CmdError::msg(crate::fence::FENCED_ERR));
    }
    if !ctx.may_block {
        // Inside EXEC: the socket cannot become a replica link mid-transaction.
        return Err(CmdError::msg(
            "ERR Command not allowed inside a transaction",
        ));
    }
    if ctx.store.repl.master.is_some() && !ctx.store.repl.link_connected() {
        return Err(CmdError::msg(
            "NOMASTERLINK Can't SYNC while not connected with my master",
        ));
    }
    if !out.is_empty() {
        return Err(CmdError::msg(
            "ERR SYNC and PSYNC are invalid with pending output",
        ));
    }
    let Some(handle) = ctx.server.clients.lock().get(&ctx.client.id).cloned() else {
        return Err(CmdError::msg("ERR unknown client"));
    };
    let conf = ctx.client.repl_conf.take().map(|c| *c).unwrap_or_default();
    let peer_ip = peer_ip(&handle.addr);
    let ip = conf.ip_address.clone().unwrap_or(peer_ip);
    let name = replica_name(&ip, conf.listening_port);
    crate::notice!("Replica {name} asks for synchronization");
    let (backlog_size, diskless, delay) = {
        let c = ctx.server.config.read();
        (
            c.repl_backlog_size,
            c.repl_diskless_sync,
            c.repl_diskless_sync_delay,
        )
    };
    let r = &mut ctx.store.repl;
    if !legacy {
        let Some(off) = crate::resp::parse_i64(&argv[2]) else {
            crate::notice!("Replica {name} asks for synchronization but with a wrong offset");
            return Err(err::NOT_INT);
        };
        let id = String::from_utf8_lossy(&argv[1]).into_owned();
        let h = History {
            replid: &r.replid,
            replid2: &r.replid2,
            second_replid_offset: r.second_replid_offset,
            master_repl_offset: r.master_repl_offset,
            backlog: r.backlog.as_ref().map(|b| (b.first_byte(), b.histlen())),
        };
        match psync::decide(&h, &id, off) {
            Decision::Continue { from, len } => {
                let (tx, rx) = mpsc::unbounded_channel();
                if let Some(bytes) = r.backlog.as_ref().and_then(|b| b.since(from)) {
                    if !bytes.is_empty() {
                        let _ = tx.send(Bytes::copy_from_slice(bytes));
                    }
                }
                if conf.capa_psync2 {
                    out.raw(format!("+CONTINUE {}\r\n", r.replid).as_bytes());
                } else {
                    out.raw(b"+CONTINUE\r\n");
                }
                r.replicas.push(ReplicaLink {
                    client_id: ctx.client.id,
                    handle,
                    ip,
                    port: conf.listening_port,
                    state: ReplicaState::Online,
                    ack_off: 0,
                    ack_time: Instant::now(),
                    conf,
                    pre_psync: false,
                    tx: Some(tx),
                    ticket: None,
                    pending_rx: None,
                    queued: Default::default(),
                });
                r.sync_partial_ok += 1;
                r.handoffs.insert(ctx.client.id, Handoff::Continue(rx));
                ctx.client.is_replica = true;
                let lag = ctx.server.config.read().min_replicas_max_lag;
                ctx.store.repl.refresh_good_replicas(lag);
                crate::notice!(
                    "Partial resynchronization request from {name} accepted. Sending {len} bytes of backlog starting from offset {from}."
                );
                return Ok(());
            }
            Decision::FullRequested => {
                crate::notice!("Full resync requested by replica {name}");
            }
            Decision::IdMismatch => {
                crate::notice!(
                    "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{id}', my replication IDs are '{}' and '{}')",
                    r.replid,
                    r.replid2
                );
            }
            Decision::SecondIdOffsetTooLarge { max } => {
                crate::notice!(
                    "Partial resynchronization not accepted: Requested offset for second ID was {off}, but I can reply up to {max}"
                );
            }
            Decision::NoBacklog { beyond } => {
                crate::notice!(
                    "Unable to partial resync with replica {name} for lack of backlog (Replica request was: {off})."
                );
                if beyond {
                    crate::warning!(
                        "Warning: replica {name} tried to PSYNC with an offset that is greater than the master replication offset."
                    );
                }
            }
        }
        if id != "?" {
            r.sync_partial_err += 1;
        }
    }
    r.sync_full += 1;
    let capa_eof = conf.capa_eof;
    r.replicas.push(ReplicaLink {
        client_id: ctx.client.id,
        handle,
        ip,
        port: conf.listening_port,
        state: ReplicaState::WaitBgsaveStart,
        ack_off: 0,
        ack_time: Instant::now(),
        conf,
        pre_psync: legacy,
        tx: None,
        ticket: None,
        pending_rx: None,
        queued: Default::default(),
    });
    if r.replicas.len() == 1 && r.backlog.is_none() {
        r.replid = crate::server::random_hex40();
        r.clear_replid2();
        r.ensure_backlog(backlog_size);
        crate::notice!(
            "Replication backlog created, my new replication IDs are '{}' and '{}'",
            r.replid,
            r.replid2
        );
    }
    if diskless && capa_eof && delay > 0 {
        crate::notice!("Delay next BGSAVE for diskless SYNC");
    }
    r.handoffs.insert(ctx.client.id, Handoff::Full);
    ctx.client.is_replica = true;
    Ok(())
}

/// The ip part of `ip:port` / `[v6]:port`.
fn peer_ip(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((ip, _)) => ip.trim_start_matches('[').trim_end_matches(']').to_string(),
        None => addr.to_string(),
    }
}

/// REPLCONF (before SYNC: announcements; from a replica: ACK). Replies +OK for the
/// announcements, nothing for ACK.
pub fn replconf(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len().is_multiple_of(2) {
        return Err(err::SYNTAX);
    }
    let mut conf = ctx.client.repl_conf.take().map(|c| *c).unwrap_or_default();
    let mut reply = true;
    for pair in argv[1..].chunks(2) {
        let (opt, val) = (&pair[0], &pair[1]);
        let o = String::from_utf8_lossy(opt).to_ascii_lowercase();
        match o.as_str() {
            "listening-port" => {
                let p = crate::resp::parse_i64(val).ok_or(err::NOT_INT)?;
                conf.listening_port = u16::try_from(p).unwrap_or(0);
            }
            "ip-address" => {
                if val.len() >= 46 {
                    let v = String::from_utf8_lossy(val);
                    ctx.client.repl_conf = Some(Box::new(conf));
                    return Err(CmdError::msg(format!(
                        "ERR REPLCONF ip-address provided by replica instance is too long: {} bytes",
                        v.len()
                    )));
                }
                conf.ip_address = Some(String::from_utf8_lossy(val).into_owned());
            }
            "capa" => {
                if val.eq_ignore_ascii_case(b"eof") {
                    conf.capa_eof = true;
                } else if val.eq_ignore_ascii_case(b"psync2") {
                    conf.capa_psync2 = true;
                }
            }
            "ack" | "getack" => {
                // Only meaningful on an established replica link (handled by the
                // replica's reader); a normal client gets no reply either.
                reply = false;
            }
            "rdb-only" | "rdb-filter-only" => {}
            _ => {
                ctx.client.repl_conf = Some(Box::new(conf));
                return Err(CmdError::msg(format!(
                    "ERR Unrecognized REPLCONF option: {}",
                    String::from_utf8_lossy(opt)
                )));
            }
        }
    }
    ctx.client.repl_conf = Some(Box::new(conf));
    if reply {
        out.ok();
    }
    Ok(())
}

/// Runs a replica connection after SYNC/PSYNC until it is lost.
pub async fn serve_replica(
    server: Arc<Server>,
    stream: TcpStream,
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
    let rx = match handoff {
        Some(Handoff::Continue(rx)) => Some(rx),
        Some(Handoff::Full) => full_sync(&server, &mut wr, &handle, &acked).await,
        None => None,
    };
    if let Some(rx) = rx {
        stream_to_replica(&server, &mut wr, &handle, rx).await;
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
        crate::notice!("Connection with replica {} lost.", link.name());
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

/// Writes `bytes` unless the connection is killed first.
async fn write_or_killed(
    wr: &mut OwnedWriteHalf,
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

/// Full resync: fixes the snapshot point, sends +FULLRESYNC and the RDB. Returns
/// the stream receiver once the replica is online.
async fn full_sync(
    server: &Arc<Server>,
    wr: &mut OwnedWriteHalf,
    handle: &Arc<ClientHandle>,
    acked: &tokio::sync::Notify,
) -> Option<mpsc::UnboundedReceiver<Bytes>> {
    let id = handle.id;
    let (diskless, delay) = {
        let c = server.config.read();
        (c.repl_diskless_sync, c.repl_diskless_sync_delay)
    };
    let (capa_eof, pre_psync, name) =
        with_link(server, id, |l| (l.conf.capa_eof, l.pre_psync, l.name()))?;
    let use_eof = diskless && capa_eof;
    if use_eof {
        // Redis waits for more replicas to arrive before forking; newlines keep
        // the replica from timing out meanwhile. Another replica's task may
        // gather this one into its snapshot in the meantime.
        for _ in 0..delay {
            if with_link(server, id, |l| l.ticket.is_some())? {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            write_or_killed(wr, handle, b"\n").await.ok()?;
        }
    }
    let (rx, ticket) = fix_sync_point(server, id, use_eof)?;
    let (replid, offset) = (ticket.replid.clone(), ticket.offset);
    if !pre_psync {
        write_or_killed(
            wr,
            handle,
            format!("+FULLRESYNC {replid} {offset}\r\n").as_bytes(),
        )
        .await
        .ok()?;
    }
    if ticket.eof {
        let feed = ticket.feeds.lock().remove(&id)?;
        stream_snapshot(server, wr, handle, feed, &name, acked).await?;
    } else {
        let mut done = ticket.done.clone();
        let payload = loop {
            if let Some(r) = done.borrow_and_update().clone() {
                break r;
            }
            tokio::select! {
                r = done.changed() => {
                    if r.is_err() {
                        return None;
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    write_or_killed(wr, handle, b"\n").await.ok()?;
                }
                _ = handle.kill_notify.notified() => return None,
            }
        };
        let payload = match payload.as_ref() {
            Ok(p) => p.clone(),
            Err(e) => {
                crate::warning!("BGSAVE for replication failed: {e}");
                let _ = wr
                    .write_all(b"-ERR BGSAVE failed, replication can't continue\r\n")
                    .await;
                return None;
            }
        };
        crate::notice!("Background saving terminated with success");
        with_link(server, id, |l| l.state = ReplicaState::SendBulk);
        // Header and payload written as they are: the payload is shared by every
        // replica of the snapshot and never copied into a framed buffer.
        write_or_killed(wr, handle, format!("${}\r\n", payload.len()).as_bytes())
            .await
            .ok()?;
        write_or_killed(wr, handle, &payload).await.ok()?;
        with_link(server, id, |l| {
            l.state = ReplicaState::Online;
            l.ack_time = Instant::now();
        })?;
    }
    crate::notice!("Synchronization with replica {name} succeeded");
    {
        let lag = server.config.read().min_replicas_max_lag;
        server.store.lock().repl.refresh_good_replicas(lag);
    }
    Some(rx)
}

/// Socket target: sends `$EOF:<mark>`, then each chunk of the child's output as
/// the pipe reader hands it over, then the mark once the child succeeded; then
/// waits for the replica's first ACK before the stream may follow. A child that
/// fails midway breaks the transfer (the link is closed without the mark).
async fn stream_snapshot(
    server: &Arc<Server>,
    wr: &mut OwnedWriteHalf,
    handle: &Arc<ClientHandle>,
    mut feed: FeedRx,
    name: &str,
    acked: &tokio::sync::Notify,
) -> Option<()> {
    let id = handle.id;
    let timeout = Duration::from_secs(server.config.read().repl_timeout.max(1));
    let first = loop {
        tokio::select! {
            m = feed.recv() => break m?,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if handle.is_killed() {
                    // The replica went away: drop our interest in the snapshot
                    // (a diskless child with no taker left is killed).
                    return None;
                }
            }
            _ = handle.kill_notify.notified() => return None,
        }
    };
    if let Feed::Done(Err(e)) = &first {
        crate::warning!("BGSAVE for replication failed: {e}");
        let _ = wr
            .write_all(b"-ERR BGSAVE failed, replication can't continue\r\n")
            .await;
        return None;
    }
    let mark = crate::server::random_hex40();
    with_link(server, id, |l| l.state = ReplicaState::SendBulk);
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
            break;
        }
    }
    crate::notice!(
        "Streamed RDB transfer with replica {name} succeeded (socket). Waiting for REPLCONF ACK from slave to enable streaming"
    );
    with_link(server, id, |l| {
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

/// Fixes the snapshot point for replica `id` (Redis `replicationSetupSlaveForFullResync`
/// and `startBgsaveForReplication`): joins a snapshot another task already set up
/// for it or, for disk targets, one in progress whose following stream bytes are
/// still in the backlog; otherwise cuts a new one at the current offset, gathering
/// every other compatible replica waiting to start, and produces it off the lock.
fn fix_sync_point(
    server: &Arc<Server>,
    id: ClientId,
    use_eof: bool,
) -> Option<(mpsc::UnboundedReceiver<Bytes>, super::Ticket)> {
    let mut store = server.store.lock();
    let store = &mut *store;
    let r = &mut store.repl;
    let pos = r.replicas.iter().position(|l| l.client_id == id)?;
    if let Some(t) = r.replicas[pos].ticket.clone() {
        let rx = r.replicas[pos].pending_rx.take()?;
        crate::notice!("Waiting for end of BGSAVE for SYNC");
        return Some((rx, t));
    }
    if let (false, Some(t), Some(b)) = (use_eof, r.snapshot.clone(), r.backlog.as_ref()) {
        if t.replid == r.replid && !t.eof {
            if let Some(tail) = b.since(t.offset + 1) {
                let (tx, rx) = mpsc::unbounded_channel();
                if !tail.is_empty() {
                    let _ = tx.send(Bytes::copy_from_slice(tail));
                }
                let link = &mut r.replicas[pos];
                link.tx = Some(tx);
                link.state = ReplicaState::WaitBgsaveEnd;
                link.ticket = Some(t.clone());
                crate::notice!("Waiting for end of BGSAVE for SYNC");
                return Some((rx, t));
            }
        }
        crate::notice!(
            "Can't attach the replica to the current BGSAVE. Waiting for next BGSAVE for SYNC"
        );
    }
    let (done_tx, done_rx) = tokio::sync::watch::channel(None);
    let feeds = super::sync_stream::Feeds::default();
    let ticket = super::Ticket {
        offset: r.master_repl_offset,
        replid: r.replid.clone(),
        eof: use_eof,
        done: done_rx,
        feeds: feeds.clone(),
    };
    // The first command after the snapshot point must carry a SELECT.
    r.slaveseldb = -1;
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
            feeds.lock().insert(l.client_id, frx);
        }
        if i == pos {
            own = Some(rx);
        } else {
            l.pending_rx = Some(rx);
        }
    }
    if !use_eof {
        r.snapshot = Some(ticket.clone());
    }
    crate::notice!(
        "Starting BGSAVE for SYNC with target: {}",
        if use_eof { "replicas sockets" } else { "disk" }
    );
    let srv = server.clone();
    let (rid, off) = (ticket.replid.clone(), ticket.offset);
    let (compression, checksum) = {
        let c = server.config.read();
        (c.rdbcompression, c.rdbchecksum)
    };
    // The payload is produced by a forked child (see `crate::snapshot`) that
    // serialises its copy-on-write view into a pipe. Socket target: a blocking
    // task forwards each pipe chunk to every replica of this ticket as it
    // arrives (`stream_snapshot` frames it with `$EOF:`). Disk target: the task
    // reads the pipe to the end and shares the bytes (`$<len>` needs the length
    // first). No RDB file is written for either target. If fork fails: a
    // point-in-time clone under the lock, serialised off the lock.
    let (source, pid) = match fork_snapshot(&store.dbs, &rid, off, compression, checksum) {
        Ok((pipe, pid)) => (Source::Fork(pipe), pid as u32),
        Err(e) => {
            crate::warning!(
                "Can't fork for the replication snapshot ({e}): using an in-process copy"
            );
            let dbs = store.dbs.clone();
            let rid = rid.clone();
            let job: InProcess = Box::new(move || {
                snapshot(&dbs, &rid, off, compression, checksum).map_err(|e| e.to_string())
            });
            (Source::InProcess(job), std::process::id())
        }
    };
    if use_eof {
        crate::notice!("Background RDB transfer started by pid {pid}");
    } else {
        crate::notice!("Background saving started by pid {pid}");
    }
    tokio::task::spawn_blocking(move || {
        if use_eof {
            // Socket targets report through the feeds; nobody waits on `done`.
            drop(done_tx);
            stream_to_feeds(source, Broadcast::new(feed_txs));
            return;
        }
        let res = source.read_all().map(Bytes::from);
        {
            let mut st = srv.store.lock();
            if st
                .repl
                .snapshot
                .as_ref()
                .is_some_and(|t| t.offset == off && t.replid == rid)
            {
                st.repl.snapshot = None;
            }
        }
        let _ = done_tx.send(Some(Arc::new(res)));
    });
    Some((own?, ticket))
}

/// Serialises the snapshot in this process (fork failed).
type InProcess = Box<dyn FnOnce() -> Result<Vec<u8>, String> + Send>;

/// Where the snapshot bytes come from.
enum Source {
    Fork(ForkedPipe),
    InProcess(InProcess),
}

/// The read end of the pipe a forked snapshot child writes into.
struct ForkedPipe {
    rd: std::fs::File,
    child: crate::snapshot::Child,
}

/// Pipe reads: the pipe holds 64 KiB by default.
const PIPE_CHUNK: usize = 1 << 16;

impl Source {
    /// The whole payload (disk target). Reaps the child.
    fn read_all(self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        self.run(|chunk| {
            out.extend_from_slice(&chunk);
            true
        })?;
        Ok(out)
    }

    /// Calls `take` with each chunk as it is produced; `take` returns false when
    /// nobody wants more, which kills the child. Reaps the child.
    fn run(self, mut take: impl FnMut(Bytes) -> bool) -> Result<(), String> {
        use std::io::Read;
        let ForkedPipe { mut rd, child } = match self {
            Source::InProcess(job) => {
                let mut all = Bytes::from(job()?);
                while !all.is_empty() {
                    let chunk = all.split_to(all.len().min(PIPE_CHUNK * 4));
                    if !take(chunk) {
                        return Err("all replicas dropped".to_string());
                    }
                }
                return Ok(());
            }
            Source::Fork(p) => p,
        };
        let mut buf = bytes::BytesMut::new();
        let read = loop {
            if buf.capacity() < PIPE_CHUNK {
                buf.reserve(PIPE_CHUNK * 4);
            }
            let len = buf.len();
            buf.resize(len + PIPE_CHUNK, 0);
            let got = rd.read(&mut buf[len..]);
            let n = *got.as_ref().unwrap_or(&0);
            buf.truncate(len + n);
            match got {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e.to_string()),
            }
            if !take(buf.split().freeze()) {
                crate::warning!("Diskless rdb transfer, last replica dropped, killing fork child.");
                child.kill();
                break Err("all replicas dropped".to_string());
            }
        };
        drop(rd);
        let exit = child.wait();
        match read {
            Err(e) => Err(e),
            Ok(()) if !exit.success() => Err(exit.to_string()),
            Ok(()) => Ok(()),
        }
    }
}

/// Socket target (blocking thread): forwards the child's output to every replica
/// of the ticket as it arrives, at the pace of the slowest live one, then tells
/// them how the child ended.
fn stream_to_feeds(source: Source, mut bc: Broadcast) {
    let res = source.run(|chunk| bc.send(chunk));
    match &res {
        Ok(()) => {
            crate::warning!(
                "Diskless rdb transfer, done reading from pipe, {} replicas still up.",
                bc.live()
            );
            crate::notice!("Background RDB transfer terminated with success");
        }
        Err(e) if bc.abandoned() => {
            crate::notice!("Background RDB transfer ended: {e}");
        }
        Err(e) => {
            crate::warning!("Background transfer error");
            crate::notice!("Diskless rdb transfer failed: {e}");
        }
    }
    bc.finish(res);
}

/// Forks a child that writes the replication RDB into a pipe (call with the
/// store lock held). The caller reads the pipe on a blocking thread and reaps
/// the child; the pid is the child's.
fn fork_snapshot(
    dbs: &[crate::db::Db],
    replid: &str,
    offset: i64,
    compression: bool,
    checksum: bool,
) -> std::io::Result<(ForkedPipe, i32)> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let (rd, wr) = crate::snapshot::pipe()?;
    let opts = super::codec::SaveOptions {
        compression,
        checksum,
        repl: Some(super::codec::ReplInfo {
            replid: replid.to_string(),
            offset,
            stream_db: 0,
        }),
        aof_base: false,
    };
    let delay = crate::persist::child_delay_ms();
    let child = crate::snapshot::fork_child(&[wr.as_raw_fd()], || {
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        let mut w = std::io::BufWriter::with_capacity(1 << 16, &wr);
        match super::codec::save(dbs, &opts, &mut w).and_then(|()| w.flush()) {
            Ok(()) => 0,
            Err(e) => {
                crate::snapshot::child_stderr(&format!(
                    "Write error sending the replication RDB: {e}\n"
                ));
                1
            }
        }
    })?;
    // Our copy of the write end must go, or the pipe never reports EOF.
    drop(wr);
    let pid = child.pid();
    Ok((ForkedPipe { rd, child }, pid))
}

/// Serialises a snapshot of the dataset with the replication aux fields.
fn snapshot(
    dbs: &[crate::db::Db],
    replid: &str,
    offset: i64,
    compression: bool,
    checksum: bool,
) -> std::io::Result<Vec<u8>> {
    let opts = super::codec::SaveOptions {
        compression,
        checksum,
        repl: Some(super::codec::ReplInfo {
            replid: replid.to_string(),
            offset,
            stream_db: 0,
        }),
        aof_base: false,
    };
    let mut out = Vec::new();
    super::codec::save(dbs, &opts, &mut out)?;
    Ok(out)
}

/// Sends queued stream bytes until the link dies.
async fn stream_to_replica(
    server: &Arc<Server>,
    wr: &mut OwnedWriteHalf,
    handle: &Arc<ClientHandle>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) {
    let queued = with_link(server, handle.id, |l| l.queued.clone()).unwrap_or_default();
    let mut shutdown = server.shutdown.subscribe();
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        if handle.is_killed() {
            return;
        }
        let first = tokio::select! {
            b = rx.recv() => b,
            _ = handle.kill_notify.notified() => return,
            _ = shutdown.changed() => return,
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
    mut rd: OwnedReadHalf,
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
                    with_link(&server, id, |l| l.ack_time = Instant::now());
                }
                Ok(Some(Request::Command(argv))) => {
                    if argv.len() >= 3
                        && argv[0].eq_ignore_ascii_case(b"replconf")
                        && argv[1].eq_ignore_ascii_case(b"ack")
                    {
                        if let Some(off) = crate::resp::parse_i64(&argv[2]) {
                            let online = with_link(&server, id, |l| {
                                l.ack_off = l.ack_off.max(off);
                                l.ack_time = Instant::now();
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
            _ = shutdown.changed() => return,
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
        if r.master.is_none() && !r.replicas.is_empty() && loops.is_multiple_of(period) {
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

/// WAIT: asks replicas for ACKs and waits until `num` acknowledged `offset` or the
/// timeout (ms, 0 = forever) passes; returns the count.
pub async fn wait_replicas(
    server: &Arc<Server>,
    handle: Option<&ClientHandle>,
    offset: i64,
    num: i64,
    timeout_ms: u64,
) -> i64 {
    let notify = {
        let mut store = server.store.lock();
        let r = &mut store.repl;
        if !r.replicas.is_empty() && r.master.is_none() {
            r.append_stream(Bytes::from_static(GETACK));
        }
        r.ack_notify.clone()
    };
    let deadline =
        (timeout_ms > 0).then(|| tokio::time::Instant::now() + Duration::from_millis(timeout_ms));
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let count = server.store.lock().repl.acked_replicas(offset) as i64;
        if count >= num {
            return count;
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
                    return count;
                }
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep_until(d) => {}
                    _ = killed => return count,
                }
            }
            None => {
                tokio::select! {
                    _ = notified => {}
                    _ = killed => return count,
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

#[allow(dead_code)]
fn _assert_conf_default() -> ReplConf {
    ReplConf::default()
}
