//! Black-box tests of the string commands over TCP (Redis 7.0.15 replies and errors).
mod common;
use common::*;
use std::time::Duration;

fn int(n: i64) -> R {
    R::Int(n)
}

const NOT_INT: &str = "ERR value is not an integer or out of range";
#[test]
fn set_and_get_are_binary_safe() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let v: &[u8] = b"a\0b\r\nc\x00\xff";
    assert_eq!(c.cmd_args(&[b"SET", b"bin\r\n\0", v]), R::ok());
    assert_eq!(c.cmd_args(&[b"GET", b"bin\r\n\0"]), R::Bulk(v.to_vec()));
    assert_eq!(c.cmd_args(&[b"STRLEN", b"bin\r\n\0"]), int(8));
    // Empty key and empty value are ordinary.
    assert_eq!(c.cmd_args(&[b"SET", b"", b""]), R::ok());
    assert_eq!(c.cmd_args(&[b"GET", b""]), R::bulk(""));
    assert_eq!(c.cmd_args(&[b"EXISTS", b""]), int(1));
    assert_eq!(c.cmd("GET missing"), R::Nil);
}

#[test]
fn set_options_nx_xx_get_keepttl() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET k v XX"), R::Nil);
    assert_eq!(c.cmd("SET k v NX"), R::ok());
    assert_eq!(c.cmd("SET k w NX"), R::Nil);
    assert_eq!(c.cmd("GET k"), R::bulk("v"));
    assert_eq!(c.cmd("SET k w XX"), R::ok());
    assert_eq!(c.cmd("SET k x GET"), R::bulk("w"));
    assert_eq!(c.cmd("SET new x GET"), R::Nil);
    // NX together with GET is allowed in 7.0: the old value is returned either way.
    assert_eq!(c.cmd("SET k y NX GET"), R::bulk("x"));
    assert_eq!(c.cmd("GET k"), R::bulk("x"));
    assert_eq!(c.cmd("SET k y nx xx"), err("ERR syntax error"));
    assert_eq!(c.cmd("SET k y xx nx"), err("ERR syntax error"));
    assert_eq!(c.cmd("SET k y foo"), err("ERR syntax error"));
    assert_eq!(c.cmd("SET k v EX 10 PX 100"), err("ERR syntax error"));
    assert_eq!(c.cmd("SET k v EX 10 KEEPTTL"), err("ERR syntax error"));
    assert_eq!(c.cmd("SET k v KEEPTTL EX 10"), err("ERR syntax error"));
    assert_eq!(c.cmd("SET k v EX"), err("ERR syntax error"));
    assert_eq!(c.cmd("SET k v EX abc"), err(NOT_INT));
    for bad in [
        "EX 0",
        "PX -5",
        "EXAT 0",
        "PXAT -1",
        "EX 9223372036854775807",
    ] {
        assert_eq!(
            c.cmd(&format!("SET k v {bad}")),
            err("ERR invalid expire time in 'set' command"),
            "{bad}"
        );
    }
    // KEEPTTL keeps the TTL, a plain SET drops it.
    assert_eq!(c.cmd("SET t v EX 100"), R::ok());
    assert_eq!(c.cmd("SET t w KEEPTTL"), R::ok());
    assert!(matches!(c.cmd("TTL t"), R::Int(n) if (95..=100).contains(&n)));
    assert_eq!(c.cmd("SET t w"), R::ok());
    assert_eq!(c.cmd("TTL t"), int(-1));
    // The same unit twice: the last value wins.
    assert_eq!(c.cmd("SET t v EX 10 EX 1000"), R::ok());
    assert!(matches!(c.cmd("TTL t"), R::Int(n) if n > 900));
    assert_eq!(c.cmd("SET t v PX 100000"), R::ok());
    assert!(matches!(c.cmd("PTTL t"), R::Int(n) if n > 90_000 && n <= 100_000));
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 500;
    assert_eq!(c.cmd(&format!("SET t v EXAT {at}")), R::ok());
    assert_eq!(c.cmd("EXPIRETIME t"), int(at as i64));
    // A PXAT in the past is accepted and the key is simply gone.
    assert_eq!(c.cmd("SET gone v PXAT 1"), R::ok());
    assert_eq!(c.cmd("EXISTS gone"), int(0));
}

