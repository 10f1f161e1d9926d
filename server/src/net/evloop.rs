//! Event-loop threads for plain-TCP clients (issue 21, item 1), as Redis's `ae`
//! serves its clients: each loop thread sleeps in its own `epoll_wait`, and each
//! wake-up serves every ready connection in the order the kernel reported them
//! (read, parse, execute under the store lock), then writes every connection's
//! replies, one `send` each, before it sleeps again. No task is woken per request.
//!
//! A connection stays here while its requests complete at once. When one must wait
//! (a blocked command, WAIT, SHUTDOWN's client, a CLIENT PAUSE, a replica's SYNC) or
//! is fed by a channel the loop does not watch (MONITOR), the connection is handed for good to a runtime task running the ordinary
//! connection loop (`serve`), with the outcome to complete first: waits are what the
//! runtime is good at, and they are not on the per-request path.
//!
//! Pushed messages (Pub/Sub, invalidations) and kills ring the client's bell, whose
//! waker queues the connection's token on its loop and writes the loop's eventfd
//! (not needed when the ringer is the loop itself). A reply the socket cannot take
//! whole waits in the connection's buffer: the loop then watches the socket for room
//! instead of requests (back-pressure), as the task loop's blocked write does.
//!
//! A script that runs past `busy-reply-threshold` on a loop thread calls
//! [`serve_while_busy`] from its hook: the loop's other connections are read and
//! answered there (BUSY, SCRIPT KILL...), as Redis processes events while blocked.
//! A connection that closes meanwhile keeps its registrations until the script ends
//! (the cleanup takes the store lock, which the script holds).

#![allow(unsafe_code)]

use super::{Conn, Step, READ_ROOM};
use crate::exec::Outcome;
use crate::pubsub::PubMsg;
use crate::server::{Server, Stats};
use crate::tls::Stream;
use bytes::BytesMut;
use parking_lot::Mutex;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The epoll token of the loop's eventfd.
const WAKE: u64 = u64::MAX;
/// Events taken per `epoll_wait`.
const MAX_EVENTS: usize = 256;
/// How often a loop looks at idle clients (`timeout`) when nothing wakes it sooner.
const CRON: Duration = Duration::from_millis(100);

/// The loop threads, and which one takes the next connection.
pub struct EventLoops {
    loops: Vec<Arc<Shared>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for EventLoops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventLoops({})", self.loops.len())
    }
}

/// What other threads reach of a loop.
struct Shared {
    epfd: OwnedFd,
    wakefd: OwnedFd,
    inbox: Mutex<Inbox>,
    stop: AtomicBool,
}

/// Work handed to a loop by other threads (and by its own bells).
#[derive(Default)]
struct Inbox {
    adopted: Vec<Adopted>,
    /// Tokens of connections whose bell rang.
    woken: Vec<u64>,
}

struct Adopted {
    tcp: std::net::TcpStream,
    conn: Conn,
    msg_rx: mpsc::UnboundedReceiver<PubMsg>,
}

