//! `POST /api/v1/admin/import` and `POST /api/v1/admin/models/refit` (analyst or admin).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::data::season_schema;
use super::extract::{Analyst, ApiQuery, body_error, is_json, parse_json};
use super::models::model_error;
use crate::db::auth::{self as users, AuditEntry};
use crate::db::data;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::state::AppState;
use crate::import::write::ImportSummary;
use crate::import::{ImportError, ImportRejection, LineError, import_file};
use crate::predict::{FitOutcome, ModelError};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// League code (for a `text/csv` body; multipart sends it as a field).
    #[param(pattern = "^[A-Z0-9]{1,8}$")]
    pub league: Option<String>,
    /// Season: two consecutive years, e.g. `2019-2020` (likewise).
    #[param(schema_with = season_schema)]
    pub season: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResponse {
    pub import: ImportSummary,
    /// The refit that followed, or null when the league has too few results to fit.
    pub refit: Option<FitOutcome>,
}

/// The 422 body of a rejected file lists these in `details.errors`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportErrors {
    pub errors: Vec<LineError>,
    /// All errors (the list is capped).
    pub error_count: usize,
}

struct Upload {
    league: String,
    season: String,
    file: Bytes,
    source: String,
}

fn content_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

async fn read_upload(state: &AppState, query: ImportQuery, req: Request) -> ApiResult<Upload> {
    let kind = content_type(&req);
    let (mut league, mut season) = (query.league, query.season);
    let (file, source) = if kind == "multipart/form-data" {
        let mut multipart = Multipart::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?;
        let mut file = None;
        let mut source = String::from("upload");
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(e) => return Err(body_error(e.status()).with_field("file")),
            };
            let name = field.name().unwrap_or_default().to_string();
            match name.as_str() {
                "file" => {
                    if let Some(f) = field.file_name() {
                        source = f.chars().take(200).collect();
                    }
                    file = Some(
                        field
                            .bytes()
                            .await
                            .map_err(|e| body_error(e.status()).with_field("file"))?,
                    );
                }
                "league" | "season" => {
                    let text = field
                        .text()
                        .await
                        .map_err(|_| ApiError::invalid("league", "unreadable field"))?;
                    if name == "league" {
                        league = Some(text);
                    } else {
                        season = Some(text);
                    }
                }
                _ => {
                    return Err(ApiError::bad_request(
                        "unknown_field",
                        format!("unexpected form field {name:?}"),
                    )
                    .with_field(name));
                }
            }
        }
        (
            file.ok_or_else(|| ApiError::invalid("file", "the form has no file field"))?,
            source,
        )
    } else if kind == "text/csv" || kind == "application/csv" || kind == "text/plain" {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e.status()))?;
        (bytes, "upload".to_string())
    } else {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send multipart/form-data (fields league, season, file) or text/csv with ?league=&season=",
        ));
    };
    Ok(Upload {
        league: league
            .filter(|l| !l.is_empty())
            .ok_or_else(|| ApiError::invalid("league", "league is required"))?,
        season: season
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::invalid("season", "season is required"))?,
        file,
        source,
    })
}

pub fn rejection_error(rejection: ImportRejection) -> ApiError {
    match rejection {
        ImportRejection::Parameter { field, message } => ApiError::invalid(field, message),
        ImportRejection::Empty => ApiError::invalid("file", "the file holds no match"),
        ImportRejection::Rows {
            errors,
            error_count,
        } => {
            let first = errors
                .first()
                .map(|e| format!(": line {}: {}", e.line, e.reason))
                .unwrap_or_default();
            let details = serde_json::to_value(ImportErrors {
                errors,
                error_count,
            })
            .unwrap_or_default();
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_csv",
                format!("{error_count} malformed row(s); nothing was imported{first}"),
            )
            .with_field("file")
            .with_details(details)
        }
    }
}

async fn actor_name(state: &AppState, user_id: i64) -> String {
    match users::user_by_id(&state.db, user_id).await {
        Ok(Some(u)) => u.username,
        _ => format!("user:{user_id}"),
    }
}

