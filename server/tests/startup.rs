//! Process startup: config files, daemonize, pidfile, log format, fatal config errors.
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Kills a daemonized server by the pid it wrote, even if the test fails.
struct PidGuard(u32);

impl Drop for PidGuard {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
        if !wait_until(Duration::from_secs(5), || !alive(self.0)) {
            let _ = Command::new("kill")
                .args(["-9", &self.0.to_string()])
                .status();
        }
    }
}

/// Kills a foreground child on drop.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// `pid:role dd Mon yyyy hh:mm:ss.mmm <level> msg`
fn is_redis_log_line(l: &str) -> bool {
    let Some((pid, rest)) = l.split_once(':') else {
        return false;
    };
    let b = rest.as_bytes();
    pid.chars().all(|c| c.is_ascii_digit())
        && !pid.is_empty()
        && b.len() > 29
        && matches!(b[0], b'C' | b'M' | b'S')
        && b[1] == b' '
        && b[2].is_ascii_digit()
        && b[3].is_ascii_digit()
        && b[4] == b' '
        && b[5..8].iter().all(u8::is_ascii_alphabetic)
        && b[8] == b' '
        && b[9..13].iter().all(u8::is_ascii_digit)
        && &rest[13..14] == " "
        && &rest[16..17] == ":"
        && &rest[22..23] == "."
        && b[26] == b' '
        && matches!(b[27], b'.' | b'-' | b'*' | b'#')
        && b[28] == b' '
}

const SEED: &str = "bind 192.168.xx.1\nport 6379\ndaemonize yes\nlogfile \"redis.log\"\ndir /tmp\nmasterauth 123456\nrequirepass 123456\nappendonly yes\nappendfilename \"appendonly.aof\"\n";

#[test]
fn seed_config_starts_daemonized_with_pidfile_and_redis_log_format() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = SEED
        .replace("192.168.xx.1", "127.0.0.1")
        .replace("port 6379", &format!("port {port}"))
        .replace("dir /tmp", &format!("dir {}", dir.path().display()));
    let conf_path = dir.path().join("redis.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let pidfile = dir.path().join("redis.pid");
    // The pidfile goes on the command line so the test never writes /var/run.
    let status = Command::new(server_bin())
        .arg(&conf_path)
        .args(["--pidfile", pidfile.to_str().unwrap()])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    // The parent returns at once; the daemon keeps running.
    assert!(status.success(), "{status:?}");
    assert!(
        wait_until(Duration::from_secs(10), || read(&pidfile)
            .trim()
            .parse::<u32>()
            .is_ok()),
        "no pidfile"
    );
    let pid: u32 = read(&pidfile).trim().parse().unwrap();
    let _guard = PidGuard(pid);
    let log = dir.path().join("redis.log");
    assert!(wait_until(Duration::from_secs(10), || read(&log)
        .contains("Ready to accept connections")));
    let text = read(&log);
    for l in text.lines() {
        assert!(is_redis_log_line(l), "bad log line {l:?}");
        assert!(
            l.starts_with(&format!("{pid}:")),
            "line from another pid: {l}"
        );
    }
    assert!(text.contains(&format!("{pid}:C ")), "{text}");
    assert!(text.contains("# oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo"));
    assert!(text.contains(&format!(
        "Redis version=7.0.15, bits=64, commit=00000000, modified=0, pid={pid}, just started"
    )));
    assert!(text.contains("# Configuration loaded"));
    assert!(text.contains(&format!("{pid}:M ")));
    assert!(text.contains(&format!("* Running mode=standalone, port={port}.")));
    assert!(text.contains("# Server initialized"));
    // Tandem acts on every directive of the seed config: no "not acted on" warning.
    assert!(
        !text.contains("does not act on"),
        "unexpected warning in {text}"
    );
    // The daemon serves, and requirepass is in force.
    let mut c = Conn::connect(port);
    assert_eq!(
        c.cmd("PING"),
        R::Err("NOAUTH Authentication required.".into())
    );
    // SIGTERM stops it and removes the pidfile.
    let _ = Command::new("kill").arg(pid.to_string()).status();
    assert!(wait_until(Duration::from_secs(10), || !alive(pid)));
    assert!(!pidfile.exists(), "pidfile left behind");
    assert!(read(&log).contains("Redis is now ready to exit, bye bye..."));
}

