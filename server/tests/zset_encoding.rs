//! Sorted-set encodings side by side with Redis 7.0.15: the compact (listpack) and
//! big (skiplist) shapes, the conversions between them (by count, by member
//! length, by CONFIG SET of the thresholds, for every write command at the
//! boundary, for results built whole), persistence of both shapes (DEBUG RELOAD,
//! DUMP/RESTORE in both directions) and seeded random reads and writes on both.
mod common;
use common::*;

impl Both {
    fn same(&mut self, line: &str) -> R {
        let ra = self.a.cmd(line);
        let rb = self.b.cmd(line);
        if let (R::Arr(x), R::Arr(y)) = (&ra, &rb) {
            let at = x.iter().zip(y).position(|(p, q)| p != q);
            assert!(
                at.is_none() && x.len() == y.len(),
                "reply to {line:?} differs from Redis 7.0.15 at element {at:?} (lengths {} and {}): {:?} vs {:?}",
                x.len(),
                y.len(),
                at.and_then(|i| x.get(i.saturating_sub(2)..i + 2)),
                at.and_then(|i| y.get(i.saturating_sub(2)..i + 2)),
            );
        }
        assert_eq!(ra, rb, "reply to {line:?} differs from Redis 7.0.15");
        ra
    }

    fn same_args(&mut self, args: &[&str]) -> R {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let ra = self.a.cmd_args(&v);
        let rb = self.b.cmd_args(&v);
        assert_eq!(ra, rb, "reply to {args:?} differs from Redis 7.0.15");
        ra
    }

    /// Encoding and full contents of `key` agree.
    fn same_state(&mut self, key: &str) {
        self.same(&format!("OBJECT ENCODING {key}"));
        self.same(&format!("ZRANGE {key} 0 -1 WITHSCORES"));
        self.same(&format!("ZCARD {key}"));
    }

    fn encoding(&mut self, key: &str) -> R {
        self.same(&format!("OBJECT ENCODING {key}"))
    }
}

fn listpack() -> R {
    R::bulk("listpack")
}

fn skiplist() -> R {
    R::bulk("skiplist")
}

/// A small deterministic generator (xorshift64) for the seeded sequences.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Scores of every width the compact shape stores, and the infinities.
    fn score(&mut self) -> String {
        match self.below(9) {
            0 => "inf".into(),
            1 => "-inf".into(),
            2 => format!("{}.25", self.below(40) as i64 - 20),
            3 => format!("{}", self.below(70_000) as i64 - 35_000),
            4 => format!("{}", self.below(6_000_000_000) as i64 - 3_000_000_000),
            5 => "0".into(),
            6 => "-0".into(),
            _ => format!("{}", self.below(10) as i64 - 5),
        }
    }
}

#[test]
fn grows_past_the_entry_limit_one_member_at_a_time_like_redis() {
    let mut p = Both::start();
    for i in 0..130 {
        p.same(&format!("ZADD z {} m{i:03}", i % 7));
        let want = if i < 128 { listpack() } else { skiplist() };
        assert_eq!(p.encoding("z"), want, "after {} members", i + 1);
    }
    p.same_state("z");
    // Shrinking never converts back.
    p.same("ZREMRANGEBYRANK z 0 120");
    assert_eq!(p.encoding("z"), skiplist());
    p.same_state("z");
    p.same("ZPOPMIN z 100");
    p.same("EXISTS z");
}

