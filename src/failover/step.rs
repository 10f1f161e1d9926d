//! Roles step: observe every pod over RESP, plan ([`crate::failover::plan`]), carry the plan out
//! ([`crate::failover::executor`]), move the `role` label the `-master` / `-replicas` Services
//! select on, and record the result in status.
//!
//! Order of a promotion (what makes an operator restarted at any point converge, see the
//! planner's module doc): 1. merge-patch `status.failoverInProgress {target, epoch}`;
//! 2. `REPLICAOF NO ONE` on the target, `REPLICAOF` on the others, `CLIENT KILL TYPE normal`
//! on a demoted master; 3. the `role` labels (master on the target and replica on every other
//! pod, in the same step); 4. merge-patch `master`, `epoch`, `lastFailover` and clear the
//! marker. Status writes here are JSON merge patches: the status step owns its fields through
//! server-side apply under the operator's field manager, and a second apply under that manager
//! would drop them.
//!
//! Pods without an IP are not observed (they are listed as unreachable); when no pod has one
//! (a fake API, or pods not scheduled yet) nothing is planned and status is left alone, and
//! the labels follow `status.master` (the bootstrap rule, pod 0, while none is recorded).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::controller::observe::Observed;
use super::outcome::RolesOutcome;
use crate::crd::{self, FailoverInProgressStatus, LastFailover, RedisReplication};
use crate::metrics::Metrics;
use crate::names;
use crate::failover::executor::{Executor, PodTarget, Report};
use crate::failover::probe::{self, ProbeError, Timeouts};
use crate::failover::{
    plan, FailoverInProgress, ObservedRole, Plan, PodObservation, PromoteReason, RecordedState,
    Settings, Topology, WaitReason,
};

