//! Orderly shutdown (SHUTDOWN, SIGTERM, SIGINT) as Redis 7.0 prepares it.
//!
//! A request (a SHUTDOWN command, or a signal with `shutdown-on-sigterm` /
//! `shutdown-on-sigint` as its flags) is carried out by the main task
//! ([`perform`]):
//! 1. Unless `NOW` (or `shutdown-timeout 0`), a master whose replicas have not
//!    acknowledged its whole stream pauses client writes (a
//!    [`PausePurpose::Shutdown`] pause), asks them for an ACK, and waits up to
//!    `shutdown-timeout` seconds for them ("Waiting for replicas before shutting
//!    down."). `SHUTDOWN ABORT` cancels the wait.
//! 2. The lagging replicas are logged, then the final save runs; when it fails
//!    the shutdown is cancelled (the server goes on), unless `FORCE`.
//!
//! The SHUTDOWN clients wait for the outcome: the connection closes when the
//! server exits, or they get `-ERR Errors trying to SHUTDOWN. Check logs.` when
//! the shutdown was aborted or failed.
//!
//! [`Coordinator`] holds the request and its progress, in the `Server`.

use crate::pause::{PauseMode, PausePurpose};
use crate::replication::{ReplState, ReplicaState};
use crate::server::Server;
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the wait for replicas looks again (Redis checks in its 100 ms cron).
const TICK: Duration = Duration::from_millis(100);

/// The reply of a SHUTDOWN whose shutdown was aborted or failed.
pub const FAILED_REPLY: &str = "ERR Errors trying to SHUTDOWN. Check logs.";

/// What a shutdown was asked to do (SHUTDOWN's arguments, or the signal's
/// configured flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// None = save if save points are configured; Some(true) = SAVE; Some(false) = NOSAVE.
    pub save: Option<bool>,
    /// Skip the wait for lagging replicas.
    pub now: bool,
    /// Exit even if the final save fails.
    pub force: bool,
}

impl Flags {
    /// `shutdown-on-sigterm` / `shutdown-on-sigint` (validated words: default,
    /// save, nosave, now, force).
    pub fn from_config_words(words: &str) -> Flags {
        let mut f = Flags::default();
        for w in words.split_whitespace() {
            match w.to_ascii_lowercase().as_str() {
                "save" => f.save = Some(true),
                "nosave" => f.save = Some(false),
                "now" => f.now = true,
                "force" => f.force = true,
                _ => {}
            }
        }
        f
    }
}

/// The shutdown request and its progress (one per server).
#[derive(Debug)]
pub struct Coordinator {
    inner: Mutex<Inner>,
    /// Wakes the main task: a new request or an abort.
    wake: tokio::sync::Notify,
    /// The number of the last attempt that ended without exiting.
    ended: tokio::sync::watch::Sender<u64>,
}

