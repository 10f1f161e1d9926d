//! Reconcile scenarios against the embedded local API server over HTTP (src/local/api, the
//! store `tandem-operator local` serves); see tests/common/api.rs.

mod common;

use std::sync::Arc;

use common::api::TestApi;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{json, Value};
use tandem_operator::build::Params;
use tandem_operator::controller::{reconcile, Context};
use tandem_operator::crd::RedisReplication;
use tandem_operator::metrics::Metrics;

const NS: &str = "prod";
const RR: (&str, &str) = ("apis/tandem.dev/v1alpha1", "redisreplications");

struct World {
    api: TestApi,
    ctx: Arc<Context>,
}

impl World {
    async fn local() -> Self {
        Self::on(TestApi::start(&[NS]).await)
    }

    fn on(api: TestApi) -> Self {
        let client = api.client();
        let ctx = Arc::new(Context {
            client: client.clone(),
            params: Params::default(),
            metrics: Arc::new(Metrics::default()),
            recorder: Some(Recorder::new(
                client,
                Reporter {
                    controller: "tandem-operator".into(),
                    instance: None,
                },
            )),
            roles: Default::default(),
        });
        World { api, ctx }
    }

    /// Stores a RedisReplication the way the API server would (defaults applied by serde).
    fn create_rr(&self, name: &str, spec: Value) {
        let rr: RedisReplication = serde_json::from_value(json!({
            "apiVersion": "tandem.dev/v1alpha1", "kind": "RedisReplication",
            "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"), "generation": 1},
            "spec": spec,
        }))
        .unwrap();
        self.api
            .put(RR.0, RR.1, NS, name, serde_json::to_value(rr).unwrap());
    }

    fn update_spec(&self, name: &str, spec: Value) {
        let mut v = self.api.get(RR.0, RR.1, NS, name).unwrap();
        let g = v["metadata"]["generation"].as_i64().unwrap();
        v["metadata"]["generation"] = json!(g + 1);
        let rr: RedisReplication = serde_json::from_value(json!({
            "apiVersion": "tandem.dev/v1alpha1", "kind": "RedisReplication",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap();
        v["spec"] = serde_json::to_value(rr.spec).unwrap();
        self.api.put(RR.0, RR.1, NS, name, v);
    }

    fn rr(&self, name: &str) -> RedisReplication {
        serde_json::from_value(self.api.get(RR.0, RR.1, NS, name).unwrap()).unwrap()
    }

    async fn reconcile(&self, name: &str) {
        reconcile(Arc::new(self.rr(name)), self.ctx.clone())
            .await
            .expect("reconcile succeeds");
    }

    fn sts(&self, name: &str) -> Option<Value> {
        self.api.get("apis/apps/v1", "statefulsets", NS, name)
    }

    fn condition(&self, name: &str, type_: &str) -> Value {
        let v = self.api.get(RR.0, RR.1, NS, name).unwrap();
        v["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
            .unwrap()
    }

    /// Plays the StatefulSet controller and kubelet: `ready` of the pods are Ready.
    fn pods_become_ready(&self, name: &str, replicas: i64, ready: i64) {
        let mut sts = self.sts(name).unwrap();
        let g = sts["metadata"]["generation"].clone();
        sts["status"] = json!({"replicas": replicas, "readyReplicas": ready, "updatedReplicas": replicas, "observedGeneration": g});
        self.api.put("apis/apps/v1", "statefulsets", NS, name, sts);
        for i in 0..replicas {
            let pod = format!("{name}-{i}");
            let mut labels = self
                .api
                .get("api/v1", "pods", NS, &pod)
                .map(|p| p["metadata"]["labels"].clone())
                .unwrap_or(json!({}));
            labels["app.kubernetes.io/name"] = json!("tandem");
            labels["app.kubernetes.io/instance"] = json!(name);
            let status = if i < ready { "True" } else { "False" };
            self.api.put(
                "api/v1",
                "pods",
                NS,
                &pod,
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod, "namespace": NS, "labels": labels},
                    "spec": {"containers": []},
                    "status": {"conditions": [{"type": "Ready", "status": status}]}
                }),
            );
        }
    }
}

