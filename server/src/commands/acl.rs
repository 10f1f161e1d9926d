//! Command family: ACL (Redis 7.0's `ACL` subcommands), and the command layer's side
//! of access control: the command catalog built from the metadata, the per-command
//! check the dispatch calls (`exec`), authentication for AUTH/HELLO, and loading
//! users at startup (`user` directives, `aclfile`, `requirepass`) plus the Tandem
//! credential-file watcher (`tandem-*-file` re-read when the file changes).

use super::meta_types::{self, Begin, Find, Meta};
use super::{flags, CmdError, CmdResult, Command, Ctx};
use crate::acl::log::{Context, Entry, Reason};
use crate::acl::{file, rules, Catalog, Denial, Request, Resolved, Session, User};
use crate::resp::Reply;
use crate::server::Server;
use bytes::Bytes;
use std::sync::{Arc, OnceLock};

pub const COMMANDS: &[Command] = &[Command::new(
    "acl",
    -2,
    flags::NO_SCRIPT | flags::LOADING | flags::STALE,
    acl,
)];

/// Every Redis 7.0.15 command and subcommand, numbered for ACL rules.
pub fn catalog() -> &'static Catalog {
    // Not state: derived once from the constant metadata table and never changed.
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut c = Catalog::default();
        for m in super::meta::META {
            let subs: Vec<(&'static str, u32)> =
                m.subs.iter().map(|s| (s.name, categories(s))).collect();
            c.add(m.name, categories(m), &subs);
        }
        c
    })
}

fn categories(m: &Meta) -> u32 {
    m.acl
        .iter()
        .filter_map(|c| crate::acl::catalog::category_bit(c.trim_start_matches('@')))
        .fold(0, |a, b| a | b)
}

/// The metadata of what `argv` runs: the subcommand of a container when known.
fn command_meta(cmd: &Command, argv: &[Bytes]) -> Option<&'static Meta> {
    let m = meta_types::meta(cmd.name)?;
    if m.subs.is_empty() {
        return Some(m);
    }
    Some(argv.get(1).and_then(|s| m.sub(s)).unwrap_or(m))
}

/// Key argument positions with the permissions they need (Redis
/// `getKeysFromCommandWithSpecs`): from the key specs; a spec the metadata cannot
/// follow falls back to the command table's key positions, needing read and write.
fn keys_of(cmd: &Command, meta: &Meta, argv: &[Bytes]) -> Vec<(usize, u8)> {
    let mut out = Vec::new();
    for spec in meta.key_specs {
        if spec.flags.contains(&"not_key") {
            continue;
        }
        let mut need = 0;
        if spec.flags.contains(&"access") {
            need |= rules::READ;
        }
        if spec
            .flags
            .iter()
            .any(|f| matches!(*f, "insert" | "delete" | "update"))
        {
            need |= rules::WRITE;
        }
        if spec.flags.contains(&"variable_flags") {
            need = variable_needs(meta.name, argv);
        }
        match spec_positions(spec.begin, spec.find, argv) {
            Some(range) => out.extend(range.into_iter().map(|p| (p, need))),
            None if spec.flags.contains(&"incomplete")
                || matches!(spec.begin, Begin::Unknown)
                || matches!(spec.find, Find::Unknown) =>
            {
                return cmd
                    .key_positions(argv)
                    .into_iter()
                    .map(|p| (p, rules::READ | rules::WRITE))
                    .collect();
            }
            None => {}
        }
    }
    out
}

/// The key needs of the two commands whose key spec flags depend on the arguments
/// (Redis resolves them with the commands' own key functions): SET reads its key
/// only with GET; BITFIELD writes only with SET or INCRBY.
fn variable_needs(name: &str, argv: &[Bytes]) -> u8 {
    let has = |kw: &str| argv.iter().skip(2).any(|a| crate::util::is_kw(a, kw));
    match name {
        "set" if has("get") => rules::READ | rules::WRITE,
        "set" => rules::WRITE,
        "bitfield" if has("set") || has("incrby") => rules::READ | rules::WRITE,
        "bitfield" => rules::READ,
        _ => rules::READ | rules::WRITE,
    }
}

