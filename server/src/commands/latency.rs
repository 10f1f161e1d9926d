//! LATENCY (the latency monitor and per-command histograms kept in
//! `crate::latency`) and LOLWUT.

use super::connection::{help_reply, unknown_subcommand};
use super::{arg_i64, flags::*, CmdError, CmdResult, Command, Ctx};
use crate::latency::{Sample, Series};
use crate::resp::Reply;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("latency", -2, ADMIN | LOADING | STALE, latency),
    Command::new("lolwut", -1, READONLY | FAST, lolwut),
];

/// The version line every LOLWUT output ends with.
const VERSION_LINE: &str = "Redis ver. 7.0.15\n";

const LATENCY_HELP: &[&str] = &[
    "DOCTOR",
    "    Describe the recorded latency spikes and what may cause them.",
    "GRAPH <event>",
    "    Draw the recorded samples of <event> as ASCII art.",
    "HISTORY <event>",
    "    Return the recorded (time, latency) samples of <event>.",
    "LATEST",
    "    Return, for every event, its latest sample and its all-time maximum.",
    "RESET [<event> ...]",
    "    Forget the samples of the given events (of every event without arguments).",
    "HISTOGRAM [COMMAND ...]",
    "    Return the latency distribution of the given commands (of every command",
    "    called so far without arguments), as cumulative counts per bucket.",
    "HELP",
    "    Print this help.",
];

fn latency(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = argv[1].to_ascii_lowercase();
    let argc = argv.len();
    let lat = &mut ctx.store.latency;
    match &sub[..] {
        b"latest" if argc == 2 => {
            out.array(lat.monitor.events.len());
            for (name, s) in &lat.monitor.events {
                let l = s.latest();
                out.array(4);
                out.bulk_str(name);
                out.int(l.time);
                out.int(l.latency_ms as i64);
                out.int(s.max as i64);
            }
        }
        b"history" if argc == 3 => {
            let samples: Vec<Sample> = event(lat, &argv[2])
                .map(|s| s.history().collect())
                .unwrap_or_default();
            out.array(samples.len());
            for s in samples {
                out.array(2);
                out.int(s.time);
                out.int(s.latency_ms as i64);
            }
        }
        b"reset" => {
            let names: Vec<&[u8]> = argv[2..].iter().map(|a| &a[..]).collect();
            out.int(lat.monitor.reset(&names) as i64);
        }
        b"graph" if argc == 3 => {
            let name = String::from_utf8_lossy(&argv[2]);
            let Some(s) = event(lat, &argv[2]) else {
                return Err(CmdError::msg(format!(
                    "ERR No samples available for event '{name}'"
                )));
            };
            let text = graph(&name, s, crate::util::now_ms() / 1000);
            out.verbatim(&text);
        }
        b"doctor" if argc == 2 => {
            let threshold = ctx.store.hot.latency_monitor_threshold;
            let text = doctor(threshold, &ctx.store.latency.monitor.events);
            out.verbatim(&text);
        }
        b"histogram" => histogram(ctx, out, &argv[2..]),
        b"help" if argc == 2 => help_reply(out, "LATENCY", LATENCY_HELP),
        _ => return Err(unknown_subcommand(&argv[1], "LATENCY")),
    }
    Ok(())
}

fn event<'a>(lat: &'a crate::latency::Latency, name: &[u8]) -> Option<&'a Series> {
    let name = std::str::from_utf8(name).ok()?;
    lat.monitor.events.get(name)
}

/// LATENCY HISTOGRAM: a map from command full name to its call count and buckets.
/// Unknown or never-called names are left out, as in Redis.
fn histogram(ctx: &mut Ctx, out: &mut Reply, names: &[Bytes]) {
    let hists = &ctx.store.latency.tracking.commands;
    let chosen: Vec<_> = if names.is_empty() {
        hists.iter().collect()
    } else {
        let mut v = Vec::new();
        for n in names {
            let lower = String::from_utf8_lossy(n).to_ascii_lowercase();
            // A name given twice is answered twice, as in Redis.
            if let Some(kh) = hists.get_key_value(lower.as_str()) {
                v.push(kh);
            }
            // A command with subcommands (CLIENT, CONFIG...) brings theirs too.
            if !lower.contains('|') {
                let prefix = format!("{lower}|");
                v.extend(hists.iter().filter(|(k, _)| k.starts_with(&prefix)));
            }
        }
        v
    };
    out.map(chosen.len());
    for (name, h) in chosen {
        out.bulk_str(name);
        out.map(2);
        out.bulk_str("calls");
        out.int(h.total as i64);
        out.bulk_str("histogram_usec");
        let buckets = h.cumulative_usec();
        out.map(buckets.len());
        for (usec, count) in buckets {
            out.int(usec as i64);
            out.int(count as i64);
        }
    }
}

/// Rows of the graph's bars.
const GRAPH_ROWS: u64 = 4;

