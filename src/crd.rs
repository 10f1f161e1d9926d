//! The `RedisReplication` API (`tandem.dev/v1alpha1`): the Rust types are the single source of
//! truth for the CRD; `tandem-operator crd` prints it and `crds/` holds the checked-in copy.

// The repeated `type_ = ...` inside the kube(printcolumn(...)) attributes are distinct columns.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, PodSecurityContext, ResourceRequirements, SecurityContext,
    Toleration, TopologySpreadConstraint,
};
pub use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A replicated set of `tandem-server` pods: one master and `replicas - 1` followers.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "tandem.dev",
    version = "v1alpha1",
    kind = "RedisReplication",
    namespaced,
    status = "RedisReplicationStatus",
    derive = "PartialEq",
    shortname = "rr",
    shortname = "redisrepl",
    category = "tandem",
    // Uninstalling the chart must not delete every RedisReplication with the CRD.
    annotation("helm.sh/resource-policy", "keep"),
    doc = "A Redis-compatible master/replica set run by the Tandem operator",
    printcolumn(name = "Master", type_ = "string", json_path = ".status.master"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = Rule::new(
    "!has(self.replication) || !has(self.replication.minReplicasToWrite) || self.replication.minReplicasToWrite < self.replicas"
).message("replication.minReplicasToWrite must be lower than replicas"))]
#[serde(rename_all = "camelCase")]
pub struct RedisReplicationSpec {
    /// Pods in the set: one master plus `replicas - 1` followers.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: i32,
    /// Server image; defaults to the operator's `--server-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Password for both `requirepass` and `masterauth`.
    #[serde(default)]
    pub auth: AuthSpec,
    #[serde(default)]
    pub persistence: PersistenceSpec,
    #[serde(default)]
    pub replication: ReplicationSpec,
    #[serde(default)]
    pub failover: FailoverSpec,
    /// Extra redis.conf directives (name -> value). Directives the operator manages
    /// (port, dir, requirepass, masterauth, replicaof, ...) are rejected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Server container resources. When absent: requests 100m CPU and 128Mi memory, a
    /// 256Mi memory limit; `{}` sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// `maxmemory` is set to the container memory limit times this ratio, unless `config`
    /// sets `maxmemory` or there is no memory limit; 0 turns it off.
    #[serde(default = "default_maxmemory_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub maxmemory_ratio: f64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Pod-level security context; the operator's non-root default applies when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    /// Container security context; the operator's restricted default applies when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default)]
    pub service: ServiceSpec,
    #[serde(default)]
    pub pod_disruption_budget: PdbSpec,
    /// A NetworkPolicy restricting who reaches the pods (off unless enabled).
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,
    /// TLS for clients and replication, certificates from a `kubernetes.io/tls` Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

fn default_maxmemory_ratio() -> f64 {
    0.8
}
fn default_replicas() -> i32 {
    3
}
fn default_true() -> bool {
    true
}
fn default_password_key() -> String {
    "password".to_string()
}
fn default_fanout() -> i32 {
    2
}
/// Default of `failover.downAfterSeconds` (also what a negative value falls back to).
pub const DEFAULT_DOWN_AFTER_SECONDS: u64 = 10;

fn default_down_after() -> i32 {
    DEFAULT_DOWN_AFTER_SECONDS as i32
}
fn default_max_unavailable() -> i32 {
    1
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Existing Secret with the password; when absent the operator generates `<name>-auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub secret_name: Option<String>,
    /// Key of the password inside the Secret.
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1))]
    pub key: String,
    /// ACL users for applications, rendered as `user` directives (passwords as SHA-256
    /// hashes in an operator-owned Secret, never in the ConfigMap).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<AclUserSpec>,
    /// Also render the operator's least-privilege user `tandem-operator` (probes, role
    /// changes, replication as `masteruser`), so the default user can be restricted.
    #[serde(default)]
    pub internal_user: bool,
    /// Render `user default off`: clients must log in as a user of `users`. Only with
    /// `internalUser` (the operator and the replicas then need no default user).
    #[serde(default)]
    pub disable_default_user: bool,
}

impl Default for AuthSpec {
    fn default() -> Self {
        AuthSpec {
            secret_name: None,
            key: default_password_key(),
            users: Vec::new(),
            internal_user: false,
            disable_default_user: false,
        }
    }
}

/// One ACL user of `auth.users`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AclUserSpec {
    /// User name: letters, digits, `.`, `_`, `-`; not `default` nor `tandem-operator`.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// Where the user's password is (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeyRef>,
    /// ACL rules in Redis syntax, separated by spaces, e.g. `~app:* +@read +@write`.
    /// Password rules (`>`, `<`, `#`, `!`, `nopass`, `resetpass`, `reset`) are refused: the
    /// password comes from the Secret.
    #[serde(default)]
    pub rules: String,
}

/// A key of a Secret in the set's namespace.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1))]
    pub key: String,
}

