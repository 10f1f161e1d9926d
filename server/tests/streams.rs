//! Streams without consumer groups (XADD, XRANGE, XREVRANGE, XLEN, XDEL, XTRIM,
//! XSETID, XREAD): black-box tests, and the same commands side by side with Debian's
//! redis-server 7.0.15 — scripts covering every option and error text, a seeded
//! random sequence compared reply by reply and then DUMP by DUMP (the listpack node
//! layout must be Redis's own), blocking XREAD, replication in both directions and
//! RDB files in both directions.
mod common;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

impl Pair {
    /// A command given as space-separated words.
    fn line(&mut self, line: &str) -> R {
        let parts: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        self.same(&parts)
    }

    fn lines(&mut self, lines: &[&str]) {
        for l in lines {
            self.line(l);
        }
    }
}

fn words(line: &str) -> Vec<&[u8]> {
    line.split_whitespace().map(str::as_bytes).collect()
}

/// The ID a successful XADD replied with.
fn id_of(r: &R) -> String {
    match r {
        R::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not an ID: {other:?}"),
    }
}

/// `<ms>-<seq>` with both parts decimal u64.
fn is_id(s: &str) -> bool {
    let mut it = s.splitn(2, '-');
    let ms = it.next().and_then(|x| x.parse::<u64>().ok());
    let seq = it.next().and_then(|x| x.parse::<u64>().ok());
    ms.is_some() && seq.is_some()
}

/// A DUMP payload as Redis itself would write it: restored into (and dumped back
/// from) the writable Redis behind `canon`. Tandem writes RDB strings without LZF
/// compression, so its payloads are compared in this form; restoring also proves
/// Redis accepts them.
fn canonical(canon: &mut Conn, payload: R) -> R {
    let R::Bulk(p) = payload else {
        return payload;
    };
    let r = canon.cmd_args(&[b"RESTORE", b"__canon", b"0", &p, b"REPLACE"]);
    assert_eq!(r, R::ok(), "Redis refused the payload");
    let out = canon.cmd("DUMP __canon");
    canon.cmd("DEL __canon");
    out
}

impl Pair {
    /// Both sides hold the same stream at `key`: same entries, nodes, tombstones and
    /// metadata (Tandem's DUMP, restored into Redis, dumps to Redis's own bytes).
    fn same_dump(&mut self, key: &str) {
        let ours = self.a.cmd(&format!("DUMP {key}"));
        let theirs = self.b.cmd(&format!("DUMP {key}"));
        let ours = canonical(&mut self.b, ours);
        assert!(ours == theirs, "DUMP {key} differs from Redis's");
    }
}

#[test]
fn xadd_and_reads_answer_like_redis() {
    let mut p = Pair::start();
    p.lines(&[
        "XADD s 1-1 name alice age 30",
        "XADD s 1-2 name bob age 40",
        "XADD s 2 other field",
        "XADD s 3-* a 1",
        "XADD s 3-* a 2",
        "XADD s 5-* a 3",
        "XADD s 4-0 a 1",
        "XADD s 5-0 a 1",
        "XADD s 0-0 a 1",
        "XADD new 0-0 a 1",
        "EXISTS new",
        "XADD new 0-* a 1",
        "XADD new2 0-1 a 1",
        "XADD s 10 f",
        "XADD s 10 f v g",
        "XADD s",
        "XADD s *",
        "XADD s * f",
        "XADD s NOMKSTREAM",
        "XADD missing NOMKSTREAM 1-1 f v",
        "EXISTS missing",
        "XADD s NOMKSTREAM 100-1 f v",
        "XADD s 1-x f v",
        "XADD s x f v",
        "XADD s - f v",
        "XADD s + f v",
        "XADD s -1 f v",
        "XADD s 18446744073709551616-0 f v",
        "XADD s 1-18446744073709551616 f v",
        "XADD s 200-18446744073709551615 f v",
        "XADD s 200-* f v",
        "XADD s 201-* f v",
        "XADD s 007-01 f v",
        "XADD s +300-0 f v",
        "XLEN s",
        "XLEN missing",
        "XRANGE s - +",
        "XREVRANGE s + -",
        "XRANGE s 1 3",
        "XRANGE s 1-2 1-2",
        "XRANGE s (1-1 +",
        "XRANGE s - (3-1",
        "XRANGE s (1-1 (3-1",
        "XREVRANGE s (5-1 (1-1",
        "XRANGE s ( +",
        "XRANGE s (- +",
        "XRANGE s - (+",
        "XRANGE s (18446744073709551615-18446744073709551615 +",
        "XRANGE s - (0-0",
        "XRANGE s - (0",
        "XRANGE s 5 1",
        "XRANGE s - + COUNT 2",
        "XREVRANGE s + - COUNT 2",
        "XRANGE s - + COUNT 0",
        "XRANGE s - + COUNT -5",
        "XRANGE s - + COUNT 9223372036854775807",
        "XRANGE s - + COUNT 9223372036854775808",
        "XRANGE s - + COUNT x",
        "XRANGE s - + COUNT",
        "XRANGE s - + LIMIT 1",
        "XRANGE s - + COUNT 1 COUNT 2",
        "XRANGE s x +",
        "XRANGE s - x",
        "XRANGE missing - +",
        "XRANGE missing - + COUNT 0",
        "XRANGE missing x +",
        "XRANGE s 18446744073709551615 +",
        "XRANGE s 0 18446744073709551615",
        "XRANGE s",
        "XLEN s extra",
    ]);
    let long = "x".repeat(5000);
    p.same(&[
        b"XADD",
        b"big",
        b"1-1",
        b"f",
        long.as_bytes(),
        b"n",
        b"12345",
    ]);
    p.same(&[
        b"XADD",
        b"big",
        b"1-2",
        b"-17",
        b"9223372036854775807",
        b"",
        b"",
    ]);
    p.line("XRANGE big - +");
    p.line("SET str x");
    for q in [
        "XADD str 1-1 a b",
        "XRANGE str - +",
        "XREVRANGE str + -",
        "XLEN str",
        "XDEL str 1-1",
        "XTRIM str MAXLEN 1",
        "XSETID str 1-1",
        "XREAD STREAMS str 0",
    ] {
        p.line(q);
    }
}

