//! The replication snapshot job: produces the RDB for a full sync off the store
//! lock. A forked child (see `crate::snapshot`) serialises its copy-on-write view
//! into a pipe. Socket target: a blocking task forwards each pipe chunk to every
//! replica of the ticket as it arrives (`full_sync::stream_snapshot` frames it
//! with `$EOF:`). Disk target: the task reads the pipe to the end and shares the
//! bytes (`$<len>` needs the length first). No RDB file is written for either
//! target. If fork fails: a point-in-time clone under the lock, serialised off
//! the lock.

use crate::replication::codec;
use crate::replication::sync_stream::{Broadcast, FeedTx, SnapshotError};
use crate::replication::{SnapshotResult, Ticket};
use crate::server::Server;
use bytes::Bytes;
use std::sync::Arc;

/// Starts producing the snapshot of `ticket` (call with the store lock held:
/// the fork, or the fallback clone, is the point in time). A disk target's
/// result goes to `done`; a socket target's chunks go to `feeds`.
pub(super) fn start(
    server: &Arc<Server>,
    dbs: &[crate::db::Db],
    functions: Vec<bytes::Bytes>,
    ticket: &Ticket,
    done: tokio::sync::watch::Sender<SnapshotResult>,
    feeds: Vec<FeedTx>,
) {
    let srv = server.clone();
    let (rid, off, use_eof) = (ticket.replid.clone(), ticket.offset, ticket.eof);
    let (compression, checksum, key_delay) = {
        let c = server.config.read();
        (c.rdbcompression, c.rdbchecksum, c.rdb_key_save_delay)
    };
    let mut opts = save_options(&rid, off, compression, checksum);
    opts.functions = functions;
    opts.key_delay = key_delay;
    let (source, pid) = match fork_snapshot(&server.children, dbs, &opts) {
        Ok((pipe, pid)) => (Source::Fork(pipe), pid as u32),
        Err(e) => {
            crate::warning!(
                "Can't fork for the replication snapshot ({e}): using an in-process copy"
            );
            let dbs = dbs.to_vec();
            let job: InProcess = Box::new(move || {
                let mut out = Vec::new();
                codec::save(&dbs, &opts, &mut out)
                    .map_err(|e| SnapshotError::Serialize(Arc::new(e)))?;
                Ok(out)
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
            drop(done);
            stream_to_feeds(source, Broadcast::new(feeds));
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
        let _ = done.send(Some(res));
    });
}

/// The RDB options of a replication snapshot: the replication aux fields say
/// where the stream continues.
fn save_options(
    replid: &str,
    offset: i64,
    compression: bool,
    checksum: bool,
) -> codec::SaveOptions {
    codec::SaveOptions {
        compression,
        checksum,
        repl: Some(codec::ReplInfo {
            replid: replid.to_string(),
            offset,
            stream_db: 0,
        }),
        aof_base: false,
        functions: Vec::new(),
        key_delay: 0,
        commands: false,
        timestamp: false,
    }
}

/// Serialises the snapshot in this process (fork failed).
type InProcess = Box<dyn FnOnce() -> Result<Vec<u8>, SnapshotError> + Send>;

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
    fn read_all(self) -> Result<Vec<u8>, SnapshotError> {
        let mut out = Vec::new();
        self.run(|chunk| {
            out.extend_from_slice(&chunk);
            true
        })?;
        Ok(out)
    }

    /// Calls `take` with each chunk as it is produced; `take` returns false when
    /// nobody wants more, which kills the child. Reaps the child.
    fn run(self, mut take: impl FnMut(Bytes) -> bool) -> Result<(), SnapshotError> {
        match self {
            Source::InProcess(job) => {
                let mut all = Bytes::from(job()?);
                while !all.is_empty() {
                    let chunk = all.split_to(all.len().min(PIPE_CHUNK * 4));
                    if !take(chunk) {
                        return Err(SnapshotError::Abandoned);
                    }
                }
                Ok(())
            }
            Source::Fork(p) => p.run(take),
        }
    }
}

impl ForkedPipe {
    /// [`Source::run`] for a forked child.
    fn run(self, mut take: impl FnMut(Bytes) -> bool) -> Result<(), SnapshotError> {
        use std::io::Read;
        let ForkedPipe { mut rd, child } = self;
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
                Err(e) => break Err(SnapshotError::Pipe(Arc::new(e))),
            }
            if !take(buf.split().freeze()) {
                crate::warning!("Diskless rdb transfer, last replica dropped, killing fork child.");
                child.kill();
                break Err(SnapshotError::Abandoned);
            }
        };
        drop(rd);
        let exit = child.wait();
        match read {
            Err(e) => Err(e),
            Ok(()) if !exit.success() => Err(SnapshotError::Child(exit)),
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
    children: &crate::snapshot::Children,
    dbs: &[crate::db::Db],
    opts: &codec::SaveOptions,
) -> std::io::Result<(ForkedPipe, i32)> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let (rd, wr) = crate::snapshot::pipe()?;
    let delay = crate::persist::child_delay_ms();
    let child = crate::snapshot::fork_child(children, &[wr.as_raw_fd()], || {
        // The child exits when done: no need to drop the guard.
        let _bulk = crate::snapshot::BulkSlice::enter();
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        let mut w = std::io::BufWriter::with_capacity(1 << 16, &wr);
        match codec::save(dbs, opts, &mut w).and_then(|()| w.flush()) {
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
