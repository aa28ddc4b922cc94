//! Shared by `restore` and `verify`: finding a backup and downloading its dump to a local file
//! (so the checksum is known before pg_restore sees a byte).

use std::path::Path;
use std::time::Instant;

use tempfile::NamedTempFile;

use super::id::{BackupId, BackupSelector};
use super::layout::{EntryState, latest_complete};
use super::outcome::{CommandError, Failure};
use super::progress::Progress;
use super::store::BackupStore;

/// The id `selector` stands for; only complete backups qualify.
pub async fn resolve(
    store: &BackupStore,
    selector: BackupSelector,
) -> Result<BackupId, CommandError> {
    let entries = store.catalog().await?;
    match selector {
        BackupSelector::Latest => {
            latest_complete(&entries)
                .map(|entry| entry.id)
                .ok_or_else(|| {
                    CommandError::new(
                        Failure::BackupNotFound,
                        format!("no complete backup in {}", store.destination()),
                    )
                })
        }
        BackupSelector::Id(id) => match entries
            .iter()
            .find(|entry| entry.id == id)
            .map(|entry| entry.state())
        {
            Some(EntryState::Complete) => Ok(id),
            Some(state) => Err(CommandError::new(
                Failure::BackupNotFound,
                format!(
                    "backup {id} in {} is {}, not complete",
                    store.destination(),
                    state.as_str()
                ),
            )),
            None => Err(CommandError::new(
                Failure::BackupNotFound,
                format!("no backup {id} in {}", store.destination()),
            )),
        },
    }
}

/// A downloaded dump; the file is deleted when this is dropped.
pub struct Fetched {
    pub file: NamedTempFile,
    pub size: u64,
    pub sha256: String,
    pub seconds: f64,
}

pub async fn fetch_dump(
    store: &BackupStore,
    id: BackupId,
    work_dir: Option<&Path>,
    progress: &Progress,
) -> Result<Fetched, CommandError> {
    let started = Instant::now();
    let local_error = |err: std::io::Error| {
        CommandError::new(
            Failure::StorageFailed,
            format!("cannot create a temporary file for the dump: {err}"),
        )
    };
    let builder = {
        let mut builder = tempfile::Builder::new();
        builder.prefix("fp-backup-").suffix(".dump");
        builder
    };
    let file = match work_dir {
        Some(dir) => builder.tempfile_in(dir),
        None => builder.tempfile(),
    }
    .map_err(local_error)?;
    let mut writer = tokio::fs::File::from_std(file.reopen().map_err(local_error)?);
    progress.note(format!(
        "downloading backup {id} from {}",
        store.destination()
    ));
    let (size, sha256) = store.download_dump(id, &mut writer, progress).await?;
    writer.sync_all().await.map_err(local_error)?;
    Ok(Fetched {
        file,
        size,
        sha256,
        seconds: started.elapsed().as_secs_f64(),
    })
}
