//! The kubelet: one worker task per pod object (by UID) that runs the pod's first
//! container through the sandbox, restarts it, probes it and writes the pod status.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};
use tokio::process::Child;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::probes::{self, ProbeKind, ProbeSpec};
use super::{dns, volumes, Shared};
use crate::local::api::store::now_rfc3339;
use crate::local::sandbox::{self, Launch, PodNet};
use rustix::process::Signal;

/// Environment variable naming the pod directory in every container (lets a later
/// runtime on the same state dir recognise processes a dead instance left behind).
pub const POD_DIR_ENV: &str = "TANDEM_LOCAL_POD_DIR";
/// Longest stop grace period local mode waits for.
pub const MAX_GRACE: Duration = Duration::from_secs(10);
/// A container that ran this long gets its restart backoff reset.
const BACKOFF_RESET: Duration = Duration::from_secs(60);

/// Restart delay after the `n`-th consecutive failure (0-based): 1, 2, 4, 8, 10 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs([1u64, 2, 4, 8, 10][n.min(4) as usize])
}

/// Send a signal (`Signal::TERM`, `Signal::KILL`) to a process's group and to the process
/// (rustix: a plain kill(2), no child process). Errors (already gone) are ignored.
pub fn signal(pid: u32, sig: Signal) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .filter(|p| *p > 1)
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let _ = rustix::process::kill_process_group(pid, sig);
    let _ = rustix::process::kill_process(pid, sig);
}

struct Worker {
    uid: String,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// The pod workers, driven by the runtime's main loop.
pub(crate) struct Kubelet {
    shared: Arc<Shared>,
    workers: HashMap<String, Worker>,
    stopping: HashMap<String, JoinHandle<()>>,
    hosts_written: HashMap<String, String>,
}

fn key_of(pod: &Value) -> (String, String, String, String) {
    let g = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let ns = g("/metadata/namespace");
    let name = g("/metadata/name");
    (format!("{ns}_{name}"), ns, name, g("/metadata/uid"))
}

impl Kubelet {
    pub fn new(shared: Arc<Shared>) -> Kubelet {
        Kubelet {
            shared,
            workers: HashMap::new(),
            stopping: HashMap::new(),
            hosts_written: HashMap::new(),
        }
    }

    /// A worker runs or is stopping for this pod key.
    pub fn is_active(&self, key: &str) -> bool {
        self.workers.contains_key(key) || self.stopping.contains_key(key)
    }

