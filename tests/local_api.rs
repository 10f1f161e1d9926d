//! Black-box tests of the embedded Kubernetes API (src/local/api) with a real
//! `kube::Client`, kube-runtime's watcher and (when installed) kubectl.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use kube::{Client, Config, ResourceExt};
use serde_json::json;
use tandem_operator::local::api::{write_kubeconfig, LocalApi, Options};
use tokio::net::TcpListener;

const STEP: Duration = Duration::from_secs(10);

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "tandem-localapi-{}-{tag}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Env {
    api: LocalApi,
    client: Client,
    kubeconfig: PathBuf,
    _dir: TempDir,
}

async fn start_with(tag: &str, options: Options) -> Env {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let api = LocalApi::start(listener, options)
        .await
        .expect("start local api");
    let dir = TempDir::new(tag);
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, api.addr()).expect("write kubeconfig");
    let kc = Kubeconfig::read_from(&kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    let client = Client::try_from(config).expect("client");
    Env {
        api,
        client,
        kubeconfig,
        _dir: dir,
    }
}

async fn start(tag: &str) -> Env {
    start_with(tag, Options::default()).await
}

fn cm(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        },
        "data": data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    }))
    .expect("configmap")
}

fn api_code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn configmap_create_get_list_patch_replace_delete() {
    let env = start("crud").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &cm("one", &[], &[("a", "1")]))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let rv1 = created.resource_version().unwrap();

    let (code, reason) = api_code(
        cms.create(&PostParams::default(), &cm("one", &[], &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let got = cms.get("one").await.unwrap();
    assert_eq!(got.data.unwrap()["a"], "1");
    assert_eq!(
        cms.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    let merged = cms
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"b": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.as_ref().unwrap().len(), 2);
    let rv2 = merged.resource_version().unwrap();
    assert!(rv2.parse::<u64>().unwrap() > rv1.parse::<u64>().unwrap());

    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "remove", "path": "/data/a"},
        {"op": "add", "path": "/data/c", "value": "3"}
    ]))
    .unwrap();
    let patched = cms
        .patch("one", &PatchParams::default(), &Patch::Json::<()>(jp))
        .await
        .unwrap();
    let data = patched.data.clone().unwrap();
    assert!(!data.contains_key("a"));
    assert_eq!(data["c"], "3");

    // Replace with a stale resourceVersion: 409 Conflict.
    let mut stale = patched.clone();
    stale.metadata.resource_version = Some(rv1.clone());
    let (code, reason) = api_code(
        cms.replace("one", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    // With the current one it succeeds.
    let mut fresh = patched.clone();
    fresh.data = Some(BTreeMap::from([("z".to_string(), "26".to_string())]));
    let replaced = cms
        .replace("one", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(replaced.data.unwrap().len(), 1);

    let (code, reason) = api_code(cms.get("missing").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));

    cms.delete("one", &DeleteParams::default()).await.unwrap();
    let (code, _) = api_code(cms.get("one").await.unwrap_err());
    assert_eq!(code, 404);
    let (code, _) = api_code(
        cms.delete("one", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);

    // Namespaced objects need an existing namespace.
    let other: Api<ConfigMap> = Api::namespaced(env.client.clone(), "nope");
    let (code, _) = api_code(
        other
            .create(&PostParams::default(), &cm("x", &[], &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);
    env.api.shutdown().await;
}

#[tokio::test]
async fn server_side_apply_is_idempotent_and_drops_unapplied_fields() {
    let env = start("ssa").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let pp = PatchParams::apply("tandem-test").force();
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "applied", "labels": {"app": "x"}},
        "data": {"a": "1", "b": "2"}});
    let first = cms
        .patch("applied", &pp, &Patch::Apply(&body))
        .await
        .unwrap();
    let second = cms
        .patch("applied", &pp, &Patch::Apply(&body))
        .await
        .unwrap();
    assert_eq!(first.resource_version(), second.resource_version());
    assert_eq!(first.uid(), second.uid());

    // Another manager adds a field; the first manager drops "b": only "b" goes.
    cms.patch(
        "applied",
        &PatchParams::apply("other"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "applied"}, "data": {"o": "9"}})),
    )
    .await
    .unwrap();
    let body2 = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "applied", "labels": {"app": "x"}},
        "data": {"a": "3"}});
    let third = cms
        .patch("applied", &pp, &Patch::Apply(&body2))
        .await
        .unwrap();
    let data = third.data.unwrap();
    assert_eq!(data.get("a").map(String::as_str), Some("3"));
    assert!(!data.contains_key("b"));
    assert_eq!(data.get("o").map(String::as_str), Some("9"));
    assert_ne!(
        third.metadata.resource_version,
        second.metadata.resource_version
    );

    // A merge patch that changes nothing keeps the resourceVersion too.
    let same = cms
        .patch(
            "applied",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        third.metadata.resource_version
    );
    env.api.shutdown().await;
}

