//! End-to-end credentials through `tandem-operator local` (issue 18, operator items 6 and 8):
//! a password changed in its Secret is rotated on running pods without a restart or a full
//! resync and the old one is refused afterwards; an application user reaches only its keys;
//! with the internal user and the default user disabled the set comes up and fails over.
//!
//! Needs `cargo build -p tandem-server` first (nextest `--workspace` builds it).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::local::{Local, Reply, Resp};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, Patch, PatchParams};

const NS: &str = "default";

/// Connects to `addr` and sends `AUTH [user] password`; the reply (or the I/O error).
fn auth(addr: &str, user: Option<&str>, password: &str) -> Result<Reply, String> {
    let mut c = Resp::connect(addr).map_err(|e| e.to_string())?;
    let mut args = vec!["AUTH"];
    args.extend(user);
    args.push(password);
    c.cmd(&args).map_err(|e| e.to_string())
}

fn accepted(r: &Result<Reply, String>) -> bool {
    matches!(r, Ok(Reply::Simple(s)) if s == "OK")
}

fn refused(r: &Result<Reply, String>) -> bool {
    matches!(r, Ok(Reply::Error(e)) if e.starts_with("WRONGPASS"))
}

/// An authenticated connection, or panic with what the server said.
fn login(addr: &str, user: Option<&str>, password: &str) -> Resp {
    let mut c = Resp::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let mut args = vec!["AUTH"];
    args.extend(user);
    args.push(password);
    let r = c.cmd(&args).expect("AUTH");
    assert_eq!(r, Reply::Simple("OK".into()), "AUTH at {addr}");
    c
}

/// `INFO <section>` as a field map.
fn info(c: &mut Resp, section: &str) -> BTreeMap<String, String> {
    c.cmd(&["INFO", section])
        .expect("INFO")
        .text()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

async fn secret_value(l: &Local, name: &str, key: &str) -> String {
    let s: Secret = Api::namespaced(l.client.clone(), NS)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("Secret {name}: {e}"));
    let v = s
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("no {key} in Secret {name}"));
    String::from_utf8_lossy(&v.0).into_owned()
}

/// Pod name -> (restart count, controller-revision-hash label).
async fn restarts_and_revisions(l: &Local, set: &str) -> BTreeMap<String, (i32, String)> {
    l.pods(NS, set)
        .await
        .into_iter()
        .map(|p: Pod| {
            let restarts = p
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|cs| cs.iter().map(|c| c.restart_count).sum())
                .unwrap_or(0);
            let rev = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("controller-revision-hash").cloned())
                .unwrap_or_default();
            (p.metadata.name.unwrap_or_default(), (restarts, rev))
        })
        .collect()
}

async fn update_revision(l: &Local, set: &str) -> Option<String> {
    let sts: StatefulSet = Api::namespaced(l.client.clone(), NS).get(set).await.ok()?;
    sts.status?.update_revision
}

/// Pod name -> `ip:6379` of every pod of `set`.
async fn pod_addrs(l: &Local, set: &str, n: i32) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for i in 0..n {
        let pod = format!("{set}-{i}");
        let ip = l.pod_ip(NS, &pod).await;
        out.insert(pod, format!("{ip}:6379"));
    }
    out
}

