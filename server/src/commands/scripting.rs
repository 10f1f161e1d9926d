//! Command family: scripting (EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT). The Lua
//! side lives in `crate::scripting`; these handlers parse arguments and call it.

use super::connection::{help_reply, unknown_subcommand};
use super::script_run::{self, EvalTarget};
use super::{arg_i64, flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::resp::Reply;
use crate::scripting;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    // MAY_REPLICATE as in Redis: a script without a shebang may write (CLIENT PAUSE
    // WRITE holds it); one with flags is judged by them (`super::call_flags`).
    Command::new(
        "eval",
        -3,
        NO_SCRIPT | STALE | NO_MONITOR | MAY_REPLICATE,
        eval,
    )
    .keys_with(eval_keys),
    Command::new(
        "evalsha",
        -3,
        NO_SCRIPT | STALE | NO_MONITOR | MAY_REPLICATE,
        evalsha,
    )
    .keys_with(eval_keys),
    Command::new(
        "eval_ro",
        -3,
        NO_SCRIPT | STALE | NO_MONITOR | READONLY,
        eval_ro,
    )
    .keys_with(eval_keys),
    Command::new(
        "evalsha_ro",
        -3,
        NO_SCRIPT | STALE | NO_MONITOR | READONLY,
        evalsha_ro,
    )
    .keys_with(eval_keys),
    Command::new("script", -2, NO_SCRIPT | STALE, script),
];

/// The key positions of `EVAL script numkeys key... arg...`.
fn eval_keys(argv: &[Bytes]) -> Vec<usize> {
    let n = argv
        .get(2)
        .and_then(|a| crate::resp::parse_i64(a))
        .unwrap_or(0)
        .max(0) as usize;
    (3..3usize.saturating_add(n).min(argv.len())).collect()
}

/// Splits `numkeys key... arg...` with Redis's errors.
fn keys_and_args(argv: &[Bytes]) -> Result<(&[Bytes], &[Bytes]), CmdError> {
    let n = arg_i64(&argv[2])?;
    if n < 0 {
        return Err(CmdError::msg("ERR Number of keys can't be negative"));
    }
    let rest = &argv[3..];
    if n as u64 > rest.len() as u64 {
        return Err(CmdError::msg(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    Ok(rest.split_at(n as usize))
}

fn eval_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], sha: bool, ro: bool) -> CmdResult {
    crate::exec::feed_monitors_before_script(ctx.server, ctx.client, argv);
    let (keys, args) = keys_and_args(argv)?;
    let target = if sha {
        EvalTarget::Sha(&argv[1])
    } else {
        EvalTarget::Source(&argv[1])
    };
    script_run::eval(ctx, out, target, keys, args, ro)
}

fn eval(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    eval_generic(ctx, out, argv, false, false)
}

fn evalsha(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    eval_generic(ctx, out, argv, true, false)
}

fn eval_ro(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    eval_generic(ctx, out, argv, false, true)
}

fn evalsha_ro(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    eval_generic(ctx, out, argv, true, true)
}

const SCRIPT_HELP: &[&str] = &[
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
];

/// SCRIPT subcommands with their Redis arities.
const SUBCOMMANDS: &[(&str, i32)] = &[
    ("exists", -3),
    ("flush", -2),
    ("kill", 2),
    ("load", 3),
    ("debug", 3),
    ("help", 2),
];

fn script(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&argv[1]).to_ascii_lowercase();
    let Some(&(name, arity)) = SUBCOMMANDS.iter().find(|(n, _)| *n == sub) else {
        return Err(unknown_subcommand(&argv[1], "SCRIPT"));
    };
    let n = argv.len();
    if (arity >= 0 && n != arity as usize) || (arity < 0 && n < (-arity) as usize) {
        return Err(CmdError::msg(format!(
            "ERR wrong number of arguments for 'script|{name}' command"
        )));
    }
    match name {
        "help" => help_reply(out, "SCRIPT", SCRIPT_HELP),
        "load" => {
            let sha = script_run::scripts(ctx).load(&argv[2])?;
            out.bulk(sha.as_bytes());
        }
        "exists" => {
            out.array(n - 2);
            for sha in &argv[2..] {
                out.int(script_run::scripts(ctx).exists(sha) as i64);
            }
        }
        "flush" => {
            if n > 3 || (n == 3 && !is_kw(&argv[2], "sync") && !is_kw(&argv[2], "async")) {
                return Err(CmdError::msg(
                    "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
                ));
            }
            script_run::scripts(ctx).flush();
            out.ok();
        }
        // A script is never running while a command holds the store: SCRIPT KILL
        // during a busy script is answered by the connection layer, unlocked.
        "kill" => return Err(CmdError::msg(scripting::busy::NOTBUSY_ERR)),
        "debug" => {
            if is_kw(&argv[2], "no") {
                out.ok();
            } else if is_kw(&argv[2], "yes") || is_kw(&argv[2], "sync") {
                return Err(CmdError::msg(
                    "ERR SCRIPT DEBUG is not supported by this server",
                ));
            } else {
                return Err(CmdError::msg("ERR Use SCRIPT DEBUG YES/SYNC/NO"));
            }
        }
        _ => return Err(unknown_subcommand(&argv[1], "SCRIPT")),
    }
    Ok(())
}

/// The flags EVAL's script declares (`cmd` is one of the EVAL family): a cached
/// script's, or for EVAL of a script not cached yet, its shebang's. None: EVALSHA of
/// an unknown sha1, or a shebang that does not parse (the run will say why).
pub fn declared_flags(
    store: &crate::server::Store,
    cmd: &Command,
    argv: &[Bytes],
) -> Option<scripting::ScriptFlags> {
    let arg = argv.get(1)?;
    let scripts = store
        .scripts
        .0
        .as_ref()
        .and_then(|b| b.downcast_ref::<scripting::Scripts>());
    let by_source = matches!(cmd.name, "eval" | "eval_ro");
    let sha = if by_source {
        scripting::sha1_hex(arg)
    } else {
        String::from_utf8_lossy(arg).into_owned()
    };
    if let Some((_, flags, _)) = scripts.and_then(|s| s.cached(sha.as_bytes()).ok()) {
        return Some(flags);
    }
    by_source
        .then(|| scripting::shebang::parse(arg).ok().map(|(f, _)| f))
        .flatten()
}
