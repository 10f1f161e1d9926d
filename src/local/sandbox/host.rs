//! Host facts the sandbox relies on: the effective uid and where the `unshare` and `ip`
//! binaries are. Both the launcher and the network setup read them; keeping them here keeps
//! those two modules independent of each other.

use std::path::Path;

/// The effective uid (rustix's safe geteuid).
pub(super) fn effective_uid() -> Option<u32> {
    Some(rustix::process::geteuid().as_raw())
}

/// First of the system binary directories holding `name`.
pub(super) fn find_bin(name: &str) -> Option<String> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| Path::new(p).exists())
}

/// The `unshare` binary, by absolute path when found.
pub(super) fn unshare_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| find_bin("unshare").unwrap_or_else(|| "unshare".into()))
}

/// The `ip` binary, by absolute path when found (the caller's PATH may be minimal).
pub(super) fn ip_bin() -> &'static str {
    for p in ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"] {
        if std::path::Path::new(p).exists() {
            return p;
        }
    }
    "ip"
}
