//! Server pod defaults: container resources when the user gives none, preferred spreading
//! across nodes when the user gives no affinity or topology spread, and `maxmemory` derived
//! from the container's memory limit (`spec.maxmemoryRatio`) when the user's config does not
//! set it. Pure functions of the resource, used by the StatefulSet and config builders.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, PodAffinityTerm, PodAntiAffinity, ResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::crd::RedisReplication;
use crate::names;

/// Requests and memory limit of a server container whose RedisReplication sets no
/// `resources` (an explicit `resources: {}` means none at all). No CPU limit: throttling a
/// single-threaded server adds latency without protecting the node.
pub const DEFAULT_CPU_REQUEST: &str = "100m";
pub const DEFAULT_MEMORY_REQUEST: &str = "128Mi";
pub const DEFAULT_MEMORY_LIMIT: &str = "256Mi";

/// The node label the default anti-affinity spreads over.
pub const HOSTNAME_TOPOLOGY: &str = "kubernetes.io/hostname";

/// The server container's resources: the user's, else the defaults above.
pub fn server_resources(rr: &RedisReplication) -> ResourceRequirements {
    rr.spec.resources.clone().unwrap_or_else(|| {
        let q = |s: &str| Quantity(s.to_string());
        ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), q(DEFAULT_CPU_REQUEST)),
                ("memory".to_string(), q(DEFAULT_MEMORY_REQUEST)),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                q(DEFAULT_MEMORY_LIMIT),
            )])),
            ..ResourceRequirements::default()
        }
    })
}

/// The pod's affinity: the user's; else, when the user sets no topology spread either, a
/// preferred (soft) anti-affinity between the set's pods by hostname, so a node loss takes
/// at most one of them where the cluster has room, and a small cluster still schedules all.
pub fn pod_affinity(rr: &RedisReplication, set: &str) -> Option<Affinity> {
    if rr.spec.affinity.is_some() || !rr.spec.topology_spread_constraints.is_empty() {
        return rr.spec.affinity.clone();
    }
    Some(Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(names::selector_labels(set)),
                            ..LabelSelector::default()
                        }),
                        topology_key: HOSTNAME_TOPOLOGY.to_string(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    })
}

/// `maxmemory` in bytes: the container's memory limit times `spec.maxmemoryRatio`, unless
/// the user's config sets `maxmemory`, the ratio is 0 (off) or there is no (parsable)
/// memory limit. The rest of the limit is left for buffers, fork copy-on-write and
/// fragmentation, which maxmemory does not count.
pub fn derived_maxmemory(rr: &RedisReplication) -> Option<u64> {
    if rr
        .spec
        .config
        .keys()
        .any(|k| k.eq_ignore_ascii_case("maxmemory"))
    {
        return None;
    }
    let ratio = rr.spec.maxmemory_ratio;
    if !(ratio > 0.0 && ratio <= 1.0) {
        return None;
    }
    let limit = server_resources(rr)
        .limits?
        .get("memory")
        .map(quantity_bytes)??;
    // Quantities of memory are far below 2^53, so the f64 product is exact enough.
    let bytes = (limit as f64 * ratio).floor();
    (bytes >= 1.0).then_some(bytes as u64)
}

/// A Kubernetes quantity in bytes (`256Mi`, `1.5Gi`, `500M`, `1e9`, `1048576`); None when
/// it is not one, is negative or does not fit.
pub fn quantity_bytes(q: &Quantity) -> Option<u64> {
    let s = q.0.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let multiplier: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e.get(1..)?.parse().ok()?;
            10f64.powi(exp)
        }
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    let bytes = (n * multiplier).ceil();
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use serde_json::json;

    #[test]
    fn quantities_parse_binary_decimal_and_exponent_suffixes() {
        let b = |s: &str| quantity_bytes(&Quantity(s.into()));
        assert_eq!(b("256Mi"), Some(256 << 20));
        assert_eq!(b("1.5Gi"), Some(3 << 29));
        assert_eq!(b("500M"), Some(500_000_000));
        assert_eq!(b("1e9"), Some(1_000_000_000));
        assert_eq!(b("1048576"), Some(1_048_576));
        assert_eq!(b("100m"), Some(1));
        for bad in ["", "Mi", "12Zi", "-1Gi", "1e", "1.2.3Gi", "99999999Ei"] {
            assert_eq!(b(bad), None, "{bad}");
        }
    }

    #[test]
    fn defaults_apply_only_when_the_user_sets_no_resources() {
        let d = server_resources(&rr("c", "ns", json!({})));
        assert_eq!(d.requests.as_ref().unwrap()["cpu"].0, "100m");
        assert_eq!(d.requests.as_ref().unwrap()["memory"].0, "128Mi");
        assert_eq!(d.limits.as_ref().unwrap()["memory"].0, "256Mi");
        assert!(!d.limits.as_ref().unwrap().contains_key("cpu"));
        let own = server_resources(&rr(
            "c",
            "ns",
            json!({"resources": {"limits": {"memory": "1Gi"}}}),
        ));
        assert!(own.requests.is_none());
        assert_eq!(own.limits.unwrap()["memory"].0, "1Gi");
        // `resources: {}` opts out of the defaults.
        let none = server_resources(&rr("c", "ns", json!({"resources": {}})));
        assert_eq!(none, ResourceRequirements::default());
    }

    #[test]
    fn maxmemory_is_the_limit_times_the_ratio_unless_configured() {
        let mm = |spec| derived_maxmemory(&rr("c", "ns", spec));
        // Default limit 256Mi, default ratio 0.8.
        assert_eq!(mm(json!({})), Some(214_748_364));
        assert_eq!(
            mm(json!({"resources": {"limits": {"memory": "1Gi"}}, "maxmemoryRatio": 0.5})),
            Some(512 << 20)
        );
        assert_eq!(mm(json!({"maxmemoryRatio": 0})), None);
        assert_eq!(mm(json!({"config": {"maxmemory": "10mb"}})), None);
        assert_eq!(mm(json!({"config": {"MAXMEMORY": "10mb"}})), None);
        assert_eq!(
            mm(json!({"resources": {"requests": {"memory": "1Gi"}}})),
            None
        );
        assert_eq!(
            mm(json!({"resources": {"limits": {"memory": "lots"}}})),
            None
        );
    }

    #[test]
    fn spreading_is_preferred_by_hostname_unless_the_user_places_pods() {
        let a = pod_affinity(&rr("cache", "ns", json!({})), "cache").unwrap();
        let terms = a
            .pod_anti_affinity
            .unwrap()
            .preferred_during_scheduling_ignored_during_execution
            .unwrap();
        assert_eq!(terms.len(), 1);
        assert_eq!(terms[0].pod_affinity_term.topology_key, HOSTNAME_TOPOLOGY);
        assert_eq!(
            terms[0]
                .pod_affinity_term
                .label_selector
                .as_ref()
                .unwrap()
                .match_labels,
            Some(names::selector_labels("cache"))
        );
        assert!(a.node_affinity.is_none() && a.pod_affinity.is_none());
        let own = json!({"affinity": {"nodeAffinity": {}}});
        let user = pod_affinity(&rr("cache", "ns", own), "cache").unwrap();
        assert!(user.pod_anti_affinity.is_none());
        let spread = json!({"topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
        ]});
        assert_eq!(pod_affinity(&rr("cache", "ns", spread), "cache"), None);
    }
}
