//! Protocol layer: the request parser (RESP multibulk and inline) and the reply writer
//! (RESP2, or RESP3 after `HELLO 3`).
//!
//! The parser is incremental and check-then-parse: bytes that do not yet form a whole
//! argument stay in the buffer and "incomplete" is `Ok(None)`, never an error. Progress
//! inside a long multibulk is kept in [`RequestParser`] so a command with a million
//! arguments arriving in small reads is not re-scanned from the start each time.
//!
//! Request layout (Redis `networking.c: processMultibulkBuffer/processInlineBuffer`):
//! `*<argc>\r\n` then argc times `$<len>\r\n<len bytes>\r\n`; or an inline line
//! `arg arg "quoted arg"\n` (optional `\r`), split like `sdssplitargs`.

use bytes::{Buf, Bytes, BytesMut};

/// Longest `*<n>` / `$<n>` header line or inline request accepted without a newline
/// (`proto-inline-max-size`'s fixed value in Redis 7.0).
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;
/// Largest argument count of one multibulk request: Redis's `INT_MAX`. What really bounds
/// a request is `client-query-buffer-limit`, which counts parsed arguments too.
pub const MAX_MULTIBULK_LEN: i64 = i32::MAX as i64;
/// Before AUTH, Redis 7 accepts at most this many arguments in one request...
pub const UNAUTH_MAX_ARGS: i64 = 10;
/// ... and bulks of at most this many bytes.
pub const UNAUTH_MAX_BULK: i64 = 16 * 1024;
/// Bytes reserved for a bulk before any of it arrived; past that the reservation grows
/// with what arrived (doubling), never with what the header declares.
const BULK_RESERVE_STEP: usize = 64 * 1024;
/// What one kept argument costs besides its bytes (the `Bytes` handle), for the
/// query-buffer accounting.
const ARG_OVERHEAD: usize = std::mem::size_of::<Bytes>();

/// A protocol violation; the connection gets `-ERR Protocol error: <msg>` and is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

/// Arguments up to this size are taken as slices of the read buffer when their whole
/// request is buffered (no allocation, no copy); longer ones are copied, so a large
/// stored value never keeps a read buffer alive. Anything that keeps a small argument
/// beyond its command copies it (`util::detach`).
pub const SLICE_MAX: usize = 4096;
/// Requests with more arguments than this always take the incremental path.
const WHOLE_MAX_ARGS: usize = 64;

/// Incremental request parser state for one connection.
#[derive(Debug, Default)]
pub struct RequestParser {
    /// Arguments still expected by the multibulk being read (0 = between requests).
    pending: usize,
    args: Vec<Bytes>,
    /// Bytes the arguments in `args` hold (with their handles), counted against
    /// `client-query-buffer-limit` together with the read buffer.
    args_bytes: usize,
    /// (start, len) of each argument of a fully buffered request (reused).
    spans: Vec<(usize, usize)>,
    /// Empty argument vectors of earlier commands, given back by the connection
    /// ([`RequestParser::give_back`]) so a request's argv is not a fresh allocation:
    /// at -P 16 a batch of allocations outran glibc's per-size cache of 7 and took
    /// the allocator's slow paths (docs/benchmarks.md, entry 34).
    spare: Vec<Vec<Bytes>>,
    /// The connection's last command name as static bytes (or empty): a request
    /// whose first argument is these bytes gets a handle on them instead of a slice
    /// of the read buffer, which saves an atomic reference count increment and
    /// decrement per request (set by the connection, [`Self::remember_name`]).
    name: &'static [u8],
    /// Largest bulk accepted (`proto-max-bulk-len`).
    pub max_bulk_len: i64,
    /// The client has not authenticated although a password is required: Redis's
    /// unauthenticated limits apply ([`UNAUTH_MAX_ARGS`], [`UNAUTH_MAX_BULK`]).
    pub auth_required: bool,
}
/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A command with its arguments (never empty).
    Command(Vec<Bytes>),
    /// An empty inline line (a bare `\n`); replicas send these as keepalives.
    Empty,
}

/// Where a `*<n>` / `$<n>` header line ends, as Redis reads it: at the FIRST `\r`, with
/// one more byte (the `\n`) required in the buffer. A lone `\r` is not skipped over: the
/// digits before it are what gets parsed (so `*\r\r\r...` is an invalid length at
/// once, never a scan over the whole buffer). `Err` when no `\r` came within
/// [`PROTO_INLINE_MAX_SIZE`] bytes.
fn header_end(buf: &[u8]) -> Result<Option<usize>, ()> {
    let window = &buf[..buf.len().min(PROTO_INLINE_MAX_SIZE + 1)];
    match memchr(b'\r', window) {
        Some(i) if i + 1 < buf.len() => Ok(Some(i)),
        Some(_) => Ok(None),
        None if buf.len() > PROTO_INLINE_MAX_SIZE => Err(()),
        None => Ok(None),
    }
}

