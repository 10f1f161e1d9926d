//! Latency data behind LATENCY and INFO `latencystats` (state layer; the commands
//! live in `commands::latency`).
//!
//! Two independent records, both kept in the [`crate::server::Store`] and fed from
//! the one clock reading `exec` takes around each command:
//! - the latency monitor: per event (`command`, `fast-command`, `expire-cycle`, ...),
//!   the last [`SERIES_LEN`] spikes of at least `latency-monitor-threshold` ms, at most
//!   one sample per second (a second spike in the same second raises that sample), plus
//!   the all-time maximum;
//! - per-command latency histograms (`latency-tracking`): an HDR histogram with the
//!   parameters Redis 7.0 uses (1 ns .. 1 s, 2 significant digits), so percentiles and
//!   the LATENCY HISTOGRAM buckets come out as Redis computes them.

use std::collections::BTreeMap;

/// Samples kept per event (Redis `LATENCY_TS_LEN`).
pub const SERIES_LEN: usize = 160;

/// One spike: when (unix seconds) and how long (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub time: i64,
    pub latency_ms: u64,
}

/// The spikes of one event: a ring of [`SERIES_LEN`] samples.
#[derive(Debug, Clone)]
pub struct Series {
    samples: [Sample; SERIES_LEN],
    /// Where the next sample goes.
    next: usize,
    /// All-time maximum (ms).
    pub max: u64,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            samples: [Sample::default(); SERIES_LEN],
            next: 0,
            max: 0,
        }
    }
}

impl Series {
    fn add(&mut self, now: i64, latency_ms: u64) {
        self.max = self.max.max(latency_ms);
        let prev = (self.next + SERIES_LEN - 1) % SERIES_LEN;
        if let Some(p) = self.samples.get_mut(prev) {
            if p.time == now {
                p.latency_ms = p.latency_ms.max(latency_ms);
                return;
            }
        }
        if let Some(s) = self.samples.get_mut(self.next) {
            *s = Sample {
                time: now,
                latency_ms,
            };
        }
        self.next = (self.next + 1) % SERIES_LEN;
    }

    /// The most recent sample.
    pub fn latest(&self) -> Sample {
        let prev = (self.next + SERIES_LEN - 1) % SERIES_LEN;
        self.samples.get(prev).copied().unwrap_or_default()
    }

    /// The recorded samples, oldest first.
    pub fn history(&self) -> impl Iterator<Item = Sample> + '_ {
        (0..SERIES_LEN)
            .filter_map(move |j| self.samples.get((self.next + j) % SERIES_LEN).copied())
            .filter(|s| s.time != 0)
    }
}

/// The latency monitor: spikes per event name.
#[derive(Debug, Default)]
pub struct Monitor {
    pub events: BTreeMap<&'static str, Series>,
}

impl Monitor {
    /// Records `latency_ms` for `event` when monitoring is on (`threshold_ms` > 0) and
    /// the latency reaches the threshold (Redis `latencyAddSampleIfNeeded`).
    #[inline]
    pub fn add_if_needed(&mut self, threshold_ms: u64, event: &'static str, latency_ms: u64) {
        if threshold_ms > 0 && latency_ms >= threshold_ms {
            self.add_now(event, latency_ms);
        }
    }

    #[cold]
    #[inline(never)]
    fn add_now(&mut self, event: &'static str, latency_ms: u64) {
        self.add(event, latency_ms, crate::util::now_ms() / 1000);
    }

    pub fn add(&mut self, event: &'static str, latency_ms: u64, now_secs: i64) {
        self.events
            .entry(event)
            .or_default()
            .add(now_secs, latency_ms);
    }

    /// Forgets the named events (all when `names` is empty); how many were dropped.
    pub fn reset(&mut self, names: &[&[u8]]) -> usize {
        if names.is_empty() {
            let n = self.events.len();
            self.events.clear();
            return n;
        }
        let mut n = 0;
        for name in names {
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            if self.events.remove(name).is_some() {
                n += 1;
            }
        }
        n
    }
}

/// Smallest and largest value tracked (ns), as Redis clamps command durations.
const HIST_MIN: u64 = 1;
const HIST_MAX: u64 = 1_000_000_000;
/// Two significant digits: 2 * 10^2 = 200 values of unit resolution need 256 sub-buckets.
const SUB_BUCKET_COUNT_MAGNITUDE: u32 = 8;
const SUB_BUCKET_HALF_MAGNITUDE: u32 = SUB_BUCKET_COUNT_MAGNITUDE - 1;
const SUB_BUCKET_COUNT: u64 = 1 << SUB_BUCKET_COUNT_MAGNITUDE;
const SUB_BUCKET_HALF: u64 = SUB_BUCKET_COUNT / 2;
const SUB_BUCKET_MASK: u64 = SUB_BUCKET_COUNT - 1;

