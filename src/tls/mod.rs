//! TLS material of a set (`spec.tls`): the Secret's certificate, key and CA checked the way
//! the server checks its files (so a bad Secret is reported before a pod refuses it), the
//! certificate's expiry for the status, and the rustls client the operator's own connections
//! to the pods use ([`client`]).
//!
//! The DER validity reader and the chain-only verifier are the server's own files, compiled
//! into this crate too (one implementation of each, no dependency on the server crate).

pub mod client;
#[path = "../../server/src/tls/validity.rs"]
pub mod validity;
#[path = "../../server/src/tls/verify.rs"]
mod verify;

use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Keys of a `kubernetes.io/tls` Secret as cert-manager writes it.
pub const CERT_KEY: &str = "tls.crt";
pub const KEY_KEY: &str = "tls.key";
pub const CA_KEY: &str = "ca.crt";

/// What is wrong with a TLS Secret; every message names the Secret.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TlsSecretError {
    #[error("TLS Secret {secret} does not exist")]
    Missing { secret: String },
    #[error("TLS Secret {secret} has no {key}")]
    MissingKey { secret: String, key: &'static str },
    #[error("TLS Secret {secret}: {key} holds no PEM certificate")]
    NoCert { secret: String, key: &'static str },
    #[error("TLS Secret {secret}: tls.key is not a usable private key: {reason}")]
    BadKey { secret: String, reason: String },
    #[error("TLS Secret {secret}: tls.key does not match the certificate in tls.crt")]
    KeyMismatch { secret: String },
    #[error("TLS Secret {secret}: the certificate in tls.crt expired at {at}")]
    Expired { secret: String, at: String },
    #[error("TLS Secret {secret}: the certificate in tls.crt is not valid before {at}")]
    NotYetValid { secret: String, at: String },
    #[error("TLS Secret {secret}: the validity dates of tls.crt cannot be read")]
    NoValidity { secret: String },
}

impl TlsSecretError {
    /// The condition reason for this problem.
    pub fn reason(&self) -> &'static str {
        match self {
            TlsSecretError::Missing { .. } => "TLSSecretMissing",
            TlsSecretError::MissingKey { .. } | TlsSecretError::NoCert { .. } => {
                "TLSSecretIncomplete"
            }
            TlsSecretError::BadKey { .. } | TlsSecretError::KeyMismatch { .. } => "TLSKeyMismatch",
            TlsSecretError::Expired { .. } => "TLSCertificateExpired",
            TlsSecretError::NotYetValid { .. } => "TLSCertificateNotYetValid",
            TlsSecretError::NoValidity { .. } => "TLSCertificateUnreadable",
        }
    }
}

/// The value of `key`: `data`, or `stringData` as a fake API may hand it over. (Not
/// `controller::validate::secret_value`: this module sits below the controller.)
fn secret_value(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone());
    data.or_else(|| {
        let text = secret.string_data.as_ref()?.get(key)?;
        Some(text.as_bytes().to_vec())
    })
}

/// The checked contents of a TLS Secret.
#[derive(Debug)]
pub struct Material {
    /// `tls.crt`: the leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// `ca.crt`: the trust anchors.
    pub ca: Vec<CertificateDer<'static>>,
    /// Expiry of the leaf, Unix seconds.
    pub not_after: i64,
    /// FNV-1a of the three values: tells two versions of the Secret apart.
    pub fingerprint: u64,
}

fn value(secret: &Secret, name: &str, key: &'static str) -> Result<Vec<u8>, TlsSecretError> {
    secret_value(secret, key)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| TlsSecretError::MissingKey {
            secret: name.to_string(),
            key,
        })
}

fn certs(
    pem: &[u8],
    name: &str,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsSecretError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsSecretError::NoCert {
            secret: name.to_string(),
            key,
        });
    }
    Ok(certs)
}

/// Expiry (Unix seconds) of the first certificate in the Secret's `tls.crt`, when readable:
/// shown in the status even when the Secret is otherwise unusable.
pub fn not_after(secret: &Secret) -> Option<i64> {
    let pem = secret_value(secret, CERT_KEY)?;
    let leaf = CertificateDer::pem_slice_iter(&pem).find_map(Result::ok)?;
    validity::parse(&leaf).map(|v| v.not_after)
}

/// Checks the Secret named `name` at Unix time `now`: every key present, PEM that parses, a
/// key matching the certificate, a certificate within its validity period.
pub fn check(name: &str, secret: Option<&Secret>, now: i64) -> Result<Material, TlsSecretError> {
    let secret = secret.ok_or_else(|| TlsSecretError::Missing {
        secret: name.to_string(),
    })?;
    let crt = value(secret, name, CERT_KEY)?;
    let key_pem = value(secret, name, KEY_KEY)?;
    let ca_pem = value(secret, name, CA_KEY)?;
    let chain = certs(&crt, name, CERT_KEY)?;
    let ca = certs(&ca_pem, name, CA_KEY)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsSecretError::BadKey {
        secret: name.to_string(),
        reason: e.to_string(),
    })?;
    check_pair(name, &chain, &key)?;
    let not_after = check_dates(name, &chain, now)?;
    let mut fingerprint: u64 = 0xcbf2_9ce4_8422_2325;
    for b in crt.iter().chain(&key_pem).chain(&ca_pem) {
        fingerprint ^= u64::from(*b);
        fingerprint = fingerprint.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(Material {
        chain,
        key,
        ca,
        not_after,
        fingerprint,
    })
}

fn check_pair(
    name: &str,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> Result<(), TlsSecretError> {
    let signing = rustls::crypto::ring::sign::any_supported_type(key).map_err(|e| {
        TlsSecretError::BadKey {
            secret: name.to_string(),
            reason: e.to_string(),
        }
    })?;
    let certified = rustls::sign::CertifiedKey::new(chain.to_vec(), signing);
    match certified.keys_match() {
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsSecretError::KeyMismatch {
            secret: name.to_string(),
        }),
        // Keys whose public half rustls cannot compare are left to the server's own check.
        _ => Ok(()),
    }
}

fn check_dates(
    name: &str,
    chain: &[CertificateDer<'static>],
    now: i64,
) -> Result<i64, TlsSecretError> {
    let v = chain
        .first()
        .and_then(|leaf| validity::parse(leaf))
        .ok_or_else(|| TlsSecretError::NoValidity {
            secret: name.to_string(),
        })?;
    if now > v.not_after {
        return Err(TlsSecretError::Expired {
            secret: name.to_string(),
            at: rfc3339(v.not_after),
        });
    }
    if now < v.not_before {
        return Err(TlsSecretError::NotYetValid {
            secret: name.to_string(),
            at: rfc3339(v.not_before),
        });
    }
    Ok(v.not_after)
}

/// Unix seconds as RFC 3339 (UTC), the format of the status.
pub fn rfc3339(t: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| validity::format_utc(t))
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}
