//! SYNC / PSYNC and REPLCONF on the master: a connection becomes a replica.
//!
//! `handle_sync` runs the decisions in order — may this connection sync at all
//! ([`refusal`]), partial or full ([`psync::decide`], pure) — and then carries out
//! the one taken: [`accept_partial`] queues the backlog tail and answers
//! `+CONTINUE`; [`register_full`] registers the replica for a snapshot. The
//! connection then hands its socket to [`super::serve_replica`].

use crate::commands::{err, CmdError, CmdResult, Ctx};
use crate::replication::psync::{self, Decision, History};
use crate::replication::{replica_name, Handoff, ReplConf, ReplState, ReplicaLink, ReplicaState};
use crate::resp::Reply;
use crate::server::{ClientHandle, ClientId};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// What the connection asking to sync is in, for [`refusal`].
#[derive(Debug, Clone, Copy, Default)]
struct Asker {
    fenced: bool,
    /// Inside EXEC (the socket cannot become a replica link mid-transaction).
    in_exec: bool,
    /// A FAILOVER of ours is running.
    failing_over: bool,
    /// We are a replica whose own link is down.
    master_link_down: bool,
    pending_output: bool,
}

/// Why a SYNC/PSYNC is refused, checked in Redis's order.
fn refusal(a: Asker) -> Option<&'static str> {
    if a.fenced {
        Some(crate::replication::fence::FENCED_ERR)
    } else if a.in_exec {
        Some("ERR Command not allowed inside a transaction")
    } else if a.failing_over {
        Some("NOMASTERLINK Can't SYNC while failing over")
    } else if a.master_link_down {
        Some("NOMASTERLINK Can't SYNC while not connected with my master")
    } else if a.pending_output {
        Some("ERR SYNC and PSYNC are invalid with pending output")
    } else {
        None
    }
}

/// The replica being registered.
struct NewReplica {
    client_id: ClientId,
    handle: Arc<ClientHandle>,
    /// Announced ip, else the peer ip.
    ip: String,
    conf: ReplConf,
    /// `ip:port` for the log lines.
    name: String,
}

impl NewReplica {
    fn link(
        self,
        state: ReplicaState,
        pre_psync: bool,
        tx: Option<mpsc::UnboundedSender<Bytes>>,
    ) -> ReplicaLink {
        ReplicaLink {
            client_id: self.client_id,
            handle: self.handle,
            ip: self.ip,
            port: self.conf.listening_port,
            state,
            ack_off: 0,
            ack_time: Instant::now(),
            conf: self.conf,
            pre_psync,
            tx,
            ticket: None,
            pending_rx: None,
            queued: Default::default(),
        }
    }
}

/// SYNC (`legacy`) and PSYNC: decides partial vs full resync and registers the
/// replica; the connection then hands its socket to [`super::serve_replica`].
pub fn handle_sync(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], legacy: bool) -> CmdResult {
    if ctx.client.is_replica {
        // Already a replica: ignored, as Redis does.
        return Ok(());
    }
    let asker = Asker {
        fenced: ctx.store.repl.fenced,
        in_exec: !ctx.may_block,
        failing_over: ctx.store.repl.failover.state
            != crate::replication::FailoverState::NoFailover,
        master_link_down: ctx.store.repl.master.is_some() && !ctx.store.repl.link_connected(),
        pending_output: !out.is_empty(),
    };
    if let Some(msg) = refusal(asker) {
        return Err(CmdError::msg(msg));
    }
    let Some(handle) = ctx.clients().get(&ctx.client.id).cloned() else {
        return Err(CmdError::msg("ERR unknown client"));
    };
    let conf = ctx.client.repl_conf.take().map(|c| *c).unwrap_or_default();
    let ip = conf
        .ip_address
        .clone()
        .unwrap_or_else(|| peer_ip(&handle.addr));
    let name = replica_name(&ip, conf.listening_port);
    crate::notice!("Replica {name} asks for synchronization");
    let new = NewReplica {
        client_id: ctx.client.id,
        handle,
        ip,
        conf,
        name,
    };
    if !legacy {
        let off = psync_offset(argv, &new.name)?;
        let id = String::from_utf8_lossy(argv.get(1).map_or(&[][..], |a| &a[..])).into_owned();
        let r = &mut ctx.store.repl;
        match psync::decide(&history(r), &id, off) {
            Decision::Continue { from, len } => return accept_partial(ctx, out, new, from, len),
            refused => log_refusal(&refused, r, &id, off, &new.name),
        }
        if id != "?" {
            r.sync_partial_err += 1;
        }
    }
    register_full(ctx, new, legacy);
    Ok(())
}

