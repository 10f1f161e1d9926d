//! Black-box tests of the hash commands over TCP (expected replies checked against
//! redis-server 7.0.15).
mod common;
use common::*;
use std::collections::BTreeMap;

/// A flat RESP2 field/value array as a sorted map.
fn as_map(r: R) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let R::Arr(items) = r else {
        panic!("not an array: {r:?}");
    };
    assert_eq!(items.len() % 2, 0);
    items
        .chunks(2)
        .map(|p| match (&p[0], &p[1]) {
            (R::Bulk(k), R::Bulk(v)) => (k.clone(), v.clone()),
            other => panic!("not a pair of bulks: {other:?}"),
        })
        .collect()
}

#[test]
fn set_get_and_friends() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("HSET h a 1 b 2"), R::Int(2));
    assert_eq!(c.cmd("HSET h a 3 c 4"), R::Int(1));
    assert_eq!(
        c.cmd("HSET h a"),
        err("ERR wrong number of arguments for 'hset' command")
    );
    assert_eq!(
        c.cmd("HSET h a 1 b"),
        err("ERR wrong number of arguments for 'hset' command")
    );
    assert_eq!(
        c.cmd("HMSET h x 1 y"),
        err("ERR wrong number of arguments for 'hmset' command")
    );
    assert_eq!(c.cmd("HMSET h d 5"), R::ok());
    assert_eq!(c.cmd("HSETNX h a 9"), R::Int(0));
    assert_eq!(c.cmd("HSETNX h n 9"), R::Int(1));
    assert_eq!(c.cmd("HGET h a"), b("3"));
    assert_eq!(c.cmd("HGET h zz"), R::Nil);
    assert_eq!(c.cmd("HGET nokey a"), R::Nil);
    assert_eq!(
        c.cmd("HMGET h a zz b"),
        R::Arr(vec![b("3"), R::Nil, b("2")])
    );
    assert_eq!(c.cmd("HMGET nokey a b"), R::Arr(vec![R::Nil, R::Nil]));
    assert_eq!(c.cmd("HLEN h"), R::Int(5));
    assert_eq!(c.cmd("HLEN nokey"), R::Int(0));
    assert_eq!(c.cmd("HSTRLEN h c"), R::Int(1));
    assert_eq!(c.cmd("HSTRLEN h zz"), R::Int(0));
    assert_eq!(c.cmd("HSTRLEN nokey a"), R::Int(0));
    assert_eq!(c.cmd("HEXISTS h c"), R::Int(1));
    assert_eq!(c.cmd("HEXISTS h zz"), R::Int(0));
    assert_eq!(c.cmd("HEXISTS nokey c"), R::Int(0));
    assert_eq!(bulks(c.cmd("HKEYS h")), set_of(&["a", "b", "c", "d", "n"]));
    assert_eq!(bulks(c.cmd("HVALS h")), set_of(&["3", "2", "4", "5", "9"]));
    let all = as_map(c.cmd("HGETALL h"));
    assert_eq!(all.len(), 5);
    assert_eq!(all.get(&b"a"[..]), Some(&b"3".to_vec()));
    assert_eq!(c.cmd("HKEYS nokey"), R::Arr(vec![]));
    assert_eq!(c.cmd("HVALS nokey"), R::Arr(vec![]));
    assert_eq!(c.cmd("HGETALL nokey"), R::Arr(vec![]));
    assert_eq!(c.cmd("HDEL h zz"), R::Int(0));
    assert_eq!(c.cmd("HDEL h a b zz"), R::Int(2));
    assert_eq!(c.cmd("HDEL nokey a"), R::Int(0));
    assert_eq!(c.cmd("HDEL h c d n"), R::Int(3));
    // The emptied hash is gone: HSETNX recreates it from scratch.
    assert_eq!(c.cmd("HLEN h"), R::Int(0));
    assert_eq!(c.cmd("HGETALL h"), R::Arr(vec![]));
}

