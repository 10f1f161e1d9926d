//! DUMP and RESTORE: options, errors, TTL handling and propagation, and payload
//! interop with the real redis-server 7.0.15 in both directions (DUMP on one,
//! RESTORE on the other, same values read back).

mod common;

use common::{bulks, wait_until, Conn, RealRedis, TestServer, R};
use std::collections::BTreeSet;
use std::time::Duration;

fn bulk_of(r: R) -> Vec<u8> {
    match r {
        R::Bulk(b) => b,
        other => panic!("expected a bulk reply, got {other:?}"),
    }
}

fn dump(c: &mut Conn, key: &str) -> Vec<u8> {
    bulk_of(c.cmd_args(&[b"DUMP", key.as_bytes()]))
}

fn restore(c: &mut Conn, key: &str, ttl: &str, payload: &[u8], opts: &[&str]) -> R {
    let mut args: Vec<&[u8]> = vec![b"RESTORE", key.as_bytes(), ttl.as_bytes(), payload];
    args.extend(opts.iter().map(|o| o.as_bytes()));
    c.cmd_args(&args)
}

/// Builds a payload with a correct footer around `body` (type byte + value).
fn payload_with_footer(body: &[u8], version: u16) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&version.to_le_bytes());
    let crc = tandem_server::rdb::crc64::crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

/// Keys of every type and encoding the codec writes, as (key, commands creating it).
fn fixtures() -> Vec<(&'static str, Vec<Vec<Vec<u8>>>)> {
    let w = |s: &str| s.as_bytes().to_vec();
    let long = "x".repeat(300);
    let mut big_list = vec![w("RPUSH"), w("list_big")];
    big_list.extend((0..3000).map(|i| format!("element-{i}").into_bytes()));
    let mut set_int = vec![w("SADD"), w("set_int")];
    set_int.extend((0..50).map(|i| (i * 7 - 100).to_string().into_bytes()));
    let mut set_str = vec![w("SADD"), w("set_str")];
    set_str.extend((0..50).map(|i| format!("m{i}").into_bytes()));
    let mut zset_big = vec![w("ZADD"), w("zset_big")];
    for i in 0..200 {
        zset_big.push(format!("{}.5", i - 100).into_bytes());
        zset_big.push(format!("member-{i}").into_bytes());
    }
    let mut hash_big = vec![w("HSET"), w("hash_big")];
    for i in 0..600 {
        hash_big.push(format!("f{i}").into_bytes());
        hash_big.push(format!("v{i}").into_bytes());
    }
    vec![
        (
            "str_int",
            vec![vec![w("SET"), w("str_int"), w("-123456789")]],
        ),
        ("str_raw", vec![vec![w("SET"), w("str_raw"), w(&long)]]),
        (
            "str_bin",
            vec![vec![w("SET"), w("str_bin"), b"\x00\xff\r\n".to_vec()]],
        ),
        (
            "list",
            vec![vec![w("RPUSH"), w("list"), w("a"), w("1"), w("ccc")]],
        ),
        ("list_big", vec![big_list]),
        ("set_int", vec![set_int]),
        ("set_str", vec![set_str]),
        (
            "zset_small",
            vec![vec![
                w("ZADD"),
                w("zset_small"),
                w("1.5"),
                w("a"),
                w("-2"),
                w("b"),
                w("inf"),
                w("c"),
            ]],
        ),
        ("zset_big", vec![zset_big]),
        (
            "hash_small",
            vec![vec![
                w("HSET"),
                w("hash_small"),
                w("f"),
                w("v"),
                w("n"),
                w("42"),
            ]],
        ),
        ("hash_big", vec![hash_big]),
        (
            "stream",
            vec![
                vec![w("XADD"), w("stream"), w("1-1"), w("a"), w("1")],
                vec![
                    w("XADD"),
                    w("stream"),
                    w("2-1"),
                    w("b"),
                    w("2"),
                    w("c"),
                    w("3"),
                ],
                vec![w("XADD"), w("stream"), w("3-0"), w("a"), w("4")],
                vec![w("XDEL"), w("stream"), w("2-1")],
                vec![w("XGROUP"), w("CREATE"), w("stream"), w("g1"), w("0")],
                vec![
                    w("XREADGROUP"),
                    w("GROUP"),
                    w("g1"),
                    w("alice"),
                    w("COUNT"),
                    w("1"),
                    w("STREAMS"),
                    w("stream"),
                    w(">"),
                ],
            ],
        ),
    ]
}

