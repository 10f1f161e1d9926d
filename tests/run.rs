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
