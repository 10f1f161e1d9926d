//! TRANSFER: the RDB payload after `+FULLRESYNC`. The bulk header says how it is
//! delimited ([`parse_bulk_header`]); the payload is handed to a loading thread
//! (fresh databases, swapped in only when everything succeeded) and, as it
//! arrives, to the sync file writer ([`super::sync_file`]); [`settle`] decides
//! what the three results together mean.
//!
//! When the loader starts follows `repl-diskless-load`: with `disabled` (the
//! default, as in Redis) a streamed (`$EOF:`) payload is held until it is
//! complete and loaded after, as Redis loads the file it received; with
//! `swapdb`, or `on-empty-db` and no data yet, it is loaded while it arrives.
//! Loading while receiving ends the sync sooner, but on a host shared with the
//! master it runs the loader beside the master's snapshot child, which encodes
//! while it streams: two busy threads on two cores, and the master's clients
//! wait for a core (docs/benchmarks.md, entry 28). A `$<len>` payload comes
//! from a finished snapshot and is always loaded as it arrives.

use super::handshake::FullResync;
use super::link_io::{ack_bytes, LinkIo, ReadErr};
use super::sync_file::{self, Loaded, SyncFileError};
use super::{link_lost, repl_timeout, update, LinkEnd, Step};
use crate::db::Db;
use crate::replication::sync_stream::Piece;
use crate::replication::{LinkOffsets, LinkState, TransferProgress};
use crate::server::Server;
use crate::tls::Stream;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::Sender;
use tokio::task::JoinHandle;

/// Payload chunks queued for the loading thread (each is up to a few hundred KiB).
const LOAD_DEPTH: usize = 32;

/// Payload chunks queued for the sync file writer.
const FILE_DEPTH: usize = 64;

/// The receive loop hands the loader pieces of at least this size (except the
/// last), so tiny socket reads do not turn into tiny channel messages.
const MIN_PIECE: usize = 32 * 1024;

/// With loading deferred to the end of the payload, at most this much of it is
/// held in memory; a longer payload starts loading at this point, so holding
/// it never costs more than this on top of what the load itself takes.
const HOLD_MAX: usize = 256 * 1024 * 1024;

/// Length of the `$EOF:` mark.
const MARK_LEN: usize = 40;

/// Why the transfer failed. The texts are Redis's log lines.
#[derive(Debug, thiserror::Error)]
enum TransferError {
    #[error(
        "Timeout receiving bulk data from MASTER... If the problem persists try to set the 'repl-timeout' parameter in redis.conf to a larger value."
    )]
    Timeout,
    #[error("I/O error reading bulk count from MASTER: {0}")]
    ReadBulkCount(ReadErr),
    #[error("MASTER aborted replication with an error: {0}")]
    MasterAborted(String),
    #[error(
        "Bad protocol from MASTER, the first byte is not '$' (we received '{0}'), are you sure the host and port are right?"
    )]
    BadProtocol(String),
    #[error("I/O error trying to sync with MASTER: {0}")]
    Read(ReadErr),
    #[error(transparent)]
    SyncFile(#[from] SyncFileError),
    /// The dataset is in, but the ACK after an `$EOF:` payload could not be
    /// sent: the link is lost with these offsets.
    #[error("the ACK after the payload could not be sent")]
    AckFailed(LinkOffsets),
    #[error("replaced by a newer REPLICAOF")]
    Stale,
}

impl TransferError {
    /// A failed read of the payload.
    fn reading(e: ReadErr) -> Self {
        match e {
            ReadErr::Timeout => TransferError::Timeout,
            e => TransferError::Read(e),
        }
    }

    /// Logs the failure (once, Redis's words) and ends the attempt.
    fn report(self, server: &Server, gen: u64) -> LinkEnd {
        match self {
            TransferError::Stale => LinkEnd::Stale,
            TransferError::AckFailed(offsets) => link_lost(server, gen, offsets),
            // Only after a broken transfer, which was logged when it broke.
            TransferError::SyncFile(SyncFileError::Aborted) => LinkEnd::Failed,
            e => {
                crate::warning!("{e}");
                LinkEnd::Failed
            }
        }
    }
}

