//! prometheus-operator `PrometheusRule` `<name>`: alerts on the active Service's error ratio, latency
//! and availability, and (with `spec.backup`) on failed, overdue and unproven backups from the
//! operator's own `fp_backup_*` series (applied only when the CRD is served). A minimal typed view
//! of the kind.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::common::{Component, child_meta};
use crate::crd::BackupSpec;
use crate::cron::{expected_interval, longest_interval};
use crate::validate::Validated;

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

fn alert(
    name: &str,
    expr: String,
    for_: &str,
    severity: &str,
    summary: String,
    description: String,
) -> AlertRule {
    AlertRule {
        alert: name.into(),
        expr,
        for_: for_.into(),
        labels: BTreeMap::from([("severity".to_owned(), severity.to_owned())]),
        annotations: BTreeMap::from([
            ("summary".to_owned(), summary),
            ("description".to_owned(), description),
        ]),
    }
}

/// The alert rules, or `None` when disabled.
pub fn prometheus_rule(v: &Validated) -> Option<PrometheusRule> {
    let spec = &v.spec.monitoring.prometheus_rule;
    if !spec.enabled {
        return None;
    }
    let target = format!(
        "namespace=\"{}\",service=\"{}\"",
        v.namespace,
        v.names.active_service()
    );
    let who = format!("FootballPrediction {}/{}", v.namespace, v.name);
    let t = &spec.thresholds;
    let rules = vec![
        alert(
            "FootballPredictionHighErrorRatio",
            format!(
                "sum(rate(http_requests_total{{{target},status=~\"5..\"}}[5m])) / sum(rate(http_requests_total{{{target}}}[5m])) > {}",
                t.error_ratio
            ),
            "5m",
            "critical",
            format!("{who}: more than {}% of requests fail", t.error_ratio * 100.0),
            "The share of 5xx answers of the active API pods is above the threshold; check the last rollout (kubectl fp status) and the API logs.".into(),
        ),
        alert(
            "FootballPredictionHighLatency",
            format!(
                "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{target}}}[5m]))) > {}",
                t.p95_latency_seconds
            ),
            "10m",
            "warning",
            format!("{who}: 95th percentile latency above {}s", t.p95_latency_seconds),
            "Requests are slow; check database latency, cache hit ratio (fp_cache_requests_total) and CPU throttling.".into(),
        ),
        alert(
            "FootballPredictionDown",
            format!("sum(up{{{target}}}) == 0 or absent(up{{{target}}})"),
            "2m",
            "critical",
            format!("{who}: no API pod is being scraped"),
            "No pod behind the active Service answers /metrics; the API is likely down.".into(),
        ),
    ];
    let mut rules = rules;
    if let Some(backup) = v.spec.backup.as_ref().filter(|b| !b.suspend) {
        rules.extend(backup_alerts(v, backup, &who));
    }
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
    merge_extra_labels(&mut rule.metadata.labels, &spec.labels);
    Some(rule)
}

/// A fixed Monday: the rendered rules depend on the schedules only, never on when they are built.
const INTERVAL_ANCHOR: &str = "2026-01-05T00:00:00Z";

/// 1.5× the longest gap between runs, in whole seconds (the BackupHealthy rule, for Prometheus).
fn overdue_after(schedule_interval: Option<std::time::Duration>) -> Option<u64> {
    schedule_interval.map(|i| i.mul_f64(1.5).as_secs())
}

