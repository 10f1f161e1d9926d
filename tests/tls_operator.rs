//! `spec.tls` without local mode: the TLS Secret's checks and the status they produce, the
//! operator's TLS client against a TLS-only tandem-server, and a reconcile against the fake
//! API that renders the config, mounts, ports and the cert-manager Certificate.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::api::TestApi;
use common::certs::Pki;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{json, Value};
use tandem_operator::build::Params;
use tandem_operator::controller::observe::Observed;
use tandem_operator::controller::{reconcile, tls_status, Context};
use tandem_operator::crd::{RedisReplication, RedisReplicationStatus};
use tandem_operator::failover::credentials::Credentials;
use tandem_operator::failover::probe::{self, Timeouts};
use tandem_operator::failover::tls_transport::transport;
use tandem_operator::metrics::Metrics;
use tandem_operator::tls::{self, TlsSecretError};

const NS: &str = "prod";

fn secret(pki: &Pki, leaf: &str, key_of: &str) -> Secret {
    serde_json::from_value(pki.secret("certs", leaf, key_of, "ca")).unwrap()
}

fn tls_rr(extra: Value) -> RedisReplication {
    let mut tls = json!({"secretName": "certs"});
    if let (Some(t), Some(e)) = (tls.as_object_mut(), extra.as_object()) {
        t.extend(e.clone());
    }
    let mut rr: RedisReplication = serde_json::from_value(json!({
        "apiVersion": "tandem.dev/v1alpha1", "kind": "RedisReplication",
        "metadata": {"name": "cache", "namespace": NS, "uid": "u1", "generation": 1},
        "spec": {"replicas": 2, "tls": tls},
    }))
    .unwrap();
    rr.status = Some(RedisReplicationStatus::default());
    rr
}

fn now() -> i64 {
    tls::unix_now()
}

#[test]
fn a_good_secret_checks_out_with_its_expiry() {
    let pki = Pki::new("good");
    pki.leaf("server", "ca", 30);
    let s = secret(&pki, "server", "server");
    let m = tls::check("certs", Some(&s), now()).expect("valid");
    let days = (m.not_after - now()) as f64 / 86_400.0;
    assert!((29.0..=31.0).contains(&days), "{days}");
    assert_eq!(tls::not_after(&s), Some(m.not_after));
}

#[test]
fn bad_secrets_are_named_and_explained() {
    let pki = Pki::new("bad");
    pki.leaf("server", "ca", 30);
    pki.leaf("other", "ca", 30);
    pki.leaf("old", "ca", -1);
    let err = |s: Option<&Secret>| tls::check("certs", s, now()).unwrap_err();

    let e = err(None);
    assert_eq!(
        e,
        TlsSecretError::Missing {
            secret: "certs".into()
        }
    );
    assert_eq!(e.to_string(), "TLS Secret certs does not exist");

    let mut no_key = secret(&pki, "server", "server");
    if let Some(d) = no_key.string_data.as_mut() {
        d.remove("tls.key");
    }
    let e = err(Some(&no_key));
    assert_eq!(e.to_string(), "TLS Secret certs has no tls.key");
    assert_eq!(e.reason(), "TLSSecretIncomplete");

    let e = err(Some(&secret(&pki, "server", "other")));
    assert_eq!(
        e.to_string(),
        "TLS Secret certs: tls.key does not match the certificate in tls.crt"
    );
    assert_eq!(e.reason(), "TLSKeyMismatch");

    let e = err(Some(&secret(&pki, "old", "old")));
    assert!(
        e.to_string()
            .starts_with("TLS Secret certs: the certificate in tls.crt expired at "),
        "{e}"
    );
    assert_eq!(e.reason(), "TLSCertificateExpired");

    let mut garbage = secret(&pki, "server", "server");
    if let Some(d) = garbage.string_data.as_mut() {
        d.insert("tls.crt".into(), "not a certificate".into());
    }
    assert_eq!(
        err(Some(&garbage)).to_string(),
        "TLS Secret certs: tls.crt holds no PEM certificate"
    );
}

fn status_after(rr: &RedisReplication, s: Option<Secret>, phase: &str) -> RedisReplicationStatus {
    let mut st = RedisReplicationStatus {
        phase: Some(phase.into()),
        conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: "Degraded".into(),
            status: "False".into(),
            reason: "AsExpected".into(),
            message: "no problem detected".into(),
            observed_generation: Some(1),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        }],
        ..Default::default()
    };
    let observed = Observed {
        tls_secret: s,
        ..Default::default()
    };
    tls_status::apply(
        &mut st,
        rr,
        &observed,
        now(),
        &Time(k8s_openapi::jiff::Timestamp::now()),
    );
    st
}

fn cond<'a>(
    st: &'a RedisReplicationStatus,
    t: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    st.conditions.iter().find(|c| c.type_ == t).unwrap()
}

