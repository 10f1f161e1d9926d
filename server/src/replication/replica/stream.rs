//! CONNECTED: applies the master's stream as the master client (flags=M in
//! CLIENT LIST), counts offsets (not inside a MULTI), proxies the exact applied
//! bytes to our own backlog and sub-replicas, answers GETACK and ACKs every
//! second. The link's [`LinkOffsets`] live here and are published to
//! `MasterLink::offsets` after every batch.

use super::link_io::{ack_bytes, LinkIo};
use super::{link_broken, link_lost, repl_timeout, LinkEnd};
use crate::commands::ClientState;
use crate::exec::{self, Outcome};
use crate::replication::LinkOffsets;
use crate::resp::{ProtocolError, Reply, Request, RequestParser};
use crate::server::{ClientHandle, ClientId, ClientInfo, Server, Store};
use crate::tls::{ReadHalf, WriteHalf};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why the stream ended. The texts are Redis's log lines.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error(
        "WARNING: Receiving inline protocol from master, master stream corruption? Closing the master connection and discarding the cached master."
    )]
    InlineProtocol,
    #[error("Protocol error from master: {0}. Closing the master connection.")]
    Protocol(ProtocolError),
    #[error("MASTER timeout: no data nor PING received...")]
    Timeout,
    /// Closed, killed (CLIENT KILL TYPE master) or a failed write.
    #[error("Connection with master lost.")]
    Lost,
    #[error("replaced by a newer REPLICAOF")]
    Stale,
}

impl StreamError {
    /// Logs the end (once) and records it: a corrupt stream discards the
    /// history, a lost link becomes the cached master at `offsets`.
    fn report(self, server: &Server, gen: u64, offsets: LinkOffsets) -> LinkEnd {
        match self {
            StreamError::Stale => LinkEnd::Stale,
            StreamError::InlineProtocol | StreamError::Protocol(_) => {
                crate::warning!("{self}");
                link_broken(server, gen)
            }
            StreamError::Timeout => {
                crate::warning!("{self}");
                link_lost(server, gen, offsets)
            }
            // `link_lost` logs "Connection with master lost." itself.
            StreamError::Lost => link_lost(server, gen, offsets),
        }
    }
}

/// CONNECTED until the link ends.
pub(super) async fn run(
    server: &Arc<Server>,
    gen: u64,
    io: LinkIo,
    offsets: LinkOffsets,
) -> LinkEnd {
    let LinkIo { stream, buf } = io;
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let local = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (rd, wr) = stream.into_split();
    let (client, handle) = master_client(server, peer, local, offsets.db);
    let _registered = Registered(server, client.id);
    let mut link = MasterStream::new(server, gen, client, handle, buf, offsets);
    let end = link.pump(rd, wr).await;
    end.report(server, gen, link.offsets)
}

/// Creates the master client and lists it in the client registry (CLIENT LIST
/// shows it with flags=M; CLIENT KILL TYPE master drops the link).
fn master_client(
    server: &Server,
    peer: String,
    local: String,
    db: usize,
) -> (ClientState, Arc<ClientHandle>) {
    let id = server
        .next_client_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut client = ClientState::new(id);
    client.is_master = true;
    client.authenticated = true;
    client.db = db;
    let info = ClientInfo {
        resp: 2,
        user: "default".into(),
        flags: "M".into(),
        db,
        multi: -1,
        ..Default::default()
    };
    let handle = Arc::new(ClientHandle::new(id, peer, local, info));
    server.clients.lock().insert(id, handle.clone());
    (client, handle)
}

/// Removes the master client from the client registry when the link ends.
struct Registered<'a>(&'a Server, ClientId);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.clients.lock().remove(&self.1);
    }
}

/// The master client applying the stream.
struct MasterStream<'a> {
    server: &'a Arc<Server>,
    gen: u64,
    client: ClientState,
    handle: Arc<ClientHandle>,
    parser: RequestParser,
    /// Received bytes not parsed yet.
    inbuf: BytesMut,
    /// Mirrors `inbuf` from the last applied command boundary on, so the exact
    /// bytes of each applied command can be proxied.
    raw: BytesMut,
    offsets: LinkOffsets,
    last_io: Instant,
}

