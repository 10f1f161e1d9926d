//! Command family: transactions (MULTI, EXEC, DISCARD, WATCH, UNWATCH).
//!
//! Queueing happens in `exec::process`; EXEC here replays the queue through
//! `exec::call` with blocking disabled, so every queued command runs with the same
//! checks, propagation and WATCH/blocked-client signalling as a direct call. The
//! ops the transaction propagates are wrapped in MULTI/EXEC by `exec::process`.

use super::{flags::*, Action, CmdError, CmdResult, Command, Ctx};
use crate::exec::Outcome;
use crate::resp::Reply;
use bytes::Bytes;
use std::sync::atomic::Ordering;

pub const COMMANDS: &[Command] = &[
    Command::new(
        "multi",
        1,
        NO_SCRIPT | NO_MULTI | LOADING | STALE | FAST,
        multi,
    ),
    Command::new("exec", 1, NO_SCRIPT | NO_MULTI | LOADING | STALE, exec),
    Command::new(
        "discard",
        1,
        NO_SCRIPT | NO_MULTI | LOADING | STALE | FAST,
        discard,
    ),
    // No key positions on purpose: `exec::call` would otherwise treat a WATCH that
    // lazily expired a key as a write to its keys and dirty the caller's own watch.
    Command::new(
        "watch",
        -2,
        NO_SCRIPT | NO_MULTI | LOADING | STALE | FAST,
        watch,
    )
    .keys(1, -1, 1),
    // Not NO_MULTI: inside MULTI, Redis queues UNWATCH like any other command.
    Command::new("unwatch", 1, NO_SCRIPT | LOADING | STALE | FAST, unwatch),
];

/// Forgets every WATCHed key of the calling client and clears its dirty flag
/// (also for RESET).
pub fn unwatch_all(ctx: &mut Ctx) {
    let keys = std::mem::take(&mut ctx.client.watched);
    ctx.store.unwatch_all(ctx.client.id, &keys);
    ctx.client.watch_dirty.store(false, Ordering::SeqCst);
}

/// Leaves MULTI state (queue, error flag) and drops the WATCHes (also for RESET).
pub fn discard_transaction(ctx: &mut Ctx) {
    ctx.client.multi = None;
    ctx.client.multi_error = false;
    unwatch_all(ctx);
}

fn multi(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::msg("ERR MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_error = false;
    out.ok();
    Ok(())
}

fn discard(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(CmdError::msg("ERR DISCARD without MULTI"));
    }
    discard_transaction(ctx);
    out.ok();
    Ok(())
}

/// True if a WATCHed key reached its expiry time after WATCH (Redis 7.0 aborts
/// then, even though no command touched the key). Keys already expired at WATCH
/// time were deleted by WATCH itself, so they do not count.
fn watched_key_expired(ctx: &Ctx) -> bool {
    ctx.client.watched.iter().any(|(db, key)| {
        ctx.store
            .dbs
            .get(*db)
            .and_then(|d| d.expire_of(key))
            .is_some_and(|at| at <= ctx.now_ms)
    })
}

