//! `cargo xtask up` / `cargo xtask down`: the whole platform on this machine. The local control
//! plane with its node agent, a PostgreSQL, the operator installed by its Helm chart, and the
//! FootballPrediction of `docs/samples/local.yaml`, waited for until Ready.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::kubectl::Kubectl;
use crate::{cargo, cluster, interrupt, paths, postgres};

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

fn helm_install(helm: &Path, kubeconfig: &Path) -> anyhow::Result<()> {
    let chart = paths::workspace_root().join("charts").join("fp-operator");
    let status = Command::new(helm)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["upgrade", "--install", OPERATOR_RELEASE])
        .arg(&chart)
        .args(["--namespace", OPERATOR_NAMESPACE, "--create-namespace"])
        .args(["--set", "logging.format=text", "--wait", "--timeout", "5m"])
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
    let running = cluster::up(cluster::UpOptions::default())?;
    start_platform(&running.layout, options).inspect_err(|_| {
        log("left running for inspection; `cargo xtask down` stops everything");
    })
}

fn start_platform(layout: &cluster::Layout, options: &UpOptions) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let kubeconfig = layout.admin_kubeconfig();
    let kubectl = Kubectl::new(&layout.bin().join("kubectl"), &kubeconfig);

    // Runs on after `up` returns; `down` stops it by the pid recorded in its state directory.
    let pg = postgres::start(&postgres_state())?;
    let database_url = pg.create_database(DATABASE)?;
    log(format!("database {DATABASE} created"));

    let backups = state_dir().join("backups");
    std::fs::create_dir_all(&backups)?;
    apply(&kubectl, &backup_volume(&backups))?;

    log("installing the operator with its Helm chart");
    helm_install(&layout.bin().join("helm"), &kubeconfig)?;

    apply(
        &kubectl,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    )?;
    apply(&kubectl, &database_secret(&database_url))?;
    let sample = paths::workspace_root().join(SAMPLE);
    kubectl.run(&["apply", "-f", &sample.display().to_string()])?;
    log(format!(
        "applied {SAMPLE}; waiting for fp/{INSTANCE} to be Ready"
    ));
    let took = wait_ready(&kubectl)?;
    log(format!(
        "fp/{INSTANCE} Ready after {:.1}s",
        took.as_secs_f64()
    ));

    if let Some(data) = &options.import {
        import(data, &database_url)?;
    }

    let pods = api_pods(&kubectl)?;
    let (_, first_ip) = pods.first().context("no API pod is running")?;
    check_login(&kubectl, first_ip)?;
    log(format!("logged in as admin at http://{first_ip}:8080"));
    println!();
    println!(
        "The platform is up ({:.0}s after the control plane). Everything listens on loopback.",
        t0.elapsed().as_secs_f64()
    );
    println!();
    println!("    eval \"$(cargo xtask cluster env)\"");
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
    println!("    cargo xtask down      # stops all of it");
    Ok(())
}

pub fn down() -> anyhow::Result<()> {
    // The node agent stops its pods when it stops, before the database goes.
    cluster::down()?;
    postgres::clean(&postgres_state())?;
    let state = state_dir();
    if state.exists() {
        std::fs::remove_dir_all(&state).with_context(|| format!("removing {}", state.display()))?;
    }
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