/// The argument positions one key spec names in `argv`.
fn spec_positions(begin: Begin, find: Find, argv: &[Bytes]) -> Option<Vec<usize>> {
    let argc = argv.len() as i64;
    let first = match begin {
        Begin::Index(i) => i as i64,
        Begin::Keyword(kw, from) => {
            let start = if from > 0 {
                from as i64
            } else {
                argc + from as i64
            };
            let found = if from > 0 {
                (start..argc).find(|&i| crate::util::is_kw(&argv[i as usize], kw))
            } else {
                (1..=start.min(argc - 1))
                    .rev()
                    .find(|&i| crate::util::is_kw(&argv[i as usize], kw))
            };
            found? + 1
        }
        Begin::Unknown => return None,
    };
    let (first, last, step) = match find {
        Find::Range { last, step, limit } => {
            let end = if last >= 0 {
                first + last as i64
            } else if limit == 0 {
                argc + last as i64
            } else {
                first + ((argc - first) / limit as i64 + last as i64)
            };
            (first, end, step.max(1) as i64)
        }
        Find::Keynum {
            index,
            first: f,
            step,
        } => {
            let n = argv.get((first + index as i64) as usize)?;
            let n = crate::resp::parse_i64(n).filter(|n| *n >= 0)?;
            let start = first + f as i64;
            (start, start + n - 1, step.max(1) as i64)
        }
        Find::Unknown => return None,
    };
    if first < 1 || first >= argc || last < first {
        return Some(Vec::new());
    }
    let last = last.min(argc - 1);
    Some(
        (first..=last)
            .step_by(step as usize)
            .map(|i| i as usize)
            .collect(),
    )
}

/// Channel arguments the ACL checks (publishing and subscribing commands).
fn channels_of(name: &str, argv: &[Bytes]) -> Vec<(usize, bool)> {
    match name {
        "publish" | "spublish" => vec![(1, false)],
        "subscribe" | "ssubscribe" => (1..argv.len()).map(|i| (i, false)).collect(),
        "psubscribe" => (1..argv.len()).map(|i| (i, true)).collect(),
        _ => Vec::new(),
    }
}

/// What a denied check reports: the reason, the argument at fault, the full name.
pub struct Refusal {
    pub denial: Denial,
    pub pos: usize,
    pub full_name: &'static str,
}

/// Checks `argv` against `user` (Redis `ACLCheckAllUserCommandPerm`).
pub fn check_user(user: &User, cmd: &Command, argv: &[Bytes]) -> Result<(), Refusal> {
    if user.unrestricted {
        return Ok(());
    }
    let cat = catalog();
    let meta = command_meta(cmd, argv);
    let full_name = meta.map_or(cmd.name, |m| m.name);
    let Some(id) = cat.id(full_name) else {
        // Tandem-only commands have no ACL identity: only `+@all` users run them.
        return Err(Refusal {
            denial: Denial::Command,
            pos: 0,
            full_name,
        });
    };
    let keys = meta.map(|m| keys_of(cmd, m, argv)).unwrap_or_default();
    let channels = channels_of(cmd.name, argv);
    let req = Request {
        id,
        no_auth: cmd.is(flags::NO_AUTH),
        first_arg: if full_name.contains('|') { 2 } else { 1 },
        argv,
        keys: &keys,
        channels: &channels,
    };
    user.check(&req).map_err(|(denial, pos)| Refusal {
        denial,
        pos,
        full_name,
    })
}

/// The dispatch's ACL check for a client command (`context` Toplevel or Multi) or a
/// script's call (Lua). On denial it logs the entry and returns the refusal.
pub fn check(
    server: &Server,
    client: &mut super::ClientState,
    cmd: &Command,
    argv: &[Bytes],
    context: Context,
) -> Result<(), Refusal> {
    check_as(server, client, (cmd, argv), context, None)
}

/// EXEC's re-check of a queued command: logged as EXEC with `queued` commands
/// pending, as Redis's client-info shows it then.
pub fn check_queued(
    server: &Server,
    client: &mut super::ClientState,
    cmd: &Command,
    argv: &[Bytes],
    queued: usize,
) -> Result<(), Refusal> {
    check_as(server, client, (cmd, argv), Context::Multi, Some(queued))
}

