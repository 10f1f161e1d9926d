//! Black-box tests of the sorted-set commands over TCP, including a command-by-command
//! comparison with Debian's redis-server 7.0.15.
mod common;
mod reference;

use common::*;
use std::time::Duration;

#[test]
fn zadd_flags_and_their_incompatibility_errors() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("ZADD z 1 a 2 b"), R::Int(2));
    assert_eq!(c.cmd("ZADD z NX 5 a 3 c"), R::Int(1));
    assert_eq!(c.cmd("ZSCORE z a"), b("1"));
    assert_eq!(c.cmd("ZADD z XX 5 a 9 nope"), R::Int(0));
    assert_eq!(c.cmd("ZSCORE z a"), b("5"));
    assert_eq!(c.cmd("ZSCORE z nope"), R::Nil);
    assert_eq!(c.cmd("ZADD z CH GT 4 a 6 b"), R::Int(1));
    assert_eq!(c.cmd("ZMSCORE z a b"), arr(&["5", "6"]));
    assert_eq!(c.cmd("ZADD z LT CH 1 a 10 b 7 d"), R::Int(2));
    assert_eq!(c.cmd("ZADD z INCR 2.5 a"), b("3.5"));
    assert_eq!(c.cmd("ZADD z NX INCR 1 a"), R::Nil);
    assert_eq!(c.cmd("ZADD z GT INCR -1 a"), R::Nil);
    assert_eq!(c.cmd("ZADD nokey XX 1 a"), R::Int(0));
    assert_eq!(c.cmd("GET nokey"), R::Nil);
    assert_eq!(c.cmd("ZADD nokey XX INCR 1 a"), R::Nil);

    assert_eq!(
        c.cmd("ZADD z NX XX 1 a"),
        err("ERR XX and NX options at the same time are not compatible")
    );
    for line in ["ZADD z GT LT 1 a", "ZADD z NX GT 1 a", "ZADD z NX LT 1 a"] {
        assert_eq!(
            c.cmd(line),
            err("ERR GT, LT, and/or NX options at the same time are not compatible"),
            "{line}"
        );
    }
    assert_eq!(
        c.cmd("ZADD z INCR 1 a 2 b"),
        err("ERR INCR option supports a single increment-element pair")
    );
    assert_eq!(c.cmd("ZADD z 1 a 2"), err("ERR syntax error"));
    assert_eq!(c.cmd("ZADD z NX 1"), err("ERR syntax error"));
    assert_eq!(c.cmd("ZADD z x a"), err("ERR value is not a valid float"));
    assert_eq!(c.cmd("ZADD z nan a"), err("ERR value is not a valid float"));
    assert_eq!(
        c.cmd("ZADD z 1"),
        err("ERR wrong number of arguments for 'zadd' command")
    );
    assert_eq!(c.cmd("ZADD n inf m"), R::Int(1));
    assert_eq!(
        c.cmd("ZADD n INCR -inf m"),
        err("ERR resulting score is not a number (NaN)")
    );
    assert_eq!(
        c.cmd("ZINCRBY n -inf m"),
        err("ERR resulting score is not a number (NaN)")
    );
    assert_eq!(c.cmd("ZSCORE n m"), b("inf"));
    assert_eq!(
        c.cmd("ZINCRBY n2 x m"),
        err("ERR value is not a valid float")
    );
    assert_eq!(c.cmd("ZINCRBY n2 0.1 m"), b("0.10000000000000001"));
    c.cmd("SET str x");
    assert_eq!(
        c.cmd("ZADD str 1 a"),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
}

