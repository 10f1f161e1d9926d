//! Rolling updates (updateStrategy OnDelete) through the reconcile driver and the rollout step,
//! against the in-memory API server (the local mode's API store, tests/common/api.rs), playing the StatefulSet
//! controller and the kubelet by hand.

mod common;

use std::sync::Arc;

use common::api::TestApi;
use serde_json::{json, Value};
use tandem_operator::build::Params;
use tandem_operator::controller::observe::Observed;
use tandem_operator::controller::rollout::{self, RolloutStep};
use tandem_operator::controller::status;
use tandem_operator::controller::{reconcile, Context};
use tandem_operator::crd::RedisReplication;
use tandem_operator::failover::RolesOutcome;
use tandem_operator::failover::{ObservedRole, PodObservation};
use tandem_operator::metrics::Metrics;

const NS: &str = "prod";
const RR: (&str, &str) = ("apis/tandem.dev/v1alpha1", "redisreplications");
const OLD: &str = "cache-rev-old";
const NEW: &str = "cache-rev-new";

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

    /// Plays the StatefulSet controller and the kubelet: the StatefulSet's update revision is
    /// `NEW`, pod i exists with revision `revs[i]` and Ready `ready[i]`.
    fn pods(&self, revs: &[&str], ready: &[bool]) {
        let mut sts = self
            .api
            .get("apis/apps/v1", "statefulsets", NS, "cache")
            .unwrap();
        let g = sts["metadata"]["generation"].clone();
        let n = revs.len();
        let updated = revs.iter().filter(|r| **r == NEW).count();
        let ready_n = ready.iter().filter(|r| **r).count();
        sts["status"] = json!({
            "replicas": n, "readyReplicas": ready_n, "updatedReplicas": updated,
            "observedGeneration": g, "currentRevision": OLD, "updateRevision": NEW,
        });
        self.api
            .put("apis/apps/v1", "statefulsets", NS, "cache", sts);
        for (i, (rev, ok)) in revs.iter().zip(ready).enumerate() {
            let name = format!("cache-{i}");
            let role = self.api.get("api/v1", "pods", NS, &name).and_then(|p| {
                p["metadata"]["labels"]["tandem.dev/role"]
                    .as_str()
                    .map(str::to_string)
            });
            let mut labels = json!({
                "app.kubernetes.io/name": "tandem",
                "app.kubernetes.io/instance": "cache",
                "controller-revision-hash": rev,
            });
            if let Some(r) = role {
                labels["tandem.dev/role"] = json!(r);
            }
            self.api.put(
                "api/v1",
                "pods",
                NS,
                &name,
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}-{rev}"), "labels": labels},
                    "spec": {"containers": []},
                    "status": {"conditions": [{"type": "Ready", "status": if *ok { "True" } else { "False" }}]}
                }),
            );
        }
    }

    fn deletions(&self) -> Vec<String> {
        self.api
            .writes()
            .into_iter()
            .filter(|w| w.starts_with("DELETE pods/"))
            .collect()
    }

    fn progressing(&self) -> Value {
        let v = self.api.get(RR.0, RR.1, NS, "cache").unwrap();
        v["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Progressing")
            .cloned()
            .unwrap()
    }

    async fn observed(&self) -> Observed {
        tandem_operator::controller::observe::observe(&self.ctx.client, &self.rr())
            .await
            .unwrap()
    }
}

/// One rollout step as the reconcile runs it, with every pod judged by its Ready condition (a
/// roles outcome without observations: the server's /readyz makes Ready replication-aware),
/// the master and epoch from the status, and no switchover available.
async fn roll(w: &World) -> rollout::RolloutReport {
    let rr = w.rr();
    let outcome = status::unprobed_outcome(&rr);
    step(w, &rr, &w.observed().await, &outcome).await
}

