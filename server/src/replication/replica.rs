//! Replica side of replication: the link to our master.
//!
//! One task per REPLICAOF (identified by `ReplState::link_generation`; a task whose
//! generation is stale stops at its next step) runs Redis's state machine:
//! connect → PING → [AUTH] + REPLCONF listening-port [+ ip-address] + capa, read the
//! replies → PSYNC → either `+CONTINUE` (partial) or `+FULLRESYNC` + RDB (`$<len>` or
//! `$EOF:<mark>`), loaded into fresh databases and swapped in at once (a half-loaded
//! dataset is never visible) → apply the stream as the master client, proxying the
//! exact applied bytes to our own backlog and sub-replicas, ACKing every second.
//! When an established link drops, its state becomes the cached master used for
//! the next PSYNC.

use super::sync_stream::{ChunkReader, Piece};
use super::{CachedMaster, LinkState, MasterLink};
use crate::commands::ClientState;
use crate::db::Db;
use crate::exec::{self, Outcome};
use crate::resp::{Reply, Request, RequestParser};
use crate::server::{Server, Store};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Redis `CONFIG_REPL_SYNCIO_TIMEOUT`: handshake replies must arrive within 5 s.
const SYNCIO_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes this node a replica of `host:port` (REPLICAOF or the `replicaof`
/// directive) and starts the link. `runtime` = issued while running: a former
/// master then synthesises a cached master from its own history so it may
/// partially resync with the new master.
pub fn set_master(server: &Arc<Server>, store: &mut Store, host: &str, port: u16, runtime: bool) {
    let r = &mut store.repl;
    let was_master = r.master.is_none();
    if let Some(m) = &r.master {
        if let Some((_, reploff, db)) = m.client {
            crate::warning!("Connection with master lost.");
            crate::notice!("Caching the disconnected master state.");
            r.cached_master = Some(CachedMaster {
                replid: r.replid.clone(),
                reploff,
                db,
            });
        }
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
        client: None,
        last_io: Instant::now(),
        down_since,
        transfer: None,
        transfer_last_io: Instant::now(),
    });
    store.is_replica = true;
    crate::log::set_role(b'S');
    crate::notice!("Connecting to MASTER {host}:{port}");
    tokio::spawn(run_link(server.clone(), generation, host.to_string(), port));
}

/// REPLICAOF NO ONE: promotion (Redis `replicationUnsetMaster`). The current
/// history becomes the secondary id so former siblings can partially resync.
pub fn unset_master(store: &mut Store, requester: &str) {
    let r = &mut store.repl;
    let Some(m) = r.master.take() else {
        return;
    };
    crate::log::set_role(b'M');
    if m.client.is_some() {
        crate::warning!("Connection with master lost.");
        crate::notice!("Caching the disconnected master state.");
    }
    if m.client.is_some() || r.cached_master.is_some() {
        crate::notice!("Discarding previously cached master state.");
    }
    r.cached_master = None;
    r.link_generation += 1;
    r.shift_replid();
    r.disconnect_replicas();
    r.slaveseldb = -1;
    r.no_replicas_since = Instant::now();
    store.is_replica = false;
    crate::notice!("MASTER MODE enabled (user request from '{requester}')");
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

/// A connection to the master with a read buffer (replies, RDB and stream can
/// arrive glued together).
struct LinkIo {
    stream: TcpStream,
    buf: BytesMut,
}

#[derive(Debug)]
enum ReadErr {
    Timeout,
    Closed,
    Io(std::io::Error),
}

impl std::fmt::Display for ReadErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadErr::Timeout => f.write_str("Resource temporarily unavailable"),
            ReadErr::Closed => f.write_str("connection lost"),
            ReadErr::Io(e) => write!(f, "{e}"),
        }
    }
}

impl LinkIo {
    async fn fill(&mut self, t: Duration) -> Result<usize, ReadErr> {
        // read_buf only grows a full buffer by a few bytes: keep room for big reads.
        if self.buf.capacity() - self.buf.len() < 64 * 1024 {
            self.buf.reserve(256 * 1024);
        }
        match tokio::time::timeout(t, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(ReadErr::Timeout),
            Ok(Ok(0)) => Err(ReadErr::Closed),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(ReadErr::Io(e)),
        }
    }

    /// One reply line without its CR LF.
    async fn read_line(&mut self, t: Duration) -> Result<String, ReadErr> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&c| c == b'\n') {
                let line = self.buf.split_to(pos + 1);
                let mut s = &line[..pos];
                if s.last() == Some(&b'\r') {
                    s = &s[..s.len() - 1];
                }
                return Ok(String::from_utf8_lossy(s).into_owned());
            }
            if self.buf.len() > 64 * 1024 {
                return Err(ReadErr::Io(std::io::Error::other("line too long")));
            }
            self.fill(t).await?;
        }
    }

    async fn send(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        let mut out = Vec::new();
        crate::propagate::encode_command(&argv, &mut out);
        self.stream.write_all(&out).await
    }
}

