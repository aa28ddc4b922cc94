//! Retention on a real destination directory: backups with forged dates, pruned by count and
//! by age exactly as expected; an interrupted prune is finished by the next one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_support;

use backup_support::{file_destination, forge};
use chrono::{DateTime, Duration as Days, TimeZone, Utc};
use fp_api_server::backup::id::BackupId;
use fp_api_server::backup::layout::{EntryState, ObjectKind};
use fp_api_server::backup::progress::Progress;
use fp_api_server::backup::prune::prune;
use fp_api_server::backup::retention::{DEFAULT_INCOMPLETE_GRACE, RetentionPolicy};
use fp_api_server::backup::store::{BackupStore, S3Settings};
use std::time::Duration;

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
}

fn id_days_ago(days: i64) -> BackupId {
    BackupId::from_time(Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap() - Days::days(days))
}

async fn states(store: &BackupStore) -> Vec<(i64, EntryState)> {
    let base = Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap();
    store
        .catalog()
        .await
        .unwrap()
        .iter()
        .map(|entry| ((base - entry.id.time()).num_days(), entry.state()))
        .collect()
}

fn policy(keep_last: Option<usize>, max_age_days: Option<u64>) -> RetentionPolicy {
    RetentionPolicy::new(
        keep_last,
        max_age_days.map(|days| Duration::from_secs(days * 86_400)),
        DEFAULT_INCOMPLETE_GRACE,
    )
    .unwrap()
}

fn open(dir: &std::path::Path) -> BackupStore {
    BackupStore::open(&file_destination(dir), &S3Settings::default()).unwrap()
}

#[tokio::test]
async fn prunes_by_count_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for days in [0, 1, 2, 3, 4, 5, 6] {
        forge(&store, id_days_ago(days)).await;
    }
    let report = prune(
        &store,
        &policy(Some(3), None),
        now(),
        &Progress::silent("test"),
    )
    .await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let removed: Vec<BackupId> = report.removed.iter().map(|r| r.id).collect();
    assert_eq!(
        removed,
        vec![
            id_days_ago(6),
            id_days_ago(5),
            id_days_ago(4),
            id_days_ago(3)
        ]
    );
    let remaining: Vec<i64> = states(&store).await.iter().map(|(days, _)| *days).collect();
    assert_eq!(remaining, vec![2, 1, 0]);
    // Nothing is left on disk of the removed backups, not even their directories.
    assert!(!dir.path().join(id_days_ago(6).to_string()).exists());
    // Idempotent: a second run removes nothing.
    let again = prune(
        &store,
        &policy(Some(3), None),
        now(),
        &Progress::silent("test"),
    )
    .await;
    assert!(again.removed.is_empty() && again.error.is_none());
}

#[tokio::test]
async fn prunes_by_age_above_a_count_floor_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for days in [1, 8, 15, 29, 31, 45, 90] {
        forge(&store, id_days_ago(days)).await;
    }
    // maxAge 30d is the rule: 31, 45 and 90 go; keepLast 3 is a floor, not a limit: 29 stays.
    let report = prune(
        &store,
        &policy(Some(3), Some(30)),
        now(),
        &Progress::silent("test"),
    )
    .await;
    assert!(report.error.is_none());
    let remaining: Vec<i64> = states(&store).await.iter().map(|(days, _)| *days).collect();
    assert_eq!(remaining, vec![29, 15, 8, 1]);
    assert!(
        report
            .removed
            .iter()
            .all(|r| r.reason.contains("beyond maxAge"))
    );
    // keepLast alone is a count.
    let report = prune(
        &store,
        &policy(Some(3), None),
        now(),
        &Progress::silent("test"),
    )
    .await;
    let remaining: Vec<i64> = states(&store).await.iter().map(|(days, _)| *days).collect();
    assert_eq!(remaining, vec![15, 8, 1]);
    assert!(
        report
            .removed
            .iter()
            .any(|r| r.reason.contains("beyond keepLast 3"))
    );

    // When every backup is too old, the newest survives.
    let stale = tempfile::tempdir().unwrap();
    let store = open(stale.path());
    for days in [60, 61, 62] {
        forge(&store, id_days_ago(days)).await;
    }
    prune(
        &store,
        &policy(None, Some(30)),
        now(),
        &Progress::silent("test"),
    )
    .await;
    assert_eq!(states(&store).await, vec![(60, EntryState::Complete)]);
}

#[tokio::test]
async fn an_interrupted_prune_is_finished_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for days in [0, 1, 2, 3] {
        forge(&store, id_days_ago(days)).await;
    }
    // Interrupted right after the marker and the manifest deletion (day 3) ...
    std::fs::write(
        dir.path().join(id_days_ago(3).to_string()).join("PRUNING"),
        "pruning\n",
    )
    .unwrap();
    store
        .delete_object(id_days_ago(3), ObjectKind::Manifest)
        .await
        .unwrap();
    // ... and another one interrupted right after the marker (day 2).
    std::fs::write(
        dir.path().join(id_days_ago(2).to_string()).join("PRUNING"),
        "pruning\n",
    )
    .unwrap();
    assert_eq!(
        states(&store).await,
        vec![
            (3, EntryState::Pruning),
            (2, EntryState::Pruning),
            (1, EntryState::Complete),
            (0, EntryState::Complete),
        ]
    );
    // A half-pruned backup never counts: `latest`-style selection skips it.
    let entries = store.catalog().await.unwrap();
    assert_eq!(
        fp_api_server::backup::layout::latest_complete(&entries).map(|e| e.id),
        Some(id_days_ago(0))
    );
    // The next run, even without any retention rule, finishes both and touches nothing else.
    let report = prune(
        &store,
        &policy(None, None),
        now(),
        &Progress::silent("test"),
    )
    .await;
    assert!(report.error.is_none());
    assert_eq!(report.removed.len(), 2);
    assert!(
        report
            .removed
            .iter()
            .all(|r| r.reason.contains("interrupted"))
    );
    assert_eq!(
        states(&store).await,
        vec![(1, EntryState::Complete), (0, EntryState::Complete)]
    );
    assert!(!dir.path().join(id_days_ago(3).to_string()).exists());
}

#[tokio::test]
async fn dead_backups_are_removed_after_the_grace_period_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    forge(&store, id_days_ago(5)).await;
    // A dump without manifest from 2 days ago (died), and one from 1 hour ago (maybe running).
    store
        .put_dump_bytes(id_days_ago(2), b"half".to_vec())
        .await
        .unwrap();
    let recent = BackupId::from_time(now() - Days::hours(1));
    store
        .put_dump_bytes(recent, b"running".to_vec())
        .await
        .unwrap();
    // A killed upload to a local disk leaves only a staging file, hidden from listings.
    let killed = id_days_ago(3);
    std::fs::create_dir_all(dir.path().join(killed.to_string())).unwrap();
    std::fs::write(
        dir.path().join(killed.to_string()).join("database.dump#7"),
        b"partial",
    )
    .unwrap();

    let report = prune(
        &store,
        &policy(None, None),
        now(),
        &Progress::silent("test"),
    )
    .await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let removed: Vec<BackupId> = report.removed.iter().map(|r| r.id).collect();
    assert_eq!(removed, vec![killed, id_days_ago(2)]);
    assert!(!dir.path().join(killed.to_string()).exists());
    let left: Vec<(BackupId, EntryState)> = store
        .catalog()
        .await
        .unwrap()
        .iter()
        .map(|e| (e.id, e.state()))
        .collect();
    assert_eq!(
        left,
        vec![
            (id_days_ago(5), EntryState::Complete),
            (recent, EntryState::Incomplete)
        ]
    );
}
