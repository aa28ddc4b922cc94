//! Shared harness of the integration tests: a fresh database per test on SQLite (a temp file)
//! or PostgreSQL (a new database on the server `FP_TEST_DATABASE_URL` names), the full app
//! router driven in-process with `oneshot`, and request helpers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use clap::Parser;
use fp_api_server::cli::{Cli, Command};
use fp_api_server::config::{FileConfig, Settings, resolve_serve};
use fp_api_server::faults::Faults;
use fp_api_server::http::state::AppState;
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::Connection;
use tower::ServiceExt;

pub const ADMIN_PASSWORD: &str = "admin-test-password-1";

/// Runs each named `async fn name(which: Which)` once per backend, as `sqlite::name` and
/// `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Which::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(which) = super::common::postgres() {
                        super::$name(which).await
                    }
                }
            )*
        }
    };
}

#[derive(Clone, Debug)]
pub enum Which {
    Sqlite,
    /// A superuser URL of a running server; each test creates its own database on it.
    Postgres(String),
}

/// The PostgreSQL server for tests, or `None` (with the agreed message) when not configured.
pub fn postgres() -> Option<Which> {
    match std::env::var("FP_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(Which::Postgres(url)),
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

/// A database made for one test; PostgreSQL ones are dropped when the test ends.
pub struct TestDatabase {
    pub url: String,
    admin_url: Option<String>,
    name: String,
}

impl TestDatabase {
    pub async fn create(which: &Which, dir: &std::path::Path) -> Self {
        match which {
            Which::Sqlite => Self {
                url: format!("sqlite://{}", dir.join("test.db").display()),
                admin_url: None,
                name: String::new(),
            },
            Which::Postgres(admin_url) => {
                let name = format!("fp_test_{:016x}", rand::random::<u64>());
                let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                let mut url = url::Url::parse(admin_url).unwrap();
                url.set_path(&name);
                Self {
                    url: url.to_string(),
                    admin_url: Some(admin_url.clone()),
                    name,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin_url) = self.admin_url.clone() else {
            return;
        };
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own small runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub which: Which,
    pub dir: tempfile::TempDir,
    pub database: TestDatabase,
}

/// Settings as `serve` would resolve them from these flags, with fast password hashing and
/// limits high enough not to interfere (tests of the limits pass their own flags).
pub fn settings(which: &Which, dir: &std::path::Path, url: &str, extra: &[&str]) -> Settings {
    let data_dir = dir.join("data");
    let mut argv: Vec<String> = [
        "fp-api-server",
        "serve",
        "--migrate",
        "--database-url",
        url,
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--password-hash-memory-kib",
        "1024",
        "--password-hash-iterations",
        "1",
        "--rate-limit-per-second",
        "0",
        "--auth-rate-limit-per-minute",
        "0",
        "--background-evaluation",
        "false",
        "--demo-data",
        "off",
        "--db-startup-timeout",
        "5s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if matches!(which, Which::Sqlite) {
        argv.extend(["--db-max-connections".to_string(), "4".to_string()]);
    }
    // Product timeouts (defaults 1 s, 5 s, 30 s) that a busy machine (load 6+ on 2 cores,
    // multi-second stalls) could hit where a test expects an answer. Tests of these timeouts
    // pass their own value.
    for (flag, generous) in [
        ("--ready-timeout", "2m"),
        ("--db-acquire-timeout", "2m"),
        ("--request-timeout", "10m"),
    ] {
        if !extra.contains(&flag) {
            argv.extend([flag.to_string(), generous.to_string()]);
        }
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    let cli = Cli::try_parse_from(argv).unwrap();
    let Some(Command::Serve(args)) = cli.command else {
        panic!("not serve")
    };
    resolve_serve(
        &FileConfig::default(),
        &args,
        Some(ADMIN_PASSWORD.to_string()),
    )
    .unwrap()
}

impl TestApp {
    pub async fn new(which: Which) -> Self {
        Self::with_args(which, &[]).await
    }

    pub async fn with_args(which: Which, extra: &[&str]) -> Self {
        Self::with_faults(which, extra, Faults::disabled()).await
    }

    pub async fn with_faults(which: Which, extra: &[&str], faults: Faults) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = TestDatabase::create(&which, dir.path()).await;
        let settings = settings(&which, dir.path(), &database.url, extra);
        let db = fp_api_server::server::open_checked(&settings)
            .await
            .unwrap();
        let state = fp_api_server::server::build_state(settings, db, faults)
            .await
            .unwrap();
        let router = fp_api_server::http::router(state.clone());
        Self {
            router,
            state,
            which,
            dir,
            database,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        TestResponse {
            status,
            headers,
            body: bytes.to_vec(),
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.send(request(Method::GET, path, token, None)).await
    }

    pub async fn post_json(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.send(request(Method::POST, path, token, Some(body)))
            .await
    }

    pub async fn patch_json(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.send(request(Method::PATCH, path, token, Some(body)))
            .await
    }
}

pub fn request(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    match body {
        Some(json) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&json).unwrap()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: StatusCode) -> &Self {
        assert_eq!(self.status, status, "body: {}", self.text());
        self
    }
}

/// Tokens of one logged-in user.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: i64,
    pub access: String,
    pub refresh: String,
}

impl Session {
    fn from_json(v: &Value) -> Self {
        Self {
            user_id: v["user"]["id"].as_i64().unwrap(),
            access: v["access_token"].as_str().unwrap().to_string(),
            refresh: v["refresh_token"].as_str().unwrap().to_string(),
        }
    }
}

impl TestApp {
    pub async fn login(&self, username: &str, password: &str) -> Session {
        let r = self
            .post_json(
                "/api/v1/auth/login",
                None,
                serde_json::json!({"username": username, "password": password}),
            )
            .await;
        r.expect(StatusCode::OK);
        Session::from_json(&r.json())
    }

    pub async fn admin(&self) -> Session {
        self.login("admin", ADMIN_PASSWORD).await
    }

    pub async fn register(&self, username: &str) -> Session {
        let r = self
            .post_json(
                "/api/v1/auth/register",
                None,
                serde_json::json!({"username": username, "password": "a-good-password"}),
            )
            .await;
        r.expect(StatusCode::CREATED);
        Session::from_json(&r.json())
    }

    /// A fresh user with `role` ("viewer", "analyst" or "admin"), logged in after the change.
    pub async fn user_with_role(&self, username: &str, role: &str) -> Session {
        let user = self.register(username).await;
        if role != "viewer" {
            let admin = self.admin().await;
            self.patch_json(
                &format!("/api/v1/admin/users/{}", user.user_id),
                Some(&admin.access),
                serde_json::json!({"role": role}),
            )
            .await
            .expect(StatusCode::OK);
        }
        self.login(username, "a-good-password").await
    }
}

/// A generated football-data file: `teams` clubs, a full double round robin from August of
/// `year`, scores from a fixed rule, Bet365 opening and Pinnacle closing odds.
pub fn season_csv(year: i32, teams: usize, played_rounds: usize) -> String {
    let mut out = String::from(
        "Div,Date,Time,HomeTeam,AwayTeam,FTHG,FTAG,FTR,B365H,B365D,B365A,PSCH,PSCD,PSCA\r\n",
    );
    let names: Vec<String> = (0..teams)
        .map(|i| format!("Club {}", (b'A' + i as u8) as char))
        .collect();
    // Circle method: round r pairs ring[i] with ring[n-1-i]; the second leg swaps venues.
    let mut ring: Vec<usize> = (0..teams).collect();
    let mut first_leg = Vec::new();
    for _ in 0..teams - 1 {
        first_leg.push(
            (0..teams / 2)
                .map(|i| (ring[i], ring[teams - 1 - i]))
                .collect::<Vec<_>>(),
        );
        ring[1..].rotate_right(1);
    }
    let second_leg: Vec<Vec<(usize, usize)>> = first_leg
        .iter()
        .map(|r| r.iter().map(|&(h, a)| (a, h)).collect())
        .collect();
    let start = chrono::NaiveDate::from_ymd_opt(year, 8, 10).unwrap();
    for (round, games) in first_leg.iter().chain(second_leg.iter()).enumerate() {
        let d = (start + chrono::Duration::weeks(round as i64)).format("%d/%m/%Y");
        for &(h, a) in games {
            if round < played_rounds {
                let hg = (h * 7 + a * 3 + round) % 4;
                let ag = (a * 5 + h + round) % 3;
                let r = if hg > ag {
                    "H"
                } else if hg == ag {
                    "D"
                } else {
                    "A"
                };
                out.push_str(&format!(
                    "E0,{d},15:00,{},{},{hg},{ag},{r},2.1,3.4,3.6,2.2,3.3,3.5\r\n",
                    names[h], names[a]
                ));
            } else {
                out.push_str(&format!(
                    "E0,{d},15:00,{},{},,,,2.1,3.4,3.6,,,\r\n",
                    names[h], names[a]
                ));
            }
        }
    }
    out
}
