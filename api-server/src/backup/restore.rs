//! `restore`: puts a backup into a target database. The dump's checksum is verified before
//! pg_restore runs; a non-empty target is refused unless forced; pg_restore runs in a single
//! transaction, so a failed restore leaves the target as it was. Afterwards the restored
//! database is compared with the manifest and the result reported.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::destination::Destination;
use super::fetch::{fetch_dump, resolve};
use super::id::{BackupId, BackupSelector};
use super::manifest::{StatsMismatch, compare_stats};
use super::outcome::{CommandError, Failure};
use super::postgres::{self, PgTarget, PgTools, RestoreMode};
use super::progress::Progress;
use super::store::{BackupStore, S3Settings};
use super::verify::{checksum_problems, size_problems};

#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub destination: Destination,
    pub s3: S3Settings,
    pub selector: BackupSelector,
    pub target: PgTarget,
    /// Restore over existing objects (`--clean --if-exists`).
    pub force: bool,
    /// Create the target database if it does not exist.
    pub create: bool,
    pub tools: PgTools,
    pub connect_timeout: Duration,
    pub work_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreSummary {
    pub command: &'static str,
    pub ok: bool,
    pub destination: String,
    pub target: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<BackupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The target held objects and --force replaced them.
    pub replaced_existing: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    pub duration_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// Differences from the manifest found after restoring (tables the dump does not know,
    /// left in place by a forced restore, are listed here but do not fail it).
    pub differences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub async fn run_restore(request: &RestoreRequest, progress: &Progress) -> RestoreSummary {
    let started = Instant::now();
    let mut summary = RestoreSummary {
        command: "restore",
        ok: false,
        destination: request.destination.to_string(),
        target: request.target.to_string(),
        id: None,
        size_bytes: None,
        sha256: None,
        replaced_existing: false,
        download_seconds: None,
        restore_seconds: None,
        duration_seconds: 0.0,
        migration_version: None,
        tables: None,
        rows: None,
        differences: Vec::new(),
        reason: None,
        error: None,
    };
    match restore_into(request, progress, &mut summary).await {
        Ok(()) => summary.ok = true,
        Err(err) => {
            summary.reason = Some(err.failure);
            summary.error = Some(err.message);
        }
    }
    summary.duration_seconds = started.elapsed().as_secs_f64();
    summary
}

/// Creates the target database when missing (connecting to the server's `postgres` database).
async fn ensure_database(
    target: &PgTarget,
    connect_timeout: Duration,
    progress: &Progress,
) -> Result<(), CommandError> {
    let Some(name) = target.database() else {
        return Err(CommandError::new(
            Failure::InvalidArguments,
            "--create needs a database name in the target URL",
        ));
    };
    let maintenance = target.with_database("postgres");
    let mut conn = maintenance.connect(connect_timeout).await?;
    let existing = postgres::databases_like(&mut conn, &maintenance, &name).await?;
    if !existing.contains(&name) {
        progress.note(format!("creating database {name}"));
        postgres::create_database(&mut conn, &maintenance, &name).await?;
    }
    let _ = sqlx::Connection::close(conn).await;
    Ok(())
}

async fn restore_into(
    request: &RestoreRequest,
    progress: &Progress,
    summary: &mut RestoreSummary,
) -> Result<(), CommandError> {
    let store = BackupStore::open(&request.destination, &request.s3)?;
    let id = resolve(&store, request.selector).await?;
    summary.id = Some(id);
    let manifest = store.read_manifest(id).await?;

    if request.create {
        ensure_database(&request.target, request.connect_timeout, progress).await?;
    }
    // Refuse a non-empty target before downloading anything.
    let target = &request.target;
    let mut conn = target.connect(request.connect_timeout).await?;
    let (existing, total) = postgres::user_relations(&mut conn, target, 5).await?;
    let _ = sqlx::Connection::close(conn).await;
    let mode = if total == 0 {
        RestoreMode::IntoEmpty
    } else if request.force {
        summary.replaced_existing = true;
        RestoreMode::Clean
    } else {
        return Err(CommandError::new(
            Failure::TargetNotEmpty,
            format!(
                "target {target} is not empty ({total} relations, e.g. {}); restore into an empty database or pass --force to replace what the backup contains",
                existing.join(", ")
            ),
        ));
    };

    let fetched = fetch_dump(&store, id, request.work_dir.as_deref(), progress).await?;
    summary.size_bytes = Some(fetched.size);
    summary.sha256 = Some(fetched.sha256.clone());
    summary.download_seconds = Some(fetched.seconds);
    let problems: Vec<String> = size_problems(&manifest, fetched.size)
        .into_iter()
        .chain(checksum_problems(&manifest, &fetched.sha256))
        .map(|p| format!("{}: {}", p.reason, p.message))
        .collect();
    if !problems.is_empty() {
        return Err(CommandError::new(
            Failure::VerifyFailed,
            format!(
                "backup {id} is damaged, nothing was restored: {}",
                problems.join("; ")
            ),
        ));
    }

    progress.note(format!("restoring {id} into {target}"));
    let restore_started = Instant::now();
    request
        .tools
        .restore(
            target,
            fetched.file.path(),
            mode,
            request.connect_timeout,
            progress,
        )
        .await?;
    summary.restore_seconds = Some(restore_started.elapsed().as_secs_f64());

    let mut conn = target.connect(request.connect_timeout).await?;
    postgres::normalise_session(&mut conn, target).await?;
    let with_digests = manifest
        .stats
        .tables
        .iter()
        .any(|table| table.content_digest.is_some());
    let actual = postgres::collect_stats(&mut conn, target, with_digests).await?;
    let _ = sqlx::Connection::close(conn).await;
    summary.migration_version = actual.migration_version;
    summary.tables = Some(actual.tables.len());
    summary.rows = Some(actual.tables.iter().map(|table| table.rows).sum());

    let mismatches = compare_stats(&manifest.stats, &actual);
    summary.differences = mismatches.iter().map(ToString::to_string).collect();
    let serious: Vec<&StatsMismatch> = mismatches
        .iter()
        .filter(|m| !matches!(m, StatsMismatch::UnexpectedTable { .. }))
        .collect();
    if serious.is_empty() {
        progress.note(format!("restored {id}: matches its manifest"));
        Ok(())
    } else {
        Err(CommandError::new(
            Failure::VerifyFailed,
            format!(
                "restored {id}, but the result differs from the manifest: {}",
                serious
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ))
    }
}