/// Sets the Secret's `password` key, with kubectl when installed (as a user would), else
/// through the API.
async fn patch_password(l: &Local, secret: &str, password: &str) {
    let body = serde_json::json!({"stringData": {"password": password}});
    if let Some((ok, out, err)) = l
        .kubectl(&[
            "-n",
            NS,
            "patch",
            "secret",
            secret,
            "--type=merge",
            "-p",
            &body.to_string(),
        ])
        .await
    {
        assert!(ok, "kubectl patch secret: {out}{err}");
        return;
    }
    Api::<Secret>::namespaced(l.client.clone(), NS)
        .patch(secret, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .expect("patch the Secret");
}

const ROTATE: &str = "apiVersion: v1
kind: Secret
metadata:
  name: cache-pw
stringData:
  password: first-password
---
apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: cache
spec:
  replicas: 3
  auth:
    secretName: cache-pw
  failover:
    downAfterSeconds: 5
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_is_rotated_without_restarts_or_resync_and_the_old_one_is_refused() {
    let l = Local::start("auth-rotate", &[ROTATE]).await;
    l.wait_ready(NS, "cache", 3, Duration::from_secs(60)).await;
    let (old, new) = ("first-password", "second-password");
    let pods = pod_addrs(&l, "cache", 3).await;
    let service = l
        .endpoint(&format!("{NS}/cache-master"), Duration::from_secs(30))
        .await
        .to_string();
    let before = l.status(NS, "cache").await.unwrap().status.unwrap();
    let master = before.master.clone().expect("a recorded master");
    let restarts = restarts_and_revisions(&l, "cache").await;
    let revision = update_revision(&l, "cache").await;
    assert!(revision.is_some(), "the StatefulSet reports its revision");
    let mut m = l.conn_retry(&service, old).await;
    assert_eq!(
        m.cmd(&["SET", "before", "1"]).unwrap(),
        Reply::Simple("OK".into())
    );
    let sync_full = info(&mut m, "stats")["sync_full"].clone();
    let mut replids = BTreeMap::new();
    for (pod, addr) in &pods {
        if *pod != master {
            let r = login(addr, None, old).info_replication();
            assert_eq!(r["master_link_status"], "up", "{pod}");
            replids.insert(pod.clone(), r["master_replid"].clone());
        }
    }

    let patched = Instant::now();
    patch_password(&l, "cache-pw", new).await;
    let cond = l
        .wait_for(
            "CredentialsRotated=True",
            Duration::from_secs(60),
            || async {
                let c = l.condition(NS, "cache", "CredentialsRotated").await?;
                (c["status"] == "True" && c["reason"] == "Rotated").then_some(c)
            },
        )
        .await;
    eprintln!("rotation took {:?}: {}", patched.elapsed(), cond["message"]);

    for (pod, addr) in &pods {
        assert!(
            accepted(&auth(addr, None, new)),
            "{pod} accepts the new password"
        );
        assert!(
            refused(&auth(addr, None, old)),
            "{pod} refuses the old password"
        );
    }
    assert!(
        accepted(&auth(&service, None, new)),
        "the Service accepts the new password"
    );
    assert!(
        refused(&auth(&service, None, old)),
        "the Service refuses the old password"
    );
    // No restart, no new pod template, no full resync, the same replication ids, links up.
    assert_eq!(restarts_and_revisions(&l, "cache").await, restarts);
    assert_eq!(update_revision(&l, "cache").await, revision);
    let mut m = login(&service, None, new);
    assert_eq!(info(&mut m, "stats")["sync_full"], sync_full);
    assert_eq!(
        m.cmd(&["GET", "before"]).unwrap(),
        Reply::Bulk(Some(b"1".to_vec()))
    );
    for (pod, replid) in &replids {
        let r = login(&pods[pod], None, new).info_replication();
        assert_eq!(&r["master_replid"], replid, "{pod} kept its replication id");
        assert_eq!(r["master_link_status"], "up", "{pod}");
    }
    // The operator never lost the master meanwhile.
    let after = l.status(NS, "cache").await.unwrap().status.unwrap();
    assert_eq!((after.master, after.epoch), (Some(master), before.epoch));
    assert_eq!(
        l.condition(NS, "cache", "Ready").await.unwrap()["status"],
        "True"
    );
    let reasons = l.event_reasons(NS).await;
    assert!(
        reasons.iter().any(|r| r == "Rotating") && reasons.iter().any(|r| r == "Rotated"),
        "{reasons:?}"
    );

    // A bad new Secret (two lines) changes nothing on the pods and is named in the condition.
    patch_password(&l, "cache-pw", "bad\npassword").await;
    let cond = l
        .wait_for(
            "CredentialsRotated=False",
            Duration::from_secs(30),
            || async {
                let c = l.condition(NS, "cache", "CredentialsRotated").await?;
                (c["status"] == "False" && c["reason"] == "Failed").then_some(c)
            },
        )
        .await;
    assert!(
        cond["message"]
            .as_str()
            .unwrap_or("")
            .contains("\"cache-pw\""),
        "{cond}"
    );
    for addr in pods.values() {
        assert!(accepted(&auth(addr, None, new)));
    }
}

/// Redis 7.0.15's refusal of a key outside the user's patterns.
const NOPERM_KEY: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";

const MIDWAY: &str = "apiVersion: v1
kind: Secret
metadata:
  name: mid-pw
stringData:
  password: first-password
---
apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: mid
spec:
  replicas: 2
  auth:
    secretName: mid-pw
";

/// A replica that restarts in the middle of a rotation comes up with the passwords of the
/// stage the set is in (the mounted credentials file), follows its master again, and ends up
/// on the new password like the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarted_mid_rotation_ends_on_the_new_password() {
    let l = Local::start("auth-midway", &[MIDWAY]).await;
    l.wait_ready(NS, "mid", 2, Duration::from_secs(60)).await;
    let (old, new) = ("first-password", "second-password");
    let master = l
        .status(NS, "mid")
        .await
        .unwrap()
        .status
        .unwrap()
        .master
        .unwrap();
    let replica = if master == "mid-0" { "mid-1" } else { "mid-0" };
    let restarts = restarts_and_revisions(&l, "mid").await[replica].0;

    patch_password(&l, "mid-pw", new).await;
    l.kill_pod_process(NS, replica);
    l.wait_for(
        "CredentialsRotated=True",
        Duration::from_secs(60),
        || async {
            let c = l.condition(NS, "mid", "CredentialsRotated").await?;
            (c["status"] == "True" && c["reason"] == "Rotated").then_some(())
        },
    )
    .await;
    assert!(
        restarts_and_revisions(&l, "mid").await[replica].0 > restarts,
        "{replica} did restart"
    );
    l.wait_ready(NS, "mid", 2, Duration::from_secs(30)).await;
    let pods = pod_addrs(&l, "mid", 2).await;
    for (pod, addr) in &pods {
        assert!(
            accepted(&auth(addr, None, new)),
            "{pod} accepts the new password"
        );
        assert!(
            refused(&auth(addr, None, old)),
            "{pod} refuses the old password"
        );
    }
    let r = login(&pods[replica], None, new).info_replication();
    assert_eq!(r["master_link_status"], "up", "{r:?}");
}