#[test]
fn xdel_xtrim_and_xsetid_answer_like_redis() {
    let mut p = Pair::start();
    p.lines(&["CONFIG SET stream-node-max-entries 4"]);
    for i in 1..=30 {
        p.line(&format!("XADD s {i}-0 f v{i} g {}", i * 3));
    }
    p.lines(&[
        "XDEL s 1-0 3-0 3-0 99-0",
        "XDEL s 2-0 x",
        "XDEL s -",
        "XDEL s +",
        "XDEL missing x",
        "XDEL missing 1-0",
        "XDEL s 5",
        "XRANGE s - 8",
        "XLEN s",
        "XTRIM s",
        "XTRIM s MAXLEN",
        "XTRIM s MAXLEN -1",
        "XTRIM s MAXLEN x",
        "XTRIM s MAXLEN 10 extra",
        "XTRIM s MAXLEN 10 LIMIT 5",
        "XTRIM s MAXLEN = 10 LIMIT 5",
        "XTRIM s MAXLEN ~ 10 LIMIT -1",
        "XTRIM s MAXLEN ~ 10 LIMIT x",
        "XTRIM s MAXLEN 1 MINID 1",
        "XTRIM s MINID 1 MAXLEN 1",
        "XTRIM s LIMIT 5",
        "XTRIM s LIMIT 0 MAXLEN 28",
        "XTRIM s MINID x",
        "XTRIM s MINID -",
        "XTRIM s FOO 1",
        "XTRIM missing MAXLEN 0",
        "XTRIM s MAXLEN ~ 25",
        "XLEN s",
        "XTRIM s MAXLEN ~ 12 LIMIT 4",
        "XLEN s",
        "XTRIM s MAXLEN ~ 12 LIMIT 0",
        "XLEN s",
        "XTRIM s maxlen = 10",
        "XRANGE s - +",
        "XTRIM s MINID ~ 25",
        "XTRIM s MINID 25-0",
        "XRANGE s - +",
        "XTRIM s MINID 18446744073709551615",
        "XLEN s",
        "XRANGE s - +",
        "XADD s MAXLEN 2 40-0 a 1",
        "XADD s MAXLEN 2 41-0 a 1",
        "XADD s MAXLEN 2 42-0 a 1",
        "XADD s MAXLEN ~ 1 43-0 a 1",
        "XADD s MINID = 43 44-0 a 1",
        "XRANGE s - +",
        "XADD s MAXLEN 1 LIMIT 5 45-0 a 1",
        "XADD s MAXLEN ~ 1 LIMIT 5 45-0 a 1",
        "XADD s MAXLEN 1 MINID 1 46-0 a 1",
        "XADD s LIMIT 5 46-0 a 1",
        "XADD s LIMIT 0 46-0 a 1",
        "XADD s MAXLEN -3 46-0 a 1",
        "XADD s MINID 1-x 46-0 a 1",
        "XADD s maxlen ~ 0 nomkstream 47-0 a 1",
        "XLEN s",
        "XRANGE s - +",
        // XSETID
        "XSETID s",
        "XSETID missing 1-1",
        "XSETID s x",
        "XSETID s 1-0",
        "XSETID s 47-0",
        "XSETID s 100-0",
        "XADD s 99-0 a 1",
        "XADD s 100-* a 1",
        "XSETID s 200-0 ENTRIESADDED",
        "XSETID s 200-0 ENTRIESADDED -1",
        "XSETID s 200-0 ENTRIESADDED x",
        "XSETID s 200-0 ENTRIESADDED 0",
        "XSETID s 200-0 ENTRIESADDED 1000",
        "XSETID s 200-0 MAXDELETEDID 300-0",
        "XSETID s 200-0 MAXDELETEDID x",
        "XSETID s 200-0 MAXDELETEDID 150-0",
        "XSETID s 160-0",
        "XSETID s 200-0 FOO 1",
        "XSETID s 18446744073709551615-18446744073709551615",
        "XADD s * a 1",
        "XADD s 5-* a 1",
        "XLEN s",
    ]);
    // An emptied stream keeps its key and its IDs.
    p.lines(&[
        "DEL e",
        "XADD e 5-5 a 1",
        "XDEL e 5-5",
        "EXISTS e",
        "XLEN e",
        "XADD e 5-5 a 1",
        "XADD e 5-6 a 1",
        "XSETID e 1-1",
        "XSETID e 4-0",
        "XSETID e 6-0",
        "TYPE e",
    ]);
}

