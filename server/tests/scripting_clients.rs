//! Real client libraries built on Lua scripts, against Tandem: redis-py's `Lock`, a
//! token-bucket rate limiter script and the `limits` package (moving window), driven
//! by `tests/py/script_clients.py`. Without python3 or those modules the test is
//! skipped with the reason printed, except under CI (`CI=true`), where it fails.
mod common;
use common::*;
use std::process::Command;

/// Why the Python driver cannot run here, if it cannot.
fn missing_python() -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", "import redis, limits"])
        .output();
    match out {
        Err(e) => Some(format!("python3 not runnable: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "python3 modules redis/limits missing: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    }
}

#[test]
fn redis_py_lock_token_bucket_and_limits_work_against_tandem() {
    if let Some(why) = missing_python() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the real-client tests: {why}"
        );
        eprintln!("skipping: {why}");
        return;
    }
    let ours = TestServer::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/script_clients.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(ours.port.to_string())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "script clients failed:\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        ours.stdout()
    );
}

/// rq (a job queue whose results live in streams) runs a burst of 200 jobs to the end.
#[test]
fn rq_runs_a_burst_of_200_jobs_against_tandem() {
    let missing = Command::new("python3")
        .args(["-c", "import redis, rq"])
        .output()
        .map_or(true, |o| !o.status.success());
    if missing {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must run the real-client tests: python3 with redis and rq"
        );
        eprintln!("skipping: python3 modules redis/rq missing");
        return;
    }
    let ours = TestServer::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/job_queue.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(ours.port.to_string())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "rq failed:\nstdout:\n{stdout}\nstderr (last 3000 bytes):\n{}\nserver log:\n{}",
        stderr
            .get(stderr.len().saturating_sub(3000)..)
            .unwrap_or(&stderr),
        ours.stdout()
    );
}
