//! The binaries' tarballs and the checksum file: pure functions of their inputs, so the same
//! binary and time give the same bytes.
use sha2::{Digest, Sha256};

use crate::images::fstree::{Node, Tree};
use crate::images::oci;

/// `kubectl-fp-0.1.0-x86_64-unknown-linux-gnu`: the tarball's top directory and its name
/// without `.tar.gz`.
pub fn release_name(binary: &str, version: &str, target: &str) -> String {
    format!("{binary}-{version}-{target}")
}

pub fn tarball_file_name(binary: &str, version: &str, target: &str) -> String {
    format!("{}.tar.gz", release_name(binary, version, target))
}

/// One tarball: the directory `NAME-VERSION-TARGET/` holding the executable `NAME` (0755),
/// entries in path order, every mtime `mtime`, owned by 0:0 with no user or group names,
/// gzip with a fixed header (no file name, mtime 0).
pub fn binary_tarball(
    binary: &str,
    version: &str,
    target: &str,
    executable: Vec<u8>,
    mtime: u64,
) -> anyhow::Result<Vec<u8>> {
    let top = release_name(binary, version, target);
    let mut tree = Tree::new();
    tree.insert(&top, Node::dir(0o755, "dist"))?;
    tree.insert(
        &format!("{top}/{binary}"),
        Node::file(executable, 0o755, binary),
    )?;
    Ok(oci::gzip(&tree.to_tar(mtime)?)?)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SumsError {
    #[error("{0:?}: a file name with a newline or backslash needs escaping in SHA256SUMS")]
    UnsafeName(String),
    #[error("{0:?} is not a SHA-256 in hex")]
    BadDigest(String),
}

/// `SHA256SUMS` as `sha256sum` writes it and `sha256sum -c` reads it: one
/// `<64 hex digits><two spaces><file name>` line per file, sorted by name.
pub fn sha256sums(files: &[(String, String)]) -> Result<String, SumsError> {
    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort();
    let mut text = String::new();
    for (name, hex) in sorted {
        if name.contains(['\n', '\\']) {
            return Err(SumsError::UnsafeName(name.clone()));
        }
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SumsError::BadDigest(hex.clone()));
        }
        text.push_str(&hex.to_ascii_lowercase());
        text.push_str("  ");
        text.push_str(name);
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const TARGET: &str = "x86_64-unknown-linux-gnu";

    #[derive(Debug, PartialEq, Eq)]
    struct Entry {
        path: String,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        /// `user:group` names (empty: numeric owners only).
        names: String,
        data: Vec<u8>,
    }

    fn entries(tarball: &[u8]) -> Vec<Entry> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let header = e.header().clone();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                Entry {
                    path: e.path().unwrap().display().to_string(),
                    mode: header.mode().unwrap(),
                    uid: header.uid().unwrap(),
                    gid: header.gid().unwrap(),
                    mtime: header.mtime().unwrap(),
                    names: format!(
                        "{}:{}",
                        header.username().unwrap().unwrap_or(""),
                        header.groupname().unwrap().unwrap_or("")
                    ),
                    data,
                }
            })
            .collect()
    }

    #[test]
    fn tarball_holds_the_executable_in_its_versioned_directory() {
        let t = binary_tarball(
            "kubectl-fp",
            "0.1.0",
            TARGET,
            b"\x7fELF...".to_vec(),
            1_700_000_000,
        )
        .unwrap();
        let top = "kubectl-fp-0.1.0-x86_64-unknown-linux-gnu";
        let entry = |path: String, data: &[u8]| Entry {
            path,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            names: ":".to_owned(),
            data: data.to_vec(),
        };
        assert_eq!(
            entries(&t),
            vec![
                entry(format!("{top}/"), b""),
                entry(format!("{top}/kubectl-fp"), b"\x7fELF..."),
            ]
        );
        assert_eq!(
            tarball_file_name("kubectl-fp", "0.1.0", TARGET),
            format!("{top}.tar.gz")
        );
    }

    #[test]
    fn tarball_bytes_depend_only_on_name_content_and_time() {
        let make = |content: &[u8], mtime| {
            binary_tarball("fp-api-server", "0.1.0", TARGET, content.to_vec(), mtime).unwrap()
        };
        let first = make(b"binary", 1_700_000_000);
        assert_eq!(first, make(b"binary", 1_700_000_000));
        assert_ne!(first, make(b"binary!", 1_700_000_000));
        assert_ne!(first, make(b"binary", 1_700_000_001));
        // gzip header: no stored modification time, OS "unknown", no file name flag.
        assert_eq!(&first[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&first[4..8], &[0, 0, 0, 0]);
        assert_eq!(first[9], 255);
    }

    #[test]
    fn sha256sums_is_sorted_lowercase_with_two_spaces() {
        let a = sha256_hex(b"a");
        let b = sha256_hex(b"b");
        let text = sha256sums(&[
            ("z.tar.gz".to_owned(), a.to_ascii_uppercase()),
            ("chart-0.1.0.tgz".to_owned(), b.clone()),
        ])
        .unwrap();
        assert_eq!(text, format!("{b}  chart-0.1.0.tgz\n{a}  z.tar.gz\n"));
        assert_eq!(
            a,
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
        );
    }

    #[test]
    fn sha256sums_refuses_what_sha256sum_would_escape_or_misread() {
        let hex = sha256_hex(b"x");
        assert_eq!(
            sha256sums(&[("a\nb".to_owned(), hex.clone())]),
            Err(SumsError::UnsafeName("a\nb".to_owned()))
        );
        assert_eq!(
            sha256sums(&[("a\\b".to_owned(), hex)]),
            Err(SumsError::UnsafeName("a\\b".to_owned()))
        );
        assert_eq!(
            sha256sums(&[("a".to_owned(), "abc".to_owned())]),
            Err(SumsError::BadDigest("abc".to_owned()))
        );
    }
}
