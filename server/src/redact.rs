//! Which command arguments are secrets: the one rule SLOWLOG and MONITOR use to
//! show `(redacted)` in place of a password (Redis 7.0's `redactClientCommandArgument`
//! calls, gathered into one pure function instead of spread over the handlers).
//!
//! Redis 7.0.15 (checked against the real server):
//! * `AUTH <password>` and `AUTH <user> <password>`: every argument.
//! * `HELLO <protover> ... AUTH <user> <password> ...`: the two values after `AUTH`.
//! * `CONFIG SET name value ...`: the value of every sensitive directive
//!   ([`table::S`]: `requirepass`, `masterauth`, `masteruser`), whatever the others.
//! * `MIGRATE ... AUTH <password>` / `AUTH2 <user> <password>`.
//! * `ACL SETUSER <user> <rule> ...`: the user name and every rule (a rule may be a
//!   `>password` or a `#hash`), whether or not the rules are valid.
//!
//! Where Tandem is stricter than Redis, on purpose: Redis redacts only after its
//! handler got past the first syntax checks, so a malformed `AUTH a b c`, `HELLO 4
//! AUTH u p` (bad version) or `CONFIG SET requirepass p maxmemory` (odd count) is
//! logged with the password in clear. Here the rule depends on the arguments alone,
//! so those are redacted too; and the TLS key passphrases (`tls-key-file-pass`,
//! `tls-client-key-file-pass`), which Redis 7.0.15 still shows, are sensitive.

use crate::config::table;
use crate::util::is_kw;
use bytes::Bytes;
use std::borrow::Cow;

/// What a redacted argument is replaced with (Redis's shared `redacted` object).
pub const REDACTED: &[u8] = b"(redacted)";

/// Indexes into `argv` (0 = the command name) of the arguments to hide, in order.
/// `name` is the command table's canonical (lower-case) name.
pub fn positions(name: &str, argv: &[Bytes]) -> Vec<usize> {
    match name {
        "auth" => (1..argv.len()).collect(),
        "hello" => hello(argv),
        "config" => config_set(argv),
        "migrate" => migrate(argv),
        "acl" if argv.len() > 2 && is_kw(&argv[1], "setuser") => (2..argv.len()).collect(),
        "acl|setuser" => (2..argv.len()).collect(),
        _ => Vec::new(),
    }
}

/// `argv` with the secrets replaced by [`REDACTED`]; borrowed when there are none.
pub fn redacted<'a>(name: &str, argv: &'a [Bytes]) -> Cow<'a, [Bytes]> {
    let hide = positions(name, argv);
    if hide.is_empty() {
        return Cow::Borrowed(argv);
    }
    let mut out = argv.to_vec();
    for i in hide {
        if let Some(a) = out.get_mut(i) {
            *a = Bytes::from_static(REDACTED);
        }
    }
    Cow::Owned(out)
}

/// HELLO's option scan: `AUTH` takes two values, `SETNAME` one; an unknown option
/// is skipped alone (Redis would stop there with a syntax error).
fn hello(argv: &[Bytes]) -> Vec<usize> {
    let mut hide = Vec::new();
    let mut j = 2;
    while j < argv.len() {
        let more = argv.len() - j - 1;
        if is_kw(&argv[j], "auth") && more >= 2 {
            hide.extend([j + 1, j + 2]);
            j += 3;
        } else if is_kw(&argv[j], "setname") && more >= 1 {
            j += 2;
        } else {
            j += 1;
        }
    }
    hide
}

/// CONFIG SET's name/value pairs: the value after every sensitive name.
fn config_set(argv: &[Bytes]) -> Vec<usize> {
    if argv.len() < 3 || !is_kw(&argv[1], "set") {
        return Vec::new();
    }
    (2..argv.len())
        .step_by(2)
        .filter(|&i| i + 1 < argv.len() && is_sensitive(&argv[i]))
        .map(|i| i + 1)
        .collect()
}

