//! Command family: FAILOVER (coordinated handover to a replica). The state
//! machine lives in `crate::replication::failover`; this is the table entry and
//! the mapping of its decisions to replies.

use super::{flags::*, CmdError, CmdResult, Command, Ctx};
use crate::replication::failover::{self, Request};
use crate::replication::FailoverState;
use crate::resp::Reply;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[Command::new(
    "failover",
    -1,
    NO_SCRIPT | ADMIN | STALE,
    failover,
)];

fn failover(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let args: Vec<&[u8]> = argv[1..].iter().map(|a| &a[..]).collect();
    let err = |e: failover::FailoverError| CmdError::msg(e.to_string());
    match failover::parse(&args).map_err(err)? {
        Request::Abort => {
            if ctx.store.repl.failover.state == FailoverState::NoFailover {
                return Err(err(failover::FailoverError::NoneInProgress));
            }
            failover::abort(ctx.server, ctx.store, "Failover manually aborted");
        }
        Request::Start(s) => {
            let target = failover::validate(&s, &ctx.store.repl).map_err(err)?;
            failover::start(ctx.server, ctx.store, target, &s);
        }
    }
    out.ok();
    Ok(())
}
