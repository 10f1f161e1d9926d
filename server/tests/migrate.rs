//! MIGRATE between Tandem and Tandem, Tandem and Redis 7.0.15, Redis and Tandem: every
//! value type arrives intact with its TTL, source keys go (unless COPY) and the move is
//! propagated as DEL; errors (syntax, NOKEY, BUSYKEY, connect failure, a target that
//! never answers) read as Redis's.

mod common;

use common::{RealRedis, TestServer, R};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// One key of each type and encoding, plus one with a TTL.
const KEYS: &[&str] = &[
    "str", "int", "list", "biglist", "intset", "set", "hash", "bighash", "zset", "bigzset",
    "stream", "hll", "ttl",
];

fn fill(c: &mut common::Conn) {
    for line in [
        "SET str hello",
        "SET int 12345",
        "RPUSH list a b c",
        "SADD intset 1 2 3",
        "SADD set a b c",
        "HSET hash f1 v1 f2 v2",
        "ZADD zset 1 a 2.5 b",
        "XADD stream 1-1 f v",
        "XADD stream 2-0 g w",
        "XGROUP CREATE stream grp 0",
        "PFADD hll a b c",
        "SET ttl v PX 100000",
    ] {
        assert!(!matches!(c.cmd(line), R::Err(_)), "{line}");
    }
    for i in 0..300 {
        c.cmd(&format!("RPUSH biglist item-{i}"));
        c.cmd(&format!("HSET bighash field-{i} {}", "x".repeat(i % 90)));
        c.cmd(&format!("ZADD bigzset {i} member-{i}"));
    }
}

/// A key's value as commands read it (type by type), comparable across servers.
fn snapshot(c: &mut common::Conn, key: &str) -> Vec<R> {
    let R::Simple(t) = c.cmd(&format!("TYPE {key}")) else {
        panic!("TYPE {key}")
    };
    let read = match t.as_str() {
        "string" => format!("GET {key}"),
        "list" => format!("LRANGE {key} 0 -1"),
        "set" => format!("SORT {key} ALPHA"),
        "hash" => format!("HGETALL {key}"),
        "zset" => format!("ZRANGE {key} 0 -1 WITHSCORES"),
        "stream" => format!("XRANGE {key} - +"),
        "none" => return vec![R::Simple("none".into())],
        other => panic!("type {other}"),
    };
    let mut v = vec![R::Simple(t.clone()), c.cmd(&read)];
    if t == "hash" {
        // HGETALL's order is the encoding's: compare as a sorted list of pairs.
        if let Some(R::Arr(items)) = v.pop() {
            let mut pairs: Vec<(String, String)> = items
                .chunks(2)
                .map(|p| (format!("{:?}", p[0]), format!("{:?}", p[1])))
                .collect();
            pairs.sort();
            v.push(R::Arr(
                pairs
                    .into_iter()
                    .map(|(a, b)| R::Bulk(format!("{a}={b}").into_bytes()))
                    .collect(),
            ));
        }
    }
    if t == "stream" {
        v.push(c.cmd(&format!("XINFO GROUPS {key}")));
    }
    v
}

fn all(c: &mut common::Conn) -> Vec<Vec<R>> {
    KEYS.iter().map(|k| snapshot(c, k)).collect()
}

/// Sends a space-separated command where `""` stands for an empty argument.
fn cmd(c: &mut common::Conn, line: &str) -> R {
    let args = split(line);
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    c.cmd_args(&refs)
}

fn migrate_all(src: &mut common::Conn, port: u16, extra: &str) -> R {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("{extra} ")
    };
    cmd(
        src,
        &format!(
            "MIGRATE 127.0.0.1 {port} \"\" 0 5000 {extra}KEYS {}",
            KEYS.join(" ")
        ),
    )
}

fn ttl_ok(c: &mut common::Conn) {
    let R::Int(ms) = c.cmd("PTTL ttl") else {
        panic!("PTTL")
    };
    assert!(ms > 90_000 && ms <= 100_000, "PTTL ttl = {ms}");
    assert_eq!(c.cmd("PTTL str"), R::Int(-1));
}

