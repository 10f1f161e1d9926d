//! Partial resynchronisation, backlog fallback, chained replication and failover
//! continuity (PSYNC2), with real processes on loopback.
mod common;
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn start_replica_of(port: u16, extra: &[&str]) -> TestServer {
    let target = format!("127.0.0.1 {port}");
    let mut args = vec!["--replicaof", &target];
    args.extend_from_slice(extra);
    TestServer::start(&args)
}

fn role(c: &mut Conn) -> Vec<R> {
    match c.cmd("ROLE") {
        R::Arr(v) => v,
        other => panic!("bad ROLE reply {other:?}"),
    }
}

fn connected_at(c: &mut Conn) -> Option<i64> {
    let v = role(c);
    match (&v[0], v.get(3), v.get(4)) {
        (R::Bulk(r), Some(s), Some(R::Int(off))) if r == b"slave" && *s == R::bulk("connected") => {
            Some(*off)
        }
        _ => None,
    }
}

fn master_offset(c: &mut Conn) -> i64 {
    match role(c).get(1) {
        Some(R::Int(n)) => *n,
        other => panic!("no master offset: {other:?}"),
    }
}

fn wait_connected(s: &TestServer) {
    let mut c = s.conn();
    assert!(
        wait_until(WAIT, || connected_at(&mut c).is_some()),
        "replica never connected:\n{}",
        s.stdout()
    );
}

