//! Proving the images with real clients nobody on the team wrote: skopeo reads each layout,
//! umoci unpacks it into a runtime bundle, runc runs its programs as the image's user (65532)
//! on a read-only root file system with no capabilities, like the pods; then a loopback
//! registry takes a push, gives the same digests back, and a refusing or absent registry gives
//! a clear error.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::registry::Registry;
use super::spec::{self, Which};
use super::{Built, push};

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let what = crate::steps::describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "`{what}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `skopeo inspect` of the layout: a valid image with our digest, platform, user and labels.
pub fn skopeo_inspect(b: &Built) -> anyhow::Result<()> {
    let inspect: Value = serde_json::from_str(&output(
        Command::new("skopeo").args(["inspect", &b.oci_ref()]),
    )?)
    .context("skopeo inspect printed no JSON")?;
    let config: Value = serde_json::from_str(&output(Command::new("skopeo").args([
        "inspect",
        "--config",
        &b.oci_ref(),
    ]))?)
    .context("skopeo inspect --config printed no JSON")?;
    let expect = |what: &str, got: &Value, want: &str| -> anyhow::Result<()> {
        if got.as_str() != Some(want) {
            bail!(
                "{}: skopeo reads {what} {got}, expected {want}",
                b.spec.reference()
            );
        }
        Ok(())
    };
    expect("Digest", &inspect["Digest"], &b.manifest_digest)?;
    expect("Architecture", &inspect["Architecture"], spec::ARCHITECTURE)?;
    expect("Os", &inspect["Os"], "linux")?;
    expect(
        "the version label",
        &inspect["Labels"]["org.opencontainers.image.version"],
        spec::tag(),
    )?;
    expect("User", &config["config"]["User"], "65532:65532")?;
    println!(
        "skopeo inspect {}: Digest {} Architecture {} Os {} Layers {} User {}",
        b.oci_ref(),
        inspect["Digest"].as_str().unwrap_or("?"),
        inspect["Architecture"].as_str().unwrap_or("?"),
        inspect["Os"].as_str().unwrap_or("?"),
        inspect["Layers"].as_array().map_or(0, Vec::len),
        config["config"]["User"].as_str().unwrap_or("?"),
    );
    Ok(())
}

/// What must and must not be in an unpacked root file system.
pub fn check_rootfs(rootfs: &Path, which: Which) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut problems = Vec::new();
    for absent in [
        "bin/sh",
        "usr/bin/sh",
        "bin/bash",
        "usr/bin/bash",
        "bin/dash",
        "usr/bin/dpkg",
        "usr/bin/apt",
        "usr/bin/apt-get",
        "usr/bin/perl",
    ] {
        if rootfs.join(absent).symlink_metadata().is_ok() {
            problems.push(format!("/{absent} is present"));
        }
    }
    let mut present = vec![
        "etc/ssl/certs/ca-certificates.crt",
        "usr/share/zoneinfo/Etc/UTC",
        "etc/passwd",
        "etc/os-release",
        "var/lib/dpkg/status.d/libc6",
    ];
    if which == Which::ApiServer {
        present.extend([
            "usr/bin/pg_dump",
            "usr/bin/pg_restore",
            "usr/bin/psql",
            "etc/fp/jwt",
            "etc/fp/admin",
            "etc/fp/config",
            "var/lib/fp/backups",
        ]);
    }
    for path in present {
        match rootfs.join(path).metadata() {
            Ok(m) if m.is_dir() || m.len() > 0 => {}
            Ok(_) => problems.push(format!("/{path} is empty")),
            Err(e) => problems.push(format!("/{path}: {e}")),
        }
    }
    match rootfs.join("home/nonroot").metadata() {
        Ok(m) if m.uid() == 65532 && m.gid() == 65532 => {}
        Ok(m) => problems.push(format!("/home/nonroot is owned by {}:{}", m.uid(), m.gid())),
        Err(e) => problems.push(format!("/home/nonroot: {e}")),
    }
    if !problems.is_empty() {
        bail!("{}: {}", rootfs.display(), problems.join("; "));
    }
    Ok(())
}

