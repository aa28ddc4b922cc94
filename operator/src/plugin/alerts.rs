//! `kubectl fp alerts -f MANIFEST`: the alert rules the operator would generate for a manifest,
//! as a Prometheus rule file, without a cluster (check them with `promtool check rules`).

use crate::crd::FootballPrediction;
use crate::resources::prometheus_rule::{prometheus_rule, rule_file};
use crate::validate::{Settings, validate};

/// Why a manifest gives no rule file.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("{path}: not a FootballPrediction: {source}")]
    Parse {
        path: String,
        source: serde_norway::Error,
    },
    #[error("{path}: invalid spec:\n  {}", .errors.join("\n  "))]
    Invalid { path: String, errors: Vec<String> },
    #[error("{path}: spec.monitoring.prometheusRule.enabled is false: no alerts are generated")]
    Disabled { path: String },
    #[error("rendering the rule file: {0}")]
    Render(#[from] serde_norway::Error),
}

/// The rule file for the manifest `text` (read from `path`, named in errors). The namespace is
/// the manifest's, else `namespace`.
pub fn rule_file_for(path: &str, text: &str, namespace: &str) -> Result<String, AlertsError> {
    let mut fp: FootballPrediction =
        serde_norway::from_str(text).map_err(|source| AlertsError::Parse {
            path: path.to_owned(),
            source,
        })?;
    if fp.metadata.namespace.is_none() {
        fp.metadata.namespace = Some(namespace.to_owned());
    }
    // Validation wants what the API server assigns; the rules depend on neither.
    fp.metadata.uid.get_or_insert_with(|| "offline".to_owned());
    let v = validate(&fp, &Settings::default()).map_err(|errors| AlertsError::Invalid {
        path: path.to_owned(),
        errors: errors.iter().map(ToString::to_string).collect(),
    })?;
    let rule = prometheus_rule(&v).ok_or_else(|| AlertsError::Disabled {
        path: path.to_owned(),
    })?;
    Ok(rule_file(&rule)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "apiVersion: footballprediction.io/v1alpha1
kind: FootballPrediction
metadata: {name: prod}
spec: {version: '1.4.2'}
";

    #[test]
    fn renders_the_groups_in_the_given_namespace() {
        let text = rule_file_for("fp.yaml", MANIFEST, "football").unwrap();
        assert!(
            text.starts_with("groups:\n- name: footballprediction-football-prod\n"),
            "{text}"
        );
        assert!(text.contains("alert: FootballPredictionHighErrorRatio"));
    }

    #[test]
    fn bad_input_names_the_file_and_the_problem() {
        let error = rule_file_for("fp.yaml", "spec: [", "default").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("fp.yaml: not a FootballPrediction"),
            "{error}"
        );
        let long = MANIFEST.replace(
            "name: prod",
            "name: a-name-far-longer-than-thirty-six-characters",
        );
        let error = rule_file_for("fp.yaml", &long, "default").unwrap_err();
        assert!(
            error.to_string().contains("invalid spec:\n  metadata.name"),
            "{error}"
        );
        let off = MANIFEST.replace(
            "spec: {version: '1.4.2'}",
            "spec: {version: '1.4.2', monitoring: {prometheusRule: {enabled: false}}}",
        );
        let error = rule_file_for("fp.yaml", &off, "default").unwrap_err();
        assert!(matches!(error, AlertsError::Disabled { .. }));
    }
}
