//! Every kind of child the operator manages, with its API coordinates: apply, list and delete work
//! on all of them through one code path.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::ApiResource;

use super::certificate::{self, Certificate};
use super::prometheus_rule::{self, PrometheusRule};
use super::service_monitor::{self, ServiceMonitor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ServiceAccount,
    ConfigMap,
    Secret,
    PersistentVolumeClaim,
    Deployment,
    Service,
    Ingress,
    Certificate,
    PodDisruptionBudget,
    HorizontalPodAutoscaler,
    NetworkPolicy,
    Job,
    CronJob,
    PrometheusRule,
    ServiceMonitor,
}

impl Kind {
    /// All kinds, in apply order: what others depend on comes first.
    pub const ALL: [Kind; 15] = [
        Kind::ServiceAccount,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::PersistentVolumeClaim,
        Kind::Job,
        Kind::Deployment,
        Kind::Service,
        Kind::Ingress,
        Kind::Certificate,
        Kind::PodDisruptionBudget,
        Kind::HorizontalPodAutoscaler,
        Kind::NetworkPolicy,
        Kind::CronJob,
        Kind::PrometheusRule,
        Kind::ServiceMonitor,
    ];

    /// API group, version, kind and plural.
    pub fn api_resource(self) -> ApiResource {
        match self {
            Self::ServiceAccount => ApiResource::erase::<ServiceAccount>(&()),
            Self::ConfigMap => ApiResource::erase::<ConfigMap>(&()),
            Self::Secret => ApiResource::erase::<Secret>(&()),
            Self::PersistentVolumeClaim => ApiResource::erase::<PersistentVolumeClaim>(&()),
            Self::Deployment => ApiResource::erase::<Deployment>(&()),
            Self::Service => ApiResource::erase::<Service>(&()),
            Self::Ingress => ApiResource::erase::<Ingress>(&()),
            Self::Certificate => ApiResource::erase::<Certificate>(&()),
            Self::PodDisruptionBudget => ApiResource::erase::<PodDisruptionBudget>(&()),
            Self::HorizontalPodAutoscaler => ApiResource::erase::<HorizontalPodAutoscaler>(&()),
            Self::NetworkPolicy => ApiResource::erase::<NetworkPolicy>(&()),
            Self::Job => ApiResource::erase::<Job>(&()),
            Self::CronJob => ApiResource::erase::<CronJob>(&()),
            Self::PrometheusRule => ApiResource::erase::<PrometheusRule>(&()),
            Self::ServiceMonitor => ApiResource::erase::<ServiceMonitor>(&()),
        }
    }

    /// Metric and log label (a fixed set).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServiceAccount => "ServiceAccount",
            Self::ConfigMap => "ConfigMap",
            Self::Secret => "Secret",
            Self::PersistentVolumeClaim => "PersistentVolumeClaim",
            Self::Deployment => "Deployment",
            Self::Service => "Service",
            Self::Ingress => "Ingress",
            Self::Certificate => "Certificate",
            Self::PodDisruptionBudget => "PodDisruptionBudget",
            Self::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            Self::NetworkPolicy => "NetworkPolicy",
            Self::Job => "Job",
            Self::CronJob => "CronJob",
            Self::PrometheusRule => "PrometheusRule",
            Self::ServiceMonitor => "ServiceMonitor",
        }
    }

    /// The CustomResourceDefinition that must be served before this kind can be applied.
    pub fn required_crd(self) -> Option<&'static str> {
        match self {
            Self::Certificate => Some(certificate::CRD),
            Self::PrometheusRule => Some(prometheus_rule::CRD),
            Self::ServiceMonitor => Some(service_monitor::CRD),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_kind_has_distinct_api_coordinates() {
        let plurals: BTreeSet<String> = Kind::ALL
            .iter()
            .map(|k| format!("{}/{}", k.api_resource().group, k.api_resource().plural))
            .collect();
        assert_eq!(plurals.len(), Kind::ALL.len());
        assert_eq!(
            Kind::Certificate.api_resource().api_version,
            "cert-manager.io/v1"
        );
        assert_eq!(
            Kind::ServiceMonitor.api_resource().plural,
            "servicemonitors"
        );
        assert_eq!(
            Kind::HorizontalPodAutoscaler.api_resource().api_version,
            "autoscaling/v2"
        );
        for kind in Kind::ALL {
            assert_eq!(kind.as_str(), kind.api_resource().kind);
        }
    }

    /// (group, resources, verbs) of each rule in the chart's ClusterRole text.
    fn chart_rules() -> Vec<(String, String, String)> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../charts/fp-operator/templates/rbac.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        text.split("  - apiGroups:")
            .skip(1)
            .map(|rule| {
                let line = |key: &str| {
                    rule.lines()
                        .find(|l| l.trim_start().starts_with(key))
                        .unwrap_or_default()
                        .to_owned()
                };
                let group = rule.lines().next().unwrap_or_default().trim().to_owned();
                (group, line("resources:"), line("verbs:"))
            })
            .collect()
    }

    #[test]
    fn the_chart_grants_exactly_what_apply_needs_for_every_kind() {
        let rules = chart_rules();
        for kind in Kind::ALL {
            let ar = kind.api_resource();
            let group = format!("[\"{}\"]", ar.group);
            let rule = rules
                .iter()
                .find(|(g, resources, _)| {
                    *g == group && resources.contains(&format!("\"{}\"", ar.plural))
                })
                .unwrap_or_else(|| panic!("charts/fp-operator grants nothing on {}", ar.plural));
            for verb in ["get", "list", "watch", "create", "patch"] {
                assert!(
                    rule.2.contains(&format!("\"{verb}\"")),
                    "{} lacks {verb}",
                    ar.plural
                );
            }
            // Only kinds the operator may orphan-delete get delete; the backup claim never does.
            let deletes = rule.2.contains("\"delete\"");
            assert_eq!(
                deletes,
                kind != Kind::PersistentVolumeClaim,
                "delete on {}",
                ar.plural
            );
        }
    }

    #[test]
    fn optional_kinds_name_the_crd_they_need() {
        let optional: Vec<(&str, &str)> = Kind::ALL
            .iter()
            .filter_map(|k| k.required_crd().map(|crd| (k.as_str(), crd)))
            .collect();
        assert_eq!(
            optional,
            [
                ("Certificate", "certificates.cert-manager.io"),
                ("PrometheusRule", "prometheusrules.monitoring.coreos.com"),
                ("ServiceMonitor", "servicemonitors.monitoring.coreos.com"),
            ]
        );
        for kind in Kind::ALL {
            if let Some(crd) = kind.required_crd() {
                let ar = kind.api_resource();
                assert_eq!(crd, format!("{}.{}", ar.plural, ar.group));
            }
        }
    }
}