#[test]
fn zrange_by_score_and_lex_with_exclusive_bounds_infinities_and_rev_limit() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("ZADD z -inf ninf 1 a 2 b 3 c 4 d inf pinf");
    assert_eq!(
        c.cmd("ZRANGE z (1 3 BYSCORE"),
        arr(&["b", "c"]),
        "exclusive min"
    );
    assert_eq!(c.cmd("ZRANGEBYSCORE z (1 (3"), arr(&["b"]));
    assert_eq!(
        c.cmd("ZRANGEBYSCORE z -inf +inf"),
        arr(&["ninf", "a", "b", "c", "d", "pinf"])
    );
    assert_eq!(
        c.cmd("ZRANGEBYSCORE z (-inf (inf"),
        arr(&["a", "b", "c", "d"])
    );
    assert_eq!(
        c.cmd("ZRANGE z +inf -inf BYSCORE REV LIMIT 1 2 WITHSCORES"),
        arr(&["d", "4", "c", "3"])
    );
    assert_eq!(
        c.cmd("ZREVRANGEBYSCORE z 4 (1 LIMIT 0 -1"),
        arr(&["d", "c", "b"])
    );
    assert_eq!(c.cmd("ZRANGEBYSCORE z 1 4 LIMIT -1 2"), arr(&[]));
    assert_eq!(c.cmd("ZRANGEBYSCORE z 1 4 LIMIT 1 0"), arr(&[]));
    assert_eq!(c.cmd("ZRANGEBYSCORE z 3 1"), arr(&[]));
    assert_eq!(c.cmd("ZCOUNT z (1 +inf"), R::Int(4));
    assert_eq!(c.cmd("ZCOUNT z -inf -inf"), R::Int(1));
    assert_eq!(
        c.cmd("ZRANGE z 0 -1 REV"),
        arr(&["pinf", "d", "c", "b", "a", "ninf"])
    );
    assert_eq!(
        c.cmd("ZREVRANGE z 0 1 WITHSCORES"),
        arr(&["pinf", "inf", "d", "4"])
    );
    assert_eq!(
        c.cmd("ZRANGE z -2 -1 WITHSCORES"),
        arr(&["d", "4", "pinf", "inf"])
    );
    assert_eq!(c.cmd("ZRANGE z 5 100"), arr(&["pinf"]));
    assert_eq!(c.cmd("ZRANGE z 3 1"), arr(&[]));

    c.cmd("ZADD lex 0 a 0 b 0 c 0 d 0 e");
    assert_eq!(c.cmd("ZRANGEBYLEX lex [b (d"), arr(&["b", "c"]));
    assert_eq!(
        c.cmd("ZRANGEBYLEX lex - +"),
        arr(&["a", "b", "c", "d", "e"])
    );
    assert_eq!(
        c.cmd("ZRANGE lex + - BYLEX REV LIMIT 1 2"),
        arr(&["d", "c"])
    );
    assert_eq!(c.cmd("ZREVRANGEBYLEX lex (c -"), arr(&["b", "a"]));
    assert_eq!(c.cmd("ZLEXCOUNT lex (a [c"), R::Int(2));
    assert_eq!(c.cmd("ZRANGEBYLEX lex (c (c"), arr(&[]));

    assert_eq!(
        c.cmd("ZRANGEBYSCORE z x 1"),
        err("ERR min or max is not a float")
    );
    assert_eq!(c.cmd("ZCOUNT z 1 (x"), err("ERR min or max is not a float"));
    assert_eq!(
        c.cmd("ZRANGEBYLEX lex a +"),
        err("ERR min or max not valid string range item")
    );
    assert_eq!(
        c.cmd("ZRANGE lex - + BYLEX WITHSCORES"),
        err("ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    );
    assert_eq!(
        c.cmd("ZRANGE z 0 -1 LIMIT 0 1"),
        err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    );
    assert_eq!(c.cmd("ZRANGEBYSCORE z 0 1 REV"), err("ERR syntax error"));
    assert_eq!(
        c.cmd("ZRANGEBYSCORE z 0 1 LIMIT 1"),
        err("ERR syntax error")
    );
    assert_eq!(
        c.cmd("ZRANGE z a 1"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.cmd("ZRANGE nokey 0 -1"), arr(&[]));
}

#[test]
fn rank_card_rem_and_remrange() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("ZADD z 1 a 2 b 3 c 4 d 5 e");
    assert_eq!(c.cmd("ZRANK z c"), R::Int(2));
    assert_eq!(c.cmd("ZREVRANK z c"), R::Int(2));
    assert_eq!(c.cmd("ZREVRANK z a"), R::Int(4));
    assert_eq!(c.cmd("ZRANK z nope"), R::Nil);
    assert_eq!(c.cmd("ZRANK nokey a"), R::Nil);
    assert_eq!(c.cmd("ZREM z a nope"), R::Int(1));
    assert_eq!(c.cmd("ZCARD z"), R::Int(4));
    assert_eq!(c.cmd("ZREMRANGEBYRANK z -1 -1"), R::Int(1));
    assert_eq!(c.cmd("ZREMRANGEBYSCORE z (2 3"), R::Int(1));
    assert_eq!(c.cmd("ZRANGE z 0 -1"), arr(&["b", "d"]));
    c.cmd("ZADD l 0 a 0 b 0 c");
    assert_eq!(c.cmd("ZREMRANGEBYLEX l [a (c"), R::Int(2));
    assert_eq!(c.cmd("ZREMRANGEBYLEX l - +"), R::Int(1));
    assert_eq!(c.cmd("GET l"), R::Nil, "emptied sorted sets are deleted");
    assert_eq!(c.cmd("ZREM z b d"), R::Int(2));
    assert_eq!(c.cmd("GET z"), R::Nil);
    assert_eq!(c.cmd("ZCARD z"), R::Int(0));
    assert_eq!(
        c.cmd("ZREMRANGEBYRANK z x 1"),
        err("ERR value is not an integer or out of range")
    );
}

#[test]
fn pops_count_and_errors() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("ZADD z 1 a 2 b 3 c 4 d");
    assert_eq!(c.cmd("ZPOPMIN z"), arr(&["a", "1"]));
    assert_eq!(c.cmd("ZPOPMAX z 2"), arr(&["d", "4", "c", "3"]));
    assert_eq!(c.cmd("ZPOPMIN z 0"), arr(&[]));
    assert_eq!(
        c.cmd("ZPOPMIN z -1"),
        err("ERR value is out of range, must be positive")
    );
    assert_eq!(c.cmd("ZPOPMIN z 10"), arr(&["b", "2"]));
    assert_eq!(c.cmd("GET z"), R::Nil);
    assert_eq!(c.cmd("ZPOPMIN z"), arr(&[]));

    c.cmd("ZADD y 1 a 2 b 3 c");
    assert_eq!(c.cmd("ZMPOP 1 nokey MIN"), R::NilArr);
    assert_eq!(
        c.cmd("ZMPOP 2 nokey y MAX COUNT 2"),
        R::Arr(vec![
            b("y"),
            R::Arr(vec![arr(&["c", "3"]), arr(&["b", "2"])])
        ])
    );
    assert_eq!(
        c.cmd("ZMPOP 0 y MIN"),
        err("ERR numkeys should be greater than 0")
    );
    assert_eq!(
        c.cmd("ZMPOP 1 y MIN COUNT 0"),
        err("ERR count should be greater than 0")
    );
    assert_eq!(c.cmd("ZMPOP 2 y MIN"), err("ERR syntax error"));
    assert_eq!(c.cmd("ZMPOP 1 y LEFT"), err("ERR syntax error"));
    assert_eq!(
        c.cmd("BZPOPMIN y x"),
        err("ERR timeout is not a float or out of range")
    );
    assert_eq!(c.cmd("BZPOPMIN y -1"), err("ERR timeout is negative"));
}

