//! Command family: MIGRATE, which moves keys to another server.
//!
//! `MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw]
//! [KEYS k ...]` serializes each key as DUMP does and sends, in one write:
//!
//! ```text
//! [AUTH [user] pw]          when AUTH/AUTH2 was given
//! [SELECT db]               when the cached connection has another db selected
//! RESTORE key ttl payload [REPLACE]    one per key (ttl 0 = none, else ms left)
//! ```
//!
//! then reads one reply line per command. Keys the target acknowledged are deleted
//! here (unless COPY) and the command is propagated as `DEL` of exactly those keys.
//! As in Redis the whole exchange runs while the command runs (the store stays
//! locked: MIGRATE blocks the server up to `timeout` per I/O step), over a connection
//! cached per `host:port` (`crate::server::migrate_sockets`). A non-cluster Redis
//! sends `RESTORE`, not `RESTORE-ASKING`, and so does Tandem.

use super::{arg_i64, err, flags::*, CmdError, CmdResult, Command, Ctx};
use crate::resp::Reply;
use crate::server::migrate_sockets::Cached;
use crate::util::is_kw;
use bytes::Bytes;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

pub const COMMANDS: &[Command] =
    &[Command::new("migrate", -6, WRITE, migrate).keys_with(migrate_keys)];

/// Longest reply line read from the target (Redis reads into a 1 KiB buffer).
const MAX_LINE: u64 = 1024;

/// The key positions: argument 3, or everything after `KEYS` (whose key argument
/// must then be empty), skipping the values of AUTH and AUTH2.
fn migrate_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut i = 6;
    while i < argv.len() {
        let a = &argv[i];
        if is_kw(a, "keys") {
            if !argv[3].is_empty() {
                return Vec::new();
            }
            return (i + 1..argv.len()).collect();
        }
        i += if is_kw(a, "auth") {
            2
        } else if is_kw(a, "auth2") {
            3
        } else {
            1
        };
    }
    vec![3]
}

/// The parsed arguments.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    keys: Vec<Bytes>,
    db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    /// (user, password) of AUTH (no user) or AUTH2.
    auth: Option<(Option<Bytes>, Bytes)>,
}

