//! Behaviours of existing commands found by using them as Redis users do (issue 17,
//! item 10), each checked side by side against Debian's redis-server 7.0.15.
mod common;
use common::*;
use std::time::Duration;

/// Tandem and a real Redis with any number of connections to each.
struct Both {
    ours: TestServer,
    theirs: RealRedis,
    _dir: tempfile::TempDir,
}

impl Both {
    fn start() -> Both {
        let ours = TestServer::start(&[]);
        let dir = tempfile::tempdir().expect("tempdir");
        let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
        Both {
            ours,
            theirs,
            _dir: dir,
        }
    }

    /// One fresh connection to each server.
    fn conns(&self) -> (Conn, Conn) {
        (self.ours.conn(), self.theirs.conn())
    }
}

/// Sends one line to both connections and requires identical replies.
fn same(a: &mut Conn, b: &mut Conn, line: &str) -> R {
    let ra = a.cmd(line);
    let rb = b.cmd(line);
    assert_eq!(ra, rb, "reply to {line:?} differs from Redis 7.0.15");
    ra
}

/// Sends one line to both without reading replies.
fn send_both(a: &mut Conn, b: &mut Conn, line: &str) {
    let parts: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
    a.send(&parts);
    b.send(&parts);
}

/// Reads one reply from each and requires them to be identical.
fn read_same(a: &mut Conn, b: &mut Conn, what: &str) -> R {
    let (ra, rb) = (a.read(), b.read());
    assert_eq!(ra, rb, "{what}: reply differs from Redis 7.0.15");
    ra
}

/// Waits until both servers report `n` blocked clients.
fn wait_blocked(a: &mut Conn, b: &mut Conn, n: usize) {
    let want = format!("blocked_clients:{n}");
    for c in [a, b] {
        let ok = wait_until(Duration::from_secs(5), || match c.cmd("INFO clients") {
            R::Bulk(v) => String::from_utf8_lossy(&v).contains(&want),
            _ => false,
        });
        assert!(ok, "no {want}");
    }
}

// ---- 1. blocked list moves into a destination of the wrong type ----

#[test]
fn blocked_blmove_gets_wrongtype_when_destination_changes_type() {
    for cmd in ["BLMOVE src dst LEFT RIGHT 0", "BRPOPLPUSH src dst 0"] {
        let both = Both::start();
        let (mut a, mut b) = both.conns();
        let (mut a2, mut b2) = both.conns();
        send_both(&mut a, &mut b, cmd);
        wait_blocked(&mut a2, &mut b2, 1);
        same(&mut a2, &mut b2, "SET dst notalist");
        same(&mut a2, &mut b2, "RPUSH src x");
        let r = read_same(&mut a, &mut b, cmd);
        assert_eq!(r, err(WRONGTYPE));
        // The element stays in the source, the destination untouched.
        same(&mut a2, &mut b2, "LRANGE src 0 -1");
        same(&mut a2, &mut b2, "GET dst");
        wait_blocked(&mut a2, &mut b2, 0);
    }
}

// ---- 2. MULTI with administrative and blocking commands ----

#[test]
fn multi_refuses_or_runs_admin_commands_like_redis() {
    let both = Both::start();
    let (mut a, mut b) = both.conns();
    for line in [
        "MULTI",
        "SAVE",
        "BGREWRITEAOF",
        "CONFIG SET maxmemory-policy allkeys-lru",
        "CONFIG GET maxmemory-policy",
        "SHUTDOWN",
        "EXEC",
        "CONFIG GET maxmemory-policy",
        "MULTI",
        "SET k v",
        "SAVE",
        "EXEC",
        "GET k",
        "MULTI",
        "SYNC",
        "PSYNC ? -1",
        "EXEC",
        "MULTI",
        "WATCH k",
        "MONITOR",
        "EXEC",
        "MULTI",
        "SET k2 v",
        "BGSAVE",
        "EXEC",
    ] {
        same(&mut a, &mut b, line);
    }
    // The scheduled BGSAVE does run (from the cron) on both.
    for c in [&mut a, &mut b] {
        let saved = wait_until(Duration::from_secs(10), || {
            match c.cmd("INFO persistence") {
                R::Bulk(v) => {
                    let s = String::from_utf8_lossy(&v).to_string();
                    s.contains("rdb_changes_since_last_save:0")
                        && s.contains("rdb_bgsave_in_progress:0")
                }
                _ => false,
            }
        });
        assert!(saved, "the BGSAVE scheduled by EXEC never ran");
    }
}

