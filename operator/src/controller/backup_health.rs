//! `status.backup` and the BackupHealthy condition, from the backup and drill Jobs' results. Pure:
//! the reconcile lists the Jobs and their pods, this module reads them.
//!
//! Each backup or drill pod writes the program's one-line JSON summary to its termination log
//! (docs/ops/backup.md), so the result (backup id, size, failure reason) survives in the pod status.
//! Jobs age out of the CronJobs' history; what they said is kept in `status.backup` and only
//! replaced by something newer. Messages carry absolute times, never "5m ago", so an unchanged
//! situation never rewrites the status.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use crate::crd::{BackupSpec, BackupStatus};
use crate::cron::expected_interval;
use crate::reason::Reason;
use crate::resources::backup::BACKUP_CONTAINER as CONTAINER;

/// Label the Job controller puts on a Job's pods.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// Longest failure text kept in `status.backup.lastFailureReason`.
const MAX_REASON_CHARS: usize = 300;
/// A backup is overdue once the newest success is older than this many schedule intervals.
const STALE_FACTOR: f64 = 1.5;

/// Which program a Job ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Backup,
    Verify,
}

/// The summary line `fp-api-server backup|verify` prints (the fields read here).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Summary {
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub ok: bool,
    pub id: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    #[serde(default)]
    pub destinations: Vec<DestinationSummary>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct DestinationSummary {
    #[serde(default)]
    pub ok: bool,
    /// Complete backups at this destination after pruning.
    pub count: Option<i64>,
    /// Their total size.
    pub bytes: Option<i64>,
}

/// One finished backup or drill Job.
#[derive(Clone, Debug, PartialEq)]
pub struct JobOutcome {
    pub command: Command,
    pub succeeded: bool,
    pub finished_at: Timestamp,
    pub summary: Option<Summary>,
    /// The Job's own failure reason (e.g. DeadlineExceeded, BackoffLimitExceeded).
    pub job_reason: Option<String>,
    /// A termination message that is not a summary (the log tail of a crash).
    pub other_message: Option<String>,
}

impl JobOutcome {
    /// What went wrong, for `lastFailureReason` and the condition message.
    pub fn failure_text(&self) -> String {
        let from_summary = self
            .summary
            .as_ref()
            .and_then(|s| match (&s.reason, &s.error) {
                (Some(reason), Some(error)) => Some(format!("{reason}: {error}")),
                (Some(reason), None) => Some(reason.clone()),
                (None, Some(error)) => Some(error.clone()),
                (None, None) => None,
            });
        let text = from_summary
            .or_else(|| {
                let message = self.other_message.as_deref()?.trim();
                let last = message.lines().last()?;
                Some(match &self.job_reason {
                    Some(reason) => format!("{reason}: {last}"),
                    None => last.to_owned(),
                })
            })
            .or_else(|| self.job_reason.clone())
            .unwrap_or_else(|| "the Job failed without a summary".to_owned());
        truncate_chars(&text, MAX_REASON_CHARS)
    }
}

fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn condition_time(job: &Job, type_: &str) -> Option<Timestamp> {
    let status = job.status.as_ref()?;
    let condition = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")?;
    let at = condition
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| status.completion_time.as_ref().map(|t| t.0))?;
    Some(at)
}

/// The termination message of the newest pod of `job` that has one, without passwords.
fn termination_message(job_name: &str, pods: &[Pod]) -> Option<String> {
    let mut own: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(JOB_NAME_LABEL))
                .is_some_and(|n| n == job_name)
        })
        .collect();
    own.sort_by_key(|p| std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)));
    own.iter().find_map(|pod| {
        let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
        let container = statuses.iter().find(|c| c.name == CONTAINER)?;
        let message = container
            .state
            .as_ref()?
            .terminated
            .as_ref()?
            .message
            .clone()?;
        // The program redacts what it prints; a log tail (FallbackToLogsOnError) may hold more.
        (!message.trim().is_empty()).then(|| fp_contract::redact::redact(&message))
    })
}

/// Which program the Job ran: the drill CronJob's name ends in `-backup-verify`.
fn command_of(job: &Job, summary: Option<&Summary>) -> Command {
    if let Some(summary) = summary {
        return if summary.command == "verify" {
            Command::Verify
        } else {
            Command::Backup
        };
    }
    let from_verify = job
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "CronJob" && o.name.ends_with("-backup-verify"));
    if from_verify {
        Command::Verify
    } else {
        Command::Backup
    }
}

