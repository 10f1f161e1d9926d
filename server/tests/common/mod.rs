//! Black-box test harness: runs the real `tandem-server` binary on a free loopback
//! port in its own temp dir, and kills it (by pid) when dropped, even on panic.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestServer {
    pub port: u16,
    pub child: Child,
    pub dir: tempfile::TempDir,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

pub fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tandem-server"))
}

impl TestServer {
    /// Starts the server with `--bind 127.0.0.1 --port <free> --dir <tmp>` plus `args`.
    pub fn start(args: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, args)
    }

    pub fn start_in(mut dir: tempfile::TempDir, args: &[&str]) -> TestServer {
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(server_bin());
            cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--dir", dir.path().to_str().expect("utf8 dir")])
                .args(args)
                .current_dir(dir.path())
                .stdout(Stdio::from(
                    std::fs::File::create(dir.path().join("stdout.log")).expect("log file"),
                ))
                .stderr(Stdio::from(
                    std::fs::File::create(dir.path().join("stderr.log")).expect("log file"),
                ));
            let child = cmd.spawn().expect("spawn tandem-server");
            let mut s = TestServer { port, child, dir };
            if s.wait_ready(Duration::from_secs(10)) {
                return s;
            }
            // Port raced with someone else, or startup failed: report on last attempt.
            let _ = s.child.kill();
            let _ = s.child.wait();
            dir = std::mem::replace(&mut s.dir, tempfile::tempdir().expect("tempdir"));
            std::mem::forget(s);
        }
        panic!(
            "tandem-server did not start; see its logs in {:?}",
            dir.path()
        );
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            // The port accepts connections (into the kernel backlog) before startup
            // has finished loading data; ready means the server answers a command.
            if let Ok(mut t) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = t.set_read_timeout(Some(Duration::from_millis(500)));
                if t.write_all(b"PING\r\n").is_ok() {
                    let mut line = String::new();
                    if BufReader::new(&t).read_line(&mut line).is_ok()
                        && (line.starts_with('+') || line.starts_with('-'))
                    {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("client")
    }

    pub fn conn(&self) -> Conn {
        Conn::connect(self.port)
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Debian redis-server 7.0.15 on a free loopback port (no persistence besides
/// `dbfilename` in `dir`, DEBUG enabled), killed when dropped.
pub struct RealRedis {
    pub child: std::process::Child,
    pub port: u16,
}

impl RealRedis {
    pub fn start(dir: &std::path::Path, dbfilename: &str, extra: &[&str]) -> RealRedis {
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("/usr/bin/redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--enable-debug-command", "yes"])
                .args(["--dir", dir.to_str().unwrap(), "--dbfilename", dbfilename])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut r = RealRedis { child, port };
            let ok = wait_until(Duration::from_secs(10), || {
                if let Ok(Some(_)) = r.child.try_wait() {
                    return true;
                }
                let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                    return false;
                };
                drop(s);
                let mut c = Conn::connect(port);
                c.cmd("PING") == R::Simple("PONG".into())
            });
            if ok && r.child.try_wait().ok().flatten().is_none() {
                return r;
            }
            let _ = r.child.kill();
            let _ = r.child.wait();
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

/// A raw RESP connection: send exact bytes, read exact replies.
pub struct Conn {
    pub stream: BufReader<TcpStream>,
}

/// A parsed reply, for assertions.
#[derive(Debug, Clone, PartialEq)]
pub enum R {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Arr(Vec<R>),
    NilArr,
    Double(String),
    Bool(bool),
    Map(Vec<(R, R)>),
    Set(Vec<R>),
    Push(Vec<R>),
    Verbatim(String),
}

impl R {
    pub fn bulk(s: &str) -> R {
        R::Bulk(s.as_bytes().to_vec())
    }
    pub fn ok() -> R {
        R::Simple("OK".into())
    }
    pub fn err_text(&self) -> &str {
        match self {
            R::Err(s) => s,
            _ => panic!("not an error reply: {self:?}"),
        }
    }
}

impl Conn {
    pub fn connect(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        // Generous: DEBUG POPULATE/DIGEST of 600k keys on a loaded 2-core CI machine
        // took over 10 s; a reply that never comes still fails the test.
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Conn {
            stream: BufReader::new(s),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).expect("write");
    }

    /// Sends a command as a RESP bulk array.
    pub fn send(&mut self, args: &[&[u8]]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.send_raw(&out);
    }

    /// Sends a command given as space-separated words and reads the reply.
    pub fn cmd(&mut self, line: &str) -> R {
        let parts: Vec<&[u8]> = line.split_whitespace().map(|s| s.as_bytes()).collect();
        self.send(&parts);
        self.read()
    }

    pub fn cmd_args(&mut self, args: &[&[u8]]) -> R {
        self.send(args);
        self.read()
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        let n = self.stream.read_line(&mut l).expect("read line");
        assert!(n > 0, "connection closed by server");
        l.trim_end_matches("\r\n").to_string()
    }

    /// ROLE says this is a replica whose link to its master is up.
    pub fn role_connected(&mut self) -> bool {
        matches!(self.cmd("ROLE"), R::Arr(v) if v.len() == 5 && v[3] == R::bulk("connected"))
    }

    /// The replication offset ROLE reports (a master's own, a replica's processed one).
    pub fn role_offset(&mut self) -> Option<i64> {
        let R::Arr(v) = self.cmd("ROLE") else {
            return None;
        };
        let at = if v.first() == Some(&R::bulk("master")) {
            1
        } else {
            4
        };
        match v.get(at) {
            Some(R::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// True if the server closed the connection (EOF) within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }

    pub fn read(&mut self) -> R {
        let l = self.line();
        let (t, rest) = l.split_at(1);
        match t {
            "+" => R::Simple(rest.into()),
            "-" => R::Err(rest.into()),
            ":" => R::Int(rest.parse().expect("int")),
            "," => R::Double(rest.into()),
            "#" => R::Bool(rest == "t"),
            "_" => R::Nil,
            "$" | "=" => {
                let n: i64 = rest.parse().expect("len");
                if n < 0 {
                    return R::Nil;
                }
                let mut buf = vec![0u8; n as usize + 2];
                self.stream.read_exact(&mut buf).expect("bulk");
                buf.truncate(n as usize);
                if t == "=" {
                    R::Verbatim(String::from_utf8_lossy(&buf).into())
                } else {
                    R::Bulk(buf)
                }
            }
            "*" | "~" | ">" => {
                let n: i64 = rest.parse().expect("len");
                if n < 0 {
                    return R::NilArr;
                }
                let items = (0..n).map(|_| self.read()).collect();
                match t {
                    "*" => R::Arr(items),
                    "~" => R::Set(items),
                    _ => R::Push(items),
                }
            }
            "%" => {
                let n: i64 = rest.parse().expect("len");
                R::Map((0..n).map(|_| (self.read(), self.read())).collect())
            }
            other => panic!("unexpected reply type {other:?} in {l:?}"),
        }
    }
}

/// Redis's WRONGTYPE error text.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// The bulk strings of an array or set reply, as a set (order-free comparison).
pub fn bulks(r: R) -> std::collections::BTreeSet<Vec<u8>> {
    let (R::Arr(items) | R::Set(items)) = r else {
        panic!("not an array: {r:?}");
    };
    items
        .into_iter()
        .map(|i| match i {
            R::Bulk(v) => v,
            other => panic!("not a bulk: {other:?}"),
        })
        .collect()
}

/// The byte strings of `items`, as a set.
pub fn set_of(items: &[&str]) -> std::collections::BTreeSet<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// A bulk-string reply.
pub fn b(s: &str) -> R {
    R::bulk(s)
}

/// An array of bulk strings.
pub fn arr(items: &[&str]) -> R {
    R::Arr(items.iter().map(|s| R::bulk(s)).collect())
}

/// An error reply with this exact text.
pub fn err(s: &str) -> R {
    R::Err(s.into())
}

/// One field of an INFO section (`INFO <section>`), trimmed; `None` when the reply
/// is not a bulk string or has no such field.
pub fn info_field(c: &mut Conn, section: &str, field: &str) -> Option<String> {
    let R::Bulk(b) = c.cmd(&format!("INFO {section}")) else {
        return None;
    };
    let text = String::from_utf8_lossy(&b).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// Polls `f` until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A [`Pair`] whose Tandem also has DEBUG enabled (DEBUG RELOAD, DEBUG OBJECT), as the
/// test Redis has; a test file adds its own comparison helpers with `impl Both`.
pub struct Both(pub Pair);

impl Both {
    pub fn start() -> Both {
        Both(Pair::start_with(&["--enable-debug-command", "yes"]))
    }
}

impl std::ops::Deref for Both {
    type Target = Pair;
    fn deref(&self) -> &Pair {
        &self.0
    }
}

impl std::ops::DerefMut for Both {
    fn deref_mut(&mut self) -> &mut Pair {
        &mut self.0
    }
}

/// Tandem and a real Redis 7.0.15, each with one connection, for differential tests.
pub struct Pair {
    _ours: TestServer,
    _theirs: RealRedis,
    _dir: tempfile::TempDir,
    pub a: Conn,
    pub b: Conn,
}

impl Pair {
    pub fn start() -> Pair {
        Pair::start_with(&[])
    }

    /// Like [`Pair::start`], with extra arguments for Tandem (the test Redis already has
    /// DEBUG enabled, so `--enable-debug-command yes` makes the two alike).
    pub fn start_with(ours_args: &[&str]) -> Pair {
        let ours = TestServer::start(ours_args);
        let dir = tempfile::tempdir().expect("tempdir");
        let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
        let (a, b) = (ours.conn(), theirs.conn());
        Pair {
            _ours: ours,
            _theirs: theirs,
            _dir: dir,
            a,
            b,
        }
    }

    /// Sends `args` to both and requires identical replies (arguments shown cut to 60
    /// characters in the failure message).
    pub fn same(&mut self, args: &[&[u8]]) -> R {
        let ra = self.a.cmd_args(args);
        let rb = self.b.cmd_args(args);
        let shown: Vec<String> = args
            .iter()
            .map(|x| String::from_utf8_lossy(x).chars().take(60).collect())
            .collect();
        assert!(
            ra == rb,
            "reply to {shown:?} differs from Redis 7.0.15: {ra:?} vs {rb:?}"
        );
        ra
    }
}

impl Pair {
    /// [`Pair::same`] for a command given as space-separated words.
    pub fn same_words(&mut self, line: &str) -> R {
        let parts: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        self.same(&parts)
    }
}

/// Server arguments under which a BGSAVE fails: the dbfilename is inside a missing
/// directory, so the final rename fails (`save` keeps `stop-writes-on-bgsave-error` in
/// force).
pub const FAILING_BGSAVE: &[&str] = &["--save", "3600 1", "--dbfilename", "missing/dump.rdb"];

/// Runs a BGSAVE on `s` (started with [`FAILING_BGSAVE`]) and waits for its failure.
pub fn fail_a_bgsave(s: &TestServer, c: &mut Conn) {
    assert_eq!(
        c.cmd("BGSAVE"),
        R::Simple("Background saving started".into())
    );
    assert!(wait_until(Duration::from_secs(10), || s
        .stdout()
        .contains("Background saving error")));
}

/// MONITOR lines up to the `ECHO end` one, without timestamps and client ports.
pub fn monitor_lines(mon: &mut Conn) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..100 {
        let R::Simple(line) = mon.read() else {
            panic!("MONITOR lines are status replies")
        };
        // +1339518083.107412 [0 127.0.0.1:60866] "keys" "*"
        let (_, rest) = line.split_once(" [").expect("timestamp");
        let (db_addr, args) = rest.split_once("] ").expect("client");
        let (db, addr) = db_addr.split_once(' ').expect("db and address");
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let done = args == "\"ECHO\" \"end\"";
        lines.push(format!("[{db} {host}] {args}"));
        if done {
            return lines;
        }
    }
    panic!("no ECHO end in MONITOR output: {lines:?}");
}

/// Attaches to `port` as a replica (plain SYNC): skips the RDB and returns the
/// connection, positioned at the start of the command stream.
pub fn attach_replica(port: u16) -> Conn {
    use std::io::{BufRead, Read};
    let mut c = Conn::connect(port);
    c.send(&[b"SYNC"]);
    let len = loop {
        let mut line = String::new();
        c.stream.read_line(&mut line).expect("sync reply");
        // Newlines keep the link alive while the snapshot is made.
        if let Some(n) = line.trim_end().strip_prefix('$') {
            break n.parse::<usize>().expect("rdb length");
        }
    };
    let mut rdb = vec![0u8; len];
    c.stream.read_exact(&mut rdb).expect("rdb");
    c
}

/// The commands a master streams until `SET done 1`, without keepalive PINGs and
/// with delivery times (13-digit Unix ms) blanked.
pub fn propagated(c: &mut Conn) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let R::Arr(words) = c.read() else {
            panic!("not a command")
        };
        let words: Vec<String> = words
            .iter()
            .map(|w| match w {
                R::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                o => panic!("{o:?}"),
            })
            .map(|w| {
                if w.len() == 13 && w.bytes().all(|c| c.is_ascii_digit()) {
                    "<time>".to_string()
                } else {
                    w
                }
            })
            .collect();
        let line = words.join(" ");
        if line == "SET done 1" {
            return out;
        }
        if !line.eq_ignore_ascii_case("PING") {
            out.push(line);
        }
    }
}
