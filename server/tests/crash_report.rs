//! The crash report (`crash-log-enabled`): a server that dies of a fatal signal
//! first logs Redis's markers ("crashed by signal", "STACK TRACE") with the stack of
//! the crashing thread, then dies of that same signal; with `crash-log-enabled no`
//! it dies without a report. The servers run with core dumps off (`ulimit -c 0`).
mod common;
use common::*;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A server on a free port, logging to `dir/log`, no core dumps.
fn start(dir: &std::path::Path, extra: &str) -> (Child, u16) {
    let port = free_port();
    let bin = server_bin();
    let script = format!(
        "ulimit -c 0; exec '{}' --bind 127.0.0.1 --port {port} --save '' --enable-debug-command yes --logfile '{}' {extra}",
        bin.display(),
        dir.join("log").display()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "server did not start"
    );
    (child, port)
}

/// Waits for the process to end; returns the signal that ended it.
fn ended_by(child: &mut Child) -> Option<i32> {
    let mut status = None;
    let done = wait_until(Duration::from_secs(20), || match child.try_wait() {
        Ok(Some(s)) => {
            status = Some(s);
            true
        }
        _ => false,
    });
    if !done {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the server did not die");
    }
    status.and_then(|s| s.signal())
}

#[test]
fn debug_segfault_writes_the_crash_report_then_dies_of_sigsegv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, port) = start(dir.path(), "");
    let mut c = Conn::connect(port);
    c.send(&[b"DEBUG", b"SEGFAULT"]);
    assert_eq!(ended_by(&mut child), Some(libc::SIGSEGV));
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    assert!(log.contains("crashed by signal: 11"), "{log}");
    assert!(log.contains("------ STACK TRACE ------"), "{log}");
    // The symbolised trace names the source of the command that crashed it (by file:
    // with the debug build's line tables the frame's name is the bare `debug`).
    assert!(log.contains("src/commands/server.rs:"), "{log}");
    assert!(log.contains("=== TANDEM BUG REPORT END ==="), "{log}");
}

#[test]
fn sigabrt_writes_the_crash_report_then_dies_of_sigabrt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, _port) = start(dir.path(), "");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-ABRT", &pid])
        .status()
        .expect("kill")
        .success());
    assert_eq!(ended_by(&mut child), Some(libc::SIGABRT));
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    assert!(log.contains("crashed by signal: 6"), "{log}");
    assert!(log.contains("------ STACK TRACE ------"), "{log}");
}

#[test]
fn crash_log_enabled_no_dies_without_a_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, port) = start(dir.path(), "--crash-log-enabled no");
    let mut c = Conn::connect(port);
    // And CONFIG SET turns it back on and off at runtime.
    assert_eq!(c.cmd("CONFIG SET crash-log-enabled yes"), R::ok());
    assert_eq!(c.cmd("CONFIG SET crash-log-enabled no"), R::ok());
    c.send(&[b"DEBUG", b"SEGFAULT"]);
    assert_eq!(ended_by(&mut child), Some(libc::SIGSEGV));
    let log = std::fs::read_to_string(dir.path().join("log")).expect("log");
    assert!(!log.contains("crashed by signal"), "{log}");
}
