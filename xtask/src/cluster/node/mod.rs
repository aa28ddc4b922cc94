//! The real node of `cargo xtask cluster up`: a loopback registry, containerd
//! with Debian's runc and CNI plugins on a bridge in 198.18.0.0/15, kubelet and kube-proxy
//! (see docs/local-cluster.md). `down` removes everything it made on the host and checks that
//! nothing is left.
pub mod config;
pub mod host;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::layout::Layout;
use super::registry::{self, FileImage};
use super::{fmt_secs, log, tcp_open, wait_until};
use crate::gobuild::{self, GoEnv, NodeBinaries};
use crate::kubectl::Kubectl;
use crate::proc::{DaemonSpec, PidRecord};
use crate::{apt, paths};
use config::{Names, NodeDirs, NodePorts};

/// What the rest of the platform needs to know about a running real node (also written to its
/// state directory, so commands run later, like the benchmarks, find it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealNode {
    /// `127.0.0.1:<port>`: the loopback registry every image reference of the node resolves to.
    pub registry: String,
}

impl RealNode {
    /// The address pods reach the host at (the bridge's): a host service for pods listens there.
    pub const HOST_ADDRESS: &'static str = config::GATEWAY;
    /// The pods' addresses, for a host service's allow list.
    pub const POD_CIDR: &'static str = config::POD_CIDR;

