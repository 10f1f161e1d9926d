//! The StatefulSet: stable pod identities behind the headless Service, the password from the
//! Secret as a mounted file only, probes, PVC templates when storage is set, a non-root
//! read-only-root-filesystem default security context, and the user's pod shape fields.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecurityContext, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::{self, AUTH_DIR, CONFIG_DIR, DATA_DIR, RUN_DIR};
use super::{resources, Owner, Params};
use crate::crd::{RedisReplication, Retention, StorageSpec};
use crate::names;

/// UID/GID the server runs as unless the user sets a pod security context.
pub const RUN_AS: i64 = 10001;

fn default_pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

fn default_container_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// An HTTP GET probe on the server's admin port (`tandem-admin-port`).
fn http_probe(path: &str, initial: i32, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("admin".to_string()),
            scheme: Some("HTTP".to_string()),
            ..HTTPGetAction::default()
        }),
        initial_delay_seconds: Some(initial),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str, memory: bool) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: memory.then(|| "Memory".to_string()),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

pub fn statefulset(
    rr: &RedisReplication,
    owner: &Owner,
    params: &Params,
    config_map: &k8s_openapi::api::core::v1::ConfigMap,
) -> StatefulSet {
    let spec = &rr.spec;
    let name = &owner.name;

    // User labels first so they can never override the selector labels.
    let mut pod_labels: BTreeMap<String, String> = spec.pod_labels.clone();
    pod_labels.extend(names::labels(name));
    let mut pod_annotations = spec.pod_annotations.clone();
    pod_annotations.insert(
        names::CONFIG_HASH_ANNOTATION.to_string(),
        config::config_hash(rr, config_map),
    );

    let storage = rr.spec.persistence.storage.as_ref();
    StatefulSet {
        metadata: owner.child_meta(names::statefulset(name)),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(names::headless_service(name)),
            selector: LabelSelector {
                match_labels: Some(names::selector_labels(name)),
                ..LabelSelector::default()
            },
            // Parallel starts are safe because every pod without an upstream starts fenced
            // (no writes, no syncs served) until the operator assigns its role: two pods
            // starting at once cannot both become a writable master (the split brain of
            // Bitnami #17047). Ordered starts would only slow recovery.
            pod_management_policy: Some("Parallel".to_string()),
            // The operator replaces pods itself (replicas one at a time, each in sync before
            // the next, then a switchover before the master), see controller::rollout; the
            // StatefulSet controller must not restart pods on a template change.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_string()),
                rolling_update: None,
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(rr, params, name)),
            },
            volume_claim_templates: storage.map(|s| vec![data_claim(name, s)]),
            persistent_volume_claim_retention_policy: storage.map(|_| {
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(retention(rr).to_string()),
                    when_scaled: Some("Retain".to_string()),
                }
            }),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// The pod's volumes: config, auth (the password file), in-memory run dir, tmp, and data when
