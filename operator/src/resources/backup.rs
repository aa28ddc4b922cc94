//! Backups for `spec.backup`: CronJobs `<name>-backup`, `<name>-backup-frequent` (when
//! `frequentSchedule` is set) and `<name>-backup-verify` (the restore drill), all running the API
//! image's backup subcommands, and the claim `<name>-backups` for PVC storage.
//!
//! The claim carries no ownerReference on purpose: deleting the FootballPrediction must not delete
//! its backups. Every CronJob has concurrencyPolicy Forbid and an activeDeadlineSeconds, and the
//! command's own `--timeout` ends it cleanly before that, so a backup can never hang forever.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::colors::ColorTarget;
use super::common::{
    Component, child_labels, child_meta, container_security_context, contract, env,
    env_from_secret, image_pull_secrets, pod_security_context, resource_requirements, short_hash,
    tmp_volume,
};
use crate::crd::{BackupSpec, SecretKeyRef};
use crate::validate::Validated;

/// Where the backup command writes its JSON summary; Kubernetes keeps it as the termination message.
pub const SUMMARY_FILE: &str = "/dev/termination-log";
/// The container of backup and drill Jobs, whose termination message the status is read from.
pub const BACKUP_CONTAINER: &str = "backup";
/// Seconds between the command's own timeout and the Job's deadline, for a clean summary.
const TIMEOUT_MARGIN_SECONDS: i64 = 30;
/// Finished Jobs kept per CronJob (their termination messages are the backup history).
const HISTORY: i32 = 3;
/// A missed schedule may still start this late (e.g. after a control-plane outage).
const STARTING_DEADLINE_SECONDS: i64 = 600;

/// Name of the claim backups are written to, if PVC storage is configured.
pub fn backup_claim_name(v: &Validated, backup: &BackupSpec) -> Option<String> {
    let pvc = backup.storage.pvc.as_ref()?;
    Some(
        pvc.existing_claim
            .clone()
            .unwrap_or_else(|| v.names.backup_pvc()),
    )
}

