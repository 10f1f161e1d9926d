//! The headless Service (pod DNS) and the client-facing `-master` / `-replicas` Services.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Owner;
use crate::crd::RedisReplication;
use crate::names;

fn port() -> ServicePort {
    ServicePort {
        name: Some("redis".to_string()),
        port: names::PORT,
        target_port: Some(IntOrString::String("redis".to_string())),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

/// `<name>-headless`: gives every pod `<pod>.<name>-headless.<ns>.svc.<domain>`, published
/// before readiness so replicas can resolve a master that is still loading.
pub fn headless(owner: &Owner) -> Service {
    Service {
        metadata: owner.child_meta(names::headless_service(&owner.name)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names::selector_labels(&owner.name)),
            ports: Some(vec![port()]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn client_service(rr: &RedisReplication, owner: &Owner, name: String, role: &str) -> Service {
    let mut meta = owner.child_meta(name);
    if !rr.spec.service.annotations.is_empty() {
        meta.annotations = Some(rr.spec.service.annotations.clone());
    }
    let mut selector = names::selector_labels(&owner.name);
    selector.insert(names::ROLE_LABEL.to_string(), role.to_string());
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some(rr.spec.service.type_.as_str().to_string()),
            selector: Some(selector),
            ports: Some(
                std::iter::once(port())
                    .chain(super::tls::service_port(rr))
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// `<name>-master`: selects the pod the operator labelled as master.
pub fn master(rr: &RedisReplication, owner: &Owner) -> Service {
    client_service(
        rr,
        owner,
        names::master_service(&owner.name),
        names::ROLE_MASTER,
    )
}

/// `<name>-replicas`: read traffic to the replicas.
pub fn replicas(rr: &RedisReplication, owner: &Owner) -> Service {
    client_service(
        rr,
        owner,
        names::replicas_service(&owner.name),
        names::ROLE_REPLICA,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use serde_json::json;

    #[test]
    fn headless_service_publishes_not_ready_pods() {
        let r = rr("cache", "prod", json!({}));
        let s = headless(&Owner::of(&r).unwrap());
        assert_eq!(s.metadata.name.as_deref(), Some("cache-headless"));
        let spec = s.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(spec.publish_not_ready_addresses, Some(true));
        assert_eq!(spec.selector, Some(names::selector_labels("cache")));
        assert_eq!(spec.ports.unwrap()[0].port, 6379);
    }

    #[test]
    fn master_and_replicas_select_by_role_label() {
        let r = rr(
            "cache",
            "prod",
            json!({"service": {"type": "LoadBalancer", "annotations": {"a": "b"}}}),
        );
        let o = Owner::of(&r).unwrap();
        let m = master(&r, &o);
        assert_eq!(m.metadata.name.as_deref(), Some("cache-master"));
        assert_eq!(m.metadata.annotations.unwrap()["a"], "b");
        let ms = m.spec.unwrap();
        assert_eq!(ms.type_.as_deref(), Some("LoadBalancer"));
        let sel = ms.selector.unwrap();
        assert_eq!(sel["tandem.dev/role"], "master");
        assert_eq!(sel["app.kubernetes.io/instance"], "cache");
        let rs = replicas(&r, &o);
        assert_eq!(rs.metadata.name.as_deref(), Some("cache-replicas"));
        assert_eq!(
            rs.spec.unwrap().selector.unwrap()["tandem.dev/role"],
            "replica"
        );
    }
}