fn signal(s: &TestServer, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &s.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[test]
fn stopped_replica_comes_back_with_a_partial_resync() {
    // A short repl-timeout makes the master drop the stopped replica.
    let m = TestServer::start(&["--repl-diskless-sync", "no", "--repl-timeout", "2"]);
    let r = start_replica_of(m.port, &[]);
    wait_connected(&r);
    let mut mc = m.conn();
    for i in 0..20 {
        assert_eq!(mc.cmd(&format!("SET a{i} {i}")), R::ok());
    }
    signal(&r, "-STOP");
    let ml = m.stdout();
    assert!(
        wait_until(WAIT, || m
            .stdout()
            .contains("Disconnecting timedout replica (streaming sync)")),
        "{ml}"
    );
    for i in 0..200 {
        assert_eq!(mc.cmd(&format!("SET b{i} {i}")), R::ok());
    }
    signal(&r, "-CONT");
    let mut rc = r.conn();
    let off = master_offset(&mut mc);
    assert!(
        wait_until(WAIT, || connected_at(&mut rc) == Some(off)),
        "replica did not catch up; replica log:\n{}\nmaster log:\n{}",
        r.stdout(),
        m.stdout()
    );
    assert_eq!(rc.cmd("GET b199"), R::bulk("199"));
    match mc.cmd("INFO stats") {
        R::Bulk(b) => {
            let s = String::from_utf8_lossy(&b);
            assert!(s.contains("sync_full:1\r\n"), "{s}");
            assert!(s.contains("sync_partial_ok:1\r\n"), "{s}");
        }
        other => panic!("INFO: {other:?}"),
    }
    let ml = m.stdout();
    assert_eq!(count(&ml, "Starting BGSAVE for SYNC"), 1, "{ml}");
    assert!(
        ml.contains("Partial resynchronization request from 127.0.0.1:"),
        "{ml}"
    );
    let rl = r.stdout();
    assert!(
        rl.contains("Caching the disconnected master state."),
        "{rl}"
    );
    assert!(
        rl.contains("Trying a partial resynchronization (request "),
        "{rl}"
    );
    assert!(
        rl.contains("Successful partial resynchronization with master."),
        "{rl}"
    );
    assert!(rl.contains("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization."));
}

#[test]
fn tiny_backlog_falls_back_to_a_full_sync() {
    let m = TestServer::start(&[
        "--repl-diskless-sync",
        "no",
        "--repl-timeout",
        "2",
        "--repl-backlog-size",
        "16kb",
    ]);
    let r = start_replica_of(m.port, &[]);
    wait_connected(&r);
    let mut mc = m.conn();
    signal(&r, "-STOP");
    assert!(wait_until(WAIT, || m
        .stdout()
        .contains("Disconnecting timedout replica (streaming sync)")));
    let big = "v".repeat(1000);
    for i in 0..100 {
        assert_eq!(mc.cmd(&format!("SET big{i} {big}")), R::ok());
    }
    signal(&r, "-CONT");
    let mut rc = r.conn();
    let off = master_offset(&mut mc);
    assert!(
        wait_until(WAIT, || connected_at(&mut rc) == Some(off)),
        "replica did not resync:\n{}",
        r.stdout()
    );
    assert_eq!(rc.cmd("GET big99"), R::bulk(&big));
    let ml = m.stdout();
    assert!(
        ml.contains("for lack of backlog (Replica request was: "),
        "{ml}"
    );
    assert_eq!(count(&ml, "Starting BGSAVE for SYNC"), 2, "{ml}");
}

#[test]
fn chained_replicas_have_identical_offsets() {
    let a = TestServer::start(&["--repl-diskless-sync", "no"]);
    let b = start_replica_of(a.port, &["--repl-diskless-sync", "no"]);
    wait_connected(&b);
    let c = start_replica_of(b.port, &[]);
    let d = start_replica_of(a.port, &[]);
    wait_connected(&c);
    wait_connected(&d);
    let mut ac = a.conn();
    for i in 0..100 {
        assert_eq!(ac.cmd(&format!("SET c{i} {i}")), R::ok());
    }
    let off = master_offset(&mut ac);
    let (mut bc, mut cc, mut dc) = (b.conn(), c.conn(), d.conn());
    assert!(
        wait_until(WAIT, || connected_at(&mut cc) == Some(off)),
        "leaf never reached {off}: {:?}\n{}",
        connected_at(&mut cc),
        c.stdout()
    );
    assert_eq!(connected_at(&mut bc), Some(off));
    assert!(wait_until(WAIT, || connected_at(&mut dc) == Some(off)));
    assert_eq!(cc.cmd("GET c99"), R::bulk("99"));
    // B's own offset (it serves C) equals A's.
    let bl = b.stdout();
    assert!(bl.contains("Replica 127.0.0.1:"), "{bl}");
    assert!(
        matches!(bc.cmd("SET x 1"), R::Err(e) if e.starts_with("READONLY")),
        "intermediate replica is read-only"
    );
}

#[test]
fn failover_promoted_replica_serves_partial_resyncs_to_sibling_and_old_master() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let r1 = start_replica_of(m.port, &["--repl-diskless-sync", "no"]);
    let r2 = start_replica_of(m.port, &[]);
    wait_connected(&r1);
    wait_connected(&r2);
    let mut mc = m.conn();
    for i in 0..30 {
        assert_eq!(mc.cmd(&format!("SET f{i} {i}")), R::ok());
    }
    let off = master_offset(&mut mc);
    let (mut c1, mut c2) = (r1.conn(), r2.conn());
    assert!(wait_until(WAIT, || connected_at(&mut c1) == Some(off)));
    assert!(wait_until(WAIT, || connected_at(&mut c2) == Some(off)));
    // Promote r1; repoint r2 and the old master at it.
    assert_eq!(c1.cmd("REPLICAOF NO ONE"), R::ok());
    assert_eq!(c2.cmd(&format!("REPLICAOF 127.0.0.1 {}", r1.port)), R::ok());
    assert_eq!(mc.cmd(&format!("REPLICAOF 127.0.0.1 {}", r1.port)), R::ok());
    wait_connected(&r2);
    wait_connected(&m);
    assert_eq!(c1.cmd("SET after failover"), R::ok());
    let noff = master_offset(&mut c1);
    let mut mc2 = m.conn();
    assert!(wait_until(WAIT, || connected_at(&mut c2) == Some(noff)));
    assert!(wait_until(WAIT, || connected_at(&mut mc2) == Some(noff)));
    assert_eq!(c2.cmd("GET after"), R::bulk("failover"));
    assert_eq!(mc2.cmd("GET after"), R::bulk("failover"));
    assert_eq!(mc2.cmd("GET f29"), R::bulk("29"));
    let l1 = r1.stdout();
    assert_eq!(
        count(&l1, "Partial resynchronization request from 127.0.0.1:"),
        2,
        "{l1}"
    );
    assert_eq!(count(&l1, "Starting BGSAVE for SYNC"), 0, "{l1}");
    let lm = m.stdout();
    assert!(
        lm.contains("Before turning into a replica, using my own master parameters"),
        "{lm}"
    );
    assert!(lm.contains("Master replication ID changed to "), "{lm}");
}

/// Stops a server with SIGTERM (final save) and returns its directory.
fn stop_keep_dir(mut s: TestServer) -> tempfile::TempDir {
    signal(&s, "-TERM");
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = s.child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::mem::replace(&mut s.dir, tempfile::tempdir().expect("tempdir"))
}

