//! The ACL file (`aclfile`): one `user <name> <rules...>` line per user, `#`
//! comments and blank lines ignored; written back by ACL SAVE in the same form.

use super::catalog::Catalog;
use super::rules::User;

/// Parses an ACL file's text into users; every problem is reported, as Redis lists
/// them (`<file>:<line>: <problem>. `), and then nothing is loaded.
pub fn parse(
    text: &str,
    path: &str,
    catalog: &Catalog,
    pubsub_default_all: bool,
) -> Result<Vec<User>, String> {
    let mut errors = String::new();
    let mut users: Vec<User> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words = crate::resp::split_args(line.as_bytes()).map(|w| {
            w.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
        });
        let Some(words) = words else {
            errors.push_str(&format!("{path}:{n}: unbalanced quotes in acl line. "));
            continue;
        };
        let Some((head, rest)) = words.split_first() else {
            continue;
        };
        let Some((name, rules)) = rest.split_first().filter(|_| head == "user") else {
            errors.push_str(&format!(
                "{path}:{n}: line should start with user keyword. "
            ));
            continue;
        };
        if let Err(e) = check_username(name) {
            errors.push_str(&format!("{path}:{n}: {e}. "));
            continue;
        }
        if users.iter().any(|u| u.name == *name) {
            errors.push_str(&format!("{path}:{n}: Duplicate user '{name}' found. "));
            continue;
        }
        let mut user = User::new(catalog, name, pubsub_default_all);
        match user.apply_all(catalog, rules, pubsub_default_all) {
            Ok(()) => users.push(user),
            Err(e) => errors.push_str(&format!("{path}:{n}: {e}. ")),
        }
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        Err(errors.trim_end().to_string())
    }
}

/// Redis refuses user names with spaces or NUL bytes.
pub fn check_username(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.bytes().any(|c| c == b' ' || c == 0) {
        Err("Usernames can't contain spaces or null characters")
    } else {
        Ok(())
    }
}

/// The file text ACL SAVE writes: one line per user, in name order.
pub fn render<'a>(users: impl Iterator<Item = &'a User>, catalog: &Catalog) -> String {
    let mut s = String::new();
    for u in users {
        s.push_str("user ");
        s.push_str(&u.name);
        s.push(' ');
        s.push_str(&u.describe(catalog));
        s.push('\n');
    }
    s
}
