//! Migration Job `<name>-migrate-<hash>`: runs `fp-api-server migrate` for a release. The name carries
//! a hash of the pod template, because a Job's template is immutable: a new release (or any change
//! to what the Job runs) is a new Job, and an unchanged one is never re-run.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::colors::ColorTarget;
use super::common::{
    Component, child_labels, child_meta, config_volume, container_security_context, contract, env,
    env_from_secret, image_pull_secrets, pod_security_context, resource_requirements, short_hash,
    tmp_volume,
};
use crate::crd::labels;
use crate::validate::Validated;

/// Retries of a failed migration before the Job fails.
const BACKOFF_LIMIT: i32 = 2;

fn template(v: &Validated, target: &ColorTarget) -> PodTemplateSpec {
    let (tmp, tmp_mount) = tmp_volume();
    let (config, config_mount) = config_volume(v);
    let mut pod_labels = child_labels(v, Component::Migration);
    pod_labels.insert(labels::VERSION.to_owned(), target.version.clone());
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
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
                name: "migrate".into(),
                image: Some(target.image.clone()),
                image_pull_policy: Some(v.spec.image.pull_policy.as_str().into()),
                args: Some(vec!["migrate".into()]),
                env: Some(vec![
                    env_from_secret("FP_DATABASE_URL", &v.database_url),
                    env("FP_CONFIG", contract::CONFIG_FILE),
                    env("FP_RELEASE_VERSION", target.version.clone()),
                ]),
                resources: Some(resource_requirements(v)),
                security_context: Some(container_security_context()),
                volume_mounts: Some(vec![config_mount, tmp_mount]),
                termination_message_policy: Some("FallbackToLogsOnError".into()),
                ..Container::default()
            }],
            volumes: Some(vec![config, tmp]),
            ..PodSpec::default()
        }),
    }
}

/// The migration Job for a release, or `None` when migrations are disabled.
pub fn migration_job(v: &Validated, target: &ColorTarget) -> Option<Job> {
    let migrations = &v.spec.database.migrations;
    if !migrations.enabled {
        return None;
    }
    let template = template(v, target);
    let hash = short_hash(
        serde_json::to_string(&template)
            .unwrap_or_default()
            .as_bytes(),
    );
    let mut meta = child_meta(v, v.names.migration_job(&hash), Component::Migration);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(labels::VERSION.to_owned(), target.version.clone());
    Some(Job {
        metadata: meta,
        spec: Some(JobSpec {
            backoff_limit: Some(BACKOFF_LIMIT),
            active_deadline_seconds: Some(migrations.active_deadline_seconds),
            template,
            ..JobSpec::default()
        }),
        ..Job::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn target(version: &str) -> ColorTarget {
        ColorTarget {
            version: version.into(),
            image: format!("footballprediction/fp-api-server:{version}"),
            config: String::new(),
            replicas: Some(2),
        }
    }

    #[test]
    fn runs_migrate_with_the_database_secret() {
        let v = validated(
            json!({"version": "1.4.2", "database": {"migrations": {"activeDeadlineSeconds": 120}}}),
        );
        let job = migration_job(&v, &target("1.4.2")).unwrap();
        let name = job.metadata.name.clone().unwrap();
        assert!(
            name.starts_with("prod-migrate-") && name.len() == "prod-migrate-".len() + 10,
            "{name}"
        );
        let value = serde_json::to_value(&job).unwrap();
        assert_eq!(value["spec"]["activeDeadlineSeconds"], 120);
        assert_eq!(value["spec"]["backoffLimit"], 2);
        let pod = &value["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let c = &pod["containers"][0];
        assert_eq!(c["args"], json!(["migrate"]));
        assert_eq!(c["image"], "footballprediction/fp-api-server:1.4.2");
        assert_eq!(
            c["env"][0]["valueFrom"]["secretKeyRef"]["name"],
            "prod-database"
        );
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(
            value["metadata"]["labels"]["app.kubernetes.io/component"],
            "migration"
        );
    }

    #[test]
    fn a_new_release_is_a_new_job_and_the_same_release_the_same_job() {
        let v = validated(json!({"version": "1.4.2"}));
        let a = migration_job(&v, &target("1.4.2")).unwrap().metadata.name;
        let again = migration_job(&v, &target("1.4.2")).unwrap().metadata.name;
        let b = migration_job(&v, &target("1.4.3")).unwrap().metadata.name;
        assert_eq!(a, again);
        assert_ne!(a, b);
    }

    #[test]
    fn disabled_migrations_build_no_job() {
        let v = validated(json!({"version": "1", "database": {"migrations": {"enabled": false}}}));
        assert!(migration_job(&v, &target("1")).is_none());
    }
}
