//! CONFIG GET / SET / RESETSTAT / REWRITE over TCP.
mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn pair(name: &str, value: &str) -> R {
    R::Arr(vec![R::bulk(name), R::bulk(value)])
}

#[test]
fn config_get_single_glob_and_multiple_patterns() {
    let s = TestServer::start(&["--maxmemory", "2mb", "--hz", "20"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("CONFIG GET maxmemory"), pair("maxmemory", "2097152"));
    assert_eq!(c.cmd("config get HZ"), pair("hz", "20"));
    assert_eq!(c.cmd("CONFIG GET nosuchthing"), R::Arr(vec![]));
    assert_eq!(c.cmd("CONFIG GET slaveof"), pair("slaveof", ""));
    // Aliases answer under the name asked for; a glob returns both names.
    let R::Arr(items) = c.cmd("CONFIG GET *read-only") else {
        panic!("not an array")
    };
    assert_eq!(
        items,
        vec![
            R::bulk("replica-read-only"),
            R::bulk("yes"),
            R::bulk("slave-read-only"),
            R::bulk("yes")
        ]
    );
    // Several patterns; a name matched twice appears once.
    let R::Arr(items) = c.cmd("CONFIG GET port maxmemory-* port") else {
        panic!("not an array")
    };
    let names: Vec<R> = items.iter().step_by(2).cloned().collect();
    assert_eq!(names[0], R::bulk("port"));
    assert!(names.contains(&R::bulk("maxmemory-policy")));
    assert_eq!(names.iter().filter(|n| **n == R::bulk("port")).count(), 1);
    // Every name Redis 7.0.15 answers for (aliases included), plus Tandem's five
    // own directives (tandem-admin-bind, tandem-admin-port, tandem-event-loop,
    // tandem-fenced-start, tandem-requirepass-file).
    let R::Arr(all) = c.cmd("CONFIG GET *") else {
        panic!("not an array")
    };
    assert_eq!(all.len(), (192 + 5) * 2);
    assert_eq!(
        c.cmd("CONFIG GET"),
        R::Err("ERR wrong number of arguments for 'config|get' command".into())
    );
}

#[test]
fn config_set_is_atomic_and_uses_redis_error_texts() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(
        c.cmd("CONFIG SET maxmemory 10mb maxmemory-policy allkeys-lru"),
        R::ok()
    );
    assert_eq!(c.cmd("CONFIG GET maxmemory"), pair("maxmemory", "10485760"));
    assert_eq!(
        c.cmd("CONFIG GET maxmemory-policy"),
        pair("maxmemory-policy", "allkeys-lru")
    );
    // One bad pair: nothing changes.
    assert_eq!(
        c.cmd("CONFIG SET maxmemory 20mb hz abc"),
        R::Err(
            "ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer"
                .into()
        )
    );
    assert_eq!(c.cmd("CONFIG GET maxmemory"), pair("maxmemory", "10485760"));
    let cases = [
        (
            "CONFIG SET foo bar",
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'",
        ),
        (
            "CONFIG SET maxmemory abc",
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value",
        ),
        (
            "CONFIG SET daemonize yes",
            "ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config",
        ),
        (
            "CONFIG SET dir /tmp",
            "ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config",
        ),
        (
            "CONFIG SET maxmemory 1mb maxmemory 2mb",
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - duplicate parameter",
        ),
        ("CONFIG SET maxmemory 1mb port", "ERR syntax error"),
        (
            "CONFIG SET hz",
            "ERR wrong number of arguments for 'config|set' command",
        ),
        (
            "CONFIG SET port -5",
            "ERR CONFIG SET failed (possibly related to argument 'port') - argument must be between 0 and 65535 inclusive",
        ),
        (
            "CONFIG SET appendonly maybe",
            "ERR CONFIG SET failed (possibly related to argument 'appendonly') - argument must be 'yes' or 'no'",
        ),
        (
            "CONFIG SET maxmemory-policy foo",
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction",
        ),
        (
            "CONFIG SET save abc",
            "ERR CONFIG SET failed (possibly related to argument 'save') - Invalid save parameters",
        ),
        ("CONFIG FOO", "ERR unknown subcommand 'FOO'. Try CONFIG HELP."),
        (
            "CONFIG RESETSTAT x",
            "ERR wrong number of arguments for 'config|resetstat' command",
        ),
        (
            "CONFIG REWRITE",
            "ERR The server is running without a config file",
        ),
    ];
    for (cmd, err) in cases {
        assert_eq!(c.cmd(cmd), R::Err(err.into()), "{cmd}");
    }
    // Listening sockets are not rebound at runtime: refused, unless unchanged.
    assert_eq!(
        c.cmd("CONFIG SET port 1"),
        R::Err("ERR CONFIG SET failed (possibly related to argument 'port') - Tandem cannot change its listening sockets at runtime; restart with the new value".into())
    );
    assert_eq!(c.cmd(&format!("CONFIG SET port {}", s.port)), R::ok());
    // Multi-argument values are given as one string.
    assert_eq!(
        c.cmd_args(&[b"CONFIG", b"SET", b"save", b"100 10 20 30"]),
        R::ok()
    );
    assert_eq!(c.cmd("CONFIG GET save"), pair("save", "100 10 20 30"));
    assert_eq!(c.cmd("CONFIG RESETSTAT"), R::ok());
}

