//! Sending a disk-target payload (the body after `$<len>\r\n`) to one replica.
//!
//! Over plain TCP the bytes go out from a blocking thread that runs with the long
//! bulk slice (`crate::snapshot::BulkSlice`), through its own descriptor of the
//! replica's socket: the runtime worker that answers every client of this master
//! only waits for the result, and anything that wakes up to answer a request
//! (this server's worker, a client) preempts the copy. TLS links encrypt in the
//! stream object the worker owns, so they keep writing on the worker, a piece per
//! turn.
//!
//! Nothing else writes to the socket meanwhile: the stream queued for this
//! replica is sent only after the payload. A kill (CLIENT KILL, output limits)
//! or the link's end (shutdown drops the link's future) stops the thread and
//! shuts the socket down at once, as closing it did before.

use crate::server::ClientHandle;
use crate::tls::WriteHalf;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::SendFlags;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// At most this much per send(2). From the worker (TLS) it is also what one turn
/// writes: one `write` of the whole payload copies as much as the socket buffer
/// takes (megabytes on loopback), a millisecond or more during which the worker
/// answers no one.
const PIECE: usize = 64 * 1024;

/// How long the sending thread waits for room in the socket buffer before it
/// looks at the stop flag again (a kill or the link's end also shuts the socket
/// down, which wakes it at once).
const POLL_WAIT: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 100_000_000,
};

/// Writes `payload` to the replica. `Err` when the link failed or was killed.
pub(super) async fn send_payload(
    wr: &mut WriteHalf,
    handle: &Arc<ClientHandle>,
    payload: bytes::Bytes,
) -> Result<(), ()> {
    let fd = match wr {
        WriteHalf::Plain(h) => h.as_ref().as_fd().try_clone_to_owned(),
        WriteHalf::Unix(h) => h.as_ref().as_fd().try_clone_to_owned(),
        WriteHalf::Tls(_) => return send_on_worker(wr, handle, &payload).await,
    };
    let Ok(fd) = fd else {
        // No descriptor to spare (EMFILE): the worker sends it.
        return send_on_worker(wr, handle, &payload).await;
    };
    let fd = Arc::new(fd);
    let mut stop = Stop {
        fd: fd.clone(),
        flag: Arc::new(AtomicBool::new(false)),
        armed: true,
    };
    let mut job = tokio::task::spawn_blocking({
        let (flag, handle) = (stop.flag.clone(), handle.clone());
        move || send_blocking(&fd, &payload, &flag, &handle)
    });
    let sent = tokio::select! {
        r = &mut job => matches!(r, Ok(Ok(()))),
        _ = handle.kill_notify.notified() => {
            stop.now();
            let _ = job.await;
            false
        }
    };
    stop.armed = false;
    if sent && !handle.is_killed() {
        Ok(())
    } else {
        Err(())
    }
}

/// The TLS path (and the fallback): the worker writes a piece per turn, and the
/// other connections of this worker get their turn between pieces (Redis's event
/// loop sends a replica 16 KiB per turn the same way).
async fn send_on_worker(
    wr: &mut WriteHalf,
    handle: &ClientHandle,
    payload: &[u8],
) -> Result<(), ()> {
    for piece in payload.chunks(PIECE) {
        super::write_or_killed(wr, handle, piece).await?;
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// The sending thread: send(2) a piece at a time, poll(2) while the socket
/// buffer is full, until everything is out, the link fails, or `stop` / a kill.
fn send_blocking(
    fd: &OwnedFd,
    payload: &[u8],
    stop: &AtomicBool,
    handle: &ClientHandle,
) -> Result<(), Errno> {
    let _bulk = crate::snapshot::BulkSlice::enter();
    let mut sent = 0;
    while sent < payload.len() {
        if stop.load(Ordering::Acquire) || handle.is_killed() {
            return Err(Errno::CANCELED);
        }
        let piece = &payload[sent..payload.len().min(sent + PIECE)];
        // NOSIGNAL: a replica gone away is an EPIPE here, not a SIGPIPE.
        match rustix::net::send(fd, piece, SendFlags::NOSIGNAL) {
            Ok(0) => return Err(Errno::PIPE),
            Ok(n) => sent += n,
            Err(Errno::AGAIN) => {
                // The descriptor shares the runtime's non-blocking mode: wait
                // here for room instead.
                let mut fds = [PollFd::new(fd, PollFlags::OUT)];
                match rustix::event::poll(&mut fds, Some(&POLL_WAIT)) {
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Stops the sending thread when the transfer is abandoned (a kill, or the
/// link's future dropped at shutdown) before it finished.
struct Stop {
    fd: Arc<OwnedFd>,
    flag: Arc<AtomicBool>,
    armed: bool,
}

impl Stop {
    /// Sets the flag and shuts the socket down: a thread waiting in poll(2) or
    /// send(2) returns at once, and the replica sees the link close as it did when
    /// the worker dropped the socket.
    fn now(&mut self) {
        self.armed = false;
        self.flag.store(true, Ordering::Release);
        let _ = rustix::net::shutdown(&*self.fd, rustix::net::Shutdown::Both);
    }
}

impl Drop for Stop {
    fn drop(&mut self) {
        if self.armed {
            self.now();
        }
    }
}
