//! Volumes, environment and command line of a pod's container.
//!
//! Volumes are directories under the pod's directory `pods/<ns>_<pod>/`:
//! - configMap, secret, downwardAPI: `volumes/<volume>/`, files written atomically
//!   (temp file + rename) and re-synced while the pod runs, so changes to the object reach
//!   the container like in Kubernetes (per file, not the whole set at once);
//! - emptyDir: `volumes/<volume>/`, kept across container restarts, wiped when a new pod
//!   object (new UID) of the same name appears; `medium: Memory` is a plain directory;
//! - persistentVolumeClaim: `pvc/<claimName>/`, survives the pod;
//! - hostPath: the host path itself.
//!
//! Other volume kinds (projected, CSI, ...) are not supported: the container is not
//! started and the pod reports why.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};

use crate::local::sandbox::Mount;

/// Where a configMap's or Secret's data comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    ConfigMap,
    Secret,
}

/// Looks up the data of a ConfigMap or Secret in the pod's namespace (None: absent).
pub type Lookup<'a> = &'a dyn Fn(Source, &str) -> Option<BTreeMap<String, Vec<u8>>>;

/// One file of a projected volume: relative path, content, mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolFile {
    pub path: PathBuf,
    pub data: Vec<u8>,
    pub mode: u32,
}

const DEFAULT_MODE: i32 = 0o644;

fn relative_ok(p: &str) -> bool {
    let path = Path::new(p);
    !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Why a pod's volumes, mounts or environment cannot be prepared (shown as the container's
/// waiting message).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("couldn't find key {key} in {what}")]
    MissingKey { key: String, what: String },
    #[error("invalid path {path:?} in {what}")]
    InvalidPath { path: String, what: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("invalid downwardAPI path {0:?}")]
    InvalidDownwardPath(String),
    #[error("downwardAPI resourceFieldRef is not supported in local mode")]
    ResourceFieldRef,
    #[error("unsupported fieldRef {0}")]
    UnsupportedFieldRef(String),
    #[error("invalid claim name {0:?}")]
    InvalidClaimName(String),
    #[error("invalid volume name {0:?}")]
    InvalidVolumeName(String),
    #[error("volume {0:?}: this volume type is not supported in local mode")]
    UnsupportedVolume(String),
    #[error("volume {volume:?}: {source}")]
    Write {
        volume: String,
        #[source]
        source: std::io::Error,
    },
    #[error("volume {volume:?}: {}: {source}", dir.display())]
    CreateDir {
        volume: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("volumeMount {0:?}: no such volume")]
    NoSuchVolume(String),
    #[error("invalid subPath {0:?}")]
    InvalidSubPath(String),
    #[error("{0} not found (envFrom)")]
    EnvFromNotFound(String),
    #[error("env {env}: {problem}")]
    Env { env: String, problem: String },
}

fn key_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    what: &str,
) -> Result<Vec<VolFile>, VolumeError> {
    let mut out = Vec::new();
    match items {
        None => {
            for (k, v) in data {
                if relative_ok(k) {
                    out.push(VolFile {
                        path: PathBuf::from(k),
                        data: v.clone(),
                        mode: default_mode as u32,
                    });
                }
            }
        }
        Some(items) => {
            for it in items {
                let Some(v) = data.get(&it.key) else {
                    return Err(VolumeError::MissingKey {
                        key: it.key.clone(),
                        what: what.to_string(),
                    });
                };
                if !relative_ok(&it.path) {
                    return Err(VolumeError::InvalidPath {
                        path: it.path.clone(),
                        what: what.to_string(),
                    });
                }
                out.push(VolFile {
                    path: PathBuf::from(&it.path),
                    data: v.clone(),
                    mode: it.mode.unwrap_or(default_mode) as u32,
                });
            }
        }
    }
    Ok(out)
}

/// The value of a downward-API / env `fieldRef` path for `pod` (with address `ip`).
pub fn field_value(pod: &Pod, path: &str, ip: &str) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let map_entry = |map: Option<&BTreeMap<String, String>>, rest: &str| {
        let k = rest.strip_prefix("['")?.strip_suffix("']")?;
        map.and_then(|m| m.get(k)).cloned().or(Some(String::new()))
    };
    let render = |map: Option<&BTreeMap<String, String>>| {
        map.map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v:?}\n"))
                .collect::<String>()
        })
        .unwrap_or_default()
    };
    match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => m.namespace.clone(),
        "metadata.uid" => m.uid.clone(),
        "metadata.labels" => Some(render(m.labels.as_ref())),
        "metadata.annotations" => Some(render(m.annotations.as_ref())),
        "status.podIP" | "status.podIPs" => Some(ip.to_string()),
        "status.hostIP" | "status.hostIPs" => Some("127.0.0.1".into()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => Some(
            spec.and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".into()),
        ),
        p => {
            if let Some(rest) = p.strip_prefix("metadata.labels") {
                map_entry(m.labels.as_ref(), rest)
            } else if let Some(rest) = p.strip_prefix("metadata.annotations") {
                map_entry(m.annotations.as_ref(), rest)
            } else {
                None
            }
        }
    }
}