#[test]
fn status_shows_the_expiry_and_warns_within_the_configured_days() {
    let pki = Pki::new("status");
    pki.leaf("short", "ca", 5);
    pki.leaf("long", "ca", 90);
    let rr = tls_rr(json!({}));
    let st = status_after(&rr, Some(secret(&pki, "long", "long")), "Ready");
    let t = st.tls.as_ref().unwrap();
    assert_eq!(t.secret_name, "certs");
    let not_after: k8s_openapi::jiff::Timestamp = t.not_after.as_ref().unwrap().parse().unwrap();
    let days = (not_after.as_second() - now()) / 86_400;
    assert!((89..=90).contains(&days), "{days}");
    assert_eq!(cond(&st, "TLSCertificate").status, "True");
    assert_eq!(cond(&st, "Degraded").status, "False");
    assert_eq!(st.phase.as_deref(), Some("Ready"));

    // 5 days left, warning at 14 (the default): a warning, not a degradation.
    let st = status_after(&rr, Some(secret(&pki, "short", "short")), "Ready");
    let c = cond(&st, "TLSCertificate");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "ExpiresSoon")
    );
    assert!(
        c.message.contains("certs") && c.message.contains("within 14 days"),
        "{}",
        c.message
    );
    assert_eq!(cond(&st, "Degraded").status, "False");
    // ... and none with a 3-day threshold.
    let rr3 = tls_rr(json!({"expiryWarningDays": 3}));
    let st = status_after(&rr3, Some(secret(&pki, "short", "short")), "Ready");
    assert_eq!(cond(&st, "TLSCertificate").status, "True");
}

#[test]
fn a_bad_secret_degrades_the_set_naming_the_secret() {
    let pki = Pki::new("degraded");
    pki.leaf("server", "ca", 30);
    pki.leaf("other", "ca", 30);
    let rr = tls_rr(json!({}));
    let st = status_after(&rr, Some(secret(&pki, "server", "other")), "Ready");
    let d = cond(&st, "Degraded");
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "TLSKeyMismatch")
    );
    assert!(d.message.contains("TLS Secret certs"), "{}", d.message);
    assert_eq!(st.phase.as_deref(), Some("Degraded"));
    assert_eq!(cond(&st, "TLSCertificate").reason, "TLSKeyMismatch");
    // The expiry of what the Secret holds is still shown.
    assert!(st.tls.unwrap().not_after.is_some());

    let st = status_after(&rr, None, "Provisioning");
    assert_eq!(cond(&st, "Degraded").reason, "TLSSecretMissing");
    assert_eq!(st.phase.as_deref(), Some("Provisioning"));

    // Without spec.tls: no TLS status, no TLS condition.
    let mut plain = rr.clone();
    plain.spec.tls = None;
    let st = status_after(&plain, None, "Ready");
    assert!(st.tls.is_none());
    assert!(st.conditions.iter().all(|c| c.type_ != "TLSCertificate"));
}

/// A tandem-server with only a TLS port (`port 0`) requiring client certificates.
struct TlsOnly {
    child: Child,
    port: u16,
}

impl Drop for TlsOnly {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_only_server(pki: &Pki) -> TlsOnly {
    let bin = common::loopback_servers::server_bin();
    for _ in 0..20 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let child = Command::new(&bin)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
            ])
            .args(["--tls-cert-file", &pki.path("server.crt")])
            .args(["--tls-key-file", &pki.path("server.key")])
            .args(["--tls-ca-cert-file", &pki.path("ca.crt")])
            .args(["--tls-auth-clients", "yes", "--requirepass", "pw"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                pki.dir.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tandem-server");
        let mut s = TlsOnly { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = s.child.try_wait() {
                break; // port taken meanwhile: try another
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = s.child.kill();
    }
    panic!("could not start a TLS-only tandem-server");
}

#[tokio::test]
async fn probes_reach_a_tls_only_pod_with_the_secrets_ca_and_certificate() {
    let pki = Pki::new("probe");
    pki.leaf("server", "ca", 30);
    let srv = tls_only_server(&pki);
    let addr = format!("127.0.0.1:{}", srv.port);
    let rr = tls_rr(json!({"authClients": "yes"}));
    let observed = Observed {
        tls_secret: Some(secret(&pki, "server", "server")),
        ..Default::default()
    };
    let t = transport(&rr, &observed, now());
    assert_eq!((t.ports.connect, t.ports.advertise), (6380, 6380));
    let tls = t.tls.expect("a TLS client from a good Secret");
    let p = probe::observe_over(
        "cache-0",
        0,
        &addr,
        &Credentials::password(Some("pw".into())),
        Timeouts::default(),
        Some(&tls),
    )
    .await;
    assert!(p.error.is_none(), "{:?}", p.error);
    assert!(p.observation.reachable);
    // The same port in plain text gets nowhere.
    let plain = probe::observe(
        "cache-0",
        0,
        &addr,
        &Credentials::password(Some("pw".into())),
        Timeouts::default(),
    )
    .await;
    assert!(!plain.observation.reachable);

    // A bad Secret: no TLS client, the plain port is probed; replicas still follow over TLS.
    let bad = Observed {
        tls_secret: None,
        ..Default::default()
    };
    let t = transport(&rr, &bad, now());
    assert!(t.tls.is_none());
    assert_eq!((t.ports.connect, t.ports.advertise), (6379, 6380));
    let no_repl = tls_rr(json!({"replication": false}));
    let t = transport(&no_repl, &observed, now());
    assert_eq!((t.ports.connect, t.ports.advertise), (6380, 6379));
}

const CERT_CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "certificates.cert-manager.io"},
  "spec": {"group": "cert-manager.io", "scope": "Namespaced",
    "names": {"plural": "certificates", "singular": "certificate", "kind": "Certificate", "listKind": "CertificateList"},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}}"#;

