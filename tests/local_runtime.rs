//! Local mode's process runtime (src/local/runtime) with real tandem-server pods: the
//! embedded API + `Runtime`, resources created by hand (no operator).
//!
//! Needs `cargo build -p tandem-server` first. Netns mode needs root; without root that
//! test prints why it is skipped (under CI=true it fails instead).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tandem_operator::local::api::selectors::{FieldSelector, LabelSelector};
use tandem_operator::local::api::store::{DeleteOptions, Patch};
use tandem_operator::local::api::types::ResourceType;
use tandem_operator::local::api::{LocalApi, Options, Store};
use tandem_operator::local::runtime::{Runtime, RuntimeOptions};
use tandem_operator::local::sandbox::{self, NetMode};
use tokio::net::TcpListener;

const DEADLINE: Duration = Duration::from_secs(40);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn server_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir of the test binary");
    let bin = dir.join("tandem-server");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p tandem-server` first",
        bin.display()
    );
    bin
}

fn pids_in(dir: &Path) -> Vec<u32> {
    std::fs::read_dir(dir.join("pods"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("pid")).ok())
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    // Gone, or a zombie, counts as dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

/// Kills every pid in pods/*/pid, sweeps the instance and removes the state dir on drop,
/// also when an assertion failed.
struct Guard {
    instance: String,
    dir: PathBuf,
}

impl Guard {
    fn new(instance: &str) -> Guard {
        let dir =
            std::env::temp_dir().join(format!("tandem-runtime-{instance}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        sandbox::sweep(instance);
        Guard {
            instance: instance.to_string(),
            dir,
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for pid in pids_in(&self.dir) {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{pid}"), &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status();
        }
        sandbox::sweep(&self.instance);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends one command; the reply as text ("+OK", bulk without "$", "-ERR ...").
fn call(addr: SocketAddr, args: &[&str]) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    if let Some(n) = line.strip_prefix('$') {
        let n: i64 = n.parse().map_err(std::io::Error::other)?;
        if n < 0 {
            return Ok("(nil)".into());
        }
        let mut buf = vec![0u8; n as usize + 2];
        r.read_exact(&mut buf)?;
        buf.truncate(n as usize);
        return Ok(String::from_utf8_lossy(&buf).into_owned());
    }
    Ok(line)
}

async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {DEADLINE:?} waiting for {what}");
}

struct Env {
    store: Arc<Store>,
    api: Option<LocalApi>,
    runtime: Option<Runtime>,
    pods: ResourceType,
    sts: ResourceType,
    guard: Guard,
}

const START_SH: &str = r#"#!/bin/sh
# Bind where the sandbox says (Loopback mode), else everywhere.
BIND="${TANDEM_BIND:-0.0.0.0}"
ORD="${HOSTNAME##*-}"
if [ "$ORD" = "0" ]; then
  exec /usr/local/bin/tandem-server /etc/cfg/tandem.conf --bind "$BIND"
fi
exec /usr/local/bin/tandem-server /etc/cfg/tandem.conf --bind "$BIND" \
  --replicaof r-0.r-hl.default.svc.cluster.local 6379
"#;

fn manifests() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
        "data": {
            // protected-mode no: the pods are reached from other network namespaces
            // without a password (Redis 7.0's protected mode would refuse them).
            "tandem.conf": "port 6379\nbind 0.0.0.0\nprotected-mode no\ndir /data\nsave \"\"\nappendonly no\n",
            "start.sh": START_SH,
        }}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "r-hl"},
            "spec": {"clusterIP": "None", "selector": {"app": "r"},
                     "ports": [{"name": "redis", "port": 6379}]}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "r-master"},
            "spec": {"selector": {"app": "r", "role": "master"},
                     "ports": [{"name": "redis", "port": 6379, "targetPort": "redis"}]}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "r"},
        "spec": {
            "replicas": 3,
            "serviceName": "r-hl",
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"},
            "selector": {"matchLabels": {"app": "r"}},
            "template": {
                "metadata": {"labels": {"app": "r"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "server",
                        "image": "ignored",
                        "command": ["/bin/sh", "/etc/cfg/start.sh"],
                        "ports": [{"name": "redis", "containerPort": 6379}],
                        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                        "readinessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 1},
                        "livenessProbe": {"tcpSocket": {"port": "redis"}, "initialDelaySeconds": 5, "periodSeconds": 2, "failureThreshold": 5},
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/cfg"},
                            {"name": "data", "mountPath": "/data"}
                        ]
                    }],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "cfg", "defaultMode": 0o555}},
                        {"name": "data", "emptyDir": {}}
                    ]
                }
            }
        }}),
    ]
}

async fn start(instance: &str, mode: NetMode) -> Env {
    let guard = Guard::new(instance);
    let api = LocalApi::start(
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        Options::default(),
    )
    .await
    .expect("start local api");
    let store = api.store().clone();
    let runtime = Runtime::start(
        store.clone(),
        RuntimeOptions {
            state_dir: guard.dir.clone(),
            server_bin: server_bin(),
            cluster_domain: "cluster.local".into(),
            net_mode: mode,
            instance: instance.into(),
        },
    )
    .await
    .expect("start runtime");
    let pods = store.resolve("", "v1", "pods").expect("pods type");
    let sts = store
        .resolve("apps", "v1", "statefulsets")
        .expect("sts type");
    for m in manifests() {
        store.apply_manifest(m, "test").expect("apply");
    }
    Env {
        store,
        api: Some(api),
        runtime: Some(runtime),
        pods,
        sts,
        guard,
    }
}

impl Env {
    fn pod(&self, name: &str) -> Option<Value> {
        self.store.get(&self.pods, "default", name).ok()
    }

    fn pod_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .store
            .list(
                &self.pods,
                Some("default"),
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .0
            .iter()
            .filter_map(|p| p.pointer("/metadata/name")?.as_str().map(String::from))
            .collect();
        v.sort();
        v
    }

    fn ready(&self, name: &str) -> Option<Value> {
        let p = self.pod(name)?;
        let ok = p.pointer("/status/phase") == Some(&json!("Running"))
            && p.pointer("/status/conditions")?
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ok.then_some(p)
    }

    async fn wait_ready(&self, names: &[&str]) {
        for n in names {
            wait_for(&format!("pod {n} Running and Ready"), || self.ready(n)).await;
        }
    }

    fn ip(&self, name: &str) -> SocketAddr {
        let p = self.pod(name).expect("pod exists");
        let ip = p
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .expect("pod IP");
        SocketAddr::new(ip.parse().expect("ip"), 6379)
    }

    fn pod_dir(&self, name: &str) -> PathBuf {
        self.guard.dir.join("pods").join(format!("default_{name}"))
    }

    fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.pod_dir(name).join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn label(&self, name: &str, labels: Value) {
        self.store
            .patch(
                &self.pods,
                "default",
                name,
                Patch::Merge(json!({"metadata": {"labels": labels}})),
                false,
                false,
            )
            .expect("label pod");
    }

    fn scale(&self, n: i64) {
        self.scale_sts("r", n)
    }

    fn scale_sts(&self, name: &str, n: i64) {
        self.store
            .patch(
                &self.sts,
                "default",
                name,
                Patch::Merge(json!({"spec": {"replicas": n}})),
                false,
                false,
            )
            .expect("scale");
    }

    fn master_endpoint(&self) -> Option<SocketAddr> {
        self.runtime
            .as_ref()?
            .endpoints()
            .get("default/r-master")
            .copied()
    }

    fn endpoints_file(&self) -> BTreeMap<String, String> {
        std::fs::read(self.guard.dir.join("endpoints.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

impl Drop for Env {
    /// A failed test still stops the runtime (pods, proxies, network) before the guard
    /// kills what is left and removes the state dir.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(30), rt.shutdown()).await;
                })
            });
        }
    }
}

fn is_server(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("tandem-server"))
}

fn linked(addr: SocketAddr) -> Option<()> {
    let info = call(addr, &["INFO", "replication"]).ok()?;
    (info.contains("role:slave") && info.contains("master_link_status:up")).then_some(())
}

/// Shut down and check that nothing of the instance is left.
async fn shutdown_clean(mut env: Env, pids: Vec<u32>) {
    let rt = env.runtime.take().expect("runtime");
    tokio::time::timeout(Duration::from_secs(30), rt.shutdown())
        .await
        .expect("shutdown within 30 s");
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still runs after shutdown");
    }
    assert!(pids_in(&env.guard.dir).is_empty(), "pid files removed");
    let netns = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let prefix = format!("tnd{}", env.guard.instance);
    assert!(
        !netns.lines().any(|l| l.starts_with(&prefix)),
        "network namespaces left: {netns}"
    );
    assert!(
        env.pod_dir("r-0").join("volumes").exists(),
        "pod directories are kept"
    );
    if let Some(api) = env.api.take() {
        api.shutdown().await;
    }
}

/// The whole life cycle in one run (pods are expensive to start).
async fn life_cycle(instance: &str, mode: NetMode) {
    let env = start(instance, mode).await;
    env.wait_ready(&["r-0", "r-1", "r-2"]).await;

    // Identity, pid files, status details.
    for n in ["r-0", "r-1", "r-2"] {
        let p = env.pod(n).unwrap();
        assert_eq!(p["spec"]["hostname"], n);
        assert_eq!(p["spec"]["subdomain"], "r-hl");
        assert_eq!(
            p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
            n
        );
        assert!(p["metadata"]["labels"]["controller-revision-hash"]
            .as_str()
            .unwrap()
            .starts_with("r-"));
        assert_eq!(p["status"]["hostIP"], "127.0.0.1");
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["restartCount"], 0);
        assert!(cs["state"]["running"].is_object(), "{cs}");
        let pid = env.pid(n).expect("pid file");
        assert_eq!(cs["containerID"], format!("local://{pid}"));
        assert!(
            alive(pid) && is_server(pid),
            "pid {pid} of {n} is tandem-server"
        );
    }
    let sts = env.store.get(&env.sts, "default", "r").unwrap();
    wait_for("sts status readyReplicas 3", || {
        let s = env.store.get(&env.sts, "default", "r").ok()?;
        (s["status"]["readyReplicas"] == 3 && s["status"]["updatedReplicas"] == 3).then_some(())
    })
    .await;
    assert_eq!(
        env.store.get(&env.sts, "default", "r").unwrap()["status"]["observedGeneration"],
        sts["metadata"]["generation"]
    );

    // Replicas follow r-0 through its DNS name.
    for n in ["r-1", "r-2"] {
        let a = env.ip(n);
        wait_for(&format!("{n} linked to r-0"), || linked(a)).await;
    }

    // Write through the master Service, read on a replica.
    env.label("r-0", json!({"role": "master"}));
    let master = wait_for("master endpoint", || env.master_endpoint()).await;
    assert_eq!(
        env.endpoints_file().get("default/r-master"),
        Some(&master.to_string())
    );
    wait_for("SET through the master endpoint", || {
        (call(master, &["SET", "k", "v1"]).ok()? == "+OK").then_some(())
    })
    .await;
    let r1 = env.ip("r-1");
    wait_for("k on r-1", || {
        (call(r1, &["GET", "k"]).ok()? == "v1").then_some(())
    })
    .await;
    // Endpoints object of the master Service lists r-0 only.
    let ep_t = env.store.resolve("", "v1", "endpoints").unwrap();
    wait_for("Endpoints r-master", || {
        let ep = env.store.get(&ep_t, "default", "r-master").ok()?;
        let addrs = ep.pointer("/subsets/0/addresses")?.as_array()?.clone();
        (addrs.len() == 1 && addrs[0]["targetRef"]["name"] == "r-0").then_some(())
    })
    .await;

    // kill -9: restarted in place, emptyDir kept.
    let marker = env.pod_dir("r-1").join("volumes/data/marker");
    std::fs::write(&marker, "x").unwrap();
    let uid1 = env.pod("r-1").unwrap()["metadata"]["uid"].clone();
    let old = env.pid("r-1").unwrap();
    Command::new("kill")
        .args(["-9", &old.to_string()])
        .status()
        .unwrap();
    wait_for("r-1 restarted and Ready", || {
        let p = env.ready("r-1")?;
        (p["status"]["containerStatuses"][0]["restartCount"] == 1).then_some(())
    })
    .await;
    let p = env.pod("r-1").unwrap();
    assert_eq!(p["metadata"]["uid"], uid1, "same pod object");
    let last = &p["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{last}");
    assert!(marker.exists(), "emptyDir survives a container restart");
    let new = env.pid("r-1").unwrap();
    assert_ne!(new, old);
    assert!(alive(new) && is_server(new));

    // Delete a pod: recreated with a new uid and a fresh emptyDir.
    let marker2 = env.pod_dir("r-2").join("volumes/data/marker");
    std::fs::write(&marker2, "x").unwrap();
    let uid2 = env.pod("r-2").unwrap()["metadata"]["uid"].clone();
    let pid2 = env.pid("r-2").unwrap();
    env.store
        .delete(&env.pods, "default", "r-2", &DeleteOptions::default())
        .unwrap();
    wait_for("r-2 recreated and Ready", || {
        let p = env.ready("r-2")?;
        (p["metadata"]["uid"] != uid2).then_some(())
    })
    .await;
    assert!(!alive(pid2), "old r-2 process stopped");
    assert!(!marker2.exists(), "a new pod object gets a fresh emptyDir");
    let a2 = env.ip("r-2");
    wait_for("new r-2 linked", || linked(a2)).await;

    // Scale 3 -> 4 -> 2.
    env.scale(4);
    env.wait_ready(&["r-3"]).await;
    let pid3 = env.pid("r-3").unwrap();
    env.scale(2);
    wait_for("scaled down to r-0, r-1", || {
        (env.pod_names() == ["r-0", "r-1"]).then_some(())
    })
    .await;
    wait_for("r-2 and r-3 processes gone", || {
        (!alive(pid3) && env.pid("r-3").is_none() && env.pid("r-2").is_none()).then_some(())
    })
    .await;

    // Move the role label: the master endpoint switches to r-1.
    env.label("r-0", json!({"role": null}));
    env.label("r-1", json!({"role": "master"}));
    wait_for("master endpoint on r-1", || {
        let info = call(master, &["INFO", "replication"]).ok()?;
        info.contains("role:slave").then_some(())
    })
    .await;
    assert_eq!(env.master_endpoint(), Some(master), "same address");

    let pids = pids_in(&env.guard.dir);
    assert_eq!(pids.len(), 2);
    shutdown_clean(env, pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn netns_mode_life_cycle() {
    if !is_root() {
        assert!(!in_ci(), "CI=true: netns mode needs root");
        eprintln!("SKIPPED: netns mode needs root");
        return;
    }
    let instance = format!("kn{}", std::process::id() % 10_000);
    life_cycle(&instance, NetMode::Netns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn loopback_mode_replicates_and_serves_the_master_endpoint() {
    let instance = format!("kl{}", std::process::id() % 10_000);
    let env = start(&instance, NetMode::Loopback).await;
    env.wait_ready(&["r-0", "r-1", "r-2"]).await;
    // Set TANDEM_RUNTIME_TEST_FAIL=1 to check by hand that a failing test leaves no
    // process, network namespace or temp dir behind.
    assert!(
        std::env::var("TANDEM_RUNTIME_TEST_FAIL").is_err(),
        "deliberate failure"
    );
    for n in ["r-0", "r-1", "r-2"] {
        assert!(env.ip(n).ip().is_loopback(), "127.x address");
    }
    let a1 = env.ip("r-1");
    wait_for("r-1 linked", || linked(a1)).await;
    env.label("r-0", json!({"role": "master"}));
    let master = wait_for("master endpoint", || env.master_endpoint()).await;
    wait_for("SET through the master endpoint", || {
        (call(master, &["SET", "k", "lb"]).ok()? == "+OK").then_some(())
    })
    .await;
    wait_for("k on r-1", || {
        (call(a1, &["GET", "k"]).ok()? == "lb").then_some(())
    })
    .await;
    let pids = pids_in(&env.guard.dir);
    assert_eq!(pids.len(), 3);
    shutdown_clean(env, pids).await;
}

const SERVE: &str =
    "exec /usr/local/bin/tandem-server /etc/cfg/tandem.conf --bind \"${TANDEM_BIND:-0.0.0.0}\"";

fn claims_manifests() -> Vec<Value> {
    vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pcfg"},
            "data": {"tandem.conf": "port 6379\nprotected-mode no\ndir /data\nsave \"\"\nappendonly no\n"}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "p"},
        "spec": {
            "replicas": 2,
            "serviceName": "p-hl",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": {"app": "p"}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
            "template": {
                "metadata": {"labels": {"app": "p"}, "annotations": {"v": "1"}},
                "spec": {
                    "terminationGracePeriodSeconds": 3,
                    "containers": [{
                        "name": "server",
                        "command": ["/bin/sh", "-c", SERVE],
                        "ports": [{"name": "redis", "containerPort": 6379}],
                        "readinessProbe": {"tcpSocket": {"port": 6379}, "periodSeconds": 1},
                        "volumeMounts": [
                            {"name": "config", "mountPath": "/etc/cfg"},
                            {"name": "data", "mountPath": "/data"}
                        ]
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": "pcfg"}},
                        {"name": "info", "downwardAPI": {"items": [
                            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}]
                }
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }}),
    ]
}

/// OrderedReady + RollingUpdate + claims with whenScaled/whenDeleted Delete, and a
/// ConfigMap change reaching a running pod's volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_rolling_update_and_configmap_resync() {
    let instance = format!("kc{}", std::process::id() % 10_000);
    let env = start(&instance, NetMode::Loopback).await;
    for m in claims_manifests() {
        env.store.apply_manifest(m, "test").expect("apply");
    }
    // Bare pods: a liveness probe that always fails, an (unsupported) exec readiness probe.
    let bare = |name: &str, probe: (&str, Value)| {
        let mut c = json!({"name": "server", "command": ["/bin/sh", "-c", SERVE],
            "volumeMounts": [{"name": "config", "mountPath": "/etc/cfg"},
                             {"name": "data", "mountPath": "/data"}]});
        c[probe.0] = probe.1;
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [c],
                "volumes": [{"name": "config", "configMap": {"name": "pcfg"}},
                            {"name": "data", "emptyDir": {}}]}})
    };
    env.store
        .apply_manifest(
            bare(
                "live",
                (
                    "livenessProbe",
                    json!({"tcpSocket": {"port": 1}, "periodSeconds": 1, "failureThreshold": 2}),
                ),
            ),
            "test",
        )
        .unwrap();
    env.store
        .apply_manifest(
            bare(
                "execready",
                (
                    "readinessProbe",
                    json!({"exec": {"command": ["true"]}, "periodSeconds": 1}),
                ),
            ),
            "test",
        )
        .unwrap();
    env.wait_ready(&["p-0", "p-1"]).await;
    wait_for("liveness failure restarts the container", || {
        let p = env.pod("live")?;
        let cs = &p["status"]["containerStatuses"][0];
        let msg = cs["lastState"]["terminated"]["message"].as_str()?;
        (cs["restartCount"].as_i64()? >= 1 && msg.contains("Liveness probe failed")).then_some(())
    })
    .await;
    let ev_t = env.store.resolve("", "v1", "events").unwrap();
    let reasons: Vec<String> = env
        .store
        .list(
            &ev_t,
            Some("default"),
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .0
        .iter()
        .filter(|e| e["involvedObject"]["name"] == "live")
        .filter_map(|e| e["reason"].as_str().map(String::from))
        .collect();
    for r in ["Started", "Unhealthy", "Killing", "BackOff"] {
        assert!(reasons.iter().any(|x| x == r), "event {r} in {reasons:?}");
    }
    wait_for("exec readiness probe reported as unsupported", || {
        let p = env.pod("execready")?;
        let ready = p["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        (p["status"]["phase"] == "Running"
            && ready["status"] == "False"
            && ready["message"]
                .as_str()?
                .contains("exec probes are not supported"))
        .then_some(())
    })
    .await;
    let pvc_t = env
        .store
        .resolve("", "v1", "persistentvolumeclaims")
        .unwrap();
    for i in 0..2 {
        let c = env
            .store
            .get(&pvc_t, "default", &format!("data-p-{i}"))
            .expect("claim exists");
        assert_eq!(c["status"]["phase"], "Bound");
        let p = env.pod(&format!("p-{i}")).unwrap();
        let vols = p["spec"]["volumes"].as_array().unwrap();
        assert!(vols
            .iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == format!("data-p-{i}")));
    }
    // The claim's data survives the pod.
    let claim_dir = env.pod_dir("p-1").join("pvc/data-p-1");
    std::fs::write(claim_dir.join("marker"), "keep").expect("claim dir exists");
    let uid = env.pod("p-1").unwrap()["metadata"]["uid"].clone();
    env.store
        .delete(&env.pods, "default", "p-1", &DeleteOptions::default())
        .unwrap();
    wait_for("p-1 back", || {
        (env.ready("p-1")?["metadata"]["uid"] != uid).then_some(())
    })
    .await;
    assert!(claim_dir.join("marker").exists(), "claim data kept");

    // A ConfigMap change reaches the running pod's volume.
    let cm_t = env.store.resolve("", "v1", "configmaps").unwrap();
    env.store
        .patch(
            &cm_t,
            "default",
            "pcfg",
            Patch::Merge(json!({"data": {"extra": "42"}})),
            false,
            false,
        )
        .unwrap();
    let extra = env.pod_dir("p-0").join("volumes/config/extra");
    wait_for("configmap key in the volume", || {
        (std::fs::read_to_string(&extra).ok()? == "42").then_some(())
    })
    .await;
    // downwardAPI files: the pod name, and labels that follow a label change.
    let info = env.pod_dir("p-0").join("volumes/info");
    assert_eq!(std::fs::read_to_string(info.join("name")).unwrap(), "p-0");
    env.label("p-0", json!({"role": "master"}));
    wait_for("downwardAPI labels updated", || {
        std::fs::read_to_string(info.join("labels"))
            .ok()?
            .contains("role=\"master\"")
            .then_some(())
    })
    .await;

    // Rolling update: every pod replaced, ending at the update revision.
    let old: Vec<Value> = ["p-0", "p-1"]
        .iter()
        .map(|n| env.pod(n).unwrap()["metadata"]["uid"].clone())
        .collect();
    env.store
        .patch(
            &env.sts,
            "default",
            "p",
            Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}})),
            false,
            false,
        )
        .unwrap();
    wait_for("rolling update done", || {
        let s = env.store.get(&env.sts, "default", "p").ok()?;
        let rev = s["status"]["updateRevision"].clone();
        let done = ["p-0", "p-1"].iter().enumerate().all(|(i, n)| {
            env.ready(n).is_some_and(|p| {
                p["metadata"]["labels"]["controller-revision-hash"] == rev
                    && p["metadata"]["uid"] != old[i]
                    && p["metadata"]["annotations"]["v"] == "2"
            })
        });
        (done && s["status"]["currentRevision"] == rev && s["status"]["updatedReplicas"] == 2)
            .then_some(())
    })
    .await;

    // whenScaled: Delete removes the claim and its data.
    env.scale_sts("p", 1);
    wait_for("claim data-p-1 deleted with its directory", || {
        (env.store.get(&pvc_t, "default", "data-p-1").is_err() && !claim_dir.exists()).then_some(())
    })
    .await;
    assert!(env.store.get(&pvc_t, "default", "data-p-0").is_ok());

    // whenDeleted: Delete: deleting the StatefulSet deletes pods and claims (owner
    // references), and the claim data goes once the pod stopped.
    let p0_pid = env.pid("p-0").expect("p-0 pid");
    env.store
        .delete(&env.sts, "default", "p", &DeleteOptions::default())
        .unwrap();
    let claim0 = env.pod_dir("p-0").join("pvc/data-p-0");
    wait_for("p-0 and its claim gone", || {
        (env.pod("p-0").is_none()
            && env.store.get(&pvc_t, "default", "data-p-0").is_err()
            && !claim0.exists()
            && !alive(p0_pid))
        .then_some(())
    })
    .await;
    let pids = pids_in(&env.guard.dir);
    shutdown_clean_pods(env, pids).await;
}

/// Like `shutdown_clean`, for tests without the r-* StatefulSet.
async fn shutdown_clean_pods(mut env: Env, pids: Vec<u32>) {
    let rt = env.runtime.take().expect("runtime");
    tokio::time::timeout(Duration::from_secs(30), rt.shutdown())
        .await
        .expect("shutdown within 30 s");
    for pid in pids {
        assert!(!alive(pid), "pid {pid} still runs after shutdown");
    }
    assert!(pids_in(&env.guard.dir).is_empty(), "pid files removed");
    if let Some(api) = env.api.take() {
        api.shutdown().await;
    }
}

/// A runtime that died without shutting down (killed) leaves its pods running; the next
/// runtime on the same state dir kills them at start. The leftover is simulated by a
/// process carrying the pod-directory marker and a pid file, as the kubelet leaves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runtime_kills_what_a_dead_one_left_running() {
    use tandem_operator::local::runtime::{kubelet::POD_DIR_ENV, leftover_pids};
    let instance = format!("kd{}", std::process::id() % 10_000);
    let guard = Guard::new(&instance);
    let pod_dir = guard.dir.join("pods/default_solo");
    std::fs::create_dir_all(&pod_dir).unwrap();
    let mut stray = Command::new("sleep")
        .arg("120")
        .env(POD_DIR_ENV, pod_dir.display().to_string())
        .spawn()
        .expect("spawn sleep");
    let pid = stray.id();
    std::fs::write(pod_dir.join("pid"), format!("{pid}\n")).unwrap();
    // A pid file of a process that is not ours is left alone.
    let other_dir = guard.dir.join("pods/default_other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let mut unrelated = Command::new("sleep")
        .arg("120")
        .spawn()
        .expect("spawn sleep");
    std::fs::write(other_dir.join("pid"), format!("{}\n", unrelated.id())).unwrap();
    assert_eq!(leftover_pids(&guard.dir.join("pods")), vec![pid]);
    // The previous run's endpoints.json: its port is reused when free.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(
        guard.dir.join("endpoints.json"),
        json!({"default/svc": free.to_string()}).to_string(),
    )
    .unwrap();

    let api = LocalApi::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Options::default(),
    )
    .await
    .unwrap();
    let rt = Runtime::start(
        api.store().clone(),
        RuntimeOptions {
            state_dir: guard.dir.clone(),
            server_bin: server_bin(),
            cluster_domain: "cluster.local".into(),
            net_mode: NetMode::Loopback,
            instance: instance.clone(),
        },
    )
    .await
    .expect("runtime");
    let status = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::task::spawn_blocking(move || stray.wait()).await
    })
    .await
    .expect("leftover killed at start")
    .unwrap()
    .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));
    assert!(!pod_dir.join("pid").exists(), "stale pid file removed");
    assert!(
        unrelated.try_wait().unwrap().is_none(),
        "a process that is not the state dir's keeps running"
    );
    api.store()
        .apply_manifest(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
                "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}),
            "test",
        )
        .unwrap();
    let got = wait_for("svc endpoint", || {
        rt.endpoints().get("default/svc").copied()
    })
    .await;
    assert_eq!(got, free, "the recorded port is reused");
    let _ = unrelated.kill();
    let _ = unrelated.wait();
    rt.shutdown().await;
    api.shutdown().await;
}

/// Authenticated command (the operator's pods require the generated password).
fn call_auth(addr: SocketAddr, pw: &str, args: &[&str]) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut req = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{pw}\r\n", pw.len());
    req.push_str(&format!("*{}\r\n", args.len()));
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(req.as_bytes())?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    if !line.starts_with("+OK") {
        return Ok(line);
    }
    line.clear();
    r.read_line(&mut line)?;
    if let Some(n) = line.trim_end().strip_prefix('$') {
        let n: usize = n.parse().map_err(std::io::Error::other)?;
        let mut buf = vec![0u8; n + 2];
        r.read_exact(&mut buf)?;
        return Ok(String::from_utf8_lossy(&buf).into_owned());
    }
    Ok(line)
}

/// The objects the operator builds for a RedisReplication (start.sh, Secret volume with
/// item modes, in-memory emptyDir, named-port probes) run as they are: all pods Ready and
/// the replicas linked to the master through its pod DNS name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_built_objects_run_netns() {
    if !is_root() {
        assert!(!in_ci(), "CI=true: netns mode needs root");
        eprintln!("SKIPPED: netns mode needs root");
        return;
    }
    operator_objects(
        &format!("ko{}", std::process::id() % 10_000),
        NetMode::Netns,
    )
    .await;
}

/// Loopback mode: the server replaces the config's `bind 0.0.0.0` by TANDEM_BIND.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_built_objects_run_loopback() {
    operator_objects(
        &format!("kp{}", std::process::id() % 10_000),
        NetMode::Loopback,
    )
    .await;
}

async fn operator_objects(instance: &str, mode: NetMode) {
    use tandem_operator::build::{build, Params};
    use tandem_operator::crd::{RedisReplication, RedisReplicationSpec};
    let instance = instance.to_string();
    let guard = Guard::new(&instance);
    let api = LocalApi::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Options::default(),
    )
    .await
    .unwrap();
    let store = api.store().clone();
    let runtime = Runtime::start(
        store.clone(),
        RuntimeOptions {
            state_dir: guard.dir.clone(),
            server_bin: server_bin(),
            cluster_domain: "cluster.local".into(),
            net_mode: mode,
            instance: instance.clone(),
        },
    )
    .await
    .expect("runtime");
    let spec: RedisReplicationSpec = serde_json::from_value(json!({"replicas": 3})).unwrap();
    let mut rr = RedisReplication::new("cache", spec);
    rr.metadata.namespace = Some("default".into());
    rr.metadata.uid = Some("uid-test".into());
    let desired = build(&rr, &Params::default(), Some("s3cret")).expect("build");
    // What the rotation step stores for a new set: the Secret's password, as the pods read it.
    let creds = tandem_operator::build::credentials::PodCredentials {
        accepted: vec!["s3cret".into()],
        masterauth: "s3cret".into(),
        ..Default::default()
    };
    let desired =
        tandem_operator::build::with_pod_credentials(desired, &rr, &creds).expect("credentials");
    let mut docs = vec![
        serde_json::to_value(desired.secret.expect("generated secret")).unwrap(),
        serde_json::to_value(desired.credentials_secret.expect("credentials")).unwrap(),
        serde_json::to_value(&desired.config_map).unwrap(),
        serde_json::to_value(&desired.headless).unwrap(),
        serde_json::to_value(&desired.master).unwrap(),
        serde_json::to_value(&desired.statefulset).unwrap(),
    ];
    for d in &mut docs {
        // No RedisReplication object here: drop the owner references (else the API's
        // garbage collector removes these objects).
        d["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("ownerReferences");
        store.apply_manifest(d.clone(), "test").expect("apply");
    }
    let mut env = Env {
        pods: store.resolve("", "v1", "pods").unwrap(),
        sts: store.resolve("apps", "v1", "statefulsets").unwrap(),
        store,
        api: Some(api),
        runtime: Some(runtime),
        guard,
    };
    // The operator's pods start fenced (tandem-fenced-start): cache-0 (no replicaof) answers
    // but its readiness probe (/readyz) fails until a role is assigned, and the replicas cannot
    // sync from it. Do what the operator's roles step does first: REPLICAOF NO ONE on cache-0.
    let c0 = wait_for("cache-0 answering fenced", || {
        let p = env.pod("cache-0")?;
        let ip: std::net::IpAddr = p.pointer("/status/podIP")?.as_str()?.parse().ok()?;
        let a = SocketAddr::new(ip, 6379);
        let info = call_auth(a, "s3cret", &["INFO", "replication"]).ok()?;
        info.contains("tandem_fenced:1").then_some(a)
    })
    .await;
    assert!(
        env.ready("cache-0").is_none(),
        "a fenced pod must not be Ready"
    );
    let reply = call_auth(c0, "s3cret", &["REPLICAOF", "NO", "ONE"]).expect("REPLICAOF NO ONE");
    assert!(reply.contains("OK"), "{reply}");
    env.wait_ready(&["cache-0", "cache-1", "cache-2"]).await;
    for n in ["cache-1", "cache-2"] {
        let a = env.ip(n);
        wait_for(&format!("{n} linked"), || {
            let info = call_auth(a, "s3cret", &["INFO", "replication"]).ok()?;
            info.contains("master_link_status:up").then_some(())
        })
        .await;
    }
    let pids = pids_in(&env.guard.dir);
    assert_eq!(pids.len(), 3);
    let rt = env.runtime.take().unwrap();
    rt.shutdown().await;
    for pid in pids {
        assert!(!alive(pid));
    }
}
