//! Replies written at the end of the scheduling round (`server/src/rounds.rs`): every
//! reply still reaches its client in order, a client that does not read is not
//! buffered without bound, and replies handed over before a connection ends still go
//! out.
mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

fn used_memory(c: &mut Conn) -> u64 {
    info_field(c, "memory", "used_memory")
        .and_then(|v| v.parse().ok())
        .expect("used_memory")
}

/// A pipeline whose replies (about 44 MB) are far more than the socket holds, sent
/// by a client that reads nothing until all of it is sent: the server stops reading
/// when the client stops reading (its memory stays flat), then every reply arrives
/// in order.
#[test]
fn a_client_that_reads_late_gets_every_reply_in_order_without_the_server_buffering_them() {
    let s = TestServer::start(&[]);
    let mut admin = s.conn();
    let value = "v".repeat(200);
    assert_eq!(admin.cmd(&format!("SET k {value}")), R::ok());
    let before = used_memory(&mut admin);

    const PAIRS: usize = 200_000;
    let port = s.port;
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = sock.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut batch = Vec::new();
        for _ in 0..PAIRS {
            batch.extend_from_slice(
                b"*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
            );
            if batch.len() > 64 * 1024 {
                writer.write_all(&batch).unwrap();
                batch.clear();
            }
        }
        writer.write_all(&batch).unwrap();
    });

    // While nothing is read, the server holds back: it stops reading this client
    // once the socket is full, so its memory does not grow by the replies' size.
    // Wait until the pipeline was accepted whole (what a server without back-pressure
    // does) or the server stopped making progress on it: the counter holds still over
    // five polls in a row, about 100 ms (the client's socket is full and the server
    // no longer reads from it).
    let (mut last, mut still) = (None, 0);
    let settled = wait_until(Duration::from_secs(20), || {
        let now = match admin.cmd("GET c") {
            R::Bulk(n) => String::from_utf8_lossy(&n).parse::<usize>().ok(),
            _ => None,
        };
        still = if now.is_some() && now == last {
            still + 1
        } else {
            0
        };
        last = now;
        sender.is_finished() || still >= 5
    });
    assert!(settled, "the server kept running the pipeline for 20 s");
    let grown = used_memory(&mut admin).saturating_sub(before);
    assert!(
        grown < 16 << 20,
        "server memory grew by {grown} bytes while the client did not read"
    );
    assert!(
        !sender.is_finished(),
        "the whole pipeline was accepted without back-pressure"
    );

    let mut reader = Conn {
        stream: std::io::BufReader::new(sock),
    };
    for i in 1..=PAIRS as i64 {
        assert_eq!(reader.read(), R::Int(i), "reply {i} out of order");
        assert_eq!(reader.read(), R::Bulk(value.clone().into_bytes()));
    }
    sender.join().unwrap();
    assert_eq!(admin.cmd("GET c"), R::bulk(&PAIRS.to_string()));
}

/// Many clients pipelining at once, each on its own counter: every client gets its
/// own replies, complete and in order, however the rounds group them.
#[test]
fn concurrent_pipelines_each_get_their_own_replies_in_order() {
    concurrent_pipelines(&[]);
}

/// The same with two runtime workers, whose rounds end independently while a
/// connection may move between them.
#[test]
fn concurrent_pipelines_on_two_io_threads_each_get_their_own_replies_in_order() {
    concurrent_pipelines(&["--io-threads", "2"]);
}

fn concurrent_pipelines(args: &[&str]) {
    let s = TestServer::start(args);
    let port = s.port;
    let workers: Vec<_> = (0..16)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = Conn::connect(port);
                let key = format!("counter:{w}");
                for round in 0..50 {
                    let depth = 1 + (w + round) % 40;
                    let mut batch = Vec::new();
                    for _ in 0..depth {
                        batch.extend_from_slice(
                            format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len()).as_bytes(),
                        );
                    }
                    c.send_raw(&batch);
                    let done: i64 = (0..round).map(|r| 1 + (w + r) % 40).sum::<usize>() as i64;
                    for i in 1..=depth as i64 {
                        assert_eq!(c.read(), R::Int(done + i), "client {w} round {round}");
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

/// A client that sends its requests and closes its side at once still gets every
/// reply before the server closes the connection.
#[test]
fn a_half_closed_client_gets_its_replies() {
    let s = TestServer::start(&[]);
    let port = s.port;
    for _ in 0..20 {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sock.write_all(b"PING\r\nINCR n\r\nPING\r\n").unwrap();
        sock.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        sock.read_to_end(&mut got).unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("+PONG\r\n:") && text.ends_with("\r\n+PONG\r\n"),
            "{text:?}"
        );
    }
}

/// CLIENT KILL of the calling client (`SKIPME no`) answers `:1` before the
/// connection closes, as in Redis: the reply handed over before the kill still goes
/// out.
#[test]
fn a_client_killing_itself_gets_ok_then_eof() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let R::Int(id) = c.cmd("CLIENT ID") else {
        panic!("CLIENT ID");
    };
    assert_eq!(c.cmd(&format!("CLIENT KILL ID {id} SKIPME no")), R::Int(1));
    assert!(c.is_closed());
}

/// A client streaming a pipeline without pause keeps the worker from ever running
/// out of work; another client's replies must not wait for that stream to end.
#[test]
fn a_busy_pipelining_client_does_not_hold_back_another_clients_replies() {
    let s = TestServer::start(&[]);
    let port = s.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut writer = sock.try_clone().unwrap();
    let stop_w = stop.clone();
    let streamer = std::thread::spawn(move || {
        let chunk = b"*2\r\n$4\r\nINCR\r\n$1\r\nb\r\n".repeat(2000);
        let started = std::time::Instant::now();
        let mut sent = 0;
        // Bounded: 3 s or 4M commands, whichever comes first.
        while !stop_w.load(std::sync::atomic::Ordering::Relaxed)
            && started.elapsed() < Duration::from_secs(3)
            && sent < 4_000_000
        {
            writer.write_all(&chunk).unwrap();
            sent += 2000;
        }
        writer.shutdown(Shutdown::Write).unwrap();
        sent
    });
    let mut sink = sock;
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while let Ok(n) = sink.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let mut c = s.conn();
    let mut slowest = Duration::ZERO;
    let mut pings = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let t = std::time::Instant::now();
        assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
        slowest = slowest.max(t.elapsed());
        pings += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = streamer.join().unwrap();
    drain.join().unwrap();
    assert!(sent > 100_000, "the stream was not busy: {sent} commands");
    assert!(pings > 20, "only {pings} PINGs in 2 s");
    assert!(
        slowest < Duration::from_millis(250),
        "a PING waited {slowest:?} behind the streaming client"
    );
}
