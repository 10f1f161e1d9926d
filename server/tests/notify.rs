//! Keyspace notifications, compared with Debian's redis-server 7.0.15: each test runs
//! the same commands on Tandem and on Redis, each with a subscriber on
//! `__key*__:*`, and requires the same replies and exactly the same sequence of
//! notifications (channel and message, in order).
//!
//! The end of a sequence is marked without sleeping: a PUBLISH on a channel the
//! pattern also matches is delivered after every event raised before it.
mod common;

use common::*;
use std::time::Duration;

const SYNC_CHANNEL: &str = "__keysync__:end";

/// Tandem and Redis side by side: a command connection and a subscribed one on each.
struct Watched {
    _ours: TestServer,
    _theirs: RealRedis,
    _dir: tempfile::TempDir,
    ours: u16,
    theirs: u16,
    a: Conn,
    b: Conn,
    /// The subscribers.
    sa: Conn,
    sb: Conn,
    /// Publish the end markers (so a command connection may sit inside MULTI).
    pa: Conn,
    pb: Conn,
}

/// One notification: (channel, message).
type Event = (String, String);

impl Watched {
    fn start(classes: &str) -> Watched {
        Self::start_with(classes, &[], &[])
    }

    fn start_with(classes: &str, ours_args: &[&str], theirs_args: &[&str]) -> Watched {
        let mut args = vec!["--enable-debug-command", "yes"];
        args.extend_from_slice(ours_args);
        let ours = TestServer::start(&args);
        let dir = tempfile::tempdir().expect("tempdir");
        let theirs = RealRedis::start(dir.path(), "dump.rdb", theirs_args);
        let (ca, cb) = (ours.conn(), theirs.conn());
        let (sa, sb) = (ours.conn(), theirs.conn());
        let (pa, pb) = (ours.conn(), theirs.conn());
        let mut w = Watched {
            ours: ours.port,
            theirs: theirs.port,
            _ours: ours,
            _theirs: theirs,
            _dir: dir,
            a: ca,
            b: cb,
            sa,
            sb,
            pa,
            pb,
        };
        w.classes(classes);
        for s in [&mut w.sa, &mut w.sb] {
            s.send(&[b"PSUBSCRIBE", b"__key*__:*"]);
            assert_eq!(
                s.read(),
                R::Arr(vec![b("psubscribe"), b("__key*__:*"), R::Int(1)])
            );
        }
        w
    }

    /// CONFIG SET notify-keyspace-events on both.
    fn classes(&mut self, classes: &str) {
        let set: &[&[u8]] = &[
            b"CONFIG",
            b"SET",
            b"notify-keyspace-events",
            classes.as_bytes(),
        ];
        assert_eq!(self.a.cmd_args(set), R::ok());
        assert_eq!(self.b.cmd_args(set), R::ok());
    }

    /// Runs one command (space-separated words) on both; the replies must match.
    /// The word `''` stands for an empty argument. A line starting with `~` is a
    /// command whose reply is random (SPOP with a count): only its kind is compared.
    fn both(&mut self, line: &str) -> R {
        let (random, line) = match line.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let args: Vec<&[u8]> = line
            .split_whitespace()
            .map(|w| if w == "''" { &b""[..] } else { w.as_bytes() })
            .collect();
        let ra = self.a.cmd_args(&args);
        let rb = self.b.cmd_args(&args);
        if random {
            assert_eq!(
                std::mem::discriminant(&ra),
                std::mem::discriminant(&rb),
                "reply to {line:?}: {ra:?} vs Redis {rb:?}"
            );
        } else {
            assert_eq!(ra, rb, "reply to {line:?} differs from Redis 7.0.15");
        }
        ra
    }

    fn run(&mut self, lines: &[&str]) {
        for l in lines {
            self.both(l);
        }
    }

