//! prometheus-operator `PrometheusRule` `<name>`: the alerts of one FootballPrediction (the list
//! and their meaning: docs/ops/monitoring.md), each with a `severity`, the user's routing labels,
//! `summary`, `description` and a `runbook_url`. Applied only when the CRD is served. A minimal
//! typed view of the kind.

mod alerts;

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::common::{Component, child_meta};
use crate::crd::{Alert, PrometheusRuleSpec as RuleSettings};
use crate::validate::Validated;

pub use alerts::Draft;

pub const CRD: &str = "prometheusrules.monitoring.coreos.com";

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "PrometheusRule",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
pub struct PrometheusRuleSpec {
    pub groups: Vec<RuleGroup>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<AlertRule>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct AlertRule {
    pub alert: String,
    pub expr: String,
    #[serde(rename = "for")]
    pub for_: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The alert rules, or `None` when disabled.
pub fn prometheus_rule(v: &Validated) -> Option<PrometheusRule> {
    let settings = &v.spec.monitoring.prometheus_rule;
    if !settings.enabled {
        return None;
    }
    let rules = alerts::drafts(v)
        .into_iter()
        .filter_map(|draft| finish(draft, settings))
        .collect();
    let mut rule = PrometheusRule::new(
        &v.names.prometheus_rule(),
        PrometheusRuleSpec {
            groups: vec![RuleGroup {
                name: format!("footballprediction-{}-{}", v.namespace, v.name),
                rules,
            }],
        },
    );
    rule.metadata = child_meta(v, v.names.prometheus_rule(), Component::Monitoring);
    merge_extra_labels(&mut rule.metadata.labels, &settings.labels);
    Some(rule)
}

/// A draft with the user's override, routing labels and runbook link; `None` when turned off.
fn finish(draft: Draft, settings: &RuleSettings) -> Option<AlertRule> {
    let change = settings.override_of(draft.alert);
    if change.is_some_and(|c| !c.enabled) {
        return None;
    }
    let severity = change.and_then(|c| c.severity).unwrap_or(draft.severity);
    let for_ = change
        .and_then(|c| c.for_.clone())
        .unwrap_or_else(|| draft.for_.to_owned());
    let mut labels = settings.alert_labels.clone();
    labels.insert("severity".into(), severity.as_str().into());
    Some(AlertRule {
        alert: draft.alert.name().into(),
        expr: draft.expr,
        for_,
        labels,
        annotations: BTreeMap::from([
            ("summary".to_owned(), draft.summary),
            ("description".to_owned(), draft.description),
            (
                "runbook_url".to_owned(),
                runbook_url(&settings.runbook_base_url, draft.alert),
            ),
        ]),
    })
}

fn runbook_url(base: &str, alert: Alert) -> String {
    format!("{}/{}.md", base.trim_end_matches('/'), alert.name())
}

/// Adds user labels (e.g. the one Prometheus selects by) without letting them replace ours.
pub fn merge_extra_labels(
    labels: &mut Option<BTreeMap<String, String>>,
    extra: &BTreeMap<String, String>,
) {
    let ours = labels.take().unwrap_or_default();
    let mut merged = extra.clone();
    merged.extend(ours);
    *labels = Some(merged);
}

/// The rule groups as a Prometheus rule file (`promtool check rules` reads this; so does a
/// Prometheus without the operator).
pub fn rule_file(rule: &PrometheusRule) -> Result<String, serde_norway::Error> {
    serde_norway::to_string(&rule.spec)
}

#[cfg(test)]
mod tests;
