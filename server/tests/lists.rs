//! Black-box tests of the list commands over TCP (expected replies checked against
//! redis-server 7.0.15).
mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn push_range_len_index() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("RPUSH l a b c"), R::Int(3));
    assert_eq!(c.cmd("LPUSH l y x"), R::Int(5));
    assert_eq!(c.cmd("LRANGE l 0 -1"), arr(&["x", "y", "a", "b", "c"]));
    assert_eq!(c.cmd("LRANGE l -2 -1"), arr(&["b", "c"]));
    assert_eq!(c.cmd("LRANGE l -100 100"), arr(&["x", "y", "a", "b", "c"]));
    assert_eq!(c.cmd("LRANGE l 3 1"), R::Arr(vec![]));
    assert_eq!(c.cmd("LRANGE l 10 20"), R::Arr(vec![]));
    assert_eq!(c.cmd("LRANGE nokey 0 -1"), R::Arr(vec![]));
    assert_eq!(
        c.cmd("LRANGE l a 1"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.cmd("LLEN l"), R::Int(5));
    assert_eq!(c.cmd("LLEN nokey"), R::Int(0));
    assert_eq!(c.cmd("LINDEX l 0"), b("x"));
    assert_eq!(c.cmd("LINDEX l -1"), b("c"));
    assert_eq!(c.cmd("LINDEX l 5"), R::Nil);
    assert_eq!(c.cmd("LINDEX l -6"), R::Nil);
    assert_eq!(c.cmd("LINDEX nokey 0"), R::Nil);
    assert_eq!(
        c.cmd("LINDEX l x"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.cmd("LPUSHX nokey a"), R::Int(0));
    assert_eq!(c.cmd("RPUSHX nokey a"), R::Int(0));
    assert_eq!(c.cmd("LLEN nokey"), R::Int(0));
    assert_eq!(c.cmd("RPUSHX l d e"), R::Int(7));
    assert_eq!(c.cmd("LPUSHX l w"), R::Int(8));
    assert_eq!(c.cmd("LINDEX l 0"), b("w"));
    assert_eq!(c.cmd("LINDEX l -1"), b("e"));
    assert_eq!(
        c.cmd("LPUSH l"),
        err("ERR wrong number of arguments for 'lpush' command")
    );
}

#[test]
fn lset_linsert_lrem_ltrim() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("RPUSH l a b c a b a");
    assert_eq!(c.cmd("LSET l 0 z"), R::ok());
    assert_eq!(c.cmd("LSET l -1 w"), R::ok());
    assert_eq!(c.cmd("LSET l 6 q"), err("ERR index out of range"));
    assert_eq!(c.cmd("LSET l -7 q"), err("ERR index out of range"));
    assert_eq!(c.cmd("LSET nokey 0 q"), err("ERR no such key"));
    assert_eq!(
        c.cmd("LSET l x q"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.cmd("LRANGE l 0 -1"), arr(&["z", "b", "c", "a", "b", "w"]));
    assert_eq!(c.cmd("LINSERT l BEFORE b B0"), R::Int(7));
    assert_eq!(c.cmd("LINSERT l after w END"), R::Int(8));
    assert_eq!(c.cmd("LINSERT l AFTER nope q"), R::Int(-1));
    assert_eq!(c.cmd("LINSERT nokey AFTER a q"), R::Int(0));
    assert_eq!(c.cmd("LINSERT l MIDDLE a q"), err("ERR syntax error"));
    assert_eq!(
        c.cmd("LRANGE l 0 -1"),
        arr(&["z", "B0", "b", "c", "a", "b", "w", "END"])
    );
    assert_eq!(c.cmd("LREM l -1 b"), R::Int(1));
    assert_eq!(
        c.cmd("LRANGE l 0 -1"),
        arr(&["z", "B0", "b", "c", "a", "w", "END"])
    );
    c.cmd("RPUSH l b b");
    assert_eq!(c.cmd("LREM l 2 b"), R::Int(2));
    assert_eq!(c.cmd("LREM l 0 b"), R::Int(1));
    assert_eq!(c.cmd("LREM l 0 nothing"), R::Int(0));
    assert_eq!(c.cmd("LREM nokey 0 a"), R::Int(0));
    assert_eq!(
        c.cmd("LREM l x a"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        c.cmd("LRANGE l 0 -1"),
        arr(&["z", "B0", "c", "a", "w", "END"])
    );
    assert_eq!(c.cmd("LTRIM l 1 -2"), R::ok());
    assert_eq!(c.cmd("LRANGE l 0 -1"), arr(&["B0", "c", "a", "w"]));
    assert_eq!(c.cmd("LTRIM nokey 0 1"), R::ok());
    // An empty result deletes the key.
    assert_eq!(c.cmd("LTRIM l 5 1"), R::ok());
    assert_eq!(c.cmd("LLEN l"), R::Int(0));
    assert_eq!(c.cmd("LPUSHX l a"), R::Int(0));
    c.cmd("RPUSH r x");
    assert_eq!(c.cmd("LREM r 0 x"), R::Int(1));
    assert_eq!(
        c.cmd("RPUSHX r a"),
        R::Int(0),
        "emptied list must be deleted"
    );
}

#[test]
fn pops_with_and_without_count() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("RPUSH l a b c d e");
    assert_eq!(c.cmd("LPOP l"), b("a"));
    assert_eq!(c.cmd("RPOP l"), b("e"));
    assert_eq!(c.cmd("LPOP l 2"), arr(&["b", "c"]));
    assert_eq!(c.cmd("RPOP l 0"), R::Arr(vec![]));
    assert_eq!(c.cmd("RPOP l 9223372036854775807"), arr(&["d"]));
    assert_eq!(c.cmd("LLEN l"), R::Int(0));
    // Missing key: null bulk without count, null array with a count (even 0).
    assert_eq!(c.cmd("LPOP l"), R::Nil);
    assert_eq!(c.cmd("LPOP l 2"), R::NilArr);
    assert_eq!(c.cmd("RPOP l 0"), R::NilArr);
    c.cmd("RPUSH l a");
    let positive = err("ERR value is out of range, must be positive");
    assert_eq!(c.cmd("LPOP l -1"), positive);
    assert_eq!(c.cmd("LPOP l x"), positive);
    assert_eq!(
        c.cmd("LPOP l 1 2"),
        err("ERR wrong number of arguments for 'lpop' command")
    );
    assert_eq!(c.cmd("LPOP l"), b("a"));
}

#[test]
fn lpos_options() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("RPUSH l a b a b a b a");
    assert_eq!(c.cmd("LPOS l a"), R::Int(0));
    assert_eq!(c.cmd("LPOS l b"), R::Int(1));
    assert_eq!(c.cmd("LPOS l z"), R::Nil);
    assert_eq!(c.cmd("LPOS l b RANK -1"), R::Int(5));
    assert_eq!(c.cmd("LPOS l b RANK 2"), R::Int(3));
    assert_eq!(c.cmd("LPOS l b RANK 9"), R::Nil);
    let ints = |v: &[i64]| R::Arr(v.iter().map(|&i| R::Int(i)).collect());
    assert_eq!(c.cmd("LPOS l a COUNT 0"), ints(&[0, 2, 4, 6]));
    assert_eq!(c.cmd("LPOS l a COUNT 2 RANK -1"), ints(&[6, 4]));
    assert_eq!(c.cmd("LPOS l a COUNT 0 RANK 2"), ints(&[2, 4, 6]));
    assert_eq!(c.cmd("LPOS l a COUNT 0 MAXLEN 3"), ints(&[0, 2]));
    assert_eq!(c.cmd("LPOS l a COUNT 0 RANK -2 MAXLEN 3"), ints(&[4]));
    assert_eq!(c.cmd("LPOS l b MAXLEN 1"), R::Nil);
    assert_eq!(c.cmd("LPOS l z COUNT 3"), R::Arr(vec![]));
    assert_eq!(c.cmd("LPOS nokey a"), R::Nil);
    assert_eq!(c.cmd("LPOS nokey a COUNT 0"), R::Arr(vec![]));
    assert_eq!(
        c.cmd("LPOS l a RANK 0"),
        err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
    );
    assert_eq!(
        c.cmd("LPOS l a COUNT -1"),
        err("ERR COUNT can't be negative")
    );
    assert_eq!(
        c.cmd("LPOS l a MAXLEN -1"),
        err("ERR MAXLEN can't be negative")
    );
    assert_eq!(c.cmd("LPOS l a RANK"), err("ERR syntax error"));
    assert_eq!(c.cmd("LPOS l a BOGUS 1"), err("ERR syntax error"));
    assert_eq!(
        c.cmd("LPOS l a RANK x"),
        err("ERR value is not an integer or out of range")
    );
}

