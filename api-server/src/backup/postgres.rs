//! PostgreSQL side of backups: connection targets (password kept apart from the URL so it never
//! reaches a command line or a message), the real `pg_dump`/`pg_restore`, database statistics
//! for manifests and checks, scratch databases for restore drills.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Row};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdout, Command};
use url::Url;

use super::manifest::{DatabaseStats, TableStats};
use super::progress::Progress;
use super::redact::redact;

pub const APPLICATION_NAME: &str = "fp-backup";
/// Keeps the tail of a tool's stderr for error messages.
const STDERR_TAIL: usize = 4000;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("database URL is not a postgres:// URL: {0}")]
    BadUrl(String),
    #[error("cannot connect to {target}: {detail}")]
    Connect { target: String, detail: String },
    #[error("connecting to {target} did not finish within {seconds}s")]
    ConnectTimeout { target: String, seconds: u64 },
    #[error("query on {target} failed ({what}): {detail}")]
    Query {
        target: String,
        what: &'static str,
        detail: String,
    },
    #[error(
        "cannot run {program}: {source} (set --pg-bin-dir or FP_PG_BIN_DIR to the PostgreSQL client binaries)"
    )]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    ToolFailed {
        program: &'static str,
        status: String,
        stderr: String,
    },
    #[error("reading pg_dump output failed: {0}")]
    Pipe(std::io::Error),
}

/// A database to connect to. The password lives outside the URL: tools get it through
/// `PGPASSWORD`, messages show the URL without it.
#[derive(Clone)]
pub struct PgTarget {
    url: Url,
    password: Option<String>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.url.as_str())
    }
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.url.as_str())
    }
}

impl PgTarget {
    pub fn parse(text: &str) -> Result<Self, PgError> {
        let bad = || PgError::BadUrl(redact(text));
        let mut url = Url::parse(text).map_err(|_| bad())?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(bad());
        }
        let mut password = url
            .password()
            .map(|p| percent_decode(p).ok_or_else(bad))
            .transpose()?;
        url.set_password(None).map_err(|()| bad())?;
        // A `password=` query parameter is moved out of the URL as well.
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if pairs.iter().any(|(key, _)| key == "password") {
            let mut kept = url::form_urlencoded::Serializer::new(String::new());
            for (key, value) in &pairs {
                if key == "password" {
                    password = Some(value.clone());
                } else {
                    kept.append_pair(key, value);
                }
            }
            let query = kept.finish();
            url.set_query((!query.is_empty()).then_some(query.as_str()));
        }
        Ok(Self { url, password })
    }

    /// The database name in the URL (`None`: the server's default for the user).
    pub fn database(&self) -> Option<String> {
        let name = self.url.path().trim_start_matches('/');
        (!name.is_empty()).then(|| percent_decode(name).unwrap_or_else(|| name.to_owned()))
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, name: &str) -> Self {
        let mut url = self.url.clone();
        url.set_path(&format!("/{}", utf8_percent_encode(name)));
        Self {
            url,
            password: self.password.clone(),
        }
    }

    fn connect_options(&self) -> Result<PgConnectOptions, PgError> {
        let options = PgConnectOptions::from_str(self.url.as_str())
            .map_err(|err| PgError::BadUrl(redact(&format!("{}: {err}", self.url))))?
            .application_name(APPLICATION_NAME);
        Ok(match &self.password {
            Some(password) => options.password(password),
            None => options,
        })
    }

    pub async fn connect(&self, timeout: Duration) -> Result<PgConnection, PgError> {
        let options = self.connect_options()?;
        match tokio::time::timeout(timeout, options.connect()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(err)) => Err(PgError::Connect {
                target: self.to_string(),
                detail: redact(&err.to_string()),
            }),
            Err(_) => Err(PgError::ConnectTimeout {
                target: self.to_string(),
                seconds: timeout.as_secs(),
            }),
        }
    }

    /// Environment for libpq tools: password and a connect timeout (libpq's default waits forever).
    fn apply_to(&self, command: &mut Command, connect_timeout: Duration) {
        command
            .env(
                "PGCONNECT_TIMEOUT",
                connect_timeout.as_secs().max(2).to_string(),
            )
            .env("PGAPPNAME", APPLICATION_NAME);
        match &self.password {
            Some(password) => command.env("PGPASSWORD", password),
            None => command.env_remove("PGPASSWORD"),
        };
    }

    fn query_error(&self, what: &'static str, err: &sqlx::Error) -> PgError {
        PgError::Query {
            target: self.to_string(),
            what,
            detail: redact(&err.to_string()),
        }
    }
}

