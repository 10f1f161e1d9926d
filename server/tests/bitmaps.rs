//! Bitmap commands (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO)
//! side by side with Debian's redis-server 7.0.15: fixed scripts with every option
//! and error, a seeded random sequence, and hostile offsets/types that must leave
//! the data as it was.
mod common;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

impl Pair {
    /// A command given as space-separated words (binary-safe).
    fn line(&mut self, line: &[u8]) -> R {
        let parts: Vec<&[u8]> = line
            .split(|&c| c == b' ')
            .filter(|w| !w.is_empty())
            .collect();
        self.same(&parts)
    }
}

#[test]
fn bitmap_scripts_match_redis() {
    let mut p = Pair::start();
    let script: &[&[u8]] = &[
        // SETBIT / GETBIT
        b"SETBIT k 7 1",
        b"SETBIT k 7 1",
        b"SETBIT k 7 0",
        b"SETBIT k 100 1",
        b"GET k",
        b"GETBIT k 100",
        b"GETBIT k 101",
        b"GETBIT k 100000",
        b"GETBIT missing 3",
        b"SETBIT k -1 1",
        b"SETBIT k x 1",
        b"SETBIT k 4294967296 1",
        b"GETBIT k 4294967296",
        b"GETBIT k -1",
        b"SETBIT k 1 2",
        b"SETBIT k 1 -1",
        b"SETBIT k 1 x",
        b"SETBIT k 1",
        b"GETBIT k",
        b"RPUSH list a",
        b"SETBIT list 1 1",
        b"GETBIT list 1",
        // BITCOUNT
        b"SET s foobar",
        b"BITCOUNT s",
        b"BITCOUNT s 0 0",
        b"BITCOUNT s 1 1",
        b"BITCOUNT s 1 -2",
        b"BITCOUNT s -3 -1",
        b"BITCOUNT s -1 -5",
        b"BITCOUNT s -1 -5 foo",
        b"BITCOUNT s 5 30 BIT",
        b"BITCOUNT s 5 30 bit",
        b"BITCOUNT s 1 3 BYTE",
        b"BITCOUNT s -13 -2 BIT",
        b"BITCOUNT s 0 -1 BIT",
        b"BITCOUNT s 47 47 BIT",
        b"BITCOUNT s 1 3 nibble",
        b"BITCOUNT s 0",
        b"BITCOUNT s 0 1 BIT extra",
        b"BITCOUNT s x 1",
        b"BITCOUNT s 1 x",
        b"BITCOUNT s -9223372036854775808 9223372036854775807",
        b"BITCOUNT s 9223372036854775807 9223372036854775807 BIT",
        b"BITCOUNT missing",
        b"BITCOUNT missing 0",
        b"BITCOUNT missing x y z",
        b"BITCOUNT list",
        // BITPOS
        b"SET z \x00\x00\x00",
        b"SET f \xff\xf0\x00",
        b"BITPOS f 0",
        b"BITPOS f 1",
        b"BITPOS f 0 1",
        b"BITPOS f 0 2",
        b"BITPOS f 1 2",
        b"BITPOS f 0 0 0",
        b"BITPOS f 0 0 -1",
        b"BITPOS f 1 -1",
        b"BITPOS f 0 3 100 BIT",
        b"BITPOS f 1 3 100 BIT",
        b"BITPOS f 0 5 7 BIT",
        b"BITPOS f 0 5 7 bit",
        b"BITPOS f 1 9 11 BIT",
        b"BITPOS f 0 9 BIT",
        b"BITPOS f 0 0 0 BYTE",
        b"BITPOS f 0 0 0 WORD",
        b"BITPOS f 0 x",
        b"BITPOS f 0 0 x",
        b"BITPOS f 0 0 x WORD",
        b"BITPOS f 0 1 2 BIT extra",
        b"BITPOS f 2",
        b"BITPOS f -1",
        b"BITPOS f x",
        b"BITPOS z 1",
        b"BITPOS z 0",
        b"BITPOS z 1 1 -1",
        b"BITPOS missing 0",
        b"BITPOS missing 1",
        b"BITPOS missing 2",
        b"BITPOS missing 1 x",
        b"BITPOS list 0",
        b"SET e x",
        b"SETRANGE e 0 \xff",
        b"BITPOS e 0",
        b"BITPOS e 0 0 -1",
        b"BITPOS e 0 2 1",
        // BITOP
        b"SET a \x0f\xf0abc",
        b"SET b \xff",
        b"BITOP AND d a b",
        b"GET d",
        b"BITOP OR d a b missing",
        b"GET d",
        b"BITOP XOR d a b a",
        b"GET d",
        b"BITOP NOT d a",
        b"GET d",
        b"BITOP not d missing",
        b"EXISTS d",
        b"BITOP AND d missing other",
        b"BITOP NOT d a b",
        b"BITOP NAND d a b",
        b"BITOP AND d a list",
        b"BITOP AND list a",
        b"TYPE list",
        b"SET t v EX 100",
        b"BITOP OR t a",
        b"TTL t",
        b"BITOP",
        b"BITOP AND d",
        // BITFIELD
        b"BITFIELD bf SET i8 0 100 GET i8 0",
        b"BITFIELD bf INCRBY i8 0 100",
        b"BITFIELD bf OVERFLOW SAT INCRBY i8 0 100",
        b"BITFIELD bf OVERFLOW FAIL INCRBY i8 0 100",
        b"BITFIELD bf OVERFLOW WRAP INCRBY i8 0 -300",
        b"BITFIELD bf SET u8 #1 255 GET u8 #1 INCRBY u8 #1 1 OVERFLOW sat INCRBY u8 #1 -1000",
        b"BITFIELD bf GET u4 0 GET u4 4 GET i4 4 GET u1 0 GET i1 0",
        b"BITFIELD bf SET i64 64 -1 GET i64 64 GET u63 64 GET u63 65",
        b"BITFIELD bf OVERFLOW SAT INCRBY i64 64 -9223372036854775807",
        b"BITFIELD bf OVERFLOW WRAP INCRBY i64 64 -9223372036854775807",
        b"BITFIELD bf OVERFLOW FAIL INCRBY i64 64 -9223372036854775807",
        b"BITFIELD bf SET u63 0 9223372036854775807 INCRBY u63 0 1",
        b"BITFIELD bf OVERFLOW SAT SET u8 0 -1 GET u8 0",
        b"BITFIELD bf OVERFLOW SAT SET i8 0 1000 GET i8 0",
        b"BITFIELD bf OVERFLOW FAIL SET u2 0 4 SET u2 0 3",
        b"BITFIELD bf SET u5 3 31 INCRBY u5 3 2 GET u5 3",
        b"BITFIELD bf GET u8 1000 GET i16 #100",
        b"GET bf",
        b"BITFIELD bf",
        b"BITFIELD missing GET u8 0",
        b"EXISTS missing",
        b"BITFIELD newkey OVERFLOW FAIL INCRBY u8 100 300",
        b"BITFIELD bf GET i65 0",
        b"BITFIELD bf GET u64 0",
        b"BITFIELD bf GET i0 0",
        b"BITFIELD bf GET I8 0",
        b"BITFIELD bf GET 8 0",
        b"BITFIELD bf GET u8x 0",
        b"BITFIELD bf GET u8 -1",
        b"BITFIELD bf GET u8 #-1",
        b"BITFIELD bf GET u8 #",
        b"BITFIELD bf GET u8 4294967296",
        b"BITFIELD bf GET u8 #536870912",
        b"BITFIELD bf GET u8 #536870911",
        b"BITFIELD bf SET u8 #2305843009213693952 1",
        b"BITFIELD bf SET u8 0 x",
        b"BITFIELD bf SET u8 0",
        b"BITFIELD bf GET u8",
        b"BITFIELD bf INCRBY u8 0",
        b"BITFIELD bf OVERFLOW",
        b"BITFIELD bf OVERFLOW FOO GET u8 0",
        b"BITFIELD bf FOO u8 0",
        b"BITFIELD bf GET u8 0 SET u8 0",
        b"BITFIELD list GET u8 0",
        b"BITFIELD list SET u8 0 1",
        b"GET bf",
        // BITFIELD_RO
        b"BITFIELD_RO bf GET u8 0 GET i8 #1",
        b"BITFIELD_RO bf SET u8 0 1",
        b"BITFIELD_RO bf GET u8 0 INCRBY u8 0 1",
        b"BITFIELD_RO bf INCRBY u8 0 x",
        b"BITFIELD_RO missing GET u8 0",
        b"BITFIELD_RO list GET u8 0",
        b"BITFIELD_RO bf OVERFLOW SAT",
        b"GET bf",
    ];
    for line in script {
        p.line(line);
    }
    // Binary-safe values given as exact bytes.
    p.same(&[b"SET", b"bin", b"\x00\x01\x80\xff\x7f"]);
    for args in [
        &[&b"BITCOUNT"[..], b"bin"][..],
        &[b"BITPOS", b"bin", b"1"],
        &[b"BITPOS", b"bin", b"1", b"1"],
        &[b"BITPOS", b"bin", b"0", b"3"],
        &[b"BITFIELD", b"bin", b"GET", b"i\x008", b"0"],
        &[b"BITOP", b"XOR", b"bin2", b"bin", b"a"],
        &[b"GET", b"bin2"],
    ] {
        p.same(args);
    }
}

