//! Pure parts of `kubectl fp promote|abort|retry|rollback|history`: whether to send a request, the
//! patch that sends it, what the operator did with it, and the history table.
//!
//! Protocol: a request is the command's annotation (`footballprediction.io/<command>`) with a request
//! id (an RFC 3339 timestamp) as its value. The operator acts on it, writes the outcome to
//! `status.rollout.message` (and an event) and then removes the annotation, so once the annotation
//! is gone the status already tells what happened.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::{
    FootballPrediction, FootballPredictionStatus, RollbackRecord, RolloutCommand, RolloutStage,
};

/// Exit codes of the rollout commands besides 0 (done), 1 (error) and 2 (usage, from clap).
pub mod exit_codes {
    /// The command does not apply to the rollout as it stands; nothing was sent.
    pub const REFUSED: u8 = 3;
    /// The request was sent (or was already there) but the operator had not taken it within `--wait`.
    pub const STILL_PENDING: u8 = 4;
}

/// What `kubectl fp <command>` does with the object as read.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestPlan {
    /// The same request is already there: wait for it rather than add another.
    AlreadyPending { request_id: String },
    /// The command does not apply now; send nothing.
    Refused { reason: String },
    /// Add the annotation.
    Send,
}

/// Decides from the object as read. A pending request wins over `applies`: it was checked when it
/// was sent, and the operator decides what it does with it.
pub fn plan_request(command: RolloutCommand, fp: &FootballPrediction) -> RequestPlan {
    if let Some(request_id) = pending_request_id(command, fp) {
        return RequestPlan::AlreadyPending {
            request_id: request_id.to_owned(),
        };
    }
    match command.applies(&fp.spec.version, fp.status.as_ref()) {
        Ok(()) => RequestPlan::Send,
        Err(reason) => RequestPlan::Refused { reason },
    }
}

/// Value of the command's annotation, when a request is pending.
pub fn pending_request_id(command: RolloutCommand, fp: &FootballPrediction) -> Option<&str> {
    fp.metadata
        .annotations
        .as_ref()?
        .get(command.annotation())
        .map(String::as_str)
}

