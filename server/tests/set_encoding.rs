//! Set encodings side by side with Redis 7.0.15 (issue 21): the intset limit by
//! count and by member shape, CONFIG SET of `set-max-intset-entries`, every set write
//! at the boundary, DEBUG RELOAD / DUMP+RESTORE both ways, SSCAN and the random
//! commands. An intset's members come out in ascending order in both servers, so
//! those replies are compared exactly; a hashtable's order is the table's own in
//! each, so those are compared as sets.
mod common;
use common::*;

fn enc(p: &mut Both, key: &str) -> R {
    p.same(&[b"OBJECT", b"ENCODING", key.as_bytes()])
}

/// Sends `line` (split on spaces) to both servers and requires equal replies.
fn same(p: &mut Both, line: &str) -> R {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    p.same(&args)
}

/// Sends `line` to both and requires the same members, in any order.
fn same_members(p: &mut Both, line: &str) -> std::collections::BTreeSet<Vec<u8>> {
    let ours = bulks(p.a.cmd(line));
    let theirs = bulks(p.b.cmd(line));
    assert_eq!(ours, theirs, "members of {line:?} differ from Redis 7.0.15");
    ours
}

fn sadd_all(p: &mut Both, key: &str, members: impl Iterator<Item = String>) {
    let mut args: Vec<Vec<u8>> = vec![b"SADD".to_vec(), key.as_bytes().to_vec()];
    args.extend(members.map(String::into_bytes));
    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
    p.same(&refs);
}

#[test]
fn intset_up_to_512_members_in_ascending_order_then_hashtable() {
    let mut p = Both::start();
    // Added in a scrambled order, with negatives, so order is the intset's own.
    for i in 0..511i64 {
        let m = (i * 7919) % 511 - 255;
        same(&mut p, &format!("SADD s {m}"));
        if i % 100 == 0 {
            assert_eq!(enc(&mut p, "s"), b("intset"));
        }
    }
    same(&mut p, "SADD s 1000");
    assert_eq!(enc(&mut p, "s"), b("intset"));
    let all = same(&mut p, "SMEMBERS s");
    let R::Arr(items) = &all else {
        panic!("{all:?}")
    };
    assert_eq!(items.len(), 512);
    same(&mut p, "SADD s 1000");
    assert_eq!(enc(&mut p, "s"), b("intset"), "no new member");
    same(&mut p, "SADD s 1001");
    assert_eq!(enc(&mut p, "s"), b("hashtable"));
    for i in -255..200 {
        same(&mut p, &format!("SREM s {i}"));
    }
    assert_eq!(enc(&mut p, "s"), b("hashtable"), "never back");
    same_members(&mut p, "SMEMBERS s");
    same(&mut p, "SCARD s");
}

#[test]
fn integer_widths_keep_ascending_order_in_every_reply() {
    let mut p = Both::start();
    let members = [
        "5",
        "-3",
        "32767",
        "-32768",
        "32768",
        "-2147483648",
        "2147483647",
        "2147483648",
        "-9223372036854775808",
        "9223372036854775807",
        "0",
    ];
    for m in members {
        same(&mut p, &format!("SADD w {m}"));
        same(&mut p, "SMEMBERS w");
        assert_eq!(enc(&mut p, "w"), b("intset"));
    }
    same(&mut p, "SSCAN w 0 COUNT 1");
    same(&mut p, "SSCAN w 0 MATCH *7*");
    same(&mut p, "SRANDMEMBER w 100");
    same(&mut p, "SRANDMEMBER w 11");
    same(&mut p, "SMISMEMBER w 5 6 -9223372036854775808 05");
    same(&mut p, "SISMEMBER w 2147483648");
    // Removing the wide members keeps the intset (and its order).
    same(
        &mut p,
        "SREM w 9223372036854775807 -9223372036854775808 32768",
    );
    same(&mut p, "SMEMBERS w");
    same(&mut p, "SPOP w 100");
    same(&mut p, "EXISTS w");
}

#[test]
fn non_canonical_integers_make_a_hashtable() {
    let mut p = Both::start();
    for (i, m) in [
        "007",
        "+1",
        "-0",
        "1.5",
        " 1",
        "9223372036854775808",
        "-9223372036854775809",
        "",
        "abc",
    ]
    .iter()
    .enumerate()
    {
        let key = format!("n{i}");
        same(&mut p, &format!("SADD {key} 1 2 3"));
        assert_eq!(enc(&mut p, &key), b("intset"));
        let args: Vec<&[u8]> = vec![b"SADD", key.as_bytes(), m.as_bytes()];
        p.same(&args);
        assert_eq!(enc(&mut p, &key), b("hashtable"), "{m:?}");
        let args: Vec<&[u8]> = vec![b"SISMEMBER", key.as_bytes(), m.as_bytes()];
        assert_eq!(p.same(&args), R::Int(1));
        same(&mut p, &format!("SISMEMBER {key} 2"));
        same_members(&mut p, &format!("SMEMBERS {key}"));
    }
}

