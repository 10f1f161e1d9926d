//! TLS (`spec.tls`), build step: the `tls-*` directives, the Secret's mount, the TLS port of
//! the container and the Services, and the cert-manager `Certificate` when `issuerRef` is set.
//!
//! Choices:
//! - The plain port ([`names::PORT`]) stays open next to the TLS port ([`TLS_PORT`]): clients
//!   can move to TLS one at a time, and the operator falls back to it when the Secret is
//!   unusable (its probes use TLS whenever the Secret checks out). The NetworkPolicy (when
//!   enabled) admits the same peers to both.
//! - With `replication: true` replicas follow their master on its TLS port (`tls-replication
//!   yes`, and `replicaof`/`REPLICAOF` name [`TLS_PORT`]).
//! - The pod template names only the Secret, never its content: a renewed certificate reaches
//!   the running pods through the kubelet's update of the mounted files, which the server
//!   re-reads (server/src/tls/watch.rs), without a restart.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, SecretVolumeSource, ServicePort, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject};
use serde_json::json;

use super::{Owner, Params};
use crate::crd::{RedisReplication, RedisReplicationSpec, TlsSpec};
use crate::names;

/// The TLS port of every pod and of the Services.
pub const TLS_PORT: i32 = 6380;
/// Name of the TLS port (container and Services).
pub const PORT_NAME: &str = "redis-tls";
/// Where the TLS Secret is mounted.
pub const TLS_DIR: &str = "/etc/tandem/tls";
const VOLUME: &str = "tls";

/// The directives the operator renders for TLS (refused in `spec.config`).
pub const MANAGED_DIRECTIVES: &[&str] = &[
    "tls-port",
    "tls-cert-file",
    "tls-key-file",
    "tls-ca-cert-file",
    "tls-auth-clients",
    "tls-replication",
];

/// The port replicas follow their master on.
pub fn replication_port(spec: &RedisReplicationSpec) -> i32 {
    match &spec.tls {
        Some(t) if t.replication => TLS_PORT,
        _ => names::PORT,
    }
}

/// The `tls-*` lines of `tandem.conf` (none without `spec.tls`).
pub fn config_lines(rr: &RedisReplication) -> Vec<(&'static str, String)> {
    let Some(t) = &rr.spec.tls else {
        return Vec::new();
    };
    let file = |key: &str| format!("{TLS_DIR}/{key}");
    vec![
        ("tls-port", TLS_PORT.to_string()),
        ("tls-cert-file", file(crate::tls::CERT_KEY)),
        ("tls-key-file", file(crate::tls::KEY_KEY)),
        ("tls-ca-cert-file", file(crate::tls::CA_KEY)),
        ("tls-auth-clients", t.auth_clients.as_str().to_string()),
        (
            "tls-replication",
            if t.replication { "yes" } else { "no" }.to_string(),
        ),
    ]
}

/// The pod volume with the TLS Secret: every key, so the kubelet does not refuse to mount a
/// Secret missing one (the operator reports that; the server keeps what it has).
pub fn volume(rr: &RedisReplication) -> Option<Volume> {
    let t = rr.spec.tls.as_ref()?;
    Some(Volume {
        name: VOLUME.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(t.secret_name.clone()),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    })
}

/// The server container's mount of [`volume`].
pub fn volume_mount(rr: &RedisReplication) -> Option<VolumeMount> {
    rr.spec.tls.as_ref().map(|_| VolumeMount {
        name: VOLUME.to_string(),
        mount_path: TLS_DIR.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    })
}

/// `c` with the TLS port added to its ports (when `spec.tls` is set).
pub fn with_port(mut c: Container, rr: &RedisReplication) -> Container {
    if let Some(p) = container_port(rr) {
        c.ports.get_or_insert_with(Vec::new).push(p);
    }
    c
}

/// The container's TLS port.
pub fn container_port(rr: &RedisReplication) -> Option<ContainerPort> {
    rr.spec.tls.as_ref().map(|_| ContainerPort {
        name: Some(PORT_NAME.to_string()),
        container_port: TLS_PORT,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    })
}

