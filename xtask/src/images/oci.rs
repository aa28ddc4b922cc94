//! OCI image config, manifest, index and the image layout on disk (image-spec v1.1). Plain
//! serde structs in a fixed field order: the same inputs serialize to the same bytes, hence the
//! same digests.
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The annotation an OCI layout's index uses for a manifest's tag.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

/// A layer: its uncompressed tar (for the diff ID) and the gzip stream that is shipped.
#[derive(Debug, Clone)]
pub struct Layer {
    pub diff_id: String,
    pub uncompressed_size: u64,
    pub gzip: Vec<u8>,
    /// What made it, for the config's history ("Debian packages: libc6 …").
    pub created_by: String,
}

/// Gzip with a fixed header (no name, mtime 0, OS "unknown") at a fixed level, so the bytes
/// only depend on the tar stream and the flate2 version pinned in Cargo.lock.
pub fn gzip(tar: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(tar)?;
    encoder.finish()
}

pub fn layer(tar: &[u8], created_by: &str) -> std::io::Result<Layer> {
    Ok(Layer {
        diff_id: sha256_digest(tar),
        uncompressed_size: tar.len() as u64,
        gzip: gzip(tar)?,
        created_by: created_by.to_owned(),
    })
}

/// The run-time settings of an image (the config's `config` object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    pub user: String,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: &'a str,
}

#[derive(Serialize)]
struct RootFs<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<&'a str>,
}

#[derive(Serialize)]
struct ConfigFile<'a> {
    created: &'a str,
    architecture: &'a str,
    os: &'a str,
    config: &'a RunConfig,
    rootfs: RootFs<'a>,
    history: Vec<History<'a>>,
}

/// The image config blob.
pub fn config_json(
    created: &str,
    platform: &Platform,
    run: &RunConfig,
    layers: &[Layer],
) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&ConfigFile {
        created,
        architecture: &platform.architecture,
        os: &platform.os,
        config: run,
        rootfs: RootFs {
            kind: "layers",
            diff_ids: layers.iter().map(|l| l.diff_id.as_str()).collect(),
        },
        history: layers
            .iter()
            .map(|l| History {
                created,
                created_by: &l.created_by,
            })
            .collect(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: &'a Descriptor,
    layers: Vec<Descriptor>,
    annotations: &'a BTreeMap<String, String>,
}

/// The image manifest blob.
pub fn manifest_json(
    config: &Descriptor,
    layers: &[Layer],
    annotations: &BTreeMap<String, String>,
) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: MEDIA_MANIFEST,
        config,
        layers: layers
            .iter()
            .map(|l| Descriptor::of(MEDIA_LAYER_GZIP, &l.gzip))
            .collect(),
        annotations,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: &'a [Descriptor],
}

pub fn index_json(manifests: &[Descriptor]) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&Index {
        schema_version: 2,
        media_type: MEDIA_INDEX,
        manifests,
    })
}

