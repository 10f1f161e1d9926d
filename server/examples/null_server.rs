//! A server that does nothing: it answers `+OK` to every complete RESP request.
//!
//! `bench/run.py --only ceiling` runs redis-benchmark against it to measure the
//! client's own ceiling on the machine: redis-benchmark is single threaded, so past a
//! point the client, not the server, limits the requests per second. Whatever rate this
//! server reaches is the most any server can show in that harness; the ratio of that
//! rate to Redis's is the highest Tandem/Redis ratio the harness can report.
//!
//! Usage: `null_server --port N [--busy-poll]`
//!
//! - One thread, epoll (level-triggered), non-blocking sockets with TCP_NODELAY.
//! - Each connection keeps a read buffer; RESP multibulk requests are counted as they
//!   complete (a request split across reads waits for its rest). An inline request or
//!   a malformed one closes the connection. `*0` / `*-1` are skipped without a reply,
//!   like Redis does.
//! - Every complete request gets `+OK\r\n` (reads too: the point is zero work), with
//!   one write per read batch per connection. If the socket cannot take all of it, the
//!   connection stops reading until the rest is written (EPOLLOUT).
//! - `--busy-poll`: while an event was seen in the last 100 ms, epoll_wait is called
//!   with timeout 0 (the thread never sleeps, so a client's send never has to wake
//!   it); after 100 ms without events it blocks again, so an idle server is quiet.
//! - SIGTERM / SIGINT end it (exit status 0).
//!
//! This is an example, not a product: it is not tested beyond the benchmark.

// Why unsafe: std has no epoll and no signal handlers, and this example must add no
// dependencies, so it calls epoll_create1/epoll_ctl/epoll_wait and sigaction through
// `libc`. Every unsafe block is one syscall with a SAFETY comment.
#![allow(unsafe_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const LISTENER: u64 = u64::MAX;
const MAX_EVENTS: usize = 256;
const READ_CHUNK: usize = 64 * 1024;
/// Largest multibulk count and bulk length accepted (Redis: 1M args, 512 MB bulks;
/// this server has no use for big requests and would rather close the connection).
const MAX_ARGS: i64 = 1024 * 1024;
const MAX_BULK: i64 = 64 * 1024 * 1024;
/// Most unparsed bytes a connection may hold before it is closed.
const MAX_PENDING: usize = 256 * 1024 * 1024;
/// Longest `*N` / `$N` header line before the connection counts as malformed.
const MAX_HEADER: usize = 32;
const BUSY_WINDOW: Duration = Duration::from_millis(100);
/// Blocking epoll_wait timeout, so a stop signal is seen even if it lands between
/// the flag check and the wait.
const IDLE_WAIT_MS: i32 = 200;
const REPLY: &[u8] = b"+OK\r\n";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

struct Args {
    port: u16,
    busy_poll: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut port = None;
    let mut busy_poll = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => {
                let v = it.next().ok_or("--port needs a value")?;
                port = Some(v.parse::<u16>().map_err(|_| format!("bad port {v:?}"))?);
            }
            "--busy-poll" => busy_poll = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        port: port.ok_or("usage: null_server --port N [--busy-poll]")?,
        busy_poll,
    })
}

/// Outcome of scanning a read buffer.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// `commands` complete requests (replies owed) ending at byte `consumed`; the rest
    /// is an incomplete request.
    Ok { consumed: usize, commands: usize },
    /// Inline or malformed request: close the connection.
    Bad,
}