    pub async fn sync(&mut self) {
        self.stopping.retain(|_, h| !h.is_finished());
        let pods = self.shared.list(&self.shared.types.pods, None);
        let mut wanted: HashMap<String, Value> = HashMap::new();
        for p in pods {
            if p.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let (key, ..) = key_of(&p);
            wanted.insert(key, p);
        }
        // Stop workers of pods that are gone or replaced by a new object.
        let gone: Vec<String> = self
            .workers
            .iter()
            .filter(|(k, w)| {
                w.handle.is_finished() || wanted.get(*k).is_none_or(|p| key_of(p).3 != w.uid)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(w) = self.workers.remove(&k) {
                let _ = w.stop.send(true);
                self.hosts_written.remove(&k);
                self.stopping.insert(k, w.handle);
            }
        }
        for (key, pod) in wanted {
            if self.workers.contains_key(&key) || self.stopping.contains_key(&key) {
                continue;
            }
            let (stop, stop_rx) = watch::channel(false);
            let uid = key_of(&pod).3;
            let shared = self.shared.clone();
            let handle = tokio::spawn(async move {
                let shared2 = shared.clone();
                run_pod(shared, pod, stop_rx).await;
                shared2.wake.notify_one();
            });
            self.workers.insert(key, Worker { uid, stop, handle });
        }
        self.write_hosts();
    }

    fn write_hosts(&mut self) {
        let records = self
            .shared
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for key in self.workers.keys() {
            if !records.contains_key(key) {
                continue;
            }
            let content = dns::hosts_content(key, &records, &self.shared.opts.cluster_domain);
            if self.hosts_written.get(key) == Some(&content) {
                continue;
            }
            match sandbox::write_hosts(&self.shared.pod_dir(key), &content) {
                Ok(()) => {
                    self.hosts_written.insert(key.clone(), content);
                }
                Err(e) => tracing::warn!("hosts file of pod {key}: {e}"),
            }
        }
    }

    /// Stop every pod and wait for them.
    pub async fn shutdown(&mut self) {
        for (k, w) in self.workers.drain() {
            let _ = w.stop.send(true);
            self.stopping.insert(k, w.handle);
        }
        for (_, h) in self.stopping.drain() {
            let _ = h.await;
        }
    }
}

/// A pod condition's state with the time it last changed.
struct Cond {
    status: bool,
    since: String,
}

/// What the worker knows about its pod, rendered into the pod status.
struct PodState {
    start_time: String,
    ip: Option<Ipv4Addr>,
    phase: &'static str,
    container: String,
    image: String,
    state: Value,
    last_state: Value,
    restart_count: i64,
    started: bool,
    ready: bool,
    not_ready_message: Option<String>,
    container_id: Option<String>,
    conds: HashMap<&'static str, Cond>,
}

impl PodState {
    fn cond(&mut self, t: &'static str, status: bool, now: &str) -> Value {
        let c = self.conds.entry(t).or_insert_with(|| Cond {
            status,
            since: now.to_string(),
        });
        if c.status != status {
            c.status = status;
            c.since = now.to_string();
        }
        json!({
            "type": t,
            "status": if status { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": c.since,
        })
    }

    fn render(&mut self) -> Value {
        let now = now_rfc3339();
        let mut conds = vec![
            self.cond("PodScheduled", true, &now),
            self.cond("Initialized", true, &now),
        ];
        let ready = self.ready;
        let mut cr = self.cond("ContainersReady", ready, &now);
        let mut r = self.cond("Ready", ready, &now);
        if !ready {
            let mut msg = format!("containers with unready status: [{}]", self.container);
            if let Some(m) = &self.not_ready_message {
                msg.push_str(": ");
                msg.push_str(m);
            }
            for c in [&mut cr, &mut r] {
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!(msg);
            }
        }
        conds.push(cr);
        conds.push(r);
        let mut cs = json!({
            "name": self.container,
            "image": self.image,
            "imageID": "local://tandem-server",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        });
        if let Some(id) = &self.container_id {
            cs["containerID"] = json!(id);
        }
        let mut st = json!({
            "phase": self.phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "conditions": conds,
            "containerStatuses": [cs],
            "qosClass": "BestEffort",
        });
        if let Some(ip) = self.ip {
            st["podIP"] = json!(ip.to_string());
            st["podIPs"] = json!([{"ip": ip.to_string()}]);
        }
        st
    }

    fn waiting(&mut self, reason: &str, message: &str) {
        self.state = json!({"waiting": {"reason": reason, "message": message}});
        self.ready = false;
        self.started = false;
    }
}

/// Write `status` to pod ns/name if it is still the object with `uid`.
fn write_status(shared: &Shared, ns: &str, name: &str, uid: &str, status: &Value) -> bool {
    let t = &shared.types.pods;
    let Ok(mut obj) = shared.store.get(t, ns, name) else {
        return false;
    };
    if obj.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
        return false;
    }
    if obj.get("status") == Some(status) {
        return true;
    }
    obj["status"] = status.clone();
    shared.store.update(t, ns, name, obj, true, false).is_ok()
}

/// Record a core v1 Event about a pod (what `kubectl describe pod` lists). Best effort.
fn event(shared: &Shared, ns: &str, name: &str, uid: &str, normal: bool, reason: &str, msg: &str) {
    let Some(rt) = shared.store.resolve("", "v1", "events") else {
        return;
    };
    let now = now_rfc3339();
    let obj = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": ns},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name,
            "uid": uid, "fieldPath": "spec.containers{server}"},
        "reason": reason,
        "message": msg,
        "type": if normal { "Normal" } else { "Warning" },
        "source": {"component": "kubelet", "host": super::statefulset::NODE_NAME},
        "reportingComponent": "kubelet",
        "reportingInstance": super::statefulset::NODE_NAME,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    if let Err(e) = shared.store.create(&rt, ns, obj, false) {
        tracing::debug!("event for pod {ns}/{name}: {}", e.message);
    }
}

/// The pod object ns/name if it still has `uid`.
fn current_pod(shared: &Shared, ns: &str, name: &str, uid: &str) -> Option<Pod> {
    let v = shared.store.get(&shared.types.pods, ns, name).ok()?;
    if v.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
        return None;
    }
    serde_json::from_value(v).ok()
}

