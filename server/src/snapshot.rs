//! Fork-based point-in-time snapshots, as Redis takes them for BGSAVE,
//! BGREWRITEAOF and the replication full sync.
//!
//! The caller forks while it holds the store lock, so the child's copy of the
//! address space holds a consistent dataset; the kernel shares the pages
//! copy-on-write, so the only pause clients see is fork(2) itself (page-table
//! copy: tens of milliseconds for a million keys, against a full structural clone
//! of every database before).
//!
//! Rules for the closure that runs in the child (the process is multi-threaded
//! and only the forking thread survives in the child):
//! - lock nothing another thread may have held at fork time: no `server.store`,
//!   no `crate::log`, no config lock; use the `&Store`/`&[Db]` borrowed from the
//!   parent's guard and options computed before the fork;
//! - allocation is fine (glibc's malloc resets its locks across fork), as are
//!   plain file syscalls; report errors with [`child_stderr`] or an exit code.
//!
//! The child asks for SIGKILL when its parent thread dies (`PR_SET_PDEATHSIG`),
//! so a killed server leaves no orphan writing in the background. Note that the
//! "parent" for that purpose is the forking thread: forks happen on tokio worker
//! threads, which live as long as the runtime.
//!
//! Children are kept in their server's registry ([`Children`]) so its shutdown can
//! kill them ([`Children::kill_all`]); a
//! waiter removes its pid from the registry before reaping it, so a pid is never
//! signalled after it could have been reused.
//!
//! Bulk work (a snapshot child's encoding, a replica's streamed load) runs with a
//! long scheduler slice ([`BulkSlice`]) so the threads that answer clients
//! preempt it as soon as they wake, instead of waiting out its slice.
//!
//! Why unsafe: fork(2), prctl(2), waitid(2)/waitpid(2), kill(2), pipe2(2),
//! close_range(2), sched_getattr(2)/sched_setattr(2) and _exit(2) have no safe std
//! equivalent. Each block says why it is sound.
#![allow(unsafe_code)]

use parking_lot::Mutex;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A forked child: its pid and, optionally, the temp file it writes (removed when
/// the child is killed at shutdown).
#[derive(Debug)]
struct Live {
    pid: libc::pid_t,
    temp: Option<PathBuf>,
}

/// The running snapshot children of one server (`Server::children`), so its shutdown
/// kills its own children and no other server's, and the server's fork counters
/// (INFO stats `latest_fork_usec`, `total_forks`). Cloning shares both.
#[derive(Debug, Default, Clone)]
pub struct Children {
    live: Arc<Mutex<Vec<Live>>>,
    forks: Arc<ForkStats>,
}

/// What INFO reports about forks: the duration of the last fork(2) call in the
/// parent (the page-table copy clients wait for; Redis times the same call) and
/// how many forks succeeded.
#[derive(Debug, Default)]
struct ForkStats {
    latest_usec: AtomicU64,
    total: AtomicU64,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "child exited with code {c}"),
            Exit::Signal(s) => write!(f, "child terminated by signal {s}"),
        }
    }
}

/// Handle on a forked child. Dropping it does not wait: call [`Child::wait`].
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    registry: Children,
}

impl Child {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Records the temp file the child writes, so [`Children::kill_all`] can remove it.
    pub fn set_temp(&self, path: PathBuf) {
        if let Some(l) = self
            .registry
            .live
            .lock()
            .iter_mut()
            .find(|l| l.pid == self.pid)
        {
            l.temp = Some(path);
        }
    }

