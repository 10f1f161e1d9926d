//! Redis's own TCL test suite as a differential test: the `tests/` directory of the
//! installed redis-server's exact source version (fetched by `.ci/fetch-redis-tests` into
//! `target/client-suites/redis-7.0.15/`) runs in external-server mode against a fresh
//! Tandem and a fresh Redis 7.0.15 side by side, one unit file at a time. Every test that
//! passes on Redis must pass on Tandem, except the entries of
//! `redis_tcl_expected.txt` (one line per known divergence, with its reason).
//!
//! The runner is started with `--durable`, so an error inside one test (an unknown
//! `DEBUG` subcommand, say) fails that test and the file goes on; one outside a test ends
//! its `start_server` block, and an `[exception]` or a `[TIMEOUT]` ends the file: those
//! must be listed too, and the tests they left out are not compared. A test that hangs
//! on Tandem is listed as `[skip]` and run on neither side (see `Expected`).
//!
//! A Tandem-only failure counts only if a second run of the file on another fresh Tandem
//! fails it again, so a scheduling hiccup of a loaded machine is not a divergence.
//!
//! Environment:
//! - `TANDEM_TCL_PRINT_EXPECTED=1`: print the current Tandem-only failures of each file
//!   to stdout in the list's format (reasons kept from the list, `?` for new ones), to
//!   regenerate it: `TANDEM_TCL_PRINT_EXPECTED=1 cargo nextest run -p tandem-server
//!   --test redis_tcl_suite --no-capture 2>/dev/null | grep ' | '`.
//! - `TANDEM_TCL_STRICT=1`: a listed entry that no longer fails makes the test fail
//!   (without it such entries are only printed, as "listed but passing").
//! - `TANDEM_REDIS_TCL_SUITE`: another suite directory (holding `tests/`).
//!
//! Without the suite or tclsh the test is skipped with the reason printed, except under
//! CI (`CI=true`), where it fails.
mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The runner's per-test inactivity limit, in seconds: a test blocked for longer is
/// reported as `[TIMEOUT]` and ends the file.
const TEST_TIMEOUT_SECS: u32 = 60;

/// The prefix of an expected-list entry that is not run at all (see `Expected`).
const SKIP: &str = "[skip] ";

/// One unit file of the suite, the number of its tests that must pass on each side (so
/// a broken runner cannot pass), and tests left out on both sides only to save time
/// (long randomised fuzzers; each says why).
struct Unit {
    file: &'static str,
    min_ok: usize,
    skip: &'static [&'static str],
}

fn suite_dir() -> PathBuf {
    match std::env::var_os("TANDEM_REDIS_TCL_SUITE") {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/client-suites/redis-7.0.15")
        }
    }
}

/// Why the suite cannot run here, if it cannot.
fn missing() -> Option<String> {
    let dir = suite_dir();
    if !dir.join("tests/test_helper.tcl").is_file() {
        return Some(format!(
            "no Redis TCL test suite in {} (run .ci/fetch-redis-tests)",
            dir.display()
        ));
    }
    let probe = Command::new("tclsh")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            drop(c.stdin.take());
            c.wait()
        });
    match probe {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("tclsh exited with {s}")),
        Err(e) => Some(format!("tclsh not runnable: {e} (apt-get install tcl)")),
    }
}

/// Skips (or, under CI, fails) when the suite cannot run; true when it can.
fn can_run() -> bool {
    match missing() {
        None => true,
        Some(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must run Redis's TCL test suite: {why}"
            );
            eprintln!("skipping: {why}");
            false
        }
    }
}

/// What one run of a unit file reported, parsed from the runner's output.
#[derive(Debug, Default)]
struct Outcome {
    /// Test name -> how many times it passed and how many times it failed (some names
    /// repeat inside loops).
    tests: BTreeMap<String, (usize, usize)>,
    /// The first line of each failure's details, by test name.
    details: BTreeMap<String, String>,
    /// What ended the file (`[exception] <first line>`, `[timeout] <test in progress>`)
    /// or one `start_server` block of it (`[block] <error>`) early.
    stops: Vec<String>,
    ok: usize,
    text: String,
}

impl Outcome {
    fn passed(&self, name: &str) -> bool {
        matches!(self.tests.get(name), Some((ok, 0)) if *ok > 0)
    }

    fn failed(&self, name: &str) -> bool {
        matches!(self.tests.get(name), Some((_, err)) if *err > 0)
    }

