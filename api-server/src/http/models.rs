//! `GET /api/v1/models` and the out-of-sample evaluation.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::data::{json_bytes, json_response, season_schema};
use super::extract::{Analyst, ApiPath, ApiQuery, Viewer};
use crate::db::{data, fits};
use crate::dixon_coles::MODEL_NAME;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::state::AppState;
use crate::import::validate_league_code;
use crate::predict::ModelError;
use crate::predict::evaluate::{self, EvaluationReport};
use crate::views::rfc3339;

#[derive(Debug, Serialize, ToSchema)]
pub struct LeagueFit {
    pub league: String,
    pub version: String,
    pub fitted_at: String,
    pub matches_used: i32,
    pub teams: usize,
    pub home_advantage: f64,
    pub rho: f64,
    pub converged: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    pub name: &'static str,
    pub description: &'static str,
    /// The fit each league is served from.
    pub leagues: Vec<LeagueFit>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    pub items: Vec<ModelInfo>,
}

#[utoipa::path(get, path = "/api/v1/models", tag = "models", security(("bearer" = [])),
    responses((status = 200, description = "The models and the fit each league is served from", body = ModelList)))]
pub async fn list(State(state): State<AppState>, _who: Viewer) -> ApiResult<Response> {
    let leagues = state
        .models
        .all()
        .iter()
        .map(|m| LeagueFit {
            league: m.league.clone(),
            version: m.fitted.version.clone(),
            fitted_at: rfc3339(m.fitted_at),
            matches_used: m.matches_used,
            teams: m.fitted.teams.len(),
            home_advantage: m.fitted.home_advantage,
            rho: m.fitted.rho,
            converged: m.fitted.diagnostics.converged,
        })
        .collect();
    Ok(json_response(json_bytes(&ModelList {
        items: vec![ModelInfo {
            name: MODEL_NAME,
            description: "Dixon-Coles: Poisson goals with the low-score correction and exponential time decay, \
                          fitted by maximum likelihood per league; teams with too little history get the weakest \
                          third's ratings (named in each prediction's rating_sources)",
            leagues,
        }],
    })?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EvaluationQuery {
    /// League code.
    #[param(required = true, value_type = String, pattern = "^[A-Z0-9]{1,8}$")]
    pub league: Option<String>,
    /// Two consecutive years, e.g. `2023-2024`; the league's latest season when absent.
    #[param(schema_with = season_schema)]
    pub season: Option<String>,
}

pub fn model_error(e: ModelError) -> ApiError {
    match e {
        ModelError::Db(db) => db.into(),
        ModelError::Fit(fit) => ApiError::conflict("cannot_fit", fit.to_string()),
        other => ApiError::internal(other),
    }
}

#[utoipa::path(get, path = "/api/v1/models/{name}/evaluation", tag = "models",
    params(("name" = String, Path, description = "Model name: dixon-coles"), EvaluationQuery), security(("bearer" = [])),
    responses((status = 200, description = "Out-of-sample scores of the season's finished matches (walk-forward, weekly refits), \
                                            next to the constant forecast and the closing odds", body = EvaluationReport),
              (status = 403, description = "Needs the analyst role", body = ErrorBody),
              (status = 404, description = "Unknown model, league or season", body = ErrorBody)))]
pub async fn evaluation(
    State(state): State<AppState>,
    _who: Analyst,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<EvaluationQuery>,
) -> ApiResult<Response> {
    if name != MODEL_NAME {
        return Err(ApiError::not_found(format!(
            "no model named {name:?}; try {MODEL_NAME}"
        )));
    }
    let code = q
        .league
        .as_deref()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ApiError::invalid("league", "league is required"))?;
    validate_league_code(code).map_err(|m| ApiError::invalid("league", m))?;
    let league_id = data::league_id_by_code(&state.db, code)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no league {code}")))?;
    let season = match super::data::season_param(q.season.as_deref())? {
        Some(s) => s,
        None => data::seasons(&state.db)
            .await?
            .into_iter()
            .filter(|(id, _)| *id == league_id)
            .map(|(_, name)| name)
            .next_back()
            .ok_or_else(|| ApiError::not_found(format!("league {code} has no season")))?,
    };
    let season_id = fits::season_id(&state.db, league_id, &season)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no season {season} in league {code}")))?;
    let key = (state.data_version(), league_id, season_id);
    let bytes = state
        .caches
        .evaluations
        .get_or_compute(key, async {
            let report = evaluate::season_report(
                &state.models,
                &state.db,
                &state.metrics,
                league_id,
                code,
                season_id,
                &season,
            )
            .await
            .map_err(model_error)?;
            json_bytes(&report)
        })
        .await?;
    Ok(json_response(bytes))
}
