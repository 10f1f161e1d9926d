//! Configuration parity with Redis 7.0.15 (issue 17 item 11): the same `CONFIG GET *`
//! names, `CONFIG SET` accepted for the same parameters, and docs/config.md (which
//! directives Tandem acts on and why the others are only accepted) kept true.
//! Regenerate the doc with `TANDEM_REGENERATE=1 cargo nextest run -p tandem-server
//! --test config_parity`.

mod common;

use common::{RealRedis, TestServer, R};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tandem_server::config::table;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/config.md");

/// Redis's hidden debugging directives: not in `CONFIG GET *`, answered by exact name.
const HIDDEN: &[&str] = &[
    "key-load-delay",
    "loading-process-events-interval-bytes",
    "rdb-key-save-delay",
    "use-exit-on-panic",
    "watchdog-period",
];

/// `CONFIG SET` answers Tandem gives on purpose where Redis differs (name, why).
const INTENDED_DIFFERENCES: &[(&str, &str)] = &[(
    "logfile",
    "Tandem can reopen its log file at runtime; Redis calls it immutable",
)];

fn pairs(r: R) -> Vec<(String, String)> {
    let R::Arr(items) = r else {
        panic!("CONFIG GET answered {r:?}")
    };
    items
        .chunks(2)
        .map(|p| match p {
            [R::Bulk(n), R::Bulk(v)] => (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ),
            other => panic!("not a name/value pair: {other:?}"),
        })
        .collect()
}

fn names(r: R) -> BTreeSet<String> {
    pairs(r).into_iter().map(|(n, _)| n).collect()
}

#[test]
fn config_get_star_lists_exactly_redis_names_plus_tandem_ones() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let (mut a, mut b) = (ours.conn(), theirs.conn());
    let redis = names(b.cmd("CONFIG GET *"));
    let tandem: BTreeSet<String> = names(a.cmd("CONFIG GET *"))
        .into_iter()
        .filter(|n| !n.starts_with("tandem-"))
        .collect();
    assert_eq!(redis.len(), 192);
    let missing: Vec<_> = redis.difference(&tandem).collect();
    let extra: Vec<_> = tandem.difference(&redis).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    // Hidden directives: left out of patterns, found by exact name, same defaults.
    for h in HIDDEN {
        assert!(!redis.contains(*h), "{h} is listed by Redis's CONFIG GET *");
        let r = b.cmd(&format!("CONFIG GET {h}"));
        assert_eq!(a.cmd(&format!("CONFIG GET {h}")), r, "{h}");
        assert_eq!(pairs(r).len(), 1, "{h}");
        assert_eq!(
            a.cmd(&format!("CONFIG GET {h}*")),
            b.cmd(&format!("CONFIG GET {h}*"))
        );
    }
}

