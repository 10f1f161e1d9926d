//! The resource types the local API serves: the built-in kinds the operator uses plus
//! the kinds of registered CustomResourceDefinitions.

use serde_json::{json, Value};

use super::error::ApiError;

/// A served resource: one (group, version, plural) with its kind and scope.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    /// True for kinds defined by a CustomResourceDefinition.
    pub custom: bool,
    /// additionalPrinterColumns of a CRD version.
    pub printer_columns: Vec<PrinterColumn>,
}

/// One additionalPrinterColumn of a CRD version.
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    /// integer, number, string, boolean or date.
    pub ty: String,
    pub json_path: String,
    /// 0: always shown; more: only with `-o wide`.
    pub priority: i64,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn is_crd(&self) -> bool {
        self.group == "apiextensions.k8s.io" && self.plural == "customresourcedefinitions"
    }

    /// events.k8s.io/v1 Events share storage with core v1 Events (as in a real
    /// cluster) and are converted on the way in and out.
    pub fn is_events_v1(&self) -> bool {
        self.group == "events.k8s.io" && self.plural == "events"
    }

    /// The (group, plural) the objects are stored under.
    pub fn storage(&self) -> (&str, &str) {
        if self.is_events_v1() {
            ("", "events")
        } else {
            (&self.group, &self.plural)
        }
    }

    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.plural == "namespaces"
    }

    /// The verbs advertised in discovery.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

/// Discovery categories of the built-in kinds, as a real API server lists them: `all` is
/// what `kubectl get all` shows (workloads and Services, not configuration or Events).
fn builtin_categories(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "pods") | ("", "services") | ("apps", "statefulsets") => &["all"],
        _ => &[],
    }
}

#[allow(clippy::too_many_arguments)]
fn bt(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: builtin_categories(group, plural)
            .iter()
            .map(|c| c.to_string())
            .collect(),
        status_subresource: status,
        custom: false,
        printer_columns: Vec::new(),
    }
}

/// The built-in kinds.
pub fn builtin_types() -> Vec<ResourceType> {
    vec![
        bt("", "v1", "ConfigMap", "configmaps", true, &["cm"], false),
        bt("", "v1", "Secret", "secrets", true, &[], false),
        bt("", "v1", "Service", "services", true, &["svc"], true),
        bt("", "v1", "Pod", "pods", true, &["po"], true),
        bt("", "v1", "Event", "events", true, &["ev"], false),
        bt(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            &["pvc"],
            true,
        ),
        bt("", "v1", "Namespace", "namespaces", false, &["ns"], true),
        bt(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            false,
        ),
        bt("", "v1", "Endpoints", "endpoints", true, &["ep"], false),
        bt(
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            &["sts"],
            true,
        ),
        bt(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
            true,
        ),
        bt(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
            &["netpol"],
            false,
        ),
        bt(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            false,
        ),
        bt(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            false,
        ),
        bt(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
            &[],
            false,
        ),
        bt(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            true,
        ),
    ]
}

fn s(v: &Value, p: &str) -> String {
    v.pointer(p)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn str_list(v: &Value, p: &str) -> Vec<String> {
    v.pointer(p)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Check the parts of a CustomResourceDefinition the local API relies on.
pub fn validate_crd(obj: &Value) -> Result<(), ApiError> {
    let name = s(obj, "/metadata/name");
    let group = s(obj, "/spec/group");
    let plural = s(obj, "/spec/names/plural");
    let kind = s(obj, "/spec/names/kind");
    let inv = |d: &str| Err(ApiError::invalid("CustomResourceDefinition", &name, d));
    if group.is_empty() {
        return inv("spec.group: Required value");
    }
    if plural.is_empty() {
        return inv("spec.names.plural: Required value");
    }
    if kind.is_empty() {
        return inv("spec.names.kind: Required value");
    }
    if name != format!("{plural}.{group}") {
        return inv(&format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let scope = s(obj, "/spec/scope");
    if scope != "Namespaced" && scope != "Cluster" {
        return inv(&format!(
            "spec.scope: Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""
        ));
    }
    let versions = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        return inv("spec.versions: Invalid value: []: must have exactly one version marked as storage version");
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage != 1 {
        return inv(
            "spec.versions: Invalid value: must have exactly one version marked as storage version",
        );
    }
    Ok(())
}

/// The served resource types of a (validated) CustomResourceDefinition.
pub fn crd_types(obj: &Value) -> Vec<ResourceType> {
    let group = s(obj, "/spec/group");
    let plural = s(obj, "/spec/names/plural");
    let kind = s(obj, "/spec/names/kind");
    let mut singular = s(obj, "/spec/names/singular");
    if singular.is_empty() {
        singular = kind.to_lowercase();
    }
    let namespaced = s(obj, "/spec/scope") == "Namespaced";
    let short_names = str_list(obj, "/spec/names/shortNames");
    let categories = str_list(obj, "/spec/names/categories");
    let versions = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .map(|v| ResourceType {
            group: group.clone(),
            version: s(v, "/name"),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced,
            short_names: short_names.clone(),
            categories: categories.clone(),
            status_subresource: v.pointer("/subresources/status").is_some(),
            custom: true,
            printer_columns: v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .map(|cols| {
                    cols.iter()
                        .map(|c| PrinterColumn {
                            name: s(c, "/name"),
                            ty: s(c, "/type"),
                            json_path: s(c, "/jsonPath"),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        })
                        .filter(|c| !c.name.is_empty() && !c.json_path.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

/// The status the real API server's CRD controllers would write once the names are
/// accepted and the CRD is established.
pub fn crd_status(obj: &Value, now: &str) -> Value {
    let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let storage: Vec<String> = obj
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .map(|v| s(v, "/name"))
                .collect()
        })
        .unwrap_or_default();
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    json!({
        "acceptedNames": names,
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": storage,
    })
}

/// Field renames between core v1 Event (left) and events.k8s.io/v1 Event (right).
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

fn rename(obj: &Value, to_events: bool) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        for (core, ev) in EVENT_FIELDS {
            let (from, to) = if to_events { (core, ev) } else { (ev, core) };
            if let Some(v) = m.remove(*from) {
                m.insert(to.to_string(), v);
            }
        }
    }
    o
}

/// A stored (core v1) Event as an events.k8s.io/v1 Event (apiVersion/kind not set).
pub fn core_event_to_events_v1(obj: &Value) -> Value {
    rename(obj, true)
}

/// An events.k8s.io/v1 Event as a core v1 Event, with core apiVersion/kind.
pub fn events_v1_to_core_event(obj: &Value) -> Value {
    let mut o = rename(obj, false);
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!("v1"));
        m.insert("kind".into(), json!("Event"));
    }
    o
}