/// Buckets needed so that `SUB_BUCKET_COUNT << (buckets - 1)` exceeds [`HIST_MAX`].
const fn bucket_count() -> u32 {
    let mut smallest_untrackable = SUB_BUCKET_COUNT;
    let mut n = 1;
    while smallest_untrackable <= HIST_MAX {
        smallest_untrackable <<= 1;
        n += 1;
    }
    n
}
const COUNTS_LEN: usize = ((bucket_count() as u64 + 1) * SUB_BUCKET_HALF) as usize;

/// An HDR histogram of durations in ns (lowest 1, highest 1 s, 2 significant
/// digits): the layout of HdrHistogram_c, which Redis uses, so that the reported
/// values (highest equivalent of a bucket) match Redis's.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    pub total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; COUNTS_LEN],
            total: 0,
        }
    }
}

fn bucket_index(v: u64) -> u32 {
    let pow2ceiling = 64 - (v | SUB_BUCKET_MASK).leading_zeros();
    pow2ceiling - (SUB_BUCKET_HALF_MAGNITUDE + 1)
}

fn counts_index(v: u64) -> usize {
    let bucket = bucket_index(v);
    let sub = v >> bucket;
    (((u64::from(bucket) + 1) << SUB_BUCKET_HALF_MAGNITUDE) + sub - SUB_BUCKET_HALF) as usize
}

fn value_at_index(idx: usize) -> u64 {
    let idx = idx as u64;
    let mut bucket = (idx >> SUB_BUCKET_HALF_MAGNITUDE) as i64 - 1;
    let mut sub = (idx & (SUB_BUCKET_HALF - 1)) + SUB_BUCKET_HALF;
    if bucket < 0 {
        sub -= SUB_BUCKET_HALF;
        bucket = 0;
    }
    sub << bucket
}

/// The largest value counted in the same slot as `v`.
pub fn highest_equivalent(v: u64) -> u64 {
    let bucket = bucket_index(v);
    let sub = v >> bucket;
    let adjusted = if sub >= SUB_BUCKET_COUNT {
        bucket + 1
    } else {
        bucket
    };
    let lowest = sub << bucket;
    lowest.saturating_add((1u64 << adjusted) - 1)
}

impl Histogram {
    /// Counts one duration of `ns` nanoseconds (clamped to 1 ns .. 1 s).
    pub fn record(&mut self, ns: u64) {
        let v = ns.clamp(HIST_MIN, HIST_MAX);
        if let Some(c) = self.counts.get_mut(counts_index(v)) {
            *c += 1;
            self.total += 1;
        }
    }

    /// The value (ns) at `percentile` (0..=100), as `hdr_value_at_percentile`.
    pub fn value_at_percentile(&self, percentile: f64) -> u64 {
        let p = percentile.min(100.0);
        let want = ((p / 100.0) * self.total as f64 + 0.5) as u64;
        let want = want.max(1);
        let mut seen = 0;
        for (idx, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                let v = value_at_index(idx);
                return if percentile == 0.0 {
                    v
                } else {
                    highest_equivalent(v)
                };
            }
        }
        0
    }

    /// LATENCY HISTOGRAM's buckets: (upper bound in µs, cumulative count) at powers
    /// of two from 1024 ns, only where the cumulative count grew.
    pub fn cumulative_usec(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut level: u64 = 1024;
        let mut seen = 0;
        let mut idx = 0;
        let mut previous = 0;
        while seen < self.total {
            let top = highest_equivalent(level);
            while let Some(c) = self.counts.get(idx) {
                if value_at_index(idx) > top {
                    break;
                }
                seen += c;
                idx += 1;
            }
            if seen > previous {
                out.push((top / 1000, seen));
            }
            previous = seen;
            if idx >= self.counts.len() {
                break;
            }
            level = level.saturating_mul(2);
        }
        out
    }
}

/// Per-command histograms, by the command's full name (`get`, `config|set`).
#[derive(Debug, Default)]
pub struct Tracking {
    pub commands: ByName<Histogram>,
}

/// Calls of one command and the time they took (INFO commandstats, and the admin
/// port's `redis_commands_total` family reads the same numbers).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Calls {
    pub calls: u64,
    pub usec: u64,
    /// Refused before running (arity, NOAUTH, OOM, READONLY, MISCONF...).
    pub rejected: u64,
    /// Ran and answered an error (WRONGTYPE, a syntax error...).
    pub failed: u64,
}

