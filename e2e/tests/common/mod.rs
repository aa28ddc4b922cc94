//! Shared by the e2e scenarios: a client for the local control plane that `cargo xtask test`
//! starts, or a skip when none is configured.
// Each test binary uses a different subset; tests may panic on broken setup.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod leaks;
pub mod monitoring;
pub mod node;
pub mod platform;

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Set by xtask to the local cluster's admin kubeconfig. Tests never fall back to
/// `KUBECONFIG`, so they cannot touch some other cluster a developer has configured.
pub const KUBECONFIG_ENV: &str = "FP_E2E_KUBECONFIG";
/// Set to 1 by `cargo xtask test`: a missing cluster is then a failure, not a skip.
pub const REQUIRE_ENV: &str = "FP_REQUIRE_E2E";

/// The kubeconfig path, or `None` (after printing why) when e2e tests should skip.
pub fn kubeconfig_path() -> Option<PathBuf> {
    match std::env::var(KUBECONFIG_ENV) {
        Ok(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            assert!(
                std::env::var(REQUIRE_ENV).as_deref() != Ok("1"),
                "{REQUIRE_ENV}=1 but {KUBECONFIG_ENV} is not set"
            );
            eprintln!("skipped: {KUBECONFIG_ENV} not set (run `cargo xtask test`)");
            None
        }
    }
}

pub async fn config_from(kubeconfig: Kubeconfig) -> Config {
    // The workspace enables both rustls providers (reqwest brings aws-lc-rs), so rustls
    // cannot pick one from crate features; use ring like the binaries do.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("valid kubeconfig")
}

/// An admin client for the local cluster, or `None` when the test should skip.
pub async fn admin_client() -> Option<Client> {
    let path = kubeconfig_path()?;
    let kubeconfig = Kubeconfig::read_from(&path).expect("readable kubeconfig");
    let config = config_from(kubeconfig).await;
    Some(Client::try_from(config).expect("client from kubeconfig"))
}

/// A client that authenticates with `token` against the same API server as the admin
/// kubeconfig (same server URL and CA), for RBAC checks.
pub async fn token_client(token: &str) -> Client {
    let path = kubeconfig_path().expect("kubeconfig");
    let admin = Kubeconfig::read_from(&path).expect("readable kubeconfig");
    let cluster = admin.clusters[0].cluster.as_ref().expect("cluster entry");
    let server = cluster.server.as_deref().expect("server");
    let ca = cluster
        .certificate_authority_data
        .as_deref()
        .expect("CA data");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
    );
    let kubeconfig = Kubeconfig::from_yaml(&yaml).expect("token kubeconfig");
    Client::try_from(config_from(kubeconfig).await).expect("token client")
}

/// The workspace root (for reading crds/ and the cluster's go.mod).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A unique, valid namespace name for one test run.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}
