//! `cargo xtask up` / `cargo xtask down`: the whole platform on this machine. The local control
//! plane with its real node (or an existing cluster given with `--kubeconfig`), a PostgreSQL,
//! the operator installed by its Helm chart, and the FootballPrediction of
//! `docs/samples/local.yaml`, waited for until Ready.
mod existing;
pub mod plan;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::kubectl::Kubectl;
use crate::{cargo, cluster, images, interrupt, paths, postgres};
use existing::Tools;
use plan::{ClusterTarget, Created, Previous, Record, Target};

pub const NAMESPACE: &str = "football";
const INSTANCE: &str = "demo";
/// The Secret the sample's default `database.urlSecretRef` (`<name>-database`, key `url`) names;
/// the benchmarks share its database.
pub const DATABASE_SECRET: &str = "demo-database";
const DATABASE: &str = "football";
pub const OPERATOR_NAMESPACE: &str = "fp-system";
pub const OPERATOR_RELEASE: &str = "fp-operator";
const SAMPLE: &str = "docs/samples/local.yaml";
const BACKUP_VOLUME: &str = "fp-local-backups";
/// Covers the migration Job and two API pods fitting their models on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Import football-data.co.uk CSVs (LEAGUE/SEASON.csv below this folder) once Ready.
    pub import: Option<PathBuf>,
    /// An existing cluster (its kubeconfig's current context) instead of the local control plane.
    pub kubeconfig: Option<PathBuf>,
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[up] {}", msg.as_ref());
}

fn state_dir() -> PathBuf {
    paths::state_root().join("platform")
}

fn postgres_state() -> PathBuf {
    state_dir().join("postgres")
}

/// The record of the current run: which cluster, and what `up` created in it.
fn record_path() -> PathBuf {
    state_dir().join("up.json")
}

/// The recorded run. A state directory without a record is from a local run of an older
/// xtask (or one that crashed before the control plane started).
fn load_record() -> anyhow::Result<Option<Record>> {
    let path = record_path();
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "{} is not a record of `cargo xtask up`; look at it, remove it and run again",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(state_dir().exists().then_some(Record {
                target: Target::Local,
                created: Created::default(),
            }))
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Written before anything is created, so `down` (or the next `up`) finds all of it.
fn save_record(record: &Record) -> anyhow::Result<()> {
    let path = record_path();
    std::fs::create_dir_all(state_dir())?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(record)?)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
}

fn remove_state() -> anyhow::Result<()> {
    let state = state_dir();
    if state.exists() {
        std::fs::remove_dir_all(&state).with_context(|| format!("removing {}", state.display()))?;
    }
    Ok(())
}

/// The Secret the sample's default `database.urlSecretRef` names.
pub fn database_secret(url: &str) -> serde_json::Value {
    crate::bench_platform::database_secret(NAMESPACE, DATABASE_SECRET, url)
}

/// A hostPath volume for the operator's backup claim (no dynamic provisioner runs here).
pub fn backup_volume(path: &Path) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": BACKUP_VOLUME},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": path.display().to_string(), "type": "DirectoryOrCreate"},
        },
    })
}

fn apply(kubectl: &Kubectl, manifest: &serde_json::Value) -> anyhow::Result<()> {
    kubectl.run_with_input(&["apply", "-f", "-"], Some(&manifest.to_string()))?;
    Ok(())
}

/// `Ready` status, reason and message of the instance, or `None` before it has a status.
fn ready_condition(kubectl: &Kubectl) -> Option<(String, String, String)> {
    let out = kubectl
        .run(&["-n", NAMESPACE, "get", "fp", INSTANCE, "-o", "json"])
        .ok()?;
    let fp: serde_json::Value = serde_json::from_str(&out).ok()?;
    let conditions = fp["status"]["conditions"].as_array()?;
    let ready = conditions.iter().find(|c| c["type"] == "Ready")?;
    let field = |k: &str| ready[k].as_str().unwrap_or_default().to_owned();
    Some((field("status"), field("reason"), field("message")))
}