    /// The notifications each server has sent since the last call, which must be
    /// the same (`after` names what ran, for the failure message); returns them.
    fn events_after(&mut self, after: &str) -> Vec<Event> {
        let ours = drain(&mut self.pa, &mut self.sa);
        let theirs = drain(&mut self.pb, &mut self.sb);
        if ours != theirs {
            let show = |v: &[Event]| {
                v.iter()
                    .map(|(c, d)| format!("  {c} {d}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            panic!(
                "notifications after {after} differ from Redis 7.0.15\nTandem:\n{}\nRedis:\n{}",
                show(&ours),
                show(&theirs)
            );
        }
        theirs
    }

    fn events(&mut self) -> Vec<Event> {
        self.events_after("the last commands")
    }

    /// Like `events`, for events raised in a random order (the expire cycle samples
    /// keys at random): compared and returned sorted.
    fn events_sorted(&mut self) -> Vec<Event> {
        let mut ours = drain(&mut self.pa, &mut self.sa);
        let mut theirs = drain(&mut self.pb, &mut self.sb);
        ours.sort();
        theirs.sort();
        assert_eq!(
            ours, theirs,
            "notifications differ from Redis 7.0.15 (left: Tandem)"
        );
        theirs
    }

    /// Runs `lines` on both, comparing replies and then the notifications of each
    /// command; all of them together must not be empty.
    fn check(&mut self, lines: &[&str]) -> Vec<Event> {
        let mut all = Vec::new();
        for l in lines {
            self.both(l);
            all.extend(self.events_after(l));
        }
        assert!(!all.is_empty(), "no notifications for {lines:?}");
        all
    }
}

/// Reads `sub`'s messages up to a marker published through `publisher`.
fn drain(publisher: &mut Conn, sub: &mut Conn) -> Vec<Event> {
    assert_eq!(
        publisher.cmd(&format!("PUBLISH {SYNC_CHANNEL} x")),
        R::Int(1)
    );
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let R::Arr(items) = sub.read() else {
            panic!("subscriber got a non-array");
        };
        let text = |r: &R| match r {
            R::Bulk(v) => String::from_utf8_lossy(v).into_owned(),
            other => panic!("not a bulk: {other:?}"),
        };
        let [kind, _pattern, channel, data] = &items[..] else {
            panic!("not a pmessage: {items:?}");
        };
        assert_eq!(text(kind), "pmessage");
        let channel = text(channel);
        if channel == SYNC_CHANNEL {
            return out;
        }
        out.push((channel, text(data)));
    }
    panic!("no end marker after 10000 messages");
}

/// One expected notification.
fn note(channel: &str, data: &str) -> Event {
    (channel.to_string(), data.to_string())
}

#[test]
fn string_commands_notify_like_redis() {
    // With the generic class too: SET EX, GETEX and GETDEL raise generic events.
    let mut w = Watched::start("KE$g");
    let ev = w.check(&[
        "SET s v",
        "SET s v NX",
        "SET s w XX GET",
        "SETNX s x",
        "SETNX s2 x",
        "SETEX s3 100 v",
        "PSETEX s4 100000 v",
        "GETSET s y",
        "MSET m1 a m2 b",
        "MSETNX m1 a m3 c",
        "MSETNX m4 a m5 c",
        "SETRANGE s 1 abc",
        "SETRANGE s 0 ''",
        "SETRANGE empty 0 ''",
        "SETRANGE new 3 x",
        "INCR n",
        "INCRBY n 5",
        "DECR n",
        "DECRBY n 2",
        "INCRBYFLOAT f 1.5",
        "APPEND s zz",
        "APPEND a2 zz",
        "GETDEL s",
        "GETDEL nothing",
        "GETEX s2 EX 100",
        "GETEX s2 PERSIST",
        "GETEX s2",
        "GETEX s2 PXAT 1",
        "SET s5 v KEEPTTL",
        "SET s5 v PXAT 99999999999999 GET",
        "SET s5 v NX EX 10",
        "LCS m1 m2",
        "GET m1",
    ]);
    assert!(ev.contains(&note("__keyspace@0__:s", "set")));
    assert!(ev.contains(&note("__keyevent@0__:incrby", "n")));
}

#[test]
fn generic_commands_notify_like_redis() {
    let mut w = Watched::start("KEA");
    w.run(&[
        "SET a 1",
        "SET b 2",
        "RPUSH l x y",
        "HSET h f v",
        "SADD s m",
        "ZADD z 1 m",
    ]);
    w.events();
    let ev = w.check(&[
        "DEL a nosuch b",
        "UNLINK l",
        "SET k v",
        "EXPIRE k 100",
        "PEXPIRE k 100000",
        "EXPIREAT k 99999999999",
        "PEXPIREAT k 99999999999000",
        "EXPIRE k 100 NX",
        "PERSIST k",
        "PERSIST k",
        "EXPIRE nosuch 100",
        "RENAME k k2",
        "RENAME k2 k2",
        "SET k3 v",
        "RENAME k2 k3",
        "RENAMENX k3 h",
        "RENAMENX k3 k4",
        "COPY k4 k5",
        "COPY k4 k5",
        "COPY k4 k5 REPLACE",
        "MOVE k5 1",
        "SET k6 v",
        "MOVE k6 1",
        "SELECT 1",
        "MOVE k5 0",
        "SELECT 0",
        "COPY k4 k7 DB 2",
        "TYPE k4",
        "TOUCH k4",
        "EXPIRE k4 0",
        "SET k8 v",
        "PEXPIRE k8 -1",
        "SET k9 v EX 100",
        "SET k9 w KEEPTTL",
        "SET k9 w",
        "RENAMENX k9 k10",
        "~RANDOMKEY",
    ]);
    // Whole-database commands raise no key events in Redis 7.0.
    w.run(&[
        "SWAPDB 0 1",
        "FLUSHDB",
        "SELECT 1",
        "FLUSHALL ASYNC",
        "SELECT 0",
    ]);
    w.run(&["SET a 1", "FLUSHALL"]);
    assert_eq!(w.events().len(), 2);
    assert!(ev.contains(&note("__keyevent@0__:rename_from", "k")));
    assert!(ev.contains(&note("__keyevent@0__:del", "a")));
}

#[test]
fn list_commands_notify_like_redis() {
    let mut w = Watched::start("KEA");
    w.check(&[
        "LPUSH l a b c",
        "RPUSH l d e",
        "LPUSHX l f",
        "RPUSHX l g",
        "LPUSHX nosuch f",
        "RPUSHX nosuch f",
        "LINSERT l BEFORE a x",
        "LINSERT l AFTER nope x",
        "LSET l 0 y",
        "LREM l 1 y",
        "LREM l 0 nope",
        "LTRIM l 0 5",
        "LTRIM l 0 -1",
        "LPOP l",
        "LPOP l 0",
        "RPOP l 2",
        "LPOP nosuch 0",
        "LMOVE l l2 LEFT RIGHT",
        "LMOVE l l2 RIGHT LEFT",
        "RPOPLPUSH l2 l",
        "LMPOP 2 nosuch l LEFT COUNT 2",
        "LTRIM l2 5 10",
        "RPUSH one x",
        "LPOP one",
        "RPUSH one x",
        "LMOVE one one LEFT RIGHT",
        "LMOVE one two LEFT RIGHT",
        "RPUSH r a b c",
        "LREM r 0 a",
        "LREM r 0 b",
        "LREM r 0 c",
        "RPUSH r a",
        "BLPOP r 0",
        "RPUSH r a b",
        "BRPOP r 0",
        "BLMOVE r r3 LEFT LEFT 0",
        "BLMPOP 0 1 r3 RIGHT",
        "LINDEX r 0",
    ]);
}

#[test]
fn hash_commands_notify_like_redis() {
    let mut w = Watched::start("KEA");
    w.check(&[
        "HSET h a 1 b 2",
        "HSET h a 1",
        "HMSET h c 3",
        "HSETNX h c 4",
        "HSETNX h d 4",
        "HINCRBY h a 5",
        "HINCRBYFLOAT h a 0.5",
        "HDEL h nope",
        "HDEL h a b",
        "HDEL h c d",
        "HGET h a",
        "HSET h2 x 1",
        "HRANDFIELD h2",
        "HGETALL h2",
    ]);
}

#[test]
fn set_commands_notify_like_redis() {
    let mut w = Watched::start("KEA");
    w.check(&[
        "SADD s a b c d",
        "SADD s a",
        "SREM s nope",
        "SREM s a",
        "~SPOP s",
        "~SPOP s 1",
        "DEL s",
        "SADD s a b",
        "SMOVE s s2 nope",
        "SMOVE nosuch s2 a",
        "SMOVE s s2 a",
        "SADD t a x",
        "SINTERSTORE d1 s t",
        "SUNIONSTORE d2 s t",
        "SDIFFSTORE d3 s t",
        "SINTERSTORE d2 nosuch t",
        "SINTERSTORE nosuch2 nosuch t",
        "SUNIONSTORE d4 nosuch nosuch3",
        "SADD p a b c",
        "~SPOP p 10",
        "SADD q a",
        "SMOVE q q2 a",
        "SADD q3 a",
        "SMOVE q3 q3 a",
        "SADD q4 a b",
        "SADD q5 a",
        "SMOVE q4 q5 a",
        "SPOP q5 0",
        "SISMEMBER t a",
    ]);
}

#[test]
fn sorted_set_commands_notify_like_redis() {
    let mut w = Watched::start("KEA");
    w.check(&[
        "ZADD z 1 a 2 b 3 c 4 d 5 e",
        "ZADD z 1 a",
        "ZADD z XX 10 nope",
        "ZADD z INCR 1 a",
        "ZADD z GT 0 a",
        "ZADD z LT 0 a",
        "ZADD z NX 5 a",
        "ZADD z CH 7 a",
        "ZPOPMIN z 0",
        "ZINCRBY z 2 b",
        "ZREM z nope",
        "ZREM z a",
        "ZREMRANGEBYSCORE z 100 200",
        "ZREMRANGEBYSCORE z 0 3",
        "ZREMRANGEBYRANK z 0 0",
        "ZADD y 0 a 0 b 0 c",
        "ZREMRANGEBYLEX y [a [a",
        "ZREMRANGEBYLEX y - +",
        "ZADD z 1 a 2 b",
        "ZPOPMIN z",
        "ZPOPMAX z 2",
        "ZADD w 1 a 2 b",
        "ZUNIONSTORE u 2 z w",
        "ZINTERSTORE i 2 z w",
        "ZDIFFSTORE df 2 w z",
        "ZRANGESTORE rs w 0 -1",
        "ZRANGESTORE rs nosuch 0 -1",
        "ZINTERSTORE i 2 nosuch w",
        "ZMPOP 1 w MIN COUNT 1",
        "BZPOPMIN w 0",
        "ZADD v 1 a",
        "BZPOPMAX v 0",
        "ZADD v 1 a 2 b",
        "BZMPOP 0 1 v MAX COUNT 5",
        "ZSCORE z a",
    ]);
}

#[test]
fn bitmap_and_hyperloglog_commands_notify_like_redis() {
    let mut w = Watched::start("KEA");
    w.check(&[
        "SETBIT b 7 1",
        "SETBIT b 7 1",
        "SETBIT b 100 0",
        "BITFIELD bf SET u8 0 255",
        "BITFIELD bf GET u8 0",
        "BITFIELD bf INCRBY u8 0 1",
        "BITFIELD bf OVERFLOW FAIL INCRBY u8 0 1000",
        "BITFIELD_RO bf GET u8 0",
        "SET x1 abc",
        "BITOP AND d b x1",
        "BITOP OR d nosuch nosuch2",
        "BITOP NOT d2 x1",
        "PFADD h a b c",
        "PFADD h a",
        "PFADD h2",
        "PFADD h3 x",
        "PFCOUNT h h3",
        "PFMERGE h4 h h3",
        "PFMERGE h4",
        "BITCOUNT b",
    ]);
}

#[test]
fn sort_store_and_restore_notify_like_redis() {
    let mut w = Watched::start("KEAn");
    w.run(&["RPUSH l 3 1 2", "SET s v"]);
    w.events();
    w.check(&[
        "SORT l STORE out",
        "SORT nosuch STORE out",
        "SORT l STORE out2",
        "SORT l",
    ]);
    // DUMP payloads are the same on both (same RDB encoding).
    let R::Bulk(payload) = w.both("DUMP s") else {
        panic!("DUMP gave no payload");
    };
    let mut all = Vec::new();
    for cmd in [
        &[&b"RESTORE"[..], b"r", b"0", &payload][..],
        &[b"RESTORE", b"r", b"0", &payload, b"REPLACE"],
        &[b"RESTORE", b"r2", b"99999999999999", &payload, b"ABSTTL"],
        &[b"RESTORE", b"r", b"0", &payload],
        // An expired absolute TTL with REPLACE only deletes the old key.
        &[b"RESTORE", b"r", b"1", &payload, b"REPLACE", b"ABSTTL"],
        &[b"RESTORE", b"r", b"1", &payload, b"REPLACE", b"ABSTTL"],
    ] {
        assert_eq!(w.a.cmd_args(cmd), w.b.cmd_args(cmd));
        let shown: Vec<String> = cmd[..2]
            .iter()
            .chain(&cmd[4..])
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        all.extend(w.events_after(&shown.join(" ")));
    }
    assert!(
        all.contains(&note("__keyevent@0__:restore", "r")),
        "{all:?}"
    );
    assert!(all.contains(&note("__keyevent@0__:new", "r2")), "{all:?}");
}

/// A workload touching every family, run once per class letter.
const MIXED: &[&str] = &[
    "SET s v",
    "SET s v EX 100",
    "INCR n",
    "APPEND s x",
    "RPUSH l a b c",
    "LPOP l",
    "HSET h f v",
    "HDEL h f",
    "SADD st a b",
    "SREM st a",
    "ZADD z 1 a 2 b",
    "ZINCRBY z 1 a",
    "ZPOPMIN z",
    "SETBIT b 3 1",
    "PFADD p a",
    "EXPIRE l 100",
    "PERSIST l",
    "RENAME s s2",
    "COPY s2 s3",
    "GET nosuch",
    "LRANGE nosuch 0 -1",
    "SORT l STORE sorted",
    "DEL s2 s3 n l h st z b p sorted",
];

#[test]
fn each_class_letter_selects_its_events() {
    let mut w = Watched::start("");
    for class in [
        "g", "$", "l", "s", "h", "z", "x", "e", "t", "m", "d", "n", "A",
    ] {
        for prefix in ["K", "E", "KE"] {
            w.classes(&format!("{prefix}{class}"));
            w.both("FLUSHALL");
            w.events();
            let mut all = Vec::new();
            for l in MIXED {
                w.both(l);
                all.extend(w.events_after(&format!("{l} with classes {prefix}{class}")));
            }
            // Each class has events in the mix except those with none in it.
            let quiet = matches!(class, "x" | "e" | "t" | "d");
            assert_eq!(all.is_empty(), quiet, "classes {prefix}{class}: {all:?}");
            if prefix == "K" {
                assert!(all.iter().all(|(c, _)| c.starts_with("__keyspace@0__:")));
            }
            if prefix == "E" {
                assert!(all.iter().all(|(c, _)| c.starts_with("__keyevent@0__:")));
            }
        }
    }
}

#[test]
fn keymiss_is_raised_by_reads_of_missing_keys_only() {
    let mut w = Watched::start("KEm");
    w.check(&[
        "GET nosuch",
        "SET k v",
        "GET k",
        "MGET k nosuch k2",
        "EXISTS nosuch k",
        "TYPE nosuch",
        "STRLEN nosuch",
        "LRANGE nosuch 0 -1",
        "HGET nosuch f",
        "SMEMBERS nosuch",
        "ZSCORE nosuch m",
        "DEL nosuch",
        "INCR n",
        "TTL nosuch",
        "OBJECT ENCODING nosuch",
        "DUMP nosuch",
        "GETDEL nosuch",
        "RPOPLPUSH nosuch x",
        "SINTER nosuch k2",
        "SORT nosuch",
        "GETBIT nosuch 1",
        "PFCOUNT nosuch",
        "PFCOUNT nosuch nosuch2",
        "PFMERGE pdst nosuch",
        "BITOP OR bdst nosuch",
        "BITCOUNT nosuch",
        "BITPOS nosuch 1",
        "BITFIELD_RO nosuch GET u8 0",
        "GETRANGE nosuch 0 -1",
        "GETEX nosuch",
        "LLEN nosuch",
        "LINDEX nosuch 0",
        "LPOS nosuch a",
        "HLEN nosuch",
        "HGETALL nosuch",
        "HRANDFIELD nosuch",
        "HEXISTS nosuch f",
        "HSTRLEN nosuch f",
        "HMGET nosuch f g",
        "SCARD nosuch",
        "SISMEMBER nosuch m",
        "SMISMEMBER nosuch m n",
        "SRANDMEMBER nosuch",
        "SINTERCARD 2 nosuch k2",
        "SUNIONSTORE sdst nosuch k2",
        "ZCARD nosuch",
        "ZRANGE nosuch 0 -1",
        "ZRANK nosuch m",
        "ZMSCORE nosuch m",
        "ZRANDMEMBER nosuch",
        "ZUNIONSTORE zdst 2 nosuch nosuch2",
        "ZINTERCARD 1 nosuch",
        "ZUNION 1 nosuch",
        "ZRANGESTORE zdst nosuch 0 -1",
        "SORT nosuch STORE sortdst",
        "COPY nosuch cdst",
        "RENAME nosuch x",
        "LPOP nosuch",
        "HDEL nosuch f",
        "APPEND ap x",
        "LCS nosuch nosuch2",
        "PTTL nosuch",
        "EXPIRETIME nosuch",
        "OBJECT FREQ nosuch",
        "PERSIST nosuch",
        "EXPIRE nosuch 10",
        "MOVE nosuch 1",
        "SMOVE nosuch s2 m",
        "LMOVE nosuch l2 LEFT LEFT",
        "SETRANGE nosuch 0 ''",
        "GETDEL nosuch",
        "RPUSH sl 2 1",
        "SORT sl BY w_* GET g_* GET h_*->f GET #",
        "SORT sl BY nosort GET g_*",
    ]);
}

#[test]
fn new_is_raised_when_a_key_is_created() {
    let mut w = Watched::start("KEn");
    w.check(&[
        "SET k v",
        "SET k w",
        "RPUSH l a",
        "RPUSH l b",
        "HSET h f v",
        "SADD s m",
        "ZADD z 1 m",
        "INCR n",
        "RENAME k k2",
        "COPY k2 k3",
        "COPY k2 k4 DB 2",
        "COPY k2 k3 REPLACE",
        "MOVE k3 1",
        "SINTERSTORE s2 s s",
        "LMOVE l l2 LEFT LEFT",
        "SETBIT b 1 1",
        "PFADD p a",
        "MSET m1 a m2 b",
    ]);
    // With K and E both on, and the other classes too, `new` comes first.
    w.classes("KEAn");
    let ev = w.check(&["SET fresh v", "RPUSH fl a b"]);
    assert_eq!(
        ev[..4].to_vec(),
        vec![
            note("__keyspace@0__:fresh", "new"),
            note("__keyevent@0__:new", "fresh"),
            note("__keyspace@0__:fresh", "set"),
            note("__keyevent@0__:set", "fresh"),
        ]
    );
}

/// The server's clock (TIME) in microseconds.
fn server_time_us(c: &mut Conn) -> u64 {
    let R::Arr(parts) = c.cmd("TIME") else {
        panic!("TIME gave no array");
    };
    let num = |r: &R| match r {
        R::Bulk(v) => String::from_utf8_lossy(v).parse::<u64>().unwrap_or(0),
        _ => 0,
    };
    num(&parts[0]) * 1_000_000 + num(&parts[1])
}

/// Polls both servers' clocks until `ms` milliseconds have passed on each.
fn let_time_pass(w: &mut Watched, ms: u64) {
    for c in [&mut w.a, &mut w.b] {
        let start = server_time_us(c);
        let passed = wait_until(Duration::from_secs(5), || {
            server_time_us(c) >= start + ms * 1000
        });
        assert!(passed, "the server clock did not advance");
    }
}

#[test]
fn expired_is_raised_when_a_command_meets_an_expired_key() {
    let mut w = Watched::start("KEAnm");
    // The active cycle is off: keys expire only when a command meets them.
    w.both("DEBUG SET-ACTIVE-EXPIRE 0");
    w.run(&[
        "SET e1 v",
        "RPUSH e2 a",
        "HSET e3 f v",
        "SADD e4 m",
        "ZADD e5 1 m",
        "SET e6 v",
        "SET e7 v",
        "SET e8 v",
        "SET e9 1",
        "SET e10 v",
        "SET e11 v",
        "SET e12 v",
        "RPUSH e13 a",
        "SET e14 v",
        "SET e15 v",
    ]);
    // 200 ms, not 1: Redis compares the deadline with a second reading of its
    // clock, and a loaded machine that stalls it for a millisecond between the two
    // makes it delete the key at once (a `del` event where the test wants `expire`).
    for i in 1..=15 {
        w.both(&format!("PEXPIRE e{i} 200"));
    }
    w.events();
    let_time_pass(&mut w, 250);
    let ev = w.check(&[
        "GET e1",
        "RPUSH e2 b",
        "HSET e3 g v",
        "SADD e4 n",
        "ZSCORE e5 m",
        "SET e6 w",
        "DEL e7",
        "EXISTS e8",
        "INCR e9",
        "RENAME e10 x",
        "TTL e11",
        "TYPE e12",
        "LPOP e13",
        "EXPIRE e14 100",
        "COPY e15 c",
        "DBSIZE",
    ]);
    let expired = ev
        .iter()
        .filter(|e| e.0 == "__keyevent@0__:expired")
        .count();
    assert_eq!(expired, 15, "{ev:?}");
}

#[test]
fn expired_is_raised_by_the_active_expire_cycle() {
    let mut w = Watched::start("KEA");
    w.run(&[
        "SET active v PX 100",
        "HSET activeh f v",
        "PEXPIRE activeh 100",
        "SET stays v",
    ]);
    w.events();
    // DBSIZE reads no key, so only the cycle can bring it down.
    for (c, n) in [(&mut w.a, "Tandem"), (&mut w.b, "Redis")] {
        let gone = wait_until(Duration::from_secs(10), || c.cmd("DBSIZE") == R::Int(1));
        assert!(gone, "{n}: the active cycle did not expire the keys");
    }
    let ev = w.events_sorted();
    assert_eq!(
        ev,
        vec![
            note("__keyevent@0__:expired", "active"),
            note("__keyevent@0__:expired", "activeh"),
            note("__keyspace@0__:active", "expired"),
            note("__keyspace@0__:activeh", "expired"),
        ]
    );
}

#[test]
fn evicted_is_raised_for_keys_removed_by_maxmemory() {
    let mut w = Watched::start("KEe");
    for c in [&mut w.a, &mut w.b] {
        assert_eq!(c.cmd("CONFIG SET maxmemory-policy allkeys-lru"), R::ok());
    }
    let value = "x".repeat(10_000);
    // Fill past a small limit: each server evicts some keys. How many depends on
    // each server's memory accounting, so the test compares the shape (every
    // eviction is announced on both channels, for a key that is gone).
    for side in [true, false] {
        let (c, sub) = if side {
            (&mut w.a, &mut w.sa)
        } else {
            (&mut w.b, &mut w.sb)
        };
        let used = match c.cmd("INFO memory") {
            R::Bulk(v) => String::from_utf8_lossy(&v)
                .lines()
                .find_map(|l| l.strip_prefix("used_memory:").map(|s| s.trim().to_string()))
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0),
            other => panic!("INFO: {other:?}"),
        };
        let limit = used + 200_000;
        assert_eq!(c.cmd(&format!("CONFIG SET maxmemory {limit}")), R::ok());
        for i in 0..100 {
            let r = c.cmd_args(&[b"SET", format!("key{i}").as_bytes(), value.as_bytes()]);
            assert_eq!(r, R::ok());
        }
        let events = drain(c, sub);
        assert!(!events.is_empty(), "side {side}: nothing evicted");
        assert_eq!(events.len() % 2, 0);
        for pair in events.chunks(2) {
            let key = pair[0].0.trim_start_matches("__keyspace@0__:").to_string();
            assert_eq!(pair[0].1, "evicted");
            assert_eq!(pair[1], note("__keyevent@0__:evicted", &key));
            assert_eq!(c.cmd(&format!("EXISTS {key}")), R::Int(0));
        }
    }
}

