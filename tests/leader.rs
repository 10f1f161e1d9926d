//! Leader election against the in-memory API (the local mode's store): one holder at a time, renewals, hand-over.

mod common;

use common::api::TestApi;
use tandem_operator::leader::Leader;

#[tokio::test]
async fn only_one_candidate_holds_the_lease_until_it_releases() {
    let api = TestApi::start(&["ops"]).await;
    let a = Leader::new(api.client(), "ops", "tandem-operator", "pod-a");
    let b = Leader::new(api.client(), "ops", "tandem-operator", "pod-b");
    assert!(
        a.try_acquire().await.unwrap(),
        "first candidate creates the Lease"
    );
    assert!(
        !b.try_acquire().await.unwrap(),
        "a fresh Lease held by a is not taken"
    );
    assert!(a.try_acquire().await.unwrap(), "the holder renews");
    let lease = api
        .get(
            "apis/coordination.k8s.io/v1",
            "leases",
            "ops",
            "tandem-operator",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "pod-a");
    a.release().await;
    assert!(
        b.try_acquire().await.unwrap(),
        "released Lease is taken at once"
    );
    let lease = api
        .get(
            "apis/coordination.k8s.io/v1",
            "leases",
            "ops",
            "tandem-operator",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "pod-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert!(!a.try_acquire().await.unwrap());
}
