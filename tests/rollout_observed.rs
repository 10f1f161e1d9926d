//! Status and the rolling update through whole reconciles with the roles step observing real
//! `tandem-server` processes: the in-memory API server (the local mode's API store, tests/common/api.rs) holds the
//! objects, each pod's IP is a loopback address where a server listens on 6379 (the port the
//! roles step connects to). The replicas are pointed at the master's IP beforehand, so their
//! links are really up (pod DNS names do not resolve here).
//! Needs `cargo build -p tandem-server` with the same CARGO_TARGET_DIR.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::api::TestApi;
use common::loopback_servers::{self, Srv};
use serde_json::{json, Value};
use tandem_operator::build::Params;
use tandem_operator::controller::{reconcile, Context};
use tandem_operator::crd::RedisReplication;
use tandem_operator::metrics::Metrics;

const NS: &str = "prod";
const RR: (&str, &str) = ("apis/tandem.dev/v1alpha1", "redisreplications");
const PW: &str = "pw-roll";
const OLD: &str = "cache-rev-old";
const NEW: &str = "cache-rev-new";

fn servers(n: u8) -> Vec<Srv> {
    loopback_servers::servers("rollout", 101, n, PW)
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
        while s.replication("master_link_status").await.as_deref() != Some("up") {
            assert!(Instant::now() < deadline, "replica {} never linked", s.ip);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct World {
    api: TestApi,
    ctx: Arc<Context>,
}

impl World {
    async fn new() -> Self {
        let api = TestApi::start(&[NS]).await;
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
    let w = World::new().await;
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
    srv[2] = Srv::try_start("rollout", &owned[2], PW).expect("restart the replacement's server");
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
    assert_eq!(
        srv[ord].replication("role").await.as_deref(),
        Some("master")
    );
    assert_eq!(srv[0].replication("role").await.as_deref(), Some("slave"));
}
