//! Hash encodings against the real redis-server 7.0.15, side by side: the compact
//! (listpack) shape and its one-way conversion to a hash table, driven through both
//! thresholds (field count and element length), CONFIG SET of the thresholds (and
//! their old ziplist names), every hash write command at the boundary, DEBUG
//! RELOAD, DUMP/RESTORE in both directions, HSCAN and HRANDFIELD. While a hash is
//! compact its order is Redis's listpack order, so HGETALL, HKEYS, HVALS, HSCAN and
//! a whole-hash HRANDFIELD are compared exactly; a hash table's order is not
//! Redis's, so its contents are compared as sets.

mod common;

use common::{Both, Conn, R};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn shown(args: &[&[u8]]) -> Vec<String> {
    args.iter()
        .map(|x| String::from_utf8_lossy(x).chars().take(40).collect())
        .collect()
}

impl Both {
    /// Sends `args` to both; the replies must be identical.
    fn same(&mut self, args: &[&[u8]]) -> R {
        let (ra, rb) = (self.a.cmd_args(args), self.b.cmd_args(args));
        assert_eq!(
            ra,
            rb,
            "reply to {:?} differs from Redis 7.0.15",
            shown(args)
        );
        ra
    }

    fn same_line(&mut self, line: &str) -> R {
        let parts: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.same(&parts)
    }

    /// Sends `args` to both; the replies must hold the same elements (order aside).
    fn same_elements(&mut self, args: &[&[u8]]) {
        let (ra, rb) = (self.a.cmd_args(args), self.b.cmd_args(args));
        assert_eq!(
            sorted(ra),
            sorted(rb),
            "reply to {:?} differs from Redis 7.0.15 (as a set)",
            shown(args)
        );
    }

    /// The hash at `key` is the same on both: encoding, length and contents (in
    /// order while compact), by every read command.
    fn check(&mut self, key: &str) {
        self.check_in(key, true)
    }

    /// `check`, with `ordered` false for a hash that was a table before a reload:
    /// its compact order then comes from the table's order, which is not Redis's.
    fn check_in(&mut self, key: &str, ordered: bool) {
        let k = key.as_bytes();
        let enc = self.same(&[b"OBJECT", b"ENCODING", k]);
        self.same(&[b"HLEN", k]);
        let reads: [&[&[u8]]; 5] = [
            &[b"HGETALL", k],
            &[b"HKEYS", k],
            &[b"HVALS", k],
            &[b"HRANDFIELD", k, b"100000", b"WITHVALUES"],
            &[b"HSCAN", k, b"0", b"COUNT", b"2"],
        ];
        if ordered && enc == R::bulk("listpack") {
            for r in reads {
                self.same(r);
            }
            self.same(&[b"HSCAN", k, b"0", b"MATCH", b"*1*"]);
        } else {
            for r in &reads[..4] {
                self.same_elements(r);
            }
        }
        let field = |c: &mut Conn| match c.cmd_args(&[b"DEBUG", b"OBJECT", k]) {
            R::Simple(s) => s
                .split(' ')
                .find(|w| w.starts_with("encoding:"))
                .map(str::to_owned),
            other => panic!("DEBUG OBJECT {key}: {other:?}"),
        };
        if enc != R::Nil {
            assert_eq!(field(&mut self.a), field(&mut self.b), "DEBUG OBJECT {key}");
        }
    }
}

/// A reply's leaf strings, sorted (pairs of a flat HGETALL are kept apart, which
/// is enough to compare contents: fields are unique).
fn sorted(r: R) -> Vec<String> {
    fn leaves(r: R, out: &mut Vec<String>) {
        match r {
            R::Arr(v) | R::Set(v) => v.into_iter().for_each(|x| leaves(x, out)),
            R::Map(v) => v.into_iter().for_each(|(a, b)| {
                leaves(a, out);
                leaves(b, out);
            }),
            other => out.push(format!("{other:?}")),
        }
    }
    let mut out = Vec::new();
    leaves(r, &mut out);
    out.sort();
    out
}

