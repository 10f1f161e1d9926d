//! TLS, beside `net` in the networking layer: the `tls-*` directives built into
//! rustls configurations ([`settings`]), the TLS listener's handshake, the
//! replication link's connector, and reloads (CONFIG SET, and the certificate
//! files watched by [`watch`]).
//!
//! The built configurations live in [`Tls`], part of the `Server`: a handshake
//! takes the current one, a reload swaps it, and established sessions keep the
//! configuration they started with.

pub mod settings;
pub mod stream;
pub mod watch;

mod session;
mod validity;
mod verify;

pub use settings::{Material, Settings, TlsError};
pub use stream::{ReadHalf, Stream, WriteHalf};

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client has this long to complete the TLS handshake (before it is served,
/// so before AUTH and before `timeout` applies).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed handshake is logged at most once per peer address in this period.
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(60);

/// Peers remembered for the failure log's rate limit; past this the oldest go.
const FAILURE_LOG_PEERS: usize = 4096;

/// The live TLS state of a server.
#[derive(Debug, Default)]
pub struct Tls {
    /// The configurations in use, replaced whole by a reload. Read by every
    /// TLS accept and master connect; written by CONFIG SET and the watcher.
    current: RwLock<Option<Arc<Material>>>,
    /// What `current` was built from: the settings and the files' stamp. The
    /// watcher compares it with the files once a second.
    built_from: Mutex<Option<(Settings, watch::Stamp)>>,
    /// When each peer's last failed handshake was logged.
    failures: Mutex<HashMap<IpAddr, Instant>>,
    /// Handshakes in progress: not clients yet, so `maxclients` does not count
    /// them; [`accept`] caps them at the same number.
    handshaking: std::sync::atomic::AtomicUsize,
}

/// Counts a handshake in progress for as long as it lives.
struct Handshaking<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Handshaking<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A configuration built and checked, ready to be installed.
#[derive(Debug)]
pub struct Prepared {
    settings: Settings,
    stamp: watch::Stamp,
    material: Material,
}

/// Builds the configuration `settings` asks for, with the stamp of the files it
/// read (taken first: a file changing meanwhile is seen again by the watcher).
pub fn prepare(settings: &Settings) -> Result<Prepared, TlsError> {
    let stamp = watch::stamp(settings);
    let material = settings::build(settings)?;
    Ok(Prepared {
        settings: settings.clone(),
        stamp,
        material,
    })
}

/// CONFIG SET: the TLS configuration to install when the `tls-*` values change,
/// checked before anything is committed. `Ok(None)`: nothing to rebuild.
pub fn prepare_for_set(
    old: &crate::config::Config,
    new: &crate::config::Config,
) -> Result<Option<Prepared>, TlsError> {
    let (before, after) = (Settings::from_config(old), Settings::from_config(new));
    if before == after || !after.in_use() {
        return Ok(None);
    }
    prepare(&after).map(Some)
}

impl Tls {
    /// Installs a built configuration for new connections.
    pub fn install(&self, p: Prepared) {
        *self.current.write() = Some(Arc::new(p.material));
        *self.built_from.lock() = Some((p.settings, p.stamp));
    }

    /// Builds and installs (startup).
    pub fn configure(&self, settings: &Settings) -> Result<(), TlsError> {
        let p = prepare(settings)?;
        self.install(p);
        Ok(())
    }

    fn material(&self) -> Option<Arc<Material>> {
        self.current.read().clone()
    }

    /// When the served certificate expires (Unix seconds).
    pub fn cert_not_after(&self) -> Option<i64> {
        self.material().and_then(|m| m.not_after)
    }

    /// Logs a failed handshake unless this peer's last one was logged recently.
    fn log_failure(&self, peer: Option<SocketAddr>, local: Option<SocketAddr>, reason: &str) {
        let now = Instant::now();
        if let Some(ip) = peer.map(|p| p.ip()) {
            let mut seen = self.failures.lock();
            if seen
                .get(&ip)
                .is_some_and(|at| now.duration_since(*at) < FAILURE_LOG_PERIOD)
            {
                return;
            }
            if seen.len() >= FAILURE_LOG_PEERS {
                seen.retain(|_, at| now.duration_since(*at) < FAILURE_LOG_PERIOD);
                if seen.len() >= FAILURE_LOG_PEERS {
                    // A flood from many addresses: forget them all rather than grow.
                    seen.clear();
                }
            }
            seen.insert(ip, now);
        }
        let show = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        crate::warning!(
            "Error accepting a client connection: {reason} (addr={} laddr={})",
            show(peer),
            show(local)
        );
    }
}

/// The TLS handshake of a connection accepted on the TLS port. `None` when it
/// failed, timed out, TLS is not configured, or `limit` handshakes are already
/// in progress; a failed one's socket is closed cleanly (a FIN after the peer's
/// bytes are read, not a reset).
pub async fn accept(tls: &Tls, tcp: TcpStream, limit: usize) -> Option<Stream> {
    let peer = tcp.peer_addr().ok();
    let local = tcp.local_addr().ok();
    let config = tls.material().and_then(|m| m.server.clone())?;
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    if tls.handshaking.fetch_add(1, relaxed) >= limit {
        tls.handshaking.fetch_sub(1, relaxed);
        tls.log_failure(peer, local, "too many TLS handshakes in progress");
        return None;
    }
    let _counted = Handshaking(&tls.handshaking);
    let accept = tokio_rustls::TlsAcceptor::from(config)
        .accept(tcp)
        .into_fallible();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
        Ok(Ok(s)) => Some(Stream::Tls(Box::new(stream::TlsIo::new(
            tokio_rustls::TlsStream::Server(s),
        )))),
        Ok(Err((e, tcp))) => {
            tls.log_failure(peer, local, &e.to_string());
            close_cleanly(tcp).await;
            None
        }
        Err(_) => {
            tls.log_failure(peer, local, "TLS handshake timed out");
            None
        }
    }
}

