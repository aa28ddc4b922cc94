//! `spec.monitoring`: the PrometheusRule (which alerts, their thresholds, `for` durations,
//! severities and routing labels), the ServiceMonitor and the Grafana dashboards.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::DURATION_PATTERN;

/// PrometheusRule, ServiceMonitor and Grafana dashboards.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Alert rules (prometheus-operator PrometheusRule).
    #[serde(default)]
    pub prometheus_rule: PrometheusRuleSpec,
    /// Scrape configuration (prometheus-operator ServiceMonitor).
    #[serde(default)]
    pub service_monitor: ServiceMonitorSpec,
    /// Grafana dashboard ConfigMap (label `grafana_dashboard`).
    #[serde(default)]
    pub dashboards: DashboardsSpec,
}

/// Where the runbooks of the alerts live unless `runbookBaseUrl` says otherwise.
pub const DEFAULT_RUNBOOK_BASE_URL: &str =
    "https://github.com/footballprediction/footballprediction/blob/main/docs/ops/runbooks";

/// Alert rules.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRuleSpec {
    /// Create the PrometheusRule; default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Extra labels of the PrometheusRule object, e.g. the one your Prometheus selects rules by.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra labels on every alert, for Alertmanager routing (e.g. `team: payments`); they
    /// cannot replace `severity`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alert_labels: BTreeMap<String, String>,
    /// Base of each alert's `runbook_url` annotation (`<base>/<AlertName>.md`); default the
    /// project's docs/ops/runbooks.
    #[serde(default = "runbook_base_url")]
    #[schemars(length(min = 1, max = 1024), pattern(r"^https?://[^\s]+$"))]
    pub runbook_base_url: String,
    /// Alert thresholds.
    #[serde(default)]
    pub thresholds: AlertThresholds,
    /// Per-alert changes: turn one off, or change how long it must hold (`for`) or its severity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub overrides: Vec<AlertOverride>,
}

impl Default for PrometheusRuleSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            labels: BTreeMap::new(),
            alert_labels: BTreeMap::new(),
            runbook_base_url: runbook_base_url(),
            thresholds: AlertThresholds::default(),
            overrides: Vec::new(),
        }
    }
}

impl PrometheusRuleSpec {
    /// The override of `alert`, if any (validation refuses two for one alert).
    pub fn override_of(&self, alert: Alert) -> Option<&AlertOverride> {
        self.overrides.iter().find(|o| o.alert == alert)
    }
}

/// Alert thresholds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertThresholds {
    /// Share of 5xx responses over 5 minutes that fires an alert; default 0.05.
    #[serde(default = "error_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub error_ratio: f64,
    /// 95th percentile latency in seconds that fires an alert; default 0.2.
    #[serde(default = "p95_latency")]
    #[schemars(range(min = 0.001, max = 600.0))]
    pub p95_latency_seconds: f64,
    /// Share of the database pool in use (per pod) that counts as saturated; default 0.9.
    #[serde(default = "pool_saturation")]
    #[schemars(range(min = 0.1, max = 1.0))]
    pub pool_saturation: f64,
    /// Cache hit ratio over 15 minutes below which an alert fires; default 0.8.
    #[serde(default = "cache_hit_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub cache_hit_ratio: f64,
    /// Share of the backup volume still free below which an alert fires; default 0.1.
    #[serde(default = "volume_free_ratio")]
    #[schemars(range(min = 0.01, max = 0.9))]
    pub backup_volume_free_ratio: f64,
    /// Days before the TLS certificate expires when an alert fires; default 14.
    #[serde(default = "certificate_expiry_days")]
    #[schemars(range(min = 1, max = 365))]
    pub certificate_expiry_days: i32,
    /// A rollout still under way after this many minutes counts as stuck; default 60.
    #[serde(default = "rollout_stuck_minutes")]
    #[schemars(range(min = 5, max = 10080))]
    pub rollout_stuck_minutes: i32,
}

impl Default for AlertThresholds {
    fn default() -> Self {
        Self {
            error_ratio: error_ratio(),
            p95_latency_seconds: p95_latency(),
            pool_saturation: pool_saturation(),
            cache_hit_ratio: cache_hit_ratio(),
            backup_volume_free_ratio: volume_free_ratio(),
            certificate_expiry_days: certificate_expiry_days(),
            rollout_stuck_minutes: rollout_stuck_minutes(),
        }
    }
}

/// Changes to one alert.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertOverride {
    /// The alert.
    pub alert: Alert,
    /// Generate the alert; default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long the condition must hold before the alert fires, e.g. `1m` (Prometheus `for`).
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub for_: Option<String>,
    /// Severity label instead of the alert's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// The `severity` label of an alert.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::Warning => "warning",
            Self::Info => "info",
        }
    }
}