fn widget_crd(scope: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"]},
            "scope": scope,
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                ]
            }]
        }
    })
}

fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    )
}

async fn create_widget_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(widget_crd("Namespaced")).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let established = created
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established, "CRD reports Established");
}

#[tokio::test]
async fn crd_registration_serves_dynamic_objects_and_discovery() {
    let env = start("crd").await;
    let ar = widget_resource();
    let widgets: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), "default", &ar);
    // Not served before the CRD exists.
    assert!(widgets.list(&ListParams::default()).await.is_err());
    create_widget_crd(&env.client).await;

    let w = DynamicObject::new("w1", &ar).data(json!({"spec": {"size": 3}}));
    widgets.create(&PostParams::default(), &w).await.unwrap();
    let got = widgets.get("w1").await.unwrap();
    assert_eq!(got.data["spec"]["size"], 3);
    assert_eq!(got.types.as_ref().unwrap().kind, "Widget");
    assert_eq!(
        widgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let discovery = kube::Discovery::new(env.client.clone())
        .run()
        .await
        .unwrap();
    let found = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .any(|(r, caps)| {
            r.kind == "Widget"
                && r.plural == "widgets"
                && caps.scope == kube::discovery::Scope::Namespaced
        });
    assert!(found, "the CRD's kind is discoverable");
    let sts = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .any(|(r, _)| r.kind == "StatefulSet" && r.group == "apps");
    assert!(sts, "built-in apps/v1 StatefulSet is discoverable");

    // Deleting the CRD stops serving it.
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let (code, _) = api_code(widgets.get("w1").await.unwrap_err());
    assert_eq!(code, 404);
    env.api.shutdown().await;
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let env = start("status").await;
    create_widget_crd(&env.client).await;
    let ar = widget_resource();
    let widgets: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), "default", &ar);
    // Status given on create is dropped for a CRD with a status subresource.
    let w =
        DynamicObject::new("w", &ar).data(json!({"spec": {"size": 1}, "status": {"ready": true}}));
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.data.get("status").is_none());

    let st = widgets
        .patch_status("w", &PatchParams::default(), &Patch::Merge(json!({"status": {"observedGeneration": 1, "phase": "Ready"}, "spec": {"size": 99}})))
        .await
        .unwrap();
    assert_eq!(
        st.metadata.generation,
        Some(1),
        "status change keeps generation"
    );
    assert_eq!(st.data["status"]["phase"], "Ready");
    assert_eq!(st.data["spec"]["size"], 1, "/status ignores spec changes");

    // Status changes through the main endpoint are ignored; spec changes bump generation.
    let main = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Broken"}, "spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(main.metadata.generation, Some(2));
    assert_eq!(main.data["status"]["phase"], "Ready");
    // Label changes do not bump generation.
    let labelled = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"l": "v"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));

    // Server-side apply on /status.
    let applied = widgets
        .patch_status(
            "w",
            &PatchParams::apply("ctrl").force(),
            &Patch::Apply(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"phase": "Applied"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["status"]["phase"], "Applied");
    assert_eq!(applied.metadata.generation, Some(2));

    // Built-in StatefulSet: status via /status only.
    let stss: Api<StatefulSet> = Api::namespaced(env.client.clone(), "default");
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "spec": {"replicas": 1, "serviceName": "s", "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }))
    .unwrap();
    stss.create(&PostParams::default(), &sts).await.unwrap();
    let s2 = stss
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 1, "readyReplicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(s2.status.unwrap().ready_replicas, Some(1));
    assert_eq!(s2.metadata.generation, Some(1));
    let s3 = stss
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(s3.metadata.generation, Some(2));
    assert_eq!(s3.status.unwrap().ready_replicas, Some(1));
    env.api.shutdown().await;
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let env = start("selectors").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    for (n, app, tier) in [("a", "x", "db"), ("b", "x", "cache"), ("c", "y", "db")] {
        cms.create(
            &PostParams::default(),
            &cm(n, &[("app", app), ("tier", tier)], &[]),
        )
        .await
        .unwrap();
    }
    cms.create(&PostParams::default(), &cm("d", &[], &[]))
        .await
        .unwrap();
    let names = |sel: &str| {
        let cms = cms.clone();
        let sel = sel.to_string();
        async move {
            cms.list(&ListParams::default().labels(&sel))
                .await
                .unwrap()
                .items
                .iter()
                .map(|c| c.name_any())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names("app=x").await, ["a", "b"]);
    assert_eq!(names("app==x,tier=db").await, ["a"]);
    assert_eq!(names("app!=x").await, ["c", "d"]);
    assert_eq!(names("tier in (db,cache)").await, ["a", "b", "c"]);
    assert_eq!(names("tier notin (db)").await, ["b", "d"]);
    assert_eq!(names("app").await, ["a", "b", "c"]);
    assert_eq!(names("!app").await, ["d"]);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=c"))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);
    let all: Api<ConfigMap> = Api::all(env.client.clone());
    let in_default = all
        .list(&ListParams::default().fields("metadata.namespace=default"))
        .await
        .unwrap();
    assert_eq!(in_default.items.len(), 4);
    env.api.shutdown().await;
}

async fn next_event(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
) -> WatchEvent<ConfigMap> {
    tokio::time::timeout(STEP, stream.next())
        .await
        .expect("watch event in time")
        .expect("stream open")
        .expect("event ok")
}

#[tokio::test]
async fn watch_streams_added_modified_deleted_in_order() {
    let env = start("watch").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("w", &[], &[("k", "1")]))
        .await
        .unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    match next_event(&mut stream).await {
        WatchEvent::Added(c) => assert_eq!(c.data.unwrap()["k"], "1"),
        other => panic!("expected ADDED, got {other:?}"),
    }
    match next_event(&mut stream).await {
        WatchEvent::Modified(c) => assert_eq!(c.data.unwrap()["k"], "2"),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    match next_event(&mut stream).await {
        WatchEvent::Deleted(c) => assert_eq!(c.name_any(), "w"),
        other => panic!("expected DELETED, got {other:?}"),
    }

    // Bookmarks arrive on an idle watch when asked for.
    env.api.shutdown().await;
    let env = start_with(
        "bookmark",
        Options {
            bookmark_interval: Duration::from_millis(100),
            ..Options::default()
        },
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected BOOKMARK, got {other:?}"),
    }
    env.api.shutdown().await;
}

#[tokio::test]
async fn watch_from_expired_resource_version_is_gone() {
    let env = start_with(
        "gone",
        Options {
            history_limit: 5,
            ..Options::default()
        },
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    for i in 0..20 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), &[], &[]))
            .await
            .unwrap();
    }
    let mut stream = cms
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message.starts_with("too old resource version: 1"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // A recent version still works.
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("late", &[], &[]))
        .await
        .unwrap();
    assert!(
        matches!(next_event(&mut stream).await, WatchEvent::Added(c) if c.name_any() == "late")
    );
    env.api.shutdown().await;
}