/// One random bitmap command over a small key space.
fn random_op(rng: &mut StdRng) -> Vec<Vec<u8>> {
    const KEYS: [&str; 4] = ["a", "b", "c", "d"];
    let key = |rng: &mut StdRng| KEYS[rng.gen_range(0..KEYS.len())].as_bytes().to_vec();
    let s = |v: i64| v.to_string().into_bytes();
    let offset = |rng: &mut StdRng| -> i64 {
        if rng.gen_bool(0.9) {
            rng.gen_range(0..256)
        } else {
            rng.gen_range(0..4096)
        }
    };
    let index = |rng: &mut StdRng| -> i64 { rng.gen_range(-40..40) };
    let unit = |rng: &mut StdRng| -> Option<Vec<u8>> {
        match rng.gen_range(0..3) {
            0 => None,
            1 => Some(b"BIT".to_vec()),
            _ => Some(b"BYTE".to_vec()),
        }
    };
    let mut cmd: Vec<Vec<u8>> = Vec::new();
    match rng.gen_range(0..100) {
        0..=24 => {
            cmd.extend([b"SETBIT".to_vec(), key(rng), s(offset(rng))]);
            cmd.push(s(rng.gen_range(0..2)));
        }
        25..=34 => cmd.extend([b"GETBIT".to_vec(), key(rng), s(offset(rng))]),
        35..=47 => {
            cmd.extend([b"BITCOUNT".to_vec(), key(rng)]);
            if rng.gen_bool(0.7) {
                cmd.extend([s(index(rng)), s(index(rng))]);
                cmd.extend(unit(rng));
            }
        }
        48..=62 => {
            cmd.extend([b"BITPOS".to_vec(), key(rng), s(rng.gen_range(0..2))]);
            let n = rng.gen_range(0..4);
            if n >= 1 {
                cmd.push(s(index(rng)));
            }
            if n >= 2 {
                cmd.push(s(index(rng)));
            }
            if n == 3 {
                cmd.extend(unit(rng));
            }
        }
        63..=72 => {
            let op = ["AND", "OR", "XOR", "NOT"][rng.gen_range(0..4)];
            cmd.extend([b"BITOP".to_vec(), op.as_bytes().to_vec(), key(rng)]);
            let n = if op == "NOT" { 1 } else { rng.gen_range(1..4) };
            for _ in 0..n {
                cmd.push(key(rng));
            }
        }
        73..=94 => {
            let ro = rng.gen_bool(0.2);
            cmd.push(if ro {
                b"BITFIELD_RO".to_vec()
            } else {
                b"BITFIELD".to_vec()
            });
            cmd.push(key(rng));
            for _ in 0..rng.gen_range(1..4) {
                if rng.gen_bool(0.2) {
                    let ow = ["WRAP", "SAT", "FAIL"][rng.gen_range(0..3)];
                    cmd.extend([b"OVERFLOW".to_vec(), ow.as_bytes().to_vec()]);
                }
                let signed = rng.gen_bool(0.5);
                let bits: i64 = if signed {
                    rng.gen_range(1..=64)
                } else {
                    rng.gen_range(1..=63)
                };
                let ty = format!("{}{bits}", if signed { 'i' } else { 'u' }).into_bytes();
                let off = if rng.gen_bool(0.2) {
                    format!("#{}", rng.gen_range(0..8)).into_bytes()
                } else {
                    s(offset(rng))
                };
                let value: i64 = match rng.gen_range(0..4) {
                    0 => rng.gen(),
                    1 => rng.gen_range(-300..300),
                    2 => [i64::MIN, i64::MAX, -1, 0][rng.gen_range(0..4)],
                    _ => 1i64
                        .checked_shl(bits as u32)
                        .unwrap_or(0)
                        .wrapping_add(rng.gen_range(-2..2)),
                };
                match rng.gen_range(0..3) {
                    0 => cmd.extend([b"GET".to_vec(), ty, off]),
                    1 => cmd.extend([b"SET".to_vec(), ty, off, s(value)]),
                    _ => cmd.extend([b"INCRBY".to_vec(), ty, off, s(value)]),
                }
            }
        }
        95..=97 => {
            let len = rng.gen_range(0..12);
            let v: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            cmd.extend([b"SET".to_vec(), key(rng), v]);
        }
        _ => cmd.extend([b"DEL".to_vec(), key(rng)]),
    }
    cmd
}

