//! PodDisruptionBudget `<name>-api`: voluntary disruptions (node drains) take one API pod at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::{Component, api_pods_selector, child_meta};
use crate::validate::Validated;

pub fn pdb(v: &Validated) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: child_meta(v, v.names.pdb(), Component::Api),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(api_pods_selector(v)),
            // A crash-looping pod must never block a drain.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;

    #[test]
    fn one_api_pod_at_a_time_across_both_colors() {
        let v = validated(serde_json::json!({"version": "1"}));
        let value = serde_json::to_value(pdb(&v)).unwrap();
        assert_eq!(value["metadata"]["name"], "prod-api");
        assert_eq!(value["spec"]["maxUnavailable"], 1);
        assert_eq!(value["spec"]["unhealthyPodEvictionPolicy"], "AlwaysAllow");
        let selector = &value["spec"]["selector"]["matchLabels"];
        assert_eq!(selector["app.kubernetes.io/component"], "api");
        assert!(
            selector.get("footballprediction.io/color").is_none(),
            "covers both colors"
        );
    }
}
