//! Streams through RDB files and full syncs, against Debian's redis-server 7.0.15:
//! * a Redis-written RDB with streams (several listpack nodes, tombstones, trimmed,
//!   consumer groups with PELs and consumers, empty streams, TTL) loads in Tandem,
//!   digests the same, and Tandem's re-save passes `redis-check-rdb` and reloads in
//!   redis-server with identical XRANGE / XINFO STREAM FULL / DEBUG DIGEST output;
//! * a Tandem server started on such a dump answers TYPE / DBSIZE / DEBUG DIGEST;
//! * a Tandem replica of a Redis master receives the streams in the full sync.
//!
//! Skipped (with a message) when redis-server / redis-check-rdb are not installed.

mod common;

use common::{wait_until, Conn, RealRedis, TestServer, R};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tandem_server::db::Db;
use tandem_server::rdb;
use tandem_server::types::Value;

const REDIS: &str = "/usr/bin/redis-server";
const CHECK: &str = "/usr/bin/redis-check-rdb";
const WAIT: Duration = Duration::from_secs(30);

fn have_redis() -> bool {
    if Path::new(REDIS).exists() && Path::new(CHECK).exists() {
        true
    } else {
        eprintln!("skipping: {REDIS} / {CHECK} not installed");
        false
    }
}

fn ok(r: R) {
    assert!(
        matches!(r, R::Simple(_) | R::Int(_) | R::Bulk(_) | R::Arr(_)),
        "{r:?}"
    );
}

/// (db, key) of every stream `populate` creates.
const KEYS: &[(u32, &str)] = &[
    (0, "s1"),
    (0, "empty"),
    (0, "mk"),
    (0, "big"),
    (0, "ints"),
    (1, "ttl"),
];

/// Builds streams with real commands so the RDB is exactly what Redis writes.
fn populate(c: &mut Conn) {
    // ~300 entries over several 100-entry listpack nodes, mixed field sets.
    for i in 0..300u32 {
        let id = format!("{}-{}", 1000 + i / 2, i % 2);
        let q = if i % 5 == 0 {
            format!("XADD s1 {id} alt x{i}")
        } else {
            format!(
                "XADD s1 {id} name n{i} num {} long {}",
                i as i64 * 7 - 100,
                "y".repeat((i % 70) as usize + 1)
            )
        };
        assert_eq!(c.cmd(&q), R::bulk(&id), "{q}");
    }
    for id in ["1003-1", "1010-0", "1020-1", "1100-0", "1149-1"] {
        assert_eq!(c.cmd(&format!("XDEL s1 {id}")), R::Int(1));
    }
    assert_eq!(c.cmd("XTRIM s1 MAXLEN 270"), R::Int(25));
    assert_eq!(c.cmd("XGROUP CREATE s1 g1 0"), R::ok());
    assert_eq!(c.cmd("XGROUP CREATE s1 g2 $"), R::ok());
    assert_eq!(c.cmd("XGROUP CREATE s1 g3 1100-1 ENTRIESREAD 7"), R::ok());
    ok(c.cmd("XREADGROUP GROUP g1 alice COUNT 10 STREAMS s1 >"));
    ok(c.cmd("XREADGROUP GROUP g1 bob COUNT 5 STREAMS s1 >"));
    ok(c.cmd("XREADGROUP GROUP g3 alice COUNT 3 STREAMS s1 >"));
    // Acknowledge the first entry alice got (the first live one after trimming).
    let first = match c.cmd("XRANGE s1 - + COUNT 1") {
        R::Arr(v) => match &v[0] {
            R::Arr(e) => match &e[0] {
                R::Bulk(b) => String::from_utf8(b.clone()).unwrap(),
                o => panic!("{o:?}"),
            },
            o => panic!("{o:?}"),
        },
        o => panic!("{o:?}"),
    };
    assert_eq!(c.cmd(&format!("XACK s1 g1 {first}")), R::Int(1));
    assert_eq!(c.cmd("XGROUP CREATECONSUMER s1 g1 carol"), R::Int(1));
    // An empty stream (Redis keeps it) with a group, and one made by MKSTREAM.
    assert_eq!(c.cmd("XADD empty 5-1 a 1"), R::bulk("5-1"));
    assert_eq!(c.cmd("XDEL empty 5-1"), R::Int(1));
    assert_eq!(c.cmd("XGROUP CREATE empty eg $"), R::ok());
    assert_eq!(c.cmd("XGROUP CREATE mk g 0 MKSTREAM"), R::ok());
    // Values needing long listpack strings, and integer-encoded fields/values.
    let v = "z".repeat(5000);
    assert_eq!(c.cmd(&format!("XADD big 1-1 f {v} g 2")), R::bulk("1-1"));
    assert_eq!(
        c.cmd("XADD ints 7-7 1 -5 100000 9223372036854775807 -4097 x"),
        R::bulk("7-7")
    );
    assert_eq!(c.cmd("SET plain hello"), R::ok());
    assert_eq!(c.cmd("SELECT 1"), R::ok());
    ok(c.cmd("XADD ttl * a 1 b 2"));
    assert_eq!(c.cmd("PEXPIRE ttl 100000000"), R::Int(1));
    assert_eq!(c.cmd("SELECT 0"), R::ok());
}

