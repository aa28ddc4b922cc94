//! The restore drill catches each kind of bad backup with a precise reason, always drops its
//! scratch database, and `restore` refuses a damaged dump before touching the target.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_support;

use std::path::Path;

use backup_support::*;
use fp_api_server::backup::create::run_backup;
use fp_api_server::backup::id::{BackupId, BackupSelector};
use fp_api_server::backup::outcome::Failure;
use fp_api_server::backup::postgres::PgTarget;
use fp_api_server::backup::progress::Progress;
use fp_api_server::backup::restore::{RestoreRequest, run_restore};
use fp_api_server::backup::store::S3Settings;
use fp_api_server::backup::verify::{VerifyRequest, VerifySummary, run_verify};
use serde_json::Value;

fn copy_backup(from: &Path, to: &Path, id: BackupId) {
    let source = from.join(id.to_string());
    let target = to.join(id.to_string());
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), target.join(entry.file_name())).unwrap();
    }
}

fn dump_path(dir: &Path, id: BackupId) -> std::path::PathBuf {
    dir.join(id.to_string()).join("database.dump")
}

fn edit_manifest(dir: &Path, id: BackupId, edit: impl FnOnce(&mut Value)) {
    let path = dir.join(id.to_string()).join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

async fn verify(server: &str, dir: &Path) -> VerifySummary {
    run_verify(
        &VerifyRequest {
            destination: file_destination(dir),
            s3: S3Settings::default(),
            selector: BackupSelector::Latest,
            server: PgTarget::parse(server).unwrap(),
            tools: tools(),
            connect_timeout: CONNECT_TIMEOUT,
            work_dir: None,
        },
        &Progress::silent("test"),
    )
    .await
}

fn failed_checks(summary: &VerifySummary) -> Vec<&'static str> {
    summary
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.check)
        .collect()
}

fn reasons(summary: &VerifySummary) -> Vec<&'static str> {
    summary.problems.iter().map(|p| p.reason).collect()
}

