//! HANDSHAKE: PING, then AUTH and the REPLCONF announcements (listening-port,
//! ip-address, capa) sent back to back and their replies read in order, then
//! PSYNC. What each reply means is decided by pure functions ([`ping_accepted`],
//! [`check_reply`], [`classify_psync`]); the async steps only carry it out.

use super::link_io::{io_text, LinkIo, ReadErr};
use super::{repl_timeout, update, LinkEnd, Step};
use crate::replication::{failover, CachedMaster, LinkOffsets, LinkState};
use crate::server::Server;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncWriteExt;

/// Where a full resync starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FullResync {
    /// `+FULLRESYNC <replid> <offset>`.
    At { replid: String, offset: i64 },
    /// Legacy SYNC: no id or offset given (the RDB's aux fields tell).
    Legacy,
}

/// How the handshake ended when it succeeded.
enum Synced {
    Full(FullResync),
    /// `+CONTINUE`: stream from the cached master's offsets.
    Partial(LinkOffsets),
}

/// Why the handshake failed. The texts are Redis's log lines.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    #[error("Sending command to master in replication handshake: {}", io_text(.0))]
    Send(std::io::Error),
    #[error("Failed to read response from the server: {0}")]
    Read(ReadErr),
    #[error("Error reply to PING from master: '{0}'")]
    PingRejected(String),
    #[error("Unable to AUTH to MASTER: {0}")]
    AuthRejected(String),
    #[error("Unable to send PSYNC to master: {}", io_text(.0))]
    SendPsync(std::io::Error),
    #[error("Master did not reply to PSYNC, will try later")]
    NoPsyncReply,
    /// Nothing arrived for `repl-timeout`: as in Redis, a master waiting to
    /// start a snapshot keeps the link alive with newlines once a second.
    #[error("Timeout connecting to the MASTER...")]
    Timeout,
    #[error("Master replied with wrong +FULLRESYNC syntax.")]
    BadFullResync,
    #[error("Master is currently unable to PSYNC but should be in the future: {0}")]
    TryLater(String),
    #[error("I/O error writing to MASTER: {}", io_text(.0))]
    SendSync(std::io::Error),
    /// `+CONTINUE` but the cached master is gone (a concurrent change): retry.
    #[error("no cached master to continue")]
    NoCachedMaster,
    #[error("replaced by a newer REPLICAOF")]
    Stale,
}

impl HandshakeError {
    /// Logs the failure (once, Redis's level and words) and ends the attempt.
    fn report(self) -> LinkEnd {
        match self {
            HandshakeError::Stale => return LinkEnd::Stale,
            HandshakeError::NoCachedMaster => {}
            HandshakeError::TryLater(_) => crate::notice!("{self}"),
            HandshakeError::Read(_) => {
                crate::warning!("{self}");
                crate::warning!("Master did not respond to command during SYNC handshake");
            }
            _ => crate::warning!("{self}"),
        }
        LinkEnd::Failed
    }
}

/// HANDSHAKE → TRANSFER (full resync) or CONNECTED (partial resync).
pub(super) async fn run(server: &Arc<Server>, gen: u64, mut io: LinkIo) -> Result<Step, LinkEnd> {
    match exchange(server, gen, &mut io).await {
        Ok(Synced::Full(full)) => Ok(Step::Transfer(io, full)),
        Ok(Synced::Partial(offsets)) => Ok(Step::Stream(io, offsets)),
        Err(e) => Err(e.report()),
    }
}

async fn exchange(
    server: &Arc<Server>,
    gen: u64,
    io: &mut LinkIo,
) -> Result<Synced, HandshakeError> {
    ping(server, io).await?;
    announce(server, io).await?;
    psync(server, gen, io).await
}

/// The next reply line, waiting at most `repl-timeout` (Redis's handshake
/// deadline, counted from the last byte the master sent).
async fn read_reply(server: &Server, io: &mut LinkIo) -> Result<String, HandshakeError> {
    match io.read_line(repl_timeout(server)).await {
        Ok(line) => Ok(line),
        Err(ReadErr::Timeout) => Err(HandshakeError::Timeout),
        Err(e) => Err(HandshakeError::Read(e)),
    }
}

