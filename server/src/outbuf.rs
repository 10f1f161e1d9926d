//! Output buffer limits per client class (`client-output-buffer-limit`), as Redis
//! applies them: a client whose pending output reaches the class's hard limit, or stays
//! at or above its soft limit for longer than the soft seconds, is closed.
//!
//! What counts as pending output: bytes queued for the client by others (Pub/Sub
//! messages, MONITOR lines, the replication stream) that its connection has not yet
//! written to the socket, plus the replies its own commands built and not yet written.
//! The queues are bounded by this rule: once a client is over its limit nothing more is
//! queued for it, and its connection is woken to close.

use std::sync::atomic::{AtomicU64, Ordering};

/// The client classes of `client-output-buffer-limit`, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Normal = 0,
    Replica = 1,
    PubSub = 2,
}

/// One class's limits; 0 disables a limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    pub hard: u64,
    pub soft: u64,
    pub soft_secs: u64,
}

/// The three classes' limits, indexed by [`Class`].
pub type Limits = [Limit; 3];

/// Parses the canonical value of `client-output-buffer-limit`
/// (`normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60`).
pub fn parse(value: &str) -> Limits {
    let mut out = Limits::default();
    let words: Vec<&str> = value.split_ascii_whitespace().collect();
    for chunk in words.chunks(4) {
        let [class, hard, soft, secs] = chunk else {
            continue;
        };
        let at = match class.to_ascii_lowercase().as_str() {
            "normal" => Class::Normal,
            "slave" | "replica" => Class::Replica,
            "pubsub" => Class::PubSub,
            _ => continue,
        };
        out[at as usize] = Limit {
            hard: crate::config::parse_memory(hard).unwrap_or(0),
            soft: crate::config::parse_memory(soft).unwrap_or(0),
            soft_secs: secs.parse().unwrap_or(0),
        };
    }
    out
}

/// Pending output of one client, shared between whoever queues for it and its
/// connection (atomics: publishers run under the store lock, the connection does not).
#[derive(Debug)]
pub struct Pending {
    /// Bytes queued by others and not yet written.
    queued: AtomicU64,
    /// When the soft limit was first reached, in ms since `origin` plus one (0 = not).
    soft_since_ms: AtomicU64,
    origin: std::time::Instant,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            queued: AtomicU64::new(0),
            soft_since_ms: AtomicU64::new(0),
            origin: std::time::Instant::now(),
        }
    }
}

impl Pending {
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Counts `n` more queued bytes; returns the new total.
    pub fn add(&self, n: u64) -> u64 {
        self.queued.fetch_add(n, Ordering::Relaxed) + n
    }

    /// `n` queued bytes were written (or dropped).
    pub fn sub(&self, n: u64) {
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            });
    }

    /// Whether a client with `used` pending bytes must be closed under `limit`
    /// (Redis's `checkClientOutputBufferLimits`): at or over the hard limit, or over
    /// the soft limit continuously for more than its seconds. Below the soft limit
    /// the soft timer resets.
    pub fn over(&self, used: u64, limit: &Limit) -> bool {
        if limit.hard != 0 && used >= limit.hard {
            return true;
        }
        if limit.soft == 0 || used < limit.soft {
            self.soft_since_ms.store(0, Ordering::Relaxed);
            return false;
        }
        let now = self.origin.elapsed().as_millis() as u64 + 1;
        match self
            .soft_since_ms
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => false,
            Err(since) => now.saturating_sub(since) > limit.soft_secs * 1000,
        }
    }
}

/// The log line Redis writes when it closes a client for its output buffer.
pub fn log_closing(client_desc: &str) {
    crate::warning!(
        "Client {client_desc} scheduled to be closed ASAP for overcoming of output buffer limits."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_default_and_units() {
        let l = parse("normal 0 0 0 slave 268435456 67108864 60 pubsub 32mb 8mb 60");
        assert_eq!(l[Class::Normal as usize], Limit::default());
        assert_eq!(l[Class::Replica as usize].hard, 256 << 20);
        assert_eq!(
            l[Class::PubSub as usize],
            Limit {
                hard: 32 << 20,
                soft: 8 << 20,
                soft_secs: 60
            }
        );
    }

    #[test]
    fn hard_limit_at_once_soft_limit_after_its_seconds() {
        let p = Pending::default();
        let hard = Limit {
            hard: 100,
            soft: 0,
            soft_secs: 0,
        };
        assert!(!p.over(99, &hard));
        assert!(p.over(100, &hard));
        let soft = Limit {
            hard: 0,
            soft: 10,
            soft_secs: 0,
        };
        // First time over the soft limit starts the timer; with 0 s any later check
        // a millisecond on closes.
        assert!(!p.over(10, &soft));
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(3) {
            std::hint::spin_loop();
        }
        assert!(p.over(10, &soft));
        // Dropping below resets it.
        assert!(!p.over(9, &soft));
        assert!(!p.over(10, &soft));
    }

    #[test]
    fn counts_saturate() {
        let p = Pending::default();
        assert_eq!(p.add(5), 5);
        p.sub(7);
        assert_eq!(p.queued(), 0);
    }
}
