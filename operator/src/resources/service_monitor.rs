//! prometheus-operator `ServiceMonitor` `<name>`: scrapes `/metrics` of both colors' Services
//! (applied only when the CRD is served). A minimal typed view of the kind.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::common::{API_PORT_NAME, Component, api_pods_selector, child_meta};
use super::prometheus_rule::merge_extra_labels;
use crate::crd::labels;
use crate::validate::Validated;

pub const CRD: &str = "servicemonitors.monitoring.coreos.com";

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "monitoring.coreos.com",
    version = "v1",
    kind = "ServiceMonitor",
    namespaced,
    schema = "disabled",
    derive = "PartialEq",
    derive = "Default"
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    pub selector: LabelSelector,
    pub namespace_selector: NamespaceSelector,
    pub endpoints: Vec<ScrapeEndpoint>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    pub match_names: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ScrapeEndpoint {
    pub port: String,
    pub path: String,
    pub interval: String,
}

pub fn service_monitor(v: &Validated) -> Option<ServiceMonitor> {
    let spec = &v.spec.monitoring.service_monitor;
    if !spec.enabled {
        return None;
    }
    // The Services carry the same labels as the pods they select, minus the color.
    let mut selector = api_pods_selector(v);
    if let Some(l) = selector.match_labels.as_mut() {
        l.insert(
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        );
    }
    let mut monitor = ServiceMonitor::new(
        &v.names.service_monitor(),
        ServiceMonitorSpec {
            selector,
            namespace_selector: NamespaceSelector {
                match_names: vec![v.namespace.clone()],
            },
            endpoints: vec![ScrapeEndpoint {
                port: API_PORT_NAME.into(),
                path: "/metrics".into(),
                interval: spec.interval.clone(),
            }],
        },
    );
    monitor.metadata = child_meta(v, v.names.service_monitor(), Component::Monitoring);
    merge_extra_labels(&mut monitor.metadata.labels, &spec.labels);
    Some(monitor)
}

/// Labels a Service needs to be scraped by the ServiceMonitor (tested against the Service builder).
pub fn selected_labels(monitor: &ServiceMonitor) -> BTreeMap<String, String> {
    monitor
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Color;
    use crate::resources::colors::{ColorPlan, ColorTarget};
    use crate::resources::service::{active_service, preview_service};
    use crate::test_support::validated;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn scrapes_both_services_on_the_http_port() {
        let v = validated(
            json!({"version": "1", "monitoring": {"serviceMonitor": {"interval": "15s", "labels": {"release": "prom"}}}}),
        );
        let monitor = service_monitor(&v).unwrap();
        let value = serde_json::to_value(&monitor).unwrap();
        assert_eq!(
            value["spec"]["endpoints"],
            json!([{"port": "http", "path": "/metrics", "interval": "15s"}])
        );
        assert_eq!(
            value["spec"]["namespaceSelector"],
            json!({"matchNames": ["football"]})
        );
        assert_eq!(value["metadata"]["labels"]["release"], "prom");
        let t = ColorTarget {
            version: "1".into(),
            image: "i".into(),
            config: String::new(),
            replicas: Some(1),
        };
        let plan = ColorPlan {
            active: Color::Blue,
            serving: true,
            pre_migration_backup: None,
            migration: None,
            blue: t.clone(),
            green: t,
        };
        for service in [active_service(&v, &plan), preview_service(&v, &plan)] {
            let service_labels = service.metadata.labels.unwrap();
            for (k, value) in selected_labels(&monitor) {
                assert_eq!(
                    service_labels.get(&k),
                    Some(&value),
                    "Service must carry {k}"
                );
            }
        }
    }

    #[test]
    fn can_be_disabled() {
        let v = validated(
            json!({"version": "1", "monitoring": {"serviceMonitor": {"enabled": false}}}),
        );
        assert!(service_monitor(&v).is_none());
    }
}
