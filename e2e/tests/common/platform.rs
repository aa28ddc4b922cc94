//! Steps shared by the scenarios that install the operator with Helm and run FootballPredictions
//! on the local control plane.

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::Value;

pub const TIMEOUT: Duration = Duration::from_secs(300);

pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the workspace's `kubectl-fp` (built next to this test's binary by `cargo xtask test`):
/// exit code and stdout.
pub fn kubectl_fp(args: &[&str]) -> (i32, String) {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let plugin = dir.join("kubectl-fp");
    assert!(
        plugin.is_file(),
        "{} missing: build the workspace's binaries",
        plugin.display()
    );
    let out = Command::new(&plugin).args(args).output().unwrap();
    eprintln!(
        "kubectl fp {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Removes everything the test created, also when it fails half-way.
pub struct Cleanup {
    pub namespace: String,
    pub operator_namespace: String,
    pub release: String,
    pub volume: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let quiet = |program: &str, args: &[&str]| {
            let _ = Command::new(program).args(args).output();
        };
        quiet(
            "helm",
            &["uninstall", &self.release, "-n", &self.operator_namespace],
        );
        for ns in [&self.namespace, &self.operator_namespace] {
            quiet("kubectl", &["delete", "namespace", ns, "--wait=false"]);
        }
        quiet("kubectl", &["delete", "pv", &self.volume, "--wait=false"]);
    }
}

/// The test server's URL with another database (and optionally another password).
pub fn database_url(server: &str, database: &str, password: Option<&str>) -> String {
    let (base, _) = server.rsplit_once('/').expect("URL with a database");
    let url = format!("{base}/{database}");
    match password {
        None => url,
        Some(password) => {
            let (scheme_user, rest) = url.split_once("@").expect("URL with credentials");
            let (scheme_and_user, _) = scheme_user.rsplit_once(':').expect("user:password");
            format!("{scheme_and_user}:{password}@{rest}")
        }
    }
}

pub fn fp_api(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("footballprediction.io", "v1alpha1", "FootballPrediction");
    Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk))
}

/// Polls `check` every second until it returns `Some`, failing with the last state seen.
pub async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> (Option<T>, String)) -> T {
    let t0 = Instant::now();
    loop {
        let (found, state) = check().await;
        if let Some(value) = found {
            eprintln!("{what}: after {:.1}s", t0.elapsed().as_secs_f64());
            return value;
        }
        assert!(
            t0.elapsed() < TIMEOUT,
            "timed out waiting for {what}; last state: {state}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub async fn fp_status(api: &Api<DynamicObject>, name: &str) -> Value {
    api.get(name)
        .await
        .map(|o| o.data["status"].clone())
        .unwrap_or(Value::Null)
}

pub fn condition(status: &Value, type_: &str) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_).cloned())
        .unwrap_or(Value::Null)
}

/// Kills the operator pod that holds the Lease (grace period 0) and waits until the other
/// replica holds it.
pub async fn leader_is_replaced(client: &Client, operator_namespace: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), operator_namespace);
    let holder = |lease: &Lease| {
        lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default()
    };
    let leader = holder(
        &leases
            .get("fp-operator")
            .await
            .expect("the operator's Lease"),
    );
    assert!(!leader.is_empty(), "a leader holds the Lease");
    let pods: Api<Pod> = Api::namespaced(client.clone(), operator_namespace);
    let names: Vec<String> = pods
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    let leader_pod = names
        .iter()
        .find(|n| leader.contains(n.as_str()))
        .unwrap_or_else(|| panic!("leader {leader} is one of {names:?}"))
        .clone();
    pods.delete(&leader_pod, &DeleteParams::default().grace_period(0))
        .await
        .expect("kill the leader");
    wait_for("a new leader", async || {
        let now = leases
            .get("fp-operator")
            .await
            .map(|l| holder(&l))
            .unwrap_or_default();
        ((!now.is_empty() && now != leader).then_some(()), now)
    })
    .await;
}
