//! Command lines of the control plane components. Pure: layout and ports in, argv out.
//! Every listener binds 127.0.0.1 and every client URL points at 127.0.0.1.
use super::layout::{Layout, Ports, flag_path};
use super::node::config as node_config;

/// The controllers the platform relies on; everything else (volume attachment, CSR signing,
/// …) has no use on one local node and stays off.
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
    // kubelet registers its Node with the `node.kubernetes.io/not-ready` taint, which only this
    // controller removes (and it marks the Node NotReady when kubelet stops reporting).
    "node-lifecycle-controller",
];

/// The Service range: kube-proxy routes ClusterIPs, so they come from the node's range
/// (198.18.0.0/15, never routed off the machine).
pub const SERVICE_CIDR: &str = node_config::SERVICE_CIDR;
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

pub fn apiserver(layout: &Layout, ports: &Ports) -> Vec<String> {
    let pki = |f: &str| layout.pki_file(f);
    vec![
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
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
        flag_path("service-account-key-file", &pki("service-account.pub")),
        flag_path(
            "service-account-signing-key-file",
            &pki("service-account.key"),
        ),
        "--profiling=false".into(),
        "--v=1".into(),
        // logs, exec and port-forward: the API server authenticates to kubelet with its own
        // client certificate, verifies kubelet's serving certificate, and connects to the
        // node's InternalIP (never a host name it would have to resolve).
        flag_path(
            "kubelet-client-certificate",
            &pki("apiserver-kubelet-client.crt"),
        ),
        flag_path("kubelet-client-key", &pki("apiserver-kubelet-client.key")),
        flag_path("kubelet-certificate-authority", &pki("ca.crt")),
        "--kubelet-preferred-address-types=InternalIP".into(),
    ]
}

pub fn controller_manager(layout: &Layout, ports: &Ports) -> Vec<String> {
    let kubeconfig = layout.component_kubeconfig("kube-controller-manager");
    vec![
        flag_path("kubeconfig", &kubeconfig),
        flag_path("authentication-kubeconfig", &kubeconfig),
        flag_path("authorization-kubeconfig", &kubeconfig),
        "--bind-address=127.0.0.1".into(),
        format!("--secure-port={}", ports.controller_manager),
        format!("--controllers={}", CONTROLLERS.join(",")),
        // Each controller acts as its own ServiceAccount with its bootstrap RBAC role.
        "--use-service-account-credentials=true".into(),
        flag_path("root-ca-file", &layout.pki_file("ca.crt")),
        format!("--service-cluster-ip-range={SERVICE_CIDR}"),
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
            apiserver(&l, &p),
            controller_manager(&l, &p),
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
        let args = apiserver(&l, &p);
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
        let args = controller_manager(&l, &p);
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
    fn services_are_in_the_node_range_and_the_api_server_reaches_kubelet() {
        let (l, p) = fixture();
        let gateway = Ports {
            apiserver_host: node_config::GATEWAY.parse().unwrap(),
            ..p
        };
        let args = apiserver(&l, &gateway);
        assert!(args.contains(&"--bind-address=198.18.0.1".into()));
        assert!(args.contains(&"--advertise-address=198.18.0.1".into()));
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--endpoint-reconciler-type")),
            "the kubernetes Service routes to the advertised address"
        );
        assert!(args.contains(&"--service-cluster-ip-range=198.19.0.0/24".into()));
        assert!(args.contains(&"--kubelet-preferred-address-types=InternalIP".into()));
        assert!(args.contains(&"--kubelet-certificate-authority=/s/pki/ca.crt".into()));
        let kcm = controller_manager(&l, &p);
        assert!(kcm.contains(&"--service-cluster-ip-range=198.19.0.0/24".into()));
        let list = kcm
            .iter()
            .find_map(|a| a.strip_prefix("--controllers="))
            .unwrap();
        assert!(list.split(',').any(|c| c == "node-lifecycle-controller"));
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
