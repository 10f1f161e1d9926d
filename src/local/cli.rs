//! `tandem-operator local`: the whole product on one machine, without a cluster.
//!
//! One process runs the embedded Kubernetes API ([`crate::local::api`]), the process
//! runtime ([`crate::local::runtime`]: StatefulSet controller, kubelet, Service proxies)
//! and the unmodified controller ([`crate::controller::run_with_client`], talking to the
//! API over HTTP through a kubeconfig like against any cluster).
//!
//! State directory (`--state-dir`, default `$XDG_STATE_HOME/tandem/local` or
//! `$HOME/.local/state/tandem/local`), scriptable by tests and users:
//! - `kubeconfig`: for kubectl and kube clients (`http://127.0.0.1:<port>`; the port is
//!   reused across restarts when it is free);
//! - `endpoints.json`: `"<namespace>/<service>"` -> `"host:port"` (written by the runtime);
//! - `pods/<namespace>_<pod>/`: `pid`, `log`, volumes and data of each pod;
//! - `api-state.json`: the API's objects (saved shortly after changes and on exit);
//! - `operator.log`: the controller's and runtime's log;
//! - `instance`: the id naming this run's network namespaces/bridge (`tnd<id>...`);
//! - `local.lock` + `local.pid`: one `local` process per state directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::controller;
use crate::crd::RedisReplication;
use crate::local::api::{self, LocalApi, Options, Store};
use crate::local::runtime::{Runtime, RuntimeOptions};
use crate::local::sandbox::{self, NetMode};
use crate::settings::Settings;

/// The example applied on a fresh state directory when no `-f` is given.
pub const DEFAULT_EXAMPLE: &str = include_str!("../../deploy/examples/minimal.yaml");

/// The field manager of resources applied with `-f`.
pub const FIELD_MANAGER: &str = "tandem-local";

/// How pods get their addresses.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetChoice {
    /// netns when running as root with a usable `ip`, else loopback.
    Auto,
    /// One network namespace and 10.x address per pod (root).
    Netns,
    /// Distinct 127.x addresses on the host's network (any user).
    Loopback,
}

/// `tandem-operator local` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct LocalArgs {
    /// Resources to apply (server-side apply) after start: YAML/JSON files, or directories
    /// of them. Default on a fresh state directory: a 3-pod RedisReplication "cache".
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// State directory [default: $XDG_STATE_HOME/tandem/local or ~/.local/state/tandem/local].
    #[arg(long, env = "TANDEM_LOCAL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The tandem-server binary [default: next to this executable, else on PATH].
    #[arg(long, env = "TANDEM_SERVER_BIN")]
    pub server_bin: Option<PathBuf>,
    /// Pod networking.
    #[arg(long, value_enum, default_value = "auto")]
    pub net: NetChoice,
    /// Cluster DNS domain of the pod names.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Do not run the controller in this process: a separate `tandem-operator run` with
    /// `KUBECONFIG=<state dir>/kubeconfig` manages the resources (the nemesis harness
    /// kills and restarts it on its own).
    #[arg(long)]
    pub no_controller: bool,
}

/// Run local mode until SIGINT/SIGTERM (blocking; builds its own tokio runtime).
pub fn main(args: LocalArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

/// The default state directory.
pub fn default_state_dir() -> anyhow::Result<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(x) = nonempty("XDG_STATE_HOME") {
        return Ok(PathBuf::from(x).join("tandem").join("local"));
    }
    if let Some(h) = nonempty("HOME") {
        return Ok(PathBuf::from(h).join(".local/state/tandem/local"));
    }
    bail!("neither XDG_STATE_HOME nor HOME is set: pass --state-dir")
}

