//! The loopback image registry of the real node (`crane registry serve`, blobs on disk in the
//! state directory) and pushing single-layer images into it with crane. Kept in one module so
//! the image builder (`cargo xtask images`) can take it over.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

/// `crane registry serve` on 127.0.0.1:`port` storing blobs in `data` (manifests live in its
/// memory: the registry lives exactly as long as the cluster).
pub fn serve_args(port: u16, data: &Path) -> Vec<String> {
    vec![
        "registry".into(),
        "serve".into(),
        format!("--address=127.0.0.1:{port}"),
        format!("--disk={}", data.display()),
    ]
}

/// An image made of files: each `(host file, path in the image)` lands in one layer, owned by
/// root, mode kept, timestamps zero, so the digest only changes when a file does.
#[derive(Debug, Clone)]
pub struct FileImage {
    /// Repository in the registry, e.g. `fp-pause`.
    pub repository: String,
    pub files: Vec<(PathBuf, String)>,
    pub entrypoint: Vec<String>,
    /// `uid:gid` the image runs as.
    pub user: String,
}

impl FileImage {
    /// Tag derived from the content: the files, entrypoint and user.
    pub fn tag(&self) -> anyhow::Result<String> {
        let mut h = Sha256::new();
        for (file, path) in &self.files {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            h.update(path.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
        h.update(self.entrypoint.join("\0").as_bytes());
        h.update(self.user.as_bytes());
        Ok(hex::encode(&h.finalize()[..6]))
    }
}

/// Builds the layer with tar (sorted, zero mtimes, numeric root ownership) and pushes the image
/// as `127.0.0.1:<port>/<repository>:<tag>` with crane; returns the tag.
pub fn push(crane: &Path, port: u16, image: &FileImage, work: &Path) -> anyhow::Result<String> {
    let tag = image.tag()?;
    let root = work.join(format!("{}-{tag}", image.repository));
    let _ = std::fs::remove_dir_all(&root);
    let tree = root.join("tree");
    for (file, path) in &image.files {
        let dest = tree.join(path.trim_start_matches('/'));
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(file, &dest).with_context(|| format!("copying {}", file.display()))?;
    }
    let layer = root.join("layer.tar");
    let status = Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--format=gnu",
            "-C",
        ])
        .arg(&tree)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .context("running tar")?;
    if !status.success() {
        bail!(
            "tar failed building the {} layer: {status}",
            image.repository
        );
    }
    let base = format!("127.0.0.1:{port}/{}:{tag}-layer", image.repository);
    let target = format!("127.0.0.1:{port}/{}:{tag}", image.repository);
    let layer_arg = layer.display().to_string();
    crane_run(
        crane,
        &["append", "--oci-empty-base", "-f", &layer_arg, "-t", &base],
    )?;
    let mut args = vec![
        "mutate".to_string(),
        base,
        format!("--entrypoint={}", image.entrypoint.join(",")),
        format!("--user={}", image.user),
        "--set-platform=linux/amd64".into(),
        "-t".into(),
        target,
    ];
    args.retain(|a| a != "--entrypoint=");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crane_run(crane, &args)?;
    Ok(tag)
}

fn crane_run(crane: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(crane)
        .args(args)
        .output()
        .with_context(|| format!("running {}", crane.display()))?;
    if !out.status.success() {
        bail!(
            "`crane {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_on_loopback_only() {
        let args = serve_args(5000, Path::new("/s/registry"));
        assert!(args.contains(&"--address=127.0.0.1:5000".to_string()));
        assert!(args.contains(&"--disk=/s/registry".to_string()));
    }

    #[test]
    fn tags_follow_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pause");
        std::fs::write(&file, b"one").unwrap();
        let image = FileImage {
            repository: "fp-pause".into(),
            files: vec![(file.clone(), "/pause".into())],
            entrypoint: vec!["/pause".into()],
            user: "65535:65535".into(),
        };
        let a = image.tag().unwrap();
        assert_eq!(a, image.tag().unwrap());
        assert_eq!(a.len(), 12);
        std::fs::write(&file, b"two").unwrap();
        assert_ne!(a, image.tag().unwrap());
        let other_user = FileImage {
            user: "0:0".into(),
            ..image.clone()
        };
        assert_ne!(image.tag().unwrap(), other_user.tag().unwrap());
    }
}
