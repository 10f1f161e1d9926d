//! FAILOVER: the coordinated handover of this master to one of its replicas, as
//! Redis 7.0 runs it.
//!
//! 1. `FAILOVER [TO host port [FORCE]] [TIMEOUT ms]` pauses client writes (a
//!    [`PausePurpose::Failover`] pause, which CLIENT UNPAUSE does not end) and
//!    enters `waiting-for-sync`.
//! 2. A driver task (every 100 ms, and on every replica ACK) waits until the
//!    target — or, without `TO`, the first replica — has acknowledged our whole
//!    stream. Past `TIMEOUT` it aborts, or with `FORCE` hands over anyway.
//! 3. Handover (`failover-in-progress`): this node becomes a replica of the target
//!    ([`replica::set_master`], keeping its own history as the cached master) and
//!    its link sends `PSYNC <replid> <offset> FAILOVER`; the target promotes
//!    itself and answers as a master. Once the reply came (`+CONTINUE`, or a full
//!    resync), the failover is over and writes resume (they now get READONLY); a
//!    refused request or a failed write of the PSYNC aborts: this node becomes a
//!    master again.
//!
//! The decisions ([`parse`], [`validate`], [`next_step`]) are pure functions over
//! plain data; the rest carries them out on the store.

use super::replica;
use super::{Failover, FailoverState, ReplState, ReplicaLink, ReplicaState};
use crate::pause::{PauseMode, PausePurpose};
use crate::server::{Server, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Redis runs its replication cron every 100 ms while a failover is on.
const TICK: Duration = Duration::from_millis(100);

/// The FAILOVER errors, with Redis's texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailoverError {
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR FAILOVER timeout must be greater than 0")]
    BadTimeout,
    #[error("ERR No failover in progress.")]
    NoneInProgress,
    #[error("ERR FAILOVER already in progress.")]
    AlreadyInProgress,
    #[error("ERR FAILOVER is not valid when server is a replica.")]
    IsReplica,
    #[error("ERR FAILOVER requires connected replicas.")]
    NoReplicas,
    #[error("ERR FAILOVER with force option requires both a timeout and target HOST and IP.")]
    ForceNeedsTargetAndTimeout,
    #[error("ERR FAILOVER target HOST and PORT is not a replica.")]
    NotAReplica,
    #[error("ERR FAILOVER target replica is not online.")]
    TargetNotOnline,
}

/// What FAILOVER asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `FAILOVER ABORT` (alone).
    Abort,
    Start(Start),
}

/// A FAILOVER to start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Start {
    /// `TO host port` (the port as given; it only has to match a replica's).
    pub to: Option<(String, i64)>,
    /// `TIMEOUT ms` (> 0), 0 when absent.
    pub timeout_ms: i64,
    pub force: bool,
}

/// Parses the arguments after `FAILOVER`, in Redis's order: each option once,
/// a bad number reported where it is met.
pub fn parse(args: &[&[u8]]) -> Result<Request, FailoverError> {
    let kw = |a: &[u8], k: &str| a.eq_ignore_ascii_case(k.as_bytes());
    if let [only] = args {
        if kw(only, "abort") {
            return Ok(Request::Abort);
        }
    }
    let int = |a: &[u8]| crate::resp::parse_i64(a).ok_or(FailoverError::NotInteger);
    let mut s = Start::default();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match (args.get(i + 1), args.get(i + 2)) {
            (Some(ms), _) if kw(a, "timeout") && s.timeout_ms == 0 => {
                s.timeout_ms = int(ms)?;
                if s.timeout_ms <= 0 {
                    return Err(FailoverError::BadTimeout);
                }
                i += 2;
            }
            (Some(host), Some(port)) if kw(a, "to") && s.to.is_none() => {
                let port = int(port)?;
                s.to = Some((String::from_utf8_lossy(host).into_owned(), port));
                i += 3;
            }
            _ if kw(a, "force") && !s.force => {
                s.force = true;
                i += 1;
            }
            _ => return Err(FailoverError::Syntax),
        }
    }
    Ok(Request::Start(s))
}

