//! Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! Column names, order, priorities (1 = shown only with `-o wide`) and cell formats follow
//! the real API server's printers for the built-in kinds; custom kinds get their CRD
//! version's additionalPrinterColumns (or Age alone when it has none, as the CRD table
//! converter does); any other kind gets Name and Created At (the generic converter).
//! Pure functions over the stored JSON, so every column is unit-tested here.

use serde_json::{json, Value};

use super::types::{events_v1_to_core_event, PrinterColumn, ResourceType};

/// One column: its definition and how to compute its cell.
struct Column {
    name: &'static str,
    ty: &'static str,
    priority: u8,
    cell: fn(&Value, i64) -> Value,
}

const fn col(name: &'static str, ty: &'static str, cell: fn(&Value, i64) -> Value) -> Column {
    Column {
        name,
        ty,
        priority: 0,
        cell,
    }
}

const fn wide(name: &'static str, ty: &'static str, cell: fn(&Value, i64) -> Value) -> Column {
    Column {
        name,
        ty,
        priority: 1,
        cell,
    }
}

/// Parse an RFC 3339 time (`YYYY-MM-DDTHH:MM:SS[.frac]Z` or with an offset) into unix
/// seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

/// A duration as kubectl prints ages (`45s`, `3m20s`, `17m`, `5h3m`, `2d4h`, `400d`...).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        return match s % 60 {
            0 => format!("{minutes}m"),
            r => format!("{minutes}m{r}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = s / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            r => format!("{hours}h{r}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            r => format!("{}d{r}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let years = hours / 24 / 365;
        return match (hours / 24) % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// Age of a timestamp string, `<unknown>` when absent or unparsable (as kubectl prints).
fn since(t: Option<&Value>, now: i64) -> String {
    t.and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .map(|t| human_duration(now - t))
        .unwrap_or_else(|| "<unknown>".into())
}

fn str_at<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn or_none(s: &str) -> Value {
    if s.is_empty() {
        json!("<none>")
    } else {
        json!(s)
    }
}

fn arr<'a>(o: &'a Value, p: &str) -> &'a [Value] {
    o.pointer(p)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn age(o: &Value, now: i64) -> Value {
    json!(since(o.pointer("/metadata/creationTimestamp"), now))
}

fn data_count(o: &Value, _: i64) -> Value {
    let n = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_object)
            .map_or(0, |m| m.len())
    };
    json!(n("/data") + n("/binaryData"))
}

// ---- Pods ----

