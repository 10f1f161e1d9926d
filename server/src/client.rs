//! A connected client as other tasks see it (CLIENT LIST / KILL, Pub/Sub and MONITOR
//! queues, output limits): the part of a connection that is shared. The connection's
//! own state (`commands::ClientState`) stays with its task.

use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
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
    pub last_interaction: Option<Instant>,
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
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}
