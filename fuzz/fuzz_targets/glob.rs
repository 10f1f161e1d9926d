//! `util::glob_match(pattern, string, nocase)`: never panics, finishes fast (linear-ish
//! in pattern x string, not exponential), and agrees with itself on simple identities.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use tandem_server::util::glob_match;

/// Generous for inputs of at most a few KB; an exponential matcher blows past it with
/// a pattern of a dozen stars.
const BUDGET: Duration = Duration::from_millis(50);

fuzz_target!(|data: &[u8]| {
    // Layout: flags byte, then pattern and string separated by the first 0x00 (absent:
    // the string is the pattern itself, which matches unless it has special bytes).
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let nocase = flags & 1 != 0;
    let (pattern, string) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, rest),
    };
    let start = Instant::now();
    let m = glob_match(pattern, string, nocase);
    let took = start.elapsed();
    assert!(
        took < BUDGET,
        "glob_match took {took:?} (pattern {} bytes, string {} bytes)",
        pattern.len(),
        string.len()
    );
    // A pattern without special bytes matches exactly itself.
    if !pattern.iter().any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\')) {
        let expect = if nocase {
            pattern.eq_ignore_ascii_case(string)
        } else {
            pattern == string
        };
        assert_eq!(m, expect, "literal pattern mismatch");
    }
    // `*` matches everything. (A case-sensitive match is NOT always a case-insensitive
    // one: `[A-z]` holds `_` but, lowered, `[a-z]` does not; Redis agrees.)
    assert!(glob_match(b"*", string, nocase));
});
