//! Issue 20 end to end through `tandem-operator local`: the operator's per-set gauges follow
//! a dying master, and a long master outage costs at most one RedisReplication status write
//! per real change (counted by the local API's write audit, `GET /local/writes`).
//!
//! Needs `cargo build -p tandem-server` first (nextest `--workspace` builds it).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::local::Local;
use futures::StreamExt;
use kube::runtime::watcher;
use serde_json::Value;
use tandem_operator::crd::RedisReplicationStatus;

const NS: &str = "default";

const CACHE2: &str = "apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: cache
spec:
  replicas: 2
  failover:
    downAfterSeconds: 3
";

const SOLO: &str = "apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: solo
spec:
  replicas: 1
";

/// The operator's `/metrics` text (empty when it does not answer).
fn scrape(addr: SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of `family{namespace="default",name="<set>"<extra>}` in an exposition.
fn sample(text: &str, family: &str, set: &str, extra: &str) -> Option<f64> {
    let prefix = format!("{family}{{namespace=\"{NS}\",name=\"{set}\"{extra}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// `(has_master, ready_pods, epoch)` of a set, when the operator exports them.
fn gauges(text: &str, set: &str) -> Option<(f64, f64, f64)> {
    Some((
        sample(text, "tandem_operator_set_has_master", set, "")?,
        sample(text, "tandem_operator_set_ready_pods", set, "")?,
        sample(text, "tandem_operator_set_epoch", set, "")?,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_set_gauges_follow_a_dying_master_and_go_with_the_set() {
    let scenario = async {
        let l = Local::start("setgauges", &[CACHE2]).await;
        l.wait_ready(NS, "cache", 2, Duration::from_secs(60)).await;
        let metrics = l
            .endpoint("operator/metrics", Duration::from_secs(10))
            .await;
        let (_, _, epoch) = l
            .wait_for(
                "a healthy set in the gauges",
                Duration::from_secs(30),
                || async {
                    let g = gauges(&scrape(metrics), "cache")?;
                    (g.0 == 1.0 && g.1 == 2.0).then_some(g)
                },
            )
            .await;
        let text = scrape(metrics);
        assert_eq!(
            sample(
                &text,
                "tandem_operator_set_phase",
                "cache",
                ",phase=\"Ready\""
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "tandem_operator_set_replicas_in_sync", "cache", ""),
            Some(1.0),
            "{text}"
        );
        let master = l
            .status(NS, "cache")
            .await
            .and_then(|rr| rr.status?.master)
            .expect("a recorded master");
        l.kill_pod_process(NS, &master);

        // The master is gone: no master, a pod fewer ready.
        l.wait_for(
            "has_master 0 and fewer ready pods",
            Duration::from_secs(30),
            || async {
                let (has, ready, _) = gauges(&scrape(metrics), "cache")?;
                (has == 0.0 && ready < 2.0).then_some(())
            },
        )
        .await;
        // A replica is promoted (or the master comes back): a master again, at a new epoch
        // when it was a failover.
        let text = l
            .wait_for("has_master back to 1", Duration::from_secs(60), || async {
                let text = scrape(metrics);
                let (has, _, _) = gauges(&text, "cache")?;
                (has == 1.0).then_some(text)
            })
            .await;
        let promoted = sample(
            &text,
            "tandem_operator_set_failovers_total",
            "cache",
            ",outcome=\"succeeded\"",
        );
        let new_epoch = sample(&text, "tandem_operator_set_epoch", "cache", "");
        if promoted == Some(1.0) {
            assert!(new_epoch > Some(epoch), "{text}");
        }

        // Deleting the set removes its series.
        l.rrs(NS)
            .delete("cache", &Default::default())
            .await
            .expect("delete the set");
        l.wait_for(
            "the set's series removed",
            Duration::from_secs(30),
            || async {
                let text = scrape(metrics);
                (!text.is_empty() && !text.contains("name=\"cache\"")).then_some(())
            },
        )
        .await;
    };
    tokio::time::timeout(Duration::from_secs(180), scenario)
        .await
        .expect("scenario within 180 s");
}

/// The local API's write audit: one entry per object, subresource and verb.
async fn audit(l: &Local) -> Vec<Value> {
    let req = http::Request::get("/local/writes")
        .body(vec![])
        .expect("request");
    let text = l.client.request_text(req).await.expect("/local/writes");
    let v: Value = serde_json::from_str(&text).expect("JSON");
    v["writes"].as_array().cloned().unwrap_or_default()
}

fn count(writes: &[Value], pick: impl Fn(&Value) -> bool) -> u64 {
    writes
        .iter()
        .filter(|w| pick(w))
        .filter_map(|w| w["count"].as_u64())
        .sum()
}

/// Status write requests the local API received for a RedisReplication.
async fn status_writes(l: &Local, name: &str) -> u64 {
    count(&audit(l).await, |w| {
        w["resource"] == "redisreplications"
            && w["subresource"] == "status"
            && w["namespace"] == NS
            && w["name"] == name
    })
}

/// The whole status as text: any difference is a change a write had to make.
fn visible(st: &RedisReplicationStatus) -> String {
    serde_json::to_string(st).unwrap_or_default()
}

/// Sends `sig` to a pod's process (by the pid the runtime wrote).
fn signal_pod(l: &Local, pod: &str, sig: &str) -> u32 {
    let f = l.dir.join("pods").join(format!("{NS}_{pod}")).join("pid");
    let pid: u32 = std::fs::read_to_string(&f)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid in {}", f.display()));
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    pid
}

/// Resumes a stopped pod process on drop, also when the test fails.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

const OUTAGE: Duration = Duration::from_secs(60);

/// The only pod of a one-pod set is frozen (SIGSTOP) for 60 s: its master does not answer
/// and there is no replica to promote. The status changes a few times (Ready lost, Degraded,
/// the outage timestamp) and then stays; every status write the API receives must be one of
/// those changes, not a rewrite per probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_long_master_outage_writes_the_status_once_per_real_change() {
    let l = Local::start("statuswrites", &[SOLO]).await;
    l.wait_ready(NS, "solo", 1, Duration::from_secs(60)).await;
    // Settled: no status write for a while before the outage starts.
    let mut last = status_writes(&l, "solo").await;
    let mut quiet_since = Instant::now();
    let settle_deadline = Instant::now() + Duration::from_secs(30);
    while quiet_since.elapsed() < Duration::from_secs(2) {
        assert!(Instant::now() < settle_deadline, "status never settled");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = status_writes(&l, "solo").await;
        if now != last {
            (last, quiet_since) = (now, Instant::now());
        }
    }
    let before = last;
    let all_before = count(&audit(&l).await, |_| true);

    // Every status change a watch sees during the outage (a write that changes nothing is
    // not seen: those are what the test is after).
    let api = l.rrs(NS);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let watch_seen = seen.clone();
    let changes = tokio::spawn(async move {
        let cfg = watcher::Config::default().fields("metadata.name=solo");
        let stream = watcher::watcher(api, cfg);
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            let objs = match ev {
                Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => vec![o],
                _ => vec![],
            };
            for o in objs {
                let v = visible(&o.status.unwrap_or_default());
                let mut seen = watch_seen.lock().unwrap();
                if seen.last() != Some(&v) {
                    seen.push(v);
                }
            }
        }
    });

    let pid = signal_pod(&l, "solo-0", "-STOP");
    let resume = Resume(pid);
    let started = Instant::now();
    l.wait_for(
        "the outage in the status",
        Duration::from_secs(30),
        || async {
            let st = l.status(NS, "solo").await?.status?;
            st.master_unreachable_since.is_some().then_some(())
        },
    )
    .await;
    tokio::time::sleep(OUTAGE.saturating_sub(started.elapsed())).await;
    let during = status_writes(&l, "solo").await - before;
    // Measured, not asserted: every write of the outage (children applied each reconcile,
    // Events, pod status from the runtime) for the report.
    let all_during = count(&audit(&l).await, |_| true) - all_before;
    changes.abort();
    let seen = seen.lock().unwrap().clone();
    drop(resume);

    // The first entry is the state before the outage (the watch's initial list).
    let real_changes = seen.len().saturating_sub(1) as u64;
    eprintln!(
        "status writes during a {}s outage: {during} (all writes: {all_during}); real changes: {real_changes}: {seen:#?}",
        OUTAGE.as_secs()
    );
    assert!(real_changes >= 1, "the outage never showed: {seen:#?}");
    assert!(
        during <= real_changes,
        "{during} status writes for {real_changes} changes: {seen:#?}"
    );
    // And the changes themselves are few: the outage is not re-announced on every probe.
    assert!(
        real_changes <= 6,
        "{real_changes} status changes: {seen:#?}"
    );

    // The pod answers again and the set recovers.
    l.wait_ready(NS, "solo", 1, Duration::from_secs(60)).await;
}
