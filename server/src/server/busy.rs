//! The busy-script machinery (Redis `busy-reply-threshold`): a script runs with the
//! store locked, so past the threshold the server declares itself busy, hands its
//! tokio worker core to a fresh thread so the other connections keep being served
//! (with `-BUSY` replies), and lets SCRIPT KILL stop a script that has not written.
//!
//! Shared between the running script (its instruction hook) and the connections
//! that must not wait for the store lock: everything here is atomics. The fast path
//! of a connection is one atomic load.

use crate::util::Mono;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The reply every command but the few allowed ones gets while a script is busy.
pub const BUSY_ERR: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// The BUSY reply while a function (FCALL) runs.
pub const BUSY_FUNCTION_ERR: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
pub const NOTBUSY_ERR: &str = "NOTBUSY No scripts in execution right now.";
pub const UNKILLABLE_ERR: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
/// The error a killed script fails with.
pub const KILLED_ERR: &str = "ERR Script killed by user with SCRIPT KILL...";

/// How many Lua instructions run between two looks at the clock and the kill flag.
pub const HOOK_EVERY: u32 = 100_000;

/// State of the script in execution, if any.
#[derive(Debug)]
pub struct Busy {
    /// The clock's origin: a [`Mono`] reading (every script start reads the clock;
    /// an `Instant` subtraction normalises a seconds/nanoseconds pair with checks).
    base: Mono,
    /// A script is running (between `start` and `end`).
    running: AtomicBool,
    /// The running script passed the threshold: others get BUSY.
    busy: AtomicBool,
    kill: AtomicBool,
    /// The running script called a write command (SCRIPT KILL then refuses).
    wrote: AtomicBool,
    /// When the hook last made sure the worker core was handed away (ns since `base`).
    released_ns: AtomicU64,
    /// Serves other clients from the hook of a script that runs on an event-loop
    /// thread (set by the network layer when it starts its loops; true: this thread
    /// is one, and it served them).
    serve_hook: std::sync::OnceLock<fn() -> bool>,
    /// When the running script started, in ns since `base`.
    start_ns: AtomicU64,
    threshold_ms: AtomicU64,
    /// The running script is a function (FCALL): FUNCTION KILL, not SCRIPT KILL, stops it.
    function: AtomicBool,
    /// What FUNCTION STATS shows while a function is busy (read by the connections,
    /// which cannot take the store lock; a lock, not atomics, as it is rarely read).
    running_function: parking_lot::Mutex<Option<RunningFunction>>,
    /// The store's side of commands served while busy (WATCH registrations, the keys
    /// and channels UNWATCH, DISCARD or RESET release), applied in order when the
    /// script ends, before any other command. Added to only while busy: a
    /// connection that finds the script ended runs its command the normal way.
    deferred: parking_lot::Mutex<Jobs>,
    /// `deferred` holds jobs (so a run that deferred nothing takes no lock for them).
    jobs_pending: AtomicBool,
    /// The server was a replica when the script started (HELLO's `role` while busy;
    /// the role cannot change while the script holds the store).
    replica: AtomicBool,
}

/// Work on the store left by a command served while a script is busy.
pub type Deferred = Box<dyn FnOnce(&mut super::Store) + Send>;

/// The deferred work, in order.
#[derive(Default)]
pub struct Jobs(Vec<Deferred>);

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jobs({})", self.0.len())
    }
}

/// The function in execution, as FUNCTION STATS describes it.
#[derive(Debug, Clone)]
pub struct RunningFunction {
    pub name: String,
    /// The command that called it (FCALL and its arguments).
    pub command: Vec<bytes::Bytes>,
    pub libraries: usize,
    pub functions: usize,
}

impl Default for Busy {
    fn default() -> Self {
        Busy {
            base: Mono::now(),
            running: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            kill: AtomicBool::new(false),
            wrote: AtomicBool::new(false),
            released_ns: AtomicU64::new(0),
            serve_hook: std::sync::OnceLock::new(),
            start_ns: AtomicU64::new(0),
            threshold_ms: AtomicU64::new(5000),
            function: AtomicBool::new(false),
            running_function: parking_lot::Mutex::new(None),
            deferred: parking_lot::Mutex::new(Jobs::default()),
            jobs_pending: AtomicBool::new(false),
            replica: AtomicBool::new(false),
        }
    }
}

/// A script in execution: [`Busy::start`] now, [`Busy::end`] when dropped, however
/// the run ends (a panic unwinding through it included).
pub struct Running<'a>(&'a Busy);

