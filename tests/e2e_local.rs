//! End-to-end tests through `tandem-operator local` (the real binary, real tandem-server
//! pods): see tests/common/local.rs for the harness and its cleanup guarantees.
//!
//! Needs `cargo build -p tandem-server` first (nextest `--workspace` builds it). As root the
//! pods get network namespaces; otherwise 127.x addresses (override: TANDEM_E2E_NET).

mod common;

use std::time::{Duration, Instant};

use common::local::{mounts_below, netns_of, pid_alive, pod_pids, Local, Reply};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

const NS: &str = "default";

const CACHE3: &str = "apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: cache
spec:
  replicas: 3
";

const BUDGET: Duration = Duration::from_secs(60);

/// Every test is bounded: past 90 s the scenario is dropped (the harness's Drop cleans
/// up) and the test fails, before any outer runner kills the process without cleanup.
async fn bounded<F: std::future::Future<Output = ()>>(scenario: F) {
    if tokio::time::timeout(Duration::from_secs(90), scenario)
        .await
        .is_err()
    {
        panic!("scenario exceeded 90 s");
    }
}

/// Poll a replica until `key` has `want` (replication is asynchronous).
async fn read_eventually(l: &Local, pod: &str, key: &str, want: &str) {
    let mut c = l.pod_conn(NS, "cache", pod).await;
    l.wait_for(&format!("{key} on {pod}"), Duration::from_secs(20), || {
        let r = c.cmd(&["GET", key]).ok();
        async move { (r == Some(Reply::Bulk(Some(want.as_bytes().to_vec())))).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_becomes_ready_and_replicas_serve_master_writes() {
    bounded(async {
        let started = Instant::now();
        let l = Local::start("ready", &[CACHE3]).await;
        l.wait_ready(NS, "cache", 3, BUDGET).await;
        let rr = l.status(NS, "cache").await.unwrap();
        assert_eq!(
            rr.status.as_ref().unwrap().master.as_deref(),
            Some("cache-0")
        );

        let mut m = l.master_conn(NS, "cache").await;
        assert_eq!(m.info_replication()["role"], "master");
        assert_eq!(
            m.cmd(&["SET", "greeting", "hello"]).unwrap(),
            Reply::Simple("OK".into())
        );
        for pod in ["cache-1", "cache-2"] {
            let mut c = l.pod_conn(NS, "cache", pod).await;
            assert_eq!(c.info_replication()["role"], "slave", "{pod}");
            read_eventually(&l, pod, "greeting", "hello").await;
        }
        // The progress output names the pods and the Ready condition.
        let out = l.output();
        assert!(out.contains("pod default/cache-0"), "{out}");
        // The first master of a new set is an assignment, not a failover.
        let reasons = l.event_reasons(NS).await;
        assert!(reasons.iter().any(|r| r == "MasterAssigned"), "{reasons:?}");
        assert!(
            !reasons
                .iter()
                .any(|r| r == "FailoverStarted" || r == "MasterPromoted"),
            "{reasons:?}"
        );
        assert!(out.contains("redis-cli -h"), "{out}");
        assert!(started.elapsed() < Duration::from_secs(90));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_3_to_5_adds_replicas_of_the_master() {
    bounded(async {
        let l = Local::start("scale", &[CACHE3]).await;
        l.wait_ready(NS, "cache", 3, BUDGET).await;
        l.rrs(NS)
            .patch(
                "cache",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 5}})),
            )
            .await
            .unwrap();
        l.wait_ready(NS, "cache", 5, BUDGET).await;
        let mut m = l.master_conn(NS, "cache").await;
        l.wait_for("4 connected replicas", Duration::from_secs(30), || {
            let info = m.info_replication();
            async move { (info.get("connected_slaves").map(String::as_str) == Some("4")).then_some(()) }
        })
        .await;
        m.cmd(&["SET", "k", "v5"]).unwrap();
        read_eventually(&l, "cache-4", "k", "v5").await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_resource_removes_children_and_processes() {
    bounded(async {
        let l = Local::start("delete", &[CACHE3]).await;
        l.wait_ready(NS, "cache", 3, BUDGET).await;
        assert_eq!(pod_pids(&l.dir).len(), 3);
        l.rrs(NS)
            .delete("cache", &DeleteParams::default())
            .await
            .unwrap();
        let c = l.client.clone();
        l.wait_for(
            "children garbage-collected",
            Duration::from_secs(30),
            || {
                let c = c.clone();
                async move {
                    let sts = Api::<StatefulSet>::namespaced(c.clone(), NS)
                        .get_opt("cache")
                        .await
                        .ok()?;
                    let svcs = Api::<Service>::namespaced(c.clone(), NS)
                        .list(&Default::default())
                        .await
                        .ok()?;
                    let cm = Api::<ConfigMap>::namespaced(c.clone(), NS)
                        .get_opt("cache-config")
                        .await
                        .ok()?;
                    let secret = Api::<Secret>::namespaced(c, NS)
                        .get_opt("cache-auth")
                        .await
                        .ok()?;
                    let svc_left = svcs.items.iter().any(|s| {
                        s.metadata
                            .name
                            .as_deref()
                            .is_some_and(|n| n.starts_with("cache"))
                    });
                    (sts.is_none() && !svc_left && cm.is_none() && secret.is_none()).then_some(())
                }
            },
        )
        .await;
        l.wait_for("pod processes gone", Duration::from_secs(30), || {
            let left = pod_pids(&l.dir);
            async move { left.is_empty().then_some(()) }
        })
        .await;
        l.wait_for("pod objects gone", Duration::from_secs(10), || async {
            l.pods(NS, "cache").await.is_empty().then_some(())
        })
        .await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_resource_gets_a_clear_condition_and_breaks_nothing() {
    bounded(async {
        let bad = "apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: bad
spec:
  replicas: 1
  config:
    port: \"7000\"
";
        let l = Local::start("invalid", &[bad, CACHE3]).await;
        let cond = l
            .wait_for("Degraded condition of bad", BUDGET, || async {
                let c = l.condition(NS, "bad", "Degraded").await?;
                (c["status"] == "True").then_some(c)
            })
            .await;
        assert_eq!(cond["reason"], "InvalidSpec", "{cond}");
        let msg = cond["message"].as_str().unwrap_or_default();
        assert!(msg.contains("port"), "{msg}");
        // The valid resource next to it is served normally.
        l.wait_ready(NS, "cache", 3, BUDGET).await;
        let mut m = l.master_conn(NS, "cache").await;
        assert_eq!(m.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
        assert!(
            l.pods(NS, "bad").await.is_empty(),
            "no pods for the invalid resource"
        );
        assert!(l.pid().is_some_and(pid_alive));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_state_dir_keeps_the_resource_and_its_data() {
    bounded(async {
        let persistent = "apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: cache
spec:
  replicas: 2
  persistence:
    appendonly: true
    appendfsync: always
    storage:
      size: 1Gi
";
        let l = Local::start("restart", &[persistent]).await;
        l.wait_ready(NS, "cache", 2, BUDGET).await;
        let uid = l.status(NS, "cache").await.unwrap().metadata.uid;
        let password = l.password(NS, "cache").await;
        let mut m = l.master_conn(NS, "cache").await;
        m.cmd(&["SET", "survivor", "yes"]).unwrap();
        read_eventually(&l, "cache-1", "survivor", "yes").await;
        drop(m);

        let first_pid = l.pid();
        let l = l.restart().await;
        assert_ne!(l.pid(), first_pid);
        let rr = l.status(NS, "cache").await.expect("the resource is back");
        assert_eq!(rr.metadata.uid, uid, "the same object, not a new one");
        // The stored status still says Ready from the first run until the runtime reports
        // the new processes: wait for those first.
        l.wait_for("2 pod processes", BUDGET, || {
            let n = pod_pids(&l.dir).len();
            async move { (n == 2).then_some(()) }
        })
        .await;
        l.wait_ready(NS, "cache", 2, BUDGET).await;
        assert_eq!(l.password(NS, "cache").await, password);
        let mut m = l.master_conn(NS, "cache").await;
        assert_eq!(
            m.cmd(&["GET", "survivor"]).unwrap(),
            Reply::Bulk(Some(b"yes".to_vec()))
        );
        // Every pod restarted from its AOF (no replication position survives): the operator
        // re-assigns the recorded master rather than waiting on incomparable histories, so
        // the set takes writes again and the replica follows.
        l.wait_for("a write after the restart", BUDGET, || {
            let r = m.cmd(&["SET", "after", "restart"]).ok();
            async move { (r == Some(Reply::Simple("OK".into()))).then_some(()) }
        })
        .await;
        let st = l.status(NS, "cache").await.unwrap().status.unwrap();
        assert_eq!(st.master.as_deref(), Some("cache-0"));
        read_eventually(&l, "cache-1", "after", "restart").await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_per_state_dir_and_ctrl_c_stops_everything() {
    bounded(async {
        let mut l = Local::start("lock", &[CACHE3]).await;
        l.wait_for("3 pod processes", BUDGET, || {
            let n = pod_pids(&l.dir).len();
            async move { (n == 3).then_some(()) }
        })
        .await;
        let pids = pod_pids(&l.dir);
        // A second `local` on the same directory is refused, naming the running one.
        let out = std::process::Command::new(common::local::operator_bin())
            .args(["local", "--state-dir"])
            .arg(&l.dir)
            .arg("--server-bin")
            .arg(common::local::server_bin())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("pid {}", l.pid().unwrap())), "{err}");
        // Ctrl-C: exit 0, pods stopped, lock and pid file gone, state kept.
        assert!(
            l.stop_with("-INT"),
            "exit status 0 expected:\n{}",
            l.output()
        );
        for pid in pids {
            assert!(!pid_alive(pid), "pod process {pid} survived");
        }
        assert!(netns_of(&l.instance).is_empty());
        assert!(!l.dir.join("local.pid").exists());
        assert!(!l.dir.join("local.lock").exists());
        assert!(l.dir.join("api-state.json").exists());
        assert!(l.output().contains("SIGINT received"), "{}", l.output());
    })
    .await
}

/// A test that fails midway still leaves nothing behind: the scenario panics inside a
/// task (the harness's Drop runs during the unwinding), then everything is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_leaves_no_processes_netns_or_files() {
    bounded(async {
        #[derive(Default, Debug, Clone)]
        struct Seen {
            dir: Option<std::path::PathBuf>,
            instance: String,
            local_pid: Option<u32>,
            pod_pids: Vec<u32>,
        }
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
        let s2 = seen.clone();
        let failing = tokio::spawn(async move {
            let l = Local::start("failing", &[CACHE3]).await;
            l.wait_for("3 pod processes", BUDGET, || {
                let n = pod_pids(&l.dir).len();
                async move { (n == 3).then_some(()) }
            })
            .await;
            *s2.lock().unwrap() = Seen {
                dir: Some(l.dir.clone()),
                instance: l.instance.clone(),
                local_pid: l.pid(),
                pod_pids: pod_pids(&l.dir),
            };
            panic!("deliberate failure with everything running");
        });
        let res = failing.await;
        assert!(res.is_err_and(|e| e.is_panic()), "the scenario must fail");
        let seen = seen.lock().unwrap().clone();
        let dir = seen.dir.clone().expect("the scenario got going");
        assert_eq!(seen.pod_pids.len(), 3);
        assert!(!seen.instance.is_empty());
        for pid in seen.pod_pids.iter().chain(seen.local_pid.iter()) {
            assert!(!pid_alive(*pid), "pid {pid} still alive: {seen:?}");
        }
        assert!(netns_of(&seen.instance).is_empty(), "{seen:?}");
        assert!(mounts_below(&dir).is_empty(), "{seen:?}");
        assert!(!dir.exists(), "temp dir left: {}", dir.display());
    })
    .await
}

/// Whether the kernel takes an nftables NAT chain (a throw-away table, deleted again).
fn kernel_has_nat() -> bool {
    use std::io::Write;
    let table = format!("tandem_probe_{}", std::process::id());
    let script = format!(
        "table ip {table} {{\n\tchain c {{ type nat hook output priority -100; policy accept; }}\n}}\n"
    );
    let ok = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            if let Some(mut i) = c.stdin.take() {
                i.write_all(script.as_bytes())?;
            }
            c.wait()
        })
        .is_ok_and(|s| s.success());
    let _ = std::process::Command::new("nft")
        .args(["delete", "table", "ip", &table])
        .output();
    ok
}

/// `nft list table ip <table>`, or "" when the table does not exist.
fn nft_table(table: &str) -> String {
    std::process::Command::new("nft")
        .args(["list", "table", "ip", table])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// As root with `nft` (CI installs it), the `-master` Service is forwarded by the kernel:
/// a DNAT rule points its port at the master pod, a client's connection reaches the pod with
/// its own source port (a proxy would connect from one of its own), the rule goes when the
/// pods go, and the table goes with the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_forwarded_by_the_kernel_when_nft_is_there() {
    let has_nft = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let root = rustix::process::geteuid().is_root();
    if !(has_nft && root) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test as root with nft installed"
        );
        eprintln!("skipped: needs root and nft");
        return;
    }
    if !kernel_has_nat() {
        // Local mode then uses its proxy (which every other end-to-end test exercises).
        // CI's machine has it; elsewhere a kernel without nftables NAT is skipped.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI's kernel must take an nftables NAT chain"
        );
        eprintln!("skipped: this kernel refuses an nftables NAT chain");
        return;
    }
    bounded(async {
        let mut l = Local::start("nat", &[CACHE3]).await;
        l.wait_ready(NS, "cache", 3, BUDGET).await;
        let table = format!("tandem_{}", l.instance);
        let svc = l
            .endpoint(&format!("{NS}/cache-master"), Duration::from_secs(30))
            .await;
        let master = l
            .status(NS, "cache")
            .await
            .and_then(|rr| rr.status?.master)
            .expect("a recorded master");
        let ip = l.pod_ip(NS, &master).await;
        // `nft list` prints a single target as `dnat to IP:PORT`.
        let rule = format!("tcp dport {} dnat to {ip}:6379", svc.port());
        l.wait_for("a DNAT rule to the master", Duration::from_secs(20), || {
            let found = nft_table(&table).contains(&rule);
            async move { found.then_some(()) }
        })
        .await;
        let mut c = l.master_conn(NS, "cache").await;
        let ours = c.local_addr().expect("local address").port();
        let info = match c.cmd(&["CLIENT", "INFO"]).expect("CLIENT INFO") {
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("CLIENT INFO: {other:?}"),
        };
        let seen = info
            .split_whitespace()
            .find_map(|f| f.strip_prefix("addr="))
            .expect("addr= field")
            .to_string();
        let role = c.cmd(&["ROLE"]).expect("ROLE").text();
        assert!(role.starts_with("master"), "{role}");
        // Masquerade keeps the source port unless another connection holds it already.
        assert!(
            seen.ends_with(&format!(":{ours}")),
            "the pod saw {seen}, the client is on port {ours}: not forwarded by the kernel?"
        );
        l.rrs(NS)
            .delete("cache", &DeleteParams::default())
            .await
            .unwrap();
        let port = format!("dport {} ", svc.port());
        l.wait_for(
            "the rule gone with the pods",
            Duration::from_secs(30),
            || {
                let text = nft_table(&table);
                let gone = !text.is_empty() && !text.contains(&port);
                async move { gone.then_some(()) }
            },
        )
        .await;
        assert!(l.stop(), "local mode stops");
        assert_eq!(nft_table(&table), "", "the instance's table is removed");
    })
    .await;
}
