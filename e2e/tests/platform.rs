//! The platform on the real control plane: the operator installed by its Helm chart and run on the
//! real node, docs/samples/local.yaml reconciled to Ready against the test PostgreSQL, a backup
//! Job from the operator's CronJob feeding `status.backup`, the restore drill passing, and a
//! backup with a wrong database password turning BackupHealthy False with a Warning event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::platform::{
    Dist, condition, create_fp, database_url, fp_api, fp_status, helm_args, install, kubectl_fp,
    leader_is_replaced, run, wait_for,
};

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const INSTANCE: &str = "demo";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_from_helm_reconciles_the_sample_and_reports_backups() {
    let Some(client) = common::admin_client().await else {
        return;
    };
    let installed = install("e2e-fp", INSTANCE);
    let namespace = installed.namespace.clone();
    let backups = installed.backups.path();

    // The documented sample, in this test's namespace.
    let sample =
        std::fs::read_to_string(common::workspace_root().join("docs/samples/local.yaml")).unwrap();
    let mut fp: Value = serde_norway::from_str(&sample).unwrap();
    fp["metadata"]["namespace"] = json!(namespace);
    let fps = fp_api(&client, &namespace);
    create_fp(&fps, fp).await;

    wait_for("fp Ready", async || {
        let status = fp_status(&fps, INSTANCE).await;
        let ready = condition(&status, "Ready");
        ((ready["status"] == "True").then_some(()), ready.to_string())
    })
    .await;

    // What users look at: kubectl wait, the printer columns, and real API processes answering
    // at their pod IPs.
    run(
        "kubectl",
        &[
            "wait",
            "-n",
            &namespace,
            "--for=condition=Ready",
            &format!("fp/{INSTANCE}"),
            // Ready already; generous for kubectl itself on a busy machine.
            "--timeout=300s",
        ],
    );
    let columns = run(
        "kubectl",
        &["get", "fp", INSTANCE, "-n", &namespace, "--no-headers"],
    );
    let columns: Vec<&str> = columns.split_whitespace().collect();
    assert_eq!(
        &columns[..5],
        &[INSTANCE, "0.1.0", "blue", "True", "Healthy"],
        "{columns:?}"
    );
    api_pods_answer(&client, &namespace).await;
    real_containers_hold_to_the_contract(&client, &namespace, &installed.server).await;

    // A backup Job on the real node against the real PostgreSQL, started and followed by the
    // kubectl plugin, which prints the program's summary and exits with its code.
    let (code, summary) = kubectl_fp(&["backup", INSTANCE, "-n", &namespace]);
    assert_eq!(code, 0, "{summary}");
    let summary: Value = serde_json::from_str(summary.trim()).expect("summary line");
    assert_eq!(summary["ok"], true, "{summary}");
    // The first deploy's migration was preceded by a backup (backup.beforeMigration, default
    // true), recorded with the release; the one just taken is the second.
    let history = fp_status(&fps, INSTANCE).await["history"].clone();
    assert!(history[0]["backupId"].is_string(), "{history}");
    let id = summary["id"]
        .as_str()
        .expect("backup id in the summary")
        .to_owned();
    let backup = wait_for("status.backup after a backup Job", async || {
        let status = fp_status(&fps, INSTANCE).await;
        let backup = status["backup"].clone();
        (
            (backup["lastBackupId"] == id.as_str()).then_some(backup),
            status.to_string(),
        )
    })
    .await;
    assert!(backup["bytes"].as_i64().unwrap() > 0, "{backup}");
    assert_eq!(backup["count"], 2, "{backup}");
    let id = id.as_str();
    assert!(
        backups.join(id).join("manifest.json").is_file(),
        "backup {id} is on the volume"
    );
    let healthy = condition(&fp_status(&fps, INSTANCE).await, "BackupHealthy");
    assert_eq!(healthy["status"], "True", "{healthy}");

    // The restore drill, through the plugin too.
    let (code, drill) = kubectl_fp(&["verify", INSTANCE, "-n", &namespace]);
    assert_eq!(code, 0, "{drill}");
    wait_for("a passed restore drill", async || {
        let status = fp_status(&fps, INSTANCE).await;
        let result = status["backup"]["lastVerifyResult"].clone();
        (
            (result == "Passed").then_some(()),
            status["backup"].to_string(),
        )
    })
    .await;

    // A wrong password: BackupHealthy False with the program's reason, and a Warning event.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let bad_url = common::node::url_for_pods(&database_url(
        &installed.server,
        &installed.database,
        Some("wrong-password"),
    ));
    secrets
        .patch(
            &format!("{INSTANCE}-database"),
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"url": bad_url}})),
        )
        .await
        .expect("patch Secret");
    // The plugin reports the failure with the program's exit code (3: database unavailable).
    let (code, failed) = kubectl_fp(&["backup", INSTANCE, "-n", &namespace]);
    assert_eq!(code, 3, "{failed}");
    assert!(
        failed.contains("\"reason\":\"DatabaseUnavailable\""),
        "{failed}"
    );
    assert!(!failed.contains("wrong-password"), "{failed}");
    let unhealthy = wait_for("BackupHealthy False", async || {
        let healthy = condition(&fp_status(&fps, INSTANCE).await, "BackupHealthy");
        (
            (healthy["status"] == "False").then(|| healthy.clone()),
            healthy.to_string(),
        )
    })
    .await;
    assert_eq!(unhealthy["reason"], "BackupFailed", "{unhealthy}");
    let message = unhealthy["message"].as_str().unwrap();
    assert!(message.contains("DatabaseUnavailable"), "{message}");
    assert!(
        !message.contains("wrong-password"),
        "the password never reaches the status: {message}"
    );
    let (_, tree) = kubectl_fp(&["status", INSTANCE, "-n", &namespace]);
    assert!(
        tree.contains("BackupHealthy     False   BackupFailed"),
        "{tree}"
    );
    assert!(tree.contains(&format!("({id})")), "{tree}");
    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    wait_for("a BackupFailed event", async || {
        let list = events.list(&Default::default()).await.unwrap();
        let reasons: Vec<String> = list
            .items
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(INSTANCE))
            .filter_map(|e| e.reason.clone())
            .collect();
        (
            reasons.iter().any(|r| r == "BackupFailed").then_some(()),
            format!("{reasons:?}"),
        )
    })
    .await;
    // The last good backup is still the one recorded.
    let backup = fp_status(&fps, INSTANCE).await["backup"].clone();
    assert_eq!(backup["lastBackupId"].as_str(), Some(id), "{backup}");

    children_are_restored(&client, &namespace).await;
    // The leader dies without a goodbye: the standby takes the Lease and reconciles.
    leader_is_replaced(&client, &installed.cleanup.operator_namespace).await;
    children_are_restored(&client, &namespace).await;
    admission_refuses_bad_specs(&fps, &namespace).await;
    pods_run_the_pinned_image(
        &client,
        &installed.cleanup.operator_namespace,
        "fp-operator",
    )
    .await;
    pods_run_the_pinned_image(&client, &namespace, "fp-api-server").await;
    upgrade_as_documented(&client, &fps, &installed).await;

    // Deleting the resource takes its children with it (ownerReferences, garbage collector);
    // the backup claim stays: backups outlive the platform.
    fps.delete(INSTANCE, &Default::default())
        .await
        .expect("delete FootballPrediction");
    no_deployments_left(&client, &namespace, "children garbage-collected").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    assert!(
        claims
            .get_opt(&format!("{INSTANCE}-backups"))
            .await
            .unwrap()
            .is_some(),
        "the backup claim outlives the FootballPrediction"
    );
    uninstall_as_documented(&client, &installed).await;
    drop(installed);
}