#[test]
fn growing_by_count_converts_past_the_entries_limit_and_never_back() {
    let mut p = Both::start();
    for i in 0..514 {
        let (f, v) = (format!("f{i}"), format!("{}", i * 7));
        p.same(&[b"HSET", b"h", f.as_bytes(), v.as_bytes()]);
        if !(5..505).contains(&i) || i % 50 == 0 {
            p.check("h");
        }
    }
    assert_eq!(p.same_line("OBJECT ENCODING h"), R::bulk("hashtable"));
    // Shrinking keeps the hash table, as in Redis.
    for i in 0..511 {
        p.same(&[b"HDEL", b"h", format!("f{i}").as_bytes()]);
    }
    p.check("h");
    assert_eq!(p.same_line("OBJECT ENCODING h"), R::bulk("hashtable"));
    // Emptied, the key goes; a new one starts compact.
    p.same_line("HDEL h f511 f512 f513");
    p.same_line("EXISTS h");
    p.same_line("HSET h a 1");
    p.check("h");
}

#[test]
fn growing_by_length_converts_past_the_value_limit() {
    let mut p = Both::start();
    for n in 60..70 {
        let v = "v".repeat(n);
        p.same(&[b"HSET", b"val", b"f", v.as_bytes()]);
        p.check("val");
        let f = "f".repeat(n);
        p.same(&[b"HSET", format!("fld{n}").as_bytes(), f.as_bytes(), b"1"]);
        p.check(&format!("fld{n}"));
    }
    // Back to short values: still a hash table.
    p.same_line("HSET val f short");
    p.check("val");
}

#[test]
fn config_set_thresholds_apply_to_later_writes_of_every_command() {
    let mut p = Both::start();
    p.same_line("CONFIG SET hash-max-listpack-entries 4");
    p.same_line("CONFIG SET hash-max-ziplist-value 8");
    p.same_elements(&[b"CONFIG", b"GET", b"hash-max-*"]);
    let cases: &[&[&str]] = &[
        // HSET: count limit (an update counts too), value limit, field limit.
        &["HSET k a 1 b 2 c 3 d 4", "HSET k a 9", "HSET k e 5"],
        &["HSET k a 1 b 2 c 3 d 4 e 5"],
        &["HSET k a 1", "HSET k b 12345678", "HSET k c 123456789"],
        &["HSET k a 1", "HSET k bbbbbbbbb 1"],
        &["HMSET k a 1 b 2 c 3", "HMSET k d 4", "HMSET k x 123456789"],
        // HSETNX of an existing field writes nothing and converts nothing.
        &["HSET k a 1", "HSETNX k a 123456789"],
        &["HSET k a 1 b 2 c 3 d 4", "HSETNX k a 2", "HSETNX k e 5"],
        &["HSETNX k aaaaaaaaa 1"],
        // HINCRBY / HINCRBYFLOAT: long field, result longer than the limit, count.
        &["HSET k a 1", "HINCRBY k a 9999999", "HINCRBY k a 1"],
        &["HINCRBY k ffffffffff 1"],
        &["HSET k a 1 b 2 c 3 d 4", "HINCRBY k a 1", "HINCRBY k e 1"],
        &[
            "HSET k a 1",
            "HINCRBYFLOAT k a 0.5",
            "HINCRBYFLOAT k a 1000000.25",
        ],
        &["HINCRBYFLOAT k ffffffffff 1.5"],
        // HDEL never converts back.
        &["HSET k a 1 b 2 c 3 d 4 e 5", "HDEL k a b c d"],
    ];
    for case in cases {
        p.same_line("DEL k");
        for line in *case {
            p.same_line(line);
            p.check("k");
        }
    }
    // Raising the limits later does not convert existing hash tables back.
    p.same_line("CONFIG SET hash-max-listpack-entries 512");
    p.same_line("CONFIG SET hash-max-listpack-value 64");
    p.same_line("HSET k z 1");
    p.check("k");
}

