//! Steps shared by the scenarios that install the operator with Helm and run FootballPredictions
//! on the local control plane.

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

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

/// One scenario's world on the local cluster: a database of its own on the test PostgreSQL, a
/// namespace holding `<instance>-database` (its URL), a hostPath volume pre-bound to the
/// `<instance>-backups` claim, and the operator installed by its Helm chart with two replicas (one
/// leads, the other stands by) watching that namespace. Dropping it removes all of that.
pub struct Installed {
    pub namespace: String,
    /// The test server's URL (`FP_TEST_DATABASE_URL`) and this scenario's database on it.
    pub server: String,
    pub database: String,
    /// Where the backup volume's files land.
    pub backups: tempfile::TempDir,
    pub cleanup: Cleanup,
}

impl Installed {
    pub fn database_url(&self) -> String {
        database_url(&self.server, &self.database, None)
    }
}

/// `psql` of the PostgreSQL the test command installed (`FP_PG_BIN_DIR`), else from PATH.
pub fn psql() -> String {
    match std::env::var("FP_PG_BIN_DIR") {
        Ok(dir) if !dir.is_empty() => format!("{dir}/psql"),
        _ => "psql".to_owned(),
    }
}

pub fn install(prefix: &str, instance: &str) -> Installed {
    install_with(prefix, instance, &[])
}

/// [`install`] with extra chart values (`key=value`, as `helm --set` takes them).
pub fn install_with(prefix: &str, instance: &str, chart_values: &[&str]) -> Installed {
    let server = std::env::var("FP_TEST_DATABASE_URL")
        .expect("FP_TEST_DATABASE_URL: `cargo xtask test` runs the e2e suite with its PostgreSQL");
    let namespace = super::unique_name(prefix);
    let cleanup = Cleanup {
        operator_namespace: format!("{namespace}-op"),
        release: "fp-operator".to_owned(),
        volume: format!("{namespace}-backups"),
        namespace: namespace.clone(),
    };
    let database = namespace.replace('-', "_");
    run(
        &psql(),
        &[
            &server,
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            &format!("CREATE DATABASE {database}"),
        ],
    );
    let backups = tempfile::tempdir().unwrap();
    // The containers run as the images' user.
    std::os::unix::fs::chown(backups.path(), Some(RUN_AS), Some(RUN_AS)).unwrap();
    let manifests = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": format!("{instance}-database"), "namespace": namespace},
         "stringData": {"url": super::node::url_for_pods(&database_url(&server, &database, None))}},
        // Pre-bound to this scenario's claim so parallel runs cannot take it.
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": cleanup.volume},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                  "storageClassName": "", "persistentVolumeReclaimPolicy": "Retain",
                  "claimRef": {"namespace": namespace, "name": format!("{instance}-backups")},
                  "hostPath": {"path": backups.path().display().to_string()}}},
    ]});
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), manifests.to_string()).unwrap();
    run(
        "kubectl",
        &["apply", "-f", &file.path().display().to_string()],
    );
    run(
        "helm",
        &helm_args("install", &cleanup, chart_values)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    Installed {
        namespace,
        server,
        database,
        backups,
        cleanup,
    }
}

/// The release `cargo xtask dist --profile dev` cut from this work tree (`FP_E2E_DIST`), as a
/// user receives it: every file checked with `sha256sum -c SHA256SUMS` before use.
pub struct Dist {
    pub dir: std::path::PathBuf,
}

pub const DIST_ENV: &str = "FP_E2E_DIST";

impl Dist {
    pub fn checked() -> Dist {
        let dir = std::path::PathBuf::from(super::node::env(DIST_ENV));
        let out = Command::new("sha256sum")
            .args(["-c", "SHA256SUMS"])
            .current_dir(&dir)
            .output()
            .expect("sha256sum");
        assert!(
            out.status.success(),
            "sha256sum -c SHA256SUMS in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        Dist { dir }
    }

    /// The one file whose name starts with `prefix` and ends with `suffix`.
    fn file(&self, prefix: &str, suffix: &str) -> std::path::PathBuf {
        let found: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with(prefix) && name.ends_with(suffix)
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{prefix}*{suffix} in {}: {found:?}",
            self.dir.display()
        );
        found[0].clone()
    }

    /// `fp-operator-<chart version>.tgz`, the chart as `helm package` made it.
    pub fn chart(&self) -> std::path::PathBuf {
        self.file("fp-operator-", ".tgz")
    }