fn ack_bytes(off: i64) -> Vec<u8> {
    let argv = [
        Bytes::from_static(b"REPLCONF"),
        Bytes::from_static(b"ACK"),
        Bytes::from(off.to_string()),
    ];
    let mut out = Vec::new();
    crate::propagate::encode_command(&argv, &mut out);
    out
}

/// One connection attempt: handshake, sync, then the stream until the link ends.
async fn attempt(server: &Arc<Server>, gen: u64, host: &str, port: u16) -> LinkEnd {
    if !update(server, gen, |_, m| m.state = LinkState::Connecting) {
        return LinkEnd::Stale;
    }
    crate::notice!("MASTER <-> REPLICA sync started");
    let timeout = Duration::from_secs(server.config.read().repl_timeout.max(1));
    let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            crate::warning!("Error condition on socket for SYNC: {}", io_text(&e));
            return LinkEnd::Failed;
        }
        Err(_) => {
            crate::warning!("Timeout connecting to the MASTER...");
            return LinkEnd::Failed;
        }
    };
    let _ = stream.set_nodelay(true);
    crate::notice!("Non blocking connect for SYNC fired the event.");
    if !update(server, gen, |_, m| m.state = LinkState::Handshake) {
        return LinkEnd::Stale;
    }
    let mut io = LinkIo {
        stream,
        buf: BytesMut::with_capacity(16 * 1024),
    };
    match handshake(server, gen, &mut io).await {
        Ok(Synced::Full { replid, offset }) => {
            match transfer(server, gen, &mut io, replid, offset).await {
                Ok((reploff, db)) => stream_loop(server, gen, io, reploff, db).await,
                Err(end) => end,
            }
        }
        Ok(Synced::Partial { reploff, db }) => stream_loop(server, gen, io, reploff, db).await,
        Err(end) => end,
    }
}

/// Text of an I/O error the way strerror prints it (without Rust's " (os error N)").
fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

enum Synced {
    /// +FULLRESYNC (or legacy SYNC: replid "?" and offset -1).
    Full {
        replid: String,
        offset: i64,
    },
    Partial {
        reploff: i64,
        db: usize,
    },
}

