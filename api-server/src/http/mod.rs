//! The HTTP surface: `router(state)` builds the whole app (tests drive it with `oneshot`);
//! serving, signals and draining live in the `server` module.

pub mod access_log;
pub mod admin;
pub mod auth;
pub mod data;
pub mod extract;
pub mod health;
pub mod middleware;
pub mod models;
pub mod openapi;
pub mod params;
pub mod predictions;
pub mod ratelimit;
pub mod state;
pub mod users;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::http::state::AppState;

/// Every `/api` route, rate limited per client; login, register and refresh more strictly.
fn api_routes(state: &AppState) -> Router<AppState> {
    let credentials = Router::new()
        .route("/api/v1/auth/register", post(auth::register))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/refresh", post(auth::refresh))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit_auth,
        ));
    Router::new()
        .merge(credentials)
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/leagues", get(data::leagues))
        .route("/api/v1/teams", get(data::teams))
        .route("/api/v1/teams/{id}", get(data::team))
        .route("/api/v1/teams/{id}/stats", get(data::team_stats))
        .route("/api/v1/matches", get(data::matches))
        .route("/api/v1/matches/{id}", get(data::match_detail))
        .route("/api/v1/matches/{id}/odds", get(data::match_odds))
        .route("/api/v1/predictions", get(predictions::list))
        .route("/api/v1/predictions/batch", post(predictions::batch))
        .route(
            "/api/v1/predictions/{match_id}",
            get(predictions::prediction),
        )
        .route("/api/v1/models", get(models::list))
        .route("/api/v1/models/{name}/evaluation", get(models::evaluation))
        .route(
            "/api/v1/admin/import",
            post(admin::import).layer(DefaultBodyLimit::max(
                state.settings.http.import_max_body_bytes,
            )),
        )
        .route("/api/v1/admin/models/refit", post(admin::refit))
        .route("/api/v1/admin/users", get(users::list))
        .route("/api/v1/admin/users/{id}", patch(users::update))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit_api,
        ))
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api_routes(&state))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(metrics))
        .route("/api-docs/openapi.json", get(openapi::document))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings.http.max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .with_state(state)
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.caches.observe(&state.metrics).await;
    let text = state.metrics.render(Some(state.db.pool_stats()));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("handler panicked").into_response()
}
