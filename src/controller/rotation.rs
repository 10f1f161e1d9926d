//! Rotation step: carries a password change of the set's Secret out on running pods without
//! restarting them, and keeps `<name>-credentials` (see `build::credentials`), the state the
//! pods read, in step with it.
//!
//! Why a mounted file and not `ACL SETUSER default >new` on each pod: the file is the state
//! itself, so a pod that restarts in the middle of a rotation comes up accepting exactly what
//! the others accept (a runtime `ACL SETUSER` is lost on restart and would have to be re-sent
//! by the operator), and the operator needs no ACL-administration right: with
//! `spec.auth.internalUser` it connects as a least-privilege user that cannot run ACL.
//!
//! The stages, each decided from what is stored and what the pods answer (level-triggered: a
//! reconcile that stops halfway is resumed by the next one):
//! 1. **Add**: the Secret's password is not yet accepted: the file lists the old and the new
//!    one (the server re-reads it every second).
//! 2. **Converge**: every running pod accepts the new password (`AUTH` with it succeeds: the
//!    kubelet has updated the mounted file), then each pod's `masterauth` is switched by
//!    `CONFIG SET` (the next replication connection authenticates with it; the link in place
//!    stays up, so no resync), then every replica's link must be up. Then the old passwords
//!    move from `requirepass` to `retiring`.
//! 3. **Verify**: every running pod refuses the retired passwords; then `retiring` is cleared
//!    and `CredentialsRotated` turns True.
//!
//! With the internal user the replicas authenticate as `tandem-operator` with the operator's
//! generated password, which a change of the set's Secret does not touch: no `masterauth`
//! switch. With the default user disabled nobody can log in as it, so its passwords are just
//! replaced. A Secret that cannot be used (missing, missing key, empty, several lines, quotes)
//! changes nothing on the pods: the set keeps running on the stored passwords and the
//! condition says which Secret is wrong.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};

use super::observe::{pod_running, Observed};
use super::validate::{self, Invalid};
use crate::build::credentials::{self, PodCredentials, MAX_ACCEPTED};
use crate::build::secret::random_password;
use crate::crd::{RedisReplication, RedisReplicationStatus};
use crate::failover::credentials::Credentials;
use crate::failover::pods;
use crate::failover::probe::{accepts, connect_as, parse_replication, Timeouts};
use crate::failover::ObservedRole;
use crate::model::auth_secret_name;

/// The condition this step owns.
pub const CONDITION: &str = "CredentialsRotated";
pub const REASON_ROTATING: &str = "Rotating";
pub const REASON_ROTATED: &str = "Rotated";
pub const REASON_FAILED: &str = "Failed";

/// Where a rotation stands, from the stored state and the Secret's password alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Nothing stored yet (a new set): the pods start with the Secret's password.
    Fresh,
    /// The pods accept exactly the Secret's password and nothing is being retired.
    Steady,
    /// The Secret's password is not accepted yet: add it next to the old ones.
    Add,
    /// Accepted next to older passwords: wait for the pods, switch `masterauth`, drop the old.
    Converge,
    /// Old passwords dropped: wait until every pod refuses them.
    Verify,
}

/// The stage of `stored` towards `desired`.
pub fn stage(stored: Option<&PodCredentials>, desired: &str) -> Stage {
    match stored {
        None => Stage::Fresh,
        Some(s) if !s.accepted.iter().any(|p| p == desired) => Stage::Add,
        Some(s) if s.accepted.len() > 1 => Stage::Converge,
        Some(s) if !s.retiring.is_empty() => Stage::Verify,
        Some(_) => Stage::Steady,
    }
}

/// What one running pod answered in the converge or verify stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCheck {
    pub pod: String,
    /// `AUTH` with the new password succeeded.
    pub accepts_new: bool,
    /// `CONFIG SET masterauth` succeeded (or was not needed).
    pub masterauth_set: bool,
    /// Not a replica, or a replica whose link is up.
    pub link_up: bool,
    /// Every retired password was refused.
    pub refuses_retiring: bool,
    /// Why the pod could not be asked, if it could not.
    pub error: Option<String>,
}

/// The state to store and the condition to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub creds: PodCredentials,
    /// `None`: keep whatever the status shows.
    pub condition: Option<(bool, &'static str, String)>,
    /// Look again soon: the rotation is not finished.
    pub in_progress: bool,
}