/// A finished Job's outcome; `None` while it runs.
pub fn job_outcome(job: &Job, pods: &[Pod]) -> Option<JobOutcome> {
    let name = job.metadata.name.as_deref()?;
    let (succeeded, finished_at) = match (
        condition_time(job, "Complete"),
        condition_time(job, "Failed"),
    ) {
        (Some(at), _) => (true, at),
        (None, Some(at)) => (false, at),
        (None, None) => return None,
    };
    let job_reason = job.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Failed" && c.status == "True")
            .and_then(|c| c.reason.clone())
    });
    let message = termination_message(name, pods);
    let summary = message
        .as_deref()
        .and_then(|m| serde_json::from_str::<Summary>(m.trim()).ok());
    let other_message = if summary.is_some() { None } else { message };
    Some(JobOutcome {
        command: command_of(job, summary.as_ref()),
        // A Job can complete although the program reported a failure only if someone changed
        // the command; trust the summary when there is one.
        succeeded: succeeded && summary.as_ref().is_none_or(|s| s.ok),
        finished_at,
        summary,
        job_reason,
        other_message,
    })
}

fn newer(candidate: Timestamp, known: Option<&Time>) -> bool {
    known.is_none_or(|t| candidate > t.0)
}

/// `status.backup` from what it said before and the Jobs still around.
pub fn merge(previous: Option<&BackupStatus>, outcomes: &[JobOutcome]) -> BackupStatus {
    let mut status = previous.cloned().unwrap_or_default();
    let newest = |command: Command, succeeded: Option<bool>| {
        outcomes
            .iter()
            .filter(|o| o.command == command && succeeded.is_none_or(|s| o.succeeded == s))
            .max_by_key(|o| o.finished_at)
    };
    if let Some(ok) = newest(Command::Backup, Some(true))
        && newer(ok.finished_at, status.last_successful_at.as_ref())
    {
        status.last_successful_at = Some(Time(ok.finished_at));
        let summary = ok.summary.as_ref();
        status.last_backup_id = summary.and_then(|s| s.id.clone());
        let destination = summary.and_then(|s| s.destinations.iter().find(|d| d.ok));
        status.count = destination.and_then(|d| d.count);
        status.bytes = destination.and_then(|d| d.bytes);
    }
    if let Some(failed) = newest(Command::Backup, Some(false))
        && newer(failed.finished_at, status.last_failed_at.as_ref())
    {
        status.last_failed_at = Some(Time(failed.finished_at));
        status.last_failure_reason = Some(failed.failure_text());
    }
    if let Some(drill) = newest(Command::Verify, None)
        && newer(drill.finished_at, status.last_verified_at.as_ref())
    {
        status.last_verified_at = Some(Time(drill.finished_at));
        status.last_verify_result = Some(if drill.succeeded {
            "Passed".to_owned()
        } else {
            format!("Failed: {}", drill.failure_text())
        });
    }
    status
}

/// The BackupHealthy condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    /// "True", "False" or "Unknown".
    pub status: &'static str,
    pub reason: Reason,
    pub message: String,
}

