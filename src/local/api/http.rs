//! HTTP front end: routing, discovery, the REST verbs, watch streams and Table output.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{header, Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::error::ApiError;
use super::logs;
use super::protobuf;
use super::selectors::{FieldSelector, LabelSelector};
use super::store::{present, selected, DeleteOptions, EventType, Patch, Store};
use super::table::to_table;
use super::types::ResourceType;

/// Response body: a whole JSON document or a watch stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest accepted request body (the real server's limit is 3 MiB of object data).
const MAX_BODY: usize = 8 << 20;

/// Shared state of the HTTP layer.
pub struct Shared {
    pub store: Arc<Store>,
    pub bookmark_interval: Duration,
    /// "host:port" reported in `/api` serverAddressByClientCIDRs.
    pub address: String,
    /// Where the runtime keeps the pods' log files (see [`super::logs`]).
    pub pods_dir: Option<std::path::PathBuf>,
    /// Counts of write requests per object ([`super::audit`]), at `GET /local/writes`.
    pub audit: super::audit::WriteAudit,
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn text_response(code: u16, s: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(s.as_bytes())).boxed_unsync());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    r
}

/// A percent-decoded path segment (invalid escapes stay as they are).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The query string as form-urlencoded pairs (`+` is a space), as Go's net/url reads it.
fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

/// Entry point for one request; never fails (errors become Status objects).
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    Ok(match route(&shared, req).await {
        Ok(r) => r,
        Err(e) => json_response(e.code, &e.to_status()),
    })
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::bad_request(format!("reading request body: {e}")))
}

/// The object in the body of a POST or PUT: JSON, or the protobuf kubectl sends for the
/// built-in kinds its imperative `create` commands make (see [`super::protobuf`]).
async fn object_body(req: Request<Incoming>) -> Result<Value, ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "" | "application/json" => parse_json(&read_body(req).await?),
        "application/vnd.kubernetes.protobuf" => protobuf::decode(&read_body(req).await?),
        other => Err(ApiError::unsupported_media_type_json(other)),
    }
}

fn parse_json(b: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(b).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body could not be decoded as JSON: {e}"
        ))
    })
}

/// YAML (or JSON, a YAML subset) body of an apply patch.
fn parse_yaml(b: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(b) {
        return Ok(v);
    }
    serde_saphyr::from_slice(b)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let store = &shared.store;
    match segs.as_slice() {
        [] => Ok(json_response(
            200,
            &json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]}),
        )),
        ["healthz"] | ["livez"] | ["readyz"] => Ok(text_response(200, "ok")),
        ["local", "writes"] => Ok(json_response(200, &shared.audit.to_json())),
        ["version"] => Ok(json_response(
            200,
            &json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0-tandem-local",
                "gitCommit": "", "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z",
                "goVersion": "n/a", "compiler": "n/a", "platform": "linux/amd64"
            }),
        )),
        ["api"] => Ok(json_response(
            200,
            &json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.address}]
            }),
        )),
        ["api", "v1"] => resource_list(store, "", "v1"),
        ["apis"] => Ok(json_response(200, &group_list(store))),
        ["apis", g] => {
            let groups = group_list(store);
            let found = groups["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|x| x["name"] == *g).cloned());
            match found {
                Some(mut grp) => {
                    grp["kind"] = json!("APIGroup");
                    grp["apiVersion"] = json!("v1");
                    Ok(json_response(200, &grp))
                }
                None => Err(ApiError::page_not_found()),
            }
        }
        ["apis", g, v] => resource_list(store, g, v),
        ["openapi", "v3"] => Ok(json_response(200, &openapi_index(store))),
        ["openapi", "v3", gv @ ..] => openapi_gv(store, &gv.join("/")),
        ["api", "v1", rest @ ..] => resource(shared, "", "v1", rest, req).await,
        ["apis", g, v, rest @ ..] => resource(shared, g, v, rest, req).await,
        _ => Err(ApiError::page_not_found()),
    }
}

