//! Command family: connection (PING, ECHO, QUIT, ...).

use super::{flags::*, CmdResult, Command, Ctx};
use crate::resp::Reply;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("ping", -1, FAST | STALE | PUBSUB, ping),
    Command::new("echo", 2, FAST, echo),
    Command::new("quit", -1, NO_AUTH | STALE | PUBSUB | NO_MULTI | FAST, quit),
];

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