#[test]
fn bzpopmin_blocks_until_another_client_adds_and_times_out_with_null() {
    let s = TestServer::start(&[]);
    let mut waiter = s.conn();
    let mut writer = s.conn();
    assert_eq!(waiter.cmd("BZPOPMIN empty 0.1"), R::NilArr);

    waiter.send(&[b"BZPOPMAX", b"k1", b"k2", b"5"]);
    // Give the waiter time to block; the reply is the same if the write wins the race.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(writer.cmd("ZADD k2 1 a 7 b"), R::Int(2));
    assert_eq!(waiter.read(), R::Arr(vec![b("k2"), b("b"), b("7")]));
    assert_eq!(writer.cmd("ZRANGE k2 0 -1"), arr(&["a"]));

    waiter.send(&[b"BZMPOP", b"5", b"1", b"k3", b"MIN", b"COUNT", b"2"]);
    std::thread::sleep(Duration::from_millis(50));
    writer.cmd("ZADD k3 3 x 1 y 2 z");
    assert_eq!(
        waiter.read(),
        R::Arr(vec![
            b("k3"),
            R::Arr(vec![arr(&["y", "1"]), arr(&["z", "2"])])
        ])
    );

    // Inside MULTI a blocking pop answers like a timeout instead of blocking.
    assert_eq!(waiter.cmd("MULTI"), R::ok());
    assert_eq!(waiter.cmd("BZPOPMIN none 0"), R::Simple("QUEUED".into()));
    assert_eq!(waiter.cmd("EXEC"), R::Arr(vec![R::NilArr]));
}