async fn ping(server: &Server, io: &mut LinkIo) -> Result<(), HandshakeError> {
    io.send(&[b"PING"]).await.map_err(HandshakeError::Send)?;
    let reply = read_reply(server, io).await?;
    if !ping_accepted(&reply) {
        return Err(HandshakeError::PingRejected(reply));
    }
    crate::notice!("Master replied to PING, replication can continue...");
    Ok(())
}

/// Whether the PING reply lets the handshake go on: any status reply, or an
/// error saying authentication comes first (AUTH follows).
fn ping_accepted(reply: &str) -> bool {
    reply.starts_with('+')
        || reply.starts_with("-NOAUTH")
        || reply.starts_with("-NOPERM")
        || reply.starts_with("-ERR operation not permitted")
}

/// A command of the announcement batch whose reply is still to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Auth,
    ListeningPort,
    IpAddress,
    Capa,
}

/// What one announcement reply means.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Accepted,
    /// A REPLCONF option the master rejected: logged, not fatal.
    NotUnderstood(&'static str),
    AuthRejected,
}

fn check_reply(step: Pending, reply: &str) -> Verdict {
    if !reply.starts_with('-') {
        return Verdict::Accepted;
    }
    match step {
        Pending::Auth => Verdict::AuthRejected,
        Pending::ListeningPort => Verdict::NotUnderstood("listening-port"),
        Pending::IpAddress => Verdict::NotUnderstood("ip-address"),
        Pending::Capa => Verdict::NotUnderstood("capa"),
    }
}

/// What the replica announces, from its configuration.
#[derive(Debug, Clone, Default)]
struct Announce {
    /// `masterauth` and `masteruser`.
    auth: Option<(Option<String>, String)>,
    /// `replica-announce-port`, else `tls-port` with `tls-replication`, else `port`.
    port: u16,
    /// `replica-announce-ip`.
    ip: Option<String>,
}

impl Announce {
    fn from_config(server: &Server) -> Self {
        let c = server.config.read();
        Announce {
            auth: c.masterauth.clone().map(|pw| (c.masteruser.clone(), pw)),
            port: if c.replica_announce_port != 0 {
                c.replica_announce_port
            } else {
                // Over a TLS link the master reaches us on our TLS port (Redis 7.0).
                let s = crate::tls::Settings::from_config(&c);
                if s.replication && s.port != 0 {
                    s.port
                } else {
                    c.port
                }
            },
            ip: c.replica_announce_ip.clone(),
        }
    }

    /// The batch (AUTH, REPLCONF listening-port [ip-address] and capa back to
    /// back) and the replies it will get, in order.
    fn batch(&self) -> (Vec<u8>, Vec<Pending>) {
        let b = |s: &str| Bytes::from(s.to_string());
        let mut out = Vec::new();
        let mut pending = Vec::new();
        if let Some((user, pw)) = &self.auth {
            let mut argv = vec![b("AUTH")];
            argv.extend(user.as_deref().map(b));
            argv.push(b(pw));
            crate::propagate::encode_command(&argv, &mut out);
            pending.push(Pending::Auth);
        }
        let port = self.port.to_string();
        crate::propagate::encode_command(&[b("REPLCONF"), b("listening-port"), b(&port)], &mut out);
        pending.push(Pending::ListeningPort);
        if let Some(ip) = &self.ip {
            crate::propagate::encode_command(&[b("REPLCONF"), b("ip-address"), b(ip)], &mut out);
            pending.push(Pending::IpAddress);
        }
        let capa = [b("REPLCONF"), b("capa"), b("eof"), b("capa"), b("psync2")];
        crate::propagate::encode_command(&capa, &mut out);
        pending.push(Pending::Capa);
        (out, pending)
    }
}

