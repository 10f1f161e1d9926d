//! What the failover step remembers between reconciles: when each recorded master was first
//! seen unreachable. In memory only: a restarted operator starts over, which the planner
//! treats as "not yet seen unreachable" (it waits `downAfterSeconds` again).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

/// Shared by every reconcile (the controller's context holds one); the lock is never held
/// across an `.await`.
#[derive(Debug, Default)]
pub struct RolesMemory {
    /// Per RedisReplication uid: (recorded master, when it was first seen unreachable).
    unreachable_since: Mutex<HashMap<String, (String, SystemTime)>>,
}

impl RolesMemory {
    /// Updates and returns when `master` was first seen unreachable in the current streak.
    pub(crate) fn track(
        &self,
        uid: &str,
        master: Option<&str>,
        down: bool,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let mut map = match self.unreachable_since.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        match (master, down) {
            (Some(m), true) => {
                let e = map
                    .entry(uid.to_string())
                    .or_insert_with(|| (m.to_string(), now));
                if e.0 != m {
                    *e = (m.to_string(), now);
                }
                Some(e.1)
            }
            _ => {
                map.remove(uid);
                None
            }
        }
    }

    /// Drops what is remembered about a resource (deleted).
    pub fn forget(&self, uid: &str) {
        if let Ok(mut m) = self.unreachable_since.lock() {
            m.remove(uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