/// The pure half: the next stored state from the current one, the Secret's password and,
/// in the converge and verify stages, the pods' answers. `internal` is the internal user's
/// password when the set has one (then `masterauth` is that password); `default_off` means
/// nobody can log in as the default user (so nothing can be checked, nor needs to be).
pub fn decide(
    stored: Option<&PodCredentials>,
    desired: &str,
    internal: Option<String>,
    default_off: bool,
    secret: &str,
    checks: &[PodCheck],
) -> Decision {
    let masterauth_for = |default_pw: &str| internal.clone().unwrap_or(default_pw.to_string());
    let fresh = |cond| Decision {
        creds: PodCredentials {
            accepted: vec![desired.to_string()],
            masterauth: masterauth_for(desired),
            internal: internal.clone(),
            retiring: Vec::new(),
        },
        condition: cond,
        in_progress: false,
    };
    let Some(s) = stored else {
        return fresh(None);
    };
    let rotating = |msg: String| Some((false, REASON_ROTATING, msg));
    let stage = stage(stored, desired);
    if default_off && stage != Stage::Steady {
        let msg = format!("the password from Secret {secret:?} replaced the old one (the default user is disabled)");
        return fresh(Some((true, REASON_ROTATED, msg)));
    }
    let mut next = PodCredentials {
        internal: internal.clone(),
        ..s.clone()
    };
    // The internal user's password, or (the internal user just turned off) the set's.
    if internal.is_some() || !s.accepted.contains(&s.masterauth) {
        next.masterauth = masterauth_for(desired);
    }
    match stage {
        Stage::Fresh | Stage::Steady => Decision {
            creds: next,
            condition: None,
            in_progress: false,
        },
        Stage::Add => {
            next.accepted.push(desired.to_string());
            let drop = next.accepted.len().saturating_sub(MAX_ACCEPTED);
            next.accepted.drain(..drop);
            Decision {
                creds: next,
                condition: rotating(format!(
                    "adding the new password from Secret {secret:?} next to the old one"
                )),
                in_progress: true,
            }
        }
        Stage::Converge => {
            let waiting = |what: &str, f: &dyn Fn(&PodCheck) -> bool| {
                checks.iter().find(|c| !f(c)).map(|c| {
                    let why = c
                        .error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default();
                    format!("waiting for pod {} to {what}{why}", c.pod)
                })
            };
            let wait = waiting("accept the new password", &|c| c.accepts_new)
                .or_else(|| waiting("switch masterauth", &|c| c.masterauth_set))
                .or_else(|| waiting("have its replication link up", &|c| c.link_up));
            if let Some(msg) = wait {
                if checks.iter().all(|c| c.accepts_new && c.masterauth_set) {
                    next.masterauth = masterauth_for(desired);
                }
                return Decision {
                    creds: next,
                    condition: rotating(msg),
                    in_progress: true,
                };
            }
            next.retiring = s
                .accepted
                .iter()
                .filter(|p| *p != desired)
                .cloned()
                .collect();
            next.accepted = vec![desired.to_string()];
            next.masterauth = masterauth_for(desired);
            Decision {
                creds: next,
                condition: rotating("removing the old password from every pod".to_string()),
                in_progress: true,
            }
        }
        Stage::Verify => {
            if let Some(c) = checks.iter().find(|c| !c.refuses_retiring) {
                let why = c
                    .error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Decision {
                    creds: next,
                    condition: rotating(format!(
                        "waiting for pod {} to refuse the old password{why}",
                        c.pod
                    )),
                    in_progress: true,
                };
            }
            next.retiring.clear();
            Decision {
                creds: next,
                condition: Some((
                    true,
                    REASON_ROTATED,
                    format!("every pod accepts the password from Secret {secret:?} and refuses the old one"),
                )),
                in_progress: false,
            }
        }
    }
}

