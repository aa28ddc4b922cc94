//! kubelet's container log endpoint (`GET /containerLogs/{namespace}/{pod}/{container}`), so
//! `kubectl logs` works: the API server connects to the node's InternalIP (127.0.0.1) on the port
//! the Node reports as its kubelet endpoint. HTTPS with a self-signed certificate, as the API
//! server does not verify kubelet certificates unless told to. Supports `follow`, `previous`,
//! `tailLines` and `limitBytes`; the log files carry no timestamps, so `timestamps` and
//! `sinceSeconds`/`sinceTime` are ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::process::pid_record_path;

const FOLLOW_POLL: Duration = Duration::from_millis(250);
const MAX_REQUEST_HEAD: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogServerError {
    #[error("generating the log endpoint certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("configuring TLS for the log endpoint: {0}")]
    Tls(#[from] rustls::Error),
    #[error("binding the log endpoint on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
}

/// A parsed `containerLogs` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
}

/// Parses a request target such as `/containerLogs/fp/api-0/api?follow=true&tailLines=10`.
pub fn parse_request_target(target: &str) -> Result<LogRequest, String> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let [kind, namespace, pod, container] = parts.as_slice() else {
        return Err(format!("unsupported path {path:?}"));
    };
    if *kind != "containerLogs" || [namespace, pod, container].iter().any(|p| p.is_empty()) {
        return Err(format!("unsupported path {path:?}"));
    }
    let mut request = LogRequest {
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        container: container.to_string(),
        follow: false,
        previous: false,
        tail_lines: None,
        limit_bytes: None,
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "follow" => request.follow = value == "true" || value == "1",
            "previous" => request.previous = value == "true" || value == "1",
            "tailLines" => request.tail_lines = value.parse().ok(),
            "limitBytes" => request.limit_bytes = value.parse().ok().filter(|n| *n > 0),
            _ => {}
        }
    }
    Ok(request)
}

/// The log file number to read among a container's `N.log` files: the newest, or the one
/// before it for `previous`.
pub fn pick_log_file(numbers: &[u32], previous: bool) -> Option<u32> {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    if previous {
        sorted.len().checked_sub(2).map(|i| sorted[i])
    } else {
        sorted.last().copied()
    }
}

/// The last `lines` lines of `bytes` (a trailing newline does not start a line).
pub fn tail(bytes: &[u8], lines: usize) -> &[u8] {
    if lines == 0 {
        return &bytes[bytes.len()..];
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == lines {
                return &bytes[i + 1..];
            }
        }
    }
    bytes
}

