//! Reload on file change (a Tandem extension): Kubernetes updates a mounted
//! Secret by writing a new directory and swapping the `..data` symlink, so the
//! configured paths keep their names while what they resolve to changes. Once a
//! second the watcher stamps every configured file (symlinks resolved, contents
//! hashed) and rebuilds the configuration when the stamp changes. A new
//! configuration that fails (a half-written Secret: new certificate, old key)
//! keeps the one in use; the reason is logged once per set of files.

use super::Settings;
use crate::server::Server;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// How often the files are checked.
pub const POLL: Duration = Duration::from_secs(1);

/// What the configured files resolve to and hold, as one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(u64);

/// Stamps the files `s` names: each path's resolved target and contents (a
/// directory: each of its files). A missing file stamps as missing.
pub fn stamp(s: &Settings) -> Stamp {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in s.files() {
        f.hash(&mut h);
        let path = std::path::Path::new(&f);
        if path.is_dir() {
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            entries.sort();
            for e in entries.iter().filter(|e| e.is_file()) {
                hash_file(e, &mut h);
            }
        } else {
            hash_file(path, &mut h);
        }
    }
    Stamp(h.finish())
}

fn hash_file(path: &std::path::Path, h: &mut impl Hasher) {
    std::fs::canonicalize(path).ok().hash(h);
    // Certificates and keys are small; a huge file is not read whole.
    let meta = std::fs::metadata(path).ok();
    match meta {
        Some(m) if m.len() <= 1 << 20 => std::fs::read(path).ok().hash(h),
        Some(m) => (m.len(), m.modified().ok()).hash(h),
        None => 0u8.hash(h),
    }
}

/// What one check decided.
#[derive(Debug, PartialEq, Eq)]
enum Check {
    Unchanged,
    Changed(Stamp),
}

/// Compares the files with what the configuration in use was built from, and
/// with the last stamp that failed to build (not retried until it changes).
fn check(s: &Settings, built: Option<&(Settings, Stamp)>, failed: Option<Stamp>) -> Check {
    let now = stamp(s);
    match built {
        Some((bs, bst)) if bs == s && *bst == now => Check::Unchanged,
        _ if failed == Some(now) => Check::Unchanged,
        _ => Check::Changed(now),
    }
}

/// Watches the TLS files until shutdown.
pub async fn run(server: Arc<Server>) {
    let mut shutdown = server.shutdown.subscribe();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failed: Option<Stamp> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::server::stopping(&mut shutdown) => return,
        }
        if !Settings::from_config(&server.config.read()).in_use() {
            continue;
        }
        let srv = server.clone();
        // File reads off the async workers.
        let step = tokio::task::spawn_blocking(move || reload_if_changed(&srv, failed)).await;
        if let Ok(f) = step {
            failed = f;
        }
    }
}

/// One watcher step; returns the stamp that failed to build, if any.
fn reload_if_changed(server: &Server, failed: Option<Stamp>) -> Option<Stamp> {
    let s = Settings::from_config(&server.config.read());
    if !s.in_use() {
        return None;
    }
    let built = server.tls.built_from.lock().clone();
    let Check::Changed(now) = check(&s, built.as_ref(), failed) else {
        return failed;
    };
    match super::prepare(&s) {
        Ok(p) => {
            server.tls.install(p);
            crate::notice!("TLS configuration reloaded: the certificate files changed");
            None
        }
        Err(e) => {
            crate::warning!(
                "TLS files changed but the new configuration is refused, keeping the one in use: {e}"
            );
            Some(now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_follows_symlink_swaps_and_contents() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("v1")).unwrap();
        std::fs::create_dir(d.join("v2")).unwrap();
        std::fs::write(d.join("v1/tls.crt"), b"one").unwrap();
        std::fs::write(d.join("v2/tls.crt"), b"one").unwrap();
        std::os::unix::fs::symlink("v1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/tls.crt", d.join("tls.crt")).unwrap();
        let mut s = Settings::from_config(&crate::config::Config::default());
        s.cert_file = d.join("tls.crt").display().to_string();
        let first = stamp(&s);
        assert_eq!(check(&s, Some(&(s.clone(), first)), None), Check::Unchanged);
        // The kubelet's swap: same name, same bytes, a new target.
        std::fs::remove_file(d.join("..data")).unwrap();
        std::os::unix::fs::symlink("v2", d.join("..data")).unwrap();
        let second = stamp(&s);
        assert_ne!(first, second);
        assert_eq!(
            check(&s, Some(&(s.clone(), first)), None),
            Check::Changed(second)
        );
        // A stamp that failed to build is not retried until it changes.
        assert_eq!(
            check(&s, Some(&(s.clone(), first)), Some(second)),
            Check::Unchanged
        );
        std::fs::write(d.join("v2/tls.crt"), b"two").unwrap();
        assert_ne!(stamp(&s), second);
    }
}
