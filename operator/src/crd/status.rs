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
    /// The other color, behind Service `<name>-preview`, and the release it last served: the
    /// color traffic returns to on a rollback while it still runs.
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

impl FootballPredictionStatus {
    /// The release `kubectl fp rollback` returns to from Idle: the newest promoted release of
    /// another version than the one serving. Configuration-only rollouts promote the same version
    /// again, so the entry right below the newest is not necessarily another release.
    pub fn rollback_target(&self) -> Option<&HistoryEntry> {
        rollback_target(self.active.as_ref(), &self.history)
    }
}

/// [`FootballPredictionStatus::rollback_target`] from its two parts, for callers holding them
/// separately (the rollout state machine).
pub fn rollback_target<'h>(
    active: Option<&ColorStatus>,
    history: &'h [HistoryEntry],
) -> Option<&'h HistoryEntry> {
    let serving = active
        .map(|a| a.version.as_str())
        .filter(|v| !v.is_empty())
        .or_else(|| history.first().map(|h| h.version.as_str()))?;
    history.iter().find(|h| h.version != serving)
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
    /// Image the color runs; empty when it never ran one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Revision of the pod configuration the color runs: a hash of its pod template, the API
    /// server's config file and the versions of the Secrets its pods read. Empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config: String,
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
    /// Release being rolled out (or, when Aborted, the release that was rejected); empty when idle.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_version: String,
    /// Image of the release being rolled out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_image: String,
    /// Configuration revision of the release being rolled out (see `active.config`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target_config: String,
    /// Color receiving the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_color: Option<Color>,
    /// Release the active color served when the rollout started; empty on a first deploy.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from_version: String,
    /// When the rollout started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the current stage began (deadlines and durations count from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_started_at: Option<Time>,
    /// Analysis results of the current analysis stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<CheckTally>,
    /// Backup taken before the migration (`backup.beforeMigration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// The rollout restores a previous release on request (`kubectl fp rollback`), not `spec.version`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
    /// A container of the stage's pods that cannot start, and since when: the rollout aborts when
    /// it stays so for `spec.rollout.startFailureGraceSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_failure: Option<StartFailure>,
    /// Why the rollout stopped (Aborted), from a fixed set: AnalysisFailed, ProgressDeadlineExceeded,
    /// MigrationFailed, BackupFailed, ImagePullFailed, ContainerCannotStart, ContainerCrashLooping,
    /// Aborted, RolledBack.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// What happened last, in words.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Stages of a rollout.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum RolloutStage {
    /// Nothing to roll out: the active color runs the desired release.
    #[default]
    Idle,
    /// Backup Job before a migration.
    BackingUp,
    /// Migration Job of the new release.
    Migrating,
    /// The idle color starts the new release at `previewReplicas`.
    Previewing,
    /// Pre-promotion analysis of the preview pods.
    Analysing,
    /// Analysis passed; waiting for a manual promote (`autoPromote: false`).
    AwaitingPromotion,
    /// The new color scales to `replicas`; the active Service switches when it is available.
    Promoting,
    /// The new color serves; analysed while the old color still runs at full size.
    PostPromotion,
    /// Waiting `scaleDownDelaySeconds` before the old color goes to zero.
    ScalingDown,
    /// Stopped: the active Service stays on (or went back to) the last good color.
    Aborted,
}