/// How the payload is delimited.
#[derive(Debug, PartialEq, Eq)]
enum Form {
    /// `$EOF:<mark>`: the payload ends where the 40-byte mark is found.
    Eof([u8; MARK_LEN]),
    /// `$<len>`: exactly this many bytes.
    Len(usize),
}

/// TRANSFER → CONNECTED.
pub(super) async fn run(
    server: &Arc<Server>,
    gen: u64,
    mut io: LinkIo,
    full: FullResync,
) -> Result<Step, LinkEnd> {
    match receive_and_load(server, gen, &mut io, full).await {
        Ok(offsets) => Ok(Step::Stream(io, offsets)),
        Err(e) => Err(e.report(server, gen)),
    }
}

async fn receive_and_load(
    server: &Arc<Server>,
    gen: u64,
    io: &mut LinkIo,
    full: FullResync,
) -> Result<LinkOffsets, TransferError> {
    let timeout = repl_timeout(server);
    if !update(server, gen, |_, m| {
        m.state = LinkState::Transfer;
        m.transfer = Some(TransferProgress { total: -1, read: 0 });
        m.transfer_last_io = Instant::now();
    }) {
        return Err(TransferError::Stale);
    }
    let form = read_header(server, gen, io, timeout).await?;
    let settings = Settings::from_config(server);
    let (dbs, info) = receive_into_jobs(server, gen, io, &form, &settings, timeout).await?;
    log_loaded(&info);
    let offsets = swap_in(server, gen, dbs, &info, full, settings.ndbs)?;
    crate::notice!("MASTER <-> REPLICA sync: Finished with success");
    if matches!(form, Form::Eof(_))
        && io
            .stream
            .write_all(&ack_bytes(offsets.applied))
            .await
            .is_err()
    {
        return Err(TransferError::AckFailed(offsets));
    }
    Ok(offsets)
}

/// Reads the bulk header (newlines before it are the master's keepalives).
async fn read_header(
    server: &Server,
    gen: u64,
    io: &mut LinkIo,
    timeout: Duration,
) -> Result<Form, TransferError> {
    let header = loop {
        match io.read_line(timeout).await {
            Ok(l) if l.is_empty() => {
                update(server, gen, |_, m| m.transfer_last_io = Instant::now());
            }
            Ok(l) => break l,
            Err(ReadErr::Timeout) => return Err(TransferError::Timeout),
            Err(e) => return Err(TransferError::ReadBulkCount(e)),
        }
    };
    let form = parse_bulk_header(&header)?;
    let total = match form {
        Form::Eof(_) => {
            crate::notice!(
                "MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to disk"
            );
            0
        }
        Form::Len(len) => {
            crate::notice!("MASTER <-> REPLICA sync: receiving {len} bytes from master to disk");
            len as i64
        }
    };
    update(server, gen, |_, m| {
        m.transfer = Some(TransferProgress { total, read: 0 })
    });
    Ok(form)
}

/// `$EOF:<40-byte mark>`, `$<len>`, or the master's error.
fn parse_bulk_header(header: &str) -> Result<Form, TransferError> {
    if let Some(msg) = header.strip_prefix('-') {
        return Err(TransferError::MasterAborted(msg.to_string()));
    }
    let bad = || TransferError::BadProtocol(header.to_string());
    let Some(rest) = header.strip_prefix('$') else {
        return Err(bad());
    };
    let mark = rest
        .strip_prefix("EOF:")
        .and_then(|m| m.as_bytes().get(..MARK_LEN))
        .and_then(|m| <[u8; MARK_LEN]>::try_from(m).ok());
    if let Some(mark) = mark {
        return Ok(Form::Eof(mark));
    }
    match crate::resp::parse_i64(rest.as_bytes()).and_then(|n| usize::try_from(n).ok()) {
        Some(len) => Ok(Form::Len(len)),
        None => Err(bad()),
    }
}

