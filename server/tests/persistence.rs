//! Persistence over the wire: SAVE/BGSAVE/LASTSAVE, save rules, startup load,
//! shutdown save, refusal of a corrupt dump.rdb, interop with a real Redis dump.

mod common;

use bytes::Bytes;
use common::{fail_a_bgsave, server_bin, wait_until, Conn, TestServer, FAILING_BGSAVE, R};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tandem_server::db::Db;
use tandem_server::rdb;
use tandem_server::types::Value;

/// Stops a server (SIGKILL) but keeps its directory.
fn stop_keep_dir(mut s: TestServer) -> tempfile::TempDir {
    let _ = s.child.kill();
    let _ = s.child.wait();
    std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap())
}

fn sigterm_keep_dir(mut s: TestServer) -> tempfile::TempDir {
    let pid = s.child.id() as i32;
    // libc::kill is an unsafe fn (and unsafe code is forbidden): use kill(1).
    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(wait_until(Duration::from_secs(10), || matches!(
        s.child.try_wait(),
        Ok(Some(_))
    )));
    std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap())
}

fn bulk(c: &mut Conn, k: &str) -> R {
    c.cmd(&format!("GET {k}"))
}

#[test]
fn save_then_restart_loads_data() {
    let s = TestServer::start(&["--save", ""]);
    let mut c = s.conn();
    for i in 0..200 {
        assert_eq!(c.cmd(&format!("SET key{i} value{i}")), R::ok());
    }
    c.cmd_args(&[b"SET", b"bin", b"a\0b\r\nc"]);
    let before = match c.cmd("LASTSAVE") {
        R::Int(t) => t,
        r => panic!("{r:?}"),
    };
    assert_eq!(c.cmd("SAVE"), R::ok());
    let after = match c.cmd("LASTSAVE") {
        R::Int(t) => t,
        r => panic!("{r:?}"),
    };
    assert!(after >= before);
    let dir = stop_keep_dir(s);
    assert!(dir.path().join("dump.rdb").exists());
    let s = TestServer::start_in(dir, &["--save", ""]);
    let mut c = s.conn();
    assert_eq!(bulk(&mut c, "key0"), R::bulk("value0"));
    assert_eq!(bulk(&mut c, "key199"), R::bulk("value199"));
    assert_eq!(
        c.cmd_args(&[b"GET", b"bin"]),
        R::Bulk(b"a\0b\r\nc".to_vec())
    );
    let log = s.stdout();
    assert!(
        log.contains("Loading RDB produced by version 7.0.15"),
        "{log}"
    );
    assert!(
        log.contains("Done loading RDB, keys loaded: 201, keys expired: 0."),
        "{log}"
    );
}

#[test]
fn bgsave_writes_in_background_while_clients_write() {
    let s = TestServer::start(&["--save", ""]);
    let mut c = s.conn();
    for i in 0..2000 {
        c.send(&[b"SET", format!("k{i}").as_bytes(), &[b'x'; 100]]);
    }
    for _ in 0..2000 {
        assert_eq!(c.read(), R::ok());
    }
    assert_eq!(
        c.cmd("BGSAVE"),
        R::Simple("Background saving started".into())
    );
    // Writes keep being served while (or after) the snapshot is written.
    for i in 0..100 {
        assert_eq!(c.cmd(&format!("SET during{i} v")), R::ok());
    }
    let path = s.dir.path().join("dump.rdb");
    assert!(wait_until(Duration::from_secs(10), || s
        .stdout()
        .contains("Background saving terminated with success")));
    assert!(path.exists());
    let data = std::fs::read(&path).unwrap();
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    let info = rdb::load(
        &mut &data[..],
        &mut dbs,
        &rdb::LoadOptions {
            now_ms: 0,
            drop_expired: true,
            ..Default::default()
        },
    )
    .unwrap();
    // The snapshot holds everything written before BGSAVE.
    assert!(info.keys >= 2000, "{info:?}");
    assert!(dbs[0].entry(b"k1999").is_some());
    assert_eq!(c.cmd("BGSAVE x"), R::Err("ERR syntax error".into()));
}

