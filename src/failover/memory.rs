//! What the failover step remembers between reconciles: when each recorded master last
//! answered, since when it has not, and what the heartbeat ([`super::heartbeat`]) watches.
//! In memory only: a restarted operator starts over, which the planner treats as "not yet
//! seen unreachable" (it waits `downAfterSeconds` again).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::probe::{Timeouts, PROBE_TIMEOUT};

/// How recent the last answer of a master must be, when it is first seen unreachable, for
/// its outage to be counted from that answer (the heartbeat sees every master at least
/// every [`super::heartbeat::PERIOD`] plus a probe timeout). An older answer says nothing
/// about when it stopped answering: the outage is then counted from now.
pub const FRESH_ANSWER: Duration = Duration::from_secs(5);

/// Shared by every reconcile and the heartbeat (the controller's context holds one); no lock
/// is ever held across an `.await`.
/// The master the heartbeat ([`super::heartbeat`]) pings for one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub name: String,
    /// The master's pod name.
    pub master: String,
    /// `host:port` to connect to.
    pub addr: String,
    pub credentials: super::credentials::Credentials,
    /// Set when the master is reached over TLS.
    pub tls: Option<crate::tls::client::TlsClient>,
    /// The set's probe timeouts (already shortened by its `downAfterSeconds`).
    pub timeouts: Timeouts,
}

#[derive(Debug)]
pub struct RolesMemory {
    /// Per RedisReplication uid: (recorded master, start of its current outage).
    unreachable_since: Mutex<HashMap<String, (String, SystemTime)>>,
    /// Per RedisReplication uid: (master, when it last answered a probe or a heartbeat).
    last_answer: Mutex<HashMap<String, (String, SystemTime)>>,
    /// Per RedisReplication uid: the master the heartbeat pings.
    watched: Mutex<HashMap<String, Target>>,
    /// The probe timeouts (before shortening by `downAfterSeconds`).
    timeouts: Timeouts,
}

impl Default for RolesMemory {
    fn default() -> Self {
        RolesMemory::with_probe_timeout(PROBE_TIMEOUT)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl RolesMemory {
    /// A memory whose probes use `timeout` for connecting and for each reply.
    pub fn with_probe_timeout(timeout: Duration) -> Self {
        RolesMemory {
            unreachable_since: Mutex::default(),
            last_answer: Mutex::default(),
            watched: Mutex::default(),
            timeouts: Timeouts::uniform(timeout),
        }
    }

    /// The configured probe timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Records that `master` answered at `at`.
    pub fn answered(&self, uid: &str, master: &str, at: SystemTime) {
        let mut map = lock(&self.last_answer);
        let e = map
            .entry(uid.to_string())
            .or_insert_with(|| (master.to_string(), at));
        if e.0 != master || e.1 < at {
            *e = (master.to_string(), at);
        }
    }

    /// When `master` last answered, if it is remembered.
    pub fn last_answer(&self, uid: &str, master: &str) -> Option<SystemTime> {
        lock(&self.last_answer)
            .get(uid)
            .filter(|(m, _)| m == master)
            .map(|(_, t)| *t)
    }

    /// Updates and returns the start of the current outage of `master`: its last answer
    /// when that is at most [`FRESH_ANSWER`] older than the moment it is first seen down,
    /// else that moment.
    pub(crate) fn track(
        &self,
        uid: &str,
        master: Option<&str>,
        down: bool,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let start = |m: &str| {
            self.last_answer(uid, m)
                .filter(|t| now.duration_since(*t).is_ok_and(|d| d <= FRESH_ANSWER))
                .unwrap_or(now)
        };
        let mut map = lock(&self.unreachable_since);
        match (master, down) {
            (Some(m), true) => {
                let e = map
                    .entry(uid.to_string())
                    .or_insert_with(|| (m.to_string(), start(m)));
                if e.0 != m {
                    *e = (m.to_string(), start(m));
                }
                Some(e.1)
            }
            _ => {
                map.remove(uid);
                None
            }
        }
    }

    /// The heartbeat pings `target` (replacing what it pinged for this set).
    pub fn watch(&self, uid: &str, target: Target) {
        lock(&self.watched).insert(uid.to_string(), target);
    }

    /// The heartbeat stops pinging this set's master.
    pub fn unwatch(&self, uid: &str) {
        lock(&self.watched).remove(uid);
    }

    /// What the heartbeat pings now, by uid.
    pub fn watched(&self) -> Vec<(String, Target)> {
        lock(&self.watched)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Drops what is remembered about a resource (deleted).
    pub fn forget(&self, uid: &str) {
        lock(&self.unreachable_since).remove(uid);
        lock(&self.last_answer).remove(uid);
        lock(&self.watched).remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_streak_is_tracked_per_resource_and_master() {
        let m = RolesMemory::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(m.track("u", Some("c-0"), true, t0), Some(t0));
        assert_eq!(m.track("u", Some("c-0"), true, t1), Some(t0), "streak kept");
        assert_eq!(
            m.track("v", Some("c-0"), true, t1),
            Some(t1),
            "per resource"
        );
        assert_eq!(
            m.track("u", Some("c-1"), true, t1),
            Some(t1),
            "new master, new streak"
        );
        assert_eq!(m.track("u", Some("c-1"), false, t1), None);
        assert_eq!(
            m.track("u", Some("c-1"), true, t1 + Duration::from_secs(1)),
            Some(t1 + Duration::from_secs(1))
        );
        m.forget("u");
        assert_eq!(m.track("u", None, true, t1), None);
    }

    #[test]
    fn an_outage_counts_from_the_last_fresh_answer_of_the_same_master() {
        let m = RolesMemory::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        m.answered("u", "c-0", t0);
        // Seen down 2 s later: the outage began after the last answer.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(m.track("u", Some("c-0"), true, t1), Some(t0));
        assert_eq!(m.last_answer("u", "c-0"), Some(t0));
        assert_eq!(m.last_answer("u", "c-1"), None, "another master");
        m.track("u", Some("c-0"), false, t1);
        // An answer older than FRESH_ANSWER says nothing about when it stopped.
        let late = t0 + FRESH_ANSWER + Duration::from_secs(1);
        assert_eq!(m.track("u", Some("c-0"), true, late), Some(late));
        m.track("u", Some("c-0"), false, late);
        // The last answer of another master does not count.
        assert_eq!(m.track("u", Some("c-1"), true, t1), Some(t1));
        // An older answer never replaces a newer one.
        m.answered("u", "c-0", t1);
        m.answered("u", "c-0", t0);
        assert_eq!(m.last_answer("u", "c-0"), Some(t1));
    }

    #[test]
    fn watched_targets_are_replaced_and_forgotten() {
        let m = RolesMemory::with_probe_timeout(Duration::from_millis(300));
        assert_eq!(m.timeouts(), Timeouts::uniform(Duration::from_millis(300)));
        let t = |master: &str| Target {
            namespace: "ns".into(),
            name: "c".into(),
            master: master.into(),
            addr: "127.0.0.1:1".into(),
            credentials: Default::default(),
            tls: None,
            timeouts: Timeouts::default(),
        };
        m.watch("u", t("c-0"));
        m.watch("u", t("c-1"));
        let w = m.watched();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].1.master, "c-1");
        m.forget("u");
        assert!(m.watched().is_empty());
    }
}
