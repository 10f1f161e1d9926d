//! INFO errorstats: error replies counted by their prefix (state layer, pure).
//!
//! Redis keys each error reply under its first word (`-WRONGTYPE Operation...` under
//! `WRONGTYPE`) when a space ends that word within the reply's first 32 bytes (the `-`
//! included), and under `ERR` otherwise. INFO prints one `errorstat_<PREFIX>:count=N`
//! line per prefix, in byte order.
//!
//! Scripts can reply any error text (`redis.error_reply`, `{err=...}`), so the set of
//! prefixes is bounded: at most [`MAX_PREFIXES`] are kept. An error under one more
//! prefix drops them all and leaves only `ERRORSTATS_DISABLED` with count 1; nothing
//! more is counted by prefix until CONFIG RESETSTAT. Redis 7.0.15 keeps every prefix
//! without a bound; this is the rule Redis adopted later (7.2, its `ERROR_STATS_NUMBER`)
//! for exactly that misuse, taken here because an unbounded map is a memory leak a
//! client can drive.

use std::collections::BTreeMap;

/// How many distinct prefixes are kept before counting by prefix stops.
pub const MAX_PREFIXES: usize = 128;

/// The one prefix left once more than [`MAX_PREFIXES`] were seen.
pub const DISABLED: &str = "ERRORSTATS_DISABLED";

/// The first bytes of an error reply (its leading `-` included) in which the space
/// ending the prefix must fall.
const PREFIX_WINDOW: usize = 32;

/// Error counts per prefix.
#[derive(Debug, Default)]
pub struct ErrorStats {
    by_prefix: BTreeMap<Box<[u8]>, u64>,
    disabled: bool,
}

/// What [`ErrorStats::note`] did, for the caller to log.
#[derive(Debug, PartialEq, Eq)]
pub enum Noted {
    Counted,
    /// The prefix was one too many: the kept ones (listed) were dropped.
    JustDisabled(Vec<String>),
    /// Counting by prefix is off until CONFIG RESETSTAT.
    Ignored,
}

impl ErrorStats {
    /// Counts one error reply, `text` being the reply without its leading `-`.
    pub fn note(&mut self, text: &[u8]) -> Noted {
        if self.disabled {
            return Noted::Ignored;
        }
        let prefix = prefix_of(text);
        if let Some(n) = self.by_prefix.get_mut(prefix) {
            *n += 1;
            return Noted::Counted;
        }
        if self.by_prefix.len() >= MAX_PREFIXES {
            let dropped = std::mem::take(&mut self.by_prefix)
                .into_keys()
                .map(|k| String::from_utf8_lossy(&k).into_owned())
                .collect();
            self.by_prefix.insert(DISABLED.as_bytes().into(), 1);
            self.disabled = true;
            return Noted::JustDisabled(dropped);
        }
        self.by_prefix.insert(prefix.into(), 1);
        Noted::Counted
    }

    /// CONFIG RESETSTAT: no counts, and counting by prefix on again.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// The INFO errorstats lines, in byte order of the prefixes.
    pub fn info_lines(&self) -> String {
        let mut s = String::new();
        for (prefix, n) in &self.by_prefix {
            let safe: String = String::from_utf8_lossy(prefix)
                .chars()
                .map(|c| {
                    if matches!(c, ':' | '\r' | '\n') {
                        '_'
                    } else {
                        c
                    }
                })
                .collect();
            s.push_str(&format!("errorstat_{safe}:count={n}\r\n"));
        }
        s
    }

    /// `(prefix, count)` pairs, in byte order (the metrics endpoint's view).
    pub fn counts(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.by_prefix.iter().map(|(k, n)| (&k[..], *n))
    }
}

/// The prefix an error reply counts under (`text` without the leading `-`).
pub fn prefix_of(text: &[u8]) -> &[u8] {
    let window = &text[..text.len().min(PREFIX_WINDOW - 1)];
    match window.iter().position(|&c| c == b' ') {
        Some(end) => &text[..end],
        None => b"ERR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_the_first_word_when_a_space_ends_it_within_32_bytes() {
        assert_eq!(
            prefix_of(b"WRONGTYPE Operation against a key"),
            b"WRONGTYPE"
        );
        assert_eq!(prefix_of(b"ERR"), b"ERR");
        // The window counts the leading '-': a 30-byte word still has its space in it.
        let word30 = [b'A'; 30];
        let mut t = word30.to_vec();
        t.extend_from_slice(b" x");
        assert_eq!(prefix_of(&t), &word30[..]);
        let mut t = [b'A'; 31].to_vec();
        t.extend_from_slice(b" x");
        assert_eq!(prefix_of(&t), b"ERR");
        // A leading space makes an empty prefix, as in Redis.
        assert_eq!(prefix_of(b" x"), b"");
    }

    #[test]
    fn lines_come_in_byte_order_with_unsafe_characters_replaced() {
        let mut e = ErrorStats::default();
        e.note(b"WRONGTYPE x");
        e.note(b"ERR x");
        e.note(b"ERR y");
        e.note(b"A:B c");
        assert_eq!(
            e.info_lines(),
            "errorstat_A_B:count=1\r\nerrorstat_ERR:count=2\r\nerrorstat_WRONGTYPE:count=1\r\n"
        );
    }

    #[test]
    fn one_prefix_past_the_limit_leaves_only_the_disabled_marker_until_reset() {
        let mut e = ErrorStats::default();
        for i in 0..MAX_PREFIXES {
            assert_eq!(e.note(format!("P{i} x").as_bytes()), Noted::Counted);
        }
        assert_eq!(e.note(b"P0 again"), Noted::Counted);
        match e.note(b"NEW x") {
            Noted::JustDisabled(dropped) => assert_eq!(dropped.len(), MAX_PREFIXES),
            other => panic!("expected the limit to disable counting, got {other:?}"),
        }
        assert_eq!(e.note(b"P1 x"), Noted::Ignored);
        assert_eq!(e.info_lines(), "errorstat_ERRORSTATS_DISABLED:count=1\r\n");
        e.reset();
        assert_eq!(e.info_lines(), "");
        assert_eq!(e.note(b"NEW x"), Noted::Counted);
    }
}