impl<'a> Running<'a> {
    pub fn start(busy: &'a Busy, threshold_ms: u64) -> Self {
        busy.start(threshold_ms);
        Running(busy)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// What SCRIPT KILL answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    Killed,
    NotBusy,
    Unkillable,
}

impl Busy {
    /// Nanoseconds since `base`.
    #[inline]
    fn now_ns(&self) -> u64 {
        Mono::now().nanos_since(self.base)
    }

    /// True while a script is past its threshold (the connections' check).
    /// Installs the event loops' way of serving clients while busy (once).
    pub fn set_serve_hook(&self, hook: fn() -> bool) {
        let _ = self.serve_hook.set(hook);
    }

    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// A script starts; `threshold_ms` is `busy-reply-threshold` read now.
    pub fn start(&self, threshold_ms: u64) {
        self.start_ns.store(self.now_ns(), Ordering::Relaxed);
        self.threshold_ms.store(threshold_ms, Ordering::Relaxed);
        self.kill.store(false, Ordering::Relaxed);
        self.wrote.store(false, Ordering::Relaxed);
        self.released_ns.store(0, Ordering::Relaxed);
        self.running.store(true, Ordering::Release);
    }

    /// The script ended (normally, by error or killed). Work deferred meanwhile is
    /// kept for [`Busy::take_deferred`]; none can be added from now on.
    pub fn end(&self) {
        // Work is deferred only while busy, and only the running script's hook (on
        // this thread) declares busy: a run that never did races with no `defer`,
        // and ends without the lock (most runs: two atomic read-modify-writes less).
        if !self.busy.load(Ordering::Relaxed) {
            self.running.store(false, Ordering::Release);
            self.kill.store(false, Ordering::Release);
            return;
        }
        // Under the jobs' lock, so no job is added once the runner may have taken them.
        let _jobs = self.deferred.lock();
        self.running.store(false, Ordering::Release);
        self.busy.store(false, Ordering::Release);
        self.kill.store(false, Ordering::Release);
    }

    /// Leaves `job` for when the script ends; gives it back if no script is busy
    /// any more (the caller then runs its command with the store).
    pub fn defer(&self, job: Deferred) -> Result<(), Deferred> {
        let mut deferred = self.deferred.lock();
        if !self.is_busy() {
            return Err(job);
        }
        deferred.0.push(job);
        self.jobs_pending.store(true, Ordering::Release);
        Ok(())
    }

    /// The work deferred during the script that ended, in order (the runner applies
    /// it with the store before releasing it).
    pub fn take_deferred(&self) -> Vec<Deferred> {
        // Set under the lock by `defer`; the runner reads it after `end`, whose lock
        // (taken whenever a job could have been added) orders it after the push.
        if !self.jobs_pending.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut jobs = self.deferred.lock();
        self.jobs_pending.store(false, Ordering::Relaxed);
        std::mem::take(&mut jobs.0)
    }

    /// Records the server's role as a script starts.
    pub fn set_replica(&self, replica: bool) {
        self.replica.store(replica, Ordering::Relaxed);
    }