/// Writes an OCI image layout at `dir` (replacing what was there): `oci-layout`, `index.json`
/// naming `manifest` as `tag`, and every blob under `blobs/sha256/`.
pub fn write_layout(
    dir: &Path,
    tag: &str,
    manifest: &[u8],
    platform: &Platform,
    blobs: &[&[u8]],
) -> anyhow::Result<Descriptor> {
    let staging = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    let blob_dir = staging.join("blobs").join("sha256");
    std::fs::create_dir_all(&blob_dir)
        .with_context(|| format!("creating {}", blob_dir.display()))?;
    for blob in blobs.iter().chain(std::iter::once(&manifest)) {
        let digest = sha256_digest(blob);
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(blob_dir.join(hex), blob)
            .with_context(|| format!("writing blob {digest}"))?;
    }
    let mut descriptor = Descriptor::of(MEDIA_MANIFEST, manifest);
    descriptor.platform = Some(platform.clone());
    descriptor
        .annotations
        .insert(REF_NAME.to_owned(), tag.to_owned());
    std::fs::write(
        staging.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    std::fs::write(
        staging.join("index.json"),
        index_json(std::slice::from_ref(&descriptor))?,
    )?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::rename(&staging, dir)
        .with_context(|| format!("moving {} into place", dir.display()))?;
    Ok(descriptor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform() -> Platform {
        Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
        }
    }

    fn run() -> RunConfig {
        RunConfig {
            user: "65532:65532".into(),
            env: vec!["PATH=/usr/local/bin:/usr/bin".into()],
            entrypoint: vec!["/usr/local/bin/fp-api-server".into()],
            cmd: vec![],
            working_dir: "/home/nonroot".into(),
            labels: BTreeMap::from([("org.opencontainers.image.version".into(), "0.1.0".into())]),
            exposed_ports: BTreeMap::new(),
        }
    }

    #[test]
    fn gzip_is_deterministic_and_round_trips() {
        let data = b"some layer bytes".repeat(1000);
        let a = gzip(&data).unwrap();
        assert_eq!(a, gzip(&data).unwrap());
        // mtime 0 and OS 255 in the header.
        assert_eq!(&a[4..8], &[0, 0, 0, 0]);
        assert_eq!(a[9], 255);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&a[..]), &mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn config_names_user_layers_and_history() {
        let l = layer(b"tar", "Debian packages").unwrap();
        let json: serde_json::Value = serde_json::from_slice(
            &config_json(
                "2026-11-29T10:00:00Z",
                &platform(),
                &run(),
                std::slice::from_ref(&l),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(json["architecture"], "amd64");
        assert_eq!(json["config"]["User"], "65532:65532");
        assert_eq!(json["config"]["WorkingDir"], "/home/nonroot");
        assert_eq!(
            json["config"]["Entrypoint"][0],
            "/usr/local/bin/fp-api-server"
        );
        assert!(json["config"].get("Cmd").is_none());
        assert_eq!(json["rootfs"]["diff_ids"][0], sha256_digest(b"tar"));
        assert_eq!(json["history"][0]["created_by"], "Debian packages");
        assert_eq!(json["created"], "2026-11-29T10:00:00Z");
    }

    #[test]
    fn manifest_points_at_config_and_gzip_layers() {
        let l = layer(b"tar", "x").unwrap();
        let config = Descriptor::of(MEDIA_CONFIG, b"{}");
        let ann = BTreeMap::from([("org.opencontainers.image.revision".into(), "abc".into())]);
        let bytes = manifest_json(&config, std::slice::from_ref(&l), &ann).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["schemaVersion"], 2);
        assert_eq!(json["mediaType"], MEDIA_MANIFEST);
        assert_eq!(json["config"]["digest"], sha256_digest(b"{}"));
        assert_eq!(json["layers"][0]["mediaType"], MEDIA_LAYER_GZIP);
        assert_eq!(json["layers"][0]["digest"], sha256_digest(&l.gzip));
        assert_eq!(json["layers"][0]["size"], l.gzip.len());
        assert_eq!(
            json["annotations"]["org.opencontainers.image.revision"],
            "abc"
        );
        // Fixed field order: the same input, the same bytes.
        assert_eq!(bytes, manifest_json(&config, &[l], &ann).unwrap());
    }

    #[test]
    fn layout_holds_every_blob_and_the_tagged_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("img");
        let d = write_layout(&out, "0.1.0", b"{\"m\":1}", &platform(), &[b"a", b"b"]).unwrap();
        for blob in [&b"a"[..], b"b", b"{\"m\":1}"] {
            let hex = sha256_digest(blob).trim_start_matches("sha256:").to_owned();
            assert_eq!(
                std::fs::read(out.join("blobs/sha256").join(hex)).unwrap(),
                blob
            );
        }
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], d.digest);
        assert_eq!(index["manifests"][0]["annotations"][REF_NAME], "0.1.0");
        assert_eq!(index["manifests"][0]["platform"]["os"], "linux");
        assert!(!out.with_extension("partial").exists());
    }
}
