//! End-to-end `spec.tls` through `tandem-operator local` (real tandem-server pods): TLS
//! through the master Service with redis-cli, replication over TLS, a renewed certificate
//! served without restarts, and a bad Secret reported while the old certificate stays.
//! Certificates come from the `openssl` CLI (tests/common/certs.rs). Local mode has no
//! cert-manager: the Secret is created by the test (the Certificate is covered by
//! tests/tls_reconcile.rs against the fake API).

mod common;

use std::time::{Duration, Instant};

use common::certs::{served_serial, Pki};
use common::local::{Local, Reply};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const NS: &str = "default";
const BUDGET: Duration = Duration::from_secs(60);

/// Every scenario is bounded (the harness's Drop cleans up), see tests/e2e_local.rs.
async fn bounded<F: std::future::Future<Output = ()>>(scenario: F) {
    if tokio::time::timeout(Duration::from_secs(90), scenario)
        .await
        .is_err()
    {
        panic!("scenario exceeded 90 s");
    }
}

/// Local mode with the Secret `cache-certs` (leaf `server`) and a 2-pod set using it, both
/// applied from files (JSON is YAML).
async fn start(tag: &str, pki: &Pki) -> Local {
    let secret = pki
        .secret("cache-certs", "server", "server", "ca")
        .to_string();
    let rr = json!({
        "apiVersion": "tandem.dev/v1alpha1", "kind": "RedisReplication",
        "metadata": {"name": "cache", "namespace": NS},
        "spec": {"replicas": 2, "tls": {"secretName": "cache-certs"}},
    })
    .to_string();
    let l = Local::start(tag, &[&secret, &rr]).await;
    l.wait_ready(NS, "cache", 2, BUDGET).await;
    l
}

/// `redis-cli --tls` against `addr` with the CA; stdout trimmed.
fn redis_cli_tls(addr: std::net::SocketAddr, ca: &str, password: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("timeout")
        .args([
            "10",
            "redis-cli",
            "--tls",
            "--cacert",
            ca,
            "--no-auth-warning",
        ])
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-a", password])
        .args(args)
        .output()
        .expect("run redis-cli");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// (pod name, restartCount) of the set's pods.
async fn restart_counts(l: &Local) -> Vec<(String, i32)> {
    let pods: Vec<Pod> = l.pods(NS, "cache").await;
    let mut out: Vec<(String, i32)> = pods
        .iter()
        .map(|p| {
            let n = p.metadata.name.clone().unwrap_or_default();
            let c = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.first())
                .map(|c| c.restart_count)
                .unwrap_or(-1);
            (n, c)
        })
        .collect();
    out.sort();
    out
}

/// The TLS address of every pod (`<pod IP>:6380`).
async fn pod_tls_addrs(l: &Local) -> Vec<String> {
    let mut out = Vec::new();
    for pod in ["cache-0", "cache-1"] {
        out.push(format!("{}:6380", l.pod_ip(NS, pod).await));
    }
    out
}

