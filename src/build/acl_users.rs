//! ACL users (`spec.auth.users`, `spec.auth.internalUser`), build step: the `user` lines the
//! pods load, the operator-owned Secret `<name>-acl` holding them, and its mount.
//!
//! Why a Secret and hashes: the rules are spec, but the passwords come from the users'
//! Secrets and must never reach a ConfigMap. The operator reads those Secrets (they are
//! watched, see `controller::secret_refs`), renders each password as `#<sha256 hex>` (Redis
//! 7.0's hashed-password rule, so not even this Secret holds a plaintext), and the pods mount
//! `<name>-acl` at [`ACL_DIR`]; `start.sh` names [`USERS_FILE`] as the server's `aclfile`.
//!
//! Why an `aclfile` and not `user` directives: the server re-reads its ACL file when it
//! changes (the kubelet updates the mounted Secret in place), so a changed application-user
//! password or rule reaches running pods without a restart. A reloaded ACL file replaces every
//! user, the default user included, so the file also renders the default user, with the
//! hashes of the passwords the pods currently accept ([`default_user_line`]): a reload never
//! leaves it without a password, and the password file (`tandem-requirepass-file`) still has
//! the last word on its passwords.
//!
//! Injection: each user becomes exactly one line `user <name> on #<hash> <rules>`. The name
//! is restricted to `[A-Za-z0-9._-]`, the rules to printable ASCII tokens without quotes or
//! backslashes (the config tokenizer would re-split them) and without password rules (the
//! password comes from the Secret), and a newline anywhere is refused, so no input can add
//! another directive.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{KeyToPath, Secret, SecretVolumeSource, Volume, VolumeMount};

use super::Owner;
use crate::crd::{AuthSpec, RedisReplication};

/// The operator's own user (probes, role changes, replication as `masteruser`).
pub const INTERNAL_USER: &str = "tandem-operator";
/// What the operator's probes, promotions and replicas send (src/failover: PING, INFO,
/// REPLICAOF, CLIENT PAUSE/UNPAUSE/KILL; replicas: PING, REPLCONF, PSYNC), plus read-only
/// introspection. No key or channel access. AUTH and HELLO are always allowed.
pub const INTERNAL_USER_RULES: &str = "resetkeys resetchannels -@all +ping +info +role \
     +replicaof +slaveof +client|pause +client|unpause +client|kill +client|list \
     +client|setname +client|getname +config|get +failover +psync +sync +replconf";
/// Where the `<name>-acl` Secret is mounted.
pub const ACL_DIR: &str = "/etc/tandem/acl";
/// The key (and file) with the `user` lines.
pub const USERS_FILE: &str = "users.conf";
const VOLUME: &str = "acl";

/// Why `spec.auth.users` cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclSpecError {
    #[error("auth.users[{0:?}] has no passwordSecret")]
    NoPasswordSecret(String),
    #[error("auth.users name {0:?} must be letters, digits, '.', '_' or '-'")]
    BadName(String),
    #[error("auth.users name {0:?} is reserved")]
    ReservedName(String),
    #[error("auth.users name {0:?} appears twice")]
    DuplicateName(String),
    #[error("auth.disableDefaultUser needs auth.internalUser (the operator and the replicas would have no user)")]
    DefaultOffWithoutInternalUser,
    #[error("auth.users[{user:?}] rules: {reason}")]
    BadRules { user: String, reason: String },
}

/// The set renders ACL users (and so mounts `<name>-acl`).
pub fn enabled(rr: &RedisReplication) -> bool {
    !rr.spec.auth.users.is_empty() || rr.spec.auth.internal_user
}