/// True for a directive (name or alias, any case) whose value is a secret.
pub fn is_sensitive(name: &[u8]) -> bool {
    let Ok(name) = std::str::from_utf8(name) else {
        return false;
    };
    table::find(&name.to_ascii_lowercase()).is_some_and(|d| d.has(table::S))
}

/// MIGRATE's options after the five fixed arguments; KEYS ends the scan.
fn migrate(argv: &[Bytes]) -> Vec<usize> {
    let mut hide = Vec::new();
    let mut j = 6;
    while j < argv.len() {
        if is_kw(&argv[j], "auth") {
            hide.extend((j + 1..argv.len()).take(1));
            j += 2;
        } else if is_kw(&argv[j], "auth2") {
            hide.extend((j + 1..argv.len()).take(2));
            j += 3;
        } else if is_kw(&argv[j], "keys") {
            break;
        } else {
            j += 1;
        }
    }
    hide
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|w| Bytes::from(w.to_string())).collect()
    }

    fn shown(name: &str, line: &str) -> String {
        let v = argv(line);
        redacted(name, &v)
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn auth_hides_every_argument() {
        assert_eq!(shown("auth", "AUTH pw"), "AUTH (redacted)");
        assert_eq!(shown("auth", "auth u pw"), "auth (redacted) (redacted)");
        assert_eq!(
            shown("auth", "auth a b c"),
            "auth (redacted) (redacted) (redacted)"
        );
    }

    #[test]
    fn hello_hides_the_auth_pair_only() {
        assert_eq!(
            shown("hello", "hello 3 auth default pw setname foo"),
            "hello 3 auth (redacted) (redacted) setname foo"
        );
        assert_eq!(
            shown("hello", "HELLO 2 SETNAME auth AUTH u p"),
            "HELLO 2 SETNAME auth AUTH (redacted) (redacted)"
        );
        assert_eq!(shown("hello", "hello 3 auth"), "hello 3 auth");
        assert_eq!(shown("hello", "hello 3 auth u"), "hello 3 auth u");
        assert_eq!(
            shown("hello", "hello 4 bogus auth u p"),
            "hello 4 bogus auth (redacted) (redacted)"
        );
    }

    #[test]
    fn config_set_hides_sensitive_values() {
        assert_eq!(
            shown("config", "config set maxmemory 0 requirepass pw"),
            "config set maxmemory 0 requirepass (redacted)"
        );
        for name in [
            "MASTERAUTH",
            "masteruser",
            "tls-key-file-pass",
            "tls-client-key-file-pass",
        ] {
            assert_eq!(
                shown("config", &format!("config set {name} x")),
                format!("config set {name} (redacted)")
            );
        }
        assert_eq!(
            shown("config", "config set requirepass p maxmemory"),
            "config set requirepass (redacted) maxmemory"
        );
        assert_eq!(
            shown("config", "config get requirepass"),
            "config get requirepass"
        );
        assert_eq!(
            shown("config", "config set requirepass"),
            "config set requirepass"
        );
    }

    #[test]
    fn migrate_hides_auth_and_auth2() {
        assert_eq!(
            shown("migrate", "migrate h 1 k 0 10 COPY AUTH pw KEYS auth x"),
            "migrate h 1 k 0 10 COPY AUTH (redacted) KEYS auth x"
        );
        assert_eq!(
            shown("migrate", "migrate h 1 k 0 10 auth2 u p"),
            "migrate h 1 k 0 10 auth2 (redacted) (redacted)"
        );
        assert_eq!(
            shown("migrate", "migrate h 1 k 0 10 auth"),
            "migrate h 1 k 0 10 auth"
        );
    }

    #[test]
    fn other_commands_are_shown_as_sent() {
        let v = argv("set requirepass pw");
        assert!(matches!(redacted("set", &v), Cow::Borrowed(_)));
    }
}
