//! Black-box tests of the set commands over TCP (expected replies checked against
//! redis-server 7.0.15).
mod common;
use common::*;
use std::collections::BTreeSet;

#[test]
fn add_remove_membership() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SADD st a b c"), R::Int(3));
    assert_eq!(c.cmd("SADD st a d"), R::Int(1));
    assert_eq!(
        c.cmd("SADD st"),
        err("ERR wrong number of arguments for 'sadd' command")
    );
    assert_eq!(c.cmd("SREM st a zz"), R::Int(1));
    assert_eq!(c.cmd("SREM nokey a"), R::Int(0));
    assert_eq!(c.cmd("SCARD st"), R::Int(3));
    assert_eq!(c.cmd("SCARD nokey"), R::Int(0));
    assert_eq!(c.cmd("SISMEMBER st b"), R::Int(1));
    assert_eq!(c.cmd("SISMEMBER st zz"), R::Int(0));
    assert_eq!(c.cmd("SISMEMBER nokey b"), R::Int(0));
    assert_eq!(
        c.cmd("SMISMEMBER st b zz c"),
        R::Arr(vec![R::Int(1), R::Int(0), R::Int(1)])
    );
    assert_eq!(c.cmd("SMISMEMBER nokey a"), R::Arr(vec![R::Int(0)]));
    assert_eq!(bulks(c.cmd("SMEMBERS st")), set_of(&["b", "c", "d"]));
    assert_eq!(c.cmd("SMEMBERS nokey"), R::Arr(vec![]));
    assert_eq!(c.cmd("SREM st b c d"), R::Int(3));
    assert_eq!(c.cmd("SCARD st"), R::Int(0));
    // The emptied set was deleted, so the key can hold another type now.
    assert_eq!(c.cmd("SET st x"), R::ok());
}

#[test]
fn random_members_and_pop() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SRANDMEMBER nokey"), R::Nil);
    assert_eq!(c.cmd("SRANDMEMBER nokey 5"), R::Arr(vec![]));
    assert_eq!(c.cmd("SRANDMEMBER nokey -5"), R::Arr(vec![]));
    assert_eq!(c.cmd("SPOP nokey"), R::Nil);
    assert_eq!(c.cmd("SPOP nokey 3"), R::Arr(vec![]));
    assert_eq!(c.cmd("SPOP nokey 0"), R::Arr(vec![]));
    c.cmd("SADD st a b c d e");
    let all = set_of(&["a", "b", "c", "d", "e"]);
    assert_eq!(c.cmd("SRANDMEMBER st 0"), R::Arr(vec![]));
    assert_eq!(bulks(c.cmd("SRANDMEMBER st 3")).len(), 3);
    assert_eq!(bulks(c.cmd("SRANDMEMBER st 9223372036854775807")), all);
    let R::Arr(items) = c.cmd("SRANDMEMBER st -20") else {
        panic!("expected an array");
    };
    assert_eq!(items.len(), 20);
    assert_eq!(
        c.cmd("SRANDMEMBER st -9223372036854775808"),
        err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    );
    assert_eq!(
        c.cmd("SRANDMEMBER st abc"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.cmd("SRANDMEMBER st 1 2"), err("ERR syntax error"));
    let positive = err("ERR value is out of range, must be positive");
    assert_eq!(c.cmd("SPOP st -1"), positive);
    assert_eq!(c.cmd("SPOP st abc"), positive);
    assert_eq!(c.cmd("SPOP nokey -1"), positive);
    assert_eq!(c.cmd("SPOP st 1 2"), err("ERR syntax error"));
    assert_eq!(c.cmd("SPOP st 0"), R::Arr(vec![]));
    let R::Bulk(one) = c.cmd("SPOP st") else {
        panic!("expected a member");
    };
    assert!(all.contains(&one));
    let two = bulks(c.cmd("SPOP st 2"));
    assert_eq!(two.len(), 2);
    assert!(!two.contains(&one));
    assert_eq!(c.cmd("SCARD st"), R::Int(2));
    let rest = bulks(c.cmd("SPOP st 100"));
    assert_eq!(rest.len(), 2);
    let mut seen: BTreeSet<Vec<u8>> = rest.union(&two).cloned().collect();
    seen.insert(one);
    assert_eq!(seen, all);
    assert_eq!(c.cmd("SCARD st"), R::Int(0));
    assert_eq!(c.cmd("SPOP st"), R::Nil);
}

