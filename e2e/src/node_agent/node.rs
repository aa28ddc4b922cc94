//! The Nodes the agent registers: object and status builders (pure) and the registration and
//! heartbeat calls (a coordination.k8s.io Lease in kube-node-lease plus node status).

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

pub const NODE_IP: &str = "127.0.0.1";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_DURATION_SECONDS: i32 = 40;
/// Label on every Node this agent registers.
pub const AGENT_LABEL: &str = "footballprediction.io/node-agent";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("registering node {node}: {source}")]
    Register { node: String, source: kube::Error },
    #[error("updating status of node {node}: {source}")]
    Status { node: String, source: kube::Error },
    #[error("renewing lease of node {node}: {source}")]
    Lease { node: String, source: kube::Error },
}

/// What every registered Node reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    pub cpu: String,
    pub memory: String,
    pub pods: String,
    pub ephemeral_storage: String,
    pub kubelet_version: String,
    /// Where the log endpoint listens (kubelet's port), reported as the kubelet endpoint.
    pub kubelet_port: i32,
}

impl NodeSettings {
    pub fn resources(&self) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(self.cpu.clone())),
            ("memory".to_string(), Quantity(self.memory.clone())),
            ("pods".to_string(), Quantity(self.pods.clone())),
            (
                "ephemeral-storage".to_string(),
                Quantity(self.ephemeral_storage.clone()),
            ),
        ])
    }

    /// Allocatable as plain strings, the default for unset limits in the downward API.
    pub fn allocatable_strings(&self) -> BTreeMap<String, String> {
        self.resources()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    }
}

/// Node names: `<prefix>-0`, `<prefix>-1`, …
pub fn node_names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// The Node as registered (metadata and status).
pub fn node_object(name: &str, settings: &NodeSettings, now: Timestamp) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), name.to_string()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
                ("kubernetes.io/arch".to_string(), go_arch().to_string()),
                (AGENT_LABEL.to_string(), "true".to_string()),
            ])),
            ..Default::default()
        },
        spec: None,
        status: Some(node_status(name, settings, true, "", now)),
    }
}

/// Status with the four kubelet conditions. `not_ready_message` explains a NotReady node.
pub fn node_status(
    name: &str,
    settings: &NodeSettings,
    ready: bool,
    not_ready_message: &str,
    now: Timestamp,
) -> NodeStatus {
    let condition = |type_: &str, status: bool, reason: &str, message: &str| NodeCondition {
        type_: type_.to_string(),
        status: if status { "True" } else { "False" }.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    };
    let ready_condition = if ready {
        condition(
            "Ready",
            true,
            "KubeletReady",
            "fp-node-agent is posting ready status",
        )
    } else {
        condition("Ready", false, "KubeletNotReady", not_ready_message)
    };
    NodeStatus {
        capacity: Some(settings.resources()),
        allocatable: Some(settings.resources()),
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "fp-node-agent has sufficient memory available",
            ),
            condition(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "fp-node-agent has no disk pressure",
            ),
            condition(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "fp-node-agent has sufficient PID available",
            ),
            ready_condition,
        ]),
        // Only the loopback IP: the API server prefers a `Hostname` address when it connects to
        // a node (logs, exec), and resolving a made-up host name could send a DNS query off
        // the machine.
        addresses: Some(vec![NodeAddress {
            type_: "InternalIP".to_string(),
            address: NODE_IP.to_string(),
        }]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: settings.kubelet_port,
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: go_arch().to_string(),
            operating_system: "linux".to_string(),
            os_image: "fp-node-agent host processes".to_string(),
            kernel_version: kernel_version(),
            kubelet_version: settings.kubelet_version.clone(),
            kube_proxy_version: String::new(),
            container_runtime_version: format!("fp-node-agent://{}", env!("CARGO_PKG_VERSION")),
            machine_id: name.to_string(),
            system_uuid: name.to_string(),
            boot_id: String::new(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The architecture as Kubernetes (Go) names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The heartbeat Lease, owned by its Node so it goes when the Node goes.
pub fn lease_object(node: &Node, now: Timestamp) -> Lease {
    let name = node.name_any();
    Lease {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            owner_references: node.metadata.uid.as_ref().map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".to_string(),
                    kind: "Node".to_string(),
                    name: name.clone(),
                    uid: uid.clone(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name),
            lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
            renew_time: Some(MicroTime(now)),
            ..Default::default()
        }),
    }
}

/// Creates the Node (or adopts an existing one of that name) and posts a Ready status.
pub async fn register(
    client: &Client,
    name: &str,
    settings: &NodeSettings,
) -> Result<Node, NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let desired = node_object(name, settings, Timestamp::now());
    let register_error = |source| NodeError::Register {
        node: name.to_string(),
        source,
    };
    match nodes.create(&PostParams::default(), &desired).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let labels = json!({ "metadata": { "labels": desired.metadata.labels } });
            nodes
                .patch(name, &PatchParams::default(), &Patch::Merge(&labels))
                .await
                .map_err(register_error)?;
        }
        Err(source) => return Err(register_error(source)),
    }
    let node = post_status(client, name, settings, true, "").await?;
    make_schedulable(client, node).await
}

/// Taints the node lifecycle controller manages from the Ready condition. That controller does
/// not run on the local control plane (there is no kubelet to watch), so the agent plays its
/// part for its own nodes: not-ready/unreachable taints go when the node is Ready.
pub const CONDITION_TAINTS: [&str; 2] = [
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
];

/// The node's taints without the condition taints, or `None` when there is nothing to remove.
pub fn taints_without_condition_taints(node: &Node) -> Option<Vec<Taint>> {
    let taints = node.spec.as_ref()?.taints.as_ref()?;
    let kept: Vec<Taint> = taints
        .iter()
        .filter(|t| !CONDITION_TAINTS.contains(&t.key.as_str()))
        .cloned()
        .collect();
    (kept.len() != taints.len()).then_some(kept)
}

