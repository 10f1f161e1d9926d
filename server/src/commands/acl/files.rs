//! Users from files and configuration: startup (`requirepass`, `user` directives,
//! `aclfile`), the ACL file for ACL LOAD / SAVE, CONFIG REWRITE's user lines, and
//! the Tandem credential-file watcher.

use super::check::catalog;
use crate::acl::{file, User};
use crate::server::Server;
use std::sync::Arc;

pub(super) fn write_atomically(path: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = format!("{path}.tmp-{}", std::process::id());
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
/// Reads and parses the ACL file; a file without `default` gets a fresh one.
pub fn read_aclfile(path: &str, pubsub_default_all: bool) -> Result<Vec<User>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("Error loading ACLs, opening file '{path}': {e}"))?;
    parse_acl_text(&text, path, pubsub_default_all)
}

fn parse_acl_text(text: &str, path: &str, pubsub_default_all: bool) -> Result<Vec<User>, String> {
    let mut users = file::parse(text, path, catalog(), pubsub_default_all)?;
    if !users.iter().any(|u| u.name == "default") {
        users.push(User::default_user(catalog()));
    }
    Ok(users)
}

/// Every user as the words of a `user` directive (name, then rules), for CONFIG
/// REWRITE.
pub fn user_lines(server: &Server) -> Vec<Vec<String>> {
    let acl = server.acl.read();
    acl.users
        .values()
        .map(|u| {
            std::iter::once(u.name.clone())
                .chain(u.describe(catalog()).split(' ').map(String::from))
                .collect()
        })
        .collect()
}

/// Replaces every user with `users`.
pub fn install_users(server: &Server, users: Vec<User>) {
    server.acl.modify(|acl| {
        acl.users = users
            .into_iter()
            .map(|u| (u.name.clone(), Arc::new(u)))
            .collect();
    });
}

/// `requirepass` as Redis 7.0 applies it: the default user's passwords become
/// just this one (`resetpass >pw`), or `nopass` when it is empty.
pub fn apply_requirepass(server: &Server, pass: Option<&str>) {
    let op = match pass {
        Some(p) => format!(">{p}"),
        None => "nopass".to_string(),
    };
    set_default_passwords(server, &[op]);
}

/// Replaces the default user's passwords (`resetpass`, then each rule word in
/// `ops`), keeping its other rules.
fn set_default_passwords(server: &Server, ops: &[String]) {
    let cat = catalog();
    server.acl.modify(|acl| {
        let mut u = acl
            .users
            .get("default")
            .map(|u| (**u).clone())
            .unwrap_or_else(|| User::default_user(cat));
        // Password words cannot fail (`>p`, `nopass`); the results are not needed.
        let _ = u.apply(cat, "resetpass", false);
        for op in ops {
            let _ = u.apply(cat, op, false);
        }
        acl.users.insert("default".into(), Arc::new(u));
    });
}

/// Why the users configured at startup could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("Error in user declaration '{line}': {err}")]
    Directive { line: String, err: String },
    #[error("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.")]
    Both,
    #[error("Aborting Redis startup because of ACL errors: {0}")]
    File(String),
}

/// Startup: the default user, `requirepass`, `user` directives or the `aclfile`,
/// then the credential-file watcher when a file is configured.
pub fn init(server: &Arc<Server>) -> Result<(), StartupError> {
    let cat = catalog();
    let (requirepass, directives, path, all) = {
        let c = server.config.read();
        (
            c.requirepass.clone(),
            c.acl_users.clone(),
            c.get("aclfile").unwrap_or("").to_string(),
            c.get("acl-pubsub-default") == Some("allchannels"),
        )
    };
    install_users(server, vec![User::default_user(cat)]);
    apply_requirepass(server, requirepass.as_deref());
    if !path.is_empty() && !directives.is_empty() {
        return Err(StartupError::Both);
    }
    for words in &directives {
        let line = words.join(" ");
        let (name, ops) = words.split_first().ok_or_else(|| StartupError::Directive {
            line: line.clone(),
            err: "Syntax error".into(),
        })?;
        file::check_username(name).map_err(|e| StartupError::Directive {
            line: line.clone(),
            err: e.into(),
        })?;
        let mut user = match server.acl.read().user(name) {
            Some(u) if name == "default" => (**u).clone(),
            _ => User::new(cat, name, all),
        };
        user.apply_all(cat, ops, all)
            .map_err(|e| StartupError::Directive {
                line: line.clone(),
                err: e.to_string(),
            })?;
        server.acl.modify(|acl| {
            acl.users.insert(name.clone(), Arc::new(user));
        });
    }
    if !path.is_empty() {
        let users = read_aclfile(&path, all).map_err(StartupError::File)?;
        install_users(server, users);
    }
    if let Some(path) = requirepass_file(server) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| StartupError::File(format!("{path}: {e}")))?;
        apply_password_file(server, &text).map_err(StartupError::File)?;
    }
    spawn_watcher(server);
    Ok(())
}

