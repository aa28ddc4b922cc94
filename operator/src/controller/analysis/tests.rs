use std::time::Instant;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use pretty_assertions::assert_eq;
use serde_json::json;

use super::*;
use crate::crd::HttpGetCheck;

// ---- which pods ----

fn pod(name: &str, ip: Option<&str>, phase: &str, ready: &str, deleting: bool) -> Pod {
    let mut value = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "fp"},
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": ready},
                {"type": "Ready", "status": ready},
                {"type": "PodScheduled", "status": "True"}
            ]
        }
    });
    if let Some(ip) = ip {
        value["status"]["podIP"] = json!(ip);
    }
    if deleting {
        value["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    serde_json::from_value(value).unwrap()
}

#[test]
fn only_running_ready_live_pods_with_an_ip_are_probed_in_address_order() {
    let pods = [
        pod("api-green-a", Some("10.244.1.12"), "Running", "True", false),
        pod("api-green-b", Some("10.244.1.3"), "Running", "True", false),
        pod("not-ready", Some("10.244.1.4"), "Running", "False", false),
        pod("pending", Some("10.244.1.5"), "Pending", "True", false),
        pod("terminating", Some("10.244.1.6"), "Running", "True", true),
        pod("no-ip-yet", None, "Running", "True", false),
        pod("garbage-ip", Some("10.244.1"), "Running", "True", false),
        pod("ipv6", Some("fd00::7"), "Running", "True", false),
        pod(
            "same-ip-again",
            Some("10.244.1.3"),
            "Running",
            "True",
            false,
        ),
    ];
    let addresses: Vec<String> = ready_pod_addresses(&pods, PROBE_PORT)
        .iter()
        .map(ToString::to_string)
        .collect();
    // Numeric order (.3 before .12), IPv6 in brackets so the address works in a URL.
    assert_eq!(
        addresses,
        ["10.244.1.3:8080", "10.244.1.12:8080", "[fd00::7]:8080"]
    );
}

#[test]
fn a_pod_without_status_or_conditions_is_not_probed() {
    let bare: Pod = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    let no_conditions: Pod = serde_json::from_value(json!({
        "metadata": {"name": "y"},
        "status": {"phase": "Running", "podIP": "10.0.0.1"}
    }))
    .unwrap();
    assert_eq!(ready_pod_addresses(&[bare, no_conditions], 8080), []);
}

// ---- reading the exposition ----

/// What the API server's `/metrics` answers (the `prometheus` text encoder's format, shortened):
/// families it does not matter to the prober, a route label with an escaped quote, a timestamp.
const EXPOSITION: &str = r#"# HELP fp_build_info Release of the running server
# TYPE fp_build_info gauge
fp_build_info{version="1.4.0"} 1
# HELP http_request_duration_seconds HTTP request latency by method and route template
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{method="GET",route="/health/ready",le="0.0025"} 40
http_request_duration_seconds_bucket{method="GET",route="/health/ready",le="+Inf"} 42
http_request_duration_seconds_sum{method="GET",route="/health/ready"} 0.031
http_request_duration_seconds_count{method="GET",route="/health/ready"} 42
# HELP http_requests_total HTTP requests by method, route template and status
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/api/v1/matches/{id}",status="200"} 1200
http_requests_total{method="GET",route="/api/v1/matches/{id}",status="404"} 30
http_requests_total{method="GET",route="/health/ready",status="200"} 40
http_requests_total{method="GET",route="/health/ready",status="503"} 2
http_requests_total{method="POST",route="odd \"route\", {x=1}",status="500"} 8 1767225600000
http_requests_total{method="other",route="unmatched",status="5xx"} 1
http_requests_total_created{method="GET",route="/health/ready",status="503"} 1767225600
# HELP fp_predictions_served_total Predictions answered
# TYPE fp_predictions_served_total counter
fp_predictions_served_total 977
"#;

#[test]
fn sums_all_request_series_and_counts_5xx_statuses_as_server_errors() {
    assert_eq!(
        parse_request_counts(EXPOSITION),
        Some(RequestCounts {
            // 1200 + 30 + 8 + 1: probes, `_created` and other families are not user requests.
            total: 1239.0,
            // The 500; "5xx" is not a status code, the readiness 503s are probes.
            server_errors: 8.0,
        })
    );
}

#[test]
fn reads_what_the_prometheus_encoder_writes_for_the_api_servers_counter() {
    // The same definition as api-server/src/metrics.rs, through the same crate and encoder.
    let registry = prometheus::Registry::new();
    let requests = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "http_requests_total",
            "HTTP requests by method, route template and status",
        ),
        &["method", "route", "status"],
    )
    .unwrap();
    registry.register(Box::new(requests.clone())).unwrap();
    requests
        .with_label_values(&["GET", "/api/v1/matches", "200"])
        .inc_by(7);
    requests
        .with_label_values(&["GET", "/api/v1/predictions/{id}", "503"])
        .inc_by(3);
    // Probes and scrapes are not user traffic.
    requests
        .with_label_values(&["GET", "/health/ready", "503"])
        .inc_by(50);
    requests
        .with_label_values(&["GET", "/metrics", "200"])
        .inc_by(20);
    requests
        .with_label_values(&["GET", "a \"quoted\\\" route\nwith a newline", "502"])
        .inc();
    let mut text = Vec::new();
    prometheus::Encoder::encode(
        &prometheus::TextEncoder::new(),
        &registry.gather(),
        &mut text,
    )
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains(r#"\"quoted\\\" route\nwith"#), "{text}");
    assert_eq!(
        parse_request_counts(&text),
        Some(RequestCounts {
            total: 11.0,
            server_errors: 4.0,
        })
    );
}

