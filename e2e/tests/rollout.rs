//! Blue-green rollouts on the real control plane, with the operator installed by Helm (two
//! replicas) and real API server containers as pods on the real node. Broken releases are image
//! tags that turn on the API server's test-only fault switch: images published with those
//! settings (common/node.rs):
//! (g) a broken first deploy never serves; (a) a healthy rollout under traffic loses no request
//! (traffic through the active Service's ClusterIP, also across (c));
//! (b) a release failing readiness is rolled back before any traffic reaches it; (d) a failing
//! migration aborts; (c) a release failing after promotion is switched back; (e) the leader killed
//! in every stage is rollout_failover.rs; (f) manual promotion and rollback through `kubectl fp`;
//! (h) a change of the config file and of a Secret the pods read are rolled out (or back) the same way;
//! (i) an image that cannot be pulled aborts the rollout after the start-failure grace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::platform::{
    condition, create_fp, fp_api, fp_status, install, is_serving, kubectl_fp, patch_spec, run,
    wait_for, wait_serving, wait_stage,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const NAME: &str = "shop";

/// The color label the active Service selects.
async fn active_selector(client: &Client, namespace: &str) -> String {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let service = services.get(NAME).await.unwrap();
    service.spec.unwrap().selector.unwrap()["footballprediction.io/color"].clone()
}

/// The ready pods the active Service selects, as `ip:8080` (what kube-proxy would route to).
async fn active_endpoints(client: &Client, namespace: &str) -> Vec<String> {
    active_color_endpoints(client, namespace).await.1
}

/// The active color and its ready pods, as `ip:8080`.
async fn active_color_endpoints(client: &Client, namespace: &str) -> (String, Vec<String>) {
    let color = active_selector(client, namespace).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!(
        "app.kubernetes.io/instance={NAME},app.kubernetes.io/component=api,footballprediction.io/color={color}"
    );
    let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else {
        return (color, Vec::new());
    };
    let endpoints = list
        .items
        .iter()
        .filter(|p| is_serving(p))
        .filter_map(|p| Some(format!("{}:8080", p.status.as_ref()?.pod_ip.as_ref()?)))
        .collect();
    (color, endpoints)
}

/// Requests sent without pause to the active Service's ClusterIP while a rollout runs, so
/// kube-proxy routes them as it would any client's. Every request opens a new connection, like
/// many clients would: a kept-alive
/// connection stays with the pod it reached (conntrack), so it would never see the switch.
///
/// Each round asks `/health/live` (must answer 200: a refused connection, a reset or another
/// status is a failure) and `/health/ready`, whose `release` tells which release answered. A 503
/// from `/health/ready` is counted apart by its `reason`, not as a failure: a pod that drains on
/// scale-down answers `shutting_down` until kube-proxy drops it (it still serves every other
/// request), and a release whose readiness fails answers `fault_injected`.
struct Traffic {
    stop: Arc<AtomicBool>,
    tally: Arc<std::sync::Mutex<Tally>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the requests met so far.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    /// 200s from `/health/ready`, by the release that answered.
    answered: std::collections::BTreeMap<String, u64>,
    /// 503s from `/health/ready`, by their reason.
    not_ready: std::collections::BTreeMap<String, u64>,
    failures: Vec<String>,
    slowest: Duration,
}

