//! DEBUG subcommands that Redis 7.0's own test suite relies on: PROTOCOL (byte for
//! byte against redis-server 7.0.15, RESP2 and RESP3), LOADAOF and RELOAD's options
//! (MERGE, NOFLUSH, NOSAVE; their library side is in functions.rs).

mod common;
use common::*;
use std::io::Read;
use std::time::Duration;

/// Sends `line` and returns every byte that arrives until the connection is quiet
/// (a RESP3 push is followed by the reply proper, so one `read` is not enough).
fn raw_reply(c: &mut Conn, line: &str) -> Vec<u8> {
    let parts: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
    c.send(&parts);
    let s = c.stream.get_mut();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    got
}

const TYPES: &[&str] = &[
    "string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib", "push",
    "verbatim", "true", "false", "STRING", "nope",
];

#[test]
fn debug_protocol_matches_redis_in_resp2_and_resp3() {
    let mut p = Pair::start_with(&["--enable-debug-command", "yes"]);
    for proto in ["2", "3"] {
        p.a.cmd(&format!("HELLO {proto}"));
        p.b.cmd(&format!("HELLO {proto}"));
        for t in TYPES {
            let line = format!("DEBUG PROTOCOL {t}");
            let (ours, theirs) = (raw_reply(&mut p.a, &line), raw_reply(&mut p.b, &line));
            assert!(!theirs.is_empty(), "no reply from Redis to {line}");
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{line} in RESP{proto}"
            );
        }
        for line in ["DEBUG PROTOCOL", "DEBUG PROTOCOL string extra"] {
            p.same_words(line);
        }
    }
}

