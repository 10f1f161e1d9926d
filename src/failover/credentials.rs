//! How the operator's own connections authenticate: as the default user or as the internal
//! user (`spec.auth.internalUser`), with one or more candidate passwords tried in order.
//!
//! Several passwords exist while a password rotation is in flight (see
//! `controller::rotation`): the pods accept the old and the new one, and the operator tries the
//! new one first and falls back to the old, so a pod whose password file has not been updated
//! yet (or that restarted with an older copy) is never mistaken for an unreachable master.

use super::probe::{Client, ProbeError, Timeouts, Value};

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
    fn auth_args<'a>(&'a self, password: &'a str) -> Vec<&'a str> {
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
fn is_refusal(e: &str) -> bool {
    e.starts_with("WRONGPASS") || e.starts_with("ERR") || e.starts_with("NOPERM")
}

/// Connects to `addr` and authenticates with the first of `creds.passwords` the server
/// accepts. The failed `AUTH` attempts happen on the same connection (a refused `AUTH` leaves
/// it open and unauthenticated), so fallback costs one round trip, not one connect.
pub async fn connect(
    addr: &str,
    creds: &Credentials,
    timeouts: Timeouts,
) -> Result<Client, ProbeError> {
    let mut client = Client::connect(addr, None, timeouts).await?;
    authenticate(&mut client, creds).await?;
    Ok(client)
}

/// `AUTH` with each candidate in turn until one is accepted; the last refusal is the error.
pub async fn authenticate(client: &mut Client, creds: &Credentials) -> Result<(), ProbeError> {
    let mut last = None;
    for pw in &creds.passwords {
        match client.command(&creds.auth_args(pw)).await? {
            Value::Simple(_) => return Ok(()),
            Value::Error(e) if is_refusal(&e) => last = Some(e),
            Value::Error(e) => return Err(ProbeError::Auth(e)),
            other => return Err(ProbeError::Auth(format!("{other:?}"))),
        }
    }
    match last {
        Some(e) => Err(ProbeError::Auth(e)),
        None => Ok(()),
    }
}

/// Whether `addr` accepts exactly these credentials (one password): `Ok(true)` accepted,
/// `Ok(false)` refused (WRONGPASS), `Err` when the pod could not be asked.
pub async fn accepts(
    addr: &str,
    user: Option<&str>,
    password: &str,
    timeouts: Timeouts,
) -> Result<bool, ProbeError> {
    let creds = Credentials {
        user: user.map(String::from),
        passwords: vec![password.to_string()],
    };
    let mut client = Client::connect(addr, None, timeouts).await?;
    match authenticate(&mut client, &creds).await {
        Ok(()) => Ok(true),
        Err(ProbeError::Auth(e)) if e.starts_with("WRONGPASS") => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers `AUTH` with OK only for `good` (any user), WRONGPASS otherwise,
    /// and counts the AUTH commands it saw.
    async fn auth_server(good: &'static str) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 512];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let req = String::from_utf8_lossy(&buf[..n]).to_string();
                        let last = req.trim_end().rsplit("\r\n").next().unwrap_or("");
                        let reply: &[u8] = if last == good {
                            b"+OK\r\n"
                        } else {
                            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
                        };
                        if s.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn quick() -> Timeouts {
        Timeouts::uniform(Duration::from_millis(500))
    }

    #[tokio::test]
    async fn the_first_accepted_password_wins_and_a_refused_one_falls_through() {
        let addr = auth_server("old").await;
        let both = Credentials {
            user: None,
            passwords: vec!["new".into(), "old".into()],
        };
        assert!(connect(&addr, &both, quick()).await.is_ok());
        let only_new = Credentials::password(Some("new".into()));
        let e = connect(&addr, &only_new, quick()).await.err().unwrap();
        assert!(
            matches!(&e, ProbeError::Auth(m) if m.starts_with("WRONGPASS")),
            "{e}"
        );
        assert!(accepts(&addr, None, "old", quick()).await.unwrap());
        assert!(!accepts(&addr, Some("tandem-operator"), "new", quick())
            .await
            .unwrap());
    }

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