#[test]
fn xread_answers_like_redis() {
    let mut p = Pair::start();
    p.lines(&[
        "XADD a 1-1 f 1",
        "XADD a 1-2 f 2",
        "XADD b 5-0 g 1",
        "XREAD STREAMS a 0",
        "XREAD STREAMS a b 0 0",
        "XREAD COUNT 1 STREAMS a b 0 0",
        "XREAD COUNT 0 STREAMS a 0",
        "XREAD COUNT -3 STREAMS a 0",
        "XREAD COUNT 9223372036854775807 STREAMS a 0",
        "XREAD COUNT x STREAMS a 0",
        "XREAD STREAMS a b 1-1 0",
        "XREAD STREAMS a b 1-2 5-0",
        "XREAD STREAMS a $",
        "XREAD STREAMS missing 0",
        "XREAD STREAMS missing a 0 0",
        "XREAD STREAMS a b 0",
        "XREAD STREAMS a -",
        "XREAD STREAMS a +",
        "XREAD STREAMS a >",
        "XREAD STREAMS a 1",
        "XREAD STREAMS a x",
        "XREAD STREAMS a 18446744073709551615-18446744073709551615",
        "XREAD GROUP g c STREAMS a 0",
        "XREAD NOACK STREAMS a 0",
        "XREAD FOO STREAMS a 0",
        "XREAD COUNT 1 a 0",
        "XREAD BLOCK -1 STREAMS a 0",
        "XREAD BLOCK x STREAMS a 0",
        "XREAD BLOCK 1.5 STREAMS a 0",
        "XREAD BLOCK 0 STREAMS a 0",
        "XREAD BLOCK 10 STREAMS missing 0",
        "XREAD BLOCK 10 STREAMS a $",
        "XREAD STREAMS a",
        "XREAD STREAMS STREAMS a 0",
        "SET str x",
        "XREAD STREAMS a str 0 0",
        "XREAD STREAMS str a 0 x",
        "XREAD STREAMS a str x 0",
        // Inside MULTI a blocking read answers at once, with a null when empty.
        "MULTI",
        "XREAD BLOCK 0 STREAMS a $",
        "XREAD BLOCK 0 STREAMS a 0",
        "EXEC",
    ]);
    // RESP3: the reply is a map of key -> entries; nothing to read is `_`.
    hello3(&mut p.a);
    hello3(&mut p.b);
    p.lines(&[
        "XREAD STREAMS a b 0 0",
        "XREAD STREAMS missing 0",
        "XREAD BLOCK 10 STREAMS a $",
        "XRANGE a - + COUNT 0",
        "XADD nope NOMKSTREAM * a 1",
    ]);
}

#[test]
fn command_info_matches_redis() {
    let mut p = Pair::start();
    for name in [
        "xadd",
        "xrange",
        "xrevrange",
        "xlen",
        "xdel",
        "xtrim",
        "xsetid",
        "xread",
    ] {
        let (R::Arr(ours), R::Arr(theirs)) = (
            p.a.cmd(&format!("COMMAND INFO {name}")),
            p.b.cmd(&format!("COMMAND INFO {name}")),
        ) else {
            panic!("COMMAND INFO {name} is not an array");
        };
        let (R::Arr(ours), R::Arr(theirs)) = (&ours[0], &theirs[0]) else {
            panic!("COMMAND INFO {name} has no entry");
        };
        // Name, arity, flags, first key, last key, step.
        assert_eq!(ours[..6], theirs[..6], "COMMAND INFO {name}");
    }
    p.line("COMMAND GETKEYS XREAD COUNT 2 STREAMS a b c 0 0 0");
    p.line("COMMAND GETKEYS XADD s * f v");
}

#[test]
fn generated_ids_have_redis_shape_and_order() {
    let mut p = Pair::start();
    let mut last = (0u64, 0u64);
    for _ in 0..50 {
        let (ra, rb) = (p.a.cmd("XADD s * f v"), p.b.cmd("XADD s * f v"));
        for r in [&ra, &rb] {
            assert!(is_id(&id_of(r)), "{r:?}");
        }
        let id = id_of(&ra);
        let (ms, seq) = id.split_once('-').unwrap();
        let cur = (ms.parse().unwrap(), seq.parse().unwrap());
        assert!(cur > last, "{cur:?} after {last:?}");
        last = cur;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        // The server's clock and ours may differ by a little.
        assert!(
            cur.0 <= now + 1000 && cur.0 + 60_000 > now,
            "ms part {} vs now {now}",
            cur.0
        );
    }
    // A last ID in the future: `*` keeps counting sequences after it.
    p.line("XADD f 99999999999999-5 a 1");
    p.line("XADD f * a 1");
    p.line("XADD f 99999999999999-* a 1");
    p.line("XADD f 18446744073709551615-18446744073709551614 a 1");
    p.line("XADD f * a 1");
    p.line("XADD f * a 1");
    p.line("XADD f 18446744073709551615-* a 1");
    p.line("XLEN f");
}

// ---------------------------------------------------------------------------
// Seeded random sequence

const KEYS: &[&str] = &["s0", "s1", "s2"];

struct Gen {
    rng: StdRng,
    /// A rough upper bound of the IDs handed out so far, per key.
    top: Vec<u64>,
}

impl Gen {
    fn key(&mut self) -> (usize, &'static str) {
        let k = self.rng.gen_range(0..KEYS.len());
        (k, KEYS[k])
    }