#[test]
fn multi_exec_notifies_each_command_in_order() {
    let mut w = Watched::start("KEA");
    w.run(&["MULTI", "SET a 1", "INCR a", "RPUSH l x", "DEL a", "LPOP l"]);
    // Nothing is raised before EXEC.
    assert!(w.events().is_empty());
    w.both("EXEC");
    let ev = w.events();
    assert_eq!(ev.len(), 12, "{ev:?}");
}

/// Sends `args` on a new connection to each server and waits until both count
/// `n` blocked clients; returns the two connections.
fn block_on_both(w: &mut Watched, args: &[&[u8]], n: usize) -> (Conn, Conn) {
    let mut ours = Conn::connect(w.ours);
    let mut theirs = Conn::connect(w.theirs);
    ours.send(args);
    theirs.send(args);
    let want = format!("blocked_clients:{n}");
    for c in [&mut w.a, &mut w.b] {
        let blocked = wait_until(Duration::from_secs(5), || {
            matches!(c.cmd("INFO clients"), R::Bulk(v)
                if String::from_utf8_lossy(&v).contains(&want))
        });
        assert!(blocked, "{args:?} did not block");
    }
    (ours, theirs)
}

#[test]
fn serving_a_blocked_client_notifies_its_pop() {
    let mut w = Watched::start("KEAn");
    let mut blpop = block_on_both(&mut w, &[b"BLPOP", b"q", b"0"], 1);
    let mut blmove = block_on_both(
        &mut w,
        &[b"BLMOVE", b"q2", b"dst", b"LEFT", b"RIGHT", b"0"],
        2,
    );
    let mut bzpop = block_on_both(&mut w, &[b"BZPOPMIN", b"z", b"0"], 3);
    let mut blmpop = block_on_both(
        &mut w,
        &[b"BLMPOP", b"0", b"1", b"q3", b"RIGHT", b"COUNT", b"5"],
        4,
    );
    // Each write is followed, in the same command, by the served client's pop.
    let ev = w.check(&["RPUSH q a b", "RPUSH q2 x", "ZADD z 1 m", "LPUSH q3 a b"]);
    for (c, want) in [
        (&mut blpop, arr(&["q", "a"])),
        (&mut blmove, b("x")),
        (&mut bzpop, arr(&["z", "m", "1"])),
    ] {
        assert_eq!(c.0.read(), want);
        assert_eq!(c.1.read(), want);
    }
    let want = R::Arr(vec![b("q3"), arr(&["a", "b"])]);
    assert_eq!(blmpop.0.read(), want);
    assert_eq!(blmpop.1.read(), want);
    assert!(ev.contains(&note("__keyevent@0__:lpop", "q")), "{ev:?}");
    assert!(ev.contains(&note("__keyevent@0__:zpopmin", "z")), "{ev:?}");
}

