//! A connected client as other tasks see it (CLIENT LIST / KILL, Pub/Sub and MONITOR
//! queues, output limits): the part of a connection that is shared. The connection's
//! own state (`commands::ClientState`) stays with its task.

use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

pub type ClientId = u64;

/// What another task may need to know about a connection (CLIENT LIST / KILL).
#[derive(Debug)]
pub struct ClientHandle {
    pub id: ClientId,
    pub addr: String,
    pub laddr: String,
    pub created: Instant,
    pub info: Mutex<ClientInfo>,
    /// Set by CLIENT KILL; the connection closes at its next wake-up.
    pub killed: AtomicBool,
    pub kill_notify: tokio::sync::Notify,
    /// Set when a blocked command is answered with an error that ends the connection
    /// (the node turned into a replica): closed once that reply is written.
    pub close_after_reply: AtomicBool,
    /// Rung by everything that needs the connection's loop apart from its socket: a
    /// kill, a pushed message, shutdown.
    pub bell: Bell,
    /// Output queued for this client by others (Pub/Sub, MONITOR) and not yet written,
    /// checked against `client-output-buffer-limit`.
    pub obuf: crate::outbuf::Pending,
    /// The connection's queue of pushed messages, for other clients that address it
    /// (a CLIENT TRACKING REDIRECT target). Set once when the connection starts.
    pub msg_tx: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<crate::pubsub::PubMsg>>,
}

/// Mutable, displayable client facts (updated by the connection after each command).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub name: Option<Bytes>,
    pub db: usize,
    pub last_cmd: String,
    pub last_interaction: Option<crate::util::Mono>,
    pub flags: String,
    pub sub: usize,
    pub psub: usize,
    pub ssub: usize,
    pub multi: i64,
    pub resp: u8,
    pub qbuf: usize,
    pub omem: usize,
    pub user: String,
    pub lib_name: Option<String>,
    pub lib_ver: Option<String>,
    /// CLIENT TRACKING flags (`t`, `R`, `B`) and redirect id (`redir=`; None = -1),
    /// filled in from the tracking state when a line is printed.
    pub tracking_flags: String,
    pub redir: Option<i64>,
    /// Whether the client waits in a blocking command (flag `b`), filled in from the
    /// store's waiters when a line is printed.
    pub blocked: bool,
    /// Whether the client's next command waits for a CLIENT PAUSE to end (flag `b`
    /// too), set by the connection.
    pub waiting_pause: bool,
}

impl ClientHandle {
    pub fn new(id: ClientId, addr: String, laddr: String, info: ClientInfo) -> Self {
        ClientHandle {
            id,
            addr,
            laddr,
            created: Instant::now(),
            info: Mutex::new(info),
            killed: AtomicBool::new(false),
            kill_notify: tokio::sync::Notify::new(),
            close_after_reply: AtomicBool::new(false),
            bell: Bell::default(),
            obuf: Default::default(),
            msg_tx: Default::default(),
        }
    }

    /// Queues `cost` bytes of output for this client unless that puts it over `limit`;
    /// then the client is closed (once, with Redis's log line) and false is returned,
    /// so nothing more is queued for it.
    pub fn try_queue(&self, cost: u64, limit: &crate::outbuf::Limit) -> bool {
        if self.is_killed() {
            return false;
        }
        let used = self.obuf.add(cost);
        if self.obuf.over(used, limit) {
            self.obuf.sub(cost);
            crate::outbuf::log_closing(&format!("id={} addr={}", self.id, self.addr));
            self.kill();
            return false;
        }
        true
    }

    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        // Every task waiting on this client wakes (a connection loop and a replica's
        // reader and writer can wait at once); the permit covers a wait that starts
        // after this call.
        self.kill_notify.notify_waiters();
        self.kill_notify.notify_one();
        self.bell.ring();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

/// A connection loop's one wake-up for everything but its socket.
///
/// Why one bell rather than a wait on each source: the loop waits after every batch
/// (after every request at -P 1), and polling a `Notify`, a `watch` and an `mpsc`
/// receiver there took their locks and registered three wakers each time, about a
/// tenth of a GET's instructions. The bell is one flag and one stored waker; the
/// sources ring it after they change their own state, and the loop then looks at each
/// of them (kill flag, shutdown, message queue) itself.
#[derive(Debug, Default)]
pub struct Bell {
    rung: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Bell {
    /// Wakes the loop waiting on this bell, or makes its next wait return at once.
    pub fn ring(&self) {
        self.rung.store(true, Ordering::SeqCst);
        if let Some(w) = self.waker.lock().as_ref() {
            w.wake_by_ref();
        }
    }

    /// True once (clearing it) if the bell rang since the last call.
    pub fn take(&self) -> bool {
        self.rung.load(Ordering::Relaxed) && self.rung.swap(false, Ordering::SeqCst)
    }

    /// Ready once the bell rang (and clears it); otherwise stores `cx`'s waker.
    pub fn poll_rung(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.take() {
            return Poll::Ready(());
        }
        {
            let mut w = self.waker.lock();
            if !w.as_ref().is_some_and(|old| old.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        // A ring between the first check and the waker's store found no waker (or
        // the old one): look again.
        if self.take() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_ring_wakes_the_waiter_once_and_is_consumed() {
        let bell = Bell::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(bell.poll_rung(&mut cx).is_pending());
        bell.ring();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(bell.poll_rung(&mut cx).is_ready());
        // Consumed: the next wait waits again.
        assert!(bell.poll_rung(&mut cx).is_pending());
        assert!(!bell.take());
    }

    #[test]
    fn a_ring_before_the_wait_makes_it_return_at_once() {
        let bell = Bell::default();
        bell.ring();
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        assert!(bell.poll_rung(&mut cx).is_ready());
    }

    #[test]
    fn kill_rings_the_bell() {
        let h = ClientHandle::new(1, String::new(), String::new(), ClientInfo::default());
        assert!(!h.bell.take());
        h.kill();
        assert!(h.bell.take());
        assert!(h.is_killed());
    }
}
