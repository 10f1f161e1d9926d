//! The admin `/metrics` speaks redis_exporter's names, labels and types: a small
//! Prometheus text-format parser reads the exposition, and every family a
//! redis_exporter dashboard or alert uses is there with its type and moves with
//! real traffic.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: TYPE per family and every sample.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// Samples of `name` whose labels include every pair of `want`.
    fn find(&self, name: &str, want: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                want.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one sample of `name` with these labels.
    fn value(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        let found = self.find(name, want);
        assert_eq!(found.len(), 1, "{name} {want:?}: {found:?}");
        found[0].value
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `{a="x",b="y\"z"}` from just after `{`; the labels and what follows `}`.
fn parse_labels(s: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let (key, after) = rest.split_once("=\"").expect("label name=\"");
        assert!(is_name(key), "label name {key:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("unterminated label value") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("bad escape \\{c}"),
                },
                (_, c) => value.push(c),
            }
        };
        assert!(
            labels.insert(key.to_string(), value).is_none(),
            "duplicate label {key}"
        );
        rest = &after[end + 1..];
    }
}

/// Parses the text format (version 0.0.4), failing on anything malformed: every
/// sample belongs to a family declared by a TYPE line before it.
fn parse(text: &str) -> Exposition {
    let mut e = Exposition::default();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix("# ") {
            let mut parts = c.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(is_name(name), "{line}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line}"
                    );
                    assert!(
                        e.types.insert(name.into(), kind.into()).is_none(),
                        "second TYPE for {name}"
                    );
                }
                (Some("HELP"), Some(name), _) => assert!(is_name(name), "{line}"),
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("sample without value");
        let name = &line[..name_end];
        assert!(is_name(name), "{line}");
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(after) => parse_labels(after),
            None => (BTreeMap::new(), &line[name_end..]),
        };
        let value = rest
            .trim()
            .split(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("bad value in {line:?}"));
        assert!(e.types.contains_key(name), "sample before its TYPE: {line}");
        e.samples.push(Sample {
            name: name.into(),
            labels,
            value,
        });
    }
    e
}

/// `GET /metrics` on the admin port: status, content type and body.
fn scrape_raw(port: u16) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect admin port");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read until close");
    let (head, body) = text.split_once("\r\n\r\n").expect("head/body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, head.to_string(), body.to_string())
}

fn scrape(port: u16) -> Exposition {
    let (status, head, body) = scrape_raw(port);
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    parse(&body)
}

fn with_admin(extra: &[&str]) -> (TestServer, u16) {
    let aport = free_port();
    let p = aport.to_string();
    let mut args = vec!["--tandem-admin-port", p.as_str()];
    args.extend_from_slice(extra);
    (TestServer::start(&args), aport)
}

/// Every family of issue 20 item 1, with redis_exporter's type.
const FAMILIES: &[(&str, &str)] = &[
    ("redis_up", "gauge"),
    ("redis_uptime_in_seconds", "gauge"),
    ("redis_instance_info", "gauge"),
    ("redis_connected_clients", "gauge"),
    ("redis_blocked_clients", "gauge"),
    ("redis_memory_used_bytes", "gauge"),
    ("redis_memory_max_bytes", "gauge"),
    ("redis_commands_processed_total", "counter"),
    ("redis_commands_total", "counter"),
    ("redis_commands_duration_seconds_total", "counter"),
    ("redis_keyspace_hits_total", "counter"),
    ("redis_keyspace_misses_total", "counter"),
    ("redis_expired_keys_total", "counter"),
    ("redis_evicted_keys_total", "counter"),
    ("redis_db_keys", "gauge"),
    ("redis_db_keys_expiring", "gauge"),
    ("redis_net_input_bytes_total", "counter"),
    ("redis_net_output_bytes_total", "counter"),
    ("redis_connected_slaves", "gauge"),
    ("redis_master_repl_offset", "gauge"),
    ("redis_connected_slave_offset_bytes", "gauge"),
    ("redis_connected_slave_lag_seconds", "gauge"),
    ("redis_master_link_up", "gauge"),
    ("redis_rdb_last_save_timestamp_seconds", "gauge"),
    ("redis_aof_enabled", "gauge"),
    ("redis_replica_resyncs_full", "gauge"),
    ("redis_replica_partial_resync_accepted", "gauge"),
    ("redis_replica_partial_resync_denied", "gauge"),
    ("tandem_up", "gauge"),
    ("tandem_fenced", "gauge"),
    ("tandem_role", "gauge"),
    ("tandem_connected_clients", "gauge"),
    ("tandem_connected_replicas", "gauge"),
    ("tandem_master_repl_offset", "gauge"),
    ("tandem_master_link_up", "gauge"),
    ("tandem_used_memory_bytes", "gauge"),
    ("tandem_keys", "gauge"),
    ("tandem_commands_processed_total", "counter"),
    ("tandem_uptime_seconds", "gauge"),
];

