//! An embedded, in-process Kubernetes API server over plain HTTP on loopback.
//!
//! It lets the unmodified controller (a normal `kube::Client` built from the kubeconfig
//! written by [`write_kubeconfig`]) and `kubectl` run without a cluster. Start it with
//! [`LocalApi::start`] (or [`serve`]); objects live in memory in a [`store::Store`].
//!
//! What is served:
//! - Discovery: `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`
//!   (legacy, non-aggregated discovery; kubectl falls back to it), `/version`,
//!   `/healthz`, `/livez`, `/readyz`.
//! - Built-in kinds: v1 ConfigMap, Secret, Service, Pod, Event, PersistentVolumeClaim,
//!   Namespace, ServiceAccount, Endpoints; apps/v1 StatefulSet; policy/v1
//!   PodDisruptionBudget; coordination.k8s.io/v1 Lease; events.k8s.io/v1 Event;
//!   discovery.k8s.io/v1 EndpointSlice; apiextensions.k8s.io/v1 CustomResourceDefinition.
//!   Creating a CRD serves its served versions at once (names, scope, status
//!   subresource, short names, categories); its status reports NamesAccepted and
//!   Established. Deleting a CRD deletes its objects.
//! - events.k8s.io/v1 Events and core v1 Events are one store, as in a real cluster:
//!   an Event written by kube's `Recorder` (events.k8s.io) is listed by `kubectl
//!   describe` (core, `involvedObject.*` field selectors). The conversion renames
//!   regarding/involvedObject, note/message, reportingController/reportingComponent
//!   and the deprecated* fields; everything else is shared as is.
//! - Verbs: get, list, watch, create, update (PUT), patch, delete, deletecollection, on
//!   the main resource and on `/status` for kinds with a status subresource.
//!
//! Semantics and simplifications (documented differences from a real API server):
//! - `dryRun=All` is honoured on create, update, patch and delete (nothing is stored).
//! - On update and patch, `uid`, `creationTimestamp`, `generation`,
//!   `deletionTimestamp`, `name` and `namespace` keep their stored values.
//! - resourceVersion is one global counter. Writes that change nothing return the old
//!   object with its old resourceVersion (updates, patches and apply alike).
//! - generation starts at 1 and is bumped when anything outside `metadata` and `status`
//!   changes (for every kind, also those that have no generation in a real cluster).
//! - Status subresource: the main endpoint keeps the stored status; `/status` changes
//!   only the status. Custom resources with a status subresource drop `status` on
//!   create; built-in kinds keep the status given on create (handy for the runtime).
//! - No schema validation, defaulting, admission, conversion between versions (all
//!   versions of a CRD share one object, only `apiVersion` is rewritten), RBAC or
//!   authentication. `managedFields` are never stored or returned.
//! - Patches: JSON merge patch (RFC 7386); JSON patch (RFC 6902); strategic merge patch is
//!   treated as a JSON merge patch (no merge keys, lists replaced, `$patch` directives
//!   not interpreted).
//! - Server-side apply: the applied configuration is merged recursively into the object
//!   (maps merge, applied fields win, lists and scalars replace as a whole, i.e. every
//!   list is atomic). The last configuration applied by each field manager (separately
//!   for `/status`) is remembered, and fields that manager applied before but no
//!   longer applies are removed. There is no field ownership between managers, so apply
//!   never reports a conflict; `force` is accepted and ignored.
//! - Selectors: label selectors with `=`, `==`, `!=`, `in`, `notin`, `key`, `!key`; field
//!   selectors with `=`, `==`, `!=` on any dotted path of the object (for example
//!   `metadata.name`, `metadata.namespace`, `involvedObject.name`, `status.phase`).
//! - List ignores `resourceVersion`, `limit` and `continue` (always the whole, current
//!   list; no pagination).
//! - Watch streams newline-delimited JSON events from a bounded history (see
//!   [`Options::history_limit`]). With no or `"0"` resourceVersion the current objects
//!   come first as ADDED; `sendInitialEvents=true` adds the
//!   `k8s.io/initial-events-end` bookmark. A resourceVersion older than the history
//!   window yields, like the real server, an HTTP 200 stream whose only event is an
//!   ERROR carrying a 410 `Expired` Status. Bookmarks (with
//!   `allowWatchBookmarks=true`) are sent after [`Options::bookmark_interval`] of
//!   silence. Objects moving into/out of a selector produce ADDED/DELETED.
//! - Deletion: objects with finalizers get a deletionTimestamp and are removed when the
//!   last finalizer goes. Owner-reference garbage collection (background cascade) runs
//!   synchronously after each removal: every object whose owner references all point to
//!   objects that no longer exist is deleted, recursively. `propagationPolicy=Orphan`
//!   removes the owner references instead; `Foreground` is treated as `Background`.
//!   Deleting a namespace deletes its contents at once (no Terminating phase); the
//!   namespaces `default`, `kube-system`, `kube-public` and `kube-node-lease` exist from
//!   the start, and namespaced objects can only be created in existing namespaces.
//! - kubectl: `get` (also `get -w`) is answered with a Table carrying the columns a real
//!   API server prints for the built-in kinds, a CRD's additionalPrinterColumns (simple
//!   `.a.b[0]` JSONPaths) for custom kinds, Name and Created At otherwise ([`table`]).
//!   `kubectl logs [-f] [--previous] [--tail N] [--limit-bytes N]` reads the files the
//!   runtime writes per pod ([`logs`]; `--timestamps` and `--since` are not applied: the
//!   log file has no per-line capture times, Redis's own lines carry theirs). Create and
//!   replace bodies may be protobuf for Secret, ConfigMap and Namespace (what kubectl's
//!   imperative `create` sends; [`protobuf`]), other protobuf kinds get 415. Pods,
//!   Services and StatefulSets are in the `all` category (`kubectl get all`).
//!   `/openapi/v3` is a stub that only tells kubectl that PATCH supports
//!   `fieldValidation` (so it leaves validation to the server, which does none); there
//!   are no schemas, so `kubectl explain` and client-side `kubectl apply` (strategic
//!   merge via OpenAPI) are not supported. Aggregated discovery is not served; kubectl
//!   falls back to the legacy discovery documents.
//!
//! - `GET /local/writes` (Tandem-local, not a Kubernetes API): the number of create,
//!   update, patch and delete requests per object and subresource since start
//!   ([`audit`]), to see how often a controller writes.
//!
//! - Persistence: with [`Options::state_file`] the objects, the resourceVersion counter
//!   and the apply memory are loaded at start and saved atomically shortly after changes
//!   and at shutdown ([`store::Snapshot`]). The watch history is not kept: after a restart
//!   watches from an older resourceVersion get 410 Gone and relist.
//!
//! Wiring: `LocalApi::start(TcpListener::bind("127.0.0.1:0").await?, Options { crd_dir,
//! ..Default::default() })`, then [`write_kubeconfig`]`(state_dir/kubeconfig, api.addr())`
//! and build the controller's `kube::Client` from that file (or
//! `kube::Config::new(api.url().parse()?)`); `api.shutdown().await` on exit. In-process
//! components can use [`LocalApi::store`] directly ([`Store::apply_manifest`] for `-f`
//! files, `resolve` + `create`/`update`/`patch`/`delete`, `subscribe` + `events_since`
//! to follow changes).
pub mod apply;
pub mod audit;
pub mod error;
pub mod http;
pub mod logs;
pub mod protobuf;
pub mod selectors;
pub mod store;
pub mod table;
pub mod types;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

