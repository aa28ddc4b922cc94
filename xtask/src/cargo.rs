//! Asking cargo about the workspace and building its binaries.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::paths;

#[derive(Debug, thiserror::Error)]
pub enum CargoError {
    #[error("running cargo: {0}")]
    Io(#[from] std::io::Error),
    #[error("`cargo {args}` failed: {status}")]
    Failed {
        args: String,
        status: std::process::ExitStatus,
    },
    #[error("cargo printed unexpected JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The workspace's one feature set for tests and the dev binaries: the API server's test fault
/// switch, which the e2e suite's broken releases turn on. Release builds never pass it.
pub const TEST_FEATURES: [&str; 2] = ["--features", "fp-api-server/test-faults"];

pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args).current_dir(paths::workspace_root());
    cmd
}

/// Names of `package`'s targets of `kind` ("bin", "test", …) from `cargo metadata`.
pub fn targets(package: &str, kind: &str) -> Result<Vec<String>, CargoError> {
    let out = command(&["metadata", "--no-deps", "--format-version", "1"])
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(CargoError::Failed {
            args: "metadata".into(),
            status: out.status,
        });
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(targets_in_metadata(&meta, package, kind))
}

pub fn targets_in_metadata(meta: &serde_json::Value, package: &str, kind: &str) -> Vec<String> {
    let packages = meta["packages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    packages
        .iter()
        .filter(|p| p["name"] == package)
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|ks| ks.iter().any(|k| k == kind))
        })
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

/// Executables from `cargo build --message-format=json` output lines, by target name.
pub fn executables_in_messages(lines: &str) -> BTreeMap<String, PathBuf> {
    lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter_map(|m| {
            let exe = m["executable"].as_str()?;
            Some((
                m["target"]["name"].as_str()?.to_string(),
                PathBuf::from(exe),
            ))
        })
        .collect()
}

/// Builds every binary of the workspace (one feature set with the test builds, so nothing is
/// compiled twice) and returns their paths by name.
pub fn build_workspace_bins() -> Result<BTreeMap<String, PathBuf>, CargoError> {
    build_bins(&["--workspace", TEST_FEATURES[0], TEST_FEATURES[1]])
}

/// `cargo build --bins` with `selection` (e.g. `--release -p fp-api-server`); paths by name.
pub fn build_bins(selection: &[&str]) -> Result<BTreeMap<String, PathBuf>, CargoError> {
    let mut args = vec!["build"];
    args.extend_from_slice(selection);
    args.extend(["--bins", "--message-format=json-render-diagnostics"]);
    eprintln!("==> cargo {}", args.join(" "));
    let mut child = command(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut text = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            // Compiler diagnostics are rendered to stderr; keep only the JSON records.
            text.push_str(&line);
            text.push('\n');
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(CargoError::Failed {
            args: args.join(" "),
            status,
        });
    }
    Ok(executables_in_messages(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_targets_by_package_and_kind() {
        let meta = serde_json::json!({"packages": [
            {"name": "fp-e2e", "targets": [
                {"name": "fp_e2e", "kind": ["lib"]},
                {"name": "fp-e2e-tool", "kind": ["bin"]},
                {"name": "cluster", "kind": ["test"]}]},
            {"name": "other", "targets": [{"name": "x", "kind": ["test"]}]}
        ]});
        assert_eq!(
            targets_in_metadata(&meta, "fp-e2e", "test"),
            vec!["cluster"]
        );
        assert_eq!(
            targets_in_metadata(&meta, "fp-e2e", "bin"),
            vec!["fp-e2e-tool"]
        );
        assert!(targets_in_metadata(&meta, "missing", "bin").is_empty());
    }

    #[test]
    fn collects_executables_from_build_messages() {
        let lines = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"fp_e2e"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"fp-operator"},"executable":"/t/debug/fp-operator"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n",
            "not json\n",
        );
        let exes = executables_in_messages(lines);
        assert_eq!(exes.len(), 1);
        assert_eq!(exes["fp-operator"], PathBuf::from("/t/debug/fp-operator"));
    }
}
