//! Streamed full sync: the master forwards the snapshot child's output as it comes
//! (diskless), the replica loads while receiving and writes the sync file from the
//! same bytes. Loopback only; every wait is bounded.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn info_field(c: &mut Conn, section: &str, field: &str) -> Option<String> {
    let text = match c.cmd(&format!("INFO {section}")) {
        R::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => return None,
    };
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
}

fn link_up(c: &mut Conn) -> bool {
    info_field(c, "replication", "master_link_status").as_deref() == Some("up")
}

fn wait_link_up(s: &TestServer) {
    let mut c = s.conn();
    assert!(
        wait_until(WAIT, || link_up(&mut c)),
        "link never came up; log:\n{}",
        s.stdout()
    );
}

fn dbsize(c: &mut Conn) -> i64 {
    match c.cmd("DBSIZE") {
        R::Int(n) => n,
        other => panic!("DBSIZE: {other:?}"),
    }
}

fn digest(c: &mut Conn) -> Vec<u8> {
    match c.cmd("DEBUG DIGEST") {
        R::Simple(s) => s.into_bytes(),
        R::Bulk(b) => b,
        other => panic!("DEBUG DIGEST: {other:?}"),
    }
}

fn temp_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("temp-") && n.ends_with(".rdb"))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits for the replica to report the broken transfer and to remove its temp file.
fn assert_transfer_broken_and_cleaned(r: &TestServer) {
    assert!(
        wait_until(WAIT, || r
            .stdout()
            .contains("I/O error trying to sync with MASTER")),
        "{}",
        r.stdout()
    );
    assert!(
        wait_until(WAIT, || temp_files(r.dir.path()).is_empty()),
        "temp files left: {:?}",
        temp_files(r.dir.path())
    );
}

/// The master's log shows exactly one snapshot for socket targets.
fn assert_one_socket_snapshot(mlog: &str) {
    let n = mlog
        .matches("Starting BGSAVE for SYNC with target: replicas sockets")
        .count();
    assert_eq!(n, 1, "replicas should share one snapshot:\n{mlog}");
}

/// A server with DEBUG enabled (POPULATE, DIGEST).
fn start(args: &[&str]) -> TestServer {
    let mut all = vec!["--enable-debug-command", "yes"];
    all.extend_from_slice(args);
    TestServer::start(&all)
}

fn diskless_master(delay: &str) -> TestServer {
    start(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        delay,
    ])
}

fn replica_of(m: &TestServer) -> TestServer {
    let target = format!("127.0.0.1 {}", m.port);
    start(&["--replicaof", &target])
}

#[test]
fn diskless_sync_spanning_many_pipe_chunks_arrives_complete() {
    let m = diskless_master("0");
    let mut mc = m.conn();
    // ~25 MB of RDB: hundreds of 64 KiB pipe chunks.
    assert_eq!(mc.cmd("DEBUG POPULATE 200000 key 100"), R::ok());
    assert_eq!(mc.cmd("SET marker streamed"), R::ok());
    let r = replica_of(&m);
    wait_link_up(&r);
    let mut rc = r.conn();
    assert!(
        wait_until(WAIT, || dbsize(&mut rc) == 200_001),
        "replica has {} keys",
        dbsize(&mut rc)
    );
    assert_eq!(digest(&mut rc), digest(&mut mc));
    assert_eq!(rc.cmd("GET marker"), R::bulk("streamed"));
    // Writes after the sync still flow.
    assert_eq!(mc.cmd("SET after 1"), R::ok());
    assert!(wait_until(WAIT, || rc.cmd("GET after") == R::bulk("1")));
    let mlog = m.stdout();
    assert!(
        mlog.contains("Starting BGSAVE for SYNC with target: replicas sockets"),
        "{mlog}"
    );
    assert!(
        mlog.contains("Diskless rdb transfer, done reading from pipe, 1 replicas still up."),
        "{mlog}"
    );
    assert!(
        mlog.contains("Background RDB transfer terminated with success"),
        "{mlog}"
    );
    let rlog = r.stdout();
    assert!(
        rlog.contains("receiving streamed RDB from master with EOF to disk"),
        "{rlog}"
    );
    assert!(
        rlog.contains("Done loading RDB, keys loaded: 200001"),
        "{rlog}"
    );
    assert!(temp_files(r.dir.path()).is_empty());
}

