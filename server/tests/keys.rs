//! Black-box tests of the keyspace commands over TCP (Redis 7.0.15 replies and
//! errors), and of active expiry.
mod common;
use common::*;
use std::time::Duration;

fn int(n: i64) -> R {
    R::Int(n)
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const NOT_INT: &str = "ERR value is not an integer or out of range";

fn sorted(r: R) -> Vec<Vec<u8>> {
    let R::Arr(items) = r else {
        panic!("not an array: {r:?}")
    };
    let mut v: Vec<Vec<u8>> = items
        .into_iter()
        .map(|i| match i {
            R::Bulk(b) => b,
            other => panic!("not a bulk: {other:?}"),
        })
        .collect();
    v.sort();
    v
}

fn strs(v: &[&str]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = v.iter().map(|s| s.as_bytes().to_vec()).collect();
    v.sort();
    v
}

#[test]
fn del_unlink_exists_touch() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("MSET a 1 b 2 c 3");
    assert_eq!(c.cmd("EXISTS a a nokey b"), int(3), "duplicates count");
    assert_eq!(c.cmd("TOUCH a nokey b"), int(2));
    assert_eq!(c.cmd("DEL a nokey a"), int(1));
    assert_eq!(c.cmd("UNLINK b c"), int(2));
    assert_eq!(c.cmd("DEL a"), int(0));
    assert_eq!(c.cmd("DBSIZE"), int(0));
    assert_eq!(
        c.cmd("DEL"),
        err("ERR wrong number of arguments for 'del' command")
    );
    c.cmd_args(&[b"SET", b"\0\r\n", b"x"]);
    assert_eq!(c.cmd_args(&[b"EXISTS", b"\0\r\n"]), int(1));
    assert_eq!(c.cmd_args(&[b"DEL", b"\0\r\n"]), int(1));
}

#[test]
fn expire_ttl_persist_and_expiretime() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("TTL nokey"), int(-2));
    assert_eq!(c.cmd("PTTL nokey"), int(-2));
    assert_eq!(c.cmd("EXPIRETIME nokey"), int(-2));
    assert_eq!(c.cmd("PEXPIRETIME nokey"), int(-2));
    assert_eq!(c.cmd("EXPIRE nokey 10"), int(0));
    c.cmd("SET k v");
    assert_eq!(c.cmd("TTL k"), int(-1));
    assert_eq!(c.cmd("PTTL k"), int(-1));
    assert_eq!(c.cmd("EXPIRETIME k"), int(-1));
    assert_eq!(c.cmd("PERSIST k"), int(0));
    assert_eq!(c.cmd("EXPIRE k 100"), int(1));
    assert_eq!(c.cmd("TTL k"), int(100));
    assert!(matches!(c.cmd("PTTL k"), R::Int(n) if n > 99_000 && n <= 100_000));
    assert!(matches!(c.cmd("EXPIRETIME k"), R::Int(t) if (t - now_s() - 100).abs() <= 1));
    assert_eq!(c.cmd("PEXPIRE k 50000"), int(1));
    assert!(matches!(c.cmd("TTL k"), R::Int(50)));
    let at = now_s() + 1000;
    assert_eq!(c.cmd(&format!("EXPIREAT k {at}")), int(1));
    assert_eq!(c.cmd("EXPIRETIME k"), int(at));
    assert_eq!(c.cmd(&format!("PEXPIREAT k {}", at * 1000 + 5)), int(1));
    assert_eq!(c.cmd("PEXPIRETIME k"), int(at * 1000 + 5));
    assert_eq!(c.cmd("PERSIST k"), int(1));
    assert_eq!(c.cmd("TTL k"), int(-1));
    assert_eq!(c.cmd("PERSIST k"), int(0));
    // A time in the past deletes the key at once.
    assert_eq!(c.cmd("EXPIRE k -1"), int(1));
    assert_eq!(c.cmd("EXISTS k"), int(0));
    c.cmd("SET k v");
    assert_eq!(c.cmd("PEXPIREAT k 1"), int(1));
    assert_eq!(c.cmd("GET k"), R::Nil);
    c.cmd("SET k v");
    assert_eq!(c.cmd("EXPIRE k abc"), err(NOT_INT));
    assert_eq!(
        c.cmd("EXPIRE k 9223372036854775807"),
        err("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(
        c.cmd("PEXPIRE k 9223372036854775807"),
        err("ERR invalid expire time in 'pexpire' command")
    );
    assert_eq!(
        c.cmd("EXPIREAT k 9223372036854775807"),
        err("ERR invalid expire time in 'expireat' command")
    );
    assert_eq!(c.cmd("TTL k"), int(-1), "failed EXPIREs change nothing");
}

