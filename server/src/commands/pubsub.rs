//! Command family: Pub/Sub (SUBSCRIBE, PSUBSCRIBE, their UNSUBSCRIBEs, PUBLISH,
//! PUBSUB introspection). Shard channels (SSUBSCRIBE & co.) are a namespace of their
//! own, as in Redis 7.0: a standalone server is a single shard.

use super::{flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::resp::Reply;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new(
        "subscribe",
        -2,
        NO_SCRIPT | PUBSUB | SUBSCRIBED | LOADING | STALE,
        subscribe,
    ),
    Command::new(
        "unsubscribe",
        -1,
        NO_SCRIPT | PUBSUB | SUBSCRIBED | LOADING | STALE,
        unsubscribe,
    ),
    Command::new(
        "psubscribe",
        -2,
        NO_SCRIPT | PUBSUB | SUBSCRIBED | LOADING | STALE,
        psubscribe,
    ),
    Command::new(
        "punsubscribe",
        -1,
        NO_SCRIPT | PUBSUB | SUBSCRIBED | LOADING | STALE,
        punsubscribe,
    ),
    Command::new(
        "ssubscribe",
        -2,
        NO_SCRIPT | PUBSUB | SUBSCRIBED | LOADING | STALE,
        ssubscribe,
    )
    .keys(1, -1, 1),
    Command::new(
        "sunsubscribe",
        -1,
        NO_SCRIPT | PUBSUB | SUBSCRIBED | LOADING | STALE,
        sunsubscribe,
    )
    .keys(1, -1, 1),
    Command::new(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        publish,
    ),
    Command::new(
        "spublish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        spublish,
    )
    .keys(1, 1, 1),
    Command::new("pubsub", -2, LOADING | STALE, pubsub),
];

/// Drops every channel, pattern and shard channel subscription of the calling client
/// without replying (RESET, connection teardown).
pub fn unsubscribe_all(ctx: &mut Ctx) {
    let id = ctx.client.id;
    for ch in std::mem::take(&mut ctx.client.channels) {
        ctx.store.pubsub.unsubscribe(&ch, id);
    }
    for p in std::mem::take(&mut ctx.client.patterns) {
        ctx.store.pubsub.punsubscribe(&p, id);
    }
    for ch in std::mem::take(&mut ctx.client.shard_channels) {
        ctx.store.pubsub.sunsubscribe(&ch, id);
    }
}

/// `[kind, name, count]` as a push (RESP3) or a plain array (RESP2).
fn confirm(out: &mut Reply, kind: &[u8], name: Option<&[u8]>, count: usize) {
    out.push(3);
    out.bulk(kind);
    out.opt_bulk(name);
    out.int(count as i64);
}

/// Plain channels or shard channels: separate namespaces with separate counts (a
/// shard confirmation counts shard channels only, as in Redis 7.0).
#[derive(Clone, Copy)]
enum Space {
    Plain,
    Shard,
}

impl Space {
    fn list<'c>(self, ctx: &'c mut Ctx) -> &'c mut Vec<Bytes> {
        match self {
            Space::Plain => &mut ctx.client.channels,
            Space::Shard => &mut ctx.client.shard_channels,
        }
    }

    fn count(self, ctx: &Ctx) -> usize {
        match self {
            Space::Plain => ctx.client.channel_subscriptions(),
            Space::Shard => ctx.client.shard_channels.len(),
        }
    }
}

fn subscribe_generic(
    ctx: &mut Ctx,
    out: &mut Reply,
    argv: &[Bytes],
    kind: &[u8],
    space: Space,
) -> CmdResult {
    refuse_deny_blocking(ctx, kind, space)?;
    ctx.client.last_reply_is_push = true;
    let id = ctx.client.id;
    for ch in &argv[1..] {
        if !space.list(ctx).contains(ch) {
            let ch = &crate::util::detach(ch);
            space.list(ctx).push(ch.clone());
            if let Some(tx) = ctx.client.msg_tx.clone() {
                match space {
                    Space::Plain => ctx.store.pubsub.subscribe(ch, id, tx),
                    Space::Shard => ctx.store.pubsub.ssubscribe(ch, id, tx),
                };
            }
        }
        confirm(out, kind, Some(ch), space.count(ctx));
    }
    Ok(())
}

