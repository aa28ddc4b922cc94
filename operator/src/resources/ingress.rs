//! Ingress `<name>` for `spec.ingress`: only `/api` and `/health` are published (`/metrics` and
//! `/api-docs` stay inside the cluster, for the ServiceMonitor and the team), with a TLS section
//! and HTTP→HTTPS redirects (ingress-nginx, Traefik) when `spec.tls` is set.

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

/// What the Ingress routes (Prefix matches whole path segments: `/api` is not `/api-docs`).
pub const PUBLISHED_PATHS: [&str; 2] = ["/api", "/health"];

/// Set with `spec.tls`: requests over plain HTTP are redirected to HTTPS (ingress-nginx) or not
/// routed at all (Traefik routes the Ingress on TLS entry points only).
const HTTPS_ONLY_ANNOTATIONS: &[(&str, &str)] = &[
    ("nginx.ingress.kubernetes.io/ssl-redirect", "true"),
    ("nginx.ingress.kubernetes.io/force-ssl-redirect", "true"),
    ("traefik.ingress.kubernetes.io/router.tls", "true"),
];

pub fn ingress(v: &Validated) -> Option<Ingress> {
    let spec = v.spec.ingress.as_ref()?;
    let mut meta = child_meta(v, v.names.ingress(), Component::Routing);
    let mut annotations = spec.annotations.clone();
    if v.spec.tls.is_some() {
        // Plain HTTP only redirects; each controller ignores the other's keys.
        for (key, value) in HTTPS_ONLY_ANNOTATIONS {
            annotations.insert((*key).to_owned(), (*value).to_owned());
        }
    }
    if !annotations.is_empty() {
        meta.annotations = Some(annotations);
    }
    let path = |prefix: &str| HTTPIngressPath {
        path: Some(prefix.into()),
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
    };
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
                    paths: PUBLISHED_PATHS.iter().map(|p| path(p)).collect(),
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
            "allowInsecureHttp": true,
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "32m"}}}),
        );
        let value = serde_json::to_value(ingress(&v).unwrap()).unwrap();
        assert_eq!(
            value["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"],
            "32m"
        );
        assert_eq!(value["spec"]["ingressClassName"], "nginx");
        assert_eq!(value["spec"]["rules"][0]["host"], "api.example");
        let backend = json!({"service": {"name": "prod", "port": {"name": "http"}}});
        assert_eq!(
            value["spec"]["rules"][0]["http"]["paths"],
            json!([{"path": "/api", "pathType": "Prefix", "backend": backend},
                   {"path": "/health", "pathType": "Prefix", "backend": backend}]),
            "/metrics and /api-docs are not published"
        );
        assert!(value["spec"].get("tls").is_none());
        assert!(
            value["metadata"]["annotations"]
                .get("nginx.ingress.kubernetes.io/ssl-redirect")
                .is_none()
        );
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
        let annotations = &value["metadata"]["annotations"];
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"],
            "true"
        );
        assert_eq!(
            annotations["traefik.ingress.kubernetes.io/router.tls"],
            "true"
        );
        let custom = validated(json!({"version": "1", "ingress": {"host": "api.example"},
            "tls": {"issuerRef": {"name": "le"}, "dnsNames": ["api.example"], "secretName": "my-cert"}}));
        assert_eq!(tls_secret_name(&custom).as_deref(), Some("my-cert"));
    }
}
