//! The image digests a release pins: `images.json` from `cargo xtask images`, checked against
//! the layouts it names (the manifest blob hashes to the digest, and was built from the commit
//! being released).
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::images::spec;

/// The annotation `cargo xtask images` records the commit in.
pub const REVISION_ANNOTATION: &str = "org.opencontainers.image.revision";

/// The images a release names: the chart runs the operator, FootballPredictions the API.
pub const RELEASED: [&str; 2] = ["fp-api-server", "fp-operator"];

/// One entry of `images.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageEntry {
    /// `footballprediction/fp-operator:0.1.0`
    pub image: String,
    /// `sha256:…` of the manifest.
    pub digest: String,
    /// The layout's directory name below the images directory.
    pub layout: Option<String>,
}

/// The checked images.json: its bytes (shipped as they are) and the released images' digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub images_json: Vec<u8>,
    pub entries: Vec<ImageEntry>,
    pub operator_digest: String,
    pub api_digest: String,
}

impl Pinned {
    /// What the chart gives the operator as `--pinned-api-image`: `<API reference>@<digest>`.
    pub fn api_image(&self) -> String {
        format!("{}@{}", reference("fp-api-server"), self.api_digest)
    }
}

/// `footballprediction/<name>:<workspace version>`, as `cargo xtask images` names it.
pub fn reference(name: &str) -> String {
    format!("{}/{name}:{}", spec::NAMESPACE, spec::tag())
}

pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Parses images.json and finds every released image in it (by this version's reference).
pub fn parse_images_json(text: &[u8]) -> anyhow::Result<Vec<ImageEntry>> {
    let entries: Vec<ImageEntry> =
        serde_json::from_slice(text).context("images.json is not a list of images")?;
    for name in RELEASED {
        let wanted = reference(name);
        let Some(entry) = entries.iter().find(|e| e.image == wanted) else {
            let listed: Vec<&str> = entries.iter().map(|e| e.image.as_str()).collect();
            bail!(
                "images.json lists no {wanted} (it lists: {}); were the images built from \
                 another version?",
                listed.join(", ")
            );
        };
        if !is_sha256_digest(&entry.digest) {
            bail!("images.json: {wanted} has digest {:?}", entry.digest);
        }
    }
    Ok(entries)
}

/// The commit a manifest records (`org.opencontainers.image.revision`).
pub fn manifest_revision(manifest: &[u8]) -> anyhow::Result<String> {
    let value: serde_json::Value =
        serde_json::from_slice(manifest).context("the manifest is not JSON")?;
    value["annotations"][REVISION_ANNOTATION]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the manifest has no {REVISION_ANNOTATION} annotation"))
}

/// Why images built from `built` cannot be released at `releasing`, if they cannot.
pub fn revision_mismatch(built: &str, releasing: &str) -> Option<String> {
    (built != releasing).then(|| {
        format!(
            "the images were built from {built}, the work tree is at {releasing}: run \
             `cargo xtask images` again"
        )
    })
}

/// Reads `<dir>/images.json` and each released image's manifest blob; refuses a manifest
/// whose bytes do not hash to the listed digest or that records another commit.
pub fn read(dir: &Path, revision: &str) -> anyhow::Result<Pinned> {
    let path = dir.join("images.json");
    let images_json =
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let entries =
        parse_images_json(&images_json).with_context(|| format!("in {}", path.display()))?;
    let (mut operator_digest, mut api_digest) = (String::new(), String::new());
    for name in RELEASED {
        let wanted = reference(name);
        let Some(entry) = entries.iter().find(|e| e.image == wanted) else {
            bail!("{}: no {wanted}", path.display());
        };
        let layout = dir.join(entry.layout.as_deref().unwrap_or(name));
        let manifest = manifest_blob(&layout, &entry.digest)?;
        let built = manifest_revision(&manifest)
            .with_context(|| format!("{wanted} in {}", layout.display()))?;
        if let Some(why) = revision_mismatch(&built, revision) {
            bail!("{wanted} ({}): {why}", entry.digest);
        }
        match name {
            "fp-operator" => operator_digest = entry.digest.clone(),
            _ => api_digest = entry.digest.clone(),
        }
    }
    Ok(Pinned {
        images_json,
        entries,
        operator_digest,
        api_digest,
    })
}

fn manifest_blob(layout: &Path, digest: &str) -> anyhow::Result<Vec<u8>> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let blob: PathBuf = layout.join("blobs").join("sha256").join(hex);
    let bytes = std::fs::read(&blob).with_context(|| {
        format!(
            "reading the manifest {digest} ({}); images.json names a layout that is gone",
            blob.display()
        )
    })?;
    let actual = format!("sha256:{}", super::archive::sha256_hex(&bytes));
    if actual != digest {
        bail!("{} hashes to {actual}, not {digest}", blob.display());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn images_json(entries: &[(&str, String)]) -> Vec<u8> {
        let list: Vec<serde_json::Value> = entries
            .iter()
            .map(|(image, digest)| serde_json::json!({"image": image, "digest": digest, "layout": "x"}))
            .collect();
        serde_json::to_vec(&list).unwrap()
    }

    #[test]
    fn finds_both_released_images_of_this_version() {
        let text = images_json(&[
            (&reference("fp-api-server"), digest('a')),
            (&reference("fp-operator"), digest('b')),
        ]);
        let entries = parse_images_json(&text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].digest, digest('b'));
        assert_eq!(entries[1].layout.as_deref(), Some("x"));
    }

    #[test]
    fn refuses_another_version_a_missing_image_or_a_bad_digest() {
        let old = images_json(&[
            ("footballprediction/fp-api-server:0.0.1", digest('a')),
            ("footballprediction/fp-operator:0.0.1", digest('b')),
        ]);
        let e = parse_images_json(&old).unwrap_err().to_string();
        assert!(
            e.contains("lists no footballprediction/fp-api-server:"),
            "{e}"
        );
        assert!(e.contains("fp-operator:0.0.1"), "{e}");

        let bad = images_json(&[
            (&reference("fp-api-server"), digest('a')),
            (&reference("fp-operator"), "sha256:ABC".to_owned()),
        ]);
        let e = parse_images_json(&bad).unwrap_err().to_string();
        assert!(e.contains("has digest \"sha256:ABC\""), "{e}");
        assert!(parse_images_json(b"{}").is_err());
    }

    #[test]
    fn digests_are_lowercase_sha256_of_64_digits() {
        assert!(is_sha256_digest(&digest('0')));
        assert!(!is_sha256_digest(&digest('A')));
        assert!(!is_sha256_digest("sha512:00"));
        assert!(!is_sha256_digest(&format!("{}0", digest('0'))));
    }

    #[test]
    fn reads_the_revision_annotation_and_compares_it() {
        let manifest =
            br#"{"schemaVersion":2,"annotations":{"org.opencontainers.image.revision":"abc"}}"#;
        assert_eq!(manifest_revision(manifest).unwrap(), "abc");
        assert!(manifest_revision(br#"{"schemaVersion":2}"#).is_err());
        assert_eq!(revision_mismatch("abc", "abc"), None);
        let why = revision_mismatch("abc", "def-dirty").unwrap();
        assert!(
            why.contains("built from abc, the work tree is at def-dirty"),
            "{why}"
        );
    }

    #[test]
    fn read_checks_the_blob_hash_and_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        for name in RELEASED {
            let manifest =
                format!(r#"{{"annotations":{{"{REVISION_ANNOTATION}":"abc"}},"name":"{name}"}}"#);
            let hex = crate::dist::archive::sha256_hex(manifest.as_bytes());
            let blobs = dir.path().join(name).join("blobs/sha256");
            std::fs::create_dir_all(&blobs).unwrap();
            std::fs::write(blobs.join(&hex), &manifest).unwrap();
            entries.push(serde_json::json!({"image": reference(name), "digest": format!("sha256:{hex}"), "layout": name}));
        }
        std::fs::write(
            dir.path().join("images.json"),
            serde_json::to_vec(&entries).unwrap(),
        )
        .unwrap();
        let pinned = read(dir.path(), "abc").unwrap();
        assert_eq!(pinned.operator_digest, entries[1]["digest"]);
        assert_eq!(pinned.api_digest, entries[0]["digest"]);
        assert_eq!(
            pinned.api_image(),
            format!("{}@{}", reference("fp-api-server"), pinned.api_digest)
        );

        let e = format!("{:#}", read(dir.path(), "def").unwrap_err());
        assert!(e.contains("built from abc, the work tree is at def"), "{e}");

        // A manifest whose bytes changed no longer hashes to the listed digest.
        let hex = entries[1]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        std::fs::write(dir.path().join("fp-operator/blobs/sha256").join(hex), b"{}").unwrap();
        let e = format!("{:#}", read(dir.path(), "abc").unwrap_err());
        assert!(e.contains("hashes to sha256:"), "{e}");
    }
}
