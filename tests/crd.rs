//! The checked-in CRD matches the Rust types, and its schema carries the defaults,
//! validations, printer columns and subresources the API contract promises.

use kube::CustomResourceExt;
use serde_json::Value;
use tandem_operator::crd::{self, RedisReplication};

const REGENERATE: &str = "cargo run -p tandem-operator -- crd --write";

fn repo_file(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; regenerate with `{REGENERATE}`",
            path.display()
        )
    })
}

#[test]
fn checked_in_crd_is_fresh() {
    let want = crd::crd_yaml().unwrap();
    assert!(
        repo_file(crd::CRD_FILE) == want,
        "{} is stale: regenerate it with `{REGENERATE}` from the repository root",
        crd::CRD_FILE
    );
}

#[test]
fn chart_crd_is_fresh() {
    let want = crd::chart_crd_template().unwrap();
    assert!(
        repo_file(crd::CHART_CRD_FILE) == want,
        "{} is stale: regenerate it with `{REGENERATE}` from the repository root",
        crd::CHART_CRD_FILE
    );
}

/// The checked-in YAML is the generated CRD as data (whatever the YAML writer's layout), and
/// strings YAML 1.1 parsers (kubectl's) would read as booleans are quoted.
#[test]
fn checked_in_crd_parses_back_to_the_generated_crd() {
    let text = repo_file(crd::CRD_FILE);
    let parsed: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        parsed,
        serde_json::to_value(RedisReplication::crd()).unwrap()
    );
    assert!(
        text.contains("- \"no\"\n"),
        "appendfsync's `no` must be quoted"
    );
}

/// The README's list of spec defaults says what the CRD defaults to.
#[test]
fn readme_states_the_crd_defaults() {
    let readme = repo_file("README.md").replace('\n', " ");
    let spec = schema()["properties"]["spec"].clone();
    for path in [
        "replicas",
        "failover.enabled",
        "failover.downAfterSeconds",
        "replication.topology",
        "replication.fanout",
        "persistence.appendonly",
        "podDisruptionBudget.enabled",
        "podDisruptionBudget.maxUnavailable",
        "maxmemoryRatio",
        "networkPolicy.enabled",
        "auth.internalUser",
        "tls.authClients",
        "tls.replication",
        "tls.expiryWarningDays",
        "tls.issuerRef.kind",
        "tls.issuerRef.group",
        "auth.disableDefaultUser",
    ] {
        let node = path.split('.').fold(&spec, |n, k| &n["properties"][k]);
        let default = match &node["default"] {
            Value::String(s) => s.clone(),
            Value::Null => panic!("{path} has no default in the CRD"),
            v => v.to_string(),
        };
        let said = format!("`{path}` {default}");
        assert!(readme.contains(&said), "README does not say {said}");
    }
}

fn schema() -> Value {
    let crd = serde_json::to_value(RedisReplication::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn crd_names_scope_and_subresources() {
    let crd = serde_json::to_value(RedisReplication::crd()).unwrap();
    assert_eq!(crd["metadata"]["name"], "redisreplications.tandem.dev");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["kind"], "RedisReplication");
    let short: Vec<&str> = crd["spec"]["names"]["shortNames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(short.contains(&"rr"));
    let v = &crd["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert!(v["subresources"]["status"].is_object());
    let cols: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for c in ["Master", "Ready", "Phase", "Age"] {
        assert!(cols.contains(&c), "missing printer column {c}");
    }
}

#[test]
fn schema_has_defaults_minimums_and_enums() {
    let s = schema();
    let spec = &s["properties"]["spec"]["properties"];
    assert_eq!(spec["replicas"]["default"], 3);
    assert_eq!(spec["replicas"]["minimum"].as_f64(), Some(1.0));
    assert_eq!(spec["auth"]["properties"]["key"]["default"], "password");
    let repl = &spec["replication"]["properties"];
    assert_eq!(repl["topology"]["default"], "star");
    assert_eq!(
        repl["topology"]["enum"],
        serde_json::json!(["star", "chain"])
    );
    assert_eq!(repl["fanout"]["minimum"].as_f64(), Some(1.0));
    let pers = &spec["persistence"]["properties"];
    assert_eq!(
        pers["appendfsync"]["enum"],
        serde_json::json!(["always", "everysec", "no"])
    );
    assert_eq!(
        spec["podDisruptionBudget"]["properties"]["enabled"]["default"],
        true
    );
    assert_eq!(
        spec["podDisruptionBudget"]["properties"]["maxUnavailable"]["default"],
        1
    );
    assert_eq!(spec["failover"]["properties"]["enabled"]["default"], true);
    assert_eq!(
        spec["service"]["properties"]["type"]["default"],
        "ClusterIP"
    );
}

#[test]
fn schema_has_cel_validations() {
    let s = schema();
    let spec = &s["properties"]["spec"];
    let rules = spec["x-kubernetes-validations"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["rule"]
        .as_str()
        .unwrap()
        .contains("minReplicasToWrite < self.replicas")));
    let sc = &spec["properties"]["persistence"]["properties"]["storage"]["properties"]
        ["storageClassName"];
    assert_eq!(sc["x-kubernetes-validations"][0]["rule"], "self == oldSelf");
    assert_eq!(
        sc["x-kubernetes-validations"][0]["message"],
        "storageClassName is immutable"
    );
}
