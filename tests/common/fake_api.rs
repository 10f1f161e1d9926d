//! An in-memory Kubernetes API server behind a tower service, good enough for reconcile tests:
//! get / list (labelSelector) / create / server-side apply / merge patch / replace / delete on
//! namespaced resources, the status subresource, resourceVersion and generation bookkeeping,
//! and a log of every write that changed state.
//!
//! Why a fake rather than tower-test's scripted mock: the scenarios assert outcomes (what
//! exists, what changed, what was never deleted), not the exact request sequence, so steps can
//! be reordered or add a read without rewriting every test. A scripted mock would pin the
//! implementation instead of the behaviour.
//!
//! Server-side apply is modelled for a single field manager: the applied object replaces the
//! stored content (server-owned metadata and the status are kept). That is what SSA does when
//! one manager owns every field it sets, which is the operator's situation.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{json, Value};

/// (api prefix e.g. "api/v1" or "apis/apps/v1", plural, namespace, name)
type Key = (String, String, String, String);

#[derive(Default)]
pub struct State {
    pub objects: BTreeMap<Key, Value>,
    rv: u64,
    /// "VERB plural/name" for every request that changed stored state.
    pub writes: Vec<String>,
}

#[derive(Clone, Default)]
pub struct FakeApi {
    pub state: Arc<Mutex<State>>,
}

struct Target {
    prefix: String,
    ns: String,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (prefix, rest) = match *parts.first()? {
        "api" => (format!("api/{}", parts.get(1)?), &parts[2..]),
        "apis" => (
            format!("apis/{}/{}", parts.get(1)?, parts.get(2)?),
            &parts[3..],
        ),
        _ => return None,
    };
    if rest.first() != Some(&"namespaces") || rest.len() < 3 {
        return None;
    }
    Some(Target {
        prefix,
        ns: rest[1].to_string(),
        plural: rest[2].to_string(),
        name: rest.get(3).map(|s| s.to_string()),
        sub: rest.get(4).map(|s| s.to_string()),
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn label_selector(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return vec![] };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("labelSelector=") {
            return percent_decode(v)
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        }
    }
    vec![]
}

fn status(code: u16, reason: &str, message: String) -> Response<Full<Bytes>> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    });
    respond(code, &body)
}