fn backup_alerts(v: &Validated, backup: &BackupSpec, who: &str) -> Vec<AlertRule> {
    let anchor = INTERVAL_ANCHOR.parse().unwrap_or_default();
    let selector = format!("fp_namespace=\"{}\",fp_name=\"{}\"", v.namespace, v.name);
    let mut rules = vec![alert(
        "FootballPredictionBackupFailed",
        format!("increase(fp_backup_failures_total{{{selector}}}[1h]) > 0"),
        "0m",
        "warning",
        format!("{who}: a backup failed"),
        "A backup Job failed; `kubectl get fp -o yaml` shows status.backup.lastFailureReason. See docs/ops/backup.md.".into(),
    )];
    if let Some(seconds) = overdue_after(expected_interval(backup, anchor)) {
        rules.push(alert(
            "FootballPredictionBackupStale",
            format!("time() - max(fp_backup_last_success_timestamp_seconds{{{selector}}}) > {seconds}"),
            "5m",
            "critical",
            format!("{who}: no successful backup for more than {seconds}s"),
            "The newest successful backup is older than 1.5 schedule intervals (BackupHealthy=False, BackupStale).".into(),
        ));
    }
    if let Some(seconds) = overdue_after(longest_interval(&backup.verify.schedule, anchor)) {
        rules.push(alert(
            "FootballPredictionRestoreDrillStale",
            format!("time() - max(fp_backup_last_verify_success_timestamp_seconds{{{selector}}}) > {seconds}"),
            "5m",
            "warning",
            format!("{who}: no passed restore drill for more than {seconds}s"),
            "The weekly restore drill has not passed recently: the backups are not proven restorable.".into(),
        ));
    }
    rules
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn alerts_use_the_thresholds_and_the_active_service() {
        let v = validated(json!({"version": "1", "monitoring": {"prometheusRule": {
            "labels": {"release": "kube-prometheus-stack", "app.kubernetes.io/instance": "hijack"},
            "thresholds": {"errorRatio": 0.02, "p95LatencySeconds": 0.5}}}}));
        let value = serde_json::to_value(prometheus_rule(&v).unwrap()).unwrap();
        assert_eq!(value["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(
            value["metadata"]["labels"]["release"],
            "kube-prometheus-stack"
        );
        assert_eq!(
            value["metadata"]["labels"]["app.kubernetes.io/instance"], "prod",
            "our labels win"
        );
        let rules = &value["spec"]["groups"][0]["rules"];
        assert_eq!(rules[0]["alert"], "FootballPredictionHighErrorRatio");
        assert_eq!(
            rules[0]["expr"],
            "sum(rate(http_requests_total{namespace=\"football\",service=\"prod\",status=~\"5..\"}[5m])) / sum(rate(http_requests_total{namespace=\"football\",service=\"prod\"}[5m])) > 0.02"
        );
        assert_eq!(rules[0]["for"], "5m");
        assert_eq!(rules[0]["labels"]["severity"], "critical");
        assert!(rules[1]["expr"].as_str().unwrap().ends_with("> 0.5"));
        assert_eq!(rules[2]["alert"], "FootballPredictionDown");
        assert_eq!(
            value["spec"]["groups"][0]["name"],
            "footballprediction-football-prod"
        );
    }

    #[test]
    fn backups_add_failure_staleness_and_drill_alerts() {
        let v = validated(json!({"version": "1", "backup": {
            "schedule": "0 3 * * *", "frequentSchedule": "0 */6 * * *"}}));
        let value = serde_json::to_value(prometheus_rule(&v).unwrap()).unwrap();
        let rules = value["spec"]["groups"][0]["rules"].as_array().unwrap();
        let by_name = |name: &str| rules.iter().find(|r| r["alert"] == name).unwrap().clone();
        assert_eq!(
            by_name("FootballPredictionBackupFailed")["expr"],
            "increase(fp_backup_failures_total{fp_namespace=\"football\",fp_name=\"prod\"}[1h]) > 0"
        );
        // Every 6 hours: overdue after 9 hours.
        assert_eq!(
            by_name("FootballPredictionBackupStale")["expr"],
            "time() - max(fp_backup_last_success_timestamp_seconds{fp_namespace=\"football\",fp_name=\"prod\"}) > 32400"
        );
        // The default weekly drill: overdue after 10.5 days.
        assert!(
            by_name("FootballPredictionRestoreDrillStale")["expr"]
                .as_str()
                .unwrap()
                .ends_with("> 907200")
        );

        let suspended = validated(json!({"version": "1", "backup": {"suspend": true}}));
        let value = serde_json::to_value(prometheus_rule(&suspended).unwrap()).unwrap();
        assert_eq!(
            value["spec"]["groups"][0]["rules"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn can_be_disabled() {
        let v = validated(
            json!({"version": "1", "monitoring": {"prometheusRule": {"enabled": false}}}),
        );
        assert!(prometheus_rule(&v).is_none());
    }
}
