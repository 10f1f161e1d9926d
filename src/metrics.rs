//! Prometheus metrics (prometheus-client): reconcile count, failures by error label, duration.

use std::time::Instant;

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

/// A set, for per-set metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SetLabels {
    pub namespace: String,
    pub name: String,
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
        Metrics {
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

    pub fn failover_done(&self, took: std::time::Duration) {
        self.failovers.inc();
        self.failover_duration.observe(took.as_secs_f64());
    }

    /// Records the lost-write window of a set's failover.
    pub fn lost_write_window(&self, namespace: &str, name: &str, window: std::time::Duration) {
        self.lost_write_window
            .get_or_create(&SetLabels {
                namespace: namespace.to_string(),
                name: name.to_string(),
            })
            .set(window.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
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
        m.failover_done(std::time::Duration::from_millis(1500));
        let text = m.encode();
        assert!(text.contains("tandem_operator_failovers_total 1"), "{text}");
        assert!(
            text.contains("tandem_operator_failover_duration_seconds_sum 1.5"),
            "{text}"
        );
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