/// The common shape of a length line after its `*` or `$`: 1 to 18 digits without
/// a leading zero (or a lone `0`), then `\r\n`. Returns the value and the length of
/// the line (with its `\r\n`); `None` for anything else, which the general path
/// ([`header_end`], [`parse_i64`]) then reads with Redis's rules. One pass over the
/// few bytes instead of a search for the `\r` and a checked parse.
#[inline]
fn quick_len(line: &[u8]) -> Option<(usize, usize)> {
    let mut v = 0usize;
    let mut i = 0;
    loop {
        let c = *line.get(i)?;
        if c == b'\r' {
            break;
        }
        let d = c.wrapping_sub(b'0');
        if d > 9 || i == 18 {
            return None;
        }
        v = v * 10 + d as usize;
        i += 1;
    }
    let ok = i > 0 && line.get(i + 1) == Some(&b'\n') && (line[0] != b'0' || i == 1);
    ok.then_some((v, i + 2))
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Parses a strict decimal integer as Redis's `string2ll` does.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || (digits[0] == b'0' && digits.len() > 1) {
        return None;
    }
    if neg && digits == b"0" {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(v)
}

/// A `*<n>` line read with Redis's rules: the count and the line's length with its
/// `\r\n`, `None` while incomplete.
fn multibulk_header(buf: &[u8]) -> Result<Option<(i64, usize)>, ProtocolError> {
    let end = match header_end(buf) {
        Ok(Some(end)) => end,
        Ok(None) => return Ok(None),
        Err(()) => return Err(ProtocolError("too big mbulk count string".into())),
    };
    match parse_i64(&buf[1..end]) {
        Some(n) if n <= MAX_MULTIBULK_LEN => Ok(Some((n, end + 2))),
        _ => Err(ProtocolError("invalid multibulk length".into())),
    }
}

impl RequestParser {
    pub fn new(max_bulk_len: i64) -> Self {
        RequestParser {
            max_bulk_len,
            ..Default::default()
        }
    }

    /// Most spare argument vectors a parser keeps (about 2 KiB for 4-argument
    /// commands): enough for a pipelined batch to reuse its predecessor's.
    pub const SPARE_MAX: usize = 16;

    /// Whether the parser would take another spare vector.
    pub fn wants_spare(&self) -> bool {
        self.spare.len() < Self::SPARE_MAX
    }

    /// Keeps `v` (emptied) for a later request's arguments, up to [`Self::SPARE_MAX`].
    pub fn give_back(&mut self, mut v: Vec<Bytes>) {
        if self.wants_spare() {
            v.clear();
            self.spare.push(v);
        }
    }

    /// Remembers `name` for the requests that start with the same bytes.
    pub fn remember_name(&mut self, name: &'static [u8]) {
        self.name = name;
    }

    /// True between requests (not inside a partly received multibulk).
    pub fn is_idle(&self) -> bool {
        self.pending == 0
    }

    /// Bytes held by the arguments of a partly received request.
    pub fn held_bytes(&self) -> usize {
        self.args_bytes
    }

