//! The packaged chart: a copy of `charts/fp-operator` whose `image.digest` is the operator
//! image's digest, linted and packed by helm.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// `values.yaml` with the release's pins: the top-level `image:` block's `digest:` line set to
/// the operator's digest, and `apiImage:`'s `pinned:` line to the API image by digest
/// (`repository:tag@sha256:…`); every other byte unchanged.
pub fn pin_release(
    values_yaml: &str,
    operator_digest: &str,
    api_image: &str,
) -> anyhow::Result<String> {
    if !super::pinned::is_sha256_digest(operator_digest) {
        bail!("{operator_digest:?} is not a sha256 digest");
    }
    match api_image.split_once('@') {
        Some((_, digest)) if super::pinned::is_sha256_digest(digest) => {}
        _ => bail!("{api_image:?} is not an image reference with a sha256 digest"),
    }
    let pinned = set_in_block(values_yaml, "image", "digest", operator_digest)?;
    set_in_block(&pinned, "apiImage", "pinned", api_image)
}

/// `values_yaml` with the line `  <key>: …` of the top-level `<block>:` set to `"<value>"`.
/// Fails unless that block holds exactly one such line (the chart changed shape: the packaging
/// must be looked at, not guessed).
fn set_in_block(values_yaml: &str, block: &str, key: &str, value: &str) -> anyhow::Result<String> {
    let header = format!("{block}:");
    let field = format!("  {key}:");
    let mut in_block = false;
    let mut replaced = 0;
    let mut out = String::with_capacity(values_yaml.len() + value.len());
    for line in values_yaml.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        let top_level =
            !content.is_empty() && !content.starts_with([' ', '\t']) && !content.starts_with('#');
        if top_level {
            in_block = content.trim_end() == header;
        }
        if in_block && content.starts_with(&field) {
            out.push_str(&format!("{field} \"{value}\""));
            out.push_str(&line[content.len()..]);
            replaced += 1;
        } else {
            out.push_str(line);
        }
    }
    match replaced {
        1 => Ok(out),
        0 => bail!("values.yaml has no `{key}:` under `{block}:`"),
        n => bail!("values.yaml has {n} `{key}:` lines under `{block}:`"),
    }
}

/// The `version:` of a Chart.yaml (helm names the package `<name>-<version>.tgz`).
pub fn chart_version(chart_yaml: &str) -> Option<&str> {
    chart_yaml
        .lines()
        .find_map(|l| l.strip_prefix("version:"))
        .map(|v| v.trim().trim_matches('"'))
        .filter(|v| !v.is_empty())
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .with_context(|| format!("reading {}", from.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// helm with its configuration, cache and data homes inside `work` (nothing read from or
/// written to the user's).
fn helm(helm: &Path, work: &Path) -> Command {
    let mut cmd = Command::new(helm);
    // Its chatter is progress, like the other steps' (stdout is the dist's summary).
    cmd.stdout(std::process::Stdio::from(std::io::stderr()))
        .env("HELM_CONFIG_HOME", work.join("helm-config"))
        .env("HELM_CACHE_HOME", work.join("helm-cache"))
        .env("HELM_DATA_HOME", work.join("helm-data"));
    cmd
}

/// Copies the chart to `work`, pins the release's images (when given), runs `helm lint` and
/// `helm package` into `destination`; returns the package's path.
pub fn package(
    helm_binary: &Path,
    chart_source: &Path,
    pinned: Option<&super::pinned::Pinned>,
    work: &Path,
    destination: &Path,
) -> anyhow::Result<PathBuf> {
    let name = chart_source
        .file_name()
        .context("the chart directory has no name")?;
    let chart = work.join(name);
    copy_tree(chart_source, &chart)?;
    if let Some(pinned) = pinned {
        let values = chart.join("values.yaml");
        let text = std::fs::read_to_string(&values)
            .with_context(|| format!("reading {}", values.display()))?;
        let pinned = pin_release(&text, &pinned.operator_digest, &pinned.api_image())?;
        std::fs::write(&values, pinned).with_context(|| format!("writing {}", values.display()))?;
    }
    let chart_yaml = std::fs::read_to_string(chart.join("Chart.yaml"))
        .with_context(|| format!("reading {}/Chart.yaml", chart.display()))?;
    let version = chart_version(&chart_yaml).context("Chart.yaml has no version")?;
    crate::steps::run(
        helm(helm_binary, work)
            .arg("lint")
            .arg("--strict")
            .arg(&chart),
    )?;
    crate::steps::run(
        helm(helm_binary, work)
            .arg("package")
            .arg(&chart)
            .arg("--destination")
            .arg(destination),
    )?;
    let packaged = destination.join(format!("{}-{version}.tgz", name.to_string_lossy()));
    if !packaged.is_file() {
        bail!("helm package wrote no {}", packaged.display());
    }
    Ok(packaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    const API: &str = "footballprediction/fp-api-server:0.1.0@sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn pins_only_the_operator_digest_and_the_api_image() {
        let values = "# top\nimage:\n  repository: r\n  # -- a digest\n  digest: \"\"\n  pullPolicy: IfNotPresent\n\napiImage:\n  pinned: \"\"\nother:\n  digest: \"\"\n  pinned: \"\"\n";
        assert_eq!(
            pin_release(values, DIGEST, API).unwrap(),
            format!(
                "# top\nimage:\n  repository: r\n  # -- a digest\n  digest: \"{DIGEST}\"\n  pullPolicy: IfNotPresent\n\napiImage:\n  pinned: \"{API}\"\nother:\n  digest: \"\"\n  pinned: \"\"\n"
            )
        );
    }

    #[test]
    fn pins_the_real_charts_values() {
        let path = crate::paths::workspace_root().join("charts/fp-operator/values.yaml");
        let values = std::fs::read_to_string(path).unwrap();
        let pinned = pin_release(&values, DIGEST, API).unwrap();
        let changed: Vec<(&str, &str)> = values
            .lines()
            .zip(pinned.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            vec![
                ("  digest: \"\"", format!("  digest: \"{DIGEST}\"").as_str()),
                ("  pinned: \"\"", format!("  pinned: \"{API}\"").as_str()),
            ]
        );
        assert_eq!(values.lines().count(), pinned.lines().count());
    }

    #[test]
    fn refuses_a_chart_without_exactly_one_line_to_pin_or_a_bad_digest() {
        let e = pin_release(
            "image:\n  repository: r\nother:\n  digest: \"\"\n",
            DIGEST,
            API,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no `digest:` under `image:`"), "{e}");
        let e = pin_release("image:\n  digest: \"\"\n  digest: x\n", DIGEST, API)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 `digest:` lines"), "{e}");
        let e = pin_release("image:\n  digest: \"\"\n", DIGEST, API)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `pinned:` under `apiImage:`"), "{e}");
        let ok = "image:\n  digest: \"\"\napiImage:\n  pinned: \"\"\n";
        assert!(pin_release(ok, "latest", API).is_err());
        assert!(pin_release(ok, DIGEST, "footballprediction/fp-api-server:0.1.0").is_err());
        assert!(
            pin_release(
                ok,
                DIGEST,
                "footballprediction/fp-api-server:0.1.0@sha256:ab"
            )
            .is_err()
        );
    }

    #[test]
    fn reads_the_chart_version() {
        assert_eq!(
            chart_version("apiVersion: v2\nname: x\nversion: 0.1.0\nappVersion: \"0.1.0\"\n"),
            Some("0.1.0")
        );
        assert_eq!(chart_version("name: x\n"), None);
    }
}
