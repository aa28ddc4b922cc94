//! `cargo xtask bench rollout`: blue-green rollouts with the default settings on the platform
//! `cargo xtask up` started. Each run rolls out a healthy release (time to the traffic switch, to
//! Ready, to the end) and then a release that turns unhealthy after promotion (time from its first
//! failing health check to the active Service selecting the good color again). Medians and spread
//! over the runs; a table on stdout and JSON under target/bench/.
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::bench_platform::{self, Spread, ready, serving, spread};
use crate::cluster::{self, node::RealNode};
use crate::interrupt;
use crate::kubectl::Kubectl;
use crate::platform::NAMESPACE;

const NAME: &str = "bench";
/// The unhealthy release turns readiness to 503 this long after its pod started, through the
/// fault settings published with its image ([`broken_env`]).
const BROKEN_AFTER: Duration = Duration::from_secs(40);
const BROKEN_SUFFIX: &str = "-broken-later";
const POLL: Duration = Duration::from_millis(100);
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct RolloutOptions {
    pub runs: usize,
}

/// Seconds between two RFC 3339 timestamps.
fn seconds_between(from: &str, to: SystemTime) -> Option<f64> {
    let from = chrono::DateTime::parse_from_rfc3339(from).ok()?;
    let to = chrono::DateTime::<chrono::Utc>::from(to);
    Some((to - from.to_utc()).as_seconds_f64())
}

fn instance(version: &str) -> Value {
    json!({
        "apiVersion": "footballprediction.io/v1alpha1",
        "kind": "FootballPrediction",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        // Default rollout settings: what the benchmark is about.
        "spec": {"version": version, "replicas": 2, "database": {"migrations": {"enabled": true}}},
    })
}

/// The API server's fault switch set to fail readiness [`BROKEN_AFTER`] after the start.
fn broken_env() -> Vec<(&'static str, String)> {
    vec![
        ("FP_TEST_FAULTS", "enabled".to_owned()),
        (
            "FP_TEST_FAULT_READY_FAIL_AFTER",
            format!("{}s", BROKEN_AFTER.as_secs()),
        ),
    ]
}

struct Platform {
    kubectl: Kubectl,
    /// A release must exist as an image in the node's registry before the spec names it (crane
    /// publishes it there).
    real_node: RealNode,
    crane: PathBuf,
}

impl Platform {
    fn publish(&self, version: &str) -> anyhow::Result<()> {
        let env = if version.ends_with(BROKEN_SUFFIX) {
            broken_env()
        } else {
            Vec::new()
        };
        self.real_node
            .publish_api_release(&self.crane, version, &env)
    }

    fn status(&self) -> Value {
        self.kubectl
            .run(&["-n", NAMESPACE, "get", "fp", NAME, "-o", "json"])
            .ok()
            .and_then(|out| serde_json::from_str::<Value>(&out).ok())
            .map(|fp| fp["status"].clone())
            .unwrap_or(Value::Null)
    }

    fn active_color(&self) -> Option<String> {
        let out = self
            .kubectl
            .run(&[
                "-n",
                NAMESPACE,
                "get",
                "service",
                NAME,
                "-o",
                "jsonpath={.spec.selector.footballprediction\\.io/color}",
            ])
            .ok()?;
        Some(out.trim().to_owned())
    }

    fn set_version(&self, version: &str) -> anyhow::Result<()> {
        self.publish(version)?;
        let patch = json!({"spec": {"version": version}}).to_string();
        self.kubectl.run(&[
            "-n", NAMESPACE, "patch", "fp", NAME, "--type", "merge", "-p", &patch,
        ])?;
        Ok(())
    }

