//! WAIT, min-replicas-to-write, masterauth, and bad input on both sides of a link
//! (a nonsense-talking replica; a fake master sending truncated/corrupt RDBs or
//! vanishing mid-transfer).
mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn start_replica_of(port: u16, extra: &[&str]) -> TestServer {
    let target = format!("127.0.0.1 {port}");
    let mut args = vec!["--replicaof", &target];
    args.extend_from_slice(extra);
    TestServer::start(&args)
}

fn link_state(c: &mut Conn) -> String {
    match c.cmd("ROLE") {
        R::Arr(v) if v.len() == 5 => match &v[3] {
            R::Bulk(s) => String::from_utf8_lossy(s).into(),
            other => panic!("{other:?}"),
        },
        other => panic!("not a replica: {other:?}"),
    }
}

fn wait_connected(s: &TestServer) {
    let mut c = s.conn();
    assert!(
        wait_until(WAIT, || link_state(&mut c) == "connected"),
        "replica never connected:\n{}",
        s.stdout()
    );
}

#[test]
fn wait_counts_acknowledging_replicas_and_times_out() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let r = start_replica_of(m.port, &[]);
    wait_connected(&r);
    let mut mc = m.conn();
    // A connection that never wrote waits for nothing.
    assert_eq!(mc.cmd("WAIT 1 0"), R::Int(1));
    assert_eq!(mc.cmd("SET w 1"), R::ok());
    assert_eq!(mc.cmd("WAIT 1 5000"), R::Int(1));
    let t = std::time::Instant::now();
    assert_eq!(mc.cmd("WAIT 2 300"), R::Int(1));
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert_eq!(
        mc.cmd("WAIT 1 -1"),
        R::Err("ERR timeout is negative".into())
    );
    assert_eq!(
        mc.cmd("WAIT x 1"),
        R::Err("ERR value is not an integer or out of range".into())
    );
    let mut rc = r.conn();
    assert!(matches!(rc.cmd("WAIT 1 1"),
        R::Err(e) if e.starts_with("ERR WAIT cannot be used with replica instances.")));
}

#[test]
fn min_replicas_to_write_refuses_writes_without_good_replicas() {
    let m = TestServer::start(&[
        "--repl-diskless-sync",
        "no",
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "10",
    ]);
    let mut mc = m.conn();
    assert_eq!(
        mc.cmd("SET k v"),
        R::Err("NOREPLICAS Not enough good replicas to write.".into())
    );
    assert_eq!(mc.cmd("GET k"), R::Nil);
    let r = start_replica_of(m.port, &[]);
    wait_connected(&r);
    assert!(wait_until(WAIT, || mc.cmd("SET k v") == R::ok()));
    drop(r);
    assert!(
        wait_until(WAIT, || mc.cmd("SET k v2")
            == R::Err("NOREPLICAS Not enough good replicas to write.".into())),
        "writes still accepted after the replica went away"
    );
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

/// Resumes a stopped process when dropped, so a failing test never leaves it stopped.
struct Resume(u32);
impl Drop for Resume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[test]
fn min_replicas_refuses_writes_once_a_connected_replica_stops_acking() {
    // The replica stays connected but stops sending REPLCONF ACK (paused): after
    // min-replicas-max-lag (1 s, counted in whole seconds) the master refuses writes, and
    // takes them again once the replica acks again.
    let m = TestServer::start(&[
        "--repl-diskless-sync",
        "no",
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "1",
    ]);
    let r = start_replica_of(m.port, &[]);
    wait_connected(&r);
    let mut mc = m.conn();
    assert!(wait_until(WAIT, || mc.cmd("SET k v") == R::ok()));
    let pid = r.child.id();
    signal(pid, "-STOP");
    let resume = Resume(pid);
    let paused = std::time::Instant::now();
    let refused = R::Err("NOREPLICAS Not enough good replicas to write.".into());
    assert!(
        wait_until(Duration::from_secs(10), || mc.cmd("SET k v2") == refused),
        "writes still accepted with a silent replica"
    );
    let took = paused.elapsed();
    // The last ACK came at most a second before the pause; refused after lag + 1 s at most.
    assert!(
        took <= Duration::from_secs(5),
        "refused only after {took:?}"
    );
    assert_eq!(mc.cmd("SET other x"), refused);
    assert_eq!(mc.cmd("GET other"), R::Nil, "the refused write did nothing");
    // The replica link is still up from the master's side: only the ACKs stopped.
    let info = mc.cmd("INFO replication");
    assert!(
        matches!(&info, R::Bulk(b) if String::from_utf8_lossy(b).contains("connected_slaves:1")),
        "{info:?}"
    );
    drop(resume);
    assert!(
        wait_until(WAIT, || mc.cmd("SET k v3") == R::ok()),
        "writes not taken again after the replica resumed"
    );
}

/// Starts a real redis-server master with a password, if installed.
fn redis_master(pass: &str) -> Option<(std::process::Child, u16, tempfile::TempDir)> {
    if !std::path::Path::new("/usr/bin/redis-server").exists() {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = std::process::Command::new("/usr/bin/redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--requirepass", pass])
        .args(["--repl-diskless-sync-delay", "0"])
        .args(["--dir", dir.path().to_str().expect("utf8")])
        .args(["--logfile", "redis.log"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    // Its own log line proves it (not some other process) owns the port.
    let log = dir.path().join("redis.log");
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Ready to accept connections")
    }));
    Some((child, port, dir))
}

