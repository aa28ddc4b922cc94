//! `cargo xtask cluster up | env | down`: a real Kubernetes control plane on 127.0.0.1,
//! built from source (see docs/local-cluster.md).
pub mod bootstrap;
pub mod flags;
pub mod layout;
pub mod node;
pub mod registry;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::gobuild::{self, Binaries, GoEnv, NodeBinaries};
use crate::interrupt;
use crate::kubectl::Kubectl;
use crate::paths;
use crate::proc::{self, DaemonSpec, PidRecord};
pub use layout::Layout;
use layout::Ports;

/// How long a stopped component gets to exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// How long `up` waits for each start-up step (etcd listening, `/readyz`, the controller
/// manager, the scheduler, CRDs Established, Nodes Ready). Generous: on an idle machine they take
/// seconds (the times are printed), on a busy one (load 6+ on 2 cores) longer; a component that
/// dies fails the wait at once, one that never gets there after this.
const START_LIMIT: Duration = Duration::from_secs(300);

pub fn layout() -> Layout {
    Layout::new(paths::state_root().join("cluster"))
}

/// A running local cluster.
pub struct Cluster {
    pub layout: Layout,
    /// The registry its images come from.
    pub real_node: node::RealNode,
}

impl Cluster {
    /// Environment for processes that use the cluster: KUBECONFIG, and PATH with our kubectl
    /// and helm first.
    pub fn env(&self) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_default();
        vec![
            (
                "KUBECONFIG".into(),
                self.layout.admin_kubeconfig().display().to_string(),
            ),
            (
                "FP_E2E_KUBECONFIG".into(),
                self.layout.admin_kubeconfig().display().to_string(),
            ),
            (
                "PATH".into(),
                format!("{}:{path}", self.layout.bin().display()),
            ),
            ("FP_E2E_REGISTRY".into(), self.real_node.registry.clone()),
            (
                "FP_E2E_POD_HOST".into(),
                node::RealNode::HOST_ADDRESS.into(),
            ),
        ]
    }
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[cluster] {}", msg.as_ref());
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Stops whatever a previous run left behind (by the pids it recorded) and removes its state.
fn clean_previous(layout: &Layout) -> anyhow::Result<()> {
    if !layout.root.exists() {
        return Ok(());
    }
    log(format!(
        "cleaning up earlier cluster state in {}",
        layout.root.display()
    ));
    for line in node::stop_pods(layout) {
        log(format!("  {line}"));
    }
    for line in proc::stop_all(&layout.pids(), STOP_GRACE) {
        log(format!("  stopped {line}"));
    }
    clean_node(layout)?;
    std::fs::remove_dir_all(&layout.root)
        .with_context(|| format!("removing {}", layout.root.display()))
}

/// After the processes are stopped: undoes what a real node did to the host and fails when
/// anything is left (the state directory is kept while mounts below it remain).
fn clean_node(layout: &Layout) -> anyhow::Result<()> {
    let (report, left) = node::cleanup(layout);
    for line in &report {
        log(format!("  {line}"));
    }
    if left.is_empty() {
        if !report.is_empty() {
            log("  real node removed: no netns, link, iptables rule or mount of it is left");
        }
        return Ok(());
    }
    bail!(
        "the real node left these behind (compared with the host before `up`):\n  {}",
        left.join("\n  ")
    )
}

/// Builds (or reuses) the binaries and fetches the third-party CRDs.
pub fn prepare() -> anyhow::Result<(Binaries, Vec<PathBuf>)> {
    let binaries = binaries()?;
    let go = GoEnv::locate(&paths::cache_dir())?;
    let crds = gobuild::third_party_crds(&go, &cluster_dir())?;
    Ok((binaries, crds))
}

fn cluster_dir() -> PathBuf {
    paths::workspace_root().join("e2e").join("cluster")
}

/// The control-plane binaries, kubectl and helm (built once into the cache, then reused).
pub fn binaries() -> anyhow::Result<Binaries> {
    let go = GoEnv::locate(&paths::cache_dir())?;
    Ok(gobuild::ensure_binaries(&go, &cluster_dir())?)
}

/// helm alone (the same cache entry as [`binaries`]), built once when missing.
pub fn helm() -> anyhow::Result<PathBuf> {
    let go = GoEnv::locate(&paths::cache_dir())?;
    Ok(gobuild::ensure_helm(&go, &cluster_dir())?)
}

/// Our own CRDs, generated into `crds/` by the operator's crdgen.
pub fn own_crds() -> anyhow::Result<Vec<PathBuf>> {
    let dir = paths::workspace_root().join("crds");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    files.sort();
    Ok(files)
}

