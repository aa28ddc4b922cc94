//! `backup`: one consistent pg_dump streamed to every destination, checked after upload,
//! recorded by a manifest written last, then retention.
//!
//! Consistency: we open a REPEATABLE READ, READ ONLY transaction, export its snapshot and hand it
//! to `pg_dump --snapshot`; the row counts and digests for the manifest are taken in that same
//! transaction while pg_dump runs. Both see exactly the same data, writers are never blocked, and
//! counting runs in parallel with the dump instead of after it.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::destination::Destination;
use super::id::BackupId;
use super::layout::{DUMP_FILE, ObjectKind};
use super::manifest::{DatabaseStats, DumpInfo, MANIFEST_FORMAT, Manifest};
use super::outcome::{CommandError, Failure};
use super::postgres::{self, DumpOptions, PgTarget, PgTools};
use super::progress::Progress;
use super::prune::{PruneReport, prune};
use super::retention::RetentionPolicy;
use super::store::{BackupStore, DumpUpload, S3Settings};

const READ_BUFFER: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub database: PgTarget,
    pub destinations: Vec<Destination>,
    pub s3: S3Settings,
    pub tools: PgTools,
    pub dump: DumpOptions,
    pub retention: RetentionPolicy,
    pub content_digests: bool,
    pub connect_timeout: Duration,
}

/// The outcome at one destination.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationResult {
    pub destination: String,
    pub ok: bool,
    /// Seconds from the first byte to the manifest being written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneReport>,
    /// Complete backups at this destination after pruning, and their total size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DestinationResult {
    fn new(destination: &Destination) -> Self {
        Self {
            destination: destination.to_string(),
            ok: false,
            upload_seconds: None,
            verify_seconds: None,
            prune: None,
            count: None,
            bytes: None,
            reason: None,
            error: None,
        }
    }

    fn fail(&mut self, err: CommandError) {
        self.ok = false;
        self.reason = Some(err.failure);
        self.error = Some(err.message);
    }
}

/// The one-line JSON summary of `backup`.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    pub command: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<BackupId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tables: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump_seconds: Option<f64>,
    pub duration_seconds: f64,
    pub destinations: Vec<DestinationResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BackupSummary {
    pub fn failure(&self) -> Option<Failure> {
        self.reason
    }
}

/// Runs a backup. Never panics on bad input; every failure ends up in the summary.
pub async fn run_backup(request: &BackupRequest, progress: &Progress) -> BackupSummary {
    let started = Instant::now();
    let mut summary = BackupSummary {
        command: "backup",
        ok: false,
        id: None,
        database: request.database.database(),
        size_bytes: None,
        sha256: None,
        migration_version: None,
        tables: None,
        rows: None,
        dump_seconds: None,
        duration_seconds: 0.0,
        destinations: request
            .destinations
            .iter()
            .map(DestinationResult::new)
            .collect(),
        reason: None,
        error: None,
    };
    if let Err(err) = backup_into(request, progress, &mut summary).await {
        summary.reason = Some(err.failure);
        summary.error = Some(err.message);
    }
    // A destination that failed makes the whole run fail (the off-site copy matters), but a
    // dump that reached one destination is still a usable backup there.
    let destination_failure = Failure::worst(summary.destinations.iter().filter_map(|d| d.reason));
    let prune_failure = summary
        .destinations
        .iter()
        .any(|d| d.prune.as_ref().is_some_and(|p| p.error.is_some()))
        .then_some(Failure::PruneFailed);
    summary.reason = Failure::worst(
        summary
            .reason
            .into_iter()
            .chain(destination_failure)
            .chain(prune_failure),
    );
    if summary.error.is_none()
        && let Some(first) = summary.destinations.iter().find_map(|d| {
            d.error
                .clone()
                .or_else(|| d.prune.as_ref().and_then(|p| p.error.clone()))
                .map(|e| format!("{}: {e}", d.destination))
        })
    {
        summary.error = Some(first);
    }
    summary.ok = summary.reason.is_none();
    summary.duration_seconds = started.elapsed().as_secs_f64();
    summary
}