/// The files of a configMap, secret or downwardAPI volume; Ok(None) for other kinds.
pub fn desired_files(
    v: &Volume,
    pod: &Pod,
    ip: &str,
    lookup: Lookup<'_>,
) -> Result<Option<Vec<VolFile>>, VolumeError> {
    if let Some(cm) = &v.config_map {
        let what = format!("configmap {}", cm.name);
        return match lookup(Source::ConfigMap, &cm.name) {
            Some(data) => key_files(
                &data,
                cm.items.as_ref(),
                cm.default_mode.unwrap_or(DEFAULT_MODE),
                &what,
            )
            .map(Some),
            None if cm.optional == Some(true) => Ok(Some(Vec::new())),
            None => Err(VolumeError::NotFound(what)),
        };
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let what = format!("secret {name}");
        return match lookup(Source::Secret, &name) {
            Some(data) => key_files(
                &data,
                s.items.as_ref(),
                s.default_mode.unwrap_or(DEFAULT_MODE),
                &what,
            )
            .map(Some),
            None if s.optional == Some(true) => Ok(Some(Vec::new())),
            None => Err(VolumeError::NotFound(what)),
        };
    }
    if let Some(d) = &v.downward_api {
        let mode = d.default_mode.unwrap_or(DEFAULT_MODE);
        let mut out = Vec::new();
        for it in d.items.iter().flatten() {
            if !relative_ok(&it.path) {
                return Err(VolumeError::InvalidDownwardPath(it.path.clone()));
            }
            let Some(f) = &it.field_ref else {
                return Err(VolumeError::ResourceFieldRef);
            };
            let value = field_value(pod, &f.field_path, ip)
                .ok_or_else(|| VolumeError::UnsupportedFieldRef(f.field_path.clone()))?;
            out.push(VolFile {
                path: PathBuf::from(&it.path),
                data: value.into_bytes(),
                mode: it.mode.unwrap_or(mode) as u32,
            });
        }
        return Ok(Some(out));
    }
    Ok(None)
}

/// Host directory of a volume of a pod in `pod_dir`; Err for unsupported kinds.
pub fn volume_dir(pod_dir: &Path, v: &Volume) -> Result<PathBuf, VolumeError> {
    if let Some(c) = &v.persistent_volume_claim {
        if !relative_ok(&c.claim_name) {
            return Err(VolumeError::InvalidClaimName(c.claim_name.clone()));
        }
        return Ok(pod_dir.join("pvc").join(&c.claim_name));
    }
    if let Some(h) = &v.host_path {
        return Ok(PathBuf::from(&h.path));
    }
    if v.config_map.is_some()
        || v.secret.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
    {
        if !relative_ok(&v.name) {
            return Err(VolumeError::InvalidVolumeName(v.name.clone()));
        }
        return Ok(pod_dir.join("volumes").join(&v.name));
    }
    Err(VolumeError::UnsupportedVolume(v.name.clone()))
}

/// Write `files` into `dir` atomically (temp file + rename), removing other regular
/// files. Returns whether anything changed.
pub fn sync_files(dir: &Path, files: &[VolFile]) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let mut changed = false;
    let mut keep = BTreeSet::new();
    for f in files {
        let target = dir.join(&f.path);
        keep.insert(target.clone());
        let same_data = std::fs::read(&target).is_ok_and(|d| d == f.data);
        let same_mode = std::fs::metadata(&target)
            .is_ok_and(|m| m.permissions().mode() & 0o7777 == f.mode & 0o7777);
        if same_data && same_mode {
            continue;
        }
        let parent = target.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)?;
        let tmp = parent.join(format!(
            ".tmp-{}",
            target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        {
            let mut fh = std::fs::File::create(&tmp)?;
            fh.write_all(&f.data)?;
            fh.sync_all()?;
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(f.mode & 0o7777))?;
        std::fs::rename(&tmp, &target)?;
        changed = true;
    }
    changed |= remove_others(dir, &keep)?;
    Ok(changed)
}