    /// Makes `footballprediction/fp-api-server:<version>` exist in the node's registry: the image
    /// `up` pushed (the workspace version) copied under that tag, with `env` added to its config
    /// when given (a benchmark's faulty release). The kubelet then pulls it like any image.
    pub fn publish_api_release(
        &self,
        crane: &Path,
        version: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let repository = format!("{}/fp-api-server", crate::images::spec::NAMESPACE);
        let base = format!(
            "{}/{repository}:{}",
            self.registry,
            crate::images::spec::tag()
        );
        let target = format!("{}/{repository}:{version}", self.registry);
        let mut crane = std::process::Command::new(crane);
        if env.is_empty() {
            crane.args(["copy", &base, &target]);
        } else {
            crane.args(["mutate", &base, "-t", &target]);
            for (key, value) in env {
                crane.arg(format!("--env={key}={value}"));
            }
        }
        let out = crane
            .output()
            .with_context(|| format!("running crane to publish {target}"))?;
        if !out.status.success() {
            bail!(
                "publishing {target} from {base}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Where a PostgreSQL on the host also listens so the pods reach it, and whom it lets in.
    pub fn postgres_for_pods() -> crate::postgres::AlsoListen<'static> {
        crate::postgres::AlsoListen {
            address: Self::HOST_ADDRESS,
            clients: Self::POD_CIDR,
        }
    }
}

/// The node's names and directories for a cluster state directory.
pub fn names_and_dirs(layout: &Layout) -> (Names, NodeDirs) {
    (
        Names::for_state_dir(&layout.root),
        NodeDirs::new(&layout.root),
    )
}

/// Installs the Debian packages the node needs (as root), checks the kernel and tools, and
/// builds (or reuses) the node's Go binaries. Fails with one line per missing piece.
pub fn prepare() -> anyhow::Result<NodeBinaries> {
    let missing: Vec<&str> = host::PACKAGES
        .iter()
        .filter(|(_, file)| !Path::new(file).exists())
        .map(|(package, _)| *package)
        .collect();
    if !missing.is_empty() {
        apt::ensure(&missing)?;
    }
    let problems = host::preflight_problems(&host::HostFacts::of_this_machine());
    if !problems.is_empty() {
        bail!(
            "the real node cannot run on this machine:\n  {}",
            problems.join("\n  ")
        );
    }
    let go = GoEnv::locate(&paths::cache_dir())?;
    let cluster_dir = paths::workspace_root().join("e2e").join("cluster");
    Ok(gobuild::ensure_node_binaries(&go, &cluster_dir)?)
}

/// What the host looked like before `up` touched it, to tell afterwards what is ours.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostSnapshot {
    pub netns: BTreeSet<String>,
    pub links: BTreeSet<String>,
    pub iptables: BTreeSet<String>,
    pub mounts: BTreeSet<String>,
    /// Which of [`HOST_DIRS`] existed.
    #[serde(default)]
    pub dirs: BTreeSet<String>,
}

/// Fixed host paths the node's programs write to whatever their configuration says:
/// containerd's shim sockets (`/run/containerd/s`), libcni's result cache, kubelet's device
/// plugin socket and its container log links. Parents before children.
pub const HOST_DIRS: [&str; 8] = [
    "/run/containerd",
    "/run/containerd/s",
    "/var/lib/cni",
    "/var/lib/cni/results",
    "/var/lib/kubelet",
    "/var/lib/kubelet/device-plugins",
    "/var/log/containers",
    "/var/log/pods",
];

impl HostSnapshot {
    pub fn take() -> Self {
        let run = |p: &str, a: &[&str]| {
            std::process::Command::new(p)
                .args(a)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        Self {
            netns: run("ip", &["netns", "list"])
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect(),
            links: std::fs::read_dir("/sys/class/net")
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default(),
            iptables: host::iptables_state(),
            mounts: std::fs::read_to_string("/proc/mounts")
                .unwrap_or_default()
                .lines()
                .map(|l| {
                    // device, mount point, type: options change as mounts are used.
                    l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
                })
                .collect(),
            dirs: HOST_DIRS
                .iter()
                .filter(|d| Path::new(d).exists())
                .map(|d| d.to_string())
                .collect(),
        }
    }

    /// What `after` has that `self` had not, one line each.
    pub fn added_in(&self, after: &HostSnapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (what, a, b) in [
            ("netns", &self.netns, &after.netns),
            ("link", &self.links, &after.links),
            ("iptables", &self.iptables, &after.iptables),
            ("mount", &self.mounts, &after.mounts),
            ("directory", &self.dirs, &after.dirs),
        ] {
            out.extend(b.difference(a).map(|x| format!("{what}: {x}")));
        }
        out
    }
}

fn snapshot_path(dirs: &NodeDirs) -> PathBuf {
    dirs.root.join("host-before.json")
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn pick_ports() -> anyhow::Result<NodePorts> {
    let listeners = (0..5)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let p = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(NodePorts {
        kubelet: p[0],
        kubelet_healthz: p[1],
        proxy_healthz: p[2],
        proxy_metrics: p[3],
        registry: p[4],
    })
}

/// Prepares the host before the control plane starts (the API server listens on the bridge
/// address): records what it looked like, then creates the node's cgroup, the bridge with the
/// gateway address and the guard chains.
pub fn setup_host(layout: &Layout) -> anyhow::Result<()> {
    let (names, dirs) = names_and_dirs(layout);
    if let Some(dev) = host::gateway_in_use()? {
        if dev == names.bridge {
            bail!(
                "bridge {dev} of this checkout is still up, but its state directory is gone (removed by hand?), so what else it left cannot be told apart from other users' rules: remove it with `ip link del {dev}` and check `iptables-save` for KUBE-*, CNI-* and {}-* chains",
                names.guard_chain
            );
        }
        bail!(
            "{} is already on {dev}: another real node runs on this machine (kube-proxy's chains are machine-wide, so only one can); stop it with `cargo xtask cluster down` in its checkout",
            config::GATEWAY
        );
    }
    std::fs::create_dir_all(&dirs.root)?;
    write(
        &snapshot_path(&dirs),
        &serde_json::to_string_pretty(&HostSnapshot::take())?,
    )?;
    write(
        &dirs.host_record(),
        &host::render_sysctls(&host::snapshot_sysctls()),
    )?;
    host::create_cgroup_root(&names)?;
    host::create_bridge(&names)?;
    host::install_guard(&names)?;
    log(format!(
        "bridge {} with {}/{}, guard chains {}-{{FWD,IN}}, cgroup {}",
        names.bridge,
        config::GATEWAY,
        config::GATEWAY_PREFIX,
        names.guard_chain,
        names.cgroup_root
    ));
    Ok(())
}

/// Starts the node on a running control plane; `launch` records each process like the control
/// plane's. Returns when the Node is Ready and kube-proxy serves its health endpoint.
pub fn start(
    layout: &Layout,
    bins: &NodeBinaries,
    kubectl: &Kubectl,
    watched: &[&PidRecord],
    launch: &mut dyn FnMut(DaemonSpec) -> anyhow::Result<PidRecord>,
) -> anyhow::Result<RealNode> {
    let t_node = Instant::now();
    let (names, dirs) = names_and_dirs(layout);
    let ports = pick_ports()?;
    // ctr and crane next to our kubectl: `cluster env` puts them on PATH for inspection.
    for (name, bin) in [("ctr", &bins.ctr), ("crane", &bins.crane)] {
        std::os::unix::fs::symlink(bin, layout.bin().join(name))
            .with_context(|| format!("linking {name}"))?;
    }

    // Registry first: the sandbox image must be pullable before kubelet asks for a pod.
    std::fs::create_dir_all(dirs.registry_data())?;
    let registry = launch(
        DaemonSpec::new("registry", &bins.crane)
            .args(registry::serve_args(ports.registry, &dirs.registry_data())),
    )?;
    let mut procs: Vec<&PidRecord> = watched.to_vec();
    procs.push(&registry);
    wait_until(
        "the registry to listen",
        Duration::from_secs(30),
        layout,
        &procs,
        || tcp_open(ports.registry),
    )?;
    let pause = FileImage {
        repository: "fp-pause".into(),
        files: vec![(bins.pause.clone(), "/pause".into())],
        entrypoint: vec!["/pause".into()],
        user: "65535:65535".into(),
    };
    let tag = registry::push(&bins.crane, ports.registry, &pause, &dirs.images())?;
    let pause_image = format!("{}:{tag}", config::PAUSE_REPOSITORY);
    log(format!(
        "registry on 127.0.0.1:{} holds {pause_image}",
        ports.registry
    ));

    write(
        &dirs.containerd_config(),
        &config::containerd_toml(&dirs, &pause_image),
    )?;
    write(
        &dirs.registry_hosts().join("_default").join("hosts.toml"),
        &config::hosts_toml(ports.registry),
    )?;
    write(
        &dirs.cni_conf_dir().join("10-fp.conflist"),
        &serde_json::to_string_pretty(&config::cni_conflist(&names, &dirs))?,
    )?;
    write(&dirs.resolv_conf(), "")?;
    let pki = |f: &str| layout.pki_file(f);
    write(
        &dirs.kubelet_config(),
        &serde_json::to_string_pretty(&config::kubelet_config(
            &names,
            &dirs,
            &ports,
            &pki("ca.crt"),
            (&pki("kubelet.crt"), &pki("kubelet.key")),
        ))?,
    )?;
    write(
        &dirs.kube_proxy_config(),
        &serde_json::to_string_pretty(&config::kube_proxy_config(
            &names,
            &layout.component_kubeconfig("kube-proxy"),
            &ports,
        ))?,
    )?;

    let shim_dir = bins
        .containerd_shim
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = format!(
        "{}:{}",
        shim_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut containerd = DaemonSpec::new("containerd", &bins.containerd).args([
        "--config".to_string(),
        dirs.containerd_config().display().to_string(),
    ]);
    containerd.env.push(("PATH".into(), path.into()));
    let containerd = launch(containerd)?;
    procs.push(&containerd);
    let socket = dirs.containerd_socket();
    let t = wait_until(
        "containerd's socket",
        Duration::from_secs(60),
        layout,
        &procs,
        || socket.exists(),
    )?;
    log(format!("containerd serving after {}", fmt_secs(t)));

    let kubelet = launch(DaemonSpec::new("kubelet", &bins.kubelet).args([
        format!("--config={}", dirs.kubelet_config().display()),
        format!(
            "--kubeconfig={}",
            layout.component_kubeconfig("kubelet").display()
        ),
        format!("--root-dir={}", dirs.kubelet_root().display()),
        format!("--cert-dir={}", dirs.kubelet_root().join("pki").display()),
        format!("--hostname-override={}", names.node),
        format!("--node-ip={}", config::GATEWAY),
        "--v=1".into(),
    ]))?;
    procs.push(&kubelet);
    let t = wait_until(
        &format!("Node {} Ready", names.node),
        Duration::from_secs(180),
        layout,
        &procs,
        || super::ready_node_names(kubectl).is_ok_and(|n| n.contains(&names.node)),
    )?;
    log(format!("node {} Ready after {}", names.node, fmt_secs(t)));

    let proxy = launch(DaemonSpec::new("kube-proxy", &bins.kube_proxy).args([
        format!("--config={}", dirs.kube_proxy_config().display()),
        "--v=1".into(),
    ]))?;
    procs.push(&proxy);
    let t = wait_until(
        "kube-proxy's health endpoint",
        Duration::from_secs(60),
        layout,
        &procs,
        || tcp_open(ports.proxy_healthz),
    )?;
    log(format!("kube-proxy serving after {}", fmt_secs(t)));

    let t0 = Instant::now();
    let coredns = FileImage {
        repository: "fp-coredns".into(),
        files: vec![(bins.coredns.clone(), "/coredns".into())],
        entrypoint: vec!["/coredns".into()],
        user: "65532:65532".into(),
    };
    let tag = registry::push(&bins.crane, ports.registry, &coredns, &dirs.images())?;
    kubectl.run_with_input(
        &["apply", "-f", "-"],
        Some(&config::coredns_manifest(&format!(
            "fp.local/fp-coredns:{tag}"
        ))),
    )?;
    wait_until(
        "CoreDNS to be ready",
        Duration::from_secs(120),
        layout,
        &procs,
        || {
            kubectl
                .run(&[
                    "-n",
                    "kube-system",
                    "get",
                    "deployment",
                    "coredns",
                    "-o",
                    "jsonpath={.status.readyReplicas}",
                ])
                .is_ok_and(|n| n.trim() == "1")
        },
    )?;
    log(format!(
        "CoreDNS ready on {} after {}",
        config::DNS_IP,
        fmt_secs(t0.elapsed())
    ));
    log(format!(
        "real node up in {} (pods {}, services {})",
        fmt_secs(t_node.elapsed()),
        config::POD_CIDR,
        config::SERVICE_CIDR
    ));
    let node = RealNode {
        registry: format!("127.0.0.1:{}", ports.registry),
    };
    write(&record_path(&dirs), &serde_json::to_string_pretty(&node)?)?;
    Ok(node)
}

fn record_path(dirs: &NodeDirs) -> PathBuf {
    dirs.root.join("real-node.json")
}

/// The real node of the running local cluster, `None` when none runs (an existing cluster).
pub fn running(layout: &Layout) -> anyhow::Result<Option<RealNode>> {
    let (_, dirs) = names_and_dirs(layout);
    let path = record_path(&dirs);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Before the rest is stopped: stops kubelet (so nothing restarts) and kills the pods'
/// processes, which otherwise keep connections to the API server open and hold up its
/// shutdown. A no-op without a real node.
pub fn stop_pods(layout: &Layout) -> Vec<String> {
    let (names, dirs) = names_and_dirs(layout);
    let mut report = Vec::new();
    if !dirs.root.exists() {
        return report;
    }
    for file in crate::proc::pid_files(&layout.pids()) {
        if let Ok(rec) = crate::proc::read_pid_file(&file)
            && rec.name == "kubelet"
        {
            let outcome = crate::proc::stop(&rec, Duration::from_secs(10));
            report.push(format!("stopped kubelet (pid {}): {outcome:?}", rec.pid));
        }
    }
    let killed = host::kill_cgroup_processes(&names, Duration::from_secs(10));
    if killed > 0 {
        report.push(format!(
            "killed {killed} pod process(es) in {}",
            names.cgroup_root
        ));
    }
    report
}

/// Undoes what `start` did to the host, after its processes were stopped: the pods' processes
/// (by cgroup), containerd's shims (by binary and socket), mounts below the state directory
/// (overlays, shm, network namespaces, volumes), the bridge, new KUBE-*/CNI-*/FPN-* chains,
/// sysctls, cgroups, kubelet's log links and the CNI result cache. Returns a report line per
/// action, and what is still left compared with the snapshot taken at `up`.
pub fn cleanup(layout: &Layout) -> (Vec<String>, Vec<String>) {
    let (names, dirs) = names_and_dirs(layout);
    let mut report = Vec::new();
    if !dirs.root.exists() {
        return (report, Vec::new());
    }
    let killed = host::kill_cgroup_processes(&names, Duration::from_secs(10));
    if killed > 0 {
        report.push(format!(
            "killed {killed} pod process(es) in {}",
            names.cgroup_root
        ));
    }
    let socket = dirs.containerd_socket().display().to_string();
    let sandboxes = sandbox_ids(&dirs);
    for pid in shims(&socket) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        report.push(format!("killed containerd shim {pid}"));
    }
    wait_gone(|| shims(&socket).is_empty(), Duration::from_secs(5));
    report.extend(host::umount_all_below(&dirs.root));
    if host::link_exists(&names.bridge) {
        match std::process::Command::new("ip")
            .args(["link", "del", &names.bridge])
            .status()
        {
            Ok(s) if s.success() => report.push(format!("deleted bridge {}", names.bridge)),
            _ => report.push(format!("could not delete bridge {}", names.bridge)),
        }
    }
    let before: HostSnapshot = std::fs::read_to_string(snapshot_path(&dirs))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let chains = host::new_node_chains(&before.iptables, &host::iptables_state());
    for (family, table, chain) in &chains {
        if let Err(e) = host::delete_chain(family, table, chain) {
            report.push(format!("{e:#}"));
        }
    }
    if !chains.is_empty() {
        report.push(format!("deleted {} iptables chain(s)", chains.len()));
    }
    if let Ok(text) = std::fs::read_to_string(dirs.host_record()) {
        report.extend(host::restore_sysctls(&host::parse_sysctls(&text)));
    }
    for left in host::remove_cgroups(&names) {
        report.push(format!("cgroup {} could not be removed", left.display()));
    }
    report.extend(remove_log_links(&dirs.pod_logs()));
    report.extend(remove_cni_cache(&names.network, &sandboxes));
    report.extend(remove_shim_sockets(&socket, &sandboxes));
    report.extend(remove_created_dirs(&before));
    let mut left: Vec<String> = before.added_in(&HostSnapshot::take());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    left.extend(
        host::mounts_below(&mounts, &dirs.root)
            .into_iter()
            .map(|m| format!("mount below the state directory: {}", m.display())),
    );
    left.sort();
    left.dedup();
    (report, left)
}

fn shims(socket: &str) -> Vec<i32> {
    // containerd's runc shims of this node: their `-address` argument is our socket.
    host::processes_matching(|exe, args| {
        exe.file_name()
            .is_some_and(|n| n == "containerd-shim-runc-v2")
            && args.iter().any(|a| a == socket)
    })
}

fn wait_gone(done: impl Fn() -> bool, within: Duration) {
    let t0 = Instant::now();
    while !done() && t0.elapsed() < within {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// kubelet links each container's log into /var/log/containers (a fixed path); remove the
/// links that point into this node's log directory.
fn remove_log_links(pod_logs: &Path) -> Vec<String> {
    let mut report = Vec::new();
    let Ok(entries) = std::fs::read_dir("/var/log/containers") else {
        return report;
    };
    for e in entries.filter_map(Result::ok) {
        if std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(pod_logs))
            && std::fs::remove_file(e.path()).is_ok()
        {
            report.push(format!("removed {}", e.path().display()));
        }
    }
    report
}

/// The sandboxes containerd knows (their ids name shim sockets and CNI cache entries).
fn sandbox_ids(dirs: &NodeDirs) -> BTreeSet<String> {
    [
        dirs.containerd_root()
            .join("io.containerd.grpc.v1.cri")
            .join("sandboxes"),
        dirs.containerd_state()
            .join("io.containerd.runtime.v2.task")
            .join("k8s.io"),
    ]
    .iter()
    .filter_map(|d| std::fs::read_dir(d).ok())
    .flat_map(|entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
    })
    .collect()
}

/// libcni caches each attachment's result in /var/lib/cni/results: `<network>-<id>-eth0` for
/// ours, `cni-loopback-<id>-lo` for the loopback network containerd adds to every sandbox.
fn remove_cni_cache(network: &str, sandboxes: &BTreeSet<String>) -> Vec<String> {
    let mut report = Vec::new();
    let dir = Path::new("/var/lib/cni/results");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return report;
    };
    let prefix = format!("{network}-");
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        let loopback_of_ours = name
            .strip_prefix("cni-loopback-")
            .and_then(|r| r.strip_suffix("-lo"))
            .is_some_and(|id| sandboxes.contains(id));
        if (name.starts_with(&prefix) || loopback_of_ours) && std::fs::remove_file(e.path()).is_ok()
        {
            report.push(format!("removed {}", e.path().display()));
        }
    }
    report
}

/// containerd (as root) always puts shim sockets in /run/containerd/s, named by the SHA-256 of
/// `<containerd socket>/<namespace>/<sandbox id>`; a killed shim leaves its socket behind.
pub fn shim_socket_name(containerd_socket: &str, sandbox: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!(
        "{containerd_socket}/k8s.io/{sandbox}"
    )))
}