fn unsubscribe_generic(
    ctx: &mut Ctx,
    out: &mut Reply,
    argv: &[Bytes],
    kind: &[u8],
    space: Space,
) -> CmdResult {
    ctx.client.last_reply_is_push = true;
    let id = ctx.client.id;
    let targets: Vec<Bytes> = if argv.len() > 1 {
        argv[1..].to_vec()
    } else {
        space.list(ctx).clone()
    };
    if targets.is_empty() {
        confirm(out, kind, None, space.count(ctx));
        return Ok(());
    }
    for ch in &targets {
        if let Some(pos) = space.list(ctx).iter().position(|c| c == ch) {
            space.list(ctx).remove(pos);
            match space {
                Space::Plain => ctx.store.pubsub.unsubscribe(ch, id),
                Space::Shard => ctx.store.pubsub.sunsubscribe(ch, id),
            };
        }
        confirm(out, kind, Some(ch), space.count(ctx));
    }
    Ok(())
}

fn subscribe(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    subscribe_generic(ctx, out, argv, b"subscribe", Space::Plain)
}

fn unsubscribe(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    unsubscribe_generic(ctx, out, argv, b"unsubscribe", Space::Plain)
}

fn ssubscribe(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    subscribe_generic(ctx, out, argv, b"ssubscribe", Space::Shard)
}

fn sunsubscribe(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    unsubscribe_generic(ctx, out, argv, b"sunsubscribe", Space::Shard)
}

/// A client that expects one reply per command cannot enter subscribed mode: as in
/// Redis 7.0, a script (with DEBUG SET-DISABLE-DENY-SCRIPTS) may not subscribe, and
/// neither may a transaction to a shard channel (plain SUBSCRIBE and PSUBSCRIBE stay
/// allowed inside EXEC, for backward compatibility).
fn refuse_deny_blocking(ctx: &Ctx, kind: &[u8], space: Space) -> CmdResult {
    let denied = match space {
        Space::Plain => ctx.client.lua,
        Space::Shard => ctx.client.lua || !ctx.may_block,
    };
    if denied {
        return Err(CmdError::msg(format!(
            "ERR {} isn't allowed for a DENY BLOCKING client",
            String::from_utf8_lossy(kind).to_ascii_uppercase()
        )));
    }
    Ok(())
}

fn psubscribe(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    refuse_deny_blocking(ctx, b"psubscribe", Space::Plain)?;
    ctx.client.last_reply_is_push = true;
    let id = ctx.client.id;
    for p in &argv[1..] {
        if !ctx.client.patterns.contains(p) {
            let p = &crate::util::detach(p);
            ctx.client.patterns.push(p.clone());
            if let Some(tx) = ctx.client.msg_tx.clone() {
                ctx.store.pubsub.psubscribe(p, id, tx);
            }
        }
        confirm(
            out,
            b"psubscribe",
            Some(p),
            ctx.client.channel_subscriptions(),
        );
    }
    Ok(())
}

fn punsubscribe(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    ctx.client.last_reply_is_push = true;
    let id = ctx.client.id;
    let targets: Vec<Bytes> = if argv.len() > 1 {
        argv[1..].to_vec()
    } else {
        ctx.client.patterns.clone()
    };
    if targets.is_empty() {
        confirm(
            out,
            b"punsubscribe",
            None,
            ctx.client.channel_subscriptions(),
        );
        return Ok(());
    }
    for p in &targets {
        if let Some(pos) = ctx.client.patterns.iter().position(|c| c == p) {
            ctx.client.patterns.remove(pos);
            ctx.store.pubsub.punsubscribe(p, id);
        }
        confirm(
            out,
            b"punsubscribe",
            Some(p),
            ctx.client.channel_subscriptions(),
        );
    }
    Ok(())
}

fn publish(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let limit = ctx.store.hot.obuf_limits[crate::outbuf::Class::PubSub as usize];
    let n = ctx.store.pubsub.publish(&argv[1], &argv[2], &limit);
    propagate_to_replicas(ctx, argv);
    out.int(n as i64);
    Ok(())
}

fn spublish(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let limit = ctx.store.hot.obuf_limits[crate::outbuf::Class::PubSub as usize];
    let n = ctx.store.pubsub.spublish(&argv[1], &argv[2], &limit);
    propagate_to_replicas(ctx, argv);
    out.int(n as i64);
    Ok(())
}

