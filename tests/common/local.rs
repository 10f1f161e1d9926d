//! End-to-end harness: runs the real `tandem-operator local` binary on a temporary state
//! directory and talks to it like a user (kubeconfig, endpoints.json, redis protocol).
//!
//! [`Local`] cleans up on drop, also when the test panics: SIGTERM to the local process,
//! up to 20 s for it to stop, SIGKILL; then every pod process still alive from
//! `DIR/pods/*/pid` is killed, the instance's network objects are swept
//! (`sandbox::sweep`), and the directory is removed (refused if anything is still
//! mounted below it).
//!
//! Needs `tandem-server` in the same target directory as the operator binary
//! (`cargo build -p tandem-server`, or `cargo nextest run --workspace`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use serde_json::Value;
use tandem_operator::crd::RedisReplication;

/// The operator binary under test.
pub fn operator_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tandem-operator"))
}

/// tandem-server from the same target directory; panics with a clear message if missing.
pub fn server_bin() -> PathBuf {
    let p = operator_bin()
        .parent()
        .expect("binary has a directory")
        .join("tandem-server");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build -p tandem-server` first (nextest --workspace builds it)",
        p.display()
    );
    p
}

/// kubectl from PATH (the way tests/local_api.rs finds it), None when not installed.
pub fn kubectl_bin() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    })
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory under the system temp dir.
pub fn temp_state_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let p = std::env::temp_dir().join(format!(
        "tandem-e2e-{tag}-{}-{}-{nanos:x}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // "pid (comm) S ...": the state letter follows the last ')'.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            state != Some('Z')
        }
        Err(_) => false,
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The pids in `dir/pods/*/pid` whose processes are alive.
pub fn pod_pids(dir: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir.join("pods")) else {
        return out;
    };
    for e in rd.flatten() {
        if let Some(pid) = std::fs::read_to_string(e.path().join("pid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            if pid_alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// Mount points at or below `dir` in this mount namespace.
pub fn mounts_below(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect()
}

/// Network namespaces whose name starts with `tnd<instance>`.
pub fn netns_of(instance: &str) -> Vec<String> {
    if instance.is_empty() {
        return Vec::new();
    }
    let out = Command::new("ip").args(["netns", "list"]).output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("tnd{instance}")))
        .map(String::from)
        .collect()
}

/// A running `tandem-operator local`.
pub struct Local {
    pub dir: PathBuf,
    child: Option<Child>,
    /// The instance id of the current run (DIR/instance).
    pub instance: String,
    /// Instance ids of every run on this directory (swept on drop).
    instances: Vec<String>,
    pub client: kube::Client,
    /// Keep the directory on drop (the restart test hands it to the next run).
    keep_dir: bool,
}

impl Local {
    /// Start local mode on a fresh directory, applying `manifests` (YAML texts).
    pub async fn start(tag: &str, manifests: &[&str]) -> Local {
        Local::start_with(tag, manifests, &[]).await
    }

    /// Like [`Local::start`] with extra `tandem-operator local` flags.
    pub async fn start_with(tag: &str, manifests: &[&str], extra: &[&str]) -> Local {
        let dir = temp_state_dir(tag);
        let mut files = Vec::new();
        for (i, m) in manifests.iter().enumerate() {
            let f = dir.join(format!("input-{i}.yaml"));
            std::fs::write(&f, m).unwrap();
            files.push(f);
        }
        Local::start_in_with(dir, &files, Vec::new(), extra).await
    }

    /// Start local mode on `dir` (possibly used before) with `-f files`.
    pub async fn start_in(dir: PathBuf, files: &[PathBuf], instances: Vec<String>) -> Local {
        Local::start_in_with(dir, files, instances, &[]).await
    }

    async fn start_in_with(
        dir: PathBuf,
        files: &[PathBuf],
        instances: Vec<String>,
        extra: &[&str],
    ) -> Local {
        let mut cmd = Command::new(operator_bin());
        cmd.arg("local")
            .arg("--state-dir")
            .arg(&dir)
            .arg("--server-bin")
            .arg(server_bin())
            .args(extra);
        if let Ok(net) = std::env::var("TANDEM_E2E_NET") {
            cmd.arg("--net").arg(net);
        }
        for f in files {
            cmd.arg("-f").arg(f);
        }
        // Stale kubeconfig/endpoints of a previous run must not be mistaken for this one's.
        let _ = std::fs::remove_file(dir.join("endpoints.json"));
        let kubeconfig = dir.join("kubeconfig");
        let old_kc = std::fs::metadata(&kubeconfig)
            .and_then(|m| m.modified())
            .ok();
        let out = std::fs::File::create(dir.join("local.out")).unwrap();
        let err = out.try_clone().unwrap();
        cmd.stdout(out)
            .stderr(err)
            .stdin(Stdio::null())
            .env("RUST_LOG", "info");
        let child = cmd.spawn().expect("spawn tandem-operator local");
        let mut local = Local {
            dir: dir.clone(),
            child: Some(child),
            instance: String::new(),
            instances,
            client: kube::Client::try_from(kube::Config::new(
                "http://127.0.0.1:1".parse().unwrap(),
            ))
            .unwrap(),
            keep_dir: false,
        };
        // Wait for a fresh kubeconfig and the instance id.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let fresh = std::fs::metadata(&kubeconfig)
                .and_then(|m| m.modified())
                .ok()
                .is_some_and(|t| Some(t) != old_kc);
            let inst = std::fs::read_to_string(dir.join("instance")).unwrap_or_default();
            if fresh && !inst.trim().is_empty() {
                local.instance = inst.trim().to_string();
                local.instances.push(local.instance.clone());
                break;
            }
            if let Some(status) = local
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "tandem-operator local exited early ({status}):\n{}",
                    local.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no kubeconfig after 20 s:\n{}",
                local.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .unwrap();
        local.client = kube::Client::try_from(config).unwrap();
        local
    }

    /// Everything the local process printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("local.out")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, wait up to 20 s, then SIGKILL; returns whether it exited on its own with 0.
    pub fn stop(&mut self) -> bool {
        self.stop_with("-TERM")
    }

    /// Like [`Local::stop`] with another signal first (e.g. "-INT", what Ctrl-C sends).
    pub fn stop_with(&mut self, sig: &str) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        signal(child.id(), sig);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Stop this run and start another one on the same directory (no `-f`).
    pub async fn restart(mut self) -> Local {
        assert!(self.stop(), "clean exit expected:\n{}", self.output());
        self.keep_dir = true;
        let dir = self.dir.clone();
        let instances = std::mem::take(&mut self.instances);
        drop(self);
        Local::start_in(dir, &[], instances).await
    }

    /// `endpoints.json`: "<ns>/<svc>" -> address.
    pub fn endpoints(&self) -> BTreeMap<String, SocketAddr> {
        let text = std::fs::read_to_string(self.dir.join("endpoints.json")).unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.parse().ok()?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wait until endpoints.json has `key`.
    pub async fn endpoint(&self, key: &str, within: Duration) -> SocketAddr {
        let deadline = Instant::now() + within;
        loop {
            if let Some(a) = self.endpoints().get(key) {
                return *a;
            }
            assert!(
                Instant::now() < deadline,
                "no endpoint {key} in endpoints.json: {:?}\n{}",
                self.endpoints(),
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn rrs(&self, ns: &str) -> Api<RedisReplication> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// The reasons of the Events recorded in namespace `ns`, oldest first.
    pub async fn event_reasons(&self, ns: &str) -> Vec<String> {
        let api: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(self.client.clone(), ns);
        let mut list = api
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        });
        list.into_iter().filter_map(|e| e.reason).collect()
    }

    /// The RedisReplication (None when absent).
    pub async fn status(&self, ns: &str, name: &str) -> Option<RedisReplication> {
        self.rrs(ns).get_opt(name).await.ok().flatten()
    }

    /// The condition `type_` of the RedisReplication.
    pub async fn condition(&self, ns: &str, name: &str, type_: &str) -> Option<Value> {
        let rr = self.status(ns, name).await?;
        let v = serde_json::to_value(rr).ok()?;
        v.pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
    }

    /// Poll `check` every 100 ms until it returns Some, or panic after `within`.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, within: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + within;
        loop {
            if let Some(t) = check().await {
                return t;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out waiting for {what}\n--- local output ---\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait for the Ready condition to be True with `replicas` ready pods.
    pub async fn wait_ready(&self, ns: &str, name: &str, replicas: i32, within: Duration) {
        self.wait_for(&format!("{ns}/{name} Ready"), within, || async {
            let rr = self.status(ns, name).await?;
            let st = rr.status.as_ref()?;
            let ready = self.condition(ns, name, "Ready").await?;
            (ready["status"] == "True" && st.ready_replicas == replicas).then_some(())
        })
        .await
    }

    pub async fn pods(&self, ns: &str, instance: &str) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.client.clone(), ns)
            .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={instance}")))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    }

    pub async fn pod_ip(&self, ns: &str, pod: &str) -> String {
        self.wait_for(
            &format!("pod IP of {pod}"),
            Duration::from_secs(30),
            || async {
                let p = Api::<Pod>::namespaced(self.client.clone(), ns)
                    .get_opt(pod)
                    .await
                    .ok()??;
                p.status?.pod_ip.filter(|ip| !ip.is_empty())
            },
        )
        .await
    }

    /// The password in the RedisReplication's generated Secret `<name>-auth`.
    pub async fn password(&self, ns: &str, name: &str) -> String {
        let s: Secret = Api::namespaced(self.client.clone(), ns)
            .get(&format!("{name}-auth"))
            .await
            .expect("auth Secret");
        if let Some(p) = s.data.as_ref().and_then(|d| d.get("password")) {
            return String::from_utf8_lossy(&p.0).into_owned();
        }
        s.string_data
            .as_ref()
            .and_then(|d| d.get("password"))
            .cloned()
            .expect("password in the Secret")
    }

    /// A connection to the `-master` Service endpoint, authenticated.
    pub async fn master_conn(&self, ns: &str, name: &str) -> Resp {
        let addr = self
            .endpoint(&format!("{ns}/{name}-master"), Duration::from_secs(30))
            .await;
        let pw = self.password(ns, name).await;
        self.conn_retry(&addr.to_string(), &pw).await
    }

    /// Connect, AUTH and PING until it works (right after a restart the Service proxy and
    /// the pods may still be coming up), within 30 s.
    pub async fn conn_retry(&self, addr: &str, password: &str) -> Resp {
        let mut last = String::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match Resp::connect(addr) {
                Ok(mut c) => match (c.cmd(&["AUTH", password]), c.cmd(&["PING"])) {
                    (Ok(Reply::Simple(a)), Ok(Reply::Simple(p))) if a == "OK" && p == "PONG" => {
                        return c
                    }
                    other => last = format!("{other:?}"),
                },
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no working connection to {addr}: {last}\n{}", self.output());
    }

    /// A connection to pod `pod` (its IP, port 6379), authenticated.
    pub async fn pod_conn(&self, ns: &str, name: &str, pod: &str) -> Resp {
        let ip = self.pod_ip(ns, pod).await;
        let pw = self.password(ns, name).await;
        self.conn_retry(&format!("{ip}:6379"), &pw).await
    }

    /// SIGKILL the process of a pod (from DIR/pods/<ns>_<pod>/pid); returns the pid.
    pub fn kill_pod_process(&self, ns: &str, pod: &str) -> u32 {
        let f = self
            .dir
            .join("pods")
            .join(format!("{ns}_{pod}"))
            .join("pid");
        let pid: u32 = std::fs::read_to_string(&f)
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no pid in {}", f.display()));
        signal(pid, "-KILL");
        pid
    }

    /// Run the real kubectl against this instance (its kubeconfig, a cache directory
    /// inside the state directory), bounded to 60 s: (success, stdout, stderr).
    /// None when kubectl is not on PATH.
    pub async fn kubectl(&self, args: &[&str]) -> Option<(bool, String, String)> {
        let bin = kubectl_bin()?;
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(bin)
                .arg("--kubeconfig")
                .arg(self.dir.join("kubeconfig"))
                .arg("--cache-dir")
                .arg(self.dir.join("kubectl-cache"))
                .args(args)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("kubectl finished within 60 s")
        .expect("kubectl runs");
        Some((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    fn cleanup(&mut self) {
        let _ = self.stop();
        // Only processes that really belong to this directory's pods (pid reuse).
        for pid in tandem_operator::local::runtime::leftover_pids(&self.dir.join("pods")) {
            signal(pid, "-KILL");
        }
        for inst in &self.instances {
            tandem_operator::local::sandbox::sweep(inst);
        }
        if self.keep_dir {
            return;
        }
        // Never remove through a mount that leaked onto the host.
        let left = mounts_below(&self.dir);
        if left.is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "NOT removing {}: still mounted below it: {left:?}",
                self.dir.display()
            );
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// A tiny blocking RESP2 client for the checks (bounded by socket timeouts).
pub struct Resp {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

/// A parsed reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn text(&self) -> String {
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.clone(),
            Reply::Int(i) => i.to_string(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Bulk(None) | Reply::Array(None) => String::new(),
            Reply::Array(Some(a)) => a.iter().map(Reply::text).collect::<Vec<_>>().join("\n"),
        }
    }
}

impl Resp {
    /// This end's address (the client's source address and port).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.w.local_addr()
    }

    pub fn connect(addr: &str) -> std::io::Result<Resp> {
        Resp::connect_with(addr, Duration::from_secs(3), Duration::from_secs(5))
    }

    /// Connect within `connect`; every read and write then times out after `io`.
    pub fn connect_with(addr: &str, connect: Duration, io: Duration) -> std::io::Result<Resp> {
        let sa: SocketAddr = addr
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
        let s = TcpStream::connect_timeout(&sa, connect)?;
        s.set_read_timeout(Some(io))?;
        s.set_write_timeout(Some(io))?;
        Ok(Resp {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    pub fn connect_auth(addr: &str, password: &str) -> Resp {
        let mut c = Resp::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let r = c.cmd(&["AUTH", password]).expect("AUTH");
        assert_eq!(r, Reply::Simple("OK".into()), "AUTH at {addr}");
        c
    }

    pub fn cmd(&mut self, args: &[&str]) -> std::io::Result<Reply> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&buf)?;
        self.read()
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut l = String::new();
        if self.r.read_line(&mut l)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(l.trim_end_matches(['\r', '\n']).to_string())
    }

    fn read(&mut self) -> std::io::Result<Reply> {
        let l = self.line()?;
        let bad =
            || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad reply {l:?}"));
        let (t, rest) = l.split_at_checked(1).ok_or_else(bad)?;
        Ok(match t {
            "+" => Reply::Simple(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().map_err(|_| bad())?),
            "$" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut b = vec![0u8; n as usize + 2];
                    self.r.read_exact(&mut b)?;
                    b.truncate(n as usize);
                    Reply::Bulk(Some(b))
                }
            }
            "*" => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if n < 0 {
                    Reply::Array(None)
                } else {
                    let mut v = Vec::new();
                    for _ in 0..n.min(100_000) {
                        v.push(self.read()?);
                    }
                    Reply::Array(Some(v))
                }
            }
            _ => return Err(bad()),
        })
    }

    /// `INFO replication` as a field map.
    pub fn info_replication(&mut self) -> BTreeMap<String, String> {
        let r = self.cmd(&["INFO", "replication"]).expect("INFO");
        r.text()
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }
}
