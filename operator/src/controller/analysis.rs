//! The rollout analysis prober. During a blue-green rollout every Ready pod of a color is probed at
//! its own IP (not through the Service, where one bad pod would hide behind good ones) with the
//! configured HTTP checks, and the pods' `http_requests_total` counters give the share of 5xx
//! answers over a window.
//!
//! The decisions (which pods, reading the exposition, the ratio) are pure functions; the HTTP edge
//! only gathers observations and words them.
//!
//! `/metrics` on the API server needs no credentials: it is routed outside the authenticated
//! `/api/` routes (api-server/src/http/mod.rs), and the API NetworkPolicy admits the operator's
//! namespace on the HTTP port.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;

use crate::crd::AnalysisCheck;
use crate::resources::common::API_PORT;

/// The API container port as a socket port.
pub const PROBE_PORT: u16 = {
    assert!(API_PORT > 0 && API_PORT <= u16::MAX as i32);
    API_PORT as u16
};

/// The counter the API server's middleware increments once per answered request.
const REQUESTS_METRIC: &str = "http_requests_total";
/// Its label carrying the HTTP status code, e.g. `status="503"`.
const STATUS_LABEL: &str = "status";
const ROUTE_LABEL: &str = "route";
/// Pods are one hop away: a connect that takes longer means the pod is gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Health answers are a few hundred bytes; more means something else answered.
const CHECK_BODY_LIMIT: usize = 1024 * 1024;
/// The API server's exposition is tens of kilobytes (histograms per route).
const METRICS_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Socket addresses of the pods that can be probed: Running, Ready=True, not terminating and with a
/// valid pod IP; sorted and without duplicates so rounds and messages are deterministic.
pub fn ready_pod_addresses(pods: &[Pod], port: u16) -> Vec<SocketAddr> {
    pod_addresses(pods, port, true)
}

/// Like [`ready_pod_addresses`] without the Ready condition, what analysis probes: a preview pod
/// whose readiness fails is caught while it starts (not at the progress deadline), and a promoted
/// pod whose readiness turns bad counts as a failure instead of leaving the analysed set.
pub fn running_pod_addresses(pods: &[Pod], port: u16) -> Vec<SocketAddr> {
    pod_addresses(pods, port, false)
}

fn pod_addresses(pods: &[Pod], port: u16, ready_only: bool) -> Vec<SocketAddr> {
    let mut addresses: Vec<SocketAddr> = pods
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter_map(|pod| {
            let status = pod.status.as_ref()?;
            let running = status.phase.as_deref() == Some("Running");
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let ip: IpAddr = status.pod_ip.as_deref()?.parse().ok()?;
            (running && (ready || !ready_only)).then_some(SocketAddr::new(ip, port))
        })
        .collect();
    addresses.sort_unstable();
    addresses.dedup();
    addresses
}

/// Requests answered so far, from `http_requests_total`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RequestCounts {
    pub total: f64,
    /// Answers with a 5xx status.
    pub server_errors: f64,
}

impl std::ops::Add for RequestCounts {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            total: self.total + other.total,
            server_errors: self.server_errors + other.server_errors,
        }
    }
}

/// Sums `http_requests_total` over its series of user requests in a Prometheus text exposition
/// (routes under `/health` and `/metrics` are left out).
///
/// `None` when the text has no such series or one of its lines cannot be read: an empty answer
/// must not pass for "no errors". (The API server only exposes the counter once it has answered a
/// request; a Ready pod has answered at least its readiness probes.)
pub fn parse_request_counts(metrics_text: &str) -> Option<RequestCounts> {
    let mut counts = RequestCounts::default();
    let mut seen = false;
    for line in metrics_text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(REQUESTS_METRIC) else {
            continue;
        };
        // A longer name sharing the prefix (e.g. `http_requests_total_created`) is another metric.
        let (labels, value_part) = match rest.chars().next() {
            Some('{') => {
                let (labels, after) = parse_labels(&rest[1..])?;
                (labels, after)
            }
            Some(c) if c.is_ascii_whitespace() => (Vec::new(), rest),
            _ => continue,
        };
        // The value, optionally followed by a timestamp.
        let value: f64 = value_part.split_ascii_whitespace().next()?.parse().ok()?;
        if !value.is_finite() || value < 0.0 {
            return None;
        }
        seen = true;
        let route = labels
            .iter()
            .find(|(name, _)| name == ROUTE_LABEL)
            .map(|(_, value)| value.as_str());
        if route.is_some_and(is_infrastructure_route) {
            continue;
        }
        counts.total += value;
        let status = labels
            .iter()
            .find(|(name, _)| name == STATUS_LABEL)
            .map(|(_, value)| value.as_str());
        if status.is_some_and(is_server_error_status) {
            counts.server_errors += value;
        }
    }
    seen.then_some(counts)
}

