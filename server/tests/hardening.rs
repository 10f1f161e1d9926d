//! Hostile and careless clients, side by side with Redis 7.0.15 where Redis has the
//! behaviour: the parser's limits before AUTH, the CR flood, declared sizes that never
//! arrive, adversarial glob patterns, readers that never read (Pub/Sub, MONITOR, plain
//! replies), the query-buffer limit, idle timeouts and TCP keepalive.
mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PASS: &str = "s3cret";

fn both(extra: &[&str]) -> (TestServer, RealRedis, tempfile::TempDir) {
    let ours = TestServer::start(extra);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", extra);
    (ours, theirs, dir)
}

/// Both servers, with `requirepass` set once they are up.
fn both_with_password() -> (TestServer, RealRedis, tempfile::TempDir) {
    let (ours, theirs, dir) = both(&[]);
    for port in [ours.port, theirs.port] {
        assert_eq!(
            Conn::connect(port).cmd(&format!("CONFIG SET requirepass {PASS}")),
            R::ok()
        );
    }
    (ours, theirs, dir)
}

/// Sends `bytes` on a new connection and returns the first reply line and whether the
/// server then closed the connection.
fn reply_and_close(port: u16, bytes: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // The server may close before everything is sent: that is an answer too.
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&got);
    (text.lines().next().unwrap_or("").to_string(), closed)
}

fn alive(port: u16, pass: Option<&str>) -> bool {
    let mut c = Conn::connect(port);
    if let Some(p) = pass {
        assert_eq!(c.cmd(&format!("AUTH {p}")), R::ok());
    }
    c.cmd("PING") == R::Simple("PONG".into())
}

fn info_field(c: &mut Conn, field: &str) -> String {
    let R::Bulk(text) = c.cmd("INFO") else {
        panic!("INFO is a bulk")
    };
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {field} in INFO"))
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
fn a_flood_of_lone_carriage_returns_is_an_invalid_length_as_in_redis() {
    let (ours, theirs, _d) = both_with_password();
    let mut flood = vec![b'*'];
    flood.extend(std::iter::repeat_n(b'\r', 200_000));
    let mut bulk_flood = b"*1\r\n$".to_vec();
    bulk_flood.extend(std::iter::repeat_n(b'\r', 200_000));
    for bytes in [&flood, &bulk_flood] {
        let a = reply_and_close(ours.port, bytes);
        let b = reply_and_close(theirs.port, bytes);
        assert_eq!(a, b);
        assert!(a.0.starts_with("-ERR Protocol error: invalid"), "{a:?}");
        assert!(a.1, "closed after the protocol error");
    }
    assert!(alive(ours.port, Some(PASS)));
}

#[test]
fn before_auth_redis_s_argument_and_bulk_limits_apply_with_its_errors() {
    let (ours, theirs, _d) = both_with_password();
    let cases: [&[u8]; 3] = [
        b"*11\r\n",
        b"*1\r\n$16385\r\n",
        b"*2\r\n$3\r\nGET\r\n$536870000\r\n",
    ];
    for bytes in cases {
        let a = reply_and_close(ours.port, bytes);
        let b = reply_and_close(theirs.port, bytes);
        assert_eq!(a, b, "{:?}", String::from_utf8_lossy(bytes));
        assert!(a.1);
    }
    assert_eq!(
        reply_and_close(ours.port, b"*11\r\n").0,
        "-ERR Protocol error: unauthenticated multibulk length"
    );
    assert_eq!(
        reply_and_close(ours.port, b"*1\r\n$16385\r\n").0,
        "-ERR Protocol error: unauthenticated bulk length"
    );
    // AUTH and a large value in the same write: the AUTH runs before the next request
    // is parsed, so the limit no longer applies to it (as in Redis).
    for port in [ours.port, theirs.port] {
        let mut c = Conn::connect(port);
        let big = vec![b'v'; 100_000];
        let mut req = Vec::new();
        for args in [&[&b"AUTH"[..], PASS.as_bytes()][..], &[b"SET", b"k", &big]] {
            req.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                req.extend_from_slice(a);
                req.extend_from_slice(b"\r\n");
            }
        }
        c.send_raw(&req);
        assert_eq!(c.read(), R::ok());
        assert_eq!(c.read(), R::ok());
        assert_eq!(c.cmd("STRLEN k"), R::Int(100_000));
    }
}