    fn counts(&self) -> String {
        let err: usize = self.tests.values().map(|(_, e)| e).sum();
        format!("ok={} err={err} stops={:?}", self.ok, self.stops)
    }
}

/// Drops ANSI colour sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses the runner's output for `file` (`unit/x`).
fn parse(file: &str, raw: &str) -> Outcome {
    let text = strip_ansi(raw);
    let err_suffix = format!(" in tests/{file}.tcl");
    let mut o = Outcome::default();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("[ok]: ") {
            let name = rest.rsplit_once(" (").map_or(rest, |(n, _)| n);
            o.tests.entry(name.to_string()).or_default().0 += 1;
            o.ok += 1;
        } else if let Some(rest) = line.strip_prefix("[err]: ") {
            let detail = lines.get(i + 1).copied().unwrap_or_default();
            match rest.strip_suffix(err_suffix.as_str()) {
                Some(name) => {
                    o.tests.entry(name.to_string()).or_default().1 += 1;
                    o.details.insert(name.to_string(), detail.to_string());
                }
                // An error outside a test ends its `start_server` block (the runner
                // then goes on with the next block); the whole message is next.
                None => o.stops.push(format!("[block] {detail}")),
            }
        } else if let Some(rest) = line.strip_prefix("[exception]: ") {
            o.stops.push(format!("[exception] {rest}"));
        } else if line.starts_with("[TIMEOUT]") {
            let in_progress = lines[i..]
                .iter()
                .find_map(|l| l.split_once("(IN PROGRESS) ").map(|(_, t)| t))
                .unwrap_or("?");
            o.stops.push(format!("[timeout] {in_progress}"));
        }
    }
    let finished = lines.iter().any(|l| l.starts_with("[1/1 done]"));
    if !finished && o.stops.is_empty() {
        o.stops
            .push("[exception] the runner ended early".to_string());
    }
    o.text = text;
    o
}

/// A directory to run the suite from: the runner works relative to its current
/// directory (`tests/...`, `tests/tmp` for its own files, `src/redis-cli` for the
/// tests that use the CLI), and runs going on at the same time must not share `tmp`.
fn run_dir(suite: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let tests = dir.path().join("tests");
    std::fs::create_dir_all(tests.join("tmp")).expect("mkdir tests/tmp");
    std::fs::create_dir_all(dir.path().join("src")).expect("mkdir src");
    for entry in std::fs::read_dir(suite.join("tests")).expect("read the suite's tests/") {
        let entry = entry.expect("dir entry");
        if entry.file_name() != "tmp" {
            std::os::unix::fs::symlink(entry.path(), tests.join(entry.file_name()))
                .expect("symlink");
        }
    }
    for tool in ["redis-cli", "redis-benchmark"] {
        let bin = Path::new("/usr/bin").join(tool);
        if bin.exists() {
            std::os::unix::fs::symlink(&bin, dir.path().join("src").join(tool)).expect("symlink");
        }
    }
    dir
}

/// Runs `file` against the server on `port`. `baseport` keeps the runner's own
/// listening port apart from that of runs going on at the same time.
fn runtest(port: u16, baseport: u16, file: &str, skip: &[String]) -> Outcome {
    let dir = run_dir(&suite_dir());
    let skip = skip.iter().flat_map(|t| ["--skiptest", t.as_str()]);
    let out = Command::new("timeout")
        .args(["-s", "KILL", "900", "tclsh", "tests/test_helper.tcl"])
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--single", file, "--clients", "1", "--durable"])
        .args(["--timeout", &TEST_TIMEOUT_SECS.to_string()])
        .args(["--baseport", &baseport.to_string()])
        .args(skip)
        .current_dir(dir.path())
        .env("TERM", "dumb")
        .output()
        .expect("run tclsh");
    let mut raw = String::from_utf8_lossy(&out.stdout).into_owned();
    raw.push_str(&String::from_utf8_lossy(&out.stderr));
    parse(file, &raw)
}

/// One line of `redis_tcl_expected.txt`: `file | test name | reason`, where the test name
/// may also be `[exception] <start of its first line>`, `[timeout] <test name>` or
/// `[block] <start of the error>` (what ended Tandem's run of the file or of one of its
/// blocks early: the tests it left out are not compared), or `[skip] <test name>`: a test that hangs on Tandem (or
/// leaves it in a state that stalls the tests after it), not run on either side.
struct Expected {
    file: String,
    name: String,
    reason: String,
}

