//! The master's wire format seen by a hand-driven replica: handshake replies,
//! +FULLRESYNC, `$<len>` payload, SELECT before the first command, lowercase
//! `ping` keepalives, offsets counting every stream byte, ACKs shown by ROLE.
mod common;
use common::*;
use std::io::{BufRead, Read};
use std::time::Duration;

fn read_exact(c: &mut Conn, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    c.stream.read_exact(&mut b).expect("read stream bytes");
    b
}

#[test]
fn master_stream_bytes_and_offsets_match_redis() {
    let m = TestServer::start(&[
        "--repl-diskless-sync",
        "no",
        "--repl-ping-replica-period",
        "1",
    ]);
    let mut rep = m.conn();
    assert_eq!(rep.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(rep.cmd("REPLCONF listening-port 7777"), R::ok());
    assert_eq!(rep.cmd("REPLCONF capa eof capa psync2"), R::ok());
    rep.send(&[b"PSYNC", b"?", b"-1"]);
    let mut line = String::new();
    let mut fullresync = String::new();
    let len: usize = loop {
        line.clear();
        rep.stream.read_line(&mut line).expect("line");
        if line == "\n" {
            continue; // keepalive before the payload
        }
        if let Some(rest) = line.strip_prefix("+FULLRESYNC ") {
            fullresync = rest.trim().to_string();
            continue;
        }
        break line[1..].trim().parse().expect("payload length");
    };
    let parts: Vec<&str> = fullresync.split(' ').collect();
    assert_eq!(parts.len(), 2, "{fullresync}");
    assert_eq!(parts[0].len(), 40);
    assert_eq!(parts[1], "0");
    let rdb = read_exact(&mut rep, len);
    assert!(rdb.starts_with(b"REDIS0010"));
    assert!(
        rdb.windows(parts[0].len())
            .any(|w| w == parts[0].as_bytes()),
        "RDB carries repl-id"
    );

    let mut mc = m.conn();
    assert_eq!(mc.cmd("set k1 v1"), R::ok());
    let want = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nset\r\n$2\r\nk1\r\n$2\r\nv1\r\n";
    // Pings may come first or later; collect until the SET arrived.
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !got.windows(want.len()).any(|w| w == want) && std::time::Instant::now() < deadline {
        let mut b = [0u8; 1];
        rep.stream.read_exact(&mut b).expect("stream");
        got.push(b[0]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let without_pings = text.replace("*1\r\n$4\r\nping\r\n", "");
    assert_eq!(without_pings.as_bytes(), want, "stream was {text:?}");
    // Next a lowercase ping (period 1 s), never a bare newline.
    assert_eq!(read_exact(&mut rep, 14), b"*1\r\n$4\r\nping\r\n");
    // Offsets: every stream byte counts.
    let off = match mc.cmd("ROLE") {
        R::Arr(v) => match v[1] {
            R::Int(n) => n,
            _ => panic!(),
        },
        other => panic!("{other:?}"),
    };
    assert_eq!((off - 52) % 14, 0, "offset {off} = 52 + pings");
    assert!(off >= 66);
    // Our ACK shows up in ROLE; no reply is sent to it.
    rep.send(&[b"REPLCONF", b"ACK", b"52"]);
    assert!(wait_until(Duration::from_secs(10), || mc.cmd("ROLE")
        == R::Arr(vec![
            R::bulk("master"),
            match mc.cmd("ROLE") {
                R::Arr(v) => v[1].clone(),
                _ => R::Nil,
            },
            R::Arr(vec![R::Arr(vec![
                R::bulk("127.0.0.1"),
                R::bulk("7777"),
                R::bulk("52"),
            ])]),
        ])));
    let log = m.stdout();
    assert!(
        log.contains("Replica 127.0.0.1:7777 asks for synchronization"),
        "{log}"
    );
    assert!(
        log.contains("Full resync requested by replica 127.0.0.1:7777"),
        "{log}"
    );
    assert!(
        log.contains("Replication backlog created, my new replication IDs are '"),
        "{log}"
    );
}

#[test]
fn psync_with_a_known_id_gets_continue_and_the_backlog_tail() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let target = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start(&["--replicaof", &target]);
    let mut rc = r.conn();
    assert!(wait_until(
        Duration::from_secs(20),
        || matches!(rc.cmd("ROLE"),
        R::Arr(v) if v.len() == 5 && v[3] == R::bulk("connected"))
    ));
    let mut mc = m.conn();
    assert_eq!(mc.cmd("SET a 1"), R::ok());
    let (replid, off) = {
        // The master's offset after SET a 1, and its replid from its log.
        let off = match mc.cmd("ROLE") {
            R::Arr(v) => match v[1] {
                R::Int(n) => n,
                _ => panic!(),
            },
            other => panic!("{other:?}"),
        };
        let log = m.stdout();
        let start = log
            .find("my new replication IDs are '")
            .expect("backlog created line")
            + "my new replication IDs are '".len();
        (log[start..start + 40].to_string(), off)
    };
    let mut fake = m.conn();
    assert_eq!(fake.cmd("REPLCONF capa psync2"), R::ok());
    // "SET a 1" is the last 27 stream bytes: offsets off-26 ..= off.
    let from = (off - 26).to_string();
    fake.send(&[b"PSYNC", replid.as_bytes(), from.as_bytes()]);
    assert_eq!(fake.read(), R::Simple(format!("CONTINUE {replid}")));
    let tail = read_exact(&mut fake, 27);
    assert_eq!(&tail[..], b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n");
    let log = m.stdout();
    assert!(
        log.contains(&format!(
            "accepted. Sending 27 bytes of backlog starting from offset {from}."
        )),
        "{log}"
    );
}

/// A fake master that does a full sync with an empty RDB at offset 100, then sends
/// `REPLCONF GETACK *`: the replica answers at once with the offset before the
/// GETACK (100), and its periodic ACKs then include it (137).
#[test]
fn replica_answers_getack_with_the_offset_before_it() {
    use std::io::Write;
    use std::net::TcpListener;
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || -> Vec<String> {
        let (s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut w = s.try_clone().expect("clone");
        let mut r = std::io::BufReader::new(s);
        let mut cmd = || -> Option<Vec<String>> {
            let mut line = String::new();
            r.read_line(&mut line).ok()?;
            let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
            let mut out = Vec::new();
            for _ in 0..n {
                line.clear();
                r.read_line(&mut line).ok()?;
                let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
                let mut b = vec![0u8; len + 2];
                r.read_exact(&mut b).ok()?;
                b.truncate(len);
                out.push(String::from_utf8_lossy(&b).into_owned());
            }
            Some(out)
        };
        let mut acks = Vec::new();
        let mut getack_sent: Option<std::time::Instant> = None;
        while let Some(args) = cmd() {
            match args[0].to_ascii_uppercase().as_str() {
                "PING" => w.write_all(b"+PONG\r\n").expect("w"),
                "PSYNC" => {
                    let mut rdb = Vec::new();
                    let opts = tandem_server::rdb::SaveOptions::default();
                    tandem_server::rdb::save(&[], &opts, &mut rdb).expect("rdb");
                    let mut p = format!("+FULLRESYNC {} 100\r\n${}\r\n", "c".repeat(40), rdb.len())
                        .into_bytes();
                    p.extend_from_slice(&rdb);
                    w.write_all(&p).expect("w");
                    std::thread::sleep(Duration::from_millis(200));
                    w.write_all(b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n")
                        .expect("w");
                    getack_sent = Some(std::time::Instant::now());
                }
                "REPLCONF" if args[1].eq_ignore_ascii_case("ack") => {
                    // Only ACKs after the GETACK, tagged "fast" if within 500 ms.
                    let Some(t) = getack_sent else { continue };
                    let fast = t.elapsed() < Duration::from_millis(500);
                    acks.push(format!(
                        "{}{}",
                        args[2],
                        if fast && acks.is_empty() { "!" } else { "" }
                    ));
                    if acks.iter().any(|a| a.starts_with("137")) {
                        return acks;
                    }
                }
                _ => w.write_all(b"+OK\r\n").expect("w"),
            }
        }
        acks
    });
    let target = format!("127.0.0.1 {port}");
    let r = TestServer::start(&["--replicaof", &target]);
    let acks = handle.join().expect("fake master");
    // The first ACK after GETACK comes at once with 100; then periodic ones say 137.
    assert_eq!(
        acks.first().map(String::as_str),
        Some("100!"),
        "acks {acks:?}\n{}",
        r.stdout()
    );
    assert_eq!(
        acks.last().map(String::as_str),
        Some("137"),
        "acks {acks:?}"
    );
}

/// Fake master: full sync (empty RDB, offset 100), then `script` steps (bytes, pause
/// after); collects the replica's ACK offsets until `stop` matches one.
fn fake_master_acks(
    script: Vec<(Vec<u8>, u64)>,
    stop: &'static str,
) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut w = s.try_clone().expect("clone");
        let mut r = std::io::BufReader::new(s);
        let mut acks = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return acks;
            }
            let Some(n) = line
                .trim()
                .strip_prefix('*')
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            let mut args = Vec::new();
            for _ in 0..n {
                line.clear();
                let _ = r.read_line(&mut line);
                let len: usize = line.trim().trim_start_matches('$').parse().unwrap_or(0);
                let mut b = vec![0u8; len + 2];
                let _ = r.read_exact(&mut b);
                b.truncate(len);
                args.push(String::from_utf8_lossy(&b).into_owned());
            }
            match args[0].to_ascii_uppercase().as_str() {
                "PING" => w.write_all(b"+PONG\r\n").expect("w"),
                "PSYNC" => {
                    let mut rdb = Vec::new();
                    let opts = tandem_server::rdb::SaveOptions::default();
                    tandem_server::rdb::save(&[], &opts, &mut rdb).expect("rdb");
                    let mut p = format!("+FULLRESYNC {} 100\r\n${}\r\n", "d".repeat(40), rdb.len())
                        .into_bytes();
                    p.extend_from_slice(&rdb);
                    w.write_all(&p).expect("w");
                    for (bytes, pause) in &script {
                        w.write_all(bytes).expect("w");
                        std::thread::sleep(Duration::from_millis(*pause));
                    }
                }
                "REPLCONF" if args[1].eq_ignore_ascii_case("ack") => {
                    acks.push(args[2].clone());
                    if args[2] == stop {
                        return acks;
                    }
                }
                _ => w.write_all(b"+OK\r\n").expect("w"),
            }
        }
    });
    (port, h)
}

#[test]
fn acked_offset_excludes_a_transaction_in_progress() {
    let multi = b"*1\r\n$5\r\nMULTI\r\n".to_vec(); // 15 bytes
    let set = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n".to_vec(); // 27
    let exec = b"*1\r\n$4\r\nEXEC\r\n".to_vec(); // 14
    let (port, h) = fake_master_acks(
        vec![
            (b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n".to_vec(), 100),
            (multi, 0),
            (set, 2500),
            (exec, 0),
        ],
        "179",
    );
    let target = format!("127.0.0.1 {port}");
    let r = TestServer::start(&["--replicaof", &target]);
    let acks = h.join().expect("fake master");
    // While the MULTI was open (2.5 s, several ACKs) the ACK stayed after SELECT.
    assert!(
        acks.iter().filter(|a| *a == "123").count() >= 2,
        "{acks:?}\n{}",
        r.stdout()
    );
    assert!(
        acks.iter()
            .all(|a| ["100", "123", "179"].contains(&a.as_str())),
        "{acks:?}"
    );
    assert_eq!(acks.last().map(String::as_str), Some("179"));
    let mut c = r.conn();
    assert!(wait_until(Duration::from_secs(5), || c.cmd("GET a") == R::bulk("1")));
}