/// Everything latency-related the store keeps.
#[derive(Debug, Default)]
pub struct Latency {
    pub monitor: Monitor,
    pub tracking: Tracking,
    /// Every executed command, by full name, whatever the latency settings.
    pub calls: ByName<Calls>,
}

/// Values kept per command full name (`get`, `config|set`): updated after every
/// command, including each one a script calls, read rarely and in name order.
///
/// The names are `&'static str`s of the command tables, the same address every time
/// for a command: a small table by address finds a name seen before without
/// comparing strings (the ordered map compared a name about ten times per update).
/// A matching address and length is the same name; anything else goes to the map.
#[derive(Debug)]
pub struct ByName<T> {
    /// Name -> index in `values`.
    index: BTreeMap<&'static str, usize>,
    values: Vec<T>,
    /// `(address, length, index + 1)` of recently updated names, by a hash of the
    /// address, two entries per hash (a pair of lines, [`line_of`]): names that
    /// share a line were looked up in the map on every update, and which names
    /// share one depends on where the linker put them (a script's `redis.call`
    /// and EVALSHA did in some builds). 0 in the last field is an empty entry.
    recent: [(usize, usize, usize); RECENT],
}

/// Entries of [`ByName::recent`] (a power of two).
const RECENT: usize = 32;

impl<T> Default for ByName<T> {
    fn default() -> Self {
        ByName {
            index: BTreeMap::new(),
            values: Vec::new(),
            recent: [(0, 0, 0); RECENT],
        }
    }
}

/// The first of the two [`ByName::recent`] entries for a name at `addr` (the other
/// is the next one): a multiplicative hash of the address, as names a few lines
/// apart in the binary must not share entries.
#[inline]
fn line_of(addr: usize) -> usize {
    ((addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 59) as usize & (RECENT - 2)
}

impl<T: Default> ByName<T> {
    /// The value of `name`, created with its default.
    pub fn entry(&mut self, name: &'static str) -> &mut T {
        let addr = name.as_ptr() as usize;
        let line = line_of(addr);
        let hit = |(a, len, slot): (usize, usize, usize)| {
            (slot != 0 && a == addr && len == name.len()).then(|| slot - 1)
        };
        let at = match hit(self.recent[line]).or_else(|| hit(self.recent[line + 1])) {
            Some(at) => at,
            None => self.index_of(name, line),
        };
        // Indices in `index` and `recent` are always below `values.len()`: values
        // are only pushed, and `clear` empties all three.
        &mut self.values[at]
    }

    /// [`Self::entry`] for a name not in `recent` (out of line: once per name, or
    /// when three names share a pair of entries). The name takes the pair's first
    /// entry, whose name moves to the second.
    #[cold]
    #[inline(never)]
    fn index_of(&mut self, name: &'static str, line: usize) -> usize {
        let values = &mut self.values;
        let at = *self.index.entry(name).or_insert_with(|| {
            values.push(T::default());
            values.len() - 1
        });
        self.recent[line + 1] = self.recent[line];
        self.recent[line] = (name.as_ptr() as usize, name.len(), at + 1);
        at
    }
}

impl<T> ByName<T> {
    pub fn get(&self, name: &str) -> Option<&T> {
        self.get_key_value(name).map(|(_, v)| v)
    }

    pub fn get_key_value(&self, name: &str) -> Option<(&&'static str, &T)> {
        let (k, &at) = self.index.get_key_value(name)?;
        Some((k, self.values.get(at)?))
    }

    /// Every name and its value, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&&'static str, &T)> {
        self.index
            .iter()
            .filter_map(|(k, &at)| Some((k, self.values.get(at)?)))
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.values.clear();
        self.recent = [(0, 0, 0); RECENT];
    }
}

