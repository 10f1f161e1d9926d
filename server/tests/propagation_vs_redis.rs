//! What Tandem streams to its replicas, compared command for command with what Redis
//! 7.0.15 streams for the same requests (both seen from a plain SYNC replica).
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
