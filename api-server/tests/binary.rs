//! The real binary, as a user starts it: zero setup (SQLite under ./data, demo league, a
//! generated admin password that is written 0600 and never printed), configuration precedence
//! (file < environment < flags), and a clean exit on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How long the test waits for the server to start, answer or stop. Generous: on a busy machine
/// (load 6+ on 2 cores, multi-second stalls) the debug build starts and stops slowly, not
/// wrongly; a server that never gets there still fails the test.
const WAIT_LIMIT: Duration = Duration::from_secs(300);

/// One HTTP/1.1 request over a fresh connection; returns (status, body).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    // Generous: a busy machine answers late, and a lost answer here fails the test.
    stream.set_read_timeout(Some(WAIT_LIMIT)).ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fp-api-server"));
    command
        .current_dir(dir)
        .args(args)
        .env_remove("FP_DATABASE_URL")
        .env_remove("FP_CONFIG")
        .env_remove("FP_LISTEN")
        .env_remove("FP_ADMIN_PASSWORD")
        .env("FP_PASSWORD_HASH_MEMORY_KIB", "1024")
        .env("FP_PASSWORD_HASH_ITERATIONS", "1")
        .stdout(Stdio::from(
            std::fs::File::create(dir.join("stdout.log")).unwrap(),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("stderr.log")).unwrap(),
        ));
    for (k, v) in env {
        command.env(k, v);
    }
    Server {
        child: command.spawn().unwrap(),
    }
}

fn wait_ready(addr: SocketAddr, dir: &Path) {
    let started = Instant::now();
    while started.elapsed() < WAIT_LIMIT {
        if let Some((200, _)) = http(addr, "GET", "/health/ready", &[], "") {
            eprintln!("ready on {addr} after {:?}", started.elapsed());
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "not ready on {addr}: {}",
        std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
    );
}

#[test]
fn zero_setup_serves_predictions_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The environment picks the port (the zero-setup default 8080 may be taken on a shared machine).
    let listen = format!("127.0.0.1:{port}");
    let mut server = start(dir.path(), &[], &[("FP_LISTEN", &listen)]);
    let addr: SocketAddr = listen.parse().unwrap();
    wait_ready(addr, dir.path());

    let password_file = dir.path().join("data/admin-password");
    let password = std::fs::read_to_string(&password_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&password_file)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    assert!(dir.path().join("data/fp.db").exists());
    let body = format!("{{\"username\":\"admin\",\"password\":\"{password}\"}}");
    let (status, login) = http(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[("Content-Type", "application/json")],
        &body,
    )
    .unwrap();
    assert_eq!(status, 200, "{login}");
    let token: serde_json::Value = serde_json::from_str(&login).unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let (status, predictions) = http(
        addr,
        "GET",
        "/api/v1/predictions?league=DEMO&limit=5",
        &[("Authorization", &bearer)],
        "",
    )
    .unwrap();
    assert_eq!(status, 200, "{predictions}");
    let predictions: serde_json::Value = serde_json::from_str(&predictions).unwrap();
    assert_eq!(predictions["items"].as_array().unwrap().len(), 5);

    // SIGTERM: a clean, prompt exit.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < WAIT_LIMIT, "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("stopped {:?} after SIGTERM", started.elapsed());
    assert!(status.success(), "{status}");
    let logs = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap()
        + &std::fs::read_to_string(dir.path().join("stdout.log")).unwrap();
    assert!(
        !logs.contains(password.trim()),
        "the generated password must never be printed"
    );
    assert!(
        logs.contains("admin-password"),
        "the log says where the password is"
    );
    // Prompt: nothing held the shutdown until its timeout (judged by what the server logged,
    // not by the clock).
    assert!(
        !logs.contains("did not finish in time"),
        "the shutdown timeout fired: {logs}"
    );
}

