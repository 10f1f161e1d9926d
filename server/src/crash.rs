//! The crash report: when the process dies of a fatal signal (SIGSEGV, SIGBUS,
//! SIGFPE, SIGILL, SIGABRT), a report goes to the log first, as Redis writes one
//! (`crash-log-enabled yes`, the default): the signal, the faulting address, and the
//! stack of the thread that crashed. The process then dies of the same signal with
//! its default action (core dump and exit status unchanged).
//!
//! What the handler does, in order, each step only if the previous one returned:
//! an `alarm` bounds the whole report (a crash inside the allocator could make the
//! symbolised trace wait forever on its lock; SIGALRM then ends the process); the
//! header and the raw frames (`backtrace_symbols_fd`, which does not allocate) are
//! written; then the symbolised Rust trace (from the binary's debug information).
//! The log destination is read with a `try_lock` of the log sink, never a wait.
//!
//! Why unsafe: installing signal handlers and the handler's own calls (`write`,
//! `open`, `backtrace`) are C calls.
#![allow(unsafe_code)]

use std::io::Write;

/// The signals the report is written for.
const FATAL: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGABRT,
];

/// Installs the handler for every fatal signal (`on`), or puts back the default
/// action (`crash-log-enabled no`, for a clean core dump).
pub fn set_enabled(on: bool) {
    for sig in FATAL {
        // SAFETY: a zeroed `sigaction` is a valid value (empty mask, no flags); the
        // handler has the `SA_SIGINFO` signature; `sigaction` only reads `act`.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            if on {
                act.sa_sigaction = handler as *const () as usize;
                // The action resets to the default once it runs. SIGSEGV and SIGBUS
                // run on the thread's alternate stack (the runtime gives its
                // threads a small one), so a stack overflow is reported too; the
                // others on the thread's own stack, which has room for the
                // symbolised trace.
                act.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND;
                if matches!(sig, libc::SIGSEGV | libc::SIGBUS) {
                    act.sa_flags |= libc::SA_ONSTACK;
                }
            } else {
                act.sa_sigaction = libc::SIG_DFL;
            }
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

/// A fixed buffer the header is formatted in (no allocation in the handler).
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes all of `b` to `fd` (plain `write` calls).
fn put(fd: libc::c_int, b: &[u8]) {
    let mut done = 0;
    while done < b.len() {
        // SAFETY: the pointer and length describe the unwritten part of `b`.
        let n = unsafe { libc::write(fd, b[done..].as_ptr().cast(), b.len() - done) };
        if n <= 0 {
            return;
        }
        done += n as usize;
    }
}

/// The log's file descriptor: the `logfile`, opened for appending, or stdout (also
/// when the log sink is busy or the file cannot be opened).
fn log_fd() -> libc::c_int {
    let mut path = [0u8; 4096];
    let len = crate::log::file_for_crash(&mut path);
    if len == 0 || len >= path.len() {
        return libc::STDOUT_FILENO;
    }
    // SAFETY: `path` is NUL-terminated at `len` (zeroed, `len` < its size).
    let fd = unsafe {
        libc::open(
            path.as_ptr().cast(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT,
            0o644,
        )
    };
    if fd < 0 {
        libc::STDOUT_FILENO
    } else {
        fd
    }
}

/// The alternate signal stack [`give_thread_stack`] sets up: room for the
/// symbolised trace.
const ALT_STACK: usize = 256 * 1024;

/// Whether the handler has room for the symbolised trace: it runs on the thread's
/// own stack, or on an alternate stack of [`ALT_STACK`] (the runtime's default one
/// for threads not set up here is a few KiB).
fn roomy_stack() -> bool {
    // SAFETY: a zeroed `stack_t` is valid; with a null new stack `sigaltstack` only
    // writes the current one into `cur`.
    unsafe {
        let mut cur: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut cur) == 0
            && (cur.ss_flags & libc::SS_ONSTACK == 0 || cur.ss_size >= ALT_STACK)
    }
}

/// Gives the calling thread an alternate signal stack of [`ALT_STACK`] for the
/// report (called for the main thread and, through the runtime's thread-start hook,
/// for each runtime thread); [`take_thread_stack`] frees it when the thread stops.
pub fn give_thread_stack() {
    // SAFETY: a fresh private anonymous mapping; `sigaltstack` records it for this
    // thread only. The previous alternate stack (the Rust runtime's) stays mapped:
    // the runtime frees it at the thread's exit as it would have.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            ALT_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return;
        }
        let st = libc::stack_t {
            ss_sp: p,
            ss_flags: 0,
            ss_size: ALT_STACK,
        };
        if libc::sigaltstack(&st, std::ptr::null_mut()) != 0 {
            libc::munmap(p, ALT_STACK);
        }
    }
}

/// Frees the alternate stack [`give_thread_stack`] gave this thread, if it has it.
pub fn take_thread_stack() {
    // SAFETY: the stack is unmapped only if it is the one of ALT_STACK bytes given
    // above and not in use (this is not a signal handler), after being disabled.
    unsafe {
        let mut cur: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(std::ptr::null(), &mut cur) != 0
            || cur.ss_size != ALT_STACK
            || cur.ss_flags & libc::SS_ONSTACK != 0
        {
            return;
        }
        let off = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        if libc::sigaltstack(&off, std::ptr::null_mut()) == 0 {
            libc::munmap(cur.ss_sp, ALT_STACK);
        }
    }
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: `alarm` is async-signal-safe.
    unsafe { libc::alarm(10) };
    let fd = log_fd();
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let (code, addr) = unsafe {
        match info.as_ref() {
            Some(i) => (i.si_code, i.si_addr() as usize),
            None => (0, 0),
        }
    };
    let mut line = Line {
        buf: [0; 512],
        len: 0,
    };
    let _ = write!(
        line,
        "\n\n=== TANDEM BUG REPORT START ===\n{}:M # Tandem {} (Redis {} compatible) crashed by signal: {sig}, si_code: {code}\n",
        std::process::id(),
        env!("CARGO_PKG_VERSION"),
        crate::REDIS_VERSION,
    );
    // The address only for a fault the kernel raised (a signal sent by a process
    // or `raise` has no address: its si_code is 0 or negative).
    if code > 0
        && matches!(
            sig,
            libc::SIGSEGV | libc::SIGBUS | libc::SIGFPE | libc::SIGILL
        )
    {
        let _ = writeln!(line, "Accessing address: {addr:#x}");
    }
    let _ = writeln!(line, "\n------ STACK TRACE ------");
    put(fd, &line.buf[..line.len]);
    let mut frames = [std::ptr::null_mut::<libc::c_void>(); 100];
    // SAFETY: `frames` has room for the 100 entries `backtrace` may fill;
    // `backtrace_symbols_fd` reads the `n` it filled and writes to `fd`.
    unsafe {
        let n = libc::backtrace(frames.as_mut_ptr(), frames.len() as libc::c_int);
        libc::backtrace_symbols_fd(frames.as_ptr(), n, fd);
    }
    if roomy_stack() {
        put(fd, b"\nBacktrace (symbols from the debug information):\n");
        let trace = std::backtrace::Backtrace::force_capture().to_string();
        put(fd, trace.as_bytes());
    }
    put(fd, b"\n=== TANDEM BUG REPORT END ===\n");
    // The action was reset to the default on entry (SA_RESETHAND): the signal sent
    // again ends the process as it would have without the report.
    // SAFETY: `raise` is async-signal-safe.
    unsafe { libc::raise(sig) };
}