#[test]
fn lmove_rpoplpush_lmpop() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("RPUSH l a b c");
    assert_eq!(c.cmd("LMOVE l l LEFT RIGHT"), b("a"));
    assert_eq!(c.cmd("LRANGE l 0 -1"), arr(&["b", "c", "a"]));
    assert_eq!(c.cmd("LMOVE l d RIGHT LEFT"), b("a"));
    assert_eq!(c.cmd("LMOVE l d left left"), b("b"));
    assert_eq!(c.cmd("LRANGE d 0 -1"), arr(&["b", "a"]));
    assert_eq!(c.cmd("LMOVE nokey d LEFT LEFT"), R::Nil);
    assert_eq!(c.cmd("LMOVE l d UP LEFT"), err("ERR syntax error"));
    assert_eq!(c.cmd("RPOPLPUSH l d"), b("c"));
    assert_eq!(c.cmd("LLEN l"), R::Int(0), "emptied source is deleted");
    assert_eq!(c.cmd("RPOPLPUSH nokey d"), R::Nil);
    assert_eq!(c.cmd("LRANGE d 0 -1"), arr(&["c", "b", "a"]));
    c.cmd("RPUSH one x");
    assert_eq!(c.cmd("RPOPLPUSH one one"), b("x"));
    assert_eq!(c.cmd("LRANGE one 0 -1"), arr(&["x"]));

    let popped = |k: &str, items: &[&str]| R::Arr(vec![b(k), arr(items)]);
    assert_eq!(c.cmd("LMPOP 1 nokey LEFT"), R::NilArr);
    assert_eq!(c.cmd("LMPOP 2 nokey d RIGHT"), popped("d", &["a"]));
    assert_eq!(
        c.cmd("LMPOP 2 nokey d LEFT COUNT 10"),
        popped("d", &["c", "b"])
    );
    assert_eq!(c.cmd("LLEN d"), R::Int(0));
    let numkeys = err("ERR numkeys should be greater than 0");
    assert_eq!(c.cmd("LMPOP 0 a LEFT"), numkeys);
    assert_eq!(c.cmd("LMPOP -1 a LEFT"), numkeys);
    assert_eq!(c.cmd("LMPOP x a LEFT"), numkeys);
    assert_eq!(c.cmd("LMPOP 2 a LEFT"), err("ERR syntax error"));
    assert_eq!(c.cmd("LMPOP 1 a MIDDLE"), err("ERR syntax error"));
    let count = err("ERR count should be greater than 0");
    assert_eq!(c.cmd("LMPOP 1 a LEFT COUNT 0"), count);
    assert_eq!(c.cmd("LMPOP 1 a LEFT COUNT -1"), count);
    assert_eq!(
        c.cmd("LMPOP 1 a LEFT COUNT 1 COUNT 1"),
        err("ERR syntax error")
    );
    assert_eq!(c.cmd("LMPOP 1 a LEFT COUNT"), err("ERR syntax error"));
    assert_eq!(
        c.cmd("LMPOP 1"),
        err("ERR wrong number of arguments for 'lmpop' command")
    );
}