    /// An ID near the used range (sometimes past it, sometimes malformed).
    fn id(&mut self, k: usize) -> String {
        let top = self.top[k].max(1);
        match self.rng.gen_range(0..20) {
            0 => "-".into(),
            1 => "+".into(),
            2 => format!(
                "({}-{}",
                self.rng.gen_range(0..=top),
                self.rng.gen_range(0..3)
            ),
            3 => self.rng.gen_range(0..=top).to_string(),
            4 => "18446744073709551615-18446744073709551615".into(),
            5 => "x-1".into(),
            _ => format!(
                "{}-{}",
                self.rng.gen_range(0..=top),
                self.rng.gen_range(0..3)
            ),
        }
    }

    fn trim_args(&mut self, k: usize) -> Vec<String> {
        let mut a = Vec::new();
        let minid = self.rng.gen_bool(0.4);
        a.push(if minid { "MINID" } else { "MAXLEN" }.to_string());
        match self.rng.gen_range(0..3) {
            0 => a.push("~".into()),
            1 => a.push("=".into()),
            _ => {}
        }
        if minid {
            let top = self.top[k].max(1);
            let lo = top.saturating_sub(30);
            a.push(format!(
                "{}-{}",
                self.rng.gen_range(lo..=top),
                self.rng.gen_range(0..3)
            ));
        } else {
            a.push(self.rng.gen_range(0..20).to_string());
        }
        if self.rng.gen_bool(0.25) {
            a.push("LIMIT".into());
            a.push(self.rng.gen_range(0..12).to_string());
        }
        a
    }

    fn op(&mut self) -> Vec<String> {
        let (k, key) = self.key();
        let mut a: Vec<String> = Vec::new();
        match self.rng.gen_range(0..100) {
            0..=37 => {
                a.extend(["XADD".into(), key.into()]);
                if self.rng.gen_bool(0.05) {
                    a.push("NOMKSTREAM".into());
                }
                if self.rng.gen_bool(0.2) {
                    a.extend(self.trim_args(k));
                }
                let step = self.rng.gen_range(0..3);
                let id = match self.rng.gen_range(0..10) {
                    0 => format!("{}-*", self.top[k] + step),
                    1 => format!("{}-{}", self.top[k].saturating_sub(1), 5),
                    _ => {
                        self.top[k] += step;
                        format!("{}-{}", self.top[k], self.rng.gen_range(0..4))
                    }
                };
                a.push(id);
                let nf = if self.rng.gen_bool(0.8) {
                    1
                } else {
                    self.rng.gen_range(1..4)
                };
                for f in 0..nf {
                    // Mostly the same field names (SAMEFIELDS entries), integers too.
                    let field = if self.rng.gen_bool(0.85) {
                        format!("f{f}")
                    } else {
                        format!("g{}", self.rng.gen_range(0..3))
                    };
                    let value = match self.rng.gen_range(0..4) {
                        0 => self.rng.gen_range(-5000..5000i64).to_string(),
                        1 => "x".repeat(self.rng.gen_range(0..80)),
                        _ => format!("v{}", self.rng.gen_range(0..100)),
                    };
                    a.extend([field, value]);
                }
            }
            38..=49 => {
                a.extend(["XTRIM".into(), key.into()]);
                a.extend(self.trim_args(k));
            }
            50..=61 => {
                a.extend(["XDEL".into(), key.into()]);
                for _ in 0..self.rng.gen_range(1..4) {
                    let top = self.top[k].max(1);
                    a.push(format!(
                        "{}-{}",
                        self.rng.gen_range(0..=top),
                        self.rng.gen_range(0..4)
                    ));
                }
            }
            62..=77 => {
                let rev = self.rng.gen_bool(0.4);
                a.extend([if rev { "XREVRANGE" } else { "XRANGE" }.into(), key.into()]);
                a.push(self.id(k));
                a.push(self.id(k));
                if self.rng.gen_bool(0.5) {
                    a.extend(["COUNT".into(), self.rng.gen_range(-1..8).to_string()]);
                }
            }
            78..=85 => a.extend(["XLEN".into(), key.into()]),
            86..=90 => {
                a.extend(["XSETID".into(), key.into()]);
                let top = self.top[k];
                let id = top + self.rng.gen_range(0..3);
                a.push(format!("{id}-{}", self.rng.gen_range(0..9)));
                if self.rng.gen_bool(0.3) {
                    a.extend([
                        "ENTRIESADDED".into(),
                        self.rng.gen_range(0..200).to_string(),
                    ]);
                }
                if self.rng.gen_bool(0.3) {
                    a.extend([
                        "MAXDELETEDID".into(),
                        format!("{}-0", self.rng.gen_range(0..=id)),
                    ]);
                }
                self.top[k] = id + 1;
            }
            91..=96 => {
                a.extend(["XREAD".into()]);
                if self.rng.gen_bool(0.5) {
                    a.extend(["COUNT".into(), self.rng.gen_range(0..5).to_string()]);
                }
                a.push("STREAMS".into());
                let (k2, key2) = self.key();
                a.extend([key.into(), key2.into(), self.id(k), self.id(k2)]);
            }
            _ => a.extend(["DEL".into(), key.into()]),
        }
        a
    }
}

