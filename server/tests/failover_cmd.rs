//! FAILOVER (coordinated handover to a replica) and SHUTDOWN's wait for lagging
//! replicas, as Redis 7.0.15 has them: error texts side by side with the real
//! server, role swaps between Tandem nodes and with real Redis peers, TIMEOUT,
//! FORCE and ABORT. Every process runs on loopback and is stopped by pid (a
//! stopped one is continued by a guard, even when an assertion fails).
mod common;
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// One field of an INFO section.
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

fn role(c: &mut Conn) -> String {
    info(c, "replication", "role")
}

fn failover_state(c: &mut Conn) -> String {
    info(c, "replication", "master_failover_state")
}

/// Whether `c` is a replica whose link to `port` is up.
fn linked_to(c: &mut Conn, port: u16) -> bool {
    role(c) == "slave"
        && info(c, "replication", "master_port") == port.to_string()
        && info(c, "replication", "master_link_status") == "up"
}

/// Waits until the replica at `port` has its link to the master `m` up (its
/// initial sync loaded) and the master lists it online with an ACK that reached
/// the master's offset.
fn wait_replica_synced(m: &mut Conn, port: u16) {
    let mport = match m.stream.get_ref().peer_addr() {
        Ok(a) => a.port(),
        Err(e) => panic!("master address: {e}"),
    };
    wait_linked(&mut Conn::connect(port), mport);
    let ok = wait_until(WAIT, || {
        let off = info(m, "replication", "master_repl_offset");
        let want = format!("port={port},state=online,offset={off},");
        let text = match m.cmd("INFO replication") {
            R::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        };
        text.contains(&want)
    });
    assert!(ok, "replica {port} never caught up");
}

fn wait_linked(c: &mut Conn, port: u16) {
    assert!(wait_until(WAIT, || linked_to(c, port)), "no link to {port}");
}