/// Tandem has no stream commands yet: streams are created on Redis only.
const STREAM: &str = "stream";

fn load_fixtures(c: &mut Conn, streams: bool) {
    for (key, cmds) in fixtures() {
        if key == STREAM && !streams {
            continue;
        }
        for cmd in cmds {
            let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_slice()).collect();
            let r = c.cmd_args(&args);
            assert!(!matches!(r, R::Err(_)), "creating {key}: {r:?}");
        }
    }
}

/// Everything a client can read about `key`, in an order-independent form.
fn snapshot(c: &mut Conn, key: &str) -> Vec<R> {
    let t = c.cmd(&format!("TYPE {key}"));
    let enc = c.cmd(&format!("OBJECT ENCODING {key}"));
    let ttl = c.cmd(&format!("PEXPIRETIME {key}"));
    let as_set = |set: BTreeSet<Vec<u8>>| R::Arr(set.into_iter().map(R::Bulk).collect());
    let body = match &t {
        R::Simple(s) if s == "string" => vec![c.cmd(&format!("GET {key}"))],
        R::Simple(s) if s == "list" => vec![c.cmd(&format!("LRANGE {key} 0 -1"))],
        R::Simple(s) if s == "set" => vec![as_set(bulks(c.cmd(&format!("SMEMBERS {key}"))))],
        R::Simple(s) if s == "zset" => vec![c.cmd(&format!("ZRANGE {key} 0 -1 WITHSCORES"))],
        R::Simple(s) if s == "hash" => {
            let pairs = match c.cmd(&format!("HGETALL {key}")) {
                R::Arr(v) => v
                    .chunks(2)
                    .map(|p| format!("{:?}={:?}", p[0], p[1]).into_bytes())
                    .collect(),
                other => panic!("HGETALL: {other:?}"),
            };
            vec![as_set(pairs)]
        }
        R::Simple(s) if s == "stream" => vec![
            c.cmd(&format!("XRANGE {key} - +")),
            c.cmd(&format!("XLEN {key}")),
            c.cmd(&format!("XINFO GROUPS {key}")),
            c.cmd(&format!("XPENDING {key} g1")),
            c.cmd(&format!("XINFO STREAM {key}")),
        ],
        other => panic!("unexpected TYPE {other:?} for {key}"),
    };
    let mut v = vec![t, enc, ttl];
    v.extend(body);
    v
}

fn start_redis() -> (tempfile::TempDir, RealRedis) {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = RealRedis::start(dir.path(), "dump.rdb", &[]);
    (dir, r)
}

#[test]
fn every_type_dumped_by_redis_restores_on_tandem_with_the_same_contents() {
    let (_d, redis) = start_redis();
    let ours = TestServer::start(&[]);
    let (mut rc, mut tc) = (redis.conn(), ours.conn());
    load_fixtures(&mut rc, true);
    for (key, _) in fixtures() {
        let payload = dump(&mut rc, key);
        assert_eq!(restore(&mut tc, key, "0", &payload, &[]), R::ok(), "{key}");
        let want = snapshot(&mut rc, key);
        if key == STREAM {
            // No stream reads on Tandem: compare type and encoding here, the
            // contents through the round trip below.
            assert_eq!(tc.cmd(&format!("TYPE {key}")), want[0]);
            assert_eq!(tc.cmd(&format!("OBJECT ENCODING {key}")), want[1]);
        } else {
            assert_eq!(snapshot(&mut tc, key), want, "{key}");
        }
        // Round trip: Tandem's DUMP of what it restored reads back the same on Redis.
        let back = format!("{key}:back");
        let again = dump(&mut tc, key);
        assert_eq!(restore(&mut rc, &back, "0", &again, &[]), R::ok(), "{key}");
        assert_eq!(snapshot(&mut rc, &back), want, "{key}");
    }
}