/// Ends a connection without a reset: our side is shut down, then what the peer
/// still sends is read (a bounded amount, for a bounded time) until its EOF.
async fn close_cleanly(mut tcp: TcpStream) {
    let _ = tcp.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Why the replication link could not start TLS.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("TLS is not configured for replication (tls-replication needs the CA and, for client authentication, a certificate)")]
    NotConfigured,
    #[error("TLS handshake with the master timed out")]
    Timeout,
    #[error("TLS handshake with the master failed: {0}")]
    Handshake(std::io::Error),
}

/// The replica's TLS handshake with its master at `host`.
pub async fn connect(tls: &Tls, tcp: TcpStream, host: &str) -> Result<Stream, ConnectError> {
    use rustls::pki_types::ServerName;
    let config = tls
        .material()
        .and_then(|m| m.client.clone())
        .ok_or(ConnectError::NotConfigured)?;
    // The name is sent as SNI when it is one; the certificate is checked for its
    // chain only (see `verify`), so an address the certificate lacks is fine.
    let name = ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::from(IpAddr::from([127, 0, 0, 1])));
    let connect = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, connect).await {
        Ok(Ok(s)) => Ok(Stream::Tls(Box::new(stream::TlsIo::new(
            tokio_rustls::TlsStream::Client(s),
        )))),
        Ok(Err(e)) => Err(ConnectError::Handshake(e)),
        Err(_) => Err(ConnectError::Timeout),
    }
}

/// Whether the replication link to the master uses TLS (`tls-replication`).
pub fn for_replication(config: &crate::config::Config) -> bool {
    config.get("tls-replication") == Some("yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_handshakes_are_logged_once_per_peer_per_period() {
        let tls = Tls::default();
        let a: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let a2: SocketAddr = "10.0.0.1:2000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1000".parse().unwrap();
        tls.log_failure(Some(a), None, "x");
        tls.log_failure(Some(a2), None, "x");
        tls.log_failure(Some(b), None, "x");
        assert_eq!(tls.failures.lock().len(), 2);
        for i in 0..(FAILURE_LOG_PEERS as u32 + 10) {
            let ip = std::net::Ipv4Addr::from(0x0b00_0000 + i);
            tls.log_failure(Some(SocketAddr::from((ip, 1))), None, "x");
        }
        assert!(tls.failures.lock().len() <= FAILURE_LOG_PEERS);
    }
}
