//! Validate step (pure): what the schema cannot express. An invalid spec is reported on the
//! status and nothing is applied, so whatever runs keeps running until the spec is fixed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use crate::build::acl_users::{check_users, AclSpecError};
use crate::build::config::MANAGED_DIRECTIVES;
use crate::crd::RedisReplication;
use crate::model::Validated;

use super::observe::Observed;

/// Why the resource cannot be reconciled; `reason()` becomes the condition reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("config directive {0:?} is managed by the operator")]
    ManagedDirective(String),
    #[error("config directive {0:?} is not a valid directive name")]
    BadDirectiveName(String),
    #[error("config directive {0:?} has a value spanning several lines")]
    MultilineValue(String),
    #[error("replication.minReplicasToWrite ({min}) must be lower than replicas ({replicas})")]
    MinReplicasTooHigh { min: i32, replicas: i32 },
    #[error("secret {0:?} not found")]
    SecretMissing(String),
    #[error("secret {secret:?} has no key {key:?}")]
    SecretKeyMissing { secret: String, key: String },
    #[error("secret {secret:?} key {key:?} must be one line without quotes or backslashes")]
    SecretUnusable { secret: String, key: String },
    #[error("{0}")]
    Users(#[from] AclSpecError),
    #[error("secret {secret:?} key {key:?} (password of user {user:?}) is empty")]
    UserPasswordEmpty {
        secret: String,
        key: String,
        user: String,
    },
}

impl Invalid {
    pub fn reason(&self) -> &'static str {
        match self {
            Invalid::ManagedDirective(_)
            | Invalid::BadDirectiveName(_)
            | Invalid::MultilineValue(_)
            | Invalid::MinReplicasTooHigh { .. }
            | Invalid::Users(_) => "InvalidSpec",
            Invalid::SecretMissing(_) | Invalid::SecretKeyMissing { .. } => "SecretNotFound",
            Invalid::SecretUnusable { .. } | Invalid::UserPasswordEmpty { .. } => "SecretInvalid",
        }
    }
}

/// Checks the spec, then the auth Secret, and returns the spec normalised once (the model
/// every later step reads). The generated Secret may be absent: the build step creates it.
pub fn validate(rr: &RedisReplication, observed: &Observed) -> Result<Validated, Invalid> {
    check_config(rr)?;
    check_users(&rr.spec.auth)?;
    let model = Validated::from_resource(rr);
    check_secret(&model, observed)?;
    user_passwords(rr, observed)?;
    Ok(model)
}

/// The value of `key` in a Secret (`data`, else `stringData` as a fake API may hand it over).
pub fn secret_value(s: &Secret, key: &str) -> Option<Vec<u8>> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            s.string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| v.clone().into_bytes())
        })
}

/// The application users' passwords by user name, read from their Secrets: each Secret must
/// exist and hold a non-empty value under its key (any bytes: the password is hashed, never
/// written into a config line).
pub fn user_passwords(
    rr: &RedisReplication,
    observed: &Observed,
) -> Result<BTreeMap<String, Vec<u8>>, Invalid> {
    let mut out = BTreeMap::new();
    for u in &rr.spec.auth.users {
        let r = u
            .password_secret
            .as_ref()
            .ok_or_else(|| AclSpecError::NoPasswordSecret(u.name.clone()))?;
        let s = observed
            .user_secrets
            .get(&r.name)
            .ok_or_else(|| Invalid::SecretMissing(r.name.clone()))?;
        let v = secret_value(s, &r.key).ok_or_else(|| Invalid::SecretKeyMissing {
            secret: r.name.clone(),
            key: r.key.clone(),
        })?;
        if v.is_empty() {
            return Err(Invalid::UserPasswordEmpty {
                secret: r.name.clone(),
                key: r.key.clone(),
                user: u.name.clone(),
            });
        }
        out.insert(u.name.clone(), v);
    }
    Ok(out)
}

/// The passthrough directives and what the CRD's CEL rule says.
fn check_config(rr: &RedisReplication) -> Result<(), Invalid> {
    for (k, v) in &rr.spec.config {
        let key = k.to_ascii_lowercase();
        let tls_managed =
            rr.spec.tls.is_some() && crate::build::tls::MANAGED_DIRECTIVES.contains(&key.as_str());
        if MANAGED_DIRECTIVES.contains(&key.as_str()) || tls_managed {
            return Err(Invalid::ManagedDirective(k.clone()));
        }
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(Invalid::BadDirectiveName(k.clone()));
        }
        if v.contains('\n') || v.contains('\r') {
            return Err(Invalid::MultilineValue(k.clone()));
        }
    }
    // Mirrors the CRD's CEL rule, for API servers that do not enforce it.
    if let Some(min) = rr.spec.replication.min_replicas_to_write {
        if min >= rr.spec.replicas {
            return Err(Invalid::MinReplicasTooHigh {
                min,
                replicas: rr.spec.replicas,
            });
        }
    }
    Ok(())
}

