//! Backup → damage the data → restore → the same per-table row counts and content, on real
//! PostgreSQL with the real pg_dump/pg_restore and a file destination.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_support;

use std::time::Duration;

use backup_support::*;
use fp_api_server::backup::create::run_backup;
use fp_api_server::backup::id::BackupSelector;
use fp_api_server::backup::layout::EntryState;
use fp_api_server::backup::list::{ListRequest, run_list};
use fp_api_server::backup::outcome::Failure;
use fp_api_server::backup::postgres::PgTarget;
use fp_api_server::backup::progress::Progress;
use fp_api_server::backup::restore::{RestoreRequest, run_restore};
use fp_api_server::backup::store::{BackupStore, S3Settings};
use fp_api_server::backup::verify::{VerifyRequest, run_verify};

fn restore_request(
    dir: &std::path::Path,
    target: &str,
    force: bool,
    create: bool,
) -> RestoreRequest {
    RestoreRequest {
        destination: file_destination(dir),
        s3: S3Settings::default(),
        selector: BackupSelector::Latest,
        target: PgTarget::parse(target).unwrap(),
        force,
        create,
        tools: tools(),
        connect_timeout: CONNECT_TIMEOUT,
        work_dir: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_damage_restore_gives_identical_content() {
    let Some(server) = pg_server() else { return };
    let progress = Progress::silent("test");
    let db = TestDb::create(&server, "fp_bk_roundtrip").await;
    load_fixture(&db, 5_000).await;
    let before = fingerprint(&db.url).await;
    assert!(before.len() >= 5, "{before:?}");
    let dir = tempfile::tempdir().unwrap();

    let summary = run_backup(
        &request(
            &db.url,
            vec![file_destination(dir.path())],
            S3Settings::default(),
            no_retention(),
        ),
        &progress,
    )
    .await;
    assert!(summary.ok, "{}", serde_json::to_string(&summary).unwrap());
    let id = summary.id.unwrap();
    let total_rows: i64 = before.values().map(|(rows, _)| rows).sum();
    assert_eq!(summary.rows, Some(total_rows));
    assert_eq!(summary.tables, Some(before.len()));
    let mut conn = db.connect().await;
    let migrated: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    drop(conn);
    assert!(migrated.is_some());
    assert_eq!(summary.migration_version, migrated);

    // The manifest records what the database held.
    let store = BackupStore::open(&file_destination(dir.path()), &S3Settings::default()).unwrap();
    let manifest = store.read_manifest(id).await.unwrap();
    assert_eq!(manifest.dump.size_bytes, summary.size_bytes.unwrap());
    assert_eq!(manifest.database, db.name);
    let results = manifest
        .stats
        .tables
        .iter()
        .find(|t| t.qualified_name() == "fixture.results")
        .unwrap();
    assert_eq!(results.rows, 5_000);
    assert!(results.content_digest.is_some());

    // Damage: lost rows, changed rows, a dropped table.
    db.execute(
        r#"DELETE FROM fixture.results WHERE id % 3 = 0;
           UPDATE fixture.clubs SET name = name || ' (edited)' WHERE id < 50;
           DROP TABLE fixture."Odd ""Name"" Table";"#,
    )
    .await;
    let damaged = fingerprint(&db.url).await;
    assert_ne!(damaged, before);

    // Without --force a non-empty target is refused and left alone.
    let refused = run_restore(
        &restore_request(dir.path(), &db.url, false, false),
        &progress,
    )
    .await;
    assert_eq!(
        refused.reason,
        Some(Failure::TargetNotEmpty),
        "{:?}",
        refused.error
    );
    assert!(refused.error.as_deref().unwrap().contains("not empty"));
    assert_eq!(fingerprint(&db.url).await, damaged);

    // With --force the backup replaces it: identical counts and content.
    let restored = run_restore(
        &restore_request(dir.path(), &db.url, true, false),
        &progress,
    )
    .await;
    assert!(restored.ok, "{}", serde_json::to_string(&restored).unwrap());
    assert!(restored.replaced_existing);
    assert_eq!(restored.id, Some(id));
    assert!(
        restored.differences.is_empty(),
        "{:?}",
        restored.differences
    );
    assert_eq!(fingerprint(&db.url).await, before);

    // Into a new database (the runbook's path), created on demand.
    let (new_name, new_url) = db.sibling("fp_bk_restored");
    let fresh = run_restore(
        &restore_request(dir.path(), &new_url, false, true),
        &progress,
    )
    .await;
    assert!(fresh.ok, "{}", serde_json::to_string(&fresh).unwrap());
    assert!(!fresh.replaced_existing);
    assert_eq!(fingerprint(&new_url).await, before);
    assert_eq!(fresh.migration_version, migrated);
    drop_database(&server, &new_name).await;

    // Listing: one complete backup whose size and checksum check out.
    let listed = run_list(
        &ListRequest {
            destination: file_destination(dir.path()),
            s3: S3Settings::default(),
            verify_checksums: true,
        },
        &progress,
    )
    .await;
    assert!(listed.ok, "{:?}", listed.error);
    assert_eq!((listed.count, listed.latest), (1, Some(id)));
    assert_eq!(listed.backups[0].checksum, "verified");
    assert_eq!(listed.backups[0].state, EntryState::Complete.as_str());
    db.drop_now().await;
}

/// The shared football-data folder (`FP_FOOTBALL_DATA`, else `../shared/football-data`).
fn football_data() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("FP_FOOTBALL_DATA").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/football-data"),
        std::path::PathBuf::from,
    );
    if dir.join("E0").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: shared football data not found at {} (set FP_FOOTBALL_DATA)",
            dir.display()
        );
        None
    }
}

