//! Command family: connection (PING, ECHO, QUIT, AUTH, HELLO, SELECT, RESET, CLIENT).
//!
//! Authentication is against the ACL users (`commands::acl::authenticate`): `AUTH
//! <pass>` is `AUTH default <pass>`, refused when the default user has `nopass`.

use super::{
    arg_i64, err, flags::*, is_kw, Action, ClientState, CmdError, CmdResult, Command, Ctx,
};
use crate::pause::PauseMode;
use crate::resp::Reply;
use crate::server::Server;
use crate::server::{ClientHandle, ClientInfo};
use bytes::Bytes;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

pub const COMMANDS: &[Command] = &[
    Command::new("ping", -1, FAST | SUBSCRIBED, ping),
    Command::new("echo", 2, FAST | LOADING | STALE, echo),
    Command::new(
        "quit",
        -1,
        NO_SCRIPT | NO_AUTH | LOADING | STALE | SUBSCRIBED | NO_MULTI | FAST,
        quit,
    ),
    Command::new(
        "auth",
        -2,
        NO_SCRIPT | NO_AUTH | FAST | LOADING | STALE,
        auth,
    ),
    Command::new(
        "hello",
        -1,
        NO_SCRIPT | NO_AUTH | FAST | LOADING | STALE,
        hello,
    ),
    Command::new("select", 2, LOADING | STALE | FAST, select),
    Command::new(
        "reset",
        1,
        NO_SCRIPT | NO_AUTH | FAST | LOADING | STALE | SUBSCRIBED | NO_MULTI,
        reset,
    ),
    Command::new("client", -2, NO_SCRIPT | LOADING | STALE, client),
];

pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

fn ping(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 2 {
        return Err(super::CmdError::msg(
            "ERR wrong number of arguments for 'ping' command",
        ));
    }
    if ctx.client.subscriptions() > 0 && !ctx.client.resp3 {
        out.array(2);
        out.bulk(b"pong");
        out.bulk(argv.get(1).map_or(&b""[..], |a| &a[..]));
        return Ok(());
    }
    match argv.get(1) {
        Some(m) => out.bulk(m),
        None => out.simple("PONG"),
    }
    Ok(())
}

fn echo(_ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    out.bulk(&argv[1]);
    Ok(())
}

fn quit(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    out.ok();
    ctx.action = Some(super::Action::Close);
    Ok(())
}

fn auth(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    auth_client(ctx.client, ctx.server, out, argv)
}

/// AUTH for `client` (also served while a script is busy: it needs no store).
pub(crate) fn auth_client(
    client: &mut ClientState,
    server: &Server,
    out: &mut Reply,
    argv: &[Bytes],
) -> CmdResult {
    if argv.len() > 3 {
        return Err(err::SYNTAX);
    }
    let (user, pass): (&[u8], &[u8]) = if argv.len() == 2 {
        if !super::acl::default_has_password(server) {
            return Err(CmdError::msg(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ));
        }
        (b"default", &argv[1])
    } else {
        (&argv[1], &argv[2])
    };
    super::acl::authenticate(server, client, user, pass, &argv[0])?;
    out.ok();
    Ok(())
}

fn hello(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let is_replica = ctx.store.is_replica;
    hello_client(ctx.client, ctx.server, is_replica, out, argv)?;
    // Invalidation messages follow the protocol the client now speaks.
    ctx.store
        .tracking
        .set_resp3(ctx.client.id, ctx.client.resp3);
    Ok(())
}