fn percent_decode(text: &str) -> Option<String> {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
}

fn utf8_percent_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Where the PostgreSQL client programs are.
#[derive(Debug, Clone, Default)]
pub struct PgTools {
    pub bin_dir: Option<PathBuf>,
}

impl PgTools {
    fn command(&self, program: &str) -> Command {
        let path = match &self.bin_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let mut command = Command::new(path);
        command.kill_on_drop(true).stdin(Stdio::null());
        command
    }

    /// `pg_dump --version` and the like, e.g. "pg_dump (PostgreSQL) 15.18".
    pub async fn version(&self, program: &str) -> Result<String, PgError> {
        let output = self
            .command(program)
            .arg("--version")
            .output()
            .await
            .map_err(|source| PgError::Spawn {
                program: program.to_owned(),
                source,
            })?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

/// Sets the session so that row texts (and so content digests) do not depend on the server's
/// or the client's settings.
pub async fn normalise_session(conn: &mut PgConnection, target: &PgTarget) -> Result<(), PgError> {
    sqlx::raw_sql(
        "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
         SET extra_float_digits = 1; SET bytea_output = 'hex'; SET search_path = public",
    )
    .execute(&mut *conn)
    .await
    .map_err(|err| target.query_error("session settings", &err))?;
    Ok(())
}

/// Opens a read-only repeatable-read transaction and exports its snapshot, so pg_dump
/// (`--snapshot`) and our row counts see exactly the same data without blocking writers.
pub async fn begin_snapshot(conn: &mut PgConnection, target: &PgTarget) -> Result<String, PgError> {
    sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *conn)
        .await
        .map_err(|err| target.query_error("begin snapshot transaction", &err))?;
    sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *conn)
        .await
        .map_err(|err| target.query_error("export snapshot", &err))
}

pub async fn end_snapshot(conn: &mut PgConnection, target: &PgTarget) -> Result<(), PgError> {
    sqlx::raw_sql("COMMIT")
        .execute(&mut *conn)
        .await
        .map_err(|err| target.query_error("end snapshot transaction", &err))?;
    Ok(())
}

pub async fn server_version(conn: &mut PgConnection, target: &PgTarget) -> Result<String, PgError> {
    sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&mut *conn)
        .await
        .map_err(|err| target.query_error("server version", &err))
}

pub async fn current_database(
    conn: &mut PgConnection,
    target: &PgTarget,
) -> Result<String, PgError> {
    sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(|err| target.query_error("database name", &err))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Ordinary and partitioned tables outside the system schemas, not belonging to extensions
/// (pg_dump does not dump extension members' data either).
const USER_TABLES: &str = "\
SELECT n.nspname::text, c.relname::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2";

/// Migration version, and per table the row count and (optionally) a content digest.
/// Run inside the snapshot transaction so the numbers match the dump exactly.
pub async fn collect_stats(
    conn: &mut PgConnection,
    target: &PgTarget,
    with_digests: bool,
) -> Result<DatabaseStats, PgError> {
    let has_migrations: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await
            .map_err(|err| target.query_error("look for _sqlx_migrations", &err))?;
    let migration_version = if has_migrations {
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await
            .map_err(|err| target.query_error("schema migration version", &err))?
    } else {
        None
    };
    let names: Vec<(String, String)> = sqlx::query_as(USER_TABLES)
        .fetch_all(&mut *conn)
        .await
        .map_err(|err| target.query_error("list tables", &err))?;
    let mut tables = Vec::with_capacity(names.len());
    for (schema, name) in names {
        let relation = format!("{}.{}", quote_ident(&schema), quote_ident(&name));
        // The digest sums the first 64 bits of each row's md5: independent of row order, so
        // it needs no sort, and any changed, lost or added row changes it.
        let sql = if with_digests {
            format!(
                "SELECT count(*)::bigint, \
                 coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric), 0)::text \
                 FROM {relation} AS t"
            )
        } else {
            format!("SELECT count(*)::bigint, NULL::text FROM {relation}")
        };
        // Identifiers are quoted above; nothing else is interpolated.
        let row = sqlx::query(AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(|err| target.query_error("count rows", &err))?;
        tables.push(TableStats {
            schema,
            name,
            rows: row
                .try_get(0)
                .map_err(|err| target.query_error("count rows", &err))?,
            content_digest: row
                .try_get(1)
                .map_err(|err| target.query_error("count rows", &err))?,
        });
    }
    Ok(DatabaseStats {
        migration_version,
        tables,
    })
}

/// Relations a restore would collide with: anything outside the system schemas, not
/// created by an extension. Returns up to `limit` names and the total.
pub async fn user_relations(
    conn: &mut PgConnection,
    target: &PgTarget,
    limit: i64,
) -> Result<(Vec<String>, i64), PgError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT n.nspname || '.' || c.relname, count(*) OVER ()
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
           AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
         ORDER BY 1 LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(|err| target.query_error("list existing relations", &err))?;
    let total = rows.first().map_or(0, |(_, total)| *total);
    Ok((rows.into_iter().map(|(name, _)| name).collect(), total))
}

pub async fn create_database(
    conn: &mut PgConnection,
    target: &PgTarget,
    name: &str,
) -> Result<(), PgError> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE DATABASE {}",
        quote_ident(name)
    )))
    .execute(&mut *conn)
    .await
    .map_err(|err| target.query_error("create scratch database", &err))?;
    Ok(())
}