#[test]
fn configuration_precedence_is_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    std::fs::write(
        dir.path().join("config.toml"),
        format!("listen = \"127.0.0.1:{file_port}\"\nrelease_version = \"from-file\"\ndemo_data = \"off\"\n"),
    )
    .unwrap();
    let config = dir.path().join("config.toml");
    let config = config.to_str().unwrap();

    // Environment beats the file.
    {
        let env_listen = format!("127.0.0.1:{env_port}");
        let _server = start(
            dir.path(),
            &["serve"],
            &[("FP_CONFIG", config), ("FP_LISTEN", &env_listen)],
        );
        let addr: SocketAddr = env_listen.parse().unwrap();
        wait_ready(addr, dir.path());
        let (_, metrics) = http(addr, "GET", "/metrics", &[], "").unwrap();
        assert!(
            metrics.contains("fp_build_info{version=\"from-file\"} 1"),
            "the file still applies"
        );
        assert!(
            http(
                format!("127.0.0.1:{file_port}").parse().unwrap(),
                "GET",
                "/health/live",
                &[],
                ""
            )
            .is_none()
        );
    }
    // A flag beats the environment.
    {
        let env_listen = format!("127.0.0.1:{env_port}");
        let flag_listen = format!("127.0.0.1:{flag_port}");
        let _server = start(
            dir.path(),
            &[
                "serve",
                "--listen",
                &flag_listen,
                "--release-version",
                "from-flag",
            ],
            &[
                ("FP_CONFIG", config),
                ("FP_LISTEN", &env_listen),
                ("FP_RELEASE_VERSION", "from-env"),
            ],
        );
        let addr: SocketAddr = flag_listen.parse().unwrap();
        wait_ready(addr, dir.path());
        let (_, metrics) = http(addr, "GET", "/metrics", &[], "").unwrap();
        assert!(
            metrics.contains("fp_build_info{version=\"from-flag\"} 1"),
            "{metrics}"
        );
    }
    // A bad config file stops start-up with a message naming the key.
    std::fs::write(dir.path().join("bad.toml"), "lisen = \"x\"\n").unwrap();
    let bad = dir.path().join("bad.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_fp-api-server"))
        .current_dir(dir.path())
        .args(["serve", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("lisen"));
}

/// Over real sockets: `X-Forwarded-For` names the client only when the peer is a trusted proxy.
/// The login budget here is one attempt a minute per client.
#[test]
fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let login = |addr: SocketAddr, forwarded_for: &str, username: &str| {
        let body = format!(r#"{{"username":"{username}","password":"wrong-password"}}"#);
        http(
            addr,
            "POST",
            "/api/v1/auth/login",
            &[
                ("Content-Type", "application/json"),
                ("X-Forwarded-For", forwarded_for),
            ],
            &body,
        )
        .unwrap()
        .0
    };
    let limits = [
        "--auth-rate-limit-per-minute",
        "1",
        "--auth-rate-limit-burst",
        "1",
        "--demo-data",
        "off",
    ];
    for (trusted, second_client_answer) in [(Some("127.0.0.0/8"), 401), (None, 429)] {
        let dir = tempfile::tempdir().unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let mut args = vec!["serve", "--listen", &listen];
        args.extend(limits);
        if let Some(trusted) = trusted {
            args.extend(["--trusted-proxies", trusted]);
        }
        let _server = start(dir.path(), &args, &[]);
        let addr: SocketAddr = listen.parse().unwrap();
        wait_ready(addr, dir.path());
        assert_eq!(login(addr, "198.51.100.1", "one"), 401);
        assert_eq!(
            login(addr, "198.51.100.2", "two"),
            second_client_answer,
            "trusted proxies: {trusted:?}"
        );
        // The client's own claim left of the proxy's entry changes nothing.
        assert_eq!(login(addr, "203.0.113.5, 198.51.100.1", "three"), 429);
    }
}

