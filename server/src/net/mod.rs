//! Networking layer: listeners and the per-connection loop (read, parse, execute a
//! batch under one store lock, write; Pub/Sub and MONITOR pushes; blocking waits).

use crate::commands::ClientState;
use crate::db::PREFETCH_MAX;
use crate::exec::{self, Outcome};
use crate::pubsub::PubMsg;
use crate::resp::{Reply, Request, RequestParser};
use crate::rounds::Outbox;
use crate::server::{ClientHandle, ClientInfo, Server, Stats};
use crate::tls::Stream;
use bytes::{Bytes, BytesMut};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::mpsc;

pub mod evloop;

/// Most commands run per store-lock acquisition, so one deep pipeline cannot starve others.
const MAX_BATCH: usize = 512;
/// Room made in the read buffer before each read. Requests are split off the buffer
/// as they are parsed, so without this the room left shrinks batch by batch and a
/// read fills only that remainder: a pipelined batch then arrived in two reads and
/// its replies left in two writes (1 read per 15.4 requests at SET -P 16 against
/// Redis's 16, 1 per 12 at MSET -P 16). Reserving reclaims the buffer in place once
/// the requests split off it are gone (16 KiB, as allocated, holds the leftover of a
/// partial request plus this room), so it rarely allocates.
const READ_ROOM: usize = 8 * 1024;
/// Replies built before they are written out: a deep pipeline of large replies goes
/// out in pieces of about this size, so a client's memory follows its output limit
/// and the largest single reply, not the depth of its pipeline.
const REPLY_FLUSH: usize = 256 * 1024;

/// Binds the configured addresses (`bind`, `port`). A leading `-` makes an address
/// optional, `*` means all IPv4, `::*` all IPv6, as in Redis.
pub async fn bind(bind: &[String], port: u16) -> Result<Vec<TcpListener>, String> {
    let mut out = Vec::new();
    if port == 0 {
        return Ok(out);
    }
    for b in bind {
        let (optional, addr) = match b.strip_prefix('-') {
            Some(a) => (true, a),
            None => (false, b.as_str()),
        };
        let host = match addr {
            "*" => "0.0.0.0",
            "::*" => "::",
            a => a,
        };
        let sockaddr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        match bind_one(&sockaddr) {
            Ok(l) => out.push(l),
            Err(e) if optional => {
                crate::verbose!("Skipping optional bind {sockaddr}: {e}");
            }
            Err(e) => {
                return Err(format!(
                    "Warning: Could not create server TCP listening socket {addr}:{port}: {e}"
                ))
            }
        }
    }
    Ok(out)
}

fn bind_one(addr: &str) -> std::io::Result<TcpListener> {
    let sa: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    let sock = if sa.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    sock.set_reuseaddr(true)?;
    sock.bind(sa)?;
    sock.listen(511)
}

/// Accepts connections until shutdown is signalled; on the TLS port (`tls`) each
/// connection starts with the TLS handshake.
pub async fn accept_loop(server: Arc<Server>, listener: TcpListener, tls: bool) {
    use std::os::fd::{AsFd, AsRawFd};
    // The copy lives as long as this loop: dropped with the listener when it ends
    // (a copy left behind would keep the port open in a process that goes on).
    let copy = match listener.as_fd().try_clone_to_owned() {
        Ok(fd) => {
            let raw = fd.as_raw_fd();
            server.listeners.lock().push(fd);
            Some(raw)
        }
        Err(e) => {
            crate::warning!("Keeping a copy of the listening socket: {e}");
            None
        }
    };
    accept_until_shutdown(&server, &listener, tls).await;
    if let Some(raw) = copy {
        server.listeners.lock().retain(|fd| fd.as_raw_fd() != raw);
    }
}

async fn accept_until_shutdown(server: &Arc<Server>, listener: &TcpListener, tls: bool) {
    let mut shutdown = server.shutdown.subscribe();
    loop {
        tokio::select! {
            // Biased, the shutdown first: a connection waiting in the backlog when
            // the server stops is not taken (a server that is gone would serve it;
            // in a shared process nothing else would close it).
            biased;
            _ = crate::server::stopping(&mut shutdown) => break,
            r = listener.accept() => {
                match r {
                    Ok((stream, _)) => {
                        let s = server.clone();
                        tokio::spawn(async move { handle_connection(s, stream, tls).await });
                    }
                    Err(e) => {
                        crate::warning!("Accepting client connection: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
    }
}

/// Redis 7.0's refusal of a non-loopback client while protected mode is on and the
/// default user has no password.
const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Redis's protected-mode rule (7.0): with `protected-mode yes` and no password for the
/// default user, only loopback peers are served, whatever `bind` says.
pub fn protected_mode_refuses(
    protected: bool,
    has_password: bool,
    peer: Option<std::net::IpAddr>,
) -> bool {
    protected && !has_password && !peer.is_some_and(|ip| ip.is_loopback() || is_mapped_loopback(ip))
}

fn is_mapped_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        std::net::IpAddr::V4(_) => false,
    }
}

/// `tcp-keepalive`: probes after `secs` idle, then every `secs / 3`, three of them, as
/// Redis's `anetKeepAlive` sets them.
fn set_keepalive(stream: &TcpStream, secs: u64) {
    if secs == 0 {
        return;
    }
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(secs))
        .with_interval(Duration::from_secs((secs / 3).max(1)))
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&ka) {
        crate::verbose!("Setting TCP keepalive: {e}");
    }
}

/// Serves one client connection to completion (after the TLS handshake on the
/// TLS port).
pub async fn handle_connection(server: Arc<Server>, tcp: TcpStream, tls: bool) {
    let _ = tcp.set_nodelay(true);
    Stats::incr(&server.stats.total_connections_received, 1);
    let mut stream = if tls {
        let limit = server.config.read().maxclients;
        match crate::tls::accept(&server.tls, tcp, limit).await {
            Some(s) => s,
            None => return,
        }
    } else {
        Stream::Plain(tcp)
    };
    let Some((conn, msg_rx)) = admit(&server, &mut stream, None).await else {
        return;
    };
    // Plain TCP goes to an event loop when there are any (`tandem-event-loop`).
    let stream = match stream {
        Stream::Plain(tcp) if server.event_loops.get().is_some() => {
            evloop::adopt(&server, tcp, conn, msg_rx);
            return;
        }
        other => other,
    };
    serve(server, stream, conn, msg_rx, None).await;
}

/// The `unixsocket` listener (with its path), if one is configured: a file left at
/// the path (a socket of an earlier run) is removed first, and `unixsocketperm`, when
/// not 0, becomes the socket's mode, as Redis does. A failure is Redis's start-up
/// error.
pub fn bind_unix(config: &crate::config::Config) -> Result<Option<(UnixListener, String)>, String> {
    use std::os::unix::fs::PermissionsExt;
    let path = config.get("unixsocket").unwrap_or_default().to_string();
    if path.is_empty() {
        return Ok(None);
    }
    let _ = std::fs::remove_file(&path);
    let failed = |e: std::io::Error| {
        crate::warning!("Failed opening Unix socket: {e}");
        format!("Failed opening Unix socket: {e}")
    };
    let listener = UnixListener::bind(&path).map_err(failed)?;
    let perm = config
        .get("unixsocketperm")
        .and_then(|p| u32::from_str_radix(p, 8).ok())
        .unwrap_or(0);
    if perm != 0 {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(perm)).map_err(failed)?;
    }
    Ok(Some((listener, path)))
}

