//! The ACL check the dispatch runs for every command (client requests, queued
//! commands at EXEC, scripts' calls), with its NOPERM texts and ACL LOG entries,
//! and authentication for AUTH / HELLO AUTH.

use super::super::meta_types::{self, Begin, Find, Meta};
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

    /// The key positions `keys_of` finds in `words`.
    fn positions(words: &[&str]) -> Vec<usize> {
        let argv = b(words);
        let cmd = super::super::super::lookup(argv[0].as_ref()).expect("command");
        let m = command_meta(cmd, &argv).expect("meta");
        keys_of(cmd, m, &argv).iter().map(|k| k.0).collect()
    }

    fn b(s: &[&str]) -> Vec<Bytes> {
        s.iter().map(|x| Bytes::from(x.to_string())).collect()
    }

    #[test]
    fn key_specs_give_positions_and_needs() {
        let set = super::super::super::lookup(b"set").expect("set");
        let m = command_meta(set, &b(&["set", "k", "v"])).expect("meta");
        assert_eq!(
            keys_of(set, m, &b(&["set", "k", "v"])),
            vec![(1, rules::WRITE)]
        );
        let copy = super::super::super::lookup(b"copy").expect("copy");
        let argv = b(&["copy", "a", "b"]);
        let m = command_meta(copy, &argv).expect("meta");
        assert_eq!(
            keys_of(copy, m, &argv),
            vec![(1, rules::READ), (2, rules::WRITE)]
        );
        assert_eq!(positions(&["mset", "a", "1", "b", "2"]), vec![1, 3]);
        assert_eq!(positions(&["eval", "s", "2", "k1", "k2", "a"]), vec![3, 4]);
    }

    #[test]
    fn hostile_keynum_is_bounded() {
        let eval = super::super::super::lookup(b"eval").expect("eval");
        let argv = b(&["eval", "s", "99999999999", "k1"]);
        let m = command_meta(eval, &argv).expect("meta");
        assert_eq!(keys_of(eval, m, &argv).len(), 1);
    }
}
