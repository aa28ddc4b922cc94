//! NetworkPolicy `<name>-api`: API pods accept traffic on their HTTP port only from the ingress
//! controller's, monitoring's and the operator's namespaces, and reach only DNS and the database.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::{API_PORT_NAME, Component, api_pods_selector, child_meta};
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
    let mut dns_peer = namespace_peer("kube-system");
    dns_peer.pod_selector = Some(LabelSelector {
        match_labels: Some(BTreeMap::from([(
            "k8s-app".to_owned(),
            "kube-dns".to_owned(),
        )])),
        ..LabelSelector::default()
    });
    let dns = NetworkPolicyEgressRule {
        to: Some(vec![dns_peer]),
        ports: Some(vec![
            port("UDP", IntOrString::Int(53)),
            port("TCP", IntOrString::Int(53)),
        ]),
    };
    let database_peers = spec.database.cidrs.iter().map(|cidr| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: cidr.clone(),
            except: None,
        }),
        ..NetworkPolicyPeer::default()
    });
    let database = NetworkPolicyEgressRule {
        // No CIDRs: the database may be anywhere, but only on its port.
        to: (!spec.database.cidrs.is_empty()).then(|| database_peers.collect()),
        ports: Some(vec![port("TCP", IntOrString::Int(spec.database.port))]),
    };
    Some(NetworkPolicy {
        metadata: child_meta(v, v.names.network_policy(), Component::Api),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(api_pods_selector(v)),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress,
            egress: Some(vec![dns, database]),
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
    fn can_be_disabled() {
        assert!(
            network_policy(&validated(
                json!({"version": "1", "networkPolicy": {"enabled": false}})
            ))
            .is_none()
        );
    }
}