#[test]
fn incr_by_integer_and_float() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("HSET h i 10 f 1.5 s str big 9223372036854775807 neg -9223372036854775808");
    assert_eq!(c.cmd("HINCRBY h i 5"), R::Int(15));
    assert_eq!(c.cmd("HINCRBY h i -20"), R::Int(-5));
    assert_eq!(c.cmd("HINCRBY h new 7"), R::Int(7));
    assert_eq!(c.cmd("HINCRBY nokey a 1"), R::Int(1));
    assert_eq!(
        c.cmd("HINCRBY h i x"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        c.cmd("HINCRBY h s 1"),
        err("ERR hash value is not an integer")
    );
    assert_eq!(
        c.cmd("HINCRBY h f 1"),
        err("ERR hash value is not an integer")
    );
    let overflow = err("ERR increment or decrement would overflow");
    assert_eq!(c.cmd("HINCRBY h big 1"), overflow);
    assert_eq!(c.cmd("HINCRBY h neg -1"), overflow);
    assert_eq!(c.cmd("HGET h big"), b("9223372036854775807"));

    assert_eq!(c.cmd("HINCRBYFLOAT h f 0.1"), b("1.6"));
    // Redis computes in x87 long double and prints %.17Lf.
    assert_eq!(c.cmd("HINCRBYFLOAT h f 1e3"), b("1001.59999999999999998"));
    assert_eq!(c.cmd("HINCRBYFLOAT h tenth 0.1"), b("0.1"));
    assert_eq!(c.cmd("HINCRBYFLOAT h tenth 0.2"), b("0.3"));
    c.cmd("HSET h infinite inf");
    assert_eq!(
        c.cmd("HINCRBYFLOAT h infinite 1"),
        err("ERR increment would produce NaN or Infinity")
    );
    assert_eq!(c.cmd("HINCRBYFLOAT h nf 5.0e3"), b("5000"));
    assert_eq!(c.cmd("HINCRBYFLOAT h nf -5000"), b("0"));
    assert_eq!(c.cmd("HINCRBYFLOAT h g 3.0"), b("3"));
    assert_eq!(c.cmd("HINCRBYFLOAT h i 2.5"), b("-2.5"));
    assert_eq!(c.cmd("HINCRBYFLOAT nokey2 a 1"), b("1"));
    assert_eq!(
        c.cmd("HINCRBYFLOAT h s 1"),
        err("ERR hash value is not a float")
    );
    assert_eq!(
        c.cmd("HINCRBYFLOAT h f abc"),
        err("ERR value is not a valid float")
    );
    assert_eq!(
        c.cmd("HINCRBYFLOAT h f inf"),
        err("ERR value is NaN or Infinity")
    );
    assert_eq!(
        c.cmd("HINCRBYFLOAT h f nan"),
        err("ERR value is not a valid float")
    );
    // Failed increments on a missing key leave no key behind.
    assert_eq!(
        c.cmd("HINCRBY gone a x"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.cmd("HLEN gone"), R::Int(0));
}

#[test]
fn randfield_counts() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("HRANDFIELD nokey"), R::Nil);
    assert_eq!(c.cmd("HRANDFIELD nokey 2"), R::Arr(vec![]));
    assert_eq!(c.cmd("HRANDFIELD nokey -2 WITHVALUES"), R::Arr(vec![]));
    c.cmd("HSET h a 1 b 2 c 3");
    let fields = set_of(&["a", "b", "c"]);
    for _ in 0..5 {
        let R::Bulk(f) = c.cmd("HRANDFIELD h") else {
            panic!("expected a field");
        };
        assert!(fields.contains(&f));
    }
    assert_eq!(c.cmd("HRANDFIELD h 0"), R::Arr(vec![]));
    assert_eq!(bulks(c.cmd("HRANDFIELD h 2")).len(), 2);
    // A count above the size returns every field once.
    assert_eq!(bulks(c.cmd("HRANDFIELD h 9223372036854775807")), fields);
    // Negative counts may repeat and return exactly |count| fields.
    let R::Arr(items) = c.cmd("HRANDFIELD h -10") else {
        panic!("expected an array");
    };
    assert_eq!(items.len(), 10);
    let m = as_map(c.cmd("HRANDFIELD h 5 WITHVALUES"));
    assert_eq!(m.len(), 3);
    assert_eq!(m.get(&b"b"[..]), Some(&b"2".to_vec()));
    let R::Arr(items) = c.cmd("HRANDFIELD h -4 WITHVALUES") else {
        panic!("expected an array");
    };
    assert_eq!(items.len(), 8);
    assert_eq!(
        c.cmd("HRANDFIELD h -9223372036854775808"),
        err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    );
    assert_eq!(
        c.cmd("HRANDFIELD h 1 WITHVALUES foo"),
        err("ERR syntax error")
    );
    assert_eq!(c.cmd("HRANDFIELD h 1 foo"), err("ERR syntax error"));
    assert_eq!(
        c.cmd("HRANDFIELD h abc"),
        err("ERR value is not an integer or out of range")
    );
}