#[test]
fn small_string_sets_grow_by_count_and_length_reporting_hashtable() {
    let mut p = Both::start();
    for i in 0..130 {
        same(&mut p, &format!("SADD c m{i}"));
        if (126..130).contains(&i) {
            assert_eq!(enc(&mut p, "c"), b("hashtable"));
            same(&mut p, "SCARD c");
            same(&mut p, &format!("SISMEMBER c m{i}"));
            same(&mut p, "SISMEMBER c m130");
        }
    }
    same_members(&mut p, "SMEMBERS c");
    for n in [63, 64, 65, 200] {
        let long = "x".repeat(n);
        same(&mut p, &format!("SADD l a {long}"));
        same(&mut p, &format!("SISMEMBER l {long}"));
        assert_eq!(enc(&mut p, "l"), b("hashtable"));
    }
    same(&mut p, "SREM l a");
    same_members(&mut p, "SMEMBERS l");
    // Strings removed from a mixed set leave integers; still a hashtable.
    same(&mut p, "SADD mix 3 1 a 2");
    same(&mut p, "SREM mix a");
    assert_eq!(enc(&mut p, "mix"), b("hashtable"));
    same_members(&mut p, "SMEMBERS mix");
}

#[test]
fn config_set_of_the_intset_limit_applies_to_later_writes() {
    let mut p = Both::start();
    sadd_all(&mut p, "a", (1..=10).map(|i| i.to_string()));
    same(&mut p, "CONFIG SET set-max-intset-entries 4");
    assert_eq!(enc(&mut p, "a"), b("intset"), "no write yet");
    same(&mut p, "SADD a 5");
    same(&mut p, "SREM a 1 2 3");
    assert_eq!(enc(&mut p, "a"), b("intset"), "removals keep it");
    same(&mut p, "SADD a 11");
    assert_eq!(enc(&mut p, "a"), b("hashtable"));
    same(&mut p, "SADD b 1 2 3 4");
    assert_eq!(enc(&mut p, "b"), b("intset"));
    same(&mut p, "SADD b 5");
    assert_eq!(enc(&mut p, "b"), b("hashtable"));
    same(&mut p, "SADD b2 1 2 3 4");
    for (cmd, dst) in [
        ("SUNIONSTORE", "u"),
        ("SINTERSTORE", "i"),
        ("SDIFFSTORE", "d"),
    ] {
        same(&mut p, &format!("{cmd} {dst} b b2"));
        enc(&mut p, dst);
        same_members(&mut p, &format!("SMEMBERS {dst}"));
    }
    same(&mut p, "CONFIG SET set-max-intset-entries 0");
    same(&mut p, "SADD z 1");
    assert_eq!(enc(&mut p, "z"), b("hashtable"));
    same(&mut p, "CONFIG SET set-max-intset-entries 512");
    same(&mut p, "SADD y 1");
    assert_eq!(enc(&mut p, "y"), b("intset"));
}

