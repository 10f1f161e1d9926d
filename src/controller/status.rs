//! Status step: compute the status from what was observed (pure), then patch it with
//! server-side apply only when it changed, and emit Events only on condition transitions.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};

use super::observe::{pod_failing, pod_ready, pod_running, Observed};
use super::rollout::RolloutReport;
use super::validate::Invalid;
use crate::build::config::planned_upstream_from;
use crate::build::Params;
use crate::crd::{Endpoints, PodReplicationStatus, RedisReplication, RedisReplicationStatus};
use crate::failover::outcome::RolesOutcome;
use crate::failover::{ObservedRole, PodObservation};
use crate::names;
use crate::names::ordinal;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("failed to patch status of {name:?}: {source}")]
    Patch {
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub const PHASE_PROVISIONING: &str = "Provisioning";
pub const PHASE_READY: &str = "Ready";
pub const PHASE_DEGRADED: &str = "Degraded";
pub const PHASE_INVALID: &str = "Invalid";
/// Every phase the status can show (the per-set phase metric has one series each).
pub const PHASES: [&str; 4] = [
    PHASE_PROVISIONING,
    PHASE_READY,
    PHASE_DEGRADED,
    PHASE_INVALID,
];

fn cond(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: now.clone(),
    }
}

/// The outcome to report when the roles step did not probe the pods (it only labels them):
/// the recorded master (else the bootstrap master, pod 0), epoch and last failover carried
/// over from the status, no observations. [`compute`] then judges the pods by their
/// Kubernetes readiness, which the server's `/readyz` makes replication-aware.
pub fn unprobed_outcome(rr: &RedisReplication) -> RolesOutcome {
    RolesOutcome::recorded(&crate::model::Validated::from_resource(rr), rr)
}

/// How one replica stands, for `ReplicasInSync`.
enum Sync {
    InSync,
    /// Not in sync, with a short description ("link down", "initial sync in progress", ...).
    Behind(String),
}

fn role_name(role: ObservedRole) -> &'static str {
    match role {
        ObservedRole::Master => names::ROLE_MASTER,
        ObservedRole::Replica => names::ROLE_REPLICA,
        ObservedRole::Fenced => "fenced",
        ObservedRole::Unknown => "unknown",
        ObservedRole::Busy => "busy",
    }
}

/// The facts every condition is judged from, derived once per [`compute`].
struct View<'a> {
    rr: &'a RedisReplication,
    outcome: &'a RolesOutcome,
    params: &'a Params,
    now: &'a Time,
    name: String,
    ns: String,
    generation: Option<i64>,
    replicas: i32,
    /// Our pods, by ordinal.
    ours: Vec<(i32, &'a Pod)>,
    master_name: String,
    master_ord: Option<i32>,
    statefulset_exists: bool,
    ready_replicas: i32,
    updated: i32,
    /// The StatefulSet controller has seen the StatefulSet's current generation.
    sts_gen_seen: bool,
}

/// A judgement behind a condition: its status, reason and message.
struct Verdict {
    ok: bool,
    reason: &'static str,
    message: String,
}

impl<'a> View<'a> {
    fn new(
        rr: &'a RedisReplication,
        observed: &'a Observed,
        outcome: &'a RolesOutcome,
        params: &'a Params,
        now: &'a Time,
    ) -> Self {
        let name = rr.name_any();
        let sts_status = observed
            .statefulset
            .as_ref()
            .and_then(|s| s.status.as_ref());
        // The recorded master stays recorded while the roles step knows none (it waits):
        // losing it would send restarted pods back to the bootstrap rule. Before any is
        // recorded, the bootstrap master (pod 0) is the one shown; it is Available only once
        // the operator unfenced it (its observation or its /readyz readiness says so).
        let master_name: String = outcome
            .master
            .clone()
            .or_else(|| rr.status.as_ref().and_then(|s| s.master.clone()))
            .unwrap_or_else(|| names::pod(&name, 0));
        let mut ours: Vec<(i32, &Pod)> = observed
            .pods
            .iter()
            .filter_map(|p| Some((ordinal(&name, &p.name_any())?, p)))
            .collect();
        ours.sort_by_key(|(i, _)| *i);
        View {
            rr,
            outcome,
            params,
            now,
            ns: rr.namespace().unwrap_or_default(),
            generation: rr.meta().generation,
            replicas: rr.spec.replicas,
            ours,
            master_ord: ordinal(&name, &master_name),
            master_name,
            statefulset_exists: observed.statefulset.is_some(),
            ready_replicas: sts_status.and_then(|s| s.ready_replicas).unwrap_or(0),
            updated: sts_status.and_then(|s| s.updated_replicas).unwrap_or(0),
            sts_gen_seen: observed
                .statefulset
                .as_ref()
                .map(|s| {
                    s.status.as_ref().and_then(|st| st.observed_generation) >= s.metadata.generation
                })
                .unwrap_or(false),
            name,
        }
    }

    fn obs_of(&self, pod: &str) -> Option<&'a PodObservation> {
        self.outcome.observations.iter().find(|o| o.name == pod)
    }

    /// The master's observation when it answers as master.
    fn master_obs(&self) -> Option<&'a PodObservation> {
        self.obs_of(&self.master_name)
            .filter(|o| o.reachable && o.role == ObservedRole::Master)
    }

    fn pod_dns(&self, ordinal: i32) -> String {
        names::pod_dns(&self.name, &self.ns, &self.params.cluster_domain, ordinal)
    }

    fn dns_of(&self, host: &str) -> String {
        match ordinal(&self.name, host) {
            Some(i) => self.pod_dns(i),
            None => host.to_string(),
        }
    }

    fn cond(&self, type_: &str, ok: bool, reason: &str, message: String) -> Condition {
        cond(type_, ok, reason, message, self.generation, self.now)
    }

    /// Every pod that should exist is ready (pods beyond `replicas` are being scaled away and
    /// do not count).
    fn all_ready(&self) -> bool {
        self.ready_replicas >= self.replicas
            && self
                .ours
                .iter()
                .filter(|(i, _)| *i < self.replicas)
                .all(|(_, p)| pod_ready(p))
    }
}

