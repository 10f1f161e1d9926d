//! The lowest layer of local mode's process runtime: run one container of a pod as a
//! real process, with its own network identity and its own filesystem view.
//!
//! Two pieces:
//! - [`Network`] hands out one IPv4 address per pod. In [`NetMode::Netns`] (root) every
//!   pod gets its own network namespace `tnd<instance>-<n>` with a veth pair whose host
//!   end (`tnd<instance>v<n>`) sits on the instance's bridge `tnd<instance>br`
//!   (10.X.Y.1/24; pods are 10.X.Y.n). The host reaches every pod address, pods reach
//!   each other. In [`NetMode::Loopback`] (the non-root fallback) pods get distinct
//!   127.X.Y.n addresses and share the host's network; [`spawn`] exports
//!   `TANDEM_BIND=<ip>` so the server binds there. [`sweep`] removes what an instance
//!   that died without cleaning up left behind (see its doc).
//! - [`spawn`] starts the container: a private mount namespace (`unshare -m` as root,
//!   `unshare -Urm` in a user namespace otherwise or when `TANDEM_SANDBOX_USERNS=1`), in
//!   which a generated script (`<pod_dir>/sandbox.sh`) builds the pod's filesystem
//!   view under `<pod_dir>/rootfs` and then `exec chroot`s into it. The view: read-only
//!   binds of the host's /usr (and /bin, /sbin, /lib, /lib64, recreated as symlinks
//!   where the host has symlinks), recursive binds of /dev and /proc, a tmpfs over
//!   /usr/local holding only `bin/tandem-server` (bound to [`Launch::server_bin`]), a
//!   real `/etc` directory with copies of the host's passwd, group, nsswitch.conf and
//!   resolv.conf plus the managed `hosts` file ([`write_hosts`]), a plain /tmp, and
//!   the [`Launch::mounts`]. Every mount dies with the mount namespace, so stopping
//!   the process leaves nothing mounted on the host.
//!
//! The process chain execs all the way (`ip netns exec` → `unshare` → `sh` → `chroot`
//! → the command), so the pid of the returned child is the container's main process.
//! It runs in its own process group. There is no parent-death signal: the runtime must
//! kill pods by pid when it stops, then [`Network::detach`] them.

mod host;
mod launch;
mod nat;
mod network;

use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use launch::{spawn, spawn_with, write_hosts, USERNS_ENV};
pub use nat::Forward;
pub use network::{sweep, Network};

/// How pods get their network identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetMode {
    /// One network namespace per pod behind a per-instance bridge (needs root and `ip`).
    Netns,
    /// Distinct 127.X.Y.n addresses in the host's network (no privileges needed).
    Loopback,
}

impl NetMode {
    /// [`NetMode::Netns`] when the effective uid is 0, `ip` runs and a network namespace
    /// can be created; [`NetMode::Loopback`] otherwise.
    pub fn detect() -> NetMode {
        if host::effective_uid() == Some(0) && network::netns_usable() {
            NetMode::Netns
        } else {
            NetMode::Loopback
        }
    }
}

/// Errors of the sandbox layer.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid local-mode instance name {0:?}: it must match [a-z0-9]{{1,6}}")]
    InvalidInstance(String),
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "local mode needs root or unprivileged user namespaces to give pods their own \
         filesystem view; `{cmd}` failed: {detail}"
    )]
    NoNamespaces { cmd: String, detail: String },
    #[error("network namespace mode needs root (effective uid 0) and a working `ip`: {0}")]
    NetnsUnavailable(String),
    #[error("no free 10.X.Y.0/24 subnet for local-mode instance {0:?}")]
    NoSubnet(String),
    #[error("all pod addresses of local-mode instance {0:?} are in use")]
    AddressesExhausted(String),
    #[error("invalid launch: {0}")]
    InvalidLaunch(String),
}

/// A pod's network identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNet {
    pub ip: Ipv4Addr,
    /// The network namespace (for `ip netns exec`), in [`NetMode::Netns`] only.
    pub netns: Option<String>,
}

/// A host directory or file made visible at an absolute path inside the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub path: String,
    pub read_only: bool,
}

/// Everything [`spawn`] needs to start one container.
#[derive(Debug, Clone)]
pub struct Launch {
    /// `STATE/pods/<ns>_<pod>`; the sandbox uses `pod_dir/rootfs` and `pod_dir/sandbox.sh`.
    pub pod_dir: PathBuf,
    pub net: PodNet,
    /// The pod name; also exported as `HOSTNAME`.
    pub hostname: String,
    pub mounts: Vec<Mount>,
    /// Container command + args, run inside the pod's filesystem view (looked up with the
    /// `PATH` of [`Launch::env`], or /bin:/usr/bin when it has none).
    pub command: Vec<String>,
    /// The complete environment; the sandbox adds `HOSTNAME` and, in Loopback mode
    /// (no netns in [`Launch::net`]), `TANDEM_BIND=<ip>`.
    pub env: Vec<(String, String)>,
    /// Host path of tandem-server; appears in the pod at /usr/local/bin/tandem-server.
    pub server_bin: PathBuf,
    /// stdout and stderr are appended here (the sandbox script's own errors too).
    pub log: PathBuf,
    pub workdir: Option<String>,
}
