//! Prometheus metrics. The names and labels are a contract with the alert rules and dashboards
//! the operator installs; labels only take values from fixed sets (route templates, methods,
//! status codes, cache names, league codes, metric names).

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::db::PoolStats;

/// Label value for requests that matched no route (never the raw path).
pub const UNMATCHED_ROUTE: &str = "unmatched";

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The caches whose hits and misses are counted (`fp_cache_requests_total{cache}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheName {
    Predictions,
    Responses,
    Evaluations,
}

impl CacheName {
    pub fn label(self) -> &'static str {
        match self {
            Self::Predictions => "predictions",
            Self::Responses => "responses",
            Self::Evaluations => "evaluations",
        }
    }
}

/// Pre-resolved hit/miss counters of one cache: one atomic add on the hot path.
#[derive(Clone)]
pub struct CacheCounters {
    pub hit: IntCounter,
    pub miss: IntCounter,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    pool_acquire_timeouts: IntCounter,
    pub db_ready: IntGauge,
    cache_requests: IntCounterVec,
    cache_entries: IntGaugeVec,
    cache_bytes: IntGaugeVec,
    pub predictions_served: IntCounter,
    pub access_log_skipped: IntCounter,
    pub model_fit_timestamp: GaugeVec,
    pub model_evaluation: GaugeVec,
    pub last_import_timestamp: GaugeVec,
    pub build_info: IntGaugeVec,
}

impl Metrics {
    /// Builds the registry. Fails only on a programming error (a duplicate or invalid name).
    pub fn new(release_version: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by method, route template and status",
            ),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by method and route template",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let pool_connections = IntGaugeVec::new(
            Opts::new(
                "fp_db_pool_connections",
                "Database pool connections by state",
            ),
            &["state"],
        )?;
        let pool_max = IntGauge::new(
            "fp_db_pool_max_connections",
            "Maximum connections of the database pool",
        )?;
        let pool_acquire_timeouts = IntCounter::new(
            "fp_db_pool_acquire_timeouts_total",
            "Database connection acquires that waited out the pool's acquire timeout",
        )?;
        let db_ready = IntGauge::new(
            "fp_db_ready",
            "1 when the last readiness check reached the database within its timeout, else 0",
        )?;
        let cache_requests = IntCounterVec::new(
            Opts::new(
                "fp_cache_requests_total",
                "Cache lookups by cache and result (hit, miss)",
            ),
            &["cache", "result"],
        )?;
        let cache_entries = IntGaugeVec::new(
            Opts::new("fp_cache_entries", "Entries held by each cache"),
            &["cache"],
        )?;
        let cache_bytes = IntGaugeVec::new(
            Opts::new(
                "fp_cache_bytes",
                "Bytes (keys, bodies, bookkeeping) held by each cache, bounded by its budget",
            ),
            &["cache"],
        )?;
        let predictions_served = IntCounter::new(
            "fp_predictions_served_total",
            "Predictions returned by /api/v1/predictions/{match_id} and /batch (a batch counts each)",
        )?;
        let access_log_skipped = IntCounter::new(
            "fp_access_log_skipped_total",
            "Requests not written to the access log because its per-second budget was spent",
        )?;
        let model_fit_timestamp = GaugeVec::new(
            Opts::new(
                "fp_model_fit_timestamp_seconds",
                "Unix time of the fit each league's served model comes from",
            ),
            &["league"],
        )?;
        let model_evaluation = GaugeVec::new(
            Opts::new(
                "fp_model_evaluation",
                "Latest out-of-sample evaluation of the served model by league and metric",
            ),
            &["league", "metric"],
        )?;
        let last_import_timestamp = GaugeVec::new(
            Opts::new(
                "fp_last_import_timestamp_seconds",
                "Unix time of the last successful data import by league",
            ),
            &["league"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "fp_build_info",
                "Always 1; the label carries the release version",
            ),
            &["version"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(pool_connections.clone()))?;
        registry.register(Box::new(pool_max.clone()))?;
        registry.register(Box::new(pool_acquire_timeouts.clone()))?;
        registry.register(Box::new(db_ready.clone()))?;
        registry.register(Box::new(cache_requests.clone()))?;
        registry.register(Box::new(cache_entries.clone()))?;
        registry.register(Box::new(cache_bytes.clone()))?;
        registry.register(Box::new(predictions_served.clone()))?;
        registry.register(Box::new(access_log_skipped.clone()))?;
        registry.register(Box::new(model_fit_timestamp.clone()))?;
        registry.register(Box::new(model_evaluation.clone()))?;
        registry.register(Box::new(last_import_timestamp.clone()))?;
        registry.register(Box::new(build_info.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        build_info.with_label_values(&[release_version]).set(1);
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            pool_connections,
            pool_max,
            pool_acquire_timeouts,
            db_ready,
            cache_requests,
            cache_entries,
            cache_bytes,
            predictions_served,
            access_log_skipped,
            model_fit_timestamp,
            model_evaluation,
            last_import_timestamp,
            build_info,
        })
    }

    pub fn set_cache_usage(&self, cache: CacheName, entries: u64, bytes: u64) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.cache_entries
            .with_label_values(&[cache.label()])
            .set(gauge(entries));
        self.cache_bytes
            .with_label_values(&[cache.label()])
            .set(gauge(bytes));
    }

    pub fn cache_counters(&self, cache: CacheName) -> CacheCounters {
        CacheCounters {
            hit: self
                .cache_requests
                .with_label_values(&[cache.label(), "hit"]),
            miss: self
                .cache_requests
                .with_label_values(&[cache.label(), "miss"]),
        }
    }

    /// Records one finished request (the middleware calls this).
    pub fn observe_request(&self, method: &str, route: &str, status: &str, seconds: f64) {
        self.http_requests
            .with_label_values(&[method, route, status])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// The text exposition, with the pool gauges sampled now.
    pub fn render(&self, pool: Option<PoolStats>) -> String {
        if let Some(stats) = pool {
            let in_use = stats.size.saturating_sub(stats.idle);
            self.pool_connections
                .with_label_values(&["idle"])
                .set(i64::from(stats.idle));
            self.pool_connections
                .with_label_values(&["in_use"])
                .set(i64::from(in_use));
            self.pool_max.set(i64::from(stats.max));
            // A counter cannot be set; catch it up with the process-wide total.
            let counted = self.pool_acquire_timeouts.get();
            if stats.acquire_timeouts > counted {
                self.pool_acquire_timeouts
                    .inc_by(stats.acquire_timeouts - counted);
            }
        }
        let mut buffer = Vec::with_capacity(16 * 1024);
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// The method label: the fixed set of methods we route, anything else as `other`.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PATCH => "PATCH",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_contracted_names() {
        let m = Metrics::new("1.2.3").unwrap();
        m.observe_request("GET", "/api/v1/matches/{id}", "200", 0.002);
        m.cache_counters(CacheName::Predictions).hit.inc();
        m.predictions_served.inc();
        m.model_fit_timestamp.with_label_values(&["E0"]).set(1.0);
        m.model_evaluation
            .with_label_values(&["E0", "rps"])
            .set(0.2);
        m.last_import_timestamp.with_label_values(&["E0"]).set(1.0);
        let text = m.render(Some(PoolStats {
            size: 3,
            idle: 1,
            max: 16,
            acquire_timeouts: 2,
        }));
        for needle in [
            r#"http_requests_total{method="GET",route="/api/v1/matches/{id}",status="200"} 1"#,
            r#"http_request_duration_seconds_bucket{method="GET",route="/api/v1/matches/{id}",le="0.0025"} 1"#,
            r#"fp_cache_requests_total{cache="predictions",result="hit"} 1"#,
            "fp_predictions_served_total 1",
            r#"fp_model_fit_timestamp_seconds{league="E0"} 1"#,
            r#"fp_model_evaluation{league="E0",metric="rps"} 0.2"#,
            r#"fp_last_import_timestamp_seconds{league="E0"} 1"#,
            r#"fp_build_info{version="1.2.3"} 1"#,
            r#"fp_db_pool_connections{state="in_use"} 2"#,
            "fp_db_pool_max_connections 16",
            "fp_db_pool_acquire_timeouts_total 2",
            "fp_db_ready 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
        // The counter follows the process-wide total, whatever the render count.
        let later = PoolStats {
            size: 3,
            idle: 1,
            max: 16,
            acquire_timeouts: 5,
        };
        m.render(Some(later));
        let text = m.render(Some(later));
        assert!(
            text.contains("fp_db_pool_acquire_timeouts_total 5"),
            "{text}"
        );
    }
}
