//! Tandem extensions for operator-driven roles: `TANDEM_BIND` and the fenced start.

mod common;

use common::*;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process killed (by its own handle) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tandem_bind_env_replaces_bind_directive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let conf = dir.path().join("tandem.conf");
    std::fs::write(&conf, format!("bind 0.0.0.0\nport {port}\nsave \"\"\n")).expect("conf");
    let log = dir.path().join("stdout.log");
    let mut child = Guard(
        Command::new(server_bin())
            .arg(&conf)
            .args(["--dir", dir.path().to_str().expect("utf8")])
            .env("TANDEM_BIND", " 127.0.0.2 ")
            .current_dir(dir.path())
            .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tandem-server"),
    );
    let up = wait_until(Duration::from_secs(10), || {
        if let Ok(Some(_)) = child.0.try_wait() {
            return true;
        }
        TcpStream::connect(("127.0.0.2", port)).is_ok()
    });
    assert!(up, "server never listened on 127.0.0.2:{port}");
    assert!(
        child.0.try_wait().expect("try_wait").is_none(),
        "server exited"
    );
    let stream = TcpStream::connect(("127.0.0.2", port)).expect("connect 127.0.0.2");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut c = Conn {
        stream: std::io::BufReader::new(stream),
    };
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(c.cmd("CONFIG GET bind"), arr(&["bind", "127.0.0.2"]));
    let refused = TcpStream::connect(("127.0.0.1", port));
    assert!(
        refused.is_err(),
        "127.0.0.1:{port} must not be listened on (bind 0.0.0.0 was replaced)"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("TANDEM_BIND is set: listening on 127.0.0.2"),
        "log: {text}"
    );
}

const WAIT: Duration = Duration::from_secs(30);
const FENCED: &str = "FENCED server started fenced; no role assigned yet (REPLICAOF host port or REPLICAOF NO ONE assigns one)";

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

/// Stops a server with SHUTDOWN SAVE and returns its directory (with dump.rdb).
fn shutdown_keep_dir(mut s: TestServer) -> tempfile::TempDir {
    let mut c = s.conn();
    c.send(&[b"SHUTDOWN", b"SAVE"]);
    assert!(
        wait_until(WAIT, || matches!(s.child.try_wait(), Ok(Some(_)))),
        "server did not exit"
    );
    std::mem::replace(&mut s.dir, tempfile::tempdir().expect("tempdir"))
}

/// A directory whose dump.rdb holds `keys` (as `SET k v`) plus `extra` commands.
fn seeded_dir(keys: &[(&str, &str)], extra: &[&str]) -> tempfile::TempDir {
    let s = TestServer::start(&["--save", ""]);
    let mut c = s.conn();
    for (k, v) in keys {
        assert_eq!(c.cmd_args(&[b"SET", k.as_bytes(), v.as_bytes()]), R::ok());
    }
    for cmd in extra {
        assert_eq!(c.cmd(cmd), R::ok(), "{cmd}");
    }
    let dir = shutdown_keep_dir(s);
    assert!(dir.path().join("dump.rdb").exists());
    dir
}

fn start_fenced_in(dir: tempfile::TempDir) -> TestServer {
    TestServer::start_in(
        dir,
        &[
            "--enable-debug-command",
            "yes",
            "--save",
            "",
            "--tandem-fenced-start",
            "yes",
            "--repl-diskless-sync",
            "no",
        ],
    )
}