/// The claim the operator creates, unless storage uses an existing claim or no PVC.
pub fn backup_pvc(v: &Validated) -> Option<PersistentVolumeClaim> {
    let pvc = v.spec.backup.as_ref()?.storage.pvc.as_ref()?;
    if pvc.existing_claim.is_some() {
        return None;
    }
    let mut meta = child_meta(v, v.names.backup_pvc(), Component::Backup);
    meta.owner_references = None;
    Some(PersistentVolumeClaim {
        metadata: meta,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: pvc.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(pvc.size.clone()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}

/// Destination URLs of the backup command: the volume first, then the off-site bucket.
pub fn destinations(v: &Validated, backup: &BackupSpec) -> Vec<String> {
    let mut out = Vec::new();
    if backup_claim_name(v, backup).is_some() {
        out.push(format!("file://{}", contract::BACKUP_DIR));
    }
    if let Some(s3) = &backup.storage.s3 {
        let prefix = s3.prefix.trim_matches('/');
        out.push(if prefix.is_empty() {
            format!("s3://{}", s3.bucket)
        } else {
            format!("s3://{}/{prefix}", s3.bucket)
        });
    }
    out
}

fn s3_env(backup: &BackupSpec) -> Vec<EnvVar> {
    let Some(s3) = &backup.storage.s3 else {
        return Vec::new();
    };
    let key = |key: &str| SecretKeyRef {
        name: s3.credentials_secret_ref.name.clone(),
        key: key.into(),
    };
    let mut vars = vec![
        env("FP_S3_ENDPOINT", s3.endpoint.clone()),
        env_from_secret("FP_S3_ACCESS_KEY_ID", &key("accessKeyId")),
        env_from_secret("FP_S3_SECRET_ACCESS_KEY", &key("secretAccessKey")),
    ];
    if let Some(region) = &s3.region {
        vars.push(env("FP_S3_REGION", region.clone()));
    }
    vars
}

fn cronjob(
    v: &Validated,
    backup: &BackupSpec,
    target: &ColorTarget,
    name: String,
    schedule: &str,
    args: Vec<String>,
) -> CronJob {
    let (tmp, tmp_mount) = tmp_volume();
    let mut volumes = vec![tmp];
    let mut mounts = vec![tmp_mount];
    if let Some(claim) = backup_claim_name(v, backup) {
        volumes.push(Volume {
            name: "backups".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim,
                read_only: None,
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "backups".into(),
            mount_path: contract::BACKUP_DIR.into(),
            ..VolumeMount::default()
        });
    }
    let mut vars = vec![env_from_secret("FP_DATABASE_URL", &v.database_url)];
    vars.extend(s3_env(backup));
    let labels = child_labels(v, Component::Backup);
    CronJob {
        metadata: child_meta(v, name, Component::Backup),
        spec: CronJobSpec {
            schedule: schedule.to_owned(),
            time_zone: backup.time_zone.clone(),
            suspend: Some(backup.suspend),
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(STARTING_DEADLINE_SECONDS),
            successful_jobs_history_limit: Some(HISTORY),
            failed_jobs_history_limit: Some(HISTORY),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(1),
                    active_deadline_seconds: Some(backup.active_deadline_seconds),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(PodSpec {
                            restart_policy: Some("Never".into()),
                            service_account_name: Some(v.names.service_account()),
                            automount_service_account_token: Some(false),
                            enable_service_links: Some(false),
                            security_context: Some(pod_security_context()),
                            image_pull_secrets: image_pull_secrets(v),
                            containers: vec![Container {
                                name: BACKUP_CONTAINER.into(),
                                image: Some(target.image.clone()),
                                image_pull_policy: Some(v.spec.image.pull_policy.as_str().into()),
                                args: Some(args),
                                env: Some(vars),
                                resources: Some(resource_requirements(v)),
                                security_context: Some(container_security_context()),
                                volume_mounts: Some(mounts),
                                termination_message_path: Some(SUMMARY_FILE.into()),
                                termination_message_policy: Some("FallbackToLogsOnError".into()),
                                ..Container::default()
                            }],
                            volumes: Some(volumes),
                            ..PodSpec::default()
                        }),
                    },
                    ..JobSpec::default()
                }),
            },
        },
        ..CronJob::default()
    }
}

fn common_args(backup: &BackupSpec) -> Vec<String> {
    let timeout = (backup.active_deadline_seconds - TIMEOUT_MARGIN_SECONDS).max(30);
    vec![
        "--timeout".into(),
        format!("{timeout}s"),
        "--summary-file".into(),
        SUMMARY_FILE.into(),
    ]
}

fn backup_args(v: &Validated, backup: &BackupSpec) -> Vec<String> {
    let mut args = vec!["backup".to_owned()];
    for destination in destinations(v, backup) {
        args.push("--destination".into());
        args.push(destination);
    }
    args.extend([
        "--keep-last".to_owned(),
        backup.retention.keep_last.to_string(),
        "--max-age".to_owned(),
        backup.retention.max_age.clone(),
    ]);
    args.extend(common_args(backup));
    args
}

/// The drill restores from the off-site copy when there is one: that is the copy that must work
/// when the cluster (and its volumes) are gone.
fn verify_args(v: &Validated, backup: &BackupSpec) -> Vec<String> {
    let destination = destinations(v, backup).pop().unwrap_or_default();
    let mut args = vec![
        "verify".to_owned(),
        "--destination".into(),
        destination,
        "--backup".into(),
        "latest".into(),
        "--work-dir".into(),
        contract::TMP_DIR.into(),
    ];
    args.extend(common_args(backup));
    args
}