/// The Secret's password: `stringData` as the operator writes it, or `data` (base64) after an
/// API server folded `stringData` into it (the local API does, like a real one).
fn password_of(secret: &Value) -> String {
    if let Some(p) = secret["stringData"]["password"].as_str() {
        return p.to_string();
    }
    let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(secret.clone()).unwrap();
    String::from_utf8(s.data.unwrap()["password"].0.clone()).unwrap()
}

fn owner_of(obj: &Value) -> (String, String, bool) {
    let r = &obj["metadata"]["ownerReferences"][0];
    (
        r["kind"].as_str().unwrap_or_default().to_string(),
        r["name"].as_str().unwrap_or_default().to_string(),
        r["controller"].as_bool().unwrap_or(false),
    )
}

async fn first_reconcile_creates_every_child_owned_by_the_resource(w: World) {
    w.create_rr("cache", json!({"replicas": 3}));
    w.reconcile("cache").await;

    let children = [
        ("api/v1", "secrets", "cache-auth"),
        ("api/v1", "configmaps", "cache-config"),
        ("api/v1", "services", "cache-headless"),
        ("api/v1", "services", "cache-master"),
        ("api/v1", "services", "cache-replicas"),
        ("apis/policy/v1", "poddisruptionbudgets", "cache"),
        ("apis/apps/v1", "statefulsets", "cache"),
    ];
    for (p, pl, n) in children {
        let obj = w
            .api
            .get(p, pl, NS, n)
            .unwrap_or_else(|| panic!("{pl}/{n} missing"));
        assert_eq!(
            owner_of(&obj),
            ("RedisReplication".into(), "cache".into(), true),
            "{pl}/{n}"
        );
    }
    // Apply order: StatefulSet last.
    let writes = w.api.writes();
    let sts_at = writes
        .iter()
        .position(|x| x == "APPLY statefulsets/cache")
        .unwrap();
    let cm_at = writes
        .iter()
        .position(|x| x == "APPLY configmaps/cache-config")
        .unwrap();
    let svc_at = writes
        .iter()
        .position(|x| x == "APPLY services/cache-headless")
        .unwrap();
    assert!(cm_at < sts_at && svc_at < sts_at, "{writes:?}");
    let secret = w.api.get("api/v1", "secrets", NS, "cache-auth").unwrap();
    assert_eq!(password_of(&secret).len(), 32);
    // No password in the ConfigMap.
    let cm = w
        .api
        .get("api/v1", "configmaps", NS, "cache-config")
        .unwrap();
    let pw = password_of(&secret);
    let pw = pw.as_str();
    assert!(!cm.to_string().contains(pw));
    assert!(!w.sts("cache").unwrap().to_string().contains(pw));

    let rr = w.rr("cache");
    let st = rr.status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Provisioning"));
    assert_eq!(st.observed_generation, Some(1));
    assert_eq!(w.condition("cache", "Progressing")["status"], "True");
}

async fn second_reconcile_changes_nothing(w: World) {
    w.create_rr("cache", json!({}));
    w.reconcile("cache").await;
    let password = password_of(&w.api.get("api/v1", "secrets", NS, "cache-auth").unwrap());
    let before = w.api.writes().len();
    let events_before = w.api.events().len();
    w.reconcile("cache").await;
    assert_eq!(w.api.writes()[before..], [] as [String; 0]);
    assert_eq!(
        w.api.events().len(),
        events_before,
        "no transition, no Event"
    );
    // The generated password is never regenerated.
    assert_eq!(
        password_of(&w.api.get("api/v1", "secrets", NS, "cache-auth").unwrap()),
        password
    );
}