fn kill(pid: u32, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

/// A process stopped with SIGSTOP; continued when dropped (also on panic).
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        kill(pid, "-STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// A Tandem master with a fast snapshot for its replicas.
fn tandem_master() -> TestServer {
    TestServer::start(&["--repl-diskless-sync-delay", "0", "--save", ""])
}

fn tandem_replica_of(port: u16) -> TestServer {
    TestServer::start(&["--replicaof", "127.0.0.1", &port.to_string(), "--save", ""])
}

fn real_redis(dir: &tempfile::TempDir, name: &str, extra: &[&str]) -> RealRedis {
    let log = dir.path().join(format!("{name}.log"));
    let mut args = vec!["--logfile", log.to_str().expect("utf8")];
    args.extend_from_slice(extra);
    RealRedis::start(dir.path(), &format!("{name}.rdb"), &args)
}

fn log_of(dir: &tempfile::TempDir, name: &str) -> String {
    std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default()
}

fn stat(c: &mut Conn, field: &str) -> i64 {
    info(c, "stats", field).parse().expect("number")
}

#[test]
fn failover_argument_errors_match_redis() {
    let mut p = Pair::start();
    for line in [
        "FAILOVER",
        "FAILOVER ABORT",
        "FAILOVER abort x",
        "FAILOVER TIMEOUT",
        "FAILOVER TIMEOUT 0",
        "FAILOVER TIMEOUT -1",
        "FAILOVER TIMEOUT abc",
        "FAILOVER TIMEOUT 10 TIMEOUT 20",
        "FAILOVER TO",
        "FAILOVER TO h",
        "FAILOVER TO h abc",
        "FAILOVER TO h 99999",
        "FAILOVER TO h 1 TO h 2",
        "FAILOVER FORCE",
        "FAILOVER FORCE FORCE",
        "FAILOVER x",
        "FAILOVER TO h 1 FORCE",
        "FAILOVER TIMEOUT 10 FORCE",
        "FAILOVER ABORT TIMEOUT 10",
        "FAILOVER TIMEOUT 10 ABORT",
        "SHUTDOWN ABORT",
        "SHUTDOWN NOW ABORT",
        "SHUTDOWN SAVE NOSAVE",
        "SHUTDOWN bogus",
    ] {
        let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        let r = p.same(&args);
        assert!(matches!(r, R::Err(_)), "{line}: {r:?}");
    }
    assert_eq!(failover_state(&mut p.a), "no-failover");
}

/// The replies of one master/replica pair to the FAILOVER error cases that need
/// a replica; `stop` pauses the replica process (so the failover keeps waiting).
fn replica_error_script(
    m: &mut Conn,
    r: &mut Conn,
    rport: u16,
    replica_pid: u32,
) -> Vec<(String, R)> {
    let mut out = Vec::new();
    let run = |out: &mut Vec<(String, R)>, c: &mut Conn, line: &str| {
        let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        out.push((line.to_string(), c.cmd_args(&args)));
    };
    run(&mut out, m, "FAILOVER TO 127.0.0.1 1");
    run(&mut out, m, &format!("FAILOVER TO 127.0.0.2 {rport}"));
    run(&mut out, m, "FAILOVER FORCE TIMEOUT 10");
    run(&mut out, m, &format!("FAILOVER TO 127.0.0.1 {rport} FORCE"));
    run(&mut out, r, "FAILOVER");
    run(&mut out, r, "FAILOVER ABORT");
    run(
        &mut out,
        r,
        "PSYNC 0123456789012345678901234567890123456789 1 FAILOVER",
    );
    run(
        &mut out,
        m,
        "PSYNC 0123456789012345678901234567890123456789 1 FAILOVER",
    );
    // A stopped replica never acks: the failover keeps waiting.
    let stopped = Stopped::new(replica_pid);
    run(&mut out, m, "SET k v");
    run(&mut out, m, "FAILOVER");
    out.push(("state".into(), R::bulk(&failover_state(m))));
    run(&mut out, m, "FAILOVER");
    run(&mut out, m, "FAILOVER TO 127.0.0.1 1");
    run(&mut out, m, "REPLICAOF NO ONE");
    run(&mut out, m, "FAILOVER ABORT");
    out.push(("state".into(), R::bulk(&failover_state(m))));
    run(&mut out, m, "FAILOVER ABORT");
    drop(stopped);
    out
}

#[test]
fn failover_errors_with_a_replica_match_redis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rm = real_redis(&dir, "m", &["--repl-diskless-sync-delay", "0"]);
    let rr = real_redis(
        &dir,
        "r",
        &["--replicaof", "127.0.0.1", &rm.port.to_string()],
    );
    let tm = tandem_master();
    let tr = tandem_replica_of(tm.port);
    let (mut rmc, mut tmc) = (rm.conn(), tm.conn());
    wait_replica_synced(&mut rmc, rr.port);
    wait_replica_synced(&mut tmc, tr.port);
    let theirs = replica_error_script(&mut rmc, &mut rr.conn(), rr.port, rr.child.id());
    let ours = replica_error_script(&mut tmc, &mut tr.conn(), tr.port, tr.child.id());
    for ((line, a), (_, b)) in ours.iter().zip(&theirs) {
        assert_eq!(a, b, "{line}: Tandem {a:?}, Redis 7.0.15 {b:?}");
    }
    assert_eq!(ours.len(), theirs.len());
    // The waiting failover was seen, and ABORT ended it.
    assert!(ours.contains(&("state".into(), R::bulk("waiting-for-sync"))));
    assert_eq!(
        ours.last(),
        Some(&("FAILOVER ABORT".into(), err("ERR No failover in progress.")))
    );
    assert!(tm
        .stdout()
        .contains("FAILOVER to any replica aborted: Failover manually aborted"));
}

#[test]
fn failover_to_a_replica_not_yet_online_is_refused_like_redis() {
    // With the default 5 s diskless delay the replica waits for its snapshot.
    let dir = tempfile::tempdir().expect("tempdir");
    let rm = real_redis(&dir, "m", &[]);
    let tm = TestServer::start(&["--save", ""]);
    let mut replies = Vec::new();
    for port in [rm.port, tm.port] {
        let mut m = Conn::connect(port);
        let r = TestServer::start(&["--replicaof", "127.0.0.1", &port.to_string()]);
        assert!(wait_until(WAIT, || info(
            &mut m,
            "replication",
            "connected_slaves"
        ) == "1"));
        let line = format!("FAILOVER TO 127.0.0.1 {} TIMEOUT 100", r.port);
        let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        replies.push(m.cmd_args(&args));
    }
    assert_eq!(
        replies[0],
        err("ERR FAILOVER target replica is not online.")
    );
    assert_eq!(replies[0], replies[1]);
}

#[test]
fn failover_swaps_tandem_roles_with_a_partial_resync_and_no_lost_write() {
    let m = tandem_master();
    let r = tandem_replica_of(m.port);
    let (mut mc, mut rc) = (m.conn(), r.conn());
    for i in 0..200 {
        assert_eq!(mc.cmd(&format!("SET k{i} v{i}")), R::ok());
    }
    wait_replica_synced(&mut mc, r.port);
    let full_before = stat(&mut rc, "sync_full");
    assert_eq!(mc.cmd("FAILOVER"), R::ok());
    // Writes sent while the failover runs wait, then find a replica.
    let mut late = m.conn();
    late.send(&[b"SET", b"late", b"x"]);
    assert_eq!(
        late.read(),
        err("READONLY You can't write against a read only replica.")
    );
    wait_linked(&mut mc, r.port);
    assert_eq!(role(&mut rc), "master");
    assert_eq!(failover_state(&mut mc), "no-failover");
    // The new master served the old one with a partial resync, no snapshot.
    assert_eq!(stat(&mut rc, "sync_partial_ok"), 1);
    assert_eq!(stat(&mut rc, "sync_full"), full_before);
    assert_eq!(stat(&mut mc, "sync_full"), 1);
    for i in (0..200).step_by(37) {
        assert_eq!(rc.cmd(&format!("GET k{i}")), R::bulk(&format!("v{i}")));
    }
    assert_eq!(rc.cmd("DBSIZE"), R::Int(200));
    // The new master's writes reach the old one.
    assert_eq!(rc.cmd("SET after swap"), R::ok());
    assert!(wait_until(WAIT, || mc.cmd("GET after") == R::bulk("swap")));
    let (ml, rl) = (m.stdout(), r.stdout());
    assert!(ml.contains("FAILOVER requested to any replica."), "{ml}");
    assert!(
        ml.contains(&format!(
            "Failover target 127.0.0.1:{} is synced, failing over.",
            r.port
        )),
        "{ml}"
    );
    assert!(ml.contains("Master replication ID changed to"), "{ml}");
    assert!(
        ml.contains("Successful partial resynchronization with master."),
        "{ml}"
    );
    assert!(!ml.contains("Full resync from master"), "{ml}");
    assert!(rl.contains("Failover request received for replid"), "{rl}");
    assert!(
        rl.contains("MASTER MODE enabled (failover request from '"),
        "{rl}"
    );
    assert!(
        rl.contains("Partial resynchronization request from"),
        "{rl}"
    );
}

#[test]
fn failover_to_names_the_target_among_two_replicas() {
    let m = tandem_master();
    let r1 = tandem_replica_of(m.port);
    let r2 = tandem_replica_of(m.port);
    let mut mc = m.conn();
    assert_eq!(mc.cmd("SET before 1"), R::ok());
    wait_replica_synced(&mut mc, r1.port);
    wait_replica_synced(&mut mc, r2.port);
    let line = format!("FAILOVER TO 127.0.0.1 {}", r2.port);
    let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
    assert_eq!(mc.cmd_args(&args), R::ok());
    wait_linked(&mut mc, r2.port);
    let mut r2c = r2.conn();
    assert_eq!(role(&mut r2c), "master");
    assert!(m
        .stdout()
        .contains(&format!("FAILOVER requested to 127.0.0.1:{}.", r2.port)));
    // The other replica still follows the old master, now a chained replica.
    let mut r1c = r1.conn();
    assert_eq!(role(&mut r1c), "slave");
    assert_eq!(r2c.cmd("SET chained yes"), R::ok());
    assert!(wait_until(WAIT, || r1c.cmd("GET chained") == R::bulk("yes")));
    assert_eq!(r1c.cmd("GET before"), R::bulk("1"));
}

#[test]
fn tandem_master_fails_over_to_a_real_redis_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = tandem_master();
    let rr = real_redis(
        &dir,
        "r",
        &["--replicaof", "127.0.0.1", &m.port.to_string()],
    );
    let (mut mc, mut rc) = (m.conn(), rr.conn());
    for i in 0..50 {
        assert_eq!(mc.cmd(&format!("RPUSH list {i}")), R::Int(i + 1));
    }
    wait_replica_synced(&mut mc, rr.port);
    assert_eq!(mc.cmd("FAILOVER TIMEOUT 10000"), R::ok());
    wait_linked(&mut mc, rr.port);
    assert_eq!(role(&mut rc), "master");
    assert_eq!(stat(&mut rc, "sync_partial_ok"), 1);
    assert_eq!(stat(&mut rc, "sync_full"), 0);
    assert_eq!(rc.cmd("LLEN list"), R::Int(50));
    assert_eq!(rc.cmd("SET from redis"), R::ok());
    assert!(wait_until(WAIT, || mc.cmd("GET from") == R::bulk("redis")));
    let rl = log_of(&dir, "r");
    assert!(
        rl.contains("MASTER MODE enabled (failover request from"),
        "{rl}"
    );
}