fn check_as(
    server: &Server,
    client: &mut super::ClientState,
    (cmd, argv): (&Command, &[Bytes]),
    context: Context,
    queued: Option<usize>,
) -> Result<(), Refusal> {
    if client.user.unrestricted(&server.acl) {
        return Ok(());
    }
    let user = match client.user.resolve(&server.acl) {
        Resolved::Internal => return Ok(()),
        Resolved::User(u) => u,
        Resolved::Gone => {
            return Err(Refusal {
                denial: Denial::Command,
                pos: 0,
                full_name: cmd.name,
            })
        }
    };
    let r = check_user(&user, cmd, argv);
    if let Err(refusal) = &r {
        let (reason, object) = match refusal.denial {
            Denial::Command => (Reason::Command, refusal.full_name.to_string()),
            Denial::Key => (Reason::Key, arg_text(argv, refusal.pos)),
            Denial::Channel => (Reason::Channel, arg_text(argv, refusal.pos)),
        };
        let shown = match queued {
            Some(n) => Shown::Exec(n),
            None => Shown::Command(refusal.full_name),
        };
        log_denial(server, client, reason, context, object, &user.name, shown);
    }
    r
}

fn arg_text(argv: &[Bytes], pos: usize) -> String {
    argv.get(pos)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .unwrap_or_default()
}

/// The NOPERM error a client gets for a refusal.
pub fn noperm_text(r: &Refusal) -> String {
    match r.denial {
        Denial::Command => format!(
            "NOPERM this user has no permissions to run the '{}' command",
            r.full_name
        ),
        Denial::Key => {
            "NOPERM this user has no permissions to access one of the keys used as arguments".into()
        }
        Denial::Channel => {
            "NOPERM this user has no permissions to access one of the channels used as arguments"
                .into()
        }
    }
}

/// The error a script's `redis.call` gets for a refusal.
pub fn script_text(r: &Refusal) -> &'static str {
    match r.denial {
        Denial::Command => "ERR The user executing the script can't run this command or subcommand",
        Denial::Key => "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments",
        Denial::Channel => "ERR The user executing the script can't publish to the channel mentioned in the command",
    }
}

/// The error EXEC gives a queued command the rules no longer allow.
pub fn exec_text(r: &Refusal) -> String {
    let reason = match r.denial {
        Denial::Command => "no permission to execute the command or subcommand",
        Denial::Key => "no permission to touch the specified keys",
        Denial::Channel => "no permission to access one of the channels used as arguments",
    };
    format!("NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: {reason}")
}

/// What the client-info of a log entry shows as running.
#[derive(Clone, Copy)]
enum Shown<'a> {
    Command(&'a str),
    /// EXEC, with this many commands queued.
    Exec(usize),
}

/// Adds an ACL LOG entry for the calling client.
fn log_denial(
    server: &Server,
    client: &super::ClientState,
    reason: Reason,
    context: Context,
    object: String,
    username: &str,
    shown: Shown,
) {
    let client_info = client_info(server, client, shown);
    let max_len = server
        .config
        .read()
        .get("acllog-max-len")
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    server.acl.log(
        Entry {
            count: 1,
            reason,
            context,
            object,
            username: username.to_string(),
            ctime_ms: crate::util::now_ms(),
            client_info,
        },
        max_len,
    );
}

/// The client's CLIENT LIST line as of this command (ACL LOG's `client-info`).
fn client_info(server: &Server, client: &super::ClientState, shown: Shown) -> String {
    let Some(h) = server.clients.lock().get(&client.id).cloned() else {
        return String::new();
    };
    let mut info = h.info.lock().clone();
    info.db = client.db;
    info.name = client.name.clone();
    info.multi = client.multi.as_ref().map_or(-1, |q| q.len() as i64);
    info.resp = if client.resp3 { 3 } else { 2 };
    match shown {
        Shown::Command(name) => info.last_cmd = name.to_string(),
        Shown::Exec(n) => {
            info.last_cmd = "exec".into();
            info.multi = n as i64;
        }
    }
    if info.multi >= 0 && !info.flags.contains('x') {
        info.flags.push('x');
    }
    let line = super::connection::client_line(&h, &info);
    line.trim_end().to_string()
}