#[test]
fn expire_nx_xx_gt_lt() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("SET k v");
    assert_eq!(c.cmd("EXPIRE k 100 XX"), int(0));
    assert_eq!(
        c.cmd("EXPIRE k 100 GT"),
        int(0),
        "no TTL counts as infinite"
    );
    assert_eq!(c.cmd("EXPIRE k 100 NX"), int(1));
    assert_eq!(c.cmd("EXPIRE k 200 NX"), int(0));
    assert_eq!(c.cmd("EXPIRE k 200 XX"), int(1));
    assert_eq!(c.cmd("EXPIRE k 100 GT"), int(0));
    assert_eq!(c.cmd("EXPIRE k 300 gt"), int(1));
    assert_eq!(c.cmd("EXPIRE k 400 LT"), int(0));
    assert_eq!(c.cmd("EXPIRE k 50 lt"), int(1));
    assert_eq!(c.cmd("TTL k"), int(50));
    assert_eq!(c.cmd("EXPIRE k 40 XX LT"), int(1));
    c.cmd("SET p v");
    assert_eq!(
        c.cmd("EXPIRE p 100 LT"),
        int(1),
        "LT sets a TTL on a persistent key"
    );
    let incompatible = "ERR NX and XX, GT or LT options at the same time are not compatible";
    assert_eq!(c.cmd("EXPIRE k 10 NX XX"), err(incompatible));
    assert_eq!(c.cmd("PEXPIRE k 10 NX GT"), err(incompatible));
    assert_eq!(c.cmd("EXPIREAT k 10 LT NX"), err(incompatible));
    assert_eq!(
        c.cmd("PEXPIREAT k 10 GT LT"),
        err("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(c.cmd("EXPIRE k 10 FOO"), err("ERR Unsupported option FOO"));
    assert_eq!(c.cmd("TTL k"), int(40));
}

#[test]
fn type_rename_renamenx() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("TYPE nokey"), R::Simple("none".into()));
    c.cmd("SET a 1");
    assert_eq!(c.cmd("TYPE a"), R::Simple("string".into()));
    assert_eq!(c.cmd("RENAME nokey x"), err("ERR no such key"));
    assert_eq!(c.cmd("RENAMENX nokey x"), err("ERR no such key"));
    assert_eq!(c.cmd("RENAME a a"), R::ok());
    assert_eq!(c.cmd("RENAMENX a a"), int(0));
    c.cmd("EXPIRE a 100");
    assert_eq!(c.cmd("RENAME a b"), R::ok());
    assert_eq!(c.cmd("EXISTS a"), int(0));
    assert_eq!(c.cmd("GET b"), R::bulk("1"));
    assert_eq!(c.cmd("TTL b"), int(100), "the TTL moves with the value");
    c.cmd("SET c 2");
    assert_eq!(c.cmd("RENAMENX b c"), int(0));
    assert_eq!(c.cmd("RENAME b c"), R::ok(), "RENAME overwrites");
    assert_eq!(c.cmd("GET c"), R::bulk("1"));
    assert_eq!(c.cmd("RENAMENX c d"), int(1));
    assert_eq!(c.cmd("DBSIZE"), int(1));
}

