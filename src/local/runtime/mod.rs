//! The process runtime of local mode: StatefulSet controller, kubelet and service proxy
//! in one, working in-process against the embedded API's [`Store`].
//!
//! [`Runtime::start`] follows the store (its change notifications plus a resync every
//! second) and:
//! - creates and deletes the pods and PersistentVolumeClaims of every StatefulSet
//!   ([`statefulset`]), and keeps the StatefulSet status;
//! - runs every Pod's first container as a real process through the sandbox layer
//!   ([`crate::local::sandbox`]) with its volumes, environment, probes, restarts and
//!   status ([`kubelet`], [`volumes`], [`probes`]);
//! - gives every pod a hosts file with the pod DNS names ([`dns`]);
//! - serves every Service with a selector on a loopback TCP proxy, records the addresses
//!   in `state_dir/endpoints.json`, and keeps core v1 Endpoints objects ([`services`]).
//!
//! Layout of the state directory: `pods/<ns>_<pod>/` holds `pid` (while the container
//! runs), `log` (stdout and stderr, appended across restarts), `uid` (the pod object
//! the directory last belonged to), `volumes/<volume>/` (configMap, secret, downwardAPI,
//! emptyDir) and `pvc/<claim>/` (PersistentVolumeClaims); `endpoints.json` maps
//! `<ns>/<service>` to `host:port`.
//!
//! Differences from Kubernetes (documented simplifications):
//! - No images: every container runs on the host's filesystem view built by the sandbox,
//!   where `/usr/local/bin/tandem-server` is the built server; `image` is ignored and a
//!   container without `command` runs that server with its `args`.
//! - Only the first container of a pod runs; init containers, sidecars, resources,
//!   security contexts, affinity and tolerations are ignored.
//! - Restart backoff is 1, 2, 4, 8, then 10 s (Kubernetes: 10 s doubling to 5 min), reset
//!   after 60 s of running.
//! - exec and gRPC probes always fail with a message in the Ready condition; httpGet is
//!   plain HTTP only.
//! - Pods are removed from the API at once (no graceful Terminating phase in the API);
//!   the runtime stops the old process (SIGTERM, then SIGKILL after
//!   terminationGracePeriodSeconds capped at 10 s) before a replacement with the same
//!   name starts.
//! - StatefulSets: no ControllerRevision objects (the revision is `<sts>-<hash of the
//!   template>`), no adoption of orphan pods, minReadySeconds ignored. PVCs are Bound at
//!   once; the data is a directory per pod and claim.
//! - Services: only TCP; the ClusterIP is not served, each Service port is a proxy on
//!   127.0.0.1; sessionAffinity is ignored (round robin over Ready pods). Pods cannot
//!   resolve Service names (only pod names, see [`dns`]). No EndpointSlices.
//! - Writes go through the store directly (create, and update of `/status` with a
//!   resourceVersion precondition), so no field manager is recorded (the store keeps no
//!   managedFields anyway). The runtime never writes pod labels or annotations after
//!   creating a pod, so labels the operator moves (`role`) stay as it set them.
//! - Pod Events (Started, Unhealthy, Killing, BackOff) are recorded once per occurrence,
//!   without the count aggregation of a real kubelet.

pub mod dns;
pub mod kubelet;
pub mod probes;
pub mod services;
pub mod statefulset;
pub mod volumes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::local::api::selectors::{FieldSelector, LabelSelector};
use crate::local::api::store::EventType;
use crate::local::api::types::ResourceType;
use crate::local::api::Store;
use crate::local::sandbox::{self, NetMode, Network};

/// Settings of the runtime.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Pods live under `state_dir/pods/<ns>_<pod>/`.
    pub state_dir: PathBuf,
    /// Host path of the tandem-server binary (the pods' /usr/local/bin/tandem-server).
    pub server_bin: PathBuf,
    /// "cluster.local".
    pub cluster_domain: String,
    pub net_mode: NetMode,
    /// `[a-z0-9]{1,6}`: names the network objects of this instance.
    pub instance: String,
}

/// Errors of starting the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("local network: {0}")]
    Network(#[from] sandbox::SandboxError),
    #[error("the local API does not serve {0}")]
    MissingType(String),
    #[error("server binary {0} does not exist")]
    ServerBin(PathBuf),
}

/// The resource types the runtime reads and writes.
#[derive(Clone, Debug)]
pub(crate) struct Types {
    pub pods: ResourceType,
    pub statefulsets: ResourceType,
    pub pvcs: ResourceType,
    pub services: ResourceType,
    pub endpoints: ResourceType,
    pub configmaps: ResourceType,
    pub secrets: ResourceType,
}

