//! Command family: ACL (Redis 7.0's `ACL` subcommands), and the command layer's side
//! of access control:
//! - [`check`]: the command catalog built from the metadata, the per-command check
//!   the dispatch (`exec`) calls, NOPERM texts, ACL LOG entries, AUTH/HELLO;
//! - [`files`]: users at startup (`requirepass`, `user` directives, `aclfile`),
//!   ACL LOAD/SAVE's file side, CONFIG REWRITE's user lines, and the Tandem
//!   credential-file watcher (`aclfile` and `tandem-requirepass-file` re-read when
//!   they change).

mod check;
mod files;

pub use check::{
    authenticate, catalog, check, check_queued, check_user, default_has_password, exec_text,
    noperm_text, permits, script_text, set_user, Refusal,
};
pub use files::{apply_requirepass, init, install_users, read_aclfile, user_lines, StartupError};

use super::{flags, CmdError, CmdResult, Command, Ctx};
use crate::acl::{file, rules, Catalog, Denial, User};
use crate::resp::Reply;
use bytes::Bytes;
use check::arg_text;
use files::{reapply_password_file, write_atomically};
use std::sync::Arc;

pub const COMMANDS: &[Command] = &[Command::new(
    "acl",
    -2,
    flags::NO_SCRIPT | flags::LOADING | flags::STALE,
    acl,
)];

/// Closes the connections of users for which `gone(name)` holds; the caller's own
/// connection closes after its reply.
pub fn kill_sessions(ctx: &mut Ctx, gone: impl Fn(&str) -> bool) {
    kill_where(ctx, |_, user| gone(user));
}

/// Closes the connections for which `doomed(id, user)` holds (the caller's own
/// after its reply).
fn kill_where(ctx: &mut Ctx, doomed: impl Fn(u64, &str) -> bool) {
    let me = ctx.client.id;
    let handles: Vec<_> = ctx.clients().values().cloned().collect();
    for h in handles {
        let user = h.info.lock().user.clone();
        if !doomed(h.id, &user) {
            continue;
        }
        if h.id == me {
            ctx.action = Some(super::Action::Close);
        } else {
            h.kill();
        }
    }
}

fn acl(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = argv[1].to_ascii_lowercase();
    match &sub[..] {
        b"setuser" => setuser(ctx, out, argv),
        b"getuser" => getuser(ctx, out, argv),
        b"deluser" => deluser(ctx, out, argv),
        b"users" => {
            let acl = ctx.server.acl.read();
            out.array(acl.users.len());
            for name in acl.users.keys() {
                out.bulk(name.as_bytes());
            }
            Ok(())
        }
        b"list" => {
            let acl = ctx.server.acl.read();
            out.array(acl.users.len());
            for u in acl.users.values() {
                out.bulk(format!("user {} {}", u.name, u.describe(catalog())).as_bytes());
            }
            Ok(())
        }
        b"whoami" => {
            out.bulk(ctx.client.user.name().unwrap_or("default").as_bytes());
            Ok(())
        }
        b"cat" => cat(out, argv),
        b"log" => log(ctx, out, argv),
        b"dryrun" => dryrun(ctx, out, argv),
        b"genpass" => genpass(out, argv),
        b"load" => load(ctx, out),
        b"save" => save(ctx, out),
        b"help" => {
            super::connection::help_reply(out, "ACL", HELP);
            Ok(())
        }
        _ => Err(super::connection::unknown_subcommand(&argv[1], "ACL")),
    }
}