#[test]
fn an_aborted_transaction_raises_nothing() {
    let mut w = Watched::start("KEA");
    w.run(&["SET w 1", "WATCH w", "SET w 2", "MULTI", "SET a 1", "DEL w"]);
    w.events();
    assert_eq!(w.both("EXEC"), R::NilArr);
    assert!(w.events().is_empty());
}

#[test]
fn config_set_changes_the_classes_at_runtime() {
    let mut w = Watched::start("");
    w.run(&["SET a 1", "DEL a"]);
    assert!(w.events().is_empty());
    w.classes("Kg");
    w.check(&["SET a 1", "DEL a", "RPUSH l x", "DEL l"]);
    w.classes("E$");
    w.check(&["SET a 1", "DEL a", "INCR a"]);
    // A class without K or E publishes nothing.
    w.classes("A");
    w.run(&["SET a 1", "DEL a"]);
    assert!(w.events().is_empty());
    w.classes("Kl");
    w.check(&["RPUSH l x", "SET a 1", "LPOP l"]);
    w.classes("KEd");
    w.run(&["SET a 1", "DEL a"]);
    assert!(w.events().is_empty());
    for c in [&mut w.a, &mut w.b] {
        assert_eq!(
            c.cmd("CONFIG GET notify-keyspace-events"),
            arr(&["notify-keyspace-events", "dKE"])
        );
    }
}

