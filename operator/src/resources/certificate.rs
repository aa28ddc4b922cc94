//! cert-manager `Certificate` `<name>` for `spec.tls` (applied only when cert-manager's CRD is served).
//! A minimal typed view: only the fields the operator writes and reads.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::common::{Component, child_meta};
use super::ingress::tls_secret_name;
use crate::validate::Validated;

/// The CRD that must be served for this kind.
pub const CRD: &str = "certificates.cert-manager.io";

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Certificate",
    namespaced,
    schema = "disabled",
    status = "CertificateState",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    pub secret_name: String,
    pub dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
    pub issuer_ref: CertificateIssuerRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<CertificatePrivateKey>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct CertificateIssuerRef {
    pub name: String,
    pub kind: String,
    pub group: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificatePrivateKey {
    pub algorithm: String,
    pub size: i32,
    pub rotation_policy: String,
}

/// What cert-manager reports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateState {
    #[serde(default)]
    pub conditions: Vec<CertificateCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct CertificateCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

pub fn certificate(v: &Validated) -> Option<Certificate> {
    let tls = v.spec.tls.as_ref()?;
    let mut cert = Certificate::new(
        &v.names.certificate(),
        CertificateSpec {
            secret_name: tls_secret_name(v).unwrap_or_default(),
            dns_names: tls.dns_names.clone(),
            duration: Some(tls.duration.clone()),
            renew_before: Some(tls.renew_before.clone()),
            issuer_ref: CertificateIssuerRef {
                name: tls.issuer_ref.name.clone(),
                kind: tls.issuer_ref.kind.as_str().into(),
                group: tls.issuer_ref.group.clone(),
            },
            private_key: Some(CertificatePrivateKey {
                algorithm: "ECDSA".into(),
                size: 256,
                rotation_policy: "Always".into(),
            }),
        },
    );
    cert.metadata = child_meta(v, v.names.certificate(), Component::Routing);
    Some(cert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn certificate_only_with_tls() {
        assert!(certificate(&validated(json!({"version": "1"}))).is_none());
    }

    #[test]
    fn requests_the_dns_names_from_the_issuer() {
        let v = validated(json!({"version": "1", "ingress": {"host": "api.example"},
            "tls": {"issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}, "dnsNames": ["api.example"],
                    "duration": "720h", "renewBefore": "240h"}}));
        let value = serde_json::to_value(certificate(&v).unwrap()).unwrap();
        assert_eq!(value["apiVersion"], "cert-manager.io/v1");
        assert_eq!(value["kind"], "Certificate");
        assert_eq!(value["metadata"]["name"], "prod");
        assert_eq!(
            value["spec"],
            json!({
                "secretName": "prod-tls", "dnsNames": ["api.example"], "duration": "720h", "renewBefore": "240h",
                "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"},
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}
            })
        );
        assert!(value.get("status").is_none(), "status is cert-manager's");
    }
}
