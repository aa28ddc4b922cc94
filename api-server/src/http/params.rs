//! Parsing of query parameters with errors that name the parameter.

use crate::error::{ApiError, ApiResult};

/// Page size: 1..=100, `default` when absent.
pub fn limit(value: Option<&str>, default: i64) -> ApiResult<i64> {
    match value {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", "limit must be an integer from 1 to 100")),
    }
}

/// A positive database id.
pub fn id(field: &'static str, value: Option<&str>) -> ApiResult<Option<i64>> {
    match value {
        None | Some("") => Ok(None),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(field, format!("{field} must be a positive integer id"))
            }),
    }
}

/// A boolean written `true` or `false`.
pub fn boolean(field: &'static str, value: Option<&str>) -> ApiResult<Option<bool>> {
    match value {
        None | Some("") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid(
            field,
            format!("{field} must be true or false"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_ids() {
        assert_eq!(limit(None, 20).unwrap(), 20);
        assert_eq!(limit(Some("100"), 20).unwrap(), 100);
        for bad in ["0", "101", "-1", "x", "99999999999999999999999"] {
            let e = limit(Some(bad), 20).unwrap_err();
            assert_eq!(e.field(), Some("limit"), "{bad}");
        }
        assert_eq!(id("team", Some("7")).unwrap(), Some(7));
        assert!(id("team", Some("0")).is_err());
        assert_eq!(boolean("upcoming", Some("true")).unwrap(), Some(true));
        assert!(boolean("upcoming", Some("yes")).is_err());
    }
}
