//! The manifest: what a backup contains and what a restore of it must reproduce. Written after
//! the dump, so its presence is what makes a backup count. Comparison with a restored database
//! is pure.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::id::BackupId;

pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON for format {MANIFEST_FORMAT}: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("manifest has format {found}; this program reads format {MANIFEST_FORMAT}")]
    UnsupportedFormat { found: u32 },
    #[error("manifest id {found} does not match its location {expected}")]
    WrongId { expected: BackupId, found: BackupId },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: BackupId,
    /// Name of the database that was dumped.
    pub database: String,
    pub server_version: String,
    pub pg_dump_version: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub dump: DumpInfo,
    /// How the row counts were made consistent with the dump.
    pub consistency: String,
    #[serde(flatten)]
    pub stats: DatabaseStats,
    pub tool_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpInfo {
    pub file: String,
    /// `custom` (pg_dump -Fc): compressed, restorable selectively with pg_restore.
    pub format: String,
    pub size_bytes: u64,
    pub sha256: String,
}

/// What a database holds, as far as a restore check cares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseStats {
    /// Highest successful sqlx migration, `None` when `_sqlx_migrations` does not exist.
    pub migration_version: Option<i64>,
    pub tables: Vec<TableStats>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStats {
    pub schema: String,
    pub name: String,
    pub rows: i64,
    /// Order-independent digest of the rows' text form (sum of 64-bit md5 prefixes); `None`
    /// when digests were switched off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_digest: Option<String>,
}

impl TableStats {
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

impl Manifest {
    pub fn to_json(&self) -> Result<Vec<u8>, ManifestError> {
        Ok(serde_json::to_vec_pretty(self)?)
    }

    /// Parses a manifest read from `expected_id`'s location and checks it belongs there.
    pub fn from_json(bytes: &[u8], expected_id: BackupId) -> Result<Self, ManifestError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)?;
        let format = value
            .get("format")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if format != u64::from(MANIFEST_FORMAT) {
            return Err(ManifestError::UnsupportedFormat {
                found: u32::try_from(format).unwrap_or(u32::MAX),
            });
        }
        let manifest: Self = serde_json::from_value(value)?;
        if manifest.id != expected_id {
            return Err(ManifestError::WrongId {
                expected: expected_id,
                found: manifest.id,
            });
        }
        Ok(manifest)
    }
}

/// One way a restored database differs from its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason")]
pub enum StatsMismatch {
    MigrationVersionMismatch {
        expected: Option<i64>,
        actual: Option<i64>,
    },
    TableMissing {
        table: String,
    },
    UnexpectedTable {
        table: String,
    },
    RowCountMismatch {
        table: String,
        expected: i64,
        actual: i64,
    },
    ContentMismatch {
        table: String,
        expected: String,
        actual: String,
    },
}

impl StatsMismatch {
    /// The CamelCase reason, for summaries, events and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MigrationVersionMismatch { .. } => "MigrationVersionMismatch",
            Self::TableMissing { .. } => "TableMissing",
            Self::UnexpectedTable { .. } => "UnexpectedTable",
            Self::RowCountMismatch { .. } => "RowCountMismatch",
            Self::ContentMismatch { .. } => "ContentMismatch",
        }
    }
}

fn version_text(version: Option<i64>) -> String {
    version.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

impl fmt::Display for StatsMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MigrationVersionMismatch { expected, actual } => write!(
                f,
                "schema migration version is {}, manifest says {}",
                version_text(*actual),
                version_text(*expected)
            ),
            Self::TableMissing { table } => write!(
                f,
                "table {table} is in the manifest but missing after restore"
            ),
            Self::UnexpectedTable { table } => write!(
                f,
                "table {table} exists after restore but not in the manifest"
            ),
            Self::RowCountMismatch {
                table,
                expected,
                actual,
            } => write!(
                f,
                "table {table} has {actual} rows, manifest says {expected}"
            ),
            Self::ContentMismatch {
                table,
                expected,
                actual,
            } => write!(
                f,
                "table {table} content digest is {actual}, manifest says {expected}"
            ),
        }
    }
}

