//! Script effects on replicas: a Tandem master feeding a Tandem replica and a real
//! Redis 7.0.15 replica, and a Tandem replica of a Redis master running scripts.
//! After the scripts, DEBUG DIGEST (the dataset's digest) is the same everywhere.
mod common;
use common::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Scripts that write in the ways effects replication must carry: several writes
/// (MULTI/EXEC), SELECT inside the script, an error after some writes, pcall,
/// random values, TTLs, reads only.
const SCRIPTS: &[(&str, &[&str])] = &[
    ("return redis.call('set', KEYS[1], ARGV[1])", &["1", "a", "va"]),
    (
        "redis.call('set', KEYS[1], 'x') redis.call('rpush', KEYS[2], 1, 2, 3) return redis.call('incrby', KEYS[3], 7)",
        &["3", "s", "l", "n"],
    ),
    (
        "redis.call('select', 3) redis.call('set', 'in3', 'v') redis.call('select', 0) return redis.call('set', 'back0', 'v')",
        &["0"],
    ),
    (
        "redis.call('hset', 'h', 'f1', 'v1', 'f2', 'v2') return redis.call('nosuch')",
        &["0"],
    ),
    (
        "redis.call('sadd', 'set', 'a', 'b') local r = redis.pcall('incr', 'set') redis.call('sadd', 'set', 'c') return r",
        &["0"],
    ),
    (
        "local t = {} for i = 1, 5 do t[i] = math.random(1000000) end redis.call('rpush', 'rand', unpack(t)) return t",
        &["0"],
    ),
    (
        "redis.call('set', 'ttl', 'v', 'px', 100000) return redis.call('zadd', 'z', 1.5, 'm', 2, 'n')",
        &["0"],
    ),
    ("return redis.call('get', 'a')", &["0"]),
    (
        "for i = 1, 50 do redis.call('incr', 'loop') end return redis.call('get', 'loop')",
        &["0"],
    ),
];

fn run_scripts(c: &mut Conn) {
    for (src, rest) in SCRIPTS {
        let mut args: Vec<&[u8]> = vec![b"EVAL", src.as_bytes()];
        args.extend(rest.iter().map(|a| a.as_bytes()));
        c.cmd_args(&args);
    }
    // EVALSHA and a script inside MULTI/EXEC.
    let R::Bulk(sha) = c.cmd_args(&[b"SCRIPT", b"LOAD", b"return redis.call('incr', KEYS[1])"])
    else {
        panic!("SCRIPT LOAD")
    };
    c.cmd_args(&[b"EVALSHA", &sha, b"1", b"bysha"]);
    assert_eq!(c.cmd("MULTI"), R::ok());
    c.cmd_args(&[b"EVALSHA", &sha, b"1", b"bysha"]);
    c.cmd_args(&[
        b"EVAL",
        b"redis.call('set','m1','1') return redis.call('set','m2','2')",
        b"0",
    ]);
    c.cmd("SET plain x");
    assert!(matches!(c.cmd("EXEC"), R::Arr(v) if v.len() == 3));
}

fn digest(c: &mut Conn) -> R {
    c.cmd("DEBUG DIGEST")
}

