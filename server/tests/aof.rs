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
    let mut cmd = Command::new(server_bin());
    cmd.args(["--bind", "127.0.0.1", "--port", &port])
        .args(["--dir", dir.to_str().unwrap()])
        .args(extra);
    exits_with_failure(cmd, "server")
}

/// Runs `cmd` to its end (killed after 20 s: a server that did start must not
/// hang the test); asserts it failed and returns its stdout.
fn exits_with_failure(mut cmd: Command, what: &str) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut out);
    }
    assert!(
        status.is_some_and(|s| !s.success()),
        "{what} should have refused to start:\n{out}"
    );
    out
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

// ---------------------------------------------------------------------------------------
// The window between a replica's full sync and the end of the AOF rewrite that follows
// it, run against Tandem and against Debian's redis-server 7.0.15 (same scenario, same
// expected observations).

/// Which server plays master and replica.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Impl {
    Tandem,
    Redis,
}

/// A server process of either kind in a directory the test keeps (for restarts),
/// logging to `node.log` there; killed by pid when dropped.
struct Node {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

const REDIS_BIN: &str = "/usr/bin/redis-server";

impl Node {
    fn start(kind: Impl, dir: &Path, args: &[&str]) -> Node {
        let bin = match kind {
            Impl::Tandem => server_bin(),
            Impl::Redis => REDIS_BIN.into(),
        };
        for _ in 0..5 {
            let port = common::free_port();
            let child = Command::new(&bin)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--dir", dir.to_str().unwrap(), "--logfile", "node.log"])
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut n = Node {
                child,
                port,
                dir: dir.to_path_buf(),
            };
            let up = wait_until(Duration::from_secs(10), || {
                matches!(n.child.try_wait(), Ok(Some(_)))
                    || (std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                        && Conn::connect(port).cmd("PING") == R::Simple("PONG".into()))
            });
            if up && matches!(n.child.try_wait(), Ok(None)) {
                return n;
            }
        }
        panic!("{kind:?} did not start in {dir:?}");
    }

