//! HyperLogLog commands side by side with Debian's redis-server 7.0.15: same replies
//! and the same bytes (so the same representation) for the same inputs, values that
//! move between the two servers as plain strings, corrupted values answered with
//! Redis's errors, and a Tandem replica that ends up with the master's bytes.
mod common;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

impl Pair {
    fn line(&mut self, line: &str) -> R {
        let parts: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        self.same(&parts)
    }

    /// The raw value of `key` on both servers must be the same bytes.
    fn same_bytes(&mut self, key: &str) -> Vec<u8> {
        match self.line(&format!("GET {key}")) {
            R::Bulk(v) => v,
            other => panic!("GET {key}: {other:?}"),
        }
    }
}

fn bytes_of(r: R) -> Vec<u8> {
    match r {
        R::Bulk(v) => v,
        other => panic!("not a bulk: {other:?}"),
    }
}

#[test]
fn hll_scripts_match_redis() {
    let mut p = Pair::start();
    for line in [
        "PFADD h a b c d e f g",
        "PFADD h a b",
        "PFADD h",
        "PFADD fresh",
        "GET fresh",
        "PFCOUNT fresh",
        "PFCOUNT h",
        "GET h",
        "PFCOUNT h",
        "PFCOUNT missing",
        "PFCOUNT missing other",
        "PFADD h2 x y z a",
        "PFCOUNT h h2",
        "PFCOUNT h h2 missing",
        "PFMERGE dst h h2",
        "GET dst",
        "PFCOUNT dst",
        "PFMERGE dst",
        "PFMERGE new",
        "GET new",
        "PFMERGE missing1 missing2",
        "EXISTS missing1",
        "PFDEBUG ENCODING h",
        "PFDEBUG DECODE h",
        "PFDEBUG decode dst",
        "PFDEBUG TODENSE h",
        "PFDEBUG TODENSE h",
        "PFDEBUG ENCODING h",
        "PFDEBUG DECODE h",
        "GET h",
        "PFCOUNT h",
        "PFADD h more elements here",
        "PFCOUNT h",
        "PFMERGE dst h",
        "PFDEBUG ENCODING dst",
        "GET dst",
        "PFDEBUG GETREG h2",
        "PFDEBUG ENCODING h2",
        "GET h2",
        "PFDEBUG FOO h2",
        "PFDEBUG GETREG missing",
        "PFDEBUG GETREG",
        "PFDEBUG GETREG h2 extra",
        "SET str hello",
        "PFADD str a",
        "PFCOUNT str",
        "PFCOUNT h str",
        "PFMERGE h str",
        "PFMERGE str h",
        "PFDEBUG ENCODING str",
        "RPUSH list a",
        "PFADD list a",
        "PFCOUNT list",
        "PFCOUNT h list",
        "PFMERGE h list",
        "PFMERGE list h",
        "PFDEBUG ENCODING list",
        "PFADD",
        "PFCOUNT",
        "PFMERGE",
        "SET t v EX 100",
        "DEL t",
        "PFADD t a",
        "EXPIRE t 100",
        "PFADD t b",
        "TTL t",
        "PFMERGE t h",
        "TTL t",
        "TYPE h",
        "STRLEN h",
        "STRLEN h2",
        "OBJECT ENCODING h",
    ] {
        p.line(line);
    }
    assert!(matches!(p.a.cmd("PFSELFTEST"), R::Simple(s) if s == "OK"));
}