#[test]
fn debug_reload_and_restore_give_both_shapes_redis_load_rules() {
    let mut p = Both::start();
    p.same_line("HSET small a 1 b -20 c 300000 d x");
    let mut big: Vec<Vec<u8>> = vec![b"HSET".to_vec(), b"shrunk".to_vec()];
    for i in 0..600 {
        big.push(format!("f{i}").into_bytes());
        big.push(format!("v{i}").into_bytes());
    }
    let big_args: Vec<&[u8]> = big.iter().map(|a| &a[..]).collect();
    p.same(&big_args);
    for i in 3..600 {
        p.same(&[b"HDEL", b"shrunk", format!("f{i}").as_bytes()]);
    }
    p.same_line(&format!("HSET long f {}", "L".repeat(100)));
    p.same(&[b"HSET", b"bin", b"\x00\xff", b"\r\n"]);
    let keys = ["small", "shrunk", "long", "bin"];
    for k in keys {
        p.check(k);
    }
    // A shrunk hash table is saved as a table and loads compact again.
    p.same_line("DEBUG RELOAD");
    for k in keys {
        p.check_in(k, k != "shrunk");
    }
    assert_eq!(p.same_line("OBJECT ENCODING shrunk"), R::bulk("listpack"));
    // A compact body over the count limit loads as a table; one whose values are
    // over the (lowered) value limit stays compact: only the count is checked.
    p.same_line("CONFIG SET hash-max-listpack-value 1");
    p.same_line("DEBUG RELOAD");
    for k in keys {
        p.check_in(k, k != "shrunk");
    }
    p.same_line("CONFIG SET hash-max-listpack-value 64");
    p.same_line("CONFIG SET hash-max-listpack-entries 3");
    p.same_line("DEBUG RELOAD");
    for k in keys {
        p.check_in(k, k != "shrunk");
    }
    p.same_line("CONFIG SET hash-max-listpack-entries 512");

    // DUMP/RESTORE across servers, both shapes, both directions.
    p.same_line("HSET c1 a 1 b 2");
    p.same_line(&format!("HSET t1 a {}", "x".repeat(70)));
    for k in ["c1", "t1"] {
        let dump = |c: &mut Conn| match c.cmd_args(&[b"DUMP", k.as_bytes()]) {
            R::Bulk(b) => b,
            other => panic!("DUMP {k}: {other:?}"),
        };
        let (ours, theirs) = (dump(&mut p.a), dump(&mut p.b));
        if k == "c1" {
            // A compact hash serialises exactly like Redis's listpack.
            assert_eq!(ours, theirs, "DUMP of a compact hash");
        }
        for (name, payload) in [("from_ours", &ours), ("from_theirs", &theirs)] {
            let key = format!("{k}_{name}");
            p.same(&[b"RESTORE", key.as_bytes(), b"0", payload]);
            p.check(&key);
        }
    }
}

#[test]
fn hscan_and_hrandfield_of_compact_hashes_match_exactly() {
    let mut p = Both::start();
    let mut args: Vec<Vec<u8>> = vec![b"HSET".to_vec(), b"h".to_vec()];
    for i in 0..300 {
        args.push(format!("field:{i}").into_bytes());
        args.push(format!("{}", 1000 - i).into_bytes());
    }
    let a: Vec<&[u8]> = args.iter().map(|x| &x[..]).collect();
    p.same(&a);
    // A compact hash answers whole, cursor 0, COUNT ignored, MATCH applied.
    p.same_line("HSCAN h 0");
    p.same_line("HSCAN h 0 COUNT 1");
    p.same_line("HSCAN h 77 COUNT 5 MATCH field:1*");
    p.same_line("HSCAN h 0 MATCH nothing*");
    // Whole-hash picks come in the hash's order; one-field picks are forced.
    p.same_line("HRANDFIELD h 300");
    p.same_line("HRANDFIELD h 1000 WITHVALUES");
    p.same_line("HSET one f v");
    p.same_line("HRANDFIELD one");
    p.same_line("HRANDFIELD one -5 WITHVALUES");
    p.same_line("HRANDFIELD one 0");
    p.same_line("HRANDFIELD missing -3");
    // Counted picks of a bigger hash: sizes agree and every pick is a member.
    for count in ["5", "-5", "299", "-600"] {
        let ra = p.a.cmd_args(&[b"HRANDFIELD", b"h", count.as_bytes()]);
        let rb = p.b.cmd_args(&[b"HRANDFIELD", b"h", count.as_bytes()]);
        let (R::Arr(x), R::Arr(y)) = (ra, rb) else {
            panic!("HRANDFIELD h {count}: not arrays");
        };
        assert_eq!(x.len(), y.len(), "HRANDFIELD h {count}");
        for f in x {
            let R::Bulk(f) = f else { panic!("{f:?}") };
            assert_eq!(p.a.cmd_args(&[b"HEXISTS", b"h", &f]), R::Int(1));
        }
    }
}

