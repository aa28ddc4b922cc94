//! `kubectl fp`: the operator's kubectl plugin (binary `kubectl-fp`). Pure parts here (the Job a
//! manual backup runs, the status tree); the API calls live in [`cli`].

pub mod cli;

use std::fmt::Write as _;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::crd::{FootballPrediction, FootballPredictionStatus};

/// What `kubectl create job --from=cronjob/NAME JOB` creates: the CronJob's Job template, owned
/// by the CronJob (so history limits and garbage collection apply), marked as started by hand.
pub fn job_from_cronjob(cronjob: &CronJob, job_name: &str) -> Job {
    let template = cronjob.spec.job_template.clone();
    let template_meta = template.metadata.unwrap_or_default();
    let mut annotations = template_meta.annotations.unwrap_or_default();
    annotations.insert("cronjob.kubernetes.io/instantiate".into(), "manual".into());
    Job {
        metadata: ObjectMeta {
            name: Some(job_name.to_owned()),
            namespace: cronjob.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: cronjob.metadata.name.clone().unwrap_or_default(),
                uid: cronjob.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        ..Job::default()
    }
}

/// A Job name no earlier manual run used: `<cronjob>-manual-<unix seconds>`, within the 63
/// characters a Job's pods' labels allow.
pub fn manual_job_name(cronjob: &str, unix_seconds: i64) -> String {
    let suffix = format!("-manual-{unix_seconds}");
    let keep = 63usize.saturating_sub(suffix.len());
    let base: String = cronjob.chars().take(keep).collect();
    format!("{}{suffix}", base.trim_end_matches('-'))
}

fn line(out: &mut String, indent: usize, text: impl AsRef<str>) {
    let _ = writeln!(out, "{:indent$}{}", "", text.as_ref(), indent = indent);
}

/// `kubectl fp status NAME`: a readable tree of what the status says.
pub fn render_status(fp: &FootballPrediction) -> String {
    let mut out = String::new();
    let name = fp.metadata.name.as_deref().unwrap_or_default();
    let namespace = fp.metadata.namespace.as_deref().unwrap_or_default();
    let empty = FootballPredictionStatus::default();
    let status = fp.status.as_ref().unwrap_or(&empty);
    let phase = status
        .phase
        .as_ref()
        .map_or("(not reconciled yet)".to_owned(), |p| format!("{p:?}"));
    line(
        &mut out,
        0,
        format!(
            "FootballPrediction {namespace}/{name}: version {}, {phase}",
            fp.spec.version
        ),
    );
    for (role, color) in [("active", &status.active), ("preview", &status.preview)] {
        if let Some(c) = color {
            let version = if c.version.is_empty() {
                "-"
            } else {
                &c.version
            };
            line(
                &mut out,
                2,
                format!(
                    "{role:<8} {:<6} version {version}, {} ready",
                    c.color.as_str(),
                    c.ready_replicas
                ),
            );
        }
    }
    if let Some(rollout) = &status.rollout {
        line(
            &mut out,
            2,
            format!(
                "rollout  {}",
                serde_json::to_string(rollout).unwrap_or_default()
            ),
        );
    }
    if let Some(rollback) = &status.last_rollback {
        line(
            &mut out,
            2,
            format!(
                "last rollback {}",
                serde_json::to_string(rollback).unwrap_or_default()
            ),
        );
    }
    line(&mut out, 2, "conditions");
    for c in &status.conditions {
        let message = if c.message.is_empty() {
            String::new()
        } else {
            format!(": {}", c.message)
        };
        line(
            &mut out,
            4,
            format!("{:<17} {:<7} {}{message}", c.type_, c.status, c.reason),
        );
    }
    if let Some(b) = &status.backup {
        let at = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            t.as_ref().map_or("-".to_owned(), |t| t.0.to_string())
        };
        line(&mut out, 2, "backups");
        line(
            &mut out,
            4,
            format!(
                "last success {} ({}), {} kept, {} bytes",
                at(&b.last_successful_at),
                b.last_backup_id.as_deref().unwrap_or("-"),
                b.count.map_or("-".to_owned(), |c| c.to_string()),
                b.bytes.map_or("-".to_owned(), |c| c.to_string()),
            ),
        );
        if b.last_failed_at.is_some() {
            line(
                &mut out,
                4,
                format!(
                    "last failure {}: {}",
                    at(&b.last_failed_at),
                    b.last_failure_reason.as_deref().unwrap_or("-")
                ),
            );
        }
        if b.last_verified_at.is_some() {
            line(
                &mut out,
                4,
                format!(
                    "last drill   {}: {}",
                    at(&b.last_verified_at),
                    b.last_verify_result.as_deref().unwrap_or("-")
                ),
            );
        }
    }
    if let Some(e) = &status.endpoints {
        line(
            &mut out,
            2,
            format!("endpoints active {} preview {}", e.active, e.preview),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn manual_jobs_copy_the_template_and_belong_to_the_cronjob() {
        let cronjob: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "prod-backup", "namespace": "football", "uid": "u-1"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {
                "metadata": {"labels": {"app.kubernetes.io/instance": "prod"}},
                "spec": {"backoffLimit": 1, "activeDeadlineSeconds": 3600, "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "backup", "image": "i", "args": ["backup"]}]}}}}}
        }))
        .unwrap();
        let job = serde_json::to_value(job_from_cronjob(&cronjob, "prod-backup-manual-1")).unwrap();
        assert_eq!(job["metadata"]["name"], "prod-backup-manual-1");
        assert_eq!(job["metadata"]["namespace"], "football");
        assert_eq!(
            job["metadata"]["labels"]["app.kubernetes.io/instance"],
            "prod"
        );
        assert_eq!(
            job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
            "manual"
        );
        assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(job["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(job["spec"]["activeDeadlineSeconds"], 3600);
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["args"],
            json!(["backup"])
        );
    }

    #[test]
    fn manual_job_names_fit_label_values() {
        assert_eq!(
            manual_job_name("prod-backup", 1_796_000_000),
            "prod-backup-manual-1796000000"
        );
        let long = "a".repeat(36) + "-backup-verify";
        let name = manual_job_name(&long, 1_796_000_000);
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-manual-1796000000"));
    }

    #[test]
    fn status_tree_shows_colors_conditions_and_backups() {
        let fp: FootballPrediction = serde_json::from_value(json!({
            "apiVersion": "footballprediction.io/v1alpha1", "kind": "FootballPrediction",
            "metadata": {"name": "prod", "namespace": "football"},
            "spec": {"version": "1.4.2"},
            "status": {
                "phase": "Healthy",
                "active": {"color": "blue", "version": "1.4.2", "readyReplicas": 3},
                "preview": {"color": "green", "version": "", "readyReplicas": 0},
                "conditions": [{"type": "Ready", "status": "True", "reason": "Serving",
                    "message": "3/3 pods of 1.4.2 (blue) ready",
                    "lastTransitionTime": "2026-11-28T03:00:00Z"}],
                "backup": {"lastSuccessfulAt": "2026-11-28T03:01:00Z",
                    "lastBackupId": "20261128T030000Z", "count": 7, "bytes": 1024,
                    "lastVerifiedAt": "2026-11-29T05:00:00Z", "lastVerifyResult": "Passed"}}
        }))
        .unwrap();
        let text = render_status(&fp);
        assert!(
            text.starts_with("FootballPrediction football/prod: version 1.4.2, Healthy\n"),
            "{text}"
        );
        assert!(
            text.contains("  active   blue   version 1.4.2, 3 ready\n"),
            "{text}"
        );
        assert!(
            text.contains("  preview  green  version -, 0 ready\n"),
            "{text}"
        );
        assert!(
            text.contains("Ready             True    Serving: 3/3 pods"),
            "{text}"
        );
        assert!(
            text.contains(
                "last success 2026-11-28T03:01:00Z (20261128T030000Z), 7 kept, 1024 bytes"
            ),
            "{text}"
        );
        assert!(
            text.contains("last drill   2026-11-29T05:00:00Z: Passed"),
            "{text}"
        );
    }
}