async fn spec_change_updates_the_statefulset(w: World) {
    w.create_rr("cache", json!({"replicas": 3}));
    w.reconcile("cache").await;
    let old_hash = w.sts("cache").unwrap()["spec"]["template"]["metadata"]["annotations"]
        ["tandem.dev/config-hash"]
        .clone();
    w.update_spec(
        "cache",
        json!({"replicas": 5, "config": {"maxmemory": "64mb"}}),
    );
    w.reconcile("cache").await;
    let sts = w.sts("cache").unwrap();
    assert_eq!(sts["spec"]["replicas"], 5);
    assert_ne!(
        sts["spec"]["template"]["metadata"]["annotations"]["tandem.dev/config-hash"],
        old_hash
    );
    let cm = w
        .api
        .get("api/v1", "configmaps", NS, "cache-config")
        .unwrap();
    assert!(cm["data"]["tandem.conf"]
        .as_str()
        .unwrap()
        .contains("\nmaxmemory 64mb\n"));
    assert_eq!(
        cm["data"]["pod-4.conf"],
        "replicaof cache-0.cache-headless.prod.svc.cluster.local 6379\n"
    );
    assert_eq!(w.rr("cache").status.unwrap().observed_generation, Some(2));
}

async fn missing_secret_is_degraded_and_deletes_nothing(w: World) {
    w.api.put(
        "api/v1",
        "secrets",
        NS,
        "creds",
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": NS},
            "data": {"password": "c2VjcmV0"}
        }),
    );
    w.create_rr("cache", json!({"auth": {"secretName": "creds"}}));
    w.reconcile("cache").await;
    assert!(
        w.api.get("api/v1", "secrets", NS, "cache-auth").is_none(),
        "no generated Secret"
    );
    let sts_before = w.sts("cache").unwrap();

    // The Secret loses its key: reported, nothing touched.
    w.api.put(
        "api/v1",
        "secrets",
        NS,
        "creds",
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "namespace": NS},
            "data": {"other": "c2VjcmV0"}
        }),
    );
    let before = w.api.writes().len();
    w.reconcile("cache").await;
    let d = w.condition("cache", "Degraded");
    assert_eq!(d["status"], "True");
    assert_eq!(d["reason"], "SecretNotFound");
    assert_eq!(d["message"], "secret \"creds\" has no key \"password\"");
    assert_eq!(
        w.rr("cache").status.unwrap().phase.as_deref(),
        Some("Degraded")
    );
    assert_eq!(
        w.api.writes()[before..],
        ["STATUS redisreplications/cache".to_string()]
    );
    assert_eq!(w.sts("cache").unwrap(), sts_before);

    // The Secret disappears entirely.
    w.api.remove("api/v1", "secrets", NS, "creds");
    w.reconcile("cache").await;
    assert_eq!(
        w.condition("cache", "Degraded")["message"],
        "secret \"creds\" not found"
    );
    assert!(w.api.writes().iter().all(|x| !x.starts_with("DELETE")));
    assert!(w.sts("cache").is_some());
    let warnings: Vec<Value> = w
        .api
        .events()
        .into_iter()
        .filter(|e| e["type"] == "Warning")
        .collect();
    assert!(
        warnings.iter().any(|e| e["reason"] == "SecretNotFound"),
        "{warnings:?}"
    );
}

async fn invalid_spec_is_reported_and_running_objects_stay(w: World) {
    w.create_rr("cache", json!({"replicas": 3}));
    w.reconcile("cache").await;
    let sts_before = w.sts("cache").unwrap();
    w.update_spec(
        "cache",
        json!({"replicas": 1, "config": {"replicaof": "evil 6379"}}),
    );
    w.reconcile("cache").await;
    let d = w.condition("cache", "Degraded");
    assert_eq!(d["reason"], "InvalidSpec");
    assert_eq!(
        d["message"],
        "config directive \"replicaof\" is managed by the operator"
    );
    assert_eq!(w.condition("cache", "Ready")["reason"], "InvalidSpec");
    assert_eq!(
        w.rr("cache").status.unwrap().phase.as_deref(),
        Some("Invalid")
    );
    assert_eq!(w.sts("cache").unwrap(), sts_before, "StatefulSet untouched");
}

