//! The real kubectl against `tandem-operator local`: what a user sees on a cluster
//! (server-side tables, logs, describe, imperative create, `get all`).
//!
//! Skipped with a message where kubectl is not on PATH. Needs `cargo build -p
//! tandem-server` first (nextest `--workspace` builds it); see tests/common/local.rs for
//! the harness and its cleanup (by pid, on drop).

mod common;

use std::io::{Read, Write};

use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

use common::local::{kubectl_bin, Local};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;

const NS: &str = "default";

const CACHE2: &str = "apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: cache
spec:
  replicas: 2
";

const BUDGET: Duration = Duration::from_secs(60);

/// Every test is bounded: past 120 s the scenario is dropped (the harness's Drop cleans
/// up) and the test fails.
async fn bounded<F: std::future::Future<Output = ()>>(scenario: F) {
    if tokio::time::timeout(Duration::from_secs(120), scenario)
        .await
        .is_err()
    {
        panic!("scenario exceeded 120 s");
    }
}

/// kubectl's output must succeed; returns stdout.
async fn ok(l: &Local, args: &[&str]) -> String {
    let (success, out, err) = l.kubectl(args).await.expect("kubectl on PATH");
    assert!(success, "kubectl {args:?} failed:\n{out}\n{err}");
    out
}

/// The cells of the row whose first cell is `name` (whitespace-separated; cells of the
/// checked columns contain no spaces).
fn row<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{out}"))
}

fn header(out: &str) -> &str {
    out.lines().next().unwrap_or_default()
}

