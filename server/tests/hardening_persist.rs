//! Persistence errors handled as Redis 7.0.15 handles them, side by side with the
//! real server: a full disk under the AOF or a BGSAVE makes writes fail with
//! MISCONF until the disk has room again, a short AOF write never leaves a torn
//! file, acknowledged writes survive, and a bad AOF is refused at startup with
//! Redis's messages instead of a panic.
//!
//! The full disk is a 2 MiB tmpfs (mounting needs root, as in CI; elsewhere the
//! disk tests print why and return, but fail when `CI=true`). Every mount is
//! unmounted by a guard, every process killed by pid, even when a test fails.

mod common;

use common::{free_port, server_bin, wait_until, Conn, R};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AOF_MISCONF: &str = "MISCONF Errors writing to the AOF file: No space left on device";
const RDB_MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";
const INCR: &str = "appendonly.aof.1.incr.aof";

/// A 2 MiB tmpfs on a fresh temp dir, unmounted on drop.
struct Tmpfs {
    dir: Option<tempfile::TempDir>,
}

impl Tmpfs {
    /// Mounts one, or says why it can't (not root outside CI).
    fn mount() -> Option<Tmpfs> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if !root {
            assert!(!ci, "the disk-full tests need root to mount a tmpfs in CI");
            eprintln!("skipping: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        if !st.success() {
            assert!(!ci, "mount -t tmpfs failed in CI");
            eprintln!("skipping: mount -t tmpfs failed");
            return None;
        }
        Some(Tmpfs { dir: Some(dir) })
    }

    fn path(&self) -> &Path {
        self.dir.as_ref().expect("mounted").path()
    }

    /// A directory on the tmpfs.
    fn sub(&self, name: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(&p).expect("mkdir on tmpfs");
        p
    }

    /// Fills the tmpfs, then gives `leave` bytes back; returns the filler file.
    fn fill(&self, leave: u64) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("create filler");
        let chunk = vec![0u8; 64 * 1024];
        let mut small = false;
        for _ in 0..1024 {
            let piece = if small { &chunk[..4096] } else { &chunk[..] };
            match f.write(piece) {
                Ok(_) => {}
                Err(_) if !small => small = true,
                Err(_) => break,
            }
        }
        let len = f.metadata().expect("filler size").len();
        f.set_len(len.saturating_sub(leave)).expect("shrink filler");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else {
            return;
        };
        let unmounted = wait_until(Duration::from_secs(10), || {
            Command::new("umount")
                .arg(dir.path())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(dir.path()).status();
        }
        drop(dir);
    }
}

/// Which server a scenario runs against.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Tandem,
    Redis,
}

