//! Command layer: what a connection answers while a script is busy (past
//! `busy-reply-threshold`, holding the store). Redis 7.0 still runs the checks that
//! come before its busy check (lookup, arity, AUTH, MULTI rules, the Pub/Sub
//! context), then serves the commands flagged `allow-busy` in its command table
//! (AUTH, HELLO, MULTI, DISCARD, WATCH, UNWATCH, RESET, REPLCONF, QUIT, SCRIPT KILL,
//! FUNCTION KILL|STATS, SHUTDOWN NOSAVE) and refuses the rest with `-BUSY`.
//!
//! None of these may take the store: what they change in it (WATCH registrations,
//! the keys and channels UNWATCH, DISCARD or RESET release) is deferred
//! ([`crate::scripting::Busy::defer`]) and applied when the script ends, before any
//! other command runs. A WATCH made while a busy script runs registers then; as the
//! script's writes after the WATCH are not known key by key, a script that wrote
//! makes the transaction fail (EXEC answers nil), never succeed wrongly.

use super::{flags, meta_types, ClientState, Command};
use crate::resp::Reply;
use crate::scripting::busy::{self, Deferred, KillOutcome};
use crate::server::{Server, Stats};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What the connection does after a command was answered while busy.
#[derive(Debug)]
pub enum WhileBusy {
    Done,
    /// QUIT: close the connection.
    Close,
    /// SHUTDOWN NOSAVE: exit now (the store cannot be had for an orderly shutdown).
    Exit,
}

/// Answers one request while a script is busy.
pub fn answer(
    server: &Arc<Server>,
    client: &mut ClientState,
    argv: Vec<Bytes>,
    out: &mut Reply,
) -> WhileBusy {
    let Some(cmd) = client.cmd_cache.lookup(&argv[0]) else {
        reject(server, client, out, &crate::exec::unknown_command(&argv));
        return WhileBusy::Done;
    };
    if let Some(msg) = refusal(server, cmd, client, &argv) {
        if cmd.name == "exec" && client.multi.is_some() {
            abort_exec(server, client, out, &msg);
        } else {
            reject(server, client, out, &msg);
        }
        return WhileBusy::Done;
    }
    let busy = &server.script_busy;
    if !allowed(cmd, &argv) {
        if cmd.name == "exec" {
            // Redis answers EXEC this way even outside MULTI.
            abort_exec(server, client, out, busy.busy_error());
        } else {
            reject(server, client, out, busy.busy_error());
        }
        return WhileBusy::Done;
    }
    if client.multi.is_some() && !cmd.is(flags::NO_MULTI) {
        if let Some(q) = client.multi.as_mut() {
            q.push(argv.iter().map(crate::util::detach).collect());
        }
        out.simple("QUEUED");
        return WhileBusy::Done;
    }
    // Counted as it runs, as Redis counts (a BUSY refusal or a queued command is not).
    Stats::incr(&server.stats.total_commands_processed, 1);
    match serve(server, client, cmd, &argv, out) {
        Ok(next) => next,
        Err(e) => {
            server.stats.error_reply(e.0.as_bytes());
            out.error(&e.0);
            WhileBusy::Done
        }
    }
}

/// The checks Redis makes before its busy check, in its order.
fn refusal(
    server: &Server,
    cmd: &Command,
    client: &mut ClientState,
    argv: &[Bytes],
) -> Option<String> {
    if !cmd.arity_ok(argv.len()) {
        return Some(format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.name
        ));
    }
    if let Some(msg) = crate::exec::sub_arity_refusal(cmd, argv) {
        return Some(msg);
    }
    if !client.authenticated && !cmd.is(flags::NO_AUTH) {
        return Some("NOAUTH Authentication required.".to_string());
    }
    if let Err(r) = crate::exec::acl_check(server, client, cmd, argv) {
        return Some(super::acl::noperm_text(&r));
    }
    crate::exec::refused_in_multi(client, cmd)
        .or_else(|| crate::exec::subscribed_refusal(client, cmd, argv))
}

/// Whether the command (or its subcommand) is flagged `allow-busy` in Redis's table.
fn allowed(cmd: &Command, argv: &[Bytes]) -> bool {
    let Some(meta) = meta_types::meta(cmd.name) else {
        return false;
    };
    if meta.subs.is_empty() {
        return meta.has_flag("allow_busy");
    }
    argv.get(1)
        .and_then(|s| meta.sub(s))
        .is_some_and(|m| m.has_flag("allow_busy"))
}

fn reject(server: &Server, client: &mut ClientState, out: &mut Reply, msg: &str) {
    if client.multi.is_some() {
        client.multi_error = true;
    }
    server.stats.error_reply(msg.as_bytes());
    out.error(msg);
}

/// A refused EXEC discards the transaction (Redis `execCommandAbort`).
fn abort_exec(server: &Arc<Server>, client: &mut ClientState, out: &mut Reply, msg: &str) {
    client.multi = None;
    client.multi_error = false;
    unwatch_later(server, client);
    let text = format!(
        "EXECABORT Transaction discarded because of: {}",
        msg.strip_prefix("ERR ").unwrap_or(msg)
    );
    server.stats.error_reply(text.as_bytes());
    out.error(&text);
}

