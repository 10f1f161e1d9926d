//! Starting one container: mount namespace, generated rootfs script, exec chain.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;

use super::{Launch, SandboxError};

/// Set to `1` to force the user-namespace path (`unshare -Urm`) even as root.
pub const USERNS_ENV: &str = "TANDEM_SANDBOX_USERNS";

/// Host /etc files copied into the pod's /etc on every spawn (when present).
const ETC_COPIES: &[&str] = &["passwd", "group", "nsswitch.conf", "resolv.conf"];

/// Top-level host directories the pod sees read-only (as symlinks where the host has
/// symlinks, e.g. /bin -> usr/bin on merged-/usr systems).
const SYSTEM_DIRS: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

fn bin(name: &str) -> Result<String, SandboxError> {
    super::host::find_bin(name).ok_or_else(|| SandboxError::Command {
        cmd: name.to_string(),
        status: "not started".into(),
        stderr: format!("`{name}` not found in /usr/bin, /bin, /usr/sbin or /sbin"),
    })
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

/// POSIX shell single-quoting.
fn sh_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

fn sh_path(p: &Path) -> String {
    sh_quote(&p.to_string_lossy())
}

/// Whether the user-namespace path is used: not root, or forced by [`USERNS_ENV`].
fn use_userns() -> bool {
    super::host::effective_uid() != Some(0) || std::env::var(USERNS_ENV).is_ok_and(|v| v == "1")
}

/// An absolute in-pod path without `..`, `.` or empty parts, as a relative path.
fn pod_rel(path: &str) -> Result<PathBuf, SandboxError> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(SandboxError::InvalidLaunch(format!(
            "mount path {path:?} is not absolute"
        )));
    }
    let mut rel = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => rel.push(n),
            _ => {
                return Err(SandboxError::InvalidLaunch(format!(
                    "mount path {path:?} must not contain `.` or `..`"
                )))
            }
        }
    }
    if rel.as_os_str().is_empty() {
        return Err(SandboxError::InvalidLaunch(
            "a mount over the pod's / is not supported".into(),
        ));
    }
    Ok(rel)
}

/// Atomically (write temp + rename) sets the pod's /etc/hosts (how pod DNS names
/// resolve). Callable before and after spawn; a running pod sees the new content
/// (`rootfs/etc` is a real directory, not a bind mount, so the rename shows through).
pub fn write_hosts(pod_dir: &Path, content: &str) -> std::io::Result<()> {
    let etc = pod_dir.join("rootfs").join("etc");
    fs::create_dir_all(&etc)?;
    let tmp = etc.join(format!(".hosts.tmp.{}", std::process::id()));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
    }
    // World-readable like a real /etc/hosts (the pod may run as another uid).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
    }
    fs::rename(&tmp, etc.join("hosts"))
}

/// Prepares `rootfs` on disk: mount points for the system dirs (or the same symlinks as
/// on the host), /etc copies, a default hosts file, /tmp.
fn prepare_rootfs(launch: &Launch, rootfs: &Path) -> Result<Vec<&'static str>, SandboxError> {
    fs::create_dir_all(rootfs).map_err(io_err(format!("creating {}", rootfs.display())))?;
    let mut binds = Vec::new();
    for d in SYSTEM_DIRS {
        let host = Path::new("/").join(d);
        let target = rootfs.join(d);
        let Ok(meta) = fs::symlink_metadata(&host) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let link =
                fs::read_link(&host).map_err(io_err(format!("reading {}", host.display())))?;
            let current = fs::read_link(&target).ok();
            if current.as_ref() != Some(&link) {
                remove_any(&target);
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(io_err(format!("creating symlink {}", target.display())))?;
            }
        } else if meta.is_dir() {
            if fs::symlink_metadata(&target).is_ok_and(|m| !m.is_dir()) {
                remove_any(&target);
            }
            fs::create_dir_all(&target)
                .map_err(io_err(format!("creating {}", target.display())))?;
            binds.push(*d);
        }
    }
    for d in ["dev", "proc", "tmp", "etc"] {
        let p = rootfs.join(d);
        fs::create_dir_all(&p).map_err(io_err(format!("creating {}", p.display())))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777));
    }
    let etc = rootfs.join("etc");
    for f in ETC_COPIES {
        let host = Path::new("/etc").join(f);
        // resolv.conf may be a symlink into /run: copy the content.
        if let Ok(content) = fs::read(&host) {
            fs::write(etc.join(f), content)
                .map_err(io_err(format!("copying {} into the pod", host.display())))?;
        }
    }
    fs::write(etc.join("hostname"), format!("{}\n", launch.hostname))
        .map_err(io_err("writing the pod's /etc/hostname"))?;
    if !etc.join("hosts").exists() {
        let content = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{}\n",
            launch.net.ip, launch.hostname
        );
        write_hosts(&launch.pod_dir, &content).map_err(io_err("writing the pod's /etc/hosts"))?;
    }
    Ok(binds)
}

fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir(p);
        }
        Ok(_) => {
            let _ = fs::remove_file(p);
        }
        Err(_) => {}
    }
}

/// The script run by /bin/sh inside the new mount namespace.
fn build_script(launch: &Launch, rootfs: &Path, binds: &[&str]) -> Result<String, SandboxError> {
    let mount = bin("mount")?;
    let mkdir = bin("mkdir")?;
    let touch = bin("touch")?;
    let chroot = bin("chroot")?;
    let r = sh_path(rootfs);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# generated by tandem local mode: the pod's filesystem view"
    );
    s.push_str("set -e\n");
    let _ = writeln!(s, "R={r}");
    // ro bind: a plain bind then a read-only remount of that bind. In a user namespace
    // the remount must keep the locked flags of the source mount (nosuid, nodev,
    // noexec), so they are re-read from the new mount and repeated.
    let _ = writeln!(
        s,
        "robind() {{\n  {mount} --bind \"$1\" \"$2\"\n  \
         {mount} -o remount,bind,ro \"$2\" 2>/dev/null || \
         {mount} -o \"remount,bind,ro,$(ro_flags \"$2\")\" \"$2\"\n}}"
    );
    let findmnt = super::host::find_bin("findmnt");
    match findmnt {
        Some(f) => {
            let _ = writeln!(
                s,
                "ro_flags() {{\n  o=$({f} -n -o VFS-OPTIONS --mountpoint \"$1\" | tail -n 1)\n  \
                 out=\n  for x in nosuid nodev noexec; do\n    case \",$o,\" in *,$x,*) out=\"$out,$x\";; esac\n  done\n  \
                 echo \"${{out#,}}\"\n}}"
            );
        }
        None => {
            s.push_str("ro_flags() { echo nosuid,nodev; }\n");
        }
    }
    for d in binds {
        let _ = writeln!(s, "robind /{d} \"$R/{d}\"");
    }
    let _ = writeln!(s, "{mount} --rbind /dev \"$R/dev\"");
    let _ = writeln!(s, "{mount} --rbind /proc \"$R/proc\"");
    if binds.contains(&"usr") {
        let _ = writeln!(
            s,
            "{mount} -t tmpfs -o mode=0755 tandem-usr-local \"$R/usr/local\""
        );
        let _ = writeln!(s, "{mkdir} -p \"$R/usr/local/bin\"");
        let _ = writeln!(s, "{touch} \"$R/usr/local/bin/tandem-server\"");
        let _ = writeln!(
            s,
            "robind {} \"$R/usr/local/bin/tandem-server\"",
            sh_path(&launch.server_bin)
        );
    } else {
        return Err(SandboxError::InvalidLaunch(
            "the host has no /usr directory to show in the pod".into(),
        ));
    }
    // Parents before children.
    let mut mounts: Vec<(&super::Mount, PathBuf)> = Vec::new();
    for m in &launch.mounts {
        mounts.push((m, pod_rel(&m.path)?));
    }
    mounts.sort_by_key(|(_, rel)| rel.components().count());
    for (m, rel) in mounts {
        let meta = fs::metadata(&m.host).map_err(io_err(format!(
            "mount source {} for {}",
            m.host.display(),
            m.path
        )))?;
        let target = format!("\"$R\"/{}", sh_path(&rel));
        if meta.is_dir() {
            let _ = writeln!(s, "{mkdir} -p {target}");
        } else {
            if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
                let _ = writeln!(s, "{mkdir} -p \"$R\"/{}", sh_path(parent));
            }
            let _ = writeln!(s, "[ -e {target} ] || {touch} {target}");
        }
        if m.read_only {
            let _ = writeln!(s, "robind {} {target}", sh_path(&m.host));
        } else {
            let _ = writeln!(s, "{mount} --bind {} {target}", sh_path(&m.host));
        }
    }
    let mut cmd = String::new();
    for a in &launch.command {
        cmd.push(' ');
        cmd.push_str(&sh_quote(a));
    }
    match &launch.workdir {
        Some(w) => {
            let _ = writeln!(
                s,
                "exec {chroot} \"$R\" /bin/sh -c 'cd \"$1\" && shift && exec \"$@\"' sh {}{cmd}",
                sh_quote(w)
            );
        }
        None => {
            let _ = writeln!(s, "exec {chroot} \"$R\"{cmd}");
        }
    }
    Ok(s)
}

