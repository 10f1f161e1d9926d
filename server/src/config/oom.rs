//! `oom-score-adj` and `oom-score-adj-values`: the process's Linux OOM-killer score
//! (`/proc/self/oom_score_adj`), set by role as Redis sets it. `relative` (or `yes`)
//! adds the role's value to the score the process had before Tandem first changed
//! it; `absolute` writes the value itself; the result is clamped to [-1000, 1000].
//! Going back to `no` restores that original score. Applied at start-up, on CONFIG
//! SET of either directive (a write the kernel refuses fails the CONFIG SET) and when
//! the role changes (REPLICAOF).

use super::Config;
use parking_lot::Mutex;

const PATH: &str = "/proc/self/oom_score_adj";

/// Which of the three `oom-score-adj-values` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Master = 0,
    Replica = 1,
    BackgroundChild = 2,
}

impl Class {
    /// The class of the server's current role.
    pub fn of(config: &Config, is_replica: bool) -> Class {
        if is_replica || config.replicaof.is_some() {
            Class::Replica
        } else {
            Class::Master
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OomError {
    #[error("Unable to read oom_score_adj: {0}")]
    Read(String),
    #[error("Unable to write oom_score_adj: {0}")]
    Write(String),
}

/// The score to write for `class` given the directive values and the original
/// score; `None` for `oom-score-adj no`.
pub fn wanted(mode: &str, values: &str, class: Class, base: i64) -> Option<i64> {
    let v = values
        .split(' ')
        .filter_map(super::parse_int)
        .nth(class as usize)
        .unwrap_or(0);
    match mode {
        "absolute" => Some(v),
        "relative" | "yes" => Some(v.saturating_add(base)),
        _ => None,
    }
    .map(|v| v.clamp(-1000, 1000))
}

/// The score the process had before Tandem changed it (`None` while Tandem has not
/// changed it). Kept by the server, not in a static.
#[derive(Debug, Default)]
pub struct OomScore {
    base: Mutex<Option<i64>>,
}

impl OomScore {
    /// Writes the score `config` asks for in `class` (or restores the original one
    /// when the directive went back to `no`).
    pub fn apply(&self, config: &Config, class: Class) -> Result<(), OomError> {
        let mode = config.get("oom-score-adj").unwrap_or("no");
        let values = config.get("oom-score-adj-values").unwrap_or("");
        let mut base = self.base.lock();
        let original = match *base {
            Some(b) => b,
            None if mode == "no" => return Ok(()),
            None => read()?,
        };
        match wanted(mode, values, class, original) {
            Some(v) => {
                write(v)?;
                *base = Some(original);
            }
            None => {
                write(original)?;
                *base = None;
            }
        }
        Ok(())
    }
}

fn read() -> Result<i64, OomError> {
    let s = std::fs::read_to_string(PATH).map_err(|e| OomError::Read(super::strerror(&e)))?;
    Ok(super::parse_int(s.trim()).unwrap_or(0))
}

fn write(v: i64) -> Result<(), OomError> {
    std::fs::write(PATH, format!("{v}\n")).map_err(|e| OomError::Write(super::strerror(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_adds_to_the_original_absolute_replaces_both_clamp() {
        assert_eq!(wanted("no", "0 200 800", Class::Master, 5), None);
        assert_eq!(wanted("yes", "0 200 800", Class::Replica, 5), Some(205));
        assert_eq!(
            wanted("relative", "0 200 800", Class::BackgroundChild, 300),
            Some(1000)
        );
        assert_eq!(
            wanted("absolute", "-10 200 800", Class::Master, 300),
            Some(-10)
        );
        assert_eq!(
            wanted("absolute", "-2000 0 0", Class::Master, 0),
            Some(-1000)
        );
    }
}
