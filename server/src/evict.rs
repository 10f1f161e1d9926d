//! Memory accounting and `maxmemory` eviction (Redis `performEvictions`).
//!
//! Policies: `noeviction`; `allkeys-lru` / `volatile-lru` (approximated like Redis:
//! sample `maxmemory-samples` keys per database and evict the least recently used);
//! `allkeys-lfu` / `volatile-lfu` (the same sampling, evicting the least frequently
//! used by the [`Lfu`] counter); `allkeys-random` / `volatile-random`; `volatile-ttl`
//! (of the sampled keys with a TTL, the one expiring first).
//!
//! LFU counter layout (Redis's, in the 24 bits an entry otherwise uses for its LRU
//! clock, `Entry::lru`): bits 8..24 = the time of the last decrement in minutes
//! (Unix minutes mod 2^16), bits 0..8 = a logarithmic access counter. A new key starts
//! at [`LFU_INIT_VAL`]; each access decays it by one per `lfu-decay-time` minutes
//! elapsed, then increments it with probability 1 / ((counter - 5) * lfu-log-factor + 1).

use crate::server::{Server, Stats, Store};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The counter of a new key (so it is not evicted before it had a chance).
pub const LFU_INIT_VAL: u8 = 5;

/// The LFU policies' parameters (`lfu-log-factor`, `lfu-decay-time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lfu {
    pub log_factor: u32,
    pub decay_time: u32,
}

impl Lfu {
    /// Unix minutes mod 2^16 at `now_ms`.
    pub fn minutes(now_ms: i64) -> u32 {
        ((now_ms.max(0) / 60_000) & 0xFFFF) as u32
    }

    /// The field of a key created at `now_ms`.
    pub fn init(now_ms: i64) -> u32 {
        (Self::minutes(now_ms) << 8) | LFU_INIT_VAL as u32
    }

    /// The counter of field `lru` at `now_ms`, decayed by the minutes elapsed since
    /// its last decrement (the clock wraps at 2^16 minutes).
    pub fn counter(&self, lru: u32, now_ms: i64) -> u8 {
        let ldt = (lru >> 8) & 0xFFFF;
        let counter = (lru & 0xFF) as u8;
        let now = Self::minutes(now_ms);
        let elapsed = if now >= ldt {
            now - ldt
        } else {
            0xFFFF - ldt + now
        };
        let periods = elapsed.checked_div(self.decay_time).unwrap_or(0);
        counter.saturating_sub(u8::try_from(periods).unwrap_or(u8::MAX))
    }

    /// One access: the decayed counter, incremented logarithmically, stamped now.
    pub fn touch(&self, lru: u32, now_ms: i64) -> u32 {
        let mut counter = self.counter(lru, now_ms);
        if counter < u8::MAX {
            let base = counter.saturating_sub(LFU_INIT_VAL) as f64;
            let p = 1.0 / (base * self.log_factor as f64 + 1.0);
            if rand::random::<f64>() < p {
                counter += 1;
            }
        }
        (Self::minutes(now_ms) << 8) | counter as u32
    }

    /// The field for RESTORE ... FREQ `freq` (0..=255).
    pub fn with_counter(freq: u8, now_ms: i64) -> u32 {
        (Self::minutes(now_ms) << 8) | freq as u32
    }
}

/// Over `maxmemory` with nothing (more) to evict: Redis's OOM refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("OOM command not allowed when used memory > 'maxmemory'.")]
pub struct Oom;

/// Bytes in use (INFO `used_memory`; see `crate::alloc` for the measure).
pub fn used_memory() -> u64 {
    crate::alloc::used() as u64
}

/// Bytes queued for replicas and not yet written to them. Like Redis
/// (`freeMemoryGetNotCountedMemory`), eviction does not count replica output buffers,
/// or a slow replica would make the master evict its dataset (and the DELs would add
/// to that same buffer).
fn not_counted(store: &Store) -> u64 {
    store
        .repl
        .replicas
        .iter()
        .map(|r| r.queued.load(Ordering::Relaxed))
        .sum()
}

/// The figure compared with `maxmemory`.
pub fn memory_for_eviction(store: &Store) -> u64 {
    used_memory().saturating_sub(not_counted(store))
}

/// Whether memory is over a set `maxmemory`. Every command of a client asks while
/// it is set, so this is decided from `store.hot` (which follows CONFIG SET),
/// without the configuration lock.
#[inline]
pub fn over_limit(store: &Store) -> bool {
    let max = store.hot.maxmemory;
    max != 0 && memory_for_eviction(store) > max
}