#[test]
fn events_name_the_selected_database() {
    let mut w = Watched::start("KEA");
    w.check(&["SELECT 3", "SET a 1", "SELECT 15", "RPUSH l a", "SELECT 0"]);
}

/// A master and its replica, with a subscriber on the replica.
struct ReplicaSide {
    master: Conn,
    replica: Conn,
    sub: Conn,
}

impl ReplicaSide {
    fn new(master_port: u16, replica_port: u16) -> ReplicaSide {
        let mut replica = Conn::connect(replica_port);
        let synced = wait_until(Duration::from_secs(10), || {
            matches!(replica.cmd("INFO replication"), R::Bulk(v)
                if String::from_utf8_lossy(&v).contains("master_link_status:up"))
        });
        assert!(synced, "replica on port {replica_port} did not sync");
        let mut sub = Conn::connect(replica_port);
        sub.send(&[b"PSUBSCRIBE", b"__key*__:*"]);
        assert_eq!(
            sub.read(),
            R::Arr(vec![b("psubscribe"), b("__key*__:*"), R::Int(1)])
        );
        ReplicaSide {
            master: Conn::connect(master_port),
            replica,
            sub,
        }
    }

    /// The replica's events once it has applied everything the master wrote.
    fn events(&mut self) -> Vec<Event> {
        assert_eq!(self.master.cmd("WAIT 1 5000"), R::Int(1));
        drain(&mut self.replica, &mut self.sub)
    }
}

