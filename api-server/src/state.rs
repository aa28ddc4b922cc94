//! The shared application state handed to every handler.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::config::Settings;
use crate::db::Db;
use crate::faults::Faults;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub settings: Settings,
    pub db: Db,
    pub metrics: Metrics,
    pub faults: Faults,
    pub started: Instant,
    /// The newest migration this binary knows: readiness requires the database to have it.
    pub schema_version: i64,
    shutting_down: AtomicBool,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    pub fn new(settings: Settings, db: Db, metrics: Metrics, faults: Faults) -> Self {
        let schema_version = crate::db::schema::known_versions(db.backend())
            .last()
            .copied()
            .unwrap_or(0);
        Self {
            inner: Arc::new(Inner {
                settings,
                db,
                metrics,
                faults,
                started: Instant::now(),
                schema_version,
                shutting_down: AtomicBool::new(false),
            }),
        }
    }

    /// Readiness answers 503 from now on, so load balancers stop sending new requests.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Relaxed)
    }
}