#[test]
fn union_inter_diff_with_weights_and_aggregates() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("ZADD a 1 x 2 y 3 z");
    c.cmd("ZADD b 10 y 20 z 30 w");
    assert_eq!(
        c.cmd("ZUNION 2 a b WITHSCORES"),
        arr(&["x", "1", "y", "12", "z", "23", "w", "30"])
    );
    assert_eq!(
        c.cmd("ZINTER 2 a b WEIGHTS 2 1 AGGREGATE MAX WITHSCORES"),
        arr(&["y", "10", "z", "20"])
    );
    assert_eq!(c.cmd("ZDIFF 2 a b WITHSCORES"), arr(&["x", "1"]));
    assert_eq!(c.cmd("ZINTERCARD 2 a b"), R::Int(2));
    assert_eq!(c.cmd("ZINTERCARD 2 a b LIMIT 1"), R::Int(1));
    assert_eq!(c.cmd("ZUNIONSTORE dst 2 a b AGGREGATE MIN"), R::Int(4));
    assert_eq!(
        c.cmd("ZRANGE dst 0 -1 WITHSCORES"),
        arr(&["x", "1", "y", "2", "z", "3", "w", "30"])
    );
    assert_eq!(c.cmd("ZINTERSTORE dst 2 a nokey"), R::Int(0));
    assert_eq!(c.cmd("GET dst"), R::Nil, "an empty result deletes dst");
    assert_eq!(c.cmd("ZDIFFSTORE dst 1 b"), R::Int(3));
    c.cmd("ZADD inf 1 m");
    assert_eq!(
        c.cmd("ZUNION 1 inf WEIGHTS inf WITHSCORES"),
        arr(&["m", "inf"])
    );
    c.cmd("ZADD i1 inf m");
    c.cmd("ZADD i2 -inf m");
    assert_eq!(
        c.cmd("ZUNION 2 i1 i2 WITHSCORES"),
        arr(&["m", "0"]),
        "inf + -inf = 0"
    );
    assert_eq!(
        c.cmd("ZUNION 1 i1 WEIGHTS 0 WITHSCORES"),
        arr(&["m", "0"]),
        "0 * inf = 0"
    );

    assert_eq!(
        c.cmd("ZUNIONSTORE d 0 a"),
        err("ERR at least 1 input key is needed for 'zunionstore' command")
    );
    assert_eq!(c.cmd("ZUNION 3 a b"), err("ERR syntax error"));
    assert_eq!(
        c.cmd("ZUNION 1 a WEIGHTS x"),
        err("ERR weight value is not a float")
    );
    assert_eq!(c.cmd("ZUNION 1 a AGGREGATE avg"), err("ERR syntax error"));
    assert_eq!(c.cmd("ZDIFF 1 a WEIGHTS 1"), err("ERR syntax error"));
    assert_eq!(
        c.cmd("ZINTERCARD 1 a LIMIT -1"),
        err("ERR LIMIT can't be negative")
    );
    c.cmd("SET s x");
    assert_eq!(
        c.cmd("ZUNION 2 a s"),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
}

