//! Services `<name>` (the active color) and `<name>-preview` (the other color), selecting by color
//! label: switching traffic is one selector update.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::colors::ColorPlan;
use super::common::{API_PORT_NAME, Component, api_selector_labels, child_meta};
use crate::crd::{Color, labels};
use crate::validate::Validated;

/// Color label value no pod carries: the active Service's selector before a first release is verified.
pub const NO_COLOR: &str = "none";

fn service(v: &Validated, name: String, color: Option<Color>) -> Service {
    let mut selector = api_selector_labels(v, color.unwrap_or(Color::Blue));
    if color.is_none() {
        selector.insert(labels::COLOR.to_owned(), NO_COLOR.to_owned());
    }
    Service {
        metadata: child_meta(v, name, Component::Api),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some(API_PORT_NAME.into()),
                port: v.spec.service.port,
                target_port: Some(IntOrString::String(API_PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The active Service `<name>`.
pub fn active_service(v: &Validated, plan: &ColorPlan) -> Service {
    service(
        v,
        v.names.active_service(),
        plan.serving.then_some(plan.active),
    )
}

/// The preview Service `<name>-preview`.
pub fn preview_service(v: &Validated, plan: &ColorPlan) -> Service {
    service(v, v.names.preview_service(), Some(plan.preview()))
}

/// In-cluster URL of a Service of this FootballPrediction.
pub fn service_url(v: &Validated, service: &str) -> String {
    format!(
        "http://{service}.{}.svc:{}",
        v.namespace, v.spec.service.port
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::colors::ColorTarget;
    use crate::test_support::validated;
    use pretty_assertions::assert_eq;

    fn plan(active: Color) -> ColorPlan {
        let t = ColorTarget {
            version: "1".into(),
            image: "i:1".into(),
            config: String::new(),
            replicas: Some(1),
        };
        ColorPlan {
            active,
            serving: true,
            pre_migration_backup: None,
            migration: None,
            blue: t.clone(),
            green: t,
        }
    }

    #[test]
    fn active_and_preview_select_opposite_colors() {
        let v = validated(serde_json::json!({"version": "1", "service": {"port": 80}}));
        for active in [Color::Blue, Color::Green] {
            let a = active_service(&v, &plan(active));
            let p = preview_service(&v, &plan(active));
            assert_eq!(a.metadata.name.as_deref(), Some("prod"));
            assert_eq!(p.metadata.name.as_deref(), Some("prod-preview"));
            let color = |s: &Service| {
                s.spec.as_ref().unwrap().selector.as_ref().unwrap()["footballprediction.io/color"]
                    .clone()
            };
            assert_eq!(color(&a), active.as_str());
            assert_eq!(color(&p), active.other().as_str());
            let port = &a.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
            assert_eq!(port.port, 80);
            assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
        }
        assert_eq!(service_url(&v, "prod"), "http://prod.football.svc:80");
    }
}
