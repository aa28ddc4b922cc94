//! `cargo xtask alerts`: the alert rules checked and unit-tested by promtool, Prometheus's own
//! tool. `promtool check rules` reads the rules of every `docs/samples/<name>.yaml` (rendered by
//! `kubectl fp alerts`) and of the chart's PrometheusRule (`helm template`);
//! `promtool test rules` runs every `operator/tests/alerts/<name>.test.yaml` against the rules of
//! the sample of that name (`chart.test.yaml`: the chart's).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::gobuild::{self, GoEnv};
use crate::images::debs;
use crate::{cargo, paths, steps};

/// Release and namespace the chart test renders the chart as (chart.test.yaml names both).
const CHART_RELEASE: &str = "fp";
const CHART_NAMESPACE: &str = "fp-system";

/// Prometheus from Debian's `prometheus` package (promtool too: [`check`]): downloaded with apt (checked
/// against apt's SHA-256) and unpacked once into `~/.cache/fp/tools/<package>-<version>/`, no
/// service installed or started. Alertmanager is built from its Go module (xtask/go/alertmanager)
/// into the cache like the control plane: Debian's reads its default template from a path only
/// an installed package has.
pub struct MonitoringTools {
    pub prometheus: PathBuf,
    pub alertmanager: PathBuf,
}

pub fn monitoring_tools() -> anyhow::Result<MonitoringTools> {
    let prometheus = unpacked("prometheus", &["promtool", "prometheus"])?;
    let go = GoEnv::locate(&paths::cache_dir())?;
    let group = gobuild::Group {
        name: "alertmanager",
        module_dir: paths::workspace_root().join("xtask/go/alertmanager"),
        binaries: vec![(
            "alertmanager",
            "github.com/prometheus/alertmanager/cmd/alertmanager",
        )],
        tags: "",
        ldflags: "-s -w".into(),
    };
    let alertmanager = gobuild::ensure_tool(&go, &group)?.join("alertmanager");
    Ok(MonitoringTools {
        prometheus: prometheus.join("prometheus"),
        alertmanager,
    })
}

/// The directory holding `programs` (from the package's usr/bin), unpacked when missing.
fn unpacked(package: &str, programs: &[&str]) -> anyhow::Result<PathBuf> {
    let graph = debs::depends_graph(&[package.to_owned()])?;
    let (_, found) = debs::resolve(&graph, &[], &[], &[package.to_owned()])?;
    let deb = found
        .first()
        .with_context(|| format!("apt-cache show printed no {package}"))?;
    let dir = paths::cache_dir()
        .join("tools")
        .join(format!("{package}-{}", deb.version.replace(':', "%3a")));
    if programs.iter().all(|p| dir.join(p).is_file()) {
        return Ok(dir);
    }
    let files = debs::download(std::slice::from_ref(deb), &paths::cache_dir().join("debs"))?;
    let staging = dir.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    steps::run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&files[0])
            .arg(&staging),
    )?;
    std::fs::create_dir_all(&dir)?;
    for program in programs {
        std::fs::rename(staging.join("usr/bin").join(program), dir.join(program))
            .with_context(|| format!("{} has no usr/bin/{program}", files[0].display()))?;
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(dir)
}

/// The test files, each with the manifest or chart its rules come from.
fn test_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(stem) = name.strip_suffix(".test.yaml") {
            found.push((stem.to_owned(), path));
        }
    }
    found.sort();
    if found.is_empty() {
        bail!("no *.test.yaml in {}", dir.display());
    }
    Ok(found)
}

/// The `spec` of the PrometheusRule in `helm template` output: a Prometheus rule file.
pub fn rule_file_from_manifests(text: &str) -> anyhow::Result<String> {
    for document in serde_norway::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(document)?;
        if value["kind"] == "PrometheusRule" {
            return Ok(serde_norway::to_string(&value["spec"])?);
        }
    }
    bail!("the rendered chart has no PrometheusRule")
}

fn render_chart(helm: &Path) -> anyhow::Result<String> {
    let chart = paths::workspace_root().join("charts/fp-operator");
    let output = Command::new(helm)
        .args(["template", CHART_RELEASE])
        .arg(&chart)
        .args(["--namespace", CHART_NAMESPACE])
        .args(["--set", "metrics.prometheusRule.enabled=true"])
        .args(["--show-only", "templates/prometheusrule.yaml"])
        .output()
        .context("running helm template")?;
    if !output.status.success() {
        bail!(
            "helm template failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    rule_file_from_manifests(&String::from_utf8_lossy(&output.stdout))
}

fn render_sample(kubectl_fp: &Path, name: &str) -> anyhow::Result<String> {
    let manifest = paths::workspace_root().join(format!("docs/samples/{name}.yaml"));
    let output = Command::new(kubectl_fp)
        .args(["alerts", "-f"])
        .arg(&manifest)
        .output()
        .context("running kubectl-fp alerts")?;
    if !output.status.success() {
        bail!(
            "kubectl fp alerts -f {}: {}",
            manifest.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// The sample manifests whose rules are checked: every docs/samples/*.yaml.
fn samples() -> anyhow::Result<Vec<String>> {
    let dir = paths::workspace_root().join("docs/samples");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Renders the rules of every sample manifest and of the chart, `promtool check rules` on all,
/// then `promtool test rules` on every test file next to the rules it names.
pub fn check() -> anyhow::Result<()> {
    let promtool = unpacked("prometheus", &["promtool", "prometheus"])?.join("promtool");
    let bins = cargo::build_workspace_bins()?;
    let kubectl_fp = bins
        .get("kubectl-fp")
        .context("no kubectl-fp binary was built")?;
    let helm = crate::cluster::helm()?;
    let work = paths::workspace_root().join("target/alerts");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;

    let mut rule_files = Vec::new();
    for name in samples()? {
        let path = work.join(format!("{name}.rules.yaml"));
        std::fs::write(&path, render_sample(kubectl_fp, &name)?)?;
        rule_files.push(path);
    }
    let chart_rules = work.join("chart.rules.yaml");
    std::fs::write(&chart_rules, render_chart(&helm)?)?;
    rule_files.push(chart_rules);
    steps::run(
        Command::new(&promtool)
            .args(["check", "rules"])
            .args(&rule_files),
    )?;

    let mut test_copies = Vec::new();
    for (name, test) in test_files(&paths::workspace_root().join("operator/tests/alerts"))? {
        if !work.join(format!("{name}.rules.yaml")).is_file() {
            bail!(
                "{}: no docs/samples/{name}.yaml (or chart) to take its rules from",
                test.display()
            );
        }
        let copy = work.join(format!("{name}.test.yaml"));
        std::fs::copy(&test, &copy)?;
        test_copies.push(copy);
    }
    steps::run(
        Command::new(&promtool)
            .args(["test", "rules"])
            .args(&test_copies)
            .current_dir(&work),
    )?;
    eprintln!(
        "[alerts] {} rule files checked, {} test files passed ({})",
        rule_files.len(),
        test_copies.len(),
        promtool.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_file_is_the_prometheus_rule_spec() {
        let text = "---\nkind: ServiceMonitor\nspec: {a: 1}\n---\nkind: PrometheusRule\nmetadata: {name: x}\nspec:\n  groups:\n  - name: g\n    rules: []\n";
        assert_eq!(
            rule_file_from_manifests(text).unwrap(),
            "groups:\n- name: g\n  rules: []\n"
        );
        assert!(rule_file_from_manifests("kind: Service\n").is_err());
    }
}
