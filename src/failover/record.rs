//! The durable records of the failover subsystem, written before (and after) acting: the
//! `role` pod labels the `-master` / `-replicas` Services select on, JSON merge patches of the
//! status fields the failover owns (`failoverInProgress`, `master`, `epoch`, `lastFailover`),
//! and Events.
//!
//! Status writes here are merge patches: the status step owns its fields through server-side
//! apply under the operator's field manager, and a second apply under that manager would drop
//! them. The status step then carries the same values (see [`super::apply_outcome`]).

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::executor::Report;
use crate::crd::RedisReplication;
use crate::names;

#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    #[error("failed to label pod {name:?}: {source}")]
    Label {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to record {what} in the status of {name:?}: {source}")]
    Status {
        name: String,
        what: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// Bootstrap role of an ordinal (the rule before any master is recorded: pod 0).
pub fn bootstrap_role(ordinal: i32) -> &'static str {
    if ordinal == 0 {
        names::ROLE_MASTER
    } else {
        names::ROLE_REPLICA
    }
}

/// (pod name, role) for every pod of the set whose `role` label differs from what it should
/// be: `master` on `master` (pod 0 when `None`), `replica` on every other pod.
pub fn label_changes(set: &str, pods: &[Pod], master: Option<&str>) -> Vec<(String, &'static str)> {
    pods.iter()
        .filter_map(|p| {
            let name = p.name_any();
            let ord = names::ordinal(set, &name)?;
            let role = match master {
                Some(m) if m == name => names::ROLE_MASTER,
                Some(_) => names::ROLE_REPLICA,
                None => bootstrap_role(ord),
            };
            let current = p.labels().get(names::ROLE_LABEL).map(String::as_str);
            (current != Some(role)).then_some((name, role))
        })
        .collect()
}

/// Where one resource's failover records go.
pub struct Records<'a> {
    pub client: &'a Client,
    /// `None` in tests that do not care about Events.
    pub recorder: Option<&'a Recorder>,
    pub rr: &'a RedisReplication,
}

impl Records<'_> {
    /// Moves the `role` labels so that `master` (pod 0 when `None`) is the one master.
    pub async fn labels(&self, pods: &[Pod], master: Option<&str>) -> Result<(), RolesError> {
        let set = self.rr.name_any();
        label(
            self.client,
            &self.rr.namespace().unwrap_or_default(),
            &label_changes(&set, pods, master),
        )
        .await
    }

    /// Merge-patches `status` (the fields of the failover) into the resource's status.
    pub async fn status(
        &self,
        what: &'static str,
        status: serde_json::Value,
    ) -> Result<(), RolesError> {
        let name = self.rr.name_any();
        let api: Api<RedisReplication> = Api::namespaced(
            self.client.clone(),
            &self.rr.namespace().unwrap_or_default(),
        );
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .map_err(|source| RolesError::Status {
            name: name.clone(),
            what,
            source,
        })?;
        Ok(())
    }

    /// Publishes an Event about the resource (best effort: a failure is logged).
    pub async fn event(&self, type_: EventType, reason: &str, note: String) {
        let Some(recorder) = self.recorder else {
            return;
        };
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: "Failover".to_string(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&ev, &self.rr.object_ref(&())).await {
            tracing::warn!(error = %e, name = %self.rr.name_any(), "failed to publish event");
        }
    }

    /// A `ReplicaRepointed` Event per repointed pod; failed executor steps are logged.
    pub async fn repointed(&self, report: &Report) {
        for (pod, upstream) in report.repointed() {
            self.event(
                EventType::Normal,
                "ReplicaRepointed",
                format!("{pod} now follows {upstream}"),
            )
            .await;
        }
        for f in report.failures() {
            tracing::warn!(name = %self.rr.name_any(), step = ?f, "executor step failed");
        }
    }
}

/// Sets the `role` label of each pod in `changes`.
pub async fn label(
    client: &Client,
    ns: &str,
    changes: &[(String, &str)],
) -> Result<(), RolesError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    // The master label goes first, so the master Service is never left with two endpoints
    // longer than necessary and never without one because of an ordering of ours.
    let mut ordered: Vec<&(String, &str)> = changes.iter().collect();
    ordered.sort_by_key(|(_, role)| *role != names::ROLE_MASTER);
    for (name, role) in ordered {
        // A merge patch touches only this label; the pod belongs to the StatefulSet controller.
        let patch = json!({"metadata": {"labels": {names::ROLE_LABEL: role}}});
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            // A pod deleted meanwhile has no label to move.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(RolesError::Label {
                    name: name.clone(),
                    source,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, role: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.to_string());
        if let Some(r) = role {
            p.metadata.labels = Some([(names::ROLE_LABEL.to_string(), r.to_string())].into());
        }
        p
    }

    #[test]
    fn labels_follow_the_recorded_master_or_pod_zero() {
        let pods = [
            pod("c-0", None),
            pod("c-1", Some("replica")),
            pod("c-2", Some("master")),
            pod("other", None),
        ];
        assert_eq!(
            label_changes("c", &pods, None),
            vec![
                ("c-0".to_string(), "master"),
                ("c-2".to_string(), "replica")
            ]
        );
        assert_eq!(
            label_changes("c", &pods, Some("c-1")),
            vec![
                ("c-0".to_string(), "replica"),
                ("c-1".to_string(), "master"),
                ("c-2".to_string(), "replica")
            ]
        );
        assert_eq!(names::ordinal("c", "c-12"), Some(12));
        assert_eq!(names::ordinal("c", "cx-1"), None);
    }
}
