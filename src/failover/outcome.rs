//! What the roles step found and did, handed to the status step (the roles step fills it; the
//! status step only reads it).

use crate::crd::{FailoverInProgressStatus, LastFailover};
use crate::failover::planner::PodObservation;

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
    /// Something is in motion (master unreachable, failover unfinished, replicas not yet
    /// following): the controller checks again within about a second.
    pub recheck_soon: bool,
}
