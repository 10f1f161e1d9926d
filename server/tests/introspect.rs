//! Introspection side by side with Redis 7.0.15: LATENCY (monitor and histograms),
//! INFO latencystats, LOLWUT, OBJECT, CLIENT NO-EVICT/UNBLOCK/GETREDIR/REPLY/INFO and
//! SWAPDB with WATCH. Replies that depend on timing are checked by shape and by the
//! measured values.
mod common;
use common::*;
use std::time::{Duration, Instant};

/// Tandem and Redis with the same extra arguments, and their ports.
struct Both {
    ours: TestServer,
    theirs: RealRedis,
    _dir: tempfile::TempDir,
    a: Conn,
    b: Conn,
}

impl Both {
    fn start(extra: &[&str]) -> Both {
        let mut args = vec!["--enable-debug-command", "yes"];
        args.extend_from_slice(extra);
        let ours = TestServer::start(&args);
        let dir = tempfile::tempdir().expect("tempdir");
        let theirs = RealRedis::start(dir.path(), "dump.rdb", extra);
        let (a, b) = (ours.conn(), theirs.conn());
        Both {
            ours,
            theirs,
            _dir: dir,
            a,
            b,
        }
    }

    /// Second connections to both servers.
    fn conns(&self) -> (Conn, Conn) {
        (self.ours.conn(), self.theirs.conn())
    }

    fn same(&mut self, line: &str) -> R {
        let ra = self.a.cmd(line);
        let rb = self.b.cmd(line);
        assert_eq!(ra, rb, "reply to {line:?} differs from Redis 7.0.15");
        ra
    }
}

fn text(r: R) -> String {
    match r {
        R::Bulk(b) => String::from_utf8(b).expect("utf8"),
        R::Verbatim(s) => s,
        other => panic!("expected a bulk reply, got {other:?}"),
    }
}