fn spawn(dir: &Path, args: &[&str]) -> ChildGuard {
    ChildGuard(
        Command::new(server_bin())
            .args(args)
            .current_dir(dir)
            .stdout(std::fs::File::create(dir.join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn debian_stock_config_starts_and_names_directives_not_acted_on() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("redis.conf");
    std::fs::copy("/etc/redis/redis.conf", &conf).expect("Debian's redis.conf is installed");
    let port = free_port();
    let d = dir.path().to_str().unwrap();
    let log = format!("{d}/server.log");
    let pidfile = format!("{d}/server.pid");
    let port_s = port.to_string();
    let mut child = spawn(
        dir.path(),
        &[
            conf.to_str().unwrap(),
            "--port",
            &port_s,
            "--dir",
            d,
            "--logfile",
            &log,
            "--pidfile",
            &pidfile,
            "--daemonize",
            "no",
        ],
    );
    let ready = wait_until(Duration::from_secs(10), || {
        read(Path::new(&log)).contains("Ready to accept connections")
    });
    assert!(
        ready,
        "not ready: {}\n{}",
        read(Path::new(&log)),
        read(&dir.path().join("stderr.log"))
    );
    let text = read(Path::new(&log));
    let warn: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("does not act on"))
        .collect();
    assert_eq!(warn.len(), 1, "{text}");
    let named: Vec<&str> = warn[0]
        .split_once("directives: ")
        .map(|(_, l)| l.split(", ").collect())
        .unwrap_or_default();
    for name in [
        "activerehashing",
        "jemalloc-bg-thread",
        "lazyfree-lazy-user-del",
    ] {
        assert!(named.contains(&name), "{name} not named in {named:?}");
    }
    for acted in [
        "port",
        "bind",
        "dir",
        "logfile",
        "loglevel",
        "databases",
        "hz",
        "appendonly",
        "save",
        "dbfilename",
        "protected-mode",
        "tcp-keepalive",
        "oom-score-adj-values",
    ] {
        assert!(!named.contains(&acted), "{acted} named in {named:?}");
    }
    // pidfile is written without daemonize too.
    assert_eq!(read(Path::new(&pidfile)).trim(), child.0.id().to_string());
    let mut c = Conn::connect(port);
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(
        c.cmd("CONFIG GET dir"),
        R::Arr(vec![R::bulk("dir"), R::bulk(d)])
    );
    // The stock file binds 127.0.0.1 and the optional -::1; the override of port won.
    assert_eq!(
        c.cmd("CONFIG GET bind"),
        R::Arr(vec![R::bulk("bind"), R::bulk("127.0.0.1 -::1")])
    );
    let _ = child.0.kill();
}

fn fatal(conf_text: &str, extra: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let conf: PathBuf = dir.path().join("bad.conf");
    std::fs::write(&conf, conf_text).unwrap();
    let out = Command::new(server_bin())
        .arg(&conf)
        .args(extra)
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_directive_stops_startup_with_redis_fatal_block() {
    let (code, err) = fatal("# test\nport 7000\n\nfrobnicate yes\n", &[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line 4\n>>> 'frobnicate yes'\nBad directive or wrong number of arguments\n"
    );
    let (code, err) = fatal("maxmemory 12 mb\n", &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(">>> 'maxmemory 12 mb'\nwrong number of arguments\n"),
        "{err}"
    );
    // Command-line options are lines after the file.
    let (code, err) = fatal("port 7000\n", &["--appendonly", "maybe"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("at line 3\n>>> 'appendonly \"maybe\"'\nargument must be 'yes' or 'no'\n"),
        "{err}"
    );
    let (code, err) = fatal("rename-command FLUSHALL \"\"\n", &[]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("rename-command is not supported by Tandem"),
        "{err}"
    );
    let (code, err) = fatal("dir /nonexistent/dir/x\n", &[]);
    assert_eq!(code, Some(1));
    assert!(err.ends_with("No such file or directory\n"), "{err}");
}

#[test]
fn missing_config_file_is_fatal() {
    let out = Command::new(server_bin())
        .arg("/nonexistent/tandem.conf")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Fatal error, can't open config file '/nonexistent/tandem.conf': No such file or directory\n"
    );
}

#[test]
fn always_show_logo_prints_the_banner_instead_of_the_mode_line() {
    let s = TestServer::start(&["--always-show-logo", "yes"]);
    assert!(wait_until(Duration::from_secs(5), || s
        .stdout()
        .contains("Ready to accept connections")));
    let out = s.stdout();
    assert!(out.contains(&format!("Port: {}", s.port)), "{out}");
    assert!(!out.contains("Running mode="), "{out}");
}

#[test]
fn configured_replica_logs_with_role_s() {
    // Port 1 on loopback: nothing listens there; only the role char matters here.
    let s = TestServer::start(&["--replicaof", "127.0.0.1", "1"]);
    assert!(wait_until(Duration::from_secs(5), || s
        .stdout()
        .contains("Ready to accept connections")));
    let out = s.stdout();
    let ready = out
        .lines()
        .find(|l| l.contains("Ready to accept connections"))
        .unwrap_or_default();
    assert!(ready.contains(":S "), "{out}");
    assert!(out
        .lines()
        .any(|l| l.contains(":C ") && l.contains("Configuration loaded")));
}

/// Starts `bin` under `ulimit -n <nofile>` (sh's builtin, then exec: the child is
/// the server), on `port`, logging to `log`.
fn start_with_nofile(bin: &Path, nofile: u32, port: u16, log: &Path, extra: &[&str]) -> ChildGuard {
    let mut args: Vec<String> = vec![
        "-c".into(),
        format!("ulimit -n {nofile} && exec \"$0\" \"$@\""),
        bin.display().to_string(),
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        String::new(),
        "--logfile".into(),
        log.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let child = Command::new("sh")
        .args(&args)
        .current_dir(log.parent().expect("log dir"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn under ulimit");
    let guard = ChildGuard(child);
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "{} did not start under ulimit -n {nofile}",
        bin.display()
    );
    guard
}

/// The lines of a Redis-format log without their `pid:role date time level` prefix.
fn log_messages(p: &Path) -> Vec<String> {
    read(p)
        .lines()
        .filter_map(|l| l.splitn(6, ' ').nth(5).map(str::to_string))
        .collect()
}

/// A `ulimit -n` lower than `maxclients + 32` that the server cannot raise (the hard
/// limit is the same, and an unprivileged or sandboxed process cannot lift it):
/// `maxclients` is lowered to fit, with Redis's warnings, and CONFIG SET cannot raise
/// it past the limit again. Side by side with Redis 7.0.15; the warning lines are
/// compared without their OS error text (checked for being there).
#[test]
fn a_low_open_files_limit_lowers_maxclients_like_redis() {
    let dir = tempfile::tempdir().expect("tmp");
    let (ours_dir, theirs_dir) = (dir.path().join("ours"), dir.path().join("theirs"));
    std::fs::create_dir_all(&ours_dir).expect("mkdir");
    std::fs::create_dir_all(&theirs_dir).expect("mkdir");
    let (ours_log, theirs_log) = (ours_dir.join("log"), theirs_dir.join("log"));
    let (p1, p2) = (free_port(), free_port());
    let _ours = start_with_nofile(&server_bin(), 300, p1, &ours_log, &[]);
    let _theirs = start_with_nofile(
        Path::new("/usr/bin/redis-server"),
        300,
        p2,
        &theirs_log,
        &[],
    );
    let (mut a, mut b) = (Conn::connect(p1), Conn::connect(p2));
    let get = |c: &mut Conn| c.cmd("CONFIG GET maxclients");
    let limit_ours = get(&mut a);
    let limit_theirs = get(&mut b);
    // A root process with CAP_SYS_RESOURCE could raise the limit: then both keep
    // 10000 and log the increase instead; either way they agree.
    assert_eq!(limit_ours, limit_theirs);
    let raised = limit_ours == arr(&["maxclients", "10000"]);
    if !raised {
        assert_eq!(limit_ours, arr(&["maxclients", "268"]));
    }
    for line in [
        "CONFIG SET maxclients 20000",
        "CONFIG SET maxclients 100",
        "CONFIG SET maxclients 200",
    ] {
        let (ra, rb) = (a.cmd(line), b.cmd(line));
        assert_eq!(ra, rb, "reply to {line}");
        assert_eq!(get(&mut a), get(&mut b), "maxclients after {line}");
    }
    let strip_os_error = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| l.contains("files") || l.contains("maxclients"))
            .map(|l| match l.find("because of OS error: ") {
                Some(i) => l[..i].to_string(),
                None => l,
            })
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(5), || strip_os_error(log_messages(
            &ours_log
        ))
        .len()
            == strip_os_error(log_messages(&theirs_log)).len()),
        "ours: {:?}\ntheirs: {:?}",
        log_messages(&ours_log),
        log_messages(&theirs_log)
    );
    let (ours, theirs) = (
        strip_os_error(log_messages(&ours_log)),
        strip_os_error(log_messages(&theirs_log)),
    );
    assert_eq!(ours, theirs);
    assert!(!ours.is_empty());
    if !raised {
        assert!(
            read(&ours_log).contains("because of OS error: Operation not permitted."),
            "{}",
            read(&ours_log)
        );
    }
}

/// A `ulimit -n` that does not even hold the 32 descriptors the server keeps for
/// itself: both servers refuse to start, exit 1, and say so last in the log.
#[test]
fn an_open_files_limit_below_the_reserve_stops_the_start_like_redis() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = |bin: &Path, name: &str| -> (Option<i32>, String) {
        let log = dir.path().join(name);
        let mut child = Command::new("sh")
            .args([
                "-c",
                "ulimit -n 30 && exec \"$0\" \"$@\"",
                &bin.display().to_string(),
                "--port",
                &free_port().to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--logfile",
                &log.display().to_string(),
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn under ulimit");
        let mut status = None;
        let exited = wait_until(Duration::from_secs(10), || {
            status = child.try_wait().expect("wait").map(|s| s.code());
            status.is_some()
        });
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} kept running under ulimit -n 30", bin.display());
        }
        let status = status.flatten();
        let last = log_messages(&log).last().cloned().unwrap_or_default();
        (status, last)
    };
    let ours = run(&server_bin(), "ours.log");
    let theirs = run(Path::new("/usr/bin/redis-server"), "theirs.log");
    assert_eq!(ours, theirs);
    assert_eq!(ours.0, Some(1));
    assert!(
        ours.1.contains("'ulimit -n' of 30 is not enough"),
        "{ours:?}"
    );
}