#[test]
fn wrong_type_errors() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("SET s v");
    c.cmd("RPUSH l a");
    for cmd in [
        "LPUSH s a",
        "RPUSHX s a",
        "LRANGE s 0 1",
        "LLEN s",
        "LPOP s",
        "RPOP s 2",
        "LINDEX s 0",
        "LSET s 0 a",
        "LINSERT s BEFORE a b",
        "LREM s 0 a",
        "LTRIM s 0 1",
        "LPOS s a",
        "LMOVE s l LEFT LEFT",
        "LMOVE l s LEFT LEFT",
        "RPOPLPUSH l s",
        "BLPOP s 0",
        "BRPOP nokey s 0",
        "BLMOVE l s LEFT LEFT 0",
        "LMPOP 2 nokey s LEFT",
    ] {
        assert_eq!(c.cmd(cmd), err(WRONGTYPE), "{cmd}");
    }
    // Nothing was moved by the failed moves.
    assert_eq!(c.cmd("LRANGE l 0 -1"), arr(&["a"]));
    // A missing source answers nil before the destination's type is looked at.
    assert_eq!(c.cmd("LMOVE nokey s LEFT LEFT"), R::Nil);
}

#[test]
fn binary_safe_elements() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let weird: &[u8] = b"a\0b\r\nc";
    assert_eq!(c.cmd_args(&[b"RPUSH", b"k\0\r\n", weird, b""]), R::Int(2));
    assert_eq!(
        c.cmd_args(&[b"LRANGE", b"k\0\r\n", b"0", b"-1"]),
        R::Arr(vec![R::Bulk(weird.to_vec()), R::Bulk(vec![])])
    );
    assert_eq!(c.cmd_args(&[b"LPOS", b"k\0\r\n", weird]), R::Int(0));
    assert_eq!(
        c.cmd_args(&[b"BLPOP", b"k\0\r\n", b"0"]),
        R::Arr(vec![R::Bulk(b"k\0\r\n".to_vec()), R::Bulk(weird.to_vec())])
    );
}