impl Traffic {
    async fn start(client: &Client, namespace: &str) -> Self {
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        let spec = services.get(NAME).await.unwrap().spec.unwrap();
        let port = spec.ports.as_ref().unwrap()[0].port;
        let target = format!("{}:{port}", spec.cluster_ip.unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let tally: Arc<std::sync::Mutex<Tally>> = Arc::default();
        let task = {
            let (stop, tally) = (stop.clone(), tally.clone());
            tokio::spawn(async move {
                // An answer that is merely late (a busy machine) is not a failure.
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                let mut turn = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    turn += 1;
                    if turn > 1 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let live = format!("http://{target}/health/live");
                    let t0 = Instant::now();
                    let live_failure = match http.get(&live).send().await {
                        Ok(r) if r.status() == 200 => None,
                        Ok(r) => Some(format!("{live}: {}", r.status())),
                        Err(e) => Some(format!("{live}: {e}")),
                    };
                    let ready = format!("http://{target}/health/ready");
                    let answer = match http.get(&ready).send().await {
                        Ok(r) => {
                            let ok = r.status() == 200;
                            let body: serde_json::Value = r.json().await.unwrap_or_default();
                            Ok((ok, body))
                        }
                        Err(e) => Err(format!("{ready}: {e}")),
                    };
                    let mut t = tally.lock().unwrap();
                    t.sent += 2;
                    t.slowest = t.slowest.max(t0.elapsed());
                    t.failures.extend(live_failure);
                    match answer {
                        Ok((ok, body)) => match body["release"].as_str() {
                            Some(release) if ok => {
                                *t.answered.entry(release.into()).or_default() += 1;
                            }
                            Some(_) => {
                                let reason = body["reason"].as_str().unwrap_or("none").to_owned();
                                *t.not_ready.entry(reason).or_default() += 1;
                            }
                            None => t.failures.push(format!("{ready}: {body}")),
                        },
                        Err(failure) => t.failures.push(failure),
                    }
                }
            })
        };
        Self { stop, tally, task }
    }

    fn answered_by(&self, release: &str) -> u64 {
        let tally = self.tally.lock().unwrap();
        tally.answered.get(release).copied().unwrap_or_default()
    }

    async fn wait_answered_by(&self, release: &str) {
        wait_for(&format!("traffic answered by {release}"), async || {
            let n = self.answered_by(release);
            (
                (n > 0).then_some(()),
                format!("{:?}", self.tally.lock().unwrap()),
            )
        })
        .await;
    }

    /// Stops the requests and returns what they met.
    async fn stop(self, what: &str) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let tally = std::mem::take(&mut *self.tally.lock().unwrap());
        eprintln!("traffic during {what}: {tally:?}");
        tally
    }
}