/// Prepare the pod directory: a new pod object (UID) wipes the emptyDir volumes.
fn prepare_dir(pod_dir: &Path, uid: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(pod_dir)?;
    let uid_file = pod_dir.join("uid");
    let old = std::fs::read_to_string(&uid_file).unwrap_or_default();
    if old.trim() != uid {
        let vols = pod_dir.join("volumes");
        if vols.exists() {
            std::fs::remove_dir_all(&vols)?;
        }
        std::fs::write(&uid_file, uid)?;
    }
    Ok(())
}

struct Probes {
    startup: Option<ProbeSpec>,
    readiness: Option<ProbeSpec>,
    liveness: Option<ProbeSpec>,
}

fn parse_probes(c: &Container) -> Probes {
    let ports = c.ports.clone().unwrap_or_default();
    Probes {
        startup: c
            .startup_probe
            .as_ref()
            .map(|p| probes::parse_probe(p, &ports)),
        readiness: c
            .readiness_probe
            .as_ref()
            .map(|p| probes::parse_probe(p, &ports)),
        liveness: c
            .liveness_probe
            .as_ref()
            .map(|p| probes::parse_probe(p, &ports)),
    }
}

type ProbeResult = (ProbeKind, Result<(), String>);

fn spawn_probe(
    kind: ProbeKind,
    spec: ProbeSpec,
    ip: IpAddr,
    tx: mpsc::Sender<ProbeResult>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(spec.initial_delay).await;
        loop {
            let r = probes::run_once(&spec, ip).await;
            if tx.send((kind, r)).await.is_err() {
                return;
            }
            tokio::time::sleep(spec.period).await;
        }
    })
}

/// A started container. Dropped before it was reaped (the runtime's tasks dropped
/// without a shutdown, e.g. when its tokio runtime goes away), it is killed: no process
/// outlives its worker unnoticed.
struct Running {
    child: Child,
    pid: u32,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            signal(self.pid, Signal::KILL);
            let _ = self.child.start_kill();
        }
    }
}

/// Why a container run ended.
enum Ended {
    Exited(std::process::ExitStatus),
    Killed(String, Option<std::process::ExitStatus>),
    Stop,
}

/// Stop a container: SIGTERM to its process group, up to `grace`, then SIGKILL.
async fn terminate(child: &mut Child, grace: Duration) -> Option<std::process::ExitStatus> {
    let Some(pid) = child.id() else {
        return child.wait().await.ok();
    };
    signal(pid, Signal::TERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(r) => {
            signal(pid, Signal::KILL);
            r.ok()
        }
        Err(_) => {
            signal(pid, Signal::KILL);
            let _ = child.start_kill();
            child.wait().await.ok()
        }
    }
}

