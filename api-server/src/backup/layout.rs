//! Where a backup's objects live inside a destination, and what a listing of them means.
//!
//! ```text
//! <prefix>/<id>/database.dump   pg_dump custom format, written first
//! <prefix>/<id>/manifest.json   written last: a backup without it never counts
//! <prefix>/<id>/PRUNING         written first when pruning, removed last (intent record)
//! ```
//! Pure: the store lists objects, this module classifies them.

use std::collections::BTreeMap;

use super::id::BackupId;

pub const DUMP_FILE: &str = "database.dump";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const PRUNING_FILE: &str = "PRUNING";

/// The three objects a backup can consist of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectKind {
    Dump,
    Manifest,
    Pruning,
}

impl ObjectKind {
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Dump => DUMP_FILE,
            Self::Manifest => MANIFEST_FILE,
            Self::Pruning => PRUNING_FILE,
        }
    }
}

/// The key of one object relative to the destination's prefix.
pub fn object_key(id: BackupId, kind: ObjectKind) -> String {
    format!("{id}/{}", kind.file_name())
}

/// Parses a key relative to the prefix; `None` for anything that is not ours.
pub fn parse_object_key(key: &str) -> Option<(BackupId, ObjectKind)> {
    let (id, file) = key.split_once('/')?;
    let kind = match file {
        DUMP_FILE => ObjectKind::Dump,
        MANIFEST_FILE => ObjectKind::Manifest,
        PRUNING_FILE => ObjectKind::Pruning,
        _ => return None,
    };
    Some((id.parse().ok()?, kind))
}

/// What the objects stored under one id amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// Dump and manifest present: a backup that counts.
    Complete,
    /// A dump without a manifest: a backup still running, or one that failed or was killed.
    Incomplete,
    /// A manifest without its dump and no prune in progress: damaged storage.
    DumpMissing,
    /// A prune of this backup started (and may have been interrupted).
    Pruning,
}

impl EntryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Incomplete => "incomplete",
            Self::DumpMissing => "dump-missing",
            Self::Pruning => "pruning",
        }
    }
}

/// Everything stored under one backup id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub id: BackupId,
    pub dump_size: Option<u64>,
    pub manifest_size: Option<u64>,
    pub pruning: bool,
}

impl CatalogEntry {
    pub fn state(&self) -> EntryState {
        match (self.pruning, self.manifest_size, self.dump_size) {
            (true, _, _) => EntryState::Pruning,
            (false, Some(_), Some(_)) => EntryState::Complete,
            (false, Some(_), None) => EntryState::DumpMissing,
            (false, None, _) => EntryState::Incomplete,
        }
    }

    /// Whether the manifest exists (complete or damaged backups; not pruning ones).
    pub fn has_manifest(&self) -> bool {
        self.manifest_size.is_some() && !self.pruning
    }
}

/// Groups listed objects (key relative to the prefix, size) into entries, oldest first.
/// Keys that are not ours are ignored, so a shared bucket prefix does no harm.
pub fn catalog<'a>(objects: impl IntoIterator<Item = (&'a str, u64)>) -> Vec<CatalogEntry> {
    let mut entries: BTreeMap<BackupId, CatalogEntry> = BTreeMap::new();
    for (key, size) in objects {
        let Some((id, kind)) = parse_object_key(key) else {
            continue;
        };
        let entry = entries.entry(id).or_insert(CatalogEntry {
            id,
            dump_size: None,
            manifest_size: None,
            pruning: false,
        });
        match kind {
            ObjectKind::Dump => entry.dump_size = Some(size),
            ObjectKind::Manifest => entry.manifest_size = Some(size),
            ObjectKind::Pruning => entry.pruning = true,
        }
    }
    entries.into_values().collect()
}

/// The newest complete backup.
pub fn latest_complete(entries: &[CatalogEntry]) -> Option<&CatalogEntry> {
    entries
        .iter()
        .filter(|entry| entry.state() == EntryState::Complete)
        .max_by_key(|entry| entry.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> BackupId {
        text.parse().unwrap()
    }

    #[test]
    fn keys_round_trip() {
        let backup = id("20261128T030000Z");
        for kind in [ObjectKind::Dump, ObjectKind::Manifest, ObjectKind::Pruning] {
            let key = object_key(backup, kind);
            assert_eq!(parse_object_key(&key), Some((backup, kind)));
        }
        assert_eq!(
            object_key(backup, ObjectKind::Dump),
            "20261128T030000Z/database.dump"
        );
    }

    #[test]
    fn foreign_keys_are_ignored() {
        for key in [
            "README",
            "20261128T030000Z",
            "20261128T030000Z/other.txt",
            "not-an-id/manifest.json",
            "a/20261128T030000Z/manifest.json",
        ] {
            assert_eq!(parse_object_key(key), None, "{key}");
        }
    }

    #[test]
    fn catalog_classifies_each_state() {
        let entries = catalog([
            ("20260101T000000Z/database.dump", 10),
            ("20260101T000000Z/manifest.json", 1),
            ("20260102T000000Z/database.dump", 20),
            ("20260103T000000Z/manifest.json", 1),
            ("20260104T000000Z/PRUNING", 0),
            ("20260104T000000Z/database.dump", 5),
            ("junk/file", 3),
        ]);
        let states: Vec<(String, EntryState)> = entries
            .iter()
            .map(|entry| (entry.id.to_string(), entry.state()))
            .collect();
        assert_eq!(
            states,
            vec![
                ("20260101T000000Z".to_owned(), EntryState::Complete),
                ("20260102T000000Z".to_owned(), EntryState::Incomplete),
                ("20260103T000000Z".to_owned(), EntryState::DumpMissing),
                ("20260104T000000Z".to_owned(), EntryState::Pruning),
            ]
        );
        assert_eq!(entries[0].dump_size, Some(10));
    }

    #[test]
    fn latest_complete_skips_incomplete_and_pruning() {
        let entries = catalog([
            ("20260101T000000Z/database.dump", 10),
            ("20260101T000000Z/manifest.json", 1),
            ("20260102T000000Z/database.dump", 10),
            ("20260102T000000Z/manifest.json", 1),
            ("20260103T000000Z/database.dump", 10),
            ("20260104T000000Z/database.dump", 10),
            ("20260104T000000Z/manifest.json", 1),
            ("20260104T000000Z/PRUNING", 0),
        ]);
        assert_eq!(
            latest_complete(&entries).map(|entry| entry.id),
            Some(id("20260102T000000Z"))
        );
        assert_eq!(latest_complete(&[]), None);
    }
}
