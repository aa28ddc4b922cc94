//! Predictions. The hot path — `GET /api/v1/predictions/{match_id}` with a cached answer — is
//! a JWT check (no database), one cache lookup keyed by `(data version, match id)` with no
//! allocation, and a response around pre-serialised bytes.

use std::collections::HashSet;

use axum::extract::State;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::data::{
    cache_key, cached, cursor_schema, decode_cursor, encode_cursor, json_bytes, json_response,
    league_id, league_param,
};
use super::extract::{ApiJson, ApiPath, ApiQuery, Viewer};
use super::params;
use crate::db::data::{self, MatchFilter, MatchRow};
use crate::db::fits;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::state::AppState;
use crate::predict::PredictionView;

fn model_not_fitted(league: &str) -> ApiError {
    ApiError::unavailable(
        "model_not_fitted",
        format!("no model is fitted for league {league} yet (too few finished matches?)"),
    )
    .with_retry_after(5)
}

/// The prediction JSON for a match row: the forecast its league's current fit stored, or a
/// fresh one from the fitted parameters.
async fn prediction_bytes(state: &AppState, m: &MatchRow) -> ApiResult<Bytes> {
    let model = state
        .models
        .get(m.league_id)
        .ok_or_else(|| model_not_fitted(&m.league))?;
    let stored =
        fits::stored_prediction(&state.db, m.id, &model.fitted.model, &model.fitted.version)
            .await?;
    let view = stored
        .and_then(|body| model.view_of_stored(m, &body))
        .unwrap_or_else(|| model.view(m));
    json_bytes(&view)
}

#[utoipa::path(get, path = "/api/v1/predictions/{match_id}", tag = "predictions",
    params(("match_id" = i64, Path, description = "Match id")), security(("bearer" = [])),
    responses((status = 200, description = "The forecast for the match", body = PredictionView),
              (status = 404, description = "No such match", body = ErrorBody),
              (status = 503, description = "The league has no fitted model yet", body = ErrorBody)))]
pub async fn prediction(
    State(state): State<AppState>,
    _who: Viewer,
    ApiPath(match_id): ApiPath<i64>,
) -> ApiResult<Response> {
    let key = (state.data_version(), match_id);
    let bytes = state
        .caches
        .predictions
        .get_or_compute(key, async {
            let m = data::match_by_id(&state.db, match_id)
                .await?
                .ok_or_else(|| ApiError::not_found("no such match"))?;
            prediction_bytes(&state, &m).await
        })
        .await?;
    state.metrics.predictions_served.inc();
    Ok(json_response(bytes))
}

pub const MAX_BATCH: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 100 match ids, none repeated.
    #[serde(deserialize_with = "super::extract::json_integers")]
    #[schema(value_type = std::collections::BTreeSet<i64>, min_items = 1, max_items = 100)]
    pub match_ids: Vec<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    /// Predictions in request order (ids without a match are left out).
    pub items: Vec<PredictionView>,
    /// Requested ids with no such match.
    pub missing: Vec<i64>,
}

#[utoipa::path(post, path = "/api/v1/predictions/batch", tag = "predictions", request_body = BatchRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "Predictions for the matches that exist", body = BatchResponse),
              (status = 422, description = "Empty, more than 100 or repeated ids", body = ErrorBody)))]
pub async fn batch(
    State(state): State<AppState>,
    _who: Viewer,
    ApiJson(body): ApiJson<BatchRequest>,
) -> ApiResult<Response> {
    let ids = body.match_ids;
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(ApiError::invalid("match_ids", "give 1 to 100 match ids"));
    }
    if ids.iter().collect::<HashSet<_>>().len() != ids.len() {
        return Err(ApiError::invalid("match_ids", "match ids must not repeat"));
    }
    let version = state.data_version();
    let mut parts: Vec<Option<Bytes>> = Vec::with_capacity(ids.len());
    let mut misses = Vec::new();
    for id in &ids {
        let hit = state.caches.predictions.get(&(version, *id)).await;
        if hit.is_none() {
            misses.push(*id);
        }
        parts.push(hit);
    }
    let mut missing = Vec::new();
    if !misses.is_empty() {
        let rows = data::matches_by_ids(&state.db, &misses).await?;
        for (slot, id) in parts.iter_mut().zip(&ids) {
            if slot.is_some() {
                continue;
            }
            match rows.iter().find(|m| m.id == *id) {
                Some(m) => {
                    let bytes = prediction_bytes(&state, m).await?;
                    state
                        .caches
                        .predictions
                        .insert((version, *id), bytes.clone())
                        .await;
                    *slot = Some(bytes);
                }
                None => missing.push(*id),
            }
        }
    }
    // Splice the cached JSON documents into the response without re-serialising them.
    let found: Vec<Bytes> = parts.into_iter().flatten().collect();
    let mut out = BytesMut::with_capacity(found.iter().map(Bytes::len).sum::<usize>() + 64);
    out.put_slice(b"{\"items\":[");
    for (i, part) in found.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(part);
    }
    out.put_slice(b"],\"missing\":");
    out.put_slice(&serde_json::to_vec(&missing).map_err(ApiError::internal)?);
    out.put_u8(b'}');
    #[allow(clippy::cast_possible_truncation)]
    state.metrics.predictions_served.inc_by(found.len() as u64);
    Ok(json_response(out.freeze()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PredictionsQuery {
    /// League code, e.g. `E0`; every league when absent.
    #[param(pattern = "^[A-Z0-9]{1,8}$")]
    pub league: Option<String>,
    /// `true`: only scheduled matches that kick off from now on (the default); `false`: all.
    #[param(value_type = Option<bool>)]
    pub upcoming: Option<String>,
    /// Page size, default 20.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = cursor_schema)]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PredictionPage {
    pub items: Vec<PredictionView>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/predictions", tag = "predictions", params(PredictionsQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "Predictions in kick-off order", body = PredictionPage),
              (status = 404, description = "No such league", body = ErrorBody),
              (status = 422, description = "A parameter is invalid", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Viewer,
    ApiQuery(q): ApiQuery<PredictionsQuery>,
) -> ApiResult<Response> {
    let league = league_param(q.league.as_deref())?;
    let upcoming = params::boolean("upcoming", q.upcoming.as_deref())?.unwrap_or(true);
    let mut filter = MatchFilter {
        status: upcoming.then_some("scheduled"),
        from: upcoming.then(crate::db::now_unix),
        after: decode_cursor(q.cursor.as_deref())?,
        limit: params::limit(q.limit.as_deref(), 20)?,
        ..MatchFilter::default()
    };
    cached(
        &state,
        cache_key(
            &state,
            "predictions",
            (&league, upcoming, &filter.after, filter.limit),
        ),
        async {
            filter.league_id = league_id(&state, league).await?;
            let mut rows = data::list_matches(&state.db, &filter).await?;
            let more = rows.len() as i64 > filter.limit;
            rows.truncate(usize::try_from(filter.limit).unwrap_or(0));
            let next_cursor = more
                .then(|| rows.last().map(|m| encode_cursor(m.kickoff_at, m.id)))
                .flatten();
            let items: Vec<PredictionView> = rows
                .iter()
                .filter_map(|m| state.models.get(m.league_id).map(|model| model.view(m)))
                .collect();
            json_bytes(&PredictionPage { items, next_cursor })
        },
    )
    .await
}