#[test]
fn wrong_masterauth_keeps_the_link_down_with_redis_log_line() {
    let Some((mut child, port, _dir)) = redis_master("secretpw") else {
        return;
    };
    let bad = start_replica_of(port, &["--masterauth", "wrong"]);
    let good = start_replica_of(port, &["--masterauth", "secretpw"]);
    let line =
        "Unable to AUTH to MASTER: -WRONGPASS invalid username-password pair or user is disabled.";
    assert!(
        wait_until(WAIT, || bad.stdout().matches(line).count() >= 2),
        "{}",
        bad.stdout()
    );
    let mut c = bad.conn();
    assert_ne!(link_state(&mut c), "connected");
    wait_connected(&good);
    // Fixing the password at runtime brings the link up (next retry reads it).
    assert_eq!(c.cmd("CONFIG SET masterauth secretpw"), R::ok());
    wait_connected(&bad);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn nonsense_from_a_replica_closes_only_that_link() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let mut mc = m.conn();
    assert_eq!(mc.cmd("SET keep me"), R::ok());
    let mut fake = m.conn();
    assert_eq!(fake.cmd("REPLCONF listening-port 9"), R::ok());
    fake.send(&[b"PSYNC", b"?", b"-1"]);
    // Read the +FULLRESYNC line and the payload header, then talk nonsense.
    let mut line = String::new();
    loop {
        line.clear();
        fake.stream.read_line(&mut line).expect("line");
        if line.starts_with('$') {
            break;
        }
    }
    let len: usize = line[1..].trim().parse().expect("len");
    let mut rdb = vec![0u8; len];
    fake.stream.read_exact(&mut rdb).expect("rdb");
    assert!(rdb.starts_with(b"REDIS00"));
    fake.send_raw(b"*1\r\n+oops\r\n");
    assert!(fake.is_closed());
    assert!(wait_until(WAIT, || m
        .stdout()
        .contains("Connection with replica 127.0.0.1:9 lost.")));
    assert_eq!(mc.cmd("GET keep"), R::bulk("me"));
}

/// A fake master: answers the handshake, then plays `payload` after PSYNC and
/// closes. Counts connections.
fn fake_master(payload: Vec<u8>) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let conns = Arc::new(AtomicUsize::new(0));
    let n = conns.clone();
    std::thread::spawn(move || {
        for s in l.incoming().take(20) {
            let Ok(s) = s else { continue };
            n.fetch_add(1, Ordering::SeqCst);
            let p = payload.clone();
            std::thread::spawn(move || serve_fake(s, &p));
        }
    });
    (port, conns)
}

fn read_command(r: &mut BufReader<TcpStream>) -> Option<Vec<String>> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::new();
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line).ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut b = vec![0u8; len + 2];
        r.read_exact(&mut b).ok()?;
        b.truncate(len);
        args.push(String::from_utf8_lossy(&b).into_owned());
    }
    Some(args)
}

fn serve_fake(s: TcpStream, payload: &[u8]) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    while let Some(args) = read_command(&mut r) {
        match args[0].to_ascii_uppercase().as_str() {
            "PING" => {
                let _ = w.write_all(b"+PONG\r\n");
            }
            "PSYNC" => {
                let _ = w.write_all(payload);
                let _ = w.flush();
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
            _ => {
                let _ = w.write_all(b"+OK\r\n");
            }
        }
    }
}

fn fullresync(body: &[u8], declared: usize) -> Vec<u8> {
    let mut p = format!("+FULLRESYNC {} 0\r\n${declared}\r\n", "a".repeat(40)).into_bytes();
    p.extend_from_slice(body);
    p
}