#[tokio::test]
async fn replicas_are_replaced_one_at_a_time_highest_ordinal_first_each_once_ready() {
    let w = World::new().await;
    w.create_rr(json!({"replicas": 3}));
    w.reconcile().await;
    let sts = w
        .api
        .get("apis/apps/v1", "statefulsets", NS, "cache")
        .unwrap();
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");

    // Every pod is outdated and Ready: the highest replica goes first, and only it.
    w.pods(&[OLD, OLD, OLD], &[true, true, true]);
    let r = roll(&w).await;
    assert_eq!(w.deletions(), ["DELETE pods/cache-2"]);
    assert_eq!(
        r.message(),
        "rolling update: 0/3 pods updated; deleted cache-2 to recreate it"
    );

    // Recreated from the new template but not Ready yet (still syncing): nothing else goes.
    w.pods(&[OLD, OLD, NEW], &[true, true, false]);
    let r = roll(&w).await;
    assert_eq!(w.deletions().len(), 1, "{:?}", w.deletions());
    assert_eq!(
        r.message(),
        "rolling update: 1/3 pods updated; waiting: cache-2 is not ready"
    );

    // Ready (in sync): the next replica.
    w.pods(&[OLD, OLD, NEW], &[true, true, true]);
    roll(&w).await;
    assert_eq!(
        w.deletions(),
        ["DELETE pods/cache-2", "DELETE pods/cache-1"]
    );

    // Only the master is left: a planned switchover first, never a plain delete of the master.
    w.pods(&[OLD, NEW, NEW], &[true, true, true]);
    let r = roll(&w).await;
    assert_eq!(w.deletions().len(), 2, "the master is not deleted");
    assert!(
        r.message().starts_with(
            "rolling update: 2/3 pods updated; waiting: cache-0 is the last outdated pod: switchover failed"
        ),
        "{}",
        r.message()
    );
    assert!(r.in_progress());

    // Once every pod is current the rollout is over.
    w.pods(&[NEW, NEW, NEW], &[true, true, true]);
    let r = roll(&w).await;
    assert_eq!(w.deletions().len(), 2);
    assert!(!r.in_progress());
}

#[tokio::test]
async fn nothing_is_deleted_while_a_pod_is_unready() {
    let w = World::new().await;
    w.create_rr(json!({"replicas": 3}));
    w.reconcile().await;
    w.pods(&[OLD, OLD, OLD], &[true, false, true]);
    let r = roll(&w).await;
    assert!(w.deletions().is_empty());
    assert_eq!(
        r.message(),
        "rolling update: 0/3 pods updated; waiting: cache-1 is not ready"
    );
}

#[tokio::test]
async fn through_reconcile_nothing_is_deleted_while_the_pods_cannot_be_observed() {
    // The pods have no address, so the roles step cannot probe them and waits: the rolling
    // update waits too, and says so in the Progressing condition.
    let w = World::new().await;
    w.create_rr(json!({"replicas": 3}));
    w.reconcile().await;
    w.pods(&[OLD, OLD, OLD], &[true, true, true]);
    w.reconcile().await;
    assert!(w.deletions().is_empty(), "{:?}", w.deletions());
    let p = w.progressing();
    assert_eq!(
        (p["status"].as_str(), p["reason"].as_str()),
        (Some("True"), Some("RollingUpdate"))
    );
    assert_eq!(
        p["message"],
        "rolling update: 0/3 pods updated; waiting: the failover planner is waiting (no pod has an address yet)"
    );
}

/// The rollout step with a switchover that must not happen.
async fn step(
    w: &World,
    rr: &RedisReplication,
    observed: &Observed,
    outcome: &RolesOutcome,
) -> rollout::RolloutReport {
    rollout::run_with(&w.ctx.client, rr, observed, outcome, |_, _| async {
        Err(rollout::SwitchoverError::Failed(
            "no switchover expected in this test".into(),
        ))
    })
    .await
    .unwrap()
}

fn obs(i: u32, role: ObservedRole, offset: i64) -> PodObservation {
    PodObservation {
        ordinal: i,
        name: format!("cache-{i}"),
        reachable: true,
        role,
        replid: "b".repeat(40),
        replid2: "0".repeat(40),
        second_repl_offset: -1,
        master_repl_offset: offset,
        link_up: role == ObservedRole::Replica,
        master_host: (role == ObservedRole::Replica).then(|| "cache-1".to_string()),
        sync_in_progress: false,
        dataset_empty: false,
        epoch: Some(2),
    }
}

