//! The failover planner: observed pods + recorded status -> what the executor should do.
//!
//! Pure: the caller observes (INFO replication of every pod, the CR's status, its own clock)
//! and carries the [`Plan`] out. Planning again on any half-done state converges to the same
//! target, so a crash of the operator between two executor steps is harmless.
//!
//! # Decision order
//! 1. No pods, or no reachable pod: [`Plan::Wait`].
//! 2. A failover in progress (`status.failoverInProgress`, written by the executor *before* its
//!    first REPLICAOF): finish it towards the same target, with the same epoch, as long as the
//!    target is reachable, eligible and not behind another copy.
//! 3. The recorded master (`status.master`) is reachable, says `role:master` and no other
//!    eligible copy strictly contains its data on another history: it stays master
//!    ([`Plan::Keep`], or [`Plan::Repoint`] for pods that follow the wrong upstream, including
//!    a second pod claiming master after a partition). A master is never replaced while it
//!    is healthy, whatever another claimant has.
//! 4. The recorded master is reachable but lost its role (fenced restart, REPLICAOF by hand)
//!    or is *behind* (restarted empty or from an older RDB while replicas hold more of the
//!    old history): promote the best copy at once, which may be the old master itself; it
//!    is repointed as a replica otherwise. This is the fix for the "replicas follow a
//!    restarted empty master and wipe themselves" bug of other operators.
//! 5. The recorded master is unreachable (or its pod is gone): wait until it has been so for
//!    `down_after`, then require enough reachable pods (see [`Settings::min_reachable`]) and
//!    promote the best copy.
//! 6. No recorded master (bootstrap, or status lost): with enough reachable pods, promote the
//!    best copy; an existing master claimant wins among equal copies.
//!
//! # The best copy
//! Candidates are reachable pods that are not in the middle of a sync and, once the set has
//! had a master, hold some history (non-empty dataset or a non-zero offset): a replica that
//! never finished its first sync is never promoted. Copy A *covers* B when B's dataset is empty
//! or A's PSYNC2 history includes B's position ([`super::history`]). The best copy covers every
//! other candidate; among equal copies the preference is: the failover target in progress, the
//! recorded master, reachable masters by epoch (newest first), then the lowest ordinal. The
//! preference for existing masters is what makes re-planning converge after a crash.
//!
//! When no candidate covers all others the histories diverged. Copies whose history is
//! superseded are dropped, and the cover test is repeated: a master of an older epoch is
//! superseded by a master of a newer one; a copy on history H is superseded by one that
//! descends from H (its replid2 is H) and has written on its new history. If still nothing
//! covers the rest, the plan is [`WaitReason::DataAmbiguous`]: a human must choose which
//! writes to keep.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::history::Position;
use super::topology::{desired_upstreams, minimal_repoints, Repoint, Topology};

/// The role a pod reports (`role:` of INFO replication, or the fenced start mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedRole {
    Master,
    Replica,
    /// Started and waiting for the operator to assign a role (no writes, no sync served).
    Fenced,
    /// Reachable but the role could not be read.
    Unknown,
}

/// What the operator saw of one pod of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodObservation {
    /// StatefulSet ordinal (`<name>-<ordinal>`).
    pub ordinal: u32,
    /// Pod name; plans refer to pods by this name.
    pub name: String,
    /// Did the pod answer (INFO replication) in this observation round? When false, the
    /// other fields are not used.
    pub reachable: bool,
    pub role: ObservedRole,
    /// `master_replid`.
    pub replid: String,
    /// `master_replid2` (40 zeros when none).
    pub replid2: String,
    /// `second_repl_offset` (-1 when none).
    pub second_repl_offset: i64,
    /// `master_repl_offset` (for a replica: the offset it has processed).
    pub master_repl_offset: i64,
    /// Replica only: `master_link_status:up`.
    pub link_up: bool,
    /// Replica only: the pod it follows (the caller maps `master_host` back to a pod name).
    pub master_host: Option<String>,
    /// `master_sync_in_progress:1` (a full sync is being received or loaded).
    pub sync_in_progress: bool,
    /// The keyspace is empty (`DBSIZE` 0 in every db).
    pub dataset_empty: bool,
    /// The epoch under which the operator last assigned this pod's role, when the pod
    /// reports it.
    pub epoch: Option<u64>,
}

