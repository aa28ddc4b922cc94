//! Mount path translation. Pod processes run on the host, where a container's mountPaths do not
//! exist, so a path under a mountPath in a literal value is rewritten to the directory the agent
//! materialised the volume in. Applies to `env[].value`, `command` and `args` (before `$(VAR)`
//! expansion), wherever such a path starts a word (`/data/x`, `--out=/data/x`,
//! `sh -c "pg_dump > /data/x"`), and to `workingDir`.

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

/// Characters after which a path starts a new word (shell and flag syntax).
fn starts_word_after(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t'
            | b'\n'
            | b'='
            | b':'
            | b'"'
            | b'\''
            | b'('
            | b'`'
            | b';'
            | b'|'
            | b'&'
            | b'>'
            | b'<'
            | b','
    )
}

/// Characters that end a path word.
fn ends_word_at(c: u8) -> bool {
    matches!(
        c,
        b'/' | b' '
            | b'\t'
            | b'\n'
            | b'"'
            | b'\''
            | b')'
            | b'`'
            | b';'
            | b'|'
            | b'&'
            | b'>'
            | b'<'
            | b','
            | b':'
    )
}

/// A `file://` URL's path is a path too (`--destination file:///var/lib/fp/backups`): true when
/// `text[..i]` ends with `file://` that itself starts a word.
fn after_file_scheme(text: &str, i: usize) -> bool {
    const SCHEME: &[u8] = b"file://";
    text.as_bytes()[..i]
        .strip_suffix(SCHEME)
        .is_some_and(|before| before.last().is_none_or(|&c| starts_word_after(c)))
}

/// Rewrites every path under a mountPath that starts a word in `text` (the longest mountPath
/// wins); text that merely contains a mountPath inside a word (`postgres://h/data`) stays.
pub fn rewrite_paths_in(text: &str, mounts: &[MountTranslation]) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start = i == 0 || starts_word_after(bytes[i - 1]) || after_file_scheme(text, i);
        if bytes[i] == b'/' && at_word_start {
            let rest = &text[i..];
            let best = mounts
                .iter()
                .filter(|m| !m.mount_path.is_empty())
                .filter(|m| {
                    rest.strip_prefix(m.mount_path.as_str())
                        .is_some_and(|after| after.bytes().next().is_none_or(ends_word_at))
                })
                .max_by_key(|m| m.mount_path.len());
            if let Some(mount) = best {
                out.push_str(&text[copied..i]);
                out.push_str(&mount.host_path.display().to_string());
                i += mount.mount_path.len();
                copied = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// Wildcard listen addresses as they start a word: `0.0.0.0` and `[::]`, followed by `:port`,
/// the end, or a word terminator.
const WILDCARDS: [&str; 2] = ["0.0.0.0", "[::]"];

/// A pod has its own network namespace, so a process binding the wildcard address listens on the
/// pod's IP only. Host processes share one namespace: binding `0.0.0.0:8081` would listen on every
/// interface of the machine and collide with every other pod using that port. So a literal
/// wildcard address that starts a word (`--admin-address=0.0.0.0:8081`, `[::]:9090`) becomes the
/// pod IP. `10.0.0.0/8` or `100.0.0.0` are not wildcards and stay.
pub fn rewrite_wildcard_addresses(text: &str, pod_ip: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start = i == 0 || starts_word_after(bytes[i - 1]) || bytes[i - 1] == b'/';
        if at_word_start
            && let Some(wildcard) = WILDCARDS.iter().find(|w| {
                text[i..].strip_prefix(**w).is_some_and(|after| {
                    after
                        .bytes()
                        .next()
                        .is_none_or(|c| c != b'.' && (c == b':' || ends_word_at(c)))
                })
            })
        {
            out.push_str(&text[copied..i]);
            out.push_str(pod_ip);
            i += wildcard.len();
            copied = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
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
    fn rewrites_paths_that_start_words() {
        let m = mounts();
        let cases = [
            (
                "--config=/etc/fp/config.toml",
                "--config=/state/p/volumes/all/config.toml",
            ),
            ("--name=x", "--name=x"),
            ("/etc/fp/jwt", "/state/p/volumes/jwt"),
            ("serve", "serve"),
            (
                "pg_dump -Fc > /data/db.dump && ls /data",
                "pg_dump -Fc > /state/p/volumes/data/db.dump && ls /state/p/volumes/data",
            ),
            ("cat '/etc/fp/jwt/k1'", "cat '/state/p/volumes/jwt/k1'"),
            ("postgres://h/data", "postgres://h/data"),
            ("file:///data/x", "file:///state/p/volumes/data/x"),
            (
                "--destination=file:///data",
                "--destination=file:///state/p/volumes/data",
            ),
            ("xfile:///data", "xfile:///data"),
            ("http://h/data", "http://h/data"),
            ("/database", "/database"),
            ("/etc/fpx", "/etc/fpx"),
            ("PATH=/bin:/data", "PATH=/bin:/state/p/volumes/data"),
            ("é /data", "é /state/p/volumes/data"),
        ];
        for (input, expected) in cases {
            assert_eq!(rewrite_paths_in(input, &m), expected, "{input}");
        }
    }

    #[test]
    fn wildcard_listen_addresses_become_the_pod_ip() {
        let ip = "127.0.9.4";
        let cases = [
            (
                "--admin-address=0.0.0.0:8081",
                "--admin-address=127.0.9.4:8081",
            ),
            ("0.0.0.0:8080", "127.0.9.4:8080"),
            ("[::]:9090", "127.0.9.4:9090"),
            ("http://0.0.0.0:80/x", "http://127.0.9.4:80/x"),
            ("--bind 0.0.0.0", "--bind 127.0.9.4"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("100.0.0.0:1", "100.0.0.0:1"),
            ("0.0.0.01", "0.0.0.01"),
            ("v0.0.0.0", "v0.0.0.0"),
            ("127.0.0.1:5432", "127.0.0.1:5432"),
        ];
        for (input, expected) in cases {
            assert_eq!(rewrite_wildcard_addresses(input, ip), expected, "{input}");
        }
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
