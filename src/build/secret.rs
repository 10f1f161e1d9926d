//! The generated auth Secret (`<name>-auth`), created only when `auth.secretName` is absent.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::Owner;
use crate::names;

pub fn auth_secret(owner: &Owner, key: &str, password: &str) -> Secret {
    Secret {
        metadata: owner.child_meta(names::generated_secret(&owner.name)),
        type_: Some("Opaque".to_string()),
        string_data: Some(BTreeMap::from([(key.to_string(), password.to_string())])),
        ..Secret::default()
    }
}

/// A random alphanumeric password (32 chars, ~190 bits). Kept out of the pure builders.
pub fn random_password() -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::testutil::rr;

    #[test]
    fn generated_secret_is_named_after_the_resource_and_holds_the_key() {
        let owner = Owner::of(&rr("cache", "prod", serde_json::json!({}))).unwrap();
        let s = auth_secret(&owner, "password", "s3cret");
        assert_eq!(s.metadata.name.as_deref(), Some("cache-auth"));
        assert_eq!(
            s.string_data.unwrap().get("password").map(String::as_str),
            Some("s3cret")
        );
    }

    #[test]
    fn random_passwords_are_long_and_distinct() {
        let a = random_password();
        let b = random_password();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