#[test]
fn pfadd_of_100k_random_elements_matches_redis_byte_for_byte() {
    let mut p = Pair::start();
    let mut rng = StdRng::seed_from_u64(0x4e11_7e57);
    // Keys of very different sizes: "tiny" and "small" stay sparse, the others go
    // dense at different points.
    let keys = ["tiny", "small", "mid", "big", "huge"];
    p.line("PFADD tiny first");
    let mut added = 0usize;
    let mut round = 0usize;
    while added < 100_000 {
        round += 1;
        let key = match rng.gen_range(0..1000) {
            0..=2 => "tiny",
            3..=14 => "small",
            15..=199 => "mid",
            200..=599 => "big",
            _ => "huge",
        };
        let n = rng.gen_range(1..60);
        let elements: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                if rng.gen_bool(0.9) {
                    format!("el:{}", rng.gen_range(0..150_000u32)).into_bytes()
                } else {
                    (0..rng.gen_range(0..24)).map(|_| rng.gen()).collect()
                }
            })
            .collect();
        let mut args: Vec<&[u8]> = vec![b"PFADD", key.as_bytes()];
        args.extend(elements.iter().map(Vec::as_slice));
        p.same(&args);
        added += n;
        if round.is_multiple_of(50) {
            p.same(&[b"PFCOUNT", key.as_bytes()]);
        }
    }
    for k in keys {
        p.line(&format!("PFCOUNT {k}"));
        p.line(&format!("PFDEBUG ENCODING {k}"));
        p.same_bytes(k);
    }
    // Both representations were exercised (and compared byte for byte above).
    assert_eq!(p.line("PFDEBUG ENCODING tiny"), R::Simple("sparse".into()));
    assert_eq!(p.line("PFDEBUG ENCODING huge"), R::Simple("dense".into()));
    let R::Int(huge) = p.line("PFCOUNT huge") else {
        panic!("PFCOUNT is an integer");
    };
    assert!((20_000..=60_000).contains(&huge), "{huge}");
    p.line("PFCOUNT tiny small");
    p.line("PFCOUNT tiny small mid big huge");
    p.line("PFMERGE sparse-union tiny small");
    p.line("PFDEBUG ENCODING sparse-union");
    p.same_bytes("sparse-union");
    p.line("PFMERGE all tiny small mid big huge");
    p.line("PFCOUNT all");
    p.same_bytes("all");
    p.line("PFMERGE tiny small");
    p.same_bytes("tiny");
    // A larger sparse limit keeps the values sparse longer, on both sides.
    p.line("CONFIG SET hll-sparse-max-bytes 12000");
    for i in 0..40 {
        let batch: Vec<String> = (0..25).map(|j| format!("late:{i}:{j}")).collect();
        let mut args: Vec<&[u8]> = vec![b"PFADD", b"roomy"];
        args.extend(batch.iter().map(String::as_bytes));
        p.same(&args);
    }
    p.line("PFDEBUG ENCODING roomy");
    p.line("PFCOUNT roomy");
    p.same_bytes("roomy");
}

#[test]
fn hll_values_move_between_tandem_and_redis() {
    let mut p = Pair::start();
    // Built on Tandem, read and extended on Redis (sparse and dense forms).
    for (key, n) in [("sparse", 40), ("dense", 5000)] {
        let elements: Vec<String> = (0..n).map(|i| format!("{key}-{i}")).collect();
        let mut args: Vec<&[u8]> = vec![b"PFADD", key.as_bytes()];
        args.extend(elements.iter().map(String::as_bytes));
        assert_eq!(p.a.cmd_args(&args), R::Int(1));
        let ours = bytes_of(p.a.cmd(&format!("GET {key}")));
        assert_eq!(
            p.b.cmd_args(&[b"SET", format!("from-tandem-{key}").as_bytes(), &ours]),
            R::ok()
        );
        let count = p.a.cmd(&format!("PFCOUNT {key}"));
        assert_eq!(p.b.cmd(&format!("PFCOUNT from-tandem-{key}")), count);
        assert_eq!(
            p.b.cmd(&format!("PFADD from-tandem-{key} extra1 extra2")),
            R::Int(1)
        );
        assert_eq!(p.a.cmd(&format!("PFADD {key} extra1 extra2")), R::Int(1));
        // Built on Redis, read and extended on Tandem.
        let theirs = bytes_of(p.b.cmd(&format!("GET from-tandem-{key}")));
        assert_eq!(bytes_of(p.a.cmd(&format!("GET {key}"))), theirs);
        assert_eq!(
            p.a.cmd_args(&[b"SET", format!("from-redis-{key}").as_bytes(), &theirs]),
            R::ok()
        );
        assert_eq!(
            p.a.cmd(&format!("PFCOUNT from-redis-{key}")),
            p.b.cmd(&format!("PFCOUNT from-tandem-{key}"))
        );
        assert_eq!(
            p.a.cmd(&format!("PFMERGE m from-redis-{key} {key}")),
            R::ok()
        );
        assert_eq!(
            p.b.cmd(&format!("PFMERGE m from-tandem-{key} from-tandem-{key}")),
            R::ok()
        );
        assert_eq!(bytes_of(p.a.cmd("GET m")), bytes_of(p.b.cmd("GET m")));
    }
}

/// A sparse HLL with a valid header and the given opcodes.
fn sparse_with(ops: &[u8]) -> Vec<u8> {
    let mut v = b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80".to_vec();
    v.extend_from_slice(ops);
    v
}