/// Frees memory per `maxmemory-policy` until under `maxmemory`, or returns Redis's
/// OOM error text. Each eviction is pushed to `store.propagated` as `DEL key`
/// (`UNLINK key` with `lazyfree-lazy-eviction`, as Redis propagates it).
pub fn ensure_memory(server: &Arc<Server>, store: &mut Store) -> Result<(), Oom> {
    if store.repl.fenced || store.is_replica {
        // A fenced server deletes nothing (see `crate::replication::fence`); its writes
        // are refused. A replica ignores maxmemory (Redis's default
        // `replica-ignore-maxmemory yes`): its keys are its master's to delete.
        return Ok(());
    }
    if !over_limit(store) {
        return Ok(());
    }
    let (max, policy, samples) = {
        let c = server.config.read();
        (
            c.maxmemory,
            c.maxmemory_policy.clone(),
            c.maxmemory_samples.clamp(1, 64), // more adds CPU for little accuracy
        )
    };
    if max == 0 || memory_for_eviction(store) <= max {
        return Ok(());
    }
    if policy == "noeviction" {
        return Err(Oom);
    }
    // The whole eviction run is one `eviction-cycle` latency sample.
    let started = std::time::Instant::now();
    let result = evict_until(server, store, (max, &policy, samples));
    let ms = started.elapsed().as_millis() as u64;
    let threshold = store.hot.latency_monitor_threshold;
    store
        .latency
        .monitor
        .add_if_needed(threshold, "eviction-cycle", ms);
    result
}

/// Evicts keys until memory is under `max` or nothing is left to evict.
fn evict_until(
    server: &Arc<Server>,
    store: &mut Store,
    (max, policy, samples): (u64, &str, usize),
) -> Result<(), Oom> {
    // Every round deletes one key, so the loop ends when the keyspace is empty.
    loop {
        if memory_for_eviction(store) <= max {
            return Ok(());
        }
        if !evict_one(server, store, policy, samples) {
            // Nothing left to evict. The DELs queued so far stay in
            // `store.propagated`: the caller hands them on.
            return Err(Oom);
        }
    }
}

/// Evicts one key chosen by `policy`; false if there is no candidate.
fn evict_one(server: &Server, store: &mut Store, policy: &str, samples: usize) -> bool {
    let Some((db, key)) = pick_victim(store, policy, samples) else {
        return false;
    };
    store.dbs[db].remove(&key);
    Stats::incr(&server.stats.evicted_keys, 1);
    // Modified by nobody (Redis signals it with no client), before the notification.
    store.touch_expired_key(db, &key);
    store.notify(crate::notify::EVICTED, "evicted", &key, db);
    let lazy = server.config.read().lazyfree_lazy_eviction;
    let del: &'static [u8] = if lazy { b"UNLINK" } else { b"DEL" };
    store
        .propagated
        .push((db, vec![Bytes::from_static(del), key]));
    true
}