#[tokio::test]
async fn owner_reference_gc_deletes_dependents_recursively() {
    let env = start("gc").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let owner_ref = |o: &ConfigMap| json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": o.name_any(), "uid": o.uid().unwrap(), "controller": true}]);
    let parent = cms
        .create(&PostParams::default(), &cm("parent", &[], &[]))
        .await
        .unwrap();
    let mut child = cm("child", &[], &[]);
    child.metadata.owner_references = serde_json::from_value(owner_ref(&parent)).unwrap();
    let child = cms.create(&PostParams::default(), &child).await.unwrap();
    let mut grandchild = cm("grandchild", &[], &[]);
    grandchild.metadata.owner_references = serde_json::from_value(owner_ref(&child)).unwrap();
    cms.create(&PostParams::default(), &grandchild)
        .await
        .unwrap();
    let mut unrelated = cm("unrelated", &[], &[]);
    unrelated.metadata.owner_references = serde_json::from_value(json!([
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "parent", "uid": parent.uid().unwrap()},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "other-owner", "uid": cms.create(&PostParams::default(), &cm("other-owner", &[], &[])).await.unwrap().uid().unwrap()}
    ]))
    .unwrap();
    cms.create(&PostParams::default(), &unrelated)
        .await
        .unwrap();

    cms.delete("parent", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let names: Vec<String> = cms
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        if names == ["other-owner", "unrelated"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GC did not finish: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.api.shutdown().await;
}

#[tokio::test]
async fn runtime_watcher_sees_applied_change() {
    let env = start("watcher").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    cms.create(&PostParams::default(), &cm("pre", &[], &[]))
        .await
        .unwrap();
    let mut stream = watcher(cms.clone(), watcher::Config::default()).boxed();
    let deadline = tokio::time::Instant::now() + STEP;
    let mut applied = false;
    let mut seen_pre = false;
    while tokio::time::Instant::now() < deadline {
        let ev = tokio::time::timeout(STEP, stream.try_next())
            .await
            .expect("watcher event in time")
            .expect("watcher ok")
            .expect("stream open");
        match ev {
            watcher::Event::InitApply(c) if c.name_any() == "pre" => seen_pre = true,
            watcher::Event::InitDone => {
                assert!(seen_pre, "initial list includes existing objects");
                cms.patch(
                    "live",
                    &PatchParams::apply("tandem-test"),
                    &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "live"}, "data": {"v": "1"}})),
                )
                .await
                .unwrap();
            }
            watcher::Event::Apply(c) if c.name_any() == "live" => {
                assert_eq!(c.data.unwrap()["v"], "1");
                applied = true;
                break;
            }
            _ => {}
        }
    }
    assert!(applied, "watcher saw the applied ConfigMap");
    env.api.shutdown().await;
}

