//! Test tools built from crates.io sources with `cargo install`, cached like the cluster's
//! binaries so only the first run pays for the build.
use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;

use crate::{paths, steps};

/// A real S3 server on a directory, for the backup tests' off-site destination.
const S3S_FS: Tool = Tool {
    krate: "s3s-fs",
    version: "0.14.1",
    features: &["binary"],
    binary: "s3s-fs",
};

/// The dependency audit (`cargo xtask deny`, deny.toml). 0.20.2 is the newest release; its
/// lock file builds with our stable toolchain.
const CARGO_DENY: Tool = Tool {
    krate: "cargo-deny",
    version: "0.20.2",
    features: &[],
    binary: "cargo-deny",
};

struct Tool {
    krate: &'static str,
    version: &'static str,
    features: &'static [&'static str],
    binary: &'static str,
}

impl Tool {
    /// `<cache>/tools/<crate>-<version>`: a version bump installs next to the old one.
    fn root(&self) -> PathBuf {
        paths::cache_dir()
            .join("tools")
            .join(format!("{}-{}", self.krate, self.version))
    }

    fn install_args(&self, root: &str) -> Vec<String> {
        let mut args = vec![
            "install".to_owned(),
            self.krate.to_owned(),
            "--version".to_owned(),
            format!("={}", self.version),
            "--locked".to_owned(),
            "--root".to_owned(),
            root.to_owned(),
        ];
        if !self.features.is_empty() {
            args.extend(["--features".to_owned(), self.features.join(",")]);
        }
        args
    }

    fn ensure(&self) -> anyhow::Result<PathBuf> {
        let root = self.root();
        let binary = root.join("bin").join(self.binary);
        if binary.is_file() {
            return Ok(binary);
        }
        eprintln!(
            "[tools] building {} {} (first run only; cached in {})",
            self.krate,
            self.version,
            root.display()
        );
        let root_arg = root.to_str().context("cache path is not UTF-8")?;
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(self.install_args(root_arg))
            // Its own target directory: the workspace's build cache stays untouched.
            .env_remove("CARGO_TARGET_DIR");
        let took = steps::run(&mut cmd)?;
        eprintln!("[tools] {} built in {}s", self.krate, took.as_secs());
        anyhow::ensure!(
            binary.is_file(),
            "{} missing after install",
            binary.display()
        );
        Ok(binary)
    }
}

/// The s3s-fs binary, built on first use.
pub fn s3s_fs() -> anyhow::Result<PathBuf> {
    S3S_FS.ensure()
}

/// The cargo-deny binary, built on first use.
pub fn cargo_deny() -> anyhow::Result<PathBuf> {
    CARGO_DENY.ensure()
}

/// Where the cargo-deny binary is once built, without building it (for tests that use it
/// only when it is there).
#[cfg(test)]
pub fn cargo_deny_if_built() -> Option<PathBuf> {
    let binary = CARGO_DENY.root().join("bin").join(CARGO_DENY.binary);
    binary.is_file().then_some(binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_pins_the_exact_version_and_features() {
        let args = S3S_FS.install_args("/c/tools/s3s-fs-0.14.1");
        assert_eq!(
            args.join(" "),
            "install s3s-fs --version =0.14.1 --locked --root /c/tools/s3s-fs-0.14.1 --features binary"
        );
        let args = CARGO_DENY.install_args("/c/tools/cargo-deny-0.20.2");
        assert_eq!(
            args.join(" "),
            "install cargo-deny --version =0.20.2 --locked --root /c/tools/cargo-deny-0.20.2"
        );
    }
}