async fn announce(server: &Server, io: &mut LinkIo) -> Result<(), HandshakeError> {
    let (batch, pending) = Announce::from_config(server).batch();
    io.stream
        .write_all(&batch)
        .await
        .map_err(HandshakeError::Send)?;
    for step in pending {
        let reply = read_reply(server, io).await?;
        match check_reply(step, &reply) {
            Verdict::Accepted => {}
            Verdict::AuthRejected => return Err(HandshakeError::AuthRejected(reply)),
            Verdict::NotUnderstood(option) => crate::notice!(
                "(Non critical) Master does not understand REPLCONF {option}: {reply}"
            ),
        }
    }
    Ok(())
}

/// The PSYNC arguments: continue the cached master's history, or `? -1`.
fn psync_args(cached: Option<&CachedMaster>) -> (String, String) {
    match cached {
        Some(c) => (c.replid.clone(), (c.reploff + 1).to_string()),
        None => ("?".to_string(), "-1".to_string()),
    }
}

/// What the master answered to PSYNC.
#[derive(Debug, PartialEq, Eq)]
enum PsyncReply {
    Full {
        replid: String,
        offset: i64,
    },
    /// `+FULLRESYNC` without a 40-character id and an offset.
    BadFull,
    /// `+CONTINUE [<new replid>]` (the id only when it is 40 characters).
    Continue {
        replid: Option<String>,
    },
    /// The master cannot serve a sync now (no link of its own, loading, fenced).
    TryLater,
    /// `-ERR...`: an old master without PSYNC; fall back to SYNC.
    Unsupported,
    /// Anything else; fall back to SYNC too.
    Unexpected,
}

fn classify_psync(reply: &str) -> PsyncReply {
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC") {
        let mut parts = rest.split_whitespace();
        let replid = parts.next().unwrap_or("");
        let offset = parts.next().and_then(|o| o.parse::<i64>().ok());
        return match offset {
            Some(offset) if replid.len() == 40 => PsyncReply::Full {
                replid: replid.to_string(),
                offset,
            },
            _ => PsyncReply::BadFull,
        };
    }
    if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let id = rest.trim();
        let replid = (id.len() == 40).then(|| id.to_string());
        return PsyncReply::Continue { replid };
    }
    if ["-NOMASTERLINK", "-LOADING", "-FENCED"]
        .iter()
        .any(|p| reply.starts_with(p))
    {
        return PsyncReply::TryLater;
    }
    if reply.starts_with("-ERR") {
        PsyncReply::Unsupported
    } else {
        PsyncReply::Unexpected
    }
}

async fn psync(server: &Arc<Server>, gen: u64, io: &mut LinkIo) -> Result<Synced, HandshakeError> {
    let (cached, failover) = {
        let store = server.store.lock();
        let r = &store.repl;
        (r.cached_master.clone(), failover::psync_suffix(r))
    };
    let (id, off) = psync_args(cached.as_ref());
    if cached.is_some() {
        crate::notice!("Trying a partial resynchronization (request {id}:{off}).");
    } else {
        crate::notice!("Partial resynchronization not possible (no cached master)");
    }
    let mut argv: Vec<&[u8]> = vec![b"PSYNC", id.as_bytes(), off.as_bytes()];
    argv.extend(failover);
    if let Err(e) = io.send(&argv).await {
        if failover.is_some() {
            failover::psync_write_failed(server, &mut server.store.lock());
        }
        return Err(HandshakeError::SendPsync(e));
    }
    // Newlines until the master starts the sync (it waits for more replicas or
    // for a snapshot); each one restarts the wait.
    let reply = loop {
        match read_reply(server, io).await {
            Ok(l) if l.is_empty() => continue,
            Ok(l) => break l,
            Err(HandshakeError::Read(e)) => {
                crate::warning!("Failed to read response from the server: {e}");
                return Err(HandshakeError::NoPsyncReply);
            }
            Err(e) => return Err(e),
        }
    };
    let kind = classify_psync(&reply);
    if failover.is_some() {
        handover_answered(server, &kind, &reply)?;
    }
    match kind {
        PsyncReply::Full { replid, offset } => {
            crate::notice!("Full resync from master: {replid}:{offset}");
            Ok(Synced::Full(FullResync::At { replid, offset }))
        }
        PsyncReply::BadFull => Err(HandshakeError::BadFullResync),
        PsyncReply::Continue { replid } => {
            crate::notice!("Successful partial resynchronization with master.");
            let offsets = continue_cached(server, gen, replid)?;
            crate::notice!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
            Ok(Synced::Partial(offsets))
        }
        PsyncReply::TryLater => Err(HandshakeError::TryLater(reply)),
        PsyncReply::Unsupported | PsyncReply::Unexpected => fall_back_to_sync(io, &reply).await,
    }
}

