//! Replies written once per scheduling round, as an event loop like Redis's writes
//! them: every ready connection runs its batch first, then the replies go out, each
//! connection's in one `send`, just before the thread sleeps in `epoll_wait`.
//!
//! Writing each connection's replies as soon as its batch ran (what the connection
//! loop did before) interleaves execution with the wake-ups of the clients: every
//! reply that lands in a sleeping client's socket wakes it (`sock_def_readable`,
//! 11.5 % of the server's CPU at `SET -P 16 -c 50` against 2.3 % for Redis). Written
//! together at the end of the round, the first reply wakes the client and the rest
//! find it awake.
//!
//! How: a plain-TCP connection that ran a batch on a runtime worker leaves its reply
//! bytes in its [`Outbox`] and puts the outbox on the worker's list; the runtime's
//! before-park hook ([`end_round`], installed in `main.rs`) writes every listed
//! outbox with one non-blocking `send` when the worker has no ready task left. A
//! reply that does not fit in the socket (a slow reader) stays in the outbox, marked
//! stalled; the connection is woken and writes it itself, with back-pressure, before
//! anything else, so replies keep their order and a client that does not read stops
//! being read from, as before.
//!
//! A connection that runs a second batch before the round ended (a busy client: the
//! worker may not park for a long time) ends the round on the spot: everything listed
//! is written then, so one busy client cannot hold back the others' replies.
//!
//! A thread defers only while it is a worker that will park (the hook marks it); the
//! thread that runs `block_on`, blocking-pool threads and a worker that hands its core
//! away for a busy script (`leave_worker`) write directly.

#![allow(unsafe_code)]

use parking_lot::Mutex;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Waker;

/// Most bytes a connection leaves for the end of the round: larger replies (and a
/// connection that keeps running batches within one round) are written at once, so
/// an outbox holds at most this much.
pub const DEFER_MAX: usize = 64 * 1024;

/// One connection's replies waiting for the end of the round.
#[derive(Debug)]
pub struct Outbox {
    /// A round-end write could not send everything: the connection writes the rest.
    stalled: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The connection's socket (non-blocking), for the round-end write. Not a
    /// duplicate descriptor: that would double the descriptors each client holds
    /// (and halve the clients a process limit allows). The connection calls
    /// `close`, which clears this under the lock, before it drops the socket, so a
    /// round-end write never reaches a descriptor number reused by something else.
    fd: Option<RawFd>,
    buf: Vec<u8>,
    /// On some worker's list (at most once).
    queued: bool,
    /// Wakes the connection's task when its outbox stalls.
    waker: Option<Waker>,
}

/// The current thread's round: whether it may defer, and the outboxes it will write.
/// Per thread (a `thread_local!`), never shared between threads.
struct Round {
    active: Cell<bool>,
    list: RefCell<Vec<Arc<Outbox>>>,
}

thread_local! {
    static ROUND: Round = const {
        Round {
            active: Cell::new(false),
            list: RefCell::new(Vec::new()),
        }
    };
}

/// The runtime's before-park hook: writes every outbox this worker listed, and
/// marks the thread as one that parks (so it may defer from now on).
pub fn end_round() {
    let _ = ROUND.try_with(|r| {
        r.write_all();
        r.active.set(true);
    });
}

/// Called before this thread stops being a worker for a while (`block_in_place` for
/// a busy script): writes what it holds and stops deferring until it parks again.
pub fn leave_worker() {
    let _ = ROUND.try_with(|r| {
        r.write_all();
        r.active.set(false);
    });
}

impl Round {
    fn write_all(&self) {
        let Ok(mut list) = self
            .list
            .try_borrow_mut()
            .map(|mut l| std::mem::take(&mut *l))
        else {
            return;
        };
        for outbox in list.drain(..) {
            outbox.write_now();
        }
        // Keep the allocation for the next round.
        if let Ok(mut l) = self.list.try_borrow_mut() {
            if l.is_empty() {
                *l = list;
            }
        }
    }
}

impl Outbox {
    /// An outbox writing to `sock`, which must outlive it or be `close`d first.
    pub fn new(sock: BorrowedFd<'_>) -> Arc<Self> {
        let fd = sock.as_raw_fd();
        Arc::new(Outbox {
            stalled: AtomicBool::new(false),
            state: Mutex::new(State {
                fd: Some(fd),
                ..State::default()
            }),
        })
    }