/// The backup CronJobs, or none when `spec.backup` is absent.
pub fn backup_cronjobs(v: &Validated, target: &ColorTarget) -> Vec<CronJob> {
    let Some(backup) = &v.spec.backup else {
        return Vec::new();
    };
    let mut jobs = vec![cronjob(
        v,
        backup,
        target,
        v.names.backup_cronjob(),
        &backup.schedule,
        backup_args(v, backup),
    )];
    if let Some(frequent) = &backup.frequent_schedule {
        jobs.push(cronjob(
            v,
            backup,
            target,
            v.names.frequent_backup_cronjob(),
            frequent,
            backup_args(v, backup),
        ));
    }
    jobs.push(cronjob(
        v,
        backup,
        target,
        v.names.verify_cronjob(),
        &backup.verify.schedule,
        verify_args(v, backup),
    ));
    jobs
}

/// The one-off backup Job a rollout runs before its migration (`backup.beforeMigration`): the
/// scheduled backup's Job template under a name unique to the rollout (`rollout_key`, e.g. the
/// target version and start time), so a retried rollout takes a fresh backup. It carries the
/// backup labels, so its result also counts in `status.backup`.
pub fn pre_migration_backup_job(
    v: &Validated,
    target: &ColorTarget,
    rollout_key: &str,
) -> Option<Job> {
    let backup = v.spec.backup.as_ref().filter(|b| b.before_migration)?;
    let template = cronjob(
        v,
        backup,
        target,
        String::new(),
        &backup.schedule,
        backup_args(v, backup),
    )
    .spec
    .job_template;
    let name = v
        .names
        .pre_migration_backup_job(&short_hash(rollout_key.as_bytes()));
    let mut metadata = child_meta(v, name, Component::Backup);
    if let Some(labels) = template.metadata.and_then(|m| m.labels) {
        metadata
            .labels
            .get_or_insert_with(Default::default)
            .extend(labels);
    }
    Some(Job {
        metadata,
        spec: template.spec,
        ..Job::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};

    fn target() -> ColorTarget {
        ColorTarget {
            version: "1.4.2".into(),
            image: "footballprediction/fp-api-server:1.4.2".into(),
            config: String::new(),
            replicas: Some(2),
        }
    }

    fn both() -> Validated {
        validated(json!({"version": "1.4.2", "backup": {
            "schedule": "0 3 * * *", "frequentSchedule": "0 */6 * * *", "timeZone": "Europe/London",
            "retention": {"keepLast": 7, "maxAge": "168h"}, "activeDeadlineSeconds": 1800,
            "storage": {"pvc": {"size": "20Gi", "storageClassName": "fast"},
                        "s3": {"endpoint": "http://127.0.0.1:9000", "bucket": "fp-backups", "prefix": "prod/", "region": "eu-west-1",
                               "credentialsSecretRef": {"name": "fp-s3"}}}}}))
    }

    fn container(job: &CronJob) -> Value {
        serde_json::to_value(job).unwrap()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].clone()
    }

    #[test]
    fn no_backups_without_spec() {
        let v = validated(json!({"version": "1"}));
        assert!(backup_cronjobs(&v, &target()).is_empty());
        assert!(backup_pvc(&v).is_none());
    }

    #[test]
    fn cronjobs_cannot_overlap_or_hang() {
        let jobs = backup_cronjobs(&both(), &target());
        let names: Vec<&str> = jobs
            .iter()
            .map(|j| j.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(
            names,
            ["prod-backup", "prod-backup-frequent", "prod-backup-verify"]
        );
        for job in &jobs {
            let value = serde_json::to_value(job).unwrap();
            let spec = &value["spec"];
            assert_eq!(spec["concurrencyPolicy"], "Forbid");
            assert_eq!(spec["timeZone"], "Europe/London");
            assert_eq!(spec["suspend"], false);
            assert_eq!(spec["successfulJobsHistoryLimit"], 3);
            assert_eq!(spec["failedJobsHistoryLimit"], 3);
            assert_eq!(spec["jobTemplate"]["spec"]["activeDeadlineSeconds"], 1800);
            assert_eq!(spec["jobTemplate"]["spec"]["backoffLimit"], 1);
            assert_eq!(
                spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"],
                "Never"
            );
        }
        assert_eq!(
            serde_json::to_value(&jobs[1]).unwrap()["spec"]["schedule"],
            "0 */6 * * *"
        );
    }

    #[test]
    fn backup_writes_to_the_volume_and_the_bucket_with_retention() {
        let c = container(&backup_cronjobs(&both(), &target())[0]);
        assert_eq!(
            c["args"],
            json!([
                "backup",
                "--destination",
                "file:///var/lib/fp/backups",
                "--destination",
                "s3://fp-backups/prod",
                "--keep-last",
                "7",
                "--max-age",
                "168h",
                "--timeout",
                "1770s",
                "--summary-file",
                "/dev/termination-log"
            ])
        );
        assert_eq!(c["image"], "footballprediction/fp-api-server:1.4.2");
        let env: Vec<Value> = c["env"].as_array().unwrap().clone();
        assert_eq!(
            env[0]["valueFrom"]["secretKeyRef"],
            json!({"name": "prod-database", "key": "url", "optional": false})
        );
        assert_eq!(
            env[1],
            json!({"name": "FP_S3_ENDPOINT", "value": "http://127.0.0.1:9000"})
        );
        assert_eq!(
            env[2]["valueFrom"]["secretKeyRef"],
            json!({"name": "fp-s3", "key": "accessKeyId", "optional": false})
        );
        assert_eq!(
            env[3]["valueFrom"]["secretKeyRef"],
            json!({"name": "fp-s3", "key": "secretAccessKey", "optional": false})
        );
        assert_eq!(
            env[4],
            json!({"name": "FP_S3_REGION", "value": "eu-west-1"})
        );
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        let mounts: Vec<&str> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        assert_eq!(mounts, ["/tmp", "/var/lib/fp/backups"]);
    }

    #[test]
    fn drill_restores_the_offsite_copy() {
        let c = container(&backup_cronjobs(&both(), &target())[2]);
        assert_eq!(
            c["args"],
            json!([
                "verify",
                "--destination",
                "s3://fp-backups/prod",
                "--backup",
                "latest",
                "--work-dir",
                "/tmp",
                "--timeout",
                "1770s",
                "--summary-file",
                "/dev/termination-log"
            ])
        );
    }

    #[test]
    fn backup_claim_survives_the_footballprediction() {
        let pvc = backup_pvc(&both()).unwrap();
        assert_eq!(pvc.metadata.name.as_deref(), Some("prod-backups"));
        assert!(pvc.metadata.owner_references.is_none());
        let value = serde_json::to_value(&pvc).unwrap();
        assert_eq!(value["spec"]["resources"]["requests"]["storage"], "20Gi");
        assert_eq!(value["spec"]["storageClassName"], "fast");
        assert_eq!(
            value["metadata"]["labels"]["app.kubernetes.io/instance"],
            "prod"
        );
    }

    #[test]
    fn existing_claims_are_used_not_created_and_defaults_use_a_volume() {
        let v = validated(
            json!({"version": "1", "backup": {"storage": {"pvc": {"existingClaim": "nfs-backups"}}}}),
        );
        assert!(backup_pvc(&v).is_none());
        let jobs = backup_cronjobs(&v, &target());
        let value = serde_json::to_value(&jobs[0]).unwrap();
        let volumes = &value["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"];
        assert_eq!(
            volumes[1]["persistentVolumeClaim"]["claimName"],
            "nfs-backups"
        );
        assert_eq!(jobs.len(), 2, "backup and verify, no frequent schedule");

        let defaults = validated(json!({"version": "1", "backup": {}}));
        assert_eq!(
            backup_pvc(&defaults).unwrap().metadata.name.as_deref(),
            Some("prod-backups")
        );
        let c = container(&backup_cronjobs(&defaults, &target())[1]);
        assert_eq!(
            c["args"][2], "file:///var/lib/fp/backups",
            "the drill uses the volume when there is no bucket"
        );
    }
}
