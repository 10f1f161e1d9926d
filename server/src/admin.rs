//! Tandem extension: the HTTP admin port (`tandem-admin-port`, 0 = off).
//!
//! A deliberately small HTTP/1.1 responder for the kubelet and Prometheus, bound to
//! `tandem-admin-bind` or, when that is empty, to the first `bind` address (after
//! `TANDEM_BIND`): the pod address in Kubernetes, where the operator writes
//! `bind 0.0.0.0` and probes and scrapes come to the pod IP.
//!
//! * `GET /healthz`: `200 ok` while the process serves.
//! * `GET /readyz`: `200 ready` when not loading, not fenced, and either a master,
//!   or a replica whose link is up (its initial sync finished); otherwise `503` with
//!   one reason line: `loading`, `fenced`, `initial sync in progress`,
//!   `replica link down`.
//! * `GET /metrics`: Prometheus text format, redis_exporter's names and Tandem's
//!   (see [`crate::metrics`]).
//! * anything else: `404` (`405` for a method other than GET/HEAD).
//!
//! One request per connection (`Connection: close`), the request head bounded to
//! [`MAX_REQUEST`] bytes and to [`HEAD_TIMEOUT`], the response to [`IO_TIMEOUT`].
//! Unauthenticated peers must not be able to starve the probes: at most
//! [`MAX_CONNECTIONS`] connections are open at once, and a new one past the cap
//! closes a connection still waiting for its request (from the peer holding the
//! most connections, its oldest first, see [`pick_victim`]) instead of being
//! refused.

use crate::config::Config;
use crate::replication::LinkState;
use crate::server::Server;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head accepted (request line + headers).
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time a connection has to send its whole request head (then it is closed).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Write deadline for a response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections open at once; past it, a waiting one is closed for the new one.
pub const MAX_CONNECTIONS: usize = 512;

/// Marks the startup load as finished (or started again): `/readyz` says `loading`
/// while it is on.
pub fn set_loading(server: &Server, on: bool) {
    server.loading.store(on, Ordering::SeqCst);
}

/// The admin port's addresses: `tandem-admin-bind`, else the first `bind` one.
pub fn addresses(config: &Config) -> Vec<String> {
    let explicit: Vec<String> = config
        .get("tandem-admin-bind")
        .unwrap_or_default()
        .split(' ')
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    if !explicit.is_empty() {
        return explicit;
    }
    config.bind.first().cloned().into_iter().collect()
}

/// Binds the admin listeners ([`addresses`]); empty when the port is 0.
pub async fn bind(config: &Config) -> Result<Vec<TcpListener>, String> {
    let port = config.tandem_admin_port;
    if port == 0 {
        return Ok(Vec::new());
    }
    let addrs = addresses(config);
    let listeners = crate::net::bind(&addrs, port).await.map_err(|e| {
        crate::warning!("{e}");
        format!("Failed listening on the admin port {port} (TCP), aborting.")
    })?;
    if listeners.is_empty() {
        return Err(format!(
            "Failed listening on the admin port {port} (TCP): no address bound, aborting."
        ));
    }
    crate::notice!(
        "Tandem admin HTTP port {port} on {} serving /healthz, /readyz, /metrics",
        addrs.join(" ")
    );
    Ok(listeners)
}

/// What the cap needs to know about one open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    pub peer: IpAddr,
    pub opened: Instant,
    /// Still waiting for its request head (not answering one).
    pub waiting: bool,
}

/// The connection to close so a new one fits under the cap: a waiting one from the
/// peer with the most open connections, the oldest of them (ties between peers go
/// to the older connection). `None` when every connection is answering a request
/// (a response is written within [`IO_TIMEOUT`]).
///
/// Why by peer first: the kubelet and Prometheus hold one or two connections each,
/// so a single client flooding the port only ever closes its own connections.
pub fn pick_victim(conns: &[ConnInfo]) -> Option<usize> {
    let mut per_peer: HashMap<IpAddr, usize> = HashMap::new();
    for c in conns {
        *per_peer.entry(c.peer).or_default() += 1;
    }
    conns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.waiting)
        .max_by(|(_, a), (_, b)| {
            let count = |c: &ConnInfo| per_peer.get(&c.peer).copied().unwrap_or(0);
            count(a)
                .cmp(&count(b))
                .then_with(|| b.opened.cmp(&a.opened))
        })
        .map(|(i, _)| i)
}

