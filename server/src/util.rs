//! Small shared helpers.

use std::sync::OnceLock;

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
///
/// Once [`TscCalibration`] has measured the processor's time-stamp counter against
/// the kernel's clock (about 0.1 s after start, on x86_64 machines whose kernel itself
/// keeps time with that counter), a reading is the counter scaled to nanoseconds:
/// about 20 ns less per reading than the vDSO's `clock_gettime` here, which waits for
/// every earlier instruction before it reads the counter (docs/benchmarks.md,
/// optimisation log entry 42). The scale is fixed once measured, so readings stay
/// monotonic; it follows the kernel's clock to within a few parts per million, and
/// what maps a reading to wall time (`Server::reanchor_clock`) re-reads the wall
/// clock ten times a second anyway. Redis offers the same choice at build time
/// (`USE_PROCESSOR_CLOCK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mono(u64);

/// The time-stamp counter's scale, measured once per process by [`TscCalibration`]:
/// `None` when the counter must not be used (not x86_64, not invariant, or the
/// kernel does not use it as its clock source). Write-once: a process-wide fact of
/// the machine read on every clock reading, like the vDSO's own data, so it is not
/// passed down (every command and connection reads the clock).
static TSC: OnceLock<Option<Tsc>> = OnceLock::new();

/// `ns + (counter - at) * mult / 2^32`: the kernel's reading `ns` taken at counter
/// value `at`, and nanoseconds per count in 32.32 fixed point.
#[derive(Debug, Clone, Copy)]
struct Tsc {
    at: u64,
    ns: u64,
    mult: u64,
}

impl Tsc {
    #[inline]
    fn read(&self, counter: u64) -> u64 {
        // A counter read on another core may trail `at` by a few counts: clamped,
        // so a reading never goes before the calibration point.
        let d = counter.saturating_sub(self.at) as u128;
        self.ns.wrapping_add(((d * self.mult as u128) >> 32) as u64)
    }
}

impl Mono {
    #[inline]
    pub fn now() -> Mono {
        if let Some(Some(tsc)) = TSC.get() {
            return Mono(tsc.read(rdtsc()));
        }
        Mono::kernel()
    }

