//! AOF (multi-part, Redis 7.0 layout): crash safety, truncated tails, rewrite.

mod common;

use bytes::Bytes;
use common::{b, info_field, server_bin, wait_until, Conn, TestServer, R};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tandem_server::db::Db;
use tandem_server::types::Value;

const AOF_ALWAYS: &[&str] = &[
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--save",
    "",
];

/// SIGKILL, keeping the directory.
fn crash(mut s: TestServer) -> tempfile::TempDir {
    let _ = s.child.kill();
    let _ = s.child.wait();
    std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap())
}

fn write_keys(c: &mut Conn, prefix: &str, n: usize) {
    for i in 0..n {
        c.send(&[
            b"SET",
            format!("{prefix}{i}").as_bytes(),
            format!("v{i}").as_bytes(),
        ]);
    }
    for _ in 0..n {
        assert_eq!(c.read(), R::ok());
    }
}

fn assert_keys(c: &mut Conn, prefix: &str, n: usize) {
    for i in 0..n {
        assert_eq!(
            c.cmd(&format!("GET {prefix}{i}")),
            R::bulk(&format!("v{i}")),
            "{prefix}{i}"
        );
    }
}

fn aof_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("appendonlydir")
}

/// Runs the server expecting it to refuse to start; returns its log.
fn start_fails(dir: &Path, extra: &[&str]) -> String {
    let port = common::free_port().to_string();
    let out = Command::new(server_bin())
        .args(["--bind", "127.0.0.1", "--port", &port])
        .args(["--dir", dir.to_str().unwrap()])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "server should have refused to start");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn always_fsync_loses_no_acknowledged_write_on_kill_9() {
    let s = TestServer::start(AOF_ALWAYS);
    assert!(s
        .stdout()
        .contains("Creating AOF base file appendonly.aof.1.base.rdb on server start"));
    assert!(s
        .stdout()
        .contains("Creating AOF incr file appendonly.aof.1.incr.aof on server start"));
    let mut c = s.conn();
    write_keys(&mut c, "k", 500);
    c.cmd_args(&[b"SET", b"bin", b"\0\r\n$3\r\n*"]);
    let dir = crash(s);
    let manifest =
        std::fs::read_to_string(aof_dir(dir.path()).join("appendonly.aof.manifest")).unwrap();
    assert_eq!(
        manifest,
        "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
    let s = TestServer::start_in(dir, AOF_ALWAYS);
    let mut c = s.conn();
    assert_keys(&mut c, "k", 500);
    assert_eq!(c.cmd("GET bin"), R::Bulk(b"\0\r\n$3\r\n*".to_vec()));
    let log = s.stdout();
    assert!(
        log.contains("Opening AOF incr file appendonly.aof.1.incr.aof on server start"),
        "{log}"
    );
    assert!(
        log.contains("DB loaded from incr file appendonly.aof.1.incr.aof"),
        "{log}"
    );
}

#[test]
fn everysec_keeps_acknowledged_writes_across_kill_9() {
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
    ];
    let s = TestServer::start(&args);
    write_keys(&mut s.conn(), "e", 300);
    let dir = crash(s);
    let s = TestServer::start_in(dir, &args);
    assert_keys(&mut s.conn(), "e", 300);
}

#[test]
fn truncated_tail_is_cut_and_loaded_with_a_log_line() {
    let s = TestServer::start(AOF_ALWAYS);
    write_keys(&mut s.conn(), "t", 20);
    let dir = crash(s);
    let incr = aof_dir(dir.path()).join("appendonly.aof.1.incr.aof");
    let good_len = std::fs::metadata(&incr).unwrap().len();
    let mut data = std::fs::read(&incr).unwrap();
    data.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$4\r\ntorn\r\n$5\r\nva");
    std::fs::write(&incr, &data).unwrap();

    // aof-load-truncated no: refuse.
    let mut no = AOF_ALWAYS.to_vec();
    no.extend(["--aof-load-truncated", "no"]);
    let log = start_fails(dir.path(), &no);
    assert!(
        log.contains("Unexpected end of file reading the append only file"),
        "{log}"
    );

    let s = TestServer::start_in(dir, AOF_ALWAYS);
    let mut c = s.conn();
    assert_keys(&mut c, "t", 20);
    assert_eq!(c.cmd("GET torn"), R::Nil);
    let log = s.stdout();
    assert!(
        log.contains(
            "!!! Warning: short read while loading the AOF file appendonly.aof.1.incr.aof!!!"
        ),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "!!! Truncating the AOF appendonly.aof.1.incr.aof at offset {good_len} !!!"
        )),
        "{log}"
    );
    assert!(log.contains(
        "AOF appendonly.aof.1.incr.aof loaded anyway because aof-load-truncated is enabled"
    ));
    // New writes append after the cut point and survive another crash.
    assert_eq!(c.cmd("SET after cut"), R::ok());
    let dir = crash(s);
    let s = TestServer::start_in(dir, AOF_ALWAYS);
    assert_eq!(s.conn().cmd("GET after"), R::bulk("cut"));
}