    /// Parses the next request out of `buf`, consuming its bytes.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        if self.pending == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            if buf[0] != b'*' {
                return parse_inline(buf);
            }
            let (n, line) = match quick_len(&buf[1..]) {
                Some((n, line)) if n <= WHOLE_MAX_ARGS => (n as i64, line + 1),
                _ => match multibulk_header(buf)? {
                    Some(header) => header,
                    None => return Ok(None),
                },
            };
            if n > UNAUTH_MAX_ARGS && self.auth_required {
                return Err(ProtocolError("unauthenticated multibulk length".into()));
            }
            buf.advance(line);
            if n <= 0 {
                // `*0` or `*-1`: an empty request, silently skipped as Redis does.
                return Ok(Some(Request::Empty));
            }
            if n as usize <= WHOLE_MAX_ARGS {
                if let Some(total) = self.scan_whole(buf, n as usize) {
                    // The whole request is here: one split of the buffer, and each
                    // argument a slice of it (or a copy, if long). The last one takes
                    // the split's own reference instead of a new one: each slice is
                    // an atomic increment and its drop a decrement, a measurable
                    // share of a pipelined request (docs/benchmarks.md, optimisation
                    // log entry 40).
                    // n >= 1 spans were recorded (n <= 0 returned above).
                    let Some(&(last_at, last_len)) = self.spans.last() else {
                        return Ok(Some(Request::Empty));
                    };
                    let rest = self.spans.len() - 1;
                    let mut args = self.spare.pop().unwrap_or_default();
                    let (name_at, name_len) = self.spans[0];
                    let same_name = !self.name.is_empty()
                        && buf.get(name_at..name_at + name_len) == Some(self.name);
                    if same_name {
                        // Built in place (not a clone through the handle's vtable,
                        // which goes through memory: a stalled store-to-load copy).
                        args.push(Bytes::from_static(self.name));
                        if rest == 0 {
                            buf.advance(total);
                            return Ok(Some(Request::Command(args)));
                        }
                    }
                    let mut frozen = buf.split_to(total).freeze();
                    let first = usize::from(same_name);
                    args.extend(self.spans[first..rest].iter().map(|&(at, len)| {
                        if len > SLICE_MAX {
                            Bytes::copy_from_slice(&frozen[at..at + len])
                        } else {
                            frozen.slice(at..at + len)
                        }
                    }));
                    if last_len > SLICE_MAX {
                        args.push(Bytes::copy_from_slice(&frozen[last_at..last_at + last_len]));
                    } else {
                        frozen.advance(last_at);
                        frozen.truncate(last_len);
                        args.push(frozen);
                    }
                    return Ok(Some(Request::Command(args)));
                }
            }
            self.pending = n as usize;
            // Do not trust the header for the allocation size (1M-arg headers are cheap to send).
            self.args = Vec::with_capacity(self.pending.min(1024));
            self.args_bytes = 0;
        }
        while self.pending > 0 {
            let Some(arg) = self.next_bulk(buf)? else {
                return Ok(None);
            };
            self.args_bytes += arg.len() + ARG_OVERHEAD;
            self.args.push(arg);
            self.pending -= 1;
        }
        self.args_bytes = 0;
        Ok(Some(Request::Command(std::mem::take(&mut self.args))))
    }

    /// The bulk limit in force: `proto-max-bulk-len`, or Redis's 16 KB before AUTH.
    fn bulk_limit(&self) -> i64 {
        if self.auth_required {
            self.max_bulk_len.min(UNAUTH_MAX_BULK)
        } else {
            self.max_bulk_len
        }
    }

    /// Reads one `$<len>\r\n<bytes>\r\n` argument, or `None` while it is incomplete.
    fn next_bulk(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, ProtocolError> {
        if buf.is_empty() {
            return Ok(None);
        }
        let end = match header_end(buf) {
            Ok(Some(end)) => end,
            Ok(None) => return Ok(None),
            Err(()) => return Err(ProtocolError("too big bulk count string".into())),
        };
        if buf[0] != b'$' {
            let got = buf[0] as char;
            return Err(ProtocolError(format!("expected '$', got '{got}'")));
        }
        let len = match parse_i64(&buf[1..end]) {
            Some(n) if n >= 0 && n <= self.max_bulk_len => n,
            _ => return Err(ProtocolError("invalid bulk length".into())),
        };
        if len > self.bulk_limit() {
            return Err(ProtocolError("unauthenticated bulk length".into()));
        }
        let len = len as usize;
        let total = end + 2 + len + 2;
        if buf.len() < total {
            // Room for what may come next, grown with what already came: a declared
            // length alone never makes the buffer large.
            let want = (total - buf.len()).min(BULK_RESERVE_STEP.max(buf.len()));
            buf.reserve(want);
            return Ok(None);
        }
        // Copy the argument out: values stored in the keyspace must not pin the
        // (much larger) read buffer they arrived in.
        let arg = Bytes::copy_from_slice(&buf[end + 2..end + 2 + len]);
        buf.advance(total);
        Ok(Some(arg))
    }

    /// If `buf` holds `n` complete, well-formed bulk arguments, records where each
    /// one is in `spans` and returns the bytes they take. Anything else (incomplete,
    /// malformed, over `max_bulk_len`) returns None and is left to the incremental
    /// path, which consumes what is complete and reports errors.
    fn scan_whole(&mut self, buf: &[u8], n: usize) -> Option<usize> {
        self.spans.clear();
        let mut pos = 0;
        for _ in 0..n {
            let rest = &buf[pos..];
            if rest.first() != Some(&b'$') {
                return None;
            }
            let (len, line) = match quick_len(&rest[1..]) {
                Some((len, line)) => (len as i64, line + 1),
                None => {
                    let end = header_end(rest).ok()??;
                    (parse_i64(&rest[1..end])?, end + 2)
                }
            };
            if len < 0 || len > self.bulk_limit() {
                return None;
            }
            let start = pos + line;
            let next = start.checked_add(len as usize)?.checked_add(2)?;
            if next > buf.len() {
                return None;
            }
            self.spans.push((start, len as usize));
            pos = next;
        }
        Some(pos)
    }
}