#[test]
fn corrupt_hll_values_get_redis_errors_and_stay_unchanged() {
    let mut p = Pair::start();
    let not_hll = "WRONGTYPE Key is not a valid HyperLogLog string value.";
    let corrupted = "INVALIDOBJ Corrupted HLL object detected";
    let mut dense_short = b"HYLL\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80".to_vec();
    dense_short.resize(12303, 0);
    // (key, value, error, whether Redis 7.0.15 can safely be asked to PFADD).
    let cases: Vec<(&str, Vec<u8>, &str, bool)> = vec![
        ("short", b"HYLL".to_vec(), not_hll, true),
        (
            "magic",
            sparse_with(b"\x7f\xff").into_iter().rev().collect(),
            not_hll,
            true,
        ),
        (
            "enc",
            b"HYLL\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80\x7f\xff".to_vec(),
            not_hll,
            true,
        ),
        ("dense-short", dense_short, not_hll, true),
        // Nothing after the header.
        ("empty", sparse_with(b""), corrupted, true),
        // One XZERO covering 16129 registers: adding past it is where Redis 7.0.15
        // itself reads out of bounds (fixed later upstream), so only Tandem is asked.
        ("short-cover", sparse_with(b"\x7f\x00"), corrupted, false),
    ];
    let many: Vec<String> = (0..1000).map(|i| format!("e{i}")).collect();
    for (key, value, want, ask_redis) in &cases {
        p.same(&[b"SET", key.as_bytes(), value]);
        for cmd in [
            format!("PFCOUNT {key}"),
            format!("PFCOUNT {key} nokey"),
            format!("PFMERGE dst {key}"),
            format!("PFMERGE {key} nokey"),
            format!("PFDEBUG GETREG {key}"),
            format!("PFDEBUG TODENSE {key}"),
        ] {
            assert_eq!(p.line(&cmd), err(want), "{cmd}");
        }
        let mut args: Vec<&[u8]> = vec![b"PFADD", key.as_bytes()];
        args.extend(many.iter().map(String::as_bytes));
        let reply = if *ask_redis {
            p.same(&args)
        } else {
            p.a.cmd_args(&args)
        };
        assert_eq!(reply, err(want), "PFADD {key}");
        assert_eq!(
            bytes_of(p.a.cmd(&format!("GET {key}"))),
            *value,
            "{key} changed"
        );
    }
    // Zero runs covering 64 registers too many: counting and merging refuse it,
    // adding lands inside the first run and works, on both sides.
    p.same(&[b"SET", b"over", &sparse_with(b"\x7f\xff\x3f")]);
    for cmd in [
        "PFCOUNT over",
        "PFCOUNT over nokey",
        "PFMERGE dst over",
        "PFDEBUG TODENSE over",
    ] {
        assert_eq!(p.line(cmd), err(corrupted), "{cmd}");
    }
    p.line("PFADD over a b c");
    p.same_bytes("over");
    assert_eq!(p.line("EXISTS dst"), R::Int(0));
    // A stale cache over valid registers is simply recomputed, on both sides.
    p.same(&[b"SET", b"stale", &sparse_with(b"\x7f\xff")]);
    p.line("PFCOUNT stale");
    p.same_bytes("stale");
    // Adding past an over-long sparse tail works in both and counting then fails.
    p.same(&[b"SET", b"tail", &sparse_with(b"\x7f\xff\x80\x80")]);
    p.line("PFCOUNT tail");
    p.line("PFADD tail a");
    p.same_bytes("tail");
    // A truncated XZERO reads its missing byte as zero, as Redis's NUL terminator.
    p.same(&[b"SET", b"trunc", &sparse_with(b"\x7f\xff\x40")]);
    p.line("PFCOUNT trunc");
    p.line("PFDEBUG DECODE trunc");
    assert_eq!(p.a.cmd("PING"), R::Simple("PONG".into()));
}

fn digest_and_values(c: &mut Conn, keys: &[&str]) -> (R, Vec<R>) {
    let values = keys.iter().map(|k| c.cmd(&format!("GET {k}"))).collect();
    (c.cmd("DEBUG DIGEST"), values)
}

