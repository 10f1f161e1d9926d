//! INFO errorstats, differential against Redis 7.0.15: the same errors (refusals
//! before a command runs, errors a command answers, a transaction's EXECABORT, a
//! blocked client unblocked with an error, errors inside scripts) give the same
//! `errorstat_<PREFIX>:count=N` lines and `total_error_replies`; CONFIG RESETSTAT
//! clears them. Then Tandem's bound on the number of prefixes.
mod common;
use common::*;
use std::collections::BTreeMap;

/// The `errorstat_*` lines, and `total_error_replies`.
fn errorstats(c: &mut Conn) -> (BTreeMap<String, String>, u64) {
    let R::Bulk(text) = c.cmd("INFO errorstats") else {
        panic!("INFO errorstats");
    };
    let text = String::from_utf8(text).expect("utf8");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("# Errorstats"));
    let by_prefix = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').expect("name:value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let total = info_field(c, "stats", "total_error_replies")
        .and_then(|v| v.parse().ok())
        .expect("total_error_replies");
    (by_prefix, total)
}

fn same_errorstats(p: &mut Pair) -> (BTreeMap<String, String>, u64) {
    let ours = errorstats(&mut p.a);
    let theirs = errorstats(&mut p.b);
    assert_eq!(ours, theirs, "INFO errorstats (tandem, redis)");
    ours
}

const SEQUENCE: &[&[&str]] = &[
    &["SET", "s", "v"],
    &["NOSUCHCOMMAND", "a"],
    &["GET"],
    &["LPUSH", "s", "x"],
    &["INCR", "s"],
    &["EVALSHA", "0123456789012345678901234567890123456789", "0"],
    &["XADD", "st", "1-1", "f", "v"],
    &["XGROUP", "CREATECONSUMER", "st", "nogroup", "c"],
    &["AUTH", "nosuchpassword"],
    &["EXEC"],
    &["MULTI"],
    &["SET"],
    &["EXEC"],
    &["MULTI"],
    &["LPUSH", "s", "x"],
    &["EXEC"],
    &["CONFIG", "NOSUCHSUB"],
    &["CLIENT", "KILL", "ID", "999999"],
    &["EVAL", "error('plain')", "0"],
    &["EVAL", "redis.pcall('lpush', KEYS[1], 'x')", "1", "s"],
    &["EVAL", "return redis.pcall('incr', KEYS[1])", "1", "s"],
    &["EVAL", "return redis.call('incr', 'a', 'b')", "0"],
    &["EVAL", "return redis.call('nosuch')", "0"],
];

#[test]
fn errors_are_counted_by_prefix_like_redis() {
    let mut p = Pair::start();
    p.same(&[b"CONFIG", b"RESETSTAT"]);
    assert_eq!(same_errorstats(&mut p), (BTreeMap::new(), 0));
    for args in SEQUENCE {
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        p.same(&refs);
    }
    let (by_prefix, total) = same_errorstats(&mut p);
    for prefix in ["ERR", "WRONGTYPE", "NOSCRIPT", "NOGROUP", "EXECABORT"] {
        assert!(
            by_prefix.contains_key(&format!("errorstat_{prefix}")),
            "{prefix} in {by_prefix:?}"
        );
    }
    assert!(total >= 10, "{total}");

    // Refusals for lack of authentication or permission, and OOM.
    p.same_words("ACL SETUSER alice on >pw ~k* +get +set +info");
    p.same_words("AUTH alice pw");
    p.same_words("SET other 1");
    p.same_words("AUTH default nopass");
    p.same_words("CONFIG SET maxmemory 1");
    p.same_words("SET k v");
    p.same_words("CONFIG SET maxmemory 0");
    let (by_prefix, _) = same_errorstats(&mut p);
    assert_eq!(by_prefix["errorstat_NOPERM"], "count=1");
    assert_eq!(by_prefix["errorstat_OOM"], "count=1");

    p.same(&[b"CONFIG", b"RESETSTAT"]);
    assert_eq!(same_errorstats(&mut p), (BTreeMap::new(), 0));
}

/// A client blocked in BLPOP and unblocked with CLIENT UNBLOCK ... ERROR gets an
/// UNBLOCKED error, counted under its prefix.
#[test]
fn an_unblocked_client_error_is_counted() {
    let mut p = Pair::start();
    p.same(&[b"CONFIG", b"RESETSTAT"]);
    for c in [&mut p.a, &mut p.b] {
        let port = c.stream.get_ref().peer_addr().expect("peer").port();
        let mut blocked = Conn::connect(port);
        let R::Int(id) = blocked.cmd("CLIENT ID") else {
            panic!("CLIENT ID");
        };
        blocked.send(&[b"BLPOP", b"nolist", b"0"]);
        assert!(wait_until(std::time::Duration::from_secs(5), || {
            info_field(c, "clients", "blocked_clients").as_deref() == Some("1")
        }));
        assert_eq!(c.cmd(&format!("CLIENT UNBLOCK {id} ERROR")), R::Int(1));
        assert!(matches!(blocked.read(), R::Err(e) if e.starts_with("UNBLOCKED")));
    }
    let (by_prefix, total) = same_errorstats(&mut p);
    assert_eq!(by_prefix["errorstat_UNBLOCKED"], "count=1");
    assert_eq!(total, 1);
}

/// Tandem keeps at most 128 prefixes (Redis 7.0.15 keeps any number; later Redis
/// versions bound them the same way): one more leaves only ERRORSTATS_DISABLED,
/// count 1, until CONFIG RESETSTAT, while total_error_replies goes on counting.
#[test]
fn distinct_prefixes_are_bounded_until_resetstat() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    for i in 0..130 {
        let script = format!("error({{err='P{i} custom'}})");
        assert!(matches!(
            c.cmd_args(&[b"EVAL", script.as_bytes(), b"0"]),
            R::Err(_)
        ));
    }
    let (by_prefix, total) = errorstats(&mut c);
    assert_eq!(
        by_prefix,
        BTreeMap::from([(
            "errorstat_ERRORSTATS_DISABLED".to_string(),
            "count=1".to_string()
        )])
    );
    assert_eq!(total, 130);
    assert!(s.stdout().contains("Errorstats stopped adding new errors"));
    assert_eq!(c.cmd("CONFIG RESETSTAT"), R::ok());
    c.cmd("GET");
    let (by_prefix, total) = errorstats(&mut c);
    assert_eq!(
        by_prefix,
        BTreeMap::from([("errorstat_ERR".to_string(), "count=1".to_string())])
    );
    assert_eq!(total, 1);
}

/// CONFIG RESETSTAT also drops the per-command latency histograms, and the
/// percentiles read back in Redis's form.
#[test]
fn resetstat_clears_latency_histograms_and_percentiles_read_back_like_redis() {
    let mut p = Pair::start();
    p.same_words("SET a b");
    p.same_words("CONFIG RESETSTAT");
    for c in [&mut p.a, &mut p.b] {
        let R::Bulk(text) = c.cmd("INFO latencystats") else {
            panic!("INFO latencystats");
        };
        let text = String::from_utf8(text).expect("utf8");
        assert!(!text.contains("latency_percentiles_usec_set:"), "{text}");
    }
    p.same_words("CONFIG SET latency-tracking-info-percentiles 0.0 50.10 99.999 100");
    p.same_words("CONFIG GET latency-tracking-info-percentiles");
}