async fn status_reflects_statefulset_readiness_and_labels_roles(w: World) {
    w.create_rr("cache", json!({"replicas": 3}));
    w.reconcile("cache").await;
    w.pods_become_ready("cache", 3, 2);
    w.reconcile("cache").await;
    let st = w.rr("cache").status.unwrap();
    assert_eq!(st.ready_replicas, 2);
    assert_eq!(st.phase.as_deref(), Some("Provisioning"));
    assert_eq!(w.condition("cache", "Ready")["message"], "2/3 pods ready");
    assert_eq!(w.condition("cache", "Available")["status"], "True");
    // Roles: pod 0 is the master, the others replicas (the Services select on these labels).
    let role = |i: i32| {
        w.api
            .get("api/v1", "pods", NS, &format!("cache-{i}"))
            .unwrap()["metadata"]["labels"]["tandem.dev/role"]
            .clone()
    };
    assert_eq!(
        (role(0), role(1), role(2)),
        (json!("master"), json!("replica"), json!("replica"))
    );

    w.pods_become_ready("cache", 3, 3);
    w.reconcile("cache").await;
    let st = w.rr("cache").status.unwrap();
    assert_eq!(st.ready_replicas, 3);
    assert_eq!(st.phase.as_deref(), Some("Ready"));
    assert_eq!(st.master.as_deref(), Some("cache-0"));
    assert_eq!(st.pods.len(), 3);
    assert!(st.pods.iter().all(|p| p.ready));
    assert_eq!(w.condition("cache", "Ready")["status"], "True");
    assert_eq!(w.condition("cache", "Progressing")["status"], "False");
    let normal: Vec<Value> = w
        .api
        .events()
        .into_iter()
        .filter(|e| e["reason"] == "AllReplicasReady")
        .collect();
    assert_eq!(normal.len(), 1, "one Event for the Ready transition");
    let warnings = w
        .api
        .events()
        .into_iter()
        .filter(|e| e["type"] == "Warning")
        .count();
    assert_eq!(warnings, 0, "starting up is not a warning");

    // Losing a pod after being Ready is.
    w.pods_become_ready("cache", 3, 2);
    w.reconcile("cache").await;
    let lost: Vec<Value> = w
        .api
        .events()
        .into_iter()
        .filter(|e| e["type"] == "Warning" && e["reason"] == "ReplicasNotReady")
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
}

async fn resource_being_deleted_is_left_to_garbage_collection(w: World) {
    w.create_rr("cache", json!({}));
    let mut v = w.api.get(RR.0, RR.1, NS, "cache").unwrap();
    v["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    w.api.put(RR.0, RR.1, NS, "cache", v);
    w.reconcile("cache").await;
    assert_eq!(w.api.writes(), Vec::<String>::new());
}

async fn existing_generated_secret_is_never_overwritten(w: World) {
    let mine = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "cache-auth", "namespace": NS},
        "data": {"password": "a2VlcC1tZQ=="}
    });
    w.api
        .put("api/v1", "secrets", NS, "cache-auth", mine.clone());
    w.create_rr("cache", json!({}));
    w.reconcile("cache").await;
    let now = w.api.get("api/v1", "secrets", NS, "cache-auth").unwrap();
    assert_eq!(now["data"], mine["data"]);
    assert!(now.get("stringData").is_none());
    assert!(w
        .api
        .writes()
        .iter()
        .all(|x| !x.contains("secrets/cache-auth")));
    // The pods are given that password (through the operator's credentials Secret).
    let creds = w
        .api
        .get("api/v1", "secrets", NS, "cache-credentials")
        .unwrap();
    assert_eq!(
        creds["data"]["requirepass"], "a2VlcC1tZQo=",
        "keep-me and a newline"
    );
}