fn check_bad_master(payload: Vec<u8>, line: &str) {
    let (port, conns) = fake_master(payload);
    let r = TestServer::start(&[]);
    let mut c = r.conn();
    assert_eq!(c.cmd("SET local data"), R::ok());
    assert_eq!(c.cmd(&format!("REPLICAOF 127.0.0.1 {port}")), R::ok());
    assert!(
        wait_until(WAIT, || conns.load(Ordering::SeqCst) >= 2
            && r.stdout().contains(line)),
        "no retry with {line:?}:\n{}",
        r.stdout()
    );
    // Never a half-loaded dataset: the old data is still served.
    assert_eq!(c.cmd("GET local"), R::bulk("data"));
    assert_ne!(link_state(&mut c), "connected");
}

#[test]
fn master_vanishing_mid_transfer_is_retried() {
    check_bad_master(
        fullresync(b"REDIS0010\xfa\x09redis-ver", 500),
        "I/O error trying to sync with MASTER: connection lost",
    );
}

#[test]
fn corrupt_rdb_from_master_is_rejected_and_retried() {
    let body = b"REDIS0010\x00\x03key\xc5\x01\x02garbage-garbage";
    check_bad_master(
        fullresync(body, body.len()),
        "Failed trying to load the MASTER synchronization DB from disk",
    );
}

#[test]
fn truncated_rdb_from_master_is_rejected_and_retried() {
    // Declared length matches, but the RDB stops before its EOF opcode.
    let body = b"REDIS0010\xfe\x00\x00\x01k\x01v\x00\x01j";
    check_bad_master(
        fullresync(body, body.len()),
        "Failed trying to load the MASTER synchronization DB from disk",
    );
}

#[test]
fn error_instead_of_payload_is_logged() {
    let mut p = format!("+FULLRESYNC {} 0\r\n", "b".repeat(40)).into_bytes();
    p.extend_from_slice(b"-ERR BGSAVE failed, replication can't continue\r\n");
    check_bad_master(
        p,
        "MASTER aborted replication with an error: ERR BGSAVE failed, replication can't continue",
    );
}

#[test]
fn stale_replica_refuses_non_stale_commands_when_configured() {
    // Nothing listens on this port: the link never comes up.
    let dead = free_port();
    let r = start_replica_of(dead, &["--replica-serve-stale-data", "no"]);
    let mut c = r.conn();
    assert_eq!(
        c.cmd("GET k"),
        R::Err(
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                .into()
        )
    );
    // ROLE is a STALE command.
    assert!(matches!(
        link_state(&mut c).as_str(),
        "connect" | "connecting"
    ));
    assert!(wait_until(WAIT, || r.stdout().contains(
        "Error condition on socket for SYNC: Connection refused"
    )));
}

#[test]
fn announced_ip_and_port_are_what_the_master_reports() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let r = start_replica_of(
        m.port,
        &[
            "--replica-announce-ip",
            "10.1.2.3",
            "--replica-announce-port",
            "6400",
        ],
    );
    wait_connected(&r);
    let mut mc = m.conn();
    assert!(wait_until(WAIT, || match mc.cmd("ROLE") {
        R::Arr(v) => matches!(&v[2], R::Arr(l) if l.len() == 1
            && matches!(&l[0], R::Arr(e) if e[0] == R::bulk("10.1.2.3") && e[1] == R::bulk("6400"))),
        _ => false,
    }));
    assert!(m
        .stdout()
        .contains("Replica 10.1.2.3:6400 asks for synchronization"));
}

/// A client blocked in BLPOP on `b` while `b` turns into a replica of `a`; then `a`
/// pushes to the list. Returns what the blocked client read before its connection
/// closed (or everything it read within 5 s), and `b`'s list once it has caught up.
fn blocked_pop_across_a_role_change(a: u16, b: u16) -> (String, bool, R) {
    let mut blocked = TcpStream::connect(("127.0.0.1", b)).expect("connect");
    blocked
        .write_all(b"*3\r\n$5\r\nBLPOP\r\n$3\r\nfoo\r\n$1\r\n0\r\n")
        .expect("send BLPOP");
    let mut cb = Conn::connect(b);
    assert!(wait_until(Duration::from_secs(5), || {
        info_field(&mut cb, "clients", "blocked_clients").as_deref() == Some("1")
    }));
    assert_eq!(cb.cmd(&format!("REPLICAOF 127.0.0.1 {a}")), R::ok());
    assert!(wait_until(Duration::from_secs(10), || {
        info_field(&mut cb, "replication", "master_link_status").as_deref() == Some("up")
    }));
    let mut ca = Conn::connect(a);
    assert_eq!(ca.cmd("RPUSH foo a b c"), R::Int(3));
    blocked
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = Vec::new();
    let closed = blocked.read_to_end(&mut got).is_ok();
    let want = R::Arr(vec![R::bulk("a"), R::bulk("b"), R::bulk("c")]);
    assert!(wait_until(Duration::from_secs(5), || cb
        .cmd("LRANGE foo 0 -1")
        == want));
    (
        String::from_utf8_lossy(&got).into_owned(),
        closed,
        cb.cmd("LRANGE foo 0 -1"),
    )
}