#[test]
fn huge_declared_bulks_before_or_after_auth_evict_nothing() {
    let ours = TestServer::start(&[
        "--requirepass",
        PASS,
        "--maxmemory",
        "30mb",
        "--maxmemory-policy",
        "allkeys-lru",
    ]);
    let mut c = ours.conn();
    assert_eq!(c.cmd(&format!("AUTH {PASS}")), R::ok());
    for chunk in 0..10 {
        let mut req = Vec::new();
        for i in 0..1000 {
            let k = format!("key:{}", chunk * 1000 + i);
            req.extend_from_slice(
                format!(
                    "*3\r\n$3\r\nSET\r\n${}\r\n{k}\r\n$100\r\n{}\r\n",
                    k.len(),
                    "x".repeat(100)
                )
                .as_bytes(),
            );
        }
        c.send_raw(&req);
        for _ in 0..1000 {
            assert_eq!(c.read(), R::ok());
        }
    }
    assert_eq!(c.cmd("DBSIZE"), R::Int(10_000));
    let before = info_field(&mut c, "used_memory").parse::<u64>().expect("n");
    // 20 unauthenticated connections declaring 512 MB bulks: refused at the header.
    for _ in 0..20 {
        let (line, closed) = reply_and_close(ours.port, b"*1\r\n$536870000\r\n");
        assert_eq!(line, "-ERR Protocol error: unauthenticated bulk length");
        assert!(closed);
    }
    // 20 authenticated ones declare the same and then send nothing more: what they
    // reserve follows what arrived, not what they declared.
    let mut held = Vec::new();
    for _ in 0..20 {
        let mut h = Conn::connect(ours.port);
        assert_eq!(h.cmd(&format!("AUTH {PASS}")), R::ok());
        h.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$536870000\r\nabc");
        held.push(h);
    }
    assert!(wait_until(Duration::from_secs(5), || info_field(
        &mut c,
        "connected_clients"
    ) == "21"));
    let after = info_field(&mut c, "used_memory").parse::<u64>().expect("n");
    assert!(
        after < before + 8 * 1024 * 1024,
        "used_memory grew from {before} to {after}"
    );
    assert_eq!(info_field(&mut c, "evicted_keys"), "0");
    assert_eq!(c.cmd("DBSIZE"), R::Int(10_000));
    drop(held);
}

