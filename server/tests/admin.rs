//! The Tandem admin HTTP port: /healthz, /readyz through each state, /metrics.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

struct Resp {
    status: u16,
    headers: String,
    body: String,
}

fn http_raw(port: u16, request: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect admin port");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("send");
    let mut text = Vec::new();
    s.read_to_end(&mut text).expect("read response until close");
    let text = String::from_utf8(text).expect("utf8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head/body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    Resp {
        status,
        headers: head.to_string(),
        body: body.to_string(),
    }
}

fn get(port: u16, path: &str) -> Resp {
    http_raw(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
}

fn ready(port: u16) -> (u16, String) {
    let r = get(port, "/readyz");
    (r.status, r.body)
}

/// The value of an unlabelled or labelled sample, e.g. `tandem_keys{db="0"}`.
fn metric(port: u16, sample: &str) -> String {
    let text = get(port, "/metrics").body;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{sample} ")))
        .unwrap_or_else(|| panic!("no {sample} in\n{text}"))
        .to_string()
}

fn with_admin(extra: &[&str]) -> (TestServer, u16) {
    let aport = free_port();
    let p = aport.to_string();
    let mut args = vec!["--tandem-admin-port", p.as_str()];
    args.extend_from_slice(extra);
    (TestServer::start(&args), aport)
}

#[test]
fn master_is_healthy_ready_and_exports_metrics() {
    let (s, a) = with_admin(&[]);
    let h = get(a, "/healthz");
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    assert!(h.headers.contains("Connection: close"), "{}", h.headers);
    assert!(h.headers.contains("Content-Length: 3"), "{}", h.headers);
    assert_eq!(ready(a), (200, "ready\n".to_string()));
    let mut c = s.conn();
    assert_eq!(
        c.cmd("CONFIG GET tandem-admin-port"),
        arr(&["tandem-admin-port", &a.to_string()])
    );
    for i in 0..3 {
        assert_eq!(c.cmd(&format!("SET k{i} v")), R::ok());
    }
    assert_eq!(c.cmd("SELECT 2"), R::ok());
    assert_eq!(c.cmd("SET other v"), R::ok());
    let m = get(a, "/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.headers
            .contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{}",
        m.headers
    );
    for (name, kind) in [
        ("tandem_up", "gauge"),
        ("tandem_fenced", "gauge"),
        ("tandem_role", "gauge"),
        ("tandem_connected_clients", "gauge"),
        ("tandem_connected_replicas", "gauge"),
        ("tandem_master_repl_offset", "gauge"),
        ("tandem_master_link_up", "gauge"),
        ("tandem_used_memory_bytes", "gauge"),
        ("tandem_keys", "gauge"),
        ("tandem_commands_processed_total", "counter"),
        ("tandem_uptime_seconds", "gauge"),
    ] {
        assert!(
            m.body.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}\n{}",
            m.body
        );
    }
    assert_eq!(metric(a, "tandem_up"), "1");
    assert_eq!(metric(a, "tandem_fenced"), "0");
    assert_eq!(metric(a, "tandem_role{role=\"master\"}"), "1");
    assert_eq!(metric(a, "tandem_role{role=\"replica\"}"), "0");
    assert_eq!(metric(a, "tandem_keys{db=\"0\"}"), "3");
    assert_eq!(metric(a, "tandem_keys{db=\"2\"}"), "1");
    // Only `c` (the start-up probe's connection may take a moment to go away).
    assert!(wait_until(WAIT, || metric(a, "tandem_connected_clients") == "1"));
    assert_eq!(metric(a, "tandem_connected_replicas"), "0");
    assert_eq!(metric(a, "tandem_master_link_up"), "0");
    assert!(
        metric(a, "tandem_commands_processed_total")
            .parse::<u64>()
            .expect("int")
            >= 6
    );
    assert!(
        metric(a, "tandem_used_memory_bytes")
            .parse::<u64>()
            .expect("int")
            > 0
    );
    metric(a, "tandem_uptime_seconds")
        .parse::<u64>()
        .expect("uptime int");
}

#[test]
fn unknown_paths_methods_and_bad_requests() {
    let (_s, a) = with_admin(&[]);
    assert_eq!(get(a, "/").status, 404);
    assert_eq!(get(a, "/metricsx").status, 404);
    assert_eq!(get(a, "/readyz?verbose=1").status, 200);
    let post = http_raw(a, b"POST /readyz HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
    assert!(
        post.headers.contains("Allow: GET, HEAD"),
        "{}",
        post.headers
    );
    let head = http_raw(a, b"HEAD /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");
    assert_eq!(http_raw(a, b"hello\r\n\r\n").status, 400);
    let mut big = b"GET /healthz HTTP/1.1\r\n".to_vec();
    for i in 0..400 {
        big.extend_from_slice(format!("X-Pad-{i}: aaaaaaaaaaaaaaaaaaaa\r\n").as_bytes());
    }
    big.extend_from_slice(b"\r\n");
    assert_eq!(http_raw(a, &big).status, 431);
    // A client that sends nothing is dropped after the I/O timeout, and does not
    // block others meanwhile.
    let idle = TcpStream::connect(("127.0.0.1", a)).expect("connect");
    assert_eq!(get(a, "/healthz").status, 200);
    idle.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = (&idle).read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "idle connection got data");
    assert!(started.elapsed() < Duration::from_secs(12));
}

