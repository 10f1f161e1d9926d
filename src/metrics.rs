//! Prometheus metrics (prometheus-client): reconcile count, failures by error label, duration;
//! per-set gauges and failover outcomes labelled `namespace`, `name` ([`SetMetrics`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

#[derive(Debug)]
pub struct Metrics {
    pub reconciles: Counter,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    /// Completed automatic failovers (promotions other than the first assignment).
    pub failovers: Counter,
    /// Time from recording the failover intent to the new master recorded.
    pub failover_duration: Histogram,
    /// Per-set gauges and failover outcomes.
    pub sets: SetMetrics,
    /// The lost-write window of each set's last failover (docs/failover.md).
    pub lost_write_window: Family<SetLabels, Gauge<f64, AtomicU64>>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconciles = Counter::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let mut registry = Registry::with_prefix("tandem_operator");
        registry.register("reconciles", "Reconcile runs", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Failed reconciles by error kind",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            duration.clone(),
        );
        let failovers = Counter::default();
        let failover_duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register("failovers", "Completed failovers", failovers.clone());
        registry.register(
            "failover_duration_seconds",
            "Failover duration, from the recorded intent to the recorded new master",
            failover_duration.clone(),
        );
        let lost_write_window = Family::<SetLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "failover_lost_write_window_seconds",
            "Upper bound of how long the old master of the last failover could accept writes after it last answered",
            lost_write_window.clone(),
        );
        let sets = SetMetrics {
            // Shared handle: a deleted set's window goes with its other series.
            lost_write_window: lost_write_window.clone(),
            ..SetMetrics::default()
        };
        sets.register(&mut registry);
        Metrics {
            sets,
            lost_write_window,
            reconciles,
            failures,
            duration,
            failovers,
            failover_duration,
            registry,
        }
    }
}

/// Observes the duration when dropped, so every exit path of a reconcile is measured.
pub struct ReconcileTimer<'a> {
    start: Instant,
    metrics: &'a Metrics,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}

impl Metrics {
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            start: Instant::now(),
            metrics: self,
        }
    }

    pub fn reconcile_failed(&self, error: &str) {
        self.failures
            .get_or_create(&ErrorLabels {
                error: error.to_string(),
            })
            .inc();
    }

    /// A completed automatic failover of `set`: the process-wide and the per-set series.
    pub fn failover_done(&self, set: &SetLabels, took: Duration) {
        self.failovers.inc();
        self.failover_duration.observe(took.as_secs_f64());
        self.sets.failover(set, FailoverOutcome::Succeeded, took);
    }

    /// An automatic failover of `set` whose promotion failed (retried by the next round).
    pub fn failover_failed(&self, set: &SetLabels) {
        self.sets
            .failover(set, FailoverOutcome::Failed, Duration::ZERO);
    }

    /// Records the lost-write window of a set's failover.
    pub fn lost_write_window(&self, namespace: &str, name: &str, window: std::time::Duration) {
        let set = SetLabels::new(namespace, name);
        self.sets.unless_deleted(&set, None, || {
            self.lost_write_window
                .get_or_create(&set)
                .set(window.as_secs_f64());
        });
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

// ---- Per-set gauges and failover outcomes (issue 20, item 2) ----------------------------

/// The labels of every per-set series: the RedisReplication's namespace and name (as
/// kube-state-metrics labels its objects).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct SetLabels {
    pub namespace: String,
    pub name: String,
}

impl SetLabels {
    pub fn new(namespace: &str, name: &str) -> Self {
        SetLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    namespace: String,
    name: String,
    phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    namespace: String,
    name: String,
    outcome: String,
}

/// How an automatic failover of a set ended (the `outcome` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailoverOutcome {
    /// The new master is recorded.
    Succeeded,
    /// The executor gave up; the next round retries.
    Failed,
}

impl FailoverOutcome {
    const ALL: [FailoverOutcome; 2] = [FailoverOutcome::Succeeded, FailoverOutcome::Failed];

    fn label(self) -> &'static str {
        match self {
            FailoverOutcome::Succeeded => "succeeded",
            FailoverOutcome::Failed => "failed",
        }
    }
}