#[test]
fn debug_loadaof_reloads_the_dataset_from_the_aof() {
    let s = TestServer::start(&["--enable-debug-command", "yes", "--appendonly", "yes"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET a 1"), R::ok());
    assert_eq!(c.cmd("SET t v EX 100"), R::ok());
    assert_eq!(c.cmd("RPUSH l x y z"), R::Int(3));
    // Moved into the base file; later writes go to the incr file.
    assert_eq!(
        c.cmd("BGREWRITEAOF"),
        R::Simple("Background append only file rewriting started".into())
    );
    assert!(wait_until(Duration::from_secs(10), || info_field(
        &mut c,
        "persistence",
        "aof_rewrite_in_progress"
    )
    .as_deref()
        == Some("0")));
    assert_eq!(c.cmd("SET b 2"), R::ok());
    assert_eq!(c.cmd("SELECT 3"), R::ok());
    assert_eq!(c.cmd("SET other db"), R::ok());
    assert_eq!(c.cmd("SELECT 0"), R::ok());
    let digest = c.cmd("DEBUG DIGEST");
    // A key that exists only in memory (not in the AOF) must disappear on reload.
    assert_eq!(c.cmd("DEBUG POPULATE 5 only-in-memory"), R::ok());
    assert_eq!(c.cmd("DEBUG LOADAOF"), R::ok());
    assert_eq!(c.cmd("DEBUG DIGEST"), digest);
    assert_eq!(c.cmd("GET b"), R::bulk("2"));
    assert!(matches!(c.cmd("TTL t"), R::Int(n) if (90..=100).contains(&n)));
    assert_eq!(c.cmd("EXISTS only-in-memory:0"), R::Int(0));
    assert_eq!(c.cmd("SELECT 3"), R::ok());
    assert_eq!(c.cmd("GET other"), R::bulk("db"));
    // Reloading replays, it does not log again: a second reload finds the same data.
    assert_eq!(c.cmd("DEBUG LOADAOF"), R::ok());
    assert_eq!(c.cmd("DEBUG DIGEST"), digest);
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_changes_since_last_save").as_deref(),
        Some("0")
    );
}

#[test]
fn debug_loadaof_keeps_functions_and_drops_flushed_ones() {
    let s = TestServer::start(&["--enable-debug-command", "yes", "--appendonly", "yes"]);
    let mut c = s.conn();
    let lib = b"#!lua name=mylib\nredis.register_function('f', function() return 7 end)";
    assert_eq!(c.cmd_args(&[b"FUNCTION", b"LOAD", lib]), R::bulk("mylib"));
    assert_eq!(c.cmd("DEBUG LOADAOF"), R::ok());
    assert_eq!(c.cmd("FCALL f 0"), R::Int(7));
    assert_eq!(c.cmd("FUNCTION FLUSH"), R::ok());
    assert_eq!(c.cmd("DEBUG LOADAOF"), R::ok());
    assert!(matches!(c.cmd("FCALL f 0"), R::Err(_)));
}

#[test]
fn debug_loadaof_without_aof_is_refused_and_keeps_the_data() {
    // Redis 7.0 exits the process here (no AOF to load); Tandem refuses instead.
    let s = TestServer::start(&["--enable-debug-command", "yes"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET k v"), R::ok());
    assert!(matches!(c.cmd("DEBUG LOADAOF"), R::Err(e) if e.starts_with("ERR ")));
    assert_eq!(c.cmd("GET k"), R::bulk("v"));
}

#[test]
fn debug_reload_options_keep_merge_and_replace_keys_as_redis() {
    // No save points on either side (FLUSHALL would save the empty dataset).
    let mut p = Pair::start_with(&["--enable-debug-command", "yes", "--save", ""]);
    for line in [
        "SET k file",
        "EXPIREAT k 4000000000",
        "SET gone x",
        "SELECT 9",
        "SET nine file",
        "SELECT 0",
        "DEBUG RELOAD",
        // Options are all checked before anything is done: nothing is saved here.
        "SET unsaved 1",
        "DEBUG RELOAD FOO",
        "DEBUG RELOAD merge NoSave bar",
        // The live dataset changes after the save.
        "SET k live",
        "SET only_live 1",
        "DEL gone",
        // NOFLUSH MERGE: the file's keys come back, replacing live ones (TTL included).
        "DEBUG RELOAD NOSAVE NOFLUSH MERGE",
        "GET k",
        "EXPIRETIME k",
        "GET gone",
        "GET only_live",
        "GET unsaved",
        "DBSIZE",
        "SELECT 9",
        "GET nine",
        "SELECT 0",
        "DEBUG DIGEST",
        // NOFLUSH alone with no key in common adds the file's keys.
        "FLUSHALL",
        "SET fresh 1",
        "DEBUG RELOAD NOSAVE NOFLUSH",
        "DBSIZE",
        "DEBUG DIGEST",
        // NOSAVE alone: the live dataset is replaced by the file.
        "DEBUG RELOAD nosave",
        "GET fresh",
        "DBSIZE",
        "DEBUG DIGEST",
    ] {
        p.same_words(line);
    }
}

#[test]
fn debug_reload_nosave_without_a_file_empties_unless_noflush_as_redis() {
    let ours = TestServer::start(&["--enable-debug-command", "yes"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let lib = b"#!lua name=lib\nredis.register_function('f', function() return 1 end)";
    for c in [&mut ours.conn(), &mut theirs.conn()] {
        assert_eq!(c.cmd("SET k v"), R::ok());
        assert_eq!(c.cmd_args(&[b"FUNCTION", b"LOAD", lib]), R::bulk("lib"));
        // No file on disk: the load fails; NOFLUSH keeps the data, without it the
        // dataset, libraries included, was emptied before the load was tried.
        let failed = err("ERR Error trying to load the RDB dump");
        assert_eq!(c.cmd("DEBUG RELOAD NOSAVE NOFLUSH"), failed);
        assert_eq!(c.cmd("DBSIZE"), R::Int(1));
        assert_eq!(c.cmd("DEBUG RELOAD NOSAVE"), failed);
        assert_eq!(c.cmd("DBSIZE"), R::Int(0));
        assert_eq!(c.cmd("FUNCTION LIST"), R::Arr(vec![]));
    }
}

#[test]
fn debug_reload_noflush_with_a_live_key_is_refused_and_keeps_the_data() {
    // Redis 7.0 stops the process on a duplicated key here; Tandem refuses the reload
    // before adding any key.
    let s = TestServer::start(&["--enable-debug-command", "yes"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET k 1"), R::ok());
    assert_eq!(c.cmd("SET a 1"), R::ok());
    assert_eq!(c.cmd("DEBUG RELOAD"), R::ok());
    assert_eq!(c.cmd("SET k 2"), R::ok());
    assert_eq!(c.cmd("DEL a"), R::Int(1));
    assert_eq!(
        c.cmd("DEBUG RELOAD NOSAVE NOFLUSH"),
        err("ERR Error trying to load the RDB dump")
    );
    assert_eq!(c.cmd("GET k"), R::bulk("2"));
    assert_eq!(c.cmd("EXISTS a"), R::Int(0));
    assert!(s.stdout().contains("RDB has duplicated key 'k' in DB 0"));
    // Without the conflict the same reload goes through.
    assert_eq!(c.cmd("DEL k"), R::Int(1));
    assert_eq!(c.cmd("DEBUG RELOAD NOSAVE NOFLUSH"), R::ok());
    assert_eq!(c.cmd("MGET k a"), arr(&["1", "1"]));
}