async fn disabling_the_pdb_removes_it(w: World) {
    w.create_rr("cache", json!({}));
    w.reconcile("cache").await;
    assert!(w
        .api
        .get("apis/policy/v1", "poddisruptionbudgets", NS, "cache")
        .is_some());
    w.update_spec("cache", json!({"podDisruptionBudget": {"enabled": false}}));
    w.reconcile("cache").await;
    assert!(w
        .api
        .get("apis/policy/v1", "poddisruptionbudgets", NS, "cache")
        .is_none());
    assert!(w.sts("cache").is_some());
}

async fn chain_topology_status_shows_each_upstream(w: World) {
    w.create_rr(
        "tree",
        json!({"replicas": 4, "replication": {"topology": "chain", "fanout": 2}}),
    );
    w.reconcile("tree").await;
    w.pods_become_ready("tree", 4, 4);
    w.reconcile("tree").await;
    let st = w.rr("tree").status.unwrap();
    let up: Vec<Option<String>> = st.pods.iter().map(|p| p.upstream.clone()).collect();
    let dns = |i: i32| Some(format!("tree-{i}.tree-headless.prod.svc.cluster.local"));
    assert_eq!(up, vec![None, dns(0), dns(0), dns(1)]);
    assert_eq!(st.pods[0].role, "master");
    assert_eq!(st.pods[3].role, "replica");
}

/// `tandem.conf` of set `name`'s ConfigMap.
fn tandem_conf(w: &World, name: &str) -> String {
    let cm = w
        .api
        .get("api/v1", "configmaps", NS, &format!("{name}-config"));
    cm.and_then(|cm| cm["data"]["tandem.conf"].as_str().map(String::from))
        .unwrap_or_default()
}

fn acl_file(w: &World, name: &str) -> Option<String> {
    let s = w.api.get("api/v1", "secrets", NS, &format!("{name}-acl"))?;
    let b64 = s["data"]["users.conf"].as_str()?.to_string();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok()
}

/// Issue 18 item 6: users are rendered into the owned `<name>-acl` Secret (hashed
/// passwords), mounted by the pods; a changed user Secret re-renders it; removing the users
/// removes it.
async fn acl_users_are_rendered_into_an_owned_secret_and_follow_their_secrets(w: World) {
    let secret = |pw: &str| {
        use base64::Engine;
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "app-pw", "namespace": NS},
            "data": {"password": base64::engine::general_purpose::STANDARD.encode(pw)}
        })
    };
    w.api
        .put("api/v1", "secrets", NS, "app-pw", secret("hello"));
    let spec = json!({"auth": {"internalUser": true, "users": [
        {"name": "app", "passwordSecret": {"name": "app-pw"}, "rules": "~app:* +@read"}
    ]}});
    w.create_rr("cache", spec);
    w.reconcile("cache").await;
    let file = acl_file(&w, "cache").expect("cache-acl rendered");
    // sha256("hello")
    assert!(file.contains(
        "user app on #2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 ~app:* +@read\n"
    ), "{file}");
    assert!(file.contains("user tandem-operator on #"), "{file}");
    assert!(!file.contains("hello"));
    let acl = w.api.get("api/v1", "secrets", NS, "cache-acl").unwrap();
    assert_eq!(
        owner_of(&acl),
        ("RedisReplication".into(), "cache".into(), true)
    );
    let sts = w.sts("cache").unwrap();
    let vols = sts["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    assert!(vols
        .iter()
        .any(|v| v["secret"]["secretName"] == "cache-acl"));
    assert!(tandem_conf(&w, "cache").contains("\nmasteruser tandem-operator\n"));

    // The user's password changes: the next reconcile re-renders the hash.
    w.api.put("api/v1", "secrets", NS, "app-pw", secret("x"));
    w.reconcile("cache").await;
    let file = acl_file(&w, "cache").unwrap();
    // sha256("x")
    assert!(
        file.contains(
            "user app on #2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881 "
        ),
        "{file}"
    );

    // A second reconcile with nothing changed writes nothing to the Secret.
    let before = w.api.writes().len();
    w.reconcile("cache").await;
    let after = w.api.writes();
    assert!(
        after[before..].iter().all(|x| !x.contains("secrets/")),
        "{after:?}"
    );

    w.update_spec("cache", json!({}));
    w.reconcile("cache").await;
    assert!(w.api.get("api/v1", "secrets", NS, "cache-acl").is_none());
}

