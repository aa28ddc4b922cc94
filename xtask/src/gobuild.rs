//! Builds the Go binaries of the local control plane (Kubernetes, etcd, helm) and of the real
//! node (kubelet, kube-proxy, containerd, crane, the pause program) from the wrapper modules in
//! `e2e/cluster/`, into a cache keyed by everything that changes the result.
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

use crate::interrupt;

/// Bump when the layout or the build recipe changes in a way the inputs below do not show.
const RECIPE_REVISION: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("`go` was not found on PATH (Go 1.26 or newer is required to build the control plane)")]
    GoMissing,
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Go {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("unexpected output from `{command}`: {reason}")]
    Output { command: String, reason: String },
    #[error(transparent)]
    Interrupted(#[from] interrupt::Interrupted),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}

/// The Go toolchain with its module and build caches inside our cache directory, so a fresh
/// clone (and CI) reuses downloads and compiled packages.
#[derive(Debug, Clone)]
pub struct GoEnv {
    pub go: PathBuf,
    pub cache_dir: PathBuf,
}

impl GoEnv {
    pub fn locate(cache_dir: &Path) -> Result<Self, BuildError> {
        let candidates = std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("go"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .chain([PathBuf::from("/usr/local/go/bin/go")]);
        let go = candidates
            .into_iter()
            .find(|p| p.is_file())
            .ok_or(BuildError::GoMissing)?;
        Ok(Self {
            go,
            cache_dir: cache_dir.to_path_buf(),
        })
    }

    pub fn command(&self, module_dir: &Path) -> Command {
        let mut cmd = Command::new(&self.go);
        cmd.current_dir(module_dir)
            .env("GOMODCACHE", self.cache_dir.join("go").join("mod"))
            .env("GOCACHE", self.cache_dir.join("go").join("build"))
            .env("CGO_ENABLED", "0")
            .env("GOFLAGS", "-buildvcs=false -mod=readonly")
            .env("GOTOOLCHAIN", "local")
            .env("GOWORK", "off")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a short go command and returns its stdout.
    pub fn output(&self, module_dir: &Path, args: &[&str]) -> Result<String, BuildError> {
        let command = format!("go {}", args.join(" "));
        let out = self
            .command(module_dir)
            .args(args)
            .output()
            .map_err(io(format!("running {command}")))?;
        if !out.status.success() {
            return Err(BuildError::Go {
                command,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        String::from_utf8(out.stdout).map_err(|_| BuildError::Output {
            command,
            reason: "not UTF-8".into(),
        })
    }
}

/// A module from `go list -m -json` / `go mod download -json`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModuleInfo {
    pub path: String,
    pub version: String,
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Parses the concatenated JSON objects the go command prints.
pub fn parse_module_stream(text: &str) -> Result<Vec<ModuleInfo>, serde_json::Error> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<ModuleInfo>()
        .collect()
}

fn module_info(go: &GoEnv, dir: &Path, module: &str) -> Result<ModuleInfo, BuildError> {
    let command = format!("go list -m -json {module}");
    let text = go.output(dir, &["list", "-m", "-json", module])?;
    parse_module_stream(&text)
        .map_err(|e| BuildError::Output {
            command: command.clone(),
            reason: e.to_string(),
        })?
        .into_iter()
        .next()
        .ok_or(BuildError::Output {
            command,
            reason: "no module printed".into(),
        })
}

/// `v1.37.2` -> (`1`, `37`); also accepts the `v0.37.2` staging-module form for (`1`, `37`).
pub fn kube_major_minor(version: &str) -> Option<(String, String)> {
    let mut parts = version.strip_prefix('v')?.split('.');
    let major = parts.next()?;
    let minor = parts.next()?;
    let major = if major == "0" { "1" } else { major };
    (major.chars().all(|c| c.is_ascii_digit()) && minor.chars().all(|c| c.is_ascii_digit()))
        .then(|| (major.to_string(), minor.to_string()))
}

/// The version stamps that `hack/lib/version.sh` sets, for both packages that report them.
pub fn kubernetes_ldflags(version: &str, build_date: &str) -> Option<String> {
    let (major, minor) = kube_major_minor(version)?;
    let mut flags = String::from("-s -w");
    for pkg in [
        "k8s.io/client-go/pkg/version",
        "k8s.io/component-base/version",
    ] {
        for (var, value) in [
            ("gitVersion", version),
            ("gitMajor", major.as_str()),
            ("gitMinor", minor.as_str()),
            ("gitTreeState", "archive"),
            ("buildDate", build_date),
        ] {
            let _ = write!(flags, " -X {pkg}.{var}={value}");
        }
    }
    Some(flags)
}

/// helm's Makefile stamps its own version and the Kubernetes version of its client libraries
/// (the default `.Capabilities.KubeVersion`).
pub fn helm_ldflags(helm_version: &str, client_go_version: &str) -> Option<String> {
    let (major, minor) = kube_major_minor(client_go_version)?;
    let mut flags = format!(
        "-s -w -X helm.sh/helm/v3/internal/version.version={helm_version} -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    );
    for pkg in [
        "helm.sh/helm/v3/pkg/lint/rules",
        "helm.sh/helm/v3/pkg/chartutil",
    ] {
        let _ = write!(
            flags,
            " -X {pkg}.k8sVersionMajor={major} -X {pkg}.k8sVersionMinor={minor}"
        );
    }
    Some(flags)
}

/// One wrapper module and the binaries built from it.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: &'static str,
    pub module_dir: PathBuf,
    pub binaries: Vec<(&'static str, &'static str)>,
    pub tags: &'static str,
    pub ldflags: String,
}

/// The version stamp (ldflags) of the Kubernetes commands a wrapper module builds, from the
/// `k8s.io/kubernetes` version it resolves.
fn kubernetes_stamp(go: &GoEnv, wrapper: &Path) -> Result<String, BuildError> {
    let k8s = module_info(go, wrapper, "k8s.io/kubernetes")?;
    let build_date = k8s
        .time
        .clone()
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    kubernetes_ldflags(&k8s.version, &build_date).ok_or(BuildError::Output {
        command: "go list -m k8s.io/kubernetes".into(),
        reason: format!("unexpected version {}", k8s.version),
    })
}

/// The groups, with version stamps read from each wrapper's resolved module graph.
pub fn groups(go: &GoEnv, cluster_dir: &Path) -> Result<Vec<Group>, BuildError> {
    let k8s_dir = cluster_dir.join("kubernetes");
    let k8s_flags = kubernetes_stamp(go, &k8s_dir)?;
    Ok(vec![
        Group {
            name: "kubernetes",
            module_dir: k8s_dir,
            binaries: vec![
                ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
                (
                    "kube-controller-manager",
                    "k8s.io/kubernetes/cmd/kube-controller-manager",
                ),
                ("kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler"),
                ("kubectl", "k8s.io/kubernetes/cmd/kubectl"),
            ],
            // The tags upstream's hack/lib/golang.sh builds release binaries with.
            tags: "selinux,notest",
            ldflags: k8s_flags,
        },
        Group {
            name: "etcd",
            module_dir: cluster_dir.join("etcd"),
            binaries: vec![("etcd", "go.etcd.io/etcd/server/v3")],
            tags: "",
            ldflags: "-s -w".into(),
        },
        helm_group(go, cluster_dir)?,
    ])
}

/// helm alone, stamped with its version and the Kubernetes version of its client libraries.
fn helm_group(go: &GoEnv, cluster_dir: &Path) -> Result<Group, BuildError> {
    let helm_dir = cluster_dir.join("helm");
    let helm = module_info(go, &helm_dir, "helm.sh/helm/v3")?;
    let helm_client_go = module_info(go, &helm_dir, "k8s.io/client-go")?;
    let ldflags =
        helm_ldflags(&helm.version, &helm_client_go.version).ok_or(BuildError::Output {
            command: "go list -m k8s.io/client-go".into(),
            reason: format!("unexpected version {}", helm_client_go.version),
        })?;
    Ok(Group {
        name: "helm",
        module_dir: helm_dir,
        binaries: vec![("helm", "helm.sh/helm/v3/cmd/helm")],
        tags: "",
        ldflags,
    })
}

/// The helm binary without the rest of the control plane (`cargo xtask dist` packages the
/// chart with it): the same cache entry [`ensure_binaries`] fills, built when missing.
pub fn ensure_helm(go: &GoEnv, cluster_dir: &Path) -> Result<PathBuf, BuildError> {
    ensure_tool(go, &helm_group(go, cluster_dir)?).map(|dir| dir.join("helm"))
}

/// containerd's Makefile stamps its version and package path.
pub fn containerd_ldflags(version: &str) -> String {
    let pkg = "github.com/containerd/containerd/v2/version";
    format!("-s -w -X {pkg}.Version={version} -X {pkg}.Package=github.com/containerd/containerd/v2")
}

/// The groups of the real node (`cluster up --node kubelet`): kubelet and kube-proxy from the
/// same `k8s.io/kubernetes` version as the control plane, containerd with its runc shim (and
/// `ctr` for inspection), crane (the loopback registry and the client that pushes to it),
/// CoreDNS and the sandbox program.
pub fn node_groups(go: &GoEnv, cluster_dir: &Path) -> Result<Vec<Group>, BuildError> {
    let k8s_dir = cluster_dir.join("kubernetes-node");
    let k8s_flags = kubernetes_stamp(go, &k8s_dir)?;
    let containerd_dir = cluster_dir.join("containerd");
    let containerd = module_info(go, &containerd_dir, "github.com/containerd/containerd/v2")?;
    let crane_dir = cluster_dir.join("crane");
    let crane = module_info(go, &crane_dir, "github.com/google/go-containerregistry")?;
    Ok(vec![
        Group {
            name: "kubernetes-node",
            module_dir: k8s_dir,
            binaries: vec![
                ("kubelet", "k8s.io/kubernetes/cmd/kubelet"),
                ("kube-proxy", "k8s.io/kubernetes/cmd/kube-proxy"),
            ],
            tags: "selinux,notest",
            ldflags: k8s_flags,
        },
        Group {
            name: "containerd",
            module_dir: containerd_dir,
            binaries: vec![
                (
                    "containerd",
                    "github.com/containerd/containerd/v2/cmd/containerd",
                ),
                (
                    "containerd-shim-runc-v2",
                    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2",
                ),
                ("ctr", "github.com/containerd/containerd/v2/cmd/ctr"),
            ],
            // As upstream's Makefile; with CGO off the btrfs snapshotter is left out.
            tags: "urfave_cli_no_docs",
            ldflags: containerd_ldflags(&containerd.version),
        },
        Group {
            name: "crane",
            module_dir: crane_dir,
            binaries: vec![("crane", "github.com/google/go-containerregistry/cmd/crane")],
            tags: "",
            ldflags: format!(
                "-s -w -X github.com/google/go-containerregistry/cmd/crane/cmd.Version={}",
                crane.version
            ),
        },
        Group {
            name: "coredns",
            module_dir: cluster_dir.join("coredns"),
            binaries: vec![("coredns", "github.com/coredns/coredns")],
            tags: "",
            ldflags: "-s -w".into(),
        },
        Group {
            name: "pause",
            module_dir: cluster_dir.join("pause"),
            binaries: vec![("pause", "footballprediction/e2e/cluster/pause")],
            tags: "",
            ldflags: "-s -w".into(),
        },
    ])
}

/// Paths of the real node's binaries.
#[derive(Debug, Clone)]
pub struct NodeBinaries {
    pub kubelet: PathBuf,
    pub kube_proxy: PathBuf,
    pub containerd: PathBuf,
    pub containerd_shim: PathBuf,
    pub ctr: PathBuf,
    pub crane: PathBuf,
    pub coredns: PathBuf,
    pub pause: PathBuf,
}

/// Builds what is missing of the real node's binaries and returns their paths.
pub fn ensure_node_binaries(go: &GoEnv, cluster_dir: &Path) -> Result<NodeBinaries, BuildError> {
    let started = Instant::now();
    let go_version = go.output(cluster_dir, &["env", "GOVERSION", "GOOS", "GOARCH"])?;
    let mut dirs = Vec::new();
    let mut built_any = false;
    for group in node_groups(go, cluster_dir)? {
        let (dir, built) = ensure_group(go, &group, &go_version, started)?;
        built_any |= built;
        dirs.push(dir);
    }
    if built_any {
        eprintln!(
            "[build] node binaries ready after {}",
            fmt_elapsed(started.elapsed())
        );
    }
    let [k8s, containerd, crane, coredns, pause] = dirs.as_slice() else {
        return Err(BuildError::Output {
            command: "node groups".into(),
            reason: "expected 5".into(),
        });
    };
    Ok(NodeBinaries {
        kubelet: k8s.join("kubelet"),
        kube_proxy: k8s.join("kube-proxy"),
        containerd: containerd.join("containerd"),
        containerd_shim: containerd.join("containerd-shim-runc-v2"),
        ctr: containerd.join("ctr"),
        crane: crane.join("crane"),
        coredns: coredns.join("coredns"),
        pause: pause.join("pause"),
    })
}

/// A short hash of every input that changes the binaries: the recipe, the Go version, the
/// wrapper's go.mod and go.sum (so a version bump rebuilds), tags and ldflags.
pub fn cache_key(group: &Group, go_version: &str, go_mod: &[u8], go_sum: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [
        RECIPE_REVISION.as_bytes(),
        group.name.as_bytes(),
        go_version.as_bytes(),
        go_mod,
        go_sum,
        group.tags.as_bytes(),
        group.ldflags.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    for (bin, pkg) in &group.binaries {
        h.update(bin.as_bytes());
        h.update(pkg.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// Paths of the built binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kubectl: PathBuf,
    pub etcd: PathBuf,
    pub helm: PathBuf,
}

impl Binaries {
    pub fn all(&self) -> [(&'static str, &Path); 6] {
        [
            ("kube-apiserver", &self.kube_apiserver),
            ("kube-controller-manager", &self.kube_controller_manager),
            ("kube-scheduler", &self.kube_scheduler),
            ("kubectl", &self.kubectl),
            ("etcd", &self.etcd),
            ("helm", &self.helm),
        ]
    }
}

fn fmt_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Builds what is missing from the cache and returns the paths of all binaries.
pub fn ensure_binaries(go: &GoEnv, cluster_dir: &Path) -> Result<Binaries, BuildError> {
    let started = Instant::now();
    let go_version = go.output(cluster_dir, &["env", "GOVERSION", "GOOS", "GOARCH"])?;
    let groups = groups(go, cluster_dir)?;
    let mut dirs = Vec::new();
    let mut built_any = false;
    for group in &groups {
        let (dir, built) = ensure_group(go, group, &go_version, started)?;
        built_any |= built;
        dirs.push(dir);
    }
    if built_any {
        eprintln!(
            "[build] all binaries ready after {}",
            fmt_elapsed(started.elapsed())
        );
    }
    let [k8s, etcd, helm] = dirs.as_slice() else {
        return Err(BuildError::Output {
            command: "groups".into(),
            reason: "expected 3".into(),
        });
    };
    Ok(Binaries {
        kube_apiserver: k8s.join("kube-apiserver"),
        kube_controller_manager: k8s.join("kube-controller-manager"),
        kube_scheduler: k8s.join("kube-scheduler"),
        kubectl: k8s.join("kubectl"),
        etcd: etcd.join("etcd"),
        helm: helm.join("helm"),
    })
}

/// One group's binaries in the cache (built when missing): their directory, and whether they
/// were built now.
fn ensure_group(
    go: &GoEnv,
    group: &Group,
    go_version: &str,
    started: Instant,
) -> Result<(PathBuf, bool), BuildError> {
    let read = |f: &str| {
        std::fs::read(group.module_dir.join(f))
            .map_err(io(format!("reading {}/{f}", group.module_dir.display())))
    };
    // A module without dependencies (the pause program) has no go.sum.
    let go_sum = if group.module_dir.join("go.sum").exists() {
        read("go.sum")?
    } else {
        Vec::new()
    };
    let key = cache_key(group, go_version, &read("go.mod")?, &go_sum);
    let dir = go
        .cache_dir
        .join("bin")
        .join(format!("{}-{key}", group.name));
    let complete = group
        .binaries
        .iter()
        .all(|(bin, _)| dir.join(bin).is_file());
    if !complete {
        build_group(go, group, &dir, started)?;
    }
    Ok((dir, !complete))
}

/// A tool built from its own wrapper module (e.g. the load generator of `bench soak`), cached
/// like the control plane's binaries; returns the directory holding its binaries.
pub fn ensure_tool(go: &GoEnv, group: &Group) -> Result<PathBuf, BuildError> {
    let go_version = go.output(&group.module_dir, &["env", "GOVERSION", "GOOS", "GOARCH"])?;
    ensure_group(go, group, &go_version, Instant::now()).map(|(dir, _)| dir)
}

fn build_group(go: &GoEnv, group: &Group, dir: &Path, started: Instant) -> Result<(), BuildError> {
    // Per process: two commands building the same group at once (`dist` beside `test`) must
    // not write into one staging directory.
    let staging = dir.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(io(format!("creating {}", staging.display())))?;
    eprintln!(
        "[build] downloading modules for {} (cached after the first time)",
        group.name
    );
    go.output(&group.module_dir, &["mod", "download"])?;
    for (bin, pkg) in &group.binaries {
        let out = staging.join(bin);
        let mut args = vec!["build".to_string(), "-trimpath".into()];
        if !group.tags.is_empty() {
            args.push(format!("-tags={}", group.tags));
        }
        args.extend(["-ldflags".into(), group.ldflags.clone(), "-o".into()]);
        args.push(out.display().to_string());
        args.push((*pkg).to_string());
        run_build(go, &group.module_dir, bin, &args, started)?;
    }
    let finished_elsewhere = group
        .binaries
        .iter()
        .all(|(bin, _)| dir.join(bin).is_file());
    if finished_elsewhere {
        // Another process put the same inputs' binaries in place meanwhile; it may be
        // running them, so they stay.
        let _ = std::fs::remove_dir_all(&staging);
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&staging, dir).map_err(io(format!("moving {} into place", dir.display())))
}

/// Runs `go build`, printing progress every 30 seconds and stopping it on Ctrl-C.
fn run_build(
    go: &GoEnv,
    module_dir: &Path,
    bin: &str,
    args: &[String],
    started: Instant,
) -> Result<(), BuildError> {
    let t0 = Instant::now();
    eprintln!(
        "[build] {bin}: compiling (total elapsed {})",
        fmt_elapsed(started.elapsed())
    );
    let mut child = go
        .command(module_dir)
        .args(args)
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(io(format!("starting go build for {bin}")))?;
    // Drain stderr on a thread so a chatty failure cannot block the compiler on a full pipe.
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::read_to_string(&mut s, &mut text);
        }
        text
    });
    let mut next_report = Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io("waiting for go build"))? {
            break status;
        }
        if interrupt::interrupted() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let _ = child.wait();
            return Err(interrupt::Interrupted.into());
        }
        if t0.elapsed() >= next_report {
            eprintln!(
                "[build] {bin}: still compiling, {}",
                fmt_elapsed(t0.elapsed())
            );
            next_report += Duration::from_secs(30);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stderr = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(BuildError::Go {
            command: format!("go {}", args.join(" ")),
            status: status.to_string(),
            stderr,
        });
    }
    eprintln!(
        "[build] {bin}: done in {} (total elapsed {})",
        fmt_elapsed(t0.elapsed()),
        fmt_elapsed(started.elapsed())
    );
    Ok(())
}

/// Third-party CRD manifests, read from module archives fetched with `go mod download -json`
/// (checked against the committed go.sum of `e2e/cluster/crds`).
pub fn third_party_crds(go: &GoEnv, cluster_dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let dir = cluster_dir.join("crds");
    const SOURCES: [(&str, &str); 2] = [
        ("github.com/cert-manager/cert-manager", "deploy/crds"),
        (
            "github.com/prometheus-operator/prometheus-operator",
            "example/prometheus-operator-crd",
        ),
    ];
    let mut args = vec!["mod", "download", "-json"];
    args.extend(SOURCES.iter().map(|(m, _)| *m));
    let command = format!("go {}", args.join(" "));
    let text = go.output(&dir, &args)?;
    let modules = parse_module_stream(&text).map_err(|e| BuildError::Output {
        command: command.clone(),
        reason: e.to_string(),
    })?;
    let mut files = Vec::new();
    for (module, sub) in SOURCES {
        let info = modules
            .iter()
            .find(|m| m.path == module)
            .ok_or_else(|| BuildError::Output {
                command: command.clone(),
                reason: format!("{module} missing"),
            })?;
        if let Some(err) = &info.error {
            return Err(BuildError::Output {
                command,
                reason: err.clone(),
            });
        }
        let root = info.dir.as_ref().ok_or_else(|| BuildError::Output {
            command: command.clone(),
            reason: format!("{module} has no Dir"),
        })?;
        let crd_dir = root.join(sub);
        let mut found: Vec<PathBuf> = std::fs::read_dir(&crd_dir)
            .map_err(io(format!("reading {}", crd_dir.display())))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        if found.is_empty() {
            return Err(BuildError::Output {
                command,
                reason: format!("no YAML in {sub}"),
            });
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_minor_from_release_and_staging_versions() {
        assert_eq!(kube_major_minor("v1.37.2"), Some(("1".into(), "37".into())));
        assert_eq!(kube_major_minor("v0.37.0"), Some(("1".into(), "37".into())));
        assert_eq!(kube_major_minor("1.37.2"), None);
        assert_eq!(kube_major_minor("vX.y"), None);
    }

    #[test]
    fn kubernetes_ldflags_stamp_both_version_packages() {
        let flags = kubernetes_ldflags("v1.37.2", "2026-10-27T12:01:04Z").unwrap();
        for pkg in [
            "k8s.io/client-go/pkg/version",
            "k8s.io/component-base/version",
        ] {
            assert!(
                flags.contains(&format!("-X {pkg}.gitVersion=v1.37.2")),
                "{flags}"
            );
            assert!(flags.contains(&format!("-X {pkg}.gitMinor=37")), "{flags}");
            assert!(flags.contains(&format!("-X {pkg}.buildDate=2026-10-27T12:01:04Z")));
        }
    }

    #[test]
    fn helm_ldflags_carry_helm_and_kubernetes_versions() {
        let flags = helm_ldflags("v3.22.0", "v0.37.0").unwrap();
        assert!(flags.contains("internal/version.version=v3.22.0"));
        assert!(flags.contains("pkg/chartutil.k8sVersionMinor=37"));
    }

    fn group(ldflags: &str) -> Group {
        Group {
            name: "kubernetes",
            module_dir: PathBuf::from("/m"),
            binaries: vec![("kubectl", "k8s.io/kubernetes/cmd/kubectl")],
            tags: "",
            ldflags: ldflags.into(),
        }
    }

    #[test]
    fn cache_key_changes_with_every_input() {
        let base = cache_key(&group("a"), "go1.26.8", b"mod", b"sum");
        assert_eq!(base, cache_key(&group("a"), "go1.26.8", b"mod", b"sum"));
        assert_eq!(base.len(), 16);
        assert_ne!(base, cache_key(&group("b"), "go1.26.8", b"mod", b"sum"));
        assert_ne!(base, cache_key(&group("a"), "go1.26.9", b"mod", b"sum"));
        assert_ne!(base, cache_key(&group("a"), "go1.26.8", b"mod2", b"sum"));
        assert_ne!(base, cache_key(&group("a"), "go1.26.8", b"mod", b"sum2"));
        // Length-prefixing keeps shifted boundaries apart.
        assert_ne!(base, cache_key(&group("a"), "go1.26.8", b"mo", b"dsum"));
    }

    #[test]
    fn parses_go_json_streams() {
        let text = r#"{"Path":"a","Version":"v1.0.0","Dir":"/x"}
{"Path":"b","Version":"v2.0.0","Error":"not found"}"#;
        let mods = parse_module_stream(text).unwrap();
        assert_eq!(mods.len(), 2);
        assert_eq!(mods[0].dir.as_deref(), Some(Path::new("/x")));
        assert_eq!(mods[1].error.as_deref(), Some("not found"));
    }
}
