//! Directives with a syntax of their own (table kind `Special`): each function checks
//! the arguments as Redis 7.0 does and returns the canonical value CONFIG GET shows,
//! or Redis's error text.

use super::{current_dir, parse_int, parse_memory, strerror, Origin};
use crate::outbuf::{Class, Limit};

/// Why a value was refused; the text is Redis's (CONFIG SET shows it after
/// "Invalid argument ... for CONFIG SET ...", the config file after the line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("Invalid save parameters")]
    SaveParams,
    #[error("Too many bind addresses specified.")]
    TooManyBinds,
    #[error("wrong number of arguments")]
    WrongArgCount,
    #[error("Invalid master port")]
    MasterPort,
    #[error("Wrong number of arguments in buffer limit configuration.")]
    BufferLimitArgCount,
    #[error("Invalid client class specified in buffer limit configuration.")]
    BufferLimitClass,
    #[error("Error in hard, soft or soft_seconds setting in buffer limit configuration.")]
    BufferLimitValue,
    #[error("Invalid oom-score-adj-values, elements must be between -2000 and 2000.")]
    OomScoreAdj,
    #[error("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]")]
    PercentileRange,
    #[error("Invalid latency-tracking-info-percentiles parameters")]
    Percentile,
    #[error("argument(s) must be one of the following: default, save, nosave, now, force")]
    ShutdownFlags,
    #[error("shutdown options SAVE and NOSAVE can't be used simultaneously")]
    SaveAndNosave,
    #[error("percentage argument must be less or equal to 100")]
    Percentage,
    #[error("argument must be a memory or percent value")]
    MemoryOrPercent,
    #[error("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")]
    EventClass,
    #[error("argument couldn't be parsed as an octal number")]
    Octal,
    #[error("Not a directory")]
    NotADirectory,
    #[error("Bad directive or wrong number of arguments")]
    BadDirective,
    /// The C library's text of an I/O error (`dir`).
    #[error("{0}")]
    Io(String),
}

/// A canonical value, or why it was refused.
pub type Checked = Result<String, Invalid>;

/// `save <seconds> <changes> [...]`; `save ""` (or no argument) = no save points.
pub fn save_points(args: &[String]) -> Checked {
    if args.len() == 1 && args[0].is_empty() || args.is_empty() {
        return Ok(String::new());
    }
    if args.len() % 2 == 1 {
        return Err(Invalid::SaveParams);
    }
    if args
        .iter()
        .any(|a| !matches!(parse_int(a), Some(v) if v >= 0))
    {
        return Err(Invalid::SaveParams);
    }
    Ok(args.join(" "))
}

/// `bind` (and Tandem's `tandem-admin-bind`): up to 16 addresses.
pub fn addresses(args: &[String]) -> Checked {
    if args.len() > 16 {
        return Err(Invalid::TooManyBinds);
    }
    Ok(args.join(" "))
}

/// `replicaof <host> <port>` or `replicaof no one` (canonically empty).
pub fn replicaof(args: &[String]) -> Checked {
    let [host, port] = args else {
        return Err(Invalid::WrongArgCount);
    };
    if host.eq_ignore_ascii_case("no") && port.eq_ignore_ascii_case("one") {
        return Ok(String::new());
    }
    match parse_int(port) {
        Some(p) if (0..=65535).contains(&p) => Ok(format!("{host} {p}")),
        _ => Err(Invalid::MasterPort),
    }
}

/// `client-output-buffer-limit <class> <hard> <soft> <seconds> [...]`: the named
/// classes change, the others keep their `current` limits.
pub fn output_buffer_limit(current: &str, args: &[String]) -> Checked {
    if args.is_empty() {
        return Ok(current.to_string());
    }
    if !args.len().is_multiple_of(4) {
        return Err(Invalid::BufferLimitArgCount);
    }
    let mut limits = crate::outbuf::parse(current);
    for chunk in args.chunks(4) {
        let [class, hard, soft, secs] = chunk else {
            continue;
        };
        let class = match class.to_ascii_lowercase().as_str() {
            "normal" => Class::Normal,
            "slave" | "replica" => Class::Replica,
            "pubsub" => Class::PubSub,
            _ => return Err(Invalid::BufferLimitClass),
        };
        let secs = parse_int(secs).filter(|v| *v >= 0);
        match (parse_memory(hard), parse_memory(soft), secs) {
            (Some(hard), Some(soft), Some(t)) => {
                limits[class as usize] = Limit {
                    hard,
                    soft,
                    soft_secs: t as u64,
                }
            }
            _ => return Err(Invalid::BufferLimitValue),
        }
    }
    let [n, r, p] = limits;
    Ok(format!(
        "normal {} {} {} slave {} {} {} pubsub {} {} {}",
        n.hard, n.soft, n.soft_secs, r.hard, r.soft, r.soft_secs, p.hard, p.soft, p.soft_secs
    ))
}