/// The JSON log lines the server wrote (stdout and stderr).
fn json_log_lines(dir: &Path) -> Vec<serde_json::Value> {
    ["stdout.log", "stderr.log"]
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(dir.join(f))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn message(line: &serde_json::Value) -> &str {
    line["message"].as_str().unwrap_or_default()
}

/// One access-log line per request with the route template, status, duration, the caller's
/// request id and the authenticated user's id, never the password, token or query; probes only
/// at debug; over the per-second budget, lines are counted (the count logged and exported), not
/// written. Every statement slower than the threshold is logged with its SQL, never the values
/// bound to it.
#[test]
fn access_log_and_slow_statements() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let password = "access-log-password-1";
    let _server = start(
        dir.path(),
        &[
            "serve",
            "--listen",
            &listen,
            "--log-format",
            "json",
            "--access-log-max-per-second",
            "3",
            // Every statement is "slow": each one must be logged without its values.
            "--slow-statement-threshold",
            "1ns",
        ],
        &[],
    );
    let addr: SocketAddr = listen.parse().unwrap();
    wait_ready(addr, dir.path());
    // A new second, so the budget is fresh for the first requests below.
    std::thread::sleep(Duration::from_millis(1100));

    let body = format!(r#"{{"username":"logged","password":"{password}"}}"#);
    let json = [("Content-Type", "application/json")];
    let (status, answer) = http(addr, "POST", "/api/v1/auth/register", &json, &body).unwrap();
    assert_eq!(status, 201, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let token = answer["access_token"].as_str().unwrap().to_owned();
    let user_id = answer["user"]["id"].as_i64().unwrap();
    let bearer = format!("Bearer {token}");
    let (status, _) = http(
        addr,
        "GET",
        "/api/v1/teams?league=DEMO",
        &[("Authorization", &bearer), ("X-Request-Id", "trace-me-1")],
        "",
    )
    .unwrap();
    assert_eq!(status, 200);
    // Over the budget of 3 per second: most of these are counted, not logged.
    let burst = 20;
    for _ in 0..burst {
        http(
            addr,
            "GET",
            "/api/v1/leagues",
            &[("Authorization", &bearer)],
            "",
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100));
    // A line in a new second reports what was skipped.
    http(
        addr,
        "GET",
        "/api/v1/auth/me",
        &[("Authorization", &bearer)],
        "",
    )
    .unwrap();
    let (_, metrics) = http(addr, "GET", "/metrics", &[], "").unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let lines = json_log_lines(dir.path());
    let requests: Vec<&serde_json::Value> =
        lines.iter().filter(|l| message(l) == "request").collect();
    let teams = requests
        .iter()
        .find(|l| l["route"] == "/api/v1/teams")
        .expect("an access-log line for /api/v1/teams");
    assert_eq!(teams["level"], "INFO");
    assert_eq!(teams["status"], 200);
    assert_eq!(teams["method"], "GET");
    assert_eq!(teams["request_id"], "trace-me-1");
    assert_eq!(teams["user_id"], user_id);
    assert!(teams["duration_ms"].as_f64().unwrap() > 0.0);
    let register = requests
        .iter()
        .find(|l| l["route"] == "/api/v1/auth/register")
        .expect("an access-log line for the registration");
    assert_eq!(register["status"], 201);
    assert!(
        register.get("user_id").is_none(),
        "no token, no user: {register}"
    );
    assert!(
        !requests.iter().any(|l| l["route"] == "/health/ready"),
        "probes are logged at debug only"
    );

    // Every request of the burst is either a line or counted as skipped, and the count is in
    // the log and in /metrics.
    let logged = requests
        .iter()
        .filter(|l| l["route"] == "/api/v1/leagues")
        .count() as u64;
    let skipped: u64 = lines.iter().filter_map(|l| l["skipped"].as_u64()).sum();
    assert_eq!(
        logged + skipped,
        burst,
        "{logged} logged, {skipped} skipped"
    );
    assert!(skipped >= burst - 2 * 3, "{skipped} skipped of {burst}");
    assert!(
        metrics.contains(&format!("fp_access_log_skipped_total {skipped}")),
        "{metrics}"
    );

    // Slow statements: logged with their SQL, at warn; neither the password nor its hash (a
    // bound value) nor the token appears anywhere in the log.
    let slow: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| message(l).starts_with("slow statement"))
        .collect();
    assert!(
        slow.iter().any(|l| l["summary"]
            .as_str()
            .unwrap_or("")
            .contains("insert into users")
            || l["db.statement"]
                .as_str()
                .unwrap_or("")
                .contains("INSERT INTO users")),
        "the user insert logged as slow: {slow:?}"
    );
    assert!(slow.iter().all(|l| l["level"] == "WARN"));
    let text = ["stdout.log", "stderr.log"]
        .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default())
        .join("\n");
    for secret in [password, token.as_str(), "$argon2", "league=DEMO"] {
        assert!(!text.contains(secret), "the log holds {secret}");
    }
}
