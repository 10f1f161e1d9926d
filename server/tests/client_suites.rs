//! A client library's own test suite as a differential test: redis-py 5.2.1's tests
//! (its source distribution, fetched by `.ci/fetch-client-suites` into
//! `target/client-suites/`) run under pytest against a fresh Tandem and a fresh Redis
//! 7.0.15 side by side, over RESP2 and over RESP3. Every test that passes on Redis
//! must pass on Tandem. (Some fail on both: they need a server on port 6379, a
//! replication link or Redis Enterprise.) A Tandem-only failure is run once more on
//! its own before it counts, so a timing hiccup of the machine is not a divergence.
//!
//! Without the suite or pytest the test is skipped with the reason printed, except
//! under CI (`CI=true`), where it fails.
mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

/// The suite's files that exercise a standalone server (cluster, Sentinel, TLS and the
/// module commands of Redis Stack are left out).
const FILES: &[&str] = &[
    "tests/test_commands.py",
    "tests/test_scripting.py",
    "tests/test_function.py",
    "tests/test_pipeline.py",
    "tests/test_pubsub.py",
    "tests/test_lock.py",
    "tests/test_encoding.py",
    "tests/test_hash.py",
    "tests/test_connection.py",
    "tests/test_monitor.py",
    "tests/test_helpers.py",
    "tests/test_connection_pool.py",
    "tests/test_credentials.py",
    "tests/test_cache.py",
    "tests/test_command_parser.py",
    "tests/test_multiprocessing.py",
    "tests/test_retry.py",
    "tests/test_utils.py",
];

fn suite_dir() -> PathBuf {
    match std::env::var_os("TANDEM_REDIS_PY_SUITE") {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/client-suites/redis-5.2.1")
        }
    }
}

/// Why the suite cannot run here, if it cannot.
fn missing() -> Option<String> {
    let dir = suite_dir();
    if !dir.join("tests/conftest.py").is_file() {
        return Some(format!(
            "no redis-py test suite in {} (run .ci/fetch-client-suites)",
            dir.display()
        ));
    }
    match Command::new("python3")
        .args(["-c", "import pytest, redis"])
        .output()
    {
        Err(e) => Some(format!("python3 not runnable: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "python3 modules pytest, redis missing: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// What one pytest run reported.
struct Outcome {
    failed: BTreeSet<String>,
    passed: usize,
    summary: String,
}

/// Runs `targets` (files or test ids) of the suite against the server on `port`.
fn pytest(port: u16, protocol: u8, targets: &[String]) -> Outcome {
    let out = Command::new("timeout")
        .arg("900")
        .args([
            "python3",
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rfE",
        ])
        .args(["-m", "not onlycluster and not redismod and not ssl"])
        .arg(format!("--redis-url=redis://localhost:{port}/0"))
        .arg(format!("--protocol={protocol}"))
        .args(targets)
        .current_dir(suite_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run pytest");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let failed = text
        .lines()
        .filter(|l| l.starts_with("FAILED ") || l.starts_with("ERROR "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_string)
        .collect();
    let summary = text
        .lines()
        .rev()
        .find(|l| l.contains(" passed") || l.contains(" failed") || l.contains(" error"))
        .unwrap_or("(no summary)")
        .to_string();
    let passed = summary
        .split(", ")
        .find_map(|part| part.trim().strip_suffix(" passed"))
        .and_then(|n| n.trim().rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    Outcome {
        failed,
        passed,
        summary,
    }
}

#[test]
fn redis_py_test_suite_passes_on_tandem_wherever_it_passes_on_redis() {
    if let Some(why) = missing() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run redis-py's test suite: {why}"
        );
        eprintln!("skipping: {why}");
        return;
    }
    let files: Vec<String> = FILES.iter().map(|f| f.to_string()).collect();
    let mut report = Vec::new();
    for protocol in [2u8, 3] {
        // Fresh servers per protocol: the suite leaves ACL users, functions and
        // keys behind.
        let ours = TestServer::start(&["--enable-debug-command", "yes"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let redis = RealRedis::start(dir.path(), "dump.rdb", &[]);
        let redis_port = redis.port;
        let theirs_files = files.clone();
        let theirs = std::thread::spawn(move || pytest(redis_port, protocol, &theirs_files));
        let mine = pytest(ours.port, protocol, &files);
        let theirs = theirs.join().expect("the Redis run");
        assert!(
            theirs.passed > 500,
            "RESP{protocol}: the suite hardly ran on Redis: {}",
            theirs.summary
        );
        assert!(
            mine.passed > 500,
            "RESP{protocol}: the suite hardly ran on Tandem: {}\nserver log:\n{}",
            mine.summary,
            ours.stdout()
        );
        let only_ours: Vec<String> = mine.failed.difference(&theirs.failed).cloned().collect();
        let still = if only_ours.is_empty() {
            BTreeSet::new()
        } else {
            pytest(ours.port, protocol, &only_ours).failed
        };
        eprintln!(
            "RESP{protocol}: Tandem: {}; Redis: {}; failing on Tandem only: {only_ours:?}, again on a rerun: {still:?}",
            mine.summary, theirs.summary
        );
        if !still.is_empty() {
            report.push(format!("RESP{protocol}: {still:?}"));
        }
        drop(redis);
    }
    assert!(
        report.is_empty(),
        "redis-py tests that pass on Redis 7.0.15 fail on Tandem: {report:?}"
    );
}