#[test]
fn blocking_commands_inside_multi_act_as_with_zero_timeout() {
    let both = Both::start();
    let (mut a, mut b) = both.conns();
    for line in [
        "MULTI",
        "BLPOP nolist 0",
        "BRPOP nolist 1",
        "BLMOVE nolist other LEFT RIGHT 0",
        "BRPOPLPUSH nolist other 0",
        "BZPOPMIN nozset 0",
        "BZPOPMAX nozset 0",
        "BZMPOP 0 1 nozset MIN",
        "BLMPOP 0 1 nolist LEFT",
        "XREAD BLOCK 0 STREAMS nostream $",
        "EXEC",
        "RPUSH l a b",
        "ZADD z 1 m",
        "MULTI",
        "BLPOP l 0",
        "BLMOVE l dst LEFT RIGHT 0",
        "BZPOPMIN z 0",
        "EXEC",
    ] {
        same(&mut a, &mut b, line);
    }
}

// ---- 3. flushes and SWAPDB touch WATCHed keys ----

#[test]
fn flushes_and_swapdb_abort_transactions_watching_keys_like_redis() {
    let both = Both::start();
    let (mut a, mut b) = both.conns();
    let (mut a2, mut b2) = both.conns();
    // (setup, command run by another client, whether the watched key exists)
    let cases: &[(&str, &str)] = &[
        ("SET w 1", "FLUSHALL"),
        ("SET w 1", "FLUSHDB"),
        ("", "FLUSHALL"),
        ("", "FLUSHDB"),
        ("SET w 1", "SWAPDB 0 1"),
        ("", "SWAPDB 0 1"),
        ("SET w 1", "FLUSHALL ASYNC"),
    ];
    for (setup, other) in cases {
        same(&mut a2, &mut b2, "FLUSHALL");
        if !setup.is_empty() {
            same(&mut a2, &mut b2, setup);
        }
        same(&mut a, &mut b, "WATCH w");
        same(&mut a2, &mut b2, other);
        same(&mut a, &mut b, "MULTI");
        same(&mut a, &mut b, "PING");
        same(&mut a, &mut b, "EXEC");
    }
    // A watch in another database than the flushed one.
    same(&mut a2, &mut b2, "FLUSHALL");
    same(&mut a2, &mut b2, "SELECT 1");
    same(&mut a2, &mut b2, "SET w 1");
    same(&mut a, &mut b, "WATCH w");
    same(&mut a2, &mut b2, "FLUSHDB");
    same(&mut a, &mut b, "MULTI");
    same(&mut a, &mut b, "PING");
    same(&mut a, &mut b, "EXEC");
}

// ---- 4. CLIENT REPLY OFF|SKIP and pub/sub ----

