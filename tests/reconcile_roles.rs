//! The roles step through a whole reconcile, against the in-memory API server
//! (the local mode's API store, tests/common/api.rs) and, where pods have addresses, real `tandem-server` processes.
//!
//! The step connects to `<podIP>:6379`, so each server of a test listens on port 6379 of its
//! own loopback address (127.X.Y.1-3, X.Y from the test process, retried on collisions).
//! Replicas are told to follow pod DNS names, which do not resolve here: links stay down,
//! which is fine for what these tests check (decisions, labels, status, events, metrics).
//! Needs `cargo build -p tandem-server` with the same CARGO_TARGET_DIR.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::api::TestApi;
use common::loopback_servers::{self, Srv};
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{json, Value};
use tandem_operator::build::Params;
use tandem_operator::controller::{reconcile, Context};
use tandem_operator::crd::RedisReplication;
use tandem_operator::failover::probe::{Timeouts, Value as Resp};
use tandem_operator::metrics::Metrics;

const NS: &str = "prod";
const RR: (&str, &str) = ("apis/tandem.dev/v1alpha1", "redisreplications");
const PW: &str = "pw-roles";

struct World {
    api: TestApi,
    ctx: Arc<Context>,
}

impl World {
    async fn new() -> Self {
        let api = TestApi::start(&[NS]).await;
        let client = api.client();
        let ctx = Arc::new(Context {
            client: client.clone(),
            params: Params::default(),
            metrics: Arc::new(Metrics::default()),
            recorder: Some(Recorder::new(
                client,
                Reporter {
                    controller: "tandem-operator".into(),
                    instance: None,
                },
            )),
            roles: Default::default(),
        });
        World { api, ctx }
    }

    fn create_rr(&self, name: &str, spec: Value) {
        let rr: RedisReplication = serde_json::from_value(json!({
            "apiVersion": "tandem.dev/v1alpha1", "kind": "RedisReplication",
            "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"), "generation": 1},
            "spec": spec,
        }))
        .unwrap();
        self.api
            .put(RR.0, RR.1, NS, name, serde_json::to_value(rr).unwrap());
    }

    fn secret(&self, name: &str) {
        // "pw-roles" in base64.
        self.api.put(
            "api/v1",
            "secrets",
            NS,
            &format!("{name}-auth"),
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": format!("{name}-auth"), "namespace": NS},
                "data": {"password": "cHctcm9sZXM="}
            }),
        );
    }

    fn rr(&self, name: &str) -> RedisReplication {
        serde_json::from_value(self.api.get(RR.0, RR.1, NS, name).unwrap()).unwrap()
    }

    async fn reconcile(&self, name: &str) -> kube::runtime::controller::Action {
        reconcile(Arc::new(self.rr(name)), self.ctx.clone())
            .await
            .expect("reconcile succeeds")
    }

    /// Plays the StatefulSet controller: pod `<name>-<i>` exists, with `ips[i]` as podIP.
    fn pods(&self, name: &str, ips: &[Option<&str>]) {
        for (i, ip) in ips.iter().enumerate() {
            let pod = format!("{name}-{i}");
            let mut labels = self
                .api
                .get("api/v1", "pods", NS, &pod)
                .map(|p| p["metadata"]["labels"].clone())
                .unwrap_or(json!({}));
            labels["app.kubernetes.io/name"] = json!("tandem");
            labels["app.kubernetes.io/instance"] = json!(name);
            let mut status = json!({"conditions": [{"type": "Ready", "status": "True"}]});
            if let Some(ip) = ip {
                status["podIP"] = json!(ip);
            }
            self.api.put(
                "api/v1",
                "pods",
                NS,
                &pod,
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod, "namespace": NS, "labels": labels},
                    "spec": {"containers": []},
                    "status": status
                }),
            );
        }
    }

    fn role(&self, pod: &str) -> Value {
        self.api.get("api/v1", "pods", NS, pod).unwrap()["metadata"]["labels"]["tandem.dev/role"]
            .clone()
    }

    /// Occurrences of Events with `reason` (the Recorder folds repeats into `series.count`).
    fn event_count(&self, reason: &str) -> u64 {
        self.events(reason)
            .iter()
            .map(|e| e["series"]["count"].as_u64().unwrap_or(1))
            .sum()
    }

    fn events(&self, reason: &str) -> Vec<Value> {
        self.api
            .events()
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .collect()
    }
}