/// The offset argument of PSYNC.
fn psync_offset(argv: &[Bytes], name: &str) -> Result<i64, CmdError> {
    match argv.get(2).and_then(|a| crate::resp::parse_i64(a)) {
        Some(off) => Ok(off),
        None => {
            crate::notice!("Replica {name} asks for synchronization but with a wrong offset");
            Err(err::NOT_INT)
        }
    }
}

/// What the PSYNC decision needs to know about our history.
fn history(r: &ReplState) -> History<'_> {
    History {
        replid: &r.replid,
        replid2: &r.replid2,
        second_replid_offset: r.second_replid_offset,
        master_repl_offset: r.master_repl_offset,
        backlog: r.backlog.as_ref().map(|b| (b.first_byte(), b.histlen())),
    }
}

/// Logs why a partial resync was not accepted, in Redis's words.
fn log_refusal(d: &Decision, r: &ReplState, id: &str, off: i64, name: &str) {
    match d {
        Decision::Continue { .. } => {}
        Decision::FullRequested => {
            crate::notice!("Full resync requested by replica {name}");
        }
        Decision::IdMismatch => {
            crate::notice!(
                "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{id}', my replication IDs are '{}' and '{}')",
                r.replid,
                r.replid2
            );
        }
        Decision::SecondIdOffsetTooLarge { max } => {
            crate::notice!(
                "Partial resynchronization not accepted: Requested offset for second ID was {off}, but I can reply up to {max}"
            );
        }
        Decision::NoBacklog { beyond } => {
            crate::notice!(
                "Unable to partial resync with replica {name} for lack of backlog (Replica request was: {off})."
            );
            if *beyond {
                crate::warning!(
                    "Warning: replica {name} tried to PSYNC with an offset that is greater than the master replication offset."
                );
            }
        }
    }
}

/// Partial resync accepted: `+CONTINUE`, the backlog from `from` queued, the
/// replica online at once.
fn accept_partial(
    ctx: &mut Ctx,
    out: &mut Reply,
    new: NewReplica,
    from: i64,
    len: i64,
) -> CmdResult {
    let r = &mut ctx.store.repl;
    let (tx, rx) = mpsc::unbounded_channel();
    if let Some(bytes) = r.backlog.as_ref().and_then(|b| b.since(from)) {
        if !bytes.is_empty() {
            let _ = tx.send(Bytes::copy_from_slice(bytes));
        }
    }
    if new.conf.capa_psync2 {
        out.raw(format!("+CONTINUE {}\r\n", r.replid).as_bytes());
    } else {
        out.raw(b"+CONTINUE\r\n");
    }
    let name = new.name.clone();
    r.replicas
        .push(new.link(ReplicaState::Online, false, Some(tx)));
    r.sync_partial_ok += 1;
    r.handoffs.insert(ctx.client.id, Handoff::Continue(rx));
    ctx.client.is_replica = true;
    let lag = ctx.config().min_replicas_max_lag;
    ctx.store.repl.refresh_good_replicas(lag);
    crate::notice!(
        "Partial resynchronization request from {name} accepted. Sending {len} bytes of backlog starting from offset {from}."
    );
    Ok(())
}

/// Full resync: the replica waits for a snapshot; the first replica of a node
/// without a backlog starts a new history.
fn register_full(ctx: &mut Ctx, new: NewReplica, legacy: bool) {
    let (backlog_size, diskless, delay) = {
        let c = ctx.config();
        (
            c.repl_backlog_size,
            c.repl_diskless_sync,
            c.repl_diskless_sync_delay,
        )
    };
    let r = &mut ctx.store.repl;
    r.sync_full += 1;
    let capa_eof = new.conf.capa_eof;
    r.replicas
        .push(new.link(ReplicaState::WaitBgsaveStart, legacy, None));
    if r.replicas.len() == 1 && r.backlog.is_none() {
        r.replid = crate::server::random_hex40();
        r.clear_replid2();
        r.ensure_backlog(backlog_size);
        crate::notice!(
            "Replication backlog created, my new replication IDs are '{}' and '{}'",
            r.replid,
            r.replid2
        );
    }
    if diskless && capa_eof && delay > 0 {
        crate::notice!("Delay next BGSAVE for diskless SYNC");
    }
    r.handoffs.insert(ctx.client.id, Handoff::Full);
    ctx.client.is_replica = true;
}

