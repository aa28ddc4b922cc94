//! The shared application state handed to every handler.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::auth::AuthService;
use crate::cache::Caches;
use crate::config::Settings;
use crate::db::Db;
use crate::faults::Faults;
use crate::http::access_log::AccessLogBudget;
use crate::http::ratelimit::RateLimits;
use crate::metrics::Metrics;
use crate::predict::ModelService;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub settings: Settings,
    pub db: Db,
    pub metrics: Metrics,
    pub faults: Faults,
    pub auth: AuthService,
    pub limits: RateLimits,
    pub models: ModelService,
    pub caches: Caches,
    pub started: Instant,
    /// The access log's per-second budget.
    pub access_log: AccessLogBudget,
    /// The newest migration this binary knows: readiness requires the database to have it.
    pub schema_version: i64,
    /// The database's data version this replica last acted on (see `db::version`).
    data_version: AtomicI64,
    shutting_down: AtomicBool,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// The parts [`AppState::new`] assembles.
pub struct Parts {
    pub settings: Settings,
    pub db: Db,
    pub metrics: Metrics,
    pub faults: Faults,
    pub auth: AuthService,
    pub limits: RateLimits,
    pub models: ModelService,
    pub caches: Caches,
    pub data_version: i64,
}

impl AppState {
    pub fn new(parts: Parts) -> Self {
        let schema_version = crate::db::schema::known_versions(parts.db.backend())
            .last()
            .copied()
            .unwrap_or(0);
        let access_log = AccessLogBudget::new(parts.settings.http.access_log_max_per_second);
        Self {
            inner: Arc::new(Inner {
                settings: parts.settings,
                db: parts.db,
                metrics: parts.metrics,
                faults: parts.faults,
                auth: parts.auth,
                limits: parts.limits,
                models: parts.models,
                caches: parts.caches,
                started: Instant::now(),
                access_log,
                schema_version,
                data_version: AtomicI64::new(parts.data_version),
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    /// A handle background tasks hold so they end when the state is dropped.
    pub fn downgrade(&self) -> WeakState {
        WeakState(Arc::downgrade(&self.inner))
    }

    /// Readiness answers 503 from now on, so load balancers stop sending new requests.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Relaxed)
    }

    pub fn data_version(&self) -> i64 {
        self.inner.data_version.load(Ordering::Acquire)
    }

    /// Acts on a data version read from the database: when it moved, reload what depends on
    /// it (session floors, fitted models) and drop cached responses. Returns whether it moved.
    pub async fn sync_data_version(&self, seen: i64) -> Result<bool, crate::predict::ModelError> {
        let previous = self.inner.data_version.load(Ordering::Acquire);
        if seen == previous {
            return Ok(false);
        }
        self.auth.reload_session_floors(&self.db).await?;
        self.models.reload(&self.db, &self.metrics).await?;
        // New cache keys carry the new version: entries of the old one are never read again.
        self.inner.data_version.store(seen, Ordering::Release);
        self.caches.invalidate_all();
        tracing::debug!(previous, seen, "data version changed; reloaded");
        Ok(true)
    }

    /// Reads the data version now and syncs (after this replica wrote).
    pub async fn sync_now(&self) -> Result<bool, crate::predict::ModelError> {
        let seen = crate::db::version::current(&self.db).await?;
        self.sync_data_version(seen).await
    }
}

#[derive(Clone)]
pub struct WeakState(Weak<Inner>);

impl WeakState {
    pub fn upgrade(&self) -> Option<AppState> {
        self.0.upgrade().map(|inner| AppState { inner })
    }
}
