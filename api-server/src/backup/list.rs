//! `backups`: what a destination holds, with each backup's state and checksum status.

use serde::Serialize;

use super::destination::Destination;
use super::id::BackupId;
use super::layout::{CatalogEntry, EntryState};
use super::outcome::CommandError;
use super::progress::Progress;
use super::store::{BackupStore, S3Settings, StoreError};

#[derive(Debug, Clone)]
pub struct ListRequest {
    pub destination: Destination,
    pub s3: S3Settings,
    /// Download every complete dump and compare its sha256 with the manifest.
    pub verify_checksums: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListedBackup {
    pub id: BackupId,
    pub time: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration_version: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `verified` (sha256 recomputed and equal), `size-ok` (stored size equals the manifest's;
    /// sha256 not recomputed), `mismatch`, `size-mismatch`, `manifest-unreadable`, or `none`
    /// for backups that have no manifest to check against.
    pub checksum: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListSummary {
    pub command: &'static str,
    pub ok: bool,
    pub destination: String,
    /// Complete backups and their total dump size.
    pub count: usize,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<BackupId>,
    pub backups: Vec<ListedBackup>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<super::outcome::Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Count and total bytes of the complete backups among `entries`.
pub fn totals(entries: &[CatalogEntry]) -> (usize, u64) {
    entries
        .iter()
        .filter(|entry| entry.state() == EntryState::Complete)
        .fold((0, 0), |(count, bytes), entry| {
            (count + 1, bytes + entry.dump_size.unwrap_or(0))
        })
}

pub async fn run_list(request: &ListRequest, progress: &Progress) -> ListSummary {
    let mut summary = ListSummary {
        command: "backups",
        ok: false,
        destination: request.destination.to_string(),
        count: 0,
        bytes: 0,
        latest: None,
        backups: Vec::new(),
        reason: None,
        error: None,
    };
    match list_into(request, progress, &mut summary).await {
        Ok(()) => summary.ok = true,
        Err(err) => {
            summary.reason = Some(err.failure);
            summary.error = Some(err.message);
        }
    }
    summary
}

async fn list_into(
    request: &ListRequest,
    progress: &Progress,
    summary: &mut ListSummary,
) -> Result<(), CommandError> {
    let store = BackupStore::open(&request.destination, &request.s3)?;
    let entries = store.catalog().await?;
    (summary.count, summary.bytes) = totals(&entries);
    summary.latest = super::layout::latest_complete(&entries).map(|entry| entry.id);
    for entry in entries.iter().rev() {
        summary
            .backups
            .push(describe(&store, entry, request.verify_checksums, progress).await?);
    }
    Ok(())
}

async fn describe(
    store: &BackupStore,
    entry: &CatalogEntry,
    verify_checksums: bool,
    progress: &Progress,
) -> Result<ListedBackup, CommandError> {
    let mut listed = ListedBackup {
        id: entry.id,
        time: entry.id.time().to_rfc3339(),
        state: entry.state().as_str(),
        size_bytes: entry.dump_size,
        database: None,
        migration_version: None,
        sha256: None,
        checksum: "none",
        detail: None,
    };
    if !entry.has_manifest() {
        return Ok(listed);
    }
    let manifest = match store.read_manifest(entry.id).await {
        Ok(manifest) => manifest,
        Err(err @ StoreError::BadManifest { .. }) => {
            listed.checksum = "manifest-unreadable";
            listed.detail = Some(err.to_string());
            return Ok(listed);
        }
        Err(err) => return Err(err.into()),
    };
    listed.database = Some(manifest.database.clone());
    listed.migration_version = manifest.stats.migration_version;
    listed.sha256 = Some(manifest.dump.sha256.clone());
    let Some(stored_size) = entry.dump_size else {
        return Ok(listed);
    };
    if stored_size != manifest.dump.size_bytes {
        listed.checksum = "size-mismatch";
        listed.detail = Some(format!(
            "stored dump has {stored_size} bytes, manifest says {}",
            manifest.dump.size_bytes
        ));
    } else if verify_checksums {
        let (_, sha256) = store.hash_dump(entry.id, progress).await?;
        if sha256 == manifest.dump.sha256 {
            listed.checksum = "verified";
        } else {
            listed.checksum = "mismatch";
            listed.detail = Some(format!(
                "dump sha256 is {sha256}, manifest says {}",
                manifest.dump.sha256
            ));
        }
    } else {
        listed.checksum = "size-ok";
    }
    Ok(listed)
}

/// A fixed-width table for people at a terminal.
pub fn render_table(summary: &ListSummary) -> String {
    let mut out = format!(
        "{:<17}  {:<25}  {:<12}  {:>12}  {:<19}  {}\n",
        "ID", "TIME", "STATE", "SIZE", "CHECKSUM", "DETAIL"
    );
    for backup in &summary.backups {
        out.push_str(&format!(
            "{:<17}  {:<25}  {:<12}  {:>12}  {:<19}  {}\n",
            backup.id.to_string(),
            backup.time,
            backup.state,
            backup
                .size_bytes
                .map(|size| size.to_string())
                .unwrap_or_else(|| "-".to_owned()),
            backup.checksum,
            backup.detail.as_deref().unwrap_or("")
        ));
    }
    out.push_str(&format!(
        "{} complete backup(s), {} bytes, in {}\n",
        summary.count, summary.bytes, summary.destination
    ));
    out
}