#[test]
fn real_redis_master_fails_over_to_a_tandem_replica() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rm = real_redis(&dir, "m", &["--repl-diskless-sync-delay", "0"]);
    let r = tandem_replica_of(rm.port);
    let (mut mc, mut rc) = (rm.conn(), r.conn());
    for i in 0..50 {
        assert_eq!(mc.cmd(&format!("HSET h f{i} {i}")), R::Int(1));
    }
    wait_replica_synced(&mut mc, r.port);
    assert_eq!(mc.cmd("FAILOVER"), R::ok());
    wait_linked(&mut mc, r.port);
    assert_eq!(role(&mut rc), "master");
    assert_eq!(stat(&mut rc, "sync_partial_ok"), 1);
    assert_eq!(stat(&mut rc, "sync_full"), 0);
    assert_eq!(rc.cmd("HLEN h"), R::Int(50));
    assert_eq!(rc.cmd("SET from tandem"), R::ok());
    assert!(wait_until(WAIT, || mc.cmd("GET from") == R::bulk("tandem")));
    let ml = log_of(&dir, "m");
    assert!(ml.contains("is synced, failing over."), "{ml}");
    let rl = r.stdout();
    assert!(rl.contains("Failover request received for replid"), "{rl}");
}

#[test]
fn failover_timeout_aborts_and_writes_resume() {
    let m = tandem_master();
    let r = tandem_replica_of(m.port);
    let mut mc = m.conn();
    wait_replica_synced(&mut mc, r.port);
    let stopped = Stopped::new(r.child.id());
    assert_eq!(mc.cmd("SET lagging 1"), R::ok());
    assert_eq!(mc.cmd("FAILOVER TIMEOUT 300"), R::ok());
    assert!(wait_until(WAIT, || failover_state(&mut mc) == "no-failover"));
    assert_eq!(role(&mut mc), "master");
    assert_eq!(mc.cmd("SET again 1"), R::ok());
    drop(stopped);
    let ml = m.stdout();
    assert!(
        ml.contains("FAILOVER to any replica aborted: Replica never caught up before timeout"),
        "{ml}"
    );
}

