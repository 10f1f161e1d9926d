//! Real tandem-servers on `127.X.Y.n:6379` for tests that drive the failover step with the
//! in-memory API (the step always connects to `<podIP>:6379`, so each server needs its own loopback
//! address). Each server is killed and its directory removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tandem_operator::failover::probe::{info_fields, Client, Timeouts};

pub fn server_bin() -> PathBuf {
    let op = PathBuf::from(env!("CARGO_BIN_EXE_tandem-operator"));
    let bin = op
        .parent()
        .map(|d| d.join("tandem-server"))
        .unwrap_or_default();
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build -p tandem-server` with the same CARGO_TARGET_DIR first",
        bin.display()
    );
    bin
}

pub struct Srv {
    pub ip: String,
    password: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Srv {
    pub fn try_start(tag: &str, ip: &str, password: &str) -> Option<Srv> {
        // Before the directory exists: a missing binary panics with nothing to clean up.
        let bin = server_bin();
        let dir = std::env::temp_dir().join(format!(
            "tandem-{tag}-{}-{ip}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).ok()?;
        let spawned = (|| {
            let log = std::fs::File::create(dir.join("stdout.log")).ok()?;
            Command::new(&bin)
                .args(["--bind", ip, "--port", "6379", "--dir", dir.to_str()?])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--requirepass", password, "--masterauth", password])
                .args(["--repl-diskless-sync-delay", "0"])
                .current_dir(&dir)
                .stdout(Stdio::from(log))
                .stderr(Stdio::null())
                .spawn()
                .ok()
        })();
        let Some(child) = spawned else {
            // Never leave the directory of a failed start behind.
            let _ = std::fs::remove_dir_all(&dir);
            return None;
        };
        let mut s = Srv {
            ip: ip.to_string(),
            password: password.to_string(),
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = s.child.as_mut().map(|c| c.try_wait()) {
                return None; // address in use, most likely
            }
            if std::net::TcpStream::connect((ip, 6379)).is_ok() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(
            &format!("{}:6379", self.ip),
            Some(&self.password),
            Timeouts::default(),
        )
        .await
        .expect("connect")
    }

    /// One field of INFO replication.
    pub async fn replication(&self, name: &str) -> Option<String> {
        let text = self.client().await.info("replication").await.expect("INFO");
        info_fields(&text)
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `n` servers on 127.X.Y.1..n, port 6379, all with `password`. X.Y come from the process id
/// and a per-call counter (tests of one binary run in parallel), shifted by `salt` so two test
/// binaries running at once pick different blocks; retried on collisions.
pub fn servers(tag: &str, salt: u32, n: u8, password: &str) -> Vec<Srv> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    for _ in 0..20 {
        let attempt = NEXT.fetch_add(1, Ordering::SeqCst);
        let x = 10 + (pid + attempt * 7 + salt) % 200;
        let y = (pid / 200 + attempt * 13 + salt) % 250;
        let mut out = Vec::new();
        for i in 1..=n {
            match Srv::try_start(tag, &format!("127.{x}.{y}.{i}"), password) {
                Some(s) => out.push(s),
                None => break,
            }
        }
        if out.len() == n as usize {
            return out;
        }
    }
    panic!("could not start {n} servers on loopback addresses");
}