/// `status.pods[]`: what each pod answered, or (not probed) what the operator planned.
fn pod_statuses(v: &View<'_>) -> Vec<PodReplicationStatus> {
    let master_obs = v.master_obs();
    v.ours
        .iter()
        .map(|(ord, p)| {
            let pn = p.name_any();
            let mut st = PodReplicationStatus {
                ready: pod_ready(p),
                name: pn.clone(),
                ..PodReplicationStatus::default()
            };
            match v.obs_of(&pn) {
                Some(o) if o.reachable => {
                    st.role = role_name(o.role).to_string();
                    st.offset = Some(o.master_repl_offset);
                    if o.role == ObservedRole::Replica {
                        st.link_up = Some(o.link_up);
                        st.upstream = o.master_host.as_deref().map(|h| v.dns_of(h));
                        st.lag_bytes = master_obs
                            .map(|m| (m.master_repl_offset - o.master_repl_offset).max(0));
                    }
                }
                Some(_) => st.role = "unknown".to_string(),
                None => {
                    // Not probed: the role and upstream the operator planned.
                    st.role = if v.master_name == pn {
                        names::ROLE_MASTER
                    } else {
                        names::ROLE_REPLICA
                    }
                    .to_string();
                    st.upstream = planned_upstream_from(&v.rr.spec, &v.name, v.master_ord, *ord)
                        .map(|u| v.pod_dns(u));
                }
            }
            st
        })
        .collect()
}

/// `Available`: the recorded master answers as a writable (unfenced) master.
fn available(v: &View<'_>) -> Verdict {
    let m = v.master_name.as_str();
    let master_pod = v
        .ours
        .iter()
        .find(|(_, p)| p.name_any() == m)
        .map(|(_, p)| *p);
    let (ok, reason, message) = match (master_pod, v.obs_of(m)) {
        (None, _) => (
            false,
            "MasterPodMissing",
            format!("master pod {m} does not exist"),
        ),
        (Some(_), Some(o)) if !o.reachable => (
            false,
            "MasterUnreachable",
            format!("master {m} does not answer"),
        ),
        (Some(_), Some(o)) => match o.role {
            ObservedRole::Master => (
                true,
                "MasterAvailable",
                format!("{m} is master and accepts writes"),
            ),
            ObservedRole::Fenced => (
                false,
                "MasterFenced",
                format!("{m} started fenced and has no role assigned yet"),
            ),
            ObservedRole::Busy => (
                false,
                "MasterBusy",
                format!("{m} is running a script past busy-reply-threshold and answers BUSY"),
            ),
            r => (
                false,
                "MasterLostRole",
                format!("{m} reports role {}", role_name(r)),
            ),
        },
        // Not probed: its readiness (/readyz: an unfenced master) stands in.
        (Some(p), None) if pod_ready(p) => (true, "MasterReady", format!("{m} is ready")),
        (Some(_), None) => (false, "MasterNotReady", format!("{m} is not ready")),
    };
    let message = match (&v.outcome.waiting, ok) {
        (Some(w), false) => format!("{message}; the roles step waits: {w}"),
        _ => message,
    };
    Verdict {
        ok,
        reason,
        message,
    }
}

/// How replica `pn` (pod `pod`, if it exists) stands.
fn replica_sync(v: &View<'_>, pn: &str, pod: Option<&Pod>) -> Sync {
    match (pod, v.obs_of(pn)) {
        (None, _) => Sync::Behind("no pod".to_string()),
        (Some(_), Some(o)) if !o.reachable => Sync::Behind("unreachable".to_string()),
        (Some(_), Some(o)) => {
            let lag = v
                .master_obs()
                .map(|m| {
                    format!(
                        ", lag {} bytes",
                        (m.master_repl_offset - o.master_repl_offset).max(0)
                    )
                })
                .unwrap_or_default();
            match o.role {
                ObservedRole::Replica if o.sync_in_progress => {
                    Sync::Behind(format!("initial sync in progress{lag}"))
                }
                ObservedRole::Replica if !o.link_up => Sync::Behind(format!("link down{lag}")),
                ObservedRole::Replica => Sync::InSync,
                r => Sync::Behind(format!("role {}", role_name(r))),
            }
        }
        (Some(p), None) if pod_ready(p) => Sync::InSync,
        (Some(_), None) => Sync::Behind("not ready".to_string()),
    }
}

/// `ReplicasInSync`: every replica that should exist has its link up and its initial sync
/// done. Scaled-down pods still running (ordinal >= replicas) are not counted.
fn replicas_in_sync(v: &View<'_>) -> Verdict {
    let mut behind: Vec<(String, String)> = vec![];
    let mut expected = 0usize;
    for i in 0..v.replicas.max(1) {
        let pn = names::pod(&v.name, i);
        if v.master_name == pn {
            continue;
        }
        expected += 1;
        let pod = v.ours.iter().find(|(o, _)| *o == i).map(|(_, p)| *p);
        if let Sync::Behind(why) = replica_sync(v, &pn, pod) {
            behind.push((pn, why));
        }
    }
    if expected == 0 {
        return Verdict {
            ok: true,
            reason: "NoReplicas",
            message: "no replicas configured".to_string(),
        };
    }
    if behind.is_empty() {
        return Verdict {
            ok: true,
            reason: "AllReplicasInSync",
            message: format!("{expected}/{expected} replicas in sync"),
        };
    }
    let list: Vec<String> = behind
        .iter()
        .map(|(p, why)| format!("{p} ({why})"))
        .collect();
    Verdict {
        ok: false,
        reason: "ReplicasLagging",
        message: format!(
            "{}/{expected} replicas in sync; behind: {}",
            expected - behind.len(),
            list.join(", ")
        ),
    }
}

