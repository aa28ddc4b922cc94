//! HorizontalPodAutoscaler `<name>-api` of the active color's Deployment, when `spec.autoscaling` is set.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use super::colors::ColorPlan;
use super::common::{Component, child_meta};
use crate::validate::Validated;

pub fn hpa(v: &Validated, plan: &ColorPlan) -> Option<HorizontalPodAutoscaler> {
    let autoscaling = v.spec.autoscaling.as_ref()?;
    Some(HorizontalPodAutoscaler {
        metadata: child_meta(v, v.names.hpa(), Component::Api),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: v.names.deployment(plan.active),
            },
            min_replicas: Some(autoscaling.min_replicas),
            max_replicas: autoscaling.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(autoscaling.target_cpu_utilization_percentage),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        },
        ..HorizontalPodAutoscaler::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Color;
    use crate::resources::colors::ColorTarget;
    use crate::test_support::validated;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn plan(active: Color) -> ColorPlan {
        let t = ColorTarget {
            version: "1".into(),
            image: "i:1".into(),
            config: String::new(),
            replicas: None,
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
    fn no_autoscaler_without_spec() {
        assert!(hpa(&validated(json!({"version": "1"})), &plan(Color::Blue)).is_none());
    }

    #[test]
    fn scales_the_active_color_on_cpu() {
        let v = validated(
            json!({"version": "1", "autoscaling": {"minReplicas": 3, "maxReplicas": 9, "targetCPUUtilizationPercentage": 60}}),
        );
        let value = serde_json::to_value(hpa(&v, &plan(Color::Green)).unwrap()).unwrap();
        assert_eq!(
            value["spec"]["scaleTargetRef"],
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "prod-green"})
        );
        assert_eq!(value["spec"]["minReplicas"], 3);
        assert_eq!(value["spec"]["maxReplicas"], 9);
        assert_eq!(
            value["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}])
        );
    }
}