#[test]
fn fenced_start_refuses_writes_and_syncs_until_replicaof_no_one() {
    let s = start_fenced_in(seeded_dir(&[("k1", "v1"), ("k2", "v2")], &[]));
    let mut c = s.conn();
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(c.cmd("GET k1"), R::bulk("v1"));
    assert_eq!(c.cmd("DBSIZE"), R::Int(2));
    assert_eq!(c.cmd("SET k1 x"), err(FENCED));
    assert_eq!(c.cmd("DEL k2"), err(FENCED));
    assert_eq!(c.cmd("FLUSHALL"), err(FENCED));
    assert_eq!(c.cmd("DEBUG POPULATE 10"), err(FENCED));
    assert_eq!(c.cmd("GET k1"), R::bulk("v1"));
    assert_eq!(
        c.cmd("CONFIG GET tandem-fenced-start"),
        arr(&["tandem-fenced-start", "yes"])
    );
    assert_eq!(info(&mut c, "replication", "tandem_fenced"), "1");
    let text = match c.cmd("INFO replication") {
        R::Bulk(b) => String::from_utf8(b).expect("utf8"),
        r => panic!("{r:?}"),
    };
    assert_eq!(
        text.trim_end().lines().last(),
        Some("tandem_fenced:1"),
        "{text}"
    );
    // MULTI: the write is refused when queued, EXEC then aborts.
    assert_eq!(c.cmd("MULTI"), R::ok());
    assert_eq!(c.cmd("SET k1 y"), err(FENCED));
    assert_eq!(
        c.cmd("EXEC"),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    // Sync requests are refused with the same error.
    let mut sc = s.conn();
    assert_eq!(sc.cmd("PSYNC ? -1"), err(FENCED));
    assert_eq!(sc.cmd("SYNC"), err(FENCED));
    assert_eq!(info(&mut c, "stats", "sync_full"), "0");
    let replid = info(&mut c, "replication", "master_replid");
    let offset = info(&mut c, "replication", "master_repl_offset");
    assert!(s
        .stdout()
        .contains("Started fenced: no writes and no replica syncs until a role is assigned"));

    assert_eq!(c.cmd("REPLICAOF NO ONE"), R::ok());
    assert_eq!(info(&mut c, "replication", "tandem_fenced"), "0");
    assert_eq!(info(&mut c, "replication", "role"), "master");
    assert_eq!(info(&mut c, "replication", "master_replid"), replid);
    assert_eq!(info(&mut c, "replication", "master_repl_offset"), offset);
    assert_eq!(c.cmd("SET k1 x"), R::ok());
    assert_eq!(c.cmd("GET k1"), R::bulk("x"));
    assert!(s.stdout().contains("Fence lifted by REPLICAOF NO ONE"));
    // A second REPLICAOF NO ONE is a no-op.
    assert_eq!(c.cmd("REPLICAOF NO ONE"), R::ok());
    assert_eq!(c.cmd("SET k3 z"), R::ok());
}

#[test]
fn fenced_start_is_off_by_default_and_never_with_replicaof() {
    let plain = TestServer::start(&[]);
    let mut c = plain.conn();
    assert_eq!(
        c.cmd("CONFIG GET tandem-fenced-start"),
        arr(&["tandem-fenced-start", "no"])
    );
    assert_eq!(info(&mut c, "replication", "tandem_fenced"), "0");
    assert_eq!(c.cmd("SET a 1"), R::ok());
    let target = plain.port.to_string();
    let r = TestServer::start(&[
        "--tandem-fenced-start",
        "yes",
        "--replicaof",
        "127.0.0.1",
        &target,
    ]);
    let mut rc = r.conn();
    assert_eq!(info(&mut rc, "replication", "tandem_fenced"), "0");
    assert!(wait_until(WAIT, || rc.cmd("GET a") == R::bulk("1")));
    assert!(!r.stdout().contains("Started fenced"));
}

#[test]
fn fenced_start_survives_config_rewrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("tandem.conf");
    std::fs::write(&conf, "# mine\ntandem-fenced-start yes\n").expect("conf");
    let port = free_port();
    let mut child = Guard(
        Command::new(server_bin())
            .arg(&conf)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", dir.path().to_str().expect("utf8")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    assert!(wait_until(WAIT, || {
        matches!(child.0.try_wait(), Ok(Some(_))) || TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    let mut c = Conn::connect(port);
    assert_eq!(c.cmd("SET a 1"), err(FENCED));
    assert_eq!(c.cmd("CONFIG SET tandem-admin-port 1234"), R::Err(
        "ERR CONFIG SET failed (possibly related to argument 'tandem-admin-port') - can't set immutable config".into()
    ));
    assert_eq!(c.cmd("CONFIG REWRITE"), R::ok());
    let text = std::fs::read_to_string(&conf).expect("read conf");
    assert!(text.contains("tandem-fenced-start yes"), "{text}");
    assert!(text.contains("# mine"), "{text}");
}

#[test]
fn fenced_active_expiry_deletes_nothing_until_unfenced() {
    let dir = seeded_dir(
        &[("keep", "1")],
        &["SET t1 a PX 6000", "SET t2 b PX 6000", "SET t3 c PX 6000"],
    );
    let s = start_fenced_in(dir);
    let mut c = s.conn();
    assert_eq!(c.cmd("DBSIZE"), R::Int(4));
    // Wait for the TTLs to pass (no lazy access to the keys), then watch the active
    // cycle for a while: nothing may disappear.
    // (PTTL reads lazily: a fenced server hides but never deletes an expired key.)
    assert!(wait_until(WAIT, || c.cmd("PTTL t1") == R::Int(-2)));
    assert!(wait_until(WAIT, || c.cmd("PTTL t3") == R::Int(-2)));
    let changed = wait_until(Duration::from_millis(1500), || c.cmd("DBSIZE") != R::Int(4));
    assert!(!changed, "a fenced server deleted keys");
    assert_eq!(info(&mut c, "stats", "expired_keys"), "0");
    // Lazy reads hide expired keys without deleting them.
    assert_eq!(c.cmd("GET t1"), R::Nil);
    assert_eq!(c.cmd("DBSIZE"), R::Int(4));
    assert_eq!(c.cmd("REPLICAOF NO ONE"), R::ok());
    assert!(wait_until(WAIT, || c.cmd("DBSIZE") == R::Int(1)));
    assert_eq!(info(&mut c, "stats", "expired_keys"), "3");
}

#[test]
fn replicas_of_a_fenced_server_stay_down_until_it_is_unfenced() {
    let m = start_fenced_in(seeded_dir(&[("src", "master-data")], &[]));
    let mut mc = m.conn();
    // A Tandem replica and a real Redis replica, each with data of its own.
    let r1 = TestServer::start(&["--save", ""]);
    let mut c1 = r1.conn();
    assert_eq!(c1.cmd("SET mine r1"), R::ok());
    assert_eq!(c1.cmd(&format!("REPLICAOF 127.0.0.1 {}", m.port)), R::ok());
    let rdir = tempfile::tempdir().expect("tempdir");
    let r2 = RealRedis::start(rdir.path(), "r2.rdb", &[]);
    let mut c2 = r2.conn();
    assert_eq!(c2.cmd("SET mine r2"), R::ok());
    assert_eq!(c2.cmd(&format!("REPLICAOF 127.0.0.1 {}", m.port)), R::ok());
    // Both keep trying and failing: no sync served, their own data untouched.
    assert!(
        wait_until(WAIT, || r1.stdout().contains("-FENCED")),
        "{}",
        r1.stdout()
    );
    let synced = wait_until(Duration::from_millis(2500), || {
        info(&mut c1, "replication", "master_link_status") == "up"
            || info(&mut c2, "replication", "master_link_status") == "up"
    });
    assert!(!synced, "a replica synced from a fenced server");
    assert_eq!(c1.cmd("GET mine"), R::bulk("r1"));
    assert_eq!(c2.cmd("GET mine"), R::bulk("r2"));
    assert_eq!(c1.cmd("GET src"), R::Nil);
    assert_eq!(c2.cmd("GET src"), R::Nil);
    assert!(!m.stdout().contains("asks for synchronization"));
    assert_eq!(info(&mut mc, "stats", "sync_full"), "0");
    assert_eq!(info(&mut mc, "replication", "connected_slaves"), "0");

    assert_eq!(mc.cmd("REPLICAOF NO ONE"), R::ok());
    assert_eq!(mc.cmd("SET after unfence"), R::ok());
    for c in [&mut c1, &mut c2] {
        assert!(
            wait_until(WAIT, || c.cmd("GET after") == R::bulk("unfence")),
            "replica never synced after the fence was lifted:\n{}",
            r1.stdout()
        );
        assert_eq!(c.cmd("GET src"), R::bulk("master-data"));
        assert_eq!(c.cmd("GET mine"), R::Nil);
        assert_eq!(info(c, "replication", "master_link_status"), "up");
    }
    assert_eq!(info(&mut mc, "replication", "connected_slaves"), "2");
}

#[test]
fn replicaof_host_port_turns_a_fenced_server_into_a_replica() {
    let m = TestServer::start(&["--save", ""]);
    let mut mc = m.conn();
    assert_eq!(mc.cmd("SET from master"), R::ok());
    let f = start_fenced_in(tempfile::tempdir().expect("tempdir"));
    let mut fc = f.conn();
    assert_eq!(fc.cmd("SET x 1"), err(FENCED));
    assert_eq!(fc.cmd(&format!("REPLICAOF 127.0.0.1 {}", m.port)), R::ok());
    assert_eq!(info(&mut fc, "replication", "tandem_fenced"), "0");
    assert!(wait_until(WAIT, || fc.cmd("GET from") == R::bulk("master")));
    assert_eq!(info(&mut fc, "replication", "role"), "slave");
    assert_eq!(info(&mut fc, "replication", "master_link_status"), "up");
    assert_eq!(
        fc.cmd("SET x 1"),
        err("READONLY You can't write against a read only replica.")
    );
    assert!(f
        .stdout()
        .contains(&format!("Fence lifted by REPLICAOF 127.0.0.1:{}", m.port)));
}

#[test]
fn restarted_replica_started_fenced_partially_resyncs_when_its_role_is_assigned() {
    let m = TestServer::start(&["--save", "", "--repl-diskless-sync", "no"]);
    let mut mc = m.conn();
    let target = m.port.to_string();
    let r = TestServer::start(&["--save", "3600 1", "--replicaof", "127.0.0.1", &target]);
    let mut rc = r.conn();
    for i in 0..50 {
        assert_eq!(mc.cmd(&format!("SET k{i} {i}")), R::ok());
    }
    let off = info(&mut mc, "replication", "master_repl_offset");
    assert!(wait_until(WAIT, || info(
        &mut rc,
        "replication",
        "slave_repl_offset"
    ) == off));
    drop(rc);
    let dir = shutdown_keep_dir(r);
    let full = info(&mut mc, "stats", "sync_full");
    let partial: u64 = info(&mut mc, "stats", "sync_partial_ok")
        .parse()
        .expect("int");
    // Restarted without replicaof (the operator decides), fenced meanwhile.
    let r2 = start_fenced_in(dir);
    let mut rc2 = r2.conn();
    assert_eq!(info(&mut rc2, "replication", "tandem_fenced"), "1");
    assert_eq!(rc2.cmd("GET k49"), R::bulk("49"));
    for i in 0..20 {
        assert_eq!(mc.cmd(&format!("SET late{i} {i}")), R::ok());
    }
    assert_eq!(rc2.cmd(&format!("REPLICAOF 127.0.0.1 {}", m.port)), R::ok());
    assert!(
        wait_until(WAIT, || rc2.cmd("GET late19") == R::bulk("19")),
        "{}",
        r2.stdout()
    );
    assert_eq!(
        info(&mut mc, "stats", "sync_full"),
        full,
        "full sync happened"
    );
    assert_eq!(
        info(&mut mc, "stats", "sync_partial_ok"),
        (partial + 1).to_string()
    );
    assert!(r2
        .stdout()
        .contains("Fenced since startup: continuing the saved replication history"));
    assert_eq!(rc2.cmd("DBSIZE"), R::Int(70));
}
