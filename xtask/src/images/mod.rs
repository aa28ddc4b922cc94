//! `cargo xtask images`: OCI images of fp-api-server and fp-operator, built without a container
//! engine from our binaries and Debian packages (docs/images.md).
//!
//! Layers, in order: Debian base (C library, CA certificates, zone data, users; the same blob in
//! both images), the API's PostgreSQL client tools, then the binary with its SBOM. Everything is
//! deterministic: the same commit, binaries and package versions give the same digests.
pub mod check;
pub mod debs;
pub mod fstree;
pub mod oci;
pub mod push;
pub mod registry;
pub mod sbom;
pub mod spec;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use fstree::{Kind, Node, Tree};
use spec::ImageSpec;

/// Which binaries go into the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Release binaries (what ships; path-remapped so any checkout builds the same bytes).
    Release,
    /// The workspace's debug binaries: what `cargo xtask test` already compiled, for checking
    /// the image recipe without a release build. Not for shipping.
    Dev,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub profile: Profile,
    pub push: Option<String>,
    pub check: bool,
    pub reproducible: bool,
}

/// What one build produced.
#[derive(Debug, Clone)]
pub struct Built {
    pub spec: ImageSpec,
    pub layout: PathBuf,
    pub manifest_digest: String,
    pub uncompressed: u64,
    pub compressed: u64,
    pub layers: Vec<(String, u64, u64)>,
    pub sbom: PathBuf,
}

impl Built {
    /// `oci:<layout>:<tag>` for skopeo.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), spec::tag())
    }
}

/// Everything an image build reads besides the binaries.
pub struct Inputs {
    pub epoch: i64,
    pub created: String,
    pub revision: String,
    pub pg_major: String,
    pub base: Tree,
    pub base_packages: Vec<debs::DebPackage>,
    /// Per image: its own Debian layer and packages.
    pub extra: BTreeMap<&'static str, (Tree, Vec<debs::DebPackage>)>,
    pub crates: BTreeMap<String, BTreeSet<sbom::Crate>>,
    pub images: Vec<ImageSpec>,
}

pub fn output_dir(profile: Profile) -> PathBuf {
    let root = crate::paths::workspace_root().join("target").join("images");
    match profile {
        Profile::Release => root,
        Profile::Dev => root.join("dev"),
    }
}

fn git(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(crate::paths::workspace_root())
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// SOURCE_DATE_EPOCH, else the commit time of HEAD.
pub fn source_date_epoch() -> anyhow::Result<i64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH")
        && !v.is_empty()
    {
        return v
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds"));
    }
    git(&["log", "-1", "--format=%ct", "HEAD"])?
        .parse()
        .context("git printed no commit time (set SOURCE_DATE_EPOCH)")
}

/// HEAD's commit, with `-dirty` when the work tree differs from it.
pub fn revision() -> anyhow::Result<String> {
    let head = git(&["rev-parse", "HEAD"])?;
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"])?.is_empty();
    Ok(if dirty { format!("{head}-dirty") } else { head })
}

fn package_tree(
    packages: &[debs::DebPackage],
    cache: &Path,
    keep: &BTreeMap<&str, &[&str]>,
) -> anyhow::Result<Tree> {
    let paths = debs::download(packages, cache)?;
    let mut tree = Tree::new();
    for (package, deb) in packages.iter().zip(&paths) {
        debs::add_package(
            &mut tree,
            package,
            deb,
            keep.get(package.name.as_str()).copied(),
        )
        .with_context(|| format!("adding {} {}", package.name, package.version))?;
    }
    Ok(tree)
}

