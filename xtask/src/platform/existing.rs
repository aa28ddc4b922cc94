//! `cargo xtask up --kubeconfig`: talking to a cluster that `up` did not start. Reading the
//! kubeconfig, checking the cluster answers, looking at what is already there, installing
//! CRDs, and removing exactly what `up` recorded.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::plan::{ClusterTarget, Created, Existing, Step, TargetError};
use super::{BACKUP_VOLUME, INSTANCE, NAMESPACE, OPERATOR_NAMESPACE, OPERATOR_RELEASE, log};
use crate::cluster;
use crate::kubectl::Kubectl;
use crate::postgres;

/// The resource name of our kind, so lookups work without relying on the short name.
const FP_RESOURCE: &str = "footballpredictions.footballprediction.io";
/// Label the operator chart puts on its Deployment (`app.kubernetes.io/name: <chart name>`).
const OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=fp-operator";

/// kubectl and helm, both pinned to one kubeconfig (and for existing clusters one context).
#[derive(Debug, Clone)]
pub struct Tools {
    pub kubectl: Kubectl,
    pub helm: PathBuf,
}

impl Tools {
    pub fn new(kubectl: Kubectl, helm: &Path) -> Self {
        Self {
            kubectl,
            helm: helm.to_path_buf(),
        }
    }

    /// `helm --kubeconfig … [--kube-context …]`.
    pub fn helm(&self) -> Command {
        let mut cmd = Command::new(&self.helm);
        cmd.arg("--kubeconfig").arg(&self.kubectl.kubeconfig);
        if let Some(context) = &self.kubectl.context {
            cmd.args(["--kube-context", context]);
        }
        cmd
    }
}

/// A kubeconfig path checked before kubectl sees it: kubectl treats a missing file as an
/// empty configuration and would only complain about a missing context.
pub fn checked_path(path: &Path) -> anyhow::Result<PathBuf> {
    let absolute =
        std::path::absolute(path).with_context(|| format!("kubeconfig path {}", path.display()))?;
    match std::fs::metadata(&absolute) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => bail!("kubeconfig {} is not a file", absolute.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("kubeconfig {} does not exist", absolute.display())
        }
        Err(e) => bail!("kubeconfig {}: {e}", absolute.display()),
    }
    std::fs::File::open(&absolute)
        .with_context(|| format!("kubeconfig {} cannot be read", absolute.display()))?;
    // One spelling per file, so `up` can tell the local control plane's kubeconfig.
    Ok(std::fs::canonicalize(&absolute).unwrap_or(absolute))
}

/// The cluster of the kubeconfig's current context (or of `context`), read by kubectl itself
/// so the file means exactly what it means to kubectl and helm.
pub fn resolve(
    kubectl_bin: &Path,
    kubeconfig: &Path,
    context: Option<&str>,
) -> anyhow::Result<ClusterTarget> {
    let mut kubectl = Kubectl::new(kubectl_bin, kubeconfig);
    if let Some(context) = context {
        kubectl = kubectl.with_context(context);
    }
    let json = kubectl
        .run(&["config", "view", "--minify", "-o", "json"])
        .map_err(|e| match e {
            crate::kubectl::KubectlError::Failed { stderr, .. }
                if stderr.contains("current-context must exist") =>
            {
                anyhow::Error::new(TargetError::NoContext {
                    path: kubeconfig.display().to_string(),
                })
            }
            crate::kubectl::KubectlError::Failed { stderr, .. } => anyhow::anyhow!(
                "kubeconfig {} cannot be used: {stderr}",
                kubeconfig.display()
            ),
            other => other.into(),
        })?;
    Ok(super::plan::parse_minified(kubeconfig, &json)?)
}

/// `/readyz` answers `ok`, or an error naming the server, the context and the kubeconfig.
pub fn check_reachable(kubectl: &Kubectl, target: &ClusterTarget) -> anyhow::Result<()> {
    let answer = kubectl.run(&["get", "--raw", "/readyz", "--request-timeout=15s"]);
    match answer {
        Ok(body) if body.trim() == "ok" => Ok(()),
        Ok(body) => bail!(
            "the cluster at {} (context {} of kubeconfig {}) is not ready: /readyz says {}",
            target.server,
            target.context,
            target.kubeconfig.display(),
            body.trim()
        ),
        Err(e) => bail!(
            "cannot reach the cluster at {} (context {} of kubeconfig {}): {e}",
            target.server,
            target.context,
            target.kubeconfig.display()
        ),
    }
}

/// True when `kubectl get … --ignore-not-found -o name` names something.
fn exists(kubectl: &Kubectl, args: &[&str]) -> anyhow::Result<bool> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend(["--ignore-not-found", "-o", "name"]);
    Ok(!kubectl.run(&all)?.trim().is_empty())
}