/// The node's taints plus `not-ready:NoSchedule`, so nothing new is scheduled to a stopped agent.
pub fn taints_with_not_ready(node: &Node) -> Vec<Taint> {
    let mut taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    if !taints.iter().any(|t| t.key == CONDITION_TAINTS[0]) {
        taints.push(Taint {
            key: CONDITION_TAINTS[0].to_string(),
            effect: "NoSchedule".to_string(),
            ..Default::default()
        });
    }
    taints
}

async fn set_taints(client: &Client, node: &Node, taints: &[Taint]) -> Result<Node, kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({ "spec": { "taints": taints } });
    nodes
        .patch(
            &node.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
}

/// Removes condition taints from a Ready node.
pub async fn make_schedulable(client: &Client, node: Node) -> Result<Node, NodeError> {
    match taints_without_condition_taints(&node) {
        Some(kept) => {
            set_taints(client, &node, &kept)
                .await
                .map_err(|source| NodeError::Register {
                    node: node.name_any(),
                    source,
                })
        }
        None => Ok(node),
    }
}

/// Marks a node NotReady and unschedulable (agent shutdown).
pub async fn mark_not_ready(
    client: &Client,
    name: &str,
    settings: &NodeSettings,
    message: &str,
) -> Result<(), NodeError> {
    let node = post_status(client, name, settings, false, message).await?;
    set_taints(client, &node, &taints_with_not_ready(&node))
        .await
        .map(|_| ())
        .map_err(|source| NodeError::Status {
            node: name.to_string(),
            source,
        })
}

/// Replaces the Node's status (the agent is its only writer).
pub async fn post_status(
    client: &Client,
    name: &str,
    settings: &NodeSettings,
    ready: bool,
    not_ready_message: &str,
) -> Result<Node, NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let status = node_status(name, settings, ready, not_ready_message, Timestamp::now());
    let patch = json!({ "status": status });
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| NodeError::Status {
            node: name.to_string(),
            source,
        })
}

/// Renews (or creates) the Node's heartbeat Lease.
pub async fn renew_lease(client: &Client, node: &Node) -> Result<(), NodeError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let name = node.name_any();
    let lease = lease_object(node, Timestamp::now());
    let lease_error = |source| NodeError::Lease {
        node: name.clone(),
        source,
    };
    let patch = json!({ "spec": lease.spec });
    match leases
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => leases
            .create(&PostParams::default(), &lease)
            .await
            .map(|_| ())
            .map_err(lease_error),
        Err(source) => Err(lease_error(source)),
    }
}

/// A reference to the Node for events.
pub fn node_reference(node: &Node) -> k8s_openapi::api::core::v1::ObjectReference {
    node.object_ref(&())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;

    fn settings() -> NodeSettings {
        NodeSettings {
            cpu: "16".into(),
            memory: "32Gi".into(),
            pods: "110".into(),
            ephemeral_storage: "100Gi".into(),
            kubelet_version: "v1.37.2".into(),
            kubelet_port: 10250,
        }
    }

    #[test]
    fn names_nodes_by_prefix() {
        assert_eq!(node_names("fp-node", 2), vec!["fp-node-0", "fp-node-1"]);
    }

    #[test]
    fn ready_node_reports_capacity_and_loopback_address() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let node = node_object("fp-node-0", &settings(), now);
        let labels = node.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "fp-node-0");
        assert_eq!(labels[AGENT_LABEL], "true");
        let status = node.status.unwrap();
        assert_eq!(status.allocatable.as_ref().unwrap()["pods"].0, "110");
        assert_eq!(status.capacity.as_ref().unwrap()["cpu"].0, "16");
        let addresses = status.addresses.unwrap();
        assert_eq!(
            addresses.len(),
            1,
            "no host name the API server would resolve"
        );
        assert_eq!(
            (addresses[0].type_.as_str(), addresses[0].address.as_str()),
            ("InternalIP", NODE_IP)
        );
        let conditions = status.conditions.unwrap();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
        assert!(
            conditions
                .iter()
                .filter(|c| c.type_ != "Ready")
                .all(|c| c.status == "False")
        );
    }

    #[test]
    fn not_ready_status_explains_itself() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let status = node_status("n", &settings(), false, "fp-node-agent stopped", now);
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.message.as_deref(), Some("fp-node-agent stopped"));
    }

    #[test]
    fn condition_taints_come_and_go() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut node = node_object("n", &settings(), now);
        assert_eq!(taints_without_condition_taints(&node), None);
        node.spec = Some(NodeSpec {
            taints: Some(vec![
                Taint {
                    key: "node.kubernetes.io/not-ready".into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                },
                Taint {
                    key: "dedicated".into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        let kept = taints_without_condition_taints(&node).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].key, "dedicated");
        assert_eq!(taints_with_not_ready(&node).len(), 2, "not duplicated");
        node.spec.as_mut().unwrap().taints = Some(kept);
        let tainted = taints_with_not_ready(&node);
        assert_eq!(tainted.len(), 2);
        assert_eq!(tainted[1].key, "node.kubernetes.io/not-ready");
    }

    #[test]
    fn lease_is_owned_by_its_node() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut node = node_object("fp-node-1", &settings(), now);
        node.metadata.uid = Some("uid-1".into());
        let lease = lease_object(&node, now);
        assert_eq!(lease.metadata.namespace.as_deref(), Some(LEASE_NAMESPACE));
        let owner = &lease.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "uid-1"));
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("fp-node-1"));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
    }
}