/// What the gauges of one set show, taken from the status the reconcile computed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetSnapshot {
    /// The recorded master answers as a writable master (the `Available` condition).
    pub has_master: bool,
    pub ready_pods: i64,
    /// Replicas (by observed role) whose pod is ready and whose link to the upstream is up.
    pub replicas_in_sync: i64,
    /// The largest replication lag (bytes) of the replicas the roles step observed.
    pub max_lag_bytes: i64,
    pub epoch: i64,
    pub phase: String,
}

impl SetSnapshot {
    pub fn from_status(st: &crate::crd::RedisReplicationStatus) -> Self {
        let replicas = || {
            st.pods
                .iter()
                .filter(|p| p.role == crate::names::ROLE_REPLICA)
        };
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        SetSnapshot {
            has_master: st
                .conditions
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True"),
            ready_pods: count(st.pods.iter().filter(|p| p.ready).count()),
            replicas_in_sync: count(
                replicas()
                    .filter(|p| p.ready && p.link_up == Some(true))
                    .count(),
            ),
            max_lag_bytes: replicas().filter_map(|p| p.lag_bytes).max().unwrap_or(0),
            epoch: st.epoch,
            phase: st.phase.clone().unwrap_or_default(),
        }
    }
}

/// Gauges per RedisReplication (labels `namespace`, `name`), the phase as a state set (one
/// series per known phase, 1 for the current one), and failover counts by outcome and
/// durations. A set's series are removed by [`SetMetrics::forget`] when it is deleted.
#[derive(Debug)]
pub struct SetMetrics {
    has_master: Family<SetLabels, Gauge>,
    ready_pods: Family<SetLabels, Gauge>,
    replicas_in_sync: Family<SetLabels, Gauge>,
    max_lag_bytes: Family<SetLabels, Gauge>,
    epoch: Family<SetLabels, Gauge>,
    phase: Family<PhaseLabels, Gauge>,
    failovers: Family<OutcomeLabels, Counter>,
    failover_duration: Family<SetLabels, Histogram, fn() -> Histogram>,
    /// Registered by [`Metrics`] (`failover_lost_write_window_seconds`); pruned here.
    lost_write_window: Family<SetLabels, Gauge<f64, AtomicU64>>,
    /// Which sets have series and which were deleted. Every write of a set's series happens
    /// under this lock, after checking the set was not deleted, so a reconcile or failover that
    /// was under way when its set was deleted cannot bring the series back after
    /// [`SetMetrics::forget`]. Locked only for short, non-async sections.
    book: Mutex<Book>,
}

/// How long a deleted set's name stays tombstoned: longer than any reconcile or failover round
/// that can still be running for it.
const TOMBSTONE_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
struct Book {
    /// The sets that have series (a Family cannot list its label sets), with the UID last
    /// observed.
    known: BTreeMap<SetLabels, Option<String>>,
    /// Deleted sets: the UID they had and when they were forgotten. A later observation of the
    /// same UID is dropped; one of another UID (the name re-created) clears the tombstone.
    deleted: BTreeMap<SetLabels, (Option<String>, Instant)>,
}

impl Book {
    /// Whether writes for `set` (of `uid`, when known) must be dropped.
    fn is_deleted(&mut self, set: &SetLabels, uid: Option<&str>) -> bool {
        let Some((gone_uid, at)) = self.deleted.get(set) else {
            return false;
        };
        if at.elapsed() > TOMBSTONE_TTL {
            self.deleted.remove(set);
            return false;
        }
        match (gone_uid.as_deref(), uid) {
            (Some(gone), Some(now)) if gone != now => {
                self.deleted.remove(set);
                false
            }
            _ => true,
        }
    }
}

fn failover_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

impl Default for SetMetrics {
    fn default() -> Self {
        SetMetrics {
            has_master: Family::default(),
            ready_pods: Family::default(),
            replicas_in_sync: Family::default(),
            max_lag_bytes: Family::default(),
            epoch: Family::default(),
            phase: Family::default(),
            failovers: Family::default(),
            failover_duration: Family::new_with_constructor(failover_histogram),
            lost_write_window: Family::default(),
            book: Mutex::default(),
        }
    }
}

