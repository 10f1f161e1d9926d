//! `util::glob_match(pattern, string, nocase)`: never panics, finishes fast (linear-ish
//! in pattern x string, not exponential), and agrees with itself on simple identities.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use tandem_server::util::glob_match;

/// CPU time of this thread (not wall time: a busy machine must not fail the check).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec, which we own; std has no
    // per-thread CPU clock.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time allowed for one match: a fixed 50 ms plus 100 ns per
/// (pattern byte x string byte), the polynomial work Redis's matcher may do on classes
/// and stars. An exponential matcher needs seconds for `a*a*a*a*a*a*a*a*a*a*a*b` against
/// forty `a`s, where this allows about 0.05 s.
fn budget(pattern: usize, string: usize) -> Duration {
    let cells = (pattern as u64 + 1) * (string as u64 + 1);
    Duration::from_millis(50) + Duration::from_nanos(100 * cells)
}

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
    let start = thread_cpu();
    let m = glob_match(pattern, string, nocase);
    let took = thread_cpu().saturating_sub(start);
    assert!(
        took < budget(pattern.len(), string.len()),
        "glob_match took {took:?} (pattern {} bytes, string {} bytes)",
        pattern.len(),
        string.len()
    );
    // A pattern without special bytes matches exactly itself.
    if !pattern
        .iter()
        .any(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
    {
        let expect = if nocase {
            pattern.eq_ignore_ascii_case(string)
        } else {
            pattern == string
        };
        assert_eq!(m, expect, "literal pattern mismatch");
    }
    // `*` matches every non-empty string and, as in Redis's stringmatchlen, not the
    // empty one (KEYS and SCAN special-case a lone `*` before matching). (A case-sensitive match is NOT always a case-insensitive
    // one: `[A-z]` holds `_` but, lowered, `[a-z]` does not; Redis agrees.)
    assert_eq!(glob_match(b"*", string, nocase), !string.is_empty());
});
