//! Talking to the pods: a small RESP2 client and the observation of one pod.
//!
//! The client is deliberately minimal: one request at a time, a connect timeout, a timeout
//! per command, bounded reply sizes and nesting, and no panics on anything the network sends.
//! [`observe`] turns `INFO replication` + `INFO keyspace` into a [`PodObservation`] for the
//! planner; a pod that cannot be reached (or refuses the password) is reported with
//! `reachable: false` and the error kept for logs and conditions.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::tls::client::TlsClient;

use super::credentials::{is_refusal, Credentials};
use super::history::NO_REPLID;
use super::planner::{ObservedRole, PodObservation};

/// Largest bulk string accepted (INFO replies are a few KiB).
const MAX_BULK: usize = 4 << 20;
/// Largest array accepted.
const MAX_ARRAY: usize = 1 << 16;
/// Deepest nesting accepted.
const MAX_DEPTH: usize = 8;
/// Longest header / simple line accepted.
const MAX_LINE: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
}

/// The default probe timeout for connecting and for each reply.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The shortest probe timeout derived from `downAfterSeconds`.
const MIN_PROBE_TIMEOUT: Duration = Duration::from_millis(200);

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::uniform(PROBE_TIMEOUT)
    }
}

impl Timeouts {
    /// The same timeout for connecting and for each reply.
    pub fn uniform(t: Duration) -> Self {
        Timeouts {
            connect: t,
            command: t,
        }
    }

    /// These timeouts, shortened to half of `down_after` when that is smaller (never under
    /// 200 ms), so a pod that does not answer is known within a fraction of the window.
    pub fn for_down_after(self, down_after: Duration) -> Self {
        let cap = (down_after / 2).max(MIN_PROBE_TIMEOUT);
        Timeouts {
            connect: self.connect.min(cap),
            command: self.command.min(cap),
        }
    }

    /// The deadline of one whole observation (connect, AUTH and the INFO replies): a pod
    /// that connects but then answers nothing (paused, black-holed after the handshake,
    /// delayed) is unreachable after the command timeout, however many requests remain.
    pub fn observation(self) -> Duration {
        self.connect + self.command
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProbeError {
    #[error("connect to {addr}: {error}")]
    Connect { addr: String, error: String },
    #[error("connect to {addr}: timed out")]
    ConnectTimeout { addr: String },
    #[error("{command}: timed out")]
    Timeout { command: String },
    #[error("{command}: {error}")]
    Io { command: String, error: String },
    #[error("{command}: protocol error: {error}")]
    Protocol { command: String, error: String },
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("{command}: {error}")]
    Server { command: String, error: String },
    #[error("{command}: unexpected reply {reply}")]
    Unexpected { command: String, reply: String },
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

impl Value {
    /// Text of a simple or bulk string.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Simple(s) => Some(s.clone()),
            Value::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        let s = format!("{self:?}");
        if s.chars().count() > 120 {
            format!("{}...", s.chars().take(120).collect::<String>())
        } else {
            s
        }
    }
}

/// A plain or TLS connection.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Stream = BufReader<Box<dyn Io>>;

/// One connection to one server.
pub struct Client {
    stream: Stream,
    timeouts: Timeouts,
}

impl Client {
    /// Connects and authenticates (`AUTH <password>` when a non-empty password is given).
    pub async fn connect(
        addr: &str,
        password: Option<&str>,
        timeouts: Timeouts,
    ) -> Result<Client, ProbeError> {
        Client::connect_over(addr, password, timeouts, None).await
    }

    /// [`Client::connect`], over TLS when `tls` is given (the handshake counts towards the
    /// connect timeout).
    pub async fn connect_over(
        addr: &str,
        password: Option<&str>,
        timeouts: Timeouts,
        tls: Option<&TlsClient>,
    ) -> Result<Client, ProbeError> {
        let stream = match tokio::time::timeout(timeouts.connect, dial(addr, tls)).await {
            Err(_) => {
                return Err(ProbeError::ConnectTimeout {
                    addr: addr.to_string(),
                })
            }
            Ok(Err(e)) => {
                return Err(ProbeError::Connect {
                    addr: addr.to_string(),
                    error: e.to_string(),
                })
            }
            Ok(Ok(s)) => s,
        };
        let mut client = Client {
            stream: BufReader::new(stream),
            timeouts,
        };
        if let Some(pw) = password.filter(|p| !p.is_empty()) {
            match client.command(&["AUTH", pw]).await? {
                Value::Simple(_) => {}
                Value::Error(e) => return Err(ProbeError::Auth(e)),
                other => return Err(ProbeError::Auth(other.describe())),
            }
        }
        Ok(client)
    }