async fn handshake(server: &Arc<Server>, gen: u64, io: &mut LinkIo) -> Result<Synced, LinkEnd> {
    let write_err = |e: std::io::Error| {
        crate::warning!(
            "Sending command to master in replication handshake: {}",
            io_text(&e)
        );
        LinkEnd::Failed
    };
    let read_err = |e: ReadErr| {
        crate::warning!("Failed to read response from the server: {e}");
        crate::warning!("Master did not respond to command during SYNC handshake");
        LinkEnd::Failed
    };
    io.send(&[b"PING"]).await.map_err(write_err)?;
    let reply = io.read_line(SYNCIO_TIMEOUT).await.map_err(read_err)?;
    if !(reply.starts_with('+')
        || reply.starts_with("-NOAUTH")
        || reply.starts_with("-NOPERM")
        || reply.starts_with("-ERR operation not permitted"))
    {
        crate::warning!("Error reply to PING from master: '{reply}'");
        return Err(LinkEnd::Failed);
    }
    crate::notice!("Master replied to PING, replication can continue...");
    let (auth, user, ip, port) = {
        let c = server.config.read();
        let port = if c.replica_announce_port != 0 {
            c.replica_announce_port
        } else {
            c.port
        };
        (
            c.masterauth.clone(),
            c.masteruser.clone(),
            c.replica_announce_ip.clone(),
            port,
        )
    };
    // AUTH, REPLCONF listening-port [ip-address] and capa go back to back.
    let mut batch = Vec::new();
    if let Some(pw) = &auth {
        let mut argv = vec![Bytes::from_static(b"AUTH")];
        if let Some(u) = &user {
            argv.push(Bytes::from(u.clone()));
        }
        argv.push(Bytes::from(pw.clone()));
        crate::propagate::encode_command(&argv, &mut batch);
    }
    let b = |s: &str| Bytes::from(s.to_string());
    crate::propagate::encode_command(
        &[b("REPLCONF"), b("listening-port"), b(&port.to_string())],
        &mut batch,
    );
    if let Some(ip) = &ip {
        crate::propagate::encode_command(&[b("REPLCONF"), b("ip-address"), b(ip)], &mut batch);
    }
    crate::propagate::encode_command(
        &[b("REPLCONF"), b("capa"), b("eof"), b("capa"), b("psync2")],
        &mut batch,
    );
    io.stream.write_all(&batch).await.map_err(write_err)?;
    if auth.is_some() {
        let reply = io.read_line(SYNCIO_TIMEOUT).await.map_err(read_err)?;
        if reply.starts_with('-') {
            crate::warning!("Unable to AUTH to MASTER: {reply}");
            return Err(LinkEnd::Failed);
        }
    }
    let reply = io.read_line(SYNCIO_TIMEOUT).await.map_err(read_err)?;
    if reply.starts_with('-') {
        crate::notice!(
            "(Non critical) Master does not understand REPLCONF listening-port: {reply}"
        );
    }
    if ip.is_some() {
        let reply = io.read_line(SYNCIO_TIMEOUT).await.map_err(read_err)?;
        if reply.starts_with('-') {
            crate::notice!(
                "(Non critical) Master does not understand REPLCONF ip-address: {reply}"
            );
        }
    }
    let reply = io.read_line(SYNCIO_TIMEOUT).await.map_err(read_err)?;
    if reply.starts_with('-') {
        crate::notice!("(Non critical) Master does not understand REPLCONF capa: {reply}");
    }

    // PSYNC: continue the cached master's history if we have one.
    let cached = server.store.lock().repl.cached_master.clone();
    let (id, off) = match &cached {
        Some(c) => {
            crate::notice!(
                "Trying a partial resynchronization (request {}:{}).",
                c.replid,
                c.reploff + 1
            );
            (c.replid.clone(), (c.reploff + 1).to_string())
        }
        None => {
            crate::notice!("Partial resynchronization not possible (no cached master)");
            ("?".to_string(), "-1".to_string())
        }
    };
    if let Err(e) = io.send(&[b"PSYNC", id.as_bytes(), off.as_bytes()]).await {
        crate::warning!("Unable to send PSYNC to master: {}", io_text(&e));
        return Err(LinkEnd::Failed);
    }
    let reply = loop {
        match io.read_line(SYNCIO_TIMEOUT).await {
            Ok(l) if l.is_empty() => continue,
            Ok(l) => break l,
            Err(_) => {
                crate::warning!("Master did not reply to PSYNC, will try later");
                return Err(LinkEnd::Failed);
            }
        }
    };
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC") {
        let mut parts = rest.split_whitespace();
        let replid = parts.next().unwrap_or("");
        let offset = parts.next().and_then(|o| o.parse::<i64>().ok());
        return match offset {
            Some(offset) if replid.len() == 40 => {
                crate::notice!("Full resync from master: {replid}:{offset}");
                Ok(Synced::Full {
                    replid: replid.to_string(),
                    offset,
                })
            }
            _ => {
                crate::warning!("Master replied with wrong +FULLRESYNC syntax.");
                Err(LinkEnd::Failed)
            }
        };
    }
    if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        crate::notice!("Successful partial resynchronization with master.");
        let newid = rest.trim();
        let mut out = None;
        let ok = update(server, gen, |store, m| {
            let r = &mut store.repl;
            let Some(c) = r.cached_master.take() else {
                return;
            };
            if newid.len() == 40 && newid != c.replid {
                crate::notice!("Master replication ID changed to {newid}");
                r.replid2 = c.replid.clone();
                r.second_replid_offset = r.master_repl_offset + 1;
                r.replid = newid.to_string();
                r.disconnect_replicas();
            }
            let size = server.config.read().repl_backlog_size;
            r.ensure_backlog(size);
            m.state = LinkState::Connected;
            m.client = Some((c.reploff, c.reploff, c.db));
            m.last_io = Instant::now();
            out = Some((c.reploff, c.db));
        });
        if !ok {
            return Err(LinkEnd::Stale);
        }
        let Some((reploff, db)) = out else {
            return Err(LinkEnd::Failed);
        };
        crate::notice!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
        return Ok(Synced::Partial { reploff, db });
    }
    if reply.starts_with("-NOMASTERLINK")
        || reply.starts_with("-LOADING")
        || reply.starts_with("-FENCED")
    {
        crate::notice!("Master is currently unable to PSYNC but should be in the future: {reply}");
        return Err(LinkEnd::Failed);
    }
    if reply.starts_with("-ERR") {
        crate::warning!("Master does not support PSYNC or is in error state (reply: {reply})");
    } else {
        crate::warning!("Unexpected reply to PSYNC from master: {reply}");
    }
    crate::notice!("Retrying with SYNC...");
    if let Err(e) = io.stream.write_all(b"SYNC\r\n").await {
        crate::warning!("I/O error writing to MASTER: {}", io_text(&e));
        return Err(LinkEnd::Failed);
    }
    Ok(Synced::Full {
        replid: "?".into(),
        offset: -1,
    })
}

