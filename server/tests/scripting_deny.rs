//! What scripts may call and how commands answer them, side by side with Debian's
//! redis-server 7.0.15: DEBUG SET-DISABLE-DENY-SCRIPTS (the `noscript` rule lifted,
//! DEBUG PROTOCOL replies converted for Lua and back in RESP2 and RESP3), the
//! commands that answer a script differently from a client (XREAD BLOCK, SUBSCRIBE,
//! SORT of a set, BGSAVE), subcommand rules (CLUSTER RESET), `redis.acl_check_cmd`,
//! and the expiry clock stopped at a script's start. What Redis crashes on (a script
//! starting a script, SCRIPT FLUSH from a script) is checked on Tandem alone.
mod common;
use common::*;
use std::io::{BufRead, Read};
use std::time::Duration;

const NOT_ALLOWED: &str = "ERR This Redis command is not allowed from script";

/// Reads one whole reply and returns its bytes (every RESP3 type; an attribute is
/// returned with the reply that follows it).
fn raw_one(c: &mut Conn) -> Vec<u8> {
    let mut line = Vec::new();
    c.stream.read_until(b'\n', &mut line).expect("read");
    assert!(!line.is_empty(), "connection closed by server");
    let head = line[1..line.len() - 2].to_vec();
    let n = || -> i64 { String::from_utf8_lossy(&head).parse().expect("length") };
    match line[0] {
        b'$' | b'=' | b'!' if n() >= 0 => {
            let mut body = vec![0u8; n() as usize + 2];
            c.stream.read_exact(&mut body).expect("bulk");
            line.extend_from_slice(&body);
        }
        b'*' | b'~' | b'>' | b'%' | b'|' if n() >= 0 => {
            let items = if matches!(line[0], b'%' | b'|') {
                n() * 2
            } else {
                n()
            };
            for _ in 0..items {
                line.extend(raw_one(c));
            }
            if line[0] == b'|' {
                line.extend(raw_one(c));
            }
        }
        _ => {}
    }
    line
}

impl Pair {
    /// Sends `args` to both and requires byte-identical replies.
    fn raw_same(&mut self, args: &[&str]) -> Vec<u8> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.a.send(&args);
        self.b.send(&args);
        let (ours, theirs) = (raw_one(&mut self.a), raw_one(&mut self.b));
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "reply to {:?} differs from Redis 7.0.15",
            args.iter()
                .map(|a| String::from_utf8_lossy(a))
                .collect::<Vec<_>>()
        );
        ours
    }

    /// EVAL of `src` with no keys on both, byte-identical replies required.
    fn eval_same(&mut self, src: &str) -> Vec<u8> {
        self.raw_same(&["EVAL", src, "0"])
    }

    fn lift_deny(&mut self, on: bool) {
        let line = format!("DEBUG SET-DISABLE-DENY-SCRIPTS {}", u8::from(on));
        assert_eq!(self.same_words(&line), R::ok());
    }
}

#[test]
fn noscript_commands_are_refused_until_debug_lifts_the_rule() {
    let mut p = Both::start();
    let call = "return redis.call('debug','protocol','string')";
    let refused = p.eval_same(call);
    assert!(String::from_utf8_lossy(&refused).starts_with(&format!("-{NOT_ALLOWED}")));
    p.lift_deny(true);
    assert_eq!(p.eval_same(call), b"$11\r\nHello World\r\n");
    p.eval_same("return redis.call('client','list') ~= nil");
    // Any non-numeric argument reads as 0 (C's atoi), as does 0.
    p.same_words("DEBUG SET-DISABLE-DENY-SCRIPTS nope");
    p.eval_same(call);
    p.lift_deny(true);
    p.lift_deny(false);
    p.eval_same(call);
    p.same_words("DEBUG SET-DISABLE-DENY-SCRIPTS");
    p.same_words("DEBUG SET-DISABLE-DENY-SCRIPTS 1 2");
}

#[test]
fn debug_set_disable_deny_scripts_needs_debug_enabled() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let r = c.cmd("DEBUG SET-DISABLE-DENY-SCRIPTS 1");
    assert!(
        r.err_text().starts_with("ERR DEBUG command not allowed"),
        "{r:?}"
    );
    let r = c.cmd_args(&[b"EVAL", b"return redis.call('client','list')", b"0"]);
    assert!(r.err_text().starts_with(NOT_ALLOWED), "{r:?}");
}

const PROTOCOL_TYPES: &[&str] = &[
    "string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib", "verbatim",
    "true", "false",
];