fn parse(argv: &[Bytes]) -> Result<Args, CmdError> {
    let (mut copy, mut replace, mut auth) = (false, false, None);
    let mut keys = vec![argv[3].clone()];
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - j - 1;
        let a = &argv[j];
        if is_kw(a, "copy") {
            copy = true;
        } else if is_kw(a, "replace") {
            replace = true;
        } else if is_kw(a, "auth") && more >= 1 {
            auth = Some((None, argv[j + 1].clone()));
            j += 1;
        } else if is_kw(a, "auth2") && more >= 2 {
            auth = Some((Some(argv[j + 1].clone()), argv[j + 2].clone()));
            j += 2;
        } else if is_kw(a, "keys") {
            if !argv[3].is_empty() {
                return Err(CmdError::msg(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            keys = argv[j + 1..].to_vec();
            break;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    let timeout = arg_i64(&argv[5])?;
    let db = arg_i64(&argv[4])?;
    let timeout_ms = if timeout <= 0 { 1000 } else { timeout as u64 };
    Ok(Args {
        keys,
        db,
        timeout: Duration::from_millis(timeout_ms),
        copy,
        replace,
        auth,
    })
}

/// Why a transfer failed at the socket level.
#[derive(Debug, thiserror::Error)]
enum SocketError {
    #[error("IOERR error or timeout connecting to the client")]
    Connect,
    #[error("IOERR error or timeout writing to target instance")]
    Write { timed_out: bool },
    #[error("IOERR error or timeout reading to target instance")]
    Read { timed_out: bool },
}

impl SocketError {
    fn from_io(e: &io::Error, write: bool) -> Self {
        let timed_out = matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        );
        if write {
            SocketError::Write { timed_out }
        } else {
            SocketError::Read { timed_out }
        }
    }

    /// Redis retries once on a fresh connection unless the step timed out.
    fn retryable(&self) -> bool {
        matches!(
            self,
            SocketError::Write { timed_out: false } | SocketError::Read { timed_out: false }
        )
    }
}

/// One key to send: name, ms to live (0 = no TTL), DUMP payload.
struct Item {
    key: Bytes,
    ttl: i64,
    payload: Vec<u8>,
}

/// What the target answered.
struct Replies {
    /// The error line (without its `-`) of the first command that failed, if any.
    error: Option<String>,
    /// Keys whose RESTORE succeeded, in order.
    restored: Vec<Bytes>,
    /// A socket error after some replies were read.
    broken: Option<SocketError>,
}

fn migrate(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let args = parse(argv)?;
    let items = collect(ctx, &args);
    if items.is_empty() {
        ctx.no_propagate = true;
        out.simple("NOKEY");
        return Ok(());
    }
    let host = String::from_utf8_lossy(&argv[1]).into_owned();
    let port = String::from_utf8_lossy(&argv[2]).into_owned();
    let name = format!("{host}:{port}");
    let mut retried = false;
    let replies = loop {
        let attempt = match ctx.server.migrate_sockets.take(&name) {
            Some(c) => Ok(c),
            None => connect(&host, &port, args.timeout),
        };
        let done = attempt.and_then(|mut conn| {
            let select = conn.last_dbid != args.db;
            let request = encode(&args, &items, select);
            exchange(&mut conn, &request, &args, select, &items).map(|r| (conn, r))
        });
        match done {
            // Nothing was restored yet: dropping the connection closes it, and Redis
            // retries once on a fresh one (most often the target had closed the
            // cached connection) unless the step timed out.
            Err(e) if e.retryable() && !retried => {
                retried = true;
                continue;
            }
            Err(e) => return Err(CmdError::msg(e.to_string())),
            Ok((mut conn, r)) => {
                if r.broken.is_none() {
                    conn.last_dbid = if r.error.is_some() { -1 } else { args.db };
                    conn.last_use = Instant::now();
                    ctx.server.migrate_sockets.put(name.clone(), conn);
                }
                break r;
            }
        }
    };
    finish(ctx, out, &args, replies)
}

/// The keys that exist, with their TTL and payload (a key that expires in the
/// meantime is skipped, as Redis does).
fn collect(ctx: &mut Ctx, args: &Args) -> Vec<Item> {
    let compression = ctx.config().rdbcompression;
    let mut items = Vec::new();
    for key in &args.keys {
        let Some(v) = ctx.get(key) else { continue };
        let payload = super::dump::serialize(v, compression);
        let ttl = match ctx.db_ref().expire_of(key) {
            None => 0,
            Some(at) if at < ctx.now_ms => continue,
            Some(at) => (at - ctx.now_ms).max(1),
        };
        items.push(Item {
            key: key.clone(),
            ttl,
            payload,
        });
    }
    items
}

/// Deletes what the target acknowledged (unless COPY), propagates it as DEL, replies.
fn finish(ctx: &mut Ctx, out: &mut Reply, args: &Args, r: Replies) -> CmdResult {
    let mut deleted = vec![Bytes::from_static(b"DEL")];
    if !args.copy {
        for key in r.restored {
            if ctx.delete(&key) {
                ctx.notify(crate::notify::GENERIC, "del", &key);
                ctx.dirty(1);
                deleted.push(key);
            }
        }
    }
    if deleted.len() > 1 {
        ctx.rewrite = Some(deleted);
    } else {
        ctx.no_propagate = true;
    }
    if let Some(e) = r.error {
        return Err(CmdError::msg(format!(
            "ERR Target instance replied with error: {e}"
        )));
    }
    if let Some(e) = r.broken {
        return Err(CmdError::msg(e.to_string()));
    }
    out.ok();
    Ok(())
}

/// Opens a connection to the target. As with Redis's non-blocking connect, a refused
/// connection shows up as a failed write (the first use of the socket); only a
/// timeout or an unusable address is a failure to connect.
fn connect(host: &str, port: &str, timeout: Duration) -> Result<Cached, SocketError> {
    let port: u16 = port.parse().map_err(|_| SocketError::Connect)?;
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|_| SocketError::Connect)?;
    let deadline = Instant::now() + timeout;
    let mut refused = false;
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(Cached {
                    stream,
                    last_dbid: -1,
                    last_use: Instant::now(),
                });
            }
            Err(e) if e.kind() != io::ErrorKind::TimedOut => refused = true,
            Err(_) => {}
        }
    }
    Err(if refused {
        SocketError::Write { timed_out: false }
    } else {
        SocketError::Connect
    })
}

/// The request bytes: [AUTH] [SELECT] and one RESTORE per item.
fn encode(args: &Args, items: &[Item], select: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some((user, pw)) = &args.auth {
        let mut cmd: Vec<&[u8]> = vec![b"AUTH"];
        if let Some(u) = user {
            cmd.push(u);
        }
        cmd.push(pw);
        put_command(&mut buf, &cmd);
    }
    if select {
        put_command(&mut buf, &[b"SELECT", args.db.to_string().as_bytes()]);
    }
    for it in items {
        let ttl = it.ttl.to_string();
        let mut cmd: Vec<&[u8]> = vec![b"RESTORE", &it.key, ttl.as_bytes(), &it.payload];
        if args.replace {
            cmd.push(b"REPLACE");
        }
        put_command(&mut buf, &cmd);
    }
    buf
}

fn put_command(buf: &mut Vec<u8>, args: &[&[u8]]) {
    buf.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
}

