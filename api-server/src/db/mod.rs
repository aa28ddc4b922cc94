//! Storage on PostgreSQL or SQLite with one set of queries.
//!
//! Why an enum of the two native pools and not sqlx's `Any` driver or a repository trait with
//! two implementations: every query is written once in SQL both engines accept (`$n`
//! placeholders, `ON CONFLICT … DO UPDATE`, `RETURNING`, Unix-second BIGINT timestamps) and the
//! [`with_db!`] macro runs that same code on whichever pool is live. Both arms are type-checked
//! against their own driver, rows decode natively (booleans, floats) with no intermediate `Any`
//! representation on the hot path, and there is no second copy of the SQL to drift.

pub mod auth;
pub mod binds;
pub mod data;
pub mod fits;
pub mod schema;
pub mod version;

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use log::LevelFilter;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::config::StorageSettings;

/// Runs `$body` with `$pool` bound to the live backend's pool (`&PgPool` or `&SqlitePool`).
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use with_db;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("conflicting write: {0}")]
    Conflict(sqlx::Error),
    #[error("database query failed: {0}")]
    Query(sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("cannot prepare the SQLite directory {path}: {source}")]
    SqliteDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

/// Acquires that waited out the pool's timeout since start (every driver error passes through
/// `From<sqlx::Error>`, so this is the one place that sees them all).
static POOL_ACQUIRE_TIMEOUTS: AtomicU64 = AtomicU64::new(0);

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        if matches!(e, sqlx::Error::PoolTimedOut) {
            POOL_ACQUIRE_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
        }
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e),
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // PostgreSQL: class 08 connection exception, 57P0x shutdown / cannot connect now.
                if code.starts_with("08") || code.starts_with("57P") {
                    Self::Unavailable(e)
                } else if db.is_unique_violation() {
                    Self::Conflict(e)
                } else {
                    Self::Query(e)
                }
            }
            _ => Self::Query(e),
        }
    }
}

impl DbError {
    /// A fixed label for logs and client-facing messages (no driver text, no URL).
    pub fn category(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "database unavailable",
            Self::Conflict(_) => "conflicting write",
            Self::Query(_) => "query failed",
            Self::Migrate(_) => "migration failed",
            Self::Url(_) => "invalid database URL",
            Self::SqliteDir { .. } => "SQLite directory not writable",
            Self::Corrupt(_) => "stored data invalid",
        }
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// Pool occupancy for the gauges in `/metrics`.
#[derive(Clone, Copy, Debug)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
    /// Acquires that timed out since the process started (all pools).
    pub acquire_timeouts: u64,
}

impl Db {
    /// How to open a transaction that reads and then writes. SQLite's default (deferred) start
    /// lets two such transactions read at once, and then neither may upgrade to write: one fails
    /// with "database is locked" however long the busy timeout. `BEGIN IMMEDIATE` takes the write
    /// lock first, so the second waits its turn instead. PostgreSQL locks rows as they are
    /// written and needs nothing more.
    pub fn begin_write(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "BEGIN",
            Self::Sqlite(_) => "BEGIN IMMEDIATE",
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Opens a pool, retrying until the database answers or `settings.startup_timeout` passes.
    pub async fn connect(settings: &StorageSettings) -> DbResult<Self> {
        let deadline = Instant::now() + settings.startup_timeout;
        loop {
            match Self::connect_once(settings).await {
                Ok(db) => return Ok(db),
                Err(DbError::Unavailable(e)) if Instant::now() < deadline => {
                    tracing::warn!(
                        url = %settings.redacted_url(),
                        error = %e,
                        "database not reachable yet; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn connect_once(settings: &StorageSettings) -> DbResult<Self> {
        /// Only slow statements are logged (at warn, as sqlx's `slow statement` event with the
        /// SQL and `elapsed_secs`, never the bound values): every statement would print whole
        /// multi-row upserts.
        fn statement_logging<O: ConnectOptions>(options: O, settings: &StorageSettings) -> O {
            let options = options.disable_statement_logging();
            match settings.slow_statement_threshold {
                Some(threshold) => options.log_slow_statements(LevelFilter::Warn, threshold),
                None => options,
            }
        }

        let url = settings.database_url.expose();
        match Backend::from_url(url) {
            Some(Backend::Postgres) => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(|e| DbError::Url(redact_error(&e.to_string(), url)))?;
                let options = statement_logging(options, settings);
                let pool = PgPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(options)
                    .await?;
                Ok(Self::Postgres(pool))
            }
            Some(Backend::Sqlite) => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| DbError::Url(e.to_string()))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                let options = statement_logging(options, settings);
                let file = options.get_filename();
                if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| DbError::SqliteDir {
                        path: dir.to_path_buf(),
                        source,
                    })?;
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(options)
                    .await?;
                Ok(Self::Sqlite(pool))
            }
            None => Err(DbError::Url(
                "expected a postgres:// or sqlite:// URL".to_string(),
            )),
        }
    }

    pub fn pool_stats(&self) -> PoolStats {
        with_db!(self, pool => PoolStats {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
            acquire_timeouts: POOL_ACQUIRE_TIMEOUTS.load(Ordering::Relaxed),
        })
    }

    pub async fn close(&self) {
        with_db!(self, pool => pool.close().await);
    }
}

/// A driver's error message without the URL's password (quoted whole or in parts).
fn redact_error(message: &str, url: &str) -> String {
    use fp_contract::redact::redact;
    redact(&message.replace(url, &redact(url)))
}

/// Seconds since the Unix epoch: the unit of every timestamp column.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}
