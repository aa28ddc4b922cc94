//! Secret `<name>-jwt`: operator-generated JWT signing keys. Created once and never overwritten; a new
//! key is added every `keyRotation.interval` and a key is removed once a newer key has existed for
//! `keyRotation.gracePeriod`. Each data key is a key id `kYYYYMMDDTHHMMSSZ` (UTC creation time, so
//! lexical order is age order) holding 32 random bytes.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;

use super::common::{Component, child_meta};
use crate::validate::key_ids::{KEY_BYTES, is_key_id, key_created, key_id};
use crate::validate::{SigningKeys, Validated};

/// The signing keys after rotation at `now`; `new_key` supplies fresh random bytes when a key is added.
pub fn rotate(
    existing: &BTreeMap<String, ByteString>,
    now: Timestamp,
    interval: Duration,
    grace: Duration,
    new_key: &mut dyn FnMut() -> [u8; KEY_BYTES],
) -> BTreeMap<String, ByteString> {
    // Only well-formed keys survive; anything else in our Secret was not written by us.
    let mut keys: BTreeMap<String, ByteString> = existing
        .iter()
        .filter(|(id, value)| is_key_id(id) && value.0.len() >= KEY_BYTES)
        .map(|(id, value)| (id.clone(), value.clone()))
        .collect();
    let age = |id: &str| -> Duration {
        key_created(id)
            .and_then(|created| Duration::try_from(now.duration_since(created)).ok())
            .unwrap_or(Duration::ZERO)
    };
    let newest_is_due = keys
        .keys()
        .next_back()
        .is_none_or(|newest| age(newest) >= interval);
    if newest_is_due {
        let id = key_id(now);
        keys.entry(id)
            .or_insert_with(|| ByteString(new_key().to_vec()));
    }
    // A key retires once the next newer key has been around for the grace period: every token it
    // signed has expired by then (the grace period exceeds the access-token lifetime).
    let ids: Vec<String> = keys.keys().cloned().collect();
    for pair in ids.windows(2) {
        if age(&pair[1]) >= grace {
            keys.remove(&pair[0]);
        }
    }
    keys
}

/// The generated key Secret, or `None` when the user provides the keys.
pub fn jwt_secret(
    v: &Validated,
    existing: Option<&BTreeMap<String, ByteString>>,
    now: Timestamp,
    new_key: &mut dyn FnMut() -> [u8; KEY_BYTES],
) -> Option<Secret> {
    let SigningKeys::Generated { secret } = &v.signing_keys else {
        return None;
    };
    let empty = BTreeMap::new();
    let keys = rotate(
        existing.unwrap_or(&empty),
        now,
        v.durations.key_rotation_interval,
        v.durations.key_rotation_grace,
        new_key,
    );
    Some(Secret {
        metadata: child_meta(v, secret.clone(), Component::Auth),
        type_: Some("Opaque".into()),
        data: Some(keys),
        ..Secret::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;
    use pretty_assertions::assert_eq;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn counter() -> impl FnMut() -> [u8; KEY_BYTES] {
        let mut n = 0u8;
        move || {
            n += 1;
            [n; KEY_BYTES]
        }
    }

    fn ids(keys: &BTreeMap<String, ByteString>) -> Vec<&str> {
        keys.keys().map(String::as_str).collect()
    }

    #[test]
    fn first_reconcile_creates_one_key() {
        let keys = rotate(
            &BTreeMap::new(),
            at("2026-11-28T10:00:00Z"),
            720 * HOUR,
            24 * HOUR,
            &mut counter(),
        );
        assert_eq!(ids(&keys), ["k20261128T100000Z"]);
        assert_eq!(keys["k20261128T100000Z"].0, vec![1u8; 32]);
    }

    #[test]
    fn keys_are_never_overwritten_before_the_interval() {
        let start = rotate(
            &BTreeMap::new(),
            at("2026-11-28T10:00:00Z"),
            720 * HOUR,
            24 * HOUR,
            &mut counter(),
        );
        let later = rotate(
            &start,
            at("2026-12-20T10:00:00Z"),
            720 * HOUR,
            24 * HOUR,
            &mut || [9; KEY_BYTES],
        );
        assert_eq!(later, start);
    }

    #[test]
    fn rotation_adds_a_key_then_retires_the_old_one_after_the_grace_period() {
        let mut keygen = counter();
        let day0 = rotate(
            &BTreeMap::new(),
            at("2026-01-01T00:00:00Z"),
            720 * HOUR,
            24 * HOUR,
            &mut keygen,
        );
        let day30 = rotate(
            &day0,
            at("2026-01-31T00:00:00Z"),
            720 * HOUR,
            24 * HOUR,
            &mut keygen,
        );
        assert_eq!(ids(&day30), ["k20260101T000000Z", "k20260131T000000Z"]);
        let within_grace = rotate(
            &day30,
            at("2026-01-31T23:59:59Z"),
            720 * HOUR,
            24 * HOUR,
            &mut keygen,
        );
        assert_eq!(
            ids(&within_grace),
            ["k20260101T000000Z", "k20260131T000000Z"]
        );
        let after_grace = rotate(
            &day30,
            at("2026-02-01T00:00:00Z"),
            720 * HOUR,
            24 * HOUR,
            &mut keygen,
        );
        assert_eq!(ids(&after_grace), ["k20260131T000000Z"]);
        assert_eq!(after_grace["k20260131T000000Z"].0, vec![2u8; 32]);
    }

    #[test]
    fn malformed_or_short_keys_are_dropped() {
        let existing = BTreeMap::from([
            ("k20260101T000000Z".to_owned(), ByteString(vec![1; 16])),
            ("notes".to_owned(), ByteString(b"x".to_vec())),
        ]);
        let keys = rotate(
            &existing,
            at("2026-01-02T00:00:00Z"),
            720 * HOUR,
            24 * HOUR,
            &mut counter(),
        );
        assert_eq!(ids(&keys), ["k20260102T000000Z"]);
    }

    #[test]
    fn builds_the_secret_only_when_no_keys_are_referenced() {
        let generated = validated(serde_json::json!({"version": "1"}));
        let secret =
            jwt_secret(&generated, None, at("2026-01-01T00:00:00Z"), &mut counter()).unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("prod-jwt"));
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(secret.data.unwrap().len(), 1);
        let provided = validated(
            serde_json::json!({"version": "1", "auth": {"signingKeysSecretRef": {"name": "mine"}}}),
        );
        assert!(jwt_secret(&provided, None, at("2026-01-01T00:00:00Z"), &mut counter()).is_none());
    }
}
