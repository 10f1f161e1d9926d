//! Fork-based snapshots (`crate::snapshot`): BGSAVE writes from a forked child
//! while clients keep writing; the child dies with the server (no orphan), and a
//! shutdown kills it and removes its temp file.

mod common;

use common::{free_port, server_bin, wait_until, Conn, TestServer, R};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tandem_server::db::Db;
use tandem_server::rdb;

/// Starts the server with the snapshot child delay test hook set.
fn start_with_child_delay(delay_ms: u64, args: &[&str]) -> TestServer {
    start_with_env(
        &[("TANDEM_SNAPSHOT_CHILD_DELAY_MS", &delay_ms.to_string())],
        args,
    )
}

fn start_with_env(env: &[(&str, &str)], args: &[&str]) -> TestServer {
    for _ in 0..5 {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new(server_bin())
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--dir", dir.path().to_str().expect("utf8 dir")])
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(dir.path().join("stdout.log")).expect("log"),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).expect("log"),
            ))
            .spawn()
            .expect("spawn tandem-server");
        let mut s = TestServer { port, child, dir };
        let up = wait_until(Duration::from_secs(10), || {
            matches!(s.child.try_wait(), Ok(None)) && TcpStream::connect(s.addr()).is_ok()
        });
        if up {
            return s;
        }
        let _ = s.child.kill();
        let _ = s.child.wait();
    }
    panic!("tandem-server did not start");
}

fn info_field(c: &mut Conn, field: &str) -> String {
    common::info_field(c, "persistence", field).unwrap_or_else(|| panic!("no {field}"))
}

fn int(r: R) -> i64 {
    match r {
        R::Int(i) => i,
        r => panic!("{r:?}"),
    }
}

/// Pid and state of every process whose parent is `ppid`.
fn children_of(ppid: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if f.next().and_then(|p| p.parse::<u32>().ok()) == Some(ppid) {
            out.push((pid, state));
        }
    }
    out
}

/// State of process `pid`, None if it no longer exists.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().next()?.chars().next()
}

