//! Command family: Functions (FUNCTION, FCALL, FCALL_RO). The registry and the Lua
//! side live in `super::function_lib`; these handlers parse arguments, shape
//! replies as Redis 7.0 does, and propagate the registry changes.
//!
//! FUNCTION DUMP payload (Redis 7.0's, byte for byte):
//!
//! ```text
//! ( [0xF5 = RDB_OPCODE_FUNCTION2][library code as an RDB string] )*
//! [RDB version: u16 little-endian, 10]
//! [CRC64 (Jones) of every byte before it: u64 little-endian]
//! ```

use super::connection::{help_reply, unknown_subcommand};
use super::function_lib::{self as functions, RestorePolicy};
use super::{flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::resp::Reply;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("function", -2, NO_SCRIPT, function),
    // MAY_REPLICATE as in Redis; the function's own flags decide (`super::call_flags`).
    Command::new(
        "fcall",
        -3,
        NO_SCRIPT | STALE | NO_MONITOR | MAY_REPLICATE,
        fcall,
    )
    .keys_with(fcall_keys),
    Command::new(
        "fcall_ro",
        -3,
        NO_SCRIPT | STALE | NO_MONITOR | READONLY,
        fcall_ro,
    )
    .keys_with(fcall_keys),
];

/// The key positions of `FCALL function numkeys key... arg...`.
fn fcall_keys(argv: &[Bytes]) -> Vec<usize> {
    let n = argv
        .get(2)
        .and_then(|a| crate::resp::parse_i64(a))
        .unwrap_or(0)
        .max(0) as usize;
    (3..3usize.saturating_add(n).min(argv.len())).collect()
}

fn fcall_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], ro: bool) -> CmdResult {
    crate::exec::feed_monitors_before_script(ctx.server, ctx.client, argv);
    // Redis looks the function up before it reads numkeys.
    if !functions::has_function(ctx.store, &argv[1]) {
        return Err(CmdError::msg(functions::NOT_FOUND));
    }
    let n = crate::resp::parse_i64(&argv[2])
        .ok_or_else(|| CmdError::msg("ERR Bad number of keys provided"))?;
    if n < 0 {
        return Err(CmdError::msg("ERR Number of keys can't be negative"));
    }
    let rest = &argv[3..];
    if n as u64 > rest.len() as u64 {
        return Err(CmdError::msg(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let (keys, args) = rest.split_at(n as usize);
    functions::fcall(ctx, out, argv, keys, args, ro)
}

fn fcall(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    fcall_generic(ctx, out, argv, false)
}

fn fcall_ro(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    fcall_generic(ctx, out, argv, true)
}

const FUNCTION_HELP: &[&str] = &[
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
];

/// The subcommands that may grow memory (Redis's `denyoom`): refused with OOM over
/// `maxmemory` when eviction cannot make room.
const DENY_OOM: &[&str] = &["load", "restore"];

/// FUNCTION subcommands: Redis arity, and whether they change the registry (then
/// refused on read-only replicas and propagated).
const SUBCOMMANDS: &[(&str, i32, bool)] = &[
    ("load", -3, true),
    ("delete", 3, true),
    ("flush", -2, true),
    ("restore", -3, true),
    ("list", -2, false),
    ("stats", 2, false),
    ("kill", 2, false),
    ("dump", 2, false),
    ("help", 2, false),
];

fn function(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
    let Some(&(name, arity, writes)) = SUBCOMMANDS.iter().find(|(n, _, _)| *n == sub) else {
        return Err(unknown_subcommand(&argv[1], "FUNCTION"));
    };
    let n = argv.len();
    if (arity >= 0 && n != arity as usize) || (arity < 0 && n < (-arity) as usize) {
        return Err(CmdError::msg(format!(
            "ERR wrong number of arguments for 'function|{name}' command"
        )));
    }
    if writes && !ctx.client.is_master && ctx.store.is_replica && ctx.store.hot.replica_read_only {
        return Err(CmdError::msg(
            "READONLY You can't write against a read only replica.",
        ));
    }
    if DENY_OOM.contains(&name)
        && !ctx.client.is_master
        && ctx.store.hot.maxmemory > 0
        && crate::evict::ensure_memory(ctx.server, ctx.store).is_err()
    {
        return Err(CmdError::msg(crate::evict::Oom.to_string()));
    }
    match name {
        "help" => help_reply(out, "FUNCTION", FUNCTION_HELP),
        "load" => load(ctx, out, argv)?,
        "delete" => {
            let lib = String::from_utf8_lossy(&argv[2]);
            if !super::function_lib::registry(ctx.store).delete(&lib) {
                return Err(CmdError::msg("ERR Library not found"));
            }
            out.ok();
        }
        "flush" => {
            if n == 3 && !is_kw(&argv[2], "sync") && !is_kw(&argv[2], "async") {
                return Err(CmdError::msg(
                    "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
                ));
            }
            if n > 3 {
                return Err(syntax_error(&argv[1]));
            }
            super::function_lib::registry(ctx.store).flush();
            out.ok();
        }
        "restore" => restore(ctx, out, argv)?,
        "list" => list(ctx, out, argv)?,
        "stats" => stats(ctx, out),
        // A function is never running while a command holds the store: FUNCTION
        // KILL during a busy function is answered by the connection layer, unlocked.
        "kill" => return Err(CmdError::msg(crate::scripting::busy::NOTBUSY_ERR)),
        "dump" => {
            let compression = ctx.config().rdbcompression;
            out.bulk(&crate::rdb::functions_payload(
                &super::function_lib::registry(ctx.store).codes(),
                compression,
            ));
        }
        _ => return Err(unknown_subcommand(&argv[1], "FUNCTION")),
    }
    if writes {
        let db = ctx.client.db;
        ctx.dirty(1);
        ctx.also_propagate(db, argv.to_vec());
    }
    Ok(())
}

/// Redis's subcommand syntax error, naming the subcommand as the client typed it.
fn syntax_error(sub: &[u8]) -> CmdError {
    let sub = String::from_utf8_lossy(sub);
    CmdError::msg(format!(
        "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try FUNCTION HELP."
    ))
}

fn load(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut i = 2;
    while i < argv.len() - 1 {
        if is_kw(&argv[i], "replace") {
            replace = true;
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(&argv[i])
            )));
        }
        i += 1;
    }
    let code = &argv[argv.len() - 1];
    let (functions, scripts) = super::function_lib::parts(ctx.store, &ctx.server.script_busy);
    let name = functions.load(scripts, code, replace)?;
    out.bulk(name.as_bytes());
    Ok(())
}