    /// Leaves `out` (emptied) for the end of the round. False when the caller must
    /// write it now: not on a worker that parks, more than [`DEFER_MAX`] bytes
    /// pending, or an earlier round-end write stalled.
    pub fn defer(self: &Arc<Self>, out: &mut Vec<u8>, waker: &Waker) -> bool {
        if out.len() > DEFER_MAX || self.stalled() {
            return false;
        }
        ROUND
            .try_with(|r| {
                if !r.active.get() {
                    return false;
                }
                let Ok(mut list) = r.list.try_borrow_mut() else {
                    return false;
                };
                let mut st = self.state.lock();
                if st.fd.is_none() || st.buf.len() + out.len() > DEFER_MAX {
                    return false;
                }
                if st.buf.is_empty() {
                    std::mem::swap(&mut st.buf, out);
                } else {
                    st.buf.extend_from_slice(out);
                    out.clear();
                }
                if !st.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    st.waker = Some(waker.clone());
                }
                if !st.queued {
                    st.queued = true;
                    list.push(self.clone());
                    return true;
                }
                // The connection ran again before the round ended: it is busy (a deep
                // pipeline, a stream of writes) and the worker may not park for a
                // while, so the round ends here, as an event loop gives each client
                // one read per turn and then writes.
                drop(st);
                drop(list);
                r.write_all();
                true
            })
            .unwrap_or(false)
    }

    /// A round-end write left bytes the connection must write itself.
    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// Puts whatever is still unwritten in front of `out`, for the connection to
    /// write itself; the outbox is then empty and not stalled.
    pub fn take_into(&self, out: &mut Vec<u8>) {
        let mut st = self.state.lock();
        self.stalled.store(false, Ordering::Release);
        if st.buf.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut st.buf);
        drop(st);
        pending.extend_from_slice(out);
        *out = pending;
    }

    /// The connection is closing its socket or handing it over: nothing is written
    /// to it from here on (what is still here is dropped, as a closing connection's
    /// replies are).
    pub fn close(&self) {
        let mut st = self.state.lock();
        st.fd = None;
        st.buf = Vec::new();
        st.waker = None;
    }

    /// The round-end write: one non-blocking send of everything pending.
    fn write_now(&self) {
        let mut st = self.state.lock();
        st.queued = false;
        let State { fd, buf, .. } = &mut *st;
        let Some(fd) = *fd else {
            return;
        };
        let mut done = 0;
        while done < buf.len() {
            match send_nonblocking(fd, &buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // The peer is gone: its connection learns it from its next read.
                    buf.clear();
                    return;
                }
            }
        }
        if done == buf.len() {
            buf.clear();
            return;
        }
        buf.drain(..done);
        self.stalled.store(true, Ordering::Release);
        let waker = st.waker.clone();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// One `send` that never blocks and never raises SIGPIPE.
fn send_nonblocking(fd: RawFd, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is a readable slice of `buf.len()` bytes; `send` only reads it.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsFd;

    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn a_thread_that_does_not_park_never_defers() {
        let (_a, b) = pair();
        let outbox = Outbox::new(b.as_fd());
        let mut out = b"+OK\r\n".to_vec();
        assert!(!outbox.defer(&mut out, Waker::noop()));
        assert_eq!(out, b"+OK\r\n");
    }

    #[test]
    fn deferred_replies_go_out_at_the_end_of_the_round() {
        let (mut a, b) = pair();
        let outbox = Outbox::new(b.as_fd());
        end_round(); // this thread now parks like a worker
        let mut out = b"+one\r\n".to_vec();
        assert!(outbox.defer(&mut out, Waker::noop()));
        assert!(out.is_empty());
        a.set_nonblocking(true).unwrap();
        let mut got = [0u8; 64];
        assert!(
            a.read(&mut got).is_err(),
            "nothing is sent before the round ends"
        );
        end_round();
        a.set_nonblocking(false).unwrap();
        let mut got = vec![0u8; 6];
        a.read_exact(&mut got).unwrap();
        assert_eq!(got, b"+one\r\n");
        leave_worker();
    }

    #[test]
    fn a_full_socket_stalls_the_outbox_and_the_rest_is_taken_in_front() {
        let (mut a, b) = pair();
        let outbox = Outbox::new(b.as_fd());
        end_round();
        // Fill the socket until a round-end write cannot send everything.
        let mut sent = 0usize;
        let mut rounds = 0;
        while !outbox.stalled() {
            rounds += 1;
            assert!(rounds < 10_000, "the socket never filled");
            let mut out = vec![b'x'; DEFER_MAX];
            assert!(outbox.defer(&mut out, Waker::noop()));
            sent += DEFER_MAX;
            end_round();
        }
        let mut out = vec![b'y'; 10];
        assert!(
            !outbox.defer(&mut out, Waker::noop()),
            "a stalled outbox is not added to"
        );
        outbox.take_into(&mut out);
        assert!(!outbox.stalled());
        assert!(out.len() > 10 && out.ends_with(b"yyyyyyyyyy"));
        // What the socket took plus what was taken back is everything, in order.
        let in_socket = sent - (out.len() - 10);
        let mut got = vec![0u8; in_socket];
        a.read_exact(&mut got).unwrap();
        assert!(got.iter().all(|&c| c == b'x'));
        leave_worker();
    }

    #[test]
    fn a_connection_deferring_twice_in_a_round_ends_the_round_for_everyone() {
        let (mut a, b) = pair();
        let (mut c, d) = pair();
        let busy = Outbox::new(b.as_fd());
        let other = Outbox::new(d.as_fd());
        end_round();
        assert!(other.defer(&mut b"+other\r\n".to_vec(), Waker::noop()));
        assert!(busy.defer(&mut b"+one\r\n".to_vec(), Waker::noop()));
        c.set_nonblocking(true).unwrap();
        assert!(c.read(&mut [0u8; 16]).is_err(), "nothing written yet");
        // The busy connection's second batch in the same round writes everything.
        assert!(busy.defer(&mut b"+two\r\n".to_vec(), Waker::noop()));
        c.set_nonblocking(false).unwrap();
        let mut got = vec![0u8; 8];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, b"+other\r\n");
        let mut got = vec![0u8; 12];
        a.read_exact(&mut got).unwrap();
        assert_eq!(got, b"+one\r\n+two\r\n");
        leave_worker();
    }

    #[test]
    fn a_closed_outbox_is_never_written() {
        let (mut a, b) = pair();
        let outbox = Outbox::new(b.as_fd());
        end_round();
        let mut out = b"+late\r\n".to_vec();
        assert!(outbox.defer(&mut out, Waker::noop()));
        outbox.close();
        end_round();
        drop(b);
        let mut got = Vec::new();
        a.read_to_end(&mut got).unwrap();
        assert!(got.is_empty());
        let mut out = b"+x\r\n".to_vec();
        assert!(!outbox.defer(&mut out, Waker::noop()));
        leave_worker();
    }
}
