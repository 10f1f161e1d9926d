//! OBJECT FREQ and the LFU counter under the `*-lfu` policies, against Redis 7.0.15
//! where the counter is deterministic (`lfu-log-factor 0` makes every access count;
//! a counter stops at 255), and eviction under `allkeys-lfu` keeping hot keys.
mod common;
use common::*;

fn both(p: &mut Pair, lines: &[&str]) {
    for line in lines {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        p.same(&args);
    }
}

#[test]
fn object_freq_and_idletime_errors_follow_the_policy() {
    let mut p = Pair::start();
    both(
        &mut p,
        &[
            "SET k v",
            "OBJECT FREQ k",
            "OBJECT FREQ missing",
            "CONFIG SET maxmemory-policy allkeys-lfu",
            "OBJECT IDLETIME k",
            "OBJECT IDLETIME missing",
            "OBJECT FREQ missing",
            "CONFIG SET maxmemory-policy volatile-lfu",
            "OBJECT IDLETIME k",
            "CONFIG SET maxmemory-policy volatile-lru",
            "OBJECT FREQ k",
        ],
    );
}

#[test]
fn every_access_counts_with_log_factor_zero_and_the_counter_stops_at_255() {
    let mut p = Pair::start();
    both(
        &mut p,
        &[
            "CONFIG SET maxmemory-policy allkeys-lfu",
            "CONFIG SET lfu-log-factor 0",
            "SET k v",
            "OBJECT FREQ k",
            "GET k",
            "GET k",
            "STRLEN k",
            "OBJECT FREQ k",
            "EXISTS k",
            "TYPE k",
            "OBJECT FREQ k",
            "APPEND k w",
            "OBJECT FREQ k",
            "RPUSH l a b",
            "LRANGE l 0 -1",
            "LPOP l",
            "OBJECT FREQ l",
            "SET k v2",
            "OBJECT FREQ k",
        ],
    );
    // RESTORE ... FREQ sets the counter; it never goes above 255.
    let dump = p.same(&[b"DUMP", b"k"]);
    let R::Bulk(payload) = dump else {
        panic!("DUMP: {dump:?}")
    };
    for freq in ["0", "100", "254", "255", "256", "-1", "x"] {
        p.same(&[
            b"RESTORE",
            b"r",
            b"0",
            &payload,
            b"REPLACE",
            b"FREQ",
            freq.as_bytes(),
        ]);
        p.same(&[b"OBJECT", b"FREQ", b"r"]);
        for _ in 0..3 {
            p.same(&[b"GET", b"r"]);
        }
        p.same(&[b"OBJECT", b"FREQ", b"r"]);
    }
    // Under an LRU policy FREQ is accepted and ignored, IDLETIME applies.
    p.same(&[b"CONFIG", b"SET", b"maxmemory-policy", b"allkeys-lru"]);
    p.same(&[b"RESTORE", b"i", b"0", &payload, b"FREQ", b"7"]);
    p.same(&[b"OBJECT", b"FREQ", b"i"]);
    p.same(&[b"OBJECT", b"IDLETIME", b"i"]);
}

/// With a memory limit and `allkeys-lfu`, keys read often survive a flood of keys
/// read once; under `allkeys-random` most of them would go.
#[test]
fn lfu_eviction_keeps_the_hot_keys() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("CONFIG SET maxmemory-policy allkeys-lfu"), R::ok());
    assert_eq!(c.cmd("CONFIG SET maxmemory-samples 10"), R::ok());
    let value = "x".repeat(1000);
    for i in 0..50 {
        c.cmd_args(&[b"SET", format!("hot:{i}").as_bytes(), value.as_bytes()]);
        for _ in 0..20 {
            c.cmd(&format!("GET hot:{i}"));
        }
    }
    let R::Bulk(info) = c.cmd("INFO memory") else {
        panic!("INFO")
    };
    let used: u64 = String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:")?.parse().ok())
        .expect("used_memory");
    // Room for about 2 000 more values: 5 000 cold ones must push keys out.
    let limit = used + 2_000 * 1_100;
    assert_eq!(c.cmd(&format!("CONFIG SET maxmemory {limit}")), R::ok());
    for i in 0..5_000 {
        let r = c.cmd_args(&[b"SET", format!("cold:{i}").as_bytes(), value.as_bytes()]);
        assert_eq!(r, R::ok(), "SET cold:{i}");
    }
    let R::Bulk(stats) = c.cmd("INFO stats") else {
        panic!("INFO")
    };
    let evicted: u64 = String::from_utf8_lossy(&stats)
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:")?.parse().ok())
        .expect("evicted_keys");
    assert!(evicted > 2_000, "evicted {evicted}");
    let hot_left = (0..50)
        .filter(|i| c.cmd(&format!("EXISTS hot:{i}")) == R::Int(1))
        .count();
    // A random policy would keep about (kept / total) of them, well under half.
    assert!(hot_left >= 45, "only {hot_left} of 50 hot keys left");
    let freq = c.cmd("OBJECT FREQ hot:0");
    assert!(matches!(freq, R::Int(n) if n > 5), "{freq:?}");
}
