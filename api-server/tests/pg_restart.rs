//! `/health/ready` goes 503 when PostgreSQL stops and back to 200 when it returns, without a
//! restart of the API. The test runs its own throwaway server (Debian's PostgreSQL binaries,
//! as the `postgres` user when run as root) on a free loopback port, so it can stop it; it runs
//! when `FP_TEST_DATABASE_URL` is set (the PostgreSQL test contract) and skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{TestApp, Which};

fn bin_dir() -> Option<PathBuf> {
    let mut majors: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    majors.sort_unstable();
    majors
        .into_iter()
        .rev()
        .map(|m| PathBuf::from(format!("/usr/lib/postgresql/{m}/bin")))
        .find(|b| b.join("pg_ctl").is_file() && b.join("initdb").is_file())
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool, as `postgres` when we are root (initdb refuses root).
fn pg(bin: &Path, tool: &str, args: &[&str]) {
    let program = bin.join(tool);
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    let status = command
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{tool} {args:?} failed: {status}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(&self) {
        let options = format!("-p {} -k /tmp -c listen_addresses=127.0.0.1", self.port);
        let log = self.data.parent().unwrap().join("log");
        pg(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                // pg_ctl waits 60 s by default; a busy machine gets more.
                "-t",
                "300",
                "start",
            ],
        );
    }

    fn stop(&self) {
        pg(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "-t",
                "300",
                "stop",
            ],
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(if is_root() { "runuser" } else { "true" })
            .args(if is_root() {
                vec!["-u", "postgres", "--"]
            } else {
                vec![]
            })
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .status();
    }
}

fn own_server() -> Option<Server> {
    common::postgres()?;
    let Some(bin) = bin_dir() else {
        assert!(
            std::env::var("FP_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "FP_REQUIRE_POSTGRES=1 but no PostgreSQL binaries under /usr/lib/postgresql"
        );
        eprintln!("skipped: no PostgreSQL binaries under /usr/lib/postgresql");
        return None;
    };
    let dir = tempfile::Builder::new()
        .prefix("fp-pg-restart")
        .tempdir_in("/tmp")
        .unwrap();
    let data = dir.path().join("data");
    if is_root() {
        Command::new("chown")
            .args(["-R", "postgres", dir.path().to_str().unwrap()])
            .status()
            .unwrap();
    }
    pg(
        &bin,
        "initdb",
        &[
            "-D",
            data.to_str().unwrap(),
            "--auth=trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
        ],
    );
    let server = Server {
        bin,
        data,
        port: free_port(),
        _dir: dir,
    };
    server.start();
    Some(server)
}

/// How long the test waits for readiness to change, or for reads to work again. Generous: on a
/// busy machine (load 6+ on 2 cores, multi-second stalls) PostgreSQL stops, starts and answers
/// late, and the short timeouts below can fire on a healthy database now and then; a readiness
/// that never follows still fails.
const WAIT_LIMIT: Duration = Duration::from_secs(300);

async fn wait_ready(app: &TestApp, want: StatusCode) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let r = app.get("/health/ready", None).await;
        if r.status == want {
            eprintln!("readiness {want} after {:?}", started.elapsed());
            return r.json();
        }
        assert!(
            started.elapsed() < WAIT_LIMIT,
            "readiness still {} after {WAIT_LIMIT:?}: {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_postgres_down_and_up() {
    let Some(server) = own_server() else {
        return;
    };
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    let app = TestApp::with_args(
        Which::Postgres(url),
        &[
            "--ready-timeout",
            "500ms",
            "--db-acquire-timeout",
            "1s",
            "--demo-data",
            "on",
        ],
    )
    .await;
    let token = app.admin().await.access;
    wait_ready(&app, StatusCode::OK).await;

    server.stop();
    let body = wait_ready(&app, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["reason"], "database_unreachable");
    // Reads that need the database say so with a 503, not a 500.
    let r = app
        .get("/api/v1/matches?league=DEMO&limit=7", Some(&token))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.json()["code"], "database_unavailable");
    app.get("/health/live", None).await.expect(StatusCode::OK);

    server.start();
    wait_ready(&app, StatusCode::OK).await;
    // Reads work again without a restart. With a 1 s acquire timeout a stalled machine can still
    // answer one read 503 after readiness passed; the read must succeed within the limit.
    let started = Instant::now();
    loop {
        let r = app
            .get("/api/v1/matches?league=DEMO&limit=7", Some(&token))
            .await;
        if r.status == StatusCode::OK {
            eprintln!("reads work again after {:?}", started.elapsed());
            break;
        }
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert!(
            started.elapsed() < WAIT_LIMIT,
            "reads still fail after {WAIT_LIMIT:?}: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(app);
}
