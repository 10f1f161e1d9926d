//! Stream consumer groups and XINFO, black-box: every command, option and error side
//! by side with Debian's redis-server 7.0.15 (fixed scripts, RESP2 and RESP3, and a
//! seeded random sequence), blocking reads, replication both ways with real Redis,
//! RDB both ways, and a worker pool on the `redis` crate.
//!
//! Times: delivery and seen times are Unix milliseconds and idle times depend on the
//! clock, so comparisons replace them by a marker (see [`Norm`]); everything else is
//! compared exactly.
mod common;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Which clock-dependent parts of a reply to blank out before comparing.
#[derive(Clone, Copy, PartialEq)]
enum Norm {
    /// Compare as is.
    Exact,
    /// Unix-ms timestamps (delivery and seen times): any integer past 2001.
    Times,
    /// XPENDING's extended rows: `[id, consumer, idle, count]`, idle blanked.
    PendingRows,
    /// XINFO CONSUMERS: the value after `idle` blanked.
    Consumers,
}

const MARK: i64 = -424242;

fn blank_times(r: R) -> R {
    match r {
        R::Int(n) if n >= 1_000_000_000_000 => R::Int(MARK),
        R::Arr(v) => R::Arr(v.into_iter().map(blank_times).collect()),
        R::Map(v) => R::Map(
            v.into_iter()
                .map(|(k, x)| (blank_times(k), blank_times(x)))
                .collect(),
        ),
        o => o,
    }
}

/// Blanks the value following the key `name` in flat (RESP2) or map (RESP3) form.
fn blank_field(r: R, name: &str) -> R {
    match r {
        R::Arr(v) => {
            let mut out = Vec::with_capacity(v.len());
            let mut blank_next = false;
            for x in v {
                if blank_next {
                    out.push(R::Int(MARK));
                    blank_next = false;
                    continue;
                }
                blank_next = x == R::bulk(name);
                out.push(blank_field(x, name));
            }
            R::Arr(out)
        }
        R::Map(v) => R::Map(
            v.into_iter()
                .map(|(k, x)| {
                    if k == R::bulk(name) {
                        (k, R::Int(MARK))
                    } else {
                        (k, blank_field(x, name))
                    }
                })
                .collect(),
        ),
        o => o,
    }
}

fn normalize(r: R, how: Norm) -> R {
    match how {
        Norm::Exact => r,
        Norm::Times => blank_times(r),
        Norm::Consumers => blank_field(r, "idle"),
        Norm::PendingRows => match r {
            R::Arr(rows) => R::Arr(
                rows.into_iter()
                    .map(|row| match row {
                        R::Arr(mut v) if v.len() == 4 => {
                            v[2] = R::Int(MARK);
                            R::Arr(v)
                        }
                        o => o,
                    })
                    .collect(),
            ),
            o => o,
        },
    }
}

fn words(line: &str) -> Vec<&[u8]> {
    line.split_whitespace().map(str::as_bytes).collect()
}