#[test]
fn every_set_write_at_the_intset_boundary() {
    let mut p = Both::start();
    let full = || (0..512).map(|i| i.to_string());
    // SMOVE: an integer into a full intset converts it; a string into an intset too.
    sadd_all(&mut p, "full", full());
    same(&mut p, "SADD src 600 str");
    same(&mut p, "SMOVE src full 600");
    assert_eq!(enc(&mut p, "full"), b("hashtable"));
    sadd_all(&mut p, "ints", (0..5).map(|i| i.to_string()));
    same(&mut p, "SMOVE src ints str");
    assert_eq!(enc(&mut p, "ints"), b("hashtable"));
    same(&mut p, "SMOVE ints newdst 3");
    assert_eq!(enc(&mut p, "newdst"), b("intset"));
    same(&mut p, "SMOVE ints newdst str");
    assert_eq!(enc(&mut p, "newdst"), b("hashtable"));
    // Store commands: results of up to 512 integers are intsets, replies in order.
    sadd_all(&mut p, "h1", (256..768).map(|i| i.to_string()));
    sadd_all(&mut p, "h0", full());
    for line in [
        "SUNIONSTORE u h0 h1",
        "SINTERSTORE i h0 h1",
        "SDIFFSTORE d h0 h1",
        "SDIFFSTORE d2 h0 h0",
        "SUNIONSTORE u2 h0 src",
    ] {
        same(&mut p, line);
        let dst = line.split(' ').nth(1).unwrap_or_default();
        same(&mut p, &format!("EXISTS {dst}"));
        if p.a.cmd(&format!("EXISTS {dst}")) == R::Int(1) {
            let e = enc(&mut p, dst);
            if e == b("intset") {
                same(&mut p, &format!("SMEMBERS {dst}"));
            } else {
                same_members(&mut p, &format!("SMEMBERS {dst}"));
            }
        }
    }
    same(&mut p, "SINTER h0 h1");
    same(&mut p, "SDIFF h0 h1");
    same_members(&mut p, "SUNION h0 src");
    same(&mut p, "SINTERCARD 2 h0 h1 LIMIT 10");
    // SPOP of a whole intset, then of part of one: the rest stays an intset.
    sadd_all(&mut p, "pop", (0..20).map(|i| (i * 3).to_string()));
    let popped = bulks(p.a.cmd("SPOP pop 5"));
    assert_eq!(popped.len(), 5);
    for m in &popped {
        let args: Vec<&[u8]> = vec![b"SREM", b"pop", m];
        p.b.cmd_args(&args);
    }
    same(&mut p, "SMEMBERS pop");
    assert_eq!(enc(&mut p, "pop"), b("intset"));
    same(&mut p, "SPOP pop 100");
    same(&mut p, "EXISTS pop");
}

#[test]
fn both_shapes_survive_reload_and_restore_both_ways() {
    let mut p = Both::start();
    sadd_all(&mut p, "ints", (0..300).map(|i| (i * 1000 - 7).to_string()));
    sadd_all(
        &mut p,
        "wide",
        ["1", "99999999999", "-5"].map(String::from).into_iter(),
    );
    sadd_all(&mut p, "small", (0..10).map(|i| format!("member:{i}")));
    sadd_all(&mut p, "big", (0..600).map(|i| i.to_string()));
    // A hashtable of integers only: Redis makes it an intset again when loading.
    same(&mut p, "SADD back 1 2 x");
    same(&mut p, "SREM back x");
    let keys = ["ints", "wide", "small", "big", "back"];
    same(&mut p, "DEBUG RELOAD");
    for k in keys {
        let e = enc(&mut p, k);
        if e == b("intset") {
            same(&mut p, &format!("SMEMBERS {k}"));
        } else {
            same_members(&mut p, &format!("SMEMBERS {k}"));
        }
    }
    // DUMP in one server, RESTORE in the other, both directions.
    for k in keys {
        for (from_ours, name) in [(true, "fromtandem"), (false, "fromredis")] {
            let dump = if from_ours {
                p.a.cmd(&format!("DUMP {k}"))
            } else {
                p.b.cmd(&format!("DUMP {k}"))
            };
            let R::Bulk(payload) = dump else {
                panic!("DUMP {k}: {dump:?}")
            };
            let dst = format!("{name}:{k}");
            let args: Vec<&[u8]> = vec![b"RESTORE", dst.as_bytes(), b"0", &payload];
            p.same(&args);
            let e = enc(&mut p, &dst);
            if e == b("intset") {
                same(&mut p, &format!("SMEMBERS {dst}"));
            } else {
                same_members(&mut p, &format!("SMEMBERS {dst}"));
            }
        }
    }
}

#[test]
fn sscan_of_an_intset_is_one_reply_and_of_a_hashtable_covers_every_member() {
    let mut p = Both::start();
    sadd_all(&mut p, "i", (0..300).map(|i| (300 - i).to_string()));
    same(&mut p, "SSCAN i 0");
    same(&mut p, "SSCAN i 0 COUNT 5 MATCH 1*");
    sadd_all(&mut p, "h", (0..300).map(|i| format!("k{i}")));
    for c in [&mut p.0.a, &mut p.0.b] {
        let mut seen = std::collections::BTreeSet::new();
        let mut cursor = b"0".to_vec();
        for _ in 0..1000 {
            let args: Vec<&[u8]> = vec![b"SSCAN", b"h", &cursor, b"COUNT", b"7"];
            let R::Arr(parts) = c.cmd_args(&args) else {
                panic!("SSCAN reply")
            };
            let [R::Bulk(next), items] = &parts[..] else {
                panic!("{parts:?}")
            };
            seen.extend(bulks(items.clone()));
            cursor = next.clone();
            if cursor == b"0" {
                break;
            }
        }
        assert_eq!(cursor, b"0".to_vec(), "scan finished");
        assert_eq!(seen.len(), 300);
    }
}