/// The Services' TLS port.
pub fn service_port(rr: &RedisReplication) -> Option<ServicePort> {
    rr.spec.tls.as_ref().map(|_| ServicePort {
        name: Some(PORT_NAME.to_string()),
        port: TLS_PORT,
        target_port: Some(IntOrString::String(PORT_NAME.to_string())),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    })
}

/// cert-manager's `Certificate` kind.
pub fn certificate_resource() -> ApiResource {
    ApiResource {
        group: "cert-manager.io".to_string(),
        version: "v1".to_string(),
        api_version: "cert-manager.io/v1".to_string(),
        kind: "Certificate".to_string(),
        plural: "certificates".to_string(),
    }
}

/// Name of the Certificate the operator creates: the set's name plus `-tls`.
pub fn certificate_name(set: &str) -> String {
    format!("{set}-tls")
}

/// The DNS names a set is reached by: its three Services (short, namespaced and full forms)
/// and every pod through the headless Service (a wildcard, so scaling needs no new
/// certificate).
pub fn dns_names(owner: &Owner, params: &Params) -> Vec<String> {
    let ns = &owner.namespace;
    let mut out = Vec::new();
    for svc in [
        names::master_service(&owner.name),
        names::replicas_service(&owner.name),
        names::headless_service(&owner.name),
    ] {
        out.push(svc.clone());
        out.push(format!("{svc}.{ns}"));
        out.push(format!("{svc}.{ns}.svc"));
        out.push(names::service_dns(&svc, ns, &params.cluster_domain));
    }
    out.push(format!(
        "*.{}",
        names::service_dns(
            &names::headless_service(&owner.name),
            ns,
            &params.cluster_domain
        )
    ));
    out
}