/// A message published on a master reaches the subscribers of its replicas too: the
/// command goes down the replication stream (not into the AOF), as it is, in
/// MULTI/EXEC and scripts as well, as Redis 7.0 does outside cluster mode. Nothing is
/// kept when no replica or backlog would receive it.
fn propagate_to_replicas(ctx: &mut Ctx, argv: &[Bytes]) {
    if ctx.store.repl.should_generate() {
        let store = &mut *ctx.store;
        store.propagate_only.push((
            store.propagated.len(),
            crate::server::PropagateTarget::Replicas,
        ));
        store.propagated.push((ctx.client.db, argv.to_vec()));
    }
}

fn pubsub(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let sub = &argv[1];
    let argc = argv.len();
    let wrong_args = || {
        CmdError::msg(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(sub)
        ))
    };
    if is_kw(sub, "channels") || is_kw(sub, "shardchannels") {
        if argc > 3 {
            return Err(wrong_args());
        }
        let pattern = argv.get(2).map(|p| &p[..]);
        let ps = &ctx.store.pubsub;
        let mut chans = if is_kw(sub, "channels") {
            ps.active_channels(pattern)
        } else {
            ps.active_shard_channels(pattern)
        };
        chans.sort();
        out.array(chans.len());
        for c in &chans {
            out.bulk(c);
        }
    } else if is_kw(sub, "numsub") || is_kw(sub, "shardnumsub") {
        let shard = is_kw(sub, "shardnumsub");
        out.array((argc - 2) * 2);
        for ch in &argv[2..] {
            out.bulk(ch);
            let ps = &ctx.store.pubsub;
            let n = if shard {
                ps.shard_numsub(ch)
            } else {
                ps.numsub(ch)
            };
            out.int(n as i64);
        }
    } else if is_kw(sub, "numpat") {
        if argc != 2 {
            return Err(CmdError::msg(
                "ERR wrong number of arguments for 'pubsub|numpat' command",
            ));
        }
        out.int(ctx.store.pubsub.numpat() as i64);
    } else if is_kw(sub, "help") {
        if argc != 2 {
            return Err(CmdError::msg(
                "ERR wrong number of arguments for 'pubsub|help' command",
            ));
        }
        // Our own wording; the shape (one simple string per line) follows Redis.
        let lines = [
            "PUBSUB <subcommand> [<arg> ...]. Subcommands:",
            "CHANNELS [<pattern>]",
            "    List channels that have subscribers, optionally filtered by a glob pattern.",
            "NUMPAT",
            "    Count the distinct patterns that have subscribers.",
            "NUMSUB [<channel> ...]",
            "    Give the subscriber count of each channel (pattern subscribers excluded).",
            "SHARDCHANNELS [<pattern>]",
            "    List shard channels that have subscribers, optionally filtered by a glob pattern.",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Give the subscriber count of each shard channel.",
            "HELP",
            "    Show this text.",
        ];
        out.array(lines.len());
        for l in lines {
            out.simple(l);
        }
    } else {
        return Err(super::connection::unknown_subcommand(sub, "PUBSUB"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::zsets::tests::{run, setup};

    #[test]
    fn resp3_confirmations_and_messages_are_pushes() {
        let (server, mut c) = setup(true);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let h =
            crate::server::ClientHandle::new(1, String::new(), String::new(), Default::default());
        c.msg_tx = Some(crate::pubsub::MsgSender::new(tx, std::sync::Arc::new(h)));
        let (out, _) = run(&server, &mut c, "SUBSCRIBE a");
        assert_eq!(out, b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
        let (out, _) = run(&server, &mut c, "PSUBSCRIBE a*");
        assert_eq!(out, b">3\r\n$10\r\npsubscribe\r\n$2\r\na*\r\n:2\r\n");
        let (out, _) = run(&server, &mut c, "PUBLISH ab x");
        assert_eq!(out, b":1\r\n");
        assert!(matches!(
            rx.try_recv(),
            Ok(crate::pubsub::PubMsg::PMessage { .. })
        ));
        let (out, _) = run(&server, &mut c, "UNSUBSCRIBE");
        assert_eq!(out, b">3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n");
        let (out, _) = run(&server, &mut c, "UNSUBSCRIBE");
        assert_eq!(out, b">3\r\n$11\r\nunsubscribe\r\n_\r\n:1\r\n");
        // RESP3 clients keep normal PING replies while subscribed.
        let (out, _) = run(&server, &mut c, "PING");
        assert_eq!(out, b"+PONG\r\n");
    }
}