#[test]
fn setnx_setex_psetex() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SETNX k v"), int(1));
    assert_eq!(c.cmd("SETNX k w"), int(0));
    assert_eq!(c.cmd("GET k"), R::bulk("v"));
    assert_eq!(c.cmd("SETEX k 100 x"), R::ok());
    assert!(matches!(c.cmd("TTL k"), R::Int(n) if (99..=100).contains(&n)));
    assert_eq!(c.cmd("PSETEX k 5000 y"), R::ok());
    assert!(matches!(c.cmd("PTTL k"), R::Int(n) if n > 4000 && n <= 5000));
    assert_eq!(c.cmd("GET k"), R::bulk("y"));
    assert_eq!(
        c.cmd("SETEX k 0 v"),
        err("ERR invalid expire time in 'setex' command")
    );
    assert_eq!(
        c.cmd("PSETEX k -1 v"),
        err("ERR invalid expire time in 'psetex' command")
    );
    assert_eq!(c.cmd("SETEX k x v"), err(NOT_INT));
    assert_eq!(
        c.cmd("SETEX k 1"),
        err("ERR wrong number of arguments for 'setex' command")
    );
}

#[test]
fn getex_getdel_getset() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("GETEX nokey EX 10"), R::Nil);
    c.cmd("SET k v");
    assert_eq!(c.cmd("GETEX k"), R::bulk("v"));
    assert_eq!(c.cmd("TTL k"), int(-1));
    assert_eq!(c.cmd("GETEX k EX 100"), R::bulk("v"));
    assert!(matches!(c.cmd("TTL k"), R::Int(n) if (99..=100).contains(&n)));
    assert_eq!(c.cmd("GETEX k PERSIST"), R::bulk("v"));
    assert_eq!(c.cmd("TTL k"), int(-1));
    assert_eq!(c.cmd("GETEX k PX 100000"), R::bulk("v"));
    assert!(matches!(c.cmd("PTTL k"), R::Int(n) if n > 90_000));
    assert_eq!(c.cmd("GETEX k PERSIST EX 1"), err("ERR syntax error"));
    assert_eq!(c.cmd("GETEX k EX 1 PERSIST"), err("ERR syntax error"));
    assert_eq!(c.cmd("GETEX k NX"), err("ERR syntax error"));
    assert_eq!(c.cmd("GETEX k KEEPTTL"), err("ERR syntax error"));
    assert_eq!(
        c.cmd("GETEX k EX 0"),
        err("ERR invalid expire time in 'getex' command")
    );
    assert_eq!(c.cmd("GETEX k EX x"), err(NOT_INT));
    // An absolute time in the past deletes the key after returning it.
    assert_eq!(c.cmd("GETEX k PXAT 1"), R::bulk("v"));
    assert_eq!(c.cmd("EXISTS k"), int(0));

    c.cmd("SET d 1");
    assert_eq!(c.cmd("GETDEL d"), R::bulk("1"));
    assert_eq!(c.cmd("GETDEL d"), R::Nil);
    assert_eq!(c.cmd("EXISTS d"), int(0));

    assert_eq!(c.cmd("GETSET g a"), R::Nil);
    c.cmd("EXPIRE g 100");
    assert_eq!(c.cmd("GETSET g b"), R::bulk("a"));
    assert_eq!(c.cmd("GET g"), R::bulk("b"));
    assert_eq!(c.cmd("TTL g"), int(-1), "GETSET drops the TTL");
}

#[test]
fn mget_mset_msetnx() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("MSET a 1 b 2 c 3"), R::ok());
    assert_eq!(
        c.cmd("MGET a b nokey c"),
        R::Arr(vec![R::bulk("1"), R::bulk("2"), R::Nil, R::bulk("3")])
    );
    assert_eq!(
        c.cmd("MSET a 1 b"),
        err("ERR wrong number of arguments for 'mset' command")
    );
    assert_eq!(
        c.cmd("MSETNX a"),
        err("ERR wrong number of arguments for 'msetnx' command")
    );
    assert_eq!(c.cmd("MSETNX x 1 a 9"), int(0));
    assert_eq!(c.cmd("EXISTS x"), int(0), "MSETNX is all or nothing");
    assert_eq!(c.cmd("MSETNX x 1 y 2"), int(1));
    assert_eq!(c.cmd("MGET x y"), R::Arr(vec![R::bulk("1"), R::bulk("2")]));
    c.cmd("EXPIRE a 100");
    c.cmd("MSET a 5");
    assert_eq!(c.cmd("TTL a"), int(-1), "MSET drops TTLs");
    // The same key twice: the last value wins.
    c.cmd("MSET z 1 z 2");
    assert_eq!(c.cmd("GET z"), R::bulk("2"));
}