#[test]
fn unfinished_multi_is_reverted() {
    let s = TestServer::start(AOF_ALWAYS);
    write_keys(&mut s.conn(), "m", 5);
    let dir = crash(s);
    let incr = aof_dir(dir.path()).join("appendonly.aof.1.incr.aof");
    let mut data = std::fs::read(&incr).unwrap();
    data.extend_from_slice(b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$2\r\nin\r\n$5\r\nmulti\r\n");
    std::fs::write(&incr, &data).unwrap();
    let s = TestServer::start_in(dir, AOF_ALWAYS);
    let mut c = s.conn();
    assert_keys(&mut c, "m", 5);
    assert_eq!(c.cmd("GET in"), R::Nil);
    assert!(s
        .stdout()
        .contains("Revert incomplete MULTI/EXEC transaction in AOF file"));
}

#[test]
fn corrupt_middle_is_refused() {
    let s = TestServer::start(AOF_ALWAYS);
    write_keys(&mut s.conn(), "c", 10);
    let dir = crash(s);
    let incr = aof_dir(dir.path()).join("appendonly.aof.1.incr.aof");
    let data = std::fs::read(&incr).unwrap();
    let mut bad = data[..data.len() / 2].to_vec();
    let cut = bad.windows(2).rposition(|w| w == b"\r\n").unwrap() + 2;
    bad.truncate(cut);
    bad.extend_from_slice(b"garbage here\r\n");
    bad.extend_from_slice(&data[cut..]);
    std::fs::write(&incr, &bad).unwrap();
    let log = start_fails(dir.path(), AOF_ALWAYS);
    assert!(
        log.contains("Bad file format reading the append only file"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(&incr).unwrap(),
        bad,
        "file must be left as is"
    );
}

#[test]
fn bgrewriteaof_rewrites_base_while_writes_continue() {
    let s = TestServer::start(AOF_ALWAYS);
    let mut c = s.conn();
    write_keys(&mut c, "a", 300);
    // Overwrite keys so the rewrite actually shrinks the log.
    write_keys(&mut c, "a", 300);
    assert_eq!(
        c.cmd("BGREWRITEAOF"),
        R::Simple("Background append only file rewriting started".into())
    );
    write_keys(&mut c, "b", 100);
    assert!(wait_until(Duration::from_secs(10), || s
        .stdout()
        .contains("Background AOF rewrite finished successfully")));
    write_keys(&mut c, "c", 50);
    let dir = crash(s);
    let ad = aof_dir(dir.path());
    let manifest = std::fs::read_to_string(ad.join("appendonly.aof.manifest")).unwrap();
    assert_eq!(
        manifest,
        "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
    );
    assert!(!ad.join("appendonly.aof.1.base.rdb").exists());
    assert!(!ad.join("appendonly.aof.1.incr.aof").exists());
    let s = TestServer::start_in(dir, AOF_ALWAYS);
    let mut c = s.conn();
    assert_keys(&mut c, "a", 300);
    assert_keys(&mut c, "b", 100);
    assert_keys(&mut c, "c", 50);
    assert!(s
        .stdout()
        .contains("DB loaded from base file appendonly.aof.2.base.rdb"));
}

#[test]
fn aof_wins_over_dump_rdb() {
    let dir = tempfile::tempdir().unwrap();
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    dbs[0].set(
        Bytes::from("fromrdb"),
        Value::Str(Bytes::from("x").into()),
        0,
    );
    let mut f = std::fs::File::create(dir.path().join("dump.rdb")).unwrap();
    tandem_server::rdb::save(&dbs, &Default::default(), &mut f).unwrap();
    drop(f);
    let s = TestServer::start_in(dir, AOF_ALWAYS);
    assert_eq!(s.conn().cmd("GET fromrdb"), R::Nil);
}

#[test]
fn automatic_rewrite_on_growth() {
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "no",
        "--save",
        "",
        "--auto-aof-rewrite-min-size",
        "4kb",
        "--auto-aof-rewrite-percentage",
        "100",
    ];
    let s = TestServer::start(&args);
    let mut c = s.conn();
    write_keys(&mut c, "g", 200);
    assert!(
        wait_until(Duration::from_secs(10), || s
            .stdout()
            .contains("Background AOF rewrite finished successfully")),
        "{}",
        s.stdout()
    );
    assert!(s
        .stdout()
        .contains("Starting automatic rewriting of AOF on"));
    let dir = crash(s);
    let s = TestServer::start_in(dir, &args);
    assert_keys(&mut s.conn(), "g", 200);
}

/// Starts the real Redis 7.0.15 in `dir` with the AOF enabled; None if not installed.
fn real_redis_aof(dir: &Path) -> Option<(std::process::Child, u16)> {
    if !Path::new("/usr/bin/redis-server").exists() {
        eprintln!("skipping: redis-server not installed");
        return None;
    }
    let port = common::free_port();
    let child = Command::new("/usr/bin/redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .args(["--dir", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && Conn::connect(port).cmd("PING") == R::Simple("PONG".into())
    });
    assert!(ready, "redis-server did not start");
    Some((child, port))
}