pub use error::ApiError;
pub use store::Store;

/// Errors of starting the local API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Manifest { path: PathBuf, message: String },
    #[error("local API listener: {0}")]
    Listener(std::io::Error),
    #[error("state file {}: {message}", path.display())]
    State { path: PathBuf, message: String },
}

/// Settings of the local API.
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of events kept for watches to resume from (older: 410 Gone).
    pub history_limit: usize,
    /// Idle time after which a watch with `allowWatchBookmarks` gets a BOOKMARK.
    pub bookmark_interval: Duration,
    /// Directory of YAML files whose CustomResourceDefinitions are registered at start.
    pub crd_dir: Option<PathBuf>,
    /// JSON file the store is persisted to: loaded at start when it exists, saved
    /// atomically (temporary file + rename) at most [`SAVE_DELAY`] after changes and on
    /// [`LocalApi::shutdown`]. See [`store::Snapshot`] for what is kept.
    pub state_file: Option<PathBuf>,
    /// Directory of the pods' directories (`<ns>_<pod>/log`, `log.starts`), written by the
    /// local runtime; serves `pods/{name}/log`. None: the log subresource answers NotFound.
    pub pods_dir: Option<PathBuf>,
}

/// How long after a change the state file is written (changes in between are batched).
pub const SAVE_DELAY: Duration = Duration::from_millis(300);