/// Refits one league after a change; too few results is not an error (null refit).
pub async fn refit_after_change(
    state: &AppState,
    league_id: i64,
    code: &str,
) -> ApiResult<Option<FitOutcome>> {
    match state
        .models
        .refit_league(&state.db, &state.metrics, league_id, code)
        .await
    {
        Ok(outcome) => Ok(Some(outcome)),
        Err(ModelError::Fit(crate::dixon_coles::FitError::NotEnoughMatches { .. })) => Ok(None),
        Err(e) => Err(model_error(e)),
    }
}

#[utoipa::path(post, path = "/api/v1/admin/import", tag = "admin", params(ImportQuery), security(("bearer" = [])),
    request_body(content = String, description = "A football-data.co.uk CSV file: multipart/form-data with fields \
        league, season and file, or a text/csv body with ?league=&season=", content_type = "text/csv"),
    responses((status = 200, description = "Imported in one transaction, then the league was refitted", body = ImportResponse),
              (status = 413, description = "File too large", body = ErrorBody),
              (status = 422, description = "Malformed rows (details.errors lists line numbers and reasons); nothing was written", body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    who: Analyst,
    ApiQuery(query): ApiQuery<ImportQuery>,
    req: Request,
) -> ApiResult<Json<ImportResponse>> {
    let upload = read_upload(&state, query, req).await?;
    let actor = actor_name(&state, who.principal.user_id).await;
    let summary = import_file(
        &state.db,
        &upload.league,
        &upload.season,
        &upload.file,
        &upload.source,
        (Some(who.principal.user_id), &actor),
    )
    .await
    .map_err(|e| match e {
        ImportError::Rejected(r) => rejection_error(r),
        ImportError::Db(db) => db.into(),
    })?;
    #[allow(clippy::cast_precision_loss)]
    state
        .metrics
        .last_import_timestamp
        .with_label_values(&[summary.league.as_str()])
        .set(summary.imported_at as f64);
    let refit = refit_after_change(&state, summary.league_id, &summary.league).await?;
    state.sync_now().await.map_err(model_error)?;
    Ok(Json(ImportResponse {
        import: summary,
        refit,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefitRequest {
    /// League code; every league with results when absent.
    #[serde(default, deserialize_with = "super::extract::not_null")]
    #[schema(nullable = false, pattern = "^[A-Z0-9]{1,8}$")]
    pub league: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefitResponse {
    pub fits: Vec<FitOutcome>,
}

#[utoipa::path(post, path = "/api/v1/admin/models/refit", tag = "admin", request_body(content = Option<RefitRequest>, description = "Optional: without a body every league with results is refitted"),
    security(("bearer" = [])),
    responses((status = 200, description = "The fits made; every replica serves them within a poll interval", body = RefitResponse),
              (status = 404, description = "No such league", body = ErrorBody)))]
pub async fn refit(
    State(state): State<AppState>,
    who: Analyst,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<RefitResponse>> {
    let body = body.map_err(|e| body_error(e.status()))?;
    // The body is optional; when there is one it must be JSON.
    let request: RefitRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RefitRequest::default()
    } else if is_json(&headers) {
        // `null` is no request too, as the document's optional body allows.
        if body.trim_ascii() == b"null" {
            RefitRequest::default()
        } else {
            parse_json(&body)?
        }
    } else {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ));
    };
    let targets: Vec<(i64, String)> = match request.league {
        Some(code) => {
            crate::import::validate_league_code(&code)
                .map_err(|m| ApiError::invalid("league", m))?;
            let id = data::league_id_by_code(&state.db, &code)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no league {code}")))?;
            vec![(id, code)]
        }
        None => crate::db::fits::leagues_with_results(&state.db, 1).await?,
    };
    let mut fits = Vec::new();
    for (id, code) in &targets {
        if let Some(outcome) = refit_after_change(&state, *id, code).await? {
            fits.push(outcome);
        }
    }
    let actor = actor_name(&state, who.principal.user_id).await;
    users::record_audit(
        &state.db,
        &AuditEntry {
            actor_id: Some(who.principal.user_id),
            actor,
            action: "model.refit",
            target: targets.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>().join(","),
            details: serde_json::json!({"versions": fits.iter().map(|f| &f.model_version).collect::<Vec<_>>()}),
        },
    )
    .await?;
    state.sync_now().await.map_err(model_error)?;
    Ok(Json(RefitResponse { fits }))
}
