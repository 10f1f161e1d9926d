//! Differential tests: the same command scripts run against tandem-server and the
//! real redis-server 7.0.15 (installed by `.ci/run`) must get byte-identical replies,
//! error texts included. Only deterministic replies are compared (no RANDOMKEY over
//! several keys, no SCAN order, no idle times).
mod common;
use common::*;
use std::time::Duration;

/// The real redis-server 7.0.15 on a free loopback port, killed on drop.
struct RealRedis {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl RealRedis {
    fn start() -> RealRedis {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = free_port();
            let mut child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--dir", dir.path().to_str().expect("utf8")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("redis-server (Debian package redis-server) must be installed");
            let up = wait_until(Duration::from_secs(5), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            if up {
                return RealRedis {
                    port,
                    child,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start");
    }
}

impl Drop for RealRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replays one script against tandem-server and the real Redis 7.0.15 and requires
/// byte-identical replies (errors included).
fn assert_same_replies_as_redis(script: &[&[&[u8]]]) {
    let ours = TestServer::start(&[]);
    let theirs = RealRedis::start();
    let mut a = ours.conn();
    let mut b = Conn::connect(theirs.port);
    for cmd in script {
        let ra = a.cmd_args(cmd);
        let rb = b.cmd_args(cmd);
        let shown: Vec<String> = cmd
            .iter()
            .map(|x| String::from_utf8_lossy(x).into_owned())
            .collect();
        assert_eq!(ra, rb, "reply to {shown:?} differs from Redis 7.0.15");
    }
}

#[test]
fn string_replies_match_real_redis() {
    let script: &[&[&[u8]]] = &[
        &[b"SET", b"k", b"v", b"NX", b"GET"],
        &[b"SET", b"k", b"w", b"NX", b"GET"],
        &[b"SET", b"k", b"w", b"XX", b"GET", b"GET"],
        &[b"SET", b"k", b"v", b"EX", b"10", b"PX", b"5"],
        &[b"SET", b"k", b"v", b"PX", b"5", b"PX"],
        &[b"SET", b"k", b"v", b"PXAT", b"0"],
        &[b"SET", b"k", b"v", b"EXAT", b"9223372036854775807"],
        &[b"SET", b"k", b"v", b"KEEPTTL", b"KEEPTTL"],
        &[b"SET", b"k", b"v", b"KEEPTTL", b"PERSIST"],
        &[b"SET", b"k"],
        &[b"SET", b"k", b"v", b"EX", b"100"],
        &[b"TTL", b"k"],
        &[b"SETEX", b"k", b"-5", b"v"],
        &[b"PSETEX", b"k", b"x", b"v"],
        &[b"SETNX", b"k", b"v"],
        &[b"SETNX", b"n", b""],
        &[b"GET", b"n"],
        &[b"GETEX", b"k", b"PERSIST"],
        &[b"TTL", b"k"],
        &[b"GETEX", b"k", b"EXAT", b"-1"],
        &[b"GETEX", b"k", b"PX", b"10", b"EX", b"10"],
        &[b"GETEX", b"k", b"GET"],
        &[b"GETEX"],
        &[b"GETDEL", b"k"],
        &[b"GETDEL", b"k"],
        &[b"GETSET", b"k", b"1"],
        &[b"GETSET", b"k", b"2"],
        &[b"MSET", b"a", b"1", b"b"],
        &[b"MSET", b"a", b"1", b"b", b"\x00\r\n"],
        &[b"MGET", b"a", b"b", b"x"],
        &[b"MSETNX", b"a", b"1", b"c", b"2"],
        &[b"MSETNX", b"c", b"1", b"d", b"2"],
        &[b"INCR", b"a"],
        &[b"INCR", b"b"],
        &[b"INCRBY", b"a", b"-9223372036854775808"],
        &[b"INCRBY", b"a", b"-9223372036854775808"],
        &[b"DECRBY", b"a", b"9223372036854775807"],
        &[b"DECRBY", b"a", b"1"],
        &[b"DECR", b"a"],
        &[b"INCRBY", b"a", b" 1"],
        &[b"INCRBYFLOAT", b"f", b"10.5"],
        &[b"INCRBYFLOAT", b"f", b"0.1"],
        &[b"INCRBYFLOAT", b"f", b"-10.6"],
        &[b"INCRBYFLOAT", b"f", b"3e2"],
        &[b"INCRBYFLOAT", b"f", b"0.0011"],
        &[b"INCRBYFLOAT", b"f", b"-0.0000000000000000001"],
        &[b"INCRBYFLOAT", b"f", b"123456789.123456789"],
        &[b"INCRBYFLOAT", b"f", b"-1e5"],
        &[b"INCRBYFLOAT", b"f", b"-inf"],
        &[b"INCRBYFLOAT", b"f", b""],
        &[b"INCRBYFLOAT", b"f", b"1 "],
        &[b"APPEND", b"s", b"abc"],
        &[b"APPEND", b"s", b"\x00\r\n"],
        &[b"STRLEN", b"s"],
        &[b"GETRANGE", b"s", b"1", b"-2"],
        &[b"GETRANGE", b"s", b"-2", b"-3"],
        &[b"GETRANGE", b"s", b"-100", b"-100"],
        &[b"GETRANGE", b"s", b"0", b"0"],
        &[b"SUBSTR", b"s", b"2", b"100"],
        &[b"GETRANGE", b"s", b"0", b"1.5"],
        &[b"SETRANGE", b"s", b"10", b"Z"],
        &[b"GET", b"s"],
        &[b"SETRANGE", b"s", b"1", b""],
        &[b"SETRANGE", b"new", b"0", b""],
        &[b"EXISTS", b"new"],
        &[b"SETRANGE", b"s", b"-5", b"x"],
        &[b"SETRANGE", b"s", b"536870912", b"x"],
        &[b"OBJECT", b"ENCODING", b"a"],
        &[b"OBJECT", b"REFCOUNT", b"c"],
        &[b"OBJECT", b"ENCODING", b"b"],
        &[b"TYPE", b"s"],
        &[b"MSET", b"l1", b"ohmytext", b"l2", b"mynewtext"],
        &[b"LCS", b"l1", b"l2"],
        &[b"LCS", b"l1", b"l2", b"LEN"],
        &[b"LCS", b"l1", b"l2", b"IDX"],
        &[b"LCS", b"l1", b"l2", b"IDX", b"MINMATCHLEN", b"4"],
        &[
            b"LCS",
            b"l1",
            b"l2",
            b"IDX",
            b"MINMATCHLEN",
            b"-1",
            b"WITHMATCHLEN",
        ],
        &[b"LCS", b"l1", b"l2", b"IDX", b"LEN"],
        &[b"LCS", b"l1", b"l2", b"FOO"],
        &[b"LCS", b"l1", b"l2", b"MINMATCHLEN"],
        &[b"LCS", b"l1", b"nokey"],
        &[b"LCS", b"nokey", b"nokey2", b"IDX"],
        &[
            b"MSET",
            b"x1",
            b"abcab\x00\r\nxyz",
            b"x2",
            b"\x00ab\nzyxcab",
        ],
        &[b"LCS", b"x1", b"x2", b"IDX", b"WITHMATCHLEN"],
        &[b"LCS", b"x2", b"x1"],
    ];
    assert_same_replies_as_redis(script);
}

#[test]
fn keyspace_replies_match_real_redis() {
    let script: &[&[&[u8]]] = &[
        &[b"MSET", b"a", b"1", b"b", b"2", b"c", b"3"],
        &[b"EXISTS", b"a", b"b", b"zz", b"a"],
        &[b"DEL", b"zz", b"c"],
        &[b"UNLINK"],
        &[b"EXPIRE", b"a", b"100", b"XX"],
        &[b"EXPIRE", b"a", b"100", b"NX"],
        &[b"TTL", b"a"],
        &[b"EXPIRE", b"a", b"50", b"GT"],
        &[b"EXPIRE", b"a", b"500", b"GT"],
        &[b"PEXPIRE", b"a", b"5000", b"LT"],
        &[b"TTL", b"a"],
        &[b"EXPIRE", b"a", b"5", b"nx", b"xx"],
        &[b"EXPIRE", b"a", b"5", b"gt", b"lt"],
        &[b"EXPIRE", b"a", b"5", b"xx", b"gt", b"bogus"],
        &[b"EXPIRE", b"a", b"1.5"],
        &[b"EXPIRE", b"a", b"-9223372036854775808"],
        &[b"PEXPIREAT", b"a", b"9223372036854775807"],
        &[b"EXPIRETIME", b"a"],
        &[b"PEXPIRETIME", b"b"],
        &[b"EXPIRETIME", b"zz"],
        &[b"PERSIST", b"a"],
        &[b"PERSIST", b"a"],
        &[b"PTTL", b"a"],
        &[b"EXPIRE", b"b", b"0"],
        &[b"EXISTS", b"b"],
        &[b"TYPE", b"a"],
        &[b"TYPE", b"zz"],
        &[b"RENAME", b"zz", b"a"],
        &[b"RENAME", b"a", b"a"],
        &[b"RENAMENX", b"a", b"a"],
        &[b"SET", b"b", b"x"],
        &[b"RENAMENX", b"a", b"b"],
        &[b"RENAME", b"a", b"b"],
        &[b"GET", b"b"],
        &[b"KEYS", b"b"],
        &[b"KEYS", b"[a-c]"],
        &[b"KEYS"],
        &[b"SCAN", b"0", b"COUNT", b"-1"],
        &[b"SCAN", b"0", b"MATCH", b"b", b"COUNT", b"100"],
        &[b"SCAN", b"0", b"TYPE", b"list", b"COUNT", b"100"],
        &[b"SCAN", b"x1"],
        &[b"SCAN", b"0", b"COUNT"],
        &[b"DBSIZE"],
        &[b"DBSIZE", b"x"],
        &[b"RANDOMKEY"],
        &[b"MOVE", b"b", b"3"],
        &[b"MOVE", b"b", b"3"],
        &[b"MOVE", b"b", b"2147483648"],
        &[b"MOVE", b"b", b"16"],
        &[b"SWAPDB", b"0", b"3"],
        &[b"GET", b"b"],
        &[b"SWAPDB", b"0", b"3"],
        &[b"SWAPDB", b"0", b"2147483648"],
        &[b"SWAPDB", b"0"],
        &[b"SET", b"s", b"v"],
        &[b"COPY", b"s", b"t"],
        &[b"COPY", b"s", b"t"],
        &[b"COPY", b"s", b"t", b"REPLACE", b"DB", b"0"],
        &[b"COPY", b"s", b"s", b"DB", b"0"],
        &[b"COPY", b"s", b"s", b"DB", b"1"],
        &[b"COPY", b"zz", b"t"],
        &[b"COPY", b"s", b"t", b"DB", b"-1"],
        &[b"COPY", b"s", b"t", b"DB", b"2147483648"],
        &[b"COPY", b"s", b"t", b"REPLACE", b"REPLACE", b"X"],
        &[b"TOUCH", b"s", b"t", b"zz"],
        &[b"OBJECT", b"ENCODING", b"s"],
        &[b"OBJECT", b"encoding", b"zz"],
        &[b"OBJECT", b"REFCOUNT", b"s"],
        &[b"OBJECT", b"FREQ", b"s"],
        &[b"OBJECT", b"FREQ", b"zz"],
        &[b"OBJECT", b"HELP", b"x"],
        &[b"OBJECT", b"NOPE", b"s"],
        &[b"OBJECT", b"ENCODING", b"s", b"x"],
        &[b"FLUSHDB", b"SYNC", b"x"],
        &[b"FLUSHDB", b"bogus"],
        &[b"FLUSHDB", b"SYNC"],
        &[b"DBSIZE"],
        &[b"FLUSHALL", b"ASYNC"],
        &[b"SWAPDB", b"0", b"1"],
        &[b"DBSIZE"],
    ];
    assert_same_replies_as_redis(script);
}

/// String values change shape with size (inline, one exact heap block, shared above
/// 4 KiB) and with in-place edits (a growable buffer): a seeded random mix of whole
/// writes and edits across those sizes must read back, and report OBJECT ENCODING,
/// exactly as Redis 7.0.15 does.
#[test]
fn string_shapes_and_in_place_edits_match_real_redis() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    const SIZES: [usize; 12] = [0, 1, 13, 14, 15, 20, 44, 45, 100, 4096, 4097, 5000];
    let keys: [&[u8]; 3] = [b"s1", b"s2", b"s3"];
    let mut script: Vec<Vec<Vec<u8>>> = Vec::new();
    for step in 0..400u64 {
        let key = keys[next(3) as usize].to_vec();
        let size = SIZES[next(SIZES.len() as u64) as usize];
        let fill = vec![b'a' + (step % 26) as u8; size];
        let cmd: Vec<Vec<u8>> = match next(10) {
            0 => vec![b"SET".to_vec(), key.clone(), fill],
            1 => vec![
                b"SET".to_vec(),
                key.clone(),
                (step * 7919).to_string().into(),
            ],
            2 => vec![b"APPEND".to_vec(), key.clone(), fill],
            3 => vec![
                b"SETRANGE".to_vec(),
                key.clone(),
                next(6000).to_string().into(),
                fill,
            ],
            4 => vec![
                b"SETBIT".to_vec(),
                key.clone(),
                next(50_000).to_string().into(),
                b"1".to_vec(),
            ],
            5 => vec![b"INCR".to_vec(), key.clone()],
            6 => vec![
                b"GETRANGE".to_vec(),
                key.clone(),
                (next(6000) as i64 - 3000).to_string().into(),
                (next(6000) as i64 - 1000).to_string().into(),
            ],
            7 => vec![
                b"COPY".to_vec(),
                key.clone(),
                b"copy".to_vec(),
                b"REPLACE".to_vec(),
            ],
            _ => vec![b"STRLEN".to_vec(), key.clone()],
        };
        script.push(cmd);
        script.push(vec![b"GET".to_vec(), key.clone()]);
        script.push(vec![b"OBJECT".to_vec(), b"ENCODING".to_vec(), key]);
    }
    // Appending in a loop: every step answers the new length.
    for i in 0..3000 {
        script.push(vec![
            b"APPEND".to_vec(),
            b"grow".to_vec(),
            format!("{i:03}").into(),
        ]);
    }
    script.push(vec![
        b"GETRANGE".to_vec(),
        b"grow".to_vec(),
        b"-20".to_vec(),
        b"-1".to_vec(),
    ]);
    script.push(vec![b"GET".to_vec(), b"copy".to_vec()]);
    let refs: Vec<Vec<&[u8]>> = script
        .iter()
        .map(|c| c.iter().map(|a| &a[..]).collect())
        .collect();
    let refs: Vec<&[&[u8]]> = refs.iter().map(|c| &c[..]).collect();
    assert_same_replies_as_redis(&refs);
}