#[tokio::test]
async fn the_step_follows_the_observed_master_and_waits_for_syncing_replicas() {
    let w = World::new().await;
    w.create_rr(json!({"replicas": 3}));
    w.reconcile().await;
    w.pods(&[OLD, NEW, NEW], &[true, true, true]);
    let rr = w.rr();
    let observed = w.observed().await;
    let mut outcome = RolesOutcome {
        observations: vec![
            obs(0, ObservedRole::Replica, 500),
            obs(1, ObservedRole::Master, 500),
            obs(2, ObservedRole::Replica, 0),
        ],
        master: Some("cache-1".into()),
        epoch: rr.status.as_ref().map(|s| s.epoch).unwrap_or(0),
        ..RolesOutcome::default()
    };
    // cache-2 is still in its initial sync: the old master (now a replica) stays.
    outcome.observations[2].sync_in_progress = true;
    let report = step(&w, &rr, &observed, &outcome).await;
    assert_eq!(
        report.step,
        RolloutStep::Wait("cache-2 is in its initial sync".into())
    );
    assert!(w.deletions().is_empty());

    // In sync: the outdated former master is deleted like any replica.
    outcome.observations[2].sync_in_progress = false;
    outcome.observations[2].master_repl_offset = 500;
    let report = step(&w, &rr, &observed, &outcome).await;
    assert_eq!(report.step, RolloutStep::DeletePod("cache-0".into()));
    assert_eq!((report.updated, report.total), (2, 3));
    assert_eq!(w.deletions(), ["DELETE pods/cache-0"]);

    // A failover under way (the planner waits): nothing, even with outdated pods.
    w.pods(&[OLD, NEW, NEW], &[true, true, true]);
    outcome.waiting =
        Some("master cache-1 does not answer; failover after 5000ms without an answer".into());
    let report = step(&w, &rr, &w.observed().await, &outcome).await;
    assert!(matches!(report.step, RolloutStep::Wait(ref why) if why.contains("failover planner")));
    assert_eq!(w.deletions().len(), 1);
}

#[tokio::test]
async fn an_outdated_master_is_switched_over_first_and_deleted_only_as_a_replica() {
    let w = World::new().await;
    w.create_rr(json!({"replicas": 3}));
    w.reconcile().await;
    w.pods(&[OLD, NEW, NEW], &[true, true, true]);
    let rr = w.rr();
    let epoch = rr.status.as_ref().map(|s| s.epoch).unwrap_or(0);
    let mut outcome = RolesOutcome {
        observations: vec![
            obs(0, ObservedRole::Master, 700),
            obs(1, ObservedRole::Replica, 690),
            obs(2, ObservedRole::Replica, 700),
        ],
        master: Some("cache-0".into()),
        epoch,
        ..RolesOutcome::default()
    };
    let calls = std::sync::Mutex::new(vec![]);
    let report = rollout::run_with(&w.ctx.client, &rr, &w.observed().await, &outcome, |f, t| {
        calls.lock().unwrap().push((f, t));
        async { Ok(()) }
    })
    .await
    .unwrap();
    // The replica closest to the master is the target; nothing is deleted in that round.
    assert_eq!(
        calls.lock().unwrap().clone(),
        [("cache-0".to_string(), "cache-2".to_string())]
    );
    assert_eq!(
        report.step,
        RolloutStep::Switchover {
            from: "cache-0".into(),
            to: "cache-2".into()
        }
    );
    assert!(w.deletions().is_empty());

    // A failed switchover leaves everything as it was and says why.
    let report = rollout::run_with(
        &w.ctx.client,
        &rr,
        &w.observed().await,
        &outcome,
        |_, _| async {
            Err(rollout::SwitchoverError::Failed(
                "cache-2 did not catch up within 5000ms".into(),
            ))
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(report.step, RolloutStep::Wait(ref why) if why.contains("did not catch up")),
        "{report:?}"
    );
    assert!(w.deletions().is_empty());

    // The roles step recorded the move (cache-2 master, epoch + 1, persisted in status):
    // cache-0 is now an outdated replica and goes.
    let mut moved = rr.clone();
    moved.status.get_or_insert_with(Default::default).epoch = epoch + 1;
    moved.status.as_mut().unwrap().master = Some("cache-2".into());
    outcome.master = Some("cache-2".into());
    outcome.epoch = epoch + 1;
    outcome.observations[0].role = ObservedRole::Replica;
    outcome.observations[0].link_up = true;
    outcome.observations[2].role = ObservedRole::Master;
    outcome.observations[2].link_up = false;
    let report = step(&w, &moved, &w.observed().await, &outcome).await;
    assert_eq!(report.step, RolloutStep::DeletePod("cache-0".into()));
    assert_eq!(w.deletions(), ["DELETE pods/cache-0"]);
}