#[test]
fn blocking_pops_serve_immediately_or_time_out() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("RPUSH l a b c");
    assert_eq!(c.cmd("BLPOP nokey l 0"), arr(&["l", "a"]));
    assert_eq!(c.cmd("BRPOP l 0"), arr(&["l", "c"]));
    assert_eq!(c.cmd("BLMOVE l d LEFT LEFT 0"), b("b"));
    assert_eq!(c.cmd("BRPOPLPUSH d l 0"), b("b"));
    assert_eq!(
        c.cmd("BLMPOP 0 1 l LEFT COUNT 5"),
        R::Arr(vec![b("l"), arr(&["b"])])
    );
    let t = Instant::now();
    assert_eq!(c.cmd("BLPOP nokey 0.1"), R::NilArr);
    assert!(t.elapsed() >= Duration::from_millis(90));
    // Redis 7.0 answers every timed-out list block with a null array.
    assert_eq!(c.cmd("BLMOVE nokey d LEFT LEFT 0.05"), R::NilArr);
    assert_eq!(c.cmd("BRPOPLPUSH nokey d 0.05"), R::NilArr);
    assert_eq!(c.cmd("BLMPOP 0.05 2 a b RIGHT"), R::NilArr);
    assert_eq!(c.cmd("BLPOP l -1"), err("ERR timeout is negative"));
    assert_eq!(
        c.cmd("BLPOP l abc"),
        err("ERR timeout is not a float or out of range")
    );
    assert_eq!(c.cmd("BRPOP l 1e20"), err("ERR timeout is negative"));
    assert_eq!(c.cmd("BLMPOP -1 1 l LEFT"), err("ERR timeout is negative"));
    assert_eq!(
        c.cmd("BLMPOP 0 0 l LEFT"),
        err("ERR numkeys should be greater than 0")
    );
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
}

