//! How the operator's own connections authenticate: as the default user or as the internal
//! user (`spec.auth.internalUser`), with one or more candidate passwords tried in order.
//!
//! Several passwords exist while a password rotation is in flight (see
//! `controller::rotation`): the pods accept the old and the new one, and the operator tries the
//! new one first and falls back to the old, so a pod whose password file has not been updated
//! yet (or that restarted with an older copy) is never mistaken for an unreachable master.
//! The connecting itself is [`super::probe::Client::connect_as`].

/// What the operator sends in `AUTH`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// `None`: the default user (`AUTH <password>`); else `AUTH <user> <password>`.
    pub user: Option<String>,
    /// Candidate passwords, preferred first; empty: no `AUTH` at all.
    pub passwords: Vec<String>,
}

impl Credentials {
    /// The default user with at most one password (empty passwords are dropped).
    pub fn password(password: Option<String>) -> Self {
        Credentials {
            user: None,
            passwords: password.into_iter().filter(|p| !p.is_empty()).collect(),
        }
    }

    /// `user` with one password.
    pub fn user(user: &str, password: String) -> Self {
        Credentials {
            user: Some(user.to_string()),
            passwords: vec![password],
        }
    }

    /// The `AUTH` arguments for one password.
    pub fn auth_args<'a>(&'a self, password: &'a str) -> Vec<&'a str> {
        let mut args = vec!["AUTH"];
        if let Some(u) = &self.user {
            args.push(u);
        }
        args.push(password);
        args
    }
}

/// A refusal of the credentials themselves (as opposed to a busy or loading server): the next
/// candidate password is worth trying.
pub fn is_refusal(e: &str) -> bool {
    e.starts_with("WRONGPASS") || e.starts_with("ERR") || e.starts_with("NOPERM")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_names_the_user_only_when_there_is_one() {
        let c = Credentials::user("tandem-operator", "p".into());
        assert_eq!(c.auth_args("p"), ["AUTH", "tandem-operator", "p"]);
        assert_eq!(
            Credentials::password(Some("p".into())).auth_args("p"),
            ["AUTH", "p"]
        );
        assert!(Credentials::password(Some(String::new()))
            .passwords
            .is_empty());
    }
}