fn parse_inline(buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > PROTO_INLINE_MAX_SIZE {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    let args =
        split_args(line).ok_or_else(|| ProtocolError("unbalanced quotes in request".into()))?;
    buf.advance(nl + 1);
    if args.is_empty() {
        return Ok(Some(Request::Empty));
    }
    Ok(Some(Request::Command(
        args.into_iter().map(Bytes::from).collect(),
    )))
}

/// C's `isspace`, which `sdssplitargs` uses: unlike `u8::is_ascii_whitespace` it
/// includes the vertical tab (found by the `inline` fuzz target).
fn c_isspace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits a line into arguments like Redis's `sdssplitargs`: whitespace separated,
/// `"..."` with escapes (`\n \r \t \b \a \xHH \<c>`), `'...'` literal except `\'`.
/// A closing quote must be followed by whitespace or the end. `None` = unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && c_isspace(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut inq = false; // inside "double quotes"
        let mut insq = false; // inside 'single quotes'
        let mut done = false;
        while !done {
            if inq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    let hi = hex_val(line[i + 2]).unwrap_or(0);
                    let lo = hex_val(line[i + 3]).unwrap_or(0);
                    cur.push(hi * 16 + lo);
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !c_isspace(line[i + 1]) {
                        return None;
                    }
                    done = true;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !c_isspace(line[i + 1]) {
                        return None;
                    }
                    done = true;
                } else {
                    cur.push(c);
                }
            } else if i >= n {
                done = true;
            } else {
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            if i < n {
                i += 1;
            }
        }
        out.push(cur);
    }
}

/// Writes replies into a connection's output buffer in the client's protocol version.
#[derive(Debug, Default)]
pub struct Reply {
    pub buf: Vec<u8>,
    pub resp3: bool,
}

impl Reply {
    pub fn new(resp3: bool) -> Self {
        Reply {
            buf: Vec::with_capacity(256),
            resp3,
        }
    }

    fn header(&mut self, prefix: u8, n: i64) {
        // Lengths and counts below 100 (most bulk headers, LPUSH's early lengths) are
        // written in one copy: through itoa and three copies they cost about 60
        // instructions per element of an LRANGE reply (docs/benchmarks.md, entry 34).
        if (0..10).contains(&n) {
            self.buf
                .extend_from_slice(&[prefix, b'0' + n as u8, b'\r', b'\n']);
            return;
        }
        if (10..100).contains(&n) {
            let (tens, ones) = (n as u8 / 10, n as u8 % 10);
            self.buf
                .extend_from_slice(&[prefix, b'0' + tens, b'0' + ones, b'\r', b'\n']);
            return;
        }
        self.buf.push(prefix);
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// `+<s>\r\n`; `s` must not contain CR or LF.
    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `-<msg>\r\n`; `msg` carries its own prefix (`ERR ...`, `WRONGTYPE ...`).
    /// Newlines are replaced by spaces so a reply can never break the framing.
    pub fn error(&mut self, msg: &str) {
        self.buf.push(b'-');
        for &c in msg.as_bytes() {
            self.buf
                .push(if c == b'\r' || c == b'\n' { b' ' } else { c });
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    pub fn bulk(&mut self, data: &[u8]) {
        self.header(b'$', data.len() as i64);
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn bulk_str(&mut self, s: &str) {
        self.bulk(s.as_bytes());
    }

    /// An integer rendered as a bulk string (e.g. ROLE's replica offsets).
    pub fn bulk_int(&mut self, n: i64) {
        let mut b = itoa::Buffer::new();
        self.bulk(b.format(n).as_bytes());
    }

    pub fn opt_bulk(&mut self, data: Option<&[u8]>) {
        match data {
            Some(d) => self.bulk(d),
            None => self.null(),
        }
    }

    /// The null bulk string (`$-1`), or `_` in RESP3.
    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    /// The null array (`*-1`), or `_` in RESP3.
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }

    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// A map of `n` pairs: `%n` in RESP3, a flat `*2n` array in RESP2.
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'%', n as i64);
        } else {
            self.header(b'*', 2 * n as i64);
        }
    }

