//! Status step: compute the status from what was observed (pure), then patch it with
//! server-side apply only when it changed, and emit Events only on condition transitions.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};

use super::observe::Observed;
use super::roles::{bootstrap_role, ordinal};
use super::validate::Invalid;
use crate::build::config::upstream_ordinal;
use crate::build::Params;
use crate::crd::{Endpoints, PodReplicationStatus, RedisReplication, RedisReplicationStatus};
use crate::names;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("failed to patch status of {name:?}: {source}")]
    Patch {
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub const PHASE_PROVISIONING: &str = "Provisioning";
pub const PHASE_READY: &str = "Ready";
pub const PHASE_DEGRADED: &str = "Degraded";
pub const PHASE_INVALID: &str = "Invalid";

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn cond(
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: now.clone(),
    }
}

/// The status the resource should show. `now` is only used for conditions whose status
/// changed; unchanged conditions keep their transition time so an unchanged world yields an
/// identical status (and no write).
pub fn compute(
    rr: &RedisReplication,
    observed: &Observed,
    invalid: Option<&Invalid>,
    params: &Params,
    now: Time,
) -> RedisReplicationStatus {
    let name = rr.name_any();
    let ns = rr.namespace().unwrap_or_default();
    let generation = rr.meta().generation;
    let replicas = rr.spec.replicas;
    let previous = rr.status.clone().unwrap_or_default();
    let sts_status = observed
        .statefulset
        .as_ref()
        .and_then(|s| s.status.as_ref());
    let ready_replicas = sts_status.and_then(|s| s.ready_replicas).unwrap_or(0);
    let updated = sts_status.and_then(|s| s.updated_replicas).unwrap_or(0);
    let sts_gen_seen = observed
        .statefulset
        .as_ref()
        .map(|s| s.status.as_ref().and_then(|st| st.observed_generation) >= s.metadata.generation)
        .unwrap_or(false);

    let master_name = names::pod(&name, 0);
    let r = &rr.spec.replication;
    let pods: Vec<PodReplicationStatus> = observed
        .pods
        .iter()
        .filter_map(|p| {
            let pn = p.name_any();
            let ord = ordinal(&name, &pn)?;
            Some(PodReplicationStatus {
                role: bootstrap_role(ord).to_string(),
                ready: pod_ready(p),
                upstream: upstream_ordinal(r.topology, r.fanout, ord)
                    .map(|u| names::pod_dns(&name, &ns, &params.cluster_domain, u)),
                name: pn,
                ..PodReplicationStatus::default()
            })
        })
        .collect();
    let master_ready = pods.iter().any(|p| p.name == master_name && p.ready);
    let all_ready = ready_replicas >= replicas;
    let rolling =
        observed.statefulset.is_none() || !sts_gen_seen || updated < replicas || !all_ready;

    let (ready_c, degraded_c, progressing_c, phase) = match invalid {
        Some(inv) => (
            cond(
                "Ready",
                false,
                inv.reason(),
                inv.to_string(),
                generation,
                &now,
            ),
            cond(
                "Degraded",
                true,
                inv.reason(),
                inv.to_string(),
                generation,
                &now,
            ),
            cond(
                "Progressing",
                false,
                inv.reason(),
                "waiting for the spec or the Secret to be fixed".to_string(),
                generation,
                &now,
            ),
            match inv.reason() {
                "InvalidSpec" => PHASE_INVALID,
                _ => PHASE_DEGRADED,
            },
        ),
        None => (
            if all_ready {
                cond(
                    "Ready",
                    true,
                    "AllReplicasReady",
                    format!("{ready_replicas}/{replicas} pods ready"),
                    generation,
                    &now,
                )
            } else {
                cond(
                    "Ready",
                    false,
                    "ReplicasNotReady",
                    format!("{ready_replicas}/{replicas} pods ready"),
                    generation,
                    &now,
                )
            },
            cond(
                "Degraded",
                false,
                "AsExpected",
                "no problem detected".to_string(),
                generation,
                &now,
            ),
            if rolling {
                cond(
                    "Progressing",
                    true,
                    "RollingOut",
                    format!("{updated}/{replicas} pods updated, {ready_replicas} ready"),
                    generation,
                    &now,
                )
            } else {
                cond(
                    "Progressing",
                    false,
                    "Reconciled",
                    "all pods run the current spec".to_string(),
                    generation,
                    &now,
                )
            },
            if all_ready {
                PHASE_READY
            } else {
                PHASE_PROVISIONING
            },
        ),
    };
    let available = if master_ready {
        cond(
            "Available",
            true,
            "MasterReady",
            format!("{master_name} is ready"),
            generation,
            &now,
        )
    } else {
        cond(
            "Available",
            false,
            "MasterNotReady",
            format!("{master_name} is not ready"),
            generation,
            &now,
        )
    };
    let in_sync = Condition {
        type_: "ReplicasInSync".to_string(),
        status: "Unknown".to_string(),
        reason: "NotObserved".to_string(),
        message: "replication offsets are not read by this operator version".to_string(),
        observed_generation: generation,
        last_transition_time: now.clone(),
    };

    let conditions = [ready_c, available, in_sync, progressing_c, degraded_c]
        .into_iter()
        .map(|mut c| {
            if let Some(old) = previous.conditions.iter().find(|o| o.type_ == c.type_) {
                if old.status == c.status {
                    c.last_transition_time = old.last_transition_time.clone();
                }
            }
            c
        })
        .collect();

    let svc = |s: String| {
        format!(
            "{}:{}",
            names::service_dns(&s, &ns, &params.cluster_domain),
            names::PORT
        )
    };
    RedisReplicationStatus {
        observed_generation: generation,
        phase: Some(phase.to_string()),
        master: Some(master_name),
        epoch: previous.epoch,
        ready_replicas,
        pods,
        failover_in_progress: previous.failover_in_progress.clone(),
        last_failover: previous.last_failover,
        endpoints: Some(Endpoints {
            master: svc(names::master_service(&name)),
            replicas: svc(names::replicas_service(&name)),
            headless: svc(names::headless_service(&name)),
        }),
        conditions,
    }
}