/// A reply as readable text, for failure messages.
fn show(r: &R) -> String {
    match r {
        R::Bulk(b) => format!("{:?}", String::from_utf8_lossy(b)),
        R::Arr(v) | R::Set(v) | R::Push(v) => {
            format!("[{}]", v.iter().map(show).collect::<Vec<_>>().join(", "))
        }
        R::Map(v) => format!(
            "{{{}}}",
            v.iter()
                .map(|(k, x)| format!("{}: {}", show(k), show(x)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        o => format!("{o:?}"),
    }
}

#[track_caller]
fn same_reply(ours: R, theirs: R, what: &str) {
    assert!(
        ours == theirs,
        "{what}: differs from Redis 7.0.15\nours:   {}\ntheirs: {}",
        show(&ours),
        show(&theirs)
    );
}

impl Pair {
    fn line(&mut self, line: &str) -> R {
        self.norm(line, Norm::Exact)
    }

    /// Both replies, normalized, must be equal.
    fn norm(&mut self, line: &str, how: Norm) -> R {
        let args = words(line);
        let ra = normalize(self.a.cmd_args(&args), how);
        let rb = normalize(self.b.cmd_args(&args), how);
        same_reply(ra.clone(), rb, line);
        ra
    }

    fn script(&mut self, lines: &[&str]) {
        for l in lines {
            self.line(l);
        }
    }

    /// Switches both connections to RESP3 (HELLO replies differ by server name).
    fn resp3(&mut self) {
        let ra = self.a.cmd("HELLO 3");
        let rb = self.b.cmd("HELLO 3");
        assert!(matches!(ra, R::Map(_)) && matches!(rb, R::Map(_)));
    }

    /// XINFO STREAM FULL, XINFO GROUPS and every group's consumers, compared.
    fn compare_info(&mut self, key: &str) {
        self.norm(&format!("XINFO STREAM {key} FULL"), Norm::Times);
        self.norm(&format!("XINFO STREAM {key}"), Norm::Exact);
        let groups = self.norm(&format!("XINFO GROUPS {key}"), Norm::Exact);
        for g in group_names(&groups) {
            self.norm(&format!("XINFO CONSUMERS {key} {g}"), Norm::Consumers);
            self.norm(&format!("XPENDING {key} {g}"), Norm::Exact);
            self.norm(&format!("XPENDING {key} {g} - + 1000"), Norm::PendingRows);
        }
    }
}

/// Group names out of an XINFO GROUPS reply (RESP2 flat or RESP3 maps).
fn group_names(r: &R) -> Vec<String> {
    let R::Arr(groups) = r else {
        return Vec::new();
    };
    groups
        .iter()
        .filter_map(|g| {
            let pairs: Vec<(R, R)> = match g {
                R::Arr(v) => v.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect(),
                R::Map(m) => m.clone(),
                _ => return None,
            };
            pairs.into_iter().find_map(|(k, v)| match (k, v) {
                (k, R::Bulk(n)) if k == R::bulk("name") => String::from_utf8(n).ok(),
                _ => None,
            })
        })
        .collect()
}

fn setup(p: &mut Pair) {
    p.script(&[
        "XADD s 1-1 a 1",
        "XADD s 2-1 b 2 c 3",
        "XADD s 3-1 a 4",
        "XADD s 4-1 d 5",
        "XADD s 5-1 a 6",
    ]);
}

#[test]
fn xgroup_subcommands_and_errors_match_redis() {
    let mut p = Pair::start();
    setup(&mut p);
    p.script(&[
        "XGROUP CREATE s g 0",
        "XINFO GROUPS s",
        "XGROUP CREATE s g 0",
        "XGROUP CREATE s g2 $",
        "XGROUP CREATE s g3 2-1 ENTRIESREAD 2",
        "XGROUP CREATE s g4 3 ENTRIESREAD -1",
        "XGROUP CREATE s g5 0 ENTRIESREAD -2",
        "XGROUP CREATE s g5 0 ENTRIESREAD x",
        "XGROUP CREATE s g5 0 MKSTREAM ENTRIESREAD",
        "XGROUP CREATE s g5 0 a b c d",
        "XGROUP CREATE s g5 0 FOO",
        "XGROUP CREATE s g5 +",
        "XGROUP CREATE s g5 -",
        "XGROUP CREATE s g5 1-x",
        "XGROUP CREATE s g5 18446744073709551615-18446744073709551615",
        "XGROUP CREATE s g6 18446744073709551616",
        "XINFO GROUPS s",
        "XGROUP CREATE nokey g 0",
        "XGROUP CREATE nokey g $ MKSTREAM",
        "XINFO STREAM nokey",
        "XGROUP CREATE mk2 g 5-5 MKSTREAM ENTRIESREAD 3",
        "XINFO GROUPS mk2",
        "XGROUP SETID s g 3-1",
        "XGROUP SETID s g $",
        "XGROUP SETID s g - ENTRIESREAD 0",
        "XGROUP SETID s g + ENTRIESREAD 7",
        "XINFO GROUPS s",
        "XGROUP SETID s g 2 ENTRIESREAD 1",
        "XGROUP SETID s g 5 ENTRIESREAD",
        "XGROUP SETID s g 5 ENTRIESREAD 3 x",
        "XGROUP SETID s g 5 MKSTREAM",
        "XGROUP SETID s g bad",
        "XGROUP SETID s nog 0",
        "XGROUP SETID nokey2 g 0",
        "XGROUP CREATECONSUMER s g alice",
        "XGROUP CREATECONSUMER s g alice",
        "XGROUP CREATECONSUMER s nog alice",
        "XGROUP CREATECONSUMER nokey2 g alice",
        "XGROUP DELCONSUMER s g alice",
        "XGROUP DELCONSUMER s g alice",
        "XGROUP DELCONSUMER s nog alice",
        "XGROUP DESTROY s g2",
        "XGROUP DESTROY s g2",
        "XGROUP DESTROY nokey2 g2",
        "XGROUP DESTROY s g2 extra",
        "XGROUP",
        "XGROUP FOO",
        "XGROUP FOO s g",
        "XGROUP CREATE s",
        "XGROUP CREATECONSUMER s g",
        "XGROUP HELP",
        "XGROUP HELP x",
        "XGROUP help",
        "SET str x",
        "XGROUP CREATE str g 0",
        "XGROUP CREATE str g 0 MKSTREAM",
        "XGROUP SETID str g 0",
        "XGROUP DESTROY str g",
        "XGROUP CREATECONSUMER str g c",
        "XINFO GROUPS s",
    ]);
    p.norm("XINFO CONSUMERS s g", Norm::Consumers);
    p.compare_info("s");
}

#[test]
fn xreadgroup_replies_and_errors_match_redis() {
    let mut p = Pair::start();
    setup(&mut p);
    p.script(&[
        "XGROUP CREATE s g 0",
        "XGROUP CREATE s g2 0",
        "XADD t 1-1 x y",
        "XGROUP CREATE t g 0",
        "XREADGROUP GROUP g alice COUNT 2 STREAMS s >",
        "XREADGROUP GROUP g bob STREAMS s >",
        "XREADGROUP GROUP g bob STREAMS s >",
        "XREADGROUP GROUP g carol STREAMS s 0",
        "XREADGROUP GROUP g alice STREAMS s 0",
        "XREADGROUP GROUP g alice STREAMS s 1-1",
        "XREADGROUP GROUP g alice COUNT 1 STREAMS s 0-0",
        "XREADGROUP GROUP g bob COUNT -5 STREAMS s 0",
        "XREADGROUP GROUP g2 dave NOACK COUNT 3 STREAMS s t > >",
        "XREADGROUP GROUP g2 dave NOACK STREAMS s >",
        "XREADGROUP GROUP g2 dave STREAMS s 0",
        "XREADGROUP GROUP g erin STREAMS s t > >",
        "XREADGROUP GROUP g erin STREAMS s t 0 0",
        "XDEL s 2-1",
        "XREADGROUP GROUP g bob STREAMS s 0",
        "XREADGROUP GROUP g alice STREAMS s 18446744073709551615-18446744073709551615",
        "XREADGROUP GROUP g alice STREAMS s 18446744073709551615-18446744073709551614",
        "XREADGROUP GROUP g alice COUNT 9223372036854775807 STREAMS s 0",
        "XREADGROUP GROUP g alice STREAMS s $",
        "XREADGROUP GROUP g alice STREAMS s",
        "XREADGROUP GROUP g alice STREAMS s t >",
        "XREADGROUP STREAMS s >",
        "XREADGROUP GROUP g alice COUNT x STREAMS s >",
        "XREADGROUP GROUP g alice BLOCK -1 STREAMS s >",
        "XREADGROUP GROUP g alice BLOCK x STREAMS s >",
        "XREADGROUP GROUP nog alice STREAMS s >",
        "XREADGROUP GROUP g alice STREAMS nokey >",
        "XREADGROUP GROUP g alice STREAMS s bad",
        "XREADGROUP GROUP g alice STREAMS s +",
        "XREADGROUP GROUP g alice STREAMS s -",
        "XREADGROUP GROUP g alice FOO STREAMS s >",
        "XREADGROUP GROUP g alice STREAMS s nokey > >",
        "XREADGROUP GROUP g alice STREAMS s s bad >",
        "XREADGROUP GROUP g alice NOACK STREAMS s >",
        // Entries after the group that are all deleted serve nothing.
        "XADD s 9-1 z 1",
        "XDEL s 9-1",
        "XREADGROUP GROUP g2 dave STREAMS s >",
        "XREADGROUP GROUP g2 dave NOACK STREAMS s >",
        "XREADGROUP GROUP g alice BLOCK 10 STREAMS s 0",
        "SET str x",
        "XREADGROUP GROUP g alice STREAMS str >",
        "XREADGROUP GROUP g alice STREAMS s str > >",
        "MULTI",
        "XREADGROUP GROUP g alice BLOCK 0 STREAMS s >",
        "EXEC",
    ]);
    p.compare_info("s");
    p.compare_info("t");
    // The same reads in RESP3 (a map of streams, nulls as `_`).
    p.resp3();
    p.script(&[
        "XADD s 6-1 a 7",
        "XREADGROUP GROUP g alice STREAMS s t > >",
        "XREADGROUP GROUP g alice STREAMS s t 0 0",
        "XREADGROUP GROUP g bob STREAMS s 0",
        "XREADGROUP GROUP g alice STREAMS s >",
    ]);
    p.compare_info("s");
}

#[test]
fn xack_and_xpending_match_redis() {
    let mut p = Pair::start();
    setup(&mut p);
    p.script(&[
        "XPENDING s g",
        "XGROUP CREATE s g 0",
        "XPENDING s g",
        "XPENDING s g - + 10",
        "XREADGROUP GROUP g alice COUNT 2 STREAMS s >",
        "XREADGROUP GROUP g bob STREAMS s >",
        "XGROUP CREATECONSUMER s g idle-one",
        "XPENDING s g",
        "XACK s g 1-1 bad",
        "XACK s g 1-1 1-1 9-9",
        "XACK s g 1-1",
        "XACK nokey g 1-1",
        "XACK nokey g bad",
        "XACK s nog 1-1",
        "XACK s g 18446744073709551616-1",
        "XPENDING s g",
        "XPENDING s g - + x",
        "XPENDING s g IDLE 10",
        "XPENDING s g IDLE x - + 1",
        "XPENDING s g x + 10",
        "XPENDING s g - x 10",
        "XPENDING s g (18446744073709551615-18446744073709551615 + 10",
        "XPENDING s g - (0-0 10",
        "XPENDING s g - + 10 nobody",
        "XPENDING s g 1 2 3 4 5 6 7",
        "XPENDING s g - +",
        "XPENDING s nog",
        "XPENDING nokey g",
        "XPENDING nokey g - + 10",
        "SET str x",
        "XPENDING str g",
        "XACK str g 1-1",
    ]);
    for q in [
        "XPENDING s g - + 10",
        "XPENDING s g - + -1",
        "XPENDING s g - + 0",
        "XPENDING s g - + 2",
        "XPENDING s g (2-1 + 10",
        "XPENDING s g - (4-1 10",
        "XPENDING s g - + 10 bob",
        "XPENDING s g - + 10 alice extra",
        "XPENDING s g IDLE -5 - + 10",
        "XPENDING s g IDLE 0 - + 10 bob",
        "XPENDING s g IDLE 100000000 - + 10",
        "XPENDING s g - + 9223372036854775807",
    ] {
        p.norm(q, Norm::PendingRows);
    }
    p.resp3();
    p.line("XPENDING s g");
    p.line("XPENDING s2 g");
    p.norm("XPENDING s g - + 10", Norm::PendingRows);
    p.compare_info("s");
}

#[test]
fn xclaim_and_xautoclaim_match_redis() {
    let mut p = Pair::start();
    setup(&mut p);
    p.script(&[
        "XGROUP CREATE s g 0",
        "XREADGROUP GROUP g alice COUNT 3 STREAMS s >",
        "XCLAIM s g bob 0 1-1 TIME 1000",
        "XCLAIM s g bob 0 1-1 2-1 JUSTID TIME 1000",
        "XCLAIM s g carol 0 2-1 RETRYCOUNT 7 TIME 1500",
        "XCLAIM s g carol 0 9-9 TIME 1000",
        "XCLAIM s g dave 0 4-1 TIME 1000",
        "XCLAIM s g dave 0 4-1 FORCE TIME 1000",
        "XCLAIM s g dave 0 5-1 FORCE JUSTID TIME 1000 RETRYCOUNT 3",
        "XCLAIM s g dave 0 3-1 LASTID 4-1 TIME 2000",
        "XINFO GROUPS s",
        "XCLAIM s g dave 0 7-1 LASTID 9-1",
        "XINFO GROUPS s",
        "XCLAIM s g erin 100000000 1-1 2-1 3-1",
        "XCLAIM s g erin -5 1-1 TIME 3000",
        "XCLAIM s g erin 0 1-1 IDLE 100000000000",
        "XCLAIM s g erin 0 1-1 TIME 99999999999999 JUSTID",
        "XCLAIM s g erin 0 1-1 TIME -7 JUSTID",
        "XCLAIM s g erin 0 1-1 TIME 4000 RETRYCOUNT -1",
        "XDEL s 2-1",
        "XCLAIM s g frank 0 2-1 3-1 TIME 5000",
        "XPENDING s g - + 10 carol",
        "XCLAIM s g c 0 bad",
        "XCLAIM s g c x 1-1",
        "XCLAIM s g c 0 1-1 IDLE x",
        "XCLAIM s g c 0 1-1 TIME x",
        "XCLAIM s g c 0 1-1 RETRYCOUNT x",
        "XCLAIM s g c 0 1-1 LASTID bad",
        "XCLAIM s g c 0 1-1 FOO",
        "XCLAIM s g c 0 1-1 IDLE",
        "XCLAIM s g c 0 1-1 2-1 FORCE 3-1",
        "XCLAIM nokey g c 0 1-1",
        "XCLAIM s nog c 0 1-1",
        "XCLAIM s g",
        "XAUTOCLAIM s g zed 0 0 COUNT 1",
        "XAUTOCLAIM s g zed 0 0 COUNT 2 JUSTID",
        "XAUTOCLAIM s g zed 0 0",
        "XAUTOCLAIM s g zed 100000000 0",
        "XAUTOCLAIM s g zed 0 (1-1",
        "XAUTOCLAIM s g zed 0 - JUSTID",
        "XAUTOCLAIM s g zed 0 +",
        "XAUTOCLAIM s g zed 0 0 COUNT 576460752303423487",
        "XAUTOCLAIM s g zed 0 0 COUNT 1000000000000",
        "XAUTOCLAIM s g zed 0 0 COUNT 576460752303423488",
        "XAUTOCLAIM s g zed 0 0 COUNT 0",
        "XAUTOCLAIM s g zed 0 0 COUNT -1",
        "XAUTOCLAIM s g zed 0 0 COUNT x",
        "XAUTOCLAIM s g zed 0 0 FOO",
        "XAUTOCLAIM s g zed 0 0 COUNT",
        "XAUTOCLAIM s g zed x 0",
        "XAUTOCLAIM s g zed 0 bad",
        "XAUTOCLAIM s g zed 0 (18446744073709551615-18446744073709551615",
        "XAUTOCLAIM nokey g zed 0 0",
        "XAUTOCLAIM s nog zed 0 0",
        "SET str x",
        "XCLAIM str g c 0 1-1",
        "XAUTOCLAIM str g c 0 0",
    ]);
    // Entries deleted from the stream come back in XAUTOCLAIM's third element.
    p.script(&[
        "XREADGROUP GROUP g yan STREAMS s 0",
        "XADD s 6-1 a 1",
        "XADD s 7-1 a 1",
        "XADD s 8-1 a 1",
        "XREADGROUP GROUP g yan STREAMS s >",
        "XDEL s 6-1 7-1",
        "XAUTOCLAIM s g zoe 0 0 COUNT 2",
        "XAUTOCLAIM s g zoe 0 0 COUNT 1 JUSTID",
        "XAUTOCLAIM s g zoe 0 0",
    ]);
    p.compare_info("s");
    p.resp3();
    p.script(&[
        "XCLAIM s g bob 0 1-1 TIME 1000",
        "XAUTOCLAIM s g bob 0 0 COUNT 1",
    ]);
    p.compare_info("s");
}

#[test]
fn xinfo_replies_and_errors_match_redis_in_resp2_and_resp3() {
    let mut p = Pair::start();
    for resp3 in [false, true] {
        if resp3 {
            p.line("FLUSHALL");
            p.resp3();
        }
        p.script(&[
            "XGROUP CREATE e g $ MKSTREAM",
            "XINFO STREAM e",
            "XINFO STREAM e FULL",
            "XINFO GROUPS e",
            "XINFO CONSUMERS e g",
        ]);
        for i in 1..=130 {
            p.line(&format!("XADD s {i}-{} f{} v{i}", i % 3, i % 2));
        }
        p.script(&[
            "XGROUP CREATE s g 0",
            "XGROUP CREATE s g2 50",
            "XREADGROUP GROUP g a COUNT 20 STREAMS s >",
            "XREADGROUP GROUP g b COUNT 15 STREAMS s >",
            "XREADGROUP GROUP g2 a NOACK COUNT 15 STREAMS s >",
            "XDEL s 10-1 11-2 129-0",
            "XINFO STREAM s",
            "XINFO GROUPS s",
            "XINFO STREAM nokey",
            "XINFO GROUPS nokey",
            "XINFO CONSUMERS nokey g",
            "XINFO CONSUMERS s nog",
            "XINFO STREAM s FULL COUNT x",
            "XINFO STREAM s FOO",
            "XINFO STREAM s FULL FOO 1",
            "XINFO STREAM s COUNT 1",
            "XINFO STREAM s FULL COUNT",
            "XINFO STREAM",
            "XINFO GROUPS",
            "XINFO GROUPS s x",
            "XINFO CONSUMERS s",
            "XINFO FOO s",
            "XINFO",
            "XINFO HELP",
            "XINFO HELP x",
            "SET str x",
            "XINFO STREAM str",
            "XINFO GROUPS str",
            "XINFO CONSUMERS str g",
        ]);
        for count in [
            "",
            " COUNT 0",
            " COUNT 1",
            " COUNT 5",
            " COUNT -1",
            " COUNT 1000",
        ] {
            p.norm(&format!("XINFO STREAM s FULL{count}"), Norm::Times);
        }
        p.norm("XINFO CONSUMERS s g", Norm::Consumers);
        // Trimming past a group's position makes its lag unknowable.
        p.script(&["XTRIM s MAXLEN 3", "XINFO GROUPS s", "XINFO STREAM s"]);
        p.compare_info("s");
    }
}

/// `radix-tree-keys`/`-nodes` follow Redis's index as nodes fill, get trimmed
/// and emptied, over IDs whose bytes differ at many positions.
#[test]
fn xinfo_radix_tree_counts_match_redis() {
    let mut p = Pair::start();
    let mut rng = StdRng::seed_from_u64(0xfeed);
    let mut ms: u64 = 1;
    for round in 0..6 {
        for conn in [&mut p.a, &mut p.b] {
            let mut rng = rng.clone();
            let mut ms2 = ms;
            for _ in 0..1500 {
                ms2 += rng.gen_range(1..5000u64) << rng.gen_range(0..24);
                conn.send(&[b"XADD", b"s", format!("{ms2}-1").as_bytes(), b"f", b"v"]);
            }
            for _ in 0..1500 {
                assert!(matches!(conn.read(), R::Bulk(_)));
            }
        }
        for _ in 0..1500 {
            ms += rng.gen_range(1..5000u64) << rng.gen_range(0..24);
        }
        p.norm("XINFO STREAM s", Norm::Exact);
        p.line(&format!("XTRIM s MAXLEN {}", 1000 - round * 150));
        p.norm("XINFO STREAM s", Norm::Exact);
    }
    p.line("XTRIM s MAXLEN 0");
    p.norm("XINFO STREAM s", Norm::Exact);
}

#[test]
fn command_metadata_matches_redis() {
    let mut p = Pair::start();
    for c in ["xreadgroup", "xack", "xpending", "xclaim", "xautoclaim"] {
        let head = |r: R| match r {
            R::Arr(mut v) => match v.remove(0) {
                R::Arr(mut e) => {
                    e.truncate(6);
                    // Flags come as a set: compare them sorted.
                    if let R::Arr(f) | R::Set(f) = &mut e[2] {
                        f.sort_by_key(|x| format!("{x:?}"));
                    }
                    if let R::Set(f) = e[2].clone() {
                        e[2] = R::Arr(f);
                    }
                    e
                }
                o => panic!("{o:?}"),
            },
            o => panic!("{o:?}"),
        };
        let ours = head(p.a.cmd(&format!("COMMAND INFO {c}")));
        let theirs = head(p.b.cmd(&format!("COMMAND INFO {c}")));
        assert_eq!(ours, theirs, "COMMAND INFO {c}");
    }
    p.line("COMMAND GETKEYS XREADGROUP GROUP g c COUNT 1 STREAMS a b > >");
    p.line("COMMAND GETKEYS XREADGROUP GROUP streams c STREAMS streams >");
}

/// A seeded random mix of XADD (explicit ids), XREADGROUP, XACK, XCLAIM,
/// XAUTOCLAIM, XPENDING and XDEL, every reply compared with Redis's.
#[test]
fn random_group_sequence_matches_redis() {
    let mut p = Pair::start();
    let mut rng = StdRng::seed_from_u64(0x5eed_1607);
    let groups = ["g1", "g2"];
    let consumers = ["c1", "c2", "c3"];
    p.line("XGROUP CREATE s g1 0 MKSTREAM");
    p.line("XGROUP CREATE s g2 $");
    let mut next_ms = 1u64;
    let mut ids: Vec<String> = Vec::new();
    let pick_id = |rng: &mut StdRng, ids: &[String]| -> String {
        if ids.is_empty() || rng.gen_bool(0.1) {
            format!("{}-{}", rng.gen_range(0..400), rng.gen_range(0..3))
        } else {
            ids[rng.gen_range(0..ids.len())].clone()
        }
    };
    let started = Instant::now();
    for step in 0..700 {
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
        let g = groups[rng.gen_range(0..2)];
        let c = consumers[rng.gen_range(0..3)];
        match rng.gen_range(0..100) {
            0..=24 => {
                next_ms += rng.gen_range(0..3);
                let id = format!("{next_ms}-{}", rng.gen_range(0..2) + step);
                let r = p.line(&format!("XADD s {id} f {step} g x{}", step % 7));
                if let R::Bulk(b) = r {
                    ids.push(String::from_utf8_lossy(&b).into_owned());
                }
            }
            25..=44 => {
                let count = [0, 1, 2, 5][rng.gen_range(0..4)];
                let noack = if rng.gen_bool(0.2) { "NOACK " } else { "" };
                let from = if rng.gen_bool(0.75) { ">" } else { "0" };
                let q = format!("XREADGROUP GROUP {g} {c} COUNT {count} {noack}STREAMS s {from}");
                p.norm(&q, Norm::Exact);
            }
            45..=59 => {
                let n = rng.gen_range(1..4);
                let list: Vec<String> = (0..n).map(|_| pick_id(&mut rng, &ids)).collect();
                p.line(&format!("XACK s {g} {}", list.join(" ")));
            }
            60..=71 => {
                let list: Vec<String> = (0..rng.gen_range(1..4))
                    .map(|_| pick_id(&mut rng, &ids))
                    .collect();
                let mut q = format!("XCLAIM s {g} {c} 0 {} TIME {}", list.join(" "), 1000 + step);
                for (opt, prob) in [(" JUSTID", 0.3), (" FORCE", 0.2), (" RETRYCOUNT 4", 0.2)] {
                    if rng.gen_bool(prob) {
                        q.push_str(opt);
                    }
                }
                p.norm(&q, Norm::Exact);
            }
            72..=79 => {
                let start = if rng.gen_bool(0.5) {
                    "0".to_string()
                } else {
                    pick_id(&mut rng, &ids)
                };
                let count = rng.gen_range(1..6);
                let justid = if rng.gen_bool(0.3) { " JUSTID" } else { "" };
                p.norm(
                    &format!("XAUTOCLAIM s {g} {c} 0 {start} COUNT {count}{justid}"),
                    Norm::Exact,
                );
            }
            80..=87 => {
                if rng.gen_bool(0.5) {
                    p.line(&format!("XPENDING s {g}"));
                } else {
                    let who = if rng.gen_bool(0.5) { c } else { "" };
                    p.norm(&format!("XPENDING s {g} - + 10 {who}"), Norm::PendingRows);
                }
            }
            88..=94 => {
                let id = pick_id(&mut rng, &ids);
                p.line(&format!("XDEL s {id}"));
            }
            _ => {
                p.norm("XINFO GROUPS s", Norm::Exact);
                p.norm("XINFO STREAM s FULL COUNT 0", Norm::Times);
            }
        }
    }
    p.compare_info("s");
}

// ---------------------------------------------------------------------------
// Blocking reads

#[test]
fn blocked_xreadgroup_wakes_on_xadd_and_times_out_with_null() {
    let ours = TestServer::start(&[]);
    let mut c = ours.conn();
    assert_eq!(c.cmd("XGROUP CREATE s g $ MKSTREAM"), R::ok());
    let mut waiter = ours.conn();
    waiter.send(&words("XREADGROUP GROUP g alice BLOCK 0 STREAMS s >"));
    // The waiter is registered once INFO shows it blocked.
    assert!(wait_until(Duration::from_secs(5), || {
        matches!(c.cmd("INFO clients"), R::Bulk(b) if String::from_utf8_lossy(&b).contains("blocked_clients:1"))
    }));
    assert_eq!(c.cmd("XADD s 5-1 k v"), R::bulk("5-1"));
    assert_eq!(
        waiter.read(),
        R::Arr(vec![R::Arr(vec![
            b("s"),
            R::Arr(vec![R::Arr(vec![b("5-1"), arr(&["k", "v"])])])
        ])])
    );
    // The delivery is pending for alice.
    match c.cmd("XPENDING s g") {
        R::Arr(v) => assert_eq!(v[0], R::Int(1)),
        o => panic!("{o:?}"),
    }
    // Nothing new: a short block times out with a null array.
    let t = Instant::now();
    assert_eq!(
        waiter.cmd("XREADGROUP GROUP g alice BLOCK 100 STREAMS s >"),
        R::NilArr
    );
    assert!(t.elapsed() >= Duration::from_millis(100));
    // Inside MULTI a block is a null reply straight away.
    assert_eq!(waiter.cmd("MULTI"), R::ok());
    waiter.cmd("XREADGROUP GROUP g alice BLOCK 0 STREAMS s >");
    assert_eq!(waiter.cmd("EXEC"), R::Arr(vec![R::NilArr]));
    assert_eq!(
        c.cmd("XREADGROUP GROUP g alice BLOCK -1 STREAMS s >"),
        err("ERR timeout is negative")
    );
}

#[test]
fn blocked_xreadgroup_gets_redis_errors_when_the_key_or_group_goes_away() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    for port in [ours.port, theirs.port] {
        let mut c = Conn::connect(port);
        let mut replies = Vec::new();
        let kills = [
            "DEL s",
            "XGROUP DESTROY s g",
            "FLUSHALL",
            "SET s x",
            "RENAME s s2",
            "PEXPIRE s 1",
        ];
        for kill in kills {
            c.cmd("FLUSHALL");
            assert_eq!(c.cmd("XGROUP CREATE s g $ MKSTREAM"), R::ok());
            let mut w = Conn::connect(port);
            w.send(&words("XREADGROUP GROUP g c BLOCK 5000 STREAMS s >"));
            assert!(wait_until(Duration::from_secs(5), || {
                matches!(c.cmd("INFO clients"), R::Bulk(b) if String::from_utf8_lossy(&b).contains("blocked_clients:1"))
            }));
            let r = c.cmd(kill);
            assert!(!matches!(r, R::Err(_)), "{kill}: {r:?}");
            replies.push(w.read());
        }
        let gone = err("UNBLOCKED the stream key no longer exists");
        let mut want = vec![gone.clone(); kills.len()];
        want[1] = err("NOGROUP the consumer group this client was blocked on no longer exists");
        assert_eq!(replies, want, "port {port}");
    }
}

/// Fan-out: readers of two groups block on one stream, two of them in the same
/// group. One XADD serves the first reader of each group; the second reader of
/// the first group finds the entry taken and keeps waiting. Same on Redis.
#[test]
fn one_xadd_wakes_one_blocked_reader_per_group() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let mut outcomes = Vec::new();
    for port in [ours.port, theirs.port] {
        let mut c = Conn::connect(port);
        assert_eq!(c.cmd("XGROUP CREATE s g1 $ MKSTREAM"), R::ok());
        assert_eq!(c.cmd("XGROUP CREATE s g2 $"), R::ok());
        let mut readers = Vec::new();
        for (n, (group, name)) in [("g1", "a"), ("g1", "b"), ("g2", "c")].iter().enumerate() {
            let mut w = Conn::connect(port);
            w.send(&words(&format!(
                "XREADGROUP GROUP {group} {name} BLOCK 1500 STREAMS s >"
            )));
            let want = format!("blocked_clients:{}", n + 1);
            assert!(wait_until(Duration::from_secs(5), || {
                matches!(c.cmd("INFO clients"), R::Bulk(b) if String::from_utf8_lossy(&b).contains(&want))
            }));
            readers.push(w);
        }
        assert_eq!(c.cmd("XADD s 1-1 k v"), R::bulk("1-1"));
        let got: Vec<R> = readers.iter_mut().map(|w| w.read()).collect();
        outcomes.push(got);
    }
    let entry = R::Arr(vec![R::Arr(vec![
        b("s"),
        R::Arr(vec![R::Arr(vec![b("1-1"), arr(&["k", "v"])])]),
    ])]);
    // b times out (null) after its 1.5 s; a and c get the entry.
    assert_eq!(outcomes[1], vec![entry.clone(), R::NilArr, entry]);
    assert_eq!(outcomes[0], outcomes[1]);
}

// ---------------------------------------------------------------------------
// Replication

fn is_synced(c: &mut Conn) -> bool {
    matches!(c.cmd("ROLE"), R::Arr(v) if v.len() == 5 && v[3] == R::bulk("connected"))
}

/// A mixed group workload (no history reads: Redis does not propagate them, so a
/// master and its replicas legitimately differ after one).
fn group_workload(c: &mut Conn) {
    let ok = |r: R| assert!(!matches!(r, R::Err(_)), "{r:?}");
    ok(c.cmd("XGROUP CREATE s g 0 MKSTREAM"));
    ok(c.cmd("XGROUP CREATE s g2 $"));
    for i in 1..=60 {
        ok(c.cmd(&format!("XADD s {i}-1 f v{i}")));
    }
    ok(c.cmd("XREADGROUP GROUP g alice COUNT 10 STREAMS s >"));
    ok(c.cmd("XREADGROUP GROUP g bob COUNT 7 STREAMS s >"));
    ok(c.cmd("XREADGROUP GROUP g2 carol NOACK COUNT 5 STREAMS s >"));
    ok(c.cmd("XREADGROUP GROUP g2 dave NOACK STREAMS s 0"));
    ok(c.cmd("XACK s g 1-1 3-1 12-1"));
    ok(c.cmd("XCLAIM s g carol 0 2-1 4-1 TIME 1000"));
    ok(c.cmd("XCLAIM s g carol 0 30-1 FORCE"));
    ok(c.cmd("XCLAIM s g dave 0 5-1 JUSTID LASTID 20-1"));
    ok(c.cmd("XDEL s 6-1 7-1"));
    ok(c.cmd("XAUTOCLAIM s g erin 0 0 COUNT 4"));
    ok(c.cmd("XGROUP CREATECONSUMER s g frank"));
    ok(c.cmd("XGROUP DELCONSUMER s g bob"));
    ok(c.cmd("XGROUP CREATE s g3 10-1 ENTRIESREAD 10"));
    ok(c.cmd("XREADGROUP GROUP g3 gus COUNT 3 STREAMS s >"));
    ok(c.cmd("XGROUP SETID s g2 40-1 ENTRIESREAD 40"));
    ok(c.cmd("XGROUP DESTROY s g3"));
    ok(c.cmd("XTRIM s MAXLEN 50"));
}

/// XINFO STREAM FULL with seen-times blanked: a replica creates consumers at its
/// own clock (as a real Redis replica does), so only those can differ. Delivery
/// times travel in the XCLAIM effects and must match exactly.
fn full_info(c: &mut Conn) -> R {
    blank_field(c.cmd("XINFO STREAM s FULL"), "seen-time")
}

/// What a replica must agree with its master on. Redis 7.0 propagates a group's
/// `entries_read` only with NOACK reads and XGROUP SETID: after acknowledged reads
/// a real Redis replica shows `entries-read` and `lag` as null where its master
/// has numbers (verified against 7.0.15), so those two are left out here; the
/// replicas are compared with each other including them.
fn master_view(r: R) -> R {
    blank_field(blank_field(r, "entries-read"), "lag")
}

#[test]
fn tandem_master_replicates_groups_to_tandem_and_redis_replicas() {
    let master = TestServer::start(&[]);
    let port = master.port.to_string();
    let ours = TestServer::start(&["--replicaof", "127.0.0.1", &port]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &["--replicaof", "127.0.0.1", &port]);
    let (mut m, mut a, mut b) = (master.conn(), ours.conn(), theirs.conn());
    assert!(wait_until(Duration::from_secs(30), || is_synced(&mut a)
        && is_synced(&mut b)));
    group_workload(&mut m);
    assert_eq!(m.cmd("WAIT 2 10000"), R::Int(2));
    let want = full_info(&mut m);
    assert!(matches!(&want, R::Arr(v) if !v.is_empty()));
    let (ra, rb) = (full_info(&mut a), full_info(&mut b));
    same_reply(ra.clone(), rb, "Tandem replica vs Redis replica");
    same_reply(master_view(ra), master_view(want), "replica vs master");
    assert_eq!(a.cmd("XINFO GROUPS s"), b.cmd("XINFO GROUPS s"));
}

/// What Tandem streams to its replicas for a group workload is what Redis 7.0.15
/// streams, command for command (XCLAIM ... FORCE JUSTID LASTID effects, XGROUP
/// SETID ... ENTRIESREAD after NOACK reads, MULTI/EXEC around several effects).
#[test]
fn propagated_commands_match_redis_one_for_one() {
    let ours = TestServer::start(&["--repl-diskless-sync", "no"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &["--repl-diskless-sync", "no"]);
    let mut streams = Vec::new();
    for port in [ours.port, theirs.port] {
        let mut repl = attach_replica(port);
        let mut c = Conn::connect(port);
        for q in [
            "XADD s 1-1 a 1",
            "XADD s 2-1 b 2",
            "XADD s 3-1 c 3",
            "XGROUP CREATE s g 0",
            "XREADGROUP GROUP g c1 COUNT 1 STREAMS s >",
            "XREADGROUP GROUP g c2 STREAMS s >",
            "XREADGROUP GROUP g c3 STREAMS s >",
            "XREADGROUP GROUP g c4 NOACK STREAMS s 0",
            "XADD s 4-1 d 4",
            "XREADGROUP GROUP g c4 NOACK STREAMS s >",
            "XREADGROUP GROUP g c1 STREAMS s 0",
            "XCLAIM s g c5 0 1-1 2-1",
            "XCLAIM s g c5 0 1-1 LASTID 9-9 JUSTID",
            "XCLAIM s g c5 0 7-7 LASTID 10-1",
            "XAUTOCLAIM s g c6 0 0 COUNT 1",
            "XGROUP CREATECONSUMER s g c7",
            "XGROUP CREATECONSUMER s g c7",
            "XGROUP SETID s g 1-1 ENTRIESREAD 1",
            "XGROUP DELCONSUMER s g c7",
            "XGROUP DELCONSUMER s g nobody",
            "XACK s g 2-1",
            "XACK s g 2-1",
            "XGROUP CREATE s g2 $ MKSTREAM",
            "XGROUP DESTROY s g2",
            "XGROUP DESTROY s g2",
            "XCLAIM s g c8 0 2-1 3-1 JUSTID",
            "XDEL s 3-1",
            "XAUTOCLAIM s g c9 0 0",
            "XCLAIM s g c9 0 1 FORCE",
            "XGROUP CREATE s h $",
            "XGROUP CREATE s h2 $",
        ] {
            c.cmd(q);
        }
        // Two readers blocked on two groups, served by one XADD: one XCLAIM
        // each, after the XADD, in the order they blocked, none in MULTI.
        let mut waiters = Vec::new();
        for (n, group) in ["h", "h2"].iter().enumerate() {
            let mut w = Conn::connect(port);
            w.send(&words(&format!(
                "XREADGROUP GROUP {group} w{n} BLOCK 5000 STREAMS s >"
            )));
            let want = format!("blocked_clients:{}", n + 1);
            assert!(wait_until(Duration::from_secs(5), || {
                matches!(c.cmd("INFO clients"), R::Bulk(b) if String::from_utf8_lossy(&b).contains(&want))
            }));
            waiters.push(w);
        }
        c.cmd("XADD s 20-1 x 1");
        for w in &mut waiters {
            assert!(matches!(w.read(), R::Arr(_)));
        }
        c.cmd("SET done 1");
        streams.push(propagated(&mut repl));
    }
    assert!(streams[1].iter().any(|l| l.starts_with("XCLAIM")));
    assert_eq!(streams[0], streams[1], "ours vs Redis 7.0.15");
}

#[test]
fn tandem_replica_of_a_redis_master_has_the_same_groups() {
    let dir = tempfile::tempdir().expect("tempdir");
    let master = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let port = master.port.to_string();
    let ours = TestServer::start(&["--replicaof", "127.0.0.1", &port]);
    let (mut m, mut a) = (master.conn(), ours.conn());
    assert!(wait_until(Duration::from_secs(30), || is_synced(&mut a)));
    group_workload(&mut m);
    assert_eq!(m.cmd("WAIT 1 10000"), R::Int(1));
    same_reply(
        master_view(full_info(&mut a)),
        master_view(full_info(&mut m)),
        "Tandem replica vs Redis master",
    );
    assert_eq!(
        master_view(a.cmd("XINFO GROUPS s")),
        master_view(m.cmd("XINFO GROUPS s"))
    );
}

// ---------------------------------------------------------------------------
// RDB both ways

fn exact_info(c: &mut Conn) -> Vec<R> {
    ["XINFO STREAM s FULL", "XINFO GROUPS s", "XRANGE s - +"]
        .iter()
        .map(|q| c.cmd(q))
        .collect()
}

#[test]
fn groups_survive_rdb_both_ways_with_redis() {
    // Redis writes, Tandem loads.
    let rdir = tempfile::tempdir().expect("tempdir");
    let redis = RealRedis::start(rdir.path(), "dump.rdb", &[]);
    let mut rc = redis.conn();
    group_workload(&mut rc);
    assert_eq!(rc.cmd("SAVE"), R::ok());
    let want = exact_info(&mut rc);
    let tdir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(rdir.path().join("dump.rdb"), tdir.path().join("dump.rdb")).expect("copy");
    let ours = TestServer::start_in(tdir, &[]);
    let mut tc = ours.conn();
    assert_eq!(exact_info(&mut tc), want, "Redis dump loaded in Tandem");

    // Tandem writes (after more group changes of its own), Redis loads.
    for q in [
        "XREADGROUP GROUP g zed COUNT 3 STREAMS s >",
        "XCLAIM s g yan 0 15-1 TIME 5000",
        "XGROUP CREATE s fresh $",
    ] {
        assert!(!matches!(tc.cmd(q), R::Err(_)), "{q}");
    }
    assert_eq!(tc.cmd("SAVE"), R::ok());
    let want = exact_info(&mut tc);
    let rdir2 = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        ours.dir.path().join("dump.rdb"),
        rdir2.path().join("dump.rdb"),
    )
    .expect("copy");
    let redis2 = RealRedis::start(rdir2.path(), "dump.rdb", &[]);
    assert_eq!(
        exact_info(&mut redis2.conn()),
        want,
        "Tandem dump loaded in Redis"
    );
}

/// The AOF holds the same effects as the replication stream: after a crash and a
/// replay the groups are what they were (seen-times are the replay's own).
#[test]
fn groups_survive_an_aof_replay() {
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
    ];
    let s = TestServer::start(&args);
    let mut c = s.conn();
    group_workload(&mut c);
    let want = full_info(&mut c);
    let groups = c.cmd("XINFO GROUPS s");
    // SIGKILL, keeping the directory.
    let mut s = s;
    let _ = s.child.kill();
    let _ = s.child.wait();
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().expect("tempdir"));
    drop(s);
    let s = TestServer::start_in(dir, &args);
    let mut c = s.conn();
    // The read counters come back only where the AOF carries them, as on a
    // replica (see `master_view`); Redis 7.0's AOF has the same gap.
    same_reply(
        master_view(full_info(&mut c)),
        master_view(want),
        "after AOF replay",
    );
    same_reply(
        master_view(c.cmd("XINFO GROUPS s")),
        master_view(groups),
        "groups after AOF replay",
    );
}

