//! The object store: JSON objects keyed by (group, plural, namespace, name), a global
//! resourceVersion counter, a bounded event history for watches, per-manager applied
//! configurations for server-side apply, finalizers and owner-reference GC.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Map, Value};
use tokio::sync::watch;

use super::apply;
use super::error::ApiError;
use super::selectors::{FieldSelector, LabelSelector};
use super::types::{
    builtin_types, core_event_to_events_v1, crd_status, crd_types, events_v1_to_core_event,
    validate_crd, ResourceType,
};

/// (group, plural, namespace, name); namespace is "" for cluster-scoped objects.
pub type Key = (String, String, String, String);

/// Watch event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, kept in the bounded history that watches replay from.
#[derive(Clone, Debug)]
pub struct Event {
    pub rv: u64,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub etype: EventType,
    pub object: Arc<Value>,
    /// The previous state for MODIFIED events (selector transitions).
    pub old: Option<Arc<Value>>,
}

/// A patch request body, already decoded.
#[derive(Clone, Debug)]
pub enum Patch {
    Merge(Value),
    Json(Value),
    Apply {
        body: Value,
        manager: String,
        force: bool,
    },
}

/// Options of a delete request.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub precondition_rv: Option<String>,
    pub precondition_uid: Option<String>,
    pub dry_run: bool,
}

struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    types: Vec<ResourceType>,
    history: VecDeque<Event>,
    /// Every event with rv > history_start is in `history`.
    history_start: u64,
    /// Last configuration applied per (object, field manager[/status]).
    applied: HashMap<(Key, String), Value>,
    history_limit: usize,
}

/// The shared store. Cheap to share as `Arc<Store>`.
pub struct Store {
    inner: Mutex<Inner>,
    notify: watch::Sender<u64>,
}

static UID_COUNTER: AtomicU64 = AtomicU64::new(1);

fn new_uid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let n = UID_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    let a = h.finish();
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(a ^ n.rotate_left(17));
    let b = h2.finish();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        ((b >> 48) as u16 & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

fn random_suffix() -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = u64::from_str_radix(&new_uid().replace('-', "")[..16], 16).unwrap_or(7);
    (0..5)
        .map(|_| {
            let c = ALPHA[(x % ALPHA.len() as u64) as usize] as char;
            x /= ALPHA.len() as u64;
            c
        })
        .collect()
}

/// RFC 3339 timestamp (seconds precision, UTC) of now.
pub fn now_rfc3339() -> String {
    rfc3339(k8s_openapi::jiff::Timestamp::now().as_second())
}

/// Format unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (the epoch for a time jiff cannot hold).
pub fn rfc3339(secs: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

fn meta(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let o = obj.as_object_mut().expect("object ensured above");
    let m = o.entry("metadata").or_insert_with(|| json!({}));
    if !m.is_object() {
        *m = json!({});
    }
    m.as_object_mut().expect("object ensured above")
}

fn meta_str(obj: &Value, field: &str) -> Option<String> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .map(String::from)
}

fn meta_free_str(obj: &Value, field: &str) -> String {
    obj.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn uid_of(obj: &Value) -> String {
    meta_str(obj, "uid").unwrap_or_default()
}

fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

/// The object without metadata and status: what generation tracks.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
        o.remove("apiVersion");
        o.remove("kind");
    }
    v
}

fn key_of(rt: &ResourceType, ns: &str, name: &str) -> Key {
    let (g, p) = rt.storage();
    (
        g.to_string(),
        p.to_string(),
        if rt.namespaced {
            ns.to_string()
        } else {
            String::new()
        },
        name.to_string(),
    )
}

fn set_type(rt: &ResourceType, mut o: Value) -> Value {
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
        m.insert("kind".into(), json!(rt.kind));
    }
    o
}

/// A stored object as the requested type shows it: apiVersion/kind of the requested
/// version (no conversion between versions is done; all versions of a CRD share one
/// stored object), and events.k8s.io/v1 Events converted from the stored core Events.
pub fn present(rt: &ResourceType, obj: &Value) -> Value {
    if rt.is_events_v1() {
        set_type(rt, core_event_to_events_v1(obj))
    } else {
        set_type(rt, obj.clone())
    }
}