/// An ASCII chart of an event's samples: a title with the range, then one column per
/// sample (newest on the right) and, under each, how long ago it was.
fn graph(name: &str, s: &Series, now: i64) -> String {
    let samples: Vec<Sample> = s.history().collect();
    let high = samples.iter().map(|x| x.latency_ms).max().unwrap_or(0);
    let low = samples.iter().map(|x| x.latency_ms).min().unwrap_or(0);
    let mut text = format!(
        "{name} - high {high} ms, low {low} ms (all time high {} ms)\n",
        s.max
    );
    text.push_str(&"-".repeat(80));
    text.push('\n');
    // At most 80 columns: the newest samples.
    let shown = &samples[samples.len().saturating_sub(80)..];
    for row in (1..=GRAPH_ROWS).rev() {
        let line: String = shown
            .iter()
            .map(|x| {
                let span = high.saturating_sub(low).max(1);
                let level = 1 + (x.latency_ms.saturating_sub(low) * (GRAPH_ROWS - 1)) / span;
                if level >= row {
                    '#'
                } else {
                    ' '
                }
            })
            .collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    let ages: Vec<String> = shown.iter().map(|x| age(now - x.time)).collect();
    let depth = ages.iter().map(String::len).max().unwrap_or(0);
    for i in 0..depth {
        let line: String = ages
            .iter()
            .map(|a| a.as_bytes().get(i).map_or(' ', |&b| b as char))
            .collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// A compact age: `12s`, `3m`, `2h`, `1d`.
fn age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// LATENCY DOCTOR: Tandem's own plain report over the recorded spikes.
fn doctor(threshold_ms: u64, events: &std::collections::BTreeMap<&'static str, Series>) -> String {
    if threshold_ms == 0 {
        return "Latency monitoring is disabled. Enable it with \
                \"CONFIG SET latency-monitor-threshold <milliseconds>\".\n"
            .to_string();
    }
    if events.is_empty() {
        return format!(
            "No latency spike of {threshold_ms} ms or more has been recorded since the \
             start (or the last LATENCY RESET).\n"
        );
    }
    let mut text = format!("Latency spikes of {threshold_ms} ms or more were recorded:\n\n");
    for (i, (name, s)) in events.iter().enumerate() {
        let samples: Vec<Sample> = s.history().collect();
        let n = samples.len().max(1) as u64;
        let avg = samples.iter().map(|x| x.latency_ms).sum::<u64>() / n;
        text.push_str(&format!(
            "{}. {name}: {} latency spikes (average {avg}ms). Worst all time event {}ms.\n",
            i + 1,
            samples.len(),
            s.max
        ));
    }
    text.push('\n');
    if events.contains_key("command") || events.contains_key("fast-command") {
        text.push_str(
            "- Slow commands: SLOWLOG GET shows which commands took long. Commands over \
             large values (SORT, SUNION, KEYS, ...) grow with their input.\n",
        );
    }
    if events.contains_key("expire-cycle") || events.contains_key("eviction-cycle") {
        text.push_str(
            "- Expiring or evicting large values blocks the server; split large values \
             into smaller keys.\n",
        );
    }
    if events.contains_key("fork") {
        text.push_str("- Forking for persistence took long; a smaller dataset forks faster.\n");
    }
    text
}

/// LOLWUT [VERSION v] [...]: Tandem draws a small plain picture for the versions that
/// draw art in Redis (5 and 6) and, like Redis 7.0, only the version line otherwise.
fn lolwut(_ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let mut version = 7;
    if argv.len() >= 3 && argv[1].eq_ignore_ascii_case(b"version") {
        version = arg_i64(&argv[2])?;
    }
    // The drawing versions take optional numeric size arguments after the version.
    let mut sizes = Vec::new();
    if version == 5 || version == 6 {
        for a in argv.iter().skip(3) {
            sizes.push(arg_i64(a)?);
        }
    }
    let text = match version {
        5 | 6 => {
            let cols = sizes.first().copied().unwrap_or(20).clamp(1, 80) as usize;
            let rows = sizes.get(1).copied().unwrap_or(4).clamp(1, 10) as usize;
            let mut t = String::new();
            for r in 0..rows {
                let line: String = (0..cols)
                    .map(|c| if (r + c) % 2 == 0 { '/' } else { '\\' })
                    .collect();
                t.push_str(&line);
                t.push('\n');
            }
            t.push_str("Tandem, after a plotter drawing. ");
            t.push_str(VERSION_LINE);
            t
        }
        _ => VERSION_LINE.to_string(),
    };
    out.verbatim(&text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_titles_the_range_and_draws_one_column_per_sample() {
        let mut m = crate::latency::Monitor::default();
        m.add("command", 100, 1000);
        m.add("command", 300, 1010);
        let text = graph("command", &m.events["command"], 1010);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.first(),
            Some(&"command - high 300 ms, low 100 ms (all time high 300 ms)")
        );
        assert_eq!(lines.get(2), Some(&" #"));
        assert_eq!(lines.get(5), Some(&"##"));
        assert_eq!(lines.get(6), Some(&"10"));
    }
}