#[test]
fn algebra_and_store() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("SADD s1 a b c d");
    c.cmd("SADD s2 c d e");
    c.cmd("SADD s3 d e f");
    c.cmd("SET str v");
    assert_eq!(bulks(c.cmd("SINTER s1 s2")), set_of(&["c", "d"]));
    assert_eq!(bulks(c.cmd("SINTER s1 s2 s3")), set_of(&["d"]));
    assert_eq!(c.cmd("SINTER s1 nokey"), R::Arr(vec![]));
    // Every key is type-checked even after a missing one.
    assert_eq!(c.cmd("SINTER nokey str"), err(WRONGTYPE));
    assert_eq!(
        bulks(c.cmd("SUNION s1 s2 s3")),
        set_of(&["a", "b", "c", "d", "e", "f"])
    );
    assert_eq!(
        bulks(c.cmd("SUNION s1 nokey")),
        set_of(&["a", "b", "c", "d"])
    );
    assert_eq!(c.cmd("SUNION nokey str"), err(WRONGTYPE));
    assert_eq!(bulks(c.cmd("SDIFF s1 s2")), set_of(&["a", "b"]));
    assert_eq!(bulks(c.cmd("SDIFF s1 s2 s3")), set_of(&["a", "b"]));
    assert_eq!(c.cmd("SDIFF nokey s1"), R::Arr(vec![]));
    assert_eq!(
        bulks(c.cmd("SDIFF s1 nokey")),
        set_of(&["a", "b", "c", "d"])
    );
    assert_eq!(c.cmd("SDIFF s1 str"), err(WRONGTYPE));

    assert_eq!(c.cmd("SINTERSTORE dst s1 s2"), R::Int(2));
    assert_eq!(bulks(c.cmd("SMEMBERS dst")), set_of(&["c", "d"]));
    assert_eq!(c.cmd("SINTERSTORE dst s1 nokey"), R::Int(0));
    assert_eq!(c.cmd("SCARD dst"), R::Int(0));
    assert_eq!(c.cmd("SUNIONSTORE dst s1 s2"), R::Int(5));
    assert_eq!(c.cmd("SDIFFSTORE dst s1 s1"), R::Int(0));
    assert_eq!(c.cmd("SCARD dst"), R::Int(0));
    assert_eq!(c.cmd("SDIFFSTORE dst s1 s3"), R::Int(3));
    assert_eq!(bulks(c.cmd("SMEMBERS dst")), set_of(&["a", "b", "c"]));
    assert_eq!(c.cmd("SINTERSTORE dst s1 str"), err(WRONGTYPE));
    // A store overwrites a destination of another type.
    assert_eq!(c.cmd("SUNIONSTORE str s3"), R::Int(3));
    assert_eq!(c.cmd("SISMEMBER str f"), R::Int(1));
}

#[test]
fn intercard() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("SADD s1 a b c d");
    c.cmd("SADD s2 c d e");
    c.cmd("SET str v");
    assert_eq!(c.cmd("SINTERCARD 1 s1"), R::Int(4));
    assert_eq!(c.cmd("SINTERCARD 2 s1 s2"), R::Int(2));
    assert_eq!(c.cmd("SINTERCARD 2 s1 nokey"), R::Int(0));
    assert_eq!(c.cmd("SINTERCARD 2 s1 s2 LIMIT 1"), R::Int(1));
    assert_eq!(c.cmd("SINTERCARD 2 s1 s2 LIMIT 0"), R::Int(2));
    let numkeys = err("ERR numkeys should be greater than 0");
    assert_eq!(c.cmd("SINTERCARD 0 s1"), numkeys);
    assert_eq!(c.cmd("SINTERCARD -1 s1"), numkeys);
    assert_eq!(c.cmd("SINTERCARD x s1"), numkeys);
    assert_eq!(
        c.cmd("SINTERCARD 2 s1"),
        err("ERR Number of keys can't be greater than number of args")
    );
    let limit = err("ERR LIMIT can't be negative");
    assert_eq!(c.cmd("SINTERCARD 1 s1 LIMIT -1"), limit);
    assert_eq!(c.cmd("SINTERCARD 1 s1 LIMIT x"), limit);
    assert_eq!(c.cmd("SINTERCARD 1 s1 LIMIT"), err("ERR syntax error"));
    assert_eq!(c.cmd("SINTERCARD 1 s1 FOO 1"), err("ERR syntax error"));
    assert_eq!(c.cmd("SINTERCARD 1 str"), err(WRONGTYPE));
    assert_eq!(c.cmd("SINTERCARD 2 nokey str"), err(WRONGTYPE));
}