/// The reply to a handover's `PSYNC ... FAILOVER`: a resync (partial or full)
/// ends the failover; anything else is logged as any PSYNC reply would be and
/// aborts it (this node is a master again, the link is over).
fn handover_answered(
    server: &Server,
    kind: &PsyncReply,
    reply: &str,
) -> Result<(), HandshakeError> {
    let synced = matches!(kind, PsyncReply::Full { .. } | PsyncReply::Continue { .. });
    if !synced {
        match kind {
            PsyncReply::BadFull => crate::warning!("{}", HandshakeError::BadFullResync),
            PsyncReply::TryLater => {
                crate::notice!("{}", HandshakeError::TryLater(reply.to_string()))
            }
            PsyncReply::Unsupported => crate::warning!(
                "Master does not support PSYNC or is in error state (reply: {reply})"
            ),
            _ => crate::warning!("Unexpected reply to PSYNC from master: {reply}"),
        }
    }
    if failover::psync_answered(server, &mut server.store.lock(), synced) {
        Ok(())
    } else {
        Err(HandshakeError::Stale)
    }
}

/// `+CONTINUE`: the cached master becomes the live link (a new master id
/// shifts our history to replid2 and drops our own replicas).
fn continue_cached(
    server: &Server,
    gen: u64,
    newid: Option<String>,
) -> Result<LinkOffsets, HandshakeError> {
    let mut out = None;
    let ok = update(server, gen, |store, m| {
        let r = &mut store.repl;
        let Some(c) = r.cached_master.take() else {
            return;
        };
        if let Some(newid) = newid.filter(|id| *id != c.replid) {
            crate::warning!("Master replication ID changed to {newid}");
            r.replid2 = c.replid.clone();
            r.second_replid_offset = r.master_repl_offset + 1;
            r.replid = newid;
            r.disconnect_replicas();
        }
        let size = server.config.read().repl_backlog_size;
        r.ensure_backlog(size);
        let offsets = LinkOffsets::resumed(&c);
        m.state = LinkState::Connected;
        m.offsets = Some(offsets);
        m.last_io = Instant::now();
        out = Some(offsets);
    });
    if !ok {
        return Err(HandshakeError::Stale);
    }
    out.ok_or(HandshakeError::NoCachedMaster)
}