#[test]
fn restarted_replica_continues_with_a_partial_resync() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let target = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start(&["--replicaof", &target]);
    wait_connected(&r);
    let mut mc = m.conn();
    for i in 0..50 {
        assert_eq!(mc.cmd(&format!("SET r{i} {i}")), R::ok());
    }
    let off = master_offset(&mut mc);
    let mut rc = r.conn();
    assert!(wait_until(WAIT, || connected_at(&mut rc) == Some(off)));
    let old_log = r.stdout();
    let dir = stop_keep_dir(r);
    assert!(
        dir.path().join("dump.rdb").exists(),
        "no final save:\n{old_log}"
    );
    // Writes while the replica is down come from the backlog.
    for i in 0..20 {
        assert_eq!(mc.cmd(&format!("SET down{i} {i}")), R::ok());
    }
    let r2 = TestServer::start_in(dir, &["--replicaof", &target]);
    let mut rc2 = r2.conn();
    let off2 = master_offset(&mut mc);
    assert!(
        wait_until(WAIT, || connected_at(&mut rc2) == Some(off2)),
        "restarted replica did not catch up:\n{}",
        r2.stdout()
    );
    assert_eq!(rc2.cmd("GET r49"), R::bulk("49"));
    assert_eq!(rc2.cmd("GET down19"), R::bulk("19"));
    let log = r2.stdout();
    assert!(
        log.contains("Trying a partial resynchronization (request ")
            && log.contains(&format!(":{}).", off + 1)),
        "{log}"
    );
    assert!(
        log.contains("Successful partial resynchronization with master."),
        "{log}"
    );
    let ml = m.stdout();
    assert_eq!(count(&ml, "Starting BGSAVE for SYNC"), 1, "{ml}");
}

#[test]
fn restarted_master_serves_a_partial_resync_from_its_saved_history() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let target = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start(&["--replicaof", &target]);
    wait_connected(&r);
    let mut mc = m.conn();
    for i in 0..30 {
        assert_eq!(mc.cmd(&format!("SET m{i} {i}")), R::ok());
    }
    let off = master_offset(&mut mc);
    let mut rc = r.conn();
    assert!(wait_until(WAIT, || connected_at(&mut rc) == Some(off)));
    drop(mc);
    let dir = stop_keep_dir(m);
    // The restarted master comes back on another port: point the replica at it.
    let m2 = TestServer::start_in(dir, &["--repl-diskless-sync", "no"]);
    assert_eq!(rc.cmd(&format!("REPLICAOF 127.0.0.1 {}", m2.port)), R::ok());
    let mut mc2 = m2.conn();
    assert!(wait_until(WAIT, || connected_at(&mut rc)
        == Some(master_offset(&mut mc2))));
    assert_eq!(mc2.cmd("SET after restart"), R::ok());
    assert!(wait_until(WAIT, || rc.cmd("GET after") == R::bulk("restart")));
    let ml = m2.stdout();
    assert!(
        ml.contains("Partial resynchronization request from 127.0.0.1:"),
        "{ml}"
    );
    assert_eq!(count(&ml, "Starting BGSAVE for SYNC"), 0, "{ml}");
    assert!(r.stdout().contains("Master replication ID changed to "));
}

#[test]
fn client_kill_type_master_leads_to_a_partial_resync() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let target = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start(&["--replicaof", &target]);
    wait_connected(&r);
    let mut rc = r.conn();
    // The master link is listed with flags=M.
    match rc.cmd("CLIENT LIST TYPE master") {
        R::Bulk(b) => {
            let l = String::from_utf8_lossy(&b).into_owned();
            assert!(l.contains(" flags=M "), "{l}");
        }
        other => panic!("CLIENT LIST: {other:?}"),
    }
    assert_eq!(rc.cmd("CLIENT KILL TYPE master"), R::Int(1));
    let mut mc = m.conn();
    assert_eq!(mc.cmd("SET k after-kill"), R::ok());
    assert!(wait_until(WAIT, || rc.cmd("GET k") == R::bulk("after-kill")));
    let rl = r.stdout();
    assert!(
        rl.contains("Caching the disconnected master state."),
        "{rl}"
    );
    assert!(rl.contains("Reconnecting to MASTER 127.0.0.1:"), "{rl}");
    assert!(
        rl.contains("Successful partial resynchronization with master."),
        "{rl}"
    );
    assert_eq!(count(&m.stdout(), "Starting BGSAVE for SYNC"), 1);
}

/// The number of keys in every database, from INFO keyspace.
fn total_keys(c: &mut Conn) -> i64 {
    let R::Bulk(b) = c.cmd("INFO keyspace") else {
        panic!("INFO keyspace")
    };
    String::from_utf8_lossy(&b)
        .lines()
        .filter_map(|l| {
            l.split_once(":keys=")?
                .1
                .split(',')
                .next()?
                .parse::<i64>()
                .ok()
        })
        .sum()
}