#[test]
fn probes_and_scrapes_are_left_out_of_the_error_share() {
    let text = "http_requests_total{route=\"/health/ready\",status=\"503\"} 40\n\
                http_requests_total{route=\"/health/live\",status=\"200\"} 40\n\
                http_requests_total{route=\"/health\",status=\"200\"} 1\n\
                http_requests_total{route=\"/metrics\",status=\"200\"} 9\n\
                http_requests_total{route=\"/healthz-like/user/route\",status=\"500\"} 1\n\
                http_requests_total{route=\"/api/v1/matches\",status=\"200\"} 3\n";
    assert_eq!(
        parse_request_counts(text),
        Some(RequestCounts {
            total: 4.0,
            server_errors: 1.0,
        })
    );
    // Only probes so far: readable, and no user request to judge.
    assert_eq!(
        parse_request_counts("http_requests_total{route=\"/health/ready\",status=\"200\"} 3\n"),
        Some(RequestCounts::default())
    );
}

#[test]
fn an_exposition_without_readable_request_counts_is_none() {
    assert_eq!(parse_request_counts(""), None);
    assert_eq!(parse_request_counts("<html>not metrics</html>"), None);
    // Only look-alike names.
    assert_eq!(
        parse_request_counts("http_requests_total_created 5\nxhttp_requests_total 5\n"),
        None
    );
    // An unterminated label value, a missing value, a value that is not a number.
    for broken in [
        r#"http_requests_total{status="200} 5"#,
        r#"http_requests_total{status="200"}"#,
        r#"http_requests_total{status="200"} many"#,
        r#"http_requests_total{status="200"} NaN"#,
        r#"http_requests_total{status="200" method="GET"} 1"#,
    ] {
        let text = format!("http_requests_total{{status=\"200\"}} 1\n{broken}\n");
        assert_eq!(parse_request_counts(&text), None, "{broken}");
    }
}

#[test]
fn an_unlabelled_counter_counts_as_requests_without_errors() {
    assert_eq!(
        parse_request_counts("http_requests_total 12\n"),
        Some(RequestCounts {
            total: 12.0,
            server_errors: 0.0,
        })
    );
}

// ---- the ratio over a window ----

fn counts(total: f64, server_errors: f64) -> RequestCounts {
    RequestCounts {
        total,
        server_errors,
    }
}

#[test]
fn error_ratio_is_the_share_of_5xx_among_requests_in_the_window() {
    assert_eq!(
        error_ratio(&counts(1000.0, 10.0), &counts(1200.0, 60.0)),
        Some(0.25)
    );
    assert_eq!(
        error_ratio(&counts(1000.0, 10.0), &counts(1100.0, 10.0)),
        Some(0.0)
    );
}

#[test]
fn no_requests_in_the_window_gives_no_ratio() {
    assert_eq!(error_ratio(&counts(50.0, 5.0), &counts(50.0, 5.0)), None);
    assert_eq!(
        error_ratio(&RequestCounts::default(), &RequestCounts::default()),
        None
    );
}

#[test]
fn a_reset_counter_counts_from_zero() {
    // The pod restarted: 40 requests since, 4 of them 5xx (not 40 - 1000).
    assert_eq!(
        error_ratio(&counts(1000.0, 10.0), &counts(40.0, 4.0)),
        Some(0.1)
    );
    // Errors went down while requests went up: also a reset.
    assert_eq!(
        error_ratio(&counts(100.0, 50.0), &counts(120.0, 6.0)),
        Some(0.05)
    );
}

// ---- probing over HTTP ----

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// A port nothing listens on: bound, then released.
async fn refused_address() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

