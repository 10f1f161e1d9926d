//! The append-only file's state: the open incr file, its write buffer and error state,
//! the manifest entries, rewrite and fsync status. Owned by the `Server` value
//! (`Server::aof`); `crate::aof` carries out writes, fsyncs, rewrites and loading.

use super::aof_writer::Writer;
use crate::warning;
use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    Always,
    EverySec,
    No,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub name: String,
    pub seq: u64,
    /// 'b' base, 'h' history, 'i' incr.
    pub kind: char,
}

#[derive(Debug)]
pub struct AofState {
    pub(crate) dir: PathBuf,
    pub(crate) prefix: String,
    /// The incr file that takes new writes; None while the AOF is off (`appendonly
    /// no`): the state then only holds the manifest, the rewrite statistics and a
    /// BGREWRITEAOF's running rewrite, as Redis keeps them with the AOF off.
    pub(crate) file: Option<File>,
    /// Buffered commands and the write-error state of `file`.
    pub(crate) writer: Writer,
    /// Db of the last SELECT written to the incr file (-1 = none yet).
    pub(crate) cur_db: i64,
    /// `aof-timestamp-enabled`: a `#TS:<unix time>` line goes before the first
    /// command of each new second (Redis `aof_cur_timestamp` is `last_ts`).
    pub(crate) timestamps: bool,
    pub(crate) last_ts: i64,
    /// DEBUG AOF-FLUSH-SLEEP: microseconds to sleep before each write (a test aid).
    pub(crate) flush_sleep_us: u64,
    pub(crate) fsync: Fsync,
    pub(crate) pending_fsync: bool,
    /// A background fsync is running (one at a time).
    pub(crate) fsync_in_progress: bool,
    /// errno of the last background fsync, if it failed (Redis `aof_bio_fsync_status`).
    pub(crate) fsync_errno: Option<i32>,
    pub(crate) last_fsync: Instant,
    pub(crate) base: Option<ManifestEntry>,
    pub(crate) incrs: Vec<ManifestEntry>,
    /// Files a rewrite replaced, kept while `aof-disable-auto-gc yes` (manifest type
    /// `h`), the most recently retired first.
    pub(crate) history: Vec<ManifestEntry>,
    /// Redis's `AOF_WAIT_REWRITE`: a replica's AOF after a full sync, until the
    /// rewrite that makes the synced dataset its base completes. The manifest on
    /// disk still names the files from before the sync; what is written meanwhile
    /// goes to a temp incr file that enters the manifest with the new base.
    pub(crate) wait_rewrite: bool,
    /// The rewrite running now, if any.
    pub(crate) rewrite: Option<RunningRewrite>,
    /// Id of the last rewrite started (each gets the next one).
    pub(crate) last_rewrite_id: u64,
    /// Backoff of rewrites started by the cron after repeated failures.
    pub(crate) retry_limit: RetryLimit,
    pub(crate) rewrites: u64,
    pub(crate) rewrite_failures: u64,
    pub(crate) last_rewrite_ok: bool,
    pub(crate) last_rewrite_time_sec: i64,
    /// Bytes in the AOF after the last rewrite (base) and now, for auto rewrite.
    pub(crate) base_size: u64,
    pub(crate) cur_size: u64,
}

impl AofState {
    /// A freshly opened AOF: `file` (already `file_len` bytes) is the incr file that
    /// takes new writes after `base` and `incrs` (`size` bytes in all); `wait_rewrite`
    /// as on the field. Nothing buffered, no fsync or rewrite history yet.
    pub(crate) fn opened(
        (dir, prefix): (PathBuf, String),
        (file, file_len): (File, u64),
        fsync: Fsync,
        base: Option<ManifestEntry>,
        incrs: Vec<ManifestEntry>,
        size: u64,
        wait_rewrite: bool,
    ) -> AofState {
        AofState {
            dir,
            prefix,
            file: Some(file),
            writer: Writer::new(file_len),
            cur_db: -1,
            timestamps: false,
            last_ts: 0,
            flush_sleep_us: 0,
            fsync,
            pending_fsync: false,
            fsync_in_progress: false,
            fsync_errno: None,
            last_fsync: Instant::now(),
            base,
            incrs,
            history: Vec::new(),
            wait_rewrite,
            rewrite: None,
            last_rewrite_id: 0,
            retry_limit: Default::default(),
            rewrites: 0,
            rewrite_failures: 0,
            last_rewrite_ok: true,
            last_rewrite_time_sec: -1,
            base_size: size,
            cur_size: size,
        }
    }
}

/// A background rewrite in progress.
#[derive(Debug, Clone)]
pub struct RunningRewrite {
    /// Tells its completion apart from an abandoned one's (see `crate::aof::rewrite`).
    pub id: u64,
    /// The forked child writing the base; None when written by an in-process thread.
    pub pid: Option<i32>,
    pub started: Instant,
    /// Where the new base is written, in the AOF directory, before it is renamed.
    pub temp_base: String,
    /// Outside the wait state: the seq of the incr file opened for this rewrite (it
    /// and the later ones follow the new base).
    pub first_incr_seq: u64,
    /// The base is an RDB (`.base.rdb`), else commands (`.base.aof`).
    pub rdb_base: bool,
}