impl RolloutStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::BackingUp => "BackingUp",
            Self::Migrating => "Migrating",
            Self::Previewing => "Previewing",
            Self::Analysing => "Analysing",
            Self::AwaitingPromotion => "AwaitingPromotion",
            Self::Promoting => "Promoting",
            Self::PostPromotion => "PostPromotion",
            Self::ScalingDown => "ScalingDown",
            Self::Aborted => "Aborted",
        }
    }

    /// A rollout is under way (not Idle and not Aborted).
    pub fn in_progress(self) -> bool {
        !matches!(self, Self::Idle | Self::Aborted)
    }

    // The stage sets the machine, the color plan, the status and the commands share. Each lists
    // every stage, so a new stage must be placed in each.

    /// Traffic has not moved yet: a new spec replaces the release under way, and abort (not
    /// rollback) stops it.
    pub fn before_promotion(self) -> bool {
        match self {
            Self::BackingUp
            | Self::Migrating
            | Self::Previewing
            | Self::Analysing
            | Self::AwaitingPromotion
            | Self::Promoting => true,
            Self::Idle | Self::PostPromotion | Self::ScalingDown | Self::Aborted => false,
        }
    }

    /// Traffic moved to the target color; the old color still runs at full size.
    pub fn switched(self) -> bool {
        match self {
            Self::PostPromotion | Self::ScalingDown => true,
            Self::Idle
            | Self::BackingUp
            | Self::Migrating
            | Self::Previewing
            | Self::Analysing
            | Self::AwaitingPromotion
            | Self::Promoting
            | Self::Aborted => false,
        }
    }

    /// The stage starts pods (a Job's or the target color's), whose containers are watched for
    /// trouble that needs a change.
    pub fn starts_pods(self) -> bool {
        match self {
            Self::BackingUp | Self::Migrating | Self::Previewing | Self::Promoting => true,
            Self::Idle
            | Self::Analysing
            | Self::AwaitingPromotion
            | Self::PostPromotion
            | Self::ScalingDown
            | Self::Aborted => false,
        }
    }

    /// Analysis rounds run against the target color.
    pub fn analysed(self) -> bool {
        match self {
            Self::Previewing | Self::Analysing | Self::PostPromotion => true,
            Self::Idle
            | Self::BackingUp
            | Self::Migrating
            | Self::AwaitingPromotion
            | Self::Promoting
            | Self::ScalingDown
            | Self::Aborted => false,
        }
    }

    /// The target color runs at `previewReplicas`.
    pub fn previews(self) -> bool {
        match self {
            Self::Previewing | Self::Analysing | Self::AwaitingPromotion => true,
            Self::Idle
            | Self::BackingUp
            | Self::Migrating
            | Self::Promoting
            | Self::PostPromotion
            | Self::ScalingDown
            | Self::Aborted => false,
        }
    }
}

/// Analysis results of a rollout.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckTally {
    /// Rounds in which every check passed on every pod.
    #[serde(default)]
    pub passed: i32,
    /// Rounds with at least one failed check.
    #[serde(default)]
    pub failed: i32,
    /// When the last round ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_round_at: Option<Time>,
    /// What the last failing check observed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_error: String,
}

/// A container waiting in a state it will not leave by itself (an image that cannot be pulled, a
/// configuration that cannot be created, a crash loop).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartFailure {
    pub pod: String,
    pub container: String,
    pub image: String,
    /// The kubelet's waiting reason, e.g. ErrImagePull, ImagePullBackOff, CrashLoopBackOff.
    pub waiting_reason: String,
    /// The kubelet's message, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the operator first saw this container in this kind of trouble.
    pub since: Time,
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
    /// The backup taken before this release's migration (`backup.beforeMigration`): the one to
    /// restore when the migration turns out wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn history(versions: &[&str]) -> Vec<HistoryEntry> {
        versions
            .iter()
            .map(|v| HistoryEntry {
                version: (*v).into(),
                promoted_at: Time("2026-11-29T08:00:00Z".parse().unwrap()),
                backup_id: None,
            })
            .collect()
    }

    fn serving(version: &str, versions: &[&str]) -> FootballPredictionStatus {
        FootballPredictionStatus {
            active: Some(ColorStatus {
                color: Color::Blue,
                version: version.into(),
                image: String::new(),
                config: String::new(),
                ready_replicas: 2,
            }),
            history: history(versions),
            ..FootballPredictionStatus::default()
        }
    }

    fn target(status: &FootballPredictionStatus) -> Option<&str> {
        status.rollback_target().map(|h| h.version.as_str())
    }

    #[test]
    fn rollback_target_is_the_newest_other_version() {
        assert_eq!(
            target(&serving("1.5.0", &["1.5.0", "1.4.2", "1.4.1"])),
            Some("1.4.2")
        );
        // Configuration-only rollouts left entries of the serving version in between.
        assert_eq!(
            target(&serving("1.5.0", &["1.5.0", "1.5.0", "1.4.1"])),
            Some("1.4.1")
        );
        assert_eq!(target(&serving("1.5.0", &["1.5.0", "1.5.0"])), None);
        assert_eq!(target(&serving("1.5.0", &[])), None);
    }

    #[test]
    fn rollback_target_without_an_active_color_reads_the_newest_entry() {
        let no_active = FootballPredictionStatus {
            history: history(&["1.5.0", "1.5.0", "1.4.1"]),
            ..FootballPredictionStatus::default()
        };
        assert_eq!(target(&no_active), Some("1.4.1"));
        assert_eq!(target(&serving("", &["1.5.0", "1.4.1"])), Some("1.4.1"));
        assert_eq!(target(&FootballPredictionStatus::default()), None);
    }
}