#[test]
fn smove_rules() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("SADD s1 a b c");
    c.cmd("SADD s2 x");
    c.cmd("SET str v");
    assert_eq!(c.cmd("SMOVE s1 s2 a"), R::Int(1));
    assert_eq!(bulks(c.cmd("SMEMBERS s2")), set_of(&["a", "x"]));
    assert_eq!(c.cmd("SMOVE s1 s2 zz"), R::Int(0));
    assert_eq!(c.cmd("SMOVE nokey s2 a"), R::Int(0));
    // A missing source answers 0 before the destination's type is looked at.
    assert_eq!(c.cmd("SMOVE nokey str a"), R::Int(0));
    assert_eq!(c.cmd("SMOVE s1 str b"), err(WRONGTYPE));
    assert_eq!(c.cmd("SMOVE str s1 b"), err(WRONGTYPE));
    assert_eq!(c.cmd("SISMEMBER s1 b"), R::Int(1));
    assert_eq!(c.cmd("SMOVE s1 s1 b"), R::Int(1));
    assert_eq!(c.cmd("SMOVE s1 s1 zz"), R::Int(0));
    c.cmd("SADD one m");
    assert_eq!(c.cmd("SMOVE one other m"), R::Int(1));
    assert_eq!(c.cmd("SCARD one"), R::Int(0));
    assert_eq!(bulks(c.cmd("SMEMBERS other")), set_of(&["m"]));
}

#[test]
fn sscan_walks_everything() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(
        c.cmd("SSCAN nokey 0"),
        R::Arr(vec![R::bulk("0"), R::Arr(vec![])])
    );
    c.cmd("SADD small a b bb");
    let R::Arr(parts) = c.cmd("SSCAN small 0 MATCH b*") else {
        panic!("expected an array");
    };
    assert_eq!(parts[0], R::bulk("0"));
    assert_eq!(bulks(parts[1].clone()), set_of(&["b", "bb"]));
    assert_eq!(c.cmd("SSCAN small abc"), err("ERR invalid cursor"));
    assert_eq!(c.cmd("SSCAN small 0 COUNT 0"), err("ERR syntax error"));

    let mut args: Vec<Vec<u8>> = vec![b"SADD".to_vec(), b"big".to_vec()];
    for i in 0..300 {
        args.push(format!("m{i}").into_bytes());
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    assert_eq!(c.cmd_args(&refs), R::Int(300));
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    for step in 0.. {
        assert!(step < 1000, "SSCAN did not terminate");
        let R::Arr(parts) = c.cmd(&format!("SSCAN big {cursor}")) else {
            panic!("expected an array");
        };
        let R::Bulk(next) = &parts[0] else {
            panic!("cursor must be a bulk");
        };
        seen.extend(bulks(parts[1].clone()));
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 300);
}

#[test]
fn wrong_type_errors() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("SET str v");
    for cmd in [
        "SADD str a",
        "SREM str a",
        "SCARD str",
        "SISMEMBER str a",
        "SMISMEMBER str a",
        "SMEMBERS str",
        "SRANDMEMBER str",
        "SRANDMEMBER str 2",
        "SPOP str",
        "SPOP str 2",
        "SINTER str",
        "SUNION str",
        "SDIFF str",
        "SSCAN str 0",
    ] {
        assert_eq!(c.cmd(cmd), err(WRONGTYPE), "{cmd}");
    }
}