/// What makes the set `Degraded`: a pod that should answer does not, a container keeps
/// failing, or the planner waits once the set has had a master (waiting during the first
/// start is provisioning).
fn problems(v: &View<'_>) -> Vec<(&'static str, String)> {
    let mut problems: Vec<(&'static str, String)> = vec![];
    for (_, p) in &v.ours {
        let pn = p.name_any();
        if let Some(why) = pod_failing(p) {
            problems.push(("PodFailing", format!("{pn}: {why}")));
        } else if v.obs_of(&pn).is_some_and(|o| !o.reachable)
            && pod_running(p)
            && !starting(p, v.now)
        {
            problems.push(("PodUnreachable", format!("{pn} does not answer")));
        }
    }
    // epoch > 0: the operator has promoted a master at least once.
    if let (Some(w), true) = (&v.outcome.waiting, v.outcome.epoch > 0) {
        problems.push(("FailoverWaiting", w.clone()));
    }
    problems
}

/// How long a pod whose server has not answered yet, and which Kubernetes never saw ready
/// since its container started, counts as still starting (provisioning, not a problem).
const STARTUP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The pod is coming up: not Ready, and every container started less than
/// [`STARTUP_GRACE`] ago. A server that does not answer then is not yet a problem.
fn starting(p: &Pod, now: &Time) -> bool {
    if pod_ready(p) {
        return false;
    }
    let Some(statuses) = p
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
    else {
        return true;
    };
    statuses.iter().all(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .is_some_and(|t| {
                now.0
                    .duration_since(t.0)
                    .try_into()
                    .is_ok_and(|d: std::time::Duration| d < STARTUP_GRACE)
            })
    })
}

/// `Ready`: available, every pod ready and every replica in sync; the reason names the first
/// that is not.
fn ready_condition(v: &View<'_>, available: &Verdict, in_sync: &Verdict) -> Condition {
    let ready_msg = format!("{}/{} pods ready", v.ready_replicas, v.replicas);
    if !v.all_ready() {
        v.cond("Ready", false, "ReplicasNotReady", ready_msg)
    } else if !available.ok {
        v.cond(
            "Ready",
            false,
            "MasterUnavailable",
            available.message.clone(),
        )
    } else if !in_sync.ok {
        v.cond("Ready", false, "ReplicasNotInSync", in_sync.message.clone())
    } else {
        v.cond("Ready", true, "AllReplicasReady", ready_msg)
    }
}

