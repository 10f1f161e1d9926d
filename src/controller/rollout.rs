//! Rollout step: rolling updates without downtime under `updateStrategy: OnDelete`.
//!
//! The StatefulSet controller never restarts a pod on a template change; this step does, one
//! pod per reconcile, and only when the whole set is healthy:
//! 1. replicas not at the StatefulSet's `updateRevision` are deleted one at a time, highest
//!    ordinal first (in a chain the leaves go first); the StatefulSet controller recreates the
//!    pod from the new template, it resumes following its upstream from its `pod-<i>.conf`
//!    (a partial resync from its saved offset when it has persistent storage, else a full
//!    sync), and the next one waits until every pod is Ready and in sync again;
//! 2. when only the master is outdated: a planned switchover to an updated, in-sync replica
//!    (the failover executor's job), after which the old master is an outdated replica and
//!    step 1 deletes it.
//!
//! Nothing happens while a failover is in progress or about to happen (the planner waits, or
//! the epoch moved this round), while a pod is missing, terminating, unready, unreachable or
//! out of sync. A single-pod set cannot avoid downtime: its pod is deleted once Ready (as the
//! StatefulSet controller's own RollingUpdate would; without persistent storage its data
//! goes with it, as before).
//!
//! [`plan_rollout`] is pure and table-tested; [`run_with`] observes, plans and carries one
//! step out.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Preconditions};
use kube::{Api, Client, ResourceExt};

use super::observe::pod_ready;
use super::observe::Observed;
use crate::crd::RedisReplication;
use crate::failover::outcome::RolesOutcome;
use crate::failover::ObservedRole;
use crate::names::ordinal;

/// The label the StatefulSet controller puts on each pod: the revision it was created from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("failed to delete pod {name:?} for a rolling update: {source}")]
    Delete {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What the rollout planner needs of one pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodRevision {
    pub name: String,
    pub ordinal: i32,
    /// Used as a delete precondition, so a pod recreated meanwhile is never deleted by mistake.
    pub uid: Option<String>,
    /// The `controller-revision-hash` label.
    pub revision: Option<String>,
    /// The pod's Ready condition.
    pub ready: bool,
    /// Has a deletion timestamp.
    pub terminating: bool,
}

impl PodRevision {
    /// `None` for a pod that is not `<set>-<ordinal>`.
    pub fn from_pod(set: &str, p: &Pod) -> Option<Self> {
        let name = p.name_any();
        Some(PodRevision {
            ordinal: ordinal(set, &name)?,
            name,
            uid: p.metadata.uid.clone(),
            revision: p.labels().get(REVISION_LABEL).cloned(),
            ready: pod_ready(p),
            terminating: p.metadata.deletion_timestamp.is_some(),
        })
    }
}

/// One rollout decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStep {
    /// Every pod runs the update revision (or there is nothing to compare with yet).
    Nothing,
    /// Delete this (outdated) pod; the StatefulSet controller recreates it.
    DeletePod(String),
    /// Move the master role from `from` (outdated) to `to` (updated and in sync).
    Switchover { from: String, to: String },
    /// Outdated pods exist but none may be replaced now.
    Wait(String),
}

/// Everything [`plan_rollout`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct RolloutInput<'a> {
    /// `spec.replicas`: pods at or beyond it are being scaled away and are ignored.
    pub replicas: i32,
    pub pods: &'a [PodRevision],
    /// `status.updateRevision` of the StatefulSet.
    pub update_revision: Option<&'a str>,
    /// The StatefulSet controller has observed the current StatefulSet generation (else its
    /// `updateRevision` may be stale).
    pub statefulset_current: bool,
    /// `status.epoch` before this reconcile: a different `outcome.epoch` means the roles step
    /// just promoted someone.
    pub recorded_epoch: i64,
    pub outcome: &'a RolesOutcome,
}