async fn assert_scratch_dropped(server: &str, summary: &VerifySummary) {
    let scratch = summary
        .scratch_database
        .clone()
        .expect("a scratch database was used");
    assert!(summary.scratch_dropped, "{scratch} not dropped");
    assert!(
        databases_with_prefix(server, &scratch).await.is_empty(),
        "{scratch} still exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_a_good_backup_and_names_every_kind_of_damage() {
    let Some(server) = pg_server() else { return };
    let progress = Progress::silent("test");
    let db = TestDb::create(&server, "fp_bk_verify").await;
    load_fixture(&db, 3_000).await;
    let good = tempfile::tempdir().unwrap();
    let summary = run_backup(
        &request(
            &db.url,
            vec![file_destination(good.path())],
            S3Settings::default(),
            no_retention(),
        ),
        &progress,
    )
    .await;
    assert!(summary.ok, "{:?}", summary.error);
    let id = summary.id.unwrap();
    let size = summary.size_bytes.unwrap();

    // A good backup passes every check.
    let ok = verify(&server, good.path()).await;
    assert!(ok.ok, "{}", serde_json::to_string(&ok).unwrap());
    assert_eq!(
        ok.checks.iter().map(|c| c.check).collect::<Vec<_>>(),
        vec![
            "manifest",
            "size",
            "checksum",
            "restore",
            "migration_version",
            "tables"
        ]
    );
    assert_eq!(ok.id, Some(id));
    assert_scratch_dropped(&server, &ok).await;

    // Corrupted: bytes flipped in the middle of the stored dump.
    let corrupted = tempfile::tempdir().unwrap();
    copy_backup(good.path(), corrupted.path(), id);
    let mut bytes = std::fs::read(dump_path(corrupted.path(), id)).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 64] {
        *byte ^= 0x5a;
    }
    std::fs::write(dump_path(corrupted.path(), id), &bytes).unwrap();
    let bad = verify(&server, corrupted.path()).await;
    assert!(!bad.ok);
    assert_eq!(bad.reason, Some(Failure::VerifyFailed));
    assert!(
        failed_checks(&bad).contains(&"checksum"),
        "{:?}",
        bad.checks
    );
    assert!(!failed_checks(&bad).contains(&"size"), "{:?}", bad.checks);
    assert!(reasons(&bad).contains(&"ChecksumMismatch"));
    assert!(
        bad.error.as_deref().unwrap().contains("ChecksumMismatch"),
        "{:?}",
        bad.error
    );
    assert_scratch_dropped(&server, &bad).await;

    // Truncated: half the dump is gone; size, checksum and the restore itself fail.
    let truncated = tempfile::tempdir().unwrap();
    copy_backup(good.path(), truncated.path(), id);
    let bytes = std::fs::read(dump_path(truncated.path(), id)).unwrap();
    std::fs::write(dump_path(truncated.path(), id), &bytes[..bytes.len() / 2]).unwrap();
    let short = verify(&server, truncated.path()).await;
    assert_eq!(
        failed_checks(&short),
        vec!["size", "checksum", "restore"],
        "{}",
        serde_json::to_string(&short).unwrap()
    );
    assert_eq!(
        reasons(&short),
        vec!["SizeMismatch", "ChecksumMismatch", "RestoreFailed"]
    );
    assert!(
        short.problems[0]
            .message
            .contains(&format!("manifest says {size}"))
    );
    assert!(
        short.problems[2].message.contains("pg_restore"),
        "{}",
        short.problems[2].message
    );
    assert_scratch_dropped(&server, &short).await;

    // Wrong checksum in the manifest: only the checksum check fails.
    let wrong_sum = tempfile::tempdir().unwrap();
    copy_backup(good.path(), wrong_sum.path(), id);
    edit_manifest(wrong_sum.path(), id, |m| {
        m["dump"]["sha256"] = Value::from("0".repeat(64))
    });
    let sum = verify(&server, wrong_sum.path()).await;
    assert_eq!(failed_checks(&sum), vec!["checksum"]);
    assert_eq!(reasons(&sum), vec!["ChecksumMismatch"]);
    assert!(sum.problems[0].message.contains(&"0".repeat(64)));
    assert_scratch_dropped(&server, &sum).await;

    // Row count and migration version differ from the manifest.
    let counts = tempfile::tempdir().unwrap();
    copy_backup(good.path(), counts.path(), id);
    edit_manifest(counts.path(), id, |m| {
        m["migration_version"] = Value::from(99_999_999_i64);
        for table in m["tables"].as_array_mut().unwrap() {
            if table["name"] == "results" {
                table["rows"] = Value::from(3_001);
            }
        }
    });
    let count = verify(&server, counts.path()).await;
    assert_eq!(failed_checks(&count), vec!["migration_version", "tables"]);
    assert_eq!(
        reasons(&count),
        vec!["MigrationVersionMismatch", "RowCountMismatch"]
    );
    assert_eq!(count.problems[1].table.as_deref(), Some("fixture.results"));
    assert_eq!(
        count.problems[1].message,
        "table fixture.results has 3000 rows, manifest says 3001"
    );
    assert_scratch_dropped(&server, &count).await;

    // Missing table: a dump that lacks a table the manifest lists.
    db.execute(r#"DROP TABLE fixture."Odd ""Name"" Table""#)
        .await;
    let lacking = tempfile::tempdir().unwrap();
    let other = run_backup(
        &request(
            &db.url,
            vec![file_destination(lacking.path())],
            S3Settings::default(),
            no_retention(),
        ),
        &progress,
    )
    .await;
    assert!(other.ok, "{:?}", other.error);
    let missing = tempfile::tempdir().unwrap();
    copy_backup(good.path(), missing.path(), id);
    std::fs::copy(
        dump_path(lacking.path(), other.id.unwrap()),
        dump_path(missing.path(), id),
    )
    .unwrap();
    edit_manifest(missing.path(), id, |m| {
        m["dump"]["sha256"] = Value::from(other.sha256.clone().unwrap());
        m["dump"]["size_bytes"] = Value::from(other.size_bytes.unwrap());
    });
    let gone = verify(&server, missing.path()).await;
    assert_eq!(
        failed_checks(&gone),
        vec!["tables"],
        "{}",
        serde_json::to_string(&gone).unwrap()
    );
    assert_eq!(reasons(&gone), vec!["TableMissing"]);
    assert_eq!(
        gone.problems[0].table.as_deref(),
        Some("fixture.Odd \"Name\" Table")
    );
    assert_scratch_dropped(&server, &gone).await;

    // restore checks the checksum before touching the target.
    let (target_name, target_url) = db.sibling("fp_bk_never_restored");
    let refused = run_restore(
        &RestoreRequest {
            destination: file_destination(corrupted.path()),
            s3: S3Settings::default(),
            selector: BackupSelector::Id(id),
            target: PgTarget::parse(&target_url).unwrap(),
            force: false,
            create: true,
            tools: tools(),
            connect_timeout: CONNECT_TIMEOUT,
            work_dir: None,
        },
        &progress,
    )
    .await;
    assert_eq!(refused.reason, Some(Failure::VerifyFailed));
    assert!(
        refused
            .error
            .as_deref()
            .unwrap()
            .contains("ChecksumMismatch"),
        "{:?}",
        refused.error
    );
    assert!(
        fingerprint(&target_url).await.is_empty(),
        "nothing may be restored from a damaged dump"
    );
    drop_database(&server, &target_name).await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_of_an_empty_destination_says_not_found() {
    let Some(server) = pg_server() else { return };
    let empty = tempfile::tempdir().unwrap();
    let summary = verify(&server, empty.path()).await;
    assert_eq!(summary.reason, Some(Failure::BackupNotFound));
    assert!(summary.scratch_database.is_none());
}