/// Polls the Ready condition, printing each change, until True or the timeout.
fn wait_ready(kubectl: &Kubectl) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let mut last = None;
    loop {
        interrupt::check()?;
        let now = ready_condition(kubectl);
        if now != last {
            if let Some((status, reason, message)) = &now {
                log(format!(
                    "{:>5.1}s Ready={status} {reason}: {message}",
                    t0.elapsed().as_secs_f64()
                ));
            }
            last = now.clone();
        }
        if now.as_ref().is_some_and(|(status, _, _)| status == "True") {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > READY_TIMEOUT {
            bail!(
                "fp/{INSTANCE} not Ready after {}s; see `kubectl -n {NAMESPACE} describe fp {INSTANCE}` and the pod logs",
                READY_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn helm_install(tools: &Tools) -> anyhow::Result<()> {
    let chart = paths::workspace_root().join("charts").join("fp-operator");
    let status = tools
        .helm()
        .args(["upgrade", "--install", OPERATOR_RELEASE])
        .arg(&chart)
        .args(["--namespace", OPERATOR_NAMESPACE, "--create-namespace"])
        .args(["--set", "logging.format=text", "--wait", "--timeout", "5m"])
        // The development cluster's operator serves the sample's namespace and the benches'.
        .args(["--set", "watchAllNamespaces=true"])
        .status()
        .context("running helm")?;
    anyhow::ensure!(
        status.success(),
        "helm install of the operator failed: {status}"
    );
    Ok(())
}

fn import(data: &Path, database_url: &str) -> anyhow::Result<()> {
    let bins = cargo::build_workspace_bins()?;
    let api = bins
        .get("fp-api-server")
        .context("cargo built no fp-api-server")?;
    log(format!(
        "importing {} (this refits every league)",
        data.display()
    ));
    let status = Command::new(api)
        .arg("import")
        .arg("--dir")
        .arg(data)
        // In the environment, not on the command line: the URL holds the password.
        .env("FP_DATABASE_URL", database_url)
        .status()
        .context("running fp-api-server import")?;
    anyhow::ensure!(status.success(), "import failed: {status}");
    Ok(())
}

/// Logs in as the admin whose password the operator generated: the URL we print works.
fn check_login(kubectl: &Kubectl, ip: &str) -> anyhow::Result<()> {
    use base64::Engine;
    let encoded = kubectl.run(&[
        "-n",
        NAMESPACE,
        "get",
        "secret",
        &format!("{INSTANCE}-admin"),
        "-o",
        "jsonpath={.data.password}",
    ])?;
    let password = base64::engine::general_purpose::STANDARD.decode(encoded.trim())?;
    let body = json!({"username": "admin", "password": String::from_utf8(password)?}).to_string();
    // The body (with the password) goes through stdin, never the command line.
    let mut child = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--max-time", "10"])
        .args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            "@-",
        ])
        .arg(format!("http://{ip}:8080/api/v1/auth/login"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running curl")?;
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, body.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    anyhow::ensure!(
        out.status.success() && answer["access_token"].is_string(),
        "login as admin failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

/// Pod name and IP of each running API pod of the instance.
fn api_pods(kubectl: &Kubectl) -> anyhow::Result<Vec<(String, String)>> {
    let selector = format!("app.kubernetes.io/instance={INSTANCE},app.kubernetes.io/component=api");
    let out = kubectl.run(&[
        "-n", NAMESPACE, "get", "pods", "-l", &selector, "-o", "json",
    ])?;
    let pods: serde_json::Value = serde_json::from_str(&out)?;
    Ok(pods["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            Some((
                p["metadata"]["name"].as_str()?.to_owned(),
                p["status"]["podIP"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

pub fn up(options: &UpOptions) -> anyhow::Result<()> {
    match &options.kubeconfig {
        None => up_local(options),
        Some(path) => up_existing(path, options),
    }
}

/// The local control plane with its real node, then the platform.
fn up_local(options: &UpOptions) -> anyhow::Result<()> {
    let previous = load_record()?;
    let local_kubeconfig = cluster::layout().admin_kubeconfig();
    if let Previous::Teardown(target, created) =
        plan::previous_run(previous.as_ref(), None, &local_kubeconfig)
    {
        remove_from_existing(&target, &created)?;
    }
    // PostgreSQL is stopped by its pid file before the state holding it goes; the control
    // plane is replaced by `cluster up` itself.
    postgres::clean(&postgres_state())?;
    remove_state()?;
    save_record(&Record {
        target: Target::Local,
        created: Created::default(),
    })?;
    let running = cluster::up()?;
    let layout = &running.layout;
    let tools = Tools::new(
        Kubectl::new(&layout.bin().join("kubectl"), &layout.admin_kubeconfig()),
        &layout.bin().join("helm"),
    );
    let hint = vec!["eval \"$(cargo xtask cluster env)\"".to_string()];
    start_platform(
        &tools,
        &hint,
        "cargo xtask down      # stops all of it",
        options,
        Some(&running.real_node),
    )
    .inspect_err(|_| {
        log("left running for inspection; `cargo xtask down` stops everything");
    })
}

/// An existing cluster: nothing is installed until the kubeconfig, the cluster and what it
/// already holds have been checked.
fn up_existing(path: &Path, options: &UpOptions) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let kubeconfig = existing::checked_path(path)?;
    let (binaries, third_party_crds) = cluster::prepare()?;
    let target = existing::resolve(&binaries.kubectl, &kubeconfig, None)?;
    let tools = Tools::new(
        Kubectl::new(&binaries.kubectl, &target.kubeconfig).with_context(&target.context),
        &binaries.helm,
    );
    existing::check_reachable(&tools.kubectl, &target)?;
    log(format!(
        "using the cluster at {} (context {} of {})",
        target.server,
        target.context,
        target.kubeconfig.display()
    ));

    // An earlier run is removed before looking: its objects are no conflict.
    let local_kubeconfig = cluster::layout().admin_kubeconfig();
    let local_kubeconfig = std::fs::canonicalize(&local_kubeconfig).unwrap_or(local_kubeconfig);
    // The local control plane given by its kubeconfig: its real node gets the images and reaches
    // PostgreSQL at the bridge address, as with a plain `up`.
    let local_node = if target.kubeconfig == local_kubeconfig {
        cluster::node::running(&cluster::layout())?
    } else {
        None
    };
    match plan::previous_run(load_record()?.as_ref(), Some(&target), &local_kubeconfig) {
        Previous::Nothing => postgres::clean(&postgres_state())?,
        Previous::StopLocal => {
            log("stopping the local control plane of the earlier `up`");
            cluster::down()?;
            postgres::clean(&postgres_state())?;
        }
        Previous::RemovePlatformKeepCluster => {
            log("removing the earlier `up`'s platform from this cluster (it keeps running)");
            remove_from_existing(&target, &Created::local_platform())?;
        }
        Previous::Teardown(previous, created) => remove_from_existing(&previous, &created)?,
    }
    remove_state()?;

    let ready = cluster::ready_node_names(&tools.kubectl)?;
    plan::require_ready_nodes(&ready, &target.server).map_err(anyhow::Error::msg)?;
    let found = existing::observe(&tools)?;
    let conflicts = plan::conflicts(&found);
    if !conflicts.is_empty() {
        bail!(
            "the cluster at {} already has:\n  {}\n`up` installs these itself and `down` would delete them; \
             use a cluster without them or remove them first",
            target.server,
            conflicts.join("\n  ")
        );
    }
    log(format!(
        "pods run on the cluster's Ready node(s): {}",
        ready.join(", ")
    ));
    interrupt::check()?;

    let mut record = Record {
        target: Target::Existing(target.clone()),
        created: Created::planned(&found),
    };
    save_record(&record)?;
    let result = (|| {
        record.created.crds =
            existing::install_crds(&tools.kubectl, &cluster::own_crds()?, &third_party_crds)?;
        save_record(&record)?;
        log(format!(
            "cluster checked and prepared in {:.1}s",
            t0.elapsed().as_secs_f64()
        ));
        let dirs: Vec<String> = [&binaries.kubectl, &binaries.helm]
            .iter()
            .filter_map(|b| b.parent().map(|d| d.display().to_string()))
            .collect();
        let hint = vec![
            format!("export KUBECONFIG={}", target.kubeconfig.display()),
            format!(
                "export PATH=\"{}:$PATH\"   # our kubectl and helm",
                dirs.join(":")
            ),
        ];
        start_platform(
            &tools,
            &hint,
            "cargo xtask down      # removes what up created; the cluster keeps running",
            options,
            local_node.as_ref(),
        )
    })();
    result.inspect_err(|_| {
        log("left as it is for inspection; `cargo xtask down` removes what `up` created");
    })
}

/// Builds the images from the workspace's debug binaries and pushes them to the real node's
/// registry, where the kubelet pulls the chart's and the sample's image references from.
fn publish_images(node: &cluster::node::RealNode) -> anyhow::Result<()> {
    let t0 = Instant::now();
    log(format!(
        "building the images (dev binaries) and pushing them to the node's registry {}",
        node.registry
    ));
    images::build(&images::Options {
        profile: images::Profile::Dev,
        push: Some(node.registry.clone()),
        check: false,
        reproducible: false,
    })?;
    log(format!(
        "images pushed after {:.1}s",
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Everything after the cluster: PostgreSQL, volume, operator, sample, Ready, login, summary.
/// `env_hint` and `down_hint` are the summary lines that differ between the kinds of cluster.
/// With a real node the images are pushed first, PostgreSQL also listens where pods reach the
/// host, and the backup directory belongs to the user the containers run as.
fn start_platform(
    tools: &Tools,
    env_hint: &[String],
    down_hint: &str,
    options: &UpOptions,
    real_node: Option<&cluster::node::RealNode>,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let kubectl = &tools.kubectl;
    if let Some(node) = real_node {
        publish_images(node)?;
    }

    // Runs on after `up` returns; `down` stops it by the pid recorded in its state directory.
    let for_pods = real_node.map(|_| cluster::node::RealNode::postgres_for_pods());
    let pg = postgres::start_listening(&postgres_state(), for_pods)?;
    let database_url = pg.create_database(DATABASE)?;
    let pods_database_url = match for_pods {
        Some(also) => pg.url_at(also.address, DATABASE),
        None => database_url.clone(),
    };
    log(format!("database {DATABASE} created"));

    let backups = state_dir().join("backups");
    std::fs::create_dir_all(&backups)?;
    if real_node.is_some() {
        let id = u32::try_from(images::spec::RUN_AS)?;
        std::os::unix::fs::chown(&backups, Some(id), Some(id))
            .with_context(|| format!("handing {} to uid {id}", backups.display()))?;
    }
    apply(kubectl, &backup_volume(&backups))?;

    log("installing the operator with its Helm chart");
    helm_install(tools)?;

    apply(
        kubectl,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    )?;
    apply(kubectl, &database_secret(&pods_database_url))?;
    let sample = paths::workspace_root().join(SAMPLE);
    kubectl.run(&["apply", "-f", &sample.display().to_string()])?;
    log(format!(
        "applied {SAMPLE}; waiting for fp/{INSTANCE} to be Ready"
    ));
    let took = wait_ready(kubectl)?;
    log(format!(
        "fp/{INSTANCE} Ready after {:.1}s",
        took.as_secs_f64()
    ));

    if let Some(data) = &options.import {
        import(data, &database_url)?;
    }

    let pods = api_pods(kubectl)?;
    let (_, first_ip) = pods.first().context("no API pod is running")?;
    check_login(kubectl, first_ip)?;
    log(format!("logged in as admin at http://{first_ip}:8080"));
    println!();
    println!(
        "The platform is up ({:.0}s after the cluster was ready). {}",
        t0.elapsed().as_secs_f64(),
        match real_node {
            None => "Everything listens on loopback.".to_owned(),
            Some(node) => format!(
                "Pods run on the real node ({}, a bridge with no route off the machine); images in {}.",
                cluster::node::RealNode::POD_CIDR,
                node.registry
            ),
        }
    );
    println!();
    for line in env_hint {
        println!("    {line}");
    }
    println!("    kubectl -n {NAMESPACE} get fp,deploy,svc,cronjob,pods -o wide");
    for (name, ip) in &pods {
        println!("    curl http://{ip}:8080/health/ready      # {name}");
    }
    println!(
        "    PASSWORD=$(kubectl -n {NAMESPACE} get secret {INSTANCE}-admin -o jsonpath='{{.data.password}}' | base64 -d)"
    );
    println!(
        "    curl -s http://{first_ip}:8080/api/v1/auth/login -H 'content-type: application/json' -d \"{{\\\"username\\\":\\\"admin\\\",\\\"password\\\":\\\"$PASSWORD\\\"}}\""
    );
    println!("    {down_hint}");
    Ok(())
}

/// Removes what a run recorded from an existing cluster and stops its processes. When the
/// cluster cannot be reached (or the context now names another server) nothing in it is
/// touched and the commands to finish by hand are printed.
fn remove_from_existing(target: &ClusterTarget, created: &Created) -> anyhow::Result<()> {
    log(format!(
        "removing what `up` created in the cluster at {} (context {} of {})",
        target.server,
        target.context,
        target.kubeconfig.display()
    ));
    let steps = plan::teardown_steps(created);
    let tools = cluster::binaries()
        .map_err(|e| format!("{e:#}"))
        .and_then(|binaries| existing::tools_for_down(&binaries, target));
    let failed = existing::teardown(&steps, tools.as_ref().ok(), &postgres_state());
    match &tools {
        Err(why) => {
            log(format!(
                "{why}; left in that cluster (remove by hand if it still exists):"
            ));
            for line in existing::leftovers(target, created, &steps) {
                log(format!("    {line}"));
            }
        }
        Ok(_) if !created.crds.is_empty() => log(format!(
            "left the CRDs `up` installed (deleting one deletes every object of its kind): {}",
            created.crds.join(" ")
        )),
        Ok(_) => {}
    }
    anyhow::ensure!(
        failed.is_empty(),
        "could not remove everything (`cargo xtask down` tries again):\n  {}",
        failed.join("\n  ")
    );
    Ok(())
}

pub fn down() -> anyhow::Result<()> {
    match load_record()? {
        None => {
            log(
                "no platform state; nothing to stop (`cargo xtask cluster down` stops a cluster from `cluster up`)",
            );
            return Ok(());
        }
        Some(Record {
            target: Target::Local,
            ..
        }) => {
            // The node stops its pods when it stops, before the database goes.
            cluster::down()?;
            postgres::clean(&postgres_state())?;
        }
        Some(Record {
            target: Target::Existing(target),
            created,
        }) => remove_from_existing(&target, &created)?,
    }
    remove_state()?;
    log("stopped the platform and removed its state");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_secret_is_the_one_the_sample_defaults_to() {
        let secret = database_secret("postgres://u:p@127.0.0.1:1/football");
        assert_eq!(secret["metadata"]["name"], "demo-database");
        assert_eq!(secret["metadata"]["namespace"], NAMESPACE);
        assert_eq!(
            secret["stringData"]["url"],
            "postgres://u:p@127.0.0.1:1/football"
        );
        let sample = std::fs::read_to_string(paths::workspace_root().join(SAMPLE)).expect("sample");
        assert!(sample.contains(&format!("name: {INSTANCE}\n  namespace: {NAMESPACE}")));
    }

    #[test]
    fn backup_volume_is_static_hostpath_without_class() {
        let pv = backup_volume(Path::new("/s/backups"));
        assert_eq!(pv["spec"]["hostPath"]["path"], "/s/backups");
        assert_eq!(pv["spec"]["storageClassName"], "");
        assert_eq!(pv["spec"]["accessModes"][0], "ReadWriteOnce");
    }
}