/// Removes the `unixsocket` file when the server exits (as Redis does).
pub fn remove_unix_socket(server: &Server) {
    let path = server
        .config
        .read()
        .get("unixsocket")
        .unwrap_or_default()
        .to_string();
    if path.is_empty() {
        return;
    }
    crate::notice!("Removing the unix socket file.");
    if let Err(e) = std::fs::remove_file(&path) {
        crate::warning!("Error removing the unix socket file: {e}");
    }
}

/// Accepts clients on the `unixsocket` listener (`path`) until shutdown.
pub async fn accept_unix_loop(server: Arc<Server>, listener: UnixListener, path: String) {
    use std::os::fd::{AsFd, AsRawFd};
    // As for TCP: a copy `stop_listening` can shut down at once.
    let copy = listener.as_fd().try_clone_to_owned().ok().map(|fd| {
        let raw = fd.as_raw_fd();
        server.listeners.lock().push(fd);
        raw
    });
    let mut shutdown = server.shutdown.subscribe();
    loop {
        tokio::select! {
            biased;
            _ = crate::server::stopping(&mut shutdown) => break,
            r = listener.accept() => match r {
                Ok((unix, _)) => {
                    let s = server.clone();
                    let path = path.clone();
                    tokio::spawn(async move {
                        Stats::incr(&s.stats.total_connections_received, 1);
                        let mut stream = Stream::Unix(unix);
                        if let Some((conn, msg_rx)) = admit(&s, &mut stream, Some(&path)).await {
                            serve(s, stream, conn, msg_rx, None).await;
                        }
                    });
                }
                Err(e) => {
                    crate::warning!("Accepting client connection: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    if let Some(raw) = copy {
        server.listeners.lock().retain(|fd| fd.as_raw_fd() != raw);
    }
}

/// Redis's checks before a client is served (protected mode, maxclients), then the
/// client's registration: its handle in the client table and its connection state.
/// `None` when the client was refused (it got Redis's error).
async fn admit(
    server: &Arc<Server>,
    stream: &mut Stream,
    unix_path: Option<&str>,
) -> Option<(Conn, mpsc::UnboundedReceiver<PubMsg>)> {
    let peer_addr = stream.peer_addr().ok();
    // A Unix socket client's address, both ends, is the socket's path and port 0
    // (as Redis shows it).
    let (peer, local) = match unix_path {
        Some(path) => (format!("{path}:0"), format!("{path}:0")),
        None => (
            peer_addr.map(|a| a.to_string()).unwrap_or_default(),
            stream
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
        ),
    };
    let id = server
        .next_client_id
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Redis `authRequired`: the default user is off or has passwords.
    let open_default = server.acl.default_needs_no_auth();
    let (maxclients, max_bulk, qbuf_limit, protected, keepalive) = {
        let c = server.config.read();
        (
            c.maxclients,
            c.proto_max_bulk_len,
            c.client_query_buffer_limit,
            c.get("protected-mode") == Some("yes"),
            c.get("tcp-keepalive")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        )
    };
    // Protected mode is about network peers: a Unix socket client is local.
    if unix_path.is_none()
        && protected_mode_refuses(protected, !open_default, peer_addr.map(|a| a.ip()))
    {
        let _ = stream.write_all(PROTECTED_MODE_DENIED.as_bytes()).await;
        return None;
    }
    if server.clients.lock().len() >= maxclients {
        Stats::incr(&server.stats.rejected_connections, 1);
        let _ = stream
            .write_all(b"-ERR max number of clients reached\r\n")
            .await;
        return None;
    }
    if let Some(tcp) = stream.tcp() {
        set_keepalive(tcp, keepalive);
    }
    let handle = Arc::new(ClientHandle::new(
        id,
        peer,
        local,
        ClientInfo {
            resp: 2,
            user: "default".into(),
            // CLIENT LIST's `U`: a Unix socket client.
            flags: if unix_path.is_some() {
                "U".into()
            } else {
                String::new()
            },
            ..Default::default()
        },
    ));
    server.clients.lock().insert(id, handle.clone());

    let mut client = ClientState::new(id);
    client.authenticated = open_default;
    client.user = crate::acl::Session::named("default");
    let (msg_tx, msg_rx) = mpsc::unbounded_channel::<PubMsg>();
    let _ = handle.msg_tx.set(msg_tx.clone());
    client.msg_tx = Some(crate::pubsub::MsgSender::new(msg_tx, handle.clone()));
    // From here on every way out (return, panic) runs the cleanup: `Conn`'s Drop.
    let conn = Conn {
        server: server.clone(),
        handle,
        client,
        parser: RequestParser::new(max_bulk),
        inbuf: BytesMut::with_capacity(16 * 1024),
        out: Reply::new(false),
        drained: 0,
        monitor_rx: None,
        pending: std::collections::VecDeque::new(),
        held: false,
        last_cmd: LastCmd::default(),
        idle_timeout: 0,
        qbuf_limit,
        cleaned: false,
    };
    Some((conn, msg_rx))
}

/// The connection loop: run what is buffered, write the replies, then wait for the
/// socket, a pushed message, a kill or shutdown.
///
/// `first`: an outcome to complete before anything else (a connection the event
/// loop hands over because it must wait: a blocked command, WAIT, MONITOR...).
async fn serve(
    server: Arc<Server>,
    mut stream: Stream,
    mut conn: Conn,
    mut msg_rx: mpsc::UnboundedReceiver<PubMsg>,
    mut first: Option<Outcome>,
) {
    let handle = conn.handle.clone();
    // Plain TCP replies go out at the end of the scheduling round (`crate::rounds`);
    // TLS records are written by rustls as before. The guard, dropped before the
    // socket, stops round-end writes to it.
    let outbox = match &stream {
        Stream::Plain(s) => Some(Outbox::new(s.as_fd())),
        Stream::Unix(s) => Some(Outbox::new(s.as_fd())),
        Stream::Tls(_) => None,
    };
    let _closing = CloseOutbox(outbox.clone());
    let mut shutdown = server.shutdown.subscribe();
    // Looked at on every turn; the bell says when to look between requests.
    let exiting = server.shutdown.subscribe();
    // Waits for a blocked write or a client pause end on a kill or shutdown. Built
    // once, not in every `select!` below.
    let killed = handle.kill_notify.notified();
    tokio::pin!(killed);
    // `stopping`, not `changed`: it also resolves for a shutdown announced before
    // this connection subscribed.
    let shut = crate::server::stopping(&mut shutdown);
    tokio::pin!(shut);
    // Messages may have been queued before the first turn.
    let mut bell_rang = true;
    // A shutdown announced before these subscriptions is not a change they see.
    if *exiting.borrow() {
        return;
    }

    'conn: loop {
        if let Some(outcome) = first.take() {
            if !conn.finish(outcome, &mut stream).await {
                break;
            }
        }
        if handle.is_killed() || exiting.has_changed().unwrap_or(true) {
            break;
        }
        // Messages queued before the requests were read go out before their replies
        // (an invalidation must precede the reply to a later read of the same key).
        // Every sender rings the bell after queueing.
        if std::mem::take(&mut bell_rang) || handle.bell.take() {
            while let Ok(m) = msg_rx.try_recv() {
                conn.encode_pubsub(m);
            }
        }
        // Run whatever complete requests are buffered.
        match conn.run_buffered(&mut stream).await {
            Ok(true) => {}
            Ok(false) => break 'conn,
            Err(_) => break 'conn,
        }
        let stalled = outbox.as_ref().is_some_and(|o| o.stalled());
        if !conn.out.is_empty() || stalled {
            let n = conn.out.len() as u64;
            let deferred = match &outbox {
                Some(o) if !stalled && !conn.client.is_replica => {
                    let buf = &mut conn.out.buf;
                    std::future::poll_fn(|cx| Poll::Ready(o.defer(buf, cx.waker()))).await
                }
                _ => false,
            };
            if !deferred {
                // Replies an earlier round could not send go first.
                if let Some(o) = &outbox {
                    o.take_into(&mut conn.out.buf);
                }
                // A peer that does not read must not hold this task forever: a kill
                // (an output limit, CLIENT KILL) or shutdown ends the write.
                tokio::select! {
                    // Biased, the write first: a write that completes at once (the
                    // common case) costs no polling of the other two.
                    biased;
                    r = stream.write_all(&conn.out.buf) => if r.is_err() { break 'conn },
                    _ = &mut killed => break 'conn,
                    _ = &mut shut => break 'conn,
                }
                conn.out.buf.clear();
            }
            Stats::incr(&server.stats.net_output_bytes, n);
            conn.written();
            if (!conn.pending.is_empty() || !conn.inbuf.is_empty()) && !conn.held {
                // The batch may have stopped to write its replies out (REPLY_FLUSH): go
                // on with what is buffered (a partial request just finds nothing to run).
                continue;
            }
        }
        if conn.client.is_replica {
            hand_over_to_replica(&server, stream, &mut conn, outbox.as_ref()).await;
            return;
        }
        if conn.held {
            tokio::select! {
                _ = server.client_pause.wait_end() => conn.set_held(false),
                Some(msg) = msg_rx.recv() => conn.encode_pubsub(msg),
                _ = &mut killed => break 'conn,
                _ = &mut shut => break 'conn,
            }
            continue;
        }
        if conn.query_buffer_over_limit() {
            break;
        }
        let idle = conn.idle_deadline();
        conn.inbuf.reserve(READ_ROOM);
        tokio::select! {
            // Biased, the read first: the wake-up that ends this wait is nearly always
            // the next request, and then the other branches are not polled again. A
            // kill, shutdown or pushed message rings the bell; the top of the loop
            // then looks at each (and messages queued meanwhile go out there, before
            // the replies to what this read brought).
            biased;
            r = stream.read_buf(&mut conn.inbuf) => {
                match r {
                    Ok(0) | Err(_) => break 'conn,
                    Ok(n) => Stats::incr(&server.stats.net_input_bytes, n as u64),
                }
            }
            _ = std::future::poll_fn(|cx| handle.bell.poll_rung(cx)) => bell_rang = true,
            Some(line) = recv_monitor(&mut conn.monitor_rx) => {
                conn.drained += line.len() as u64;
                conn.out.raw(&line);
            }
            // A round-end write left replies in the outbox: this task writes them.
            _ = std::future::poll_fn(|_| stall_watch(&outbox)), if outbox.is_some() => {}
            _ = sleep_until_opt(idle), if idle.is_some() => {
                crate::verbose!("Closing idle client");
                break 'conn;
            }
        }
    }
    last_words(&mut stream, &conn, outbox.as_ref()).await;
}

/// Replies already handed to the outbox go out as if written before the end; last
/// words (a protocol error's reply) only if the client was not killed. Both get a
/// bounded time to leave.
async fn last_words(stream: &mut Stream, conn: &Conn, outbox: Option<&Arc<Outbox>>) {
    let mut last = Vec::new();
    if let Some(o) = outbox {
        o.take_into(&mut last);
    }
    if !conn.handle.is_killed() {
        last.extend_from_slice(&conn.out.buf);
    }
    if !last.is_empty() {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&last)).await;
    }
}

/// SYNC/PSYNC succeeded: the socket now carries the replication stream. Requests
/// parsed ahead of the hand-over go back in front of the bytes; nothing is left for a
/// round-end write once the stream changes hands.
async fn hand_over_to_replica(
    server: &Arc<Server>,
    mut stream: Stream,
    conn: &mut Conn,
    outbox: Option<&Arc<Outbox>>,
) {
    if let Some(o) = outbox {
        let mut rest = Vec::new();
        o.take_into(&mut rest);
        o.close();
        if !rest.is_empty() && stream.write_all(&rest).await.is_err() {
            return;
        }
    }
    let mut inbuf = BytesMut::new();
    let mut ahead = Vec::new();
    for argv in conn.pending.drain(..) {
        crate::propagate::encode_command(&argv, &mut ahead);
    }
    inbuf.extend_from_slice(&ahead);
    inbuf.extend_from_slice(&conn.inbuf);
    conn.inbuf.clear();
    crate::replication::primary::serve_replica(server.clone(), stream, inbuf, conn.handle.clone())
        .await;
}

/// Closes a connection's outbox when its loop ends, however it ends (before the
/// socket itself is dropped: the guard is a local of the loop, the socket its
/// argument).
struct CloseOutbox(Option<Arc<Outbox>>);

impl Drop for CloseOutbox {
    fn drop(&mut self) {
        if let Some(o) = &self.0 {
            o.close();
        }
    }
}

/// Ready once a round-end write left replies for the connection to write.
fn stall_watch(outbox: &Option<Arc<Outbox>>) -> Poll<()> {
    match outbox {
        Some(o) if o.stalled() => Poll::Ready(()),
        _ => Poll::Pending,
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// CLIENT REPLY OFF|SKIP: drops the reply just written from `mark` when replies are
/// off or skipped once the command ran, as Redis decides as it writes a reply: CLIENT
/// REPLY ON clears both first, so it answers. Pub/Sub confirmations are pushes and
/// go out regardless (Redis 7.0).
fn apply_reply_mode(client: &mut ClientState, out: &mut Reply, mark: usize) {
    // Tracking messages the command wrote ahead of its reply stay.
    let mark = client.reply_start.take().unwrap_or(mark);
    if client.reply_off || client.reply_skip {
        let pushed =
            client.last_reply_is_push && !out.buf.get(mark..).is_some_and(|r| r.starts_with(b"-"));
        if !pushed {
            out.buf.truncate(mark);
        }
    }
    client.reply_skip = false;
    client.last_reply_is_push = false;
}

/// Runs one command; a panic inside it (a bug) becomes an error reply and a log line
/// instead of a dead process.
fn run_guarded(
    server: &Arc<Server>,
    store: &mut crate::server::Store,
    client: &mut ClientState,
    handle: &Arc<ClientHandle>,
    argv: Vec<Bytes>,
    out: &mut Reply,
) -> Outcome {
    // The name for the log if the command panics: a stack copy of its start, not a
    // clone of the argument (a reference count round trip on every command).
    let mut name = [0u8; 32];
    let len = argv[0].len().min(name.len());
    name[..len].copy_from_slice(&argv[0][..len]);
    guarded(&name[..len], out, |out| {
        exec::process(server, store, client, Some(handle), argv, out)
    })
}

/// The panic boundary of one command. The store stays as the command left it:
/// commands change it through whole operations, and its lock does not poison.
fn guarded(name: &[u8], out: &mut Reply, run: impl FnOnce(&mut Reply) -> Outcome) -> Outcome {
    let mark = out.len();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut *out))) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let name = crate::util::repr_bytes(&name[..name.len().min(64)]);
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            crate::warning!("BUG: command '{name}' panicked: {what}");
            out.buf.truncate(mark);
            out.error(&format!("ERR internal error while running '{name}'"));
            Outcome::Done
        }
    }
}

