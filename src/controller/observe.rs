//! Observe step: read what exists for one RedisReplication (auth Secret, StatefulSet, pods).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::build::auth_secret_name;
use crate::crd::RedisReplication;
use crate::names;

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("failed to read {kind} {name:?}: {source}")]
    Get {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to list pods of {name:?}: {source}")]
    ListPods {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What the cluster holds right now.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The Secret named by `auth.secretName`, or the generated `<name>-auth`.
    pub auth_secret: Option<Secret>,
    /// The Secrets named by `auth.users[].passwordSecret` that exist, by Secret name.
    pub user_secrets: std::collections::BTreeMap<String, Secret>,
    /// The operator's `<name>-credentials` (what the pods accept; see `build::credentials`).
    pub credentials_secret: Option<Secret>,
    pub statefulset: Option<StatefulSet>,
    /// The Secret named by `spec.tls.secretName`, when set and present.
    pub tls_secret: Option<Secret>,
    /// Pods of this set, sorted by name.
    pub pods: Vec<Pod>,
}

pub async fn observe(client: &Client, rr: &RedisReplication) -> Result<Observed, ObserveError> {
    let ns = rr.namespace().unwrap_or_default();
    let name = rr.name_any();
    let secret_name = auth_secret_name(rr);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let auth_secret = secrets
        .get_opt(&secret_name)
        .await
        .map_err(|source| ObserveError::Get {
            kind: "Secret",
            name: secret_name.clone(),
            source,
        })?;
    let mut user_secrets = std::collections::BTreeMap::new();
    for u in &rr.spec.auth.users {
        let Some(r) = &u.password_secret else {
            continue;
        };
        if user_secrets.contains_key(&r.name) {
            continue;
        }
        let found = secrets
            .get_opt(&r.name)
            .await
            .map_err(|source| ObserveError::Get {
                kind: "Secret",
                name: r.name.clone(),
                source,
            })?;
        if let Some(s) = found {
            user_secrets.insert(r.name.clone(), s);
        }
    }
    let tls_secret = match &rr.spec.tls {
        Some(t) => secrets
            .get_opt(&t.secret_name)
            .await
            .map_err(|source| ObserveError::Get {
                kind: "Secret",
                name: t.secret_name.clone(),
                source,
            })?,
        None => None,
    };
    let creds_name = crate::build::credentials::secret_name(&name);
    let credentials_secret =
        secrets
            .get_opt(&creds_name)
            .await
            .map_err(|source| ObserveError::Get {
                kind: "Secret",
                name: creds_name.clone(),
                source,
            })?;
    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let statefulset = sts_api
        .get_opt(&names::statefulset(&name))
        .await
        .map_err(|source| ObserveError::Get {
            kind: "StatefulSet",
            name: name.clone(),
            source,
        })?;
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let lp = ListParams::default().labels(&names::selector_string(&names::selector_labels(&name)));
    let mut pods = pods_api
        .list(&lp)
        .await
        .map_err(|source| ObserveError::ListPods {
            name: name.clone(),
            source,
        })?
        .items;
    pods.sort_by_key(|p| p.name_any());
    Ok(Observed {
        auth_secret,
        user_secrets,
        credentials_secret,
        statefulset,
        tls_secret,
        pods,
    })
}

// Facts about one observed pod, read by the rollout and status steps.

pub(crate) fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waiting reasons of a container that will not get better by itself.
const FAILING_WAIT_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// `Some(reason)` when a container of the pod is failing (crash loop, image pull, ...).
pub(crate) fn pod_failing(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| {
            let reason = c.state.as_ref()?.waiting.as_ref()?.reason.as_deref()?;
            FAILING_WAIT_REASONS
                .contains(&reason)
                .then(|| reason.to_string())
        })
}

/// Every container of the pod is running: an unreachable server is then a problem, not a
/// start in progress.
pub(crate) fn pod_running(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            !cs.is_empty()
                && cs
                    .iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
}
