//! Golden interop tests against the real Redis 7.0.15 (Debian package):
//! * RDBs written by redis-server load in Tandem's reader with identical data;
//! * RDBs written by Tandem pass `redis-check-rdb` and load in redis-server with
//!   identical data.
//!
//! Skipped (with a message) when /usr/bin/redis-server is not installed.

mod common;

use bytes::Bytes;
use common::{wait_until, Conn, RealRedis, R};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tandem_server::db::Db;
use tandem_server::rdb;
use tandem_server::types::zset::Limits;
use tandem_server::types::{HashMapB, Set, Value, ZSet};

const REDIS: &str = "/usr/bin/redis-server";
const CHECK: &str = "/usr/bin/redis-check-rdb";
const FAR: i64 = 4_102_444_800_000; // 2100-01-01

fn have_redis() -> bool {
    if Path::new(REDIS).exists() && Path::new(CHECK).exists() {
        true
    } else {
        eprintln!("skipping: {REDIS} / {CHECK} not installed");
        false
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The data set: every type in compact and plain sizes, integers, binary, TTLs, 3 dbs.
fn dataset() -> Vec<Db> {
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    let d = &mut dbs[0];
    d.set(b("str"), Value::Str(b("hello world").into()), 0);
    for (k, v) in [
        ("i0", "0"),
        ("i8", "-100"),
        ("i16", "30000"),
        ("i32", "-2147483648"),
        ("i64", "9223372036854775807"),
        ("lead0", "0123"),
        ("plus", "+5"),
        ("float", "3.14"),
    ] {
        d.set(b(k), Value::Str(b(v).into()), 0);
    }
    d.set(b("bin"), Value::Str(b"\x00a\r\nb\x00\xff\xfe".into()), 0);
    d.set(
        b("long"),
        Value::Str(Bytes::from("abcdefgh".repeat(500)).into()),
        0,
    );
    let noise: Vec<u8> = (0..3000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    d.set(b("noise"), Value::Str(Bytes::from(noise).into()), 0);
    d.set(b("42"), Value::Str(b("integer key").into()), 0);
    d.set_with_expire(b("ttl"), Value::Str(b("v").into()), Some(FAR + 1234), 0);
    d.set(
        b("lsmall"),
        Value::List(Box::new(
            ["a", "1", "-7", "b\r\n\0"].iter().map(|s| b(s)).collect(),
        )),
        0,
    );
    d.set(
        b("lbig"),
        Value::List(Box::new(
            (0..3000).map(|i| b(&format!("item:{i}"))).collect(),
        )),
        0,
    );
    let mut l: VecDeque<Bytes> = VecDeque::new();
    l.push_back(Bytes::from(vec![b'x'; 10_000]));
    l.push_back(b("12"));
    l.push_back(Bytes::from(vec![b'y'; 70_000]));
    d.set(b("lhugeelems"), Value::List(Box::new(l.into())), 0);
    let mut h = HashMapB::default();
    h.insert(b("name"), b("tandem"));
    h.insert(b("n"), b("-99"));
    h.insert(b("bin\0"), Bytes::from_static(b"\r\n"));
    d.set_with_expire(b("hsmall"), Value::Hash(Box::new(h.into())), Some(FAR), 0);
    let mut h = HashMapB::default();
    for i in 0..600 {
        h.insert(b(&format!("f{i}")), b(&format!("{}", i * 3)));
    }
    d.set(b("hbig"), Value::Hash(Box::new(h.into())), 0);
    let mut h = HashMapB::default();
    h.insert(b("k"), Bytes::from(vec![b'v'; 65]));
    d.set(b("hlongval"), Value::Hash(Box::new(h.into())), 0);
    let s: Set = ["1", "-2", "300000", "-9000000000", "7"]
        .iter()
        .map(|x| b(x))
        .collect();
    d.set(b("sint"), Value::Set(Box::new(s)), 0);
    let s: Set = ["x", "y", "1"].iter().map(|x| b(x)).collect();
    d.set(b("sstr"), Value::Set(Box::new(s)), 0);
    let s: Set = (0..600).map(|i| b(&(i * 11).to_string())).collect();
    d.set(b("sbigint"), Value::Set(Box::new(s)), 0);
    let s: Set = (0..600).map(|i| b(&format!("m{i}"))).collect();
    d.set(b("sbig"), Value::Set(Box::new(s)), 0);
    let mut z = ZSet::new();
    for (m, s) in [
        ("a", 1.0),
        ("b", 2.5),
        ("c", -3.0),
        ("d", 1e100),
        ("e", 0.1),
    ] {
        z.insert(b(m), s, Limits::ZSET);
    }
    z.insert(b("inf"), f64::INFINITY, Limits::ZSET);
    z.insert(b("-inf"), f64::NEG_INFINITY, Limits::ZSET);
    d.set(b("zsmall"), Value::ZSet(Box::new(z)), 0);
    let mut z = ZSet::new();
    for i in 0..400 {
        z.insert(
            b(&format!("member{i}")),
            i as f64 / 7.0 - 20.0,
            Limits::ZSET,
        );
    }
    d.set(b("zbig"), Value::ZSet(Box::new(z)), 0);
    let mut z = ZSet::new();
    z.insert(Bytes::from(vec![b'm'; 100]), 5.0, Limits::ZSET);
    d.set(b("zlongmember"), Value::ZSet(Box::new(z)), 0);
    dbs[1].set(b("db1key"), Value::Str(b("one").into()), 0);
    dbs[1].set_with_expire(b("db1ttl"), Value::Str(b("t").into()), Some(FAR + 99), 0);
    dbs[9].set(b("db9"), Value::List(Box::new(vec![b("x")].into())), 0);
    dbs
}

/// Writes `dbs` into a running Redis with ordinary commands.
fn populate(c: &mut Conn, dbs: &[Db]) {
    for (i, db) in dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        assert_eq!(c.cmd(&format!("SELECT {i}")), R::ok());
        for (k, e) in db.iter() {
            let k: &[u8] = k;
            match &e.value {
                Value::Str(s) => assert_eq!(c.cmd_args(&[b"SET", k, s]), R::ok()),
                Value::List(l) => {
                    for chunk in l.iter().collect::<Vec<_>>().chunks(500) {
                        let mut a: Vec<&[u8]> = vec![b"RPUSH", k];
                        a.extend(chunk.iter().map(|x| &x[..]));
                        assert!(matches!(c.cmd_args(&a), R::Int(_)));
                    }
                }
                Value::Hash(h) => {
                    let mut a: Vec<&[u8]> = vec![b"HSET", k];
                    for (f, v) in h.iter() {
                        a.push(f);
                        a.push(v);
                    }
                    assert!(matches!(c.cmd_args(&a), R::Int(_)));
                }
                Value::Set(s) => {
                    let members: Vec<Bytes> = s.iter().map(|m| m.to_bytes()).collect();
                    let mut a: Vec<&[u8]> = vec![b"SADD", k];
                    a.extend(members.iter().map(|x| &x[..]));
                    assert!(matches!(c.cmd_args(&a), R::Int(_)));
                }
                Value::ZSet(z) => {
                    let scores: Vec<(String, Bytes)> = z
                        .iter()
                        .map(|(m, s)| {
                            (
                                tandem_server::resp::format_double(s),
                                Bytes::copy_from_slice(m),
                            )
                        })
                        .collect();
                    let mut a: Vec<&[u8]> = vec![b"ZADD", k];
                    for (s, m) in &scores {
                        a.push(s.as_bytes());
                        a.push(m);
                    }
                    assert!(matches!(c.cmd_args(&a), R::Int(_)), "zadd {k:?}");
                }
                // Streams have their own golden tests (rdb_streams.rs).
                Value::Stream(_) => panic!("populate: streams are not in this data set"),
            }
            if let Some(at) = db.expire_of(k) {
                let at = at.to_string();
                assert_eq!(c.cmd_args(&[b"PEXPIREAT", k, at.as_bytes()]), R::Int(1));
            }
        }
    }
}

/// A comparable rendering of a value.
fn canon(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("string {s:?}"),
        Value::List(l) => format!("list {l:?}"),
        Value::Hash(h) => format!("hash {:?}", h.iter().collect::<BTreeMap<_, _>>()),
        Value::Set(s) => {
            let mut v: Vec<_> = s.iter().map(|m| m.to_bytes()).collect();
            v.sort();
            format!("set {v:?}")
        }
        Value::ZSet(z) => format!(
            "zset {:?}",
            z.iter().map(|(m, s)| (m, s.to_bits())).collect::<Vec<_>>()
        ),
        Value::Stream(st) => format!("stream {st:?}"),
    }
}

fn assert_same(want: &[Db], got: &[Db]) {
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(w.len(), g.len(), "db {i}: key count");
        for (k, e) in w.iter() {
            let f = g
                .entry(k)
                .unwrap_or_else(|| panic!("db {i}: key {k:?} missing"));
            assert_eq!(canon(e.value), canon(f.value), "db {i}: key {k:?}");
            assert_eq!(w.expire_of(k), g.expire_of(k), "db {i}: ttl of {k:?}");
        }
    }
}

