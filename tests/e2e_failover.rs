//! End-to-end failover through `tandem-operator local` (issue 7's acceptance): the master
//! pod's process is killed under a write load; a new master must accept writes through the
//! `-master` Service, no write acknowledged by `WAIT 1` may be lost, and the old master must
//! come back as a replica of the new one.
//!
//! Needs `cargo build -p tandem-server` first (nextest `--workspace` builds it).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::local::{Local, Reply, Resp};

const NS: &str = "default";
const DOWN_AFTER_SECONDS: u64 = 5;

const CACHE3: &str = "apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: cache
spec:
  replicas: 3
  failover:
    downAfterSeconds: 5
";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// What the writer saw: keys acknowledged by `WAIT 1` and the instants of successful SETs.
#[derive(Default)]
struct Log {
    acked: BTreeMap<u64, String>,
    successes: Vec<Instant>,
    errors: Vec<String>,
}

/// SET then WAIT 1 through the master endpoint, reconnecting on any error, until `stop`
/// (bounded: at most 20 000 attempts and 120 s).
fn writer(addr: String, password: String, stop: Arc<AtomicBool>, log: Arc<Mutex<Log>>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut conn: Option<Resp> = None;
    let mut i: u64 = 0;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && i < 20_000 {
        i += 1;
        if conn.is_none() {
            match Resp::connect(&addr) {
                Ok(mut c) => match c.cmd(&["AUTH", &password]) {
                    Ok(Reply::Simple(ok)) if ok == "OK" => conn = Some(c),
                    other => {
                        log.lock().unwrap().errors.push(format!("AUTH: {other:?}"));
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                },
                Err(e) => {
                    log.lock().unwrap().errors.push(format!("connect: {e}"));
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let key = format!("k:{i}");
        let value = format!("v{i}");
        match c.cmd(&["SET", &key, &value]) {
            Ok(Reply::Simple(ok)) if ok == "OK" => {
                log.lock().unwrap().successes.push(Instant::now());
            }
            other => {
                log.lock().unwrap().errors.push(format!("SET: {other:?}"));
                conn = None;
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        match c.cmd(&["WAIT", "1", "1000"]) {
            Ok(Reply::Int(n)) if n >= 1 => {
                log.lock().unwrap().acked.insert(i, value);
            }
            Ok(Reply::Int(_)) => {} // written but not acknowledged by a replica: may be lost
            other => {
                log.lock().unwrap().errors.push(format!("WAIT: {other:?}"));
                conn = None;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_master_under_load_promotes_a_replica_without_losing_acknowledged_writes() {
    let scenario = async {
        let l = Local::start("failover", &[CACHE3]).await;
        l.wait_ready(NS, "cache", 3, Duration::from_secs(60)).await;
        let before = l.status(NS, "cache").await.unwrap().status.unwrap();
        let old_master = before.master.clone().expect("a recorded master");
        let old_epoch = before.epoch;

        let addr = l
            .endpoint(&format!("{NS}/cache-master"), Duration::from_secs(30))
            .await
            .to_string();
        let password = l.password(NS, "cache").await;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Log::default()));
        let w = {
            let (addr, password, stop, log) =
                (addr.clone(), password.clone(), stop.clone(), log.clone());
            std::thread::spawn(move || writer(addr, password, stop, log))
        };

        // Let the load run until some writes are acknowledged by a replica.
        l.wait_for(
            "acknowledged writes before the kill",
            Duration::from_secs(30),
            || {
                let n = log.lock().unwrap().acked.len();
                async move { (n >= 50).then_some(()) }
            },
        )
        .await;
        let killed_pid = l.kill_pod_process(NS, &old_master);
        let killed_at = Instant::now();

        // A new master, recorded with a new epoch.
        let after = l
            .wait_for("a new master recorded", Duration::from_secs(60), || async {
                let st = l.status(NS, "cache").await?.status?;
                (st.epoch > old_epoch && st.master.as_deref() != Some(old_master.as_str()))
                    .then_some(st)
            })
            .await;
        let new_master = after.master.clone().unwrap();
        // The writer gets through the master Service again.
        let first_write = l
            .wait_for(
                "a write through the master Service after the kill",
                Duration::from_secs(60),
                || {
                    let t = log
                        .lock()
                        .unwrap()
                        .successes
                        .iter()
                        .copied()
                        .find(|t| *t > killed_at);
                    async move { t }
                },
            )
            .await;
        let took = first_write - killed_at;
        eprintln!(
            "master {old_master} (pid {killed_pid}) killed; {new_master} accepted writes through \
             the master Service after {took:?} (epoch {old_epoch} -> {})",
            after.epoch
        );
        // Keep writing for a moment under the new master, then stop the writer.
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::SeqCst);
        tokio::task::spawn_blocking(move || w.join())
            .await
            .unwrap()
            .expect("writer thread");

        // lastFailover tells what happened.
        let lf = l
            .wait_for("lastFailover recorded", Duration::from_secs(10), || async {
                l.status(NS, "cache").await?.status?.last_failover
            })
            .await;
        assert_eq!(lf.from, old_master);
        assert_eq!(lf.to, new_master);
        assert!(!lf.reason.is_empty());

        // No write acknowledged by WAIT 1 is lost: every one is on the new master.
        let acked = log.lock().unwrap().acked.clone();
        assert!(!acked.is_empty());
        let mut m = l.master_conn(NS, "cache").await;
        assert_eq!(m.info_replication()["role"], "master");
        let mut lost = Vec::new();
        for (i, v) in &acked {
            let key = format!("k:{i}");
            if m.cmd(&["GET", &key]).ok() != Some(Reply::Bulk(Some(v.as_bytes().to_vec()))) {
                lost.push(key);
            }
        }
        assert!(
            lost.is_empty(),
            "{} of {} acknowledged writes lost: {:?}",
            lost.len(),
            acked.len(),
            &lost[..lost.len().min(10)]
        );

        // The old master comes back (restarted by the runtime) as a replica of the new one.
        let mut old = l.pod_conn(NS, "cache", &old_master).await;
        let new_host_prefix = format!("{new_master}.");
        l.wait_for(
            "the old master linked as a replica of the new one",
            Duration::from_secs(60),
            || {
                let info = old.info_replication();
                let prefix = new_host_prefix.clone();
                async move {
                    (info.get("role").map(String::as_str) == Some("slave")
                        && info.get("master_link_status").map(String::as_str) == Some("up")
                        && info
                            .get("master_host")
                            .is_some_and(|h| h.starts_with(&prefix)))
                    .then_some(())
                }
            },
        )
        .await;
        l.wait_ready(NS, "cache", 3, Duration::from_secs(60)).await;

        // The acceptance bound (downAfterSeconds + 2 s) is a wall-clock figure: on a shared,
        // noisy CI machine it is reported, not asserted (bench/failover.py measures it).
        let bound = Duration::from_secs(DOWN_AFTER_SECONDS + 2);
        if !in_ci() {
            assert!(took <= bound, "first write after {took:?}, bound {bound:?}");
        }
        eprintln!("failover took {took:?} (acceptance bound {bound:?})");
    };
    if tokio::time::timeout(Duration::from_secs(150), scenario)
        .await
        .is_err()
    {
        panic!("failover scenario exceeded 150 s");
    }
}

const BUSY3: &str = "apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: busy
spec:
  replicas: 3
  failover:
    downAfterSeconds: 2
  config:
    busy-reply-threshold: \"100\"
";

/// A master running a script that never ends answers BUSY to everything, INFO included
/// (issue 15): it is alive, so the operator must not promote a replica, however long it
/// lasts; once SCRIPT KILL ends the script the set is Ready again with the same master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_busy_with_a_script_is_not_failed_over() {
    let scenario = async {
        let l = Local::start("busy", &[BUSY3]).await;
        l.wait_ready(NS, "busy", 3, Duration::from_secs(60)).await;
        let before = l.status(NS, "busy").await.unwrap().status.unwrap();
        let master = before.master.clone().expect("a recorded master");
        let addr = l
            .endpoint(&format!("{NS}/busy-master"), Duration::from_secs(30))
            .await
            .to_string();
        let password = l.password(NS, "busy").await;
        let looping = {
            let (addr, password) = (addr.clone(), password.clone());
            // Its reply never comes (the read times out after 5 s; the script runs on).
            std::thread::spawn(move || {
                let mut c = Resp::connect_auth(&addr, &password);
                let _ = c.cmd(&["EVAL", "while true do end", "0"]);
            })
        };
        let mut probe = Resp::connect_auth(&addr, &password);
        let busy_seen = Instant::now();
        loop {
            match probe.cmd(&["PING"]) {
                Ok(Reply::Error(e)) if e.starts_with("BUSY") => break,
                other => assert!(
                    busy_seen.elapsed() < Duration::from_secs(5),
                    "no BUSY within 5 s: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Four times downAfterSeconds: no promotion, and the status says why.
        let mut saw_busy_condition = false;
        let watch = Instant::now();
        while watch.elapsed() < Duration::from_secs(8) {
            let st = l.status(NS, "busy").await.unwrap().status.unwrap();
            assert_eq!(st.master.as_deref(), Some(master.as_str()), "failed over");
            assert_eq!(st.epoch, before.epoch, "a promotion happened");
            if let Some(c) = l.condition(NS, "busy", "Available").await {
                saw_busy_condition |= c["reason"] == "MasterBusy";
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(saw_busy_condition, "Available never said MasterBusy");
        assert_eq!(
            probe.cmd(&["SCRIPT", "KILL"]).unwrap(),
            Reply::Simple("OK".into())
        );
        // The kill is seen by the script's next hook: PING answers once it has ended.
        let killed = Instant::now();
        while probe.cmd(&["PING"]).unwrap() != Reply::Simple("PONG".into()) {
            assert!(
                killed.elapsed() < Duration::from_secs(5),
                "still busy 5 s after SCRIPT KILL"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = looping.join();
        l.wait_ready(NS, "busy", 3, Duration::from_secs(60)).await;
        let after = l.status(NS, "busy").await.unwrap().status.unwrap();
        assert_eq!(after.master.as_deref(), Some(master.as_str()));
        assert_eq!(after.epoch, before.epoch);
    };
    tokio::time::timeout(Duration::from_secs(150), scenario)
        .await
        .expect("scenario within 150 s");
}