fn resource_list(store: &Store, group: &str, version: &str) -> Result<Response<Body>, ApiError> {
    let types: Vec<ResourceType> = store
        .types()
        .into_iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return Err(ApiError::page_not_found());
    }
    let mut resources = Vec::new();
    for t in &types {
        let mut r = json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
            "kind": t.kind, "verbs": t.verbs(),
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        if t.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", t.plural), "singularName": "",
                "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(json_response(
        200,
        &json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources,
        }),
    ))
}

fn group_list(store: &Store) -> Value {
    let mut order: Vec<String> = Vec::new();
    let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in store.types() {
        if t.group.is_empty() {
            continue;
        }
        if !versions.contains_key(&t.group) {
            order.push(t.group.clone());
        }
        let vs = versions.entry(t.group.clone()).or_default();
        if !vs.contains(&t.version) {
            vs.push(t.version.clone());
        }
    }
    let groups: Vec<Value> = order
        .iter()
        .map(|g| {
            let vs: Vec<Value> = versions[g]
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs[0].clone()})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/openapi/v3`: the group-version index. The documents are minimal: they carry only
/// what kubectl needs to see that PATCH supports `fieldValidation` (it then leaves
/// validation to the server instead of downloading schemas); no schemas are included.
fn openapi_index(store: &Store) -> Value {
    let mut paths = serde_json::Map::new();
    for t in store.types() {
        let key = if t.group.is_empty() {
            format!("api/{}", t.version)
        } else {
            format!("apis/{}/{}", t.group, t.version)
        };
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}")}),
        );
    }
    json!({"paths": paths})
}

fn openapi_gv(store: &Store, gv: &str) -> Result<Response<Body>, ApiError> {
    let mut paths = serde_json::Map::new();
    for t in store.types() {
        let prefix = if t.group.is_empty() {
            format!("api/{}", t.version)
        } else {
            format!("apis/{}/{}", t.group, t.version)
        };
        if prefix != gv {
            continue;
        }
        let ns = if t.namespaced {
            "namespaces/{namespace}/"
        } else {
            ""
        };
        let op = json!({
            "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
            "x-kubernetes-action": "patch",
            "parameters": [
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                {"name": "force", "in": "query", "schema": {"type": "boolean"}},
            ],
            "responses": {},
        });
        paths.insert(
            format!("/{prefix}/{ns}{}/{{name}}", t.plural),
            json!({"patch": op}),
        );
    }
    if paths.is_empty() {
        return Err(ApiError::page_not_found());
    }
    Ok(json_response(
        200,
        &json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": paths,
            "components": {"schemas": {}},
        }),
    ))
}

/// Counts a write request in the audit (reads are not counted).
fn audit_write(
    shared: &Shared,
    rt: &ResourceType,
    method: &Method,
    sub: Option<&str>,
    ns: &str,
    name: Option<&str>,
) {
    let verb = match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => return,
    };
    shared.audit.record(super::audit::WriteKey {
        group: rt.group.clone(),
        resource: rt.plural.clone(),
        subresource: sub.unwrap_or_default().to_string(),
        namespace: ns.to_string(),
        name: name.unwrap_or_default().to_string(),
        verb: verb.to_string(),
    });
}

fn not_allowed(method: &Method) -> ApiError {
    ApiError::method_not_allowed(format!(
        "the server does not allow this method on the requested resource ({method})"
    ))
}

fn wants_table(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

async fn resource(
    shared: &Shared,
    group: &str,
    version: &str,
    rest: &[&str],
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let store = &shared.store;
    let ns_sub = rest.len() == 3
        && rest[0] == "namespaces"
        && (rest[2] == "status" || rest[2] == "finalize");
    let (ns, rest): (Option<&str>, &[&str]) =
        if rest.len() >= 3 && rest[0] == "namespaces" && !ns_sub {
            (Some(rest[1]), &rest[2..])
        } else {
            (None, rest)
        };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(*n), None),
        [p, n, s] => (*p, Some(*n), Some(*s)),
        _ => return Err(ApiError::page_not_found()),
    };
    let rt = store
        .resolve(group, version, plural)
        .ok_or_else(ApiError::page_not_found)?;
    if (!rt.namespaced && ns.is_some()) || (rt.namespaced && ns.is_none() && name.is_some()) {
        return Err(ApiError::page_not_found());
    }
    if sub == Some("log") && rt.group.is_empty() && rt.plural == "pods" {
        let (Some(ns), Some(n)) = (ns, name) else {
            return Err(ApiError::page_not_found());
        };
        if req.method() != Method::GET {
            return Err(not_allowed(req.method()));
        }
        let pod = store.get(&rt, ns, n)?;
        let q = logs::LogQuery::parse(&parse_query(req.uri().query()))?;
        return logs::serve(shared.pods_dir.as_deref(), ns, &pod, &q).await;
    }
    let status_only = match sub {
        None => false,
        Some("status") if rt.status_subresource => true,
        Some("finalize") if rt.is_namespace() => false,
        Some(_) => return Err(ApiError::page_not_found()),
    };
    let nsv = ns.unwrap_or("");
    let q = parse_query(req.uri().query());
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All");
    let method = req.method().clone();
    let table = wants_table(&req);
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
    if !dry_run {
        audit_write(shared, &rt, &method, sub, nsv, name);
    }
    match (method.clone(), name) {
        (Method::GET, None) => {
            if truthy(&q, "watch") {
                return watch(shared, rt, ns.map(String::from), labels, fields, &q, table);
            }
            let (items, rv) = store.list(&rt, ns, &labels, &fields);
            if table {
                return Ok(json_response(200, &to_table(&rt, &items, rv, unix_now())));
            }
            Ok(json_response(
                200,
                &json!({
                    "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                    "metadata": {"resourceVersion": rv.to_string()}, "items": items,
                }),
            ))
        }
        (Method::GET, Some(n)) => {
            let o = store.get(&rt, nsv, n)?;
            if table {
                let rv = store.current_rv();
                return Ok(json_response(200, &to_table(&rt, &[o], rv, unix_now())));
            }
            Ok(json_response(200, &o))
        }
        (Method::POST, None) => {
            let body = object_body(req).await?;
            let o = store.create(&rt, nsv, body, dry_run)?;
            Ok(json_response(201, &o))
        }
        (Method::PUT, Some(n)) => {
            let body = object_body(req).await?;
            let o = store.update(&rt, nsv, n, body, status_only, dry_run)?;
            Ok(json_response(200, &o))
        }
        (Method::PATCH, Some(n)) => {
            let patch = patch_from_request(req, &q, &rt, n).await?;
            let (o, created) = store.patch(&rt, nsv, n, patch, status_only, dry_run)?;
            Ok(json_response(if created { 201 } else { 200 }, &o))
        }
        (Method::DELETE, name) => {
            let opts = delete_options(&read_body(req).await?, &q, dry_run)?;
            match name {
                Some(n) => Ok(json_response(200, &store.delete(&rt, nsv, n, &opts)?)),
                None => {
                    let (items, rv) = store.delete_collection(&rt, ns, &labels, &fields, &opts);
                    Ok(json_response(
                        200,
                        &json!({
                            "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                            "metadata": {"resourceVersion": rv.to_string()}, "items": items,
                        }),
                    ))
                }
            }
        }
        _ => Err(not_allowed(&method)),
    }
}

/// The patch a PATCH request carries, by its content type.
async fn patch_from_request(
    req: Request<Incoming>,
    q: &HashMap<String, String>,
    rt: &ResourceType,
    name: &str,
) -> Result<Patch, ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let raw = read_body(req).await?;
    Ok(match ct.as_str() {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            Patch::Merge(parse_json(&raw)?)
        }
        "application/json-patch+json" => Patch::Json(parse_json(&raw)?),
        "application/apply-patch+yaml" => {
            let manager = q.get("fieldManager").cloned().unwrap_or_default();
            if manager.is_empty() {
                return Err(ApiError::invalid(
                    &rt.kind,
                    name,
                    "fieldManager: Required value: is required for apply patch",
                ));
            }
            Patch::Apply {
                body: parse_yaml(&raw)?,
                manager,
                force: truthy(q, "force"),
            }
        }
        other => return Err(ApiError::unsupported_media_type(other)),
    })
}

/// DeleteOptions from the query and an optional JSON body (the body wins).
fn delete_options(
    raw: &[u8],
    q: &HashMap<String, String>,
    dry_run: bool,
) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions {
        propagation: q.get("propagationPolicy").cloned(),
        dry_run,
        ..Default::default()
    };
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(opts);
    }
    let b = parse_json(raw)?;
    if let Some(p) = b.get("propagationPolicy").and_then(Value::as_str) {
        opts.propagation = Some(p.to_string());
    }
    if b.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
        opts.propagation = Some("Orphan".into());
    }
    opts.precondition_rv = b
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(String::from);
    opts.precondition_uid = b
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .map(String::from);
    if b.get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x == "All"))
    {
        opts.dry_run = true;
    }
    Ok(opts)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A watched object as sent: itself, or (for `kubectl get -w`) a one-row Table.
fn as_table(rt: &ResourceType, o: Value, table: bool, rv: u64) -> Value {
    if table {
        to_table(rt, &[o], rv, unix_now())
    } else {
        o
    }
}

fn watch_line(etype: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": etype, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

fn watch(
    shared: &Shared,
    rt: ResourceType,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    q: &HashMap<String, String>,
    table: bool,
) -> Result<Response<Body>, ApiError> {
    let store = shared.store.clone();
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let bookmarks = truthy(q, "allowWatchBookmarks");
    let send_initial = truthy(q, "sendInitialEvents");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(1800)
        .min(3600);
    let bookmark_interval = shared.bookmark_interval;
    // Initial state: with no (or "0") resourceVersion, or sendInitialEvents, the
    // current objects are sent as ADDED first.
    let (initial, start) = if rv_param.is_empty() || rv_param == "0" || send_initial {
        let (items, rv) = store.list(&rt, ns.as_deref(), &labels, &fields);
        (Some(items), rv)
    } else {
        let rv = rv_param.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("invalid resource version: {rv_param:?}"))
        })?;
        (None, rv)
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(256);
    let mut changes = store.subscribe();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut last = start;
        if let Some(items) = initial {
            for o in items {
                let o = as_table(&rt, o, table, last);
                if tx.send(watch_line("ADDED", &o)).await.is_err() {
                    return;
                }
            }
            if send_initial {
                let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {
                    "resourceVersion": last.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"}}});
                if tx.send(watch_line("BOOKMARK", &bm)).await.is_err() {
                    return;
                }
            }
        }
        loop {
            match store.events_since(last) {
                Err(e) => {
                    let _ = tx.send(watch_line("ERROR", &e.to_status())).await;
                    return;
                }
                Ok((evs, now)) => {
                    for ev in evs {
                        if (ev.group.as_str(), ev.plural.as_str()) != rt.storage() {
                            continue;
                        }
                        if let Some(n) = &ns {
                            if rt.namespaced && &ev.namespace != n {
                                continue;
                            }
                        }
                        let sel = |o: &Value| selected(&rt, o, &labels, &fields);
                        let new_m = sel(&ev.object);
                        let old_m = ev.old.as_deref().map(sel).unwrap_or(new_m);
                        let etype = match (ev.etype, old_m, new_m) {
                            (EventType::Modified, true, true) => "MODIFIED",
                            (EventType::Modified, false, true) => "ADDED",
                            (EventType::Modified, true, false) => "DELETED",
                            (EventType::Added, _, true) => "ADDED",
                            (EventType::Deleted, _, true) => "DELETED",
                            _ => continue,
                        };
                        if tx
                            .send(watch_line(
                                etype,
                                &as_table(&rt, present(&rt, &ev.object), table, now),
                            ))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    last = last.max(now);
                }
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(bookmark_interval) => {
                    if bookmarks {
                        let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(),
                            "metadata": {"resourceVersion": last.to_string()}});
                        if tx.send(watch_line("BOOKMARK", &bm)).await.is_err() {
                            return;
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(|b| Ok::<_, Infallible>(Frame::data(b))))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query(Some("labelSelector=app%3Dx%2Ctier+in+%28a%29&watch=1&x"));
        assert_eq!(q["labelSelector"], "app=x,tier in (a)");
        assert!(truthy(&q, "watch"));
        assert_eq!(q["x"], "");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
