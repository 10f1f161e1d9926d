//! Roles step: puts the role label the `-master` / `-replicas` Services select on each pod.
//! The planner is the bootstrap rule (pod 0 is the master); the failover issue replaces it with
//! operator-decided roles.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use crate::names;

#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    #[error("failed to label pod {name:?}: {source}")]
    Label {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Ordinal of a StatefulSet pod from its name (`<set>-<ordinal>`).
pub fn ordinal(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// Bootstrap role of an ordinal.
pub fn bootstrap_role(ordinal: i32) -> &'static str {
    if ordinal == 0 {
        names::ROLE_MASTER
    } else {
        names::ROLE_REPLICA
    }
}

/// (pod name, role) for every pod whose label differs from its planned role.
pub fn plan(set: &str, pods: &[Pod]) -> Vec<(String, &'static str)> {
    pods.iter()
        .filter_map(|p| {
            let name = p.name_any();
            let role = bootstrap_role(ordinal(set, &name)?);
            let current = p.labels().get(names::ROLE_LABEL).map(String::as_str);
            (current != Some(role)).then_some((name, role))
        })
        .collect()
}

pub async fn label(
    client: &Client,
    ns: &str,
    changes: &[(String, &str)],
) -> Result<(), RolesError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    for (name, role) in changes {
        // A merge patch touches only this label; the pod belongs to the StatefulSet controller.
        let patch = serde_json::json!({"metadata": {"labels": {names::ROLE_LABEL: role}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| RolesError::Label {
                name: name.clone(),
                source,
            })?;
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
    fn pod_zero_is_master_and_only_wrong_labels_change() {
        let pods = [
            pod("c-0", None),
            pod("c-1", Some("replica")),
            pod("c-2", Some("master")),
            pod("other", None),
        ];
        assert_eq!(
            plan("c", &pods),
            vec![
                ("c-0".to_string(), "master"),
                ("c-2".to_string(), "replica")
            ]
        );
        assert_eq!(ordinal("c", "c-12"), Some(12));
        assert_eq!(ordinal("c", "cx-1"), None);
    }
}
