//! What the roles step found and did, handed to the status step (the roles step fills it; the
//! status step only reads it).

use crate::crd::{FailoverInProgressStatus, LastFailover, RedisReplication};
use crate::failover::planner::PodObservation;
use crate::model::Validated;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolesOutcome {
    /// One observation per existing pod; pods that could not be reached have
    /// `reachable: false`.
    pub observations: Vec<PodObservation>,
    /// The pod that is master after this step (`None` while no master is known).
    pub master: Option<String>,
    /// `status.epoch` after this step.
    pub epoch: i64,
    /// The last completed failover (carried over from the status when nothing happened now).
    pub last_failover: Option<LastFailover>,
    /// Why the planner is waiting, if it is (a sentence for a condition message).
    pub waiting: Option<String>,
    /// `status.failoverInProgress` after this step (set only while a promotion is unfinished).
    pub failover_in_progress: Option<FailoverInProgressStatus>,
    /// Since when the recorded master has not answered, while it does not.
    pub master_unreachable_since: Option<std::time::SystemTime>,
    /// Something is in motion (master unreachable, failover unfinished, replicas not yet
    /// following): the controller checks again within about a second.
    pub recheck_soon: bool,
    /// When the next check is due sooner than [`RolesOutcome::recheck_soon`]'s second (the
    /// moment an unreachable master's `downAfterSeconds` runs out, less a probe timeout).
    pub recheck_after: Option<std::time::Duration>,
}

impl RolesOutcome {
    /// The outcome before anything is observed or decided: the recorded master (else the
    /// bootstrap master, pod 0), epoch, last failover and marker carried over from the status,
    /// no observations.
    pub fn recorded(model: &Validated, rr: &RedisReplication) -> Self {
        let previous = rr.status.clone().unwrap_or_default();
        RolesOutcome {
            observations: Vec::new(),
            master: model.recorded_master_or_bootstrap(),
            epoch: previous.epoch,
            last_failover: previous.last_failover,
            waiting: None,
            failover_in_progress: previous.failover_in_progress,
            master_unreachable_since: None,
            recheck_soon: false,
            recheck_after: None,
        }
    }
}