#[test]
fn config_set_requirepass_applies_to_new_connections() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("CONFIG SET requirepass s3cret"), R::ok());
    let mut other = s.conn();
    assert_eq!(
        other.cmd("PING"),
        R::Err("NOAUTH Authentication required.".into())
    );
    assert_eq!(
        c.cmd_args(&[b"CONFIG", b"SET", b"requirepass", b""]),
        R::ok()
    );
    assert_eq!(s.conn().cmd("PING"), R::Simple("PONG".into()));
}

struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_with_file(dir: &Path, conf: &str) -> (ChildGuard, u16) {
    start_bin_with_file(&server_bin(), dir, conf)
}

fn start_bin_with_file(bin: &Path, dir: &Path, conf: &str) -> (ChildGuard, u16) {
    let path = dir.join("redis.conf");
    std::fs::write(&path, conf).unwrap();
    for _ in 0..5 {
        let port = free_port();
        let child = Command::new(bin)
            .arg(&path)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--dir", dir.to_str().unwrap()])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut g = ChildGuard(child);
        if wait_until(Duration::from_secs(10), || {
            matches!(g.0.try_wait(), Ok(Some(_)))
                || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }) && matches!(g.0.try_wait(), Ok(None))
        {
            return (g, port);
        }
    }
    panic!("server with config file did not start");
}

#[test]
fn config_rewrite_updates_the_file_and_keeps_comments() {
    let dir = tempfile::tempdir().unwrap();
    let conf =
        "# my settings\nmaxmemory 1gb\n# keep me\nslave-read-only yes\nlogfile \"server.log\"\n";
    let (_g, port) = start_with_file(dir.path(), conf);
    let mut c = Conn::connect(port);
    assert_eq!(
        c.cmd("CONFIG SET maxmemory 2mb replica-read-only no maxmemory-policy allkeys-lru"),
        R::ok()
    );
    assert_eq!(c.cmd("CONFIG REWRITE"), R::ok());
    let text = std::fs::read_to_string(dir.path().join("redis.conf")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# my settings");
    assert_eq!(lines[1], "maxmemory 2mb");
    assert_eq!(lines[2], "# keep me");
    assert_eq!(lines[3], "replica-read-only no");
    assert_eq!(lines[4], "logfile \"server.log\"");
    assert!(lines.contains(&"# Generated by CONFIG REWRITE"), "{text}");
    assert!(lines.contains(&"maxmemory-policy allkeys-lru"), "{text}");
    assert!(lines.contains(&format!("port {port}").as_str()), "{text}");
    // loglevel takes effect at runtime: REWRITE's notice line is dropped at warning.
    let log = dir.path().join("server.log");
    let count = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("CONFIG REWRITE executed with success.")
            .count()
    };
    assert_eq!(count(), 1);
    assert_eq!(c.cmd("CONFIG SET loglevel warning"), R::ok());
    assert_eq!(c.cmd("CONFIG REWRITE"), R::ok());
    assert_eq!(count(), 1);
    assert_eq!(c.cmd("CONFIG SET loglevel notice"), R::ok());
    assert_eq!(c.cmd("CONFIG REWRITE"), R::ok());
    assert_eq!(count(), 2);
    // logfile can be switched at runtime (a Tandem extension; Redis 7.0 refuses).
    assert_eq!(c.cmd("CONFIG SET logfile other.log"), R::ok());
    assert_eq!(c.cmd("CONFIG REWRITE"), R::ok());
    let other = std::fs::read_to_string(dir.path().join("other.log")).unwrap_or_default();
    assert!(
        other.contains("CONFIG REWRITE executed with success."),
        "{other}"
    );
    // The rewritten file starts a server again.
    drop(_g);
    let (_g2, port2) = start_with_file(
        dir.path(),
        &std::fs::read_to_string(dir.path().join("redis.conf")).unwrap(),
    );
    let mut c2 = Conn::connect(port2);
    assert_eq!(c2.cmd("CONFIG GET maxmemory"), pair("maxmemory", "2097152"));
}

