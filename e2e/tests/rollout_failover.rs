//! Rollout scenario (e): the operator's leader is killed (SIGKILL, no Lease hand-over) in every
//! stage a rollout passes through, from the pre-migration backup to the old color's scale-down.
//! Each time the standby takes the Lease after it expires, resumes from `status.rollout` alone and
//! the release ends up served, with no abort and no second backup or migration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::platform::{
    create_fp, fp_api, fp_status, install, kubectl_fp, leader_is_replaced, patch_spec,
    wait_serving, wait_stage,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DynamicObject};
use serde_json::json;

const NAME: &str = "relay";

/// Every stage of a rollout with a pre-migration backup, a migration and manual promotion.
const STAGES: [&str; 8] = [
    "BackingUp",
    "Migrating",
    "Previewing",
    "Analysing",
    "AwaitingPromotion",
    "Promoting",
    "PostPromotion",
    "ScalingDown",
];

/// A rollout with eight leader changes (each waits for the 15 s Lease to expire) and its stages.
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_leader_resumes_a_rollout_whose_leader_died_in_any_stage() {
    let Some(client) = common::admin_client().await else {
        return;
    };
    let installed = install("e2e-fo", NAME);
    let namespace = installed.namespace.clone();
    let operator_namespace = installed.cleanup.operator_namespace.clone();
    let fps = fp_api(&client, &namespace);

    // Stages long enough to be seen by a poll every 100 ms: two analysis rounds 2 s apart, 20 s
    // after promotion, 15 s before the scale-down, and promotion adds a pod.
    let fp = json!({
        "apiVersion": "footballprediction.io/v1alpha1",
        "kind": "FootballPrediction",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "version": "1.0.0",
            "replicas": 2,
            "database": {"migrations": {"enabled": true}},
            "backup": {"schedule": "0 3 * * *", "storage": {"pvc": {"size": "1Gi"}}},
            "rollout": {
                "previewReplicas": 1,
                "progressDeadlineSeconds": 120,
                "scaleDownDelaySeconds": 15,
                "analysis": {"interval": "2s", "count": 3, "failureLimit": 1, "timeout": "1s"},
                "postPromotion": {"duration": "20s"}
            }
        }
    });
    create_fp(&fps, fp).await;
    wait_serving(&fps, NAME, "1.0.0").await;
    wait_stage(&fps, NAME, "Idle", "1.0.0").await;

    // A stage too short to catch in one rollout is caught in the next one.
    let mut killed: Vec<String> = Vec::new();
    for version in ["2.0.0", "3.0.0", "4.0.0"] {
        if killed.len() == STAGES.len() {
            break;
        }
        patch_spec(
            &fps,
            NAME,
            json!({"version": version, "rollout": {"autoPromote": false}}),
        )
        .await;
        kill_the_leader_in_each_stage(&client, &fps, &operator_namespace, version, &mut killed)
            .await;
        let status = wait_serving(&fps, NAME, version).await;
        assert!(status["lastRollback"].is_null(), "no rollback: {status}");
        assert_eq!(status["history"][0]["version"], version, "{status}");
        assert!(
            status["history"][0]["backupId"].is_string(),
            "the pre-migration backup is recorded: {status}"
        );
    }
    let mut expected = STAGES.map(str::to_owned).to_vec();
    expected.sort();
    killed.sort();
    assert_eq!(killed, expected, "the leader died once in every stage");

    // Resuming never repeated work: one backup and one migration Job per release.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let names: Vec<String> = jobs
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    let backups = names.iter().filter(|n| n.contains("-backup-pre-")).count();
    let status = fp_status(&fps, NAME).await;
    let releases = status["history"].as_array().map_or(0, Vec::len);
    assert!(
        backups <= releases,
        "at most one pre-migration backup Job per release: {names:?} for {releases} releases"
    );
    // The old color went to zero once the last rollout finished.
    let active = status["active"]["color"].as_str().unwrap().to_owned();
    let idle = if active == "blue" { "green" } else { "blue" };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let old = deployments.get(&format!("{NAME}-{idle}")).await.unwrap();
    assert_eq!(old.spec.replicas, Some(0), "old color scaled down");
    drop(installed);
}

/// Follows the rollout of `version` until it is done, killing the leader the first time each
/// stage not yet in `killed` shows up, and promoting when it awaits promotion.
async fn kill_the_leader_in_each_stage(
    client: &kube::Client,
    fps: &Api<DynamicObject>,
    operator_namespace: &str,
    version: &str,
    killed: &mut Vec<String>,
) {
    let namespace = fps.namespace().expect("a namespaced Api");
    let t0 = Instant::now();
    let mut promoted = false;
    loop {
        let status = fp_status(fps, NAME).await;
        let rollout = &status["rollout"];
        let stage = rollout["stage"].as_str().unwrap_or_default().to_owned();
        assert_ne!(
            stage, "Aborted",
            "the rollout of {version} aborted: {status}"
        );
        if stage == "Idle" && status["active"]["version"] == version {
            return;
        }
        let ours = rollout["targetVersion"] == version;
        if ours && STAGES.contains(&stage.as_str()) && !killed.contains(&stage) {
            eprintln!(
                "{:>6.1}s {version}: killing the leader in {stage}",
                t0.elapsed().as_secs_f64()
            );
            leader_is_replaced(client, operator_namespace).await;
            killed.push(stage.clone());
            continue;
        }
        if ours && stage == "AwaitingPromotion" && !promoted {
            let (code, out) = kubectl_fp(&["promote", NAME, "-n", namespace]);
            assert_eq!(code, 0, "promote: {out}");
            promoted = true;
        }
        assert!(
            t0.elapsed() < ROLLOUT_TIMEOUT,
            "the rollout of {version} did not finish; killed in {killed:?}; last: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