const USERS: &str = "apiVersion: v1
kind: Secret
metadata:
  name: app-pw
stringData:
  password: app-secret
---
apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: users
spec:
  replicas: 2
  auth:
    users:
    - name: app
      passwordSecret:
        name: app-pw
      rules: \"~app:* +@all\"
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_user_reaches_only_its_key_pattern_through_the_service() {
    let l = Local::start("auth-users", &[USERS]).await;
    l.wait_ready(NS, "users", 2, Duration::from_secs(60)).await;
    let service = l
        .endpoint(&format!("{NS}/users-master"), Duration::from_secs(30))
        .await
        .to_string();
    let mut c = login(&service, Some("app"), "app-secret");
    assert_eq!(c.cmd(&["ACL", "WHOAMI"]).unwrap().text(), "app");
    assert_eq!(
        c.cmd(&["SET", "app:1", "v"]).unwrap(),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        c.cmd(&["GET", "app:1"]).unwrap(),
        Reply::Bulk(Some(b"v".to_vec()))
    );
    assert_eq!(
        c.cmd(&["SET", "other:1", "v"]).unwrap(),
        Reply::Error(NOPERM_KEY.into())
    );
    assert_eq!(
        c.cmd(&["GET", "other:1"]).unwrap(),
        Reply::Error(NOPERM_KEY.into())
    );
    assert!(refused(&auth(&service, Some("app"), "wrong")));

    // A new password in the user's Secret reaches the running pods (their ACL file is
    // re-read), with no restart.
    let restarts = restarts_and_revisions(&l, "users").await;
    patch_password(&l, "app-pw", "app-secret-2").await;
    let changed = Instant::now();
    l.wait_for("the new app password", Duration::from_secs(30), || async {
        accepted(&auth(&service, Some("app"), "app-secret-2")).then_some(())
    })
    .await;
    eprintln!(
        "application user's new password served after {:?}",
        changed.elapsed()
    );
    for addr in pod_addrs(&l, "users", 2).await.values() {
        l.wait_for("every pod", Duration::from_secs(10), || async {
            accepted(&auth(addr, Some("app"), "app-secret-2")).then_some(())
        })
        .await;
        assert!(refused(&auth(addr, Some("app"), "app-secret")));
    }
    assert_eq!(restarts_and_revisions(&l, "users").await, restarts);
}

