//! Command lines of the control plane components. Pure: layout and ports in, argv out.
//! Every listener binds 127.0.0.1 and every client URL points at 127.0.0.1.
use std::path::Path;

use super::layout::{Layout, Ports, flag_path};
use super::node::{NodeKind, config as node_config};

/// The controllers the platform relies on; everything else (node lifecycle, volumes, CSR
/// signing, …) has no use without a real kubelet and stays off.
pub const CONTROLLERS: &[&str] = &[
    "deployment-controller",
    "replicaset-controller",
    "endpointslice-controller",
    "job-controller",
    "cronjob-controller",
    "garbage-collector-controller",
    "namespace-controller",
    // Creates each namespace's `default` ServiceAccount, which pod admission requires.
    "serviceaccount-controller",
    // Publishes kube-root-ca.crt into every namespace for in-cluster clients.
    "root-ca-certificate-publisher-controller",
    "ttl-after-finished-controller",
    "pod-garbage-collector-controller",
    // Aggregates CRD permissions into the admin/edit/view roles.
    "clusterrole-aggregation-controller",
    // Binds claims (e.g. the backup volume) to pre-created hostPath PersistentVolumes.
    "persistentvolume-binder-controller",
    // Remove the in-use finalizers that admission puts on every claim and volume; without them
    // a deleted claim, its namespace and its volume stay Terminating for ever.
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
];

/// The controllers for a node kind: a real kubelet registers its Node with the
/// `node.kubernetes.io/not-ready` taint, which only the node lifecycle controller removes (and it
/// marks the Node NotReady when kubelet stops reporting).
pub fn controllers(node: NodeKind) -> Vec<&'static str> {
    let mut list = CONTROLLERS.to_vec();
    if node == NodeKind::Kubelet {
        list.push("node-lifecycle-controller");
    }
    list
}

/// With the node agent, Service ClusterIPs are only bookkeeping (it routes by EndpointSlices);
/// nothing ever connects to them.
pub const SERVICE_CIDR: &str = "10.96.0.0/16";

/// The Service range: on a real node kube-proxy routes ClusterIPs, so they come from the node's
/// range (198.18.0.0/15, never routed off the machine).
pub fn service_cidr(node: NodeKind) -> &'static str {
    match node {
        NodeKind::Agent => SERVICE_CIDR,
        NodeKind::Kubelet => node_config::SERVICE_CIDR,
    }
}
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

