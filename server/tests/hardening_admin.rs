//! The admin HTTP port cannot be starved by idle connections, closes connections
//! that do not send a request in time, and binds only where it is told to.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The server's head timeout (`admin::HEAD_TIMEOUT`).
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

fn with_admin(extra: &[&str]) -> (TestServer, u16) {
    let aport = free_port();
    let p = aport.to_string();
    let mut args = vec!["--tandem-admin-port", p.as_str()];
    args.extend_from_slice(extra);
    (TestServer::start(&args), aport)
}

/// Status of `GET path` and how long the whole exchange took.
fn timed_get(host: &str, port: u16, path: &str) -> (u16, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect((host, port)).expect("connect admin port");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read until close");
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, t.elapsed())
}

/// `n` connections to the admin port that never send anything.
fn idle_connections(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let s = TcpStream::connect(("127.0.0.1", port)).expect("idle connect");
            // Non-blocking: checking 600 of them for EOF must not take 600 timeouts.
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect()
}

/// True when the server has closed `s` (EOF or reset); false while it is open.
fn closed(mut s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn healthz_answers_quickly_while_200_idle_connections_are_open() {
    let (_s, aport) = with_admin(&[]);
    let idle = idle_connections(aport, 200);
    for path in ["/healthz", "/readyz", "/healthz"] {
        let (status, took) = timed_get("127.0.0.1", aport, path);
        assert_eq!(status, 200, "{path}");
        assert!(took < Duration::from_secs(1), "{path} took {took:?}");
    }
    // Under the cap nobody was closed to make room.
    assert!(
        !idle.iter().any(closed),
        "an idle connection was closed under the cap"
    );
}

#[test]
fn past_the_cap_the_oldest_waiting_connections_make_room() {
    let (_s, aport) = with_admin(&[]);
    // 600 > the cap of 512: the newest ones still get in, by closing the oldest.
    let idle = idle_connections(aport, 600);
    let (status, took) = timed_get("127.0.0.1", aport, "/healthz");
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "/healthz took {took:?}");
    // 601 connections for 512 places: at least 89 make room. Under load a few
    // connections the client saw established wait in the kernel's accept queue
    // and are accepted later, so poll (well within the head timeout).
    let closed_count = || idle.iter().filter(|s| closed(s)).count();
    let enough = wait_until(Duration::from_secs(3), || closed_count() >= 89);
    let n = closed_count();
    assert!(enough, "only {n} connections closed past the cap");
    assert!(n < 200, "{n} connections closed");
    assert!(closed(&idle[0]), "the oldest idle connection is still open");
    assert!(!closed(&idle[599]), "the newest idle connection was closed");
}

#[test]
fn a_connection_without_a_request_is_closed_after_the_head_timeout() {
    let (_s, aport) = with_admin(&[]);
    let mut silent = TcpStream::connect(("127.0.0.1", aport)).expect("connect");
    let mut partial = TcpStream::connect(("127.0.0.1", aport)).expect("connect");
    let opened = Instant::now();
    // A slow client trickling its head does not get more time than a silent one.
    partial.write_all(b"GET /hea").expect("send");
    for s in [&mut silent, &mut partial] {
        s.set_read_timeout(Some(HEAD_TIMEOUT * 3)).expect("timeout");
    }
    let mut buf = [0u8; 64];
    assert_eq!(silent.read(&mut buf).expect("EOF, not a timeout"), 0);
    let waited = opened.elapsed();
    assert!(
        waited >= HEAD_TIMEOUT - Duration::from_millis(500),
        "closed after {waited:?}, before the head timeout"
    );
    assert!(waited < HEAD_TIMEOUT * 2, "closed only after {waited:?}");
    let _ = partial.write_all(b"lth");
    let n = partial.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "a late request got an answer");
}

#[test]
fn admin_binds_the_first_bind_address_unless_told_otherwise() {
    let (s, aport) = with_admin(&["--bind", "127.0.0.1 127.0.0.2"]);
    // The main port listens on both; the admin port only on the first.
    assert!(TcpStream::connect(("127.0.0.2", s.port)).is_ok());
    assert_eq!(timed_get("127.0.0.1", aport, "/healthz").0, 200);
    assert!(
        TcpStream::connect(("127.0.0.2", aport)).is_err(),
        "admin port listens on the second bind address"
    );
    drop(s);
    let (s, aport) = with_admin(&["--tandem-admin-bind", "127.0.0.3"]);
    assert_eq!(timed_get("127.0.0.3", aport, "/healthz").0, 200);
    assert!(TcpStream::connect(("127.0.0.1", aport)).is_err());
    let mut c = s.conn();
    assert_eq!(
        c.cmd("CONFIG GET tandem-admin-bind"),
        arr(&["tandem-admin-bind", "127.0.0.3"])
    );
    assert_eq!(
        c.cmd("CONFIG SET tandem-admin-bind 127.0.0.1"),
        err("ERR CONFIG SET failed (possibly related to argument 'tandem-admin-bind') - can't set immutable config")
    );
}
