//! Carrying out a retention plan on one destination.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::id::BackupId;
use super::progress::Progress;
use super::retention::{PruneAction, RetentionPolicy, plan_prune};
use super::store::{BackupStore, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub id: BackupId,
    pub reason: String,
}

/// What a prune did; `error` is set when it stopped early (the next prune finishes the job).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub removed: Vec<Removed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Lists the destination, plans with `policy` at time `now`, and removes backup by backup.
pub async fn prune(
    store: &BackupStore,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    progress: &Progress,
) -> PruneReport {
    let entries = match store.catalog().await {
        Ok(entries) => entries,
        Err(err) => {
            return PruneReport {
                removed: Vec::new(),
                error: Some(err.to_string()),
            };
        }
    };
    let plan = plan_prune(&entries, policy, now);
    execute(store, &plan, progress).await
}

async fn execute(store: &BackupStore, plan: &[PruneAction], progress: &Progress) -> PruneReport {
    let mut report = PruneReport::default();
    for action in plan {
        progress.note(format!(
            "pruning {} from {}: {}",
            action.id,
            store.destination(),
            action.reason
        ));
        if let Err(err) = store.remove_backup(action.id).await {
            report.error = Some(describe(action.id, &err));
            return report;
        }
        report.removed.push(Removed {
            id: action.id,
            reason: action.reason.to_string(),
        });
    }
    report
}

fn describe(id: BackupId, err: &StoreError) -> String {
    format!("removing {id} failed: {err}")
}