/// A Secret that holds `password` under the set's key.
fn substitute(rr: &RedisReplication, password: &str) -> Secret {
    Secret {
        data: Some(
            [(
                rr.spec.auth.key.clone(),
                k8s_openapi::ByteString(password.as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..Secret::default()
    }
}

/// Guards the running set against a bad password Secret: when the set's Secret cannot be used
/// but the pods have stored passwords, the newest stored one stands in for it (so nothing
/// changes on the pods and the reconcile goes on), and the problem is returned for the
/// condition. A deleted generated Secret is re-created with the stored password, not a new one.
pub fn screen(rr: &RedisReplication, mut observed: Observed) -> (Observed, Option<Invalid>) {
    let Some(stored) = observed
        .credentials_secret
        .as_ref()
        .and_then(credentials::parse)
    else {
        return (observed, None);
    };
    let Some(newest) = stored.accepted.last().cloned() else {
        return (observed, None);
    };
    let secret = auth_secret_name(rr);
    match validate::validate(rr, &observed) {
        Err(e) if names_secret(&e, &secret) => {
            observed.auth_secret = Some(substitute(rr, &newest));
            (observed, Some(e))
        }
        _ => (observed, None),
    }
}

/// The problem is the set's own password Secret.
fn names_secret(e: &Invalid, secret: &str) -> bool {
    match e {
        Invalid::SecretMissing(s) => s == secret,
        Invalid::SecretKeyMissing { secret: s, .. } | Invalid::SecretUnusable { secret: s, .. } => {
            s == secret
        }
        _ => false,
    }
}

/// The password a generated Secret gets when it does not exist: the stored one if the pods
/// have one (the Secret was deleted), else a new random one. `None` when the Secret exists.
pub fn generated_password(observed: &Observed) -> Option<String> {
    if observed.auth_secret.is_some() {
        return None;
    }
    let stored = observed
        .credentials_secret
        .as_ref()
        .and_then(credentials::parse)
        .and_then(|c| c.accepted.last().cloned());
    Some(stored.unwrap_or_else(random_password))
}

/// What the rotation step hands on: the state to apply and the condition.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub creds: PodCredentials,
    pub condition: Option<(bool, &'static str, String)>,
    pub in_progress: bool,
}

/// The shell: reads the stored state, asks the running pods what the stage needs, decides.
/// `desired` is the set's password (validated, or generated this reconcile); `bad_secret` the
/// problem [`screen`] found.
pub async fn step(
    rr: &RedisReplication,
    observed: &Observed,
    desired: &str,
    bad_secret: Option<&Invalid>,
    cluster_domain: &str,
    timeouts: Timeouts,
) -> Rotation {
    let stored = observed
        .credentials_secret
        .as_ref()
        .and_then(credentials::parse);
    let internal = rr.spec.auth.internal_user.then(|| {
        stored
            .as_ref()
            .and_then(|s| s.internal.clone())
            .unwrap_or_else(random_password)
    });
    let default_off = rr.spec.auth.disable_default_user;
    let st = stage(stored.as_ref(), desired);
    let checks = match st {
        Stage::Converge | Stage::Verify if !default_off => {
            let s = stored.clone().unwrap_or_default();
            check_pods(
                rr,
                observed,
                &s,
                desired,
                &st,
                internal.is_none(),
                cluster_domain,
                timeouts,
            )
            .await
        }
        _ => Vec::new(),
    };
    let secret = auth_secret_name(rr);
    let d = decide(
        stored.as_ref(),
        desired,
        internal,
        default_off,
        &secret,
        &checks,
    );
    let condition = match bad_secret {
        Some(e) => Some((
            false,
            REASON_FAILED,
            format!("{e}; the pods keep their current password"),
        )),
        None => d.condition,
    };
    Rotation {
        creds: d.creds,
        condition,
        in_progress: d.in_progress,
    }
}

/// Asks every running pod with an address what the stage needs.
#[allow(clippy::too_many_arguments)]
async fn check_pods(
    rr: &RedisReplication,
    observed: &Observed,
    stored: &PodCredentials,
    desired: &str,
    stage: &Stage,
    switch_masterauth: bool,
    cluster_domain: &str,
    timeouts: Timeouts,
) -> Vec<PodCheck> {
    let set = rr.name_any();
    let running: Vec<String> = observed
        .pods
        .iter()
        .filter(|p| pod_running(p))
        .map(|p| p.name_any())
        .collect();
    let addrs = pods::addresses(&set, observed);
    let targets = pods::targets(
        &set,
        &rr.namespace().unwrap_or_default(),
        cluster_domain,
        &addrs,
    );
    let creds = pods::credentials(rr, observed);
    let checks = targets
        .iter()
        .filter(|t| !t.connect.is_empty() && running.contains(&t.name))
        .map(|t| {
            let creds = &creds;
            async move {
                match stage {
                    Stage::Verify => verify_pod(&t.name, &t.connect, stored, timeouts).await,
                    _ => {
                        let ma = switch_masterauth.then_some(desired);
                        converge_pod(&t.name, &t.connect, desired, ma, creds, timeouts).await
                    }
                }
            }
        });
    futures::future::join_all(checks).await
}

fn check(pod: &str) -> PodCheck {
    PodCheck {
        pod: pod.to_string(),
        accepts_new: false,
        masterauth_set: false,
        link_up: false,
        refuses_retiring: false,
        error: None,
    }
}

/// Converge on one pod: the new password accepted, `masterauth` switched (when the replicas
/// authenticate as the default user), the replication link up.
async fn converge_pod(
    pod: &str,
    addr: &str,
    desired: &str,
    masterauth: Option<&str>,
    creds: &Credentials,
    timeouts: Timeouts,
) -> PodCheck {
    let mut c = check(pod);
    match accepts(addr, None, desired, timeouts, None).await {
        Ok(true) => c.accepts_new = true,
        Ok(false) => return c,
        Err(e) => {
            c.error = Some(e.to_string());
            return c;
        }
    }
    let run = async {
        let mut client = connect_as(addr, creds, timeouts, None).await?;
        if let Some(pw) = masterauth {
            client.call(&["CONFIG", "SET", "masterauth", pw]).await?;
        }
        let info = client.info("replication").await?;
        Ok::<_, crate::failover::probe::ProbeError>(info)
    };
    match run.await {
        Ok(info) => {
            c.masterauth_set = true;
            let r = parse_replication(&info);
            c.link_up = r.role != ObservedRole::Replica || r.link_up;
        }
        Err(e) => c.error = Some(e.to_string()),
    }
    c
}

/// Verify on one pod: every retired password is refused.
async fn verify_pod(
    pod: &str,
    addr: &str,
    stored: &PodCredentials,
    timeouts: Timeouts,
) -> PodCheck {
    let mut c = check(pod);
    for old in &stored.retiring {
        match accepts(addr, None, old, timeouts, None).await {
            Ok(false) => {}
            Ok(true) => return c,
            Err(e) => {
                c.error = Some(e.to_string());
                return c;
            }
        }
    }
    c.refuses_retiring = true;
    c
}

/// A bad password Secret makes the set Degraded (the reason and message of the validate
/// step, naming the Secret) although everything else goes on: the pods keep the stored
/// passwords, so this is a problem to fix, not a reason to stop failing over.
pub fn mark_bad_secret(
    rr: &RedisReplication,
    st: &mut RedisReplicationStatus,
    bad: &Invalid,
    now: Time,
) {
    let previous_true = rr.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Degraded" && c.status == "True")
            .map(|c| c.last_transition_time.clone())
    });
    if let Some(c) = st.conditions.iter_mut().find(|c| c.type_ == "Degraded") {
        let others = (c.status == "True").then(|| c.message.clone());
        c.message = match others {
            Some(m) if !m.is_empty() => format!("{bad}; {m}"),
            _ => bad.to_string(),
        };
        match previous_true {
            Some(t) => c.last_transition_time = t,
            None if c.status != "True" => c.last_transition_time = now,
            None => {}
        }
        c.status = "True".to_string();
        c.reason = bad.reason().to_string();
    }
    if st.phase.as_deref() != Some(super::status::PHASE_INVALID) {
        st.phase = Some(super::status::PHASE_DEGRADED.to_string());
    }
}

/// Puts the rotation's condition into `st` (keeping the previous one when there is no news,
/// and its transition time when its status did not change) and publishes an Event when the
/// reason changed.
pub async fn record(
    recorder: Option<&Recorder>,
    rr: &RedisReplication,
    st: &mut RedisReplicationStatus,
    rotation: &Rotation,
    now: Time,
) {
    let previous = rr
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION).cloned());
    let cond = match (&rotation.condition, &previous) {
        (None, None) => return,
        (None, Some(p)) => p.clone(),
        (Some((ok, reason, message)), _) => Condition {
            type_: CONDITION.to_string(),
            status: if *ok { "True" } else { "False" }.to_string(),
            reason: reason.to_string(),
            message: message.clone(),
            observed_generation: rr.meta().generation,
            last_transition_time: previous
                .as_ref()
                .filter(|p| p.status == if *ok { "True" } else { "False" })
                .map_or(now, |p| p.last_transition_time.clone()),
        },
    };
    let changed_reason = previous.as_ref().map(|p| p.reason.as_str()) != Some(cond.reason.as_str());
    st.conditions.retain(|c| c.type_ != CONDITION);
    st.conditions.push(cond.clone());
    if !changed_reason {
        return;
    }
    let Some(recorder) = recorder else {
        return;
    };
    let ev = Event {
        type_: if cond.reason == REASON_FAILED {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: cond.reason.clone(),
        note: Some(format!("{}={}: {}", cond.type_, cond.status, cond.message)),
        action: "RotateCredentials".to_string(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &rr.object_ref(&())).await {
        tracing::warn!(error = %e, name = %rr.name_any(), "failed to publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use k8s_openapi::ByteString;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn stored(accepted: &[&str], masterauth: &str, retiring: &[&str]) -> PodCredentials {
        PodCredentials {
            accepted: accepted.iter().map(|s| s.to_string()).collect(),
            masterauth: masterauth.to_string(),
            internal: None,
            retiring: retiring.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn ok(pod: &str) -> PodCheck {
        PodCheck {
            pod: pod.to_string(),
            accepts_new: true,
            masterauth_set: true,
            link_up: true,
            refuses_retiring: true,
            error: None,
        }
    }

    fn run(s: Option<&PodCredentials>, desired: &str, checks: &[PodCheck]) -> Decision {
        decide(s, desired, None, false, "pw", checks)
    }

    #[test]
    fn a_new_set_starts_with_the_secret_password_and_no_condition() {
        let d = run(None, "p1", &[]);
        assert_eq!(d.creds, stored(&["p1"], "p1", &[]));
        assert_eq!(d.condition, None);
        assert!(!d.in_progress);
        // Nothing to do: the same state, no news.
        let again = run(Some(&d.creds), "p1", &[ok("c-0")]);
        assert_eq!(again.creds, d.creds);
        assert_eq!(again.condition, None);
    }

    #[test]
    fn a_changed_password_is_added_next_to_the_old_one_first() {
        let s = stored(&["old"], "old", &[]);
        assert_eq!(stage(Some(&s), "new"), Stage::Add);
        let d = run(Some(&s), "new", &[]);
        assert_eq!(d.creds, stored(&["old", "new"], "old", &[]));
        let (status, reason, msg) = d.condition.unwrap();
        assert_eq!((status, reason), (false, REASON_ROTATING));
        assert!(msg.contains("Secret \"pw\""), "{msg}");
        assert!(d.in_progress);
    }

    #[test]
    fn the_old_password_stays_until_every_pod_accepts_the_new_one_and_links_are_up() {
        let s = stored(&["old", "new"], "old", &[]);
        let mut lagging = ok("c-2");
        lagging.accepts_new = false;
        lagging.masterauth_set = false;
        let d = run(Some(&s), "new", &[ok("c-0"), ok("c-1"), lagging]);
        assert_eq!(d.creds, s, "nothing removed, masterauth not switched");
        let msg = d.condition.unwrap().2;
        assert!(
            msg.contains("c-2") && msg.contains("accept the new password"),
            "{msg}"
        );

        // Every pod switched masterauth, one link still down: the new masterauth is stored
        // (a pod restarting now uses it), the old password still accepted.
        let mut down = ok("c-1");
        down.link_up = false;
        let d = run(Some(&s), "new", &[ok("c-0"), down]);
        assert_eq!(d.creds, stored(&["old", "new"], "new", &[]));
        assert!(d.condition.unwrap().2.contains("c-1"));

        let d = run(Some(&s), "new", &[ok("c-0"), ok("c-1")]);
        assert_eq!(d.creds, stored(&["new"], "new", &["old"]));
        assert!(d.in_progress);
    }

    #[test]
    fn rotated_only_once_every_pod_refuses_the_old_password() {
        let s = stored(&["new"], "new", &["old"]);
        assert_eq!(stage(Some(&s), "new"), Stage::Verify);
        let mut still = ok("c-1");
        still.refuses_retiring = false;
        let d = run(Some(&s), "new", &[ok("c-0"), still]);
        assert_eq!(d.creds, s);
        assert!(d.in_progress);
        assert!(d
            .condition
            .unwrap()
            .2
            .contains("c-1 to refuse the old password"));
        let d = run(Some(&s), "new", &[ok("c-0"), ok("c-1")]);
        assert_eq!(d.creds, stored(&["new"], "new", &[]));
        assert_eq!(
            d.condition.as_ref().map(|c| (c.0, c.1)),
            Some((true, REASON_ROTATED))
        );
        assert!(!d.in_progress);
    }

    #[test]
    fn a_password_changed_again_mid_rotation_keeps_the_newest_ones() {
        let s = stored(&["a", "b", "c"], "a", &[]);
        let d = run(Some(&s), "d", &[]);
        assert_eq!(d.creds.accepted, ["b", "c", "d"]);
    }

    #[test]
    fn with_the_internal_user_masterauth_is_its_password_throughout() {
        let s = PodCredentials {
            internal: Some("int".into()),
            ..stored(&["old"], "int", &[])
        };
        for checks in [vec![], vec![ok("c-0")]] {
            let d = decide(Some(&s), "new", Some("int".into()), false, "pw", &checks);
            assert_eq!(d.creds.masterauth, "int");
        }
        let fresh = decide(None, "p", Some("int".into()), false, "pw", &[]);
        assert_eq!(fresh.creds.masterauth, "int");
        assert_eq!(fresh.creds.internal.as_deref(), Some("int"));
        // Turned off again: the set's password.
        let off = decide(Some(&s), "old", None, false, "pw", &[]);
        assert_eq!(off.creds.masterauth, "old");
        assert_eq!(off.creds.internal, None);
    }

    #[test]
    fn a_disabled_default_user_gets_the_new_password_at_once() {
        let s = stored(&["old"], "int", &[]);
        let d = decide(Some(&s), "new", Some("int".into()), true, "pw", &[]);
        assert_eq!(d.creds.accepted, ["new"]);
        assert!(d.creds.retiring.is_empty());
        assert_eq!(d.condition.map(|c| c.0), Some(true));
    }

    fn secret(key: &str, value: &str) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    fn creds_secret(accepted: &str) -> Secret {
        secret(credentials::REQUIREPASS_KEY, accepted)
    }

    #[test]
    fn a_bad_new_secret_keeps_the_stored_password_and_names_the_secret() {
        let r = rr("cache", "prod", json!({"auth": {"secretName": "pw"}}));
        for bad in [
            secret("password", "two\nlines"),
            secret("password", ""),
            secret("other", "x"),
        ] {
            let obs = Observed {
                auth_secret: Some(bad),
                credentials_secret: Some(creds_secret("old\n")),
                ..Observed::default()
            };
            let (obs, problem) = screen(&r, obs);
            let problem = problem.expect("the bad Secret is reported");
            assert!(problem.to_string().contains("\"pw\""), "{problem}");
            assert!(validate::validate(&r, &obs).is_ok(), "the set goes on");
            assert_eq!(pods::password(&r, &obs).as_deref(), Some("old"));
        }
        // Missing altogether.
        let obs = Observed {
            credentials_secret: Some(creds_secret("old\n")),
            ..Observed::default()
        };
        let (obs, problem) = screen(&r, obs);
        assert_eq!(problem, Some(Invalid::SecretMissing("pw".into())));
        assert_eq!(pods::password(&r, &obs).as_deref(), Some("old"));
        // Without stored passwords (a new set) the spec stays invalid.
        let obs = Observed {
            auth_secret: Some(secret("password", "")),
            ..Observed::default()
        };
        let (obs, problem) = screen(&r, obs);
        assert_eq!(problem, None);
        assert!(validate::validate(&r, &obs).is_err());
    }

    #[test]
    fn a_deleted_generated_secret_comes_back_with_the_stored_password() {
        let obs = Observed {
            credentials_secret: Some(creds_secret("old\nnew\n")),
            ..Observed::default()
        };
        assert_eq!(generated_password(&obs).as_deref(), Some("new"));
        let generated = generated_password(&Observed::default()).unwrap();
        assert_eq!(generated.len(), 32);
        let exists = Observed {
            auth_secret: Some(secret("password", "x")),
            ..Observed::default()
        };
        assert_eq!(generated_password(&exists), None);
    }
}
