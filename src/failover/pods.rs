//! The pods of one set as the failover sees them: addresses to connect to, names to
//! advertise, the password, and the recorded state from the status.

use std::collections::HashMap;

use kube::ResourceExt;

use super::credentials::Credentials;
use super::executor::PodTarget;
use super::planner::{ObservedRole, PodObservation, RecordedState};
use crate::controller::observe::Observed;
use crate::crd::RedisReplication;
use crate::names;

/// One pod of the set: name, ordinal and pod IP (if it has one yet).
#[derive(Debug, Clone, PartialEq)]
pub struct PodAddress {
    pub name: String,
    pub ordinal: u32,
    pub ip: Option<String>,
}

/// The password from the auth Secret (`None` when absent or empty).
pub fn password(rr: &RedisReplication, observed: &Observed) -> Option<String> {
    let secret = observed.auth_secret.as_ref()?;
    let key = &rr.spec.auth.key;
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
    let from_string = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned();
    from_data.or(from_string).filter(|p| !p.is_empty())
}

/// How the operator authenticates to the pods: as the internal user when the set has one
/// (its password kept in `<name>-credentials`), else as the default user trying the Secret's
/// password first, then every password the pods still accept (newest first), so a rotation
/// in flight never locks the operator out.
pub fn credentials(rr: &RedisReplication, observed: &Observed) -> Credentials {
    let stored = observed
        .credentials_secret
        .as_ref()
        .and_then(crate::build::credentials::parse);
    if rr.spec.auth.internal_user {
        if let Some(pw) = stored.as_ref().and_then(|c| c.internal.clone()) {
            return Credentials::user(crate::build::acl_users::INTERNAL_USER, pw);
        }
    }
    let mut creds = Credentials::password(password(rr, observed));
    for p in stored.iter().flat_map(|c| c.accepted.iter().rev()) {
        if !creds.passwords.contains(p) {
            creds.passwords.push(p.clone());
        }
    }
    creds
}

/// Every pod of the set, by ordinal.
pub fn addresses(set: &str, observed: &Observed) -> Vec<PodAddress> {
    let mut pods: Vec<PodAddress> = observed
        .pods
        .iter()
        .filter_map(|p| {
            let name = p.name_any();
            let ordinal = u32::try_from(names::ordinal(set, &name)?).ok()?;
            let ip = p
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .filter(|ip| !ip.is_empty());
            Some(PodAddress { name, ordinal, ip })
        })
        .collect();
    pods.sort_by_key(|p| p.ordinal);
    pods
}

/// Executor targets: connect to `<podIP>:6379`, advertise the pod DNS name.
pub fn targets(set: &str, ns: &str, cluster_domain: &str, pods: &[PodAddress]) -> Vec<PodTarget> {
    targets_on(set, ns, cluster_domain, pods, Ports::plain())
}

/// Which ports the operator connects to and tells replicas to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub connect: i32,
    pub advertise: i32,
}

impl Ports {
    pub fn plain() -> Self {
        Ports {
            connect: names::PORT,
            advertise: names::PORT,
        }
    }
}

/// [`targets`] on the given ports (see [`super::tls_transport`]).
pub fn targets_on(
    set: &str,
    ns: &str,
    cluster_domain: &str,
    pods: &[PodAddress],
    ports: Ports,
) -> Vec<PodTarget> {
    let port = ports.connect;
    pods.iter()
        .map(|p| PodTarget {
            name: p.name.clone(),
            ordinal: p.ordinal,
            connect: p
                .ip
                .as_ref()
                .map(|ip| {
                    if ip.contains(':') {
                        format!("[{ip}]:{port}")
                    } else {
                        format!("{ip}:{port}")
                    }
                })
                .unwrap_or_default(),
            advertise_host: names::pod_dns(set, ns, cluster_domain, p.ordinal),
            advertise_port: u16::try_from(ports.advertise).unwrap_or(6379),
        })
        .collect()
}

/// Pod name -> pod IP of the pods that have one.
pub fn ips(pods: &[PodAddress]) -> HashMap<String, String> {
    pods.iter()
        .filter_map(|p| Some((p.name.clone(), p.ip.clone()?)))
        .collect()
}

/// The pod a `master_host` names: its DNS name (or any name starting with `<pod>.`) or its IP.
pub fn pod_of_host(
    host: &str,
    targets: &[PodTarget],
    ips: &HashMap<String, String>,
) -> Option<String> {
    targets
        .iter()
        .find(|t| {
            t.advertise_host == host
                || host.starts_with(&format!("{}.", t.name))
                || ips.get(&t.name).is_some_and(|ip| ip == host)
        })
        .map(|t| t.name.clone())
}

/// Pods that were serving as master and are not `keep`: their clients are disconnected
/// once they are repointed.
pub fn demoted(
    pods: &[PodObservation],
    recorded: &RecordedState,
    keep: Option<&str>,
) -> Vec<String> {
    let mut out: Vec<String> = pods
        .iter()
        .filter(|p| p.reachable && p.role == ObservedRole::Master)
        .map(|p| p.name.clone())
        .collect();
    if let Some(m) = &recorded.master {
        if !out.contains(m) {
            out.push(m.clone());
        }
    }
    out.retain(|p| Some(p.as_str()) != keep);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::ByteString;

    #[test]
    fn master_host_maps_to_pods_by_dns_name_or_ip() {
        let t = |n: &str| PodTarget {
            name: n.to_string(),
            ordinal: 0,
            connect: String::new(),
            advertise_host: format!("{n}.c-headless.ns.svc.cluster.local"),
            advertise_port: 6379,
        };
        let targets = [t("c-0"), t("c-1"), t("c-10")];
        let ips = HashMap::from([("c-1".to_string(), "10.0.0.7".to_string())]);
        assert_eq!(
            pod_of_host("c-0.c-headless.ns.svc.cluster.local", &targets, &ips).as_deref(),
            Some("c-0")
        );
        assert_eq!(
            pod_of_host("c-10.c-headless", &targets, &ips).as_deref(),
            Some("c-10")
        );
        assert_eq!(
            pod_of_host("10.0.0.7", &targets, &ips).as_deref(),
            Some("c-1")
        );
        assert_eq!(pod_of_host("10.0.0.8", &targets, &ips), None);
    }

    #[test]
    fn password_comes_from_the_configured_key() {
        let rr = crate::build::testutil::rr("c", "ns", serde_json::json!({}));
        let s = Secret {
            data: Some([(rr.spec.auth.key.clone(), ByteString(b"pw".to_vec()))].into()),
            ..Secret::default()
        };
        let obs = Observed {
            auth_secret: Some(s),
            ..Observed::default()
        };
        assert_eq!(password(&rr, &obs).as_deref(), Some("pw"));
        assert_eq!(password(&rr, &Observed::default()), None);
    }
}