#[test]
fn a_replica_raises_events_for_the_writes_it_applies() {
    let classes = ["--notify-keyspace-events", "KEA"];
    let ours = TestServer::start(&classes);
    let target = format!("127.0.0.1 {}", ours.port);
    let our_replica = TestServer::start(&["--replicaof", &target, classes[0], classes[1]]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "m.rdb", &classes);
    let port = theirs.port.to_string();
    let their_replica = RealRedis::start(
        dir.path(),
        "r.rdb",
        &["--replicaof", "127.0.0.1", &port, classes[0], classes[1]],
    );
    let mut sides = [
        ReplicaSide::new(ours.port, our_replica.port),
        ReplicaSide::new(theirs.port, their_replica.port),
    ];
    // Commands propagated in another form (INCRBYFLOAT as SET, SPOP as SREM or
    // DEL, EXPIRE as PEXPIREAT, GETEX as PEXPIREAT) raise the replica's events
    // for what it applies.
    let script = [
        "SET a 1",
        "RPUSH l x y",
        "LPOP l",
        "DEL a",
        "INCRBYFLOAT f 1.5",
        "SADD s m",
        "SPOP s",
        "SET e v",
        "EXPIRE e 100",
        "GETEX e PX 100000",
        "PERSIST e",
        "HSET h f v",
        "HINCRBYFLOAT h f 1",
        "ZADD z 1 m",
        "ZPOPMIN z",
        "RENAME e e2",
        "COPY e2 e3",
        "MOVE e3 1",
        "PFADD p a",
    ];
    let mut got = Vec::new();
    for side in &mut sides {
        for line in script {
            side.master.cmd(line);
        }
        got.push(side.events());
    }
    assert!(got[0].contains(&note("__keyevent@0__:rpush", "l")));
    assert_eq!(got[0], got[1], "replica events differ (left: Tandem)");
    // A key the master expires reaches the replica as a deletion.
    for side in &mut sides {
        let before = side.master.cmd("DBSIZE");
        side.master.cmd("SET t v PX 1");
        let master = &mut side.master;
        let gone = wait_until(Duration::from_secs(10), || master.cmd("DBSIZE") == before);
        assert!(gone, "the master did not expire the key");
    }
    let (t, r) = sides.split_at_mut(1);
    let (ours_ev, theirs_ev) = (t[0].events(), r[0].events());
    assert_eq!(ours_ev, theirs_ev, "replica events differ (left: Tandem)");
    assert!(theirs_ev.contains(&note("__keyevent@0__:del", "t")));
}

