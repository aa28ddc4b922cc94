//! `/health/live` (the process answers) and `/health/ready` (it can serve: database reachable
//! within the ready timeout, schema current, model fitted, not shutting down).

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::schema;
use crate::http::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct LiveBody {
    pub status: &'static str,
}

/// Why the server is not ready (the `reason` of a 503 from `/health/ready`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotReadyReason {
    ShuttingDown,
    FaultInjected,
    DatabaseUnreachable,
    SchemaOutdated,
    ModelNotFitted,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyBody {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<NotReadyReason>,
    pub message: String,
    /// The newest migration applied to the database, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
    /// The release this replica runs (`FP_RELEASE_VERSION`; the binary's version without it):
    /// tells which release answered through a Service during a rollout.
    pub release: String,
}

#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "The process answers", body = LiveBody)))]
pub async fn live() -> Json<LiveBody> {
    Json(LiveBody { status: "ok" })
}

#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = ReadyBody),
        (status = 503, description = "Not ready; `reason` says why", body = ReadyBody)))]
pub async fn ready(State(state): State<AppState>) -> Response {
    match check(&state).await {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(body) => (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response(),
    }
}

fn not_ready(
    state: &AppState,
    reason: NotReadyReason,
    message: String,
    schema_version: Option<i64>,
) -> ReadyBody {
    ReadyBody {
        status: "not_ready",
        reason: Some(reason),
        message,
        schema_version,
        release: state.settings.release_version.clone(),
    }
}

async fn check(state: &AppState) -> Result<ReadyBody, ReadyBody> {
    if state.is_shutting_down() {
        return Err(not_ready(
            state,
            NotReadyReason::ShuttingDown,
            "shutting down: draining in-flight requests".into(),
            None,
        ));
    }
    if state.faults.ready_fails(state.started, Instant::now()) {
        return Err(not_ready(
            state,
            NotReadyReason::FaultInjected,
            "test fault switch: readiness forced to fail".into(),
            None,
        ));
    }
    let timeout = state.settings.ready_timeout;
    let answer = tokio::time::timeout(timeout, schema::latest_applied(&state.db)).await;
    state
        .metrics
        .db_ready
        .set(i64::from(matches!(answer, Ok(Ok(_)))));
    let applied = match answer {
        Ok(Ok(version)) => version,
        Ok(Err(e)) => {
            return Err(not_ready(
                state,
                NotReadyReason::DatabaseUnreachable,
                format!("database check failed: {}", e.category()),
                None,
            ));
        }
        Err(_) => {
            return Err(not_ready(
                state,
                NotReadyReason::DatabaseUnreachable,
                format!(
                    "database did not answer within {}",
                    humantime::format_duration(timeout)
                ),
                None,
            ));
        }
    };
    // A newer schema is fine while running: during a blue-green rollout the next release's
    // migration runs while this one still serves (migrations are additive).
    if applied.unwrap_or(0) < state.schema_version {
        return Err(not_ready(
            state,
            NotReadyReason::SchemaOutdated,
            format!(
                "database schema version {} is older than the {} this binary needs",
                applied.unwrap_or(0),
                state.schema_version
            ),
            applied,
        ));
    }
    if let Some(message) = state.models.readiness_gap() {
        return Err(not_ready(
            state,
            NotReadyReason::ModelNotFitted,
            message,
            applied,
        ));
    }
    Ok(ReadyBody {
        status: "ready",
        reason: None,
        message: "ready".into(),
        schema_version: applied,
        release: state.settings.release_version.clone(),
    })
}
