//! CLIENT PAUSE / UNPAUSE: holds back commands from normal clients for a while, as
//! Redis 7.0 does (used for switchovers: pause writes, let replicas catch up,
//! promote). In `WRITE` mode only commands that may change the dataset or reach
//! the replication stream wait (WRITE and MAY_REPLICATE commands, scripts and
//! functions by their declared flags, and EXEC of a transaction holding one); in
//! `ALL` mode every command waits. As in Redis the decision comes after every check
//! of the dispatch (`exec::process`): a command refused by one (arity, ACL, ...) is
//! answered at once. The master link and replicas are never paused. A waiting
//! command runs once the pause ends, after the replies to the commands before it
//! were sent; meanwhile its client counts as blocked (INFO `blocked_clients`).
//!
//! While a pause is active the keyspace is frozen from the replication point of
//! view; background work that changes data (active expiry, eviction) should check
//! [`ClientPause::is_paused`] and skip.

use crate::flags;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseMode {
    Write,
    All,
}

/// Who asked for a pause. Each purpose has its own pause, ended by its own
/// owner (CLIENT UNPAUSE never ends the pause of a running FAILOVER or of a
/// SHUTDOWN waiting for its replicas); commands wait while any is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePurpose {
    /// CLIENT PAUSE.
    Client = 0,
    /// SHUTDOWN waiting for lagging replicas.
    Shutdown = 1,
    /// FAILOVER until the target accepted the handover.
    Failover = 2,
}

const PURPOSES: usize = 3;

/// Stands for "until unpaused" (a pause with no end of its own).
const FOREVER: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

#[derive(Debug, Default)]
pub struct ClientPause {
    /// Fast path for the per-command check: true while a pause may be active.
    active: AtomicBool,
    /// The pause of each [`PausePurpose`], by its index.
    state: Mutex<[Option<(Instant, PauseMode)>; PURPOSES]>,
    notify: tokio::sync::Notify,
    /// Clients whose next command waits for a pause to end. Redis counts them in
    /// INFO's `blocked_clients` (a postponed client is a blocked one there); each
    /// connection adds itself when it starts waiting and takes itself off when it
    /// stops (or closes).
    waiting: AtomicUsize,
}

impl ClientPause {
    /// Starts (or extends) a CLIENT PAUSE. Like Redis, an active pause keeps the
    /// later end time and the more restrictive mode.
    pub fn pause(&self, dur: Duration, mode: PauseMode) {
        self.pause_for(PausePurpose::Client, Some(dur), mode);
    }

    /// Starts (or extends) the pause of `purpose`; `dur` None = until
    /// [`ClientPause::unpause_for`].
    pub fn pause_for(&self, purpose: PausePurpose, dur: Option<Duration>, mode: PauseMode) {
        let now = Instant::now();
        let end = now
            .checked_add(dur.unwrap_or(FOREVER))
            .unwrap_or(now + Duration::from_secs(24 * 3600));
        let mut all = self.state.lock();
        let st = &mut all[purpose as usize];
        let new = match *st {
            Some((e, m)) if e > Instant::now() => (
                e.max(end),
                if m == PauseMode::All || mode == PauseMode::All {
                    PauseMode::All
                } else {
                    PauseMode::Write
                },
            ),
            _ => (end, mode),
        };
        *st = Some(new);
        self.active.store(true, Ordering::SeqCst);
        // Waiters re-read the state (a shorter wait may have become longer).
        self.notify.notify_waiters();
    }

    /// CLIENT UNPAUSE: ends the CLIENT PAUSE only.
    pub fn unpause(&self) {
        self.unpause_for(PausePurpose::Client);
    }

    /// Ends the pause of `purpose` (the others go on).
    pub fn unpause_for(&self, purpose: PausePurpose) {
        let mut all = self.state.lock();
        all[purpose as usize] = None;
        if all.iter().all(Option::is_none) {
            self.active.store(false, Ordering::SeqCst);
        }
        drop(all);
        self.notify.notify_waiters();
    }

    /// The active pause, if any, all purposes combined: the latest end and the
    /// most restrictive mode (expired pauses are cleared here).
    pub fn current(&self) -> Option<(Instant, PauseMode)> {
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        self.current_slow()
    }