#[test]
fn fenced_server_is_not_ready_until_a_role_is_assigned() {
    let (s, a) = with_admin(&["--tandem-fenced-start", "yes"]);
    assert_eq!(ready(a), (503, "fenced\n".to_string()));
    assert_eq!(get(a, "/healthz").status, 200);
    assert_eq!(metric(a, "tandem_fenced"), "1");
    let mut c = s.conn();
    assert_eq!(c.cmd("REPLICAOF NO ONE"), R::ok());
    assert_eq!(ready(a), (200, "ready\n".to_string()));
    assert_eq!(metric(a, "tandem_fenced"), "0");
}

#[test]
fn replica_is_ready_only_with_its_link_up() {
    // Nothing listens on the first master address: link down.
    let nowhere = free_port().to_string();
    let (r, a) = with_admin(&["--replicaof", "127.0.0.1", &nowhere]);
    assert_eq!(ready(a), (503, "replica link down\n".to_string()));
    assert_eq!(metric(a, "tandem_role{role=\"replica\"}"), "1");
    assert_eq!(metric(a, "tandem_master_link_up"), "0");
    let (m, ma) = with_admin(&[]);
    let mut mc = m.conn();
    assert_eq!(mc.cmd("SET a 1"), R::ok());
    let mut rc = r.conn();
    assert_eq!(rc.cmd(&format!("REPLICAOF 127.0.0.1 {}", m.port)), R::ok());
    assert!(
        wait_until(WAIT, || ready(a).0 == 200),
        "{:?}\n{}",
        ready(a),
        r.stdout()
    );
    assert_eq!(ready(a).1, "ready\n");
    assert_eq!(metric(a, "tandem_master_link_up"), "1");
    assert_eq!(rc.cmd("GET a"), R::bulk("1"));
    assert!(wait_until(WAIT, || metric(ma, "tandem_connected_replicas") == "1"));
    // The master goes away: the replica is no longer ready.
    drop(mc);
    drop(m);
    assert!(wait_until(WAIT, || ready(a)
        == (503, "replica link down\n".to_string())));
    assert_eq!(metric(a, "tandem_master_link_up"), "0");
}

/// A fake master that starts a full sync (+FULLRESYNC and part of the payload) and
/// then holds the transfer open until `release` is set (or 20 s pass).
fn stalled_master(release: Arc<AtomicBool>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let Ok((s, _)) = l.accept() else { return };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut w = s.try_clone().expect("clone");
        let mut r = BufReader::new(s);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut line = String::new();
        while Instant::now() < deadline && !release.load(Ordering::SeqCst) {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(_) => continue,
            }
            let l = line.trim().to_ascii_uppercase();
            let reply: &[u8] = if l == "PING" {
                b"+PONG\r\n"
            } else if l.starts_with("REPLCONF") {
                b"+OK\r\n"
            } else if l.starts_with("PSYNC") {
                let _ = w.write_all(
                    format!("+FULLRESYNC {} 0\r\n$100000\r\nREDIS0010", "b".repeat(40)).as_bytes(),
                );
                continue;
            } else {
                continue;
            };
            let _ = w.write_all(reply);
        }
    });
    port
}

#[test]
fn replica_is_not_ready_during_its_initial_sync() {
    let release = Arc::new(AtomicBool::new(false));
    let port = stalled_master(release.clone());
    let (r, a) = with_admin(&[]);
    let mut rc = r.conn();
    // The fake master reads lines: each RESP array the replica sends puts its
    // command name (PING, REPLCONF, PSYNC) at the start of a line.
    assert_eq!(rc.cmd(&format!("REPLICAOF 127.0.0.1 {port}")), R::ok());
    assert!(
        wait_until(WAIT, || ready(a)
            == (503, "initial sync in progress\n".to_string())),
        "{:?}\n{}",
        ready(a),
        r.stdout()
    );
    release.store(true, Ordering::SeqCst);
}

#[test]
fn admin_port_follows_tandem_bind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let aport = free_port();
    let mut child = std::process::Command::new(server_bin())
        .args(["--port", &port.to_string(), "--bind", "0.0.0.0"])
        .args(["--tandem-admin-port", &aport.to_string()])
        .args(["--dir", dir.path().to_str().expect("utf8")])
        .env("TANDEM_BIND", "127.0.0.2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let up = wait_until(WAIT, || {
        TcpStream::connect(("127.0.0.2", aport)).is_ok() || matches!(child.try_wait(), Ok(Some(_)))
    });
    let on_2 = TcpStream::connect(("127.0.0.2", aport)).is_ok();
    let on_1 = TcpStream::connect(("127.0.0.1", aport)).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    assert!(up && on_2, "admin port not on 127.0.0.2");
    assert!(!on_1, "admin port must not listen on 127.0.0.1");
}