#[tokio::test]
async fn crds_from_directory_are_served_at_start() {
    let dir = TempDir::new("crddir");
    let crd = serde_saphyr::to_string(&widget_crd("Cluster")).unwrap();
    std::fs::write(dir.path().join("widgets.yaml"), format!("---\n{crd}---\n")).unwrap();
    std::fs::write(dir.path().join("ignored.txt"), "not yaml: [").unwrap();
    let env = start_with(
        "crddir-env",
        Options {
            crd_dir: Some(dir.path().to_path_buf()),
            ..Options::default()
        },
    )
    .await;
    let widgets: Api<DynamicObject> = Api::all_with(env.client.clone(), &widget_resource());
    widgets
        .create(
            &PostParams::default(),
            &DynamicObject::new("cluster-wide", &widget_resource()),
        )
        .await
        .unwrap();
    assert_eq!(
        widgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    env.api.shutdown().await;
}

fn kubectl() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    })
}

async fn run_kubectl(bin: &Path, mut args: Vec<String>) -> (bool, String, String) {
    // Keep kubectl's discovery/HTTP cache per test server (it is keyed by host:port and
    // would otherwise live in ~/.kube and outlive the server).
    if let Some(i) = args.iter().position(|a| a == "--kubeconfig") {
        if let Some(dir) = args.get(i + 1).and_then(|k| Path::new(k).parent()) {
            let cache = dir.join("kubectl-cache").to_string_lossy().into_owned();
            args.push("--cache-dir".into());
            args.push(cache);
        }
    }
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(bin)
            .args(&args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("kubectl finished in time")
    .expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs only where kubectl is installed (skipped with a message otherwise, e.g. on CI
/// machines without it).
#[tokio::test]
async fn kubectl_get_and_server_side_apply() {
    let Some(bin) = kubectl() else {
        eprintln!("kubectl not on PATH: skipping");
        return;
    };
    let env = start("kubectl").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    cms.create(&PostParams::default(), &cm("seen-by-kubectl", &[], &[]))
        .await
        .unwrap();
    let kc = env.kubeconfig.to_string_lossy().into_owned();
    let (ok, out, err) = run_kubectl(
        &bin,
        vec![
            "--kubeconfig".into(),
            kc.clone(),
            "get".into(),
            "configmaps".into(),
            "-A".into(),
        ],
    )
    .await;
    assert!(ok, "kubectl get failed: {err}");
    assert!(
        out.contains("seen-by-kubectl") && out.contains("default"),
        "{out}"
    );

    let manifest = env.kubeconfig.with_file_name("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-kubectl\n  namespace: default\ndata:\n  k: v\n",
    )
    .unwrap();
    let apply = |extra: &[&str]| {
        let mut a = vec![
            "--kubeconfig".to_string(),
            kc.clone(),
            "apply".into(),
            "--server-side".into(),
            "-f".into(),
            manifest.to_string_lossy().into_owned(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let (ok, out, err) = run_kubectl(&bin, apply(&[])).await;
    assert!(ok, "kubectl apply --server-side failed: {out} {err}");
    let got = cms.get("from-kubectl").await.unwrap();
    assert_eq!(got.data.unwrap()["k"], "v");
    // Applying again is a no-op.
    let (ok, _, err) = run_kubectl(&bin, apply(&[])).await;
    assert!(ok, "second apply failed: {err}");
    assert_eq!(
        cms.get("from-kubectl")
            .await
            .unwrap()
            .metadata
            .resource_version,
        got.metadata.resource_version
    );

    // Custom resources: apply, get by short name, describe.
    create_widget_crd(&env.client).await;
    std::fs::write(
        &manifest,
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: wk\n  namespace: default\nspec:\n  size: 5\n",
    )
    .unwrap();
    let (ok, out, err) = run_kubectl(&bin, apply(&[])).await;
    assert!(ok, "kubectl apply of a custom resource failed: {out} {err}");
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), "default", &widget_resource());
    assert_eq!(widgets.get("wk").await.unwrap().data["spec"]["size"], 5);
    let (ok, out, err) = run_kubectl(
        &bin,
        vec!["--kubeconfig".into(), kc.clone(), "get".into(), "wd".into()],
    )
    .await;
    assert!(ok && out.contains("wk"), "kubectl get wd: {out} {err}");
    assert!(
        out.contains("SIZE")
            && out
                .lines()
                .any(|l| l.starts_with("wk") && l.contains(" 5 ")),
        "printer columns: {out}"
    );
    let (ok, out, err) = run_kubectl(
        &bin,
        vec![
            "--kubeconfig".into(),
            kc.clone(),
            "describe".into(),
            "widgets".into(),
            "wk".into(),
        ],
    )
    .await;
    assert!(
        ok && out.contains("Name:") && out.contains("wk"),
        "kubectl describe: {out} {err}"
    );
    let (ok, out, err) = run_kubectl(
        &bin,
        vec![
            "--kubeconfig".into(),
            kc.clone(),
            "delete".into(),
            "widget".into(),
            "wk".into(),
        ],
    )
    .await;
    assert!(ok, "kubectl delete: {out} {err}");
    assert!(widgets.get("wk").await.is_err());
    env.api.shutdown().await;
}

#[tokio::test]
async fn finalizers_orphaning_and_namespace_deletion() {
    let env = start("finalizers").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let mut f = cm("fin", &[], &[]);
    f.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &f).await.unwrap();
    cms.delete("fin", &DeleteParams::default()).await.unwrap();
    let held = cms.get("fin").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    cms.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let (code, _) = api_code(cms.get("fin").await.unwrap_err());
    assert_eq!(code, 404, "removed once the last finalizer is gone");

    // Orphan propagation keeps dependents and drops their owner reference.
    let owner = cms
        .create(&PostParams::default(), &cm("owner", &[], &[]))
        .await
        .unwrap();
    let mut dep = cm("dep", &[], &[]);
    dep.metadata.owner_references = serde_json::from_value(json!([
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().unwrap()}
    ]))
    .unwrap();
    cms.create(&PostParams::default(), &dep).await.unwrap();
    cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    let dep = cms.get("dep").await.unwrap();
    assert!(dep.metadata.owner_references.unwrap_or_default().is_empty());

    // Deleting a namespace deletes what is in it.
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client.clone());
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "scratch"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let scratch: Api<ConfigMap> = Api::namespaced(env.client.clone(), "scratch");
    scratch
        .create(&PostParams::default(), &cm("inside", &[], &[]))
        .await
        .unwrap();
    nss.delete("scratch", &DeleteParams::default())
        .await
        .unwrap();
    let all: Api<ConfigMap> = Api::all(env.client.clone());
    let left = all
        .list(&ListParams::default().fields("metadata.namespace=scratch"))
        .await
        .unwrap();
    assert!(left.items.is_empty());
    assert!(nss.get("scratch").await.is_err());
    assert!(nss.get("default").await.is_ok());
    env.api.shutdown().await;
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_end() {
    let env = start("streaming").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    cms.create(&PostParams::default(), &cm("s1", &[], &[]))
        .await
        .unwrap();
    let mut stream = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let deadline = tokio::time::Instant::now() + STEP;
    let (mut init, mut done) = (false, false);
    while tokio::time::Instant::now() < deadline && !done {
        let ev = tokio::time::timeout(STEP, stream.try_next())
            .await
            .expect("watcher event in time")
            .expect("watcher ok")
            .expect("stream open");
        match ev {
            watcher::Event::InitApply(c) if c.name_any() == "s1" => init = true,
            watcher::Event::InitDone => done = true,
            _ => {}
        }
    }
    assert!(init && done, "streaming list delivered s1 then InitDone");
    env.api.shutdown().await;
}

#[tokio::test]
async fn recorder_events_are_visible_as_core_events() {
    use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let env = start("events").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let target = cms
        .create(&PostParams::default(), &cm("target", &[], &[]))
        .await
        .unwrap();
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        name: target.metadata.name.clone(),
        namespace: Some("default".into()),
        uid: target.metadata.uid.clone(),
        ..Default::default()
    };
    let recorder = Recorder::new(
        env.client.clone(),
        Reporter {
            controller: "tandem-test".into(),
            instance: None,
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("hello from the recorder".into()),
        action: "Test".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    // The same event again becomes a series (a merge patch on the events.k8s.io object).
    recorder.publish(&ev, &reference).await.unwrap();

    let core: Api<CoreEvent> = Api::namespaced(env.client.clone(), "default");
    let found = core
        .list(&ListParams::default().fields(&format!(
            "involvedObject.name=target,involvedObject.uid={}",
            target.metadata.uid.clone().unwrap()
        )))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1, "{:?}", found.items);
    let e = &found.items[0];
    assert_eq!(e.message.as_deref(), Some("hello from the recorder"));
    assert_eq!(e.reason.as_deref(), Some("Tested"));
    assert_eq!(e.series.as_ref().and_then(|s| s.count), Some(2));
    let v1: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), "default");
    let listed = v1
        .list(&ListParams::default().fields("regarding.name=target"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(
        listed.items[0].note.as_deref(),
        Some("hello from the recorder")
    );
    env.api.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_watches_and_frees_the_port() {
    let env = start("shutdown").await;
    let addr = env.api.addr();
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let mut stream = cms
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    // Initial events of a "0" watch: the (empty) namespace has none; stream is open.
    env.api.shutdown().await;
    let ended = tokio::time::timeout(STEP, async {
        loop {
            match stream.next().await {
                None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "watch stream ends after shutdown");
    // The listener is closed: nothing answers on the address any more (a parallel test
    // could in theory get the same port, so only a failed request counts).
    let after = tokio::time::timeout(STEP, cms.list(&ListParams::default())).await;
    assert!(
        matches!(after, Ok(Err(_))),
        "no API after shutdown on {addr}"
    );
}

#[tokio::test]
async fn selector_watch_sees_objects_enter_and_leave_and_dry_run_stores_nothing() {
    let env = start("selwatch").await;
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().labels("app=x"), &rv)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("unlabelled", &[], &[]))
        .await
        .unwrap();
    cms.patch(
        "unlabelled",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "x"}}})),
    )
    .await
    .unwrap();
    cms.patch(
        "unlabelled",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    assert!(
        matches!(next_event(&mut stream).await, WatchEvent::Added(c) if c.labels()["app"] == "x")
    );
    assert!(
        matches!(next_event(&mut stream).await, WatchEvent::Deleted(c) if c.labels()["app"] == "y")
    );

    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let shown = cms.create(&dry, &cm("dry", &[], &[])).await.unwrap();
    assert_eq!(shown.name_any(), "dry");
    let (code, _) = api_code(cms.get("dry").await.unwrap_err());
    assert_eq!(code, 404, "dry run stores nothing");
    env.api.shutdown().await;
}