/// Receives and loads the RDB payload; returns (reploff, db) for the stream.
async fn transfer(
    server: &Arc<Server>,
    gen: u64,
    io: &mut LinkIo,
    replid: String,
    offset: i64,
) -> Result<(i64, usize), LinkEnd> {
    let timeout = Duration::from_secs(server.config.read().repl_timeout.max(1));
    if !update(server, gen, |_, m| {
        m.state = LinkState::Transfer;
        m.transfer = Some((-1, 0));
        m.transfer_last_io = Instant::now();
    }) {
        return Err(LinkEnd::Stale);
    }
    let header = loop {
        match io.read_line(timeout).await {
            Ok(l) if l.is_empty() => {
                update(server, gen, |_, m| m.transfer_last_io = Instant::now());
            }
            Ok(l) => break l,
            Err(ReadErr::Timeout) => {
                crate::warning!(
                    "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value."
                );
                return Err(LinkEnd::Failed);
            }
            Err(e) => {
                crate::warning!("I/O error reading bulk count from MASTER: {e}");
                return Err(LinkEnd::Failed);
            }
        }
    };
    if let Some(msg) = header.strip_prefix('-') {
        crate::warning!("MASTER aborted replication with an error: {msg}");
        return Err(LinkEnd::Failed);
    }
    if !header.starts_with('$') {
        crate::warning!(
            "Bad protocol from MASTER, the first byte is not '$' (we received '{header}'), are you sure the host and port are right?"
        );
        return Err(LinkEnd::Failed);
    }
    let form = if header.starts_with("$EOF:") && header.len() >= 45 {
        let mut mark = [0u8; 40];
        mark.copy_from_slice(&header.as_bytes()[5..45]);
        crate::notice!(
            "MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to disk"
        );
        update(server, gen, |_, m| m.transfer = Some((0, 0)));
        Form::Eof(mark)
    } else {
        let Some(len) = crate::resp::parse_i64(&header.as_bytes()[1..]).filter(|n| *n >= 0) else {
            crate::warning!(
                "Bad protocol from MASTER, the first byte is not '$' (we received '{header}'), are you sure the host and port are right?"
            );
            return Err(LinkEnd::Failed);
        };
        crate::notice!("MASTER <-> REPLICA sync: receiving {len} bytes from master to disk");
        update(server, gen, |_, m| m.transfer = Some((len, 0)));
        Form::Len(len as usize)
    };
    let eof_form = matches!(form, Form::Eof(_));
    let (ndbs, dbfilename, del_sync_file) = {
        let c = server.config.read();
        (
            c.databases.max(1),
            c.dbfilename.clone(),
            c.rdb_del_sync_files && c.save.is_empty() && !c.appendonly,
        )
    };
    // The payload is loaded while it arrives: a blocking thread parses the
    // chunks the receive loop hands it (into fresh Dbs, swapped in only when
    // everything succeeded) while another writes the same chunks to the temp
    // sync file, renamed over dbfilename only at the end.
    let (load_tx, load_rx) = tokio::sync::mpsc::channel(LOAD_DEPTH);
    let mut load_job = tokio::task::spawn_blocking(move || load_streamed(load_rx, ndbs));
    let tmp = (!dbfilename.is_empty()).then(|| {
        format!(
            "temp-{}.{}.rdb",
            crate::server::now_ms() / 1000,
            std::process::id()
        )
    });
    let (file_tx, file_job) = match &tmp {
        Some(t) => {
            let (tx, rx) = tokio::sync::mpsc::channel(FILE_DEPTH);
            let t = t.clone();
            let job = tokio::task::spawn_blocking(move || write_sync_file(rx, &t));
            (Some(tx), Some(job))
        }
        None => (None, None),
    };
    let sinks = Sinks {
        load: load_tx,
        file: file_tx,
    };
    let received = match receive_payload(server, gen, io, &form, &sinks, timeout).await {
        Ok(()) => sinks.end().await,
        Err(e) => Err(e),
    };
    drop(sinks);
    let stale = received.is_ok()
        && !update(server, gen, |store, _| {
            if store.repl.cached_master.take().is_some() {
                crate::notice!("Discarding previously cached master state.");
            }
        });
    if received.is_ok() && !stale {
        crate::notice!("MASTER <-> REPLICA sync: Flushing old data");
        crate::notice!("MASTER <-> REPLICA sync: Loading DB in memory");
    }
    // While loading, a newline per second tells the master we are alive (Redis
    // `replicationSendNewlineToMaster`); the master refreshes our ACK time. A
    // broken transfer ends both jobs at once (their channels closed early).
    let loaded = loop {
        tokio::select! {
            r = &mut load_job => break r,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let _ = io.stream.write_all(b"\n").await;
            }
        }
    };
    let filed = match file_job {
        Some(j) => j
            .await
            .unwrap_or_else(|e| Err(SyncFileError::Write(e.to_string()))),
        None => Ok(()),
    };
    let loaded = loaded.unwrap_or_else(|e| Err(SyncFileError::Load(e.to_string())));
    let outcome = match (received, stale, loaded, filed) {
        (Err(Recv::Link(end)), _, loaded, _) => {
            if let Ok((dbs, _)) = loaded {
                discard(dbs).await;
            }
            Err(Some(end))
        }
        (_, true, loaded, _) => {
            if let Ok((dbs, _)) = loaded {
                discard(dbs).await;
            }
            Err(Some(LinkEnd::Stale))
        }
        (_, _, Ok(x), Ok(())) => Ok(x),
        (_, _, Ok((dbs, _)), Err(e)) => {
            discard(dbs).await;
            Err(report_sync_error(e))
        }
        (_, _, Err(e), Ok(())) => Err(report_sync_error(e)),
        // One side failing closes the other's channel: report the real cause.
        (_, _, Err(SyncFileError::Aborted), Err(e)) | (_, _, Err(e), Err(_)) => {
            Err(report_sync_error(e))
        }
    };
    let finished = match outcome {
        Ok((dbs, info)) => {
            let fin = match &tmp {
                Some(t) => {
                    let (t, name) = (t.clone(), dbfilename.clone());
                    tokio::task::spawn_blocking(move || publish_sync_file(&t, &name, del_sync_file))
                        .await
                        .unwrap_or_else(|e| Err(SyncFileError::Write(e.to_string())))
                }
                None => Ok(()),
            };
            match fin {
                Ok(()) => Ok((dbs, info)),
                Err(e) => {
                    discard(dbs).await;
                    Err(report_sync_error(e))
                }
            }
        }
        Err(end) => {
            if let Some(t) = &tmp {
                // The writer removes it on its own failures; a failed load or
                // a broken transfer leaves it to us.
                let _ = std::fs::remove_file(t);
            }
            Err(end)
        }
    };
    let (dbs, info) = match finished {
        Ok(x) => x,
        Err(end) => return Err(end.unwrap_or(LinkEnd::Failed)),
    };
    if let Some(v) = &info.redis_ver {
        crate::notice!("Loading RDB produced by version {v}");
    }
    if let Some(ctime) = info.ctime {
        let age = (crate::server::now_ms() / 1000 - ctime).max(0);
        crate::notice!("RDB age {age} seconds");
    }
    if let Some(mem) = info.used_mem {
        crate::notice!(
            "RDB memory usage when created {:.2} Mb",
            mem as f64 / (1024.0 * 1024.0)
        );
    }
    crate::notice!(
        "Done loading RDB, keys loaded: {}, keys expired: {}.",
        info.keys,
        info.expired
    );
    let db = info
        .repl
        .as_ref()
        .map(|r| r.stream_db)
        .filter(|d| *d >= 0 && (*d as usize) < ndbs)
        .unwrap_or(0) as usize;
    // Legacy SYNC gives no offset: the RDB's aux fields are the best we know.
    let (replid, offset) = if replid == "?" {
        match &info.repl {
            Some(r) => (r.replid.clone(), r.offset),
            None => (crate::server::random_hex40(), 0),
        }
    } else {
        (replid, offset)
    };
    let ok = update(server, gen, |store, m| {
        store.dbs = dbs;
        store.touch_all(None);
        let size = server.config.read().repl_backlog_size;
        let r = &mut store.repl;
        r.disconnect_replicas();
        r.replid = replid.clone();
        r.master_repl_offset = offset;
        r.clear_replid2();
        r.backlog = None;
        r.ensure_backlog(size);
        m.state = LinkState::Connected;
        m.transfer = None;
        m.client = Some((offset, offset, db));
        m.last_io = Instant::now();
    });
    if !ok {
        return Err(LinkEnd::Stale);
    }
    crate::notice!("MASTER <-> REPLICA sync: Finished with success");
    if eof_form && io.stream.write_all(&ack_bytes(offset)).await.is_err() {
        return Err(link_lost(server, gen, offset, db));
    }
    Ok((offset, db))
}