/// Probes (the kubelet's and the analysis' own) and scrapes: counting them would dilute the share
/// of failed user requests, or with no user traffic make it all about `/health/ready`, which the
/// checks already judge.
fn is_infrastructure_route(route: &str) -> bool {
    route == "/metrics" || route == "/health" || route.starts_with("/health/")
}

fn is_server_error_status(status: &str) -> bool {
    status.len() == 3 && status.starts_with('5') && status.bytes().all(|b| b.is_ascii_digit())
}

/// Reads `name="value",…}` (the opening brace already consumed) and returns the labels with
/// unescaped values and the text after the closing brace. `None` on malformed input.
fn parse_labels(text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = text.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        let quoted = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name.to_owned(), value));
        rest = quoted[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start();
        } else if !rest.starts_with('}') {
            return None;
        }
    }
}

/// Share of 5xx answers among the requests between two readings; `None` when no request was
/// answered in between. A counter that went down was reset (a restarted pod), so `after` alone is
/// what happened since.
pub fn error_ratio(before: &RequestCounts, after: &RequestCounts) -> Option<f64> {
    let reset = after.total < before.total || after.server_errors < before.server_errors;
    let window = if reset {
        *after
    } else {
        RequestCounts {
            total: after.total - before.total,
            server_errors: after.server_errors - before.server_errors,
        }
    };
    (window.total > 0.0).then(|| (window.server_errors / window.total).clamp(0.0, 1.0))
}

/// The outcome of running every check against every pod once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundResult {
    /// Requests made (checks × pods).
    pub probes: usize,
    /// One message per failed probe, in pod then check order.
    pub failures: Vec<String>,
    /// Failed probes the pod answered (a wrong status or body), as opposed to a refused
    /// connection or a timeout, which a starting pod also produces.
    pub answered_failures: usize,
}

impl RoundResult {
    /// Passed when something was probed and nothing failed.
    pub fn passed(&self) -> bool {
        self.probes > 0 && self.failures.is_empty()
    }
}

/// The HTTP client of the prober, built once at start-up.
///
/// No proxy: pod IPs are only reachable from inside the cluster, and an `HTTP_PROXY` in the
/// operator's environment (common behind egress proxies) would capture the probes unless
/// `NO_PROXY` happened to list the pod network. No redirects: the status a pod answers with is the
/// observation; following it would probe something else. No trusted TLS roots: probes are plain
/// HTTP, and loading the system's CA certificates would make building fail in an image that has
/// none.
pub fn probe_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .tls_certs_only(std::iter::empty())
        .user_agent(concat!(
            "fp-operator/",
            env!("CARGO_PKG_VERSION"),
            " analysis"
        ))
        .build()
}

/// Runs every check against every address at once, each probe bounded by `timeout`.
pub async fn probe_round(
    client: &reqwest::Client,
    addresses: &[SocketAddr],
    checks: &[AnalysisCheck],
    timeout: Duration,
) -> RoundResult {
    if addresses.is_empty() {
        return RoundResult {
            probes: 0,
            failures: vec!["no running pods to probe".to_owned()],
            answered_failures: 0,
        };
    }
    let probes = addresses
        .iter()
        .flat_map(|address| checks.iter().map(move |check| (*address, check)))
        .map(|(address, check)| probe(client, address, check, timeout));
    let outcomes = join_all(probes).await;
    let probes = outcomes.len();
    let failed: Vec<Failure> = outcomes.into_iter().filter_map(Result::err).collect();
    RoundResult {
        probes,
        answered_failures: failed.iter().filter(|f| f.answered).count(),
        failures: failed.into_iter().map(|f| f.message).collect(),
    }
}