/// Conditions whose status differs from the previous status (new ones count as transitions).
pub fn transitions<'a>(
    old: &RedisReplicationStatus,
    new: &'a RedisReplicationStatus,
) -> Vec<&'a Condition> {
    new.conditions
        .iter()
        .filter(|c| {
            !old.conditions
                .iter()
                .any(|o| o.type_ == c.type_ && o.status == c.status && o.reason == c.reason)
        })
        .collect()
}

/// Writes `status` if it differs from what the resource shows; publishes Events for transitions.
pub async fn write(
    client: &Client,
    recorder: Option<&Recorder>,
    rr: &RedisReplication,
    status: RedisReplicationStatus,
) -> Result<(), StatusError> {
    let old = rr.status.clone().unwrap_or_default();
    if old == status {
        return Ok(());
    }
    let name = rr.name_any();
    let api: Api<RedisReplication> =
        Api::namespaced(client.clone(), &rr.namespace().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": RedisReplication::api_version(&()),
        "kind": RedisReplication::kind(&()),
        "status": status,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(names::FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| StatusError::Patch {
        name: name.clone(),
        source,
    })?;
    if let Some(recorder) = recorder {
        let reference = rr.object_ref(&());
        for c in transitions(&old, &status) {
            // Only the interesting transitions: becoming Ready / Available, becoming Degraded,
            // or losing Ready / Available (not merely "not ready yet" on creation).
            let was_true = old
                .conditions
                .iter()
                .any(|o| o.type_ == c.type_ && o.status == "True");
            let warn = (c.type_ == "Degraded" && c.status == "True")
                || ((c.type_ == "Ready" || c.type_ == "Available")
                    && c.status == "False"
                    && was_true);
            let interesting =
                warn || ((c.type_ == "Ready" || c.type_ == "Available") && c.status == "True");
            if !interesting {
                continue;
            }
            let ev = Event {
                type_: if warn {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: c.reason.clone(),
                note: Some(format!("{}={}: {}", c.type_, c.status, c.message)),
                action: "Reconcile".to_string(),
                secondary: None,
            };
            // Events are best effort: a failed Event must not fail the reconcile.
            if let Err(e) = recorder.publish(&ev, &reference).await {
                tracing::warn!(error = %e, name = %name, "failed to publish event");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use serde_json::json;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn pod(name: &str, ready: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        p
    }

    fn sts(ready: i32, updated: i32) -> StatefulSet {
        let mut s = StatefulSet::default();
        s.metadata.generation = Some(1);
        s.status = Some(StatefulSetStatus {
            ready_replicas: Some(ready),
            updated_replicas: Some(updated),
            observed_generation: Some(1),
            ..StatefulSetStatus::default()
        });
        s
    }

    fn find<'a>(s: &'a RedisReplicationStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn all_pods_ready_gives_ready_phase_and_conditions() {
        let r = rr("c", "ns", json!({"replicas": 2}));
        let obs = Observed {
            statefulset: Some(sts(2, 2)),
            pods: vec![pod("c-0", true), pod("c-1", true)],
            ..Observed::default()
        };
        let s = compute(&r, &obs, None, &Params::default(), now());
        assert_eq!(s.phase.as_deref(), Some("Ready"));
        assert_eq!(s.ready_replicas, 2);
        assert_eq!(s.master.as_deref(), Some("c-0"));
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(find(&s, "Ready").status, "True");
        assert_eq!(find(&s, "Available").status, "True");
        assert_eq!(find(&s, "Progressing").status, "False");
        assert_eq!(find(&s, "Degraded").status, "False");
        assert_eq!(
            s.pods[1].upstream.as_deref(),
            Some("c-0.c-headless.ns.svc.cluster.local")
        );
        assert_eq!(
            s.endpoints.unwrap().master,
            "c-master.ns.svc.cluster.local:6379"
        );
    }

    #[test]
    fn partial_readiness_is_provisioning_and_progressing() {
        let r = rr("c", "ns", json!({"replicas": 3}));
        let obs = Observed {
            statefulset: Some(sts(1, 3)),
            pods: vec![pod("c-0", true), pod("c-1", false)],
            ..Observed::default()
        };
        let s = compute(&r, &obs, None, &Params::default(), now());
        assert_eq!(s.phase.as_deref(), Some("Provisioning"));
        assert_eq!(find(&s, "Ready").reason, "ReplicasNotReady");
        assert_eq!(find(&s, "Ready").message, "1/3 pods ready");
        assert_eq!(find(&s, "Progressing").status, "True");
        assert_eq!(find(&s, "Available").status, "True");
    }

    #[test]
    fn invalid_spec_is_reported_as_degraded_with_reason_and_message() {
        let r = rr("c", "ns", json!({}));
        let inv = Invalid::SecretKeyMissing {
            secret: "x".into(),
            key: "password".into(),
        };
        let s = compute(
            &r,
            &Observed::default(),
            Some(&inv),
            &Params::default(),
            now(),
        );
        let d = find(&s, "Degraded");
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "SecretNotFound")
        );
        assert_eq!(d.message, "secret \"x\" has no key \"password\"");
        assert_eq!(s.phase.as_deref(), Some("Degraded"));
    }

    #[test]
    fn unchanged_world_gives_identical_status_and_no_transitions() {
        let mut r = rr("c", "ns", json!({"replicas": 1}));
        let obs = Observed {
            statefulset: Some(sts(1, 1)),
            pods: vec![pod("c-0", true)],
            ..Observed::default()
        };
        let first = compute(&r, &obs, None, &Params::default(), now());
        r.status = Some(first.clone());
        let later = Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_999).unwrap());
        let second = compute(&r, &obs, None, &Params::default(), later);
        assert_eq!(first, second);
        assert!(transitions(&first, &second).is_empty());
        assert_eq!(
            transitions(&RedisReplicationStatus::default(), &first).len(),
            5
        );
    }
}