/// The files every image shares beyond its packages: the CA bundle (what ca-certificates'
/// postinst would make), users, UTC as local time, /tmp and the home of the non-root user.
pub fn finish_base(tree: &mut Tree) -> anyhow::Result<()> {
    let mut bundle = Vec::new();
    for (_, pem) in tree.files_below("usr/share/ca-certificates") {
        bundle.extend_from_slice(pem);
        if !bundle.ends_with(b"\n") {
            bundle.push(b'\n');
        }
    }
    if bundle.is_empty() {
        bail!("no certificates under usr/share/ca-certificates (is ca-certificates in the image?)");
    }
    tree.set(
        "etc/ssl/certs/ca-certificates.crt",
        Node::file(bundle, 0o644, "generated"),
    )?;
    for (path, text) in spec::identity_files() {
        tree.set(path, Node::file(text.into_bytes(), 0o644, "generated"))?;
    }
    if tree.get("usr/share/zoneinfo/Etc/UTC").is_none() {
        bail!("usr/share/zoneinfo/Etc/UTC missing (is tzdata in the image?)");
    }
    tree.set(
        "etc/localtime",
        Node::symlink("/usr/share/zoneinfo/Etc/UTC", "generated"),
    )?;
    tree.set(
        "etc/timezone",
        Node::file(b"Etc/UTC\n".to_vec(), 0o644, "generated"),
    )?;
    tree.set("tmp", Node::dir(0o1777, "generated"))?;
    tree.set(
        spec::HOME,
        Node::owned(Kind::Dir, 0o700, spec::RUN_AS, "generated"),
    )?;
    Ok(())
}

/// Links `/usr/bin/<program>` to the versioned client programs, each checked to exist.
pub fn add_links(tree: &mut Tree, links: &[(String, String)]) -> anyhow::Result<()> {
    for (path, target) in links {
        let resolved = fstree::resolve_link(path, target)
            .with_context(|| format!("{path} -> {target} leaves the image"))?;
        match tree.get(&resolved) {
            Some(Node {
                kind: Kind::File(_),
                mode,
                ..
            }) if mode & 0o111 != 0 => {}
            _ => bail!("{path} -> {target}: no executable at {resolved}"),
        }
        tree.set(path, Node::symlink(target, "generated"))?;
    }
    Ok(())
}

/// Reads the inputs: SOURCE_DATE_EPOCH, the revision, the Debian packages (resolved, fetched
/// into the cache, read) and the crates of each binary.
pub fn gather_inputs() -> anyhow::Result<Inputs> {
    let epoch = source_date_epoch()?;
    let created = spec::rfc3339(epoch).context("SOURCE_DATE_EPOCH out of range")?;
    let revision = revision()?;
    let base_roots: Vec<String> = spec::BASE_PACKAGES.iter().map(|s| s.to_string()).collect();
    // `postgresql` (the server the tests install) leads to its client package as well.
    let mut graph_roots = base_roots.clone();
    graph_roots.push("postgresql".to_owned());
    let graph = debs::depends_graph(&graph_roots)?;
    let pg_major = debs::major_from_postgresql_depends(&graph)
        .context("apt-cache depends postgresql names no postgresql-<major>")?;
    let images = spec::images(&pg_major);
    let cache = crate::paths::cache_dir().join("debs");
    let excluded = spec::excluded_names();
    let keep: BTreeMap<&str, &[&str]> = spec::FILES_ONLY.iter().copied().collect();

    let files_only: Vec<String> = spec::FILES_ONLY
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    // The base set first, then each image's full set (base roots and its own).
    let mut root_sets = vec![base_roots.clone()];
    let with_extra: Vec<&ImageSpec> = images
        .iter()
        .filter(|i| !i.extra_packages.is_empty())
        .collect();
    for image in &with_extra {
        let mut roots = base_roots.clone();
        roots.extend(image.extra_packages.iter().cloned());
        root_sets.push(roots);
    }
    let (mut sets, files_only_packages) =
        debs::resolve(&graph, &root_sets, &excluded, &files_only)?;
    let mut base_packages = sets.remove(0);
    base_packages.extend(files_only_packages);
    base_packages.sort_by(|a, b| a.name.cmp(&b.name));
    let mut base = package_tree(&base_packages, &cache, &keep)?;
    finish_base(&mut base)?;
    let base_names: BTreeSet<&str> = base_packages.iter().map(|p| p.name.as_str()).collect();

    let mut extra = BTreeMap::new();
    for (image, set) in with_extra.iter().zip(sets) {
        let own: Vec<debs::DebPackage> = set
            .into_iter()
            .filter(|p| !base_names.contains(p.name.as_str()))
            .collect();
        let mut tree = package_tree(&own, &cache, &keep)?;
        add_links(&mut tree, &image.extra_links)?;
        extra.insert(image.name, (tree, own));
    }

    let packages: Vec<&str> = images.iter().map(|i| i.cargo_package).collect();
    let crates = sbom::crates_of(&packages)?.into_iter().collect();
    Ok(Inputs {
        epoch,
        created,
        revision,
        pg_major,
        base,
        base_packages,
        extra,
        crates,
        images,
    })
}