/// The cert-manager `Certificate` writing `spec.tls.secretName`, when `issuerRef` is set.
pub fn certificate(rr: &RedisReplication, owner: &Owner, params: &Params) -> Option<DynamicObject> {
    let t: &TlsSpec = rr.spec.tls.as_ref()?;
    let issuer = t.issuer_ref.as_ref()?;
    let mut obj = DynamicObject::new(&certificate_name(&owner.name), &certificate_resource())
        .within(&owner.namespace)
        .data(json!({
            "spec": {
                "secretName": t.secret_name,
                "issuerRef": {"name": issuer.name, "kind": issuer.kind, "group": issuer.group},
                "commonName": names::service_dns(
                    &names::master_service(&owner.name),
                    &owner.namespace,
                    &params.cluster_domain,
                ),
                "dnsNames": dns_names(owner, params),
                // The pods present it to clients and, as replicas or to `authClients`, to
                // other pods.
                "usages": ["server auth", "client auth", "digital signature", "key encipherment"],
                "privateKey": {"rotationPolicy": "Always"},
            }
        }));
    let meta = owner.child_meta(certificate_name(&owner.name));
    obj.metadata.labels = meta.labels;
    obj.metadata.owner_references = meta.owner_references;
    Some(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use serde_json::json;

    fn tls_rr(tls: serde_json::Value) -> RedisReplication {
        rr("cache", "prod", json!({"tls": tls}))
    }

    #[test]
    fn config_lines_point_at_the_mounted_secret_and_default_to_tls_replication() {
        let r = tls_rr(json!({"secretName": "cache-certs"}));
        let lines = config_lines(&r);
        let get = |k: &str| lines.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("tls-port"), Some("6380"));
        assert_eq!(get("tls-cert-file"), Some("/etc/tandem/tls/tls.crt"));
        assert_eq!(get("tls-key-file"), Some("/etc/tandem/tls/tls.key"));
        assert_eq!(get("tls-ca-cert-file"), Some("/etc/tandem/tls/ca.crt"));
        assert_eq!(get("tls-auth-clients"), Some("no"));
        assert_eq!(get("tls-replication"), Some("yes"));
        assert_eq!(replication_port(&r.spec), TLS_PORT);
        for (k, _) in &lines {
            assert!(MANAGED_DIRECTIVES.contains(k), "{k} not managed");
        }
        let plain = tls_rr(json!({"secretName": "s", "replication": false, "authClients": "yes"}));
        let lines = config_lines(&plain);
        assert!(lines.contains(&("tls-replication", "no".to_string())));
        assert!(lines.contains(&("tls-auth-clients", "yes".to_string())));
        assert_eq!(replication_port(&plain.spec), names::PORT);
    }

    #[test]
    fn without_tls_nothing_is_rendered() {
        let r = rr("cache", "prod", json!({}));
        assert!(config_lines(&r).is_empty());
        assert!(volume(&r).is_none());
        assert!(volume_mount(&r).is_none());
        assert!(container_port(&r).is_none());
        assert!(service_port(&r).is_none());
        assert_eq!(replication_port(&r.spec), names::PORT);
        let owner = Owner::of(&r).unwrap();
        assert!(certificate(&r, &owner, &Params::default()).is_none());
    }

    #[test]
    fn the_secret_is_mounted_whole_and_read_only() {
        let r = tls_rr(json!({"secretName": "cache-certs"}));
        let v = volume(&r).unwrap();
        let s = v.secret.unwrap();
        assert_eq!(s.secret_name.as_deref(), Some("cache-certs"));
        assert!(s.items.is_none());
        let m = volume_mount(&r).unwrap();
        assert_eq!((m.name.as_str(), m.mount_path.as_str()), ("tls", TLS_DIR));
        assert_eq!(m.read_only, Some(true));
    }

    #[test]
    fn no_certificate_without_issuer_ref() {
        let r = tls_rr(json!({"secretName": "cache-certs"}));
        let owner = Owner::of(&r).unwrap();
        assert!(certificate(&r, &owner, &Params::default()).is_none());
    }

    #[test]
    fn certificate_writes_the_mounted_secret_for_every_service_and_pod_name() {
        let r = tls_rr(json!({"secretName": "cache-certs",
            "issuerRef": {"name": "ca-issuer", "kind": "ClusterIssuer"}}));
        let owner = Owner::of(&r).unwrap();
        let c = certificate(&r, &owner, &Params::default()).unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["apiVersion"], "cert-manager.io/v1");
        assert_eq!(v["kind"], "Certificate");
        assert_eq!(v["metadata"]["name"], "cache-tls");
        assert_eq!(v["metadata"]["namespace"], "prod");
        assert_eq!(v["metadata"]["ownerReferences"][0]["name"], "cache");
        assert_eq!(v["metadata"]["ownerReferences"][0]["controller"], true);
        let spec = &v["spec"];
        assert_eq!(spec["secretName"], "cache-certs");
        assert_eq!(
            spec["issuerRef"],
            json!({"name": "ca-issuer", "kind": "ClusterIssuer", "group": "cert-manager.io"})
        );
        let dns: Vec<&str> = spec["dnsNames"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d.as_str())
            .collect();
        for want in [
            "cache-master",
            "cache-master.prod.svc",
            "cache-master.prod.svc.cluster.local",
            "cache-replicas.prod",
            "cache-headless.prod.svc.cluster.local",
            "*.cache-headless.prod.svc.cluster.local",
        ] {
            assert!(dns.contains(&want), "{want} missing from {dns:?}");
        }
        let usages = spec["usages"].as_array().unwrap();
        assert!(usages.contains(&json!("client auth")));
        assert!(usages.contains(&json!("server auth")));
    }

    #[test]
    fn issuer_ref_defaults_to_a_cert_manager_issuer() {
        let r = tls_rr(json!({"secretName": "s", "issuerRef": {"name": "i"}}));
        let owner = Owner::of(&r).unwrap();
        let v = serde_json::to_value(certificate(&r, &owner, &Params::default()).unwrap()).unwrap();
        assert_eq!(v["spec"]["issuerRef"]["kind"], "Issuer");
        assert_eq!(v["spec"]["issuerRef"]["group"], "cert-manager.io");
    }
}
