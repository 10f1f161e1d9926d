//! The replica's connection to its master during HANDSHAKE and TRANSFER: a socket
//! with a read buffer (replies, RDB payload and stream can arrive glued together),
//! reply lines with a deadline, and the commands the replica sends.

use crate::tls::Stream;
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest reply line accepted from the master.
const MAX_LINE: usize = 64 * 1024;

/// The connection to the master and what was read but not consumed yet.
pub(super) struct LinkIo {
    pub stream: Stream,
    pub buf: BytesMut,
}

/// Why a read from the master failed. The texts are those Redis logs.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadErr {
    #[error("Resource temporarily unavailable")]
    Timeout,
    #[error("connection lost")]
    Closed,
    #[error("line too long")]
    LineTooLong,
    #[error("{0}")]
    Io(std::io::Error),
}

impl LinkIo {
    pub fn new(stream: Stream) -> Self {
        LinkIo {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// Reads more into the buffer within `t`; the number of bytes read.
    pub async fn fill(&mut self, t: Duration) -> Result<usize, ReadErr> {
        // read_buf only grows a full buffer by a few bytes: keep room for big reads.
        if self.buf.capacity() - self.buf.len() < 64 * 1024 {
            self.buf.reserve(256 * 1024);
        }
        match tokio::time::timeout(t, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Err(ReadErr::Timeout),
            Ok(Ok(0)) => Err(ReadErr::Closed),
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(ReadErr::Io(e)),
        }
    }

    /// One reply line without its CR LF.
    pub async fn read_line(&mut self, t: Duration) -> Result<String, ReadErr> {
        loop {
            if let Some(line) = take_line(&mut self.buf) {
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(ReadErr::LineTooLong);
            }
            self.fill(t).await?;
        }
    }

    /// Sends one command.
    pub async fn send(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        let argv: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        let mut out = Vec::new();
        crate::propagate::encode_command(&argv, &mut out);
        self.stream.write_all(&out).await
    }
}

/// Splits the first complete line off `buf` (without CR LF; a lone LF ends a
/// line too).
fn take_line(buf: &mut BytesMut) -> Option<String> {
    let pos = buf.iter().position(|&c| c == b'\n')?;
    let line = buf.split_to(pos + 1);
    let s = line.strip_suffix(b"\n").unwrap_or(&line);
    let s = s.strip_suffix(b"\r").unwrap_or(s);
    Some(String::from_utf8_lossy(s).into_owned())
}

/// `REPLCONF ACK <off>`.
pub(super) fn ack_bytes(off: i64) -> Vec<u8> {
    let argv = [
        Bytes::from_static(b"REPLCONF"),
        Bytes::from_static(b"ACK"),
        Bytes::from(off.to_string()),
    ];
    let mut out = Vec::new();
    crate::propagate::encode_command(&argv, &mut out);
    out
}

/// Text of an I/O error the way strerror prints it (one definition: config's).
pub(super) use crate::config::strerror as io_text;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_at_lf_with_or_without_cr() {
        let mut b = BytesMut::from(&b"+PONG\r\n\n-ERR x\nrest"[..]);
        assert_eq!(take_line(&mut b).as_deref(), Some("+PONG"));
        assert_eq!(take_line(&mut b).as_deref(), Some(""));
        assert_eq!(take_line(&mut b).as_deref(), Some("-ERR x"));
        assert_eq!(take_line(&mut b), None);
        assert_eq!(&b[..], b"rest");
    }

    #[test]
    fn io_text_drops_the_os_error_suffix() {
        let e = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(io_text(&e), "Connection refused");
    }

    #[test]
    fn ack_is_a_replconf_command() {
        assert_eq!(
            ack_bytes(42),
            b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$2\r\n42\r\n".to_vec()
        );
    }
}
