//! INFO commandstats, differential against Redis 7.0.15: the same sequence (successes,
//! commands refused before running, commands that answer errors, subcommands,
//! transactions, scripts) gives the same set of `cmdstat_*` lines with the same
//! calls / rejected_calls / failed_calls; CONFIG RESETSTAT clears them.
mod common;
use common::*;
use std::collections::BTreeMap;

/// `cmdstat_<name>` -> (calls, rejected_calls, failed_calls), and checks each line's
/// shape (usec and usec_per_call present, two decimals).
fn commandstats(c: &mut Conn) -> BTreeMap<String, (u64, u64, u64)> {
    let R::Bulk(text) = c.cmd("INFO commandstats") else {
        panic!("INFO");
    };
    let text = String::from_utf8(text).expect("utf8");
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let (name, fields) = line.split_once(':').expect("name:fields");
        let f: BTreeMap<&str, &str> = fields
            .split(',')
            .map(|kv| kv.split_once('=').expect("k=v"))
            .collect();
        let keys: Vec<&str> = fields
            .split(',')
            .map(|kv| kv.split_once('=').map_or("", |x| x.0))
            .collect();
        assert_eq!(
            keys,
            [
                "calls",
                "usec",
                "usec_per_call",
                "rejected_calls",
                "failed_calls"
            ],
            "{line}"
        );
        let per_call = f["usec_per_call"];
        assert_eq!(
            per_call.split_once('.').map(|x| x.1.len()),
            Some(2),
            "{line}"
        );
        let n = |k: &str| f[k].parse::<u64>().expect("number");
        out.insert(
            name.to_string(),
            (n("calls"), n("rejected_calls"), n("failed_calls")),
        );
    }
    out
}

const SEQUENCE: &[&[&str]] = &[
    &["SET", "s", "1"],
    &["GET", "s"],
    &["GET"],
    &["LPUSH", "s", "x"],
    &["INCR", "s"],
    &["SET", "n", "notanumber"],
    &["INCR", "n"],
    &["NOSUCHCOMMAND", "a"],
    &["CONFIG", "GET"],
    &["CONFIG", "NOSUCHSUB"],
    &["CONFIG", "GET", "maxmemory"],
    &["CLIENT", "GETNAME"],
    &["CLIENT"],
    &["OBJECT", "ENCODING", "s"],
    &["MULTI"],
    &["SET", "t", "1"],
    &["LPUSH", "t", "x"],
    &["EXEC"],
    &["MULTI"],
    &["GET"],
    &["EXEC"],
    &["EVAL", "return 1", "0"],
    &["EVAL", "return 0"],
    &["EVAL", "redis.call('lpush',KEYS[1],'x')", "1", "s"],
    &["EVAL", "return redis.pcall('incr',KEYS[1])", "1", "n"],
    &["SUBSCRIBE", "ch"],
];

#[test]
fn commandstats_count_calls_rejections_and_failures_like_redis() {
    let mut p = Pair::start();
    p.same(&[b"CONFIG", b"RESETSTAT"]);
    for args in SEQUENCE {
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        p.same(&refs);
    }
    p.same(&[b"UNSUBSCRIBE"]);
    // A client that has not authenticated is refused: rejected, not failed.
    p.same(&[b"CONFIG", b"SET", b"requirepass", b"pw"]);
    let ours = commandstats_with_auth(&mut p.a);
    let theirs = commandstats_with_auth(&mut p.b);
    assert_eq!(ours, theirs);
    assert_eq!(ours.get("cmdstat_get"), Some(&(1, 3, 0)));
    assert_eq!(ours.get("cmdstat_lpush"), Some(&(3, 0, 3)));
    assert!(ours.contains_key("cmdstat_client|getname"));
    assert!(!ours.keys().any(|k| k.contains("nosuch")));
    // CONFIG RESETSTAT clears everything (then counts itself).
    p.same(&[b"CONFIG", b"RESETSTAT"]);
    let (x, y) = (commandstats(&mut p.a), commandstats(&mut p.b));
    assert_eq!(x, y);
    assert_eq!(x.len(), 1, "{x:?}");
}