    /// A set of `n` elements: `~n` in RESP3, an array in RESP2.
    pub fn set(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'~', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    /// An out-of-band push (`>n` in RESP3, an array in RESP2): Pub/Sub messages.
    pub fn push(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'>', n as i64);
        } else {
            self.header(b'*', n as i64);
        }
    }

    /// A double: `,<d>` in RESP3, a bulk string in RESP2 (formatted like Redis `%.17g`).
    pub fn double(&mut self, d: f64) {
        let s = format_double(d);
        if self.resp3 {
            self.buf.push(b',');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s.as_bytes());
        }
    }

    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.buf
                .extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }

    /// Verbatim text (`=` in RESP3, bulk in RESP2), used by INFO-like replies.
    pub fn verbatim(&mut self, text: &str) {
        if self.resp3 {
            self.header(b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Formats a double as Redis 7.0's `addReplyDouble` does: `%.17g` (so `0.1` reads
/// `0.10000000000000001`), `inf`/`-inf` for infinities.
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    format_g(d, 17)
}

/// printf's `%.<p>g`.
pub fn format_g(d: f64, p: usize) -> String {
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{:.*e}", p - 1, d);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let x: i32 = exp.parse().unwrap_or(0);
    if x < -4 || x >= p as i32 {
        let mant = trim_zeros(mant);
        let sign = if x < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", x.abs())
    } else {
        let decimals = (p as i32 - 1 - x).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, d)).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Formats a double for INCRBYFLOAT-style results, which Redis prints in plain
/// (never exponential) notation with trailing zeros removed; the shortest
/// round-tripping digits stand in for Redis's long-double arithmetic.
pub fn format_human(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d == d.trunc() && d.abs() < 1e17 {
        return format!("{}", d as i64);
    }
    let mut b = ryu::Buffer::new();
    let s = b.format(d).to_string();
    if !s.contains('e') {
        return s;
    }
    // Expand the exponent into plain digits.
    let digits = format!("{:.20}", d);
    trim_zeros(&digits).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_decimal_at_every_width() {
        for n in (-2..=1000).chain([i64::MAX, i64::MIN, 123_456_789]) {
            let mut r = Reply::new(false);
            r.header(b'$', n);
            assert_eq!(r.buf, format!("${n}\r\n").into_bytes(), "{n}");
        }
    }

    fn parse_all(input: &[u8]) -> Result<Vec<Request>, ProtocolError> {
        let mut p = RequestParser::new(512 * 1024 * 1024);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(r) = p.parse(&mut buf)? {
            out.push(r);
        }
        Ok(out)
    }

    fn cmd(parts: &[&str]) -> Request {
        Request::Command(
            parts
                .iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect(),
        )
    }

    #[test]
    fn given_back_vectors_carry_later_requests_and_their_stock_is_bounded() {
        let mut p = RequestParser::new(512 * 1024 * 1024);
        let mut v: Vec<Bytes> = Vec::with_capacity(8);
        v.push(Bytes::from_static(b"stale"));
        let block = v.as_ptr();
        p.give_back(v);
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"[..]);
        let Ok(Some(Request::Command(argv))) = p.parse(&mut buf) else {
            panic!("no command parsed");
        };
        // The same block, emptied of what it held before.
        assert_eq!((argv.as_ptr(), argv.capacity()), (block, 8));
        assert_eq!(Request::Command(argv), cmd(&["GET", "k"]));
        for _ in 0..RequestParser::SPARE_MAX + 5 {
            p.give_back(Vec::with_capacity(4));
        }
        assert_eq!(p.spare.len(), RequestParser::SPARE_MAX);
        assert!(!p.wants_spare());
    }

    #[test]
    fn parses_pipelined_multibulk_requests() {
        let r = parse_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap();
        assert_eq!(r, vec![cmd(&["PING"]), cmd(&["GET", "k"])]);
    }

    #[test]
    fn incomplete_input_is_not_an_error_and_resumes() {
        let mut p = RequestParser::new(1 << 29);
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$5\r\nhel"[..]);
        assert_eq!(p.parse(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"lo\r\n");
        assert_eq!(p.parse(&mut buf).unwrap(), Some(cmd(&["GET", "hello"])));
        assert!(buf.is_empty());
    }

    #[test]
    fn whole_and_incremental_parsing_agree_at_every_split_point() {
        let big = "x".repeat(SLICE_MAX + 10);
        let mut input = Vec::new();
        for parts in [
            vec!["SET", "key:1", "v"],
            vec!["SET", "k", big.as_str()],
            vec!["GET", ""],
            vec!["PING"],
        ] {
            input.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
            for a in parts {
                input.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
            }
        }
        let expected = parse_all(&input).unwrap();
        assert_eq!(expected.len(), 4);
        assert_eq!(expected[1], cmd(&["SET", "k", &big]));
        for cut in 0..=input.len() {
            let mut p = RequestParser::new(512 * 1024 * 1024);
            let mut buf = BytesMut::from(&input[..cut]);
            let mut got = Vec::new();
            while let Some(r) = p.parse(&mut buf).unwrap() {
                got.push(r);
            }
            buf.extend_from_slice(&input[cut..]);
            while let Some(r) = p.parse(&mut buf).unwrap() {
                got.push(r);
            }
            assert_eq!(got, expected, "split at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn small_arguments_are_slices_and_large_ones_copies() {
        let big = vec![b'y'; SLICE_MAX + 1];
        let mut input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n".to_vec();
        input.extend_from_slice(format!("${}\r\n", big.len()).as_bytes());
        input.extend_from_slice(&big);
        input.extend_from_slice(b"\r\n");
        let mut buf = BytesMut::with_capacity(input.len() + 16);
        buf.extend_from_slice(&input);
        let region = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.capacity();
        let mut p = RequestParser::new(512 * 1024 * 1024);
        let Some(Request::Command(argv)) = p.parse(&mut buf).unwrap() else {
            panic!("no command parsed");
        };
        assert!(region.contains(&(argv[1].as_ptr() as usize)));
        assert!(!region.contains(&(argv[2].as_ptr() as usize)));
        assert_eq!(&argv[2][..], &big[..]);
    }

    #[test]
    fn the_last_argument_is_a_slice_of_exactly_its_bytes() {
        // The last argument takes the request's own reference to the read buffer
        // (no extra reference count): still a slice of it, bounded to its bytes.
        let input = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
        let mut buf = BytesMut::with_capacity(input.len() + 16);
        buf.extend_from_slice(input);
        let region = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.capacity();
        let mut p = RequestParser::new(512 * 1024 * 1024);
        let mut got = Vec::new();
        while let Some(Request::Command(argv)) = p.parse(&mut buf).unwrap() {
            got.push(argv);
        }
        assert_eq!(
            got,
            vec![vec!["GET", "hello"], vec!["PING"], vec!["SET", "k", ""]]
        );
        for argv in &got[..2] {
            let last = argv.last().unwrap();
            assert!(region.contains(&(last.as_ptr() as usize)));
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn a_remembered_command_name_is_handed_out_for_the_same_bytes_only() {
        static NAME: &[u8] = b"LPUSH";
        let input = b"*3\r\n$5\r\nLPUSH\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$5\r\nLPUSH\r\n\
                      *2\r\n$5\r\nlpush\r\n$1\r\nk\r\n*2\r\n$4\r\nLPOP\r\n$1\r\nk\r\n";
        let mut buf = BytesMut::from(&input[..]);
        let mut p = RequestParser::new(512 * 1024 * 1024);
        p.remember_name(NAME);
        let mut got = Vec::new();
        while let Some(Request::Command(argv)) = p.parse(&mut buf).unwrap() {
            got.push(argv);
        }
        assert_eq!(
            got,
            vec![
                vec!["LPUSH", "k", "v"],
                vec!["LPUSH"],
                vec!["lpush", "k"],
                vec!["LPOP", "k"]
            ]
        );
        // The first two start with the remembered handle itself (its static bytes),
        // the others with slices of the request, whose last argument is still its own.
        assert_eq!(got[0][0].as_ptr(), NAME.as_ptr());
        assert_eq!(got[1][0].as_ptr(), NAME.as_ptr());
        assert_ne!(got[2][0].as_ptr(), NAME.as_ptr());
        assert_ne!(got[3][0].as_ptr(), NAME.as_ptr());
        assert_eq!(&got[0][2][..], b"v");
        assert!(buf.is_empty());
    }

    #[test]
    fn binary_safe_arguments() {
        let r = parse_all(b"*1\r\n$4\r\na\r\n\0\r\n").unwrap();
        assert_eq!(
            r,
            vec![Request::Command(vec![Bytes::from_static(b"a\r\n\0")])]
        );
    }

    #[test]
    fn inline_whitespace_is_c_isspace() {
        // As Redis 7.0.15: "\x0bPING" is PING; VT and FF are skipped between arguments
        // and may follow a closing quote, but inside a bare word only space, tab, CR,
        // LF and NUL end it ("ECHO\x0bb" is one unknown command).
        assert_eq!(split_args(b"\x0bPING").unwrap(), vec![b"PING".to_vec()]);
        assert_eq!(
            split_args(b"\x0bPING\x0cx").unwrap(),
            vec![b"PING\x0cx".to_vec()]
        );
        assert_eq!(
            split_args(b"ECHO \"a\"\x0bb").unwrap(),
            vec![b"ECHO".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn inline_commands_with_quotes() {
        let r = parse_all(b"set k \"a b\\x41\\n\" 'it\\'s'\r\nPING\n\n").unwrap();
        assert_eq!(
            r,
            vec![
                cmd(&["set", "k", "a bA\n", "it's"]),
                cmd(&["PING"]),
                Request::Empty
            ]
        );
    }

    #[test]
    fn length_lines_off_the_common_shape_are_read_with_redis_rules() {
        assert_eq!(quick_len(b"3\r\n$"), Some((3, 3)));
        assert_eq!(quick_len(b"0\r\n"), Some((0, 3)));
        assert_eq!(
            quick_len(b"123456789012345678\r\n"),
            Some((123456789012345678, 20))
        );
        // Left to the general path: a leading zero, a sign, no digits, too many
        // digits, a `\r` without its `\n`, an incomplete line.
        for line in [
            &b"03\r\n"[..],
            b"-1\r\n",
            b"\r\n",
            b"1234567890123456789\r\n",
            b"3\rx",
            b"3\r",
            b"12",
        ] {
            assert_eq!(quick_len(line), None, "{line:?}");
        }
        // What the general path makes of them, inside a request and as its header.
        assert_eq!(
            parse_all(b"*1\r\n$03\r\nabc\r\n").unwrap_err().to_string(),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            parse_all(b"*01\r\n$1\r\na\r\n").unwrap_err().to_string(),
            "Protocol error: invalid multibulk length"
        );
        // Redis does not look at the byte after the `\r`.
        assert_eq!(
            parse_all(b"*2\rx$4\rxPING\r\n$1\r\na\r\n").unwrap(),
            vec![cmd(&["PING", "a"])]
        );
        assert_eq!(
            parse_all(b"*0\r\n*-1\r\n*1\r\n$0\r\n\r\n").unwrap(),
            vec![Request::Empty, Request::Empty, cmd(&[""])]
        );
    }

    #[test]
    fn protocol_errors_carry_redis_messages() {
        assert_eq!(
            parse_all(b"*abc\r\n").unwrap_err().to_string(),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            parse_all(b"*2147483648\r\n").unwrap_err().to_string(),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            parse_all(b"*1\r\n+foo\r\n").unwrap_err().to_string(),
            "Protocol error: expected '$', got '+'"
        );
        assert_eq!(
            parse_all(b"*1\r\n$-5\r\n").unwrap_err().to_string(),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            parse_all(b"set k \"unterminated\n")
                .unwrap_err()
                .to_string(),
            "Protocol error: unbalanced quotes in request"
        );
        let big = vec![b'a'; PROTO_INLINE_MAX_SIZE + 10];
        assert_eq!(
            parse_all(&big).unwrap_err().to_string(),
            "Protocol error: too big inline request"
        );
    }

    #[test]
    fn million_argument_header_does_not_allocate_up_front() {
        let mut p = RequestParser::new(1 << 29);
        let mut buf = BytesMut::from(&b"*1048576\r\n"[..]);
        assert_eq!(p.parse(&mut buf).unwrap(), None);
        assert!(p.args.capacity() <= 1024);
    }

    #[test]
    fn lone_carriage_returns_end_a_header_at_once() {
        // `*` and 200,000 lone CRs: the header ends at the first CR, its digits are
        // empty, so the request is invalid without scanning (or recursing over) the rest.
        let mut flood = vec![b'*'];
        flood.extend(std::iter::repeat_n(b'\r', 200_000));
        assert_eq!(
            parse_all(&flood).unwrap_err().to_string(),
            "Protocol error: invalid multibulk length"
        );
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend(std::iter::repeat_n(b'\r', 200_000));
        assert_eq!(
            parse_all(&bulk).unwrap_err().to_string(),
            "Protocol error: invalid bulk length"
        );
        // No CR at all within the inline limit: the header is too long.
        let mut digits = b"*1\r\n$".to_vec();
        digits.extend(std::iter::repeat_n(b'1', PROTO_INLINE_MAX_SIZE + 1));
        assert_eq!(
            parse_all(&digits).unwrap_err().to_string(),
            "Protocol error: too big bulk count string"
        );
    }

    #[test]
    fn unauthenticated_limits_are_redis_s() {
        let mut p = RequestParser::new(512 << 20);
        p.auth_required = true;
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            p.parse(&mut buf).unwrap_err().to_string(),
            "Protocol error: unauthenticated multibulk length"
        );
        let mut buf = BytesMut::from(&b"*1\r\n$16385\r\n"[..]);
        assert_eq!(
            p.parse(&mut buf).unwrap_err().to_string(),
            "Protocol error: unauthenticated bulk length"
        );
        // (A protocol error closes the connection; the next requests use a new parser.)
        let mut p = RequestParser::new(512 << 20);
        p.auth_required = true;
        // At the limits, and once authenticated, the same requests are fine.
        let mut ok = b"*10\r\n".to_vec();
        for _ in 0..10 {
            ok.extend_from_slice(b"$1\r\nx\r\n");
        }
        let mut buf = BytesMut::from(&ok[..]);
        assert!(matches!(p.parse(&mut buf), Ok(Some(Request::Command(a))) if a.len() == 10));
        p.auth_required = false;
        let mut buf = BytesMut::from(&b"*1\r\n$16385\r\n"[..]);
        assert_eq!(p.parse(&mut buf).unwrap(), None);
    }

    #[test]
    fn a_declared_bulk_length_reserves_only_with_what_arrived() {
        let mut p = RequestParser::new(512 << 20);
        let mut buf = BytesMut::from(&b"*1\r\n$536870000\r\n"[..]);
        assert_eq!(p.parse(&mut buf).unwrap(), None);
        assert!(
            buf.capacity() <= 2 * BULK_RESERVE_STEP,
            "{}",
            buf.capacity()
        );
        // Reads fill only the room the parser reserved (as `read_buf` does): capacity
        // stays within about twice what really arrived.
        while buf.len() < 8 << 20 {
            let room = buf.capacity() - buf.len();
            assert!(room > 0, "the parser leaves room for the next read");
            buf.extend_from_slice(&vec![b'v'; room]);
            assert_eq!(p.parse(&mut buf).unwrap(), None);
            assert!(
                buf.capacity() <= 2 * buf.len() + BULK_RESERVE_STEP,
                "{} for {}",
                buf.capacity(),
                buf.len()
            );
        }
    }

    #[test]
    fn partly_received_arguments_are_counted() {
        let mut p = RequestParser::new(512 << 20);
        let mut buf = BytesMut::from(&b"*3\r\n$5\r\nhello\r\n$5\r\nworld\r\n$3\r\n"[..]);
        assert_eq!(p.parse(&mut buf).unwrap(), None);
        assert_eq!(p.held_bytes(), 10 + 2 * ARG_OVERHEAD);
        buf.extend_from_slice(b"abc\r\n");
        assert!(p.parse(&mut buf).unwrap().is_some());
        assert_eq!(p.held_bytes(), 0);
    }

    #[test]
    fn oversized_bulk_is_rejected() {
        let mut p = RequestParser::new(100);
        let mut buf = BytesMut::from(&b"*1\r\n$101\r\n"[..]);
        assert_eq!(
            p.parse(&mut buf).unwrap_err().to_string(),
            "Protocol error: invalid bulk length"
        );
    }

    #[test]
    fn parse_i64_is_strict() {
        assert_eq!(parse_i64(b"123"), Some(123));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b""[..], b"01", b"-0", b"+1", b" 1", b"1 ", b"1.0", b"-"] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn replies_in_resp2_and_resp3() {
        let mut r = Reply::new(false);
        r.null();
        r.map(1);
        r.double(1.5);
        r.boolean(true);
        assert_eq!(r.buf, b"$-1\r\n*2\r\n$3\r\n1.5\r\n:1\r\n");
        let mut r = Reply::new(true);
        r.null();
        r.map(1);
        r.double(1.5);
        r.boolean(true);
        assert_eq!(r.buf, b"_\r\n%1\r\n,1.5\r\n#t\r\n");
    }

    #[test]
    fn doubles_format_like_redis() {
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(-2.5), "-2.5");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(format_double(123456.5), "123456.5");
        assert_eq!(format_human(10.6), "10.6");
        assert_eq!(format_human(3.0), "3");
    }
}