/// Starts the control plane and the real node, and waits until the node is Ready.
pub fn up() -> anyhow::Result<Cluster> {
    let started = Instant::now();
    let layout = layout();
    // Build first: a failing build leaves a running cluster alone.
    let (binaries, mut crds) = prepare()?;
    interrupt::check()?;
    let node_binaries = node::prepare()?;
    interrupt::check()?;
    clean_previous(&layout)?;
    let mut all_crds = own_crds()?;
    all_crds.append(&mut crds);
    match start(&layout, &binaries, &all_crds, &node_binaries) {
        Ok(cluster) => {
            log(format!(
                "ready in {}: export KUBECONFIG={}",
                fmt_secs(started.elapsed()),
                layout.admin_kubeconfig().display()
            ));
            Ok(cluster)
        }
        Err(e) => {
            log("start failed; stopping what was started (logs kept in the state directory)");
            for line in node::stop_pods(&layout) {
                log(format!("  {line}"));
            }
            for line in proc::stop_all(&layout.pids(), STOP_GRACE) {
                log(format!("  stopped {line}"));
            }
            if let Err(clean) = clean_node(&layout) {
                log(format!("{clean:#}"));
            }
            Err(e)
        }
    }
}

/// The last lines of a component's log, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `ready` until it returns true, failing early when a watched process died.
fn wait_until(
    what: &str,
    timeout: Duration,
    layout: &Layout,
    watched: &[&PidRecord],
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        interrupt::check()?;
        if ready() {
            return Ok(t0.elapsed());
        }
        for rec in watched {
            if !proc::is_running(rec) {
                bail!(
                    "{} exited while waiting for {what}; last log lines:\n{}",
                    rec.name,
                    log_tail(&layout.log(&rec.name), 40)
                );
            }
        }
        if t0.elapsed() > timeout {
            let tails: Vec<String> = watched
                .iter()
                .map(|r| format!("--- {} ---\n{}", r.name, log_tail(&layout.log(&r.name), 20)))
                .collect();
            bail!(
                "timed out after {} waiting for {what}\n{}",
                fmt_secs(timeout),
                tails.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn tcp_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn link_binaries(layout: &Layout, binaries: &Binaries) -> anyhow::Result<()> {
    let dir = layout.bin();
    std::fs::create_dir_all(&dir)?;
    for (name, path) in binaries.all() {
        std::os::unix::fs::symlink(path, dir.join(name))
            .with_context(|| format!("linking {name}"))?;
    }
    Ok(())
}

fn start(
    layout: &Layout,
    binaries: &Binaries,
    crds: &[PathBuf],
    node_binaries: &NodeBinaries,
) -> anyhow::Result<Cluster> {
    let mut ports = Ports::pick()?;
    node::setup_host(layout)?;
    // The API server listens on the bridge address too: pods reach it there.
    ports.apiserver_host = node::config::GATEWAY.parse()?;
    let (names, _) = node::names_and_dirs(layout);
    bootstrap::write_pki_and_kubeconfigs(layout, &ports, &names)?;
    link_binaries(layout, binaries)?;
    let kubectl = Kubectl::new(&binaries.kubectl, &layout.admin_kubeconfig());
    let mut seq = 0;
    let mut launch = |daemon: DaemonSpec| {
        seq += 1;
        let name = daemon.name.clone();
        let rec = proc::start(
            &daemon,
            &layout.log(&name),
            &proc::pid_file_path(&layout.pids(), seq, &name),
        )?;
        log(format!("{name} started (pid {})", rec.pid));
        anyhow::Ok(rec)
    };
    let spec =
        |name: &str, program: &Path, args: Vec<String>| DaemonSpec::new(name, program).args(args);

    let etcd = launch(spec("etcd", &binaries.etcd, flags::etcd(layout, &ports)))?;
    let t = wait_until("etcd to listen", START_LIMIT, layout, &[&etcd], || {
        tcp_open(ports.etcd_client)
    })?;
    log(format!(
        "etcd listening on 127.0.0.1:{} after {}",
        ports.etcd_client,
        fmt_secs(t)
    ));

    let apiserver = launch(spec(
        "kube-apiserver",
        &binaries.kube_apiserver,
        flags::apiserver(layout, &ports),
    ))?;
    let t = wait_until(
        "kube-apiserver /readyz",
        START_LIMIT,
        layout,
        &[&etcd, &apiserver],
        || {
            kubectl
                .run(&["get", "--raw", "/readyz"])
                .is_ok_and(|body| body.trim() == "ok")
        },
    )?;
    log(format!(
        "kube-apiserver ready on {} after {}",
        ports.apiserver_url(),
        fmt_secs(t)
    ));
    kubectl.run_with_input(
        &["apply", "-f", "-"],
        Some(&bootstrap::node_rbac_manifest(&names)),
    )?;

    let kcm = launch(spec(
        "kube-controller-manager",
        &binaries.kube_controller_manager,
        flags::controller_manager(layout, &ports),
    ))?;
    let scheduler = launch(spec(
        "kube-scheduler",
        &binaries.kube_scheduler,
        flags::scheduler(layout, &ports),
    ))?;
    let procs = [&etcd, &apiserver, &kcm, &scheduler];
    // The serviceaccount controller creating `default` proves the controller manager runs.
    let t = wait_until(
        "the controller manager",
        START_LIMIT,
        layout,
        &procs,
        || {
            kubectl
                .run(&[
                    "get",
                    "serviceaccount",
                    "default",
                    "-n",
                    "default",
                    "-o",
                    "name",
                ])
                .is_ok()
        },
    )?;
    log(format!(
        "kube-controller-manager working after {}",
        fmt_secs(t)
    ));
    wait_until(
        "kube-scheduler to listen",
        START_LIMIT,
        layout,
        &procs,
        || tcp_open(ports.scheduler),
    )?;
    log("kube-scheduler listening");

    install_crds(&kubectl, crds)?;

    let procs = [&etcd, &apiserver, &kcm, &scheduler];
    let real_node = node::start(layout, node_binaries, &kubectl, &procs, &mut launch)?;
    std::fs::write(layout.ready_marker(), ports.apiserver_url())?;
    Ok(Cluster {
        layout: layout.clone(),
        real_node,
    })
}

/// Names of the Nodes whose Ready condition is True.
pub fn ready_node_names(kubectl: &Kubectl) -> anyhow::Result<Vec<String>> {
    let jsonpath = r#"-o=jsonpath={range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#;
    Ok(parse_ready_nodes(
        &kubectl.run(&["get", "nodes", jsonpath])?,
    ))
}

/// `<name> <Ready status>` lines in, the names whose status is True out.
pub fn parse_ready_nodes(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, status)| status.trim() == "True")
        .map(|(name, _)| name.to_string())
        .collect()
}

pub fn install_crds(kubectl: &Kubectl, files: &[PathBuf]) -> anyhow::Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    let t0 = Instant::now();
    let mut args = vec![
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=fp-xtask",
    ];
    let timeout = format!("--timeout={}s", START_LIMIT.as_secs());
    let mut waits = vec!["wait", "--for=condition=Established", timeout.as_str()];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    for name in &names {
        args.extend(["-f", name.as_str()]);
        waits.extend(["-f", name.as_str()]);
    }
    kubectl.run(&args)?;
    kubectl.run(&waits)?;
    log(format!(
        "{} CRD manifests installed and Established in {}",
        files.len(),
        fmt_secs(t0.elapsed())
    ));
    Ok(())
}