/// Moves every type from `src` to `dst` and checks values, TTL and the source.
fn every_type_moves(src: &mut common::Conn, dst: &mut common::Conn, dst_port: u16) {
    fill(src);
    let want = all(src);
    assert_eq!(migrate_all(src, dst_port, "COPY"), R::ok());
    assert_eq!(all(dst), want, "values after MIGRATE COPY");
    ttl_ok(dst);
    assert_eq!(all(src), want, "COPY keeps the source keys");
    // Again without COPY: the target has the keys, so BUSYKEY until REPLACE.
    assert_eq!(
        migrate_all(src, dst_port, ""),
        R::Err(
            "ERR Target instance replied with error: BUSYKEY Target key name already exists."
                .into()
        )
    );
    assert_eq!(all(src), want, "a refused MIGRATE keeps the source keys");
    assert_eq!(migrate_all(src, dst_port, "REPLACE"), R::ok());
    assert_eq!(all(dst), want);
    ttl_ok(dst);
    assert_eq!(src.cmd("DBSIZE"), R::Int(0), "moved keys leave the source");
    assert_eq!(migrate_all(src, dst_port, ""), R::Simple("NOKEY".into()));
}

#[test]
fn every_type_moves_tandem_to_tandem() {
    let (a, b) = (TestServer::start(&[]), TestServer::start(&[]));
    every_type_moves(&mut a.conn(), &mut b.conn(), b.port);
}

#[test]
fn every_type_moves_tandem_to_redis() {
    let a = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let r = RealRedis::start(dir.path(), "dump.rdb", &[]);
    every_type_moves(&mut a.conn(), &mut r.conn(), r.port);
}

#[test]
fn every_type_moves_redis_to_tandem() {
    let b = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let r = RealRedis::start(dir.path(), "dump.rdb", &[]);
    every_type_moves(&mut r.conn(), &mut b.conn(), b.port);
}

#[test]
fn single_key_form_db_select_and_auth_as_in_redis() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let target = TestServer::start(&["--requirepass", "sekret"]);
    let mut t = target.conn();
    assert_eq!(t.cmd("AUTH sekret"), R::ok());
    for (src, tag) in [(&mut ours.conn(), "t"), (&mut theirs.conn(), "r")] {
        let key = format!("k{tag}");
        assert_eq!(src.cmd(&format!("SET {key} v")), R::ok());
        let port = target.port;
        // No AUTH: the target's error comes back.
        assert_eq!(
            src.cmd(&format!("MIGRATE 127.0.0.1 {port} {key} 3 1000")),
            R::Err(
                "ERR Target instance replied with error: NOAUTH Authentication required.".into()
            ),
            "{tag}"
        );
        assert_eq!(
            src.cmd(&format!("MIGRATE 127.0.0.1 {port} {key} 3 1000 AUTH wrong")),
            R::Err("ERR Target instance replied with error: WRONGPASS invalid username-password pair or user is disabled.".into()),
            "{tag}"
        );
        assert_eq!(
            src.cmd(&format!(
                "MIGRATE 127.0.0.1 {port} {key} 3 1000 AUTH2 default sekret"
            )),
            R::ok(),
            "{tag}"
        );
        assert_eq!(src.cmd(&format!("EXISTS {key}")), R::Int(0));
        assert_eq!(t.cmd("SELECT 3"), R::ok());
        assert_eq!(t.cmd(&format!("GET {key}")), R::bulk("v"));
        assert_eq!(t.cmd("SELECT 0"), R::ok());
    }
}

#[test]
fn argument_errors_and_unreachable_targets_answer_like_redis() {
    let mut p = common::Pair::start();
    // A port nobody listens on, and a listener that accepts but never answers.
    let closed = common::free_port();
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    p.same(&[b"SET", b"k", b"v"]);
    for line in [
        "MIGRATE 127.0.0.1 1 k 0 1000 BOGUS".to_string(),
        "MIGRATE 127.0.0.1 1 k 0 1000 AUTH".to_string(),
        "MIGRATE 127.0.0.1 1 k 0 1000 AUTH2 u".to_string(),
        "MIGRATE 127.0.0.1 1 k 0 1000 KEYS k".to_string(),
        "MIGRATE 127.0.0.1 1 k x 1000".to_string(),
        "MIGRATE 127.0.0.1 1 k 0 1.5".to_string(),
        "MIGRATE 127.0.0.1 1 missing 0 1000".to_string(),
        "MIGRATE 127.0.0.1 1 \"\" 0 1000 KEYS missing other".to_string(),
        "MIGRATE 127.0.0.1 1 k".to_string(),
        format!("MIGRATE 127.0.0.1 {closed} k 0 500"),
    ] {
        let args = split(&line);
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        p.same(&refs);
    }
    let start = Instant::now();
    let args = split(&format!("MIGRATE 127.0.0.1 {silent_port} k 0 300"));
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    let r = p.same(&refs);
    assert_eq!(
        r,
        R::Err("IOERR error or timeout reading to target instance".into())
    );
    assert!(start.elapsed() >= Duration::from_millis(600), "both waited");
    // Nothing moved: the key is still there on both.
    p.same(&[b"GET", b"k"]);
    drop(silent);
}

