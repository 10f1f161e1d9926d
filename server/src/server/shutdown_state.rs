//! The shutdown request and its progress (`Server::shutdown_req`): state only,
//! in the state layer so that commands and persistence can read it without
//! depending on `crate::shutdown`, which carries the shutdown out.

use parking_lot::Mutex;

/// What a shutdown was asked to do (SHUTDOWN's arguments, or the signal's
/// configured flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownFlags {
    /// None = save if save points are configured; Some(true) = SAVE; Some(false) = NOSAVE.
    pub save: Option<bool>,
    /// Skip the wait for lagging replicas.
    pub now: bool,
    /// Exit even if the final save fails.
    pub force: bool,
}

impl ShutdownFlags {
    /// `shutdown-on-sigterm` / `shutdown-on-sigint` (validated words: default,
    /// save, nosave, now, force).
    pub fn from_config_words(words: &str) -> ShutdownFlags {
        let mut f = ShutdownFlags::default();
        for w in words.split_whitespace() {
            match w.to_ascii_lowercase().as_str() {
                "save" => f.save = Some(true),
                "nosave" => f.save = Some(false),
                "now" => f.now = true,
                "force" => f.force = true,
                _ => {}
            }
        }
        f
    }
}

/// Resolves once `stop` (a receiver of `Server::shutdown`) says the server is
/// stopping, at once if it already did. A receiver subscribed after the signal
/// (a replica handed over in the moment before the accept loop stopped) has
/// already seen it, so a bare `changed()` would wait for a next change that never
/// comes: harmless when the process exits next, but with two servers in one
/// process the task would outlive its server and keep the link open.
pub async fn stopping(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // Also resolves when the sender is gone (the server value was dropped).
    let _ = stop.wait_for(|&down| down).await;
}

/// The shutdown request and its progress (one per server).
#[derive(Debug)]
pub struct ShutdownRequest {
    inner: Mutex<Inner>,
    /// Wakes the main task: a new request or an abort.
    wake: tokio::sync::Notify,
    /// The number of the last attempt that ended without exiting.
    ended: tokio::sync::watch::Sender<u64>,
    /// Clients waiting for the outcome of their SHUTDOWN (INFO `blocked_clients`
    /// counts them, as Redis does).
    waiting: std::sync::atomic::AtomicUsize,
}

