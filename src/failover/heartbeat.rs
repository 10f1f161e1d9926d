//! The heartbeat (shell): pings the recorded master of every set every [`PERIOD`], all at
//! once, each with the set's probe timeouts, and
//! - records each answer in the [`RolesMemory`], so an outage is counted from the master's
//!   last answer rather than from when a reconcile happened to notice it;
//! - asks for a reconcile when a master stops answering (a hung, paused or black-holed
//!   master changes no Pod, so no watch event would bring it up before the periodic
//!   recheck).
//!
//! Why not a one-second requeue of every set: a reconcile reads and applies every owned
//! object; a PING on a kept connection costs one round trip.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::memory::RolesMemory;
pub use super::memory::Target;
use super::probe::{Client, ProbeError, Value};

/// How often every watched master is pinged.
pub const PERIOD: Duration = Duration::from_millis(500);

/// A reply that proves the server is running and serving: PONG, or the refusals of a live
/// server that cannot serve yet (a script past `busy-reply-threshold`, a dataset loading).
fn answers(v: &Value) -> bool {
    match v {
        Value::Simple(_) => true,
        Value::Error(e) => e.starts_with("BUSY") || e.starts_with("LOADING"),
        _ => false,
    }
}

/// A kept connection, by the address it goes to.
type Conn = (String, Client);

/// One ping of `t`, over `conn` when it goes to the same address; returns whether the master
/// answered within its deadline, and the connection to keep.
pub async fn ping(t: &Target, conn: Option<Conn>) -> (bool, Option<Conn>) {
    let conn = conn.filter(|(addr, _)| *addr == t.addr);
    let io = async {
        let mut c = match conn {
            Some((_, c)) => c,
            None => {
                super::probe::connect_as(&t.addr, &t.credentials, t.timeouts, t.tls.as_ref())
                    .await?
            }
        };
        let v = c.command(&["PING"]).await?;
        Ok::<_, ProbeError>((v, c))
    };
    match tokio::time::timeout(t.timeouts.observation(), io).await {
        Ok(Ok((v, c))) if answers(&v) => (true, Some((t.addr.clone(), c))),
        // A busy server refuses even AUTH: alive, but the connection is not usable.
        Ok(Err(ProbeError::Auth(e))) => (e.starts_with("BUSY") || e.starts_with("LOADING"), None),
        _ => (false, None),
    }
}

/// Pings every watched master once, concurrently; returns whether any master that answered
/// before (or is new) did not answer now. `conns` and `failing` are the loop's state.
pub async fn tick(
    memory: &RolesMemory,
    conns: &mut HashMap<String, Conn>,
    failing: &mut HashMap<String, bool>,
) -> bool {
    let watched = memory.watched();
    conns.retain(|uid, _| watched.iter().any(|(u, _)| u == uid));
    failing.retain(|uid, _| watched.iter().any(|(u, _)| u == uid));
    let pings = watched.iter().map(|(uid, t)| {
        let conn = conns.remove(uid);
        async move { (uid, t, ping(t, conn).await) }
    });
    let mut went_down = false;
    for (uid, t, (alive, conn)) in futures::future::join_all(pings).await {
        if alive {
            memory.answered(uid, &t.master, SystemTime::now());
        } else {
            tracing::debug!(name = %t.name, namespace = %t.namespace, master = %t.master, "master does not answer the heartbeat");
        }
        if let Some(c) = conn {
            conns.insert(uid.clone(), c);
        }
        let was_failing = failing.insert(uid.clone(), !alive).unwrap_or(false);
        went_down |= !alive && !was_failing;
    }
    went_down
}

/// Runs until dropped (the controller aborts it): pings every [`PERIOD`] and sends on
/// `trigger` when a master stops answering (a full channel means a reconcile is already
/// asked for).
pub async fn run(memory: Arc<RolesMemory>, mut trigger: futures::channel::mpsc::Sender<()>) {
    let mut conns = HashMap::new();
    let mut failing = HashMap::new();
    let mut every = tokio::time::interval(PERIOD);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if tick(&memory, &mut conns, &mut failing).await {
            let _ = trigger.try_send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::probe::Timeouts;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn target(addr: &str) -> Target {
        Target {
            namespace: "ns".into(),
            name: "c".into(),
            master: "c-0".into(),
            addr: addr.into(),
            credentials: Default::default(),
            tls: None,
            timeouts: Timeouts::uniform(Duration::from_millis(300)),
        }
    }

    /// Accepts connections and answers each request with `reply` (or never, when empty).
    async fn server(reply: &'static [u8]) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        if !reply.is_empty() && s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn pong_busy_and_loading_are_answers_silence_is_not() {
        for (reply, alive) in [
            (&b"+PONG\r\n"[..], true),
            (b"-BUSY Redis is busy running a script.\r\n", true),
            (b"-LOADING Redis is loading the dataset in memory\r\n", true),
            (b"-ERR unknown\r\n", false),
            (b"", false),
        ] {
            let addr = server(reply).await;
            let t0 = std::time::Instant::now();
            let (ok, conn) = ping(&target(&addr), None).await;
            assert_eq!(ok, alive, "{:?}", String::from_utf8_lossy(reply));
            assert_eq!(conn.is_some(), alive, "kept while it answers");
            assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        }
    }

    #[tokio::test]
    async fn a_master_that_stops_answering_asks_for_one_reconcile() {
        let memory = RolesMemory::default();
        let good = server(b"+PONG\r\n").await;
        memory.watch("u", target(&good));
        let (mut conns, mut failing) = (HashMap::new(), HashMap::new());
        assert!(!tick(&memory, &mut conns, &mut failing).await);
        let first = memory.last_answer("u", "c-0").expect("answer recorded");
        assert_eq!(conns.len(), 1, "connection kept");
        assert!(!tick(&memory, &mut conns, &mut failing).await);
        assert!(memory.last_answer("u", "c-0").unwrap() >= first);

        // The same set's master now hangs (accepts, never answers).
        let silent = server(b"").await;
        memory.watch("u", target(&silent));
        let t0 = std::time::Instant::now();
        assert!(tick(&memory, &mut conns, &mut failing).await, "went down");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        assert!(conns.is_empty());
        assert!(
            !tick(&memory, &mut conns, &mut failing).await,
            "asked once per outage"
        );
        memory.unwatch("u");
        assert!(!tick(&memory, &mut conns, &mut failing).await);
        assert!(failing.is_empty());
    }
}