/// Open connections, shared by the accept loops (one per listener) and the
/// connection tasks, which remove themselves when they end.
#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    conns: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    peer: IpAddr,
    opened: Instant,
    waiting: Arc<AtomicBool>,
    task: tokio::task::AbortHandle,
}

impl Registry {
    /// Makes room for one more connection; false when none can be closed.
    fn make_room(&mut self) -> bool {
        if self.conns.len() < MAX_CONNECTIONS {
            return true;
        }
        let infos: Vec<ConnInfo> = self
            .conns
            .iter()
            .map(|e| ConnInfo {
                peer: e.peer,
                opened: e.opened,
                waiting: e.waiting.load(Ordering::Relaxed),
            })
            .collect();
        let Some(i) = pick_victim(&infos) else {
            return false;
        };
        let victim = self.conns.swap_remove(i);
        // Dropping the task's future closes its socket.
        victim.task.abort();
        true
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.conns.iter().position(|e| e.id == id) {
            self.conns.swap_remove(i);
        }
    }
}

/// Removes its connection from the registry when the task ends or is aborted.
struct Registered {
    registry: Arc<Mutex<Registry>>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.lock().remove(self.id);
    }
}

/// Serves admin requests on `listener` until shutdown.
async fn accept_loop(server: Arc<Server>, listener: TcpListener, registry: Arc<Mutex<Registry>>) {
    let mut shutdown = server.shutdown.subscribe();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((stream, peer)) = r else {
                    // Transient accept errors (EMFILE...): back off briefly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                start(&server, &registry, stream, peer.ip());
            }
            _ = crate::server::stopping(&mut shutdown) => break,
        }
    }
}

/// Registers and spawns one connection (or drops it when no room can be made).
fn start(server: &Arc<Server>, registry: &Arc<Mutex<Registry>>, stream: TcpStream, peer: IpAddr) {
    // The lock is held across the spawn so the task cannot deregister itself
    // before it is registered.
    let mut reg = registry.lock();
    if !reg.make_room() {
        return;
    }
    let id = reg.next_id;
    reg.next_id += 1;
    let waiting = Arc::new(AtomicBool::new(true));
    let guard = Registered {
        registry: registry.clone(),
        id,
    };
    let task = tokio::spawn(serve(server.clone(), stream, waiting.clone(), guard));
    reg.conns.push(Entry {
        id,
        peer,
        opened: Instant::now(),
        waiting,
        task: task.abort_handle(),
    });
}

/// Starts one accept loop per listener (sharing one connection budget).
pub fn spawn(server: &Arc<Server>, listeners: Vec<TcpListener>) {
    let registry = Arc::new(Mutex::new(Registry::default()));
    for l in listeners {
        tokio::spawn(accept_loop(server.clone(), l, registry.clone()));
    }
}

/// A parsed request line.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestLine {
    pub method: String,
    pub path: String,
}

/// Why a request head could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// More than [`MAX_REQUEST`] bytes without the end of the head.
    TooLarge,
    /// Not an HTTP/1.x request line.
    Malformed,
}

/// Parses the request line of a complete head (`...\r\n\r\n`). The query string
/// is dropped from the path.
pub fn parse_head(head: &[u8]) -> Result<RequestLine, HeadError> {
    let end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(HeadError::Malformed)?;
    let line = std::str::from_utf8(&head[..end]).map_err(|_| HeadError::Malformed)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(HeadError::Malformed);
    }
    let path = target.split('?').next().unwrap_or(target);
    Ok(RequestLine {
        method: method.to_string(),
        path: path.to_string(),
    })
}