#[test]
fn hscan_small_and_large() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("HSCAN nokey 0"), R::Arr(vec![b("0"), R::Arr(vec![])]));
    c.cmd("HSET small f1 v1 f2 v2 g1 v3");
    let R::Arr(parts) = c.cmd("HSCAN small 0 MATCH f*") else {
        panic!("expected an array");
    };
    assert_eq!(parts[0], b("0"));
    assert_eq!(as_map(parts[1].clone()).len(), 2);
    assert_eq!(c.cmd("HSCAN small abc"), err("ERR invalid cursor"));
    assert_eq!(c.cmd("HSCAN small 0 COUNT 0"), err("ERR syntax error"));
    assert_eq!(
        c.cmd("HSCAN small 0 COUNT x"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.cmd("HSCAN small 0 FOO 1"), err("ERR syntax error"));
    assert_eq!(c.cmd("HSCAN small 0 MATCH"), err("ERR syntax error"));

    // A big hash (a hash table: over hash-max-listpack-entries, 512) is walked
    // in steps; the walk ends and covers every field.
    let mut args: Vec<Vec<u8>> = vec![b"HSET".to_vec(), b"big".to_vec()];
    for i in 0..600 {
        args.push(format!("field:{i}").into_bytes());
        args.push(format!("{i}").into_bytes());
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    assert_eq!(c.cmd_args(&refs), R::Int(600));
    let mut seen = BTreeMap::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls < 1000, "HSCAN did not terminate");
        let R::Arr(parts) = c.cmd(&format!("HSCAN big {cursor} COUNT 50")) else {
            panic!("expected an array");
        };
        let R::Bulk(next) = &parts[0] else {
            panic!("cursor must be a bulk");
        };
        seen.extend(as_map(parts[1].clone()));
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            break;
        }
    }
    assert!(calls > 1, "a 600-field hash should take several steps");
    assert_eq!(seen.len(), 600);
    assert_eq!(seen.get(&b"field:42"[..]), Some(&b"42".to_vec()));
}

#[test]
fn wrong_type_errors() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("SET str v");
    for cmd in [
        "HSET str a 1",
        "HMSET str a 1",
        "HSETNX str a 1",
        "HGET str a",
        "HMGET str a",
        "HDEL str a",
        "HLEN str",
        "HSTRLEN str a",
        "HEXISTS str a",
        "HKEYS str",
        "HVALS str",
        "HGETALL str",
        "HINCRBY str a 1",
        "HINCRBYFLOAT str a 1",
        "HRANDFIELD str",
        "HRANDFIELD str 2",
        "HSCAN str 0",
    ] {
        assert_eq!(c.cmd(cmd), err(WRONGTYPE), "{cmd}");
    }
    assert_eq!(c.cmd("GET str"), b("v"));
}

#[test]
fn binary_safe_fields_and_values() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let f: &[u8] = b"f\0\r\n";
    let v: &[u8] = b"\r\nv\0";
    assert_eq!(c.cmd_args(&[b"HSET", b"h\0", f, v, b"", b""]), R::Int(2));
    assert_eq!(c.cmd_args(&[b"HGET", b"h\0", f]), R::Bulk(v.to_vec()));
    assert_eq!(c.cmd_args(&[b"HGET", b"h\0", b""]), R::Bulk(vec![]));
    assert_eq!(c.cmd_args(&[b"HSTRLEN", b"h\0", f]), R::Int(4));
    assert_eq!(c.cmd_args(&[b"HEXISTS", b"h\0", b"f"]), R::Int(0));
}

