//! The server ConfigMap: `tandem.conf` (operator-owned directives + the user's passthrough
//! config), one `pod-<i>.conf` per ordinal with its bootstrap role, and `start.sh`.
//!
//! Password handling (why a start script): the server reads `masterauth` from its config file
//! and the default user's passwords from `tandem-requirepass-file` (re-read every second, so a
//! rotation needs no restart), and no password may sit in a ConfigMap, the command line or an
//! env literal. The operator's `<name>-credentials` Secret is mounted as files
//! (`build::credentials`); `start.sh` (run by `/bin/sh`) concatenates the
//! ConfigMap files and the password into `/run/tandem/tandem.conf` on an in-memory emptyDir with
//! umask 077, using the shell's builtin `printf` (no child process sees the password in argv),
//! then `exec`s the server on that file.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{Owner, Params};
use crate::crd::RedisReplication;
use crate::names;

pub const CONFIG_DIR: &str = "/etc/tandem/config";
pub const AUTH_DIR: &str = "/etc/tandem/auth";
pub const RUN_DIR: &str = "/run/tandem";
pub const DATA_DIR: &str = "/data";
pub const SERVER_BIN: &str = "/usr/local/bin/tandem-server";
/// The default user's passwords inside the mounted credentials volume (one per line, re-read
/// by the server every second: `tandem-requirepass-file`).
pub const REQUIREPASS_FILE: &str = "requirepass";
/// The replicas' `masterauth` inside the mounted credentials volume.
pub const MASTERAUTH_FILE: &str = "masterauth";

/// Directives the operator renders itself; a user may not set them through `spec.config`.
pub const MANAGED_DIRECTIVES: &[&str] = &[
    "port",
    "bind",
    "dir",
    "requirepass",
    "masterauth",
    "masteruser",
    "replicaof",
    "slaveof",
    "include",
    "daemonize",
    "pidfile",
    "unixsocket",
    "protected-mode",
    "appendonly",
    "appendfsync",
    "save",
    "repl-diskless-sync",
    "repl-backlog-size",
    "min-replicas-to-write",
    "min-replicas-max-lag",
    "min-slaves-to-write",
    "min-slaves-max-lag",
    "tandem-fenced-start",
    "tandem-admin-port",
    "tandem-requirepass-file",
];

/// The server's admin HTTP port (`tandem-admin-port`): `/healthz`, `/readyz`, `/metrics`.
pub const ADMIN_PORT: i32 = 9121;

/// Ordinal of the recorded master (`status.master`) when it names a pod of this set.
pub fn recorded_master(rr: &RedisReplication, set: &str) -> Option<i32> {
    let master = rr.status.as_ref()?.master.as_deref()?;
    names::ordinal(set, master)
}

/// Where pod `ordinal` should replicate from when it starts: `None` for the master.
///
/// With a recorded master (`status.master`), the configured topology laid out from it over
/// the ordinals `0..replicas` (the same layout the roles step uses), so a restarted replica
/// resumes following the current master (or its chain parent) on its own. Without one, the
/// bootstrap rule (pod 0 is the master).
pub fn planned_upstream(rr: &RedisReplication, set: &str, ordinal: i32) -> Option<i32> {
    planned_upstream_from(&rr.spec, set, recorded_master(rr, set), ordinal)
}

/// [`planned_upstream`] for a given master ordinal (`None`: the bootstrap rule, pod 0). The
/// layout is the failover's ([`crate::failover::desired_upstreams`]), the one place a chain
/// is laid out.
pub fn planned_upstream_from(
    spec: &crate::crd::RedisReplicationSpec,
    set: &str,
    master: Option<i32>,
    ordinal: i32,
) -> Option<i32> {
    let master = master.unwrap_or(0);
    if ordinal == master {
        return None;
    }
    let pods: Vec<(u32, String)> = (0..spec.replicas.max(1).max(ordinal + 1))
        .filter_map(|i| Some((u32::try_from(i).ok()?, names::pod(set, i))))
        .collect();
    let members: Vec<(u32, &str)> = pods.iter().map(|(i, n)| (*i, n.as_str())).collect();
    let master_name = names::pod(set, master);
    let me = names::pod(set, ordinal);
    crate::failover::desired_upstreams(
        crate::model::topology(&spec.replication),
        &master_name,
        &members,
    )
    .into_iter()
    .find(|rp| rp.pod == me)
    .and_then(|rp| names::ordinal(set, &rp.upstream))
}