#[test]
fn zrangestore_randmember_and_zscan() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("ZADD z 1 a 2 b 3 c 0.5 h");
    assert_eq!(c.cmd("ZRANGESTORE d z (1 +inf BYSCORE"), R::Int(2));
    assert_eq!(
        c.cmd("ZRANGE d 0 -1 WITHSCORES"),
        arr(&["b", "2", "c", "3"])
    );
    assert_eq!(
        c.cmd("ZRANGESTORE d z 0 -1 WITHSCORES"),
        err("ERR syntax error")
    );
    assert_eq!(c.cmd("ZRANGESTORE d nokey 0 -1"), R::Int(0));
    assert_eq!(c.cmd("GET d"), R::Nil);

    match c.cmd("ZRANDMEMBER z") {
        R::Bulk(m) => assert!([&b"a"[..], b"b", b"c", b"h"].contains(&&m[..])),
        other => panic!("unexpected {other:?}"),
    }
    match c.cmd("ZRANDMEMBER z 10") {
        R::Arr(v) => assert_eq!(v.len(), 4),
        other => panic!("unexpected {other:?}"),
    }
    match c.cmd("ZRANDMEMBER z -7 WITHSCORES") {
        R::Arr(v) => assert_eq!(v.len(), 14),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(c.cmd("ZRANDMEMBER nokey 3"), arr(&[]));
    assert_eq!(c.cmd("ZRANDMEMBER nokey"), R::Nil);
    assert_eq!(c.cmd("ZRANDMEMBER z 1 foo"), err("ERR syntax error"));
    assert_eq!(
        c.cmd("ZRANDMEMBER z -9223372036854775808"),
        err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    );

    assert_eq!(
        c.cmd("ZSCAN z 0 MATCH [ab]"),
        R::Arr(vec![b("0"), arr(&["a", "1", "b", "2"])])
    );
    assert_eq!(
        c.cmd("ZSCAN z 0 MATCH h COUNT 100"),
        R::Arr(vec![b("0"), arr(&["h", "0.5"])])
    );
    assert_eq!(c.cmd("ZSCAN z x"), err("ERR invalid cursor"));
    assert_eq!(c.cmd("ZSCAN z 0 COUNT 0"), err("ERR syntax error"));
}

#[test]
fn binary_safe_members() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd_args(&[b"ZADD", b"z", b"1", b"a\0b\r\n"]), R::Int(1));
    assert_eq!(
        c.cmd_args(&[b"ZRANGE", b"z", b"0", b"-1"]),
        R::Arr(vec![R::Bulk(b"a\0b\r\n".to_vec())])
    );
    assert_eq!(c.cmd_args(&[b"ZSCORE", b"z", b"a\0b\r\n"]), b("1"));
}