    pub fn crd(&self) -> std::path::PathBuf {
        self.file("footballprediction-crd-", ".yaml")
    }

    /// The manifest digest `images.json` records for `image` (`fp-operator`, `fp-api-server`).
    pub fn digest(&self, image: &str) -> String {
        let text = std::fs::read(self.dir.join("images.json")).expect("images.json in the dist");
        let entries: Vec<Value> = serde_json::from_slice(&text).unwrap();
        let wanted = format!("footballprediction/{image}:{}", env!("CARGO_PKG_VERSION"));
        entries
            .iter()
            .find(|e| e["image"] == wanted.as_str())
            .and_then(|e| e["digest"].as_str())
            .unwrap_or_else(|| panic!("images.json names no {wanted}"))
            .to_owned()
    }
}

/// `helm install|upgrade` of the dist's packaged chart as the scenarios run it: the operator
/// watching the scenario's namespace, two replicas, `chart_values` last (they win).
pub fn helm_args(verb: &str, cleanup: &Cleanup, chart_values: &[&str]) -> Vec<String> {
    let chart = Dist::checked().chart();
    let mut args: Vec<String> = [
        verb,
        &cleanup.release,
        &chart.display().to_string(),
        "-n",
        &cleanup.operator_namespace,
        "--create-namespace",
        "--set",
        &format!("watchNamespace={}", cleanup.namespace),
        "--set",
        "logging.format=text",
        "--set",
        "replicaCount=2",
        "--wait",
        // Generous: two operator pods on a busy machine.
        "--timeout",
        "10m",
    ]
    .map(str::to_owned)
    .to_vec();
    for value in chart_values {
        args.extend(["--set".to_owned(), (*value).to_owned()]);
    }
    args
}

/// Whether `pod` is Ready and not being deleted (what a Service's endpoints hold).
pub fn is_serving(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The user and group the images run as (xtask's image spec).
const RUN_AS: u32 = 65532;

/// Creates the FootballPrediction `fp` (its release image published first).
pub async fn create_fp(fps: &Api<DynamicObject>, fp: Value) {
    if let Some(version) = fp["spec"]["version"].as_str() {
        super::node::publish_api_version(version);
    }
    fps.create(&PostParams::default(), &serde_json::from_value(fp).unwrap())
        .await
        .expect("create FootballPrediction");
}

/// Sets fields of `name`'s spec (a JSON merge patch); a new release's image is published first.
pub async fn patch_spec(fps: &Api<DynamicObject>, name: &str, spec: Value) {
    if let Some(version) = spec["version"].as_str() {
        super::node::publish_api_version(version);
    }
    fps.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .expect("patch spec");
}

/// Waits until `status.rollout.stage` is `stage` (and the rollout is about `version`).
pub async fn wait_stage(fps: &Api<DynamicObject>, name: &str, stage: &str, version: &str) -> Value {
    wait_for(&format!("stage {stage} of {version}"), async || {
        let status = fp_status(fps, name).await;
        let r = &status["rollout"];
        let found = r["stage"] == stage
            && (r["targetVersion"] == version || status["active"]["version"] == version);
        (found.then(|| status.clone()), r.to_string())
    })
    .await
}

/// Waits until the active color serves `version` and the resource is Ready.
pub async fn wait_serving(fps: &Api<DynamicObject>, name: &str, version: &str) -> Value {
    wait_for(&format!("{version} serving and Ready"), async || {
        let status = fp_status(fps, name).await;
        let ready = condition(&status, "Ready")["status"] == "True";
        let found = ready && status["active"]["version"] == version;
        (found.then(|| status.clone()), status["rollout"].to_string())
    })
    .await
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
        if std::thread::panicking() {
            // The test failed already; a second panic here would abort the run.
            self.remove();
            return;
        }
        // Before anything is removed: no secret value shows outside its Secret (OWASP API8; the
        // test database's password is in the instance's database Secret, so it is searched for).
        let namespaces = [self.namespace.as_str(), self.operator_namespace.as_str()];
        let search = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::leaks::find(&namespaces)
        }));
        self.remove();
        match search {
            Ok(leaks) if leaks.is_empty() => {}
            Ok(leaks) => panic!("secret values outside their Secrets:\n{}", leaks.join("\n")),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Cleanup {
    fn remove(&self) {
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
