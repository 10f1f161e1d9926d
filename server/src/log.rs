//! Redis-format logging: `pid:role dd Mon yyyy hh:mm:ss.mmm <level> message`.
//!
//! Each line is appended by opening the log file, writing and closing it, as Redis
//! does, so external rotation by rename works. An empty logfile means stdout.

use parking_lot::Mutex;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Verbose = 1,
    Notice = 2,
    Warning = 3,
}

impl Level {
    fn mark(self) -> char {
        match self {
            Level::Debug => '.',
            Level::Verbose => '-',
            Level::Notice => '*',
            Level::Warning => '#',
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.to_ascii_lowercase().as_str() {
            "debug" => Level::Debug,
            "verbose" => Level::Verbose,
            "notice" => Level::Notice,
            "warning" => Level::Warning,
            _ => return None,
        })
    }
}

struct LogState {
    file: String,
    level: Level,
    /// Role character: b'C' before the server is initialised, then b'M' or b'S'.
    role: u8,
}

/// The log sink. Process-global on purpose (one of the server's two mutable statics):
/// a process has one stdout and `logfile` names one file, and log lines come from
/// every layer, including code that runs before any `Server` value exists (config
/// parsing, daemonizing) or holds none (codec errors). Two servers in one process
/// (tests) share it, role character included.
static STATE: Mutex<LogState> = Mutex::new(LogState {
    file: String::new(),
    level: Level::Notice,
    role: b'C',
});

pub fn configure(file: &str, level: Level) {
    let mut s = STATE.lock();
    s.file = file.to_string();
    s.level = level;
}

pub fn set_role(role: u8) {
    STATE.lock().role = role;
}

pub fn log(level: Level, msg: &str) {
    write_line(level, msg, true);
}

/// For the crash report (`crate::crash`, in a signal handler): copies the log
/// file's path into `buf` and returns its length; 0 for stdout, or when the sink is
/// busy (a `try_lock`: the crash may have come while it was held).
pub fn file_for_crash(buf: &mut [u8]) -> usize {
    let Some(s) = STATE.try_lock() else {
        return 0;
    };
    let path = s.file.as_bytes();
    if path.len() >= buf.len() {
        return 0;
    }
    buf[..path.len()].copy_from_slice(path);
    path.len()
}

/// Like [`log`] but never cut at 1023 bytes (the startup warning that lists every
/// directive Tandem does not act on must name all of them).
pub fn log_full(level: Level, msg: &str) {
    write_line(level, msg, false);
}

fn write_line(level: Level, msg: &str, truncate: bool) {
    let s = STATE.lock();
    if level < s.level {
        return;
    }
    let mut msg = msg.to_string();
    if truncate && msg.len() > 1023 {
        let mut cut = 1023;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
    }
    let line = format!(
        "{}:{} {} {} {}\n",
        std::process::id(),
        s.role as char,
        timestamp(),
        level.mark(),
        msg
    );
    if s.file.is_empty() {
        let _ = std::io::stdout().write_all(line.as_bytes());
        let _ = std::io::stdout().flush();
    } else if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.file)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Writes `text` (plus a newline) without the line prefix, like Redis's
/// `serverLogRaw` with LL_RAW (the ASCII logo).
pub fn raw(level: Level, text: &str) {
    let s = STATE.lock();
    if level < s.level {
        return;
    }
    let out = format!("{text}\n");
    if s.file.is_empty() {
        let _ = std::io::stdout().write_all(out.as_bytes());
        let _ = std::io::stdout().flush();
    } else if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&s.file)
    {
        let _ = f.write_all(out.as_bytes());
    }
}

/// `dd Mon yyyy hh:mm:ss.mmm` in local time.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64 + local_offset_secs();
    let ms = now.subsec_millis();
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02} {} {} {:02}:{:02}:{:02}.{:03}",
        d,
        MON[(m - 1) as usize],
        y,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms
    )
}

/// Local time offset from UTC in seconds, from the TZ environment (`UTC`, unset) or
/// /etc/localtime is not parsed: containers run in UTC, as do our tests.
fn local_offset_secs() -> i64 {
    0
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[macro_export]
macro_rules! notice {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Notice, &format!($($arg)*)) };
}

#[macro_export]
macro_rules! warning {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warning, &format!($($arg)*)) };
}

#[macro_export]
macro_rules! verbose {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Verbose, &format!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20781), (2026, 11, 24));
        assert_eq!(civil_from_days(11016), (2000, 2, 29));
    }

    #[test]
    fn timestamp_shape() {
        let t = timestamp();
        // "24 Nov 2026 18:41:55.198"
        assert_eq!(t.len(), 24, "{t}");
        assert_eq!(&t[2..3], " ");
        assert_eq!(&t[20..21], ".");
    }
}