#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    #[error("failed to label pod {name:?}: {source}")]
    Label {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to record {what} in the status of {name:?}: {source}")]
    Status {
        name: String,
        what: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// What the roles step remembers between reconciles (in memory only: a restarted operator
/// starts over, which the planner treats as "not yet seen unreachable").
#[derive(Debug, Default)]
pub struct RolesMemory {
    /// Per RedisReplication uid: (recorded master, when it was first seen unreachable).
    unreachable_since: Mutex<HashMap<String, (String, SystemTime)>>,
}

impl RolesMemory {
    /// Updates and returns when `master` was first seen unreachable in the current streak.
    fn track(
        &self,
        uid: &str,
        master: Option<&str>,
        down: bool,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let mut map = match self.unreachable_since.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        match (master, down) {
            (Some(m), true) => {
                let e = map
                    .entry(uid.to_string())
                    .or_insert_with(|| (m.to_string(), now));
                if e.0 != m {
                    *e = (m.to_string(), now);
                }
                Some(e.1)
            }
            _ => {
                map.remove(uid);
                None
            }
        }
    }

    /// Drops what is remembered about a resource (deleted).
    pub fn forget(&self, uid: &str) {
        if let Ok(mut m) = self.unreachable_since.lock() {
            m.remove(uid);
        }
    }
}

/// Bootstrap role of an ordinal (the rule before any master is recorded: pod 0).
pub fn bootstrap_role(ordinal: i32) -> &'static str {
    if ordinal == 0 {
        names::ROLE_MASTER
    } else {
        names::ROLE_REPLICA
    }
}

/// (pod name, role) for every pod of the set whose `role` label differs from what it should
/// be: `master` on `master` (pod 0 when `None`), `replica` on every other pod.
pub fn label_changes(set: &str, pods: &[Pod], master: Option<&str>) -> Vec<(String, &'static str)> {
    pods.iter()
        .filter_map(|p| {
            let name = p.name_any();
            let ord = names::ordinal(set, &name)?;
            let role = match master {
                Some(m) if m == name => names::ROLE_MASTER,
                Some(_) => names::ROLE_REPLICA,
                None => bootstrap_role(ord),
            };
            let current = p.labels().get(names::ROLE_LABEL).map(String::as_str);
            (current != Some(role)).then_some((name, role))
        })
        .collect()
}

pub async fn label(
    client: &Client,
    ns: &str,
    changes: &[(String, &str)],
) -> Result<(), RolesError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    // The master label goes first, so the master Service is never left with two endpoints
    // longer than necessary and never without one because of an ordering of ours.
    let mut ordered: Vec<&(String, &str)> = changes.iter().collect();
    ordered.sort_by_key(|(_, role)| *role != names::ROLE_MASTER);
    for (name, role) in ordered {
        // A merge patch touches only this label; the pod belongs to the StatefulSet controller.
        let patch = json!({"metadata": {"labels": {names::ROLE_LABEL: role}}});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            // A pod deleted meanwhile has no label to move.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(RolesError::Label {
                    name: name.clone(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// The password from the auth Secret (`None` when absent or empty).
pub fn password(rr: &RedisReplication, observed: &Observed) -> Option<String> {
    let secret = observed.auth_secret.as_ref()?;
    let key = &rr.spec.auth.key;
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let from_string = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned();
    from_data.or(from_string).filter(|p| !p.is_empty())
}

/// The recorded state of the status.
pub fn recorded(rr: &RedisReplication) -> RecordedState {
    let st = rr.status.clone().unwrap_or_default();
    RecordedState {
        master: st.master,
        epoch: u64::try_from(st.epoch).unwrap_or(0),
        failover_in_progress: st.failover_in_progress.map(|f| FailoverInProgress {
            target: f.target,
            epoch: u64::try_from(f.epoch).unwrap_or(0),
        }),
    }
}

fn topology(rr: &RedisReplication) -> Topology {
    match rr.spec.replication.topology {
        crd::Topology::Star => Topology::Star,
        crd::Topology::Chain => Topology::Chain {
            fanout: usize::try_from(rr.spec.replication.fanout).unwrap_or(1),
        },
    }
}

/// The pod a `master_host` names: its DNS name (or any name starting with `<pod>.`) or its IP.
fn pod_of_host(host: &str, targets: &[PodTarget], ips: &HashMap<String, String>) -> Option<String> {
    targets
        .iter()
        .find(|t| {
            t.advertise_host == host
                || host.starts_with(&format!("{}.", t.name))
                || ips.get(&t.name).is_some_and(|ip| ip == host)
        })
        .map(|t| t.name.clone())
}

/// Pods that were serving as master and are not `keep`: their clients are disconnected
/// once they are repointed.
fn demoted(pods: &[PodObservation], recorded: &RecordedState, keep: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = pods
        .iter()
        .filter(|p| p.reachable && p.role == ObservedRole::Master)
        .map(|p| p.name.clone())
        .collect();
    if let Some(m) = &recorded.master {
        if !out.contains(m) {
            out.push(m.clone());
        }
    }
    out.retain(|p| Some(p.as_str()) != keep);
    out
}

/// A promotion that is the first role assignment of the set rather than a failover: no
/// master recorded, or the bootstrap master (recorded by the status step, never promoted by
/// this step: epoch 0) waiting fenced for its role.
fn is_bootstrap(reason: PromoteReason, recorded_epoch: u64) -> bool {
    reason == PromoteReason::NoRecordedMaster
        || reason == PromoteReason::ColdRestart
        || (recorded_epoch == 0 && reason == PromoteReason::MasterLostRole)
}

fn event_type(bootstrap: bool) -> EventType {
    if bootstrap {
        EventType::Normal
    } else {
        EventType::Warning
    }
}

async fn publish(
    recorder: Option<&Recorder>,
    rr: &RedisReplication,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let Some(recorder) = recorder else { return };
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Failover".to_string(),
        secondary: None,
    };
    // Events are best effort.
    if let Err(e) = recorder.publish(&ev, &rr.object_ref(&())).await {
        tracing::warn!(error = %e, name = %rr.name_any(), "failed to publish event");
    }
}

async fn patch_status(
    client: &Client,
    rr: &RedisReplication,
    what: &'static str,
    status: serde_json::Value,
) -> Result<(), RolesError> {
    let name = rr.name_any();
    let api: Api<RedisReplication> =
        Api::namespaced(client.clone(), &rr.namespace().unwrap_or_default());
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
    .map_err(|source| RolesError::Status {
        name: name.clone(),
        what,
        source,
    })?;
    Ok(())
}

fn rfc3339_now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

/// (pod name, ordinal, pod IP) of every pod of the set, by ordinal.
fn pod_addresses(set: &str, observed: &Observed) -> Vec<(String, u32, Option<String>)> {
    let mut pods: Vec<(String, u32, Option<String>)> = observed
        .pods
        .iter()
        .filter_map(|p| {
            let name = p.name_any();
            let ord = u32::try_from(names::ordinal(set, &name)?).ok()?;
            let ip = p
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .filter(|ip| !ip.is_empty());
            Some((name, ord, ip))
        })
        .collect();
    pods.sort_by_key(|p| p.1);
    pods
}

/// Executor targets: connect to `<podIP>:6379`, advertise the pod DNS name.
fn pod_targets(
    set: &str,
    ns: &str,
    cluster_domain: &str,
    pods: &[(String, u32, Option<String>)],
) -> Vec<PodTarget> {
    let port = names::PORT;
    pods.iter()
        .map(|(name, ord, ip)| PodTarget {
            name: name.clone(),
            ordinal: *ord,
            connect: ip
                .as_ref()
                .map(|ip| {
                    if ip.contains(':') {
                        format!("[{ip}]:{port}")
                    } else {
                        format!("{ip}:{port}")
                    }
                })
                .unwrap_or_default(),
            advertise_host: names::pod_dns(set, ns, cluster_domain, *ord as i32),
            advertise_port: u16::try_from(port).unwrap_or(6379),
        })
        .collect()
}

/// How long a planned switchover waits for the target to catch up with the paused master.
pub const SWITCHOVER_CATCH_UP: Duration = Duration::from_secs(5);

/// A planned move of the master role from `from` to `to` (the rolling update's switchover),
/// losing no acknowledged write: records the intent, runs [`Executor::switchover`] with
/// `outcome.epoch + 1` (writes paused on `from` until `to` caught up, `to` promoted, `from`
/// and the other observed pods repointed per the topology), moves the `role` labels and
/// records `master`, `epoch` and `lastFailover`. `outcome` is this reconcile's roles outcome
/// (its observations give the current upstreams). On error nothing was promoted (or the
/// marker makes the next roles step finish the promotion) and the old master keeps serving.
pub async fn planned_switchover(
    cx: &StepContext<'_>,
    rr: &RedisReplication,
    observed: &Observed,
    outcome: &RolesOutcome,
    from: &str,
    to: &str,
) -> Result<Switchover, String> {
    let set = rr.name_any();
    let ns = rr.namespace().unwrap_or_default();
    let pods = pod_addresses(&set, observed);
    let targets = pod_targets(&set, &ns, cx.cluster_domain, &pods);
    for p in [from, to] {
        if !pods.iter().any(|(n, _, ip)| n == p && ip.is_some()) {
            return Err(format!("pod {p} has no address"));
        }
    }
    let epoch = outcome.epoch.saturating_add(1);
    let started = Instant::now();
    let marker = FailoverInProgressStatus {
        target: to.to_string(),
        epoch,
    };
    // The rest of the set, laid out under `to`.
    let reachable: Vec<&PodObservation> = outcome
        .observations
        .iter()
        .filter(|o| o.reachable && o.name != from && o.name != to)
        .collect();
    let members: Vec<(u32, &str)> = reachable
        .iter()
        .map(|o| (o.ordinal, o.name.as_str()))
        .collect();
    let current: Vec<(&str, Option<&str>)> = reachable
        .iter()
        .map(|o| {
            let up = match o.role {
                ObservedRole::Replica => o.master_host.as_deref(),
                _ => None,
            };
            (o.name.as_str(), up)
        })
        .collect();
    let others = crate::failover::minimal_repoints(
        &current,
        &crate::failover::desired_upstreams(topology(rr), to, &members),
    );
    patch_status(
        cx.client,
        rr,
        "the failover marker",
        json!({"failoverInProgress": marker}),
    )
    .await
    .map_err(|e| e.to_string())?;
    publish(
        cx.recorder,
        rr,
        EventType::Normal,
        "FailoverStarted",
        format!("planned switchover from {from} to {to} (epoch {epoch})"),
    )
    .await;
    let executor = Executor {
        targets,
        password: password(rr, observed),
        timeouts: cx.timeouts,
    };
    let report = match executor
        .switchover(
            from,
            to,
            &others,
            u64::try_from(epoch).unwrap_or(0),
            SWITCHOVER_CATCH_UP,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            // The old master stays (the executor unpaused it). Even if `to` did run REPLICAOF NO
            // ONE, it took no client writes: the next roles step repoints it under `from`, so
            // the marker must not make it resume towards `to`.
            let _ = patch_status(
                cx.client,
                rr,
                "the cleared failover marker",
                json!({"failoverInProgress": null}),
            )
            .await;
            return Err(e.to_string());
        }
    };
    label(
        cx.client,
        &ns,
        &label_changes(&set, &observed.pods, Some(to)),
    )
    .await
    .map_err(|e| e.to_string())?;
    let duration = started.elapsed();
    let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    let last = LastFailover {
        time: rfc3339_now(),
        from: from.to_string(),
        to: to.to_string(),
        reason: "planned switchover".to_string(),
        duration_ms,
    };
    patch_status(
        cx.client,
        rr,
        "the new master",
        json!({"master": to, "epoch": epoch, "failoverInProgress": null, "lastFailover": &last}),
    )
    .await
    .map_err(|e| e.to_string())?;
    publish(
        cx.recorder,
        rr,
        EventType::Normal,
        "MasterPromoted",
        format!("{to} is master at epoch {epoch} after {duration_ms}ms (planned switchover)"),
    )
    .await;
    repoint_events(cx, rr, &report).await;
    tracing::info!(name = %set, namespace = %ns, from, to, epoch, duration_ms, "planned switchover done");
    Ok(Switchover {
        to: to.to_string(),
        epoch,
        last,
    })
}

/// What a planned switchover recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Switchover {
    pub to: String,
    pub epoch: i64,
    pub last: LastFailover,
}