/// What the transfer takes from the configuration.
struct Settings {
    ndbs: usize,
    dbfilename: String,
    /// `rdb-del-sync-files` with persistence off: remove the file once renamed.
    del_sync_file: bool,
    /// `key-load-delay`.
    key_delay: i32,
    /// The encoding thresholds the loaded values are shaped by.
    shapes: crate::rdb::Shapes,
    /// Load only once the payload is complete (`repl-diskless-load`).
    defer_load: bool,
}

impl Settings {
    fn from_config(server: &Server) -> Self {
        // The config guard is gone before the store is locked (never both held).
        let mode = server.config.read().repl_diskless_load.clone();
        let empty = || server.store.lock().dbs.iter().all(|d| d.is_empty());
        let defer_load = defers_load(&mode, empty);
        let c = server.config.read();
        Settings {
            defer_load,
            ndbs: c.databases.max(1),
            dbfilename: c.dbfilename.clone(),
            del_sync_file: c.rdb_del_sync_files && c.save.is_empty() && !c.appendonly,
            key_delay: c.key_load_delay,
            shapes: crate::rdb::Shapes::of(&c),
        }
    }
}

/// Whether `repl-diskless-load` (`value`) has the replica take the whole payload
/// before loading it: `disabled` (the default) does; `swapdb` does not;
/// `on-empty-db` does not when the dataset is empty (`empty`, asked only then).
fn defers_load(value: &str, empty: impl FnOnce() -> bool) -> bool {
    match value {
        "swapdb" => false,
        "on-empty-db" => !empty(),
        _ => true,
    }
}

/// The loader and the sync file writer, running on blocking threads.
struct Jobs {
    load: JoinHandle<Result<Loaded, SyncFileError>>,
    file: Option<JoinHandle<Result<(), SyncFileError>>>,
    /// The writer's temp file.
    tmp: Option<String>,
}

fn start_jobs(settings: &Settings, defer: bool) -> (Sinks, Jobs) {
    let (load_tx, load_rx) = tokio::sync::mpsc::channel(LOAD_DEPTH);
    let (ndbs, key_delay, shapes) = (settings.ndbs, settings.key_delay, settings.shapes);
    let load = tokio::task::spawn_blocking(move || {
        // The load is bulk work: the replica's own event loop (and anything else
        // on the machine answering requests) preempts it when it wakes.
        let _bulk = crate::snapshot::BulkSlice::enter();
        sync_file::load_streamed(load_rx, ndbs, (key_delay, shapes))
    });
    let tmp = (!settings.dbfilename.is_empty()).then(sync_file::temp_name);
    let (file_tx, file) = match &tmp {
        Some(t) => {
            let (tx, rx) = tokio::sync::mpsc::channel(FILE_DEPTH);
            let t = t.clone();
            let job = tokio::task::spawn_blocking(move || sync_file::write_sync_file(rx, &t));
            (Some(tx), Some(job))
        }
        None => (None, None),
    };
    let sinks = Sinks {
        load: load_tx,
        file: file_tx,
        held: defer.then(Held::default),
    };
    (sinks, Jobs { load, file, tmp })
}

/// Receives the payload into both jobs and takes the loaded dataset once every
/// part succeeded (and the sync file is in place).
async fn receive_into_jobs(
    server: &Arc<Server>,
    gen: u64,
    io: &mut LinkIo,
    form: &Form,
    settings: &Settings,
    timeout: Duration,
) -> Result<Loaded, TransferError> {
    // Only a payload the master streams while its snapshot child still encodes
    // (`$EOF:`) is held: a `$<len>` one was complete on the master before it was
    // sent, so loading it as it arrives competes with no child.
    let defer = settings.defer_load && matches!(form, Form::Eof(_));
    let (mut sinks, jobs) = start_jobs(settings, defer);
    let received = match receive_payload(server, gen, io, form, &mut sinks, timeout).await {
        Ok(()) => sinks.end(&mut io.stream).await,
        Err(e) => Err(e),
    };
    drop(sinks);
    let received = received.and_then(|()| take_over(server, gen));
    let (loaded, filed) = finish_jobs(jobs.load, jobs.file, &mut io.stream).await;
    match settle(received, loaded, filed) {
        Ok(loaded) => publish(loaded, jobs.tmp, settings).await,
        Err((e, loaded)) => {
            if let Some((dbs, _)) = loaded {
                discard(dbs).await;
            }
            if let Some(t) = &jobs.tmp {
                // The writer removes it on its own failures; a failed load or
                // a broken transfer leaves it to us.
                let _ = std::fs::remove_file(t);
            }
            Err(e)
        }
    }
}

