//! The ACL check the dispatch runs for every command (client requests, queued
//! commands at EXEC, scripts' calls), with its NOPERM texts and ACL LOG entries,
//! and authentication for AUTH / HELLO AUTH.

use super::super::keyspecs;
use super::super::meta_types::Meta;
use super::super::{flags, CmdError, CmdResult, Command};
use crate::acl::log::{Context, Entry, Reason};
use crate::acl::{rules, Catalog, Denial, Request, Resolved, Session, User};
use crate::server::Server;
use bytes::Bytes;
use std::sync::OnceLock;

/// Every Redis 7.0.15 command and subcommand, numbered for ACL rules.
pub fn catalog() -> &'static Catalog {
    // Not state: derived once from the constant metadata table and never changed.
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut c = Catalog::default();
        for m in super::super::meta::META {
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

/// Key argument positions with the permissions they need (Redis
/// `getKeysFromCommandWithSpecs` and the key flags it reports).
fn keys_of(meta: &Meta, argv: &[Bytes]) -> Vec<(usize, u8)> {
    keyspecs::keys(meta, argv)
        .into_iter()
        .map(|k| {
            let mut need = 0;
            if k.flags.contains(&"access") {
                need |= rules::READ;
            }
            if k.flags
                .iter()
                .any(|f| matches!(*f, "insert" | "delete" | "update"))
            {
                need |= rules::WRITE;
            }
            (k.pos, need)
        })
        .collect()
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
    let meta = keyspecs::resolve(cmd, argv);
    let full_name = meta.map_or(cmd.name, |m| m.name);
    let Some(id) = cat.id(full_name) else {
        // Tandem-only commands have no ACL identity: only `+@all` users run them.
        return Err(Refusal {
            denial: Denial::Command,
            pos: 0,
            full_name,
        });
    };
    let keys = meta.map(|m| keys_of(m, argv)).unwrap_or_default();
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
    client: &mut super::super::ClientState,
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
    client: &mut super::super::ClientState,
    cmd: &Command,
    argv: &[Bytes],
    queued: usize,
) -> Result<(), Refusal> {
    check_as(server, client, (cmd, argv), Context::Multi, Some(queued))
}

/// Whether `session`'s user may run `argv` (`redis.acl_check_cmd`): the check a
/// call makes, commands, keys and channels, but nothing is logged.
pub fn permits(server: &Server, session: &mut Session, cmd: &Command, argv: &[Bytes]) -> bool {
    if session.unrestricted(&server.acl) {
        return true;
    }
    match session.resolve(&server.acl) {
        Resolved::Internal => true,
        Resolved::User(user) => check_user(&user, cmd, argv).is_ok(),
        Resolved::Gone => false,
    }
}

fn check_as(
    server: &Server,
    client: &mut super::super::ClientState,
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

pub(super) fn arg_text(argv: &[Bytes], pos: usize) -> String {
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
    client: &super::super::ClientState,
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
fn client_info(server: &Server, client: &super::super::ClientState, shown: Shown) -> String {
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
    let line = super::super::connection::client_line(&h, &info);
    line.trim_end().to_string()
}

/// AUTH / HELLO AUTH: on success the connection becomes `user`'s; a failure is
/// logged (reason `auth`) and answered with WRONGPASS.
/// `typed` is the command name as the client sent it (ACL LOG's object).
pub fn authenticate(
    server: &Server,
    client: &mut super::super::ClientState,
    user: &[u8],
    pass: &[u8],
    typed: &[u8],
) -> CmdResult {
    let name = String::from_utf8_lossy(user).into_owned();
    let ok = server
        .acl
        .read()
        .user(&name)
        .is_some_and(|u| u.enabled && u.password_ok(pass));
    if !ok {
        log_denial(
            server,
            client,
            Reason::Auth,
            if client.multi.is_some() {
                Context::Multi
            } else {
                Context::Toplevel
            },
            String::from_utf8_lossy(typed).into_owned(),
            &name,
            Shown::Command(&String::from_utf8_lossy(typed).to_ascii_lowercase()),
        );
        return Err(CmdError::msg(super::super::connection::WRONGPASS));
    }
    set_user(server, client, &name);
    client.authenticated = true;
    Ok(())
}

/// Makes the calling connection `name`'s (also as CLIENT LIST shows it).
pub fn set_user(server: &Server, client: &mut super::super::ClientState, name: &str) {
    client.user = Session::named(name);
    if let Some(h) = server.clients.lock().get(&client.id) {
        h.info.lock().user = name.to_string();
    }
}

/// Whether the default user needs a password (AUTH with one argument is refused
/// without one).
pub fn default_has_password(server: &Server) -> bool {
    !server.acl.read().user("default").is_some_and(|u| u.nopass)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &[&str]) -> Vec<Bytes> {
        s.iter().map(|x| Bytes::from(x.to_string())).collect()
    }

    /// The keys and permissions the check takes from `words`.
    fn needs(words: &[&str]) -> Vec<(usize, u8)> {
        let argv = b(words);
        let cmd = super::super::super::lookup(argv[0].as_ref()).expect("command");
        keys_of(keyspecs::resolve(cmd, &argv).expect("meta"), &argv)
    }

    #[test]
    fn key_specs_give_positions_and_needs() {
        assert_eq!(needs(&["set", "k", "v"]), vec![(1, rules::WRITE)]);
        assert_eq!(
            needs(&["set", "k", "v", "get"]),
            vec![(1, rules::READ | rules::WRITE)]
        );
        assert_eq!(
            needs(&["copy", "a", "b"]),
            vec![(1, rules::READ), (2, rules::WRITE)]
        );
        assert_eq!(
            needs(&["sort", "a", "store", "d"]),
            vec![(1, rules::READ), (3, rules::WRITE)]
        );
        assert_eq!(needs(&["xinfo", "stream", "s"]), vec![(2, rules::READ)]);
    }

    #[test]
    fn hostile_keynum_is_bounded() {
        // A key count beyond the arguments names no key at all, as in Redis: the
        // command then fails on its own count check, not on a key permission.
        assert_eq!(needs(&["eval", "s", "99999999999", "k1"]), vec![]);
        assert_eq!(needs(&["eval", "s", "1", "k1"]).len(), 1);
    }
}