/// Waits until the server reports `n` blocked clients (INFO clients), polling with a
/// deadline. If INFO (or its `blocked_clients` field) is not available, falls back to
/// a short bounded pause.
fn settle(p: &mut Conn, n: usize) {
    let want = format!("blocked_clients:{n}\r\n");
    let mut has_field = false;
    let ok = wait_until(Duration::from_secs(5), || match p.cmd("INFO clients") {
        R::Bulk(text) if String::from_utf8_lossy(&text).contains("blocked_clients:") => {
            has_field = true;
            String::from_utf8_lossy(&text).contains(&want)
        }
        _ => true,
    });
    if !has_field {
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(ok, "never saw {n} blocked clients");
}

#[test]
fn blocked_clients_are_served_in_fifo_order_by_a_push() {
    let s = TestServer::start(&[]);
    let mut a = s.conn();
    let mut bcl = s.conn();
    let mut p = s.conn();
    a.send(&[b"BLPOP", b"q", b"5"]);
    settle(&mut p, 1);
    bcl.send(&[b"BLPOP", b"other", b"q", b"5"]);
    settle(&mut p, 2);
    assert_eq!(p.cmd("RPUSH q one two"), R::Int(2));
    assert_eq!(a.read(), arr(&["q", "one"]));
    assert_eq!(bcl.read(), arr(&["q", "two"]));
    assert_eq!(p.cmd("LLEN q"), R::Int(0));
    // The served clients work normally afterwards.
    assert_eq!(a.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(bcl.cmd("PING"), R::Simple("PONG".into()));
}

#[test]
fn blmove_and_blmpop_are_served_by_a_later_push() {
    let s = TestServer::start(&[]);
    let mut a = s.conn();
    let mut bcl = s.conn();
    let mut p = s.conn();
    a.send(&[b"BLMOVE", b"src", b"dst", b"RIGHT", b"LEFT", b"0"]);
    settle(&mut p, 1);
    bcl.send(&[b"BLMPOP", b"0", b"2", b"x", b"dst", b"LEFT", b"COUNT", b"3"]);
    settle(&mut p, 2);
    assert_eq!(p.cmd("RPUSH src v1 v2"), R::Int(2));
    assert_eq!(a.read(), b("v2"));
    // The move pushed to dst, which serves the second waiter in turn.
    assert_eq!(bcl.read(), R::Arr(vec![b("dst"), arr(&["v2"])]));
    assert_eq!(p.cmd("LRANGE src 0 -1"), arr(&["v1"]));
    assert_eq!(p.cmd("LLEN dst"), R::Int(0));
}

#[test]
fn blocked_client_times_out_while_others_keep_working() {
    let s = TestServer::start(&[]);
    let mut a = s.conn();
    let mut p = s.conn();
    let t = Instant::now();
    a.send(&[b"BRPOP", b"q", b"0.3"]);
    assert_eq!(p.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(a.read(), R::NilArr);
    assert!(t.elapsed() >= Duration::from_millis(250));
    // After the timeout a push is not consumed by the stale waiter.
    assert_eq!(p.cmd("RPUSH q v"), R::Int(1));
    assert_eq!(p.cmd("LRANGE q 0 -1"), arr(&["v"]));
}

#[test]
fn closed_blocked_connection_does_not_swallow_later_pushes() {
    let s = TestServer::start(&[]);
    let mut p = s.conn();
    {
        let mut a = s.conn();
        a.send(&[b"BLPOP", b"q", b"0"]);
        settle(&mut p, 1);
        // `a` is dropped here: the connection closes while blocked.
    }
    settle(&mut p, 0);
    // The first push after the close must stay in the list.
    assert_eq!(p.cmd("RPUSH q v"), R::Int(1));
    assert_eq!(p.cmd("LRANGE q 0 -1"), arr(&["v"]));
    let mut w = s.conn();
    assert_eq!(w.cmd("BLPOP q 0"), arr(&["q", "v"]));
}

#[test]
fn blpop_inside_multi_returns_at_once() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    if c.cmd("MULTI") != R::ok() {
        // MULTI belongs to another command family; nothing to check without it.
        return;
    }
    assert_eq!(c.cmd("BLPOP nokey 0"), R::Simple("QUEUED".into()));
    assert_eq!(
        c.cmd("BLMOVE nokey d LEFT LEFT 0"),
        R::Simple("QUEUED".into())
    );
    assert_eq!(c.cmd("BLMPOP 0 1 nokey LEFT"), R::Simple("QUEUED".into()));
    let t = Instant::now();
    assert_eq!(c.cmd("EXEC"), R::Arr(vec![R::NilArr, R::Nil, R::NilArr]));
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn resp3_null_for_missing_pops() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    if !matches!(c.cmd("HELLO 3"), R::Map(_)) {
        return; // HELLO belongs to another command family.
    }
    assert_eq!(c.cmd("LPOP nokey"), R::Nil);
    assert_eq!(c.cmd("LPOP nokey 2"), R::Nil);
    assert_eq!(c.cmd("BLPOP nokey 0.01"), R::Nil);
}

#[tokio::test]
async fn redis_crate_client_list_roundtrip() {
    let s = TestServer::start(&[]);
    let client = s.client();
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let n: i64 = redis::cmd("RPUSH")
        .arg("rl")
        .arg(&["a", "b", "c"])
        .query_async(&mut con)
        .await
        .expect("rpush");
    assert_eq!(n, 3);
    let items: Vec<String> = redis::cmd("LRANGE")
        .arg("rl")
        .arg(0)
        .arg(-1)
        .query_async(&mut con)
        .await
        .expect("lrange");
    assert_eq!(items, vec!["a", "b", "c"]);
    let popped: Option<(String, String)> = redis::cmd("BLPOP")
        .arg("rl")
        .arg(0)
        .query_async(&mut con)
        .await
        .expect("blpop");
    assert_eq!(popped, Some(("rl".into(), "a".into())));
    let none: Option<(String, String)> = redis::cmd("BRPOP")
        .arg("missing")
        .arg(0.05)
        .query_async(&mut con)
        .await
        .expect("brpop timeout");
    assert_eq!(none, None);
    let e = redis::cmd("LSET")
        .arg("missing")
        .arg(0)
        .arg("x")
        .query_async::<()>(&mut con)
        .await
        .expect_err("lset on a missing key");
    assert!(e.to_string().contains("no such key"), "{e}");
}

#[test]
fn commands_sent_while_blocked_run_after_the_unblock() {
    let s = TestServer::start(&[]);
    let mut a = s.conn();
    let mut p = s.conn();
    a.send(&[b"BLPOP", b"q", b"0"]);
    settle(&mut p, 1);
    a.send(&[b"PING"]);
    a.send(&[b"LLEN", b"q"]);
    assert_eq!(p.cmd("RPUSH q x y"), R::Int(2));
    assert_eq!(a.read(), arr(&["q", "x"]));
    assert_eq!(a.read(), R::Simple("PONG".into()));
    assert_eq!(a.read(), R::Int(1));
}

/// Seeded random list operations on lists of many nodes (small node caps, elements
/// from empty to larger than a node), replies compared with Redis 7.0.15 one by one.
#[test]
fn multi_node_lists_match_redis_under_random_operations() {
    let mut p = Pair::start();
    let mut seed: u64 = 0x1157_0a11;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for fill in ["-1", "3", "-2"] {
        p.same(&[
            b"CONFIG",
            b"SET",
            b"list-max-listpack-size",
            fill.as_bytes(),
        ]);
        p.same(&[b"DEL", b"a", b"b"]);
        let mut fillers: Vec<Vec<u8>> = vec![b"RPUSH".to_vec(), b"a".to_vec()];
        fillers.extend((0..1500).map(|i| format!("e{}", i % 7).into_bytes()));
        let args: Vec<&[u8]> = fillers.iter().map(|v| &v[..]).collect();
        p.same(&args);
        for _ in 0..1500 {
            let elem = |r: u64| -> Vec<u8> {
                match r % 20 {
                    0 => Vec::new(),
                    1 => vec![b'M'; 300],
                    2 => vec![b'L'; 9000],
                    3 => b"12345".to_vec(),
                    k => format!("e{}", k % 7).into_bytes(),
                }
            };
            let key: &[u8] = if next(4) == 0 { b"b" } else { b"a" };
            let e = elem(next(1000));
            let i = (next(3200) as i64 - 1600).to_string().into_bytes();
            let j = (next(3200) as i64 - 1600).to_string().into_bytes();
            let small = (next(7) as i64 - 3).to_string().into_bytes();
            let pops = (1 + next(3)).to_string().into_bytes();
            let head = next(3).to_string().into_bytes();
            let tail = format!("-{}", 1 + next(3)).into_bytes();
            let cmd: Vec<&[u8]> = match next(14) {
                0 => vec![b"LPUSH", key, &e, b"e1"],
                1 => vec![b"RPUSH", key, &e],
                2 => vec![b"LPOP", key, &pops],
                3 => vec![b"RPOP", key],
                4 => vec![b"LINSERT", key, b"BEFORE", b"e3", &e],
                5 => vec![b"LINSERT", key, b"AFTER", b"e5", &e],
                6 => vec![b"LSET", key, &i, &e],
                7 => vec![b"LREM", key, &small, b"e2"],
                8 => vec![b"LTRIM", key, &head, &tail],
                9 => vec![b"LINDEX", key, &i],
                10 => vec![b"LRANGE", key, &i, &j],
                11 => vec![b"LPOS", key, b"e4", b"RANK", &small, b"COUNT", b"3"],
                12 => vec![b"LMOVE", b"a", b"b", b"LEFT", b"RIGHT"],
                13 => vec![b"RPUSH", key, &e, b"e6", b"e0", b"e4"],
                _ => vec![b"LLEN", key],
            };
            if cmd.iter().any(|a| *a == b"0" && cmd[0] == b"LPOS") {
                continue; // RANK 0 is an error on both; not interesting
            }
            p.same(&cmd);
        }
        p.same(&[b"LRANGE", b"a", b"0", b"-1"]);
        p.same(&[b"LRANGE", b"b", b"0", b"-1"]);
        // Still long enough to span many nodes under every fill.
        let R::Int(len) = p.same(&[b"LLEN", b"a"]) else {
            panic!("LLEN");
        };
        assert!(len > 400, "list a has {len} elements");
    }
}

/// Found by the mixed-family sequence (mixed_vs_redis.rs): LPOS reads COUNT and MAXLEN as
/// ranges from 0, so a value that is not an integer gets the "can't be negative" message.
#[test]
fn lpos_count_and_maxlen_errors_match_redis() {
    let mut p = Pair::start();
    p.same_words("RPUSH l a b a");
    for (opt, value) in [
        ("COUNT", "x"),
        ("COUNT", "1.5"),
        ("COUNT", "99999999999999999999"),
        ("COUNT", "-1"),
        ("MAXLEN", "x"),
        ("MAXLEN", "-1"),
    ] {
        let e = p.same_words(&format!("LPOS l a {opt} {value}"));
        assert_eq!(
            e,
            err(&format!("ERR {opt} can't be negative")),
            "{opt} {value}"
        );
    }
    // RANK keeps the plain integer error; the checks come before the key's type.
    p.same_words("LPOS l a RANK x");
    p.same_words("SET s v");
    p.same_words("LPOS s a COUNT x");
}

/// The `flags=` field of a client's CLIENT LIST line while it waits in BLPOP and once
/// it has been served.
fn flags_while_blocked(blocked: &mut Conn, observer: &mut Conn) -> (String, String) {
    let R::Int(id) = blocked.cmd("CLIENT ID") else {
        panic!("CLIENT ID is not an integer");
    };
    let flags = |observer: &mut Conn| {
        let line = observer.cmd(&format!("CLIENT LIST ID {id}"));
        let R::Bulk(line) = line else {
            panic!("CLIENT LIST is not a bulk: {line:?}");
        };
        String::from_utf8_lossy(&line)
            .split(' ')
            .find_map(|f| f.strip_prefix("flags="))
            .map(str::to_string)
            .expect("a flags= field")
    };
    blocked.send(&[b"BLPOP", b"flagq", b"0"]);
    settle(observer, 1);
    let while_blocked = flags(observer);
    assert_eq!(observer.cmd("RPUSH flagq x"), R::Int(1));
    assert_eq!(blocked.read(), arr(&["flagq", "x"]));
    (while_blocked, flags(observer))
}

/// Found by Redis's own TCL suite (unit/type/list, the SWAPDB and MULTI tests that
/// check a client is still blocked): CLIENT LIST shows `b` in a blocked client's
/// flags, as Redis 7.0 does, and `N` again once it is served.
#[test]
fn client_list_flags_a_blocked_client_like_redis() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let got = flags_while_blocked(&mut ours.conn(), &mut ours.conn());
    let want = flags_while_blocked(&mut theirs.conn(), &mut theirs.conn());
    assert_eq!(want, ("b".to_string(), "N".to_string()));
    assert_eq!(got, want);
}

/// The `calls`, `failed_calls` fields of the commandstats lines of `names`, and
/// `total_error_replies`.
fn blocking_stats(c: &mut Conn, names: &[&str]) -> Vec<String> {
    let R::Bulk(text) = c.cmd("INFO commandstats") else {
        panic!("INFO commandstats is not a bulk");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    let mut got: Vec<String> = names
        .iter()
        .map(|n| {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("cmdstat_{n}:")))
                .unwrap_or("");
            let fields: Vec<&str> = line
                .split([':', ','])
                .filter(|f| f.starts_with("calls=") || f.starts_with("failed_calls="))
                .collect();
            format!("{n} {}", fields.join(","))
        })
        .collect();
    got.push(format!(
        "total_error_replies={}",
        info_field(c, "stats", "total_error_replies").unwrap_or_default()
    ));
    got
}