/// An object written through `rt` in its stored form.
fn to_stored(rt: &ResourceType, obj: &Value) -> Value {
    if rt.is_events_v1() {
        events_v1_to_core_event(obj)
    } else if rt.group.is_empty() && rt.plural == "secrets" {
        secret_string_data(set_type(rt, obj.clone()))
    } else {
        set_type(rt, obj.clone())
    }
}

/// As the real API server does on every write of a Secret: `stringData` entries are encoded
/// into `data` (overriding keys present in both) and `stringData` is never stored.
fn secret_string_data(mut obj: Value) -> Value {
    let Some(o) = obj.as_object_mut() else {
        return obj;
    };
    let Some(Value::Object(sd)) = o.remove("stringData") else {
        return obj;
    };
    if !matches!(o.get("data"), Some(Value::Object(_))) {
        o.insert("data".into(), Value::Object(Map::new()));
    }
    if let Some(Value::Object(data)) = o.get_mut("data") {
        for (k, v) in sd {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            data.insert(k, Value::String(base64_encode(text.as_bytes())));
        }
    }
    obj
}

/// Standard base64 with padding (RFC 4648), as Secrets carry `data`.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Whether a stored object of `rt`'s storage matches the selectors, as `rt` shows it.
pub fn selected(
    rt: &ResourceType,
    obj: &Value,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> bool {
    if rt.is_events_v1() {
        let p = present(rt, obj);
        labels.matches(&p) && fields.matches(&p)
    } else {
        labels.matches(obj) && fields.matches(obj)
    }
}

impl Inner {
    fn type_for_key(&self, group: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural)
            .cloned()
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn push_event(&mut self, key: &Key, etype: EventType, obj: &Value, old: Option<&Value>) {
        let ev = Event {
            rv: self.rv,
            group: key.0.clone(),
            plural: key.1.clone(),
            namespace: key.2.clone(),
            etype,
            object: Arc::new(obj.clone()),
            old: old.map(|o| Arc::new(o.clone())),
        };
        self.history.push_back(ev);
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.history_start = e.rv;
            }
        }
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.objects.contains_key(&(
            String::new(),
            "namespaces".into(),
            String::new(),
            ns.to_string(),
        ))
    }

    /// Store a new object (metadata already prepared except rv).
    fn insert(&mut self, key: Key, mut obj: Value) -> Value {
        let rv = self.bump();
        meta(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        self.push_event(&key, EventType::Added, &obj, None);
        if key.0 == "apiextensions.k8s.io" && key.1 == "customresourcedefinitions" {
            self.register_crd(&obj);
        }
        self.objects.insert(key, obj.clone());
        // Like the real garbage collector: a new object whose owners are all gone (e.g.
        // a child applied by a reconcile that raced with the owner's deletion) is
        // collected at once instead of staying orphaned forever.
        if !owner_uids(&obj).is_empty() {
            self.collect_garbage();
        }
        obj
    }

    fn replace(&mut self, key: Key, old: Value, mut obj: Value) -> Value {
        let rv = self.bump();
        meta(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        self.push_event(&key, EventType::Modified, &obj, Some(&old));
        if key.0 == "apiextensions.k8s.io" && key.1 == "customresourcedefinitions" {
            self.register_crd(&obj);
        }
        self.objects.insert(key.clone(), obj.clone());
        if is_deleting(&obj) && !has_finalizers(&obj) {
            return self.remove(&key, None).unwrap_or(obj);
        }
        obj
    }

    /// Remove an object now (DELETED event), then cascade: namespaces take their
    /// contents, CRDs their custom objects, and owner-reference GC runs.
    fn remove(&mut self, key: &Key, propagation: Option<&str>) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        let rv = self.bump();
        meta(&mut obj).insert("resourceVersion".into(), json!(rv.to_string()));
        self.push_event(key, EventType::Deleted, &obj, None);
        self.applied.retain(|(k, _), _| k != key);
        if key.0.is_empty() && key.1 == "namespaces" {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.2 == key.3)
                .cloned()
                .collect();
            for k in inside {
                self.remove(&k, Some("Orphan"));
            }
        }
        if key.0 == "apiextensions.k8s.io" && key.1 == "customresourcedefinitions" {
            let group = obj
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let plural = obj
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            self.types
                .retain(|t| !(t.custom && t.group == group && t.plural == plural));
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|k| k.0 == group && k.1 == plural)
                .cloned()
                .collect();
            for k in inside {
                self.remove(&k, Some("Orphan"));
            }
        }
        if propagation == Some("Orphan") {
            let uid = uid_of(&obj);
            self.orphan_dependents(&uid);
        } else {
            self.collect_garbage();
        }
        Some(obj)
    }

    /// Remove owner references to `uid` from every dependent.
    fn orphan_dependents(&mut self, uid: &str) {
        if uid.is_empty() {
            return;
        }
        let deps: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| owner_uids(o).iter().any(|u| u == uid))
            .map(|(k, _)| k.clone())
            .collect();
        for k in deps {
            if let Some(old) = self.objects.get(&k).cloned() {
                let mut new = old.clone();
                if let Some(Value::Array(refs)) = meta(&mut new).get_mut("ownerReferences") {
                    refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
                }
                self.replace(k, old, new);
            }
        }
    }

    /// Background-cascade garbage collection, run synchronously: every object whose
    /// owner references all point to objects that no longer exist is deleted (or marked
    /// for deletion if it has finalizers), repeatedly until nothing changes.
    fn collect_garbage(&mut self) {
        for _ in 0..10_000 {
            let live: HashSet<String> = self.objects.values().map(uid_of).collect();
            let victim = self.objects.iter().find(|(_, o)| {
                let owners = owner_uids(o);
                !owners.is_empty() && !is_deleting(o) && owners.iter().all(|u| !live.contains(u))
            });
            let Some((k, o)) = victim else { return };
            let (k, o) = (k.clone(), o.clone());
            if has_finalizers(&o) {
                let mut new = o.clone();
                meta(&mut new).insert("deletionTimestamp".into(), json!(now_rfc3339()));
                self.replace(k, o, new);
            } else {
                // remove() recurses into collect_garbage; the loop then finds nothing.
                self.remove(&k, None);
            }
        }
    }

    fn register_crd(&mut self, obj: &Value) {
        let new = crd_types(obj);
        if let Some(first) = new.first() {
            let (g, p) = (first.group.clone(), first.plural.clone());
            self.types
                .retain(|t| !(t.custom && t.group == g && t.plural == p));
        }
        self.types.extend(new);
    }
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl Store {
    /// A store with the built-in types and the `default`, `kube-system` and
    /// `kube-public` namespaces. `history_limit` bounds the watch history.
    pub fn new(history_limit: usize) -> Arc<Store> {
        let (notify, _) = watch::channel(0);
        let store = Store {
            inner: Mutex::new(Inner {
                rv: 0,
                objects: BTreeMap::new(),
                types: builtin_types(),
                history: VecDeque::new(),
                history_start: 0,
                applied: HashMap::new(),
                history_limit: history_limit.max(1),
            }),
            notify,
        };
        let ns_type = builtin_types()
            .into_iter()
            .find(|t| t.is_namespace())
            .expect("namespaces is a built-in type");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let _ = store.create(&ns_type, "", json!({"metadata": {"name": ns}}), false);
        }
        Arc::new(store)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self, inner: &Inner) {
        self.notify.send_replace(inner.rv);
    }

    /// Receives the latest resourceVersion after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// All served types.
    pub fn types(&self) -> Vec<ResourceType> {
        self.lock().types.clone()
    }

    /// The type served at (group, version, plural).
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.lock()
            .types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Events with rv > `since` and the current resourceVersion, or 410 Gone if the
    /// history no longer covers them.
    pub fn events_since(&self, since: u64) -> Result<(Vec<Event>, u64), ApiError> {
        let inner = self.lock();
        if since < inner.history_start {
            return Err(ApiError::gone(since, inner.history_start + 1));
        }
        let evs = inner
            .history
            .iter()
            .filter(|e| e.rv > since)
            .cloned()
            .collect();
        Ok((evs, inner.rv))
    }

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.lock()
            .objects
            .get(&key_of(rt, ns, name))
            .map(|o| present(rt, o))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Objects of a type (in one namespace, or all when `ns` is None), sorted by
    /// namespace and name, with the current resourceVersion.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .iter()
            .filter(|(k, _)| (k.0.as_str(), k.1.as_str()) == rt.storage())
            .filter(|(k, _)| ns.is_none_or(|n| !rt.namespaced || k.2 == n))
            .filter(|(_, o)| selected(rt, o, labels, fields))
            .map(|(_, o)| present(rt, o))
            .collect();
        (items, inner.rv)
    }

    /// Create an object. `ns` is the namespace from the URL ("" if cluster-scoped).
    pub fn create(
        &self,
        rt: &ResourceType,
        ns: &str,
        obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let out = Self::create_locked(&mut inner, rt, ns, obj, dry_run)?;
        self.notify(&inner);
        Ok(present(rt, &out))
    }

    fn create_locked(
        inner: &mut Inner,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body must be a JSON object".into(),
            ));
        }
        obj = to_stored(rt, &obj);
        let m = meta(&mut obj);
        let mut name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let gen = m
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if gen.is_empty() {
                return Err(ApiError::invalid(
                    &rt.kind,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            name = format!("{gen}{}", random_suffix());
            m.insert("name".into(), json!(name));
        }
        if rt.namespaced {
            let body_ns = m
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        m.remove("managedFields");
        m.remove("deletionTimestamp");
        m.remove("resourceVersion");
        m.insert("uid".into(), json!(new_uid()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        m.insert("generation".into(), json!(1));
        if rt.custom && rt.status_subresource {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        if rt.is_crd() {
            validate_crd(&obj)?;
            let st = crd_status(&obj, &now_rfc3339());
            obj["status"] = st;
        }
        if rt.is_namespace() {
            obj["status"] = json!({"phase": "Active"});
            if obj.pointer("/spec/finalizers").is_none() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
        }
        if rt.namespaced && !inner.namespace_exists(ns) {
            return Err(ApiError::not_found("", "namespaces", ns));
        }
        let key = key_of(rt, ns, &name);
        if inner.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if dry_run {
            return Ok(obj);
        }
        Ok(inner.insert(key, obj))
    }

    /// Replace an object (PUT). With `status_only`, only the status is taken from `obj`.
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        obj: Value,
        status_only: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if meta_str(&obj, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&obj, "name").unwrap_or_default()
            )));
        }
        let rv = meta_str(&obj, "resourceVersion").filter(|s| !s.is_empty());
        let mut inner = self.lock();
        let key = key_of(rt, ns, name);
        let old = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let out = Self::update_locked(&mut inner, rt, key, old, obj, status_only, rv, dry_run)?;
        self.notify(&inner);
        Ok(present(rt, &out))
    }

    /// The shared write path of update and patch. Unchanged writes return the old object
    /// without a new resourceVersion (like the real server).
    #[allow(clippy::too_many_arguments)]
    fn update_locked(
        inner: &mut Inner,
        rt: &ResourceType,
        key: Key,
        old: Value,
        new: Value,
        status_only: bool,
        rv_precondition: Option<String>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !new.is_object() {
            return Err(ApiError::invalid(
                &rt.kind,
                &key.3,
                "the resulting object must be a JSON object",
            ));
        }
        if let Some(rv) = rv_precondition {
            if meta_str(&old, "resourceVersion").as_deref() != Some(rv.as_str()) {
                return Err(ApiError::conflict(&rt.group, &rt.plural, &key.3));
            }
        }
        let mut result = if status_only {
            let mut r = old.clone();
            match new.get("status") {
                Some(s) => r["status"] = s.clone(),
                None => {
                    if let Some(o) = r.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            r
        } else {
            let mut r = to_stored(rt, &new);
            if rt.status_subresource {
                if let Some(o) = r.as_object_mut() {
                    match old.get("status") {
                        Some(s) => {
                            o.insert("status".into(), s.clone());
                        }
                        None => {
                            o.remove("status");
                        }
                    }
                }
            }
            let om = old.get("metadata").cloned().unwrap_or(json!({}));
            let m = meta(&mut r);
            m.remove("managedFields");
            for f in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "name",
                "namespace",
            ] {
                match om.get(f) {
                    Some(v) => {
                        m.insert(f.into(), v.clone());
                    }
                    None => {
                        m.remove(f);
                    }
                }
            }
            r
        };
        if rt.is_crd() && !status_only {
            validate_crd(&result)?;
            result["status"] = crd_status(&result, &now_rfc3339());
            if let (Some(a), Some(b)) = (old.get("status"), result.get("status")) {
                // Keep the old transition times when nothing but the time would change.
                if a.get("acceptedNames") == b.get("acceptedNames") {
                    result["status"] = a.clone();
                }
            }
        }
        if spec_part(&old) != spec_part(&result) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta(&mut result).insert("generation".into(), json!(g + 1));
        }
        meta(&mut result).insert(
            "resourceVersion".into(),
            json!(meta_str(&old, "resourceVersion").unwrap_or_default()),
        );
        if result == old || dry_run {
            return Ok(if dry_run { result } else { old });
        }
        Ok(inner.replace(key, old, result))
    }

    /// Patch an object; server-side apply creates it when absent. Returns the object and
    /// whether it was created.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        patch: Patch,
        status_only: bool,
        dry_run: bool,
    ) -> Result<(Value, bool), ApiError> {
        let mut inner = self.lock();
        let key = key_of(rt, ns, name);
        let existing = inner.objects.get(&key).cloned();
        let out = match patch {
            Patch::Merge(body) => {
                let old =
                    existing.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
                let rv = meta_str(&body, "resourceVersion");
                let mut new = present(rt, &old);
                apply::merge_patch(&mut new, &body);
                (
                    Self::update_locked(&mut inner, rt, key, old, new, status_only, rv, dry_run)?,
                    false,
                )
            }
            Patch::Json(body) => {
                let old =
                    existing.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
                let mut new = present(rt, &old);
                apply::json_patch(&mut new, &body)
                    .map_err(|e| ApiError::invalid(&rt.kind, name, &format!("json patch: {e}")))?;
                let rv = meta_str(&new, "resourceVersion")
                    .filter(|r| Some(r) != meta_str(&old, "resourceVersion").as_ref());
                (
                    Self::update_locked(&mut inner, rt, key, old, new, status_only, rv, dry_run)?,
                    false,
                )
            }
            Patch::Apply {
                mut body,
                manager,
                force: _,
            } => {
                if !body.is_object() {
                    return Err(ApiError::bad_request(
                        "the applied configuration must be an object".into(),
                    ));
                }
                if let Some(n) = meta_str(&body, "name") {
                    if n != name {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({n}) does not match the name on the URL ({name})"
                        )));
                    }
                }
                let rv = meta_str(&body, "resourceVersion");
                let m = meta(&mut body);
                m.remove("managedFields");
                m.remove("resourceVersion");
                m.insert("name".into(), json!(name));
                if rt.namespaced {
                    m.insert("namespace".into(), json!(ns));
                }
                let akey = (
                    key.clone(),
                    if status_only {
                        format!("{manager}/status")
                    } else {
                        manager
                    },
                );
                match existing {
                    None if status_only => {
                        return Err(ApiError::not_found(&rt.group, &rt.plural, name));
                    }
                    None => {
                        let created =
                            Self::create_locked(&mut inner, rt, ns, body.clone(), dry_run)?;
                        if !dry_run {
                            inner.applied.insert(akey, body);
                        }
                        (created, true)
                    }
                    Some(old) => {
                        let mut new = present(rt, &old);
                        if let Some(prev) = inner.applied.get(&akey) {
                            apply::remove_unapplied(&mut new, prev, &body);
                        }
                        apply::apply_merge(&mut new, &body);
                        let out = Self::update_locked(
                            &mut inner,
                            rt,
                            key,
                            old,
                            new,
                            status_only,
                            rv,
                            dry_run,
                        )?;
                        if !dry_run {
                            inner.applied.insert(akey, body);
                        }
                        (out, false)
                    }
                }
            }
        };
        self.notify(&inner);
        Ok((present(rt, &out.0), out.1))
    }

    /// Delete an object: with finalizers it is only marked (deletionTimestamp);
    /// otherwise removed, with the background (or orphan) cascade.
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let mut inner = self.lock();
        let out = Self::delete_locked(&mut inner, rt, key_of(rt, ns, name), opts)?;
        self.notify(&inner);
        Ok(present(rt, &out))
    }

    fn delete_locked(
        inner: &mut Inner,
        rt: &ResourceType,
        key: Key,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let old = inner
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, &key.3))?;
        if let Some(rv) = &opts.precondition_rv {
            if meta_str(&old, "resourceVersion").as_ref() != Some(rv) {
                return Err(ApiError::conflict(&rt.group, &rt.plural, &key.3));
            }
        }
        if let Some(uid) = &opts.precondition_uid {
            if &uid_of(&old) != uid {
                return Err(ApiError::conflict(&rt.group, &rt.plural, &key.3));
            }
        }
        if opts.dry_run {
            return Ok(old);
        }
        if has_finalizers(&old) {
            if is_deleting(&old) {
                return Ok(old);
            }
            let mut new = old.clone();
            meta(&mut new).insert("deletionTimestamp".into(), json!(now_rfc3339()));
            return Ok(inner.replace(key, old, new));
        }
        let removed = inner.remove(&key, opts.propagation.as_deref());
        Ok(removed.unwrap_or(old))
    }

    /// Delete every matching object of a type in a namespace (or all namespaces).
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        opts: &DeleteOptions,
    ) -> (Vec<Value>, u64) {
        let mut inner = self.lock();
        let keys: Vec<Key> = inner
            .objects
            .iter()
            .filter(|(k, _)| (k.0.as_str(), k.1.as_str()) == rt.storage())
            .filter(|(k, _)| ns.is_none_or(|n| !rt.namespaced || k.2 == n))
            .filter(|(_, o)| selected(rt, o, labels, fields))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in keys {
            if let Ok(o) = Self::delete_locked(&mut inner, rt, k, opts) {
                out.push(present(rt, &o));
            }
        }
        self.notify(&inner);
        (out, inner.rv)
    }

    /// The served type with this apiVersion and kind.
    pub fn resolve_kind(&self, api_version: &str, kind: &str) -> Option<ResourceType> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.lock()
            .types
            .iter()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    /// Server-side apply a whole manifest (apiVersion, kind, metadata.name and, for
    /// namespaced kinds, metadata.namespace or `default`) as `manager`: what
    /// `kubectl apply --server-side` does, in process (e.g. for `local -f file`).
    pub fn apply_manifest(&self, doc: Value, manager: &str) -> Result<Value, ApiError> {
        let api_version = meta_free_str(&doc, "apiVersion");
        let kind = meta_free_str(&doc, "kind");
        let rt = self.resolve_kind(&api_version, &kind).ok_or_else(|| {
            ApiError::bad_request(format!(
                "no matches for kind \"{kind}\" in version \"{api_version}\""
            ))
        })?;
        let name = meta_str(&doc, "name").unwrap_or_default();
        if name.is_empty() {
            return Err(ApiError::invalid(
                &kind,
                "",
                "metadata.name: Required value: name is required",
            ));
        }
        let ns = if rt.namespaced {
            meta_str(&doc, "namespace")
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into())
        } else {
            String::new()
        };
        let patch = Patch::Apply {
            body: doc,
            manager: manager.to_string(),
            force: true,
        };
        self.patch(&rt, &ns, &name, patch, false, false)
            .map(|(o, _)| o)
    }

    /// The type of a stored event's object, for presenting it.
    pub fn type_of(&self, group: &str, plural: &str) -> Option<ResourceType> {
        self.lock().type_for_key(group, plural)
    }
}

