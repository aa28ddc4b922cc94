//! Kubernetes events (events.k8s.io) about a FootballPrediction, with reasons from a fixed set.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

use super::backup_health::reasons as backup_reasons;
use super::status::reasons;
use crate::metrics::Metrics;

/// Every reason the operator puts on an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventReason {
    Created,
    Updated,
    Deleted,
    Serving,
    InvalidSpec,
    MissingDependency,
    ApplyFailed,
    DeleteFailed,
    ProgressDeadlineExceeded,
    CrdMissing,
    BackupFailed,
    BackupStale,
    VerifyFailed,
    RolloutStarted,
    RolloutStage,
    Promoted,
    RolloutSucceeded,
    RolledBack,
    CommandApplied,
    CommandRefused,
}

impl EventReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Updated => "Updated",
            Self::Deleted => "Deleted",
            Self::Serving => "Serving",
            Self::InvalidSpec => "InvalidSpec",
            Self::MissingDependency => "MissingDependency",
            Self::ApplyFailed => "ApplyFailed",
            Self::DeleteFailed => "DeleteFailed",
            Self::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            Self::CrdMissing => "CrdMissing",
            Self::BackupFailed => "BackupFailed",
            Self::BackupStale => "BackupStale",
            Self::VerifyFailed => "VerifyFailed",
            Self::RolloutStarted => "RolloutStarted",
            Self::RolloutStage => "RolloutStage",
            Self::Promoted => "Promoted",
            Self::RolloutSucceeded => "RolloutSucceeded",
            Self::RolledBack => "RolledBack",
            Self::CommandApplied => "CommandApplied",
            Self::CommandRefused => "CommandRefused",
        }
    }

    /// The event for a Degraded condition's reason.
    pub fn from_condition_reason(reason: &str) -> Option<Self> {
        match reason {
            reasons::INVALID_SPEC => Some(Self::InvalidSpec),
            reasons::MISSING_DEPENDENCY => Some(Self::MissingDependency),
            reasons::APPLY_FAILED => Some(Self::ApplyFailed),
            reasons::PROGRESS_DEADLINE_EXCEEDED => Some(Self::ProgressDeadlineExceeded),
            reasons::CRD_MISSING => Some(Self::CrdMissing),
            backup_reasons::FAILED => Some(Self::BackupFailed),
            backup_reasons::STALE => Some(Self::BackupStale),
            backup_reasons::VERIFY_FAILED => Some(Self::VerifyFailed),
            _ => None,
        }
    }

    fn event_type(self) -> EventType {
        match self {
            Self::Created
            | Self::Updated
            | Self::Deleted
            | Self::Serving
            | Self::RolloutStarted
            | Self::RolloutStage
            | Self::Promoted
            | Self::RolloutSucceeded
            | Self::CommandApplied => EventType::Normal,
            _ => EventType::Warning,
        }
    }

    /// The `action` field: what the operator was doing.
    fn action(self) -> &'static str {
        match self {
            Self::Created | Self::Updated | Self::ApplyFailed => "Apply",
            Self::Deleted | Self::DeleteFailed => "Delete",
            Self::InvalidSpec | Self::MissingDependency => "Validate",
            Self::Serving | Self::ProgressDeadlineExceeded | Self::CrdMissing => "Reconcile",
            Self::BackupFailed | Self::BackupStale | Self::VerifyFailed => "Backup",
            Self::RolloutStarted
            | Self::RolloutStage
            | Self::Promoted
            | Self::RolloutSucceeded
            | Self::RolledBack => "Rollout",
            Self::CommandApplied | Self::CommandRefused => "Command",
        }
    }
}

/// Events API limit on the note.
const MAX_NOTE_BYTES: usize = 1024;

fn truncate(mut note: String) -> String {
    if note.len() > MAX_NOTE_BYTES {
        let mut cut = MAX_NOTE_BYTES - 3;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
        note.push_str("...");
    }
    note
}

/// Publishes one event; a failure to publish is logged, never fatal. `related` names the child an
/// event is about: the recorder groups repeated events into a series by (reason, regarding,
/// related), so without it the events about different children would merge into one.
pub async fn publish(
    recorder: &Recorder,
    metrics: &Metrics,
    reference: &ObjectReference,
    related: Option<ObjectReference>,
    reason: EventReason,
    note: String,
) {
    let event = Event {
        type_: reason.event_type(),
        reason: reason.as_str().into(),
        note: Some(truncate(note)),
        action: reason.action().into(),
        secondary: related,
    };
    metrics.event(reason.as_str());
    if let Err(e) = recorder.publish(&event, reference).await {
        tracing::warn!(error = %e, reason = reason.as_str(), "publishing an event failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_warnings_and_changes_are_normal() {
        assert_eq!(EventReason::Created.event_type(), EventType::Normal);
        assert_eq!(EventReason::InvalidSpec.event_type(), EventType::Warning);
        assert_eq!(
            EventReason::from_condition_reason("MissingDependency"),
            Some(EventReason::MissingDependency)
        );
        assert_eq!(EventReason::from_condition_reason("Healthy"), None);
    }

    #[test]
    fn long_notes_are_cut_at_a_character_boundary() {
        let note = truncate("é".repeat(600));
        assert!(note.len() <= MAX_NOTE_BYTES);
        assert!(note.ends_with("..."));
    }
}