async fn fall_back_to_sync(io: &mut LinkIo, reply: &str) -> Result<Synced, HandshakeError> {
    if reply.starts_with("-ERR") {
        crate::warning!("Master does not support PSYNC or is in error state (reply: {reply})");
    } else {
        crate::warning!("Unexpected reply to PSYNC from master: {reply}");
    }
    crate::notice!("Retrying with SYNC...");
    io.stream
        .write_all(b"SYNC\r\n")
        .await
        .map_err(HandshakeError::SendSync)?;
    Ok(Synced::Full(FullResync::Legacy))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn ping_goes_on_after_status_or_auth_required() {
        for ok in [
            "+PONG",
            "-NOAUTH Authentication required.",
            "-NOPERM this user has no permissions",
            "-ERR operation not permitted",
        ] {
            assert!(ping_accepted(ok), "{ok}");
        }
        for bad in ["-ERR unknown command", "-LOADING", ":1", ""] {
            assert!(!ping_accepted(bad), "{bad}");
        }
    }

    #[test]
    fn announcement_replies_only_fail_on_auth() {
        assert_eq!(check_reply(Pending::Auth, "+OK"), Verdict::Accepted);
        assert_eq!(
            check_reply(Pending::Auth, "-WRONGPASS invalid"),
            Verdict::AuthRejected
        );
        assert_eq!(
            check_reply(Pending::IpAddress, "-ERR Unrecognized"),
            Verdict::NotUnderstood("ip-address")
        );
        assert_eq!(
            check_reply(Pending::Capa, "-ERR"),
            Verdict::NotUnderstood("capa")
        );
        assert_eq!(
            check_reply(Pending::ListeningPort, "-ERR"),
            Verdict::NotUnderstood("listening-port")
        );
    }

    #[test]
    fn batch_has_auth_and_ip_only_when_configured() {
        let plain = Announce {
            auth: None,
            port: 6380,
            ip: None,
        };
        let (bytes, pending) = plain.batch();
        assert_eq!(pending, vec![Pending::ListeningPort, Pending::Capa]);
        assert_eq!(
            bytes,
            b"*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$4\r\n6380\r\n\
              *5\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n"
                .to_vec()
        );
        let full = Announce {
            auth: Some((Some("u".into()), "pw".into())),
            port: 1,
            ip: Some("10.0.0.1".into()),
        };
        let (bytes, pending) = full.batch();
        assert_eq!(
            pending,
            vec![
                Pending::Auth,
                Pending::ListeningPort,
                Pending::IpAddress,
                Pending::Capa
            ]
        );
        assert!(bytes.starts_with(b"*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$2\r\npw\r\n"));
        let no_user = Announce {
            auth: Some((None, "pw".into())),
            ..Announce::default()
        };
        assert!(no_user
            .batch()
            .0
            .starts_with(b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"));
    }

    #[test]
    fn psync_asks_for_the_byte_after_the_cached_offset() {
        assert_eq!(psync_args(None), ("?".into(), "-1".into()));
        let c = CachedMaster {
            replid: ID.into(),
            reploff: 99,
            db: 3,
        };
        assert_eq!(psync_args(Some(&c)), (ID.into(), "100".into()));
    }

    #[test]
    fn psync_replies_are_classified() {
        let full = format!("+FULLRESYNC {ID} 1234");
        assert_eq!(
            classify_psync(&full),
            PsyncReply::Full {
                replid: ID.into(),
                offset: 1234
            }
        );
        assert_eq!(classify_psync("+FULLRESYNC abc 1"), PsyncReply::BadFull);
        assert_eq!(
            classify_psync(&format!("+FULLRESYNC {ID} x")),
            PsyncReply::BadFull
        );
        assert_eq!(
            classify_psync("+CONTINUE"),
            PsyncReply::Continue { replid: None }
        );
        assert_eq!(
            classify_psync(&format!("+CONTINUE {ID}")),
            PsyncReply::Continue {
                replid: Some(ID.into())
            }
        );
        assert_eq!(
            classify_psync("+CONTINUE short"),
            PsyncReply::Continue { replid: None }
        );
        for later in ["-NOMASTERLINK x", "-LOADING x", "-FENCED x"] {
            assert_eq!(classify_psync(later), PsyncReply::TryLater, "{later}");
        }
        assert_eq!(
            classify_psync("-ERR unknown command 'PSYNC'"),
            PsyncReply::Unsupported
        );
        assert_eq!(classify_psync("+OK"), PsyncReply::Unexpected);
    }

    #[test]
    fn errors_read_as_redis_logs_them() {
        let e = HandshakeError::PingRejected("-ERR x".into());
        assert_eq!(e.to_string(), "Error reply to PING from master: '-ERR x'");
        let e = HandshakeError::Read(ReadErr::Timeout);
        assert_eq!(
            e.to_string(),
            "Failed to read response from the server: Resource temporarily unavailable"
        );
        assert_eq!(HandshakeError::Stale.report(), LinkEnd::Stale);
        assert_eq!(HandshakeError::BadFullResync.report(), LinkEnd::Failed);
    }
}
