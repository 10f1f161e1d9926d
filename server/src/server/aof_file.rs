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
    pub(crate) file: File,
    /// Buffered commands and the write-error state of `file`.
    pub(crate) writer: Writer,
    /// Db of the last SELECT written to the incr file (-1 = none yet).
    pub(crate) cur_db: i64,
    pub(crate) fsync: Fsync,
    pub(crate) pending_fsync: bool,
    /// A background fsync is running (one at a time).
    pub(crate) fsync_in_progress: bool,
    /// errno of the last background fsync, if it failed (Redis `aof_bio_fsync_status`).
    pub(crate) fsync_errno: Option<i32>,
    pub(crate) last_fsync: Instant,
    pub(crate) base: Option<ManifestEntry>,
    pub(crate) incrs: Vec<ManifestEntry>,
    pub(crate) rewrite_in_progress: bool,
    pub(crate) rewrite_started: Option<Instant>,
    pub(crate) rewrites: u64,
    pub(crate) rewrite_failures: u64,
    pub(crate) last_rewrite_ok: bool,
    pub(crate) last_rewrite_time_sec: i64,
    /// Bytes in the AOF after the last rewrite (base) and now, for auto rewrite.
    pub(crate) base_size: u64,
    pub(crate) cur_size: u64,
}

impl AofState {
    /// The errno that makes writes refused, if any: a failed write, else a failed fsync.
    pub(crate) fn disk_errno(&self) -> Option<i32> {
        self.writer.write_errno.or(self.fsync_errno)
    }

    /// Writes what is pending; with `appendfsync always` an error is fatal.
    pub(crate) fn flush(&mut self) -> Result<(), i32> {
        match self.writer.flush(&mut self.file) {
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