#[test]
fn failover_force_hands_over_after_the_timeout() {
    let m = tandem_master();
    let r = tandem_replica_of(m.port);
    let mut mc = m.conn();
    wait_replica_synced(&mut mc, r.port);
    let stopped = Stopped::new(r.child.id());
    assert_eq!(mc.cmd("SET unacked 1"), R::ok());
    let line = format!("FAILOVER TO 127.0.0.1 {} FORCE TIMEOUT 200", r.port);
    let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
    assert_eq!(mc.cmd_args(&args), R::ok());
    assert!(wait_until(WAIT, || failover_state(&mut mc) == "failover-in-progress"));
    assert_eq!(role(&mut mc), "slave");
    // Continued, the target takes over and the old master follows it.
    drop(stopped);
    assert!(
        wait_until(WAIT, || linked_to(&mut mc, r.port)),
        "old master:\n{}\ntarget:\n{}",
        String::from_utf8_lossy(
            &std::fs::read(m.dir.path().join("stdout.log")).unwrap_or_default()
        ),
        String::from_utf8_lossy(
            &std::fs::read(r.dir.path().join("stdout.log")).unwrap_or_default()
        ),
    );
    assert_eq!(failover_state(&mut mc), "no-failover");
    let mut rc = r.conn();
    assert_eq!(role(&mut rc), "master");
    assert!(wait_until(WAIT, || rc.cmd("GET unacked") == R::bulk("1")));
    let ml = m.stdout();
    assert!(
        ml.contains(&format!(
            "FAILOVER to 127.0.0.1:{} time out exceeded, failing over.",
            r.port
        )),
        "{ml}"
    );
}

