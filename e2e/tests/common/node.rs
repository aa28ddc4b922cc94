//! The real node the scenarios run on (`cargo xtask test` starts it and names it in the
//! environment): release versions must exist as images in the node's registry, and pods reach
//! the host's PostgreSQL at the bridge address.

use std::process::Command;

/// `127.0.0.1:<port>`: the real node's registry (every image reference resolves to it).
pub const REGISTRY_ENV: &str = "FP_E2E_REGISTRY";
/// The address pods reach the host at (the bridge's), where PostgreSQL also listens.
pub const POD_HOST_ENV: &str = "FP_E2E_POD_HOST";

const API_REPOSITORY: &str = "footballprediction/fp-api-server";

/// A setting `cargo xtask test` gives the e2e suite with the cluster's kubeconfig.
pub fn env(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is not set: run the e2e suite through `cargo xtask test`, which sets it")
        })
}

/// The real node's registry.
pub fn registry() -> String {
    env(REGISTRY_ENV)
}

/// Where pods reach the host (the bridge's address).
pub fn pod_host() -> String {
    env(POD_HOST_ENV)
}

/// The fault switch's settings a `-broken-*` release stands for in the rollout scenarios
/// (docs/architecture.md).
pub fn fault_env(version: &str) -> Vec<(&'static str, &'static str)> {
    let fault: Option<(&str, &str)> = if version.ends_with("-broken-ready") {
        Some(("FP_TEST_FAULT_READY_FAIL_AFTER", "0s"))
    } else if version.ends_with("-broken-errors") {
        Some(("FP_TEST_FAULT_ERROR_RATIO", "1"))
    } else if version.ends_with("-broken-later") {
        // Ready for 40 s, then 503: passes pre-promotion analysis, fails after promotion.
        Some(("FP_TEST_FAULT_READY_FAIL_AFTER", "40s"))
    } else if version.ends_with("-broken-migrate") {
        Some(("FP_TEST_FAULT_MIGRATE", "fail"))
    } else {
        None
    };
    fault
        .map(|f| vec![("FP_TEST_FAULTS", "enabled"), f])
        .unwrap_or_default()
}

/// Makes `footballprediction/fp-api-server:<version>` exist in the node's registry, made from
/// the image `cargo xtask test` pushed (the workspace version) with crane, plus the fault
/// settings of a `-broken-*` version. The kubelet pulls it like any image.
pub fn publish_api_version(version: &str) {
    let registry = registry();
    let base = format!("{registry}/{API_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"));
    let target = format!("{registry}/{API_REPOSITORY}:{version}");
    let faults = fault_env(version);
    let mut crane = Command::new("crane");
    if faults.is_empty() {
        crane.args(["copy", &base, &target]);
    } else {
        crane.args(["mutate", &base, "-t", &target]);
        for (key, value) in faults {
            crane.arg(format!("--env={key}={value}"));
        }
    }
    let out = crane
        .output()
        .expect("crane (on PATH from `cargo xtask test`)");
    assert!(
        out.status.success(),
        "publishing {target} from {base}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `url` (on 127.0.0.1) as pods reach it.
pub fn url_for_pods(url: &str) -> String {
    url_via(url, &pod_host())
}

/// `url` with its 127.0.0.1 host replaced by `host`.
fn url_via(url: &str, host: &str) -> String {
    url.replacen("@127.0.0.1:", &format!("@{host}:"), 1)
}

/// Whether `ip` is in the address range pods of this node get.
pub fn is_pod_ip(ip: &str) -> bool {
    in_pod_range(ip, &pod_host())
}

/// The bridge's /24 beside `host` (the host itself is not a pod).
fn in_pod_range(ip: &str, host: &str) -> bool {
    host.rsplit_once('.')
        .is_some_and(|(net, _)| ip.starts_with(&format!("{net}.")) && ip != host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_versions_carry_their_fault_and_others_none() {
        assert_eq!(
            fault_env("3.0.0-broken-ready"),
            [
                ("FP_TEST_FAULTS", "enabled"),
                ("FP_TEST_FAULT_READY_FAIL_AFTER", "0s")
            ]
        );
        assert_eq!(
            fault_env("3.0.2-broken-later")[1],
            ("FP_TEST_FAULT_READY_FAIL_AFTER", "40s")
        );
        assert_eq!(
            fault_env("3.0.1-broken-migrate")[1],
            ("FP_TEST_FAULT_MIGRATE", "fail")
        );
        assert!(fault_env("2.0.0").is_empty());
        assert!(fault_env("2.0.0-broken-readyish").is_empty());
    }

    #[test]
    fn pods_reach_the_host_at_the_bridge_and_get_addresses_beside_it() {
        let url = "postgres://u:p@127.0.0.1:5432/db";
        assert_eq!(
            url_via(url, "198.18.0.1"),
            "postgres://u:p@198.18.0.1:5432/db"
        );
        assert!(in_pod_range("198.18.0.7", "198.18.0.1"));
        assert!(!in_pod_range("198.18.0.1", "198.18.0.1"));
        assert!(!in_pod_range("198.18.1.7", "198.18.0.1"));
        assert!(!in_pod_range("127.0.3.4", "198.18.0.1"));
    }
}
