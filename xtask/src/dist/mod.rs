//! `cargo xtask dist`: the release artifacts (docs/install.md) in one directory, written all
//! at once:
//!
//! - `kubectl-fp-<version>-<target>.tar.gz`, `fp-api-server-<version>-<target>.tar.gz`: the
//!   binaries with debug info stripped, in reproducible tarballs;
//! - `footballprediction-crd-<version>.yaml`: the CRD as crdgen prints it (refused when it
//!   differs from the committed `crds/` or the chart's copy);
//! - `fp-operator-<chart version>.tgz`: the chart, packaged by helm with `image.digest` set to
//!   the operator image's digest from `cargo xtask images`;
//! - `images.json`: the images' digests the release was cut with;
//! - `SHA256SUMS` over all of them, in `sha256sum -c` format.
pub mod archive;
pub mod chart;
pub mod pinned;
pub mod staging;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::images::{self, Profile, spec};
use crate::paths;

/// The binaries shipped as tarballs (fp-operator ships as its image).
pub const TARBALL_BINARIES: [&str; 2] = ["kubectl-fp", "fp-api-server"];
pub const CHART: &str = "fp-operator";
pub const CRD_FILE: &str = "footballprediction.yaml";

#[derive(Debug, Clone)]
pub struct Options {
    pub profile: Profile,
    /// Default: target/dist/ (release) or target/dist-dev/.
    pub out: Option<PathBuf>,
    /// Where images.json and the layouts are: default target/images/ (release) or
    /// target/images/dev/, as `cargo xtask images` writes them.
    pub images: Option<PathBuf>,
    /// Package the chart without an image digest when no images were built.
    pub without_digests: bool,
}

/// target/dist/, or target/dist-dev/ (not inside the release's: a dist directory is replaced
/// whole).
pub fn default_out(profile: Profile) -> PathBuf {
    let target = paths::workspace_root().join("target");
    match profile {
        Profile::Release => target.join("dist"),
        Profile::Dev => target.join("dist-dev"),
    }
}

/// `host: x86_64-unknown-linux-gnu` of `rustc -vV`.
pub fn host_triple(rustc_version_verbose: &str) -> Option<&str> {
    rustc_version_verbose
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn target_triple() -> anyhow::Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = crate::proc::stdout_of(&rustc, &["-vV".as_ref()])?;
    let text = String::from_utf8_lossy(&out);
    host_triple(&text)
        .map(str::to_owned)
        .with_context(|| format!("`{rustc} -vV` printed no host line"))
}

/// The CRD crdgen prints, checked against the committed copies (`crds/` and the chart's).
fn crd_yaml(crdgen: &Path) -> anyhow::Result<Vec<u8>> {
    let generated = crate::proc::stdout_of(&crdgen.to_string_lossy(), &[])?;
    let root = paths::workspace_root();
    for committed in [
        root.join("crds").join(CRD_FILE),
        root.join("charts").join(CHART).join("crds").join(CRD_FILE),
    ] {
        let text = std::fs::read(&committed)
            .with_context(|| format!("reading {}", committed.display()))?;
        if text != generated {
            bail!(
                "{} differs from what crdgen prints: run `cargo run -p fp-operator --bin crdgen > \
                 {}` and commit it before a release",
                committed.display(),
                committed.display()
            );
        }
    }
    Ok(generated)
}

fn secs(t: Instant) -> String {
    format!("{:.0}s", t.elapsed().as_secs_f64())
}

fn size(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.1} kB", bytes as f64 / 1e3)
    }
}

/// The checked images.json of `images_dir`; `None` with `--without-digests`. Refused when it is
/// missing (without that flag), incomplete, or built from another commit than `revision`.
fn images_to_pin(
    images_dir: &Path,
    revision: &str,
    options: &Options,
) -> anyhow::Result<Option<pinned::Pinned>> {
    let images_json = images_dir.join("images.json");
    if options.without_digests {
        if images_json.exists() {
            eprintln!(
                "[dist] --without-digests: {} is not used",
                images_json.display()
            );
        }
        return Ok(None);
    }
    if !images_json.exists() {
        bail!(
            "{} is missing, so the chart would pin no image digest: run `cargo xtask images{}` \
             first (or --push REGISTRY to publish them), or pass --without-digests to package \
             the chart by tag only",
            images_json.display(),
            if options.profile == Profile::Dev {
                " --profile dev"
            } else {
                ""
            }
        );
    }
    pinned::read(images_dir, revision).map(Some)
}

/// What was written (stdout), and the loud note when the chart pins no digest (stderr).
fn print_summary(
    heading: &str,
    written: &[(String, u64)],
    pinned: Option<&pinned::Pinned>,
    revision: &str,
) {
    println!("{heading}");
    let mut written = written.to_vec();
    written.sort();
    for (name, bytes) in &written {
        println!("  {name:<56} {:>9}", size(*bytes));
    }
    println!("  {:<56} sha256sum -c", staging::MARKER);
    match pinned {
        Some(p) => {
            for e in &p.entries {
                println!("  image {:<48} {}", e.image, e.digest);
            }
            println!(
                "  the chart runs {}/{CHART}@{}",
                spec::NAMESPACE,
                p.operator_digest
            );
            println!(
                "  FootballPredictions of {} run it by digest",
                pinned::reference("fp-api-server")
            );
        }
        None => {
            eprintln!();
            eprintln!("!! NOTE: the chart pins NO image digest (--without-digests): it runs");
            eprintln!(
                "!!       {} by tag, whatever the registry",
                pinned::reference(CHART)
            );
            eprintln!("!!       serves under that tag. Build the images (`cargo xtask images`)");
            eprintln!("!!       and run dist again for a release.");
        }
    }
    if revision.ends_with("-dirty") {
        eprintln!("[dist] note: the work tree has uncommitted changes ({revision})");
    }
}