#[test]
fn random_members_stay_members_with_every_count() {
    let mut p = Both::start();
    sadd_all(&mut p, "i", (0..50).map(|i| i.to_string()));
    sadd_all(&mut p, "s", (0..50).map(|i| format!("s{i}")));
    sadd_all(&mut p, "h", (0..300).map(|i| format!("h{i}")));
    for (k, n) in [("i", 50), ("s", 50), ("h", 300)] {
        let all = bulks(p.a.cmd(&format!("SMEMBERS {k}")));
        for count in [1i64, 3, 49, 299] {
            let got = bulks(p.a.cmd(&format!("SRANDMEMBER {k} {count}")));
            assert_eq!(got.len() as i64, count.min(n), "distinct members");
            assert!(got.is_subset(&all));
        }
        let R::Arr(items) = p.a.cmd(&format!("SRANDMEMBER {k} -500")) else {
            panic!("array")
        };
        assert_eq!(items.len(), 500);
        assert!(bulks(R::Arr(items)).is_subset(&all));
        let R::Bulk(one) = p.a.cmd(&format!("SRANDMEMBER {k}")) else {
            panic!("member")
        };
        assert!(all.contains(&one));
        same_members(&mut p, &format!("SRANDMEMBER {k} {}", n + 1));
    }
    // The whole intset answers in ascending order, in both servers.
    same(&mut p, "SRANDMEMBER i 50");
    // Single draws reach every member of a small intset.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        if let R::Bulk(m) = p.a.cmd("SRANDMEMBER i") {
            seen.insert(m);
        }
        if seen.len() == 50 {
            break;
        }
    }
    assert_eq!(seen.len(), 50);
    let popped = bulks(p.a.cmd("SPOP s 10"));
    assert_eq!(popped.len(), 10);
    assert_eq!(p.a.cmd("SCARD s"), R::Int(40));
}

#[test]
fn a_small_set_costs_a_small_memory_usage() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    c.cmd("SADD ints 1 2");
    c.cmd("SADD strs member:001 member:002");
    c.cmd("SADD big 1 2");
    for i in 0..300 {
        c.cmd(&format!("SADD big member:{i}"));
    }
    let usage = |c: &mut Conn, k: &str| match c.cmd(&format!("MEMORY USAGE {k}")) {
        R::Int(n) => n,
        other => panic!("{other:?}"),
    };
    let (ints, strs, big) = (
        usage(&mut c, "ints"),
        usage(&mut c, "strs"),
        usage(&mut c, "big"),
    );
    // Two short members live in the 24-byte set box plus one 4- or 32-byte block.
    assert!(ints < strs && strs < 150, "ints {ints} strs {strs}");
    assert!(big > 300 * 16, "a table of 300 members: {big}");
}

/// Loading follows the limit in force, as Redis's loader does: an intset over a lowered
/// `set-max-intset-entries` loads as a hashtable, and a hashtable of few integers written
/// under a low limit loads as an intset once the limit is raised again.
#[test]
fn loads_shape_sets_by_the_intset_limit_in_force() {
    let mut p = Both::start();
    sadd_all(&mut p, "six", (1..=6).map(|i| i.to_string()));
    assert_eq!(enc(&mut p, "six"), b("intset"));
    same(&mut p, "CONFIG SET set-max-intset-entries 4");
    same(&mut p, "DEBUG RELOAD");
    assert_eq!(enc(&mut p, "six"), b("hashtable"));
    sadd_all(&mut p, "five", (10..15).map(|i| i.to_string()));
    assert_eq!(enc(&mut p, "five"), b("hashtable"));
    same(&mut p, "CONFIG SET set-max-intset-entries 512");
    same(&mut p, "DEBUG RELOAD");
    for k in ["six", "five"] {
        assert_eq!(enc(&mut p, k), b("intset"), "{k}");
        same(&mut p, &format!("SMEMBERS {k}"));
    }
    // RESTORE reads by the same rule.
    same(&mut p, "CONFIG SET set-max-intset-entries 3");
    let R::Bulk(payload) = p.b.cmd("DUMP six") else {
        panic!("DUMP six")
    };
    p.same(&[b"RESTORE", b"six:copy", b"0", &payload]);
    assert_eq!(enc(&mut p, "six:copy"), b("hashtable"));
}