/// Chooses the key to evict under `policy`, sampling `samples` keys per database.
fn pick_victim(store: &Store, policy: &str, samples: usize) -> Option<(usize, Bytes)> {
    let volatile = policy.starts_with("volatile-");
    let candidates = store.dbs.iter().enumerate().filter(|(_, d)| {
        if volatile {
            d.expires_count() > 0
        } else {
            !d.is_empty()
        }
    });
    match policy {
        "allkeys-random" | "volatile-random" => {
            let dbs: Vec<usize> = candidates.map(|(i, _)| i).collect();
            if dbs.is_empty() {
                return None;
            }
            let db = dbs[rand::random::<usize>() % dbs.len()];
            let d = &store.dbs[db];
            let key = if volatile {
                d.random_volatile().map(|(k, _)| k.to_bytes())
            } else {
                d.random_key().map(|k| k.to_bytes())
            }?;
            Some((db, key))
        }
        "volatile-ttl" => {
            let mut best: Option<(i64, usize, Bytes)> = None;
            for (i, d) in candidates {
                for _ in 0..samples {
                    if let Some((k, at)) = d.random_volatile() {
                        if best.as_ref().is_none_or(|b| at < b.0) {
                            best = Some((at, i, k.to_bytes()));
                        }
                    }
                }
            }
            best.map(|(_, db, k)| (db, k))
        }
        // LRU, or LFU (the lowest decayed counter).
        _ => {
            let lfu = store.hot.lfu;
            let now_ms = crate::util::now_ms();
            let mut best: Option<(u32, usize, Bytes)> = None;
            for (i, d) in candidates {
                for _ in 0..samples {
                    let k = if volatile {
                        d.random_volatile().map(|(k, _)| k)
                    } else {
                        d.random_key()
                    };
                    let Some(k) = k else { continue };
                    let lru = d.entry(k).map_or(0, |e| e.meta.lru());
                    let score = match lfu {
                        Some(l) => l.counter(lru, now_ms) as u32,
                        None => lru,
                    };
                    if best.as_ref().is_none_or(|b| score < b.0) {
                        best = Some((score, i, k.to_bytes()));
                    }
                }
            }
            best.map(|(_, db, k)| (db, k))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfu_counter_decays_per_decay_time_across_the_minute_wrap_and_stops_at_255() {
        let min = 60_000i64;
        let l = Lfu {
            log_factor: 0,
            decay_time: 2,
        };
        let t0 = 1_000 * min;
        let field = Lfu::with_counter(20, t0);
        assert_eq!(l.counter(field, t0), 20);
        assert_eq!(l.counter(field, t0 + min), 20);
        assert_eq!(l.counter(field, t0 + 7 * min), 17);
        assert_eq!(l.counter(field, t0 + 1_000 * min), 0);
        // decay-time 0: never decays.
        let never = Lfu {
            log_factor: 0,
            decay_time: 0,
        };
        assert_eq!(never.counter(field, t0 + 1_000 * min), 20);
        // The 16-bit minute clock wraps: 65 535 minutes later is close again.
        let late = 65_530 * min;
        let f = Lfu::with_counter(9, late);
        assert_eq!(l.counter(f, late + 10 * min), 5);
        // log-factor 0: every access counts, up to 255 and no further.
        let mut f = Lfu::init(t0);
        for _ in 0..300 {
            f = l.touch(f, t0);
        }
        assert_eq!(f & 0xFF, 255);
        assert_eq!(f >> 8, Lfu::minutes(t0));
        // The default log factor makes increments rarer as the counter grows.
        let d = Lfu {
            log_factor: 10,
            decay_time: 1,
        };
        // Random draws: one run of 1,000 touches ends near 18 (Redis's documented figure for
        // factor 10) but can stray a few steps; the mean of 20 runs is steady.
        let runs = 20;
        let total: u32 = (0..runs)
            .map(|_| {
                let mut f = Lfu::init(t0);
                for _ in 0..1_000 {
                    f = d.touch(f, t0);
                }
                f & 0xFF
            })
            .sum();
        let mean = f64::from(total) / f64::from(runs);
        assert!((16.0..21.0).contains(&mean), "{mean}");
    }
    use crate::types::Value;

    fn store_with(n: usize, ttl_every: usize) -> Store {
        let mut s = Store::new(2);
        for i in 0..n {
            let k = Bytes::from(format!("k{i}"));
            s.dbs[i % 2].set(k.clone(), Value::Str(b"v".into()), i as u32);
            if ttl_every > 0 && i % ttl_every == 0 {
                s.dbs[i % 2].set_expire(&k, 1_000_000 + i as i64);
            }
        }
        s
    }

    #[test]
    fn each_eviction_is_counted_and_propagated_as_del() {
        let server = Server::new(crate::config::Config::default());
        let mut s = store_with(3, 0);
        for _ in 0..3 {
            assert!(evict_one(&server, &mut s, "allkeys-lru", 5));
        }
        assert!(!evict_one(&server, &mut s, "allkeys-lru", 5));
        assert_eq!(Stats::get(&server.stats.evicted_keys), 3);
        assert!(s.dbs.iter().all(|d| d.is_empty()));
        let mut dels: Vec<(usize, Vec<Bytes>)> = s.propagated.clone();
        dels.sort();
        assert_eq!(
            dels,
            vec![
                (0, vec![Bytes::from("DEL"), Bytes::from("k0")]),
                (0, vec![Bytes::from("DEL"), Bytes::from("k2")]),
                (1, vec![Bytes::from("DEL"), Bytes::from("k1")]),
            ]
        );
    }

    #[test]
    fn lazyfree_lazy_eviction_propagates_unlink() {
        let server = Server::new(crate::config::Config::default());
        server.config.write().lazyfree_lazy_eviction = true;
        let mut s = store_with(1, 0);
        assert!(evict_one(&server, &mut s, "allkeys-lru", 5));
        assert_eq!(
            s.propagated,
            vec![(0, vec![Bytes::from("UNLINK"), Bytes::from("k0")])]
        );
    }

    #[test]
    fn lru_prefers_old_keys() {
        let s = store_with(1000, 0);
        // With 64 samples per db out of 500, the oldest sampled key is almost surely
        // among the older half.
        let (_, k) = pick_victim(&s, "allkeys-lru", 64).unwrap();
        let n: usize = k[1..].iter().fold(0, |a, c| a * 10 + (c - b'0') as usize);
        assert!(n < 500, "evicted k{n}");
    }

    #[test]
    fn volatile_policies_only_pick_keys_with_ttl() {
        let s = store_with(100, 10);
        for p in [
            "volatile-lru",
            "volatile-random",
            "volatile-ttl",
            "volatile-lfu",
        ] {
            for _ in 0..20 {
                let (db, k) = pick_victim(&s, p, 5).unwrap();
                assert!(s.dbs[db].expire_of(&k).is_some(), "{p} picked {k:?}");
            }
        }
        let s = store_with(100, 0);
        assert!(pick_victim(&s, "volatile-lru", 5).is_none());
        assert!(pick_victim(&Store::new(1), "allkeys-random", 5).is_none());
    }

    #[test]
    fn volatile_ttl_picks_soonest_expiry_among_samples() {
        let s = store_with(100, 1);
        // Sampling many times over 50 keys per db finds the two earliest.
        let (db, k) = pick_victim(&s, "volatile-ttl", 64).unwrap();
        assert!(s.dbs[db].expire_of(&k).unwrap() < 1_000_010);
    }
}