#[test]
fn failover_abort_while_handing_over_makes_the_master_writable_again() {
    let m = tandem_master();
    let r = tandem_replica_of(m.port);
    let mut mc = m.conn();
    wait_replica_synced(&mut mc, r.port);
    let stopped = Stopped::new(r.child.id());
    let line = format!("FAILOVER TO 127.0.0.1 {} FORCE TIMEOUT 100", r.port);
    let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
    assert_eq!(mc.cmd("SET x 1"), R::ok());
    assert_eq!(mc.cmd_args(&args), R::ok());
    assert!(wait_until(WAIT, || failover_state(&mut mc) == "failover-in-progress"));
    assert_eq!(mc.cmd("FAILOVER ABORT"), R::ok());
    assert_eq!(role(&mut mc), "master");
    assert_eq!(failover_state(&mut mc), "no-failover");
    assert_eq!(mc.cmd("SET y 2"), R::ok());
    drop(stopped);
    let ml = m.stdout();
    assert!(
        ml.contains(&format!(
            "FAILOVER to 127.0.0.1:{} aborted: Failover manually aborted",
            r.port
        )),
        "{ml}"
    );
    // The replica comes back to the master (a new history: it resyncs).
    let mut rc = r.conn();
    assert!(wait_until(WAIT, || rc.cmd("GET y") == R::bulk("2")));
}

/// Whether the process exited within `limit`.
fn exits_within(child: &mut std::process::Child, limit: Duration) -> bool {
    wait_until(limit, || matches!(child.try_wait(), Ok(Some(_))))
}

#[test]
fn shutdown_waits_for_a_lagging_replica_and_loses_no_write() {
    let mut m = TestServer::start(&["--repl-diskless-sync-delay", "0", "--save", ""]);
    let r = tandem_replica_of(m.port);
    let mut mc = m.conn();
    wait_replica_synced(&mut mc, r.port);
    let stopped = Stopped::new(r.child.id());
    assert_eq!(mc.cmd("SET last-write 1"), R::ok());
    let mut shut = m.conn();
    shut.send(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(wait_until(WAIT, || m
        .stdout()
        .contains("Waiting for replicas before shutting down.")));
    // Reads go on, the server waits for the stopped replica.
    assert_eq!(mc.cmd("GET last-write"), R::bulk("1"));
    assert_eq!(m.child.try_wait().ok().flatten(), None);
    // INFO shows the wait as Redis does: the time left of shutdown-timeout (10 s by
    // default), the SHUTDOWN client as blocked, the replica's link not as a client.
    let left: u64 = info_field(&mut mc, "server", "shutdown_in_milliseconds")
        .expect("shutdown_in_milliseconds during the wait")
        .parse()
        .expect("a number");
    assert!(left > 0 && left <= 10_000, "{left}");
    assert_eq!(
        info_field(&mut mc, "clients", "blocked_clients").as_deref(),
        Some("1")
    );
    assert_eq!(
        info_field(&mut mc, "clients", "connected_clients").as_deref(),
        Some("2")
    );
    drop(stopped);
    assert!(exits_within(&mut m.child, WAIT), "{}", m.stdout());
    assert!(shut.is_closed());
    let ml = m.stdout();
    assert!(
        ml.contains("1 of 1 replicas are in sync when shutting down."),
        "{ml}"
    );
    assert_eq!(r.conn().cmd("GET last-write"), R::bulk("1"));
}

#[test]
fn shutdown_gives_up_on_a_replica_after_shutdown_timeout() {
    let mut m = TestServer::start(&[
        "--repl-diskless-sync-delay",
        "0",
        "--save",
        "",
        "--shutdown-timeout",
        "1",
    ]);
    let r = tandem_replica_of(m.port);
    let mut mc = m.conn();
    wait_replica_synced(&mut mc, r.port);
    let _stopped = Stopped::new(r.child.id());
    assert_eq!(mc.cmd("SET unacked 1"), R::ok());
    mc.send(&[b"SHUTDOWN"]);
    assert!(exits_within(&mut m.child, WAIT), "{}", m.stdout());
    let ml = m.stdout();
    assert!(
        ml.contains("Waiting for replicas before shutting down."),
        "{ml}"
    );
    assert!(
        ml.contains(&format!(
            "Lagging replica 127.0.0.1:{} reported offset",
            r.port
        )),
        "{ml}"
    );
    assert!(
        ml.contains("0 of 1 replicas are in sync when shutting down."),
        "{ml}"
    );
}

#[test]
fn shutdown_now_does_not_wait() {
    let mut m = TestServer::start(&[
        "--repl-diskless-sync-delay",
        "0",
        "--save",
        "",
        "--shutdown-timeout",
        "600",
    ]);
    let r = tandem_replica_of(m.port);
    let mut mc = m.conn();
    wait_replica_synced(&mut mc, r.port);
    let _stopped = Stopped::new(r.child.id());
    assert_eq!(mc.cmd("SET unacked 1"), R::ok());
    mc.send(&[b"SHUTDOWN", b"NOW"]);
    assert!(exits_within(&mut m.child, WAIT), "{}", m.stdout());
    let ml = m.stdout();
    assert!(!ml.contains("Waiting for replicas"), "{ml}");
    assert!(
        ml.contains("0 of 1 replicas are in sync when shutting down."),
        "{ml}"
    );
}

/// SHUTDOWN blocked on a stopped replica, then SHUTDOWN ABORT from another
/// client: the replies, in order. `waiting`: whether the server logged its wait.
fn abort_script(port: u16, replica_pid: u32, waiting: impl Fn() -> bool) -> Vec<R> {
    let mut c = Conn::connect(port);
    let _stopped = Stopped::new(replica_pid);
    let mut out = vec![c.cmd("SET unacked 1")];
    let mut shut = Conn::connect(port);
    shut.send(&[b"SHUTDOWN"]);
    assert!(wait_until(WAIT, &waiting));
    out.push(c.cmd("SHUTDOWN ABORT"));
    out.push(shut.read());
    out.push(c.cmd("SET after-abort 1"));
    out.push(c.cmd("SHUTDOWN ABORT"));
    out
}

#[test]
fn shutdown_abort_cancels_the_wait_like_redis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rm = real_redis(&dir, "m", &["--repl-diskless-sync-delay", "0"]);
    let rr = real_redis(
        &dir,
        "r",
        &["--replicaof", "127.0.0.1", &rm.port.to_string()],
    );
    let mut m = tandem_master();
    let r = tandem_replica_of(m.port);
    wait_replica_synced(&mut rm.conn(), rr.port);
    wait_replica_synced(&mut m.conn(), r.port);
    let theirs = abort_script(rm.port, rr.child.id(), || {
        log_of(&dir, "m").contains("Waiting for replicas before shutting down.")
    });
    let ours = abort_script(m.port, r.child.id(), || {
        m.stdout()
            .contains("Waiting for replicas before shutting down.")
    });
    assert_eq!(ours, theirs);
    assert_eq!(ours[2], err("ERR Errors trying to SHUTDOWN. Check logs."));
    assert_eq!(ours[3], R::ok());
    assert!(m.stdout().contains("Shutdown manually aborted."));
    assert_eq!(m.child.try_wait().ok().flatten(), None);
}