// ---------------------------------------------------------------------------
// Bad input

#[test]
fn bad_input_gets_redis_errors_and_the_server_survives() {
    let mut p = Pair::start();
    p.script(&[
        "SET str x",
        "XADD s 18446744073709551615-18446744073709551614 a 1",
        "XGROUP CREATE s g 0",
        "XREADGROUP GROUP g c COUNT 9223372036854775807 STREAMS s >",
        "XREADGROUP GROUP g c COUNT -9223372036854775808 STREAMS s 0",
        "XREADGROUP GROUP g c STREAMS s 18446744073709551615-18446744073709551615",
        "XREADGROUP GROUP g c STREAMS s 18446744073709551616",
        "XREADGROUP GROUP g c STREAMS s -1",
        "XREADGROUP GROUP g c STREAMS s 1-2-3",
        "XREADGROUP GROUP g c BLOCK -9223372036854775808 STREAMS s >",
        "XACK s g 18446744073709551615-18446744073709551614 0-0 18446744073709551615",
        "XCLAIM s g c 0 18446744073709551615-18446744073709551614 TIME 9223372036854775807",
        "XCLAIM s g c 9223372036854775807 18446744073709551615-18446744073709551614",
        "XCLAIM s g c -9223372036854775808 18446744073709551615-18446744073709551614 JUSTID TIME 1",
        "XCLAIM s g c 0 0-0 FORCE",
        "XAUTOCLAIM s g c -9223372036854775808 0 COUNT 1",
        "XAUTOCLAIM s g c 0 (18446744073709551615-18446744073709551614",
        "XPENDING s g IDLE 9223372036854775807 - + 9223372036854775807",
        "XPENDING s g IDLE -9223372036854775808 - + 1",
        "XGROUP SETID s g 18446744073709551615-18446744073709551615 ENTRIESREAD 9223372036854775807",
        "XINFO GROUPS s",
        "XGROUP SETID s g 0 ENTRIESREAD -9223372036854775808",
        // A counter at the top of its range moves on without crashing anything.
        "XGROUP SETID s g 0 ENTRIESREAD 9223372036854775807",
        "XREADGROUP GROUP g c STREAMS s >",
        "XINFO GROUPS s",
        "XREADGROUP GROUP g c STREAMS str >",
        "XGROUP CREATE str g 0",
        "XACK str g 1",
        "XPENDING str g",
        "XCLAIM str g c 0 1",
        "XAUTOCLAIM str g c 0 0",
        "XINFO STREAM str",
        "XINFO CONSUMERS str g",
        "XGROUP CREATECONSUMER str g c",
    ]);
    p.norm("XINFO STREAM s FULL", Norm::Times);
    p.norm("XINFO STREAM s FULL COUNT 9223372036854775807", Norm::Times);
    p.line("PING");
}