/// The auth Secret exists (unless generated) and holds a usable password under its key.
fn check_secret(model: &Validated, observed: &Observed) -> Result<(), Invalid> {
    let secret = model.auth.secret_name.clone();
    let key = model.auth.key.clone();
    match &observed.auth_secret {
        None if model.auth.generated => Ok(()),
        None => Err(Invalid::SecretMissing(secret)),
        Some(s) => {
            let value = secret_value(s, &key);
            match value {
                None => Err(Invalid::SecretKeyMissing { secret, key }),
                Some(v) => {
                    let ok = !v.is_empty()
                        && v.iter()
                            .all(|b| !matches!(b, b'\n' | b'\r' | b'"' | b'\\' | b'\''));
                    if ok {
                        Ok(())
                    } else {
                        Err(Invalid::SecretUnusable { secret, key })
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::ByteString;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn secret(key: &str, val: &str) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(
                key.to_string(),
                ByteString(val.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn managed_directive_is_rejected_with_its_name() {
        let r = rr("c", "ns", json!({"config": {"replicaof": "x 1"}}));
        let e = validate(&r, &Observed::default()).unwrap_err();
        assert_eq!(e.reason(), "InvalidSpec");
        assert_eq!(
            e.to_string(),
            "config directive \"replicaof\" is managed by the operator"
        );
        let r = rr("c", "ns", json!({"config": {"RequirePass": "x"}}));
        assert!(matches!(
            validate(&r, &Observed::default()),
            Err(Invalid::ManagedDirective(_))
        ));
    }

    #[test]
    fn newline_in_config_value_is_rejected() {
        let r = rr(
            "c",
            "ns",
            json!({"config": {"maxmemory": "1mb\nreplicaof a 1"}}),
        );
        assert_eq!(
            validate(&r, &Observed::default()).unwrap_err().reason(),
            "InvalidSpec"
        );
    }

    #[test]
    fn user_secret_missing_or_without_key_is_secret_not_found() {
        let r = rr("c", "ns", json!({"auth": {"secretName": "x"}}));
        assert_eq!(
            validate(&r, &Observed::default()).unwrap_err().to_string(),
            "secret \"x\" not found"
        );
        let obs = Observed {
            auth_secret: Some(secret("other", "pw")),
            ..Observed::default()
        };
        let e = validate(&r, &obs).unwrap_err();
        assert_eq!(e.reason(), "SecretNotFound");
        assert_eq!(e.to_string(), "secret \"x\" has no key \"password\"");
        let obs = Observed {
            auth_secret: Some(secret("password", "pw")),
            ..Observed::default()
        };
        assert_eq!(validate(&r, &obs).map(|_| ()), Ok(()));
    }

    #[test]
    fn min_replicas_to_write_must_leave_a_writable_master() {
        let r = rr(
            "c",
            "ns",
            json!({"replicas": 2, "replication": {"minReplicasToWrite": 2}}),
        );
        let e = validate(&r, &Observed::default()).unwrap_err();
        assert_eq!(e.reason(), "InvalidSpec");
        assert_eq!(
            e.to_string(),
            "replication.minReplicasToWrite (2) must be lower than replicas (2)"
        );
    }

    #[test]
    fn generated_secret_may_be_absent() {
        let r = rr("c", "ns", json!({}));
        assert_eq!(validate(&r, &Observed::default()).map(|_| ()), Ok(()));
    }

    #[test]
    fn password_that_would_break_the_config_line_is_rejected() {
        let r = rr("c", "ns", json!({"auth": {"secretName": "x"}}));
        let obs = Observed {
            auth_secret: Some(secret("password", "a\"b")),
            ..Observed::default()
        };
        assert_eq!(validate(&r, &obs).unwrap_err().reason(), "SecretInvalid");
    }

    #[test]
    fn users_need_their_secret_and_a_non_empty_password() {
        let r = rr(
            "c",
            "ns",
            json!({"auth": {"users": [{"name": "app", "passwordSecret": {"name": "app-pw"}, "rules": "+get"}]}}),
        );
        let e = validate(&r, &Observed::default()).unwrap_err();
        assert_eq!(e.reason(), "SecretNotFound");
        assert_eq!(e.to_string(), "secret \"app-pw\" not found");
        let with = |s: Secret| Observed {
            user_secrets: BTreeMap::from([("app-pw".to_string(), s)]),
            ..Observed::default()
        };
        let e = validate(&r, &with(secret("other", "x"))).unwrap_err();
        assert_eq!(e.to_string(), "secret \"app-pw\" has no key \"password\"");
        let e = validate(&r, &with(secret("password", ""))).unwrap_err();
        assert_eq!(e.reason(), "SecretInvalid");
        // Any bytes are a usable password: it is hashed, never written into a line.
        let obs = with(secret("password", "a\"b\nc"));
        assert_eq!(validate(&r, &obs).map(|_| ()), Ok(()));
        assert_eq!(
            user_passwords(&r, &obs).unwrap()["app"],
            b"a\"b\nc".to_vec()
        );
    }

    #[test]
    fn malformed_users_are_an_invalid_spec_with_a_clear_message() {
        let r = rr(
            "c",
            "ns",
            json!({"auth": {"users": [{"name": "app", "rules": "+get"}]}}),
        );
        let e = validate(&r, &Observed::default()).unwrap_err();
        assert_eq!(e.reason(), "InvalidSpec");
        assert_eq!(e.to_string(), "auth.users[\"app\"] has no passwordSecret");
        let r = rr(
            "c",
            "ns",
            json!({"auth": {"users": [{"name": "app", "passwordSecret": {"name": "s"}, "rules": "+get\nuser x on nopass +@all"}]}}),
        );
        let e = validate(&r, &Observed::default()).unwrap_err();
        assert_eq!(e.reason(), "InvalidSpec");
        assert!(
            e.to_string()
                .starts_with("auth.users[\"app\"] rules: control character"),
            "{e}"
        );
    }
}
