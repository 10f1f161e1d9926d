//! The one promotion routine, shared by a failover (and the first role assignment) and the
//! rolling update's planned switchover.
//!
//! Order (what makes an operator restarted at any point converge, see the planner's module
//! doc): 1. record `status.failoverInProgress {target, epoch}` and emit `FailoverStarted`;
//! 2. the executor makes the target master (`REPLICAOF NO ONE`, or a paused-writes switchover)
//! and repoints the others, disconnecting the clients of a demoted master; 3. the `role`
//! labels move (master on the target, replica on every other pod, in the same step);
//! 4. record `master`, `epoch`, `lastFailover` and clear the marker; `MasterPromoted` and one
//! `ReplicaRepointed` per repointed pod.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::events::EventType;
use kube::ResourceExt;
use serde_json::json;

use super::executor::{ExecError, Executor, Report};
use super::planner::Plan;
use super::record::{Records, RolesError};
use super::topology::Repoint;
use crate::crd::{FailoverInProgressStatus, LastFailover};
use crate::metrics::{Metrics, SetLabels};

/// Why the master role moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The first role assignment of the set (no master yet, or the bootstrap master waiting
    /// fenced): Normal Events, no `lastFailover`, not counted as a failover.
    Bootstrap,
    /// The master is gone, empty or behind: Warning Events, counted in the failover metric.
    Failover,
    /// The rolling update's switchover: no acknowledged write is lost.
    Planned,
}

/// How the executor makes the new master.
pub enum Method<'a> {
    /// Carry out a planner's `Promote` plan; `demoted` lose their clients once repointed.
    Plan {
        plan: &'a Plan,
        demoted: Vec<String>,
    },
    /// Pause writes on the old master until the target caught up, then swap them; `others`
    /// are repointed under the new master.
    Switchover {
        others: &'a [Repoint],
        catch_up: Duration,
    },
}

/// One move of the master role.
pub struct Promotion<'a> {
    pub kind: Kind,
    /// The master being replaced (`None`: none was recorded).
    pub from: Option<&'a str>,
    pub to: &'a str,
    pub epoch: i64,
    /// Why, for `lastFailover.reason` and the Events.
    pub reason: String,
    pub method: Method<'a>,
    /// The lost-write window of a failover ([`super::window`]), for `lastFailover` and the
    /// metric.
    pub lost_write_window: Option<Duration>,
}

/// What a promotion did.
#[derive(Debug)]
pub struct Promoted {
    /// The move as `lastFailover` shows it (recorded unless it was a bootstrap).
    pub last: LastFailover,
    pub report: Report,
}

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// Nothing was promoted by us (or the marker lets the next round finish it).
    #[error(transparent)]
    Executor(#[from] ExecError),
    #[error(transparent)]
    Record(#[from] RolesError),
}

impl Promotion<'_> {
    fn event_type(&self) -> EventType {
        match self.kind {
            Kind::Failover => EventType::Warning,
            Kind::Bootstrap | Kind::Planned => EventType::Normal,
        }
    }

    fn started_note(&self) -> String {
        match self.kind {
            Kind::Planned => format!(
                "planned switchover from {} to {} (epoch {})",
                self.from.unwrap_or_default(),
                self.to,
                self.epoch
            ),
            Kind::Bootstrap | Kind::Failover => format!(
                "promoting {} (epoch {}) in place of {}: {}",
                self.to,
                self.epoch,
                self.from.filter(|f| !f.is_empty()).unwrap_or("no master"),
                self.reason
            ),
        }
    }
}

/// Moves the master role as described by `p`. `marker` says whether `status.failoverInProgress`
/// already holds this promotion (a resumed failover). On [`PromoteError::Executor`] the labels
/// and the recorded master are untouched; the caller decides about the marker.
pub async fn promote(
    records: &Records<'_>,
    executor: &Executor,
    metrics: &Metrics,
    pods: &[Pod],
    p: Promotion<'_>,
    marker_recorded: bool,
) -> Result<Promoted, PromoteError> {
    let started = Instant::now();
    if !marker_recorded {
        let marker = FailoverInProgressStatus {
            target: p.to.to_string(),
            epoch: p.epoch,
        };
        records
            .status("the failover marker", json!({"failoverInProgress": marker}))
            .await?;
    }
    // A first assignment is not a failover: it gets one `MasterAssigned` at the end.
    if p.kind != Kind::Bootstrap {
        records
            .event(p.event_type(), "FailoverStarted", p.started_note())
            .await;
    }
    let set = records.rr.name_any();
    tracing::info!(name = %set, target = %p.to, epoch = p.epoch, reason = %p.reason, kind = ?p.kind, "failover started");
    let report = match &p.method {
        Method::Plan { plan, demoted } => executor.execute(plan, demoted).await?,
        Method::Switchover { others, catch_up } => {
            executor
                .switchover(
                    p.from.unwrap_or_default(),
                    p.to,
                    others,
                    u64::try_from(p.epoch).unwrap_or(0),
                    *catch_up,
                )
                .await?
        }
    };
    records.labels(pods, Some(p.to)).await?;
    let duration = started.elapsed();
    let duration_ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    let last = LastFailover {
        time: k8s_openapi::jiff::Timestamp::now().to_string(),
        from: p.from.unwrap_or_default().to_string(),
        to: p.to.to_string(),
        reason: p.reason.clone(),
        duration_ms,
        lost_write_window_ms: p
            .lost_write_window
            .map(|w| i64::try_from(w.as_millis()).unwrap_or(i64::MAX)),
    };
    let mut st = json!({"master": p.to, "epoch": p.epoch, "failoverInProgress": null});
    if p.kind != Kind::Bootstrap {
        st["lastFailover"] = json!(&last);
    }
    records.status("the new master", st).await?;
    if p.kind == Kind::Failover {
        let labels = SetLabels::new(&records.rr.namespace().unwrap_or_default(), &set);
        metrics.failover_done(&labels, duration);
        if let Some(w) = p.lost_write_window {
            metrics.lost_write_window(&labels.namespace, &labels.name, w);
        }
    }
    let (reason, note) = match p.kind {
        Kind::Bootstrap => (
            "MasterAssigned",
            format!("{} is master at epoch {} ({})", p.to, p.epoch, p.reason),
        ),
        Kind::Failover | Kind::Planned => (
            "MasterPromoted",
            format!(
                "{} is master at epoch {} after {duration_ms}ms ({})",
                p.to, p.epoch, p.reason
            ),
        ),
    };
    records.event(p.event_type(), reason, note).await;
    records.repointed(&report).await;
    tracing::info!(name = %set, master = %p.to, epoch = p.epoch, duration_ms, failures = report.failures().count(), kind = ?p.kind, "master promoted");
    Ok(Promoted { last, report })
}
