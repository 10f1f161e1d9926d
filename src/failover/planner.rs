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
//! 3. The recorded master (`status.master`) is reachable, says `role:master` and no eligible
//!    replica or fenced pod strictly contains its data on another history: it stays master
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
//! Repoints lay the configured [`Topology`] over the *reachable* pods with the master as root
//! and name only pods whose upstream changes; unreachable pods are placed by a later round
//! once they answer.
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
    /// Answered `-BUSY`: alive, running a script (or function) past `busy-reply-threshold`,
    /// so its replication state cannot be read until the script ends or is killed. A busy
    /// master is not down (Redis refuses even INFO then), and a busy pod is never promoted.
    Busy,
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
    /// Every pod restarted from persistence that kept no replication position (offset 0
    /// everywhere), so histories cannot be compared: the recorded master keeps its role.
    ColdRestart,
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
            PromoteReason::ColdRestart => {
                "every pod restarted without replication history; the recorded master keeps its role"
            }
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
    /// The recorded master answers `-BUSY` (a long script): alive, so no failover.
    MasterBusy {
        master: String,
    },
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitReason::NoPodsObserved => f.write_str("no pods observed"),
            WaitReason::NoReachablePods => f.write_str("no pod is reachable"),
            // No running counter here: this text lands in condition messages, which must
            // not change on every probe of an outage (status.masterUnreachableSince has
            // the time).
            WaitReason::MasterUnreachable {
                master, down_after, ..
            } => write!(
                f,
                "master {master} does not answer; failover after {}ms without an answer",
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
            WaitReason::MasterBusy { master } => write!(
                f,
                "master {master} is busy running a script (answers BUSY); it is alive, so no failover"
            ),
        }
    }
}

/// The planner's decision. Repoint lists are ordered parents first and name only reachable
/// pods whose upstream must change (see [`minimal_repoints`]).
///
/// Contract with the executor, which is what makes re-planning after a crash converge:
/// for `Promote`, write `failover_in_progress {pod, epoch}` to status *before* the first
/// command, then promote, move the `role` label, repoint, and finally record
/// `master = pod`, `epoch` and clear the marker in one status patch. Every step must be
/// idempotent (REPLICAOF NO ONE on a master, REPLICAOF to the current upstream are no-ops).
/// On `Keep` / `Repoint`, a leftover marker (its target was lost) is simply cleared.
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

/// What one planning round works from, derived once from the observations.
struct Round<'a> {
    pods: &'a [PodObservation],
    reachable: Vec<&'a PodObservation>,
    /// Reachable pods that may be promoted (not syncing; holding data once a master existed).
    candidates: Vec<&'a PodObservation>,
    prefer: Vec<String>,
    next_epoch: u64,
    settings: &'a Settings,
}

impl Round<'_> {
    fn promote(&self, pod: &PodObservation, reason: PromoteReason, epoch: u64) -> Plan {
        promote(pod, reason, epoch, &self.reachable, self.settings)
    }

    fn keep(&self, master: &PodObservation) -> Plan {
        keep(master, &self.reachable, self.settings)
    }

    /// Promote the best of `pool` with a new epoch, or wait for why there is none.
    fn promote_best(&self, pool: &[&PodObservation], reason: PromoteReason) -> Plan {
        match select(pool, &self.prefer, &self.reachable) {
            Ok(best) => self.promote(best, reason, self.next_epoch),
            Err(w) => wait(w),
        }
    }
}

/// Decide what to do; see the module documentation for the rules.
pub fn plan(pods: &[PodObservation], recorded: &RecordedState, settings: &Settings) -> Plan {
    if pods.is_empty() {
        return wait(WaitReason::NoPodsObserved);
    }
    // A master busy with a script is alive: promoting a replica would split the set the
    // moment the script ends (Sentinel, too, does not count BUSY as down).
    if let Some(m) = recorded.master.as_deref() {
        if pods
            .iter()
            .any(|p| p.name == m && p.reachable && p.role == ObservedRole::Busy)
        {
            return wait(WaitReason::MasterBusy {
                master: m.to_string(),
            });
        }
    }
    // Busy pods cannot tell their replication state: they are neither candidates nor
    // counted as observed this round.
    let reachable: Vec<&PodObservation> = pods
        .iter()
        .filter(|p| p.reachable && p.role != ObservedRole::Busy)
        .collect();
    if reachable.is_empty() {
        return wait(WaitReason::NoReachablePods);
    }
    let had_master = recorded.master.is_some() || recorded.epoch > 0;
    let candidates: Vec<&PodObservation> = reachable
        .iter()
        .copied()
        .filter(|p| !p.sync_in_progress && (p.has_history() || !had_master))
        .collect();
    let round = Round {
        pods,
        prefer: preference(recorded, &reachable),
        next_epoch: recorded.epoch.max(
            recorded
                .failover_in_progress
                .as_ref()
                .map_or(0, |f| f.epoch),
        ) + 1,
        reachable,
        candidates,
        settings,
    };

    if let Some(marker) = &recorded.failover_in_progress {
        if let Some(target) = round.candidates.iter().find(|p| p.name == marker.target) {
            if !is_behind(target, &round.candidates) {
                return round.promote(target, PromoteReason::ResumeFailover, marker.epoch);
            }
        }
        // The target is gone or lost data: plan afresh (with a newer epoch than the marker's).
    }

    let Some(master_name) = recorded.master.as_deref() else {
        if let Some(w) = too_few(pods.len(), answering(pods), settings) {
            return wait(w);
        }
        return round.promote_best(&round.candidates, PromoteReason::NoRecordedMaster);
    };
    match round.reachable.iter().find(|p| p.name == master_name) {
        Some(master) => plan_master_reachable(&round, master),
        None => plan_master_unreachable(&round, master_name),
    }
}