pub fn etcd(layout: &Layout, ports: &Ports) -> Vec<String> {
    let client = format!("https://127.0.0.1:{}", ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
    vec![
        "--name=fp-local".into(),
        flag_path("data-dir", &layout.etcd_data()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=fp-local={peer}"),
        "--initial-cluster-state=new".into(),
        flag_path("cert-file", &layout.pki_file("etcd-server.crt")),
        flag_path("key-file", &layout.pki_file("etcd-server.key")),
        flag_path("trusted-ca-file", &layout.pki_file("etcd-ca.crt")),
        "--client-cert-auth=true".into(),
        // Throwaway test data on a shared 2-core machine: durability buys nothing here.
        "--unsafe-no-fsync=true".into(),
        "--log-level=warn".into(),
    ]
}

pub fn apiserver(layout: &Layout, ports: &Ports, node: NodeKind) -> Vec<String> {
    let pki = |f: &str| layout.pki_file(f);
    let mut args = vec![
        format!("--etcd-servers=https://127.0.0.1:{}", ports.etcd_client),
        flag_path("etcd-cafile", &pki("etcd-ca.crt")),
        flag_path("etcd-certfile", &pki("apiserver-etcd-client.crt")),
        flag_path("etcd-keyfile", &pki("apiserver-etcd-client.key")),
        format!("--bind-address={}", ports.apiserver_host),
        format!("--advertise-address={}", ports.apiserver_host),
        format!("--secure-port={}", ports.apiserver),
        flag_path("tls-cert-file", &pki("apiserver.crt")),
        flag_path("tls-private-key-file", &pki("apiserver.key")),
        flag_path("client-ca-file", &pki("ca.crt")),
        flag_path("requestheader-client-ca-file", &pki("front-proxy-ca.crt")),
        format!(
            "--requestheader-allowed-names={}",
            super::bootstrap::FRONT_PROXY_CLIENT
        ),
        "--requestheader-username-headers=X-Remote-User".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        flag_path("proxy-client-cert-file", &pki("front-proxy-client.crt")),
        flag_path("proxy-client-key-file", &pki("front-proxy-client.key")),
        "--authorization-mode=RBAC".into(),
        "--anonymous-auth=false".into(),
        format!("--service-cluster-ip-range={}", service_cidr(node)),
        format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
        flag_path("service-account-key-file", &pki("service-account.pub")),
        flag_path(
            "service-account-signing-key-file",
            &pki("service-account.key"),
        ),
        "--profiling=false".into(),
        "--v=1".into(),
    ];
    if node == NodeKind::Agent {
        // With a loopback advertise address no kubernetes Endpoints may be written (their
        // validation refuses loopback), so the reconciler is off; in-cluster clients get
        // 127.0.0.1 from the node agent instead. A real node's API server advertises the
        // bridge address, and the `kubernetes` Service routes to it.
        args.push("--endpoint-reconciler-type=none".into());
    }
    if node == NodeKind::Kubelet {
        // logs, exec and port-forward: the API server authenticates to kubelet with its own
        // client certificate, verifies kubelet's serving certificate, and connects to the
        // node's InternalIP (never a host name it would have to resolve).
        args.extend([
            flag_path(
                "kubelet-client-certificate",
                &pki("apiserver-kubelet-client.crt"),
            ),
            flag_path("kubelet-client-key", &pki("apiserver-kubelet-client.key")),
            flag_path("kubelet-certificate-authority", &pki("ca.crt")),
            "--kubelet-preferred-address-types=InternalIP".into(),
        ]);
    }
    args
}

pub fn controller_manager(layout: &Layout, ports: &Ports, node: NodeKind) -> Vec<String> {
    let kubeconfig = layout.component_kubeconfig("kube-controller-manager");
    vec![
        flag_path("kubeconfig", &kubeconfig),
        flag_path("authentication-kubeconfig", &kubeconfig),
        flag_path("authorization-kubeconfig", &kubeconfig),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.controller_manager),
        format!("--controllers={}", controllers(node).join(",")),
        // Each controller acts as its own ServiceAccount with its bootstrap RBAC role.
        "--use-service-account-credentials=true".into(),
        flag_path("root-ca-file", &layout.pki_file("ca.crt")),
        format!("--service-cluster-ip-range={}", service_cidr(node)),
        "--leader-elect=false".into(),
        "--profiling=false".into(),
        "--v=1".into(),
    ]
}

pub fn scheduler(layout: &Layout, ports: &Ports) -> Vec<String> {
    let kubeconfig = layout.component_kubeconfig("kube-scheduler");
    vec![
        flag_path("kubeconfig", &kubeconfig),
        flag_path("authentication-kubeconfig", &kubeconfig),
        flag_path("authorization-kubeconfig", &kubeconfig),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.scheduler),
        "--leader-elect=false".into(),
        "--profiling=false".into(),
        "--v=1".into(),
    ]
}

/// Pods each local Node admits. Above kubelet's 110: `cargo xtask bench operator` runs two API
/// pods for each of its 200 FootballPredictions during their rollouts (host processes with tiny
/// requests; memory, not the pod count, is what limits this machine).
pub const NODE_MAX_PODS: usize = 250;
// 200 instances with both colors running need 400 pods on the 2 default nodes.
const _: () = assert!(2 * NODE_MAX_PODS >= 400);

/// The node agent acts with kubelet's permissions (its own identity, bound to system:node)
/// and keeps per-pod state inside the cluster's state directory.
pub fn node_agent(layout: &Layout, nodes: usize) -> Vec<String> {
    node_agent_for(
        &layout.component_kubeconfig("node-agent"),
        &layout.root.join("node-agent"),
        nodes,
        None,
    )
}