#[test]
fn seeded_random_sequence_matches_redis_reply_by_reply_and_dump_by_dump() {
    let mut p = Pair::start();
    // Small nodes, so that the sequence crosses many node boundaries.
    p.line("CONFIG SET stream-node-max-entries 7");
    p.line("CONFIG SET stream-node-max-bytes 300");
    let mut g = Gen {
        rng: StdRng::seed_from_u64(0x5713_ea45),
        top: vec![1; KEYS.len()],
    };
    let (mut added, mut refused, mut trimmed) = (0, 0, 0);
    for i in 0..700 {
        let cmd = g.op();
        let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
        let r = p.same(&args);
        match (&cmd[0][..], &r) {
            (_, R::Err(_)) => refused += 1,
            ("XADD", R::Bulk(_)) => added += 1,
            ("XTRIM", R::Int(n)) if *n > 0 => trimmed += 1,
            _ => {}
        }
        if i % 50 == 49 {
            for key in KEYS {
                p.line(&format!("XRANGE {key} - +"));
                // Same nodes, same tombstones, same metadata.
                p.same_dump(key);
            }
        }
    }
    assert!(added > 150, "only {added} XADDs succeeded");
    assert!(refused > 20, "only {refused} commands were refused");
    assert!(trimmed > 10, "only {trimmed} XTRIMs removed entries");
}

// ---------------------------------------------------------------------------
// Keyspace integration

#[test]
fn dump_restore_copy_move_rename_and_introspection_match_redis() {
    let mut p = Pair::start();
    p.line("CONFIG SET stream-node-max-entries 5");
    for i in 1..=23 {
        p.line(&format!("XADD s {i}-{i} f {i} other x{i}"));
    }
    p.lines(&[
        "XDEL s 2-2 7-7",
        "XTRIM s MAXLEN 20",
        "XSETID s 50-0 ENTRIESADDED 40 MAXDELETEDID 30-0",
        "TYPE s",
        "OBJECT ENCODING s",
    ]);
    p.same_dump("s");
    p.lines(&["COPY s c", "XRANGE c - +"]);
    p.same_dump("c");
    p.lines(&[
        "COPY s c",
        "COPY s c REPLACE",
        "RENAME c r",
        "XRANGE r - +",
        "MOVE r 3",
        "EXISTS r",
        "SELECT 3",
        "XRANGE r - +",
        "XADD r 60-0 f v",
    ]);
    p.same_dump("r");
    p.lines(&["SELECT 0", "XADD e 1-1 a b", "XDEL e 1-1"]);
    p.same_dump("e");
    p.line("DBSIZE");
    // RESTORE of Redis's own payload, on both sides.
    let R::Bulk(payload) = p.b.cmd("DUMP s") else {
        panic!("DUMP s");
    };
    p.same(&[b"RESTORE", b"restored", b"0", &payload]);
    p.line("XRANGE restored - +");
    p.same_dump("restored");
    p.same(&[b"RESTORE", b"restored", b"0", &payload]);
    p.same(&[b"RESTORE", b"restored", b"0", &payload, b"REPLACE"]);
    p.line("XLEN restored");
    p.lines(&[
        "MEMORY USAGE missing",
        "MEMORY USAGE s SAMPLES -1",
        "MEMORY USAGE s SAMPLES x",
        "MEMORY USAGE s FOO",
        "MEMORY USAGE",
        "MEMORY FOO",
    ]);
    // MEMORY USAGE of a stream answers, and grows with its nodes.
    let usage = |c: &mut Conn| match c.cmd("MEMORY USAGE s SAMPLES 0") {
        R::Int(n) => n,
        other => panic!("{other:?}"),
    };
    let before = usage(&mut p.a);
    assert!(before > 20 * 10, "{before}");
    for i in 100..400 {
        p.line(&format!("XADD s {i}-0 f {i} other x{i}"));
    }
    let after = usage(&mut p.a);
    assert!(after > before + 300 * 8, "{before} -> {after}");
    let ka = keyspace_line(&mut p.a);
    let kb = keyspace_line(&mut p.b);
    assert_eq!(ka, kb);
    assert!(ka.contains("db0:keys=3"), "{ka}");
    assert!(ka.contains("db3:keys=1"), "{ka}");
}

fn keyspace_line(c: &mut Conn) -> String {
    let R::Bulk(info) = c.cmd("INFO keyspace") else {
        panic!("INFO keyspace");
    };
    let text = String::from_utf8_lossy(&info).into_owned();
    text.lines()
        .filter(|l| l.starts_with("db"))
        .map(|l| l.split(",avg_ttl").next().unwrap_or(l).to_string())
        .collect::<Vec<_>>()
        .join(";")
}

// ---------------------------------------------------------------------------
// Blocking XREAD

fn hello3(c: &mut Conn) {
    assert!(matches!(c.cmd("HELLO 3"), R::Map(_)));
}

/// Waits until `n` clients are blocked.
fn wait_blocked(c: &mut Conn, n: usize) {
    let want = format!("blocked_clients:{n}");
    assert!(
        wait_until(WAIT, || match c.cmd("INFO clients") {
            R::Bulk(b) => String::from_utf8_lossy(&b).contains(&want),
            _ => false,
        }),
        "never saw {want}"
    );
}