#[test]
fn resp3_hgetall_is_a_map() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    if !matches!(c.cmd("HELLO 3"), R::Map(_)) {
        return; // HELLO belongs to another command family.
    }
    c.cmd("HSET h a 1");
    assert_eq!(c.cmd("HGETALL h"), R::Map(vec![(b("a"), b("1"))]));
    assert_eq!(
        c.cmd("HRANDFIELD h 1 WITHVALUES"),
        R::Arr(vec![R::Arr(vec![b("a"), b("1")])])
    );
    assert_eq!(c.cmd("HGETALL nokey"), R::Map(vec![]));
}

#[tokio::test]
async fn redis_crate_client_hash_roundtrip() {
    let s = TestServer::start(&[]);
    let client = s.client();
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let n: i64 = redis::cmd("HSET")
        .arg("h")
        .arg(&["a", "1", "b", "2"])
        .query_async(&mut con)
        .await
        .expect("hset");
    assert_eq!(n, 2);
    let all: std::collections::HashMap<String, i64> = redis::cmd("HGETALL")
        .arg("h")
        .query_async(&mut con)
        .await
        .expect("hgetall");
    assert_eq!(all.get("b"), Some(&2));
    let v: f64 = redis::cmd("HINCRBYFLOAT")
        .arg("h")
        .arg("a")
        .arg(0.5)
        .query_async(&mut con)
        .await
        .expect("hincrbyfloat");
    assert_eq!(v, 1.5);
}

/// Found by the mixed-family sequence (mixed_vs_redis.rs): HINCRBYFLOAT reads hexadecimal
/// increments and values as Redis's `strtold` does.
#[test]
fn hincrbyfloat_reads_hexadecimal_floats_like_redis() {
    let mut p = Pair::start();
    assert_eq!(p.same_words("HINCRBYFLOAT h f 0x10"), b("16"));
    p.same_words("HSET h g 0x1.8p1");
    assert_eq!(p.same_words("HINCRBYFLOAT h g 0x.8"), b("3.5"));
    assert_eq!(
        p.same_words("HINCRBYFLOAT h f 0x1p"),
        err("ERR value is not a valid float")
    );
    p.same_words("HINCRBYFLOAT h f 1e400");
    p.same_words("HGET h f");
}

/// Found by mixed_vs_redis.rs: HSCAN, SSCAN and ZSCAN read the cursor, then look the key
/// up (missing: an empty scan, another type: WRONGTYPE), and only then the options; an
/// empty cursor is 0; `MATCH *` filters nothing, so an empty member is returned too.
#[test]
fn member_scans_check_the_key_before_the_options_like_redis() {
    let mut p = Pair::start();
    p.same(&[b"HSET", b"h", b"", b"v", b"f", b"x"]);
    p.same(&[b"SADD", b"s", b"", b"a"]);
    p.same(&[b"ZADD", b"z", b"1", b""]);
    p.same_words("SET str v");
    for scan in ["HSCAN h", "SSCAN s", "ZSCAN z"] {
        let R::Arr(parts) = p.a.cmd(&format!("{scan} 0 MATCH *")) else {
            panic!("{scan}: not an array");
        };
        let R::Arr(items) = &parts[1] else {
            panic!("{scan}: no items");
        };
        assert!(
            items.contains(&b("")),
            "{scan}: the empty member is matched by *"
        );
        let theirs = p.b.cmd(&format!("{scan} 0 MATCH *"));
        assert_eq!(
            bulks_sorted(&R::Arr(parts)),
            bulks_sorted(&theirs),
            "{scan}"
        );
    }
    for cmd in ["HSCAN", "SSCAN", "ZSCAN"] {
        assert_eq!(p.same_words(&format!("{cmd} str 0 x")), err(WRONGTYPE));
        assert_eq!(p.same_words(&format!("{cmd} str 0 COUNT")), err(WRONGTYPE));
        assert_eq!(
            p.same_words(&format!("{cmd} nokey 0 x")),
            R::Arr(vec![b("0"), R::Arr(vec![])])
        );
        assert_eq!(
            p.same_words(&format!("{cmd} str x")),
            err("ERR invalid cursor")
        );
        p.same_words(&format!("{cmd} str -"));
        p.same(&[cmd.as_bytes(), b"nokey", b""]);
    }
}

