//! `verify`: the restore drill. Downloads a backup, checks its size and checksum, restores it
//! into a scratch database on the given server, compares the schema migration version and each
//! table's row count and content digest with the manifest, and drops the scratch database
//! whatever happened. Every check runs even after one fails, so the summary names all problems.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use super::destination::Destination;
use super::fetch::{fetch_dump, resolve};
use super::id::{BackupId, BackupSelector};
use super::manifest::{Manifest, compare_stats};
use super::outcome::{CommandError, Failure};
use super::postgres::{self, PgTarget, PgTools, RestoreMode};
use super::progress::Progress;
use super::store::{BackupStore, S3Settings};

/// Scratch databases are named `fp_verify_<unix seconds>_<pid>`.
pub const SCRATCH_PREFIX: &str = "fp_verify_";
/// A scratch database older than this was left by a killed drill and is dropped.
const STALE_SCRATCH: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub destination: Destination,
    pub s3: S3Settings,
    pub selector: BackupSelector,
    /// A server where a scratch database can be created (the URL's database is only used to
    /// connect for CREATE/DROP DATABASE).
    pub server: PgTarget,
    pub tools: PgTools,
    pub connect_timeout: Duration,
    pub work_dir: Option<PathBuf>,
}

/// One problem found, with a stable reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifySummary {
    pub command: &'static str,
    pub ok: bool,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<BackupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch_database: Option<String>,
    pub scratch_dropped: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_seconds: Option<f64>,
    pub duration_seconds: f64,
    pub checks: Vec<Check>,
    pub problems: Vec<Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl VerifySummary {
    fn record(&mut self, check: &'static str, problems: Vec<Problem>) {
        let detail = (!problems.is_empty()).then(|| {
            problems
                .iter()
                .map(|problem| problem.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        });
        self.checks.push(Check {
            check,
            ok: problems.is_empty(),
            detail,
        });
        self.problems.extend(problems);
    }
}

fn problem(reason: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        reason,
        table: None,
        message: message.into(),
    }
}