/// `min-replicas-max-lag` rendered while `min-replicas-to-write` is off (Redis's default).
const DEFAULT_MAX_LAG_OFF: u64 = 10;

/// The effective `(min-replicas-to-write, min-replicas-max-lag)` of a set, `None` when off.
///
/// Default (fields unset): on when the set has a replica (`replicas >= 2`) with one replica
/// and a lag of half of `downAfterSeconds` (at least 1 s): an old master that cannot reach
/// its replicas refuses writes (`-NOREPLICAS`) before the operator promotes one of them, so
/// those writes are refused instead of lost. `minReplicasToWrite: 0` turns it off. A set
/// without replicas never gets it (its master would refuse every write).
pub fn min_replicas(spec: &crate::crd::RedisReplicationSpec) -> Option<(u64, u64)> {
    let r = &spec.replication;
    let has_replicas = spec.replicas >= 2;
    let to_write = match r.min_replicas_to_write {
        Some(n) => u64::try_from(n).unwrap_or(0),
        None if has_replicas => 1,
        None => 0,
    };
    if to_write == 0 {
        return None;
    }
    let down_after = u64::try_from(spec.failover.down_after_seconds)
        .unwrap_or(crate::crd::DEFAULT_DOWN_AFTER_SECONDS);
    let max_lag = match r.min_replicas_max_lag {
        Some(n) => u64::try_from(n).unwrap_or(1).max(1),
        None => (down_after / 2).max(1),
    };
    Some((to_write, max_lag))
}

/// `tandem.conf`: directives owned by the operator, then the user's passthrough directives.
pub fn server_config(rr: &RedisReplication, owner: &Owner) -> String {
    let spec = &rr.spec;
    let p = &spec.persistence;
    let r = &spec.replication;
    let mut out = format!(
        "# Rendered by tandem-operator for {}/{}; edit the RedisReplication instead.\n",
        owner.namespace, owner.name
    );
    let mut line = |k: &str, v: &str| {
        out.push_str(k);
        out.push(' ');
        out.push_str(v);
        out.push('\n');
    };
    line("bind", "0.0.0.0");
    line("port", &names::PORT.to_string());
    line("protected-mode", "no");
    // Every (re)start is fenced until the operator assigns a role (no writes, no syncs
    // served), except pods whose pod-<i>.conf names an upstream: following is always safe.
    line("tandem-fenced-start", "yes");
    line("tandem-admin-port", &ADMIN_PORT.to_string());
    line("dir", DATA_DIR);
    line("appendonly", yes_no(p.appendonly));
    line("appendfsync", p.appendfsync.as_str());
    if p.save.is_empty() {
        line("save", "\"\"");
    } else {
        for rule in &p.save {
            line("save", rule);
        }
    }
    line("repl-diskless-sync", yes_no(r.diskless_sync));
    if let Some(b) = &r.backlog_size {
        line("repl-backlog-size", b);
    }
    // Always rendered (0 = off), so a running pod's file never keeps a stale value; the
    // operator also sets it on the master at runtime (scaling changes it, see `min_replicas`).
    let (to_write, max_lag) = min_replicas(spec).unwrap_or((0, DEFAULT_MAX_LAG_OFF));
    line("min-replicas-to-write", &to_write.to_string());
    line("min-replicas-max-lag", &max_lag.to_string());
    if let Some(bytes) = super::resources::derived_maxmemory(rr) {
        line("maxmemory", &bytes.to_string());
    }
    for (k, v) in super::acl_users::config_lines(rr) {
        line(k, &v);
    }
    for (k, v) in super::tls::config_lines(rr) {
        line(k, &v);
    }
    for (k, v) in &spec.config {
        line(k, v);
    }
    out
}

