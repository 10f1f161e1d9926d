//! Small shared helpers.

/// The copy of a request argument to keep beyond its command: a stored value,
/// field or member, a channel name, a WATCHed key, a client name, a SLOWLOG
/// argument, a queued or blocked command. Arguments up to `resp::SLICE_MAX` are
/// slices of the connection's read buffer (keeping one would keep that whole
/// buffer alive), so they are copied; longer ones are already a copy of their
/// own and are shared.
pub fn detach(arg: &bytes::Bytes) -> bytes::Bytes {
    if arg.len() <= crate::resp::SLICE_MAX {
        bytes::Bytes::copy_from_slice(arg)
    } else {
        arg.clone()
    }
}

/// A reading of the monotonic clock (`CLOCK_MONOTONIC`, the clock `Instant` reads on
/// Linux) in nanoseconds. Every command is timed (INFO commandstats, the latency
/// histograms, the slow log) and dated (`Server::clock_at`): with `Instant` each
/// subtraction normalises a (seconds, nanoseconds) pair with checks, about 60
/// instructions, twice per command and per `redis.call`; here it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mono(u64);

impl Mono {
    #[inline]
    pub fn now() -> Mono {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one `timespec` through a pointer to a live,
        // initialised one; CLOCK_MONOTONIC is always supported on Linux (it cannot
        // fail, and `t` stays zero if it did). Unsafe because it is the libc call:
        // rustix's safe wrapper finds the vDSO itself, which crashes under valgrind
        // (the callgrind and cachegrind measurements of bench/), where glibc's works.
        #[allow(unsafe_code)]
        unsafe {
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t);
        }
        // Both fields are non-negative for this clock (time since boot).
        Mono(
            (t.tv_sec as u64)
                .wrapping_mul(1_000_000_000)
                .wrapping_add(t.tv_nsec as u64),
        )
    }

    /// Nanoseconds from `earlier` to `self`, 0 when `earlier` is later.
    #[inline]
    pub fn nanos_since(self, earlier: Mono) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// [`Self::nanos_since`] as a `Duration`.
    pub fn since(self, earlier: Mono) -> std::time::Duration {
        std::time::Duration::from_nanos(self.nanos_since(earlier))
    }

    /// The reading `d` before now (an `Instant` kept elsewhere, carried over).
    pub fn ago(d: std::time::Duration) -> Mono {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Mono(Mono::now().0.saturating_sub(ns))
    }

    /// The time since this reading.
    pub fn elapsed(self) -> std::time::Duration {
        Mono::now().since(self)
    }
}

/// Renders bytes like Redis's `sdscatrepr` (MONITOR, SLOWLOG, CLIENT LIST):
/// printable ASCII as is, `\\` and `"` escaped, `\n \r \t \a \b`, others as `\xHH`.
pub fn repr_bytes(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            c if c.is_ascii_graphic() || c == b' ' => s.push(c as char),
            c => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// Glob-style pattern matching with Redis's `stringmatchlen` semantics (KEYS, SCAN
/// MATCH, PSUBSCRIBE, CONFIG GET, later ACL patterns): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`,
/// `\\x` escapes. As in Redis, `*` needs at least one byte before the pattern's end is
/// reached, so a lone `*` does not match the empty string (callers that mean "everything"
/// test for `*` first, as Redis's do).
///
/// Worst case: the recursion goes one level per `*` (at most [`GLOB_MAX_NESTING`]), and
/// once the rest of a pattern after a `*` failed to match at every position, no earlier
/// `*` retries a longer match ("skip longer matches", Redis's fix for CVE-2022-36021).
/// So `a*a*a*...*b` against a long string is polynomial, not exponential.
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    glob_from(pattern, string, nocase, &mut skip_longer, 0)
}

/// Deepest `*` nesting tried before a pattern is declared not to match (Redis: 1000).
pub const GLOB_MAX_NESTING: usize = 1000;