#[test]
fn debug_protocol_replies_reach_scripts_and_clients_as_redis_converts_them() {
    let mut p = Both::start();
    p.lift_deny(true);
    for client in ["2", "3"] {
        // (HELLO's reply holds the client id.)
        for c in [&mut p.0.a, &mut p.0.b] {
            assert!(matches!(
                c.cmd(&format!("HELLO {client}")),
                R::Arr(_) | R::Map(_)
            ));
        }
        for lua in ["2", "3"] {
            for t in PROTOCOL_TYPES {
                p.eval_same(&format!(
                    "redis.setresp({lua}); return redis.call('debug', 'protocol', '{t}')"
                ));
                // What Lua itself sees of it.
                p.eval_same(&format!(
                    "redis.setresp({lua}); local r = redis.call('debug', 'protocol', '{t}') \
                     if type(r) ~= 'table' then return {{type(r), tostring(r)}} end \
                     local keys = {{}} for k in pairs(r) do keys[#keys + 1] = tostring(k) end \
                     table.sort(keys) return keys"
                ));
            }
        }
        // A RESP2 script cannot take a push.
        p.eval_same("redis.setresp(2); return redis.call('debug', 'protocol', 'push')");
        // A big number the script makes itself, with CR LF inside.
        p.eval_same("return {big_number='123\\r\\n123'}");
    }
}

/// Stateful and connection commands a script may call once the rule is lifted, each
/// answered as Redis answers it (blocking commands as if timed out, subscribing and
/// MONITOR refused, transactions run at once).
const LIFTED_CALLS: &[&str] = &[
    "'multi'",
    "'exec'",
    "'discard'",
    "'watch', 'k'",
    "'unwatch'",
    "'blpop', 'nolist', '0'",
    "'brpop', 'nolist', '0'",
    "'blmove', 'nolist', 'x', 'left', 'left', '0'",
    "'brpoplpush', 'nolist', 'x', '0'",
    "'bzpopmin', 'noz', '0'",
    "'bzpopmax', 'noz', '0'",
    "'rpush', 'L', '1'",
    "'blpop', 'L', '0'",
    "'subscribe', 'ch'",
    "'psubscribe', 'p*'",
    "'ssubscribe', 'ch'",
    "'unsubscribe'",
    "'punsubscribe'",
    "'sunsubscribe'",
    "'ping'",
    "'monitor'",
    "'hello'",
    "'hello', '3'",
    "'auth', 'x'",
    "'client', 'setname', 'abc'",
    "'client', 'getname'",
    "'client', 'getredir'",
    "'client', 'caching', 'yes'",
    "'client', 'kill', 'id', '999999'",
    "'client', 'unblock', '999999'",
    "'client', 'no-evict', 'on'",
    "'config', 'get', 'maxmemory'",
    "'config', 'set', 'maxmemory', '0'",
    "'config', 'resetstat'",
    "'debug', 'sleep', '0'",
    "'debug', 'object', 'nokey'",
    "'script', 'exists', 'abc'",
    "'acl', 'whoami'",
    "'acl', 'users'",
    "'acl', 'getuser', 'nobody'",
    "'acl', 'setuser', 'probe'",
    "'acl', 'deluser', 'probe'",
    "'acl', 'dryrun', 'default', 'get', 'x'",
    "'latency', 'latest'",
    "'latency', 'reset'",
    "'module', 'list'",
    "'role'",
    "'wait', '0', '0'",
    "'save'",
    "'replicaof', 'no', 'one'",
    "'failover', 'abort'",
    "'cluster', 'reset'",
    "'shutdown', 'nosave', 'abort'",
];

#[test]
fn scripts_with_the_rule_lifted_get_redis_answers_from_noscript_commands() {
    let mut p = Both::start();
    p.lift_deny(true);
    // Within one script a MULTI runs what follows at once and EXEC answers an empty
    // array; the MULTI state ends with the script.
    p.eval_same(
        "return {redis.pcall('multi'), redis.pcall('set', 'inmulti', '1'), \
         redis.pcall('exec'), redis.pcall('exec')}",
    );
    for call in LIFTED_CALLS {
        // Tables by their size: some (HELLO, ROLE) hold the script client's id.
        p.eval_same(&format!(
            "local r = redis.pcall({call}) if type(r) == 'table' and r.err then \
             return 'error: ' .. r.err end \
             if type(r) == 'table' then return {{'table', #r}} end return r"
        ));
    }
    // The servers went on.
    p.eval_same("return redis.call('ping')");
    p.same_words("GET inmulti");
}