/// Blocks `blocked` in BLPOP/BRPOP in every way they can end (timeout, served by a
/// push, CLIENT UNBLOCK TIMEOUT and ERROR) and returns the statistics afterwards.
fn blocked_commands_scenario(blocked: &mut Conn, p: &mut Conn) -> Vec<String> {
    let R::Int(id) = blocked.cmd("CLIENT ID") else {
        panic!("CLIENT ID is not an integer");
    };
    assert_eq!(p.cmd("CONFIG RESETSTAT"), R::ok());
    assert_eq!(blocked.cmd("BLPOP statq 0.05"), R::NilArr);
    blocked.send(&[b"BLPOP", b"statq", b"0"]);
    settle(p, 1);
    assert_eq!(p.cmd("RPUSH statq a"), R::Int(1));
    assert_eq!(blocked.read(), arr(&["statq", "a"]));
    blocked.send(&[b"BLPOP", b"statq", b"0"]);
    settle(p, 1);
    assert_eq!(p.cmd(&format!("CLIENT UNBLOCK {id} TIMEOUT")), R::Int(1));
    assert_eq!(blocked.read(), R::NilArr);
    blocked.send(&[b"BRPOP", b"statq", b"0"]);
    settle(p, 1);
    assert_eq!(p.cmd(&format!("CLIENT UNBLOCK {id} ERROR")), R::Int(1));
    assert_eq!(
        blocked.read(),
        err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
    );
    blocking_stats(p, &["blpop", "brpop"])
}

