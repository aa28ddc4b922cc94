//! An image's files in memory, and the deterministic tar archive of a layer made from them.
//!
//! Entries are kept sorted by path (parents before children), every timestamp is the one given
//! (SOURCE_DATE_EPOCH), owners are numeric with empty user and group names, and nothing of the
//! build machine (host names, its users, its clock) reaches the archive: the same tree gives
//! the same bytes.
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("unsafe path {0:?} (absolute paths are made relative; `..` is refused)")]
    BadPath(String),
    #[error("{path}: {first} and {second} both provide it with different content")]
    Conflict {
        path: String,
        first: String,
        second: String,
    },
    #[error("{path}: a parent directory is a {kind}")]
    NotADirectory { path: String, kind: &'static str },
    #[error("writing the tar stream: {0}")]
    Io(#[from] std::io::Error),
}

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// Contents are shared: two paths holding the same `Arc` become a hard link in the layer.
    File(Arc<Vec<u8>>),
    Symlink(String),
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File(_) => "file",
            Kind::Symlink(_) => "symlink",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Who put it there (a Debian package, "generated", the binary), for conflict messages.
    pub origin: String,
}

impl Node {
    pub fn dir(mode: u32, origin: &str) -> Self {
        Self::owned(Kind::Dir, mode, 0, origin)
    }
    pub fn file(data: Vec<u8>, mode: u32, origin: &str) -> Self {
        Self::owned(Kind::File(Arc::new(data)), mode, 0, origin)
    }
    pub fn symlink(target: &str, origin: &str) -> Self {
        Self::owned(Kind::Symlink(target.to_owned()), 0o777, 0, origin)
    }
    /// Owned by `id` as both user and group.
    pub fn owned(kind: Kind, mode: u32, id: u64, origin: &str) -> Self {
        Self {
            kind,
            mode,
            uid: id,
            gid: id,
            origin: origin.to_owned(),
        }
    }
}

/// `./usr/bin/x`, `/usr/bin/x/` -> `usr/bin/x`; `""`/`.` -> `""` (the root); `..` refused.
pub fn normalize(path: &str) -> Result<String, TreeError> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(TreeError::BadPath(path.to_owned()));
    }
    Ok(parts.join("/"))
}