/// Waits until `namespace` holds no Deployment.
async fn no_deployments_left(client: &Client, namespace: &str, what: &str) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    wait_for(what, async || {
        let left: Vec<String> = deployments
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|d| d.name_any())
            .collect();
        (left.is_empty().then_some(()), format!("{left:?}"))
    })
    .await;
}

/// Every pod of `namespace` runs `image` as the release pinned it: by the digest `images.json`
/// records (the packaged chart names the operator's; the operator, told by the chart, names the
/// API's for FootballPredictions of the release's version), and the kubelet reports the digest
/// containerd pulled.
async fn pods_run_the_pinned_image(client: &Client, namespace: &str, image: &str) {
    let digest = Dist::checked().digest(image);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = pods.list(&Default::default()).await.unwrap().items;
    let running: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect();
    assert!(!running.is_empty(), "running pods in {namespace}");
    for pod in running {
        let container = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            container.image.as_deref(),
            Some(format!("footballprediction/{image}@{digest}").as_str()),
            "{}",
            pod.name_any()
        );
        let image_id = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.first())
            .map(|c| c.image_id.clone())
            .unwrap_or_default();
        assert!(
            image_id.ends_with(&format!("{image}@{digest}")),
            "{}: the kubelet reports {image_id:?}, the release pinned {digest}",
            pod.name_any()
        );
    }
}

