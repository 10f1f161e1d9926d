//! The pods' credentials, build step: the operator-owned Secret `<name>-credentials` that every
//! pod mounts at [`AUTH_DIR`](super::config::AUTH_DIR), and its parsed form.
//!
//! Why the pods do not mount the user's password Secret directly: a password change must be
//! carried out in steps (accept old and new, switch the replicas' `masterauth`, drop the old;
//! see `controller::rotation`), and a pod that restarts in the middle must come up in the
//! step the set is in, not with whatever the user's Secret says now. So the operator keeps the
//! step's state here, and the pods read it:
//!
//! | key            | mounted | content                                                       |
//! |----------------|---------|---------------------------------------------------------------|
//! | `requirepass`  | yes     | one password of the default user per line (the server's `tandem-requirepass-file`, re-read every second) |
//! | `masterauth`   | yes     | what a replica sends to its upstream (the set's password, or the internal user's) |
//! | `internal`     | no      | the internal user's generated password (`spec.auth.internalUser`) |
//! | `retiring`     | no      | passwords just removed, kept until every pod is seen refusing them |
//!
//! Every value is checked by the validate step (one line, no quotes or backslashes) before it
//! gets here, and generated passwords are alphanumeric, so each file line is one password.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{KeyToPath, Secret, SecretVolumeSource, Volume};
use k8s_openapi::ByteString;

use super::Owner;

/// Key (and mounted file) with the default user's accepted passwords, one per line.
pub const REQUIREPASS_KEY: &str = "requirepass";
/// Key (and mounted file) with the replicas' `masterauth`.
pub const MASTERAUTH_KEY: &str = "masterauth";
/// Key of the internal user's password (not mounted: the pods only see its hash).
pub const INTERNAL_KEY: &str = "internal";
/// Key of the passwords being retired (not mounted).
pub const RETIRING_KEY: &str = "retiring";
/// At most this many passwords are accepted at once: a password changed again and again
/// before a rotation finishes keeps the newest ones (the first is what the pods started with).
pub const MAX_ACCEPTED: usize = 3;

/// The content of `<name>-credentials`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodCredentials {
    /// The default user's passwords, oldest first.
    pub accepted: Vec<String>,
    pub masterauth: String,
    /// The internal user's password, when the set has one.
    pub internal: Option<String>,
    /// Passwords removed from `accepted` that some pod may still accept.
    pub retiring: Vec<String>,
}

/// Name of the operator-owned Secret the pods mount.
pub fn secret_name(set: &str) -> String {
    format!("{set}-credentials")
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn value(s: &Secret, key: &str) -> Option<String> {
    let from_data = s
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned());
    from_data.or_else(|| s.string_data.as_ref().and_then(|d| d.get(key)).cloned())
}

/// The stored state, or `None` when the Secret holds no accepted password (then the operator
/// starts over from the user's Secret).
pub fn parse(s: &Secret) -> Option<PodCredentials> {
    let accepted = lines(&value(s, REQUIREPASS_KEY)?);
    if accepted.is_empty() {
        return None;
    }
    Some(PodCredentials {
        masterauth: value(s, MASTERAUTH_KEY)
            .filter(|m| !m.is_empty())
            .or_else(|| accepted.last().cloned())
            .unwrap_or_default(),
        internal: value(s, INTERNAL_KEY).filter(|p| !p.is_empty()),
        retiring: value(s, RETIRING_KEY)
            .map(|t| lines(&t))
            .unwrap_or_default(),
        accepted,
    })
}

fn joined(passwords: &[String]) -> String {
    let mut out = String::new();
    for p in passwords {
        out.push_str(p);
        out.push('\n');
    }
    out
}

/// The Secret for `creds`.
pub fn secret(owner: &Owner, creds: &PodCredentials) -> Secret {
    let mut data = BTreeMap::from([
        (REQUIREPASS_KEY.to_string(), joined(&creds.accepted)),
        (MASTERAUTH_KEY.to_string(), creds.masterauth.clone()),
    ]);
    if let Some(p) = &creds.internal {
        data.insert(INTERNAL_KEY.to_string(), p.clone());
    }
    if !creds.retiring.is_empty() {
        data.insert(RETIRING_KEY.to_string(), joined(&creds.retiring));
    }
    Secret {
        metadata: owner.child_meta(secret_name(&owner.name)),
        type_: Some("Opaque".to_string()),
        // `data`, not `stringData`: applied on every reconcile, and `stringData` never reads
        // back equal (see acl_users).
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// The pod volume `auth`: the mounted keys of `<name>-credentials`. Only the set's name
/// goes in, so neither a password change nor a different `auth.secretName` changes the pod
/// template.
pub fn volume(set: &str) -> Volume {
    let item = |key: &str| KeyToPath {
        key: key.to_string(),
        path: key.to_string(),
        mode: Some(0o440),
    };
    Volume {
        name: "auth".to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret_name(set)),
            items: Some(vec![item(REQUIREPASS_KEY), item(MASTERAUTH_KEY)]),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use serde_json::json;

    #[test]
    fn the_secret_round_trips_and_mounts_only_what_the_server_reads() {
        let r = rr("cache", "prod", json!({}));
        let owner = Owner::of(&r).unwrap();
        let creds = PodCredentials {
            accepted: vec!["old".into(), "new".into()],
            masterauth: "old".into(),
            internal: Some("int".into()),
            retiring: vec![],
        };
        let s = secret(&owner, &creds);
        assert_eq!(s.metadata.name.as_deref(), Some("cache-credentials"));
        let data = s.data.as_ref().unwrap();
        assert_eq!(data[REQUIREPASS_KEY].0, b"old\nnew\n");
        assert!(!data.contains_key(RETIRING_KEY));
        assert_eq!(parse(&s), Some(creds));
        let v = volume("cache");
        let sv = v.secret.unwrap();
        assert_eq!(sv.secret_name.as_deref(), Some("cache-credentials"));
        let keys: Vec<String> = sv.items.unwrap().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, [REQUIREPASS_KEY, MASTERAUTH_KEY]);
    }

    #[test]
    fn a_secret_without_passwords_is_no_state() {
        assert_eq!(parse(&Secret::default()), None);
        let empty = Secret {
            data: Some(BTreeMap::from([(
                REQUIREPASS_KEY.to_string(),
                ByteString(b"\n\n".to_vec()),
            )])),
            ..Secret::default()
        };
        assert_eq!(parse(&empty), None);
    }
}