#[test]
fn every_type_dumped_by_tandem_restores_on_redis_with_the_same_contents() {
    let (_d, redis) = start_redis();
    for compression in ["no", "yes"] {
        let ours = TestServer::start(&["--rdbcompression", compression]);
        let (mut rc, mut tc) = (redis.conn(), ours.conn());
        assert_eq!(rc.cmd("FLUSHALL"), R::ok());
        load_fixtures(&mut tc, false);
        for (key, _) in fixtures().into_iter().filter(|(k, _)| *k != STREAM) {
            let payload = dump(&mut tc, key);
            assert_eq!(restore(&mut rc, key, "0", &payload, &[]), R::ok(), "{key}");
            assert_eq!(snapshot(&mut rc, key), snapshot(&mut tc, key), "{key}");
            // And back: Tandem reads its own payload.
            assert_eq!(
                restore(&mut tc, key, "0", &payload, &["REPLACE"]),
                R::ok(),
                "{key}"
            );
        }
    }
}

#[test]
fn small_values_dump_to_the_same_bytes_as_redis() {
    let (_d, redis) = start_redis();
    let ours = TestServer::start(&[]);
    let (mut rc, mut tc) = (redis.conn(), ours.conn());
    for c in [&mut rc, &mut tc] {
        assert_eq!(c.cmd("SET s hello"), R::ok());
        assert_eq!(c.cmd("SET i 7"), R::ok());
        assert_eq!(c.cmd("SADD si 3 1 2"), R::Int(3));
    }
    for key in ["s", "i", "si"] {
        assert_eq!(dump(&mut tc, key), dump(&mut rc, key), "{key}");
    }
    assert_eq!(tc.cmd("DUMP missing"), R::Nil);
    assert_eq!(rc.cmd("DUMP missing"), R::Nil);
}

/// Runs the same RESTORE on both servers (each first holding `existing = old`) and
/// requires identical replies and an unchanged key on both.
fn assert_refused_alike(
    rc: &mut Conn,
    tc: &mut Conn,
    payload: &[u8],
    opts: &[&str],
    ttl: &str,
) -> String {
    let mut replies = Vec::new();
    for c in [&mut *rc, &mut *tc] {
        assert_eq!(c.cmd("SET existing old"), R::ok());
        assert_eq!(c.cmd("DEL fresh"), R::Int(0));
        let r1 = restore(c, "existing", ttl, payload, opts);
        let r2 = restore(c, "fresh", ttl, payload, opts);
        assert!(
            matches!(r1, R::Err(_)),
            "expected an error, got {r1:?} for {payload:?} {opts:?}"
        );
        assert_eq!(c.cmd("GET existing"), R::bulk("old"));
        assert_eq!(c.cmd("PTTL existing"), R::Int(-1));
        assert_eq!(c.cmd("EXISTS fresh"), R::Int(0));
        replies.push((r1, r2));
    }
    assert_eq!(replies[0], replies[1], "payload {payload:?} opts {opts:?}");
    replies[0].0.err_text().to_string()
}

#[test]
fn corrupt_payloads_are_refused_like_redis_and_change_nothing() {
    let (_d, redis) = start_redis();
    let ours = TestServer::start(&[]);
    let (mut rc, mut tc) = (redis.conn(), ours.conn());
    assert_eq!(rc.cmd("RPUSH l a b c"), R::Int(3));
    let good = dump(&mut rc, "l");
    let rp = ["REPLACE"];
    // Every single flipped byte breaks the checksum (or the version).
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x20;
        let e = assert_refused_alike(&mut rc, &mut tc, &bad, &rp, "0");
        assert_eq!(e, "ERR DUMP payload version or checksum are wrong");
    }
    // Truncations, down to nothing.
    for n in [good.len() - 1, good.len() - 9, 10, 3, 0] {
        let e = assert_refused_alike(&mut rc, &mut tc, &good[..n], &rp, "0");
        assert_eq!(e, "ERR DUMP payload version or checksum are wrong");
    }
    // A newer RDB version with a correct checksum.
    let body = &good[..good.len() - 10];
    let e = assert_refused_alike(&mut rc, &mut tc, &payload_with_footer(body, 11), &rp, "0");
    assert_eq!(e, "ERR DUMP payload version or checksum are wrong");
    // Correct footers around bodies that do not parse.
    for body in [
        &b"\x63\x01a"[..],                   // unknown type
        b"\x00\x20hel",                      // string longer than the payload
        b"\x12\x01\x02\x05ab",               // quicklist node cut short
        b"",                                 // no type byte at all
        b"\x02\x00",                         // empty set
        b"\x0b\x0a\x02\x00\x00\x00\x09\x00", // intset cut short
    ] {
        let e = assert_refused_alike(&mut rc, &mut tc, &payload_with_footer(body, 10), &rp, "0");
        assert_eq!(e, "ERR Bad data format", "body {body:?}");
    }
    // A string whose length runs into the footer reads the footer, in both.
    let p = payload_with_footer(b"\x00\x05hel", 10);
    let mut got = Vec::new();
    for c in [&mut rc, &mut tc] {
        assert_eq!(restore(c, "short", "0", &p, &[]), R::ok());
        got.push(c.cmd("GET short"));
    }
    assert_eq!(got[0], R::Bulk(b"hel\n\x00".to_vec()));
    assert_eq!(got[0], got[1]);
}