    /// Sends one command and reads its reply; an error reply is returned as [`Value::Error`].
    pub async fn command<S: AsRef<[u8]>>(&mut self, args: &[S]) -> Result<Value, ProbeError> {
        let name = args
            .first()
            .map(|a| String::from_utf8_lossy(a.as_ref()).to_ascii_uppercase())
            .unwrap_or_default();
        let mut req = Vec::with_capacity(64);
        req.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            let a = a.as_ref();
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        let io = async {
            self.stream
                .get_mut()
                .write_all(&req)
                .await
                .map_err(|e| ProbeError::Io {
                    command: name.clone(),
                    error: e.to_string(),
                })?;
            read_value(&mut self.stream, 0).await.map_err(|e| match e {
                ReadError::Io(error) => ProbeError::Io {
                    command: name.clone(),
                    error,
                },
                ReadError::Protocol(error) => ProbeError::Protocol {
                    command: name.clone(),
                    error,
                },
            })
        };
        match tokio::time::timeout(self.timeouts.command, io).await {
            Ok(r) => r,
            Err(_) => Err(ProbeError::Timeout { command: name }),
        }
    }

    /// Like [`Client::command`], but an error reply becomes [`ProbeError::Server`].
    pub async fn call<S: AsRef<[u8]>>(&mut self, args: &[S]) -> Result<Value, ProbeError> {
        match self.command(args).await? {
            Value::Error(error) => Err(ProbeError::Server {
                command: args
                    .iter()
                    .map(|a| String::from_utf8_lossy(a.as_ref()).into_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
                error,
            }),
            v => Ok(v),
        }
    }

    /// `INFO <section>` as text.
    pub async fn info(&mut self, section: &str) -> Result<String, ProbeError> {
        let v = self.call(&["INFO", section]).await?;
        v.text().ok_or_else(|| ProbeError::Unexpected {
            command: format!("INFO {section}"),
            reply: v.describe(),
        })
    }
}

/// A connected socket, with the TLS handshake done when `tls` is given.
async fn dial(addr: &str, tls: Option<&TlsClient>) -> std::io::Result<Box<dyn Io>> {
    let tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    Ok(match tls {
        Some(t) => Box::new(t.handshake(tcp).await?),
        None => Box::new(tcp),
    })
}

/// Connects to `addr` and authenticates with the first of `creds.passwords` the server
/// accepts. The failed `AUTH` attempts happen on the same connection (a refused `AUTH` leaves
/// it open and unauthenticated), so fallback costs one round trip, not one connect.
pub async fn connect_as(
    addr: &str,
    creds: &Credentials,
    timeouts: Timeouts,
    tls: Option<&TlsClient>,
) -> Result<Client, ProbeError> {
    let mut client = Client::connect_over(addr, None, timeouts, tls).await?;
    authenticate(&mut client, creds).await?;
    Ok(client)
}

/// `AUTH` with each candidate in turn until one is accepted; the last refusal is the error.
pub async fn authenticate(client: &mut Client, creds: &Credentials) -> Result<(), ProbeError> {
    let mut last = None;
    for pw in &creds.passwords {
        match client.command(&creds.auth_args(pw)).await? {
            Value::Simple(_) => return Ok(()),
            Value::Error(e) if is_refusal(&e) => last = Some(e),
            Value::Error(e) => return Err(ProbeError::Auth(e)),
            other => return Err(ProbeError::Auth(format!("{other:?}"))),
        }
    }
    match last {
        Some(e) => Err(ProbeError::Auth(e)),
        None => Ok(()),
    }
}

/// Whether `addr` accepts exactly these credentials (one password): `Ok(true)` accepted,
/// `Ok(false)` refused (WRONGPASS), `Err` when the pod could not be asked.
pub async fn accepts(
    addr: &str,
    user: Option<&str>,
    password: &str,
    timeouts: Timeouts,
    tls: Option<&TlsClient>,
) -> Result<bool, ProbeError> {
    let creds = Credentials {
        user: user.map(String::from),
        passwords: vec![password.to_string()],
    };
    let mut client = Client::connect_over(addr, None, timeouts, tls).await?;
    match authenticate(&mut client, &creds).await {
        Ok(()) => Ok(true),
        Err(ProbeError::Auth(e)) if e.starts_with("WRONGPASS") => Ok(false),
        Err(e) => Err(e),
    }
}

enum ReadError {
    Io(String),
    Protocol(String),
}

async fn read_line(r: &mut Stream) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    let n = (&mut *r)
        .take(MAX_LINE as u64 + 2)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| ReadError::Io(e.to_string()))?;
    if n == 0 {
        return Err(ReadError::Io("connection closed".into()));
    }
    if !buf.ends_with(b"\r\n") {
        return Err(ReadError::Protocol(
            "line too long or not CRLF-terminated".into(),
        ));
    }
    buf.truncate(buf.len() - 2);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn parse_len(s: &str, max: usize) -> Result<Option<usize>, ReadError> {
    let n: i64 = s
        .parse()
        .map_err(|_| ReadError::Protocol(format!("bad length {s:?}")))?;
    if n < 0 {
        return Ok(None);
    }
    let n = usize::try_from(n).map_err(|_| ReadError::Protocol("length overflow".into()))?;
    if n > max {
        return Err(ReadError::Protocol(format!(
            "length {n} over the limit {max}"
        )));
    }
    Ok(Some(n))
}

fn read_value(
    r: &mut Stream,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, ReadError>> + Send + '_>> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return Err(ReadError::Protocol("reply nested too deeply".into()));
        }
        let line = read_line(r).await?;
        let (kind, rest) = match line.char_indices().nth(1) {
            Some((i, _)) => (&line[..i], &line[i..]),
            None => (line.as_str(), ""),
        };
        match kind {
            "+" => Ok(Value::Simple(rest.to_string())),
            "-" => Ok(Value::Error(rest.to_string())),
            ":" => rest
                .parse()
                .map(Value::Int)
                .map_err(|_| ReadError::Protocol(format!("bad integer {rest:?}"))),
            "$" => match parse_len(rest, MAX_BULK)? {
                None => Ok(Value::Bulk(None)),
                Some(n) => {
                    let mut buf = vec![0u8; n + 2];
                    r.read_exact(&mut buf)
                        .await
                        .map_err(|e| ReadError::Io(e.to_string()))?;
                    if !buf.ends_with(b"\r\n") {
                        return Err(ReadError::Protocol("bulk not CRLF-terminated".into()));
                    }
                    buf.truncate(n);
                    Ok(Value::Bulk(Some(buf)))
                }
            },
            "*" => match parse_len(rest, MAX_ARRAY)? {
                None => Ok(Value::Array(None)),
                Some(n) => {
                    let mut items = Vec::with_capacity(n.min(1024));
                    for _ in 0..n {
                        items.push(read_value(r, depth + 1).await?);
                    }
                    Ok(Value::Array(Some(items)))
                }
            },
            other => Err(ReadError::Protocol(format!("unknown reply type {other:?}"))),
        }
    })
}

