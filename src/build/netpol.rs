//! The set's NetworkPolicy (`spec.networkPolicy.enabled`): ingress to the Redis port only
//! from the set's own pods (replication), the operator's pods (probes, role changes) and the
//! configured clients; ingress to the admin port (`/metrics`, `/readyz`) only from the
//! configured Prometheus peers. Everything else is denied by the policy selecting the pods.
//!
//! Kubelet probes come from the node, which the common CNIs (Calico, Cilium) admit to its
//! own pods regardless of NetworkPolicy; a CNI that does not would need `metricsFrom` to
//! include the nodes' range.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::ADMIN_PORT;
use super::Owner;
use crate::crd::RedisReplication;
use crate::names;

/// The label the chart puts on the operator's pods (`tandem-operator.selectorLabels`).
pub const OPERATOR_POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "tandem-operator");
/// The label of Prometheus pods as the Prometheus Operator and its chart set it.
pub const PROMETHEUS_POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "prometheus");

/// Pods carrying `label` in any namespace.
fn pods_anywhere(label: (&str, &str)) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector::default()),
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(label.0.to_string(), label.1.to_string())])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

/// Every pod of the policy's own namespace.
fn same_namespace() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    }
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_string()),
        ..NetworkPolicyPort::default()
    }
}

/// The policy, or `None` when `spec.networkPolicy.enabled` is false.
pub fn network_policy(rr: &RedisReplication, owner: &Owner) -> Option<NetworkPolicy> {
    let np = &rr.spec.network_policy;
    if !np.enabled {
        return None;
    }
    let own_pods = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(names::selector_labels(&owner.name)),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    let mut redis_from = vec![own_pods];
    redis_from.extend(
        np.operator
            .clone()
            .unwrap_or_else(|| vec![pods_anywhere(OPERATOR_POD_LABEL)]),
    );
    redis_from.extend(np.from.clone().unwrap_or_else(|| vec![same_namespace()]));
    let metrics_from = np
        .metrics_from
        .clone()
        .unwrap_or_else(|| vec![pods_anywhere(PROMETHEUS_POD_LABEL)]);
    // With spec.tls the same peers reach the TLS port too (see `super::tls`).
    let redis_ports = std::iter::once(names::PORT)
        .chain(rr.spec.tls.as_ref().map(|_| super::tls::TLS_PORT))
        .map(tcp)
        .collect();
    let mut ingress = vec![NetworkPolicyIngressRule {
        from: Some(redis_from),
        ports: Some(redis_ports),
    }];
    // An empty `from` in a rule would admit everyone: an empty list means nobody instead.
    if !metrics_from.is_empty() {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(metrics_from),
            ports: Some(vec![tcp(ADMIN_PORT)]),
        });
    }
    Some(NetworkPolicy {
        metadata: owner.child_meta(names::network_policy(&owner.name)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(names::selector_labels(&owner.name)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".to_string()]),
            ingress: Some(ingress),
            ..NetworkPolicySpec::default()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use serde_json::{json, Value};

    fn policy(spec: Value) -> Option<Value> {
        let r = rr("cache", "prod", spec);
        let owner = Owner::of(&r).unwrap();
        network_policy(&r, &owner).map(|p| serde_json::to_value(p).unwrap())
    }

    #[test]
    fn with_tls_the_redis_peers_reach_the_tls_port_too() {
        let p = policy(json!({"networkPolicy": {"enabled": true},
            "tls": {"secretName": "certs"}}))
        .unwrap();
        assert_eq!(
            p["spec"]["ingress"][0]["ports"],
            json!([{"port": 6379, "protocol": "TCP"}, {"port": 6380, "protocol": "TCP"}])
        );
        let plain = policy(json!({"networkPolicy": {"enabled": true}})).unwrap();
        assert_eq!(
            plain["spec"]["ingress"][0]["ports"],
            json!([{"port": 6379, "protocol": "TCP"}])
        );
    }

    #[test]
    fn no_policy_unless_enabled() {
        assert!(policy(json!({})).is_none());
        assert!(policy(json!({"networkPolicy": {"enabled": false}})).is_none());
    }

    #[test]
    fn default_policy_admits_own_pods_operator_and_namespace_to_redis_and_prometheus_to_admin() {
        let p = policy(json!({"networkPolicy": {"enabled": true}})).unwrap();
        assert_eq!(p["metadata"]["name"], "cache");
        assert_eq!(p["metadata"]["namespace"], "prod");
        let own = json!({"matchLabels": {"app.kubernetes.io/name": "tandem", "app.kubernetes.io/instance": "cache"}});
        assert_eq!(p["spec"]["podSelector"], own);
        assert_eq!(p["spec"]["policyTypes"], json!(["Ingress"]));
        assert_eq!(
            p["spec"]["ingress"],
            json!([
                {
                    "from": [
                        {"podSelector": own},
                        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "tandem-operator"}}},
                        {"podSelector": {}}
                    ],
                    "ports": [{"port": 6379, "protocol": "TCP"}]
                },
                {
                    "from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
                    "ports": [{"port": 9121, "protocol": "TCP"}]
                }
            ])
        );
    }

    #[test]
    fn configured_peers_replace_the_defaults_and_empty_metrics_admits_nobody() {
        let app = json!({"podSelector": {"matchLabels": {"role": "app"}}});
        let op = json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ops"}}, "podSelector": {"matchLabels": {"app": "op"}}});
        let p = policy(json!({"networkPolicy": {
            "enabled": true, "from": [app], "operator": [op], "metricsFrom": []
        }}))
        .unwrap();
        let ingress = p["spec"]["ingress"].as_array().unwrap();
        assert_eq!(ingress.len(), 1, "no admin-port rule: {ingress:?}");
        let from = ingress[0]["from"].as_array().unwrap();
        assert_eq!(from.len(), 3);
        assert_eq!(from[1], op);
        assert_eq!(from[2], app);
        // No rule with an empty `from` (which would admit every source).
        assert!(ingress
            .iter()
            .all(|r| !r["from"].as_array().unwrap().is_empty()));
    }
}
