//! The one in-memory Kubernetes API the operator tests run against: the local mode's API
//! server (`src/local/api`, the same store `tandem-operator local` serves), started on a free
//! loopback port and reached over real HTTP with a kube client, so the reconcile tests and local
//! mode exercise the same semantics (server-side apply, status subresource, generation,
//! selectors, owner references).
//!
//! What the tests need beyond a client is a small wrapper around the store: acting as another
//! actor (the kubelet, the StatefulSet controller) by writing objects directly, and a log of
//! the operator's writes ("VERB plural/name" for each request that changed stored state). A
//! request counts as a write when the store's resourceVersion moved while it was served
//! (reconcile tests run one request at a time, so nothing else writes meanwhile).

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tandem_operator::local::api::store::DeleteOptions;
use tandem_operator::local::api::types::ResourceType;
use tandem_operator::local::api::{LocalApi, Options, Store};

pub struct TestApi {
    _api: LocalApi,
    store: Arc<Store>,
    writes: Arc<Mutex<Vec<String>>>,
    client: kube::Client,
}

/// "api/v1" -> ("", "v1"); "apis/apps/v1" -> ("apps", "v1").
fn group_version(prefix: &str) -> (String, String) {
    let parts: Vec<&str> = prefix.split('/').collect();
    match parts.as_slice() {
        ["api", v] => (String::new(), v.to_string()),
        ["apis", g, v] => (g.to_string(), v.to_string()),
        _ => panic!("unexpected API prefix {prefix}"),
    }
}

/// (verb, plural/name) of a write request.
fn describe(method: &http::Method, path: &str, ctype: &str, body: &[u8]) -> String {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let at = parts.iter().position(|p| *p == "namespaces");
    let (plural, name, sub) = match at {
        Some(i) if parts.len() > i + 2 => (
            parts[i + 2].to_string(),
            parts.get(i + 3).map(|s| s.to_string()),
            parts.get(i + 4).map(|s| s.to_string()),
        ),
        _ => (parts.last().unwrap_or(&"").to_string(), None, None),
    };
    let name = name.unwrap_or_else(|| {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["metadata"]["name"].as_str().map(String::from))
            .unwrap_or_default()
    });
    let verb = match method.as_str() {
        "POST" => "CREATE",
        "PUT" => "REPLACE",
        "DELETE" => "DELETE",
        "PATCH" if sub.as_deref() == Some("status") => "STATUS",
        "PATCH" if ctype.starts_with("application/apply-patch") => "APPLY",
        "PATCH" => "MERGE",
        m => m,
    };
    format!("{verb} {plural}/{name}")
}

impl TestApi {
    /// A local API on a free loopback port with the repository's CRDs and `namespaces`.
    pub async fn start(namespaces: &[&str]) -> TestApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = LocalApi::start(
            listener,
            Options {
                crd_dir: Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")),
                ..Options::default()
            },
        )
        .await
        .unwrap();
        let store = api.store().clone();
        let ns_type = store.resolve("", "v1", "namespaces").unwrap();
        for ns in namespaces {
            let _ = store.create(&ns_type, "", json!({"metadata": {"name": ns}}), false);
        }
        let inner = kube::Client::try_from(kube::Config::new(api.url().parse().unwrap())).unwrap();
        let writes = Arc::new(Mutex::new(Vec::new()));
        let (st, wr) = (store.clone(), writes.clone());
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let (inner, store, writes) = (inner.clone(), st.clone(), wr.clone());
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let ctype = parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let what = describe(&parts.method, parts.uri.path(), &ctype, &bytes);
                let is_write = parts.method != http::Method::GET;
                let before = store.current_rv();
                let req =
                    http::Request::from_parts(parts, kube::client::Body::from(bytes.to_vec()));
                let resp = inner.send(req).await?;
                if is_write && store.current_rv() != before {
                    writes.lock().unwrap().push(what);
                }
                Ok::<_, kube::Error>(resp)
            }
        });
        let client = kube::Client::new(svc, "default");
        TestApi {
            _api: api,
            store,
            writes,
            client,
        }
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The store behind the API (for what another actor would do).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn rt(&self, prefix: &str, plural: &str) -> ResourceType {
        let (g, v) = group_version(prefix);
        self.store
            .resolve(&g, &v, plural)
            .unwrap_or_else(|| panic!("local API serves no {prefix}/{plural}"))
    }

    pub fn get(&self, prefix: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.store.get(&self.rt(prefix, plural), ns, name).ok()
    }

    /// Create or overwrite through the store, as another actor (the kubelet) would: the
    /// main resource, then the status. A newly set deletionTimestamp becomes a real
    /// deletion held by a finalizer.
    pub fn put(&self, prefix: &str, plural: &str, ns: &str, name: &str, mut obj: Value) {
        let rt = self.rt(prefix, plural);
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            m.remove("uid");
        }
        let deleting = obj["metadata"].get("deletionTimestamp").is_some();
        if deleting {
            obj["metadata"]["finalizers"] = json!(["tests.tandem.dev/hold"]);
        }
        match self.store.get(&rt, ns, name) {
            Err(_) => {
                self.store.create(&rt, ns, obj.clone(), false).unwrap();
            }
            Ok(_) => {
                self.store
                    .update(&rt, ns, name, obj.clone(), false, false)
                    .unwrap();
            }
        }
        if obj.get("status").is_some() && rt.status_subresource {
            self.store
                .update(&rt, ns, name, obj.clone(), true, false)
                .unwrap();
        }
        if deleting {
            self.store
                .delete(&rt, ns, name, &DeleteOptions::default())
                .unwrap();
        }
    }

    pub fn remove(&self, prefix: &str, plural: &str, ns: &str, name: &str) {
        let _ = self.store.delete(
            &self.rt(prefix, plural),
            ns,
            name,
            &DeleteOptions::default(),
        );
    }

    /// Writes so far ("VERB plural/name"), excluding Events.
    pub fn writes(&self) -> Vec<String> {
        self.writes
            .lock()
            .unwrap()
            .iter()
            .filter(|w| !w.contains(" events/"))
            .cloned()
            .collect()
    }

    /// events.k8s.io Events.
    pub fn events(&self) -> Vec<Value> {
        let rt = self.rt("apis/events.k8s.io/v1", "events");
        self.store
            .list(&rt, None, &Default::default(), &Default::default())
            .0
    }
}
