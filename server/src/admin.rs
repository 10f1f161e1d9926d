//! Tandem extension: the HTTP admin port (`tandem-admin-port`, 0 = off).
//!
//! A deliberately small HTTP/1.1 responder for the kubelet and Prometheus, bound to
//! the same addresses as the main listener (after `TANDEM_BIND`):
//!
//! * `GET /healthz`: `200 ok` while the process serves.
//! * `GET /readyz`: `200 ready` when not loading, not fenced, and either a master,
//!   or a replica whose link is up (its initial sync finished); otherwise `503` with
//!   one reason line: `loading`, `fenced`, `initial sync in progress`,
//!   `replica link down`.
//! * `GET /metrics`: Prometheus text format (see [`metrics`]).
//! * anything else: `404` (`405` for a method other than GET/HEAD).
//!
//! One request per connection (`Connection: close`), the request head bounded to
//! [`MAX_REQUEST`] bytes, reads and writes bounded by [`IO_TIMEOUT`], and at most
//! [`MAX_CONNECTIONS`] connections served at once (more are closed at once).

use crate::replication::LinkState;
use crate::server::{Server, Stats};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head accepted (request line + headers).
pub const MAX_REQUEST: usize = 8 * 1024;
/// Read/write deadline for one request and its response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served concurrently.
pub const MAX_CONNECTIONS: usize = 64;

/// True until the dataset has been loaded at startup (`/readyz` says `loading`).
pub static LOADING: AtomicBool = AtomicBool::new(true);

/// Marks the startup load as finished (or started again).
pub fn set_loading(on: bool) {
    LOADING.store(on, Ordering::SeqCst);
}

/// Binds the admin listeners on `bind` addresses; empty when `port` is 0.
pub async fn bind(bind: &[String], port: u16) -> Result<Vec<TcpListener>, String> {
    if port == 0 {
        return Ok(Vec::new());
    }
    let listeners = crate::net::bind(bind, port).await.map_err(|e| {
        crate::warning!("{e}");
        format!("Failed listening on the admin port {port} (TCP), aborting.")
    })?;
    if listeners.is_empty() {
        return Err(format!(
            "Failed listening on the admin port {port} (TCP): no address bound, aborting."
        ));
    }
    crate::notice!("Tandem admin HTTP port {port} serving /healthz, /readyz, /metrics");
    Ok(listeners)
}

/// Serves admin requests on `listener` until shutdown.
pub async fn accept_loop(
    server: Arc<Server>,
    listener: TcpListener,
    slots: Arc<tokio::sync::Semaphore>,
) {
    let mut shutdown = server.shutdown.subscribe();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((stream, _)) = r else {
                    // Transient accept errors (EMFILE...): back off briefly.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                let s = server.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(IO_TIMEOUT * 2, serve(s, stream)).await;
                    drop(permit);
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// Starts one accept loop per listener (sharing one connection budget).
pub fn spawn(server: &Arc<Server>, listeners: Vec<TcpListener>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    for l in listeners {
        tokio::spawn(accept_loop(server.clone(), l, slots.clone()));
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

async fn serve(server: Arc<Server>, mut stream: TcpStream) {
    let head = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Err(_) | Ok(Ok(None)) => return,
        Ok(Err(HeadError::TooLarge)) => {
            return refuse(&mut stream, 431, "request header too large\n").await;
        }
        Ok(Err(HeadError::Malformed)) => return refuse(&mut stream, 400, "bad request\n").await,
        Ok(Ok(Some(h))) => h,
    };
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
    if LOADING.load(Ordering::SeqCst) {
        return Err("loading");
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

/// The Prometheus exposition: one `# HELP`/`# TYPE` pair per metric family.
pub fn metrics(server: &Server) -> String {
    let clients = server.clients.lock().len();
    let (fenced, is_master, replicas, offset, link_up, keys) = {
        let store = server.store.lock();
        let r = &store.repl;
        let keys: Vec<(usize, usize)> = store
            .dbs
            .iter()
            .enumerate()
            .filter(|(i, db)| *i == 0 || !db.is_empty())
            .map(|(i, db)| (i, db.len()))
            .collect();
        (
            r.fenced,
            r.master.is_none(),
            r.replicas.len(),
            r.master_repl_offset,
            r.link_connected(),
            keys,
        )
    };
    let mut o = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(o, "# HELP {name} {help}");
        let _ = writeln!(o, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(o, "{name}{labels} {v}");
        }
    };
    let one = |v: String| vec![(String::new(), v)];
    family(
        "tandem_up",
        "gauge",
        "1 while the server answers.",
        &one("1".into()),
    );
    family(
        "tandem_fenced",
        "gauge",
        "1 while started fenced and no role has been assigned.",
        &one((fenced as u8).to_string()),
    );
    family(
        "tandem_role",
        "gauge",
        "Current replication role (1 for the active one).",
        &[
            ("{role=\"master\"}".into(), (is_master as u8).to_string()),
            ("{role=\"replica\"}".into(), (!is_master as u8).to_string()),
        ],
    );
    family(
        "tandem_connected_clients",
        "gauge",
        "Client connections, replication links included.",
        &one(clients.to_string()),
    );
    family(
        "tandem_connected_replicas",
        "gauge",
        "Replicas attached to this server.",
        &one(replicas.to_string()),
    );
    family(
        "tandem_master_repl_offset",
        "gauge",
        "Replication offset of this server's stream.",
        &one(offset.to_string()),
    );
    family(
        "tandem_master_link_up",
        "gauge",
        "1 when this replica's link to its master is up (0 on a master).",
        &one((link_up as u8).to_string()),
    );
    family(
        "tandem_used_memory_bytes",
        "gauge",
        "Memory allocated by the server.",
        &one(crate::info::used_memory().to_string()),
    );
    let key_samples: Vec<(String, String)> = keys
        .iter()
        .map(|(i, n)| (format!("{{db=\"{i}\"}}"), n.to_string()))
        .collect();
    family(
        "tandem_keys",
        "gauge",
        "Keys per database (db 0 and every non-empty one).",
        &key_samples,
    );
    family(
        "tandem_commands_processed_total",
        "counter",
        "Commands processed since start.",
        &one(Stats::get(&server.stats.total_commands_processed).to_string()),
    );
    family(
        "tandem_uptime_seconds",
        "gauge",
        "Seconds since the server started.",
        &one(server.started.elapsed().as_secs().to_string()),
    );
    o
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