/// `NNN:R DD Mon YYYY HH:MM:SS.mmm L message`: Redis's log line format.
fn is_redis_log_line(l: &str) -> bool {
    let Some((pid, rest)) = l.split_once(':') else {
        return false;
    };
    let parts: Vec<&str> = rest.splitn(7, ' ').collect();
    pid.chars().all(|c| c.is_ascii_digit())
        && parts.len() == 7
        && ["C", "M", "S", "X"].contains(&parts[0])
        && parts[1].len() == 2
        && parts[2].len() == 3
        && parts[3].len() == 4
        && parts[4].len() == 12
        && [".", "-", "*", "#"].contains(&parts[5])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_prints_the_columns_a_real_api_server_prints() {
    if kubectl_bin().is_none() {
        eprintln!("kubectl not on PATH: skipping");
        return;
    }
    bounded(async {
        let l = Local::start("kubectl-get", &[CACHE2]).await;
        l.wait_ready(NS, "cache", 2, BUDGET).await;

        let pods = ok(&l, &["get", "pods"]).await;
        assert_eq!(
            header(&pods).split_whitespace().collect::<Vec<_>>(),
            ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        );
        let r = row(&pods, "cache-0");
        assert_eq!(r[1..4], ["1/1", "Running", "0"], "{pods}");

        let ip = l.pod_ip(NS, "cache-0").await;
        let wide = ok(&l, &["get", "pods", "-o", "wide"]).await;
        assert!(
            header(&wide).contains("IP") && header(&wide).contains("NOMINATED NODE"),
            "{wide}"
        );
        assert_eq!(row(&wide, "cache-0")[5], ip, "{wide}");

        // The RedisReplication's columns are the CRD's additionalPrinterColumns.
        let crd: CustomResourceDefinition = Api::all(l.client.clone())
            .get("redisreplications.tandem.dev")
            .await
            .unwrap();
        let cols: Vec<String> = crd.spec.versions[0]
            .additional_printer_columns
            .clone()
            .unwrap_or_default()
            .iter()
            .filter(|c| c.priority.unwrap_or(0) == 0)
            .map(|c| c.name.to_uppercase())
            .collect();
        assert!(cols.contains(&"MASTER".to_string()), "{cols:?}");
        let rrs = ok(&l, &["get", "redisreplications"]).await;
        let mut want = vec!["NAME".to_string()];
        want.extend(cols.iter().cloned());
        assert_eq!(
            header(&rrs).split_whitespace().collect::<Vec<_>>(),
            want.iter().map(String::as_str).collect::<Vec<_>>()
        );
        let master_at = want.iter().position(|c| c == "MASTER").unwrap();
        assert_eq!(row(&rrs, "cache")[master_at], "cache-0", "{rrs}");

        let events = ok(&l, &["get", "events"]).await;
        let h: Vec<&str> = header(&events).split_whitespace().collect();
        assert_eq!(
            h,
            ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            "{events}"
        );
        assert!(
            events.lines().any(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                c.get(1..4) == Some(&["Normal", "Started", "pod/cache-0"][..])
                    && l.contains("Started container server")
            }),
            "{events}"
        );

        let all = ok(&l, &["get", "all"]).await;
        for name in [
            "pod/cache-0",
            "pod/cache-1",
            "service/cache-master",
            "statefulset.apps/cache",
        ] {
            assert!(
                all.lines().any(|line| line.starts_with(name)),
                "{name} missing from get all:\n{all}"
            );
        }
        assert!(
            !all.contains("configmap/") && !all.contains("secret/"),
            "get all lists only workloads and services:\n{all}"
        );

        // The operator's own metrics: in endpoints.json, printed at start, and serving.
        let metrics = l
            .endpoint("operator/metrics", Duration::from_secs(10))
            .await;
        assert!(
            l.output().contains(&format!("http://{metrics}/metrics")),
            "{}",
            l.output()
        );
        let mut s = std::net::TcpStream::connect_timeout(&metrics, Duration::from_secs(3)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        assert!(
            body.starts_with("HTTP/1.") && body.contains(" 200 "),
            "{body}"
        );
    })
    .await;
}

async fn restart_count(l: &Local, pod: &str) -> Option<(i32, bool)> {
    let p = Api::<Pod>::namespaced(l.client.clone(), NS)
        .get_opt(pod)
        .await
        .ok()??;
    let cs = p.status?.container_statuses?.into_iter().next()?;
    Some((cs.restart_count, cs.ready))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_previous_and_describe_after_a_kill() {
    if kubectl_bin().is_none() {
        eprintln!("kubectl not on PATH: skipping");
        return;
    }
    bounded(async {
        let l = Local::start("kubectl-logs", &[CACHE2]).await;
        l.wait_ready(NS, "cache", 2, BUDGET).await;

        let log = ok(&l, &["logs", "cache-0"]).await;
        assert!(log.contains("Ready to accept connections"), "{log}");
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            lines.iter().filter(|x| is_redis_log_line(x)).count() >= 3,
            "{log}"
        );
        let first_pid = lines[0].split(':').next().unwrap().to_string();
        let tail = ok(&l, &["logs", "cache-0", "-c", "server", "--tail", "1"]).await;
        assert_eq!(tail.lines().count(), 1, "{tail}");
        assert_eq!(tail.lines().next(), lines.last().copied());

        let (success, _, err) = l.kubectl(&["logs", "cache-0", "--previous"]).await.unwrap();
        assert!(
            !success && err.contains("previous terminated container"),
            "{err}"
        );
        let (success, _, err) = l.kubectl(&["logs", "cache-0", "-c", "nope"]).await.unwrap();
        assert!(!success && err.contains("not valid for pod"), "{err}");

        // Follow the current run, then kill the process: the follow ends with that run.
        let bin = kubectl_bin().unwrap();
        let mut follow = tokio::process::Command::new(bin)
            .arg("--kubeconfig")
            .arg(l.dir.join("kubeconfig"))
            .args(["logs", "-f", "cache-0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines_out = BufReader::new(follow.stdout.take().unwrap()).lines();
        let mut followed = Vec::new();
        // The follow first sends the run so far: wait for its "ready" line.
        tokio::time::timeout(BUDGET, async {
            while let Some(line) = lines_out.next_line().await.unwrap() {
                let ready = line.contains("Ready to accept connections");
                followed.push(line);
                if ready {
                    return;
                }
            }
            panic!("kubectl logs -f ended early: {followed:?}");
        })
        .await
        .expect("kubectl logs -f sends the current run");
        // `kubectl get pods -w` sees the restart as table rows (watch events as Tables).
        let watcher = tokio::process::Command::new(kubectl_bin().unwrap())
            .arg("--kubeconfig")
            .arg(l.dir.join("kubeconfig"))
            .args(["get", "pods", "-w"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let killed = l.kill_pod_process(NS, "cache-0");
        assert_eq!(killed.to_string(), first_pid);
        tokio::time::timeout(BUDGET, async {
            while let Some(line) = lines_out.next_line().await.unwrap() {
                followed.push(line);
            }
        })
        .await
        .expect("kubectl logs -f ends when the container's run ends");
        let status = tokio::time::timeout(BUDGET, follow.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status}");
        assert!(
            followed
                .iter()
                .all(|x| x.starts_with(&format!("{first_pid}:"))),
            "only the followed run:\n{followed:?}"
        );

        l.wait_for("cache-0 restarted and ready", BUDGET, || async {
            restart_count(&l, "cache-0")
                .await
                .filter(|(n, ready)| *n == 1 && *ready)
        })
        .await;
        let mut watcher = watcher;
        watcher.start_kill().unwrap();
        let watched = tokio::time::timeout(BUDGET, watcher.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let watched = String::from_utf8_lossy(&watched.stdout).into_owned();
        assert_eq!(
            header(&watched).split_whitespace().collect::<Vec<_>>(),
            ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        );
        assert!(
            watched.lines().any(|x| {
                let c: Vec<&str> = x.split_whitespace().collect();
                c.first() == Some(&"cache-0") && c.get(3) == Some(&"1")
            }),
            "the watch shows cache-0's restart:\n{watched}"
        );
        // The listed row and at least one watched one (the pod becoming ready again comes
        // a back-off after the kill), every row with all five columns.
        let rows: Vec<usize> = watched
            .lines()
            .filter(|x| x.starts_with("cache-0 "))
            .map(|x| x.split_whitespace().count())
            .collect();
        assert!(rows.len() >= 2 && rows.iter().all(|n| *n >= 5), "{watched}");
        let previous = ok(&l, &["logs", "cache-0", "--previous"]).await;
        assert!(
            !previous.is_empty()
                && previous
                    .lines()
                    .all(|x| x.starts_with(&format!("{first_pid}:"))),
            "{previous}"
        );
        let current = ok(&l, &["logs", "cache-0"]).await;
        assert!(
            current.contains("Ready to accept connections")
                && !current.contains(&format!("{first_pid}:")),
            "{current}"
        );
        let pods = ok(&l, &["get", "pods"]).await;
        assert!(row(&pods, "cache-0")[3] == "1", "{pods}");
        assert!(
            pods.contains("1 ("),
            "RESTARTS shows the last restart's age: {pods}"
        );

        let describe = ok(&l, &["describe", "pod", "cache-0"]).await;
        let has = |key: &str, value: &str| {
            describe
                .lines()
                .any(|x| x.trim_start().starts_with(key) && x.contains(value))
        };
        assert!(has("Conditions:", ""), "{describe}");
        assert!(has("Ready ", "True"), "{describe}");
        assert!(has("State:", "Running"), "{describe}");
        assert!(has("Last State:", "Terminated"), "{describe}");
        assert!(has("Restart Count:", "1"), "{describe}");
        assert!(has("Events:", ""), "{describe}");
        assert!(has("Normal", "Started container server"), "{describe}");
        assert!(has("Warning", "BackOff"), "{describe}");
        let events_part = describe.split("Events:").nth(1).unwrap_or_default();
        assert!(
            !events_part.contains("cache-1"),
            "only cache-0's events: {events_part}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imperative_create_secret_configmap_namespace() {
    if kubectl_bin().is_none() {
        eprintln!("kubectl not on PATH: skipping");
        return;
    }
    bounded(async {
        let l = Local::start("kubectl-create", &[]).await;
        let started = Instant::now();
        let out = ok(
            &l,
            &[
                "create",
                "secret",
                "generic",
                "sessions-auth",
                "--from-literal=password=s3cret",
            ],
        )
        .await;
        assert!(out.contains("secret/sessions-auth created"), "{out}");
        let secrets = ok(&l, &["get", "secret", "sessions-auth"]).await;
        assert_eq!(
            row(&secrets, "sessions-auth")[1..3],
            ["Opaque", "1"],
            "{secrets}"
        );
        let pw = ok(
            &l,
            &[
                "get",
                "secret",
                "sessions-auth",
                "-o",
                "jsonpath={.data.password}",
            ],
        )
        .await;
        assert_eq!(pw, "czNjcmV0"); // base64 of s3cret

        ok(
            &l,
            &[
                "create",
                "configmap",
                "settings",
                "--from-literal=a=1",
                "--from-literal=b=2",
            ],
        )
        .await;
        let cms = ok(&l, &["get", "configmap", "settings"]).await;
        assert_eq!(row(&cms, "settings")[1], "2", "{cms}");

        ok(&l, &["create", "namespace", "team-a"]).await;
        let ns = ok(&l, &["get", "namespace", "team-a"]).await;
        assert_eq!(row(&ns, "team-a")[1], "Active", "{ns}");
        ok(
            &l,
            &[
                "-n",
                "team-a",
                "create",
                "secret",
                "generic",
                "in-team",
                "--from-literal=k=v",
            ],
        )
        .await;
        let s = ok(&l, &["-n", "team-a", "get", "secrets"]).await;
        row(&s, "in-team");
        // A duplicate is refused as on a cluster.
        let (success, _, err) = l.kubectl(&["create", "namespace", "team-a"]).await.unwrap();
        assert!(!success && err.contains("AlreadyExists"), "{err}");
        assert!(started.elapsed() < BUDGET);
    })
    .await;
}

/// One raw HTTP/1.0 request to the local API; returns (status code, body).
fn raw_request(l: &Local, method: &str, path: &str, ctype: &str, body: &[u8]) -> (u16, String) {
    let kc = std::fs::read_to_string(l.dir.join("kubeconfig")).unwrap();
    let server = kc
        .lines()
        .find_map(|x| x.trim().strip_prefix("server: "))
        .expect("server in kubeconfig")
        .trim_matches('"')
        .trim_start_matches("http://")
        .to_string();
    let addr: std::net::SocketAddr = server.trim_end_matches('/').parse().unwrap();
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_protobuf_and_log_requests_get_clear_errors_and_the_api_survives() {
    bounded(async {
        let l = Local::start("kubectl-bad", &[]).await;
        let pb = "application/vnd.kubernetes.protobuf";
        let path = "/api/v1/namespaces/default/secrets";
        // Not protobuf at all, a length far beyond the body, an endless varint.
        let mut huge = b"k8s\0\x12".to_vec();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        let mut endless = b"k8s\0\x0a".to_vec();
        endless.extend_from_slice(&[0x80; 64]);
        for body in [&b"{\"kind\":\"Secret\"}"[..], &huge, &endless] {
            let (code, text) = raw_request(&l, "POST", path, pb, body);
            assert_eq!(code, 400, "{text}");
            assert!(text.contains("could not be decoded as protobuf"), "{text}");
        }
        // A kind this server does not decode from protobuf: 415, not a wrong object.
        let mut pod = b"k8s\0\x0a\x09\x0a\x02v1\x12\x03Pod".to_vec();
        pod.extend_from_slice(b"\x12\x00");
        let (code, text) = raw_request(&l, "POST", "/api/v1/namespaces/default/pods", pb, &pod);
        assert_eq!(code, 415, "{text}");
        // Another media type for a create.
        let (code, _) = raw_request(&l, "POST", path, "application/cbor", b"\xa0");
        assert_eq!(code, 415);
        // Log of a pod that does not exist; a bad tailLines.
        let (code, _) = raw_request(
            &l,
            "GET",
            "/api/v1/namespaces/default/pods/none/log",
            "text/plain",
            b"",
        );
        assert_eq!(code, 404);
        // Still serving: a JSON create works.
        let (code, text) = raw_request(
            &l,
            "POST",
            path,
            "application/json",
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"ok"},"stringData":{"a":"b"}}"#,
        );
        assert_eq!(code, 201, "{text}");
        let (code, text) = raw_request(
            &l,
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}"#,
        );
        assert_eq!(code, 201, "{text}");
        let (code, text) = raw_request(
            &l,
            "GET",
            "/api/v1/namespaces/default/pods/p/log?tailLines=abc",
            "text/plain",
            b"",
        );
        assert_eq!(code, 400, "{text}");
        assert!(text.contains("tailLines"), "{text}");
    })
    .await;
}