/// Reads a `<prefix><integer>\r\n` line at `pos`. `Ok(None)`: not complete yet.
fn header(buf: &[u8], pos: usize, prefix: u8) -> Result<Option<(i64, usize)>, ()> {
    let rest = &buf[pos..];
    if rest.is_empty() {
        return Ok(None);
    }
    if rest[0] != prefix {
        return Err(());
    }
    let limit = rest.len().min(MAX_HEADER);
    let Some(lf) = rest[..limit].iter().position(|&b| b == b'\n') else {
        return if rest.len() >= MAX_HEADER {
            Err(())
        } else {
            Ok(None)
        };
    };
    if lf < 2 || rest[lf - 1] != b'\r' {
        return Err(());
    }
    let cr = lf - 1;
    let digits = &rest[1..cr];
    let (neg, digits) = match digits.split_first() {
        Some((b'-', d)) => (true, d),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    let n = digits
        .iter()
        .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
    Ok(Some((if neg { -n } else { n }, pos + cr + 2)))
}

/// Counts the complete multibulk requests at the start of `buf`.
fn scan(buf: &[u8]) -> Scan {
    let mut done = 0;
    let mut commands = 0;
    'requests: while done < buf.len() {
        let (argc, mut pos) = match header(buf, done, b'*') {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(()) => return Scan::Bad,
        };
        if argc > MAX_ARGS {
            return Scan::Bad;
        }
        for _ in 0..argc.max(0) {
            let (len, body) = match header(buf, pos, b'$') {
                Ok(Some(h)) => h,
                Ok(None) => break 'requests,
                Err(()) => return Scan::Bad,
            };
            if !(0..=MAX_BULK).contains(&len) {
                return Scan::Bad;
            }
            // In range 0..=MAX_BULK, so the conversion cannot fail on 64-bit targets.
            let Ok(len) = usize::try_from(len) else {
                return Scan::Bad;
            };
            let end = body + len;
            if end + 2 > buf.len() {
                break 'requests;
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Scan::Bad;
            }
            pos = end + 2;
        }
        if argc > 0 {
            commands += 1;
        }
        done = pos;
    }
    Scan::Ok {
        consumed: done,
        commands,
    }
}

struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    /// Unwritten bytes of `out` start here; while `out` is not empty the connection
    /// waits for EPOLLOUT instead of reading.
    out_pos: usize,
    /// Registered for EPOLLOUT (instead of EPOLLIN).
    writing: bool,
}

struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall without pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call; both
        // descriptors are open (the caller owns `fd`).
        let r = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Ready events, written to the front of `events`; EINTR counts as 0 events.
    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: the kernel writes at most `max` events into `events`, which is a
        // live, writable slice of that many epoll_event values.
        let n =
            unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

fn install_signal_handlers() -> io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags) that
        // is filled in below before use.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `sa` is fully initialised and the handler only stores to an atomic,
        // which is async-signal-safe. No SA_RESTART: epoll_wait returns EINTR.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

struct Server {
    epoll: Epoll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// Slots closed during the current batch of events; reused only after it, so a
    /// later event of the batch for the old connection cannot hit a new one.
    retired: Vec<usize>,
    readbuf: Vec<u8>,
}

impl Server {
    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() || stream.set_nodelay(true).is_err() {
                        continue;
                    }
                    let slot = self.free.pop().unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    let fd = stream.as_raw_fd();
                    if self
                        .epoll
                        .ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN as u32, slot as u64)
                        .is_err()
                    {
                        self.free.push(slot);
                        continue;
                    }
                    self.conns[slot] = Some(Conn {
                        stream,
                        inbuf: Vec::new(),
                        out: Vec::new(),
                        out_pos: 0,
                        writing: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // WouldBlock: all accepted. Anything else (EMFILE, ECONNABORTED...):
                // try again on the next readiness event.
                Err(_) => return,
            }
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(c) = self.conns.get_mut(slot).and_then(Option::take) {
            // Closing the descriptor removes it from the epoll set as well; the
            // explicit DEL only matters if a dup of it existed, so errors are moot.
            let _ = self
                .epoll
                .ctl(libc::EPOLL_CTL_DEL, c.stream.as_raw_fd(), 0, 0);
            self.retired.push(slot);
        }
    }

    /// Handles one event on a connection; returns false if it must be closed.
    fn ready(&mut self, slot: usize, events: u32) -> bool {
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return true; // closed earlier in this batch
        };
        if events & (libc::EPOLLERR as u32) != 0 {
            return false;
        }
        if c.out_pos < c.out.len() {
            // Waiting for EPOLLOUT: finish the pending reply before reading more.
            if events & ((libc::EPOLLOUT | libc::EPOLLHUP) as u32) == 0 {
                return true;
            }
            return flush(&self.epoll, slot, c);
        }
        if events & ((libc::EPOLLIN | libc::EPOLLHUP) as u32) == 0 {
            return true;
        }
        let n = match c.stream.read(&mut self.readbuf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                return true
            }
            Err(_) => return false,
        };
        let data = &self.readbuf[..n];
        // Parse in place when nothing is pending (the common case), else append.
        let (consumed, commands) = if c.inbuf.is_empty() {
            match scan(data) {
                Scan::Bad => return false,
                Scan::Ok { consumed, commands } => {
                    c.inbuf.extend_from_slice(&data[consumed..]);
                    (0, commands)
                }
            }
        } else {
            c.inbuf.extend_from_slice(data);
            match scan(&c.inbuf) {
                Scan::Bad => return false,
                Scan::Ok { consumed, commands } => (consumed, commands),
            }
        };
        c.inbuf.drain(..consumed);
        if c.inbuf.len() > MAX_PENDING {
            return false;
        }
        if commands == 0 {
            return true;
        }
        c.out.clear();
        c.out_pos = 0;
        c.out.reserve(commands * REPLY.len());
        for _ in 0..commands {
            c.out.extend_from_slice(REPLY);
        }
        flush(&self.epoll, slot, c)
    }
}