/// What the roles step needs from the controller's context.
pub struct StepContext<'a> {
    pub client: &'a Client,
    pub recorder: Option<&'a Recorder>,
    pub metrics: &'a Metrics,
    pub memory: &'a RolesMemory,
    pub cluster_domain: &'a str,
    pub timeouts: Timeouts,
}

/// The roles step. Errors are only Kubernetes writes that failed; pods that cannot be reached
/// or commands that fail are part of the outcome (and retried by the next round).
pub async fn step(
    cx: &StepContext<'_>,
    rr: &RedisReplication,
    observed: &Observed,
) -> Result<RolesOutcome, RolesError> {
    let set = rr.name_any();
    let ns = rr.namespace().unwrap_or_default();
    let uid = rr.uid().unwrap_or_else(|| format!("{ns}/{set}"));
    let rec = recorded(rr);
    let prev = rr.status.clone().unwrap_or_default();
    let mut outcome = RolesOutcome {
        observations: Vec::new(),
        // Nothing recorded yet: the bootstrap rule (pod 0), as the status step shows it.
        master: rec.master.clone().or_else(|| Some(names::pod(&set, 0))),
        epoch: prev.epoch,
        last_failover: prev.last_failover.clone(),
        waiting: None,
        failover_in_progress: prev.failover_in_progress.clone(),
        recheck_soon: false,
    };

    // Every pod of the set, with its address if it has one.
    let pods = pod_addresses(&set, observed);

    if pods.iter().all(|p| p.2.is_none()) {
        outcome.waiting = Some("no pod has an address yet".to_string());
        label(
            cx.client,
            &ns,
            &label_changes(&set, &observed.pods, rec.master.as_deref()),
        )
        .await?;
        return Ok(outcome);
    }

    let pw = password(rr, observed);
    let targets = pod_targets(&set, &ns, cx.cluster_domain, &pods);
    let ips: HashMap<String, String> = pods
        .iter()
        .filter_map(|(n, _, ip)| Some((n.clone(), ip.clone()?)))
        .collect();

    let probes =
        futures::future::join_all(pods.iter().zip(&targets).map(|((name, ord, ip), t)| {
            let pw = pw.clone();
            let timeouts = cx.timeouts;
            async move {
                match ip {
                    Some(_) => {
                        probe::observe(name, *ord, &t.connect, pw.as_deref(), timeouts).await
                    }
                    None => probe::Probe {
                        observation: probe::unreachable(name, *ord),
                        master_addr: None,
                        error: Some(ProbeError::Connect {
                            addr: String::new(),
                            error: "pod has no IP".into(),
                        }),
                    },
                }
            }
        }))
        .await;
    let mut observations = Vec::with_capacity(probes.len());
    for p in probes {
        if let Some(e) = &p.error {
            tracing::debug!(name = %set, pod = %p.observation.name, error = %e, "pod not reachable");
        }
        let mut o = p.observation;
        o.master_host = p
            .master_addr
            .map(|(h, _)| pod_of_host(&h, &targets, &ips).unwrap_or(h));
        observations.push(o);
    }

    let now = SystemTime::now();
    let master_down = rec
        .master
        .as_deref()
        .map(|m| !observations.iter().any(|o| o.name == m && o.reachable));
    let since = cx
        .memory
        .track(&uid, rec.master.as_deref(), master_down == Some(true), now);
    let settings = Settings {
        down_after: Duration::from_secs(
            u64::try_from(rr.spec.failover.down_after_seconds)
                .unwrap_or(5)
                .max(1),
        ),
        now,
        master_unreachable_since: since,
        topology: topology(rr),
        min_reachable: None,
    };
    let mut decision = plan(&observations, &rec, &settings);
    tracing::debug!(name = %set, plan = ?decision, "roles plan");

    if !rr.spec.failover.enabled {
        if let Plan::Promote { reason, pod, .. } = &decision {
            if matches!(
                reason,
                PromoteReason::MasterUnreachable
                    | PromoteReason::MasterRestartedEmpty
                    | PromoteReason::MasterBehind
            ) {
                outcome.waiting = Some(format!(
                    "automatic failover is disabled; the planner would promote {pod} ({reason})"
                ));
                decision = Plan::Keep;
            }
        }
    }

    let reachable_not_following = observations.iter().any(|o| {
        o.reachable
            && (o.role == ObservedRole::Fenced
                || o.role == ObservedRole::Unknown
                || (o.role == ObservedRole::Replica && (!o.link_up || o.sync_in_progress)))
    });
    // Other pods that do not answer are not polled every second: the Pod watch brings them
    // back when they change (restart, IP, readiness).
    outcome.recheck_soon = master_down == Some(true)
        || reachable_not_following
        || outcome.failover_in_progress.is_some();

    let executor = Executor {
        targets: targets.clone(),
        password: pw.clone(),
        timeouts: cx.timeouts,
    };

    match &decision {
        Plan::Wait { reason } => {
            outcome.waiting = Some(reason.to_string());
            outcome.recheck_soon |= !matches!(reason, WaitReason::DataAmbiguous { .. });
        }
        Plan::Keep | Plan::Repoint(_) => {
            if let Plan::Repoint(_) = &decision {
                let report = executor
                    .execute(
                        &decision,
                        &demoted(&observations, &rec, rec.master.as_deref()),
                    )
                    .await
                    .unwrap_or_default();
                repoint_events(cx, rr, &report).await;
                outcome.recheck_soon = true;
            }
            if outcome.failover_in_progress.is_some() {
                // The marker's target was lost and the recorded master stays: clear it.
                patch_status(
                    cx.client,
                    rr,
                    "the cleared failover marker",
                    json!({"failoverInProgress": null}),
                )
                .await?;
                outcome.failover_in_progress = None;
            }
        }
        Plan::Promote {
            pod,
            reason,
            epoch,
            repoint,
        } => {
            outcome.recheck_soon = true;
            let bootstrap = is_bootstrap(*reason, rec.epoch);
            let started = Instant::now();
            let marker = FailoverInProgressStatus {
                target: pod.clone(),
                epoch: i64::try_from(*epoch).unwrap_or(i64::MAX),
            };
            if outcome.failover_in_progress.as_ref() != Some(&marker) {
                patch_status(
                    cx.client,
                    rr,
                    "the failover marker",
                    json!({"failoverInProgress": marker}),
                )
                .await?;
                outcome.failover_in_progress = Some(marker.clone());
            }
            let from = rec.master.clone().unwrap_or_default();
            publish(
                cx.recorder,
                rr,
                event_type(bootstrap),
                "FailoverStarted",
                format!(
                    "promoting {pod} (epoch {epoch}) in place of {}: {reason}",
                    if from.is_empty() { "no master" } else { &from }
                ),
            )
            .await;
            tracing::info!(name = %set, namespace = %ns, target = %pod, epoch, reason = %reason, repoints = repoint.len(), "failover started");
            match executor
                .execute(&decision, &demoted(&observations, &rec, Some(pod)))
                .await
            {
                Err(e) => {
                    tracing::warn!(name = %set, target = %pod, error = %e, "promotion failed");
                    outcome.waiting = Some(format!("promotion of {pod} failed: {e}"));
                    // Labels stay where they are; the marker makes the next round retry.
                    label(
                        cx.client,
                        &ns,
                        &label_changes(&set, &observed.pods, rec.master.as_deref()),
                    )
                    .await?;
                    return Ok(outcome);
                }
                Ok(report) => {
                    label(
                        cx.client,
                        &ns,
                        &label_changes(&set, &observed.pods, Some(pod)),
                    )
                    .await?;
                    let duration = started.elapsed();
                    let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
                    let failover = !bootstrap;
                    let last = failover.then(|| LastFailover {
                        time: rfc3339_now(),
                        from: from.clone(),
                        to: pod.clone(),
                        reason: reason.to_string(),
                        duration_ms,
                    });
                    let mut st = json!({
                        "master": pod,
                        "epoch": marker.epoch,
                        "failoverInProgress": null,
                    });
                    if let Some(l) = &last {
                        st["lastFailover"] = json!(l);
                    }
                    patch_status(cx.client, rr, "the new master", st).await?;
                    outcome.master = Some(pod.clone());
                    outcome.epoch = marker.epoch;
                    outcome.failover_in_progress = None;
                    if last.is_some() {
                        outcome.last_failover = last;
                    }
                    if failover {
                        cx.metrics.failover_done(duration);
                    }
                    publish(
                        cx.recorder,
                        rr,
                        event_type(bootstrap),
                        "MasterPromoted",
                        format!(
                            "{pod} is master at epoch {epoch} after {duration_ms}ms ({reason})"
                        ),
                    )
                    .await;
                    repoint_events(cx, rr, &report).await;
                    tracing::info!(name = %set, namespace = %ns, master = %pod, epoch, duration_ms, failures = report.failures().count(), "master promoted");
                    outcome.observations = observations;
                    return Ok(outcome);
                }
            }
        }
    }

    label(
        cx.client,
        &ns,
        &label_changes(&set, &observed.pods, outcome.master.as_deref()),
    )
    .await?;
    outcome.observations = observations;
    Ok(outcome)
}