/// Everything observable about the streams, to compare two servers.
fn snapshot(c: &mut Conn) -> Vec<(String, R)> {
    let mut out = Vec::new();
    for (db, k) in KEYS {
        assert_eq!(c.cmd(&format!("SELECT {db}")), R::ok());
        for q in [
            format!("TYPE {k}"),
            format!("XRANGE {k} - +"),
            format!("XINFO STREAM {k} FULL"),
            format!("DEBUG DIGEST-VALUE {k}"),
            format!("PEXPIRETIME {k}"),
        ] {
            let r = c.cmd(&q);
            assert!(!matches!(r, R::Err(_)), "{q}: {r:?}");
            out.push((format!("db{db} {q}"), r));
        }
    }
    assert_eq!(c.cmd("SELECT 0"), R::ok());
    match c.cmd("XRANGE s1 - +") {
        R::Arr(v) => assert_eq!(v.len(), 270),
        o => panic!("{o:?}"),
    }
    out.push(("DEBUG DIGEST".into(), c.cmd("DEBUG DIGEST")));
    out.push(("DBSIZE".into(), c.cmd("DBSIZE")));
    out
}

fn bulk_text(r: &R) -> String {
    match r {
        R::Bulk(b) => String::from_utf8_lossy(b).into(),
        R::Simple(s) => s.clone(),
        o => panic!("{o:?}"),
    }
}

fn load_file(path: &Path) -> Vec<Db> {
    let data = std::fs::read(path).expect("read rdb");
    let mut dbs: Vec<Db> = (0..16).map(|_| Db::new()).collect();
    rdb::load(
        &mut &data[..],
        &mut dbs,
        &rdb::LoadOptions {
            now_ms: tandem_server::server::now_ms(),
            drop_expired: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("loading {path:?}: {e}"));
    dbs
}

fn check_rdb(path: &Path) {
    let out = Command::new(CHECK)
        .arg(path)
        .output()
        .expect("redis-check-rdb");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "redis-check-rdb failed: {text}");
    assert!(text.contains("RDB looks OK"), "{text}");
}

#[test]
fn redis_stream_rdb_round_trips_through_tandem() {
    if !have_redis() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = RealRedis::start(dir.path(), "a.rdb", &[]);
    let mut ac = a.conn();
    populate(&mut ac);
    let want = snapshot(&mut ac);
    assert_eq!(ac.cmd("SAVE"), R::ok());
    drop(a);
    let dbs = load_file(&dir.path().join("a.rdb"));
    // Types, and per-key digests equal to Redis's DEBUG DIGEST-VALUE.
    for (db, k) in KEYS {
        let e = dbs[*db as usize]
            .entry(k.as_bytes())
            .unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(e.value.type_name(), "stream", "{k}");
        let theirs = want
            .iter()
            .find(|(q, _)| *q == format!("db{db} DEBUG DIGEST-VALUE {k}"))
            .map(|(_, r)| r.clone())
            .unwrap();
        let ours = tandem_server::digest::hex(&tandem_server::digest::key_digest(
            &dbs[*db as usize],
            k.as_bytes(),
        ));
        assert_eq!(R::Arr(vec![R::Simple(ours)]), theirs, "digest of {k}");
    }
    let full = want.iter().find(|(q, _)| q == "DEBUG DIGEST").unwrap();
    assert_eq!(
        tandem_server::digest::hex(&tandem_server::digest::dataset_digest(&dbs)),
        bulk_text(&full.1)
    );
    match &dbs[0].entry(b"s1").unwrap().value {
        Value::Stream(s) => {
            assert_eq!(s.length, 270);
            assert!(s.listpacks.len() >= 3, "{}", s.listpacks.len());
            assert_eq!(s.groups.len(), 3);
            let g1 = &s.groups[&bytes::Bytes::from_static(b"g1")];
            assert_eq!(g1.pel.len(), 14);
            assert_eq!(g1.consumers.len(), 3);
        }
        v => panic!("{v:?}"),
    }
    for compression in [true, false] {
        let out_dir = tempfile::tempdir().unwrap();
        let path = out_dir.path().join("t.rdb");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let opts = rdb::SaveOptions {
            compression,
            ..rdb::SaveOptions::default()
        };
        rdb::save(&dbs, &opts, &mut f).unwrap();
        drop(f);
        check_rdb(&path);
        let b = RealRedis::start(out_dir.path(), "t.rdb", &[]);
        let mut bc = b.conn();
        let got = snapshot(&mut bc);
        assert_eq!(got.len(), want.len());
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w, g, "after Tandem's re-save (compression {compression})");
        }
        // Tandem reads its own file back to the same values.
        let again = load_file(&path);
        for (db, k) in KEYS {
            let x = &dbs[*db as usize].entry(k.as_bytes()).unwrap().value;
            let y = &again[*db as usize].entry(k.as_bytes()).unwrap().value;
            assert_eq!(format!("{x:?}"), format!("{y:?}"), "{k}");
        }
    }
}