/// Why a pod is not "in sync" by the roles step's observation (`None`: in sync, or not
/// observed: then its Ready condition, which the server's `/readyz` makes replication-aware,
/// was already required).
fn out_of_sync(outcome: &RolesOutcome, pod: &str, is_master: bool) -> Option<String> {
    let o = outcome.observations.iter().find(|o| o.name == pod)?;
    if !o.reachable {
        return Some(format!("{pod} is unreachable"));
    }
    match (is_master, o.role) {
        (true, ObservedRole::Master) => None,
        (true, r) => Some(format!("master {pod} reports role {r:?}")),
        (false, ObservedRole::Replica) if o.sync_in_progress => {
            Some(format!("{pod} is in its initial sync"))
        }
        (false, ObservedRole::Replica) if !o.link_up => {
            Some(format!("{pod} has its replication link down"))
        }
        (false, ObservedRole::Replica) => None,
        (false, r) => Some(format!("{pod} reports role {r:?}, not replica")),
    }
}

/// The next rollout step; see the module documentation for the rules.
pub fn plan_rollout(input: &RolloutInput<'_>) -> RolloutStep {
    let Some(update) = input.update_revision else {
        return RolloutStep::Nothing;
    };
    let mut pods: Vec<&PodRevision> = input
        .pods
        .iter()
        .filter(|p| p.ordinal >= 0 && p.ordinal < input.replicas)
        .collect();
    pods.sort_by_key(|p| p.ordinal);
    let outdated: Vec<&PodRevision> = pods
        .iter()
        .copied()
        .filter(|p| p.revision.as_deref() != Some(update))
        .collect();
    if outdated.is_empty() {
        return RolloutStep::Nothing;
    }
    let wait = |s: String| RolloutStep::Wait(s);
    if !input.statefulset_current {
        return wait("the StatefulSet controller has not observed the latest spec yet".into());
    }
    let outcome = input.outcome;
    if let Some(f) = &outcome.failover_in_progress {
        return wait(format!(
            "a failover to {} (epoch {}) is in progress",
            f.target, f.epoch
        ));
    }
    if let Some(w) = &outcome.waiting {
        return wait(format!("the failover planner is waiting ({w})"));
    }
    if outcome.epoch != input.recorded_epoch {
        return wait(format!(
            "a failover just happened (epoch {} -> {})",
            input.recorded_epoch, outcome.epoch
        ));
    }
    let Some(master) = outcome.master.as_deref() else {
        return wait("no master is assigned".into());
    };
    if !pods.iter().any(|p| p.name == master) {
        return wait(format!("the master pod {master} does not exist"));
    }
    if let Some(p) = pods.iter().find(|p| p.terminating) {
        return wait(format!("{} is terminating", p.name));
    }
    if let Some(i) = (0..input.replicas).find(|i| !pods.iter().any(|p| p.ordinal == *i)) {
        return wait(format!("pod with ordinal {i} does not exist yet"));
    }
    if let Some(p) = pods.iter().find(|p| !p.ready) {
        return wait(format!("{} is not ready", p.name));
    }
    if let Some(why) = pods
        .iter()
        .find_map(|p| out_of_sync(outcome, &p.name, p.name == master))
    {
        return wait(why);
    }

    // Replicas first, highest ordinal first.
    if let Some(p) = outdated.iter().rev().find(|p| p.name != master) {
        return RolloutStep::DeletePod(p.name.clone());
    }
    // Only the master is outdated.
    if pods.len() == 1 {
        // Nowhere to move the role: a single pod cannot be updated without downtime.
        return RolloutStep::DeletePod(master.to_string());
    }
    let offset_of = |pod: &str| {
        outcome
            .observations
            .iter()
            .find(|o| o.name == pod && o.reachable)
            .map(|o| o.master_repl_offset)
    };
    // Every pod is in sync here; prefer the copy closest to the master, then the lowest ordinal.
    let target = pods
        .iter()
        .filter(|p| p.name != master && p.revision.as_deref() == Some(update))
        .min_by_key(|p| (std::cmp::Reverse(offset_of(&p.name)), p.ordinal));
    match target {
        Some(t) => RolloutStep::Switchover {
            from: master.to_string(),
            to: t.name.clone(),
        },
        None => wait("no updated replica to switch the master over to".into()),
    }
}

/// What the rollout step found and did this round (the Progressing condition shows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutReport {
    /// Pods (ordinal < replicas) at the update revision.
    pub updated: usize,
    /// `spec.replicas`.
    pub total: usize,
    /// The step taken (or why none was).
    pub step: RolloutStep,
}