#[test]
fn two_replicas_attached_to_one_diskless_ticket_both_get_it() {
    // The delay lets the second replica join the first one's snapshot.
    let m = diskless_master("3");
    let mut mc = m.conn();
    assert_eq!(mc.cmd("DEBUG POPULATE 100000 key 100"), R::ok());
    let r1 = replica_of(&m);
    let r2 = replica_of(&m);
    wait_link_up(&r1);
    wait_link_up(&r2);
    let want = digest(&mut mc);
    for r in [&r1, &r2] {
        let mut c = r.conn();
        assert_eq!(dbsize(&mut c), 100_000);
        assert_eq!(digest(&mut c), want);
    }
    let mlog = m.stdout();
    assert_one_socket_snapshot(&mlog);
    assert!(
        mlog.contains("Diskless rdb transfer, done reading from pipe, 2 replicas still up."),
        "{mlog}"
    );
    assert_eq!(
        mlog.matches("Streamed RDB transfer with replica").count(),
        2,
        "{mlog}"
    );
    // Both are streamed to afterwards.
    assert_eq!(mc.cmd("SET later v"), R::ok());
    for r in [&r1, &r2] {
        let mut c = r.conn();
        assert!(wait_until(WAIT, || c.cmd("GET later") == R::bulk("v")));
    }
}

#[test]
fn master_killed_mid_transfer_leaves_old_data_and_no_temp_file() {
    // A big payload, so the replica is caught with part of it received.
    let mut m = diskless_master("0");
    let mut mc = m.conn();
    assert_eq!(mc.cmd("DEBUG POPULATE 600000 key 200"), R::ok());
    drop(mc);
    // The replica starts as a master of its own data.
    let r = start(&[]);
    let mut rc = r.conn();
    assert_eq!(rc.cmd("DEBUG POPULATE 1000 old 10"), R::ok());
    let old_digest = digest(&mut rc);
    assert_eq!(rc.cmd(&format!("REPLICAOF 127.0.0.1 {}", m.port)), R::ok());
    wait_mid_transfer(&r, &mut rc);
    let _ = m.child.kill();
    let _ = m.child.wait();
    // The replica notices, keeps its old data and removes the temp file.
    assert_transfer_broken_and_cleaned(&r);
    assert_eq!(dbsize(&mut rc), 1000);
    assert_eq!(digest(&mut rc), old_digest);
    assert!(!link_up(&mut rc));
    assert!(!r.stdout().contains("Finished with success"));

    // Later it syncs from a new master.
    let m2 = diskless_master("0");
    let mut m2c = m2.conn();
    assert_eq!(m2c.cmd("DEBUG POPULATE 5000 new 10"), R::ok());
    assert_eq!(rc.cmd(&format!("REPLICAOF 127.0.0.1 {}", m2.port)), R::ok());
    wait_link_up(&r);
    assert_eq!(dbsize(&mut rc), 5000);
    assert_eq!(digest(&mut rc), digest(&mut m2c));
    assert!(temp_files(r.dir.path()).is_empty());
}

/// Polls until the replica has received part of the payload (sync in progress).
fn wait_mid_transfer(r: &TestServer, rc: &mut Conn) {
    let mut caught = false;
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let in_progress = info_field(rc, "replication", "master_sync_in_progress");
        let read: i64 = info_field(rc, "replication", "master_sync_read_bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if in_progress.as_deref() == Some("1") && read > 0 {
            caught = true;
            break;
        }
        if link_up(rc) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        caught,
        "never saw the transfer in progress; log:\n{}",
        r.stdout()
    );
}