/// The ip part of `ip:port` / `[v6]:port`.
fn peer_ip(addr: &str) -> String {
    match addr.rsplit_once(':') {
        Some((ip, _)) => ip.trim_start_matches('[').trim_end_matches(']').to_string(),
        None => addr.to_string(),
    }
}

/// REPLCONF (before SYNC: announcements; from a replica: ACK). Replies +OK for the
/// announcements, nothing for ACK.
pub fn replconf(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    replconf_client(ctx.client, out, argv)
}

/// REPLCONF on the client's own state (also served while a script is busy).
pub fn replconf_client(
    client: &mut crate::commands::ClientState,
    out: &mut Reply,
    argv: &[Bytes],
) -> CmdResult {
    if argv.len().is_multiple_of(2) {
        return Err(err::SYNTAX);
    }
    let mut conf = client.repl_conf.take().map(|c| *c).unwrap_or_default();
    let mut reply = true;
    for pair in argv[1..].chunks(2) {
        let (opt, val) = (&pair[0], &pair[1]);
        let o = String::from_utf8_lossy(opt).to_ascii_lowercase();
        match o.as_str() {
            "listening-port" => {
                let p = crate::resp::parse_i64(val).ok_or(err::NOT_INT)?;
                conf.listening_port = u16::try_from(p).unwrap_or(0);
            }
            "ip-address" => {
                if val.len() >= 46 {
                    let v = String::from_utf8_lossy(val);
                    client.repl_conf = Some(Box::new(conf));
                    return Err(CmdError::msg(format!(
                        "ERR REPLCONF ip-address provided by replica instance is too long: {} bytes",
                        v.len()
                    )));
                }
                conf.ip_address = Some(String::from_utf8_lossy(val).into_owned());
            }
            "capa" => {
                if val.eq_ignore_ascii_case(b"eof") {
                    conf.capa_eof = true;
                } else if val.eq_ignore_ascii_case(b"psync2") {
                    conf.capa_psync2 = true;
                }
            }
            "ack" | "getack" => {
                // Only meaningful on an established replica link (handled by the
                // replica's reader); a normal client gets no reply either.
                reply = false;
            }
            "rdb-only" | "rdb-filter-only" => {}
            _ => {
                client.repl_conf = Some(Box::new(conf));
                return Err(CmdError::msg(format!(
                    "ERR Unrecognized REPLCONF option: {}",
                    String::from_utf8_lossy(opt)
                )));
            }
        }
    }
    client.repl_conf = Some(Box::new(conf));
    if reply {
        out.ok();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_refusals_come_in_redis_order() {
        let all = Asker {
            fenced: true,
            in_exec: true,
            failing_over: true,
            master_link_down: true,
            pending_output: true,
        };
        assert_eq!(refusal(all), Some(crate::replication::fence::FENCED_ERR));
        let a = Asker {
            fenced: false,
            ..all
        };
        assert_eq!(
            refusal(a),
            Some("ERR Command not allowed inside a transaction")
        );
        let a = Asker {
            in_exec: false,
            ..a
        };
        assert_eq!(
            refusal(a),
            Some("NOMASTERLINK Can't SYNC while failing over")
        );
        let a = Asker {
            failing_over: false,
            ..a
        };
        assert_eq!(
            refusal(a),
            Some("NOMASTERLINK Can't SYNC while not connected with my master")
        );
        let a = Asker {
            master_link_down: false,
            ..a
        };
        assert_eq!(
            refusal(a),
            Some("ERR SYNC and PSYNC are invalid with pending output")
        );
        assert_eq!(refusal(Asker::default()), None);
    }

    #[test]
    fn peer_ip_strips_the_port_and_brackets() {
        assert_eq!(peer_ip("127.0.0.1:6379"), "127.0.0.1");
        assert_eq!(peer_ip("[::1]:6379"), "::1");
        assert_eq!(peer_ip("unix"), "unix");
    }
}