fn api_like() -> Router {
    Router::new()
        .route(
            "/health/ready",
            get(|| async {
                axum::Json(json!({"status": "ready", "message": "ok", "schema_version": 7}))
            }),
        )
        .route(
            "/unavailable",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({"status": "not_ready", "reason": "database_unreachable"})),
                )
            }),
        )
        .route(
            "/slow",
            // Never answers: the probe's own timeout is the only way out, however busy the
            // machine is.
            get(|| async {
                std::future::pending::<()>().await;
                "late"
            }),
        )
        .route("/text", get(|| async { "ok" }))
        .route(
            "/nested",
            get(|| async { axum::Json(json!({"items": [{"id": 1}], "a/b": true})) }),
        )
        .route(
            "/moved",
            get(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "/health/ready")],
                    "moved",
                )
                    .into_response()
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    EXPOSITION,
                )
            }),
        )
}

fn check(name: &str, path: &str, expect_status: i32, field: Option<&str>) -> AnalysisCheck {
    AnalysisCheck {
        name: name.into(),
        http_get: HttpGetCheck {
            path: path.into(),
            expect_status,
            expect_json_field: field.map(Into::into),
        },
    }
}

/// The probe timeout of tests whose probes must be answered: long enough that a stalled machine
/// (load 6+ on 2 cores, multi-second stalls) never turns an answer into a timeout. Tests of the
/// timeout itself use 200 ms against a handler that never answers.
const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn healthy_pods_pass_every_check() {
    let client = probe_client().unwrap();
    let pods = [serve(api_like()).await, serve(api_like()).await];
    let checks = [
        check("ready", "/health/ready", 200, None),
        check("status-field", "/health/ready", 200, Some("/status")),
        check("nested", "/nested", 200, Some("/items/0/id")),
        // RFC 6901 escaping: `~1` is a `/` inside a key.
        check("escaped", "/nested", 200, Some("/a~1b")),
        check("expects-503", "/unavailable", 503, None),
    ];
    let round = probe_round(&client, &pods, &checks, TIMEOUT).await;
    assert_eq!(round.failures, Vec::<String>::new());
    assert_eq!(round.probes, 10);
    assert!(round.passed());
}

#[tokio::test]
async fn failures_name_the_check_the_request_the_pod_and_the_observation() {
    let client = probe_client().unwrap();
    let pod = serve(api_like()).await;
    let checks = [
        check("ready", "/unavailable", 200, None),
        check("json", "/text", 200, Some("/status")),
        check("field", "/health/ready", 200, Some("/version")),
        check("deep", "/nested", 200, Some("/items/1/id")),
        check("redirect", "/moved", 200, None),
        check("ok", "/health/ready", 200, None),
    ];
    let round = probe_round(&client, &[pod], &checks, TIMEOUT).await;
    assert_eq!(
        round.failures,
        [
            format!("check ready: GET /unavailable on {pod} returned 503 (expected 200)"),
            format!("check json: GET /text on {pod} body is not JSON"),
            format!("check field: GET /health/ready on {pod} body has no JSON field /version"),
            format!("check deep: GET /nested on {pod} body has no JSON field /items/1/id"),
            // Not followed to /health/ready: the pod's own answer is what is judged.
            format!("check redirect: GET /moved on {pod} returned 302 (expected 200)"),
        ]
    );
    assert_eq!(round.probes, 6);
    assert!(!round.passed());
}

#[tokio::test]
async fn a_slow_pod_times_out() {
    let client = probe_client().unwrap();
    let pods = [serve(api_like()).await, serve(api_like()).await];
    let checks = [
        check("slow", "/slow", 200, None),
        check("slower", "/slow", 200, None),
    ];
    let started = Instant::now();
    let round = probe_round(&client, &pods, &checks, Duration::from_millis(200)).await;
    eprintln!("four timed-out probes took {:?}", started.elapsed());
    assert_eq!(
        round.failures,
        [
            format!("check slow: GET /slow on {} timed out after 200ms", pods[0]),
            format!(
                "check slower: GET /slow on {} timed out after 200ms",
                pods[0]
            ),
            format!("check slow: GET /slow on {} timed out after 200ms", pods[1]),
            format!(
                "check slower: GET /slow on {} timed out after 200ms",
                pods[1]
            ),
        ]
    );
}

/// All probes of a round are in flight at once: each pod answers only after it has seen every
/// probe of the round arrive (2 pods x 2 checks), which probes made one after another never
/// achieve (each would wait for the next, until its timeout). No clock judges the concurrency;
/// the timeout is generous, so only a sequential prober fails (after it).
#[tokio::test]
async fn probes_run_concurrently() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const PROBES: usize = 4;
    let arrived = Arc::new(AtomicUsize::new(0));
    let all_arrived = Arc::new(tokio::sync::Notify::new());
    let barrier = || {
        let (arrived, all_arrived) = (arrived.clone(), all_arrived.clone());
        Router::new().route(
            "/together",
            get(move || {
                let (arrived, all_arrived) = (arrived.clone(), all_arrived.clone());
                async move {
                    let waiting = all_arrived.notified();
                    if arrived.fetch_add(1, Ordering::SeqCst) + 1 >= PROBES {
                        all_arrived.notify_waiters();
                    } else {
                        waiting.await;
                    }
                    "together"
                }
            }),
        )
    };
    let client = probe_client().unwrap();
    let pods = [serve(barrier()).await, serve(barrier()).await];
    let checks = [
        check("one", "/together", 200, None),
        check("two", "/together", 200, None),
    ];
    let started = Instant::now();
    let round = probe_round(&client, &pods, &checks, TIMEOUT).await;
    eprintln!("a concurrent round took {:?}", started.elapsed());
    assert_eq!(round.failures, Vec::<String>::new());
    assert_eq!(round.probes, PROBES);
    assert_eq!(arrived.load(Ordering::SeqCst), PROBES);
}

