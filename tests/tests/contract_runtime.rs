//! The operator–API server contract at run time, checked across the two crates: the command lines
//! the operator gives the API image parse in the API server's own CLI, the summary a backup or
//! drill prints is what the operator reads back into `status.backup`, and the request counter the
//! API server exposes is what rollout analysis sums.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use fp_api_server::backup::create::{BackupSummary, DestinationResult};
use fp_api_server::backup::id::BackupId;
use fp_api_server::backup::outcome::Failure;
use fp_api_server::cli::{Cli, Command};
use fp_api_server::metrics::Metrics;
use fp_operator::controller::analysis::parse_request_counts;
use fp_operator::controller::backup_health::{self, Command as JobCommand};
use fp_operator::crd::{Color, FootballPrediction};
use fp_operator::resources::ColorTarget;
use fp_operator::resources::backup::{BACKUP_CONTAINER, backup_cronjobs, pre_migration_backup_job};
use fp_operator::resources::deployment::deployment;
use fp_operator::resources::migration_job::migration_job;
use fp_operator::validate::{Settings, validate};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::json;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The sample with the most in it (backups with both schedules, before-migration backups).
fn full_sample() -> fp_operator::validate::Validated {
    let text =
        std::fs::read_to_string(workspace().join("docs/samples/footballprediction.yaml")).unwrap();
    let fp = serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .find(|v: &serde_json::Value| v["kind"] == "FootballPrediction")
        .unwrap();
    let mut fp: FootballPrediction = serde_json::from_value(fp).unwrap();
    fp.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    fp.metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    let v = validate(&fp, &Settings::default()).unwrap();
    let backup = v
        .spec
        .backup
        .as_ref()
        .expect("the sample configures backups");
    assert!(
        backup.frequent_schedule.is_some() && backup.before_migration,
        "the sample should exercise every backup Job"
    );
    v
}

/// Every container the operator runs from the API image, named by where it comes from.
fn api_image_containers() -> Vec<(String, Container)> {
    let v = full_sample();
    let target = ColorTarget {
        version: v.spec.version.clone(),
        image: v.image_for(&v.spec.version),
        config: "c1".into(),
        replicas: Some(2),
    };
    let mut out = Vec::new();
    let mut take = |from: String, spec: Option<k8s_openapi::api::core::v1::PodSpec>| {
        for c in spec.unwrap().containers {
            out.push((format!("{from} container {}", c.name), c));
        }
    };
    let pod_spec_of_job = |job: Job| job.spec.unwrap().template.spec;
    for cronjob in backup_cronjobs(&v, &target) {
        let name = cronjob.metadata.name.clone().unwrap();
        take(
            format!("CronJob {name}"),
            cronjob.spec.job_template.spec.unwrap().template.spec,
        );
    }
    take(
        "the pre-migration backup Job".into(),
        pod_spec_of_job(pre_migration_backup_job(&v, &target, "1@t").unwrap()),
    );
    take(
        "the migration Job".into(),
        pod_spec_of_job(migration_job(&v, &target).unwrap()),
    );
    take(
        "the blue Deployment".into(),
        deployment(&v, Color::Blue, &target, "r1", None)
            .spec
            .template
            .spec,
    );
    out
}

/// The container's environment as the flags clap would read from it (`#[arg(env = ...)]`): values
/// from Secrets and the pod become placeholders (the pod IP an address), flags that take no value
/// are passed when set to true.
fn flags_from_env(container: &Container, subcommand: &str) -> Vec<String> {
    let cli = Cli::command();
    let Some(sub) = cli.find_subcommand(subcommand) else {
        return Vec::new();
    };
    // As the kubelet builds it: `$(NAME)` expands to a variable defined earlier in the list.
    let mut env: Vec<(String, String)> = Vec::new();
    for e in container.env.iter().flatten() {
        let field = e
            .value_from
            .as_ref()
            .and_then(|f| f.field_ref.as_ref())
            .map(|f| f.field_path.as_str());
        let mut value = match (field, &e.value) {
            (Some("status.podIP"), _) => "198.18.0.7".to_owned(),
            (Some(_), _) => "from-the-pod".to_owned(),
            (None, Some(v)) => v.clone(),
            (None, None) => "from-a-secret".to_owned(),
        };
        for (name, earlier) in &env {
            value = value.replace(&format!("$({name})"), earlier);
        }
        env.push((e.name.clone(), value));
    }
    let mut flags = Vec::new();
    for arg in sub.get_arguments() {
        let (Some(name), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let Some((_, value)) = env.iter().find(|(n, _)| name == n.as_str()) else {
            continue;
        };
        if arg.get_action().takes_values() {
            flags.extend([format!("--{long}"), value.clone()]);
        } else if value == "true" || value == "1" {
            flags.push(format!("--{long}"));
        }
    }
    flags
}

#[test]
fn every_command_line_the_operator_writes_parses_in_the_api_servers_cli() {
    let containers = api_image_containers();
    let mut subcommands = Vec::new();
    for (from, container) in &containers {
        assert_eq!(
            container.command, None,
            "{from}: the image's entrypoint runs"
        );
        let mut args = container.args.clone().unwrap_or_default();
        let subcommand = args.first().cloned().unwrap_or_default();
        args.extend(flags_from_env(container, &subcommand));
        let argv = std::iter::once("fp-api-server".to_owned()).chain(args.iter().cloned());
        let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| {
            panic!(
                "{from}: `fp-api-server {}` is refused:\n{e}",
                args.join(" ")
            )
        });
        let subcommand = match cli.command {
            Some(Command::Serve(_)) => "serve",
            Some(Command::Migrate(_)) => "migrate",
            Some(Command::Import(_)) => "import",
            Some(Command::Backup(_)) => args[0].as_str(),
            None => "serve (default)",
        };
        subcommands.push(subcommand.to_owned());
    }
    subcommands.sort();
    subcommands.dedup();
    assert_eq!(subcommands, ["backup", "migrate", "serve", "verify"]);
}