fn restore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 4 {
        return Err(syntax_error(&argv[1]));
    }
    let policy =
        match argv.get(3) {
            None => RestorePolicy::Append,
            Some(p) if is_kw(p, "flush") => RestorePolicy::Flush,
            Some(p) if is_kw(p, "append") => RestorePolicy::Append,
            Some(p) if is_kw(p, "replace") => RestorePolicy::Replace,
            Some(_) => return Err(CmdError::msg(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            )),
        };
    let codes = crate::rdb::functions_from_payload(&argv[2]).map_err(CmdError::msg)?;
    let (functions, scripts) = super::function_lib::parts(ctx.store, &ctx.server.script_busy);
    functions.restore(scripts, &codes, policy)?;
    out.ok();
    Ok(())
}

fn list(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let mut pattern: Option<&[u8]> = None;
    let mut with_code = false;
    let mut i = 2;
    while i < argv.len() {
        let a = &argv[i];
        if is_kw(a, "withcode") && !with_code {
            with_code = true;
        } else if is_kw(a, "libraryname") && pattern.is_none() {
            let Some(p) = argv.get(i + 1) else {
                return Err(CmdError::msg("ERR library name argument was not given"));
            };
            pattern = Some(p);
            i += 1;
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(a)
            )));
        }
        i += 1;
    }
    let libs: Vec<_> = functions::registry(ctx.store)
        .libraries()
        .filter(|l| pattern.is_none_or(|p| crate::util::glob_match(p, l.name.as_bytes(), true)))
        .collect();
    out.array(libs.len());
    for lib in libs {
        out.map(if with_code { 4 } else { 3 });
        out.bulk_str("library_name");
        out.bulk_str(&lib.name);
        out.bulk_str("engine");
        out.bulk_str("LUA");
        out.bulk_str("functions");
        out.array(lib.functions.len());
        for f in lib.functions.values() {
            out.map(3);
            out.bulk_str("name");
            out.bulk_str(&f.name);
            out.bulk_str("description");
            out.opt_bulk(f.description.as_deref());
            out.bulk_str("flags");
            let names = functions::flag_names(&f.flags);
            out.set(names.len());
            for n in names {
                out.simple(n);
            }
        }
        if with_code {
            out.bulk_str("library_code");
            out.bulk(&lib.code);
        }
    }
    Ok(())
}

/// FUNCTION STATS: no function runs while a command holds the store, so
/// `running_script` is nil here (see [`stats_while_busy`] for the other case).
fn stats(ctx: &mut Ctx, out: &mut Reply) {
    let mem = super::function_lib::registry(ctx.store).memory();
    out.map(2);
    out.bulk_str("running_script");
    out.null();
    engines(out, mem.number_of_libraries, mem.number_of_functions);
}

fn engines(out: &mut Reply, libraries: usize, functions: usize) {
    out.bulk_str("engines");
    out.map(1);
    out.bulk_str("LUA");
    out.map(2);
    out.bulk_str("libraries_count");
    out.int(libraries as i64);
    out.bulk_str("functions_count");
    out.int(functions as i64);
}

/// FUNCTION STATS while a function is busy, answered by the connection layer
/// without the store: the running function, its command and how long it has run.
pub fn stats_while_busy(out: &mut Reply, f: &crate::scripting::busy::RunningFunction, ms: u64) {
    out.map(2);
    out.bulk_str("running_script");
    out.map(3);
    out.bulk_str("name");
    out.bulk_str(&f.name);
    out.bulk_str("command");
    out.array(f.command.len());
    for a in &f.command {
        out.bulk(a);
    }
    out.bulk_str("duration_ms");
    out.int(ms as i64);
    engines(out, f.libraries, f.functions);
}
