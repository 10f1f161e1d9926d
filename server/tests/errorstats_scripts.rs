//! Errors around scripts in INFO errorstats, `total_error_replies` and INFO
//! commandstats, differential against Redis 7.0.15, one step at a time (CONFIG
//! RESETSTAT before each): a command a script calls that is refused (out of memory,
//! a write from a read-only script, an unknown command) or answers an error, through
//! redis.call and redis.pcall, caught or returned as the script's result; errors a
//! script returns itself (redis.error_reply, `{err=...}`); Lua runtime errors; the
//! same through FCALL; error replies nested in a table result. Each error is counted
//! once, and the script's command fails when its reply is an error (and, with errors
//! nested in an array, once for those counted with the reply plus once for each a
//! command of the script counted before).
mod common;
use common::*;
use std::collections::BTreeMap;

/// The `errorstat_*` lines, `total_error_replies`, and each `cmdstat_*` line's
/// calls, rejected_calls and failed_calls (the INFO calls made here count the same
/// on both servers).
fn stats(c: &mut Conn) -> (BTreeMap<String, String>, String, BTreeMap<String, String>) {
    let R::Bulk(text) = c.cmd("INFO errorstats") else {
        panic!("INFO errorstats");
    };
    let errors = String::from_utf8(text)
        .expect("utf8")
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').expect("name:value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let total = info_field(c, "stats", "total_error_replies").expect("total_error_replies");
    let R::Bulk(text) = c.cmd("INFO commandstats") else {
        panic!("INFO commandstats");
    };
    let calls = String::from_utf8(text)
        .expect("utf8")
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, fields) = l.split_once(':').expect("name:fields");
            let kept: Vec<&str> = fields
                .split(',')
                .filter(|kv| !kv.starts_with("usec"))
                .collect();
            (name.to_string(), kept.join(","))
        })
        .collect();
    (errors, total, calls)
}

/// Runs `args` on both after CONFIG RESETSTAT (same reply), then compares the stats.
fn step(p: &mut Pair, args: &[&str]) {
    p.same(&[b"CONFIG", b"RESETSTAT"]);
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    p.same(&refs);
    let ours = stats(&mut p.a);
    let theirs = stats(&mut p.b);
    assert_eq!(ours, theirs, "stats after {args:?} (tandem, redis)");
}

#[test]
fn script_errors_are_counted_once_like_redis() {
    let mut p = Pair::start();
    p.same_words("SET Sicily 1");

    p.same_words("CONFIG SET maxmemory 1");
    for script in [
        "return redis.call('set','x','y')",
        "local t = redis.pcall('set','x','y') return t['err']",
        "return redis.pcall('set','x','y')",
    ] {
        step(&mut p, &["EVAL", script, "1", "x"]);
    }
    p.same_words("CONFIG SET maxmemory 0");

    for script in [
        // A command's error, raised, caught, returned.
        "return redis.call('select', 99)",
        "local t = redis.pcall('select', 99) return t['err']",
        "return redis.pcall('select', 99)",
        "return redis.call('GEOADD', 'Sicily', '13.361389', '38.115556', 'Palermo')",
        // Caught by Lua's own pcall and raised again: still counted once.
        "local ok, e = pcall(redis.call, 'select', 99) return redis.call('select', 99)",
        // Unknown command, wrong arity: refused by the script door.
        "return redis.pcall('nosuchcommand')",
        "local t = redis.pcall('nosuchcommand') return 1",
        "return redis.call('nosuchcommand')",
        "return redis.call('get')",
        "local t = redis.pcall('get') return 1",
        // Bad arguments: not a command's error, counted only as the script's reply.
        "local t = redis.pcall() return 1",
        "return redis.pcall()",
        "return redis.call({})",
        // Errors the script makes.
        "return redis.error_reply('MY_ERR_CODE custom msg')",
        "return redis.error_reply('')",
        "return {err='OWN error'}",
        "local t = redis.pcall('select', 99) return {err=t['err']}",
        "error('plain')",
        "error({err='TABLEERR raised'})",
        "return nosuchglobal",
        // Nothing failed.
        "local t = redis.pcall('set', 'k') return redis.status_reply('FINE')",
    ] {
        step(&mut p, &["EVAL", script, "0"]);
    }

    // A read-only script refuses a write.
    for script in [
        "return redis.call('set','x','y')",
        "local t = redis.pcall('set','x','y') return t['err']",
        "return redis.pcall('set','x','y')",
    ] {
        step(&mut p, &["EVAL_RO", script, "1", "x"]);
    }

    // FCALL follows the same rules.
    p.same(&[
        b"FUNCTION",
        b"LOAD",
        b"#!lua name=errs\n\
          redis.register_function('raise', function() return redis.call('select', 99) end)\n\
          redis.register_function('ret', function() return redis.pcall('select', 99) end)\n\
          redis.register_function('own', function() return redis.error_reply('FOO bar') end)\n\
          redis.register_function{function_name='rw', callback=function() return redis.call('set','x','y') end}\n\
          redis.register_function('unk', function() return redis.pcall('nosuch') end)",
    ]);
    for f in ["raise", "ret", "own", "unk"] {
        step(&mut p, &["FCALL", f, "0"]);
    }
    step(&mut p, &["FCALL_RO", "rw", "0"]);
}

/// Errors inside a table result (arrays, nested arrays, RESP3 maps): Redis counts
/// each in INFO errorstats when the reply is written, except those `redis.pcall`
/// returned (counted when the command answered), and fails the script's command once
/// for the former plus once per each of the latter.
#[test]
fn errors_nested_in_a_table_result_are_counted_like_redis() {
    let mut p = Pair::start();
    p.same_words("SET str abc");
    for script in [
        "return {1, redis.error_reply('MY Error'), {2, {err='ERR inner'}}}",
        "return {{err='A'}, {err='B'}, {err='C'}}",
        "return {1, {err=''}, {err='  '}, {err='x'}}",
        "return {1, {2, {3, {err='DEEP e'}}}}",
        "return {redis.pcall('incr', KEYS[1])}",
        "return {redis.pcall('incr', KEYS[1]), redis.pcall('incr', KEYS[1])}",
        "return {redis.pcall('incr', KEYS[1]), {err='X y'}}",
        "return {1, redis.pcall('incr')}",
        "local t = redis.pcall('incr', KEYS[1]) t['ignore_error_stats_update'] = nil return {t}",
        "redis.setresp(3) return {map={a={err='E1 x'}}, 2}",
        // No error in the reply: an error a command answered earlier fails only it.
        "redis.pcall('incr', KEYS[1]) return {1, 2}",
    ] {
        step(&mut p, &["EVAL", script, "1", "str"]);
    }
    // Too deep to convert: the reply, nested about 8,000 levels, ends in Redis's
    // stack-limit error (read on a thread with room for the test's recursive reader).
    let deep = "local t = {} local c = t for i = 1, 10000 do c[1] = {} c = c[1] end return t";
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(1 << 30)
            .spawn_scoped(s, || step(&mut p, &["EVAL", deep, "0"]))
            .expect("reader thread")
            .join()
            .expect("deep reply step");
    });
    p.same(&[
        b"FUNCTION",
        b"LOAD",
        b"#!lua name=nested\n\
          redis.register_function('arr', function(k) return {redis.pcall('incr', k[1]), {err='FN e'}} end)",
    ]);
    step(&mut p, &["FCALL", "arr", "1", "str"]);
}