#[test]
fn bitmaps_and_hlls_replicate_tandem_to_tandem() {
    let m = TestServer::start(&[
        "--repl-diskless-sync",
        "no",
        "--enable-debug-command",
        "yes",
    ]);
    let mut mc = m.conn();
    // Some data before the replica exists (full sync), the rest streamed.
    assert_eq!(mc.cmd("PFADD pre a b c"), R::Int(1));
    assert_eq!(mc.cmd("SETBIT prebits 77 1"), R::Int(0));
    let target = format!("127.0.0.1 {}", m.port);
    let r = TestServer::start(&["--replicaof", &target, "--enable-debug-command", "yes"]);
    let mut rc = r.conn();
    assert!(wait_until(WAIT, || rc.role_connected()), "{}", r.stdout());
    let mut rng = StdRng::seed_from_u64(0x0f1e_2d3c);
    for i in 0..400 {
        let bitkey = ["b1", "b2", "b3"][rng.gen_range(0..3)];
        let hllkey = ["h1", "h2", "h3"][rng.gen_range(0..3)];
        let line = match i % 8 {
            0 => format!(
                "SETBIT {bitkey} {} {}",
                rng.gen_range(0..2000),
                rng.gen_range(0..2)
            ),
            1 => format!(
                "BITFIELD {bitkey} OVERFLOW {} INCRBY i{} #{} {}",
                ["WRAP", "SAT", "FAIL"][rng.gen_range(0..3)],
                rng.gen_range(1..=64),
                rng.gen_range(0..20),
                rng.gen_range(-1000..1000)
            ),
            2 => format!(
                "BITOP {} b4 b1 b2 b3",
                ["AND", "OR", "XOR"][rng.gen_range(0..3)]
            ),
            3 => format!(
                "PFADD {hllkey} e{} e{}",
                rng.gen_range(0..3000),
                rng.gen_range(0..3000)
            ),
            // PFCOUNT writes the cached cardinality into the header: replicated too.
            4 => format!("PFCOUNT {hllkey}"),
            5 => format!("PFMERGE h4 {hllkey} h4"),
            6 => format!(
                "PFADD {hllkey} {}",
                (0..50)
                    .map(|_| format!("x{}", rng.gen::<u32>()))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            _ => format!(
                "BITFIELD {bitkey} SET u8 #{} {}",
                rng.gen_range(0..50),
                rng.gen_range(0..256)
            ),
        };
        let reply = mc.cmd(&line);
        assert!(!matches!(reply, R::Err(_)), "{line}: {reply:?}");
    }
    assert!(matches!(mc.cmd("PFDEBUG TODENSE h1"), R::Int(_)));
    let keys = [
        "pre", "prebits", "b1", "b2", "b3", "b4", "h1", "h2", "h3", "h4",
    ];
    let want = digest_and_values(&mut mc, &keys);
    assert!(
        want.1.iter().all(|v| matches!(v, R::Bulk(_))),
        "every key exists"
    );
    assert!(
        wait_until(WAIT, || digest_and_values(&mut rc, &keys) == want),
        "the replica's bytes differ from the master's"
    );
    // The cache written by PFCOUNT on the master reached the replica: its header
    // says "valid" (bit 7 of byte 15 clear) right after a count.
    assert_eq!(mc.cmd("PFADD h1 one-more-element"), R::Int(1));
    let count = mc.cmd("PFCOUNT h1");
    let master_h1 = bytes_of(mc.cmd("GET h1"));
    assert_eq!(master_h1[15] & 0x80, 0);
    assert!(wait_until(WAIT, || bytes_of(rc.cmd("GET h1")) == master_h1));
    assert_eq!(rc.cmd("PFCOUNT h1"), count);
}

/// PFADD, PFMERGE and a one-key PFCOUNT take the HLL for writing, so Redis leaves the
/// string `raw` even when no register changes; a copy SET from its bytes is `embstr`
/// until then.
#[test]
fn hll_writes_leave_a_raw_string_like_redis() {
    let mut p = Pair::start();
    p.same_words("PFADD src a");
    assert_eq!(p.same_words("OBJECT ENCODING src"), b("raw"));
    let R::Bulk(bytes) = p.same_words("GET src") else {
        panic!("GET src");
    };
    for key in ["c1", "c2", "c3"] {
        p.same(&[b"SET", key.as_bytes(), &bytes]);
        assert_eq!(p.same_words(&format!("OBJECT ENCODING {key}")), b("embstr"));
    }
    p.same_words("PFCOUNT c1");
    p.same_words("PFADD c2 a");
    p.same_words("PFMERGE c3");
    for key in ["c1", "c2", "c3"] {
        assert_eq!(
            p.same_words(&format!("OBJECT ENCODING {key}")),
            b("raw"),
            "{key}"
        );
    }
    p.same_words("PFMERGE fresh");
    assert_eq!(p.same_words("OBJECT ENCODING fresh"), b("raw"));
}
