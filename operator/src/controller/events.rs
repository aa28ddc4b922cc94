//! Kubernetes events (events.k8s.io) about a FootballPrediction, with reasons from a fixed set.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

use crate::metrics::Metrics;
use crate::reason::Reason;

/// The condition reasons that deserve an event when a Degraded or BackupHealthy condition turns
/// to them (a rollout's own stop reasons have their RolledBack event instead).
pub fn for_condition(reason: &str) -> Option<Reason> {
    Reason::parse(reason).filter(|r| {
        matches!(
            r,
            Reason::InvalidSpec
                | Reason::MissingDependency
                | Reason::ApplyFailed
                | Reason::ProgressDeadlineExceeded
                | Reason::CrdMissing
                | Reason::BackupFailed
                | Reason::BackupStale
                | Reason::VerifyFailed
        )
    })
}

/// Normal for changes and successes, Warning for everything that needs a look.
fn event_type(reason: Reason) -> EventType {
    use Reason::*;
    match reason {
        Created | Updated | Deleted | Serving | RolloutStarted | RolloutStage | Promoted
        | RolloutSucceeded | CommandApplied | RolloutComplete | Healthy | Deploying | Issued
        | Applied | Delivered | BackupSucceeded => EventType::Normal,
        Paused
        | InvalidSpec
        | MissingDependency
        | ApplyFailed
        | ProgressDeadlineExceeded
        | CrdMissing
        | Pending
        | DeliveryFailed
        | NothingToSend
        | BackupFailed
        | BackupStale
        | VerifyFailed
        | NoBackupYet
        | Suspended
        | AnalysisFailed
        | MigrationFailed
        | ImagePullFailed
        | ContainerCannotStart
        | ContainerCrashLooping
        | Aborted
        | RolledBack
        | DeleteFailed
        | CommandRefused => EventType::Warning,
    }
}

/// The `action` field: what the operator was doing.
fn action(reason: Reason) -> &'static str {
    use Reason::*;
    match reason {
        Created | Updated | ApplyFailed | Applied => "Apply",
        Deleted | DeleteFailed => "Delete",
        InvalidSpec | MissingDependency => "Validate",
        Serving
        | Deploying
        | RolloutComplete
        | Healthy
        | Paused
        | ProgressDeadlineExceeded
        | CrdMissing
        | Issued
        | Pending => "Reconcile",
        Delivered | DeliveryFailed | NothingToSend => "Notify",
        BackupSucceeded | BackupFailed | BackupStale | VerifyFailed | NoBackupYet | Suspended => {
            "Backup"
        }
        RolloutStarted
        | RolloutStage
        | Promoted
        | RolloutSucceeded
        | RolledBack
        | AnalysisFailed
        | MigrationFailed
        | ImagePullFailed
        | ContainerCannotStart
        | ContainerCrashLooping
        | Aborted => "Rollout",
        CommandApplied | CommandRefused => "Command",
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
    reason: Reason,
    note: String,
) {
    let event = Event {
        type_: event_type(reason),
        reason: reason.as_str().into(),
        note: Some(truncate(note)),
        action: action(reason).into(),
        secondary: related,
    };
    metrics.event(reason);
    if let Err(e) = recorder.publish(&event, reference).await {
        tracing::warn!(error = %e, reason = reason.as_str(), "publishing an event failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_warnings_and_changes_are_normal() {
        assert_eq!(event_type(Reason::Created), EventType::Normal);
        assert_eq!(event_type(Reason::InvalidSpec), EventType::Warning);
        assert_eq!(
            for_condition("MissingDependency"),
            Some(Reason::MissingDependency)
        );
        assert_eq!(for_condition("Healthy"), None);
        // A rollout's stop reason on Degraded has its own RolledBack event.
        assert_eq!(for_condition("AnalysisFailed"), None);
        assert_eq!(for_condition("SomebodyElses"), None);
    }

    #[test]
    fn long_notes_are_cut_at_a_character_boundary() {
        let note = truncate("é".repeat(600));
        assert!(note.len() <= MAX_NOTE_BYTES);
        assert!(note.ends_with("..."));
    }
}