/// The whole payload arrived: the cached master is history now.
fn take_over(server: &Server, gen: u64) -> Result<(), Recv> {
    let current = update(server, gen, |store, _| {
        if store.repl.cached_master.take().is_some() {
            crate::notice!("Discarding previously cached master state.");
        }
    });
    if !current {
        return Err(Recv::Failed(TransferError::Stale));
    }
    crate::notice!("MASTER <-> REPLICA sync: Flushing old data");
    crate::notice!("MASTER <-> REPLICA sync: Loading DB in memory");
    Ok(())
}

/// Waits for both jobs. While loading, a newline per second tells the master we
/// are alive (Redis `replicationSendNewlineToMaster`); the master refreshes our
/// ACK time. A broken transfer ends both jobs at once (their channels closed).
async fn finish_jobs(
    mut load: JoinHandle<Result<Loaded, SyncFileError>>,
    file: Option<JoinHandle<Result<(), SyncFileError>>>,
    stream: &mut Stream,
) -> (Result<Loaded, SyncFileError>, Result<(), SyncFileError>) {
    let loaded = loop {
        tokio::select! {
            r = &mut load => break r,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let _ = stream.write_all(b"\n").await;
            }
        }
    };
    let loaded = loaded.unwrap_or_else(|e| Err(SyncFileError::LoaderTask(e)));
    let filed = match file {
        Some(j) => j
            .await
            .unwrap_or_else(|e| Err(SyncFileError::WriterTask(e))),
        None => Ok(()),
    };
    (loaded, filed)
}

/// What the receive loop, the loader and the file writer ended with, together:
/// the dataset to take, or the error to report and a dataset to drop.
fn settle<D>(
    received: Result<(), Recv>,
    loaded: Result<D, SyncFileError>,
    filed: Result<(), SyncFileError>,
) -> Result<D, (TransferError, Option<D>)> {
    match (received, loaded, filed) {
        (Err(Recv::Failed(e)), loaded, _) => Err((e, loaded.ok())),
        (_, Ok(d), Ok(())) => Ok(d),
        (_, Ok(d), Err(e)) => Err((e.into(), Some(d))),
        (_, Err(e), Ok(())) => Err((e.into(), None)),
        // One side failing closes the other's channel: report the real cause.
        (_, Err(SyncFileError::Aborted), Err(e)) | (_, Err(e), Err(_)) => Err((e.into(), None)),
    }
}

/// Moves the sync file into place; the dataset is dropped if that fails.
async fn publish(
    (dbs, info): Loaded,
    tmp: Option<String>,
    settings: &Settings,
) -> Result<Loaded, TransferError> {
    let Some(tmp) = tmp else {
        return Ok((dbs, info));
    };
    let (name, delete) = (settings.dbfilename.clone(), settings.del_sync_file);
    let published =
        tokio::task::spawn_blocking(move || sync_file::publish_sync_file(&tmp, &name, delete))
            .await
            .unwrap_or_else(|e| Err(SyncFileError::WriterTask(e)));
    match published {
        Ok(()) => Ok((dbs, info)),
        Err(e) => {
            discard(dbs).await;
            Err(e.into())
        }
    }
}

