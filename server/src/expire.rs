//! Active expiry (Redis `activeExpireCycle`, slow cycle): a background task that,
//! `hz` times per second, samples keys with a TTL in every database and deletes the
//! expired ones, so keys nobody reads still go away. A replica waits for its master's
//! DELs, except for keys its own clients wrote with a TTL (`replica-read-only no`).
//!
//! Like Redis: 20 keys per sample, the sample repeats while more than 25% of it was
//! expired, and one cycle is bounded to ~25% of the period so the keyspace lock is
//! never held for long. Each deletion is propagated as a bare `DEL key` (or `UNLINK`
//! with lazyfree-lazy-expire), never wrapped in MULTI/EXEC.

use crate::server::{now_ms, Server, Stats, Store};
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
    let mut tsc = crate::util::TscCalibration::default();
    loop {
        let hz = server.config.read().hz.clamp(1, 500) as u64;
        let period = Duration::from_micros(1_000_000 / hz);
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = crate::server::stopping(&mut shutdown) => return,
        }
        if *shutdown.borrow() {
            return;
        }
        tsc.step();
        server.reanchor_clock();
        // A CLIENT PAUSE freezes the dataset, so no key may disappear meanwhile; a
        // busy script holds the store (in Redis the cycle cannot run during a script
        // either); DEBUG PAUSE-CRON stops it with the rest of Redis's `serverCron`.
        if server.client_pause.is_paused() || server.script_busy.is_busy() || server.cron_paused() {
            continue;
        }
        let (_, db) = run_cycle(&server, period / 4, next_db);
        next_db = db;
    }
}

/// One bounded cycle starting at database `start_db`. Returns the number of keys
/// deleted and the database the next cycle should start from.
pub fn run_cycle(server: &Arc<Server>, budget: Duration, start_db: usize) -> (usize, usize) {
    let mut store = server.store.lock();
    // DEBUG SET-ACTIVE-EXPIRE 0 turns the cycle off. Read under the store lock: the
    // command runs under it too, so a cycle that waited for the lock while the
    // command (and the PEXPIREs after it) ran cannot still delete keys.
    if !server
        .active_expire_enabled
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return (0, start_db);
    }
    let r = expire_some(server, &mut store, budget, start_db);
    // Clients blocked on a key that expired are answered now (XREADGROUP's error).
    crate::exec::serve_blocked(server, &mut store);
    crate::exec::flush_propagated(server, &mut store);
    store.tracking_after();
    r
}