/// The newest directory of pod `namespace/pod` (a name can be reused by a later pod).
fn find_pod_dir(pods_dir: &Path, namespace: &str, pod: &str) -> Option<PathBuf> {
    let prefix = format!("{namespace}_{pod}_");
    std::fs::read_dir(pods_dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

fn log_numbers(dir: &Path) -> Vec<u32> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_suffix(".log")
                        .and_then(|n| n.parse().ok())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Binds the endpoint (port 0 picks a free one) and serves it until the runtime stops.
/// Returns the port to report as the Node's kubelet endpoint.
pub async fn start(port: u16, pods_dir: PathBuf) -> Result<u16, LogServerError> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    let cert = CertificateDer::from(certified.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| LogServerError::Bind { port, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| LogServerError::Bind { port, source })?
        .port();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let pods_dir = pods_dir.clone();
            tokio::spawn(async move {
                match acceptor.accept(socket).await {
                    Ok(stream) => {
                        if let Err(error) = handle(stream, &pods_dir).await {
                            tracing::debug!(%error, "log request ended");
                        }
                    }
                    Err(error) => tracing::debug!(%error, "log endpoint TLS handshake failed"),
                }
            });
        }
    });
    Ok(bound)
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    pods_dir: &Path,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > MAX_REQUEST_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut request_line = head.lines().next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default();
    let target = request_line.next().unwrap_or_default();
    if method != "GET" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "only GET is supported\n",
        )
        .await;
    }
    let request = match parse_request_target(target) {
        Ok(request) => request,
        Err(message) => {
            return respond(&mut stream, "404 Not Found", &format!("{message}\n")).await;
        }
    };
    let Some(pod_dir) = find_pod_dir(pods_dir, &request.namespace, &request.pod) else {
        let message = format!(
            "pod {}/{} is not on this node\n",
            request.namespace, request.pod
        );
        return respond(&mut stream, "404 Not Found", &message).await;
    };
    let container_dir = pod_dir.join("logs").join(&request.container);
    let Some(number) = pick_log_file(&log_numbers(&container_dir), request.previous) else {
        let which = if request.previous { "a previous" } else { "a" };
        let message = format!(
            "container {:?} in pod {}/{} has no {which} log\n",
            request.container, request.namespace, request.pod
        );
        return respond(&mut stream, "400 Bad Request", &message).await;
    };
    let path = container_dir.join(format!("{number}.log"));
    let content = tokio::fs::read(&path).await?;
    let mut body: &[u8] = match request.tail_lines {
        Some(lines) => tail(&content, lines),
        None => &content,
    };
    let mut budget = request.limit_bytes.unwrap_or(usize::MAX);
    if body.len() > budget {
        body = &body[..budget];
    }
    budget -= body.len();
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        .await?;
    stream.write_all(body).await?;
    if request.follow && !request.previous {
        let mut offset = content.len();
        let running = pid_record_path(&pod_dir, &request.container);
        while budget > 0 {
            tokio::time::sleep(FOLLOW_POLL).await;
            let still_running = running.exists();
            let now = tokio::fs::read(&path).await.unwrap_or_default();
            if now.len() > offset {
                let mut chunk = &now[offset..];
                if chunk.len() > budget {
                    chunk = &chunk[..budget];
                }
                stream.write_all(chunk).await?;
                stream.flush().await?;
                offset += chunk.len();
                budget -= chunk.len();
            } else if !still_running || log_numbers(&container_dir).iter().any(|n| *n > number) {
                break;
            }
        }
    }
    stream.shutdown().await
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    body: &str,
) -> std::io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubelet_log_requests() {
        let request = parse_request_target(
            "/containerLogs/fp/api-0/api?follow=true&tailLines=10&limitBytes=500&timestamps=false",
        )
        .unwrap();
        assert_eq!(
            request,
            LogRequest {
                namespace: "fp".into(),
                pod: "api-0".into(),
                container: "api".into(),
                follow: true,
                previous: false,
                tail_lines: Some(10),
                limit_bytes: Some(500),
            }
        );
        assert!(parse_request_target("/containerLogs/fp/api-0").is_err());
        assert!(parse_request_target("/exec/fp/api-0/api").is_err());
        assert!(parse_request_target("/containerLogs/fp//api").is_err());
        assert!(
            parse_request_target("/containerLogs/fp/p/c?previous=true")
                .unwrap()
                .previous
        );
    }

    #[test]
    fn picks_current_or_previous_run() {
        assert_eq!(pick_log_file(&[0, 2, 1], false), Some(2));
        assert_eq!(pick_log_file(&[0, 2, 1], true), Some(1));
        assert_eq!(pick_log_file(&[0], true), None);
        assert_eq!(pick_log_file(&[], false), None);
    }

    #[test]
    fn tails_lines() {
        let log = b"one\ntwo\nthree\n";
        assert_eq!(tail(log, 1), b"three\n");
        assert_eq!(tail(log, 2), b"two\nthree\n");
        assert_eq!(tail(log, 5), log);
        assert_eq!(tail(log, 0), b"");
        assert_eq!(tail(b"no newline", 1), b"no newline");
    }

    #[tokio::test]
    async fn serves_logs_over_a_stream() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("fp_api-0_uid-1/logs/api");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("0.log"), "first run\n").unwrap();
        std::fs::write(logs.join("1.log"), "a\nb\nc\n").unwrap();

        let request = |target: &str| {
            let target = target.to_string();
            let pods = dir.path().to_path_buf();
            async move {
                let (mut client, server) = tokio::io::duplex(4096);
                let serving = tokio::spawn(async move { handle(server, &pods).await });
                client
                    .write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut response = String::new();
                client.read_to_string(&mut response).await.unwrap();
                serving.await.unwrap().unwrap();
                response
            }
        };
        let current = request("/containerLogs/fp/api-0/api?tailLines=2").await;
        assert!(current.starts_with("HTTP/1.1 200 OK"), "{current}");
        assert!(current.ends_with("\r\n\r\nb\nc\n"), "{current}");
        let previous = request("/containerLogs/fp/api-0/api?previous=true").await;
        assert!(previous.ends_with("first run\n"), "{previous}");
        let limited = request("/containerLogs/fp/api-0/api?limitBytes=3").await;
        assert!(limited.ends_with("\r\n\r\na\nb"), "{limited}");
        let missing = request("/containerLogs/fp/other/api").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        // Following a container that is not running ends after its current content.
        let followed = request("/containerLogs/fp/api-0/api?follow=true").await;
        assert!(followed.ends_with("a\nb\nc\n"), "{followed}");
    }
}