#[test]
fn failed_final_save_keeps_the_server_unless_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ours_dir, theirs_dir) = (dir.path().join("ours"), dir.path().join("theirs"));
    std::fs::create_dir(&ours_dir).expect("mkdir");
    std::fs::create_dir(&theirs_dir).expect("mkdir");
    let rm = RealRedis::start(&theirs_dir, "dump.rdb", &[]);
    let mut m = TestServer::start(&["--dir", ours_dir.to_str().expect("utf8")]);
    // The data directory disappears: the final save cannot be written.
    std::fs::remove_dir_all(&ours_dir).expect("rm");
    std::fs::remove_dir_all(&theirs_dir).expect("rm");
    let mut replies = Vec::new();
    for port in [m.port, rm.port] {
        let mut c = Conn::connect(port);
        replies.push(c.cmd("SET k v"));
        replies.push(c.cmd("SHUTDOWN SAVE"));
        replies.push(c.cmd("GET k"));
    }
    assert_eq!(replies[..3], replies[3..]);
    assert_eq!(
        replies[1],
        err("ERR Errors trying to SHUTDOWN. Check logs.")
    );
    assert_eq!(m.child.try_wait().ok().flatten(), None);
    let mut c = m.conn();
    c.send(&[b"SHUTDOWN", b"SAVE", b"FORCE"]);
    assert!(exits_within(&mut m.child, WAIT), "{}", m.stdout());
    let ml = m.stdout();
    assert!(
        ml.contains("Error trying to save the DB, can't exit."),
        "{ml}"
    );
    assert!(
        ml.contains("Error trying to save the DB. Exit anyway."),
        "{ml}"
    );
}