#[test]
fn every_redis_exporter_family_is_exposed_with_its_type() {
    let (t, a) = with_admin(&["--maxmemory", "64mb", "--appendonly", "yes"]);
    let m = scrape(a);
    for (name, kind) in FAMILIES {
        assert_eq!(
            m.types.get(*name).map(String::as_str),
            Some(*kind),
            "TYPE of {name}"
        );
    }
    assert_eq!(m.value("redis_up", &[]), 1.0);
    assert_eq!(m.value("tandem_up", &[]), 1.0);
    assert_eq!(
        m.value("redis_memory_max_bytes", &[]),
        64.0 * 1024.0 * 1024.0
    );
    assert_eq!(m.value("redis_aof_enabled", &[]), 1.0);
    assert!(m.value("redis_memory_used_bytes", &[]) > 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let saved = m.value("redis_rdb_last_save_timestamp_seconds", &[]);
    assert!((now - saved).abs() < 3600.0, "{saved} vs {now}");
    // redis_exporter's instance_info label set, with INFO's values.
    let info = m.find("redis_instance_info", &[]);
    assert_eq!(info.len(), 1);
    let keys: BTreeSet<&str> = info[0].labels.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = [
        "role",
        "redis_version",
        "redis_build_id",
        "redis_mode",
        "os",
        "maxmemory_policy",
        "tcp_port",
        "run_id",
        "process_id",
        "master_replid",
    ]
    .into();
    assert_eq!(keys, want);
    let mut c = t.conn();
    let R::Bulk(raw) = c.cmd("INFO") else {
        panic!("INFO")
    };
    let text = String::from_utf8(raw).expect("utf8");
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .unwrap_or_else(|| panic!("{k} in INFO"))
            .trim()
            .to_string()
    };
    for (label, info_field) in [
        ("role", "role"),
        ("redis_version", "redis_version"),
        ("redis_mode", "redis_mode"),
        ("os", "os"),
        ("maxmemory_policy", "maxmemory_policy"),
        ("tcp_port", "tcp_port"),
        ("run_id", "run_id"),
        ("process_id", "process_id"),
        ("master_replid", "master_replid"),
    ] {
        assert_eq!(info[0].labels[label], field(info_field), "{label}");
    }
    assert_eq!(info[0].labels["role"], "master");
    assert_eq!(info[0].value, 1.0);
    // A master has no link to a master and no replicas yet.
    assert!(m.find("redis_master_link_up", &[]).is_empty());
    assert_eq!(m.value("redis_connected_slaves", &[]), 0.0);
    assert!(m.find("redis_connected_slave_offset_bytes", &[]).is_empty());
}