fn degraded_condition(v: &View<'_>, problems: &[(&'static str, String)]) -> Condition {
    match problems.first() {
        Some((reason, _)) => v.cond(
            "Degraded",
            true,
            reason,
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        None => v.cond(
            "Degraded",
            false,
            "AsExpected",
            "no problem detected".to_string(),
        ),
    }
}

/// `Progressing`: a rolling update of ours, or the StatefulSet still rolling pods out.
fn progressing_condition(v: &View<'_>, rollout: Option<&RolloutReport>) -> Condition {
    if let Some(r) = rollout.filter(|r| r.in_progress()) {
        return v.cond("Progressing", true, "RollingUpdate", r.message());
    }
    let rolling =
        !v.statefulset_exists || !v.sts_gen_seen || v.updated < v.replicas || !v.all_ready();
    if rolling {
        v.cond(
            "Progressing",
            true,
            "RollingOut",
            format!(
                "{}/{} pods updated, {} ready",
                v.updated, v.replicas, v.ready_replicas
            ),
        )
    } else {
        v.cond(
            "Progressing",
            false,
            "Reconciled",
            "all pods run the current spec".to_string(),
        )
    }
}

/// Ready, Degraded and Progressing of an invalid resource, and its phase.
fn invalid_conditions(v: &View<'_>, inv: &Invalid) -> [Condition; 3] {
    [
        v.cond("Ready", false, inv.reason(), inv.to_string()),
        v.cond("Degraded", true, inv.reason(), inv.to_string()),
        v.cond(
            "Progressing",
            false,
            inv.reason(),
            "waiting for the spec or the Secret to be fixed".to_string(),
        ),
    ]
}

/// Conditions whose status did not change keep their previous transition time.
fn keep_transition_times(previous: &[Condition], conditions: Vec<Condition>) -> Vec<Condition> {
    conditions
        .into_iter()
        .map(|mut c| {
            if let Some(old) = previous.iter().find(|o| o.type_ == c.type_) {
                if old.status == c.status {
                    c.last_transition_time = old.last_transition_time.clone();
                }
            }
            c
        })
        .collect()
}

/// The status the resource should show. `now` is only used for conditions whose status
/// changed; unchanged conditions keep their transition time so an unchanged world yields an
/// identical status (and no write).
///
/// `outcome` is what the roles step saw and decided (per-pod observations over RESP, master,
/// epoch, last failover, why the planner waits); a pod without an observation is judged by its
/// Kubernetes readiness. `rollout` is what the rolling-update step found this round.
pub fn compute(
    rr: &RedisReplication,
    observed: &Observed,
    invalid: Option<&Invalid>,
    outcome: &RolesOutcome,
    rollout: Option<&RolloutReport>,
    params: &Params,
    now: Time,
) -> RedisReplicationStatus {
    let v = View::new(rr, observed, outcome, params, &now);
    let avail = available(&v);
    let in_sync = replicas_in_sync(&v);
    let (ready_c, degraded_c, progressing_c, phase) = match invalid {
        Some(inv) => {
            let [r, d, p] = invalid_conditions(&v, inv);
            let phase = match inv.reason() {
                "InvalidSpec" => PHASE_INVALID,
                _ => PHASE_DEGRADED,
            };
            (r, d, p, phase)
        }
        None => {
            let problems = problems(&v);
            let ready = avail.ok && v.all_ready() && in_sync.ok;
            let phase = if ready {
                PHASE_READY
            } else if !problems.is_empty() {
                PHASE_DEGRADED
            } else {
                PHASE_PROVISIONING
            };
            (
                ready_condition(&v, &avail, &in_sync),
                degraded_condition(&v, &problems),
                progressing_condition(&v, rollout),
                phase,
            )
        }
    };
    let available_c = v.cond("Available", avail.ok, avail.reason, avail.message);
    let in_sync_c = v.cond(
        "ReplicasInSync",
        in_sync.ok,
        in_sync.reason,
        in_sync.message,
    );
    let previous = rr.status.clone().unwrap_or_default();
    let conditions = keep_transition_times(
        &previous.conditions,
        vec![ready_c, available_c, in_sync_c, progressing_c, degraded_c],
    );
    RedisReplicationStatus {
        observed_generation: v.generation,
        phase: Some(phase.to_string()),
        pods: pod_statuses(&v),
        epoch: outcome.epoch,
        ready_replicas: v.ready_replicas,
        failover_in_progress: outcome.failover_in_progress.clone(),
        last_failover: outcome.last_failover.clone(),
        master_unreachable_since: outcome.master_unreachable_since.and_then(|t| {
            k8s_openapi::jiff::Timestamp::try_from(t)
                .ok()
                .map(|t| t.to_string())
        }),
        endpoints: Some(endpoints(&v)),
        master: Some(v.master_name),
        conditions,
        // Filled by `tls_status::apply` (kept as is when it does not run).
        tls: previous.tls,
    }
}

/// Client endpoints: `<service DNS>:<port>` of the master, replicas and headless Services.
fn endpoints(v: &View<'_>) -> Endpoints {
    let svc = |s: String| {
        format!(
            "{}:{}",
            names::service_dns(&s, &v.ns, &v.params.cluster_domain),
            names::PORT
        )
    };
    Endpoints {
        master: svc(names::master_service(&v.name)),
        replicas: svc(names::replicas_service(&v.name)),
        headless: svc(names::headless_service(&v.name)),
    }
}

/// Conditions whose status differs from the previous status (new ones count as transitions).
pub fn transitions<'a>(
    old: &RedisReplicationStatus,
    new: &'a RedisReplicationStatus,
) -> Vec<&'a Condition> {
    new.conditions
        .iter()
        .filter(|c| {
            !old.conditions
                .iter()
                .any(|o| o.type_ == c.type_ && o.status == c.status && o.reason == c.reason)
        })
        .collect()
}