#[test]
fn tandem_starts_on_a_redis_dump_with_streams() {
    if !have_redis() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let mut ac = a.conn();
    populate(&mut ac);
    let digest = ac.cmd("DEBUG DIGEST");
    assert!(matches!(digest, R::Simple(_)), "{digest:?}");
    let s1_digest = ac.cmd("DEBUG DIGEST-VALUE s1");
    assert_eq!(ac.cmd("DBSIZE"), R::Int(6));
    assert_eq!(ac.cmd("SAVE"), R::ok());
    drop(a);
    let t = TestServer::start_in(
        dir,
        &["--dbfilename", "dump.rdb", "--enable-debug-command", "yes"],
    );
    let mut c = t.conn();
    assert_eq!(c.cmd("DBSIZE"), R::Int(6), "{}", t.stdout());
    assert_eq!(c.cmd("TYPE s1"), R::Simple("stream".into()));
    assert_eq!(c.cmd("TYPE empty"), R::Simple("stream".into()));
    assert_eq!(c.cmd("TYPE plain"), R::Simple("string".into()));
    assert_eq!(c.cmd("OBJECT ENCODING s1"), R::bulk("stream"));
    assert_eq!(c.cmd("EXISTS mk"), R::Int(1));
    assert_eq!(c.cmd("DEBUG DIGEST-VALUE s1"), s1_digest);
    assert_eq!(c.cmd("DEBUG DIGEST"), digest);
    // Keyspace commands move stream values untouched; DEBUG RELOAD round-trips them.
    assert_eq!(c.cmd("RENAME s1 s1b"), R::ok());
    assert_eq!(c.cmd("TYPE s1b"), R::Simple("stream".into()));
    assert_eq!(c.cmd("DEBUG DIGEST-VALUE s1b"), s1_digest);
    assert_eq!(c.cmd("COPY s1b s1"), R::Int(1));
    assert_eq!(c.cmd("DEBUG DIGEST-VALUE s1"), s1_digest);
    assert_eq!(c.cmd("DEL s1b"), R::Int(1));
    assert_eq!(c.cmd("DEBUG RELOAD"), R::ok());
    assert_eq!(c.cmd("DEBUG DIGEST"), digest);
    // Commands of other types refuse a stream.
    assert!(c.cmd("GET s1").err_text().starts_with("WRONGTYPE"));
    assert!(c.cmd("LPUSH s1 x").err_text().starts_with("WRONGTYPE"));
    // Tandem's own SAVE of that data is a file Redis accepts.
    assert_eq!(c.cmd("SAVE"), R::ok());
    check_rdb(&t.dir.path().join("dump.rdb"));
}

#[test]
fn tandem_replica_of_a_redis_master_gets_streams() {
    if !have_redis() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = RealRedis::start(dir.path(), "m.rdb", &["--repl-diskless-sync-delay", "0"]);
    let mut mc = m.conn();
    populate(&mut mc);
    let digest = mc.cmd("DEBUG DIGEST");
    assert!(matches!(digest, R::Simple(_)), "{digest:?}");
    let target = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start(&["--replicaof", &target, "--enable-debug-command", "yes"]);
    let mut rc = r.conn();
    assert!(
        wait_until(WAIT, || rc.cmd("DEBUG DIGEST") == digest),
        "replica never matched the master; tandem log:\n{}",
        r.stdout()
    );
    assert_eq!(rc.cmd("TYPE s1"), R::Simple("stream".into()));
    assert_eq!(rc.cmd("DBSIZE"), R::Int(6));
    assert_eq!(
        rc.cmd("DEBUG DIGEST-VALUE s1"),
        mc.cmd("DEBUG DIGEST-VALUE s1")
    );
}

#[test]
fn redis_replica_of_a_tandem_master_gets_streams() {
    if !have_redis() {
        return;
    }
    // Tandem starts on a Redis-written dump with streams, then serves a full sync.
    let dir = tempfile::tempdir().unwrap();
    let a = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let mut ac = a.conn();
    populate(&mut ac);
    let want = snapshot(&mut ac);
    assert_eq!(ac.cmd("SAVE"), R::ok());
    drop(a);
    let t = TestServer::start_in(
        dir,
        &["--dbfilename", "dump.rdb", "--enable-debug-command", "yes"],
    );
    let rdir = tempfile::tempdir().unwrap();
    let r = RealRedis::start(rdir.path(), "r.rdb", &[]);
    let mut rc = r.conn();
    assert_eq!(rc.cmd(&format!("REPLICAOF 127.0.0.1 {}", t.port)), R::ok());
    let digest = &want.iter().find(|(q, _)| q == "DEBUG DIGEST").unwrap().1;
    assert!(
        wait_until(WAIT, || rc.cmd("DEBUG DIGEST") == *digest),
        "redis replica never matched; tandem log:\n{}",
        t.stdout()
    );
    let got = snapshot(&mut rc);
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w, g, "on the redis replica of tandem");
    }
}