const HELP: &[&str] = &[
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

fn pubsub_default_all(ctx: &Ctx) -> bool {
    ctx.config().get("acl-pubsub-default") == Some("allchannels")
}

fn setuser(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&argv[2]).into_owned();
    file::check_username(&name).map_err(|e| CmdError(format!("ERR {e}").into()))?;
    let ops: Vec<String> = argv[3..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let all = pubsub_default_all(ctx);
    let cat = catalog();
    let mut user = match ctx.server.acl.read().user(&name) {
        Some(u) => (**u).clone(),
        None => User::new(cat, &name, all),
    };
    user.apply_all(cat, &ops, all)
        .map_err(|e| CmdError(format!("ERR {e}").into()))?;
    let user = Arc::new(user);
    ctx.server.acl.modify(|acl| {
        acl.users.insert(name.clone(), user.clone());
    });
    drop_lost_subscribers(ctx, &user);
    out.ok();
    Ok(())
}

/// After a rule change, connections of `user` subscribed to channels it may no
/// longer use are closed (Redis `ACLKillPubsubClientsIfNeeded`).
fn drop_lost_subscribers(ctx: &mut Ctx, user: &User) {
    let ps = &ctx.store.pubsub;
    let mut lost: Vec<u64> = Vec::new();
    for (subs, pattern) in [
        (&ps.channels, false),
        (&ps.shard_channels, false),
        (&ps.patterns, true),
    ] {
        for (ch, ids) in subs {
            if !user.channel_allowed(ch, pattern) {
                lost.extend(ids.keys().copied());
            }
        }
    }
    if lost.is_empty() {
        return;
    }
    kill_where(ctx, |id, name| lost.contains(&id) && name == user.name);
}

fn getuser(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&argv[2]).into_owned();
    let Some(user) = ctx.server.acl.read().user(&name).cloned() else {
        out.null();
        return Ok(());
    };
    let cat = catalog();
    out.map(6);
    out.bulk(b"flags");
    let flags = user.flags();
    out.array(flags.len());
    for f in flags {
        out.bulk(f.as_bytes());
    }
    out.bulk(b"passwords");
    out.array(user.passwords.len());
    for p in &user.passwords {
        out.bulk(p.as_bytes());
    }
    describe_selector_fields(out, &user.root, cat);
    out.bulk(b"selectors");
    out.array(user.selectors.len());
    for s in &user.selectors {
        out.map(3);
        describe_selector_fields(out, s, cat);
    }
    Ok(())
}

fn describe_selector_fields(out: &mut Reply, s: &rules::Selector, cat: &Catalog) {
    out.bulk(b"commands");
    out.bulk(s.describe_commands(cat).as_bytes());
    out.bulk(b"keys");
    out.bulk(s.describe_keys().as_bytes());
    out.bulk(b"channels");
    out.bulk(s.describe_channels().as_bytes());
}

fn deluser(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let names: Vec<String> = argv[2..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if names.iter().any(|n| n == "default") {
        return Err(CmdError::msg("ERR The 'default' user cannot be removed"));
    }
    let removed: Vec<String> = ctx.server.acl.modify(|acl| {
        names
            .iter()
            .filter(|n| acl.users.remove(n.as_str()).is_some())
            .cloned()
            .collect()
    });
    kill_sessions(ctx, |u| removed.iter().any(|r| r == u));
    out.int(removed.len() as i64);
    Ok(())
}

fn cat(out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 3 {
        return Err(sub_syntax(&argv[1]));
    }
    let Some(name) = argv.get(2) else {
        out.array(crate::acl::catalog::CATEGORIES.len());
        for c in crate::acl::catalog::CATEGORIES {
            out.bulk(c.as_bytes());
        }
        return Ok(());
    };
    let name = String::from_utf8_lossy(name);
    let Some(bit) = crate::acl::catalog::category_bit(&name) else {
        return Err(CmdError(format!("ERR Unknown category '{name}'").into()));
    };
    let names: Vec<&str> = catalog()
        .entries
        .iter()
        .filter(|e| e.categories & bit != 0)
        .map(|e| e.name)
        .collect();
    out.array(names.len());
    for n in names {
        out.bulk(n.as_bytes());
    }
    Ok(())
}

/// Redis's reply to a subcommand given more arguments than it takes.
fn sub_syntax(sub: &[u8]) -> CmdError {
    CmdError(
        format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
            String::from_utf8_lossy(sub)
        )
        .into(),
    )
}

