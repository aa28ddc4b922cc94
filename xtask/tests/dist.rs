//! `cargo xtask dist --profile dev` end to end, judged by tools nobody on the team wrote:
//! `sha256sum -c SHA256SUMS`, `tar -tzvf` listings, the unpacked `kubectl-fp` and
//! `fp-api-server` run, `helm lint` and `helm template` of the packaged chart render the
//! operator Deployment pinned by the digest of the images.json given (and by tag with
//! `--without-digests`); a second run gives byte-identical tarballs; a missing or stale
//! images.json is refused before anything is built or written.
//!
//! The images are a fixture (two manifests carrying this work tree's revision, as
//! `cargo xtask images` writes them), so the test needs no Debian packages; it builds the
//! workspace's debug binaries (already built in `cargo xtask test`) and, the first time on a
//! machine, helm into the cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn git(args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The revision `cargo xtask images` records: HEAD, `-dirty` for a modified work tree.
fn revision() -> String {
    let head = git(&["rev-parse", "HEAD"]);
    if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        head
    } else {
        format!("{head}-dirty")
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = run_with_stdin("sha256sum", &[], bytes);
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

fn run_with_stdin(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// An images directory as `cargo xtask images` leaves it: images.json and, per image, the
/// manifest blob it names. Returns the operator's digest.
fn fixture_images(dir: &Path, revision: &str) -> String {
    let mut entries = Vec::new();
    let mut operator_digest = String::new();
    for name in ["fp-api-server", "fp-operator"] {
        let manifest = format!(
            r#"{{"schemaVersion":2,"annotations":{{"org.opencontainers.image.revision":"{revision}","org.opencontainers.image.title":"{name}"}}}}"#
        );
        let hex = sha256_hex(manifest.as_bytes());
        let blobs = dir.join(name).join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join(&hex), &manifest).unwrap();
        let digest = format!("sha256:{hex}");
        if name == "fp-operator" {
            operator_digest = digest.clone();
        }
        entries.push(format!(
            r#"{{"image":"footballprediction/{name}:{VERSION}","digest":"{digest}","layout":"{name}"}}"#
        ));
    }
    std::fs::write(
        dir.join("images.json"),
        format!("[{}]\n", entries.join(",")),
    )
    .unwrap();
    operator_digest
}

fn dist(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("dist")
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap();
    eprintln!(
        "--- xtask dist {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(program: &Path, args: &[&str], cwd: &Path, env: &[(&str, &Path)]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}\n{}{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The helm binary dist used (it prints `[dist] helm PATH (…)`).
fn helm_of(stderr: &str) -> PathBuf {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("[dist] helm /"))
        .expect("dist names its helm");
    PathBuf::from(format!("/{}", line.split(" (").next().unwrap()))
}

#[test]
fn dev_dist_is_checked_by_sha256sum_tar_the_binaries_and_helm() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    let operator_digest = fixture_images(&images, &revision());
    let out = tmp.path().join("dist");
    let run = dist(&[
        "--profile",
        "dev",
        "--out",
        out.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "dist failed");
    let stderr = String::from_utf8_lossy(&run.stderr);
    let helm = helm_of(&stderr);
    let helm_home = tmp.path().join("helm-home");
    let helm_env = [
        ("HELM_CONFIG_HOME", helm_home.as_path()),
        ("HELM_CACHE_HOME", helm_home.as_path()),
        ("HELM_DATA_HOME", helm_home.as_path()),
    ];

    let names = file_names(&out);
    let tarballs: Vec<&String> = names.iter().filter(|n| n.ends_with(".tar.gz")).collect();
    assert_eq!(tarballs.len(), 2, "{names:?}");
    assert!(tarballs[0].starts_with(&format!("fp-api-server-{VERSION}-")));
    assert!(tarballs[1].starts_with(&format!("kubectl-fp-{VERSION}-")));
    let target = tarballs[1]
        .strip_prefix(&format!("kubectl-fp-{VERSION}-"))
        .unwrap()
        .strip_suffix(".tar.gz")
        .unwrap()
        .to_owned();
    let chart = format!("fp-operator-{VERSION}.tgz");
    let crd = format!("footballprediction-crd-{VERSION}.yaml");
    let mut expected = vec![
        "SHA256SUMS".to_owned(),
        chart.clone(),
        format!("fp-api-server-{VERSION}-{target}.tar.gz"),
        crd.clone(),
        "images.json".to_owned(),
        format!("kubectl-fp-{VERSION}-{target}.tar.gz"),
    ];
    expected.sort();
    assert_eq!(names, expected, "nothing else, no leftovers of the staging");
    let parent = file_names(tmp.path());
    assert_eq!(parent, vec!["dist", "images"], "no staging left beside it");

    // sha256sum itself verifies every file the checksum file lists, and it lists them all.
    let checked = ok(Path::new("sha256sum"), &["-c", "SHA256SUMS"], &out, &[]);
    let mut verified: Vec<&str> = checked
        .lines()
        .map(|l| l.strip_suffix(": OK").expect(l))
        .collect();
    verified.sort();
    let mut others: Vec<&str> = expected
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "SHA256SUMS")
        .collect();
    others.sort();
    assert_eq!(verified, others);

    let unpacked = tmp.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    for binary in ["kubectl-fp", "fp-api-server"] {
        let top = format!("{binary}-{VERSION}-{target}");
        let tarball = out.join(format!("{top}.tar.gz"));
        let tarball = tarball.to_str().unwrap();
        let listing = ok(Path::new("tar"), &["-tzf", tarball], &out, &[]);
        assert_eq!(
            listing.lines().collect::<Vec<_>>(),
            vec![format!("{top}/"), format!("{top}/{binary}")]
        );
        let long = ok(
            Path::new("tar"),
            &["--numeric-owner", "--full-time", "-tvzf", tarball],
            &out,
            &[],
        );
        for line in long.lines() {
            assert!(line.contains(" 0/0 "), "not owned by 0/0: {line}");
        }
        assert!(long.starts_with("drwxr-xr-x"), "{long}");
        assert!(
            long.lines().nth(1).unwrap().starts_with("-rwxr-xr-x"),
            "{long}"
        );
        ok(Path::new("tar"), &["-xzf", tarball], &unpacked, &[]);
    }
    let kubectl_fp = unpacked
        .join(format!("kubectl-fp-{VERSION}-{target}"))
        .join("kubectl-fp");
    let help = ok(&kubectl_fp, &["--help"], tmp.path(), &[]);
    for command in ["promote", "abort", "rollback", "history"] {
        assert!(
            help.contains(command),
            "kubectl-fp --help lacks {command}:\n{help}"
        );
    }
    let api = unpacked
        .join(format!("fp-api-server-{VERSION}-{target}"))
        .join("fp-api-server");
    let version = ok(&api, &["--version"], tmp.path(), &[]);
    assert_eq!(version.trim(), format!("fp-api-server {VERSION}"));
    // Debug info stripped (the symbol table kept), as in the images.
    let sections = ok(
        Path::new("objdump"),
        &["-h", api.to_str().unwrap()],
        tmp.path(),
        &[],
    );
    assert!(
        !sections.contains(".debug_info"),
        "debug info left in fp-api-server"
    );

    assert_eq!(
        std::fs::read(out.join(&crd)).unwrap(),
        std::fs::read(workspace().join("crds/footballprediction.yaml")).unwrap()
    );
    assert_eq!(
        std::fs::read(out.join("images.json")).unwrap(),
        std::fs::read(images.join("images.json")).unwrap()
    );

    let chart_path = out.join(&chart);
    let chart_arg = chart_path.to_str().unwrap();
    let lint = ok(
        &helm,
        &["lint", "--strict", chart_arg],
        tmp.path(),
        &helm_env,
    );
    assert!(lint.contains("0 chart(s) failed"), "{lint}");
    let rendered = ok(&helm, &["template", "fp", chart_arg], tmp.path(), &helm_env);
    assert!(rendered.contains("kind: Deployment"), "{rendered}");
    let pinned = format!("image: \"footballprediction/fp-operator@{operator_digest}\"");
    assert!(rendered.contains(&pinned), "no {pinned} in:\n{rendered}");
    // The chart keeps its CRD (helm installs crds/ before the templates).
    let crds = ok(&helm, &["show", "crds", chart_arg], tmp.path(), &helm_env);
    assert!(
        crds.contains("name: footballpredictions.footballprediction.io"),
        "{crds}"
    );

    // Again, by tag only: the tarballs and the CRD are byte for byte the same.
    let by_tag = tmp.path().join("by-tag");
    let run = dist(&[
        "--profile",
        "dev",
        "--out",
        by_tag.to_str().unwrap(),
        "--images",
        tmp.path().join("no-images").to_str().unwrap(),
        "--without-digests",
    ]);
    assert!(run.status.success(), "dist --without-digests failed");
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("pins NO image digest"),
        "no loud note"
    );
    assert!(!by_tag.join("images.json").exists());
    for name in [
        &crd,
        &format!("fp-api-server-{VERSION}-{target}.tar.gz"),
        &format!("kubectl-fp-{VERSION}-{target}.tar.gz"),
    ] {
        assert_eq!(
            std::fs::read(out.join(name)).unwrap(),
            std::fs::read(by_tag.join(name)).unwrap(),
            "{name} differs between two runs"
        );
    }
    let chart_path = by_tag.join(&chart);
    let rendered = ok(
        &helm,
        &["template", "fp", chart_path.to_str().unwrap()],
        tmp.path(),
        &helm_env,
    );
    let by_tag_image = format!("image: \"footballprediction/fp-operator:{VERSION}\"");
    assert!(
        rendered.contains(&by_tag_image),
        "no {by_tag_image} in:\n{rendered}"
    );
    assert!(!rendered.contains("@sha256:"), "{rendered}");
}

#[test]
fn missing_or_stale_images_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dist");

    let run = dist(&[
        "--out",
        out.to_str().unwrap(),
        "--images",
        tmp.path().join("none").to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("images.json is missing"), "{stderr}");
    assert!(stderr.contains("cargo xtask images"), "{stderr}");
    assert!(stderr.contains("--without-digests"), "{stderr}");
    assert_eq!(file_names(tmp.path()), Vec::<String>::new());

    let stale = tmp.path().join("stale");
    fixture_images(&stale, "0123456789abcdef0123456789abcdef01234567");
    let run = dist(&[
        "--out",
        out.to_str().unwrap(),
        "--images",
        stale.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("were built from 0123456789abcdef0123456789abcdef01234567"),
        "{stderr}"
    );
    assert!(
        stderr.contains("run `cargo xtask images` again"),
        "{stderr}"
    );
    assert_eq!(file_names(tmp.path()), vec!["stale"]);
}
