//! Ingress `<name>` for `spec.ingress`, with a TLS section when `spec.tls` is set.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::common::{API_PORT_NAME, Component, child_meta};
use crate::validate::Validated;

/// Secret holding the TLS certificate (cert-manager writes it).
pub fn tls_secret_name(v: &Validated) -> Option<String> {
    v.spec.tls.as_ref().map(|tls| {
        tls.secret_name
            .clone()
            .unwrap_or_else(|| v.names.tls_secret())
    })
}

pub fn ingress(v: &Validated) -> Option<Ingress> {
    let spec = v.spec.ingress.as_ref()?;
    let mut meta = child_meta(v, v.names.ingress(), Component::Routing);
    if !spec.annotations.is_empty() {
        meta.annotations = Some(spec.annotations.clone());
    }
    let tls = v.spec.tls.as_ref().map(|tls| {
        vec![IngressTLS {
            hosts: Some(tls.dns_names.clone()),
            secret_name: tls_secret_name(v),
        }]
    });
    Some(Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            tls,
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: v.names.active_service(),
                                port: Some(ServiceBackendPort {
                                    name: Some(API_PORT_NAME.into()),
                                    number: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn no_ingress_without_spec() {
        assert!(ingress(&validated(json!({"version": "1"}))).is_none());
    }

    #[test]
    fn routes_the_host_to_the_active_service() {
        let v = validated(
            json!({"version": "1", "ingress": {"host": "api.example", "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "32m"}}}),
        );
        let value = serde_json::to_value(ingress(&v).unwrap()).unwrap();
        assert_eq!(
            value["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"],
            "32m"
        );
        assert_eq!(value["spec"]["ingressClassName"], "nginx");
        assert_eq!(value["spec"]["rules"][0]["host"], "api.example");
        assert_eq!(
            value["spec"]["rules"][0]["http"]["paths"][0],
            json!({"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "prod", "port": {"name": "http"}}}})
        );
        assert!(value["spec"].get("tls").is_none());
    }

    #[test]
    fn tls_section_uses_the_certificate_secret() {
        let v = validated(json!({"version": "1", "ingress": {"host": "api.example"},
            "tls": {"issuerRef": {"name": "le"}, "dnsNames": ["api.example", "www.example"]}}));
        let value = serde_json::to_value(ingress(&v).unwrap()).unwrap();
        assert_eq!(
            value["spec"]["tls"],
            json!([{"hosts": ["api.example", "www.example"], "secretName": "prod-tls"}])
        );
        let custom = validated(json!({"version": "1", "ingress": {"host": "api.example"},
            "tls": {"issuerRef": {"name": "le"}, "dnsNames": ["api.example"], "secretName": "my-cert"}}));
        assert_eq!(tls_secret_name(&custom).as_deref(), Some("my-cert"));
    }
}