/// The persistent part of a [`Store`]: every object, the resourceVersion counter and the
/// last configuration each field manager applied. The watch history is not kept: after
/// [`Store::import`] a watch from an older resourceVersion gets 410 Gone and relists,
/// as after an etcd compaction.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Format version of this document (currently 1).
    pub version: u32,
    pub resource_version: u64,
    pub objects: Vec<SnapshotObject>,
    #[serde(default)]
    pub applied: Vec<SnapshotApplied>,
}

/// One stored object under its storage key.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotObject {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
    pub object: Value,
}

/// The configuration a field manager (`manager` or `manager/status`) last applied.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotApplied {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
    pub manager: String,
    pub config: Value,
}

/// The snapshot format version written by [`Store::export`].
pub const SNAPSHOT_VERSION: u32 = 1;

impl Store {
    /// Everything needed to restart with the same objects (see [`Snapshot`]).
    pub fn export(&self) -> Snapshot {
        let inner = self.lock();
        let objects = inner
            .objects
            .iter()
            .map(|(k, o)| SnapshotObject {
                group: k.0.clone(),
                plural: k.1.clone(),
                namespace: k.2.clone(),
                name: k.3.clone(),
                object: o.clone(),
            })
            .collect();
        let mut applied: Vec<SnapshotApplied> = inner
            .applied
            .iter()
            .map(|((k, m), c)| SnapshotApplied {
                group: k.0.clone(),
                plural: k.1.clone(),
                namespace: k.2.clone(),
                name: k.3.clone(),
                manager: m.clone(),
                config: c.clone(),
            })
            .collect();
        applied.sort_by(|a, b| {
            (&a.group, &a.plural, &a.namespace, &a.name, &a.manager).cmp(&(
                &b.group,
                &b.plural,
                &b.namespace,
                &b.name,
                &b.manager,
            ))
        });
        Snapshot {
            version: SNAPSHOT_VERSION,
            resource_version: inner.rv,
            objects,
            applied,
        }
    }