/// Checks every user of the spec (names, Secret references, rules).
pub fn check_users(auth: &AuthSpec) -> Result<(), AclSpecError> {
    if auth.disable_default_user && !auth.internal_user {
        return Err(AclSpecError::DefaultOffWithoutInternalUser);
    }
    let mut seen = std::collections::BTreeSet::new();
    for u in &auth.users {
        let name_ok = !u.name.is_empty()
            && u.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !name_ok {
            return Err(AclSpecError::BadName(u.name.clone()));
        }
        if u.name.eq_ignore_ascii_case("default") || u.name == INTERNAL_USER {
            return Err(AclSpecError::ReservedName(u.name.clone()));
        }
        if !seen.insert(u.name.as_str()) {
            return Err(AclSpecError::DuplicateName(u.name.clone()));
        }
        if u.password_secret.is_none() {
            return Err(AclSpecError::NoPasswordSecret(u.name.clone()));
        }
        normalized_rules(&u.rules).map_err(|reason| AclSpecError::BadRules {
            user: u.name.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// The rules as single-space separated tokens, or why they cannot be rendered safely.
pub fn normalized_rules(rules: &str) -> Result<String, String> {
    if let Some(c) = rules.chars().find(|c| matches!(c, '\n' | '\r' | '\0')) {
        return Err(format!("control character {c:?} is not allowed"));
    }
    let mut tokens = Vec::new();
    for tok in rules.split([' ', '\t']).filter(|t| !t.is_empty()) {
        if let Some(c) = tok
            .chars()
            .find(|c| !c.is_ascii_graphic() || matches!(c, '"' | '\'' | '\\'))
        {
            return Err(format!("character {c:?} in {tok:?} is not allowed"));
        }
        let lower = tok.to_ascii_lowercase();
        let bare = lower.trim_start_matches('(');
        if bare.starts_with(['>', '<', '#', '!'])
            || matches!(bare, "nopass" | "resetpass" | "reset")
        {
            return Err(format!(
                "{tok:?} sets or clears a password; the password comes from passwordSecret"
            ));
        }
        tokens.push(tok);
    }
    Ok(tokens.join(" "))
}

/// `#<sha256 hex>`: the password rule Redis 7.0 accepts for a hashed password.
fn hashed(password: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, password);
    let mut out = String::with_capacity(65);
    out.push('#');
    for b in digest.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The `user` lines: the internal user (when enabled, with its own password, which the
/// operator generates and keeps in `<name>-credentials`) first, `user default off` when the
/// default user is disabled, then
/// every application user with the password read from its Secret (`passwords`, by user
/// name). A user whose password is missing from `passwords` is left out (the validate step
/// refuses the spec before that can happen).
pub fn users_file(
    rr: &RedisReplication,
    set_password: &[u8],
    passwords: &BTreeMap<String, Vec<u8>>,
) -> Result<String, AclSpecError> {
    check_users(&rr.spec.auth)?;
    let mut out = String::from(
        "# Rendered by tandem-operator from spec.auth; passwords are SHA-256 hashes.\n",
    );
    if rr.spec.auth.internal_user {
        out.push_str(&format!(
            "user {INTERNAL_USER} on {} {INTERNAL_USER_RULES}\n",
            hashed(set_password)
        ));
    }

    for u in &rr.spec.auth.users {
        let Some(pw) = passwords.get(&u.name) else {
            continue;
        };
        let rules = normalized_rules(&u.rules).map_err(|reason| AclSpecError::BadRules {
            user: u.name.clone(),
            reason,
        })?;
        let mut line = format!("user {} on {}", u.name, hashed(pw));
        if !rules.is_empty() {
            line.push(' ');
            line.push_str(&rules);
        }
        line.push('\n');
        out.push_str(&line);
    }
    Ok(out)
}

/// The default user's line of the ACL file: on (or off with `disableDefaultUser`), every
/// command, key and channel, and the hashes of `passwords` (those the pods accept).
pub fn default_user_line(rr: &RedisReplication, passwords: &[String]) -> String {
    let mut line = String::from("user default ");
    line.push_str(if rr.spec.auth.disable_default_user {
        "off"
    } else {
        "on"
    });
    line.push_str(" resetpass");
    for p in passwords {
        line.push(' ');
        line.push_str(&hashed(p.as_bytes()));
    }
    line.push_str(" ~* &* +@all\n");
    line
}

/// Name of the operator-owned Secret with the rendered users.
pub fn secret_name(set: &str) -> String {
    format!("{set}-acl")
}

/// The `<name>-acl` Secret, or `None` when the set renders no users.
pub fn acl_secret(
    rr: &RedisReplication,
    owner: &Owner,
    set_password: &[u8],
    passwords: &BTreeMap<String, Vec<u8>>,
    default_passwords: &[String],
) -> Result<Option<Secret>, AclSpecError> {
    if !enabled(rr) {
        return Ok(None);
    }
    let mut file = users_file(rr, set_password, passwords)?;
    file.push_str(&default_user_line(rr, default_passwords));
    Ok(Some(Secret {
        metadata: owner.child_meta(secret_name(&owner.name)),
        type_: Some("Opaque".to_string()),
        // `data`, not `stringData`: this Secret is server-side applied on every reconcile, and
        // `stringData` is write-only (converted by the API server), so it would never compare
        // equal to what is stored.
        data: Some(BTreeMap::from([(
            USERS_FILE.to_string(),
            k8s_openapi::ByteString(file.into_bytes()),
        )])),
        ..Secret::default()
    }))
}

/// Extra `tandem.conf` directives: replicas authenticate as the internal user.
pub fn config_lines(rr: &RedisReplication) -> Vec<(&'static str, String)> {
    if rr.spec.auth.internal_user {
        vec![("masteruser", INTERNAL_USER.to_string())]
    } else {
        Vec::new()
    }
}

/// The `start.sh` line that names the users' file as `aclfile`, only for a set that renders
/// users.
pub fn start_script_lines(rr: &RedisReplication) -> String {
    if enabled(rr) {
        format!("printf 'aclfile \"%s\"\\n' \"{ACL_DIR}/{USERS_FILE}\" >> \"$conf\"\n")
    } else {
        String::new()
    }
}

/// The pod volume with `<name>-acl`, when the set renders users.
pub fn volume(rr: &RedisReplication, set: &str) -> Option<Volume> {
    enabled(rr).then(|| Volume {
        name: VOLUME.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret_name(set)),
            items: Some(vec![KeyToPath {
                key: USERS_FILE.to_string(),
                path: USERS_FILE.to_string(),
                mode: Some(0o440),
            }]),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    })
}

/// The server container's mount of [`volume`].
pub fn volume_mount(rr: &RedisReplication) -> Option<VolumeMount> {
    enabled(rr).then(|| VolumeMount {
        name: VOLUME.to_string(),
        mount_path: ACL_DIR.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;
    use serde_json::json;

    fn users(spec_users: serde_json::Value) -> RedisReplication {
        rr("cache", "prod", json!({"auth": {"users": spec_users}}))
    }

    fn pw(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(u, p)| (u.to_string(), p.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn each_user_is_one_line_with_the_sha256_of_its_password_and_its_rules() {
        let r = users(json!([
            {"name": "app", "passwordSecret": {"name": "app-pw"}, "rules": "  ~app:*   +@read\t+@write "},
            {"name": "ro", "passwordSecret": {"name": "ro-pw", "key": "k"}}
        ]));
        let file = users_file(&r, b"setpw", &pw(&[("app", "hello"), ("ro", "x")])).unwrap();
        let lines: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                // sha256("hello")
                "user app on #2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 ~app:* +@read +@write",
                // sha256("x")
                "user ro on #2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
            ]
        );
        assert!(!file.contains("hello"), "no plaintext password");
    }

    #[test]
    fn internal_user_has_least_privilege_and_the_set_password() {
        let r = rr("cache", "prod", json!({"auth": {"internalUser": true}}));
        let file = users_file(&r, b"hello", &BTreeMap::new()).unwrap();
        let line = file.lines().find(|l| l.starts_with("user ")).unwrap();
        assert!(line.starts_with(
            "user tandem-operator on #2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 "
        ));
        let rules: Vec<&str> = line.split(' ').skip(4).collect();
        assert!(rules.contains(&"-@all"));
        for needed in [
            "+psync",
            "+replconf",
            "+ping",
            "+info",
            "+replicaof",
            "+client|pause",
            "+client|unpause",
            "+client|kill",
        ] {
            assert!(rules.contains(&needed), "{needed} missing from {line}");
        }
        // No key or channel access, no write or admin category.
        assert!(rules
            .iter()
            .all(|r| !r.starts_with('~') && !r.starts_with('&') && !r.starts_with("+@")));
        assert_eq!(
            config_lines(&r),
            vec![("masteruser", INTERNAL_USER.to_string())]
        );
        assert!(config_lines(&users(json!([]))).is_empty());
    }

    #[test]
    fn injection_attempts_in_rules_are_refused() {
        for (rules, why) in [
            ("+get\nuser evil on nopass +@all", "control character"),
            ("+get\r\nrequirepass x", "control character"),
            ("+get >secret", "sets or clears a password"),
            ("+get nopass", "sets or clears a password"),
            ("RESETPASS +get", "sets or clears a password"),
            ("reset +@all", "sets or clears a password"),
            ("(>x +get)", "sets or clears a password"),
            ("+get \"quoted", "character"),
            ("+get \\x41", "character"),
            ("~caf\u{e9}", "character"),
        ] {
            let r =
                users(json!([{"name": "app", "passwordSecret": {"name": "s"}, "rules": rules}]));
            let e = check_users(&r.spec.auth).unwrap_err();
            assert!(
                matches!(&e, AclSpecError::BadRules { user, reason } if user == "app" && reason.contains(why)),
                "{rules:?}: {e}"
            );
        }
        // Selectors with their own key patterns are fine.
        assert_eq!(
            normalized_rules("+get (~x* +set)"),
            Ok("+get (~x* +set)".to_string())
        );
    }

    #[test]
    fn names_must_be_plain_unique_not_reserved_and_have_a_secret() {
        let e = |u: serde_json::Value| check_users(&users(u).spec.auth).unwrap_err();
        assert_eq!(
            e(json!([{"name": "app"}])),
            AclSpecError::NoPasswordSecret("app".into())
        );
        assert_eq!(
            e(json!([{"name": "a b", "passwordSecret": {"name": "s"}}])),
            AclSpecError::BadName("a b".into())
        );
        assert_eq!(
            e(json!([{"name": "Default", "passwordSecret": {"name": "s"}}])),
            AclSpecError::ReservedName("Default".into())
        );
        assert_eq!(
            e(json!([{"name": "tandem-operator", "passwordSecret": {"name": "s"}}])),
            AclSpecError::ReservedName("tandem-operator".into())
        );
        let dup = json!({"name": "a", "passwordSecret": {"name": "s"}});
        assert_eq!(
            e(json!([dup, dup])),
            AclSpecError::DuplicateName("a".into())
        );
        assert_eq!(
            e(json!([{"name": "app"}])).to_string(),
            "auth.users[\"app\"] has no passwordSecret"
        );
    }

    #[test]
    fn the_acl_secret_and_its_mount_exist_only_with_users() {
        let plain = rr("cache", "prod", json!({}));
        let owner = Owner::of(&plain).unwrap();
        assert_eq!(
            acl_secret(&plain, &owner, b"pw", &BTreeMap::new(), &[]),
            Ok(None)
        );
        assert!(volume(&plain, "cache").is_none() && volume_mount(&plain).is_none());
        assert_eq!(start_script_lines(&plain), "");

        let r = users(json!([{"name": "app", "passwordSecret": {"name": "s"}, "rules": "+get"}]));
        let s = acl_secret(&r, &owner, b"pw", &pw(&[("app", "p")]), &["x".into()])
            .unwrap()
            .unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("cache-acl"));
        let file = String::from_utf8(s.data.unwrap()[USERS_FILE].0.clone()).unwrap();
        assert!(file.contains("user app on #"));
        // The default user too (a reloaded ACL file replaces every user), sha256("x").
        assert!(file.ends_with(
            "user default on resetpass #2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881 ~* &* +@all\n"
        ), "{file}");
        let off = rr(
            "cache",
            "prod",
            json!({"auth": {"internalUser": true, "disableDefaultUser": true}}),
        );
        assert!(default_user_line(&off, &[]).starts_with("user default off resetpass ~*"));
        let v = volume(&r, "cache").unwrap();
        assert_eq!(v.secret.unwrap().secret_name.as_deref(), Some("cache-acl"));
        assert_eq!(volume_mount(&r).unwrap().mount_path, ACL_DIR);
        assert!(start_script_lines(&r).contains("/etc/tandem/acl/users.conf"));
    }

    #[test]
    fn the_config_map_loads_the_users_and_names_the_masteruser_only_when_enabled() {
        use crate::build::{config, Params};
        let plain = rr("cache", "prod", json!({}));
        let owner = Owner::of(&plain).unwrap();
        let data = config::config_map(&plain, &owner, &Params::default())
            .data
            .unwrap();
        assert!(!data["start.sh"].contains(ACL_DIR));
        assert!(!data["tandem.conf"].contains("masteruser"));

        let r = rr("cache", "prod", json!({"auth": {"internalUser": true}}));
        let data = config::config_map(&r, &owner, &Params::default())
            .data
            .unwrap();
        assert!(data["tandem.conf"].contains("\nmasteruser tandem-operator\n"));
        let script = &data["start.sh"];
        let users_at = script
            .find("printf 'aclfile \"%s\"\\n' \"/etc/tandem/acl/users.conf\" >> \"$conf\"")
            .unwrap();
        let exec_at = script.find("exec ").unwrap();
        assert!(
            users_at < exec_at,
            "the users' file named before the server starts"
        );
    }
}
