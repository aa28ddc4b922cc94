//! The admin HTTP server on its own port: `/livez`, `/readyz`, `/metrics`.
//!
//! Readiness means this replica can do its job: the FootballPrediction CRD is served and, on the
//! leader, the controller's caches have synced. A standby replica (waiting for the lease) is ready
//! once the CRD is served, so a two-replica rollout of the operator itself can progress.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// What this replica is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Starting = 0,
    Standby = 1,
    Leader = 2,
}

/// Readiness inputs, set by the controller's tasks.
#[derive(Debug, Default)]
pub struct Readiness {
    crd_served: AtomicBool,
    caches_synced: AtomicBool,
    role: AtomicU8,
}

impl Readiness {
    pub fn set_crd_served(&self, served: bool) {
        self.crd_served.store(served, Ordering::Relaxed);
    }
    pub fn set_caches_synced(&self, synced: bool) {
        self.caches_synced.store(synced, Ordering::Relaxed);
    }
    pub fn set_role(&self, role: Role) {
        self.role.store(role as u8, Ordering::Relaxed);
    }
    fn role(&self) -> Role {
        match self.role.load(Ordering::Relaxed) {
            1 => Role::Standby,
            2 => Role::Leader,
            _ => Role::Starting,
        }
    }

    /// `Ok` with what the replica is doing, or `Err` with why it is not ready.
    pub fn check(&self) -> Result<&'static str, &'static str> {
        decide(
            self.crd_served.load(Ordering::Relaxed),
            self.caches_synced.load(Ordering::Relaxed),
            self.role(),
        )
    }
}

fn decide(crd_served: bool, caches_synced: bool, role: Role) -> Result<&'static str, &'static str> {
    if !crd_served {
        return Err("the FootballPrediction CRD is not served");
    }
    match role {
        Role::Starting => Err("starting"),
        Role::Standby => Ok("standby: waiting for the leader lease"),
        Role::Leader if caches_synced => Ok("leading: caches synced"),
        Role::Leader => Err("leading: caches not synced yet"),
    }
}

#[derive(Clone)]
pub struct AdminState {
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    match state.readiness.check() {
        Ok(what) => (StatusCode::OK, format!("ok: {what}\n")),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "admin server listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn state() -> AdminState {
        AdminState {
            readiness: Arc::new(Readiness::default()),
            metrics: Arc::new(Metrics::new().unwrap()),
        }
    }

    async fn get_path(app: Router, path: &str) -> (StatusCode, String) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[test]
    fn readiness_needs_the_crd_and_synced_caches_on_the_leader() {
        assert_eq!(
            decide(false, true, Role::Leader),
            Err("the FootballPrediction CRD is not served")
        );
        assert_eq!(
            decide(true, false, Role::Leader),
            Err("leading: caches not synced yet")
        );
        assert_eq!(
            decide(true, true, Role::Leader),
            Ok("leading: caches synced")
        );
        assert_eq!(
            decide(true, false, Role::Standby),
            Ok("standby: waiting for the leader lease")
        );
        assert_eq!(decide(true, true, Role::Starting), Err("starting"));
    }

    #[tokio::test]
    async fn endpoints_answer() {
        let s = state();
        let (status, body) = get_path(router(s.clone()), "/livez").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
        let (status, body) = get_path(router(s.clone()), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "not ready: the FootballPrediction CRD is not served\n"
        );
        s.readiness.set_crd_served(true);
        s.readiness.set_role(Role::Leader);
        s.readiness.set_caches_synced(true);
        let (status, _) = get_path(router(s.clone()), "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        s.metrics.set_leader(true);
        let (status, body) = get_path(router(s), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("fp_operator_leader 1"), "{body}");
    }
}