#[test]
fn keys_with_glob_patterns() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("KEYS *"), R::Arr(vec![]));
    c.cmd("MSET hello 1 hallo 2 hxllo 3 hllo 4 heeeello 5 foo*bar 6");
    assert_eq!(
        sorted(c.cmd("KEYS h?llo")),
        strs(&["hello", "hallo", "hxllo"])
    );
    assert_eq!(
        sorted(c.cmd("KEYS h*llo")),
        strs(&["hello", "hallo", "hxllo", "hllo", "heeeello"])
    );
    assert_eq!(sorted(c.cmd("KEYS h[ae]llo")), strs(&["hello", "hallo"]));
    assert_eq!(sorted(c.cmd("KEYS h[^e]llo")), strs(&["hallo", "hxllo"]));
    assert_eq!(sorted(c.cmd("KEYS h[a-b]llo")), strs(&["hallo"]));
    assert_eq!(sorted(c.cmd("KEYS foo\\*bar")), strs(&["foo*bar"]));
    assert_eq!(sorted(c.cmd("KEYS *")).len(), 6);
    c.cmd("PEXPIRE hello 1");
    assert!(wait_until(Duration::from_secs(5), || {
        sorted(c.cmd("KEYS hel*")).is_empty()
    }));
}

#[test]
fn scan_visits_every_key_with_match_count_and_type() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    for i in 0..500 {
        c.cmd(&format!("SET key:{i} v"));
    }
    c.cmd("SET other v");
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    for round in 0.. {
        assert!(round < 10_000, "SCAN did not terminate");
        let R::Arr(reply) = c.cmd(&format!("SCAN {cursor} MATCH key:* COUNT 7")) else {
            panic!("bad SCAN reply")
        };
        let R::Bulk(next) = &reply[0] else { panic!() };
        let R::Arr(keys) = &reply[1] else { panic!() };
        for k in keys {
            let R::Bulk(k) = k else { panic!() };
            assert!(k.starts_with(b"key:"));
            seen.insert(k.clone());
        }
        cursor = String::from_utf8(next.clone()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 500);
    // Default COUNT over a small db returns everything in one call.
    let R::Arr(reply) = c.cmd("SCAN 0 COUNT 1000 TYPE string") else {
        panic!()
    };
    assert_eq!(reply[0], R::bulk("0"));
    assert!(matches!(&reply[1], R::Arr(k) if k.len() == 501));
    let R::Arr(reply) = c.cmd("SCAN 0 COUNT 1000 TYPE hash") else {
        panic!()
    };
    assert_eq!(reply[1], R::Arr(vec![]));
    let R::Arr(reply) = c.cmd("SCAN 0 count 1000 match other") else {
        panic!()
    };
    assert_eq!(reply[1], R::Arr(vec![R::bulk("other")]));
    assert_eq!(c.cmd("SCAN abc"), err("ERR invalid cursor"));
    assert_eq!(c.cmd("SCAN 1x"), err("ERR invalid cursor"));
    assert!(matches!(c.cmd("SCAN -1"), R::Arr(_)), "strtoul wraps -1");
    assert_eq!(c.cmd("SCAN 0 COUNT 0"), err("ERR syntax error"));
    assert_eq!(c.cmd("SCAN 0 COUNT x"), err(NOT_INT));
    assert_eq!(c.cmd("SCAN 0 FOO bar"), err("ERR syntax error"));
    assert_eq!(c.cmd("SCAN 0 MATCH"), err("ERR syntax error"));
    // A huge cursor or count is fine.
    assert!(matches!(
        c.cmd("SCAN 18446744073709551615 COUNT 9223372036854775807"),
        R::Arr(_)
    ));
}