const INTERNAL: &str = "apiVersion: v1
kind: Secret
metadata:
  name: app-pw
stringData:
  password: app-secret
---
apiVersion: tandem.dev/v1alpha1
kind: RedisReplication
metadata:
  name: locked
spec:
  replicas: 3
  failover:
    downAfterSeconds: 5
  auth:
    internalUser: true
    disableDefaultUser: true
    users:
    - name: app
      passwordSecret:
        name: app-pw
      rules: \"~* +@all\"
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_internal_user_and_no_default_user_the_set_is_ready_and_fails_over() {
    let l = Local::start("auth-internal", &[INTERNAL]).await;
    l.wait_ready(NS, "locked", 3, Duration::from_secs(60)).await;
    let set_password = l.password(NS, "locked").await;
    let internal = secret_value(&l, "locked-credentials", "internal").await;
    assert_ne!(
        internal, set_password,
        "the internal user has its own password"
    );
    let pods = pod_addrs(&l, "locked", 3).await;
    for (pod, addr) in &pods {
        // The default user is off; the replicas follow as the internal user.
        assert!(refused(&auth(addr, None, &set_password)), "{pod}");
        let mut c = login(addr, Some("tandem-operator"), &internal);
        let r = c.info_replication();
        if r["role"] == "slave" {
            assert_eq!(r["master_link_status"], "up", "{pod}");
        }
        // Least privilege: no data access.
        assert!(
            matches!(c.cmd(&["GET", "k"]), Ok(Reply::Error(e)) if e.starts_with("NOPERM")),
            "{pod}"
        );
    }
    let service = l
        .endpoint(&format!("{NS}/locked-master"), Duration::from_secs(30))
        .await
        .to_string();
    let mut c = login(&service, Some("app"), "app-secret");
    assert_eq!(
        c.cmd(&["SET", "before", "1"]).unwrap(),
        Reply::Simple("OK".into())
    );
    assert_eq!(c.cmd(&["WAIT", "2", "5000"]).unwrap(), Reply::Int(2));

    let before = l.status(NS, "locked").await.unwrap().status.unwrap();
    let old_master = before.master.clone().unwrap();
    let killed = Instant::now();
    l.kill_pod_process(NS, &old_master);
    let after = l
        .wait_for("a new master", Duration::from_secs(45), || async {
            let st = l.status(NS, "locked").await?.status?;
            (st.epoch > before.epoch && st.master.as_deref() != Some(old_master.as_str()))
                .then_some(st)
        })
        .await;
    let got = l
        .wait_for(
            "the data through the Service",
            Duration::from_secs(30),
            || async {
                let mut c = Resp::connect(&service).ok()?;
                c.cmd(&["AUTH", "app", "app-secret"]).ok()?;
                match c.cmd(&["SET", "after", "1"]).ok()? {
                    Reply::Simple(s) if s == "OK" => c.cmd(&["GET", "before"]).ok(),
                    _ => None,
                }
            },
        )
        .await;
    eprintln!(
        "failover to {:?} and a write through the Service after {:?}",
        after.master,
        killed.elapsed()
    );
    assert_eq!(got, Reply::Bulk(Some(b"1".to_vec())));
}
