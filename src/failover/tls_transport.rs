//! How the operator reaches the pods of a set with `spec.tls`: over TLS on the TLS port when
//! the TLS Secret checks out (trusting its `ca.crt`), else over the plain port, which stays
//! open for this reason (see `build::tls`); and which port replicas are told to follow.
//!
//! A decision over the observed Secret, made once per reconcile round.

use super::pods::Ports;
use crate::build::tls::{replication_port, TLS_PORT};
use crate::controller::observe::Observed;
use crate::crd::RedisReplication;
use crate::tls::client::TlsClient;

/// The TLS client (when the pods are reached over TLS) and the ports.
#[derive(Debug, Clone, PartialEq)]
pub struct Transport {
    pub tls: Option<TlsClient>,
    pub ports: Ports,
}

/// The transport of this round; `now` in Unix seconds.
pub fn transport(rr: &RedisReplication, observed: &Observed, now: i64) -> Transport {
    let mut ports = Ports::plain();
    let Some(spec) = &rr.spec.tls else {
        return Transport { tls: None, ports };
    };
    ports.advertise = replication_port(&rr.spec);
    let client = crate::tls::check(&spec.secret_name, observed.tls_secret.as_ref(), now)
        .map_err(|e| e.to_string())
        .and_then(|m| TlsClient::new(&m).map_err(|e| e.to_string()));
    match client {
        Ok(c) => {
            ports.connect = TLS_PORT;
            Transport {
                tls: Some(c),
                ports,
            }
        }
        Err(error) => {
            tracing::debug!(name = %rr.metadata.name.as_deref().unwrap_or_default(), %error, "TLS Secret unusable, probing the plain port");
            Transport { tls: None, ports }
        }
    }
}