/// An image's blobs before they are written.
#[derive(Debug, Clone)]
pub struct Composed {
    pub layers: Vec<oci::Layer>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub sbom: Vec<u8>,
}

/// What [`compose`] needs for one image.
pub struct ComposeInput<'a> {
    pub spec: &'a ImageSpec,
    pub epoch: i64,
    pub created: &'a str,
    pub revision: &'a str,
    pub base: &'a Tree,
    pub base_packages: &'a [debs::DebPackage],
    pub extra: Option<&'a (Tree, Vec<debs::DebPackage>)>,
    pub binary: Vec<u8>,
    pub crates: &'a BTreeSet<sbom::Crate>,
}

pub fn platform() -> oci::Platform {
    oci::Platform {
        architecture: spec::ARCHITECTURE.to_owned(),
        os: "linux".to_owned(),
    }
}

fn package_list(packages: &[debs::DebPackage]) -> String {
    packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Layers, config and manifest of one image: pure (the same input, the same bytes).
pub fn compose(input: &ComposeInput) -> anyhow::Result<Composed> {
    let spec = input.spec;
    let mtime = u64::try_from(input.epoch).context("SOURCE_DATE_EPOCH before 1970")?;
    let mut debs: Vec<debs::DebPackage> = input.base_packages.to_vec();
    if let Some((_, own)) = input.extra {
        debs.extend(own.iter().cloned());
    }
    let sbom = sbom::spdx(&sbom::SbomInput {
        image: &spec.reference(),
        version: spec::tag(),
        binary: spec.name,
        source_url: spec::SOURCE_URL,
        license: spec::LICENSE,
        created: input.created,
        debian_release: spec::DEBIAN_RELEASE,
        debs: &debs,
        crates: input.crates,
    })?;

    let mut app = Tree::new();
    for dir in &spec.dirs {
        app.insert(
            dir.path,
            Node::owned(Kind::Dir, dir.mode, dir.owner, "image"),
        )?;
    }
    app.insert(
        &spec.binary_path(),
        Node::file(input.binary.clone(), 0o755, spec.name),
    )?;
    app.insert(
        &format!("usr/share/sbom/{}.spdx.json", spec.name),
        Node::file(sbom.clone(), 0o644, "sbom"),
    )?;

    let mut layers = vec![oci::layer(
        &input.base.to_tar(mtime)?,
        &format!("Debian packages: {}", package_list(input.base_packages)),
    )?];
    if let Some((tree, own)) = input.extra {
        layers.push(oci::layer(
            &tree.to_tar(mtime)?,
            &format!("Debian packages: {}", package_list(own)),
        )?);
    }
    layers.push(oci::layer(
        &app.to_tar(mtime)?,
        &format!("{} {} and its SBOM", spec.binary_path(), spec::tag()),
    )?);

    let annotations = spec::annotations(spec, input.revision, input.created);
    let run = oci::RunConfig {
        user: format!("{}:{}", spec::RUN_AS, spec::RUN_AS),
        env: spec::env(),
        entrypoint: vec![spec.binary_path()],
        cmd: Vec::new(),
        working_dir: spec::HOME.to_owned(),
        labels: annotations.clone(),
        exposed_ports: BTreeMap::from([(format!("{}/tcp", spec.port), serde_json::Map::new())]),
    };
    let config = oci::config_json(input.created, &platform(), &run, &layers)?;
    let config_descriptor = oci::Descriptor::of(oci::MEDIA_CONFIG, &config);
    let manifest = oci::manifest_json(&config_descriptor, &layers, &annotations)?;
    Ok(Composed {
        manifest_digest: oci::sha256_digest(&manifest),
        layers,
        config,
        manifest,
        sbom,
    })
}

/// Writes the layout and SBOM of a composed image below `out`.
pub fn write(spec: &ImageSpec, composed: &Composed, out: &Path) -> anyhow::Result<Built> {
    let layout = out.join(spec.name);
    let mut blobs: Vec<&[u8]> = vec![&composed.config];
    blobs.extend(composed.layers.iter().map(|l| l.gzip.as_slice()));
    let descriptor = oci::write_layout(
        &layout,
        spec::tag(),
        &composed.manifest,
        &platform(),
        &blobs,
    )?;
    if descriptor.digest != composed.manifest_digest {
        bail!(
            "{}: the layout names {}, composed {}",
            spec.name,
            descriptor.digest,
            composed.manifest_digest
        );
    }
    let sbom = out.join(format!("{}.spdx.json", spec.name));
    std::fs::write(&sbom, &composed.sbom).with_context(|| format!("writing {}", sbom.display()))?;
    Ok(Built {
        spec: spec.clone(),
        layout,
        manifest_digest: descriptor.digest,
        uncompressed: composed.layers.iter().map(|l| l.uncompressed_size).sum(),
        compressed: composed.layers.iter().map(|l| l.gzip.len() as u64).sum(),
        layers: composed
            .layers
            .iter()
            .map(|l| {
                (
                    l.created_by.clone(),
                    l.uncompressed_size,
                    l.gzip.len() as u64,
                )
            })
            .collect(),
        sbom,
    })
}

/// The release binaries' own target directory (their flags differ from other builds').
fn release_target_dir() -> PathBuf {
    crate::paths::workspace_root()
        .join("target")
        .join("images-build")
}

/// Builds the binaries of fp-api-server and fp-operator and returns their paths by name.
pub fn build_binaries(profile: Profile) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    match profile {
        Profile::Dev => Ok(crate::cargo::build_workspace_bins()?),
        Profile::Release => {
            let ws = crate::paths::workspace_root();
            let target = release_target_dir();
            let cargo_home = std::env::var_os("CARGO_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
                .context("neither CARGO_HOME nor HOME is set")?;
            // Paths of this checkout and of the crate sources are remapped, so a clone
            // elsewhere (CI, another developer) builds the same bytes.
            let flags = [
                format!(
                    "--remap-path-prefix={}=/build/footballprediction",
                    ws.display()
                ),
                format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
            ]
            .join("\u{1f}");
            let mut cmd = crate::cargo::command(&[
                "build",
                "--release",
                "--locked",
                "-p",
                "fp-api-server",
                "-p",
                "fp-operator",
                "--bins",
            ]);
            cmd.env("CARGO_TARGET_DIR", &target)
                .env("CARGO_ENCODED_RUSTFLAGS", flags)
                .env_remove("RUSTFLAGS");
            crate::steps::run(&mut cmd)?;
            let release = target.join("release");
            // fp-operator's other binaries come with `--bins`; `cargo xtask dist` ships them.
            Ok(["fp-api-server", "fp-operator", "kubectl-fp", "crdgen"]
                .into_iter()
                .map(|b| (b.to_owned(), release.join(b)))
                .collect())
        }
    }
}

/// The binary's bytes without debug info (`objcopy --strip-debug`; the symbol table stays, so
/// backtraces keep function names): the release profile's line tables are most of a binary's
/// size (141 -> 30 MB for fp-api-server), a dev binary's debug info even more. The unstripped
/// binary stays in the target directory for debugging.
pub fn binary_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile_dir()?;
    let out = dir.join("stripped");
    crate::steps::run(
        Command::new("objcopy")
            .arg("--strip-debug")
            .arg(path)
            .arg(&out),
    )?;
    let bytes = std::fs::read(&out).with_context(|| format!("reading {}", out.display()));
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = crate::paths::workspace_root()
        .join("target")
        .join("images-tmp")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Composes and writes both images from `inputs` and the binaries.
pub fn assemble(
    inputs: &Inputs,
    binaries: &BTreeMap<String, PathBuf>,
    out: &Path,
) -> anyhow::Result<Vec<Built>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut built = Vec::new();
    for spec in &inputs.images {
        let path = binaries
            .get(spec.name)
            .with_context(|| format!("cargo built no {}", spec.name))?;
        let crates = inputs
            .crates
            .get(spec.cargo_package)
            .with_context(|| format!("no crate list for {}", spec.cargo_package))?;
        let composed = compose(&ComposeInput {
            spec,
            epoch: inputs.epoch,
            created: &inputs.created,
            revision: &inputs.revision,
            base: &inputs.base,
            base_packages: &inputs.base_packages,
            extra: inputs.extra.get(spec.name),
            binary: binary_bytes(path)?,
            crates,
        })?;
        built.push(write(spec, &composed, out)?);
    }
    let summary: Vec<serde_json::Value> = built
        .iter()
        .map(|b| {
            serde_json::json!({
                "image": b.spec.reference(),
                "digest": b.manifest_digest,
                "uncompressedBytes": b.uncompressed,
                "compressedBytes": b.compressed,
                "layout": b.layout.file_name().map(|n| n.to_string_lossy().into_owned()),
            })
        })
        .collect();
    std::fs::write(
        out.join("images.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    Ok(built)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

pub fn print_table(built: &[Built]) {
    println!("{:<44} {:>10} {:>10}  digest", "image", "size", "gzip");
    for b in built {
        println!(
            "{:<44} {:>10} {:>10}  {}",
            b.spec.reference(),
            mb(b.uncompressed),
            mb(b.compressed),
            b.manifest_digest
        );
        for (what, size, gz) in &b.layers {
            let what: String = what.chars().take(60).collect();
            println!("  {what:<60} {:>10} {:>10}", mb(*size), mb(*gz));
        }
        println!("  SBOM (SPDX 2.3): {}", b.sbom.display());
    }
}

/// Refuses release images above their budget (docs/images.md).
pub fn check_sizes(built: &[Built]) -> anyhow::Result<()> {
    for b in built {
        if b.uncompressed > b.spec.max_bytes {
            bail!(
                "{} is {} uncompressed, above its budget of {}",
                b.spec.reference(),
                mb(b.uncompressed),
                mb(b.spec.max_bytes)
            );
        }
    }
    Ok(())
}

/// Builds the images (and checks, pushes them as asked); returns what was built.
pub fn build(options: &Options) -> anyhow::Result<Vec<Built>> {
    let t0 = Instant::now();
    let binaries = build_binaries(options.profile)?;
    let t_bin = t0.elapsed();
    let t1 = Instant::now();
    let inputs = gather_inputs()?;
    let out = output_dir(options.profile);
    let built = assemble(&inputs, &binaries, &out)?;
    eprintln!(
        "[images] binaries {:.0}s, images {:.0}s ({} profile) -> {}",
        t_bin.as_secs_f64(),
        t1.elapsed().as_secs_f64(),
        match options.profile {
            Profile::Release => "release",
            Profile::Dev => "dev",
        },
        out.display()
    );
    print_table(&built);
    if options.profile == Profile::Release {
        check_sizes(&built)?;
    }
    if options.reproducible {
        // Release: the binaries are compiled again from nothing (the first build's target
        // directory moved aside); dev: the same binaries are packed again.
        let (binaries, previous) = match options.profile {
            Profile::Release => {
                let dir = release_target_dir();
                let previous = dir.with_extension("previous");
                let _ = std::fs::remove_dir_all(&previous);
                std::fs::rename(&dir, &previous)
                    .with_context(|| format!("moving {} aside", dir.display()))?;
                (build_binaries(Profile::Release)?, Some(previous))
            }
            Profile::Dev => (binaries, None),
        };
        let again = output_dir(options.profile).join("again");
        let second = assemble(&gather_inputs()?, &binaries, &again)?;
        compare_digests(&built, &second)?;
        let _ = std::fs::remove_dir_all(&again);
        if let Some(previous) = previous {
            let _ = std::fs::remove_dir_all(previous);
        }
        println!("reproducible: the second build gave the same digests");
    }
    if options.check {
        check::run(&built, &inputs.pg_major)?;
    }
    if let Some(registry) = &options.push {
        let pushed = push::push(&built, registry, &push::PushOptions::default())?;
        for p in pushed {
            println!("pushed {p}");
        }
    }
    Ok(built)
}

pub fn compare_digests(first: &[Built], second: &[Built]) -> anyhow::Result<()> {
    for (a, b) in first.iter().zip(second) {
        if a.manifest_digest != b.manifest_digest {
            bail!(
                "{} is not reproducible: {} then {} from the same inputs",
                a.spec.reference(),
                a.manifest_digest,
                b.manifest_digest
            );
        }
    }
    if first.len() != second.len() {
        bail!(
            "the second build made {} images, the first {}",
            second.len(),
            first.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