#[test]
fn scripts_never_run_scripts_or_replace_them_even_with_the_rule_lifted() {
    // Redis 7.0.15 aborts on an assertion (EVAL from a script) or crashes (SCRIPT
    // FLUSH from a script): Tandem refuses these calls.
    let s = TestServer::start(&["--enable-debug-command", "yes"]);
    let mut c = s.conn();
    let lib = "#!lua name=lib\nredis.register_function('f', function(keys, args) \
               local r = redis.pcall(unpack(args)) \
               if type(r) == 'table' and r.err then return 'error: ' .. r.err end \
               return r end)";
    assert_eq!(
        c.cmd_args(&[b"FUNCTION", b"LOAD", lib.as_bytes()]),
        R::bulk("lib")
    );
    let sha = c.cmd_args(&[b"SCRIPT", b"LOAD", b"return 'cached'"]);
    assert_eq!(c.cmd("DEBUG SET-DISABLE-DENY-SCRIPTS 1"), R::ok());
    let calls: &[&[&str]] = &[
        &["eval", "return 1", "0"],
        &["evalsha", "0000000000000000000000000000000000000000", "0"],
        &["eval_ro", "return 1", "0"],
        &[
            "evalsha_ro",
            "0000000000000000000000000000000000000000",
            "0",
        ],
        &["fcall", "f", "0", "ping"],
        &["fcall_ro", "f", "0", "ping"],
        &["script", "load", "return 2"],
        &["script", "flush"],
        &[
            "function",
            "load",
            "#!lua name=other\nredis.register_function('g', function() end)",
        ],
        &["function", "delete", "lib"],
        &["function", "flush"],
        &["function", "restore", "x"],
        &["debug", "reload"],
        &["debug", "loadaof"],
    ];
    let refused = R::bulk(&format!("error: {NOT_ALLOWED}"));
    for call in calls {
        // From an EVAL script...
        let quoted: Vec<String> = call.iter().map(|a| format!("{a:?}")).collect();
        let src = format!(
            "local r = redis.pcall({}) if type(r) == 'table' and r.err then \
             return 'error: ' .. r.err end return r",
            quoted.join(", ")
        );
        assert_eq!(
            c.cmd_args(&[b"EVAL", src.as_bytes(), b"0"]),
            refused,
            "{call:?}"
        );
        // ... and from a function.
        let mut args: Vec<&[u8]> = vec![b"FCALL", b"f", b"0"];
        args.extend(call.iter().map(|a| a.as_bytes()));
        assert_eq!(c.cmd_args(&args), refused, "{call:?} from FCALL");
    }
    // Scripts and functions are where they were.
    let R::Bulk(sha) = sha else {
        panic!("SCRIPT LOAD: {sha:?}")
    };
    assert_eq!(c.cmd_args(&[b"EVALSHA", &sha, b"0"]), R::bulk("cached"));
    assert_eq!(c.cmd("FCALL f 0 ping"), R::Simple("PONG".into()));
}

#[test]
fn xread_and_xreadgroup_refuse_block_in_scripts_as_redis_does() {
    let mut p = Pair::start();
    p.same_words("XADD s 1-1 f v");
    p.same_words("XGROUP CREATE s g 0");
    for call in [
        "'xread', 'BLOCK', 0, 'STREAMS', 's', '$'",
        "'XREAD', 'count', 1, 'block', 100, 'STREAMS', 's', '0'",
        "'xread', 'BLOCK', 'notanumber', 'STREAMS', 's', '0'",
        "'xread', 'COUNT', 'x', 'BLOCK', 0, 'STREAMS', 's', '0'",
        "'xread', 'STREAMS', 's', '0'",
        "'xread', 'STREAMS', 's', 'BLOCK'",
        "'xreadgroup', 'GROUP', 'g', 'c', 'BLOCK', 0, 'STREAMS', 's', '>'",
        "'XReadGroup', 'BLOCK', 0, 'GROUP', 'g', 'c', 'STREAMS', 's', '>'",
        "'xreadgroup', 'GROUP', 'g', 'c', 'COUNT', 1, 'STREAMS', 's', '0'",
    ] {
        p.eval_same(&format!("return redis.pcall({call})"));
        p.raw_same(&["EVAL", &format!("return redis.call({call})"), "0"]);
    }
}

#[test]
fn subscribing_is_refused_to_clients_that_expect_a_reply_per_command() {
    // Inside a transaction SSUBSCRIBE is refused (SUBSCRIBE and PSUBSCRIBE are kept
    // for backward compatibility).
    let mut p = Pair::start();
    for line in [
        "MULTI",
        "SSUBSCRIBE sch",
        "SUBSCRIBE ch",
        "PSUBSCRIBE p*",
        "EXEC",
    ] {
        p.raw_same(&line.split(' ').collect::<Vec<_>>());
    }
    p.raw_same(&["PUBSUB", "SHARDCHANNELS"]);
}

