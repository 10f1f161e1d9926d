//! The replica link's states seen from outside: a scripted fake master on
//! loopback answers the handshake and transfer the way a broken or old master
//! would, and a Tandem replica and a Redis 7.0.15 replica (side by side, same
//! script) must log the same line for it. Every wait is bounded; the servers are
//! stopped by pid on drop.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);
const ID: &str = "0123456789abcdef0123456789abcdef01234567";

/// What the fake master answers to one command (its name upper-cased, then its
/// arguments): the bytes to write.
type Script = Arc<dyn Fn(&[String]) -> Vec<u8> + Send + Sync>;

/// A master that answers every connection with `script` and records the
/// commands it received, until dropped (bounded: it gives up after a minute).
struct FakeMaster {
    port: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Vec<String>>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeMaster {
    fn start(script: Script) -> FakeMaster {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s2, seen2) = (stop.clone(), seen.clone());
        // One thread per connection (a replica whose link is up keeps its
        // connection while the other one connects); all joined on the way out.
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut conns = Vec::new();
            while !s2.load(Ordering::Relaxed) && Instant::now() < deadline && conns.len() < 64 {
                match l.accept() {
                    Ok((s, _)) => {
                        let (script, seen, stop) = (script.clone(), seen2.clone(), s2.clone());
                        conns.push(std::thread::spawn(move || serve(s, &script, &seen, &stop)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            s2.store(true, Ordering::Relaxed);
            for c in conns {
                let _ = c.join();
            }
        });
        FakeMaster {
            port,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn target(&self) -> String {
        format!("127.0.0.1 {}", self.port)
    }

    /// How many times a command named `name` arrived.
    fn count(&self, name: &str) -> usize {
        let seen = self.seen.lock().expect("lock");
        seen.iter()
            .filter(|c| c.first().map(String::as_str) == Some(name))
            .count()
    }
}

impl Drop for FakeMaster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One replica connection: command in, scripted reply out, until it closes.
fn serve(s: TcpStream, script: &Script, seen: &Mutex<Vec<Vec<String>>>, stop: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let Ok(mut w) = s.try_clone() else { return };
    let mut r = BufReader::new(s);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let Some(cmd) = read_command(&mut r) else {
            continue;
        };
        if cmd.is_empty() {
            return;
        }
        seen.lock().expect("lock").push(cmd.clone());
        if w.write_all(&script(&cmd)).is_err() {
            return;
        }
    }
}

/// A RESP array or an inline command; `Some(vec![])` when the peer closed,
/// `None` on a timeout or a keepalive newline.
fn read_command(r: &mut BufReader<TcpStream>) -> Option<Vec<String>> {
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(0) => return Some(Vec::new()),
        Ok(_) => {}
        Err(_) => return None,
    }
    let line = line.trim_end();
    let Some(n) = line.strip_prefix('*') else {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        return (!words.is_empty()).then(|| upper_first(words));
    };
    let n: usize = n.parse().ok()?;
    let mut out = Vec::new();
    for _ in 0..n.min(16) {
        let mut hdr = String::new();
        r.read_line(&mut hdr).ok()?;
        let len: usize = hdr.trim().strip_prefix('$')?.parse().ok()?;
        let mut b = vec![0u8; len.min(1024) + 2];
        r.read_exact(&mut b).ok()?;
        b.truncate(len);
        out.push(String::from_utf8_lossy(&b).into_owned());
    }
    Some(upper_first(out))
}

fn upper_first(mut words: Vec<String>) -> Vec<String> {
    if let Some(w) = words.first_mut() {
        *w = w.to_ascii_uppercase();
    }
    words
}

/// A Redis 7.0.15 replica of `master`, logging to a file in `dir`.
fn redis_replica(dir: &tempfile::TempDir, master: &FakeMaster) -> (RealRedis, std::path::PathBuf) {
    let log = dir.path().join("redis.log");
    let port = master.port.to_string();
    let r = RealRedis::start(
        dir.path(),
        "dump.rdb",
        &[
            "--replicaof",
            "127.0.0.1",
            &port,
            "--logfile",
            log.to_str().expect("utf8"),
        ],
    );
    (r, log)
}

/// Runs `script` against a Tandem replica and a Redis replica and waits until
/// both logged every line of `expect`.
fn both_log(
    script: impl Fn(&[String]) -> Vec<u8> + Send + Sync + 'static,
    expect: &[&str],
) -> FakeMaster {
    let master = FakeMaster::start(Arc::new(script));
    let tandem = TestServer::start(&["--replicaof", &master.target()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (_redis, redis_log) = redis_replica(&dir, &master);
    let has_all = |text: &str| expect.iter().all(|l| text.contains(l));
    let ok = wait_until(WAIT, || {
        has_all(&tandem.stdout())
            && has_all(&std::fs::read_to_string(&redis_log).unwrap_or_default())
    });
    assert!(
        ok,
        "expected {expect:?}\n--- tandem:\n{}\n--- redis:\n{}",
        tandem.stdout(),
        std::fs::read_to_string(&redis_log).unwrap_or_default()
    );
    // Neither replica took anything from this master.
    assert_eq!(tandem.conn().cmd("DBSIZE"), R::Int(0));
    master
}

/// A master that answers the handshake normally and PSYNC with `psync`.
fn handshake_then(cmd: &[String], psync: &[u8]) -> Vec<u8> {
    match cmd.first().map(String::as_str) {
        Some("PING") => b"+PONG\r\n".to_vec(),
        // ACKs get no reply, as from a real master.
        Some("REPLCONF") if cmd.get(1).is_some_and(|a| a.eq_ignore_ascii_case("ack")) => Vec::new(),
        Some("REPLCONF") => b"+OK\r\n".to_vec(),
        Some("PSYNC") => psync.to_vec(),
        _ => b"-ERR unexpected\r\n".to_vec(),
    }
}

#[test]
fn an_error_reply_to_ping_ends_the_handshake() {
    let m = both_log(
        |cmd| match cmd.first().map(String::as_str) {
            Some("PING") => b"-ERR unknown command 'PING'\r\n".to_vec(),
            _ => b"+OK\r\n".to_vec(),
        },
        &["Error reply to PING from master: '-ERR unknown command 'PING''"],
    );
    assert_eq!(m.count("PSYNC"), 0, "no PSYNC after a refused PING");
}

#[test]
fn a_master_unable_to_psync_now_is_retried_later() {
    let m = both_log(
        |cmd| handshake_then(cmd, b"-LOADING Redis is loading the dataset in memory\r\n"),
        &["Master is currently unable to PSYNC but should be in the future: -LOADING Redis is loading the dataset in memory"],
    );
    assert_eq!(m.count("SYNC"), 0, "no SYNC fallback for a temporary error");
}

#[test]
fn a_malformed_fullresync_is_refused() {
    both_log(
        |cmd| handshake_then(cmd, b"+FULLRESYNC not-an-id 0\r\n"),
        &["Master replied with wrong +FULLRESYNC syntax."],
    );
}

#[test]
fn a_master_without_psync_gets_sync() {
    let m = both_log(
        |cmd| match cmd.first().map(String::as_str) {
            Some("PSYNC") => b"-ERR unknown command 'PSYNC'\r\n".to_vec(),
            Some("SYNC") => b"-ERR no sync either\r\n".to_vec(),
            _ => handshake_then(cmd, b""),
        },
        &[
            "Master does not support PSYNC or is in error state (reply: -ERR unknown command 'PSYNC')",
            "Retrying with SYNC...",
        ],
    );
    assert!(m.count("SYNC") >= 2, "both replicas fell back to SYNC");
}

#[test]
fn rejected_replconf_options_are_not_fatal() {
    both_log(
        |cmd| match (
            cmd.first().map(String::as_str),
            cmd.get(1).map(String::as_str),
        ) {
            (Some("REPLCONF"), Some("capa")) => b"-ERR no capa here\r\n".to_vec(),
            (Some("REPLCONF"), Some("listening-port")) => b"-ERR no port here\r\n".to_vec(),
            _ => handshake_then(cmd, b"-LOADING later\r\n"),
        },
        &[
            "(Non critical) Master does not understand REPLCONF listening-port: -ERR no port here",
            "(Non critical) Master does not understand REPLCONF capa: -ERR no capa here",
            // The handshake went on to PSYNC.
            "Master is currently unable to PSYNC but should be in the future: -LOADING later",
        ],
    );
}

#[test]
fn a_payload_header_without_dollar_is_bad_protocol() {
    both_log(
        |cmd| {
            let reply = format!("+FULLRESYNC {ID} 0\r\n+garbage\r\n");
            handshake_then(cmd, reply.as_bytes())
        },
        &[
            &format!("Full resync from master: {ID}:0"),
            "Bad protocol from MASTER, the first byte is not '$' (we received '+garbage'), are you sure the host and port are right?",
        ],
    );
}

#[test]
fn a_master_error_instead_of_the_payload_aborts_the_transfer() {
    both_log(
        |cmd| {
            let reply = format!(
                "+FULLRESYNC {ID} 0\r\n-ERR BGSAVE failed, replication can't continue\r\n"
            );
            handshake_then(cmd, reply.as_bytes())
        },
        &["MASTER aborted replication with an error: ERR BGSAVE failed, replication can't continue"],
    );
}

/// An empty RDB as Redis 7.0.15 writes it.
fn empty_rdb() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = RealRedis::start(dir.path(), "empty.rdb", &[]);
    assert_eq!(r.conn().cmd("SAVE"), R::ok());
    std::fs::read(dir.path().join("empty.rdb")).expect("rdb")
}

fn info_field(c: &mut Conn, field: &str) -> Option<String> {
    let text = match c.cmd("INFO replication") {
        R::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => return None,
    };
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_string()))
}

/// The link's read and applied offsets (`slave_read_repl_offset`,
/// `slave_repl_offset`) and the GETACK answer, against Redis.
#[test]
fn read_and_applied_offsets_and_getack_match_redis() {
    const SET: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
    const GETACK: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";
    // Half a command: read, not applied.
    const PART: &[u8] = b"*3\r\n$3\r\nSET\r\n";
    let rdb = empty_rdb();
    let master = FakeMaster::start(Arc::new(move |cmd: &[String]| {
        if cmd.first().map(String::as_str) != Some("PSYNC") {
            return handshake_then(cmd, b"");
        }
        let mut out = format!("+FULLRESYNC {ID} 100\r\n${}\r\n", rdb.len()).into_bytes();
        out.extend_from_slice(&rdb);
        for part in [SET, GETACK, PART] {
            out.extend_from_slice(part);
        }
        out
    }));
    let tandem = TestServer::start(&["--replicaof", &master.target()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (redis, redis_log) = redis_replica(&dir, &master);
    let applied = 100 + (SET.len() + GETACK.len()) as i64;
    let read = applied + PART.len() as i64;
    for (who, mut c) in [("tandem", tandem.conn()), ("redis", redis.conn())] {
        let settled = wait_until(WAIT, || {
            info_field(&mut c, "slave_read_repl_offset") == Some(read.to_string())
        });
        assert!(
            settled,
            "{who}: read offset {:?}\n--- tandem:\n{}\n--- redis:\n{}",
            info_field(&mut c, "slave_read_repl_offset"),
            tandem.stdout(),
            std::fs::read_to_string(&redis_log).unwrap_or_default()
        );
        assert_eq!(
            info_field(&mut c, "master_link_status").as_deref(),
            Some("up"),
            "{who}"
        );
        assert_eq!(
            info_field(&mut c, "slave_repl_offset"),
            Some(applied.to_string()),
            "{who}"
        );
        assert_eq!(c.cmd("GET k"), R::bulk("v"), "{who}");
    }
    // Both answered GETACK with the offset before it.
    let before = (100 + SET.len()).to_string();
    let answered = wait_until(WAIT, || {
        let seen = master.seen.lock().expect("lock");
        seen.iter()
            .filter(|c| c.len() == 3 && c[0] == "REPLCONF" && c[1] == "ACK" && c[2] == before)
            .count()
            >= 2
    });
    assert!(answered, "ACKs: {:?}", master.seen.lock().expect("lock"));
}

/// A master that never answers PSYNC: the replica waits `repl-timeout` since the
/// master last sent anything (Redis's handshake deadline; a master delaying a
/// snapshot sends newlines meanwhile), not a fixed five seconds, then logs the
/// timeout and reconnects.
#[test]
fn a_silent_master_times_out_after_repl_timeout_not_sooner() {
    let master = FakeMaster::start(Arc::new(|cmd: &[String]| handshake_then(cmd, b"")));
    let timeout = ["--repl-timeout", "8"];
    let tandem = TestServer::start(&[&["--replicaof", &master.target()][..], &timeout].concat());
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("redis.log");
    let port = master.port.to_string();
    let redis_args = [
        &["--replicaof", "127.0.0.1", &port][..],
        &["--logfile", log.to_str().expect("utf8")],
        &timeout,
    ]
    .concat();
    let _redis = RealRedis::start(dir.path(), "dump.rdb", &redis_args);
    assert!(wait_until(WAIT, || master.count("PSYNC") == 2));
    // Past the five seconds the handshake used to allow: still waiting.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        master.count("PSYNC"),
        2,
        "a replica gave up before repl-timeout"
    );
    let line = "Timeout connecting to the MASTER...";
    let ok = wait_until(WAIT, || {
        tandem.stdout().contains(line)
            && std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(line)
    });
    assert!(ok, "--- tandem:\n{}", tandem.stdout());
}
