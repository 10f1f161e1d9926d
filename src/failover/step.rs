//! The failover step of reconcile: observe every pod over RESP ([`super::probe`]), plan
//! ([`super::plan`]), carry the plan out ([`super::executor`], through [`super::promote`] when
//! the master moves) and record the result ([`super::record`]). Also the rolling update's
//! planned switchover, which goes through the same promotion routine.
//!
//! Pods without an IP are not observed (they are listed as unreachable); when no pod has one
//! (pods not scheduled yet) nothing is planned and status is left alone, and the labels follow
//! `status.master` (the bootstrap rule, pod 0, while none is recorded).

use std::time::{Duration, SystemTime};

use kube::runtime::events::Recorder;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::credentials::Credentials;
use super::executor::{Executor, PodTarget};
use super::outcome::RolesOutcome;
use super::pods::{self, PodAddress};
use super::probe::{self, ProbeError, Timeouts};
use super::promote::{promote, Kind, Method, PromoteError, Promotion};
use super::record::{Records, RolesError};
use super::{plan, ObservedRole, Plan, PodObservation, PromoteReason, Settings, WaitReason};
use crate::controller::observe::Observed;
use crate::crd::{self, LastFailover, RedisReplication};
use crate::metrics::{Metrics, SetLabels};
use crate::model::Validated;

use super::heartbeat;
use super::memory::RolesMemory;
use super::window::{lost_write_window, WindowInput};
use crate::build::config::min_replicas;

/// What the failover step needs from the controller's context.
pub struct StepContext<'a> {
    pub client: &'a Client,
    pub recorder: Option<&'a Recorder>,
    pub metrics: &'a Metrics,
    pub memory: &'a RolesMemory,
    pub cluster_domain: &'a str,
    pub timeouts: Timeouts,
}

impl<'a> StepContext<'a> {
    fn records(&self, rr: &'a RedisReplication) -> Records<'a> {
        Records {
            client: self.client,
            recorder: self.recorder,
            rr,
        }
    }
}

/// A promotion that is the first role assignment of the set rather than a failover: no
/// master recorded, or the bootstrap master (recorded by the status step, never promoted by
/// this step: epoch 0) waiting fenced for its role.
fn is_bootstrap(reason: PromoteReason, recorded_epoch: u64) -> bool {
    reason == PromoteReason::NoRecordedMaster
        || reason == PromoteReason::ColdRestart
        || (recorded_epoch == 0 && reason == PromoteReason::MasterLostRole)
}

/// The shortest timeout of one command the executor sends.
const EXEC_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// The pods of one set as this round sees them.
struct Round {
    pods: Vec<PodAddress>,
    targets: Vec<PodTarget>,
    credentials: Credentials,
    /// Set when the pods are reached over TLS (`spec.tls`).
    tls: Option<crate::tls::client::TlsClient>,
}

impl Round {
    fn new(cx: &StepContext<'_>, rr: &RedisReplication, observed: &Observed) -> Self {
        let set = rr.name_any();
        let pods = pods::addresses(&set, observed);
        let transport = super::tls_transport::transport(rr, observed, crate::tls::unix_now());
        Round {
            targets: pods::targets_on(
                &set,
                &rr.namespace().unwrap_or_default(),
                cx.cluster_domain,
                &pods,
                transport.ports,
            ),
            pods,
            credentials: pods::credentials(rr, observed),
            tls: transport.tls,
        }
    }

    /// Acting is not detecting: a pod that answers REPLICAOF slowly must not fail a
    /// promotion, so each command gets at least [`EXEC_COMMAND_TIMEOUT`].
    fn executor(&self, timeouts: Timeouts) -> Executor {
        Executor {
            targets: self.targets.clone(),
            credentials: self.credentials.clone(),
            tls: self.tls.clone(),
            timeouts: Timeouts {
                command: timeouts.command.max(EXEC_COMMAND_TIMEOUT),
                ..timeouts
            },
        }
    }