/// The elements of a `[cursor, items]` scan reply, sorted.
fn bulks_sorted(r: &R) -> Vec<R> {
    let R::Arr(parts) = r else {
        panic!("not a scan reply: {r:?}");
    };
    let R::Arr(items) = &parts[1] else {
        panic!("not a scan reply: {r:?}");
    };
    let mut v = items.clone();
    v.sort_by_key(|x| format!("{x:?}"));
    v
}

/// Found by Redis's own TCL suite (unit/type/hash): with WITHVALUES the count is bounded
/// to ±(i64::MAX / 2), outside which Redis answers a plain range error before looking at
/// the key. Tandem used to accept the count and build a reply of 2^63 entries, exhausting
/// memory; the server must answer and keep serving.
#[test]
fn hrandfield_withvalues_count_is_bounded_like_redis() {
    let mut p = Pair::start();
    p.same_words("HSET h a 1");
    for count in [
        "-9223372036854770000",
        "9223372036854770000",
        "-4611686018427387904",
        "4611686018427387904",
    ] {
        assert_eq!(
            p.same_words(&format!("HRANDFIELD h {count} WITHVALUES")),
            err("ERR value is out of range")
        );
        assert_eq!(
            p.same_words(&format!("HRANDFIELD nokey {count} WITHVALUES")),
            err("ERR value is out of range")
        );
    }
    // The bounds themselves are accepted.
    p.same_words("HRANDFIELD h 4611686018427387903 WITHVALUES");
    assert_eq!(
        p.same_words("HRANDFIELD h -9223372036854775808 WITHVALUES"),
        err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    );
    assert_eq!(p.same_words("HGET h a"), b("1"));
}

/// Repeated random picks (a negative count) are bounded by the count, not the
/// data. Past the normal clients' output limit, `maxmemory` or 1 GiB the command
/// answers an error instead of building the reply; the server stays up and
/// smaller counts are served in full.
#[test]
fn huge_negative_random_counts_get_an_error_not_an_exhausted_server() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("HSET h f v"), R::Int(1));
    assert_eq!(c.cmd("SADD s m"), R::Int(1));
    assert_eq!(c.cmd("ZADD z 1 m"), R::Int(1));
    let huge = [
        "SRANDMEMBER s -1000000000000",
        "HRANDFIELD h -1000000000000",
        "HRANDFIELD h -1000000000000 WITHVALUES",
        "ZRANDMEMBER z -1000000000000",
        "ZRANDMEMBER z -1000000000000 WITHSCORES",
    ];
    for ((name, limit), cap) in [
        (("maxmemory", "4mb"), 4 << 20),
        (("client-output-buffer-limit", "normal 2mb 0 0"), 2 << 20),
    ] {
        let set = [
            b"CONFIG".as_slice(),
            b"SET",
            name.as_bytes(),
            limit.as_bytes(),
        ];
        assert_eq!(c.cmd_args(&set), R::ok());
        for cmd in huge {
            match c.cmd(cmd) {
                R::Err(e) => assert!(
                    e.starts_with(&format!(
                        "ERR the reply to this negative count would pass {cap} bytes"
                    )),
                    "{cmd}: {e}"
                ),
                other => panic!("{cmd} under {limit}: {other:?}"),
            }
        }
        // Under the cap: the whole reply.
        match c.cmd("SRANDMEMBER s -100000") {
            R::Arr(v) => assert_eq!(v.len(), 100_000),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    }
}