    /// Sends SIGKILL (no-op once the child has been reaped).
    pub fn kill(&self) {
        let g = self.registry.live.lock();
        if g.iter().any(|l| l.pid == self.pid) {
            // SAFETY: plain syscall; the pid is still unreaped (it is in the registry,
            // which the waiter leaves before reaping), so it names our child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
    }

    /// Blocks until the child exits, then reaps it. Call from a thread that may
    /// block (a dedicated thread or `spawn_blocking`).
    pub fn wait(self) -> Exit {
        // Wait for the exit without reaping, so the pid stays ours while it is
        // still in the registry.
        loop {
            // SAFETY: `info` is a valid out-pointer for the duration of the call.
            let r = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(
                    libc::P_PID,
                    self.pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
        self.registry.live.lock().retain(|l| l.pid != self.pid);
        let mut status = 0;
        loop {
            // SAFETY: `status` is a valid out-pointer; the pid is our child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                break;
            }
            if r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // Already reaped elsewhere (should not happen): report a failure.
            return Exit::Code(-1);
        }
        if libc::WIFEXITED(status) {
            Exit::Code(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(-1)
        }
    }
}

impl Children {
    /// Number of snapshot children currently running.
    pub fn len(&self) -> usize {
        self.live.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Microseconds the last successful fork(2) took in the parent (0: none yet).
    pub fn latest_fork_usec(&self) -> u64 {
        self.forks.latest_usec.load(Ordering::Relaxed)
    }

    /// Successful forks since start (or since CONFIG RESETSTAT).
    pub fn total_forks(&self) -> u64 {
        self.forks.total.load(Ordering::Relaxed)
    }

    /// CONFIG RESETSTAT: `total_forks` and `latest_fork_usec` start again.
    pub fn reset_stats(&self) {
        self.forks.total.store(0, Ordering::Relaxed);
        self.forks.latest_usec.store(0, Ordering::Relaxed);
    }

    /// Kills one running child (an AOF rewrite abandoned for a full sync), waits
    /// until it is dead and removes its temp file. False if it was already reaped.
    pub fn kill(&self, pid: i32) -> bool {
        let g = self.live.lock();
        match g.iter().position(|l| l.pid == pid) {
            Some(i) => kill_all(&g[i..=i]) == 1,
            None => false,
        }
    }

    /// Kills every running snapshot child (shutdown), waits for each to die and
    /// removes the temp files they were writing. Returns how many were killed.
    pub fn kill_all(&self) -> usize {
        kill_all(&self.live.lock())
    }
}

fn kill_all(g: &[Live]) -> usize {
    for l in g.iter() {
        // SAFETY: plain syscall on an unreaped child of ours (see `Child::kill`).
        unsafe { libc::kill(l.pid, libc::SIGKILL) };
    }
    for l in g.iter() {
        // Wait (without reaping: the waiter thread does that) until it is dead so
        // it cannot recreate the temp file after we remove it.
        // SAFETY: `info` is a valid out-pointer for the duration of the call.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                l.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            );
        }
        if let Some(t) = &l.temp {
            let _ = std::fs::remove_file(t);
        }
    }
    g.len()
}

/// The calling thread's fair-scheduler slice set long for as long as the guard
/// lives, then back to the default.
///
/// Under the EEVDF scheduler (Linux 6.6+; custom slices since 6.12) a task's
/// slice does not change its share of the CPU (that is its weight, i.e. its nice
/// value), only its latency: a woken task whose slice is shorter than the running
/// one's preempts it at once (`PREEMPT_SHORT`), and a long slice puts the
/// running task's virtual deadline late. A bulk job with a long slice so yields
/// the CPU to every short request-serving wake-up (the server's own event loop,
/// a client, a co-located replica) and still gets its full share over time. On
/// older kernels the slice is ignored; every failure is ignored too (this only
/// tunes latency).
#[must_use = "the slice returns to the default when the guard drops"]
pub struct BulkSlice {
    set: bool,
}

/// The bulk slice: several times the default (0.75 ms scaled by up to 4 with the
/// CPU count), so every default-slice wake-up preempts it, and short enough that
/// CPU time stays shared in fine steps (the kernel accepts 0.1-100 ms).
const BULK_SLICE_NS: u64 = 10_000_000;

impl BulkSlice {
    /// Gives the calling thread the long slice.
    pub fn enter() -> Self {
        BulkSlice {
            set: set_own_slice(BULK_SLICE_NS),
        }
    }
}

impl Drop for BulkSlice {
    fn drop(&mut self) {
        if self.set {
            // 0 = the scheduler's default slice.
            set_own_slice(0);
        }
    }
}

/// Sets the calling thread's custom slice (ns; 0 = default), keeping its policy and
/// nice value. Only for SCHED_OTHER/SCHED_BATCH threads. True if it was set.
fn set_own_slice(ns: u64) -> bool {
    let size = std::mem::size_of::<libc::sched_attr>() as u32;
    // SAFETY: sched_attr is plain integers; all-zero is a valid value.
    let mut attr: libc::sched_attr = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 = the calling thread; `attr` is a live out-buffer of `size`
    // bytes, as the size argument says.
    let got = unsafe {
        libc::syscall(
            libc::SYS_sched_getattr,
            0 as libc::pid_t,
            &mut attr as *mut libc::sched_attr,
            size,
            0 as libc::c_uint,
        )
    };
    let policy = attr.sched_policy as libc::c_int;
    if got != 0 || (policy != libc::SCHED_OTHER && policy != libc::SCHED_BATCH) {
        return false;
    }
    attr.size = size;
    attr.sched_runtime = ns;
    attr.sched_flags = 0;
    // SAFETY: pid 0 = the calling thread; `attr` is a fully initialised sched_attr
    // whose size field matches the struct.
    let set = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0 as libc::pid_t,
            &attr as *const libc::sched_attr,
            0 as libc::c_uint,
        )
    };
    set == 0
}

/// A pipe (read end, write end), both close-on-exec.
pub fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid two-element out-array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Writes `msg` to stderr with a raw write(2): safe in a forked child, where
/// std's stderr lock may be held by a thread that no longer exists.
pub fn child_stderr(msg: &str) {
    let b = msg.as_bytes();
    // SAFETY: the pointer/length pair describes a live byte slice.
    unsafe { libc::write(2, b.as_ptr().cast(), b.len()) };
}

/// Closes every descriptor >= 3 except those in `keep` (child side), so the
/// child does not hold listening sockets, client sockets or another child's pipe
/// open. Uses close_range(2) (Linux 5.9+), else walks /proc/self/fd.
fn close_fds_except(keep: &[RawFd]) {
    if close_range_except(keep).is_err() {
        let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        for fd in fds {
            if fd > 2 && !keep.contains(&fd) {
                // SAFETY: closing a descriptor nothing in the child uses (the
                // directory iterator's own descriptor is already closed).
                unsafe { libc::close(fd) };
            }
        }
    }
}

fn close_range_except(keep: &[RawFd]) -> Result<(), ()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&f| f > 2).collect();
    keep.sort_unstable();
    let mut first: libc::c_uint = 3;
    for k in keep {
        let k = k as libc::c_uint;
        if k > first {
            // SAFETY: close_range only closes descriptors; nothing in the child
            // uses the ones in this range.
            let r =
                unsafe { libc::syscall(libc::SYS_close_range, first, k - 1, 0 as libc::c_uint) };
            if r != 0 {
                return Err(());
            }
        }
        first = k + 1;
    }
    // SAFETY: as above.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(())
    }
}