#[test]
fn counters_with_overflow_and_type_errors() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("INCR n"), int(1));
    assert_eq!(c.cmd("INCRBY n 10"), int(11));
    assert_eq!(c.cmd("DECR n"), int(10));
    assert_eq!(c.cmd("DECRBY n 20"), int(-10));
    assert_eq!(c.cmd("DECRBY n -5"), int(-5));
    assert_eq!(c.cmd("GET n"), R::bulk("-5"));
    c.cmd("SET big 9223372036854775807");
    assert_eq!(
        c.cmd("INCR big"),
        err("ERR increment or decrement would overflow")
    );
    c.cmd("SET small -9223372036854775808");
    assert_eq!(
        c.cmd("DECR small"),
        err("ERR increment or decrement would overflow")
    );
    assert_eq!(
        c.cmd("DECRBY n -9223372036854775808"),
        err("ERR decrement would overflow")
    );
    assert_eq!(c.cmd("INCRBY n 9223372036854775808"), err(NOT_INT));
    assert_eq!(c.cmd("INCRBY n 1.5"), err(NOT_INT));
    for bad in ["abc", " 1", "1 ", "01", "+1", "1.0", ""] {
        c.cmd_args(&[b"SET", b"s", bad.as_bytes()]);
        assert_eq!(c.cmd("INCR s"), err(NOT_INT), "{bad:?}");
    }
    // INCR keeps the TTL.
    c.cmd("SET t 1 EX 100");
    assert_eq!(c.cmd("INCR t"), int(2));
    assert!(matches!(c.cmd("TTL t"), R::Int(n) if n > 90));
    assert_eq!(c.cmd("OBJECT ENCODING t"), R::bulk("int"));
}

#[test]
fn incrbyfloat_formats_like_redis() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("INCRBYFLOAT f 1"), R::bulk("1"));
    assert_eq!(c.cmd("INCRBYFLOAT f 0.25"), R::bulk("1.25"));
    assert_eq!(c.cmd("INCRBYFLOAT f -1.25"), R::bulk("0"));
    assert_eq!(c.cmd("INCRBYFLOAT g 0.1"), R::bulk("0.1"));
    assert_eq!(c.cmd("INCRBYFLOAT g 0.2"), R::bulk("0.3"));
    assert_eq!(c.cmd("INCRBYFLOAT h 5.0e3"), R::bulk("5000"));
    c.cmd("SET n 17179869184");
    assert_eq!(c.cmd("INCRBYFLOAT n 1.5"), R::bulk("17179869185.5"));
    assert_eq!(
        c.cmd("INCRBYFLOAT n +inf"),
        err("ERR increment would produce NaN or Infinity")
    );
    // Redis 7.0.15 on x86-64 reads and adds in `long double`, whose range goes far past
    // f64's: 1e400 is a valid increment there (a 401-character result).
    let R::Bulk(big) = c.cmd("INCRBYFLOAT n 1e400") else {
        panic!("INCRBYFLOAT n 1e400 did not return a bulk string");
    };
    let big = String::from_utf8_lossy(&big).into_owned();
    assert_eq!(big.len(), 401, "{big}");
    assert!(
        big.starts_with("1000000000000000000028188068394758651458"),
        "{big}"
    );
    assert!(big.ends_with("09734806343732497430221946880"), "{big}");
    assert_eq!(
        c.cmd("INCRBYFLOAT n 1e5000"),
        err("ERR value is not a valid float")
    );
    assert_eq!(
        c.cmd("INCRBYFLOAT n abc"),
        err("ERR value is not a valid float")
    );
    assert_eq!(
        c.cmd("INCRBYFLOAT n nan"),
        err("ERR value is not a valid float")
    );
    c.cmd_args(&[b"SET", b"sp", b" 1"]);
    assert_eq!(
        c.cmd("INCRBYFLOAT sp 1"),
        err("ERR value is not a valid float")
    );
    c.cmd("SET t 1 EX 100");
    assert_eq!(c.cmd("INCRBYFLOAT t 1.5"), R::bulk("2.5"));
    assert!(matches!(c.cmd("TTL t"), R::Int(n) if n > 90), "TTL kept");
}