#[test]
fn blocked_readers_are_woken_by_xadd_with_only_newer_entries() {
    let t = TestServer::start(&[]);
    let mut w = t.conn();
    assert_eq!(w.cmd("XADD s 5-0 old 1"), b("5-0"));
    let mut r1 = t.conn();
    let mut r2 = t.conn();
    // `$` is the last ID at block time; a second key that never gets data.
    r1.send(&words("XREAD BLOCK 0 STREAMS s other $ $"));
    wait_blocked(&mut w, 1);
    r2.send(&words("XREAD COUNT 1 BLOCK 0 STREAMS s 5-0"));
    wait_blocked(&mut w, 2);
    // A write that adds nothing newer does not serve anyone.
    assert_eq!(w.cmd("XSETID s 6-0"), R::ok());
    assert_eq!(w.cmd("XADD s 7-0 new 1"), b("7-0"));
    let want = R::Arr(vec![R::Arr(vec![
        b("s"),
        R::Arr(vec![R::Arr(vec![b("7-0"), arr(&["new", "1"])])]),
    ])]);
    assert_eq!(r1.read(), want);
    assert_eq!(r2.read(), want);
    wait_blocked(&mut w, 0);
    // Served clients are unblocked: a later XADD reaches nobody.
    assert_eq!(w.cmd("XADD s 8-0 new 2"), b("8-0"));
    assert_eq!(r1.cmd("PING"), R::Simple("PONG".into()));
}

#[test]
fn a_woken_reader_is_answered_from_one_stream() {
    let t = TestServer::start(&[]);
    let mut w = t.conn();
    let mut r = t.conn();
    r.send(&words("XREAD BLOCK 0 STREAMS a b $ $"));
    wait_blocked(&mut w, 1);
    // Both keys get an entry in one transaction; like Redis, the reader is served
    // from the first stream that became ready.
    assert_eq!(w.cmd("MULTI"), R::ok());
    w.cmd("XADD a 1-1 x 1");
    w.cmd("XADD b 1-1 y 1");
    assert!(matches!(w.cmd("EXEC"), R::Arr(v) if v.len() == 2));
    assert_eq!(
        r.read(),
        R::Arr(vec![R::Arr(vec![
            b("a"),
            R::Arr(vec![R::Arr(vec![b("1-1"), arr(&["x", "1"])])]),
        ])])
    );
}

#[test]
fn dollar_is_resolved_when_the_reader_blocks() {
    let t = TestServer::start(&[]);
    let mut w = t.conn();
    let mut r = t.conn();
    assert_eq!(w.cmd("XADD s 1-0 a 1"), b("1-0"));
    r.send(&words("XREAD BLOCK 0 STREAMS s $"));
    wait_blocked(&mut w, 1);
    // Deleting and recreating the key with an older ID serves nothing: the reader
    // waits for IDs after 1-0, which is what it resolved `$` to.
    assert_eq!(w.cmd("DEL s"), R::Int(1));
    assert_eq!(w.cmd("XADD s 0-5 a 2"), b("0-5"));
    assert_eq!(w.cmd("XADD s 2-0 a 3"), b("2-0"));
    assert_eq!(
        r.read(),
        R::Arr(vec![R::Arr(vec![
            b("s"),
            R::Arr(vec![R::Arr(vec![b("2-0"), arr(&["a", "3"])])]),
        ])])
    );
}

#[test]
fn blocked_readers_are_served_in_arrival_order_with_the_default_count() {
    let t = TestServer::start(&[]);
    let mut w = t.conn();
    let mut readers: Vec<Conn> = (0..3).map(|_| t.conn()).collect();
    for (i, r) in readers.iter_mut().enumerate() {
        r.send(&words("XREAD BLOCK 0 STREAMS q 0"));
        wait_blocked(&mut w, i + 1);
    }
    // One MULTI adding 1500 entries: each reader gets the first 1000 (no COUNT).
    assert_eq!(w.cmd("MULTI"), R::ok());
    for i in 1..=1500 {
        assert_eq!(
            w.cmd(&format!("XADD q {i}-0 f v")),
            R::Simple("QUEUED".into())
        );
    }
    assert!(matches!(w.cmd("EXEC"), R::Arr(v) if v.len() == 1500));
    for r in &mut readers {
        let R::Arr(keys) = r.read() else { panic!() };
        let R::Arr(kv) = &keys[0] else { panic!() };
        let R::Arr(entries) = &kv[1] else { panic!() };
        assert_eq!(entries.len(), 1000);
        assert_eq!(entries[0], R::Arr(vec![b("1-0"), arr(&["f", "v"])]));
    }
}

#[test]
fn xread_block_times_out_with_a_null_in_resp2_and_resp3() {
    let t = TestServer::start(&[]);
    let mut c = t.conn();
    let started = Instant::now();
    assert_eq!(c.cmd("XREAD BLOCK 100 STREAMS s $"), R::NilArr);
    assert!(started.elapsed() >= Duration::from_millis(100));
    hello3(&mut c);
    assert_eq!(c.cmd("XREAD BLOCK 50 STREAMS s 0"), R::Nil);
    // A RESP3 reader woken by XADD gets a map of key -> entries.
    let mut w0 = t.conn();
    c.send(&words("XREAD BLOCK 0 STREAMS s3 $"));
    wait_blocked(&mut w0, 1);
    assert_eq!(w0.cmd("XADD s3 1-1 a b"), b("1-1"));
    assert_eq!(
        c.read(),
        R::Map(vec![(
            b("s3"),
            R::Arr(vec![R::Arr(vec![b("1-1"), arr(&["a", "b"])])])
        )])
    );
    // A key deleted or replaced by another type does not wake the reader (Redis
    // 7.0 leaves XREAD blocked until its timeout).
    let mut w = t.conn();
    assert_eq!(w.cmd("XADD s 1-1 a b"), b("1-1"));
    c.send(&words("XREAD BLOCK 300 STREAMS s $"));
    wait_blocked(&mut w, 1);
    assert_eq!(w.cmd("DEL s"), R::Int(1));
    assert_eq!(w.cmd("SET s x"), R::ok());
    assert_eq!(c.read(), R::Nil);
}