fn info_num(c: &mut Conn, field: &str) -> i64 {
    info_field(c, "everything", field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field}"))
}

/// A master restarted from an RDB holding keys that expired while it was down
/// drops them and puts their DELs into its backlog after the saved offset, as
/// Redis 7.0 does: the replica's partial resync brings them (a replica does not
/// expire keys itself), and the master's offset is the saved one plus the DELs.
#[test]
fn restarted_master_sends_the_dels_of_keys_that_expired_while_it_was_down() {
    let args = [
        "--repl-diskless-sync",
        "no",
        "--enable-debug-command",
        "yes",
    ];
    let m = TestServer::start(&args);
    let r = start_replica_of(m.port, &[]);
    wait_connected(&r);
    let mut mc = m.conn();
    assert_eq!(mc.cmd("DEBUG SET-ACTIVE-EXPIRE 0"), R::ok());
    for i in 0..20 {
        assert_eq!(mc.cmd(&format!("SELECT {}", i % 4)), R::ok());
        assert_eq!(mc.cmd(&format!("SET e{i} x PX 200")), R::ok());
    }
    assert_eq!(mc.cmd("SET keep 1"), R::ok());
    let off = master_offset(&mut mc);
    let mut rc = r.conn();
    assert!(wait_until(WAIT, || connected_at(&mut rc) == Some(off)));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(total_keys(&mut rc), 21, "the replica keeps expired keys");
    drop(mc);
    let dir = stop_keep_dir(m);
    let m2 = TestServer::start_in(dir, &args);
    let mut mc2 = m2.conn();
    assert_eq!(info_num(&mut mc2, "rdb_last_load_keys_expired"), 20);
    let histlen = info_num(&mut mc2, "repl_backlog_histlen");
    assert!(histlen > 0, "no DELs in the backlog");
    // The saved offset may pass `off` by what the shutdown sent (a GETACK).
    let saved = info_num(&mut mc2, "second_repl_offset") - 1;
    assert!(saved >= off, "{saved} < {off}");
    assert_eq!(
        info_num(&mut mc2, "repl_backlog_first_byte_offset"),
        saved + 1
    );
    assert_eq!(master_offset(&mut mc2), saved + histlen);
    assert_eq!(rc.cmd(&format!("REPLICAOF 127.0.0.1 {}", m2.port)), R::ok());
    assert!(wait_until(WAIT, || connected_at(&mut rc)
        == Some(master_offset(&mut mc2))));
    assert_eq!(total_keys(&mut rc), 1);
    assert_eq!(info_num(&mut mc2, "sync_partial_ok"), 1);
    assert_eq!(info_num(&mut mc2, "sync_full"), 0);
}

/// CONFIG SET repl-backlog-size applies at once, as in Redis: right after a
/// shrink the backlog holds about the new size, and a PSYNC from an offset it
/// no longer keeps gets a full resync instead of the old history.
#[test]
fn a_smaller_backlog_size_applies_at_once() {
    let run = |port: u16| -> (i64, String) {
        let _stream = attach_replica(port);
        let mut c = Conn::connect(port);
        let value = "A".repeat(16 * 1024);
        for i in 0..20 {
            assert_eq!(
                c.cmd_args(&[b"SET", format!("k{i}").as_bytes(), value.as_bytes()]),
                R::ok()
            );
        }
        let replid = info_field(&mut c, "replication", "master_replid").expect("replid");
        let old = info_num(&mut c, "repl_backlog_first_byte_offset");
        assert_eq!(c.cmd("CONFIG SET repl-backlog-size 16384"), R::ok());
        let histlen = info_num(&mut c, "repl_backlog_histlen");
        let mut p = Conn::connect(port);
        p.send(&[b"PSYNC", replid.as_bytes(), old.to_string().as_bytes()]);
        let reply = match p.read() {
            R::Simple(s) => s.split(' ').next().unwrap_or_default().to_string(),
            other => format!("{other:?}"),
        };
        (histlen, reply)
    };
    let ours = TestServer::start(&[]);
    let (our_len, our_reply) = run(ours.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let (their_len, their_reply) = run(redis.port);
    assert_eq!(their_reply, "FULLRESYNC");
    assert_eq!(our_reply, their_reply);
    // Redis keeps the new size plus at most one 16 KiB block of its buffer.
    assert!(their_len <= 2 * 16384 + 100, "redis {their_len}");
    assert!(
        (16384..=2 * 16384 + 100).contains(&our_len),
        "tandem {our_len}"
    );
}
