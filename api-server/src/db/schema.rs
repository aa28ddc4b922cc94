//! Migrations (one directory per backend, same versions) and the schema-version checks that
//! `serve` and `/health/ready` make.

use sqlx::migrate::Migrator;

use super::{Backend, Db, DbResult, with_db};

static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

pub fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Postgres => &POSTGRES_MIGRATOR,
        Backend::Sqlite => &SQLITE_MIGRATOR,
    }
}

/// The migration versions this binary knows, ascending.
pub fn known_versions(backend: Backend) -> Vec<i64> {
    let mut versions: Vec<i64> = migrator(backend).iter().map(|m| m.version).collect();
    versions.sort_unstable();
    versions
}

/// How the database's schema relates to what this binary knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaState {
    Current {
        version: i64,
    },
    /// Migrations this binary has that the database lacks (run `migrate` or `serve --migrate`).
    Older {
        database: Option<i64>,
        missing: Vec<i64>,
    },
    /// Migrations the database has that this binary does not know (a newer release ran them).
    Newer {
        database: i64,
        unknown: Vec<i64>,
    },
    /// A migration started and failed: it must be repaired by hand.
    Dirty {
        version: i64,
    },
}

impl SchemaState {
    /// Pure comparison of applied `(version, success)` pairs against the known versions.
    pub fn compare(applied: &[(i64, bool)], known: &[i64]) -> Self {
        if let Some((version, _)) = applied.iter().find(|(_, ok)| !ok) {
            return Self::Dirty { version: *version };
        }
        let database = applied.iter().map(|(v, _)| *v).max();
        let unknown: Vec<i64> = applied
            .iter()
            .map(|(v, _)| *v)
            .filter(|v| !known.contains(v))
            .collect();
        if let (Some(database), false) = (database, unknown.is_empty()) {
            return Self::Newer { database, unknown };
        }
        let missing: Vec<i64> = known
            .iter()
            .copied()
            .filter(|v| !applied.iter().any(|(a, _)| a == v))
            .collect();
        if missing.is_empty() {
            Self::Current {
                version: database.unwrap_or(0),
            }
        } else {
            Self::Older { database, missing }
        }
    }

    /// The operator-facing explanation `serve` prints when it refuses to start.
    pub fn describe(&self) -> String {
        match self {
            Self::Current { version } => format!("schema is current (version {version})"),
            Self::Older { database, missing } => format!(
                "database schema is older than this binary (database at {}, missing migrations {:?}); \
                 run `fp-api-server migrate` or start with `serve --migrate`",
                database.map_or_else(|| "no migrations".to_string(), |v| format!("version {v}")),
                missing
            ),
            Self::Newer { database, unknown } => format!(
                "database schema (version {database}) is newer than this binary knows (unknown \
                 migrations {unknown:?}); run a release that includes them or restore a backup"
            ),
            Self::Dirty { version } => {
                format!("migration {version} failed part-way; repair the database before serving")
            }
        }
    }
}

/// Applied migrations, or none when the bookkeeping table does not exist yet. Reads only.
pub async fn applied(db: &Db) -> DbResult<Vec<(i64, bool)>> {
    let exists: bool = match db {
        Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(pool)
                .await?
        }
        Db::Sqlite(pool) => sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(pool)
        .await?
            > 0,
    };
    if !exists {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, bool)> = with_db!(db, pool => {
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await?
    });
    Ok(rows)
}

pub async fn state(db: &Db) -> DbResult<SchemaState> {
    let applied = applied(db).await?;
    Ok(SchemaState::compare(
        &applied,
        &known_versions(db.backend()),
    ))
}

/// Applies every pending migration (PostgreSQL serialises concurrent runs with an advisory lock).
pub async fn migrate(db: &Db) -> DbResult<()> {
    with_db!(db, pool => migrator(db.backend()).run(pool).await?);
    Ok(())
}

/// The cheap check `/health/ready` runs: the newest applied migration, in one round trip.
pub async fn latest_applied(db: &Db) -> DbResult<Option<i64>> {
    let version: Option<i64> = with_db!(db, pool => {
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(pool)
            .await?
    });
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_covers_every_state() {
        let known = [1, 2, 3];
        assert_eq!(
            SchemaState::compare(&[(1, true), (2, true), (3, true)], &known),
            SchemaState::Current { version: 3 }
        );
        assert_eq!(
            SchemaState::compare(&[(1, true)], &known),
            SchemaState::Older {
                database: Some(1),
                missing: vec![2, 3]
            }
        );
        assert_eq!(
            SchemaState::compare(&[], &known),
            SchemaState::Older {
                database: None,
                missing: vec![1, 2, 3]
            }
        );
        assert_eq!(
            SchemaState::compare(&[(1, true), (2, true), (3, true), (4, true)], &known),
            SchemaState::Newer {
                database: 4,
                unknown: vec![4]
            }
        );
        assert_eq!(
            SchemaState::compare(&[(1, true), (2, false)], &known),
            SchemaState::Dirty { version: 2 }
        );
    }

    #[test]
    fn messages_say_which_way_the_schema_differs() {
        let older = SchemaState::compare(&[], &[1]).describe();
        assert!(
            older.contains("older") && older.contains("--migrate"),
            "{older}"
        );
        let newer = SchemaState::compare(&[(1, true), (9, true)], &[1]).describe();
        assert!(newer.contains("newer") && newer.contains('9'), "{newer}");
    }

    #[test]
    fn both_backends_know_the_same_versions() {
        assert_eq!(
            known_versions(Backend::Postgres),
            known_versions(Backend::Sqlite)
        );
        assert!(!known_versions(Backend::Sqlite).is_empty());
    }

    /// The two migration trees must say the same thing: only the identity column may differ.
    #[test]
    fn migration_twins_differ_only_in_id_columns() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let pg = migrator(Backend::Postgres);
        let lite = migrator(Backend::Sqlite);
        for (p, s) in pg.iter().zip(lite.iter()) {
            assert_eq!(p.version, s.version);
            assert_eq!(p.description, s.description);
            let normalise = |sql: &str| {
                sql.lines()
                    .filter(|l| !l.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n")
                    .replace(
                        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                        "INTEGER PRIMARY KEY",
                    )
            };
            assert_eq!(
                normalise(p.sql.as_str()),
                normalise(s.sql.as_str()),
                "migrations {} differ beyond id columns (see {})",
                p.version,
                dir.display()
            );
        }
    }
}