/// Drops a loaded dataset off the async workers (freeing millions of keys takes a
/// while).
async fn discard(dbs: Vec<Db>) {
    let _ = tokio::task::spawn_blocking(move || drop(dbs)).await;
}

/// Logs what the loaded RDB says about itself, as Redis does.
fn log_loaded(info: &crate::rdb::LoadInfo) {
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
}

/// The db the stream continues in: the RDB's `repl-stream-db` if valid, else 0.
fn stream_db(aux: Option<&crate::rdb::ReplInfo>, ndbs: usize) -> usize {
    aux.and_then(|r| usize::try_from(r.stream_db).ok())
        .filter(|d| *d < ndbs)
        .unwrap_or(0)
}

/// The history and offset the stream continues: the `+FULLRESYNC` point, or for
/// legacy SYNC (no offset given) the RDB's aux fields, else a new history at 0.
fn sync_point(full: FullResync, aux: Option<&crate::rdb::ReplInfo>) -> (String, i64) {
    match (full, aux) {
        (FullResync::At { replid, offset }, _) => (replid, offset),
        (FullResync::Legacy, Some(r)) => (r.replid.clone(), r.offset),
        (FullResync::Legacy, None) => (crate::server::random_hex40(), 0),
    }
}

/// Swaps the loaded dataset in and makes the link CONNECTED at the sync point,
/// with a fresh backlog (our own replicas must resync).
fn swap_in(
    server: &Arc<Server>,
    gen: u64,
    dbs: Vec<Db>,
    info: &crate::rdb::LoadInfo,
    full: FullResync,
    ndbs: usize,
) -> Result<LinkOffsets, TransferError> {
    let (replid, offset) = sync_point(full, info.repl.as_ref());
    let offsets = LinkOffsets::at(offset, stream_db(info.repl.as_ref(), ndbs));
    let current = update(server, gen, |store, m| {
        store.dbs = dbs;
        crate::commands::function_lib::install_loaded(store, &info.functions);
        store.touch_all(None);
        // Before any streamed command: they go to the AOF that follows this data.
        crate::aof::restart_after_sync(server, store);
        let size = server.config.read().repl_backlog_size;
        let r = &mut store.repl;
        r.disconnect_replicas();
        r.replid = replid;
        r.master_repl_offset = offset;
        r.clear_replid2();
        r.backlog = None;
        r.ensure_backlog(size);
        m.state = LinkState::Connected;
        m.transfer = None;
        m.offsets = Some(offsets);
        m.last_io = Instant::now();
    });
    if !current {
        return Err(TransferError::Stale);
    }
    Ok(offsets)
}

/// Why receiving stopped early.
#[derive(Debug)]
enum Recv {
    /// The link failed or went stale.
    Failed(TransferError),
    /// The loader or the file writer stopped taking chunks (its result says why).
    SinkGone,
}

/// Records payload progress; fails when the link went stale.
fn progress(server: &Server, gen: u64, p: TransferProgress) -> Result<(), Recv> {
    let current = update(server, gen, |_, m| {
        m.transfer = Some(p);
        m.transfer_last_io = Instant::now();
    });
    if current {
        Ok(())
    } else {
        Err(Recv::Failed(TransferError::Stale))
    }
}

/// Receives the payload, handing it to the loader in order.
async fn receive_payload(
    server: &Server,
    gen: u64,
    io: &mut LinkIo,
    form: &Form,
    sinks: &mut Sinks,
    timeout: Duration,
) -> Result<(), Recv> {
    match form {
        Form::Eof(mark) => receive_until_mark(server, gen, io, mark, sinks, timeout).await,
        Form::Len(len) => receive_len(server, gen, io, *len, sinks, timeout).await,
    }
}

/// Reads more payload within `timeout`; the bytes read.
async fn fill(io: &mut LinkIo, timeout: Duration) -> Result<i64, Recv> {
    match io.fill(timeout).await {
        Ok(n) => Ok(n as i64),
        Err(e) => Err(Recv::Failed(TransferError::reading(e))),
    }
}