#[test]
fn the_cli_refuses_a_flag_it_does_not_know() {
    // What makes the test above mean something: an invented flag does not parse.
    let (_, container) = api_image_containers()
        .into_iter()
        .find(|(_, c)| c.name == BACKUP_CONTAINER)
        .unwrap();
    let mut args = container.args.unwrap();
    args.push("--invented-by-the-operator".into());
    let argv = std::iter::once("fp-api-server".to_owned()).chain(args);
    assert!(Cli::try_parse_from(argv).is_err());
}

/// A finished Job of the backup CronJob whose pod terminated with `message`.
fn finished(message: &str, condition: &str) -> (Job, Pod) {
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "prod-backup-29000000", "ownerReferences": [
            {"apiVersion": "batch/v1", "kind": "CronJob", "name": "prod-backup", "uid": "u"}]},
        "status": {"conditions": [{"type": condition, "status": "True",
            "lastTransitionTime": "2026-12-01T03:01:00Z"}]}
    }))
    .unwrap();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "prod-backup-29000000-x", "creationTimestamp": "2026-12-01T03:00:00Z",
                     "labels": {"batch.kubernetes.io/job-name": "prod-backup-29000000"}},
        "status": {"containerStatuses": [{"name": BACKUP_CONTAINER, "image": "i", "imageID": "",
            "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "message": message}}}]}
    }))
    .unwrap();
    (job, pod)
}

fn summary(ok: bool, destinations: Vec<DestinationResult>) -> BackupSummary {
    BackupSummary {
        command: "backup",
        ok,
        id: Some(BackupId::from_time("2026-12-01T03:00:00Z".parse().unwrap())),
        database: Some("football".into()),
        size_bytes: Some(100_609),
        sha256: Some("ab".repeat(32)),
        migration_version: Some(7),
        tables: Some(9),
        rows: Some(123_456),
        dump_seconds: Some(1.5),
        duration_seconds: 2.25,
        destinations,
        reason: None,
        error: None,
    }
}

fn destination(ok: bool, count: Option<usize>, bytes: Option<u64>) -> DestinationResult {
    DestinationResult {
        destination: "file:///var/lib/fp/backups".into(),
        ok,
        upload_seconds: Some(0.4),
        verify_seconds: Some(0.1),
        prune: None,
        count,
        bytes,
        reason: None,
        error: None,
    }
}

#[test]
fn a_backup_summary_reads_back_into_the_backup_status() {
    let printed = serde_json::to_string(&summary(
        true,
        vec![destination(true, Some(7), Some(704_263))],
    ))
    .unwrap();
    let (job, pod) = finished(&printed, "Complete");
    let outcome = backup_health::job_outcome(&job, &[pod]).unwrap();
    assert_eq!(outcome.command, JobCommand::Backup);
    assert!(outcome.succeeded, "{outcome:?}");
    let status = backup_health::merge(None, &[outcome]);
    assert_eq!(status.last_backup_id.as_deref(), Some("20261201T030000Z"));
    assert_eq!((status.count, status.bytes), (Some(7), Some(704_263)));
}

#[test]
fn a_failed_backup_keeps_the_programs_reason_in_the_status() {
    let mut failed = summary(false, vec![destination(false, None, None)]);
    failed.reason = Some(Failure::StorageAccessDenied);
    failed.error = Some("s3://b/p rejected the credentials".into());
    let printed = serde_json::to_string(&failed).unwrap();
    // The program exits non-zero, so the Job fails; its summary still explains why.
    let (job, pod) = finished(&printed, "Failed");
    let outcome = backup_health::job_outcome(&job, &[pod]).unwrap();
    assert!(!outcome.succeeded);
    assert_eq!(
        outcome.failure_text(),
        "StorageAccessDenied: s3://b/p rejected the credentials"
    );
}

#[test]
fn the_request_counter_the_api_server_exposes_is_what_analysis_sums() {
    let metrics = Metrics::new("1.4.2").unwrap();
    for status in ["200", "200", "404", "503"] {
        metrics.observe_request("GET", "/api/v1/matches", status, 0.01);
    }
    metrics.observe_request("POST", "/api/v1/auth/login", "500", 0.2);
    // The kubelet's and the analysis' own probes do not count as user requests.
    for _ in 0..10 {
        metrics.observe_request("GET", "/health/ready", "503", 0.001);
    }
    let counts = parse_request_counts(&metrics.render(None)).expect("the counter is found");
    assert_eq!((counts.total, counts.server_errors), (5.0, 2.0));
}