/// The real data through the real importer: three Premier League seasons with their odds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_football_data_is_restored_identically() {
    let Some(server) = pg_server() else { return };
    let Some(data) = football_data() else { return };
    let progress = Progress::silent("test");
    let db = TestDb::create(&server, "fp_bk_football").await;
    let api_server = |args: &[&str]| {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_fp-api-server"))
            .args(args)
            .env("FP_DATABASE_URL", &db.url)
            .env("FP_LOG_LEVEL", "warn")
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "fp-api-server {args:?}: {status}");
    };
    api_server(&["migrate"]);
    for season in ["2021-2022", "2022-2023", "2023-2024"] {
        let file = data.join("E0").join(format!("{season}.csv"));
        let file = file.to_str().unwrap();
        api_server(&[
            "import",
            "--no-refit",
            "--league",
            "E0",
            "--season",
            season,
            file,
        ]);
    }
    let before = fingerprint(&db.url).await;
    let matches = before
        .iter()
        .find(|(table, _)| table.ends_with(".matches"))
        .map(|(_, (rows, _))| *rows);
    assert_eq!(matches, Some(3 * 380), "{before:?}");

    let dir = tempfile::tempdir().unwrap();
    let summary = run_backup(
        &request(
            &db.url,
            vec![file_destination(dir.path())],
            S3Settings::default(),
            no_retention(),
        ),
        &progress,
    )
    .await;
    assert!(summary.ok, "{}", serde_json::to_string(&summary).unwrap());

    db.execute(
        "DELETE FROM odds_1x2 WHERE bookmaker <> 'B365';
         UPDATE matches SET home_goals = home_goals + 1 WHERE home_goals IS NOT NULL;
         DELETE FROM matches WHERE id % 5 = 0 AND id NOT IN (SELECT match_id FROM odds_1x2)",
    )
    .await;
    assert_ne!(fingerprint(&db.url).await, before);

    let restored = run_restore(
        &restore_request(dir.path(), &db.url, true, false),
        &progress,
    )
    .await;
    assert!(restored.ok, "{}", serde_json::to_string(&restored).unwrap());
    assert!(
        restored.differences.is_empty(),
        "{:?}",
        restored.differences
    );
    assert_eq!(fingerprint(&db.url).await, before);
    db.drop_now().await;
}

/// Rows written while the dump runs must not make the manifest disagree with the dump: the
/// counts come from the dump's own snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_match_the_dump_under_concurrent_writes() {
    let Some(server) = pg_server() else { return };
    let progress = Progress::silent("test");
    let db = TestDb::create(&server, "fp_bk_concurrent").await;
    load_fixture(&db, 20_000).await;
    let dir = tempfile::tempdir().unwrap();

    let writer_url = db.url.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (writer_stop, writer_count) = (stop.clone(), written.clone());
    let writer = tokio::spawn(async move {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&writer_url)
            .await
            .unwrap();
        while !writer_stop.load(std::sync::atomic::Ordering::Relaxed) {
            sqlx::query(
                "INSERT INTO fixture.results (club_id, played_at, goals) VALUES (1, now(), 1)",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            writer_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // The writer is busy before the dump starts (a condition, not a fixed sleep: a busy machine
    // connects late).
    let started = std::time::Instant::now();
    while written.load(std::sync::atomic::Ordering::Relaxed) < 10 {
        assert!(!writer.is_finished(), "the writer stopped");
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the writer wrote nothing for {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("writer busy after {:?}", started.elapsed());
    let before_dump = written.load(std::sync::atomic::Ordering::Relaxed);
    let summary = run_backup(
        &request(
            &db.url,
            vec![file_destination(dir.path())],
            S3Settings::default(),
            no_retention(),
        ),
        &progress,
    )
    .await;
    let during_dump = written.load(std::sync::atomic::Ordering::Relaxed) - before_dump;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert!(summary.ok, "{}", serde_json::to_string(&summary).unwrap());
    eprintln!("{during_dump} writes while the backup ran");
    assert!(
        during_dump > 0,
        "the writer should have been busy during the dump ({during_dump} writes)"
    );

    let verified = run_verify(
        &VerifyRequest {
            destination: file_destination(dir.path()),
            s3: S3Settings::default(),
            selector: BackupSelector::Latest,
            server: PgTarget::parse(&server).unwrap(),
            tools: tools(),
            connect_timeout: CONNECT_TIMEOUT,
            work_dir: None,
        },
        &progress,
    )
    .await;
    assert!(verified.ok, "{}", serde_json::to_string(&verified).unwrap());
    db.drop_now().await;
}