/// A server process on a free loopback port logging to a file, killed (by pid) on drop.
struct Proc {
    child: Child,
    port: u16,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Proc {
    fn spawn(kind: Kind, dir: &Path, args: &[&str]) -> Proc {
        let logdir = tempfile::tempdir().expect("tempdir");
        let log = logdir.path().join("server.log");
        let port = free_port();
        let bin = match kind {
            Kind::Tandem => server_bin(),
            Kind::Redis => PathBuf::from("/usr/bin/redis-server"),
        };
        // stdout and stderr in one file: the log lines and any panic message.
        let out = std::fs::File::create(&log).expect("log");
        let child = Command::new(bin)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("log")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("spawn server");
        Proc {
            child,
            port,
            log,
            _logdir: logdir,
        }
    }

    /// Starts a server that must come up and answer PING.
    fn start(kind: Kind, dir: &Path, args: &[&str]) -> Proc {
        let mut p = Proc::spawn(kind, dir, args);
        let port = p.port;
        let up = wait_until(Duration::from_secs(10), || {
            if matches!(p.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            // Ready means PONG (the port accepts, and answers -LOADING, during the load).
            let Ok(t) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                return false;
            };
            let _ = t.set_read_timeout(Some(Duration::from_millis(500)));
            let mut line = String::new();
            (&t).write_all(b"PING\r\n").is_ok()
                && std::io::BufRead::read_line(&mut std::io::BufReader::new(&t), &mut line).is_ok()
                && line.starts_with('+')
        });
        assert!(
            up && matches!(p.child.try_wait(), Ok(None)),
            "{kind:?} did not start:\n{}",
            p.log_text()
        );
        p
    }

    /// Runs a server that must refuse to start; returns its log.
    fn start_fails(kind: Kind, dir: &Path, args: &[&str]) -> String {
        let mut p = Proc::spawn(kind, dir, args);
        let mut status = None;
        wait_until(Duration::from_secs(10), || {
            status = p.child.try_wait().ok().flatten();
            status.is_some()
        });
        let log = p.log_text();
        let status = status.unwrap_or_else(|| panic!("{kind:?} started on a bad AOF:\n{log}"));
        assert!(!status.success(), "{kind:?} exit status {status}:\n{log}");
        assert!(!log.contains("panicked"), "{kind:?} panicked:\n{log}");
        log
    }

    fn conn(&self) -> Conn {
        Conn::connect(self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One INFO persistence field.
fn info_field(c: &mut Conn, name: &str) -> String {
    info_in(c, "persistence", name)
}

/// One INFO field of `section`.
fn info_in(c: &mut Conn, section: &str, name: &str) -> String {
    let R::Bulk(text) = c.cmd(&format!("INFO {section}")) else {
        panic!("INFO did not answer a bulk string");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name} in INFO:\n{text}"))
}

/// SETs `key:<i>` (100-byte values) until refused `refusals` times, at most
/// `limit` commands or 30 s; returns the keys acknowledged and the first refusal.
fn write_until_refused(c: &mut Conn, limit: usize, refusals: usize) -> (Vec<String>, String) {
    let value = "v".repeat(100);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut acked, mut errors) = (Vec::new(), Vec::new());
    for i in 0..limit {
        if errors.len() >= refusals || Instant::now() > deadline {
            break;
        }
        let key = format!("key:{i}");
        match c.cmd_args(&[b"SET", key.as_bytes(), value.as_bytes()]) {
            R::Simple(s) if s == "OK" => acked.push(key),
            R::Err(e) => errors.push(e),
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert!(!errors.is_empty(), "the disk never filled up");
    (acked, errors.swap_remove(0))
}

/// Every key in `keys` exists (pipelined EXISTS).
fn missing_keys(c: &mut Conn, keys: &[String]) -> Vec<String> {
    for k in keys {
        c.send(&[b"EXISTS", k.as_bytes()]);
    }
    keys.iter()
        .filter(|_| c.read() != R::Int(1))
        .cloned()
        .collect()
}

const AOF_ARGS: &[&str] = &[
    "--appendonly",
    "yes",
    "--appendfsync",
    "everysec",
    "--save",
    "",
];

/// What a disk-full AOF run showed.
struct AofRun {
    refusal: String,
    ping: R,
    acked: usize,
}

/// Fills the disk under a running AOF, checks the refusal, frees space, checks
/// writes resume, restarts on the same dir and checks every acknowledged key.
fn aof_disk_full_then_space_returns(kind: Kind) -> Option<AofRun> {
    let fs = Tmpfs::mount()?;
    let data = fs.sub("data");
    let s = Proc::start(kind, &data, AOF_ARGS);
    let mut c = s.conn();
    assert_eq!(info_field(&mut c, "aof_last_write_status"), "ok");
    let filler = fs.fill(128 * 1024);
    let (mut acked, refusal) = write_until_refused(&mut c, 20_000, 5);
    assert!(
        acked.len() > 100,
        "{kind:?}: only {} writes fit",
        acked.len()
    );
    let ping = c.cmd("PING");
    assert_eq!(c.cmd("GET key:0"), R::bulk(&"v".repeat(100)), "reads work");
    assert_eq!(c.cmd("PUBLISH ch msg"), R::Int(0), "non-writes work");
    assert_eq!(info_field(&mut c, "aof_last_write_status"), "err");

    std::fs::remove_file(&filler).expect("remove filler");
    assert!(
        wait_until(Duration::from_secs(10), || info_field(
            &mut c,
            "aof_last_write_status"
        ) == "ok"),
        "{kind:?}: the write error never cleared"
    );
    assert_eq!(c.cmd("SET after ok"), R::ok());
    acked.push("after".into());
    if kind == Kind::Tandem {
        let log = s.log_text();
        assert!(
            log.contains("AOF write error looks solved, Redis can write again."),
            "{log}"
        );
    }
    drop(c);
    drop(s);

    let s = Proc::start(kind, &data, AOF_ARGS);
    let mut c = s.conn();
    assert_eq!(
        missing_keys(&mut c, &acked),
        Vec::<String>::new(),
        "{kind:?}"
    );
    assert_eq!(c.cmd("DBSIZE"), R::Int(acked.len() as i64), "{kind:?}");
    Some(AofRun {
        refusal,
        ping,
        acked: acked.len(),
    })
}

#[test]
fn aof_disk_full_refuses_writes_until_space_returns_and_loses_no_acknowledged_write() {
    let Some(tandem) = aof_disk_full_then_space_returns(Kind::Tandem) else {
        return;
    };
    let Some(redis) = aof_disk_full_then_space_returns(Kind::Redis) else {
        return;
    };
    assert_eq!(tandem.refusal, AOF_MISCONF);
    assert_eq!(redis.refusal, AOF_MISCONF);
    assert_eq!(
        tandem.ping,
        R::Err(AOF_MISCONF.into()),
        "PING is refused too"
    );
    assert_eq!(redis.ping, tandem.ping);
    eprintln!(
        "acknowledged before the disk filled: tandem {}, redis {}",
        tandem.acked, redis.acked
    );
}

/// Crashes while the disk is still full (short writes were cut back), frees the
/// disk and restarts with `aof-load-truncated no`: the AOF must not be torn.
fn aof_crash_while_full_leaves_no_torn_file(kind: Kind) -> Option<usize> {
    let fs = Tmpfs::mount()?;
    let data = fs.sub("data");
    let s = Proc::start(kind, &data, AOF_ARGS);
    let mut c = s.conn();
    let filler = fs.fill(64 * 1024);
    let (acked, refusal) = write_until_refused(&mut c, 20_000, 20);
    assert_eq!(refusal, AOF_MISCONF, "{kind:?}");
    drop(c);
    drop(s); // SIGKILL
    std::fs::remove_file(&filler).expect("remove filler");
    let incr = std::fs::read(data.join("appendonlydir").join(INCR)).expect("incr file");
    assert!(
        incr.ends_with(b"\r\n"),
        "{kind:?}: the AOF ends inside a line"
    );

    let mut strict = AOF_ARGS.to_vec();
    strict.extend(["--aof-load-truncated", "no"]);
    let s = Proc::start(kind, &data, &strict);
    let mut c = s.conn();
    // The last acknowledged SET may still have been buffered when the process died
    // (appendfsync everysec: Redis makes the same promise); all before it are on disk.
    let on_disk = &acked[..acked.len().saturating_sub(1)];
    assert_eq!(
        missing_keys(&mut c, on_disk),
        Vec::<String>::new(),
        "{kind:?}"
    );
    Some(acked.len())
}

#[test]
fn short_aof_write_is_cut_back_so_a_crash_leaves_a_loadable_file() {
    let Some(n) = aof_crash_while_full_leaves_no_torn_file(Kind::Tandem) else {
        return;
    };
    let Some(m) = aof_crash_while_full_leaves_no_torn_file(Kind::Redis) else {
        return;
    };
    eprintln!("acknowledged before the disk filled: tandem {n}, redis {m}");
}

#[test]
fn replica_applies_its_master_stream_while_its_aof_cannot_be_written() {
    let Some(fs) = Tmpfs::mount() else {
        return;
    };
    let master_dir = tempfile::tempdir().expect("tempdir");
    let master = Proc::start(Kind::Tandem, master_dir.path(), &["--save", ""]);
    let data = fs.sub("replica");
    let port = master.port.to_string();
    let mut args = AOF_ARGS.to_vec();
    args.extend(["--replicaof", "127.0.0.1", &port]);
    let replica = Proc::start(Kind::Tandem, &data, &args);
    let mut r = replica.conn();
    assert!(wait_until(Duration::from_secs(10), || info_in(
        &mut r,
        "replication",
        "master_link_status"
    ) == "up"));
    let filler = fs.fill(16 * 1024);
    let mut m = master.conn();
    let value = "v".repeat(100);
    let n = 2000;
    for i in 0..n {
        m.send(&[b"SET", format!("key:{i}").as_bytes(), value.as_bytes()]);
    }
    for _ in 0..n {
        assert_eq!(m.read(), R::ok());
    }
    assert!(
        wait_until(Duration::from_secs(10), || r.cmd("DBSIZE") == R::Int(n)),
        "the replica stopped applying its master's writes"
    );
    assert_eq!(info_field(&mut r, "aof_last_write_status"), "err");
    // Its own clients are refused as on a master, before READONLY (Redis's order).
    assert_eq!(r.cmd("SET x 1"), R::Err(AOF_MISCONF.into()));
    std::fs::remove_file(&filler).expect("remove filler");
    assert!(wait_until(Duration::from_secs(10), || info_field(
        &mut r,
        "aof_last_write_status"
    ) == "ok"));
    assert_eq!(
        r.cmd("SET x 1"),
        R::Err("READONLY You can't write against a read only replica.".into())
    );
}

/// BGREWRITEAOF on a full disk; returns its reply.
fn bgrewriteaof_on_full_disk(kind: Kind) -> Option<R> {
    let fs = Tmpfs::mount()?;
    let data = fs.sub("data");
    let s = Proc::start(kind, &data, AOF_ARGS);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET a 1"), R::ok());
    let filler = fs.fill(0);
    let reply = c.cmd("BGREWRITEAOF");
    assert_eq!(
        info_field(&mut c, "aof_last_bgrewrite_status"),
        "err",
        "{kind:?}"
    );
    assert_eq!(
        info_field(&mut c, "aof_rewrite_in_progress"),
        "0",
        "{kind:?}"
    );
    std::fs::remove_file(&filler).expect("remove filler");
    assert_eq!(
        c.cmd("BGREWRITEAOF"),
        R::Simple("Background append only file rewriting started".into())
    );
    assert!(wait_until(Duration::from_secs(10), || info_field(
        &mut c,
        "aof_rewrite_in_progress"
    ) == "0"
        && info_field(&mut c, "aof_rewrites") == "1"));
    assert_eq!(
        info_field(&mut c, "aof_last_bgrewrite_status"),
        "ok",
        "{kind:?}"
    );
    assert_eq!(c.cmd("SET b 2"), R::ok());
    // Written before the kill: with `appendfsync everysec` Redis postpones its AOF
    // write (up to 2 s) while a background fsync is pending, as there is right after
    // a rewrite, and still replies; a SIGKILL in that window loses the write there.
    assert!(
        wait_until(Duration::from_secs(10), || info_field(
            &mut c,
            "aof_buffer_length"
        ) == "0"),
        "{kind:?}: the AOF buffer was not written"
    );
    drop(c);
    drop(s);
    let s = Proc::start(kind, &data, AOF_ARGS);
    let mut c = s.conn();
    assert_eq!(
        c.cmd("MGET a b"),
        R::Arr(vec![R::bulk("1"), R::bulk("2")]),
        "{kind:?}"
    );
    Some(reply)
}

#[test]
fn bgrewriteaof_on_a_full_disk_fails_cleanly_and_succeeds_once_space_returns() {
    let Some(tandem) = bgrewriteaof_on_full_disk(Kind::Tandem) else {
        return;
    };
    let Some(redis) = bgrewriteaof_on_full_disk(Kind::Redis) else {
        return;
    };
    assert_eq!(
        tandem,
        R::Err("ERR Can't execute an AOF background rewriting. Please check the server logs for more information.".into())
    );
    assert_eq!(redis, tandem);
}

/// BGSAVE into a full disk; returns the refusal of SET.
fn bgsave_into_full_disk(kind: Kind) -> Option<R> {
    let fs = Tmpfs::mount()?;
    let data = fs.sub("data");
    let s = Proc::start(
        kind,
        &data,
        &[
            "--appendonly",
            "no",
            "--save",
            "3600 1",
            "--stop-writes-on-bgsave-error",
            "yes",
        ],
    );
    let mut c = s.conn();
    assert_eq!(c.cmd("SET a 1"), R::ok());
    // A transaction queued before the save fails: its EXEC is refused after.
    let mut t = s.conn();
    assert_eq!(t.cmd("MULTI"), R::ok());
    assert_eq!(t.cmd("SET q 1"), R::Simple("QUEUED".into()));
    let filler = fs.fill(0);
    assert_eq!(
        c.cmd("BGSAVE"),
        R::Simple("Background saving started".into())
    );
    let done = |c: &mut Conn| info_field(c, "rdb_bgsave_in_progress") == "0";
    assert!(wait_until(Duration::from_secs(10), || done(&mut c)));
    assert_eq!(
        info_field(&mut c, "rdb_last_bgsave_status"),
        "err",
        "{kind:?}"
    );
    let refusal = c.cmd("SET b 2");
    assert_eq!(
        t.cmd("EXEC"),
        R::Err(format!(
            "EXECABORT Transaction discarded because of: {}",
            refusal.err_text()
        )),
        "{kind:?}"
    );
    assert_eq!(c.cmd("EXISTS q"), R::Int(0));
    assert_eq!(
        c.cmd("PING"),
        refusal,
        "{kind:?}: PING is refused like a write"
    );
    assert_eq!(c.cmd("GET a"), R::bulk("1"), "{kind:?}: reads work");
    assert_eq!(c.cmd("MULTI"), R::ok());
    assert_eq!(c.cmd("SET b 2"), refusal);
    assert_eq!(
        c.cmd("EXEC"),
        R::Err("EXECABORT Transaction discarded because of previous errors.".into())
    );

    // stop-writes-on-bgsave-error no: the failed save no longer stops writes.
    assert_eq!(c.cmd("CONFIG SET stop-writes-on-bgsave-error no"), R::ok());
    assert_eq!(c.cmd("SET b 2"), R::ok(), "{kind:?}");
    assert_eq!(c.cmd("CONFIG SET stop-writes-on-bgsave-error yes"), R::ok());
    assert_eq!(c.cmd("SET b 2"), refusal);

    // Space returns; the next BGSAVE succeeds and writes are accepted again.
    std::fs::remove_file(&filler).expect("remove filler");
    assert_eq!(
        c.cmd("BGSAVE"),
        R::Simple("Background saving started".into())
    );
    assert!(wait_until(Duration::from_secs(10), || done(&mut c)));
    assert_eq!(
        info_field(&mut c, "rdb_last_bgsave_status"),
        "ok",
        "{kind:?}"
    );
    assert_eq!(c.cmd("SET c 3"), R::ok(), "{kind:?}");
    Some(refusal)
}

#[test]
fn bgsave_into_a_full_disk_stops_writes_only_with_stop_writes_on_bgsave_error() {
    let Some(tandem) = bgsave_into_full_disk(Kind::Tandem) else {
        return;
    };
    let Some(redis) = bgsave_into_full_disk(Kind::Redis) else {
        return;
    };
    assert_eq!(tandem, R::Err(RDB_MISCONF.into()));
    assert_eq!(redis, tandem);
}

/// A data dir holding a one-file multi-part AOF with `incr` as its commands.
fn aof_dir_with(incr: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let ad = dir.path().join("appendonlydir");
    std::fs::create_dir_all(&ad).expect("mkdir");
    std::fs::write(
        ad.join("appendonly.aof.manifest"),
        format!("file {INCR} seq 1 type i\n"),
    )
    .expect("manifest");
    std::fs::write(ad.join(INCR), incr).expect("incr");
    dir
}

const SET_A: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n";
const LOAD_ARGS: &[&str] = &["--appendonly", "yes", "--save", ""];

#[test]
fn aof_with_a_wrong_arity_command_is_refused_at_start_without_a_panic() {
    // Redis 7.0.15 runs such a command with missing arguments (undefined
    // behaviour); Tandem refuses the file, naming the command.
    let mut incr = SET_A.to_vec();
    incr.extend_from_slice(b"*2\r\n$3\r\nSET\r\n$1\r\nk\r\n");
    let dir = aof_dir_with(&incr);
    let log = Proc::start_fails(Kind::Tandem, dir.path(), LOAD_ARGS);
    assert!(
        log.contains(&format!(
            "Wrong number of arguments for 'set' command reading the append only file {INCR}"
        )),
        "{log}"
    );
    // Inside MULTI too, and for a command with a minimum arity.
    let mut incr = SET_A.to_vec();
    incr.extend_from_slice(
        b"*1\r\n$5\r\nMULTI\r\n*2\r\n$5\r\nLPUSH\r\n$1\r\nl\r\n*1\r\n$4\r\nEXEC\r\n",
    );
    let dir = aof_dir_with(&incr);
    let log = Proc::start_fails(Kind::Tandem, dir.path(), LOAD_ARGS);
    assert!(
        log.contains("Wrong number of arguments for 'lpush' command"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("appendonlydir").join(INCR)).expect("incr"),
        incr,
        "the file is left as it was"
    );
}

#[test]
fn aof_with_an_unknown_command_is_refused_at_start_like_redis() {
    let mut incr = SET_A.to_vec();
    incr.extend_from_slice(b"*2\r\n$3\r\nFOO\r\n$1\r\nk\r\n");
    let want = format!("Unknown command 'FOO' reading the append only file {INCR}");
    for kind in [Kind::Tandem, Kind::Redis] {
        let dir = aof_dir_with(&incr);
        let log = Proc::start_fails(kind, dir.path(), LOAD_ARGS);
        assert!(log.contains(&want), "{kind:?}:\n{log}");
    }
}

#[test]
fn aof_with_a_truncated_tail_follows_aof_load_truncated_like_redis() {
    let mut incr = SET_A.to_vec();
    incr.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$2\r\n1");
    for kind in [Kind::Tandem, Kind::Redis] {
        let dir = aof_dir_with(&incr);
        let mut no = LOAD_ARGS.to_vec();
        no.extend(["--aof-load-truncated", "no"]);
        let log = Proc::start_fails(kind, dir.path(), &no);
        assert!(
            log.contains(&format!(
                "Unexpected end of file reading the append only file {INCR}"
            )),
            "{kind:?}:\n{log}"
        );

        let mut yes = LOAD_ARGS.to_vec();
        yes.extend(["--aof-load-truncated", "yes"]);
        let s = Proc::start(kind, dir.path(), &yes);
        let mut c = s.conn();
        assert_eq!(c.cmd("GET a"), R::bulk("1"), "{kind:?}");
        assert_eq!(c.cmd("GET b"), R::Nil, "{kind:?}");
        let log = s.log_text();
        for line in [
            format!("!!! Warning: short read while loading the AOF file {INCR}!!!"),
            format!(
                "!!! Truncating the AOF {INCR} at offset {} !!!",
                SET_A.len()
            ),
            format!("AOF {INCR} loaded anyway because aof-load-truncated is enabled"),
        ] {
            assert!(log.contains(&line), "{kind:?}: no {line:?} in\n{log}");
        }
        let len = std::fs::metadata(dir.path().join("appendonlydir").join(INCR))
            .expect("incr")
            .len();
        assert_eq!(len, SET_A.len() as u64, "{kind:?}: the tail was cut off");
    }
}

#[test]
fn aof_command_answering_wrongtype_is_logged_and_loading_goes_on_like_redis() {
    let incr = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*3\r\n$5\r\nLPUSH\r\n$1\r\nk\r\n$1\r\nx\r\n*3\r\n$3\r\nSET\r\n$1\r\nj\r\n$1\r\n1\r\n";
    for kind in [Kind::Tandem, Kind::Redis] {
        let dir = aof_dir_with(incr);
        let s = Proc::start(kind, dir.path(), LOAD_ARGS);
        let mut c = s.conn();
        assert_eq!(c.cmd("GET k"), R::bulk("v"), "{kind:?}");
        assert_eq!(c.cmd("GET j"), R::bulk("1"), "{kind:?}");
        let log = s.log_text();
        assert!(
            log.contains("== CRITICAL == This server is sending an error to its AOF-loading-client: '-WRONGTYPE Operation against a key holding the wrong kind of value' after processing the command 'lpush'"),
            "{kind:?}:\n{log}"
        );
    }
}