#[test]
fn config_set_accepts_exactly_what_redis_accepts_at_runtime() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let (mut a, mut b) = (ours.conn(), theirs.conn());
    let mut all: Vec<String> = names(b.cmd("CONFIG GET *")).into_iter().collect();
    all.extend(HIDDEN.iter().map(|h| h.to_string()));
    let mut differ = Vec::new();
    for name in &all {
        // Each server is set to its own current value: a change of nothing, which
        // Redis still refuses for immutable and protected parameters.
        let set_own = |c: &mut common::Conn| {
            let v = pairs(c.cmd_args(&[b"CONFIG", b"GET", name.as_bytes()]));
            let [(_, value)] = v.as_slice() else {
                panic!("CONFIG GET {name}: {v:?}")
            };
            c.cmd_args(&[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()])
        };
        let (ra, rb) = (set_own(&mut a), set_own(&mut b));
        if ra != rb && !INTENDED_DIFFERENCES.iter().any(|(n, _)| n == name) {
            differ.push(format!("{name}: tandem {ra:?}, redis {rb:?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "CONFIG SET differs:\n{}",
        differ.join("\n")
    );
    // Both still serve after the round.
    assert_eq!(a.cmd("PING"), R::Simple("PONG".into()));
    assert_eq!(b.cmd("PING"), R::Simple("PONG".into()));
}

#[test]
fn hidden_directives_validate_like_redis() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let (mut a, mut b) = (ours.conn(), theirs.conn());
    for line in [
        "CONFIG SET rdb-key-save-delay -5",
        "CONFIG GET rdb-key-save-delay",
        "CONFIG SET rdb-key-save-delay 1k",
        "CONFIG SET rdb-key-save-delay 0",
        "CONFIG SET key-load-delay -100",
        "CONFIG SET key-load-delay 0",
        "CONFIG SET loading-process-events-interval-bytes 1023",
        "CONFIG SET loading-process-events-interval-bytes 2mb",
        "CONFIG SET watchdog-period -1",
        "CONFIG SET use-exit-on-panic maybe",
    ] {
        assert_eq!(a.cmd(line), b.cmd(line), "{line}");
    }
}

/// A default as a Markdown code span (`""` for the empty string).
fn shown(default: &str) -> String {
    if default.is_empty() {
        "`\"\"`".into()
    } else {
        format!("`{default}`")
    }
}

fn render() -> String {
    let mut out = String::new();
    out.push_str("# Configuration: what Tandem acts on, against Redis 7.0.15\n\n");
    out.push_str(
        "Generated from the directive table (server/src/config/table.rs) by \
         `server/tests/config_parity.rs`, which fails when this file is out of date.\n\n\
         Tandem accepts every directive Redis 7.0.15 knows (`CONFIG GET *` lists the same \
         names; hidden debugging directives answer to their exact name), with Redis's \
         defaults and checks. A directive it accepts but does not act on is *declared*: it \
         is listed below with the reason, and the server names it in a warning at start-up \
         when the configuration sets it.\n\n",
    );
    let acted: Vec<_> = table::all().filter(|d| d.acted()).collect();
    let declared: Vec<_> = table::all().filter(|d| !d.acted()).collect();
    out.push_str(&format!(
        "{} directives are acted on, {} are declared.\n\n",
        acted.len(),
        declared.len()
    ));
    out.push_str(
        "## Declared (accepted, not acted on)\n\n| directive | default | why |\n|---|---|---|\n",
    );
    for d in &declared {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            d.name,
            shown(d.default),
            table::why_declared(d.name).unwrap_or("")
        ));
    }
    out.push_str("\n## Acted on\n\n| directive | default | runtime |\n|---|---|---|\n");
    for d in &acted {
        let runtime = if d.has(table::I) {
            "start-up only"
        } else if d.has(table::L) {
            "start-up only (Tandem refuses a change)"
        } else {
            "CONFIG SET"
        };
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            d.name,
            shown(d.default),
            runtime
        ));
    }
    if !INTENDED_DIFFERENCES.is_empty() {
        out.push_str("\n## Intended differences\n\n");
        for (n, why) in INTENDED_DIFFERENCES {
            out.push_str(&format!("- `{n}`: {why}.\n"));
        }
    }
    out
}

#[test]
fn docs_config_md_is_up_to_date() {
    let want = render();
    if std::env::var_os("TANDEM_REGENERATE").is_some() {
        std::fs::write(DOC, &want).expect("write docs/config.md");
        return;
    }
    let have = std::fs::read_to_string(DOC).unwrap_or_default();
    assert!(
        have == want,
        "docs/config.md is out of date: regenerate with TANDEM_REGENERATE=1 cargo nextest run -p tandem-server --test config_parity"
    );
}

/// Fills db 0 with `n` string keys (DEBUG POPULATE).
fn populate(c: &mut common::Conn, n: usize) {
    assert_eq!(c.cmd(&format!("DEBUG POPULATE {n}")), R::ok());
    assert_eq!(c.cmd("DBSIZE"), R::Int(n as i64));
}

fn info_field(c: &mut common::Conn, section: &str, field: &str) -> String {
    let R::Bulk(b) = c.cmd(&format!("INFO {section}")) else {
        panic!("INFO {section}")
    };
    let text = String::from_utf8_lossy(&b).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .to_string()
}