/// AUTH / HELLO AUTH: on success the connection becomes `user`'s; a failure is
/// logged (reason `auth`) and answered with WRONGPASS.
/// `typed` is the command name as the client sent it (ACL LOG's object).
pub fn authenticate(ctx: &mut Ctx, user: &[u8], pass: &[u8], typed: &[u8]) -> CmdResult {
    let name = String::from_utf8_lossy(user).into_owned();
    let ok = ctx
        .server
        .acl
        .read()
        .user(&name)
        .is_some_and(|u| u.enabled && u.password_ok(pass));
    if !ok {
        log_denial(
            ctx.server,
            ctx.client,
            Reason::Auth,
            if ctx.client.multi.is_some() {
                Context::Multi
            } else {
                Context::Toplevel
            },
            String::from_utf8_lossy(typed).into_owned(),
            &name,
            Shown::Command(&String::from_utf8_lossy(typed).to_ascii_lowercase()),
        );
        return Err(CmdError::msg(super::connection::WRONGPASS));
    }
    set_user(ctx, &name);
    ctx.client.authenticated = true;
    Ok(())
}

/// Makes the calling connection `name`'s (also as CLIENT LIST shows it).
pub fn set_user(ctx: &mut Ctx, name: &str) {
    ctx.client.user = Session::named(name);
    if let Some(h) = ctx.clients().get(&ctx.client.id) {
        h.info.lock().user = name.to_string();
    }
}

/// Whether the default user needs a password (AUTH with one argument is refused
/// without one).
pub fn default_has_password(server: &Server) -> bool {
    !server.acl.read().user("default").is_some_and(|u| u.nopass)
}

/// Closes the connections of users for which `gone(name)` holds; the caller's own
/// connection closes after its reply.
pub fn kill_sessions(ctx: &mut Ctx, gone: impl Fn(&str) -> bool) {
    let me = ctx.client.id;
    let handles: Vec<_> = ctx.clients().values().cloned().collect();
    for h in handles {
        let user = h.info.lock().user.clone();
        if !gone(&user) {
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
    let me = ctx.client.id;
    let handles: Vec<_> = ctx.clients().values().cloned().collect();
    for h in handles {
        if !lost.contains(&h.id) || h.info.lock().user != user.name {
            continue;
        }
        if h.id == me {
            ctx.action = Some(super::Action::Close);
        } else {
            h.kill();
        }
    }
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

fn write_atomically(path: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = format!("{path}.tmp-{}", std::process::id());
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Reads and parses the ACL file; a file without `default` gets a fresh one.
pub fn read_aclfile(path: &str, pubsub_default_all: bool) -> Result<Vec<User>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("Error loading ACLs, opening file '{path}': {e}"))?;
    parse_acl_text(&text, path, pubsub_default_all)
}

fn parse_acl_text(text: &str, path: &str, pubsub_default_all: bool) -> Result<Vec<User>, String> {
    let mut users = file::parse(text, path, catalog(), pubsub_default_all)?;
    if !users.iter().any(|u| u.name == "default") {
        users.push(User::default_user(catalog()));
    }
    Ok(users)
}

/// Every user as the words of a `user` directive (name, then rules), for CONFIG
/// REWRITE.
pub fn user_lines(server: &Server) -> Vec<Vec<String>> {
    let acl = server.acl.read();
    acl.users
        .values()
        .map(|u| {
            std::iter::once(u.name.clone())
                .chain(u.describe(catalog()).split(' ').map(String::from))
                .collect()
        })
        .collect()
}

/// Replaces every user with `users`.
pub fn install_users(server: &Server, users: Vec<User>) {
    server.acl.modify(|acl| {
        acl.users = users
            .into_iter()
            .map(|u| (u.name.clone(), Arc::new(u)))
            .collect();
    });
}

/// `requirepass` as Redis 7.0 applies it: the default user's passwords become
/// just this one (`resetpass >pw`), or `nopass` when it is empty.
pub fn apply_requirepass(server: &Server, pass: Option<&str>) {
    let cat = catalog();
    server.acl.modify(|acl| {
        let mut u = acl
            .users
            .get("default")
            .map(|u| (**u).clone())
            .unwrap_or_else(|| User::default_user(cat));
        let _ = u.apply(cat, "resetpass", false);
        let op = match pass {
            Some(p) => format!(">{p}"),
            None => "nopass".to_string(),
        };
        let _ = u.apply(cat, &op, false);
        acl.users.insert("default".into(), Arc::new(u));
    });
}

/// Why the users configured at startup could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("Error in user declaration '{line}': {err}")]
    Directive { line: String, err: String },
    #[error("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.")]
    Both,
    #[error("Aborting Redis startup because of ACL errors: {0}")]
    File(String),
}

/// Startup: the default user, `requirepass`, `user` directives or the `aclfile`,
/// then the credential-file watcher when a file is configured.
pub fn init(server: &Arc<Server>) -> Result<(), StartupError> {
    let cat = catalog();
    let (requirepass, directives, path, all) = {
        let c = server.config.read();
        (
            c.requirepass.clone(),
            c.acl_users.clone(),
            c.get("aclfile").unwrap_or("").to_string(),
            c.get("acl-pubsub-default") == Some("allchannels"),
        )
    };
    install_users(server, vec![User::default_user(cat)]);
    apply_requirepass(server, requirepass.as_deref());
    if !path.is_empty() && !directives.is_empty() {
        return Err(StartupError::Both);
    }
    for words in &directives {
        let line = words.join(" ");
        let (name, ops) = words.split_first().ok_or_else(|| StartupError::Directive {
            line: line.clone(),
            err: "Syntax error".into(),
        })?;
        file::check_username(name).map_err(|e| StartupError::Directive {
            line: line.clone(),
            err: e.into(),
        })?;
        let mut user = match server.acl.read().user(name) {
            Some(u) if name == "default" => (**u).clone(),
            _ => User::new(cat, name, all),
        };
        user.apply_all(cat, ops, all)
            .map_err(|e| StartupError::Directive {
                line: line.clone(),
                err: e.to_string(),
            })?;
        server.acl.modify(|acl| {
            acl.users.insert(name.clone(), Arc::new(user));
        });
    }
    if !path.is_empty() {
        let users = read_aclfile(&path, all).map_err(StartupError::File)?;
        install_users(server, users);
    }
    if let Some(path) = requirepass_file(server) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| StartupError::File(format!("{path}: {e}")))?;
        apply_password_file(server, &text).map_err(StartupError::File)?;
    }
    spawn_watcher(server);
    Ok(())
}