#[test]
fn replies_match_real_redis() {
    let Some(real) = reference::RealRedis::start() else {
        return;
    };
    let s = TestServer::start(&[]);
    let script = [
        "ZADD z 1 a 2 b 3 c 0.1 d -1.5 e 1e20 f",
        "ZADD z CH XX GT 5 a 0 b",
        "ZADD z LT INCR -1 c",
        "ZINCRBY z 0.2 d",
        "ZRANGE z 0 -1 WITHSCORES",
        "ZRANGE z (0.1 (5 BYSCORE WITHSCORES",
        "ZRANGE z +inf (1 BYSCORE REV LIMIT 1 2 WITHSCORES",
        "ZRANGEBYSCORE z -inf +inf LIMIT 2 -1 WITHSCORES",
        "ZREVRANGEBYSCORE z (3 -inf WITHSCORES LIMIT 0 2",
        "ZREVRANGE z 1 -2",
        "ZRANGE z -100 100",
        "ZCOUNT z (1 5",
        "ZRANK z a",
        "ZREVRANK z e",
        "ZMSCORE z a zz f",
        "ZADD lex 0 alpha 0 beta 0 gamma 0 delta 0 epsilon",
        "ZRANGEBYLEX lex [beta (gamma",
        "ZREVRANGEBYLEX lex + (beta LIMIT 1 2",
        "ZRANGE lex [e - BYLEX REV",
        "ZLEXCOUNT lex - [delta",
        "ZRANGESTORE dst z 1 3",
        "ZRANGE dst 0 -1 WITHSCORES",
        "ZREMRANGEBYSCORE z (5 +inf",
        "ZREMRANGEBYRANK z 0 0",
        "ZREMRANGEBYLEX lex (alpha [delta",
        "ZPOPMIN z",
        "ZPOPMAX z 2",
        "ZADD a 1 x 2 y 3 z",
        "ZADD b 4 y 5 z 6 w",
        "ZUNION 2 a b WEIGHTS 2 0.5 WITHSCORES",
        "ZINTER 2 a b AGGREGATE MIN WITHSCORES",
        "ZDIFF 2 b a WITHSCORES",
        "ZUNIONSTORE u 2 a b AGGREGATE MAX",
        "ZRANGE u 0 -1 WITHSCORES",
        "ZINTERCARD 2 a b LIMIT 0",
        "ZMPOP 2 missing a MAX COUNT 5",
        "ZMPOP 1 missing MIN",
        "SET str v",
        "ZADD str 1 a",
        "ZRANGE str 0 -1",
        "ZUNION 1 str",
        "ZADD z NX XX 1 a",
        "ZADD z GT LT 1 a",
        "ZADD z INCR 1 a 1 b",
        "ZADD z 1 a 2",
        "ZRANGE z x 1 BYSCORE",
        "ZRANGE z a b BYLEX",
        "ZRANGE z 0 1 BYLEX WITHSCORES",
        "ZRANGE z 0 1 LIMIT 0 1",
        "ZRANGE z 0 1 BYSCORE BYLEX",
        "ZPOPMIN z x",
        "ZMPOP 0 z MIN",
        "ZMPOP 1 z MIN COUNT x",
        "ZINTERCARD 0 z",
        "ZINTERCARD 1 z LIMIT x",
        "ZUNION 0 z",
        "ZUNION 1 z WEIGHTS x",
        "ZRANDMEMBER z 1 WITHSCORES extra",
        "ZRANDMEMBER z 9223372036854775807 WITHSCORES",
        "ZSCAN z x",
        "BZPOPMIN z -1",
        "BZPOPMIN z x",
        "BZMPOP 0 0 z MIN",
        "ZRANGEBYSCORE z 0 1 WITHSCORES LIMIT",
        "ZADD",
        "ZRANK z",
        // Float edge cases: overflow/underflow are refused where Redis refuses them.
        "ZADD fz 1e400 m",
        "ZADD fz 1e-400 m",
        "ZADD fz 1e-310 m 1.5e300 n +inf o -inf p",
        "ZINCRBY fz 1e999 m",
        "ZUNION 1 fz WEIGHTS 1e400",
        "ZRANGE fz 0 -1 WITHSCORES",
        "BZPOPMIN nokey inf",
        "BZPOPMIN nokey 1e30",
        "ZSCAN nokey -1",
        "ZSCAN nokey 18446744073709551616",
        // Lex ranges over mixed scores follow Redis's walk, not a plain filter.
        "ZADD mixed +inf a -inf b 0 c 0 d 1e-300 tiny 1e300 big",
        "ZRANGE mixed (a + BYLEX",
        "ZRANGE mixed [c [tiny BYLEX",
        "ZRANGE mixed [tiny [c BYLEX REV",
        "ZRANGE mixed + [b BYLEX REV LIMIT 1 2",
        "ZLEXCOUNT mixed [b [d",
        "ZREMRANGEBYLEX mixed [a [b",
        "ZRANGE mixed 0 -1",
    ];
    reference::compare(&mut s.conn(), &mut real.conn(), &script);
}

