//! Roles step of reconcile, pure half: who should be master and whom each replica follows.
//!
//! Everything here is plain functions over plain data (no client, no async, no clock reads),
//! so every failover decision is unit-tested with small tables:
//! - [`history`]: PSYNC2 "does this copy contain that one" over replid/replid2/offsets;
//! - [`planner`]: the failover planner, observed pods + recorded status -> a [`planner::Plan`];
//! - [`topology`]: star / chain upstreams and the minimal set of REPLICAOF repoints.
//!
//! The executor (the thin shell that talks RESP to the pods, moves the `role` label and
//! patches status) lives elsewhere and only carries a plan out.

pub mod history;
pub mod planner;
pub mod topology;

pub use planner::{
    plan, FailoverInProgress, ObservedRole, Plan, PodObservation, PromoteReason, RecordedState,
    Settings, WaitReason,
};
pub use topology::{desired_upstreams, minimal_repoints, Repoint, Topology};