/// `--server-bin`, else `tandem-server` next to the running executable, else on PATH.
pub fn find_server_bin(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        if p.is_file() {
            return Ok(std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
        }
        bail!("--server-bin {}: no such file", p.display());
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    if let Some(d) = &exe_dir {
        let p = d.join("tandem-server");
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join("tandem-server");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!(
        "tandem-server not found {}or on PATH: build it (`cargo build --release --workspace`) \
         or pass --server-bin",
        exe_dir
            .map(|d| format!("next to this executable in {} ", d.display()))
            .unwrap_or_default()
    )
}

/// Holds the state directory for one `local` process (flock on `local.lock`).
pub struct DirLock {
    file: std::fs::File,
    dir: PathBuf,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> anyhow::Result<DirLock> {
        let path = dir.join("local.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(dir.join("local.pid")).unwrap_or_default();
                bail!(
                    "another `tandem-operator local`{} is using {}; stop it or pass another --state-dir",
                    match pid.trim() {
                        "" => String::new(),
                        p => format!(" (pid {p})"),
                    },
                    dir.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        std::fs::write(dir.join("local.pid"), format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", dir.join("local.pid").display()))?;
        Ok(DirLock {
            file,
            dir: dir.to_path_buf(),
        })
    }

    /// Remove the pid and lock files, then unlock.
    pub fn release(self) {
        let _ = std::fs::remove_file(self.dir.join("local.pid"));
        let _ = std::fs::remove_file(self.dir.join("local.lock"));
        let _ = self.file.unlock();
    }
}

/// A fresh `[a-z0-9]{6}` instance id.
pub fn new_instance_id() -> String {
    use rand::Rng;
    const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..6)
        .map(|_| ALPHA[rng.gen_range(0..ALPHA.len())] as char)
        .collect()
}

/// The API port of a previous run, from its kubeconfig.
pub fn previous_port(kubeconfig: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(kubeconfig).ok()?;
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("server: http://127.0.0.1:")
            .and_then(|p| p.trim().parse().ok())
    })
}

/// Bind the API listener: the previous port when free, else any free port.
async fn bind_api(kubeconfig: &Path) -> anyhow::Result<TcpListener> {
    if let Some(port) = previous_port(kubeconfig) {
        if let Ok(l) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            return Ok(l);
        }
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("binding the local API on 127.0.0.1")
}

/// Create or replace the RedisReplication CRD (from the compiled-in definition).
pub fn register_crd(store: &Store) -> anyhow::Result<()> {
    use kube::CustomResourceExt;
    let crd_type = store
        .resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .ok_or_else(|| anyhow!("the local API serves no CustomResourceDefinitions"))?;
    let mut doc = serde_json::to_value(RedisReplication::crd())?;
    doc["apiVersion"] = json!("apiextensions.k8s.io/v1");
    doc["kind"] = json!("CustomResourceDefinition");
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let res = match store.create(&crd_type, "", doc.clone(), false) {
        Err(e) if e.reason == "AlreadyExists" => {
            store.update(&crd_type, "", &name, doc, false, false)
        }
        other => other,
    };
    res.map_err(|e| anyhow!("registering the RedisReplication CRD: {}", e.message))?;
    Ok(())
}

/// The manifests of `-f` paths: files as given, directories' `.yaml`/`.yml`/`.json`
/// files in name order.
pub fn read_inputs(paths: &[PathBuf]) -> anyhow::Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for p in paths {
        let files = if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
                })
                .collect();
            v.sort();
            v
        } else {
            vec![p.clone()]
        };
        for f in files {
            for doc in api::read_manifests(&f)? {
                out.push((f.display().to_string(), doc));
            }
        }
    }
    Ok(out)
}

/// Parse an inline multi-document YAML text (the embedded default example).
pub fn parse_yaml_docs(text: &str) -> anyhow::Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text)?;
    Ok(docs.into_iter().filter(|v| !v.is_null()).collect())
}

/// Server-side apply one manifest; creates its namespace first when missing.
pub fn apply_doc(store: &Store, doc: Value) -> anyhow::Result<String> {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if kind == "List" {
        bail!("List documents are not supported; put one resource per YAML document");
    }
    if let Some(ns) = doc.pointer("/metadata/namespace").and_then(Value::as_str) {
        if let Some(ns_type) = store.resolve("", "v1", "namespaces") {
            if store.get(&ns_type, "", ns).is_err() {
                let _ = store.create(&ns_type, "", json!({"metadata": {"name": ns}}), false);
            }
        }
    }
    let applied = store
        .apply_manifest(doc, FIELD_MANAGER)
        .map_err(|e| anyhow!("{kind}: {}", e.message))?;
    let ns = applied
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(|n| format!("{n}/"))
        .unwrap_or_default();
    let name = applied
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(format!("{} {ns}{name}", kind.to_lowercase()))
}

fn stamp() -> String {
    let now = api::store::now_rfc3339();
    // "YYYY-MM-DDTHH:MM:SSZ" -> "HH:MM:SS"
    now.get(11..19).unwrap_or(&now).to_string()
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "[{}] {line}", stamp());
    let _ = out.flush();
}