fn exit_code(st: &std::process::ExitStatus) -> (i64, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => (i64::from(c), None),
        (None, Some(s)) => (128 + i64::from(s), Some(s)),
        _ => (-1, None),
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// What a pod's runs share once its address is set up.
struct RunEnv {
    net: PodNet,
    ip_s: String,
    hostname: String,
    grace: Duration,
    restart_policy: String,
    probes: Probes,
}

/// What the next step of a pod's life is.
enum Next {
    /// Launch the container again.
    Again,
    /// The pod is gone from the API (or will not run again): release it.
    Stop,
}

/// One launched container process, for its status once it ends.
struct Attempt {
    pid: u32,
    pid_file: PathBuf,
    started_at: String,
    cid: String,
    run_start: Instant,
}

/// One pod of this node: its identity, its container and the status last written.
struct PodRun {
    shared: Arc<Shared>,
    key: String,
    ns: String,
    name: String,
    uid: String,
    pod: Pod,
    container: Container,
    pod_dir: PathBuf,
    st: PodState,
    written: Value,
}

/// Sleeps `delay` unless the pod is stopped first.
async fn pause(stop: &mut watch::Receiver<bool>, delay: Duration) -> Next {
    tokio::select! {
        _ = stopped(stop) => Next::Stop,
        _ = tokio::time::sleep(delay) => Next::Again,
    }
}

/// Starts the readiness and liveness probes (after the startup probe succeeded, or at once).
fn start_probes(
    probes: &Probes,
    ip: IpAddr,
    tx: &mpsc::Sender<ProbeResult>,
    tasks: &mut Vec<JoinHandle<()>>,
) {
    if let Some(p) = &probes.readiness {
        tasks.push(spawn_probe(ProbeKind::Readiness, p.clone(), ip, tx.clone()));
    }
    if let Some(p) = &probes.liveness {
        tasks.push(spawn_probe(ProbeKind::Liveness, p.clone(), ip, tx.clone()));
    }
}

impl PodRun {
    fn new(shared: Arc<Shared>, pod_value: Value) -> Option<Self> {
        let (key, ns, name, uid) = key_of(&pod_value);
        let pod: Pod = match serde_json::from_value(pod_value) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("pod {ns}/{name}: cannot read its spec: {e}");
                return None;
            }
        };
        let container = pod.spec.as_ref()?.containers.first().cloned()?;
        let st = PodState {
            start_time: now_rfc3339(),
            ip: None,
            phase: "Pending",
            container: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            state: json!({"waiting": {"reason": "ContainerCreating"}}),
            last_state: json!({}),
            restart_count: 0,
            started: false,
            ready: false,
            not_ready_message: None,
            container_id: None,
            conds: HashMap::new(),
        };
        Some(PodRun {
            pod_dir: shared.pod_dir(&key),
            shared,
            key,
            ns,
            name,
            uid,
            pod,
            container,
            st,
            written: Value::Null,
        })
    }

    /// Writes the pod status when it changed since the last successful write.
    fn publish(&mut self) {
        let s = self.st.render();
        if s != self.written && write_status(&self.shared, &self.ns, &self.name, &self.uid, &s) {
            self.written = s;
        }
    }

    fn event(&self, normal: bool, reason: &str, msg: &str) {
        event(
            &self.shared,
            &self.ns,
            &self.name,
            &self.uid,
            normal,
            reason,
            msg,
        );
    }

    /// The pod's address, retried every 2 s (`None`: stopped meanwhile).
    async fn attach_network(&mut self, stop: &mut watch::Receiver<bool>) -> Option<PodNet> {
        loop {
            let netw = self.shared.network.clone();
            let k = self.key.clone();
            match tokio::task::spawn_blocking(move || netw.attach(&k)).await {
                Ok(Ok(n)) => return Some(n),
                Ok(Err(e)) => self
                    .st
                    .waiting("ContainerCreating", &format!("network: {e}")),
                Err(e) => self
                    .st
                    .waiting("ContainerCreating", &format!("network: {e}")),
            }
            self.publish();
            if let Next::Stop = pause(stop, Duration::from_secs(2)).await {
                return None;
            }
        }
    }

    /// Records the pod's DNS name and address; the settings every run of it shares.
    fn register(&mut self, net: PodNet) -> RunEnv {
        self.st.ip = Some(net.ip);
        let spec = self.pod.spec.clone().unwrap_or_default();
        let hostname = spec
            .hostname
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| self.name.clone());
        self.shared
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                self.key.clone(),
                dns::PodRecord {
                    namespace: self.ns.clone(),
                    name: self.name.clone(),
                    hostname: hostname.clone(),
                    subdomain: spec.subdomain.clone(),
                    ip: net.ip,
                },
            );
        self.shared.wake.notify_one();
        RunEnv {
            ip_s: net.ip.to_string(),
            net,
            hostname,
            grace: Duration::from_secs(
                spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64
            )
            .min(MAX_GRACE),
            restart_policy: spec.restart_policy.unwrap_or_else(|| "Always".into()),
            probes: parse_probes(&self.container),
        }
    }

    /// Volumes, environment and hosts file of one launch.
    fn prepare_launch(&self, env: &RunEnv) -> Result<Launch, (&'static str, String)> {
        let lookup = |src: volumes::Source, n: &str| self.shared.object_data(&self.ns, src, n);
        volumes::materialise(&self.pod_dir, &self.pod, &env.ip_s, &lookup)
            .map_err(|e| ("ContainerCreating", e.to_string()))?;
        let mut vars = volumes::resolve_env(&self.pod, &self.container, &env.ip_s, &lookup)
            .map_err(|e| ("CreateContainerConfigError", e.to_string()))?;
        let mounts = volumes::mounts(&self.pod_dir, &self.pod, &self.container)
            .map_err(|e| ("CreateContainerConfigError", e.to_string()))?;
        if !vars.iter().any(|(k, _)| k == "PATH") {
            // What container images usually set.
            vars.insert(
                0,
                (
                    "PATH".to_string(),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
                ),
            );
        }
        vars.push((POD_DIR_ENV.to_string(), self.pod_dir.display().to_string()));
        if let Some(hosts) = {
            let records = self
                .shared
                .records
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            records
                .contains_key(&self.key)
                .then(|| dns::hosts_content(&self.key, &records, &self.shared.opts.cluster_domain))
        } {
            if let Err(e) = sandbox::write_hosts(&self.pod_dir, &hosts) {
                tracing::warn!("hosts file of pod {}: {e}", self.key);
            }
        }
        Ok(Launch {
            pod_dir: self.pod_dir.clone(),
            net: env.net.clone(),
            hostname: env.hostname.clone(),
            mounts,
            command: volumes::command_line(&self.container, &vars),
            env: vars,
            server_bin: self.shared.opts.server_bin.clone(),
            log: self.pod_dir.join("log"),
            workdir: self.container.working_dir.clone().filter(|w| !w.is_empty()),
        })
    }

    /// One launch of the container, until it ends or the pod is stopped.
    async fn run_once(
        &mut self,
        env: &RunEnv,
        failures: &mut u32,
        stop: &mut watch::Receiver<bool>,
    ) -> Next {
        let launch = match self.prepare_launch(env) {
            Ok(l) => l,
            Err((reason, msg)) => {
                self.st.waiting(reason, &msg);
                self.publish();
                return pause(stop, Duration::from_secs(1)).await;
            }
        };
        // Where this run's output starts in the (appended) log: `kubectl logs --previous`
        // reads the run before the last offset, the API's log endpoint the last one.
        record_log_start(&launch.log);
        let child = match sandbox::spawn(&launch) {
            Ok(c) => c,
            Err(e) => {
                self.st.waiting("RunContainerError", &e.to_string());
                self.publish();
                let d = backoff(*failures);
                *failures += 1;
                return pause(stop, d).await;
            }
        };
        let pid = child.id().unwrap_or(0);
        let mut running = Running { child, pid };
        let attempt = Attempt {
            pid,
            pid_file: self.pod_dir.join("pid"),
            started_at: now_rfc3339(),
            cid: format!("local://{pid}"),
            run_start: Instant::now(),
        };
        if let Err(e) = std::fs::write(&attempt.pid_file, format!("{pid}\n")) {
            tracing::warn!("{}: {e}", attempt.pid_file.display());
        }
        self.st.container_id = Some(attempt.cid.clone());
        self.st.phase = "Running";
        self.st.state = json!({"running": {"startedAt": attempt.started_at}});
        self.st.started = env.probes.startup.is_none();
        self.st.ready = self.st.started && env.probes.readiness.is_none();
        self.st.not_ready_message = None;
        self.publish();
        self.event(
            true,
            "Started",
            &format!("Started container {} (pid {pid})", self.container.name),
        );
        let ended = self.supervise(&mut running.child, env, stop).await;
        if let Ended::Stop = ended {
            let _ = terminate(&mut running.child, env.grace).await;
            let _ = std::fs::remove_file(&attempt.pid_file);
            return Next::Stop;
        }
        self.after_exit(ended, &attempt, env, failures, stop).await
    }

    /// Watches the running container: its exit, its probes, and a 1 s resync of its volumes.
    async fn supervise(
        &mut self,
        child: &mut Child,
        env: &RunEnv,
        stop: &mut watch::Receiver<bool>,
    ) -> Ended {
        let (tx, mut rx) = mpsc::channel::<ProbeResult>(16);
        let ip = IpAddr::V4(env.net.ip);
        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        if let Some(p) = &env.probes.startup {
            tasks.push(spawn_probe(ProbeKind::Startup, p.clone(), ip, tx.clone()));
        } else {
            start_probes(&env.probes, ip, &tx, &mut tasks);
        }
        let mut counts: HashMap<&'static str, (u32, u32)> = HashMap::new();
        let mut resync = tokio::time::interval(Duration::from_secs(1));
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ended = loop {
            tokio::select! {
                _ = stopped(stop) => break Ended::Stop,
                r = child.wait() => match r {
                    Ok(s) => break Ended::Exited(s),
                    Err(e) => break Ended::Killed(format!("wait: {e}"), None),
                },
                Some((kind, res)) = rx.recv() => {
                    let verdict = self.on_probe(kind, &res, &env.probes, &mut counts);
                    match verdict {
                        ProbeVerdict::Kill(m) => {
                            let s = terminate(child, env.grace).await;
                            break Ended::Killed(m, s);
                        }
                        ProbeVerdict::Started => {
                            for t in tasks.drain(..) {
                                t.abort();
                            }
                            start_probes(&env.probes, ip, &tx, &mut tasks);
                        }
                        ProbeVerdict::Continue => {}
                    }
                    self.publish();
                }
                _ = resync.tick() => {
                    // The current object: downwardAPI files follow label changes.
                    let fresh = current_pod(&self.shared, &self.ns, &self.name, &self.uid);
                    let p = fresh.as_ref().unwrap_or(&self.pod);
                    let lookup =
                        |src: volumes::Source, n: &str| self.shared.object_data(&self.ns, src, n);
                    if let Err(e) = volumes::materialise(&self.pod_dir, p, &env.ip_s, &lookup) {
                        tracing::debug!("pod {}: volume resync: {e}", self.key);
                    }
                    self.publish();
                }
            }
        };
        for t in tasks.drain(..) {
            t.abort();
        }
        ended
    }

    /// Applies one probe result to the container state.
    fn on_probe(
        &mut self,
        kind: ProbeKind,
        res: &Result<(), String>,
        probes: &Probes,
        counts: &mut HashMap<&'static str, (u32, u32)>,
    ) -> ProbeVerdict {
        let spec = match kind {
            ProbeKind::Startup => probes.startup.as_ref(),
            ProbeKind::Readiness => probes.readiness.as_ref(),
            ProbeKind::Liveness => probes.liveness.as_ref(),
        };
        let Some(spec) = spec else {
            return ProbeVerdict::Continue;
        };
        let c = counts.entry(kind.as_str()).or_insert((0, 0));
        match res {
            Ok(()) => {
                c.0 += 1;
                c.1 = 0;
            }
            Err(_) => {
                c.1 += 1;
                c.0 = 0;
            }
        }
        let (succ, fail) = *c;
        match kind {
            ProbeKind::Startup => {
                if res.is_ok() && succ >= 1 && !self.st.started {
                    self.st.started = true;
                    self.st.ready = probes.readiness.is_none();
                    return ProbeVerdict::Started;
                }
                if let Err(m) = res {
                    self.st.not_ready_message = Some(format!("Startup probe failed: {m}"));
                    if fail >= spec.failure_threshold {
                        let msg = format!("Startup probe failed: {m}");
                        self.event(false, "Unhealthy", &msg);
                        return ProbeVerdict::Kill(msg);
                    }
                }
            }
            ProbeKind::Readiness => match res {
                Ok(()) => {
                    if succ >= spec.success_threshold {
                        self.st.ready = true;
                        self.st.not_ready_message = None;
                    }
                }
                Err(m) => {
                    if !self.st.ready || fail >= spec.failure_threshold {
                        self.st.not_ready_message = Some(format!("Readiness probe failed: {m}"));
                    }
                    if fail >= spec.failure_threshold {
                        if self.st.ready || fail == spec.failure_threshold {
                            self.event(false, "Unhealthy", &format!("Readiness probe failed: {m}"));
                        }
                        self.st.ready = false;
                    }
                }
            },
            ProbeKind::Liveness => {
                if let Err(m) = res {
                    if fail >= spec.failure_threshold {
                        self.event(false, "Unhealthy", &format!("Liveness probe failed: {m}"));
                        self.event(
                            true,
                            "Killing",
                            &format!(
                                "Container {} failed liveness probe, will be restarted",
                                self.container.name
                            ),
                        );
                        return ProbeVerdict::Kill(format!("Liveness probe failed: {m}"));
                    }
                }
            }
        }
        ProbeVerdict::Continue
    }

    /// Records how the container ended, then restarts it after a back-off or, per the restart
    /// policy, leaves it terminated.
    async fn after_exit(
        &mut self,
        ended: Ended,
        attempt: &Attempt,
        env: &RunEnv,
        failures: &mut u32,
        stop: &mut watch::Receiver<bool>,
    ) -> Next {
        let (exit, reason, message) = match ended {
            Ended::Stop => return Next::Stop,
            Ended::Exited(s) => {
                let (code, _) = exit_code(&s);
                (Some(s), if code == 0 { "Completed" } else { "Error" }, None)
            }
            Ended::Killed(m, s) => (s, "Error", Some(m)),
        };
        signal(attempt.pid, Signal::KILL);
        let _ = std::fs::remove_file(&attempt.pid_file);
        let (code, sig) = exit.as_ref().map(exit_code).unwrap_or((137, Some(9)));
        let mut term = json!({
            "exitCode": code,
            "reason": reason,
            "startedAt": attempt.started_at,
            "finishedAt": now_rfc3339(),
            "containerID": attempt.cid,
        });
        if let Some(sig) = sig {
            term["signal"] = json!(sig);
        }
        if let Some(m) = &message {
            term["message"] = json!(m);
            tracing::info!("pod {}: {m}; restarting", self.key);
        }
        if attempt.run_start.elapsed() >= BACKOFF_RESET {
            *failures = 0;
        }
        let restart = match env.restart_policy.as_str() {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        if !restart {
            self.st.state = json!({"terminated": term});
            self.st.ready = false;
            self.st.phase = if code == 0 { "Succeeded" } else { "Failed" };
            self.publish();
            stopped(stop).await;
            return Next::Stop;
        }
        self.st.last_state = json!({"terminated": term});
        self.st.restart_count += 1;
        self.event(
            false,
            "BackOff",
            &format!(
                "Back-off restarting failed container {} (exit code {code})",
                self.container.name
            ),
        );
        let delay = backoff(*failures);
        *failures += 1;
        self.st.waiting(
            "CrashLoopBackOff",
            &format!(
                "back-off {}s restarting failed container={} pod={}_{}({})",
                delay.as_secs(),
                self.container.name,
                self.name,
                self.ns,
                self.uid
            ),
        );
        self.publish();
        pause(stop, delay).await
    }

    /// Gone from the API: release the address (the directory stays).
    async fn release(&self) {
        self.shared
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
        let netw = self.shared.network.clone();
        let k = self.key.clone();
        match tokio::task::spawn_blocking(move || netw.detach(&k)).await {
            Ok(Err(e)) => tracing::warn!("pod {}: detach: {e}", self.key),
            Err(e) => tracing::warn!("pod {}: detach: {e}", self.key),
            Ok(Ok(())) => {}
        }
    }
}

