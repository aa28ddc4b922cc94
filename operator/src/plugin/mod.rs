//! `kubectl fp`: the operator's kubectl plugin (binary `kubectl-fp`). Pure parts here (the Job a
//! manual backup runs, the status tree); the API calls live in [`cli`].

pub mod alerts;
pub mod cli;
pub mod rollout;

use std::fmt::Write as _;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{FootballPrediction, FootballPredictionStatus, RolloutCommand};
use rollout::rollback_text;

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

fn time_or_dash(time: Option<&Time>) -> String {
    time.map_or("-".to_owned(), |t| t.0.to_string())
}

/// The rollout part of the status tree: stage and since when, the release and color it targets,
/// analysis results, the operator's last words, requests not yet taken, and the last rollback.
fn render_rollout(out: &mut String, fp: &FootballPrediction, status: &FootballPredictionStatus) {
    if let Some(rollout) = &status.rollout {
        let mut head = format!(
            "rollout  {} since {}",
            rollout.stage.as_str(),
            time_or_dash(rollout.stage_started_at.as_ref())
        );
        if !rollout.target_version.is_empty() {
            let color = rollout
                .target_color
                .map_or(String::new(), |c| format!(" on {}", c.as_str()));
            let target = &rollout.target_version;
            let what = match (rollout.rollback, rollout.from_version.as_str()) {
                (true, "") => format!("rollback to {target}"),
                (true, from) => format!("rollback {from} → {target}"),
                (false, "") => format!("first release {target}"),
                (false, from) => format!("{from} → {target}"),
            };
            let _ = write!(
                head,
                ": {what}{color}, started {}",
                time_or_dash(rollout.started_at.as_ref())
            );
        }
        line(out, 2, head);
        if let Some(checks) = &rollout.checks {
            let last_error = if checks.last_error.is_empty() {
                String::new()
            } else {
                format!(", last error: {}", checks.last_error)
            };
            line(
                out,
                4,
                format!(
                    "checks   {} passed, {} failed, last round {}{last_error}",
                    checks.passed,
                    checks.failed,
                    time_or_dash(checks.last_round_at.as_ref())
                ),
            );
        }
        if let Some(f) = &rollout.start_failure {
            let message = if f.message.is_empty() {
                String::new()
            } else {
                format!(": {}", f.message)
            };
            line(
                out,
                4,
                format!(
                    "waiting  pod {} container {} image {}: {}{message} since {}",
                    f.pod, f.container, f.image, f.waiting_reason, f.since.0
                ),
            );
        }
        if let Some(backup_id) = &rollout.backup_id {
            line(out, 4, format!("backup   {backup_id}"));
        }
        if !rollout.reason.is_empty() {
            line(out, 4, format!("reason   {}", rollout.reason));
        }
        if !rollout.message.is_empty() {
            line(out, 4, format!("message  {}", rollout.message));
        }
    }
    // Requests the operator has not taken yet, whatever the status says.
    for command in RolloutCommand::ALL {
        if let Some(request_id) = rollout::pending_request_id(command, fp) {
            line(out, 2, format!("pending  {command} requested {request_id}"));
        }
    }
    if let Some(rollback) = &status.last_rollback {
        line(out, 2, format!("last rollback {}", rollback_text(rollback)));
    }
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
            let config = if c.config.is_empty() {
                String::new()
            } else {
                format!(", configuration {}", c.config)
            };
            line(
                &mut out,
                2,
                format!(
                    "{role:<8} {:<6} version {version}{config}, {} ready",
                    c.color.as_str(),
                    c.ready_replicas
                ),
            );
        }
    }
    render_rollout(&mut out, fp, status);
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
        let at = |t: &Option<Time>| time_or_dash(t.as_ref());
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
                "active": {"color": "blue", "version": "1.4.2", "config": "5d41402abc",
                    "readyReplicas": 3},
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
            text.contains("  active   blue   version 1.4.2, configuration 5d41402abc, 3 ready\n"),
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

    #[test]
    fn status_tree_shows_the_rollout_pending_requests_and_the_last_rollback() {
        let fp: FootballPrediction = serde_json::from_value(json!({
            "apiVersion": "footballprediction.io/v1alpha1", "kind": "FootballPrediction",
            "metadata": {"name": "prod", "namespace": "football",
                "annotations": {"footballprediction.io/abort": "2026-11-29T10:04:00Z"}},
            "spec": {"version": "1.5.0"},
            "status": {
                "phase": "Progressing",
                "active": {"color": "blue", "version": "1.4.2", "readyReplicas": 3},
                "preview": {"color": "green", "version": "1.5.0", "readyReplicas": 1},
                "rollout": {"stage": "Analysing", "targetVersion": "1.5.0",
                    "targetImage": "footballprediction/fp-api-server:1.5.0",
                    "targetColor": "green", "fromVersion": "1.4.2",
                    "startedAt": "2026-11-29T10:00:00Z", "stageStartedAt": "2026-11-29T10:02:00Z",
                    "checks": {"passed": 4, "failed": 1, "lastRoundAt": "2026-11-29T10:03:30Z",
                        "lastError": "GET /health on 10.0.0.7: 503"},
                    "backupId": "20261129T100000Z",
                    "startFailure": {"pod": "prod-green-7c9d-x2", "container": "api",
                        "image": "footballprediction/fp-api-server:1.5.0", "waitingReason": "CrashLoopBackOff",
                        "message": "back-off 40s restarting failed container", "since": "2026-11-29T10:03:00Z"},
                    "message": "analysis round 5 of 10"},
                "lastRollback": {"at": "2026-11-27T12:00:00Z", "fromVersion": "1.4.3",
                    "toVersion": "1.4.2", "reason": "AnalysisFailed", "message": "p99 1.8s > 1s"},
                "history": [{"version": "1.4.2", "promotedAt": "2026-11-20T03:00:00Z"}]}
        }))
        .unwrap();
        let text = render_status(&fp);
        let expected = "\
FootballPrediction football/prod: version 1.5.0, Progressing
  active   blue   version 1.4.2, 3 ready
  preview  green  version 1.5.0, 1 ready
  rollout  Analysing since 2026-11-29T10:02:00Z: 1.4.2 → 1.5.0 on green, started 2026-11-29T10:00:00Z
    checks   4 passed, 1 failed, last round 2026-11-29T10:03:30Z, last error: GET /health on 10.0.0.7: 503
    waiting  pod prod-green-7c9d-x2 container api image footballprediction/fp-api-server:1.5.0: CrashLoopBackOff: back-off 40s restarting failed container since 2026-11-29T10:03:00Z
    backup   20261129T100000Z
    message  analysis round 5 of 10
  pending  abort requested 2026-11-29T10:04:00Z
  last rollback 2026-11-27T12:00:00Z 1.4.3 → 1.4.2, AnalysisFailed: p99 1.8s > 1s
  conditions
";
        assert_eq!(text, expected);
    }

    #[test]
    fn status_tree_of_an_idle_rollout_is_one_line() {
        let fp: FootballPrediction = serde_json::from_value(json!({
            "apiVersion": "footballprediction.io/v1alpha1", "kind": "FootballPrediction",
            "metadata": {"name": "prod", "namespace": "football"},
            "spec": {"version": "1.4.2"},
            "status": {"rollout": {"stage": "Idle", "stageStartedAt": "2026-11-20T03:05:00Z"}}
        }))
        .unwrap();
        let text = render_status(&fp);
        assert!(
            text.contains("\n  rollout  Idle since 2026-11-20T03:05:00Z\n  conditions\n"),
            "{text}"
        );
    }
}
