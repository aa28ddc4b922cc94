//! NetworkPolicy `<name>-api`: API pods accept traffic on their HTTP port only from the ingress
//! controller's, monitoring's and the operator's namespaces, and reach only DNS and the database.
//! NetworkPolicy `<name>-jobs`: the migration, backup and restore-drill Jobs' pods accept no
//! traffic at all and reach only DNS, the database and the S3 endpoint's port.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::{API_PORT_NAME, Component, api_pods_selector, child_meta};
use crate::crd::labels;
use crate::validate::Validated;

fn namespace_peer(namespace: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_owned(),
                namespace.to_owned(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn port(protocol: &str, port: IntOrString) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(port),
        end_port: None,
    }
}

pub fn network_policy(v: &Validated) -> Option<NetworkPolicy> {
    let spec = &v.spec.network_policy;
    if !spec.enabled {
        return None;
    }
    let namespaces: BTreeSet<&str> = spec
        .ingress_namespaces
        .iter()
        .chain(&spec.monitoring_namespaces)
        .map(String::as_str)
        .chain(v.operator_namespace.as_deref())
        .collect();
    // A rule without peers would admit every source, so no namespaces means no ingress at all.
    let ingress = (!namespaces.is_empty()).then(|| {
        vec![NetworkPolicyIngressRule {
            from: Some(namespaces.iter().map(|ns| namespace_peer(ns)).collect()),
            ports: Some(vec![port("TCP", IntOrString::String(API_PORT_NAME.into()))]),
        }]
    });
    Some(NetworkPolicy {
        metadata: child_meta(v, v.names.network_policy(), Component::Api),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(api_pods_selector(v)),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress,
            egress: Some(vec![dns(), database(v)]),
        }),
    })
}

/// Name resolution: kube-dns in kube-system.
fn dns() -> NetworkPolicyEgressRule {
    let mut dns_peer = namespace_peer("kube-system");
    dns_peer.pod_selector = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "k8s-app".to_owned(),
            "kube-dns".to_owned(),
        )])),
        ..LabelSelector::default()
    });
    NetworkPolicyEgressRule {
        to: Some(vec![dns_peer]),
        ports: Some(vec![
            port("UDP", IntOrString::Int(53)),
            port("TCP", IntOrString::Int(53)),
        ]),
    }
}

/// The database's port, on its CIDRs when given.
fn database(v: &Validated) -> NetworkPolicyEgressRule {
    let spec = &v.spec.network_policy.database;
    let peers = spec.cidrs.iter().map(|cidr| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.clone(),
            except: None,
        }),
        ..NetworkPolicyPeer::default()
    });
    NetworkPolicyEgressRule {
        // No CIDRs: the database may be anywhere, but only on its port.
        to: (!spec.cidrs.is_empty()).then(|| peers.collect()),
        ports: Some(vec![port("TCP", IntOrString::Int(spec.port))]),
    }
}

/// The port of an `http(s)://host[:port]/…` endpoint.
fn endpoint_port(endpoint: &str) -> Option<i32> {
    let url = reqwest::Url::parse(endpoint).ok()?;
    url.port_or_known_default().map(i32::from)
}

/// Pods of the migration Job and of the backup and restore-drill Jobs (and their CronJobs).
fn job_pods_selector(v: &Validated) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([
            (labels::NAME.to_owned(), labels::NAME_VALUE.to_owned()),
            (labels::INSTANCE.to_owned(), v.name.clone()),
        ])),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: labels::COMPONENT.to_owned(),
            operator: "In".to_owned(),
            values: Some(vec![
                Component::Migration.as_str().to_owned(),
                Component::Backup.as_str().to_owned(),
            ]),
        }]),
    }
}