/// `field:value` lines of an INFO text (section headers and blank lines skipped).
pub fn info_fields(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .collect()
}

/// What INFO says about a pod's replication, before the upstream is mapped to a pod name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationInfo {
    pub role: ObservedRole,
    pub replid: String,
    pub replid2: String,
    pub second_repl_offset: i64,
    pub master_repl_offset: i64,
    pub link_up: bool,
    /// `master_host` / `master_port` of a replica (or of a fenced pod that reports one).
    pub master_addr: Option<(String, u16)>,
    pub sync_in_progress: bool,
    pub epoch: Option<u64>,
}

/// Parses `INFO replication`. Missing fields get neutral values (no replid, offset 0);
/// `tandem_fenced:1` overrides the role with [`ObservedRole::Fenced`].
pub fn parse_replication(text: &str) -> ReplicationInfo {
    let fields = info_fields(text);
    let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| v.trim());
    let int = |k: &str, default: i64| get(k).and_then(|v| v.parse().ok()).unwrap_or(default);
    let mut role = match get("role") {
        Some("master") => ObservedRole::Master,
        Some("slave") | Some("replica") => ObservedRole::Replica,
        _ => ObservedRole::Unknown,
    };
    if get("tandem_fenced") == Some("1") {
        role = ObservedRole::Fenced;
    }
    let master_addr = match (get("master_host"), get("master_port")) {
        (Some(h), Some(p)) if !h.is_empty() => p.parse().ok().map(|p| (h.to_string(), p)),
        _ => None,
    };
    ReplicationInfo {
        role,
        replid: get("master_replid").unwrap_or_default().to_string(),
        replid2: get("master_replid2").unwrap_or(NO_REPLID).to_string(),
        second_repl_offset: int("second_repl_offset", -1),
        master_repl_offset: int("master_repl_offset", 0),
        link_up: get("master_link_status") == Some("up"),
        master_addr,
        sync_in_progress: get("master_sync_in_progress") == Some("1"),
        epoch: get("tandem_epoch").and_then(|v| v.parse().ok()),
    }
}