#[test]
fn client_reply_off_still_delivers_pubsub_messages_like_redis() {
    let both = Both::start();
    let (mut a, mut b) = both.conns();
    let (mut a2, mut b2) = both.conns();
    send_both(&mut a, &mut b, "CLIENT REPLY OFF");
    send_both(&mut a, &mut b, "SUBSCRIBE ch");
    wait_until(
        Duration::from_secs(5),
        || matches!(a2.cmd("PUBSUB NUMSUB ch"), R::Arr(v) if v.get(1) == Some(&R::Int(1))),
    );
    wait_until(
        Duration::from_secs(5),
        || matches!(b2.cmd("PUBSUB NUMSUB ch"), R::Arr(v) if v.get(1) == Some(&R::Int(1))),
    );
    same(&mut a2, &mut b2, "PUBLISH ch hello");
    send_both(&mut a, &mut b, "UNSUBSCRIBE ch");
    send_both(&mut a, &mut b, "CLIENT REPLY ON");
    // Confirmations and messages are pushes: delivered although replies are off.
    let got: Vec<R> = (0..4)
        .map(|i| read_same(&mut a, &mut b, &format!("reply {i} after CLIENT REPLY OFF")))
        .collect();
    assert_eq!(
        got,
        vec![
            R::Arr(vec![R::bulk("subscribe"), R::bulk("ch"), R::Int(1)]),
            arr(&["message", "ch", "hello"]),
            R::Arr(vec![R::bulk("unsubscribe"), R::bulk("ch"), R::Int(0)]),
            R::ok(),
        ]
    );
    // RESP3: command replies stay off, pushes (subscribe, message) still arrive.
    // (Client ids differ between the servers: the HELLO maps are not compared.)
    a.cmd("HELLO 3");
    b.cmd("HELLO 3");
    send_both(&mut a, &mut b, "CLIENT REPLY OFF");
    send_both(&mut a, &mut b, "SUBSCRIBE ch2");
    send_both(&mut a, &mut b, "SET k v");
    read_same(&mut a, &mut b, "subscribe push");
    wait_until(
        Duration::from_secs(5),
        || matches!(a2.cmd("PUBSUB NUMSUB ch2"), R::Arr(v) if v.get(1) == Some(&R::Int(1))),
    );
    same(&mut a2, &mut b2, "PUBLISH ch2 x");
    let m = read_same(&mut a, &mut b, "message push");
    assert_eq!(
        m,
        R::Push(vec![R::bulk("message"), R::bulk("ch2"), R::bulk("x")])
    );
    send_both(&mut a, &mut b, "CLIENT REPLY ON");
    read_same(&mut a, &mut b, "CLIENT REPLY ON");
    same(&mut a, &mut b, "GET k");
}

// ---- 7. sharded pub/sub ----

#[test]
fn sharded_pubsub_uses_smessage_and_shard_replies() {
    let both = Both::start();
    let (mut a, mut b) = both.conns();
    let (mut a2, mut b2) = both.conns();
    same(&mut a, &mut b, "SSUBSCRIBE s1");
    send_both(&mut a, &mut b, "SSUBSCRIBE s2 s3");
    read_same(&mut a, &mut b, "ssubscribe s2");
    read_same(&mut a, &mut b, "ssubscribe s3");
    // Channel lists come in hash order: compare them as sets.
    assert_eq!(
        bulks(a2.cmd("PUBSUB SHARDCHANNELS")),
        bulks(b2.cmd("PUBSUB SHARDCHANNELS"))
    );
    same(&mut a2, &mut b2, "PUBSUB SHARDCHANNELS s1");
    same(&mut a2, &mut b2, "PUBSUB SHARDNUMSUB s1 s2 nope");
    same(&mut a2, &mut b2, "PUBSUB CHANNELS");
    same(&mut a2, &mut b2, "PUBSUB NUMPAT");
    for (c, name) in [(&mut a2, "ours"), (&mut b2, "Redis")] {
        let R::Bulk(v) = c.cmd("INFO stats") else {
            panic!("INFO stats");
        };
        let info = String::from_utf8_lossy(&v).to_string();
        assert!(
            info.contains("pubsubshard_channels:3\r\n"),
            "{name}: {info}"
        );
    }
    for (c, name) in [(&mut a2, "ours"), (&mut b2, "Redis")] {
        let R::Bulk(v) = c.cmd("CLIENT LIST") else {
            panic!("CLIENT LIST");
        };
        let info = String::from_utf8_lossy(&v).to_string();
        assert!(info.contains(" sub=0 psub=0 ssub=3 "), "{name}: {info}");
    }
    same(&mut a2, &mut b2, "SPUBLISH s1 hello");
    same(&mut a2, &mut b2, "PUBLISH s1 plain");
    let m = read_same(&mut a, &mut b, "sharded message");
    assert_eq!(m, arr(&["smessage", "s1", "hello"]));
    same(&mut a, &mut b, "SUNSUBSCRIBE s1");
    // Subscribed to plain channels and patterns too: counts stay per namespace.
    same(&mut a, &mut b, "SUBSCRIBE s1");
    same(&mut a, &mut b, "PSUBSCRIBE s*");
    same(&mut a2, &mut b2, "SPUBLISH s2 only-shard");
    let m = read_same(&mut a, &mut b, "smessage beside plain subscriptions");
    assert_eq!(m, arr(&["smessage", "s2", "only-shard"]));
    same(&mut a, &mut b, "UNSUBSCRIBE");
    same(&mut a, &mut b, "PUNSUBSCRIBE");
    same(&mut a, &mut b, "PING");
    // Unsubscribing from all comes in hash order: the channels are compared as a
    // set, the counts in order.
    send_both(&mut a, &mut b, "SUNSUBSCRIBE");
    let split = |c: &mut Conn| {
        let mut names = std::collections::BTreeSet::new();
        let mut counts = Vec::new();
        for _ in 0..2 {
            match c.read() {
                R::Arr(v) if v.len() == 3 => {
                    names.insert(format!("{:?}{:?}", v[0], v[1]));
                    counts.push(v[2].clone());
                }
                other => panic!("not an sunsubscribe confirmation: {other:?}"),
            }
        }
        (names, counts)
    };
    let (ours, theirs) = (split(&mut a), split(&mut b));
    assert_eq!(ours, theirs);
    assert_eq!(ours.1, vec![R::Int(1), R::Int(0)]);
    same(&mut a, &mut b, "SUNSUBSCRIBE");
    same(&mut a, &mut b, "PING");
    // RESP3: pushes.
    // (Client ids differ between the servers: the HELLO maps are not compared.)
    a.cmd("HELLO 3");
    b.cmd("HELLO 3");
    same(&mut a, &mut b, "SSUBSCRIBE s9");
    same(&mut a2, &mut b2, "SPUBLISH s9 hi");
    read_same(&mut a, &mut b, "resp3 smessage");
}