    /// The kernel's `CLOCK_MONOTONIC`, through the vDSO.
    fn kernel() -> Mono {
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

/// The time-stamp counter, or 0 off x86_64 (where it is never used).
#[inline]
fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC reads a register; it has no memory effects and exists on
        // every x86_64 processor (the only unsafety is that it is an intrinsic).
        #[allow(unsafe_code)]
        unsafe {
            std::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
}

/// Whether the counter ticks at a constant rate through power states (CPUID's
/// "invariant TSC") and the kernel keeps its own time with it (it checked the
/// counter's stability across cores at boot and would have switched away otherwise).
fn tsc_usable() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        // Leaf 0x8000_0007 is read only when the highest extended leaf (leaf
        // 0x8000_0000's answer) covers it.
        let invariant =
            __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0;
        invariant
            && std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .is_ok_and(|s| s.trim() == "tsc")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The kernel's clock and the counter read together: the counter halfway between two
/// reads around the kernel's, from the tightest of a few tries (an interrupt or a
/// preemption between the reads widens one); None if none was tight.
fn paired_reading() -> Option<(u64, u64)> {
    let mut best: Option<(u64, u64, u64)> = None;
    for _ in 0..8 {
        let before = rdtsc();
        let ns = Mono::kernel().0;
        let after = rdtsc();
        let gap = after.wrapping_sub(before);
        if after > before && gap < 20_000 && best.is_none_or(|(g, _, _)| gap < g) {
            best = Some((gap, ns, before + gap / 2));
        }
    }
    best.map(|(_, ns, at)| (ns, at))
}

/// Measures the time-stamp counter against the kernel's clock, one step per call of
/// the server's periodic task (`expire::active_expire_cycle`): the first step
/// records a paired reading, a step at least [`Self::SPAN_NS`] later a second one, and
/// their ratio becomes [`Mono::now`]'s scale for the rest of the process. Until then
/// (and for good where the counter is not usable) `Mono::now` reads the kernel's clock.
#[derive(Debug, Default)]
pub struct TscCalibration {
    first: Option<(u64, u64)>,
}

impl TscCalibration {
    /// Shortest span measured: the paired readings are each exact to about 0.1 µs,
    /// so the scale is exact to about two parts per million.
    pub const SPAN_NS: u64 = 90_000_000;

    pub fn step(&mut self) {
        if TSC.get().is_some() {
            return;
        }
        if !tsc_usable() {
            let _ = TSC.set(None);
            return;
        }
        let Some((ns, at)) = paired_reading() else {
            return;
        };
        let Some((ns0, at0)) = self.first else {
            self.first = Some((ns, at));
            return;
        };
        let (dn, dt) = (ns.saturating_sub(ns0), at.saturating_sub(at0));
        if dn < Self::SPAN_NS || dt == 0 {
            return;
        }
        let mult = ((dn as u128) << 32) / dt as u128;
        // Between 20 GHz and 100 MHz: anything else is not a clock worth trusting.
        if !((1u128 << 32) / 20..=(1u128 << 32) * 10).contains(&mult) {
            let _ = TSC.set(None);
            return;
        }
        let _ = TSC.set(Some(Tsc {
            at,
            ns,
            mult: mult as u64,
        }));
    }

    /// Whether `Mono::now` reads the counter (for tests and INFO-style reports).
    pub fn in_use() -> bool {
        matches!(TSC.get(), Some(Some(_)))
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
        // Once the counter is calibrated (another test may have done it in this
        // process) Mono runs at a rate fixed then, which the kernel's clock may since
        // have been slewed away from by NTP (by at most 500 ppm): 10 µs over 20 ms.
        let slack = std::time::Duration::from_micros(10);
        assert!(
            mono + slack >= std::time::Duration::from_millis(20),
            "{mono:?}"
        );
        assert!(mono <= i1.duration_since(i0) + slack, "{mono:?}");
        assert_eq!(m0.nanos_since(m1), 0);
        assert!(m0.elapsed() >= mono);
        let back = Mono::ago(std::time::Duration::from_secs(1)).elapsed();
        assert!(back >= std::time::Duration::from_secs(1), "{back:?}");
    }

    #[test]
    fn counter_readings_follow_the_kernel_clock_once_calibrated() {
        let mut cal = TscCalibration::default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while TSC.get().is_none() && std::time::Instant::now() < deadline {
            cal.step();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            TSC.get().is_some(),
            "calibration decides within a few steps"
        );
        if !TscCalibration::in_use() {
            return; // not an x86_64 machine whose kernel keeps time with the counter
        }
        // Readings of either clock, interleaved, agree to within a few µs and the
        // counter's never go back, on this thread or on others. A kernel reading is
        // bracketed by two counter readings, so a preemption between them only
        // widens the bracket (it cannot fail the test on a busy machine).
        let mut last = Mono::now();
        for _ in 0..1000 {
            let (m0, k, m1) = (Mono::now(), Mono::kernel(), Mono::now());
            assert!(
                k.0 + 50_000 >= m0.0,
                "kernel {} before counter {}",
                k.0,
                m0.0
            );
            assert!(
                k.0 <= m1.0 + 50_000,
                "kernel {} after counter {}",
                k.0,
                m1.0
            );
            assert!(m0 >= last && m1 >= m0);
            last = m1;
        }
        let t = std::thread::spawn(Mono::now).join().unwrap_or(Mono(0));
        assert!(t >= last);
        // Over 50 ms both clocks advance alike: the tightest brackets of a few tries
        // at each end.
        let tight = || {
            (0..100)
                .map(|_| (Mono::now(), Mono::kernel(), Mono::now()))
                .min_by_key(|(a, _, b)| b.nanos_since(*a))
                .map(|(a, k, b)| (k.0, a.0 + b.nanos_since(a) / 2))
                .unwrap_or((0, 0))
        };
        let (k0, m0) = tight();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (k1, m1) = tight();
        let drift = (k1 - k0).abs_diff(m1 - m0);
        assert!(drift < 20_000, "{drift} ns apart over 50 ms");
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