/// The alerts the operator generates for one FootballPrediction (docs/ops/monitoring.md).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum Alert {
    #[serde(rename = "FootballPredictionHighErrorRatio")]
    HighErrorRatio,
    #[serde(rename = "FootballPredictionHighLatency")]
    HighLatency,
    #[serde(rename = "FootballPredictionDown")]
    Down,
    #[serde(rename = "FootballPredictionReplicasUnavailable")]
    ReplicasUnavailable,
    #[serde(rename = "FootballPredictionDatabaseNotReady")]
    DatabaseNotReady,
    #[serde(rename = "FootballPredictionDatabasePoolSaturated")]
    DatabasePoolSaturated,
    #[serde(rename = "FootballPredictionDatabaseAcquireTimeouts")]
    DatabaseAcquireTimeouts,
    #[serde(rename = "FootballPredictionCacheHitRatioLow")]
    CacheHitRatioLow,
    #[serde(rename = "FootballPredictionCertificateExpiring")]
    CertificateExpiring,
    #[serde(rename = "FootballPredictionRolledBack")]
    RolledBack,
    #[serde(rename = "FootballPredictionRolloutStuck")]
    RolloutStuck,
    #[serde(rename = "FootballPredictionBackupFailed")]
    BackupFailed,
    #[serde(rename = "FootballPredictionBackupStale")]
    BackupStale,
    #[serde(rename = "FootballPredictionBackupVolumeFull")]
    BackupVolumeFull,
    #[serde(rename = "FootballPredictionRestoreDrillFailed")]
    RestoreDrillFailed,
    #[serde(rename = "FootballPredictionRestoreDrillStale")]
    RestoreDrillStale,
    #[serde(rename = "FootballPredictionModelNotRefitted")]
    ModelNotRefitted,
    #[serde(rename = "FootballPredictionModelWorseThanConstant")]
    ModelWorseThanConstant,
}

impl Alert {
    pub const ALL: [Alert; 18] = [
        Self::HighErrorRatio,
        Self::HighLatency,
        Self::Down,
        Self::ReplicasUnavailable,
        Self::DatabaseNotReady,
        Self::DatabasePoolSaturated,
        Self::DatabaseAcquireTimeouts,
        Self::CacheHitRatioLow,
        Self::CertificateExpiring,
        Self::RolledBack,
        Self::RolloutStuck,
        Self::BackupFailed,
        Self::BackupStale,
        Self::BackupVolumeFull,
        Self::RestoreDrillFailed,
        Self::RestoreDrillStale,
        Self::ModelNotRefitted,
        Self::ModelWorseThanConstant,
    ];

    /// The alert's name in Prometheus and Alertmanager, and its runbook's file name.
    pub fn name(self) -> &'static str {
        match self {
            Self::HighErrorRatio => "FootballPredictionHighErrorRatio",
            Self::HighLatency => "FootballPredictionHighLatency",
            Self::Down => "FootballPredictionDown",
            Self::ReplicasUnavailable => "FootballPredictionReplicasUnavailable",
            Self::DatabaseNotReady => "FootballPredictionDatabaseNotReady",
            Self::DatabasePoolSaturated => "FootballPredictionDatabasePoolSaturated",
            Self::DatabaseAcquireTimeouts => "FootballPredictionDatabaseAcquireTimeouts",
            Self::CacheHitRatioLow => "FootballPredictionCacheHitRatioLow",
            Self::CertificateExpiring => "FootballPredictionCertificateExpiring",
            Self::RolledBack => "FootballPredictionRolledBack",
            Self::RolloutStuck => "FootballPredictionRolloutStuck",
            Self::BackupFailed => "FootballPredictionBackupFailed",
            Self::BackupStale => "FootballPredictionBackupStale",
            Self::BackupVolumeFull => "FootballPredictionBackupVolumeFull",
            Self::RestoreDrillFailed => "FootballPredictionRestoreDrillFailed",
            Self::RestoreDrillStale => "FootballPredictionRestoreDrillStale",
            Self::ModelNotRefitted => "FootballPredictionModelNotRefitted",
            Self::ModelWorseThanConstant => "FootballPredictionModelWorseThanConstant",
        }
    }
}

/// Scrape configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Create the ServiceMonitor; default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Scrape interval; default 30s.
    #[serde(default = "scrape_interval")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub interval: String,
    /// Extra labels, e.g. the one your Prometheus selects monitors by.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for ServiceMonitorSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: scrape_interval(),
            labels: BTreeMap::new(),
        }
    }
}

/// Grafana dashboards.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardsSpec {
    /// Create the dashboard ConfigMap; default true.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for DashboardsSpec {
    fn default() -> Self {
        Self { enabled: true }
    }
}

fn yes() -> bool {
    true
}
fn runbook_base_url() -> String {
    DEFAULT_RUNBOOK_BASE_URL.into()
}
fn error_ratio() -> f64 {
    0.05
}
fn p95_latency() -> f64 {
    0.2
}
fn pool_saturation() -> f64 {
    0.9
}
fn cache_hit_ratio() -> f64 {
    0.8
}
fn volume_free_ratio() -> f64 {
    0.1
}
fn certificate_expiry_days() -> i32 {
    14
}
fn rollout_stuck_minutes() -> i32 {
    60
}
fn scrape_interval() -> String {
    "30s".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alert_reads_back_from_its_name() {
        for alert in Alert::ALL {
            let parsed: Alert = serde_json::from_value(serde_json::json!(alert.name())).unwrap();
            assert_eq!(parsed, alert);
        }
        assert!(serde_json::from_value::<Alert>(serde_json::json!("HighErrorRatio")).is_err());
    }
}