    /// Observes every pod over RESP, in parallel; `master_host` names the pod it points at.
    async fn probe(&self, set: &str, timeouts: Timeouts) -> Vec<PodObservation> {
        let ips = pods::ips(&self.pods);
        let probes =
            futures::future::join_all(self.pods.iter().zip(&self.targets).map(|(p, t)| {
                let creds = &self.credentials;
                let tls = self.tls.as_ref();
                async move {
                    match &p.ip {
                        Some(_) => {
                            probe::observe_over(
                                &p.name, p.ordinal, &t.connect, creds, timeouts, tls,
                            )
                            .await
                        }
                        None => probe::Probe {
                            observation: probe::unreachable(&p.name, p.ordinal),
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
        probes
            .into_iter()
            .map(|p| {
                if let Some(e) = &p.error {
                    tracing::debug!(name = %set, pod = %p.observation.name, error = %e, "pod not reachable");
                }
                let mut o = p.observation;
                o.master_host = p
                    .master_addr
                    .map(|(h, _)| pods::pod_of_host(&h, &self.targets, &ips).unwrap_or(h));
                o
            })
            .collect()
    }
}

/// Something a reachable pod still has to do before it follows its upstream.
fn not_following(observations: &[PodObservation]) -> bool {
    observations.iter().any(|o| {
        o.reachable
            && (o.role == ObservedRole::Fenced
                || o.role == ObservedRole::Unknown
                || (o.role == ObservedRole::Replica && (!o.link_up || o.sync_in_progress)))
    })
}

/// With automatic failover disabled, a promotion away from a recorded master becomes a wait.
fn without_failover(decision: Plan, outcome: &mut RolesOutcome) -> Plan {
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
            return Plan::Keep;
        }
    }
    decision
}

/// The failover step. Errors are only Kubernetes writes that failed; pods that cannot be
/// reached or commands that fail are part of the outcome (and retried by the next round).
pub async fn step(
    cx: &StepContext<'_>,
    rr: &RedisReplication,
    model: &Validated,
    observed: &Observed,
) -> Result<RolesOutcome, RolesError> {
    let round = Round::new(cx, rr, observed);
    let timeouts = cx.timeouts.for_down_after(model.down_after);
    let outcome = observe_and_act(cx, rr, model, observed, &round, timeouts).await?;
    // The heartbeat follows the master this round leaves in place.
    match outcome.master.as_deref().and_then(|m| {
        round
            .targets
            .iter()
            .find(|t| t.name == m && !t.connect.is_empty())
    }) {
        Some(t) => cx.memory.watch(
            &model.uid,
            heartbeat::Target {
                namespace: model.namespace.clone(),
                name: model.name.clone(),
                master: t.name.clone(),
                addr: t.connect.clone(),
                credentials: round.credentials.clone(),
                tls: round.tls.clone(),
                timeouts,
            },
        ),
        None => cx.memory.unwatch(&model.uid),
    }
    Ok(outcome)
}

/// The shortest requeue while waiting for `downAfterSeconds` to run out.
const MIN_RECHECK: Duration = Duration::from_millis(200);

/// When to look again while the recorded master is down: when its `downAfterSeconds` runs
/// out, less the time the next probe of it may take, so the promotion is not a whole
/// recheck period late.
fn recheck_after(
    since: Option<SystemTime>,
    down_after: Duration,
    now: SystemTime,
    probe: Duration,
) -> Option<Duration> {
    let due = since?.checked_add(down_after)?;
    let left = due.duration_since(now).ok()?;
    Some(left.saturating_sub(probe).max(MIN_RECHECK))
}

/// The lost-write window if `decision` promotes away from the recorded master (a failover).
fn failover_window(
    rr: &RedisReplication,
    observations: &[PodObservation],
    recorded_master: Option<&str>,
    since: Option<SystemTime>,
    now: SystemTime,
    timeouts: Timeouts,
) -> Option<Duration> {
    let old = recorded_master?;
    lost_write_window(WindowInput {
        since_last_answer: since
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default(),
        unseen: heartbeat::PERIOD + timeouts.observation(),
        max_lag_secs: min_replicas(&rr.spec).map(|(_, lag)| lag),
        old_master_demoted: observations.iter().any(|o| o.name == old && o.reachable),
    })
}

/// The recorded master's state this round: its answer or outage noted in the memory, the
/// planner's settings, and the outage start and recheck time in `outcome`. Also returns
/// whether the recorded master is down (`None`: none recorded).
fn outage(
    cx: &StepContext<'_>,
    model: &Validated,
    observations: &[PodObservation],
    now: SystemTime,
    timeouts: Timeouts,
    outcome: &mut RolesOutcome,
) -> (Settings, Option<bool>) {
    let rec = &model.recorded;
    let master_down = rec
        .master
        .as_deref()
        .map(|m| !observations.iter().any(|o| o.name == m && o.reachable));
    if let (Some(m), Some(false)) = (rec.master.as_deref(), master_down) {
        cx.memory.answered(&model.uid, m, now);
    }
    let settings = Settings {
        down_after: model.down_after,
        now,
        master_unreachable_since: cx.memory.track(
            &model.uid,
            rec.master.as_deref(),
            master_down == Some(true),
            now,
        ),
        topology: model.topology,
        min_reachable: None,
    };
    outcome.master_unreachable_since = settings.master_unreachable_since;
    outcome.recheck_after = recheck_after(
        settings.master_unreachable_since,
        model.down_after,
        now,
        timeouts.command,
    );
    (settings, master_down)
}

async fn observe_and_act(
    cx: &StepContext<'_>,
    rr: &RedisReplication,
    model: &Validated,
    observed: &Observed,
    round: &Round,
    timeouts: Timeouts,
) -> Result<RolesOutcome, RolesError> {
    let records = cx.records(rr);
    let rec = &model.recorded;
    let mut outcome = RolesOutcome::recorded(model, rr);
    if round.pods.iter().all(|p| p.ip.is_none()) {
        outcome.waiting = Some("no pod has an address yet".to_string());
        records
            .labels(&observed.pods, rec.master.as_deref())
            .await?;
        return Ok(outcome);
    }
    let observations = round.probe(&model.name, timeouts).await;

    let now = SystemTime::now();
    let (settings, master_down) = outage(cx, model, &observations, now, timeouts, &mut outcome);
    let mut decision = plan(&observations, rec, &settings);
    tracing::debug!(name = %model.name, plan = ?decision, "roles plan");
    if !model.failover_enabled {
        decision = without_failover(decision, &mut outcome);
    }
    // Other pods that do not answer are not polled every second: the Pod watch brings them
    // back when they change (restart, IP, readiness).
    outcome.recheck_soon = master_down == Some(true)
        || not_following(&observations)
        || outcome.failover_in_progress.is_some();
    let executor = round.executor(cx.timeouts);
    match &decision {
        Plan::Wait { reason } => {
            outcome.waiting = Some(reason.to_string());
            outcome.recheck_soon |= !matches!(reason, WaitReason::DataAmbiguous { .. });
        }
        Plan::Keep | Plan::Repoint(_) => {
            if let Plan::Repoint(_) = &decision {
                let demoted = pods::demoted(&observations, rec, rec.master.as_deref());
                let report = executor
                    .execute(&decision, &demoted)
                    .await
                    .unwrap_or_default();
                records.repointed(&report).await;
                outcome.recheck_soon = true;
            }
            if outcome.failover_in_progress.is_some() {
                // The marker's target was lost and the recorded master stays: clear it.
                records
                    .status(
                        "the cleared failover marker",
                        json!({"failoverInProgress": null}),
                    )
                    .await?;
                outcome.failover_in_progress = None;
            }
        }
        Plan::Promote {
            pod, reason, epoch, ..
        } => {
            outcome.recheck_soon = true;
            let kind = if is_bootstrap(*reason, rec.epoch) {
                Kind::Bootstrap
            } else {
                Kind::Failover
            };
            let epoch = i64::try_from(*epoch).unwrap_or(i64::MAX);
            let marker_recorded = outcome
                .failover_in_progress
                .as_ref()
                .is_some_and(|m| m.target == *pod && m.epoch == epoch);
            let lost_write_window = (kind == Kind::Failover)
                .then(|| {
                    failover_window(
                        rr,
                        &observations,
                        rec.master.as_deref(),
                        settings.master_unreachable_since,
                        now,
                        timeouts,
                    )
                })
                .flatten();
            let p = Promotion {
                kind,
                from: rec.master.as_deref(),
                to: pod,
                epoch,
                reason: reason.to_string(),
                lost_write_window,
                method: Method::Plan {
                    plan: &decision,
                    demoted: pods::demoted(&observations, rec, Some(pod)),
                },
            };
            match promote(
                &records,
                &executor,
                cx.metrics,
                &observed.pods,
                p,
                marker_recorded,
            )
            .await
            {
                Err(PromoteError::Record(e)) => return Err(e),
                Err(PromoteError::Executor(e)) => {
                    tracing::warn!(name = %model.name, target = %pod, error = %e, "promotion failed");
                    if kind == Kind::Failover {
                        cx.metrics
                            .failover_failed(&SetLabels::new(&model.namespace, &model.name));
                    }
                    outcome.failover_in_progress = Some(crd::FailoverInProgressStatus {
                        target: pod.clone(),
                        epoch,
                    });
                    outcome.waiting = Some(format!("promotion of {pod} failed: {e}"));
                    // Labels stay where they are; the marker makes the next round retry.
                    records
                        .labels(&observed.pods, rec.master.as_deref())
                        .await?;
                    return Ok(outcome);
                }
                Ok(done) => {
                    outcome.master = Some(pod.clone());
                    outcome.epoch = epoch;
                    outcome.failover_in_progress = None;
                    if kind != Kind::Bootstrap {
                        outcome.last_failover = Some(done.last);
                    }
                    outcome.observations = observations;
                    return Ok(outcome);
                }
            }
        }
    }
    records
        .labels(&observed.pods, outcome.master.as_deref())
        .await?;
    outcome.observations = observations;
    Ok(outcome)
}

/// How long a planned switchover waits for the target to catch up with the paused master.
pub const SWITCHOVER_CATCH_UP: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SwitchoverError {
    #[error("pod {0} has no address")]
    NoAddress(String),
    #[error(transparent)]
    Promote(#[from] PromoteError),
    #[error(transparent)]
    Record(#[from] RolesError),
}

/// What a planned switchover recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Switchover {
    pub to: String,
    pub epoch: i64,
    pub last: LastFailover,
}

/// A planned move of the master role from `from` to `to` (the rolling update's switchover),
/// losing no acknowledged write, through the same [`promote`] routine as a failover with
/// epoch `outcome.epoch + 1`: writes paused on `from` until `to` caught up, `to` promoted,
/// `from` and the other observed pods repointed per the topology. `outcome` is this
/// reconcile's failover outcome (its observations give the current upstreams). On error
/// nothing was promoted (or the marker makes the next failover step finish the promotion)
/// and the old master keeps serving.
pub async fn planned_switchover(
    cx: &StepContext<'_>,
    rr: &RedisReplication,
    model: &Validated,
    observed: &Observed,
    outcome: &RolesOutcome,
    from: &str,
    to: &str,
) -> Result<Switchover, SwitchoverError> {
    let round = Round::new(cx, rr, observed);
    for p in [from, to] {
        if !round.pods.iter().any(|a| a.name == p && a.ip.is_some()) {
            return Err(SwitchoverError::NoAddress(p.to_string()));
        }
    }
    let epoch = outcome.epoch.saturating_add(1);
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
    let others = super::minimal_repoints(
        &current,
        &super::desired_upstreams(model.topology, to, &members),
    );
    let records = cx.records(rr);
    let p = Promotion {
        kind: Kind::Planned,
        from: Some(from),
        to,
        epoch,
        reason: "planned switchover".to_string(),
        lost_write_window: None,
        method: Method::Switchover {
            others: &others,
            catch_up: SWITCHOVER_CATCH_UP,
        },
    };
    let executor = round.executor(cx.timeouts);
    match promote(&records, &executor, cx.metrics, &observed.pods, p, false).await {
        Ok(done) => Ok(Switchover {
            to: to.to_string(),
            epoch,
            last: done.last,
        }),
        Err(PromoteError::Executor(e)) => {
            // The old master stays (the executor unpaused it). Even if `to` did run REPLICAOF
            // NO ONE, it took no client writes: the next failover step repoints it under
            // `from`, so the marker must not make it resume towards `to`.
            let _ = records
                .status(
                    "the cleared failover marker",
                    json!({"failoverInProgress": null}),
                )
                .await;
            Err(PromoteError::Executor(e).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Carries the failover outcome into the status the status step writes (master, epoch, last
/// failover, failover marker), so its server-side apply agrees with what the failover step
/// and a planned switchover recorded.
pub fn apply_outcome(st: &mut crd::RedisReplicationStatus, outcome: &RolesOutcome) {
    if let Some(m) = &outcome.master {
        st.master = Some(m.clone());
    }
    st.epoch = outcome.epoch;
    st.last_failover = outcome.last_failover.clone();
    st.failover_in_progress = outcome.failover_in_progress.clone();
}

/// Updates `outcome` with a planned switchover done after the failover step (see
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
    use crate::crd::FailoverInProgressStatus;

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
