//! Interop with Debian's redis-server 7.0.15, both directions: a Tandem replica of a
//! Redis master and a Redis replica of a Tandem master, compared key by key.
mod common;
use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A real redis-server on a free loopback port in its own temp dir.
struct Redis {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Redis {
    fn start(args: &[&str]) -> Option<Redis> {
        if !std::path::Path::new("/usr/bin/redis-server").exists() {
            eprintln!("redis-server not installed: skipping interop test");
            return None;
        }
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let log = dir.path().join("redis.log");
            let child = Command::new("/usr/bin/redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--dir", dir.path().to_str().expect("utf8")])
                .args(["--logfile", log.to_str().expect("utf8")])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut r = Redis { port, child, dir };
            // Its own log line proves it (not some other process) owns the port.
            let ready = wait_until(Duration::from_secs(10), || {
                r.log().contains("Ready to accept connections")
                    || r.child.try_wait().ok().flatten().is_some()
            });
            if ready && r.child.try_wait().ok().flatten().is_none() {
                return Some(r);
            }
        }
        panic!("redis-server did not start");
    }

    fn conn(&self) -> Conn {
        Conn::connect(self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_connected_replica(c: &mut Conn) -> bool {
    matches!(c.cmd("ROLE"), R::Arr(v) if v.len() == 5 && v[3] == R::bulk("connected"))
}

/// Writes a mix of string shapes Redis encodes differently in an RDB (ints, short,
/// long compressible) plus other types.
fn write_strings(c: &mut Conn, prefix: &str) {
    let long = "x".repeat(5000);
    for i in 0..100 {
        assert_eq!(
            c.cmd(&format!("SET {prefix}int{i} {}", i * 1000 - 7)),
            R::ok()
        );
        assert_eq!(c.cmd(&format!("SET {prefix}str{i} value-{i}")), R::ok());
    }
    assert_eq!(c.cmd(&format!("SET {prefix}long {long}")), R::ok());
    assert_eq!(c.cmd(&format!("SET {prefix}neg -123456789012")), R::ok());
}

fn compare_strings(a: &mut Conn, b: &mut Conn, prefix: &str) {
    let mut keys = vec![format!("{prefix}long"), format!("{prefix}neg")];
    for i in 0..100 {
        keys.push(format!("{prefix}int{i}"));
        keys.push(format!("{prefix}str{i}"));
    }
    for k in keys {
        let va = a.cmd(&format!("GET {k}"));
        assert_ne!(va, R::Nil, "{k} missing on the master");
        // The replica may lag a little behind the master.
        assert!(
            wait_until(WAIT, || b.cmd(&format!("GET {k}")) == va),
            "{k} differs"
        );
    }
}

#[test]
fn tandem_replica_of_a_redis_master() {
    let Some(m) = Redis::start(&["--repl-diskless-sync-delay", "0"]) else {
        return;
    };
    let mut mc = m.conn();
    write_strings(&mut mc, "pre:");
    // Compact encodings in the RDB: quicklist/listpack, listpack hash, intset,
    // and their big (hashtable / many-node) forms.
    assert_eq!(mc.cmd("RPUSH cl 1 2 three -4"), R::Int(4));
    assert_eq!(mc.cmd("HSET ch f1 v1 f2 22"), R::Int(2));
    assert_eq!(mc.cmd("SADD ci 1 2 3 -7"), R::Int(4));
    assert_eq!(mc.cmd("SADD cs a b c"), R::Int(3));
    for i in 0..300 {
        mc.cmd(&format!("RPUSH bl item-{i}"));
        mc.cmd(&format!("HSET bh f{i} {}", "v".repeat(i % 90)));
        mc.cmd(&format!("SADD bs m{i}"));
    }
    let reads = [
        "LRANGE cl 0 -1",
        "HGETALL ch",
        "SMEMBERS ci",
        "SMEMBERS cs",
        "LRANGE bl 0 -1",
        "HGETALL bh",
        "SMEMBERS bs",
    ];
    let snap = |c: &mut Conn| -> Vec<R> {
        reads
            .iter()
            .map(|q| match c.cmd(q) {
                R::Arr(mut v) if !q.starts_with("LRANGE") => {
                    if q.starts_with("HGETALL") {
                        let mut pairs: Vec<(String, String)> = v
                            .chunks(2)
                            .map(|p| (format!("{:?}", p[0]), format!("{:?}", p[1])))
                            .collect();
                        pairs.sort();
                        R::Arr(
                            pairs
                                .into_iter()
                                .map(|(a, b)| R::Bulk(format!("{a}={b}").into_bytes()))
                                .collect(),
                        )
                    } else {
                        v.sort_by_key(|x| format!("{x:?}"));
                        R::Arr(v)
                    }
                }
                other => other,
            })
            .collect()
    };
    let want = snap(&mut mc);
    let target = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start(&["--replicaof", &target]);
    let mut rc = r.conn();
    assert!(
        wait_until(WAIT, || is_connected_replica(&mut rc)),
        "tandem never connected to redis; tandem log:\n{}\nredis log:\n{}",
        r.stdout(),
        m.log()
    );
    compare_strings(&mut mc, &mut rc, "pre:");
    assert_eq!(
        snap(&mut rc),
        want,
        "collections loaded from the redis RDB differ"
    );
    // Live propagation, including db switches.
    write_strings(&mut mc, "live:");
    // (SELECT comes with the keyspace commands; skip the db check without it.)
    if rc.cmd("SELECT 0") == R::ok() {
        assert_eq!(mc.cmd("SELECT 3"), R::ok());
        assert_eq!(mc.cmd("SET in3 three"), R::ok());
        assert_eq!(mc.cmd("SELECT 0"), R::ok());
        assert!(wait_until(WAIT, || {
            rc.cmd("SELECT 3");
            let v = rc.cmd("GET in3");
            rc.cmd("SELECT 0");
            v == R::bulk("three")
        }));
    }
    compare_strings(&mut mc, &mut rc, "live:");
    // Offsets agree once idle.
    let moff = match mc.cmd("ROLE") {
        R::Arr(v) => v[1].clone(),
        other => panic!("{other:?}"),
    };
    assert!(wait_until(
        WAIT,
        || matches!(rc.cmd("ROLE"), R::Arr(v) if v[4] == moff)
    ));
    let rlog = r.stdout();
    assert!(
        rlog.contains("receiving streamed RDB from master with EOF to disk"),
        "{rlog}"
    );
}

#[test]
fn redis_replica_of_a_tandem_master() {
    let m = TestServer::start(&["--repl-diskless-sync-delay", "0"]);
    let mut mc = m.conn();
    write_strings(&mut mc, "pre:");
    let target_port = m.port.to_string();
    let Some(r) = Redis::start(&["--replicaof", "127.0.0.1", &target_port]) else {
        return;
    };
    let mut rc = r.conn();
    assert!(
        wait_until(WAIT, || is_connected_replica(&mut rc)),
        "redis never connected to tandem; tandem log:\n{}\nredis log:\n{}",
        m.stdout(),
        r.log()
    );
    compare_strings(&mut mc, &mut rc, "pre:");
    write_strings(&mut mc, "live:");
    if mc.cmd("SELECT 0") == R::ok() {
        assert_eq!(mc.cmd("SELECT 5"), R::ok());
        assert_eq!(mc.cmd("SET in5 five"), R::ok());
        assert_eq!(mc.cmd("SELECT 0"), R::ok());
        assert!(wait_until(WAIT, || {
            rc.cmd("SELECT 5");
            let v = rc.cmd("GET in5");
            rc.cmd("SELECT 0");
            v == R::bulk("five")
        }));
    }
    compare_strings(&mut mc, &mut rc, "live:");
    let moff = match mc.cmd("ROLE") {
        R::Arr(v) => v[1].clone(),
        other => panic!("{other:?}"),
    };
    assert!(
        wait_until(WAIT, || matches!(rc.cmd("ROLE"), R::Arr(v) if v[4] == moff)),
        "redis replica offset never reached {moff:?}"
    );
    // The redis replica ACKs: our master sees it online with its offset.
    assert!(wait_until(WAIT, || matches!(mc.cmd("ROLE"),
        R::Arr(v) if matches!(&v[2], R::Arr(l) if l.len() == 1))));
    let rlog = r.log();
    assert!(
        rlog.contains("MASTER <-> REPLICA sync: Finished with success"),
        "{rlog}"
    );
}
