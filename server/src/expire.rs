//! Active expiry (Redis `activeExpireCycle`, slow cycle): a background task that,
//! `hz` times per second, samples keys with a TTL in every database and deletes the
//! expired ones, so keys nobody reads still go away. Masters only: a replica waits
//! for its master's DELs.
//!
//! Like Redis: 20 keys per sample, the sample repeats while more than 25% of it was
//! expired, and one cycle is bounded to ~25% of the period so the keyspace lock is
//! never held for long. Each deletion is propagated as a bare `DEL key` (or `UNLINK`
//! with lazyfree-lazy-expire), never wrapped in MULTI/EXEC.

use crate::server::{now_ms, Server, Stats};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys sampled per database per round.
const SAMPLE: usize = 20;
/// Keep sampling a database while more than this percentage of a sample expired.
const ACCEPTABLE_STALE_PCT: usize = 25;

/// Runs the cycle until shutdown.
pub async fn active_expire_cycle(server: Arc<Server>) {
    let mut shutdown = server.shutdown.subscribe();
    let mut next_db = 0;
    loop {
        let hz = server.config.read().hz.clamp(1, 500) as u64;
        let period = Duration::from_micros(1_000_000 / hz);
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let (_, db) = run_cycle(&server, period / 4, next_db);
        next_db = db;
    }
}

/// One bounded cycle starting at database `start_db`. Returns the number of keys
/// deleted and the database the next cycle should start from.
pub fn run_cycle(server: &Arc<Server>, budget: Duration, start_db: usize) -> (usize, usize) {
    let started = Instant::now();
    let lazy = server.config.read().lazyfree_lazy_expire;
    let del: &'static [u8] = if lazy { b"UNLINK" } else { b"DEL" };
    let mut store = server.store.lock();
    if store.is_replica {
        return (0, start_db);
    }
    let ndbs = store.dbs.len();
    let now = now_ms();
    let mut deleted = 0;
    let mut next_db = start_db % ndbs.max(1);
    'dbs: for step in 0..ndbs {
        let db = (start_db + step) % ndbs;
        next_db = (db + 1) % ndbs;
        // Bounded by the time budget; the round count is a second safety bound.
        for _round in 0..10_000 {
            let volatile = store.dbs[db].expires_count();
            if volatile == 0 {
                break;
            }
            let n = volatile.min(SAMPLE);
            let mut expired: Vec<Bytes> = Vec::new();
            for _ in 0..n {
                if let Some((k, at)) = store.dbs[db].random_volatile() {
                    if at <= now && !expired.contains(k) {
                        expired.push(k.clone());
                    }
                }
            }
            for k in &expired {
                if store.dbs[db].remove(k).is_some() {
                    deleted += 1;
                    Stats::incr(&server.stats.expired_keys, 1);
                    store.dirty += 1;
                    store.touch_key(db, k);
                    store
                        .propagated
                        .push((db, vec![Bytes::from_static(del), k.clone()]));
                }
            }
            if started.elapsed() >= budget {
                next_db = db;
                break 'dbs;
            }
            if expired.len() * 100 <= n * ACCEPTABLE_STALE_PCT {
                break;
            }
        }
    }
    crate::exec::flush_propagated(server, &mut store);
    (deleted, next_db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::types::Value;

    #[test]
    fn cycle_deletes_expired_keys_only_on_a_master() {
        let server = Server::new(Config::default());
        {
            let mut store = server.store.lock();
            for i in 0..50 {
                let k = Bytes::from(format!("old{i}"));
                store.dbs[3].set(k.clone(), Value::Str(Bytes::from_static(b"v")), 0);
                store.dbs[3].set_expire(&k, 1);
            }
            store.dbs[3].set(Bytes::from_static(b"live"), Value::Str(Bytes::new()), 0);
            store.dbs[3].set_expire(b"live", i64::MAX);
            store.is_replica = true;
        }
        assert_eq!(run_cycle(&server, Duration::from_secs(1), 0).0, 0);
        server.store.lock().is_replica = false;
        let mut total = 0;
        for _ in 0..100 {
            total += run_cycle(&server, Duration::from_secs(1), 0).0;
            if total == 50 {
                break;
            }
        }
        assert_eq!(total, 50);
        let store = server.store.lock();
        assert_eq!(store.dbs[3].len(), 1);
        assert!(store.dbs[3].contains(b"live"));
        assert_eq!(Stats::get(&server.stats.expired_keys), 50);
    }
}