/// `spec.networkPolicy`: when enabled, only the listed peers reach the pods. Each list left
/// out takes its default; an empty list admits nobody from that group.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    #[serde(default)]
    pub enabled: bool,
    /// Clients allowed to the Redis port; default: every pod of the set's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<NetworkPolicyPeer>>,
    /// The operator's pods, allowed to the Redis port; default: pods labelled
    /// `app.kubernetes.io/name: tandem-operator` in any namespace (the chart's label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<Vec<NetworkPolicyPeer>>,
    /// Who may scrape the admin/metrics port; default: pods labelled
    /// `app.kubernetes.io/name: prometheus` in any namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_from: Option<Vec<NetworkPolicyPeer>>,
}

/// `spec.tls`: a TLS port next to the plain one, certificates mounted from `secretName`
/// (`tls.crt`, `tls.key`, `ca.crt`, the layout cert-manager writes) and re-read by the
/// servers when the Secret changes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Secret with `tls.crt`, `tls.key` and `ca.crt`.
    #[schemars(length(min = 1))]
    pub secret_name: String,
    /// When set, the operator creates a cert-manager `Certificate` writing `secretName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerRef>,
    /// Client certificates: `no` (passwords only), `optional`, or `yes` (required).
    #[serde(default)]
    pub auth_clients: TlsAuthClients,
    /// Replicas connect to their master over TLS.
    #[serde(default = "default_true")]
    pub replication: bool,
    /// The `TLSCertificate` condition turns False this many days before expiry.
    #[serde(default = "default_expiry_warning_days")]
    #[schemars(range(min = 0))]
    pub expiry_warning_days: i32,
}

fn default_expiry_warning_days() -> i32 {
    14
}

/// A cert-manager issuer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    #[schemars(length(min = 1))]
    pub name: String,
    /// `Issuer` or `ClusterIssuer` (or an external issuer's kind).
    #[serde(default = "default_issuer_kind")]
    pub kind: String,
    #[serde(default = "default_issuer_group")]
    pub group: String,
}

fn default_issuer_kind() -> String {
    "Issuer".to_string()
}
fn default_issuer_group() -> String {
    "cert-manager.io".to_string()
}

/// `tls-auth-clients`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsAuthClients {
    #[default]
    No,
    Optional,
    Yes,
}

impl TlsAuthClients {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsAuthClients::No => "no",
            TlsAuthClients::Optional => "optional",
            TlsAuthClients::Yes => "yes",
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    Always,
    #[default]
    Everysec,
    No,
}

impl AppendFsync {
    pub fn as_str(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
            AppendFsync::No => "no",
        }
    }
}

/// What happens to the PVCs when the RedisReplication is deleted.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
pub enum Retention {
    #[default]
    Retain,
    Delete,
}