fn requirepass_file(server: &Server) -> Option<String> {
    server
        .config
        .read()
        .get("tandem-requirepass-file")
        .filter(|f| !f.is_empty())
        .map(String::from)
}

/// After the users were replaced, the password file (if configured) still decides
/// the default user's passwords; a file that cannot be read now leaves them as
/// loaded (the watcher retries on its next change).
fn reapply_password_file(server: &Server) {
    let Some(path) = requirepass_file(server) else {
        return;
    };
    let applied = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| apply_password_file(server, &text));
    if let Err(e) = applied {
        crate::warning!("Password file {path} not applied after ACL LOAD: {e}");
    }
}

/// `tandem-requirepass-file`: each non-empty line is a password of the default
/// user (several lines let a rotation add the new one before removing the old).
/// Its other rules are kept.
fn apply_password_file(server: &Server, text: &str) -> Result<(), String> {
    let passwords: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .collect();
    if passwords.is_empty() {
        return Err("the password file has no password in it".into());
    }
    let cat = catalog();
    server.acl.modify(|acl| {
        let mut u = acl
            .users
            .get("default")
            .map(|u| (**u).clone())
            .unwrap_or_else(|| User::default_user(cat));
        let _ = u.apply(cat, "resetpass", false);
        for p in passwords {
            let _ = u.apply(cat, &format!(">{p}"), false);
        }
        acl.users.insert("default".into(), Arc::new(u));
    });
    Ok(())
}

/// How often the credential files are compared with what was loaded.
const WATCH_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// One watched credential file: its path and the text last seen.
struct Watched {
    path: String,
    seen: Option<String>,
}

impl Watched {
    /// The file's text when it differs from what was seen last. The path is
    /// opened anew each time, so a Kubernetes Secret update (a symlink swap) is
    /// followed.
    fn changed(&mut self) -> Option<String> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        if self.seen.as_deref() == Some(text.as_str()) {
            return None;
        }
        self.seen = Some(text.clone());
        Some(text)
    }
}