/// A seeded random sequence of every hash write on a few keys with small limits,
/// so conversions happen all the time: replies compared after each command, the
/// whole state every few commands, with DEBUG RELOADs in between.
#[test]
fn random_writes_across_the_thresholds_match_redis() {
    let mut p = Both::start();
    p.same_line("CONFIG SET hash-max-listpack-entries 6");
    p.same_line("CONFIG SET hash-max-listpack-value 10");
    let mut rng = StdRng::seed_from_u64(0x4a54_2101);
    let keys = ["r0", "r1", "r2", "r3"];
    for step in 0..1500 {
        let key = keys[rng.gen_range(0..keys.len())];
        let field = "f".repeat(rng.gen_range(1..13));
        let field = format!("{field}{}", rng.gen_range(0..4));
        let value = "v".repeat(rng.gen_range(0..14));
        let n = rng.gen_range(-50..50).to_string();
        let line: Vec<String> = match rng.gen_range(0..9) {
            0 | 1 => vec!["HSET".into(), key.into(), field, value],
            2 => vec!["HSETNX".into(), key.into(), field, value],
            3 => vec!["HMSET".into(), key.into(), field, value, "g".into(), n],
            4 => vec!["HINCRBY".into(), key.into(), field, n],
            5 => vec!["HINCRBYFLOAT".into(), key.into(), field, format!("{n}.25")],
            6 | 7 => vec!["HDEL".into(), key.into(), field, "g".into()],
            _ => vec!["HGET".into(), key.into(), field],
        };
        let args: Vec<&[u8]> = line.iter().map(|s| s.as_bytes()).collect();
        p.same(&args);
        if step % 25 == 0 {
            for k in keys {
                p.check(k);
            }
        }
        if step % 500 == 499 {
            let tables: Vec<&str> = keys
                .into_iter()
                .filter(|k| p.same_line(&format!("OBJECT ENCODING {k}")) == R::bulk("hashtable"))
                .collect();
            p.same_line("DEBUG RELOAD");
            for k in keys {
                p.check_in(k, !tables.contains(&k));
            }
            // A table reloaded compact keeps the table's order, not Redis's: start
            // those keys afresh so later exact comparisons stay meaningful.
            for k in tables {
                p.same_line(&format!("DEL {k}"));
            }
        }
    }
}

#[test]
fn memory_usage_of_a_small_hash_counts_the_compact_shape() {
    let mut p = Both::start();
    p.same_line("HSET h field:a va:0000001 field:b vb:0000001");
    let usage = |c: &mut Conn, k: &str| match c.cmd_args(&[b"MEMORY", b"USAGE", k.as_bytes()]) {
        R::Int(n) => n,
        other => panic!("MEMORY USAGE {k}: {other:?}"),
    };
    let compact = usage(&mut p.a, "h");
    // Slot and index (40 + a few), the 32-byte box and a 48-byte block.
    assert!((100..=160).contains(&compact), "compact: {compact}");
    p.same_line(&format!("HSET t field:a {}", "x".repeat(65)));
    p.same_line("HSET t field:a va:0000001 field:b vb:0000001");
    assert_eq!(p.same_line("OBJECT ENCODING t"), R::bulk("hashtable"));
    let table = usage(&mut p.a, "t");
    assert!(table > compact + 100, "table {table} vs compact {compact}");
}