#[test]
fn tandem_and_redis_replicas_of_a_tandem_master_hold_the_same_data_after_scripts() {
    let m = TestServer::start(&[
        "--repl-diskless-sync-delay",
        "0",
        "--enable-debug-command",
        "yes",
    ]);
    let mut mc = m.conn();
    let port = m.port.to_string();
    let t = TestServer::start(&[
        "--replicaof",
        "127.0.0.1",
        &port,
        "--enable-debug-command",
        "yes",
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let r = RealRedis::start(dir.path(), "dump.rdb", &["--replicaof", "127.0.0.1", &port]);
    let (mut tc, mut rc) = (t.conn(), r.conn());
    assert!(wait_until(WAIT, || tc.role_connected() && rc.role_connected()));
    run_scripts(&mut mc);
    let target = mc.role_offset().expect("master offset");
    assert!(
        wait_until(WAIT, || tc.role_offset() == Some(target)
            && rc.role_offset() == Some(target)),
        "replicas did not reach offset {target}"
    );
    let d = digest(&mut mc);
    assert!(matches!(&d, R::Simple(s) if s != &"0".repeat(40)), "{d:?}");
    assert_eq!(digest(&mut tc), d, "tandem replica differs");
    assert_eq!(digest(&mut rc), d, "redis replica differs");
    // A few values checked directly, so a digest bug cannot hide a difference.
    for c in [&mut mc, &mut tc, &mut rc] {
        assert_eq!(c.cmd("GET loop"), b("50"));
        assert_eq!(c.cmd("GET bysha"), b("2"));
        assert_eq!(c.cmd("HGET h f2"), b("v2"));
        assert_eq!(c.cmd("SCARD set"), R::Int(3));
        assert_eq!(c.cmd("SELECT 3"), R::ok());
        assert_eq!(c.cmd("GET in3"), b("v"));
        assert_eq!(c.cmd("SELECT 0"), R::ok());
    }
}

#[test]
fn a_tandem_replica_of_a_redis_master_follows_its_scripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = RealRedis::start(dir.path(), "dump.rdb", &["--repl-diskless-sync-delay", "0"]);
    let mut rc = r.conn();
    let t = TestServer::start(&[
        "--replicaof",
        "127.0.0.1",
        &r.port.to_string(),
        "--enable-debug-command",
        "yes",
    ]);
    let mut tc = t.conn();
    assert!(wait_until(WAIT, || tc.role_connected()));
    run_scripts(&mut rc);
    let target = rc.role_offset().expect("master offset");
    assert!(
        wait_until(WAIT, || tc.role_offset() == Some(target)),
        "tandem replica did not reach offset {target}"
    );
    assert_eq!(digest(&mut tc), digest(&mut rc));
    assert_eq!(tc.cmd("GET loop"), b("50"));
    // A replica refuses a script's writes but runs its reads.
    assert_eq!(
        tc.cmd_args(&[b"EVAL", b"return redis.call('get','a')", b"0"]),
        b("va")
    );
    let r = tc.cmd_args(&[b"EVAL", b"return redis.call('set','a','b')", b"0"]);
    assert!(
        matches!(&r, R::Err(e) if e.starts_with("READONLY You can't write against a read only replica.")),
        "{r:?}"
    );
    assert_eq!(
        tc.cmd_args(&[b"EVAL", b"#!lua\nreturn 1", b"0"]),
        err("READONLY You can't write against a read only replica.")
    );
    assert_eq!(
        tc.cmd_args(&[b"EVAL", b"#!lua flags=no-writes\nreturn 1", b"0"]),
        R::Int(1)
    );
}

/// Scripts that send writes to the AOF only, to replicas only, to both or to
/// neither (`redis.set_repl`), alone and mixed in one script.
const SET_REPL_SCRIPTS: &[&str] = &[
    "redis.set_repl(redis.REPL_AOF) return redis.call('set', 'aof1', '1')",
    "redis.set_repl(redis.REPL_REPLICA) return redis.call('set', 'rep1', '1')",
    "redis.set_repl(redis.REPL_SLAVE) return redis.call('set', 'slave1', '1')",
    "redis.set_repl(redis.REPL_NONE) return redis.call('set', 'none1', '1')",
    "redis.set_repl(redis.REPL_AOF) redis.call('set', 'aof2', '1') \
     redis.set_repl(redis.REPL_REPLICA) redis.call('set', 'rep2', '1') \
     redis.set_repl(redis.REPL_ALL) redis.call('set', 'all2', '1') \
     redis.set_repl(redis.REPL_NONE) return redis.call('set', 'none2', '1')",
    "redis.set_repl(redis.REPL_AOF) redis.call('set', 'aof3', '1') return redis.call('set', 'aof4', '1')",
    "redis.set_repl(redis.REPL_REPLICA) redis.call('incr', 'rep3') redis.set_repl(redis.REPL_NONE) return redis.call('incr', 'rep3')",
];

const SET_REPL_KEYS: &[&str] = &[
    "aof1", "rep1", "slave1", "none1", "aof2", "rep2", "all2", "none2", "aof3", "aof4", "rep3",
];

/// The commands of an AOF file's RESP arrays (arguments lowercased when they are
/// command names, so `set`/`SET` compare equal).
fn aof_commands(path: &std::path::Path) -> Vec<Vec<String>> {
    let data = std::fs::read(path).expect("aof file");
    let text = String::from_utf8_lossy(&data);
    let mut lines = text.split("\r\n");
    let mut cmds = Vec::new();
    while let Some(l) = lines.next() {
        let Some(n) = l.strip_prefix('*') else {
            continue;
        };
        let n: usize = n.parse().expect("array length");
        let mut argv: Vec<String> = (0..n)
            .map(|_| {
                lines.next();
                lines.next().unwrap_or_default().to_string()
            })
            .collect();
        argv[0] = argv[0].to_ascii_lowercase();
        cmds.push(argv);
    }
    cmds
}

/// Runs the set_repl scripts on a master with an AOF and a replica; returns what the
/// AOF holds after the startup base and which keys the replica has.
fn set_repl_effects(
    master: &mut Conn,
    replica: &mut Conn,
    aof_dir: &std::path::Path,
) -> (Vec<Vec<String>>, Vec<String>) {
    assert!(wait_until(WAIT, || replica.role_connected()));
    for src in SET_REPL_SCRIPTS {
        assert!(
            !matches!(master.cmd_args(&[b"EVAL", src.as_bytes(), b"0"]), R::Err(_)),
            "{src}"
        );
    }
    let target = master.role_offset().expect("master offset");
    assert!(
        wait_until(WAIT, || replica.role_offset() == Some(target)),
        "replica did not reach {target}"
    );
    let on_replica = SET_REPL_KEYS
        .iter()
        .filter(|k| replica.cmd(&format!("EXISTS {k}")) == R::Int(1))
        .map(|k| k.to_string())
        .collect();
    let incr = aof_dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    (aof_commands(&incr), on_replica)
}

#[test]
fn set_repl_sends_script_writes_to_the_aof_only_or_to_replicas_only_as_redis_does() {
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    let mut args = vec!["--repl-diskless-sync-delay", "0"];
    args.extend_from_slice(&aof);
    let m = TestServer::start(&args);
    let t = TestServer::start(&["--replicaof", "127.0.0.1", &m.port.to_string()]);
    let ours = set_repl_effects(&mut m.conn(), &mut t.conn(), m.dir.path());

    let dir = tempfile::tempdir().expect("tempdir");
    let rm = RealRedis::start(dir.path(), "dump.rdb", &args);
    let rdir = tempfile::tempdir().expect("tempdir");
    let rr = RealRedis::start(
        rdir.path(),
        "dump.rdb",
        &["--replicaof", "127.0.0.1", &rm.port.to_string()],
    );
    let theirs = set_repl_effects(&mut rm.conn(), &mut rr.conn(), dir.path());

    assert_eq!(
        ours.1, theirs.1,
        "keys on the replica differ from Redis 7.0.15"
    );
    assert_eq!(ours.0, theirs.0, "AOF differs from Redis 7.0.15");
    // What the comparison must have seen, so it cannot pass on two empty sides.
    assert_eq!(ours.1, ["rep1", "slave1", "rep2", "all2", "rep3"]);
    let aof_keys: Vec<&str> = ours
        .0
        .iter()
        .filter(|c| c[0] == "set")
        .map(|c| c[1].as_str())
        .collect();
    assert_eq!(aof_keys, ["aof1", "aof2", "all2", "aof3", "aof4"]);
}
