//! Writing the PKI and kubeconfigs of a fresh cluster into its state directory.
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::layout::{Layout, Ports};
use super::node::config::{self as node_config, Names};
use crate::kubeconfig::Kubeconfig;
use crate::pki::{self, Authority, ClientIdentity};

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

pub const ADMIN_USER: &str = "fp-admin";
pub const CLUSTER_NAME: &str = "fp-local";
/// Common name of the front-proxy client certificate (`--requestheader-allowed-names`).
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

/// Writes `contents` readable by the owner only when `secret` (private keys, kubeconfigs).
pub fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), BootstrapError> {
    let err = |source| BootstrapError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(err)?;
    file.write_all(contents.as_bytes()).map_err(err)
}

/// The identities of the components that talk to the API server.
fn component_identities() -> [(&'static str, ClientIdentity); 3] {
    [
        (
            "admin",
            ClientIdentity::new(ADMIN_USER, &["system:masters"]),
        ),
        (
            "kube-controller-manager",
            ClientIdentity::new("system:kube-controller-manager", &[]),
        ),
        (
            "kube-scheduler",
            ClientIdentity::new("system:kube-scheduler", &[]),
        ),
    ]
}

/// Generates both CAs, the serving and client certificates, the service-account key pair
/// and a kubeconfig per component, the node's kubelet and kube-proxy included.
pub fn write_pki_and_kubeconfigs(
    layout: &Layout,
    ports: &Ports,
    node: &Names,
) -> Result<(), BootstrapError> {
    let put = |name: &str, pem: &str, secret: bool| write_file(&layout.pki_file(name), pem, secret);

    let etcd_ca = Authority::new("fp-local-etcd-ca")?;
    put("etcd-ca.crt", &etcd_ca.cert_pem, false)?;
    let etcd_server = etcd_ca.server("etcd", &["127.0.0.1", "localhost"])?;
    put("etcd-server.crt", &etcd_server.cert_pem, false)?;
    put("etcd-server.key", &etcd_server.key_pem, true)?;
    let etcd_client = etcd_ca.client(&ClientIdentity::new("kube-apiserver-etcd-client", &[]))?;
    put("apiserver-etcd-client.crt", &etcd_client.cert_pem, false)?;
    put("apiserver-etcd-client.key", &etcd_client.key_pem, true)?;

    let ca = Authority::new("fp-local-ca")?;
    put("ca.crt", &ca.cert_pem, false)?;
    // In-cluster names are listed so a client that validates them succeeds. Pods reach the API
    // server at the `kubernetes` Service's ClusterIP (the first of the range), which kube-proxy
    // forwards to the bridge address it listens on.
    let sans = [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        node_config::GATEWAY,
        node_config::KUBERNETES_SERVICE_IP,
    ];
    let serving = ca.server("kube-apiserver", &sans)?;
    put("apiserver.crt", &serving.cert_pem, false)?;
    put("apiserver.key", &serving.key_pem, true)?;

    // Front-proxy CA: the API server authenticates its aggregation proxy with it and
    // publishes it (requestheader-client-ca-file) for the other components' delegated authn.
    let front_proxy_ca = Authority::new("fp-local-front-proxy-ca")?;
    put("front-proxy-ca.crt", &front_proxy_ca.cert_pem, false)?;
    let proxy_client = front_proxy_ca.client(&ClientIdentity::new(FRONT_PROXY_CLIENT, &[]))?;
    put("front-proxy-client.crt", &proxy_client.cert_pem, false)?;
    put("front-proxy-client.key", &proxy_client.key_pem, true)?;

    let sa = pki::service_account_keys()?;
    put("service-account.key", &sa.private_pem, true)?;
    put("service-account.pub", &sa.public_pem, false)?;

    let server = ports.apiserver_url();
    let mut identities = component_identities().to_vec();
    // kubelet as its Node (system:node:<name> in system:nodes, bound to the system:node role by
    // `node_rbac_manifest`), kube-proxy as the user the built-in system:node-proxier binding
    // names, and the API server's client for kubelet's API.
    identities.push((
        "kubelet",
        ClientIdentity::new(&format!("system:node:{}", node.node), &["system:nodes"]),
    ));
    identities.push(("kube-proxy", ClientIdentity::new("system:kube-proxy", &[])));
    let serving = ca.server(&node.node, &[node_config::GATEWAY, &node.node])?;
    put("kubelet.crt", &serving.cert_pem, false)?;
    put("kubelet.key", &serving.key_pem, true)?;
    let client = ca.client(&ClientIdentity::new(
        "kube-apiserver-kubelet-client",
        &["system:masters"],
    ))?;
    put("apiserver-kubelet-client.crt", &client.cert_pem, false)?;
    put("apiserver-kubelet-client.key", &client.key_pem, true)?;
    for (component, identity) in identities {
        let client = ca.client(&identity)?;
        let text = Kubeconfig {
            cluster_name: CLUSTER_NAME,
            server: &server,
            ca_pem: &ca.cert_pem,
            user: &identity.user,
            client_cert_pem: &client.cert_pem,
            client_key_pem: &client.key_pem,
        }
        .render();
        let path = if component == "admin" {
            layout.admin_kubeconfig()
        } else {
            layout.component_kubeconfig(component)
        };
        write_file(&path, &text, true)?;
    }
    Ok(())
}

/// RBAC that the built-in bootstrap policy does not already give: the node's kubelet acts with
/// kubelet's role (the API server runs RBAC only, without
/// the Node authorizer that would otherwise scope it).
pub fn node_rbac_manifest(names: &Names) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: fp-kubelet\n  labels:\n    app.kubernetes.io/managed-by: xtask\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: system:node\nsubjects:\n- apiGroup: rbac.authorization.k8s.io\n  kind: User\n  name: system:node:{}\n",
        names.node
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_every_file_the_flags_refer_to_with_private_keys_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().to_path_buf());
        let ports = Ports::pick().unwrap();
        let names = Names::for_state_dir(dir.path());
        write_pki_and_kubeconfigs(&layout, &ports, &names).unwrap();
        let args = [
            super::super::flags::etcd(&layout, &ports),
            super::super::flags::apiserver(&layout, &ports),
            super::super::flags::controller_manager(&layout, &ports),
            super::super::flags::scheduler(&layout, &ports),
        ];
        let root = dir.path().display().to_string();
        let referenced: Vec<&str> = args
            .iter()
            .flatten()
            .filter_map(|a| a.split_once('=').map(|(_, v)| v))
            .filter(|v| v.starts_with(&root) && !v.ends_with("/etcd"))
            .collect();
        assert!(referenced.len() >= 12, "{referenced:?}");
        for path in referenced {
            let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let mode = meta.permissions().mode() & 0o777;
            if path.ends_with(".key") || path.ends_with(".kubeconfig") {
                assert_eq!(mode, 0o600, "{path}");
            }
        }
        for component in ["kubelet", "kube-proxy"] {
            let path = layout.component_kubeconfig(component);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let admin = std::fs::read_to_string(layout.admin_kubeconfig()).unwrap();
        assert!(admin.contains(&format!("server: https://127.0.0.1:{}", ports.apiserver)));
    }

    #[test]
    fn rbac_binds_the_kubelet_to_the_node_role_only() {
        let names = Names::for_state_dir(Path::new("/s"));
        let m = node_rbac_manifest(&names);
        assert!(m.contains("  name: system:node\n"));
        assert!(m.contains(&format!("  name: system:node:{}\n", names.node)));
        assert!(!m.contains("cluster-admin"));
    }
}
