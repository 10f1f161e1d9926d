//! Directives with a syntax of their own (table kind `Special`): each function checks
//! the arguments as Redis 7.0 does and returns the canonical value CONFIG GET shows,
//! or Redis's error text.

use super::{current_dir, parse_int, parse_memory, strerror, Origin};
use crate::outbuf::{Class, Limit};

/// `save <seconds> <changes> [...]`; `save ""` (or no argument) = no save points.
pub fn save_points(args: &[String]) -> Result<String, String> {
    if args.len() == 1 && args[0].is_empty() || args.is_empty() {
        return Ok(String::new());
    }
    if args.len() % 2 == 1 {
        return Err("Invalid save parameters".into());
    }
    if args
        .iter()
        .any(|a| !matches!(parse_int(a), Some(v) if v >= 0))
    {
        return Err("Invalid save parameters".into());
    }
    Ok(args.join(" "))
}

/// `bind` (and Tandem's `tandem-admin-bind`): up to 16 addresses.
pub fn addresses(args: &[String]) -> Result<String, String> {
    if args.len() > 16 {
        return Err("Too many bind addresses specified.".into());
    }
    Ok(args.join(" "))
}

/// `replicaof <host> <port>` or `replicaof no one` (canonically empty).
pub fn replicaof(args: &[String]) -> Result<String, String> {
    let [host, port] = args else {
        return Err("wrong number of arguments".into());
    };
    if host.eq_ignore_ascii_case("no") && port.eq_ignore_ascii_case("one") {
        return Ok(String::new());
    }
    match parse_int(port) {
        Some(p) if (0..=65535).contains(&p) => Ok(format!("{host} {p}")),
        _ => Err("Invalid master port".into()),
    }
}

/// `client-output-buffer-limit <class> <hard> <soft> <seconds> [...]`: the named
/// classes change, the others keep their `current` limits.
pub fn output_buffer_limit(current: &str, args: &[String]) -> Result<String, String> {
    if args.is_empty() {
        return Ok(current.to_string());
    }
    if !args.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
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
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into())
            }
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
            _ => {
                return Err(
                    "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                        .into(),
                )
            }
        }
    }
    let [n, r, p] = limits;
    Ok(format!(
        "normal {} {} {} slave {} {} {} pubsub {} {} {}",
        n.hard, n.soft, n.soft_secs, r.hard, r.soft, r.soft_secs, p.hard, p.soft, p.soft_secs
    ))
}

/// `oom-score-adj-values <replica> <bgchild> <...>`: three values in [-2000, 2000].
pub fn oom_score_adj(args: &[String]) -> Result<String, String> {
    if args.len() != 3 {
        return Err("wrong number of arguments".into());
    }
    if args
        .iter()
        .any(|a| !matches!(parse_int(a), Some(v) if (-2000..=2000).contains(&v)))
    {
        return Err(
            "Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into(),
        );
    }
    Ok(args.join(" "))
}

/// `latency-tracking-info-percentiles <p> [...]`, each in [0, 100].
pub fn percentiles(args: &[String]) -> Result<String, String> {
    for a in args {
        match a.parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => {}
            Ok(_) => {
                return Err(
                    "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
                        .into(),
                )
            }
            Err(_) => return Err("Invalid latency-tracking-info-percentiles parameters".into()),
        }
    }
    Ok(args.join(" "))
}

/// `shutdown-on-sigint` / `shutdown-on-sigterm`: a set of SHUTDOWN flags.
pub fn shutdown_on_signal(args: &[String]) -> Result<String, String> {
    const OK: &[&str] = &["default", "save", "nosave", "now", "force"];
    let words: Vec<String> = args.iter().map(|a| a.to_ascii_lowercase()).collect();
    if words.is_empty() || words.iter().any(|w| !OK.contains(&w.as_str())) {
        return Err(format!(
            "argument(s) must be one of the following: {}",
            OK.join(", ")
        ));
    }
    if words.iter().any(|w| w == "save") && words.iter().any(|w| w == "nosave") {
        return Err("shutdown options SAVE and NOSAVE can't be used simultaneously".into());
    }
    Ok(words.join(" "))
}

/// `maxmemory-clients`: a memory value or a percentage of maxmemory.
pub fn maxmemory_clients(a: &str) -> Result<String, String> {
    if let Some(p) = a.strip_suffix('%') {
        return match parse_int(p) {
            Some(v) if (0..=100).contains(&v) => Ok(a.to_string()),
            Some(v) if v > 100 => Err("percentage argument must be less or equal to 100".into()),
            _ => Err("argument must be a memory or percent value".into()),
        };
    }
    parse_memory(a)
        .map(|v| v.to_string())
        .ok_or_else(|| "argument must be a memory or percent value".into())
}

/// `notify-keyspace-events`: class letters, printed in Redis's canonical order
/// (the classes or `A`, then K, E, m, n).
pub fn keyspace_events(a: &str) -> Result<String, String> {
    if !a.chars().all(|c| "AgKE$lshzxetmdn".contains(c)) {
        return Err("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into());
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
pub fn octal_perm(a: &str) -> Result<String, String> {
    match u32::from_str_radix(a, 8) {
        Ok(v) if v <= 0o777 => Ok(a.to_string()),
        _ => Err("argument couldn't be parsed as an octal number".into()),
    }
}

/// `dir`: at startup the working directory changes at once (later directives are
/// relative to it); CONFIG SET only checks it here, the caller changes it on commit.
pub fn dir(a: &str, origin: Origin) -> Result<String, String> {
    match origin {
        Origin::Startup => {
            std::env::set_current_dir(a).map_err(|e| strerror(&e))?;
            Ok(current_dir())
        }
        Origin::Runtime => {
            let meta = std::fs::metadata(a).map_err(|e| strerror(&e))?;
            if !meta.is_dir() {
                return Err("Not a directory".into());
            }
            Ok(std::fs::canonicalize(a)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| a.to_string()))
        }
    }
}