#[tokio::test]
async fn a_pod_that_refuses_connections_fails_every_check_and_others_still_count() {
    let client = probe_client().unwrap();
    let healthy = serve(api_like()).await;
    let gone = refused_address().await;
    let checks = [check("ready", "/health/ready", 200, None)];
    let round = probe_round(&client, &[healthy, gone], &checks, TIMEOUT).await;
    assert_eq!(
        round.failures,
        [format!(
            "check ready: GET /health/ready on {gone} connection refused"
        )]
    );
    assert_eq!(round.probes, 2);
    assert!(!round.passed());
}

#[tokio::test]
async fn no_pods_is_a_failed_round() {
    let client = probe_client().unwrap();
    let round = probe_round(
        &client,
        &[],
        &[check("ready", "/health/ready", 200, None)],
        TIMEOUT,
    )
    .await;
    assert_eq!(round.failures, ["no running pods to probe"]);
    assert_eq!(round.probes, 0);
    assert!(!round.passed());
}

// ---- scraping ----

#[tokio::test]
async fn scraping_sums_the_counters_of_all_pods() {
    let client = probe_client().unwrap();
    let pods = [serve(api_like()).await, serve(api_like()).await];
    assert_eq!(
        scrape_counts(&client, &pods, TIMEOUT).await,
        Ok(RequestCounts {
            total: 2478.0,
            server_errors: 16.0,
        })
    );
}

#[tokio::test]
async fn scraping_fails_when_any_pod_cannot_be_read() {
    let client = probe_client().unwrap();
    let healthy = serve(api_like()).await;
    let gone = refused_address().await;
    assert_eq!(
        scrape_counts(&client, &[healthy, gone], TIMEOUT).await,
        Err(format!(
            "metrics: GET /metrics on {gone} connection refused"
        ))
    );
    let not_metrics = serve(Router::new().route("/metrics", get(|| async { "hello" }))).await;
    assert_eq!(
        scrape_counts(&client, &[healthy, not_metrics], TIMEOUT).await,
        Err(format!(
            "metrics: GET /metrics on {not_metrics} body has no readable http_requests_total"
        ))
    );
    let forbidden =
        serve(Router::new().route("/metrics", get(|| async { StatusCode::FORBIDDEN }))).await;
    assert_eq!(
        scrape_counts(&client, &[forbidden], TIMEOUT).await,
        Err(format!(
            "metrics: GET /metrics on {forbidden} returned 403 (expected 200)"
        ))
    );
    let slow = serve(Router::new().route(
        "/metrics",
        get(|| async {
            std::future::pending::<()>().await;
            EXPOSITION
        }),
    ))
    .await;
    assert_eq!(
        scrape_counts(&client, &[slow], Duration::from_millis(200)).await,
        Err(format!(
            "metrics: GET /metrics on {slow} timed out after 200ms"
        ))
    );
    assert_eq!(
        scrape_counts(&client, &[], TIMEOUT).await,
        Err("no running pods to scrape".to_owned())
    );
}

#[tokio::test]
async fn the_window_between_two_scrapes_gives_the_error_ratio() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    // A pod whose counters grow between scrapes: +100 requests, +5 of them 503.
    let scrapes = Arc::new(AtomicU64::new(0));
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let n = scrapes.fetch_add(1, Ordering::SeqCst);
            async move {
                let ok = 1000 + 95 * n;
                let failed = 10 + 5 * n;
                format!(
                    "# TYPE http_requests_total counter\n\
                     http_requests_total{{method=\"GET\",route=\"/api/v1/matches\",status=\"200\"}} {ok}\n\
                     http_requests_total{{method=\"GET\",route=\"/api/v1/matches\",status=\"503\"}} {failed}\n"
                )
            }
        }),
    );
    let client = probe_client().unwrap();
    let pods = [serve(router).await];
    let before = scrape_counts(&client, &pods, TIMEOUT).await.unwrap();
    let after = scrape_counts(&client, &pods, TIMEOUT).await.unwrap();
    assert_eq!(error_ratio(&before, &after), Some(0.05));
}
