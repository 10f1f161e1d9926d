//! Process shell: `daemonize yes` and the pidfile.
//!
//! Why unsafe: detaching needs fork(2), setsid(2) and dup2(2), which std does not
//! offer. This is the one module allowed to use `unsafe`; it is called from `main`
//! before the tokio runtime (or any other thread) exists, so forking a
//! single-threaded process is sound.
#![allow(unsafe_code)]

use std::io;

/// Where Redis writes its pid when daemonized without a `pidfile` directive.
pub const DEFAULT_PIDFILE: &str = "/var/run/redis.pid";

/// Forks; the parent exits 0, the child starts a new session and points
/// stdin/stdout/stderr at /dev/null (like Redis's `daemonize()`).
pub fn daemonize() -> io::Result<()> {
    // SAFETY: no other thread exists yet (see the module doc); the child only
    // continues running ordinary Rust code in its own copy of the process.
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {}
        // SAFETY: _exit ends the parent immediately without running destructors or
        // flushing stdio buffers the child also owns.
        _ => unsafe { libc::_exit(0) },
    }
    // SAFETY: plain syscall without pointers.
    if unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error());
    }
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    use std::os::fd::AsRawFd;
    let fd = null.as_raw_fd();
    for target in 0..=2 {
        // SAFETY: `fd` is a valid open descriptor for the duration of the call;
        // dup2 atomically replaces the standard descriptor.
        if unsafe { libc::dup2(fd, target) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    // `null` is closed on drop; 0..2 keep their duplicates.
    Ok(())
}

/// Writes our pid to `path` (Redis logs a warning and continues on failure).
pub fn write_pidfile(path: &str) {
    if path.is_empty() {
        return;
    }
    if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
        crate::warning!("Failed to write PID file: {}", crate::config::strerror(&e));
    }
}

/// Removes the pidfile at shutdown.
pub fn remove_pidfile(path: &str) {
    if path.is_empty() {
        return;
    }
    crate::notice!("Removing the pid file.");
    let _ = std::fs::remove_file(path);
}