/// INFO's fork, save, rewrite and full/partial sync counters after CONFIG
/// RESETSTAT, on a master that forked, saved, rewrote its AOF and served a
/// replica: Redis 7.0 zeroes them all.
#[test]
fn resetstat_zeroes_fork_save_rewrite_and_sync_counters_as_redis_does() {
    const FIELDS: [&str; 7] = [
        "sync_full",
        "sync_partial_err",
        "sync_partial_ok",
        "rdb_saves",
        "total_forks",
        "latest_fork_usec",
        "aof_rewrites",
    ];
    let counters = |c: &mut Conn| -> Vec<(String, String)> {
        FIELDS
            .iter()
            .map(|f| {
                let v = info_field(c, "everything", f).unwrap_or_else(|| panic!("no {f}"));
                (f.to_string(), v)
            })
            .collect()
    };
    let exercise = |master: &mut Conn, replica: &mut Conn, master_port: u16| {
        assert_eq!(master.cmd("CONFIG SET appendonly yes"), R::ok());
        assert_eq!(master.cmd("SET k v"), R::ok());
        assert_eq!(
            replica.cmd(&format!("REPLICAOF 127.0.0.1 {master_port}")),
            R::ok()
        );
        assert!(wait_until(Duration::from_secs(10), || {
            info_field(replica, "replication", "master_link_status").as_deref() == Some("up")
        }));
        assert!(wait_until(Duration::from_secs(10), || {
            info_field(master, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
                && info_field(master, "persistence", "rdb_bgsave_in_progress").as_deref()
                    == Some("0")
        }));
        assert_eq!(master.cmd("SAVE"), R::ok());
        let before = counters(master);
        for f in ["sync_full", "rdb_saves", "total_forks"] {
            let v = &before.iter().find(|(k, _)| k == f).unwrap().1;
            assert_ne!(v, "0", "{f} before RESETSTAT: {before:?}");
        }
        assert_eq!(master.cmd("CONFIG RESETSTAT"), R::ok());
        counters(master)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let delay = ["--repl-diskless-sync-delay", "0"];
    let (theirs, their_replica) = (
        RealRedis::start(dir.path(), "m.rdb", &delay),
        RealRedis::start(dir.path(), "r.rdb", &[]),
    );
    let redis = exercise(&mut theirs.conn(), &mut their_replica.conn(), theirs.port);
    let (ours, our_replica) = (TestServer::start(&delay), TestServer::start(&[]));
    let tandem = exercise(&mut ours.conn(), &mut our_replica.conn(), ours.port);
    assert!(redis.iter().all(|(_, v)| v == "0"), "redis: {redis:?}");
    assert_eq!(tandem, redis);
}

/// CONFIG REWRITE writes the role the node has now, as Redis does: a replica
/// made by REPLICAOF at runtime restarts from the rewritten file as a replica
/// (the line was left out and it came back as a master), and a replica
/// promoted with REPLICAOF NO ONE loses the line.
#[test]
fn config_rewrite_writes_the_runtime_replicaof_like_redis() {
    let master = free_port();
    let role_lines = |bin: &Path| -> (Vec<String>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let (_g, port) = start_bin_with_file(bin, dir.path(), "save \"\"\n");
        let mut c = Conn::connect(port);
        let lines = |c: &mut Conn| {
            assert_eq!(c.cmd("CONFIG REWRITE"), R::ok());
            std::fs::read_to_string(dir.path().join("redis.conf"))
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("replicaof") || l.starts_with("slaveof"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(c.cmd(&format!("REPLICAOF 127.0.0.1 {master}")), R::ok());
        let as_replica = lines(&mut c);
        assert_eq!(c.cmd("REPLICAOF NO ONE"), R::ok());
        (as_replica, lines(&mut c))
    };
    let ours = role_lines(&server_bin());
    let theirs = role_lines(Path::new("/usr/bin/redis-server"));
    assert_eq!(theirs.0, vec![format!("replicaof 127.0.0.1 {master}")]);
    assert_eq!(ours, theirs);
}
