//! The server ConfigMap: `tandem.conf` (operator-owned directives + the user's passthrough
//! config), one `pod-<i>.conf` per ordinal with its bootstrap role, and `start.sh`.
//!
//! Password handling (why a start script): the server reads `requirepass`/`masterauth` from its
//! config file, and the password must never sit in a ConfigMap, the command line or an env
//! literal. The Secret is mounted as a file; `start.sh` (run by `/bin/sh`) concatenates the
//! ConfigMap files and the password into `/run/tandem/tandem.conf` on an in-memory emptyDir with
//! umask 077, using the shell's builtin `printf` (no child process sees the password in argv),
//! then `exec`s the server on that file.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{Owner, Params};
use crate::crd::{RedisReplication, Topology};
use crate::names;

pub const CONFIG_DIR: &str = "/etc/tandem/config";
pub const AUTH_DIR: &str = "/etc/tandem/auth";
pub const RUN_DIR: &str = "/run/tandem";
pub const DATA_DIR: &str = "/data";
pub const SERVER_BIN: &str = "/usr/local/bin/tandem-server";
/// File name of the password inside the mounted Secret volume.
pub const PASSWORD_FILE: &str = "password";

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
];

/// Ordinal of the pod that pod `ordinal` replicates from, by the bootstrap rule
/// (pod 0 is the master). `None` for the master.
pub fn upstream_ordinal(topology: Topology, fanout: i32, ordinal: i32) -> Option<i32> {
    if ordinal <= 0 {
        return None;
    }
    match topology {
        Topology::Star => Some(0),
        Topology::Chain => Some((ordinal - 1) / fanout.max(1)),
    }
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
    if let Some(n) = r.min_replicas_to_write {
        line("min-replicas-to-write", &n.to_string());
    }
    if let Some(n) = r.min_replicas_max_lag {
        line("min-replicas-max-lag", &n.to_string());
    }
    for (k, v) in &spec.config {
        line(k, v);
    }
    out
}

/// `pod-<i>.conf`: the bootstrap role of one ordinal.
pub fn pod_config(rr: &RedisReplication, owner: &Owner, params: &Params, ordinal: i32) -> String {
    let r = &rr.spec.replication;
    match upstream_ordinal(r.topology, r.fanout, ordinal) {
        None => format!(
            "# {} bootstraps as the master\n",
            names::pod(&owner.name, ordinal)
        ),
        Some(up) => format!(
            "replicaof {} {}\n",
            names::pod_dns(&owner.name, &owner.namespace, &params.cluster_domain, up),
            names::PORT
        ),
    }
}

/// The container entry point; see the module docs for why it exists.
pub fn start_script() -> String {
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
pw="$(cat "{AUTH_DIR}/{PASSWORD_FILE}")"
printf 'requirepass "%s"\nmasterauth "%s"\n' "$pw" "$pw" >> "$conf"
unset pw
exec {SERVER_BIN} "$conf"
"#
    )
}

pub fn config_map(rr: &RedisReplication, owner: &Owner, params: &Params) -> ConfigMap {
    let mut data = BTreeMap::new();
    data.insert("tandem.conf".to_string(), server_config(rr, owner));
    data.insert("start.sh".to_string(), start_script());
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
/// (which changes existing pods' upstreams). Scaling alone must not roll the pods.
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
            eat(data.get(key).map(String::as_bytes).unwrap_or_default());
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
        assert_eq!(d["pod-0.conf"], "# cache-0 bootstraps as the master\n");
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
        assert!(d["start.sh"].contains("/etc/tandem/auth/password"));
        assert!(d["start.sh"].contains("umask 077"));
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
}