/// BGSAVE of `n` keys with `rdb-key-save-delay` `us`: returns how long it ran.
fn timed_bgsave(c: &mut common::Conn, n: usize, us: u64) -> Duration {
    populate(c, n);
    assert_eq!(
        c.cmd(&format!("CONFIG SET rdb-key-save-delay {us}")),
        R::ok()
    );
    let start = Instant::now();
    assert_eq!(
        c.cmd("BGSAVE"),
        R::Simple("Background saving started".into())
    );
    // Still saving well after it started: the delay is per key.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(info_field(c, "persistence", "rdb_bgsave_in_progress"), "1");
    assert!(common::wait_until(Duration::from_secs(30), || {
        info_field(c, "persistence", "rdb_bgsave_in_progress") == "0"
    }));
    let took = start.elapsed();
    assert_eq!(info_field(c, "persistence", "rdb_last_bgsave_status"), "ok");
    took
}

#[test]
fn rdb_key_save_delay_slows_bgsave_per_key_as_in_redis() {
    let (n, us) = (200, 5000);
    let floor = Duration::from_micros(n as u64 * us);
    let ours = TestServer::start(&["--enable-debug-command", "yes"]);
    let mut a = ours.conn();
    let took = timed_bgsave(&mut a, n, us);
    assert!(took >= floor, "tandem BGSAVE took {took:?} < {floor:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let took = timed_bgsave(&mut theirs.conn(), n, us);
    assert!(took >= floor, "redis BGSAVE took {took:?} < {floor:?}");
    // Without the delay the same save is quick.
    assert_eq!(a.cmd("CONFIG SET rdb-key-save-delay 0"), R::ok());
    let start = Instant::now();
    assert_eq!(a.cmd("SAVE"), R::ok());
    assert!(start.elapsed() < floor / 2, "{:?}", start.elapsed());
}

#[test]
fn key_load_delay_slows_debug_reload_and_startup_load() {
    let (n, us) = (200u64, 5000u64);
    let floor = Duration::from_micros(n * us);
    let ours = TestServer::start(&["--enable-debug-command", "yes"]);
    let mut a = ours.conn();
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let mut b = theirs.conn();
    for c in [&mut a, &mut b] {
        populate(c, n as usize);
        assert_eq!(c.cmd(&format!("CONFIG SET key-load-delay {us}")), R::ok());
        let start = Instant::now();
        assert_eq!(c.cmd("DEBUG RELOAD"), R::ok());
        let took = start.elapsed();
        assert!(took >= floor, "DEBUG RELOAD took {took:?} < {floor:?}");
        assert_eq!(c.cmd("DBSIZE"), R::Int(n as i64));
        assert_eq!(c.cmd("CONFIG SET key-load-delay 0"), R::ok());
        let start = Instant::now();
        assert_eq!(c.cmd("DEBUG RELOAD"), R::ok());
        assert!(start.elapsed() < floor / 2, "{:?}", start.elapsed());
    }
    // At start-up: the file saved above loads slowly with the delay configured.
    assert_eq!(a.cmd("SAVE"), R::ok());
    let rdb = ours.dir.path().join("dump.rdb");
    let again = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&rdb, again.path().join("dump.rdb")).expect("copy dump.rdb");
    let start = Instant::now();
    let restarted = TestServer::start_in(again, &["--key-load-delay", &us.to_string()]);
    let took = start.elapsed();
    assert!(took >= floor, "start-up load took {took:?} < {floor:?}");
    assert_eq!(restarted.conn().cmd("DBSIZE"), R::Int(n as i64));
}

fn oom_score_adj(pid: u32) -> i64 {
    std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
        .expect("read oom_score_adj")
        .trim()
        .parse()
        .expect("oom_score_adj number")
}