#[test]
fn parsed_arguments_count_against_the_query_buffer_limit() {
    let ours = TestServer::start(&["--client-query-buffer-limit", "1mb"]);
    let mut s = TcpStream::connect(("127.0.0.1", ours.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // 1,000 arguments of 4 KB each (4 MB in all) of a request that never ends.
    let _ = s.write_all(b"*100000\r\n");
    let arg = format!("$4096\r\n{}\r\n", "a".repeat(4096));
    let mut sent = 0;
    for _ in 0..1000 {
        if s.write_all(arg.as_bytes()).is_err() {
            break;
        }
        sent += 1;
    }
    let mut b = [0u8; 16];
    let closed = matches!(s.read(&mut b), Ok(0) | Err(_));
    assert!(closed, "closed after {sent} arguments");
    assert!(wait_until(Duration::from_secs(5), || ours
        .stdout()
        .contains(
            "Closing client that reached max query buffer length"
        )));
    assert!(alive(ours.port, None));
}

#[test]
fn a_million_and_more_arguments_are_accepted_as_redis_does() {
    let ours = TestServer::start(&[]);
    let mut c = ours.conn();
    let n = 1_100_000;
    let mut req = format!("*{}\r\n$4\r\nSADD\r\n$1\r\ns\r\n", n + 2).into_bytes();
    for i in 0..n {
        let m = i.to_string();
        req.extend_from_slice(format!("${}\r\n{m}\r\n", m.len()).as_bytes());
    }
    c.send_raw(&req);
    assert_eq!(c.read(), R::Int(n as i64));
    assert_eq!(c.cmd("SCARD s"), R::Int(n as i64));
}

/// `a*a*a*...*b` against a 40-byte key of `a`s: exponential for a naive matcher.
fn adversarial_pattern() -> String {
    format!("{}b", "a*".repeat(30))
}

#[test]
fn adversarial_globs_are_answered_at_once_in_keys_scan_and_psubscribe() {
    let (ours, theirs, _d) = both(&[]);
    let key = "a".repeat(40);
    let pat = adversarial_pattern();
    for port in [ours.port, theirs.port] {
        let mut c = Conn::connect(port);
        assert_eq!(c.cmd(&format!("SET {key} v")), R::ok());
        assert_eq!(c.cmd(&format!("HSET h {key} v")), R::Int(1));
        assert_eq!(c.cmd(&format!("SADD s {key}")), R::Int(1));
        assert_eq!(c.cmd(&format!("ZADD z 1 {key}")), R::Int(1));
    }
    let mut a = ours.conn();
    let mut b = theirs.conn();
    for cmd in [
        format!("KEYS {pat}"),
        format!("SCAN 0 MATCH {pat} COUNT 100"),
        format!("HSCAN h 0 MATCH {pat}"),
        format!("SSCAN s 0 MATCH {pat}"),
        format!("ZSCAN z 0 MATCH {pat}"),
    ] {
        let t = Instant::now();
        let got = a.cmd(&cmd);
        let took = t.elapsed();
        assert_eq!(got, b.cmd(&cmd), "{cmd}");
        assert!(took < Duration::from_millis(500), "{cmd} took {took:?}");
    }
    // A subscriber's pattern is matched against every published channel.
    let mut sub = ours.conn();
    assert!(matches!(sub.cmd(&format!("PSUBSCRIBE {pat}")), R::Arr(_)));
    let t = Instant::now();
    assert_eq!(a.cmd(&format!("PUBLISH {key} hi")), R::Int(0));
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn a_subscriber_that_never_reads_is_closed_at_the_pubsub_limit_with_memory_bounded() {
    let ours = TestServer::start(&[]);
    let pid = ours.child.id();
    let mut slow = TcpStream::connect(("127.0.0.1", ours.port)).expect("connect");
    slow.write_all(b"SUBSCRIBE feed\r\n").expect("subscribe");
    let mut p = ours.conn();
    assert!(wait_until(Duration::from_secs(5), || p
        .cmd("PUBSUB NUMSUB feed")
        == R::Arr(vec![b("feed"), R::Int(1)])));
    let rss_before = rss_kb(pid);
    let payload = vec![b'x'; 1 << 20];
    let mut peak = rss_before;
    for _ in 0..200 {
        let n = p.cmd_args(&[b"PUBLISH", b"feed", &payload]);
        assert!(matches!(n, R::Int(0 | 1)), "{n:?}");
        peak = peak.max(rss_kb(pid));
    }
    // 200 MB were published to it; the default pubsub hard limit is 32 MB.
    assert!(
        peak < rss_before + 100 * 1024,
        "RSS grew from {rss_before} kB to {peak} kB"
    );
    assert_eq!(
        p.cmd("PUBSUB NUMSUB feed"),
        R::Arr(vec![b("feed"), R::Int(0)])
    );
    assert!(ours
        .stdout()
        .contains("scheduled to be closed ASAP for overcoming of output buffer limits"));
    drop(slow);
}

#[test]
fn monitor_and_plain_replies_obey_the_normal_class_limit_when_set() {
    let ours = TestServer::start(&["--client-output-buffer-limit", "normal 1mb 0 0"]);
    let mut mon = TcpStream::connect(("127.0.0.1", ours.port)).expect("connect");
    mon.write_all(b"MONITOR\r\n").expect("monitor");
    let mut c = ours.conn();
    assert!(wait_until(Duration::from_secs(5), || {
        let R::Bulk(list) = c.cmd("CLIENT LIST") else {
            return false;
        };
        String::from_utf8_lossy(&list).contains("cmd=monitor")
    }));
    let value = "v".repeat(4096);
    for i in 0..2000 {
        assert_eq!(c.cmd(&format!("SET k{i} {value}")), R::ok());
    }
    assert!(wait_until(Duration::from_secs(5), || {
        let R::Bulk(list) = c.cmd("CLIENT LIST") else {
            return false;
        };
        !String::from_utf8_lossy(&list).contains("cmd=monitor")
    }));
    // A reply over 1 MB closes the client that asked for it; the others go on.
    for i in 0..600 {
        assert_eq!(c.cmd(&format!("RPUSH l {i}{value}")), R::Int(i + 1));
    }
    let mut big = ours.conn();
    big.send(&[b"LRANGE", b"l", b"0", b"-1"]);
    let mut sink = Vec::new();
    let _ = big.stream.read_to_end(&mut sink);
    assert!(
        sink.len() < 600 * 4096,
        "got the whole reply: {}",
        sink.len()
    );
    assert!(alive(ours.port, None));
}

#[test]
fn idle_clients_are_closed_after_timeout_but_subscribers_stay() {
    let (ours, theirs, _d) = both(&["--timeout", "1"]);
    for port in [ours.port, theirs.port] {
        let mut idle = Conn::connect(port);
        assert_eq!(idle.cmd("PING"), R::Simple("PONG".into()));
        let mut sub = Conn::connect(port);
        assert!(matches!(sub.cmd("SUBSCRIBE c"), R::Arr(_)));
        let t = Instant::now();
        assert!(idle.is_closed(), "idle client closed");
        assert!(t.elapsed() < Duration::from_secs(5));
        let mut p = Conn::connect(port);
        assert_eq!(p.cmd("PUBLISH c m"), R::Int(1));
        assert_eq!(sub.read(), arr(&["message", "c", "m"]));
    }
}

#[test]
fn tcp_keepalive_is_set_on_client_sockets() {
    let ours = TestServer::start(&["--tcp-keepalive", "100"]);
    let mut c = ours.conn();
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .arg(format!("( sport = :{} )", ours.port))
        .output()
        .expect("ss (iproute2) is installed by .ci/run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("keepalive"), "{text}");
    let off = TestServer::start(&["--tcp-keepalive", "0"]);
    let mut c = off.conn();
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .arg(format!("( sport = :{} )", off.port))
        .output()
        .expect("ss");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("keepalive"));
}

#[test]
fn a_deep_pipeline_of_large_replies_is_written_in_pieces() {
    let ours = TestServer::start(&[]);
    let pid = ours.child.id();
    let mut c = ours.conn();
    let value = "v".repeat(100_000);
    assert_eq!(c.cmd(&format!("SET big {value}")), R::ok());
    let rss_before = rss_kb(pid);
    // 500 GETs of 100 KB in one write: 50 MB of replies for one batch.
    let mut req = Vec::new();
    for _ in 0..500 {
        req.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    }
    c.send_raw(&req);
    let mut peak = rss_before;
    for i in 0..500 {
        assert_eq!(c.read(), R::Bulk(value.as_bytes().to_vec()), "reply {i}");
        if i % 50 == 0 {
            peak = peak.max(rss_kb(pid));
        }
    }
    assert!(
        peak < rss_before + 20 * 1024,
        "RSS grew from {rss_before} kB to {peak} kB"
    );
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
}

/// A network namespace with a veth pair: the host side gets `10.213.<n>.1`, the
/// namespace side `10.213.<n>.2`, so a client inside it is a non-loopback peer of a
/// server on this machine. Removed (with its veth) on drop.
struct TestNetns {
    name: String,
    host_ip: String,
}

impl TestNetns {
    fn create() -> Option<TestNetns> {
        let is_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if !is_root {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root: the namespace test must run"
            );
            eprintln!("skipping: creating a network namespace needs root");
            return None;
        }
        let n = std::process::id() % 200 + 20;
        let ns = TestNetns {
            name: format!("tndpm{}", std::process::id()),
            host_ip: format!("10.213.{n}.1"),
        };
        let (veth, peer) = (format!("tpa{n}"), format!("tpb{n}"));
        let ip = |args: &[&str]| {
            let st = std::process::Command::new("ip")
                .args(args)
                .status()
                .expect("ip (iproute2) is installed by .ci/run");
            assert!(st.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &ns.name]);
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{}/30", ns.host_ip), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        let inside = format!("10.213.{n}.2/30");
        ip(&["-n", &ns.name, "addr", "add", &inside, "dev", &peer]);
        ip(&["-n", &ns.name, "link", "set", &peer, "up"]);
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        Some(ns)
    }

    /// Runs `redis-cli -h <host side> -p port PING` from inside the namespace.
    fn ping_from_inside(&self, port: u16) -> String {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.name,
                "redis-cli",
                "-h",
                &self.host_ip,
            ])
            .args(["-p", &port.to_string(), "PING"])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn protected_mode_refuses_non_loopback_clients_without_a_password_as_redis_does() {
    let Some(ns) = TestNetns::create() else {
        return;
    };
    let bind = format!("127.0.0.1 {}", ns.host_ip);
    let args = ["--bind", bind.as_str(), "--protected-mode", "yes"];
    let ours = TestServer::start(&args);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &args);
    for port in [ours.port, theirs.port] {
        let refused = ns.ping_from_inside(port);
        assert!(
            refused.starts_with("DENIED Redis is running in protected mode"),
            "{refused}"
        );
        // Loopback is served, and a password lifts the rule.
        assert!(alive(port, None));
        assert_eq!(
            Conn::connect(port).cmd(&format!("CONFIG SET requirepass {PASS}")),
            R::ok()
        );
        let served = ns.ping_from_inside(port);
        assert!(served.contains("NOAUTH"), "{served}");
    }
    assert_eq!(
        ns.ping_from_inside(ours.port),
        ns.ping_from_inside(theirs.port)
    );
}