impl SetMetrics {
    fn register(&self, registry: &mut Registry) {
        let gauges: [(&str, &str, &Family<SetLabels, Gauge>); 5] = [
            (
                "set_has_master",
                "1 when the set's recorded master answers as a writable master",
                &self.has_master,
            ),
            ("set_ready_pods", "Ready pods of the set", &self.ready_pods),
            (
                "set_replicas_in_sync",
                "Ready replicas whose replication link is up",
                &self.replicas_in_sync,
            ),
            (
                "set_max_replica_lag_bytes",
                "Largest replication lag among the set's replicas, in bytes",
                &self.max_lag_bytes,
            ),
            ("set_epoch", "The set's failover epoch", &self.epoch),
        ];
        for (name, help, family) in gauges {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "set_phase",
            "The set's phase: 1 for the current phase, 0 for the others",
            self.phase.clone(),
        );
        registry.register(
            "set_failovers",
            "Automatic failovers of the set by outcome",
            self.failovers.clone(),
        );
        registry.register(
            "set_failover_duration_seconds",
            "Duration of the set's successful failovers",
            self.failover_duration.clone(),
        );
    }

    /// Runs `write` (which sets series of `set`) unless `set` was deleted; records `set` as
    /// having series. `uid` is the resource's UID when the caller has it.
    fn unless_deleted(&self, set: &SetLabels, uid: Option<&str>, write: impl FnOnce()) {
        // A poisoned lock means a panic elsewhere; the metrics are then best left alone.
        let Ok(mut book) = self.book.lock() else {
            return;
        };
        if book.is_deleted(set, uid) {
            return;
        }
        let entry = book.known.entry(set.clone()).or_default();
        if uid.is_some() {
            *entry = uid.map(str::to_string);
        }
        write();
    }

    /// Sets the gauges of one set; `phases` are all phases the status can show (each gets a
    /// series, 1 for `snap.phase`). Dropped when the set (this `uid`) was deleted meanwhile.
    pub fn observe(&self, set: &SetLabels, uid: Option<&str>, snap: &SetSnapshot, phases: &[&str]) {
        self.unless_deleted(set, uid, || {
            let flag = |b: bool| i64::from(b);
            self.has_master
                .get_or_create(set)
                .set(flag(snap.has_master));
            self.ready_pods.get_or_create(set).set(snap.ready_pods);
            self.replicas_in_sync
                .get_or_create(set)
                .set(snap.replicas_in_sync);
            self.max_lag_bytes
                .get_or_create(set)
                .set(snap.max_lag_bytes);
            self.epoch.get_or_create(set).set(snap.epoch);
            for p in phases {
                self.phase
                    .get_or_create(&phase_labels(set, p))
                    .set(flag(*p == snap.phase));
            }
            // Counters exist from the first observation, so `increase()` sees the first
            // failover.
            for o in FailoverOutcome::ALL {
                let _created = self.failovers.get_or_create(&outcome_labels(set, o));
            }
        });
    }

    /// Counts a finished failover; the duration is observed for successful ones.
    pub fn failover(&self, set: &SetLabels, outcome: FailoverOutcome, took: Duration) {
        self.unless_deleted(set, None, || {
            self.failovers
                .get_or_create(&outcome_labels(set, outcome))
                .inc();
            if outcome == FailoverOutcome::Succeeded {
                self.failover_duration
                    .get_or_create(set)
                    .observe(took.as_secs_f64());
            }
        });
    }

    /// Removes every series of a deleted set (of `uid`, when known) and keeps later writes of
    /// it out; `phases` as given to [`SetMetrics::observe`].
    pub fn forget(&self, set: &SetLabels, uid: Option<&str>, phases: &[&str]) {
        let Ok(mut book) = self.book.lock() else {
            return;
        };
        let known_uid = book.known.remove(set).flatten();
        let uid = uid.map(str::to_string).or(known_uid);
        book.deleted
            .retain(|_, (_, at)| at.elapsed() <= TOMBSTONE_TTL);
        book.deleted.insert(set.clone(), (uid, Instant::now()));
        for f in [
            &self.has_master,
            &self.ready_pods,
            &self.replicas_in_sync,
            &self.max_lag_bytes,
            &self.epoch,
        ] {
            f.remove(set);
        }
        for p in phases {
            self.phase.remove(&phase_labels(set, p));
        }
        for o in FailoverOutcome::ALL {
            self.failovers.remove(&outcome_labels(set, o));
        }
        self.failover_duration.remove(set);
        self.lost_write_window.remove(set);
    }