/// Builds the dist; returns its directory.
pub fn run(options: &Options) -> anyhow::Result<PathBuf> {
    let t0 = Instant::now();
    let profile_name = match options.profile {
        Profile::Release => "release",
        Profile::Dev => "dev",
    };
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| default_out(options.profile));
    let images_dir = options
        .images
        .clone()
        .unwrap_or_else(|| images::output_dir(options.profile));

    // Everything that can be refused is checked before the long steps.
    let epoch = images::source_date_epoch()?;
    let mtime = u64::try_from(epoch).context("SOURCE_DATE_EPOCH before 1970")?;
    let revision = images::revision()?;
    let pinned = images_to_pin(&images_dir, &revision, options)?;
    let staging = staging::begin(&out)?;
    let target = target_triple()?;
    let version = spec::tag();
    eprintln!(
        "[dist] {profile_name} dist of {version} for {target} at {revision} \
         (SOURCE_DATE_EPOCH {epoch}) -> {}",
        out.display()
    );

    let t = Instant::now();
    eprintln!("[dist] helm (built into the cache the first time)");
    let helm = crate::cluster::helm()?;
    eprintln!("[dist] helm {} ({})", helm.display(), secs(t));

    let t = Instant::now();
    eprintln!("[dist] building the binaries ({profile_name} profile)");
    let binaries = images::build_binaries(options.profile)?;
    eprintln!("[dist] binaries ready ({})", secs(t));
    let binary = |name: &str| {
        binaries
            .get(name)
            .with_context(|| format!("cargo built no {name}"))
    };

    let mut written: Vec<(String, u64)> = Vec::new();
    let mut sums: Vec<(String, String)> = Vec::new();
    let mut put = |name: String, bytes: &[u8]| -> anyhow::Result<()> {
        let path = staging.dir.join(&name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        sums.push((name.clone(), archive::sha256_hex(bytes)));
        written.push((name, bytes.len() as u64));
        Ok(())
    };

    for name in TARBALL_BINARIES {
        let t = Instant::now();
        let stripped = images::binary_bytes(binary(name)?)?;
        let tarball = archive::binary_tarball(name, version, &target, stripped, mtime)?;
        put(archive::tarball_file_name(name, version, &target), &tarball)?;
        eprintln!("[dist] {name}: stripped and packed ({})", secs(t));
    }

    put(
        format!("footballprediction-crd-{version}.yaml"),
        &crd_yaml(binary("crdgen")?)?,
    )?;

    let t = Instant::now();
    let work = staging.dir.join(".chart-work");
    let packaged = chart::package(
        &helm,
        &paths::workspace_root().join("charts").join(CHART),
        pinned.as_ref(),
        &work,
        &work,
    )?;
    let chart_bytes =
        std::fs::read(&packaged).with_context(|| format!("reading {}", packaged.display()))?;
    let chart_name = packaged
        .file_name()
        .context("helm's package has no name")?
        .to_string_lossy()
        .into_owned();
    put(chart_name, &chart_bytes)?;
    std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    eprintln!("[dist] chart packaged ({})", secs(t));

    if let Some(p) = &pinned {
        put("images.json".to_owned(), &p.images_json)?;
    }
    let sums_text = archive::sha256sums(&sums)?;
    let sums_path = staging.dir.join(staging::MARKER);
    std::fs::write(&sums_path, &sums_text)
        .with_context(|| format!("writing {}", sums_path.display()))?;
    let out = staging.commit()?;

    print_summary(
        &format!(
            "dist {version} ({profile_name}, {target}) in {}:",
            out.display()
        ),
        &written,
        pinned.as_ref(),
        &revision,
    );
    eprintln!("[dist] done in {}", secs(t0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_host_triple() {
        let vv = "rustc 1.95.0 (abc 2026-01-01)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\n";
        assert_eq!(host_triple(vv), Some("x86_64-unknown-linux-gnu"));
        assert_eq!(host_triple("rustc 1.95.0\n"), None);
    }

    #[test]
    fn the_dev_dist_is_not_inside_the_release_dist() {
        // A dist directory is replaced whole; the other profile's must not be in it.
        let release = default_out(Profile::Release);
        let dev = default_out(Profile::Dev);
        assert!(!dev.starts_with(&release), "{}", dev.display());
        assert!(!release.starts_with(&dev), "{}", release.display());
    }

    #[test]
    fn the_committed_crd_copies_agree() {
        // What dist compares crdgen's output with: both copies must be the same text.
        let root = paths::workspace_root();
        assert_eq!(
            std::fs::read(root.join("crds").join(CRD_FILE)).unwrap(),
            std::fs::read(root.join("charts").join(CHART).join("crds").join(CRD_FILE)).unwrap()
        );
    }
}