#[test]
fn snapshot_child_dying_midway_breaks_the_transfer_and_the_replica_resyncs() {
    let m = diskless_master("0");
    let mut mc = m.conn();
    assert_eq!(mc.cmd("DEBUG POPULATE 600000 key 200"), R::ok());
    let r = start(&[]);
    let mut rc = r.conn();
    assert_eq!(rc.cmd("DEBUG POPULATE 1000 old 10"), R::ok());
    let old_digest = digest(&mut rc);
    assert_eq!(rc.cmd(&format!("REPLICAOF 127.0.0.1 {}", m.port)), R::ok());
    wait_mid_transfer(&r, &mut rc);
    let mlog = m.stdout();
    let pid = mlog
        .lines()
        .find_map(|l| l.split("Background RDB transfer started by pid ").nth(1))
        .and_then(|p| p.trim().parse::<u32>().ok())
        .expect("child pid in the master log");
    assert_ne!(pid, m.child.id(), "the snapshot came from a forked child");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(
        wait_until(WAIT, || m.stdout().contains("Background transfer error")),
        "{}",
        m.stdout()
    );
    assert!(
        wait_until(WAIT, || r
            .stdout()
            .contains("I/O error trying to sync with MASTER")),
        "{}",
        r.stdout()
    );
    // The truncated payload was not loaded (the retry's load of 600k keys
    // takes far longer than this check).
    assert_eq!(dbsize(&mut rc), 1000);
    assert_eq!(digest(&mut rc), old_digest);
    // The link is retried with a new snapshot, which completes.
    wait_link_up(&r);
    assert_eq!(dbsize(&mut rc), 600_000);
    // (DEBUG DIGEST of 600k keys is slow in a debug build: compare a sample.)
    for k in ["key:0", "key:1", "key:299999", "key:599999"] {
        let want = mc.cmd(&format!("GET {k}"));
        assert!(matches!(&want, R::Bulk(v) if v.len() == 200), "{want:?}");
        assert_eq!(rc.cmd(&format!("GET {k}")), want);
    }
    assert!(temp_files(r.dir.path()).is_empty());
}

/// Reads one RESP array of bulk strings (a command from the replica).
fn read_command(rd: &mut BufReader<TcpStream>) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    loop {
        line.clear();
        if rd.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut argv = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        rd.read_line(&mut line).ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut arg = vec![0u8; len + 2];
        rd.read_exact(&mut arg).ok()?;
        arg.truncate(len);
        argv.push(arg);
    }
    Some(argv)
}