#[derive(Debug)]
enum SyncFileError {
    Open(String),
    Write(String),
    Load(String),
    /// The transfer broke before the end of the payload.
    Aborted,
}

/// Payload chunks queued for the loading thread (each is up to a few hundred KiB).
const LOAD_DEPTH: usize = 32;

/// Payload chunks queued for the sync file writer.
const FILE_DEPTH: usize = 64;

/// The receive loop hands the loader pieces of at least this size (except the
/// last), so tiny socket reads do not turn into tiny channel messages.
const MIN_PIECE: usize = 32 * 1024;

/// How the payload is delimited.
enum Form {
    /// `$EOF:<mark>`: the payload ends where the 40-byte mark is found.
    Eof([u8; 40]),
    /// `$<len>`: exactly this many bytes.
    Len(usize),
}

/// Why receiving stopped early.
enum Recv {
    /// The link failed (logged) or went stale.
    Link(LinkEnd),
    /// The loader or the file writer stopped taking chunks (its result says why).
    SinkGone,
}

/// Receives the payload, handing it to the loader in order. For the EOF form the
/// last 40 bytes are held back until it is known whether they are the mark.
async fn receive_payload(
    server: &Arc<Server>,
    gen: u64,
    io: &mut LinkIo,
    form: &Form,
    sinks: &Sinks,
    timeout: Duration,
) -> Result<(), Recv> {
    let transfer_err = |e: ReadErr| {
        match e {
            ReadErr::Timeout => crate::warning!(
                "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value."
            ),
            e => crate::warning!("I/O error trying to sync with MASTER: {e}"),
        }
        Recv::Link(LinkEnd::Failed)
    };
    let mut received = io.buf.len() as i64;
    match form {
        Form::Eof(mark) => loop {
            let n = io.buf.len();
            let done = n >= 40 && io.buf[n - 40..] == mark[..];
            if done || n >= 40 + MIN_PIECE {
                let data = io.buf.split_to(n - 40).freeze();
                if !data.is_empty() {
                    sinks.push(data, &mut io.stream).await?;
                }
                if done {
                    // Nothing follows the mark before our ACK.
                    io.buf.clear();
                    return Ok(());
                }
            }
            received += io.fill(timeout).await.map_err(transfer_err)? as i64;
            if !update(server, gen, |_, m| {
                m.transfer = Some((0, received));
                m.transfer_last_io = Instant::now();
            }) {
                return Err(Recv::Link(LinkEnd::Stale));
            }
        },
        Form::Len(len) => {
            let mut left = *len;
            loop {
                let take = io.buf.len().min(left);
                if take > 0 && (take == left || take >= MIN_PIECE) {
                    // Whatever follows the payload is already replication stream.
                    let data = io.buf.split_to(take).freeze();
                    sinks.push(data, &mut io.stream).await?;
                    left -= take;
                }
                if left == 0 {
                    return Ok(());
                }
                received += io.fill(timeout).await.map_err(transfer_err)? as i64;
                let read = received.min(*len as i64);
                if !update(server, gen, |_, m| {
                    m.transfer = Some((*len as i64, read));
                    m.transfer_last_io = Instant::now();
                }) {
                    return Err(Recv::Link(LinkEnd::Stale));
                }
            }
        }
    }
}