#[test]
fn counters_and_gauges_move_with_traffic() {
    let (t, a) = with_admin(&[]);
    let before = scrape(a);
    let mut c = t.conn();
    assert_eq!(c.cmd("SET k v"), R::ok());
    assert_eq!(c.cmd("SET t v EX 1000"), R::ok());
    assert_eq!(c.cmd("GET k"), R::bulk("v"));
    assert_eq!(c.cmd("GET nosuch"), R::Nil);
    assert_eq!(c.cmd("GET nosuch2"), R::Nil);
    assert_eq!(c.cmd("SELECT 2"), R::ok());
    assert_eq!(c.cmd("SET other 1"), R::ok());
    assert!(matches!(
        c.cmd("CONFIG GET maxmemory"),
        R::Arr(_) | R::Map(_)
    ));
    assert!(wait_until(WAIT, || scrape(a)
        .value("redis_connected_clients", &[])
        >= 1.0));
    let m = scrape(a);
    let delta = |name: &str| m.value(name, &[]) - before.value(name, &[]);
    assert_eq!(delta("redis_keyspace_hits_total"), 1.0);
    assert_eq!(delta("redis_keyspace_misses_total"), 2.0);
    assert!(delta("redis_commands_processed_total") >= 8.0);
    assert!(delta("redis_net_input_bytes_total") > 0.0);
    assert!(delta("redis_net_output_bytes_total") > 0.0);
    assert_eq!(m.value("redis_commands_total", &[("cmd", "set")]), 3.0);
    assert_eq!(m.value("redis_commands_total", &[("cmd", "get")]), 3.0);
    assert_eq!(m.value("redis_commands_total", &[("cmd", "select")]), 1.0);
    assert_eq!(
        m.value("redis_commands_total", &[("cmd", "config|get")]),
        1.0
    );
    let set_secs = m.value("redis_commands_duration_seconds_total", &[("cmd", "set")]);
    assert!((0.0..10.0).contains(&set_secs), "{set_secs}");
    assert_eq!(m.value("redis_db_keys", &[("db", "db0")]), 2.0);
    assert_eq!(m.value("redis_db_keys_expiring", &[("db", "db0")]), 1.0);
    assert_eq!(m.value("redis_db_keys", &[("db", "db2")]), 1.0);
    assert_eq!(m.value("redis_db_keys_expiring", &[("db", "db2")]), 0.0);
    assert!(m.find("redis_db_keys", &[("db", "db1")]).is_empty());
    assert_eq!(m.value("tandem_keys", &[("db", "0")]), 2.0);
    // CONFIG RESETSTAT restarts the per-command counts (as INFO commandstats in
    // Redis 7.0: only the reset itself is left).
    assert_eq!(c.cmd("CONFIG RESETSTAT"), R::ok());
    let m = scrape(a);
    assert!(m.find("redis_commands_total", &[("cmd", "set")]).is_empty());
    assert_eq!(
        m.value("redis_commands_total", &[("cmd", "config|resetstat")]),
        1.0
    );
    // A key that expires is counted as expired.
    assert_eq!(c.cmd("SELECT 0"), R::ok());
    assert_eq!(c.cmd("PEXPIRE k 1"), R::Int(1));
    assert!(wait_until(WAIT, || {
        scrape(a).value("redis_expired_keys_total", &[]) >= 1.0
    }));
    // A client blocked on a key shows up.
    let mut blocker = t.conn();
    blocker.send(&[b"BLPOP", b"list", b"0"]);
    assert!(wait_until(WAIT, || scrape(a)
        .value("redis_blocked_clients", &[])
        == 1.0));
    assert_eq!(c.cmd("RPUSH list x"), R::Int(1));
    assert_eq!(blocker.read(), arr(&["list", "x"]));
    assert!(wait_until(WAIT, || scrape(a)
        .value("redis_blocked_clients", &[])
        == 0.0));
}

#[test]
fn evictions_are_counted() {
    let (t, a) = with_admin(&["--maxmemory-policy", "allkeys-random"]);
    let mut c = t.conn();
    let used = scrape(a).value("redis_memory_used_bytes", &[]) as u64;
    // A limit just above what is used now: filling past it must evict.
    let limit = used + 512 * 1024;
    assert_eq!(c.cmd(&format!("CONFIG SET maxmemory {limit}")), R::ok());
    let value = "x".repeat(1024);
    for i in 0..4000 {
        c.cmd_args(&[b"SET", format!("k{i}").as_bytes(), value.as_bytes()]);
    }
    let m = scrape(a);
    assert!(m.value("redis_evicted_keys_total", &[]) > 0.0);
    assert_eq!(m.value("redis_memory_max_bytes", &[]), limit as f64);
}

