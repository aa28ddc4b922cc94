//! The one directory that holds a local cluster's state, and the ports it listens on.
use std::path::{Path, PathBuf};

/// File and directory names under the cluster state directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }
    pub fn pki_file(&self, name: &str) -> PathBuf {
        self.pki().join(name)
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn log(&self, component: &str) -> PathBuf {
        self.logs().join(format!("{component}.log"))
    }
    pub fn pids(&self) -> PathBuf {
        self.root.join("pids")
    }
    pub fn etcd_data(&self) -> PathBuf {
        self.root.join("etcd")
    }
    /// The admin kubeconfig `cluster env` points KUBECONFIG at.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }
    /// Kubeconfigs of the other components (their own least-privilege identities).
    pub fn component_kubeconfig(&self, component: &str) -> PathBuf {
        self.root
            .join("kubeconfigs")
            .join(format!("{component}.kubeconfig"))
    }
    /// Symlinks to the cached binaries, for PATH.
    pub fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }
    /// Written last by `up`: its presence means the cluster came up completely.
    pub fn ready_marker(&self) -> PathBuf {
        self.root.join("ready")
    }
}

/// The loopback ports a cluster listens on, chosen free at `up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The address the API server binds and every client connects to: 127.0.0.1, or on a real
    /// node its bridge address (so pods reach it through the `kubernetes` Service).
    pub apiserver_host: std::net::Ipv4Addr,
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
    pub controller_manager: u16,
    pub scheduler: u16,
}

impl Ports {
    pub fn pick() -> std::io::Result<Self> {
        // Hold every listener until all are chosen so no two ports coincide.
        let listeners = (0..5)
            .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            apiserver_host: std::net::Ipv4Addr::LOCALHOST,
            etcd_client: ports[0],
            etcd_peer: ports[1],
            apiserver: ports[2],
            controller_manager: ports[3],
            scheduler: ports[4],
        })
    }

    pub fn apiserver_url(&self) -> String {
        format!("https://{}:{}", self.apiserver_host, self.apiserver)
    }
}

/// Path helper for flags: `--flag=<path>`.
pub fn flag_path(flag: &str, path: &Path) -> String {
    format!("--{flag}={}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_are_distinct_and_unprivileged() {
        let p = Ports::pick().unwrap();
        let all = [
            p.etcd_client,
            p.etcd_peer,
            p.apiserver,
            p.controller_manager,
            p.scheduler,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(*a >= 1024);
            assert!(all[i + 1..].iter().all(|b| b != a));
        }
        assert_eq!(
            p.apiserver_url(),
            format!("https://127.0.0.1:{}", p.apiserver)
        );
    }
}