/// The Jobs' NetworkPolicy: nothing reaches their pods (they serve nothing), and they reach DNS,
/// the database and, with S3 storage, the endpoint's port: a compromised dump or restore cannot
/// talk to the rest of the cluster.
pub fn jobs_network_policy(v: &Validated) -> Option<NetworkPolicy> {
    if !v.spec.network_policy.enabled {
        return None;
    }
    let mut egress = vec![dns(), database(v)];
    let s3 = v.spec.backup.as_ref().and_then(|b| b.storage.s3.as_ref());
    if let Some(port) = s3.and_then(|s3| endpoint_port(&s3.endpoint)) {
        egress.push(NetworkPolicyEgressRule {
            to: None,
            ports: Some(vec![self::port("TCP", IntOrString::Int(port))]),
        });
    }
    Some(NetworkPolicy {
        metadata: child_meta(v, v.names.jobs_network_policy(), Component::Backup),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(job_pods_selector(v)),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: Some(egress),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn admits_ingress_monitoring_and_operator_namespaces_on_the_http_port() {
        let v = validated(json!({"version": "1"}));
        let value = serde_json::to_value(network_policy(&v).unwrap()).unwrap();
        let from: Vec<&str> = value["spec"]["ingress"][0]["from"]
            .as_array()
            .unwrap()
            .iter()
            .map(|peer| {
                peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(from, ["fp-system", "ingress-nginx", "monitoring"]);
        assert_eq!(
            value["spec"]["ingress"][0]["ports"],
            json!([{"protocol": "TCP", "port": "http"}])
        );
        assert_eq!(value["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    }

    #[test]
    fn egress_only_to_dns_and_the_database() {
        let v = validated(
            json!({"version": "1", "networkPolicy": {"database": {"port": 6432, "cidrs": ["10.1.0.0/16"]}}}),
        );
        let value = serde_json::to_value(network_policy(&v).unwrap()).unwrap();
        let egress = value["spec"]["egress"].as_array().unwrap();
        assert_eq!(egress.len(), 2);
        assert_eq!(
            egress[0]["ports"],
            json!([{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}])
        );
        assert_eq!(
            egress[0]["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
            "kube-dns"
        );
        assert_eq!(
            egress[1],
            json!({"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 6432}]})
        );
    }

    #[test]
    fn no_namespaces_means_no_ingress_rule_rather_than_an_open_one() {
        let mut v = validated(
            json!({"version": "1", "networkPolicy": {"ingressNamespaces": [], "monitoringNamespaces": []}}),
        );
        v.operator_namespace = None;
        let value = serde_json::to_value(network_policy(&v).unwrap()).unwrap();
        assert!(value["spec"].get("ingress").is_none(), "{value}");
        assert_eq!(
            value["spec"]["policyTypes"][0], "Ingress",
            "ingress stays denied"
        );
    }

    #[test]
    fn jobs_accept_nothing_and_reach_dns_the_database_and_s3() {
        let v = validated(json!({"version": "1",
            "networkPolicy": {"database": {"port": 6432}},
            "backup": {"schedule": "0 3 * * *", "storage": {"s3": {
                "endpoint": "http://minio.storage:9000", "bucket": "fp-backups",
                "credentialsSecretRef": {"name": "s3"}}}}}));
        let value = serde_json::to_value(jobs_network_policy(&v).unwrap()).unwrap();
        assert_eq!(value["metadata"]["name"], "prod-jobs");
        assert_eq!(value["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert!(
            value["spec"].get("ingress").is_none(),
            "no ingress rule: nothing admitted"
        );
        assert_eq!(
            value["spec"]["podSelector"]["matchExpressions"],
            json!([{"key": "app.kubernetes.io/component", "operator": "In",
                    "values": ["migration", "backup"]}])
        );
        let egress = value["spec"]["egress"].as_array().unwrap();
        assert_eq!(egress.len(), 3, "{egress:?}");
        assert_eq!(
            egress[1]["ports"],
            json!([{"protocol": "TCP", "port": 6432}])
        );
        assert_eq!(
            egress[2],
            json!({"ports": [{"protocol": "TCP", "port": 9000}]})
        );
        // Without S3: DNS and the database only; AWS endpoints default to 443.
        let pvc_only = validated(json!({"version": "1"}));
        let value = serde_json::to_value(jobs_network_policy(&pvc_only).unwrap()).unwrap();
        assert_eq!(value["spec"]["egress"].as_array().unwrap().len(), 2);
        assert_eq!(
            endpoint_port("https://s3.eu-west-1.amazonaws.com"),
            Some(443)
        );
    }

    #[test]
    fn can_be_disabled() {
        let v = validated(json!({"version": "1", "networkPolicy": {"enabled": false}}));
        assert!(network_policy(&v).is_none());
        assert!(jobs_network_policy(&v).is_none());
    }
}
