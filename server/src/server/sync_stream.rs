//! Streaming pieces of the full sync, on both ends.
//!
//! * Master, socket target: the thread reading the snapshot child's pipe hands
//!   every chunk to each replica of the ticket through a bounded channel
//!   ([`Broadcast`]); the pipe is read only as fast as the slowest live replica
//!   takes the chunks (the pipe's backpressure then stalls the child), as Redis
//!   does with its rdb pipe. A replica that goes away drops its receiver and is
//!   skipped; when none is left the reader reports it so the child is killed.
//! * Replica: the receive loop feeds the payload in chunks to a blocking thread
//!   that loads it ([`ChunkReader`] is the `Read` the RDB loader consumes) while
//!   it arrives, or once a streamed payload is complete under
//!   `repl-diskless-load disabled` (`replica/transfer.rs`); another thread
//!   writes the same chunks to the sync file as they arrive.

use crate::server::ClientId;
use bytes::Bytes;
use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Chunks queued per replica before the pipe reader waits for it.
pub const FEED_DEPTH: usize = 16;

/// Why producing a replication snapshot failed (shared by every replica of the
/// snapshot, hence `Clone`). Logged by each replica's task ("BGSAVE for
/// replication failed: ...", "Diskless rdb transfer failed: ...").
#[derive(Debug, Clone, thiserror::Error)]
pub enum SnapshotError {
    /// Reading the snapshot child's pipe failed.
    #[error("{0}")]
    Pipe(Arc<std::io::Error>),
    /// The snapshot child failed (its exit status).
    #[error("{0}")]
    Child(crate::snapshot::Exit),
    /// Serialising in this process (fork failed) failed.
    #[error("{0}")]
    Serialize(Arc<std::io::Error>),
    /// Every replica of a socket-target snapshot went away.
    #[error("all replicas dropped")]
    Abandoned,
}

/// What the pipe reader sends to one replica's full-sync task.
#[derive(Debug)]
pub enum Feed {
    /// The next piece of the RDB payload.
    Chunk(Bytes),
    /// The child finished: `Ok` means the payload is complete (send the mark),
    /// `Err` that it failed (the transfer must break).
    Done(Result<(), SnapshotError>),
}

pub type FeedTx = mpsc::Sender<Feed>;
pub type FeedRx = mpsc::Receiver<Feed>;

/// Receivers of a socket-target ticket's replicas that have not picked theirs up
/// yet (a replica gathered into another replica's snapshot takes it later).
pub type Feeds = Arc<parking_lot::Mutex<HashMap<ClientId, FeedRx>>>;

/// The pipe reader's side: one sender per replica still taking the payload.
#[derive(Debug, Default)]
pub struct Broadcast {
    txs: Vec<FeedTx>,
}

impl Broadcast {
    pub fn new(txs: Vec<FeedTx>) -> Self {
        Broadcast { txs }
    }

    /// Hands `chunk` to every live replica, waiting for room in each queue
    /// (call from a blocking thread). Returns false once no replica is left.
    pub fn send(&mut self, chunk: Bytes) -> bool {
        self.txs
            .retain(|tx| tx.blocking_send(Feed::Chunk(chunk.clone())).is_ok());
        !self.txs.is_empty()
    }

    /// Replicas still attached.
    pub fn live(&self) -> usize {
        self.txs.iter().filter(|t| !t.is_closed()).count()
    }

    /// Whether every replica went away.
    pub fn abandoned(&self) -> bool {
        self.txs.iter().all(|t| t.is_closed())
    }

    /// Tells every replica how the child ended.
    pub fn finish(self, res: Result<(), SnapshotError>) {
        for tx in self.txs {
            let _ = tx.blocking_send(Feed::Done(res.clone()));
        }
    }
}

/// What the replica's receive loop sends to the loading thread.
#[derive(Debug)]
pub enum Piece {
    Data(Bytes),
    /// The whole payload arrived (length reached or EOF mark seen).
    End,
}

/// A `Read` over the payload chunks sent by the receive loop (blocking).
pub struct ChunkReader {
    rx: mpsc::Receiver<Piece>,
    cur: Bytes,
    ended: bool,
    aborted: bool,
}