/// The fake masters' side of the handshake, up to the replica's PSYNC.
fn answer_handshake(rd: &mut BufReader<TcpStream>, w: &mut TcpStream) -> Result<(), String> {
    for _ in 0..10 {
        let argv = read_command(rd).ok_or("replica closed during handshake")?;
        let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
        match name.as_str() {
            "ping" => w.write_all(b"+PONG\r\n"),
            "psync" | "sync" => return Ok(()),
            _ => w.write_all(b"+OK\r\n"),
        }
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Accepts the replica's link on `listener` and answers its handshake: the write side
/// and the buffered read side of the link.
fn accept_replica(listener: &TcpListener) -> Result<(TcpStream, BufReader<TcpStream>), String> {
    listener.set_nonblocking(false).map_err(|e| e.to_string())?;
    let (sock, _) = listener.accept().map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut w = sock.try_clone().map_err(|e| e.to_string())?;
    let mut rd = BufReader::new(sock);
    answer_handshake(&mut rd, &mut w)?;
    Ok((w, rd))
}

/// A fake master on loopback: answers the handshake, then sends `payload` in the
/// EOF form in small pieces. With `cut` it closes the link after that many
/// payload bytes instead. Returns what happened.
fn fake_master(listener: TcpListener, payload: Vec<u8>, cut: Option<usize>) -> Result<(), String> {
    let (mut w, mut rd) = accept_replica(&listener)?;
    let replid = "0123456789abcdef0123456789abcdef01234567";
    let mark = "fedcba9876543210fedcba9876543210fedcba98";
    w.write_all(format!("+FULLRESYNC {replid} 0\r\n$EOF:{mark}\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let end = cut.unwrap_or(payload.len());
    for piece in payload[..end].chunks(7919) {
        w.write_all(piece).map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())?;
    }
    if cut.is_some() {
        return Ok(()); // drops the socket mid-payload
    }
    w.write_all(mark.as_bytes()).map_err(|e| e.to_string())?;
    // The replica acknowledges the end of the payload.
    let ack = read_command(&mut rd).ok_or("no ACK after the mark")?;
    if !ack[0].eq_ignore_ascii_case(b"replconf") || !ack[1].eq_ignore_ascii_case(b"ack") {
        return Err(format!("expected REPLCONF ACK, got {ack:?}"));
    }
    // Keep the link open a moment so the replica sees it up.
    std::thread::sleep(Duration::from_millis(300));
    Ok(())
}

/// An RDB made by a real tandem-server SAVE.
fn saved_rdb(keys: usize) -> (Vec<u8>, Vec<u8>) {
    let s = start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd(&format!("DEBUG POPULATE {keys} k 50")), R::ok());
    assert_eq!(c.cmd("SADD aset a b c"), R::Int(3));
    assert_eq!(c.cmd("SAVE"), R::ok());
    let d = digest(&mut c);
    let rdb = std::fs::read(s.dir.path().join("dump.rdb")).expect("dump.rdb");
    (rdb, d)
}

#[test]
fn replica_dump_file_equals_the_streamed_payload_and_loads_on_restart() {
    let (payload, want_digest) = saved_rdb(30000);
    assert!(
        payload.len() > 500_000,
        "payload of {} bytes",
        payload.len()
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let sent = payload.clone();
    let master = std::thread::spawn(move || fake_master(listener, sent, None));
    let target = format!("127.0.0.1 {port}");
    let r = start(&["--replicaof", &target]);
    let res = master.join().expect("fake master thread");
    assert_eq!(res, Ok(()), "log:\n{}", r.stdout());
    let mut rc = r.conn();
    assert!(
        wait_until(WAIT, || dbsize(&mut rc) == 30001),
        "log:\n{}",
        r.stdout()
    );
    assert_eq!(digest(&mut rc), want_digest);
    let dump = r.dir.path().join("dump.rdb");
    assert!(
        wait_until(WAIT, || std::fs::read(&dump).is_ok_and(|d| d == payload)),
        "the dump file differs from the payload"
    );
    assert!(temp_files(r.dir.path()).is_empty());
    // A restart (without the master) loads it.
    let mut r = r;
    let _ = r.child.kill();
    let _ = r.child.wait();
    let dir = std::mem::replace(&mut r.dir, tempfile::tempdir().expect("tempdir"));
    drop(r);
    let again = TestServer::start_in(dir, &["--enable-debug-command", "yes"]);
    let mut ac = again.conn();
    assert_eq!(dbsize(&mut ac), 30001);
    assert_eq!(digest(&mut ac), want_digest);
}

#[test]
fn stream_broken_midway_keeps_old_data_and_removes_the_temp_file() {
    let (payload, _) = saved_rdb(30000);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let cut = payload.len() / 2;
    let again = listener.try_clone().expect("listener clone");
    let sent = payload.clone();
    let master = std::thread::spawn(move || fake_master(listener, sent, Some(cut)));
    let r = start(&[]);
    let mut rc = r.conn();
    assert_eq!(rc.cmd("SET old value"), R::ok());
    std::fs::write(r.dir.path().join("dump.rdb"), b"previous").expect("write");
    assert_eq!(rc.cmd(&format!("REPLICAOF 127.0.0.1 {port}")), R::ok());
    let res = master.join().expect("fake master thread");
    assert_eq!(res, Ok(()), "log:\n{}", r.stdout());
    assert_transfer_broken_and_cleaned(&r);
    assert_eq!(dbsize(&mut rc), 1);
    assert_eq!(rc.cmd("GET old"), R::bulk("value"));
    // The old dump file was not replaced by a truncated payload.
    assert_eq!(
        std::fs::read(r.dir.path().join("dump.rdb")).expect("dump"),
        b"previous"
    );
    assert!(!r.stdout().contains("Finished with success"));
    // The link is retried: the next attempt gets the whole payload.
    let master = std::thread::spawn(move || fake_master(again, payload, None));
    let res = master.join().expect("fake master thread");
    assert_eq!(res, Ok(()), "log:\n{}", r.stdout());
    assert!(
        wait_until(WAIT, || dbsize(&mut rc) == 30001),
        "log:\n{}",
        r.stdout()
    );
    assert_eq!(rc.cmd("GET old"), R::Nil);
    assert!(r.stdout().contains("Finished with success"));
}

#[test]
fn a_stalled_replica_is_dropped_and_the_others_of_its_ticket_complete() {
    let m = start(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "2",
        "--repl-timeout",
        "2",
    ]);
    let mut mc = m.conn();
    // Far more than the socket buffers and the per-replica queue hold.
    assert_eq!(mc.cmd("DEBUG POPULATE 200000 key 100"), R::ok());
    // A replica that asks for a diskless sync and then never reads.
    let mut stalled = m.conn();
    assert_eq!(stalled.cmd("REPLCONF capa eof capa psync2"), R::ok());
    stalled.send_raw(b"PSYNC ? -1\r\n");
    let r = replica_of(&m);
    wait_link_up(&r);
    let mut rc = r.conn();
    assert_eq!(dbsize(&mut rc), 200_000);
    assert_eq!(rc.cmd("GET key:199999"), mc.cmd("GET key:199999"));
    let mlog = m.stdout();
    assert_one_socket_snapshot(&mlog);
    assert!(
        mlog.contains("Disconnecting timedout replica (full sync): "),
        "{mlog}"
    );
    assert!(
        mlog.contains("Diskless rdb transfer, done reading from pipe, 1 replicas still up."),
        "{mlog}"
    );
    drop(stalled);
}

fn same_sample(a: &mut Conn, b: &mut Conn, keys: usize) {
    for i in [0, 1, keys / 2, keys - 1] {
        let k = format!("GET key:{i}");
        let want = a.cmd(&k);
        assert!(matches!(&want, R::Bulk(v) if v.len() == 100), "{want:?}");
        assert_eq!(b.cmd(&k), want, "{k}");
    }
}

#[test]
fn real_redis_replica_syncs_from_tandem_in_both_forms() {
    for diskless in ["yes", "no"] {
        let m = start(&[
            "--repl-diskless-sync",
            diskless,
            "--repl-diskless-sync-delay",
            "0",
        ]);
        let mut mc = m.conn();
        assert_eq!(mc.cmd("DEBUG POPULATE 100000 key 100"), R::ok());
        let dir = tempfile::tempdir().expect("tempdir");
        let port = m.port.to_string();
        let r = RealRedis::start(dir.path(), "dump.rdb", &["--replicaof", "127.0.0.1", &port]);
        let mut rc = r.conn();
        assert!(
            wait_until(WAIT, || link_up(&mut rc)),
            "redis never synced (diskless {diskless}); tandem log:\n{}",
            m.stdout()
        );
        assert_eq!(dbsize(&mut rc), 100_000);
        same_sample(&mut mc, &mut rc, 100_000);
        let target = if diskless == "yes" {
            "replicas sockets"
        } else {
            "disk"
        };
        assert!(
            m.stdout()
                .contains(&format!("Starting BGSAVE for SYNC with target: {target}")),
            "{}",
            m.stdout()
        );
    }
}

#[test]
fn tandem_replica_syncs_from_real_redis_in_both_forms() {
    for diskless in ["yes", "no"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = RealRedis::start(
            dir.path(),
            "dump.rdb",
            &[
                "--repl-diskless-sync",
                diskless,
                "--repl-diskless-sync-delay",
                "0",
            ],
        );
        let mut mc = m.conn();
        assert_eq!(mc.cmd("DEBUG POPULATE 100000 key 100"), R::ok());
        let r = replica_of_port(m.port);
        wait_link_up(&r);
        let mut rc = r.conn();
        assert_eq!(dbsize(&mut rc), 100_000);
        same_sample(&mut mc, &mut rc, 100_000);
        let form = if diskless == "yes" {
            "receiving streamed RDB from master with EOF to disk"
        } else {
            "bytes from master to disk"
        };
        assert!(r.stdout().contains(form), "{}", r.stdout());
        // The received payload became the dump file.
        assert!(wait_until(WAIT, || r.dir.path().join("dump.rdb").exists()));
    }
}

fn replica_of_port(port: u16) -> TestServer {
    let target = format!("127.0.0.1 {port}");
    start(&["--replicaof", &target])
}

/// A fake master that answers the handshake, sends `junk` as the start of an
/// EOF-form payload, waits for `go`, then sends the mark and holds the link a
/// moment (or until the replica closes it).
fn fake_master_paused(
    listener: TcpListener,
    junk: Vec<u8>,
    go: std::sync::mpsc::Receiver<()>,
) -> Result<(), String> {
    let (mut w, mut rd) = accept_replica(&listener)?;
    let mark = "fedcba9876543210fedcba9876543210fedcba98";
    let head = format!("+FULLRESYNC 0123456789abcdef0123456789abcdef01234567 0\r\n$EOF:{mark}\r\n");
    w.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    // A replica whose load failed early closes the link mid-payload: ignored.
    let _ = w.write_all(&junk);
    go.recv_timeout(WAIT).map_err(|e| e.to_string())?;
    // The replica may already have closed the link (its load failed): ignored.
    let _ = w.write_all(mark.as_bytes());
    let mut rest = Vec::new();
    let _ = rd.read_to_end(&mut rest);
    Ok(())
}

/// `repl-diskless-load` decides when the loader sees a streamed payload: `swapdb`
/// parses it while it arrives (a payload that is not an RDB fails before its
/// end), the default `disabled` only once it is complete, as Redis loads the
/// file it received.
#[test]
fn repl_diskless_load_decides_whether_loading_waits_for_the_whole_payload() {
    const LOAD_FAILED: &str = "Failed trying to load the MASTER synchronization DB from disk";
    // Far more than the loader's queue holds, so with `swapdb` the receive loop
    // finds the failed loader gone before the payload ends.
    let junk = vec![b'x'; 8 * 1024 * 1024];
    for (mode, fails_early) in [("swapdb", true), ("disabled", false)] {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (go_tx, go_rx) = std::sync::mpsc::channel();
        let sent = junk.clone();
        let master = std::thread::spawn(move || fake_master_paused(listener, sent, go_rx));
        let target = format!("127.0.0.1 {port}");
        let r = start(&["--replicaof", &target, "--repl-diskless-load", mode]);
        let mut rc = r.conn();
        // Everything but the mark has arrived.
        assert!(
            wait_until(WAIT, || r.stdout().contains(LOAD_FAILED)
                || info_field(&mut rc, "replication", "master_sync_read_bytes")
                    .and_then(|v| v.parse::<usize>().ok())
                    .is_some_and(|n| n >= junk.len())),
            "{mode}: payload never arrived; log:\n{}",
            r.stdout()
        );
        if fails_early {
            assert!(
                wait_until(WAIT, || r.stdout().contains(LOAD_FAILED)),
                "{mode}: the load did not start while receiving; log:\n{}",
                r.stdout()
            );
        } else {
            // A bounded look for something that must not happen: the loader has
            // not seen a byte yet.
            assert!(
                !wait_until(Duration::from_millis(500), || r
                    .stdout()
                    .contains(LOAD_FAILED)),
                "{mode}: the load started before the payload was complete; log:\n{}",
                r.stdout()
            );
        }
        let _ = go_tx.send(());
        assert!(
            wait_until(WAIT, || r.stdout().contains(LOAD_FAILED)),
            "{mode}: the bad payload was never rejected; log:\n{}",
            r.stdout()
        );
        drop(rc);
        drop(r);
        let res = master.join().expect("fake master thread");
        assert_eq!(res, Ok(()), "{mode}");
    }
}