/// Found by Redis's own TCL suite (unit/type/stream-cgroups, the statistics of a
/// blocked XREADGROUP): a command that blocks is counted in INFO commandstats when it
/// blocks, whatever ends the wait, and an unblocking error (CLIENT UNBLOCK ... ERROR)
/// is a failed call and an error reply. CLIENT UNBLOCK counts a failed call even with
/// TIMEOUT, as Redis 7.0 does. Tandem used to leave every call that blocked uncounted.
#[test]
fn blocked_commands_are_counted_in_commandstats_like_redis() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let got = blocked_commands_scenario(&mut ours.conn(), &mut ours.conn());
    let want = blocked_commands_scenario(&mut theirs.conn(), &mut theirs.conn());
    assert_eq!(
        want,
        vec![
            "blpop calls=3,failed_calls=1".to_string(),
            "brpop calls=1,failed_calls=1".to_string(),
            "total_error_replies=1".to_string(),
        ]
    );
    assert_eq!(got, want);
}

/// A client blocked on a list that SWAPDB brings in already expired: the attempt to
/// serve it deletes the key and the client keeps waiting. Returns the client's answer
/// to CLIENT UNBLOCK and the replication stream.
fn expired_swapdb_scenario(port: u16) -> (R, Vec<String>) {
    let mut repl = attach_replica(port);
    let mut c = Conn::connect(port);
    let mut blocked = Conn::connect(port);
    assert_eq!(c.cmd("DEBUG SET-ACTIVE-EXPIRE 0"), R::ok());
    assert_eq!(c.cmd("SELECT 1"), R::ok());
    assert_eq!(c.cmd("RPUSH k hello"), R::Int(1));
    assert_eq!(c.cmd("PEXPIRE k 50"), R::Int(1));
    assert_eq!(blocked.cmd("SELECT 9"), R::ok());
    let R::Int(id) = blocked.cmd("CLIENT ID") else {
        panic!("CLIENT ID is not an integer");
    };
    blocked.send(&[b"BRPOP", b"k", b"0"]);
    settle(&mut c, 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.cmd("SWAPDB 1 9"), R::ok());
    // Still blocked: the key it found had expired.
    settle(&mut c, 1);
    assert_eq!(c.cmd(&format!("CLIENT UNBLOCK {id}")), R::Int(1));
    let answer = blocked.read();
    assert_eq!(c.cmd("DEBUG SET-ACTIVE-EXPIRE 1"), R::ok());
    assert_eq!(c.cmd("SET done 1"), R::ok());
    (answer, propagated(&mut repl))
}