#[test]
fn a_node_turning_replica_disconnects_its_blocked_clients_like_redis() {
    // Served by the master's stream, the pop would leave the replica with "b c".
    let (a, b) = (TestServer::start(&[]), TestServer::start(&[]));
    let ours = blocked_pop_across_a_role_change(a.port, b.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let (ra, rb) = (
        RealRedis::start(dir.path(), "a.rdb", &[]),
        RealRedis::start(dir.path(), "b.rdb", &[]),
    );
    let theirs = blocked_pop_across_a_role_change(ra.port, rb.port);
    assert_eq!(ours, theirs);
    assert!(ours.0.starts_with("-UNBLOCKED "), "{ours:?}");
    assert!(ours.1, "the blocked client's connection is closed");
}

/// A client blocked in `WAIT 1 0` on the node at `port` (no replica will ever
/// acknowledge) while the node turns into a replica of a master that is not there.
/// Returns what the client read until its connection closed (or within 5 s), whether
/// it closed, and the node's `errorstat_UNBLOCKED` line.
fn wait_across_a_role_change(port: u16) -> (String, bool, Option<String>) {
    let mut waiting = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    waiting
        .write_all(b"*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$1\r\n0\r\n")
        .expect("send WAIT");
    let mut c = Conn::connect(port);
    assert!(wait_until(Duration::from_secs(5), || {
        info_field(&mut c, "clients", "blocked_clients").as_deref() == Some("1")
    }));
    let nobody = free_port();
    assert_eq!(c.cmd(&format!("REPLICAOF 127.0.0.1 {nobody}")), R::ok());
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = Vec::new();
    let closed = waiting.read_to_end(&mut got).is_ok();
    let unblocked = info_field(&mut c, "errorstats", "errorstat_UNBLOCKED");
    assert_eq!(c.cmd("REPLICAOF NO ONE"), R::ok());
    (
        String::from_utf8_lossy(&got).into_owned(),
        closed,
        unblocked,
    )
}

#[test]
fn a_node_turning_replica_answers_and_closes_a_waiting_wait_like_redis() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "a.rdb", &[]);
    let (a, b) = (
        wait_across_a_role_change(ours.port),
        wait_across_a_role_change(theirs.port),
    );
    assert_eq!(a, b);
    assert!(a.0.starts_with("-UNBLOCKED "), "{a:?}");
    assert!(a.1, "the waiting client's connection is closed");
}

/// A write on a writable replica to a key that expired there (the master, with its
/// active expiry off, has not sent the DEL yet): what the replica answers.
fn write_to_an_expired_key_on_a_writable_replica(master: u16, replica: u16) -> Vec<R> {
    let (mut m, mut r) = (Conn::connect(master), Conn::connect(replica));
    assert_eq!(m.cmd("DEBUG SET-ACTIVE-EXPIRE 0"), R::ok());
    assert_eq!(m.cmd("SET key1 5 PX 10"), R::ok());
    assert_eq!(m.cmd("SET key2 5 PX 10"), R::ok());
    assert!(wait_until(Duration::from_secs(10), || {
        r.cmd("DBSIZE") == R::Int(2) && r.cmd("EXISTS key1 key2") == R::Int(0)
    }));
    assert_eq!(r.cmd("CONFIG SET replica-read-only no"), R::ok());
    let seen = ["DBSIZE", "INCR key1", "TTL key1", "GET key2", "DBSIZE"]
        .iter()
        .map(|c| r.cmd(c))
        .collect();
    assert_eq!(m.cmd("DEBUG SET-ACTIVE-EXPIRE 1"), R::ok());
    seen
}

#[test]
fn a_write_on_a_writable_replica_replaces_a_key_that_expired_there_like_redis() {
    // INCR recreates key1 without the old TTL (it used to keep it: TTL -2 at once).
    let m = TestServer::start(&["--enable-debug-command", "yes"]);
    let r = start_replica_of(m.port, &[]);
    wait_connected(&r);
    let ours = write_to_an_expired_key_on_a_writable_replica(m.port, r.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let rm = RealRedis::start(dir.path(), "m.rdb", &[]);
    let rr = RealRedis::start(
        dir.path(),
        "r.rdb",
        &["--replicaof", "127.0.0.1", &rm.port.to_string()],
    );
    let theirs = write_to_an_expired_key_on_a_writable_replica(rm.port, rr.port);
    assert_eq!(ours, theirs);
    assert_eq!(ours[2], R::Int(-1), "{ours:?}");
}