/// Reads the whole dataset back from a running Redis with ordinary commands.
fn read_back(c: &mut Conn, like: &[Db]) -> Vec<Db> {
    let mut out: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    for i in 0..16 {
        assert_eq!(c.cmd(&format!("SELECT {i}")), R::ok());
        let n = match c.cmd("DBSIZE") {
            R::Int(n) => n as usize,
            r => panic!("{r:?}"),
        };
        assert_eq!(n, like[i].len(), "db {i} DBSIZE");
        for k in like[i].keys() {
            let k: &[u8] = k;
            let ty = match c.cmd_args(&[b"TYPE", k]) {
                R::Simple(s) => s,
                r => panic!("{r:?}"),
            };
            let bulks = |r: R| -> Vec<Bytes> {
                match r {
                    R::Arr(v) => v
                        .into_iter()
                        .map(|x| match x {
                            R::Bulk(b) => Bytes::from(b),
                            r => panic!("{r:?}"),
                        })
                        .collect(),
                    r => panic!("{r:?}"),
                }
            };
            let v = match ty.as_str() {
                "string" => match c.cmd_args(&[b"GET", k]) {
                    R::Bulk(v) => Value::Str(Bytes::from(v).into()),
                    r => panic!("{r:?}"),
                },
                "list" => Value::List(Box::new(
                    bulks(c.cmd_args(&[b"LRANGE", k, b"0", b"-1"])).into(),
                )),
                "hash" => {
                    let v = bulks(c.cmd_args(&[b"HGETALL", k]));
                    let mut h = HashMapB::default();
                    for p in v.chunks(2) {
                        h.insert(p[0].clone(), p[1].clone());
                    }
                    Value::Hash(Box::new(h.into()))
                }
                "set" => Value::Set(Box::new(
                    bulks(c.cmd_args(&[b"SMEMBERS", k])).into_iter().collect(),
                )),
                "zset" => {
                    let v = bulks(c.cmd_args(&[b"ZRANGE", k, b"0", b"-1", b"WITHSCORES"]));
                    let mut z = ZSet::new();
                    for p in v.chunks(2) {
                        let s = std::str::from_utf8(&p[1]).unwrap();
                        let s = match s {
                            "inf" => f64::INFINITY,
                            "-inf" => f64::NEG_INFINITY,
                            s => s.parse().unwrap(),
                        };
                        z.insert(p[0].clone(), s, Limits::ZSET);
                    }
                    Value::ZSet(Box::new(z))
                }
                t => panic!("db {i} key {k:?}: type {t}"),
            };
            let exp = match c.cmd_args(&[b"PEXPIRETIME", k]) {
                R::Int(-1) => None,
                R::Int(t) => Some(t),
                r => panic!("{r:?}"),
            };
            out[i].set_with_expire(Bytes::copy_from_slice(k), v, exp, 0);
        }
    }
    out
}