/// Every difference between what the manifest recorded and what a restore produced.
/// Digests are compared only where both sides have one.
pub fn compare_stats(expected: &DatabaseStats, actual: &DatabaseStats) -> Vec<StatsMismatch> {
    let mut mismatches = Vec::new();
    if expected.migration_version != actual.migration_version {
        mismatches.push(StatsMismatch::MigrationVersionMismatch {
            expected: expected.migration_version,
            actual: actual.migration_version,
        });
    }
    let by_name = |stats: &DatabaseStats| -> BTreeMap<String, TableStats> {
        stats
            .tables
            .iter()
            .map(|table| (table.qualified_name(), table.clone()))
            .collect()
    };
    let expected_tables = by_name(expected);
    let actual_tables = by_name(actual);
    for (name, want) in &expected_tables {
        let Some(got) = actual_tables.get(name) else {
            mismatches.push(StatsMismatch::TableMissing {
                table: name.clone(),
            });
            continue;
        };
        if want.rows != got.rows {
            mismatches.push(StatsMismatch::RowCountMismatch {
                table: name.clone(),
                expected: want.rows,
                actual: got.rows,
            });
        } else if let (Some(want_digest), Some(got_digest)) =
            (&want.content_digest, &got.content_digest)
            && want_digest != got_digest
        {
            mismatches.push(StatsMismatch::ContentMismatch {
                table: name.clone(),
                expected: want_digest.clone(),
                actual: got_digest.clone(),
            });
        }
    }
    for name in actual_tables.keys() {
        if !expected_tables.contains_key(name) {
            mismatches.push(StatsMismatch::UnexpectedTable {
                table: name.clone(),
            });
        }
    }
    mismatches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, rows: i64, digest: Option<&str>) -> TableStats {
        TableStats {
            schema: "public".to_owned(),
            name: name.to_owned(),
            rows,
            content_digest: digest.map(str::to_owned),
        }
    }

    fn stats(version: Option<i64>, tables: Vec<TableStats>) -> DatabaseStats {
        DatabaseStats {
            migration_version: version,
            tables,
        }
    }

    #[test]
    fn identical_stats_match() {
        let a = stats(
            Some(3),
            vec![table("matches", 10, Some("42")), table("teams", 2, None)],
        );
        assert!(compare_stats(&a, &a.clone()).is_empty());
    }

    #[test]
    fn reports_each_kind_of_difference_precisely() {
        let expected = stats(
            Some(20260101),
            vec![
                table("matches", 10, Some("1")),
                table("teams", 2, Some("2")),
                table("users", 5, Some("3")),
            ],
        );
        let actual = stats(
            Some(20251231),
            vec![
                table("matches", 9, Some("1")),
                table("teams", 2, Some("9")),
                table("extra", 0, None),
            ],
        );
        let mismatches = compare_stats(&expected, &actual);
        let reasons: Vec<&str> = mismatches.iter().map(StatsMismatch::reason).collect();
        assert_eq!(
            reasons,
            vec![
                "MigrationVersionMismatch",
                "RowCountMismatch",
                "ContentMismatch",
                "TableMissing",
                "UnexpectedTable"
            ]
        );
        assert_eq!(
            mismatches[1].to_string(),
            "table public.matches has 9 rows, manifest says 10"
        );
        assert_eq!(
            mismatches[3].to_string(),
            "table public.users is in the manifest but missing after restore"
        );
        assert_eq!(
            mismatches[0].to_string(),
            "schema migration version is 20251231, manifest says 20260101"
        );
    }

    #[test]
    fn digests_are_compared_only_when_both_sides_have_them() {
        let expected = stats(None, vec![table("t", 1, None)]);
        let actual = stats(None, vec![table("t", 1, Some("5"))]);
        assert!(compare_stats(&expected, &actual).is_empty());
    }

    #[test]
    fn missing_migration_table_is_a_version_of_none() {
        let mismatches = compare_stats(&stats(Some(1), vec![]), &stats(None, vec![]));
        assert_eq!(
            mismatches[0].to_string(),
            "schema migration version is none, manifest says 1"
        );
    }

    fn manifest() -> Manifest {
        let id: BackupId = "20261128T030000Z".parse().unwrap();
        Manifest {
            format: MANIFEST_FORMAT,
            id,
            database: "fp".to_owned(),
            server_version: "15.18".to_owned(),
            pg_dump_version: "pg_dump (PostgreSQL) 15.18".to_owned(),
            started_at: id.time(),
            finished_at: id.time() + chrono::Duration::seconds(5),
            dump: DumpInfo {
                file: "database.dump".to_owned(),
                format: "custom".to_owned(),
                size_bytes: 1234,
                sha256: "ab".repeat(32),
            },
            consistency: "exported-snapshot".to_owned(),
            stats: stats(Some(7), vec![table("matches", 10, Some("99"))]),
            tool_version: "0.1.0".to_owned(),
        }
    }

    #[test]
    fn json_round_trips_and_is_checked_against_its_location() {
        let original = manifest();
        let json = original.to_json().unwrap();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains("\"migration_version\": 7"), "{text}");
        assert!(text.contains("\"id\": \"20261128T030000Z\""), "{text}");
        assert_eq!(Manifest::from_json(&json, original.id).unwrap(), original);
        let elsewhere: BackupId = "20261129T030000Z".parse().unwrap();
        assert!(matches!(
            Manifest::from_json(&json, elsewhere),
            Err(ManifestError::WrongId { .. })
        ));
    }

    #[test]
    fn rejects_unknown_formats_and_garbage() {
        let id = manifest().id;
        let mut value = serde_json::to_value(manifest()).unwrap();
        value["format"] = serde_json::json!(2);
        let bytes = serde_json::to_vec(&value).unwrap();
        assert!(matches!(
            Manifest::from_json(&bytes, id),
            Err(ManifestError::UnsupportedFormat { found: 2 })
        ));
        assert!(matches!(
            Manifest::from_json(b"{", id),
            Err(ManifestError::Parse(_))
        ));
    }
}