/// What progress lines are printed about: pods and RedisReplications.
#[derive(Default, PartialEq, Eq, Clone)]
struct Progress {
    pods: BTreeMap<String, String>,
    rrs: BTreeMap<String, String>,
}

fn pod_summary(pod: &Value) -> String {
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    let ready = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == "True");
    let ip = pod
        .pointer("/status/podIP")
        .and_then(Value::as_str)
        .map(|ip| format!(" {ip}"))
        .unwrap_or_default();
    let role = pod
        .pointer("/metadata/labels/tandem.dev~1role")
        .and_then(Value::as_str)
        .map(|r| format!(" role={r}"))
        .unwrap_or_default();
    let restarts = pod
        .pointer("/status/containerStatuses/0/restartCount")
        .and_then(Value::as_i64)
        .filter(|n| *n > 0)
        .map(|n| format!(" restarts={n}"))
        .unwrap_or_default();
    format!(
        "{phase}{}{ip}{role}{restarts}",
        if ready { " ready" } else { " not ready" }
    )
}

fn rr_summary(rr: &Value) -> String {
    let phase = rr
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("-");
    let ready = rr
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| {
            format!(
                "Ready={} ({})",
                c["status"].as_str().unwrap_or("?"),
                c["message"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_else(|| "Ready=unknown".into());
    let degraded = rr
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "Degraded" && c["status"] == "True")
        })
        .map(|c| format!(", Degraded: {}", c["message"].as_str().unwrap_or("")))
        .unwrap_or_default();
    format!("phase {phase}, {ready}{degraded}")
}

fn key_of(v: &Value) -> String {
    format!(
        "{}/{}",
        v.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        v.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
}

fn observe(store: &Store) -> Progress {
    let all = |g: &str, v: &str, p: &str| -> Vec<Value> {
        match store.resolve(g, v, p) {
            Some(rt) => {
                store
                    .list(&rt, None, &Default::default(), &Default::default())
                    .0
            }
            None => Vec::new(),
        }
    };
    Progress {
        pods: all("", "v1", "pods")
            .iter()
            .map(|p| (key_of(p), pod_summary(p)))
            .collect(),
        rrs: all("tandem.dev", "v1alpha1", "redisreplications")
            .iter()
            .map(|r| (key_of(r), rr_summary(r)))
            .collect(),
    }
}

fn report_changes(before: &Progress, now: &Progress) {
    for (what, b, n) in [
        ("pod", &before.pods, &now.pods),
        ("redisreplication", &before.rrs, &now.rrs),
    ] {
        for (k, v) in n {
            if b.get(k) != Some(v) {
                say(&format!("{what} {k}: {v}"));
            }
        }
        for k in b.keys() {
            if !n.contains_key(k) {
                say(&format!("{what} {k}: deleted"));
            }
        }
    }
}

/// The shell expression printing a Secret's password, for the redis-cli hint.
fn password_expr(store: &Store, kubeconfig: &Path, ns: &str, secret: &str) -> String {
    let stored_as_string = store
        .resolve("", "v1", "secrets")
        .and_then(|rt| store.get(&rt, ns, secret).ok())
        .is_some_and(|s| {
            s.pointer("/stringData/password").is_some() && s.pointer("/data/password").is_none()
        });
    let kc = kubeconfig.display();
    if stored_as_string {
        // Only if the API kept stringData as written (it folds it into data on writes).
        format!(
            "$(kubectl --kubeconfig {kc} -n {ns} get secret {secret} -o jsonpath='{{.stringData.password}}')"
        )
    } else {
        format!(
            "$(kubectl --kubeconfig {kc} -n {ns} get secret {secret} -o jsonpath='{{.data.password}}' | base64 -d)"
        )
    }
}

fn print_endpoints(store: &Store, kubeconfig: &Path, eps: &BTreeMap<String, SocketAddr>) {
    if eps.is_empty() {
        return;
    }
    let mut out = String::from("endpoints (also in endpoints.json):\n");
    for (svc, addr) in eps {
        out.push_str(&format!("    {svc:<40} {addr}\n"));
    }
    // One redis-cli line per RedisReplication's master Service.
    if let Some(rt) = store.resolve("tandem.dev", "v1alpha1", "redisreplications") {
        for rr in store
            .list(&rt, None, &Default::default(), &Default::default())
            .0
        {
            let key = key_of(&rr);
            let Some((ns, name)) = key.split_once('/') else {
                continue;
            };
            let Some(addr) = eps.get(&format!("{ns}/{name}-master")) else {
                continue;
            };
            let secret = rr
                .pointer("/spec/auth/secretName")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| format!("{name}-auth"));
            let auth_off = rr.pointer("/spec/auth/enabled") == Some(&json!(false));
            let pass = if auth_off {
                String::new()
            } else {
                format!(
                    " --pass \"{}\"",
                    password_expr(store, kubeconfig, ns, &secret)
                )
            };
            out.push_str(&format!(
                "  {key} master:\n    redis-cli -h {} -p {}{pass}\n",
                addr.ip(),
                addr.port()
            ));
        }
    }
    say(out.trim_end());
}

