//! Build step: the desired child objects of one RedisReplication, as pure functions of the
//! resource and the operator's settings. No client, no async, no randomness (the generated
//! password is passed in), so every object is unit-tested with small inputs.

pub mod acl_users;
pub mod config;
pub mod credentials;
pub mod netpol;
pub mod pdb;
pub mod resources;
pub mod secret;
pub mod services;
pub mod statefulset;
pub mod tls;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::crd::RedisReplication;
use crate::names;

/// Operator-wide settings the builders need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub server_image: String,
    pub cluster_domain: String,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            server_image: "tandem-server:latest".to_string(),
            cluster_domain: "cluster.local".to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("RedisReplication has no {0}; cannot build owned objects")]
    MissingMetadata(&'static str),
    #[error("cannot render ACL users: {0}")]
    Acl(#[from] acl_users::AclSpecError),
}

/// Everything the apply step writes, in apply order.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// Only present when the operator must create the generated auth Secret.
    pub secret: Option<Secret>,
    /// The rendered ACL users (`<name>-acl`), when the set has any; filled by
    /// [`with_acl_users`] (it needs the passwords read from the users' Secrets).
    pub acl_secret: Option<Secret>,
    /// The pods' credentials (`<name>-credentials`), filled by [`with_pod_credentials`]
    /// (what it holds is decided by the rotation step, `controller::rotation`).
    pub credentials_secret: Option<Secret>,
    pub config_map: ConfigMap,
    pub headless: Service,
    pub master: Service,
    pub replicas: Service,
    pub pdb: Option<PodDisruptionBudget>,
    /// Only when `spec.networkPolicy.enabled`.
    pub network_policy: Option<NetworkPolicy>,
    /// cert-manager `Certificate`, only when `spec.tls.issuerRef` is set.
    pub certificate: Option<kube::api::DynamicObject>,
    pub statefulset: StatefulSet,
}

/// The identity shared by all builders: name, namespace, owner reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub owner_ref: OwnerReference,
}

impl Owner {
    pub fn of(rr: &RedisReplication) -> Result<Self, BuildError> {
        let namespace = rr
            .namespace()
            .ok_or(BuildError::MissingMetadata("namespace"))?;
        if rr.meta().uid.is_none() {
            return Err(BuildError::MissingMetadata("uid"));
        }
        let owner_ref = rr
            .controller_owner_ref(&())
            .ok_or(BuildError::MissingMetadata("name"))?;
        Ok(Owner {
            name: rr.name_any(),
            namespace,
            owner_ref,
        })
    }

    /// Metadata of a child object: name, namespace, common labels, controller owner reference.
    pub fn child_meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(names::labels(&self.name)),
            owner_references: Some(vec![self.owner_ref.clone()]),
            ..ObjectMeta::default()
        }
    }
}

/// Builds every desired object. `generated_password` is `Some` only when the generated Secret
/// does not exist yet and must be created.
pub fn build(
    rr: &RedisReplication,
    params: &Params,
    generated_password: Option<&str>,
) -> Result<Desired, BuildError> {
    let owner = Owner::of(rr)?;
    let secret = match (&rr.spec.auth.secret_name, generated_password) {
        (None, Some(pw)) => Some(secret::auth_secret(&owner, &rr.spec.auth.key, pw)),
        _ => None,
    };
    let config_map = config::config_map(rr, &owner, params);
    Ok(Desired {
        secret,
        acl_secret: None,
        credentials_secret: None,
        headless: services::headless(&owner),
        master: services::master(rr, &owner),
        replicas: services::replicas(rr, &owner),
        pdb: pdb::pdb(rr, &owner),
        network_policy: netpol::network_policy(rr, &owner),
        certificate: tls::certificate(rr, &owner, params),
        statefulset: statefulset::statefulset(rr, &owner, params, &config_map),
        config_map,
    })
}