impl Default for Options {
    fn default() -> Self {
        Options {
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(30),
            crd_dir: None,
            state_file: None,
            pods_dir: None,
        }
    }
}

/// A running local API server.
pub struct LocalApi {
    addr: SocketAddr,
    store: Arc<Store>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    saver: Option<Saver>,
}

/// The task that writes the state file after changes.
struct Saver {
    path: PathBuf,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl LocalApi {
    /// Start serving on `listener` (bind it to 127.0.0.1:0 for a free port).
    pub async fn start(listener: TcpListener, options: Options) -> Result<LocalApi, Error> {
        let addr = listener.local_addr().map_err(Error::Listener)?;
        let store = Store::new(options.history_limit);
        if let Some(path) = &options.state_file {
            load_state(&store, path)?;
        }
        if let Some(dir) = &options.crd_dir {
            register_crds(&store, dir)?;
        }
        let saver = options
            .state_file
            .clone()
            .map(|path| start_saver(store.clone(), path));
        let shared = Arc::new(http::Shared {
            store: store.clone(),
            bookmark_interval: options.bookmark_interval,
            address: addr.to_string(),
            pods_dir: options.pods_dir.clone(),
            audit: Default::default(),
        });
        let (tx, mut rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    acc = listener.accept() => {
                        let stream = match acc {
                            Ok((s, _)) => s,
                            Err(_) => {
                                // Out of file descriptors and the like: back off briefly.
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                continue;
                            }
                        };
                        let _ = stream.set_nodelay(true);
                        let shared = shared.clone();
                        conns.spawn(async move {
                            let svc = service_fn(move |req| http::handle(shared.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                }
                while conns.try_join_next().is_some() {}
            }
            conns.abort_all();
            while conns.join_next().await.is_some() {}
        });
        Ok(LocalApi {
            addr,
            store,
            shutdown: Some(tx),
            task,
            saver,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The object store (for in-process components such as the local runtime).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Write the state file now (no-op without [`Options::state_file`]).
    pub fn save_state(&self) -> Result<(), Error> {
        match &self.saver {
            Some(s) => save_state(&self.store, &s.path),
            None => Ok(()),
        }
    }

    /// Stop accepting, close every connection (watches end), wait for the server, and
    /// write the state file a last time.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        if let Some(s) = self.saver.take() {
            let _ = s.stop.send(());
            let _ = s.task.await;
            if let Err(e) = save_state(&self.store, &s.path) {
                tracing::error!("saving the local API state failed: {e}");
            }
        }
    }

    /// Wait until the server stops (it only stops through [`LocalApi::shutdown`] from
    /// another handle, so this runs until the process ends or the task is aborted).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for LocalApi {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(s) = &self.saver {
            s.task.abort();
        }
    }
}

/// Load `path` into `store` when it exists (a missing file is a fresh start).
pub fn load_state(store: &Store, path: &Path) -> Result<bool, Error> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let snap: store::Snapshot = serde_json::from_slice(&text).map_err(|e| Error::State {
        path: path.to_path_buf(),
        message: format!("not a valid state file: {e}"),
    })?;
    store.import(snap).map_err(|e| Error::State {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(true)
}

/// Write the store to `path` atomically: a temporary file in the same directory, synced,
/// then renamed over `path`.
pub fn save_state(store: &Store, path: &Path) -> Result<(), Error> {
    use std::io::Write;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let snap = store.export();
    let text = serde_json::to_vec(&snap).map_err(|e| Error::State {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&text).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}

fn start_saver(store: Arc<Store>, path: PathBuf) -> Saver {
    let (stop, mut stop_rx) = oneshot::channel::<()>();
    let mut changes = store.subscribe();
    let task_path = path.clone();
    // Read before the task first runs: changes made right after start must be saved.
    let mut saved = store.current_rv();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stop_rx => return,
                r = changes.changed() => if r.is_err() { return },
            }
            // Batch the writes of the next moment into one save.
            tokio::select! {
                _ = &mut stop_rx => return,
                _ = tokio::time::sleep(SAVE_DELAY) => {}
            }
            let now = store.current_rv();
            if now == saved {
                continue;
            }
            let (s, p) = (store.clone(), task_path.clone());
            match tokio::task::spawn_blocking(move || save_state(&s, &p)).await {
                Ok(Ok(())) => saved = now,
                Ok(Err(e)) => tracing::error!("saving the local API state failed: {e}"),
                Err(e) => tracing::error!("saving the local API state failed: {e}"),
            }
        }
    });
    Saver { path, stop, task }
}