fn events_with_reason(list: &[k8s_openapi::api::events::v1::Event], reason: &str) -> usize {
    list.iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blue_green_rollouts_promote_healthy_releases_and_roll_back_broken_ones() {
    let Some(client) = common::admin_client().await else {
        return;
    };
    let installed = install("e2e-ro", NAME);
    let namespace = installed.namespace.clone();
    let fps = fp_api(&client, &namespace);

    // (g) A first deploy of a broken release: analysed like any other, never served.
    let fp = json!({
        "apiVersion": "footballprediction.io/v1alpha1",
        "kind": "FootballPrediction",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "version": "1.0.0-broken-ready",
            "replicas": 2,
            "database": {"migrations": {"enabled": true}},
            "rollout": {
                "previewReplicas": 1,
                "progressDeadlineSeconds": 60,
                "scaleDownDelaySeconds": 5,
                "analysis": {"interval": "1s", "count": 3, "failureLimit": 1, "timeout": "1s"},
                "postPromotion": {"duration": "6s"}
            }
        }
    });
    create_fp(&fps, fp).await;
    let status = wait_stage(&fps, NAME, "Aborted", "1.0.0-broken-ready").await;
    assert_eq!(status["rollout"]["reason"], "AnalysisFailed", "{status}");
    assert!(status["active"].is_null(), "nothing serves: {status}");
    assert_eq!(active_selector(&client, &namespace).await, "none");
    assert_eq!(condition(&status, "Ready")["status"], "False");
    assert_eq!(condition(&status, "Degraded")["reason"], "AnalysisFailed");

    // A good first release: Ready, `kubectl wait` returns.
    patch_spec(&fps, NAME, json!({"version": "1.0.0"})).await;
    wait_serving(&fps, NAME, "1.0.0").await;
    run(
        "kubectl",
        &[
            "wait",
            "-n",
            &namespace,
            "--for=condition=Ready",
            &format!("fp/{NAME}"),
            // Ready already; generous for kubectl itself on a busy machine.
            "--timeout=300s",
        ],
    );
    let first_color = active_selector(&client, &namespace).await;

    // (a) 1.0.0 → 2.0.0 under traffic: every request answers, and the answers come from 1.0.0
    // before the switch and from 2.0.0 after it (conditions, not a count a busy machine may fall
    // short of).
    let traffic = Traffic::start(&client, &namespace).await;
    traffic.wait_answered_by("1.0.0").await;
    patch_spec(&fps, NAME, json!({"version": "2.0.0"})).await;
    let status = wait_serving(&fps, NAME, "2.0.0").await;
    wait_stage(&fps, NAME, "Idle", "2.0.0").await;
    let second_color = active_selector(&client, &namespace).await;
    assert_ne!(
        first_color, second_color,
        "traffic moved to the other color"
    );
    traffic.wait_answered_by("2.0.0").await;
    let tally = traffic.stop("1.0.0 → 2.0.0").await;
    assert!(tally.failures.is_empty(), "{tally:?}");
    assert!(
        tally
            .not_ready
            .keys()
            .all(|reason| reason == "shutting_down"),
        "both releases are healthy: only draining pods answer 503 ({tally:?})"
    );
    assert_eq!(status["history"][0]["version"], "2.0.0", "{status}");
    let columns = run(
        "kubectl",
        &["get", "fp", NAME, "-n", &namespace, "--no-headers"],
    );
    let columns: Vec<&str> = columns.split_whitespace().collect();
    assert_eq!(
        &columns[..6],
        &[
            NAME,
            "2.0.0",
            second_color.as_str(),
            "True",
            "Healthy",
            "Idle"
        ],
        "{columns:?}"
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let old = deployments
        .get(&format!("{NAME}-{first_color}"))
        .await
        .unwrap();
    assert_eq!(old.spec.replicas, Some(0), "old color scaled down");

    // (b) A release whose readiness fails: rolled back before any traffic reaches it.
    let t0 = Instant::now();
    patch_spec(&fps, NAME, json!({"version": "3.0.0-broken-ready"})).await;
    let status = wait_stage(&fps, NAME, "Aborted", "3.0.0-broken-ready").await;
    eprintln!(
        "broken release rejected after {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let message = status["rollout"]["message"].as_str().unwrap();
    assert!(
        message.contains("GET /health/ready on ") && message.contains("503"),
        "the message names the check and what it saw: {message}"
    );
    assert_eq!(status["active"]["version"], "2.0.0");
    assert_eq!(active_selector(&client, &namespace).await, second_color);
    assert_eq!(status["lastRollback"]["fromVersion"], "3.0.0-broken-ready");
    assert_eq!(status["lastRollback"]["toVersion"], "2.0.0");
    assert_eq!(condition(&status, "Ready")["status"], "False");
    let waited = std::process::Command::new("kubectl")
        .args([
            "wait",
            "-n",
            &namespace,
            "--for=condition=Ready",
            &format!("fp/{NAME}"),
            "--timeout=3s",
        ])
        .output()
        .unwrap();
    assert!(
        !waited.status.success(),
        "kubectl wait times out after a rollback"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), &namespace);
    let list = events.list(&Default::default()).await.unwrap().items;
    // The recorder folds repeats of a reason into one event with a series count.
    assert!(
        events_with_reason(&list, "RolledBack") >= 1,
        "a RolledBack Warning event"
    );

    // (d) A release whose migration fails: aborted, the serving release untouched.
    patch_spec(&fps, NAME, json!({"version": "3.0.1-broken-migrate"})).await;
    let status = wait_stage(&fps, NAME, "Aborted", "3.0.1-broken-migrate").await;
    assert_eq!(status["rollout"]["reason"], "MigrationFailed", "{status}");
    assert!(
        status["rollout"]["message"]
            .as_str()
            .unwrap()
            .contains("migration"),
        "{status}"
    );
    assert_eq!(status["active"]["version"], "2.0.0");
    assert_eq!(active_selector(&client, &namespace).await, second_color);

    // (i) An image that cannot be pulled (a typo in the repository: the node's registry answers
    // 404): the migration Job's pod waits
    // in ErrImagePull, and the rollout aborts after the default 30 s grace instead of at the
    // Job's 600 s deadline.
    let unpullable = "footballprediction/fp-api-servr";
    let asked = Instant::now();
    patch_spec(
        &fps,
        NAME,
        json!({"version": "3.0.3", "image": {"repository": unpullable}}),
    )
    .await;
    let waiting = wait_for("the unpullable image seen", async || {
        let status = fp_status(&fps, NAME).await;
        let seen = &status["rollout"]["startFailure"];
        (
            seen.is_object().then(|| seen.clone()),
            status["rollout"].to_string(),
        )
    })
    .await;
    assert_eq!(waiting["image"], format!("{unpullable}:3.0.3"), "{waiting}");
    let (code, tree) = kubectl_fp(&["status", NAME, "-n", &namespace]);
    assert_eq!(code, 0, "{tree}");
    assert!(
        tree.contains(&format!("image {unpullable}:3.0.3: ")),
        "kubectl fp status shows the waiting container: {tree}"
    );
    let status = wait_stage(&fps, NAME, "Aborted", "3.0.3").await;
    let took = asked.elapsed();
    eprintln!("unpullable image: aborted {took:.1?} after the spec named it");
    assert_eq!(status["rollout"]["reason"], "ImagePullFailed", "{status}");
    let message = status["rollout"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Migrating: container migrate of pod ")
            && message.contains(&format!("(image {unpullable}:3.0.3; "))
            && message.ends_with(&format!("2.0.0 keeps serving on {second_color}")),
        "{message}"
    );
    assert_eq!(condition(&status, "Degraded")["reason"], "ImagePullFailed");
    assert_eq!(status["active"]["version"], "2.0.0");
    assert_eq!(active_selector(&client, &namespace).await, second_color);
    // The Job that would keep pulling is gone.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), &namespace);
    wait_for("the unpullable migration Job removed", async || {
        let list = jobs.list(&ListParams::default()).await.unwrap();
        let left: Vec<String> = list
            .items
            .iter()
            .filter(|j| {
                j.spec.as_ref().is_some_and(|s| {
                    s.template.spec.as_ref().is_some_and(|p| {
                        p.containers
                            .iter()
                            .any(|c| c.image.as_deref() == Some(&format!("{unpullable}:3.0.3")))
                    })
                })
            })
            .map(|j| j.name_any())
            .collect();
        (left.is_empty().then_some(()), format!("{left:?}"))
    })
    .await;

    // (c) A release that fails only after promotion: switched straight back, under traffic. It
    // answers while it serves, and no request fails across the switch there and back.
    let traffic = Traffic::start(&client, &namespace).await;
    traffic.wait_answered_by("2.0.0").await;
    patch_spec(
        &fps,
        NAME,
        json!({"version": "3.0.2-broken-later", "image": {"repository": null},
               "rollout": {"postPromotion": {"duration": "90s"}}}),
    )
    .await;
    wait_stage(&fps, NAME, "PostPromotion", "3.0.2-broken-later").await;
    assert_eq!(active_selector(&client, &namespace).await, first_color);
    let status = wait_stage(&fps, NAME, "Aborted", "3.0.2-broken-later").await;
    assert_eq!(status["rollout"]["reason"], "AnalysisFailed", "{status}");
    assert!(
        status["rollout"]["message"]
            .as_str()
            .unwrap()
            .starts_with("after promotion:"),
        "{status}"
    );
    assert_eq!(status["active"]["version"], "2.0.0");
    assert_eq!(active_selector(&client, &namespace).await, second_color);
    traffic.wait_answered_by("3.0.2-broken-later").await;
    let back_to_2 = traffic.answered_by("2.0.0");
    wait_for("2.0.0 answering again after the rollback", async || {
        let n = traffic.answered_by("2.0.0");
        ((n > back_to_2).then_some(()), format!("{n} answers"))
    })
    .await;
    let tally = traffic.stop("2.0.0 → 3.0.2-broken-later → 2.0.0").await;
    assert!(tally.failures.is_empty(), "{tally:?}");

    // Counted by the leader that rolled back (the next step replaces it).
    let metrics = operator_metrics(&client, &installed.cleanup.operator_namespace).await;
    let instance = format!("fp_name=\"{NAME}\",fp_namespace=\"{namespace}\"");
    assert!(
        metrics.contains(&format!(
            "fp_operator_rollbacks_total{{{instance},reason=\"AnalysisFailed\"}}"
        )),
        "{metrics}"
    );
    // What the FootballPredictionRolledBack alert reads.
    assert!(
        metrics.contains(&format!(
            "fp_rollout_last_rollback_timestamp_seconds{{{instance}}}"
        )),
        "{metrics}"
    );

    // (e), the leader killed in every stage, is e2e/tests/rollout_failover.rs.
    patch_spec(
        &fps,
        NAME,
        json!({"version": "4.0.0", "rollout": {"postPromotion": {"duration": "6s"}}}),
    )
    .await;
    wait_serving(&fps, NAME, "4.0.0").await;
    wait_stage(&fps, NAME, "Idle", "4.0.0").await;
    // (f) Paused, then manual promotion, a refused command, rollback, retry and abort, all
    // through `kubectl fp`.
    patch_spec(
        &fps,
        NAME,
        json!({"version": "5.0.0", "rollout": {"paused": true, "autoPromote": false}}),
    )
    .await;
    let paused = wait_for("Ready False while paused", async || {
        let status = fp_status(&fps, NAME).await;
        let ready = condition(&status, "Ready");
        (
            (ready["reason"] == "Paused").then(|| status.clone()),
            ready.to_string(),
        )
    })
    .await;
    assert_eq!(
        paused["rollout"]["stage"], "Idle",
        "nothing starts while paused"
    );
    assert_eq!(paused["phase"], "Paused");
    assert_eq!(paused["active"]["version"], "4.0.0");
    patch_spec(&fps, NAME, json!({"rollout": {"paused": false}})).await;
    wait_stage(&fps, NAME, "AwaitingPromotion", "5.0.0").await;
    // `kubectl get fp` during a rollout: the desired version, the color still serving, the phase
    // and the stage (and, wide, the release under way).
    let wide = run(
        "kubectl",
        &[
            "get",
            "fp",
            NAME,
            "-n",
            &namespace,
            "--no-headers",
            "-o",
            "wide",
        ],
    );
    let wide: Vec<&str> = wide.split_whitespace().collect();
    assert_eq!(
        &wide[..7],
        &[
            NAME,
            "5.0.0",
            paused["active"]["color"].as_str().unwrap(),
            "False",
            "Progressing",
            "AwaitingPromotion",
            "5.0.0"
        ],
        "{wide:?}"
    );
    let (code, out) = kubectl_fp(&["rollback", NAME, "-n", &namespace]);
    assert_eq!(
        code, 3,
        "rollback does not apply while awaiting promotion: {out}"
    );
    let (code, out) = kubectl_fp(&["promote", NAME, "-n", &namespace]);
    assert_eq!(code, 0, "{out}");
    wait_serving(&fps, NAME, "5.0.0").await;
    let (code, out) = kubectl_fp(&["promote", NAME, "-n", &namespace]);
    assert_eq!(code, 3, "nothing to promote now: {out}");
    wait_stage(&fps, NAME, "Idle", "5.0.0").await;
    let (code, out) = kubectl_fp(&["rollback", NAME, "-n", &namespace]);
    assert_eq!(code, 0, "{out}");
    let status = wait_stage(&fps, NAME, "Aborted", "5.0.0").await;
    assert_eq!(status["rollout"]["reason"], "RolledBack", "{status}");
    assert_eq!(status["active"]["version"], "4.0.0", "{status}");
    let (code, out) = kubectl_fp(&["retry", NAME, "-n", &namespace]);
    assert_eq!(code, 0, "{out}");
    wait_stage(&fps, NAME, "AwaitingPromotion", "5.0.0").await;
    let (code, out) = kubectl_fp(&["abort", NAME, "-n", &namespace]);
    assert_eq!(code, 0, "{out}");
    let status = wait_stage(&fps, NAME, "Aborted", "5.0.0").await;
    assert_eq!(status["rollout"]["reason"], "Aborted", "{status}");
    assert_eq!(status["active"]["version"], "4.0.0", "{status}");
    let (code, tree) = kubectl_fp(&["status", NAME, "-n", &namespace]);
    assert_eq!(code, 0, "{tree}");
    assert!(tree.contains("Aborted"), "{tree}");

    let (code, history) = kubectl_fp(&["history", NAME, "-n", &namespace]);
    assert_eq!(code, 0, "{history}");
    assert!(
        history.contains("5.0.0") && history.contains("4.0.0") && history.contains("2.0.0"),
        "{history}"
    );

    // (h) Configuration is released like a version. Back to the serving 4.0.0 first.
    patch_spec(
        &fps,
        NAME,
        json!({"version": "4.0.0", "rollout": {"autoPromote": true, "progressDeadlineSeconds": 30}}),
    )
    .await;
    let before = wait_stage(&fps, NAME, "Idle", "4.0.0").await;
    let old_config = before["active"]["config"].as_str().unwrap().to_owned();
    let old_color = before["active"]["color"].as_str().unwrap().to_owned();
    // A spec setting of the API server's config file: rolled out on the other color, analysed,
    // switched; the old color keeps its own ConfigMap until it runs something else.
    patch_spec(&fps, NAME, json!({"auth": {"accessTokenTtl": "20m"}})).await;
    let rolled = wait_for("the configuration change rolled out", async || {
        let status = fp_status(&fps, NAME).await;
        let done = status["rollout"]["stage"] == "Idle"
            && status["active"]["config"] != old_config.as_str()
            && status["active"]["version"] == "4.0.0";
        (done.then(|| status.clone()), status["rollout"].to_string())
    })
    .await;
    let new_config = rolled["active"]["config"].as_str().unwrap().to_owned();
    assert_ne!(rolled["active"]["color"], old_color.as_str(), "{rolled}");
    assert_eq!(
        active_selector(&client, &namespace).await,
        rolled["active"]["color"]
    );
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), &namespace);
    let names: Vec<String> = config_maps
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={NAME}")))
        .await
        .unwrap()
        .items
        .iter()
        .map(|cm| cm.name_any())
        .filter(|n| n.starts_with(&format!("{NAME}-config-")))
        .collect();
    assert_eq!(
        names.len(),
        2,
        "the new file and the one the old color keeps: {names:?}"
    );
    assert!(!active_endpoints(&client, &namespace).await.is_empty());

    // An edited Secret the pods read is a release too: a database password that does not work is
    // rejected before traffic reaches it, and the serving pods keep answering.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), &namespace);
    let set_url = async |url: String| {
        secrets
            .patch(
                &format!("{NAME}-database"),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(
                    json!({"stringData": {"url": common::node::url_for_pods(&url)}}),
                ),
            )
            .await
            .expect("patch the database Secret");
    };
    set_url(common::platform::database_url(
        &installed.server,
        &installed.database,
        Some("not-the-password"),
    ))
    .await;
    let rejected = wait_for("the bad Secret rejected", async || {
        let status = fp_status(&fps, NAME).await;
        let r = &status["rollout"];
        let done = r["stage"] == "Aborted" && r["targetConfig"] != new_config.as_str();
        (done.then(|| status.clone()), r.to_string())
    })
    .await;
    assert_eq!(
        rejected["active"]["config"],
        new_config.as_str(),
        "{rejected}"
    );
    assert_eq!(
        active_selector(&client, &namespace).await,
        rejected["active"]["color"]
    );
    let http = reqwest::Client::new();
    for endpoint in active_endpoints(&client, &namespace).await {
        let status = http
            .get(format!("http://{endpoint}/health/ready"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_eq!(status.ok(), Some(200), "serving pod {endpoint} still ready");
    }
    // Put right: the corrected Secret rolls out and serves.
    set_url(installed.database_url()).await;
    wait_for("the corrected Secret rolled out", async || {
        let status = fp_status(&fps, NAME).await;
        let done = status["rollout"]["stage"] == "Idle"
            && status["active"]["config"] != new_config.as_str();
        (done.then_some(()), status["rollout"].to_string())
    })
    .await;
    drop(installed);
}

/// The leader's /metrics, at its pod IP.
async fn operator_metrics(client: &Client, operator_namespace: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), operator_namespace);
    let http = reqwest::Client::new();
    let mut out = String::new();
    for pod in pods.list(&Default::default()).await.unwrap().items {
        let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
            continue;
        };
        let port = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.ports.as_ref())
            .and_then(|ps| ps.iter().find(|p| p.name.as_deref() == Some("admin")))
            .map_or(8080, |p| p.container_port);
        if let Ok(r) = http.get(format!("http://{ip}:{port}/metrics")).send().await {
            out.push_str(&r.text().await.unwrap_or_default());
        }
        eprintln!("scraped {}", pod.name_any());
    }
    out
}