fn servers(n: u8) -> Vec<Srv> {
    loopback_servers::servers("roles", 0, n, PW)
}

#[tokio::test]
async fn pods_without_addresses_are_not_observed_and_status_is_untouched() {
    let w = World::new().await;
    w.create_rr("cache", json!({"replicas": 3}));
    w.reconcile("cache").await;
    w.pods("cache", &[None, None, None]);
    w.reconcile("cache").await;
    let st = w.rr("cache").status.unwrap();
    // The bootstrap rule (pod 0) stands, nothing was promoted or recorded.
    assert_eq!(st.master.as_deref(), Some("cache-0"));
    assert_eq!(st.epoch, 0);
    assert!(st.last_failover.is_none());
    assert!(st.failover_in_progress.is_none());
    assert_eq!(
        (w.role("cache-0"), w.role("cache-1"), w.role("cache-2")),
        (json!("master"), json!("replica"), json!("replica"))
    );
    assert!(w.events("FailoverStarted").is_empty());
    assert!(w
        .ctx
        .metrics
        .encode()
        .contains("tandem_operator_failovers_total 0"));
}

#[tokio::test]
async fn recorded_master_is_followed_by_labels_even_when_pods_are_not_observed() {
    let w = World::new().await;
    w.create_rr("cache", json!({"replicas": 3}));
    w.reconcile("cache").await;
    // A failover happened earlier: status says cache-2.
    let mut v = w.api.get(RR.0, RR.1, NS, "cache").unwrap();
    v["status"]["master"] = json!("cache-2");
    v["status"]["epoch"] = json!(4);
    w.api.put(RR.0, RR.1, NS, "cache", v);
    w.pods("cache", &[None, None, None]);
    w.reconcile("cache").await;
    assert_eq!(
        (w.role("cache-0"), w.role("cache-1"), w.role("cache-2")),
        (json!("replica"), json!("replica"), json!("master"))
    );
    let st = w.rr("cache").status.unwrap();
    assert_eq!(
        st.master.as_deref(),
        Some("cache-2"),
        "status step keeps it"
    );
    assert_eq!(st.epoch, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_master_is_replaced_labels_move_and_the_failover_is_recorded() {
    let mut srv = servers(3);
    let w = World::new().await;
    w.secret("cache");
    w.create_rr(
        "cache",
        json!({"replicas": 3, "failover": {"downAfterSeconds": 1}}),
    );
    w.reconcile("cache").await;
    assert_eq!(
        w.rr("cache").status.unwrap().master.as_deref(),
        Some("cache-0")
    );

    // cache-0 and cache-1 hold data (cache-1 more than nothing), cache-2 is empty.
    for (s, k) in [(&srv[0], "a"), (&srv[1], "b")] {
        let mut c = s.client().await;
        assert_eq!(
            c.call(&["SET", k, "1"]).await.expect("SET"),
            Resp::Simple("OK".into())
        );
    }
    let ips: Vec<String> = srv.iter().map(|s| s.ip.clone()).collect();
    w.pods("cache", &[Some(&ips[0]), Some(&ips[1]), Some(&ips[2])]);

    // Healthy recorded master: the two other masters are repointed under it.
    let action = w.reconcile("cache").await;
    assert_eq!(srv[1].replication("role").await.as_deref(), Some("slave"));
    assert_eq!(srv[2].replication("role").await.as_deref(), Some("slave"));
    assert_eq!(
        srv[2].replication("master_host").await.as_deref(),
        Some("cache-0.cache-headless.prod.svc.cluster.local")
    );
    assert_eq!(w.event_count("ReplicaRepointed"), 2);
    assert!(
        format!("{action:?}").contains("1s"),
        "links not up yet: recheck soon ({action:?})"
    );
    let st = w.rr("cache").status.unwrap();
    assert_eq!((st.master.as_deref(), st.epoch), (Some("cache-0"), 0));

    // The master dies. The first round only notes it.
    srv[0].kill();
    let started = Instant::now();
    w.reconcile("cache").await;
    assert!(w.events("FailoverStarted").is_empty());
    // Then, after downAfterSeconds, cache-1 (the replica with data) takes over.
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no failover within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        w.reconcile("cache").await;
        if w.rr("cache").status.unwrap().master.as_deref() == Some("cache-1") {
            break;
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "within downAfterSeconds + 2 s: {:?}",
        started.elapsed()
    );
    let st = w.rr("cache").status.unwrap();
    assert_eq!(st.epoch, 1);
    assert!(st.failover_in_progress.is_none());
    let lf = st.last_failover.expect("lastFailover");
    assert_eq!((lf.from.as_str(), lf.to.as_str()), ("cache-0", "cache-1"));
    assert!(lf.reason.contains("unreachable"), "{}", lf.reason);
    assert!(lf.duration_ms >= 0);
    assert_eq!(
        (w.role("cache-0"), w.role("cache-1"), w.role("cache-2")),
        (json!("replica"), json!("master"), json!("replica"))
    );
    assert_eq!(srv[1].replication("role").await.as_deref(), Some("master"));
    assert_eq!(
        srv[2].replication("master_host").await.as_deref(),
        Some("cache-1.cache-headless.prod.svc.cluster.local")
    );
    let started_ev = w.events("FailoverStarted");
    assert_eq!(started_ev.len(), 1);
    assert_eq!(started_ev[0]["type"], "Warning");
    assert_eq!(w.event_count("MasterPromoted"), 1);
    assert_eq!(w.event_count("ReplicaRepointed"), 3);
    let m = w.ctx.metrics.encode();
    assert!(m.contains("tandem_operator_failovers_total 1"), "{m}");
    assert!(
        m.contains("tandem_operator_failover_duration_seconds_count 1"),
        "{m}"
    );

    // Stable afterwards: another round changes nothing.
    w.reconcile("cache").await;
    let again = w.rr("cache").status.unwrap();
    assert_eq!((again.master.as_deref(), again.epoch), (Some("cache-1"), 1));
    assert_eq!(w.event_count("MasterPromoted"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_failover_is_resumed_towards_the_recorded_target() {
    let srv = servers(2);
    let w = World::new().await;
    w.secret("cache");
    w.create_rr("cache", json!({"replicas": 2}));
    w.reconcile("cache").await;
    // An earlier operator recorded the intent to promote cache-1 at epoch 3, then died.
    let mut v = w.api.get(RR.0, RR.1, NS, "cache").unwrap();
    v["status"]["master"] = json!("cache-0");
    v["status"]["epoch"] = json!(2);
    v["status"]["failoverInProgress"] = json!({"target": "cache-1", "epoch": 3});
    w.api.put(RR.0, RR.1, NS, "cache", v);
    for s in &srv {
        s.client()
            .await
            .call(&["SET", "k", "v"])
            .await
            .expect("SET");
    }
    // cache-1 already follows nobody (its REPLICAOF NO ONE went through); cache-0 is gone.
    let ips: Vec<String> = srv.iter().map(|s| s.ip.clone()).collect();
    w.pods("cache", &[None, Some(&ips[1])]);
    w.reconcile("cache").await;
    let st = w.rr("cache").status.unwrap();
    assert_eq!((st.master.as_deref(), st.epoch), (Some("cache-1"), 3));
    assert!(st.failover_in_progress.is_none());
    assert_eq!(
        st.last_failover.map(|l| l.reason),
        Some("resuming an interrupted failover".to_string())
    );
    assert_eq!(w.role("cache-1"), json!("master"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_failover_never_promotes_in_place_of_a_dead_master() {
    let mut srv = servers(2);
    let w = World::new().await;
    w.secret("cache");
    w.create_rr(
        "cache",
        json!({"replicas": 2, "failover": {"enabled": false, "downAfterSeconds": 1}}),
    );
    w.reconcile("cache").await;
    for s in &srv {
        s.client()
            .await
            .call(&["SET", "k", "v"])
            .await
            .expect("SET");
    }
    let ips: Vec<String> = srv.iter().map(|s| s.ip.clone()).collect();
    w.pods("cache", &[Some(&ips[0]), Some(&ips[1])]);
    w.reconcile("cache").await;
    srv[0].kill();
    w.reconcile("cache").await;
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.reconcile("cache").await;
    }
    let st = w.rr("cache").status.unwrap();
    assert_eq!((st.master.as_deref(), st.epoch), (Some("cache-0"), 0));
    assert!(w.events("FailoverStarted").is_empty());
    assert_eq!(srv[1].replication("role").await.as_deref(), Some("slave"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_switchover_moves_the_master_and_records_it() {
    use tandem_operator::controller::observe;
    use tandem_operator::failover;

    let srv = servers(3);
    let w = World::new().await;
    w.secret("cache");
    w.create_rr("cache", json!({"replicas": 3}));
    w.reconcile("cache").await;
    // Replication by IP (pod DNS names do not resolve here), as the pods would have it.
    for s in &srv[1..] {
        s.client()
            .await
            .call(&["REPLICAOF", &srv[0].ip, "6379"])
            .await
            .expect("REPLICAOF");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut up = true;
        for s in &srv[1..] {
            up &= s.replication("master_link_status").await.as_deref() == Some("up");
        }
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "replicas did not link up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ips: Vec<String> = srv.iter().map(|s| s.ip.clone()).collect();
    w.pods("cache", &[Some(&ips[0]), Some(&ips[1]), Some(&ips[2])]);
    let mut c0 = srv[0].client().await;
    for i in 0..50 {
        c0.call(&["SET", &format!("k{i}"), "v"]).await.expect("SET");
    }
    w.reconcile("cache").await;
    assert!(w.events("FailoverStarted").is_empty(), "healthy set kept");

    let rr = w.rr("cache");
    let cx = failover::StepContext {
        client: &w.ctx.client,
        recorder: w.ctx.recorder.as_ref(),
        metrics: &w.ctx.metrics,
        memory: &w.ctx.roles,
        cluster_domain: "cluster.local",
        timeouts: Timeouts::default(),
    };
    let observed = observe::observe(&w.ctx.client, &rr).await.expect("observe");
    let model = tandem_operator::model::Validated::from_resource(&rr);
    let outcome = failover::step(&cx, &rr, &model, &observed)
        .await
        .expect("roles step");
    assert_eq!(outcome.master.as_deref(), Some("cache-0"));
    let done =
        failover::planned_switchover(&cx, &rr, &model, &observed, &outcome, "cache-0", "cache-1")
            .await
            .expect("switchover");
    assert_eq!((done.to.as_str(), done.epoch), ("cache-1", 1));

    let st = w.rr("cache").status.unwrap();
    assert_eq!((st.master.as_deref(), st.epoch), (Some("cache-1"), 1));
    assert!(st.failover_in_progress.is_none());
    let lf = st.last_failover.expect("lastFailover");
    assert_eq!(
        (lf.from.as_str(), lf.to.as_str(), lf.reason.as_str()),
        ("cache-0", "cache-1", "planned switchover")
    );
    assert_eq!(
        (w.role("cache-0"), w.role("cache-1"), w.role("cache-2")),
        (json!("replica"), json!("master"), json!("replica"))
    );
    assert_eq!(srv[1].replication("role").await.as_deref(), Some("master"));
    for s in [&srv[0], &srv[2]] {
        assert_eq!(
            s.replication("master_host").await.as_deref(),
            Some("cache-1.cache-headless.prod.svc.cluster.local")
        );
    }
    let mut c1 = srv[1].client().await;
    for i in 0..50 {
        assert_eq!(
            c1.call(&["EXISTS", &format!("k{i}")])
                .await
                .expect("EXISTS"),
            Resp::Int(1),
            "k{i} lost"
        );
    }
    assert_eq!(w.event_count("MasterPromoted"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_assignment_records_epoch_one_without_calling_it_a_failover() {
    let srv = servers(3);
    let w = World::new().await;
    w.secret("cache");
    w.create_rr("cache", json!({"replicas": 3}));
    // Pods already answer on the first reconcile (e.g. status was lost): nothing recorded.
    let ips: Vec<String> = srv.iter().map(|s| s.ip.clone()).collect();
    w.pods("cache", &[Some(&ips[0]), Some(&ips[1]), Some(&ips[2])]);
    w.reconcile("cache").await;
    let st = w.rr("cache").status.unwrap();
    assert_eq!((st.master.as_deref(), st.epoch), (Some("cache-0"), 1));
    assert!(st.last_failover.is_none(), "not a failover");
    assert!(st.failover_in_progress.is_none());
    // One Normal `MasterAssigned`, and no failover Events (issue 20: a new set must not
    // read as failing over from a pod to itself).
    assert!(w.events("FailoverStarted").is_empty());
    assert_eq!(w.event_count("MasterPromoted"), 0);
    let assigned = w.events("MasterAssigned");
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0]["type"], "Normal");
    assert!(w
        .ctx
        .metrics
        .encode()
        .contains("tandem_operator_failovers_total 0"));
    for s in &srv[1..] {
        assert_eq!(
            s.replication("master_host").await.as_deref(),
            Some("cache-0.cache-headless.prod.svc.cluster.local")
        );
    }
    assert_eq!(
        (w.role("cache-0"), w.role("cache-1"), w.role("cache-2")),
        (json!("master"), json!("replica"), json!("replica"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_topology_is_laid_out_and_rebuilt_under_the_new_master() {
    let mut srv = servers(3);
    let w = World::new().await;
    w.secret("line");
    w.create_rr(
        "line",
        json!({"replicas": 3, "replication": {"topology": "chain", "fanout": 1},
               "failover": {"downAfterSeconds": 1}}),
    );
    w.reconcile("line").await;
    // Replicas cannot sync here (DNS), so only line-2 is left empty: line-1 is the best copy.
    for s in &srv[..2] {
        s.client()
            .await
            .call(&["SET", "k", "v"])
            .await
            .expect("SET");
    }
    let ips: Vec<String> = srv.iter().map(|s| s.ip.clone()).collect();
    w.pods("line", &[Some(&ips[0]), Some(&ips[1]), Some(&ips[2])]);
    w.reconcile("line").await;
    let dns = |i: u32| Some(format!("line-{i}.line-headless.prod.svc.cluster.local"));
    assert_eq!(srv[1].replication("master_host").await, dns(0));
    assert_eq!(srv[2].replication("master_host").await, dns(1));

    // line-0 dies: line-1 takes over, and line-2 already follows it.
    srv[0].kill();
    let started = Instant::now();
    loop {
        w.reconcile("line").await;
        if w.rr("line").status.unwrap().master.as_deref() == Some("line-1") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no failover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(srv[1].replication("role").await.as_deref(), Some("master"));
    assert_eq!(srv[2].replication("master_host").await, dns(1));
    assert_eq!(w.rr("line").status.unwrap().epoch, 1);
}

/// A "pod" on 127.X.Y.250:6379 that accepts connections and reads requests but never
/// answers (a paused or hung server: the kernel completes the handshake); the listener and
/// every accepted socket live until the task is aborted.
async fn silent_pod() -> (String, tokio::task::JoinHandle<()>) {
    let pid = std::process::id();
    for attempt in 0..50u32 {
        let ip = format!(
            "127.{}.{}.250",
            10 + (pid + attempt * 11) % 200,
            (pid / 200 + attempt * 17) % 250
        );
        if let Ok(l) = tokio::net::TcpListener::bind((ip.as_str(), 6379)).await {
            let task = tokio::spawn(async move {
                let mut held = Vec::new();
                while let Ok((s, _)) = l.accept().await {
                    held.push(s);
                }
            });
            return (ip, task);
        }
    }
    panic!("no free loopback address for the silent pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_never_answers_is_unreachable_within_a_second_and_delays_no_other_set() {
    let solo = servers(1);
    let (silent_ip, silent) = silent_pod().await;
    let w = World::new().await;
    for name in ["hung", "solo"] {
        w.secret(name);
    }
    w.create_rr(
        "hung",
        json!({"replicas": 2, "failover": {"downAfterSeconds": 5}}),
    );
    w.create_rr("solo", json!({"replicas": 1}));
    w.reconcile("hung").await;
    w.reconcile("solo").await;
    w.pods("hung", &[Some(&silent_ip), None]);
    w.pods("solo", &[Some(&solo[0].ip)]);

    // Both sets reconciled at once (as the controller does): the healthy one is not held
    // up by the probe of the silent pod, and the silent pod costs about one probe timeout.
    let t0 = Instant::now();
    let (hung_done, solo_done) = tokio::join!(
        async {
            w.reconcile("hung").await;
            t0.elapsed()
        },
        async {
            w.reconcile("solo").await;
            t0.elapsed()
        }
    );
    eprintln!("silent set reconciled in {hung_done:?}, healthy set in {solo_done:?}");
    assert!(
        hung_done >= Duration::from_millis(900),
        "the silent pod was given its probe timeout: {hung_done:?}"
    );
    assert!(
        hung_done < Duration::from_millis(2500),
        "one probe timeout (1 s), not one per request: {hung_done:?}"
    );
    assert!(
        solo_done < hung_done,
        "the healthy set waited for the silent one: {solo_done:?} vs {hung_done:?}"
    );
    let hung = w.rr("hung").status.unwrap();
    assert!(
        hung.master_unreachable_since.is_some(),
        "the silent master counts as unreachable: {hung:?}"
    );
    let solo_st = w.rr("solo").status.unwrap();
    assert_eq!(solo_st.master.as_deref(), Some("solo-0"));
    assert!(solo_st.master_unreachable_since.is_none());
    silent.abort();
}