impl<'a> MasterStream<'a> {
    fn new(
        server: &'a Arc<Server>,
        gen: u64,
        client: ClientState,
        handle: Arc<ClientHandle>,
        inbuf: BytesMut,
        mut offsets: LinkOffsets,
    ) -> Self {
        // What followed the payload or +CONTINUE was read already.
        offsets.read = offsets.applied + inbuf.len() as i64;
        let max_bulk = server.config.read().proto_max_bulk_len;
        MasterStream {
            server,
            gen,
            client,
            handle,
            parser: RequestParser::new(max_bulk),
            raw: BytesMut::from(&inbuf[..]),
            inbuf,
            offsets,
            last_io: Instant::now(),
        }
    }

    /// Applies, answers and reads until the link ends.
    async fn pump(&mut self, mut rd: ReadHalf, mut wr: WriteHalf) -> StreamError {
        let timeout = repl_timeout(self.server);
        let mut ack = tokio::time::interval(Duration::from_secs(1));
        ack.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut chunk = BytesMut::with_capacity(64 * 1024);
        loop {
            let getacks = match self.apply_batch() {
                Ok(g) => g,
                Err(e) => return e,
            };
            self.publish_client_info();
            if self.handle.is_killed() {
                return StreamError::Lost;
            }
            for off in getacks {
                if wr.write_all(&ack_bytes(off)).await.is_err() {
                    return StreamError::Lost;
                }
            }
            tokio::select! {
                r = rd.read_buf(&mut chunk) => match r {
                    Ok(0) | Err(_) => return StreamError::Lost,
                    Ok(n) => self.received(&mut chunk, n),
                },
                _ = self.handle.kill_notify.notified() => return StreamError::Lost,
                _ = ack.tick() => {
                    if self.last_io.elapsed() > timeout {
                        return StreamError::Timeout;
                    }
                    if wr.write_all(&ack_bytes(self.offsets.applied)).await.is_err() {
                        return StreamError::Lost;
                    }
                }
            }
        }
    }

    fn received(&mut self, chunk: &mut BytesMut, n: usize) {
        self.offsets.read += n as i64;
        self.inbuf.extend_from_slice(chunk);
        self.raw.extend_from_slice(chunk);
        chunk.clear();
        self.last_io = Instant::now();
    }

    /// Applies everything complete in the buffer under one lock; returns the
    /// offsets GETACKs asked for (each the offset before that GETACK).
    fn apply_batch(&mut self) -> Result<Vec<i64>, StreamError> {
        let server = self.server;
        let mut store = server.store.lock();
        if store.repl.link_generation != self.gen {
            return Err(StreamError::Stale);
        }
        store.cmd_clock = Some(crate::util::Mono::now());
        let applied = self.apply_commands(&mut store);
        store.cmd_clock = None;
        // On an error nothing of the batch is proxied: `link_broken` discards
        // this history anyway.
        let (getacks, settled) = applied?;
        // One append per batch instead of one per command.
        if settled > 0 {
            let bytes = self.raw.split_to(settled).freeze();
            store.repl.append_stream(bytes);
        }
        self.offsets.db = self.client.db;
        if let Some(m) = store.repl.master.as_mut() {
            m.offsets = Some(self.offsets);
            m.last_io = self.last_io;
        }
        Ok(getacks)
    }