/// Reads a request head: `Ok(None)` when the peer closed before sending one.
async fn read_head(stream: &mut TcpStream) -> Result<Option<Vec<u8>>, HeadError> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(i + 4);
            return Ok(Some(buf));
        }
        if buf.len() > MAX_REQUEST {
            return Err(HeadError::TooLarge);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) if buf.is_empty() => return Ok(None),
            Ok(0) | Err(_) => return Err(HeadError::Malformed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn serve(
    server: Arc<Server>,
    mut stream: TcpStream,
    waiting: Arc<AtomicBool>,
    _registered: Registered,
) {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Err(_) | Ok(Ok(None)) => return,
        Ok(Err(HeadError::TooLarge)) => {
            return refuse(&mut stream, 431, "request header too large\n").await;
        }
        Ok(Err(HeadError::Malformed)) => return refuse(&mut stream, 400, "bad request\n").await,
        Ok(Ok(Some(h))) => h,
    };
    waiting.store(false, Ordering::Relaxed);
    let Ok(req) = parse_head(&head) else {
        return refuse(&mut stream, 400, "bad request\n").await;
    };
    let head_only = req.method == "HEAD";
    let (status, body, ctype) = route(&server, &req);
    let _ = tokio::time::timeout(
        IO_TIMEOUT,
        write_response(&mut stream, status, &body, ctype, head_only),
    )
    .await;
}