#[test]
fn sigterm_waits_for_replicas_unless_shutdown_on_sigterm_says_now() {
    for (extra, waits) in [(None, true), (Some("now"), false)] {
        let mut args = vec!["--repl-diskless-sync-delay", "0", "--save", ""];
        if let Some(words) = extra {
            args.extend(["--shutdown-on-sigterm", words]);
        }
        let mut m = TestServer::start(&args);
        let r = tandem_replica_of(m.port);
        wait_replica_synced(&mut m.conn(), r.port);
        let stopped = Stopped::new(r.child.id());
        assert_eq!(m.conn().cmd("SET unacked 1"), R::ok());
        kill(m.child.id(), "-TERM");
        if waits {
            assert!(wait_until(WAIT, || m
                .stdout()
                .contains("Waiting for replicas before shutting down.")));
            assert_eq!(m.child.try_wait().ok().flatten(), None);
            drop(stopped);
        }
        assert!(exits_within(&mut m.child, WAIT), "{}", m.stdout());
        let ml = m.stdout();
        assert!(
            ml.contains("Received SIGTERM scheduling shutdown..."),
            "{ml}"
        );
        assert_eq!(ml.contains("Waiting for replicas"), waits, "{ml}");
    }
}

/// Whether a reply arrives on `c` within `limit` (absence can only be shown by
/// waiting: a short, bounded read).
fn replies_within(c: &mut Conn, limit: Duration) -> bool {
    use std::io::BufRead;
    c.stream
        .get_ref()
        .set_read_timeout(Some(limit))
        .expect("timeout");
    let got = matches!(c.stream.fill_buf(), Ok(b) if !b.is_empty());
    c.stream
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    got
}

#[test]
fn writes_wait_while_the_failover_waits_for_sync_and_client_unpause_does_not_free_them() {
    let m = tandem_master();
    let r = tandem_replica_of(m.port);
    let mut mc = m.conn();
    wait_replica_synced(&mut mc, r.port);
    let stopped = Stopped::new(r.child.id());
    assert_eq!(mc.cmd("SET k 1"), R::ok());
    assert_eq!(mc.cmd("FAILOVER"), R::ok());
    let mut writer = m.conn();
    writer.send(&[b"SET", b"held", b"1"]);
    assert!(!replies_within(&mut writer, Duration::from_millis(300)));
    // Reads go on; CLIENT UNPAUSE ends only a CLIENT PAUSE.
    assert_eq!(mc.cmd("GET k"), R::bulk("1"));
    assert_eq!(mc.cmd("CLIENT UNPAUSE"), R::ok());
    assert!(!replies_within(&mut writer, Duration::from_millis(300)));
    assert_eq!(failover_state(&mut mc), "waiting-for-sync");
    assert_eq!(mc.cmd("FAILOVER ABORT"), R::ok());
    assert_eq!(writer.read(), R::ok());
    assert_eq!(mc.cmd("GET held"), R::bulk("1"));
    drop(stopped);
}

#[test]
fn a_signal_during_a_shutdown_is_forgotten_on_abort_and_a_second_sigint_insists() {
    let mut m = tandem_master();
    let r = tandem_replica_of(m.port);
    let mut mc = m.conn();
    wait_replica_synced(&mut mc, r.port);
    let _stopped = Stopped::new(r.child.id());
    assert_eq!(mc.cmd("SET unacked 1"), R::ok());
    let waiting = |m: &TestServer, n: usize| {
        m.stdout()
            .matches("Waiting for replicas before shutting down.")
            .count()
            == n
    };
    // SIGTERM while a SHUTDOWN waits: noted, then forgotten by the ABORT.
    let mut shut = m.conn();
    shut.send(&[b"SHUTDOWN"]);
    assert!(wait_until(WAIT, || waiting(&m, 1)));
    kill(m.child.id(), "-TERM");
    assert!(wait_until(WAIT, || m
        .stdout()
        .contains("Received SIGTERM scheduling shutdown...")));
    assert_eq!(mc.cmd("SHUTDOWN ABORT"), R::ok());
    assert_eq!(
        shut.read(),
        err("ERR Errors trying to SHUTDOWN. Check logs.")
    );
    assert!(!exits_within(&mut m.child, Duration::from_millis(500)));
    assert_eq!(mc.cmd("SET still-up 1"), R::ok());
    // A signal's shutdown waits too; SIGINT then exits at once, unclean.
    kill(m.child.id(), "-TERM");
    assert!(wait_until(WAIT, || waiting(&m, 2)));
    kill(m.child.id(), "-INT");
    assert!(exits_within(&mut m.child, WAIT), "{}", m.stdout());
    let status = m.child.try_wait().ok().flatten().expect("exited");
    assert_eq!(status.code(), Some(1));
    let ml = m.stdout();
    assert!(ml.contains("You insist... exiting now."), "{ml}");
    assert!(!ml.contains("bye bye"), "{ml}");
}