#[test]
fn seeded_random_bitmap_ops_match_redis() {
    let mut p = Pair::start();
    let mut rng = StdRng::seed_from_u64(0x5eed_b175);
    for _ in 0..2000 {
        let cmd = random_op(&mut rng);
        let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
        p.same(&args);
    }
    for k in ["a", "b", "c", "d"] {
        p.line(format!("GET {k}").as_bytes());
        p.line(format!("BITCOUNT {k}").as_bytes());
    }
}

#[test]
fn hostile_offsets_and_types_answer_errors_and_change_nothing() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET k abc"), R::ok());
    let offset_err = err("ERR bit offset is not an integer or out of range");
    let type_err = err(
        "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
    );
    for (line, want) in [
        ("SETBIT k -1 1", offset_err.clone()),
        ("SETBIT k 4294967296 1", offset_err.clone()),
        ("SETBIT k 99999999999999999999 1", offset_err.clone()),
        ("SETBIT k 9223372036854775807 1", offset_err.clone()),
        ("GETBIT k -9223372036854775808", offset_err.clone()),
        (
            "SETBIT k 0 -1",
            err("ERR bit is not an integer or out of range"),
        ),
        ("BITFIELD k SET u8 #-1 1", offset_err.clone()),
        // #n times the width wraps around in Redis's arithmetic; still refused.
        (
            "BITFIELD k SET i64 #144115188075855872 1",
            offset_err.clone(),
        ),
        ("BITFIELD k INCRBY u64 0 1", type_err.clone()),
        ("BITFIELD k INCRBY i65 0 1", type_err.clone()),
        ("BITFIELD k INCRBY i-8 0 1", type_err.clone()),
        ("BITFIELD k INCRBY x8 0 1", type_err),
        (
            "BITFIELD k OVERFLOW BOOM INCRBY u8 0 1",
            err("ERR Invalid OVERFLOW type specified"),
        ),
        ("BITFIELD k SET u8 0 1 SET u8", err("ERR syntax error")),
        (
            "BITFIELD k SET u8 0 99999999999999999999",
            err("ERR value is not an integer or out of range"),
        ),
    ] {
        assert_eq!(c.cmd(line), want, "{line}");
    }
    // Every command was refused before writing: the value and the key count stand.
    assert_eq!(c.cmd("GET k"), R::bulk("abc"));
    assert_eq!(c.cmd("DBSIZE"), R::Int(1));
    // The largest allowed offset works under a small proto-max-bulk-len.
    assert_eq!(c.cmd("CONFIG SET proto-max-bulk-len 1mb"), R::ok());
    assert_eq!(c.cmd("SETBIT big 8388608 1"), offset_err);
    assert_eq!(c.cmd("SETBIT big 8388607 1"), R::Int(0));
    assert_eq!(c.cmd("STRLEN big"), R::Int(1 << 20));
    assert_eq!(
        c.cmd("BITFIELD big GET u8 8388600 GET u8 8388608"),
        offset_err
    );
    assert_eq!(c.cmd("BITPOS big 1"), R::Int(8388607));
    assert_eq!(c.cmd("BITCOUNT big"), R::Int(1));
    assert_eq!(c.cmd("PING"), R::Simple("PONG".into()));
}