#[test]
fn oom_score_adj_follows_the_role_and_the_values_as_in_redis() {
    let ours = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let theirs = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let (pa, pb) = (ours.child.id(), theirs.child.id());
    let base = oom_score_adj(pa);
    assert_eq!(oom_score_adj(pb), base);
    let (mut a, mut b) = (ours.conn(), theirs.conn());
    let nobody = common::free_port();
    for (line, want) in [
        ("CONFIG SET oom-score-adj-values 10 20 30".to_string(), base),
        ("CONFIG SET oom-score-adj yes".to_string(), base + 10),
        (format!("REPLICAOF 127.0.0.1 {nobody}"), base + 20),
        ("REPLICAOF NO ONE".to_string(), base + 10),
        (
            "CONFIG SET oom-score-adj-values 15 25 35".to_string(),
            base + 15,
        ),
        ("CONFIG SET oom-score-adj absolute".to_string(), 15),
        ("CONFIG SET oom-score-adj no".to_string(), base),
    ] {
        let args: Vec<&str> = line.splitn(4, ' ').collect();
        let refs: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        assert_eq!(a.cmd_args(&refs), b.cmd_args(&refs), "{line}");
        assert_eq!(oom_score_adj(pb), want, "redis after {line}");
        assert_eq!(oom_score_adj(pa), want, "tandem after {line}");
    }
    // Lowering below the inherited score needs CAP_SYS_RESOURCE: both answer alike.
    assert_eq!(a.cmd("CONFIG SET oom-score-adj absolute"), R::ok());
    assert_eq!(b.cmd("CONFIG SET oom-score-adj absolute"), R::ok());
    let lower: Vec<&[u8]> = vec![b"CONFIG", b"SET", b"oom-score-adj-values", b"-10 0 0"];
    assert_eq!(a.cmd_args(&lower), b.cmd_args(&lower));
    assert_eq!(oom_score_adj(pa), oom_score_adj(pb));
    assert_eq!(
        a.cmd("CONFIG GET oom-score-adj-values"),
        b.cmd("CONFIG GET oom-score-adj-values")
    );
    // At start-up.
    let started = TestServer::start(&[
        "--oom-score-adj",
        "absolute",
        "--oom-score-adj-values",
        "7 20 30",
    ]);
    assert_eq!(oom_score_adj(started.child.id()), 7.max(base));
}