async fn repoint_events(cx: &StepContext<'_>, rr: &RedisReplication, report: &Report) {
    for (pod, upstream) in report.repointed() {
        publish(
            cx.recorder,
            rr,
            EventType::Normal,
            "ReplicaRepointed",
            format!("{pod} now follows {upstream}"),
        )
        .await;
    }
    for f in report.failures() {
        tracing::warn!(name = %rr.name_any(), step = ?f, "executor step failed");
    }
}

/// Carries the roles outcome into the status the status step writes (master, epoch, last
/// failover, failover marker), so its server-side apply agrees with what the roles step and a
/// planned switchover recorded.
pub fn apply_outcome(st: &mut crd::RedisReplicationStatus, outcome: &RolesOutcome) {
    if let Some(m) = &outcome.master {
        st.master = Some(m.clone());
    }
    st.epoch = outcome.epoch;
    st.last_failover = outcome.last_failover.clone();
    st.failover_in_progress = outcome.failover_in_progress.clone();
}

/// Updates `outcome` with a planned switchover done after the roles step (see
/// [`planned_switchover`]), so the status step does not write the old master back.
pub fn record_switchover(outcome: &mut RolesOutcome, done: &Switchover) {
    outcome.master = Some(done.to.clone());
    outcome.epoch = done.epoch;
    outcome.last_failover = Some(done.last.clone());
    outcome.failover_in_progress = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::ByteString;

    fn pod(name: &str, role: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.to_string());
        if let Some(r) = role {
            p.metadata.labels = Some([(names::ROLE_LABEL.to_string(), r.to_string())].into());
        }
        p
    }

    #[test]
    fn labels_follow_the_recorded_master_or_pod_zero() {
        let pods = [
            pod("c-0", None),
            pod("c-1", Some("replica")),
            pod("c-2", Some("master")),
            pod("other", None),
        ];
        assert_eq!(
            label_changes("c", &pods, None),
            vec![
                ("c-0".to_string(), "master"),
                ("c-2".to_string(), "replica")
            ]
        );
        assert_eq!(
            label_changes("c", &pods, Some("c-1")),
            vec![
                ("c-0".to_string(), "replica"),
                ("c-1".to_string(), "master"),
                ("c-2".to_string(), "replica")
            ]
        );
        assert_eq!(names::ordinal("c", "c-12"), Some(12));
        assert_eq!(names::ordinal("c", "cx-1"), None);
    }

    #[test]
    fn unreachable_streak_is_tracked_per_resource_and_master() {
        let m = RolesMemory::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(m.track("u", Some("c-0"), true, t0), Some(t0));
        assert_eq!(m.track("u", Some("c-0"), true, t1), Some(t0), "streak kept");
        assert_eq!(
            m.track("v", Some("c-0"), true, t1),
            Some(t1),
            "per resource"
        );
        assert_eq!(
            m.track("u", Some("c-1"), true, t1),
            Some(t1),
            "new master, new streak"
        );
        assert_eq!(m.track("u", Some("c-1"), false, t1), None);
        assert_eq!(
            m.track("u", Some("c-1"), true, t1 + Duration::from_secs(1)),
            Some(t1 + Duration::from_secs(1))
        );
        m.forget("u");
        assert_eq!(m.track("u", None, true, t1), None);
    }

    #[test]
    fn master_host_maps_to_pods_by_dns_name_or_ip() {
        let t = |n: &str| PodTarget {
            name: n.to_string(),
            ordinal: 0,
            connect: String::new(),
            advertise_host: format!("{n}.c-headless.ns.svc.cluster.local"),
            advertise_port: 6379,
        };
        let targets = [t("c-0"), t("c-1"), t("c-10")];
        let ips = HashMap::from([("c-1".to_string(), "10.0.0.7".to_string())]);
        assert_eq!(
            pod_of_host("c-0.c-headless.ns.svc.cluster.local", &targets, &ips).as_deref(),
            Some("c-0")
        );
        assert_eq!(
            pod_of_host("c-10.c-headless", &targets, &ips).as_deref(),
            Some("c-10")
        );
        assert_eq!(
            pod_of_host("10.0.0.7", &targets, &ips).as_deref(),
            Some("c-1")
        );
        assert_eq!(pod_of_host("10.0.0.8", &targets, &ips), None);
    }

    #[test]
    fn first_assignment_is_not_counted_as_a_failover() {
        assert!(is_bootstrap(PromoteReason::NoRecordedMaster, 0));
        assert!(is_bootstrap(PromoteReason::NoRecordedMaster, 3));
        assert!(is_bootstrap(PromoteReason::MasterLostRole, 0));
        assert!(!is_bootstrap(PromoteReason::MasterLostRole, 1));
        assert!(!is_bootstrap(PromoteReason::MasterUnreachable, 0));
        assert!(!is_bootstrap(PromoteReason::MasterRestartedEmpty, 0));
        assert!(is_bootstrap(PromoteReason::ColdRestart, 4));
    }

    #[test]
    fn password_comes_from_the_configured_key() {
        let rr = crate::build::testutil::rr("c", "ns", serde_json::json!({}));
        let s = Secret {
            data: Some([(rr.spec.auth.key.clone(), ByteString(b"pw".to_vec()))].into()),
            ..Secret::default()
        };
        let obs = Observed {
            auth_secret: Some(s),
            ..Observed::default()
        };
        assert_eq!(password(&rr, &obs).as_deref(), Some("pw"));
        assert_eq!(password(&rr, &Observed::default()), None);
    }

    #[test]
    fn outcome_is_carried_into_status_and_a_switchover_updates_it() {
        let mut st = crd::RedisReplicationStatus {
            master: Some("c-0".into()),
            failover_in_progress: Some(FailoverInProgressStatus {
                target: "c-1".into(),
                epoch: 3,
            }),
            ..Default::default()
        };
        let mut outcome = RolesOutcome {
            master: Some("c-2".into()),
            epoch: 3,
            ..Default::default()
        };
        apply_outcome(&mut st, &outcome);
        assert_eq!((st.master.as_deref(), st.epoch), (Some("c-2"), 3));
        assert_eq!(st.failover_in_progress, None);
        let last = LastFailover {
            to: "c-1".into(),
            ..Default::default()
        };
        record_switchover(
            &mut outcome,
            &Switchover {
                to: "c-1".into(),
                epoch: 4,
                last: last.clone(),
            },
        );
        apply_outcome(&mut st, &outcome);
        assert_eq!((st.master.as_deref(), st.epoch), (Some("c-1"), 4));
        assert_eq!(st.last_failover, Some(last));
    }
}