#[test]
fn option_and_argument_errors_match_redis() {
    let (_d, redis) = start_redis();
    let ours = TestServer::start(&[]);
    let (mut rc, mut tc) = (redis.conn(), ours.conn());
    assert_eq!(rc.cmd("SET src v"), R::ok());
    let good = dump(&mut rc, "src");
    let cases: &[(&str, &[&str], &str)] = &[
        ("-1", &["REPLACE"], "ERR Invalid TTL value, must be >= 0"),
        (
            "abc",
            &["REPLACE"],
            "ERR value is not an integer or out of range",
        ),
        ("0", &["REPLACE", "bogus"], "ERR syntax error"),
        ("0", &["REPLACE", "IDLETIME"], "ERR syntax error"),
        (
            "0",
            &["REPLACE", "IDLETIME", "1", "FREQ", "2"],
            "ERR syntax error",
        ),
        (
            "0",
            &["REPLACE", "FREQ", "2", "IDLETIME", "1"],
            "ERR syntax error",
        ),
        (
            "0",
            &["REPLACE", "IDLETIME", "-1"],
            "ERR Invalid IDLETIME value, must be >= 0",
        ),
        (
            "0",
            &["REPLACE", "IDLETIME", "x"],
            "ERR value is not an integer or out of range",
        ),
        (
            "0",
            &["REPLACE", "FREQ", "256"],
            "ERR Invalid FREQ value, must be >= 0 and <= 255",
        ),
        (
            "0",
            &["REPLACE", "FREQ", "-1"],
            "ERR Invalid FREQ value, must be >= 0 and <= 255",
        ),
        // Option errors come before the TTL check.
        ("-5", &["bogus"], "ERR syntax error"),
    ];
    for (ttl, opts, want) in cases {
        let e = assert_refused_alike(&mut rc, &mut tc, &good, opts, ttl);
        assert_eq!(&e, want, "ttl {ttl} opts {opts:?}");
    }
    for c in [&mut rc, &mut tc] {
        assert_eq!(c.cmd("SET busy old"), R::ok());
        assert_eq!(
            restore(c, "busy", "0", &good, &[]).err_text(),
            "BUSYKEY Target key name already exists."
        );
        // The key is checked before the payload, and before the TTL (found by
        // mixed_vs_redis.rs): a bad TTL on an existing key without REPLACE is BUSYKEY.
        assert_eq!(
            restore(c, "busy", "0", b"junk", &[]).err_text(),
            "BUSYKEY Target key name already exists."
        );
        for ttl in ["-1", "x"] {
            assert_eq!(
                restore(c, "busy", ttl, &good, &[]).err_text(),
                "BUSYKEY Target key name already exists.",
                "ttl {ttl}"
            );
        }
        assert_eq!(
            restore(c, "busy", "x", &good, &["REPLACE"]).err_text(),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(c.cmd("GET busy"), R::bulk("old"));
        assert_eq!(
            c.cmd("RESTORE k 0").err_text(),
            "ERR wrong number of arguments for 'restore' command"
        );
        assert_eq!(
            c.cmd("DUMP").err_text(),
            "ERR wrong number of arguments for 'dump' command"
        );
    }
}

#[test]
fn accepted_options_behave_like_redis() {
    let (_d, redis) = start_redis();
    let ours = TestServer::start(&[]);
    let (mut rc, mut tc) = (redis.conn(), ours.conn());
    assert_eq!(rc.cmd("SET src payload-value"), R::ok());
    let p = dump(&mut rc, "src");
    let far = "4102444800000"; // 2100-01-01 in unix ms
    for c in [&mut rc, &mut tc] {
        assert_eq!(c.cmd("SET k old"), R::ok());
        assert_eq!(restore(c, "k", "0", &p, &["REPLACE"]), R::ok());
        assert_eq!(c.cmd("GET k"), R::bulk("payload-value"));
        assert_eq!(c.cmd("PTTL k"), R::Int(-1));
        // Relative TTL in milliseconds.
        assert_eq!(restore(c, "rel", "100000", &p, &[]), R::ok());
        let R::Int(pttl) = c.cmd("PTTL rel") else {
            panic!("PTTL")
        };
        assert!((90_000..=100_000).contains(&pttl), "pttl {pttl}");
        // Absolute TTL.
        assert_eq!(restore(c, "abs", far, &p, &["ABSTTL"]), R::ok());
        assert_eq!(c.cmd("PEXPIRETIME abs"), R::Int(4102444800000));
        // A past absolute TTL: OK, nothing created; with REPLACE the old key goes.
        assert_eq!(restore(c, "gone", "1", &p, &["ABSTTL"]), R::ok());
        assert_eq!(c.cmd("EXISTS gone"), R::Int(0));
        assert_eq!(restore(c, "k", "1", &p, &["ABSTTL", "REPLACE"]), R::ok());
        assert_eq!(c.cmd("EXISTS k"), R::Int(0));
        // FREQ is accepted (IDLETIME: see the test below).
        assert_eq!(
            restore(c, "freq", "0", &p, &["FREQ", "5", "REPLACE"]),
            R::ok()
        );
        assert_eq!(c.cmd("GET freq"), R::bulk("payload-value"));
        // Options are case-insensitive and may repeat.
        assert_eq!(
            restore(c, "freq", "0", &p, &["replace", "Replace"]),
            R::ok()
        );
    }
}

fn object_idletime(c: &mut Conn, key: &str) -> i64 {
    match c.cmd(&format!("OBJECT IDLETIME {key}")) {
        R::Int(n) => n,
        other => panic!("OBJECT IDLETIME: {other:?}"),
    }
}

fn uptime(c: &mut Conn) -> i64 {
    let info = String::from_utf8(bulk_of(c.cmd("INFO server"))).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("uptime_in_seconds:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("uptime_in_seconds")
}

#[test]
fn idletime_sets_the_idle_clock() {
    let (_d, redis) = start_redis();
    let ours = TestServer::start(&[]);
    let (mut rc, mut tc) = (redis.conn(), ours.conn());
    assert_eq!(rc.cmd("SET src v"), R::ok());
    let p = dump(&mut rc, "src");
    assert_eq!(
        restore(&mut rc, "idle", "0", &p, &["IDLETIME", "1000"]),
        R::ok()
    );
    let idle = object_idletime(&mut rc, "idle");
    assert!((1000..1010).contains(&idle), "redis idle {idle}");
    // Even on a server that has run for less than that (Redis's LRU clock is the
    // wall clock; Tandem's starts 2^28 s back).
    assert!(uptime(&mut tc) < 1000);
    assert_eq!(
        restore(&mut tc, "one", "0", &p, &["IDLETIME", "1"]),
        R::ok()
    );
    assert_eq!(
        restore(&mut tc, "many", "0", &p, &["IDLETIME", "1000"]),
        R::ok()
    );
    assert_eq!(restore(&mut tc, "fresh", "0", &p, &[]), R::ok());
    let (one, many, fresh) = (
        object_idletime(&mut tc, "one"),
        object_idletime(&mut tc, "many"),
        object_idletime(&mut tc, "fresh"),
    );
    assert!((1..=2).contains(&one), "one {one}");
    assert!((1000..1010).contains(&many), "many {many}");
    assert!(fresh <= 1, "fresh {fresh}");
}

/// Splits an AOF into its commands.
fn aof_commands(data: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn num(d: &[u8], i: &mut usize) -> usize {
        let end = *i + d[*i..].windows(2).position(|w| w == b"\r\n").expect("CRLF");
        let n = std::str::from_utf8(&d[*i + 1..end])
            .unwrap()
            .parse()
            .unwrap();
        *i = end + 2;
        n
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        assert_eq!(data[i], b'*');
        let n = num(data, &mut i);
        let mut cmd = Vec::new();
        for _ in 0..n {
            let len = num(data, &mut i);
            cmd.push(data[i..i + len].to_vec());
            i += len + 2;
        }
        out.push(cmd);
    }
    out
}

#[test]
fn restore_propagates_an_absolute_ttl_and_dump_is_not_propagated() {
    let ours = TestServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = ours.conn();
    assert_eq!(c.cmd("SET src v"), R::ok());
    let p = dump(&mut c, "src");
    let before = tandem_server::util::now_ms();
    assert_eq!(restore(&mut c, "rel", "100000", &p, &[]), R::ok());
    let after = tandem_server::util::now_ms();
    assert_eq!(
        restore(&mut c, "plain", "0", &p, &["IDLETIME", "5"]),
        R::ok()
    );
    assert_eq!(restore(&mut c, "nothing", "1", &p, &["ABSTTL"]), R::ok());
    assert_eq!(
        restore(&mut c, "plain", "1", &p, &["ABSTTL", "REPLACE"]),
        R::ok()
    );
    assert_eq!(c.cmd("SET marker end"), R::ok());
    let incr = ours
        .dir
        .path()
        .join("appendonlydir")
        .join("appendonly.aof.1.incr.aof");
    let mut cmds = Vec::new();
    assert!(wait_until(Duration::from_secs(10), || {
        cmds = aof_commands(&std::fs::read(&incr).unwrap_or_default());
        cmds.last()
            .is_some_and(|c| c.first().is_some_and(|n| n == b"SET") && c[1] == b"marker")
    }));
    let cmds: Vec<Vec<Vec<u8>>> = cmds
        .into_iter()
        .filter(|c| !c[0].eq_ignore_ascii_case(b"SELECT"))
        .collect();
    let names: Vec<String> = cmds
        .iter()
        .map(|c| String::from_utf8_lossy(&c[0]).to_uppercase())
        .collect();
    assert_eq!(
        names,
        ["SET", "RESTORE", "RESTORE", "DEL", "SET"],
        "{cmds:?}"
    );
    let rel = &cmds[1];
    assert_eq!(rel.len(), 5);
    assert_eq!(rel[1], b"rel");
    let at: i64 = std::str::from_utf8(&rel[2]).unwrap().parse().unwrap();
    // The server clock is anchored once, so allow it a little drift from ours.
    assert!(
        (before + 99_000..=after + 101_000).contains(&at),
        "{at} {before}"
    );
    assert_eq!(rel[3], p);
    assert_eq!(rel[4], b"ABSTTL");
    let plain = &cmds[2];
    assert_eq!(
        plain[1..],
        [
            b"plain".to_vec(),
            b"0".to_vec(),
            p.clone(),
            b"IDLETIME".to_vec(),
            b"5".to_vec()
        ]
    );
    assert_eq!(cmds[3][1], b"plain");
}

#[test]
fn a_replica_gets_the_same_absolute_deadline_and_the_deletion() {
    let master = TestServer::start(&[]);
    let target = format!("127.0.0.1 {}", master.port);
    let replica = TestServer::start(&["--replicaof", &target]);
    let (mut m, mut r) = (master.conn(), replica.conn());
    assert_eq!(m.cmd("SET src v"), R::ok());
    assert_eq!(m.cmd("SET doomed old"), R::ok());
    let p = dump(&mut m, "src");
    assert_eq!(restore(&mut m, "rel", "100000", &p, &[]), R::ok());
    assert_eq!(
        restore(&mut m, "doomed", "1", &p, &["ABSTTL", "REPLACE"]),
        R::ok()
    );
    assert_eq!(m.cmd("SET marker end"), R::ok());
    assert!(
        wait_until(Duration::from_secs(20), || r.cmd("GET marker")
            == R::bulk("end")),
        "replica never caught up; log:\n{}",
        replica.stdout()
    );
    let deadline = m.cmd("PEXPIRETIME rel");
    assert!(matches!(deadline, R::Int(n) if n > 0), "{deadline:?}");
    assert_eq!(r.cmd("PEXPIRETIME rel"), deadline);
    assert_eq!(r.cmd("GET rel"), R::bulk("v"));
    assert_eq!(r.cmd("EXISTS doomed"), R::Int(0));
    // DUMP works on the read-only replica.
    assert_eq!(dump(&mut r, "rel"), p);
}
