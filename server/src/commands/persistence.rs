//! Command family: persistence (SAVE, BGSAVE, LASTSAVE, BGREWRITEAOF). The work is in
//! `crate::persist` and `crate::aof`.

use super::{flags::*, CmdError, CmdResult, Command, Ctx};
use crate::resp::Reply;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("save", 1, NO_SCRIPT | ADMIN | NO_PROPAGATE, save),
    Command::new("bgsave", -1, NO_SCRIPT | ADMIN | NO_PROPAGATE, bgsave),
    Command::new("lastsave", 1, LOADING | STALE | FAST, lastsave),
    Command::new(
        "bgrewriteaof",
        1,
        NO_SCRIPT | ADMIN | NO_PROPAGATE,
        bgrewriteaof,
    ),
];

fn bgrewriteaof(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    // Inside EXEC (a transaction does not fork) or while a BGSAVE child runs, the
    // rewrite is scheduled: the AOF cron starts it, as Redis 7.0 does.
    let saving = ctx.server.persist.lock().bgsave_in_progress;
    if !ctx.may_block || saving {
        crate::aof::check_can_rewrite(ctx.server).map_err(|e| CmdError::msg(e.to_string()))?;
        ctx.server.persist.lock().aof_rewrite_scheduled = true;
        out.simple("Background append only file rewriting scheduled");
        return Ok(());
    }
    crate::aof::rewrite(ctx.server, ctx.store).map_err(|e| CmdError::msg(e.to_string()))?;
    out.simple("Background append only file rewriting started");
    Ok(())
}

fn save(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    use crate::persist::PersistError;
    match crate::persist::save(ctx.server, ctx.store) {
        Ok(()) => out.ok(),
        Err(e @ PersistError::BgsaveInProgress) => return Err(CmdError::msg(e.to_string())),
        // As Redis: the reason is in the log, the client gets a bare error.
        Err(_) => return Err(CmdError::msg("ERR")),
    }
    Ok(())
}

fn bgsave(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if argv.len() > 2 || (argv.len() == 2 && !argv[1].eq_ignore_ascii_case(b"schedule")) {
        return Err(super::err::SYNTAX);
    }
    if !ctx.may_block && !ctx.client.lua {
        // Inside EXEC: like Redis 7.0, a transaction does not fork; the save starts
        // from the cron right after. (A script, allowed BGSAVE by DEBUG
        // SET-DISABLE-DENY-SCRIPTS, starts it at once, as Redis's does.)
        let mut st = ctx.server.persist.lock();
        if st.bgsave_in_progress {
            return Err(CmdError::msg(
                crate::persist::PersistError::BgsaveInProgress.to_string(),
            ));
        }
        st.bgsave_scheduled = true;
        out.simple("Background saving scheduled");
        return Ok(());
    }
    crate::persist::bgsave(ctx.server, ctx.store).map_err(|e| CmdError::msg(e.to_string()))?;
    out.simple("Background saving started");
    Ok(())
}

fn lastsave(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    out.int(ctx.store.lastsave);
    Ok(())
}