#[test]
fn randomkey_and_dbsize() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("RANDOMKEY"), R::Nil);
    assert_eq!(c.cmd("DBSIZE"), int(0));
    c.cmd("MSET a 1 b 2");
    for _ in 0..20 {
        let k = c.cmd("RANDOMKEY");
        assert!(k == R::bulk("a") || k == R::bulk("b"), "{k:?}");
    }
    assert_eq!(c.cmd("DBSIZE"), int(2));
    // Expired keys are never returned.
    c.cmd("FLUSHDB");
    c.cmd("SET gone v PX 1");
    c.cmd("SET live v");
    assert!(wait_until(Duration::from_secs(5), || {
        (0..20).all(|_| c.cmd("RANDOMKEY") == R::bulk("live"))
    }));
}

#[test]
fn flushdb_flushall_swapdb_move_copy() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("FLUSHDB foo"), err("ERR syntax error"));
    assert_eq!(c.cmd("FLUSHALL ASYNC extra"), err("ERR syntax error"));
    c.cmd("MSET a 1 b 2");
    assert_eq!(c.cmd("FLUSHDB ASYNC"), R::ok());
    assert_eq!(c.cmd("DBSIZE"), int(0));

    // MOVE to db 1, then look at db 1 through SWAPDB (SELECT is another family).
    c.cmd("SET k v EX 100");
    assert_eq!(c.cmd("MOVE k 1"), int(1));
    assert_eq!(c.cmd("EXISTS k"), int(0));
    assert_eq!(c.cmd("MOVE k 1"), int(0), "missing source");
    c.cmd("SET k other");
    assert_eq!(c.cmd("MOVE k 1"), int(0), "target exists");
    assert_eq!(
        c.cmd("MOVE k 0"),
        err("ERR source and destination objects are the same")
    );
    assert_eq!(c.cmd("MOVE k 16"), err("ERR DB index is out of range"));
    assert_eq!(c.cmd("MOVE k -1"), err("ERR DB index is out of range"));
    assert_eq!(c.cmd("MOVE k x"), err(NOT_INT));
    assert_eq!(c.cmd("SWAPDB 0 1"), R::ok());
    assert_eq!(c.cmd("GET k"), R::bulk("v"));
    assert!(
        matches!(c.cmd("TTL k"), R::Int(n) if n > 90),
        "MOVE keeps the TTL"
    );
    assert_eq!(c.cmd("SWAPDB 1 0"), R::ok());
    assert_eq!(c.cmd("GET k"), R::bulk("other"));
    assert_eq!(c.cmd("SWAPDB a 1"), err("ERR invalid first DB index"));
    assert_eq!(c.cmd("SWAPDB 1 a"), err("ERR invalid second DB index"));
    assert_eq!(c.cmd("SWAPDB 1 16"), err("ERR DB index is out of range"));
    assert_eq!(c.cmd("SWAPDB -1 0"), err("ERR DB index is out of range"));
    assert_eq!(c.cmd("SWAPDB 0 0"), R::ok());

    // COPY within a db and across dbs.
    c.cmd("SET src hello EX 100");
    assert_eq!(c.cmd("COPY src dst"), int(1));
    assert_eq!(c.cmd("GET dst"), R::bulk("hello"));
    assert!(matches!(c.cmd("TTL dst"), R::Int(n) if n > 90));
    c.cmd("SET src changed");
    assert_eq!(
        c.cmd("GET dst"),
        R::bulk("hello"),
        "a copy, not a reference"
    );
    assert_eq!(c.cmd("COPY src dst"), int(0));
    assert_eq!(c.cmd("COPY src dst REPLACE"), int(1));
    assert_eq!(c.cmd("GET dst"), R::bulk("changed"));
    assert_eq!(c.cmd("COPY nokey dst REPLACE"), int(0));
    assert_eq!(
        c.cmd("COPY src src"),
        err("ERR source and destination objects are the same")
    );
    assert_eq!(c.cmd("COPY src src DB 2"), int(1));
    assert_eq!(
        c.cmd("COPY src dst DB 16"),
        err("ERR DB index is out of range")
    );
    assert_eq!(c.cmd("COPY src dst DB x"), err(NOT_INT));
    assert_eq!(c.cmd("COPY src dst FOO"), err("ERR syntax error"));
    assert_eq!(c.cmd("COPY src dst DB"), err("ERR syntax error"));
    assert_eq!(c.cmd("SWAPDB 0 2"), R::ok());
    assert_eq!(c.cmd("GET src"), R::bulk("changed"));
    assert_eq!(c.cmd("DBSIZE"), int(1));

    assert_eq!(c.cmd("FLUSHALL"), R::ok());
    assert_eq!(c.cmd("DBSIZE"), int(0));
    assert_eq!(c.cmd("SWAPDB 0 1"), R::ok());
    assert_eq!(c.cmd("DBSIZE"), int(0), "FLUSHALL empties every db");
}