// ---------------------------------------------------------------------------
// A real client: a worker pool on the `redis` crate

/// Two workers share 100k entries through one group; a third consumer takes a
/// batch and "crashes" without acking. A reclaimer takes its entries with
/// XAUTOCLAIM. Every entry is processed, and none is processed again once acked.
#[test]
fn worker_pool_processes_every_entry_once_with_a_crashed_consumer() {
    const N: usize = 100_000;
    let ours = TestServer::start(&[]);
    let client = ours.client();
    let mut con = client.get_connection().expect("connect");
    redis::cmd("XGROUP")
        .arg(&["CREATE", "jobs", "pool", "0", "MKSTREAM"])
        .query::<()>(&mut con)
        .expect("create group");
    let started = Instant::now();
    for chunk in 0..N / 1000 {
        let mut pipe = redis::pipe();
        for i in 0..1000 {
            pipe.cmd("XADD")
                .arg("jobs")
                .arg("*")
                .arg("n")
                .arg(chunk * 1000 + i)
                .ignore();
        }
        pipe.query::<()>(&mut con).expect("xadd batch");
    }
    // The crashed consumer takes 500 entries and never acknowledges them.
    // An entry as the client sees it: [id, [field, value]].
    type Entry = (String, Vec<(String, i64)>);
    // XREADGROUP's reply: [[key, [entry, ...]]], or nil.
    type Read = Option<Vec<(String, Vec<Entry>)>>;
    // XAUTOCLAIM's: [cursor, [entry, ...], [deleted id, ...]].
    type AutoClaim = (String, Vec<Entry>, Vec<String>);
    // XPENDING's summary: [count, first, last, [[consumer, count], ...]].
    type Summary = (
        i64,
        Option<String>,
        Option<String>,
        Option<Vec<(String, String)>>,
    );
    let crashed: Read = redis::cmd("XREADGROUP")
        .arg(&[
            "GROUP", "pool", "crasher", "COUNT", "500", "STREAMS", "jobs", ">",
        ])
        .query(&mut con)
        .expect("crasher read");
    let crashed = crashed.expect("entries for the crasher");
    let crashed_ids: HashSet<String> = crashed[0].1.iter().map(|e| e.0.clone()).collect();
    assert_eq!(crashed_ids.len(), 500);

    let work = |name: &'static str| {
        let client = client.clone();
        std::thread::spawn(move || -> Vec<(String, i64)> {
            let mut con = client.get_connection().expect("connect");
            let mut done = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let r: Read = redis::cmd("XREADGROUP")
                    .arg(&["GROUP", "pool", name, "COUNT", "500", "BLOCK", "200"])
                    .arg(&["STREAMS", "jobs", ">"])
                    .query(&mut con)
                    .expect("read");
                // A timeout with nothing new: the stream is drained.
                let Some(r) = r else { break };
                let entries = &r[0].1;
                let mut ack = redis::cmd("XACK");
                ack.arg("jobs").arg("pool");
                for (id, fields) in entries {
                    done.push((id.clone(), fields[0].1));
                    ack.arg(id);
                }
                let acked: usize = ack.query(&mut con).expect("ack");
                assert_eq!(acked, entries.len());
            }
            done
        })
    };
    let (w1, w2) = (work("w1"), work("w2"));
    let mut done: Vec<(String, i64)> = w1.join().expect("w1");
    let d2 = w2.join().expect("w2");
    assert!(!d2.is_empty() && !done.is_empty(), "both workers got work");
    done.extend(d2);
    // The reclaimer takes over what the crashed consumer held, in batches.
    let mut cursor = "0-0".to_string();
    loop {
        let (next, entries, _deleted): AutoClaim = redis::cmd("XAUTOCLAIM")
            .arg(&["jobs", "pool", "reclaimer", "0", &cursor, "COUNT", "100"])
            .query(&mut con)
            .expect("xautoclaim");
        for (id, fields) in entries {
            assert!(
                crashed_ids.contains(&id),
                "reclaimed {id} was not the crasher's"
            );
            done.push((id.clone(), fields[0].1));
            let _: i64 = redis::cmd("XACK")
                .arg(&["jobs", "pool", &id])
                .query(&mut con)
                .expect("ack");
        }
        if next == "0-0" {
            break;
        }
        cursor = next;
    }
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for (_, n) in &done {
        *seen.entry(*n).or_default() += 1;
    }
    assert_eq!(seen.len(), N, "every entry processed");
    assert!(
        seen.values().all(|&k| k == 1),
        "an entry was processed twice"
    );
    let pending: Summary = redis::cmd("XPENDING")
        .arg(&["jobs", "pool"])
        .query(&mut con)
        .expect("xpending");
    assert_eq!(pending.0, 0, "nothing left pending");
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// Runs XREADGROUP blocked on a group that XGROUP DESTROY removes, then on a stream
/// that DEL removes; returns the two answers and the statistics afterwards.
fn vanished_group_scenario(server_conn: impl Fn() -> Conn) -> (R, R, Vec<String>) {
    let mut c = server_conn();
    assert_eq!(c.cmd("CONFIG RESETSTAT"), R::ok());
    let mut ends = Vec::new();
    for end in ["XGROUP DESTROY s g", "DEL s"] {
        assert_eq!(c.cmd("XGROUP CREATE s g $ MKSTREAM"), R::ok());
        let mut waiter = server_conn();
        waiter.send(&words("XREADGROUP GROUP g alice BLOCK 0 STREAMS s >"));
        assert!(wait_until(Duration::from_secs(5), || {
            matches!(c.cmd("INFO clients"), R::Bulk(b) if String::from_utf8_lossy(&b).contains("blocked_clients:1"))
        }));
        assert_eq!(c.cmd(end), R::Int(1));
        ends.push(waiter.read());
        c.cmd("DEL s");
    }
    let R::Bulk(text) = c.cmd("INFO commandstats") else {
        panic!("INFO commandstats is not a bulk");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("cmdstat_xreadgroup:"))
        .unwrap_or("");
    let mut stats: Vec<String> = line
        .split([':', ','])
        .filter(|f| f.starts_with("calls=") || f.starts_with("failed_calls="))
        .map(str::to_string)
        .collect();
    stats.push(format!(
        "total_error_replies={}",
        info_field(&mut c, "stats", "total_error_replies").unwrap_or_default()
    ));
    let second = ends.pop().unwrap_or(R::Nil);
    let first = ends.pop().unwrap_or(R::Nil);
    (first, second, stats)
}

