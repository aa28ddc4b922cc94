//! A tiny HTTP server and exit-code tool the node agent's e2e tests run as pods (image
//! `footballprediction/fp-e2e-testapp`, mapped to this binary by the agent's built-in mapping).
//!
//! `fp-e2e-testapp serve` listens on `$TESTAPP_LISTEN` (e.g. `$(POD_IP):8080`) and answers
//!   GET /healthz   200, or 500 once `$TESTAPP_UNHEALTHY_AFTER` (a duration) has passed
//!   GET /readyz    200, or 503 while the file `$TESTAPP_NOT_READY_FILE` exists
//!   GET /env/NAME  the value of the environment variable NAME (404 when unset)
//!   GET /file/PATH the content of PATH below `$TESTAPP_FILES_DIR` (no `..`)
//! and exits 0 on SIGTERM.
//! `fp-e2e-testapp exit CODE [DELAY]` sleeps DELAY (default 0s) and exits with CODE.
//! `fp-e2e-testapp whoami` asks the API server who it is (kube-rs `Config::infer`, i.e. the
//! in-cluster kubeconfig the node agent provides) and prints the user name.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve().await,
        Some("exit") => {
            let code: i32 = args
                .get(1)
                .context("exit needs a code")?
                .parse()
                .context("exit code must be an integer")?;
            let delay = match args.get(2) {
                Some(text) => humantime::parse_duration(text).context("bad delay")?,
                None => Duration::ZERO,
            };
            println!("exiting with {code} after {delay:?}");
            tokio::time::sleep(delay).await;
            std::process::exit(code);
        }
        Some("whoami") => whoami().await,
        other => bail!("usage: fp-e2e-testapp serve | exit CODE [DELAY] | whoami (got {other:?})"),
    }
}

async fn whoami() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("building a client from the inferred config")?;
    let reviews: kube::Api<SelfSubjectReview> = kube::Api::all(client);
    let review = reviews
        .create(
            &kube::api::PostParams::default(),
            &SelfSubjectReview::default(),
        )
        .await
        .context("creating a SelfSubjectReview")?;
    let user = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .context("the review names no user")?;
    println!("{user}");
    Ok(())
}

struct Settings {
    unhealthy_after: Option<Duration>,
    not_ready_file: Option<PathBuf>,
    files_dir: Option<PathBuf>,
    started: Instant,
}

async fn serve() -> anyhow::Result<()> {
    let listen = std::env::var("TESTAPP_LISTEN").context("TESTAPP_LISTEN is not set")?;
    let settings = std::sync::Arc::new(Settings {
        unhealthy_after: std::env::var("TESTAPP_UNHEALTHY_AFTER")
            .ok()
            .map(|d| humantime::parse_duration(&d))
            .transpose()
            .context("TESTAPP_UNHEALTHY_AFTER")?,
        not_ready_file: std::env::var_os("TESTAPP_NOT_READY_FILE").map(PathBuf::from),
        files_dir: std::env::var_os("TESTAPP_FILES_DIR").map(PathBuf::from),
        started: Instant::now(),
    });
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!("listening on {listen}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = term.recv() => {
                println!("SIGTERM: shutting down");
                return Ok(());
            }
            accepted = listener.accept() => {
                let (socket, _) = accepted?;
                let settings = settings.clone();
                tokio::spawn(async move {
                    if let Err(error) = handle(socket, &settings).await {
                        eprintln!("connection error: {error}");
                    }
                });
            }
        }
    }
}

async fn handle(mut socket: TcpStream, settings: &Settings) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    // Read until the end of the request head.
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
        let n = socket.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let path = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or("/")
        .to_string();
    let (status, body) = respond(&path, settings);
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}

fn respond(path: &str, settings: &Settings) -> (&'static str, String) {
    if path == "/healthz" {
        let unhealthy = settings
            .unhealthy_after
            .is_some_and(|after| settings.started.elapsed() >= after);
        return if unhealthy {
            ("500 Internal Server Error", "unhealthy".into())
        } else {
            ("200 OK", "ok".into())
        };
    }
    if path == "/readyz" {
        let not_ready = settings.not_ready_file.as_ref().is_some_and(|f| f.exists());
        return if not_ready {
            ("503 Service Unavailable", "not ready".into())
        } else {
            ("200 OK", "ready".into())
        };
    }
    if let Some(name) = path.strip_prefix("/env/") {
        return match std::env::var(name) {
            Ok(value) => ("200 OK", value),
            Err(_) => ("404 Not Found", format!("{name} is not set")),
        };
    }
    if let Some(relative) = path.strip_prefix("/file/") {
        let safe = Path::new(relative)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        return match (&settings.files_dir, safe) {
            (Some(dir), true) => match std::fs::read_to_string(dir.join(relative)) {
                Ok(content) => ("200 OK", content),
                Err(error) => ("404 Not Found", error.to_string()),
            },
            _ => (
                "404 Not Found",
                "file serving is off or the path is unsafe".into(),
            ),
        };
    }
    ("404 Not Found", "unknown path".into())
}