/// Where the received payload goes: the loading thread and the sync file writer.
struct Sinks {
    load: tokio::sync::mpsc::Sender<Piece>,
    file: Option<tokio::sync::mpsc::Sender<Piece>>,
}

impl Sinks {
    /// Hands one chunk to both, waiting for room; a newline per second tells the
    /// master we are alive meanwhile.
    async fn push(&self, data: Bytes, stream: &mut TcpStream) -> Result<(), Recv> {
        if let Some(f) = &self.file {
            wait_send(f, Piece::Data(data.clone()), stream).await?;
        }
        wait_send(&self.load, Piece::Data(data), stream).await
    }

    /// The whole payload arrived.
    async fn end(&self) -> Result<(), Recv> {
        if let Some(f) = &self.file {
            f.send(Piece::End).await.map_err(|_| Recv::SinkGone)?;
        }
        self.load.send(Piece::End).await.map_err(|_| Recv::SinkGone)
    }
}

async fn wait_send(
    tx: &tokio::sync::mpsc::Sender<Piece>,
    piece: Piece,
    stream: &mut TcpStream,
) -> Result<(), Recv> {
    let send = tx.send(piece);
    tokio::pin!(send);
    loop {
        tokio::select! {
            r = &mut send => return r.map_err(|_| Recv::SinkGone),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let _ = stream.write_all(b"\n").await;
            }
        }
    }
}

/// Logs why the sync failed (Redis's texts) and ends the attempt.
fn report_sync_error(e: SyncFileError) -> Option<LinkEnd> {
    match e {
        SyncFileError::Load(e) => {
            crate::warning!("Failed trying to load the MASTER synchronization DB from disk: {e}");
        }
        SyncFileError::Open(e) => {
            crate::warning!(
                "Opening the temp file needed for MASTER <-> REPLICA synchronization: {e}"
            );
        }
        SyncFileError::Write(e) => {
            crate::warning!(
                "Write error or short write writing to the DB dump file needed for MASTER <-> REPLICA synchronization: {e}"
            );
        }
        // Only after a broken transfer, which was logged when it broke.
        SyncFileError::Aborted => {}
    }
    Some(LinkEnd::Failed)
}

/// Drops a loaded dataset off the async workers (freeing millions of keys takes a
/// while).
async fn discard(dbs: Vec<Db>) {
    let _ = tokio::task::spawn_blocking(move || drop(dbs)).await;
}

/// The loading thread: parses the payload from the chunks as they arrive into
/// fresh Dbs. On failure (broken transfer, bad RDB) the partial data is dropped
/// here. The loader must also see the end of the payload: an RDB that parses but
/// whose transfer broke afterwards is not taken.
fn load_streamed(
    rx: tokio::sync::mpsc::Receiver<Piece>,
    ndbs: usize,
) -> Result<(Vec<Db>, crate::rdb::LoadInfo), SyncFileError> {
    let mut rd = ChunkReader::new(rx);
    let mut dbs: Vec<Db> = (0..ndbs).map(|_| Db::new()).collect();
    let opts = super::codec::LoadOptions {
        now_ms: crate::server::now_ms(),
        drop_expired: false,
    };
    let res = super::codec::load(&mut rd, &mut dbs, &opts);
    let complete = res.is_ok() && rd.drain();
    if rd.aborted() {
        drop(dbs);
        return Err(SyncFileError::Aborted);
    }
    match res {
        Ok(_) if !complete => Err(SyncFileError::Aborted),
        Ok(info) => Ok((dbs, info)),
        Err(e) => {
            drop(dbs);
            Err(SyncFileError::Load(e.to_string()))
        }
    }
}

