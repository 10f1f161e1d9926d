//! Secrets stay secret: SLOWLOG and MONITOR show `(redacted)` where Redis 7.0.15
//! does (side by side with the real server), `ps` shows the process title instead
//! of a `--requirepass` command line, and CONFIG REWRITE keeps the file's mode.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SECRETS: [&str; 5] = ["s3cret", "mpw", "muser", "aclpw1", "aclpw2"];

/// The commands of the differential test, on `c` (already authenticated) and on a
/// fresh connection `h` that authenticates with HELLO.
fn run_secret_commands(port: u16, c: &mut Conn) {
    for cmd in [
        "CONFIG SET requirepass s3cret",
        "CONFIG SET masterauth mpw",
        "CONFIG SET masteruser muser",
        "CONFIG SET maxmemory 0 requirepass s3cret",
        "AUTH s3cret",
        "AUTH default s3cret",
        "SET k v",
    ] {
        assert_eq!(c.cmd(cmd), R::ok(), "{cmd}");
    }
    assert!(c.cmd("AUTH nope").err_text().starts_with("WRONGPASS"));
    // ACL SETUSER: the user and every rule, also when a rule is refused.
    assert_eq!(c.cmd("ACL SETUSER someone >aclpw1 on"), R::ok());
    assert!(c
        .cmd("ACL SETUSER other >aclpw2 bogus")
        .err_text()
        .starts_with("ERR Error in ACL SETUSER modifier 'bogus'"));
    assert!(matches!(c.cmd("CONFIG GET masterauth"), R::Arr(_)));
    let mut h = Conn::connect(port);
    assert!(matches!(
        h.cmd("HELLO 3 AUTH default s3cret SETNAME foo"),
        R::Map(_)
    ));
    assert_eq!(h.cmd("ECHO done"), R::bulk("done"));
    assert_eq!(c.cmd("ECHO end"), R::bulk("end"));
}

/// SLOWLOG GET entries as (arguments, client name), oldest first.
fn slowlog(c: &mut Conn) -> Vec<(Vec<String>, String)> {
    let R::Arr(entries) = c.cmd("SLOWLOG GET -1") else {
        panic!("SLOWLOG GET is an array")
    };
    let text = |r: &R| match r {
        R::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a bulk: {other:?}"),
    };
    let mut out: Vec<_> = entries
        .iter()
        .map(|e| {
            let R::Arr(f) = e else { panic!("entry {e:?}") };
            let R::Arr(args) = &f[3] else {
                panic!("argv {f:?}")
            };
            (args.iter().map(text).collect(), text(&f[5]))
        })
        .collect();
    out.reverse();
    out
}

/// MONITOR and SLOWLOG output of one server for the secret commands.
fn observe(port: u16) -> (Vec<String>, Vec<(Vec<String>, String)>) {
    let mut c = Conn::connect(port);
    let mut mon = Conn::connect(port);
    assert_eq!(c.cmd("SLOWLOG RESET"), R::ok());
    assert_eq!(mon.cmd("MONITOR"), R::ok());
    run_secret_commands(port, &mut c);
    (monitor_lines(&mut mon), slowlog(&mut c))
}

#[test]
fn slowlog_and_monitor_redact_passwords_like_redis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RealRedis::start(dir.path(), "dump.rdb", &["--slowlog-log-slower-than", "0"]);
    let want = observe(redis.port);
    let s = TestServer::start(&["--slowlog-log-slower-than", "0"]);
    let got = observe(s.port);
    let shown = format!("{got:?}");
    for secret in SECRETS {
        assert!(!shown.contains(secret), "{secret} shown in {shown}");
    }
    assert!(shown.contains("(redacted)"), "{shown}");
    assert_eq!(got.0, want.0, "MONITOR");
    assert_eq!(got.1, want.1, "SLOWLOG");
}

/// MONITOR lines for a transaction that changes database, on one server.
fn monitor_transaction(port: u16) -> Vec<String> {
    let mut c = Conn::connect(port);
    let mut mon = Conn::connect(port);
    assert_eq!(mon.cmd("MONITOR"), R::ok());
    for (cmd, want) in [
        ("SELECT 5", R::ok()),
        ("SET a b", R::ok()),
        ("MULTI", R::ok()),
        ("SET c d", R::Simple("QUEUED".into())),
        ("SELECT 2", R::Simple("QUEUED".into())),
        ("EXEC", R::Arr(vec![R::ok(), R::ok()])),
    ] {
        assert_eq!(c.cmd(cmd), want, "{cmd}");
    }
    assert!(matches!(c.cmd("CONFIG GET port"), R::Arr(_)));
    assert_eq!(c.cmd("ECHO end"), R::bulk("end"));
    monitor_lines(&mut mon)
}

#[test]
fn monitor_shows_commands_after_they_ran_like_redis() {
    // Lines are built after the command (so they can carry its redactions): the
    // database is the one it left selected, EXEC's commands come one by one before
    // it, and admin commands such as CONFIG are not shown.
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let s = TestServer::start(&[]);
    let got = monitor_transaction(s.port);
    assert_eq!(got, monitor_transaction(redis.port));
    assert_eq!(got[0], "[5 127.0.0.1] \"SELECT\" \"5\"");
}

