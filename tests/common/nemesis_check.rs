//! The nemesis checker: pure functions over a recorded history of writes, the epochs the
//! operator recorded while it ran, and what every pod holds once the faults are healed.
//!
//! A write is acknowledged when its reply was OK and, for clients that use it, the
//! following `WAIT 1 <ms>` counted at least one replica. The verdict holds:
//! - (a) every acknowledged write is on every pod (the final master and each replica);
//! - (b) no epoch had two pods accepting acknowledged writes: each acknowledged write is
//!   attributed to an epoch in force while it ran whose recorded master answered it
//!   (allowing [`STATUS_LAG`] for the operator to record a promotion it already made);
//!   a write no epoch explains is attributed to the epoch at its completion, which then
//!   shows two pods;
//! - (c) every pod holds the same data (digest);
//!
//! and it reports, without failing on them, the writes that were accepted but not
//! acknowledged and are gone, and the longest time two pods both accepted writes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

/// How late the recorded epoch may trail a promotion that already happened: the operator
/// writes the status after `REPLICAOF NO ONE`, and the harness polls it every 100 ms.
pub const STATUS_LAG: Duration = Duration::from_secs(1);

/// One write of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// `SET key value` (every key is written once).
    Set { key: String, value: String },
    /// `RPUSH key elem` (every element is unique).
    Rpush { key: String, elem: String },
    /// `INCR key`.
    Incr { key: String },
}

/// What the client learned about a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted and counted by `WAIT 1` (at least one replica has it).
    Acked,
    /// Accepted; not waited for, or `WAIT` counted no replica.
    Unacked,
    /// Refused with an error reply (READONLY, NOREPLICAS, ...): not applied.
    Failed(String),
    /// No reply (timeout, connection lost): may or may not have been applied.
    Unknown(String),
}

impl Outcome {
    pub fn accepted(&self) -> bool {
        matches!(self, Outcome::Acked | Outcome::Unacked)
    }
}

/// One operation of the history.
#[derive(Debug, Clone)]
pub struct Op {
    /// The client that issued it (its name says its target and whether it waits).
    pub client: String,
    pub write: Write,
    pub invoked: Instant,
    pub completed: Instant,
    pub outcome: Outcome,
    /// The pod that answered, when known.
    pub pod: Option<String>,
}

/// The operator's record at one instant: `status.epoch` and `status.master`.
#[derive(Debug, Clone)]
pub struct EpochSample {
    pub at: Instant,
    pub epoch: i64,
    pub master: Option<String>,
}

/// A value as read back from a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    Str(String),
    List(Vec<String>),
}

/// What one pod holds after healing (the keys the workload wrote in this round).
#[derive(Debug, Clone)]
pub struct PodState {
    pub pod: String,
    /// `master` or `slave` (INFO replication).
    pub role: String,
    /// `DEBUG DIGEST` of the whole dataset, when the server answers it.
    pub digest: Option<String>,
    pub data: BTreeMap<String, Value>,
}

impl PodState {
    /// The digest compared for convergence: the server's when it has one, else one
    /// computed over the round's keys.
    pub fn convergence_digest(&self) -> String {
        if let Some(d) = &self.digest {
            return d.clone();
        }
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.data.hash(&mut h);
        format!("keys:{:016x}", h.finish())
    }
}

/// The checker's result.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Violations of (a), (b) or (c); empty when the run passed.
    pub problems: Vec<String>,
    pub ops: usize,
    pub acked: usize,
    /// Acknowledged writes missing on some pod (a violation).
    pub acked_lost: usize,
    /// Accepted, unacknowledged writes missing on the final master (allowed, reported).
    pub unacked_lost: usize,
    /// Longest time two pods both accepted writes (allowed, reported).
    pub dual_write_window: Duration,
    /// Pods that answered acknowledged writes, per epoch.
    pub writers_per_epoch: BTreeMap<i64, BTreeSet<String>>,
    pub converged: bool,
    /// Whether convergence compared the servers' `DEBUG DIGEST`s (else the round's keys).
    pub server_digests: bool,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ops, {} acknowledged, {} acknowledged lost, {} unacknowledged lost, \
             dual-write window {} ms, converged {} ({}), writers per epoch {:?}",
            if self.passed() { "PASS" } else { "FAIL" },
            self.ops,
            self.acked,
            self.acked_lost,
            self.unacked_lost,
            self.dual_write_window.as_millis(),
            self.converged,
            if self.server_digests {
                "DEBUG DIGEST"
            } else {
                "digest of the round's keys"
            },
            self.writers_per_epoch
        )?;
        for p in self.problems.iter().take(20) {
            write!(f, "\n  - {p}")?;
        }
        if self.problems.len() > 20 {
            write!(f, "\n  ... {} more", self.problems.len() - 20)?;
        }
        Ok(())
    }
}

/// Runs every check over one round.
pub fn check(ops: &[Op], epochs: &[EpochSample], finals: &[PodState]) -> Verdict {
    let mut v = Verdict {
        ops: ops.len(),
        acked: ops.iter().filter(|o| o.outcome == Outcome::Acked).count(),
        ..Verdict::default()
    };
    if finals.is_empty() {
        v.problems.push("no pod state to check against".into());
        return v;
    }
    check_acked_present(ops, finals, &mut v);
    check_epochs(ops, epochs, &mut v);
    check_convergence(finals, &mut v);
    let masters: Vec<&PodState> = finals.iter().filter(|p| p.role == "master").collect();
    match masters.as_slice() {
        [m] => v.unacked_lost = unacked_lost(ops, m),
        other => v.problems.push(format!(
            "{} pods report role master after healing: {:?}",
            other.len(),
            other.iter().map(|p| &p.pod).collect::<Vec<_>>()
        )),
    }
    v.dual_write_window = dual_write_window(ops);
    v
}