/// The replica `host:port` names: its announced (else peer) ip, compared
/// case-insensitively, and its listening port.
fn find_replica<'a>(replicas: &'a [ReplicaLink], host: &str, port: i64) -> Option<&'a ReplicaLink> {
    replicas
        .iter()
        .find(|l| l.ip.eq_ignore_ascii_case(host) && i64::from(l.port) == port)
}

/// Whether FAILOVER may start now, checked in Redis's order; the target to use
/// when one was named.
pub fn validate(s: &Start, r: &ReplState) -> Result<Option<(String, u16)>, FailoverError> {
    if r.failover.state != FailoverState::NoFailover {
        return Err(FailoverError::AlreadyInProgress);
    }
    if r.master.is_some() {
        return Err(FailoverError::IsReplica);
    }
    if r.replicas.is_empty() {
        return Err(FailoverError::NoReplicas);
    }
    if s.force && (s.timeout_ms == 0 || s.to.is_none()) {
        return Err(FailoverError::ForceNeedsTargetAndTimeout);
    }
    let Some((host, port)) = &s.to else {
        return Ok(None);
    };
    let link = find_replica(&r.replicas, host, *port).ok_or(FailoverError::NotAReplica)?;
    if link.state != ReplicaState::Online {
        return Err(FailoverError::TargetNotOnline);
    }
    Ok(Some((host.clone(), link.port)))
}

/// What the waiting failover does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nobody caught up yet.
    Wait,
    /// TIMEOUT passed without FORCE.
    Abort(&'static str),
    /// Hand over to `host:port`; `forced`: TIMEOUT passed with FORCE.
    Handover {
        host: String,
        port: u16,
        forced: bool,
    },
}

/// A replica as the waiting failover sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub ip: String,
    pub port: u16,
    pub ack_off: i64,
}

/// The decision of Redis's `updateFailoverStatus` while waiting for the sync.
pub fn next_step(f: &Failover, now: Instant, peers: &[Peer], offset: i64) -> Step {
    if f.state != FailoverState::WaitForSync {
        return Step::Wait;
    }
    if f.deadline.is_some_and(|d| d <= now) {
        return match (&f.target, f.force) {
            (Some((host, port)), true) => Step::Handover {
                host: host.clone(),
                port: *port,
                forced: true,
            },
            _ => Step::Abort("Replica never caught up before timeout"),
        };
    }
    let synced = |p: &Peer| p.ack_off == offset;
    let found = match &f.target {
        Some((host, port)) => peers
            .iter()
            .find(|p| p.ip.eq_ignore_ascii_case(host) && p.port == *port)
            .filter(|p| synced(p))
            .map(|_| (host.clone(), *port)),
        None => peers
            .iter()
            .find(|p| synced(p))
            .map(|p| (p.ip.clone(), p.port)),
    };
    match found {
        Some((host, port)) => Step::Handover {
            host,
            port,
            forced: false,
        },
        None => Step::Wait,
    }
}

fn peers(r: &ReplState) -> Vec<Peer> {
    r.replicas
        .iter()
        .map(|l| Peer {
            ip: l.ip.clone(),
            port: l.port,
            ack_off: l.ack_off,
        })
        .collect()
}

/// Starts a validated FAILOVER: pause writes, wait for the sync (a driver task).
pub fn start(server: &Arc<Server>, store: &mut Store, target: Option<(String, u16)>, s: &Start) {
    match &target {
        Some((host, port)) => crate::notice!("FAILOVER requested to {host}:{port}."),
        None => crate::notice!("FAILOVER requested to any replica."),
    }
    let f = &mut store.repl.failover;
    let deadline = (s.timeout_ms > 0)
        .then(|| Instant::now().checked_add(Duration::from_millis(s.timeout_ms as u64)))
        .flatten();
    *f = Failover {
        state: FailoverState::WaitForSync,
        target,
        deadline,
        force: s.force,
        generation: f.generation + 1,
    };
    let generation = f.generation;
    server
        .client_pause
        .pause_for(PausePurpose::Failover, None, PauseMode::Write);
    tokio::spawn(drive(server.clone(), generation));
}