/// Drops a database even if sessions are still connected (PostgreSQL 13+).
pub async fn drop_database(
    conn: &mut PgConnection,
    target: &PgTarget,
    name: &str,
) -> Result<(), PgError> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(name)
    )))
    .execute(&mut *conn)
    .await
    .map_err(|err| target.query_error("drop scratch database", &err))?;
    Ok(())
}

pub async fn databases_like(
    conn: &mut PgConnection,
    target: &PgTarget,
    prefix: &str,
) -> Result<Vec<String>, PgError> {
    sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1",
    )
    .bind(prefix)
    .fetch_all(&mut *conn)
    .await
    .map_err(|err| target.query_error("list scratch databases", &err))
}

/// Collects a child's stderr in the background, keeping the tail.
fn collect_stderr(child: &mut Child) -> tokio::task::JoinHandle<String> {
    let stderr = child.stderr.take();
    tokio::spawn(async move {
        let Some(mut stderr) = stderr else {
            return String::new();
        };
        let mut all = Vec::new();
        let mut buf = [0_u8; 8192];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
            if all.len() > 4 * STDERR_TAIL {
                all.drain(..all.len() - STDERR_TAIL);
            }
        }
        tail(&String::from_utf8_lossy(&all))
    })
}

fn tail(text: &str) -> String {
    let text = text.trim();
    let start = text.len().saturating_sub(STDERR_TAIL);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    redact(&text[start..]).replace('\n', " | ")
}

/// A running `pg_dump -Fc`; read its archive from [`Self::stdout`].
pub struct DumpProcess {
    child: Child,
    pub stdout: ChildStdout,
    stderr: tokio::task::JoinHandle<String>,
}

/// Options that shape the pg_dump call.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// How long pg_dump waits for a table lock before failing (instead of hanging behind DDL).
    pub lock_wait_timeout: Duration,
    pub connect_timeout: Duration,
    /// gzip level 0-9 for the custom format.
    pub compress_level: u8,
}

impl Default for DumpOptions {
    fn default() -> Self {
        Self {
            lock_wait_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            compress_level: 6,
        }
    }
}

impl PgTools {
    pub fn spawn_dump(
        &self,
        target: &PgTarget,
        snapshot: &str,
        options: &DumpOptions,
    ) -> Result<DumpProcess, PgError> {
        let mut command = self.command("pg_dump");
        command
            .arg("--format=custom")
            .arg(format!("--compress={}", options.compress_level.min(9)))
            .arg(format!("--snapshot={snapshot}"))
            .arg(format!(
                "--lock-wait-timeout={}ms",
                options.lock_wait_timeout.as_millis()
            ))
            .arg("--no-password")
            .arg(format!("--dbname={}", target.url))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        target.apply_to(&mut command, options.connect_timeout);
        let mut child = command.spawn().map_err(|source| PgError::Spawn {
            program: "pg_dump".to_owned(),
            source,
        })?;
        let stderr = collect_stderr(&mut child);
        let stdout = child.stdout.take().ok_or_else(|| {
            PgError::Pipe(std::io::Error::other("pg_dump stdout was not captured"))
        })?;
        Ok(DumpProcess {
            child,
            stdout,
            stderr,
        })
    }
}

