//! Which RedisReplications a Secret matters to: the Secrets a set references (its password
//! Secret, the Secrets of its ACL users, its TLS Secret) are not owned by it, so the owner-reference watch
//! never maps them back. The controller watches Secrets in the watched namespaces and maps
//! each change through [`referencing_sets`] over the controller's own cache of sets, so a
//! Secret created or changed after its RedisReplication is acted on at once instead of at
//! the next periodic requeue.

use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;

use crate::crd::RedisReplication;
use crate::model::auth_secret_name;

/// Names of every Secret `rr` reads (in its own namespace), sorted and without duplicates.
pub fn referenced_secrets(rr: &RedisReplication) -> Vec<String> {
    let mut names = vec![auth_secret_name(rr)];
    names.extend(
        rr.spec
            .auth
            .users
            .iter()
            .filter_map(|u| u.password_secret.as_ref().map(|s| s.name.clone())),
    );
    names.extend(rr.spec.tls.as_ref().map(|t| t.secret_name.clone()));
    names.sort();
    names.dedup();
    names
}

/// The sets among `sets` in namespace `ns` that reference the Secret `secret`.
pub fn referencing_sets<'a>(
    ns: &str,
    secret: &str,
    sets: impl IntoIterator<Item = &'a RedisReplication>,
) -> Vec<ObjectRef<RedisReplication>> {
    sets.into_iter()
        .filter(|rr| rr.namespace().as_deref() == Some(ns))
        .filter(|rr| referenced_secrets(rr).iter().any(|n| n == secret))
        .map(ObjectRef::from_obj)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use serde_json::json;

    #[test]
    fn a_set_references_its_password_secret_and_its_users_secrets() {
        let r = rr(
            "cache",
            "prod",
            json!({"auth": {"secretName": "pw", "users": [
                {"name": "app", "passwordSecret": {"name": "app-pw"}, "rules": "~app:* +@read"},
                {"name": "ro", "passwordSecret": {"name": "pw", "key": "ro"}, "rules": "+get"}
            ]}}),
        );
        assert_eq!(referenced_secrets(&r), vec!["app-pw", "pw"]);
        let tls = rr(
            "cache",
            "prod",
            json!({"tls": {"secretName": "cache-certs"}}),
        );
        assert_eq!(referenced_secrets(&tls), vec!["cache-auth", "cache-certs"]);
        let generated = rr("cache", "prod", json!({}));
        assert_eq!(referenced_secrets(&generated), vec!["cache-auth"]);
    }

    #[test]
    fn a_secret_maps_only_to_the_sets_of_its_namespace_that_name_it() {
        let a = rr("a", "prod", json!({"auth": {"secretName": "shared"}}));
        let b = rr("b", "prod", json!({"auth": {"secretName": "shared"}}));
        let c = rr("c", "prod", json!({"auth": {"secretName": "other"}}));
        let elsewhere = rr("d", "dev", json!({"auth": {"secretName": "shared"}}));
        let sets = [a, b, c, elsewhere];
        let names = |refs: Vec<ObjectRef<RedisReplication>>| {
            refs.into_iter().map(|r| r.name).collect::<Vec<_>>()
        };
        assert_eq!(
            names(referencing_sets("prod", "shared", &sets)),
            vec!["a", "b"]
        );
        assert_eq!(names(referencing_sets("dev", "shared", &sets)), vec!["d"]);
        assert!(referencing_sets("prod", "unrelated", &sets).is_empty());
    }
}
