//! The StatefulSet controller: pods `<sts>-<i>`, their PersistentVolumeClaims, scale
//! up/down, OnDelete and RollingUpdate, and the StatefulSet status.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::Shared;
use crate::local::api::store::DeleteOptions;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The node name local mode gives every pod.
pub const NODE_NAME: &str = "local";

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// JSON with object keys sorted, so hashes do not depend on key order.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let keys: BTreeSet<&String> = m.keys().collect();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Hash of a pod template (FNV-1a over canonical JSON), as 10 lowercase alphanumerics.
pub fn template_hash(template: &Value) -> String {
    let mut text = String::new();
    canonical(template, &mut text);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10)
        .map(|_| {
            let c = ALPHA[(h % ALPHA.len() as u64) as usize] as char;
            h /= ALPHA.len() as u64;
            c
        })
        .collect()
}

/// The update revision of a StatefulSet: `<sts>-<hash of the template>`.
pub fn update_revision(sts: &Value) -> String {
    format!(
        "{}-{}",
        s(sts, "/metadata/name"),
        template_hash(sts.pointer("/spec/template").unwrap_or(&Value::Null))
    )
}

/// The ordinal of pod `pod` of StatefulSet `sts`.
pub fn ordinal_of(sts: &str, pod: &str) -> Option<i64> {
    crate::names::ordinal(sts, pod).map(i64::from)
}

/// Name of the claim of template `tmpl` for ordinal `i`.
pub fn claim_name(tmpl: &str, sts: &str, i: i64) -> String {
    crate::names::claim(tmpl, sts, i)
}

fn owner_ref(sts: &Value, controller: bool) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": s(sts, "/metadata/name"),
        "uid": s(sts, "/metadata/uid"),
        "controller": controller,
        "blockOwnerDeletion": true,
    })
}

/// The pod of ordinal `i`, from the StatefulSet's current template.
pub fn pod_from_template(sts: &Value, i: i64, revision: &str) -> Value {
    let name = s(sts, "/metadata/name");
    let ns = s(sts, "/metadata/namespace");
    let pod_name = crate::names::pod(name, i);
    let tmpl = sts.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut labels = tmpl
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), json!(pod_name));
    labels.insert(POD_INDEX_LABEL.into(), json!(i.to_string()));
    labels.insert(REVISION_LABEL.into(), json!(revision));
    let mut meta = json!({
        "name": pod_name,
        "namespace": ns,
        "labels": labels,
        "ownerReferences": [owner_ref(sts, true)],
    });
    if let Some(a) = tmpl.pointer("/metadata/annotations") {
        meta["annotations"] = a.clone();
    }
    let mut spec = tmpl.get("spec").cloned().unwrap_or(json!({}));
    if !spec.is_object() {
        spec = json!({});
    }
    spec["hostname"] = json!(pod_name);
    let svc = s(sts, "/spec/serviceName");
    if !svc.is_empty() {
        spec["subdomain"] = json!(svc);
    }
    spec["nodeName"] = json!(NODE_NAME);
    // Claim templates become persistentVolumeClaim volumes (replacing same-named ones).
    let claims: Vec<String> = sts
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| s(t, "/metadata/name").to_string())
        .filter(|n| !n.is_empty())
        .collect();
    if !claims.is_empty() {
        let mut vols: Vec<Value> = spec
            .get("volumes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        vols.retain(|v| !claims.iter().any(|c| s(v, "/name") == c));
        for c in &claims {
            vols.push(json!({
                "name": c,
                "persistentVolumeClaim": {"claimName": claim_name(c, name, i)},
            }));
        }
        spec["volumes"] = json!(vols);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {"phase": "Pending"},
    })
}

/// The claim of template `tmpl` for ordinal `i` (Bound at once).
pub fn pvc_from_template(sts: &Value, tmpl: &Value, i: i64) -> Value {
    let name = s(sts, "/metadata/name");
    let tname = s(tmpl, "/metadata/name");
    let mut labels = tmpl
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    // Like Kubernetes: the pod's selector labels go on the claim too.
    if let Some(sel) = sts
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    {
        for (k, v) in sel {
            labels.insert(k.clone(), v.clone());
        }
    }
    let mut meta = json!({
        "name": claim_name(tname, name, i),
        "namespace": s(sts, "/metadata/namespace"),
        "labels": labels,
    });
    if s(
        sts,
        "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted",
    ) == "Delete"
    {
        meta["ownerReferences"] = json!([owner_ref(sts, false)]);
    }
    let spec = tmpl.get("spec").cloned().unwrap_or(json!({}));
    let mut status = json!({"phase": "Bound"});
    if let Some(m) = spec.get("accessModes") {
        status["accessModes"] = m.clone();
    }
    if let Some(r) = spec.pointer("/resources/requests/storage") {
        status["capacity"] = json!({"storage": r});
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": spec,
        "status": status,
    })
}

