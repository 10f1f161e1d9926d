//! Roles step of reconcile, pure half: who should be master and whom each replica follows.
//!
//! Everything here is plain functions over plain data (no client, no async, no clock reads),
//! so every failover decision is unit-tested with small tables:
//! - [`history`]: PSYNC2 "does this copy contain that one" over replid/replid2/offsets;
//! - [`planner`]: the failover planner, observed pods + recorded status -> a [`planner::Plan`];
//! - [`topology`]: star / chain upstreams and the minimal set of REPLICAOF repoints.
//!
//! The impure half: [`probe`] (a small RESP client and the observation of one pod) and
//! [`executor`] (carries a plan out over RESP). Moving the `role` label and recording status
//! is the controller's roles step (`controller::roles`).

pub mod executor;
pub mod history;
pub mod outcome;
pub mod planner;
pub mod probe;
pub mod step;
pub mod topology;

pub use planner::{
    plan, FailoverInProgress, ObservedRole, Plan, PodObservation, PromoteReason, RecordedState,
    Settings, WaitReason,
};
pub use topology::{desired_upstreams, minimal_repoints, Repoint, Topology};
pub use outcome::RolesOutcome;
pub use step::{
    apply_outcome, planned_switchover, record_switchover, step, RolesError, RolesMemory,
    StepContext, Switchover,
};