/// Writes the pending reply once; if some is left, switches the connection to
/// EPOLLOUT (and back to EPOLLIN once it is all written). False: close it.
fn flush(epoll: &Epoll, slot: usize, c: &mut Conn) -> bool {
    match c.stream.write(&c.out[c.out_pos..]) {
        Ok(n) => c.out_pos += n,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
        Err(_) => return false,
    }
    let fd = c.stream.as_raw_fd();
    if c.out_pos >= c.out.len() {
        c.out.clear();
        c.out_pos = 0;
        if c.writing {
            c.writing = false;
            return epoll
                .ctl(libc::EPOLL_CTL_MOD, fd, libc::EPOLLIN as u32, slot as u64)
                .is_ok();
        }
        return true;
    }
    if !c.writing {
        c.writing = true;
        return epoll
            .ctl(libc::EPOLL_CTL_MOD, fd, libc::EPOLLOUT as u32, slot as u64)
            .is_ok();
    }
    true
}

fn run(args: &Args) -> io::Result<()> {
    install_signal_handlers()?;
    let listener = TcpListener::bind(("127.0.0.1", args.port))?;
    listener.set_nonblocking(true)?;
    let epoll = Epoll::new()?;
    epoll.ctl(
        libc::EPOLL_CTL_ADD,
        listener.as_raw_fd(),
        libc::EPOLLIN as u32,
        LISTENER,
    )?;
    let mut server = Server {
        epoll,
        listener,
        conns: Vec::new(),
        free: Vec::new(),
        retired: Vec::new(),
        readbuf: vec![0; READ_CHUNK],
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    let mut last_event = Instant::now();
    while !STOP.load(Ordering::Relaxed) {
        let timeout = if args.busy_poll && last_event.elapsed() < BUSY_WINDOW {
            0
        } else {
            IDLE_WAIT_MS
        };
        let n = server.epoll.wait(&mut events, timeout)?;
        if n > 0 && args.busy_poll {
            last_event = Instant::now();
        }
        for ev in &events[..n] {
            // Copies out of the (packed on x86_64) struct; no references into it.
            let (token, flags) = (ev.u64, ev.events);
            if token == LISTENER {
                server.accept();
                continue;
            }
            let Ok(slot) = usize::try_from(token) else {
                continue;
            };
            if !server.ready(slot, flags) {
                server.close(slot);
            }
        }
        server.free.append(&mut server.retired);
    }
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("null_server: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("null_server: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_complete_requests_and_keeps_partial_ones() {
        let one = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$1\r\nv\r\n";
        let mut two = one.to_vec();
        two.extend_from_slice(one);
        assert_eq!(
            scan(&two),
            Scan::Ok {
                consumed: two.len(),
                commands: 2
            }
        );
        for cut in 0..one.len() {
            let mut buf = one.to_vec();
            buf.extend_from_slice(&one[..cut]);
            assert_eq!(
                scan(&buf),
                Scan::Ok {
                    consumed: one.len(),
                    commands: 1
                },
                "cut at {cut}"
            );
        }
        assert_eq!(
            scan(b"*0\r\n*-1\r\n"),
            Scan::Ok {
                consumed: 9,
                commands: 0
            }
        );
    }

    #[test]
    fn rejects_inline_and_malformed_requests() {
        for bad in [
            &b"PING\r\n"[..],
            b"*1\r\n+PING\r\n",
            b"*1\r\n$4\r\nPINGxx",
            b"*x\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\n",
            b"*99999999999999999999\r\n",
            b"*1\r\n$99999999999\r\n",
            b"*111111111111111111111111111111111111",
        ] {
            assert_eq!(scan(bad), Scan::Bad, "{bad:?}");
        }
    }
}