/// The recorded master answers: keep it unless it lost its role or its data.
fn plan_master_reachable(round: &Round<'_>, master: &PodObservation) -> Plan {
    let behind = is_behind(master, &round.candidates);
    if master.role == ObservedRole::Master && !behind {
        return round.keep(master);
    }
    let reason = match (behind, master.dataset_empty) {
        (true, true) => PromoteReason::MasterRestartedEmpty,
        (true, false) => PromoteReason::MasterBehind,
        (false, _) => PromoteReason::MasterLostRole,
    };
    // The recorded master is a candidate even without any history: if it restarted
    // empty and no other reachable pod holds anything either, re-assigning it loses
    // nothing visible, and waiting would never end.
    let mut pool = round.candidates.clone();
    if !master.sync_in_progress && !pool.iter().any(|p| p.name == master.name) {
        pool.push(master);
    }
    match select(&pool, &round.prefer, &round.reachable) {
        // Only possible if the cover test disagrees with `is_behind` through a
        // superseded copy; never re-promote a serving master in a loop.
        Ok(best) if best.name == master.name && master.role == ObservedRole::Master => {
            round.keep(master)
        }
        Ok(best) => round.promote(best, reason, round.next_epoch),
        // The whole set restarted from persistence that keeps no replication position
        // (an AOF, or an RDB written without replication info): every copy has offset
        // 0 and a fresh ID, so histories cannot be compared. The recorded master's copy
        // is the one every replica was fed from; re-assigning it is what Redis does on
        // such a restart (the replicas resync from it).
        // The recorded master restarted (fenced) from a snapshot whose history no
        // longer relates to its replicas' (e.g. an RDB received two promotions ago),
        // while reachable replicas still carry the live history it was feeding them:
        // its copy is from the past, theirs is current. The best replica is promoted.
        Err(WaitReason::DataAmbiguous { .. })
            if master.role == ObservedRole::Fenced
                && pool
                    .iter()
                    .any(|p| p.name != master.name && p.master_repl_offset > 0) =>
        {
            let others: Vec<&PodObservation> = pool
                .iter()
                .copied()
                .filter(|p| p.name != master.name)
                .collect();
            round.promote_best(&others, PromoteReason::MasterBehind)
        }
        Err(WaitReason::DataAmbiguous { .. })
            if !master.dataset_empty
                && !master.sync_in_progress
                && pool.iter().all(|p| p.master_repl_offset == 0) =>
        {
            round.promote(master, PromoteReason::ColdRestart, round.next_epoch)
        }
        Err(w) => wait(w),
    }
}

/// The recorded master does not answer: promote once it has been down for `down_after`.
fn plan_master_unreachable(round: &Round<'_>, master_name: &str) -> Plan {
    let settings = round.settings;
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
    if let Some(w) = too_few(round.pods.len(), answering(round.pods), settings) {
        return wait(w);
    }
    round.promote_best(&round.candidates, PromoteReason::MasterUnreachable)
}

fn wait(reason: WaitReason) -> Plan {
    Plan::Wait { reason }
}

