//! The AOF write path and its disk errors (Redis `flushAppendOnlyFile`).
//!
//! Encoded commands are appended to [`Writer::pending`] and written at once. When a
//! write fails they stay there and are retried (by the next write and by the cron),
//! so a command that was acknowledged before the disk filled up reaches the file
//! once space returns. A short write is cut back with ftruncate(2) to the length of
//! the file before it, so the file never ends inside a command; if that truncation
//! fails too, the written part is kept (dropped from `pending`) and the error stays,
//! as Redis does. While [`Writer::write_errno`] is set, write commands are refused
//! with MISCONF (see [`misconf`]); the first successful write clears it and logs
//! "AOF write error looks solved, Redis can write again.".
//!
//! The state machine takes the file as a [`Sink`], so its decisions are unit-tested
//! with a fake disk that fills up.

use crate::warning;
use std::io;
use std::time::{Duration, Instant};

/// Seconds between two log lines about the same failing write (Redis
/// `AOF_WRITE_LOG_ERROR_RATE`).
const WRITE_ERROR_LOG_RATE: Duration = Duration::from_secs(30);

/// Where the AOF bytes go: the open incr file (a fake in unit tests).
pub trait Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Cuts the file back to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl Sink for std::fs::File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::Write::write(self, buf)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// The AOF's write buffer and write-error state.
#[derive(Debug, Default)]
pub struct Writer {
    /// Encoded commands not yet written (Redis `aof_buf`); stays non-empty only
    /// while writes fail.
    pub pending: Vec<u8>,
    /// Length of the open incr file up to its last complete write.
    pub file_len: u64,
    /// errno of the last failed write; `None` once a write succeeds again.
    pub write_errno: Option<i32>,
    last_error_log: Option<Instant>,
}

impl Writer {
    pub fn new(file_len: u64) -> Writer {
        Writer {
            file_len,
            ..Writer::default()
        }
    }

    /// Writes everything pending. Returns the bytes written (0 if nothing was
    /// pending), or the errno now recorded in `write_errno`.
    pub fn flush(&mut self, sink: &mut impl Sink) -> Result<usize, i32> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let (written, err) = write_all(sink, &self.pending);
        let Some(err) = err else {
            self.file_len += written as u64;
            self.pending.clear();
            if self.write_errno.take().is_some() {
                warning!("AOF write error looks solved, Redis can write again.");
            }
            return Ok(written);
        };
        let can_log = self
            .last_error_log
            .is_none_or(|t| t.elapsed() > WRITE_ERROR_LOG_RATE);
        if can_log {
            self.last_error_log = Some(Instant::now());
        }
        let errno = if written == 0 {
            if can_log {
                warning!("Error writing to the AOF file: {}", strerror_of(&err));
            }
            err.raw_os_error().unwrap_or(libc::EIO)
        } else {
            if can_log {
                warning!(
                    "Short write while writing to the AOF file: (nwritten={written}, expected={})",
                    self.pending.len()
                );
            }
            if let Err(e) = sink.truncate(self.file_len) {
                if can_log {
                    warning!("Could not remove short write from the append-only file.  Redis may refuse to load the AOF the next time it starts.  ftruncate: {}", strerror_of(&e));
                }
                // The written part stays in the file: do not write it twice.
                self.file_len += written as u64;
                self.pending.drain(..written);
            }
            libc::ENOSPC
        };
        self.write_errno = Some(errno);
        Err(errno)
    }
}

/// Writes `buf` until done or an error (Redis `aofWrite`): the bytes written and
/// the error that stopped it, if any.
fn write_all(sink: &mut impl Sink, buf: &[u8]) -> (usize, Option<io::Error>) {
    let mut written = 0;
    while written < buf.len() {
        match sink.write(&buf[written..]) {
            Ok(0) => return (written, Some(io::Error::from_raw_os_error(libc::ENOSPC))),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Some(e)),
        }
    }
    (written, None)
}

/// The C library's text for `errno`, as Redis prints it (no "(os error N)").
pub fn strerror(errno: i32) -> String {
    strerror_of(&io::Error::from_raw_os_error(errno))
}

fn strerror_of(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Redis's refusal of write commands after an AOF write or fsync error.
pub fn misconf(errno: i32) -> String {
    format!(
        "MISCONF Errors writing to the AOF file: {}",
        strerror(errno)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk with `room` bytes left; truncation can be made to fail.
    struct Disk {
        data: Vec<u8>,
        room: usize,
        truncate_fails: bool,
    }

    impl Sink for Disk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.room);
            self.data.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }

        fn truncate(&mut self, len: u64) -> io::Result<()> {
            if self.truncate_fails {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            self.room += self.data.len() - len as usize;
            self.data.truncate(len as usize);
            Ok(())
        }
    }

    fn disk(room: usize) -> Disk {
        Disk {
            data: Vec::new(),
            room,
            truncate_fails: false,
        }
    }

    #[test]
    fn strerror_matches_the_c_library_text() {
        assert_eq!(strerror(libc::ENOSPC), "No space left on device");
        assert_eq!(
            misconf(libc::ENOSPC),
            "MISCONF Errors writing to the AOF file: No space left on device"
        );
        assert_eq!(strerror(libc::EIO), "Input/output error");
    }

    #[test]
    fn short_write_is_cut_back_and_retried_whole_once_space_returns() {
        let mut d = disk(10);
        let mut w = Writer::new(0);
        w.pending.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(w.flush(&mut d), Err(libc::ENOSPC));
        assert_eq!(w.write_errno, Some(libc::ENOSPC));
        assert!(d.data.is_empty(), "the torn command was truncated away");
        assert_eq!(w.pending.len(), 14, "kept for the retry");
        // Another command arrives while the disk is full: queued behind the first.
        w.pending.extend_from_slice(b"*1\r\n$4\r\nECHO\r\n");
        assert_eq!(w.flush(&mut d), Err(libc::ENOSPC));
        assert!(d.data.is_empty());
        d.room = 100;
        assert_eq!(w.flush(&mut d), Ok(28));
        assert_eq!(d.data, b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nECHO\r\n");
        assert_eq!(w.write_errno, None);
        assert_eq!(w.file_len, 28);
        assert!(w.pending.is_empty());
    }

    #[test]
    fn failed_write_of_nothing_keeps_the_errno_of_the_disk() {
        let mut d = disk(0);
        let mut w = Writer::new(5);
        w.pending.extend_from_slice(b"abc");
        assert_eq!(w.flush(&mut d), Err(libc::ENOSPC));
        assert_eq!(w.file_len, 5);
    }

    #[test]
    fn failed_truncation_keeps_the_written_part_and_the_error() {
        let mut d = disk(4);
        d.truncate_fails = true;
        let mut w = Writer::new(0);
        w.pending.extend_from_slice(b"0123456789");
        assert_eq!(w.flush(&mut d), Err(libc::ENOSPC));
        assert_eq!(d.data, b"0123");
        assert_eq!(w.file_len, 4);
        assert_eq!(w.pending, b"456789", "only the unwritten rest is retried");
        d.room = 100;
        assert_eq!(w.flush(&mut d), Ok(6));
        assert_eq!(d.data, b"0123456789");
        assert_eq!(w.write_errno, None);
    }

    #[test]
    fn nothing_pending_is_a_no_op() {
        let mut d = disk(0);
        let mut w = Writer::new(0);
        assert_eq!(w.flush(&mut d), Ok(0));
        assert_eq!(w.write_errno, None);
    }
}
