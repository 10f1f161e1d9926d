//! Command family: server (INFO, COMMAND, TIME, LASTSAVE, SHUTDOWN, MONITOR,
//! SLOWLOG, DEBUG). CONFIG, DBSIZE, SAVE/BGSAVE live with their own families.

use super::connection::{help_reply, unknown_subcommand};
use super::{arg_i64, err, flags::*, is_kw, Action, CmdError, CmdResult, Command, Ctx};
use crate::resp::Reply;
use crate::types::{Str, Value};
use bytes::Bytes;
use std::sync::atomic::Ordering;

pub const COMMANDS: &[Command] = &[
    Command::new("info", -1, LOADING | STALE, info),
    Command::new("command", -1, LOADING | STALE, super::command_cmd::command),
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

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]. The shutdown itself (the wait
/// for lagging replicas, the final save) runs in `crate::shutdown`; the client
/// waits for it.
fn shutdown(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let Some(flags) = shutdown_args(argv)? else {
        if !ctx.server.shutdown_req.abort() {
            return Err(CmdError::msg("ERR No shutdown in progress."));
        }
        out.ok();
        return Ok(());
    };
    // No reply: the connection closes when the server exits.
    ctx.action = Some(Action::Shutdown(flags));
    Ok(())
}

/// SHUTDOWN's arguments: the flags, or None for ABORT.
pub(crate) fn shutdown_args(
    argv: &[Bytes],
) -> Result<Option<crate::server::ShutdownFlags>, CmdError> {
    let mut flags = crate::server::ShutdownFlags::default();
    let (mut abort, mut any, mut save, mut nosave) = (false, false, false, false);
    for a in &argv[1..] {
        if is_kw(a, "nosave") {
            nosave = true;
        } else if is_kw(a, "save") {
            save = true;
        } else if is_kw(a, "now") {
            flags.now = true;
        } else if is_kw(a, "force") {
            flags.force = true;
        } else if is_kw(a, "abort") {
            abort = true;
            continue;
        } else {
            return Err(err::SYNTAX);
        }
        any = true;
    }
    if (abort && any) || (save && nosave) {
        return Err(err::SYNTAX);
    }
    if abort {
        return Ok(None);
    }
    flags.save = if save {
        Some(true)
    } else if nosave {
        Some(false)
    } else {
        None
    };
    Ok(Some(flags))
}

fn monitor(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::msg(
            "ERR Command not allowed inside a transaction",
        ));
    }
    // Inside EXEC (the only non-blocking context MONITOR can run in).
    if !ctx.may_block {
        return Err(CmdError::msg(
            "ERR MONITOR isn't allowed for DENY BLOCKING client",
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
// DEBUG

pub const DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";

/// `enable-debug-command`: "yes", "no", or "local" (loopback connections only).
fn debug_allowed(ctx: &Ctx) -> bool {
    let mode = ctx.server.config.read().enable_debug_command.clone();
    allowed_by(ctx, &mode)
}

/// An `enable-*-command` setting: `yes`, `local` (loopback clients only) or `no`.
pub(super) fn allowed_by(ctx: &Ctx, mode: &str) -> bool {
    match mode.to_ascii_lowercase().as_str() {
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
    "PANIC",
    "    Abort the server (SIGABRT), after the crash report.",
    "SEGFAULT",
    "    Crash the server with SIGSEGV, after the crash report.",
    "LOADAOF",
    "    Flush the AOF buffers on disk and reload the AOF in memory.",
    "POPULATE <count> [<prefix>] [<size>]",
    "    Create <count> string keys <prefix>:<n> (prefix defaults to 'key') holding",
    "    'value:<n>', cut or zero-padded to <size> bytes when given. Existing keys are",
    "    left alone; the keys are not propagated to replicas.",
    "PAUSE-CRON <0|1>",
    "    1 stops the periodic tasks (active expiry, the tracking table limit, save",
    "    points, AOF and replication housekeeping), 0 resumes them.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "REPLICATE <command> [<arg> ...]",
    "    Send <command> to the replicas as part of the replication stream, without",
    "    running it here or writing it to the AOF.",
    "RELOAD [option ...]",
    "    Save the RDB on disk, empty the dataset and load the file back. Options:",
    "    * MERGE: keys and libraries of the file replace live ones of the same name.",
    "    * NOFLUSH: keep the live dataset; without MERGE, a key or library of the",
    "      file that is already live makes the reload fail.",
    "    * NOSAVE: load the file on disk as it is.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    0 stops expiring keys in the background, 1 resumes it.",
    "SET-DISABLE-DENY-SCRIPTS <0|1>",
    "    1 lets scripts call commands flagged noscript (except those that run a",
    "    script or replace scripts or functions), 0 refuses them again.",
    "SLEEP <seconds>",
    "    Stop the whole server for <seconds> (decimals allowed).",
    "HELP",
    "    Print this help.",
];

/// DEBUG RELOAD's options, any number in any order (checked before anything is done).
fn reload_options(args: &[Bytes]) -> Result<crate::persist::ReloadOptions, CmdError> {
    let mut opts = crate::persist::ReloadOptions::default();
    for a in args {
        match &a.to_ascii_lowercase()[..] {
            b"merge" => opts.merge = true,
            b"noflush" => opts.flush = false,
            b"nosave" => opts.save = false,
            _ => {
                return Err(CmdError::msg(
                    "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
                ))
            }
        }
    }
    Ok(opts)
}

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

/// DEBUG POPULATE <count> [<prefix>] [<size>].
fn debug_populate(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
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
    // Sized once up front, as Redis's DEBUG POPULATE expands its dict.
    ctx.store.dbs[db].try_reserve(usize::try_from(count).unwrap_or(usize::MAX));
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
        ctx.store.dbs[db].set(&key, Value::Str(Str::from(val)), lru);
    }
    out.ok();
    Ok(())
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
        b"reload" => {
            let opts = reload_options(&argv[2..])?;
            crate::persist::debug_reload(ctx.server, ctx.store, opts).map_err(CmdError::msg)?;
            out.ok();
        }
        b"set-active-expire" if argc == 3 => {
            let on = strtod_prefix(&argv[2]) as i64 != 0;
            ctx.server.active_expire_enabled.store(on, Ordering::SeqCst);
            out.ok();
        }
        b"pause-cron" if argc == 3 => {
            let on = strtod_prefix(&argv[2]) as i64 != 0;
            ctx.server.cron_paused.store(on, Ordering::SeqCst);
            out.ok();
        }
        b"set-disable-deny-scripts" if argc == 3 => {
            let on = strtod_prefix(&argv[2]) as i64 != 0;
            ctx.server.script_deny_lifted.store(on, Ordering::Relaxed);
            out.ok();
        }
        b"populate" if (3..=5).contains(&argc) => debug_populate(ctx, out, argv)?,
        b"object" if argc == 3 => {
            let db = &ctx.store.dbs[ctx.client.db];
            let Some(e) = db.entry(&argv[2]) else {
                return Err(err::NO_SUCH_KEY);
            };
            let idle = ctx.lru.saturating_sub(e.meta.lru());
            let (enc, len) = encoding_and_len(e.value);
            out.simple(&format!(
                "Value at:0x0 refcount:1 encoding:{enc} serializedlength:{len} lru:{} lru_seconds_idle:{idle}",
                e.meta.lru() & ((1 << 24) - 1)
            ));
        }
        b"replicate" if argc >= 3 => {
            // The arguments go to the replicas as a command of the stream (not to
            // the AOF, and not run here), in the stream's current database.
            if ctx.store.repl.should_generate() {
                let mut buf = Vec::new();
                crate::propagate::encode_command(&argv[2..], &mut buf);
                ctx.store.repl.append_stream(Bytes::from(buf));
            }
            out.ok();
        }
        b"segfault" if argc == 2 => {
            // The crash report's test, as Redis's: the process dies of SIGSEGV.
            crate::warning!("DEBUG SEGFAULT called: crashing the server on purpose");
            // SAFETY: `raise` sends the signal to this thread; it takes no pointers.
            #[allow(unsafe_code)]
            unsafe {
                libc::raise(libc::SIGSEGV);
            }
            out.ok();
        }
        b"panic" if argc == 2 => {
            crate::warning!("Guru Meditation: DEBUG PANIC called");
            std::process::abort();
        }
        b"log" if argc == 3 => {
            crate::warning!("DEBUG LOG: {}", String::from_utf8_lossy(&argv[2]));
            out.ok();
        }
        b"protocol" if argc == 3 => debug_protocol(out, &argv[2])?,
        b"aof-flush-sleep" if argc == 3 => {
            // Redis reads the number as atoi does: a bad or negative one is 0.
            let us = std::str::from_utf8(&argv[2])
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or(0);
            crate::aof::set_flush_sleep(ctx.server, us.clamp(0, 60_000_000) as u64);
            out.ok();
        }
        b"loadaof" if argc == 2 => {
            crate::aof::debug_loadaof(ctx.server, ctx.store).map_err(CmdError::msg)?;
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

/// DEBUG PROTOCOL <type>: one sample reply of each RESP3 type, as Redis 7.0 sends it
/// (RESP2 clients get the RESP2 downgrade; a push has none and is refused).
fn debug_protocol(out: &mut Reply, kind: &[u8]) -> CmdResult {
    const ATTRIB_TEXT: &str = "Some real reply following the attribute";
    let r3 = out.resp3;
    match &kind.to_ascii_lowercase()[..] {
        b"string" => out.bulk(b"Hello World"),
        b"integer" => out.int(12345),
        b"double" if r3 => out.raw(b",3.141\r\n"),
        b"double" => out.bulk(b"3.141"),
        b"bignum" if r3 => out.raw(b"(1234567999999999999999999999999999999\r\n"),
        b"bignum" => out.bulk(b"1234567999999999999999999999999999999"),
        b"null" => out.null(),
        b"array" | b"set" => {
            if kind.eq_ignore_ascii_case(b"set") {
                out.set(3);
            } else {
                out.array(3);
            }
            for i in 0..3 {
                out.int(i);
            }
        }
        b"map" => {
            out.map(3);
            for i in 0..3 {
                out.int(i);
                out.boolean(i == 1);
            }
        }
        b"attrib" => {
            if r3 {
                out.raw(b"|1\r\n");
                out.bulk(b"key-popularity");
                out.array(2);
                out.bulk(b"key:123");
                out.int(90);
            }
            out.bulk_str(ATTRIB_TEXT);
        }
        b"push" => {
            if !r3 {
                return Err(CmdError::msg("ERR RESP2 is not supported by this command"));
            }
            out.push(2);
            out.bulk(b"server-cpu-usage");
            out.int(42);
            out.bulk(b"Some real reply following the push reply");
        }
        b"verbatim" => out.verbatim("This is a verbatim\nstring"),
        b"true" => out.boolean(true),
        b"false" => out.boolean(false),
        _ => {
            return Err(CmdError::msg(
                "ERR Wrong protocol type name. Please use one of the following: \
                 string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
            ))
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
        Value::Set(s) => (s.encoding(), s.iter().map(|m| m.len() + 1).sum()),
        Value::Hash(h) => (
            h.encoding(),
            h.iter().map(|(k, v)| k.len() + v.len() + 2).sum(),
        ),
        Value::ZSet(z) => (z.encoding(), z.iter().map(|(m, _)| m.len() + 9).sum()),
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
}