/// Starts the container; the returned child's pid IS the container's main process
/// (exec chain, no intermediate shell left behind), in its own process group (so a
/// terminal's Ctrl-C does not reach pods before the runtime stops them in order).
/// Must be called inside a tokio runtime (tokio::process). Uses the user-namespace
/// path when not root or when [`USERNS_ENV`]`=1`.
pub fn spawn(launch: &Launch) -> Result<tokio::process::Child, SandboxError> {
    spawn_with(launch, use_userns())
}

/// [`spawn`] with an explicit choice of the user-namespace path (`unshare -Urm`,
/// `force_userns = true`) or a plain mount namespace (`unshare -m`, needs root).
pub fn spawn_with(launch: &Launch, userns: bool) -> Result<tokio::process::Child, SandboxError> {
    if launch.command.is_empty() {
        return Err(SandboxError::InvalidLaunch("empty command".into()));
    }
    let rootfs = launch.pod_dir.join("rootfs");
    let binds = prepare_rootfs(launch, &rootfs)?;
    let script = build_script(launch, &rootfs, &binds)?;
    let script_path = launch.pod_dir.join("sandbox.sh");
    fs::write(&script_path, script)
        .map_err(io_err(format!("writing {}", script_path.display())))?;

    let unshare = super::host::unshare_bin().to_string();
    let ns_flags: &[&str] = if userns {
        &["-Urm", "--propagation", "private"]
    } else {
        &["-m", "--propagation", "private"]
    };
    if userns {
        probe_userns(&unshare)?;
    }

    let mut argv: Vec<String> = Vec::new();
    if let Some(ns) = &launch.net.netns {
        argv.extend([
            super::host::ip_bin().to_string(),
            "netns".into(),
            "exec".into(),
            ns.clone(),
        ]);
    }
    argv.push(unshare);
    argv.extend(ns_flags.iter().map(|s| s.to_string()));
    argv.push("/bin/sh".into());
    argv.push(script_path.to_string_lossy().into_owned());

    if let Some(parent) = launch.log.parent() {
        fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
    }
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
        .map_err(io_err(format!("opening log {}", launch.log.display())))?;
    let log2 = log
        .try_clone()
        .map_err(io_err(format!("opening log {}", launch.log.display())))?;

    let mut cmd = tokio::process::Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .process_group(0)
        .kill_on_drop(false);
    for (k, v) in &launch.env {
        if k != "HOSTNAME" && !(launch.net.netns.is_none() && k == "TANDEM_BIND") {
            cmd.env(k, v);
        }
    }
    cmd.env("HOSTNAME", &launch.hostname);
    if launch.net.netns.is_none() {
        cmd.env("TANDEM_BIND", launch.net.ip.to_string());
    }
    cmd.spawn().map_err(|e| SandboxError::Command {
        cmd: argv.join(" "),
        status: "not started".into(),
        stderr: e.to_string(),
    })
}

/// Checks once per process that `unshare -Urm` works.
fn probe_userns(unshare: &str) -> Result<(), SandboxError> {
    static PROBE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let res = PROBE.get_or_init(|| {
        match std::process::Command::new(unshare)
            .args(["-Urm", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "{}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(e.to_string()),
        }
    });
    res.clone().map_err(|detail| SandboxError::NoNamespaces {
        cmd: format!("{unshare} -Urm true"),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn pod_paths() {
        assert_eq!(pod_rel("/data").unwrap(), PathBuf::from("data"));
        assert_eq!(
            pod_rel("/etc/tandem/config").unwrap(),
            PathBuf::from("etc/tandem/config")
        );
        assert!(pod_rel("data").is_err());
        assert!(pod_rel("/a/../b").is_err());
        assert!(pod_rel("/").is_err());
    }

    #[test]
    fn hosts_are_replaced_atomically() {
        let dir = std::env::temp_dir().join(format!("tnd-sbx-unit-{}", std::process::id()));
        write_hosts(&dir, "1.2.3.4 a\n").unwrap();
        write_hosts(&dir, "1.2.3.5 b\n").unwrap();
        let got = fs::read_to_string(dir.join("rootfs/etc/hosts")).unwrap();
        assert_eq!(got, "1.2.3.5 b\n");
        let _ = fs::remove_dir_all(&dir);
    }
}
