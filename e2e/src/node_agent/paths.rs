//! Mount path translation. Pod processes run on the host, where a container's mountPaths do not
//! exist, so a literal value naming a path under a mountPath is rewritten to the directory the
//! agent materialised the volume in. Applies to `env[].value`, `command`, `args` (before `$(VAR)`
//! expansion; also the value part of `--flag=/path`) and `workingDir`.

use std::path::{Path, PathBuf};

/// A mountPath and the host path that stands in for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountTranslation {
    pub mount_path: String,
    pub host_path: PathBuf,
}

impl MountTranslation {
    pub fn new(mount_path: &str, host_path: impl Into<PathBuf>) -> Self {
        Self {
            mount_path: mount_path.trim_end_matches('/').to_string(),
            host_path: host_path.into(),
        }
    }
}

/// Rewrites `value` when it is a mountPath or a path below one (the longest mountPath wins).
/// Values that merely share a prefix (`/etc/fp/jwtx` vs `/etc/fp/jwt`) are left alone.
pub fn rewrite_path(value: &str, mounts: &[MountTranslation]) -> String {
    if !value.starts_with('/') {
        return value.to_string();
    }
    let best = mounts
        .iter()
        .filter_map(|mount| {
            let rest = value.strip_prefix(mount.mount_path.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((mount, rest))
        })
        .max_by_key(|(mount, _)| mount.mount_path.len());
    match best {
        Some((mount, rest)) => {
            let mut host = mount.host_path.display().to_string();
            host.push_str(rest);
            host
        }
        None => value.to_string(),
    }
}

/// Like [`rewrite_path`], and for `-x=/path` / `--flag=/path` arguments also the part after `=`.
pub fn rewrite_arg(arg: &str, mounts: &[MountTranslation]) -> String {
    if arg.starts_with('-')
        && let Some((flag, value)) = arg.split_once('=')
    {
        return format!("{flag}={}", rewrite_path(value, mounts));
    }
    rewrite_path(arg, mounts)
}

/// The host directory for a container's `workingDir`: translated when under a mount, else the
/// pod's own directory when the path does not exist on the host.
pub fn working_dir(
    requested: Option<&str>,
    mounts: &[MountTranslation],
    pod_dir: &Path,
) -> PathBuf {
    match requested.filter(|dir| !dir.is_empty()) {
        Some(dir) => {
            let translated = PathBuf::from(rewrite_path(dir, mounts));
            if translated.is_dir() {
                translated
            } else {
                pod_dir.to_path_buf()
            }
        }
        None => pod_dir.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mounts() -> Vec<MountTranslation> {
        vec![
            MountTranslation::new("/etc/fp/jwt", "/state/p/volumes/jwt"),
            MountTranslation::new("/etc/fp", "/state/p/volumes/all"),
            MountTranslation::new("/etc/fp/admin/password", "/state/p/volumes/admin/password"),
            MountTranslation::new("/data/", "/state/p/volumes/data"),
        ]
    }

    #[test]
    fn rewrites_paths_at_component_boundaries() {
        let m = mounts();
        assert_eq!(rewrite_path("/etc/fp/jwt", &m), "/state/p/volumes/jwt");
        assert_eq!(
            rewrite_path("/etc/fp/jwt/k1", &m),
            "/state/p/volumes/jwt/k1"
        );
        assert_eq!(
            rewrite_path("/etc/fp/jwtx", &m),
            "/state/p/volumes/all/jwtx"
        );
        assert_eq!(rewrite_path("/etc/fpx", &m), "/etc/fpx");
        assert_eq!(
            rewrite_path("/etc/fp/admin/password", &m),
            "/state/p/volumes/admin/password"
        );
        assert_eq!(rewrite_path("/data/x", &m), "/state/p/volumes/data/x");
        assert_eq!(rewrite_path("relative/etc/fp", &m), "relative/etc/fp");
        assert_eq!(
            rewrite_path("postgres://h/etc/fp", &m),
            "postgres://h/etc/fp"
        );
    }

    #[test]
    fn rewrites_flag_values() {
        let m = mounts();
        assert_eq!(
            rewrite_arg("--config=/etc/fp/config.toml", &m),
            "--config=/state/p/volumes/all/config.toml"
        );
        assert_eq!(rewrite_arg("--name=x", &m), "--name=x");
        assert_eq!(rewrite_arg("/etc/fp/jwt", &m), "/state/p/volumes/jwt");
        assert_eq!(rewrite_arg("serve", &m), "serve");
    }

    #[test]
    fn working_dir_falls_back_to_pod_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let vol = tmp.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        let m = vec![MountTranslation::new("/work", &vol)];
        let pod_dir = tmp.path().join("pod");
        assert_eq!(working_dir(Some("/work"), &m, &pod_dir), vol);
        assert_eq!(working_dir(Some("/does/not/exist"), &m, &pod_dir), pod_dir);
        assert_eq!(working_dir(None, &m, &pod_dir), pod_dir);
    }
}