fn respond(code: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Content compared to decide whether a write changed anything.
fn comparable(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    v
}

impl State {
    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// Stores `obj` under `key`, keeping server-owned fields of `old`; returns whether it changed.
    fn store(&mut self, key: Key, mut obj: Value, old: Option<&Value>, verb: &str) -> Value {
        let meta = obj["metadata"].as_object().cloned().unwrap_or_default();
        let mut meta = Value::Object(meta);
        match old {
            Some(o) => {
                for f in ["uid", "creationTimestamp", "generation", "resourceVersion"] {
                    if let Some(v) = o["metadata"].get(f) {
                        meta[f] = v.clone();
                    }
                }
            }
            None => {
                meta["uid"] = json!(format!("uid-{}-{}", key.1, key.3));
                meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
                meta["generation"] = json!(1);
            }
        }
        meta["namespace"] = json!(key.2);
        obj["metadata"] = meta;
        if let Some(o) = old {
            if obj.get("status").is_none() {
                if let Some(st) = o.get("status") {
                    obj["status"] = st.clone();
                }
            }
            if o.get("spec") != obj.get("spec") {
                let g = o["metadata"]["generation"].as_i64().unwrap_or(1);
                obj["metadata"]["generation"] = json!(g + 1);
            }
            if comparable(o) == comparable(&obj) {
                return o.clone();
            }
        }
        obj["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.writes.push(format!("{verb} {}/{}", key.1, key.3));
        self.objects.insert(key, obj.clone());
        obj
    }

    fn handle(
        &mut self,
        method: &http::Method,
        uri: &http::Uri,
        ctype: &str,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        let Some(t) = parse_path(uri.path()) else {
            return status(404, "NotFound", format!("unsupported path {}", uri.path()));
        };
        let parsed: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return status(400, "BadRequest", e.to_string()),
            }
        };
        let Some(name) = t.name.clone() else {
            return match method.as_str() {
                "GET" => {
                    let sel = label_selector(uri.query());
                    let items: Vec<Value> = self
                        .objects
                        .iter()
                        .filter(|((p, pl, ns, _), _)| {
                            *p == t.prefix && *pl == t.plural && *ns == t.ns
                        })
                        .map(|(_, v)| v.clone())
                        .filter(|v| {
                            sel.iter()
                                .all(|(k, val)| v["metadata"]["labels"][k] == json!(val))
                        })
                        .collect();
                    respond(
                        200,
                        &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": self.rv.to_string()}, "items": items}),
                    )
                }
                "POST" => {
                    let Some(n) = parsed["metadata"]["name"].as_str().map(str::to_string) else {
                        return status(422, "Invalid", "metadata.name required".into());
                    };
                    let key = (t.prefix, t.plural, t.ns, n.clone());
                    if self.objects.contains_key(&key) {
                        return status(
                            409,
                            "AlreadyExists",
                            format!("{} {n:?} already exists", key.1),
                        );
                    }
                    let obj = self.store(key, parsed, None, "CREATE");
                    respond(201, &obj)
                }
                m => status(405, "MethodNotAllowed", format!("{m} on a collection")),
            };
        };
        let key = (
            t.prefix.clone(),
            t.plural.clone(),
            t.ns.clone(),
            name.clone(),
        );
        let existing = self.objects.get(&key).cloned();
        let not_found = || status(404, "NotFound", format!("{} {name:?} not found", t.plural));
        match method.as_str() {
            "GET" => match existing {
                Some(o) => respond(200, &o),
                None => not_found(),
            },
            "DELETE" => match self.objects.remove(&key) {
                Some(o) => {
                    self.writes.push(format!("DELETE {}/{name}", t.plural));
                    respond(200, &o)
                }
                None => not_found(),
            },
            "PUT" => match existing {
                Some(o) => {
                    let obj = self.store(key, parsed, Some(&o), "REPLACE");
                    respond(200, &obj)
                }
                None => not_found(),
            },
            "PATCH" => {
                if t.sub.as_deref() == Some("status") {
                    let Some(mut o) = existing else {
                        return not_found();
                    };
                    let before = o.clone();
                    if ctype.starts_with("application/apply-patch") {
                        o["status"] = parsed.get("status").cloned().unwrap_or(Value::Null);
                    } else {
                        merge(
                            &mut o,
                            &json!({"status": parsed.get("status").cloned().unwrap_or(Value::Null)}),
                        );
                    }
                    if comparable(&before) != comparable(&o) {
                        o["metadata"]["resourceVersion"] = json!(self.next_rv());
                        self.writes.push(format!("STATUS {}/{name}", t.plural));
                        self.objects.insert(key, o.clone());
                    }
                    return respond(200, &o);
                }
                if ctype.starts_with("application/apply-patch") {
                    let mut obj = parsed;
                    obj.as_object_mut().map(|m| m.remove("status"));
                    let obj = self.store(key, obj, existing.as_ref(), "APPLY");
                    respond(200, &obj)
                } else {
                    let Some(o) = existing else {
                        return not_found();
                    };
                    let mut merged = o.clone();
                    merge(&mut merged, &parsed);
                    let obj = self.store(key, merged, Some(&o), "MERGE");
                    respond(200, &obj)
                }
            }
            m => status(405, "MethodNotAllowed", format!("{m} not supported")),
        }
    }
}

impl FakeApi {
    pub fn client(&self) -> kube::Client {
        let state = self.state.clone();
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let state = state.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let ctype = parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if parts.uri.query().is_some_and(|q| q.contains("watch=true")) {
                    // Watches stay open with no events until the client goes away.
                    let never =
                        futures::stream::pending::<Result<http_body::Frame<Bytes>, Infallible>>();
                    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(never)));
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    return Ok::<_, Infallible>(resp);
                }
                let resp = state
                    .lock()
                    .unwrap()
                    .handle(&parts.method, &parts.uri, &ctype, &bytes);
                let resp: Response<BoxBody<Bytes, Infallible>> = resp.map(BodyExt::boxed);
                Ok::<_, Infallible>(resp)
            }
        });
        kube::Client::new(svc, "default")
    }

    pub fn get(&self, prefix: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let key = (
            prefix.to_string(),
            plural.to_string(),
            ns.to_string(),
            name.to_string(),
        );
        self.state.lock().unwrap().objects.get(&key).cloned()
    }

    /// Inserts or overwrites an object directly (what another actor, e.g. the kubelet, would do).
    pub fn put(&self, prefix: &str, plural: &str, ns: &str, name: &str, obj: Value) {
        let key = (
            prefix.to_string(),
            plural.to_string(),
            ns.to_string(),
            name.to_string(),
        );
        let mut st = self.state.lock().unwrap();
        let rv = st.next_rv();
        let mut obj = obj;
        obj["metadata"]["resourceVersion"] = json!(rv);
        st.objects.insert(key, obj);
    }

    pub fn remove(&self, prefix: &str, plural: &str, ns: &str, name: &str) {
        let key = (
            prefix.to_string(),
            plural.to_string(),
            ns.to_string(),
            name.to_string(),
        );
        self.state.lock().unwrap().objects.remove(&key);
    }

    /// Writes so far, excluding Events (which are expected on transitions).
    pub fn writes(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .writes
            .iter()
            .filter(|w| !w.contains(" events/"))
            .cloned()
            .collect()
    }

    pub fn events(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|((p, pl, _, _), _)| p.starts_with("apis/events.k8s.io") && pl == "events")
            .map(|(_, v)| v.clone())
            .collect()
    }
}
