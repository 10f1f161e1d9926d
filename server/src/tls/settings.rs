//! The `tls-*` directives as plain values, and their translation into rustls
//! server and client configurations (ring provider). Pure apart from reading the
//! certificate, key and CA files; every refusal is a [`TlsError`] naming the
//! directive and the file.

use super::validity::{self, Validity};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{CipherSuite, ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;

/// `tls-auth-clients`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthClients {
    No,
    Yes,
    Optional,
}

/// Everything the `tls-*` directives say, read from the configuration at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub port: u16,
    pub replication: bool,
    pub cert_file: String,
    pub key_file: String,
    pub key_file_pass: String,
    pub client_cert_file: String,
    pub client_key_file: String,
    pub client_key_file_pass: String,
    pub ca_cert_file: String,
    pub ca_cert_dir: String,
    pub auth_clients: AuthClients,
    pub protocols: String,
    pub ciphersuites: String,
    pub ciphers: String,
    pub prefer_server_ciphers: bool,
    pub session_caching: bool,
    pub session_cache_size: usize,
    pub session_cache_timeout: u64,
}

/// Why a TLS configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0} is not set: TLS needs a certificate and its private key")]
    Missing(&'static str),
    #[error("{0} is set, but encrypted private keys are not supported by Tandem: store the key unencrypted (for example `openssl pkey -in encrypted.pem -out key.pem`) and leave {0} empty")]
    KeyPassword(&'static str),
    #[error("failed to read {directive} '{path}': {source}")]
    Read {
        directive: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "no certificate found in {directive} '{path}' (expected PEM 'BEGIN CERTIFICATE' blocks)"
    )]
    NoCert {
        directive: &'static str,
        path: String,
    },
    #[error("{directive} '{path}' holds an encrypted private key: encrypted keys are not supported by Tandem")]
    EncryptedKey {
        directive: &'static str,
        path: String,
    },
    #[error("no usable private key in {directive} '{path}': {reason}")]
    BadKey {
        directive: &'static str,
        path: String,
        reason: String,
    },
    #[error("the private key in '{key}' does not match the certificate in '{cert}'")]
    KeyMismatch { cert: String, key: String },
    #[error("the certificate in {directive} '{path}' {problem}")]
    Validity {
        directive: &'static str,
        path: String,
        problem: String,
    },
    #[error("either tls-ca-cert-file or tls-ca-cert-dir must be set when tls-replication is yes or tls-auth-clients is not no")]
    NoCa,
    #[error("tls-protocols: unsupported protocol '{0}' (Tandem supports TLSv1.2 and TLSv1.3)")]
    Protocol(String),
    #[error("{directive}: unsupported cipher '{name}' (supported: {supported})")]
    Cipher {
        directive: &'static str,
        name: String,
        supported: String,
    },
    #[error("tls-protocols, tls-ciphers and tls-ciphersuites leave no cipher suite to use")]
    NoCiphers,
    #[error("CA certificates: {0}")]
    Verifier(String),
    #[error("TLS configuration rejected by rustls: {0}")]
    Rustls(#[from] rustls::Error),
}

impl Settings {
    pub fn from_config(c: &crate::config::Config) -> Settings {
        let s = |n: &str| c.get(n).unwrap_or_default().to_string();
        let n = |n: &str| c.get(n).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Settings {
            port: n("tls-port") as u16,
            replication: c.get("tls-replication") == Some("yes"),
            cert_file: s("tls-cert-file"),
            key_file: s("tls-key-file"),
            key_file_pass: s("tls-key-file-pass"),
            client_cert_file: s("tls-client-cert-file"),
            client_key_file: s("tls-client-key-file"),
            client_key_file_pass: s("tls-client-key-file-pass"),
            ca_cert_file: s("tls-ca-cert-file"),
            ca_cert_dir: s("tls-ca-cert-dir"),
            auth_clients: match c.get("tls-auth-clients") {
                Some("no") => AuthClients::No,
                Some("optional") => AuthClients::Optional,
                _ => AuthClients::Yes,
            },
            protocols: s("tls-protocols"),
            ciphersuites: s("tls-ciphersuites"),
            ciphers: s("tls-ciphers"),
            prefer_server_ciphers: c.get("tls-prefer-server-ciphers") == Some("yes"),
            session_caching: c.get("tls-session-caching") != Some("no"),
            session_cache_size: n("tls-session-cache-size") as usize,
            session_cache_timeout: n("tls-session-cache-timeout"),
        }
    }

    /// Whether anything needs TLS: a TLS listener or a TLS link to the master.
    pub fn in_use(&self) -> bool {
        self.port != 0 || self.replication
    }

    /// The files whose change reloads the configuration (the watcher's list).
    pub fn files(&self) -> Vec<String> {
        [
            &self.cert_file,
            &self.key_file,
            &self.client_cert_file,
            &self.client_key_file,
            &self.ca_cert_file,
            &self.ca_cert_dir,
        ]
        .into_iter()
        .filter(|f| !f.is_empty())
        .cloned()
        .collect()
    }

    /// The certificate and key Tandem presents as a client (replication link):
    /// the client pair when set, else the server's, as Redis does.
    fn client_pair(&self) -> (&str, &str, &'static str, &'static str) {
        if self.client_cert_file.is_empty() {
            (
                &self.cert_file,
                &self.key_file,
                "tls-cert-file",
                "tls-key-file",
            )
        } else {
            (
                &self.client_cert_file,
                &self.client_key_file,
                "tls-client-cert-file",
                "tls-client-key-file",
            )
        }
    }
}

/// The built configurations: the listener's (when `tls-port` is set) and the
/// replication client's (when `tls-replication` is yes).
#[derive(Debug, Clone)]
pub struct Material {
    pub server: Option<Arc<ServerConfig>>,
    pub client: Option<Arc<ClientConfig>>,
    /// When the served certificate expires (Unix seconds), for INFO and logs.
    pub not_after: Option<i64>,
}

/// Builds the configurations `s` asks for, checking every file.
pub fn build(s: &Settings) -> Result<Material, TlsError> {
    if !s.key_file_pass.is_empty() {
        return Err(TlsError::KeyPassword("tls-key-file-pass"));
    }
    if !s.client_key_file_pass.is_empty() {
        return Err(TlsError::KeyPassword("tls-client-key-file-pass"));
    }
    let provider = Arc::new(provider(s)?);
    let versions = protocols(&s.protocols)?;
    let needs_ca = s.replication || (s.port != 0 && s.auth_clients != AuthClients::No);
    let roots = if needs_ca {
        Some(Arc::new(roots(s)?))
    } else {
        None
    };
    let mut m = Material {
        server: None,
        client: None,
        not_after: None,
    };
    if s.port != 0 {
        let (cfg, not_after) = server_config(s, &provider, &versions, roots.clone())?;
        m.server = Some(Arc::new(cfg));
        m.not_after = Some(not_after);
    }
    if s.replication {
        let roots = roots.ok_or(TlsError::NoCa)?;
        m.client = Some(Arc::new(client_config(s, &provider, &versions, roots)?));
    }
    Ok(m)
}

type Versions = Vec<&'static rustls::SupportedProtocolVersion>;

fn server_config(
    s: &Settings,
    provider: &Arc<CryptoProvider>,
    versions: &Versions,
    roots: Option<Arc<RootCertStore>>,
) -> Result<(ServerConfig, i64), TlsError> {
    use rustls::server::WebPkiClientVerifier;
    let (chain, key, not_after) = load_pair(
        &s.cert_file,
        &s.key_file,
        ("tls-cert-file", "tls-key-file"),
        provider,
    )?;
    let verifier = match (s.auth_clients, roots) {
        (AuthClients::No, _) | (_, None) => WebPkiClientVerifier::no_client_auth(),
        (auth, Some(roots)) => {
            let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let b = if auth == AuthClients::Optional {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build().map_err(|e| TlsError::Verifier(e.to_string()))?
        }
    };
    let mut cfg = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    cfg.ignore_client_order = s.prefer_server_ciphers;
    cfg.session_storage = if s.session_caching && s.session_cache_size > 0 {
        Arc::new(super::session::SessionCache::new(
            s.session_cache_size,
            std::time::Duration::from_secs(s.session_cache_timeout),
        ))
    } else {
        Arc::new(rustls::server::NoServerSessionStorage {})
    };
    Ok((cfg, not_after))
}

fn client_config(
    s: &Settings,
    provider: &Arc<CryptoProvider>,
    versions: &Versions,
    roots: Arc<RootCertStore>,
) -> Result<ClientConfig, TlsError> {
    let inner =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(super::verify::ChainOnly::new(inner)));
    let (cert, key, cert_d, key_d) = s.client_pair();
    if cert.is_empty() {
        return Ok(builder.with_no_client_auth());
    }
    let (chain, key, _) = load_pair(cert, key, (cert_d, key_d), provider)?;
    Ok(builder.with_client_auth_cert(chain, key)?)
}

type Pair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, i64);