/// `pod-<i>.conf`: the upstream of one ordinal at start (see [`planned_upstream`]). The
/// master's file has no `replicaof`: it starts fenced and the operator assigns its role.
pub fn pod_config(rr: &RedisReplication, owner: &Owner, params: &Params, ordinal: i32) -> String {
    match planned_upstream(rr, &owner.name, ordinal) {
        // The same text with or without a recorded master, so recording the bootstrap
        // master does not rewrite the ConfigMap.
        None => format!(
            "# {} has no upstream: it starts fenced until the operator assigns its role\n",
            names::pod(&owner.name, ordinal)
        ),
        Some(up) => format!(
            "replicaof {} {}\n",
            names::pod_dns(&owner.name, &owner.namespace, &params.cluster_domain, up),
            super::tls::replication_port(&rr.spec)
        ),
    }
}

/// The container entry point; see the module docs for why it exists.
pub fn start_script(rr: &RedisReplication) -> String {
    let acl = super::acl_users::start_script_lines(rr);
    format!(
        r#"#!/bin/sh
# Assembles the runtime config on an in-memory volume so the password never appears in a
# ConfigMap, an argument list or the environment. printf is a shell builtin.
set -eu
umask 077
ord="${{HOSTNAME##*-}}"
conf="{RUN_DIR}/tandem.conf"
cat "{CONFIG_DIR}/tandem.conf" > "$conf"
if [ -f "{CONFIG_DIR}/pod-$ord.conf" ]; then
  cat "{CONFIG_DIR}/pod-$ord.conf" >> "$conf"
fi
{acl}printf 'tandem-requirepass-file "%s"\n' "{AUTH_DIR}/{REQUIREPASS_FILE}" >> "$conf"
pw="$(cat "{AUTH_DIR}/{MASTERAUTH_FILE}")"
printf 'masterauth "%s"\n' "$pw" >> "$conf"
unset pw
exec {SERVER_BIN} "$conf"
"#
    )
}