/// StatefulSet volume claim templates are immutable, so storage can be neither added, removed
/// nor resized through the spec: the API server rejects such changes up front.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.storage) == has(oldSelf.storage)").message(
    "persistence.storage cannot be added or removed after creation"
))]
#[serde(rename_all = "camelCase")]
pub struct PersistenceSpec {
    #[serde(default)]
    pub appendonly: bool,
    #[serde(default)]
    pub appendfsync: AppendFsync,
    /// RDB snapshot rules, each `"<seconds> <changes>"`; empty disables snapshots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub save: Vec<String>,
    /// A PVC per pod; emptyDir when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// PVC retention when the resource is deleted.
    #[serde(default)]
    pub retention: Retention,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, e.g. `1Gi`.
    #[schemars(length(min = 1))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storage.size is immutable"))]
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storageClassName is immutable"))]
    pub storage_class_name: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Every replica follows the master.
    #[default]
    Star,
    /// Multi-level: pod i follows pod (i-1)/fanout.
    Chain,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationSpec {
    #[serde(default)]
    pub topology: Topology,
    /// Followers per upstream in the chain topology.
    #[serde(default = "default_fanout")]
    #[schemars(range(min = 1))]
    pub fanout: i32,
    /// `repl-backlog-size`, e.g. `1mb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog_size: Option<String>,
    /// `min-replicas-to-write`: the master refuses writes (`-NOREPLICAS`) unless this many
    /// replicas acknowledged within `minReplicasMaxLag` seconds, so a master cut off from its
    /// replicas (paused, partitioned) stops taking writes that a failover would lose. Unset:
    /// 1 when the set has replicas (replicas >= 2), else off; 0 turns it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_replicas_to_write: Option<i32>,
    /// `min-replicas-max-lag` in seconds. Unset: half of `failover.downAfterSeconds` (at
    /// least 1), so the old master stops taking writes before a replica is promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas_max_lag: Option<i32>,
    #[serde(default)]
    pub diskless_sync: bool,
}

impl Default for ReplicationSpec {
    fn default() -> Self {
        ReplicationSpec {
            topology: Topology::Star,
            fanout: default_fanout(),
            backlog_size: None,
            min_replicas_to_write: None,
            min_replicas_max_lag: None,
            diskless_sync: false,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_down_after")]
    #[schemars(range(min = 1))]
    pub down_after_seconds: i32,
}

impl Default for FailoverSpec {
    fn default() -> Self {
        FailoverSpec {
            enabled: true,
            down_after_seconds: default_down_after(),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// The client-facing `-master` and `-replicas` Services.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PdbSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_max_unavailable")]
    #[schemars(range(min = 0))]
    pub max_unavailable: i32,
}

impl Default for PdbSpec {
    fn default() -> Self {
        PdbSpec {
            enabled: true,
            max_unavailable: default_max_unavailable(),
        }
    }
}

/// Observed state, written only by the operator.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisReplicationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Provisioning, Ready, Degraded or Invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Name of the master pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Increments at every promotion.
    #[serde(default)]
    pub epoch: i64,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<PodReplicationStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<LastFailover>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Since when (RFC 3339) the recorded master has not answered, while it does not: the
    /// time of an outage lives here, so condition messages stay the same during it and the
    /// status is not rewritten on every probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_unreachable_since: Option<String>,
    /// A promotion the operator has started and not yet recorded (written before the first
    /// REPLICAOF, cleared with the new `master`/`epoch`); an operator restarted mid-failover
    /// finishes it towards the same pod and epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_in_progress: Option<FailoverInProgressStatus>,
    /// The certificate served (from `spec.tls.secretName`), when TLS is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsStatus>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsStatus {
    pub secret_name: String,
    /// Expiry (RFC 3339) of the certificate in the Secret, when it can be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverInProgressStatus {
    /// The pod being promoted.
    pub target: String,
    /// The epoch the promotion records.
    pub epoch: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodReplicationStatus {
    pub name: String,
    /// `master` or `replica`.
    pub role: String,
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_up: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<i64>,
    /// Pod DNS name this pod replicates from (replicas only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastFailover {
    pub time: String,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub duration_ms: i64,
    /// Upper bound (ms) of how long after the operator last saw the old master answer it
    /// could still accept writes that the new master does not have (see docs/failover.md);
    /// absent when no bound is known (min-replicas-to-write off and the old master not
    /// reachable at the promotion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_write_window_ms: Option<i64>,
}

/// Client endpoints as `host:port`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    pub master: String,
    pub replicas: String,
    pub headless: String,
}

/// Where the generated CRD is checked in, relative to the repository root.
pub const CRD_FILE: &str = "crds/redisreplications.tandem.dev.yaml";
/// The chart's copy, wrapped in a values toggle (templates/, so `helm upgrade` upgrades it).
pub const CHART_CRD_FILE: &str = "charts/tandem-operator/templates/crd.yaml";

/// The chart template holding the CRD.
pub fn chart_crd_template() -> Result<String, serde_saphyr::SerializeError> {
    Ok(format!(
        "{{{{- if .Values.crd.install }}}}\n{}{{{{- end }}}}\n",
        crd_yaml()?
    ))
}

/// The CRD as YAML, exactly as checked in under `crds/` and the chart.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let crd = RedisReplication::crd();
    Ok(format!(
        "# Generated by `tandem-operator crd`; do not edit.\n{}",
        serde_saphyr::to_string(&crd)?
    ))
}