/// Makes umoci's runtime config run like the pods: read-only root, no capabilities, no new
/// privileges, an empty /tmp (the pods mount one); the user stays what umoci read from the image.
pub fn pod_like(config: &mut Value, args: &[&str]) -> anyhow::Result<()> {
    let user = &config["process"]["user"];
    if user["uid"] != json!(spec::RUN_AS) || user["gid"] != json!(spec::RUN_AS) {
        bail!("umoci made the process user {user}, not the image's 65532:65532");
    }
    if config["process"]["cwd"] != json!(spec::HOME) {
        bail!(
            "umoci made the working directory {}",
            config["process"]["cwd"]
        );
    }
    config["process"]["args"] = json!(args);
    config["process"]["terminal"] = json!(false);
    config["process"]["noNewPrivileges"] = json!(true);
    config["process"]["capabilities"] = json!({
        "bounding": [], "effective": [], "inheritable": [], "permitted": [], "ambient": []
    });
    config["root"]["readonly"] = json!(true);
    let mounts = config["mounts"]
        .as_array_mut()
        .context("runtime config without mounts")?;
    mounts.retain(|m| m["destination"] != "/tmp");
    mounts.push(json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=1777", "size=16m"]
    }));
    Ok(())
}

/// A runc container from an unpacked bundle; deleted when dropped.
struct Container<'a> {
    runc_root: &'a Path,
    id: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(self.runc_root)
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `args` in the bundle with runc and returns its stdout (60 s at most).
fn runc_run(bundle: &Path, runc_root: &Path, id: &str, args: &[&str]) -> anyhow::Result<String> {
    let config_path = bundle.join("config.json");
    let mut config: Value = serde_json::from_slice(
        &std::fs::read(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?,
    )?;
    pod_like(&mut config, args)?;
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    let _container = Container {
        runc_root,
        id: id.to_owned(),
    };
    let mut child = Command::new("runc")
        .arg("--root")
        .arg(runc_root)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting runc")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(runc_root)
                .args(["kill", id, "KILL"])
                .status();
            let _ = child.wait();
            bail!("{}: still running after 60 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "runc run {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What each image's programs must print under runc.
fn expectations(which: Which, pg_major: &str) -> Vec<(Vec<&'static str>, String)> {
    let version = spec::tag();
    match which {
        Which::ApiServer => vec![
            (
                vec!["fp-api-server", "--version"],
                format!("fp-api-server {version}"),
            ),
            (
                vec!["pg_dump", "--version"],
                format!("pg_dump (PostgreSQL) {pg_major}."),
            ),
            (
                vec!["pg_restore", "--version"],
                format!("pg_restore (PostgreSQL) {pg_major}."),
            ),
            (
                vec!["psql", "--version"],
                format!("psql (PostgreSQL) {pg_major}."),
            ),
            (
                vec!["fp-api-server", "backup", "--help"],
                "--destination".to_owned(),
            ),
        ],
        Which::Operator => vec![
            (
                vec!["fp-operator", "--version"],
                format!("fp-operator {version}"),
            ),
            (
                vec!["fp-operator", "--help"],
                "--watch-namespace".to_owned(),
            ),
        ],
    }
}

/// umoci unpack + rootfs checks + runc runs of one image.
pub fn run_image(b: &Built, pg_major: &str, work: &Path) -> anyhow::Result<()> {
    let bundle = work.join(b.spec.name);
    let _ = std::fs::remove_dir_all(&bundle);
    output(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{}", b.layout.display(), spec::tag()))
            .arg(&bundle),
    )?;
    check_rootfs(&bundle.join("rootfs"), b.spec.which)?;
    let runc_root = work.join("runc");
    std::fs::create_dir_all(&runc_root)?;
    for (n, (args, expected)) in expectations(b.spec.which, pg_major).into_iter().enumerate() {
        let id = format!("fp-image-check-{}-{}-{n}", std::process::id(), b.spec.name);
        let out = runc_run(&bundle, &runc_root, &id, &args)?;
        if !out.contains(&expected) {
            bail!(
                "{}: `{}` printed {:?}, expected it to contain {expected:?}",
                b.spec.reference(),
                args.join(" "),
                out.trim()
            );
        }
        let first = out.lines().next().unwrap_or("").trim();
        println!(
            "runc (uid 65532, read-only root, no capabilities) {}: {} -> {first}",
            b.spec.name,
            args.join(" ")
        );
    }
    let _ = std::fs::remove_dir_all(&bundle);
    Ok(())
}

fn manifest_digest_of(layout: &Path) -> anyhow::Result<String> {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    index["manifests"][0]["digest"]
        .as_str()
        .map(str::to_owned)
        .context("pulled layout has no manifest")
}

/// Push to a loopback registry, pull back with skopeo, compare digests; then a read-only
/// registry and an absent one must each fail with an error naming them, nothing reported pushed.
pub fn registry_round_trip(built: &[Built], work: &Path) -> anyhow::Result<()> {
    let registry = Registry::start(&work.join("registry"), false)?;
    let pushed = push::push(built, &registry.address, &push::PushOptions::default())?;
    for p in &pushed {
        println!("pushed {p}");
    }
    for b in built {
        let pulled = work.join("pulled").join(b.spec.name);
        let _ = std::fs::remove_dir_all(&pulled);
        std::fs::create_dir_all(&pulled)?;
        output(
            Command::new("skopeo")
                .args(["copy", "--preserve-digests", "--src-tls-verify=false"])
                .arg(format!(
                    "docker://{}/{}",
                    registry.address,
                    b.spec.reference()
                ))
                .arg(format!("oci:{}:{}", pulled.display(), spec::tag())),
        )?;
        let digest = manifest_digest_of(&pulled)?;
        if digest != b.manifest_digest {
            bail!(
                "{} came back from the registry as {digest}, pushed as {}",
                b.spec.reference(),
                b.manifest_digest
            );
        }
        println!("pulled back {}: {digest} (same digest)", b.spec.reference());
    }
    let _ = std::fs::remove_dir_all(work.join("pulled"));
    registry.stop();

    let read_only = Registry::start(&work.join("registry-ro"), true)?;
    match push::push(built, &read_only.address, &push::PushOptions::default()) {
        Ok(_) => bail!("a read-only registry accepted the push"),
        Err(e @ push::PushError::Refused { .. }) => {
            let text = e.to_string();
            if !text.contains(&read_only.address) || !text.ends_with("nothing was pushed") {
                bail!("the refusal does not name the registry or claims a push: {text}");
            }
            println!("refused as expected: {text}");
        }
        Err(other) => bail!("a read-only registry gave an unexpected error: {other}"),
    }
    // Nothing is tagged there.
    let first = built.first().context("no images")?;
    let probe = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!(
            "docker://{}/{}",
            read_only.address,
            first.spec.reference()
        ))
        .stdin(Stdio::null())
        .output()?;
    if probe.status.success() {
        bail!(
            "the read-only registry has {} after a refused push",
            first.spec.reference()
        );
    }
    read_only.stop();

    let down = format!("127.0.0.1:{}", super::registry::free_port()?);
    match push::push(built, &down, &push::PushOptions::default()) {
        Err(e @ push::PushError::Unreachable { .. }) => println!("down as expected: {e}"),
        Ok(_) => bail!("a push to {down}, where nothing listens, succeeded"),
        Err(other) => bail!("a push to {down} gave an unexpected error: {other}"),
    }
    Ok(())
}

/// Every check of the built images.
pub fn run(built: &[Built], pg_major: &str) -> anyhow::Result<()> {
    crate::apt::ensure(&["skopeo", "umoci", "runc"])?;
    let work: PathBuf = crate::paths::state_root().join("image-check");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    for b in built {
        skopeo_inspect(b)?;
        run_image(b, pg_major, &work)?;
    }
    registry_round_trip(built, &work)?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn umoci_config() -> Value {
        json!({
            "process": {"user": {"uid": 65532, "gid": 65532}, "cwd": "/home/nonroot",
                        "args": ["/usr/local/bin/fp-api-server"],
                        "capabilities": {"bounding": ["CAP_KILL"]}},
            "root": {"path": "rootfs"},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]
        })
    }

    #[test]
    fn runs_like_the_pods() {
        let mut c = umoci_config();
        pod_like(&mut c, &["pg_dump", "--version"]).unwrap();
        assert_eq!(c["process"]["args"], json!(["pg_dump", "--version"]));
        assert_eq!(c["root"]["readonly"], true);
        assert_eq!(c["process"]["noNewPrivileges"], true);
        for set in [
            "bounding",
            "effective",
            "inheritable",
            "permitted",
            "ambient",
        ] {
            assert_eq!(c["process"]["capabilities"][set], json!([]), "{set}");
        }
        assert!(
            c["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["destination"] == "/tmp")
        );
    }

    #[test]
    fn refuses_an_image_that_would_run_as_root() {
        let mut c = umoci_config();
        c["process"]["user"] = json!({"uid": 0, "gid": 0});
        assert!(
            pod_like(&mut c, &["x"])
                .unwrap_err()
                .to_string()
                .contains("not the image's")
        );
    }

    #[test]
    fn rootfs_with_a_shell_or_without_certificates_fails() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/sh"), b"").unwrap();
        let err = check_rootfs(root, Which::Operator).unwrap_err().to_string();
        assert!(err.contains("/bin/sh is present"), "{err}");
        assert!(err.contains("/etc/ssl/certs/ca-certificates.crt"), "{err}");
        assert!(err.contains("/home/nonroot"), "{err}");
    }

    #[test]
    fn the_api_checks_ask_for_the_servers_major() {
        let e = expectations(Which::ApiServer, "15");
        assert!(
            e.iter()
                .any(|(a, want)| a[0] == "pg_dump" && want == "pg_dump (PostgreSQL) 15.")
        );
    }
}
