//! `serve`: open the database, check the schema, build the state, listen, and drain on SIGTERM.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::auth::keys::{self, KeyStore};
use crate::auth::password::PasswordHasher;
use crate::auth::{AuthService, bootstrap};
use crate::cache::Caches;
use crate::config::Settings;
use crate::db::{Db, schema};
use crate::faults::Faults;
use crate::http::ratelimit::RateLimits;
use crate::http::state::{AppState, Parts, WeakState};
use crate::metrics::Metrics;
use crate::predict::ModelService;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("refusing to serve: {0}")]
    Schema(String),
    #[error("invalid test fault switch: {0}")]
    Faults(#[from] crate::faults::FaultConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the database and makes sure its schema is what this binary serves: current, or older
/// and `--migrate` given or the zero-setup database (then migrated). Newer, dirty or
/// older-without-`--migrate` refuse, saying which.
pub async fn open_checked(settings: &Settings) -> Result<Db, ServeError> {
    let db = Db::connect(&settings.storage).await?;
    match schema::state(&db).await? {
        schema::SchemaState::Current { .. } => {}
        // Zero-setup (no database configured) migrates its own SQLite file without asking.
        schema::SchemaState::Older { .. }
            if settings.migrate_on_start || !settings.storage.database_url_configured =>
        {
            tracing::info!("applying pending migrations");
            schema::migrate(&db).await?;
        }
        other => return Err(ServeError::Schema(other.describe())),
    }
    Ok(db)
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Keys(#[from] crate::auth::keys::KeyError),
    #[error(transparent)]
    Password(#[from] crate::auth::password::PasswordError),
    #[error(transparent)]
    Admin(#[from] crate::auth::bootstrap::BootstrapError),
    #[error(transparent)]
    Model(#[from] crate::predict::ModelError),
}

/// Builds the full application state on an opened, schema-checked database: JWT keys, the
/// first admin, session floors. Starts no task (see [`spawn_background`]).
pub async fn build_state(
    settings: Settings,
    db: Db,
    faults: Faults,
) -> Result<AppState, ServeError> {
    let metrics = Metrics::new(&settings.release_version)?;
    let keys_dir = match &settings.auth.jwt_keys_dir {
        Some(dir) => dir.clone(),
        None => {
            let dir = settings.storage.data_dir.join("jwt");
            keys::ensure_dev_key(&dir).map_err(StateError::from)?;
            dir
        }
    };
    let keys =
        KeyStore::open(keys_dir, settings.auth.key_publish_delay).map_err(StateError::from)?;
    let passwords = PasswordHasher::new(&settings.auth.password_hash).map_err(StateError::from)?;
    bootstrap::ensure_first_admin(&db, &passwords, &settings.auth)
        .await
        .map_err(StateError::from)?;
    let auth = AuthService::new(keys, passwords, &settings.auth);
    auth.reload_session_floors(&db).await?;
    let limits = RateLimits::new(&settings.rate_limit, settings.http.trusted_proxies.clone());
    if settings.seeds_demo() && crate::db::data::leagues(&db).await?.is_empty() {
        let summary = crate::demo::seed(&db).await?;
        tracing::info!(league = %summary.league, matches = summary.matches, "seeded the demo league");
    }
    let models = ModelService::default();
    for outcome in models
        .ensure_fitted(&db, &metrics)
        .await
        .map_err(StateError::from)?
    {
        tracing::info!(league = %outcome.league, version = %outcome.model_version, "fitted at start-up");
    }
    for (league, at) in crate::import::write::last_import_times(&db).await? {
        #[allow(clippy::cast_precision_loss)]
        metrics
            .last_import_timestamp
            .with_label_values(&[league.as_str()])
            .set(at as f64);
    }
    for (_, report) in
        crate::db::fits::latest_evaluations(&db, crate::dixon_coles::MODEL_NAME).await?
    {
        if let Ok(report) = serde_json::from_str(&report) {
            crate::predict::evaluate::publish(&metrics, &report);
        }
    }
    let caches = Caches::new(&settings.cache, &metrics);
    let data_version = crate::db::version::current(&db).await?;
    Ok(AppState::new(Parts {
        settings,
        db,
        metrics,
        faults,
        auth,
        limits,
        models,
        caches,
        data_version,
    }))
}

/// The periodic work of a serving replica; each task ends when the state is dropped.
pub fn spawn_background(state: &AppState) {
    let weak = state.downgrade();
    let every = state.settings.cache.version_poll_interval;
    tokio::spawn(periodic(weak.clone(), every, |state| async move {
        match crate::db::version::current(&state.db).await {
            Ok(seen) => {
                if let Err(e) = state.sync_data_version(seen).await {
                    tracing::warn!(error = %e, "reloading after a data change failed; will retry");
                }
            }
            Err(e) => tracing::debug!(error = %e, "data version poll failed"),
        }
    }));
    let every = state.settings.auth.key_reload_interval;
    tokio::spawn(periodic(weak.clone(), every, |state| async move {
        let _ = tokio::task::spawn_blocking(move || state.auth.keys.reload()).await;
    }));
    tokio::spawn(periodic(
        weak.clone(),
        Duration::from_secs(60),
        |state| async move {
            state.limits.housekeeping();
            state.auth.housekeeping();
        },
    ));
    if state.settings.background_evaluation {
        // Soon after start (the gauge should not wait a minute), then every minute: a stored
        // evaluation on unchanged data costs one query.
        let weak = weak.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            if let Some(state) = weak.upgrade() {
                refresh_evaluations(&state).await;
            }
            periodic(weak, Duration::from_secs(60), |state| async move {
                refresh_evaluations(&state).await;
            })
            .await;
        });
    }
    tokio::spawn(periodic(
        weak,
        Duration::from_secs(3600),
        |state| async move {
            match crate::db::auth::purge_expired_refresh_tokens(&state.db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "purged expired refresh tokens"),
                Err(e) => tracing::debug!(error = %e, "refresh token purge failed"),
            }
        },
    ));
}

/// Makes sure each served league's latest season has an evaluation on the current data (a
/// stored one is reused; a stale one is recomputed on a blocking thread, one at a time).
async fn refresh_evaluations(state: &AppState) {
    let seasons = match crate::db::data::seasons(&state.db).await {
        Ok(s) => s,
        Err(e) => return tracing::debug!(error = %e, "evaluation refresh skipped"),
    };
    for model in state.models.all() {
        let Some(season) = seasons
            .iter()
            .filter(|(id, _)| *id == model.league_id)
            .map(|(_, s)| s)
            .next_back()
        else {
            continue;
        };
        let Ok(Some(season_id)) =
            crate::db::fits::season_id(&state.db, model.league_id, season).await
        else {
            continue;
        };
        match crate::predict::evaluate::season_report(
            &state.models,
            &state.db,
            &state.metrics,
            model.league_id,
            &model.league,
            season_id,
            season,
        )
        .await
        {
            Ok(report) => crate::predict::evaluate::publish(&state.metrics, &report),
            Err(e) => tracing::debug!(league = %model.league, error = %e, "no evaluation"),
        }
    }
}

async fn periodic<F, Fut>(weak: WeakState, every: Duration, mut tick: F)
where
    F: FnMut(AppState) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let Some(state) = weak.upgrade() else {
            return;
        };
        tick(state).await;
    }
}