impl Types {
    fn resolve(store: &Store) -> Result<Types, RuntimeError> {
        let get = |g: &str, v: &str, p: &str| {
            store
                .resolve(g, v, p)
                .ok_or_else(|| RuntimeError::MissingType(format!("{g}/{v} {p}")))
        };
        Ok(Types {
            pods: get("", "v1", "pods")?,
            statefulsets: get("apps", "v1", "statefulsets")?,
            pvcs: get("", "v1", "persistentvolumeclaims")?,
            services: get("", "v1", "services")?,
            endpoints: get("", "v1", "endpoints")?,
            configmaps: get("", "v1", "configmaps")?,
            secrets: get("", "v1", "secrets")?,
        })
    }
}

/// State shared by the runtime's tasks.
pub(crate) struct Shared {
    pub store: Arc<Store>,
    pub opts: RuntimeOptions,
    pub types: Types,
    pub network: Arc<Network>,
    /// Pods with an address, by `<ns>_<pod>` (for the hosts files).
    pub records: Mutex<BTreeMap<String, dns::PodRecord>>,
    /// Wakes the main loop (a pod got or lost its address, a worker ended).
    pub wake: Notify,
    pub endpoints: Mutex<BTreeMap<String, SocketAddr>>,
    /// Entries of endpoints.json that are not Services (e.g. `operator/metrics`), set by
    /// the process embedding the runtime; written along with the Services'.
    pub extra_endpoints: Mutex<BTreeMap<String, SocketAddr>>,
}

impl Shared {
    pub fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<Value> {
        self.store
            .list(rt, ns, &LabelSelector::default(), &FieldSelector::default())
            .0
    }

    pub fn pods_dir(&self) -> PathBuf {
        self.opts.state_dir.join("pods")
    }

    pub fn pod_dir(&self, key: &str) -> PathBuf {
        self.pods_dir().join(key)
    }

    /// The data of a ConfigMap (data + binaryData) or Secret (data + stringData).
    pub fn object_data(
        &self,
        ns: &str,
        src: volumes::Source,
        name: &str,
    ) -> Option<BTreeMap<String, Vec<u8>>> {
        use k8s_openapi::api::core::v1::{ConfigMap, Secret};
        match src {
            volumes::Source::ConfigMap => {
                let v = self.store.get(&self.types.configmaps, ns, name).ok()?;
                let cm: ConfigMap = serde_json::from_value(v).ok()?;
                let mut out: BTreeMap<String, Vec<u8>> = cm
                    .binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, b)| (k, b.0))
                    .collect();
                for (k, s) in cm.data.unwrap_or_default() {
                    out.insert(k, s.into_bytes());
                }
                Some(out)
            }
            volumes::Source::Secret => {
                let v = self.store.get(&self.types.secrets, ns, name).ok()?;
                let s: Secret = serde_json::from_value(v).ok()?;
                let mut out: BTreeMap<String, Vec<u8>> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, b)| (k, b.0))
                    .collect();
                for (k, s) in s.string_data.unwrap_or_default() {
                    out.insert(k, s.into_bytes());
                }
                Some(out)
            }
        }
    }

    /// Write endpoints.json atomically.
    pub fn write_endpoints_file(&self, map: &BTreeMap<String, SocketAddr>) {
        let extra = self
            .extra_endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let doc: BTreeMap<&String, String> = extra
            .iter()
            .chain(map.iter())
            .map(|(k, v)| (k, v.to_string()))
            .collect();
        let path = self.opts.state_dir.join("endpoints.json");
        let tmp = self.opts.state_dir.join(".endpoints.json.tmp");
        let body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        if std::fs::write(&tmp, body).is_ok() {
            if let Err(e) = std::fs::rename(&tmp, &path) {
                tracing::warn!("writing {}: {e}", path.display());
            }
        }
    }
}