/// Found by Redis's own TCL suite (unit/type/list, SWAPDB waking a blocked client on
/// an expired key): serving a blocked client deletes the key it finds expired, and
/// that DEL reaches replicas even though the client keeps waiting. Tandem deleted the
/// key but dropped the DEL, so replicas kept it.
#[test]
fn expired_key_found_for_a_blocked_client_is_deleted_on_replicas_too_like_redis() {
    let ours = TestServer::start(&[
        "--repl-diskless-sync",
        "no",
        "--enable-debug-command",
        "yes",
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &["--repl-diskless-sync", "no"]);
    let got = expired_swapdb_scenario(ours.port);
    let want = expired_swapdb_scenario(theirs.port);
    assert_eq!(want.0, R::NilArr);
    assert!(
        want.1.contains(&"DEL k".to_string()),
        "Redis streams the DEL: {:?}",
        want.1
    );
    assert_eq!(got, want);
}

/// An EXEC sent (reply not awaited) before an LPUSH on another connection runs first,
/// so the BRPOPLPUSH that LPUSH serves cannot touch the transaction's WATCHed key in
/// between (Redis serves ready connections in arrival order).
#[test]
fn exec_sent_before_a_push_that_serves_brpoplpush_is_not_aborted() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    for port in [ours.port, theirs.port] {
        let mut r = Conn::connect(port);
        for i in 0..100 {
            r.cmd("DEL src dst");
            r.cmd("SET somekey somevalue");
            let mut blocked = Conn::connect(port);
            blocked.send(&[b"BRPOPLPUSH", b"src", b"dst", b"0"]);
            assert!(wait_until(Duration::from_secs(10), || {
                matches!(r.cmd("INFO clients"), R::Bulk(b) if String::from_utf8_lossy(&b).contains("blocked_clients:1"))
            }));
            let mut w = Conn::connect(port);
            assert_eq!(w.cmd("WATCH dst"), R::ok());
            assert_eq!(w.cmd("MULTI"), R::ok());
            w.cmd("GET somekey");
            w.send(&[b"EXEC"]);
            r.cmd("LPUSH src element");
            assert_eq!(
                w.read(),
                R::Arr(vec![b("somevalue")]),
                "port {port}, round {i}"
            );
            assert_eq!(blocked.read(), b("element"));
        }
    }
}