/// `$EOF:` form: the last 40 bytes are held back until it is known whether they
/// are the mark.
async fn receive_until_mark(
    server: &Server,
    gen: u64,
    io: &mut LinkIo,
    mark: &[u8; MARK_LEN],
    sinks: &mut Sinks,
    timeout: Duration,
) -> Result<(), Recv> {
    let mut received = io.buf.len() as i64;
    loop {
        let n = io.buf.len();
        let done = io.buf.ends_with(mark);
        if done || n >= MARK_LEN + MIN_PIECE {
            let data = io.buf.split_to(n - MARK_LEN).freeze();
            if !data.is_empty() {
                sinks.push(data, &mut io.stream).await?;
            }
            if done {
                // Nothing follows the mark before our ACK.
                io.buf.clear();
                return Ok(());
            }
        }
        received += fill(io, timeout).await?;
        progress(
            server,
            gen,
            TransferProgress {
                total: 0,
                read: received,
            },
        )?;
    }
}

/// `$<len>` form: exactly `len` bytes; whatever follows is already stream.
async fn receive_len(
    server: &Server,
    gen: u64,
    io: &mut LinkIo,
    len: usize,
    sinks: &mut Sinks,
    timeout: Duration,
) -> Result<(), Recv> {
    let mut received = io.buf.len() as i64;
    let mut left = len;
    loop {
        let take = io.buf.len().min(left);
        if take > 0 && (take == left || take >= MIN_PIECE) {
            let data = io.buf.split_to(take).freeze();
            sinks.push(data, &mut io.stream).await?;
            left -= take;
        }
        if left == 0 {
            return Ok(());
        }
        received += fill(io, timeout).await?;
        let total = len as i64;
        progress(
            server,
            gen,
            TransferProgress {
                total,
                read: received.min(total),
            },
        )?;
    }
}

/// Where the received payload goes: the loading thread and the sync file writer.
struct Sinks {
    load: Sender<Piece>,
    file: Option<Sender<Piece>>,
    /// The payload held back from the loader while its load is deferred.
    held: Option<Held>,
}

/// Payload chunks not yet handed to the loader, and their size.
#[derive(Default)]
struct Held {
    chunks: Vec<Bytes>,
    bytes: usize,
}

impl Sinks {
    /// Hands one chunk to the file writer, and to the loader unless its load is
    /// deferred (then it is held, up to [`HOLD_MAX`]), waiting for room; a
    /// newline per second tells the master we are alive meanwhile.
    async fn push(&mut self, data: Bytes, stream: &mut Stream) -> Result<(), Recv> {
        if let Some(f) = &self.file {
            wait_send(f, Piece::Data(data.clone()), stream).await?;
        }
        if let Some(h) = &mut self.held {
            if h.bytes + data.len() <= HOLD_MAX {
                h.bytes += data.len();
                h.chunks.push(data);
                return Ok(());
            }
            self.release(stream).await?;
        }
        wait_send(&self.load, Piece::Data(data), stream).await
    }

    /// Hands the held chunks to the loader; from now on chunks go straight to it.
    async fn release(&mut self, stream: &mut Stream) -> Result<(), Recv> {
        for c in self.held.take().map(|h| h.chunks).unwrap_or_default() {
            wait_send(&self.load, Piece::Data(c), stream).await?;
        }
        Ok(())
    }

    /// The whole payload arrived: the loader gets whatever was held, then the end.
    async fn end(&mut self, stream: &mut Stream) -> Result<(), Recv> {
        if let Some(f) = &self.file {
            f.send(Piece::End).await.map_err(|_| Recv::SinkGone)?;
        }
        self.release(stream).await?;
        self.load.send(Piece::End).await.map_err(|_| Recv::SinkGone)
    }
}

