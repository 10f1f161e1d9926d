//! Differential testing against Debian's real redis-server 7.0.15: start it on a free
//! loopback port (killed on drop) and compare replies command by command.
#![allow(dead_code)]

use crate::common::{free_port, Conn, R};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REDIS_SERVER: &str = "/usr/bin/redis-server";

pub struct RealRedis {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RealRedis {
    /// Starts redis-server, or returns None (and says so) when it is not installed.
    pub fn start() -> Option<RealRedis> {
        if !Path::new(REDIS_SERVER).exists() {
            eprintln!("{REDIS_SERVER} not installed: skipping the comparison with real Redis");
            return None;
        }
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let child = Command::new(REDIS_SERVER)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--dir", dir.path().to_str().expect("utf8 dir")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut r = RealRedis {
                port,
                child,
                _dir: dir,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = r.child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(r);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server did not start");
    }

    pub fn conn(&self) -> Conn {
        Conn::connect(self.port)
    }
}

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends each space-separated command to both servers and asserts equal replies.
pub fn compare(ours: &mut Conn, theirs: &mut Conn, script: &[&str]) {
    for line in script {
        let a = ours.cmd(line);
        let b = theirs.cmd(line);
        assert_eq!(
            a, b,
            "reply to {line:?} differs (left: tandem, right: redis)"
        );
    }
}

/// True if the reply is an error whose text starts with `prefix`.
pub fn is_err(r: &R, prefix: &str) -> bool {
    matches!(r, R::Err(s) if s.starts_with(prefix))
}