/// What a probe result asks of the container.
enum ProbeVerdict {
    Continue,
    /// The startup probe succeeded: start the readiness and liveness probes.
    Started,
    /// Kill the container (startup or liveness probe failed too often), with the message.
    Kill(String),
}

/// Append the current length of `log` to `log.starts` (one decimal offset per line).
fn record_log_start(log: &std::path::Path) {
    use std::io::Write;
    let len = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let starts = log.with_extension("starts");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&starts)
        .and_then(|mut f| writeln!(f, "{len}"));
    if let Err(e) = written {
        tracing::warn!("recording the log start in {}: {e}", starts.display());
    }
}

/// A pod's life on this node: directory, address, then container runs with restarts, until
/// the pod is deleted (`stop`).
async fn run_pod(shared: Arc<Shared>, pod_value: Value, mut stop: watch::Receiver<bool>) {
    let Some(mut run) = PodRun::new(shared, pod_value) else {
        stopped(&mut stop).await;
        return;
    };
    if let Err(e) = prepare_dir(&run.pod_dir, &run.uid) {
        run.st
            .waiting("ContainerCreating", &format!("pod directory: {e}"));
        run.publish();
        stopped(&mut stop).await;
        return;
    }
    let Some(net) = run.attach_network(&mut stop).await else {
        return;
    };
    let env = run.register(net);
    let mut failures: u32 = 0;
    while !*stop.borrow() {
        if let Next::Stop = run.run_once(&env, &mut failures, &mut stop).await {
            break;
        }
    }
    run.release().await;
}