impl PodObservation {
    fn position(&self) -> Position<'_> {
        Position {
            replid: &self.replid,
            replid2: &self.replid2,
            second_repl_offset: self.second_repl_offset,
            offset: self.master_repl_offset,
        }
    }

    /// Has this copy ever held anything (data now, or a replication stream behind it)?
    fn has_history(&self) -> bool {
        !self.dataset_empty || self.master_repl_offset > 0
    }

    /// What this pod follows now, for repoint computation (`None` unless a replica).
    fn current_upstream(&self) -> Option<&str> {
        match self.role {
            ObservedRole::Replica => self.master_host.as_deref(),
            _ => None,
        }
    }
}

/// A promotion the executor has started (written to status before the first REPLICAOF,
/// cleared when status records the new master).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverInProgress {
    pub target: String,
    /// The epoch the promotion will record.
    pub epoch: u64,
}

/// What the CR's status says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedState {
    /// `status.master`.
    pub master: Option<String>,
    /// `status.epoch` (increments at every promotion; 0 before the first).
    pub epoch: u64,
    pub failover_in_progress: Option<FailoverInProgress>,
}

/// Knobs and clock readings for one planning round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `failover.downAfterSeconds`.
    pub down_after: Duration,
    pub now: SystemTime,
    /// When the operator first saw the recorded master unreachable in the current streak
    /// (`None`: it has not seen it unreachable before this round, e.g. after its own restart).
    pub master_unreachable_since: Option<SystemTime>,
    pub topology: Topology,
    /// Reachable pods required before choosing a new master from a partial view. `None`:
    /// at least half of the observed pods, rounded up (1 of 1, 1 of 2, 2 of 3, 2 of 4, 3 of 5).
    /// Unseen pods might hold newer data than the best visible copy; the caller lists every
    /// pod that exists (a pod that is gone is simply absent), so a set reduced to one pod can
    /// still fail over.
    pub min_reachable: Option<usize>,
}

impl Settings {
    fn needed_reachable(&self, observed: usize) -> usize {
        self.min_reachable.unwrap_or(observed.div_ceil(2)).max(1)
    }
}

/// Why a pod is promoted (the executor records it in `status.lastFailover.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromoteReason {
    /// No master recorded: first assignment (or status was lost).
    NoRecordedMaster,
    /// The recorded master was unreachable for longer than `down_after`.
    MasterUnreachable,
    /// The recorded master came back with an empty dataset while other pods hold data.
    MasterRestartedEmpty,
    /// The recorded master came back with less of the history than another pod.
    MasterBehind,
    /// The recorded master is reachable but no longer reports `role:master` (e.g. fenced
    /// after a restart); the best copy, possibly the same pod, is (re)assigned.
    MasterLostRole,
    /// Finishing a promotion recorded in `failover_in_progress`.
    ResumeFailover,
}

impl fmt::Display for PromoteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PromoteReason::NoRecordedMaster => "no master recorded",
            PromoteReason::MasterUnreachable => {
                "master unreachable for longer than downAfterSeconds"
            }
            PromoteReason::MasterRestartedEmpty => {
                "master restarted with an empty dataset while replicas hold data"
            }
            PromoteReason::MasterBehind => "master restarted with older data than a replica",
            PromoteReason::MasterLostRole => "recorded master no longer reports role master",
            PromoteReason::ResumeFailover => "resuming an interrupted failover",
        })
    }
}

/// Why nothing is done this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    NoPodsObserved,
    NoReachablePods,
    /// The recorded master is unreachable but not yet for `down_after` (`for_` is `None`
    /// when this round is the first to see it unreachable).
    MasterUnreachable {
        master: String,
        for_: Option<Duration>,
        down_after: Duration,
    },
    TooFewReachable {
        reachable: usize,
        observed: usize,
        needed: usize,
    },
    /// Pods answer but none may be promoted (all still syncing, or without any data).
    NoEligibleCandidate {
        reachable: Vec<String>,
    },
    /// The candidates' histories diverged and no rule says which one is current.
    DataAmbiguous {
        pods: Vec<String>,
    },
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::NoPodsObserved => f.write_str("no pods observed"),
            WaitReason::NoReachablePods => f.write_str("no pod is reachable"),
            WaitReason::MasterUnreachable {
                master,
                for_,
                down_after,
            } => write!(
                f,
                "master {master} unreachable for {}ms, failover after {}ms",
                for_.unwrap_or_default().as_millis(),
                down_after.as_millis()
            ),
            WaitReason::TooFewReachable {
                reachable,
                observed,
                needed,
            } => write!(
                f,
                "only {reachable} of {observed} pods reachable, {needed} needed to choose a master safely"
            ),
            WaitReason::NoEligibleCandidate { reachable } => write!(
                f,
                "no pod can be promoted (still syncing or without data): {}",
                reachable.join(", ")
            ),
            WaitReason::DataAmbiguous { pods } => write!(
                f,
                "replication histories diverged, cannot choose between {}",
                pods.join(", ")
            ),
        }
    }
}