fn temp_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with("temp-") && n.ends_with(".rdb"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn forked_bgsave_snapshots_the_fork_point_while_clients_write() {
    let s = start_with_child_delay(300, &["--save", "", "--enable-debug-command", "yes"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("DEBUG POPULATE 20000 key 10"), R::ok());
    let saves_before: i64 = info_field(&mut c, "rdb_saves").parse().unwrap();
    let lastsave_before = int(c.cmd("LASTSAVE"));
    assert_eq!(
        c.cmd("BGSAVE"),
        R::Simple("Background saving started".into())
    );
    // The save runs in a child process, not in the server.
    let server_pid = s.child.id();
    let log = s.stdout();
    let line = log
        .lines()
        .find(|l| l.contains("Background saving started by pid"))
        .expect("start line");
    let pid: u32 = line.rsplit(' ').next().unwrap().trim().parse().unwrap();
    assert_ne!(pid, server_pid, "BGSAVE did not fork: {line}");
    assert_eq!(info_field(&mut c, "rdb_bgsave_in_progress"), "1");
    // Clients keep writing (and are served) while the child works.
    let mut writes = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && writes < 100_000 {
        assert_eq!(c.cmd(&format!("SET w:{writes} v")), R::ok());
        assert_eq!(c.cmd("DEL key:0"), R::Int(if writes == 0 { 1 } else { 0 }));
        writes += 1;
        if writes % 50 == 0 && info_field(&mut c, "rdb_bgsave_in_progress") == "0" {
            break;
        }
    }
    assert!(
        wait_until(Duration::from_secs(30), || info_field(
            &mut c,
            "rdb_bgsave_in_progress"
        ) == "0"),
        "BGSAVE did not finish"
    );
    assert!(writes > 0);
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    let saves_after: i64 = info_field(&mut c, "rdb_saves").parse().unwrap();
    assert_eq!(saves_after, saves_before + 1);
    assert!(int(c.cmd("LASTSAVE")) >= lastsave_before);
    // Only the writes made after the fork are still unsaved (SET + the one DEL).
    let dirty: i64 = info_field(&mut c, "rdb_changes_since_last_save")
        .parse()
        .unwrap();
    assert_eq!(dirty, writes + 1);
    let log = s.stdout();
    assert!(log.contains("DB saved on disk"), "{log}");
    assert!(
        log.contains("Background saving terminated with success"),
        "{log}"
    );
    // The child was reaped and its temp file renamed.
    assert!(wait_until(Duration::from_secs(5), || proc_state(pid).is_none()));
    assert!(temp_files(s.dir.path()).is_empty());
    // The file holds exactly the dataset at the fork point.
    let data = std::fs::read(s.dir.path().join("dump.rdb")).expect("dump.rdb");
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
    .expect("loadable RDB");
    assert_eq!(info.keys, 20000);
    assert!(dbs[0].entry(b"key:0").is_some());
    assert!(dbs[0].entry(b"key:19999").is_some());
    assert!(dbs[0].entry(b"w:0").is_none());
}

#[test]
fn killed_server_leaves_no_orphan_snapshot_child() {
    let s = start_with_child_delay(20_000, &["--save", ""]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET a 1"), R::ok());
    assert_eq!(c.cmd("SAVE"), R::ok());
    assert_eq!(c.cmd("SET b 2"), R::ok());
    assert_eq!(
        c.cmd("BGSAVE"),
        R::Simple("Background saving started".into())
    );
    let server_pid = s.child.id();
    let mut kids = Vec::new();
    assert!(wait_until(Duration::from_secs(5), || {
        kids = children_of(server_pid);
        !kids.is_empty()
    }));
    let (child, _) = kids[0];
    let want = vec![format!("temp-{child}.rdb")];
    assert!(wait_until(Duration::from_secs(5), || temp_files(
        s.dir.path()
    ) == want));
    // SIGKILL the server: the child gets SIGKILL too (PR_SET_PDEATHSIG) and is
    // not left running (at most a zombie until its new parent reaps it).
    let mut s = s;
    let _ = s.child.kill();
    let _ = s.child.wait();
    assert!(
        wait_until(Duration::from_secs(5), || matches!(
            proc_state(child),
            None | Some('Z') | Some('X')
        )),
        "snapshot child {child} outlived the server: {:?}",
        proc_state(child)
    );
    // A restart in the same dir ignores the stale temp file and loads the old dump.
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    drop(s);
    let s2 = TestServer::start_in(dir, &["--save", ""]);
    let mut c2 = s2.conn();
    assert_eq!(c2.cmd("GET a"), R::bulk("1"));
    assert_eq!(c2.cmd("GET b"), R::Nil);
    // And a new save works alongside the stale file.
    assert_eq!(c2.cmd("SET c 3"), R::ok());
    assert_eq!(c2.cmd("SAVE"), R::ok());
}

#[test]
fn shutdown_kills_the_snapshot_child_and_removes_its_temp_file() {
    let s = start_with_child_delay(20_000, &["--save", ""]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET a 1"), R::ok());
    assert_eq!(
        c.cmd("BGSAVE"),
        R::Simple("Background saving started".into())
    );
    let server_pid = s.child.id();
    let mut kids = Vec::new();
    assert!(wait_until(Duration::from_secs(5), || {
        kids = children_of(server_pid);
        !kids.is_empty()
    }));
    let (child, _) = kids[0];
    assert!(wait_until(Duration::from_secs(5), || !temp_files(
        s.dir.path()
    )
    .is_empty()));
    let started = Instant::now();
    c.send(&[b"SHUTDOWN", b"NOSAVE"]);
    let mut s = s;
    assert!(wait_until(Duration::from_secs(10), || matches!(
        s.child.try_wait(),
        Ok(Some(_))
    )));
    // It did not wait for the child's 20 s.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(wait_until(Duration::from_secs(5), || matches!(
        proc_state(child),
        None | Some('Z') | Some('X')
    )));
    assert!(temp_files(s.dir.path()).is_empty());
    assert!(!s.dir.path().join("dump.rdb").exists());
    assert!(s
        .stdout()
        .contains("There is a child saving an .rdb. Killing it!"));
}

/// Full sync from a forked child, disk (`$<len>`) and diskless (`$EOF:`) targets:
/// the master logs the child's pid, serves writes meanwhile, and the replica gets
/// the dataset of the fork point plus the stream after it.
#[test]
fn full_sync_payload_comes_from_a_forked_child() {
    for diskless in ["no", "yes"] {
        let m = start_with_child_delay(
            300,
            &[
                "--save",
                "",
                "--enable-debug-command",
                "yes",
                "--repl-diskless-sync",
                diskless,
                "--repl-diskless-sync-delay",
                "0",
            ],
        );
        let mut c = m.conn();
        assert_eq!(c.cmd("DEBUG POPULATE 5000 key 10"), R::ok());
        let target = format!("127.0.0.1 {}", m.port);
        let r = TestServer::start(&["--replicaof", &target, "--save", ""]);
        let master_pid = m.child.id();
        let mut child_pid = None;
        assert!(wait_until(Duration::from_secs(10), || {
            child_pid = m
                .stdout()
                .lines()
                .find(|l| l.contains("started by pid"))
                .and_then(|l| l.rsplit(' ').next()?.trim().parse::<u32>().ok());
            child_pid.is_some()
        }));
        assert_ne!(child_pid, Some(master_pid), "full sync did not fork");
        // Writes during the child's work reach the replica through the stream.
        for i in 0..20 {
            assert_eq!(c.cmd(&format!("SET during:{i} x")), R::ok());
        }
        let mut rc = r.conn();
        assert!(
            wait_until(Duration::from_secs(20), || rc.cmd("DBSIZE") == R::Int(5020)),
            "diskless={diskless}: replica has {:?}; master log:\n{}",
            rc.cmd("DBSIZE"),
            m.stdout()
        );
        assert_eq!(rc.cmd("GET key:4999"), R::bulk("value:4999"));
        assert_eq!(rc.cmd("GET during:19"), R::bulk("x"));
    }
}

/// When fork fails (forced by the TANDEM_SNAPSHOT_NO_FORK hook), BGSAVE,
/// BGREWRITEAOF and the full sync fall back to the in-process copy, with a log line.
#[test]
fn fork_failure_falls_back_to_in_process_snapshots() {
    let env = [("TANDEM_SNAPSHOT_NO_FORK", "1")];
    let m = start_with_env(&env, &["--save", "", "--appendonly", "yes"]);
    let mut c = m.conn();
    for i in 0..100 {
        assert_eq!(c.cmd(&format!("SET k{i} v{i}")), R::ok());
    }
    assert_eq!(
        c.cmd("BGSAVE"),
        R::Simple("Background saving started".into())
    );
    assert!(wait_until(Duration::from_secs(10), || info_field(
        &mut c,
        "rdb_bgsave_in_progress"
    ) == "0"));
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    assert_eq!(
        c.cmd("BGREWRITEAOF"),
        R::Simple("Background append only file rewriting started".into())
    );
    assert!(wait_until(Duration::from_secs(10), || info_field(
        &mut c,
        "aof_rewrite_in_progress"
    ) == "0"));
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    let target = format!("127.0.0.1 {}", m.port);
    let r = start_with_env(&env, &["--replicaof", &target, "--save", ""]);
    let mut rc = r.conn();
    assert!(wait_until(Duration::from_secs(20), || rc.cmd("DBSIZE") == R::Int(100)));
    let log = m.stdout();
    assert!(log.contains("Can't fork for BGSAVE"), "{log}");
    assert!(log.contains("Can't fork for BGREWRITEAOF"), "{log}");
    assert!(
        log.contains("Can't fork for the replication snapshot"),
        "{log}"
    );
    let data = std::fs::read(m.dir.path().join("dump.rdb")).expect("dump.rdb");
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
    .expect("loadable RDB");
    assert_eq!(info.keys, 100);
}

/// A diskless full sync whose only replica disappears kills its snapshot child.
#[test]
fn abandoned_diskless_sync_kills_its_child() {
    let m = start_with_child_delay(
        2_000,
        &[
            "--save",
            "",
            "--repl-diskless-sync",
            "yes",
            "--repl-diskless-sync-delay",
            "0",
        ],
    );
    let mut c = m.conn();
    assert_eq!(c.cmd("SET a 1"), R::ok());
    // A hand-made replica: handshake, PSYNC, then hang up mid-transfer.
    let mut r = m.conn();
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(r.cmd("REPLCONF capa eof capa psync2"), R::ok());
    r.send(&[b"PSYNC", b"?", b"-1"]);
    match r.read() {
        R::Simple(s) => assert!(s.starts_with("FULLRESYNC"), "{s}"),
        other => panic!("{other:?}"),
    }
    let server_pid = m.child.id();
    let mut kids = Vec::new();
    assert!(wait_until(Duration::from_secs(5), || {
        kids = children_of(server_pid);
        !kids.is_empty()
    }));
    let (child, _) = kids[0];
    drop(r);
    assert!(
        wait_until(Duration::from_secs(15), || m.stdout().contains(
            "Diskless rdb transfer, last replica dropped, killing fork child."
        )),
        "{}",
        m.stdout()
    );
    assert!(wait_until(Duration::from_secs(5), || proc_state(child).is_none()));
    assert_eq!(c.cmd("GET a"), R::bulk("1"));
}

/// SHUTDOWN SAVE with a snapshot child running: the child is killed, the final
/// save is done in the server, and nothing stale is left behind.
#[test]
fn shutdown_save_kills_the_child_then_saves() {
    let s = start_with_child_delay(20_000, &["--save", ""]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET a 1"), R::ok());
    assert_eq!(
        c.cmd("BGSAVE"),
        R::Simple("Background saving started".into())
    );
    assert!(wait_until(Duration::from_secs(5), || !temp_files(
        s.dir.path()
    )
    .is_empty()));
    assert_eq!(c.cmd("SET b 2"), R::ok());
    c.send(&[b"SHUTDOWN", b"SAVE"]);
    let mut s = s;
    assert!(wait_until(Duration::from_secs(10), || matches!(
        s.child.try_wait(),
        Ok(Some(_))
    )));
    assert!(temp_files(s.dir.path()).is_empty());
    let data = std::fs::read(s.dir.path().join("dump.rdb")).expect("dump.rdb");
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
    .expect("loadable RDB");
    assert_eq!(info.keys, 2);
    assert!(s.stdout().contains("DB saved on disk"));
}

/// INFO stats counts forks and times the last one (`total_forks`,
/// `latest_fork_usec`), as Redis does: both start at 0 and a BGSAVE moves them.
#[test]
fn info_stats_counts_and_times_forks_as_redis_does() {
    fn stat(c: &mut Conn, name: &str) -> i64 {
        common::info_field(c, "stats", name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no integer {name}"))
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = common::RealRedis::start(dir.path(), "dump.rdb", &[]);
    let ours = TestServer::start(&["--save", "", "--enable-debug-command", "yes"]);
    for (who, mut c) in [("tandem", ours.conn()), ("redis", theirs.conn())] {
        assert_eq!(c.cmd("DEBUG POPULATE 20000 key 10"), R::ok(), "{who}");
        assert_eq!(
            (
                stat(&mut c, "total_forks"),
                stat(&mut c, "latest_fork_usec")
            ),
            (0, 0),
            "{who}: no fork yet"
        );
        assert_eq!(
            c.cmd("BGSAVE"),
            R::Simple("Background saving started".into()),
            "{who}"
        );
        assert_eq!(stat(&mut c, "total_forks"), 1, "{who}");
        assert!(stat(&mut c, "latest_fork_usec") > 0, "{who}: fork timed");
        assert!(
            wait_until(Duration::from_secs(20), || {
                let text = match c.cmd("INFO persistence") {
                    R::Bulk(b) => String::from_utf8(b).expect("utf8"),
                    _ => String::new(),
                };
                text.contains("rdb_bgsave_in_progress:0")
            }),
            "{who}: BGSAVE did not finish"
        );
    }
}
