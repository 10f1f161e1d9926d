//! `unixsocket` / `unixsocketperm`: clients served on a Unix domain socket, compared
//! with Redis 7.0.15 (the socket's mode, how CLIENT LIST and MONITOR show such a
//! client, CONFIG GET), a stale file at the path replaced at start, the file removed
//! at exit, and Redis's start-up error for a path that cannot be bound.
mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A raw RESP client on a Unix socket (replies read as raw bytes).
struct UnixConn(BufReader<UnixStream>);

impl UnixConn {
    fn connect(path: &Path) -> UnixConn {
        let s = UnixStream::connect(path).expect("connect to the unix socket");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        UnixConn(BufReader::new(s))
    }

    fn send(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.0.get_mut().write_all(out.as_bytes()).expect("write");
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.0.read_line(&mut line).expect("read");
        line.trim_end().to_string()
    }

    /// A simple, error, integer or bulk reply, as text (bulk: its payload).
    fn cmd(&mut self, args: &[&str]) -> String {
        self.send(args);
        let line = self.line();
        match line.strip_prefix('$') {
            Some(n) => {
                let n: usize = n.parse().expect("bulk length");
                let mut buf = vec![0; n + 2];
                self.0.read_exact(&mut buf).expect("bulk");
                buf.truncate(n);
                String::from_utf8(buf).expect("utf8")
            }
            None => line,
        }
    }
}

/// The CLIENT LIST fields that describe the connection, the path replaced by `P`.
fn connection_fields(list: &str, path: &Path) -> Vec<String> {
    let path = path.to_str().expect("utf8 path");
    list.split_whitespace()
        .filter(|kv| {
            kv.starts_with("addr=") || kv.starts_with("laddr=") || kv.starts_with("flags=")
        })
        .map(|kv| kv.replace(path, "P"))
        .collect()
}

/// What one server shows of a client on its socket at `path`.
fn observe(path: &Path) -> (String, Vec<String>, Vec<String>, String) {
    let meta = std::fs::metadata(path).expect("socket file");
    assert!(meta.file_type().is_socket());
    let mode = format!("{:o}", meta.permissions().mode() & 0o777);
    let mut c = UnixConn::connect(path);
    // protected-mode is on (the default) and there is no password: a Unix socket
    // client is local and served.
    c.send(&["CONFIG", "GET", "protected-mode"]);
    assert_eq!(c.line(), "*2");
    let _ = (c.line(), c.line(), c.line(), c.line());
    assert_eq!(c.cmd(&["SET", "k", "v"]), "+OK");
    assert_eq!(c.cmd(&["GET", "k"]), "v");
    let list = connection_fields(&c.cmd(&["CLIENT", "LIST"]), path);
    let info = connection_fields(&c.cmd(&["CLIENT", "INFO"]), path);
    let mut mon = UnixConn::connect(path);
    assert_eq!(mon.cmd(&["MONITOR"]), "+OK");
    assert_eq!(c.cmd(&["GET", "k"]), "v");
    let line = mon.line();
    let seen = line
        .split_once(' ')
        .map(|(_, rest)| rest.replace(path.to_str().expect("utf8"), "P"))
        .unwrap_or_default();
    (mode, list, info, seen)
}

#[test]
fn unix_socket_clients_are_served_and_shown_like_redis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours_path = dir.path().join("tandem.sock");
    let theirs_path = dir.path().join("redis.sock");
    let p = ours_path.to_str().expect("utf8");
    let ours = TestServer::start(&["--unixsocket", p, "--unixsocketperm", "700"]);
    let q = theirs_path.to_str().expect("utf8");
    let _theirs = RealRedis::start(
        dir.path(),
        "r.rdb",
        &["--unixsocket", q, "--unixsocketperm", "700"],
    );
    let a = observe(&ours_path);
    let b = observe(&theirs_path);
    assert_eq!(a, b, "(tandem, redis)");
    assert_eq!(a.0, "700");
    assert!(a.1.contains(&"flags=U".to_string()), "{a:?}");
    assert_eq!(a.3, "[0 unix:P] \"GET\" \"k\"");
    // CONFIG GET shows both settings as Redis does.
    let mut c = ours.conn();
    assert_eq!(
        c.cmd("CONFIG GET unixsocketperm"),
        R::Arr(vec![R::bulk("unixsocketperm"), R::bulk("700")])
    );
    assert_eq!(
        c.cmd("CONFIG GET unixsocket"),
        R::Arr(vec![R::bulk("unixsocket"), R::bulk(p)])
    );
    // TCP clients are unchanged: no `U`.
    let list = match c.cmd("CLIENT INFO") {
        R::Bulk(b) => String::from_utf8(b).expect("utf8"),
        other => panic!("{other:?}"),
    };
    assert!(list.contains(" flags=N "), "{list}");
}

#[test]
fn a_stale_file_is_replaced_at_start_and_the_socket_removed_at_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.sock");
    std::fs::write(&path, b"left over").expect("stale file");
    let p = path.to_str().expect("utf8");
    let mut s = TestServer::start(&["--unixsocket", p]);
    let mut c = UnixConn::connect(&path);
    assert_eq!(c.cmd(&["PING"]), "+PONG");
    c.send(&["SHUTDOWN", "NOSAVE"]);
    assert!(wait_until(Duration::from_secs(10), || matches!(
        s.child.try_wait(),
        Ok(Some(_))
    )));
    assert!(!path.exists(), "the socket file is still there");
    let log = s.stdout();
    assert!(log.contains("Removing the unix socket file."), "{log}");
    assert!(
        log.contains(&format!(
            "The server is now ready to accept connections at {p}"
        )),
        "{log}"
    );
}

#[test]
fn a_path_that_cannot_be_bound_stops_the_start_with_redis_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no-such-dir").join("s.sock");
    let out = std::process::Command::new(server_bin())
        .args(["--port", "0", "--save", ""])
        .args(["--unixsocket", path.to_str().expect("utf8")])
        .current_dir(dir.path())
        .output()
        .expect("run tandem-server");
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("Failed opening Unix socket: "), "{log}");
}

#[test]
fn a_unix_socket_alone_is_enough_to_listen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("only.sock");
    let mut child = std::process::Command::new(server_bin())
        .args(["--port", "0", "--save", "", "--unixsocket"])
        .arg(&path)
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn tandem-server");
    let up = wait_until(Duration::from_secs(10), || {
        UnixStream::connect(&path).is_ok()
    });
    let served = up && UnixConn::connect(&path).cmd(&["PING"]) == "+PONG";
    let _ = child.kill();
    let _ = child.wait();
    assert!(served, "no reply on the unix socket with port 0");
}