/// `oom-score-adj-values <replica> <bgchild> <...>`: three values in [-2000, 2000].
pub fn oom_score_adj(args: &[String]) -> Checked {
    if args.len() != 3 {
        return Err(Invalid::WrongArgCount);
    }
    if args
        .iter()
        .any(|a| !matches!(parse_int(a), Some(v) if (-2000..=2000).contains(&v)))
    {
        return Err(Invalid::OomScoreAdj);
    }
    Ok(args.join(" "))
}

/// `latency-tracking-info-percentiles <p> [...]`, each in [0, 100], kept as Redis
/// writes them back: six decimals with the trailing zeros (and a bare point)
/// dropped, so `50.0` reads back `50` and `99.90` reads back `99.9`.
pub fn percentiles(args: &[String]) -> Checked {
    let mut kept = Vec::with_capacity(args.len());
    for a in args {
        match a.parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => {
                let six = format!("{v:.6}");
                kept.push(six.trim_end_matches('0').trim_end_matches('.').to_string());
            }
            Ok(_) => return Err(Invalid::PercentileRange),
            Err(_) => return Err(Invalid::Percentile),
        }
    }
    Ok(kept.join(" "))
}

/// `shutdown-on-sigint` / `shutdown-on-sigterm`: a set of SHUTDOWN flags.
pub fn shutdown_on_signal(args: &[String]) -> Checked {
    const OK: &[&str] = &["default", "save", "nosave", "now", "force"];
    let words: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
    if words.is_empty() || words.iter().any(|w| !OK.contains(&w.as_str())) {
        return Err(Invalid::ShutdownFlags);
    }
    if words.iter().any(|w| w == "save") && words.iter().any(|w| w == "nosave") {
        return Err(Invalid::SaveAndNosave);
    }
    Ok(words.join(" "))
}

/// `maxmemory-clients`: a memory value or a percentage of maxmemory.
pub fn maxmemory_clients(a: &str) -> Checked {
    if let Some(p) = a.strip_suffix('%') {
        return match parse_int(p) {
            Some(v) if (0..=100).contains(&v) => Ok(a.to_string()),
            Some(v) if v > 100 => Err(Invalid::Percentage),
            _ => Err(Invalid::MemoryOrPercent),
        };
    }
    parse_memory(a)
        .map(|v| v.to_string())
        .ok_or(Invalid::MemoryOrPercent)
}

/// `notify-keyspace-events`: class letters, printed in Redis's canonical order
/// (the classes or `A`, then K, E, m, n).
pub fn keyspace_events(a: &str) -> Checked {
    if !a.chars().all(|c| "AgKE$lshzxetmdn".contains(c)) {
        return Err(Invalid::EventClass);
    }
    const ALL: &str = "g$lshzxetd";
    let has = |c: char| a.contains(c) || (a.contains('A') && ALL.contains(c));
    let mut out = String::new();
    if ALL.chars().all(has) {
        out.push('A');
    } else {
        out.extend(ALL.chars().filter(|c| has(*c)));
    }
    out.extend("KEmn".chars().filter(|c| a.contains(*c)));
    Ok(out)
}

/// `unixsocketperm`: an octal mode up to 0777.
pub fn octal_perm(a: &str) -> Checked {
    match u32::from_str_radix(a, 8) {
        Ok(v) if v <= 0o777 => Ok(a.to_string()),
        _ => Err(Invalid::Octal),
    }
}

/// `dir`: at startup the working directory changes at once (later directives are
/// relative to it); CONFIG SET only checks it here, the caller changes it on commit.
pub fn dir(a: &str, origin: Origin) -> Checked {
    match origin {
        Origin::Startup => {
            std::env::set_current_dir(a).map_err(|e| Invalid::Io(strerror(&e)))?;
            Ok(current_dir())
        }
        Origin::Runtime => {
            let meta = std::fs::metadata(a).map_err(|e| Invalid::Io(strerror(&e)))?;
            if !meta.is_dir() {
                return Err(Invalid::NotADirectory);
            }
            Ok(std::fs::canonicalize(a)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| a.to_string()))
        }
    }
}