/// Issue 18: a user without passwordSecret or with a rule that would inject another
/// directive is reported on the status and nothing is applied.
async fn a_user_rule_injecting_a_directive_is_refused_with_a_condition(w: World) {
    w.create_rr(
        "cache",
        json!({"auth": {"users": [{"name": "app", "passwordSecret": {"name": "s"},
            "rules": "+get\nuser evil on nopass +@all"}]}}),
    );
    w.reconcile("cache").await;
    let d = w.condition("cache", "Degraded");
    assert_eq!(d["status"], "True");
    assert_eq!(d["reason"], "InvalidSpec");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .starts_with("auth.users[\"app\"] rules:"),
        "{d}"
    );
    assert!(w.sts("cache").is_none());
    assert!(w.api.get("api/v1", "secrets", NS, "cache-acl").is_none());
}

async fn network_policy_follows_the_spec_switch(w: World) {
    let get = |w: &World| {
        w.api
            .get("apis/networking.k8s.io/v1", "networkpolicies", NS, "cache")
    };
    w.create_rr("cache", json!({}));
    w.reconcile("cache").await;
    assert!(get(&w).is_none(), "off by default");
    w.update_spec("cache", json!({"networkPolicy": {"enabled": true}}));
    w.reconcile("cache").await;
    let np = get(&w).expect("NetworkPolicy applied");
    assert_eq!(
        owner_of(&np),
        ("RedisReplication".into(), "cache".into(), true)
    );
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], 6379);
    assert_eq!(np["spec"]["ingress"][1]["ports"][0]["port"], 9121);
    w.update_spec("cache", json!({"networkPolicy": {"enabled": false}}));
    w.reconcile("cache").await;
    assert!(get(&w).is_none(), "removed when disabled");
}

/// `<name>-credentials` key `key` as text.
fn credentials_key(w: &World, set: &str, key: &str) -> Option<String> {
    let s = w
        .api
        .get("api/v1", "secrets", NS, &format!("{set}-credentials"))?;
    let s: k8s_openapi::api::core::v1::Secret = serde_json::from_value(s).unwrap();
    let v = s.data?.get(key)?.0.clone();
    Some(String::from_utf8(v).unwrap())
}

fn password_secret(pw: &str) -> Value {
    use base64::Engine;
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": NS},
        "data": {"password": base64::engine::general_purpose::STANDARD.encode(pw)}
    })
}

