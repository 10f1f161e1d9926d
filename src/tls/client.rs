//! The operator's TLS client to the pods (probes, heartbeat, role changes) when `spec.tls` is
//! set: trusts the Secret's `ca.crt`, checks the chain and dates but not the name (pods are
//! dialled by IP, which certificates rarely list; the same rule as the server's replication
//! link), and presents the Secret's own certificate, so `authClients: yes` works too.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::verify::ChainOnly;
use super::Material;

/// A client configuration built from one version of the Secret; compared by that version.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    fingerprint: u64,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsClient({:016x})", self.fingerprint)
    }
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for TlsClient {}

impl TlsClient {
    pub fn new(m: &Material) -> Result<Self, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for c in &m.ca {
            roots.add(c.clone())?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly::new(webpki)))
            .with_client_auth_cert(m.chain.clone(), m.key.clone_key())?;
        Ok(TlsClient {
            config: Arc::new(config),
            fingerprint: m.fingerprint,
        })
    }

    /// The TLS handshake over a connected socket.
    pub async fn handshake(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        // Any name: the verifier does not compare it (see the module docs).
        let name = ServerName::try_from("tandem-server")
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }
}