/// Runs [`next_step`] until the failover `generation` stops waiting.
async fn drive(server: Arc<Server>, generation: u64) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = server.shutdown.subscribe();
    let acked = server.store.lock().repl.ack_notify.clone();
    loop {
        let notified = acked.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut store = server.store.lock();
            let f = &store.repl.failover;
            if f.generation != generation || f.state != FailoverState::WaitForSync {
                return;
            }
            let r = &store.repl;
            match next_step(f, Instant::now(), &peers(r), r.master_repl_offset) {
                Step::Wait => {}
                Step::Abort(reason) => {
                    abort(&server, &mut store, reason);
                    return;
                }
                Step::Handover { host, port, forced } => {
                    if forced {
                        crate::notice!(
                            "FAILOVER to {host}:{port} time out exceeded, failing over."
                        );
                    } else {
                        crate::notice!("Failover target {host}:{port} is synced, failing over.");
                    }
                    handover(&server, &mut store, host, port);
                    return;
                }
            }
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut notified => {}
            _ = crate::server::stopping(&mut shutdown) => return,
        }
    }
}

/// Demotes this master to a replica of the target; its link's PSYNC carries
/// FAILOVER (see [`psync_suffix`]).
fn handover(server: &Arc<Server>, store: &mut Store, host: String, port: u16) {
    store.repl.failover.state = FailoverState::InProgress;
    store.repl.failover.target = Some((host.clone(), port));
    replica::set_master(server, store, &host, port, true);
}

/// The failover's end, successful or not: its state cleared, writes resumed.
fn clear(server: &Server, r: &mut ReplState) {
    r.failover = Failover {
        generation: r.failover.generation,
        ..Failover::default()
    };
    server.client_pause.unpause_for(PausePurpose::Failover);
}

/// Ends a running failover without handing over (FAILOVER ABORT, TIMEOUT, a
/// refused PSYNC): a node already demoted becomes a master again.
pub fn abort(server: &Server, store: &mut Store, reason: &str) {
    let f = &store.repl.failover;
    let state = f.state;
    match (state, &f.target) {
        (FailoverState::NoFailover, _) => return,
        (_, Some((host, port))) => crate::notice!("FAILOVER to {host}:{port} aborted: {reason}"),
        (_, None) => crate::notice!("FAILOVER to any replica aborted: {reason}"),
    }
    if state == FailoverState::InProgress {
        replica::promote(store);
    }
    clear(server, &mut store.repl);
}

/// The extra PSYNC argument of a node handing over (`FAILOVER`), if it is one.
pub fn psync_suffix(r: &ReplState) -> Option<&'static [u8]> {
    (r.failover.state == FailoverState::InProgress).then_some(&b"FAILOVER"[..])
}

/// The target answered the handover's PSYNC. `synced`: `+CONTINUE` or
/// `+FULLRESYNC` (the failover is done); otherwise it refused and the failover
/// is aborted. Returns whether this node is still the target's replica.
pub fn psync_answered(server: &Server, store: &mut Store, synced: bool) -> bool {
    if store.repl.failover.state != FailoverState::InProgress {
        return true;
    }
    if synced {
        clear(server, &mut store.repl);
        true
    } else {
        abort(server, store, "Failover target rejected psync request");
        false
    }
}

/// The handover's PSYNC could not be written.
pub fn psync_write_failed(server: &Server, store: &mut Store) {
    if store.repl.failover.state == FailoverState::InProgress {
        abort(server, store, "Write error to failover target");
    }
}