/// Pods that answered this round, busy ones included: for the quorum they count as seen.
fn answering(pods: &[PodObservation]) -> usize {
    pods.iter().filter(|p| p.reachable).count()
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

/// Another non-master candidate holds strictly more than `pod`, on a different replication ID.
///
/// This is how a restarted master shows: a fresh random ID (empty, or loaded from an older
/// RDB) while its replicas kept more of the old history. The ID condition keeps a live master
/// from looking behind a replica whose INFO was read a moment after the master's (same ID,
/// higher offset): only a restart or a promotion changes the ID. Other masters do not count:
/// a stale master from before a partition may hold writes a freshly promoted master has not
/// seen, but those were accepted outside the current epoch and must not unseat it.
fn is_behind(pod: &PodObservation, candidates: &[&PodObservation]) -> bool {
    candidates.iter().any(|c| {
        c.name != pod.name
            && c.role != ObservedRole::Master
            && c.replid != pod.replid
            && covers(c, pod)
            && !covers(pod, c)
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::history::NO_REPLID;

    const T0: Duration = Duration::from_secs(1_000_000);
    const DOWN_AFTER: Duration = Duration::from_secs(5);

    fn name(ordinal: u32) -> String {
        format!("r-{ordinal}")
    }

    /// A replica of `r-<of>` on history `replid` at `offset`, link up, holding data.
    fn replica(ordinal: u32, of: u32, replid: &str, offset: i64) -> PodObservation {
        PodObservation {
            ordinal,
            name: name(ordinal),
            reachable: true,
            role: ObservedRole::Replica,
            replid: replid.to_string(),
            replid2: NO_REPLID.to_string(),
            second_repl_offset: -1,
            master_repl_offset: offset,
            link_up: true,
            master_host: Some(name(of)),
            sync_in_progress: false,
            dataset_empty: false,
            epoch: None,
        }
    }

    /// A master on history `replid` at `offset`, holding data.
    fn master(ordinal: u32, replid: &str, offset: i64) -> PodObservation {
        PodObservation {
            role: ObservedRole::Master,
            master_host: None,
            link_up: false,
            ..replica(ordinal, ordinal, replid, offset)
        }
    }

    fn down(mut p: PodObservation) -> PodObservation {
        p.reachable = false;
        p
    }

    fn link_down(mut p: PodObservation) -> PodObservation {
        p.link_up = false;
        p
    }

    /// What a master looks like after `REPLICAOF NO ONE` (or a restart from an RDB with
    /// replication info): new ID, the old one kept as replid2 up to its offset.
    fn forked(mut p: PodObservation, new_replid: &str) -> PodObservation {
        p.replid2 = std::mem::replace(&mut p.replid, new_replid.to_string());
        p.second_repl_offset = p.master_repl_offset + 1;
        p
    }

    fn wrote(mut p: PodObservation, bytes: i64) -> PodObservation {
        p.master_repl_offset += bytes;
        p
    }

    fn with_epoch(mut p: PodObservation, epoch: u64) -> PodObservation {
        p.epoch = Some(epoch);
        p
    }

    /// A pod that just (re)started with nothing: random ID, offset 0, empty dataset.
    fn fresh(ordinal: u32, role: ObservedRole) -> PodObservation {
        PodObservation {
            role,
            replid: format!("fresh-{ordinal}"),
            master_repl_offset: 0,
            dataset_empty: true,
            ..master(ordinal, "", 0)
        }
    }

    fn recorded(master: u32, epoch: u64) -> RecordedState {
        RecordedState {
            master: Some(name(master)),
            epoch,
            failover_in_progress: None,
        }
    }

    fn settings(unreachable_for: Option<u64>) -> Settings {
        let now = SystemTime::UNIX_EPOCH + T0;
        Settings {
            down_after: DOWN_AFTER,
            now,
            master_unreachable_since: unreachable_for.map(|s| now - Duration::from_secs(s)),
            topology: Topology::Star,
            min_reachable: None,
        }
    }

    fn to(pod: u32, upstream: u32) -> Repoint {
        Repoint::new(name(pod), name(upstream))
    }

    fn promote_plan(pod: u32, reason: PromoteReason, epoch: u64, repoint: Vec<Repoint>) -> Plan {
        Plan::Promote {
            pod: name(pod),
            reason,
            epoch,
            repoint,
        }
    }

    struct Case {
        name: &'static str,
        pods: Vec<PodObservation>,
        recorded: RecordedState,
        settings: Settings,
        want: Plan,
    }

    fn check(cases: Vec<Case>) {
        for case in cases {
            let got = plan(&case.pods, &case.recorded, &case.settings);
            assert_eq!(got, case.want, "case: {}", case.name);
        }
    }

    #[test]
    fn healthy_set_is_kept_and_misplaced_replicas_are_repointed() {
        check(vec![
            Case {
                name: "master and two in-sync replicas: keep",
                pods: vec![master(0, "M", 100), replica(1, 0, "M", 100), replica(2, 0, "M", 90)],
                recorded: recorded(0, 1),
                settings: settings(None),
                want: Plan::Keep,
            },
            Case {
                name: "a replica that INFO shows ahead of the master (read later) does not unseat it",
                pods: vec![master(0, "M", 100), replica(1, 0, "M", 140), replica(2, 0, "M", 90)],
                recorded: recorded(0, 1),
                settings: settings(None),
                want: Plan::Keep,
            },
            Case {
                name: "fenced replica after a restart is given its upstream",
                pods: vec![
                    master(0, "M", 100),
                    replica(1, 0, "M", 100),
                    PodObservation {
                        role: ObservedRole::Fenced,
                        master_host: None,
                        ..replica(2, 0, "M", 80)
                    },
                ],
                recorded: recorded(0, 1),
                settings: settings(None),
                want: Plan::Repoint(vec![to(2, 0)]),
            },
            Case {
                name: "replica following a stale upstream is repointed; an unreachable one is left for later",
                pods: vec![
                    master(0, "M", 100),
                    replica(1, 3, "M", 100),
                    down(replica(2, 3, "M", 90)),
                ],
                recorded: recorded(0, 1),
                settings: settings(None),
                want: Plan::Repoint(vec![to(1, 0)]),
            },
            Case {
                name: "a replica still syncing from the right master is not disturbed",
                pods: vec![
                    master(0, "M", 100),
                    PodObservation {
                        sync_in_progress: true,
                        ..link_down(replica(1, 0, "old", 3))
                    },
                ],
                recorded: recorded(0, 1),
                settings: settings(None),
                want: Plan::Keep,
            },
        ]);
    }

    #[test]
    fn the_unreachable_wait_reads_the_same_all_through_an_outage() {
        // Its text lands in condition messages: a running counter there would rewrite the
        // status on every probe (issue 20); the time is in status.masterUnreachableSince.
        let at = |ms: u64| {
            WaitReason::MasterUnreachable {
                master: name(0),
                for_: Some(Duration::from_millis(ms)),
                down_after: DOWN_AFTER,
            }
            .to_string()
        };
        assert_eq!(at(89), at(195));
        assert_eq!(at(89), at(4_000));
        assert!(at(89).contains(&name(0)), "{}", at(89));
    }

    #[test]
    fn a_master_busy_with_a_script_is_never_failed_over() {
        let busy_master = crate::failover::probe::busy(&name(0), 0);
        let pods = vec![
            busy_master.clone(),
            link_down(replica(1, 0, "M", 900)),
            link_down(replica(2, 0, "M", 950)),
        ];
        let busy_wait = Plan::Wait {
            reason: WaitReason::MasterBusy { master: name(0) },
        };
        check(vec![
            Case {
                name: "busy master, even long past downAfter: wait, no promotion",
                pods: pods.clone(),
                recorded: recorded(0, 3),
                settings: settings(Some(3600)),
                want: busy_wait.clone(),
            },
            Case {
                name: "busy master, first round",
                pods,
                recorded: recorded(0, 3),
                settings: settings(None),
                want: busy_wait,
            },
            Case {
                name: "master down and the best replica busy: the busy one is not promoted",
                pods: vec![
                    down(master(0, "M", 1000)),
                    link_down(replica(1, 0, "M", 900)),
                    crate::failover::probe::busy(&name(2), 2),
                ],
                recorded: recorded(0, 3),
                settings: settings(Some(60)),
                want: promote_plan(1, PromoteReason::MasterUnreachable, 4, vec![]),
            },
        ]);
    }

    #[test]
    fn master_dead_with_two_replicas_at_different_offsets_promotes_the_most_advanced() {
        let pods = vec![
            down(master(0, "M", 1000)),
            link_down(replica(1, 0, "M", 900)),
            link_down(replica(2, 0, "M", 950)),
        ];
        check(vec![
            Case {
                name: "first round that sees the master down: wait",
                pods: pods.clone(),
                recorded: recorded(0, 3),
                settings: settings(None),
                want: Plan::Wait {
                    reason: WaitReason::MasterUnreachable {
                        master: name(0),
                        for_: None,
                        down_after: DOWN_AFTER,
                    },
                },
            },
            Case {
                name: "unreachable for less than downAfter: wait",
                pods: pods.clone(),
                recorded: recorded(0, 3),
                settings: settings(Some(4)),
                want: Plan::Wait {
                    reason: WaitReason::MasterUnreachable {
                        master: name(0),
                        for_: Some(Duration::from_secs(4)),
                        down_after: DOWN_AFTER,
                    },
                },
            },
            Case {
                name: "past downAfter: promote the highest offset, repoint the other, next epoch",
                pods: pods.clone(),
                recorded: recorded(0, 3),
                settings: settings(Some(5)),
                want: promote_plan(2, PromoteReason::MasterUnreachable, 4, vec![to(1, 2)]),
            },
            Case {
                name: "equal offsets: the lowest ordinal wins",
                pods: vec![
                    down(master(0, "M", 1000)),
                    link_down(replica(2, 0, "M", 950)),
                    link_down(replica(1, 0, "M", 950)),
                ],
                recorded: recorded(0, 3),
                settings: settings(Some(60)),
                want: promote_plan(1, PromoteReason::MasterUnreachable, 4, vec![to(2, 1)]),
            },
            Case {
                name: "a replica on an older history loses to one on the current history despite a higher offset",
                pods: vec![
                    down(master(0, "X", 2000)),
                    // r-1 learned the current history X (descending from M at 1000) and
                    // received writes on it; r-2 kept writes of a stale master on M past 1000.
                    link_down(wrote(forked(replica(1, 0, "M", 1000), "X"), 500)),
                    link_down(replica(2, 0, "M", 1800)),
                ],
                recorded: recorded(0, 3),
                settings: settings(Some(60)),
                want: promote_plan(1, PromoteReason::MasterUnreachable, 4, vec![to(2, 1)]),
            },
            Case {
                name: "the pod gone from the list counts as unreachable",
                pods: vec![link_down(replica(1, 0, "M", 900)), link_down(replica(2, 0, "M", 950))],
                recorded: recorded(0, 3),
                settings: settings(Some(5)),
                want: promote_plan(2, PromoteReason::MasterUnreachable, 4, vec![to(1, 2)]),
            },
        ]);
    }

    /// A pod restarted from persistence without replication info (e.g. an AOF): fresh ID,
    /// offset 0, but holding data.
    fn reloaded(ordinal: u32, role: ObservedRole) -> PodObservation {
        PodObservation {
            dataset_empty: false,
            ..fresh(ordinal, role)
        }
    }

    fn master_fenced(mut p: PodObservation) -> PodObservation {
        p.role = ObservedRole::Fenced;
        p
    }

    #[test]
    fn whole_set_restarted_without_replication_history() {
        check(vec![
            Case {
                name: "cold restart from AOF: the recorded master keeps its role",
                pods: vec![
                    reloaded(0, ObservedRole::Fenced),
                    link_down(reloaded(1, ObservedRole::Replica)),
                    link_down(reloaded(2, ObservedRole::Replica)),
                ],
                recorded: recorded(0, 1),
                settings: settings(None),
                want: promote_plan(0, PromoteReason::ColdRestart, 2, vec![to(1, 0), to(2, 0)]),
            },
            Case {
                name: "cold restart, recorded master came back empty: the copies are ambiguous",
                pods: vec![
                    fresh(0, ObservedRole::Fenced),
                    link_down(reloaded(1, ObservedRole::Replica)),
                    link_down(reloaded(2, ObservedRole::Replica)),
                ],
                recorded: recorded(0, 1),
                settings: settings(None),
                want: Plan::Wait {
                    reason: WaitReason::DataAmbiguous {
                        pods: vec![name(1), name(2), name(0)],
                    },
                },
            },
            Case {
                name: "master reloaded without position, a replica kept the live history: the replica wins",
                pods: vec![
                    reloaded(0, ObservedRole::Fenced),
                    link_down(replica(1, 0, "M", 5000)),
                ],
                recorded: recorded(0, 1),
                settings: settings(None),
                want: promote_plan(1, PromoteReason::MasterBehind, 2, vec![to(0, 1)]),
            },
            Case {
                name: "master restarted fenced from an RDB of an older, unrelated history: the live replicas win",
                pods: vec![
                    master_fenced(forked(master(0, "OLD", 300), "RESTORED")),
                    link_down(forked(replica(1, 0, "LIVE", 500), "NEWER")),
                    link_down(forked(replica(2, 0, "LIVE", 500), "NEWER")),
                ],
                recorded: recorded(0, 4),
                settings: settings(None),
                want: promote_plan(1, PromoteReason::MasterBehind, 5, vec![to(0, 1), to(2, 1)]),
            },
            Case {
                name: "the same with a reachable master that is not fenced: it is never replaced",
                pods: vec![
                    forked(master(0, "OLD", 300), "RESTORED"),
                    link_down(forked(replica(1, 0, "LIVE", 500), "NEWER")),
                ],
                recorded: recorded(0, 4),
                settings: settings(None),
                want: Plan::Keep,
            },
        ]);
    }

    #[test]
    fn master_restarted_empty_while_replicas_hold_data_is_never_the_source() {
        check(vec![
            Case {
                name: "restarted as a plain master: best replica promoted at once, empty pod repointed",
                pods: vec![
                    fresh(0, ObservedRole::Master),
                    link_down(replica(1, 0, "M", 5000)),
                    link_down(replica(2, 0, "M", 4990)),
                ],
                recorded: recorded(0, 2),
                // No downAfter wait: the pod answers, it just must not be followed.
                settings: settings(None),
                want: promote_plan(1, PromoteReason::MasterRestartedEmpty, 3, vec![to(0, 1), to(2, 1)]),
            },
            Case {
                name: "restarted fenced and empty: same",
                pods: vec![
                    fresh(0, ObservedRole::Fenced),
                    link_down(replica(1, 0, "M", 5000)),
                    link_down(replica(2, 0, "M", 4990)),
                ],
                recorded: recorded(0, 2),
                settings: settings(None),
                want: promote_plan(1, PromoteReason::MasterRestartedEmpty, 3, vec![to(0, 1), to(2, 1)]),
            },
            Case {
                name: "restarted from an older RDB (replid2 = old ID): the replica with more wins",
                pods: vec![
                    forked(master(0, "M", 4000), "Y"),
                    link_down(replica(1, 0, "M", 5000)),
                ],
                recorded: recorded(0, 2),
                settings: settings(None),
                want: promote_plan(1, PromoteReason::MasterBehind, 3, vec![to(0, 1)]),
            },
            Case {
                name: "restarted fenced with all its data: it is simply re-assigned",
                pods: vec![
                    PodObservation {
                        role: ObservedRole::Fenced,
                        ..forked(master(0, "M", 5000), "Y")
                    },
                    link_down(replica(1, 0, "M", 5000)),
                    link_down(replica(2, 0, "M", 4000)),
                ],
                recorded: recorded(0, 2),
                settings: settings(None),
                want: promote_plan(0, PromoteReason::MasterLostRole, 3, vec![]),
            },
            Case {
                name: "a new set that never had data keeps its empty master",
                pods: vec![
                    fresh(0, ObservedRole::Master),
                    PodObservation {
                        replid: "fresh-0".into(),
                        dataset_empty: true,
                        ..replica(1, 0, "fresh-0", 0)
                    },
                ],
                recorded: recorded(0, 1),
                settings: settings(None),
                want: Plan::Keep,
            },
        ]);
    }

    #[test]
    fn two_pods_claiming_master_after_a_partition() {
        // r-0 was master at epoch 3 on history M; cut off, r-1 was promoted at epoch 4
        // (history X from M at 1000) and took writes; r-0 also took writes on M.
        let stale = with_epoch(wrote(master(0, "M", 1000), 200), 3);
        let current = with_epoch(wrote(forked(master(1, "M", 1000), "X"), 300), 4);
        let follower = replica(2, 1, "X", 1300);
        check(vec![
            Case {
                name: "the claimant recorded in status stays, the other is repointed",
                pods: vec![stale.clone(), current.clone(), follower.clone()],
                recorded: recorded(1, 4),
                settings: settings(None),
                want: Plan::Repoint(vec![to(0, 1)]),
            },
            Case {
                name: "the recorded claimant stays even if the other shows a higher offset",
                pods: vec![
                    wrote(stale.clone(), 5000),
                    current.clone(),
                    follower.clone(),
                ],
                recorded: recorded(1, 4),
                settings: settings(None),
                want: Plan::Repoint(vec![to(0, 1)]),
            },
            Case {
                name: "a freshly promoted master that has not written yet stays, though the stale one wrote more",
                pods: vec![
                    stale.clone(),
                    with_epoch(forked(master(1, "M", 1000), "X"), 4),
                    forked(replica(2, 1, "M", 1000), "X"),
                ],
                recorded: recorded(1, 4),
                settings: settings(None),
                want: Plan::Repoint(vec![to(0, 1)]),
            },
            Case {
                name: "no master in status: the newer epoch wins between diverged histories",
                pods: vec![stale.clone(), current.clone(), follower.clone()],
                recorded: RecordedState::default(),
                settings: settings(None),
                want: promote_plan(1, PromoteReason::NoRecordedMaster, 1, vec![to(0, 1)]),
            },
            Case {
                name: "no master in status, no epochs: the history that descends and wrote wins",
                pods: vec![
                    wrote(master(0, "M", 1000), 200),
                    wrote(forked(master(1, "M", 1000), "X"), 100),
                ],
                recorded: RecordedState::default(),
                settings: settings(None),
                want: promote_plan(1, PromoteReason::NoRecordedMaster, 1, vec![to(0, 1)]),
            },
            Case {
                name: "no master in status, same history: the newest data wins",
                pods: vec![master(0, "M", 900), master(1, "M", 1000)],
                recorded: RecordedState::default(),
                settings: settings(None),
                want: promote_plan(1, PromoteReason::NoRecordedMaster, 1, vec![to(0, 1)]),
            },
            Case {
                name: "no master in status, unrelated histories with data: wait for a human",
                pods: vec![master(0, "M", 900), master(1, "Q", 1000)],
                recorded: RecordedState::default(),
                settings: settings(None),
                want: Plan::Wait {
                    reason: WaitReason::DataAmbiguous {
                        pods: vec![name(0), name(1)],
                    },
                },
            },
        ]);
    }

    #[test]
    fn only_one_pod_left() {
        check(vec![
            Case {
                name: "it is the master: keep",
                pods: vec![master(0, "M", 100)],
                recorded: recorded(0, 1),
                settings: settings(None),
                want: Plan::Keep,
            },
            Case {
                name: "a replica with data, master gone past downAfter: promote it",
                pods: vec![link_down(replica(1, 0, "M", 90))],
                recorded: recorded(0, 1),
                settings: settings(Some(6)),
                want: promote_plan(1, PromoteReason::MasterUnreachable, 2, vec![]),
            },
            Case {
                name: "a replica with data, master gone for less than downAfter: wait",
                pods: vec![link_down(replica(1, 0, "M", 90))],
                recorded: recorded(0, 1),
                settings: settings(Some(2)),
                want: Plan::Wait {
                    reason: WaitReason::MasterUnreachable {
                        master: name(0),
                        for_: Some(Duration::from_secs(2)),
                        down_after: DOWN_AFTER,
                    },
                },
            },
            Case {
                name: "a replica that never received anything: wait",
                pods: vec![link_down(fresh(1, ObservedRole::Replica))],
                recorded: recorded(0, 1),
                settings: settings(Some(60)),
                want: Plan::Wait {
                    reason: WaitReason::NoEligibleCandidate {
                        reachable: vec![name(1)],
                    },
                },
            },
            Case {
                name: "bootstrap of a one-pod set: the pod becomes master at epoch 1",
                pods: vec![fresh(0, ObservedRole::Fenced)],
                recorded: RecordedState::default(),
                settings: settings(None),
                want: promote_plan(0, PromoteReason::NoRecordedMaster, 1, vec![]),
            },
        ]);
    }

    #[test]
    fn replicas_still_syncing_are_never_promoted() {
        check(vec![
            Case {
                name: "the only other replica is mid full sync: wait",
                pods: vec![
                    down(master(0, "M", 1000)),
                    PodObservation {
                        sync_in_progress: true,
                        ..link_down(replica(1, 0, "M", 1000))
                    },
                ],
                recorded: recorded(0, 1),
                settings: settings(Some(60)),
                want: Plan::Wait {
                    reason: WaitReason::NoEligibleCandidate {
                        reachable: vec![name(1)],
                    },
                },
            },
            Case {
                name: "a syncing replica with a higher offset loses to a finished one",
                pods: vec![
                    down(master(0, "M", 1000)),
                    PodObservation {
                        sync_in_progress: true,
                        ..link_down(replica(1, 0, "M", 1000))
                    },
                    link_down(replica(2, 0, "M", 700)),
                ],
                recorded: recorded(0, 1),
                settings: settings(Some(60)),
                want: promote_plan(2, PromoteReason::MasterUnreachable, 2, vec![to(1, 2)]),
            },
            Case {
                name: "link down and no data: never promoted, the replica with data is",
                pods: vec![
                    down(master(0, "M", 1000)),
                    link_down(fresh(1, ObservedRole::Replica)),
                    link_down(replica(2, 0, "M", 700)),
                ],
                recorded: recorded(0, 1),
                settings: settings(Some(60)),
                want: promote_plan(2, PromoteReason::MasterUnreachable, 2, vec![to(1, 2)]),
            },
        ]);
    }

    #[test]
    fn bootstrap_and_lost_status_choose_the_best_copy() {
        check(vec![
            Case {
                name: "new set, all pods empty and fenced: the lowest ordinal becomes master at epoch 1",
                pods: vec![
                    fresh(2, ObservedRole::Fenced),
                    fresh(0, ObservedRole::Fenced),
                    fresh(1, ObservedRole::Fenced),
                ],
                recorded: RecordedState::default(),
                settings: settings(None),
                want: promote_plan(0, PromoteReason::NoRecordedMaster, 1, vec![to(1, 0), to(2, 0)]),
            },
            Case {
                name: "status lost, pods restarted fenced with their data: the most advanced copy wins",
                pods: vec![
                    PodObservation {
                        role: ObservedRole::Fenced,
                        ..forked(master(0, "M", 700), "a")
                    },
                    PodObservation {
                        role: ObservedRole::Fenced,
                        master_host: None,
                        ..replica(1, 0, "M", 900)
                    },
                    fresh(2, ObservedRole::Fenced),
                ],
                recorded: RecordedState::default(),
                settings: settings(None),
                want: promote_plan(1, PromoteReason::NoRecordedMaster, 1, vec![to(0, 1), to(2, 1)]),
            },
            Case {
                name: "a set that never had data: its master restarted fenced is re-assigned, not waited on forever",
                pods: vec![
                    fresh(0, ObservedRole::Fenced),
                    link_down(PodObservation {
                        dataset_empty: true,
                        ..replica(1, 0, "fresh-0", 0)
                    }),
                ],
                recorded: recorded(0, 1),
                settings: settings(None),
                want: promote_plan(0, PromoteReason::MasterLostRole, 2, vec![]),
            },
        ]);
    }

    #[test]
    fn too_few_pods_observed_to_decide_safely() {
        check(vec![
            Case {
                name: "no pods at all",
                pods: vec![],
                recorded: recorded(0, 1),
                settings: settings(Some(60)),
                want: Plan::Wait {
                    reason: WaitReason::NoPodsObserved,
                },
            },
            Case {
                name: "no pod answers",
                pods: vec![down(master(0, "M", 1)), down(replica(1, 0, "M", 1))],
                recorded: recorded(0, 1),
                settings: settings(Some(60)),
                want: Plan::Wait {
                    reason: WaitReason::NoReachablePods,
                },
            },
            Case {
                name: "master and one of two replicas unreachable: the unseen one may be newer",
                pods: vec![
                    down(master(0, "M", 1000)),
                    down(replica(1, 0, "M", 1000)),
                    link_down(replica(2, 0, "M", 700)),
                ],
                recorded: recorded(0, 1),
                settings: settings(Some(60)),
                want: Plan::Wait {
                    reason: WaitReason::TooFewReachable {
                        reachable: 1,
                        observed: 3,
                        needed: 2,
                    },
                },
            },
            Case {
                name: "an explicit minimum of 1 lets the last visible replica take over",
                pods: vec![
                    down(master(0, "M", 1000)),
                    down(replica(1, 0, "M", 1000)),
                    link_down(replica(2, 0, "M", 700)),
                ],
                recorded: recorded(0, 1),
                settings: Settings {
                    min_reachable: Some(1),
                    ..settings(Some(60))
                },
                want: promote_plan(2, PromoteReason::MasterUnreachable, 2, vec![]),
            },
            Case {
                name: "bootstrap with most pods not answering yet: wait",
                pods: vec![
                    fresh(0, ObservedRole::Fenced),
                    down(fresh(1, ObservedRole::Fenced)),
                    down(fresh(2, ObservedRole::Fenced)),
                ],
                recorded: RecordedState::default(),
                settings: settings(None),
                want: Plan::Wait {
                    reason: WaitReason::TooFewReachable {
                        reachable: 1,
                        observed: 3,
                        needed: 2,
                    },
                },
            },
        ]);
    }

    #[test]
    fn chain_topology_is_rebuilt_around_the_new_master() {
        // 7 pods, fanout 2, r-0 dead; r-2 has the newest data.
        let mut pods = vec![down(master(0, "M", 1000))];
        let old_parent = [0, 0, 0, 1, 1, 2, 2];
        for ord in 1..7 {
            pods.push(link_down(replica(ord, old_parent[ord as usize], "M", 900)));
        }
        pods[2].master_repl_offset = 950;
        let got = plan(
            &pods,
            &recorded(0, 1),
            &Settings {
                topology: Topology::Chain { fanout: 2 },
                ..settings(Some(60))
            },
        );
        // New tree on the reachable pods: r-2 -> r-1, r-3; r-1 -> r-4, r-5; r-3 -> r-6.
        // r-4 already follows r-1, so it is the one pod left alone.
        assert_eq!(
            got,
            promote_plan(
                2,
                PromoteReason::MasterUnreachable,
                2,
                vec![to(1, 2), to(3, 2), to(5, 1), to(6, 3)]
            )
        );
    }

    /// Carries out `plan` the way the executor does, step by step, returning every
    /// intermediate (pods, status) state: write the marker, promote, repoint each pod,
    /// record the new master and clear the marker.
    fn executor_steps(
        pods: &[PodObservation],
        status: &RecordedState,
        plan: &Plan,
    ) -> Vec<(Vec<PodObservation>, RecordedState)> {
        let Plan::Promote {
            pod,
            epoch,
            repoint,
            ..
        } = plan
        else {
            panic!("expected a promotion, got {plan:?}");
        };
        let mut pods = pods.to_vec();
        let mut status = status.clone();
        let mut states = Vec::new();

        status.failover_in_progress = Some(FailoverInProgress {
            target: pod.clone(),
            epoch: *epoch,
        });
        states.push((pods.clone(), status.clone()));

        let new_id = format!("promoted-{pod}-{epoch}");
        let Some(target) = pods.iter_mut().find(|p| p.name == *pod) else {
            panic!("target {pod} not observed");
        };
        if target.role != ObservedRole::Master || target.replid != new_id {
            *target = forked(target.clone(), &new_id);
        }
        target.role = ObservedRole::Master;
        target.master_host = None;
        target.epoch = Some(*epoch);
        let (master_id, master_offset) = (target.replid.clone(), target.master_repl_offset);
        states.push((pods.clone(), status.clone()));

        for r in repoint {
            let Some(p) = pods.iter_mut().find(|p| p.name == r.pod) else {
                panic!("repoint of unobserved {}", r.pod);
            };
            if p.replid != master_id {
                // Partial resync: the replica learns the new ID, the old one becomes replid2.
                *p = forked(p.clone(), &master_id);
                p.master_repl_offset = master_offset;
                p.dataset_empty = false;
            }
            p.role = ObservedRole::Replica;
            p.master_host = Some(r.upstream.clone());
            p.link_up = true;
            p.epoch = Some(*epoch);
            states.push((pods.clone(), status.clone()));
        }

        status.master = Some(pod.clone());
        status.epoch = *epoch;
        status.failover_in_progress = None;
        states.push((pods, status));
        states
    }

    #[test]
    fn operator_restarted_mid_failover_converges_to_the_same_target() {
        let scenarios: Vec<(&str, Vec<PodObservation>, RecordedState)> = vec![
            (
                "master dead, replicas at different offsets",
                vec![
                    down(master(0, "M", 1000)),
                    link_down(replica(1, 0, "M", 900)),
                    link_down(replica(2, 0, "M", 950)),
                ],
                recorded(0, 3),
            ),
            (
                "master restarted empty",
                vec![
                    fresh(0, ObservedRole::Master),
                    link_down(replica(1, 0, "M", 5000)),
                    link_down(replica(2, 0, "M", 5000)),
                ],
                recorded(0, 3),
            ),
        ];
        for (scenario, pods, status) in scenarios {
            let first = plan(&pods, &status, &settings(Some(60)));
            let Plan::Promote {
                pod: target, epoch, ..
            } = first.clone()
            else {
                panic!("{scenario}: expected a promotion, got {first:?}");
            };
            let steps = executor_steps(&pods, &status, &first);
            let last = steps.len() - 1;
            for (i, (pods, status)) in steps.into_iter().enumerate() {
                // The restarted operator has no memory of when the master went away.
                let again = plan(&pods, &status, &settings(None));
                if i == last {
                    assert_eq!(again, Plan::Keep, "{scenario}: after the last step");
                    continue;
                }
                match &again {
                    Plan::Promote {
                        pod,
                        epoch: e,
                        reason,
                        ..
                    } => {
                        assert_eq!(pod, &target, "{scenario}: step {i} changed target");
                        assert_eq!(*e, epoch, "{scenario}: step {i} changed epoch");
                        assert_eq!(
                            *reason,
                            PromoteReason::ResumeFailover,
                            "{scenario}: step {i}"
                        );
                    }
                    other => panic!("{scenario}: step {i}: expected to resume, got {other:?}"),
                }
            }
        }
    }

    #[test]
    fn half_done_promotion_without_a_marker_still_picks_the_promoted_pod() {
        // r-1 already ran REPLICAOF NO ONE (no writes yet), r-2 has the same data and a lower
        // rank would otherwise not matter; status still names the dead r-0. Even with the
        // marker lost, r-1 stays the target instead of flipping to another equal copy.
        let pods = vec![
            down(master(0, "M", 1000)),
            with_epoch(forked(master(1, "M", 950), "X"), 4),
            link_down(replica(2, 0, "M", 950)),
            link_down(replica(3, 0, "M", 950)),
        ];
        let mut pods_low_first = pods.clone();
        pods_low_first[1].ordinal = 5;
        check(vec![
            Case {
                name: "first round after the restart waits for downAfter like any other",
                pods: pods.clone(),
                recorded: recorded(0, 3),
                settings: settings(None),
                want: Plan::Wait {
                    reason: WaitReason::MasterUnreachable {
                        master: name(0),
                        for_: None,
                        down_after: DOWN_AFTER,
                    },
                },
            },
            Case {
                name: "then the existing master claimant wins among equal copies",
                pods: pods_low_first,
                recorded: recorded(0, 3),
                settings: settings(Some(5)),
                want: promote_plan(
                    1,
                    PromoteReason::MasterUnreachable,
                    4,
                    vec![to(2, 1), to(3, 1)],
                ),
            },
        ]);
    }

    #[test]
    fn abandoned_marker_whose_target_died_plans_afresh_with_a_newer_epoch() {
        let pods = vec![
            down(master(0, "M", 1000)),
            down(with_epoch(forked(master(1, "M", 990), "X"), 4)),
            link_down(replica(2, 0, "M", 980)),
        ];
        let status = RecordedState {
            failover_in_progress: Some(FailoverInProgress {
                target: name(1),
                epoch: 4,
            }),
            ..recorded(0, 3)
        };
        let got = plan(
            &pods,
            &status,
            &Settings {
                min_reachable: Some(1),
                ..settings(Some(60))
            },
        );
        assert_eq!(
            got,
            promote_plan(2, PromoteReason::MasterUnreachable, 5, vec![])
        );
    }

    #[test]
    fn reasons_render_for_events() {
        let w = WaitReason::TooFewReachable {
            reachable: 1,
            observed: 3,
            needed: 2,
        };
        assert_eq!(
            w.to_string(),
            "only 1 of 3 pods reachable, 2 needed to choose a master safely"
        );
        assert!(PromoteReason::MasterRestartedEmpty
            .to_string()
            .contains("empty"));
    }
}
