//! What the benchmarks on the running platform (`cargo xtask up`) share: finding it, the database
//! Secret it created, reading a FootballPrediction's status, percentiles over samples, and the
//! JSON report under target/bench/.
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::bail;
use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};

use crate::kubectl::Kubectl;
use crate::{cluster, paths, platform};

/// kubectl against the running local cluster, or an error saying how to start the platform.
pub fn connect() -> anyhow::Result<Kubectl> {
    let layout = cluster::layout();
    if !layout.ready_marker().is_file() {
        bail!("no local cluster is running; start the platform with `cargo xtask up`");
    }
    Ok(Kubectl::new(
        &layout.bin().join("kubectl"),
        &layout.admin_kubeconfig(),
    ))
}

/// The database URL of the Secret `cargo xtask up` created (the already migrated database of
/// the demo instance), so bench instances need no migration of their own.
pub fn database_url(kubectl: &Kubectl) -> anyhow::Result<String> {
    let secret = platform::DATABASE_SECRET;
    let namespace = platform::NAMESPACE;
    let encoded = kubectl
        .run(&[
            "-n",
            namespace,
            "get",
            "secret",
            secret,
            "-o",
            "jsonpath={.data.url}",
        ])
        .map_err(|_| {
            anyhow::anyhow!(
                "Secret {namespace}/{secret} not found: start the platform with `cargo xtask up`"
            )
        })?;
    let url = base64::engine::general_purpose::STANDARD.decode(encoded.trim())?;
    Ok(String::from_utf8(url)?)
}

/// A Secret `name` in `namespace` holding the database URL under key `url`.
pub fn database_secret(namespace: &str, name: &str, url: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": {"url": url},
    })
}

/// Whether a FootballPrediction's status has `Ready=True`.
pub fn ready(status: &Value) -> bool {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .is_some_and(|c| c["status"] == "True")
}

/// Whether the active color runs `version`.
pub fn serving(status: &Value, version: &str) -> bool {
    status["active"]["version"] == version
}

/// Median, 90th percentile and range of one measured quantity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub runs: usize,
    pub median: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
}

/// The spread of `samples` (nearest-rank percentiles); `None` without samples.
pub fn spread(samples: &[f64]) -> Option<Spread> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|s| s.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let index = (q * sorted.len() as f64).ceil() as usize;
        sorted[index.clamp(1, sorted.len()) - 1]
    };
    Some(Spread {
        runs: sorted.len(),
        median: rank(0.5),
        p90: rank(0.9),
        min: sorted[0],
        max: sorted[sorted.len() - 1],
    })
}

/// Writes `report` to target/bench/`<prefix>`-`<unix time>`.json and returns the path.
pub fn write_report(prefix: &str, report: &Value) -> anyhow::Result<PathBuf> {
    let out_dir = paths::workspace_root().join("target").join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs();
    let file = out_dir.join(format!("{prefix}-{stamp}.json"));
    std::fs::write(&file, serde_json::to_string_pretty(report)?)?;
    eprintln!("[bench] wrote {}", file.display());
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_uses_nearest_ranks() {
        let s = spread(&[4.0, 1.0, 3.0, 2.0, 10.0, 5.0, 6.0, 7.0, 8.0, 9.0]).unwrap();
        assert_eq!(
            s,
            Spread {
                runs: 10,
                median: 5.0,
                p90: 9.0,
                min: 1.0,
                max: 10.0
            }
        );
        assert_eq!(spread(&[]), None);
        assert_eq!(spread(&[f64::NAN, 2.0]).unwrap().median, 2.0);
    }

    #[test]
    fn ready_and_serving_read_the_status() {
        let status = json!({
            "conditions": [{"type": "Progressing", "status": "True"}, {"type": "Ready", "status": "True"}],
            "active": {"version": "1.1.0"}});
        assert!(ready(&status));
        assert!(serving(&status, "1.1.0"));
        assert!(!serving(&status, "1.0.0"));
        assert!(!ready(
            &json!({"conditions": [{"type": "Ready", "status": "False"}]})
        ));
        assert!(!ready(&Value::Null));
    }

    #[test]
    fn database_secret_holds_the_url_under_key_url() {
        let s = database_secret("ns", "db", "postgres://u:p@127.0.0.1:1/x");
        assert_eq!(s["metadata"]["namespace"], "ns");
        assert_eq!(s["metadata"]["name"], "db");
        assert_eq!(s["stringData"]["url"], "postgres://u:p@127.0.0.1:1/x");
    }
}