/// Where a symlink at `link` pointing to `target` leads (within the image), or `None` when the
/// target climbs above the root.
pub fn resolve_link(link: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = link.split('/').filter(|s| !s.is_empty()).collect();
        p.pop();
        p
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// A file system tree; keys are normalized paths, the root is implicit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        normalize(path).ok().and_then(|p| self.nodes.get(&p))
    }

    /// Adds `node` at `path`, creating missing parents (0755, root). A directory that exists
    /// already keeps its first mode and owner; the same file twice is fine; different content
    /// (or a different kind) at one path is a conflict.
    pub fn insert(&mut self, path: &str, node: Node) -> Result<(), TreeError> {
        let path = normalize(path)?;
        if path.is_empty() {
            return Ok(()); // the root: always there, mode 0755 root.
        }
        let mut parent = String::new();
        let components: Vec<&str> = path.split('/').collect();
        for part in &components[..components.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            match self.nodes.get(&parent) {
                None => {
                    self.nodes
                        .insert(parent.clone(), Node::dir(0o755, &node.origin));
                }
                Some(Node {
                    kind: Kind::Dir, ..
                }) => {}
                Some(other) => {
                    return Err(TreeError::NotADirectory {
                        path,
                        kind: other.kind.name(),
                    });
                }
            }
        }
        match self.nodes.get(&path) {
            None => {
                self.nodes.insert(path, node);
                Ok(())
            }
            Some(existing) if existing.kind == Kind::Dir && node.kind == Kind::Dir => Ok(()),
            Some(existing) if existing.kind == node.kind && existing.mode == node.mode => Ok(()),
            Some(existing) => Err(TreeError::Conflict {
                path,
                first: existing.origin.clone(),
                second: node.origin,
            }),
        }
    }

    /// Replaces whatever is at `path` (used for the image's own files over package defaults).
    pub fn set(&mut self, path: &str, node: Node) -> Result<(), TreeError> {
        let normalized = normalize(path)?;
        self.nodes.remove(&normalized);
        self.insert(&normalized, node)
    }

    /// Every regular file below `dir` (sorted), e.g. the certificates of a package.
    pub fn files_below(&self, dir: &str) -> Vec<(&String, &Arc<Vec<u8>>)> {
        let Ok(dir) = normalize(dir) else {
            return Vec::new();
        };
        let prefix = format!("{dir}/");
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter_map(|(p, n)| match &n.kind {
                Kind::File(data) => Some((p, data)),
                _ => None,
            })
            .collect()
    }

    /// The uncompressed layer: a tar stream in path order with fixed times and owners. Paths
    /// sharing one content `Arc` are written once and hard-linked after that.
    pub fn to_tar(&self, mtime: u64) -> Result<Vec<u8>, TreeError> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut written: HashMap<*const Vec<u8>, &str> = HashMap::new();
        for (path, node) in &self.nodes {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(mtime);
            header.set_uid(node.uid);
            header.set_gid(node.gid);
            header.set_mode(node.mode);
            match &node.kind {
                Kind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), std::io::empty())?;
                }
                Kind::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)?;
                }
                Kind::File(data) => match written.get(&Arc::as_ptr(data)) {
                    Some(first) => {
                        header.set_entry_type(tar::EntryType::Link);
                        header.set_size(0);
                        builder.append_link(&mut header, path, first)?;
                    }
                    None => {
                        header.set_entry_type(tar::EntryType::Regular);
                        header.set_size(data.len() as u64);
                        builder.append_data(&mut header, path, data.as_slice())?;
                        written.insert(Arc::as_ptr(data), path);
                    }
                },
            }
        }
        Ok(builder.into_inner()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths_and_refuses_escapes() {
        assert_eq!(normalize("./usr/bin/x").unwrap(), "usr/bin/x");
        assert_eq!(normalize("/etc//fp/").unwrap(), "etc/fp");
        assert_eq!(normalize("./").unwrap(), "");
        assert!(normalize("usr/../../etc/shadow").is_err());
    }

    #[test]
    fn resolves_symlink_targets() {
        assert_eq!(
            resolve_link("usr/bin/pg_dump", "../lib/postgresql/15/bin/pg_dump").as_deref(),
            Some("usr/lib/postgresql/15/bin/pg_dump")
        );
        assert_eq!(
            resolve_link("etc/localtime", "/usr/share/zoneinfo/Etc/UTC").as_deref(),
            Some("usr/share/zoneinfo/Etc/UTC")
        );
        assert_eq!(resolve_link("a", "../../x"), None);
    }

    #[test]
    fn parents_are_created_and_conflicts_refused() {
        let mut t = Tree::new();
        t.insert("usr/bin/a", Node::file(b"a".to_vec(), 0o755, "pkg-a"))
            .unwrap();
        assert_eq!(t.get("usr").unwrap().kind, Kind::Dir);
        assert_eq!(t.get("/usr/bin/").unwrap().kind, Kind::Dir);
        // Same content and mode again: fine.
        t.insert("usr/bin/a", Node::file(b"a".to_vec(), 0o755, "pkg-b"))
            .unwrap();
        let err = t
            .insert("usr/bin/a", Node::file(b"b".to_vec(), 0o755, "pkg-c"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "usr/bin/a: pkg-a and pkg-c both provide it with different content"
        );
        let err = t
            .insert("usr/bin/a/x", Node::file(vec![], 0o644, "pkg-d"))
            .unwrap_err();
        assert!(matches!(err, TreeError::NotADirectory { kind: "file", .. }));
        // `set` overrides.
        t.set("usr/bin/a", Node::symlink("b", "image")).unwrap();
        assert_eq!(t.get("usr/bin/a").unwrap().kind, Kind::Symlink("b".into()));
    }

    fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, u64, u32, u64, String)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.entry_type(),
                    h.mtime().unwrap(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.display().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    #[test]
    fn tar_is_sorted_with_fixed_times_and_owners_whatever_the_insert_order() {
        let shared = Arc::new(b"libc".to_vec());
        let build = |order: &[usize]| {
            let items = [
                ("usr/lib/libc.so.6", Kind::File(shared.clone()), 0o644, 0),
                ("lib64/ld.so", Kind::File(shared.clone()), 0o644, 0),
                ("home/nonroot", Kind::Dir, 0o755, 65532),
                (
                    "usr/bin/pg_dump",
                    Kind::Symlink("../lib/pg".into()),
                    0o777,
                    0,
                ),
                (
                    "usr/local/bin/a-very-long-name-that-does-not-fit-in-the-one-hundred-bytes-of-a-ustar-header/binary",
                    Kind::File(Arc::new(b"x".to_vec())),
                    0o755,
                    0,
                ),
            ];
            let mut t = Tree::new();
            for &i in order {
                let (p, k, m, id) = items[i].clone();
                t.insert(p, Node::owned(k, m, id, "test")).unwrap();
            }
            t
        };
        let a = build(&[0, 1, 2, 3, 4]);
        let b = build(&[4, 3, 2, 1, 0]);
        assert_eq!(a, b);
        let bytes = a.to_tar(1_700_000_000).unwrap();
        assert_eq!(bytes, b.to_tar(1_700_000_000).unwrap());
        assert_ne!(bytes, a.to_tar(1_700_000_001).unwrap());
        let got = entries(&bytes);
        let paths: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
        assert!(got.iter().all(|e| e.2 == 1_700_000_000));
        let home = got.iter().find(|e| e.0 == "home/nonroot/").unwrap();
        assert_eq!(
            (home.1, home.3, home.4),
            (tar::EntryType::Directory, 0o755, 65532)
        );
        // The first path of shared content holds the data, the second links to it.
        let ld = got.iter().find(|e| e.0 == "lib64/ld.so").unwrap();
        assert_eq!(ld.1, tar::EntryType::Regular);
        let libc = got.iter().find(|e| e.0 == "usr/lib/libc.so.6").unwrap();
        assert_eq!(
            (libc.1, libc.5.as_str()),
            (tar::EntryType::Link, "lib64/ld.so")
        );
        let link = got.iter().find(|e| e.0 == "usr/bin/pg_dump").unwrap();
        assert_eq!(
            (link.1, link.5.as_str()),
            (tar::EntryType::Symlink, "../lib/pg")
        );
        assert!(paths.iter().any(|p| p.ends_with("/binary")));
    }
}
