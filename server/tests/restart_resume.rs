//! Issue 7 item 3: a replica shut down with persistence on and restarted with the
//! same `replicaof` resumes with PSYNC <saved replid> <saved offset + 1> and gets
//! +CONTINUE (no full sync) while the master's backlog covers the gap.

mod common;

use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn info(c: &mut Conn, section: &str, field: &str) -> String {
    let text = match c.cmd(&format!("INFO {section}")) {
        R::Bulk(b) => String::from_utf8(b).expect("utf8"),
        r => panic!("{r:?}"),
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
        .trim()
        .to_string()
}

fn digest(c: &mut Conn) -> String {
    match c.cmd("DEBUG DIGEST") {
        R::Simple(d) if d.len() == 40 && d != "0".repeat(40) => d,
        r => panic!("DEBUG DIGEST: {r:?}"),
    }
}

/// Stops a server with the SHUTDOWN command (which saves: save points are set)
/// and returns its directory.
fn shutdown_keep_dir(mut s: TestServer) -> tempfile::TempDir {
    let mut c = s.conn();
    c.send(&[b"SHUTDOWN"]);
    assert!(
        wait_until(WAIT, || matches!(s.child.try_wait(), Ok(Some(_)))),
        "replica did not exit"
    );
    std::mem::replace(&mut s.dir, tempfile::tempdir().expect("tempdir"))
}

/// Replica args: persistence on (a save point), the operator's usual fenced-start
/// setting (a replica started with replicaof is never fenced), following `port`.
fn replica_args(port: &str) -> Vec<&str> {
    vec![
        "--save",
        "3600 1",
        "--appendonly",
        "no",
        "--enable-debug-command",
        "yes",
        "--tandem-fenced-start",
        "yes",
        "--replicaof",
        "127.0.0.1",
        port,
    ]
}

/// Runs the restart scenario against a master reachable through `mc` on `mport`.
fn restart_scenario(mc: &mut Conn, mport: u16) {
    let port = mport.to_string();
    let r = TestServer::start(&replica_args(&port));
    let mut rc = r.conn();
    for i in 0..100 {
        assert_eq!(mc.cmd(&format!("SET before{i} {i}")), R::ok());
    }
    assert_eq!(mc.cmd("RPUSH list a b c"), R::Int(3));
    assert_eq!(mc.cmd("SET ttl x EX 1000"), R::ok());
    let off = info(mc, "replication", "master_repl_offset");
    assert!(
        wait_until(WAIT, || info(&mut rc, "replication", "master_link_status")
            == "up"
            && info(&mut rc, "replication", "slave_repl_offset") == off),
        "replica never caught up:\n{}",
        r.stdout()
    );
    assert_eq!(info(&mut rc, "replication", "tandem_fenced"), "0");
    let full = info(mc, "stats", "sync_full");
    let partial = info(mc, "stats", "sync_partial_ok")
        .parse::<u64>()
        .expect("int");
    let saved_replid = info(&mut rc, "replication", "master_replid");
    drop(rc);
    let dir = shutdown_keep_dir(r);
    assert!(dir.path().join("dump.rdb").exists(), "no save on SHUTDOWN");

    // Writes while the replica is down are served from the master's backlog.
    for i in 0..50 {
        assert_eq!(mc.cmd(&format!("SET during{i} {i}")), R::ok());
    }
    assert_eq!(mc.cmd("DEL before0"), R::Int(1));
    let r2 = TestServer::start_in(dir, &replica_args(&port));
    let mut rc2 = r2.conn();
    let off2 = info(mc, "replication", "master_repl_offset");
    assert!(
        wait_until(WAIT, || info(&mut rc2, "replication", "master_link_status")
            == "up"
            && info(&mut rc2, "replication", "slave_repl_offset") == off2),
        "restarted replica did not catch up:\n{}",
        r2.stdout()
    );
    let log = r2.stdout();
    assert!(
        log.contains(&format!(
            "Trying a partial resynchronization (request {saved_replid}:{}).",
            off.parse::<i64>().expect("int") + 1
        )),
        "{log}"
    );
    assert!(
        log.contains("Successful partial resynchronization with master."),
        "{log}"
    );
    assert_eq!(info(mc, "stats", "sync_full"), full, "a full sync happened");
    assert_eq!(
        info(mc, "stats", "sync_partial_ok"),
        (partial + 1).to_string()
    );
    assert_eq!(rc2.cmd("GET during49"), R::bulk("49"));
    assert_eq!(rc2.cmd("GET before0"), R::Nil);
    assert_eq!(digest(&mut rc2), digest(mc));
    assert_eq!(info(&mut rc2, "replication", "tandem_fenced"), "0");
}

#[test]
fn restarted_replica_resumes_with_psync_from_a_tandem_master() {
    let m = TestServer::start(&[
        "--save",
        "",
        "--repl-diskless-sync",
        "no",
        "--enable-debug-command",
        "yes",
    ]);
    let mut mc = m.conn();
    restart_scenario(&mut mc, m.port);
}

#[test]
fn restarted_replica_resumes_with_psync_from_a_real_redis_master() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = RealRedis::start(dir.path(), "master.rdb", &[]);
    let mut mc = m.conn();
    restart_scenario(&mut mc, m.port);
}
