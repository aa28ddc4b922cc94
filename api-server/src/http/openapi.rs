//! The OpenAPI document, generated from the handlers' annotations and served at
//! `/api-docs/openapi.json`. A test checks every routed path appears in it.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
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