fn exec(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    let Some(queue) = ctx.client.multi.take() else {
        return Err(CmdError::msg("ERR EXEC without MULTI"));
    };
    if ctx.client.multi_error {
        discard_transaction(ctx);
        return Err(CmdError::msg(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    if ctx.client.watch_dirty.load(Ordering::SeqCst) || watched_key_expired(ctx) {
        discard_transaction(ctx);
        out.null_array();
        return Ok(());
    }
    // WATCH only guards the moment of EXEC: the transaction's own writes must not
    // count, so the keys are released before running it.
    unwatch_all(ctx);
    out.array(queue.len());
    // The queued commands decide expiry at EXEC's own time (see `frozen_time_ms`).
    ctx.client.frozen_time_ms = ctx.now_ms;
    for argv in &queue {
        let Some(cmd) = super::lookup(&argv[0]) else {
            // Unknown commands abort at queue time; this only guards the table.
            out.error("ERR unknown command");
            continue;
        };
        // The rules may have changed since the command was queued.
        if let Err(r) = super::acl::check_queued(ctx.server, ctx.client, cmd, argv, queue.len()) {
            out.error(&super::acl::exec_text(&r));
            continue;
        }
        crate::server::Stats::incr_held(ctx.store, &ctx.server.stats.total_commands_processed, 1);
        let outcome = crate::exec::call(ctx.server, ctx.store, ctx.client, cmd, argv, out, false);
        match outcome {
            Outcome::Close => ctx.action = Some(Action::Close),
            Outcome::Shutdown(flags) => ctx.action = Some(Action::Shutdown(flags)),
            _ => {}
        }
    }
    ctx.client.frozen_time_ms = 0;
    ctx.client.multi = None;
    ctx.client.multi_error = false;
    Ok(())
}

fn watch(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::msg("ERR WATCH inside MULTI is not allowed"));
    }
    let db = ctx.client.db;
    for key in &argv[1..] {
        if ctx.client.watched.iter().any(|(d, k)| *d == db && k == key) {
            continue;
        }
        // A key that is already past its TTL is removed now, so that only expiries
        // happening after WATCH abort the transaction (as Redis 7.0 decides).
        ctx.expire_if_needed(key);
        let key = crate::util::detach(key);
        ctx.client.watched.push((db, key.clone()));
        let flag = ctx.client.watch_dirty.clone();
        ctx.store
            .watched
            .entry((db, key))
            .or_default()
            .push((ctx.client.id, flag));
    }
    out.ok();
    Ok(())
}

fn unwatch(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    unwatch_all(ctx);
    out.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::zsets::tests::{argv, run, setup};
    use crate::types::Value;
    use bytes::Bytes;

    fn set_with_ttl(server: &crate::server::Server, key: &str, at_ms: i64) {
        let mut store = server.store.lock();
        store.dbs[0].set_with_expire(
            Bytes::copy_from_slice(key.as_bytes()),
            Value::Str(b"v".into()),
            Some(at_ms),
            0,
        );
    }

    #[test]
    fn a_watched_key_expiring_after_watch_aborts_exec() {
        let (server, mut c) = setup(false);
        let now = crate::server::now_ms();
        set_with_ttl(&server, "k", now + 50);
        run(&server, &mut c, "WATCH k");
        // Simulate the passage of time: the key's deadline is now in the past.
        {
            let mut store = server.store.lock();
            store.dbs[0].set_expire(b"k", now - 1);
        }
        run(&server, &mut c, "MULTI");
        run(&server, &mut c, "GET k");
        let (out, _) = run(&server, &mut c, "EXEC");
        assert_eq!(out, b"*-1\r\n");
    }

    #[test]
    fn a_key_already_expired_at_watch_does_not_abort() {
        let (server, mut c) = setup(false);
        set_with_ttl(&server, "k", crate::server::now_ms() - 10);
        run(&server, &mut c, "WATCH k");
        run(&server, &mut c, "MULTI");
        let (out, _) = run(&server, &mut c, "EXEC");
        assert_eq!(out, b"*0\r\n");
    }

    #[test]
    fn exec_propagates_each_write_of_the_transaction() {
        let (server, mut c) = setup(false);
        run(&server, &mut c, "MULTI");
        // `exec::process` does the queueing; here the queue is filled directly.
        if let Some(q) = c.multi.as_mut() {
            q.extend([argv("ZADD z 1 a"), argv("ZSCORE z a"), argv("ZPOPMIN z")]);
        }
        let (out, ops) = run(&server, &mut c, "EXEC");
        assert_eq!(
            out,
            b"*3\r\n:1\r\n$1\r\n1\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n".to_vec()
        );
        let names: Vec<&[u8]> = ops.iter().map(|a| &a[0][..]).collect();
        assert_eq!(names, vec![&b"ZADD"[..], b"ZPOPMIN"]);
    }
}