impl DumpProcess {
    /// Waits for pg_dump to exit; its stderr tail becomes the error on failure.
    pub async fn wait(mut self) -> Result<(), PgError> {
        let status = self.child.wait().await.map_err(PgError::Pipe)?;
        let stderr = self.stderr.await.unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(PgError::ToolFailed {
                program: "pg_dump",
                status: status.to_string(),
                stderr,
            })
        }
    }

    /// Stops pg_dump (after a failure elsewhere).
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// How pg_restore replaces what is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreMode {
    /// Target must be empty.
    IntoEmpty,
    /// Drop each object in the dump before recreating it (`--clean --if-exists`).
    Clean,
}

impl PgTools {
    /// Runs pg_restore in one transaction: it either restores everything or changes nothing.
    pub async fn restore(
        &self,
        target: &PgTarget,
        archive: &Path,
        mode: RestoreMode,
        connect_timeout: Duration,
        progress: &Progress,
    ) -> Result<(), PgError> {
        let mut command = self.command("pg_restore");
        command
            .arg("--single-transaction")
            .arg("--exit-on-error")
            .arg("--no-owner")
            .arg("--no-privileges")
            .arg("--no-password")
            .arg(format!("--dbname={}", target.url));
        if mode == RestoreMode::Clean {
            command.arg("--clean").arg("--if-exists");
        }
        command
            .arg(archive)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        target.apply_to(&mut command, connect_timeout);
        let mut child = command.spawn().map_err(|source| PgError::Spawn {
            program: "pg_restore".to_owned(),
            source,
        })?;
        let stderr = collect_stderr(&mut child);
        let mut ticker = tokio::time::interval(Duration::from_secs(10));
        ticker.tick().await;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status.map_err(PgError::Pipe)?,
                _ = ticker.tick() => progress.note(format!("pg_restore running, {}s elapsed", progress.elapsed().as_secs())),
            }
        };
        let stderr = stderr.await.unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(PgError::ToolFailed {
                program: "pg_restore",
                status: status.to_string(),
                stderr,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_kept_out_of_the_url() {
        let target = PgTarget::parse(
            "postgres://fp:p%40ss%2Bw0rd@db.internal:5432/football?sslmode=disable",
        )
        .unwrap();
        assert_eq!(
            target.to_string(),
            "postgres://fp@db.internal:5432/football?sslmode=disable"
        );
        assert_eq!(target.password.as_deref(), Some("p@ss+w0rd"));
        assert_eq!(target.database().as_deref(), Some("football"));
        assert!(!format!("{target:?}").contains("p%40ss"));
    }

    #[test]
    fn password_query_parameter_is_moved_out_too() {
        let target =
            PgTarget::parse("postgresql://fp@db/fp?password=hunter2&sslmode=require").unwrap();
        assert_eq!(target.to_string(), "postgresql://fp@db/fp?sslmode=require");
        assert_eq!(target.password.as_deref(), Some("hunter2"));
        let target = PgTarget::parse("postgres://fp@db/fp?password=x").unwrap();
        assert_eq!(target.to_string(), "postgres://fp@db/fp");
    }

    #[test]
    fn switching_database_keeps_server_and_credentials() {
        let target = PgTarget::parse("postgres://u:pw@127.0.0.1:55433/postgres").unwrap();
        let scratch = target.with_database("fp_verify_x");
        assert_eq!(
            scratch.to_string(),
            "postgres://u@127.0.0.1:55433/fp_verify_x"
        );
        assert_eq!(scratch.password.as_deref(), Some("pw"));
        assert_eq!(PgTarget::parse("postgres://h").unwrap().database(), None);
    }

    #[test]
    fn rejects_other_schemes_without_echoing_secrets() {
        let err = PgTarget::parse("mysql://u:secret@h/d").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(PgTarget::parse("not a url").is_err());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("matches"), "\"matches\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn stderr_tail_is_redacted_and_bounded() {
        let long = format!(
            "{}\nconnection to postgres://u:pw@h/d failed",
            "x".repeat(10_000)
        );
        let text = tail(&long);
        assert!(text.len() <= STDERR_TAIL + 10);
        assert!(text.ends_with("postgres://u:***@h/d failed"), "{text}");
    }
}