#[test]
fn a_connected_replica_shows_on_both_sides() {
    let (master, ma) = with_admin(&[]);
    let mut mc = master.conn();
    assert_eq!(mc.cmd("SET a 1"), R::ok());
    let port = master.port.to_string();
    let (replica, ra) = with_admin(&["--replicaof", "127.0.0.1", &port]);
    assert!(
        wait_until(WAIT, || {
            let m = scrape(ma);
            m.value("redis_connected_slaves", &[]) == 1.0
                && m.find(
                    "redis_connected_slave_offset_bytes",
                    &[("slave_state", "online")],
                )
                .len()
                    == 1
        }),
        "{}",
        scrape_raw(ma).2
    );
    let m = scrape(ma);
    assert_eq!(m.value("tandem_connected_replicas", &[]), 1.0);
    let rport = replica.port.to_string();
    let labels = [
        ("slave_ip", "127.0.0.1"),
        ("slave_port", rport.as_str()),
        ("slave_state", "online"),
    ];
    assert_eq!(
        m.find("redis_connected_slave_lag_seconds", &labels).len(),
        1
    );
    // The replica acknowledges the master's offset.
    assert!(wait_until(WAIT, || {
        let m = scrape(ma);
        m.value("redis_connected_slave_offset_bytes", &labels)
            == m.value("redis_master_repl_offset", &[])
    }));
    assert!(scrape(ma).value("redis_replica_resyncs_full", &[]) >= 1.0);
    let link = [("master_host", "127.0.0.1"), ("master_port", port.as_str())];
    // The master may see the replica's first ACK (offsets equal at the start) before
    // the replica has finished loading and marked its link up.
    assert!(
        wait_until(WAIT, || scrape(ra).value("redis_master_link_up", &link)
            == 1.0),
        "{}",
        scrape_raw(ra).2
    );
    let r = scrape(ra);
    assert_eq!(r.find("redis_instance_info", &[("role", "slave")]).len(), 1);
    assert_eq!(r.value("tandem_role", &[("role", "replica")]), 1.0);
    // The master goes away: the replica's link is down, the series stays.
    drop(mc);
    drop(master);
    assert!(wait_until(WAIT, || scrape(ra)
        .value("redis_master_link_up", &link)
        == 0.0));
}

#[test]
fn a_busy_script_makes_redis_up_zero_without_blocking_the_scrape() {
    let (t, a) = with_admin(&["--busy-reply-threshold", "100"]);
    let mut runner = t.conn();
    runner.send(&[b"EVAL", b"while true do end", b"0"]);
    let mut other = t.conn();
    assert!(wait_until(Duration::from_secs(5), || {
        matches!(other.cmd("PING"), R::Err(e) if e.starts_with("BUSY"))
    }));
    let started = Instant::now();
    let m = scrape(a);
    assert!(started.elapsed() < Duration::from_secs(2), "scrape waited");
    assert_eq!(m.value("redis_up", &[]), 0.0);
    assert_eq!(m.value("tandem_up", &[]), 0.0);
    // Lock-free figures are still there.
    assert!(m.value("redis_uptime_in_seconds", &[]) >= 0.0);
    assert!(m.value("redis_connected_clients", &[]) >= 2.0);
    assert!(m.find("redis_connected_slaves", &[]).is_empty());
    assert_eq!(other.cmd("SCRIPT KILL"), R::ok());
    assert!(matches!(runner.read(), R::Err(_)));
    assert!(wait_until(WAIT, || scrape(a).value("redis_up", &[]) == 1.0));
}

#[test]
fn the_parser_rejects_what_prometheus_would() {
    let ok =
        parse("# HELP x_total h\n# TYPE x_total counter\nx_total{a=\"q\\\"\\\\\\n\",b=\"\"} 1.5\n");
    assert_eq!(ok.value("x_total", &[("a", "q\"\\\n"), ("b", "")]), 1.5);
    for bad in [
        "y 1\n",                              // sample without TYPE
        "# TYPE y gauge\ny{a=\"1} 1\n",       // unterminated label
        "# TYPE y gauge\ny one\n",            // bad value
        "# TYPE y gauge\n# TYPE y counter\n", // two TYPEs
        "# TYPE y gauge\ny{a=\"1\",a=\"2\"} 1\n",
    ] {
        let text = bad.to_string();
        assert!(
            std::panic::catch_unwind(move || parse(&text)).is_err(),
            "accepted {bad:?}"
        );
    }
}

/// Prometheus's own linter accepts the exposition (skipped where Debian's
/// `prometheus` package, which carries promtool, is not installed).
#[test]
fn promtool_accepts_the_exposition() {
    let promtool = std::path::Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        eprintln!("skipped: no {}", promtool.display());
        return;
    }
    let (t, a) = with_admin(&[]);
    let mut c = t.conn();
    assert_eq!(c.cmd("SET k v"), R::ok());
    assert_eq!(c.cmd("GET k"), R::bulk("v"));
    let (_, _, body) = scrape_raw(a);
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}\n{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