/// Test and benchmark hook: a non-empty `TANDEM_SNAPSHOT_NO_FORK` makes every
/// fork fail, so callers take their in-process fallback.
fn fork_disabled() -> bool {
    std::env::var_os("TANDEM_SNAPSHOT_NO_FORK").is_some_and(|v| !v.is_empty())
}

/// Forks. The child closes every descriptor >= 3 not in `keep`, arranges to be
/// killed when the parent dies, runs `f` and `_exit`s with its return value (1 if
/// `f` panics). The parent gets a [`Child`] to wait for or kill.
///
/// Call it while holding the lock that makes the data `f` reads consistent; see
/// the module doc for what `f` may do.
pub fn fork_child<F: FnOnce() -> i32>(
    registry: &Children,
    keep: &[RawFd],
    f: F,
) -> io::Result<Child> {
    if fork_disabled() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "fork disabled by TANDEM_SNAPSHOT_NO_FORK",
        ));
    }
    // SAFETY: plain syscall.
    let parent = unsafe { libc::getpid() };
    // Hold the registry across the fork so a concurrent kill_all() cannot miss
    // this child; the child never touches it.
    let mut live = registry.live.lock();
    let started = Instant::now();
    // SAFETY: the child only runs `f` (which by contract takes no lock another
    // thread may hold, see the module doc) and then _exit; the parent continues
    // normally.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // SAFETY: prctl/getppid are plain syscalls. If the parent already died
            // between fork and prctl, the death signal was missed: exit now.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            // The runtime's SIGTERM/SIGINT handlers would only poke descriptors
            // closed below: restore the default actions so those signals end
            // the child.
            // SAFETY: plain syscalls installing the default disposition.
            unsafe {
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                libc::signal(libc::SIGINT, libc::SIG_DFL);
            }
            close_fds_except(keep);
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(1);
            // SAFETY: _exit ends the child without running destructors, atexit
            // handlers or flushing buffers it shares with the parent.
            unsafe { libc::_exit(code) }
        }
        pid => {
            let usec = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            registry.forks.latest_usec.store(usec, Ordering::Relaxed);
            registry.forks.total.fetch_add(1, Ordering::Relaxed);
            live.push(Live { pid, temp: None });
            Ok(Child {
                pid,
                registry: registry.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    /// This thread's slice in ns, as /proc shows it (None: the kernel has no
    /// per-task slice, before EEVDF).
    fn own_slice() -> Option<u64> {
        let sched = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
        let line = sched.lines().find(|l| l.starts_with("se.slice"))?;
        line.split(':').nth(1)?.trim().parse().ok()
    }

    /// Custom slices for fair tasks came with Linux 6.12.
    fn custom_slices() -> bool {
        let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut it = rel.split(|c: char| !c.is_ascii_digit());
        let major: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        let minor: u32 = it.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        (major, minor) >= (6, 12)
    }

    #[test]
    fn bulk_slice_is_long_while_held_and_default_after() {
        // A thread of its own: the guard changes the calling thread only.
        std::thread::spawn(|| {
            let Some(before) = own_slice() else {
                return; // no EEVDF slices on this kernel: nothing to observe
            };
            let guard = BulkSlice::enter();
            if custom_slices() {
                assert!(guard.set);
                assert_eq!(own_slice(), Some(BULK_SLICE_NS));
                assert!(BULK_SLICE_NS > before);
            }
            drop(guard);
            assert_eq!(own_slice(), Some(before));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn child_exit_code_and_pipe() {
        let (mut r, w) = pipe().unwrap();
        let data = vec![7u8; 100_000];
        let fd = w.as_raw_fd();
        let children = Children::default();
        let child = fork_child(&children, &[fd], || {
            let mut w = &w;
            if w.write_all(&data).is_err() {
                return 3;
            }
            5
        })
        .unwrap();
        drop(w);
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), 100_000);
        assert_eq!(child.wait(), Exit::Code(5));
    }

    #[test]
    fn forks_are_counted_and_timed_per_registry() {
        let children = Children::default();
        let other = Children::default();
        assert_eq!(
            (children.total_forks(), children.latest_fork_usec()),
            (0, 0)
        );
        for _ in 0..2 {
            fork_child(&children, &[], || 0).unwrap().wait();
        }
        assert_eq!(children.total_forks(), 2);
        // A fork copies at least the page tables of this test process: it is never
        // instantaneous at microsecond resolution.
        assert!(children.latest_fork_usec() > 0);
        assert_eq!(other.total_forks(), 0, "one registry per server");
    }

    #[test]
    fn kill_reports_signal() {
        let children = Children::default();
        let other = Children::default();
        let child = fork_child(&children, &[], || {
            std::thread::sleep(std::time::Duration::from_secs(30));
            0
        })
        .unwrap();
        assert_eq!(
            (children.len(), other.len()),
            (1, 0),
            "one registry per server"
        );
        child.kill();
        let pid = child.pid();
        assert_eq!(child.wait(), Exit::Signal(libc::SIGKILL));
        assert!(children.is_empty());
        // Reaped: no zombie left behind.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