/// A certificate chain and its key, checked: present, unencrypted, matching,
/// and the leaf within its validity period. Also returns the leaf's expiry.
fn load_pair(
    cert: &str,
    key: &str,
    (cert_d, key_d): (&'static str, &'static str),
    provider: &CryptoProvider,
) -> Result<Pair, TlsError> {
    if cert.is_empty() {
        return Err(TlsError::Missing(cert_d));
    }
    if key.is_empty() {
        return Err(TlsError::Missing(key_d));
    }
    let chain = load_certs(cert, cert_d)?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCert {
            directive: cert_d,
            path: cert.into(),
        });
    };
    let not_after = check_validity(leaf, cert_d, cert)?;
    let key_der = load_key(key, key_d)?;
    let signing = provider
        .key_provider
        .load_private_key(key_der.clone_key())
        .map_err(|e| TlsError::BadKey {
            directive: key_d,
            path: key.into(),
            reason: e.to_string(),
        })?;
    let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing);
    if let Err(rustls::Error::InconsistentKeys(_)) = certified.keys_match() {
        return Err(TlsError::KeyMismatch {
            cert: cert.into(),
            key: key.into(),
        });
    }
    Ok((chain, key_der, not_after))
}

fn check_validity(
    leaf: &CertificateDer<'_>,
    directive: &'static str,
    path: &str,
) -> Result<i64, TlsError> {
    let bad = |problem: String| TlsError::Validity {
        directive,
        path: path.into(),
        problem,
    };
    let v: Validity = validity::parse(leaf).ok_or_else(|| bad("cannot be parsed".into()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if now > v.not_after {
        return Err(bad(format!(
            "expired at {} UTC",
            validity::format_utc(v.not_after)
        )));
    }
    if now < v.not_before {
        return Err(bad(format!(
            "is not valid before {} UTC",
            validity::format_utc(v.not_before)
        )));
    }
    Ok(v.not_after)
}

fn read_file(path: &str, directive: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        directive,
        path: path.into(),
        source,
    })
}