/// False when the last backup failed, the last drill failed, or the newest successful backup
/// is older than 1.5× the schedule interval; Unknown before the first backup is due.
pub fn health(
    status: &BackupStatus,
    spec: &BackupSpec,
    created: Timestamp,
    now: Timestamp,
) -> Health {
    let at = |t: &Option<Time>| t.as_ref().map(|t| t.0);
    let last_ok = at(&status.last_successful_at);
    let last_failed = at(&status.last_failed_at);
    if let Some(failed) = last_failed
        && last_ok.is_none_or(|ok| failed > ok)
    {
        let reason = status.last_failure_reason.clone().unwrap_or_default();
        return Health {
            status: "False",
            reason: Reason::BackupFailed,
            message: format!("the last backup failed at {failed}: {reason}"),
        };
    }
    if let Some(result) = &status.last_verify_result
        && result != "Passed"
    {
        return Health {
            status: "False",
            reason: Reason::VerifyFailed,
            message: format!("the last restore drill did not pass: {result}"),
        };
    }
    if spec.suspend {
        return Health {
            status: "Unknown",
            reason: Reason::Suspended,
            message: "spec.backup.suspend is set: no backups are taken".to_owned(),
        };
    }
    let since = last_ok.unwrap_or(created);
    let allowed = expected_interval(spec, since).map(|i| i.mul_f64(STALE_FACTOR));
    let overdue = allowed.is_some_and(|allowed| {
        let elapsed = now.as_second().saturating_sub(since.as_second());
        elapsed > i64::try_from(allowed.as_secs()).unwrap_or(i64::MAX)
    });
    let allowed_text = allowed
        .map(|a| humantime::format_duration(a).to_string())
        .unwrap_or_default();
    match (last_ok, overdue) {
        (None, false) => Health {
            status: "Unknown",
            reason: Reason::NoBackupYet,
            message: "no backup has finished yet".to_owned(),
        },
        (None, true) => Health {
            status: "False",
            reason: Reason::BackupStale,
            message: format!(
                "no successful backup since creation at {created} (one is expected within {allowed_text})"
            ),
        },
        (Some(ok), true) => Health {
            status: "False",
            reason: Reason::BackupStale,
            message: format!(
                "the newest successful backup finished at {ok} (one is expected within {allowed_text})"
            ),
        },
        (Some(ok), false) => Health {
            status: "True",
            reason: Reason::BackupSucceeded,
            message: format!(
                "backup {} finished at {ok}",
                status.last_backup_id.as_deref().unwrap_or("(id unknown)")
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn job(name: &str, owner: &str, condition: &str, at: &str, reason: Option<&str>) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "CronJob", "name": owner, "uid": "u"}]},
            "status": {"conditions": [
                {"type": condition, "status": "True", "lastTransitionTime": at, "reason": reason}]}
        }))
        .unwrap()
    }

    fn pod(job: &str, created: &str, message: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{job}-x"), "creationTimestamp": created,
                         "labels": {JOB_NAME_LABEL: job}},
            "status": {"containerStatuses": [{
                "name": "backup", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "message": message}}}]}
        }))
        .unwrap()
    }

    fn spec(value: serde_json::Value) -> BackupSpec {
        serde_json::from_value(value).unwrap()
    }

    const OK_SUMMARY: &str = r#"{"command":"backup","ok":true,"id":"20261128T030000Z","size_bytes":100609,"destinations":[{"destination":"file:///var/lib/fp/backups","ok":true,"count":7,"bytes":704263}]}"#;
    const DENIED_SUMMARY: &str = r#"{"command":"backup","ok":false,"reason":"StorageAccessDenied","error":"s3://b/p rejected the credentials","destinations":[{"ok":false}]}"#;

    #[test]
    fn a_successful_backup_job_records_id_count_and_bytes() {
        let j = job(
            "demo-backup-1",
            "demo-backup",
            "Complete",
            "2026-11-28T03:01:00Z",
            None,
        );
        let outcome = job_outcome(
            &j,
            &[pod("demo-backup-1", "2026-11-28T03:00:00Z", OK_SUMMARY)],
        )
        .unwrap();
        assert_eq!(outcome.command, Command::Backup);
        assert!(outcome.succeeded);
        let status = merge(None, &[outcome]);
        assert_eq!(status.last_backup_id.as_deref(), Some("20261128T030000Z"));
        assert_eq!(status.count, Some(7));
        assert_eq!(status.bytes, Some(704_263));
        assert_eq!(
            status.last_successful_at.map(|t| t.0),
            Some(ts("2026-11-28T03:01:00Z"))
        );
    }

    #[test]
    fn a_failed_job_keeps_the_programs_reason() {
        let j = job(
            "demo-backup-2",
            "demo-backup",
            "Failed",
            "2026-11-28T04:00:00Z",
            Some("BackoffLimitExceeded"),
        );
        let pods = [
            pod("demo-backup-2", "2026-11-28T03:58:00Z", DENIED_SUMMARY),
            pod("other-job", "2026-11-28T03:59:00Z", OK_SUMMARY),
        ];
        let outcome = job_outcome(&j, &pods).unwrap();
        assert!(!outcome.succeeded);
        let status = merge(None, &[outcome]);
        assert_eq!(
            status.last_failure_reason.as_deref(),
            Some("StorageAccessDenied: s3://b/p rejected the credentials")
        );
    }

    #[test]
    fn a_log_tail_reaches_the_status_without_passwords() {
        // The log tail of a program that printed a URL it was given (a Secret the user may not
        // read otherwise) never carries the password into status.
        let j = job(
            "demo-backup-4",
            "demo-backup",
            "Failed",
            "2026-11-28T04:00:00Z",
            Some("BackoffLimitExceeded"),
        );
        let leaked = job_outcome(
            &j,
            &[pod(
                "demo-backup-4",
                "2026-11-28T03:00:00Z",
                "connecting\ncannot reach postgres://fp:hunter2/x@db:5432/fp password=hunter2\n",
            )],
        )
        .unwrap();
        let text = leaked.failure_text();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("postgres://fp:***@db:5432/fp"), "{text}");
    }

    #[test]
    fn without_a_summary_the_log_tail_or_job_reason_explains() {
        let j = job(
            "demo-backup-3",
            "demo-backup",
            "Failed",
            "2026-11-28T04:00:00Z",
            Some("DeadlineExceeded"),
        );
        let crashed = job_outcome(
            &j,
            &[pod(
                "demo-backup-3",
                "2026-11-28T03:00:00Z",
                "starting\nsegfault at 0x0\n",
            )],
        )
        .unwrap();
        assert_eq!(crashed.failure_text(), "DeadlineExceeded: segfault at 0x0");
        let silent = job_outcome(&j, &[]).unwrap();
        assert_eq!(silent.failure_text(), "DeadlineExceeded");
    }

    #[test]
    fn running_jobs_are_not_outcomes_and_drills_are_told_apart() {
        let running: Job = serde_json::from_value(json!({"metadata": {"name": "r"}})).unwrap();
        assert_eq!(job_outcome(&running, &[]), None);
        let drill = job(
            "demo-backup-verify-1",
            "demo-backup-verify",
            "Failed",
            "2026-11-29T05:00:00Z",
            None,
        );
        let outcome = job_outcome(&drill, &[]).unwrap();
        assert_eq!(outcome.command, Command::Verify);
        let status = merge(None, &[outcome]);
        assert!(status.last_verify_result.unwrap().starts_with("Failed"));
    }

    #[test]
    fn older_jobs_never_overwrite_newer_status() {
        let previous = BackupStatus {
            last_successful_at: Some(Time(ts("2026-11-28T03:00:00Z"))),
            last_backup_id: Some("20261128T030000Z".into()),
            ..BackupStatus::default()
        };
        let old = JobOutcome {
            command: Command::Backup,
            succeeded: true,
            finished_at: ts("2026-11-27T03:00:00Z"),
            summary: None,
            job_reason: None,
            other_message: None,
        };
        assert_eq!(merge(Some(&previous), &[old]), previous);
    }

    #[test]
    fn health_covers_failure_staleness_drills_and_the_first_day() {
        let daily = spec(json!({"schedule": "0 3 * * *"}));
        let created = ts("2026-11-27T12:00:00Z");
        let ok = BackupStatus {
            last_successful_at: Some(Time(ts("2026-11-28T03:00:00Z"))),
            last_backup_id: Some("20261128T030000Z".into()),
            ..BackupStatus::default()
        };
        let fresh = health(&ok, &daily, created, ts("2026-11-28T20:00:00Z"));
        assert_eq!(
            (fresh.status, fresh.reason),
            ("True", Reason::BackupSucceeded)
        );
        assert!(
            fresh.message.contains("20261128T030000Z"),
            "{}",
            fresh.message
        );

        // 1.5 days later without a new backup: stale.
        let stale = health(&ok, &daily, created, ts("2026-11-29T15:01:00Z"));
        assert_eq!((stale.status, stale.reason), ("False", Reason::BackupStale));
        let not_yet = health(&ok, &daily, created, ts("2026-11-29T14:59:00Z"));
        assert_eq!(not_yet.status, "True");

        let failed = BackupStatus {
            last_failed_at: Some(Time(ts("2026-11-29T03:00:00Z"))),
            last_failure_reason: Some("DatabaseUnavailable: password authentication failed".into()),
            ..ok.clone()
        };
        let h = health(&failed, &daily, created, ts("2026-11-29T04:00:00Z"));
        assert_eq!((h.status, h.reason), ("False", Reason::BackupFailed));
        assert!(h.message.contains("password authentication failed"));
        // A later success clears it.
        let recovered = BackupStatus {
            last_successful_at: Some(Time(ts("2026-11-29T05:00:00Z"))),
            ..failed
        };
        assert_eq!(
            health(&recovered, &daily, created, ts("2026-11-29T06:00:00Z")).status,
            "True"
        );

        let drill_failed = BackupStatus {
            last_verify_result: Some("Failed: VerifyFailed: row counts differ".into()),
            ..ok.clone()
        };
        let h = health(&drill_failed, &daily, created, ts("2026-11-28T20:00:00Z"));
        assert_eq!((h.status, h.reason), ("False", Reason::VerifyFailed));

        let none = BackupStatus::default();
        let first_day = health(&none, &daily, created, ts("2026-11-28T01:00:00Z"));
        assert_eq!(first_day.reason, Reason::NoBackupYet);
        let never = health(&none, &daily, created, ts("2026-11-29T02:00:00Z"));
        assert_eq!((never.status, never.reason), ("False", Reason::BackupStale));

        let suspended = spec(json!({"schedule": "0 3 * * *", "suspend": true}));
        assert_eq!(
            health(&none, &suspended, created, ts("2026-12-28T00:00:00Z")).reason,
            Reason::Suspended
        );
    }
}