fn int(r: &R) -> i64 {
    match r {
        R::Int(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[test]
fn latency_replies_and_errors_match_redis_without_samples() {
    let mut p = Both::start(&[]);
    for line in [
        "LATENCY LATEST",
        "LATENCY HISTORY command",
        "LATENCY GRAPH command",
        "LATENCY RESET",
        "LATENCY RESET command nosuch",
        "LATENCY NOSUCH",
        "LATENCY",
        "LATENCY LATEST extra",
        "LATENCY HISTORY",
        "LATENCY GRAPH a b",
        "LATENCY DOCTOR extra",
        "LATENCY HELP extra",
        "LATENCY HISTOGRAM nosuch",
    ] {
        p.same(line);
    }
    // Help: the title line as Redis, one entry per subcommand.
    let R::Arr(help) = p.a.cmd("LATENCY HELP") else {
        panic!("help is an array")
    };
    assert_eq!(
        help.first(),
        Some(&R::Simple(
            "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:".into()
        ))
    );
    let doctor = text(p.a.cmd("LATENCY DOCTOR"));
    assert!(doctor.contains("disabled"), "{doctor}");
}

#[test]
fn a_slow_command_shows_in_latest_history_graph_and_doctor() {
    let mut p = Both::start(&["--latency-monitor-threshold", "100"]);
    let before = now_secs();
    for c in [&mut p.a, &mut p.b] {
        // Below the threshold: not recorded.
        assert_eq!(c.cmd("DEBUG SLEEP 0.01"), R::ok());
        assert_eq!(c.cmd("DEBUG SLEEP 0.2"), R::ok());
    }
    let after = now_secs();
    for c in [&mut p.a, &mut p.b] {
        let R::Arr(latest) = c.cmd("LATENCY LATEST") else {
            panic!("latest is an array")
        };
        assert_eq!(latest.len(), 1, "{latest:?}");
        let R::Arr(row) = &latest[0] else {
            panic!("a row is an array")
        };
        assert_eq!(row[0], R::bulk("command"));
        assert!((before..=after).contains(&int(&row[1])), "{row:?}");
        let (last, max) = (int(&row[2]), int(&row[3]));
        assert!(
            (200..600).contains(&last),
            "sleep of 200 ms measured {last}"
        );
        assert_eq!(last, max);
        let R::Arr(hist) = c.cmd("LATENCY HISTORY command") else {
            panic!("history is an array")
        };
        assert_eq!(hist.len(), 1);
        assert_eq!(hist[0], R::Arr(vec![row[1].clone(), row[2].clone()]));
        assert_eq!(c.cmd("LATENCY HISTORY fast-command"), R::Arr(vec![]));
        let graph = text(c.cmd("LATENCY GRAPH command"));
        assert!(
            graph.starts_with(&format!(
                "command - high {last} ms, low {last} ms (all time high {last} ms)\n"
            )),
            "{graph}"
        );
        let doctor = text(c.cmd("LATENCY DOCTOR"));
        assert!(doctor.contains("command"), "{doctor}");
        assert_eq!(c.cmd("LATENCY RESET nosuch"), R::Int(0));
        assert_eq!(c.cmd("LATENCY RESET"), R::Int(1));
        assert_eq!(c.cmd("LATENCY LATEST"), R::Arr(vec![]));
        // Threshold 0 turns the monitor off.
        assert_eq!(c.cmd("CONFIG SET latency-monitor-threshold 0"), R::ok());
        assert_eq!(c.cmd("DEBUG SLEEP 0.15"), R::ok());
        assert_eq!(c.cmd("LATENCY LATEST"), R::Arr(vec![]));
    }
}

/// Command name -> calls, from a LATENCY HISTOGRAM reply (checking the buckets rise
/// and end at the call count).
fn histogram_calls(r: R) -> Vec<(String, i64)> {
    let R::Map(cmds) = r else {
        panic!("histogram is a map: {r:?}")
    };
    let mut out = Vec::new();
    for (name, body) in cmds {
        let R::Map(fields) = body else {
            panic!("per-command map")
        };
        assert_eq!(fields[0].0, R::bulk("calls"));
        assert_eq!(fields[1].0, R::bulk("histogram_usec"));
        let calls = int(&fields[0].1);
        let R::Map(buckets) = &fields[1].1 else {
            panic!("buckets map")
        };
        let counts: Vec<i64> = buckets.iter().map(|(_, c)| int(c)).collect();
        let bounds: Vec<i64> = buckets.iter().map(|(b, _)| int(b)).collect();
        assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{bounds:?}");
        assert_eq!(counts.last(), Some(&calls));
        let R::Bulk(n) = name else { panic!("name") };
        out.push((String::from_utf8(n).expect("utf8"), calls));
    }
    out.sort();
    out
}

#[test]
fn histograms_count_calls_per_full_command_name_like_redis() {
    let p = Both::start(&[]);
    let (mut a, mut b) = p.conns();
    for c in [&mut a, &mut b] {
        c.cmd("HELLO 3");
        for i in 0..3 {
            c.cmd(&format!("SET k{i} v"));
        }
        c.cmd("GET k1");
        c.cmd("CONFIG GET maxmemory");
        c.cmd("CONFIG GET timeout");
    }
    let query = "LATENCY HISTOGRAM set get config|get GET nosuch";
    let ours = histogram_calls(a.cmd(query));
    assert_eq!(ours, histogram_calls(b.cmd(query)));
    assert_eq!(
        ours,
        vec![
            ("config|get".to_string(), 2),
            ("get".to_string(), 1),
            // Named twice, shown twice, as Redis does.
            ("get".to_string(), 1),
            ("set".to_string(), 3)
        ]
    );
    // A sleep lands in a bucket of at least 100 ms.
    a.cmd("DEBUG SLEEP 0.1");
    let R::Map(m) = a.cmd("LATENCY HISTOGRAM debug") else {
        panic!("map")
    };
    let R::Map(fields) = &m[0].1 else {
        panic!("map")
    };
    let R::Map(buckets) = &fields[1].1 else {
        panic!("map")
    };
    assert!(int(&buckets[0].0) >= 100_000, "{buckets:?}");
}

/// LATENCY HISTOGRAM of a command with subcommands (CLIENT) answers for each of its
/// subcommands called since CONFIG RESETSTAT, as Redis 7.0 does; a subcommand named
/// alone answers for itself only.
#[test]
fn histogram_of_a_parent_command_lists_its_subcommands() {
    let p = Both::start(&[]);
    let (mut a, mut b) = p.conns();
    let mut replies = Vec::new();
    for c in [&mut a, &mut b] {
        c.cmd("HELLO 3");
        c.cmd("CLIENT LIST");
        c.cmd("CONFIG RESETSTAT");
        c.cmd("CLIENT ID");
        c.cmd("CLIENT GETNAME");
        c.cmd("CLIENT ID");
        replies.push([
            histogram_calls(c.cmd("LATENCY HISTOGRAM client")),
            histogram_calls(c.cmd("LATENCY HISTOGRAM client|id CLIENT|GETNAME config")),
        ]);
    }
    assert_eq!(replies[0], replies[1]);
    let [parent, named] = &replies[0];
    let want = |v: &[(&str, i64)]| -> Vec<(String, i64)> {
        v.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    };
    assert_eq!(parent, &want(&[("client|getname", 1), ("client|id", 2)]));
    assert_eq!(
        named,
        &want(&[
            ("client|getname", 1),
            ("client|id", 2),
            ("config|resetstat", 1)
        ])
    );
}

#[test]
fn info_latencystats_reports_the_configured_percentiles() {
    let mut p = Both::start(&[]);
    for c in [&mut p.a, &mut p.b] {
        c.cmd("SET k v");
        c.cmd("SET k v");
        let set: &[&[u8]] = &[
            b"CONFIG",
            b"SET",
            b"latency-tracking-info-percentiles",
            b"50 99.99 100",
        ];
        assert_eq!(c.cmd_args(set), R::ok());
        let info = text(c.cmd("INFO latencystats"));
        assert!(info.starts_with("# Latencystats\r\n"), "{info}");
        let line = info
            .lines()
            .find(|l| l.starts_with("latency_percentiles_usec_set:"))
            .expect("a line for SET");
        let values: Vec<&str> = line
            .trim_start_matches("latency_percentiles_usec_set:")
            .split(',')
            .collect();
        let names: Vec<&str> = values
            .iter()
            .map(|v| v.split('=').next().unwrap_or(""))
            .collect();
        assert_eq!(names, ["p50", "p99.99", "p100"]);
        for v in &values {
            let num = v.split('=').nth(1).expect("value");
            let (_, frac) = num.split_once('.').expect("decimals");
            assert_eq!(frac.len(), 3, "{v}");
            assert!(num.parse::<f64>().expect("number") > 0.0);
        }
        // Tracking off: the section is bare and commands called meanwhile get no
        // histogram; the ones kept show again once tracking is back on.
        assert_eq!(c.cmd("CONFIG SET latency-tracking no"), R::ok());
        c.cmd("INCR n");
        assert_eq!(text(c.cmd("INFO latencystats")), "# Latencystats\r\n");
        assert_eq!(c.cmd("LATENCY HISTOGRAM incr"), R::Arr(vec![]));
        assert_eq!(c.cmd("CONFIG SET latency-tracking yes"), R::ok());
        let info = text(c.cmd("INFO latencystats"));
        assert!(!info.contains("_incr:"), "{info}");
        assert!(info.contains("_set:"), "{info}");
    }
}

#[test]
fn lolwut_ends_with_the_version_line_and_checks_its_arguments() {
    let mut p = Both::start(&[]);
    for line in [
        "LOLWUT",
        "LOLWUT VERSION 7",
        "LOLWUT VERSION 1",
        "LOLWUT VERSION",
        "LOLWUT foo bar",
        "LOLWUT VERSION x",
        "LOLWUT VERSION 5 x",
    ] {
        p.same(line);
    }
    for v in ["5", "6"] {
        let art = text(p.a.cmd(&format!("LOLWUT VERSION {v}")));
        assert!(art.ends_with("Redis ver. 7.0.15\n"), "{art}");
        assert!(art.lines().count() > 1, "{art}");
    }
}

#[test]
fn object_encoding_follows_redis_thresholds_for_every_type() {
    let mut p = Both::start(&[]);
    for line in [
        "CONFIG SET hash-max-listpack-entries 4",
        "CONFIG SET hash-max-listpack-value 8",
        "CONFIG SET zset-max-listpack-entries 4",
        "CONFIG SET zset-max-listpack-value 8",
        "CONFIG SET set-max-intset-entries 4",
        "SET int 12345",
        "SET neg -12",
        "SET big 123456789012345678901",
        "SET e 01",
        &format!("SET emb {}", "x".repeat(44)),
        &format!("SET raw {}", "x".repeat(45)),
        "RPUSH l a b c",
        "HSET h1 a 1 b 2",
        "HSET h2 a 1 b 2 c 3 d 4 e 5",
        "HSET h3 a 123456789",
        "SADD s1 1 2 3",
        "SADD s2 1 2 3 4 5",
        "SADD s3 1 a",
        "ZADD z1 1 a 2 b",
        "ZADD z2 1 a 2 b 3 c 4 d 5 e",
        "ZADD z3 1 abcdefghi",
        "XADD x 1-1 f v",
    ] {
        p.same(line);
    }
    for key in [
        "int", "neg", "big", "e", "emb", "raw", "l", "h1", "h2", "h3", "s1", "s2", "s3", "z1",
        "z2", "z3", "x", "missing",
    ] {
        p.same(&format!("OBJECT ENCODING {key}"));
    }
    for line in [
        "OBJECT REFCOUNT int",
        "OBJECT REFCOUNT l",
        "OBJECT REFCOUNT missing",
        "OBJECT FREQ l",
        "OBJECT FREQ missing",
        "OBJECT NOSUCH l",
        "OBJECT ENCODING",
        "OBJECT ENCODING a b",
        "OBJECT HELP extra",
        "OBJECT",
        "CONFIG SET maxmemory-policy allkeys-lfu",
        "OBJECT IDLETIME l",
        "OBJECT IDLETIME missing",
        "CONFIG SET maxmemory-policy noeviction",
    ] {
        p.same(line);
    }
    assert_eq!(p.a.cmd("OBJECT IDLETIME l"), R::Int(0));
}

#[test]
fn client_subcommands_answer_like_redis() {
    let mut p = Both::start(&[]);
    for line in [
        "CLIENT NO-EVICT on",
        "CLIENT NO-EVICT OFF",
        "CLIENT NO-EVICT maybe",
        "CLIENT NO-EVICT",
        "CLIENT GETREDIR",
        "CLIENT GETREDIR x",
        "CLIENT UNBLOCK 999999",
        "CLIENT UNBLOCK 999999 TIMEOUT",
        "CLIENT UNBLOCK 999999 ERROR",
        "CLIENT UNBLOCK 999999 bogus",
        "CLIENT UNBLOCK abc",
        "CLIENT REPLY maybe",
        "CLIENT REPLY",
        "CLIENT INFO extra",
        "CLIENT REPLY ON",
    ] {
        p.same(line);
    }
    // CLIENT INFO: the same fields in the same order.
    let fields = |s: String| -> Vec<String> {
        s.split_whitespace()
            .map(|f| f.split('=').next().unwrap_or("").to_string())
            .collect()
    };
    let ours = fields(text(p.a.cmd("CLIENT INFO")));
    assert_eq!(ours, fields(text(p.b.cmd("CLIENT INFO"))));
}

#[test]
fn client_unblock_ends_a_blocked_pop_with_nil_or_the_unblocked_error() {
    let p = Both::start(&[]);
    for (mut blocked, mut admin) in [
        (p.ours.conn(), p.ours.conn()),
        (p.theirs.conn(), p.theirs.conn()),
    ] {
        let id = int(&blocked.cmd("CLIENT ID"));
        for (how, want) in [
            ("TIMEOUT", R::NilArr),
            (
                "ERROR",
                R::Err("UNBLOCKED client unblocked via CLIENT UNBLOCK".into()),
            ),
        ] {
            blocked.send(&[b"BLPOP", b"nolist", b"0"]);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let r = admin.cmd(&format!("CLIENT UNBLOCK {id} {how}"));
                if r == R::Int(1) {
                    break;
                }
                assert!(Instant::now() < deadline, "client never blocked");
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(blocked.read(), want);
        }
    }
}

#[test]
fn swapdb_aborts_transactions_watching_keys_in_either_db_like_redis() {
    let p = Both::start(&[]);
    let mut results = Vec::new();
    for (mut w, mut other) in [
        (p.ours.conn(), p.ours.conn()),
        (p.theirs.conn(), p.theirs.conn()),
    ] {
        let mut run = Vec::new();
        // (key set in db 0, key set in db 1): whether EXEC still runs.
        for (in0, in1) in [(true, false), (false, true), (false, false), (true, true)] {
            other.cmd("FLUSHALL");
            if in0 {
                other.cmd("SET k a");
            }
            if in1 {
                other.cmd("SELECT 1");
                other.cmd("SET k b");
                other.cmd("SELECT 0");
            }
            w.cmd("WATCH k");
            other.cmd("SWAPDB 0 1");
            w.cmd("MULTI");
            w.cmd("GET k");
            run.push(w.cmd("EXEC"));
        }
        for line in ["SWAPDB 0 99", "SWAPDB a 1", "SWAPDB 0", "SWAPDB -1 0"] {
            run.push(other.cmd(line));
        }
        results.push(run);
    }
    assert_eq!(results[0], results[1]);
    // Sanity: a key in either db aborts, none at all does not.
    assert_eq!(results[0][0], R::NilArr);
    assert_eq!(results[0][2], R::Arr(vec![R::Nil]));
}

#[test]
fn object_encoding_after_changes_matches_redis() {
    let mut p = Both::start(&[]);
    for line in [
        "CONFIG SET hash-max-listpack-entries 4",
        "CONFIG SET zset-max-listpack-entries 4",
        "CONFIG SET set-max-intset-entries 4",
        "SET s abc",
        "APPEND s d",
        "SET n 10",
        "INCR n",
        "SETRANGE r 0 abc",
        "APPEND a 12",
        "SET f 1.5",
        "INCRBYFLOAT f 1",
        "HSET h a 1 b 2 c 3 d 4 e 5",
        "HDEL h a b c",
        "SADD st 1 2 3 x",
        "SREM st x",
        "SADD si 1 2 3 4 5",
        "SREM si 1 2 3",
        "ZADD z 1 a 2 b 3 c 4 d 5 e",
        "ZREM z a b c",
        "SET ap 1",
        "APPEND ap 2",
        "SETBIT sb 3 1",
        "SET sb2 12",
        "SETBIT sb2 0 1",
        "SET re 12",
        "APPEND re 3",
        "INCR re",
        "SET ex abc",
        "APPEND ex d",
        "EXPIRE ex 100",
        "SET src 5",
        "BITOP OR bo sb src",
        "SADD big 1 2 3 4 5 6",
        "DEL big",
        "SADD big 1",
    ] {
        p.same(line);
    }
    let mut diff = Vec::new();
    for key in [
        "s", "n", "r", "a", "f", "h", "st", "si", "z", "ap", "sb", "sb2", "re", "ex", "bo", "big",
        "src",
    ] {
        let l = format!("OBJECT ENCODING {key}");
        let (x, y) = (p.a.cmd(&l), p.b.cmd(&l));
        if x != y {
            diff.push((key, x, y));
        }
    }
    assert!(diff.is_empty(), "{diff:?}");
}

/// The `cmd=` field of the line CLIENT LIST prints for client `id`.
fn cmd_field(observer: &mut Conn, id: i64) -> String {
    let line = text(observer.cmd(&format!("CLIENT LIST ID {id}")));
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("cmd="))
        .unwrap_or_else(|| panic!("no cmd= in {line:?}"))
        .to_string()
}

/// CLIENT LIST's `cmd=` after each command of a sequence, side by side: the same
/// command on other keys (kept without its key), container commands with their
/// subcommand (`config|get`, any case), a switch back, and an unknown command.
#[test]
fn client_list_cmd_follows_each_command_like_redis() {
    let mut both = Both::start(&[]);
    let (mut obs_a, mut obs_b) = both.conns();
    let id_a = int(&both.a.cmd("CLIENT ID"));
    let id_b = int(&both.b.cmd("CLIENT ID"));
    let steps = [
        "GET k1",
        "GET k2",
        "SET k1 v",
        "get k3",
        "CONFIG GET maxmemory",
        "config get port",
        "CONFIG SET maxmemory 0",
        "CLIENT GETNAME",
        "OBJECT ENCODING k1",
        "GET k1",
        "SCRIPT EXISTS abc",
        "NOSUCHCOMMAND x",
        "PING",
    ];
    let mut seen = Vec::new();
    for line in steps {
        both.a.cmd(line);
        both.b.cmd(line);
        let (ours, theirs) = (cmd_field(&mut obs_a, id_a), cmd_field(&mut obs_b, id_b));
        assert_eq!(ours, theirs, "cmd= after {line:?}");
        seen.push(ours);
    }
    // The sequence does exercise both kinds.
    assert!(seen.iter().any(|c| c == "config|get"), "{seen:?}");
    assert!(seen.iter().any(|c| c == "get"), "{seen:?}");
}