/// Running and Ready.
pub fn pod_ready(pod: &Value) -> bool {
    s(pod, "/status/phase") == "Running"
        && pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter()
                    .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
            })
}

/// What one pass of the controller does to one StatefulSet.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Ordinals to create.
    pub create: Vec<i64>,
    /// Pods to delete (condemned by scale down, or replaced by a rolling update).
    pub delete: Vec<String>,
}

/// Plan a pass, given the StatefulSet and its pods by ordinal.
pub fn plan(sts: &Value, pods: &BTreeMap<i64, Value>) -> Plan {
    let replicas = sts
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0);
    let ordered = s(sts, "/spec/podManagementPolicy") != "Parallel";
    let rolling = s(sts, "/spec/updateStrategy/type") != "OnDelete";
    let partition = sts
        .pointer("/spec/updateStrategy/rollingUpdate/partition")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .max(0);
    let revision = update_revision(sts);
    let mut plan = Plan::default();
    let name_of = |p: &Value| s(p, "/metadata/name").to_string();
    let mut condemned: Vec<&Value> = pods
        .iter()
        .filter(|(i, _)| **i >= replicas)
        .map(|(_, p)| p)
        .collect();
    condemned.reverse();
    if ordered {
        for i in 0..replicas {
            match pods.get(&i) {
                None => {
                    plan.create.push(i);
                    return plan;
                }
                Some(p) if !pod_ready(p) => return plan,
                Some(_) => {}
            }
        }
        if let Some(p) = condemned.first() {
            plan.delete.push(name_of(p));
            return plan;
        }
    } else {
        plan.create = (0..replicas).filter(|i| !pods.contains_key(i)).collect();
        plan.delete = condemned.iter().map(|p| name_of(p)).collect();
        if !plan.create.is_empty() || !plan.delete.is_empty() {
            return plan;
        }
    }
    if rolling {
        let all_ready = (0..replicas).all(|i| pods.get(&i).is_some_and(pod_ready));
        if !all_ready {
            return plan;
        }
        for i in (partition..replicas).rev() {
            if let Some(p) = pods.get(&i) {
                if s(p, &format!("/metadata/labels/{REVISION_LABEL}")) != revision {
                    plan.delete.push(name_of(p));
                    break;
                }
            }
        }
    }
    plan
}

/// The StatefulSet status for these pods.
pub fn status(sts: &Value, pods: &BTreeMap<i64, Value>) -> Value {
    let replicas = sts
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
        .max(0);
    let update = update_revision(sts);
    let mut current = s(sts, "/status/currentRevision").to_string();
    let rev_of = |p: &Value| s(p, &format!("/metadata/labels/{REVISION_LABEL}")).to_string();
    let updated = pods.values().filter(|p| rev_of(p) == update).count() as i64;
    if current.is_empty() || (updated == pods.len() as i64 && updated >= replicas) {
        current = update.clone();
    }
    let current_n = pods.values().filter(|p| rev_of(p) == current).count() as i64;
    let ready = pods.values().filter(|p| pod_ready(p)).count() as i64;
    json!({
        "observedGeneration": sts.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0),
        "replicas": pods.len(),
        "readyReplicas": ready,
        "currentReplicas": current_n,
        "updatedReplicas": updated,
        "availableReplicas": ready,
        "currentRevision": current,
        "updateRevision": update,
        "collisionCount": 0,
    })
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| s(r, "/uid") == uid && r.get("controller") == Some(&json!(true)))
        })
}