impl RolloutReport {
    /// A rolling update is under way (outdated pods remain, or a step was taken now).
    pub fn in_progress(&self) -> bool {
        self.step != RolloutStep::Nothing
    }

    /// For the Progressing condition, e.g. "rolling update: 2/3 pods updated; deleted cache-0".
    pub fn message(&self) -> String {
        let head = format!(
            "rolling update: {}/{} pods updated",
            self.updated, self.total
        );
        match &self.step {
            RolloutStep::Nothing => head,
            RolloutStep::DeletePod(p) => format!("{head}; deleted {p} to recreate it"),
            RolloutStep::Switchover { from, to } => {
                format!("{head}; switched the master over from {from} to {to}")
            }
            RolloutStep::Wait(why) => format!("{head}; waiting: {why}"),
        }
    }
}

/// The planner's input from what the reconcile observed.
pub fn plan_for(
    rr: &RedisReplication,
    observed: &Observed,
    outcome: &RolesOutcome,
) -> (Vec<PodRevision>, RolloutStep, usize) {
    let set = rr.name_any();
    let pods: Vec<PodRevision> = observed
        .pods
        .iter()
        .filter_map(|p| PodRevision::from_pod(&set, p))
        .collect();
    let sts = observed.statefulset.as_ref();
    let sts_status = sts.and_then(|s| s.status.as_ref());
    let update_revision = sts_status.and_then(|s| s.update_revision.as_deref());
    let statefulset_current = sts
        .is_some_and(|s| sts_status.and_then(|st| st.observed_generation) >= s.metadata.generation);
    let input = RolloutInput {
        replicas: rr.spec.replicas,
        pods: &pods,
        update_revision,
        statefulset_current,
        recorded_epoch: rr.status.as_ref().map(|s| s.epoch).unwrap_or(0),
        outcome,
    };
    let updated = match update_revision {
        Some(u) => pods
            .iter()
            .filter(|p| p.ordinal < rr.spec.replicas && p.revision.as_deref() == Some(u))
            .count(),
        None => 0,
    };
    let step = plan_rollout(&input);
    (pods, step, updated)
}

/// Adjusts this round's observations to a switchover just carried out (the roles step
/// records master, epoch and lastFailover): `to` is master, `from` a replica of `to` whose
/// link is not up yet (it is being repointed). Without it the status written this round
/// would report the new master as a replica (Available false) until the next probe.
pub fn observe_switchover(outcome: &mut RolesOutcome, from: &str, to: &str) {
    for o in &mut outcome.observations {
        if o.name == to {
            o.role = ObservedRole::Master;
            o.master_host = None;
            o.link_up = false;
        } else if o.name == from {
            o.role = ObservedRole::Replica;
            o.master_host = Some(to.to_string());
            o.link_up = false;
        }
    }
}

/// Why a planned switchover was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchoverError {
    /// The executor tried and gave up (e.g. the target did not catch up in time); the old
    /// master stays master and the next round tries again.
    #[error("switchover failed: {0}")]
    Failed(String),
}