impl<'a, T> IntoIterator for &'a ByName<T> {
    type Item = (&'a &'static str, &'a T);
    type IntoIter = Box<dyn Iterator<Item = Self::Item> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl Latency {
    /// Feeds one executed command: its call count, the monitor's
    /// `command`/`fast-command` event and, when `tracking` is on, its histogram.
    pub fn observe_command(
        &mut self,
        (threshold_ms, tracking): (u64, bool),
        (name, fast, failed): (&'static str, bool, u64),
        elapsed_ns: u64,
    ) {
        let c = self.calls.entry(name);
        c.calls += 1;
        c.failed += failed;
        c.usec = c.usec.saturating_add(elapsed_ns / 1000);
        let ms = elapsed_ns / 1_000_000;
        let event = if fast { "fast-command" } else { "command" };
        self.monitor.add_if_needed(threshold_ms, event, ms);
        if tracking {
            self.tracking.commands.entry(name).record(elapsed_ns);
        }
    }

    /// The end of a command that blocked: its call was counted when it blocked (with
    /// the time it took then); the answer given when it is unblocked adds its time,
    /// whether it failed and, when `tracking` is on, the histogram sample, as Redis's
    /// `updateStatsOnUnblock` does.
    pub fn observe_unblocked(
        &mut self,
        tracking: bool,
        (name, failed): (&'static str, bool),
        elapsed_ns: u64,
    ) {
        let c = self.calls.entry(name);
        c.failed += failed as u64;
        c.usec = c.usec.saturating_add(elapsed_ns / 1000);
        if tracking {
            self.tracking.commands.entry(name).record(elapsed_ns);
        }
    }

    /// A command refused before it ran (INFO commandstats `rejected_calls`).
    pub fn reject_command(&mut self, name: &'static str) {
        self.calls.entry(name).rejected += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_counts_per_name_whatever_its_address_and_lists_in_order() {
        let mut m: ByName<u64> = ByName::default();
        // The same name at two addresses (a leaked copy): one entry.
        let copy: &'static str = Box::leak(String::from("get").into_boxed_str());
        for _ in 0..3 {
            *m.entry("get") += 1;
            *m.entry("set") += 1;
        }
        *m.entry(copy) += 10;
        // A prefix of another name starts at the same address: not the same name.
        let long: &'static str = "config|get";
        *m.entry(long) += 1;
        *m.entry(&long[..6]) += 100;
        assert_eq!(m.get("get"), Some(&13));
        assert_eq!(m.get("set"), Some(&3));
        assert_eq!(m.get("config|get"), Some(&1));
        assert_eq!(m.get("config"), Some(&100));
        let names: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(
            names,
            [("config", 100), ("config|get", 1), ("get", 13), ("set", 3)]
        );
        m.clear();
        assert_eq!(m.get("get"), None);
        *m.entry("get") += 1;
        assert_eq!(m.get("get"), Some(&1));
        assert_eq!(m.iter().count(), 1);
    }

    #[test]
    fn one_sample_per_second_keeps_the_highest_and_the_ring_holds_160() {
        let mut m = Monitor::default();
        m.add("command", 200, 100);
        m.add("command", 300, 100);
        m.add("command", 100, 100);
        let s = &m.events["command"];
        assert_eq!(
            s.latest(),
            Sample {
                time: 100,
                latency_ms: 300
            }
        );
        assert_eq!(s.history().count(), 1);
        for t in 0..200 {
            m.add("command", 10, 1000 + t);
        }
        let s = &m.events["command"];
        let h: Vec<_> = s.history().collect();
        assert_eq!(h.len(), SERIES_LEN);
        assert_eq!(h.first().map(|s| s.time), Some(1040));
        assert_eq!(h.last().map(|s| s.time), Some(1199));
        assert_eq!(s.max, 300);
        assert_eq!(m.reset(&[b"nosuch", b"command"]), 1);
        assert!(m.events.is_empty());
    }

    #[test]
    fn the_threshold_gates_samples_and_zero_disables() {
        let mut m = Monitor::default();
        m.add_if_needed(0, "command", 500);
        m.add_if_needed(100, "command", 99);
        assert!(m.events.is_empty());
        m.add_if_needed(100, "command", 100);
        assert_eq!(m.events.len(), 1);
    }

    #[test]
    fn histogram_values_match_redis_hdr_parameters() {
        // Values Redis 7.0.15 reports for these durations (INFO latencystats shows
        // 2.007 for ~2 µs, 1.003 for ~1 µs, 786.431 for a ~0.78 ms call).
        assert_eq!(highest_equivalent(2000), 2007);
        assert_eq!(highest_equivalent(1000), 1003);
        assert_eq!(highest_equivalent(783_000), 786_431);
        let mut h = Histogram::default();
        h.record(2000);
        h.record(5000);
        h.record(0);
        h.record(u64::MAX);
        assert_eq!(h.total, 4);
        assert_eq!(h.value_at_percentile(50.0), 2007);
        assert_eq!(h.value_at_percentile(100.0), highest_equivalent(HIST_MAX));
        // Buckets at 1, 2, 4, 8 µs ... as LATENCY HISTOGRAM prints them.
        let b = h.cumulative_usec();
        assert_eq!(b.first(), Some(&(1, 1)));
        assert_eq!(b.get(1), Some(&(2, 2)));
        assert_eq!(b.get(2), Some(&(8, 3)));
        assert_eq!(b.last().map(|x| x.1), Some(4));
    }
}