// ---- 8. SMOVE notifications, COPY/MOVE of every type ----

#[test]
fn smove_notifies_only_on_success() {
    let both = Both::start();
    let (mut a, mut b) = both.conns();
    let (mut a2, mut b2) = both.conns();
    same(&mut a2, &mut b2, "CONFIG SET notify-keyspace-events KEA");
    same(&mut a, &mut b, "PSUBSCRIBE __key*__:*");
    same(&mut a2, &mut b2, "SADD src m");
    read_same(&mut a, &mut b, "sadd keyspace");
    read_same(&mut a, &mut b, "sadd keyevent");
    same(&mut a2, &mut b2, "SMOVE src dst nosuch");
    same(&mut a2, &mut b2, "SMOVE nosrc dst m");
    same(&mut a2, &mut b2, "SADD dst m");
    read_same(&mut a, &mut b, "sadd2 keyspace");
    read_same(&mut a, &mut b, "sadd2 keyevent");
    // m is in both: Redis removes it from src only.
    same(&mut a2, &mut b2, "SMOVE src dst m");
    same(&mut a2, &mut b2, "SET marker 1");
    loop {
        let m = read_same(&mut a, &mut b, "after smove");
        if let R::Arr(v) = &m {
            if v.get(2) == Some(&R::bulk("__keyspace@0__:marker")) {
                break;
            }
        }
    }
}

