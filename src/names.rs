//! One source of truth for object names, labels and DNS names derived from a RedisReplication.

use std::collections::BTreeMap;

/// The port every tandem-server pod listens on.
pub const PORT: i32 = 6379;
/// The field manager used for every server-side apply.
pub const FIELD_MANAGER: &str = "tandem-operator";
/// Pod label carrying the role decided by the operator (`master` / `replica`).
pub const ROLE_LABEL: &str = "tandem.dev/role";
pub const ROLE_MASTER: &str = "master";
pub const ROLE_REPLICA: &str = "replica";
/// Pod template annotation holding a hash of the rendered config: a config change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "tandem.dev/config-hash";

pub fn statefulset(name: &str) -> String {
    name.to_string()
}
pub fn headless_service(name: &str) -> String {
    format!("{name}-headless")
}
pub fn master_service(name: &str) -> String {
    format!("{name}-master")
}
pub fn replicas_service(name: &str) -> String {
    format!("{name}-replicas")
}
pub fn config_map(name: &str) -> String {
    format!("{name}-config")
}
pub fn generated_secret(name: &str) -> String {
    format!("{name}-auth")
}
pub fn pdb(name: &str) -> String {
    name.to_string()
}
pub fn network_policy(name: &str) -> String {
    name.to_string()
}
/// Pod `ordinal` of StatefulSet `name` (the StatefulSet controller's naming).
pub fn pod(name: &str, ordinal: impl Into<i64>) -> String {
    format!("{name}-{}", ordinal.into())
}
/// The PersistentVolumeClaim of volume claim template `template` for pod `ordinal` of
/// StatefulSet `set` (the StatefulSet controller's naming).
pub fn claim(template: &str, set: &str, ordinal: impl Into<i64>) -> String {
    format!("{template}-{}", pod(set, ordinal))
}

/// Ordinal of a StatefulSet pod from its name (`<set>-<ordinal>`): the inverse of [`pod`].
/// `None` for any other name (another set's pod, leading zeros, signs, negative numbers).
pub fn ordinal(set: &str, pod: &str) -> Option<i32> {
    let rest = pod.strip_prefix(set)?.strip_prefix('-')?;
    if rest.is_empty()
        || (rest.len() > 1 && rest.starts_with('0'))
        || !rest.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    rest.parse().ok()
}

/// Stable DNS name of a pod through the headless Service.
pub fn pod_dns(
    name: &str,
    namespace: &str,
    cluster_domain: &str,
    ordinal: impl Into<i64>,
) -> String {
    format!(
        "{}.{}.{namespace}.svc.{cluster_domain}",
        pod(name, ordinal),
        headless_service(name)
    )
}

pub fn service_dns(service: &str, namespace: &str, cluster_domain: &str) -> String {
    format!("{service}.{namespace}.svc.{cluster_domain}")
}

/// Labels selecting every pod of one RedisReplication (stable: StatefulSet selectors are immutable).
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "tandem".to_string()),
        ("app.kubernetes.io/instance".to_string(), name.to_string()),
    ])
}

/// Labels put on every child object.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(name);
    l.insert(
        "app.kubernetes.io/managed-by".to_string(),
        "tandem-operator".to_string(),
    );
    l.insert(
        "app.kubernetes.io/component".to_string(),
        "redis-replication".to_string(),
    );
    l
}

/// `k=v,k2=v2` form of a label map, for list calls.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_is_the_inverse_of_the_pod_name() {
        assert_eq!(ordinal("c", &pod("c", 12)), Some(12));
        assert_eq!(ordinal("c", "c-0"), Some(0));
        assert_eq!(ordinal("r-a", "r-a-3"), Some(3));
        for other in ["cx-1", "c-", "c-01", "c--1", "c-+1", "c-1a", "c"] {
            assert_eq!(ordinal("c", other), None, "{other}");
        }
    }
}