impl Shared {
    fn wake(&self) {
        let one: u64 = 1;
        // A full counter (never, in practice) still leaves the eventfd readable.
        unsafe { libc::write(self.wakefd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn is_current(&self) -> bool {
        HERE.with(|h| h.shared.get() == self as *const Shared as usize)
    }
}

/// One connection's bell rings its loop.
struct BellWaker {
    shared: Arc<Shared>,
    token: u64,
}

impl Wake for BellWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.shared.inbox.lock().woken.push(self.token);
        if !self.shared.is_current() {
            self.shared.wake();
        }
    }
}

/// A connection served by a loop.
struct LoopConn {
    tcp: std::net::TcpStream,
    conn: Conn,
    msg_rx: mpsc::UnboundedReceiver<PubMsg>,
    token: u64,
    /// The last time requests arrived (`timeout`).
    last_read: Instant,
    /// Replies wait for room in the socket: the loop watches for writability.
    stalled: bool,
}

/// A loop's own state, on its thread (in [`HERE`]): borrowed only briefly, never
/// while a connection's commands run, so that a busy script's hook can serve the
/// other connections ([`serve_while_busy`]).
struct LoopState {
    shared: Arc<Shared>,
    server: Arc<Server>,
    /// Connections by slot; a slot is empty while its connection is being served.
    conns: Vec<Option<Box<LoopConn>>>,
    /// Each slot's generation (the upper half of a token), so that a stale token
    /// (a bell of a connection gone) never reaches the slot's next occupant.
    gens: Vec<u32>,
    free: Vec<usize>,
    /// Connections with requests still buffered: served again without a read.
    again: Vec<u64>,
    /// Connections with replies to write at the end of the turn.
    touched: Vec<u64>,
    /// Connections closed while a script was busy: cleaned up once it ends.
    zombies: Vec<LoopConn>,
}

/// This thread's loop, if it is a loop thread. One value (not several statics).
struct Here {
    /// The address of this thread's [`Shared`] (0: not a loop thread).
    shared: Cell<usize>,
    /// Never dropped by the thread's exit: a `process::exit` from this thread (SHUTDOWN
    /// NOSAVE while its script is busy) runs its thread-local destructors, and the
    /// connections' cleanup would wait for the store lock the script holds. [`run`]
    /// empties it when the loop ends.
    state: std::mem::ManuallyDrop<RefCell<Option<LoopState>>>,
    /// Inside [`serve_while_busy`] (not re-entered).
    nested: Cell<bool>,
}

thread_local! {
    static HERE: Here = const {
        Here {
            shared: Cell::new(0),
            state: std::mem::ManuallyDrop::new(RefCell::new(None)),
            nested: Cell::new(false),
        }
    };
}

fn with_state<R>(f: impl FnOnce(&mut LoopState) -> R) -> R {
    HERE.with(|h| {
        let mut s = h.state.borrow_mut();
        f(s.as_mut().expect("a loop thread has its state"))
    })
}

/// Starts `n` loop threads (from the runtime, whose handle they keep: commands
/// spawn tasks, and connections that must wait are handed to tasks).
pub fn start(server: &Arc<Server>, n: usize) -> std::io::Result<()> {
    let rt = tokio::runtime::Handle::current();
    let mut loops = Vec::with_capacity(n);
    for i in 0..n {
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        let wakefd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wakefd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let wakefd = unsafe { OwnedFd::from_raw_fd(wakefd) };
        ctl(
            epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            wakefd.as_raw_fd(),
            libc::EPOLLIN,
            WAKE,
        )?;
        let shared = Arc::new(Shared {
            epfd,
            wakefd,
            inbox: Mutex::new(Inbox::default()),
            stop: AtomicBool::new(false),
        });
        let (s, sv, h) = (shared.clone(), server.clone(), rt.clone());
        std::thread::Builder::new()
            .name(format!("tandem-loop-{i}"))
            .spawn(move || run(s, sv, h))?;
        loops.push(shared);
    }
    let stoppers = loops.clone();
    let mut rx = server.shutdown.subscribe();
    tokio::spawn(async move {
        crate::server::stopping(&mut rx).await;
        for l in &stoppers {
            l.stop.store(true, Ordering::SeqCst);
            l.wake();
        }
    });
    server.script_busy.set_serve_hook(serve_while_busy);
    let _ = server.event_loops.set(Box::new(EventLoops {
        loops,
        next: AtomicUsize::new(0),
    }));
    Ok(())
}

/// Hands an admitted plain-TCP connection to a loop (round robin).
pub(super) fn adopt(
    server: &Arc<Server>,
    tcp: tokio::net::TcpStream,
    conn: Conn,
    msg_rx: mpsc::UnboundedReceiver<PubMsg>,
) {
    let Some(loops) = server
        .event_loops
        .get()
        .and_then(|l| l.downcast_ref::<EventLoops>())
    else {
        return;
    };
    // Deregistered from the runtime's reactor; stays non-blocking.
    let Ok(tcp) = tcp.into_std() else {
        return;
    };
    let i = loops.next.fetch_add(1, Ordering::Relaxed) % loops.loops.len();
    let l = &loops.loops[i];
    l.inbox.lock().adopted.push(Adopted { tcp, conn, msg_rx });
    l.wake();
}

fn ctl(epfd: RawFd, op: libc::c_int, fd: RawFd, events: i32, token: u64) -> std::io::Result<()> {
    let mut ev = libc::epoll_event {
        events: events as u32,
        u64: token,
    };
    if unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The loop thread.
fn run(shared: Arc<Shared>, server: Arc<Server>, rt: tokio::runtime::Handle) {
    let _rt = rt.enter();
    crate::crash::give_thread_stack();
    HERE.with(|h| {
        h.shared.set(Arc::as_ptr(&shared) as usize);
        *h.state.borrow_mut() = Some(LoopState {
            shared: shared.clone(),
            server,
            conns: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            again: Vec::new(),
            touched: Vec::new(),
            zombies: Vec::new(),
        });
    });
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    let mut ready: Vec<(u64, u32)> = Vec::with_capacity(MAX_EVENTS);
    let mut next_cron = Instant::now() + CRON;
    loop {
        let pending = with_state(|s| !s.again.is_empty()) || {
            let inbox = shared.inbox.lock();
            !inbox.woken.is_empty() || !inbox.adopted.is_empty()
        };
        let timeout = if pending {
            0
        } else {
            next_cron
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32
                + 1
        };
        let n = wait(&shared, &mut events, timeout);
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        ready.clear();
        collect(&shared, &events[..n], &mut ready);
        with_state(|s| ready.extend(s.again.drain(..).map(|t| (t, 0))));
        for &(token, ev) in &ready {
            turn(token, ev);
        }
        write_touched();
        if Instant::now() >= next_cron {
            next_cron = Instant::now() + CRON;
            cron();
        }
    }
    close_all();
    let state = HERE.with(|h| h.state.borrow_mut().take());
    drop(state);
    crate::crash::take_thread_stack();
}

/// `epoll_wait`, retried on EINTR.
fn wait(shared: &Shared, events: &mut [libc::epoll_event], timeout: i32) -> usize {
    loop {
        let n = unsafe {
            libc::epoll_wait(
                shared.epfd.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                timeout,
            )
        };
        if n >= 0 {
            return n as usize;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return 0;
        }
    }
}

/// The ready list of one wake-up: reported sockets in the kernel's order, then the
/// new connections and the rung bells.
fn collect(shared: &Shared, events: &[libc::epoll_event], ready: &mut Vec<(u64, u32)>) {
    for ev in events {
        let token = ev.u64;
        if token == WAKE {
            let mut buf = 0u64;
            unsafe { libc::read(shared.wakefd.as_raw_fd(), (&mut buf as *mut u64).cast(), 8) };
        } else {
            ready.push((token, ev.events));
        }
    }
    let (adopted, woken) = {
        let mut inbox = shared.inbox.lock();
        (
            std::mem::take(&mut inbox.adopted),
            std::mem::take(&mut inbox.woken),
        )
    };
    for a in adopted {
        if let Some(token) = register(a) {
            // Its first requests may be in the socket already.
            ready.push((token, libc::EPOLLIN as u32));
        }
    }
    ready.extend(woken.into_iter().map(|t| (t, 0)));
}

/// Puts an adopted connection in a slot and watches its socket.
fn register(a: Adopted) -> Option<u64> {
    with_state(|s| {
        let idx = match s.free.pop() {
            Some(i) => i,
            None => {
                s.conns.push(None);
                s.gens.push(0);
                s.conns.len() - 1
            }
        };
        s.gens[idx] = s.gens[idx].wrapping_add(1);
        let token = (u64::from(s.gens[idx]) << 32) | idx as u64;
        let fd = a.tcp.as_raw_fd();
        if ctl(
            s.shared.epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd,
            libc::EPOLLIN,
            token,
        )
        .is_err()
        {
            s.free.push(idx);
            return None;
        }
        let waker = Waker::from(Arc::new(BellWaker {
            shared: s.shared.clone(),
            token,
        }));
        // Store the waker (a ring before this point is seen by the first turn).
        let mut rang = false;
        while a
            .conn
            .handle
            .bell
            .poll_rung(&mut Context::from_waker(&waker))
            .is_ready()
        {
            rang = true;
        }
        if rang {
            // Rung again, now with the waker stored: the first turn drains it.
            a.conn.handle.bell.ring();
        }
        s.conns[idx] = Some(Box::new(LoopConn {
            tcp: a.tcp,
            conn: a.conn,
            msg_rx: a.msg_rx,
            token,
            last_read: Instant::now(),
            stalled: false,
        }));
        Some(token)
    })
}

/// Takes a connection out of its slot (None: gone, or being served).
fn take(token: u64) -> Option<Box<LoopConn>> {
    with_state(|s| {
        let idx = (token & 0xffff_ffff) as usize;
        if s.gens.get(idx) != Some(&((token >> 32) as u32)) {
            return None;
        }
        s.conns[idx].take()
    })
}

fn put_back(lc: Box<LoopConn>) {
    with_state(|s| {
        let idx = (lc.token & 0xffff_ffff) as usize;
        s.conns[idx] = Some(lc);
    })
}

/// What a connection's turn decided.
enum Next {
    Keep { again: bool },
    Promote(Option<Outcome>),
    Close,
}

/// Serves one ready connection: a kill or rung bell first, then the socket (room
/// for stalled replies, or requests), then what is buffered.
fn turn(token: u64, events: u32) {
    let Some(mut lc) = take(token) else {
        return;
    };
    // A panic outside a command (those become error replies) ends this connection
    // only, as it would end its task: not the loop and its other clients.
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let next = serve_conn(&mut lc, events);
        (lc, next)
    }));
    match served {
        Ok((lc, next)) => settle(lc, next, false),
        Err(_) => {
            crate::warning!("A client connection failed: closing it");
            with_state(|s| s.free.push((token & 0xffff_ffff) as usize));
        }
    }
}