/// The cycle's work with the store already locked: deletes expired keys and queues
/// one bare `DEL`/`UNLINK` per key in `store.propagated` (the caller flushes).
pub fn expire_some(
    server: &Arc<Server>,
    store: &mut Store,
    budget: Duration,
    start_db: usize,
) -> (usize, usize) {
    let started = Instant::now();
    let lazy = server.config.read().lazyfree_lazy_expire;
    let del: &'static [u8] = if lazy { b"UNLINK" } else { b"DEL" };
    if store.repl.fenced {
        return (0, start_db);
    }
    if store.is_replica {
        return (expire_replica_keys(server, store, budget), start_db);
    }
    // Tracked while a writable replica; as a master the normal cycle covers them.
    store.replica_volatile.clear();
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
                    if at <= now && !expired.iter().any(|e| e[..] == k[..]) {
                        expired.push(k.to_bytes());
                    }
                }
            }
            for k in &expired {
                if store.dbs[db].remove(k).is_some() {
                    deleted += 1;
                    Stats::incr(&server.stats.expired_keys, 1);
                    store.dirty += 1;
                    store.notify(crate::notify::EXPIRED, "expired", k, db);
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
    let ms = started.elapsed().as_millis() as u64;
    let threshold = store.hot.latency_monitor_threshold;
    store
        .latency
        .monitor
        .add_if_needed(threshold, "expire-cycle", ms);
    (deleted, next_db)
}

/// A writable replica's own keys with a TTL (Redis `expireSlaveKeys`): deleted once
/// expired, without propagation (a replica only relays its master's stream). Keys
/// gone or made persistent stop being tracked. Bounded by `budget`.
fn expire_replica_keys(server: &Arc<Server>, store: &mut Store, budget: Duration) -> usize {
    if store.replica_volatile.is_empty() {
        return 0;
    }
    let started = Instant::now();
    let now = now_ms();
    let mut expired = Vec::new();
    let mut seen = 0usize;
    let dbs = &store.dbs;
    store.replica_volatile.retain(|(db, key)| {
        seen += 1;
        if seen.is_multiple_of(64) && started.elapsed() >= budget {
            return true;
        }
        match dbs.get(*db).and_then(|d| d.expire_of(key)) {
            None => false,
            Some(at) if at <= now => {
                expired.push((*db, key.clone()));
                false
            }
            Some(_) => true,
        }
    });
    let mut deleted = 0;
    for (db, k) in expired {
        let removed = store.dbs.get_mut(db).and_then(|d| d.remove(&k)).is_some();
        if removed {
            deleted += 1;
            Stats::incr(&server.stats.expired_keys, 1);
            store.dirty += 1;
            store.notify(crate::notify::EXPIRED, "expired", &k, db);
            store.touch_key(db, &k);
        }
    }
    deleted
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
                store.dbs[3].set(k.clone(), Value::Str(b"v".into()), 0);
                store.dbs[3].set_expire(&k, 1);
            }
            store.dbs[3].set(
                Bytes::from_static(b"live"),
                Value::Str(Bytes::new().into()),
                0,
            );
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

    #[test]
    fn a_replica_expires_only_the_keys_its_own_clients_gave_a_ttl() {
        let server = Server::new(Config::default());
        let mut store = server.store.lock();
        store.is_replica = true;
        for key in ["mine", "masters"] {
            let k = Bytes::from_static(key.as_bytes());
            store.dbs[1].set(k.clone(), Value::Str(Bytes::new().into()), 0);
            store.dbs[1].set_expire(&k, 1);
        }
        store
            .replica_volatile
            .insert((1, Bytes::from_static(b"mine")));
        store
            .replica_volatile
            .insert((1, Bytes::from_static(b"deleted-since")));
        let (n, _) = expire_some(&server, &mut store, Duration::from_secs(1), 0);
        assert_eq!(n, 1);
        assert!(!store.dbs[1].contains(b"mine"));
        assert!(
            store.dbs[1].contains(b"masters"),
            "the master's DEL decides"
        );
        assert!(store.replica_volatile.is_empty());
        assert!(store.propagated.is_empty(), "a replica propagates nothing");
    }

    #[test]
    fn each_expired_key_is_propagated_as_a_bare_del_or_unlink() {
        let server = Server::new(Config::default());
        let mut store = server.store.lock();
        for (db, key) in [(0, "a"), (2, "b")] {
            let k = Bytes::from_static(key.as_bytes());
            store.dbs[db].set(k.clone(), Value::Str(Bytes::new().into()), 0);
            store.dbs[db].set_expire(&k, 1);
        }
        let (n, _) = expire_some(&server, &mut store, Duration::from_secs(1), 0);
        assert_eq!(n, 2);
        let ops: Vec<(usize, Vec<Bytes>)> = std::mem::take(&mut store.propagated);
        assert_eq!(
            ops,
            vec![
                (
                    0,
                    vec![Bytes::from_static(b"DEL"), Bytes::from_static(b"a")]
                ),
                (
                    2,
                    vec![Bytes::from_static(b"DEL"), Bytes::from_static(b"b")]
                ),
            ]
        );
        server.config.write().lazyfree_lazy_expire = true;
        store.dbs[1].set(Bytes::from_static(b"c"), Value::Str(Bytes::new().into()), 0);
        store.dbs[1].set_expire(b"c", 1);
        expire_some(&server, &mut store, Duration::from_secs(1), 0);
        assert_eq!(
            store.propagated,
            vec![(
                1,
                vec![Bytes::from_static(b"UNLINK"), Bytes::from_static(b"c")]
            )]
        );
    }
}