/// `INFO keyspace` holds no `dbN:keys=K` line with K > 0.
pub fn keyspace_empty(text: &str) -> bool {
    !info_fields(text).iter().any(|(name, v)| {
        name.starts_with("db")
            && v.split(',')
                .filter_map(|kv| kv.split_once('='))
                .any(|(k, n)| k == "keys" && n.parse::<u64>().is_ok_and(|n| n > 0))
    })
}

/// One pod's observation plus what the caller needs to finish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `master_host` is left `None` here; [`Probe::master_addr`] is mapped to a pod name by
    /// the caller (pods are known by DNS name, IP or, in tests, loopback port).
    pub observation: PodObservation,
    pub master_addr: Option<(String, u16)>,
    /// Why the pod is unreachable.
    pub error: Option<ProbeError>,
}

/// An observation of a pod that did not answer.
pub fn unreachable(name: &str, ordinal: u32) -> PodObservation {
    PodObservation {
        ordinal,
        name: name.to_string(),
        reachable: false,
        role: ObservedRole::Unknown,
        replid: String::new(),
        replid2: NO_REPLID.to_string(),
        second_repl_offset: -1,
        master_repl_offset: 0,
        link_up: false,
        master_host: None,
        sync_in_progress: false,
        dataset_empty: true,
        epoch: None,
    }
}

/// Builds the observation from the two INFO texts.
pub fn observation_from_info(
    name: &str,
    ordinal: u32,
    replication: &str,
    keyspace: &str,
) -> (PodObservation, Option<(String, u16)>) {
    let r = parse_replication(replication);
    (
        PodObservation {
            ordinal,
            name: name.to_string(),
            reachable: true,
            role: r.role,
            replid: r.replid,
            replid2: r.replid2,
            second_repl_offset: r.second_repl_offset,
            master_repl_offset: r.master_repl_offset,
            link_up: r.link_up,
            master_host: None,
            sync_in_progress: r.sync_in_progress,
            dataset_empty: keyspace_empty(keyspace),
            epoch: r.epoch,
        },
        r.master_addr,
    )
}

/// Connects to `addr` (`host:port`), reads INFO replication and INFO keyspace.
pub async fn observe(
    name: &str,
    ordinal: u32,
    addr: &str,
    credentials: &Credentials,
    timeouts: Timeouts,
) -> Probe {
    observe_over(name, ordinal, addr, credentials, timeouts, None).await
}

/// [`observe`], over TLS when `tls` is given.
pub async fn observe_over(
    name: &str,
    ordinal: u32,
    addr: &str,
    credentials: &Credentials,
    timeouts: Timeouts,
    tls: Option<&TlsClient>,
) -> Probe {
    let read = async {
        let mut c = connect_as(addr, credentials, timeouts, tls).await?;
        let replication = c.info("replication").await?;
        let keyspace = c.info("keyspace").await?;
        Ok::<_, ProbeError>((replication, keyspace))
    };
    let read = async {
        match tokio::time::timeout(timeouts.observation(), read).await {
            Ok(r) => r,
            Err(_) => Err(ProbeError::Timeout {
                command: "observation".into(),
            }),
        }
    };
    match read.await {
        Ok((replication, keyspace)) => {
            let (observation, master_addr) =
                observation_from_info(name, ordinal, &replication, &keyspace);
            Probe {
                observation,
                master_addr,
                error: None,
            }
        }
        Err(e) if is_busy(&e) => Probe {
            observation: busy(name, ordinal),
            master_addr: None,
            error: None,
        },
        Err(e) => Probe {
            observation: unreachable(name, ordinal),
            master_addr: None,
            error: Some(e),
        },
    }
}

