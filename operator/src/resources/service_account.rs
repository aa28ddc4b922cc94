//! ServiceAccount `<name>-api` of the API pods. The API server never talks to Kubernetes, so its
//! token is not mounted.

use k8s_openapi::api::core::v1::ServiceAccount;

use super::common::{Component, child_meta};
use crate::validate::Validated;

pub fn service_account(v: &Validated) -> ServiceAccount {
    ServiceAccount {
        metadata: child_meta(v, v.names.service_account(), Component::Api),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;

    #[test]
    fn service_account_has_no_token_and_is_owned() {
        let v = validated(serde_json::json!({"version": "1"}));
        let sa = service_account(&v);
        assert_eq!(sa.metadata.name.as_deref(), Some("prod-api"));
        assert_eq!(sa.metadata.namespace.as_deref(), Some("football"));
        assert_eq!(sa.automount_service_account_token, Some(false));
        let owners = sa.metadata.owner_references.unwrap();
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(
            sa.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
            "fp-operator"
        );
    }
}