#[test]
fn append_strlen_getrange_setrange() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd_args(&[b"APPEND", b"a", b""]), int(0));
    assert_eq!(
        c.cmd("EXISTS a"),
        int(1),
        "APPEND creates the key even when empty"
    );
    assert_eq!(c.cmd("APPEND a hello"), int(5));
    assert_eq!(c.cmd_args(&[b"APPEND", b"a", b"\0\r\n"]), int(8));
    assert_eq!(c.cmd("GET a"), R::Bulk(b"hello\0\r\n".to_vec()));
    assert_eq!(c.cmd("STRLEN a"), int(8));
    assert_eq!(c.cmd("STRLEN nokey"), int(0));

    c.cmd("SET r Hello World");
    c.cmd_args(&[b"SET", b"r", b"This is a string"]);
    assert_eq!(c.cmd("GETRANGE r 0 3"), R::bulk("This"));
    assert_eq!(c.cmd("GETRANGE r -3 -1"), R::bulk("ing"));
    assert_eq!(c.cmd("GETRANGE r 0 -1"), R::bulk("This is a string"));
    assert_eq!(c.cmd("GETRANGE r 10 100"), R::bulk("string"));
    assert_eq!(c.cmd("GETRANGE r -100 3"), R::bulk("This"));
    assert_eq!(c.cmd("GETRANGE r 5 2"), R::bulk(""));
    assert_eq!(c.cmd("GETRANGE r -1 -5"), R::bulk(""));
    assert_eq!(c.cmd("GETRANGE r 100 200"), R::bulk(""));
    assert_eq!(
        c.cmd("GETRANGE r -9223372036854775808 9223372036854775807"),
        R::bulk("This is a string")
    );
    assert_eq!(c.cmd("GETRANGE nokey 0 -1"), R::bulk(""));
    assert_eq!(c.cmd("GETRANGE r a 1"), err(NOT_INT));
    assert_eq!(c.cmd("SUBSTR r 0 3"), R::bulk("This"));

    assert_eq!(c.cmd("SETRANGE k 5 abc"), int(8));
    assert_eq!(c.cmd("GET k"), R::Bulk(b"\0\0\0\0\0abc".to_vec()));
    assert_eq!(c.cmd("SETRANGE k 0 XY"), int(8));
    assert_eq!(c.cmd("GET k"), R::Bulk(b"XY\0\0\0abc".to_vec()));
    assert_eq!(c.cmd_args(&[b"SETRANGE", b"nokey", b"10", b""]), int(0));
    assert_eq!(c.cmd("EXISTS nokey"), int(0));
    assert_eq!(c.cmd_args(&[b"SETRANGE", b"k", b"100", b""]), int(8));
    assert_eq!(c.cmd("SETRANGE k -1 x"), err("ERR offset is out of range"));
    assert_eq!(c.cmd("SETRANGE k x x"), err(NOT_INT));
    let too_long = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    assert_eq!(c.cmd("SETRANGE k 536870912 x"), err(too_long));
    assert_eq!(c.cmd("SETRANGE k 9223372036854775807 x"), err(too_long));
    assert_eq!(
        c.cmd("STRLEN k"),
        int(8),
        "refused SETRANGEs change nothing"
    );
}

#[test]
fn lazily_expired_string_reads_as_missing() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("SET k v PX 30");
    assert!(wait_until(Duration::from_secs(5), || c.cmd("GET k") == R::Nil));
    assert_eq!(c.cmd("SET k v2 XX"), R::Nil);
    assert_eq!(c.cmd("SETNX k v3"), int(1));
}

#[test]
fn string_commands_through_the_redis_crate() {
    let s = TestServer::start(&[]);
    let mut con = s.client().get_connection().expect("connect");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg(b"v\0\r\n")
        .query(&mut con)
        .unwrap();
    let v: Vec<u8> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, b"v\0\r\n");
    let n: i64 = redis::cmd("INCRBY")
        .arg("n")
        .arg(5)
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 5);
    let f: f64 = redis::cmd("INCRBYFLOAT")
        .arg("f")
        .arg(2.5)
        .query(&mut con)
        .unwrap();
    assert_eq!(f, 2.5);
    let _: () = redis::cmd("MSET")
        .arg("a")
        .arg(1)
        .arg("b")
        .arg(2)
        .query(&mut con)
        .unwrap();
    let vals: Vec<Option<String>> = redis::cmd("MGET")
        .arg("a")
        .arg("nokey")
        .arg("b")
        .query(&mut con)
        .unwrap();
    assert_eq!(vals, vec![Some("1".into()), None, Some("2".into())]);
    let r: redis::RedisResult<i64> = redis::cmd("INCR").arg("k").query(&mut con);
    let e = r.unwrap_err();
    assert!(e.to_string().contains("not an integer"), "{e}");
    let old: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .arg("GET")
        .query(&mut con)
        .unwrap();
    assert_eq!(old.as_deref(), Some("v\0\r\n"));
    let len: i64 = redis::cmd("APPEND")
        .arg("k")
        .arg("xyz")
        .query(&mut con)
        .unwrap();
    assert_eq!(len, 4);
    let sub: String = redis::cmd("GETRANGE")
        .arg("k")
        .arg(-3)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(sub, "xyz");
}