impl Default for Coordinator {
    fn default() -> Self {
        Coordinator {
            inner: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            ended: tokio::sync::watch::channel(0).0,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// A request the main task has not taken yet.
    requested: Option<Flags>,
    /// The shutdown being carried out.
    active: Option<Flags>,
    /// Number of the latest attempt.
    attempt: u64,
    /// SHUTDOWN ABORT arrived during the wait.
    abort: bool,
}

/// Asks the server to stop; returns the attempt the caller waits for (see
/// [`outcome`]). While a shutdown is already requested or running, the caller
/// joins it (its own flags are not used, as in Redis).
pub fn request(server: &Server, flags: Flags) -> u64 {
    let c = &server.shutdown_req;
    let mut inner = c.inner.lock();
    if inner.requested.is_none() && inner.active.is_none() {
        inner.attempt += 1;
        inner.requested = Some(flags);
        c.wake.notify_one();
    }
    inner.attempt
}

/// SHUTDOWN ABORT: cancels a shutdown that was requested or is waiting for
/// replicas. False if there is none.
pub fn abort(server: &Server) -> bool {
    let c = &server.shutdown_req;
    let mut inner = c.inner.lock();
    if inner.active.is_some() {
        inner.abort = true;
        c.wake.notify_one();
        true
    } else if inner.requested.take().is_some() {
        crate::notice!("Shutdown manually aborted.");
        c.ended.send_replace(inner.attempt);
        true
    } else {
        false
    }
}

/// Waits for a request (taken, and marked in progress).
pub async fn next_request(server: &Server) -> Flags {
    let c = &server.shutdown_req;
    loop {
        let notified = c.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut inner = c.inner.lock();
            if let Some(f) = inner.requested.take() {
                inner.active = Some(f);
                inner.abort = false;
                return f;
            }
        }
        notified.await;
    }
}

/// Marks a shutdown started by a signal (no request to take) as in progress.
pub fn begin_from_signal(server: &Server, flags: Flags) {
    let mut inner = server.shutdown_req.inner.lock();
    inner.attempt += 1;
    inner.requested = None;
    inner.active = Some(flags);
    inner.abort = false;
}

/// Resolves true when the server is stopping, false when attempt `attempt`
/// ended without exiting (aborted or failed).
pub async fn outcome(server: &Server, attempt: u64) -> bool {
    let mut ended = server.shutdown_req.ended.subscribe();
    let mut stop = server.shutdown.subscribe();
    loop {
        if *stop.borrow_and_update() {
            return true;
        }
        if *ended.borrow_and_update() >= attempt {
            return false;
        }
        tokio::select! {
            r = ended.changed() => if r.is_err() { return true },
            r = stop.changed() => if r.is_err() { return true },
        }
    }
}

/// What the last shutdown asked for about the final save (see [`Flags::save`]).
pub fn requested_save_mode(server: &Server) -> Option<bool> {
    server.shutdown_req.inner.lock().active.and_then(|f| f.save)
}

/// Whether every replica acknowledged our whole stream (Redis `isReadyToShutdown`).
pub fn replicas_caught_up(r: &ReplState) -> bool {
    r.replicas.iter().all(|l| l.ack_off == r.master_repl_offset)
}

/// The log lines about replicas at the final step: each lagging one, then the
/// count in sync (nothing without replicas).
pub fn replica_report(r: &ReplState) -> Vec<(bool, String)> {
    let mut lines = Vec::new();
    let mut lagging = 0;
    for l in &r.replicas {
        if l.ack_off != r.master_repl_offset {
            lagging += 1;
            let lag = if l.state == ReplicaState::Online {
                l.ack_time.elapsed().as_secs()
            } else {
                0
            };
            lines.push((
                true,
                format!(
                    "Lagging replica {} reported offset {} behind master, lag={lag}, state={}.",
                    l.name(),
                    r.master_repl_offset - l.ack_off,
                    l.state.info_name()
                ),
            ));
        }
    }
    let n = r.replicas.len();
    if n > 0 {
        lines.push((
            false,
            format!(
                "{} of {n} replicas are in sync when shutting down.",
                n - lagging
            ),
        ));
    }
    lines
}

/// Carries out the shutdown in progress: the wait for replicas, the report,
/// the final save. True when the server must now exit; false when it was
/// aborted or failed (the waiting clients were told, the server goes on).
pub async fn perform(server: &Arc<Server>, flags: Flags) -> bool {
    crate::warning!("User requested shutdown...");
    let timeout = server.config.read().shutdown_timeout;
    // The store lock is released before the wait (never held across an await).
    let caught_up = replicas_caught_up(&server.store.lock().repl);
    let wait = !flags.now && timeout != 0 && !caught_up;
    let aborted = if wait {
        !wait_for_replicas(server, Duration::from_secs(timeout)).await
    } else {
        // An ABORT that came between the request and now still counts.
        server.shutdown_req.inner.lock().abort
    };
    if aborted {
        crate::notice!("Shutdown manually aborted.");
        cancel(server);
        return false;
    }
    for (warn, line) in replica_report(&server.store.lock().repl) {
        if warn {
            crate::warning!("{line}");
        } else {
            crate::notice!("{line}");
        }
    }
    // Nothing may change the data between the final save and the exit.
    server
        .client_pause
        .pause_for(PausePurpose::Shutdown, None, PauseMode::Write);
    if crate::persist::on_shutdown(server, flags.force).is_err() {
        crate::warning!(
            "Errors trying to shut down the server. Check the logs for more information."
        );
        cancel(server);
        return false;
    }
    true
}

/// Pauses writes, asks the replicas for an ACK and waits until they caught up,
/// the timeout passed (true) or SHUTDOWN ABORT came (false).
async fn wait_for_replicas(server: &Arc<Server>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let acked = {
        let mut store = server.store.lock();
        let r = &mut store.repl;
        if !server.client_pause.is_paused() && r.master.is_none() && !r.replicas.is_empty() {
            r.append_stream(Bytes::from_static(crate::replication::GETACK));
        }
        r.ack_notify.clone()
    };
    server
        .client_pause
        .pause_for(PausePurpose::Shutdown, None, PauseMode::Write);
    crate::notice!("Waiting for replicas before shutting down.");
    let c = &server.shutdown_req;
    // Bounded by the deadline: each round ends at an ACK, an abort or a tick.
    loop {
        let woken = c.wake.notified();
        let ack = acked.notified();
        tokio::pin!(woken, ack);
        woken.as_mut().enable();
        ack.as_mut().enable();
        if c.inner.lock().abort {
            return false;
        }
        if Instant::now() >= deadline || replicas_caught_up(&server.store.lock().repl) {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = &mut woken => {}
            _ = &mut ack => {}
        }
    }
}

/// Ends an attempt that did not exit: writes resume, the waiting SHUTDOWN
/// clients get their error.
fn cancel(server: &Server) {
    let c = &server.shutdown_req;
    let mut inner = c.inner.lock();
    inner.active = None;
    inner.abort = false;
    server.client_pause.unpause_for(PausePurpose::Shutdown);
    c.ended.send_replace(inner.attempt);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_flags_come_from_the_config_words() {
        assert_eq!(Flags::from_config_words("default"), Flags::default());
        assert_eq!(
            Flags::from_config_words("nosave now force"),
            Flags {
                save: Some(false),
                now: true,
                force: true
            }
        );
        assert_eq!(Flags::from_config_words("SAVE").save, Some(true));
    }

    #[test]
    fn a_second_request_joins_the_first_and_abort_ends_it() {
        let server = Server::new(crate::config::Config::default());
        assert!(!abort(&server));
        let a = request(&server, Flags::default());
        let b = request(
            &server,
            Flags {
                now: true,
                ..Flags::default()
            },
        );
        assert_eq!(a, b);
        assert!(abort(&server));
        assert_eq!(*server.shutdown_req.ended.borrow(), a);
        assert!(!abort(&server));
        assert!(request(&server, Flags::default()) > a);
    }

    #[test]
    fn a_master_without_replicas_is_ready_and_reports_nothing() {
        let server = Server::new(crate::config::Config::default());
        let store = server.store.lock();
        assert!(replicas_caught_up(&store.repl));
        assert!(replica_report(&store.repl).is_empty());
    }
}
