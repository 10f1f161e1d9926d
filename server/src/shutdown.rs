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
//! `Server::shutdown_req` ([`crate::server::ShutdownRequest`]) holds the request
//! and its progress.

use crate::pause::{PauseMode, PausePurpose};
use crate::replication::{ReplState, ReplicaState};
use crate::server::Server;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the wait for replicas looks again (Redis checks in its 100 ms cron).
const TICK: Duration = Duration::from_millis(100);

/// The reply of a SHUTDOWN whose shutdown was aborted or failed.
pub const FAILED_REPLY: &str = "ERR Errors trying to SHUTDOWN. Check logs.";

pub use crate::server::ShutdownFlags as Flags;

/// Asks the server to stop; returns the attempt the caller waits for (see
/// [`outcome`]).
pub fn request(server: &Server, flags: Flags) -> u64 {
    server.shutdown_req.request(flags)
}

/// Resolves true when the server is stopping, false when attempt `attempt`
/// ended without exiting (aborted or failed).
pub async fn outcome(server: &Server, attempt: u64) -> bool {
    server
        .shutdown_req
        .outcome(attempt, server.shutdown.subscribe())
        .await
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
        let deadline = Instant::now() + Duration::from_secs(timeout);
        server.shutdown_req.set_wait_deadline(Some(deadline));
        !wait_for_replicas(server, deadline).await
    } else {
        // An ABORT that came between the request and now still counts.
        server.shutdown_req.abort_pending()
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
async fn wait_for_replicas(server: &Arc<Server>, deadline: Instant) -> bool {
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
    let req = &server.shutdown_req;
    // Bounded by the deadline: each round ends at an ACK, an abort or a tick.
    loop {
        let woken = req.changed();
        let ack = acked.notified();
        tokio::pin!(woken, ack);
        ack.as_mut().enable();
        if req.abort_pending() {
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
    server.shutdown_req.set_wait_deadline(None);
    server.client_pause.unpause_for(PausePurpose::Shutdown);
    server.shutdown_req.end_attempt();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_master_without_replicas_is_ready_and_reports_nothing() {
        let server = Server::new(crate::config::Config::default());
        let store = server.store.lock();
        assert!(replicas_caught_up(&store.repl));
        assert!(replica_report(&store.repl).is_empty());
    }
}
