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