fn serve_conn(lc: &mut LoopConn, events: u32) -> Next {
    let conn = &mut lc.conn;
    if conn.handle.is_killed() {
        return Next::Close;
    }
    if lc.stalled {
        if events & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0 {
            // Messages stay queued (counted against the output limit) meanwhile.
            return Next::Keep { again: false };
        }
        match flush(lc) {
            Flushed::All => {}
            Flushed::Part => return Next::Keep { again: false },
            Flushed::Failed => return Next::Close,
        }
    }
    let conn = &mut lc.conn;
    if conn.handle.bell.take() {
        while let Ok(m) = lc.msg_rx.try_recv() {
            conn.encode_pubsub(m);
        }
    }
    if events & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
        match read_into(lc.tcp.as_raw_fd(), &mut conn.inbuf) {
            Ok(0) => return Next::Close,
            Ok(n) => {
                Stats::incr(&conn.server.stats.net_input_bytes, n as u64);
                lc.last_read = Instant::now();
                if conn.query_buffer_over_limit() {
                    return Next::Close;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Next::Close,
        }
    }
    loop {
        match conn.step() {
            Step::Idle => break,
            Step::Again => {}
            Step::Close => return Next::Close,
            Step::More => {
                if conn.client.is_replica {
                    return Next::Promote(None);
                }
                return Next::Keep { again: true };
            }
            Step::Wait(outcome) => return Next::Promote(Some(outcome)),
        }
    }
    if conn.held || conn.client.is_replica || conn.monitor_rx.is_some() {
        return Next::Promote(None);
    }
    // A batch cut at REPLY_FLUSH goes on once its replies are out.
    let again = !conn.pending.is_empty()
        || (conn.out.len() >= super::REPLY_FLUSH && !conn.inbuf.is_empty());
    Next::Keep { again }
}

/// Carries out a turn's decision. `now`: write the replies at once (while busy)
/// instead of at the end of the turn.
fn settle(lc: Box<LoopConn>, next: Next, now: bool) {
    match next {
        Next::Keep { again } => {
            let token = lc.token;
            let out = !lc.conn.out.is_empty() && !lc.stalled;
            put_back(lc);
            with_state(|s| {
                if again {
                    s.again.push(token);
                }
                if out {
                    s.touched.push(token);
                }
            });
            if now && out {
                write_one(token);
            }
        }
        Next::Promote(first) => promote(lc, first),
        Next::Close => close(lc),
    }
}

/// Writes the replies of every connection served this turn.
fn write_touched() {
    let touched = with_state(|s| std::mem::take(&mut s.touched));
    for &token in &touched {
        write_one(token);
    }
    // The buffer is kept for the next turn.
    with_state(|s| {
        if s.touched.is_empty() {
            s.touched = touched;
            s.touched.clear();
        }
    });
}

fn write_one(token: u64) {
    let Some(mut lc) = take(token) else {
        return;
    };
    if lc.stalled || lc.conn.out.is_empty() {
        put_back(lc);
        return;
    }
    match flush(&mut lc) {
        Flushed::All => put_back(lc),
        Flushed::Part => {
            lc.stalled = true;
            let interest = libc::EPOLLOUT;
            let ok = with_state(|s| {
                ctl(
                    s.shared.epfd.as_raw_fd(),
                    libc::EPOLL_CTL_MOD,
                    lc.tcp.as_raw_fd(),
                    interest,
                    lc.token,
                )
            });
            if ok.is_ok() {
                put_back(lc);
            } else {
                close(lc);
            }
        }
        Flushed::Failed => close(lc),
    }
}

enum Flushed {
    All,
    Part,
    Failed,
}

/// Sends what the connection's reply buffer holds, without blocking. A stalled
/// connection whose buffer drains is watched for requests again.
fn flush(lc: &mut LoopConn) -> Flushed {
    let fd = lc.tcp.as_raw_fd();
    let buf = &mut lc.conn.out.buf;
    let mut done = 0;
    while done < buf.len() {
        match send(fd, &buf[done..]) {
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => return Flushed::Failed,
        }
    }
    Stats::incr(&lc.conn.server.stats.net_output_bytes, done as u64);
    if done < buf.len() {
        buf.drain(..done);
        return Flushed::Part;
    }
    buf.clear();
    lc.conn.written();
    if lc.stalled {
        lc.stalled = false;
        let rearmed = with_state(|s| {
            ctl(
                s.shared.epfd.as_raw_fd(),
                libc::EPOLL_CTL_MOD,
                fd,
                libc::EPOLLIN,
                lc.token,
            )
        });
        if rearmed.is_err() {
            return Flushed::Failed;
        }
    }
    Flushed::All
}

fn send(fd: RawFd, buf: &[u8]) -> std::io::Result<usize> {
    loop {
        let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One `read` into the query buffer (with room reserved as the task loop does).
fn read_into(fd: RawFd, buf: &mut BytesMut) -> std::io::Result<usize> {
    buf.reserve(READ_ROOM);
    let spare = buf.spare_capacity_mut();
    loop {
        let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) };
        if n >= 0 {
            // SAFETY: the kernel initialised the first `n` bytes of the spare room.
            unsafe { buf.set_len(buf.len() + n as usize) };
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Hands a connection that must wait to a runtime task running the task loop,
/// with its replies so far (written there first) and the outcome to complete.
fn promote(mut lc: Box<LoopConn>, first: Option<Outcome>) {
    // The replies before the command that waits go out now, as Redis writes them
    // before the client blocks (what the socket does not take, the task writes).
    if !lc.stalled && !lc.conn.out.is_empty() {
        if let Flushed::Failed = flush(&mut lc) {
            close(lc);
            return;
        }
    }
    let LoopConn {
        tcp,
        conn,
        msg_rx,
        token,
        ..
    } = *lc;
    let server = with_state(|s| {
        let _ = ctl(
            s.shared.epfd.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            tcp.as_raw_fd(),
            0,
            token,
        );
        let idx = (token & 0xffff_ffff) as usize;
        s.free.push(idx);
        s.server.clone()
    });
    match tokio::net::TcpStream::from_std(tcp) {
        Ok(t) => {
            tokio::spawn(super::serve(server, Stream::Plain(t), conn, msg_rx, first));
        }
        Err(e) => crate::verbose!("Handing a connection to a task: {e}"),
    }
}

/// Closes a connection: its last words (a protocol error's reply) unless it was
/// killed, then its registrations (later, if a script holds the store).
fn close(mut lc: Box<LoopConn>) {
    if !lc.conn.handle.is_killed() && !lc.conn.out.is_empty() && !lc.stalled {
        let _ = send(lc.tcp.as_raw_fd(), &lc.conn.out.buf);
    }
    let busy = with_state(|s| {
        let _ = ctl(
            s.shared.epfd.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            lc.tcp.as_raw_fd(),
            0,
            lc.token,
        );
        let idx = (lc.token & 0xffff_ffff) as usize;
        s.free.push(idx);
        s.server.script_busy.is_busy()
    });
    let _ = lc.tcp.shutdown(std::net::Shutdown::Both);
    if busy {
        lc.conn.out.buf.clear();
        with_state(|s| s.zombies.push(*lc));
    }
    // Otherwise dropped here: `Conn`'s cleanup, then the socket.
}

/// Every `CRON`: idle clients (`timeout`) are closed, and connections closed while
/// a script was busy are cleaned up once it ended.
fn cron() {
    let busy = with_state(|s| s.server.script_busy.is_busy());
    if !busy {
        let zombies = with_state(|s| std::mem::take(&mut s.zombies));
        drop(zombies);
    }
    let tokens: Vec<u64> = with_state(|s| s.conns.iter().flatten().map(|c| c.token).collect());
    let now = Instant::now();
    for token in tokens {
        let Some(lc) = take(token) else {
            continue;
        };
        let idle = lc.conn.idle_deadline().is_some()
            && now.duration_since(lc.last_read) >= Duration::from_secs(lc.conn.idle_timeout);
        if idle {
            crate::verbose!("Closing idle client");
            close(lc);
        } else {
            put_back(lc);
        }
    }
}

/// At shutdown: every connection closes (with its last words).
fn close_all() {
    let all: Vec<Box<LoopConn>> =
        with_state(|s| s.conns.iter_mut().filter_map(Option::take).collect());
    for lc in all {
        close(lc);
    }
    let zombies = with_state(|s| std::mem::take(&mut s.zombies));
    drop(zombies);
}

/// Called by a busy script's hook: on a loop thread, serves the loop's other
/// connections once (without waiting) and returns true; elsewhere returns false.
pub fn serve_while_busy() -> bool {
    let shared = HERE.with(|h| {
        if h.shared.get() == 0 || h.nested.replace(true) {
            return None;
        }
        h.state.borrow().as_ref().map(|s| s.shared.clone())
    });
    let Some(shared) = shared else {
        return HERE.with(|h| h.shared.get() != 0);
    };
    // Replies of connections served earlier in the turn that ran the script go out
    // first: they were waiting for the end of that turn.
    write_touched();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 64];
    let n = wait(&shared, &mut events, 0);
    let mut ready = Vec::new();
    collect(&shared, &events[..n], &mut ready);
    let mut later = Vec::new();
    for (token, ev) in ready {
        let Some(mut lc) = take(token) else {
            // The script's own connection: its bell is looked at after the script.
            if ev == 0 {
                later.push(token);
            }
            continue;
        };
        let next = serve_conn(&mut lc, ev);
        settle(lc, next, true);
    }
    shared.inbox.lock().woken.extend(later);
    HERE.with(|h| h.nested.set(false));
    true
}
