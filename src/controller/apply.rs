//! Apply step: writes the desired objects with server-side apply under one field manager.
//!
//! Order matters and is fixed:
//! 1. auth Secret (create-only: a generated password is never overwritten), then the rendered
//!    ACL users Secret `<name>-acl` (derived, so applied; deleted when the set has no users),
//!    then the pods' credentials `<name>-credentials` (the rotation step's state),
//! 2. ConfigMap (the pods mount it and read it at start),
//! 3. headless Service (pod DNS must resolve before replicas look for their upstream),
//! 4. `-master` / `-replicas` Services,
//! 5. PodDisruptionBudget, NetworkPolicy (each deleted when disabled in the spec), the
//!    cert-manager Certificate when `spec.tls.issuerRef` is set,
//! 6. StatefulSet LAST: it is what starts or rolls pods, and pods must find their config,
//!    Secret and DNS already in place; applying it earlier would start pods that crash-loop
//!    on a missing volume or resolve nothing.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::build::Desired;
use crate::names;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("failed to apply {kind} {name:?}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to create Secret {name:?}: {source}")]
    CreateSecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete {kind} {name:?}: {source}")]
    Delete {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// A namespaced child kind the apply step writes.
trait Child:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + k8s_openapi::Resource
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
{
}

impl<K> Child for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + k8s_openapi::Resource
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
{
}

async fn ssa<K: Child>(client: &Client, ns: &str, obj: &K) -> Result<(), ApplyError> {
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = obj.name_any();
    // force: we are the only intended owner of these fields; take them over from kubectl edits.
    let pp = PatchParams::apply(names::FIELD_MANAGER).force();
    api.patch(&name, &pp, &Patch::Apply(obj))
        .await
        .map(|_| ())
        .map_err(|source| ApplyError::Apply {
            kind: <K as k8s_openapi::Resource>::KIND,
            name,
            source,
        })
}

pub async fn apply(client: &Client, ns: &str, desired: &Desired) -> Result<(), ApplyError> {
    if let Some(secret) = &desired.secret {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        match api.create(&PostParams::default(), secret).await {
            Ok(_) => {}
            // Someone (or an earlier reconcile) created it meanwhile: keep theirs.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => {
                return Err(ApplyError::CreateSecret {
                    name: secret.name_any(),
                    source,
                })
            }
        }
    }
    let set = desired.statefulset.name_any();
    apply_or_delete(
        client,
        ns,
        desired.acl_secret.as_ref(),
        &crate::build::acl_users::secret_name(&set),
    )
    .await?;
    if let Some(creds) = &desired.credentials_secret {
        ssa::<Secret>(client, ns, creds).await?;
    }
    ssa::<ConfigMap>(client, ns, &desired.config_map).await?;
    ssa::<Service>(client, ns, &desired.headless).await?;
    ssa::<Service>(client, ns, &desired.master).await?;
    ssa::<Service>(client, ns, &desired.replicas).await?;
    apply_or_delete(client, ns, desired.pdb.as_ref(), &names::pdb(&set)).await?;
    apply_or_delete(
        client,
        ns,
        desired.network_policy.as_ref(),
        &names::network_policy(&set),
    )
    .await?;
    if let Some(cert) = &desired.certificate {
        apply_certificate(client, ns, cert).await?;
    }
    // Last, see the module docs.
    ssa::<StatefulSet>(client, ns, &desired.statefulset).await
}

/// The cert-manager `Certificate` (a dynamic object: cert-manager's types are not ours).
/// Removing `issuerRef` leaves it in place (the Secret it writes is still mounted).
async fn apply_certificate(
    client: &Client,
    ns: &str,
    cert: &kube::api::DynamicObject,
) -> Result<(), ApplyError> {
    let ar = crate::build::tls::certificate_resource();
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let name = cert.name_any();
    let pp = PatchParams::apply(names::FIELD_MANAGER).force();
    api.patch(&name, &pp, &Patch::Apply(cert))
        .await
        .map(|_| ())
        .map_err(|source| ApplyError::Apply {
            kind: "Certificate",
            name,
            source,
        })
}

/// Applies an optional child, or (disabled in the spec) deletes ours if present.
async fn apply_or_delete<K: Child>(
    client: &Client,
    ns: &str,
    obj: Option<&K>,
    name: &str,
) -> Result<(), ApplyError> {
    if let Some(obj) = obj {
        return ssa::<K>(client, ns, obj).await;
    }
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(ApplyError::Delete {
            kind: <K as k8s_openapi::Resource>::KIND,
            name: name.to_string(),
            source,
        }),
    }
}