/// Sends GET from a fresh unauthenticated connection of the same server, then AUTHs
/// the main one and reads commandstats.
fn commandstats_with_auth(c: &mut Conn) -> BTreeMap<String, (u64, u64, u64)> {
    let port = c.stream.get_ref().peer_addr().expect("peer").port();
    let mut fresh = Conn::connect(port);
    assert!(matches!(fresh.cmd("GET s"), R::Err(e) if e.starts_with("NOAUTH")));
    assert_eq!(c.cmd("AUTH pw"), R::ok());
    commandstats(c)
}

#[test]
fn admin_metrics_read_the_same_counters() {
    let admin = free_port();
    let ours = TestServer::start(&["--tandem-admin-port", &admin.to_string()]);
    let mut c = ours.conn();
    c.cmd("SET s 1");
    c.cmd("LPUSH s x");
    c.cmd("GET");
    let body = http_get(admin, "/metrics");
    assert!(
        body.contains("redis_commands_failed_calls_total{cmd=\"lpush\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("redis_commands_rejected_calls_total{cmd=\"get\"} 1"),
        "{body}"
    );
    assert!(body.contains("redis_commands_total{cmd=\"lpush\"} 1"));
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin port");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

/// `usec` of one `cmdstat_<name>` line (0 when the command has no line).
fn usec_of(c: &mut Conn, name: &str) -> u64 {
    let R::Bulk(text) = c.cmd("INFO commandstats") else {
        panic!("INFO");
    };
    let text = String::from_utf8(text).expect("utf8");
    let prefix = format!("cmdstat_{name}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|f| f.split(',').find_map(|kv| kv.strip_prefix("usec=")))
        .map_or(0, |v| v.parse().expect("usec"))
}

/// A command a script calls is timed alone, as Redis times it: the Lua work between
/// two `redis.call`s counts for the script (EVAL's usec), not for the commands.
#[test]
fn commands_called_by_a_script_are_timed_without_the_lua_between_them() {
    let mut p = Pair::start();
    p.same(&[b"CONFIG", b"RESETSTAT"]);
    let script: &[u8] = b"redis.call('incr', 'k') local x = 0 \
        for i = 1, 3000000 do x = x + i end \
        redis.call('incr', 'k') for i = 1, 3000000 do x = x + i end \
        return redis.call('incr', 'k')";
    p.same(&[b"EVAL", script, b"0"]);
    for (who, c) in [("tandem", &mut p.a), ("redis", &mut p.b)] {
        let (eval, incr) = (usec_of(c, "eval"), usec_of(c, "incr"));
        // Two loops of 3M additions: milliseconds of Lua in EVAL's time.
        assert!(eval >= 2_000, "{who}: eval usec {eval}");
        assert!(incr * 10 < eval, "{who}: incr usec {incr} of eval's {eval}");
    }
}

/// INFO's `total_commands_processed` after `steps`, minus before (the INFO that reads
/// it counts as one, on both servers).
fn processed_delta(c: &mut Conn, steps: &[&[&[u8]]]) -> i64 {
    let read = |c: &mut Conn| -> i64 {
        info_field(c, "stats", "total_commands_processed")
            .and_then(|v| v.parse().ok())
            .expect("total_commands_processed")
    };
    let before = read(c);
    for step in steps {
        c.cmd_args(step);
    }
    read(c) - before
}

#[test]
fn total_commands_processed_counts_what_ran_like_redis() {
    // Refused commands (unknown, bad arity) and queued ones are not counted; EXEC's
    // commands and a script's calls are, each.
    let mut p = Pair::start();
    let cases: Vec<(&str, Vec<&[&[u8]]>)> = vec![
        ("refused", vec![&[b"nosuchcmd"], &[b"GET"]]),
        (
            "script calls",
            vec![&[
                b"EVAL",
                b"redis.call('set','x','1'); redis.pcall('nosuch'); return redis.call('get','x')",
                b"0",
            ]],
        ),
        (
            "transaction",
            vec![
                &[b"MULTI"],
                &[b"SET", b"a", b"1"],
                &[b"INCR", b"a"],
                &[b"EXEC"],
            ],
        ),
        (
            "aborted transaction",
            vec![&[b"MULTI"], &[b"SET", b"a", b"1"], &[b"NOSUCH"], &[b"EXEC"]],
        ),
        ("timed-out block", vec![&[b"BLPOP", b"nolist", b"0.05"]]),
    ];
    for (what, steps) in cases {
        let ours = processed_delta(&mut p.a, &steps);
        let theirs = processed_delta(&mut p.b, &steps);
        assert_eq!(ours, theirs, "{what}");
    }
}
