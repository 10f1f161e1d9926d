//! What Tandem streams to its replicas, compared command for command with what Redis
//! 7.0.15 streams for the same requests (both seen from a plain SYNC replica), and the
//! expiry clock of a transaction.
mod common;
use common::*;
use std::time::Duration;

/// Runs `setup` and then `requests` (space-separated words, `#` standing for a
/// space inside one) on Tandem and on Redis, both with active expiry off, and returns
/// the streams each sent a replica attached before `requests`, up to a final `SET done
/// 1`. `pause_ms` is slept after setup.
fn streams(setup: &[&str], pause_ms: u64, requests: &[&str]) -> [Vec<String>; 2] {
    let ours = TestServer::start(&["--enable-debug-command", "yes"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    [ours.port, theirs.port].map(|port| {
        let mut c = Conn::connect(port);
        assert_eq!(c.cmd("DEBUG SET-ACTIVE-EXPIRE 0"), R::ok());
        for q in setup {
            c.cmd(q);
        }
        std::thread::sleep(Duration::from_millis(pause_ms));
        let mut repl = attach_replica(port);
        for q in requests {
            let words: Vec<String> = q.split_whitespace().map(|w| w.replace('#', " ")).collect();
            let words: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
            c.cmd_args(&words);
        }
        assert_eq!(c.cmd("SET done 1"), R::ok());
        propagated(&mut repl)
    })
}

/// SCAN and RANDOMKEY may find keys they were not asked about expired: run directly,
/// their DELs go out bare, like the active expiry's, not in MULTI/EXEC. Inside MULTI
/// or a script they are part of the transaction, and KEYS (which only skips expired
/// keys) and a write that replaces an expired key wrap theirs as any command does.
#[test]
fn lazy_expiry_by_scan_and_randomkey_is_not_wrapped() {
    let expiring = ["SET foo1 bar PX 1", "SET foo2 bar PX 1"];
    for requests in [
        &["SCAN 0"][..],
        &["RANDOMKEY"],
        &["SCAN 0 MATCH foo* COUNT 100"],
        &["MULTI", "SCAN 0", "EXEC"],
        &["MULTI", "RANDOMKEY", "EXEC"],
        &["EVAL return#redis.call('scan','0') 0"],
        &["KEYS *", "SET foo1 x", "GET foo2"],
    ] {
        let [ours, theirs] = streams(&expiring, 20, requests).map(dels_sorted);
        assert_eq!(ours, theirs, "stream for {requests:?}");
        assert!(ours.iter().any(|l| l.starts_with("DEL")), "{ours:?}");
    }
}

/// `stream` with each run of consecutive DELs sorted: which of two expired keys a
/// scan or a random pick meets first is not defined.
fn dels_sorted(mut stream: Vec<String>) -> Vec<String> {
    let mut i = 0;
    while i < stream.len() {
        let run = stream[i..]
            .iter()
            .take_while(|l| l.starts_with("DEL "))
            .count();
        stream[i..i + run].sort();
        i += run.max(1);
    }
    stream
}

/// PUBLISH on a master goes down the replication stream, alone, in MULTI/EXEC (with
/// the transaction's writes) and from a script, as Redis 7.0 sends it.
#[test]
fn publish_is_propagated_to_replicas_as_redis_does() {
    let [ours, theirs] = streams(
        &[],
        0,
        &[
            "PUBLISH ch m1",
            "SPUBLISH sch m2",
            "MULTI",
            "PUBLISH bla bla",
            "EXEC",
            "MULTI",
            "PUBLISH bla bla",
            "SET k v",
            "EXEC",
            "EVAL return#redis.call('publish','e','1') 0",
        ],
    );
    assert_eq!(ours, theirs);
    assert!(ours.contains(&"PUBLISH ch m1".to_string()), "{ours:?}");
    assert_eq!(ours.last().map(String::as_str), Some("publish e 1"));
}

/// A replica's subscribers get what is published on its master; the master's AOF
/// does not keep the PUBLISH (only its replicas get it), while the write next to it
/// in the same transaction is kept.
#[test]
fn publish_reaches_a_replicas_subscribers_and_stays_out_of_the_aof() {
    let master = TestServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let port = master.port.to_string();
    let replica = TestServer::start(&["--replicaof", "127.0.0.1", &port]);
    let mut r = replica.conn();
    assert!(wait_until(Duration::from_secs(30), || info_field(
        &mut r,
        "replication",
        "master_link_status"
    )
    .as_deref()
        == Some("up")));
    let mut sub = replica.conn();
    sub.cmd("SUBSCRIBE news");
    let mut m = master.conn();
    assert_eq!(m.cmd("MULTI"), R::ok());
    m.cmd("PUBLISH news hello");
    m.cmd("SET k v");
    assert_eq!(m.cmd("EXEC"), R::Arr(vec![R::Int(0), R::ok()]));
    assert_eq!(
        sub.read(),
        R::Arr(vec![b("message"), b("news"), b("hello")])
    );
    assert_eq!(m.cmd("WAIT 1 10000"), R::Int(1));
    assert_eq!(r.cmd("GET k"), b("v"));
    let aof = aof_text(master.dir.path());
    assert!(
        aof.contains("SET") && !aof.to_ascii_lowercase().contains("publish"),
        "{aof}"
    );
}

/// Everything the AOF files under `dir` hold, as text.
fn aof_text(dir: &std::path::Path) -> String {
    let mut text = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(".aof") {
                text.push_str(&String::from_utf8_lossy(&std::fs::read(&p).expect("aof")));
            }
        }
    }
    text
}

/// The commands of a transaction decide expiry at the time EXEC started: a key set
/// to expire in 5 ms is still there after a 20 ms sleep in the same transaction (its
/// TTL already reads 0), and gone after EXEC.
#[test]
fn exec_decides_expiry_at_its_start_time() {
    let mut p = Both::start();
    for q in [
        "MULTI",
        "SET k v PX 5",
        "DEBUG SLEEP 0.02",
        "EXISTS k",
        "GET k",
        "PTTL k",
        "TTL k",
        "SET k2 v PX 5",
        "DEBUG SLEEP 0.02",
        "INCR k2",
        "EXEC",
        "EXISTS k",
        "EXISTS k2",
    ] {
        p.same_words(q);
    }
    let r = p.same_words("MULTI");
    assert_eq!(r, R::ok());
    for q in ["SET k v PX 5", "DEBUG SLEEP 0.02", "EXISTS k"] {
        p.same_words(q);
    }
    assert_eq!(
        p.same_words("EXEC"),
        R::Arr(vec![R::ok(), R::ok(), R::Int(1)])
    );
}