/// Prints the shell lines that point kubectl (ours) at the running cluster.
pub fn env() -> anyhow::Result<()> {
    let layout = layout();
    if !layout.ready_marker().is_file() {
        bail!("no local cluster is running; start one with `cargo xtask cluster up`");
    }
    println!("export KUBECONFIG={}", layout.admin_kubeconfig().display());
    println!("export PATH=\"{}:$PATH\"", layout.bin().display());
    Ok(())
}

/// Stops every process the cluster started (by recorded pid) and removes its state.
pub fn down() -> anyhow::Result<()> {
    let layout = layout();
    if !layout.root.exists() {
        log("no local cluster state; nothing to stop");
        return Ok(());
    }
    for line in node::stop_pods(&layout) {
        log(line);
    }
    for line in proc::stop_all(&layout.pids(), STOP_GRACE) {
        log(format!("stopped {line}"));
    }
    clean_node(&layout)?;
    std::fs::remove_dir_all(&layout.root)
        .with_context(|| format!("removing {}", layout.root.display()))?;
    log(format!("removed {}", layout.root.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nodes_with_ready_true_count() {
        let text =
            "fp-node-0 True\nfp-node-1 False\nfp-up-node-0 Unknown\nfp-up-node-1 True\nbroken\n";
        assert_eq!(parse_ready_nodes(text), ["fp-node-0", "fp-up-node-1"]);
        assert!(parse_ready_nodes("").is_empty());
    }
}