/// Adds the rendered ACL users to `desired`: `set_password` is the internal user's password,
/// `passwords` the application users' by user name, `default_passwords` the default user's.
pub fn with_acl_users(
    mut desired: Desired,
    rr: &RedisReplication,
    set_password: &[u8],
    passwords: &std::collections::BTreeMap<String, Vec<u8>>,
    default_passwords: &[String],
) -> Result<Desired, BuildError> {
    let owner = Owner::of(rr)?;
    desired.acl_secret =
        acl_users::acl_secret(rr, &owner, set_password, passwords, default_passwords)?;
    Ok(desired)
}

/// Adds the pods' credentials Secret to `desired`.
pub fn with_pod_credentials(
    mut desired: Desired,
    rr: &RedisReplication,
    creds: &credentials::PodCredentials,
) -> Result<Desired, BuildError> {
    let owner = Owner::of(rr)?;
    desired.credentials_secret = Some(credentials::secret(&owner, creds));
    Ok(desired)
}

/// Name of the Secret holding the password (user-provided or generated).
pub use crate::model::auth_secret_name;

#[cfg(test)]
pub(crate) mod testutil {
    use crate::crd::{RedisReplication, RedisReplicationSpec};

    /// A small CR as the API server would hand it to us (defaults applied, uid set).
    pub fn rr(name: &str, ns: &str, spec_json: serde_json::Value) -> RedisReplication {
        let spec: RedisReplicationSpec = serde_json::from_value(spec_json).expect("valid spec");
        let mut rr = RedisReplication::new(name, spec);
        rr.metadata.namespace = Some(ns.to_string());
        rr.metadata.uid = Some("uid-1234".to_string());
        rr.metadata.generation = Some(1);
        rr
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::rr;
    use super::*;

    #[test]
    fn every_child_is_owned_by_the_resource_as_controller() {
        let r = rr("cache", "prod", serde_json::json!({}));
        let d = build(&r, &Params::default(), Some("pw")).unwrap();
        let metas = [
            &d.secret.as_ref().unwrap().metadata,
            &d.config_map.metadata,
            &d.headless.metadata,
            &d.master.metadata,
            &d.replicas.metadata,
            &d.pdb.as_ref().unwrap().metadata,
            &d.statefulset.metadata,
        ];
        for m in metas {
            let refs = m.owner_references.as_ref().unwrap();
            assert_eq!(refs.len(), 1);
            assert_eq!(refs[0].kind, "RedisReplication");
            assert_eq!(refs[0].api_version, "tandem.dev/v1alpha1");
            assert_eq!(refs[0].name, "cache");
            assert_eq!(refs[0].uid, "uid-1234");
            assert_eq!(refs[0].controller, Some(true));
            assert_eq!(m.namespace.as_deref(), Some("prod"));
            assert_eq!(
                m.labels.as_ref().unwrap().get("app.kubernetes.io/instance"),
                Some(&"cache".to_string())
            );
        }
    }

    #[test]
    fn generated_secret_only_without_secret_name_and_when_asked() {
        let r = rr("cache", "prod", serde_json::json!({}));
        assert!(build(&r, &Params::default(), None)
            .unwrap()
            .secret
            .is_none());
        let user = rr(
            "cache",
            "prod",
            serde_json::json!({"auth": {"secretName": "mine"}}),
        );
        assert!(build(&user, &Params::default(), Some("pw"))
            .unwrap()
            .secret
            .is_none());
        assert_eq!(auth_secret_name(&user), "mine");
        assert_eq!(auth_secret_name(&r), "cache-auth");
    }

    #[test]
    fn missing_uid_is_a_build_error() {
        let mut r = rr("cache", "prod", serde_json::json!({}));
        r.metadata.uid = None;
        assert_eq!(
            build(&r, &Params::default(), None).unwrap_err(),
            BuildError::MissingMetadata("uid")
        );
    }

    #[test]
    fn pdb_absent_when_disabled() {
        let r = rr(
            "cache",
            "prod",
            serde_json::json!({"podDisruptionBudget": {"enabled": false}}),
        );
        assert!(build(&r, &Params::default(), None).unwrap().pdb.is_none());
    }
}