#[test]
fn copy_and_move_every_type_like_redis() {
    let both = Both::start();
    let (mut a, mut b) = both.conns();
    for line in [
        "SET s v",
        "RPUSH l a b c",
        "SADD st x y",
        "SADD si 1 2 3",
        "ZADD z 1 a 2 b",
        "HSET h f v g w",
        "XADD x 1-1 f v",
        "XADD x 2-1 g w",
        "PFADD hll a b c",
        "SETBIT bm 7 1",
    ] {
        same(&mut a, &mut b, line);
    }
    for k in ["s", "l", "st", "si", "z", "h", "x", "hll", "bm"] {
        same(&mut a, &mut b, &format!("COPY {k} {k}2"));
        same(&mut a, &mut b, &format!("COPY {k} {k}2"));
        same(&mut a, &mut b, &format!("COPY {k} {k}2 REPLACE"));
        same(&mut a, &mut b, &format!("TYPE {k}2"));
        same(&mut a, &mut b, &format!("COPY {k} {k}3 DB 2"));
        same(&mut a, &mut b, &format!("MOVE {k} 3"));
        same(&mut a, &mut b, &format!("EXISTS {k}"));
    }
    for db in ["0", "2", "3"] {
        same(&mut a, &mut b, &format!("SELECT {db}"));
        for line in [
            "LRANGE l2 0 -1",
            "LRANGE l3 0 -1",
            "LRANGE l 0 -1",
            "SCARD si2",
            "SISMEMBER st3 x",
            "SMISMEMBER si 1 2 4",
            "ZRANGE z3 0 -1 WITHSCORES",
            "HMGET h f g",
            "HMGET h2 f g",
            "HLEN h3",
            "XRANGE x2 - +",
            "XRANGE x3 - +",
            "XRANGE x - +",
            "PFCOUNT hll2",
            "GET bm3",
            "GET s",
        ] {
            same(&mut a, &mut b, line);
        }
    }
    same(&mut a, &mut b, "SELECT 0");
    // Copy into itself, into a missing key with REPLACE, MOVE onto an existing key.
    same(&mut a, &mut b, "SET q 1");
    same(&mut a, &mut b, "COPY q q");
    same(&mut a, &mut b, "COPY nope q2 REPLACE");
    same(&mut a, &mut b, "SELECT 3");
    same(&mut a, &mut b, "SET q 2");
    same(&mut a, &mut b, "SELECT 0");
    same(&mut a, &mut b, "MOVE q 3");
    same(&mut a, &mut b, "MOVE q 0");
    same(&mut a, &mut b, "GET q");
}

// ---- 5 and 8. what a master sends its replica ----

/// Waits until the server on `port` reports its master link up.
fn wait_link_up(port: u16) {
    let mut c = Conn::connect(port);
    let up = wait_until(Duration::from_secs(20), || {
        match c.cmd("INFO replication") {
            R::Bulk(v) => String::from_utf8_lossy(&v).contains("master_link_status:up"),
            _ => false,
        }
    });
    assert!(up, "replica on {port} never linked");
}

/// The commands a Redis 7.0.15 replica of the master on `master_port` receives
/// while `script` runs there, read from the replica's MONITOR, with timestamps of
/// this decade (13-digit millisecond times) replaced by `T`.
fn replicated_stream(master_port: u16, script: &[Vec<Vec<u8>>]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = master_port.to_string();
    let replica = RealRedis::start(dir.path(), "r.rdb", &["--replicaof", "127.0.0.1", &port]);
    wait_link_up(replica.port);
    let mut mon = replica.conn();
    assert_eq!(mon.cmd("MONITOR"), R::ok());
    let mut m = Conn::connect(master_port);
    for args in script {
        let parts: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        m.cmd_args(&parts);
    }
    m.cmd("SET end-of-script 1");
    let mut lines = Vec::new();
    for _ in 0..1000 {
        let R::Simple(line) = mon.read() else {
            continue;
        };
        // `+<time> [<db> <addr>] "CMD" "arg"...`: keep the command part.
        let cmd = line
            .split_once("] ")
            .map_or(line.as_str(), |x| x.1)
            .to_string();
        if cmd.contains("\"end-of-script\"") {
            break;
        }
        if cmd.starts_with("\"PING\"") || cmd.starts_with("\"SELECT\"") {
            continue;
        }
        lines.push(stamp_times(&cmd));
    }
    lines
}