pub fn config_map(rr: &RedisReplication, owner: &Owner, params: &Params) -> ConfigMap {
    let mut data = BTreeMap::new();
    data.insert("tandem.conf".to_string(), server_config(rr, owner));
    data.insert("start.sh".to_string(), start_script(rr));
    for i in 0..rr.spec.replicas.max(1) {
        data.insert(format!("pod-{i}.conf"), pod_config(rr, owner, params, i));
    }
    ConfigMap {
        metadata: owner.child_meta(names::config_map(&owner.name)),
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// Hash of what the pods read at start that is not ordinal-specific, plus the topology
/// (which changes existing pods' upstreams). Scaling alone must not roll the pods, and
/// neither must a role change: the `pod-<i>.conf` files follow `status.master`, but a running
/// pod is repointed over RESP and only reads its file again when it restarts anyway.
/// FNV-1a: stable across Rust releases, unlike `DefaultHasher`.
pub fn config_hash(rr: &RedisReplication, cm: &ConfigMap) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    if let Some(data) = &cm.data {
        for key in ["tandem.conf", "start.sh"] {
            eat(key.as_bytes());
            let text = data.get(key).map(String::as_str).unwrap_or_default();
            // min-replicas follows the replica count and is set on the master at runtime
            // (the failover step): scaling must not roll the pods for it.
            for l in text.split_inclusive('\n') {
                if !l.starts_with("min-replicas-") {
                    eat(l.as_bytes());
                }
            }
        }
    }
    let r = &rr.spec.replication;
    eat(format!("{:?}/{}", r.topology, r.fanout).as_bytes());
    format!("{h:016x}")
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use serde_json::json;

    fn cm(spec: serde_json::Value) -> BTreeMap<String, String> {
        let r = rr("cache", "prod", spec);
        let owner = Owner::of(&r).unwrap();
        config_map(&r, &owner, &Params::default()).data.unwrap()
    }

    #[test]
    fn config_map_has_operator_directives_and_user_config() {
        let d = cm(json!({"config": {"maxmemory": "100mb"}, "persistence": {"appendonly": true}}));
        let conf = &d["tandem.conf"];
        for l in [
            "port 6379",
            "dir /data",
            "appendonly yes",
            "appendfsync everysec",
            "save \"\"",
            "maxmemory 100mb",
        ] {
            assert!(conf.lines().any(|x| x == l), "missing {l:?} in\n{conf}");
        }
    }

    #[test]
    fn star_replicas_point_at_pod_zero_dns_name() {
        let d = cm(json!({"replicas": 3}));
        assert_eq!(
            d["pod-0.conf"],
            "# cache-0 has no upstream: it starts fenced until the operator assigns its role\n"
        );
        let want = "replicaof cache-0.cache-headless.prod.svc.cluster.local 6379\n";
        assert_eq!(d["pod-1.conf"], want);
        assert_eq!(d["pod-2.conf"], want);
        assert!(!d.contains_key("pod-3.conf"));
    }

    #[test]
    fn chain_replicas_follow_their_parent_by_fanout() {
        let d = cm(json!({"replicas": 5, "replication": {"topology": "chain", "fanout": 2}}));
        let dns =
            |i: i32| format!("replicaof cache-{i}.cache-headless.prod.svc.cluster.local 6379\n");
        assert_eq!(d["pod-1.conf"], dns(0));
        assert_eq!(d["pod-2.conf"], dns(0));
        assert_eq!(d["pod-3.conf"], dns(1));
        assert_eq!(d["pod-4.conf"], dns(1));
    }

    #[test]
    fn cluster_domain_is_configurable() {
        let r = rr("cache", "prod", json!({}));
        let owner = Owner::of(&r).unwrap();
        let params = Params {
            cluster_domain: "corp.example".into(),
            ..Params::default()
        };
        assert_eq!(
            pod_config(&r, &owner, &params, 1),
            "replicaof cache-0.cache-headless.prod.svc.corp.example 6379\n"
        );
    }

    #[test]
    fn config_map_never_carries_a_password() {
        let d = cm(json!({"auth": {"secretName": "mine", "key": "pw"}}));
        for (k, v) in &d {
            // The script only references the directives; the value comes from the mounted file.
            for l in v.lines() {
                let l = l.trim_start();
                assert!(
                    !(l.starts_with("requirepass ") || l.starts_with("masterauth ")),
                    "{k} sets a password directly: {l}"
                );
            }
        }
        assert!(d["start.sh"].contains("/etc/tandem/auth/masterauth"));
        assert!(d["start.sh"]
            .contains("tandem-requirepass-file \"%s\"\\n' \"/etc/tandem/auth/requirepass\""));
        assert!(d["start.sh"].contains("umask 077"));
    }

    fn directive(conf: &str, name: &str) -> Option<String> {
        conf.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_string))
    }

    #[test]
    fn sets_with_replicas_refuse_writes_without_a_recent_replica_by_default() {
        let conf = |spec| {
            let d = cm(spec);
            let c = d["tandem.conf"].clone();
            (
                directive(&c, "min-replicas-to-write"),
                directive(&c, "min-replicas-max-lag"),
            )
        };
        let on = |n: &str, lag: &str| (Some(n.to_string()), Some(lag.to_string()));
        // Default downAfterSeconds 10: lag 5.
        assert_eq!(conf(json!({"replicas": 3})), on("1", "5"));
        assert_eq!(
            conf(json!({"replicas": 2, "failover": {"downAfterSeconds": 5}})),
            on("1", "2")
        );
        assert_eq!(
            conf(json!({"replicas": 2, "failover": {"downAfterSeconds": 1}})),
            on("1", "1"),
            "at least one second"
        );
        // No replica: off (the master would refuse every write).
        assert_eq!(conf(json!({"replicas": 1})), on("0", "10"));
        // Overrides, and 0 turns it off.
        assert_eq!(
            conf(
                json!({"replicas": 3, "replication": {"minReplicasToWrite": 2, "minReplicasMaxLag": 7}})
            ),
            on("2", "7")
        );
        assert_eq!(
            conf(json!({"replicas": 3, "replication": {"minReplicasToWrite": 0}})),
            on("0", "10")
        );
        // Each directive once: a user cannot set them through `config`.
        let d = cm(json!({"replicas": 3}));
        assert_eq!(d["tandem.conf"].matches("min-replicas-to-write").count(), 1);
        assert!(MANAGED_DIRECTIVES.contains(&"min-replicas-to-write"));
        assert!(MANAGED_DIRECTIVES.contains(&"min-replicas-max-lag"));
    }

    #[test]
    fn min_replicas_is_the_one_place_for_the_default() {
        let spec = |v| rr("c", "ns", v).spec;
        assert_eq!(min_replicas(&spec(json!({"replicas": 3}))), Some((1, 5)));
        assert_eq!(min_replicas(&spec(json!({"replicas": 1}))), None);
        assert_eq!(
            min_replicas(&spec(
                json!({"replicas": 1, "replication": {"minReplicasToWrite": 0}})
            )),
            None
        );
        assert_eq!(
            min_replicas(&spec(
                json!({"replicas": 4, "failover": {"downAfterSeconds": 30}})
            )),
            Some((1, 15))
        );
    }

    #[test]
    fn scaling_across_one_pod_does_not_roll_the_pods() {
        // 1 -> 2 pods turns min-replicas on; the operator applies it at runtime.
        let p = Params::default();
        let h = |r: &RedisReplication| config_hash(r, &config_map(r, &Owner::of(r).unwrap(), &p));
        let one = rr("cache", "prod", json!({"replicas": 1}));
        let two = rr("cache", "prod", json!({"replicas": 2}));
        assert_ne!(
            pod_files(&one)["tandem.conf"],
            pod_files(&two)["tandem.conf"]
        );
        assert_eq!(h(&one), h(&two));
    }

    #[test]
    fn config_hash_ignores_scaling_but_not_config() {
        let a = rr("cache", "prod", json!({"replicas": 3}));
        let b = rr("cache", "prod", json!({"replicas": 5}));
        let c = rr(
            "cache",
            "prod",
            json!({"replicas": 3, "config": {"maxmemory": "1mb"}}),
        );
        let p = Params::default();
        let h = |r: &RedisReplication| config_hash(r, &config_map(r, &Owner::of(r).unwrap(), &p));
        assert_eq!(h(&a), h(&b));
        assert_ne!(h(&a), h(&c));
    }

    fn with_master(spec: serde_json::Value, master: &str) -> RedisReplication {
        let mut r = rr("cache", "prod", spec);
        r.status = Some(crate::crd::RedisReplicationStatus {
            master: Some(master.to_string()),
            epoch: 3,
            ..Default::default()
        });
        r
    }

    fn pod_files(r: &RedisReplication) -> BTreeMap<String, String> {
        let owner = Owner::of(r).unwrap();
        config_map(r, &owner, &Params::default()).data.unwrap()
    }

    #[test]
    fn every_pod_starts_fenced_with_the_admin_port() {
        let d = cm(json!({}));
        let conf = &d["tandem.conf"];
        assert!(
            conf.lines().any(|l| l == "tandem-fenced-start yes"),
            "{conf}"
        );
        assert!(
            conf.lines().any(|l| l == "tandem-admin-port 9121"),
            "{conf}"
        );
        assert!(MANAGED_DIRECTIVES.contains(&"tandem-fenced-start"));
        assert!(MANAGED_DIRECTIVES.contains(&"tandem-admin-port"));
    }

    #[test]
    fn star_pods_follow_the_recorded_master_which_has_no_replicaof() {
        let d = pod_files(&with_master(json!({"replicas": 3}), "cache-2"));
        let want = "replicaof cache-2.cache-headless.prod.svc.cluster.local 6379\n";
        assert_eq!(d["pod-0.conf"], want);
        assert_eq!(d["pod-1.conf"], want);
        assert!(
            !d["pod-2.conf"].contains("replicaof"),
            "{}",
            d["pod-2.conf"]
        );
        assert!(d["pod-2.conf"].starts_with("# cache-2 has no upstream"));
        // Recording the bootstrap master changes no file (no ConfigMap write).
        assert_eq!(
            pod_files(&with_master(json!({"replicas": 3}), "cache-0")),
            pod_files(&rr("cache", "prod", json!({"replicas": 3})))
        );
    }

    #[test]
    fn chain_pods_follow_their_parent_laid_out_from_the_recorded_master() {
        // Master cache-3, fanout 2, 6 pods: 3 -> 0, 1; 0 -> 2, 4; 1 -> 5.
        let d = pod_files(&with_master(
            json!({"replicas": 6, "replication": {"topology": "chain", "fanout": 2}}),
            "cache-3",
        ));
        let dns =
            |i: i32| format!("replicaof cache-{i}.cache-headless.prod.svc.cluster.local 6379\n");
        assert_eq!(d["pod-0.conf"], dns(3));
        assert_eq!(d["pod-1.conf"], dns(3));
        assert_eq!(d["pod-2.conf"], dns(0));
        assert_eq!(d["pod-4.conf"], dns(0));
        assert_eq!(d["pod-5.conf"], dns(1));
        assert!(!d["pod-3.conf"].contains("replicaof"));
    }

    #[test]
    fn a_recorded_master_of_another_set_falls_back_to_the_bootstrap_rule() {
        let boot = pod_files(&rr("cache", "prod", json!({"replicas": 3})));
        for m in ["other-1", "cache-x", "cache"] {
            assert_eq!(
                pod_files(&with_master(json!({"replicas": 3}), m)),
                boot,
                "{m}"
            );
        }
        // A recorded master beyond the current size (mid scale-down) is still followed.
        let d = pod_files(&with_master(json!({"replicas": 2}), "cache-4"));
        assert_eq!(
            d["pod-0.conf"],
            "replicaof cache-4.cache-headless.prod.svc.cluster.local 6379\n"
        );
    }

    #[test]
    fn config_hash_ignores_role_changes() {
        let p = Params::default();
        let h = |r: &RedisReplication| config_hash(r, &config_map(r, &Owner::of(r).unwrap(), &p));
        let boot = rr("cache", "prod", json!({"replicas": 3}));
        let m1 = with_master(json!({"replicas": 3}), "cache-1");
        let m2 = with_master(json!({"replicas": 3}), "cache-2");
        assert_ne!(
            pod_files(&m1),
            pod_files(&m2),
            "the files do follow the master"
        );
        assert_eq!(h(&boot), h(&m1));
        assert_eq!(h(&m1), h(&m2));
        let changed = with_master(
            json!({"replicas": 3, "persistence": {"appendonly": true}}),
            "cache-2",
        );
        assert_ne!(h(&m2), h(&changed), "a real config change still rolls");
        let chain = with_master(
            json!({"replicas": 3, "replication": {"topology": "chain"}}),
            "cache-2",
        );
        assert_ne!(h(&m2), h(&chain), "a topology change still rolls");
    }
}
