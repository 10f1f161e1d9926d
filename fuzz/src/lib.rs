//! Shared pieces of the fuzz targets: the chunk schedule derived from the input and a
//! driver that runs `RequestParser` over a byte stream the way `net.rs` does (append a
//! read, then parse until "incomplete" or an error).

use bytes::{Bytes, BytesMut};
use std::path::PathBuf;
use tandem_server::resp::{ProtocolError, Request, RequestParser};

/// What one run of the parser over a stream produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    pub requests: Vec<Request>,
    /// The protocol error that stopped parsing, if any.
    pub error: Option<ProtocolError>,
    /// Whether the parser ended between requests.
    pub idle: bool,
}

/// A small deterministic generator (xorshift64*) for chunk sizes, seeded from the input
/// so that libFuzzer can steer the split.
pub struct Chunks {
    state: u64,
}

impl Chunks {
    pub fn new(seed: u8, len: usize) -> Self {
        Chunks {
            state: (u64::from(seed) << 32 | len as u64) ^ 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// A schedule of 1-byte chunks (xorshift's fixed point 0 always maps to size 1).
    pub fn one_byte() -> Self {
        Chunks { state: 0 }
    }

    /// Next chunk size: mostly tiny (1..=8 bytes) to split every header and CRLF, some
    /// medium, occasionally large.
    pub fn next_size(&mut self) -> usize {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
        match r % 8 {
            0..=4 => 1 + (r >> 3) as usize % 8,
            5 | 6 => 1 + (r >> 3) as usize % 64,
            _ => 1 + (r >> 3) as usize % 4096,
        }
    }
}

/// Feeds `data` to a fresh parser in the given chunk sizes (None = all at once),
/// parsing after every chunk. Checks the per-call invariants on the way.
pub fn run_parser(data: &[u8], limits: Limits, mut chunks: Option<Chunks>) -> Parsed {
    let mut parser = RequestParser::new(limits.max_bulk_len);
    parser.auth_required = limits.auth_required;
    let mut buf = BytesMut::new();
    let mut out = Parsed {
        requests: Vec::new(),
        error: None,
        idle: true,
    };
    let mut fed = 0;
    while fed < data.len() {
        let step = match chunks.as_mut() {
            Some(c) => c.next_size().min(data.len() - fed),
            None => data.len(),
        };
        buf.extend_from_slice(&data[fed..fed + step]);
        fed += step;
        loop {
            let before = buf.len();
            let r = parser.parse(&mut buf);
            assert!(buf.len() <= before, "parse grew the buffer's content");
            match r {
                Ok(Some(req)) => {
                    if let Request::Command(args) = &req {
                        assert!(!args.is_empty(), "a Command request with no arguments");
                        let total: usize = args.iter().map(Bytes::len).sum();
                        assert!(total <= fed, "arguments longer than the input fed");
                    }
                    out.requests.push(req);
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    out.idle = parser.is_idle();
                    return out;
                }
            }
        }
    }
    out.idle = parser.is_idle();
    out
}

/// The parser settings a fuzz input selects.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bulk_len: i64,
    pub auth_required: bool,
}

/// Splits the fuzz input into (chunk seed, limits, stream): the first byte picks the
/// chunk schedule; its top bit a tiny `proto-max-bulk-len` and the next bit the
/// unauthenticated limits, so both are exercised.
pub fn split_input(data: &[u8]) -> Option<(u8, Limits, &[u8])> {
    let (&first, rest) = data.split_first()?;
    let limits = Limits {
        max_bulk_len: if first & 0x80 != 0 {
            16
        } else {
            512 * 1024 * 1024
        },
        auth_required: first & 0x40 != 0,
    };
    Some((first, limits, rest))
}

/// The whole-vs-chunked check shared by `resp` and `inline`: the same bytes give the
/// same requests, the same error and the same final state however they are split
/// (all at once, in the input-derived schedule, and one byte at a time when short).
pub fn check_chunking(data: &[u8]) -> Option<Parsed> {
    let (seed, limits, stream) = split_input(data)?;
    let whole = run_parser(stream, limits, None);
    let chunked = run_parser(stream, limits, Some(Chunks::new(seed, stream.len())));
    assert_eq!(whole, chunked, "whole vs chunked parse differ");
    if stream.len() <= 512 {
        let bytewise = run_parser(stream, limits, Some(Chunks::one_byte()));
        assert_eq!(whole, bytewise, "whole vs byte-at-a-time parse differ");
    }
    Some(whole)
}

/// A private scratch directory for targets that need files: `$TANDEM_FUZZ_SCRATCH`
/// (run.sh makes one per target and removes it afterwards), else a per-process
/// directory on tmpfs (/dev/shm) or in the temp dir.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = match std::env::var_os("TANDEM_FUZZ_SCRATCH") {
        Some(d) => PathBuf::from(d),
        None => {
            let shm = PathBuf::from("/dev/shm");
            if shm.is_dir() {
                shm
            } else {
                std::env::temp_dir()
            }
        }
    };
    let dir = base.join(format!("tandem-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
