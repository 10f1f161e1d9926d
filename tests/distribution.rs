//! Distribution checks: the deploy/ examples are valid RedisReplications per the generated
//! CRD schema; the Helm chart lints and renders; deploy/tandem-operator.yaml is the chart's
//! current rendering; rendered manifests and built children pass `kubernetes-validate`.
//!
//! helm and kubernetes-validate are external tools: when one is missing the test fails if
//! CI=true (CI installs them via .ci/install-helm and .ci/requirements.txt) and is skipped
//! with a message otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::CustomResourceExt;
use serde_json::{json, Value};
use tandem_operator::build::{self, Params};
use tandem_operator::controller::observe::Observed;
use tandem_operator::controller::validate::validate;
use tandem_operator::crd::RedisReplication;

const RENDERED: &str = "deploy/tandem-operator.yaml";
const RENDER_HEADER: &str = "# Rendered from charts/tandem-operator with default values; do not edit.\n# Regenerate: helm template tandem-operator charts/tandem-operator --namespace tandem-system\n#   (prefixed by these three lines; the test tests/distribution.rs checks it)\n";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The tool's path, or None when the test may be skipped; panics under CI=true.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{name} is not on PATH but CI=true: .ci/run must install it (.ci/install-helm, .ci/requirements.txt)");
        }
        eprintln!("skipping: {name} is not on PATH (set CI=true to make this a failure)");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("tool runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn examples() -> Vec<(String, Value)> {
    let dir = root().join("deploy/examples");
    let mut out = vec![];
    for e in std::fs::read_dir(&dir).expect("deploy/examples exists") {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) == Some("yaml") {
            let text = std::fs::read_to_string(&p).unwrap();
            let v: Value = serde_saphyr::from_str(&text).unwrap();
            out.push((p.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn spec_schema() -> Value {
    let crd = serde_json::to_value(RedisReplication::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

fn schema_errors(obj: &Value) -> Vec<String> {
    let mut errors = vec![];
    if obj["apiVersion"] != "tandem.dev/v1alpha1" || obj["kind"] != "RedisReplication" {
        errors.push("not a tandem.dev/v1alpha1 RedisReplication".to_string());
    }
    if obj["metadata"]["name"].as_str().unwrap_or("").is_empty() {
        errors.push("metadata.name missing".to_string());
    }
    common::schema::check(&obj["spec"], &spec_schema(), "spec", &mut errors);
    errors
}

#[test]
fn examples_are_valid_redisreplications_per_the_crd_schema() {
    let ex = examples();
    let names: Vec<&str> = ex.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["chain.yaml", "minimal.yaml", "persistent-aof.yaml"]);
    for (name, obj) in &ex {
        assert_eq!(schema_errors(obj), Vec::<String>::new(), "{name}");
        let mut rr: RedisReplication =
            serde_json::from_value(obj.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        rr.metadata.namespace = Some("default".into());
        rr.metadata.uid = Some("uid".into());
        // The operator's own checks accept it too (with its Secret present).
        let secret = Secret {
            data: Some([(rr.spec.auth.key.clone(), ByteString(b"pw".to_vec()))].into()),
            ..Secret::default()
        };
        let observed = Observed {
            auth_secret: Some(secret),
            ..Observed::default()
        };
        assert_eq!(validate(&rr, &observed).map(|_| ()), Ok(()), "{name}");
        build::build(&rr, &Params::default(), None).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn schema_checker_rejects_bad_objects() {
    let bad = json!({
        "apiVersion": "tandem.dev/v1alpha1", "kind": "RedisReplication",
        "metadata": {"name": "x"},
        "spec": {"replicas": 0, "replication": {"topology": "ring"}, "typo": true}
    });
    let errors = schema_errors(&bad);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("spec.replicas: 0 below minimum")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("spec.replication.topology")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("spec.typo: unknown field")),
        "{errors:?}"
    );
}

fn helm_template(helm: &Path, extra: &[&str]) -> String {
    let chart = root().join("charts/tandem-operator");
    run(Command::new(helm)
        .args(["template", "tandem-operator"])
        .arg(&chart)
        .args(["--namespace", "tandem-system"])
        .args(extra))
}

#[test]
fn helm_lint_passes() {
    let Some(helm) = tool("helm") else { return };
    let out = run(Command::new(helm)
        .arg("lint")
        .arg(root().join("charts/tandem-operator")));
    assert!(out.contains("0 chart(s) failed"), "{out}");
}

#[test]
fn deploy_manifests_are_the_current_chart_rendering() {
    let Some(helm) = tool("helm") else { return };
    let want = format!("{RENDER_HEADER}{}", helm_template(&helm, &[]));
    let have = std::fs::read_to_string(root().join(RENDERED)).unwrap_or_default();
    if have != want {
        if std::env::var_os("TANDEM_REGENERATE").is_some() {
            std::fs::write(root().join(RENDERED), &want).unwrap();
        }
        panic!("{RENDERED} is stale: run `TANDEM_REGENERATE=1 cargo test -p tandem-operator --test distribution` (or the helm command in its header)");
    }
}

#[test]
fn chart_renders_all_pieces_and_namespaced_rbac() {
    let Some(helm) = tool("helm") else { return };
    let all = helm_template(&helm, &[]);
    for kind in [
        "ServiceAccount",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    ] {
        assert!(all.contains(&format!("\nkind: {kind}\n")), "missing {kind}");
    }
    assert!(!all.contains("kind: ServiceMonitor"));
    let ns = helm_template(
        &helm,
        &[
            "--set",
            "watchNamespace=apps",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "crd.install=false",
        ],
    );
    assert!(
        !ns.contains("kind: ClusterRole"),
        "namespaced watch must not get cluster-wide rights"
    );
    assert!(ns.contains("kind: Role\n"));
    assert!(ns.contains("namespace: apps"));
    assert!(ns.contains("kind: ServiceMonitor"));
    assert!(!ns.contains("kind: CustomResourceDefinition"));
    assert!(
        ns.contains("value: \"apps\""),
        "WATCH_NAMESPACE passed to the operator"
    );
}

#[test]
fn rendered_manifests_and_built_children_pass_kubernetes_validate() {
    let Some(kv) = tool("kubernetes-validate") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("tandem-kv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The children the operator builds for each example.
    let mut docs = vec![];
    for (_, obj) in examples() {
        let mut rr: RedisReplication = serde_json::from_value(obj).unwrap();
        rr.metadata.namespace = Some("default".into());
        rr.metadata.uid = Some("0c7c2f5e-0000-4000-8000-000000000001".into());
        let d = build::build(&rr, &Params::default(), Some("generated")).unwrap();
        if let Some(s) = &d.secret {
            docs.push(serde_saphyr::to_string(s).unwrap());
        }
        docs.push(serde_saphyr::to_string(&d.config_map).unwrap());
        for s in [&d.headless, &d.master, &d.replicas] {
            docs.push(serde_saphyr::to_string(s).unwrap());
        }
        if let Some(p) = &d.pdb {
            docs.push(serde_saphyr::to_string(p).unwrap());
        }
        if let Some(p) = &d.network_policy {
            docs.push(serde_saphyr::to_string(p).unwrap());
        }
        docs.push(serde_saphyr::to_string(&d.statefulset).unwrap());
    }
    let children = dir.join("children.yaml");
    std::fs::write(&children, docs.join("---\n")).unwrap();
    let out = run(Command::new(kv)
        .args(["--strict", "-k", "1.33.0"])
        .arg(root().join(RENDERED))
        .arg(&children));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.contains("passed for resource statefulset/cache"),
        "{out}"
    );
    assert!(
        out.contains("passed for resource deployment/tandem-operator"),
        "{out}"
    );
    // minimal.yaml enables the NetworkPolicy.
    assert!(
        out.contains("passed for resource networkpolicy/cache"),
        "{out}"
    );
    assert!(!out.contains("failed"), "{out}");
}

#[test]
fn chart_refuses_several_replicas_without_leader_election() {
    let Some(helm) = tool("helm") else { return };
    let out = Command::new(&helm)
        .args(["template", "t"])
        .arg(root().join("charts/tandem-operator"))
        .args([
            "--set",
            "replicaCount=2",
            "--set",
            "leaderElection.enabled=false",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires leaderElection.enabled=true"));
    helm_template(&helm, &["--set", "replicaCount=2"]);
}

#[test]
fn chart_values_schema_rejects_a_bad_log_format() {
    let Some(helm) = tool("helm") else { return };
    let out = Command::new(&helm)
        .args(["template", "t"])
        .arg(root().join("charts/tandem-operator"))
        .args(["--set", "logFormat=xml"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "values.schema.json must reject logFormat=xml"
    );
}