fn init_logging(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join("operator.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    Ok(())
}

/// The controller's settings: the defaults of `tandem-operator run`, metrics on a free
/// loopback port, the given cluster domain.
fn controller_settings(cluster_domain: &str, metrics: SocketAddr) -> anyhow::Result<Settings> {
    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        settings: Settings,
    }
    use clap::Parser;
    let w = Wrap::try_parse_from([
        "tandem-operator",
        "--metrics-addr",
        &metrics.to_string(),
        "--cluster-domain",
        cluster_domain,
    ])
    .map_err(|e| anyhow!("controller settings: {e}"))?;
    Ok(w.settings)
}

/// A loopback address with a port that was free a moment ago, for the controller's
/// metrics endpoint (the controller binds it itself; the address must be known here to
/// publish it). Falls back to port 0 (any port, not published usefully) if none is found.
async fn free_loopback_addr() -> SocketAddr {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    match tokio::net::TcpListener::bind(any).await {
        Ok(l) => l.local_addr().unwrap_or(any),
        Err(_) => any,
    }
}

async fn kube_client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .context("kubeconfig")?;
    kube::Client::try_from(config).context("kube client")
}

/// Wait for SIGINT or SIGTERM.
async fn stop_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    Ok(tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    })
}

/// The body of `tandem-operator local`.
pub async fn run(args: LocalArgs) -> anyhow::Result<()> {
    // Signals first, so a Ctrl-C during start-up is not lost (and does not kill us
    // before the cleanup).
    let (sig_tx, mut sig_rx) = tokio::sync::watch::channel::<Option<&'static str>>(None);
    let sig_task = tokio::spawn(async move {
        if let Ok(s) = stop_signal().await {
            let _ = sig_tx.send(Some(s));
        }
    });

    let dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => default_state_dir()?,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let server_bin = find_server_bin(args.server_bin.as_deref())?;
    // Unreadable or malformed -f input: fail before starting anything.
    let inputs = read_inputs(&args.files)?;
    let lock = DirLock::acquire(&dir)?;
    let res = run_locked(&args, inputs, &dir, server_bin, &mut sig_rx).await;
    lock.release();
    sig_task.abort();
    res
}