    /// Replace the whole content with a snapshot: the objects (CRDs among them are served
    /// again), the apply memory, and a resourceVersion counter that never goes back (so
    /// clients that saw newer versions of this store still see increasing versions). The
    /// watch history starts empty at the current version.
    pub fn import(&self, snap: Snapshot) -> Result<(), ImportError> {
        if snap.version != SNAPSHOT_VERSION {
            return Err(ImportError::Version(snap.version));
        }
        let mut objects = BTreeMap::new();
        let mut max_rv = snap.resource_version;
        for o in snap.objects {
            if !o.object.is_object() {
                return Err(ImportError::NotAnObject(format!(
                    "{}/{}/{}/{}",
                    o.group, o.plural, o.namespace, o.name
                )));
            }
            let rv = meta_str(&o.object, "resourceVersion")
                .and_then(|r| r.parse::<u64>().ok())
                .unwrap_or(0);
            max_rv = max_rv.max(rv);
            objects.insert((o.group, o.plural, o.namespace, o.name), o.object);
        }
        let applied = snap
            .applied
            .into_iter()
            .map(|a| {
                (
                    (a.group, a.plural, a.namespace, a.name),
                    a.manager,
                    a.config,
                )
            })
            .map(|(k, m, c)| ((k, m), c))
            .collect();
        let mut inner = self.lock();
        let crds: Vec<Value> = objects
            .iter()
            .filter(|(k, _)| k.0 == "apiextensions.k8s.io" && k.1 == "customresourcedefinitions")
            .map(|(_, o)| o.clone())
            .collect();
        inner.types = builtin_types();
        for crd in &crds {
            inner.register_crd(crd);
        }
        inner.objects = objects;
        inner.applied = applied;
        inner.rv = inner.rv.max(max_rv);
        inner.history.clear();
        inner.history_start = inner.rv;
        self.notify(&inner);
        Ok(())
    }
}