#[test]
fn repl_diskless_sync_max_replicas_starts_the_transfer_without_waiting_the_delay() {
    let master = TestServer::start(&[
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "60",
        "--repl-diskless-sync-max-replicas",
        "2",
    ]);
    let mut m = master.conn();
    assert_eq!(m.cmd("SET k v"), R::ok());
    let (r1, r2) = (TestServer::start(&[]), TestServer::start(&[]));
    let start = Instant::now();
    let of = format!("REPLICAOF 127.0.0.1 {}", master.port);
    assert_eq!(r1.conn().cmd(&of), R::ok());
    // The first replica waits for company (the delay is 60 s)...
    assert!(common::wait_until(Duration::from_secs(10), || {
        let R::Bulk(info) = m.cmd("INFO replication") else {
            return false;
        };
        String::from_utf8_lossy(&info).contains("state=wait_bgsave")
    }));
    // ...and the second one completes the set: both sync right away.
    assert_eq!(r2.conn().cmd(&of), R::ok());
    for r in [&r1, &r2] {
        let mut c = r.conn();
        assert!(common::wait_until(Duration::from_secs(20), || {
            info_field(&mut c, "replication", "master_link_status") == "up"
        }));
        assert_eq!(c.cmd("GET k"), R::bulk("v"));
    }
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

/// Turns `k` into a list on a replica (briefly writable), so the master's next
/// INCR k fails there.
fn diverge(c: &mut common::Conn) {
    assert!(common::wait_until(Duration::from_secs(10), || c
        .cmd("GET k")
        == R::bulk("1")));
    for line in [
        "CONFIG SET replica-read-only no",
        "DEL k",
        "RPUSH k x",
        "CONFIG SET replica-read-only yes",
    ] {
        assert!(!matches!(c.cmd(line), R::Err(_)), "{line}");
    }
}

#[test]
fn propagation_error_behavior_stops_a_read_only_replica_as_in_redis() {
    let master = TestServer::start(&["--repl-diskless-sync-delay", "0"]);
    let mut m = master.conn();
    assert_eq!(m.cmd("SET k 1"), R::ok());
    let behaviour = ["--propagation-error-behavior", "panic-on-replicas"];
    let mut stopping = TestServer::start(&behaviour);
    let mut ignoring = TestServer::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut redis = RealRedis::start(dir.path(), "dump.rdb", &behaviour);
    let of = format!("REPLICAOF 127.0.0.1 {}", master.port);
    let mut conns = [stopping.conn(), ignoring.conn(), redis.conn()];
    for c in conns.iter_mut() {
        assert_eq!(c.cmd(&of), R::ok());
        diverge(c);
    }
    assert!(matches!(m.cmd("INCR k"), R::Int(2)));
    assert_eq!(m.cmd("SET marker 1"), R::ok());
    // `ignore` (the default): the error is logged, the replica goes on.
    let c = &mut conns[1];
    assert!(common::wait_until(Duration::from_secs(10), || c
        .cmd("GET marker")
        == R::bulk("1")));
    assert_eq!(c.cmd("TYPE k"), R::Simple("list".into()));
    assert!(ignoring.child.try_wait().expect("try_wait").is_none());
    // `panic-on-replicas`: Tandem and Redis both stop.
    let stopped = |child: &mut std::process::Child| {
        common::wait_until(Duration::from_secs(10), || {
            child.try_wait().ok().flatten().is_some()
        })
    };
    assert!(stopped(&mut redis.child), "redis replica still running");
    assert!(stopped(&mut stopping.child), "tandem replica still running");
    let log = std::fs::read_to_string(stopping.dir.path().join("stdout.log")).unwrap_or_default();
    assert!(
        log.contains("panicked sending an error to its master after processing the command 'incr'"),
        "{log}"
    );
}

#[test]
fn a_replica_serves_its_old_data_during_a_slow_full_sync_and_swaps_at_the_end() {
    let master = TestServer::start(&[
        "--enable-debug-command",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    let mut m = master.conn();
    populate(&mut m, 300);
    // 300 keys at 10 ms each: the replica's load takes at least 3 s.
    let replica = TestServer::start(&[
        "--repl-diskless-load",
        "swapdb",
        "--key-load-delay",
        "10000",
    ]);
    let mut r = replica.conn();
    assert_eq!(r.cmd("SET old 1"), R::ok());
    let start = Instant::now();
    assert_eq!(
        r.cmd(&format!("REPLICAOF 127.0.0.1 {}", master.port)),
        R::ok()
    );
    // Until the link is up, the replica answers from its old data. The link
    // status and the data are read in one transaction: read as two commands,
    // the swap could fall between them.
    let mut answered = 0;
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "sync did not finish"
        );
        assert_eq!(r.cmd("MULTI"), R::ok());
        for c in ["INFO replication", "GET old", "DBSIZE"] {
            assert_eq!(r.cmd(c), R::Simple("QUEUED".into()), "{c}");
        }
        let R::Arr(replies) = r.cmd("EXEC") else {
            panic!("EXEC")
        };
        let R::Bulk(info) = &replies[0] else {
            panic!("INFO: {:?}", replies[0])
        };
        if String::from_utf8_lossy(&info[..]).contains("master_link_status:up") {
            break;
        }
        assert_eq!(replies[1], R::bulk("1"));
        assert_eq!(replies[2], R::Int(1));
        answered += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        start.elapsed() >= Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(answered >= 20, "answered {answered} times during the load");
    assert_eq!(r.cmd("DBSIZE"), R::Int(300));
    assert_eq!(r.cmd("EXISTS old"), R::Int(0));
}

fn first_replica_ip(m: &mut common::Conn) -> Option<String> {
    let R::Bulk(info) = m.cmd("INFO replication") else {
        return None;
    };
    let text = String::from_utf8_lossy(&info).into_owned();
    let line = text.lines().find(|l| l.starts_with("slave0:"))?;
    line.split(',')
        .find_map(|f| f.strip_prefix("slave0:ip="))
        .map(str::to_string)
}

#[test]
fn bind_source_addr_is_the_replication_link_source_as_in_redis() {
    for replica_is_redis in [false, true] {
        let master = TestServer::start(&[]);
        let mut m = master.conn();
        let of = format!("127.0.0.1 {}", master.port);
        let args = ["--bind-source-addr", "127.0.0.2", "--replicaof", &of];
        let dir = tempfile::tempdir().expect("tempdir");
        let _replica: Box<dyn std::any::Any> = if replica_is_redis {
            Box::new(RealRedis::start(dir.path(), "dump.rdb", &args))
        } else {
            Box::new(TestServer::start(&args))
        };
        assert!(
            common::wait_until(Duration::from_secs(10), || first_replica_ip(&mut m)
                .is_some()),
            "no replica (redis: {replica_is_redis})"
        );
        assert_eq!(
            first_replica_ip(&mut m).as_deref(),
            Some("127.0.0.2"),
            "redis: {replica_is_redis}"
        );
    }
}
