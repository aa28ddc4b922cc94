//! `FootballPredictionStatus`: what the operator observed. Fields for the rollout state machine and the
//! backups are here from the start so later stages fill them without changing the shape.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a FootballPrediction.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FootballPredictionStatus {
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// One-word summary: Healthy, Progressing, Paused or Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Ready, Progressing, Degraded and, when configured, CertificateReady, MonitoringReady and BackupHealthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The color serving traffic through Service `<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<ColorStatus>,
    /// The other color, behind Service `<name>-preview`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<ColorStatus>,
    /// State of the blue-green rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// The most recent automatic or manual rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rollback: Option<RollbackRecord>,
    /// Promoted releases, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub history: Vec<HistoryEntry>,
    /// Results of scheduled backups and restore drills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,
    /// The TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateStatus>,
    /// In-cluster URLs of the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
}

/// One-word summary of the platform.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    Healthy,
    Progressing,
    Paused,
    Degraded,
}

/// The two API colors.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    /// The other color.
    pub fn other(self) -> Self {
        match self {
            Self::Blue => Self::Green,
            Self::Green => Self::Blue,
        }
    }

    /// Lower-case name used in object names and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blue => "blue",
            Self::Green => "green",
        }
    }
}

/// One color's Deployment as observed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ColorStatus {
    pub color: Color,
    /// Release the color runs; empty when it never ran one.
    #[serde(default)]
    pub version: String,
    /// Ready pods of the color.
    #[serde(default)]
    pub ready_replicas: i32,
}

/// State of the blue-green rollout (driven by the rollout state machine).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Current stage.
    #[serde(default)]
    pub stage: RolloutStage,
    /// Release being rolled out; empty when idle.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_version: String,
    /// Color receiving the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_color: Option<Color>,
    /// When the rollout started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// Analysis results so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<CheckTally>,
}

/// Stages of a rollout.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum RolloutStage {
    #[default]
    Idle,
    Migrating,
    Previewing,
    Analysing,
    Promoting,
    PostPromotion,
    ScalingDown,
    Aborted,
}

/// Analysis results of a rollout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckTally {
    #[serde(default)]
    pub passed: i32,
    #[serde(default)]
    pub failed: i32,
    /// What the last failing check observed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_error: String,
}

/// A rollback: when, between which releases, and why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRecord {
    pub at: Time,
    pub from_version: String,
    pub to_version: String,
    /// CamelCase reason, e.g. AnalysisFailed.
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A promoted release.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub version: String,
    pub promoted_at: Time,
}

/// Results of backups and restore drills.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_at: Option<Time>,
    /// Passed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verify_result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
}

/// The TLS certificate as cert-manager reports it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
}

/// In-cluster URLs of the API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// URL of Service `<name>` (the active color).
    pub active: String,
    /// URL of Service `<name>-preview`.
    pub preview: String,
}