/// INFO memory's replication fields: the backlog's buffer, and the stream a stopped
/// replica was sent but could not take (what shutdown.tcl of Redis's suite watches
/// grow); once the replica catches up its part is gone again. A replica's link is not
/// counted in `connected_clients` (as Redis counts it).
#[test]
fn info_memory_shows_the_stream_a_stopped_replica_holds() {
    let m = tandem_master();
    let r = tandem_replica_of(m.port);
    let mut mc = m.conn();
    wait_replica_synced(&mut mc, r.port);
    let mem = |c: &mut Conn, f: &str| -> u64 {
        info_field(c, "memory", f)
            .unwrap_or_else(|| panic!("{f}"))
            .parse()
            .expect("a number")
    };
    assert_eq!(
        info_field(&mut mc, "clients", "connected_clients").as_deref(),
        Some("1")
    );
    assert_eq!(mc.cmd("SET first 1"), R::ok());
    assert!(mem(&mut mc, "mem_replication_backlog") > 0);
    assert!(wait_until(WAIT, || mem(&mut mc, "mem_clients_slaves") == 0));
    let stopped = Stopped::new(r.child.id());
    // 64 MB of writes: far more than the socket buffers of a loopback link take.
    let value = "v".repeat(64 * 1024);
    let mut grew = false;
    for i in 0..1024 {
        assert_eq!(
            mc.cmd_args(&[b"SET", format!("k{i}").as_bytes(), value.as_bytes()]),
            R::ok()
        );
        if i % 64 == 63 && mem(&mut mc, "mem_clients_slaves") > 4 * 1024 * 1024 {
            grew = true;
            break;
        }
    }
    assert!(
        grew,
        "the stopped replica's stream never showed in mem_clients_slaves"
    );
    let total = mem(&mut mc, "mem_total_replication_buffers");
    let parts = mem(&mut mc, "mem_replication_backlog") + mem(&mut mc, "mem_clients_slaves");
    assert!(
        total >= 4 * 1024 * 1024 && total == parts,
        "{total} vs {parts}"
    );
    drop(stopped);
    assert!(wait_until(WAIT, || mem(&mut mc, "mem_clients_slaves") == 0));
}

/// DEBUG REPLICATE sends a command to the replicas only: the replica runs it, the
/// master neither runs it nor writes it to its AOF; an unknown command there makes
/// the replica log Redis's `== CRITICAL ==` line (what replication-4.tcl checks).
#[test]
fn debug_replicate_feeds_the_replicas_only() {
    let m = TestServer::start(&[
        "--repl-diskless-sync-delay",
        "0",
        "--save",
        "",
        "--appendonly",
        "yes",
        "--enable-debug-command",
        "yes",
    ]);
    let r = tandem_replica_of(m.port);
    let mut mc = m.conn();
    wait_replica_synced(&mut mc, r.port);
    assert_eq!(mc.cmd("DEBUG REPLICATE SET only-there 1"), R::ok());
    assert_eq!(mc.cmd("DEBUG REPLICATE fake-command-1"), R::ok());
    assert_eq!(mc.cmd("SET after 2"), R::ok());
    let mut rc = r.conn();
    assert!(wait_until(WAIT, || rc.cmd("GET after") == R::bulk("2")));
    assert_eq!(rc.cmd("GET only-there"), R::bulk("1"));
    assert_eq!(mc.cmd("GET only-there"), R::Nil);
    let rl = r.stdout();
    assert!(
        rl.contains("== CRITICAL == This replica is sending an error to its master")
            && rl.contains("fake-command-1"),
        "{rl}"
    );
    // The AOF has the SET that ran, not the replicated one.
    let mut aof = Vec::new();
    for e in std::fs::read_dir(m.dir.path().join("appendonlydir")).expect("aof dir") {
        aof.extend(std::fs::read(e.expect("entry").path()).expect("aof file"));
    }
    let text = String::from_utf8_lossy(&aof);
    assert!(
        text.contains("after") && !text.contains("only-there"),
        "{text}"
    );
}