#[test]
fn member_length_limit_is_inclusive_and_updates_do_not_convert() {
    let mut p = Both::start();
    let m64 = "a".repeat(64);
    let m65 = "b".repeat(65);
    p.same_args(&["ZADD", "z", "1", &m64, "2", "x"]);
    assert_eq!(p.encoding("z"), listpack());
    p.same_args(&["ZADD", "z", "3", &m65]);
    assert_eq!(p.encoding("z"), skiplist());
    p.same_args(&["ZREM", "z", &m65]);
    assert_eq!(p.encoding("z"), skiplist());
    // A new key whose first member is too long starts big.
    p.same_args(&["ZADD", "y", "1", &m65, "2", "a"]);
    p.same_state("y");
    // 127 members then a multi-member ZADD crossing 128 in one command.
    let mut args: Vec<String> = vec!["ZADD".into(), "w".into()];
    for i in 0..127 {
        args.push(i.to_string());
        args.push(format!("w{i}"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    p.same_args(&refs);
    assert_eq!(p.encoding("w"), listpack());
    p.same("ZADD w 1 w1 2 w2 3 w500");
    assert_eq!(p.encoding("w"), listpack());
    p.same("ZADD w 1 w501 2 w502");
    p.same_state("w");
    // Lowering the limits: an update in place does not convert, adding does.
    p.same("CONFIG SET zset-max-listpack-entries 2");
    p.same("ZADD v 1 a 2 b");
    p.same("CONFIG SET zset-max-listpack-entries 1");
    p.same_state("v");
    p.same("ZADD v 5 a");
    p.same("ZINCRBY v 1 b");
    assert_eq!(p.encoding("v"), listpack());
    p.same("ZADD v 9 c");
    p.same_state("v");
}

/// Every write that can add a member, at the boundary (3 members, limit 3).
#[test]
fn every_adding_write_converts_at_the_boundary() {
    let mut p = Both::start();
    p.same("CONFIG SET zset-max-ziplist-entries 3");
    p.same("CONFIG SET zset-max-ziplist-value 10");
    p.same("CONFIG GET zset-max-listpack-entries");
    p.same("CONFIG GET zset-max-listpack-value");
    let writes = [
        "ZADD k 9 d",
        "ZADD k NX 9 d",
        "ZADD k XX 9 d",
        "ZADD k XX CH 9 a",
        "ZADD k GT 9 d",
        "ZADD k LT CH 0 d",
        "ZADD k INCR 1 d",
        "ZADD k INCR 1 a",
        "ZINCRBY k 2 d",
        "ZINCRBY k 2 b",
        "ZADD k 1 abcdefghijk",
        "ZADD k 1 abcdefghij",
        "GEOADD k 13.361389 38.115556 d",
        "GEOADD k XX 13.361389 38.115556 a",
    ];
    for w in writes {
        p.same("DEL k");
        p.same("ZADD k 1 a 2 b 3 c");
        assert_eq!(p.encoding("k"), listpack());
        p.same(w);
        p.same_state("k");
    }
    // Results built whole are shaped by their contents.
    p.same("DEL k");
    p.same("ZADD s1 1 a 2 b");
    p.same("ZADD s2 1 c 2 d 3 e");
    p.same("ZADD s3 1 abcdefghijkl");
    for cmd in [
        "ZUNIONSTORE d 2 s1 s2",
        "ZUNIONSTORE d 1 s1",
        "ZUNIONSTORE d 2 s1 s3",
        "ZINTERSTORE d 2 s1 s2",
        "ZINTERSTORE d 2 s1 s1",
        "ZDIFFSTORE d 1 s2",
        "ZDIFFSTORE d 2 s2 s1",
        "ZRANGESTORE d s2 0 -1",
        "ZRANGESTORE d s2 0 1",
        "ZRANGESTORE d s3 0 -1",
    ] {
        p.same(cmd);
        p.same("EXISTS d");
        if p.a.cmd("EXISTS d") == R::Int(1) {
            p.same_state("d");
        }
    }
    p.same("GEOADD g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania");
    p.same("GEOADD g 13.5 38.0 p3 13.6 38.1 p4");
    assert_eq!(p.encoding("g"), skiplist());
    p.same("GEOSEARCHSTORE d g FROMLONLAT 15 37 BYRADIUS 200 km ASC");
    p.same_state("d");
    p.same("GEOSEARCHSTORE d g FROMLONLAT 15 37 BYRADIUS 500 km ASC");
    p.same_state("d");
    p.same("GEORADIUS g 15 37 200 km STOREDIST d");
    p.same_state("d");
}

#[test]
fn both_shapes_survive_reload_and_restore_in_both_directions() {
    let mut p = Both::start();
    p.same("ZADD small 1 a 2.5 b -3 c inf d -inf e 3000000000 f");
    for i in 0..200 {
        p.same(&format!("ZADD big {}.5 member:{i}", i % 13));
    }
    // A big set shrunk back under the limits: Redis writes it as a skiplist and
    // loading converts it back to a listpack.
    p.same("ZADD shrunk 1 a 2 b");
    p.same(&format!("ZADD shrunk 3 {}", "x".repeat(80)));
    p.same(&format!("ZREM shrunk {}", "x".repeat(80)));
    for k in ["small", "big", "shrunk"] {
        p.same_state(k);
    }
    assert_eq!(p.a.cmd("DEBUG RELOAD"), R::ok());
    assert_eq!(p.b.cmd("DEBUG RELOAD"), R::ok());
    for k in ["small", "big", "shrunk"] {
        p.same_state(k);
    }
    for k in ["small", "big"] {
        // Each server's payload restored into both servers.
        let dumps = [p.a.cmd(&format!("DUMP {k}")), p.b.cmd(&format!("DUMP {k}"))];
        for (n, d) in dumps.iter().enumerate() {
            let R::Bulk(payload) = d else {
                panic!("DUMP {k}: {d:?}")
            };
            let dst = format!("{k}:copy{n}");
            let args: [&[u8]; 4] = [b"RESTORE", dst.as_bytes(), b"0", payload];
            assert_eq!(p.a.cmd_args(&args), R::ok());
            assert_eq!(p.b.cmd_args(&args), R::ok());
            p.same_state(&dst);
        }
    }
    // A listpack holding a member longer than the limit (written while the limit
    // was higher) stays a listpack when loaded: only the count is checked.
    p.same("CONFIG SET zset-max-listpack-value 100");
    p.same(&format!("ZADD long 1 {}", "y".repeat(80)));
    p.same_state("long");
    let R::Bulk(payload) = p.b.cmd("DUMP long") else {
        panic!("DUMP long")
    };
    p.same("CONFIG SET zset-max-listpack-value 64");
    let args: [&[u8]; 4] = [b"RESTORE", b"long2", b"0", &payload];
    assert_eq!(p.a.cmd_args(&args), R::ok());
    assert_eq!(p.b.cmd_args(&args), R::ok());
    p.same_state("long2");
    p.same("DEBUG DIGEST-VALUE small big shrunk long2");
}

/// ZSCAN of a listpack returns everything at once with cursor 0, in order; of a
/// skiplist, the same pairs over cursor calls.
#[test]
fn zscan_replies_match_on_both_shapes() {
    let mut p = Both::start();
    p.same("ZADD small 3 c 1 a 2 b 2 bb");
    p.same("ZSCAN small 0");
    p.same("ZSCAN small 0 COUNT 1");
    p.same("ZSCAN small 0 MATCH b*");
    for i in 0..300 {
        p.same(&format!("ZADD big {i} m{i}"));
    }
    let (x, y) = (scan_all(&mut p.a), scan_all(&mut p.b));
    assert_eq!(x.len(), 300);
    assert_eq!(x, y);
}

fn scan_all(c: &mut Conn) -> std::collections::BTreeSet<String> {
    let mut cursor = "0".to_string();
    let mut all = std::collections::BTreeSet::new();
    for _ in 0..1000 {
        let R::Arr(parts) = c.cmd(&format!("ZSCAN big {cursor} COUNT 50")) else {
            panic!("ZSCAN reply")
        };
        let [R::Bulk(next), R::Arr(items)] = &parts[..] else {
            panic!("ZSCAN parts {parts:?}")
        };
        for pair in items.chunks(2) {
            all.insert(format!("{:?}", pair));
        }
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            return all;
        }
    }
    panic!("ZSCAN did not finish");
}

/// Read commands that take ranks, scores and lex bounds, on a small and a big set
/// with the same members, against Redis.
#[test]
fn seeded_random_reads_match_on_both_shapes() {
    let mut p = Both::start();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for key in ["small", "big", "lex"] {
        let n = if key == "big" { 300 } else { 60 };
        for i in 0..n {
            let s = if key == "lex" {
                "0".into()
            } else {
                rng.score()
            };
            p.same(&format!("ZADD {key} {s} m{:03}", (i * 37) % 400));
        }
    }
    for i in 0..200 {
        p.same(&format!("ZADD lexbig 0 m{:03}", (i * 37) % 400));
    }
    assert_eq!(p.encoding("lexbig"), skiplist());
    assert_eq!(p.encoding("small"), listpack());
    assert_eq!(p.encoding("big"), skiplist());
    let bounds = [
        "-inf", "+inf", "-3", "(-3", "0", "(0", "5", "(2.25", "40000",
    ];
    let lex = ["-", "+", "[m1", "(m1", "[m2", "(m250", "[a", "[z"];
    for round in 0..400 {
        let key = ["small", "big", "lex", "lexbig"][round % 4];
        // Lex ranges are specified for sets whose scores are all equal only.
        let lkey = ["lex", "lexbig"][round % 2];
        let (i, j) = (rng.below(140) as i64 - 70, rng.below(140) as i64 - 70);
        let (a, b) = (bounds[rng.below(9) as usize], bounds[rng.below(9) as usize]);
        let (x, y) = (lex[rng.below(8) as usize], lex[rng.below(8) as usize]);
        let m = format!("m{:03}", rng.below(420));
        let (off, cnt) = (rng.below(5), rng.below(8) as i64 - 2);
        let line = match rng.below(14) {
            0 => format!("ZRANGE {key} {i} {j} WITHSCORES"),
            1 => format!("ZRANGE {key} {i} {j} REV"),
            2 => format!("ZRANGE {key} {a} {b} BYSCORE LIMIT {off} {cnt} WITHSCORES"),
            3 => format!("ZRANGE {key} {b} {a} BYSCORE REV WITHSCORES"),
            4 => format!("ZRANGE {lkey} {x} {y} BYLEX LIMIT {off} {cnt}"),
            5 => format!("ZRANGE {lkey} {y} {x} BYLEX REV"),
            6 => format!("ZRANK {key} {m}"),
            7 => format!("ZREVRANK {key} {m}"),
            8 => format!("ZMSCORE {key} {m} m001 nope"),
            9 => format!("ZCOUNT {key} {a} {b}"),
            10 => format!("ZLEXCOUNT {lkey} {x} {y}"),
            11 => format!("ZREVRANGEBYSCORE {key} {a} {b} WITHSCORES LIMIT {off} {cnt}"),
            12 => format!("ZINTER 2 {key} big WITHSCORES AGGREGATE MAX"),
            _ => format!("ZUNION 2 {key} small WEIGHTS 2 -1 WITHSCORES"),
        };
        p.same(&line);
    }
    // ZRANDMEMBER: counts at least the size return the whole set (in any order);
    // other counts return members of the set.
    for key in ["small", "big"] {
        let all = bulks(p.a.cmd(&format!("ZRANGE {key} 0 -1")));
        for count in ["1000", "-5", "3", "0"] {
            let ours = bulks(p.a.cmd(&format!("ZRANDMEMBER {key} {count}")));
            let theirs = bulks(p.b.cmd(&format!("ZRANDMEMBER {key} {count}")));
            assert!(ours.is_subset(&all), "{key} {count}");
            if count == "1000" {
                assert_eq!(ours, theirs);
            }
        }
        let R::Arr(v) = p.a.cmd(&format!("ZRANDMEMBER {key} -7 WITHSCORES")) else {
            panic!("ZRANDMEMBER WITHSCORES")
        };
        assert_eq!(v.len(), 14);
    }
}

/// Seeded random writes (adds, increments, removals, pops, range removals) on a
/// set that crosses the limits, with contents and encoding compared after each.
#[test]
fn seeded_random_writes_keep_contents_and_encoding_equal() {
    let mut p = Both::start();
    p.same("CONFIG SET zset-max-listpack-entries 16");
    p.same("CONFIG SET zset-max-listpack-value 12");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..1200 {
        let key = format!("k{}", round / 300);
        let m = if rng.below(40) == 0 {
            format!("long-member-{}", rng.below(30))
        } else {
            format!("m{}", rng.below(30))
        };
        let s = rng.score();
        let (a, b) = (rng.below(10) as i64 - 3, rng.below(10) as i64 - 3);
        let line = match rng.below(12) {
            0..=3 => format!("ZADD {key} {s} {m}"),
            4 => format!("ZADD {key} {s} {m} 1 m1 2 m2"),
            5 => format!("ZINCRBY {key} 1.5 {m}"),
            6 => format!("ZREM {key} {m} m3"),
            7 => format!("ZPOPMIN {key} {}", rng.below(3)),
            8 => format!("ZPOPMAX {key}"),
            9 => format!("ZREMRANGEBYSCORE {key} {a} {b}"),
            10 => format!("ZREMRANGEBYRANK {key} {a} {b}"),
            // Lex ranges only on a set whose scores are all equal (below).
            _ => format!("ZREMRANGEBYRANK {key} -2 -1"),
        };
        p.same(&line);
        p.same(&format!("EXISTS {key}"));
        if p.a.cmd(&format!("EXISTS {key}")) == R::Int(1) {
            p.same_state(&key);
        }
    }
}

/// Adds and lex-range removals on a set whose scores are all equal, across the
/// entry limit, with ZRANGEBYLEX and ZLEXCOUNT compared after each step.
#[test]
fn lex_writes_and_reads_on_equal_scores_match_across_the_limit() {
    let mut p = Both::start();
    p.same("CONFIG SET zset-max-listpack-entries 20");
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let lex = ["-", "+", "[m1", "(m1", "[m3", "(m35", "[m6", "(m9"];
    for _ in 0..600 {
        let (x, y) = (lex[rng.below(8) as usize], lex[rng.below(8) as usize]);
        let line = match rng.below(6) {
            0 => format!("ZREMRANGEBYLEX l {x} {y}"),
            1 => format!("ZRANGEBYLEX l {x} {y} LIMIT 1 3"),
            2 => format!("ZREVRANGEBYLEX l {y} {x}"),
            3 => format!("ZLEXCOUNT l {x} {y}"),
            _ => format!("ZADD l 0 m{} 0 m{}", rng.below(60), rng.below(60)),
        };
        p.same(&line);
        p.same("EXISTS l");
        if p.a.cmd("EXISTS l") == R::Int(1) {
            p.same_state("l");
        }
    }
}

/// MEMORY USAGE estimates Tandem's own footprint: a 2-member set is a small
/// fraction of the same set forced into the big shape.
#[test]
fn memory_usage_reflects_the_compact_shape() {
    let mut p = Both::start();
    p.same("ZADD z 1 ma:0000001 2 mb:0000001");
    p.same("CONFIG SET zset-max-listpack-entries 0");
    p.same("ZADD zbig 1 ma:0000001 2 mb:0000001");
    assert_eq!(p.encoding("zbig"), skiplist());
    let small = match p.a.cmd("MEMORY USAGE z") {
        R::Int(n) => n,
        r => panic!("{r:?}"),
    };
    let big = match p.a.cmd("MEMORY USAGE zbig") {
        R::Int(n) => n,
        r => panic!("{r:?}"),
    };
    assert!(small < 120, "small zset usage {small}");
    assert!(big > small * 2, "big {big} vs small {small}");
}

/// Loading follows the limits in force, as Redis's loader does: a listpack over a lowered
/// `zset-max-listpack-entries` loads as a skiplist, and a small skiplist loads as a listpack
/// under the limits in force.
#[test]
fn loads_shape_sorted_sets_by_the_limits_in_force() {
    let mut p = Both::start();
    p.same("ZADD six 1 a 2 b 3 c 4 d 5 e 6 f");
    assert_eq!(p.encoding("six"), listpack());
    p.same("CONFIG SET zset-max-listpack-entries 4");
    assert_eq!(p.a.cmd("DEBUG RELOAD"), R::ok());
    assert_eq!(p.b.cmd("DEBUG RELOAD"), R::ok());
    p.same_state("six");
    assert_eq!(p.encoding("six"), skiplist());
    p.same("ZADD three 1 x 2 y 3 z");
    p.same("CONFIG SET zset-max-listpack-entries 2");
    p.same("ZADD skip 1 x 2 y 3 z");
    assert_eq!(p.encoding("skip"), skiplist());
    p.same("CONFIG SET zset-max-listpack-entries 128");
    assert_eq!(p.a.cmd("DEBUG RELOAD"), R::ok());
    assert_eq!(p.b.cmd("DEBUG RELOAD"), R::ok());
    for k in ["six", "three", "skip"] {
        p.same_state(k);
        assert_eq!(p.encoding(k), listpack(), "{k}");
    }
}

/// Re-adding members with the scores they have (the common ZADD of a benchmark or a
/// leaderboard refresh) leaves a big sorted set as Redis leaves it: order, ranks,
/// replies (CH, INCR, XX/GT/LT) and a `-0` score kept as given.
#[test]
fn re_adding_members_with_their_scores_changes_nothing_in_a_big_set() {
    let mut p = Both::start();
    let mut args: Vec<String> = vec!["ZADD".into(), "z".into()];
    for i in 0..300 {
        args.push((i % 7).to_string());
        args.push(format!("m{i}"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    p.same_args(&refs);
    assert_eq!(p.encoding("z"), skiplist());
    p.same_args(&refs);
    p.same("ZADD z CH 3 m3 0 m7 5 m12");
    p.same("ZADD z CH 4 m3");
    p.same("ZADD z XX CH 4 m3 6 m200");
    p.same("ZADD z GT CH 4 m3");
    p.same("ZADD z LT CH 4 m3");
    p.same("ZADD z INCR 0 m3");
    p.same("ZINCRBY z 0 m4");
    p.same("ZADD z -0 neg");
    p.same("ZADD z 0 neg");
    p.same("ZSCORE z neg");
    p.same("ZADD z 0 neg");
    p.same("ZRANK z neg");
    p.same("ZRANGE z 0 20 WITHSCORES");
    p.same_state("z");
}