/// The planner's decision. Repoint lists are ordered parents first and name only reachable
/// pods whose upstream must change (see [`minimal_repoints`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The recorded master stays and every reachable pod already follows the right upstream.
    Keep,
    /// The recorded master stays; these pods must follow another upstream.
    Repoint(Vec<Repoint>),
    /// Make `pod` the master (REPLICAOF NO ONE, or unfence), move the `role` label, record
    /// `epoch` and `pod` in status, then repoint the others. `epoch` is the one to record:
    /// a resumed failover keeps the epoch it started with.
    Promote {
        pod: String,
        reason: PromoteReason,
        epoch: u64,
        repoint: Vec<Repoint>,
    },
    /// Do nothing this round.
    Wait { reason: WaitReason },
}

/// Decide what to do; see the module documentation for the rules.
pub fn plan(pods: &[PodObservation], recorded: &RecordedState, settings: &Settings) -> Plan {
    if pods.is_empty() {
        return wait(WaitReason::NoPodsObserved);
    }
    let reachable: Vec<&PodObservation> = pods.iter().filter(|p| p.reachable).collect();
    if reachable.is_empty() {
        return wait(WaitReason::NoReachablePods);
    }
    let had_master = recorded.master.is_some() || recorded.epoch > 0;
    let candidates: Vec<&PodObservation> = reachable
        .iter()
        .copied()
        .filter(|p| !p.sync_in_progress && (p.has_history() || !had_master))
        .collect();
    let prefer = preference(recorded, &reachable);
    let next_epoch = recorded.epoch.max(
        recorded
            .failover_in_progress
            .as_ref()
            .map_or(0, |f| f.epoch),
    ) + 1;

    if let Some(marker) = &recorded.failover_in_progress {
        if let Some(target) = candidates.iter().find(|p| p.name == marker.target) {
            if !is_behind(target, &candidates) {
                return promote(
                    target,
                    PromoteReason::ResumeFailover,
                    marker.epoch,
                    &reachable,
                    settings,
                );
            }
        }
        // The target is gone or lost data: plan afresh (with a newer epoch than the marker's).
    }

    let Some(master_name) = recorded.master.as_deref() else {
        if let Some(w) = too_few(pods.len(), reachable.len(), settings) {
            return wait(w);
        }
        return match select(&candidates, &prefer, &reachable) {
            Ok(best) => promote(
                best,
                PromoteReason::NoRecordedMaster,
                next_epoch,
                &reachable,
                settings,
            ),
            Err(w) => wait(w),
        };
    };

    match reachable.iter().find(|p| p.name == master_name) {
        Some(master) => {
            let behind = is_behind(master, &candidates);
            if master.role == ObservedRole::Master && !behind {
                return keep(master, &reachable, settings);
            }
            let reason = match (behind, master.dataset_empty) {
                (true, true) => PromoteReason::MasterRestartedEmpty,
                (true, false) => PromoteReason::MasterBehind,
                (false, _) => PromoteReason::MasterLostRole,
            };
            match select(&candidates, &prefer, &reachable) {
                // Only possible if the cover test disagrees with `is_behind` through a
                // superseded copy; never re-promote a serving master in a loop.
                Ok(best) if best.name == master.name && master.role == ObservedRole::Master => {
                    keep(master, &reachable, settings)
                }
                Ok(best) => promote(best, reason, next_epoch, &reachable, settings),
                Err(w) => wait(w),
            }
        }
        None => {
            let down_for = settings
                .master_unreachable_since
                .map(|since| settings.now.duration_since(since).unwrap_or_default());
            if down_for.is_none_or(|d| d < settings.down_after) {
                return wait(WaitReason::MasterUnreachable {
                    master: master_name.to_string(),
                    for_: down_for,
                    down_after: settings.down_after,
                });
            }
            if let Some(w) = too_few(pods.len(), reachable.len(), settings) {
                return wait(w);
            }
            match select(&candidates, &prefer, &reachable) {
                Ok(best) => promote(
                    best,
                    PromoteReason::MasterUnreachable,
                    next_epoch,
                    &reachable,
                    settings,
                ),
                Err(w) => wait(w),
            }
        }
    }
}

fn wait(reason: WaitReason) -> Plan {
    Plan::Wait { reason }
}

fn too_few(observed: usize, reachable: usize, settings: &Settings) -> Option<WaitReason> {
    let needed = settings.needed_reachable(observed);
    (reachable < needed).then_some(WaitReason::TooFewReachable {
        reachable,
        observed,
        needed,
    })
}