/// Runs an allowed command.
fn serve(
    server: &Arc<Server>,
    client: &mut ClientState,
    cmd: &Command,
    argv: &[Bytes],
    out: &mut Reply,
) -> Result<WhileBusy, super::CmdError> {
    let busy = &server.script_busy;
    match cmd.name {
        "auth" => super::connection::auth_client(client, server, out, argv)?,
        "hello" => {
            super::connection::hello_client(client, server, busy.is_replica(), out, argv)?;
            let (id, resp3) = (client.id, client.resp3);
            defer_or_run(
                server,
                Box::new(move |store| store.tracking.set_resp3(id, resp3)),
            );
        }
        "multi" => {
            if client.multi.is_some() {
                return Err(super::CmdError::msg("ERR MULTI calls can not be nested"));
            }
            client.multi = Some(Vec::new());
            client.multi_error = false;
            out.ok();
        }
        "discard" => {
            if client.multi.is_none() {
                return Err(super::CmdError::msg("ERR DISCARD without MULTI"));
            }
            client.multi = None;
            client.multi_error = false;
            unwatch_later(server, client);
            out.ok();
        }
        "watch" => watch(server, client, &argv[1..], out)?,
        "unwatch" => {
            unwatch_later(server, client);
            out.ok();
        }
        "reset" => {
            let left = super::connection::reset_client(client, server, out);
            defer_or_run(server, Box::new(move |store| left.release(store)));
        }
        "replconf" => crate::replication::primary::replconf_client(client, out, argv)?,
        "quit" => {
            out.ok();
            return Ok(WhileBusy::Close);
        }
        "shutdown" => return shutdown(server, argv, out),
        "script" | "function" => script_or_function(server, cmd.name == "script", argv, out),
        _ => {
            server.stats.error_reply(busy.busy_error().as_bytes());
            out.error(busy.busy_error());
        }
    }
    Ok(WhileBusy::Done)
}

/// Leaves `job` for the end of the script; if the script ended meanwhile, runs it now
/// (the store is then about to be released).
fn defer_or_run(server: &Server, job: Deferred) {
    if let Err(job) = server.script_busy.defer(job) {
        job(&mut server.store.lock());
    }
}

/// Forgets the client's WATCHed keys now; the store lets go of them at the script's end.
fn unwatch_later(server: &Server, client: &mut ClientState) {
    if client.watched.is_empty() {
        client.watch_dirty.store(false, Ordering::SeqCst);
        return;
    }
    let keys = std::mem::take(&mut client.watched);
    // A fresh flag: the script's writes to the released keys must not count.
    client.watch_dirty = Arc::new(AtomicBool::new(false));
    let id = client.id;
    defer_or_run(server, Box::new(move |store| store.unwatch_all(id, &keys)));
}

fn watch(
    server: &Server,
    client: &mut ClientState,
    keys: &[Bytes],
    out: &mut Reply,
) -> Result<(), super::CmdError> {
    if client.multi.is_some() {
        return Err(super::CmdError::msg(
            "ERR WATCH inside MULTI is not allowed",
        ));
    }
    let db = client.db;
    let mut new = Vec::new();
    for key in keys {
        let seen = |(d, k): &(usize, Bytes)| *d == db && k == key;
        if !client.watched.iter().any(seen) && !new.iter().any(seen) {
            new.push((db, crate::util::detach(key)));
        }
    }
    client.watched.extend(new.iter().cloned());
    let (id, flag, busy) = (
        client.id,
        client.watch_dirty.clone(),
        server.script_busy.clone(),
    );
    defer_or_run(
        server,
        Box::new(move |store| {
            if busy.has_written() {
                flag.store(true, Ordering::SeqCst);
            }
            for k in new {
                store.watched.entry(k).or_default().push((id, flag.clone()));
            }
        }),
    );
    out.ok();
    Ok(())
}

/// SHUTDOWN: only NOSAVE stops a busy server (Redis `shutdownCommand`).
fn shutdown(
    server: &Server,
    argv: &[Bytes],
    out: &mut Reply,
) -> Result<WhileBusy, super::CmdError> {
    match super::server::shutdown_args(argv)? {
        None => {
            if !server.shutdown_req.abort() {
                return Err(super::CmdError::msg("ERR No shutdown in progress."));
            }
            out.ok();
        }
        Some(f) if f.save == Some(false) => return Ok(WhileBusy::Exit),
        Some(_) => {
            server
                .stats
                .error_reply(server.script_busy.busy_error().as_bytes());
            out.error(server.script_busy.busy_error());
        }
    }
    Ok(WhileBusy::Done)
}

/// SCRIPT KILL, FUNCTION KILL and FUNCTION STATS (the subcommands allowed while busy).
fn script_or_function(server: &Server, script: bool, argv: &[Bytes], out: &mut Reply) {
    let busy = &server.script_busy;
    let stats = argv.get(1).is_some_and(|s| crate::util::is_kw(s, "stats"));
    if stats {
        match busy.running_function() {
            Some((f, ms)) => super::functions::stats_while_busy(out, &f, ms),
            None => {
                server.stats.error_reply(busy.busy_error().as_bytes());
                out.error(busy.busy_error());
            }
        }
        return;
    }
    // SCRIPT KILL stops scripts, FUNCTION KILL functions; the other kind gets the
    // BUSY reply naming the right one.
    if script == busy.is_function() && busy.is_busy() && !busy.has_written() {
        server.stats.error_reply(busy.busy_error().as_bytes());
        out.error(busy.busy_error());
        return;
    }
    match busy.request_kill() {
        KillOutcome::Killed => out.ok(),
        KillOutcome::NotBusy => out.error(busy::NOTBUSY_ERR),
        KillOutcome::Unkillable => out.error(busy::UNKILLABLE_ERR),
    }
}
