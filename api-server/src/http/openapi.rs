//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/api-docs/openapi.json`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use super::health;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FootballPrediction API",
        description = "Football data, Dixon-Coles predictions, JWT auth with roles, health and metrics."
    ),
    paths(health::live, health::ready, super::metrics),
    components(schemas(crate::error::ErrorBody, health::LiveBody, health::ReadyBody, health::NotReadyReason)),
    tags(
        (name = "health", description = "Liveness, readiness and metrics"),
    )
)]
pub struct ApiDoc;

static DOCUMENT: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();

/// The serialised document, built once.
pub fn document_bytes() -> bytes::Bytes {
    DOCUMENT
        .get_or_init(|| {
            bytes::Bytes::from(
                ApiDoc::openapi()
                    .to_json()
                    .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
            )
        })
        .clone()
}

pub async fn document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        document_bytes(),
    )
        .into_response()
}
