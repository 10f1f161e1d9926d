//! Command family: server (INFO, COMMAND, TIME, LASTSAVE, SHUTDOWN, MONITOR,
//! SLOWLOG, DEBUG). CONFIG, DBSIZE, SAVE/BGSAVE live with their own families.

use super::connection::{help_reply, unknown_subcommand};
use super::{arg_i64, err, flags::*, is_kw, Action, CmdError, CmdResult, Command, Ctx};
use crate::resp::Reply;
use crate::types::Value;
use bytes::Bytes;
use std::sync::atomic::Ordering;

pub const COMMANDS: &[Command] = &[
    Command::new("info", -1, LOADING | STALE, info),
    Command::new("command", -1, LOADING | STALE, command),
    Command::new("time", 1, LOADING | STALE | FAST, time),
    Command::new("lastsave", 1, LOADING | STALE | FAST, lastsave),
    Command::new(
        "shutdown",
        -1,
        NO_SCRIPT | ADMIN | LOADING | STALE,
        shutdown,
    ),
    Command::new("monitor", 1, NO_SCRIPT | ADMIN | LOADING | STALE, monitor),
    Command::new("slowlog", -2, ADMIN | LOADING | STALE, slowlog),
    Command::new("debug", -2, NO_SCRIPT | ADMIN | LOADING | STALE, debug),
];

fn info(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let names: Vec<&[u8]> = argv[1..].iter().map(|a| &a[..]).collect();
    let text = super::info::render(ctx.server, ctx.store, &names);
    out.verbatim(&text);
    Ok(())
}

fn time(_ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    out.array(2);
    out.bulk_int(now.as_secs() as i64);
    out.bulk_int(now.subsec_micros() as i64);
    Ok(())
}

fn lastsave(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    out.int(ctx.store.lastsave);
    Ok(())
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]. NOW and FORCE are accepted (there
/// is no replica wait or failing save to override yet); ABORT has nothing to abort.
fn shutdown(ctx: &mut Ctx, _out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let mut save = None;
    let mut abort = false;
    let mut other = false;
    for a in &argv[1..] {
        if is_kw(a, "nosave") {
            save = Some(false);
            other = true;
        } else if is_kw(a, "save") {
            save = Some(true);
            other = true;
        } else if is_kw(a, "now") || is_kw(a, "force") {
            other = true;
        } else if is_kw(a, "abort") {
            abort = true;
        } else {
            return Err(err::SYNTAX);
        }
    }
    if abort {
        if other {
            return Err(err::SYNTAX);
        }
        return Err(CmdError::msg("ERR No shutdown in progress."));
    }
    // No reply: like Redis, the connection is closed when the server exits.
    ctx.action = Some(Action::Shutdown { save });
    Ok(())
}

fn monitor(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::msg(
            "ERR Command not allowed inside a transaction",
        ));
    }
    ctx.action = Some(Action::Monitor);
    out.ok();
    Ok(())
}

const SLOWLOG_HELP: &[&str] = &[
    "GET [<count>]",
    "    Return up to <count> of the newest entries (default 10, -1 for all). Each",
    "    entry is: id, unix time, duration in microseconds, arguments, client",
    "    address, client name.",
    "LEN",
    "    Return the number of entries.",
    "RESET",
    "    Delete every entry.",
    "HELP",
    "    Print this help.",
];

