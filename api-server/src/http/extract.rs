//! Extractors that turn every malformed input into a `{code, message, field}` 4xx: JSON bodies
//! (415 wrong type, 413 too big, 400 unreadable, 422 wrong field), query strings, path
//! parameters, and the bearer token with the role an endpoint needs.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::auth::{Principal, Role, TokenError};
use crate::error::ApiError;
use crate::http::access_log::Caller;
use crate::http::state::AppState;

/// A JSON request body.
pub struct ApiJson<T>(pub T);

pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// Maps a body-buffering failure: over the limit is 413, anything else 400.
pub fn body_error(status: StatusCode) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body exceeds the size limit",
        )
    } else {
        ApiError::bad_request("unreadable_body", "request body could not be read")
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_error(rejection.status()))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The backquoted name in serde messages such as "unknown field `x`, expected …".
fn quoted_name(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

/// Parses a JSON object, naming the offending field on data errors. Every body of this API is
/// an object: serde would also fill a struct from an array of its fields in order, which the
/// document does not allow, so anything else is refused first.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "the request body must be a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    match result {
        Ok(value) => {
            de.end().map_err(|_| {
                ApiError::bad_request("malformed_json", "unexpected data after the JSON value")
            })?;
            Ok(value)
        }
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let message = inner.to_string();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    let field = if path == "." {
                        quoted_name(&message).unwrap_or_default()
                    } else {
                        path
                    };
                    let mut e =
                        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message);
                    if !field.is_empty() {
                        e = e.with_field(field);
                    }
                    Err(e)
                }
                _ => Err(ApiError::bad_request(
                    "malformed_json",
                    format!("request body is not valid JSON: {message}"),
                )),
            }
        }
    }
}

/// A query string whose type rejects unknown parameters (`deny_unknown_fields`); fields are
/// best kept as `Option<String>` and parsed by the handler so errors can name them.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        // `?limit=` is refused rather than read as absent: the document types every parameter
        // (an integer, a date, a pattern), and an empty string is none of those.
        // A value is empty exactly when its encoded form is, so the raw pairs tell; only the
        // offending one is decoded, for the message (no second parse on the way to the handler).
        let empty = query.split('&').find(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            !name.is_empty() && value.is_empty()
        });
        if let Some(pair) = empty {
            let decoded: Vec<(String, String)> =
                serde_urlencoded::from_str(pair).unwrap_or_default();
            let name = decoded
                .into_iter()
                .next()
                .map_or_else(|| pair.to_owned(), |(n, _)| n);
            return Err(ApiError::invalid(
                "query",
                format!("{name} is empty: leave the parameter out instead"),
            )
            .with_field(name));
        }
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| {
                let message = e.to_string();
                let mut err = ApiError::bad_request(
                    "invalid_query",
                    format!("invalid query string: {message}"),
                );
                if let Some(field) = quoted_name(&message) {
                    err = err.with_field(field);
                }
                err
            })
    }
}

/// Path parameters; a value that does not parse is a 400 naming the parameter.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                use axum::extract::path::ErrorKind;
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
                    ErrorKind::ParseErrorAtIndex { .. } | ErrorKind::ParseError { .. } => {
                        Some("id".to_string())
                    }
                    _ => None,
                };
                let mut err = ApiError::bad_request("invalid_path_parameter", e.body_text());
                if let Some(field) = field {
                    err = err.with_field(field);
                }
                Err(err)
            }
            Err(other) => Err(ApiError::bad_request(
                "invalid_path_parameter",
                other.body_text(),
            )),
        }
    }
}

/// The role an endpoint needs, as a type.
pub trait RequiredRole {
    const ROLE: Role;
}

pub struct ViewerRole;
pub struct AnalystRole;
pub struct AdminRole;

impl RequiredRole for ViewerRole {
    const ROLE: Role = Role::Viewer;
}
impl RequiredRole for AnalystRole {
    const ROLE: Role = Role::Analyst;
}
impl RequiredRole for AdminRole {
    const ROLE: Role = Role::Admin;
}

/// A request with a valid access token whose role is at least `R::ROLE`.
pub struct Authed<R> {
    pub principal: Principal,
    role: PhantomData<R>,
}

pub type Viewer = Authed<ViewerRole>;
pub type Analyst = Authed<AnalystRole>;
pub type Admin = Authed<AdminRole>;

pub fn token_error(e: TokenError) -> ApiError {
    ApiError::unauthorized(e.code(), e.to_string())
}

impl<R: RequiredRole> FromRequestParts<AppState> for Authed<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = state
            .auth
            .authenticate(parts.headers.get(header::AUTHORIZATION))
            .map_err(token_error)?;
        if let Some(caller) = parts.extensions.get::<Caller>() {
            caller.set(principal.user_id);
        }
        if !principal.role.allows(R::ROLE) {
            return Err(ApiError::forbidden(format!(
                "this endpoint needs the {} role",
                R::ROLE.as_str()
            )));
        }
        Ok(Self {
            principal,
            role: PhantomData,
        })
    }
}

/// For an optional JSON field: absent is `None`, but an explicit `null` is refused, as the
/// document (which does not mark these fields nullable) says. Use with `#[serde(default)]`.
pub fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Integers in a JSON body: JSON Schema counts `204.0` as the integer 204, so it is read as one;
/// a fraction or a value outside i64 is refused.
pub fn json_integers<'de, D>(deserializer: D) -> Result<Vec<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let numbers = <Vec<serde_json::Number> as serde::Deserialize>::deserialize(deserializer)?;
    numbers
        .into_iter()
        .map(|n| {
            n.as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| serde::de::Error::custom(format!("{n} is not an integer id")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Ids {
        #[serde(deserialize_with = "json_integers")]
        ids: Vec<i64>,
        #[serde(default, deserialize_with = "not_null")]
        name: Option<String>,
    }

    #[test]
    fn integral_numbers_are_integers_and_null_is_not_absent() {
        let ids: Ids = parse_json(br#"{"ids": [204.0, -3, 7]}"#).unwrap();
        assert_eq!(ids.ids, [204, -3, 7]);
        assert_eq!(ids.name, None);
        for bad in [
            r#"{"ids": [1.5]}"#,
            r#"{"ids": [1e300]}"#,
            r#"{"ids": [1], "name": null}"#,
            r#"[[1]]"#,
        ] {
            let e = parse_json::<Ids>(bad.as_bytes()).unwrap_err();
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        username: String,
        limit: Option<u8>,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Login>(br#"{"username": 5}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field(), Some("username"));
        let e = parse_json::<Login>(br#"{"username": "a", "limit": 100000}"#).unwrap_err();
        assert_eq!(e.field(), Some("limit"));
        let e = parse_json::<Login>(br#"{"username": "a", "admin": true}"#).unwrap_err();
        assert_eq!(e.field(), Some("admin"));
        let e = parse_json::<Login>(br#"{}"#).unwrap_err();
        assert_eq!(e.field(), Some("username"));
    }

    #[test]
    fn syntax_errors_and_bad_utf8_are_400() {
        for body in [
            &b"{"[..],
            b"nope",
            b"{\"username\": \"\xff\xfe\"}",
            b"{\"username\":\"a\"} x",
        ] {
            let e = parse_json::<Login>(body).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body:?}");
        }
    }

    #[test]
    fn content_type_check_accepts_json_variants_only() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&h));
        h.insert(
            header::CONTENT_TYPE,
            "application/merge-patch+json".parse().unwrap(),
        );
        assert!(is_json(&h));
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&h));
    }
}
