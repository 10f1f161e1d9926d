//! The connection socket, plain TCP, TLS over TCP or a Unix domain socket
//! (`unixsocket`): one type the connection loop, the master's replica writer and
//! the replica's link all use.
//!
//! An enum, not a generic: the plain arm is a direct call into `TcpStream` (one
//! predictable branch per poll), and code that needs the TCP socket (keepalive,
//! addresses) reaches it in both arms.
//!
//! Writes over TLS are write-through: `poll_write` reports bytes written only once
//! their records left rustls's buffer for the socket. Callers here use `write_all`
//! without `flush` (a no-op for TCP); without write-through the tail of a reply
//! could sit in rustls's buffer until the next write.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::unix;
use tokio::net::{TcpStream, UnixStream};

/// A TLS session over TCP, either side, with the write-through state.
pub struct TlsIo {
    inner: tokio_rustls::TlsStream<TcpStream>,
    /// Plaintext bytes rustls accepted from the caller's buffer whose records are
    /// not yet all on the socket: reported once they are.
    owed: usize,
}

impl TlsIo {
    pub fn new(inner: tokio_rustls::TlsStream<TcpStream>) -> Self {
        TlsIo { inner, owed: 0 }
    }

    fn tcp(&self) -> &TcpStream {
        self.inner.get_ref().0
    }
}

/// A client, replica or master connection.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsIo>),
    Unix(UnixStream),
}

/// Not a TCP connection (a Unix socket client has no IP address).
fn not_tcp() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "not a TCP connection")
}

impl Stream {
    /// The TCP socket under the TCP arms (`None` for a Unix socket).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(t) => Some(t.tcp()),
            Stream::Unix(_) => None,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    pub fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp().ok_or_else(not_tcp)?.peer_addr()
    }

    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.tcp().ok_or_else(not_tcp)?.local_addr()
    }

    /// Separate read and write halves for two tasks (a replica's reader and
    /// writer). TCP splits without a lock; a TLS session is one state machine, so
    /// its halves share it through tokio's split.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Plain(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Plain(r), WriteHalf::Plain(w))
            }
            Stream::Tls(t) => {
                let (r, w) = tokio::io::split(*t);
                (ReadHalf::Tls(r), WriteHalf::Tls(w))
            }
            Stream::Unix(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Unix(r), WriteHalf::Unix(w))
            }
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Self {
        Stream::Plain(s)
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.owed == 0 {
            this.owed = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
            if this.owed == 0 {
                return Poll::Ready(Ok(0));
            }
        }
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        // A caller that retries with a shorter buffer (write_all never does) is
        // not told more than it offered.
        let n = std::mem::take(&mut this.owed).min(buf.len());
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Forwards the three `AsyncWrite` calls and `AsyncRead` to the active arm.
macro_rules! delegate_io {
    ($ty:ident, $plain_r:ident, $tls_r:ident, $unix_r:ident) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::$plain_r(s) => Pin::new(s).poll_read(cx, buf),
                    $ty::$tls_r(t) => Pin::new(t).poll_read(cx, buf),
                    $ty::$unix_r(u) => Pin::new(u).poll_read(cx, buf),
                }
            }
        }
    };
    (write $ty:ident, $plain:ident, $tls:ident, $unix:ident) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $ty::$plain(s) => Pin::new(s).poll_write(cx, buf),
                    $ty::$tls(t) => Pin::new(t).poll_write(cx, buf),
                    $ty::$unix(u) => Pin::new(u).poll_write(cx, buf),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::$plain(s) => Pin::new(s).poll_flush(cx),
                    $ty::$tls(t) => Pin::new(t).poll_flush(cx),
                    $ty::$unix(u) => Pin::new(u).poll_flush(cx),
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::$plain(s) => Pin::new(s).poll_shutdown(cx),
                    $ty::$tls(t) => Pin::new(t).poll_shutdown(cx),
                    $ty::$unix(u) => Pin::new(u).poll_shutdown(cx),
                }
            }
        }
    };
}

delegate_io!(Stream, Plain, Tls, Unix);
delegate_io!(write Stream, Plain, Tls, Unix);

/// The reading half of a split [`Stream`].
pub enum ReadHalf {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsIo>),
    Unix(unix::OwnedReadHalf),
}

/// The writing half of a split [`Stream`].
pub enum WriteHalf {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsIo>),
    Unix(unix::OwnedWriteHalf),
}

delegate_io!(ReadHalf, Plain, Tls, Unix);
delegate_io!(write WriteHalf, Plain, Tls, Unix);