async fn run_locked(
    args: &LocalArgs,
    inputs: Vec<(String, Value)>,
    dir: &Path,
    server_bin: PathBuf,
    sig_rx: &mut tokio::sync::watch::Receiver<Option<&'static str>>,
) -> anyhow::Result<()> {
    init_logging(dir)?;
    // A previous run that died without cleaning up: remove its network objects.
    let instance_file = dir.join("instance");
    if let Ok(old) = std::fs::read_to_string(&instance_file) {
        let old = old.trim().to_string();
        if !old.is_empty() && old.len() <= 6 && old.bytes().all(|b| b.is_ascii_alphanumeric()) {
            let _ = tokio::task::spawn_blocking(move || sandbox::sweep(&old)).await;
        }
    }
    let instance = new_instance_id();
    std::fs::write(&instance_file, format!("{instance}\n"))
        .with_context(|| format!("writing {}", instance_file.display()))?;
    let net_mode = match args.net {
        NetChoice::Auto => NetMode::detect(),
        NetChoice::Netns => NetMode::Netns,
        NetChoice::Loopback => NetMode::Loopback,
    };

    let kubeconfig = dir.join("kubeconfig");
    let state_file = dir.join("api-state.json");
    let fresh = !state_file.exists();
    let listener = bind_api(&kubeconfig).await?;
    let api = LocalApi::start(
        listener,
        Options {
            state_file: Some(state_file),
            pods_dir: Some(dir.join("pods")),
            ..Options::default()
        },
    )
    .await?;
    let store = api.store().clone();
    register_crd(&store)?;
    // Atomically (temp + rename): scripts poll for this file and read it at once.
    let kubeconfig_tmp = dir.join("kubeconfig.tmp");
    api::write_kubeconfig(&kubeconfig_tmp, api.addr())
        .and_then(|()| std::fs::rename(&kubeconfig_tmp, &kubeconfig))
        .with_context(|| format!("writing {}", kubeconfig.display()))?;
    say(&format!(
        "tandem local: state {} (instance {instance}, {} networking, server {})",
        dir.display(),
        match net_mode {
            NetMode::Netns => "netns",
            NetMode::Loopback => "loopback",
        },
        server_bin.display()
    ));
    say(&format!(
        "API {} ; kubeconfig {}",
        api.url(),
        kubeconfig.display()
    ));

    if !fresh {
        let n = mark_pods_not_running(&store);
        if n > 0 {
            say(&format!(
                "{n} pod(s) from the previous run: restarting them"
            ));
        }
    }
    let runtime = match Runtime::start(
        store.clone(),
        RuntimeOptions {
            state_dir: dir.to_path_buf(),
            server_bin,
            cluster_domain: args.cluster_domain.clone(),
            net_mode,
            instance: instance.clone(),
        },
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            api.shutdown().await;
            return Err(anyhow!("starting the local runtime: {e}"));
        }
    };

    let metrics_addr = free_loopback_addr().await;
    let (stop_ctl, stop_ctl_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = match (
        kube_client(&kubeconfig).await,
        controller_settings(&args.cluster_domain, metrics_addr),
    ) {
        // Runs until stop like the controller would; an external one does the work.
        _ if args.no_controller => tokio::spawn(async move {
            let _ = stop_ctl_rx.await;
            Ok(())
        }),
        (Ok(client), Ok(settings)) => {
            tokio::spawn(controller::run_with_client(settings, client, async move {
                let _ = stop_ctl_rx.await;
            }))
        }
        (Err(e), _) | (_, Err(e)) => {
            runtime.shutdown().await;
            api.shutdown().await;
            return Err(e);
        }
    };

    runtime.set_extra_endpoint("operator/metrics", metrics_addr);
    say(&format!(
        "operator metrics http://{metrics_addr}/metrics (endpoints.json key operator/metrics)"
    ));

    let result = supervise(
        args,
        inputs,
        dir,
        &kubeconfig,
        &store,
        &runtime,
        fresh,
        sig_rx,
        controller,
    )
    .await;

    say("stopping: controller, pods, API");
    let _ = stop_ctl.send(());
    runtime.shutdown().await;
    api.shutdown().await;
    let _ = std::fs::remove_file(&instance_file);
    say("stopped; state kept in the state directory");
    result
}

/// After a restart no pod process runs yet, but the saved pod objects still say Running and
/// Ready from the previous run (as after a node reboot, before its kubelet reports). Report
/// them Pending and not ready, without an IP, so nothing routes to or trusts them until the
/// runtime publishes the new processes. Returns the number of pods changed.
pub fn mark_pods_not_running(store: &Store) -> usize {
    let Some(pods) = store.resolve("", "v1", "pods") else {
        return 0;
    };
    let now = api::store::now_rfc3339();
    let mut n = 0;
    for pod in store
        .list(&pods, None, &Default::default(), &Default::default())
        .0
    {
        let (Some(ns), Some(name)) = (
            pod.pointer("/metadata/namespace").and_then(Value::as_str),
            pod.pointer("/metadata/name").and_then(Value::as_str),
        ) else {
            continue;
        };
        let mut new = pod.clone();
        new["status"] = json!({
            "phase": "Pending",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "LocalModeRestarted",
                 "message": "tandem-operator local restarted; the container is starting again",
                 "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "False", "reason": "LocalModeRestarted",
                 "lastTransitionTime": now},
            ],
        });
        if store.update(&pods, ns, name, new, true, false).is_ok() {
            n += 1;
        }
    }
    n
}

