//! INFO memory's derived figures, on Tandem and on Redis 7.0.15 alike: the peak of
//! `used_memory` survives a FLUSHALL and CONFIG RESETSTAT, `used_memory_peak_perc` is
//! the current use against it, and the fragmentation ratio is the RSS against
//! `used_memory` (both were fixed values before: the peak equal to the current use,
//! the ratios 1.00).
mod common;
use common::*;

/// INFO memory as name -> value.
fn memory(c: &mut Conn) -> std::collections::HashMap<String, String> {
    let R::Bulk(text) = c.cmd("INFO memory") else {
        panic!("INFO memory");
    };
    String::from_utf8(text)
        .expect("utf8")
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn num(m: &std::collections::HashMap<String, String>, k: &str) -> f64 {
    m.get(k)
        .unwrap_or_else(|| panic!("{k} missing"))
        .trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("{k} not a number"))
}

/// Writes about 20 MB, reads INFO, flushes, reads INFO again; checks the figures.
fn check(c: &mut Conn, who: &str) {
    let value = "x".repeat(1000);
    for i in 0..20_000 {
        c.send(&[b"SET", format!("key:{i}").as_bytes(), value.as_bytes()]);
    }
    for _ in 0..20_000 {
        assert_eq!(c.read(), R::ok());
    }
    // Redis samples the RSS and the ratios in its 100 ms cron: read after one ran.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let full = memory(c);
    let (used, peak) = (num(&full, "used_memory"), num(&full, "used_memory_peak"));
    assert!(
        used > 15e6 && peak >= used,
        "{who}: used {used} peak {peak}"
    );
    let rss = num(&full, "used_memory_rss");
    let frag = num(&full, "mem_fragmentation_ratio");
    assert!(
        (frag - rss / used).abs() < 0.011,
        "{who}: {frag} vs {rss}/{used}"
    );
    // (Redis's figures come from its last cron sample: within what INFO allocates.)
    let bytes = num(&full, "mem_fragmentation_bytes");
    assert!(
        (bytes - (rss - used)).abs() < 65536.0,
        "{who}: fragmentation bytes {bytes} vs {rss} - {used}"
    );

    assert_eq!(c.cmd("FLUSHALL"), R::ok());
    assert_eq!(c.cmd("CONFIG RESETSTAT"), R::ok());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let empty = memory(c);
    let (now, kept) = (num(&empty, "used_memory"), num(&empty, "used_memory_peak"));
    assert!(kept >= used, "{who}: the peak went from {peak} to {kept}");
    let perc = num(&empty, "used_memory_peak_perc");
    assert!(
        (perc - now * 100.0 / kept).abs() < 0.011 && perc < 50.0,
        "{who}: peak perc {perc} ({now} of {kept})"
    );
    let frag = num(&empty, "mem_fragmentation_ratio");
    assert!(
        frag > 1.5,
        "{who}: the RSS outlives the flushed data: {frag}"
    );
}

#[test]
fn peak_and_fragmentation_follow_the_data_like_redis() {
    let ours = TestServer::start(&[]);
    check(&mut ours.conn(), "tandem");
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "r.rdb", &[]);
    check(&mut theirs.conn(), "redis");
}
