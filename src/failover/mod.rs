//! Failover: the one subsystem that decides and moves roles — who is master and whom each
//! replica follows.
//!
//! Pure half (plain functions over plain data, no client, no async, no clock reads; every
//! decision is unit-tested with small tables):
//! - [`history`]: PSYNC2 "does this copy contain that one" over replid/replid2/offsets;
//! - [`planner`]: observed pods + recorded status -> a [`planner::Plan`];
//! - [`topology`]: star / chain upstreams and the minimal set of REPLICAOF repoints;
//! - [`window`]: the lost-write window of a failover.
//!
//! Shell (talks to pods and to the API server, carries decisions out):
//! - [`probe`]: a small RESP client and the observation of one pod;
//! - [`credentials`]: how those connections authenticate (user, candidate passwords);
//! - [`heartbeat`]: pings every recorded master twice a second, so a hung master is noticed
//!   without waiting for a reconcile;
//! - [`executor`]: carries a plan out over RESP;
//! - [`record`]: the durable records (labels, status merge patches, Events), written before
//!   acting;
//! - [`promote`]: the ONE promotion routine, used by failover and planned switchover;
//! - [`step`]: the failover step of reconcile and the planned switchover;
//! - [`pods`], [`memory`], [`outcome`]: the set's pods, the memory between reconciles, and
//!   what the step hands to the status step.

pub mod credentials;
pub mod executor;
pub mod heartbeat;
pub mod history;
pub mod memory;
pub mod outcome;
pub mod planner;
pub mod pods;
pub mod probe;
pub mod promote;
pub mod record;
pub mod step;
pub mod tls_transport;
pub mod topology;
pub mod window;

pub use memory::RolesMemory;
pub use outcome::RolesOutcome;
pub use planner::{
    plan, FailoverInProgress, ObservedRole, Plan, PodObservation, PromoteReason, RecordedState,
    Settings, WaitReason,
};
pub use record::RolesError;
pub use step::{
    apply_outcome, planned_switchover, record_switchover, step, StepContext, Switchover,
    SwitchoverError,
};
pub use topology::{desired_upstreams, minimal_repoints, Repoint, Topology};