fn log(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 3 {
        return Err(sub_syntax(&argv[1]));
    }
    // Redis shows the 10 newest entries unless told otherwise.
    let mut count = 10;
    if let Some(a) = argv.get(2) {
        if crate::util::is_kw(a, "reset") {
            ctx.server.acl.modify(|acl| acl.log.entries.clear());
            out.ok();
            return Ok(());
        }
        count = super::arg_i64(a)?.max(0) as usize;
    }
    let now = crate::util::now_ms();
    let acl = ctx.server.acl.read();
    let n = acl.log.entries.len().min(count);
    out.array(n);
    for e in acl.log.entries.iter().take(n) {
        out.map(7);
        out.bulk(b"count");
        out.int(e.count as i64);
        for (k, v) in [
            ("reason", e.reason.as_str()),
            ("context", e.context.as_str()),
            ("object", &e.object),
            ("username", &e.username),
        ] {
            out.bulk(k.as_bytes());
            out.bulk(v.as_bytes());
        }
        out.bulk(b"age-seconds");
        out.double((now - e.ctime_ms) as f64 / 1000.0);
        out.bulk(b"client-info");
        out.bulk(e.client_info.as_bytes());
    }
    Ok(())
}

fn dryrun(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&argv[2]).into_owned();
    let Some(user) = ctx.server.acl.read().user(&name).cloned() else {
        return Err(CmdError(format!("ERR User '{name}' not found").into()));
    };
    let args = &argv[3..];
    let Some(cmd) = super::lookup(&args[0]) else {
        return Err(CmdError(
            format!(
                "ERR Command '{}' not found",
                String::from_utf8_lossy(&args[0])
            )
            .into(),
        ));
    };
    if !cmd.arity_ok(args.len()) {
        return Err(CmdError(
            format!("ERR wrong number of arguments for '{}' command", cmd.name).into(),
        ));
    }
    match check_user(&user, cmd, args) {
        Ok(()) => out.ok(),
        Err(r) => {
            let text = match r.denial {
                Denial::Command => format!(
                    "This user has no permissions to run the '{}' command",
                    r.full_name
                ),
                Denial::Key => format!(
                    "This user has no permissions to access the '{}' key",
                    arg_text(args, r.pos)
                ),
                Denial::Channel => format!(
                    "This user has no permissions to access the '{}' channel",
                    arg_text(args, r.pos)
                ),
            };
            out.bulk(text.as_bytes());
        }
    }
    Ok(())
}

fn genpass(out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 3 {
        return Err(sub_syntax(&argv[1]));
    }
    let bits = match argv.get(2) {
        Some(a) => super::arg_i64(a)?,
        None => 256,
    };
    if !(1..=4096).contains(&bits) {
        return Err(CmdError::msg("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096"));
    }
    let chars = (bits as usize).div_ceil(4);
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let mut s = String::with_capacity(chars + 1);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s.truncate(chars);
    out.bulk(s.as_bytes());
    Ok(())
}

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

fn aclfile(ctx: &Ctx) -> Option<String> {
    ctx.config()
        .get("aclfile")
        .filter(|f| !f.is_empty())
        .map(String::from)
}

fn load(ctx: &mut Ctx, out: &mut Reply) -> CmdResult {
    let Some(path) = aclfile(ctx) else {
        return Err(CmdError::msg(NO_ACLFILE));
    };
    let all = pubsub_default_all(ctx);
    let users = read_aclfile(&path, all).map_err(|e| CmdError(format!("ERR {e}").into()))?;
    install_users(ctx.server, users);
    reapply_password_file(ctx.server);
    // As Redis 7.0: every user object is replaced, and the connections of all but
    // the default user are closed.
    kill_sessions(ctx, |u| u != "default");
    out.ok();
    Ok(())
}

fn save(ctx: &mut Ctx, out: &mut Reply) -> CmdResult {
    let Some(path) = aclfile(ctx) else {
        return Err(CmdError::msg(NO_ACLFILE));
    };
    let text = {
        let acl = ctx.server.acl.read();
        file::render(acl.users.values().map(|u| &**u), catalog())
    };
    if let Err(e) = write_atomically(&path, &text) {
        crate::warning!("Failed to save the ACL file {path}: {e}");
        return Err(CmdError::msg(
            "ERR There was an error trying to save the ACLs. Please check the server logs for more information",
        ));
    }
    out.ok();
    Ok(())
}
