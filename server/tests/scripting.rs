//! Lua scripting (EVAL family, SCRIPT, the redis.* API, the sandbox): a corpus of
//! scripts run side by side on Tandem and Debian's redis-server 7.0.15 in RESP2 and
//! RESP3 with byte-identical replies required, plus black-box tests of what a
//! differential cannot show (propagation, INFO, bad input that crashes Redis).
mod common;
use common::*;
use std::time::Duration;

/// One EVAL-family call: command, script, keys, args.
struct Call<'a>(&'a str, &'a str, &'a [&'a str], &'a [&'a str]);

impl Pair {
    fn line(&mut self, line: &str) -> R {
        let parts: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        self.same(&parts)
    }

    fn eval(&mut self, c: &Call) -> R {
        let n = c.2.len().to_string();
        let mut args: Vec<&[u8]> = vec![c.0.as_bytes(), c.1.as_bytes(), n.as_bytes()];
        args.extend(c.2.iter().map(|k| k.as_bytes()));
        args.extend(c.3.iter().map(|a| a.as_bytes()));
        self.same(&args)
    }
}

fn e<'a>(src: &'a str) -> Call<'a> {
    Call("EVAL", src, &[], &[])
}

/// Conversions Lua -> RESP, the redis.* helpers and error formats.
const CONVERSIONS: &[&str] = &[
    "return 1",
    "return 3.99",
    "return -3.99",
    "return 'str'",
    "return true",
    "return false",
    "return nil",
    "return {1,2,3.7,'a',false,true,nil,5}",
    "return {1,{2,{3,{}}}}",
    "return {ok='fine'}",
    "return {err='bad thing'}",
    "return {err='x\\r\\ny'}",
    "return {a=1,b=2}",
    "return {1,2,a=3}",
    "return {err=3}",
    "return {ok=3}",
    "return {double=3.5}",
    "return {double=0.1}",
    "return {map={a=1}}",
    "return {set={a=true}}",
    "return {verbatim_string={format='txt',string='x'}}",
    "return {1.5, 'x', {ok='st'}, {err='er'}}",
    "return math.huge",
    "return -math.huge",
    "return redis.status_reply('X')",
    "return redis.status_reply('a b')",
    "return redis.status_reply(5)",
    "return redis.error_reply('MY thing')",
    "return redis.error_reply('thing')",
    "return redis.error_reply('-my thing')",
    "return redis.error_reply('MYthing')",
    "return redis.error_reply('')",
    "return redis.error_reply(5)",
    "return redis.error_reply()",
    "local e = redis.error_reply('thing') return {type(e), e.err}",
    "return redis.sha1hex('')",
    "return redis.sha1hex('abc')",
    "return redis.sha1hex(12)",
    "return redis.sha1hex()",
    "return redis.REDIS_VERSION",
    "return redis.REDIS_VERSION_NUM",
    "return {redis.REPL_ALL, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_NONE, redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
    "return redis.replicate_commands()",
    "return redis.log(redis.LOG_WARNING, 'from a script')",
    "return redis.log()",
    "return redis.log('x', 'y')",
    "return redis.log(9, 'y')",
    "return redis.breakpoint()",
    "return redis.debug('x')",
    "return redis.setresp(4)",
    "return redis.setresp()",
    "return redis.set_repl(99)",
    "return redis.set_repl(redis.REPL_ALL)",
    "return redis.acl_check_cmd('get')",
    "return redis.acl_check_cmd('nosuch')",
    "redis.setresp(3) return {true,false}",
    "redis.setresp(3) return true",
    "redis.setresp(2) return {true,false}",
    "return _VERSION",
    "return tostring(math.pi)",
    "return tostring(1e100)",
    "return {tostring(0.1), 1e15, 2^53}",
    "return type(loadstring)",
    "return loadstring('return 7')()",
    "return string.format('%5.2f|%d|%s', 3.14159, 42, 'x')",
    "return {string.byte('A'), string.char(66), ('x'):rep(3), #'abc'}",
    "return table.concat({1,2,3}, ',')",
    "local t = {3,1,2} table.sort(t) return t",
    "return {unpack({1,2,3})}",
    "return select('#', 1, 2, 3)",
    "return {tonumber('0x10'), tonumber('  5  '), tonumber('z')}",
    "return math.floor(-3.5)",
    "return {math.fmod(7,3), math.max(1,9,3), math.sqrt(16)}",
];