fn load_certs(
    path: &str,
    directive: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path, directive)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCert {
            directive,
            path: path.into(),
        });
    }
    Ok(certs)
}

fn load_key(path: &str, directive: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path, directive)?;
    // Both encrypted forms: PKCS#8 `ENCRYPTED PRIVATE KEY` and the legacy
    // `Proc-Type: 4,ENCRYPTED` header of PKCS#1 / SEC1 keys.
    let text = String::from_utf8_lossy(&pem);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError::EncryptedKey {
            directive,
            path: path.into(),
        });
    }
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::BadKey {
        directive,
        path: path.into(),
        reason: e.to_string(),
    })
}

/// The trust anchors from `tls-ca-cert-file` and every certificate file in
/// `tls-ca-cert-dir`.
fn roots(s: &Settings) -> Result<RootCertStore, TlsError> {
    if s.ca_cert_file.is_empty() && s.ca_cert_dir.is_empty() {
        return Err(TlsError::NoCa);
    }
    let mut certs = Vec::new();
    if !s.ca_cert_file.is_empty() {
        certs.extend(load_certs(&s.ca_cert_file, "tls-ca-cert-file")?);
    }
    if !s.ca_cert_dir.is_empty() {
        certs.extend(dir_certs(&s.ca_cert_dir)?);
    }
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsError::Verifier(
            "no usable CA certificate in tls-ca-cert-file / tls-ca-cert-dir".into(),
        ));
    }
    Ok(store)
}