/// Writes `status` if it differs from what the resource shows; publishes Events for transitions.
pub async fn write(
    client: &Client,
    recorder: Option<&Recorder>,
    rr: &RedisReplication,
    status: RedisReplicationStatus,
) -> Result<(), StatusError> {
    let old = rr.status.clone().unwrap_or_default();
    if old == status {
        return Ok(());
    }
    let name = rr.name_any();
    let api: Api<RedisReplication> =
        Api::namespaced(client.clone(), &rr.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": RedisReplication::api_version(&()),
        "kind": RedisReplication::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(names::FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| StatusError::Patch {
        name: name.clone(),
        source,
    })?;
    if let Some(recorder) = recorder {
        let reference = rr.object_ref(&());
        for c in transitions(&old, &status) {
            // Only the interesting transitions: becoming Ready / Available, becoming Degraded,
            // or losing Ready / Available (not merely "not ready yet" on creation).
            let was_true = old
                .conditions
                .iter()
                .any(|o| o.type_ == c.type_ && o.status == "True");
            let warn = (c.type_ == "Degraded" && c.status == "True")
                || ((c.type_ == "Ready" || c.type_ == "Available")
                    && c.status == "False"
                    && was_true);
            let interesting =
                warn || ((c.type_ == "Ready" || c.type_ == "Available") && c.status == "True");
            if !interesting {
                continue;
            }
            let ev = Event {
                type_: if warn {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: c.reason.clone(),
                note: Some(format!("{}={}: {}", c.type_, c.status, c.message)),
                action: "Reconcile".to_string(),
                secondary: None,
            };
            // Events are best effort: a failed Event must not fail the reconcile.
            if let Err(e) = recorder.publish(&ev, &reference).await {
                tracing::warn!(error = %e, name = %name, "failed to publish event");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use crate::failover::PodObservation;
    use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use serde_json::json;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn pod(name: &str, ready: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        p
    }

    fn sts(ready: i32, updated: i32) -> StatefulSet {
        let mut s = StatefulSet::default();
        s.metadata.generation = Some(1);
        s.status = Some(StatefulSetStatus {
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            observed_generation: Some(1),
            ..StatefulSetStatus::default()
        });
        s
    }

    fn find<'a>(s: &'a RedisReplicationStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn all_pods_ready_gives_ready_phase_and_conditions() {
        let r = rr("c", "ns", json!({"replicas": 2}));
        let obs = Observed {
            statefulset: Some(sts(2, 2)),
            pods: vec![pod("c-0", true), pod("c-1", true)],
            ..Observed::default()
        };
        let s = compute(
            &r,
            &obs,
            None,
            &unprobed_outcome(&r),
            None,
            &Params::default(),
            now(),
        );
        assert_eq!(s.phase.as_deref(), Some("Ready"));
        assert_eq!(s.ready_replicas, 2);
        assert_eq!(s.master.as_deref(), Some("c-0"));
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(find(&s, "Ready").status, "True");
        assert_eq!(find(&s, "Available").status, "True");
        assert_eq!(find(&s, "Progressing").status, "False");
        assert_eq!(find(&s, "Degraded").status, "False");
        assert_eq!(
            s.pods[1].upstream.as_deref(),
            Some("c-0.c-headless.ns.svc.cluster.local")
        );
        assert_eq!(
            s.endpoints.unwrap().master,
            "c-master.ns.svc.cluster.local:6379"
        );
    }

    #[test]
    fn partial_readiness_is_provisioning_and_progressing() {
        let r = rr("c", "ns", json!({"replicas": 3}));
        let obs = Observed {
            statefulset: Some(sts(1, 3)),
            pods: vec![pod("c-0", true), pod("c-1", false)],
            ..Observed::default()
        };
        let s = compute(
            &r,
            &obs,
            None,
            &unprobed_outcome(&r),
            None,
            &Params::default(),
            now(),
        );
        assert_eq!(s.phase.as_deref(), Some("Provisioning"));
        assert_eq!(find(&s, "Ready").reason, "ReplicasNotReady");
        assert_eq!(find(&s, "Ready").message, "1/3 pods ready");
        assert_eq!(find(&s, "Progressing").status, "True");
        assert_eq!(find(&s, "Available").status, "True");
    }

    #[test]
    fn invalid_spec_is_reported_as_degraded_with_reason_and_message() {
        let r = rr("c", "ns", json!({}));
        let inv = Invalid::SecretKeyMissing {
            secret: "x".into(),
            key: "password".into(),
        };
        let s = compute(
            &r,
            &Observed::default(),
            Some(&inv),
            &unprobed_outcome(&r),
            None,
            &Params::default(),
            now(),
        );
        let d = find(&s, "Degraded");
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "SecretNotFound")
        );
        assert_eq!(d.message, "secret \"x\" has no key \"password\"");
        assert_eq!(s.phase.as_deref(), Some("Degraded"));
    }

    #[test]
    fn unchanged_world_gives_identical_status_and_no_transitions() {
        let mut r = rr("c", "ns", json!({"replicas": 1}));
        let obs = Observed {
            statefulset: Some(sts(1, 1)),
            pods: vec![pod("c-0", true)],
            ..Observed::default()
        };
        let first = compute(
            &r,
            &obs,
            None,
            &unprobed_outcome(&r),
            None,
            &Params::default(),
            now(),
        );
        r.status = Some(first.clone());
        let later = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_999).unwrap());
        let second = compute(
            &r,
            &obs,
            None,
            &unprobed_outcome(&r),
            None,
            &Params::default(),
            later,
        );
        assert_eq!(first, second);
        assert!(transitions(&first, &second).is_empty());
        assert_eq!(
            transitions(&RedisReplicationStatus::default(), &first).len(),
            5
        );
    }

    // ---- Table tests over observed roles (RolesOutcome) ----

    fn obs(name: &str, role: ObservedRole, offset: i64) -> PodObservation {
        PodObservation {
            ordinal: ordinal("c", name).unwrap() as u32,
            name: name.to_string(),
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

    fn unreachable(name: &str) -> PodObservation {
        PodObservation {
            reachable: false,
            link_up: false,
            master_host: None,
            ..obs(name, ObservedRole::Unknown, 0)
        }
    }

    fn outcome(master: Option<&str>, observations: Vec<PodObservation>) -> RolesOutcome {
        RolesOutcome {
            observations,
            master: master.map(str::to_string),
            epoch: 1,
            ..RolesOutcome::default()
        }
    }

    fn running(mut p: Pod) -> Pod {
        use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning, ContainerStatus};
        p.status
            .get_or_insert_with(Default::default)
            .container_statuses = Some(vec![ContainerStatus {
            name: "server".into(),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]);
        p
    }

    fn three_ready() -> Observed {
        Observed {
            statefulset: Some(sts(3, 3)),
            pods: vec![pod("c-0", true), pod("c-1", true), pod("c-2", true)],
            ..Observed::default()
        }
    }

    fn run(o: &Observed, out: &RolesOutcome) -> RedisReplicationStatus {
        let r = rr("c", "ns", json!({"replicas": 3}));
        compute(&r, o, None, out, None, &Params::default(), now())
    }

    /// (status, reason) of a condition.
    fn sr(s: &RedisReplicationStatus, t: &str) -> (String, String) {
        let c = find(s, t);
        (c.status.clone(), c.reason.clone())
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn healthy_observed_set_is_available_in_sync_and_ready_with_lag_per_pod() {
        let out = outcome(
            Some("c-0"),
            vec![
                obs("c-0", ObservedRole::Master, 1000),
                obs("c-1", ObservedRole::Replica, 1000),
                obs("c-2", ObservedRole::Replica, 900),
            ],
        );
        let s = run(&three_ready(), &out);
        assert_eq!(sr(&s, "Available"), pair("True", "MasterAvailable"));
        assert_eq!(sr(&s, "ReplicasInSync"), pair("True", "AllReplicasInSync"));
        assert_eq!(find(&s, "ReplicasInSync").message, "2/2 replicas in sync");
        assert_eq!(sr(&s, "Ready"), pair("True", "AllReplicasReady"));
        assert_eq!(sr(&s, "Degraded"), pair("False", "AsExpected"));
        assert_eq!(s.phase.as_deref(), Some("Ready"));
        type Row<'a> = (&'a str, &'a str, Option<bool>, Option<i64>, Option<i64>);
        let p: Vec<Row> = s
            .pods
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.role.as_str(),
                    p.link_up,
                    p.offset,
                    p.lag_bytes,
                )
            })
            .collect();
        assert_eq!(
            p,
            [
                ("c-0", "master", None, Some(1000), None),
                ("c-1", "replica", Some(true), Some(1000), Some(0)),
                ("c-2", "replica", Some(true), Some(900), Some(100)),
            ]
        );
        assert_eq!(s.pods[0].upstream, None);
        assert_eq!(
            s.pods[2].upstream.as_deref(),
            Some("c-0.c-headless.ns.svc.cluster.local")
        );
        assert_eq!((s.master.as_deref(), s.epoch), (Some("c-0"), 1));
    }

    #[test]
    fn availability_table() {
        let replicas = || {
            vec![
                obs("c-1", ObservedRole::Replica, 10),
                obs("c-2", ObservedRole::Replica, 10),
            ]
        };
        let with = |m: PodObservation| {
            let mut v = vec![m];
            v.extend(replicas());
            v
        };
        let cases: Vec<(&str, RolesOutcome, (&str, &str))> = vec![
            (
                "writable master",
                outcome(Some("c-0"), with(obs("c-0", ObservedRole::Master, 10))),
                ("True", "MasterAvailable"),
            ),
            (
                "fenced master",
                outcome(Some("c-0"), with(obs("c-0", ObservedRole::Fenced, 10))),
                ("False", "MasterFenced"),
            ),
            (
                "master reports replica",
                outcome(Some("c-0"), with(obs("c-0", ObservedRole::Replica, 10))),
                ("False", "MasterLostRole"),
            ),
            (
                "master unreachable",
                outcome(Some("c-0"), with(unreachable("c-0"))),
                ("False", "MasterUnreachable"),
            ),
            (
                "none recorded yet: pod 0, still fenced",
                outcome(None, with(obs("c-0", ObservedRole::Fenced, 0))),
                ("False", "MasterFenced"),
            ),
            (
                "master pod gone",
                outcome(Some("c-7"), with(obs("c-0", ObservedRole::Master, 10))),
                ("False", "MasterPodMissing"),
            ),
        ];
        for (what, out, want) in cases {
            let s = run(&three_ready(), &out);
            assert_eq!(sr(&s, "Available"), pair(want.0, want.1), "{what}");
            if want.0 == "False" {
                assert_eq!(
                    find(&s, "Ready").status,
                    "False",
                    "{what}: Ready needs Available"
                );
                assert_ne!(s.phase.as_deref(), Some("Ready"), "{what}");
            }
        }
    }

    #[test]
    fn replicas_in_sync_table_lists_laggards_with_their_lag() {
        let master = || obs("c-0", ObservedRole::Master, 5000);
        let mut link_down = obs("c-1", ObservedRole::Replica, 4000);
        link_down.link_up = false;
        let mut syncing = obs("c-2", ObservedRole::Replica, 0);
        syncing.sync_in_progress = true;
        let cases: Vec<(&str, Vec<PodObservation>, &str, &str)> = vec![
            (
                "link down and syncing",
                vec![master(), link_down.clone(), syncing.clone()],
                "False",
                "0/2 replicas in sync; behind: c-1 (link down, lag 1000 bytes), c-2 (initial sync in progress, lag 5000 bytes)",
            ),
            (
                "one unreachable",
                vec![master(), obs("c-1", ObservedRole::Replica, 5000), unreachable("c-2")],
                "False",
                "1/2 replicas in sync; behind: c-2 (unreachable)",
            ),
            (
                "a replica still fenced",
                vec![master(), obs("c-1", ObservedRole::Replica, 5000), obs("c-2", ObservedRole::Fenced, 0)],
                "False",
                "1/2 replicas in sync; behind: c-2 (role fenced)",
            ),
            (
                "all up",
                vec![master(), obs("c-1", ObservedRole::Replica, 4990), obs("c-2", ObservedRole::Replica, 5000)],
                "True",
                "2/2 replicas in sync",
            ),
        ];
        for (what, v, status, msg) in cases {
            let s = run(&three_ready(), &outcome(Some("c-0"), v));
            let c = find(&s, "ReplicasInSync");
            assert_eq!(
                (c.status.as_str(), c.message.as_str()),
                (status, msg),
                "{what}"
            );
            assert_eq!(find(&s, "Available").status, "True", "{what}");
            if status == "False" {
                assert_eq!(
                    sr(&s, "Ready"),
                    pair("False", "ReplicasNotInSync"),
                    "{what}"
                );
            }
        }
        // A replica whose pod is missing counts as behind.
        let o = Observed {
            statefulset: Some(sts(2, 2)),
            pods: vec![pod("c-0", true), pod("c-1", true)],
            ..Observed::default()
        };
        let s = run(
            &o,
            &outcome(
                Some("c-0"),
                vec![master(), obs("c-1", ObservedRole::Replica, 5000)],
            ),
        );
        assert_eq!(
            find(&s, "ReplicasInSync").message,
            "1/2 replicas in sync; behind: c-2 (no pod)"
        );
        // A single pod has no replicas to wait for.
        let one = rr("c", "ns", json!({"replicas": 1}));
        let o = Observed {
            statefulset: Some(sts(1, 1)),
            pods: vec![pod("c-0", true)],
            ..Observed::default()
        };
        let s = compute(
            &one,
            &o,
            None,
            &outcome(Some("c-0"), vec![master()]),
            None,
            &Params::default(),
            now(),
        );
        assert_eq!(sr(&s, "ReplicasInSync"), pair("True", "NoReplicas"));
        assert_eq!(sr(&s, "Ready"), pair("True", "AllReplicasReady"));
    }

    #[test]
    fn degraded_table() {
        use k8s_openapi::api::core::v1::{ContainerState, ContainerStateWaiting, ContainerStatus};
        let healthy = || {
            vec![
                obs("c-0", ObservedRole::Master, 10),
                obs("c-1", ObservedRole::Replica, 10),
                obs("c-2", ObservedRole::Replica, 10),
            ]
        };
        // Unreachable while starting (container not running yet): not degraded.
        let mut v = healthy();
        v[2] = unreachable("c-2");
        let s = run(&three_ready(), &outcome(Some("c-0"), v.clone()));
        assert_eq!(sr(&s, "Degraded"), pair("False", "AsExpected"));
        // Unreachable with its container running: degraded.
        let mut o = three_ready();
        o.pods[2] = running(pod("c-2", false));
        let s = run(&o, &outcome(Some("c-0"), v.clone()));
        assert_eq!(sr(&s, "Degraded"), pair("True", "PodUnreachable"));
        assert_eq!(find(&s, "Degraded").message, "c-2 does not answer");
        assert_eq!(s.phase.as_deref(), Some("Degraded"));
        // Its container started 5 s ago and it was never ready: still starting, the set
        // is provisioning (issue 20); 60 s later it is a problem.
        let started = |secs_ago: i64| {
            let mut p = running(pod("c-2", false));
            let st = p
                .status
                .as_mut()
                .unwrap()
                .container_statuses
                .as_mut()
                .unwrap();
            st[0]
                .state
                .as_mut()
                .unwrap()
                .running
                .as_mut()
                .unwrap()
                .started_at = Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 - secs_ago).unwrap(),
            ));
            p
        };
        let mut o = three_ready();
        o.pods[2] = started(5);
        let s = run(&o, &outcome(Some("c-0"), v.clone()));
        assert_eq!(sr(&s, "Degraded"), pair("False", "AsExpected"));
        assert_eq!(s.phase.as_deref(), Some("Provisioning"));
        o.pods[2] = started(60);
        let s = run(&o, &outcome(Some("c-0"), v.clone()));
        assert_eq!(sr(&s, "Degraded"), pair("True", "PodUnreachable"));
        // Crash loop.
        let mut o = three_ready();
        let mut p = pod("c-1", false);
        p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            name: "server".into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".into()),
                    ..ContainerStateWaiting::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]);
        o.pods[1] = p;
        let s = run(&o, &outcome(Some("c-0"), healthy()));
        assert_eq!(sr(&s, "Degraded"), pair("True", "PodFailing"));
        assert_eq!(find(&s, "Degraded").message, "c-1: CrashLoopBackOff");
        // The planner waits after the set had a master: degraded with its reason.
        let mut out = outcome(Some("c-0"), healthy());
        out.waiting = Some("replication histories diverged, cannot choose between c-0, c-1".into());
        let s = run(&three_ready(), &out);
        assert_eq!(sr(&s, "Degraded"), pair("True", "FailoverWaiting"));
        assert!(find(&s, "Degraded").message.contains("histories diverged"));
        // ... but not during the very first start (no master ever, epoch 0).
        let mut out = outcome(None, vec![]);
        out.epoch = 0;
        out.waiting = Some("no pod is reachable".into());
        let s = run(&three_ready(), &out);
        assert_eq!(sr(&s, "Degraded"), pair("False", "AsExpected"));
        assert_eq!(
            s.master.as_deref(),
            Some("c-0"),
            "the bootstrap master is shown"
        );
        assert_ne!(s.phase.as_deref(), Some("Degraded"));
    }

    #[test]
    fn master_epoch_and_last_failover_come_from_the_outcome() {
        let mut r = rr("c", "ns", json!({"replicas": 3}));
        r.status = Some(RedisReplicationStatus {
            master: Some("c-0".into()),
            epoch: 1,
            ..RedisReplicationStatus::default()
        });
        let mut out = outcome(
            Some("c-1"),
            vec![
                unreachable("c-0"),
                obs("c-1", ObservedRole::Master, 10),
                PodObservation {
                    master_host: Some("c-1".into()),
                    ..obs("c-2", ObservedRole::Replica, 10)
                },
            ],
        );
        out.epoch = 2;
        out.last_failover = Some(crate::crd::LastFailover {
            time: "2026-11-24T23:00:00Z".into(),
            from: "c-0".into(),
            to: "c-1".into(),
            reason: "master unreachable for longer than downAfterSeconds".into(),
            duration_ms: 812,
            ..Default::default()
        });
        let s = compute(
            &r,
            &three_ready(),
            None,
            &out,
            None,
            &Params::default(),
            now(),
        );
        assert_eq!((s.master.as_deref(), s.epoch), (Some("c-1"), 2));
        assert_eq!(s.last_failover, out.last_failover);
        assert_eq!(s.pods[0].role, "unknown");
        assert_eq!(s.pods[1].role, "master");
        assert_eq!(
            s.pods[2].upstream.as_deref(),
            Some("c-1.c-headless.ns.svc.cluster.local")
        );
        assert_eq!(sr(&s, "Available"), pair("True", "MasterAvailable"));
        assert_eq!(
            find(&s, "ReplicasInSync").message,
            "1/2 replicas in sync; behind: c-0 (unreachable)"
        );
    }

    #[test]
    fn unprobed_pods_are_judged_by_readiness_and_planned_upstreams() {
        let mut r = rr("c", "ns", json!({"replicas": 3}));
        r.status = Some(RedisReplicationStatus {
            master: Some("c-2".into()),
            epoch: 4,
            ..RedisReplicationStatus::default()
        });
        let out = unprobed_outcome(&r);
        assert_eq!((out.master.as_deref(), out.epoch), (Some("c-2"), 4));
        let mut o = three_ready();
        o.pods[1] = pod("c-1", false);
        let s = compute(&r, &o, None, &out, None, &Params::default(), now());
        assert_eq!(sr(&s, "Available"), pair("True", "MasterReady"));
        assert_eq!(
            find(&s, "ReplicasInSync").message,
            "1/2 replicas in sync; behind: c-1 (not ready)"
        );
        assert_eq!(s.pods[2].role, "master");
        assert_eq!(
            s.pods[0].upstream.as_deref(),
            Some("c-2.c-headless.ns.svc.cluster.local")
        );
        assert_eq!(s.pods[0].link_up, None);
    }

    #[test]
    fn transition_time_changes_only_with_the_status() {
        let mut r = rr("c", "ns", json!({"replicas": 3}));
        let healthy = outcome(
            Some("c-0"),
            vec![
                obs("c-0", ObservedRole::Master, 10),
                obs("c-1", ObservedRole::Replica, 10),
                obs("c-2", ObservedRole::Replica, 10),
            ],
        );
        let first = compute(
            &r,
            &three_ready(),
            None,
            &healthy,
            None,
            &Params::default(),
            now(),
        );
        r.status = Some(first.clone());
        let later = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_500).unwrap());
        // Offsets move, lag changes the message but not the status: same transition time.
        let mut moved = healthy.clone();
        moved.observations[0].master_repl_offset = 50;
        moved.observations[2].link_up = true;
        let second = compute(
            &r,
            &three_ready(),
            None,
            &moved,
            None,
            &Params::default(),
            later.clone(),
        );
        assert_eq!(find(&second, "ReplicasInSync").last_transition_time, now());
        assert_eq!(second.pods[2].lag_bytes, Some(40));
        // A replica link drops: that condition moves, with the new time.
        moved.observations[2].link_up = false;
        let third = compute(
            &r,
            &three_ready(),
            None,
            &moved,
            None,
            &Params::default(),
            later.clone(),
        );
        assert_eq!(find(&third, "ReplicasInSync").last_transition_time, later);
        assert_eq!(find(&third, "Available").last_transition_time, now());
        assert_eq!(find(&third, "ReplicasInSync").observed_generation, Some(1));
    }

    #[test]
    fn rolling_update_progress_is_in_the_progressing_message() {
        use crate::controller::rollout::RolloutStep;
        let r = rr("c", "ns", json!({"replicas": 3}));
        let report = RolloutReport {
            updated: 2,
            total: 3,
            step: RolloutStep::Wait("c-1 is not ready".into()),
        };
        let out = unprobed_outcome(&r);
        let s = compute(
            &r,
            &three_ready(),
            None,
            &out,
            Some(&report),
            &Params::default(),
            now(),
        );
        let p = find(&s, "Progressing");
        assert_eq!(
            (p.status.as_str(), p.reason.as_str()),
            ("True", "RollingUpdate")
        );
        assert_eq!(
            p.message,
            "rolling update: 2/3 pods updated; waiting: c-1 is not ready"
        );
        let done = RolloutReport {
            updated: 3,
            total: 3,
            step: RolloutStep::Nothing,
        };
        let s = compute(
            &r,
            &three_ready(),
            None,
            &out,
            Some(&done),
            &Params::default(),
            now(),
        );
        assert_eq!(sr(&s, "Progressing"), pair("False", "Reconciled"));
    }

    #[test]
    fn a_pod_being_scaled_away_does_not_block_ready() {
        let r = rr("c", "ns", json!({"replicas": 2}));
        let o = Observed {
            statefulset: Some(sts(2, 2)),
            pods: vec![pod("c-0", true), pod("c-1", true), pod("c-2", false)],
            ..Observed::default()
        };
        let s = compute(
            &r,
            &o,
            None,
            &unprobed_outcome(&r),
            None,
            &Params::default(),
            now(),
        );
        assert_eq!(sr(&s, "Ready"), pair("True", "AllReplicasReady"));
        assert_eq!(s.pods.len(), 3, "still listed while it exists");
    }

    #[test]
    fn the_recorded_master_is_kept_while_the_roles_step_knows_none() {
        let mut r = rr("c", "ns", json!({"replicas": 3}));
        r.status = Some(RedisReplicationStatus {
            master: Some("c-1".into()),
            epoch: 2,
            ..RedisReplicationStatus::default()
        });
        let mut out = outcome(
            None,
            vec![unreachable("c-0"), unreachable("c-1"), unreachable("c-2")],
        );
        out.epoch = 2;
        out.waiting = Some("no pod is reachable".into());
        let s = compute(
            &r,
            &three_ready(),
            None,
            &out,
            None,
            &Params::default(),
            now(),
        );
        assert_eq!(s.master.as_deref(), Some("c-1"));
        assert_eq!(sr(&s, "Available"), pair("False", "MasterUnreachable"));
        assert_eq!(sr(&s, "Degraded"), pair("True", "FailoverWaiting"));
    }
}