    fn conn(&self) -> Conn {
        Conn::connect(self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// Pids of the AOF rewrite children started so far, in order (from the log).
    fn rewrite_pids(&self) -> Vec<u32> {
        self.log()
            .lines()
            .filter_map(|l| {
                l.split("Background append only file rewriting started by pid ")
                    .nth(1)
            })
            .filter_map(|p| p.trim().parse().ok())
            .collect()
    }

    /// SIGKILL, with the rewrite child last started (Redis's outlives its parent).
    fn crash(mut self) {
        let child = self.rewrite_pids().last().copied();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(pid) = child {
            signal(pid, "-KILL");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kill(1) (`libc::kill` would need unsafe code, which is forbidden here).
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn manifest_of(dir: &Path) -> String {
    std::fs::read_to_string(aof_dir(dir).join("appendonly.aof.manifest")).unwrap_or_default()
}

const FIRST_MANIFEST: &str =
    "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";
const SECOND_MANIFEST: &str =
    "file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n";

/// A master holding `new0..new29` and a replica with the AOF on holding `old0..old19`
/// of its own, whose AOF rewrite writes each key `delay_us` slowly; the replica is
/// then pointed at the master and has loaded the master's data.
fn synced_pair(kind: Impl, mdir: &Path, rdir: &Path, delay_us: &str) -> (Node, Node) {
    let master = Node::start(
        kind,
        mdir,
        &["--save", "", "--repl-diskless-sync-delay", "0"],
    );
    write_keys(&mut master.conn(), "new", 30);
    let replica = Node::start(kind, rdir, AOF_ALWAYS);
    let mut r = replica.conn();
    write_keys(&mut r, "old", 20);
    assert_eq!(manifest_of(rdir), FIRST_MANIFEST);
    assert_eq!(
        r.cmd(&format!("CONFIG SET rdb-key-save-delay {delay_us}")),
        R::ok()
    );
    assert_eq!(
        r.cmd(&format!("REPLICAOF 127.0.0.1 {}", master.port)),
        R::ok()
    );
    let limit = Duration::from_secs(30);
    assert!(wait_until(limit, || r.cmd("GET new29") == b("v29")));
    (master, replica)
}

/// Writes `key` on the master and waits until the replica applied it.
fn stream_one(master: &Node, replica: &Node, key: &str) {
    assert_eq!(master.conn().cmd(&format!("SET {key} 1")), R::ok());
    let mut r = replica.conn();
    assert!(wait_until(Duration::from_secs(30), || r
        .cmd(&format!("GET {key}"))
        == b("1")));
}

/// What the crash-in-the-window scenario observed; the same for both servers.
#[derive(Debug, PartialEq)]
struct WindowCrash {
    manifest_in_window: String,
    temp_incr_has_streamed: bool,
    rewrite_in_progress: Option<String>,
    shutdown_reply: R,
    sigterm_refused: bool,
    retried_after_child_killed: bool,
    manifest_after_crash: String,
    restarted_dbsize: R,
    restarted_old0: R,
    restarted_new0: R,
    restarted_streamed: R,
}

fn crash_in_the_window(kind: Impl) -> WindowCrash {
    let (mdir, rdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // 30 keys at 1 s each: the rewrite stays open for the whole test.
    let (master, replica) = synced_pair(kind, mdir.path(), rdir.path(), "1000000");
    let mut r = replica.conn();
    stream_one(&master, &replica, "streamed");
    let manifest_in_window = manifest_of(rdir.path());
    // The heart of it, checked first for a clear message: nothing new is listed yet.
    assert_eq!(manifest_in_window, FIRST_MANIFEST, "{kind:?}");
    let temp =
        std::fs::read(aof_dir(rdir.path()).join("temp-appendonly.aof.incr")).unwrap_or_default();
    let temp_incr_has_streamed = temp.windows(8).any(|w| w == b"streamed");
    let rewrite_in_progress = info_field(&mut r, "persistence", "aof_rewrite_in_progress");

    // A replica writing its first AOF refuses to shut down (SHUTDOWN, and SIGTERM
    // with the default shutdown-on-sigterm).
    let shutdown_reply = r.cmd("SHUTDOWN");
    signal(replica.child.id(), "-TERM");
    let refusals = |n: &Node| n.log().matches("Writing initial AOF, can't exit.").count();
    let sigterm_refused = wait_until(Duration::from_secs(10), || refusals(&replica) == 2)
        && replica.conn().cmd("PING") == R::Simple("PONG".into());

    // A rewrite child that dies is retried, and the manifest is not touched.
    let first = replica.rewrite_pids();
    signal(*first.last().unwrap(), "-KILL");
    let retried_after_child_killed = wait_until(Duration::from_secs(10), || {
        replica.rewrite_pids().len() == first.len() + 1
    }) && info_field(
        &mut replica.conn(),
        "persistence",
        "aof_rewrite_in_progress",
    )
    .as_deref()
        == Some("1");
    stream_one(&master, &replica, "streamed2");

    replica.crash();
    let manifest_after_crash = manifest_of(rdir.path());
    // Started again from its AOF alone (no master): exactly the dataset from before
    // the sync.
    let restarted = Node::start(kind, rdir.path(), AOF_ALWAYS);
    let mut c = restarted.conn();
    WindowCrash {
        manifest_in_window,
        temp_incr_has_streamed,
        rewrite_in_progress,
        shutdown_reply,
        sigterm_refused,
        retried_after_child_killed,
        manifest_after_crash,
        restarted_dbsize: c.cmd("DBSIZE"),
        restarted_old0: c.cmd("GET old0"),
        restarted_new0: c.cmd("GET new0"),
        restarted_streamed: c.cmd("GET streamed"),
    }
}

fn redis_installed() -> bool {
    let ok = Path::new(REDIS_BIN).exists();
    if !ok {
        eprintln!("skipping the Redis half: {REDIS_BIN} not installed");
    }
    ok
}

/// After a full sync, until the rewrite that makes the synced dataset the AOF's base
/// completes, the manifest names only the files from before the sync, and what the
/// master streams goes to `temp-appendonly.aof.incr`. A crash then reloads the old
/// dataset, never the old base with the streamed commands on top. SHUTDOWN and
/// SIGTERM are refused meanwhile, and a killed rewrite child is retried. Redis
/// 7.0.15 does the same.
#[test]
fn a_replica_crashed_before_its_post_sync_rewrite_ends_reloads_its_old_dataset() {
    let ours = crash_in_the_window(Impl::Tandem);
    let expected = WindowCrash {
        manifest_in_window: FIRST_MANIFEST.into(),
        temp_incr_has_streamed: true,
        rewrite_in_progress: Some("1".into()),
        shutdown_reply: R::Err("ERR Errors trying to SHUTDOWN. Check logs.".into()),
        sigterm_refused: true,
        retried_after_child_killed: true,
        manifest_after_crash: FIRST_MANIFEST.into(),
        restarted_dbsize: R::Int(20),
        restarted_old0: b("v0"),
        restarted_new0: R::Nil,
        restarted_streamed: R::Nil,
    };
    assert_eq!(ours, expected);
    if redis_installed() {
        assert_eq!(crash_in_the_window(Impl::Redis), expected);
    }
}

/// What the rewrite-completes scenario observed.
#[derive(Debug, PartialEq)]
struct WindowClosed {
    in_progress_while_streaming: Option<String>,
    manifest: String,
    temp_incr_left: bool,
    restarted_dbsize: R,
    restarted: Vec<R>,
}

fn rewrite_completes_then_crash(kind: Impl) -> WindowClosed {
    let (mdir, rdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // 30 keys at 0.1 s each: a 3 s window.
    let (master, replica) = synced_pair(kind, mdir.path(), rdir.path(), "100000");
    let mut r = replica.conn();
    let in_progress_while_streaming = info_field(&mut r, "persistence", "aof_rewrite_in_progress");
    stream_one(&master, &replica, "during");
    let done = wait_until(Duration::from_secs(30), || {
        manifest_of(rdir.path()) == SECOND_MANIFEST
            && info_field(&mut r, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
    });
    assert!(done, "{}", manifest_of(rdir.path()));
    stream_one(&master, &replica, "after");
    let ad = aof_dir(rdir.path());
    let temp_incr_left = ad.join("temp-appendonly.aof.incr").exists();
    replica.crash();
    let restarted = Node::start(kind, rdir.path(), AOF_ALWAYS);
    let mut c = restarted.conn();
    WindowClosed {
        in_progress_while_streaming,
        manifest: manifest_of(rdir.path()),
        temp_incr_left,
        restarted_dbsize: c.cmd("DBSIZE"),
        restarted: ["new0", "new29", "during", "after", "old0"]
            .iter()
            .map(|k| c.cmd(&format!("GET {k}")))
            .collect(),
    }
}

/// Once the post-sync rewrite completes, the new base and the incr file that holds
/// what was streamed meanwhile are in the manifest together; a crash after that
/// reloads the synced data plus every streamed write (and nothing from before the
/// sync). Redis 7.0.15 does the same.
#[test]
fn after_the_post_sync_rewrite_a_crashed_replica_reloads_the_synced_and_streamed_data() {
    let expected = WindowClosed {
        in_progress_while_streaming: Some("1".into()),
        manifest: SECOND_MANIFEST.into(),
        temp_incr_left: false,
        restarted_dbsize: R::Int(32),
        restarted: vec![b("v0"), b("v29"), b("1"), b("1"), R::Nil],
    };
    assert_eq!(rewrite_completes_then_crash(Impl::Tandem), expected);
    if redis_installed() {
        assert_eq!(rewrite_completes_then_crash(Impl::Redis), expected);
    }
}

/// What the second-sync scenario observed.
#[derive(Debug, PartialEq)]
struct SecondSync {
    killed_first_child: bool,
    manifest_after_second_sync: String,
    limit_logged: bool,
    limited_info: Vec<Option<String>>,
    bgrewriteaof: R,
    manifest_at_end: String,
    restarted_dbsize: R,
    restarted: Vec<R>,
}

fn second_sync_in_the_window(kind: Impl) -> SecondSync {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (_first, replica) = synced_pair(kind, dirs[0].path(), dirs[1].path(), "1000000");
    let mut r = replica.conn();
    // Another master (another history): a second full sync while the first
    // post-sync rewrite runs.
    let other = Node::start(kind, dirs[2].path(), &["--save", ""]);
    write_keys(&mut other.conn(), "third", 10);
    let first_child = replica.rewrite_pids()[0];
    assert_eq!(
        r.cmd(&format!("REPLICAOF 127.0.0.1 {}", other.port)),
        R::ok()
    );
    assert!(wait_until(Duration::from_secs(30), || r.cmd("GET third9")
        == b("v9")
        && replica.rewrite_pids().len() == 2));
    let killed_first_child = replica
        .log()
        .contains(&format!("Killing running AOF rewrite child: {first_child}"));
    let manifest_after_second_sync = manifest_of(dirs[1].path());

    // Three rewrite children die in a row: the cron stops retrying for a minute,
    // and says so in INFO.
    for n in 2..5 {
        signal(replica.rewrite_pids()[n - 1], "-KILL");
        if n < 4 {
            assert!(wait_until(Duration::from_secs(10), || replica
                .rewrite_pids()
                .len()
                == n + 1));
        }
    }
    let limit_logged = wait_until(Duration::from_secs(10), || {
        replica.log().contains(
            "Background AOF rewrite has repeatedly failed and triggered the limit, will retry in 1 minutes",
        )
    });
    let limited_info = [
        "aof_rewrite_in_progress",
        "aof_rewrite_scheduled",
        "aof_last_bgrewrite_status",
        "aof_rewrites_consecutive_failures",
    ]
    .iter()
    .map(|f| info_field(&mut r, "persistence", f))
    .collect();
    stream_one(&other, &replica, "limited");
    // BGREWRITEAOF is not held back by the limit.
    assert_eq!(r.cmd("CONFIG SET rdb-key-save-delay 0"), R::ok());
    let bgrewriteaof = r.cmd("BGREWRITEAOF");
    assert!(wait_until(Duration::from_secs(30), || {
        manifest_of(dirs[1].path()) == SECOND_MANIFEST
            && info_field(&mut r, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
    }));
    let manifest_at_end = manifest_of(dirs[1].path());
    replica.crash();
    let restarted = Node::start(kind, dirs[1].path(), AOF_ALWAYS);
    let mut c = restarted.conn();
    SecondSync {
        killed_first_child,
        manifest_after_second_sync,
        limit_logged,
        limited_info,
        bgrewriteaof,
        manifest_at_end,
        restarted_dbsize: c.cmd("DBSIZE"),
        restarted: ["third0", "limited", "new0", "old0"]
            .iter()
            .map(|k| c.cmd(&format!("GET {k}")))
            .collect(),
    }
}

/// A second full sync while the first post-sync rewrite runs kills that rewrite and
/// starts over from the new data; the manifest keeps naming the pre-sync files until
/// a rewrite completes. Failed rewrites are retried by the cron until 3 in a row
/// fail, then after 1 minute (INFO shows it scheduled); BGREWRITEAOF does not wait.
/// Redis 7.0.15 does the same.
#[test]
fn a_second_full_sync_during_the_post_sync_rewrite_starts_it_over() {
    let expected = SecondSync {
        killed_first_child: true,
        manifest_after_second_sync: FIRST_MANIFEST.into(),
        limit_logged: true,
        limited_info: vec![
            Some("0".into()),
            Some("1".into()),
            Some("err".into()),
            Some("3".into()),
        ],
        bgrewriteaof: R::Simple("Background append only file rewriting started".into()),
        manifest_at_end: SECOND_MANIFEST.into(),
        restarted_dbsize: R::Int(11),
        restarted: vec![b("v0"), b("1"), R::Nil, R::Nil],
    };
    assert_eq!(second_sync_in_the_window(Impl::Tandem), expected);
    if redis_installed() {
        assert_eq!(second_sync_in_the_window(Impl::Redis), expected);
    }
}

/// What SHUTDOWN FORCE in the window observed.
#[derive(Debug, PartialEq)]
struct ForcedExit {
    exited: Option<i32>,
    logged: bool,
    manifest: String,
    restarted_dbsize: R,
    restarted_new0: R,
}

fn shutdown_force_in_the_window(kind: Impl) -> ForcedExit {
    let (mdir, rdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (master, mut replica) = synced_pair(kind, mdir.path(), rdir.path(), "1000000");
    stream_one(&master, &replica, "streamed");
    let child = replica.rewrite_pids().last().copied();
    replica.conn().send(&[b"SHUTDOWN", b"FORCE"]);
    let mut status = None;
    wait_until(Duration::from_secs(10), || {
        status = replica.child.try_wait().ok().flatten();
        status.is_some()
    });
    if let Some(pid) = child {
        signal(pid, "-KILL");
    }
    let logged = replica.log().contains("Writing initial AOF. Exit anyway.");
    let restarted = Node::start(kind, rdir.path(), AOF_ALWAYS);
    let mut c = restarted.conn();
    ForcedExit {
        exited: status.and_then(|s| s.code()),
        logged,
        manifest: manifest_of(rdir.path()),
        restarted_dbsize: c.cmd("DBSIZE"),
        restarted_new0: c.cmd("GET new0"),
    }
}

/// SHUTDOWN FORCE while the post-sync rewrite runs exits anyway (the rewrite is
/// killed); the AOF left is the one from before the sync. Redis 7.0.15 does the same.
#[test]
fn shutdown_force_during_the_post_sync_rewrite_exits_with_the_old_aof() {
    let expected = ForcedExit {
        exited: Some(0),
        logged: true,
        manifest: FIRST_MANIFEST.into(),
        restarted_dbsize: R::Int(20),
        restarted_new0: R::Nil,
    };
    assert_eq!(shutdown_force_in_the_window(Impl::Tandem), expected);
    if redis_installed() {
        assert_eq!(shutdown_force_in_the_window(Impl::Redis), expected);
    }
}

/// Waits until no AOF rewrite runs.
fn wait_rewrite_done(c: &mut Conn) {
    assert!(wait_until(Duration::from_secs(10), || {
        info_field(c, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
            && info_field(c, "persistence", "aof_rewrite_scheduled").as_deref() == Some("0")
    }));
}

#[test]
fn config_set_appendonly_turns_the_aof_on_and_off_at_runtime() {
    let s = TestServer::start(&["--appendfsync", "always", "--save", ""]);
    let mut c = s.conn();
    write_keys(&mut c, "before", 50);
    assert_eq!(
        info_field(&mut c, "persistence", "aof_enabled").as_deref(),
        Some("0")
    );
    assert_eq!(c.cmd("CONFIG SET appendonly yes"), R::ok());
    assert_eq!(
        info_field(&mut c, "persistence", "aof_enabled").as_deref(),
        Some("1")
    );
    // Written while the first base is being made, and after it.
    write_keys(&mut c, "during", 50);
    wait_rewrite_done(&mut c);
    write_keys(&mut c, "after", 50);
    let manifest = std::fs::read_to_string(aof_dir(s.dir.path()).join("appendonly.aof.manifest"))
        .expect("manifest written once the base is done");
    assert!(
        manifest.contains("type b") && manifest.contains("type i"),
        "{manifest}"
    );
    // Restart from the AOF alone (no RDB is written: save is off).
    let dir = crash(s);
    let s = TestServer::start_in(dir, &["--appendonly", "yes", "--save", ""]);
    let mut c = s.conn();
    for p in ["before", "during", "after"] {
        assert_keys(&mut c, p, 50);
    }
    // Off: nothing more is logged, the files stay; on again: a new base.
    assert_eq!(c.cmd("CONFIG SET appendonly no"), R::ok());
    assert_eq!(
        info_field(&mut c, "persistence", "aof_enabled").as_deref(),
        Some("0")
    );
    write_keys(&mut c, "off", 10);
    let dir = crash(s);
    let s = TestServer::start_in(dir, &["--appendonly", "yes", "--save", ""]);
    let mut c = s.conn();
    assert_keys(&mut c, "after", 50);
    assert_eq!(c.cmd("EXISTS off0"), R::Int(0));
    assert_eq!(c.cmd("CONFIG SET appendonly no"), R::ok());
    write_keys(&mut c, "off", 10);
    assert_eq!(c.cmd("CONFIG SET appendonly yes"), R::ok());
    wait_rewrite_done(&mut c);
    let dir = crash(s);
    let s = TestServer::start_in(dir, &["--appendonly", "yes", "--save", ""]);
    assert_keys(&mut s.conn(), "off", 10);
}

#[test]
fn config_set_appendonly_yes_fails_like_redis_when_the_dir_is_unusable() {
    let s = TestServer::start(&["--save", ""]);
    let mut c = s.conn();
    // A file where the AOF directory should be.
    std::fs::write(aof_dir(s.dir.path()), b"not a directory").unwrap();
    assert_eq!(
        c.cmd("CONFIG SET appendonly yes"),
        R::Err(
            "ERR CONFIG SET failed (possibly related to argument 'appendonly') - Unable to turn on AOF. Check server logs."
                .into()
        )
    );
    assert_eq!(
        c.cmd("CONFIG GET appendonly"),
        R::Arr(vec![R::bulk("appendonly"), R::bulk("no")])
    );
    assert_eq!(c.cmd("SET k v"), R::ok());
}

/// An AOF's RDB base is loaded with the keys it holds already expired: the
/// commands after it were logged against them (Redis 7.0 loads the base as it
/// is). A key made persistent after the rewrite survives its old expiry; a key
/// appended to before expiring expires with the value it had, not a fresh one.
#[test]
fn an_aof_base_keeps_its_expired_keys_for_the_commands_after_it() {
    let scenario = |start: &dyn Fn() -> Box<dyn FnOnce() -> Conn>| -> Vec<R> {
        let mut c = start()();
        assert_eq!(c.cmd("SET k v PX 1000"), R::ok());
        assert_eq!(c.cmd("SET a v PX 1000"), R::ok());
        assert!(matches!(c.cmd("BGREWRITEAOF"), R::Simple(_)));
        assert!(wait_until(Duration::from_secs(10), || {
            info_field(&mut c, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
                && info_field(&mut c, "persistence", "aof_rewrite_scheduled").as_deref()
                    == Some("0")
        }));
        assert_eq!(c.cmd("PERSIST k"), R::Int(1));
        assert_eq!(c.cmd("APPEND a x"), R::Int(2));
        drop(c);
        std::thread::sleep(Duration::from_millis(1200));
        let mut c = start()();
        vec![
            c.cmd("GET k"),
            c.cmd("PTTL k"),
            c.cmd("GET a"),
            c.cmd("EXISTS a"),
        ]
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = std::cell::RefCell::new(None::<common::RealRedis>);
    let theirs = scenario(&|| {
        // The second start stops the first (its AOF is fsynced every write).
        drop(redis.borrow_mut().take());
        let r = common::RealRedis::start(
            dir.path(),
            "dump.rdb",
            &["--appendonly", "yes", "--appendfsync", "always"],
        );
        let port = r.port;
        *redis.borrow_mut() = Some(r);
        Box::new(move || Conn::connect(port))
    });
    let ours_dir = std::cell::RefCell::new(Some(tempfile::tempdir().expect("tempdir")));
    let ours = std::cell::RefCell::new(None::<TestServer>);
    let tandem = scenario(&|| {
        let dir = match ours.borrow_mut().take() {
            Some(s) => crash(s),
            None => ours_dir.borrow_mut().take().expect("dir"),
        };
        let s = TestServer::start_in(dir, AOF_ALWAYS);
        let port = s.port;
        *ours.borrow_mut() = Some(s);
        Box::new(move || Conn::connect(port))
    });
    assert_eq!(theirs, vec![R::bulk("v"), R::Int(-1), R::Nil, R::Int(0)]);
    assert_eq!(tandem, theirs);
}

/// Runs Debian's redis-server expecting it to refuse to start; returns its log.
fn redis_start_fails(dir: &Path, extra: &[&str]) -> String {
    let port = common::free_port().to_string();
    let mut cmd = Command::new("/usr/bin/redis-server");
    cmd.args(["--bind", "127.0.0.1", "--port", &port, "--save", ""])
        .args(["--dir", dir.to_str().unwrap()])
        .args(extra);
    exits_with_failure(cmd, "redis-server")
}

/// Manifests Redis 7.0 refuses to start with, and the reason it logs: Tandem
/// refuses each with the same reason (it used to skip blank lines and accept
/// short, long, odd and empty ones).
#[test]
fn malformed_manifests_are_refused_with_redis_reasons() {
    let good = "file appendonly.aof.1.base.rdb seq 1 type b\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{good}\nfile appendonly.aof.1.incr.aof seq 1 type i\n"),
            "Invalid AOF manifest file format",
        ),
        (
            format!("{good}file appendonly.aof.1.incr.aof type i\n"),
            "Invalid AOF manifest file format",
        ),
        (
            format!("{good}file appendonly.aof.1.incr.aof seq 1 type i extra\n"),
            "Invalid AOF manifest file format",
        ),
        (
            format!("{good}file appendonly.aof.1.incr.aof seq 1 type\n"),
            "Invalid AOF manifest file format",
        ),
        (
            format!("{good}file appendonly.aof.1.incr.aof seq 1 typ i\n"),
            "Invalid AOF manifest file format",
        ),
        (
            format!("{good}file {} seq 1 type i\n", "a".repeat(1100)),
            "The AOF manifest file contains too long line",
        ),
        (String::new(), "Found an empty AOF manifest"),
        (
            format!("{good}file appendonly.aof.1.incr.aof seq 1 type x\n"),
            "Unknown AOF file type",
        ),
        (
            format!("{good}FILE appendonly.aof.2.base.rdb SEQ 2 TYPE b\n"),
            "Found duplicate base file information",
        ),
    ];
    for (manifest, reason) in cases {
        let mut logs = Vec::new();
        for redis in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let aof = aof_dir(dir.path());
            std::fs::create_dir_all(&aof).unwrap();
            std::fs::write(aof.join("appendonly.aof.manifest"), &manifest).unwrap();
            std::fs::write(aof.join("appendonly.aof.1.base.rdb"), b"").unwrap();
            std::fs::write(aof.join("appendonly.aof.1.incr.aof"), b"").unwrap();
            let log = if redis {
                redis_start_fails(dir.path(), &["--appendonly", "yes"])
            } else {
                start_fails(dir.path(), &["--appendonly", "yes"])
            };
            assert_eq!(
                log.matches(reason).count(),
                1,
                "redis: {redis} {manifest:?}\n{log}"
            );
            logs.push(log);
        }
    }
}

/// Redis 7.0's upgrade from a Redis 6 single-file AOF: `appendonly.aof` in `dir`
/// becomes the base of a new AOF directory (seq 1), its data is served, and the
/// next rewrite replaces it. Tandem used to ignore the file and start empty.
#[test]
fn an_old_style_aof_file_is_upgraded_into_the_aof_directory_like_redis() {
    // One file of plain commands, and one with an RDB preamble (Redis 6's default).
    let rdb_dir = tempfile::tempdir().unwrap();
    {
        let s = TestServer::start_in(
            tempfile::tempdir().unwrap(),
            &["--dbfilename", "pre.rdb", "--save", ""],
        );
        let mut c = s.conn();
        assert_eq!(c.cmd("SET k0 v0"), R::ok());
        assert_eq!(c.cmd("SAVE"), R::ok());
        std::fs::copy(s.dir.path().join("pre.rdb"), rdb_dir.path().join("pre.rdb")).unwrap();
    }
    let commands =
        b"*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$2\r\nv1\r\n*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$2\r\nv2\r\n";
    let plain = commands.to_vec();
    let mut preamble = std::fs::read(rdb_dir.path().join("pre.rdb")).unwrap();
    preamble.extend_from_slice(commands);
    for old in [plain, preamble] {
        let mut seen = Vec::new();
        for redis in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("appendonly.aof"), &old).unwrap();
            let args = ["--appendonly", "yes", "--appendfsync", "always"];
            let (mut c, _keep): (Conn, Box<dyn std::any::Any>) = if redis {
                let r = common::RealRedis::start(dir.path(), "dump.rdb", &args);
                (r.conn(), Box::new(r))
            } else {
                // Started with its own temp dir, then pointed at this one (last wins).
                let s = TestServer::start_in(
                    tempfile::tempdir().unwrap(),
                    &[&["--dir", dir.path().to_str().unwrap()][..], &args].concat(),
                );
                (s.conn(), Box::new(s))
            };
            let values: Vec<R> = ["k0", "k1", "k2"]
                .iter()
                .map(|k| c.cmd(&format!("GET {k}")))
                .collect();
            let manifest =
                std::fs::read_to_string(aof_dir(dir.path()).join("appendonly.aof.manifest"))
                    .unwrap();
            seen.push((
                values,
                manifest,
                dir.path().join("appendonly.aof").exists(),
                aof_dir(dir.path()).join("appendonly.aof").exists(),
            ));
        }
        assert_eq!(seen[0], seen[1], "tandem, then redis");
        assert_eq!(seen[0].0[1], R::bulk("v1"));
        assert!(!seen[0].2 && seen[0].3, "{:?}", seen[0]);
    }
}

/// An `appendfilename` with spaces: the manifest quotes the file names as Redis
/// does, and the server reads its own manifest back after a rewrite and a restart.
#[test]
fn a_file_name_with_spaces_is_quoted_in_the_manifest_like_redis() {
    let name = "my file.aof";
    let args = ["--appendonly", "yes", "--appendfilename", name];
    let manifest = |dir: &Path, c: &mut Conn| {
        assert_eq!(c.cmd("SET k v"), R::ok());
        assert!(matches!(c.cmd("BGREWRITEAOF"), R::Simple(_)));
        assert!(wait_until(Duration::from_secs(10), || {
            info_field(c, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
                && info_field(c, "persistence", "aof_rewrite_scheduled").as_deref() == Some("0")
        }));
        std::fs::read_to_string(aof_dir(dir).join(format!("{name}.manifest"))).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let redis = common::RealRedis::start(dir.path(), "dump.rdb", &args);
    let theirs = manifest(dir.path(), &mut redis.conn());
    let s = TestServer::start(&args);
    let ours = manifest(s.dir.path(), &mut s.conn());
    assert_eq!(theirs, "file \"my file.aof.2.base.rdb\" seq 2 type b\nfile \"my file.aof.2.incr.aof\" seq 2 type i\n");
    assert_eq!(ours, theirs);
    let s = TestServer::start_in(crash(s), &args);
    assert_eq!(s.conn().cmd("GET k"), R::bulk("v"));
}

/// The AOF directory's file names, sorted, and its manifest.
fn aof_files(dir: &Path) -> (Vec<String>, String) {
    let mut names: Vec<String> = std::fs::read_dir(aof_dir(dir))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    (names, manifest_of(dir))
}

/// The AOF rewrite fields of INFO persistence that do not depend on timing.
fn rewrite_info(c: &mut Conn) -> Vec<(String, Option<String>)> {
    [
        "aof_enabled",
        "aof_rewrite_in_progress",
        "aof_rewrite_scheduled",
        "aof_last_bgrewrite_status",
        "aof_rewrites",
        "aof_rewrites_consecutive_failures",
    ]
    .iter()
    .map(|k| (k.to_string(), info_field(c, "persistence", k)))
    .collect()
}

/// BGREWRITEAOF with `appendonly no` runs in Redis 7.0: a base in the AOF directory
/// with a manifest naming only it (a second one replaces it), counted in INFO; DEBUG
/// LOADAOF loads it; CONFIG SET appendonly yes then writes the next base after it,
/// with its incr file. Every step is compared with redis-server 7.0.15.
#[test]
fn bgrewriteaof_with_the_aof_off_writes_a_base_like_redis() {
    if !redis_installed() {
        return;
    }
    let scenario = |c: &mut Conn, dir: &Path| -> Vec<String> {
        let mut seen = Vec::new();
        let mut note = |what: &str, v: String| seen.push(format!("{what}: {v}"));
        assert_eq!(c.cmd("SET a 1"), R::ok());
        assert_eq!(c.cmd("HSET h f v"), R::Int(1));
        assert_eq!(c.cmd("EXPIRE a 1000"), R::Int(1));
        note("info before", format!("{:?}", rewrite_info(c)));
        note("first", format!("{:?}", c.cmd("BGREWRITEAOF")));
        wait_rewrite_done(c);
        note("files after first", format!("{:?}", aof_files(dir)));
        note("info after first", format!("{:?}", rewrite_info(c)));
        assert_eq!(c.cmd("SET b 2"), R::ok());
        note("second", format!("{:?}", c.cmd("BGREWRITEAOF")));
        wait_rewrite_done(c);
        note("files after second", format!("{:?}", aof_files(dir)));
        assert_eq!(c.cmd("SET gone 1"), R::ok());
        note("loadaof", format!("{:?}", c.cmd("DEBUG LOADAOF")));
        let mut keys = match c.cmd("KEYS *") {
            R::Arr(v) => v.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>(),
            other => vec![format!("{other:?}")],
        };
        keys.sort();
        note("keys", format!("{keys:?}"));
        let ttl = matches!(c.cmd("TTL a"), R::Int(t) if (900..=1000).contains(&t));
        note("ttl kept", ttl.to_string());
        note("on", format!("{:?}", c.cmd("CONFIG SET appendonly yes")));
        wait_rewrite_done(c);
        note("files after on", format!("{:?}", aof_files(dir)));
        note("info after on", format!("{:?}", rewrite_info(c)));
        note("off", format!("{:?}", c.cmd("CONFIG SET appendonly no")));
        assert_eq!(c.cmd("SET c 3"), R::ok());
        note("third", format!("{:?}", c.cmd("BGREWRITEAOF")));
        wait_rewrite_done(c);
        note("files after third", format!("{:?}", aof_files(dir)));
        note("info after third", format!("{:?}", rewrite_info(c)));
        note("loadaof again", format!("{:?}", c.cmd("DEBUG LOADAOF")));
        note("dbsize", format!("{:?}", c.cmd("DBSIZE")));
        seen
    };
    let rdir = tempfile::tempdir().expect("tempdir");
    let redis = common::RealRedis::start(rdir.path(), "dump.rdb", &[]);
    let theirs = scenario(&mut redis.conn(), rdir.path());
    drop(redis);
    let s = TestServer::start(&["--save", "", "--enable-debug-command", "yes"]);
    let ours = scenario(&mut s.conn(), s.dir.path());
    assert!(
        theirs.iter().any(|l| l.starts_with("files after first")
            && l.contains("appendonly.aof.1.base.rdb")
            && l.contains("file appendonly.aof.1.base.rdb seq 1 type b\\n\"")),
        "{theirs:#?}"
    );
    assert_eq!(ours, theirs);
    // The AOF the last rewrite left is what a restart with it on loads.
    let dir = crash(s);
    let s = TestServer::start_in(dir, &["--appendonly", "yes", "--save", ""]);
    let mut c = s.conn();
    assert_eq!(c.cmd("DBSIZE"), R::Int(4));
    assert_eq!(c.cmd("GET c"), R::bulk("3"));
}

/// Every type Tandem stores, with expiries, a function library, several dbs and
/// collections longer than one rebuilding command (64 items) holds.
fn populate_all_types(c: &mut Conn) {
    let lib = "#!lua name=mylib\nredis.register_function('f1', function(keys, args) return 1 end)";
    assert_eq!(
        c.cmd_args(&[b"FUNCTION", b"LOAD", lib.as_bytes()]),
        R::bulk("mylib"),
        "FUNCTION LOAD"
    );
    let cmds = [
        "SET s hello",
        "SET n 12345",
        "RPUSH l a b c 1 2 3",
        "SADD si 1 2 3 -5",
        "SADD ss x y z",
        "ZADD z 1.5 a -inf b 3 c 0.1 d inf e",
        "HSET h f1 v1 f2 v2",
        "SET e v",
        "PEXPIRE e 100000",
        "HSET eh f v",
        "PEXPIRE eh 200000",
        "XADD st 1-1 a 1 b 2",
        "XADD st 2-1 c 3",
        "XADD st 3-1 d 4",
        "XDEL st 2-1",
        "XGROUP CREATE st g1 0",
        "XGROUP CREATE st g2 $",
        "XREADGROUP GROUP g1 alice COUNT 1 STREAMS st >",
        "XGROUP CREATECONSUMER st g1 bob",
        "XADD empty MAXLEN 0 5-5 x y",
        "SELECT 3",
        "SET other db3",
        "SELECT 0",
    ];
    for cmd in cmds {
        assert!(!matches!(c.cmd(cmd), R::Err(_)), "{cmd}");
    }
    for i in 0..150 {
        for cmd in [
            format!("RPUSH biglist {i}"),
            format!("HSET bighash f{i} v{i}"),
            format!("ZADD bigz {i} m{i}"),
            format!("SADD bigset m{i}"),
            format!("SADD bigints {i}"),
        ] {
            assert!(!matches!(c.cmd(&cmd), R::Err(_)), "{cmd}");
        }
    }
}

/// What must survive a reload: the digest (keys, values, expiries) and the
/// function libraries.
fn dataset_of(c: &mut Conn) -> (R, R) {
    (c.cmd("DEBUG DIGEST"), c.cmd("FUNCTION LIST WITHCODE"))
}

/// The AOF base of a rewrite, its name and bytes.
fn base_file(dir: &Path) -> (String, Vec<u8>) {
    let manifest = manifest_of(dir);
    let name = manifest
        .lines()
        .find(|l| l.ends_with("type b"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_string();
    let bytes = std::fs::read(aof_dir(dir).join(&name)).unwrap_or_default();
    (name, bytes)
}

/// `aof-use-rdb-preamble no`: the rewrite writes a `.base.aof` of commands (functions
/// first, SELECT per db) that Tandem loads back and redis-server 7.0.15 loads to the
/// same digest and libraries.
#[test]
fn a_command_form_base_round_trips_through_tandem_and_redis() {
    let args = [
        "--appendonly",
        "yes",
        "--aof-use-rdb-preamble",
        "no",
        "--save",
        "",
        "--enable-debug-command",
        "yes",
    ];
    let s = TestServer::start(&args);
    let mut c = s.conn();
    populate_all_types(&mut c);
    let before = dataset_of(&mut c);
    assert_ne!(before.0, R::bulk(&"0".repeat(40)), "a dataset to compare");
    assert!(matches!(c.cmd("BGREWRITEAOF"), R::Simple(_)));
    wait_rewrite_done(&mut c);
    let (name, bytes) = base_file(s.dir.path());
    assert_eq!(name, "appendonly.aof.2.base.aof");
    assert!(
        bytes.starts_with(b"*3\r\n$8\r\nFUNCTION\r\n$4\r\nLOAD\r\n"),
        "{:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
    );
    // Nothing after the rewrite: the base alone holds the dataset.
    let dir = crash(s);
    let redis_dir = tempfile::tempdir().expect("tempdir");
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(aof_dir(to)).unwrap();
        for e in std::fs::read_dir(aof_dir(from)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), aof_dir(to).join(e.file_name())).unwrap();
        }
    };
    copy(dir.path(), redis_dir.path());
    let s = TestServer::start_in(dir, &args);
    assert_eq!(dataset_of(&mut s.conn()), before, "Tandem reloading it");
    if !redis_installed() {
        return;
    }
    let r = common::RealRedis::start(redis_dir.path(), "dump.rdb", &args);
    assert_eq!(dataset_of(&mut r.conn()), before, "Redis loading it");
}

/// A `.base.aof` written by redis-server 7.0.15 (`aof-use-rdb-preamble no`) loads in
/// Tandem to the same digest and libraries.
#[test]
fn tandem_loads_a_command_form_base_written_by_redis() {
    if !redis_installed() {
        return;
    }
    let args = [
        "--appendonly",
        "yes",
        "--aof-use-rdb-preamble",
        "no",
        "--save",
        "",
        "--enable-debug-command",
        "yes",
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let r = common::RealRedis::start(dir.path(), "dump.rdb", &args);
    let mut c = r.conn();
    populate_all_types(&mut c);
    let theirs = dataset_of(&mut c);
    assert!(matches!(c.cmd("BGREWRITEAOF"), R::Simple(_)));
    wait_rewrite_done(&mut c);
    let (name, bytes) = base_file(dir.path());
    assert_eq!(name, "appendonly.aof.2.base.aof");
    assert!(bytes.starts_with(b"*3\r\n$8\r\nFUNCTION"), "{name}");
    drop(c);
    drop(r);
    let s = TestServer::start_in(dir, &args);
    assert_eq!(dataset_of(&mut s.conn()), theirs);
}

/// `aof-disable-auto-gc yes`: the files rewrites replace stay, listed in the manifest
/// as history (type h, the most recently retired first); CONFIG SET
/// aof-disable-auto-gc no deletes them and drops them from the manifest. Compared
/// with redis-server 7.0.15.
#[test]
fn aof_disable_auto_gc_keeps_history_files_like_redis() {
    if !redis_installed() {
        return;
    }
    let scenario = |c: &mut Conn, dir: &Path| -> Vec<String> {
        let mut seen = Vec::new();
        assert_eq!(c.cmd("CONFIG SET aof-disable-auto-gc yes"), R::ok());
        for i in 0..2 {
            assert_eq!(c.cmd(&format!("SET k{i} v")), R::ok());
            assert!(matches!(c.cmd("BGREWRITEAOF"), R::Simple(_)));
            wait_rewrite_done(c);
            seen.push(format!("rewrite {i}: {:?}", aof_files(dir)));
        }
        assert_eq!(c.cmd("CONFIG SET aof-disable-auto-gc no"), R::ok());
        assert!(wait_until(Duration::from_secs(5), || aof_files(dir)
            .0
            .len()
            == 3));
        seen.push(format!("collected: {:?}", aof_files(dir)));
        seen
    };
    let args = ["--appendonly", "yes", "--save", ""];
    let rdir = tempfile::tempdir().expect("tempdir");
    let redis = common::RealRedis::start(rdir.path(), "dump.rdb", &args);
    let theirs = scenario(&mut redis.conn(), rdir.path());
    drop(redis);
    let s = TestServer::start(&args);
    let ours = scenario(&mut s.conn(), s.dir.path());
    assert!(
        theirs[1].contains("file appendonly.aof.2.incr.aof seq 2 type h"),
        "{theirs:#?}"
    );
    assert_eq!(ours, theirs);
}

/// The first line of `name` in the AOF directory, its digits replaced by `N`.
fn first_line_shape(dir: &Path, name: &str) -> String {
    let text = std::fs::read(aof_dir(dir).join(name)).unwrap_or_default();
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut shape = String::new();
    for ch in String::from_utf8_lossy(line).chars() {
        let ch = if ch.is_ascii_digit() { 'N' } else { ch };
        if !(ch == 'N' && shape.ends_with('N')) {
            shape.push(ch);
        }
    }
    shape
}

/// `aof-timestamp-enabled yes`: a `#TS:<unix time>` line before the first command of
/// each second in the incr file, and first in a command-form base. Compared with
/// redis-server 7.0.15; the annotated files load back.
#[test]
fn aof_timestamp_annotations_are_written_like_redis() {
    if !redis_installed() {
        return;
    }
    let scenario = |c: &mut Conn, dir: &Path| -> Vec<String> {
        assert_eq!(c.cmd("CONFIG SET aof-timestamp-enabled yes"), R::ok());
        assert_eq!(c.cmd("CONFIG SET aof-use-rdb-preamble no"), R::ok());
        assert_eq!(c.cmd("SET foo bar"), R::ok());
        let incr = first_line_shape(dir, "appendonly.aof.1.incr.aof");
        let text = std::fs::read_to_string(aof_dir(dir).join("appendonly.aof.1.incr.aof"))
            .unwrap_or_default();
        assert!(matches!(c.cmd("BGREWRITEAOF"), R::Simple(_)));
        wait_rewrite_done(c);
        let (name, _) = base_file(dir);
        vec![
            incr,
            text.lines().count().to_string(),
            name.clone(),
            first_line_shape(dir, &name),
        ]
    };
    let args = ["--appendonly", "yes", "--save", ""];
    let rdir = tempfile::tempdir().expect("tempdir");
    let redis = common::RealRedis::start(rdir.path(), "dump.rdb", &args);
    let theirs = scenario(&mut redis.conn(), rdir.path());
    drop(redis);
    let s = TestServer::start(&args);
    let ours = scenario(&mut s.conn(), s.dir.path());
    assert_eq!(theirs[0], "#TS:N\r", "{theirs:?}");
    assert_eq!(ours, theirs);
    assert_eq!(s.conn().cmd("SET after rewrite"), R::ok());
    let dir = crash(s);
    let s = TestServer::start_in(dir, &args);
    let mut c = s.conn();
    assert_eq!(c.cmd("GET foo"), R::bulk("bar"));
    assert_eq!(c.cmd("GET after"), R::bulk("rewrite"));
}

/// DEBUG AOF-FLUSH-SLEEP <us> (a Redis test aid): each AOF write waits that long,
/// the write still lands before the reply; 0 turns it off. Replies as Redis's.
#[test]
fn debug_aof_flush_sleep_delays_aof_writes() {
    let s = TestServer::start(&[
        "--appendonly",
        "yes",
        "--save",
        "",
        "--enable-debug-command",
        "yes",
    ]);
    let mut c = s.conn();
    let incr = aof_dir(s.dir.path()).join("appendonly.aof.1.incr.aof");
    assert_eq!(c.cmd("DEBUG AOF-FLUSH-SLEEP 300000"), R::ok());
    let before = std::fs::metadata(&incr).map(|m| m.len()).unwrap_or(0);
    let t = std::time::Instant::now();
    assert_eq!(c.cmd("SET k v"), R::ok());
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert!(std::fs::metadata(&incr).map(|m| m.len()).unwrap_or(0) > before);
    assert_eq!(c.cmd("DEBUG AOF-FLUSH-SLEEP 0"), R::ok());
    let t = std::time::Instant::now();
    assert_eq!(c.cmd("SET k v2"), R::ok());
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    if redis_installed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = common::RealRedis::start(dir.path(), "dump.rdb", &["--appendonly", "yes"]);
        let mut rc = r.conn();
        for cmd in ["DEBUG AOF-FLUSH-SLEEP 1000", "DEBUG AOF-FLUSH-SLEEP 0"] {
            assert_eq!(c.cmd(cmd), rc.cmd(cmd), "{cmd}");
        }
    }
}