#[test]
fn tls_passphrases_and_malformed_auth_are_redacted_too() {
    // Stricter than Redis 7.0.15, which shows these in clear.
    let s = TestServer::start(&["--slowlog-log-slower-than", "0"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("CONFIG SET tls-key-file-pass kp1"), R::ok());
    assert_eq!(c.cmd("CONFIG SET tls-client-key-file-pass kp2"), R::ok());
    assert!(matches!(c.cmd("AUTH a1 b1 c1"), R::Err(_)));
    let log = format!("{:?}", slowlog(&mut c));
    for secret in ["kp1", "kp2", "a1", "b1", "c1"] {
        assert!(!log.contains(secret), "{secret} shown in {log}");
    }
    assert!(log.contains(r#"["CONFIG", "SET", "tls-key-file-pass", "(redacted)"]"#));
}

/// The process's command line as `ps` reads it, NULs as spaces, trailing ones cut.
fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).expect("read cmdline");
    let text: String = String::from_utf8_lossy(&raw).replace('\0', " ");
    text.trim_end().to_string()
}

#[test]
fn the_command_line_password_is_replaced_by_the_process_title() {
    let s = TestServer::start(&["--requirepass", "s3cret"]);
    let pid = s.child.id();
    let bin = server_bin();
    let want = format!("{} 127.0.0.1:{}", bin.display(), s.port);
    assert_eq!(cmdline(pid), want);
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(!String::from_utf8_lossy(&raw).contains("s3cret"));
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
    assert_eq!(comm.trim_end(), "tandem-server");

    let mut c = s.conn();
    assert_eq!(c.cmd("AUTH s3cret"), R::ok());
    assert_eq!(
        c.cmd_args(&[
            b"CONFIG",
            b"SET",
            b"proc-title-template",
            b"{title} p={port} {{x}"
        ]),
        R::ok()
    );
    assert_eq!(
        cmdline(pid),
        format!("{} p={} {{x}}", bin.display(), s.port)
    );
}

#[test]
fn process_title_settings_answer_like_redis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let s = TestServer::start(&[]);
    for args in [
        &["CONFIG", "SET", "proc-title-template", "{bogus}"][..],
        &["CONFIG", "SET", "proc-title-template", "{title}"],
        &["CONFIG", "SET", "proc-title-template", ""],
        &["CONFIG", "SET", "proc-title-template", "{title"],
        &[
            "CONFIG",
            "SET",
            "proc-title-template",
            "{port} {server-mode}",
        ],
        &["CONFIG", "GET", "proc-title-template"],
        &["CONFIG", "SET", "set-proc-title", "no"],
        &["CONFIG", "GET", "set-proc-title"],
    ] {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let want = redis.conn().cmd_args(&args);
        assert_eq!(s.conn().cmd_args(&args), want, "{args:?}");
    }
}

#[test]
fn set_proc_title_no_leaves_the_command_line_alone() {
    // As in Redis: the title, and so the scrubbing, is opt-out.
    let s = TestServer::start(&["--set-proc-title", "no", "--loglevel", "notice"]);
    let line = cmdline(s.child.id());
    assert!(
        line.ends_with("--set-proc-title no --loglevel notice"),
        "{line}"
    );
}

/// A server started from a config file only, stopped by pid on drop.
struct FromFile(Child);

impl Drop for FromFile {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server with only a config file holding `body` (plus bind, port and
/// dir); returns it with its port once it accepts connections.
fn start_from_file(dir: &std::path::Path, body: &str) -> (FromFile, u16) {
    let conf = dir.join("tandem.conf");
    let port = free_port();
    std::fs::write(
        &conf,
        format!("bind 127.0.0.1\nport {port}\ndir {}\n{body}", dir.display()),
    )
    .expect("write conf");
    let server = FromFile(
        Command::new(server_bin())
            .arg(&conf)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let up = wait_until(Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "server from config file did not start");
    (server, port)
}

#[test]
fn a_title_longer_than_the_command_line_is_shown_whole() {
    // The command line is the binary and one file name; the title spills into the
    // environment block, which the server moved away first.
    let dir = tempfile::tempdir().expect("tempdir");
    let template = "{title} {listen-addr} {config-file} port={port} tls={tls-port} end";
    let (server, port) =
        start_from_file(dir.path(), &format!("proc-title-template \"{template}\"\n"));
    let want = format!(
        "{} 127.0.0.1:{port} {} port={port} tls=0 end",
        server_bin().display(),
        dir.path().join("tandem.conf").display()
    );
    let started_with = server_bin().display().to_string().len() + " tandem.conf".len();
    assert!(want.len() > started_with + 20);
    assert_eq!(cmdline(server.0.id()), want);
    // The server still reads its configuration and answers.
    assert_eq!(Conn::connect(port).cmd("PING"), R::Simple("PONG".into()));
}

#[test]
fn config_rewrite_keeps_the_file_mode_and_leaves_no_temp_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("tandem.conf");
    std::fs::write(&conf, "").expect("create conf");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (_server, port) = start_from_file(dir.path(), "requirepass s3cret\n");
    assert_eq!(
        std::fs::metadata(&conf).expect("stat").permissions().mode() & 0o7777,
        0o600
    );
    let mut c = Conn::connect(port);
    assert_eq!(c.cmd("AUTH s3cret"), R::ok());
    assert_eq!(c.cmd("CONFIG SET maxmemory 1mb"), R::ok());
    for _ in 0..3 {
        assert_eq!(c.cmd("CONFIG REWRITE"), R::ok());
    }
    let text = std::fs::read_to_string(&conf).expect("read conf");
    assert!(text.contains("\nmaxmemory 1mb\n"), "{text}");
    let mode = std::fs::metadata(&conf).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "dump.rdb")
        .collect();
    names.sort();
    assert_eq!(names, ["tandem.conf"]);
}