fn glob_from(p: &[u8], s: &[u8], nocase: bool, skip_longer: &mut bool, nesting: usize) -> bool {
    if nesting > GLOB_MAX_NESTING {
        return false;
    }
    let fold = |c: u8| if nocase { c.to_ascii_lowercase() } else { c };
    let (mut pi, mut si) = (0, 0);
    while pi < p.len() && si < s.len() {
        match p[pi] {
            b'*' => {
                while pi + 1 < p.len() && p[pi + 1] == b'*' {
                    pi += 1;
                }
                if pi + 1 == p.len() {
                    return true;
                }
                while si < s.len() {
                    if glob_from(&p[pi + 1..], &s[si..], nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    si += 1;
                }
                // The rest of the pattern matched nowhere in what is left of the string:
                // a longer match for an earlier `*` cannot help either.
                *skip_longer = true;
                return false;
            }
            b'?' => si += 1,
            b'[' => {
                let (matched, end) = glob_class(p, pi + 1, s[si], nocase);
                if !matched {
                    return false;
                }
                pi = end;
                si += 1;
            }
            c => {
                let c = if c == b'\\' && pi + 1 < p.len() {
                    pi += 1;
                    p[pi]
                } else {
                    c
                };
                if fold(c) != fold(s[si]) {
                    return false;
                }
                si += 1;
            }
        }
        pi += 1;
        if si == s.len() {
            while pi < p.len() && p[pi] == b'*' {
                pi += 1;
            }
            break;
        }
    }
    pi == p.len() && si == s.len()
}

/// Matches `c` against the class starting at `p[at]` (after its `[`). Returns whether it
/// matched and the index of the class's closing `]` (or the pattern's last byte when the
/// class is unterminated, which then ends the pattern as in Redis).
fn glob_class(p: &[u8], mut at: usize, c: u8, nocase: bool) -> (bool, usize) {
    let not = p.get(at) == Some(&b'^');
    if not {
        at += 1;
    }
    let mut matched = false;
    loop {
        let Some(&pc) = p.get(at) else {
            at -= 1;
            break;
        };
        if pc == b'\\' && at + 1 < p.len() {
            at += 1;
            // Escaped class members compare exactly, even under nocase (as Redis).
            matched |= p[at] == c;
        } else if pc == b']' {
            break;
        } else if at + 2 < p.len() && p[at + 1] == b'-' {
            let (mut lo, mut hi) = (pc, p[at + 2]);
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            let (lo, hi, c) = if nocase {
                (
                    lo.to_ascii_lowercase(),
                    hi.to_ascii_lowercase(),
                    c.to_ascii_lowercase(),
                )
            } else {
                (lo, hi, c)
            };
            at += 2;
            matched |= c >= lo && c <= hi;
        } else if nocase {
            matched |= pc.eq_ignore_ascii_case(&c);
        } else {
            matched |= pc == c;
        }
        at += 1;
    }
    (matched != not, at)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// 40 random lowercase hex characters (run ids, replication ids).
pub fn random_hex40() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..40)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// Case-insensitive ASCII comparison of an argument with a keyword.
pub fn is_kw(a: &[u8], kw: &str) -> bool {
    a.eq_ignore_ascii_case(kw.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        assert!(glob_match(b"foo\\*", b"foo*", false));
        assert!(!glob_match(b"foo\\*", b"foox", false));
        assert!(glob_match(b"user:*:name", b"user:42:name", false));
        assert!(!glob_match(b"a*b", b"acd", false));
        assert!(glob_match(b"HELLO", b"hello", true));
        assert!(glob_match(b"a*", b"a", false));
        assert!(glob_match(b"*a**", b"xa", false));
        assert!(!glob_match(b"*", b"", false), "Redis: `*` needs a byte");
        assert!(glob_match(b"", b"", false));
        assert!(
            glob_match(b"[a", b"a", false),
            "unterminated class ends the pattern"
        );
        assert!(!glob_match(b"[a", b"ab", false));
        assert!(glob_match(b"[]", b"x", false) == glob_match(b"[]", b"y", false));
        assert!(glob_match(b"\\", b"\\", false));
    }

    #[test]
    fn mono_readings_follow_instant() {
        let (i0, m0) = (std::time::Instant::now(), Mono::now());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (m1, i1) = (Mono::now(), std::time::Instant::now());
        let mono = m1.since(m0);
        assert!(mono >= std::time::Duration::from_millis(20), "{mono:?}");
        assert!(mono <= i1.duration_since(i0), "{mono:?}");
        assert_eq!(m0.nanos_since(m1), 0);
        assert!(m0.elapsed() >= mono);
        let back = Mono::ago(std::time::Duration::from_secs(1)).elapsed();
        assert!(back >= std::time::Duration::from_secs(1), "{back:?}");
    }

    #[test]
    fn adversarial_globs_finish_at_once() {
        // CVE-2022-36021's shape: many stars and a last byte that never matches.
        let key = vec![b'a'; 40];
        let mut pattern = b"a*".repeat(30);
        pattern.push(b'b');
        let t = std::time::Instant::now();
        assert!(!glob_match(&pattern, &key, false));
        let long_key = vec![b'a'; 100_000];
        let mut many = b"*a".repeat(500);
        many.extend_from_slice(b"*b");
        assert!(!glob_match(&many, &long_key, false));
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );
        // Nesting beyond the limit is a clean no-match, not a stack overflow.
        let deep = b"a*".repeat(GLOB_MAX_NESTING + 10);
        assert!(!glob_match(&deep, &vec![b'a'; 3000], false));
    }

    #[test]
    fn repr_escapes_like_redis() {
        assert_eq!(repr_bytes(b"a\"b\\\n\x01"), "a\\\"b\\\\\\n\\x01");
    }
}