/// Certificates of every regular file in the directory (OpenSSL's hashed names,
/// `.pem`, `.crt`: whatever parses); files without one are skipped.
fn dir_certs(dir: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_err = |source| TlsError::Read {
        directive: "tls-ca-cert-dir",
        path: dir.into(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if !path.is_file() {
            continue;
        }
        let Ok(pem) = std::fs::read(&path) else {
            continue;
        };
        out.extend(CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok));
    }
    Ok(out)
}

/// `tls-protocols`: empty means TLSv1.2 and TLSv1.3, Redis's default.
fn protocols(words: &str) -> Result<Versions, TlsError> {
    let mut out: Versions = Vec::new();
    for w in words.split_whitespace() {
        let v = match w.to_ascii_lowercase().as_str() {
            "tlsv1.2" => &rustls::version::TLS12,
            "tlsv1.3" => &rustls::version::TLS13,
            _ => return Err(TlsError::Protocol(w.into())),
        };
        if !out.iter().any(|o| o.version == v.version) {
            out.push(v);
        }
    }
    if out.is_empty() {
        out = vec![&rustls::version::TLS13, &rustls::version::TLS12];
    }
    Ok(out)
}

/// TLS 1.3 suites by their IANA names (`tls-ciphersuites`).
const TLS13_NAMES: &[(&str, CipherSuite)] = &[
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

/// TLS 1.2 suites by their OpenSSL names (`tls-ciphers`): the ones rustls has.
const TLS12_NAMES: &[(&str, CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// OpenSSL cipher-string words that select "everything reasonable": rustls only
/// has strong suites, so they select all of them.
const TLS12_ALL_WORDS: &[&str] = &["DEFAULT", "ALL", "HIGH", "SECURE", "ECDHE", "EECDH"];

/// Parses a cipher list: `None` when empty (every suite), else the chosen
/// suites in the given order. `!x` / `-x` remove a known name and are ignored
/// for classes rustls never offers (`!aNULL`, `!MD5`); `@...` options are ignored.
fn cipher_list(
    text: &str,
    names: &[(&str, CipherSuite)],
    all_words: &[&str],
    directive: &'static str,
) -> Result<Option<Vec<CipherSuite>>, TlsError> {
    let find = |w: &str| {
        names
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(w))
            .map(|(_, s)| *s)
    };
    let mut out: Vec<CipherSuite> = Vec::new();
    let mut any = false;
    for word in text.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
        any = true;
        if let Some(rest) = word.strip_prefix(['!', '-']) {
            if let Some(s) = find(rest) {
                out.retain(|o| *o != s);
            }
            continue;
        }
        let word = word.trim_start_matches('+');
        if word.starts_with('@') {
            continue;
        }
        if all_words.iter().any(|a| a.eq_ignore_ascii_case(word)) {
            for (_, s) in names {
                if !out.contains(s) {
                    out.push(*s);
                }
            }
            continue;
        }
        match find(word) {
            Some(s) if !out.contains(&s) => out.push(s),
            Some(_) => {}
            None => {
                return Err(TlsError::Cipher {
                    directive,
                    name: word.into(),
                    supported: names.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(":"),
                })
            }
        }
    }
    Ok(any.then_some(out))
}

/// The ring provider restricted (and ordered) by `tls-ciphersuites` and `tls-ciphers`.
fn provider(s: &Settings) -> Result<CryptoProvider, TlsError> {
    let tls13 = cipher_list(&s.ciphersuites, TLS13_NAMES, &[], "tls-ciphersuites")?;
    let tls12 = cipher_list(&s.ciphers, TLS12_NAMES, TLS12_ALL_WORDS, "tls-ciphers")?;
    let mut p = rustls::crypto::ring::default_provider();
    let rank = |cs: &SupportedCipherSuite| -> Option<usize> {
        let list = match cs {
            SupportedCipherSuite::Tls13(_) => &tls13,
            SupportedCipherSuite::Tls12(_) => &tls12,
        };
        match list {
            None => Some(usize::MAX),
            Some(l) => l.iter().position(|x| *x == cs.suite()),
        }
    };
    p.cipher_suites.retain(|cs| rank(cs).is_some());
    // TLS 1.3 first, each in its list's order; stable, so suites not listed
    // explicitly keep the provider's order.
    p.cipher_suites.sort_by_key(|cs| {
        (
            matches!(cs, SupportedCipherSuite::Tls12(_)),
            rank(cs).unwrap_or(usize::MAX),
        )
    });
    if p.cipher_suites.is_empty() {
        return Err(TlsError::NoCiphers);
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_default_to_both_and_refuse_old_versions() {
        assert_eq!(protocols("").unwrap().len(), 2);
        assert_eq!(protocols("TLSv1.3").unwrap().len(), 1);
        assert_eq!(protocols("TLSv1.2 TLSv1.3 tlsv1.3").unwrap().len(), 2);
        let e = protocols("TLSv1.1 TLSv1.2").unwrap_err().to_string();
        assert!(e.contains("unsupported protocol 'TLSv1.1'"), "{e}");
    }

    #[test]
    fn cipher_names_map_to_rustls_suites() {
        let l = cipher_list(
            "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:!aNULL:!MD5",
            TLS12_NAMES,
            TLS12_ALL_WORDS,
            "tls-ciphers",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            l,
            vec![
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            ]
        );
        let all = cipher_list(
            "HIGH:!ECDHE-RSA-CHACHA20-POLY1305",
            TLS12_NAMES,
            TLS12_ALL_WORDS,
            "tls-ciphers",
        )
        .unwrap()
        .unwrap();
        assert_eq!(all.len(), TLS12_NAMES.len() - 1);
        assert_eq!(
            cipher_list("", TLS12_NAMES, TLS12_ALL_WORDS, "x").unwrap(),
            None
        );
        let e = cipher_list("AES128-SHA", TLS12_NAMES, TLS12_ALL_WORDS, "tls-ciphers")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("tls-ciphers: unsupported cipher 'AES128-SHA' (supported: ECDHE-"),
            "{e}"
        );
    }

    #[test]
    fn provider_keeps_only_the_chosen_suites_in_order() {
        let mut s = Settings::from_config(&crate::config::Config::default());
        s.ciphersuites = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256".into();
        s.ciphers = "ECDHE-RSA-AES128-GCM-SHA256".into();
        let p = provider(&s).unwrap();
        let suites: Vec<CipherSuite> = p.cipher_suites.iter().map(|c| c.suite()).collect();
        assert_eq!(
            suites,
            vec![
                CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                CipherSuite::TLS13_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
            ]
        );
        s.ciphersuites = "!TLS_AES_128_GCM_SHA256".into();
        s.ciphers = "!ECDHE-RSA-AES128-GCM-SHA256".into();
        assert!(matches!(provider(&s), Err(TlsError::NoCiphers)));
    }

    #[test]
    fn key_passwords_are_refused_with_the_reason() {
        let mut s = Settings::from_config(&crate::config::Config::default());
        s.port = 6380;
        s.key_file_pass = "secret".into();
        let e = build(&s).unwrap_err().to_string();
        assert!(e.contains("tls-key-file-pass is set"), "{e}");
        assert!(
            e.contains("encrypted private keys are not supported"),
            "{e}"
        );
    }

    #[test]
    fn defaults_need_no_tls() {
        let s = Settings::from_config(&crate::config::Config::default());
        assert!(!s.in_use());
        assert_eq!(s.auth_clients, AuthClients::Yes);
        assert!(s.session_caching);
        assert_eq!(s.session_cache_size, 20480);
        assert_eq!(s.session_cache_timeout, 300);
    }
}
