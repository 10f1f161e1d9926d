//! The ACL LOG: recent denials, newest first; a denial like one of the last ten
//! (same reason, context, object and user, within a minute) bumps that entry's
//! count and moves it to the front instead of adding one (as Redis 7.0 does).

use std::collections::VecDeque;

/// How long a denial may be merged into an earlier one (Redis: 60 s).
const MERGE_WINDOW_MS: i64 = 60_000;
/// How many recent entries are compared before adding a new one (Redis: 10).
const MERGE_SCAN: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Command,
    Key,
    Channel,
    Auth,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Channel => "channel",
            Reason::Auth => "auth",
        }
    }
}

/// Where the denied command ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Toplevel,
    Multi,
    Lua,
}

impl Context {
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Toplevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub count: u64,
    pub reason: Reason,
    pub context: Context,
    pub object: String,
    pub username: String,
    /// Unix ms of the last occurrence.
    pub ctime_ms: i64,
    /// The client's CLIENT LIST line (without the newline).
    pub client_info: String,
}

#[derive(Debug, Default)]
pub struct AclLog {
    pub entries: VecDeque<Entry>,
}

impl AclLog {
    /// Records a denial, keeping at most `max_len` entries.
    pub fn add(&mut self, e: Entry, max_len: usize) {
        let found = self.entries.iter().take(MERGE_SCAN).position(|o| {
            o.reason == e.reason
                && o.context == e.context
                && o.object == e.object
                && o.username == e.username
                && e.ctime_ms - o.ctime_ms <= MERGE_WINDOW_MS
        });
        match found.and_then(|i| self.entries.remove(i)) {
            Some(mut old) => {
                old.count += 1;
                old.ctime_ms = e.ctime_ms;
                old.client_info = e.client_info;
                self.entries.push_front(old);
            }
            None => self.entries.push_front(e),
        }
        self.entries.truncate(max_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(object: &str, t: i64) -> Entry {
        Entry {
            count: 1,
            reason: Reason::Key,
            context: Context::Toplevel,
            object: object.into(),
            username: "u".into(),
            ctime_ms: t,
            client_info: String::new(),
        }
    }

    #[test]
    fn similar_denials_merge_and_move_to_front() {
        let mut log = AclLog::default();
        log.add(entry("a", 0), 10);
        log.add(entry("b", 1), 10);
        log.add(entry("a", 2), 10);
        assert_eq!(log.entries.len(), 2);
        assert_eq!(
            (log.entries[0].object.as_str(), log.entries[0].count),
            ("a", 2)
        );
        // Outside the window: a new entry.
        log.add(entry("a", 70_000), 10);
        assert_eq!(log.entries.len(), 3);
        log.add(entry("c", 70_001), 2);
        assert_eq!(log.entries.len(), 2);
    }
}
