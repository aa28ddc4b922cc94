//! `/api/v1/auth/*`: register, login, refresh, logout, me.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, Viewer};
use crate::auth::password::PasswordError;
use crate::auth::{AuthError, CredentialError, Role, TokenPair};
use crate::db::auth::UserRow;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// 3-32 characters of a-z, 0-9, '.', '_' or '-' (case-insensitive: stored in lower case).
    #[schema(pattern = "^[A-Za-z0-9._-]{3,32}$")]
    pub username: String,
    /// 10-128 characters.
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub active: bool,
    /// Unix seconds.
    pub created_at: i64,
}

impl UserView {
    pub fn from_row(row: &UserRow) -> ApiResult<Self> {
        Ok(Self {
            id: row.id,
            username: row.username.clone(),
            role: row.role().map_err(ApiError::internal)?,
            active: row.active,
            created_at: row.created_at,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque; single use: each refresh returns a new one.
    pub refresh_token: String,
    pub refresh_expires_in: i64,
    pub user: UserView,
}

pub fn auth_error(e: AuthError) -> ApiError {
    match e {
        AuthError::InvalidCredentials => {
            ApiError::unauthorized("invalid_credentials", "invalid username or password")
        }
        AuthError::Inactive => ApiError::new(
            StatusCode::FORBIDDEN,
            "account_inactive",
            "this account is deactivated",
        ),
        AuthError::Backoff(wait) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "login_backoff",
            "too many failed logins for this account; retry later",
        )
        .with_retry_after(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)),
        AuthError::UsernameTaken => {
            ApiError::conflict("username_taken", "that username is taken").with_field("username")
        }
        AuthError::Credential(CredentialError::Username) => {
            ApiError::invalid("username", CredentialError::Username.to_string())
        }
        AuthError::Credential(CredentialError::PasswordLength) => {
            ApiError::invalid("password", CredentialError::PasswordLength.to_string())
        }
        AuthError::Refresh(reason) => ApiError::unauthorized("invalid_refresh_token", reason),
        AuthError::Token(t) => super::extract::token_error(t),
        AuthError::Password(PasswordError::Busy) => ApiError::unavailable(
            "busy",
            "too many password checks in progress; retry shortly",
        )
        .with_retry_after(1),
        AuthError::Password(other) => ApiError::internal(other),
        AuthError::Db(db) => db.into(),
    }
}

fn token_response(status: StatusCode, pair: TokenPair) -> ApiResult<Response> {
    let body = TokenResponse {
        user: UserView::from_row(&pair.user)?,
        access_token: pair.access_token,
        token_type: "Bearer",
        expires_in: pair.access_expires_in,
        refresh_token: pair.refresh_token,
        refresh_expires_in: pair.refresh_expires_in,
    };
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = Credentials,
    responses(
        (status = 201, description = "Registered as a viewer and logged in", body = TokenResponse),
        (status = 403, description = "Registration is closed (`registration_closed`): an admin adds users", body = ErrorBody),
        (status = 409, description = "Username taken", body = ErrorBody),
        (status = 422, description = "Username or password not acceptable", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> ApiResult<Response> {
    if !state.settings.auth.allow_registration {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "registration_closed",
            "registration is closed on this server: an admin adds users",
        ));
    }
    let pair = state
        .auth
        .register(&state.db, &body.username, body.password)
        .await
        .map_err(auth_error)?;
    token_response(StatusCode::CREATED, pair)
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Credentials,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 401, description = "Invalid credentials", body = ErrorBody),
        (status = 403, description = "Account deactivated", body = ErrorBody),
        (status = 429, description = "Rate limited (`rate_limited`), or too many failed logins for this username (`login_backoff`); see Retry-After", body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> ApiResult<Response> {
    let pair = state
        .auth
        .login(&state.db, &body.username, body.password)
        .await
        .map_err(auth_error)?;
    token_response(StatusCode::OK, pair)
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "New token pair; the presented refresh token is used up", body = TokenResponse),
        (status = 401, description = "Unknown, expired or reused refresh token (reuse revokes the login's family)", body = ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<Response> {
    let pair = state
        .auth
        .refresh(&state.db, &body.refresh_token)
        .await
        .map_err(auth_error)?;
    token_response(StatusCode::OK, pair)
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "The refresh token's family is revoked")))]
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    state
        .auth
        .logout(&state.db, &body.refresh_token)
        .await
        .map_err(auth_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserView),
        (status = 401, description = "Missing or invalid token", body = ErrorBody)))]
pub async fn me(State(state): State<AppState>, who: Viewer) -> ApiResult<Json<UserView>> {
    let user = crate::db::auth::user_by_id(&state.db, who.principal.user_id)
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized("invalid_token", "the token's user no longer exists")
        })?;
    Ok(Json(UserView::from_row(&user)?))
}