/// The running runtime.
///
/// Dropping it without [`Runtime::shutdown`] tells its tasks to stop; containers whose
/// tasks are dropped (the tokio runtime going away) are killed with SIGKILL.
pub struct Runtime {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Runtime {
    /// Kill what a previous instance on this state dir left running, set up the network
    /// and start following the store.
    pub async fn start(store: Arc<Store>, opts: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        if !opts.server_bin.exists() {
            return Err(RuntimeError::ServerBin(opts.server_bin.clone()));
        }
        let types = Types::resolve(&store)?;
        let pods_dir = opts.state_dir.join("pods");
        std::fs::create_dir_all(&pods_dir).map_err(|source| RuntimeError::Io {
            path: pods_dir.clone(),
            source,
        })?;
        let instance = opts.instance.clone();
        let mode = opts.net_mode;
        let dir = pods_dir.clone();
        let network = tokio::task::spawn_blocking(move || {
            kill_leftovers(&dir);
            sandbox::sweep(&instance);
            Network::create(&instance, mode)
        })
        .await
        .map_err(|e| RuntimeError::Io {
            path: pods_dir.clone(),
            source: std::io::Error::other(e.to_string()),
        })??;
        let shared = Arc::new(Shared {
            store,
            opts,
            types,
            network: Arc::new(network),
            records: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            endpoints: Mutex::new(BTreeMap::new()),
            extra_endpoints: Mutex::new(BTreeMap::new()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(main_loop(shared.clone(), stop_rx));
        Ok(Runtime {
            shared,
            stop,
            task: Some(task),
        })
    }

    /// "<ns>/<service>" (and "<ns>/<service>:<port name>" for multi-port Services) -> the
    /// host address where the Service is reachable (also in `state_dir/endpoints.json`).
    pub fn endpoints(&self) -> BTreeMap<String, SocketAddr> {
        self.shared
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Record a non-Service address in endpoints.json (kept across the Services' updates).
    pub fn set_extra_endpoint(&self, key: &str, addr: SocketAddr) {
        self.shared
            .extra_endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), addr);
        let map = self.endpoints();
        self.shared.write_endpoints_file(&map);
    }

    /// Stop pods (SIGTERM, up to terminationGracePeriodSeconds capped at 10 s, SIGKILL),
    /// proxies and the network. Keeps the pods' directories and PVC data.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let net = self.shared.network.clone();
        let _ = tokio::task::spawn_blocking(move || net.shutdown()).await;
    }
}

async fn main_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut changes = shared.store.subscribe();
    let mut kubelet = kubelet::Kubelet::new(shared.clone());
    let mut services = services::Services::new(shared.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen_rv = shared.store.current_rv();
    let mut pvc_gone: Vec<(String, String)> = Vec::new();
    loop {
        if *stop.borrow() {
            break;
        }
        // Deleted claims: their directories go once no pod of that name runs.
        match shared.store.events_since(seen_rv) {
            Ok((events, rv)) => {
                seen_rv = rv;
                for e in events {
                    if e.plural == "persistentvolumeclaims" && e.etype == EventType::Deleted {
                        let name = e
                            .object
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        pvc_gone.push((e.namespace.clone(), name));
                    }
                }
            }
            Err(_) => seen_rv = shared.store.current_rv(),
        }
        statefulset::sync(&shared);
        kubelet.sync().await;
        pvc_gone.retain(|(ns, claim)| !remove_claim_dirs(&shared, &kubelet, ns, claim));
        services.sync().await;
        tokio::select! {
            _ = stop.changed() => {}
            _ = changes.changed() => {
                // Coalesce bursts of writes into one pass.
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            _ = tick.tick() => {}
            _ = shared.wake.notified() => {}
        }
    }
    kubelet.shutdown().await;
    services.shutdown().await;
}

/// Remove `pods/<ns>_*/pvc/<claim>` of pods that do not run; true when all are gone.
fn remove_claim_dirs(shared: &Shared, kubelet: &kubelet::Kubelet, ns: &str, claim: &str) -> bool {
    if shared.store.get(&shared.types.pvcs, ns, claim).is_ok() {
        // Re-created meanwhile: keep the data.
        return true;
    }
    let Ok(rd) = std::fs::read_dir(shared.pods_dir()) else {
        return true;
    };
    let prefix = format!("{ns}_");
    let mut done = true;
    for e in rd.flatten() {
        let key = e.file_name().to_string_lossy().into_owned();
        if !key.starts_with(&prefix) {
            continue;
        }
        let dir = e.path().join("pvc").join(claim);
        if !dir.exists() {
            continue;
        }
        if kubelet.is_active(&key) {
            done = false;
            continue;
        }
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!("removing {}: {e}", dir.display());
        }
    }
    done
}

/// The pid in `pods/*/pid` files whose processes still run and belong to `pods_dir`
/// (their environment names the pod directory, or their cwd/root is inside it).
pub fn leftover_pids(pods_dir: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(pods_dir) else {
        return out;
    };
    for e in rd.flatten() {
        let pod_dir = e.path();
        let Some(pid) = std::fs::read_to_string(pod_dir.join("pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if belongs_to(pid, &pod_dir) {
            out.push(pid);
        }
    }
    out
}

fn belongs_to(pid: u32, pod_dir: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let marker = format!("{}={}", kubelet::POD_DIR_ENV, pod_dir.display());
    if let Ok(env) = std::fs::read(proc.join("environ")) {
        if env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
            return true;
        }
    }
    ["cwd", "root"]
        .iter()
        .any(|l| std::fs::read_link(proc.join(l)).is_ok_and(|p| p.starts_with(pod_dir)))
}

/// Kill (SIGKILL, whole process group too) what a previous instance left running.
fn kill_leftovers(pods_dir: &Path) {
    for pid in leftover_pids(pods_dir) {
        tracing::warn!("killing pid {pid} left running by a previous local-mode instance");
        kubelet::signal(pid, rustix::process::Signal::KILL);
    }
    if let Ok(rd) = std::fs::read_dir(pods_dir) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path().join("pid"));
        }
    }
}