#[test]
fn tandem_aof_loads_in_redis_and_redis_aof_loads_in_tandem() {
    // Tandem writes (base + incr after a rewrite), Redis reads.
    let s = TestServer::start(AOF_ALWAYS);
    let mut c = s.conn();
    write_keys(&mut c, "x", 50);
    assert_eq!(
        c.cmd("BGREWRITEAOF"),
        R::Simple("Background append only file rewriting started".into())
    );
    assert!(wait_until(Duration::from_secs(10), || s
        .stdout()
        .contains("Background AOF rewrite finished successfully")));
    write_keys(&mut c, "y", 50);
    let dir = crash(s);
    let manifest = aof_dir(dir.path()).join("appendonly.aof.manifest");
    if Path::new("/usr/bin/redis-check-aof").exists() {
        let out = Command::new("/usr/bin/redis-check-aof")
            .arg(&manifest)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{text}");
        assert!(text.contains("is valid"), "{text}");
    }
    let Some((mut child, port)) = real_redis_aof(dir.path()) else {
        return;
    };
    let mut r = Conn::connect(port);
    assert_keys(&mut r, "x", 50);
    assert_keys(&mut r, "y", 50);
    // Redis appends to the same AOF; Tandem then loads what Redis wrote.
    write_keys(&mut r, "z", 50);
    assert_eq!(
        r.cmd("BGREWRITEAOF"),
        R::Simple("Background append only file rewriting started".into())
    );
    assert!(wait_until(Duration::from_secs(10), || {
        let m = std::fs::read_to_string(&manifest).unwrap_or_default();
        m.contains("seq 3 type b")
    }));
    write_keys(&mut r, "w", 50);
    let _ = child.kill();
    let _ = child.wait();
    let s = TestServer::start_in(dir, AOF_ALWAYS);
    let mut c = s.conn();
    for p in ["x", "y", "z", "w"] {
        assert_keys(&mut c, p, 50);
    }
}

/// A replica with the AOF on rewrites it after a full sync, as Redis restarts its AOF
/// then: the synced dataset becomes the second base, what the master streams after
/// goes to the incr file that follows it, and a replica killed and started again
/// without its master has both. (Before, the AOF kept describing the dataset from
/// before the sync, and the restart lost everything the sync brought.)
#[test]
fn a_replica_rewrites_its_aof_after_a_full_sync() {
    let master = TestServer::start(&["--save", "", "--repl-diskless-sync-delay", "0"]);
    let mut m = master.conn();
    write_keys(&mut m, "before", 50);
    let target = format!("127.0.0.1 {}", master.port);
    let mut args = AOF_ALWAYS.to_vec();
    args.extend(["--replicaof", &target]);
    let replica = TestServer::start(&args);
    let mut r = replica.conn();
    let limit = Duration::from_secs(30);
    assert!(wait_until(limit, || r.cmd("GET before49") == b("v49")));
    write_keys(&mut m, "after", 10);
    assert!(wait_until(limit, || r.cmd("GET after9") == b("v9")));
    let manifest = replica
        .dir
        .path()
        .join("appendonlydir/appendonly.aof.manifest");
    assert!(
        wait_until(limit, || {
            std::fs::read_to_string(&manifest).unwrap_or_default()
                == "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n"
                && info_field(&mut r, "persistence", "aof_rewrite_in_progress").as_deref()
                    == Some("0")
        }),
        "{:?}",
        std::fs::read_to_string(&manifest)
    );
    let dir = crash(replica);
    let restarted = TestServer::start_in(dir, AOF_ALWAYS);
    let mut c = restarted.conn();
    assert_eq!(c.cmd("DBSIZE"), R::Int(60));
    assert_eq!(c.cmd("GET before0"), b("v0"));
    assert_eq!(c.cmd("GET after9"), b("v9"));
}
