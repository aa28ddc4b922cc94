//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/api-docs/openapi.json`. A test checks every routed path appears in it.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{auth, health, users};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "Access token from /api/v1/auth/login, /register or /refresh",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FootballPrediction API",
        description = "Football data, Dixon-Coles predictions, JWT auth with roles, health and metrics. \
                       Errors are `{code, message, field}`; every /api endpoint is rate limited per client (429 + Retry-After)."
    ),
    modifiers(&BearerAuth),
    paths(
        health::live, health::ready, super::metrics,
        auth::register, auth::login, auth::refresh, auth::logout, auth::me,
        users::list, users::update,
    ),
    components(schemas(
        crate::error::ErrorBody, health::LiveBody, health::ReadyBody, health::NotReadyReason,
        auth::Credentials, auth::RefreshRequest, auth::TokenResponse, auth::UserView, crate::auth::Role,
        users::UserPage, users::UserPatch,
    )),
    tags(
        (name = "health", description = "Liveness, readiness and metrics (no auth)"),
        (name = "auth", description = "Register, log in, refresh and log out"),
        (name = "admin", description = "Users, imports and model refits (analyst or admin)"),
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