/// Redis `aofRewriteLimited`: after [`RetryLimit::THRESHOLD`] consecutive failures,
/// rewrites started by the cron wait 1, 2, 4 ... up to 60 minutes between tries.
#[derive(Debug, Default)]
pub struct RetryLimit {
    delay_minutes: u64,
    next_try: Option<Instant>,
}

/// What [`RetryLimit::check`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Go,
    Wait,
    /// The limit just started a wait of this many minutes (Redis logs it).
    Armed(u64),
}

impl RetryLimit {
    pub const THRESHOLD: u64 = 3;
    const MAX_MINUTES: u64 = 60;

    /// Whether the cron may start a rewrite now, after `failures` consecutive failures.
    pub fn check(&mut self, failures: u64, now: Instant) -> Limit {
        if failures < Self::THRESHOLD {
            *self = RetryLimit::default();
            return Limit::Go;
        }
        if let Some(at) = self.next_try {
            if now < at {
                return Limit::Wait;
            }
            self.next_try = None;
            return Limit::Go;
        }
        self.delay_minutes = (self.delay_minutes * 2).clamp(1, Self::MAX_MINUTES);
        self.next_try = Some(now + std::time::Duration::from_secs(self.delay_minutes * 60));
        Limit::Armed(self.delay_minutes)
    }
}

impl AofState {
    /// The state with the AOF off (`appendonly no`): the manifest's `base` and
    /// `incrs` in `dir`, for a BGREWRITEAOF and DEBUG LOADAOF; nothing is written.
    pub(crate) fn off(
        (dir, prefix): (PathBuf, String),
        base: Option<ManifestEntry>,
        incrs: Vec<ManifestEntry>,
    ) -> AofState {
        AofState {
            dir,
            prefix,
            file: None,
            writer: Writer::new(0),
            cur_db: -1,
            timestamps: false,
            last_ts: 0,
            flush_sleep_us: 0,
            fsync: Fsync::No,
            pending_fsync: false,
            fsync_in_progress: false,
            fsync_errno: None,
            last_fsync: Instant::now(),
            base,
            incrs,
            history: Vec::new(),
            wait_rewrite: false,
            rewrite: None,
            last_rewrite_id: 0,
            retry_limit: Default::default(),
            rewrites: 0,
            rewrite_failures: 0,
            last_rewrite_ok: true,
            last_rewrite_time_sec: -1,
            base_size: 0,
            cur_size: 0,
        }
    }

    /// Whether the AOF is on (an incr file is open).
    pub(crate) fn is_on(&self) -> bool {
        self.file.is_some()
    }

    /// Turns the AOF off, keeping the manifest and rewrite statistics (the caller
    /// has flushed, fsynced and stopped any rewrite).
    pub(crate) fn turn_off(&mut self) {
        self.file = None;
        self.writer = Writer::new(0);
        self.cur_db = -1;
        self.wait_rewrite = false;
        self.pending_fsync = false;
        self.fsync_errno = None;
        self.base_size = 0;
        self.cur_size = 0;
    }

    /// Whether a background rewrite runs (INFO `aof_rewrite_in_progress`).
    pub(crate) fn rewrite_in_progress(&self) -> bool {
        self.rewrite.is_some()
    }

    /// In the wait state with no rewrite running: one must start (the cron does);
    /// part of INFO `aof_rewrite_scheduled`.
    pub(crate) fn rewrite_owed(&self) -> bool {
        self.wait_rewrite && self.rewrite.is_none()
    }

    /// The errno that makes writes refused, if any: a failed write, else a failed fsync.
    pub(crate) fn disk_errno(&self) -> Option<i32> {
        self.writer.write_errno.or(self.fsync_errno)
    }

    /// Writes what is pending; with `appendfsync always` an error is fatal.
    pub(crate) fn flush(&mut self) -> Result<(), i32> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        match self.writer.flush(file) {
            Ok(n) => {
                self.cur_size += n as u64;
                Ok(())
            }
            Err(errno) => {
                if self.fsync == Fsync::Always {
                    warning!("Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
                    std::process::exit(1);
                }
                Err(errno)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retry_limit_backs_off_after_three_failures_and_resets_on_success() {
        let mut l = RetryLimit::default();
        let t0 = Instant::now();
        assert_eq!(l.check(2, t0), Limit::Go);
        assert_eq!(l.check(3, t0), Limit::Armed(1));
        assert_eq!(l.check(3, t0 + Duration::from_secs(59)), Limit::Wait);
        assert_eq!(l.check(3, t0 + Duration::from_secs(60)), Limit::Go);
        // The retry failed too: twice as long.
        assert_eq!(l.check(4, t0 + Duration::from_secs(61)), Limit::Armed(2));
        let mut at = t0 + Duration::from_secs(61 + 120);
        assert_eq!(l.check(4, at), Limit::Go);
        for want in [4, 8, 16, 32, 60, 60] {
            assert_eq!(l.check(5, at), Limit::Armed(want));
            at += Duration::from_secs(want * 60);
            assert_eq!(l.check(5, at), Limit::Go);
        }
        // A success resets the failures, and with them the limit.
        assert_eq!(l.check(0, at), Limit::Go);
        assert_eq!(l.check(3, at), Limit::Armed(1));
    }
}