    /// Removes the series of every set not in `live` (after a relist, deletions missed while
    /// the watch was down).
    pub fn retain(&self, live: &BTreeSet<SetLabels>, phases: &[&str]) {
        let gone: Vec<SetLabels> = match self.book.lock() {
            Ok(book) => book
                .known
                .keys()
                .filter(|s| !live.contains(*s))
                .cloned()
                .collect(),
            Err(_) => return,
        };
        for set in &gone {
            self.forget(set, None, phases);
        }
    }
}

fn phase_labels(set: &SetLabels, phase: &str) -> PhaseLabels {
    PhaseLabels {
        namespace: set.namespace.clone(),
        name: set.name.clone(),
        phase: phase.to_string(),
    }
}

fn outcome_labels(set: &SetLabels, outcome: FailoverOutcome) -> OutcomeLabels {
    OutcomeLabels {
        namespace: set.namespace.clone(),
        name: set.name.clone(),
        outcome: outcome.label().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_count_failures_and_duration() {
        let m = Metrics::default();
        drop(m.reconcile_started());
        m.reconcile_failed("apply");
        let text = m.encode();
        assert!(
            text.contains("tandem_operator_reconciles_total 1"),
            "{text}"
        );
        assert!(
            text.contains("tandem_operator_reconcile_failures_total{error=\"apply\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tandem_operator_reconcile_duration_seconds_count 1"),
            "{text}"
        );
    }

    #[test]
    fn exposition_has_failover_count_and_duration() {
        let m = Metrics::default();
        assert!(m.encode().contains("tandem_operator_failovers_total 0"));
        m.failover_done(&SetLabels::new("ns", "c"), Duration::from_millis(1500));
        let text = m.encode();
        assert!(text.contains("tandem_operator_failovers_total 1"), "{text}");
        assert!(
            text.contains("tandem_operator_failover_duration_seconds_sum 1.5"),
            "{text}"
        );
    }

    /// (name, role, ready, link up, lag bytes)
    type PodRow<'a> = (&'a str, &'a str, bool, Option<bool>, Option<i64>);

    fn status(
        phase: &str,
        available: bool,
        pods: &[PodRow<'_>],
    ) -> crate::crd::RedisReplicationStatus {
        let cond = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: "Available".into(),
            status: if available { "True" } else { "False" }.into(),
            reason: String::new(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        };
        crate::crd::RedisReplicationStatus {
            phase: Some(phase.into()),
            epoch: 3,
            conditions: vec![cond],
            pods: pods
                .iter()
                .map(
                    |(name, role, ready, link_up, lag)| crate::crd::PodReplicationStatus {
                        name: name.to_string(),
                        role: role.to_string(),
                        ready: *ready,
                        link_up: *link_up,
                        lag_bytes: *lag,
                        ..Default::default()
                    },
                )
                .collect(),
            ..Default::default()
        }
    }

    const PHASES: [&str; 3] = ["Provisioning", "Ready", "Degraded"];

    #[test]
    fn snapshot_reads_master_readiness_sync_and_lag_from_the_status() {
        let st = status(
            "Degraded",
            true,
            &[
                ("c-0", "master", true, None, None),
                ("c-1", "replica", true, Some(true), Some(10)),
                ("c-2", "replica", true, Some(false), Some(700)),
                ("c-3", "replica", false, Some(true), None),
            ],
        );
        let snap = SetSnapshot::from_status(&st);
        assert_eq!(
            snap,
            SetSnapshot {
                has_master: true,
                ready_pods: 3,
                replicas_in_sync: 1,
                max_lag_bytes: 700,
                epoch: 3,
                phase: "Degraded".into(),
            }
        );
        let lost = status(
            "Degraded",
            false,
            &[("c-1", "replica", true, Some(false), None)],
        );
        let snap = SetSnapshot::from_status(&lost);
        assert!(!snap.has_master);
        assert_eq!(
            (snap.ready_pods, snap.replicas_in_sync, snap.max_lag_bytes),
            (1, 0, 0)
        );
    }

    #[test]
    fn set_series_follow_the_status_and_go_when_the_set_is_deleted() {
        let m = Metrics::default();
        let c = SetLabels::new("prod", "cache");
        let other = SetLabels::new("prod", "other");
        let healthy = status(
            "Ready",
            true,
            &[
                ("cache-0", "master", true, None, None),
                ("cache-1", "replica", true, Some(true), Some(0)),
            ],
        );
        m.sets.observe(
            &c,
            Some("uid-c"),
            &SetSnapshot::from_status(&healthy),
            &PHASES,
        );
        m.sets.observe(
            &other,
            Some("uid-o"),
            &SetSnapshot::from_status(&healthy),
            &PHASES,
        );
        let text = m.encode();
        for line in [
            "tandem_operator_set_has_master{namespace=\"prod\",name=\"cache\"} 1",
            "tandem_operator_set_ready_pods{namespace=\"prod\",name=\"cache\"} 2",
            "tandem_operator_set_replicas_in_sync{namespace=\"prod\",name=\"cache\"} 1",
            "tandem_operator_set_epoch{namespace=\"prod\",name=\"cache\"} 3",
            "tandem_operator_set_phase{namespace=\"prod\",name=\"cache\",phase=\"Ready\"} 1",
            "tandem_operator_set_phase{namespace=\"prod\",name=\"cache\",phase=\"Degraded\"} 0",
            "tandem_operator_set_failovers_total{namespace=\"prod\",name=\"cache\",outcome=\"succeeded\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        let down = status(
            "Degraded",
            false,
            &[("cache-1", "replica", true, Some(false), Some(0))],
        );
        m.sets
            .observe(&c, Some("uid-c"), &SetSnapshot::from_status(&down), &PHASES);
        m.failover_failed(&c);
        m.failover_done(&c, Duration::from_millis(250));
        let text = m.encode();
        for line in [
            "tandem_operator_set_has_master{namespace=\"prod\",name=\"cache\"} 0",
            "tandem_operator_set_ready_pods{namespace=\"prod\",name=\"cache\"} 1",
            "tandem_operator_set_phase{namespace=\"prod\",name=\"cache\",phase=\"Ready\"} 0",
            "tandem_operator_set_phase{namespace=\"prod\",name=\"cache\",phase=\"Degraded\"} 1",
            "tandem_operator_set_failovers_total{namespace=\"prod\",name=\"cache\",outcome=\"succeeded\"} 1",
            "tandem_operator_set_failovers_total{namespace=\"prod\",name=\"cache\",outcome=\"failed\"} 1",
            "tandem_operator_set_failover_duration_seconds_sum{namespace=\"prod\",name=\"cache\"} 0.25",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        m.sets.forget(&c, Some("uid-c"), &PHASES);
        let text = m.encode();
        assert!(!text.contains("name=\"cache\""), "{text}");
        assert!(text.contains("name=\"other\""), "{text}");
        // A reconcile or failover of the deleted set that finishes after the deletion does not
        // bring its series back.
        m.sets.observe(
            &c,
            Some("uid-c"),
            &SetSnapshot::from_status(&healthy),
            &PHASES,
        );
        m.failover_done(&c, Duration::from_millis(250));
        m.failover_failed(&c);
        m.lost_write_window("prod", "cache", Duration::from_millis(100));
        let text = m.encode();
        assert!(!text.contains("name=\"cache\""), "{text}");
        // A set re-created under the same name (a new UID) gets series again, and a relist
        // that no longer shows `other` prunes it.
        m.sets.observe(
            &c,
            Some("uid-c2"),
            &SetSnapshot::from_status(&healthy),
            &PHASES,
        );
        m.sets.retain(&[c.clone()].into_iter().collect(), &PHASES);
        let text = m.encode();
        assert!(!text.contains("name=\"other\""), "{text}");
        assert!(text.contains("name=\"cache\""), "{text}");
    }

    #[test]
    fn exposition_has_the_lost_write_window_per_set() {
        let m = Metrics::default();
        m.lost_write_window("prod", "cache", std::time::Duration::from_millis(3500));
        let text = m.encode();
        assert!(
            text.contains(
                "tandem_operator_failover_lost_write_window_seconds{namespace=\"prod\",name=\"cache\"} 3.5"
            ),
            "{text}"
        );
    }
}