fn slowlog(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = argv[1].to_ascii_lowercase();
    let argc = argv.len();
    match &sub[..] {
        b"get" if argc <= 3 => {
            let count = match argv.get(2) {
                None => 10,
                Some(a) => {
                    let n = arg_i64(a)?;
                    if n < -1 {
                        return Err(CmdError::msg(
                            "ERR count should be greater than or equal to -1",
                        ));
                    }
                    if n == -1 {
                        i64::MAX
                    } else {
                        n
                    }
                }
            };
            let log = ctx.slowlog();
            let n = log.entries.len().min(count as usize);
            out.array(n);
            for e in log.entries.iter().take(n) {
                out.array(6);
                out.int(e.id as i64);
                out.int(e.time);
                out.int(e.micros as i64);
                out.array(e.argv.len());
                for a in &e.argv {
                    out.bulk(a);
                }
                out.bulk(e.addr.as_bytes());
                out.bulk(e.name.as_bytes());
            }
        }
        b"len" if argc == 2 => out.int(ctx.slowlog().entries.len() as i64),
        b"reset" if argc == 2 => {
            ctx.slowlog().entries.clear();
            out.ok();
        }
        b"help" if argc == 2 => help_reply(out, "SLOWLOG", SLOWLOG_HELP),
        b"get" | b"len" | b"reset" | b"help" => {
            let s = String::from_utf8_lossy(&sub).into_owned();
            return Err(CmdError(
                format!("ERR wrong number of arguments for 'slowlog|{s}' command").into(),
            ));
        }
        _ => return Err(unknown_subcommand(&argv[1], "SLOWLOG")),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// COMMAND: metadata derived from the command table.

/// The command families with the group name COMMAND DOCS reports and the ACL
/// category COMMAND INFO lists for them.
/// The commands of the table, sorted by name, with their family.
fn all_commands() -> Vec<(&'static Command, &'static str, &'static str)> {
    let mut v: Vec<_> = Vec::new();
    for (group, cat, cmds) in super::FAMILIES {
        for c in cmds.iter() {
            if let Some(t) = super::table().get(c.name) {
                v.push((t, *group, *cat));
            }
        }
    }
    v.sort_by_key(|(c, _, _)| c.name);
    v.dedup_by_key(|(c, _, _)| c.name);
    v
}

fn family_of(name: &str) -> (&'static str, &'static str) {
    all_commands()
        .into_iter()
        .find(|(c, _, _)| c.name == name)
        .map_or(("generic", ""), |(_, g, a)| (g, a))
}

fn flag_names(c: &Command) -> Vec<&'static str> {
    let mut v = Vec::new();
    for (f, n) in [
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NO_SCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (NO_MONITOR, "skip_monitor"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
    ] {
        if c.is(f) {
            v.push(n);
        }
    }
    if c.keys_fn.is_some() {
        v.push("movablekeys");
    }
    v
}

fn acl_categories(c: &Command, family_cat: &'static str) -> Vec<&'static str> {
    let mut v = Vec::new();
    if !family_cat.is_empty() {
        v.push(family_cat);
    }
    if c.is(WRITE) {
        v.push("@write");
    }
    if c.is(READONLY) {
        v.push("@read");
    }
    if c.is(ADMIN) {
        v.push("@admin");
        v.push("@dangerous");
    }
    if c.is(BLOCKING) {
        v.push("@blocking");
    }
    if c.is(PUBSUB) && family_cat != "@pubsub" {
        v.push("@pubsub");
    }
    v.push(if c.is(FAST) { "@fast" } else { "@slow" });
    v
}

/// One COMMAND INFO entry: name, arity, flags, first key, last key, step,
/// ACL categories, tips, key specs, subcommands.
fn command_entry(out: &mut Reply, c: &Command, family_cat: &'static str) {
    out.array(10);
    out.bulk(c.name.as_bytes());
    out.int(c.arity as i64);
    let flags = flag_names(c);
    out.set(flags.len());
    for f in flags {
        out.simple(f);
    }
    if c.keys_fn.is_some() && c.first_key == 0 {
        // Keys found by a function (numkeys style): Redis reports 0 0 0 with a
        // "movablekeys" flag for those; the key specs are left out here.
        out.int(0);
        out.int(0);
        out.int(0);
    } else {
        out.int(c.first_key as i64);
        out.int(c.last_key as i64);
        out.int(c.step as i64);
    }
    let cats = acl_categories(c, family_cat);
    out.set(cats.len());
    for a in cats {
        out.simple(a);
    }
    out.set(0);
    out.array(0);
    out.array(0);
}

const COMMAND_HELP: &[&str] = &[
    "(no subcommand)",
    "    Return details about every command.",
    "COUNT",
    "    Return the number of commands.",
    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
    "    Return the command names, optionally filtered.",
    "INFO [<command-name> ...]",
    "    Return details about the given commands (all when none is given).",
    "DOCS [<command-name> ...]",
    "    Return documentation about the given commands (all when none is given).",
    "GETKEYS <full-command>",
    "    Return the key arguments of a full command.",
    "HELP",
    "    Print this help.",
];

fn command(_ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let cmds = all_commands();
    if argv.len() == 1 {
        out.array(cmds.len());
        for (c, _, cat) in &cmds {
            command_entry(out, c, cat);
        }
        return Ok(());
    }
    let sub = argv[1].to_ascii_lowercase();
    let argc = argv.len();
    let sub_arity = |n: usize, exact: bool, name: &str| -> CmdResult {
        if (exact && argc != n) || (!exact && argc < n) {
            return Err(CmdError(
                format!("ERR wrong number of arguments for 'command|{name}' command").into(),
            ));
        }
        Ok(())
    };
    match &sub[..] {
        b"count" => {
            sub_arity(2, true, "count")?;
            out.int(super::table().len() as i64);
        }
        b"info" => {
            if argc == 2 {
                out.array(cmds.len());
                for (c, _, cat) in &cmds {
                    command_entry(out, c, cat);
                }
            } else {
                out.array(argc - 2);
                for name in &argv[2..] {
                    match super::lookup(name) {
                        Some(c) => command_entry(out, c, family_of(c.name).1),
                        None => out.null_array(),
                    }
                }
            }
        }
        b"docs" => {
            let wanted: Vec<(&Command, &str)> = if argc == 2 {
                cmds.iter().map(|(c, g, _)| (*c, *g)).collect()
            } else {
                argv[2..]
                    .iter()
                    .filter_map(|n| super::lookup(n))
                    .map(|c| (c, family_of(c.name).0))
                    .collect()
            };
            out.map(wanted.len());
            for (c, group) in wanted {
                out.bulk(c.name.as_bytes());
                out.map(3);
                out.bulk(b"summary");
                out.bulk(format!("The {} command.", c.name.to_ascii_uppercase()).as_bytes());
                out.bulk(b"since");
                out.bulk(b"1.0.0");
                out.bulk(b"group");
                out.bulk(group.as_bytes());
            }
        }
        b"list" => {
            let names: Vec<&str> = match argc {
                2 => cmds.iter().map(|(c, _, _)| c.name).collect(),
                5 if is_kw(&argv[2], "filterby") => {
                    let val = &argv[4];
                    if is_kw(&argv[3], "pattern") {
                        cmds.iter()
                            .map(|(c, _, _)| c.name)
                            .filter(|n| crate::util::glob_match(val, n.as_bytes(), true))
                            .collect()
                    } else if is_kw(&argv[3], "aclcat") {
                        let cat = format!("@{}", String::from_utf8_lossy(val).to_lowercase());
                        cmds.iter()
                            .filter(|(c, _, fc)| acl_categories(c, fc).contains(&cat.as_str()))
                            .map(|(c, _, _)| c.name)
                            .collect()
                    } else if is_kw(&argv[3], "module") {
                        Vec::new()
                    } else {
                        return Err(err::SYNTAX);
                    }
                }
                _ => return Err(err::SYNTAX),
            };
            out.array(names.len());
            for n in names {
                out.bulk(n.as_bytes());
            }
        }
        b"getkeys" => {
            sub_arity(4, false, "getkeys")?;
            let args = &argv[2..];
            let Some(c) = super::lookup(&args[0]) else {
                return Err(CmdError::msg("ERR Invalid command specified"));
            };
            if !c.arity_ok(args.len()) {
                return Err(CmdError::msg(
                    "ERR Invalid number of arguments specified for command",
                ));
            }
            let pos = c.key_positions(args);
            if pos.is_empty() {
                return Err(CmdError::msg("ERR The command has no key arguments"));
            }
            out.array(pos.len());
            for p in pos {
                out.bulk(&args[p]);
            }
        }
        b"help" => {
            sub_arity(2, true, "help")?;
            help_reply(out, "COMMAND", COMMAND_HELP);
        }
        _ => return Err(unknown_subcommand(&argv[1], "COMMAND")),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// DEBUG

pub const DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// `enable-debug-command`: "yes", "no", or "local" (loopback connections only).
fn debug_allowed(ctx: &Ctx) -> bool {
    let mode = ctx
        .server
        .config
        .read()
        .enable_debug_command
        .to_ascii_lowercase();
    match mode.as_str() {
        "yes" => true,
        "local" => {
            let addr = ctx
                .server
                .clients
                .lock()
                .get(&ctx.client.id)
                .map(|h| h.addr.clone())
                .unwrap_or_default();
            is_loopback(&addr)
        }
        _ => false,
    }
}

fn is_loopback(addr: &str) -> bool {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(sa) => match sa.ip() {
            std::net::IpAddr::V4(ip) => ip.is_loopback(),
            std::net::IpAddr::V6(ip) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        },
        // Not an IP address: a Unix socket, which is local.
        Err(_) => !addr.is_empty(),
    }
}

const DEBUG_HELP: &[&str] = &[
    "DIGEST",
    "    Return a 40 hex digit fingerprint of the whole dataset (same as Redis 7.0's).",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Return the fingerprint of each given key's value.",
    "ERROR <string>",
    "    Reply with <string> as an error.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "OBJECT <key>",
    "    Show internal facts about the value at <key>.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys <prefix>:<n> (prefix defaults to 'key') holding",
    "    'value:<n>', cut or zero-padded to <size> bytes when given. Existing keys are",
    "    left alone; the keys are not propagated to replicas.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    0 stops expiring keys in the background, 1 resumes it.",
    "SLEEP <seconds>",
    "    Stop the whole server for <seconds> (decimals allowed).",
    "HELP",
    "    Print this help.",
];

/// C's `strtod` prefix parse as Redis's DEBUG SLEEP uses it: garbage reads as 0.
fn strtod_prefix(a: &[u8]) -> f64 {
    let start = a
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(a.len());
    let a = &a[start..];
    let len = a
        .iter()
        .position(|c| !(c.is_ascii_digit() || b"+-.eE".contains(c)))
        .unwrap_or(a.len());
    // The longest prefix that parses (e.g. "1.5e" reads as 1.5).
    (1..=len)
        .rev()
        .find_map(|n| std::str::from_utf8(&a[..n]).ok()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

fn positive(a: &[u8]) -> Result<u64, CmdError> {
    match crate::resp::parse_i64(a) {
        Some(n) if n >= 0 => Ok(n as u64),
        _ => Err(CmdError::msg("ERR value is out of range, must be positive")),
    }
}

fn debug(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if !debug_allowed(ctx) {
        return Err(CmdError::msg(DEBUG_NOT_ALLOWED));
    }
    let sub = argv[1].to_ascii_lowercase();
    let argc = argv.len();
    match &sub[..] {
        b"help" => help_reply(out, "DEBUG", DEBUG_HELP),
        b"digest" if argc == 2 => {
            let d = crate::digest::dataset_digest(&ctx.store.dbs);
            out.simple(&crate::digest::hex(&d));
        }
        b"digest-value" => {
            out.array(argc - 2);
            let db = &ctx.store.dbs[ctx.client.db];
            for k in &argv[2..] {
                out.simple(&crate::digest::hex(&crate::digest::key_digest(db, k)));
            }
        }
        b"sleep" if argc == 3 => {
            // Like Redis, this stops the whole server: the handler runs with the store
            // lock held, so every other connection waits until the sleep is over.
            let secs = strtod_prefix(&argv[2]);
            if secs > 0.0 && secs.is_finite() {
                std::thread::sleep(std::time::Duration::from_secs_f64(secs.min(86400.0)));
            }
            out.ok();
        }
        b"reload" if argc == 2 => {
            // SAVE, empty the dataset and load the file again (as Redis's DEBUG RELOAD).
            crate::persist::debug_reload(ctx.server, ctx.store).map_err(CmdError::msg)?;
            out.ok();
        }
        b"set-active-expire" if argc == 3 => {
            let on = strtod_prefix(&argv[2]) as i64 != 0;
            ctx.server.active_expire_enabled.store(on, Ordering::SeqCst);
            out.ok();
        }
        b"populate" if (3..=5).contains(&argc) => {
            if ctx.store.repl.fenced {
                // The only DEBUG subcommand that writes keys (see `crate::replication::fence`).
                return Err(CmdError::msg(crate::replication::fence::FENCED_ERR));
            }
            let count = positive(&argv[2])?;
            let prefix: &[u8] = argv.get(3).map_or(&b"key"[..], |p| &p[..]);
            let size = match argv.get(4) {
                Some(s) => Some(positive(s)? as usize),
                None => None,
            };
            if size.is_some_and(|s| s > 512 * 1024 * 1024) {
                return Err(CmdError::msg("ERR value is out of range, must be positive"));
            }
            let lru = ctx.lru;
            let db = ctx.client.db;
            for i in 0..count {
                let mut key = prefix.to_vec();
                key.extend_from_slice(format!(":{i}").as_bytes());
                if ctx.store.dbs[db].contains(&key) {
                    continue;
                }
                let mut val = format!("value:{i}").into_bytes();
                if let Some(s) = size {
                    val.resize(s, 0);
                }
                ctx.store.dbs[db].set(Bytes::from(key), Value::Str(Bytes::from(val)), lru);
            }
            out.ok();
        }
        b"object" if argc == 3 => {
            let db = &ctx.store.dbs[ctx.client.db];
            let Some(e) = db.entry(&argv[2]) else {
                return Err(err::NO_SUCH_KEY);
            };
            let idle = ctx.lru.saturating_sub(e.lru);
            let (enc, len) = encoding_and_len(&e.value);
            out.simple(&format!(
                "Value at:0x0 refcount:1 encoding:{enc} serializedlength:{len} lru:{} lru_seconds_idle:{idle}",
                e.lru & ((1 << 24) - 1)
            ));
        }
        b"log" if argc == 3 => {
            crate::warning!("DEBUG LOG: {}", String::from_utf8_lossy(&argv[2]));
            out.ok();
        }
        b"error" if argc == 3 => {
            return Err(CmdError(
                String::from_utf8_lossy(&argv[2]).into_owned().into(),
            ));
        }
        _ => {
            let s: String = String::from_utf8_lossy(&argv[1])
                .chars()
                .take(128)
                .collect();
            return Err(CmdError(
                format!(
                    "ERR unknown subcommand or wrong number of arguments for '{s}'. Try DEBUG HELP."
                )
                .into(),
            ));
        }
    }
    Ok(())
}

/// A rough OBJECT ENCODING (Redis 7.0 thresholds with default config) and a
/// size estimate for DEBUG OBJECT.
fn encoding_and_len(v: &Value) -> (&'static str, usize) {
    match v {
        Value::Str(s) => {
            let enc = if crate::types::is_canonical_int(s) {
                "int"
            } else if s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            };
            (enc, s.len() + 1)
        }
        Value::List(l) => ("quicklist", l.iter().map(|e| e.len() + 1).sum()),
        Value::Set(s) => {
            let ints = s.len() <= 512 && s.iter().all(|m| crate::types::is_canonical_int(m));
            (
                if ints { "intset" } else { "hashtable" },
                s.iter().map(|m| m.len() + 1).sum(),
            )
        }
        Value::Hash(h) => {
            let small = h.len() <= 128 && h.iter().all(|(k, v)| k.len() <= 64 && v.len() <= 64);
            (
                if small { "listpack" } else { "hashtable" },
                h.iter().map(|(k, v)| k.len() + v.len() + 2).sum(),
            )
        }
        Value::ZSet(z) => {
            let small = z.len() <= 128 && z.iter().all(|(m, _)| m.len() <= 64);
            (
                if small { "listpack" } else { "skiplist" },
                z.iter().map(|(m, _)| m.len() + 9).sum(),
            )
        }
        Value::Stream(st) => ("stream", st.approx_size()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtod_reads_a_numeric_prefix_like_c() {
        assert_eq!(strtod_prefix(b"0.5"), 0.5);
        assert_eq!(strtod_prefix(b"2"), 2.0);
        assert_eq!(strtod_prefix(b"x"), 0.0);
        assert_eq!(strtod_prefix(b"1.5abc"), 1.5);
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback(""));
    }

    #[test]
    fn every_table_command_has_a_command_entry() {
        assert_eq!(all_commands().len(), crate::commands::table().len());
    }
}