/// A failed probe: what it observed, and whether the pod answered at all.
struct Failure {
    message: String,
    answered: bool,
}

/// One check against one pod; `Err` is the failure.
async fn probe(
    client: &reqwest::Client,
    address: SocketAddr,
    check: &AnalysisCheck,
    timeout: Duration,
) -> Result<(), Failure> {
    let http_get = &check.http_get;
    let subject = format!("check {}: GET {} on {address}", check.name, http_get.path);
    let observed = async {
        let response = client
            .get(format!("http://{address}{}", http_get.path))
            .send()
            .await
            .map_err(|e| (describe_error(&e), false))?;
        let status = response.status().as_u16();
        if i32::from(status) != http_get.expect_status {
            return Err((
                format!("returned {status} (expected {})", http_get.expect_status),
                true,
            ));
        }
        let Some(pointer) = &http_get.expect_json_field else {
            return Ok(());
        };
        let body = read_body(response, CHECK_BODY_LIMIT)
            .await
            .map_err(|e| (e, false))?;
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| ("body is not JSON".to_owned(), true))?;
        match json.pointer(pointer) {
            Some(_) => Ok(()),
            None => Err((format!("body has no JSON field {pointer}"), true)),
        }
    };
    match tokio::time::timeout(timeout, observed).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err((what, answered))) => Err(Failure {
            message: format!("{subject} {what}"),
            answered,
        }),
        Err(_) => Err(Failure {
            message: format!("{subject} {}", timed_out(timeout)),
            answered: false,
        }),
    }
}

/// Sums the request counters of all pods, read from each pod's `/metrics` at once.
pub async fn scrape_counts(
    client: &reqwest::Client,
    addresses: &[SocketAddr],
    timeout: Duration,
) -> Result<RequestCounts, String> {
    if addresses.is_empty() {
        return Err("no running pods to scrape".to_owned());
    }
    let scrapes = addresses
        .iter()
        .map(|address| scrape_one(client, *address, timeout));
    let mut sum = RequestCounts::default();
    for counts in join_all(scrapes).await {
        sum = sum + counts?;
    }
    Ok(sum)
}

async fn scrape_one(
    client: &reqwest::Client,
    address: SocketAddr,
    timeout: Duration,
) -> Result<RequestCounts, String> {
    let subject = format!("metrics: GET /metrics on {address}");
    let observed = async {
        let response = client
            .get(format!("http://{address}/metrics"))
            .send()
            .await
            .map_err(|e| describe_error(&e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(format!("returned {status} (expected 200)"));
        }
        let body = read_body(response, METRICS_BODY_LIMIT).await?;
        let text = String::from_utf8(body).map_err(|_| "body is not UTF-8 text".to_owned())?;
        parse_request_counts(&text).ok_or_else(|| format!("body has no readable {REQUESTS_METRIC}"))
    };
    match tokio::time::timeout(timeout, observed).await {
        Ok(result) => result.map_err(|what| format!("{subject} {what}")),
        Err(_) => Err(format!("{subject} {}", timed_out(timeout))),
    }
}

/// Reads the body up to `limit` bytes, so a misbehaving pod cannot make the operator buffer
/// without bound.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe_error(&e))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("body is larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn timed_out(timeout: Duration) -> String {
    format!("timed out after {}", humantime::format_duration(timeout))
}

/// A few words for a transport failure: the kind of the innermost I/O error when there is one.
fn describe_error(error: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind;
            let words = match io.kind() {
                ErrorKind::ConnectionRefused => Some("connection refused"),
                ErrorKind::ConnectionReset => Some("connection reset"),
                ErrorKind::ConnectionAborted => Some("connection aborted"),
                ErrorKind::HostUnreachable => Some("host unreachable"),
                ErrorKind::NetworkUnreachable => Some("network unreachable"),
                ErrorKind::TimedOut => Some("connection timed out"),
                ErrorKind::UnexpectedEof => Some("connection closed early"),
                _ => None,
            };
            if let Some(words) = words {
                return words.to_owned();
            }
        }
        source = current.source();
    }
    let words = if error.is_timeout() {
        "connection timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "body could not be read"
    } else if error.is_builder() {
        "request could not be built"
    } else {
        "request failed"
    };
    words.to_owned()
}

#[cfg(test)]
mod tests;