    /// Polls until `done` says yes, failing with the last status after the step timeout.
    fn until(&self, what: &str, mut done: impl FnMut(&Value) -> bool) -> anyhow::Result<Value> {
        let t0 = Instant::now();
        loop {
            interrupt::check()?;
            let status = self.status();
            if done(&status) {
                return Ok(status);
            }
            if t0.elapsed() > STEP_TIMEOUT {
                bail!("{what}: not reached after {STEP_TIMEOUT:?}; status: {status}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// When the first pod of `color` running `image` started, as RFC 3339.
    fn first_pod_start(&self, color: &str, image: &str) -> Option<String> {
        let selector = format!(
            "app.kubernetes.io/instance={NAME},app.kubernetes.io/component=api,footballprediction.io/color={color}"
        );
        let out = self
            .kubectl
            .run(&[
                "-n", NAMESPACE, "get", "pods", "-l", &selector, "-o", "json",
            ])
            .ok()?;
        let pods: Value = serde_json::from_str(&out).ok()?;
        pods["items"]
            .as_array()?
            .iter()
            .filter(|p| p["spec"]["containers"][0]["image"] == image)
            .filter_map(|p| {
                p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
                    .as_str()
                    .map(str::to_owned)
            })
            .min()
    }
}

#[derive(Debug, Default, Serialize)]
struct Samples {
    healthy_switch: Vec<f64>,
    healthy_ready: Vec<f64>,
    healthy_total: Vec<f64>,
    rollback_after_first_failure: Vec<f64>,
}

/// One healthy rollout: seconds to the switch, to Ready, to Idle.
fn healthy(platform: &Platform, version: &str) -> anyhow::Result<(f64, f64, f64)> {
    let t0 = Instant::now();
    platform.set_version(version)?;
    platform.until(&format!("{version} serving"), |s| serving(s, version))?;
    let switch = t0.elapsed().as_secs_f64();
    platform.until(&format!("{version} Ready"), |s| {
        serving(s, version) && ready(s)
    })?;
    let ready_at = t0.elapsed().as_secs_f64();
    platform.until(&format!("{version} rolled out"), |s| {
        serving(s, version) && s["rollout"]["stage"] == "Idle"
    })?;
    Ok((switch, ready_at, t0.elapsed().as_secs_f64()))
}

/// One release that fails after promotion: seconds from its first failing health check (the
/// earliest pod start plus the fault's delay) to the active Service selecting the good color.
fn failing_after_promotion(platform: &Platform, version: &str) -> anyhow::Result<f64> {
    let good_color = platform
        .active_color()
        .context("the active Service has no color selector")?;
    platform.set_version(version)?;
    let promoted = platform.until(&format!("{version} promoted"), |s| {
        s["rollout"]["stage"] == "PostPromotion" && s["rollout"]["targetVersion"] == version
    })?;
    let new_color = promoted["rollout"]["targetColor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let image = promoted["rollout"]["targetImage"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let started = platform
        .first_pod_start(&new_color, &image)
        .context("no started pod of the promoted release")?;
    let t0 = Instant::now();
    loop {
        interrupt::check()?;
        if platform.active_color().as_deref() == Some(good_color.as_str()) {
            break;
        }
        if t0.elapsed() > STEP_TIMEOUT {
            bail!("{version}: traffic did not return to {good_color}");
        }
        std::thread::sleep(POLL);
    }
    let back = SystemTime::now();
    let since_start = seconds_between(&started, back).context("pod start time")?;
    platform.until(&format!("{version} aborted"), |s| {
        s["rollout"]["stage"] == "Aborted"
    })?;
    Ok(since_start - BROKEN_AFTER.as_secs_f64())
}

pub fn rollout(options: &RolloutOptions) -> anyhow::Result<()> {
    let kubectl = bench_platform::connect()?;
    let url = bench_platform::database_url(&kubectl)?;
    let secret = bench_platform::database_secret(NAMESPACE, &format!("{NAME}-database"), &url);
    kubectl.run_with_input(&["apply", "-f", "-"], Some(&secret.to_string()))?;
    let _ = kubectl.run(&[
        "-n",
        NAMESPACE,
        "delete",
        "fp",
        NAME,
        "--ignore-not-found",
        "--wait",
    ]);
    let layout = cluster::layout();
    let real_node = cluster::node::running(&layout)?
        .context("no local cluster with its real node runs; start one with `cargo xtask up`")?;
    let platform = Platform {
        kubectl,
        real_node,
        crane: layout.bin().join("crane"),
    };
    let first = "1.0.0";
    platform.publish(first)?;
    platform
        .kubectl
        .run_with_input(&["apply", "-f", "-"], Some(&instance(first).to_string()))?;
    eprintln!("[bench] fp/{NAME} created with {first}; waiting for the first deploy");
    platform.until("first deploy Ready", |s| serving(s, first) && ready(s))?;

    let mut samples = Samples::default();
    for run in 1..=options.runs {
        let version = format!("1.{run}.0");
        let (switch, ready_at, total) = healthy(&platform, &version)?;
        eprintln!(
            "[bench] run {run}/{}: {version} switched after {switch:.1}s, Ready after {ready_at:.1}s, done after {total:.1}s",
            options.runs
        );
        samples.healthy_switch.push(switch);
        samples.healthy_ready.push(ready_at);
        samples.healthy_total.push(total);
        let broken = format!("1.{run}.1{BROKEN_SUFFIX}");
        let rollback = failing_after_promotion(&platform, &broken)?;
        eprintln!(
            "[bench] run {run}/{}: {broken} switched back {rollback:.1}s after its first failing check",
            options.runs
        );
        samples.rollback_after_first_failure.push(rollback);
    }
    let _ = platform
        .kubectl
        .run(&["-n", NAMESPACE, "delete", "fp", NAME, "--wait=false"]);

    let rows: Vec<(&str, Option<Spread>)> = vec![
        (
            "healthy: patch → traffic switched",
            spread(&samples.healthy_switch),
        ),
        (
            "healthy: patch → Ready (post-promotion passed)",
            spread(&samples.healthy_ready),
        ),
        (
            "healthy: patch → old color scaled down",
            spread(&samples.healthy_total),
        ),
        (
            "unhealthy after promotion: first failing check → switched back",
            spread(&samples.rollback_after_first_failure),
        ),
    ];
    println!(
        "{:<66} {:>5} {:>8} {:>8} {:>8} {:>8}",
        "seconds", "runs", "median", "p90", "min", "max"
    );
    for (what, s) in &rows {
        if let Some(s) = s {
            println!(
                "{what:<66} {:>5} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                s.runs, s.median, s.p90, s.min, s.max
            );
        }
    }
    let report: Vec<Value> = rows
        .iter()
        .map(|(what, s)| json!({"measure": what, "seconds": s}))
        .collect();
    bench_platform::write_report("rollout", &json!({"rows": report, "samples": samples}))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_between_timestamps() {
        let to = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_010);
        let from = "2027-01-15T08:00:00Z";
        let at = chrono::DateTime::parse_from_rfc3339(from).unwrap();
        let expected = 1_800_000_010.0 - at.timestamp() as f64;
        assert_eq!(seconds_between(from, to), Some(expected));
        assert_eq!(seconds_between("yesterday", to), None);
    }
}