/// there is no PersistentVolumeClaim.
fn volumes(rr: &RedisReplication, name: &str) -> Vec<Volume> {
    let spec = &rr.spec;
    let mut volumes = vec![
        Volume {
            name: "config".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(name),
                default_mode: Some(0o444),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        // `<name>-credentials`, kept by the operator (see build::credentials).
        super::credentials::volume(name),
        // The assembled runtime config (with the password) lives only in memory.
        empty_dir("run", true),
        // The server may write temp files (RDB/AOF rewrites) only under /data and /tmp.
        empty_dir("tmp", false),
    ];
    if spec.persistence.storage.is_none() {
        volumes.push(empty_dir("data", false));
    }
    volumes.extend(super::acl_users::volume(rr, name));
    volumes.extend(super::tls::volume(rr));
    volumes
}

/// The server container: image, start script, ports, probes and mounts.
fn container(rr: &RedisReplication, params: &Params) -> Container {
    let spec = &rr.spec;
    Container {
        name: "server".to_string(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| params.server_image.clone()),
        ),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        command: Some(vec![
            "/bin/sh".to_string(),
            format!("{CONFIG_DIR}/start.sh"),
        ]),
        ports: Some(vec![
            ContainerPort {
                name: Some("redis".to_string()),
                container_port: names::PORT,
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("admin".to_string()),
                container_port: config::ADMIN_PORT,
                protocol: Some("TCP".to_string()),
                ..ContainerPort::default()
            },
        ]),
        // Replication-aware readiness, answered by the server itself: a master is Ready
        // only when unfenced (writable), a replica only with its link up and its initial
        // sync done. The rolling update waits on it between pods.
        readiness_probe: Some(http_probe("/readyz", 2, 2, 2)),
        // Liveness only asks whether the process answers; a fenced or syncing pod is alive.
        liveness_probe: Some(http_probe("/healthz", 15, 10, 6)),
        resources: Some(resources::server_resources(rr)),
        security_context: Some(
            spec.security_context
                .clone()
                .unwrap_or_else(default_container_security_context),
        ),
        volume_mounts: Some(
            [
                mount("config", CONFIG_DIR, true),
                mount("auth", AUTH_DIR, true),
                mount("run", RUN_DIR, false),
                mount("tmp", "/tmp", false),
                mount("data", DATA_DIR, false),
            ]
            .into_iter()
            .chain(super::acl_users::volume_mount(rr))
            .chain(super::tls::volume_mount(rr))
            .collect(),
        ),
        ..Container::default()
    }
}

/// The pod: the container, volumes and the user's pod shape (scheduling, security, account).
fn pod_spec(rr: &RedisReplication, params: &Params, name: &str) -> PodSpec {
    let spec = &rr.spec;
    PodSpec {
        containers: vec![super::tls::with_port(container(rr, params), rr)],
        volumes: Some(volumes(rr, name)),
        security_context: Some(
            spec.pod_security_context
                .clone()
                .unwrap_or_else(default_pod_security_context),
        ),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty())
            .then(|| spec.image_pull_secrets.clone()),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
        affinity: resources::pod_affinity(rr, name),
        topology_spread_constraints: (!spec.topology_spread_constraints.is_empty())
            .then(|| spec.topology_spread_constraints.clone()),
        priority_class_name: spec.priority_class_name.clone(),
        service_account_name: spec.service_account_name.clone(),
        automount_service_account_token: Some(false),
        termination_grace_period_seconds: Some(30),
        ..PodSpec::default()
    }
}