pub async fn run(settings: Settings) -> Result<(), ServeError> {
    let faults = Faults::from_env()?;
    if faults.is_active() {
        tracing::warn!(
            "TEST FAULT SWITCH ENABLED (FP_TEST_FAULTS): this instance fails on purpose"
        );
    }
    tracing::info!(
        url = %settings.storage.redacted_url(),
        backend = ?crate::db::Backend::from_url(settings.storage.database_url.expose()),
        "opening database"
    );
    let db = open_checked(&settings).await?;
    let listen = settings.http.listen;
    let state = build_state(settings, db, faults).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    tracing::info!(address = %listen, "listening");
    spawn_background(&state);
    let app = crate::http::router(state.clone());
    serve_until(listener, app, state.clone(), shutdown_signal()).await?;
    state.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Serves until `signal` resolves, then: readiness 503 at once, keep serving for the drain
/// delay (so load balancers notice), stop accepting, and give in-flight requests up to the
/// shutdown timeout to finish.
///
/// Connections are served by hyper with a timer, so the header-read timeout holds: a client
/// that sends nothing, sends its headers too slowly, or keeps a connection idle between requests
/// for longer, is disconnected (axum's `serve` sets no timer, so none of these limits applied).
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    state: AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use tower::Service;

    let http = &state.settings.http;
    let (drain_delay, shutdown_timeout) = (http.drain_delay, http.shutdown_timeout);
    // HTTP/1.1 only and without upgrades (the API has no WebSocket): clients (ingress
    // controllers, Prometheus, probes) speak it, and without the HTTP/2 preface detection the
    // header-read timer starts with the connection, so a client that connects and sends nothing
    // is disconnected too (the detection read had no time limit).
    let mut connections = auto::Builder::new(TokioExecutor::new()).http1_only();
    connections
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(http.header_read_timeout);
    let stopping = state.clone();
    let closing = async move {
        signal.await;
        tracing::info!(drain_delay = ?drain_delay, "shutdown requested: readiness now fails");
        stopping.begin_shutdown();
        tokio::time::sleep(drain_delay).await;
    };
    tokio::pin!(closing);
    let graceful = GracefulShutdown::new();
    let mut make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pass, as axum's serve does.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut closing => break,
        };
        let service = match make_service.call(remote).await {
            Ok(service) => service,
            Err(never) => match never {},
        };
        let connection = connections
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("listener closed; draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(shutdown_timeout) => {
            tracing::warn!(timeout = ?shutdown_timeout, "in-flight requests did not finish in time; exiting");
        }
    }
    Ok(())
}

/// SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Polls a condition until it holds or `timeout` passes (used by start-up waits and tests).
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}
