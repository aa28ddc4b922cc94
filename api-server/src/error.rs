//! The one error type of the HTTP API: every failure becomes `{code, message, field}` with the
//! right status. Internal details never reach the client: they travel in a response extension
//! to the request middleware, which logs them once together with the request id.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable error code such as `invalid_field` or `unauthorized`.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
    /// The request field the error is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Further structured detail, e.g. the line errors of a rejected import.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// What went wrong inside, kept out of the body and logged by the request middleware.
#[derive(Clone, Debug)]
pub struct InternalErrorDetail(pub String);

#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: Cow<'static, str>,
    /// The rarely present parts, boxed to keep `Result<T, ApiError>` small.
    extra: Option<Box<Extra>>,
}

#[derive(Clone, Debug, Default)]
struct Extra {
    field: Option<Cow<'static, str>>,
    retry_after_secs: Option<u64>,
    details: Option<serde_json::Value>,
    internal: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    pub fn with_field(mut self, field: impl Into<Cow<'static, str>>) -> Self {
        self.extra_mut().field = Some(field.into());
        self
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.extra_mut().details = Some(details);
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.extra_mut().retry_after_secs = Some(secs.max(1));
        self
    }

    fn with_internal(mut self, detail: String) -> Self {
        self.extra_mut().internal = Some(detail);
        self
    }

    pub fn field(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.field.as_deref())
    }

    pub fn retry_after(&self) -> Option<u64> {
        self.extra.as_ref().and_then(|e| e.retry_after_secs)
    }

    /// 400: the request could not be read (syntax, encoding, types).
    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: the request was read but a field's value is not acceptable.
    pub fn invalid(field: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).with_field(field)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry later",
        )
        .with_retry_after(retry_after_secs)
    }

    pub fn unavailable(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// 500 with a generic message; `detail` is logged with the request id, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the request id identifies it in the server logs",
        )
        .with_internal(detail.to_string())
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code,
            message: self.message.to_string(),
            field: self.field().map(str::to_string),
            details: self.extra.as_ref().and_then(|e| e.details.clone()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body()).unwrap_or_else(|_| {
            br#"{"code":"internal","message":"error serialisation failed"}"#.to_vec()
        });
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(detail) = self.extra.and_then(|e| e.internal) {
            response
                .extensions_mut()
                .insert(InternalErrorDetail(detail));
        }
        response
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match e {
            DbError::Unavailable(_) => {
                let detail = e.to_string();
                Self::unavailable(
                    "database_unavailable",
                    "the database is not reachable; retry later",
                )
                .with_retry_after(1)
                .with_internal(detail)
            }
            DbError::Conflict(_) => {
                Self::conflict("conflict", "the change conflicts with existing data")
            }
            other => Self::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_detail() {
        let response = ApiError::internal("password=hunter2 leaked").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let detail = response.extensions().get::<InternalErrorDetail>().unwrap();
        assert!(detail.0.contains("hunter2"));
        let body = ApiError::internal("password=hunter2 leaked").body();
        assert!(!body.message.contains("hunter2"));
    }

    #[test]
    fn rate_limit_sets_retry_after() {
        let response = ApiError::too_many_requests(0).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn body_serialises_field_only_when_present() {
        let json = serde_json::to_value(ApiError::invalid("limit", "too big").body()).unwrap();
        assert_eq!(json["field"], "limit");
        assert_eq!(json["code"], "invalid_field");
        let json = serde_json::to_value(ApiError::not_found("no such match").body()).unwrap();
        assert!(json.get("field").is_none());
    }
}