#[test]
fn object_subcommands() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("SET i 12345");
    c.cmd("SET e short");
    c.cmd(&format!("SET r {}", "x".repeat(45)));
    assert_eq!(c.cmd("OBJECT ENCODING i"), R::bulk("int"));
    assert_eq!(c.cmd("OBJECT ENCODING e"), R::bulk("embstr"));
    assert_eq!(c.cmd("OBJECT ENCODING r"), R::bulk("raw"));
    assert_eq!(c.cmd("OBJECT ENCODING nokey"), R::Nil);
    assert_eq!(
        c.cmd("object encoding I"),
        R::Nil,
        "keys are case-sensitive"
    );
    assert_eq!(c.cmd("OBJECT REFCOUNT e"), int(1));
    assert_eq!(c.cmd("OBJECT REFCOUNT nokey"), R::Nil);
    assert!(matches!(c.cmd("OBJECT IDLETIME e"), R::Int(n) if (0..5).contains(&n)));
    assert_eq!(
        c.cmd("OBJECT FREQ e"),
        err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
    );
    assert_eq!(
        c.cmd("OBJECT FOO e"),
        err("ERR unknown subcommand 'FOO'. Try OBJECT HELP.")
    );
    assert_eq!(
        c.cmd("OBJECT ENCODING"),
        err("ERR wrong number of arguments for 'object|encoding' command")
    );
    assert_eq!(
        c.cmd("OBJECT"),
        err("ERR wrong number of arguments for 'object' command")
    );
    assert!(matches!(c.cmd("OBJECT HELP"), R::Arr(lines) if lines.len() > 5));
}

#[test]
fn active_expiry_removes_keys_nobody_reads() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    for i in 0..200 {
        c.cmd(&format!("SET tmp:{i} v PX 50"));
    }
    c.cmd("SET keep v");
    c.cmd("SET later v EX 1000");
    assert!(
        wait_until(Duration::from_secs(10), || c.cmd("DBSIZE") == int(2)),
        "expired keys were not removed in the background"
    );
    assert_eq!(c.cmd("EXISTS keep later"), int(2));
}

#[test]
fn keyspace_commands_through_the_redis_crate() {
    let s = TestServer::start(&[]);
    let mut con = s.client().get_connection().expect("connect");
    let _: () = redis::cmd("MSET")
        .arg("a")
        .arg(1)
        .arg("b")
        .arg(2)
        .query(&mut con)
        .unwrap();
    let n: i64 = redis::cmd("EXPIRE")
        .arg("a")
        .arg(100)
        .arg("NX")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);
    let ttl: i64 = redis::cmd("TTL").arg("a").query(&mut con).unwrap();
    assert_eq!(ttl, 100);
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    keys.sort();
    assert_eq!(keys, vec!["a", "b"]);
    let mut scanned: Vec<String> = redis::cmd("SCAN")
        .cursor_arg(0)
        .clone()
        .iter(&mut con)
        .unwrap()
        .collect();
    scanned.sort();
    assert_eq!(scanned, vec!["a", "b"]);
    let t: String = redis::cmd("TYPE").arg("a").query(&mut con).unwrap();
    assert_eq!(t, "string");
    let _: () = redis::cmd("RENAME")
        .arg("a")
        .arg("c")
        .query(&mut con)
        .unwrap();
    let n: i64 = redis::cmd("DEL").arg("b").arg("c").query(&mut con).unwrap();
    assert_eq!(n, 2);
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 0);
}