/// Why a saved state cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("unsupported state version {0} (this build reads {SNAPSHOT_VERSION})")]
    Version(u32),
    #[error("object {0} is not a JSON object")]
    NotAnObject(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm() -> ResourceType {
        builtin_types()
            .into_iter()
            .find(|t| t.plural == "configmaps")
            .unwrap()
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn unchanged_update_keeps_rv_and_gc_cascades() {
        let s = Store::new(100);
        let a = s
            .create(
                &cm(),
                "default",
                json!({"metadata": {"name": "a"}, "data": {"x": "1"}}),
                false,
            )
            .unwrap();
        let b = s
            .update(&cm(), "default", "a", a.clone(), false, false)
            .unwrap();
        assert_eq!(
            a["metadata"]["resourceVersion"],
            b["metadata"]["resourceVersion"]
        );
        let uid = a["metadata"]["uid"].as_str().unwrap();
        s.create(
            &cm(),
            "default",
            json!({"metadata": {"name": "child", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "uid": uid}]}}),
            false,
        )
        .unwrap();
        s.delete(&cm(), "default", "a", &DeleteOptions::default())
            .unwrap();
        assert!(s.get(&cm(), "default", "child").is_err());
    }

    #[test]
    fn a_child_created_after_its_owner_is_gone_is_collected() {
        let s = Store::new(100);
        let child = json!({"metadata": {"name": "late", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "gone", "uid": "no-such-uid"}]}});
        s.create(&cm(), "default", child, false).unwrap();
        assert!(s.get(&cm(), "default", "late").is_err());
        let owner = s
            .create(
                &cm(),
                "default",
                json!({"metadata": {"name": "owner"}}),
                false,
            )
            .unwrap();
        let uid = owner["metadata"]["uid"].as_str().unwrap();
        let child = json!({"metadata": {"name": "kept", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}});
        s.create(&cm(), "default", child, false).unwrap();
        assert!(s.get(&cm(), "default", "kept").is_ok());
    }

    #[test]
    fn patch_to_non_object_is_rejected() {
        let s = Store::new(10);
        s.create(&cm(), "default", json!({"metadata": {"name": "a"}}), false)
            .unwrap();
        let e = s
            .patch(
                &cm(),
                "default",
                "a",
                Patch::Json(json!([{"op": "replace", "path": "", "value": 5}])),
                false,
                false,
            )
            .unwrap_err();
        assert_eq!(e.code, 422);
        assert!(s.get(&cm(), "default", "a").is_ok());
    }

    #[test]
    fn apply_manifest_resolves_kind_and_namespace() {
        let s = Store::new(10);
        let doc = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"a": "1"}});
        let first = s.apply_manifest(doc.clone(), "local").unwrap();
        assert_eq!(first["metadata"]["namespace"], "default");
        let again = s.apply_manifest(doc, "local").unwrap();
        assert_eq!(
            first["metadata"]["resourceVersion"],
            again["metadata"]["resourceVersion"]
        );
        let e = s
            .apply_manifest(
                json!({"apiVersion": "x/v1", "kind": "Nope", "metadata": {"name": "n"}}),
                "local",
            )
            .unwrap_err();
        assert_eq!(e.code, 400);
    }

    #[test]
    fn secret_string_data_is_stored_as_base64_data() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        let s = Store::new(100);
        let rt = s.resolve("", "v1", "secrets").unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "a", "namespace": "default"},
            "data": {"keep": "eA==", "password": "b2xk"},
            "stringData": {"password": "s3cret"}});
        let stored = s.create(&rt, "default", obj, false).unwrap();
        assert!(stored.get("stringData").is_none());
        assert_eq!(stored["data"]["password"], "czNjcmV0");
        assert_eq!(stored["data"]["keep"], "eA==");
    }

    #[test]
    fn history_window_gone() {
        let s = Store::new(3);
        for i in 0..10 {
            s.create(
                &cm(),
                "default",
                json!({"metadata": {"name": format!("c{i}")}}),
                false,
            )
            .unwrap();
        }
        assert!(s.events_since(1).is_err());
        assert_eq!(s.events_since(s.current_rv() - 2).unwrap().0.len(), 2);
    }

    #[test]
    fn snapshot_round_trip_keeps_objects_crds_and_apply_memory() {
        let s = Store::new(100);
        let crd_type = builtin_types().into_iter().find(|t| t.is_crd()).unwrap();
        s.create(
            &crd_type,
            "",
            json!({
                "metadata": {"name": "widgets.example.com"},
                "spec": {"group": "example.com", "scope": "Namespaced",
                         "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                         "versions": [{"name": "v1", "served": true, "storage": true}]}
            }),
            false,
        )
        .unwrap();
        s.apply_manifest(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"a": "1", "b": "2"}}),
            "local",
        )
        .unwrap();
        s.apply_manifest(
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"x": 1}}),
            "local",
        )
        .unwrap();
        let snap = s.export();
        let text = serde_json::to_string(&snap).unwrap();
        let back: Snapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, snap);

        let t = Store::new(100);
        t.import(back).unwrap();
        assert_eq!(t.export(), snap);
        assert_eq!(t.current_rv(), s.current_rv());
        // The CRD's type is served again.
        let widget = t.resolve("example.com", "v1", "widgets").expect("served");
        assert_eq!(t.get(&widget, "default", "w").unwrap()["spec"]["x"], 1);
        // The apply memory came along: dropping `b` from the applied config removes it.
        let after = t
            .apply_manifest(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"a": "1"}}),
                "local",
            )
            .unwrap();
        assert_eq!(after["data"], json!({"a": "1"}));
        // Versions keep increasing after the restart; old watches are told to relist.
        let rv: u64 = after["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rv > snap.resource_version);
        assert!(t.events_since(1).is_err());
        assert_eq!(t.events_since(snap.resource_version).unwrap().0.len(), 1);
    }

    #[test]
    fn import_rejects_unknown_versions_and_never_lowers_the_counter() {
        let s = Store::new(10);
        let mut snap = s.export();
        snap.version = 99;
        assert!(s
            .import(snap.clone())
            .unwrap_err()
            .to_string()
            .contains("version 99"));
        snap.version = SNAPSHOT_VERSION;
        snap.resource_version = 1;
        let t = Store::new(10);
        for i in 0..5 {
            t.create(
                &cm(),
                "default",
                json!({"metadata": {"name": format!("c{i}")}}),
                false,
            )
            .unwrap();
        }
        let before = t.current_rv();
        t.import(snap).unwrap();
        assert!(t.current_rv() >= before);
        assert!(t.get(&cm(), "default", "c0").is_err());
        assert!(t
            .get(
                &builtin_types()
                    .into_iter()
                    .find(|t| t.is_namespace())
                    .unwrap(),
                "",
                "default"
            )
            .is_ok());
    }
}
