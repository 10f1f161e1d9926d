//! The lost-write window of a failover (pure): an upper bound of how long after the
//! operator last saw the old master answer it could still accept writes that the new master
//! does not have. The definition, with its assumptions, is in docs/failover.md.

use std::time::Duration;

/// What the bound is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowInput {
    /// From the old master's last answer (probe or heartbeat) to the promotion.
    pub since_last_answer: Duration,
    /// The longest the old master can have kept working unseen after its last answer: the
    /// heartbeat period plus one probe deadline.
    pub unseen: Duration,
    /// `min-replicas-max-lag` in seconds when `min-replicas-to-write` is on.
    pub max_lag_secs: Option<u64>,
    /// The old master answered in the round that promoted, and was repointed by it.
    pub old_master_demoted: bool,
}

/// The upper bound, `None` when there is none (min-replicas off and the old master not
/// demoted: it accepts writes until it is reachable and repointed).
///
/// With min-replicas on, the old master refuses writes once no replica acknowledged within
/// `max-lag` seconds (lag counted in whole seconds: up to `max-lag + 1` s); its replicas are
/// cut off when it is (or are repointed at the promotion at the latest, then
/// `since_last_answer` bounds the fault's start), and the fault began at most `unseen`
/// after the last answer.
pub fn lost_write_window(w: WindowInput) -> Option<Duration> {
    let demoted = w.old_master_demoted.then_some(w.since_last_answer);
    let lag = w
        .max_lag_secs
        .map(|lag| w.since_last_answer.min(w.unseen) + Duration::from_secs(lag.saturating_add(1)));
    match (demoted, lag) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(since: u64, lag: Option<u64>, demoted: bool) -> WindowInput {
        WindowInput {
            since_last_answer: Duration::from_millis(since),
            unseen: Duration::from_millis(1500),
            max_lag_secs: lag,
            old_master_demoted: demoted,
        }
    }

    #[test]
    fn min_replicas_bounds_the_window_by_the_lag_after_the_fault() {
        // Paused 5.8 s before the promotion, lag 2: unseen 1.5 s + 3 s.
        assert_eq!(
            lost_write_window(input(5800, Some(2), false)),
            Some(Duration::from_millis(4500))
        );
        // Promoted sooner than the heartbeat could have missed it.
        assert_eq!(
            lost_write_window(input(1000, Some(1), false)),
            Some(Duration::from_millis(3000))
        );
    }

    #[test]
    fn a_demoted_old_master_stopped_at_the_promotion() {
        assert_eq!(
            lost_write_window(input(300, Some(2), true)),
            Some(Duration::from_millis(300))
        );
        assert_eq!(
            lost_write_window(input(300, None, true)),
            Some(Duration::from_millis(300))
        );
    }

    #[test]
    fn without_min_replicas_an_unreachable_old_master_has_no_bound() {
        assert_eq!(lost_write_window(input(5800, None, false)), None);
    }
}