/// Tandem extension: re-reads `aclfile` and `tandem-requirepass-file` when their
/// content changes. A file that does not parse leaves the users as they are (and is
/// logged once per version); connections keep running unless their user is gone
/// or was turned off.
fn spawn_watcher(server: &Arc<Server>) {
    let path_of = |name: &str| {
        server
            .config
            .read()
            .get(name)
            .filter(|f| !f.is_empty())
            .map(String::from)
    };
    let seen = |path: String| Watched {
        seen: std::fs::read_to_string(&path).ok(),
        path,
    };
    let mut aclfile = path_of("aclfile").map(seen);
    let mut passfile = path_of("tandem-requirepass-file").map(seen);
    if aclfile.is_none() && passfile.is_none() {
        return;
    }
    let weak = Arc::downgrade(server);
    let mut stop = server.shutdown.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_PERIOD) => {}
                _ = stop.changed() => return,
            }
            let Some(server) = weak.upgrade() else {
                return;
            };
            if let Some(text) = aclfile.as_mut().and_then(Watched::changed) {
                reload_aclfile(&server, aclfile.as_ref().map_or("", |w| &w.path), &text);
                // The password file, if any, still decides the default user's passwords.
                if let Some(w) = passfile.as_mut() {
                    w.seen = None;
                }
            }
            if let Some(text) = passfile.as_mut().and_then(Watched::changed) {
                match apply_password_file(&server, &text) {
                    Ok(()) => crate::notice!("Default user password file reloaded"),
                    Err(e) => crate::warning!(
                        "Password file not applied, the old passwords stay in force: {e}"
                    ),
                }
                close_sessions_without_user(&server);
            }
        }
    });
}

fn reload_aclfile(server: &Server, path: &str, text: &str) {
    let all = server.config.read().get("acl-pubsub-default") == Some("allchannels");
    match parse_acl_text(text, path, all) {
        Ok(users) => {
            install_users(server, users);
            close_sessions_without_user(server);
            crate::notice!("ACL file {path} changed: users reloaded");
        }
        Err(e) => crate::warning!(
            "ACL file {path} changed but was not loaded, the users stay as they were: {e}"
        ),
    }
}

/// Closes connections whose user no longer exists or was turned off (not the
/// master link, which runs as no user).
fn close_sessions_without_user(server: &Server) {
    let handles: Vec<_> = server.clients.lock().values().cloned().collect();
    let acl = server.acl.read();
    for h in handles {
        let (user, master) = {
            let i = h.info.lock();
            (i.user.clone(), i.flags.contains('M'))
        };
        if !master && !acl.user(&user).is_some_and(|u| u.enabled) {
            h.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &[&str]) -> Vec<Bytes> {
        s.iter().map(|x| Bytes::from(x.to_string())).collect()
    }

    #[test]
    fn key_specs_give_positions_and_needs() {
        let set = super::super::lookup(b"set").expect("set");
        let m = command_meta(set, &b(&["set", "k", "v"])).expect("meta");
        assert_eq!(
            keys_of(set, m, &b(&["set", "k", "v"])),
            vec![(1, rules::WRITE)]
        );
        let copy = super::super::lookup(b"copy").expect("copy");
        let argv = b(&["copy", "a", "b"]);
        let m = command_meta(copy, &argv).expect("meta");
        assert_eq!(
            keys_of(copy, m, &argv),
            vec![(1, rules::READ), (2, rules::WRITE)]
        );
        let mset = super::super::lookup(b"mset").expect("mset");
        let argv = b(&["mset", "a", "1", "b", "2"]);
        let m = command_meta(mset, &argv).expect("meta");
        assert_eq!(
            keys_of(mset, m, &argv)
                .iter()
                .map(|k| k.0)
                .collect::<Vec<_>>(),
            vec![1, 3]
        );
        let eval = super::super::lookup(b"eval").expect("eval");
        let argv = b(&["eval", "s", "2", "k1", "k2", "a"]);
        let m = command_meta(eval, &argv).expect("meta");
        assert_eq!(
            keys_of(eval, m, &argv)
                .iter()
                .map(|k| k.0)
                .collect::<Vec<_>>(),
            vec![3, 4]
        );
    }

    #[test]
    fn hostile_keynum_is_bounded() {
        let eval = super::super::lookup(b"eval").expect("eval");
        let argv = b(&["eval", "s", "99999999999", "k1"]);
        let m = command_meta(eval, &argv).expect("meta");
        assert_eq!(keys_of(eval, m, &argv).len(), 1);
    }
}