/// Sends the request and reads the replies (one line each), each step within
/// `args.timeout`.
fn exchange(
    conn: &mut Cached,
    request: &[u8],
    args: &Args,
    select: bool,
    items: &[Item],
) -> Result<Replies, SocketError> {
    let s = &conn.stream;
    s.set_write_timeout(Some(args.timeout))
        .and_then(|_| s.set_read_timeout(Some(args.timeout)))
        .map_err(|e| SocketError::from_io(&e, true))?;
    for chunk in request.chunks(64 * 1024) {
        (&conn.stream)
            .write_all(chunk)
            .map_err(|e| SocketError::from_io(&e, true))?;
    }
    let mut rd = BufReader::new(&conn.stream);
    let mut error = None;
    if args.auth.is_some() {
        error = error_of(read_line(&mut rd, args.timeout)?);
    }
    if select {
        let e = error_of(read_line(&mut rd, args.timeout)?);
        error = error.or(e);
    }
    let mut restored = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let line = match read_line(&mut rd, args.timeout) {
            Ok(l) => l,
            Err(e) if i == 0 => return Err(e),
            Err(e) => {
                return Ok(Replies {
                    error,
                    restored,
                    broken: Some(e),
                })
            }
        };
        match (error.is_some(), error_of(line)) {
            (false, Some(e)) => error = Some(e),
            (false, None) => restored.push(it.key.clone()),
            (true, _) => {}
        }
    }
    Ok(Replies {
        error,
        restored,
        broken: None,
    })
}

/// One reply line without its CRLF, at most [`MAX_LINE`] bytes, read within
/// `timeout` in all (a target that trickles bytes cannot stretch the wait).
fn read_line(rd: &mut BufReader<&TcpStream>, timeout: Duration) -> Result<String, SocketError> {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SocketError::Read { timed_out: true });
        }
        rd.get_ref()
            .set_read_timeout(Some(left))
            .map_err(|e| SocketError::from_io(&e, false))?;
        let buf = rd.fill_buf().map_err(|e| SocketError::from_io(&e, false))?;
        if buf.is_empty() {
            return Err(SocketError::Read { timed_out: false });
        }
        let room = (MAX_LINE as usize).saturating_sub(line.len());
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) if i < room => (i + 1, true),
            _ => (buf.len().min(room), buf.len() >= room),
        };
        line.extend_from_slice(buf.get(..take).unwrap_or_default());
        rd.consume(take);
        if done {
            break;
        }
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// The error text of an error reply line (`-ERR ...` gives `ERR ...`).
fn error_of(line: String) -> Option<String> {
    line.strip_prefix('-').map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(if a == "\"\"" { b"" } else { a.as_bytes() }))
            .collect()
    }

    #[test]
    fn keys_are_the_key_argument_or_those_after_keys() {
        assert_eq!(migrate_keys(&v("migrate h 1 k 0 10")), vec![3]);
        assert_eq!(
            migrate_keys(&v("migrate h 1 \"\" 0 10 COPY AUTH keys KEYS a b")),
            vec![10, 11]
        );
        assert_eq!(
            migrate_keys(&v("migrate h 1 \"\" 0 10 auth2 keys keys KEYS a")),
            vec![10]
        );
        assert!(migrate_keys(&v("migrate h 1 k 0 10 KEYS a")).is_empty());
    }

    #[test]
    fn options_parse_as_in_redis() {
        let a = parse(&v("migrate h 1 \"\" 3 0 copy REPLACE auth2 u p keys a b")).unwrap();
        assert_eq!(a.keys, v("a b"));
        assert_eq!((a.db, a.copy, a.replace), (3, true, true));
        assert_eq!(a.timeout, Duration::from_millis(1000));
        assert_eq!(a.auth, Some((Some(Bytes::from("u")), Bytes::from("p"))));
        assert_eq!(
            parse(&v("migrate h 1 k 0 10 auth")).unwrap_err(),
            err::SYNTAX
        );
        assert_eq!(
            parse(&v("migrate h 1 k 0 10 auth2 u")).unwrap_err(),
            err::SYNTAX
        );
        assert_eq!(
            parse(&v("migrate h 1 k 0 10 bogus")).unwrap_err(),
            err::SYNTAX
        );
        assert_eq!(parse(&v("migrate h 1 k 0 x")).unwrap_err(), err::NOT_INT);
        assert_eq!(parse(&v("migrate h 1 k x 10")).unwrap_err(), err::NOT_INT);
        assert!(parse(&v("migrate h 1 k 0 10 keys a"))
            .unwrap_err()
            .0
            .contains("must be set to the empty string"));
    }

    #[test]
    fn request_has_auth_select_and_one_restore_per_key() {
        let args = parse(&v("migrate h 1 \"\" 2 10 replace auth pw keys a")).unwrap();
        let items = vec![Item {
            key: Bytes::from("a"),
            ttl: 5,
            payload: b"P".to_vec(),
        }];
        let got = encode(&args, &items, true);
        assert_eq!(
            got,
            b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n\
              *5\r\n$7\r\nRESTORE\r\n$1\r\na\r\n$1\r\n5\r\n$1\r\nP\r\n$7\r\nREPLACE\r\n"
                .to_vec()
        );
        assert!(!String::from_utf8_lossy(&encode(&args, &items, false)).contains("SELECT"));
    }
}