/// Found by Redis's own TCL suite (unit/type/stream-cgroups, XGROUP DESTROY unblocking
/// XREADGROUP): the reader gets the NOGROUP (or UNBLOCKED) error, and the blocked call
/// counts as one failed XREADGROUP call and one error reply, as in Redis 7.0.
#[test]
fn xreadgroup_unblocked_by_a_vanished_group_is_a_failed_call_like_redis() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let got = vanished_group_scenario(|| ours.conn());
    let want = vanished_group_scenario(|| theirs.conn());
    assert_eq!(
        want,
        (
            err("NOGROUP the consumer group this client was blocked on no longer exists"),
            err("UNBLOCKED the stream key no longer exists"),
            vec![
                "calls=2".to_string(),
                "failed_calls=2".to_string(),
                "total_error_replies=2".to_string()
            ]
        )
    );
    assert_eq!(got, want);
}

/// A blocked XREAD keeps waiting when its key becomes a string (Redis serves stream
/// readers from streams only) and is served once the key is a stream again; a blocked
/// XREADGROUP is answered with the UNBLOCKED error instead.
#[test]
fn blocked_stream_readers_on_a_key_turned_string() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    for (read, want_error) in [
        ("XREAD BLOCK 0 STREAMS s $", false),
        ("XREADGROUP GROUP g c BLOCK 0 STREAMS s >", true),
    ] {
        let [ra, rb] = [ours.port, theirs.port].map(|port| {
                let mut c = Conn::connect(port);
                c.cmd("DEL s");
                c.cmd("XADD s 666-0 f v");
                c.cmd("XGROUP CREATE s g $");
                let mut rd = Conn::connect(port);
                let words: Vec<&[u8]> = read.split_whitespace().map(str::as_bytes).collect();
                rd.send(&words);
                assert!(wait_until(Duration::from_secs(10), || {
                    matches!(c.cmd("INFO clients"), R::Bulk(b) if String::from_utf8_lossy(&b).contains("blocked_clients:1"))
                }));
                c.cmd("SET s val1");
                c.cmd("DEL s");
                c.cmd("XADD s 667-0 f v");
                rd.read()
            });
        assert_eq!(ra, rb, "{read}");
        assert_eq!(matches!(ra, R::Err(_)), want_error, "{read}: {ra:?}");
    }
}

/// A DEL or FLUSHALL sent right after an XREADGROUP BLOCK on another connection (its
/// reply not awaited) finds the reader blocked, as in Redis, which answers it with
/// the UNBLOCKED error, never with the NOGROUP of a read that came second.
#[test]
fn xreadgroup_block_then_delete_from_another_connection_in_order() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    for port in [ours.port, theirs.port] {
        let mut c = Conn::connect(port);
        for i in 0..100 {
            c.cmd("DEL s");
            c.cmd("XADD s 666-0 f v");
            c.cmd("XGROUP CREATE s g $");
            let mut rd = Conn::connect(port);
            // Connected and served once, as a client that was already there.
            assert_eq!(rd.cmd("PING"), R::Simple("PONG".into()));
            rd.send(&[
                b"XREADGROUP",
                b"GROUP",
                b"g",
                b"c",
                b"BLOCK",
                b"0",
                b"STREAMS",
                b"s",
                b">",
            ]);
            c.cmd(if i % 2 == 0 { "DEL s" } else { "FLUSHALL" });
            let r = rd.read();
            assert!(
                matches!(&r, R::Err(e) if e.contains("no longer exists")),
                "port {port}, round {i}: {r:?}"
            );
        }
    }
}
