//! Command family: replication (REPLICAOF/SLAVEOF, REPLCONF, PSYNC, SYNC, ROLE, WAIT).
//! The logic lives in `crate::replication`; these are the table entries and the
//! argument handling.

use super::{err, flags::*, Action, CmdError, CmdResult, Command, Ctx};
use crate::replication::{primary, replica};
use crate::resp::Reply;
use bytes::Bytes;

pub const COMMANDS: &[Command] = &[
    Command::new("replicaof", 3, NO_SCRIPT | ADMIN | STALE, replicaof),
    Command::new("slaveof", 3, NO_SCRIPT | ADMIN | STALE, replicaof),
    Command::new(
        "replconf",
        -1,
        NO_SCRIPT | ADMIN | LOADING | STALE,
        replconf,
    ),
    Command::new("psync", -3, NO_SCRIPT | ADMIN, psync),
    Command::new("sync", 1, NO_SCRIPT | ADMIN, sync),
    Command::new("role", 1, NO_SCRIPT | LOADING | STALE | FAST, role),
    Command::new("wait", 3, NO_SCRIPT, wait),
];

/// The requesting client as CLIENT LIST would print it (for Redis's log lines).
fn client_desc(ctx: &Ctx, cmd: &str) -> String {
    let (addr, laddr, age) = ctx
        .server
        .clients
        .lock()
        .get(&ctx.client.id)
        .map(|h| {
            (
                h.addr.clone(),
                h.laddr.clone(),
                h.created.elapsed().as_secs(),
            )
        })
        .unwrap_or_default();
    let name = ctx
        .client
        .name
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    format!(
        "id={} addr={addr} laddr={laddr} fd=0 name={name} age={age} idle=0 flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={cmd} user=default redir=-1 resp={}",
        ctx.client.id,
        ctx.client.db,
        if ctx.client.resp3 { 3 } else { 2 }
    )
}

fn replicaof(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if ctx.client.is_replica {
        return Err(CmdError::msg(
            "ERR Command is not valid when client is a replica.",
        ));
    }
    if ctx.store.repl.failover.state != crate::replication::FailoverState::NoFailover {
        return Err(CmdError::msg(
            "ERR REPLICAOF not allowed while failing over.",
        ));
    }
    if argv[1].eq_ignore_ascii_case(b"no") && argv[2].eq_ignore_ascii_case(b"one") {
        crate::replication::fence::lift(ctx.store, "REPLICAOF NO ONE (now a writable master)");
        if ctx.store.repl.master.is_some() {
            let desc = client_desc(ctx, "replicaof");
            replica::unset_master(ctx.store, &desc);
            let oom = ctx
                .server
                .oom_score
                .apply(&ctx.config(), crate::config::oom::Class::Master);
            if let Err(e) = oom {
                crate::warning!("{e}");
            }
        }
        out.ok();
        return Ok(());
    }
    let port = crate::resp::parse_i64(&argv[2])
        .and_then(|p| u16::try_from(p).ok())
        .ok_or(CmdError::msg("ERR Invalid master port"))?;
    let host = String::from_utf8_lossy(&argv[1]).into_owned();
    if let Some(m) = &ctx.store.repl.master {
        if m.host.eq_ignore_ascii_case(&host) && m.port == port {
            crate::notice!(
                "REPLICAOF would result into synchronization with the master we are already connected with. No operation performed."
            );
            out.simple("OK Already connected to specified master");
            return Ok(());
        }
    }
    let desc = client_desc(ctx, "replicaof");
    let server = ctx.server.clone();
    crate::replication::fence::lift_for_replicaof(ctx.store, &host, port);
    replica::set_master(&server, ctx.store, &host, port, true);
    crate::notice!("REPLICAOF {host}:{port} enabled (user request from '{desc}')");
    out.ok();
    Ok(())
}

fn replconf(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    primary::replconf(ctx, out, argv)
}

fn psync(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if ctx.client.is_replica {
        // Already a replica: ignored, as Redis does.
        return Ok(());
    }
    if argv
        .get(3)
        .is_some_and(|a| a.eq_ignore_ascii_case(b"failover"))
    {
        failover_request(ctx, &argv[1])?;
    }
    primary::handle_sync(ctx, out, argv, false)
}

/// `PSYNC <replid> <offset> FAILOVER` from the master we follow, handing over:
/// with our replid (we have its whole history) we promote ourselves, and the
/// PSYNC then goes on as any replica's would (a partial resync on replid2).
fn failover_request(ctx: &mut Ctx, replid: &[u8]) -> Result<(), CmdError> {
    crate::warning!(
        "Failover request received for replid {}.",
        String::from_utf8_lossy(replid)
    );
    if ctx.store.repl.master.is_none() {
        return Err(CmdError::msg(
            "ERR PSYNC FAILOVER can't be sent to a master.",
        ));
    }
    if !replid.eq_ignore_ascii_case(ctx.store.repl.replid.as_bytes()) {
        return Err(CmdError::msg(
            "ERR PSYNC FAILOVER replid must match my replid.",
        ));
    }
    replica::promote(ctx.store);
    let desc = client_desc(ctx, "psync");
    crate::notice!("MASTER MODE enabled (failover request from '{desc}')");
    Ok(())
}

fn sync(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    primary::handle_sync(ctx, out, argv, true)
}

fn role(ctx: &mut Ctx, out: &mut Reply, _argv: &[Bytes]) -> CmdResult {
    let r = &ctx.store.repl;
    match &r.master {
        None => {
            let list = primary::role_replicas(r);
            out.array(3);
            out.bulk(b"master");
            out.int(r.master_repl_offset);
            out.array(list.len());
            for (ip, port, off) in list {
                out.array(3);
                out.bulk_str(&ip);
                out.bulk_str(&port.to_string());
                out.bulk_str(&off.to_string());
            }
        }
        Some(m) => {
            out.array(5);
            out.bulk(b"slave");
            out.bulk_str(&m.host);
            out.int(m.port as i64);
            out.bulk_str(m.state.role_name());
            out.int(m.offsets.map_or(-1, |o| o.applied));
        }
    }
    Ok(())
}

fn wait(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    if ctx.store.repl.master.is_some() {
        return Err(CmdError::msg(
            "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
        ));
    }
    let num = crate::resp::parse_i64(&argv[1]).ok_or(err::NOT_INT)?;
    let timeout = crate::resp::parse_i64(&argv[2]).ok_or(CmdError::msg(
        "ERR timeout is not an integer or out of range",
    ))?;
    if timeout < 0 {
        return Err(err::NEG_TIMEOUT);
    }
    let offset = ctx.client.woff;
    let count = ctx.store.repl.acked_replicas(offset) as i64;
    if count >= num || !ctx.may_block {
        out.int(count);
        return Ok(());
    }
    ctx.action = Some(Action::WaitReplicas {
        num,
        offset,
        timeout_ms: timeout as u64,
    });
    Ok(())
}