#[tokio::test]
async fn reconcile_renders_tls_and_creates_the_certificate_for_the_issuer() {
    let api = TestApi::start(&[NS]).await;
    api.put(
        "apis/apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "",
        "certificates.cert-manager.io",
        serde_json::from_str(CERT_CRD).unwrap(),
    );
    let client = api.client();
    let ctx = Arc::new(Context {
        client: client.clone(),
        params: Params::default(),
        metrics: Arc::new(Metrics::default()),
        recorder: None,
        roles: Default::default(),
    });
    let mut rr = tls_rr(json!({"issuerRef": {"name": "ca-issuer", "kind": "ClusterIssuer"}}));
    rr.status = None;
    let rr_path = ("apis/tandem.dev/v1alpha1", "redisreplications");
    api.put(
        rr_path.0,
        rr_path.1,
        NS,
        "cache",
        serde_json::to_value(&rr).unwrap(),
    );
    let stored: RedisReplication =
        serde_json::from_value(api.get(rr_path.0, rr_path.1, NS, "cache").unwrap()).unwrap();
    reconcile(Arc::new(stored), ctx.clone())
        .await
        .expect("reconcile");

    let cert = api
        .get("apis/cert-manager.io/v1", "certificates", NS, "cache-tls")
        .expect("the Certificate was applied");
    assert_eq!(cert["spec"]["secretName"], "certs");
    assert_eq!(cert["spec"]["issuerRef"]["kind"], "ClusterIssuer");
    assert_eq!(cert["metadata"]["ownerReferences"][0]["name"], "cache");
    assert!(cert["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .contains(&json!("*.cache-headless.prod.svc.cluster.local")));

    let cm = api.get("api/v1", "configmaps", NS, "cache-config").unwrap();
    let conf = cm["data"]["tandem.conf"].as_str().unwrap();
    for l in [
        "tls-port 6380",
        "tls-cert-file /etc/tandem/tls/tls.crt",
        "tls-replication yes",
        "tls-auth-clients no",
    ] {
        assert!(conf.lines().any(|x| x == l), "{l} missing in\n{conf}");
    }
    assert!(cm["data"]["pod-1.conf"]
        .as_str()
        .unwrap()
        .ends_with(" 6380\n"));

    let sts = api
        .get("apis/apps/v1", "statefulsets", NS, "cache")
        .unwrap();
    let pod = &sts["spec"]["template"]["spec"];
    assert!(pod["volumes"].as_array().unwrap().contains(
        &json!({"name": "tls", "secret": {"secretName": "certs", "defaultMode": 0o440}})
    ));
    let c = &pod["containers"][0];
    assert!(c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "redis-tls" && p["containerPort"] == 6380));
    for svc in ["cache-master", "cache-replicas"] {
        let s = api.get("api/v1", "services", NS, svc).unwrap();
        assert!(
            s["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "redis-tls" && p["port"] == 6380),
            "{svc}: {s}"
        );
    }

    // The Secret showing up (issued) changes no pod template: the pods pick the files up.
    let template = sts["spec"]["template"].clone();
    let pki = Pki::new("reconcile");
    pki.leaf("server", "ca", 30);
    let mut s = pki.secret("certs", "server", "server", "ca");
    s["metadata"]["namespace"] = json!(NS);
    api.put("api/v1", "secrets", NS, "certs", s);
    let stored: RedisReplication =
        serde_json::from_value(api.get(rr_path.0, rr_path.1, NS, "cache").unwrap()).unwrap();
    reconcile(Arc::new(stored), ctx.clone())
        .await
        .expect("reconcile");
    let sts = api
        .get("apis/apps/v1", "statefulsets", NS, "cache")
        .unwrap();
    assert_eq!(sts["spec"]["template"], template);
    let rr: RedisReplication =
        serde_json::from_value(api.get(rr_path.0, rr_path.1, NS, "cache").unwrap()).unwrap();
    let st = rr.status.unwrap();
    assert_eq!(st.tls.unwrap().secret_name, "certs");
    assert!(st
        .conditions
        .iter()
        .any(|c| c.type_ == "TLSCertificate" && c.status == "True"));
}