#[test]
fn save_rule_triggers_background_save() {
    let s = TestServer::start(&["--save", "1 2"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET a 1"), R::ok());
    assert_eq!(c.cmd("SET b 2"), R::ok());
    let path = s.dir.path().join("dump.rdb");
    assert!(
        wait_until(Duration::from_secs(10), || path.exists()),
        "no automatic save: {}",
        s.stdout()
    );
    assert!(s.stdout().contains("2 changes in 1 seconds. Saving..."));
}

#[test]
fn sigterm_saves_when_save_rules_are_configured() {
    let s = TestServer::start(&["--save", "3600 1"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET persisted yes"), R::ok());
    let dir = sigterm_keep_dir(s);
    let log = std::fs::read_to_string(dir.path().join("stdout.log")).unwrap();
    assert!(
        log.contains("Saving the final RDB snapshot before exiting."),
        "{log}"
    );
    let s = TestServer::start_in(dir, &["--save", ""]);
    assert_eq!(bulk(&mut s.conn(), "persisted"), R::bulk("yes"));

    // With no save rules, nothing is written on shutdown.
    let s = TestServer::start(&["--save", ""]);
    assert_eq!(s.conn().cmd("SET x 1"), R::ok());
    let dir = sigterm_keep_dir(s);
    assert!(!dir.path().join("dump.rdb").exists());
}

fn write_rdb(path: &Path, dbs: &[Db]) {
    let mut f = std::fs::File::create(path).unwrap();
    rdb::save(dbs, &rdb::SaveOptions::default(), &mut f).unwrap();
}

#[test]
fn expired_keys_are_not_resurrected_and_ttls_stay_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    dbs[0].set_with_expire(b("dead"), Value::Str(b("x").into()), Some(1_000), 0);
    dbs[0].set_with_expire(
        b("alive"),
        Value::Str(b("y").into()),
        Some(4_102_444_800_000),
        0,
    );
    write_rdb(&dir.path().join("dump.rdb"), &dbs);
    let s = TestServer::start_in(dir, &["--save", ""]);
    let mut c = s.conn();
    assert_eq!(bulk(&mut c, "dead"), R::Nil);
    assert_eq!(bulk(&mut c, "alive"), R::bulk("y"));
    assert!(s.stdout().contains("keys loaded: 1, keys expired: 1."));
    // Saving again keeps the absolute expiry time.
    assert_eq!(c.cmd("SAVE"), R::ok());
    let data = std::fs::read(s.dir.path().join("dump.rdb")).unwrap();
    let mut back: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    rdb::load(
        &mut &data[..],
        &mut back,
        &rdb::LoadOptions {
            now_ms: 0,
            drop_expired: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(back[0].expire_of(b"alive"), Some(4_102_444_800_000));
    assert!(back[0].entry(b"dead").is_none());
}

#[test]
fn corrupt_dump_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    for i in 0..50 {
        dbs[0].set(
            Bytes::from(format!("key{i}")),
            Value::Str(Bytes::from(format!("value-{i}-abcdefgh")).into()),
            0,
        );
    }
    let path = dir.path().join("dump.rdb");
    write_rdb(&path, &dbs);
    let mut data = std::fs::read(&path).unwrap();
    let pos = data.windows(7).position(|w| w == b"value-2").unwrap();
    data[pos + 3] ^= 0x20;
    std::fs::write(&path, &data).unwrap();
    let port = common::free_port().to_string();
    let out = Command::new(server_bin())
        .args(["--bind", "127.0.0.1", "--port", &port, "--save", ""])
        .args(["--dir", dir.path().to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(log.contains("Wrong RDB checksum"), "{log}");
    // Redis's words for it, which Redis's own test suite looks for.
    assert!(log.contains("RDB CRC error"), "{log}");
    assert!(log.contains("Fatal error loading the DB"), "{log}");
    assert!(!log.contains("now.. Exiting"), "{log}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        data,
        "file must be untouched"
    );

    // Truncated file: refused as well.
    std::fs::write(&path, &data[..data.len() / 2]).unwrap();
    let out = Command::new(server_bin())
        .args(["--bind", "127.0.0.1", "--port", &port, "--save", ""])
        .args(["--dir", dir.path().to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("truncated"));
}

#[test]
fn dump_from_real_redis_loads_at_startup() {
    if !Path::new("/usr/bin/redis-server").exists() {
        eprintln!("skipping: redis-server not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut child = Command::new("/usr/bin/redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args([
            "--dir",
            dir.path().to_str().unwrap(),
            "--dbfilename",
            "dump.rdb",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let ok = wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let saved = ok && {
        let mut c = Conn::connect(port);
        c.cmd("SET from-redis hello") == R::ok()
            && c.cmd("SET n 12345") == R::ok()
            && c.cmd("SAVE") == R::ok()
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(saved, "could not prepare the Redis dump");
    let s = TestServer::start_in(dir, &["--save", ""]);
    let mut c = s.conn();
    assert_eq!(bulk(&mut c, "from-redis"), R::bulk("hello"));
    assert_eq!(bulk(&mut c, "n"), R::bulk("12345"));
}

#[test]
fn a_successful_bgsave_after_a_failed_one_lets_writes_in_again() {
    let s = TestServer::start(FAILING_BGSAVE);
    let mut c = s.conn();
    fail_a_bgsave(&s, &mut c);
    assert!(c.cmd("SET a 1").err_text().starts_with("MISCONF"));
    // The save's directory appears: the next BGSAVE succeeds and writes are served.
    std::fs::create_dir(s.dir.path().join("missing")).unwrap();
    assert_eq!(
        c.cmd("BGSAVE"),
        R::Simple("Background saving started".into())
    );
    assert!(wait_until(Duration::from_secs(10), || s
        .stdout()
        .contains("Background saving terminated with success")));
    assert_eq!(c.cmd("SET a 1"), R::ok());
    fail_a_bgsave_again(&s, &mut c);
    assert!(c.cmd("SET b 2").err_text().starts_with("MISCONF"));
}

/// Removes the save's directory again and waits for a second BGSAVE failure.
fn fail_a_bgsave_again(s: &TestServer, c: &mut Conn) {
    std::fs::remove_dir_all(s.dir.path().join("missing")).unwrap();
    assert_eq!(
        c.cmd("BGSAVE"),
        R::Simple("Background saving started".into())
    );
    assert!(wait_until(Duration::from_secs(10), || s
        .stdout()
        .matches("Background saving error")
        .count()
        == 2));
}

#[test]
fn failed_bgsave_stops_writes_with_misconf() {
    let s = TestServer::start(FAILING_BGSAVE);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET a 1"), R::ok());
    fail_a_bgsave(&s, &mut c);
    let r = c.cmd("SET b 2");
    assert!(
        r.err_text()
            .starts_with("MISCONF Redis is configured to save RDB snapshots"),
        "{r:?}"
    );
    // Reads still work.
    assert_eq!(c.cmd("GET a"), R::bulk("1"));
    // No temp file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(s.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("temp-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn debug_reload_saves_and_reloads_the_same_dataset() {
    let s = TestServer::start(&["--enable-debug-command", "yes", "--save", ""]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET a 1"), R::ok());
    assert_eq!(c.cmd("RPUSH l x y z"), R::Int(3));
    assert_eq!(c.cmd("HSET h f v"), R::Int(1));
    let before = c.cmd("DEBUG DIGEST");
    assert_eq!(c.cmd("DEBUG RELOAD"), R::ok());
    assert_eq!(c.cmd("DEBUG DIGEST"), before);
    assert_eq!(c.cmd("DBSIZE"), R::Int(3));
    assert!(s.dir.path().join("dump.rdb").exists());
}

/// FLUSHALL on a server in `dir` with save points: the files and persistence fields
/// right after it, and after a BGSAVE slowed to a crawl is interrupted by it.
fn flushall_persistence(port: u16, dir: &Path) -> Vec<String> {
    let mut c = Conn::connect(port);
    let field = |c: &mut Conn, f: &str| common::info_field(c, "persistence", f).unwrap_or_default();
    let mut seen = Vec::new();
    assert_eq!(c.cmd("SET a b"), R::ok());
    assert_eq!(c.cmd("FLUSHALL"), R::ok());
    seen.push(format!(
        "dump.rdb after FLUSHALL: {}",
        dir.join("dump.rdb").exists()
    ));
    seen.push(format!(
        "changes: {}",
        field(&mut c, "rdb_changes_since_last_save")
    ));
    // A BGSAVE of 2,000 keys at 1 ms a key, interrupted.
    assert_eq!(c.cmd_args(&[b"CONFIG", b"SET", b"save", b""]), R::ok());
    assert_eq!(c.cmd("DEBUG POPULATE 2000"), R::ok());
    assert_eq!(c.cmd("CONFIG SET rdb-key-save-delay 1000"), R::ok());
    assert!(matches!(c.cmd("BGSAVE"), R::Simple(_)));
    assert_eq!(field(&mut c, "rdb_bgsave_in_progress"), "1");
    assert_eq!(c.cmd("FLUSHALL"), R::ok());
    let ended = wait_until(Duration::from_secs(1), || {
        field(&mut c, "rdb_bgsave_in_progress") == "0"
    });
    seen.push(format!("BGSAVE ended within 1 s: {ended}"));
    seen.push(format!(
        "status: {}",
        field(&mut c, "rdb_last_bgsave_status")
    ));
    seen.push(format!("still writable: {:?}", c.cmd("SET x y")));
    seen
}

#[test]
fn flushall_saves_at_once_and_kills_a_running_bgsave_like_redis() {
    // Without the save, a restart brought the flushed keys back from the old file.
    let s = TestServer::start(&["--save", "3600 1", "--enable-debug-command", "yes"]);
    let ours = flushall_persistence(s.port, s.dir.path());
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = common::RealRedis::start(dir.path(), "dump.rdb", &["--save", "3600 1"]);
    let theirs = flushall_persistence(redis.port, dir.path());
    assert_eq!(ours, theirs);
    assert_eq!(ours[0], "dump.rdb after FLUSHALL: true");
    assert_eq!(ours[2], "BGSAVE ended within 1 s: true");
}

/// With save points FLUSHALL saves at once, which resets the change counter;
/// it still reaches the replicas (and the AOF), on empty databases too, as in
/// Redis 7.0.
#[test]
fn flushall_with_save_points_is_still_propagated_like_redis() {
    let run = |port: u16| -> Vec<String> {
        let mut repl = common::attach_replica(port);
        let mut c = Conn::connect(port);
        for cmd in [
            "SET key value",
            "FLUSHDB",
            "SET key value2",
            "FLUSHALL",
            "FLUSHALL",
            "FLUSHDB",
            "SET done 1",
        ] {
            assert_eq!(c.cmd(cmd), R::ok(), "{cmd}");
        }
        common::propagated(&mut repl)
    };
    let s = TestServer::start(&["--save", "3600 1"]);
    let ours = run(s.port);
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = common::RealRedis::start(dir.path(), "dump.rdb", &["--save", "3600 1"]);
    let theirs = run(redis.port);
    assert_eq!(
        theirs.iter().filter(|l| l.as_str() == "FLUSHALL").count(),
        2,
        "{theirs:?}"
    );
    assert_eq!(ours, theirs);
}
