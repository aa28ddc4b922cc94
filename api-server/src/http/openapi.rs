//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/api-docs/openapi.json`. A test checks every routed path appears in it.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{admin, auth, data, health, models, predictions, users};

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

/// The answers the shared layers give, added to every operation they can come from so that the
/// document lists every status the server sends (schemathesis checks it): the extractors (400
/// unreadable query, path or body; 415 and 413 for bodies; 422 for values), authentication (401),
/// the role guards of the admin routes (403), the rate limits (429) and load shedding (503).
struct SharedResponses;

/// (status, description) for one operation, from what it has (pure).
pub fn shared_responses(
    path: &str,
    secured: bool,
    has_parameters: bool,
    has_body: bool,
) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if has_parameters || has_body {
        out.push((
            "400",
            "Unreadable input: malformed JSON, an unknown query parameter or a path parameter of the wrong type",
        ));
        out.push(("422", "A value is invalid (`field` names it)"));
    }
    if has_body {
        out.push(("413", "Body too large"));
        out.push(("415", "Wrong or missing Content-Type"));
    }
    if secured {
        out.push(("401", "Missing, invalid, expired or revoked access token"));
    }
    if path.starts_with("/api/v1/admin/") {
        out.push(("403", "The caller's role may not do this"));
    }
    if path.starts_with("/api/") {
        out.push(("429", "Rate limited; see Retry-After"));
        out.push((
            "503",
            "Database unavailable, request timed out or server busy; see Retry-After",
        ));
    }
    out
}

fn add_shared_responses(path: &str, op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_parameters = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = op.request_body.is_some();
    for (status, description) in shared_responses(path, secured, has_parameters, has_body) {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                        )
                        .build(),
                )
            });
    }
}

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_shared_responses(path, op);
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FootballPrediction API",
        description = "Football data, Dixon-Coles predictions, JWT auth with roles, health and metrics. \
                       Errors are `{code, message, field}`; every /api endpoint is rate limited per client (429 + Retry-After)."
    ),
    modifiers(&BearerAuth, &SharedResponses),
    paths(
        health::live, health::ready, super::metrics,
        auth::register, auth::login, auth::refresh, auth::logout, auth::me,
        data::leagues, data::teams, data::team, data::team_stats, data::matches, data::match_detail, data::match_odds,
        predictions::prediction, predictions::batch, predictions::list,
        models::list, models::evaluation,
        admin::import, admin::refit,
        users::list, users::update,
    ),
    components(schemas(
        crate::error::ErrorBody, health::LiveBody, health::ReadyBody, health::NotReadyReason,
        auth::Credentials, auth::RefreshRequest, auth::TokenResponse, auth::UserView, crate::auth::Role,
        users::UserPage, users::UserPatch,
        data::LeagueView, data::LeagueList, data::TeamView, data::TeamList, data::MatchPage,
        crate::views::MatchView, crate::views::TeamRef, crate::views::Score, crate::views::MatchStatsView,
        crate::views::MatchOddsView, crate::views::OddsView, crate::views::OverUnderView, crate::views::Implied,
        crate::views::TeamStatsView, crate::views::Record,
        crate::predict::PredictionView, crate::predict::view::OutcomeProbabilities, crate::predict::view::ExpectedGoals,
        crate::predict::view::LikelyScore, crate::predict::view::RatingSources,
        predictions::BatchRequest, predictions::BatchResponse, predictions::PredictionPage,
        models::ModelList, models::ModelInfo, models::LeagueFit,
        crate::predict::evaluate::EvaluationReport, crate::predict::evaluate::Scores,
        crate::predict::evaluate::ClosingOddsComparison,
        admin::ImportResponse, admin::ImportErrors, crate::import::LineError, crate::import::write::ImportSummary,
        crate::predict::FitOutcome, admin::RefitRequest, admin::RefitResponse,
    )),
    tags(
        (name = "health", description = "Liveness, readiness and metrics (no auth)"),
        (name = "auth", description = "Register, log in, refresh and log out"),
        (name = "data", description = "Leagues, teams, matches and odds (viewer)"),
        (name = "predictions", description = "Dixon-Coles forecasts (viewer)"),
        (name = "models", description = "Fitted models and their out-of-sample evaluation"),
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