/// SHUTDOWN NOSAVE while a script is busy: the script holds the store and will not
/// give it back, so the orderly shutdown (which needs it) cannot run. Like Redis,
/// stop here: children killed, the AOF flushed (the script's writes are not in it:
/// they are propagated when it ends), the pidfile removed, exit.
fn exit_while_busy(server: &Arc<Server>) -> ! {
    crate::warning!("User requested shutdown...");
    stop_listening(server);
    server.children.kill_all();
    crate::aof::on_shutdown(server);
    remove_unix_socket(server);
    let pidfile = server.config.read().pidfile.clone();
    crate::daemon::remove_pidfile(&pidfile);
    crate::warning!("Redis is now ready to exit, bye bye...");
    std::process::exit(0)
}

/// Stops accepting connections at once, without the accept loops (a client that
/// connects from now on is refused, as by a Redis that closed its listeners): a
/// listening socket shut down goes back to the closed state.
fn stop_listening(server: &Server) {
    for fd in server.listeners.lock().drain(..) {
        let _ = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Both);
    }
}

async fn recv_monitor(rx: &mut Option<mpsc::UnboundedReceiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What a connection does after [`Conn::step`].
enum Step {
    /// Nothing more to run until more bytes arrive (or the pause ends): the replies
    /// built so far go out.
    Idle,
    /// Close the connection (its last words, if any, are in `out`).
    Close,
    /// Run the next batch at once (the last one was answered while a script is busy,
    /// or turned the connection into a MONITOR).
    Again,
    /// Run the next batch after the other ready connections had their turn.
    More,
    /// Wait for this outcome ([`Conn::finish`]) before going on.
    Wait(Outcome),
}

/// What [`Conn::run_batch`] did.
enum Batch {
    Ran(Ran),
    /// A script held the store: the pending commands got its BUSY-time answers.
    AnsweredWhileBusy,
    /// Close the connection.
    Close,
}

/// A batch that ran (possibly nothing: no complete request was buffered).
struct Ran {
    /// The last command's outcome.
    outcome: Outcome,
    /// Commands run.
    processed: usize,
    /// Bytes after the complete requests that are not a request.
    protocol_error: Option<crate::resp::ProtocolError>,
    /// The batch's last clock reading.
    batch_end: Option<crate::util::Mono>,
}

struct Conn {
    server: Arc<Server>,
    handle: Arc<ClientHandle>,
    client: ClientState,
    parser: RequestParser,
    inbuf: BytesMut,
    out: Reply,
    /// Bytes of queued Pub/Sub messages and MONITOR lines moved into `out` since the
    /// last write: they stay counted against the output limit until written.
    drained: u64,
    monitor_rx: Option<mpsc::UnboundedReceiver<Bytes>>,
    /// Parsed commands not yet executed (the rest of a pipeline after a command
    /// that blocked, or a batch cut at MAX_BATCH).
    pending: std::collections::VecDeque<Vec<Bytes>>,
    /// The first pending command is held back by CLIENT PAUSE until the pause ends.
    held: bool,
    /// Name and first argument of the last command run, for CLIENT LIST's `cmd=`.
    last_cmd: LastCmd,
    /// `timeout` as of the last command run (0 = idle clients stay).
    idle_timeout: u64,
    /// `client-query-buffer-limit` as of the last command run.
    qbuf_limit: usize,
    /// Set once `cleanup` ran (it runs on drop at the latest).
    cleaned: bool,
}

impl Drop for Conn {
    /// However the connection ends (return, error, a panic unwinding), the client's
    /// maxclients slot, subscriptions, blocked and WATCH registrations go with it.
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Copies of a command's name and first argument, in buffers reused from one
/// command to the next (cloning the `Bytes` instead cost two allocations per
/// command, see the optimisation log in docs/benchmarks.md).
#[derive(Default)]
struct LastCmd {
    name: Vec<u8>,
    sub: Vec<u8>,
    has_sub: bool,
    /// A first argument too long to be worth copying (never a subcommand name).
    big_sub: Option<Bytes>,
    /// Differs from what CLIENT LIST's `cmd=` was last built from. A client that
    /// repeats one command (the common case) skips rebuilding it after every batch.
    changed: bool,
    /// `name` is a command whose `cmd=` names its subcommand.
    container: bool,
}

impl LastCmd {
    const COPY_MAX: usize = 64;

    fn record(&mut self, argv: &[Bytes]) {
        let Some(name) = argv.first() else {
            return;
        };
        let same_name = self.big_sub.is_none() && name[..] == self.name[..];
        // Only a container command's first argument shows in `cmd=` (`config|get`);
        // a key (GET's) is not kept, so repeating GET on other keys changes nothing.
        let container = if same_name {
            self.container
        } else {
            crate::commands::connection::names_subcommand(name)
        };
        let sub = argv.get(1).filter(|_| container);
        let same = same_name
            && match sub {
                Some(s) => self.has_sub && s[..] == self.sub[..],
                None => !self.has_sub,
            };
        if same {
            return;
        }
        self.changed = true;
        self.container = container;
        self.name.clear();
        self.name
            .extend_from_slice(&name[..name.len().min(Self::COPY_MAX)]);
        self.sub.clear();
        self.big_sub = None;
        self.has_sub = sub.is_some();
        match sub {
            Some(s) if s.len() <= Self::COPY_MAX => self.sub.extend_from_slice(s),
            Some(s) => self.big_sub = Some(s.clone()),
            None => {}
        }
    }

    fn sub(&self) -> Option<&[u8]> {
        match &self.big_sub {
            Some(b) => Some(b),
            None => self.has_sub.then_some(&self.sub[..]),
        }
    }
}

impl Conn {
    /// Executes the buffered requests. Ok(false) = close the connection.
    ///
    /// Requests are parsed (and their arguments copied out of the read buffer) before
    /// the store lock is taken, so two connections parse in parallel and only the
    /// execution is serialised.
    async fn run_buffered(&mut self, stream: &mut Stream) -> Result<bool, ()> {
        loop {
            match self.step() {
                Step::Idle => return Ok(true),
                Step::Close => return Ok(false),
                Step::Again => {}
                // Yield between batches so other clients get the lock.
                Step::More => tokio::task::yield_now().await,
                Step::Wait(outcome) => {
                    if !self.finish(outcome, stream).await {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// One batch of the buffered requests, and what the connection does next: the
    /// synchronous part of [`Conn::run_buffered`], shared with the event loop
    /// (`evloop`), which runs it without a task per connection.
    fn step(&mut self) -> Step {
        // Before AUTH, Redis's unauthenticated limits apply, and a request is
        // parsed only after the one before it ran (it may be the AUTH that lifts them).
        let unauthenticated = !self.client.authenticated;
        let Ran {
            outcome,
            processed,
            protocol_error,
            batch_end,
        } = match self.run_batch(unauthenticated) {
            Batch::Ran(ran) => ran,
            Batch::AnsweredWhileBusy => return Step::Again,
            Batch::Close => return Step::Close,
        };
        if let Some(e) = protocol_error {
            if self.pending.is_empty() && matches!(outcome, Outcome::Done) {
                self.out.error(&format!("ERR {e}"));
                crate::verbose!("Protocol error from client: {e}");
                return Step::Close;
            }
            // The bad bytes are still buffered: the error is met again next round.
        }
        if processed > 0 {
            self.update_info(batch_end.unwrap_or_else(crate::util::Mono::now));
        }
        match outcome {
            Outcome::Done => {
                let more_to_parse = unauthenticated && processed > 0 && !self.inbuf.is_empty();
                if self.held
                    || self.out.len() >= REPLY_FLUSH
                    || (self.pending.is_empty() && processed < MAX_BATCH && !more_to_parse)
                {
                    Step::Idle
                } else {
                    Step::More
                }
            }
            Outcome::Close => Step::Close,
            Outcome::Monitor => {
                // Registered before any reply goes out: a command sent by another
                // client after this one read +OK is in the feed.
                let (tx, rx) = mpsc::unbounded_channel();
                self.server
                    .set_monitor(self.client.id, Some((self.handle.clone(), tx)));
                self.monitor_rx = Some(rx);
                Step::Again
            }
            Outcome::Paused => {
                // Replies so far go out; this command waits for the pause end.
                if let Some(argv) = self.client.paused_request.take() {
                    self.pending.push_front(argv);
                    self.set_held(true);
                }
                Step::Idle
            }
            other => Step::Wait(other),
        }
    }

    /// Completes an outcome that waits (a shutdown, WAIT, a blocked command). False:
    /// close the connection.
    async fn finish(&mut self, outcome: Outcome, stream: &mut Stream) -> bool {
        match outcome {
            Outcome::Shutdown(flags) => {
                // Like Redis, the client waits: the connection closes when
                // the server exits, or it gets an error if the shutdown
                // was aborted or failed.
                let attempt = crate::shutdown::request(&self.server, flags);
                if crate::shutdown::outcome(&self.server, attempt).await {
                    return false;
                }
                self.out.error(crate::shutdown::FAILED_REPLY);
            }
            Outcome::WaitReplicas {
                num,
                offset,
                timeout_ms,
            } => {
                let waited = crate::replication::primary::wait_replicas(
                    &self.server,
                    Some(&self.handle),
                    offset,
                    num,
                    timeout_ms,
                )
                .await;
                match waited {
                    Ok(n) => self.out.int(n),
                    Err(_) => {
                        let text = crate::replication::primary::RoleChanged::REPLY;
                        self.server.stats.error_reply(text.as_bytes());
                        self.out.error(text);
                        return false;
                    }
                }
            }
            Outcome::Blocked {
                rx,
                timeout_ms,
                null_array,
            } => {
                return self.wait_blocked(rx, timeout_ms, null_array, stream).await;
            }
            // `step` settles the others itself.
            Outcome::Done | Outcome::Close | Outcome::Paused | Outcome::Monitor => {}
        }
        true
    }

    /// Parses what is buffered and runs the parsed commands under one store lock: the
    /// synchronous part of [`Conn::run_buffered`], out of its state machine so that
    /// the per-command loop is one compact function.
    #[inline(never)]
    fn run_batch(&mut self, unauthenticated: bool) -> Batch {
        let mut ran = Ran {
            outcome: Outcome::Done,
            processed: 0,
            protocol_error: None,
            batch_end: None,
        };
        self.parser.auth_required = unauthenticated;
        // What Redis's query buffer holds while these requests run: the bytes read
        // and not yet consumed, these requests' included.
        self.client.query_buf_len = self.inbuf.len();
        let batch = if unauthenticated { 1 } else { MAX_BATCH };
        while self.pending.len() < batch {
            match self.parser.parse(&mut self.inbuf) {
                Ok(Some(Request::Command(argv))) => self.pending.push_back(argv),
                Ok(Some(Request::Empty)) => {}
                Ok(None) => break,
                Err(e) => {
                    // Commands before the bad bytes still run, as in Redis.
                    ran.protocol_error = Some(e);
                    break;
                }
            }
        }
        if self.pending.is_empty() || self.held {
            return Batch::Ran(ran);
        }
        let Some(mut store) = self.server.store.lock_unless_busy() else {
            // A script holds the store past busy-reply-threshold.
            return if self.answer_while_busy() {
                // What they changed (HELLO SETNAME, MULTI...) shows in CLIENT LIST at
                // once, to the busy script too.
                self.update_info(crate::util::Mono::now());
                Batch::AnsweredWhileBusy
            } else {
                Batch::Close
            };
        };
        store.cmd_clock = Some(crate::util::Mono::now());
        while let Some(argv) = self.pending.pop_front() {
            if ran.processed.is_multiple_of(PREFETCH_MAX) && !self.pending.is_empty() {
                // The next requests' keys are loaded together (`Db::prefetch`). Most
                // commands' first key is their first argument (and a member or
                // field the second); for the others the hint costs a probe.
                if let Some(db) = store.dbs.get(self.client.db) {
                    db.prefetch(
                        std::iter::once(&argv)
                            .chain(self.pending.iter())
                            .filter_map(|a| Some((&a.get(1)?[..], a.get(2).map(|m| &m[..])))),
                    );
                }
            }
            ran.processed += 1;
            self.last_cmd.record(&argv);
            self.out.resp3 = self.client.resp3;
            // A CLIENT REPLY SKIP before this command covers it (and only it).
            self.client.reply_skip = std::mem::take(&mut self.client.reply_skip_next);
            let mark = self.out.len();
            ran.outcome = run_guarded(
                &self.server,
                &mut store,
                &mut self.client,
                &self.handle,
                argv,
                &mut self.out,
            );
            if matches!(ran.outcome, Outcome::Paused) {
                // Not run: its reply mode applies when it does.
                self.client.reply_skip_next = std::mem::take(&mut self.client.reply_skip);
                break;
            }
            apply_reply_mode(&mut self.client, &mut self.out, mark);
            self.out.resp3 = self.client.resp3;
            if self.reply_over_limit(&store.hot.obuf_limits) {
                ran.outcome = Outcome::Close;
            }
            if !matches!(ran.outcome, Outcome::Done)
                || self.client.is_replica
                || self.out.len() >= REPLY_FLUSH
            {
                break;
            }
        }
        // The next batch's first arguments: most clients repeat one command.
        self.parser.remember_name(self.client.cmd_cache.spelled());
        // The next batch's argument vectors: as many as this batch used, from
        // the pool its commands (and others') gave theirs back to.
        for _ in 0..ran.processed {
            if !self.parser.wants_spare() {
                break;
            }
            let Some(v) = store.op_pool.pop() else {
                break;
            };
            self.parser.give_back(v);
        }
        self.idle_timeout = store.hot.idle_timeout;
        self.qbuf_limit = store.hot.query_buffer_limit;
        ran.batch_end = store.cmd_clock.take();
        Batch::Ran(ran)
    }

    /// Answers the pending commands while a script is busy (the store is locked by
    /// it), as `commands::while_busy` decides. False: close the connection.
    fn answer_while_busy(&mut self) -> bool {
        use crate::commands::while_busy::{self, WhileBusy};
        while let Some(argv) = self.pending.pop_front() {
            self.last_cmd.record(&argv);
            self.out.resp3 = self.client.resp3;
            match while_busy::answer(&self.server, &mut self.client, argv, &mut self.out) {
                WhileBusy::Done => {}
                WhileBusy::Close => return false,
                WhileBusy::Exit => exit_while_busy(&self.server),
            }
            self.out.resp3 = self.client.resp3;
        }
        true
    }

    /// Whether the replies built so far put this client over its class's output limit
    /// (`normal`, or `pubsub` while subscribed); the client is then closed, as in Redis.
    fn reply_over_limit(&self, limits: &crate::outbuf::Limits) -> bool {
        use crate::outbuf::Class;
        let class = if self.client.subscriptions() > 0 {
            Class::PubSub
        } else {
            Class::Normal
        };
        let limit = &limits[class as usize];
        if limit.hard == 0 && limit.soft == 0 {
            return false;
        }
        let used = self.out.len() as u64 + self.handle.obuf.queued();
        if !self.handle.obuf.over(used, limit) {
            return false;
        }
        crate::outbuf::log_closing(&format!("id={} addr={}", self.handle.id, self.handle.addr));
        // Closed without its replies, as in Redis.
        self.handle.kill();
        true
    }

    /// Waits for a blocked command to be served, or times out with a null reply.
    /// Returns false if the peer closed the connection meanwhile (the client is then
    /// unblocked at once, so later pushes are not served to a dead connection).
    async fn wait_blocked(
        &mut self,
        mut rx: tokio::sync::oneshot::Receiver<Vec<u8>>,
        timeout_ms: u64,
        null_array: bool,
        stream: &mut Stream,
    ) -> bool {
        let timeout = if timeout_ms == 0 {
            Duration::from_secs(u64::MAX / 4)
        } else {
            Duration::from_millis(timeout_ms)
        };
        let sleep = tokio::time::sleep(timeout);
        tokio::pin!(sleep);
        let mut closed = false;
        let served = loop {
            tokio::select! {
                r = &mut rx => break r.ok(),
                _ = &mut sleep => break None,
                _ = self.handle.kill_notify.notified() => {
                    // Killed while blocked: closed without a reply, as in Redis.
                    closed = true;
                    break None;
                }
                r = stream.read_buf(&mut self.inbuf) => {
                    // Requests sent while blocked stay buffered; EOF means the peer
                    // left. (`read_buf` is cancel-safe, over TLS too: a read that
                    // loses the race leaves its bytes in the socket or the session.)
                    let gone = match r {
                        Ok(0) | Err(_) => true,
                        Ok(n) => {
                            Stats::incr(&self.server.stats.net_input_bytes, n as u64);
                            // Same cap as the main loop applies to the query buffer.
                            self.query_buffer_over_limit()
                        }
                    };
                    if gone {
                        closed = true;
                        break None;
                    }
                }
            }
        };
        let reply = match served {
            Some(r) => Some(r),
            None => {
                // Timed out: unless it was served in the meantime, stop waiting.
                let still_blocked = self.server.store.lock().unblock(self.client.id).is_some();
                if still_blocked {
                    None
                } else {
                    rx.await.ok()
                }
            }
        };
        if closed {
            return false;
        }
        match reply {
            Some(r) => self.out.raw(&r),
            None if null_array => self.out.null_array(),
            None => self.out.null(),
        }
        // Answered with an error that ends the connection (see
        // `replication::replica::set_master`): closed after the reply.
        !self
            .handle
            .close_after_reply
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The output buffer went out: what was queued for us no longer counts.
    fn written(&mut self) {
        if self.drained > 0 {
            self.handle.obuf.sub(std::mem::take(&mut self.drained));
        }
    }

    /// Whether the query buffer (with the arguments of a partly received request)
    /// passed `client-query-buffer-limit`; logs Redis's line when it did.
    fn query_buffer_over_limit(&self) -> bool {
        let used = self.inbuf.len() + self.parser.held_bytes();
        if used <= self.qbuf_limit {
            return false;
        }
        let head = &self.inbuf[..self.inbuf.len().min(64)];
        crate::warning!(
            "Closing client that reached max query buffer length: id={} addr={} qbuf={} (qbuf initial bytes: \"{}\")",
            self.handle.id,
            self.handle.addr,
            used,
            crate::util::repr_bytes(head)
        );
        true
    }

    /// When an idle client is closed under `timeout`: never for replicas, the master
    /// link, MONITOR, Pub/Sub subscribers or blocked clients (blocking waits elsewhere),
    /// as in Redis.
    fn idle_deadline(&self) -> Option<tokio::time::Instant> {
        if self.idle_timeout == 0
            || self.client.is_master
            || self.client.is_replica
            || self.monitor_rx.is_some()
            || self.client.subscriptions() > 0
        {
            return None;
        }
        Some(tokio::time::Instant::now() + Duration::from_secs(self.idle_timeout))
    }

    fn encode_pubsub(&mut self, msg: PubMsg) {
        self.drained += msg.cost();
        let out = &mut self.out;
        out.resp3 = self.client.resp3;
        match msg {
            PubMsg::Message { channel, data } => {
                out.push(3);
                out.bulk(b"message");
                out.bulk(&channel);
                out.bulk(&data);
            }
            PubMsg::SMessage { channel, data } => {
                out.push(3);
                out.bulk(b"smessage");
                out.bulk(&channel);
                out.bulk(&data);
            }
            PubMsg::PMessage {
                pattern,
                channel,
                data,
            } => {
                out.push(4);
                out.bulk(b"pmessage");
                out.bulk(&pattern);
                out.bulk(&channel);
                out.bulk(&data);
            }
            PubMsg::Tracking(push) => {
                push.encode(out, self.client.resp3, self.client.subscriptions() > 0)
            }
        }
    }

    /// The first pending command starts (`true`) or stops waiting for a CLIENT
    /// PAUSE to end: counted in INFO's `blocked_clients` and shown as flag `b` in
    /// CLIENT LIST meanwhile, as Redis shows a postponed client.
    fn set_held(&mut self, held: bool) {
        if std::mem::replace(&mut self.held, held) == held {
            return;
        }
        let pause = &self.server.client_pause;
        if held {
            pause.wait_started();
        } else {
            pause.wait_stopped();
        }
        self.handle.info.lock().waiting_pause = held;
    }

    /// Publishes the client's state for CLIENT LIST/INFO after a batch that ended at
    /// `at` (the batch's last clock reading: no clock read of its own).
    fn update_info(&mut self, at: crate::util::Mono) {
        let mut info = self.handle.info.lock();
        if std::mem::take(&mut self.last_cmd.changed) {
            let l = &self.last_cmd;
            crate::commands::connection::write_cmd_display_name(
                &l.name,
                l.sub(),
                &mut info.last_cmd,
            );
        }
        info.db = self.client.db;
        info.name = self.client.name.clone();
        info.sub = self.client.channels.len();
        info.psub = self.client.patterns.len();
        info.ssub = self.client.shard_channels.len();
        info.multi = self.client.multi.as_ref().map_or(-1, |q| q.len() as i64);
        info.resp = if self.client.resp3 { 3 } else { 2 };
        info.last_interaction = Some(at);
        info.qbuf = self.inbuf.len();
        // Compared first: cloning a `String` allocates, and these rarely change.
        if info.lib_name != self.client.lib_name {
            info.lib_name = self.client.lib_name.clone();
        }
        if info.lib_ver != self.client.lib_ver {
            info.lib_ver = self.client.lib_ver.clone();
        }
    }

    /// Drops every registration this client holds in shared state.
    fn cleanup(&mut self) {
        if std::mem::replace(&mut self.cleaned, true) {
            return;
        }
        self.set_held(false);
        {
            let mut store = self.server.store.lock();
            store.unblock(self.client.id);
            store.tracking.disable(self.client.id);
            let watched = std::mem::take(&mut self.client.watched);
            store.unwatch_all(self.client.id, &watched);
            for ch in &self.client.channels {
                if let Some(m) = store.pubsub.channels.get_mut(ch) {
                    m.remove(&self.client.id);
                    if m.is_empty() {
                        store.pubsub.channels.remove(ch);
                    }
                }
            }
            for ch in &self.client.shard_channels {
                store.pubsub.sunsubscribe(ch, self.client.id);
            }
            for p in &self.client.patterns {
                if let Some(m) = store.pubsub.patterns.get_mut(p) {
                    m.remove(&self.client.id);
                    if m.is_empty() {
                        store.pubsub.patterns.remove(p);
                    }
                }
            }
        }
        self.server.set_monitor(self.client.id, None);
        self.server.clients.lock().remove(&self.client.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_mode_serves_only_loopback_without_a_password() {
        let lo: std::net::IpAddr = "127.0.0.5".parse().unwrap();
        let lo6: std::net::IpAddr = "::1".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let remote: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        for ip in [lo, lo6, mapped] {
            assert!(!protected_mode_refuses(true, false, Some(ip)));
        }
        assert!(protected_mode_refuses(true, false, Some(remote)));
        assert!(protected_mode_refuses(true, false, None));
        assert!(!protected_mode_refuses(true, true, Some(remote)));
        assert!(!protected_mode_refuses(false, false, Some(remote)));
        assert!(PROTECTED_MODE_DENIED.starts_with("-DENIED Redis is running in protected mode"));
    }

    #[test]
    fn a_panicking_command_becomes_an_error_reply() {
        let mut out = Reply::new(false);
        out.simple("OK");
        let outcome = guarded(b"boom", &mut out, |out| {
            out.simple("partial");
            panic!("a bug");
        });
        assert!(matches!(outcome, Outcome::Done));
        assert_eq!(
            String::from_utf8_lossy(&out.buf),
            "+OK\r\n-ERR internal error while running 'boom'\r\n"
        );
    }
}