/// docs/install.md's upgrade, step by step: the CRD applied server-side (taking its fields over
/// from helm's install), then `helm upgrade` of the package with a changed value and
/// `kubectl rollout status`; the resource is still reconciled.
async fn upgrade_as_documented(
    client: &Client,
    fps: &Api<DynamicObject>,
    installed: &common::platform::Installed,
) {
    let dist = Dist::checked();
    let crd = dist.crd().display().to_string();
    run(
        "kubectl",
        &["apply", "--server-side", "--force-conflicts", "-f", &crd],
    );
    let operator_namespace = &installed.cleanup.operator_namespace;
    let args = helm_args("upgrade", &installed.cleanup, &["logging.format=json"]);
    run("helm", &args.iter().map(String::as_str).collect::<Vec<_>>());
    run(
        "kubectl",
        &[
            "-n",
            operator_namespace,
            "rollout",
            "status",
            "deployment/fp-operator",
            "--timeout=300s",
        ],
    );
    let status: Value = serde_json::from_str(&run(
        "helm",
        &[
            "status",
            "fp-operator",
            "-n",
            operator_namespace,
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(status["version"], 2, "{}", status["info"]);
    assert_eq!(status["info"]["status"], "deployed", "{}", status["info"]);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), operator_namespace);
    let operator = deployments.get("fp-operator").await.unwrap();
    let args = operator.spec.template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap_or_default();
    assert!(args.contains(&"--log-format=json".to_owned()), "{args:?}");
    pods_run_the_pinned_image(client, operator_namespace, "fp-operator").await;
    // The upgraded operator still reconciles: a deleted child comes back. (Ready is not judged
    // here: the wrong database password set above is a new configuration, being rolled out.)
    children_are_restored(client, &installed.namespace).await;
    let generation = fp_status(fps, INSTANCE).await["observedGeneration"].clone();
    assert!(
        generation.as_i64().is_some(),
        "status written: {generation}"
    );
}

/// docs/install.md's uninstall, after the resource was deleted: `helm uninstall` removes the
/// operator, and what the page says stays stays: the Secret the user made, the backup claim,
/// the CRD.
async fn uninstall_as_documented(client: &Client, installed: &common::platform::Installed) {
    let operator_namespace = &installed.cleanup.operator_namespace;
    run(
        "helm",
        &[
            "uninstall",
            "fp-operator",
            "-n",
            operator_namespace,
            "--wait",
        ],
    );
    no_deployments_left(
        client,
        operator_namespace,
        "the operator's Deployment removed",
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &installed.namespace);
    assert!(
        secrets
            .get_opt(&format!("{INSTANCE}-database"))
            .await
            .unwrap()
            .is_some(),
        "the database Secret the user created stays"
    );
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &installed.namespace);
    assert!(
        claims
            .get_opt(&format!("{INSTANCE}-backups"))
            .await
            .unwrap()
            .is_some(),
        "the backup claim stays"
    );
    // The CRD stays (helm never deletes crds/): FootballPredictions elsewhere live on.
    run(
        "kubectl",
        &["get", "crd", "footballpredictions.footballprediction.io"],
    );
}

/// The process of `pod`'s container running `program`, found through the kernel: its cgroup
/// path names the pod's UID (kubelet's cgroupfs layout).
fn container_process(pod: &Pod, program: &str) -> Option<i32> {
    let uid = pod.metadata.uid.as_deref()?;
    let marks = [format!("pod{uid}"), format!("pod{}", uid.replace('-', "_"))];
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let argv0 = cmdline.split(|b| *b == 0).next()?;
            (marks.iter().any(|m| cgroup.contains(m.as_str()))
                && String::from_utf8_lossy(argv0).ends_with(program))
            .then_some(pid)
        })
}