pub async fn run_verify(request: &VerifyRequest, progress: &Progress) -> VerifySummary {
    let started = Instant::now();
    let mut summary = VerifySummary {
        command: "verify",
        ok: false,
        destination: request.destination.to_string(),
        id: None,
        scratch_database: None,
        scratch_dropped: false,
        size_bytes: None,
        download_seconds: None,
        restore_seconds: None,
        duration_seconds: 0.0,
        checks: Vec::new(),
        problems: Vec::new(),
        reason: None,
        error: None,
    };
    match verify_into(request, progress, &mut summary).await {
        Ok(()) if summary.problems.is_empty() => summary.ok = true,
        Ok(()) => {
            summary.reason = Some(Failure::VerifyFailed);
            summary.error = Some(
                summary
                    .problems
                    .iter()
                    .map(|p| format!("{}: {}", p.reason, p.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        Err(err) => {
            summary.reason = Some(err.failure);
            summary.error = Some(err.message);
        }
    }
    summary.duration_seconds = started.elapsed().as_secs_f64();
    summary
}

async fn verify_into(
    request: &VerifyRequest,
    progress: &Progress,
    summary: &mut VerifySummary,
) -> Result<(), CommandError> {
    let store = BackupStore::open(&request.destination, &request.s3)?;
    let id = resolve(&store, request.selector).await?;
    summary.id = Some(id);
    let manifest = match store.read_manifest(id).await {
        Ok(manifest) => manifest,
        Err(err @ super::store::StoreError::BadManifest { .. }) => {
            summary.record(
                "manifest",
                vec![problem("ManifestUnreadable", err.to_string())],
            );
            return Ok(());
        }
        Err(err) => return Err(err.into()),
    };
    summary.record("manifest", Vec::new());

    let fetched = fetch_dump(&store, id, request.work_dir.as_deref(), progress).await?;
    summary.size_bytes = Some(fetched.size);
    summary.download_seconds = Some(fetched.seconds);
    summary.record("size", size_problems(&manifest, fetched.size));
    summary.record("checksum", checksum_problems(&manifest, &fetched.sha256));

    // The scratch database lives on the given server; connect to its maintenance database.
    let admin_target = &request.server;
    let mut admin = admin_target.connect(request.connect_timeout).await?;
    drop_stale_scratch(&mut admin, admin_target, progress).await;
    let scratch = format!(
        "{SCRATCH_PREFIX}{}_{}",
        Utc::now().timestamp(),
        std::process::id()
    );
    postgres::create_database(&mut admin, admin_target, &scratch).await?;
    summary.scratch_database = Some(scratch.clone());
    progress.note(format!("restoring {id} into scratch database {scratch}"));

    let outcome = restore_and_compare(
        request,
        &manifest,
        &fetched.file,
        &scratch,
        progress,
        summary,
    )
    .await;

    match postgres::drop_database(&mut admin, admin_target, &scratch).await {
        Ok(()) => summary.scratch_dropped = true,
        Err(err) => progress.note(format!("could not drop scratch database {scratch}: {err}")),
    }
    let _ = sqlx::Connection::close(admin).await;
    outcome
}

async fn restore_and_compare(
    request: &VerifyRequest,
    manifest: &Manifest,
    file: &tempfile::NamedTempFile,
    scratch: &str,
    progress: &Progress,
    summary: &mut VerifySummary,
) -> Result<(), CommandError> {
    let target = request.server.with_database(scratch);
    let restore_started = Instant::now();
    let restored = request
        .tools
        .restore(
            &target,
            file.path(),
            RestoreMode::IntoEmpty,
            request.connect_timeout,
            progress,
        )
        .await;
    summary.restore_seconds = Some(restore_started.elapsed().as_secs_f64());
    match restored {
        Ok(()) => summary.record("restore", Vec::new()),
        Err(err) => {
            summary.record("restore", vec![problem("RestoreFailed", err.to_string())]);
            return Ok(());
        }
    }
    let mut conn = target.connect(request.connect_timeout).await?;
    postgres::normalise_session(&mut conn, &target).await?;
    let with_digests = manifest
        .stats
        .tables
        .iter()
        .any(|table| table.content_digest.is_some());
    let actual = postgres::collect_stats(&mut conn, &target, with_digests).await?;
    let _ = sqlx::Connection::close(conn).await;

    let mismatches = compare_stats(&manifest.stats, &actual);
    let (version, tables): (Vec<_>, Vec<_>) = mismatches.into_iter().partition(|m| {
        matches!(
            m,
            super::manifest::StatsMismatch::MigrationVersionMismatch { .. }
        )
    });
    summary.record(
        "migration_version",
        version
            .iter()
            .map(|m| problem(m.reason(), m.to_string()))
            .collect(),
    );
    summary.record(
        "tables",
        tables
            .iter()
            .map(|m| Problem {
                reason: m.reason(),
                table: mismatch_table(m),
                message: m.to_string(),
            })
            .collect(),
    );
    Ok(())
}

fn mismatch_table(mismatch: &super::manifest::StatsMismatch) -> Option<String> {
    use super::manifest::StatsMismatch as M;
    match mismatch {
        M::MigrationVersionMismatch { .. } => None,
        M::TableMissing { table }
        | M::UnexpectedTable { table }
        | M::RowCountMismatch { table, .. }
        | M::ContentMismatch { table, .. } => Some(table.clone()),
    }
}

pub fn size_problems(manifest: &Manifest, size: u64) -> Vec<Problem> {
    if manifest.dump.size_bytes == size {
        Vec::new()
    } else {
        vec![problem(
            "SizeMismatch",
            format!(
                "dump has {size} bytes, manifest says {}",
                manifest.dump.size_bytes
            ),
        )]
    }
}

pub fn checksum_problems(manifest: &Manifest, sha256: &str) -> Vec<Problem> {
    if manifest.dump.sha256.eq_ignore_ascii_case(sha256) {
        Vec::new()
    } else {
        vec![problem(
            "ChecksumMismatch",
            format!(
                "dump sha256 is {sha256}, manifest says {}",
                manifest.dump.sha256
            ),
        )]
    }
}

/// Drops scratch databases that a killed drill left behind (by the time in their name).
async fn drop_stale_scratch(
    admin: &mut sqlx::PgConnection,
    target: &PgTarget,
    progress: &Progress,
) {
    let Ok(names) = postgres::databases_like(admin, target, SCRATCH_PREFIX).await else {
        return;
    };
    let now = Utc::now().timestamp();
    for name in names {
        let created = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<i64>().ok());
        let stale = created.is_some_and(|created| {
            now.saturating_sub(created) > i64::try_from(STALE_SCRATCH.as_secs()).unwrap_or(i64::MAX)
        });
        if stale {
            progress.note(format!("dropping stale scratch database {name}"));
            let _ = postgres::drop_database(admin, target, &name).await;
        }
    }
}