/// Replaces every quoted 13-digit number starting with 1 (a millisecond time
/// between 2001 and 2286) by "T".
fn stamp_times(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let inner = w.trim_matches('"');
            if inner.len() == 13
                && inner.starts_with('1')
                && inner.bytes().all(|c| c.is_ascii_digit())
            {
                "\"T\"".to_string()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn words(line: &str) -> Vec<Vec<u8>> {
    line.split_whitespace()
        .map(|w| w.as_bytes().to_vec())
        .collect()
}

#[test]
fn ttl_and_pop_commands_reach_replicas_in_redis_forms() {
    let both = Both::start();
    let mut rb = both.theirs.conn();
    assert_eq!(rb.cmd("CONFIG SET repl-diskless-sync-delay 0"), R::ok());
    // A DUMP payload from Redis, restored on both with a relative TTL.
    rb.cmd("SET dumped hello");
    let R::Bulk(payload) = rb.cmd("DUMP dumped") else {
        panic!("DUMP gave no payload");
    };
    rb.cmd("DEL dumped");
    let mut script: Vec<Vec<Vec<u8>>> = [
        "SET a 1 EX 100",
        "SET b 1 PX 100000",
        "SET c 1 EXAT 99999999999",
        "SET d 1 KEEPTTL",
        "SET e 1 EX 100 GET",
        "SETEX f 100 v",
        "PSETEX g 100000 v",
        "GETEX a EX 200",
        "GETEX a PERSIST",
        "GETEX b PXAT 99999999999000",
        "EXPIRE c 300",
        "PEXPIRE c 300000",
        "EXPIREAT c 99999999999",
        "EXPIRE d 300 NX",
        "EXPIRE d 1 GT",
        "EXPIRE d -1",
        "SET x 1",
        "PEXPIREAT x 1000",
        "ZADD z 1 a 2 b 3 c 4 d",
        "ZMPOP 1 z MIN",
        "ZMPOP 1 z MAX COUNT 2",
        "ZMPOP 1 z MIN COUNT 5",
        "ZADD z 5 e 6 f",
        "BZMPOP 0 1 z MIN COUNT 5",
        "ZADD z 7 g",
        "BZPOPMAX z 0",
        "ZADD z 8 h",
        "ZPOPMIN z 5",
        "RPUSH l a b c d e",
        "LMPOP 1 l LEFT COUNT 2",
        "BLMPOP 0 1 l RIGHT COUNT 9",
        "SADD s1 m",
        "SMOVE s1 s2 m",
        "SMOVE s1 s2 m",
        "SET t 1 EX 100",
        "MOVE t 1",
        "COPY b bc",
    ]
    .iter()
    .map(|l| words(l))
    .collect();
    script.push(vec![
        b"RESTORE".to_vec(),
        b"r1".to_vec(),
        b"100000".to_vec(),
        payload.clone(),
    ]);
    script.push(vec![
        b"RESTORE".to_vec(),
        b"r2".to_vec(),
        b"99999999999000".to_vec(),
        payload.clone(),
        b"ABSTTL".to_vec(),
    ]);
    script.push(vec![
        b"RESTORE".to_vec(),
        b"r3".to_vec(),
        b"0".to_vec(),
        payload,
    ]);
    let ours = replicated_stream(both.ours.port, &script);
    let theirs = replicated_stream(both.theirs.port, &script);
    assert_eq!(ours, theirs, "replication stream differs from Redis 7.0.15");
    assert!(
        theirs
            .iter()
            .any(|l| l.starts_with("\"SET\" \"a\" \"1\" \"PXAT\"")),
        "{theirs:?}"
    );
}

// ---- 6. keys with a TTL written on a writable replica ----

#[test]
fn writable_replica_expires_its_own_keys_like_redis() {
    let both = Both::start();
    let mut rb = both.theirs.conn();
    assert_eq!(rb.cmd("CONFIG SET repl-diskless-sync-delay 0"), R::ok());
    let dir = tempfile::tempdir().expect("tempdir");
    let master = both.theirs.port.to_string();
    let theirs = RealRedis::start(
        dir.path(),
        "r.rdb",
        &[
            "--replicaof",
            "127.0.0.1",
            &master,
            "--replica-read-only",
            "no",
        ],
    );
    let ours = TestServer::start(&[
        "--replicaof",
        &format!("127.0.0.1 {master}"),
        "--replica-read-only",
        "no",
    ]);
    wait_link_up(theirs.port);
    wait_link_up(ours.port);
    let (mut a, mut b) = (ours.conn(), theirs.conn());
    same(&mut a, &mut b, "SET local v PX 200");
    same(&mut a, &mut b, "SET plain v");
    same(&mut a, &mut b, "DBSIZE");
    // Neither is read again: only the replica's own expiry cycle can remove it.
    for c in [&mut a, &mut b] {
        let gone = wait_until(Duration::from_secs(10), || c.cmd("DBSIZE") == R::Int(1));
        assert!(gone, "the replica's own key with a TTL never expired");
    }
    same(&mut a, &mut b, "EXISTS local plain");
}
