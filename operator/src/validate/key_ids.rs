//! The ids of JWT signing keys in a Secret: `kYYYYMMDDTHHMMSSZ`, the key's UTC creation time, so
//! lexical order is age order. Shared by the validation of a user's Secret and the generator of
//! the operator's own (`resources::jwt_secret`).

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::fmt::strtime;
use k8s_openapi::jiff::tz::TimeZone;

/// Bytes of each generated key (HS256 needs at least 32).
pub const KEY_BYTES: usize = 32;
const KEY_ID_FORMAT: &str = "k%Y%m%dT%H%M%SZ";

/// The key id of a key created at `at`.
pub fn key_id(at: Timestamp) -> String {
    strtime::format(KEY_ID_FORMAT, at).unwrap_or_default()
}

/// When the key with this id was created, if the id has the right form.
pub fn key_created(id: &str) -> Option<Timestamp> {
    if id.len() != 17 {
        return None;
    }
    let civil = strtime::parse(KEY_ID_FORMAT, id).ok()?.to_datetime().ok()?;
    civil.to_zoned(TimeZone::UTC).ok().map(|z| z.timestamp())
}

/// Whether a Secret data key is a signing key id.
pub fn is_key_id(id: &str) -> bool {
    key_created(id).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn key_ids_round_trip_and_sort_by_age() {
        let t = at("2026-11-28T10:00:05Z");
        assert_eq!(key_id(t), "k20261128T100005Z");
        assert_eq!(key_created("k20261128T100005Z"), Some(t));
        assert!(!is_key_id("k2026-11-28"));
        assert!(!is_key_id("signing"));
        assert!(key_id(at("2026-01-01T00:00:00Z")) < key_id(at("2026-01-01T00:00:01Z")));
    }
}