/// Sync file writes between two fdatasyncs, so the final fsync has little left.
const FILE_SYNC_EVERY: usize = 16 * 1024 * 1024;

/// The sync file writer (blocking thread): writes the payload chunks to `tmp`
/// (`temp-<unixtime>.<pid>.rdb`) as they arrive and fsyncs it at the end of the
/// payload. On failure or a broken transfer the temp file is removed.
fn write_sync_file(
    mut rx: tokio::sync::mpsc::Receiver<Piece>,
    tmp: &str,
) -> Result<(), SyncFileError> {
    use std::io::Write;
    let text = |e: std::io::Error| io_text(&e);
    let mut f = std::fs::File::create(tmp).map_err(|e| SyncFileError::Open(text(e)))?;
    let mut unsynced = 0usize;
    let res = loop {
        match rx.blocking_recv() {
            Some(Piece::Data(b)) => {
                if let Err(e) = f.write_all(&b) {
                    break Err(SyncFileError::Write(text(e)));
                }
                unsynced += b.len();
                if unsynced >= FILE_SYNC_EVERY {
                    if let Err(e) = f.sync_data() {
                        break Err(SyncFileError::Write(text(e)));
                    }
                    unsynced = 0;
                }
            }
            Some(Piece::End) => break f.sync_all().map_err(|e| SyncFileError::Write(text(e))),
            None => break Err(SyncFileError::Aborted),
        }
    };
    if res.is_err() {
        drop(f);
        let _ = std::fs::remove_file(tmp);
    }
    res
}

/// Renames the complete, fsynced temp file over `dbfilename` (relative to `dir`,
/// the working directory), as Redis does with the received RDB, so a restart can
/// continue this history. With persistence off and `rdb-del-sync-files yes` the
/// file is removed again.
fn publish_sync_file(tmp: &str, dbfilename: &str, delete: bool) -> Result<(), SyncFileError> {
    if let Err(e) = std::fs::rename(tmp, dbfilename) {
        let _ = std::fs::remove_file(tmp);
        return Err(SyncFileError::Write(io_text(&e)));
    }
    if delete {
        crate::notice!(
            "Removing the RDB file obtained from the master. This replica has persistence disabled"
        );
        let _ = std::fs::remove_file(dbfilename);
    }
    Ok(())
}

/// Records the dropped link as the cached master.
fn link_lost(server: &Server, gen: u64, reploff: i64, db: usize) -> LinkEnd {
    let ok = update(server, gen, |store, m| {
        crate::warning!("Connection with master lost.");
        crate::notice!("Caching the disconnected master state.");
        let r = &mut store.repl;
        r.cached_master = Some(CachedMaster {
            replid: r.replid.clone(),
            reploff,
            db,
        });
        m.client = None;
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
        m.client = None;
        m.state = LinkState::Connect;
        m.down_since = Some(Instant::now());
    });
    if ok {
        LinkEnd::Failed
    } else {
        LinkEnd::Stale
    }
}

/// Removes the master client from the client registry when the link ends.
struct Registered<'a>(&'a Server, crate::server::ClientId);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.clients.lock().remove(&self.1);
    }
}