/// Copy `a` holds everything copy `b` holds.
fn covers(a: &PodObservation, b: &PodObservation) -> bool {
    b.dataset_empty || a.position().includes(&b.position())
}

/// Another candidate holds strictly more than `pod`, on a different replication ID. The ID
/// condition keeps a live master from looking behind a replica whose INFO was read a moment
/// after the master's (same ID, higher offset): only a restart or a promotion changes the ID.
fn is_behind(pod: &PodObservation, candidates: &[&PodObservation]) -> bool {
    candidates
        .iter()
        .any(|c| c.name != pod.name && c.replid != pod.replid && covers(c, pod) && !covers(pod, c))
}

/// `a`'s history replaces `b`'s (used only when the copies diverged).
fn supersedes(a: &PodObservation, b: &PodObservation) -> bool {
    if a.name == b.name {
        return false;
    }
    let newer_master_epoch = a.role == ObservedRole::Master
        && b.role == ObservedRole::Master
        && matches!((a.epoch, b.epoch), (Some(x), Some(y)) if x > y);
    let newer_history =
        a.position().descends_from(&b.position()) && a.position().wrote_since_fork();
    newer_master_epoch || newer_history
}

/// Tie-break order among equal copies: names first, then the lowest ordinal.
fn preference(recorded: &RecordedState, reachable: &[&PodObservation]) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(f) = &recorded.failover_in_progress {
        names.push(f.target.clone());
    }
    if let Some(m) = &recorded.master {
        names.push(m.clone());
    }
    let mut claimants: Vec<&&PodObservation> = reachable
        .iter()
        .filter(|p| p.role == ObservedRole::Master)
        .collect();
    // Newest epoch first, unknown epochs last, then by ordinal.
    claimants.sort_by_key(|p| {
        (
            std::cmp::Reverse(p.epoch.map(|e| e + 1).unwrap_or(0)),
            p.ordinal,
        )
    });
    names.extend(claimants.into_iter().map(|p| p.name.clone()));
    names
}

/// The copy that covers all of `pool`, preferred first among equals.
fn dominant<'a>(pool: &[&'a PodObservation], prefer: &[String]) -> Option<&'a PodObservation> {
    let rank = |p: &PodObservation| {
        (
            prefer
                .iter()
                .position(|n| *n == p.name)
                .unwrap_or(usize::MAX),
            p.ordinal,
        )
    };
    pool.iter()
        .copied()
        .filter(|a| pool.iter().all(|b| covers(a, b)))
        .min_by_key(|p| rank(p))
}

fn select<'a>(
    candidates: &[&'a PodObservation],
    prefer: &[String],
    reachable: &[&PodObservation],
) -> Result<&'a PodObservation, WaitReason> {
    if candidates.is_empty() {
        return Err(WaitReason::NoEligibleCandidate {
            reachable: reachable.iter().map(|p| p.name.clone()).collect(),
        });
    }
    if let Some(best) = dominant(candidates, prefer) {
        return Ok(best);
    }
    let current: Vec<&PodObservation> = candidates
        .iter()
        .copied()
        .filter(|b| !candidates.iter().any(|a| supersedes(a, b)))
        .collect();
    dominant(&current, prefer).ok_or_else(|| WaitReason::DataAmbiguous {
        pods: candidates.iter().map(|p| p.name.clone()).collect(),
    })
}

/// Repoints that make every reachable pod follow the topology rooted at `root`.
fn repoints(
    root: &PodObservation,
    reachable: &[&PodObservation],
    settings: &Settings,
) -> Vec<Repoint> {
    let members: Vec<(u32, &str)> = reachable
        .iter()
        .map(|p| (p.ordinal, p.name.as_str()))
        .chain(std::iter::once((root.ordinal, root.name.as_str())))
        .collect();
    let desired = desired_upstreams(settings.topology, &root.name, &members);
    let current: Vec<(&str, Option<&str>)> = reachable
        .iter()
        .filter(|p| p.name != root.name)
        .map(|p| (p.name.as_str(), p.current_upstream()))
        .collect();
    minimal_repoints(&current, &desired)
}

fn keep(master: &PodObservation, reachable: &[&PodObservation], settings: &Settings) -> Plan {
    let moves = repoints(master, reachable, settings);
    if moves.is_empty() {
        Plan::Keep
    } else {
        Plan::Repoint(moves)
    }
}

fn promote(
    pod: &PodObservation,
    reason: PromoteReason,
    epoch: u64,
    reachable: &[&PodObservation],
    settings: &Settings,
) -> Plan {
    Plan::Promote {
        pod: pod.name.clone(),
        reason,
        epoch,
        repoint: repoints(pod, reachable, settings),
    }
}