fn split(line: &str) -> Vec<Vec<u8>> {
    line.split_whitespace()
        .map(|a| {
            if a == "\"\"" {
                Vec::new()
            } else {
                a.as_bytes().to_vec()
            }
        })
        .collect()
}

#[test]
fn moved_keys_are_deleted_on_replicas_and_copies_are_not() {
    let src = TestServer::start(&[]);
    let replica = TestServer::start(&[]);
    let target = TestServer::start(&[]);
    let (mut s, mut r) = (src.conn(), replica.conn());
    assert_eq!(r.cmd(&format!("REPLICAOF 127.0.0.1 {}", src.port)), R::ok());
    for k in ["a", "b", "c"] {
        assert_eq!(s.cmd(&format!("SET {k} {k}")), R::ok());
    }
    assert!(common::wait_until(Duration::from_secs(10), || r
        .cmd("DBSIZE")
        == R::Int(3)));
    let port = target.port;
    assert_eq!(
        s.cmd(&format!("MIGRATE 127.0.0.1 {port} a 0 1000 COPY")),
        R::ok()
    );
    assert_eq!(
        cmd(
            &mut s,
            &format!("MIGRATE 127.0.0.1 {port} \"\" 0 1000 KEYS b c")
        ),
        R::ok()
    );
    assert_eq!(s.cmd("SET marker 1"), R::ok());
    assert!(common::wait_until(Duration::from_secs(10), || r
        .cmd("EXISTS marker")
        == R::Int(1)));
    assert_eq!(
        common::bulks(r.cmd("KEYS *")),
        common::set_of(&["a", "marker"])
    );
    assert_eq!(target.conn().cmd("DBSIZE"), R::Int(3));
}

fn connected_clients(c: &mut common::Conn) -> i64 {
    let R::Bulk(b) = c.cmd("INFO clients") else {
        panic!("INFO")
    };
    String::from_utf8_lossy(&b)
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("connected_clients")
}

#[test]
fn the_connection_is_cached_reopened_when_closed_and_dropped_after_10s_idle() {
    let (src, target) = (TestServer::start(&[]), TestServer::start(&[]));
    let (mut s, mut t) = (src.conn(), target.conn());
    let port = target.port;
    for k in ["a", "b", "c"] {
        assert_eq!(s.cmd(&format!("SET {k} v")), R::ok());
    }
    assert_eq!(
        s.cmd(&format!("MIGRATE 127.0.0.1 {port} a 0 1000")),
        R::ok()
    );
    assert_eq!(connected_clients(&mut t), 2);
    assert_eq!(
        s.cmd(&format!("MIGRATE 127.0.0.1 {port} b 0 1000")),
        R::ok()
    );
    assert_eq!(connected_clients(&mut t), 2, "the second MIGRATE reuses it");
    // The target drops it: the next MIGRATE retries on a fresh connection.
    assert_eq!(t.cmd("CLIENT KILL TYPE normal SKIPME yes"), R::Int(1));
    assert_eq!(
        s.cmd(&format!("MIGRATE 127.0.0.1 {port} c 0 1000")),
        R::ok()
    );
    assert_eq!(t.cmd("DBSIZE"), R::Int(3));
    let used = Instant::now();
    assert_eq!(connected_clients(&mut t), 2);
    assert!(common::wait_until(Duration::from_secs(15), || {
        connected_clients(&mut t) == 1
    }));
    let idle = used.elapsed();
    assert!(
        idle >= Duration::from_secs(9),
        "closed after {idle:?}, before the 10 s idle time"
    );
}

#[test]
fn a_target_that_trickles_its_reply_cannot_stretch_the_timeout() {
    let ours = TestServer::start(&[]);
    let mut c = ours.conn();
    assert_eq!(c.cmd("SET k v"), R::ok());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accepts, then sends one byte every 50 ms, never a newline (bounded: 3 s).
    let trickle = std::thread::spawn(move || {
        use std::io::Write;
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        for _ in 0..60 {
            if s.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let start = Instant::now();
    assert_eq!(
        c.cmd(&format!("MIGRATE 127.0.0.1 {port} k 0 400")),
        R::Err("IOERR error or timeout reading to target instance".into())
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(c.cmd("GET k"), R::bulk("v"));
    drop(c);
    drop(ours);
    let _ = trickle.join();
}