/// Observes, plans and carries out at most one rollout step. A switchover is carried out by
/// the caller's `switchover(from, to)` (in the reconcile: the roles step's
/// `controller::roles::planned_switchover`, which records the new master and epoch).
pub async fn run_with<F, Fut>(
    client: &Client,
    rr: &RedisReplication,
    observed: &Observed,
    outcome: &RolesOutcome,
    switchover: F,
) -> Result<RolloutReport, RolloutError>
where
    F: FnOnce(String, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), SwitchoverError>>,
{
    let (pods, step, updated) = plan_for(rr, observed, outcome);
    let ns = rr.namespace().unwrap_or_default();
    let step = match step {
        RolloutStep::DeletePod(name) => {
            let uid = pods
                .iter()
                .find(|p| p.name == name)
                .and_then(|p| p.uid.clone());
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let dp = DeleteParams {
                preconditions: uid.map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => {
                    tracing::info!(pod = %name, set = %rr.name_any(), namespace = %ns, "rolling update: deleted outdated pod");
                    RolloutStep::DeletePod(name)
                }
                // Already gone (or replaced: the uid precondition failed): the next round
                // sees the new pod.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                    RolloutStep::Wait(format!("{name} was already deleted or replaced"))
                }
                Err(source) => return Err(RolloutError::Delete { name, source }),
            }
        }
        RolloutStep::Switchover { from, to } => match switchover(from.clone(), to.clone()).await {
            Ok(()) => {
                tracing::info!(from = %from, to = %to, set = %rr.name_any(), namespace = %ns, "rolling update: switched the master over");
                RolloutStep::Switchover { from, to }
            }
            Err(e) => RolloutStep::Wait(format!("{from} is the last outdated pod: {e}")),
        },
        other => other,
    };
    Ok(RolloutReport {
        updated,
        total: usize::try_from(rr.spec.replicas.max(0)).unwrap_or(0),
        step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::PodObservation;

    const NEW: &str = "rev-new";
    const OLD: &str = "rev-old";

    fn pod(ordinal: i32, rev: &str) -> PodRevision {
        PodRevision {
            name: format!("c-{ordinal}"),
            ordinal,
            uid: Some(format!("uid-{ordinal}")),
            revision: Some(rev.to_string()),
            ready: true,
            terminating: false,
        }
    }

    fn obs(ordinal: i32, role: ObservedRole, offset: i64) -> PodObservation {
        PodObservation {
            ordinal: ordinal as u32,
            name: format!("c-{ordinal}"),
            reachable: true,
            role,
            replid: "a".repeat(40),
            replid2: "0".repeat(40),
            second_repl_offset: -1,
            master_repl_offset: offset,
            link_up: role == ObservedRole::Replica,
            master_host: (role == ObservedRole::Replica).then(|| "c-0".to_string()),
            sync_in_progress: false,
            dataset_empty: false,
            epoch: Some(1),
        }
    }

    /// A healthy set of `n` pods, master `m`, all at offset 100.
    fn healthy(n: i32, m: i32) -> RolesOutcome {
        RolesOutcome {
            observations: (0..n)
                .map(|i| {
                    let role = if i == m {
                        ObservedRole::Master
                    } else {
                        ObservedRole::Replica
                    };
                    obs(i, role, 100)
                })
                .collect(),
            master: Some(format!("c-{m}")),
            epoch: 1,
            ..RolesOutcome::default()
        }
    }

    fn plan(pods: &[PodRevision], outcome: &RolesOutcome) -> RolloutStep {
        plan_rollout(&RolloutInput {
            replicas: 3,
            pods,
            update_revision: Some(NEW),
            statefulset_current: true,
            recorded_epoch: 1,
            outcome,
        })
    }

    fn wait_containing(step: RolloutStep, needle: &str) {
        match step {
            RolloutStep::Wait(why) => assert!(why.contains(needle), "{why:?} lacks {needle:?}"),
            other => panic!("expected Wait({needle:?}), got {other:?}"),
        }
    }

    #[test]
    fn nothing_without_an_update_revision_or_when_every_pod_is_current() {
        let pods = [pod(0, OLD), pod(1, OLD), pod(2, OLD)];
        let input = RolloutInput {
            replicas: 3,
            pods: &pods,
            update_revision: None,
            statefulset_current: true,
            recorded_epoch: 1,
            outcome: &healthy(3, 0),
        };
        assert_eq!(plan_rollout(&input), RolloutStep::Nothing);
        let pods = [pod(0, NEW), pod(1, NEW), pod(2, NEW)];
        assert_eq!(plan(&pods, &healthy(3, 0)), RolloutStep::Nothing);
        // Even when unhealthy: nothing to roll.
        let mut pods = pods;
        pods[1].ready = false;
        assert_eq!(plan(&pods, &healthy(3, 0)), RolloutStep::Nothing);
        // A pod being scaled away (ordinal >= replicas) is not rolled.
        let pods = [pod(0, NEW), pod(1, NEW), pod(2, NEW), pod(3, OLD)];
        assert_eq!(plan(&pods, &healthy(3, 0)), RolloutStep::Nothing);
    }

    #[test]
    fn replicas_go_first_highest_ordinal_first_then_a_switchover_then_the_old_master() {
        let out = healthy(3, 0);
        let del = |p: &str| RolloutStep::DeletePod(p.to_string());
        assert_eq!(
            plan(&[pod(0, OLD), pod(1, OLD), pod(2, OLD)], &out),
            del("c-2")
        );
        assert_eq!(
            plan(&[pod(0, OLD), pod(1, OLD), pod(2, NEW)], &out),
            del("c-1")
        );
        assert_eq!(
            plan(&[pod(0, OLD), pod(1, NEW), pod(2, NEW)], &out),
            RolloutStep::Switchover {
                from: "c-0".into(),
                to: "c-1".into()
            }
        );
        // After the switchover c-1 is master and c-0 an outdated replica: delete it.
        assert_eq!(
            plan(&[pod(0, OLD), pod(1, NEW), pod(2, NEW)], &healthy(3, 1)),
            del("c-0")
        );
        // The master is never the first to go, whatever its ordinal.
        assert_eq!(
            plan(&[pod(0, OLD), pod(1, OLD), pod(2, OLD)], &healthy(3, 2)),
            del("c-1")
        );
    }

    #[test]
    fn switchover_target_is_the_updated_replica_closest_to_the_master() {
        let mut out = healthy(3, 0);
        out.observations[1].master_repl_offset = 90;
        out.observations[2].master_repl_offset = 100;
        assert_eq!(
            plan(&[pod(0, OLD), pod(1, NEW), pod(2, NEW)], &out),
            RolloutStep::Switchover {
                from: "c-0".into(),
                to: "c-2".into()
            }
        );
    }

    #[test]
    fn waits_while_anything_is_unhealthy_or_a_failover_is_in_progress() {
        let old = || vec![pod(0, OLD), pod(1, OLD), pod(2, OLD)];

        let mut pods = old();
        pods[0].ready = false;
        wait_containing(plan(&pods, &healthy(3, 0)), "c-0 is not ready");

        let mut pods = old();
        pods[1].terminating = true;
        wait_containing(plan(&pods, &healthy(3, 0)), "c-1 is terminating");

        wait_containing(
            plan(&[pod(0, OLD), pod(2, OLD)], &healthy(3, 0)),
            "ordinal 1 does not exist",
        );

        let mut out = healthy(3, 0);
        out.observations[1].sync_in_progress = true;
        wait_containing(plan(&old(), &out), "c-1 is in its initial sync");

        let mut out = healthy(3, 0);
        out.observations[2].link_up = false;
        wait_containing(plan(&old(), &out), "c-2 has its replication link down");

        let mut out = healthy(3, 0);
        out.observations[2].reachable = false;
        wait_containing(plan(&old(), &out), "c-2 is unreachable");

        let mut out = healthy(3, 0);
        out.observations[0].role = ObservedRole::Fenced;
        wait_containing(plan(&old(), &out), "master c-0 reports role Fenced");

        let mut out = healthy(3, 0);
        out.waiting =
            Some("master c-0 does not answer; failover after 5000ms without an answer".into());
        wait_containing(plan(&old(), &out), "failover planner is waiting");

        let mut out = healthy(3, 0);
        out.failover_in_progress = Some(crate::crd::FailoverInProgressStatus {
            target: "c-1".into(),
            epoch: 2,
        });
        wait_containing(
            plan(&old(), &out),
            "a failover to c-1 (epoch 2) is in progress",
        );

        let mut out = healthy(3, 1);
        out.epoch = 2;
        wait_containing(
            plan(&old(), &out),
            "a failover just happened (epoch 1 -> 2)",
        );

        let mut out = healthy(3, 0);
        out.master = None;
        wait_containing(plan(&old(), &out), "no master");

        let input = RolloutInput {
            replicas: 3,
            pods: &old(),
            update_revision: Some(NEW),
            statefulset_current: false,
            recorded_epoch: 1,
            outcome: &healthy(3, 0),
        };
        wait_containing(plan_rollout(&input), "has not observed");
    }

    #[test]
    fn unprobed_pods_count_as_in_sync_when_ready() {
        let out = RolesOutcome {
            master: Some("c-0".into()),
            epoch: 1,
            ..RolesOutcome::default()
        };
        assert_eq!(
            plan(&[pod(0, OLD), pod(1, OLD), pod(2, OLD)], &out),
            RolloutStep::DeletePod("c-2".into())
        );
    }

    #[test]
    fn a_single_pod_is_replaced_when_ready() {
        let pods = [pod(0, OLD)];
        let input = RolloutInput {
            replicas: 1,
            pods: &pods,
            update_revision: Some(NEW),
            statefulset_current: true,
            recorded_epoch: 1,
            outcome: &healthy(1, 0),
        };
        assert_eq!(plan_rollout(&input), RolloutStep::DeletePod("c-0".into()));
    }

    #[test]
    fn report_message_shows_progress_and_the_step() {
        let r = |step| RolloutReport {
            updated: 2,
            total: 3,
            step,
        };
        assert_eq!(
            r(RolloutStep::DeletePod("c-0".into())).message(),
            "rolling update: 2/3 pods updated; deleted c-0 to recreate it"
        );
        assert_eq!(
            r(RolloutStep::Switchover {
                from: "c-0".into(),
                to: "c-1".into()
            })
            .message(),
            "rolling update: 2/3 pods updated; switched the master over from c-0 to c-1"
        );
        assert!(!r(RolloutStep::Nothing).in_progress());
        assert!(r(RolloutStep::Wait("x".into())).in_progress());
    }

    #[test]
    fn plan_for_reads_revisions_readiness_and_the_statefulset_status() {
        use crate::build::testutil::rr;
        use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
        use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

        let kpod = |name: &str, rev: &str, ready: bool| {
            let mut p = Pod::default();
            p.metadata.name = Some(name.into());
            p.metadata.uid = Some(format!("uid-{name}"));
            p.metadata.labels = Some([(REVISION_LABEL.to_string(), rev.to_string())].into());
            p.status = Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            });
            p
        };
        let mut terminating = kpod("c-1", OLD, true);
        terminating.metadata.deletion_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        ));
        let p = PodRevision::from_pod("c", &terminating).unwrap();
        assert_eq!(
            (p.ordinal, p.revision.as_deref(), p.ready, p.terminating),
            (1, Some(OLD), true, true)
        );
        assert_eq!(p.uid.as_deref(), Some("uid-c-1"));
        assert!(PodRevision::from_pod("c", &kpod("other-1", OLD, true)).is_none());

        let r = rr("c", "ns", serde_json::json!({"replicas": 3}));
        let mut sts = StatefulSet::default();
        sts.metadata.generation = Some(2);
        sts.status = Some(StatefulSetStatus {
            observed_generation: Some(2),
            update_revision: Some(NEW.into()),
            ..StatefulSetStatus::default()
        });
        let observed = Observed {
            statefulset: Some(sts.clone()),
            pods: vec![
                kpod("c-0", OLD, true),
                kpod("c-1", OLD, true),
                kpod("c-2", NEW, true),
            ],
            ..Observed::default()
        };
        let out = RolesOutcome {
            master: Some("c-0".into()),
            ..RolesOutcome::default()
        };
        let (pods, step, updated) = plan_for(&r, &observed, &out);
        assert_eq!(pods.len(), 3);
        assert_eq!(updated, 1);
        assert_eq!(step, RolloutStep::DeletePod("c-1".into()));
        // The StatefulSet controller lags behind the spec: wait for a fresh updateRevision.
        sts.metadata.generation = Some(3);
        let stale = Observed {
            statefulset: Some(sts),
            ..observed
        };
        let (_, step, _) = plan_for(&r, &stale, &out);
        assert!(matches!(step, RolloutStep::Wait(ref w) if w.contains("has not observed")));
    }

    #[test]
    fn a_switchover_done_now_is_reflected_in_the_observations() {
        let mut out = healthy(3, 0);
        observe_switchover(&mut out, "c-0", "c-1");
        let roles: Vec<(ObservedRole, Option<&str>, bool)> = out
            .observations
            .iter()
            .map(|o| (o.role, o.master_host.as_deref(), o.link_up))
            .collect();
        assert_eq!(
            roles,
            [
                (ObservedRole::Replica, Some("c-1"), false),
                (ObservedRole::Master, None, false),
                (ObservedRole::Replica, Some("c-0"), true),
            ]
        );
    }
}