/// HELLO for `client`; `is_replica` gives the `role` field (also served while a
/// script is busy: it needs no store).
pub(crate) fn hello_client(
    client: &mut ClientState,
    server: &Server,
    is_replica: bool,
    out: &mut Reply,
    argv: &[Bytes],
) -> CmdResult {
    let mut ver = if client.resp3 { 3 } else { 2 };
    let mut creds: Option<(&Bytes, &Bytes)> = None;
    let mut setname: Option<&Bytes> = None;
    if argv.len() >= 2 {
        ver = match crate::resp::parse_i64(&argv[1]) {
            Some(v) => v,
            None => {
                return Err(CmdError::msg(
                    "ERR Protocol version is not an integer or out of range",
                ))
            }
        };
        let mut j = 2;
        while j < argv.len() {
            let more = argv.len() - j - 1;
            if is_kw(&argv[j], "auth") && more >= 2 {
                creds = Some((&argv[j + 1], &argv[j + 2]));
                j += 3;
            } else if is_kw(&argv[j], "setname") && more >= 1 {
                validate_name(&argv[j + 1])?;
                setname = Some(&argv[j + 1]);
                j += 2;
            } else {
                return Err(CmdError(
                    format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(&argv[j])
                    )
                    .into(),
                ));
            }
        }
        if !(2..=3).contains(&ver) {
            return Err(CmdError::msg("NOPROTO unsupported protocol version"));
        }
    }
    if let Some((user, pass)) = creds {
        super::acl::authenticate(server, client, user, pass, &argv[0])?;
    }
    if !client.authenticated {
        return Err(CmdError::msg(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(name) = setname {
        client.name = if name.is_empty() {
            None
        } else {
            Some(name.clone())
        };
    }
    client.resp3 = ver == 3;
    out.resp3 = client.resp3;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(crate::REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(ver);
    out.bulk(b"id");
    out.int(client.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(if is_replica { b"replica" } else { b"master" });
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}

fn select(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let n = arg_i64(&argv[1])?;
    if n < 0 || n as usize >= ctx.store.dbs.len() {
        return Err(err::DB_INDEX);
    }
    ctx.client.db = n as usize;
    out.ok();
    Ok(())
}

/// RESET: back to a fresh connection's state (Redis `clearClientConnectionState`).
fn reset(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    let left = reset_client(ctx.client, ctx.server, out);
    left.release(ctx.store);
    Ok(())
}

/// What RESET takes from a client that the store still refers to: its WATCHed keys
/// and subscriptions, released by [`ResetLeftovers::release`] with the store (while
/// a script is busy, once it ends).
pub(crate) struct ResetLeftovers {
    id: crate::server::ClientId,
    watched: Vec<(usize, Bytes)>,
    channels: Vec<Bytes>,
    shard_channels: Vec<Bytes>,
    patterns: Vec<Bytes>,
}

/// RESET's effect on the client itself (Redis `clearClientConnectionState`) and its
/// reply; the store's side is left in the returned value.
pub(crate) fn reset_client(
    client: &mut ClientState,
    server: &crate::server::Server,
    out: &mut Reply,
) -> ResetLeftovers {
    let id = client.id;
    client.multi = None;
    client.multi_error = false;
    // A fresh flag: writes to the old keys before they are released must not count.
    client.watch_dirty = Arc::new(std::sync::atomic::AtomicBool::new(false));
    server.set_monitor(id, None);
    client.db = 0;
    client.resp3 = false;
    client.name = None;
    client.reply_off = false;
    client.reply_skip_next = false;
    client.no_evict = false;
    client.authenticated = server.acl.default_needs_no_auth();
    super::acl::set_user(server, client, "default");
    out.resp3 = false;
    out.simple("RESET");
    ResetLeftovers {
        id,
        watched: std::mem::take(&mut client.watched),
        channels: std::mem::take(&mut client.channels),
        shard_channels: std::mem::take(&mut client.shard_channels),
        patterns: std::mem::take(&mut client.patterns),
    }
}

impl ResetLeftovers {
    pub(crate) fn release(self, store: &mut crate::server::Store) {
        let id = self.id;
        store.unwatch_all(id, &self.watched);
        store.tracking.disable(id);
        for ch in self.channels {
            if let Some(m) = store.pubsub.channels.get_mut(&ch) {
                m.remove(&id);
                if m.is_empty() {
                    store.pubsub.channels.remove(&ch);
                }
            }
        }
        for ch in self.shard_channels {
            store.pubsub.sunsubscribe(&ch, id);
        }
        for p in self.patterns {
            if let Some(m) = store.pubsub.patterns.get_mut(&p) {
                m.remove(&id);
                if m.is_empty() {
                    store.pubsub.patterns.remove(&p);
                }
            }
        }
    }
}

/// Redis allows only printable ASCII without spaces in client names.
fn validate_name(name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::msg(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn sub_arity_error(cmd: &str, sub: &str) -> CmdError {
    CmdError(format!("ERR wrong number of arguments for '{cmd}|{sub}' command").into())
}

pub fn unknown_subcommand(sub: &[u8], cmd: &str) -> CmdError {
    let s = super::c_string(sub, 128);
    CmdError(format!("ERR unknown subcommand '{s}'. Try {cmd} HELP.").into())
}

/// Writes a HELP reply: a title line and indented lines, as simple strings.
pub fn help_reply(out: &mut Reply, cmd: &str, lines: &[&str]) {
    out.array(lines.len() + 1);
    out.simple(&format!(
        "{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for l in lines {
        out.simple(l);
    }
}

/// Checks a subcommand's arity (Redis arity convention: N exact, -N at least).
fn arity(argv: &[Bytes], n: i32, sub: &str) -> CmdResult {
    let ok = if n >= 0 {
        argv.len() == n as usize
    } else {
        argv.len() >= (-n) as usize
    };
    if ok {
        Ok(())
    } else {
        Err(sub_arity_error("client", sub))
    }
}

const CLIENT_HELP: &[&str] = &[
    "GETNAME",
    "    Return the name of this connection.",
    "ID",
    "    Return the id of this connection.",
    "INFO",
    "    Return facts about this connection, in the CLIENT LIST line format.",
    "KILL <ip:port>",
    "    Close the connection coming from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Close connections matching every given filter:",
    "    * ID <client-id>",
    "    * ADDR <ip:port>",
    "    * LADDR <ip:port> (the local address the client connected to)",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "    * USER <username>",
    "    * SKIPME (YES|NO) (whether to spare the calling connection, default yes)",
    "LIST [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID <client-id> [<client-id> ...]]",
    "    List the connections, one line each.",
    "UNPAUSE",
    "    End a client pause.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Hold back all commands, or only writes, from normal clients for <timeout> ms.",
    "REPLY (ON|OFF|SKIP)",
    "    Turn replies for this connection on, off, or off for the next command.",
    "SETNAME <name>",
    "    Name this connection.",
    "SETINFO (LIB-NAME|LIB-VER) <value>",
    "    Record the client library's name or version.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Release a client blocked in BLPOP and similar commands.",
    "NO-EVICT (ON|OFF)",
    "    Exempt this connection from client eviction.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Client-side caching: get invalidation messages for the keys this connection reads.",
    "CACHING (YES|NO)",
    "    With OPTIN (YES) or OPTOUT (NO): whether the next command's keys are tracked.",
    "TRACKINGINFO",
    "    This connection's tracking mode, redirect and prefixes.",
    "GETREDIR",
    "    Tracking redirection id (0 without one, -1 when tracking is off).",
    "HELP",
    "    Print this help.",
];

fn client(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = argv[1].to_ascii_lowercase();
    match &sub[..] {
        b"id" => {
            arity(argv, 2, "id")?;
            out.int(ctx.client.id as i64);
        }
        b"getname" => {
            arity(argv, 2, "getname")?;
            out.opt_bulk(ctx.client.name.as_deref());
        }
        b"setname" => {
            arity(argv, 3, "setname")?;
            validate_name(&argv[2])?;
            ctx.client.name = if argv[2].is_empty() {
                None
            } else {
                Some(crate::util::detach(&argv[2]))
            };
            out.ok();
        }
        b"list" => {
            arity(argv, -2, "list")?;
            client_list(ctx, out, argv)?;
        }
        b"info" => {
            arity(argv, 2, "info")?;
            let line = own_line(ctx, "client|info");
            out.verbatim(&line);
        }
        b"kill" => {
            arity(argv, -3, "kill")?;
            client_kill(ctx, out, argv)?;
        }
        b"no-evict" => {
            arity(argv, 3, "no-evict")?;
            if is_kw(&argv[2], "on") {
                ctx.client.no_evict = true;
            } else if is_kw(&argv[2], "off") {
                ctx.client.no_evict = false;
            } else {
                return Err(err::SYNTAX);
            }
            out.ok();
        }
        b"reply" => {
            arity(argv, 3, "reply")?;
            if is_kw(&argv[2], "on") {
                // As Redis: ON also ends the skip it runs under, so its +OK goes out.
                ctx.client.reply_off = false;
                ctx.client.reply_skip = false;
                out.ok();
            } else if is_kw(&argv[2], "off") {
                ctx.client.reply_off = true;
            } else if is_kw(&argv[2], "skip") {
                if !ctx.client.reply_off {
                    ctx.client.reply_skip_next = true;
                }
            } else {
                return Err(err::SYNTAX);
            }
        }
        b"pause" => {
            arity(argv, -3, "pause")?;
            let t = crate::resp::parse_i64(&argv[2]).ok_or(CmdError::msg(
                "ERR timeout is not an integer or out of range",
            ))?;
            if t < 0 {
                return Err(CmdError::msg("ERR timeout is negative"));
            }
            if argv.len() > 4 {
                return Err(err::SYNTAX);
            }
            let mode = match argv.get(3) {
                None => PauseMode::All,
                Some(m) if is_kw(m, "all") => PauseMode::All,
                Some(m) if is_kw(m, "write") => PauseMode::Write,
                Some(_) => return Err(CmdError::msg("ERR CLIENT PAUSE mode must be WRITE or ALL")),
            };
            ctx.server
                .client_pause
                .pause(std::time::Duration::from_millis(t as u64), mode);
            out.ok();
        }
        b"unpause" => {
            arity(argv, 2, "unpause")?;
            ctx.server.client_pause.unpause();
            out.ok();
        }
        b"setinfo" => {
            arity(argv, 4, "setinfo")?;
            let attr = if is_kw(&argv[2], "lib-name") {
                "lib-name"
            } else if is_kw(&argv[2], "lib-ver") {
                "lib-ver"
            } else {
                return Err(CmdError(
                    format!(
                        "ERR Unrecognized option '{}'",
                        String::from_utf8_lossy(&argv[2])
                    )
                    .into(),
                ));
            };
            if argv[3].iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
                return Err(CmdError(
                    format!("ERR {attr} cannot contain spaces, newlines or special characters.")
                        .into(),
                ));
            }
            let v = if argv[3].is_empty() {
                None
            } else {
                Some(String::from_utf8_lossy(&argv[3]).into_owned())
            };
            if attr == "lib-name" {
                ctx.client.lib_name = v;
            } else {
                ctx.client.lib_ver = v;
            }
            out.ok();
        }
        b"unblock" => {
            arity(argv, -3, "unblock")?;
            client_unblock(ctx, out, argv)?;
        }
        b"help" => {
            arity(argv, 2, "help")?;
            help_reply(out, "CLIENT", CLIENT_HELP);
        }
        _ => return client_caching(ctx, out, argv, &sub),
    }
    Ok(())
}

/// The client-side caching subcommands of CLIENT (and unknown ones).
fn client_caching(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], sub: &[u8]) -> CmdResult {
    match sub {
        b"getredir" => {
            arity(argv, 2, "getredir")?;
            out.int(ctx.store.tracking.getredir(ctx.client.id));
        }
        b"tracking" => {
            arity(argv, -3, "tracking")?;
            client_tracking(ctx, out, argv)?;
        }
        b"caching" => {
            arity(argv, 3, "caching")?;
            let id = ctx.client.id;
            ctx.store
                .tracking
                .caching(id, &argv[2])
                .map_err(|e| CmdError(e.to_string().into()))?;
            out.ok();
        }
        b"trackinginfo" => {
            arity(argv, 2, "trackinginfo")?;
            let info = ctx.store.tracking.info(ctx.client.id);
            out.map(3);
            out.bulk(b"flags");
            out.set(info.flags.len());
            for f in info.flags {
                out.bulk_str(f);
            }
            out.bulk(b"redirect");
            out.int(info.redirect);
            out.bulk(b"prefixes");
            out.array(info.prefixes.len());
            for p in &info.prefixes {
                out.bulk(p);
            }
        }
        _ => return Err(unknown_subcommand(&argv[1], "CLIENT")),
    }
    Ok(())
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p]... [BCAST] [OPTIN] [OPTOUT] [NOLOOP].
fn client_tracking(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let to_err = |e: crate::tracking::TrackingError| CmdError(e.to_string().into());
    let req = {
        let clients = ctx.clients();
        crate::tracking::parse(&argv[2..], |id| clients.contains_key(&id)).map_err(to_err)?
    };
    let sender = |h: &Arc<ClientHandle>| {
        h.msg_tx
            .get()
            .map(|tx| crate::pubsub::MsgSender::new(tx.clone(), h.clone()))
    };
    let redirect_tx = req
        .redirect
        .and_then(|id| ctx.clients().get(&id).cloned())
        .and_then(|h| sender(&h));
    let own_tx = ctx.client.msg_tx.clone();
    let (id, resp3) = (ctx.client.id, ctx.client.resp3);
    ctx.store
        .tracking
        .apply(id, req, resp3, own_tx, redirect_tx)
        .map_err(to_err)?;
    out.ok();
    Ok(())
}

/// The command name CLIENT LIST shows in `cmd=`: lower case, with the subcommand
/// for container commands (`client|list`, `config|get`), as Redis 7.0 does.
pub fn cmd_display_name(name: &[u8], sub: Option<&[u8]>) -> String {
    let mut out = String::new();
    write_cmd_display_name(name, sub, &mut out);
    out
}

/// Commands whose `cmd=` in CLIENT LIST names the subcommand too (`config|get`).
const CONTAINERS: &[&str] = &[
    "client", "config", "command", "slowlog", "object", "memory", "pubsub", "script", "function",
    "acl", "cluster", "latency", "module", "xinfo",
];

/// Whether `name` (any case) is a command whose display name includes its
/// subcommand: for other commands the first argument is not worth keeping.
pub fn names_subcommand(name: &[u8]) -> bool {
    CONTAINERS
        .iter()
        .any(|c| c.as_bytes().eq_ignore_ascii_case(name))
}

/// [`cmd_display_name`] into `out` (replacing its contents), reusing its allocation:
/// the connection layer records it after every batch of commands.
pub fn write_cmd_display_name(name: &[u8], sub: Option<&[u8]>, out: &mut String) {
    out.clear();
    // `lookup` ignores case; a name that is not UTF-8 is no command.
    let Some(cmd) = super::lookup(name) else {
        out.push_str("NULL");
        return;
    };
    out.push_str(cmd.name);
    if let Some(sub) = sub.filter(|_| CONTAINERS.contains(&cmd.name)) {
        out.push('|');
        out.push_str(&String::from_utf8_lossy(sub).to_ascii_lowercase());
    }
}

/// The client types CLIENT LIST/KILL filter on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ClientType {
    Normal,
    Master,
    Replica,
    PubSub,
}

fn parse_type(a: &[u8]) -> Result<ClientType, CmdError> {
    let t = a.to_ascii_lowercase();
    Ok(match &t[..] {
        b"normal" => ClientType::Normal,
        b"master" => ClientType::Master,
        b"replica" | b"slave" => ClientType::Replica,
        b"pubsub" => ClientType::PubSub,
        _ => {
            return Err(CmdError(
                format!("ERR Unknown client type '{}'", String::from_utf8_lossy(a)).into(),
            ))
        }
    })
}

fn type_of(info: &ClientInfo) -> ClientType {
    if info.flags.contains('M') {
        ClientType::Master
    } else if info.flags.contains('S') {
        ClientType::Replica
    } else if info.sub + info.psub > 0 {
        ClientType::PubSub
    } else {
        ClientType::Normal
    }
}

/// The calling client's facts, fresher than its registry entry (which the
/// connection updates after each batch).
fn own_info(ctx: &Ctx, cmd: &str) -> Option<(Arc<ClientHandle>, ClientInfo)> {
    let h = ctx.clients().get(&ctx.client.id).cloned()?;
    let mut info = h.info.lock().clone();
    let c = &ctx.client;
    info.db = c.db;
    info.name = c.name.clone();
    info.sub = c.channels.len();
    info.psub = c.patterns.len();
    info.ssub = c.shard_channels.len();
    info.multi = c.multi.as_ref().map_or(-1, |q| q.len() as i64);
    info.resp = if c.resp3 { 3 } else { 2 };
    info.lib_name = c.lib_name.clone();
    info.lib_ver = c.lib_ver.clone();
    info.last_cmd = cmd.to_string();
    info.qbuf = c.query_buf_len;
    info.last_interaction = Some(crate::util::Mono::now());
    if c.is_master && !info.flags.contains('M') {
        info.flags.push('M');
    }
    if c.is_replica && !info.flags.contains('S') {
        info.flags.push('S');
    }
    Some((h, info))
}

fn own_line(ctx: &Ctx, cmd: &str) -> String {
    match own_info(ctx, cmd) {
        Some((h, mut info)) => {
            with_tracking(ctx, h.id, &mut info);
            client_line(&h, &info)
        }
        None => String::new(),
    }
}

/// Fills in the CLIENT LIST facts kept in the store rather than by the connection:
/// CLIENT TRACKING flags and redirect, and whether the client is blocked.
fn with_tracking(ctx: &Ctx, id: u64, info: &mut ClientInfo) {
    let (flags, redir) = ctx.store.tracking.list_fields(id);
    info.tracking_flags = flags;
    info.redir = Some(redir);
    info.blocked = ctx.store.waiters.contains_key(&id) || info.waiting_pause;
}

/// One CLIENT LIST line in Redis 7.0's field order (ends with `\n`).
///
/// Buffer and memory figures are Tandem's own approximations; `fd` is not exposed by
/// the runtime and is reported as a stable per-connection number.
pub fn client_line(h: &ClientHandle, info: &ClientInfo) -> String {
    let now = Instant::now();
    let age = now.duration_since(h.created).as_secs();
    let idle = info.last_interaction.map_or(age, |t| t.elapsed().as_secs());
    let mut flags = String::new();
    for f in info.flags.chars() {
        if f != 'N' && !flags.contains(f) {
            flags.push(f);
        }
    }
    if info.sub + info.psub > 0 && !flags.contains('P') {
        flags.push('P');
    }
    if info.multi >= 0 && !flags.contains('x') {
        flags.push('x');
    }
    if info.blocked && !flags.contains('b') {
        flags.push('b');
    }
    flags.push_str(&info.tracking_flags);
    if flags.is_empty() {
        flags.push('N');
    }
    let name = info
        .name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    let cmd = if info.last_cmd.is_empty() {
        "NULL"
    } else {
        info.last_cmd.as_str()
    };
    let user = if info.user.is_empty() {
        "default"
    } else {
        info.user.as_str()
    };
    let qbuf_free = 20474usize.saturating_sub(info.qbuf);
    let mut s = String::with_capacity(300);
    let _ = write!(
        s,
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user={} redir={} resp={}",
        h.id,
        h.addr,
        h.laddr,
        h.id + 7,
        name,
        age,
        idle,
        flags,
        info.db,
        info.sub,
        info.psub,
        info.ssub,
        info.multi,
        info.qbuf,
        qbuf_free,
        info.omem,
        22_000 + info.qbuf + info.omem,
        cmd,
        user,
        info.redir.unwrap_or(-1),
        info.resp,
    );
    s.push('\n');
    s
}

fn client_list(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let mut type_filter = None;
    let mut ids: Option<Vec<u64>> = None;
    if argv.len() == 4 && is_kw(&argv[2], "type") {
        type_filter = Some(parse_type(&argv[3])?);
    } else if argv.len() >= 4 && is_kw(&argv[2], "id") {
        let mut v = Vec::new();
        for a in &argv[3..] {
            match crate::resp::parse_i64(a) {
                Some(n) if n > 0 => v.push(n as u64),
                _ => return Err(CmdError::msg("ERR Invalid client ID")),
            }
        }
        ids = Some(v);
    } else if argv.len() != 2 {
        return Err(err::SYNTAX);
    }
    let own = own_info(ctx, "client|list");
    let mut handles: Vec<Arc<ClientHandle>> = ctx.clients().values().cloned().collect();
    handles.sort_by_key(|h| h.id);
    let mut text = String::new();
    for h in handles {
        if let Some(ids) = &ids {
            if !ids.contains(&h.id) {
                continue;
            }
        }
        let mut info = match &own {
            Some((oh, oi)) if oh.id == h.id => oi.clone(),
            _ => h.info.lock().clone(),
        };
        with_tracking(ctx, h.id, &mut info);
        if let Some(t) = type_filter {
            if type_of(&info) != t {
                continue;
            }
        }
        text.push_str(&client_line(&h, &info));
    }
    out.verbatim(&text);
    Ok(())
}

fn client_kill(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let me = ctx.client.id;
    if argv.len() == 3 {
        // Old form: CLIENT KILL addr:port. Kills the caller too if it matches.
        let addr = String::from_utf8_lossy(&argv[2]).into_owned();
        let target = ctx
            .server
            .clients
            .lock()
            .values()
            .find(|h| h.addr == addr)
            .cloned();
        let Some(h) = target else {
            return Err(CmdError::msg("ERR No such client"));
        };
        if h.id == me {
            ctx.action = Some(Action::Close);
        } else {
            h.kill();
        }
        out.ok();
        return Ok(());
    }
    let mut id: Option<u64> = None;
    let mut addr: Option<String> = None;
    let mut laddr: Option<String> = None;
    let mut ctype: Option<ClientType> = None;
    let mut user: Option<String> = None;
    let mut skipme = true;
    let mut i = 2;
    while i < argv.len() {
        let Some(val) = argv.get(i + 1) else {
            return Err(err::SYNTAX);
        };
        let opt = argv[i].to_ascii_lowercase();
        match &opt[..] {
            b"id" => match crate::resp::parse_i64(val) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => return Err(CmdError::msg("ERR client-id should be greater than 0")),
            },
            b"type" => ctype = Some(parse_type(val)?),
            b"addr" => addr = Some(String::from_utf8_lossy(val).into_owned()),
            b"laddr" => laddr = Some(String::from_utf8_lossy(val).into_owned()),
            b"user" => {
                let name = String::from_utf8_lossy(val).into_owned();
                if ctx.server.acl.read().user(&name).is_none() {
                    return Err(CmdError(format!("ERR No such user '{name}'").into()));
                }
                user = Some(name);
            }
            b"skipme" => {
                if is_kw(val, "yes") {
                    skipme = true;
                } else if is_kw(val, "no") {
                    skipme = false;
                } else {
                    return Err(err::SYNTAX);
                }
            }
            _ => return Err(err::SYNTAX),
        }
        i += 2;
    }
    let own = own_info(ctx, "client|kill");
    let handles: Vec<Arc<ClientHandle>> = ctx.clients().values().cloned().collect();
    let mut killed = 0;
    for h in handles {
        if id.is_some_and(|x| x != h.id)
            || addr.as_ref().is_some_and(|a| *a != h.addr)
            || laddr.as_ref().is_some_and(|a| *a != h.laddr)
            || user.as_ref().is_some_and(|u| *u != h.info.lock().user)
        {
            continue;
        }
        if let Some(t) = ctype {
            let info = match &own {
                Some((oh, oi)) if oh.id == h.id => oi.clone(),
                _ => h.info.lock().clone(),
            };
            if type_of(&info) != t {
                continue;
            }
        }
        if h.id == me {
            if skipme {
                continue;
            }
            ctx.action = Some(Action::Close);
        } else {
            h.kill();
        }
        killed += 1;
    }
    out.int(killed);
    Ok(())
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: answers a blocked client as if its timeout
/// fired, or with an UNBLOCKED error.
fn client_unblock(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let id = arg_i64(&argv[2])?;
    let as_error = match argv.get(3) {
        None => false,
        Some(m) if is_kw(m, "timeout") => false,
        Some(m) if is_kw(m, "error") => true,
        Some(_) => {
            return Err(CmdError::msg(
                "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
            ))
        }
    };
    if argv.len() > 4 {
        return Err(err::SYNTAX);
    }
    let Some(w) = ctx.store.unblock(id as u64) else {
        out.int(0);
        return Ok(());
    };
    let mut r = Reply::new(w.resp3);
    if as_error {
        r.error("UNBLOCKED client unblocked via CLIENT UNBLOCK");
    } else if w
        .argv
        .first()
        .is_some_and(|c| is_kw(c, "blmove") || is_kw(c, "brpoplpush"))
    {
        r.null();
    } else {
        r.null_array();
    }
    // Redis counts the unblocked command as failed whichever way it is unblocked
    // (`updateStatsOnUnblock` with errors set); only the ERROR form is an error reply.
    let target = (id as u64, &w.argv[..]);
    crate::exec::observe_unblocked(ctx.server, ctx.store, target, 0, (true, &r.buf));
    let _ = w.tx.send(r.buf);
    out.int(1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_must_be_printable_without_spaces() {
        assert!(validate_name(b"worker-1").is_ok());
        assert!(validate_name(b"").is_ok());
        assert!(validate_name(b"a b").is_err());
        assert!(validate_name(b"a\nb").is_err());
        assert!(validate_name(b"\x7f").is_err());
    }

    #[test]
    fn client_list_shows_subcommands_of_container_commands() {
        assert_eq!(cmd_display_name(b"CLIENT", Some(b"LIST")), "client|list");
        assert_eq!(cmd_display_name(b"get", Some(b"k")), "get");
        assert_eq!(cmd_display_name(b"PING", None), "ping");
        assert_eq!(cmd_display_name(b"nosuch", None), "NULL");
    }

    #[test]
    fn client_line_flags() {
        let h = ClientHandle::new(
            5,
            "127.0.0.1:1000".into(),
            "127.0.0.1:6379".into(),
            ClientInfo::default(),
        );
        let mut info = ClientInfo {
            multi: -1,
            resp: 2,
            ..Default::default()
        };
        let line = client_line(&h, &info);
        assert!(line.starts_with("id=5 addr=127.0.0.1:1000 laddr=127.0.0.1:6379 "));
        assert!(line.contains(" flags=N "), "{line}");
        assert!(
            line.contains(" cmd=NULL user=default redir=-1 resp=2\n"),
            "{line}"
        );
        info.sub = 1;
        info.multi = 2;
        let line = client_line(&h, &info);
        assert!(line.contains(" flags=Px "), "{line}");
    }
}
