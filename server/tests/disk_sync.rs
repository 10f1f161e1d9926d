//! Disk-target full sync (`repl-diskless-sync no`) as a raw replica sees it: the
//! `$<len>` payload (sent off the master's runtime worker over plain TCP) framed
//! exactly, the stream right after it, and a link killed or a server shut down
//! while the payload is still going out. Loopback only; every wait is bounded.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// Keys that make a payload (about 25 MB) larger than what loopback socket
/// buffers hold, so a replica that stops reading stalls the transfer midway.
const KEYS: &str = "200000";

/// A disk-target master with DEBUG enabled, holding `keys` keys of 100 bytes.
fn disk_master(keys: &str) -> TestServer {
    let m = TestServer::start(&[
        "--enable-debug-command",
        "yes",
        "--repl-diskless-sync",
        "no",
        "--save",
        "",
    ]);
    let mut c = m.conn();
    assert_eq!(c.cmd(&format!("DEBUG POPULATE {keys} key 100")), R::ok());
    m
}

/// Connects as a replica (`PSYNC ? -1`) and reads up to the payload's `$<len>`
/// line, skipping the keepalive newlines sent while the snapshot is made.
/// Returns the reader, positioned at the payload, and the announced length.
fn raw_replica(m: &TestServer) -> (BufReader<TcpStream>, usize) {
    let s = TcpStream::connect(("127.0.0.1", m.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut rd = BufReader::new(s);
    let mut c = Conn {
        stream: BufReader::new(rd.get_ref().try_clone().expect("clone")),
    };
    c.send(&[b"PSYNC", b"?", b"-1"]);
    let mut line = String::new();
    rd.read_line(&mut line).expect("FULLRESYNC line");
    assert!(line.starts_with("+FULLRESYNC "), "{line:?}");
    loop {
        line.clear();
        rd.read_line(&mut line).expect("payload header");
        if line != "\n" {
            break;
        }
    }
    let len = line
        .strip_prefix('$')
        .and_then(|l| l.strip_suffix("\r\n"))
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("not a $<len> header: {line:?}"));
    (rd, len)
}

/// The master's INFO replication shows its one replica in state `state`.
fn replica_state_is(c: &mut Conn, state: &str) -> bool {
    info_field(c, "replication", "slave0").is_some_and(|v| v.contains(&format!("state={state}")))
}

/// The master's INFO replication counts no connected replica.
fn no_replicas(c: &mut Conn) -> bool {
    info_field(c, "replication", "connected_slaves").as_deref() == Some("0")
}

/// Waits until the payload stalls: the bytes waiting in the replica's socket stop
/// growing (the master's send buffer and this receive buffer are full) over five
/// looks in a row.
fn wait_for_stall(rd: &BufReader<TcpStream>) {
    let mut buf = vec![0u8; 64 << 20];
    let (mut last, mut same) = (0, 0);
    let stalled = wait_until(WAIT, || {
        let waiting = rd.get_ref().peek(&mut buf).unwrap_or(0);
        same = if waiting > 0 && waiting == last {
            same + 1
        } else {
            0
        };
        last = waiting;
        same >= 5
    });
    assert!(stalled, "the payload never stalled ({last} bytes waiting)");
}

/// Reads until EOF or a reset; returns the bytes read. Panics if the
/// connection stays open past the read timeout.
fn drain_to_close(rd: &mut BufReader<TcpStream>) -> usize {
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match rd.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return total,
            Err(e) => panic!("the link stayed open: {e}"),
        }
    }
}

#[test]
fn disk_payload_is_framed_by_its_length_and_the_stream_follows_it() {
    let m = disk_master(KEYS);
    let (mut rd, len) = raw_replica(&m);
    let mut payload = vec![0u8; len];
    rd.read_exact(&mut payload).expect("the whole payload");
    assert_eq!(&payload[..5], b"REDIS", "an RDB starts with its magic");
    // The RDB's EOF opcode, then its 8-byte checksum, end the payload: the
    // length covers the RDB exactly (no CRLF after it).
    assert_eq!(payload[len - 9], 0xFF, "EOF opcode before the checksum");
    let mut c = m.conn();
    assert_eq!(c.cmd("SET after-sync 1"), R::ok());
    // The next bytes are the stream: commands as RESP arrays (a SELECT first,
    // maybe a PING), then the write.
    let mut stream = Conn { stream: rd };
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let R::Arr(cmd) = stream.read() else {
            panic!("the stream after the payload is not RESP arrays");
        };
        if cmd == vec![R::bulk("SET"), R::bulk("after-sync"), R::bulk("1")] {
            break;
        }
        seen.push(cmd);
    }
    assert!(
        seen.first()
            .is_some_and(|c| c.first() == Some(&R::bulk("SELECT"))),
        "the stream starts with a SELECT: {seen:?}"
    );
}

#[test]
fn killing_a_replica_mid_payload_closes_its_link_and_the_master_keeps_serving() {
    let m = disk_master(KEYS);
    let (mut rd, len) = raw_replica(&m);
    // The replica stops reading: the payload stalls once the socket buffers fill.
    let mut c = m.conn();
    assert!(wait_until(WAIT, || replica_state_is(&mut c, "send_bulk")));
    wait_for_stall(&rd);
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(c.cmd("CLIENT KILL TYPE replica"), R::Int(1));
    let got = drain_to_close(&mut rd);
    assert!(got < len, "the transfer was cut ({got} of {len} bytes)");
    assert!(wait_until(WAIT, || no_replicas(&mut c)));
    assert_eq!(c.cmd("DBSIZE"), R::Int(200_000));
    assert!(
        m.stdout().contains("Connection with replica"),
        "{}",
        m.stdout()
    );
}

#[test]
fn a_replica_that_vanishes_mid_payload_is_dropped() {
    let m = disk_master(KEYS);
    let (rd, _) = raw_replica(&m);
    let mut c = m.conn();
    assert!(wait_until(WAIT, || replica_state_is(&mut c, "send_bulk")));
    drop(rd);
    assert!(wait_until(WAIT, || no_replicas(&mut c)));
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
}

#[test]
fn shutdown_mid_payload_ends_the_server_and_the_link() {
    let mut m = disk_master(KEYS);
    let (mut rd, len) = raw_replica(&m);
    let mut c = m.conn();
    assert!(wait_until(WAIT, || replica_state_is(&mut c, "send_bulk")));
    wait_for_stall(&rd);
    c.send(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(
        wait_until(WAIT, || matches!(m.child.try_wait(), Ok(Some(_)))),
        "the server did not exit with a payload in flight; log:\n{}",
        m.stdout()
    );
    let got = drain_to_close(&mut rd);
    assert!(got < len, "the transfer was cut ({got} of {len} bytes)");
}