impl ChunkReader {
    pub fn new(rx: mpsc::Receiver<Piece>) -> Self {
        ChunkReader {
            rx,
            cur: Bytes::new(),
            ended: false,
            aborted: false,
        }
    }

    /// Takes the next piece; false at the end (or when the sender went away
    /// before the end: the transfer broke).
    fn next_piece(&mut self) -> bool {
        if self.ended || self.aborted {
            return false;
        }
        match self.rx.blocking_recv() {
            Some(Piece::Data(b)) => {
                self.cur = b;
                true
            }
            Some(Piece::End) => {
                self.ended = true;
                false
            }
            None => {
                self.aborted = true;
                false
            }
        }
    }

    /// Whether the sender went away before [`Piece::End`].
    pub fn aborted(&self) -> bool {
        self.aborted
    }

    /// Skips whatever the loader did not read, up to the end of the payload.
    /// True if the payload ended normally.
    pub fn drain(&mut self) -> bool {
        self.cur = Bytes::new();
        while self.next_piece() {
            self.cur = Bytes::new();
        }
        self.ended
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.cur.is_empty() {
            if !self.next_piece() {
                if self.ended {
                    return Ok(0);
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the transfer from the master broke",
                ));
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        // Fast path: the loader reads mostly small pieces inside one chunk.
        if self.cur.len() >= buf.len() {
            buf.copy_from_slice(&self.cur[..buf.len()]);
            bytes::Buf::advance(&mut self.cur, buf.len());
            return Ok(());
        }
        let mut done = 0;
        while done < buf.len() {
            match self.read(&mut buf[done..])? {
                0 => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "payload ended",
                    ))
                }
                n => done += n,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(pieces: Vec<Piece>) -> mpsc::Receiver<Piece> {
        let (tx, rx) = mpsc::channel(pieces.len() + 1);
        for p in pieces {
            tx.try_send(p).expect("room");
        }
        rx
    }

    #[test]
    fn reads_across_chunks_and_drains_to_the_end() {
        let rx = feed(vec![
            Piece::Data(Bytes::from_static(b"hel")),
            Piece::Data(Bytes::from_static(b"lo wor")),
            Piece::Data(Bytes::from_static(b"ld")),
            Piece::End,
        ]);
        let mut r = ChunkReader::new(rx);
        let mut a = [0u8; 5];
        r.read_exact(&mut a).expect("5 bytes");
        assert_eq!(&a, b"hello");
        let mut b = [0u8; 4];
        r.read_exact(&mut b).expect("across chunks");
        assert_eq!(&b, b" wor");
        assert!(r.drain(), "ended normally");
        assert!(!r.aborted());
    }

    #[test]
    fn eof_at_end_and_error_when_the_sender_vanishes() {
        let rx = feed(vec![Piece::Data(Bytes::from_static(b"ab")), Piece::End]);
        let mut r = ChunkReader::new(rx);
        let mut v = Vec::new();
        r.read_to_end(&mut v).expect("complete");
        assert_eq!(v, b"ab");

        // No End: the sender is dropped (the transfer broke).
        let rx = feed(vec![Piece::Data(Bytes::from_static(b"ab"))]);
        let mut r = ChunkReader::new(rx);
        let mut a = [0u8; 3];
        let e = r.read_exact(&mut a).expect_err("broken");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionAborted);
        assert!(r.aborted());
        assert!(!r.drain());
    }

    #[test]
    fn broadcast_skips_replicas_that_left() {
        let (t1, mut r1) = mpsc::channel(4);
        let (t2, r2) = mpsc::channel(4);
        let mut b = Broadcast::new(vec![t1, t2]);
        assert_eq!(b.live(), 2);
        drop(r2);
        assert!(b.send(Bytes::from_static(b"x")));
        assert_eq!(b.live(), 1);
        assert!(matches!(r1.try_recv(), Ok(Feed::Chunk(c)) if &c[..] == b"x"));
        drop(r1);
        assert!(b.abandoned());
        assert!(!b.send(Bytes::from_static(b"y")));
    }
}