/// Apply the inputs, then print progress until a signal (or the controller fails).
#[allow(clippy::too_many_arguments)]
async fn supervise(
    args: &LocalArgs,
    inputs: Vec<(String, Value)>,
    dir: &Path,
    kubeconfig: &Path,
    store: &Arc<Store>,
    runtime: &Runtime,
    fresh: bool,
    sig_rx: &mut tokio::sync::watch::Receiver<Option<&'static str>>,
    mut controller: tokio::task::JoinHandle<Result<(), controller::RunError>>,
) -> anyhow::Result<()> {
    let docs: Vec<(String, Value)> = if !args.files.is_empty() {
        inputs
    } else if fresh {
        parse_yaml_docs(DEFAULT_EXAMPLE)?
            .into_iter()
            .map(|d| ("the default example".to_string(), d))
            .collect()
    } else {
        Vec::new()
    };
    let mut failed = 0;
    for (from, doc) in docs {
        match apply_doc(store, doc) {
            Ok(what) => say(&format!("applied {what} ({from})")),
            Err(e) => {
                failed += 1;
                say(&format!("error: applying from {from}: {e}"));
            }
        }
    }
    if failed > 0 {
        say(&format!(
            "{failed} resource(s) were not applied; the others run"
        ));
    }
    say(&format!(
        "use: kubectl --kubeconfig {} get rr,pods,svc   (Ctrl-C stops everything; state and data stay in {})",
        kubeconfig.display(),
        dir.display()
    ));

    let mut changes = store.subscribe();
    let mut last = Progress::default();
    let mut last_eps = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = observe(store);
        if now != last {
            report_changes(&last, &now);
            last = now;
        }
        let eps = runtime.endpoints();
        if eps != last_eps {
            print_endpoints(store, kubeconfig, &eps);
            last_eps = eps;
        }
        tokio::select! {
            r = sig_rx.changed() => {
                let sig = if r.is_ok() { (*sig_rx.borrow()).unwrap_or("signal") } else { "signal" };
                say(&format!("{sig} received"));
                return Ok(());
            }
            r = &mut controller => {
                return match r {
                    Ok(Ok(())) => Err(anyhow!("the controller stopped unexpectedly")),
                    Ok(Err(e)) => Err(anyhow!("the controller failed: {e}")),
                    Err(e) => Err(anyhow!("the controller task failed: {e}")),
                };
            }
            _ = changes.changed() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ = tick.tick() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_example_is_one_redis_replication() {
        let docs = parse_yaml_docs(DEFAULT_EXAMPLE).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["kind"], "RedisReplication");
        assert_eq!(docs[0]["spec"]["replicas"], 3);
    }

    #[test]
    fn previous_port_is_read_from_the_generated_kubeconfig() {
        let dir = std::env::temp_dir().join(format!("tandem-cli-kc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kc = dir.join("kubeconfig");
        api::write_kubeconfig(&kc, "127.0.0.1:41234".parse().unwrap()).unwrap();
        assert_eq!(previous_port(&kc), Some(41234));
        assert_eq!(previous_port(&dir.join("missing")), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn instance_ids_fit_the_network_names() {
        for _ in 0..20 {
            let id = new_instance_id();
            assert_eq!(id.len(), 6);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        }
    }

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_with_the_pid() {
        let dir = std::env::temp_dir().join(format!("tandem-cli-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = DirLock::acquire(&dir).unwrap();
        let err = DirLock::acquire(&dir).err().expect("refused").to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        first.release();
        assert!(!dir.join("local.pid").exists());
        DirLock::acquire(&dir).unwrap().release();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn pods_of_a_previous_run_are_reported_not_running() {
        let store = Store::new(100);
        let pods = store.resolve("", "v1", "pods").unwrap();
        store
            .create(
                &pods,
                "default",
                json!({"metadata": {"name": "cache-0"}, "spec": {"containers": []},
                       "status": {"phase": "Running", "podIP": "10.1.2.3",
                                  "conditions": [{"type": "Ready", "status": "True"}]}}),
                false,
            )
            .unwrap();
        assert_eq!(mark_pods_not_running(&store), 1);
        let p = store.get(&pods, "default", "cache-0").unwrap();
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["conditions"][0]["status"], "False");
        assert!(p["status"].get("podIP").is_none());
    }

    #[test]
    fn crd_registration_serves_redisreplications() {
        let store = Store::new(100);
        register_crd(&store).unwrap();
        register_crd(&store).unwrap();
        assert!(store
            .resolve("tandem.dev", "v1alpha1", "redisreplications")
            .is_some());
        let what = apply_doc(&store, parse_yaml_docs(DEFAULT_EXAMPLE).unwrap().remove(0)).unwrap();
        assert_eq!(what, "redisreplication default/cache");
        let what = apply_doc(
            &store,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "fresh"}}),
        )
        .unwrap();
        assert_eq!(what, "configmap fresh/x");
    }
}