/// One pass over every StatefulSet.
pub(crate) fn sync(shared: &Shared) {
    let t = &shared.types;
    let store = &shared.store;
    let all_pods = shared.list(&t.pods, None);
    for sts in shared.list(&t.statefulsets, None) {
        if sts.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let name = s(&sts, "/metadata/name").to_string();
        let ns = s(&sts, "/metadata/namespace").to_string();
        let uid = s(&sts, "/metadata/uid").to_string();
        let pods: BTreeMap<i64, Value> = all_pods
            .iter()
            .filter(|p| s(p, "/metadata/namespace") == ns && owned_by(p, &uid))
            .filter_map(|p| ordinal_of(&name, s(p, "/metadata/name")).map(|i| (i, p.clone())))
            .collect();
        let p = plan(&sts, &pods);
        let revision = update_revision(&sts);
        let mut changed = false;
        for i in &p.create {
            for tmpl in sts
                .pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let claim = pvc_from_template(&sts, tmpl, *i);
                let cname = s(&claim, "/metadata/name").to_string();
                if store.get(&t.pvcs, &ns, &cname).is_err() {
                    if let Err(e) = store.create(&t.pvcs, &ns, claim, false) {
                        tracing::warn!("creating claim {ns}/{cname}: {}", e.message);
                    }
                }
            }
            let pod = pod_from_template(&sts, *i, &revision);
            match store.create(&t.pods, &ns, pod, false) {
                Ok(_) => changed = true,
                Err(e) if e.code == 409 => {}
                Err(e) => tracing::warn!("creating pod {ns}/{name}-{i}: {}", e.message),
            }
        }
        for pod in &p.delete {
            if store
                .delete(&t.pods, &ns, pod, &DeleteOptions::default())
                .is_ok()
            {
                changed = true;
            }
        }
        // whenScaled: Delete removes the claims of ordinals above the replica count once
        // their pods are gone.
        if s(
            &sts,
            "/spec/persistentVolumeClaimRetentionPolicy/whenScaled",
        ) == "Delete"
        {
            let replicas = sts
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let tmpls: Vec<String> = sts
                .pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| s(t, "/metadata/name").to_string())
                .collect();
            for pvc in shared.list(&t.pvcs, Some(&ns)) {
                let pname = s(&pvc, "/metadata/name");
                let ord = tmpls.iter().find_map(|tn| {
                    pname
                        .strip_prefix(tn.as_str())
                        .and_then(|r| r.strip_prefix('-'))
                        .and_then(|r| ordinal_of(&name, r))
                });
                if let Some(i) = ord {
                    if i >= replicas
                        && !pods.contains_key(&i)
                        && store
                            .get(&t.pods, &ns, &crate::names::pod(&name, i))
                            .is_err()
                    {
                        let _ = store.delete(&t.pvcs, &ns, pname, &DeleteOptions::default());
                    }
                }
            }
        }
        let pods = if changed {
            shared
                .list(&t.pods, Some(&ns))
                .into_iter()
                .filter(|p| owned_by(p, &uid))
                .filter_map(|p| ordinal_of(&name, s(&p, "/metadata/name")).map(|i| (i, p)))
                .collect()
        } else {
            pods
        };
        let st = status(&sts, &pods);
        if sts.get("status") != Some(&st) {
            let mut obj = sts.clone();
            obj["status"] = st;
            if let Err(e) = store.update(&t.statefulsets, &ns, &name, obj, true, false) {
                if e.code != 409 {
                    tracing::warn!("statefulset {ns}/{name} status: {}", e.message);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(replicas: i64, policy: &str, strategy: &str) -> Value {
        json!({
            "metadata": {"name": "r", "namespace": "default", "uid": "sts-uid", "generation": 3},
            "spec": {
                "replicas": replicas,
                "serviceName": "r-hl",
                "podManagementPolicy": policy,
                "updateStrategy": {"type": strategy},
                "selector": {"matchLabels": {"app": "r"}},
                "template": {
                    "metadata": {"labels": {"app": "r"}, "annotations": {"a": "1"}},
                    "spec": {"containers": [{"name": "server"}],
                             "volumes": [{"name": "data", "emptyDir": {}}]}
                },
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"}
            }
        })
    }

    fn ready_pod(sts: &Value, i: i64, rev: &str) -> Value {
        let mut p = pod_from_template(sts, i, rev);
        p["status"] =
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
        p
    }

    #[test]
    fn pod_from_template_sets_identity() {
        let st = sts(3, "Parallel", "OnDelete");
        let rev = update_revision(&st);
        assert!(rev.starts_with("r-") && rev.len() == 12, "{rev}");
        let p = pod_from_template(&st, 2, &rev);
        assert_eq!(p["metadata"]["name"], "r-2");
        assert_eq!(p["metadata"]["labels"]["app"], "r");
        assert_eq!(p["metadata"]["labels"][POD_NAME_LABEL], "r-2");
        assert_eq!(p["metadata"]["labels"][POD_INDEX_LABEL], "2");
        assert_eq!(p["metadata"]["labels"][REVISION_LABEL], json!(rev));
        assert_eq!(p["metadata"]["annotations"]["a"], "1");
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "sts-uid");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(p["spec"]["hostname"], "r-2");
        assert_eq!(p["spec"]["subdomain"], "r-hl");
        let vols = p["spec"]["volumes"].as_array().unwrap();
        assert_eq!(vols.len(), 1, "the claim replaces the same-named volume");
        assert_eq!(vols[0]["persistentVolumeClaim"]["claimName"], "data-r-2");
        let claim = pvc_from_template(&st, &st["spec"]["volumeClaimTemplates"][0], 2);
        assert_eq!(claim["metadata"]["name"], "data-r-2");
        assert_eq!(claim["status"]["phase"], "Bound");
        assert_eq!(claim["status"]["capacity"]["storage"], "1Gi");
        assert_eq!(claim["metadata"]["ownerReferences"][0]["controller"], false);
    }

    #[test]
    fn revision_hash_is_key_order_independent_and_template_sensitive() {
        let a = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}});
        let b: Value = serde_json::from_str(r#"{"b": {"d": "x", "c": [1, 2]}, "a": 1}"#).unwrap();
        assert_eq!(template_hash(&a), template_hash(&b));
        assert_ne!(template_hash(&a), template_hash(&json!({"a": 2})));
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal_of("r", "r-0"), Some(0));
        assert_eq!(ordinal_of("r", "r-12"), Some(12));
        assert_eq!(ordinal_of("r", "r-01"), None);
        assert_eq!(ordinal_of("r", "rx-1"), None);
        assert_eq!(ordinal_of("r-a", "r-a-3"), Some(3));
    }

    #[test]
    fn parallel_creates_all_and_deletes_condemned() {
        let st = sts(3, "Parallel", "OnDelete");
        let p = plan(&st, &BTreeMap::new());
        assert_eq!(p.create, vec![0, 1, 2]);
        let rev = update_revision(&st);
        let pods: BTreeMap<i64, Value> = (0..5).map(|i| (i, ready_pod(&st, i, &rev))).collect();
        let p = plan(&st, &pods);
        assert_eq!(p.delete, vec!["r-4".to_string(), "r-3".to_string()]);
    }

    #[test]
    fn ordered_ready_waits_for_each_pod() {
        let st = sts(3, "OrderedReady", "OnDelete");
        let rev = update_revision(&st);
        let mut pods = BTreeMap::new();
        assert_eq!(plan(&st, &pods).create, vec![0]);
        pods.insert(0, pod_from_template(&st, 0, &rev));
        assert_eq!(plan(&st, &pods), Plan::default(), "r-0 not ready yet");
        pods.insert(0, ready_pod(&st, 0, &rev));
        assert_eq!(plan(&st, &pods).create, vec![1]);
        let st2 = sts(1, "OrderedReady", "OnDelete");
        pods.insert(1, ready_pod(&st, 1, &rev));
        pods.insert(2, ready_pod(&st, 2, &rev));
        assert_eq!(plan(&st2, &pods).delete, vec!["r-2".to_string()]);
    }

    #[test]
    fn on_delete_never_replaces_and_rolling_update_goes_from_the_top() {
        let st = sts(3, "Parallel", "OnDelete");
        let pods: BTreeMap<i64, Value> = (0..3).map(|i| (i, ready_pod(&st, i, "r-old"))).collect();
        assert_eq!(plan(&st, &pods), Plan::default());
        let roll = sts(3, "Parallel", "RollingUpdate");
        assert_eq!(plan(&roll, &pods).delete, vec!["r-2".to_string()]);
        let rev = update_revision(&roll);
        let mut pods2 = pods.clone();
        pods2.insert(2, ready_pod(&roll, 2, &rev));
        assert_eq!(plan(&roll, &pods2).delete, vec!["r-1".to_string()]);
        // Not all ready: wait.
        pods2.insert(2, pod_from_template(&roll, 2, &rev));
        assert_eq!(plan(&roll, &pods2), Plan::default());
    }

    #[test]
    fn status_counts_revisions() {
        let st = sts(3, "Parallel", "OnDelete");
        let rev = update_revision(&st);
        let mut pods: BTreeMap<i64, Value> = (0..3).map(|i| (i, ready_pod(&st, i, &rev))).collect();
        let s1 = status(&st, &pods);
        assert_eq!(s1["replicas"], 3);
        assert_eq!(s1["readyReplicas"], 3);
        assert_eq!(s1["updatedReplicas"], 3);
        assert_eq!(s1["currentRevision"], json!(rev));
        assert_eq!(s1["observedGeneration"], 3);
        let mut st2 = st.clone();
        st2["spec"]["template"]["metadata"]["annotations"]["a"] = json!("2");
        st2["status"] = s1;
        pods.insert(2, ready_pod(&st2, 2, &update_revision(&st2)));
        let s2 = status(&st2, &pods);
        assert_eq!(s2["currentRevision"], json!(rev));
        assert_eq!(s2["currentReplicas"], 2);
        assert_eq!(s2["updatedReplicas"], 1);
        assert_eq!(s2["updateRevision"], json!(update_revision(&st2)));
    }
}
