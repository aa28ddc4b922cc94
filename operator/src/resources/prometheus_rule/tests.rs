use super::*;
use crate::test_support::validated;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn rules_for(spec: Value) -> Vec<Value> {
    let value = serde_json::to_value(prometheus_rule(&validated(spec)).unwrap()).unwrap();
    value["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .clone()
}

fn by_name(rules: &[Value], alert: Alert) -> Value {
    rules
        .iter()
        .find(|r| r["alert"] == alert.name())
        .unwrap_or_else(|| panic!("no {}", alert.name()))
        .clone()
}

fn names(rules: &[Value]) -> Vec<String> {
    rules
        .iter()
        .map(|r| r["alert"].as_str().unwrap().to_owned())
        .collect()
}

/// TLS, backups on a claim: every alert applies.
fn everything() -> Value {
    json!({"version": "1",
        "ingress": {"host": "api.football.example"},
        "tls": {"issuerRef": {"name": "le"}, "dnsNames": ["api.football.example"]},
        "backup": {"schedule": "0 3 * * *", "frequentSchedule": "0 */6 * * *",
                   "storage": {"pvc": {"size": "20Gi"}}}})
}

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
    let rules = value["spec"]["groups"][0]["rules"].as_array().unwrap();
    let errors = by_name(rules, Alert::HighErrorRatio);
    assert_eq!(
        errors["expr"],
        "sum(rate(http_requests_total{namespace=\"football\",service=\"prod\",status=~\"5..\"}[5m])) / sum(rate(http_requests_total{namespace=\"football\",service=\"prod\"}[5m])) > 0.02"
    );
    assert_eq!(errors["for"], "5m");
    assert_eq!(errors["labels"], json!({"severity": "critical"}));
    assert_eq!(
        errors["annotations"]["runbook_url"],
        "https://github.com/footballprediction/footballprediction/blob/main/docs/ops/runbooks/FootballPredictionHighErrorRatio.md"
    );
    assert!(
        by_name(rules, Alert::HighLatency)["expr"]
            .as_str()
            .unwrap()
            .ends_with("> 0.5")
    );
    assert_eq!(
        value["spec"]["groups"][0]["name"],
        "footballprediction-football-prod"
    );
}

#[test]
fn a_full_manifest_has_every_alert_once_with_summary_description_and_runbook() {
    let rules = rules_for(everything());
    let mut expected: Vec<String> = Alert::ALL.iter().map(|a| a.name().to_owned()).collect();
    let mut got = names(&rules);
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    for rule in &rules {
        for key in ["summary", "description", "runbook_url"] {
            assert!(
                !rule["annotations"][key]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty(),
                "{} has no {key}",
                rule["alert"]
            );
        }
        assert!(rule["labels"]["severity"].is_string());
    }
}

#[test]
fn optional_parts_bring_their_alerts() {
    let plain = names(&rules_for(json!({"version": "1"})));
    for absent in [
        Alert::CertificateExpiring,
        Alert::BackupFailed,
        Alert::BackupVolumeFull,
    ] {
        assert!(!plain.contains(&absent.name().to_owned()), "{absent:?}");
    }
    // Backups to S3 only: no volume to fill.
    let s3 = names(&rules_for(
        json!({"version": "1", "backup": {"storage": {"s3": {
        "bucket": "b", "endpoint": "https://s3.example", "credentialsSecretRef": {"name": "s3"}}}}}),
    ));
    assert!(s3.contains(&Alert::BackupFailed.name().to_owned()));
    assert!(!s3.contains(&Alert::BackupVolumeFull.name().to_owned()));
}

#[test]
fn overrides_turn_off_retime_and_reclassify_and_labels_route() {
    let rules = rules_for(json!({"version": "1", "monitoring": {"prometheusRule": {
        "alertLabels": {"team": "payments"},
        "runbookBaseUrl": "https://wiki.example/runbooks/",
        "overrides": [
            {"alert": "FootballPredictionCacheHitRatioLow", "enabled": false},
            {"alert": "FootballPredictionHighErrorRatio", "for": "1m", "severity": "warning"}]}}}));
    assert!(!names(&rules).contains(&Alert::CacheHitRatioLow.name().to_owned()));
    let errors = by_name(&rules, Alert::HighErrorRatio);
    assert_eq!(errors["for"], "1m");
    assert_eq!(
        errors["labels"],
        json!({"severity": "warning", "team": "payments"})
    );
    assert_eq!(
        errors["annotations"]["runbook_url"],
        "https://wiki.example/runbooks/FootballPredictionHighErrorRatio.md"
    );
    assert_eq!(
        by_name(&rules, Alert::Down)["labels"],
        json!({"severity": "critical", "team": "payments"})
    );
}