#[test]
fn a_subscriber_that_does_not_read_is_cut_at_the_pubsub_output_limit() {
    let mut w = Watched::start("KEA");
    let ours = w.ours;
    for (port, c) in [(w.ours, &mut w.a), (w.theirs, &mut w.b)] {
        assert_eq!(
            c.cmd_args(&[
                b"CONFIG",
                b"SET",
                b"client-output-buffer-limit",
                b"pubsub 64kb 0 0"
            ]),
            R::ok()
        );
        let mut slow = Conn::connect(port);
        assert_eq!(slow.cmd("CLIENT SETNAME slowsub"), R::ok());
        slow.send(&[b"PSUBSCRIBE", b"__keyspace@0__:*"]);
        // Events for long keys, never read: far more than 64kb plus what the
        // kernel's socket buffers hold queue up.
        let key = "k".repeat(1000);
        for i in 0..8000 {
            let r = c.cmd_args(&[b"SET", format!("{key}{i}").as_bytes(), b"v"]);
            assert_eq!(r, R::ok());
        }
        let cut = wait_until(Duration::from_secs(10), || {
            matches!(c.cmd("CLIENT LIST"), R::Bulk(v)
                if !String::from_utf8_lossy(&v).contains("name=slowsub"))
        });
        assert!(
            cut,
            "the subscriber on port {port} (Tandem: {}) was not disconnected",
            port == ours
        );
        // The server goes on serving.
        assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    }
}

