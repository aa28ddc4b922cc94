//! The one middleware every request passes: request id, the test fault switch, the request time
//! limit, security headers, the error log line (with the request id), the access log and the
//! HTTP metrics.
//! Kept in a single function so the hot path pays for one layer, not six.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, InternalErrorDetail};
use crate::http::access_log::{Admission, Caller};
use crate::http::state::AppState;
use crate::metrics::{UNMATCHED_ROUTE, method_label};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request id: the caller's `x-request-id` when it is sane, else a generated one.
#[derive(Clone, Debug)]
pub struct RequestId(pub HeaderValue);

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);
static PROCESS_PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

impl RequestId {
    fn from_headers(headers: &HeaderMap) -> Self {
        if let Some(value) = headers
            .get(&X_REQUEST_ID)
            .filter(|v| is_sane_request_id(v.as_bytes()))
        {
            return Self(value.clone());
        }
        let prefix = *PROCESS_PREFIX.get_or_init(rand::random::<u32>);
        let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
        let text = format!("{prefix:08x}-{n:012x}");
        Self(HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid")))
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("invalid")
    }
}

fn is_sane_request_id(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes.len() <= 128
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Headers that cost nothing to send and close whole classes of browser attacks.
pub fn apply_security_headers(headers: &mut HeaderMap, hsts: bool) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
}

/// The answer to a request that outlived `--request-timeout`: the documented overload answer (503
/// with `Retry-After`), so clients and load generators back off instead of failing.
fn timed_out() -> ApiError {
    ApiError::unavailable("timeout", "the request took too long").with_retry_after(1)
}

pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().cloned();
    let request_id = RequestId::from_headers(req.headers());
    req.extensions_mut().insert(request_id.clone());
    let caller = Caller::default();
    req.extensions_mut().insert(caller.clone());
    let is_api = req.uri().path().starts_with("/api/");

    let mut response = if is_api && state.faults.request_fails() {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected_fault",
            "test fault switch: this request was made to fail",
        )
        .into_response()
    } else {
        match tokio::time::timeout(state.settings.http.request_timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => timed_out().into_response(),
        }
    };

    let headers = response.headers_mut();
    headers.insert(X_REQUEST_ID.clone(), request_id.0.clone());
    apply_security_headers(headers, state.settings.http.hsts);

    let route_label = route.as_ref().map_or(UNMATCHED_ROUTE, |r| r.as_str());
    let status = response.status();
    if let Some(detail) = response.extensions_mut().remove::<InternalErrorDetail>() {
        tracing::error!(
            request_id = request_id.as_str(),
            method,
            route = route_label,
            status = status.as_u16(),
            error = %detail.0,
            "request failed"
        );
    } else if status.is_server_error() {
        tracing::warn!(
            request_id = request_id.as_str(),
            method,
            route = route_label,
            status = status.as_u16(),
            "request answered with a server error"
        );
    }
    let elapsed = started.elapsed();
    access_log(
        &state,
        &request_id,
        method,
        route_label,
        status,
        elapsed,
        &caller,
    );
    state
        .metrics
        .observe_request(method, route_label, status.as_str(), elapsed.as_secs_f64());
    response
}

/// One access-log line, within the per-second budget. Probes and scrapes (`/health/…`,
/// `/metrics`) are logged at debug: the kubelet and Prometheus call every few seconds.
fn access_log(
    state: &AppState,
    request_id: &RequestId,
    method: &str,
    route: &str,
    status: StatusCode,
    elapsed: std::time::Duration,
    caller: &Caller,
) {
    let routine = route.starts_with("/health/") || route == "/metrics";
    if routine && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    if !routine && !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let skipped = match state.access_log.admit(second) {
        Admission::Log { skipped } => skipped,
        Admission::Skip => {
            state.metrics.access_log_skipped.inc();
            return;
        }
    };
    if skipped > 0 {
        tracing::info!(
            skipped,
            "access log: requests over --access-log-max-per-second were not logged"
        );
    }
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let user_id = caller.user_id();
    let status = status.as_u16();
    let request_id = request_id.as_str();
    if routine {
        tracing::debug!(request_id, method, route, status, duration_ms, "request");
    } else {
        tracing::info!(
            request_id,
            method,
            route,
            status,
            duration_ms,
            user_id,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_request_ids_are_reused_only_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(RequestId::from_headers(&headers).as_str(), "abc-123");
        headers.insert(
            &X_REQUEST_ID,
            HeaderValue::from_static("bad id with spaces"),
        );
        let generated = RequestId::from_headers(&headers);
        assert_ne!(generated.as_str(), "bad id with spaces");
        assert_eq!(generated.as_str().len(), 21);
        let other = RequestId::from_headers(&HeaderMap::new());
        assert_ne!(generated.as_str(), other.as_str());
    }

    #[test]
    fn a_timed_out_request_is_told_when_to_retry() {
        let response = timed_out().into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn hsts_only_when_configured() {
        let mut headers = HeaderMap::new();
        apply_security_headers(&mut headers, false);
        assert!(headers.get(header::STRICT_TRANSPORT_SECURITY).is_none());
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        apply_security_headers(&mut headers, true);
        assert!(headers.get(header::STRICT_TRANSPORT_SECURITY).is_some());
    }
}