/// Serve the local API on `listener` until the task is dropped, registering the
/// CustomResourceDefinitions found in the YAML files of `crd_dir`.
pub async fn serve(listener: TcpListener, crd_dir: Option<PathBuf>) -> Result<(), Error> {
    let api = LocalApi::start(
        listener,
        Options {
            crd_dir,
            ..Options::default()
        },
    )
    .await?;
    api.wait().await;
    Ok(())
}

/// Parse every YAML document of a file (multi-document files allowed).
pub fn read_manifests(path: &Path) -> Result<Vec<Value>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| Error::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(docs.into_iter().filter(|v| !v.is_null()).collect())
}

/// Register (create or replace) the CustomResourceDefinitions in the `.yaml`, `.yml`
/// and `.json` files of `dir`, in file-name order. Other kinds are ignored.
pub fn register_crds(store: &Store, dir: &Path) -> Result<usize, Error> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    let crd = store
        .resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .ok_or_else(|| Error::Manifest {
            path: dir.to_path_buf(),
            message: "CRD type missing".into(),
        })?;
    let mut n = 0;
    for f in files {
        for doc in read_manifests(&f)? {
            if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                continue;
            }
            let name = doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let res = match store.create(&crd, "", doc.clone(), false) {
                Err(e) if e.reason == "AlreadyExists" => {
                    let mut d = doc;
                    if let Some(m) = d.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                    }
                    store.update(&crd, "", &name, d, false, false)
                }
                other => other,
            };
            res.map_err(|e| Error::Manifest {
                path: f.clone(),
                message: e.message,
            })?;
            n += 1;
        }
    }
    Ok(n)
}

/// Write a kubeconfig for `http://<addr>` (no authentication) to `path`, with context
/// `tandem-local` and namespace `default`.
pub fn write_kubeconfig(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: tandem-local
  cluster:
    server: http://{addr}
contexts:
- name: tandem-local
  context:
    cluster: tandem-local
    user: tandem-local
    namespace: default
current-context: tandem-local
users:
- name: tandem-local
  user: {{}}
preferences: {{}}
"
    );
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct TempDir(PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "tandem-api-{tag}-{}-{}",
            std::process::id(),
            store::now_rfc3339().replace(':', "")
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    async fn start(state_file: &Path) -> LocalApi {
        LocalApi::start(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            Options {
                state_file: Some(state_file.to_path_buf()),
                ..Options::default()
            },
        )
        .await
        .unwrap()
    }

    fn rv_of(v: &Value) -> u64 {
        v["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[tokio::test]
    async fn restart_with_a_state_file_keeps_objects_and_increasing_versions() {
        let dir = temp_dir("restart");
        let file = dir.0.join("api-state.json");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"a": "1"}});

        let api = start(&file).await;
        let first = api.store().apply_manifest(cm.clone(), "local").unwrap();
        // Saved by the background task shortly after the change, before any shutdown.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !file.exists() {
            assert!(std::time::Instant::now() < deadline, "state never saved");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let second = api
            .store()
            .apply_manifest(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"a": "2"}}),
                "local",
            )
            .unwrap();
        assert!(rv_of(&second) > rv_of(&first));
        api.shutdown().await;
        assert!(!dir.0.join("api-state.json.tmp").exists());

        let api = start(&file).await;
        let cm_type = api.store().resolve("", "v1", "configmaps").unwrap();
        let got = api.store().get(&cm_type, "default", "m").unwrap();
        assert_eq!(
            got["data"]["a"], "2",
            "the change made just before shutdown"
        );
        assert_eq!(got["metadata"]["uid"], first["metadata"]["uid"]);
        let third = api.store().apply_manifest(cm, "local").unwrap();
        assert!(rv_of(&third) > rv_of(&second));
        api.shutdown().await;
    }

    #[tokio::test]
    async fn a_corrupt_state_file_is_a_clear_error() {
        let dir = temp_dir("corrupt");
        let file = dir.0.join("api-state.json");
        std::fs::write(&file, b"{not json").unwrap();
        let err = LocalApi::start(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            Options {
                state_file: Some(file.clone()),
                ..Options::default()
            },
        )
        .await
        .err()
        .expect("refused");
        assert!(err.to_string().contains("not a valid state file"), "{err}");
    }
}
