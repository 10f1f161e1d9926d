//! Replication acceptance tests: master + replicas as real processes on loopback.
mod common;
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// ROLE as (role, offset) — master: its offset; replica: (state, applied offset).
fn role(c: &mut Conn) -> R {
    c.cmd("ROLE")
}

fn replica_state(c: &mut Conn) -> Option<(String, i64)> {
    match role(c) {
        R::Arr(v) if v.len() == 5 => match (&v[3], &v[4]) {
            (R::Bulk(s), R::Int(off)) => Some((String::from_utf8_lossy(s).into(), *off)),
            _ => None,
        },
        _ => None,
    }
}

fn master_offset(c: &mut Conn) -> i64 {
    match role(c) {
        R::Arr(v) => match v.get(1) {
            Some(R::Int(n)) => *n,
            other => panic!("bad ROLE offset {other:?}"),
        },
        other => panic!("bad ROLE {other:?}"),
    }
}

fn start_replica(master: &TestServer, extra: &[&str]) -> TestServer {
    let target = format!("127.0.0.1 {}", master.port);
    let mut args = vec!["--replicaof", &target];
    args.extend_from_slice(extra);
    TestServer::start(&args)
}

fn wait_connected(r: &TestServer) {
    let mut c = r.conn();
    assert!(
        wait_until(WAIT, || replica_state(&mut c)
            .is_some_and(|(s, _)| s == "connected")),
        "replica never connected; log:\n{}",
        r.stdout()
    );
}

fn wait_value(s: &TestServer, key: &str, want: &str) {
    let mut c = s.conn();
    assert!(
        wait_until(WAIT, || c.cmd(&format!("GET {key}")) == R::bulk(want)),
        "{key} never became {want}; log:\n{}",
        s.stdout()
    );
}

#[test]
fn master_with_two_replicas_replicates_writes_and_replicas_are_read_only() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let mut mc = m.conn();
    assert_eq!(mc.cmd("SET before sync"), R::ok());
    let r1 = start_replica(&m, &[]);
    let r2 = start_replica(&m, &[]);
    wait_connected(&r1);
    wait_connected(&r2);
    wait_value(&r1, "before", "sync");
    wait_value(&r2, "before", "sync");
    for i in 0..50 {
        assert_eq!(mc.cmd(&format!("SET k{i} v{i}")), R::ok());
    }
    wait_value(&r1, "k49", "v49");
    wait_value(&r2, "k49", "v49");
    let mut c1 = r1.conn();
    for i in 0..50 {
        assert_eq!(c1.cmd(&format!("GET k{i}")), R::bulk(&format!("v{i}")));
    }
    assert_eq!(
        c1.cmd("SET x y"),
        R::Err("READONLY You can't write against a read only replica.".into())
    );
    // ROLE: the master lists both online replicas; offsets converge.
    let off = master_offset(&mut mc);
    assert!(off > 0);
    assert!(wait_until(WAIT, || replica_state(&mut c1)
        == Some(("connected".into(), off))));
    assert!(wait_until(WAIT, || match role(&mut mc) {
        R::Arr(v) => matches!(&v[2], R::Arr(l) if l.len() == 2),
        _ => false,
    }));
    // INFO shows the roles, the replicas and the sync counters.
    let info = |c: &mut Conn, section: &str| match c.cmd(&format!("INFO {section}")) {
        R::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("INFO: {other:?}"),
    };
    let mi = info(&mut mc, "replication");
    assert!(mi.contains("role:master\r\nconnected_slaves:2\r\n"), "{mi}");
    assert!(mi.contains("slave0:ip=127.0.0.1,port="), "{mi}");
    assert!(mi.contains(",state=online,offset="), "{mi}");
    assert!(
        mi.contains(&format!("master_repl_offset:{off}\r\n")),
        "{mi}"
    );
    assert!(mi.contains("repl_backlog_active:1\r\n"), "{mi}");
    assert!(info(&mut mc, "stats").contains("sync_full:2\r\n"));
    let ri = info(&mut c1, "replication");
    assert!(ri.contains("role:slave\r\n"), "{ri}");
    assert!(ri.contains(&format!("master_port:{}\r\n", m.port)), "{ri}");
    assert!(ri.contains("master_link_status:up\r\n"), "{ri}");
    assert!(ri.contains(&format!("slave_repl_offset:{off}\r\n")), "{ri}");
    let mlog = m.stdout();
    assert!(mlog.contains("asks for synchronization"), "{mlog}");
    assert!(
        mlog.contains("Full resync requested by replica 127.0.0.1:"),
        "{mlog}"
    );
    assert!(
        mlog.contains("Starting BGSAVE for SYNC with target: disk"),
        "{mlog}"
    );
    assert!(
        mlog.contains("Synchronization with replica 127.0.0.1:"),
        "{mlog}"
    );
    let rlog = r1.stdout();
    for line in [
        "Connecting to MASTER 127.0.0.1:",
        "MASTER <-> REPLICA sync started",
        "Master replied to PING, replication can continue...",
        "Partial resynchronization not possible (no cached master)",
        "Full resync from master: ",
        "MASTER <-> REPLICA sync: receiving ",
        "MASTER <-> REPLICA sync: Flushing old data",
        "MASTER <-> REPLICA sync: Loading DB in memory",
        "MASTER <-> REPLICA sync: Finished with success",
    ] {
        assert!(
            rlog.contains(line),
            "missing {line:?} in replica log:\n{rlog}"
        );
    }
    assert!(
        rlog.contains(":S "),
        "replica log lines carry role S:\n{rlog}"
    );
}