#[test]
fn binary_safe_members() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let m: &[u8] = b"m\0\r\nx";
    assert_eq!(c.cmd_args(&[b"SADD", b"s\r\n", m, b""]), R::Int(2));
    assert_eq!(c.cmd_args(&[b"SISMEMBER", b"s\r\n", m]), R::Int(1));
    assert_eq!(c.cmd_args(&[b"SISMEMBER", b"s\r\n", b"m"]), R::Int(0));
    assert_eq!(
        bulks(c.cmd_args(&[b"SMEMBERS", b"s\r\n"])),
        [m.to_vec(), vec![]].into_iter().collect()
    );
}

#[test]
fn resp3_set_replies() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    if !matches!(c.cmd("HELLO 3"), R::Map(_)) {
        return; // HELLO belongs to another command family.
    }
    c.cmd("SADD st a");
    assert_eq!(c.cmd("SMEMBERS st"), R::Set(vec![R::bulk("a")]));
    assert_eq!(c.cmd("SPOP nokey 2"), R::Set(vec![]));
    assert_eq!(c.cmd("SRANDMEMBER st 5"), R::Arr(vec![R::bulk("a")]));
    assert_eq!(c.cmd("SINTER st"), R::Set(vec![R::bulk("a")]));
}

#[tokio::test]
async fn redis_crate_client_set_roundtrip() {
    let s = TestServer::start(&[]);
    let client = s.client();
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let n: i64 = redis::cmd("SADD")
        .arg("s")
        .arg(&["a", "b", "c"])
        .query_async(&mut con)
        .await
        .expect("sadd");
    assert_eq!(n, 3);
    let members: std::collections::HashSet<String> = redis::cmd("SMEMBERS")
        .arg("s")
        .query_async(&mut con)
        .await
        .expect("smembers");
    assert_eq!(members.len(), 3);
    let is: bool = redis::cmd("SISMEMBER")
        .arg("s")
        .arg("b")
        .query_async(&mut con)
        .await
        .expect("sismember");
    assert!(is);
}

#[test]
fn small_integer_sets_come_out_sorted_like_intsets() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("SADD ints 10 -3 7 0 100");
    let sorted = R::Arr(
        ["-3", "0", "7", "10", "100"]
            .iter()
            .map(|m| R::bulk(m))
            .collect(),
    );
    assert_eq!(c.cmd("SMEMBERS ints"), sorted);
    c.cmd("SADD more 7 100 5");
    assert_eq!(
        c.cmd("SUNION ints more"),
        R::Arr(
            ["-3", "0", "5", "7", "10", "100"]
                .iter()
                .map(|m| R::bulk(m))
                .collect()
        )
    );
    assert_eq!(
        c.cmd("SINTER ints more"),
        R::Arr(vec![R::bulk("7"), R::bulk("100")])
    );
    assert_eq!(c.cmd("SSCAN ints 0"), R::Arr(vec![R::bulk("0"), sorted]));
}

/// WATCHes `dstset`, queues a SADD to it, lets another client SMOVE `member` from
/// `srcset` into it, and returns EXEC's answer.
fn exec_after_smove(c: &mut Conn, other: &mut Conn, member: &str) -> R {
    c.cmd("DEL srcset dstset");
    c.cmd("SADD srcset a b");
    c.cmd("SADD dstset a");
    assert_eq!(c.cmd("WATCH dstset"), R::ok());
    assert_eq!(c.cmd("MULTI"), R::ok());
    assert_eq!(c.cmd("SADD dstset c"), R::Simple("QUEUED".into()));
    assert_eq!(
        other.cmd(&format!("SMOVE srcset dstset {member}")),
        R::Int(1)
    );
    c.cmd("EXEC")
}

/// Found by Redis's own TCL suite (unit/type/set, "SMOVE only notify dstset when the
/// addition is successful"): an SMOVE of a member the destination already holds
/// changes only the source, so a WATCH of the destination does not abort; a member
/// the destination lacked does abort it.
#[test]
fn smove_of_a_member_already_in_the_destination_leaves_its_watch_alone_like_redis() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    for (member, want) in [("a", R::Arr(vec![R::Int(1)])), ("b", R::NilArr)] {
        let got = exec_after_smove(&mut ours.conn(), &mut ours.conn(), member);
        let redis = exec_after_smove(&mut theirs.conn(), &mut theirs.conn(), member);
        assert_eq!(redis, want, "Redis, member {member}");
        assert_eq!(got, want, "Tandem, member {member}");
    }
}
