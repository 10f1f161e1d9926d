//! Status and the rolling update through whole reconciles with the roles step observing real
//! `tandem-server` processes: the in-memory API server (tests/common/fake_api.rs) holds the
//! objects, each pod's IP is a loopback address where a server listens on 6379 (the port the
//! roles step connects to). The replicas are pointed at the master's IP beforehand, so their
//! links are really up (pod DNS names do not resolve here).
//! Needs `cargo build -p tandem-server` with the same CARGO_TARGET_DIR.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::fake_api::FakeApi;
use serde_json::{json, Value};
use tandem_operator::build::Params;
use tandem_operator::controller::{reconcile, Context};
use tandem_operator::crd::RedisReplication;
use tandem_operator::metrics::Metrics;
use tandem_operator::roles::probe::{info_fields, Client, Timeouts};

const NS: &str = "prod";
const RR: (&str, &str) = ("apis/tandem.dev/v1alpha1", "redisreplications");
const PW: &str = "pw-roll";
const OLD: &str = "cache-rev-old";
const NEW: &str = "cache-rev-new";

fn server_bin() -> PathBuf {
    let op = PathBuf::from(env!("CARGO_BIN_EXE_tandem-operator"));
    let bin = op
        .parent()
        .map(|d| d.join("tandem-server"))
        .unwrap_or_default();
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build -p tandem-server` with the same CARGO_TARGET_DIR first",
        bin.display()
    );
    bin
}

/// A tandem-server on `<ip>:6379`; killed and its directory removed on drop.
struct Srv {
    ip: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Srv {
    fn try_start(ip: &str) -> Option<Srv> {
        // Before the directory exists: a missing binary panics with nothing to clean up.
        let bin = server_bin();
        let dir = std::env::temp_dir().join(format!(
            "tandem-rollout-{}-{ip}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).ok()?;
        let spawned = (|| {
            Command::new(&bin)
                .args(["--bind", ip, "--port", "6379", "--dir", dir.to_str()?])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--requirepass", PW, "--masterauth", PW])
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()
        })();
        let Some(child) = spawned else {
            // Never leave the directory of a failed start behind.
            let _ = std::fs::remove_dir_all(&dir);
            return None;
        };
        let mut s = Srv {
            ip: ip.to_string(),
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = s.child.as_mut().map(|c| c.try_wait()) {
                return None; // address in use, most likely
            }
            if std::net::TcpStream::connect((ip, 6379)).is_ok() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn client(&self) -> Client {
        Client::connect(&format!("{}:6379", self.ip), Some(PW), Timeouts::default())
            .await
            .expect("connect")
    }

    async fn field(&self, name: &str) -> Option<String> {
        let text = self.client().await.info("replication").await.expect("INFO");
        info_fields(&text)
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `n` servers on 127.X.Y.1..n, port 6379 (X.Y from the process id, retried on collisions).
fn servers(n: u8) -> Vec<Srv> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let pid = std::process::id();
    for _ in 0..20 {
        let attempt = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let x = 10 + (pid + attempt * 11 + 101) % 200;
        let y = (pid / 200 + attempt * 17 + 3) % 250;
        let mut out = Vec::new();
        for i in 1..=n {
            match Srv::try_start(&format!("127.{x}.{y}.{i}")) {
                Some(s) => out.push(s),
                None => break,
            }
        }
        if out.len() == n as usize {
            return out;
        }
    }
    panic!("could not start {n} servers on loopback addresses");
}

/// Servers 1.. replicate from server 0 by IP; returns once every link is up.
async fn replicate<S: std::borrow::Borrow<Srv>>(srv: &[S]) {
    let srv: Vec<&Srv> = srv.iter().map(|s| s.borrow()).collect();
    for s in &srv[1..] {
        s.client()
            .await
            .call(&["REPLICAOF", srv[0].ip.as_str(), "6379"])
            .await
            .expect("REPLICAOF");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for s in &srv[1..] {
        while s.field("master_link_status").await.as_deref() != Some("up") {
            assert!(Instant::now() < deadline, "replica {} never linked", s.ip);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct World {
    api: FakeApi,
    ctx: Arc<Context>,
}

impl World {
    fn new() -> Self {
        let api = FakeApi::default();
        let ctx = Arc::new(Context {
            client: api.client(),
            params: Params::default(),
            metrics: Arc::new(Metrics::default()),
            recorder: None,
            roles: Default::default(),
        });
        // The password as the roles step reads it from the auth Secret ("pw-roll").
        api.put(
            "api/v1",
            "secrets",
            NS,
            "cache-auth",
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "cache-auth", "namespace": NS},
                "data": {"password": "cHctcm9sbA=="}
            }),
        );
        World { api, ctx }
    }

    fn create_rr(&self, spec: Value) {
        let rr: RedisReplication = serde_json::from_value(json!({
            "apiVersion": "tandem.dev/v1alpha1", "kind": "RedisReplication",
            "metadata": {"name": "cache", "namespace": NS, "uid": "uid-cache", "generation": 1},
            "spec": spec,
        }))
        .unwrap();
        self.api
            .put(RR.0, RR.1, NS, "cache", serde_json::to_value(rr).unwrap());
    }

    fn rr(&self) -> RedisReplication {
        serde_json::from_value(self.api.get(RR.0, RR.1, NS, "cache").unwrap()).unwrap()
    }

    async fn reconcile(&self) {
        reconcile(Arc::new(self.rr()), self.ctx.clone())
            .await
            .expect("reconcile succeeds");
    }

    /// Plays the StatefulSet controller and the kubelet: pod i has `ips[i]`, revision
    /// `revs[i]`, and is Ready; the StatefulSet's update revision is `NEW`.
    fn pods(&self, ips: &[&str], revs: &[&str]) {
        let mut sts = self
            .api
            .get("apis/apps/v1", "statefulsets", NS, "cache")
            .unwrap();
        let g = sts["metadata"]["generation"].clone();
        sts["status"] = json!({
            "replicas": ips.len(), "readyReplicas": ips.len(),
            "updatedReplicas": revs.iter().filter(|r| **r == NEW).count(),
            "observedGeneration": g, "currentRevision": OLD, "updateRevision": NEW,
        });
        self.api
            .put("apis/apps/v1", "statefulsets", NS, "cache", sts);
        for (i, (ip, rev)) in ips.iter().zip(revs).enumerate() {
            let name = format!("cache-{i}");
            let mut labels = self
                .api
                .get("api/v1", "pods", NS, &name)
                .map(|p| p["metadata"]["labels"].clone())
                .unwrap_or(json!({}));
            labels["app.kubernetes.io/name"] = json!("tandem");
            labels["app.kubernetes.io/instance"] = json!("cache");
            labels["controller-revision-hash"] = json!(rev);
            self.api.put(
                "api/v1",
                "pods",
                NS,
                &name,
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": NS, "labels": labels},
                    "spec": {"containers": []},
                    "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}
                }),
            );
        }
    }

    fn condition(&self, type_: &str) -> Value {
        let v = self.api.get(RR.0, RR.1, NS, "cache").unwrap();
        v["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
            .unwrap()
    }

    fn deletions(&self) -> Vec<String> {
        self.api
            .writes()
            .into_iter()
            .filter(|w| w.starts_with("DELETE pods/"))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_set_reports_status_and_rolls_replicas_then_switches_the_master_over() {
    let mut srv = servers(3);
    replicate(&srv).await;
    let owned: Vec<String> = srv.iter().map(|s| s.ip.clone()).collect();
    let ips: Vec<&str> = owned.iter().map(String::as_str).collect();
    let w = World::new();
    w.create_rr(json!({"replicas": 3}));
    w.reconcile().await;
    // Every pod is current: status only.
    w.pods(&ips, &[NEW, NEW, NEW]);
    w.reconcile().await;

    let st = w.rr().status.unwrap();
    assert_eq!(st.master.as_deref(), Some("cache-0"));
    let roles: Vec<(&str, Option<bool>)> = st
        .pods
        .iter()
        .map(|p| (p.role.as_str(), p.link_up))
        .collect();
    assert_eq!(
        roles,
        [
            ("master", None),
            ("replica", Some(true)),
            ("replica", Some(true))
        ]
    );
    assert!(st.pods.iter().all(|p| p.offset.is_some()), "{:?}", st.pods);
    assert!(st.pods[1..].iter().all(|p| p.lag_bytes.is_some()));
    assert_eq!(
        st.pods[1].upstream.as_deref(),
        Some("cache-0.cache-headless.prod.svc.cluster.local")
    );
    assert_eq!(w.condition("Available")["reason"], "MasterAvailable");
    assert_eq!(w.condition("ReplicasInSync")["status"], "True");
    assert_eq!(w.condition("Ready")["status"], "True");
    assert!(w.deletions().is_empty());

    // The template changed: every pod is outdated. The highest replica goes, and only it.
    w.pods(&ips, &[OLD, OLD, OLD]);
    w.reconcile().await;
    assert_eq!(w.deletions(), ["DELETE pods/cache-2"]);
    assert_eq!(
        w.condition("Progressing")["message"],
        "rolling update: 0/3 pods updated; deleted cache-2 to recreate it"
    );

    // Its replacement is up (same address, new revision) but its server does not answer yet:
    // the next replica waits, and the status names the laggard.
    srv[2].kill();
    w.pods(&ips, &[OLD, OLD, NEW]);
    w.reconcile().await;
    assert_eq!(w.deletions().len(), 1, "{:?}", w.deletions());
    assert_eq!(
        w.condition("Progressing")["message"],
        "rolling update: 1/3 pods updated; waiting: cache-2 is unreachable"
    );
    let c = w.condition("ReplicasInSync");
    assert_eq!(c["status"], "False");
    assert_eq!(
        c["message"],
        "1/2 replicas in sync; behind: cache-2 (unreachable)"
    );
    assert_eq!(w.condition("Ready")["reason"], "ReplicasNotInSync");

    // The replacement's server comes up and syncs: the next replica goes.
    srv[2] = Srv::try_start(&owned[2]).expect("restart the replacement's server");
    replicate(&[&srv[0], &srv[2]]).await;
    w.pods(&ips, &[OLD, OLD, NEW]);
    w.reconcile().await;
    assert_eq!(
        w.deletions(),
        ["DELETE pods/cache-2", "DELETE pods/cache-1"]
    );
    assert_eq!(w.condition("ReplicasInSync")["status"], "True");

    // cache-1's replacement is current too (its server kept running): only the master is
    // outdated, so the role moves by a planned switchover; the master pod is not deleted.
    let epoch = w.rr().status.unwrap().epoch;
    w.pods(&ips, &[OLD, NEW, NEW]);
    w.reconcile().await;
    assert_eq!(w.deletions().len(), 2, "the master is not deleted");
    let st = w.rr().status.unwrap();
    let to = st.master.clone().unwrap();
    assert_ne!(to, "cache-0");
    assert_eq!(st.epoch, epoch + 1);
    assert_eq!(
        st.last_failover
            .as_ref()
            .map(|l| (l.from.as_str(), l.to.as_str())),
        Some(("cache-0", to.as_str()))
    );
    assert_eq!(
        w.condition("Progressing")["message"],
        format!("rolling update: 2/3 pods updated; switched the master over from cache-0 to {to}")
    );
    assert_eq!(w.condition("Available")["status"], "True");
    let ord: usize = to.trim_start_matches("cache-").parse().unwrap();
    assert_eq!(srv[ord].field("role").await.as_deref(), Some("master"));
    assert_eq!(srv[0].field("role").await.as_deref(), Some("slave"));
}