    #[cold]
    #[inline(never)]
    fn current_slow(&self) -> Option<(Instant, PauseMode)> {
        let now = Instant::now();
        let mut all = self.state.lock();
        let mut out: Option<(Instant, PauseMode)> = None;
        for st in all.iter_mut() {
            match *st {
                Some((end, mode)) if end > now => {
                    out = Some(match out {
                        None => (end, mode),
                        Some((e, m)) => (e.max(end), if m == PauseMode::All { m } else { mode }),
                    });
                }
                _ => *st = None,
            }
        }
        if out.is_none() {
            self.active.store(false, Ordering::SeqCst);
        }
        out
    }

    /// Whether `purpose` holds a pause now.
    pub fn is_paused_for(&self, purpose: PausePurpose) -> bool {
        let all = self.state.lock();
        all[purpose as usize].is_some_and(|(end, _)| end > Instant::now())
    }

    /// Looked at before every command: with no pause (nearly always) one relaxed
    /// load, inlined into the caller, and the lock and clock of [`Self::current`]
    /// stay out of the command path's cache lines.
    #[inline]
    pub fn is_paused(&self) -> bool {
        self.active.load(Ordering::Relaxed) && self.current().is_some()
    }

    /// Whether a command with these flags must wait now. `cmd_flags`: the flags
    /// Redis decides the call by (`commands::call_flags`: a script's declared flags
    /// for EVAL and FCALL, and for EXEC its queue's too).
    pub fn holds(&self, cmd_flags: u32) -> bool {
        match self.current() {
            None => false,
            Some((_, PauseMode::All)) => true,
            Some((_, PauseMode::Write)) => cmd_flags & (flags::WRITE | flags::MAY_REPLICATE) != 0,
        }
    }

    /// A client starts waiting for a pause to end (see [`Self::waiting_clients`]).
    pub fn wait_started(&self) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
    }

    /// A client counted by [`Self::wait_started`] stops waiting or closes.
    pub fn wait_stopped(&self) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// How many clients have a command waiting for a pause to end.
    pub fn waiting_clients(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Resolves when the pauses changed (one ended or was extended) or none is
    /// active any more; the caller checks again whether its command must wait.
    pub async fn wait_end(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some((end, _)) = self.current() else {
            return;
        };
        let left = end.saturating_duration_since(Instant::now());
        tokio::select! {
            _ = tokio::time::sleep(left) => {}
            _ = &mut notified => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_pause_holds_only_writes() {
        let p = ClientPause::default();
        let get = crate::commands::lookup(b"get").expect("get");
        let set = crate::commands::lookup(b"set").expect("set");
        assert!(!p.holds(set.flags));
        p.pause(Duration::from_secs(10), PauseMode::Write);
        assert!(p.holds(set.flags));
        assert!(!p.holds(get.flags));
        // EXEC of a queued SET carries the SET's flags.
        assert!(p.holds(get.flags | set.flags));
        // A WRITE pause during an ALL pause keeps ALL.
        p.pause(Duration::from_millis(1), PauseMode::All);
        assert!(p.holds(get.flags));
        p.unpause();
        assert!(!p.holds(set.flags));
        assert!(!p.is_paused());
    }

    #[test]
    fn pause_ends_by_itself() {
        let p = ClientPause::default();
        p.pause(Duration::from_millis(0), PauseMode::All);
        std::thread::sleep(Duration::from_millis(2));
        assert!(!p.is_paused());
    }

    #[test]
    fn each_purpose_ends_only_its_own_pause() {
        let p = ClientPause::default();
        let set = crate::commands::lookup(b"set").expect("set");
        let get = crate::commands::lookup(b"get").expect("get");
        p.pause_for(PausePurpose::Failover, None, PauseMode::Write);
        p.pause(Duration::from_secs(60), PauseMode::All);
        assert!(p.holds(get.flags));
        // CLIENT UNPAUSE leaves the failover's write pause in place.
        p.unpause();
        assert!(!p.holds(get.flags));
        assert!(p.holds(set.flags));
        assert!(p.is_paused_for(PausePurpose::Failover));
        assert!(!p.is_paused_for(PausePurpose::Shutdown));
        p.unpause_for(PausePurpose::Failover);
        assert!(!p.is_paused());
    }

    #[tokio::test]
    async fn waiters_wake_on_unpause() {
        let p = std::sync::Arc::new(ClientPause::default());
        p.pause(Duration::from_secs(60), PauseMode::All);
        let p2 = p.clone();
        let t = tokio::spawn(async move { p2.wait_end().await });
        tokio::task::yield_now().await;
        p.unpause();
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("woken")
            .expect("join");
    }
}