#[test]
fn backups_add_failure_staleness_drill_and_volume_alerts() {
    let rules = rules_for(everything());
    assert_eq!(
        by_name(&rules, Alert::BackupFailed)["expr"],
        "max(fp_backup_last_failure_timestamp_seconds{fp_namespace=\"football\",fp_name=\"prod\"}) > max(fp_backup_last_success_timestamp_seconds{fp_namespace=\"football\",fp_name=\"prod\"} or vector(0))"
    );
    // Every 6 hours: overdue after 9 hours.
    assert_eq!(
        by_name(&rules, Alert::BackupStale)["expr"],
        "time() - max(fp_backup_last_success_timestamp_seconds{fp_namespace=\"football\",fp_name=\"prod\"}) > 32400"
    );
    // The default weekly drill: overdue after 10.5 days.
    assert!(
        by_name(&rules, Alert::RestoreDrillStale)["expr"]
            .as_str()
            .unwrap()
            .ends_with("> 907200")
    );
    // A created 20Gi claim: the kept bytes against its size, or the kubelet's numbers.
    assert_eq!(
        by_name(&rules, Alert::BackupVolumeFull)["expr"],
        "1 - max(fp_backup_bytes{fp_namespace=\"football\",fp_name=\"prod\"}) / 21474836480 < 0.1 or min(min_over_time(kubelet_volume_stats_available_bytes{namespace=\"football\",persistentvolumeclaim=\"prod-backups\"}[1d]) / max_over_time(kubelet_volume_stats_capacity_bytes{namespace=\"football\",persistentvolumeclaim=\"prod-backups\"}[1d])) < 0.1"
    );
    // An existing claim's size is not the operator's to know.
    let existing = rules_for(
        json!({"version": "1", "backup": {"storage": {"pvc": {"existingClaim": "nas"}}}}),
    );
    assert!(
        by_name(&existing, Alert::BackupVolumeFull)["expr"]
            .as_str()
            .unwrap()
            .starts_with("min(min_over_time(kubelet_volume_stats_available_bytes{namespace=\"football\",persistentvolumeclaim=\"nas\"}[1d])")
    );

    let suspended = names(&rules_of_suspended());
    assert!(!suspended.contains(&Alert::BackupStale.name().to_owned()));
}

fn rules_of_suspended() -> Vec<Value> {
    rules_for(json!({"version": "1", "backup": {"suspend": true}}))
}

#[test]
fn the_certificate_alert_counts_days_in_seconds() {
    let rules = rules_for(everything());
    assert_eq!(
        by_name(&rules, Alert::CertificateExpiring)["expr"],
        "certmanager_certificate_expiration_timestamp_seconds{namespace=\"football\",name=\"prod\"} - time() < 1209600"
    );
}

#[test]
fn the_rule_file_is_the_groups_alone() {
    let rule = prometheus_rule(&validated(json!({"version": "1"}))).unwrap();
    let text = rule_file(&rule).unwrap();
    assert!(text.starts_with("groups:\n"), "{text}");
    assert!(!text.contains("apiVersion"));
}

#[test]
fn can_be_disabled() {
    let v =
        validated(json!({"version": "1", "monitoring": {"prometheusRule": {"enabled": false}}}));
    assert!(prometheus_rule(&v).is_none());
}

/// The promtool tests (`cargo xtask alerts`) judge every alert: each one fires in its own case
/// and stays quiet on the healthy platform.
#[test]
fn every_alert_has_promtool_cases() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/alerts/footballprediction.test.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    for alert in Alert::ALL {
        let quiet = format!("alertname: {}, exp_alerts: []", alert.name());
        let fires = format!(
            "alertname: {}\n        exp_alerts:\n          - ",
            alert.name()
        );
        assert!(text.contains(&quiet), "no quiet case for {}", alert.name());
        assert!(text.contains(&fires), "no firing case for {}", alert.name());
    }
}

/// Every `runbook_url` lands on a page that says how to confirm, mitigate and resolve (the
/// chart's two operator alerts included).
#[test]
fn every_alert_has_a_runbook() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ops/runbooks");
    let chart_alerts = [
        "FootballPredictionOperatorDown",
        "FootballPredictionOperatorReconcileErrors",
    ];
    let names = Alert::ALL.iter().map(|a| a.name()).chain(chart_alerts);
    for name in names {
        let page = std::fs::read_to_string(format!("{dir}/{name}.md"))
            .unwrap_or_else(|e| panic!("runbook of {name}: {e}"));
        assert!(page.starts_with(&format!("# {name}\n")), "{name}");
        for section in ["## Confirm", "## Mitigate", "## Resolve"] {
            assert!(page.contains(section), "{name} has no {section}");
        }
    }
}
