//! Secret `<name>-admin`: the first admin's password when the spec references none. Created once with
//! a random password and never overwritten, so the password a platform team read stays valid.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::common::{Component, child_meta};
use crate::validate::Validated;

/// The generated admin Secret, or `None` when the spec references one. `new_password` is called only
/// when no password exists yet.
pub fn admin_secret(
    v: &Validated,
    existing: Option<&BTreeMap<String, ByteString>>,
    new_password: &mut dyn FnMut() -> String,
) -> Option<Secret> {
    if !v.admin_password_generated {
        return None;
    }
    let key = &v.admin_password.key;
    let password = existing
        .and_then(|data| data.get(key))
        .filter(|value| !value.0.is_empty())
        .cloned()
        .unwrap_or_else(|| ByteString(new_password().into_bytes()));
    Some(Secret {
        metadata: child_meta(v, v.admin_password.name.clone(), Component::Auth),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(key.clone(), password)])),
        ..Secret::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;

    #[test]
    fn generates_a_password_once_and_keeps_it() {
        let v = validated(serde_json::json!({"version": "1"}));
        let first = admin_secret(&v, None, &mut || "fresh-password".into()).unwrap();
        assert_eq!(first.metadata.name.as_deref(), Some("prod-admin"));
        let data = first.data.unwrap();
        assert_eq!(data["password"].0, b"fresh-password");
        let again = admin_secret(&v, Some(&data), &mut || panic!("must not regenerate")).unwrap();
        assert_eq!(again.data.unwrap()["password"].0, b"fresh-password");
    }

    #[test]
    fn referenced_passwords_are_not_generated() {
        let v = validated(
            serde_json::json!({"version": "1", "auth": {"adminPasswordSecretRef": {"name": "adm", "key": "pw"}}}),
        );
        assert!(admin_secret(&v, None, &mut || "x".into()).is_none());
    }
}