fn remove_shim_sockets(containerd_socket: &str, sandboxes: &BTreeSet<String>) -> Vec<String> {
    sandboxes
        .iter()
        .map(|id| Path::new("/run/containerd/s").join(shim_socket_name(containerd_socket, id)))
        .filter(|p| std::fs::remove_file(p).is_ok())
        .map(|p| format!("removed {}", p.display()))
        .collect()
}

/// Removes the fixed host directories that did not exist before `up` once they are empty
/// (kubelet's device plugin socket is its own; deepest first).
fn remove_created_dirs(before: &HostSnapshot) -> Vec<String> {
    let mut report = Vec::new();
    let device_plugins = "/var/lib/kubelet/device-plugins";
    if !before.dirs.contains(device_plugins)
        && std::fs::remove_file(Path::new(device_plugins).join("kubelet.sock")).is_ok()
    {
        report.push(format!("removed {device_plugins}/kubelet.sock"));
    }
    for dir in HOST_DIRS.iter().rev() {
        if !before.dirs.contains(*dir) && std::fs::remove_dir(dir).is_ok() {
            report.push(format!("removed {dir}"));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn shim_sockets_are_named_like_containerd_names_them() {
        // sha256("/s/containerd.sock/k8s.io/abc"), as containerd's CreateSocketAddress.
        let name = shim_socket_name("/s/containerd.sock", "abc");
        assert_eq!(name.len(), 64);
        assert_eq!(
            name,
            hex::encode(sha2::Sha256::digest(b"/s/containerd.sock/k8s.io/abc"))
        );
    }

    #[test]
    fn snapshot_difference_lists_only_additions() {
        let before = HostSnapshot {
            links: ["lo".to_string(), "eth0".into()].into(),
            mounts: ["proc /proc proc".to_string()].into(),
            ..Default::default()
        };
        let mut after = before.clone();
        assert!(before.added_in(&after).is_empty());
        after.links.insert("fpn-abc".into());
        after.links.remove("eth0");
        after.iptables.insert("4 nat :KUBE-SERVICES".into());
        after.netns.insert("cni-1".into());
        assert_eq!(
            before.added_in(&after),
            [
                "netns: cni-1",
                "link: fpn-abc",
                "iptables: 4 nat :KUBE-SERVICES"
            ]
        );
    }
}
