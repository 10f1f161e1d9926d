//! Command family: strings.

use super::{err, flags::*, CmdResult, Command, Ctx};
use crate::resp::Reply;
use crate::types::Value;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("get", 2, READONLY | FAST, get).keys(1, 1, 1),
    Command::new("set", -3, WRITE | DENYOOM, set).keys(1, 1, 1),
];

fn get(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    match ctx.get(&argv[1]) {
        None => out.null(),
        Some(Value::Str(s)) => out.bulk(s),
        Some(_) => return Err(err::WRONGTYPE),
    }
    Ok(())
}

fn set(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    ctx.set(argv[1].clone(), Value::Str(argv[2].clone()));
    ctx.dirty(1);
    out.ok();
    Ok(())
}