fn remove_others(dir: &Path, keep: &BTreeSet<PathBuf>) -> std::io::Result<bool> {
    let mut changed = false;
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            changed |= remove_others(&p, keep)?;
            if std::fs::read_dir(&p)?.next().is_none() && !keep.iter().any(|k| k.starts_with(&p)) {
                std::fs::remove_dir(&p)?;
            }
        } else if !keep.contains(&p) {
            std::fs::remove_file(&p)?;
            changed = true;
        }
    }
    Ok(changed)
}

/// Materialise every volume of the pod: create directories, write projected files.
pub fn materialise(
    pod_dir: &Path,
    pod: &Pod,
    ip: &str,
    lookup: Lookup<'_>,
) -> Result<(), VolumeError> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    for v in &volumes {
        let dir = volume_dir(pod_dir, v)?;
        match desired_files(v, pod, ip, lookup)? {
            Some(files) => {
                sync_files(&dir, &files).map_err(|source| VolumeError::Write {
                    volume: v.name.clone(),
                    source,
                })?;
            }
            None => {
                if v.host_path.is_none() {
                    std::fs::create_dir_all(&dir).map_err(|source| VolumeError::CreateDir {
                        volume: v.name.clone(),
                        dir: dir.clone(),
                        source,
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// Bind mounts of a container (volumeMounts with subPath).
pub fn mounts(pod_dir: &Path, pod: &Pod, c: &Container) -> Result<Vec<Mount>, VolumeError> {
    let volumes: HashMap<String, Volume> = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect();
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let v = volumes
            .get(&m.name)
            .ok_or_else(|| VolumeError::NoSuchVolume(m.name.clone()))?;
        let mut host = volume_dir(pod_dir, v)?;
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if !relative_ok(sub) {
                return Err(VolumeError::InvalidSubPath(sub.to_string()));
            }
            host = host.join(sub);
        }
        let ro = m.read_only == Some(true)
            || v.config_map.is_some()
            || v.secret.is_some()
            || v.downward_api.is_some();
        out.push(Mount {
            host,
            path: m.mount_path.clone(),
            read_only: ro,
        });
    }
    Ok(out)
}

/// Expand `$(VAR)` references like Kubernetes: defined variables are replaced, `$$`
/// escapes a `$`, anything else is kept as written.
pub fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            if b[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if b[i + 1] == b'(' {
                if let Some(end) = s[i + 2..].find(')') {
                    let name = &s[i + 2..i + 2 + end];
                    if let Some((_, v)) = env.iter().rev().find(|(k, _)| k == name) {
                        out.push_str(v);
                        i += 3 + end;
                        continue;
                    }
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

/// The container's environment (envFrom first, then env, later entries winning), with
/// `$(VAR)` expansion of env values.
pub fn resolve_env(
    pod: &Pod,
    c: &Container,
    ip: &str,
    lookup: Lookup<'_>,
) -> Result<Vec<(String, String)>, VolumeError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(x, _)| *x != k);
        env.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (src, name, optional) = if let Some(r) = &from.config_map_ref {
            (Source::ConfigMap, r.name.clone(), r.optional == Some(true))
        } else if let Some(r) = &from.secret_ref {
            (Source::Secret, r.name.clone(), r.optional == Some(true))
        } else {
            continue;
        };
        match lookup(src, &name) {
            Some(data) => {
                for (k, v) in data {
                    set(
                        &mut env,
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    );
                }
            }
            None if optional => {}
            None => return Err(VolumeError::EnvFromNotFound(format!("{src:?} {name:?}"))),
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(vf) = &e.value_from {
            if let Some(f) = &vf.field_ref {
                field_value(pod, &f.field_path, ip).ok_or_else(|| VolumeError::Env {
                    env: e.name.clone(),
                    problem: format!("unsupported fieldRef {}", f.field_path),
                })?
            } else if let Some(r) = &vf.config_map_key_ref {
                match lookup(Source::ConfigMap, &r.name).and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(VolumeError::Env {
                            env: e.name.clone(),
                            problem: format!("key {} of configmap {} not found", r.key, r.name),
                        })
                    }
                }
            } else if let Some(r) = &vf.secret_key_ref {
                match lookup(Source::Secret, &r.name).and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(VolumeError::Env {
                            env: e.name.clone(),
                            problem: format!("key {} of secret {} not found", r.key, r.name),
                        })
                    }
                }
            } else {
                return Err(VolumeError::Env {
                    env: e.name.clone(),
                    problem: "this valueFrom is not supported in local mode".to_string(),
                });
            }
        } else {
            expand(e.value.as_deref().unwrap_or_default(), &env)
        };
        set(&mut env, e.name.clone(), value);
    }
    Ok(env)
}

/// The entrypoint of the only "image" local mode has.
pub const IMAGE_ENTRYPOINT: &str = "/usr/local/bin/tandem-server";

/// command + args as Kubernetes merges them (the image entrypoint being the server), with
/// `$(VAR)` expansion.
pub fn command_line(c: &Container, env: &[(String, String)]) -> Vec<String> {
    let mut argv: Vec<String> = match &c.command {
        Some(cmd) if !cmd.is_empty() => cmd.clone(),
        _ => vec![IMAGE_ENTRYPOINT.to_string()],
    };
    argv.extend(c.args.iter().flatten().cloned());
    argv.iter().map(|a| expand(a, env)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
        SecretEnvSource, SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("r-0".into()),
                namespace: Some("default".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([("role".to_string(), "master".to_string())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("local".into()),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    fn lookup(src: Source, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        match (src, name) {
            (Source::ConfigMap, "cfg") => Some(BTreeMap::from([
                ("a.conf".to_string(), b"port 1".to_vec()),
                ("b".to_string(), b"B".to_vec()),
            ])),
            (Source::Secret, "s") => {
                Some(BTreeMap::from([("pw".to_string(), b"hunter2".to_vec())]))
            }
            _ => None,
        }
    }

    #[test]
    fn env_field_refs_secrets_env_from_and_expansion() {
        let c = Container {
            name: "x".into(),
            env_from: Some(vec![EnvFromSource {
                secret_ref: Some(SecretEnvSource {
                    name: "s".into(),
                    ..SecretEnvSource::default()
                }),
                prefix: Some("S_".into()),
                ..EnvFromSource::default()
            }]),
            env: Some(vec![
                EnvVar {
                    name: "POD_IP".into(),
                    value_from: Some(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "status.podIP".into(),
                            ..ObjectFieldSelector::default()
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                },
                EnvVar {
                    name: "PW".into(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "s".into(),
                            key: "pw".into(),
                            ..SecretKeySelector::default()
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..EnvVar::default()
                },
                EnvVar {
                    name: "ADDR".into(),
                    value: Some("$(POD_IP):6379 $$(POD_IP) $(NOPE)".into()),
                    ..EnvVar::default()
                },
            ]),
            args: Some(vec!["--bind".into(), "$(POD_IP)".into()]),
            ..Container::default()
        };
        let env = resolve_env(&pod(), &c, "10.1.0.2", &lookup).unwrap();
        let get = |k: &str| env.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        assert_eq!(get("S_pw"), Some("hunter2"));
        assert_eq!(get("POD_IP"), Some("10.1.0.2"));
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("ADDR"), Some("10.1.0.2:6379 $(POD_IP) $(NOPE)"));
        assert_eq!(
            command_line(&c, &env),
            [IMAGE_ENTRYPOINT, "--bind", "10.1.0.2"]
        );
        let mut missing = c.clone();
        missing.env_from = None;
        missing.env.as_mut().unwrap()[1]
            .value_from
            .as_mut()
            .unwrap()
            .secret_key_ref
            .as_mut()
            .unwrap()
            .name = "absent".into();
        assert!(resolve_env(&pod(), &missing, "ip", &lookup).is_err());
    }

    #[test]
    fn field_values() {
        let p = pod();
        assert_eq!(field_value(&p, "metadata.uid", "").as_deref(), Some("u-1"));
        assert_eq!(
            field_value(&p, "spec.nodeName", "").as_deref(),
            Some("local")
        );
        assert_eq!(
            field_value(&p, "metadata.labels['role']", "").as_deref(),
            Some("master")
        );
        assert_eq!(
            field_value(&p, "spec.serviceAccountName", "").as_deref(),
            Some("default")
        );
        assert_eq!(field_value(&p, "status.bogus", ""), None);
    }

    #[test]
    fn configmap_volume_items_modes_and_resync() {
        let dir = std::env::temp_dir().join(format!("tandem-vol-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let v = Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "cfg".into(),
                default_mode: Some(0o444),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        };
        let files = desired_files(&v, &pod(), "", &lookup).unwrap().unwrap();
        assert_eq!(files.len(), 2);
        assert!(sync_files(&dir, &files).unwrap());
        assert!(!sync_files(&dir, &files).unwrap(), "unchanged: no rewrite");
        use std::os::unix::fs::PermissionsExt;
        let m = std::fs::metadata(dir.join("a.conf"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o444);
        // A key disappears: its file goes.
        assert!(sync_files(&dir, &files[..1]).unwrap());
        assert!(!dir.join("b").exists());
        let mut with_items = v.clone();
        with_items.config_map.as_mut().unwrap().items = Some(vec![KeyToPath {
            key: "missing".into(),
            path: "x".into(),
            mode: None,
        }]);
        assert!(desired_files(&with_items, &pod(), "", &lookup).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