fn requirepass_file(server: &Server) -> Option<String> {
    server
        .config
        .read()
        .get("tandem-requirepass-file")
        .filter(|f| !f.is_empty())
        .map(String::from)
}

/// After the users were replaced, the password file (if configured) still decides
/// the default user's passwords; a file that cannot be read now leaves them as
/// loaded (the watcher retries on its next change).
pub(super) fn reapply_password_file(server: &Server) {
    let Some(path) = requirepass_file(server) else {
        return;
    };
    let applied = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| apply_password_file(server, &text));
    if let Err(e) = applied {
        crate::warning!("Password file {path} not applied after ACL LOAD: {e}");
    }
}

/// `tandem-requirepass-file`: each non-empty line is a password of the default
/// user (several lines let a rotation add the new one before removing the old).
/// Its other rules are kept.
fn apply_password_file(server: &Server, text: &str) -> Result<(), String> {
    let passwords: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .collect();
    if passwords.is_empty() {
        return Err("the password file has no password in it".into());
    }
    let ops: Vec<String> = passwords.iter().map(|p| format!(">{p}")).collect();
    set_default_passwords(server, &ops);
    Ok(())
}

/// How often the credential files are compared with what was loaded.
const WATCH_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// One watched credential file: its path and the text last seen.
struct Watched {
    path: String,
    seen: Option<String>,
}

impl Watched {
    /// The file's text when it differs from what was seen last. The path is
    /// opened anew each time, so a Kubernetes Secret update (a symlink swap) is
    /// followed.
    fn changed(&mut self) -> Option<String> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        if self.seen.as_deref() == Some(text.as_str()) {
            return None;
        }
        self.seen = Some(text.clone());
        Some(text)
    }
}

/// Tandem extension: re-reads `aclfile` and `tandem-requirepass-file` when their
/// content changes. A file that does not parse leaves the users as they are (and is
/// logged once per version); connections keep running unless their user is gone
/// or was turned off.
fn spawn_watcher(server: &Arc<Server>) {
    let path_of = |name: &str| {
        server
            .config
            .read()
            .get(name)
            .filter(|f| !f.is_empty())
            .map(String::from)
    };
    let seen = |path: String| Watched {
        seen: std::fs::read_to_string(&path).ok(),
        path,
    };
    let mut aclfile = path_of("aclfile").map(seen);
    let mut passfile = path_of("tandem-requirepass-file").map(seen);
    if aclfile.is_none() && passfile.is_none() {
        return;
    }
    let weak = Arc::downgrade(server);
    let mut stop = server.shutdown.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_PERIOD) => {}
                _ = crate::server::stopping(&mut stop) => return,
            }
            let Some(server) = weak.upgrade() else {
                return;
            };
            if let Some(text) = aclfile.as_mut().and_then(Watched::changed) {
                reload_aclfile(&server, aclfile.as_ref().map_or("", |w| &w.path), &text);
                // The password file, if any, still decides the default user's passwords.
                if let Some(w) = passfile.as_mut() {
                    w.seen = None;
                }
            }
            if let Some(text) = passfile.as_mut().and_then(Watched::changed) {
                match apply_password_file(&server, &text) {
                    Ok(()) => crate::notice!("Default user password file reloaded"),
                    Err(e) => crate::warning!(
                        "Password file not applied, the old passwords stay in force: {e}"
                    ),
                }
                close_sessions_without_user(&server);
            }
        }
    });
}

fn reload_aclfile(server: &Server, path: &str, text: &str) {
    let all = server.config.read().get("acl-pubsub-default") == Some("allchannels");
    match parse_acl_text(text, path, all) {
        Ok(users) => {
            install_users(server, users);
            close_sessions_without_user(server);
            crate::notice!("ACL file {path} changed: users reloaded");
        }
        Err(e) => crate::warning!(
            "ACL file {path} changed but was not loaded, the users stay as they were: {e}"
        ),
    }
}

/// Closes connections whose user no longer exists or was turned off (not the
/// master link, which runs as no user).
fn close_sessions_without_user(server: &Server) {
    let handles: Vec<_> = server.clients.lock().values().cloned().collect();
    let acl = server.acl.read();
    for h in handles {
        let (user, master) = {
            let i = h.info.lock();
            (i.user.clone(), i.flags.contains('M'))
        };
        if !master && !acl.user(&user).is_some_and(|u| u.enabled) {
            h.kill();
        }
    }
}