#[test]
fn bitmap_writes_count_keyspace_hits_only_for_reads() {
    let s = TestServer::start(&[]);
    let mut c = s.conn();
    let stats = |c: &mut Conn| -> (i64, i64) {
        let R::Bulk(info) = c.cmd("INFO stats") else {
            panic!("INFO is a bulk");
        };
        let info = String::from_utf8_lossy(&info).into_owned();
        let field = |name: &str| -> i64 {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .and_then(|v| v.trim().parse().ok())
                .expect("stat present")
        };
        (field("keyspace_hits"), field("keyspace_misses"))
    };
    let (h0, m0) = stats(&mut c);
    assert_eq!(c.cmd("SETBIT k 1 1"), R::Int(0));
    assert_eq!(c.cmd("BITFIELD k SET u8 0 1"), arr_ints(&[64]));
    assert_eq!(
        stats(&mut c),
        (h0, m0),
        "writes look keys up without counting"
    );
    assert_eq!(c.cmd("GETBIT k 1"), R::Int(0));
    assert_eq!(c.cmd("BITCOUNT nokey"), R::Int(0));
    assert_eq!(stats(&mut c), (h0 + 1, m0 + 1));
}

fn arr_ints(v: &[i64]) -> R {
    R::Arr(v.iter().map(|&i| R::Int(i)).collect())
}

/// A bit write leaves the string `raw` in Redis even when no bit changes (found by
/// comparing OBJECT ENCODING after SETBIT and BITFIELD with Redis 7.0.15).
#[test]
fn bit_writes_leave_a_raw_string_even_when_nothing_changes() {
    let mut p = Pair::start();
    for (key, write) in [
        ("a", "SETBIT a 0 0"),
        ("c", "BITFIELD c SET u8 0 49"),
        ("f", "BITFIELD f INCRBY u8 0 0"),
        ("d", "BITFIELD d GET u8 0"),
    ] {
        p.same_words(&format!("SET {key} 12"));
        p.same_words(write);
        let want = if key == "d" { "int" } else { "raw" };
        assert_eq!(
            p.same_words(&format!("OBJECT ENCODING {key}")),
            b(want),
            "{write}"
        );
    }
    p.same_words("SETBIT fresh 3 1");
    assert_eq!(p.same_words("OBJECT ENCODING fresh"), b("raw"));
}