#[test]
fn geo_commands_notify_like_redis() {
    let mut w = Watched::start("KEA");
    w.check(&[
        "GEOADD g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
        "GEOADD g 13.361389 38.115556 Palermo",
        "GEOADD g XX CH 13.4 38.1 Palermo",
        "GEORADIUS g 15 37 200 km STORE dst",
        "GEORADIUS g 15 37 200 km STOREDIST dst2",
        "GEORADIUS g 15 37 1 m STORE dst",
        "GEOSEARCHSTORE dst3 g FROMLONLAT 15 37 BYRADIUS 200 km",
        "GEOSEARCHSTORE dst3 g FROMLONLAT 15 37 BYRADIUS 1 m",
        "GEOSEARCHSTORE dst3 nosuch FROMLONLAT 15 37 BYRADIUS 1 m",
        "GEORADIUSBYMEMBER g Palermo 500 km STORE dst4",
        "GEORADIUSBYMEMBER nosuch Palermo 500 km STORE dst4",
        "GEODIST g Palermo Catania",
        "GEOPOS g Palermo",
    ]);
}

#[test]
fn stream_commands_notify_like_redis() {
    let mut w = Watched::start("KEAn");
    w.check(&[
        "XADD s 1-1 f v",
        "XADD s 2-1 f v",
        "XADD s MAXLEN 1 3-1 f v",
        "XADD nosuch NOMKSTREAM 1-1 f v",
        "XDEL s 1-1",
        "XDEL s 3-1",
        "XADD s 4-1 f v",
        "XADD s 5-1 f v",
        "XTRIM s MAXLEN 1",
        "XTRIM s MAXLEN 5",
        "XSETID s 9-9",
        "XRANGE s - +",
        "XLEN s",
    ]);
}

#[test]
fn stream_group_commands_notify_like_redis() {
    let mut w = Watched::start("KEAn");
    w.check(&[
        "XGROUP CREATE s g $ MKSTREAM",
        "XGROUP CREATE s g $",
        "XADD s 1-1 f v",
        "XADD s 2-1 f v",
        "XREADGROUP GROUP g alice COUNT 1 STREAMS s >",
        "XREADGROUP GROUP g alice COUNT 1 STREAMS s >",
        "XREADGROUP GROUP g bob NOACK STREAMS s 0",
        "XGROUP CREATECONSUMER s g carol",
        "XGROUP CREATECONSUMER s g carol",
        "XCLAIM s g dave 0 1-1",
        "XAUTOCLAIM s g erin 0 0-0",
        "XACK s g 1-1",
        "XGROUP DELCONSUMER s g carol",
        "XGROUP DELCONSUMER s g nobody",
        "XGROUP SETID s g 0",
        "XGROUP DESTROY s g",
        "XGROUP DESTROY s g",
    ]);
}
