//! The whole `run` process body (controller + endpoint) against the in-memory API: it
//! reconciles what the initial list returns and stops on shutdown.

mod common;

use std::time::{Duration, Instant};

use clap::Parser;
use common::api::TestApi;
use serde_json::json;
use tandem_operator::controller::run_with_client;
use tandem_operator::settings::Settings;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reconciles_existing_resources_and_stops_on_shutdown() {
    let api = TestApi::start(&["prod"]).await;
    api.put(
        "apis/tandem.dev/v1alpha1",
        "redisreplications",
        "prod",
        "cache",
        json!({
            "apiVersion": "tandem.dev/v1alpha1", "kind": "RedisReplication",
            "metadata": {"name": "cache", "namespace": "prod", "uid": "u1", "generation": 1},
            "spec": {"replicas": 2}
        }),
    );
    let settings =
        Cli::try_parse_from(["x", "--namespace", "prod", "--metrics-addr", "127.0.0.1:0"])
            .unwrap()
            .settings;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_with_client(settings, api.client(), async move {
        let _ = stop_rx.await;
    }));

    let deadline = Instant::now() + Duration::from_secs(20);
    while api
        .get("apis/apps/v1", "statefulsets", "prod", "cache")
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "StatefulSet not created within 20s"
        );
        assert!(!task.is_finished(), "run ended early: {:?}", task.await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(());
    let res = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("run stops within 20s of shutdown")
        .unwrap();
    assert!(res.is_ok(), "{res:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_leader_election_the_lease_is_taken_and_released_on_shutdown() {
    // The Lease lives in its own namespace, which exists like it would in a cluster.
    let api = TestApi::start(&["prod", "ops"]).await;
    let settings = Cli::try_parse_from([
        "x",
        "--namespace",
        "prod",
        "--metrics-addr",
        "127.0.0.1:0",
        "--leader-elect",
        "--lease-namespace",
        "ops",
        "--identity",
        "pod-a",
    ])
    .unwrap()
    .settings;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_with_client(settings, api.client(), async move {
        let _ = stop_rx.await;
    }));
    let lease = || {
        api.get(
            "apis/coordination.k8s.io/v1",
            "leases",
            "ops",
            "tandem-operator",
        )
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while lease().is_none() {
        assert!(Instant::now() < deadline, "Lease not taken within 20s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lease().unwrap()["spec"]["holderIdentity"], "pod-a");
    let _ = stop_tx.send(());
    let res = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("run stops within 20s of shutdown")
        .unwrap();
    assert!(res.is_ok(), "{res:?}");
    assert!(lease().unwrap()["spec"]
        .get("holderIdentity")
        .is_none_or(|h| h.is_null()));
}

/// Item 7 of issue 18: a Secret the set references but does not own (here its password
/// Secret), created after the set, is acted on within seconds — not at the 30 s requeue an
/// invalid set waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referenced_secret_created_after_its_set_triggers_a_reconcile_at_once() {
    let api = TestApi::start(&["prod"]).await;
    api.put(
        "apis/tandem.dev/v1alpha1",
        "redisreplications",
        "prod",
        "cache",
        json!({
            "apiVersion": "tandem.dev/v1alpha1", "kind": "RedisReplication",
            "metadata": {"name": "cache", "namespace": "prod", "uid": "u1", "generation": 1},
            "spec": {"replicas": 2, "auth": {"secretName": "later"}}
        }),
    );
    let settings =
        Cli::try_parse_from(["x", "--namespace", "prod", "--metrics-addr", "127.0.0.1:0"])
            .unwrap()
            .settings;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_with_client(settings, api.client(), async move {
        let _ = stop_rx.await;
    }));
    let degraded_reason = || {
        let rr = api.get(
            "apis/tandem.dev/v1alpha1",
            "redisreplications",
            "prod",
            "cache",
        )?;
        let conds = rr["status"]["conditions"].as_array()?.clone();
        conds
            .iter()
            .find(|c| c["type"] == "Degraded")
            .and_then(|c| c["reason"].as_str().map(String::from))
    };
    // First the set is reported (its Secret is missing) and nothing is built.
    let deadline = Instant::now() + Duration::from_secs(20);
    while degraded_reason().as_deref() != Some("SecretNotFound") {
        assert!(
            Instant::now() < deadline,
            "missing Secret not reported within 20s"
        );
        assert!(!task.is_finished(), "run ended early: {:?}", task.await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(api
        .get("apis/apps/v1", "statefulsets", "prod", "cache")
        .is_none());

    api.put(
        "api/v1",
        "secrets",
        "prod",
        "later",
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "later", "namespace": "prod"},
            "data": {"password": "czNjcmV0"}
        }),
    );
    let created = Instant::now();
    // Well under the 30 s requeue of an invalid set (and the 10 s periodic one).
    let deadline = created + Duration::from_secs(5);
    while api
        .get("apis/apps/v1", "statefulsets", "prod", "cache")
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "StatefulSet not created within 5s of the Secret"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "reconciled {:?} after the Secret was created",
        created.elapsed()
    );
    let _ = stop_tx.send(());
    let res = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("run stops within 20s of shutdown")
        .unwrap();
    assert!(res.is_ok(), "{res:?}");
}