async fn a_password_change_goes_add_then_remove_then_verify_without_touching_the_pods(w: World) {
    w.api
        .put("api/v1", "secrets", NS, "creds", password_secret("old"));
    w.create_rr("cache", json!({"auth": {"secretName": "creds"}}));
    w.reconcile("cache").await;
    let req = |w: &World| credentials_key(w, "cache", "requirepass");
    assert_eq!(req(&w).as_deref(), Some("old\n"));
    assert_eq!(
        credentials_key(&w, "cache", "masterauth").as_deref(),
        Some("old")
    );
    let template = w.sts("cache").unwrap()["spec"]["template"].clone();
    let config = w
        .api
        .get("api/v1", "configmaps", NS, "cache-config")
        .unwrap()["data"]
        .clone();

    w.api
        .put("api/v1", "secrets", NS, "creds", password_secret("new"));
    // 1. Added next to the old one; masterauth still the old one.
    w.reconcile("cache").await;
    assert_eq!(req(&w).as_deref(), Some("old\nnew\n"));
    assert_eq!(
        credentials_key(&w, "cache", "masterauth").as_deref(),
        Some("old")
    );
    let c = w.condition("cache", "CredentialsRotated");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some("Rotating"))
    );
    // 2. No running pod to wait for here: the old one moves to `retiring`.
    w.reconcile("cache").await;
    assert_eq!(req(&w).as_deref(), Some("new\n"));
    assert_eq!(
        credentials_key(&w, "cache", "masterauth").as_deref(),
        Some("new")
    );
    assert_eq!(
        credentials_key(&w, "cache", "retiring").as_deref(),
        Some("old\n")
    );
    // 3. Verified: nothing retiring, condition True.
    w.reconcile("cache").await;
    assert_eq!(credentials_key(&w, "cache", "retiring"), None);
    let c = w.condition("cache", "CredentialsRotated");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("True"), Some("Rotated"))
    );
    // The pods' template and files never changed: no restart, no roll.
    assert_eq!(w.sts("cache").unwrap()["spec"]["template"], template);
    assert_eq!(
        w.api
            .get("api/v1", "configmaps", NS, "cache-config")
            .unwrap()["data"],
        config
    );
    let reasons: Vec<Value> = w.api.events().iter().map(|e| e["reason"].clone()).collect();
    assert!(
        reasons.contains(&json!("Rotating")) && reasons.contains(&json!("Rotated")),
        "{reasons:?}"
    );
    // Settled: another reconcile writes nothing.
    let before = w.api.writes().len();
    w.reconcile("cache").await;
    assert_eq!(w.api.writes()[before..], [] as [String; 0]);
}

async fn the_internal_user_has_its_own_password_and_the_default_user_can_be_turned_off(w: World) {
    w.api
        .put("api/v1", "secrets", NS, "creds", password_secret("setpw"));
    let spec =
        json!({"auth": {"secretName": "creds", "internalUser": true, "disableDefaultUser": true}});
    w.create_rr("cache", spec.clone());
    w.reconcile("cache").await;
    let internal = credentials_key(&w, "cache", "internal").expect("a generated password");
    assert_eq!(internal.len(), 32);
    assert_ne!(internal, "setpw");
    // The replicas authenticate as the internal user with it.
    assert_eq!(
        credentials_key(&w, "cache", "masterauth").as_deref(),
        Some(internal.as_str())
    );
    let file = acl_file(&w, "cache").unwrap();
    assert!(file.contains("\nuser default off resetpass #"), "{file}");
    // Kept across reconciles.
    w.reconcile("cache").await;
    assert_eq!(credentials_key(&w, "cache", "internal"), Some(internal));

    // Without the internal user the default user cannot be turned off.
    w.update_spec(
        "cache",
        json!({"auth": {"secretName": "creds", "disableDefaultUser": true}}),
    );
    w.reconcile("cache").await;
    let c = w.condition("cache", "Ready");
    assert_eq!(c["reason"], "InvalidSpec");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("disableDefaultUser needs auth.internalUser"),
        "{c}"
    );
}

/// Every scenario above, once per API server.
macro_rules! on_the_local_api {
    ($($name:ident),* $(,)?) => {
        mod local_api {
            $( #[tokio::test] async fn $name() { super::$name(super::World::local().await).await } )*
        }
    };
}

on_the_local_api!(
    first_reconcile_creates_every_child_owned_by_the_resource,
    second_reconcile_changes_nothing,
    spec_change_updates_the_statefulset,
    missing_secret_is_degraded_and_deletes_nothing,
    invalid_spec_is_reported_and_running_objects_stay,
    status_reflects_statefulset_readiness_and_labels_roles,
    resource_being_deleted_is_left_to_garbage_collection,
    existing_generated_secret_is_never_overwritten,
    disabling_the_pdb_removes_it,
    chain_topology_status_shows_each_upstream,
    acl_users_are_rendered_into_an_owned_secret_and_follow_their_secrets,
    a_user_rule_injecting_a_directive_is_refused_with_a_condition,
    network_policy_follows_the_spec_switch,
    a_password_change_goes_add_then_remove_then_verify_without_touching_the_pods,
    the_internal_user_has_its_own_password_and_the_default_user_can_be_turned_off,
);