/// A field of `/proc/<pid>/status`.
fn proc_status(pid: i32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The mount options of the process's root (`/proc/<pid>/mountinfo`).
fn root_mount_options(pid: i32) -> String {
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    info.lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() > 5 && f[4] == "/")
        .map(|f| f[5].to_owned())
        .unwrap_or_default()
}

/// What kubelet, containerd and runc made of the image and the operator's pod spec, read from the kernel's view
/// of the container process, and what users do with pods: `kubectl exec`, `kubectl logs`, a hung
/// process restarted by its liveness probe, a deleted pod replaced.
async fn real_containers_hold_to_the_contract(client: &Client, namespace: &str, server: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let api_pods = async || {
        pods.list(&ListParams::default().labels("app.kubernetes.io/component=api"))
            .await
            .unwrap()
            .items
    };
    let pod = api_pods().await.into_iter().next().expect("an API pod");
    let name = pod.name_any();
    let pid = container_process(&pod, "fp-api-server").expect("the API container's process");

    // The image's user, a read-only root, no capabilities (restricted pod security).
    let uids = proc_status(pid, "Uid");
    assert!(
        uids.split_whitespace().all(|u| u == "65532"),
        "runs as 65532: {uids}"
    );
    let root = root_mount_options(pid);
    assert!(
        root.split(',').any(|o| o == "ro"),
        "read-only root filesystem: {root}"
    );
    assert_eq!(proc_status(pid, "CapEff"), "0000000000000000");

    // kubectl exec into the image: pg_dump of the server's major version is there.
    let dump = run(
        "kubectl",
        &[
            "exec",
            "-n",
            namespace,
            &name,
            "-c",
            "api",
            "--",
            "pg_dump",
            "--version",
        ],
    );
    let server_version = run(
        &common::platform::psql(),
        &[server, "-tAc", "SHOW server_version"],
    );
    let major = server_version.trim().split('.').next().unwrap().to_owned();
    assert!(
        dump.contains(&format!("(PostgreSQL) {major}.")),
        "pg_dump matches the server's major {major}: {dump}"
    );
    let logs = run("kubectl", &["logs", "-n", namespace, &name, "-c", "api"]);
    assert!(logs.contains("opening database"), "{logs}");

    // A hung process (stopped by signal) fails its liveness probe: the kubelet restarts it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == "api"))
            .map_or(0, |c| c.restart_count)
    };
    wait_for(
        &format!("{name} restarted by its liveness probe"),
        async || {
            let now = pods
                .get(&name)
                .await
                .map(|p| restarts(&p))
                .unwrap_or_default();
            ((now >= 1).then_some(()), format!("{now} restarts"))
        },
    )
    .await;

    // A deleted pod is replaced by its Deployment, and two API pods are Ready again.
    pods.delete(&name, &Default::default()).await.unwrap();
    wait_for(
        &format!("{name} replaced, two API pods Ready"),
        async || {
            let ready: Vec<String> = api_pods()
                .await
                .iter()
                .filter(|p| common::platform::is_serving(p))
                .map(|p| p.name_any())
                .collect();
            (
                (ready.len() == 2 && !ready.contains(&name)).then_some(()),
                format!("{ready:?}"),
            )
        },
    )
    .await;
}

/// Every ready API pod answers `/health/ready` with 200 at its pod IP.
async fn api_pods_answer(client: &Client, namespace: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=api"))
        .await
        .unwrap();
    let ips: Vec<String> = list
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    assert_eq!(ips.len(), 2, "two API pods with IPs: {ips:?}");
    // Generous per request, and polled: on a busy machine a pod answers late, and its own
    // readiness check (a database round trip within 1 s) can fail now and then. A pod that
    // never answers 200 still fails, after common::platform::TIMEOUT.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    for ip in ips {
        assert!(common::node::is_pod_ip(&ip), "pod IPs are the node's: {ip}");
        let url = format!("http://{ip}:8080/health/ready");
        wait_for(&format!("{url} answers 200"), async || {
            match http.get(&url).send().await {
                Ok(r) if r.status() == 200 => (Some(()), String::new()),
                Ok(r) => (None, format!("status {}", r.status())),
                Err(e) => (None, e.to_string()),
            }
        })
        .await;
    }
}

