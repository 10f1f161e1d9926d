//! maxmemory and the eviction policies, over TCP.
mod common;
use common::*;

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Sends `n` SETs of `size`-byte values pipelined; returns the replies.
fn fill(c: &mut Conn, prefix: &str, n: usize, size: usize) -> Vec<R> {
    let value = vec![b'x'; size];
    let mut buf = Vec::new();
    for i in 0..n {
        let key = format!("{prefix}{i}");
        buf.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
                key.len(),
                size
            )
            .as_bytes(),
        );
        buf.extend_from_slice(&value);
        buf.extend_from_slice(b"\r\n");
    }
    c.send_raw(&buf);
    (0..n).map(|_| c.read()).collect()
}

/// How many of `prefix0..prefix{n-1}` still exist.
fn count_present(c: &mut Conn, prefix: &str, n: usize) -> usize {
    let mut buf = Vec::new();
    for i in 0..n {
        let key = format!("{prefix}{i}");
        buf.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes());
    }
    c.send_raw(&buf);
    (0..n).filter(|_| c.read() != R::Nil).count()
}

#[test]
fn allkeys_lru_keeps_the_dataset_bounded_and_writes_succeed() {
    let s = TestServer::start(&["--maxmemory-policy", "allkeys-lru"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("CONFIG SET maxmemory 8mb"), R::ok());
    let n = 30_000;
    // 30 MB of values into an 8 MB limit.
    let replies = fill(&mut c, "k", n, 1000);
    assert!(replies.iter().all(|r| *r == R::ok()), "a write failed");
    // The most recent writes survive LRU eviction. (Asked first: reads evict too, as
    // in Redis, and the pass below reads the older keys, which makes them the
    // recently used ones.)
    assert_ne!(c.cmd(&format!("GET k{}", n - 1)), R::Nil);
    let present = count_present(&mut c, "k", n);
    assert!(present > 100 && present < n / 2, "present={present}");
}

#[test]
fn allkeys_random_and_volatile_ttl_evict_too() {
    let s = TestServer::start(&["--maxmemory-policy", "allkeys-random"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("CONFIG SET maxmemory 8mb"), R::ok());
    assert!(fill(&mut c, "r", 20_000, 1000)
        .iter()
        .all(|r| *r == R::ok()));
    assert!(count_present(&mut c, "r", 20_000) < 15_000);
    // volatile-ttl with no key carrying a TTL cannot free anything: OOM.
    assert_eq!(c.cmd("CONFIG SET maxmemory-policy volatile-ttl"), R::ok());
    assert_eq!(c.cmd("CONFIG SET maxmemory 1"), R::ok());
    assert_eq!(c.cmd("SET x y"), R::Err(OOM.into()));
}

#[test]
fn noeviction_refuses_writes_but_serves_reads() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET keep me"), R::ok());
    assert_eq!(c.cmd("CONFIG SET maxmemory 1"), R::ok());
    assert_eq!(c.cmd("SET k v"), R::Err(OOM.into()));
    assert_eq!(c.cmd("GET keep"), R::bulk("me"));
    assert_eq!(c.cmd("GET k"), R::Nil);
    // Lifting the limit makes writes work again.
    assert_eq!(c.cmd("CONFIG SET maxmemory 0"), R::ok());
    assert_eq!(c.cmd("SET k v"), R::ok());
}

#[test]
fn lowering_maxmemory_evicts_immediately() {
    let s = TestServer::start(&["--maxmemory-policy", "allkeys-lru"]);
    let mut c = s.conn();
    assert!(fill(&mut c, "e", 10_000, 1000)
        .iter()
        .all(|r| *r == R::ok()));
    assert_eq!(count_present(&mut c, "e", 10_000), 10_000);
    assert_eq!(c.cmd("CONFIG SET maxmemory 4mb"), R::ok());
    assert!(count_present(&mut c, "e", 10_000) < 5_000);
}

/// A replica ignores maxmemory (Redis's default `replica-ignore-maxmemory yes`): over
/// the limit, neither its clients' reads nor their writes (`replica-read-only no`)
/// evict a key or meet OOM; its keys are its master's to delete. (The master here is
/// a closed port: the link never comes up.)
#[test]
fn a_replica_over_maxmemory_evicts_nothing() {
    let mut p = Pair::start();
    let closed = free_port();
    p.same_words(&format!("REPLICAOF 127.0.0.1 {closed}"));
    p.same_words("CONFIG SET replica-read-only no");
    p.same_words("MSET a 1 b 2 c 3");
    p.same_words("CONFIG SET maxmemory-policy allkeys-random");
    p.same_words("CONFIG SET maxmemory 1");
    p.same_words("GET a");
    p.same_words("SET d 4");
    assert_eq!(p.same_words("DBSIZE"), R::Int(4));
    p.same_words("CONFIG SET maxmemory 0");
    p.same_words("REPLICAOF NO ONE");
}