fn expected_list() -> Vec<Expected> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/redis_tcl_expected.txt");
    let text = std::fs::read_to_string(&path).expect("read redis_tcl_expected.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (file, rest) = l
                .split_once(" | ")
                .unwrap_or_else(|| panic!("bad line: {l}"));
            let (name, reason) = rest
                .rsplit_once(" | ")
                .unwrap_or_else(|| panic!("bad line: {l}"));
            Expected {
                file: file.to_string(),
                name: name.to_string(),
                reason: reason.to_string(),
            }
        })
        .collect()
}

/// Tests that passed on Redis and failed on Tandem (or did not run there although the
/// file ran to its end), and what ended Tandem's run early, minus the listed ones.
fn unexpected(ours: &Outcome, theirs: &Outcome, listed: &[&Expected]) -> BTreeSet<String> {
    let is_listed = |name: &str| listed.iter().any(|e| e.name == name);
    let stopped = !ours.stops.is_empty();
    let mut out: BTreeSet<String> = theirs
        .tests
        .keys()
        .filter(|n| theirs.passed(n) && !ours.passed(n))
        .filter(|n| ours.failed(n) || !stopped)
        .filter(|n| !is_listed(n))
        .cloned()
        .collect();
    for stop in &ours.stops {
        let known = listed.iter().any(|e| stop.starts_with(e.name.as_str()));
        if !known && !theirs.stops.contains(stop) {
            out.insert(stop.clone());
        }
    }
    out
}

/// Current Tandem-only failures of `file`, in the list's format.
fn as_list(file: &str, ours: &Outcome, theirs: &Outcome, listed: &[&Expected]) -> Vec<String> {
    let mut names: Vec<String> = unexpected(ours, theirs, &[]).into_iter().collect();
    // A listed stop is matched by its start; keep the listed text for it.
    for e in listed {
        if ours.stops.iter().any(|s| s.starts_with(e.name.as_str())) {
            names.retain(|n| !n.starts_with(e.name.as_str()));
            names.push(e.name.clone());
        }
    }
    names
        .into_iter()
        .map(|n| {
            let reason = listed
                .iter()
                .find(|e| e.name == n)
                .map_or("?", |e| e.reason.as_str());
            format!("{file} | {n} | {reason}")
        })
        .collect()
}

/// Listed entries of this file that did not fail this time.
fn now_passing<'a>(ours: &Outcome, listed: &[&'a Expected]) -> Vec<&'a str> {
    listed
        .iter()
        .filter(|e| {
            if ["[exception] ", "[timeout] ", "[block] "]
                .iter()
                .any(|p| e.name.starts_with(p))
            {
                !ours.stops.iter().any(|s| s.starts_with(e.name.as_str()))
            } else {
                ours.passed(&e.name)
            }
        })
        .map(|e| e.name.as_str())
        .collect()
}