/// Hand edits to children are undone by the next reconcile.
async fn children_are_restored(client: &Client, namespace: &str) {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    services
        .delete(INSTANCE, &Default::default())
        .await
        .expect("delete the active Service");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let active = format!("{INSTANCE}-blue");
    deployments
        .patch(
            &active,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("scale the active Deployment");
    wait_for("Service recreated and replicas restored", async || {
        let service = services.get_opt(INSTANCE).await.unwrap();
        let replicas = deployments.get(&active).await.unwrap().spec.replicas;
        (
            (service.is_some() && replicas == Some(2)).then_some(()),
            format!("service {}, replicas {replicas:?}", service.is_some()),
        )
    })
    .await;
}

/// The API server refuses what the CRD's schema and CEL rules forbid, with a message naming the
/// field.
async fn admission_refuses_bad_specs(fps: &Api<DynamicObject>, namespace: &str) {
    // Unknown fields are refused when the client asks for strict validation, as kubectl does.
    let typo = json!({
        "apiVersion": "footballprediction.io/v1alpha1", "kind": "FootballPrediction",
        "metadata": {"name": "refused", "namespace": namespace},
        "spec": {"version": "1", "replica": 3}});
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), typo.to_string()).unwrap();
    let out = Command::new("kubectl")
        .args(["create", "-f"])
        .arg(file.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a typo must not be accepted");
    assert!(
        stderr.contains("unknown field \"spec.replica\""),
        "{stderr}"
    );

    let cases = [
        (
            json!({"version": "1", "backup": {"storage": {}}}),
            "spec.backup.storage needs pvc, s3 or both",
        ),
        (json!({"replicas": 2}), "spec.version: Required value"),
    ];
    for (spec, expected) in cases {
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "footballprediction.io/v1alpha1", "kind": "FootballPrediction",
            "metadata": {"name": "refused", "namespace": namespace}, "spec": spec}))
        .unwrap();
        let err = fps
            .create(&PostParams::default(), &object)
            .await
            .expect_err("refused at admission");
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    }
}

/// `helm lint`, and the rendered chart accepted by the real API server (server-side dry run).
#[tokio::test]
async fn chart_lints_and_renders_objects_the_api_server_accepts() {
    let Some(_client) = common::admin_client().await else {
        return;
    };
    let chart = common::workspace_root().join("charts/fp-operator");
    let chart = chart.display().to_string();
    run("helm", &["lint", &chart]);
    let namespace = common::unique_name("e2e-chart");
    run("kubectl", &["create", "namespace", &namespace]);
    let rendered = run(
        "helm",
        &["template", "fp-operator", &chart, "-n", &namespace],
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &rendered).unwrap();
    let applied = run(
        "kubectl",
        &[
            "apply",
            "--dry-run=server",
            "-n",
            &namespace,
            "-f",
            &file.path().display().to_string(),
        ],
    );
    let _ = Command::new("kubectl")
        .args(["delete", "namespace", &namespace, "--wait=false"])
        .output();
    for kind in [
        "deployment.apps/fp-operator",
        "clusterrole.rbac.authorization.k8s.io/fp-operator-manager",
        // Namespace-scoped by default: the manager role is bound in the release namespace.
        "rolebinding.rbac.authorization.k8s.io/fp-operator-manager",
    ] {
        assert!(applied.contains(kind), "{kind} in {applied}");
    }
    assert!(
        !applied.contains("clusterrolebinding.rbac.authorization.k8s.io/fp-operator-manager"),
        "{applied}"
    );
    assert!(
        rendered.contains(&format!("--watch-namespace={namespace}")),
        "the default watches the release namespace"
    );
    let everywhere = run(
        "helm",
        &[
            "template",
            "fp-operator",
            &chart,
            "-n",
            &namespace,
            "--set",
            "watchAllNamespaces=true",
        ],
    );
    assert!(
        everywhere.contains("kind: ClusterRoleBinding\nmetadata:\n  name: fp-operator-manager"),
        "{everywhere}"
    );
    assert!(!everywhere.contains("--watch-namespace"), "{everywhere}");
}

#[test]
fn database_urls_swap_database_and_password() {
    let server = "postgres://postgres:s3cret@127.0.0.1:5432/postgres";
    assert_eq!(
        database_url(server, "e2e_x", None),
        "postgres://postgres:s3cret@127.0.0.1:5432/e2e_x"
    );
    assert_eq!(
        database_url(server, "e2e_x", Some("bad")),
        "postgres://postgres:bad@127.0.0.1:5432/e2e_x"
    );
}