fn load_file(path: &Path) -> (Vec<Db>, rdb::LoadInfo) {
    let data = std::fs::read(path).expect("read rdb");
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    let info = rdb::load(
        &mut &data[..],
        &mut dbs,
        &rdb::LoadOptions {
            now_ms: tandem_server::server::now_ms(),
            drop_expired: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("loading {path:?}: {e}"));
    (dbs, info)
}

#[test]
fn redis_written_rdb_loads_in_tandem() {
    if !have_redis() {
        return;
    }
    let want = dataset();
    for compression in ["yes", "no"] {
        let dir = tempfile::tempdir().unwrap();
        let r = RealRedis::start(dir.path(), "x.rdb", &[]);
        let mut c = Conn::connect(r.port);
        assert_eq!(
            c.cmd(&format!("CONFIG SET rdbcompression {compression}")),
            R::ok()
        );
        populate(&mut c, &want);
        // Both encodings are present in the file Redis writes.
        assert_eq!(c.cmd("SELECT 0"), R::ok());
        for (k, enc) in [
            ("hsmall", "listpack"),
            ("hbig", "hashtable"),
            ("sint", "intset"),
            ("sbig", "hashtable"),
            ("zsmall", "listpack"),
            ("zbig", "skiplist"),
            ("lbig", "quicklist"),
        ] {
            assert_eq!(c.cmd(&format!("OBJECT ENCODING {k}")), R::bulk(enc), "{k}");
        }
        // A key that is already expired must not be resurrected.
        let gone_at = tandem_server::server::now_ms() + 300;
        assert_eq!(c.cmd("SET gone x PX 300"), R::ok());
        assert_eq!(c.cmd("SAVE"), R::ok());
        // Load only once that key's expiry has passed.
        assert!(wait_until(Duration::from_secs(5), || {
            tandem_server::server::now_ms() > gone_at + 5
        }));
        let (got, info) = load_file(&dir.path().join("x.rdb"));
        assert_same(&want, &got);
        assert_eq!(info.version, 10);
        assert_eq!(info.redis_ver.as_deref(), Some("7.0.15"));
        assert!(!info.aof_base);
        assert!(info.ctime.is_some());
        assert!(got[0].entry(b"gone").is_none());
        // A master that never had a replica has no backlog, so no repl-* aux fields.
        assert!(info.repl.is_none(), "{info:?}");
        drop(r);
    }
}

#[test]
fn tandem_written_rdb_passes_check_and_loads_in_redis() {
    if !have_redis() {
        return;
    }
    let want = dataset();
    for compression in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.rdb");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let opts = rdb::SaveOptions {
            compression,
            checksum: true,
            repl: Some(rdb::ReplInfo {
                replid: "0123456789abcdef0123456789abcdef01234567".into(),
                offset: 1000,
                stream_db: 0,
            }),
            aof_base: false,
            functions: Vec::new(),
            key_delay: 0,
            commands: false,
            timestamp: false,
        };
        rdb::save(&want, &opts, &mut f).unwrap();
        drop(f);
        let out = Command::new(CHECK)
            .arg(&path)
            .output()
            .expect("redis-check-rdb");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "redis-check-rdb failed: {text}");
        assert!(text.contains("RDB looks OK"), "{text}");
        let r = RealRedis::start(dir.path(), "t.rdb", &[]);
        let mut c = Conn::connect(r.port);
        let got = read_back(&mut c, &want);
        assert_same(&want, &got);
        // Redis picked the same compact encodings when loading ours.
        assert_eq!(c.cmd("SELECT 0"), R::ok());
        assert_eq!(c.cmd("OBJECT ENCODING hsmall"), R::bulk("listpack"));
        assert_eq!(c.cmd("OBJECT ENCODING sint"), R::bulk("intset"));
        assert_eq!(c.cmd("OBJECT ENCODING zsmall"), R::bulk("listpack"));
        // And Tandem reads back its own file identically.
        let (again, _) = load_file(&path);
        assert_same(&want, &again);
    }
}