#[test]
fn client_unblock_answers_a_blocked_xread() {
    let t = TestServer::start(&[]);
    let mut w = t.conn();
    let mut r = t.conn();
    let R::Int(id) = r.cmd("CLIENT ID") else {
        panic!()
    };
    r.send(&words("XREAD BLOCK 0 STREAMS s $"));
    wait_blocked(&mut w, 1);
    assert_eq!(w.cmd(&format!("CLIENT UNBLOCK {id}")), R::Int(1));
    assert_eq!(r.read(), R::NilArr);
    r.send(&words("XREAD BLOCK 0 STREAMS s $"));
    wait_blocked(&mut w, 1);
    assert_eq!(w.cmd(&format!("CLIENT UNBLOCK {id} ERROR")), R::Int(1));
    assert_eq!(
        r.read(),
        err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
    );
    assert_eq!(w.cmd(&format!("CLIENT UNBLOCK {id}")), R::Int(0));
}

// ---------------------------------------------------------------------------
// Replication and RDB files

/// A mixed stream workload: explicit and generated IDs, deletions, approximate and
/// exact trims (some with LIMIT), XSETID; small nodes so trims cut across them.
fn stream_workload(c: &mut Conn, rng: &mut StdRng) {
    for i in 0..400u32 {
        let key = ["w0", "w1", "w2"][(i % 3) as usize];
        let q = match rng.gen_range(0..12) {
            0 => format!("XADD {key} MAXLEN ~ {} * f {i}", rng.gen_range(5..60)),
            1 => format!("XADD {key} MINID ~ 0 LIMIT 5 * f {i}"),
            2 => format!("XTRIM {key} MAXLEN ~ {}", rng.gen_range(0..50)),
            3 => format!("XTRIM {key} MAXLEN = {} ", rng.gen_range(10..80)),
            4 => format!("XDEL {key} {}-0", rng.gen_range(0..100)),
            5 => format!("XADD {key} MAXLEN ~ 20 LIMIT 3 * n {i} m x"),
            _ => format!("XADD {key} * f {i} g {}", rng.gen_range(-100..100)),
        };
        let r = c.cmd(&q);
        assert!(!matches!(r, R::Err(_)), "{q}: {r:?}");
    }
    // Entries at explicit IDs can be deleted by ID afterwards.
    assert_eq!(c.cmd("XADD x 1-1 a 1"), b("1-1"));
    assert_eq!(c.cmd("XADD x 1-* a 2"), b("1-2"));
    assert_eq!(c.cmd("XDEL x 1-1"), R::Int(1));
    assert_eq!(
        c.cmd("XSETID x 9-9 ENTRIESADDED 10 MAXDELETEDID 2-0"),
        R::ok()
    );
    let R::Bulk(last) = c.cmd("XADD w0 * last 1") else {
        panic!()
    };
    let last = String::from_utf8_lossy(&last).into_owned();
    let first = match c.cmd("XRANGE w0 - + COUNT 3") {
        R::Arr(v) if v.len() == 3 => match &v[2] {
            R::Arr(e) => id_of(&e[0]),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    assert_eq!(c.cmd(&format!("XTRIM w0 MINID {first}")), R::Int(2));
    assert!(last > first);
}

/// Per key: entries, length and the DUMP payload in Redis's own encoding (the exact
/// nodes and metadata), made canonical through the writable Redis `canon`.
fn stream_state(c: &mut Conn, canon: &mut Conn) -> Vec<R> {
    let mut out = Vec::new();
    for key in ["w0", "w1", "w2", "x"] {
        out.push(c.cmd(&format!("XRANGE {key} - +")));
        out.push(c.cmd(&format!("XLEN {key}")));
        let d = c.cmd(&format!("DUMP {key}"));
        out.push(canonical(canon, d));
    }
    out
}

/// A spare writable Redis for [`canonical`].
fn canonicalizer() -> (RealRedis, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (RealRedis::start(dir.path(), "c.rdb", &[]), dir)
}

fn master_offset(c: &mut Conn) -> R {
    match c.cmd("ROLE") {
        R::Arr(v) => v[1].clone(),
        other => panic!("{other:?}"),
    }
}

fn replica_offset(c: &mut Conn) -> R {
    match c.cmd("ROLE") {
        R::Arr(v) if v.len() == 5 => v[4].clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tandem_and_redis_replicas_of_a_tandem_master_end_with_identical_streams() {
    let m = TestServer::start(&[
        "--repl-diskless-sync-delay",
        "0",
        "--stream-node-max-entries",
        "10",
    ]);
    let mut mc = m.conn();
    let target = format!("127.0.0.1 {}", m.port);
    let tr = TestServer::start(&["--replicaof", &target, "--stream-node-max-entries", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let rr = RealRedis::start(
        dir.path(),
        "r.rdb",
        &[
            "--replicaof",
            "127.0.0.1",
            &m.port.to_string(),
            "--stream-node-max-entries",
            "10",
        ],
    );
    let (mut tc, mut rc) = (tr.conn(), rr.conn());
    let connected =
        |c: &mut Conn| matches!(c.cmd("ROLE"), R::Arr(v) if v.len() == 5 && v[3] == b("connected"));
    assert!(
        wait_until(WAIT, || connected(&mut tc) && connected(&mut rc)),
        "replicas never connected"
    );
    // Part of the data before a full sync, part streamed.
    assert_eq!(mc.cmd("XADD pre 1-1 a 1"), b("1-1"));
    let mut rng = StdRng::seed_from_u64(0xfeed_0716);
    stream_workload(&mut mc, &mut rng);
    let off = master_offset(&mut mc);
    assert!(
        wait_until(WAIT, || replica_offset(&mut tc) == off
            && replica_offset(&mut rc) == off),
        "replicas never caught up to {off:?}; tandem master log:\n{}",
        m.stdout()
    );
    let (canon, _cdir) = canonicalizer();
    let mut cc = canon.conn();
    let want = stream_state(&mut mc, &mut cc);
    assert!(
        stream_state(&mut tc, &mut cc) == want,
        "tandem replica differs"
    );
    assert!(
        stream_state(&mut rc, &mut cc) == want,
        "redis replica differs"
    );
    assert_eq!(rc.cmd("XRANGE pre - +"), mc.cmd("XRANGE pre - +"));
}

#[test]
fn tandem_replica_of_a_redis_master_ends_with_identical_streams() {
    let dir = tempfile::tempdir().unwrap();
    let rm = RealRedis::start(
        dir.path(),
        "m.rdb",
        &[
            "--repl-diskless-sync-delay",
            "0",
            "--stream-node-max-entries",
            "10",
        ],
    );
    let mut mc = rm.conn();
    assert_eq!(mc.cmd("XADD pre 1-1 a 1"), b("1-1"));
    let target = format!("127.0.0.1 {}", rm.port);
    let tr = TestServer::start(&["--replicaof", &target, "--stream-node-max-entries", "10"]);
    let mut tc = tr.conn();
    assert!(
        wait_until(WAIT, || tc.cmd("XLEN pre") == R::Int(1)),
        "no full sync"
    );
    let mut rng = StdRng::seed_from_u64(0x0716_feed);
    stream_workload(&mut mc, &mut rng);
    let off = master_offset(&mut mc);
    assert!(
        wait_until(WAIT, || replica_offset(&mut tc) == off),
        "replica never caught up; log:\n{}",
        tr.stdout()
    );
    let (canon, _cdir) = canonicalizer();
    let mut cc = canon.conn();
    assert!(stream_state(&mut tc, &mut cc) == stream_state(&mut mc, &mut cc));
}

#[test]
fn rdb_files_with_edited_streams_load_both_ways() {
    // Redis writes streams it built and edited; Tandem loads them, edits them further
    // in place and saves; Redis loads Tandem's file. At each step both sides agree.
    let rdir = tempfile::tempdir().unwrap();
    let r = RealRedis::start(
        rdir.path(),
        "dump.rdb",
        &["--stream-node-max-entries", "10"],
    );
    let mut rc = r.conn();
    let mut rng = StdRng::seed_from_u64(0xd0d0_0716);
    stream_workload(&mut rc, &mut rng);
    let (canon, _cdir) = canonicalizer();
    let mut cc = canon.conn();
    let want = stream_state(&mut rc, &mut cc);
    assert_eq!(rc.cmd("SAVE"), R::ok());
    let tdir = tempfile::tempdir().unwrap();
    std::fs::copy(rdir.path().join("dump.rdb"), tdir.path().join("dump.rdb")).unwrap();
    let t = TestServer::start_in(
        tdir,
        &[
            "--dbfilename",
            "dump.rdb",
            "--stream-node-max-entries",
            "10",
        ],
    );
    let mut tc = t.conn();
    assert!(
        stream_state(&mut tc, &mut cc) == want,
        "tandem on redis's dump"
    );
    // The same edits on both: appends to loaded nodes, deletions, trims.
    for q in [
        "XADD w1 * more 1",
        "XDEL x 1-2",
        "XTRIM w2 MAXLEN 7",
        "XADD w2 MAXLEN ~ 3 99999999999999-1 z 1",
        "XADD fresh 5-5 a b",
    ] {
        let (a, b2) = (tc.cmd(q), rc.cmd(q));
        if q.contains('*') {
            assert!(is_id(&id_of(&a)) && is_id(&id_of(&b2)));
        } else {
            assert_eq!(a, b2, "{q}");
        }
    }
    // `*` made different IDs on the two sides: compare everything else.
    let (ta, ra) = (tc.cmd("XLEN w1"), rc.cmd("XLEN w1"));
    assert_eq!(ta, ra);
    assert_eq!(tc.cmd("DEL w1"), R::Int(1));
    assert_eq!(rc.cmd("DEL w1"), R::Int(1));
    let want = stream_state(&mut rc, &mut cc);
    assert!(
        stream_state(&mut tc, &mut cc) == want,
        "after the same edits"
    );
    assert_eq!(tc.cmd("SAVE"), R::ok());
    drop(r);
    let r2dir = tempfile::tempdir().unwrap();
    std::fs::copy(t.dir.path().join("dump.rdb"), r2dir.path().join("dump.rdb")).unwrap();
    let r2 = RealRedis::start(r2dir.path(), "dump.rdb", &[]);
    let mut r2c = r2.conn();
    assert!(
        stream_state(&mut r2c, &mut cc) == want,
        "redis on tandem's dump"
    );
    assert_eq!(r2c.cmd("XRANGE fresh - +"), tc.cmd("XRANGE fresh - +"));
}
