//! Every reason the operator writes: condition reasons, the reasons a rollout stops with, event
//! reasons and the `reason` label of its metrics. One enum, so a reason is spelled once (its
//! variant name, CamelCase as the API conventions ask) and a status string read back parses into
//! it or is not ours.

/// A reason (`as_str`/`Display` give the CamelCase name; `FromStr` parses it back).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumString, strum::Display,
)]
pub enum Reason {
    // Ready, Progressing, Degraded.
    Serving,
    Deploying,
    RolloutComplete,
    Healthy,
    Paused,
    InvalidSpec,
    MissingDependency,
    ApplyFailed,
    ProgressDeadlineExceeded,
    /// An optional child kind's CRD is not served (also CertificateReady, MonitoringReady).
    CrdMissing,
    // CertificateReady.
    Issued,
    Pending,
    // MonitoringReady.
    Applied,
    // NotificationsDelivered.
    Delivered,
    DeliveryFailed,
    NothingToSend,
    // BackupHealthy (BackupFailed is also a rollout's stop reason: its pre-migration backup).
    BackupSucceeded,
    BackupFailed,
    BackupStale,
    VerifyFailed,
    NoBackupYet,
    Suspended,
    // Why a rollout stopped (`status.rollout.reason`, `lastRollback.reason`, the Degraded
    // condition, `fp_operator_rollbacks_total{reason}`).
    AnalysisFailed,
    MigrationFailed,
    /// A container of the rollout's pods could not pull its image for the grace.
    ImagePullFailed,
    /// The runtime could not create or start a container (e.g. a missing Secret key) for the grace.
    ContainerCannotStart,
    /// A container stayed in CrashLoopBackOff for the grace.
    ContainerCrashLooping,
    /// Stopped by `kubectl fp abort` (the annotation).
    Aborted,
    /// Returned to the previous release by `kubectl fp rollback` (also its event).
    RolledBack,
    // Events only.
    Created,
    Updated,
    Deleted,
    DeleteFailed,
    RolloutStarted,
    RolloutStage,
    Promoted,
    RolloutSucceeded,
    CommandApplied,
    CommandRefused,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The reason a status string names, `None` for one the operator does not write (a rollout
    /// stage's name, another controller's reason).
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_variants_and_parse_back() {
        for reason in [
            Reason::InvalidSpec,
            Reason::BackupFailed,
            Reason::ImagePullFailed,
            Reason::RolledBack,
            Reason::CommandRefused,
        ] {
            assert_eq!(Reason::parse(reason.as_str()), Some(reason));
            assert_eq!(reason.to_string(), reason.as_str());
        }
        assert_eq!(
            Reason::ProgressDeadlineExceeded.as_str(),
            "ProgressDeadlineExceeded"
        );
        assert_eq!(Reason::parse("Migrating"), None);
        assert_eq!(Reason::parse("invalidspec"), None);
    }
}