/// Runs one unit file on both servers and returns the problems found (empty: fine).
fn check_file(unit: &Unit, baseport: u16, list: &[Expected]) -> Vec<String> {
    let Unit {
        file,
        min_ok,
        skip: time_skips,
    } = *unit;
    let listed: Vec<&Expected> = list
        .iter()
        .filter(|e| e.file == file && !e.name.starts_with(SKIP))
        .collect();
    let skip: Vec<String> = list
        .iter()
        .filter(|e| e.file == file)
        .filter_map(|e| e.name.strip_prefix(SKIP).map(str::to_string))
        .chain(time_skips.iter().map(|t| t.to_string()))
        .collect();
    let started = Instant::now();
    let ours = TestServer::start(&["--enable-debug-command", "yes", "--save", ""]);
    let redis_dir = tempfile::tempdir().expect("tempdir");
    let redis = RealRedis::start(redis_dir.path(), "dump.rdb", &[]);
    let redis_port = redis.port;
    let (owned, skip2) = (file.to_string(), skip.clone());
    let theirs = std::thread::spawn(move || runtest(redis_port, baseport + 32, &owned, &skip2));
    let mine = runtest(ours.port, baseport, file, &skip);
    let theirs = theirs.join().expect("the Redis run");
    drop((ours, redis));
    eprintln!(
        "{file}: Tandem {}; Redis {}; {:.0?}",
        mine.counts(),
        theirs.counts(),
        started.elapsed()
    );
    let mut problems = Vec::new();
    for (side, o) in [("Redis", &theirs), ("Tandem", &mine)] {
        if o.ok < min_ok {
            let tail: Vec<&str> = o.text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            problems.push(format!(
                "{file}: only {} tests passed on {side} (at least {min_ok} expected); output ends:\n{}",
                o.ok,
                tail.join("\n")
            ));
        }
    }
    if std::env::var_os("TANDEM_TCL_PRINT_EXPECTED").is_some() {
        for line in as_list(file, &mine, &theirs, &listed) {
            println!("{line}");
        }
    }
    let passing = now_passing(&mine, &listed);
    if !passing.is_empty() {
        eprintln!("{file}: listed but passing (shrink redis_tcl_expected.txt): {passing:?}");
        if std::env::var("TANDEM_TCL_STRICT").as_deref() == Ok("1") {
            problems.push(format!("{file}: listed but passing: {passing:?}"));
        }
    }
    let first = unexpected(&mine, &theirs, &listed);
    if first.is_empty() {
        return problems;
    }
    // A second run on another fresh Tandem: only what fails both times counts.
    let again_server = TestServer::start(&["--enable-debug-command", "yes", "--save", ""]);
    let again = runtest(again_server.port, baseport, file, &skip);
    let second = unexpected(&again, &theirs, &listed);
    let both: Vec<String> = first
        .intersection(&second)
        .map(|n| match mine.details.get(n) {
            Some(d) => format!("{n}  -- {d}"),
            None => n.clone(),
        })
        .collect();
    eprintln!("{file}: Tandem-only failures {first:?}, again on a rerun: {both:?}");
    if !both.is_empty() {
        problems.push(format!(
            "{file}: pass on Redis 7.0.15, fail on Tandem (not in redis_tcl_expected.txt):\n  {}",
            both.join("\n  ")
        ));
    }
    problems
}