impl Default for ShutdownRequest {
    fn default() -> Self {
        ShutdownRequest {
            inner: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            ended: tokio::sync::watch::channel(0).0,
            waiting: Default::default(),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// A request the main task has not taken yet.
    requested: Option<ShutdownFlags>,
    /// The shutdown being carried out.
    active: Option<ShutdownFlags>,
    /// Number of the latest attempt.
    attempt: u64,
    /// SHUTDOWN ABORT arrived while the shutdown was being carried out.
    abort: bool,
    /// When the wait for lagging replicas gives up (INFO `shutdown_in_milliseconds`).
    wait_deadline: Option<std::time::Instant>,
}

impl ShutdownRequest {
    /// Asks the server to stop; returns the attempt the caller waits for (see
    /// [`ShutdownRequest::outcome`]). While a shutdown is already requested or
    /// running, the caller joins it (its own flags are not used, as in Redis).
    pub fn request(&self, flags: ShutdownFlags) -> u64 {
        let mut inner = self.inner.lock();
        if inner.requested.is_none() && inner.active.is_none() {
            inner.attempt += 1;
            inner.requested = Some(flags);
            self.wake.notify_one();
        }
        inner.attempt
    }

    /// SHUTDOWN ABORT: cancels a shutdown that was requested or is being carried
    /// out (the main task sees [`ShutdownRequest::abort_pending`]). False if
    /// there is none.
    pub fn abort(&self) -> bool {
        let mut inner = self.inner.lock();
        if inner.active.is_some() {
            inner.abort = true;
            self.wake.notify_one();
            true
        } else if inner.requested.take().is_some() {
            crate::notice!("Shutdown manually aborted.");
            self.ended.send_replace(inner.attempt);
            true
        } else {
            false
        }
    }

    /// Marks the wait for lagging replicas as running until `deadline` (or over).
    pub fn set_wait_deadline(&self, deadline: Option<std::time::Instant>) {
        self.inner.lock().wait_deadline = deadline;
    }

    /// Milliseconds left of a running wait for lagging replicas (0 once it passed
    /// its deadline); `None` when there is none.
    pub fn ms_left(&self) -> Option<u64> {
        let deadline = self.inner.lock().wait_deadline?;
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        Some(u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn abort_pending(&self) -> bool {
        self.inner.lock().abort
    }

    /// Waits for a request (taken, and marked in progress).
    pub async fn next_request(&self) -> ShutdownFlags {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.inner.lock();
                if let Some(f) = inner.requested.take() {
                    inner.active = Some(f);
                    inner.abort = false;
                    return f;
                }
            }
            notified.await;
        }
    }

    /// Resolves at the next request or abort (a wait re-checks its state).
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Marks a shutdown started by a signal (no request to take) as in progress.
    pub fn begin(&self, flags: ShutdownFlags) {
        let mut inner = self.inner.lock();
        inner.attempt += 1;
        inner.requested = None;
        inner.active = Some(flags);
        inner.abort = false;
    }

    /// Ends the attempt in progress without exiting: its waiters are told.
    pub fn end_attempt(&self) {
        let mut inner = self.inner.lock();
        inner.active = None;
        inner.abort = false;
        self.ended.send_replace(inner.attempt);
    }

    /// Resolves true when `stop` (the server's stop signal) fires, false when
    /// attempt `attempt` ended without exiting (aborted or failed).
    pub async fn outcome(
        &self,
        attempt: u64,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        /// Counts the caller among the waiting clients for as long as it waits.
        struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.waiting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _waiting = Waiting(&self.waiting);
        let mut ended = self.ended.subscribe();
        loop {
            if *stop.borrow_and_update() {
                return true;
            }
            if *ended.borrow_and_update() >= attempt {
                return false;
            }
            tokio::select! {
                r = ended.changed() => if r.is_err() { return true },
                r = stop.changed() => if r.is_err() { return true },
            }
        }
    }

    /// Clients waiting for the outcome of a SHUTDOWN.
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the shutdown in progress asked for about the final save.
    pub fn save_mode(&self) -> Option<bool> {
        self.inner.lock().active.and_then(|f| f.save)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_flags_come_from_the_config_words() {
        assert_eq!(
            ShutdownFlags::from_config_words("default"),
            ShutdownFlags::default()
        );
        assert_eq!(
            ShutdownFlags::from_config_words("nosave now force"),
            ShutdownFlags {
                save: Some(false),
                now: true,
                force: true
            }
        );
        assert_eq!(ShutdownFlags::from_config_words("SAVE").save, Some(true));
    }

    #[test]
    fn a_second_request_joins_the_first_and_abort_ends_it() {
        let r = ShutdownRequest::default();
        assert!(!r.abort());
        let a = r.request(ShutdownFlags::default());
        let b = r.request(ShutdownFlags {
            now: true,
            ..ShutdownFlags::default()
        });
        assert_eq!(a, b);
        assert!(r.abort());
        assert_eq!(*r.ended.borrow(), a);
        assert!(!r.abort());
        assert!(r.request(ShutdownFlags::default()) > a);
    }

    #[test]
    fn an_abort_during_the_shutdown_is_pending_until_the_attempt_ends() {
        let r = ShutdownRequest::default();
        r.begin(ShutdownFlags::default());
        assert!(r.abort());
        assert!(r.abort_pending());
        r.end_attempt();
        assert!(!r.abort_pending());
        assert!(!r.abort());
    }
}