    /// The command loop of [`Self::apply_batch`]; returns the GETACK offsets and
    /// how many bytes at the front of `raw` were applied (a MULTI still open at
    /// the end of a batch stays unsettled until its EXEC).
    fn apply_commands(&mut self, store: &mut Store) -> Result<(Vec<i64>, usize), StreamError> {
        let mut getacks = Vec::new();
        let mut out = Reply::new(false);
        // The command name, for the error log (a reused buffer: cloning the
        // `Bytes` may allocate).
        let mut name = Vec::new();
        let mut settled = 0usize;
        loop {
            if self.parser.is_idle()
                && !self.inbuf.is_empty()
                && !matches!(self.inbuf.first(), Some(b'*' | b'\n' | b'\r'))
            {
                return Err(StreamError::InlineProtocol);
            }
            let argv = match self.parser.parse(&mut self.inbuf) {
                Ok(None) => return Ok((getacks, settled)),
                Ok(Some(Request::Empty)) => continue,
                Ok(Some(Request::Command(argv))) => argv,
                Err(e) => return Err(StreamError::Protocol(e)),
            };
            if is_getack(&argv) {
                // Answered with the offset before this command.
                getacks.push(self.offsets.applied);
            } else {
                self.apply(store, argv, &mut out, &mut name);
            }
            if self.client.multi.is_none() {
                // Everything consumed so far is applied: our offset moves now
                // (GETACK answers it), the bytes join our own stream.
                let applied = self.raw.len() - self.inbuf.len();
                self.offsets.applied += (applied - settled) as i64;
                settled = applied;
            }
        }
    }

    /// Executes one command as the master client. An error reply goes nowhere
    /// (the master reads none) but is logged, as Redis does.
    fn apply(&mut self, store: &mut Store, argv: Vec<Bytes>, out: &mut Reply, name: &mut Vec<u8>) {
        out.buf.clear();
        name.clear();
        name.extend_from_slice(argv.first().map_or(&[][..], |a| &a[..]));
        let outcome = exec::process(self.server, store, &mut self.client, None, argv, out);
        if matches!(outcome, Outcome::Blocked { .. }) {
            store.unblock(self.client.id);
        }
        if out.buf.first() == Some(&b'-') {
            let line = String::from_utf8_lossy(&out.buf);
            let err = line.trim_start_matches('-').lines().next().unwrap_or("");
            let name = String::from_utf8_lossy(name);
            crate::warning!(
                "== CRITICAL == This replica is sending an error to its master: '{err}' after processing the command '{name}'"
            );
            use crate::config::propagation::{must_stop, stop, Source};
            let config = self.server.config.read();
            if must_stop(&config, Source::Master) {
                stop(&config, Source::Master, &name);
            }
        }
    }

    /// Keeps CLIENT LIST's view of the master client current.
    fn publish_client_info(&self) {
        let mut info = self.handle.info.lock();
        info.db = self.client.db;
        info.last_interaction = Some(crate::util::Mono::ago(self.last_io.elapsed()));
    }
}

/// `REPLCONF GETACK ...`: answered by the link, not executed.
fn is_getack(argv: &[Bytes]) -> bool {
    matches!(argv, [cmd, sub, ..]
        if cmd.eq_ignore_ascii_case(b"replconf") && sub.eq_ignore_ascii_case(b"getack"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getack_is_recognised_in_any_case() {
        let argv = |a: &[&'static str]| -> Vec<Bytes> {
            a.iter().map(|s| Bytes::from_static(s.as_bytes())).collect()
        };
        assert!(is_getack(&argv(&["REPLCONF", "GETACK", "*"])));
        assert!(is_getack(&argv(&["replconf", "getack"])));
        assert!(!is_getack(&argv(&["REPLCONF", "ACK", "1"])));
        assert!(!is_getack(&argv(&["REPLCONF"])));
        assert!(!is_getack(&argv(&["SET", "getack", "x"])));
    }

    #[test]
    fn stream_errors_read_as_redis_logs_them() {
        let e = StreamError::Protocol(ProtocolError("invalid bulk length".into()));
        assert_eq!(
            e.to_string(),
            "Protocol error from master: Protocol error: invalid bulk length. Closing the master connection."
        );
        assert_eq!(
            StreamError::Timeout.to_string(),
            "MASTER timeout: no data nor PING received..."
        );
    }
}