/// The node agent against any loopback cluster; `name_prefix` keeps its Nodes apart from
/// those another agent registered in the same cluster.
pub fn node_agent_for(
    kubeconfig: &Path,
    state_dir: &Path,
    nodes: usize,
    name_prefix: Option<&str>,
) -> Vec<String> {
    let mut args = vec![
        flag_path("kubeconfig", kubeconfig),
        flag_path("state-dir", state_dir),
        format!("--nodes={nodes}"),
        format!("--max-pods={NODE_MAX_PODS}"),
    ];
    if let Some(prefix) = name_prefix {
        args.push(format!("--node-name-prefix={prefix}"));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture() -> (Layout, Ports) {
        let ports = Ports {
            apiserver_host: std::net::Ipv4Addr::LOCALHOST,
            etcd_client: 2001,
            etcd_peer: 2002,
            apiserver: 2003,
            controller_manager: 2004,
            scheduler: 2005,
        };
        (Layout::new(PathBuf::from("/s")), ports)
    }

    fn urls(args: &[String]) -> Vec<&str> {
        args.iter()
            .filter_map(|a| a.split_once('=').map(|(_, v)| v))
            .flat_map(|v| v.split(','))
            .filter(|v| v.contains("://"))
            .collect()
    }

    #[test]
    fn every_url_and_bind_address_is_loopback() {
        let (l, p) = fixture();
        for args in [
            etcd(&l, &p),
            apiserver(&l, &p, NodeKind::Agent),
            controller_manager(&l, &p, NodeKind::Agent),
            scheduler(&l, &p),
        ] {
            for url in urls(&args) {
                let host = url.split("://").nth(1).unwrap_or_default();
                assert!(
                    host.starts_with("127.0.0.1:") || url == SERVICE_ACCOUNT_ISSUER,
                    "{url} in {args:?}"
                );
            }
            for a in args.iter().filter(|a| a.contains("address=")) {
                assert!(a.ends_with("=127.0.0.1"), "{a}");
            }
        }
    }

    #[test]
    fn apiserver_uses_rbac_client_certs_and_service_account_keys() {
        let (l, p) = fixture();
        let args = apiserver(&l, &p, NodeKind::Agent);
        for expected in [
            "--authorization-mode=RBAC",
            "--anonymous-auth=false",
            "--secure-port=2003",
            "--etcd-servers=https://127.0.0.1:2001",
            "--client-ca-file=/s/pki/ca.crt",
            "--service-account-signing-key-file=/s/pki/service-account.key",
            "--service-account-key-file=/s/pki/service-account.pub",
        ] {
            assert!(args.iter().any(|a| a == expected), "missing {expected}");
        }
    }

    #[test]
    fn controller_manager_runs_exactly_the_listed_controllers() {
        let (l, p) = fixture();
        let args = controller_manager(&l, &p, NodeKind::Agent);
        let list = args
            .iter()
            .find_map(|a| a.strip_prefix("--controllers="))
            .unwrap();
        let names: Vec<&str> = list.split(',').collect();
        for required in [
            "deployment-controller",
            "replicaset-controller",
            "endpointslice-controller",
            "job-controller",
            "cronjob-controller",
            "garbage-collector-controller",
            "namespace-controller",
        ] {
            assert!(names.contains(&required), "{required}");
        }
        assert!(!names.contains(&"*"), "no default set");
        assert!(
            args.contains(&"--kubeconfig=/s/kubeconfigs/kube-controller-manager.kubeconfig".into())
        );
    }

    #[test]
    fn node_agent_of_the_local_cluster_uses_its_own_identity_and_default_names() {
        let (l, _) = fixture();
        assert_eq!(
            node_agent(&l, 2),
            [
                "--kubeconfig=/s/kubeconfigs/node-agent.kubeconfig",
                "--state-dir=/s/node-agent",
                "--nodes=2",
                // Enough for the operator bench's pods.
                "--max-pods=250",
            ]
        );
        let other = node_agent_for(Path::new("/p/k"), Path::new("/p/agent"), 1, Some("fp-up"));
        assert_eq!(other.last().unwrap(), "--node-name-prefix=fp-up");
    }

    #[test]
    fn a_real_node_moves_services_into_the_node_range_and_lets_the_api_server_reach_kubelet() {
        let (l, p) = fixture();
        let agent = apiserver(&l, &p, NodeKind::Agent);
        assert!(agent.contains(&"--service-cluster-ip-range=10.96.0.0/16".into()));
        assert!(!agent.iter().any(|a| a.starts_with("--kubelet-")));
        assert!(agent.contains(&"--endpoint-reconciler-type=none".into()));
        let gateway = Ports {
            apiserver_host: node_config::GATEWAY.parse().unwrap(),
            ..p
        };
        let real = apiserver(&l, &gateway, NodeKind::Kubelet);
        assert!(real.contains(&"--bind-address=198.18.0.1".into()));
        assert!(real.contains(&"--advertise-address=198.18.0.1".into()));
        assert!(
            !real
                .iter()
                .any(|a| a.starts_with("--endpoint-reconciler-type"))
        );
        assert!(real.contains(&"--service-cluster-ip-range=198.19.0.0/24".into()));
        assert!(real.contains(&"--kubelet-preferred-address-types=InternalIP".into()));
        assert!(real.contains(&"--kubelet-certificate-authority=/s/pki/ca.crt".into()));
        let kcm = controller_manager(&l, &p, NodeKind::Kubelet);
        assert!(kcm.contains(&"--service-cluster-ip-range=198.19.0.0/24".into()));
        let list = kcm
            .iter()
            .find_map(|a| a.strip_prefix("--controllers="))
            .unwrap();
        assert!(list.ends_with(",node-lifecycle-controller"));
        let agent = controller_manager(&l, &p, NodeKind::Agent);
        assert!(!agent.iter().any(|a| a.contains("node-lifecycle")));
    }

    #[test]
    fn etcd_requires_client_certificates() {
        let (l, p) = fixture();
        let args = etcd(&l, &p);
        assert!(args.contains(&"--client-cert-auth=true".into()));
        assert!(args.contains(&"--trusted-ca-file=/s/pki/etcd-ca.crt".into()));
        assert!(args.contains(&"--data-dir=/s/etcd".into()));
    }
}