/// Commands called from scripts: replies to Lua and back, errors, arity, sandbox.
const CALLS: &[&str] = &[
    "return redis.call('set','a','b')",
    "return redis.call('get','a')",
    "return redis.call('get','nokey')",
    "return {redis.call('get','nokey')}",
    "return type(redis.call('get','nokey'))",
    "return redis.call('ping')",
    "return redis.call('ping').ok",
    "redis.call('rpush','l','a','b','c') return redis.call('lrange','l',0,-1)",
    "return redis.call('incr','counter')",
    "return redis.call('nosuch')",
    "return redis.call('get')",
    "return redis.pcall('get')",
    "return redis.pcall('nosuch')",
    "return redis.call('incr','a','b')",
    "return redis.call()",
    "return redis.pcall()",
    "return redis.call(1)",
    "return redis.call('set','a',{})",
    "return redis.call('set','a',nil)",
    "return redis.call('set','n',3.5)",
    "redis.call('set','n',1e20) return redis.call('get','n')",
    "return redis.call('multi')",
    "return redis.call('exec')",
    "return redis.call('eval','return 1','0')",
    "return redis.call('blpop','l','0')",
    "return redis.call('subscribe','ch')",
    "return redis.call('client','id')",
    "return redis.call('config','get','maxmemory')",
    "redis.call('set','s','abc') return redis.call('incr','s')",
    "return redis.pcall('incr','s')",
    "local e = redis.pcall('incr','s') return {type(e), e.err}",
    "local ok,e = pcall(redis.call,'incr','s') return {type(e), e, tostring(ok)}",
    "local ok,e = pcall(function() return redis.call('nosuch') end) return {type(e), e}",
    "local ok,e = pcall(function() error({err='x'}) end) return type(e)",
    "local ok,e = pcall(function() return x end) return e",
    "local ok,e = pcall(redis.call,'incr','s') error(e, 0)",
    "local ok,e = pcall(redis.call,'incr','s') error(e)",
    "return redis.call('incr','s')",
    "local x = redis.call('incr','s') return x",
    "local function f() return redis.call('incr','s') end local x = f() return x",
    "redis.call('hset','h','f','v') return redis.call('hgetall','h')",
    "redis.setresp(3) return redis.call('hgetall','h')",
    "redis.setresp(3) local m = redis.call('hgetall','h') return {type(m), m.map.f}",
    "redis.setresp(3) return redis.call('get','nokey')",
    "redis.setresp(3) return {type(redis.call('get','nokey'))}",
    "redis.call('zadd','z',1.5,'a') redis.setresp(3) local d = redis.call('zscore','z','a') return {type(d), d.double}",
    "redis.setresp(3) return redis.call('zscore','z','a')",
    "redis.call('sadd','one','m') redis.setresp(3) return redis.call('smembers','one')",
    "redis.setresp(3) local s = redis.call('smembers','one') return {type(s.set), s.set.m}",
    "redis.setresp(3) return redis.call('exists','a')",
    "redis.call('select', 1) redis.call('set', 'dbkey', 'x') return redis.call('get','dbkey')",
    "return redis.call('get','dbkey')",
    "local t={} for i=1,8000 do t[i]=i end return redis.call('del', unpack(t))",
    "local t={} for i=1,7000 do t[i]='k'..i end return redis.call('del', unpack(t))",
];

/// The sandbox and the errors scripts raise.
const SANDBOX: &[&str] = &[
    "x = 1",
    "return os",
    "return io",
    "return debug",
    "return print",
    "return loadfile",
    "return dofile",
    "return require",
    "return getfenv",
    "return setfenv",
    "return newproxy",
    "return module",
    "return x",
    "string.foo = 1",
    "string.len = nil",
    "math.random = nil",
    "_G.x = 1",
    "rawset(_G,'x',1) return x",
    "setmetatable(_G, {})",
    "redis.call = 1",
    "redis.foo = 1",
    "table.insert = nil",
    "getmetatable('').x = 1",
    "return getmetatable('').__index == string",
    "return rawget(_G,'x')",
    "return rawget(_G,'redis') == redis",
    "return {pcall(rawset, {}, 'a', 1)}",
    "local t = setmetatable({}, {}) return 1",
    "KEYS[1] = 2 return KEYS[1]",
    "local f = loadstring('y = 5') f() return 1",
    "local f = loadstring('return 1 +') return f",
    "error('boom')",
    "error('thing', 0)",
    "error('ERR thing', 0)",
    "error()",
    "error(nil)",
    "error(12)",
    "error({err='My'})",
    "error({err='a b', source='q', line=7})",
    "return 1 +",
    "return",
    "",
    "local function f(n) return f(n+1)+1 end return f(1)",
    "local a = nil return a.b",
    "return #nil",
    "return 'a' + 1",
    "return string.rep('x', 10*1024*1024)",
    "return #string.rep('ab', 1000000)",
];

/// math.random: Redis's own generator, whose state goes on from script to script.
const RANDOM: &[&str] = &[
    "return tostring(math.random())",
    "return tostring(math.random())",
    "return {math.random(100), math.random(1,1000), math.random()*1e9}",
    "return {tostring(math.random()),tostring(math.random())}",
    "math.randomseed(0) return tostring(math.random())",
    "math.randomseed(7) return {math.random(10), math.random(5,9)}",
    "math.randomseed(-3) return {math.random(1000000), math.random(-5,5)}",
    "return math.random(0)",
    "return math.random(3,1)",
    "return math.random(1,2,3)",
    "return math.random('x')",
    "return math.random(2.9)",
    "return math.randomseed()",
];

/// Shebang flags and their errors.
const SHEBANGS: &[&str] = &[
    "#!lua flags=foo\nreturn 1",
    "#!luax\nreturn 1",
    "#!lua\nreturn 1",
    "#!lua name=x\nreturn 1",
    "#!lua flags=no-writes\nreturn redis.call('set','a','1')",
    "#!lua flags=no-writes\nreturn redis.call('get','a')",
    "#!lua flags=no-writes,allow-oom\nreturn 1",
    "#!lua flags=\nreturn 1",
    "#!lua flags=no-writes flags=x\nreturn 1",
    "#!lua  flags=no-writes\nreturn 1",
    "#!lua xyz\nreturn 1",
    "#!lua flags=no-writes,\nreturn 1",
    "#!lua flags=no-writes\nerror('x')",
    "#!lua",
    "#!lua flags=no-cluster,allow-cross-slot-keys,allow-stale\nreturn 1",
    "#!python\nreturn 1",
    "#!lua\nreturn redis.call('set','shebang','1')",
    "#!lua flags=no-writes\nreturn redis.call('publish','ch','m')",
];