async fn backup_into(
    request: &BackupRequest,
    progress: &Progress,
    summary: &mut BackupSummary,
) -> Result<(), CommandError> {
    if request.destinations.is_empty() {
        return Err(CommandError::new(
            Failure::InvalidArguments,
            "no --destination given",
        ));
    }
    // Open and probe every destination before dumping: bad credentials fail in seconds.
    let mut stores: Vec<Option<BackupStore>> = Vec::new();
    for (destination, result) in request
        .destinations
        .iter()
        .zip(summary.destinations.iter_mut())
    {
        let opened = match BackupStore::open(destination, &request.s3) {
            Ok(store) => store.check_access().await.map(|()| store),
            Err(err) => Err(err),
        };
        match opened {
            Ok(store) => stores.push(Some(store)),
            Err(err) => {
                progress.note(format!("destination {destination} unusable: {err}"));
                result.fail(err.into());
                stores.push(None);
            }
        }
    }
    if stores.iter().all(Option::is_none) {
        return Err(CommandError::new(
            Failure::worst(summary.destinations.iter().filter_map(|d| d.reason))
                .unwrap_or(Failure::StorageFailed),
            "no destination is usable",
        ));
    }

    let target = &request.database;
    let mut conn = target.connect(request.connect_timeout).await?;
    postgres::normalise_session(&mut conn, target).await?;
    let server_version = postgres::server_version(&mut conn, target).await?;
    let database = postgres::current_database(&mut conn, target).await?;
    summary.database = Some(database.clone());
    let pg_dump_version = request.tools.version("pg_dump").await?;

    let started_at = Utc::now();
    let id = BackupId::from_time(started_at);
    summary.id = Some(id);
    progress.note(format!(
        "backup {id} of database {database} (PostgreSQL {server_version}) to {} destination(s)",
        stores.iter().flatten().count()
    ));

    let snapshot = postgres::begin_snapshot(&mut conn, target).await?;
    let dump = request.tools.spawn_dump(target, &snapshot, &request.dump)?;

    let mut uploads: Vec<Option<DumpUpload>> = Vec::new();
    for (store, result) in stores.iter().zip(summary.destinations.iter_mut()) {
        let Some(store) = store else {
            uploads.push(None);
            continue;
        };
        match store.start_dump_upload(id).await {
            Ok(upload) => uploads.push(Some(upload)),
            Err(err) => {
                result.fail(err.into());
                uploads.push(None);
            }
        }
    }

    let dump_started = Instant::now();
    let (pumped, stats) = tokio::join!(
        pump(dump, &mut uploads, &mut summary.destinations, progress),
        postgres::collect_stats(&mut conn, target, request.content_digests),
    );
    let dump_seconds = dump_started.elapsed().as_secs_f64();
    // Release the snapshot whatever happened; a failure here does not change the dump.
    let _ = postgres::end_snapshot(&mut conn, target).await;
    let _ = sqlx::Connection::close(conn).await;

    let (size, sha256, stats) = match (pumped, stats) {
        (Ok((size, sha256)), Ok(stats)) => (size, sha256, stats),
        (Err(err), _) => {
            abort_all(uploads).await;
            return Err(err);
        }
        (Ok(_), Err(err)) => {
            abort_all(uploads).await;
            return Err(err.into());
        }
    };
    record_stats(summary, &stats);
    summary.dump_seconds = Some(dump_seconds);
    summary.size_bytes = Some(size);
    summary.sha256 = Some(sha256.clone());
    progress.note(format!(
        "dumped {:.1} MiB in {dump_seconds:.1}s, sha256 {sha256}",
        super::progress::mib(size)
    ));

    let finished_at = Utc::now();
    for ((upload, store), result) in uploads
        .into_iter()
        .zip(&stores)
        .zip(summary.destinations.iter_mut())
    {
        let (Some(upload), Some(store)) = (upload, store) else {
            continue;
        };
        let upload_started = Instant::now();
        if let Err(err) = upload.finish().await {
            result.fail(err.into());
            continue;
        }
        result.upload_seconds = Some(dump_seconds + upload_started.elapsed().as_secs_f64());
        let verify_started = Instant::now();
        match verify_upload(store, id, size, &sha256, progress).await {
            Ok(()) => result.verify_seconds = Some(verify_started.elapsed().as_secs_f64()),
            Err(err) => {
                // A dump that does not read back correctly must not linger as a candidate.
                let _ = store.delete_object(id, ObjectKind::Dump).await;
                result.fail(err);
                continue;
            }
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            id,
            database: database.clone(),
            server_version: server_version.clone(),
            pg_dump_version: pg_dump_version.clone(),
            started_at,
            finished_at,
            dump: DumpInfo {
                file: DUMP_FILE.to_owned(),
                format: "custom".to_owned(),
                size_bytes: size,
                sha256: sha256.clone(),
            },
            consistency: "exported-snapshot".to_owned(),
            stats: stats.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        match store.write_manifest(&manifest).await {
            Ok(()) => {
                result.ok = true;
                progress.note(format!("backup {id} complete at {}", store.destination()));
            }
            Err(err) => result.fail(err.into()),
        }
    }

    for (store, result) in stores.iter().zip(summary.destinations.iter_mut()) {
        if let (Some(store), true) = (store, result.ok) {
            result.prune = Some(prune(store, &request.retention, Utc::now(), progress).await);
            if let Ok(entries) = store.catalog().await {
                let (count, bytes) = super::list::totals(&entries);
                result.count = Some(count);
                result.bytes = Some(bytes);
            }
        }
    }
    Ok(())
}

/// Streams pg_dump's archive to every upload, hashing it on the way. A destination whose upload
/// fails is dropped (and reported); the dump goes on while at least one remains.
async fn pump(
    mut dump: postgres::DumpProcess,
    uploads: &mut [Option<DumpUpload>],
    results: &mut [DestinationResult],
    progress: &Progress,
) -> Result<(u64, String), CommandError> {
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut buffer = vec![0_u8; READ_BUFFER];
    loop {
        let read = match dump.stdout.read(&mut buffer).await {
            Ok(read) => read,
            Err(err) => {
                dump.kill().await;
                return Err(CommandError::new(
                    Failure::DumpFailed,
                    format!("reading pg_dump output: {err}"),
                ));
            }
        };
        if read == 0 {
            break;
        }
        let chunk = &buffer[..read];
        hasher.update(chunk);
        size += read as u64;
        for (slot, result) in uploads.iter_mut().zip(results.iter_mut()) {
            let failed = match slot.as_mut() {
                Some(upload) => upload.write(chunk).await.err(),
                None => None,
            };
            if let Some(err) = failed {
                if let Some(upload) = slot.take() {
                    upload.abort().await;
                }
                progress.note(format!("upload to {} failed: {err}", result.destination));
                result.fail(err.into());
            }
        }
        if uploads.iter().all(Option::is_none) {
            dump.kill().await;
            return Err(CommandError::new(
                Failure::StorageFailed,
                "the upload to every destination failed",
            ));
        }
        progress.throughput("dumped", size, None);
    }
    dump.wait().await?;
    Ok((size, hex::encode(hasher.finalize())))
}

async fn abort_all(uploads: Vec<Option<DumpUpload>>) {
    for upload in uploads.into_iter().flatten() {
        upload.abort().await;
    }
}

fn record_stats(summary: &mut BackupSummary, stats: &DatabaseStats) {
    summary.migration_version = stats.migration_version;
    summary.tables = Some(stats.tables.len());
    summary.rows = Some(stats.tables.iter().map(|table| table.rows).sum());
}

/// Reads the stored dump back and compares it with what pg_dump produced.
async fn verify_upload(
    store: &BackupStore,
    id: BackupId,
    size: u64,
    sha256: &str,
    progress: &Progress,
) -> Result<(), CommandError> {
    let (stored_size, stored_sha256) = store.hash_dump(id, progress).await?;
    if stored_size == size && stored_sha256 == sha256 {
        Ok(())
    } else {
        Err(CommandError::new(
            Failure::UploadVerifyFailed,
            format!(
                "dump read back from {} has {stored_size} bytes and sha256 {stored_sha256}; dumped {size} bytes with sha256 {sha256}",
                store.destination()
            ),
        ))
    }
}
