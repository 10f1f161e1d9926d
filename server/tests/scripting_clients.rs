//! Real client libraries built on Lua scripts, against Tandem: redis-py's `Lock`, a
//! token-bucket rate limiter script and the `limits` package (moving window), driven
//! by `tests/py/script_clients.py`, and rq's job queue (`tests/py/job_queue.py`).
//! Without python3 or those modules a test is skipped with the reason printed, except
//! under CI (`CI=true`), where it fails.
mod common;
use common::*;
use std::process::Command;

/// Why python3 with `modules` cannot run here, if it cannot.
fn missing_python(modules: &str) -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output();
    match out {
        Err(e) => Some(format!("python3 not runnable: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "python3 modules {modules} missing: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// Runs `tests/py/<script>` against a fresh Tandem and requires it to print OK. Without
/// python3 or `modules` the test is skipped with the reason, except under CI.
fn run_python_driver(script: &str, modules: &str) {
    if let Some(why) = missing_python(modules) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the real-client tests: {why}"
        );
        eprintln!("skipping: {why}");
        return;
    }
    let ours = TestServer::start(&[]);
    let path = format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(path)
        .arg(ours.port.to_string())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "{script} failed:\nstdout:\n{stdout}\nstderr (end):\n{}\nserver log:\n{}",
        stderr
            .get(stderr.len().saturating_sub(3000)..)
            .unwrap_or(&stderr),
        ours.stdout()
    );
}

#[test]
fn redis_py_lock_token_bucket_and_limits_work_against_tandem() {
    run_python_driver("script_clients.py", "redis, limits");
}

/// rq (a job queue whose results live in streams) runs a burst of 200 jobs to the end.
#[test]
fn rq_runs_a_burst_of_200_jobs_against_tandem() {
    run_python_driver("job_queue.py", "redis, rq");
}