/// Found by the mixed-family sequence (mixed_vs_redis.rs): RENAME, RENAMENX and MOVE keep
/// the value object and COPY duplicates a string in its encoding, so a string edited in
/// place stays `raw` under its new name.
#[test]
fn renamed_moved_and_copied_strings_keep_their_encoding() {
    let mut p = Pair::start();
    for k in ["a", "b", "c", "d"] {
        p.same_words(&format!("SET {k} 1"));
        p.same_words(&format!("APPEND {k} 2"));
    }
    p.same_words("RENAME a a2");
    p.same_words("RENAMENX b b2");
    p.same_words("MOVE c 1");
    p.same_words("COPY d d2");
    p.same_words("COPY d d3 DB 1");
    for key in ["a2", "b2", "d2"] {
        assert_eq!(
            p.same_words(&format!("OBJECT ENCODING {key}")),
            b("raw"),
            "{key}"
        );
    }
    p.same_words("SELECT 1");
    for key in ["c", "d3"] {
        assert_eq!(
            p.same_words(&format!("OBJECT ENCODING {key}")),
            b("raw"),
            "{key}"
        );
    }
}

/// Redis prints the unknown (sub)command and its arguments as C strings, so each stops
/// at its first NUL byte (found by mixed_vs_redis.rs).
#[test]
fn unknown_command_and_subcommand_errors_stop_at_a_nul_byte() {
    let mut p = Pair::start();
    let e = p.same(&[b"NOSUCHCMD", b"b\x00\xff", b"NX"]);
    assert_eq!(
        e,
        err("ERR unknown command 'NOSUCHCMD', with args beginning with: 'b' 'NX' ")
    );
    let e = p.same(&[b"OBJECT", b"b\x00\xff"]);
    assert_eq!(e, err("ERR unknown subcommand 'b'. Try OBJECT HELP."));
    p.same(&[b"CONFIG", b"x\x00y"]);
    p.same(&[b"MEMORY", b"x\x00y"]);
    p.same(&[b"CLIENT", b"x\x00y"]);
}

/// Found by mixed_vs_redis.rs: a small integer is one of Redis's shared objects only when
/// stored as an integer; a COPY, an INCRBYFLOAT result or an edited string is an object
/// of its own (OBJECT REFCOUNT 1) while its encoding stays what it was.
#[test]
fn object_refcount_tells_shared_integers_like_redis() {
    let mut p = Pair::start();
    p.same_words("SET n 5");
    p.same_words("COPY n copy");
    p.same_words("INCRBYFLOAT f 5");
    p.same_words("SET e 5");
    p.same_words("APPEND e 1");
    p.same_words("SET big 123456");
    p.same_words("COPY copy copy2");
    p.same_words("RENAME n moved");
    for (key, refcount, encoding) in [
        ("moved", i64::from(i32::MAX), "int"),
        ("copy", 1, "int"),
        ("copy2", 1, "int"),
        ("f", 1, "embstr"),
        ("e", 1, "raw"),
        ("big", 1, "int"),
    ] {
        assert_eq!(
            p.same_words(&format!("OBJECT REFCOUNT {key}")),
            R::Int(refcount),
            "{key}"
        );
        assert_eq!(
            p.same_words(&format!("OBJECT ENCODING {key}")),
            b(encoding),
            "{key}"
        );
    }
    // Written again as an integer, the copy is a shared integer again.
    p.same_words("INCR copy");
    assert_eq!(
        p.same_words("OBJECT REFCOUNT copy"),
        R::Int(i64::from(i32::MAX))
    );
    p.same_words("APPEND copy2 0");
    assert_eq!(p.same_words("OBJECT ENCODING copy2"), b("raw"));
}