/// The request id: the time the request was made, RFC 3339 in UTC.
pub fn request_id(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Merge patch adding the command's annotation. With the resourceVersion that was read, the API
/// server refuses the patch (409) if the object changed since, so `applies` judged the current state.
pub fn request_patch(
    command: RolloutCommand,
    request_id: &str,
    resource_version: Option<&str>,
) -> serde_json::Value {
    let mut metadata = serde_json::json!({ "annotations": { command.annotation(): request_id } });
    if let Some(version) = resource_version {
        metadata["resourceVersion"] = serde_json::Value::from(version);
    }
    serde_json::json!({ "metadata": metadata })
}

/// The operator has taken the request once its annotation no longer carries `request_id` (removed,
/// or replaced by a newer request of the same command).
pub fn request_taken(command: RolloutCommand, request_id: &str, fp: &FootballPrediction) -> bool {
    pending_request_id(command, fp) != Some(request_id)
}

fn stage_of(status: Option<&FootballPredictionStatus>) -> RolloutStage {
    status
        .and_then(|s| s.rollout.as_ref())
        .map_or(RolloutStage::Idle, |r| r.stage)
}

fn at(time: &Time) -> String {
    time.0.to_string()
}

/// One line about a rollback: `<at> <from> → <to>, <reason>: <message>`.
pub fn rollback_text(rollback: &RollbackRecord) -> String {
    let message = if rollback.message.is_empty() {
        String::new()
    } else {
        format!(": {}", rollback.message)
    };
    format!(
        "{} {} → {}, {}{message}",
        at(&rollback.at),
        rollback.from_version,
        rollback.to_version,
        rollback.reason
    )
}

/// What the operator did with a request, from the status before it was sent (`before`) and once
/// the operator took it (`after`): the stage change, the release and color the rollout now targets,
/// the operator's message and a rollback it recorded.
pub fn outcome(
    command: RolloutCommand,
    before: Option<&FootballPredictionStatus>,
    after: Option<&FootballPredictionStatus>,
) -> String {
    let mut out = String::new();
    let (from, to) = (stage_of(before), stage_of(after));
    let transition = if from == to {
        format!("rollout stays in {}", to.as_str())
    } else {
        format!("rollout {} → {}", from.as_str(), to.as_str())
    };
    let rollout_after = after.and_then(|s| s.rollout.as_ref());
    let target = match rollout_after {
        Some(r) if !r.target_version.is_empty() => {
            let color = r
                .target_color
                .map_or(String::new(), |c| format!(" on {}", c.as_str()));
            let kind = if r.rollback { "rollback to" } else { "release" };
            format!(", {kind} {}{color}", r.target_version)
        }
        _ => String::new(),
    };
    let _ = writeln!(out, "{command}: {transition}{target}");
    let message_before = before
        .and_then(|s| s.rollout.as_ref())
        .map_or("", |r| r.message.as_str());
    let message_after = rollout_after.map_or("", |r| r.message.as_str());
    // The operator records every outcome in the message; an unchanged one means it said nothing new.
    if message_after.is_empty() {
        let _ = writeln!(out, "  operator: (no message)");
    } else if message_after == message_before {
        let _ = writeln!(out, "  operator: (message unchanged) {message_after}");
    } else {
        let _ = writeln!(out, "  operator: {message_after}");
    }
    let rollback_after = after.and_then(|s| s.last_rollback.as_ref());
    if let Some(rollback) = rollback_after
        && rollback_after != before.and_then(|s| s.last_rollback.as_ref())
    {
        let _ = writeln!(out, "  rolled back: {}", rollback_text(rollback));
    }
    out
}

/// Said when `--wait` ran out before the operator took the request.
pub fn still_pending_text(
    command: RolloutCommand,
    namespace: &str,
    name: &str,
    request_id: &str,
    waited: Duration,
) -> String {
    format!(
        "{command} request {request_id} still pending after {}: the operator has not taken it \
         (is it running? kubectl events -n {namespace} --for footballprediction/{name}); it stays \
         until the operator acts or someone removes annotation {}",
        humantime::format_duration(waited),
        command.annotation()
    )
}

/// `kubectl fp history NAME`: promoted releases newest first, which one the active color runs, the
/// backup taken before each release's migration, and the last rollback.
pub fn render_history(fp: &FootballPrediction) -> String {
    let mut out = String::new();
    let empty = FootballPredictionStatus::default();
    let status = fp.status.as_ref().unwrap_or(&empty);
    if status.history.is_empty() {
        let _ = writeln!(out, "no promoted releases in status.history yet");
    } else {
        let active = status.active.as_ref().filter(|a| !a.version.is_empty());
        // Only the newest entry of the active version is marked: a release can be promoted twice.
        let active_index = active.and_then(|a| {
            status
                .history
                .iter()
                .position(|entry| entry.version == a.version)
        });
        let version_width = status
            .history
            .iter()
            .map(|entry| entry.version.chars().count())
            .chain(["VERSION".len()])
            .max()
            .unwrap_or_default();
        // The backup taken before the release's migration is what a restore to it starts from.
        let rows = std::iter::once([
            "VERSION".to_owned(),
            "PROMOTED AT".to_owned(),
            "ACTIVE".to_owned(),
            "BACKUP BEFORE MIGRATION".to_owned(),
        ])
        .chain(status.history.iter().enumerate().map(|(index, entry)| {
            let active_color = match active {
                Some(a) if Some(index) == active_index => a.color.as_str(),
                _ => "",
            };
            [
                entry.version.clone(),
                at(&entry.promoted_at),
                active_color.to_owned(),
                entry.backup_id.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        }));
        for [version, promoted_at, active_color, backup] in rows {
            let row = format!(
                "{version:<version_width$}  {promoted_at:<20}  {active_color:<6}  {backup}"
            );
            let _ = writeln!(out, "{}", row.trim_end());
        }
    }
    match &status.last_rollback {
        Some(rollback) => {
            let _ = writeln!(out, "\nlast rollback {}", rollback_text(rollback));
        }
        None => {
            let _ = writeln!(out, "\nno rollback recorded");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::commands;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn fp(value: serde_json::Value) -> FootballPrediction {
        let mut object = json!({
            "apiVersion": "footballprediction.io/v1alpha1", "kind": "FootballPrediction",
            "metadata": {"name": "prod", "namespace": "football", "resourceVersion": "41"},
            "spec": {"version": "1.5.0"},
        });
        if let (Some(object), Some(extra)) = (object.as_object_mut(), value.as_object()) {
            for (key, value) in extra {
                object.insert(key.clone(), value.clone());
            }
        }
        serde_json::from_value(object).unwrap()
    }

    fn awaiting_promotion() -> serde_json::Value {
        json!({"rollout": {"stage": "AwaitingPromotion", "targetVersion": "1.5.0",
            "targetColor": "green", "fromVersion": "1.4.2",
            "message": "analysis passed (5 rounds); waiting for promotion"},
            "history": [{"version": "1.4.2", "promotedAt": "2026-11-20T03:00:00Z"}]})
    }

    #[test]
    fn a_command_that_applies_is_sent() {
        let fp = fp(json!({"status": awaiting_promotion()}));
        assert_eq!(
            plan_request(RolloutCommand::Promote, &fp),
            RequestPlan::Send
        );
    }

    #[test]
    fn a_command_that_does_not_apply_is_refused_with_the_reason() {
        let fp = fp(json!({"status": awaiting_promotion()}));
        let RequestPlan::Refused { reason } = plan_request(RolloutCommand::Retry, &fp) else {
            panic!("retry while awaiting promotion must be refused");
        };
        assert!(reason.contains("stage AwaitingPromotion"), "{reason}");
        // Never reconciled: no status, nothing to promote.
        assert!(matches!(
            plan_request(RolloutCommand::Promote, &self::fp(json!({}))),
            RequestPlan::Refused { .. }
        ));
    }

    #[test]
    fn a_pending_request_is_waited_for_instead_of_sent_again() {
        let pending = fp(json!({
            "metadata": {"name": "prod", "namespace": "football",
                "annotations": {commands::PROMOTE: "2026-11-29T10:00:00Z"}},
            // Already promoting: applies would refuse, but the request is the operator's to judge.
            "status": {"rollout": {"stage": "Promoting", "targetVersion": "1.5.0"}},
        }));
        assert_eq!(
            plan_request(RolloutCommand::Promote, &pending),
            RequestPlan::AlreadyPending {
                request_id: "2026-11-29T10:00:00Z".into()
            }
        );
        // Another command's annotation does not count.
        assert!(matches!(
            plan_request(RolloutCommand::Abort, &pending),
            RequestPlan::Send
        ));
    }

    #[test]
    fn request_ids_are_rfc3339_seconds_in_utc() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T11:00:07.123+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(request_id(now), "2026-11-29T10:00:07Z");
    }

    #[test]
    fn the_patch_adds_only_the_annotation_and_is_conditional_on_the_version_read() {
        assert_eq!(
            request_patch(RolloutCommand::Abort, "2026-11-29T10:00:07Z", Some("41")),
            json!({"metadata": {"resourceVersion": "41",
                "annotations": {"footballprediction.io/abort": "2026-11-29T10:00:07Z"}}})
        );
        assert_eq!(
            request_patch(RolloutCommand::Retry, "2026-11-29T10:00:07Z", None),
            json!({"metadata": {
                "annotations": {"footballprediction.io/retry": "2026-11-29T10:00:07Z"}}})
        );
    }

    #[test]
    fn a_request_is_taken_once_its_annotation_is_gone_or_replaced() {
        let with = |value: &str| {
            fp(json!({"metadata": {"name": "prod",
                "annotations": {commands::ROLLBACK: value}}}))
        };
        let id = "2026-11-29T10:00:07Z";
        assert!(!request_taken(RolloutCommand::Rollback, id, &with(id)));
        assert!(request_taken(
            RolloutCommand::Rollback,
            id,
            &with("2026-11-29T10:05:00Z")
        ));
        assert!(request_taken(RolloutCommand::Rollback, id, &fp(json!({}))));
    }

    fn status(value: serde_json::Value) -> FootballPredictionStatus {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn outcome_of_a_promotion() {
        let before = status(awaiting_promotion());
        let after = status(
            json!({"rollout": {"stage": "Promoting", "targetVersion": "1.5.0",
            "targetColor": "green", "fromVersion": "1.4.2",
            "message": "promoted by request 2026-11-29T10:00:07Z; scaling green to 3"}}),
        );
        assert_eq!(
            outcome(RolloutCommand::Promote, Some(&before), Some(&after)),
            "promote: rollout AwaitingPromotion → Promoting, release 1.5.0 on green\n\
             \x20 operator: promoted by request 2026-11-29T10:00:07Z; scaling green to 3\n"
        );
    }

    #[test]
    fn outcome_of_an_instant_rollback_shows_the_recorded_rollback() {
        let before = status(json!({"rollout": {"stage": "PostPromotion",
            "targetVersion": "1.5.0", "targetColor": "green", "message": "post-promotion analysis"},
            "lastRollback": {"at": "2026-11-01T00:00:00Z", "fromVersion": "1.4.2",
                "toVersion": "1.4.1", "reason": "AnalysisFailed"}}));
        let after = status(
            json!({"rollout": {"stage": "Aborted", "targetVersion": "1.5.0",
            "targetColor": "green", "reason": "RolledBack",
            "message": "rolled back to 1.4.2 (blue) by request"},
            "lastRollback": {"at": "2026-11-29T10:00:09Z", "fromVersion": "1.5.0",
                "toVersion": "1.4.2", "reason": "RolledBack", "message": "requested"}}),
        );
        assert_eq!(
            outcome(RolloutCommand::Rollback, Some(&before), Some(&after)),
            "rollback: rollout PostPromotion → Aborted, release 1.5.0 on green\n\
             \x20 operator: rolled back to 1.4.2 (blue) by request\n\
             \x20 rolled back: 2026-11-29T10:00:09Z 1.5.0 → 1.4.2, RolledBack: requested\n"
        );
    }

    #[test]
    fn outcome_when_the_operator_changed_nothing() {
        let before = status(awaiting_promotion());
        assert_eq!(
            outcome(RolloutCommand::Promote, Some(&before), Some(&before)),
            "promote: rollout stays in AwaitingPromotion, release 1.5.0 on green\n\
             \x20 operator: (message unchanged) analysis passed (5 rounds); waiting for promotion\n"
        );
        assert_eq!(
            outcome(RolloutCommand::Abort, None, None),
            "abort: rollout stays in Idle\n  operator: (no message)\n"
        );
    }

    #[test]
    fn outcome_of_a_rollback_from_history_names_the_release() {
        let before = status(json!({"rollout": {"stage": "Idle"}}));
        let after = status(
            json!({"rollout": {"stage": "Previewing", "targetVersion": "1.4.1",
            "targetColor": "blue", "rollback": true, "message": "rolling back to 1.4.1"}}),
        );
        let text = outcome(RolloutCommand::Rollback, Some(&before), Some(&after));
        assert!(
            text.starts_with("rollback: rollout Idle → Previewing, rollback to 1.4.1 on blue\n"),
            "{text}"
        );
    }

    #[test]
    fn still_pending_names_the_request_and_the_annotation() {
        let text = still_pending_text(
            RolloutCommand::Abort,
            "football",
            "prod",
            "2026-11-29T10:00:07Z",
            Duration::from_secs(30),
        );
        assert!(
            text.starts_with("abort request 2026-11-29T10:00:07Z still pending after 30s"),
            "{text}"
        );
        assert!(text.contains("footballprediction.io/abort"), "{text}");
        assert!(
            text.contains("-n football --for footballprediction/prod"),
            "{text}"
        );
    }

    #[test]
    fn history_table_marks_the_active_release() {
        let fp = fp(json!({"status": {
            "active": {"color": "blue", "version": "1.4.2", "readyReplicas": 3},
            "history": [
                {"version": "1.4.2", "promotedAt": "2026-11-28T03:00:00Z",
                 "backupId": "20261128T025900Z-pre"},
                {"version": "1.4.1-rc.1", "promotedAt": "2026-11-20T03:00:00Z"},
                {"version": "1.4.2", "promotedAt": "2026-11-10T03:00:00Z"}],
            "lastRollback": {"at": "2026-11-27T12:00:00Z", "fromVersion": "1.5.0",
                "toVersion": "1.4.2", "reason": "AnalysisFailed",
                "message": "GET /health on 10.0.0.7: 503"}}}));
        assert_eq!(
            render_history(&fp),
            "VERSION     PROMOTED AT           ACTIVE  BACKUP BEFORE MIGRATION\n\
             1.4.2       2026-11-28T03:00:00Z  blue    20261128T025900Z-pre\n\
             1.4.1-rc.1  2026-11-20T03:00:00Z          -\n\
             1.4.2       2026-11-10T03:00:00Z          -\n\
             \n\
             last rollback 2026-11-27T12:00:00Z 1.5.0 → 1.4.2, AnalysisFailed: GET /health on 10.0.0.7: 503\n"
        );
    }

    #[test]
    fn history_of_a_new_resource() {
        assert_eq!(
            render_history(&fp(json!({}))),
            "no promoted releases in status.history yet\n\nno rollback recorded\n"
        );
    }
}