#[test]
fn redis_crate_client_drives_sorted_sets() {
    let s = TestServer::start(&[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = s.client();
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let added: i64 = redis::cmd("ZADD")
            .arg("board")
            .arg(10)
            .arg("alice")
            .arg(20.5)
            .arg("bob")
            .query_async(&mut con)
            .await
            .expect("zadd");
        assert_eq!(added, 2);
        let top: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg("board")
            .arg(0)
            .arg(-1)
            .arg("REV")
            .arg("WITHSCORES")
            .query_async(&mut con)
            .await
            .expect("zrange");
        assert_eq!(top, vec![("bob".into(), 20.5), ("alice".into(), 10.0)]);
        let score: f64 = redis::cmd("ZINCRBY")
            .arg("board")
            .arg(15)
            .arg("alice")
            .query_async(&mut con)
            .await
            .expect("zincrby");
        assert_eq!(score, 25.0);
        let rank: Option<i64> = redis::cmd("ZREVRANK")
            .arg("board")
            .arg("alice")
            .query_async(&mut con)
            .await
            .expect("zrevrank");
        assert_eq!(rank, Some(0));
    });
}

#[test]
fn store_commands_wake_blocked_pops_in_fifo_order() {
    let s = TestServer::start(&[]);
    let mut first = s.conn();
    let mut second = s.conn();
    let mut writer = s.conn();
    first.send(&[b"BZPOPMIN", b"dst", b"5"]);
    // Let the first waiter block before the second one queues behind it (this
    // branch has no INFO/CLIENT LIST to poll the blocked state).
    std::thread::sleep(Duration::from_millis(200));
    second.send(&[b"BZMPOP", b"5", b"1", b"dst", b"MAX"]);
    std::thread::sleep(Duration::from_millis(200));
    writer.cmd("ZADD src 1 a 2 b");
    assert_eq!(writer.cmd("ZUNIONSTORE dst 1 src"), R::Int(2));
    assert_eq!(first.read(), R::Arr(vec![b("dst"), b("a"), b("1")]));
    assert_eq!(
        second.read(),
        R::Arr(vec![b("dst"), R::Arr(vec![arr(&["b", "2"])])])
    );
    assert_eq!(writer.cmd("ZCARD dst"), R::Int(0));
}

/// Found by the mixed-family sequence (mixed_vs_redis.rs): scores, increments and range
/// bounds in C's hexadecimal float form are read as Redis's `strtod` reads them, and a
/// rank range accepts `LIMIT <offset> -1` (the count alone is checked).
#[test]
fn hexadecimal_scores_and_rank_limit_match_redis() {
    let mut p = Pair::start();
    assert_eq!(p.same_words("ZADD z 0x10 a 0x1.8p1 b"), R::Int(2));
    assert_eq!(p.same_words("ZINCRBY z 0x.8 b"), b("3.5"));
    assert_eq!(p.same_words("ZSCORE z a"), b("16"));
    p.same_words("ZADD z 0x1p-1074 tiny");
    for bad in ["0x1p-1080", "0x1p1024", "0x", "0x1p", "0xg"] {
        let e = p.same_words(&format!("ZADD z {bad} m"));
        assert_eq!(e, err("ERR value is not a valid float"), "{bad}");
    }
    p.same_words("ZRANGEBYSCORE z (0x1 0x10 WITHSCORES");
    p.same(&[b"ZCOUNT", b"z", b" 1", b"0x20"]);
    p.same_words("ZRANGE z 0 -1 LIMIT 1 -1");
    p.same_words("ZRANGE z 0 -1 LIMIT 5 -1 WITHSCORES");
    p.same_words("ZRANGESTORE d z 0 -1 LIMIT 2 -1");
    let e = p.same_words("ZRANGE z 0 -1 LIMIT 0 5");
    assert_eq!(
        e,
        err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        )
    );
    // The type is checked after the options, so a string key now answers WRONGTYPE.
    p.same_words("SET s v");
    assert_eq!(p.same_words("ZRANGE s 0 1 LIMIT 3 -1"), err(WRONGTYPE));
}