/// The `data` volume claim template.
fn data_claim(name: &str, s: &StorageSpec) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".to_string()),
            labels: Some(names::labels(name)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: s.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(s.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

fn retention(rr: &RedisReplication) -> &'static str {
    match rr.spec.persistence.retention {
        Retention::Retain => "Retain",
        Retention::Delete => "Delete",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use serde_json::json;

    fn sts(spec: serde_json::Value) -> StatefulSet {
        let r = rr("cache", "prod", spec);
        let o = Owner::of(&r).unwrap();
        let p = Params::default();
        let cm = config::config_map(&r, &o, &p);
        statefulset(&r, &o, &p, &cm)
    }

    fn pod_spec(s: &StatefulSet) -> &PodSpec {
        s.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    #[test]
    fn server_pods_get_default_resources_spreading_and_a_derived_maxmemory() {
        let s = sts(json!({"replicas": 3}));
        let p = pod_spec(&s);
        let res = p.containers[0].resources.as_ref().unwrap();
        assert_eq!(res.limits.as_ref().unwrap()["memory"].0, "256Mi");
        assert_eq!(res.requests.as_ref().unwrap()["cpu"].0, "100m");
        let anti = p
            .affinity
            .as_ref()
            .unwrap()
            .pod_anti_affinity
            .as_ref()
            .unwrap();
        let preferred = anti
            .preferred_during_scheduling_ignored_during_execution
            .as_ref()
            .unwrap();
        assert_eq!(
            preferred[0].pod_affinity_term.topology_key,
            "kubernetes.io/hostname"
        );
        assert!(anti
            .required_during_scheduling_ignored_during_execution
            .is_none());
        let r = rr("cache", "prod", json!({"replicas": 3}));
        let conf = config::server_config(&r, &Owner::of(&r).unwrap());
        assert!(conf.contains("\nmaxmemory 214748364\n"), "{conf}");

        // The user's own placement and resources replace the defaults.
        let own = sts(json!({
            "resources": {"limits": {"memory": "1Gi", "cpu": "2"}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}]
        }));
        let p = pod_spec(&own);
        assert!(p.affinity.is_none());
        assert_eq!(p.topology_spread_constraints.as_ref().unwrap().len(), 1);
        let res = p.containers[0].resources.as_ref().unwrap();
        assert_eq!(res.limits.as_ref().unwrap()["cpu"].0, "2");
        assert!(res.requests.is_none());
    }

    #[test]
    fn statefulset_uses_headless_service_and_stable_selector() {
        let s = sts(
            json!({"replicas": 3, "podLabels": {"app.kubernetes.io/instance": "evil", "team": "a"}}),
        );
        assert_eq!(s.metadata.name.as_deref(), Some("cache"));
        let spec = s.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.service_name.as_deref(), Some("cache-headless"));
        assert_eq!(
            spec.selector.match_labels,
            Some(names::selector_labels("cache"))
        );
        let labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(labels["app.kubernetes.io/instance"], "cache");
        assert_eq!(labels["team"], "a");
    }

    #[test]
    fn password_only_from_secret_volume_never_args_or_env() {
        let s = sts(json!({"auth": {"secretName": "mine", "key": "pw"}}));
        let ps = pod_spec(&s);
        let c = &ps.containers[0];
        assert!(c.env.is_none(), "no env at all, so no literal password");
        let args: Vec<&String> = c.command.iter().chain(c.args.iter()).flatten().collect();
        assert_eq!(args, ["/bin/sh", "/etc/tandem/config/start.sh"]);
        let auth = ps
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "auth")
            .unwrap();
        // The operator's copy, whatever the user's Secret is called, so a password change or
        // another `auth.secretName` never changes the pod template.
        let sec = auth.secret.as_ref().unwrap();
        assert_eq!(sec.secret_name.as_deref(), Some("cache-credentials"));
        let items: Vec<(&str, &str)> = sec
            .items
            .iter()
            .flatten()
            .map(|i| (i.key.as_str(), i.path.as_str()))
            .collect();
        assert_eq!(
            items,
            [("requirepass", "requirepass"), ("masterauth", "masterauth")]
        );
        assert_eq!(
            ps,
            pod_spec(&sts(json!({"auth": {"secretName": "other", "key": "k"}}))),
            "the user's Secret does not reach the pod template"
        );
        let run = ps
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "run")
            .unwrap();
        assert_eq!(
            run.empty_dir.as_ref().unwrap().medium.as_deref(),
            Some("Memory")
        );
    }

    #[test]
    fn default_security_is_non_root_read_only_root() {
        let s = sts(json!({}));
        let ps = pod_spec(&s);
        assert_eq!(
            ps.security_context.as_ref().unwrap().run_as_non_root,
            Some(true)
        );
        let c = ps.containers[0].security_context.as_ref().unwrap();
        assert_eq!(c.read_only_root_filesystem, Some(true));
        assert_eq!(c.allow_privilege_escalation, Some(false));
        let c = &ps.containers[0];
        assert_eq!(c.image.as_deref(), Some("tandem-server:latest"));
    }

    #[test]
    fn storage_gives_pvc_templates_else_empty_dir() {
        let s = sts(
            json!({"persistence": {"storage": {"size": "2Gi", "storageClassName": "fast"}, "retention": "Delete"}}),
        );
        let spec = s.spec.as_ref().unwrap();
        let t = &spec.volume_claim_templates.as_ref().unwrap()[0];
        assert_eq!(t.metadata.name.as_deref(), Some("data"));
        let ts = t.spec.as_ref().unwrap();
        assert_eq!(ts.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            ts.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"],
            Quantity("2Gi".into())
        );
        assert_eq!(
            spec.persistent_volume_claim_retention_policy
                .as_ref()
                .unwrap()
                .when_deleted
                .as_deref(),
            Some("Delete")
        );
        assert!(!pod_spec(&s)
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .any(|v| v.name == "data"));

        let e = sts(json!({}));
        assert!(e.spec.as_ref().unwrap().volume_claim_templates.is_none());
        let data = pod_spec(&e)
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "data")
            .unwrap();
        assert!(data.empty_dir.is_some());
    }

    #[test]
    fn pod_shape_fields_are_passed_through() {
        let s = sts(json!({
            "image": "registry.local/tandem:1",
            "imagePullPolicy": "Always",
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "k", "operator": "Exists"}],
            "priorityClassName": "high",
            "serviceAccountName": "sa",
            "resources": {"limits": {"memory": "1Gi"}},
            "podAnnotations": {"x": "y"}
        }));
        let ps = pod_spec(&s);
        assert_eq!(ps.node_selector.as_ref().unwrap()["disk"], "ssd");
        assert_eq!(ps.tolerations.as_ref().unwrap().len(), 1);
        assert_eq!(ps.priority_class_name.as_deref(), Some("high"));
        assert_eq!(ps.service_account_name.as_deref(), Some("sa"));
        let c = &ps.containers[0];
        assert_eq!(c.image.as_deref(), Some("registry.local/tandem:1"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
        assert!(c.resources.as_ref().unwrap().limits.is_some());
        let ann = s
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap();
        assert_eq!(ann["x"], "y");
        assert!(ann.contains_key(names::CONFIG_HASH_ANNOTATION));
    }

    #[test]
    fn probes_ask_the_admin_port_readyz_and_healthz() {
        let s = sts(json!({}));
        let c = &pod_spec(&s).containers[0];
        let ports: Vec<(Option<&str>, i32)> = c
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| (p.name.as_deref(), p.container_port))
            .collect();
        assert_eq!(ports, [(Some("redis"), 6379), (Some("admin"), 9121)]);
        let r = c.readiness_probe.as_ref().unwrap();
        let get = r.http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some("/readyz"));
        assert_eq!(get.port, IntOrString::String("admin".into()));
        assert_eq!((r.period_seconds, r.failure_threshold), (Some(2), Some(2)));
        assert!(r.tcp_socket.is_none());
        let l = c.liveness_probe.as_ref().unwrap();
        let get = l.http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some("/healthz"));
        assert_eq!(get.port, IntOrString::String("admin".into()));
    }

    #[test]
    fn pods_are_replaced_by_the_operator_not_the_statefulset_controller() {
        let s = sts(json!({"replicas": 3}));
        let spec = s.spec.as_ref().unwrap();
        let u = spec.update_strategy.as_ref().unwrap();
        assert_eq!(u.type_.as_deref(), Some("OnDelete"));
        assert!(u.rolling_update.is_none());
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    }

    #[test]
    fn a_role_change_does_not_touch_the_statefulset() {
        let r = rr("cache", "prod", json!({"replicas": 3}));
        let mut moved = r.clone();
        moved.status = Some(crate::crd::RedisReplicationStatus {
            master: Some("cache-2".into()),
            ..Default::default()
        });
        let p = Params::default();
        let build = |r: &RedisReplication| {
            let o = Owner::of(r).unwrap();
            let cm = config::config_map(r, &o, &p);
            statefulset(r, &o, &p, &cm)
        };
        assert_eq!(build(&r), build(&moved));
    }
}