/// Whether pod state `p` holds write `w` (INCR is checked in aggregate).
fn holds(p: &PodState, w: &Write) -> bool {
    match w {
        Write::Set { key, value } => p.data.get(key) == Some(&Value::Str(value.clone())),
        Write::Rpush { key, elem } => {
            matches!(p.data.get(key), Some(Value::List(l)) if l.contains(elem))
        }
        Write::Incr { .. } => true,
    }
}

fn counter(p: &PodState, key: &str) -> i64 {
    match p.data.get(key) {
        Some(Value::Str(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// Check (a).
fn check_acked_present(ops: &[Op], finals: &[PodState], v: &mut Verdict) {
    let mut acked_incr: BTreeMap<&str, i64> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.outcome == Outcome::Acked) {
        if let Write::Incr { key } = &op.write {
            *acked_incr.entry(key).or_default() += 1;
            continue;
        }
        let missing: Vec<&str> = finals
            .iter()
            .filter(|p| !holds(p, &op.write))
            .map(|p| p.pod.as_str())
            .collect();
        if !missing.is_empty() {
            v.acked_lost += 1;
            v.problems.push(format!(
                "acknowledged {:?} (by {}, answered by {:?}) missing on {missing:?}",
                op.write, op.client, op.pod
            ));
        }
    }
    for (key, n) in acked_incr {
        for p in finals {
            let have = counter(p, key);
            if have < n {
                v.acked_lost += usize::try_from(n - have).unwrap_or(0);
                v.problems.push(format!(
                    "counter {key} on {} is {have}, below its {n} acknowledged INCRs",
                    p.pod
                ));
            }
        }
    }
}

/// The epoch in force at `t` (the last sample at or before it).
fn epoch_at(epochs: &[EpochSample], t: Instant) -> Option<&EpochSample> {
    epochs.iter().rev().find(|s| s.at <= t).or(epochs.first())
}

/// The epoch an acknowledged write belongs to: one in force between its invocation and
/// its completion (+ [`STATUS_LAG`]) whose master answered it; else the one at completion.
fn attribute(epochs: &[EpochSample], op: &Op) -> Option<i64> {
    let pod = op.pod.as_deref()?;
    let start = epoch_at(epochs, op.invoked)?.epoch;
    let end = op.completed + STATUS_LAG;
    let by_master = epochs
        .iter()
        .filter(|s| s.at <= end && s.epoch >= start)
        .find(|s| s.master.as_deref() == Some(pod))
        .map(|s| s.epoch);
    by_master.or_else(|| epoch_at(epochs, op.completed).map(|s| s.epoch))
}

/// Check (b).
fn check_epochs(ops: &[Op], epochs: &[EpochSample], v: &mut Verdict) {
    if epochs.is_empty() {
        v.problems
            .push("no epoch was recorded during the run".into());
        return;
    }
    for op in ops.iter().filter(|o| o.outcome == Outcome::Acked) {
        let Some(pod) = &op.pod else { continue };
        if let Some(e) = attribute(epochs, op) {
            v.writers_per_epoch
                .entry(e)
                .or_default()
                .insert(pod.clone());
        }
    }
    for (e, pods) in &v.writers_per_epoch {
        if pods.len() > 1 {
            v.problems.push(format!(
                "epoch {e}: {} pods accepted acknowledged writes: {pods:?}",
                pods.len()
            ));
        }
    }
}

/// Check (c).
fn check_convergence(finals: &[PodState], v: &mut Verdict) {
    let digests: BTreeMap<&str, String> = finals
        .iter()
        .map(|p| (p.pod.as_str(), p.convergence_digest()))
        .collect();
    let distinct: BTreeSet<&String> = digests.values().collect();
    v.converged = distinct.len() == 1;
    v.server_digests = finals.iter().all(|p| p.digest.is_some());
    if !v.converged {
        v.problems
            .push(format!("pods did not converge: digests {digests:?}"));
    }
}

/// Accepted but unacknowledged writes that the final master does not hold.
fn unacked_lost(ops: &[Op], master: &PodState) -> usize {
    let mut lost = 0;
    let mut accepted_incr: BTreeMap<&str, i64> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.outcome == Outcome::Unacked) {
        match &op.write {
            Write::Incr { key } => *accepted_incr.entry(key).or_default() += 1,
            w if !holds(master, w) => lost += 1,
            _ => {}
        }
    }
    for op in ops.iter().filter(|o| o.outcome == Outcome::Acked) {
        if let Write::Incr { key } = &op.write {
            *accepted_incr.entry(key).or_default() += 1;
        }
    }
    for (key, n) in accepted_incr {
        lost += usize::try_from(n - counter(master, key)).unwrap_or(0);
    }
    lost
}

/// The longest overlap of two pods' spans of accepted writes (first to last completion).
pub fn dual_write_window(ops: &[Op]) -> Duration {
    let mut spans: BTreeMap<&str, (Instant, Instant)> = BTreeMap::new();
    for op in ops.iter().filter(|o| o.outcome.accepted()) {
        let Some(pod) = op.pod.as_deref() else {
            continue;
        };
        let s = spans.entry(pod).or_insert((op.completed, op.completed));
        s.0 = s.0.min(op.completed);
        s.1 = s.1.max(op.completed);
    }
    let spans: Vec<(Instant, Instant)> = spans.into_values().collect();
    let mut best = Duration::ZERO;
    for (i, a) in spans.iter().enumerate() {
        for b in spans.iter().skip(i + 1) {
            let (from, to) = (a.0.max(b.0), a.1.min(b.1));
            best = best.max(to.saturating_duration_since(from));
        }
    }
    best
}
