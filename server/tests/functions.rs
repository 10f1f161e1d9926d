//! Redis 7.0 Functions (FUNCTION *, FCALL, FCALL_RO), side by side with Debian's
//! redis-server 7.0.15: replies and errors, DUMP/RESTORE payloads and RDB files
//! exchanged both ways, replication to a Tandem and a Redis replica, restarts from
//! the RDB and the AOF, and FUNCTION KILL of a busy function.
mod common;
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// A library with both registration forms, flags and a description.
const LIB: &str = "#!lua name=mylib
local function setter(keys, args)
  redis.call('set', keys[1], args[1])
  return redis.call('incr', keys[2])
end
redis.register_function('setter', setter)
redis.register_function{function_name='counter', callback=function(keys, args) return #keys + #args end, flags={'no-writes'}, description='counts'}
redis.register_function{function_name='reader', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes', 'allow-stale'}}";

const LIB2: &str = "#!lua name=other
redis.register_function('push', function(keys, args) redis.call('rpush', keys[1], unpack(args)) return redis.call('llen', keys[1]) end)";

/// FUNCTION LIST with libraries and functions in name order (Redis lists them in
/// hash order), so replies compare.
fn canon(r: R) -> R {
    let R::Arr(libs) = r else { return r };
    let mut libs: Vec<R> = libs
        .into_iter()
        .map(|lib| {
            if let R::Map(kv) = lib {
                return R::Map(
                    kv.into_iter()
                        .map(|(k, v)| match v {
                            R::Arr(mut fs) => {
                                fs.sort_by_key(|f| format!("{f:?}"));
                                (k, R::Arr(fs))
                            }
                            v => (k, v),
                        })
                        .collect(),
                );
            }
            let R::Arr(kv) = lib else { return lib };
            let kv = kv
                .chunks(2)
                .flat_map(|p| {
                    let v = match (&p[0], p.get(1).cloned()) {
                        (R::Bulk(k), Some(R::Arr(mut fs))) if k == b"functions" => {
                            fs.sort_by_key(|f| format!("{f:?}"));
                            R::Arr(fs)
                        }
                        (_, Some(v)) => v,
                        (_, None) => R::Nil,
                    };
                    [p[0].clone(), v]
                })
                .collect();
            R::Arr(kv)
        })
        .collect();
    libs.sort_by_key(|l| format!("{l:?}"));
    R::Arr(libs)
}

fn list(c: &mut Conn) -> R {
    canon(c.cmd_args(&[b"FUNCTION", b"LIST", b"WITHCODE"]))
}

fn load(c: &mut Conn, code: &str) -> R {
    c.cmd_args(&[b"FUNCTION", b"LOAD", code.as_bytes()])
}

#[test]
fn function_commands_and_fcall_answer_as_redis() {
    let mut p = Pair::start();
    p.same(&[b"FUNCTION", b"LOAD", LIB.as_bytes()]);
    p.same(&[b"FUNCTION", b"LOAD", LIB2.as_bytes()]);
    assert_eq!(list(&mut p.a), list(&mut p.b));
    assert_eq!(
        canon(p.a.cmd("FUNCTION LIST LIBRARYNAME my*")),
        canon(p.b.cmd("FUNCTION LIST LIBRARYNAME my*"))
    );
    for line in [
        "FCALL setter 2 k n v",
        "FCALL setter 2 k n v",
        "GET k",
        "FCALL counter 2 a b c",
        "FCALL_RO counter 0 x y",
        "FCALL_RO reader 1 k",
        "FCALL_RO setter 2 k n v",
        "FCALL push 1 l a b c",
        "FCALL nosuch 0",
        "FCALL setter x",
        "FCALL setter -1",
        "FCALL setter 5 a",
        "FCALL",
        "FUNCTION STATS",
        "FUNCTION DELETE nosuch",
        "FUNCTION DELETE",
        "FUNCTION FLUSH bad",
        "FUNCTION FLUSH sync extra",
        "FUNCTION LIST foo",
        "FUNCTION LIST LIBRARYNAME",
        "FUNCTION LIST WITHCODE WITHCODE",
        "FUNCTION KILL",
        "FUNCTION KILL x",
        "FUNCTION STATS x",
        "FUNCTION LOAD",
        "FUNCTION LOAD a b c",
        "FUNCTION RESTORE xx",
        "FUNCTION RESTORE xx badpolicy",
        "FUNCTION RESTORE xx FLUSH extra",
        "FUNCTION foo",
        "FUNCTION",
        "FUNCTION HELP",
        "COMMAND GETKEYS FCALL f 2 a b c",
        "FUNCTION DELETE other",
        "FCALL push 1 l a",
        "FUNCTION STATS",
        "FUNCTION FLUSH",
        "FUNCTION LIST",
        "FCALL setter 2 k n v",
        "FLUSHALL",
    ] {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        p.same(&args);
    }
    p.same(&[b"FUNCTION", b"LOAD", LIB.as_bytes()]);
    // FLUSHALL does not touch the libraries.
    p.same(&[b"FLUSHALL"]);
    p.same(&[b"FCALL", b"counter", b"1", b"a"]);
    // RESP3 shapes (HELLO's client ids differ, so it is not compared).
    p.a.cmd("HELLO 3");
    p.b.cmd("HELLO 3");
    assert_eq!(
        canon(p.a.cmd("FUNCTION LIST")),
        canon(p.b.cmd("FUNCTION LIST"))
    );
    p.same(&[b"FUNCTION", b"STATS"]);
}

#[test]
fn library_load_errors_are_redis_errors() {
    let mut p = Pair::start();
    p.same(&[b"FUNCTION", b"LOAD", LIB.as_bytes()]);
    let bad: &[&str] = &[
        LIB,
        "return 1",
        "#!lua name=a-b\nx",
        "#!lua name=b\nreturn 1",
        "#!lua name=b\nredis.register_function('setter', function() end)",
        "#!lua name=c\nredis.call('ping')",
        "#!lua name=c\nlocal x = string",
        "#!lua name=c\nx = 1",
        "#!lua name=d\nlocal x = ",
        "#!lua name=d\nerror('boom')",
        "#!lua name=f\nredis.register_function('f!', function() end)",
        "#!lua name=f\nredis.register_function{function_name='g', callback=function() end, flags={'bad'}}",
        "#!lua name=f\nredis.register_function{function_name='g', callback=function() end, flags='no-writes'}",
        "#!lua name=f\nredis.register_function{function_name='g', callback=function() end, foo=1}",
        "#!lua name=f\nredis.register_function('g')",
        "#!lua name=f\nredis.register_function('g', 1)",
        "#!lua name=f\nredis.register_function('g', function() end, 5)",
        "#!lua name=f\nredis.register_function{function_name='g'}",
        "#!lua name=f\nredis.register_function('t', function() end) redis.register_function('t', function() end)",
        "#!lua name=f foo=bar\n",
        "#!lua\n",
        "#!luax name=x\n",
        "#!lua name=f",
        "#!lua name=loop\nwhile true do end",
    ];
    for code in bad {
        p.same(&[b"FUNCTION", b"LOAD", code.as_bytes()]);
    }
    // Huge names are refused or accepted exactly as Redis does.
    let long = format!(
        "#!lua name={}\nredis.register_function('{}', function() return 1 end)",
        "l".repeat(5000),
        "f".repeat(5000)
    );
    p.same(&[b"FUNCTION", b"LOAD", long.as_bytes()]);
    let call = "f".repeat(5000);
    p.same(&[b"FCALL", call.as_bytes(), b"0"]);
    // Runtime errors carry the function name and line.
    let rt = "#!lua name=rt
redis.register_function('boom', function() error('boom') end)
redis.register_function('unknown', function() return redis.call('nosuch') end)
redis.register_function('arity', function() return redis.call('get') end)
redis.register_function('global', function() return KEYS_X end)
redis.register_function('keys', function() return KEYS end)
redis.register_function('argv', function() return ARGV end)
redis.register_function('setglobal', function() y = 1 end)
redis.register_function('ro', function(k) return redis.call('set', k[1], 1) end)";
    p.same(&[b"FUNCTION", b"LOAD", rt.as_bytes()]);
    for f in [
        "boom",
        "unknown",
        "arity",
        "global",
        "setglobal",
        "keys",
        "argv",
    ] {
        p.same(&[b"FCALL", f.as_bytes(), b"1", b"k", b"a"]);
    }
    p.same(&[b"FUNCTION", b"LOAD", b"REPLACE", rt.as_bytes()]);
    p.same(&[b"FUNCTION", b"LOAD", b"REPLACE", LIB.as_bytes()]);
    assert_eq!(list(&mut p.a), list(&mut p.b));
    // A failed REPLACE keeps the old library.
    p.same(&[
        b"FUNCTION",
        b"LOAD",
        b"REPLACE",
        b"#!lua name=mylib\nerror('x')",
    ]);
    assert_eq!(list(&mut p.a), list(&mut p.b));
}

#[test]
fn dump_payloads_move_between_tandem_and_redis() {
    let mut p = Pair::start();
    p.same(&[b"FUNCTION", b"LOAD", LIB.as_bytes()]);
    p.same(&[b"FUNCTION", b"LOAD", LIB2.as_bytes()]);
    let R::Bulk(ours) = p.a.cmd("FUNCTION DUMP") else {
        panic!("FUNCTION DUMP")
    };
    let R::Bulk(theirs) = p.b.cmd("FUNCTION DUMP") else {
        panic!("FUNCTION DUMP")
    };
    let before = list(&mut p.a);
    // Each side restores the other's payload after a flush.
    p.same(&[b"FUNCTION", b"FLUSH"]);
    assert_eq!(p.a.cmd_args(&[b"FUNCTION", b"RESTORE", &theirs]), R::ok());
    assert_eq!(p.b.cmd_args(&[b"FUNCTION", b"RESTORE", &ours]), R::ok());
    assert_eq!(list(&mut p.a), before);
    assert_eq!(list(&mut p.b), before);
    // Policies: APPEND collides, REPLACE and FLUSH succeed.
    for policy in [&b"APPEND"[..], b"REPLACE", b"FLUSH"] {
        let ra = p.a.cmd_args(&[b"FUNCTION", b"RESTORE", &theirs, policy]);
        let rb = p.b.cmd_args(&[b"FUNCTION", b"RESTORE", &ours, policy]);
        // Which colliding library APPEND names depends on Redis's hash order.
        let shape = |r: &R| match r {
            R::Err(e) if e.starts_with("ERR Library ") && e.ends_with(" already exists") => {
                "collision".to_string()
            }
            other => format!("{other:?}"),
        };
        assert_eq!(
            shape(&ra),
            shape(&rb),
            "policy {:?}",
            String::from_utf8_lossy(policy)
        );
    }
    // A corrupted payload is refused and changes nothing.
    let mut bad = ours.clone();
    bad[3] ^= 0xff;
    assert!(
        matches!(p.a.cmd_args(&[b"FUNCTION", b"RESTORE", &ours]), R::Err(e) if e.starts_with("ERR Library "))
    );
    p.same(&[b"FUNCTION", b"RESTORE", &bad]);
    p.same(&[b"FUNCTION", b"RESTORE", b""]);
    p.same(&[b"FUNCTION", b"RESTORE", b"\x0a\x00"]);
    assert_eq!(list(&mut p.a), before);
    p.same(&[b"FCALL", b"setter", b"2", b"k", b"n", b"v"]);
}

fn save_and_copy(from: &mut Conn, from_dir: &std::path::Path, to_dir: &std::path::Path) {
    assert_eq!(from.cmd("SAVE"), R::ok());
    std::fs::copy(from_dir.join("dump.rdb"), to_dir.join("dump.rdb")).expect("copy rdb");
}

#[test]
fn rdb_files_with_functions_load_both_ways() {
    // Redis -> Tandem.
    let rdir = tempfile::tempdir().expect("tempdir");
    let r = RealRedis::start(rdir.path(), "dump.rdb", &[]);
    let mut rc = r.conn();
    assert_eq!(load(&mut rc, LIB), b("mylib"));
    assert_eq!(load(&mut rc, LIB2), b("other"));
    assert_eq!(rc.cmd("SET k v"), R::ok());
    let expected = list(&mut rc);
    let tdir = tempfile::tempdir().expect("tempdir");
    save_and_copy(&mut rc, rdir.path(), tdir.path());
    let t = TestServer::start_in(tdir, &[]);
    let mut tc = t.conn();
    assert_eq!(list(&mut tc), expected);
    assert_eq!(tc.cmd("FCALL counter 1 a b"), R::Int(2));
    assert_eq!(tc.cmd("GET k"), b("v"));
    // Tandem -> Redis.
    assert_eq!(tc.cmd("FUNCTION DELETE other"), R::ok());
    let expected = list(&mut tc);
    let rdir2 = tempfile::tempdir().expect("tempdir");
    save_and_copy(&mut tc, t.dir.path(), rdir2.path());
    let r2 = RealRedis::start(rdir2.path(), "dump.rdb", &[]);
    let mut rc2 = r2.conn();
    assert_eq!(list(&mut rc2), expected);
    assert_eq!(rc2.cmd("FCALL counter 1 a b"), R::Int(2));
}

fn restart(s: TestServer, args: &[&str]) -> TestServer {
    let mut s = s;
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().expect("tempdir"));
    drop(s);
    TestServer::start_in(dir, args)
}

#[test]
fn restart_restores_libraries_from_rdb_and_aof() {
    // RDB.
    let t = TestServer::start(&[]);
    let mut c = t.conn();
    assert_eq!(load(&mut c, LIB), b("mylib"));
    let expected = list(&mut c);
    assert_eq!(c.cmd("SAVE"), R::ok());
    drop(c);
    let t = restart(t, &[]);
    let mut c = t.conn();
    assert_eq!(list(&mut c), expected);
    assert_eq!(c.cmd("FCALL setter 2 k n v"), R::Int(1));
    drop(c);
    // AOF: a library loaded before the base, one loaded after (in the incr file), one
    // deleted after.
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    let t = TestServer::start(&aof);
    let mut c = t.conn();
    assert_eq!(load(&mut c, LIB), b("mylib"));
    assert!(matches!(c.cmd("BGREWRITEAOF"), R::Simple(_)));
    assert!(wait_until(WAIT, || matches!(c.cmd("INFO persistence"),
        R::Verbatim(s) | R::Simple(s) if s.contains("aof_rewrite_in_progress:0"))
        || matches!(c.cmd("INFO persistence"), R::Bulk(s) if String::from_utf8_lossy(&s).contains("aof_rewrite_in_progress:0"))));
    assert_eq!(load(&mut c, LIB2), b("other"));
    assert_eq!(c.cmd("FCALL push 1 l a b"), R::Int(2));
    assert_eq!(
        c.cmd_args(&[
            b"FUNCTION",
            b"LOAD",
            b"#!lua name=gone\nredis.register_function('gone', function() return 1 end)"
        ]),
        b("gone")
    );
    assert_eq!(c.cmd("FUNCTION DELETE gone"), R::ok());
    let expected = list(&mut c);
    drop(c);
    let t = restart(t, &aof);
    let mut c = t.conn();
    assert_eq!(list(&mut c), expected);
    assert_eq!(c.cmd("LLEN l"), R::Int(2));
}

#[test]
fn tandem_and_redis_replicas_get_the_same_libraries_and_data() {
    let m = TestServer::start(&[
        "--repl-diskless-sync-delay",
        "0",
        "--enable-debug-command",
        "yes",
    ]);
    let mut mc = m.conn();
    // One library before the replicas attach (sent in the full sync's RDB).
    assert_eq!(load(&mut mc, LIB2), b("other"));
    let port = m.port.to_string();
    let t = TestServer::start(&[
        "--replicaof",
        "127.0.0.1",
        &port,
        "--enable-debug-command",
        "yes",
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let r = RealRedis::start(dir.path(), "dump.rdb", &["--replicaof", "127.0.0.1", &port]);
    let (mut tc, mut rc) = (t.conn(), r.conn());
    assert!(wait_until(WAIT, || tc.role_connected() && rc.role_connected()));
    // The rest through the stream.
    assert_eq!(load(&mut mc, LIB), b("mylib"));
    assert_eq!(mc.cmd("FCALL setter 2 k n v1"), R::Int(1));
    assert_eq!(mc.cmd("FCALL setter 2 k n v2"), R::Int(2));
    assert_eq!(mc.cmd("FCALL push 1 l a b c"), R::Int(3));
    assert_eq!(mc.cmd("MULTI"), R::ok());
    assert_eq!(mc.cmd("FCALL setter 2 k2 n v3"), R::Simple("QUEUED".into()));
    assert_eq!(mc.cmd("EXEC"), R::Arr(vec![R::Int(3)]));
    let tmp = "#!lua name=tmp\nredis.register_function('tmp', function() return 1 end)";
    assert_eq!(load(&mut mc, tmp), b("tmp"));
    assert_eq!(mc.cmd("FUNCTION DELETE tmp"), R::ok());
    // A read-only replica refuses FUNCTION LOAD from its own clients.
    assert_eq!(
        load(&mut tc, tmp).err_text(),
        "READONLY You can't write against a read only replica."
    );
    let target = mc.role_offset().expect("master offset");
    assert!(
        wait_until(WAIT, || tc.role_offset() == Some(target)
            && rc.role_offset() == Some(target)),
        "replicas did not reach offset {target}"
    );
    let d = mc.cmd("DEBUG DIGEST");
    assert_eq!(tc.cmd("DEBUG DIGEST"), d, "tandem replica differs");
    assert_eq!(rc.cmd("DEBUG DIGEST"), d, "redis replica differs");
    let libs = list(&mut mc);
    assert_eq!(list(&mut tc), libs, "tandem replica libraries differ");
    assert_eq!(list(&mut rc), libs, "redis replica libraries differ");
    for c in [&mut mc, &mut tc, &mut rc] {
        assert_eq!(c.cmd("GET k"), b("v2"));
        assert_eq!(c.cmd("GET n"), b("3"));
        assert_eq!(c.cmd("LLEN l"), R::Int(3));
        assert_eq!(c.cmd("FCALL_RO reader 1 k2"), b("v3"));
    }
    // FUNCTION FLUSH propagates too.
    assert_eq!(mc.cmd("FUNCTION FLUSH"), R::ok());
    let target = mc.role_offset().expect("master offset");
    assert!(wait_until(WAIT, || tc.role_offset() == Some(target)
        && rc.role_offset() == Some(target)));
    assert_eq!(tc.cmd("FUNCTION LIST"), R::Arr(vec![]));
    assert_eq!(rc.cmd("FUNCTION LIST"), R::Arr(vec![]));
}

#[test]
fn function_kill_stops_a_busy_function_as_redis_does() {
    let lib = "#!lua name=busy
redis.register_function{function_name='spin', callback=function() while true do end end, flags={'no-writes'}}
redis.register_function('spinw', function(k) redis.call('set', k[1], 1) while true do end end)";
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TestServer::start(&["--busy-reply-threshold", "100"]);
    let r = RealRedis::start(dir.path(), "dump.rdb", &["--busy-reply-threshold", "100"]);
    let mut replies = Vec::new();
    for port in [t.port, r.port] {
        let mut c = Conn::connect(port);
        assert_eq!(load(&mut c, lib), b("busy"));
        let mut runner = Conn::connect(port);
        runner.send(&[b"FCALL", b"spin", b"1", b"kk", b"aa"]);
        let mut other = Conn::connect(port);
        assert!(wait_until(
            WAIT,
            || matches!(other.cmd("PING"), R::Err(e) if e.starts_with("BUSY"))
        ));
        // FUNCTION STATS is served while busy; the duration is zeroed to compare.
        let stats = match other.cmd("FUNCTION STATS") {
            R::Arr(mut v) => {
                if let Some(R::Arr(run)) = v.get_mut(1) {
                    assert!(
                        matches!(run.get(5), Some(R::Int(ms)) if *ms >= 100),
                        "{run:?}"
                    );
                    run[5] = R::Int(0);
                }
                R::Arr(v)
            }
            other => other,
        };
        let mut got = vec![other.cmd("PING"), other.cmd("SCRIPT KILL"), stats];
        got.push(other.cmd("FUNCTION KILL"));
        got.push(runner.read());
        assert!(wait_until(WAIT, || other.cmd("PING") == R::Simple("PONG".into())));
        got.push(other.cmd("FUNCTION KILL"));
        replies.push(got);
    }
    assert_eq!(replies[0], replies[1]);
    assert_eq!(replies[0][3], R::ok());
}

#[test]
fn a_function_that_wrote_is_unkillable_as_in_redis() {
    let lib = "#!lua name=busyw
redis.register_function('spinw', function(k) redis.call('set', k[1], 1) while true do end end)";
    let dir = tempfile::tempdir().expect("tempdir");
    let t = TestServer::start(&["--busy-reply-threshold", "100"]);
    let r = RealRedis::start(dir.path(), "dump.rdb", &["--busy-reply-threshold", "100"]);
    let mut replies = Vec::new();
    for port in [t.port, r.port] {
        let mut c = Conn::connect(port);
        assert_eq!(load(&mut c, lib), b("busyw"));
        let mut runner = Conn::connect(port);
        runner.send(&[b"FCALL", b"spinw", b"1", b"w"]);
        let mut other = Conn::connect(port);
        assert!(wait_until(
            WAIT,
            || matches!(other.cmd("PING"), R::Err(e) if e.starts_with("BUSY"))
        ));
        replies.push(vec![other.cmd("FUNCTION KILL"), other.cmd("SCRIPT KILL")]);
        other.send(&[b"SHUTDOWN", b"NOSAVE"]);
        assert!(wait_until(WAIT, || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_err()));
    }
    assert_eq!(replies[0], replies[1]);
    assert!(matches!(&replies[0][0], R::Err(e) if e.starts_with("UNKILLABLE")));
}

#[test]
fn write_rules_inside_functions_match_redis() {
    let mut p = Pair::start();
    let lib = "#!lua name=rules
redis.register_function{function_name='ro_writes', callback=function(k) return redis.call('set', k[1], 1) end, flags={'no-writes'}}
redis.register_function('nested', function() return redis.call('fcall', 'ro_writes', 1, 'x') end)
redis.register_function('loader', function() return redis.call('function', 'flush') end)
redis.register_function('rw', function(k) return redis.call('set', k[1], 'v') end)";
    p.same(&[b"FUNCTION", b"LOAD", lib.as_bytes()]);
    for line in [
        "FCALL ro_writes 1 a",
        "FCALL_RO ro_writes 1 a",
        "FCALL nested 0",
        "FCALL loader 0",
        "FCALL_RO rw 1 a",
        "MULTI",
        "FCALL rw 1 m",
        "FUNCTION DELETE rules",
        "EXEC",
        "GET m",
        "FCALL rw 1 m",
    ] {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        p.same(&args);
    }
    p.same(&[b"EVAL", b"return redis.call('function', 'list')", b"0"]);
}

fn info_field(c: &mut Conn, name: &str) -> Option<String> {
    let text = match c.cmd("INFO memory") {
        R::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        R::Verbatim(s) => s,
        other => panic!("INFO memory: {other:?}"),
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_string))
}

#[test]
fn info_memory_counts_functions_and_libraries_as_redis() {
    let mut p = Pair::start();
    let counts = |c: &mut Conn| {
        (
            info_field(c, "number_of_functions"),
            info_field(c, "number_of_libraries"),
        )
    };
    assert_eq!(counts(&mut p.a), counts(&mut p.b));
    let empty: usize = info_field(&mut p.a, "used_memory_functions")
        .and_then(|v| v.parse().ok())
        .expect("used_memory_functions");
    p.same(&[b"FUNCTION", b"LOAD", LIB.as_bytes()]);
    p.same(&[b"FUNCTION", b"LOAD", LIB2.as_bytes()]);
    let loaded = counts(&mut p.a);
    assert_eq!(loaded, (Some("4".into()), Some("2".into())));
    assert_eq!(loaded, counts(&mut p.b));
    let used: usize = info_field(&mut p.a, "used_memory_functions")
        .and_then(|v| v.parse().ok())
        .expect("used_memory_functions");
    assert!(used > empty + LIB.len() + LIB2.len(), "{used} vs {empty}");
    for f in [
        "used_memory_vm_functions",
        "used_memory_vm_total",
        "used_memory_scripts",
    ] {
        assert!(info_field(&mut p.a, f).is_some(), "{f} missing");
    }
    p.same(&[b"FUNCTION", b"FLUSH"]);
    assert_eq!(counts(&mut p.a), counts(&mut p.b));
    assert_eq!(
        info_field(&mut p.a, "used_memory_functions").and_then(|v| v.parse().ok()),
        Some(empty)
    );
}

#[test]
fn a_tandem_replica_of_a_redis_master_follows_its_libraries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = RealRedis::start(dir.path(), "dump.rdb", &["--repl-diskless-sync-delay", "0"]);
    let mut rc = r.conn();
    // One library in the full sync's RDB, the rest through the stream.
    assert_eq!(load(&mut rc, LIB2), b("other"));
    let t = TestServer::start(&[
        "--replicaof",
        "127.0.0.1",
        &r.port.to_string(),
        "--enable-debug-command",
        "yes",
    ]);
    let mut tc = t.conn();
    assert!(wait_until(WAIT, || tc.role_connected()));
    assert_eq!(load(&mut rc, LIB), b("mylib"));
    assert_eq!(rc.cmd("FCALL setter 2 k n v"), R::Int(1));
    assert_eq!(rc.cmd("FCALL push 1 l a b"), R::Int(2));
    let R::Bulk(payload) = rc.cmd("FUNCTION DUMP") else {
        panic!("FUNCTION DUMP")
    };
    assert_eq!(
        rc.cmd_args(&[b"FUNCTION", b"RESTORE", &payload, b"REPLACE"]),
        R::ok()
    );
    assert_eq!(rc.cmd("FUNCTION DELETE other"), R::ok());
    let target = rc.role_offset().expect("master offset");
    assert!(wait_until(WAIT, || tc.role_offset() == Some(target)));
    assert_eq!(list(&mut tc), list(&mut rc));
    assert_eq!(tc.cmd("DEBUG DIGEST"), rc.cmd("DEBUG DIGEST"));
    assert_eq!(tc.cmd("FCALL_RO reader 1 k"), b("v"));
}

#[test]
fn debug_reload_and_script_flush_keep_the_libraries() {
    let t = TestServer::start(&["--enable-debug-command", "yes"]);
    let mut c = t.conn();
    assert_eq!(load(&mut c, LIB), b("mylib"));
    let expected = list(&mut c);
    assert_eq!(c.cmd("DEBUG RELOAD"), R::ok());
    assert_eq!(list(&mut c), expected);
    assert_eq!(c.cmd("SCRIPT FLUSH"), R::ok());
    assert_eq!(list(&mut c), expected);
    assert_eq!(c.cmd("FCALL counter 2 a b c"), R::Int(3));
    // FUNCTION FLUSH then DEBUG RELOAD: nothing comes back.
    assert_eq!(c.cmd("FUNCTION FLUSH ASYNC"), R::ok());
    assert_eq!(c.cmd("DEBUG RELOAD"), R::ok());
    assert_eq!(c.cmd("FUNCTION LIST"), R::Arr(vec![]));
}

#[test]
fn function_load_is_refused_over_maxmemory_as_in_redis() {
    let mut p = Pair::start();
    p.same(&[b"FUNCTION", b"LOAD", LIB.as_bytes()]);
    p.same(&[b"CONFIG", b"SET", b"maxmemory", b"1"]);
    p.same(&[b"FUNCTION", b"LOAD", LIB2.as_bytes()]);
    let R::Bulk(dump) = p.a.cmd("FUNCTION DUMP") else {
        panic!("FUNCTION DUMP")
    };
    p.same(&[b"FUNCTION", b"RESTORE", &dump, b"REPLACE"]);
    // Reading, deleting and read-only calls still work.
    p.same(&[b"FCALL_RO", b"counter", b"1", b"a"]);
    p.same(&[b"FCALL", b"setter", b"2", b"k", b"n", b"v"]);
    p.same(&[b"FUNCTION", b"DELETE", b"mylib"]);
    p.same(&[b"CONFIG", b"SET", b"maxmemory", b"0"]);
    p.same(&[b"FUNCTION", b"LOAD", LIB2.as_bytes()]);
}

#[test]
fn function_names_ignore_case_across_libraries_as_redis() {
    let mut p = Pair::start();
    let lib = |name: &str, f: &str, v: i64| {
        format!("#!lua name={name}\nredis.register_function('{f}', function() return {v} end)")
    };
    let cases: Vec<Vec<Vec<u8>>> = vec![
        vec![
            b"FUNCTION".to_vec(),
            b"LOAD".to_vec(),
            lib("test", "test", 1).into_bytes(),
        ],
        vec![b"FCALL".to_vec(), b"TEST".to_vec(), b"0".to_vec()],
        vec![b"FCALL".to_vec(), b"tEsT".to_vec(), b"0".to_vec()],
        vec![b"FCALL_RO".to_vec(), b"Test".to_vec(), b"0".to_vec()],
        // Library names keep their case; a function name clashing in another case does not load.
        vec![
            b"FUNCTION".to_vec(),
            b"LOAD".to_vec(),
            lib("TEST", "other", 2).into_bytes(),
        ],
        vec![
            b"FUNCTION".to_vec(),
            b"LOAD".to_vec(),
            lib("lib2", "TeSt", 3).into_bytes(),
        ],
        vec![
            b"FUNCTION".to_vec(),
            b"LOAD".to_vec(),
            b"REPLACE".to_vec(),
            lib("test", "TEST", 4).into_bytes(),
        ],
        vec![b"FCALL".to_vec(), b"test".to_vec(), b"0".to_vec()],
        vec![b"FUNCTION".to_vec(), b"DELETE".to_vec(), b"Test".to_vec()],
        vec![b"FUNCTION".to_vec(), b"DELETE".to_vec(), b"test".to_vec()],
        vec![b"FCALL".to_vec(), b"TEST".to_vec(), b"0".to_vec()],
        vec![b"FCALL".to_vec(), b"OTHER".to_vec(), b"0".to_vec()],
    ];
    for c in &cases {
        let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
        p.same(&args);
    }
}

#[test]
fn functions_returning_tables_answer_as_redis() {
    let mut p = Pair::start();
    let lib = "#!lua name=tables
redis.register_function('flat', function(keys, args) return {1, 2, 'x'} end)
redis.register_function('nested', function(KEYS, ARGV) return {KEYS[1], ARGV[1], {1, {2}}} end)
redis.register_function('status', function() return redis.call('ping') end)
redis.register_function('err', function() return {err = 'ERR custom'} end)
redis.register_function('kv', function() return redis.call('hgetall', 'h') end)";
    p.same(&[b"FUNCTION", b"LOAD", lib.as_bytes()]);
    p.same_words("HSET h a 1 b 2");
    for line in [
        "FCALL flat 0",
        "FCALL nested 1 k a",
        "FCALL status 0",
        "FCALL err 0",
        "FCALL kv 0",
        "FCALL_RO flat 0",
    ] {
        p.same_words(line);
    }
    assert_eq!(
        p.a.cmd("FCALL flat 0"),
        R::Arr(vec![R::Int(1), R::Int(2), R::bulk("x")])
    );
}

/// `FUNCTION LOAD` of `code` on both servers, requiring the same reply.
fn same_load(p: &mut Pair, replace: bool, code: &str) -> R {
    if replace {
        p.same(&[b"FUNCTION", b"LOAD", b"REPLACE", code.as_bytes()])
    } else {
        p.same(&[b"FUNCTION", b"LOAD", code.as_bytes()])
    }
}

#[test]
fn debug_reload_noflush_and_merge_treat_libraries_as_redis() {
    let mut p = Pair::start_with(&["--enable-debug-command", "yes"]);
    let fa = |lib: &str, v: &str| {
        format!("#!lua name={lib}\nredis.register_function('fa', function() return '{v}' end)")
    };
    same_load(&mut p, false, &fa("liba", "a"));
    p.same_words("SET k 1");
    p.same_words("DEBUG RELOAD");
    // NOFLUSH: the file's library exists, so the load fails (before any key).
    p.same_words("DEBUG RELOAD NOFLUSH");
    p.same_words("DEBUG RELOAD NOFLUSH MERGE");
    assert_eq!(list(&mut p.a), list(&mut p.b));
    p.same_words("FCALL fa 0");
    // A live library of another name holding the file's function name: MERGE
    // replaces same-named libraries only, so the function clashes.
    p.same_words("FUNCTION DELETE liba");
    same_load(&mut p, false, &fa("libb", "b"));
    p.same_words("DEBUG RELOAD NOSAVE NOFLUSH MERGE");
    assert_eq!(list(&mut p.a), list(&mut p.b));
    p.same_words("FCALL fa 0");
    // Libraries saved and libraries loaded since are all there after a merge.
    p.same_words("FUNCTION FLUSH");
    same_load(
        &mut p,
        false,
        &fa("test1", "one").replace("'fa'", "'test1'"),
    );
    p.same_words("DEBUG RELOAD");
    same_load(
        &mut p,
        false,
        &fa("test2", "two").replace("'fa'", "'test2'"),
    );
    p.same_words("DEBUG RELOAD NOSAVE NOFLUSH MERGE");
    p.same_words("FCALL test1 0");
    p.same_words("FCALL test2 0");
    p.same_words("FUNCTION STATS");
    // MERGE replaces a library changed since the save with the saved one.
    same_load(&mut p, true, &fa("test1", "new").replace("'fa'", "'test1'"));
    p.same_words("DEBUG RELOAD NOSAVE NOFLUSH MERGE");
    p.same_words("FCALL test1 0");
    // The default reload empties the libraries loaded since the save.
    p.same_words("DEBUG RELOAD NOSAVE");
    assert_eq!(list(&mut p.a), list(&mut p.b));
}

#[test]
fn register_function_argument_errors_match_redis() {
    let mut p = Pair::start();
    let cases: &[&str] = &[
        // Positional: the name is checked before the callback.
        "redis.register_function({}, 1)",
        "redis.register_function(nil, function() return 1 end)",
        "redis.register_function(true, function() return 1 end)",
        // Named: a name or description that is not a string, keys that are not.
        "redis.register_function{function_name={}, callback=function() return 1 end}",
        "redis.register_function{function_name=false, callback=function() return 1 end}",
        "redis.register_function{function_name='g', description={}, callback=function() return 1 end}",
        "redis.register_function{[true]='g', callback=function() return 1 end}",
        "redis.register_function{[1]='g', callback=function() return 1 end}",
        "redis.register_function{function_name='g', callback=function() return 1 end, flags={1}}",
        "redis.register_function{function_name='g', callback=function() return 1 end, flags={{}}}",
        "redis.register_function{function_name='g', callback=function() return 1 end, flags={'no-writes', 'x'}}",
    ];
    for body in cases {
        same_load(&mut p, true, &format!("#!lua name=bad\n{body}"));
    }
    // Accepted forms: a number as a name, keys and flags in any case.
    let good: &[&str] = &[
        "redis.register_function(12, function() return 1 end)",
        "redis.register_function{FUNCTION_NAME='g', CallBack=function() return 2 end, Description='d', FLAGS={'No-Writes', 'ALLOW-STALE'}}",
        "redis.register_function{function_name=34, callback=function() return 3 end, description=5}",
    ];
    for (i, body) in good.iter().enumerate() {
        same_load(&mut p, true, &format!("#!lua name=good{i}\n{body}"));
    }
    assert_eq!(list(&mut p.a), list(&mut p.b));
    p.same_words("FCALL 12 0");
    p.same_words("FCALL_RO g 0");
    p.same_words("FCALL 34 0");
}

#[test]
fn register_function_outside_a_load_is_refused_as_in_redis() {
    let mut p = Pair::start();
    let lib = "#!lua name=keep
local api = redis
api.register_function('again', function() api.register_function('x', function() return 1 end) end)
api.register_function('protected', function() return {pcall(api.register_function, 'x', function() end)} end)
api.register_function('touch', function() api.math = 1 end)";
    same_load(&mut p, false, lib);
    for line in ["FCALL again 0", "FCALL protected 0", "FCALL touch 0"] {
        p.same_words(line);
    }
    same_load(&mut p, false, "#!lua name=n\nredis.math.random()");
    same_load(&mut p, false, "#!lua name=n\nredis.redis.call('ping')");
}

#[test]
fn library_metadata_line_is_read_as_redis() {
    let mut p = Pair::start();
    let f = "\nredis.register_function('f', function() return 1 end)";
    for meta in [
        "#!lua name=\"quoted\"",
        "#!lua name='single'",
        "#!\"lua\" name=q2",
        "#!LUA NAME=upper",
        "#!lua   name=spaces   ",
        "#!lua\tname=tab",
        "#!lua name=crlf\r",
        "#! name=noengine",
        "#!luax name=bad-name",
        "#!lua name=\"unbalanced",
        "#!lua name=\"x\"y",
        "#!lua name=\"a b\"",
        "#!lua \"name=quoted_key\"",
        "#!lua name=",
        "#!lua name=a name=b",
        "#!lua name=nul\0",
        "#!",
    ] {
        same_load(&mut p, true, &format!("{meta}{f}"));
    }
    assert_eq!(list(&mut p.a), list(&mut p.b));
}

#[test]
fn allow_stale_functions_call_only_stale_commands_on_a_cut_replica_as_redis() {
    let mut p = Pair::start();
    let lib = "#!lua name=stale
redis.register_function{function_name='plain', callback=function() return 'hello' end, flags={'no-writes'}}
redis.register_function{function_name='ok', callback=function() return 'hello' end, flags={'allow-stale', 'no-writes'}}
redis.register_function{function_name='get', callback=function() return redis.call('get', 'x') end, flags={'allow-stale', 'no-writes'}}
redis.register_function{function_name='pget', callback=function() return redis.pcall('get', 'x') end, flags={'allow-stale', 'no-writes'}}
redis.register_function{function_name='time', callback=function() return #redis.call('time') end, flags={'allow-stale', 'no-writes'}}";
    same_load(&mut p, false, lib);
    // A port nobody listens on: the link stays down.
    let dead = free_port().to_string();
    p.same_words("CONFIG SET replica-serve-stale-data no");
    p.same(&[b"REPLICAOF", b"127.0.0.1", dead.as_bytes()]);
    for line in [
        "FCALL plain 0",
        "FCALL ok 0",
        "FCALL get 0",
        "FCALL pget 0",
        "FCALL time 0",
    ] {
        p.same_words(line);
    }
    p.same(&[
        b"EVAL",
        b"#!lua flags=no-writes,allow-stale\nreturn redis.call('get','x')",
        b"0",
    ]);
    // Serving stale data again: the same calls go through.
    p.same_words("CONFIG SET replica-serve-stale-data yes");
    p.same_words("FCALL get 0");
    p.same_words("REPLICAOF NO ONE");
}

#[test]
fn function_restore_reads_the_pre_release_layout_as_redis() {
    let mut p = Pair::start();
    // A FUNCTION (0xF6) entry: name, engine, description flag and text, code without
    // the metadata line, then the RDB version (10) and the CRC64 of all before it.
    let entry = |name: &[u8], desc: Option<&[u8]>, body: &[u8]| {
        let mut v = vec![0xF6];
        for s in [name, b"LUA".as_slice()] {
            v.push(s.len() as u8);
            v.extend_from_slice(s);
        }
        match desc {
            Some(d) => {
                v.push(1);
                v.push(d.len() as u8);
                v.extend_from_slice(d);
            }
            None => v.push(0),
        }
        v.push(body.len() as u8);
        v.extend_from_slice(body);
        v
    };
    let payload = |body: Vec<u8>| {
        let mut v = body;
        v.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc64(&v);
        v.extend_from_slice(&crc.to_le_bytes());
        v
    };
    let code = b"redis.register_function('old', function() return 'rc' end)";
    let good = payload(entry(b"oldlib", Some(b"described"), code));
    p.same(&[b"FUNCTION", b"RESTORE", &good]);
    assert_eq!(list(&mut p.a), list(&mut p.b));
    p.same_words("FCALL old 0");
    // Cut inside the entry: each part missing gets its own error. The reader goes on
    // into the footer, so an error may quote its binary bytes; compared as lossy
    // UTF-8 (a Lua compile error quoting a non-UTF-8 byte of the code shows it as
    // U+FFFD in Tandem, raw in Redis).
    let full = entry(b"lib2", Some(b"d"), b"return");
    for cut in 1..full.len() {
        let args: [&[u8]; 3] = [b"FUNCTION", b"RESTORE", &payload(full[..cut].to_vec())];
        let ours = String::from_utf8_lossy(&one_line(&mut p.a, &args)).into_owned();
        let theirs = String::from_utf8_lossy(&one_line(&mut p.b, &args)).into_owned();
        assert_eq!(ours, theirs, "cut {cut}");
    }
    let cut = payload(vec![0xF5, 0x30, b'x']);
    p.same(&[b"FUNCTION", b"RESTORE", &cut]);
}

/// The raw bytes of a one-line reply (status, error or integer) to `args`.
fn one_line(c: &mut Conn, args: &[&[u8]]) -> Vec<u8> {
    use std::io::BufRead;
    c.send(args);
    let mut line = Vec::new();
    c.stream.read_until(b'\n', &mut line).expect("reply line");
    line
}

/// CRC-64/Jones, reflected (Redis's `crc64` for DUMP payloads).
fn crc64(data: &[u8]) -> u64 {
    let mut crc: u64 = 0;
    for &b in data {
        crc ^= b as u64;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x95AC_9329_AC4B_C9B5
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[test]
fn fcall_finds_the_function_before_reading_numkeys_and_list_patterns_ignore_case() {
    let mut p = Pair::start();
    same_load(
        &mut p,
        false,
        "#!lua name=Mixed\nredis.register_function('f', function(k, a) return {#k, #a} end)",
    );
    for line in [
        "FCALL nosuch x",
        "FCALL nosuch -1",
        "FCALL nosuch 5 a",
        "FCALL_RO nosuch x",
        "FCALL f x",
        "FCALL f -1",
        "FCALL f 5 a",
        "FCALL F 1 k v",
        "FUNCTION LIST LIBRARYNAME mixed",
        "FUNCTION LIST LIBRARYNAME MIX*",
        "FUNCTION LIST LIBRARYNAME [m]ixed",
        "FUNCTION LIST LIBRARYNAME other",
    ] {
        p.same_words(line);
    }
}
