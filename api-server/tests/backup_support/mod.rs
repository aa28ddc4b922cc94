//! Shared harness of the backup tests: a fresh PostgreSQL database per test on the server
//! `FP_TEST_DATABASE_URL` names, fixture data on top of the real migrations, an independent
//! content fingerprint, and a real S3 server (s3s-fs) on loopback.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fp_api_server::backup::create::BackupRequest;
use fp_api_server::backup::destination::Destination;
use fp_api_server::backup::id::BackupId;
use fp_api_server::backup::manifest::{DatabaseStats, DumpInfo, MANIFEST_FORMAT, Manifest};
use fp_api_server::backup::postgres::{DumpOptions, PgTarget, PgTools};
use fp_api_server::backup::retention::{DEFAULT_INCOMPLETE_GRACE, RetentionPolicy};
use fp_api_server::backup::store::BackupStore;
use fp_api_server::backup::store::{S3Credentials, S3Settings};
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};

/// The PostgreSQL connect timeout of the tests' backup, verify and restore runs: a timeout that
/// must not fire, so generous enough that a busy machine (load 6+ on 2 cores, multi-second
/// stalls) never reaches it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

/// The PostgreSQL server for tests, or `None` (with the agreed message) when not configured.
pub fn pg_server() -> Option<String> {
    match std::env::var("FP_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("FP_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "FP_REQUIRE_POSTGRES=1 but FP_TEST_DATABASE_URL is not set"
            );
            eprintln!("skipped: FP_TEST_DATABASE_URL not set");
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Replaces the database of a postgres URL.
pub fn with_database(server: &str, name: &str) -> String {
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A database made for one test; call [`TestDb::drop_now`] at the end.
pub struct TestDb {
    pub server: String,
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create(server: &str, prefix: &str) -> Self {
        let name = unique(prefix);
        let mut admin = PgConnection::connect(server).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        Self {
            server: server.to_owned(),
            url: with_database(server, &name),
            name,
        }
    }

    /// A name for a database that does not exist yet on the same server.
    pub fn sibling(&self, prefix: &str) -> (String, String) {
        let name = unique(prefix);
        (name.clone(), with_database(&self.server, &name))
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.unwrap()
    }

    pub async fn execute(&self, sql: &str) {
        let mut conn = self.connect().await;
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }

    pub async fn drop_now(self) {
        drop_database(&self.server, &self.name).await;
    }
}

pub async fn drop_database(server: &str, name: &str) {
    let mut admin = PgConnection::connect(server).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
}

/// Databases on the server whose name starts with `prefix`.
pub async fn databases_with_prefix(server: &str, prefix: &str) -> Vec<String> {
    let mut admin = PgConnection::connect(server).await.unwrap();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1)")
            .bind(prefix)
            .fetch_all(&mut admin)
            .await
            .unwrap();
    admin.close().await.unwrap();
    names
}

/// The real schema (the API server's migrations) plus fixture tables with awkward types,
/// NULLs, non-ASCII text, a quoted table name and an empty table. `rows` rows in
/// `fixture.results`.
pub async fn load_fixture(db: &TestDb, rows: u32) {
    let mut conn = db.connect().await;
    sqlx::migrate!("./migrations/postgres")
        .run(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    db.execute(&format!(
        r#"
        CREATE SCHEMA fixture;
        CREATE TABLE fixture.clubs (id serial PRIMARY KEY, name text NOT NULL UNIQUE, founded date,
                                    rating numeric(8,3), meta jsonb);
        CREATE TABLE fixture.results (id bigserial PRIMARY KEY, club_id int REFERENCES fixture.clubs(id),
                                      played_at timestamptz NOT NULL, goals smallint, xg double precision,
                                      note text, raw bytea, ok boolean);
        CREATE TABLE fixture."Odd ""Name"" Table" (k text PRIMARY KEY, v text);
        CREATE TABLE fixture.empty_table (id int);
        INSERT INTO fixture.clubs (name, founded, rating, meta)
          SELECT 'Club ' || i || ' ✓ Müller', date '1880-01-01' + i * 37, (i % 1000) / 7.0,
                 jsonb_build_object('i', i, 'tags', jsonb_build_array('a', 'ü'))
          FROM generate_series(1, 200) i;
        INSERT INTO fixture.results (club_id, played_at, goals, xg, note, raw, ok)
          SELECT 1 + i % 200, timestamptz '2020-01-01 00:00+00' + i * interval '37 minutes', (i % 7)::smallint,
                 (i % 1000) / 333.0, CASE WHEN i % 10 = 0 THEN NULL ELSE md5(i::text) END,
                 decode(md5(i::text), 'hex'), i % 2 = 0
          FROM generate_series(1, {rows}) i;
        INSERT INTO fixture."Odd ""Name"" Table" VALUES ('a', '1'), ('b', NULL);
        "#
    ))
    .await;
}

/// About `mib` MiB of incompressible text, so the dump needs several multipart parts.
pub async fn load_bulk(db: &TestDb, mib: u32) {
    db.execute(&format!(
        "CREATE TABLE fixture.bulk (id int PRIMARY KEY, payload text);
         INSERT INTO fixture.bulk
           SELECT i, (SELECT string_agg(md5(i::text || ':' || j::text), '') FROM generate_series(1, 32) j)
           FROM generate_series(1, {})  i;",
        mib * 1024 * 2
    ))
    .await;
}

/// Per table: row count and md5 of all row texts in sorted order. Computed independently of
/// the backup program's own digests.
pub async fn fingerprint(url: &str) -> BTreeMap<String, (i64, String)> {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("SET TimeZone = 'UTC'; SET extra_float_digits = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
         ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for (schema, name) in tables {
        let relation = format!(
            "\"{}\".\"{}\"",
            schema.replace('"', "\"\""),
            name.replace('"', "\"\"")
        );
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT count(*)::bigint, coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM {relation} t"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        out.insert(format!("{schema}.{name}"), (row.get(0), row.get(1)));
    }
    conn.close().await.unwrap();
    out
}

/// `pg_dump` / `pg_restore` from FP_PG_BIN_DIR, else from PATH.
pub fn tools() -> PgTools {
    PgTools {
        bin_dir: std::env::var_os("FP_PG_BIN_DIR").map(PathBuf::from),
    }
}

pub fn file_destination(dir: &Path) -> Destination {
    Destination::File {
        root: dir.to_path_buf(),
    }
}

pub fn request(
    url: &str,
    destinations: Vec<Destination>,
    s3: S3Settings,
    retention: RetentionPolicy,
) -> BackupRequest {
    BackupRequest {
        database: PgTarget::parse(url).unwrap(),
        destinations,
        s3,
        tools: tools(),
        dump: DumpOptions {
            connect_timeout: CONNECT_TIMEOUT,
            ..DumpOptions::default()
        },
        retention,
        content_digests: true,
        connect_timeout: CONNECT_TIMEOUT,
    }
}

pub fn no_retention() -> RetentionPolicy {
    RetentionPolicy::new(None, None, DEFAULT_INCOMPLETE_GRACE).unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub const S3_ACCESS_KEY: &str = "fp-test-access";
pub const S3_SECRET_KEY: &str = "fp-test-secret-key-0123456789";
pub const S3_BUCKET: &str = "fp-backups";

/// A real S3 server (s3s-fs) on loopback, killed by pid on drop.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The s3s-fs binary: FP_TEST_S3_SERVER_BIN, else `None` with the agreed skip message (a failure
/// when FP_REQUIRE_S3=1).
pub fn s3_server_bin() -> Option<PathBuf> {
    match std::env::var_os("FP_TEST_S3_SERVER_BIN") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            assert!(
                std::env::var("FP_REQUIRE_S3").as_deref() != Ok("1"),
                "FP_REQUIRE_S3=1 but FP_TEST_S3_SERVER_BIN is not set"
            );
            eprintln!("skipped: FP_TEST_S3_SERVER_BIN not set");
            None
        }
    }
}

impl S3Server {
    pub fn start(bin: &Path) -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(S3_BUCKET)).unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
        };
        // Generous: a busy machine starts it late; one that exits or never listens still fails.
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("s3s-fs exited before listening on {port}: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "s3s-fs did not listen on {port} after {:?}",
                started.elapsed()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("s3s-fs listening after {:?}", started.elapsed());
        server
    }

    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint.clone()),
            credentials: Some(S3Credentials {
                access_key_id: S3_ACCESS_KEY.to_owned(),
                secret_access_key: S3_SECRET_KEY.to_owned(),
                session_token: None,
            }),
            ..S3Settings::default()
        }
    }

    pub fn destination(&self, prefix: &str) -> Destination {
        Destination::parse(&format!("s3://{S3_BUCKET}/{prefix}")).unwrap()
    }
}

/// A complete backup with a forged id: a dump object and a manifest describing it.
pub async fn forge(store: &BackupStore, id: BackupId) {
    let dump = format!("forged dump {id}").into_bytes();
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        id,
        database: "fp".to_owned(),
        server_version: "15".to_owned(),
        pg_dump_version: "pg_dump (PostgreSQL) 15".to_owned(),
        started_at: id.time(),
        finished_at: id.time(),
        dump: DumpInfo {
            file: "database.dump".to_owned(),
            format: "custom".to_owned(),
            size_bytes: dump.len() as u64,
            sha256: "0".repeat(64),
        },
        consistency: "exported-snapshot".to_owned(),
        stats: DatabaseStats {
            migration_version: Some(1),
            tables: Vec::new(),
        },
        tool_version: "test".to_owned(),
    };
    store.put_dump_bytes(id, dump).await.unwrap();
    store.write_manifest(&manifest).await.unwrap();
}