    /// Whether the server was a replica when the running script started.
    pub fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Relaxed)
    }

    /// Says whether the script about to start is a function (before `start`).
    pub fn set_function(&self, function: bool) {
        self.function.store(function, Ordering::Release);
    }

    /// Records (or clears) the function about to run, for FUNCTION STATS.
    pub fn set_running_function(&self, f: Option<RunningFunction>) {
        *self.running_function.lock() = f;
    }

    /// The running function and for how long it has run (ms), if a function runs.
    pub fn running_function(&self) -> Option<(RunningFunction, u64)> {
        if !self.running.load(Ordering::Acquire) || !self.is_function() {
            return None;
        }
        let f = self.running_function.lock().clone()?;
        let now = self.now_ns();
        let ms = now.saturating_sub(self.start_ns.load(Ordering::Relaxed)) / 1_000_000;
        Some((f, ms))
    }

    /// Whether the running script is a function.
    pub fn is_function(&self) -> bool {
        self.function.load(Ordering::Acquire)
    }

    /// The BUSY reply for the running script's kind.
    pub fn busy_error(&self) -> &'static str {
        if self.is_function() {
            BUSY_FUNCTION_ERR
        } else {
            BUSY_ERR
        }
    }

    /// Whether the running script called a write command (SCRIPT KILL refuses then).
    pub fn has_written(&self) -> bool {
        self.wrote.load(Ordering::Acquire)
    }

    pub fn mark_wrote(&self) {
        self.wrote.store(true, Ordering::Relaxed);
    }

    /// Whether SCRIPT KILL was accepted for the running script.
    pub fn killed(&self) -> bool {
        self.kill.load(Ordering::Acquire)
    }

    /// SCRIPT KILL from another connection.
    pub fn request_kill(&self) -> KillOutcome {
        if !self.is_busy() {
            return KillOutcome::NotBusy;
        }
        if self.wrote.load(Ordering::Acquire) {
            return KillOutcome::Unkillable;
        }
        self.kill.store(true, Ordering::Release);
        KillOutcome::Killed
    }

    /// The instruction hook: fails the script once killed; past the threshold,
    /// declares the server busy and releases the worker core.
    pub fn on_hook(&self) -> Result<(), &'static str> {
        if self.kill.load(Ordering::Acquire) {
            return Err(KILLED_ERR);
        }
        if !self.running.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = self.now_ns();
        if !self.busy.load(Ordering::Relaxed) {
            let elapsed_ms = now.saturating_sub(self.start_ns.load(Ordering::Relaxed)) / 1_000_000;
            if elapsed_ms < self.threshold_ms.load(Ordering::Relaxed) {
                return Ok(());
            }
            crate::warning!(
                "Slow script detected: still in execution after {elapsed_ms} milliseconds. You can try killing the script using the SCRIPT KILL command."
            );
            self.busy.store(true, Ordering::Release);
        }
        // On an event-loop thread the hook itself serves the loop's other clients.
        if self.serve_hook.get().is_some_and(|serve| serve()) {
            return Ok(());
        }
        // Not once but every 50 ms: a core handed away can come back to this thread
        // (a task on the new thread that itself blocks in place puts the core where
        // this thread's hand-over reclaims it), and then the other tasks would wait
        // for the script. A hand-over from a thread without a core costs a task spawn.
        if now.saturating_sub(self.released_ns.load(Ordering::Relaxed)) >= 50_000_000 {
            release_worker();
            self.released_ns.store(self.now_ns(), Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Runs `f`, which blocks until the busy script ends, without holding a tokio
/// worker core (outside a multi-threaded runtime it just runs `f`).
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            // This thread's round-end replies go out before it stops being a worker.
            crate::rounds::leave_worker();
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Hands this thread's tokio worker core to another thread, so the connection tasks
/// run while this thread keeps executing the script with the store locked. Waits
/// (bounded) until a task ran elsewhere, which proves the hand-over happened; after
/// that this thread carries on without a core. False if no task ran in time.
fn release_worker() -> bool {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let Ok(handle) = Handle::try_current() else {
        return true;
    };
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
        return true;
    }
    crate::rounds::leave_worker();
    tokio::task::block_in_place(|| {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        handle.spawn(async move { flag.store(true, Ordering::Release) });
        let deadline = Instant::now() + Duration::from_millis(200);
        while !ran.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        ran.load(Ordering::Acquire)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_is_refused_when_not_busy_or_after_a_write() {
        let b = Busy::default();
        assert_eq!(b.request_kill(), KillOutcome::NotBusy);
        b.start(0);
        assert!(b.on_hook().is_ok());
        assert!(b.is_busy(), "threshold 0 makes the first hook declare busy");
        b.mark_wrote();
        assert_eq!(b.request_kill(), KillOutcome::Unkillable);
        b.end();
        b.start(0);
        let _ = b.on_hook();
        assert_eq!(b.request_kill(), KillOutcome::Killed);
        assert_eq!(b.on_hook(), Err(KILLED_ERR));
        b.end();
        assert!(!b.is_busy() && !b.killed());
    }

    #[test]
    fn work_is_deferred_only_while_busy_and_taken_in_order_after_the_end() {
        let b = Busy::default();
        assert!(b.defer(Box::new(|_| {})).is_err(), "not busy: run it now");
        b.start(0);
        assert!(b.defer(Box::new(|_| {})).is_err(), "running, not yet busy");
        let _ = b.on_hook();
        for db in [3, 5] {
            assert!(b
                .defer(Box::new(move |s: &mut super::super::Store| s.dirty += db))
                .is_ok());
        }
        b.end();
        assert!(
            b.defer(Box::new(|_| {})).is_err(),
            "ended: nothing more kept"
        );
        let server = super::super::Server::new(crate::config::Config::default());
        let mut store = server.store.lock();
        let before = store.dirty;
        let jobs = b.take_deferred();
        assert_eq!(jobs.len(), 2);
        for job in jobs {
            job(&mut store);
        }
        assert_eq!(store.dirty, before + 8);
        assert!(b.take_deferred().is_empty());
    }
}