/// Runs a group of unit files, each on fresh servers (a file can leave a server paused,
/// a replica, or with ACL users). `group` picks the runner's ports: groups run at the
/// same time as separate tests.
fn check_group(group: u16, units: &[Unit]) {
    if !can_run() {
        return;
    }
    let list = expected_list();
    // Below the ephemeral port range, and +10000 (which the runner also probes) too.
    let baseport = 13000 + group * 64;
    let problems: Vec<String> = units
        .iter()
        .flat_map(|unit| check_file(unit, baseport, &list))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

const fn unit(file: &'static str, min_ok: usize) -> Unit {
    Unit {
        file,
        min_ok,
        skip: &[],
    }
}

// One test per group of files, each group well under nextest's slow-timeout kill
// (.config/nextest.toml) on a loaded 2-core machine. Left out: files whose tests are all
// `external:skip` (acl, acl-v2, auth, info, aofrw, maxmemory, networking, shutdown, ...)
// and the cluster, module and TLS ones. `querybuf` and `replybufsize` have no test
// passing on Tandem yet, hence a minimum of 0.

const KEYSPACE_EXPIRE_SCAN: &[Unit] = &[
    unit("unit/keyspace", 45),
    unit("unit/expire", 50),
    unit("unit/scan", 14),
    unit("unit/info-command", 3),
    unit("unit/quit", 3),
    unit("unit/violations", 1),
];

const STRINGS_BITMAPS_HYPERLOGLOG: &[Unit] = &[
    unit("unit/type/string", 60),
    unit("unit/type/incr", 20),
    unit("unit/bitops", 40),
    unit("unit/bitfield", 14),
    Unit {
        // Thousands of corrupted registers, each checked by PFCOUNT: over a minute on a
        // debug build (the runner's per-test limit).
        skip: &["Fuzzing dense/sparse encoding: Redis should always detect errors"],
        ..unit("unit/hyperloglog", 15)
    },
];

const LISTS: &[Unit] = &[
    unit("unit/type/list", 200),
    unit("unit/type/list-2", 2),
    unit("unit/type/list-3", 10),
];

const HASHES_SETS_ZSETS: &[Unit] = &[
    unit("unit/type/hash", 60),
    unit("unit/type/set", 75),
    unit("unit/type/zset", 250),
];

const STREAMS: &[Unit] = &[
    unit("unit/type/stream", 60),
    unit("unit/type/stream-cgroups", 40),
];

const GEO_SORT_DUMP: &[Unit] = &[
    Unit {
        // The expected answers are computed in Tcl: tens of seconds of tclsh on a loaded
        // machine, little of the server (the file's other tests cover GEOSEARCH).
        skip: &[
            "GEOSEARCH fuzzy test - byradius",
            "GEOSEARCH fuzzy test - bybox",
        ],
        ..unit("unit/geo", 45)
    },
    unit("unit/sort", 45),
    unit("unit/dump", 10),
];

const SCRIPTING_FUNCTIONS: &[Unit] = &[unit("unit/scripting", 150), unit("unit/functions", 70)];

const MULTI_PUBSUB_TRACKING_PROTOCOL_PAUSE: &[Unit] = &[
    unit("unit/multi", 35),
    unit("unit/pubsub", 24),
    unit("unit/tracking", 25),
    unit("unit/protocol", 20),
    unit("unit/pause", 4),
];

const INTROSPECTION_AND_SERVER: &[Unit] = &[
    unit("unit/introspection", 15),
    unit("unit/introspection-2", 35),
    unit("unit/latency-monitor", 7),
    unit("unit/slowlog", 12),
    unit("unit/other", 15),
    unit("unit/querybuf", 0),
    unit("unit/replybufsize", 0),
    unit("unit/lazyfree", 2),
];

/// Every group, for the checks of the expected list.
const ALL: &[&[Unit]] = &[
    KEYSPACE_EXPIRE_SCAN,
    STRINGS_BITMAPS_HYPERLOGLOG,
    LISTS,
    HASHES_SETS_ZSETS,
    STREAMS,
    GEO_SORT_DUMP,
    SCRIPTING_FUNCTIONS,
    MULTI_PUBSUB_TRACKING_PROTOCOL_PAUSE,
    INTROSPECTION_AND_SERVER,
];

#[test]
fn tcl_keyspace_expire_scan() {
    check_group(0, KEYSPACE_EXPIRE_SCAN);
}

#[test]
fn tcl_strings_bitmaps_hyperloglog() {
    check_group(1, STRINGS_BITMAPS_HYPERLOGLOG);
}

#[test]
fn tcl_lists() {
    check_group(2, LISTS);
}

#[test]
fn tcl_hashes_sets_zsets() {
    check_group(3, HASHES_SETS_ZSETS);
}

#[test]
fn tcl_streams() {
    check_group(4, STREAMS);
}

#[test]
fn tcl_geo_sort_dump() {
    check_group(5, GEO_SORT_DUMP);
}

#[test]
fn tcl_scripting_functions() {
    check_group(6, SCRIPTING_FUNCTIONS);
}

#[test]
fn tcl_multi_pubsub_tracking_protocol_pause() {
    check_group(7, MULTI_PUBSUB_TRACKING_PROTOCOL_PAUSE);
}

#[test]
fn tcl_introspection_and_server() {
    check_group(8, INTROSPECTION_AND_SERVER);
}

#[test]
fn parse_reads_results_stops_and_names() {
    let raw = "\u{1b}[0;32m[ok]\u{1b}[0m: A (3 ms)\n[err]: B|C in tests/unit/x.tcl\nExpected 1\n\
               [ok]: A (1 ms)\n[exception]: Executing test client: boom.\nmore\n";
    let o = parse("unit/x", raw);
    assert!(o.passed("A") && o.failed("B|C") && o.ok == 2);
    assert_eq!(o.details.get("B|C").map(String::as_str), Some("Expected 1"));
    assert_eq!(o.stops, ["[exception] Executing test client: boom."]);
    let b = parse(
        "unit/x",
        "[err]: RR boom\nERR boom\n[1/1 done]: unit/x (0 seconds)\n",
    );
    assert_eq!(b.stops, ["[block] ERR boom"]);
    let t = parse(
        "unit/x",
        "[ok]: A (1 ms)\n[TIMEOUT]: x\nsock1 => (IN PROGRESS) D\n",
    );
    assert_eq!(t.stops, ["[timeout] D"]);
    let done = parse("unit/x", "[ok]: A (1 ms)\n[1/1 done]: unit/x (0 seconds)\n");
    assert!(done.stops.is_empty());
}

#[test]
fn expected_list_lines_parse_and_name_files_that_run() {
    let files: Vec<&str> = ALL.iter().flat_map(|g| g.iter().map(|u| u.file)).collect();
    for e in expected_list() {
        assert!(
            files.contains(&e.file.as_str()) && !e.name.is_empty() && !e.reason.is_empty(),
            "bad entry: {} | {} | {}",
            e.file,
            e.name,
            e.reason
        );
    }
}
