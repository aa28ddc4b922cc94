//! `/api/v1/admin/users`: list users, change a user's role or deactivate them (admin only).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::UserView;
use super::extract::{Admin, ApiJson, ApiPath, ApiQuery};
use super::params;
use crate::auth::Role;
use crate::db::auth::{self as users, AuditEntry, UserChange};
use crate::db::now_unix;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::http::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Page size, default 50.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// At least one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UserPatch {
    #[serde(default, deserialize_with = "super::extract::not_null")]
    #[schema(nullable = false)]
    pub role: Option<Role>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    #[schema(nullable = false)]
    pub active: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", params(UserListQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users by id", body = UserPage),
        (status = 403, description = "Not an admin", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _who: Admin,
    ApiQuery(q): ApiQuery<UserListQuery>,
) -> ApiResult<Json<UserPage>> {
    let limit = params::limit(q.limit.as_deref(), 50)?;
    let after = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or_else(|| ApiError::invalid("cursor", "not a cursor from a previous page"))?,
    };
    let rows = users::list_users(&state.db, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<UserView> = rows
        .iter()
        .take(limit as usize)
        .map(UserView::from_row)
        .collect::<ApiResult<_>>()?;
    let next_cursor = more
        .then(|| items.last().map(|u| u.id.to_string()))
        .flatten();
    Ok(Json(UserPage { items, next_cursor }))
}

#[utoipa::path(patch, path = "/api/v1/admin/users/{id}", tag = "admin", request_body = UserPatch,
    params(("id" = i64, Path, description = "User id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated user; a role change or deactivation ends their sessions", body = UserView),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "Admins cannot demote or deactivate themselves", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    who: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<Json<UserView>> {
    if patch.role.is_none() && patch.active.is_none() {
        return Err(ApiError::invalid("role", "give role and/or active"));
    }
    if id == who.principal.user_id
        && (patch.role.is_some_and(|r| r != Role::Admin) || patch.active == Some(false))
    {
        return Err(ApiError::conflict(
            "self_lockout",
            "admins cannot demote or deactivate themselves",
        ));
    }
    let actor = users::user_by_id(&state.db, who.principal.user_id).await?;
    let entry = AuditEntry {
        actor_id: Some(who.principal.user_id),
        actor: actor.map_or_else(|| who.principal.user_id.to_string(), |u| u.username),
        action: "user.update",
        target: format!("user:{id}"),
        details: serde_json::json!({
            "role": patch.role.map(Role::as_str),
            "active": patch.active,
        }),
    };
    let before = users::user_by_id(&state.db, id).await?;
    let change = UserChange {
        role: patch.role,
        active: patch.active,
    };
    let updated = users::update_user(&state.db, id, change, &entry)
        .await?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    if let Some(before) = before
        && (before.role != updated.role || (before.active && !updated.active))
    {
        state
            .auth
            .end_sessions_locally(id, updated.sessions_valid_from.max(now_unix()));
    }
    Ok(Json(UserView::from_row(&updated)?))
}