async fn wait_send(tx: &Sender<Piece>, piece: Piece, stream: &mut Stream) -> Result<(), Recv> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const MARK: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn bulk_headers_are_parsed_or_reported_in_redis_words() {
        assert_eq!(
            parse_bulk_header(&format!("$EOF:{MARK}")).ok(),
            Some(Form::Eof(*b"0123456789abcdef0123456789abcdef01234567"))
        );
        assert_eq!(parse_bulk_header("$1234").ok(), Some(Form::Len(1234)));
        assert_eq!(parse_bulk_header("$0").ok(), Some(Form::Len(0)));
        let e = parse_bulk_header("-ERR BGSAVE failed").expect_err("error");
        assert_eq!(
            e.to_string(),
            "MASTER aborted replication with an error: ERR BGSAVE failed"
        );
        for bad in ["+OK", "$-1", "$EOF:short", "$12x", "$", ""] {
            let e = parse_bulk_header(bad).expect_err(bad);
            assert_eq!(
                e.to_string(),
                format!("Bad protocol from MASTER, the first byte is not '$' (we received '{bad}'), are you sure the host and port are right?")
            );
        }
    }

    fn aux(stream_db: i64) -> crate::rdb::ReplInfo {
        crate::rdb::ReplInfo {
            replid: MARK.into(),
            offset: 77,
            stream_db,
        }
    }

    #[test]
    fn the_stream_continues_at_the_fullresync_point_or_the_rdb_aux_fields() {
        let at = FullResync::At {
            replid: "x".repeat(40),
            offset: 5,
        };
        assert_eq!(sync_point(at, Some(&aux(0))), ("x".repeat(40), 5));
        assert_eq!(
            sync_point(FullResync::Legacy, Some(&aux(0))),
            (MARK.to_string(), 77)
        );
        let (id, off) = sync_point(FullResync::Legacy, None);
        assert_eq!((id.len(), off), (40, 0));
        assert_eq!(stream_db(Some(&aux(3)), 16), 3);
        assert_eq!(stream_db(Some(&aux(16)), 16), 0);
        assert_eq!(stream_db(Some(&aux(-1)), 16), 0);
        assert_eq!(stream_db(None, 16), 0);
    }

    #[test]
    fn repl_diskless_load_decides_whether_the_load_waits_for_the_whole_payload() {
        let never = || -> bool { panic!("emptiness asked for no reason") };
        assert!(defers_load("disabled", never));
        assert!(defers_load("", never), "the default is disabled");
        assert!(!defers_load("swapdb", never));
        assert!(!defers_load("on-empty-db", || true));
        assert!(defers_load("on-empty-db", || false));
    }

    fn io_err() -> SyncFileError {
        SyncFileError::Write(std::io::Error::from_raw_os_error(libc::ENOSPC))
    }

    #[test]
    fn settle_takes_the_dataset_only_when_every_part_succeeded() {
        assert!(matches!(settle(Ok(()), Ok(1), Ok(())), Ok(1)));
        // A broken receive keeps its own error; a dataset is handed back to drop.
        let r = settle(Err(Recv::Failed(TransferError::Timeout)), Ok(1), Ok(()));
        assert!(matches!(r, Err((TransferError::Timeout, Some(1)))));
        // The file failed: the loaded dataset is dropped, the file error told.
        let r = settle(Ok(()), Ok(1), Err(io_err()));
        assert!(matches!(
            r,
            Err((TransferError::SyncFile(SyncFileError::Write(_)), Some(1)))
        ));
        // The writer failing aborts the loader: report the writer's cause.
        let r = settle::<i32>(
            Err(Recv::SinkGone),
            Err(SyncFileError::Aborted),
            Err(io_err()),
        );
        assert!(matches!(
            r,
            Err((TransferError::SyncFile(SyncFileError::Write(_)), None))
        ));
        // A bad RDB aborts the writer: report the loader's cause.
        let bad = SyncFileError::Load(crate::rdb::RdbError::WrongSignature);
        let r = settle::<i32>(Err(Recv::SinkGone), Err(bad), Err(SyncFileError::Aborted));
        assert!(matches!(
            r,
            Err((TransferError::SyncFile(SyncFileError::Load(_)), None))
        ));
    }
}
