//! Every data type replicates, through the full-sync snapshot and live, Tandem to
//! Tandem and Tandem to a real redis-server replica; expiries become absolute and
//! replicas hide logically expired keys without deleting them.
mod common;
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn sorted(r: R) -> R {
    match r {
        R::Arr(mut v) => {
            v.sort_by_key(|x| format!("{x:?}"));
            R::Arr(v)
        }
        other => other,
    }
}

/// Reads every key of the fixture the same way on both sides.
fn dump(c: &mut Conn, p: &str) -> Vec<R> {
    vec![
        c.cmd(&format!("GET {p}s")),
        c.cmd(&format!("LRANGE {p}l 0 -1")),
        sorted(c.cmd(&format!("HGETALL {p}h"))),
        sorted(c.cmd(&format!("SMEMBERS {p}set"))),
        c.cmd(&format!("GET {p}n")),
        c.cmd(&format!("GET {p}f")),
        c.cmd(&format!("TYPE {p}l")),
    ]
}

fn fixture(c: &mut Conn, p: &str) {
    assert_eq!(c.cmd(&format!("SET {p}s hello")), R::ok());
    assert_eq!(c.cmd(&format!("RPUSH {p}l a b c d")), R::Int(4));
    assert_eq!(c.cmd(&format!("LPOP {p}l")), R::bulk("a"));
    assert_eq!(c.cmd(&format!("HSET {p}h f1 v1 f2 v2")), R::Int(2));
    assert_eq!(c.cmd(&format!("HINCRBYFLOAT {p}h f3 1.5")), R::bulk("1.5"));
    assert_eq!(c.cmd(&format!("SADD {p}set x y z")), R::Int(3));
    assert!(matches!(c.cmd(&format!("SPOP {p}set")), R::Bulk(_)));
    assert_eq!(c.cmd(&format!("INCRBY {p}n 41")), R::Int(41));
    assert_eq!(c.cmd(&format!("INCRBYFLOAT {p}f 0.25")), R::bulk("0.25"));
    assert_eq!(c.cmd(&format!("SET {p}ttl v EX 1000")), R::ok());
}

fn converge(m: &mut Conn, r: &mut Conn, p: &str) {
    let want = dump(m, p);
    assert!(want.iter().all(|x| *x != R::Nil), "{want:?}");
    assert!(
        wait_until(WAIT, || dump(r, p) == want),
        "replica differs: {:?} vs {want:?}",
        dump(r, p)
    );
    // The TTL arrives as an absolute time: roughly the same remaining time.
    let ttl = r.cmd(&format!("TTL {p}ttl"));
    assert!(
        matches!(ttl, R::Int(t) if (990..=1000).contains(&t)),
        "{ttl:?}"
    );
}

#[test]
fn all_types_replicate_tandem_to_tandem() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let mut mc = m.conn();
    fixture(&mut mc, "pre:");
    let target = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start(&["--replicaof", &target]);
    let mut rc = r.conn();
    assert!(wait_until(WAIT, || rc.role_connected()), "{}", r.stdout());
    converge(&mut mc, &mut rc, "pre:");
    fixture(&mut mc, "live:");
    converge(&mut mc, &mut rc, "live:");
}

#[test]
fn all_types_replicate_to_a_redis_replica() {
    if !std::path::Path::new("/usr/bin/redis-server").exists() {
        return;
    }
    let m = TestServer::start(&["--repl-diskless-sync-delay", "0"]);
    let mut mc = m.conn();
    fixture(&mut mc, "pre:");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = std::process::Command::new("/usr/bin/redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
        ])
        .args(["--replicaof", "127.0.0.1", &m.port.to_string()])
        .args([
            "--dir",
            dir.path().to_str().expect("utf8"),
            "--logfile",
            "redis.log",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let log = dir.path().join("redis.log");
    assert!(wait_until(WAIT, || std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("Ready to accept connections")));
    let mut rc = Conn::connect(port);
    let ok = wait_until(WAIT, || rc.role_connected());
    let redis_log = std::fs::read_to_string(&log).unwrap_or_default();
    if ok {
        converge(&mut mc, &mut rc, "pre:");
        fixture(&mut mc, "live:");
        converge(&mut mc, &mut rc, "live:");
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok,
        "redis replica never connected:\n{redis_log}\n{}",
        m.stdout()
    );
}

#[test]
fn replica_hides_expired_keys_and_applies_the_masters_delete() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let target = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start(&["--replicaof", &target]);
    let mut rc = r.conn();
    assert!(wait_until(WAIT, || rc.role_connected()));
    let mut mc = m.conn();
    assert_eq!(mc.cmd("SET soon v PX 300"), R::ok());
    assert!(wait_until(WAIT, || rc.cmd("GET soon") == R::bulk("v")));
    assert!(wait_until(WAIT, || rc.cmd("GET soon") == R::Nil));
    // The master deletes it (lazily or actively) and propagates DEL: then it is gone.
    let _ = mc.cmd("GET soon");
    assert!(wait_until(WAIT, || rc.cmd("DBSIZE") == R::Int(0)));
}