/// Needs the list family (RPUSH) to create a non-string key; the same checks run
/// in-process in `commands::strings` unit tests regardless.
#[test]
fn string_commands_on_a_list_answer_wrongtype() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    if let R::Err(e) = c.cmd("RPUSH l a") {
        assert!(e.starts_with("ERR unknown command"), "{e}");
        eprintln!("list family not present in this build; skipping");
        return;
    }
    for cmd in [
        "GET l",
        "SET l v GET",
        "GETEX l",
        "GETDEL l",
        "GETSET l v",
        "INCR l",
        "DECRBY l 1",
        "INCRBYFLOAT l 1",
        "APPEND l x",
        "STRLEN l",
        "GETRANGE l 0 1",
        "SETRANGE l 0 x",
    ] {
        assert_eq!(c.cmd(cmd), err(WRONGTYPE), "{cmd}");
    }
    assert_eq!(c.cmd("SETNX l v"), int(0));
    assert_eq!(c.cmd("MGET l"), R::Arr(vec![R::Nil]));
    assert_eq!(c.cmd("LLEN l"), int(1), "failed commands changed nothing");
    assert_eq!(c.cmd("SET l v"), R::ok(), "plain SET overwrites any type");
    assert_eq!(c.cmd("GET l"), R::bulk("v"));
}

/// Found by the mixed-family sequence (mixed_vs_redis.rs): INCRBYFLOAT reads its operands
/// with `strtold` (hexadecimal forms, the whole long-double range) and stores its result
/// without the integer encoding, as Redis 7.0.15 does.
#[test]
fn incrbyfloat_operands_and_result_encoding_match_redis() {
    let mut p = Pair::start();
    p.same_words("SET h 0x10");
    assert_eq!(p.same_words("INCRBYFLOAT h 1.43"), b("17.43"));
    assert_eq!(p.same_words("INCRBYFLOAT h 0x1p-2"), b("17.68"));
    assert_eq!(
        p.same_words("INCRBYFLOAT h 0x"),
        err("ERR value is not a valid float")
    );
    // An integral sum is stored as printed: `embstr`, not `int`, until rewritten.
    assert_eq!(p.same_words("INCRBYFLOAT n 5.0e3"), b("5000"));
    assert_eq!(p.same_words("OBJECT ENCODING n"), b("embstr"));
    p.same_words("COPY n n2");
    assert_eq!(p.same_words("OBJECT ENCODING n2"), b("embstr"));
    p.same_words("INCR n");
    assert_eq!(p.same_words("OBJECT ENCODING n"), b("int"));
    // Past f64's range: the long-double sum, digit for digit.
    p.same_words("INCRBYFLOAT big 1.7976931348623157e308");
    p.same_words("GET big");
    p.same_words("INCRBYFLOAT big 1e400");
    p.same_words("INCRBYFLOAT big 1e4932");
    p.same_words("GET big");
}

/// APPEND makes an existing string `raw` even when it was empty or nothing is appended
/// (found by mixed_vs_redis.rs); on a new key it stores the argument re-encoded.
#[test]
fn append_leaves_the_encoding_redis_does() {
    let mut p = Pair::start();
    p.same_words("SET e 1");
    p.same_words("APPEND e 2");
    p.same(&[b"SET", b"empty", b""]);
    p.same_words("APPEND empty 12");
    p.same_words("SET same 12");
    p.same(&[b"APPEND", b"same", b""]);
    p.same_words("APPEND fresh 12");
    for (key, want) in [
        ("e", "raw"),
        ("empty", "raw"),
        ("same", "raw"),
        ("fresh", "int"),
    ] {
        assert_eq!(
            p.same_words(&format!("OBJECT ENCODING {key}")),
            b(want),
            "{key}"
        );
    }
}