/// Runs every script on both servers; fails listing every reply that differs.
fn run_corpus(p: &mut Pair, scripts: &[&str]) {
    let mut diffs = Vec::new();
    for s in scripts {
        let args: [&[u8]; 3] = [b"EVAL", s.as_bytes(), b"0"];
        let (ra, rb) = (p.a.cmd_args(&args), p.b.cmd_args(&args));
        if ra != rb {
            diffs.push(format!("{s:?}:\n  tandem {ra:?}\n  redis  {rb:?}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "replies differ from Redis 7.0.15:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn script_corpus_replies_match_redis_in_resp2_and_resp3() {
    let mut p = Pair::start();
    for proto in ["2", "3"] {
        // (HELLO's reply holds the client id, which differs.)
        p.a.cmd(&format!("HELLO {proto}"));
        p.b.cmd(&format!("HELLO {proto}"));
        p.line("FLUSHALL");
        run_corpus(&mut p, CONVERSIONS);
        run_corpus(&mut p, CALLS);
        run_corpus(&mut p, SANDBOX);
        run_corpus(&mut p, RANDOM);
        run_corpus(&mut p, SHEBANGS);
        p.line("GET shebang");
    }
}

/// `redis.call` arguments of every size (up to and past the 4096 bytes kept as
/// slices of a shared block, numbers among them), over more calls than one block
/// holds, reach their commands intact: the stored values read back as Redis's do.
#[test]
fn call_arguments_of_every_size_reach_commands_intact() {
    let mut p = Pair::start();
    let script = "local total = 0
        for i = 1, 300 do
          local v = string.rep(string.char(97 + i % 26), (i * 37) % 9000)
          redis.call('set', 'k' .. i, v)
          redis.call('rpush', 'l', i, i + 0.5, -i * 1e20, v)
          total = total + #redis.call('get', 'k' .. i)
        end
        redis.call('set', 'edge1', string.rep('x', 4096))
        redis.call('set', 'edge2', string.rep('y', 4097))
        return total";
    p.eval(&e(script));
    for i in [1, 2, 110, 111, 243, 299, 300] {
        p.line(&format!("GET k{i}"));
        p.line(&format!("LRANGE l {} {}", i * 4 - 4, i * 4 - 1));
    }
    p.line("LLEN l");
    p.line("STRLEN edge1");
    p.line("STRLEN edge2");
    p.line("GET edge2");
}

#[test]
fn keys_args_and_eval_argument_errors_match_redis() {
    let mut p = Pair::start();
    p.eval(&Call(
        "EVAL",
        "return {KEYS[1],ARGV[1],#KEYS,#ARGV}",
        &["k"],
        &["a", "b"],
    ));
    p.eval(&Call("EVAL", "return KEYS", &["k1", "k2"], &[]));
    // Binary keys and arguments arrive intact.
    p.same(&[
        b"EVAL",
        b"redis.call('set', KEYS[1], ARGV[1]) return {KEYS[1], ARGV[1], #ARGV[1], redis.call('get', KEYS[1])}",
        b"1",
        b"\xff\x00k",
        b"\xfe\x00\x01v",
    ]);
    p.eval(&Call("EVAL", "return ARGV", &[], &["x", "", "z"]));
    p.eval(&Call(
        "EVAL",
        "return redis.call('set', KEYS[1], ARGV[1])",
        &["key"],
        &["val"],
    ));
    p.line("GET key");
    for bad in [
        "EVAL x -1",
        "EVAL x 2 a",
        "EVAL x x",
        "EVAL x",
        "EVALSHA ffffffffffffffffffffffffffffffffffffffff 0",
        "EVALSHA fff 0",
        "EVALSHA_RO ffffffffffffffffffffffffffffffffffffffff 0",
        "EVAL_RO x -1",
    ] {
        p.line(bad);
    }
    // EVAL_RO refuses writes, EVAL_RO/EVALSHA_RO read.
    p.eval(&Call(
        "EVAL_RO",
        "return redis.call('set','a','1')",
        &["a"],
        &[],
    ));
    p.eval(&Call(
        "EVAL_RO",
        "return redis.call('get',KEYS[1])",
        &["key"],
        &[],
    ));
    let sha = p.same(&[b"SCRIPT", b"LOAD", b"return redis.call('get',KEYS[1])"]);
    let R::Bulk(sha) = sha else {
        panic!("SCRIPT LOAD: {sha:?}")
    };
    let sha = String::from_utf8(sha).expect("hex");
    p.line(&format!("EVALSHA {sha} 1 key"));
    p.line(&format!("EVALSHA_RO {sha} 1 key"));
    p.line(&format!("EVALSHA {} 1 key", sha.to_uppercase()));
    let w = p.same(&[b"SCRIPT", b"LOAD", b"return redis.call('set',KEYS[1],'w')"]);
    let R::Bulk(w) = w else { panic!("{w:?}") };
    let w = String::from_utf8(w).expect("hex");
    p.line(&format!("EVALSHA_RO {w} 1 key"));
    // An error names the script by its sha1 in lowercase, whatever the case sent.
    p.line(&format!("EVALSHA_RO {} 1 key", w.to_uppercase()));
    p.line("GET key");
}

#[test]
fn script_command_matches_redis() {
    let mut p = Pair::start();
    p.same(&[b"SCRIPT", b"LOAD", b"return 1"]);
    p.line("SCRIPT EXISTS e0e1f9fabfc9d4800c877a703b823ac0578ff8db ffffffffffffffffffffffffffffffffffffffff E0E1F9FABFC9D4800C877A703B823AC0578FF8DB");
    // EVAL caches the script it runs.
    p.line("EVAL return(2) 0");
    p.line("SCRIPT EXISTS 572625a1039fb30b308c236ab7091a2bd7724d22");
    let sha = p.same(&[b"SCRIPT", b"LOAD", b"return 'two'"]);
    let R::Bulk(sha) = sha else { panic!("{sha:?}") };
    let sha = String::from_utf8(sha).expect("hex");
    p.line(&format!("EVALSHA {sha} 0"));
    for line in [
        "SCRIPT FLUSH ASYNC",
        "SCRIPT FLUSH SYNC",
        "SCRIPT FLUSH",
        "SCRIPT FLUSH foo",
        "SCRIPT FLUSH sync async",
        "SCRIPT KILL",
        "SCRIPT KILL x",
        "SCRIPT DEBUG no",
        "SCRIPT HELP",
        "SCRIPT help x",
        "SCRIPT foo",
        "SCRIPT EXISTS",
        "SCRIPT LOAD",
        "SCRIPT",
    ] {
        p.line(line);
    }
    p.line(&format!("EVALSHA {sha} 0"));
    p.line(&format!("SCRIPT EXISTS {sha}"));
    p.same(&[b"SCRIPT", b"LOAD", b"return +"]);
    p.same(&[b"SCRIPT", b"LOAD", b"#!lua flags=bad\nreturn 1"]);
    p.same(&[b"SCRIPT", b"LOAD", b"#!lua flags=no-writes\nreturn 1"]);
}

#[test]
fn scripts_inside_multi_exec_match_redis() {
    let mut p = Pair::start();
    p.line("MULTI");
    p.same(&[b"EVAL", b"return redis.call('incr', KEYS[1])", b"1", b"c"]);
    p.same(&[b"EVAL", b"return redis.call('nosuch')", b"0"]);
    p.same(&[
        b"EVAL",
        b"return {1, redis.call('get', KEYS[1])}",
        b"1",
        b"c",
    ]);
    p.line("EXEC");
    p.line("GET c");
}

/// The script's client is kept from run to run and takes the caller's user each
/// time: a script sees the ACL of whoever runs it now, not of who ran the last one,
/// nor the rules a user had before an ACL SETUSER.
#[test]
fn scripts_run_with_the_acl_of_their_current_caller_like_redis() {
    let mut p = Pair::start();
    let set = b"return redis.call('set', KEYS[1], ARGV[1])".as_slice();
    let get = b"return redis.call('get', KEYS[1])".as_slice();
    p.line("ACL SETUSER u on >pw +@all ~*");
    p.same(&[b"EVAL", set, b"1", b"k", b"default"]);
    p.line("AUTH u pw");
    p.same(&[b"EVAL", set, b"1", b"k", b"u"]);
    p.line("ACL SETUSER u -set");
    // Refused now, with Redis's text; a read still runs.
    let refused = p.same(&[b"EVAL", set, b"1", b"k", b"u-again"]);
    assert!(
        matches!(&refused, R::Err(e) if e.contains("can't run this command")),
        "{refused:?}"
    );
    assert_eq!(p.same(&[b"EVAL", get, b"1", b"k"]), R::Bulk(b"u".to_vec()));
    p.line("AUTH default anything");
    p.same(&[b"EVAL", set, b"1", b"k", b"default-again"]);
    p.same(&[b"EVAL", get, b"1", b"k"]);
    p.line("AUTH u pw");
    p.same(&[b"EVAL", set, b"1", b"k", b"u-third"]);
    p.line("GET k");
}

/// After a failed BGSAVE (`stop-writes-on-bgsave-error yes`), a script's write is
/// refused with MISCONF in every run (the check is made once per run, not once per
/// server), and `redis.pcall` hands the refusal to the script.
#[test]
fn script_writes_after_a_failed_bgsave_get_misconf_in_every_run() {
    let s = TestServer::start(FAILING_BGSAVE);
    let mut c = s.conn();
    let set = "return redis.call('set', KEYS[1], '1')";
    assert_eq!(c.cmd_args(&[b"EVAL", set.as_bytes(), b"1", b"a"]), R::ok());
    fail_a_bgsave(&s, &mut c);
    for key in ["b", "c"] {
        let r = c.cmd_args(&[b"EVAL", set.as_bytes(), b"1", key.as_bytes()]);
        assert!(
            r.err_text()
                .starts_with("MISCONF Redis is configured to save RDB snapshots"),
            "{r:?}"
        );
    }
    let pcall = "local r = redis.pcall('set', KEYS[1], '1') return r['err']";
    let r = c.cmd_args(&[b"EVAL", pcall.as_bytes(), b"1", b"d"]);
    assert!(
        matches!(&r, R::Bulk(b) if b.starts_with(b"MISCONF Redis is configured")),
        "{r:?}"
    );
    // Reads still run in scripts; nothing was written.
    let get = "return {redis.call('get', 'a'), redis.call('exists', 'b', 'c', 'd')}";
    assert_eq!(
        c.cmd_args(&[b"EVAL", get.as_bytes(), b"0"]),
        R::Arr(vec![R::bulk("1"), R::Int(0)])
    );
}

/// Reads one raw reply (any nesting) without recursion, for replies too deep for
/// the recursive test reader.
fn read_raw_reply(c: &mut Conn) -> Vec<u8> {
    use std::io::{BufRead, Read};
    let mut out = Vec::new();
    let mut pending = 1u64;
    while pending > 0 {
        pending -= 1;
        let mut line = Vec::new();
        c.stream.read_until(b'\n', &mut line).expect("read");
        assert!(!line.is_empty(), "connection closed");
        out.extend_from_slice(&line);
        let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        match line[0] {
            b'*' | b'~' | b'>' if n > 0 => pending += n as u64,
            b'%' if n > 0 => pending += 2 * n as u64,
            b'$' | b'=' if n >= 0 => {
                let mut body = vec![0u8; n as usize + 2];
                c.stream.read_exact(&mut body).expect("bulk");
                out.extend_from_slice(&body);
            }
            _ => {}
        }
    }
    out
}

#[test]
fn deeply_nested_tables_end_in_the_stack_limit_error_like_redis() {
    let mut p = Pair::start();
    for depth in [100, 1000, 7994, 7995, 7996, 10_000, 100_000] {
        let src = format!(
            "local t = {{}} local c = t for i=1,{depth} do local n = {{}} c[1] = n c = n end return t"
        );
        let args: [&[u8]; 3] = [b"EVAL", src.as_bytes(), b"0"];
        p.a.send(&args);
        p.b.send(&args);
        let (ra, rb) = (read_raw_reply(&mut p.a), read_raw_reply(&mut p.b));
        assert!(
            ra == rb,
            "depth {depth}: replies differ ({} vs {} bytes)",
            ra.len(),
            rb.len()
        );
    }
    // Both are still serving.
    p.line("PING");
}

#[test]
fn big_numbers_and_verbatim_strings_match_redis_byte_for_byte() {
    let mut p = Pair::start();
    for proto in ["2", "3"] {
        p.a.cmd(&format!("HELLO {proto}"));
        p.b.cmd(&format!("HELLO {proto}"));
        for src in [
            "return {big_number='123'}",
            "return {big_number='1\r\n2'}",
            "return {1, {big_number='-9'}, {verbatim_string={format='mkd',string='# x'}}}",
            "return {map={k={big_number='7'}}}",
        ] {
            let args: [&[u8]; 3] = [b"EVAL", src.as_bytes(), b"0"];
            p.a.send(&args);
            p.b.send(&args);
            let (ra, rb) = (read_raw_reply(&mut p.a), read_raw_reply(&mut p.b));
            assert!(
                ra == rb,
                "{src} in RESP{proto}: {:?} vs {:?}",
                String::from_utf8_lossy(&ra),
                String::from_utf8_lossy(&rb)
            );
        }
    }
}

#[test]
fn big_results_and_many_arguments_match_redis() {
    let mut p = Pair::start();
    for src in [
        "local t = {} for i = 1, 50000 do t[i] = tostring(i) end return t",
        "local t = {} for i = 1, 20000 do t[i] = {i, tostring(i), {ok = 'x'}} end return t",
        "local t = {} for i = 1, 5000 do t[i] = i * 1.5 end return t",
        "redis.call('del', 'big') for i = 1, 10000 do redis.call('rpush', 'big', i) end return redis.call('lrange', 'big', 0, -1)",
        "local t = {} for i = 1, 7000 do t[i] = 'k' .. i end return redis.call('mget', unpack(t))",
    ] {
        let args: [&[u8]; 3] = [b"EVAL", src.as_bytes(), b"0"];
        p.a.send(&args);
        p.b.send(&args);
        let (ra, rb) = (read_raw_reply(&mut p.a), read_raw_reply(&mut p.b));
        assert!(ra == rb, "{src}: replies differ ({} vs {} bytes)", ra.len(), rb.len());
    }
    // A map of many keys: same size (its order is Lua's table order, the same here).
    p.a.cmd("HELLO 3");
    p.b.cmd("HELLO 3");
    let src = "local t = {} for i = 1, 50000 do t['k' .. i] = i end return {map = t}";
    let args: [&[u8]; 3] = [b"EVAL", src.as_bytes(), b"0"];
    p.a.send(&args);
    p.b.send(&args);
    let (ra, rb) = (read_raw_reply(&mut p.a), read_raw_reply(&mut p.b));
    assert_eq!(ra.len(), rb.len());
    assert!(ra == rb, "map order differs from Redis");
}

#[test]
fn selecting_a_database_inside_a_script_leaves_the_caller_in_its_own() {
    let ours = TestServer::start(&[]);
    let mut c = ours.conn();
    assert_eq!(
        c.cmd_args(&[
            b"EVAL",
            b"redis.call('select', 2) return redis.call('set', 'k', 'in2')",
            b"0"
        ]),
        R::ok()
    );
    assert_eq!(c.cmd("GET k"), R::Nil);
    assert_eq!(c.cmd("SELECT 2"), R::ok());
    assert_eq!(c.cmd("GET k"), b("in2"));
}

/// A field of INFO's text.
fn info_field(c: &mut Conn, section: &str, name: &str) -> String {
    let R::Bulk(text) = c.cmd(&format!("INFO {section}")) else {
        panic!("INFO reply")
    };
    let text = String::from_utf8(text).expect("utf8");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {name} in INFO {section}"))
}

#[test]
fn info_reports_cached_scripts_and_lua_memory_and_flush_frees_them() {
    let ours = TestServer::start(&[]);
    let mut c = ours.conn();
    assert_eq!(
        info_field(&mut c, "memory", "number_of_cached_scripts"),
        "0"
    );
    let base: u64 = info_field(&mut c, "memory", "used_memory_lua")
        .parse()
        .expect("int");
    assert!(base > 0, "a fresh VM uses some memory");
    assert_eq!(
        info_field(&mut c, "memory", "used_memory_scripts_eval"),
        "0"
    );
    for i in 0..200 {
        let src = format!("local t = {{}} for i=1,100 do t[i] = '{i}' .. i end return #t");
        assert_eq!(c.cmd_args(&[b"EVAL", src.as_bytes(), b"0"]), R::Int(100));
    }
    assert_eq!(
        c.cmd_args(&[b"SCRIPT", b"LOAD", b"return 1"]),
        b("e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
    );
    assert_eq!(
        info_field(&mut c, "memory", "number_of_cached_scripts"),
        "201"
    );
    let grown: u64 = info_field(&mut c, "memory", "used_memory_lua")
        .parse()
        .expect("int");
    assert!(grown > base, "{grown} > {base}");
    let eval_bytes: u64 = info_field(&mut c, "memory", "used_memory_scripts_eval")
        .parse()
        .expect("int");
    assert!(eval_bytes > 200 * 40, "{eval_bytes}");
    assert_eq!(c.cmd("SCRIPT FLUSH"), R::ok());
    assert_eq!(
        info_field(&mut c, "memory", "number_of_cached_scripts"),
        "0"
    );
    assert_eq!(
        info_field(&mut c, "memory", "used_memory_scripts_eval"),
        "0"
    );
    let after: u64 = info_field(&mut c, "memory", "used_memory_lua")
        .parse()
        .expect("int");
    assert!(
        after < grown && after <= base + 4096,
        "{after} vs {base}/{grown}"
    );
    assert_eq!(
        c.cmd("EVALSHA e0e1f9fabfc9d4800c877a703b823ac0578ff8db 0"),
        err("NOSCRIPT No matching script. Please use EVAL.")
    );
}

#[test]
fn script_errors_and_huge_results_leave_the_server_serving() {
    let ours = TestServer::start(&[]);
    let mut c = ours.conn();
    // Memory a script may take is bounded: building past the limit fails the script.
    let r = c.cmd_args(&[
        b"EVAL",
        b"local s = 'x' for i = 1, 26 do s = s .. s end local t = {} for i = 1, 32 do t[i] = s .. i end return #t",
        b"0",
    ]);
    let R::Err(text) = r else { panic!("{r:?}") };
    assert!(text.contains("not enough memory"), "{text}");
    // Binary chunks never load.
    let r = c.cmd_args(&[
        b"EVAL",
        b"return {loadstring(string.dump(function() return 1 end))}",
        b"0",
    ]);
    assert!(!matches!(r, R::Int(1)), "{r:?}");
    let r = c.cmd_args(&[b"EVAL", b"return loadstring('\\27Lua')", b"0"]);
    assert_eq!(r, R::Nil);
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(
        c.cmd_args(&[b"EVAL", b"return 'still here'", b"0"]),
        b("still here")
    );
    // The memory of the failed script was reclaimed: a big script fits again.
    assert_eq!(
        c.cmd_args(&[
            b"EVAL",
            b"local s = 'x' for i = 1, 27 do s = s .. s end return #s",
            b"0"
        ]),
        R::Int(1 << 27)
    );
}

#[test]
fn writes_of_a_script_reach_the_aof_wrapped_in_multi_exec_and_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let ours = TestServer::start_in(dir, &["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = ours.conn();
    assert_eq!(
        c.cmd_args(&[
            b"EVAL",
            b"redis.call('set', KEYS[1], ARGV[1]) redis.call('rpush', KEYS[2], 'a', 'b') return redis.call('incrby', KEYS[3], 5)",
            b"3",
            b"s",
            b"l",
            b"n",
            b"v1"
        ]),
        R::Int(5)
    );
    // A script that only reads propagates nothing; one write goes alone.
    assert_eq!(
        c.cmd_args(&[b"EVAL", b"return redis.call('get','s')", b"0"]),
        b("v1")
    );
    assert_eq!(
        c.cmd_args(&[b"EVAL", b"return redis.call('set','one','1')", b"0"]),
        R::ok()
    );
    // REPL_NONE keeps a write out of the stream.
    assert_eq!(
        c.cmd_args(&[
            b"EVAL",
            b"redis.set_repl(redis.REPL_NONE) redis.call('set','local','x') return 1",
            b"0"
        ]),
        R::Int(1)
    );
    drop(c);
    let aof = read_aof(&path);
    let text = String::from_utf8_lossy(&aof);
    assert!(
        !text.to_ascii_lowercase().contains("eval"),
        "EVAL itself is never written: {text}"
    );
    let multi = text
        .find("MULTI")
        .expect("the three writes are wrapped in MULTI");
    let exec = text.find("EXEC").expect("EXEC");
    let set = text.find("v1").expect("SET s v1");
    assert!(multi < set && set < exec, "{text}");
    assert!(
        !text.contains("local"),
        "REPL_NONE write was propagated: {text}"
    );
    let dir = std::mem::replace(&mut { ours }.dir, tempfile::tempdir().expect("tempdir"));
    let ours = TestServer::start_in(dir, &["--appendonly", "yes"]);
    let mut c = ours.conn();
    assert_eq!(c.cmd("GET s"), b("v1"));
    assert_eq!(c.cmd("LRANGE l 0 -1"), arr(&["a", "b"]));
    assert_eq!(c.cmd("GET n"), b("5"));
    assert_eq!(c.cmd("GET one"), b("1"));
    assert_eq!(c.cmd("GET local"), R::Nil);
}

/// Every AOF file's bytes under `dir` (the manifest's base and incr files).
fn read_aof(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(".aof") {
                out.extend(std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

#[test]
fn oom_refuses_memory_growing_calls_until_the_script_wrote() {
    let ours = TestServer::start(&[]);
    let mut c = ours.conn();
    assert_eq!(c.cmd("SET big x"), R::ok());
    assert_eq!(c.cmd("CONFIG SET maxmemory 1"), R::ok());
    let r = c.cmd_args(&[b"EVAL", b"return redis.call('set','k','v')", b"0"]);
    assert_eq!(
        r,
        err("OOM command not allowed when used memory > 'maxmemory'. script: d223ed8c7345b684e8ed044ed472601f536fa58b, on @user_script:1.")
    );
    // A script with a shebang that may write is refused at once.
    let r = c.cmd_args(&[b"EVAL", b"#!lua\nreturn 1", b"0"]);
    assert_eq!(
        r,
        err("OOM command not allowed when used memory > 'maxmemory'.")
    );
    // Reads, no-writes and allow-oom scripts run.
    assert_eq!(
        c.cmd_args(&[b"EVAL", b"return redis.call('get','big')", b"0"]),
        b("x")
    );
    assert_eq!(
        c.cmd_args(&[b"EVAL", b"#!lua flags=no-writes\nreturn 1", b"0"]),
        R::Int(1)
    );
    assert_eq!(
        c.cmd_args(&[
            b"EVAL",
            b"#!lua flags=allow-oom\nreturn redis.call('set','k2','v')",
            b"0"
        ]),
        R::ok()
    );
    assert_eq!(c.cmd("CONFIG SET maxmemory 0"), R::ok());
    assert_eq!(c.cmd("GET k"), R::Nil);
    assert_eq!(c.cmd("GET k2"), b("v"));
}

#[test]
fn oom_texts_match_redis() {
    let mut p = Pair::start();
    p.line("SET big x");
    p.line("CONFIG SET maxmemory 1");
    p.eval(&e("return redis.call('set','k','v')"));
    p.eval(&e("#!lua\nreturn 1"));
    p.eval(&e("return redis.call('get','big')"));
    p.eval(&e("#!lua flags=no-writes\nreturn 1"));
    p.eval(&e(
        "#!lua flags=allow-oom\nreturn redis.call('set','k2','v')",
    ));
    p.line("CONFIG SET maxmemory 0");
}

#[test]
fn busy_script_gets_busy_replies_and_script_kill_recovers() {
    let admin = free_port();
    let ours = TestServer::start(&[
        "--busy-reply-threshold",
        "200",
        "--tandem-admin-port",
        &admin.to_string(),
    ]);
    let mut runner = ours.conn();
    runner.send(&[b"EVAL", b"while true do end", b"0"]);
    let mut other = ours.conn();
    let started = std::time::Instant::now();
    let mut last = R::Nil;
    assert!(
        wait_until(Duration::from_secs(3), || {
            last = other.cmd("PING");
            matches!(&last, R::Err(e) if e.starts_with("BUSY"))
        }),
        "no BUSY: {last:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "BUSY came late");
    assert_eq!(
        last,
        err("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")
    );
    assert!(matches!(other.cmd("GET x"), R::Err(e) if e.starts_with("BUSY")));
    assert!(matches!(other.cmd("INFO"), R::Err(e) if e.starts_with("BUSY")));
    // The admin port keeps answering liveness; readiness says why traffic should wait.
    assert_eq!(http_get(admin, "/healthz").0, 200);
    assert_eq!(http_get(admin, "/readyz").0, 503);
    // Redis 7.0.15: FUNCTION KILL does not stop an EVAL script, it names SCRIPT KILL.
    assert_eq!(
        other.cmd("FUNCTION KILL"),
        err("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")
    );
    assert_eq!(other.cmd("SCRIPT KILL"), R::ok());
    assert_eq!(
        runner.read(),
        err("ERR Script killed by user with SCRIPT KILL... script: 694a5fe1ddb97a4c6a1bf299d9537c7d3d0f84e7, on @user_script:1.")
    );
    assert_eq!(other.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(runner.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(
        other.cmd("SCRIPT KILL"),
        err("NOTBUSY No scripts in execution right now.")
    );
    assert_eq!(http_get(admin, "/readyz").0, 200);

    // pcall cannot swallow the kill.
    runner.send(&[
        b"EVAL",
        b"while true do pcall(function() while true do end end) end",
        b"0",
    ]);
    assert!(wait_until(Duration::from_secs(3), || matches!(
        other.cmd("PING"),
        R::Err(e) if e.starts_with("BUSY")
    )));
    assert_eq!(other.cmd("SCRIPT KILL"), R::ok());
    assert!(matches!(runner.read(), R::Err(e) if e.starts_with("ERR Script killed by user")));
    assert_eq!(other.cmd("PING"), R::Simple("PONG".into()));
}

#[test]
fn a_busy_script_that_wrote_is_unkillable_and_shutdown_nosave_stops_the_server() {
    let mut ours = TestServer::start(&["--busy-reply-threshold", "100"]);
    let mut runner = ours.conn();
    runner.send(&[
        b"EVAL",
        b"redis.call('set','k','v') while true do end",
        b"0",
    ]);
    let mut other = ours.conn();
    assert!(wait_until(Duration::from_secs(3), || matches!(
        other.cmd("PING"),
        R::Err(e) if e.starts_with("BUSY")
    )));
    assert_eq!(
        other.cmd("SCRIPT KILL"),
        err("UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.")
    );
    other.send(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(
        wait_until(Duration::from_secs(10), || matches!(
            ours.child.try_wait(),
            Ok(Some(_))
        )),
        "the server did not exit"
    );
}

/// GET over plain HTTP/1.1: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn eval_written_by_an_older_server_in_the_aof_is_replayed_at_startup() {
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut ours = TestServer::start(&args);
    assert_eq!(ours.conn().cmd("SET before x"), R::ok());
    let _ = ours.child.kill();
    let _ = ours.child.wait();
    let dir = std::mem::replace(&mut ours.dir, tempfile::tempdir().expect("tempdir"));
    drop(ours);
    // Redis before 7.0 wrote the EVAL itself (script replication), not its effects.
    let incr = dir.path().join("appendonlydir/appendonly.aof.1.incr.aof");
    let mut data = std::fs::read(&incr).expect("incr file");
    let script = "redis.call('set', KEYS[1], ARGV[1]) return redis.call('incr', 'n')";
    data.extend_from_slice(
        format!(
            "*5\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n1\r\n$7\r\nfromaof\r\n$1\r\nv\r\n",
            script.len()
        )
        .as_bytes(),
    );
    std::fs::write(&incr, &data).expect("write incr");
    let ours = TestServer::start_in(dir, &args);
    let mut c = ours.conn();
    assert_eq!(c.cmd("GET before"), b("x"));
    assert_eq!(c.cmd("GET fromaof"), b("v"));
    assert_eq!(c.cmd("GET n"), b("1"));
}

/// A script that grows KEYS or ARGV past what a run keeps (1024 entries) gets the next
/// run fresh tables, and the runs after that see their own keys and arguments: the
/// globals follow the kept tables, also when one is replaced.
#[test]
fn outgrown_keys_and_argv_tables_leave_later_runs_their_own_keys() {
    let mut p = Pair::start();
    let grow = "for i = 1, 2000 do KEYS[i] = 'k' .. i ARGV[i] = i end return {#KEYS, #ARGV}";
    let look = "return {#KEYS, #ARGV, KEYS[1], KEYS[2], ARGV[1], tostring(KEYS[1500])}";
    for _ in 0..2 {
        p.eval(&Call("EVAL", grow, &["a"], &["b"]));
        p.eval(&Call("EVAL", look, &["x", "y"], &["z"]));
        p.eval(&Call("EVAL", look, &[], &[]));
        p.eval(&Call("EVAL", grow, &[], &[]));
        p.eval(&Call("EVAL", look, &["only"], &[]));
    }
}

/// Runs reuse the KEYS/ARGV tables (EVAL) and redis.call reads its arguments off the
/// Lua stack: what one script leaves in KEYS/ARGV (extra entries, fields, a
/// metatable) is gone in the next, numbers become the strings Lua would make, and
/// the errors redis.call raises are tables, as in Redis.
#[test]
fn reused_keys_argv_and_number_arguments_match_redis() {
    let mut p = Pair::start();
    let dirty = "KEYS[9] = 'x' KEYS.f = 1 ARGV[1] = nil \
                 setmetatable(ARGV, {__index = function() return 'meta' end}) \
                 return {#KEYS, #ARGV}";
    let look =
        "return {#KEYS, #ARGV, KEYS[1], KEYS[9], tostring(KEYS.f), tostring(ARGV[7]), ARGV[1]}";
    for _ in 0..3 {
        p.eval(&Call("EVAL", dirty, &["a", "b", "c"], &["1", "2"]));
        p.eval(&Call("EVAL", look, &["k"], &["v"]));
        p.eval(&Call("EVAL", look, &[], &[]));
    }
    for n in [
        "0.1",
        "1/3",
        "-0.0",
        "1e14",
        "1e13",
        "123456789012345",
        "-7",
        "2^53",
        "0/0",
        "1/0",
        "-1/0",
        "3.0",
        "-2.5e-7",
    ] {
        p.eval(&e(&format!(
            "redis.call('set', 'n', {n}) return redis.call('get', 'n')"
        )));
    }
    for s in [
        "return {xpcall(function() return redis.call('nosuch') end, function(e) return type(e) end)}",
        "local ok, e = pcall(redis.call, 'nosuch') return {tostring(ok), e}",
        "return redis.pcall('set', 'a')",
        "local r = redis.pcall('set', 'a') return {type(r), r.err}",
        "return redis.call('set', 'a', true)",
        "return redis.call('lrange', 'nokey', 0, -1)",
        "redis.call('rpush', 'l2', 'a', 'b') return #redis.call('lrange', 'l2', 0, -1)",
    ] {
        p.eval(&e(s));
    }
}

/// The script commands of the MONITOR differential test, on one server.
fn monitor_scripts(port: u16) -> Vec<String> {
    let mut c = Conn::connect(port);
    let mut mon = Conn::connect(port);
    assert_eq!(mon.cmd("MONITOR"), R::ok());
    let get = b"return redis.call('GET', KEYS[1])";
    let select = b"redis.call('SELECT', '3'); return redis.call('SET', 'x', '1')";
    let sha = match c.cmd_args(&[b"SCRIPT", b"LOAD", b"return redis.call('INCR', KEYS[1])"]) {
        R::Bulk(s) => s,
        other => panic!("SCRIPT LOAD: {other:?}"),
    };
    let lib = b"#!lua name=monlib\nredis.register_function('mf', function(k, a) return redis.call('SET', k[1], a[1]) end)";
    let calls: Vec<Vec<&[u8]>> = vec![
        vec![b"EVAL", get, b"1", b"foo"],
        vec![b"evalsha", &sha, b"1", b"cnt"],
        vec![b"EVAL_RO", get, b"1", b"cnt"],
        // Shown although they fail: before the script runs, and with no calls.
        vec![b"EVAL", b"return x(", b"0"],
        vec![b"EVAL", b"return 1", b"-1"],
        vec![b"EVALSHA", &[b'0'; 40], b"0"],
        vec![b"EVAL_RO", b"return redis.call('SET', 'a', 'b')", b"0"],
        // Calls refused before they run are not shown, nor admin commands.
        vec![b"EVAL", b"return redis.call('GET')", b"0"],
        vec![b"EVAL", b"return redis.call('nosuch')", b"0"],
        vec![b"EVAL", b"return redis.call('CONFIG', 'GET', 'port')", b"0"],
        // A call that fails while running is shown.
        vec![
            b"EVAL",
            b"return redis.pcall('INCR', KEYS[1])",
            b"1",
            b"str",
        ],
        // The database a script selects is the one its calls show.
        vec![b"EVAL", select, b"0"],
        vec![b"FUNCTION", b"LOAD", b"REPLACE", lib],
        vec![b"FCALL", b"mf", b"1", b"fk", b"fv"],
        vec![b"FCALL_RO", b"nosuch", b"0"],
        vec![b"MULTI"],
        vec![b"EVAL", b"return redis.call('PING')", b"0"],
        vec![b"EXEC"],
    ];
    assert_eq!(c.cmd("SET str abc"), R::ok());
    for call in &calls {
        c.cmd_args(call);
    }
    assert_eq!(c.cmd("ECHO end"), R::bulk("end"));
    monitor_lines(&mut mon)
}

#[test]
fn monitor_shows_a_script_before_its_calls_and_the_calls_as_lua_like_redis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let s = TestServer::start(&[]);
    let got = monitor_scripts(s.port);
    assert_eq!(got, monitor_scripts(redis.port));
    assert!(
        got.contains(&"[0 lua] \"GET\" \"foo\"".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"[3 lua] \"SET\" \"x\" \"1\"".to_string()),
        "{got:?}"
    );
}

#[test]
fn scripts_that_may_write_meet_min_replicas_and_ro_commands_as_they_start_like_redis() {
    let mut p = Pair::start();
    let lib = b"#!lua name=mr\nredis.register_function{function_name='f_default', callback=function(k, a) return redis.call('get', k[1]) end, flags={}}\nredis.register_function{function_name='f_ro', callback=function(k, a) return redis.call('get', k[1]) end, flags={'no-writes'}}";
    p.same(&[b"FUNCTION", b"LOAD", b"REPLACE", lib]);
    p.same(&[b"SET", b"foo", b"12345"]);
    let calls: [&[&[u8]]; 8] = [
        &[b"FCALL", b"f_default", b"1", b"foo"],
        &[b"FCALL", b"f_ro", b"1", b"foo"],
        &[b"FCALL_RO", b"f_default", b"1", b"foo"],
        &[b"FCALL_RO", b"f_ro", b"1", b"foo"],
        &[
            b"EVAL",
            b"#!lua\nreturn redis.call('get', KEYS[1])",
            b"1",
            b"foo",
        ],
        &[
            b"EVAL_RO",
            b"#!lua\nreturn redis.call('get', KEYS[1])",
            b"1",
            b"foo",
        ],
        &[b"EVAL_RO", b"#!lua flags=no-writes\nreturn 1", b"0"],
        &[b"EVAL", b"return redis.call('get', KEYS[1])", b"1", b"foo"],
    ];
    for replicas in [b"0", b"1"] {
        p.same(&[b"CONFIG", b"SET", b"min-replicas-to-write", replicas]);
        for call in calls {
            p.same(call);
        }
    }
    p.same(&[b"CONFIG", b"SET", b"min-replicas-to-write", b"1"]);
    let r = p.same(&[b"FCALL", b"f_default", b"1", b"foo"]);
    assert!(r.err_text().starts_with("NOREPLICAS"), "{r:?}");
}