#[test]
fn subcommand_rules_apply_to_calls_from_scripts() {
    // CLUSTER RESET is `noscript`, CLUSTER INFO is not; a subcommand's own arity and
    // an unknown subcommand are checked as for a command.
    let mut p = Pair::start();
    for call in [
        "'cluster', 'reset'",
        "'cluster', 'reset', 'hard'",
        "'cluster', 'info'",
        "'config', 'get'",
        "'config', 'nosuch'",
        "'config', 'help'",
        "'script', 'help'",
        "'function', 'help'",
        "'object', 'encoding'",
        "'object', 'freq', 'nokey'",
        "'xinfo', 'stream'",
        "'memory', 'usage', 'nokey'",
    ] {
        p.eval_same(&format!(
            "local r = redis.pcall({call}) if type(r) == 'table' and r.err then \
             return 'error: ' .. r.err end return type(r)"
        ));
    }
}

#[test]
fn acl_check_cmd_answers_for_the_calling_user() {
    let mut p = Pair::start();
    p.same_words("ACL SETUSER bob on >123 +@scripting +set +publish +client|id ~x* &ch*");
    let cases = [
        "'set', 'xx', 1",
        "'set', 'yy', 1",
        "'hset', 'xx', 'f', 1",
        "'set'",
        "'get', 'xx'",
        "'publish', 'chan', 'm'",
        "'publish', 'other', 'm'",
        "'client', 'id'",
        "'client', 'list'",
        "'client', 'nosuch'",
        "'CLIENT'",
        "'invalid-cmd', 'arg'",
        "",
        "{}",
        "'set', 'x', {}",
        "'set', 'x', 1.5",
    ];
    for who in ["default", "bob"] {
        if who == "bob" {
            p.same_words("AUTH bob 123");
        }
        for args in cases {
            let sep = if args.is_empty() { "" } else { ", " };
            p.eval_same(&format!(
                "local ok, r = pcall(redis.acl_check_cmd{sep}{args}) \
                 if ok then return {{'ok', tostring(r)}} end \
                 return {{'raised', type(r) == 'table' and r.err or r}}"
            ));
            p.eval_same(&format!("return redis.acl_check_cmd({args})"));
        }
    }
    // A check is not a denial: the ACL log stays empty.
    p.same_words("AUTH default x");
    assert_eq!(p.same_words("ACL LOG"), R::Arr(vec![]));
}

#[test]
fn a_script_checks_expiry_against_the_time_it_started() {
    let mut p = Both::start();
    p.lift_deny(true);
    // The key expires during the script, but the script sees it alive; after the
    // script it is gone.
    let src = "redis.call('set', 'key', 'value', 'px', 1) \
               redis.call('debug', 'sleep', 0.01) \
               return {redis.call('exists', 'key'), redis.call('get', 'key'), \
               #redis.call('keys', 'k*'), redis.call('randomkey')}";
    assert_eq!(
        p.eval_same(src),
        b"*4\r\n:1\r\n$5\r\nvalue\r\n:1\r\n$3\r\nkey\r\n"
    );
    p.same_words("EXISTS key");
    // A relative expiry set late in a script counts from the real time, not from the
    // script's start (Redis 7.0 stops the clock for expiry checks only).
    p.same_words("DEBUG SET-ACTIVE-EXPIRE 0");
    let src = "redis.call('debug', 'sleep', 0.3) redis.call('set', 'late', 'v', 'px', 250) \
               return redis.call('exists', 'late')";
    p.eval_same(src);
    for c in [&mut p.0.a, &mut p.0.b] {
        match c.cmd("PTTL late") {
            R::Int(ms) => assert!(ms > 100, "PTTL {ms}"),
            other => panic!("PTTL: {other:?}"),
        }
    }
}

#[test]
fn sort_of_a_set_by_a_constant_is_ordered_in_scripts() {
    let mut p = Pair::start();
    p.same_words("SADD myset a b c d e f g z aa aaa azz 10 9");
    p.eval_same("return redis.call('sort', 'myset', 'by', '_')");
    p.eval_same("return redis.call('sort', 'myset', 'by', 'nosuch', 'desc', 'limit', 1, 4)");
    p.eval_same("return redis.call('sort', 'myset', 'by', '_', 'get', '#', 'get', '_:*')");
    // Lists keep their own order.
    p.same_words("RPUSH mylist c a b");
    p.eval_same("return redis.call('sort', 'mylist', 'by', '_')");
}

#[test]
fn bgsave_from_a_script_starts_at_once() {
    let mut p = Both::start();
    p.lift_deny(true);
    p.same_words("SET k v");
    p.eval_same("return redis.call('bgsave')");
    for c in [&mut p.0.a, &mut p.0.b] {
        assert!(wait_until(Duration::from_secs(10), || info_field(
            c,
            "persistence",
            "rdb_bgsave_in_progress"
        )
        .as_deref()
            == Some("0")));
        assert_eq!(
            info_field(c, "persistence", "rdb_last_bgsave_status").as_deref(),
            Some("ok")
        );
    }
}