/// Whether the master's keepalive PINGs are held back: Redis skips them while
/// a failover with a TIMEOUT has writes paused, so the offset the replicas must
/// reach stays put.
pub fn holds_pings(r: &ReplState, server: &Server) -> bool {
    r.failover.deadline.is_some() && server.client_pause.is_paused()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &str) -> Result<Request, FailoverError> {
        let v: Vec<&[u8]> = args.split_whitespace().map(str::as_bytes).collect();
        parse(&v)
    }

    #[test]
    fn parse_follows_redis_rules() {
        use FailoverError::*;
        assert_eq!(p("abort"), Ok(Request::Abort));
        assert_eq!(p("ABORT"), Ok(Request::Abort));
        assert_eq!(p(""), Ok(Request::Start(Start::default())));
        assert_eq!(
            p("to h 7 force timeout 5"),
            Ok(Request::Start(Start {
                to: Some(("h".into(), 7)),
                timeout_ms: 5,
                force: true
            }))
        );
        for bad in [
            "abort x",
            "abort timeout 1",
            "timeout 1 abort",
            "timeout",
            "to",
            "to h",
            "timeout 1 timeout 2",
            "to h 1 to h 2",
            "force force",
            "x",
        ] {
            assert_eq!(p(bad), Err(Syntax), "{bad}");
        }
        assert_eq!(p("timeout 0"), Err(BadTimeout));
        assert_eq!(p("timeout -5"), Err(BadTimeout));
        assert_eq!(p("timeout abc"), Err(NotInteger));
        assert_eq!(p("to h abc"), Err(NotInteger));
        // A bad number is reported where it is met, before a later syntax error.
        assert_eq!(p("timeout x bogus"), Err(NotInteger));
    }

    fn peer(ip: &str, port: u16, ack_off: i64) -> Peer {
        Peer {
            ip: ip.into(),
            port,
            ack_off,
        }
    }

    fn waiting(target: Option<(&str, u16)>, deadline: Option<Instant>, force: bool) -> Failover {
        Failover {
            state: FailoverState::WaitForSync,
            target: target.map(|(h, p)| (h.to_string(), p)),
            deadline,
            force,
            generation: 1,
        }
    }

    #[test]
    fn any_replica_that_caught_up_becomes_the_target() {
        let now = Instant::now();
        let f = waiting(None, None, false);
        let peers = [peer("10.0.0.1", 1, 90), peer("10.0.0.2", 2, 100)];
        assert_eq!(next_step(&f, now, &peers[..1], 100), Step::Wait);
        assert_eq!(
            next_step(&f, now, &peers, 100),
            Step::Handover {
                host: "10.0.0.2".into(),
                port: 2,
                forced: false
            }
        );
    }

    #[test]
    fn a_named_target_is_waited_for_even_if_another_caught_up() {
        let now = Instant::now();
        let f = waiting(Some(("LOCALHOST", 1)), None, false);
        let peers = [peer("localhost", 1, 50), peer("other", 2, 100)];
        assert_eq!(next_step(&f, now, &peers, 100), Step::Wait);
        let peers = [peer("localhost", 1, 100)];
        assert_eq!(
            next_step(&f, now, &peers, 100),
            Step::Handover {
                host: "LOCALHOST".into(),
                port: 1,
                forced: false
            }
        );
    }

    #[test]
    fn timeout_aborts_or_forces() {
        let now = Instant::now();
        let peers = [peer("h", 1, 10)];
        let f = waiting(Some(("h", 1)), Some(now), false);
        assert_eq!(
            next_step(&f, now, &peers, 100),
            Step::Abort("Replica never caught up before timeout")
        );
        let f = waiting(Some(("h", 1)), Some(now), true);
        assert_eq!(
            next_step(&f, now, &peers, 100),
            Step::Handover {
                host: "h".into(),
                port: 1,
                forced: true
            }
        );
        let later = waiting(Some(("h", 1)), Some(now + Duration::from_secs(5)), true);
        assert_eq!(next_step(&later, now, &peers, 100), Step::Wait);
        // Nothing happens outside the waiting state.
        let mut done = later;
        done.state = FailoverState::InProgress;
        assert_eq!(
            next_step(&done, now + Duration::from_secs(9), &peers, 10),
            Step::Wait
        );
    }

    #[test]
    fn validation_order_matches_redis() {
        let server = Server::new(crate::config::Config::default());
        let mut store = server.store.lock();
        let s = Start {
            to: Some(("h".into(), 1)),
            timeout_ms: 0,
            force: true,
        };
        assert_eq!(validate(&s, &store.repl), Err(FailoverError::NoReplicas));
        store.repl.failover.state = FailoverState::WaitForSync;
        assert_eq!(
            validate(&s, &store.repl),
            Err(FailoverError::AlreadyInProgress)
        );
    }
}