/// The pid recorded for a pod directory, if any.
pub fn pid_of(pod_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(pod_dir.join("pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `pods/<key>` paths of a state directory.
pub fn pod_dirs(state_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state_dir.join("pods"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_sequence() {
        let secs: Vec<u64> = (0..7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 10, 10, 10]);
    }

    #[test]
    fn conditions_keep_transition_times_and_explain_unready() {
        let mut st = PodState {
            start_time: "t0".into(),
            ip: Some(Ipv4Addr::new(10, 0, 0, 2)),
            phase: "Running",
            container: "server".into(),
            image: "img".into(),
            state: json!({"running": {"startedAt": "t0"}}),
            last_state: json!({}),
            restart_count: 0,
            started: true,
            ready: false,
            not_ready_message: Some(
                "Readiness probe failed: exec probes are not supported in local mode".into(),
            ),
            container_id: Some("local://42".into()),
            conds: HashMap::new(),
        };
        let s = st.render();
        assert_eq!(s["podIP"], "10.0.0.2");
        assert_eq!(s["containerStatuses"][0]["containerID"], "local://42");
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "False");
        assert!(ready["message"].as_str().unwrap().contains("exec probes"));
        st.conds.get_mut("Ready").unwrap().since = "before".into();
        let again = st.render();
        let r2 = again["conditions"][3].clone();
        assert_eq!(r2["lastTransitionTime"], "before", "no flip: time kept");
        st.ready = true;
        let flipped = st.render();
        assert_ne!(flipped["conditions"][3]["lastTransitionTime"], "before");
        assert_eq!(flipped["conditions"][3]["status"], "True");
    }
}