/// Answers an unusable request, then drains (bounded) what the client still sends,
/// so closing with unread input does not reset the connection before the client
/// has read the answer.
async fn refuse(stream: &mut TcpStream, status: u16, body: &str) {
    let _ = tokio::time::timeout(IO_TIMEOUT, write_response(stream, status, body, "", false)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut chunk = [0u8; 4096];
        let mut drained = 0usize;
        while drained < 64 * 1024 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// Status, body and content type for a request.
pub fn route(server: &Server, req: &RequestLine) -> (u16, String, &'static str) {
    let known = matches!(req.path.as_str(), "/healthz" | "/readyz" | "/metrics");
    if !known {
        return (404, "not found\n".into(), "");
    }
    if req.method != "GET" && req.method != "HEAD" {
        return (405, "method not allowed\n".into(), "");
    }
    match req.path.as_str() {
        "/healthz" => (200, "ok\n".into(), ""),
        "/readyz" => match readiness(server) {
            Ok(()) => (200, "ready\n".into(), ""),
            Err(reason) => (503, format!("{reason}\n"), ""),
        },
        _ => (
            200,
            metrics(server),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    ctype: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let ctype = if ctype.is_empty() {
        "text/plain; charset=utf-8"
    } else {
        ctype
    };
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        reason_phrase(status),
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

/// `Ok` when the server should receive traffic, else the one-word-ish reason.
pub fn readiness(server: &Server) -> Result<(), &'static str> {
    if server.loading.load(Ordering::SeqCst) {
        return Err("loading");
    }
    // A script past busy-reply-threshold holds the store: clients get BUSY, so the
    // server is not ready for traffic (while /healthz, which locks nothing, stays ok).
    if server.script_busy.is_busy() {
        return Err("busy running a script");
    }
    let store = server.store.lock();
    readiness_of(&store.repl)
}

/// [`readiness`] from the replication state alone (loading checked by the caller).
pub fn readiness_of(r: &crate::replication::ReplState) -> Result<(), &'static str> {
    if r.fenced {
        return Err("fenced");
    }
    match &r.master {
        None => Ok(()),
        Some(m) => match m.state {
            LinkState::Connected => Ok(()),
            LinkState::Transfer => Err("initial sync in progress"),
            _ => Err("replica link down"),
        },
    }
}

/// The Prometheus exposition (names, labels and types: [`crate::metrics`] and
/// docs/admin.md). It never waits behind a busy script (`redis_up 0` then).
pub fn metrics(server: &Server) -> String {
    crate::metrics::render(&crate::metrics::collect(server))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::{MasterLink, ReplState};
    use std::time::Instant;

    #[test]
    fn request_lines() {
        assert_eq!(
            parse_head(b"GET /readyz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(RequestLine {
                method: "GET".into(),
                path: "/readyz".into()
            })
        );
        for bad in [
            &b"GET /readyz\r\n\r\n"[..],
            b"GET readyz HTTP/1.1\r\n\r\n",
            b"GET /readyz HTTP/2\r\n\r\n",
            b"GET  /readyz HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
            b"no line end",
        ] {
            assert_eq!(parse_head(bad), Err(HeadError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn readiness_follows_fence_role_and_link() {
        let mut r = ReplState::default();
        assert_eq!(readiness_of(&r), Ok(()));
        r.fenced = true;
        assert_eq!(readiness_of(&r), Err("fenced"));
        r.fenced = false;
        let link = |state| MasterLink {
            host: "h".into(),
            port: 1,
            state,
            generation: 1,
            offsets: None,
            last_io: Instant::now(),
            down_since: None,
            transfer: None,
            transfer_last_io: Instant::now(),
        };
        for (state, want) in [
            (LinkState::Connect, Err("replica link down")),
            (LinkState::Connecting, Err("replica link down")),
            (LinkState::Handshake, Err("replica link down")),
            (LinkState::Transfer, Err("initial sync in progress")),
            (LinkState::Connected, Ok(())),
        ] {
            r.master = Some(link(state));
            assert_eq!(readiness_of(&r), want, "{state:?}");
        }
    }

    #[test]
    fn the_cap_closes_the_busiest_peers_oldest_waiting_connection() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let (kubelet, flood, other): (IpAddr, IpAddr, IpAddr) = (
            "10.0.0.1".parse().unwrap(),
            "10.0.0.66".parse().unwrap(),
            "10.0.0.7".parse().unwrap(),
        );
        let c = |peer, s, waiting| ConnInfo {
            peer,
            opened: at(s),
            waiting,
        };
        let conns = [
            c(kubelet, 0, true),
            c(flood, 5, false),
            c(flood, 3, true),
            c(other, 1, true),
            c(flood, 4, true),
        ];
        // The kubelet's connection is the oldest, but the flooding peer pays.
        assert_eq!(pick_victim(&conns), Some(2));
        // Equal counts: the oldest waiting connection goes.
        let conns = [c(kubelet, 2, true), c(other, 1, true), c(flood, 3, true)];
        assert_eq!(pick_victim(&conns), Some(1));
        // Only connections answering a request: nothing to close.
        assert_eq!(pick_victim(&[c(flood, 1, false)]), None);
        assert_eq!(pick_victim(&[]), None);
    }

    #[test]
    fn admin_binds_its_own_addresses_or_the_first_bind_address() {
        let mut c = crate::config::Config::default();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let startup = crate::config::Origin::Startup;
        c.set("bind", &s(&["10.1.2.3", "127.0.0.1"]), startup)
            .unwrap();
        assert_eq!(addresses(&c), ["10.1.2.3"]);
        c.set("tandem-admin-bind", &s(&["127.0.0.1 ::1"]), startup)
            .unwrap();
        assert_eq!(addresses(&c), ["127.0.0.1", "::1"]);
        assert_eq!(c.get("tandem-admin-bind"), Some("127.0.0.1 ::1"));
    }

    #[test]
    fn metrics_have_type_lines_and_values() {
        let server = Server::new(crate::config::Config::default());
        let text = metrics(&server);
        for name in [
            "tandem_up",
            "tandem_fenced",
            "tandem_role",
            "tandem_connected_clients",
            "tandem_connected_replicas",
            "tandem_master_repl_offset",
            "tandem_master_link_up",
            "tandem_used_memory_bytes",
            "tandem_keys",
            "tandem_commands_processed_total",
            "tandem_uptime_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}\n{text}");
        }
        assert!(text.contains("tandem_role{role=\"master\"} 1\n"), "{text}");
        assert!(text.contains("tandem_role{role=\"replica\"} 0\n"), "{text}");
        assert!(text.contains("tandem_keys{db=\"0\"} 0\n"), "{text}");
        assert!(text.contains("tandem_up 1\n"), "{text}");
    }
}
