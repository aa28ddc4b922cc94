//! The API server endpoint (from the agent's kubeconfig) and the per-pod kubeconfig that gives a
//! pod process in-cluster access: the server on 127.0.0.1, the cluster CA and the pod's service
//! account token file. kube-rs (`Config::infer`) and kubectl read `KUBECONFIG` first.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use kube::config::Kubeconfig;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("kubeconfig has no current context with a cluster server")]
    NoCluster,
    #[error("API server URL {0:?} is not on a loopback address; nothing may leave loopback")]
    NotLoopback(String),
    #[error("API server URL {0:?} cannot be parsed")]
    BadUrl(String),
    #[error("rendering pod kubeconfig: {0}")]
    Render(#[from] serde_norway::Error),
}

/// How pods verify the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// Base64 PEM as in `certificate-authority-data`.
    Data(String),
    File(PathBuf),
    InsecureSkipVerify,
    /// No CA configured: the system roots.
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiServerEndpoint {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub ca: CaSource,
}

impl ApiServerEndpoint {
    /// The current context's cluster. Relative CA paths are relative to the kubeconfig's dir.
    pub fn from_kubeconfig(
        config: &Kubeconfig,
        kubeconfig_dir: &Path,
    ) -> Result<Self, KubeconfigError> {
        let context_cluster = config
            .current_context
            .as_ref()
            .and_then(|current| config.contexts.iter().find(|c| &c.name == current))
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone());
        let named = match context_cluster {
            Some(name) => config.clusters.iter().find(|c| c.name == name),
            None => config.clusters.first(),
        };
        let cluster = named
            .and_then(|c| c.cluster.as_ref())
            .ok_or(KubeconfigError::NoCluster)?;
        let url = cluster.server.clone().ok_or(KubeconfigError::NoCluster)?;
        let ca = if cluster.insecure_skip_tls_verify == Some(true) {
            CaSource::InsecureSkipVerify
        } else if let Some(data) = &cluster.certificate_authority_data {
            CaSource::Data(data.clone())
        } else if let Some(file) = &cluster.certificate_authority {
            CaSource::File(kubeconfig_dir.join(file))
        } else {
            CaSource::System
        };
        Self::new(&url, ca)
    }

    /// Checks that `url` points at loopback.
    pub fn new(url: &str, ca: CaSource) -> Result<Self, KubeconfigError> {
        let (host, port) = host_and_port(url).ok_or_else(|| KubeconfigError::BadUrl(url.into()))?;
        if !is_loopback_host(&host) {
            return Err(KubeconfigError::NotLoopback(url.into()));
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_string(),
            host,
            port,
            ca,
        })
    }
}

/// Host and port of an `http(s)://host[:port][/path]` URL.
pub fn host_and_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit('@').next()?;
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (authority, default_port),
        }
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The kubeconfig a pod process gets through `KUBECONFIG`.
pub fn pod_kubeconfig_yaml(
    endpoint: &ApiServerEndpoint,
    token_file: &Path,
    namespace: &str,
) -> Result<String, KubeconfigError> {
    let mut cluster = json!({ "server": endpoint.url });
    match &endpoint.ca {
        CaSource::Data(data) => cluster["certificate-authority-data"] = json!(data),
        CaSource::File(path) => {
            cluster["certificate-authority"] = json!(path.display().to_string())
        }
        CaSource::InsecureSkipVerify => cluster["insecure-skip-tls-verify"] = json!(true),
        CaSource::System => {}
    }
    let document = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "in-cluster", "cluster": cluster }],
        "users": [{ "name": "service-account", "user": { "tokenFile": token_file.display().to_string() } }],
        "contexts": [{
            "name": "in-cluster",
            "context": { "cluster": "in-cluster", "user": "service-account", "namespace": namespace }
        }],
        "current-context": "in-cluster",
    });
    Ok(serde_norway::to_string(&document)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_ports() {
        assert_eq!(
            host_and_port("https://127.0.0.1:6443"),
            Some(("127.0.0.1".into(), 6443))
        );
        assert_eq!(
            host_and_port("https://localhost/"),
            Some(("localhost".into(), 443))
        );
        assert_eq!(
            host_and_port("https://[::1]:7443/x"),
            Some(("::1".into(), 7443))
        );
        assert_eq!(
            host_and_port("http://127.0.0.2"),
            Some(("127.0.0.2".into(), 80))
        );
        assert_eq!(host_and_port("ftp://x"), None);
        assert_eq!(host_and_port("https://h:notaport"), None);
    }

    #[test]
    fn refuses_non_loopback_servers() {
        assert!(ApiServerEndpoint::new("https://127.0.0.1:6443", CaSource::System).is_ok());
        assert!(ApiServerEndpoint::new("https://localhost:6443", CaSource::System).is_ok());
        assert!(matches!(
            ApiServerEndpoint::new("https://10.1.2.3:6443", CaSource::System),
            Err(KubeconfigError::NotLoopback(_))
        ));
        assert!(matches!(
            ApiServerEndpoint::new("https://apiserver.example:6443", CaSource::System),
            Err(KubeconfigError::NotLoopback(_))
        ));
    }

    #[test]
    fn reads_endpoint_from_kubeconfig_and_renders_pod_config() {
        let yaml = r#"
apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: "https://10.0.0.1:6443"}
- name: local
  cluster: {server: "https://127.0.0.1:16443", certificate-authority: pki/ca.crt}
contexts:
- name: admin
  context: {cluster: local, user: admin}
current-context: admin
users:
- name: admin
  user: {token: abc}
"#;
        let config: Kubeconfig = serde_norway::from_str(yaml).unwrap();
        let endpoint = ApiServerEndpoint::from_kubeconfig(&config, Path::new("/cluster")).unwrap();
        assert_eq!(endpoint.port, 16443);
        assert_eq!(
            endpoint.ca,
            CaSource::File(PathBuf::from("/cluster/pki/ca.crt"))
        );

        let rendered =
            pod_kubeconfig_yaml(&endpoint, Path::new("/pods/p/volumes/sa/token"), "fp").unwrap();
        let parsed: Kubeconfig = serde_norway::from_str(&rendered).unwrap();
        let again = ApiServerEndpoint::from_kubeconfig(&parsed, Path::new("/")).unwrap();
        assert_eq!(again.url, "https://127.0.0.1:16443");
        assert_eq!(
            again.ca,
            CaSource::File(PathBuf::from("/cluster/pki/ca.crt"))
        );
        let user = parsed.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.token_file.as_deref(), Some("/pods/p/volumes/sa/token"));
        assert_eq!(
            parsed.contexts[0]
                .context
                .as_ref()
                .unwrap()
                .namespace
                .as_deref(),
            Some("fp")
        );
    }
}