#[test]
fn diskless_master_streams_after_the_replica_acks() {
    let m = TestServer::start(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    let mut mc = m.conn();
    assert_eq!(mc.cmd("SET a 1"), R::ok());
    let r = start_replica(&m, &[]);
    wait_connected(&r);
    wait_value(&r, "a", "1");
    assert_eq!(mc.cmd("SET b 2"), R::ok());
    wait_value(&r, "b", "2");
    let mlog = m.stdout();
    assert!(
        mlog.contains("Starting BGSAVE for SYNC with target: replicas sockets"),
        "{mlog}"
    );
    assert!(
        mlog.contains("Waiting for REPLCONF ACK from slave to enable streaming"),
        "{mlog}"
    );
    assert!(r
        .stdout()
        .contains("receiving streamed RDB from master with EOF to disk"));
}

#[test]
fn replicaof_command_errors_and_promotion() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let r = TestServer::start(&[]);
    let mut rc = r.conn();
    assert_eq!(
        rc.cmd("REPLICAOF 127.0.0.1 70000"),
        R::Err("ERR Invalid master port".into())
    );
    assert_eq!(
        rc.cmd("REPLICAOF 127.0.0.1 abc"),
        R::Err("ERR Invalid master port".into())
    );
    assert_eq!(rc.cmd(&format!("REPLICAOF 127.0.0.1 {}", m.port)), R::ok());
    assert_eq!(
        rc.cmd(&format!("SLAVEOF 127.0.0.1 {}", m.port)),
        R::Simple("OK Already connected to specified master".into())
    );
    wait_connected(&r);
    assert_eq!(rc.cmd("REPLICAOF NO ONE"), R::ok());
    assert_eq!(rc.cmd("SET now writable"), R::ok());
    assert!(matches!(role(&mut rc), R::Arr(v) if v[0] == R::bulk("master")));
    let log = r.stdout();
    assert!(
        log.contains("MASTER MODE enabled (user request from 'id="),
        "{log}"
    );
    assert!(
        log.contains("Setting secondary replication ID to "),
        "{log}"
    );
}

#[test]
fn replicas_arriving_together_share_one_snapshot() {
    let m = TestServer::start(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "2",
    ]);
    let mut mc = m.conn();
    assert_eq!(mc.cmd("SET shared yes"), R::ok());
    let r1 = start_replica(&m, &[]);
    let r2 = start_replica(&m, &[]);
    wait_connected(&r1);
    wait_connected(&r2);
    wait_value(&r1, "shared", "yes");
    wait_value(&r2, "shared", "yes");
    let log = m.stdout();
    assert_eq!(
        log.matches("Starting BGSAVE for SYNC with target: replicas sockets")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("Waiting for end of BGSAVE for SYNC"), "{log}");
    assert_eq!(mc.cmd("SET after both"), R::ok());
    wait_value(&r1, "after", "both");
    wait_value(&r2, "after", "both");
}
