//! The Helm chart's values schema and its monitoring objects (issue 20, items 3 and 4):
//! values.schema.json covers every value of values.yaml and refuses unknown keys; with the
//! monitoring values on, the chart renders a PodMonitor, a PrometheusRule and a Grafana
//! dashboard ConfigMap whose metric names all exist in the code (a running tandem-server's
//! admin `/metrics` and the operator's registry); promtool checks the rules and runs unit
//! tests of each alert.
//!
//! helm (and promtool) are external tools: a missing one fails the test under CI=true and
//! skips it with a message otherwise.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("charts/tandem-operator")
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
            panic!("{name} is not on PATH but CI=true: .ci/run must install it");
        }
        eprintln!("skipping: {name} is not on PATH (set CI=true to make this a failure)");
    }
    found
}

fn template(helm: &Path, extra: &[&str]) -> Output {
    Command::new(helm)
        .args(["template", "t"])
        .arg(chart())
        .args(["--namespace", "tandem-system"])
        .args(extra)
        .output()
        .expect("helm runs")
}

fn render(helm: &Path, extra: &[&str]) -> String {
    let out = template(helm, extra);
    assert!(
        out.status.success(),
        "helm template {extra:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// helm template must fail, and say so with the schema's message.
fn refused(helm: &Path, extra: &[&str], message: &str) {
    let out = template(helm, extra);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{extra:?} rendered");
    assert!(
        err.contains("don't meet the specifications of the schema"),
        "{extra:?}: {err}"
    );
    assert!(
        err.contains(message),
        "{extra:?}: want {message:?} in {err}"
    );
}

fn values_yaml() -> Value {
    let text = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn values_schema() -> Value {
    let text = std::fs::read_to_string(chart().join("values.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Walks values.yaml beside the schema: every key has a property, and every object the
/// schema describes with properties refuses unknown keys.
fn uncovered(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    let Value::Object(map) = value else { return };
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        // A free-form map (labels, annotations, a Kubernetes type): typed, not enumerated.
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            out.push(format!("{path}: object without an object schema"));
        }
        return;
    };
    if schema.get("additionalProperties") != Some(&Value::Bool(false)) {
        out.push(format!("{path}: allows unknown keys"));
    }
    for (k, v) in map {
        let here = format!("{path}.{k}");
        match props.get(k) {
            None => out.push(format!("{here}: not in the schema")),
            Some(s) => {
                if s.get("type").is_none() && s.get("anyOf").is_none() {
                    out.push(format!("{here}: no type"));
                }
                uncovered(v, s, &here, out);
            }
        }
    }
}

#[test]
fn values_schema_covers_every_value_and_refuses_unknown_keys() {
    let mut missing = vec![];
    uncovered(&values_yaml(), &values_schema(), "", &mut missing);
    assert!(missing.is_empty(), "{missing:#?}");
    // The walker itself notices a value the schema lacks.
    let mut v = values_yaml();
    v["metrics"]["newKnob"] = Value::Bool(true);
    let mut found = vec![];
    uncovered(&v, &values_schema(), "", &mut found);
    assert_eq!(found, [".metrics.newKnob: not in the schema"]);
}

#[test]
fn helm_template_fails_on_unknown_or_mistyped_values_with_the_schema_message() {
    let Some(helm) = tool("helm") else { return };
    refused(
        &helm,
        &["--set", "replicaCout=2"],
        "additional properties 'replicaCout' not allowed",
    );
    refused(
        &helm,
        &["--set", "unknownKey=1"],
        "additional properties 'unknownKey' not allowed",
    );
    refused(
        &helm,
        &["--set", "metrics.serviceMonitor.intervall=10s"],
        "additional properties 'intervall' not allowed",
    );
    refused(
        &helm,
        &["--set", "podSecurityContext.runAsUsr=1"],
        "additional properties 'runAsUsr' not allowed",
    );
    refused(
        &helm,
        &["--set", "affinity.nodeAfinity.x=1"],
        "additional properties 'nodeAfinity' not allowed",
    );
    refused(
        &helm,
        &["--set", "monitoring.prometheusRule.memoryRatio=1.5"],
        "/monitoring/prometheusRule/memoryRatio",
    );
    refused(
        &helm,
        &["--set", "monitoring.podMonitor.interval=soon"],
        "/monitoring/podMonitor/interval",
    );
    refused(&helm, &["--set", "metrics.port=70000"], "/metrics/port");
    refused(&helm, &["--set", "replicaCount=0"], "/replicaCount");
    refused(
        &helm,
        &["--set", "image.pullPolicy=Sometimes"],
        "/image/pullPolicy",
    );
    refused(&helm, &["--set", "crd.install=maybe"], "/crd/install");
    // A malformed values file (a list where an object belongs) fails the same way.
    let dir = std::env::temp_dir().join(format!("tandem-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "leaderElection:\n  - enabled\n").unwrap();
    let bad_arg = bad.to_string_lossy().into_owned();
    let out = template(&helm, &["-f", &bad_arg]);
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("/leaderElection"), "{err}");
    // The defaults and the documented settings still render.
    render(&helm, &[]);
    render(
        &helm,
        &[
            "--set",
            "watchNamespace=apps",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "resources.limits.cpu=500m",
            "--set",
            "tolerations[0].key=dedicated,tolerations[0].operator=Exists",
            "--set",
            "securityContext.capabilities.drop={ALL}",
        ],
    );
}

const MONITORING_ON: &[&str] = &[
    "--set",
    "monitoring.podMonitor.enabled=true",
    "--set",
    "monitoring.prometheusRule.enabled=true",
    "--set",
    "monitoring.dashboard.enabled=true",
];

fn docs(rendered: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(rendered)
        .expect("helm renders YAML")
        .into_iter()
        .filter(|v| v.is_object())
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The dashboard JSON inside the rendered ConfigMap.
fn dashboard(docs: &[Value]) -> Value {
    let cms: Vec<&Value> = kind(docs, "ConfigMap")
        .into_iter()
        .filter(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    assert_eq!(cms.len(), 1, "one dashboard ConfigMap");
    let text = cms[0]["data"]["tandem.json"].as_str().expect("tandem.json");
    serde_json::from_str(text).expect("the dashboard is JSON")
}

/// Every PromQL expression of the dashboard (panel targets and variable queries).
fn dashboard_exprs(d: &Value) -> Vec<String> {
    let mut out = vec![];
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            out.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    for v in d["templating"]["list"].as_array().expect("templating") {
        if v["type"] == "query" {
            let q = v["query"].as_str().expect("query");
            // label_values(SELECTOR, label): the selector is the expression.
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map_or(q, |(sel, _)| sel);
            out.push(inner.to_string());
        }
    }
    out
}

fn rule_exprs(rule: &Value) -> Vec<(String, String)> {
    let mut out = vec![];
    for g in rule["spec"]["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let name = r["alert"].as_str().or(r["record"].as_str()).expect("name");
            out.push((
                name.to_string(),
                r["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    out
}

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan", // aggregation operators may put `by (...)` before their `(`:
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: identifiers outside label matchers,
/// ranges and strings that are neither functions, keywords nor label lists.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = vec![];
    let mut i = 0;
    let mut skip_list = false;
    while let Some(&c) = chars.get(i) {
        match c {
            '{' | '[' | '"' | '\'' => {
                let close = match c {
                    '{' => '}',
                    '[' => ']',
                    q => q,
                };
                i += 1;
                while chars.get(i).is_some_and(|&x| x != close) {
                    i += 1;
                }
                i += 1;
            }
            '(' if skip_list => {
                while chars.get(i).is_some_and(|&x| x != ')') {
                    i += 1;
                }
                skip_list = false;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|x| x.is_ascii_alphanumeric() || *x == '_' || *x == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while chars.get(j).is_some_and(|x| x.is_whitespace()) {
                    j += 1;
                }
                let call = chars.get(j) == Some(&'(');
                if LABEL_LISTS.contains(&word.as_str()) {
                    skip_list = true;
                } else if !call && !KEYWORDS.contains(&word.as_str()) {
                    names.push(word);
                }
            }
            c if c.is_ascii_digit() => {
                // A number or a duration (5m): digits, then letters.
                while chars
                    .get(i)
                    .is_some_and(|x| x.is_ascii_alphanumeric() || *x == '.')
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// A tandem-server on loopback, killed (by its handle) and its directory removed on drop.
struct Server {
    child: std::process::Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let (head, rest) = body.split_once("\r\n\r\n")?;
    let ok = head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200");
    ok.then(|| rest.to_string())
}

/// The admin port's `/metrics` of a freshly started tandem-server.
fn server_exposition() -> String {
    let bin = common::loopback_servers::server_bin();
    let dir = std::env::temp_dir().join(format!("tandem-chart-srv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (port, admin) = (free_port(), free_port());
    let child = Command::new(bin)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--tandem-admin-port", &admin.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tandem-server starts");
    let mut server = Server { child, dir };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some(text) = http_get(admin, "/metrics") {
            return text;
        }
        assert!(
            matches!(server.child.try_wait(), Ok(None)),
            "tandem-server exited"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no /metrics on 127.0.0.1:{admin}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Names in a Prometheus/OpenMetrics text exposition: every sample's name and, per
/// `# TYPE`, the family name with its kind's suffixes (counters `_total`, histograms
/// `_bucket`/`_sum`/`_count`).
fn exposition_names(text: &str, names: &mut std::collections::BTreeSet<String>) {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_string());
            match kind {
                "counter" if !name.ends_with("_total") => {
                    names.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for s in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{s}"));
                    }
                }
                _ => {}
            }
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            if end > 0 {
                names.insert(line[..end].to_string());
            }
        }
    }
}

/// Metric names the code exports: a running tandem-server's admin `/metrics` and the
/// operator's registry, read from its own exposition.
fn exported_names() -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    exposition_names(&server_exposition(), &mut names);
    assert!(names.contains("tandem_up"), "{names:?}");
    let metrics = tandem_operator::metrics::Metrics::default();
    // A labelled family shows in the exposition once it has a sample.
    metrics.reconcile_failed("apply");
    let set = tandem_operator::metrics::SetLabels::new("ns", "cache");
    metrics
        .sets
        .observe(&set, Some("uid"), &Default::default(), &["Ready"]);
    metrics.failover_done(&set, std::time::Duration::from_secs(1));
    exposition_names(&metrics.encode(), &mut names);
    names
}

/// Metrics of other exporters the rules may use, each named on purpose.
const EXTERNAL: &[&str] = &[
    // kube-state-metrics: the container memory limit for TandemMemoryNearLimit.
    "kube_pod_container_resource_limits",
];

/// (where, name) for every referenced metric the code does not export.
fn unknown_metrics(exprs: &[(String, String)]) -> Vec<(String, String)> {
    let exported = exported_names();
    let mut out = vec![];
    for (at, e) in exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "{at}: no metric in {e}");
        for n in names {
            if !exported.contains(&n) && !EXTERNAL.contains(&n.as_str()) {
                out.push((at.clone(), n));
            }
        }
    }
    out
}

fn monitoring_exprs(docs: &[Value]) -> Vec<(String, String)> {
    let rules = kind(docs, "PrometheusRule");
    assert_eq!(rules.len(), 1);
    let mut exprs = rule_exprs(rules[0]);
    for e in dashboard_exprs(&dashboard(docs)) {
        exprs.push(("dashboard".into(), e));
    }
    exprs
}

#[test]
fn monitoring_values_render_podmonitor_rules_and_dashboard() {
    let Some(helm) = tool("helm") else { return };
    let off = docs(&render(&helm, &[]));
    for k in ["PodMonitor", "PrometheusRule"] {
        assert!(kind(&off, k).is_empty(), "{k} rendered by default");
    }
    assert!(
        kind(&off, "ConfigMap").is_empty(),
        "dashboard rendered by default"
    );

    let on = docs(&render(&helm, MONITORING_ON));
    let pm = kind(&on, "PodMonitor");
    assert_eq!(pm.len(), 1);
    let ep = &pm[0]["spec"]["podMetricsEndpoints"][0];
    // The operator names the server container's admin port "admin" (src/build/statefulset.rs).
    assert_eq!(ep["port"], "admin");
    assert_eq!(ep["path"], "/metrics");
    assert_eq!(pm[0]["spec"]["namespaceSelector"]["any"], true);
    let sel = &pm[0]["spec"]["selector"]["matchLabels"];
    let built = tandem_operator::names::labels("cache");
    for (k, v) in sel.as_object().expect("matchLabels") {
        assert_eq!(
            built.get(k).map(String::as_str),
            v.as_str(),
            "the PodMonitor selects on {k}={v}, which server pods do not carry"
        );
    }

    let rules = kind(&on, "PrometheusRule");
    assert_eq!(rules.len(), 1);
    let alerts: Vec<String> = rule_exprs(rules[0]).into_iter().map(|(n, _)| n).collect();
    for a in [
        "TandemNoMaster",
        "TandemReplicaLinkDown",
        "TandemReplicationLag",
        "TandemFailover",
        "TandemSetDegraded",
        "TandemMemoryNearLimit",
    ] {
        assert!(
            alerts.iter().any(|x| x == a),
            "missing alert {a}: {alerts:?}"
        );
    }

    let d = dashboard(&on);
    assert_eq!(d["uid"], "tandem-overview");
    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let mut ids = std::collections::BTreeSet::new();
    for p in panels {
        assert!(p["title"].is_string() && p["type"].is_string(), "{p}");
        assert!(
            ids.insert(p["id"].as_u64().expect("numeric id")),
            "duplicate id"
        );
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].is_u64(), "{p}");
        }
        assert!(!p["targets"].as_array().expect("targets").is_empty());
    }

    // The dashboard ConfigMap is a valid Kubernetes object (the other two are CRD kinds).
    if let Some(kv) = tool("kubernetes-validate") {
        let dir = std::env::temp_dir().join(format!("tandem-chart-kv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cm = dir.join("dashboard.yaml");
        let doc = kind(&on, "ConfigMap")[0];
        std::fs::write(&cm, serde_saphyr::to_string(doc).unwrap()).unwrap();
        let out = Command::new(kv)
            .args(["--strict", "-k", "1.33.0"])
            .arg(&cm)
            .output()
            .expect("kubernetes-validate runs");
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("passed"), "{text}");
    }

    // Values reach the objects; a narrower scrape and another dashboard namespace.
    let tuned = docs(&render(
        &helm,
        &[
            "--set",
            "monitoring.podMonitor.enabled=true",
            "--set",
            "monitoring.podMonitor.namespaces={apps}",
            "--set",
            "monitoring.prometheusRule.enabled=true",
            "--set",
            "monitoring.prometheusRule.replicationLagBytes=4096",
            "--set",
            "monitoring.dashboard.enabled=true",
            "--set",
            "monitoring.dashboard.namespace=grafana",
        ],
    ));
    assert_eq!(
        kind(&tuned, "PodMonitor")[0]["spec"]["namespaceSelector"]["matchNames"][0],
        "apps"
    );
    let lag = rule_exprs(kind(&tuned, "PrometheusRule")[0])
        .into_iter()
        .find(|(n, _)| n == "TandemReplicationLag")
        .expect("lag rule");
    assert!(lag.1.trim_end().ends_with("> 4096"), "{}", lag.1);
    let cm = kind(&tuned, "ConfigMap");
    assert_eq!(cm[0]["metadata"]["namespace"], "grafana");
}

#[test]
fn rules_and_dashboard_reference_only_exported_metrics() {
    let Some(helm) = tool("helm") else { return };
    let on = docs(&render(&helm, MONITORING_ON));
    let exprs = monitoring_exprs(&on);
    assert!(exprs.len() >= 15, "{exprs:?}");
    let unknown = unknown_metrics(&exprs);
    assert!(unknown.is_empty(), "not exported by the code: {unknown:?}");
    // Names the cross-check must see in use (so the check is not vacuous).
    let all: Vec<String> = exprs.iter().flat_map(|(_, e)| metric_names(e)).collect();
    for n in [
        "tandem_role",
        "tandem_master_link_up",
        "tandem_operator_failovers_total",
        "tandem_operator_set_has_master",
        "tandem_used_memory_bytes",
    ] {
        assert!(all.iter().any(|x| x == n), "{n} not referenced");
    }
}

#[test]
fn cross_check_flags_a_metric_the_code_does_not_export() {
    let exprs = vec![
        (
            "rule".to_string(),
            "sum by (namespace, set) (rate(tandem_bogus_total{job=\"x\"}[5m])) > 0".to_string(),
        ),
        (
            "panel".to_string(),
            "tandem_up and on (pod) tandem_operator_failovers_total offset 5m".to_string(),
        ),
    ];
    assert_eq!(
        unknown_metrics(&exprs),
        [("rule".to_string(), "tandem_bogus_total".to_string())]
    );
    assert_eq!(
        metric_names("histogram_quantile(0.9, sum by (le) (rate(a_bucket[1m]))) / ignoring (x) b"),
        ["a_bucket", "b"]
    );
}

/// One pod's server metrics as promtool input series (values held for the whole test).
fn pod_series(set: &str, pod: &str, m: &[(&str, &str, f64)]) -> Vec<Value> {
    m.iter()
        .map(|(name, extra, v)| {
            let sep = if extra.is_empty() { "" } else { "," };
            serde_json::json!({
                "series": format!("{name}{{namespace=\"a\",set=\"{set}\",pod=\"{pod}\"{sep}{extra}}}"),
                "values": format!("{v}x15"),
            })
        })
        .collect()
}

fn server_pod(
    set: &str,
    pod: &str,
    master: bool,
    link_up: bool,
    offset: f64,
    attached: f64,
) -> Vec<Value> {
    let (m, r) = if master { (1.0, 0.0) } else { (0.0, 1.0) };
    pod_series(
        set,
        pod,
        &[
            ("tandem_role", "role=\"master\"", m),
            ("tandem_role", "role=\"replica\"", r),
            ("tandem_fenced", "", 0.0),
            ("tandem_master_link_up", "", if link_up { 1.0 } else { 0.0 }),
            ("tandem_master_repl_offset", "", offset),
            ("tandem_connected_replicas", "", attached),
        ],
    )
}

/// `promtool check rules` passes on the rendered rules and on the dashboard's expressions
/// (as recording rules), and `promtool test rules` shows each alert firing on the state it
/// describes and not on a healthy set.
#[test]
fn promtool_checks_the_rules_and_the_alerts_fire_on_their_conditions() {
    let Some(helm) = tool("helm") else { return };
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let on = docs(&render(&helm, MONITORING_ON));
    let rule = kind(&on, "PrometheusRule")[0].clone();
    let dir = std::env::temp_dir().join(format!("tandem-promtool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, v: &Value| {
        let p = dir.join(name);
        std::fs::write(&p, serde_saphyr::to_string(v).unwrap()).unwrap();
        p
    };
    let check = |p: &Path| {
        Command::new(&promtool)
            .args(["check", "rules"])
            .arg(p)
            .output()
            .expect("promtool runs")
    };
    let rules_file = write(
        "rules.yaml",
        &serde_json::json!({"groups": rule["spec"]["groups"]}),
    );
    // The dashboard's expressions, with Grafana's variables filled in.
    let recorded: Vec<Value> = dashboard_exprs(&dashboard(&on))
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let e = e
                .replace("$__rate_interval", "1m")
                .replace("$namespace", "a")
                .replace("$set", ".*");
            serde_json::json!({"record": format!("tandem:dashboard_{i}"), "expr": e})
        })
        .collect();
    let dash_file = write(
        "dashboard-rules.yaml",
        &serde_json::json!({"groups": [{"name": "dashboard", "rules": recorded}]}),
    );
    // A broken expression is refused (the check is not vacuous).
    let broken_file = write(
        "broken.yaml",
        &serde_json::json!({"groups": [{"name": "b", "rules": [{"alert": "X", "expr": "max by (set (tandem_up)"}]}]}),
    );

    // Alert behaviour: the rules without annotations (promtool compares those too).
    let mut bare = rule["spec"]["groups"].clone();
    for g in bare.as_array_mut().unwrap() {
        for r in g["rules"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("annotations");
        }
    }
    let bare_file = write("bare.yaml", &serde_json::json!({"groups": bare}));
    let mut series = vec![];
    // "ok": a master with one attached, in-sync replica.
    series.extend(server_pod("ok", "ok-0", true, false, 1000.0, 1.0));
    series.extend(server_pod("ok", "ok-1", false, true, 1000.0, 0.0));
    // "bad": two replicas, no master, links down, one far behind the other.
    series.extend(server_pod("bad", "bad-0", false, false, 500.0, 0.0));
    series.extend(server_pod("bad", "bad-1", false, false, 100_000_000.0, 0.0));
    series.extend(pod_series(
        "ok",
        "ok-0",
        &[("tandem_used_memory_bytes", "", 950.0)],
    ));
    series.extend(pod_series(
        "ok",
        "ok-1",
        &[("tandem_used_memory_bytes", "", 100.0)],
    ));
    for pod in ["ok-0", "ok-1"] {
        series.push(serde_json::json!({
            "series": format!("kube_pod_container_resource_limits{{namespace=\"a\",pod=\"{pod}\",container=\"server\",resource=\"memory\"}}"),
            "values": "1000x15",
        }));
    }
    series.push(serde_json::json!({
        "series": "tandem_operator_failovers_total{job=\"tandem-operator\"}",
        "values": "0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1",
    }));
    // The operator's per-set view: "ok" has a master, "gone" (no pod left to scrape) has
    // none; "bad" is not reported by the operator, so its alert comes from the servers.
    for (set, v) in [("ok", 1), ("gone", 0)] {
        series.push(serde_json::json!({
            "series": format!("tandem_operator_set_has_master{{namespace=\"a\",name=\"{set}\",job=\"tandem-operator\"}}"),
            "values": format!("{v}x15"),
        }));
    }
    // The operator's counter carries no namespace: its alert has the scrape's labels.
    let mut failover = expect("TandemFailover", &[&[("severity", "info")]]);
    failover["exp_alerts"][0]["exp_labels"] =
        serde_json::json!({"severity": "info", "job": "tandem-operator"});
    let tests = serde_json::json!({
        "rule_files": [bare_file],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                expect("TandemNoMaster", &[
                    &[("severity", "critical"), ("set", "bad")],
                    &[("severity", "critical"), ("set", "gone")],
                ]),
                expect("TandemReplicaLinkDown", &[
                    &[("severity", "warning"), ("set", "bad"), ("pod", "bad-0")],
                    &[("severity", "warning"), ("set", "bad"), ("pod", "bad-1")],
                ]),
                expect("TandemReplicationLag", &[&[("severity", "warning"), ("set", "bad"), ("pod", "bad-0")]]),
                expect("TandemSetDegraded", &[&[("severity", "warning"), ("set", "bad")]]),
                expect("TandemMemoryNearLimit", &[&[("severity", "warning"), ("set", "ok"), ("pod", "ok-0")]]),
                failover,
            ],
        }],
    });
    let tests_file = write("tests.yaml", &tests);
    let unit = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&tests_file)
        .output()
        .expect("promtool runs");
    let out = check(&rules_file);
    let dash = check(&dash_file);
    let broken = check(&broken_file);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dash.status.success(),
        "{}",
        String::from_utf8_lossy(&dash.stderr)
    );
    assert!(!broken.status.success());
    assert!(
        unit.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&unit.stdout),
        String::from_utf8_lossy(&unit.stderr)
    );
}

/// An alert_rule_test entry at 10m: the alert fires exactly for these label sets (each
/// also carrying namespace="a").
fn expect(name: &str, firing: &[&[(&str, &str)]]) -> Value {
    let alerts: Vec<Value> = firing
        .iter()
        .map(|labels| {
            let mut l = serde_json::Map::new();
            l.insert("namespace".into(), "a".into());
            for (k, v) in *labels {
                l.insert((*k).into(), Value::String((*v).into()));
            }
            serde_json::json!({ "exp_labels": l })
        })
        .collect();
    serde_json::json!({"eval_time": "10m", "alertname": name, "exp_alerts": alerts})
}