/// A `-BUSY` reply: the server runs a script past `busy-reply-threshold` and refuses
/// everything but SCRIPT KILL / FUNCTION KILL / SHUTDOWN NOSAVE, INFO included.
fn is_busy(e: &ProbeError) -> bool {
    match e {
        ProbeError::Server { error, .. } | ProbeError::Auth(error) => error.starts_with("BUSY"),
        _ => false,
    }
}

/// An observation of a pod that answered but is busy with a script: alive, state unknown.
pub fn busy(name: &str, ordinal: u32) -> PodObservation {
    PodObservation {
        reachable: true,
        role: ObservedRole::Busy,
        ..unreachable(name, ordinal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers `AUTH` with OK only for `good` (any user), WRONGPASS otherwise,
    /// and counts the AUTH commands it saw.
    async fn auth_server(good: &'static str) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 512];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let req = String::from_utf8_lossy(&buf[..n]).to_string();
                        let last = req.trim_end().rsplit("\r\n").next().unwrap_or("");
                        let reply: &[u8] = if last == good {
                            b"+OK\r\n"
                        } else {
                            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
                        };
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn the_first_accepted_password_wins_and_a_refused_one_falls_through() {
        let addr = auth_server("old").await;
        let both = crate::failover::credentials::Credentials {
            user: None,
            passwords: vec!["new".into(), "old".into()],
        };
        assert!(connect_as(&addr, &both, quick(), None).await.is_ok());
        let only_new = crate::failover::credentials::Credentials::password(Some("new".into()));
        let e = connect_as(&addr, &only_new, quick(), None)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&e, ProbeError::Auth(m) if m.starts_with("WRONGPASS")),
            "{e}"
        );
        assert!(accepts(&addr, None, "old", quick(), None).await.unwrap());
        assert!(
            !accepts(&addr, Some("tandem-operator"), "new", quick(), None)
                .await
                .unwrap()
        );
    }

    fn pw(p: &str) -> crate::failover::credentials::Credentials {
        crate::failover::credentials::Credentials::password(Some(p.to_string()))
    }

    const MASTER: &str = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n\
        slave0:ip=10.0.0.2,port=6379,state=online,offset=1234,lag=0\r\n\
        master_failover_state:no-failover\r\n\
        master_replid:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\
        master_replid2:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n\
        master_repl_offset:1234\r\nsecond_repl_offset:1000\r\n\
        repl_backlog_active:1\r\n";

    const REPLICA: &str = "# Replication\r\nrole:slave\r\n\
        master_host:r-0.r-headless.ns.svc.cluster.local\r\nmaster_port:6379\r\n\
        master_link_status:up\r\nmaster_last_io_seconds_ago:1\r\n\
        master_sync_in_progress:0\r\nslave_read_repl_offset:1234\r\nslave_repl_offset:1234\r\n\
        slave_priority:100\r\nslave_read_only:1\r\nreplica_announced:1\r\nconnected_slaves:0\r\n\
        master_failover_state:no-failover\r\n\
        master_replid:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\
        master_replid2:0000000000000000000000000000000000000000\r\n\
        master_repl_offset:1234\r\nsecond_repl_offset:-1\r\n";

    #[test]
    fn master_info_is_parsed() {
        let r = parse_replication(MASTER);
        assert_eq!(r.role, ObservedRole::Master);
        assert_eq!(r.replid, "a".repeat(40));
        assert_eq!(r.replid2, "b".repeat(40));
        assert_eq!(r.second_repl_offset, 1000);
        assert_eq!(r.master_repl_offset, 1234);
        assert!(!r.link_up);
        assert_eq!(r.master_addr, None);
        assert!(!r.sync_in_progress);
        assert_eq!(r.epoch, None);
    }

    #[test]
    fn replica_info_is_parsed_with_its_upstream() {
        let r = parse_replication(REPLICA);
        assert_eq!(r.role, ObservedRole::Replica);
        assert!(r.link_up);
        assert_eq!(
            r.master_addr,
            Some(("r-0.r-headless.ns.svc.cluster.local".to_string(), 6379))
        );
        assert_eq!(r.replid2, NO_REPLID);
        assert_eq!(r.second_repl_offset, -1);
        let syncing = REPLICA
            .replace("master_link_status:up", "master_link_status:down")
            .replace("master_sync_in_progress:0", "master_sync_in_progress:1");
        let r = parse_replication(&syncing);
        assert!(!r.link_up);
        assert!(r.sync_in_progress);
    }

    #[test]
    fn fenced_flag_and_epoch_override() {
        let text = format!("{MASTER}tandem_fenced:1\r\ntandem_epoch:7\r\n");
        let r = parse_replication(&text);
        assert_eq!(r.role, ObservedRole::Fenced);
        assert_eq!(r.epoch, Some(7));
        let text = format!("{MASTER}tandem_fenced:0\r\n");
        assert_eq!(parse_replication(&text).role, ObservedRole::Master);
    }

    #[test]
    fn garbage_info_gives_neutral_values_not_a_panic() {
        for text in [
            "",
            "\r\n\r\n",
            "role\r\n::::\r\nmaster_repl_offset:x\r\n",
            "role:leader",
        ] {
            let r = parse_replication(text);
            assert_eq!(r.role, ObservedRole::Unknown, "{text:?}");
            assert_eq!(r.master_repl_offset, 0);
            assert_eq!(r.second_repl_offset, -1);
        }
        let r = parse_replication("role:slave\r\nmaster_host:h\r\nmaster_port:99999\r\n");
        assert_eq!(r.master_addr, None, "port out of range");
    }

    #[test]
    fn keyspace_emptiness() {
        assert!(keyspace_empty("# Keyspace\r\n"));
        assert!(keyspace_empty(""));
        assert!(!keyspace_empty(
            "# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n"
        ));
        assert!(!keyspace_empty(
            "# Keyspace\r\ndb0:keys=0,expires=0,avg_ttl=0\r\ndb5:keys=1,expires=1,avg_ttl=9\r\n"
        ));
        assert!(keyspace_empty("# Keyspace\r\ndb0:keys=0,expires=0\r\n"));
    }

    #[test]
    fn observation_combines_both_sections() {
        let (o, addr) = observation_from_info("r-1", 1, REPLICA, "db0:keys=1,expires=0\r\n");
        assert!(o.reachable);
        assert_eq!((o.name.as_str(), o.ordinal), ("r-1", 1));
        assert_eq!(o.role, ObservedRole::Replica);
        assert!(!o.dataset_empty);
        assert_eq!(o.master_host, None, "mapped by the caller");
        assert_eq!(addr.map(|a| a.1), Some(6379));
    }

    async fn fake_server(script: Vec<&'static [u8]>) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 4096];
                for reply in script {
                    // One request per reply: wait for some bytes, then answer.
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if s.write_all(reply).await.is_err() {
                        return;
                    }
                }
                // Keep the connection open without answering (timeout tests).
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        addr
    }

    fn quick() -> Timeouts {
        Timeouts {
            connect: Duration::from_millis(500),
            command: Duration::from_millis(300),
        }
    }

    #[test]
    fn probe_timeouts_are_one_second_or_half_the_down_after_window() {
        let t = Timeouts::default();
        assert_eq!(t, Timeouts::uniform(Duration::from_secs(1)));
        assert_eq!(t.for_down_after(Duration::from_secs(5)), t);
        assert_eq!(
            t.for_down_after(Duration::from_secs(1)),
            Timeouts::uniform(Duration::from_millis(500))
        );
        assert_eq!(
            Timeouts::uniform(Duration::from_millis(100)).for_down_after(Duration::from_secs(1)),
            Timeouts::uniform(Duration::from_millis(100)),
            "a configured timeout below the cap stays"
        );
        assert_eq!(t.observation(), Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_pod_that_answers_auth_then_hangs_is_unreachable_after_one_deadline() {
        // AUTH answered, then silence: INFO times out once; the whole observation is bounded
        // by connect + command, not by one timeout per remaining request.
        let addr = fake_server(vec![b"+OK\r\n"]).await;
        let t0 = std::time::Instant::now();
        let p = observe("r-0", 0, &addr, &pw("pw"), quick()).await;
        assert!(!p.observation.reachable);
        assert!(
            matches!(p.error, Some(ProbeError::Timeout { .. })),
            "{:?}",
            p.error
        );
        assert!(t0.elapsed() < quick().observation() + Duration::from_millis(300));
    }

    #[tokio::test]
    async fn a_pod_answering_busy_is_alive_and_busy_not_unreachable() {
        let busy = b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";
        let addr = fake_server(vec![busy]).await;
        let p = observe("r-0", 0, &addr, &Default::default(), quick()).await;
        assert!(p.error.is_none(), "{:?}", p.error);
        assert!(p.observation.reachable);
        assert_eq!(p.observation.role, ObservedRole::Busy);
        // A server that refuses even AUTH while busy is busy too.
        let addr = fake_server(vec![busy]).await;
        let p = observe("r-0", 0, &addr, &pw("pw"), quick()).await;
        assert_eq!(p.observation.role, ObservedRole::Busy, "{:?}", p.error);
        // Any other error reply is still a failed probe.
        let addr = fake_server(vec![b"-ERR nope\r\n"]).await;
        let p = observe("r-0", 0, &addr, &Default::default(), quick()).await;
        assert!(!p.observation.reachable);
        assert!(p.error.is_some());
    }

    #[tokio::test]
    async fn client_reads_every_reply_type() {
        let addr = fake_server(vec![
            b"+OK\r\n",
            b":42\r\n",
            b"$-1\r\n",
            b"*2\r\n$3\r\nabc\r\n*1\r\n-ERR x\r\n",
        ])
        .await;
        let mut c = Client::connect(&addr, None, quick()).await.unwrap();
        assert_eq!(
            c.command(&["PING"]).await.unwrap(),
            Value::Simple("OK".into())
        );
        assert_eq!(c.command(&["X"]).await.unwrap(), Value::Int(42));
        assert_eq!(c.command(&["X"]).await.unwrap(), Value::Bulk(None));
        assert_eq!(
            c.command(&["X"]).await.unwrap(),
            Value::Array(Some(vec![
                Value::Bulk(Some(b"abc".to_vec())),
                Value::Array(Some(vec![Value::Error("ERR x".into())]))
            ]))
        );
        // The server stops answering: a timeout, not a hang.
        assert!(matches!(
            c.command(&["X"]).await,
            Err(ProbeError::Timeout { .. })
        ));
    }

    #[tokio::test]
    async fn bad_replies_are_errors_not_panics() {
        for bad in [
            &b"?what\r\n"[..],
            b"$99999999999\r\n",
            b":notanumber\r\n",
            b"$3\r\nabcXY",
            b"*-5\r\n",
        ] {
            let addr = fake_server(vec![bad]).await;
            let mut c = Client::connect(&addr, None, quick()).await.unwrap();
            let r = c.command(&["X"]).await;
            if bad == b"*-5\r\n" {
                assert_eq!(r.unwrap(), Value::Array(None));
            } else {
                assert!(r.is_err(), "{:?} gave {r:?}", String::from_utf8_lossy(bad));
            }
        }
    }

    #[tokio::test]
    async fn auth_failure_and_unreachable_pods_are_reported() {
        let addr = fake_server(vec![b"-WRONGPASS invalid username-password pair\r\n"]).await;
        let p = observe("r-0", 0, &addr, &pw("pw"), quick()).await;
        assert!(!p.observation.reachable);
        assert!(matches!(p.error, Some(ProbeError::Auth(ref e)) if e.starts_with("WRONGPASS")));

        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = l.local_addr().unwrap().to_string();
        drop(l);
        let p = observe("r-1", 1, &closed, &Default::default(), quick()).await;
        assert!(!p.observation.reachable);
        assert!(matches!(p.error, Some(ProbeError::Connect { .. })));
    }

    #[tokio::test]
    async fn observe_reads_both_sections() {
        let rep = format!("${}\r\n{REPLICA}\r\n", REPLICA.len());
        let ks = "# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n";
        let ks = format!("${}\r\n{ks}\r\n", ks.len());
        let rep: &'static [u8] = Box::leak(rep.into_bytes().into_boxed_slice());
        let ks: &'static [u8] = Box::leak(ks.into_bytes().into_boxed_slice());
        let addr = fake_server(vec![b"+OK\r\n", rep, ks]).await;
        let p = observe("r-1", 1, &addr, &pw("pw"), quick()).await;
        assert_eq!(p.error, None);
        assert!(p.observation.reachable);
        assert_eq!(p.observation.master_repl_offset, 1234);
        assert!(!p.observation.dataset_empty);
        assert_eq!(p.master_addr.unwrap().1, 6379);
    }
}