/// Applies the master's stream: executes each command as the master client,
/// counts offsets (not inside a MULTI), proxies applied bytes, ACKs.
async fn stream_loop(
    server: &Arc<Server>,
    gen: u64,
    io: LinkIo,
    mut reploff: i64,
    db: usize,
) -> LinkEnd {
    let LinkIo { stream, buf } = io;
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let local = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (mut rd, mut wr) = stream.into_split();
    let mut inbuf = buf;
    // `raw` mirrors `inbuf` from the last applied command boundary on, so the exact
    // bytes of each applied command can be proxied.
    let mut raw = BytesMut::from(&inbuf[..]);
    let mut read_reploff = reploff + inbuf.len() as i64;
    let (timeout, max_bulk) = {
        let c = server.config.read();
        (
            Duration::from_secs(c.repl_timeout.max(1)),
            c.proto_max_bulk_len,
        )
    };
    let id = server
        .next_client_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut client = ClientState::new(id);
    client.is_master = true;
    client.authenticated = true;
    client.db = db;
    // Listed by CLIENT LIST (flags=M); CLIENT KILL TYPE master drops the link.
    let handle = Arc::new(crate::server::ClientHandle::new(
        id,
        peer,
        local,
        crate::server::ClientInfo {
            resp: 2,
            user: "default".into(),
            flags: "M".into(),
            db,
            multi: -1,
            ..Default::default()
        },
    ));
    server.clients.lock().insert(id, handle.clone());
    let _registered = Registered(server, id);
    let mut parser = RequestParser::new(max_bulk);
    let mut ack = tokio::time::interval(Duration::from_secs(1));
    ack.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_io = Instant::now();
    let mut chunk = BytesMut::with_capacity(64 * 1024);
    loop {
        // Apply everything complete in the buffer under one lock.
        let mut getacks: Vec<i64> = Vec::new();
        {
            let mut store = server.store.lock();
            if store.repl.link_generation != gen {
                return LinkEnd::Stale;
            }
            store.cmd_clock = Some(Instant::now());
            let mut out = Reply::new(false);
            let mut name: Vec<u8> = Vec::new();
            // Bytes at the front of `raw` applied in this batch (a MULTI still
            // open at the end of a batch stays unsettled until its EXEC).
            let mut settled = 0usize;
            loop {
                if parser.is_idle()
                    && !inbuf.is_empty()
                    && !matches!(inbuf[0], b'*' | b'\n' | b'\r')
                {
                    store.cmd_clock = None;
                    drop(store);
                    crate::warning!(
                        "WARNING: Receiving inline protocol from master, master stream corruption? Closing the master connection and discarding the cached master."
                    );
                    return link_broken(server, gen);
                }
                let argv = match parser.parse(&mut inbuf) {
                    Ok(None) => break,
                    Ok(Some(Request::Empty)) => continue,
                    Ok(Some(Request::Command(argv))) => argv,
                    Err(e) => {
                        store.cmd_clock = None;
                        drop(store);
                        crate::warning!(
                            "Protocol error from master: {e}. Closing the master connection."
                        );
                        return link_broken(server, gen);
                    }
                };
                if argv.len() >= 2
                    && argv[0].eq_ignore_ascii_case(b"replconf")
                    && argv[1].eq_ignore_ascii_case(b"getack")
                {
                    // Answered with the offset before this command.
                    getacks.push(reploff);
                } else {
                    out.buf.clear();
                    // Only needed for the error log below (a reused buffer: cloning
                    // the `Bytes` would allocate).
                    name.clear();
                    name.extend_from_slice(&argv[0]);
                    let outcome =
                        exec::process(server, &mut store, &mut client, None, argv, &mut out);
                    if matches!(outcome, Outcome::Blocked { .. }) {
                        store.unblock(client.id);
                    }
                    if out.buf.first() == Some(&b'-') {
                        let line = String::from_utf8_lossy(&out.buf);
                        let err = line.trim_start_matches('-').lines().next().unwrap_or("");
                        let name = String::from_utf8_lossy(&name);
                        crate::warning!(
                            "== CRITICAL == This replica is sending an error to its master: '{err}' after processing the command '{name}'"
                        );
                    }
                }
                if client.multi.is_none() {
                    // Everything consumed so far is applied: our offset moves now
                    // (GETACK answers it), the bytes join our own stream below.
                    let applied = raw.len() - inbuf.len();
                    reploff += (applied - settled) as i64;
                    settled = applied;
                }
            }
            // One append per batch instead of one per command. The early returns
            // above end in `link_broken`, which discards this history anyway.
            if settled > 0 {
                let bytes = raw.split_to(settled).freeze();
                store.repl.append_stream(bytes);
            }
            store.cmd_clock = None;
            if let Some(m) = store.repl.master.as_mut() {
                m.client = Some((read_reploff, reploff, client.db));
                m.last_io = last_io;
            }
        }
        {
            let mut info = handle.info.lock();
            info.db = client.db;
            info.last_interaction = Some(last_io);
        }
        if handle.is_killed() {
            return link_lost(server, gen, reploff, client.db);
        }
        for off in getacks {
            if wr.write_all(&ack_bytes(off)).await.is_err() {
                return link_lost(server, gen, reploff, client.db);
            }
        }
        tokio::select! {
            r = rd.read_buf(&mut chunk) => {
                match r {
                    Ok(0) | Err(_) => return link_lost(server, gen, reploff, client.db),
                    Ok(n) => {
                        read_reploff += n as i64;
                        inbuf.extend_from_slice(&chunk);
                        raw.extend_from_slice(&chunk);
                        chunk.clear();
                        last_io = Instant::now();
                    }
                }
            }
            _ = handle.kill_notify.notified() => {
                return link_lost(server, gen, reploff, client.db);
            }
            _ = ack.tick() => {
                if last_io.elapsed() > timeout {
                    crate::warning!("MASTER timeout: no data nor PING received...");
                    return link_lost(server, gen, reploff, client.db);
                }
                if wr.write_all(&ack_bytes(reploff)).await.is_err() {
                    return link_lost(server, gen, reploff, client.db);
                }
            }
        }
    }
}