async fn replace_secret(l: &Local, pki: &Pki, leaf: &str, key_of: &str) {
    let body = pki.secret("cache-certs", leaf, key_of, "ca");
    Api::<Secret>::namespaced(l.client.clone(), NS)
        .patch(
            "cache-certs",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": body["stringData"]})),
        )
        .await
        .expect("patch the TLS Secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_set_serves_tls_replicates_over_it_and_serves_a_renewed_certificate_without_restarts() {
    let pki = Pki::new("e2e-rotate");
    pki.leaf("server", "ca", 365);
    pki.leaf("renewed", "ca", 365);
    assert_ne!(pki.serial("server"), pki.serial("renewed"));
    bounded(async {
        let started = Instant::now();
        let l = start("tls-rotate", &pki).await;
        let ca = pki.path("ca.crt");
        let pw = l.password(NS, "cache").await;

        // Clients: TLS through the master Service's redis-tls port.
        let svc = l
            .endpoint(
                &format!("{NS}/cache-master:redis-tls"),
                Duration::from_secs(30),
            )
            .await;
        assert_eq!(redis_cli_tls(svc, &ca, &pw, &["PING"]), "PONG");
        assert_eq!(
            redis_cli_tls(svc, &ca, &pw, &["SET", "k", "over-tls"]),
            "OK"
        );
        assert_eq!(redis_cli_tls(svc, &ca, &pw, &["GET", "k"]), "over-tls");
        assert_eq!(
            served_serial(&svc.to_string(), &ca).as_deref(),
            Some(pki.serial("server").as_str())
        );

        // The replica follows the master on its TLS port (which speaks only TLS), link up,
        // and has the write.
        let mut replica = l.pod_conn(NS, "cache", "cache-1").await;
        l.wait_for(
            "cache-1 replicating over TLS",
            Duration::from_secs(20),
            || {
                let info = replica.info_replication();
                let got = replica.cmd(&["GET", "k"]).ok();
                async move {
                    (info.get("master_port").map(String::as_str) == Some("6380")
                        && info.get("master_link_status").map(String::as_str) == Some("up")
                        && got == Some(Reply::Bulk(Some(b"over-tls".to_vec()))))
                    .then_some(())
                }
            },
        )
        .await;

        // The operator reaches the pods over TLS: its heartbeat keeps a connection to the
        // master's TLS port, pinging twice a second.
        let mut master = l.pod_conn(NS, "cache", "cache-0").await;
        l.wait_for(
            "the operator's heartbeat on the TLS port",
            Duration::from_secs(20),
            || {
                let list = master
                    .cmd(&["CLIENT", "LIST"])
                    .map(|r| r.text())
                    .unwrap_or_default();
                async move {
                    list.lines()
                        .any(|c| c.contains(":6380 ") && c.contains(" cmd=ping "))
                        .then_some(())
                }
            },
        )
        .await;

        // status.tls shows the certificate's expiry; the condition says it is valid.
        let st = l.status(NS, "cache").await.unwrap().status.unwrap();
        let tls = st.tls.expect("status.tls");
        assert_eq!(tls.secret_name, "cache-certs");
        assert!(tls.not_after.is_some(), "no notAfter");
        let c = l.condition(NS, "cache", "TLSCertificate").await.unwrap();
        assert_eq!(c["status"], "True", "{c}");

        // Renewal: a new certificate from the same CA, new serial, same pods.
        let before = restart_counts(&l).await;
        let pids = common::local::pod_pids(&l.dir);
        replace_secret(&l, &pki, "renewed", "renewed").await;
        let want = pki.serial("renewed");
        let renewed_at = Instant::now();
        let addrs = pod_tls_addrs(&l).await;
        l.wait_for(
            "the renewed certificate served",
            Duration::from_secs(30),
            || {
                let served: Vec<Option<String>> = std::iter::once(svc.to_string())
                    .chain(addrs.iter().cloned())
                    .map(|a| served_serial(&a, &ca))
                    .collect();
                let want = want.clone();
                async move {
                    served
                        .iter()
                        .all(|s| s.as_deref() == Some(want.as_str()))
                        .then_some(())
                }
            },
        )
        .await;
        eprintln!(
            "renewed certificate served by every pod after {:?}",
            renewed_at.elapsed()
        );
        assert_eq!(restart_counts(&l).await, before, "pods restarted");
        assert_eq!(
            common::local::pod_pids(&l.dir),
            pids,
            "server processes replaced"
        );
        assert_eq!(redis_cli_tls(svc, &ca, &pw, &["GET", "k"]), "over-tls");
        assert!(started.elapsed() < Duration::from_secs(90));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_does_not_match_is_reported_degraded_and_the_old_certificate_stays() {
    let pki = Pki::new("e2e-bad");
    pki.leaf("server", "ca", 365);
    pki.leaf("other", "ca", 365);
    bounded(async {
        let l = start("tls-bad", &pki).await;
        let ca = pki.path("ca.crt");
        let svc = l
            .endpoint(
                &format!("{NS}/cache-master:redis-tls"),
                Duration::from_secs(30),
            )
            .await;
        let old = pki.serial("server");
        assert_eq!(
            served_serial(&svc.to_string(), &ca).as_deref(),
            Some(old.as_str())
        );
        let before = restart_counts(&l).await;

        // A new certificate with the old key: refused by the servers, reported by the operator.
        replace_secret(&l, &pki, "other", "server").await;
        let degraded = l
            .wait_for(
                "Degraded naming the Secret",
                Duration::from_secs(30),
                || async {
                    let c = l.condition(NS, "cache", "Degraded").await?;
                    (c["status"] == "True"
                        && c["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("cache-certs")))
                    .then_some(c)
                },
            )
            .await;
        assert_eq!(degraded["reason"], "TLSKeyMismatch", "{degraded}");
        assert!(
            degraded["message"]
                .as_str()
                .unwrap_or_default()
                .contains("does not match"),
            "{degraded}"
        );
        let c = l.condition(NS, "cache", "TLSCertificate").await.unwrap();
        assert_eq!(c["status"], "False", "{c}");
        // The transition to Degraded is also a Warning Event with the reason.
        let reasons = l.event_reasons(NS).await;
        assert!(reasons.iter().any(|r| r == "TLSKeyMismatch"), "{reasons:?}");
        // The servers saw the files change (they re-check every second) and kept the old
        // certificate: give them a few checks, then look.
        let pw = l.password(NS, "cache").await;
        for addr in std::iter::once(svc.to_string()).chain(pod_tls_addrs(&l).await) {
            for _ in 0..3 {
                assert_eq!(
                    served_serial(&addr, &ca).as_deref(),
                    Some(old.as_str()),
                    "{addr}"
                );
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        }
        assert_eq!(redis_cli_tls(svc, &ca, &pw, &["PING"]), "PONG");
        assert_eq!(restart_counts(&l).await, before, "pods restarted");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_over_tls_the_old_master_follows_the_new_one_on_the_tls_port() {
    let pki = Pki::new("e2e-failover");
    pki.leaf("server", "ca", 365);
    bounded(async {
        let l = start("tls-failover", &pki).await;
        let ca = pki.path("ca.crt");
        let pw = l.password(NS, "cache").await;
        let svc = l
            .endpoint(
                &format!("{NS}/cache-master:redis-tls"),
                Duration::from_secs(30),
            )
            .await;
        assert_eq!(redis_cli_tls(svc, &ca, &pw, &["SET", "k", "before"]), "OK");
        let mut replica = l.pod_conn(NS, "cache", "cache-1").await;
        l.wait_for("the write on cache-1", Duration::from_secs(20), || {
            let got = replica.cmd(&["GET", "k"]).ok();
            async move { (got == Some(Reply::Bulk(Some(b"before".to_vec())))).then_some(()) }
        })
        .await;

        // The master's server dies and comes back empty: the operator (probing over TLS)
        // promotes cache-1 and repoints cache-0 to it, on the TLS port.
        l.kill_pod_process(NS, "cache-0");
        l.wait_for(
            "cache-1 recorded as master",
            Duration::from_secs(40),
            || async {
                let st = l.status(NS, "cache").await?.status?;
                (st.master.as_deref() == Some("cache-1") && st.epoch > 0).then_some(())
            },
        )
        .await;
        let mut old = l.pod_conn(NS, "cache", "cache-0").await;
        l.wait_for(
            "cache-0 following cache-1 over TLS",
            Duration::from_secs(30),
            || {
                let info = old.info_replication();
                let got = old.cmd(&["GET", "k"]).ok();
                async move {
                    (info.get("role").map(String::as_str) == Some("slave")
                        && info
                            .get("master_host")
                            .is_some_and(|h| h.starts_with("cache-1."))
                        && info.get("master_port").map(String::as_str) == Some("6380")
                        && info.get("master_link_status").map(String::as_str) == Some("up")
                        && got == Some(Reply::Bulk(Some(b"before".to_vec()))))
                    .then_some(())
                }
            },
        )
        .await;
        l.wait_for(
            "writes through the master Service",
            Duration::from_secs(20),
            || {
                let r = redis_cli_tls(svc, &ca, &pw, &["SET", "k", "after"]);
                async move { (r == "OK").then_some(()) }
            },
        )
        .await;
    })
    .await;
}