/// Whether `helm list -o json` output lists a release called `name`.
pub fn release_listed(json: &str, name: &str) -> anyhow::Result<bool> {
    let releases: serde_json::Value =
        serde_json::from_str(json).context("helm list printed no JSON")?;
    Ok(releases
        .as_array()
        .is_some_and(|list| list.iter().any(|r| r["name"] == name)))
}

/// What of the platform is already in the cluster, looked at before anything is installed.
pub fn observe(tools: &Tools) -> anyhow::Result<Existing> {
    let kubectl = &tools.kubectl;
    let namespaces = [NAMESPACE, OPERATOR_NAMESPACE]
        .into_iter()
        .filter_map(|ns| match exists(kubectl, &["namespace", ns]) {
            Ok(true) => Some(Ok(ns.to_string())),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = tools
        .helm()
        .args(["list", "--all", "-n", OPERATOR_NAMESPACE, "-o", "json"])
        .output()
        .context("running helm list")?;
    if !out.status.success() {
        bail!(
            "helm list failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let operator_release = release_listed(&String::from_utf8_lossy(&out.stdout), OPERATOR_RELEASE)?;
    let crd = exists(kubectl, &["crd", FP_RESOURCE])?;
    let sample = crd && exists(kubectl, &["-n", NAMESPACE, FP_RESOURCE, INSTANCE])?;
    let database_secret = exists(
        kubectl,
        &["-n", NAMESPACE, "secret", &format!("{INSTANCE}-database")],
    )?;
    let backup_volume = exists(kubectl, &["persistentvolume", BACKUP_VOLUME])?;
    let jsonpath =
        r#"-o=jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}"#;
    let operators = kubectl
        .run(&[
            "get",
            "deployments",
            "--all-namespaces",
            "-l",
            OPERATOR_SELECTOR,
            jsonpath,
        ])?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    Ok(Existing {
        namespaces,
        operator_release,
        sample,
        database_secret,
        backup_volume,
        operators,
    })
}

/// Applies our CRDs (this checkout's operator needs exactly them) and the third-party ones
/// only where missing: an existing cert-manager or prometheus-operator keeps its own. Returns
/// the names of the CRDs that were missing.
pub fn install_crds(
    kubectl: &Kubectl,
    own: &[PathBuf],
    third_party: &[PathBuf],
) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    for file in third_party {
        let file = file.display().to_string();
        if !exists(kubectl, &["-f", &file])? {
            missing.push(file);
        }
    }
    let mut created = Vec::new();
    for file in own {
        let file = file.display().to_string();
        if !exists(kubectl, &["-f", &file])? {
            created.push(file);
        }
    }
    let mut files: Vec<PathBuf> = own.to_vec();
    files.extend(missing.iter().map(PathBuf::from));
    cluster::install_crds(kubectl, &files)?;
    created.extend(missing);
    let mut names = Vec::new();
    for file in created {
        let name = kubectl.run(&["get", "-f", &file, "-o", "name"])?;
        names.extend(name.lines().map(|l| {
            l.rsplit_once('/')
                .map_or(l, |(_, name)| name)
                .trim()
                .to_string()
        }));
    }
    if !names.is_empty() {
        log(format!("installed missing CRDs: {}", names.join(", ")));
    }
    Ok(names)
}

/// Deletes what `up` created in the cluster and stops the processes it started. `tools` is
/// `None` when the cluster is gone (or no longer the one `up` used): only processes stop.
/// Returns the steps that failed.
pub fn teardown(steps: &[Step], tools: Option<&Tools>, postgres_state: &Path) -> Vec<String> {
    let mut failed = Vec::new();
    for step in steps {
        let result = match (step, tools) {
            (step, None) if step.in_cluster() => continue,
            (Step::StopPostgres, _) => postgres::clean(postgres_state),
            (step, Some(tools)) => delete(step, tools),
            (_, None) => continue,
        };
        if let Err(e) = result {
            log(format!("{step:?} failed: {e:#}"));
            failed.push(format!("{step:?}: {e:#}"));
        }
    }
    failed
}

fn delete(step: &Step, tools: &Tools) -> anyhow::Result<()> {
    let kubectl = &tools.kubectl;
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let out = kubectl.run(args)?;
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            log(line);
        }
        Ok(())
    };
    match step {
        Step::DeleteSample => {
            // Without our CRD there is no FootballPrediction to delete.
            if exists(kubectl, &["crd", FP_RESOURCE])? {
                run(&[
                    "-n",
                    NAMESPACE,
                    "delete",
                    FP_RESOURCE,
                    INSTANCE,
                    "--ignore-not-found",
                    "--timeout=120s",
                ])?;
            }
            Ok(())
        }
        Step::DeleteDatabaseSecret => run(&[
            "-n",
            NAMESPACE,
            "delete",
            "secret",
            &format!("{INSTANCE}-database"),
            "--ignore-not-found",
        ]),
        Step::DeleteNamespace(ns) => run(&[
            "delete",
            "namespace",
            ns,
            "--ignore-not-found",
            "--timeout=180s",
        ]),
        Step::UninstallOperator => {
            let status = tools
                .helm()
                .args(["uninstall", OPERATOR_RELEASE, "-n", OPERATOR_NAMESPACE])
                .args(["--ignore-not-found", "--wait", "--timeout", "2m"])
                .status()
                .context("running helm uninstall")?;
            anyhow::ensure!(status.success(), "helm uninstall failed: {status}");
            Ok(())
        }
        Step::DeleteBackupVolume => run(&[
            "delete",
            "persistentvolume",
            BACKUP_VOLUME,
            "--ignore-not-found",
            "--timeout=60s",
        ]),
        Step::StopPostgres => Ok(()),
    }
}

/// kubectl and helm for `down`: the recorded context, if its server is still the one `up`
/// used and answers; otherwise why not (then nothing in the cluster is touched).
pub fn tools_for_down(
    binaries: &crate::gobuild::Binaries,
    target: &ClusterTarget,
) -> Result<Tools, String> {
    if !target.kubeconfig.is_file() {
        return Err(format!(
            "kubeconfig {} is gone",
            target.kubeconfig.display()
        ));
    }
    let now = resolve(&binaries.kubectl, &target.kubeconfig, Some(&target.context))
        .map_err(|e| format!("{e:#}"))?;
    if now.server != target.server {
        return Err(format!(
            "context {} of {} now points at {}, not at {} where `up` installed",
            target.context,
            target.kubeconfig.display(),
            now.server,
            target.server
        ));
    }
    let kubectl = Kubectl::new(&binaries.kubectl, &target.kubeconfig).with_context(&target.context);
    check_reachable(&kubectl, target).map_err(|e| format!("{e:#}"))?;
    Ok(Tools::new(kubectl, &binaries.helm))
}

/// What stays in a cluster `down` could not reach, for the user to remove by hand.
pub fn leftovers(target: &ClusterTarget, created: &Created, steps: &[Step]) -> Vec<String> {
    let kubectl = format!(
        "kubectl --kubeconfig {} --context {}",
        target.kubeconfig.display(),
        target.context
    );
    steps
        .iter()
        .filter_map(|step| match step {
            Step::DeleteSample => Some(format!("{kubectl} -n {NAMESPACE} delete fp {INSTANCE}")),
            Step::DeleteDatabaseSecret => Some(format!(
                "{kubectl} -n {NAMESPACE} delete secret {INSTANCE}-database"
            )),
            Step::DeleteNamespace(ns) => Some(format!("{kubectl} delete namespace {ns}")),
            Step::UninstallOperator => Some(format!(
                "helm --kubeconfig {} --kube-context {} -n {OPERATOR_NAMESPACE} uninstall {OPERATOR_RELEASE}",
                target.kubeconfig.display(),
                target.context
            )),
            Step::DeleteBackupVolume => Some(format!("{kubectl} delete pv {BACKUP_VOLUME}")),
            Step::StopPostgres => None,
        })
        .chain(
            (!created.crds.is_empty())
                .then(|| format!("{kubectl} delete crd {}", created.crds.join(" "))),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::plan::teardown_steps;

    #[test]
    fn missing_and_directory_kubeconfigs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = checked_path(&missing).unwrap_err().to_string();
        assert!(
            err.contains("does not exist") && err.contains("nope"),
            "{err}"
        );
        let err = checked_path(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is not a file"), "{err}");
        let file = dir.path().join("config");
        std::fs::write(&file, "apiVersion: v1\n").unwrap();
        assert_eq!(
            checked_path(&file).unwrap(),
            std::fs::canonicalize(&file).unwrap()
        );
    }

    #[test]
    fn finds_a_release_by_exact_name() {
        let json = r#"[{"name":"fp-operator-old","namespace":"fp-system"},{"name":"fp-operator"}]"#;
        assert!(release_listed(json, "fp-operator").unwrap());
        assert!(!release_listed("[]", "fp-operator").unwrap());
        assert!(!release_listed(r#"[{"name":"fp-operator-old"}]"#, "fp-operator").unwrap());
        assert!(release_listed("Error: nope", "fp-operator").is_err());
    }

    #[test]
    fn leftovers_name_the_context_and_keep_crds_as_a_hint() {
        let target = ClusterTarget {
            kubeconfig: PathBuf::from("/k/config"),
            context: "admin@c".into(),
            server: "https://127.0.0.1:1".into(),
        };
        let mut created = Created::local_platform();
        created.crds = vec!["certificates.cert-manager.io".into()];
        let lines = leftovers(&target, &created, &teardown_steps(&created));
        assert!(
            lines
                .iter()
                .all(|l| l.contains("--kubeconfig /k/config") && l.contains("admin@c")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with("delete namespace football"))
        );
        assert!(lines.iter().any(|l| l.ends_with("uninstall fp-operator")));
        assert_eq!(
            lines.last().unwrap(),
            "kubectl --kubeconfig /k/config --context admin@c delete crd certificates.cert-manager.io"
        );
    }
}