/// READY and STATUS of a pod, computed as the real printer does: the phase, overridden by
/// the status reason, by init containers still working, and by the last container with a
/// waiting or terminated reason; Terminating once deletion started.
fn pod_ready_status(o: &Value) -> (String, String) {
    let containers = arr(o, "/spec/containers").len();
    let mut reason = str_at(o, "/status/phase").to_string();
    let status_reason = str_at(o, "/status/reason");
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    let inits = arr(o, "/status/initContainerStatuses");
    let init_total = arr(o, "/spec/initContainers").len();
    let mut initializing = false;
    for (i, c) in inits.iter().enumerate() {
        let term = c.pointer("/state/terminated");
        if term.is_some_and(|t| t.get("exitCode").and_then(Value::as_i64) == Some(0)) {
            continue;
        }
        initializing = true;
        let waiting = str_at(c, "/state/waiting/reason");
        reason = if let Some(t) = term {
            let r = str_at(t, "/reason");
            if !r.is_empty() {
                format!("Init:{r}")
            } else if let Some(sig) = t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                format!("Init:Signal:{sig}")
            } else {
                format!(
                    "Init:ExitCode:{}",
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                )
            }
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{init_total}")
        };
        break;
    }
    let mut ready = 0;
    if !initializing {
        let mut has_running = false;
        for c in arr(o, "/status/containerStatuses").iter().rev() {
            let waiting = str_at(c, "/state/waiting/reason");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = c.pointer("/state/terminated") {
                let r = str_at(t, "/reason");
                reason = if !r.is_empty() {
                    r.to_string()
                } else if let Some(sig) =
                    t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0)
                {
                    format!("Signal:{sig}")
                } else {
                    format!(
                        "ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    )
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = "Running".into();
        }
    }
    if o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        reason = if status_reason == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    (format!("{ready}/{containers}"), reason)
}

fn pod_ready(o: &Value, _: i64) -> Value {
    json!(pod_ready_status(o).0)
}

fn pod_status(o: &Value, _: i64) -> Value {
    json!(pod_ready_status(o).1)
}

/// RESTARTS: the sum of the containers' restart counts, with the age of the most recent
/// termination (`2 (5m ago)`) when there was one.
fn pod_restarts(o: &Value, now: i64) -> Value {
    let mut restarts = 0;
    let mut last: Option<i64> = None;
    for c in arr(o, "/status/containerStatuses") {
        restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        if let Some(t) = c
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
        {
            last = Some(last.map_or(t, |l| l.max(t)));
        }
    }
    match last {
        Some(t) if restarts != 0 => json!(format!("{restarts} ({} ago)", human_duration(now - t))),
        _ => json!(restarts.to_string()),
    }
}

fn pod_ip(o: &Value, _: i64) -> Value {
    or_none(str_at(o, "/status/podIP"))
}

fn pod_node(o: &Value, _: i64) -> Value {
    or_none(str_at(o, "/spec/nodeName"))
}

fn pod_nominated(o: &Value, _: i64) -> Value {
    or_none(str_at(o, "/status/nominatedNodeName"))
}

fn pod_gates(o: &Value, _: i64) -> Value {
    let gates = arr(o, "/spec/readinessGates");
    if gates.is_empty() {
        return json!("<none>");
    }
    let conds = arr(o, "/status/conditions");
    let true_ = gates
        .iter()
        .filter(|g| {
            let t = str_at(g, "/conditionType");
            conds
                .iter()
                .any(|c| str_at(c, "/type") == t && str_at(c, "/status") == "True")
        })
        .count();
    json!(format!("{true_}/{}", gates.len()))
}

const POD: &[Column] = &[
    col("Ready", "string", pod_ready),
    col("Status", "string", pod_status),
    col("Restarts", "string", pod_restarts),
    col("Age", "string", age),
    wide("IP", "string", pod_ip),
    wide("Node", "string", pod_node),
    wide("Nominated Node", "string", pod_nominated),
    wide("Readiness Gates", "string", pod_gates),
];

// ---- Services ----

fn svc_type(o: &Value, _: i64) -> Value {
    let t = str_at(o, "/spec/type");
    json!(if t.is_empty() { "ClusterIP" } else { t })
}

fn svc_cluster_ip(o: &Value, _: i64) -> Value {
    or_none(str_at(o, "/spec/clusterIP"))
}

fn svc_external_ip(o: &Value, _: i64) -> Value {
    let external: Vec<&str> = arr(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let lb: Vec<&str> = arr(o, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| {
            let ip = str_at(i, "/ip");
            if ip.is_empty() {
                str_at(i, "/hostname")
            } else {
                ip
            }
        })
        .filter(|s| !s.is_empty())
        .collect();
    match str_at(o, "/spec/type") {
        "ExternalName" => or_none(str_at(o, "/spec/externalName")),
        "LoadBalancer" => {
            let all: Vec<&str> = lb.into_iter().chain(external).collect();
            if all.is_empty() {
                json!("<pending>")
            } else {
                json!(all.join(","))
            }
        }
        _ => or_none(&external.join(",")),
    }
}

fn svc_ports(o: &Value, _: i64) -> Value {
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let proto = match str_at(p, "/protocol") {
                "" => "TCP",
                x => x,
            };
            match p
                .get("nodePort")
                .and_then(Value::as_i64)
                .filter(|n| *n != 0)
            {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    or_none(&ports.join(","))
}

/// `k=v,k2=v2` of a string map (sorted, as Go's labels.Set prints), `<none>` if empty.
fn map_text(o: &Value, p: &str) -> Value {
    let pairs: Vec<String> = o
        .pointer(p)
        .and_then(Value::as_object)
        .map(|m| {
            let mut v: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    or_none(&pairs.join(","))
}

fn svc_selector(o: &Value, _: i64) -> Value {
    map_text(o, "/spec/selector")
}

const SERVICE: &[Column] = &[
    col("Type", "string", svc_type),
    col("Cluster-IP", "string", svc_cluster_ip),
    col("External-IP", "string", svc_external_ip),
    col("Port(s)", "string", svc_ports),
    col("Age", "string", age),
    wide("Selector", "string", svc_selector),
];

// ---- StatefulSets ----

fn sts_ready(o: &Value, _: i64) -> Value {
    let ready = o
        .pointer("/status/readyReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let want = o
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    json!(format!("{ready}/{want}"))
}

fn containers_field(o: &Value, field: &str) -> Value {
    let names: Vec<&str> = arr(o, "/spec/template/spec/containers")
        .iter()
        .map(|c| str_at(c, field))
        .collect();
    json!(names.join(","))
}

fn sts_containers(o: &Value, _: i64) -> Value {
    containers_field(o, "/name")
}

fn sts_images(o: &Value, _: i64) -> Value {
    containers_field(o, "/image")
}

const STATEFULSET: &[Column] = &[
    col("Ready", "string", sts_ready),
    col("Age", "string", age),
    wide("Containers", "string", sts_containers),
    wide("Images", "string", sts_images),
];

// ---- Events (the real printer has no leading Name column: Name is a wide column) ----

fn ev_last_seen(o: &Value, now: i64) -> Value {
    let last = o.pointer("/lastTimestamp").filter(|v| !v.is_null());
    let t = last
        .or_else(|| o.pointer("/series/lastObservedTime"))
        .or_else(|| o.pointer("/eventTime").filter(|v| !v.is_null()))
        .or_else(|| o.pointer("/metadata/creationTimestamp"));
    json!(since(t, now))
}

fn ev_first_seen(o: &Value, now: i64) -> Value {
    let t = o
        .pointer("/firstTimestamp")
        .filter(|v| !v.is_null())
        .or_else(|| o.pointer("/eventTime").filter(|v| !v.is_null()));
    json!(since(t, now))
}

fn ev_type(o: &Value, _: i64) -> Value {
    json!(str_at(o, "/type"))
}

fn ev_reason(o: &Value, _: i64) -> Value {
    json!(str_at(o, "/reason"))
}

fn ev_object(o: &Value, _: i64) -> Value {
    json!(format!(
        "{}/{}",
        str_at(o, "/involvedObject/kind").to_lowercase(),
        str_at(o, "/involvedObject/name")
    ))
}

fn ev_subobject(o: &Value, _: i64) -> Value {
    json!(str_at(o, "/involvedObject/fieldPath"))
}

fn ev_source(o: &Value, _: i64) -> Value {
    let mut s = str_at(o, "/source/component").to_string();
    if s.is_empty() {
        s = str_at(o, "/reportingComponent").to_string();
    }
    let host = str_at(o, "/source/host");
    if !host.is_empty() {
        s = format!("{s}, {host}");
    }
    json!(s)
}

fn ev_message(o: &Value, _: i64) -> Value {
    json!(str_at(o, "/message").trim())
}

fn ev_count(o: &Value, _: i64) -> Value {
    let n = o
        .pointer("/series/count")
        .or_else(|| o.get("count"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    json!(n)
}

fn name(o: &Value, _: i64) -> Value {
    json!(str_at(o, "/metadata/name"))
}

const EVENT: &[Column] = &[
    col("Last Seen", "string", ev_last_seen),
    col("Type", "string", ev_type),
    col("Reason", "string", ev_reason),
    col("Object", "string", ev_object),
    wide("Subobject", "string", ev_subobject),
    wide("Source", "string", ev_source),
    col("Message", "string", ev_message),
    wide("First Seen", "string", ev_first_seen),
    wide("Count", "integer", ev_count),
    wide("Name", "string", name),
];

// ---- ConfigMaps, Secrets, PDBs, Leases, Namespaces, the rest ----

const CONFIGMAP: &[Column] = &[
    col("Data", "integer", data_count),
    col("Age", "string", age),
];

fn secret_type(o: &Value, _: i64) -> Value {
    let t = str_at(o, "/type");
    json!(if t.is_empty() { "Opaque" } else { t })
}

const SECRET: &[Column] = &[
    col("Type", "string", secret_type),
    col("Data", "integer", data_count),
    col("Age", "string", age),
];

fn int_or_string(o: &Value, p: &str) -> Value {
    match o.pointer(p) {
        Some(Value::Number(n)) => json!(n.to_string()),
        Some(Value::String(s)) => json!(s),
        _ => json!("N/A"),
    }
}

fn pdb_min(o: &Value, _: i64) -> Value {
    int_or_string(o, "/spec/minAvailable")
}

fn pdb_max(o: &Value, _: i64) -> Value {
    int_or_string(o, "/spec/maxUnavailable")
}

fn pdb_allowed(o: &Value, _: i64) -> Value {
    json!(o
        .pointer("/status/disruptionsAllowed")
        .and_then(Value::as_i64)
        .unwrap_or(0))
}

const PDB: &[Column] = &[
    col("Min Available", "string", pdb_min),
    col("Max Unavailable", "string", pdb_max),
    col("Allowed Disruptions", "integer", pdb_allowed),
    col("Age", "string", age),
];

fn lease_holder(o: &Value, _: i64) -> Value {
    json!(str_at(o, "/spec/holderIdentity"))
}

const LEASE: &[Column] = &[
    col("Holder", "string", lease_holder),
    col("Age", "string", age),
];

fn ns_status(o: &Value, _: i64) -> Value {
    json!(str_at(o, "/status/phase"))
}

const NAMESPACE: &[Column] = &[
    col("Status", "string", ns_status),
    col("Age", "string", age),
];

fn sa_secrets(o: &Value, _: i64) -> Value {
    json!(arr(o, "/secrets").len())
}

const SERVICEACCOUNT: &[Column] = &[
    col("Secrets", "integer", sa_secrets),
    col("Age", "string", age),
];

fn ep_endpoints(o: &Value, _: i64) -> Value {
    let mut list = Vec::new();
    for subset in arr(o, "/subsets") {
        for a in arr(subset, "/addresses") {
            let ip = str_at(a, "/ip");
            let ports = arr(subset, "/ports");
            if ports.is_empty() {
                list.push(ip.to_string());
            }
            for p in ports {
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                list.push(format!("{ip}:{port}"));
            }
        }
    }
    let total = list.len();
    if total > 3 {
        list.truncate(3);
        return json!(format!("{} + {} more...", list.join(","), total - 3));
    }
    or_none(&list.join(","))
}

const ENDPOINTS: &[Column] = &[
    col("Endpoints", "string", ep_endpoints),
    col("Age", "string", age),
];

fn pvc_status(o: &Value, _: i64) -> Value {
    json!(str_at(o, "/status/phase"))
}

fn pvc_volume(o: &Value, _: i64) -> Value {
    json!(str_at(o, "/spec/volumeName"))
}

fn pvc_capacity(o: &Value, _: i64) -> Value {
    json!(str_at(o, "/status/capacity/storage"))
}

fn pvc_modes(o: &Value, _: i64) -> Value {
    let short: Vec<&str> = arr(o, "/status/accessModes")
        .iter()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect();
    json!(short.join(","))
}

fn pvc_class(o: &Value, _: i64) -> Value {
    or_none(str_at(o, "/spec/storageClassName"))
}

fn pvc_vac(o: &Value, _: i64) -> Value {
    or_none(str_at(o, "/spec/volumeAttributesClassName"))
}

fn pvc_mode(o: &Value, _: i64) -> Value {
    or_none(str_at(o, "/spec/volumeMode"))
}

const PVC: &[Column] = &[
    col("Status", "string", pvc_status),
    col("Volume", "string", pvc_volume),
    col("Capacity", "string", pvc_capacity),
    col("Access Modes", "string", pvc_modes),
    col("StorageClass", "string", pvc_class),
    col("VolumeAttributesClass", "string", pvc_vac),
    col("Age", "string", age),
    wide("VolumeMode", "string", pvc_mode),
];

fn created_at(o: &Value, _: i64) -> Value {
    json!(str_at(o, "/metadata/creationTimestamp"))
}

const GENERIC: &[Column] = &[col("Created At", "date", created_at)];

/// The columns of a built-in kind, and whether the first column is the object's name.
fn builtin_columns(rt: &ResourceType) -> (&'static [Column], bool) {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => (POD, true),
        ("", "services") => (SERVICE, true),
        ("apps", "statefulsets") => (STATEFULSET, true),
        ("", "events") | ("events.k8s.io", "events") => (EVENT, false),
        ("", "configmaps") => (CONFIGMAP, true),
        ("", "secrets") => (SECRET, true),
        ("policy", "poddisruptionbudgets") => (PDB, true),
        ("coordination.k8s.io", "leases") => (LEASE, true),
        ("", "namespaces") => (NAMESPACE, true),
        ("", "serviceaccounts") => (SERVICEACCOUNT, true),
        ("", "endpoints") => (ENDPOINTS, true),
        ("", "persistentvolumeclaims") => (PVC, true),
        _ => (GENERIC, true),
    }
}

/// Evaluate a simple JSONPath of the form `.a.b[0].c` (what printer columns use).
pub fn simple_json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for seg in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        let (name, idx) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(i) = idx {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

fn name_definition() -> Value {
    json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        "priority": 0})
}

fn row(o: &Value, cells: Vec<Value>) -> Value {
    json!({
        "cells": cells,
        "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
        },
    })
}

/// The CRD columns of a custom kind: (definitions, rows).
fn custom_table(rt: &ResourceType, items: &[Value], now: i64) -> (Vec<Value>, Vec<Value>) {
    let mut columns: Vec<PrinterColumn> = rt.printer_columns.clone();
    if columns.is_empty() {
        columns.push(PrinterColumn {
            name: "Age".into(),
            ty: "date".into(),
            json_path: ".metadata.creationTimestamp".into(),
            priority: 0,
        });
    }
    let mut defs = vec![name_definition()];
    for c in &columns {
        let ty = if c.ty == "date" {
            "string"
        } else {
            c.ty.as_str()
        };
        defs.push(
            json!({"name": c.name, "type": ty, "format": "", "description": c.name,
            "priority": c.priority}),
        );
    }
    let rows = items
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or(json!(""))];
            for c in &columns {
                cells.push(match (c.ty.as_str(), simple_json_path(o, &c.json_path)) {
                    ("date", Some(Value::String(t))) => json!(parse_rfc3339(t)
                        .map(|t| human_duration(now - t))
                        .unwrap_or_else(|| t.clone())),
                    (_, Some(v)) if !v.is_null() => v.clone(),
                    _ => json!("<none>"),
                });
            }
            row(o, cells)
        })
        .collect();
    (defs, rows)
}

/// The Table of `items` (stored JSON objects of type `rt`) at time `now` (unix seconds).
pub fn to_table(rt: &ResourceType, items: &[Value], rv: u64, now: i64) -> Value {
    let (defs, rows) = if rt.custom {
        custom_table(rt, items, now)
    } else {
        let (columns, named) = builtin_columns(rt);
        // events.k8s.io/v1 Events print from the core v1 fields, like the core ones.
        let converted: Vec<Value>;
        let items = if rt.is_events_v1() {
            converted = items.iter().map(events_v1_to_core_event).collect();
            &converted[..]
        } else {
            items
        };
        let mut defs = Vec::new();
        if named {
            defs.push(name_definition());
        }
        for c in columns {
            defs.push(json!({"name": c.name, "type": c.ty, "format": "",
                "description": c.name, "priority": c.priority}));
        }
        let rows = items
            .iter()
            .map(|o| {
                let mut cells = Vec::with_capacity(columns.len() + 1);
                if named {
                    cells.push(name(o, now));
                }
                cells.extend(columns.iter().map(|c| (c.cell)(o, now)));
                row(o, cells)
            })
            .collect();
        (defs, rows)
    };
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::super::types::builtin_types;
    use super::*;

    fn builtin(plural: &str) -> ResourceType {
        builtin_types()
            .into_iter()
            .find(|t| t.plural == plural && t.group.is_empty())
            .unwrap()
    }

    fn header(t: &Value) -> Vec<String> {
        t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }

    const NOW: i64 = 1_700_000_000;

    fn ts(ago: i64) -> String {
        super::super::store::rfc3339(NOW - ago)
    }

    #[test]
    fn ages_print_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(240), "4m");
        assert_eq!(human_duration(17 * 60), "17m");
        assert_eq!(human_duration(5 * 3600 + 180), "5h3m");
        assert_eq!(human_duration(20 * 3600), "20h");
        assert_eq!(human_duration(52 * 3600), "2d4h");
        assert_eq!(human_duration(400 * 86400), "400d");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn rfc3339_roundtrip_and_fractions() {
        assert_eq!(parse_rfc3339(&ts(0)), Some(NOW));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.123456Z"), Some(NOW));
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn running_pod_with_restarts() {
        let pod = json!({
            "metadata": {"name": "cache-0", "creationTimestamp": ts(300)},
            "spec": {"containers": [{"name": "server"}], "nodeName": "local"},
            "status": {"phase": "Running", "podIP": "10.1.2.3", "containerStatuses": [{
                "name": "server", "ready": true, "restartCount": 2,
                "state": {"running": {"startedAt": ts(60)}},
                "lastState": {"terminated": {"exitCode": 137, "finishedAt": ts(61)}},
            }]},
        });
        let t = to_table(&builtin("pods"), &[pod], 7, NOW);
        assert_eq!(
            header(&t),
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "cache-0",
                "1/1",
                "Running",
                "2 (61s ago)",
                "5m",
                "10.1.2.3",
                "local",
                "<none>",
                "<none>"
            ])
        );
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
        assert_eq!(t["columnDefinitions"][4]["priority"], 0);
    }

    #[test]
    fn pod_status_from_waiting_terminated_and_deletion() {
        let base = |cs: Value| {
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]},
                "status": {"phase": "Running", "containerStatuses": [cs]}})
        };
        let waiting = base(json!({"ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}));
        assert_eq!(
            pod_ready_status(&waiting),
            ("0/1".into(), "CrashLoopBackOff".into())
        );
        let term = base(json!({"ready": false, "state": {"terminated": {"exitCode": 1}}}));
        assert_eq!(pod_ready_status(&term).1, "ExitCode:1");
        let sig = base(json!({"state": {"terminated": {"exitCode": 137, "signal": 9}}}));
        assert_eq!(pod_ready_status(&sig).1, "Signal:9");
        let mut deleting = base(json!({"ready": true, "state": {"running": {}}}));
        deleting["metadata"]["deletionTimestamp"] = json!(ts(1));
        assert_eq!(
            pod_ready_status(&deleting),
            ("1/1".into(), "Terminating".into())
        );
        let pending = json!({"spec": {"containers": [{}]}, "status": {"phase": "Pending"}});
        assert_eq!(pod_ready_status(&pending), ("0/1".into(), "Pending".into()));
        assert_eq!(pod_restarts(&waiting, NOW), json!("3"));
    }

    #[test]
    fn service_statefulset_secret_configmap_pdb_columns() {
        let svc = json!({"metadata": {"name": "cache-master", "creationTimestamp": ts(10)},
            "spec": {"clusterIP": "10.0.0.5", "ports": [{"port": 6379, "protocol": "TCP"}],
                "selector": {"b": "2", "a": "1"}}});
        let t = to_table(&builtin("services"), &[svc], 1, NOW);
        assert_eq!(
            header(&t),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "cache-master",
                "ClusterIP",
                "10.0.0.5",
                "<none>",
                "6379/TCP",
                "10s",
                "a=1,b=2"
            ])
        );
        let sts = json!({"metadata": {"name": "cache"}, "spec": {"replicas": 3,
            "template": {"spec": {"containers": [{"name": "server", "image": "i:1"}]}}},
            "status": {"readyReplicas": 2}});
        let st = builtin_types()
            .into_iter()
            .find(|t| t.plural == "statefulsets")
            .unwrap();
        let t = to_table(&st, &[sts], 1, NOW);
        assert_eq!(header(&t), ["Name", "Ready", "Age", "Containers", "Images"]);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["cache", "2/3", "<unknown>", "server", "i:1"])
        );
        let sec = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "", "b": ""}});
        let t = to_table(&builtin("secrets"), &[sec], 1, NOW);
        assert_eq!(header(&t), ["Name", "Type", "Data", "Age"]);
        assert_eq!(
            t["rows"][0]["cells"].as_array().unwrap()[1..3],
            [json!("Opaque"), json!(2)]
        );
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": ""}, "binaryData": {"b": ""}});
        let t = to_table(&builtin("configmaps"), &[cm], 1, NOW);
        assert_eq!(header(&t), ["Name", "Data", "Age"]);
        assert_eq!(t["rows"][0]["cells"][1], 2);
        let pdb_t = builtin_types()
            .into_iter()
            .find(|t| t.plural == "poddisruptionbudgets")
            .unwrap();
        let pdb = json!({"metadata": {"name": "p"}, "spec": {"maxUnavailable": 1},
            "status": {"disruptionsAllowed": 1}});
        let t = to_table(&pdb_t, &[pdb], 1, NOW);
        assert_eq!(
            header(&t),
            [
                "Name",
                "Min Available",
                "Max Unavailable",
                "Allowed Disruptions",
                "Age"
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"].as_array().unwrap()[1..4],
            [json!("N/A"), json!("1"), json!(1)]
        );
    }

    #[test]
    fn event_columns_have_no_leading_name() {
        let ev = json!({"metadata": {"name": "cache-0.abc", "creationTimestamp": ts(30)},
            "involvedObject": {"kind": "Pod", "name": "cache-0", "fieldPath": "spec.containers{server}"},
            "reason": "Started", "type": "Normal", "message": "Started container server\n",
            "source": {"component": "kubelet", "host": "local"}, "count": 2,
            "firstTimestamp": ts(90), "lastTimestamp": ts(30)});
        let t = to_table(&builtin("events"), &[ev], 1, NOW);
        assert_eq!(
            header(&t),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "30s",
                "Normal",
                "Started",
                "pod/cache-0",
                "spec.containers{server}",
                "kubelet, local",
                "Started container server",
                "90s",
                2,
                "cache-0.abc"
            ])
        );
    }

    #[test]
    fn custom_kinds_use_printer_columns_and_unknown_kinds_created_at() {
        let mut rt = builtin("configmaps");
        rt.custom = true;
        let pc = |name: &str, ty: &str, path: &str, priority| PrinterColumn {
            name: name.into(),
            ty: ty.into(),
            json_path: path.into(),
            priority,
        };
        rt.printer_columns = vec![
            pc("Master", "string", ".status.master", 0),
            pc("Age", "date", ".metadata.creationTimestamp", 0),
            pc("Epoch", "integer", ".status.epoch", 1),
        ];
        let o = json!({"metadata": {"name": "cache", "creationTimestamp": ts(65)},
            "status": {"master": "cache-0"}});
        let t = to_table(&rt, std::slice::from_ref(&o), 1, NOW);
        assert_eq!(header(&t), ["Name", "Master", "Age", "Epoch"]);
        assert_eq!(t["columnDefinitions"][3]["priority"], 1);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["cache", "cache-0", "65s", "<none>"])
        );
        rt.printer_columns.clear();
        let t = to_table(&rt, std::slice::from_ref(&o), 1, NOW);
        assert_eq!(header(&t), ["Name", "Age"]);
        let ep = builtin_types()
            .into_iter()
            .find(|t| t.plural == "endpointslices")
            .unwrap();
        let t = to_table(&ep, &[o], 1, NOW);
        assert_eq!(header(&t), ["Name", "Created At"]);
        assert_eq!(t["rows"][0]["cells"][1], json!(ts(65)));
    }

    #[test]
    fn printer_column_paths() {
        let o = json!({"status": {"master": "m", "c": [{"t": 1}]}});
        assert_eq!(simple_json_path(&o, ".status.master"), Some(&json!("m")));
        assert_eq!(simple_json_path(&o, ".status.c[0].t"), Some(&json!(1)));
        assert_eq!(simple_json_path(&o, ".status.none"), None);
    }
}
