//! Status: pure computation of conditions, phase and colors from what the reconcile observed, and
//! the events a status change deserves. Conditions follow the Kubernetes API conventions and are
//! kstatus-compatible (`observedGeneration`, `Ready`), so `kubectl wait --for=condition=Ready` works.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::backup_health::{self, JobOutcome};
use super::events;
use super::rollout::DeploymentView;
use super::rollout::State as RolloutState;
use crate::crd::{
    BackupSpec, BackupStatus, ColorStatus, Endpoints, FootballPredictionStatus, Phase,
    RolloutStage, RolloutStatus,
};
use crate::notify::DeliveryState;
use crate::reason::Reason;
use crate::resources::ColorPlan;
use crate::resources::certificate::CertificateState;

/// Condition types.
pub mod types {
    pub const READY: &str = "Ready";
    pub const PROGRESSING: &str = "Progressing";
    pub const DEGRADED: &str = "Degraded";
    pub const CERTIFICATE_READY: &str = "CertificateReady";
    pub const MONITORING_READY: &str = "MonitoringReady";
    pub const BACKUP_HEALTHY: &str = "BackupHealthy";
    pub const NOTIFICATIONS_DELIVERED: &str = "NotificationsDelivered";
}

/// How the reconcile went.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The spec breaks a rule only the operator can check.
    InvalidSpec(Vec<String>),
    /// A referenced Secret or key is missing.
    MissingDependency(Vec<String>),
    /// Children were applied; some applies may have failed and some optional kinds were skipped.
    Applied {
        errors: Vec<String>,
        missing_crds: Vec<&'static str>,
    },
}

/// What cert-manager reports about the Certificate.
#[derive(Clone, Debug, PartialEq)]
pub enum CertificateObservation {
    CrdMissing,
    Pending,
    Reported(CertificateState),
}

/// The backup and drill Jobs found, and what they are judged against.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupObservation {
    pub outcomes: Vec<JobOutcome>,
    pub spec: BackupSpec,
    /// When the FootballPrediction was created (the first backup is due an interval later).
    pub created: Timestamp,
}

/// Everything the status is computed from.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub outcome: Outcome,
    pub plan: Option<ColorPlan>,
    pub active: Option<DeploymentView>,
    pub preview: Option<DeploymentView>,
    /// `None` when `spec.tls` is not set.
    pub certificate: Option<CertificateObservation>,
    pub monitoring_wanted: bool,
    pub paused: bool,
    /// The rollout state after this reconcile's step; `None` when nothing was applied.
    pub rollout: Option<RolloutState>,
    /// The release `spec.version` asks for.
    pub desired_version: String,
    /// `None` when `spec.backup` is not set.
    pub backup: Option<BackupObservation>,
    /// Webhook deliveries so far; `None` when `spec.notifications` is not set.
    pub notifications: Option<DeliveryState>,
    pub endpoints: Option<Endpoints>,
}

/// One condition's value, before its timestamps: what each per-condition function below decides.
#[derive(Clone, Debug, PartialEq)]
struct Verdict<'a> {
    /// "True", "False" or "Unknown".
    status: &'static str,
    /// A [`Reason`], or a rollout stage's name while that stage runs.
    reason: &'a str,
    message: String,
}

impl<'a> Verdict<'a> {
    fn new(ok: bool, reason: impl Into<&'a str>, message: String) -> Self {
        Self {
            status: if ok { "True" } else { "False" },
            reason: reason.into(),
            message,
        }
    }
}

struct Conditions<'a> {
    previous: &'a [Condition],
    generation: Option<i64>,
    now: Timestamp,
    out: Vec<Condition>,
}

impl Conditions<'_> {
    /// Adds a condition, keeping lastTransitionTime when the status did not change.
    fn put(&mut self, type_: &str, verdict: Verdict) {
        let last_transition_time = self
            .previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == verdict.status)
            .map_or(Time(self.now), |c| c.last_transition_time.clone());
        self.out.push(Condition {
            type_: type_.to_owned(),
            status: verdict.status.to_owned(),
            reason: verdict.reason.to_owned(),
            message: verdict.message,
            observed_generation: self.generation,
            last_transition_time,
        });
    }
}

fn pods_message(view: &DeploymentView, plan: &ColorPlan) -> String {
    let color = plan.active;
    format!(
        "{}/{} pods of {} ({}) ready",
        view.ready,
        view.desired,
        plan.target(color).version,
        color.as_str()
    )
}

/// The active color runs the release the spec asks for.
fn rolled_out_desired(observed: &Observed) -> bool {
    observed
        .rollout
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .is_some_and(|a| a.version == observed.desired_version)
}

fn summarize(messages: &[String]) -> String {
    match messages {
        [] => String::new(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (and {} more: {})", rest.len(), rest.join("; ")),
    }
}

/// Where the rollout stands, as the conditions and the phase read it.
struct RolloutView<'a> {
    rollout: Option<&'a RolloutStatus>,
    stage: RolloutStage,
    /// The spec's release serves on every wanted pod and no rollout is under way.
    rolled_out: bool,
    /// The rollout stopped (traffic kept on, or returned to, the last good color).
    aborted: Option<&'a RolloutStatus>,
    /// The active Deployment missed its progress deadline.
    stalled: Option<&'a DeploymentView>,
}

impl<'a> RolloutView<'a> {
    fn of(observed: &'a Observed) -> Self {
        let rollout = observed.rollout.as_ref().map(|s| &s.rollout);
        let stage = rollout.map_or(RolloutStage::Idle, |r| r.stage);
        let serving = observed.plan.as_ref().is_some_and(|p| p.serving);
        let rolled_out = serving
            && matches!(stage, RolloutStage::Idle | RolloutStage::ScalingDown)
            && rolled_out_desired(observed)
            && observed
                .active
                .as_ref()
                .is_some_and(DeploymentView::rolled_out);
        Self {
            rollout,
            stage,
            rolled_out,
            aborted: rollout.filter(|r| r.stage == RolloutStage::Aborted),
            stalled: observed.active.as_ref().filter(|v| v.deadline_exceeded),
        }
    }
}

/// Ready, Progressing and Degraded when the spec cannot be applied: whatever ran before keeps
/// running, and all three say why.
fn rejected(outcome: &Outcome, errors: &[String]) -> Verdict<'static> {
    let reason = if matches!(outcome, Outcome::InvalidSpec(_)) {
        Reason::InvalidSpec
    } else {
        Reason::MissingDependency
    };
    Verdict::new(false, reason, summarize(errors))
}

/// Ready and Progressing once the children were applied.
fn ready_and_progressing<'a>(
    observed: &'a Observed,
    view: &RolloutView<'a>,
) -> (Verdict<'a>, Verdict<'a>) {
    let same = |ok: bool, reason: &'a str, message: String| {
        (
            Verdict::new(false, reason, message.clone()),
            Verdict::new(ok, reason, message),
        )
    };
    let rollout_message = || view.rollout.map(|r| r.message.clone()).unwrap_or_default();
    let active_version = observed
        .rollout
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .map(|a| a.version.as_str());
    match (&observed.active, &observed.plan) {
        _ if view.stage.in_progress() && view.stage != RolloutStage::ScalingDown => {
            same(true, view.stage.as_str(), rollout_message())
        }
        _ if observed.paused
            && view.stage != RolloutStage::Aborted
            && active_version.is_some_and(|v| v != observed.desired_version) =>
        {
            let message = format!(
                "spec.rollout.paused: {} waits, {} serves",
                observed.desired_version,
                active_version.unwrap_or_default()
            );
            same(false, Reason::Paused.as_str(), message)
        }
        _ if view.stage == RolloutStage::Aborted => {
            let reason = view
                .rollout
                .map_or(Reason::Deploying.as_str(), |r| r.reason.as_str());
            same(false, reason, rollout_message())
        }
        (Some(active), Some(plan)) => {
            let message = pods_message(active, plan);
            if view.rolled_out {
                (
                    Verdict::new(true, Reason::Serving, message.clone()),
                    Verdict::new(false, Reason::RolloutComplete, message),
                )
            } else {
                same(true, Reason::Deploying.as_str(), message)
            }
        }
        _ => same(
            true,
            Reason::Deploying.as_str(),
            "the active Deployment does not exist yet".to_owned(),
        ),
    }
}

/// Degraded once the children were applied: a stopped rollout, a stalled Deployment or failed
/// applies, in that order.
fn degraded<'a>(view: &RolloutView<'a>, errors: &[String]) -> Verdict<'a> {
    if let Some(r) = view.aborted {
        Verdict::new(true, r.reason.as_str(), r.message.clone())
    } else if let Some(active) = view.stalled {
        Verdict::new(
            true,
            Reason::ProgressDeadlineExceeded,
            format!(
                "Deployment {} did not become available within its progress deadline",
                active.name
            ),
        )
    } else if !errors.is_empty() {
        Verdict::new(true, Reason::ApplyFailed, summarize(errors))
    } else {
        Verdict::new(false, Reason::Healthy, "all children applied".to_owned())
    }
}

/// MonitoringReady: the alert rules and scrape config need prometheus-operator's CRDs.
fn monitoring_ready(missing_crds: &[&str]) -> Verdict<'static> {
    let monitoring: Vec<&str> = missing_crds
        .iter()
        .copied()
        .filter(|crd| crd.ends_with("monitoring.coreos.com"))
        .collect();
    if monitoring.is_empty() {
        Verdict::new(
            true,
            Reason::Applied,
            "alert rules and scrape config applied".into(),
        )
    } else {
        Verdict::new(
            false,
            Reason::CrdMissing,
            format!(
                "{} not served: install prometheus-operator's CRDs; the rest is reconciled",
                monitoring.join(", ")
            ),
        )
    }
}

fn backup_healthy(health: backup_health::Health) -> Verdict<'static> {
    Verdict {
        status: health.status,
        reason: health.reason.as_str(),
        message: health.message,
    }
}

fn notifications_delivered(delivery: &DeliveryState) -> Verdict<'static> {
    match (&delivery.last_error, delivery.delivered) {
        (Some(error), _) => Verdict::new(false, Reason::DeliveryFailed, error.clone()),
        (None, 0) => Verdict::new(
            true,
            Reason::NothingToSend,
            "no notification sent yet".to_owned(),
        ),
        (None, n) => Verdict::new(
            true,
            Reason::Delivered,
            format!("{n} notification(s) delivered"),
        ),
    }
}

/// The phase once the children were applied.
fn phase(observed: &Observed, view: &RolloutView, errors: &[String]) -> Phase {
    if view.aborted.is_some() || view.stalled.is_some() || !errors.is_empty() {
        Phase::Degraded
    } else if observed.paused && (view.stage.in_progress() || !rolled_out_desired(observed)) {
        Phase::Paused
    } else if view.rolled_out {
        Phase::Healthy
    } else {
        Phase::Progressing
    }
}

/// The new status. Fields other stages own (rollout, history, lastRollback, backup results) are
/// carried over from `previous`.
pub fn compute(
    previous: Option<&FootballPredictionStatus>,
    generation: Option<i64>,
    observed: &Observed,
    now: Timestamp,
) -> FootballPredictionStatus {
    let previous_conditions = previous
        .map(|p| p.conditions.as_slice())
        .unwrap_or_default();
    let mut c = Conditions {
        previous: previous_conditions,
        generation,
        now,
        out: Vec::new(),
    };
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = generation;
    // What the backup Jobs said, merged into what the status already knew (used twice below).
    let merged_backup = observed
        .backup
        .as_ref()
        .map(|b| backup_health::merge(previous.and_then(|p| p.backup.as_ref()), &b.outcomes));

    let phase = put_conditions(&mut c, observed, merged_backup.as_ref(), now);
    status.conditions = c.out;
    status.phase = Some(phase);
    carry_rollout(&mut status, observed);
    if let Some(endpoints) = &observed.endpoints {
        status.endpoints = Some(endpoints.clone());
    }
    match merged_backup {
        Some(merged) => status.backup = Some(merged),
        None => {
            // Only a spec without backups drops them; a failed validation keeps the last known.
            if matches!(observed.outcome, Outcome::Applied { .. }) {
                status.backup = None;
            }
        }
    }
    if let Some(CertificateObservation::Reported(state)) = &observed.certificate {
        status.certificate = Some(crate::crd::CertificateStatus {
            not_after: state.not_after.clone(),
        });
    }
    status
}

/// Every condition the outcome calls for, and the phase they add up to.
fn put_conditions(
    c: &mut Conditions<'_>,
    observed: &Observed,
    merged_backup: Option<&BackupStatus>,
    now: Timestamp,
) -> Phase {
    match &observed.outcome {
        Outcome::InvalidSpec(errors) | Outcome::MissingDependency(errors) => {
            let verdict = rejected(&observed.outcome, errors);
            c.put(types::READY, verdict.clone());
            c.put(types::PROGRESSING, verdict.clone());
            c.put(
                types::DEGRADED,
                Verdict {
                    status: "True",
                    ..verdict
                },
            );
            Phase::Degraded
        }
        Outcome::Applied {
            errors,
            missing_crds,
        } => {
            let view = RolloutView::of(observed);
            let (ready, progressing) = ready_and_progressing(observed, &view);
            c.put(types::READY, ready);
            c.put(types::PROGRESSING, progressing);
            c.put(types::DEGRADED, degraded(&view, errors));
            if let Some(cert) = &observed.certificate {
                c.put(types::CERTIFICATE_READY, certificate_ready(cert));
            }
            if observed.monitoring_wanted {
                c.put(types::MONITORING_READY, monitoring_ready(missing_crds));
            }
            if let (Some(backup), Some(merged)) = (&observed.backup, merged_backup) {
                let health = backup_health::health(merged, &backup.spec, backup.created, now);
                c.put(types::BACKUP_HEALTHY, backup_healthy(health));
            }
            if let Some(delivery) = &observed.notifications {
                c.put(
                    types::NOTIFICATIONS_DELIVERED,
                    notifications_delivered(delivery),
                );
            }
            phase(observed, &view, errors)
        }
    }
}

/// The rollout machine's state after this step: the colors (with their ready pods), the rollout,
/// history and last rollback.
fn carry_rollout(status: &mut FootballPredictionStatus, observed: &Observed) {
    let (Some(plan), Some(state)) = (&observed.plan, &observed.rollout) else {
        return;
    };
    let ready = |v: &Option<DeploymentView>| v.as_ref().map_or(0, |v| v.ready);
    status.active = state.active.clone().map(|a| ColorStatus {
        ready_replicas: ready(&observed.active),
        ..a
    });
    // The machine's own record (what the other color last served), not the plan's template:
    // the next step reads it back.
    status.preview = state.preview.clone().map(|p| ColorStatus {
        ready_replicas: if p.color == plan.preview() {
            ready(&observed.preview)
        } else {
            0
        },
        ..p
    });
    status.rollout = Some(state.rollout.clone());
    status.history = state.history.clone();
    status.last_rollback = state.last_rollback.clone();
}

/// CertificateReady: what cert-manager reports about the Certificate.
fn certificate_ready(cert: &CertificateObservation) -> Verdict<'static> {
    let verdict = |status, reason: Reason, message| Verdict {
        status,
        reason: reason.as_str(),
        message,
    };
    match cert {
        CertificateObservation::CrdMissing => verdict(
            "False",
            Reason::CrdMissing,
            format!(
                "{} not served: install cert-manager; the rest is reconciled",
                crate::resources::certificate::CRD
            ),
        ),
        CertificateObservation::Pending => verdict(
            "Unknown",
            Reason::Pending,
            "cert-manager has not reported yet".into(),
        ),
        CertificateObservation::Reported(state) => {
            match state.conditions.iter().find(|c| c.type_ == "Ready") {
                Some(ready) if ready.status == "True" => verdict(
                    "True",
                    Reason::Issued,
                    ready.message.clone().unwrap_or_default(),
                ),
                Some(ready) => verdict(
                    if ready.status == "False" {
                        "False"
                    } else {
                        "Unknown"
                    },
                    Reason::Pending,
                    ready.message.clone().unwrap_or_default(),
                ),
                None => verdict(
                    "Unknown",
                    Reason::Pending,
                    "cert-manager has not reported yet".into(),
                ),
            }
        }
    }
}

/// An event the change from `previous` to `next` deserves: failures once when they appear or change,
/// and the return to service.
pub fn transition_events(
    previous: Option<&FootballPredictionStatus>,
    next: &FootballPredictionStatus,
) -> Vec<(Reason, String)> {
    let find = |s: Option<&FootballPredictionStatus>, t: &str| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == t).cloned())
    };
    let mut out = Vec::new();
    let before = find(previous, types::DEGRADED);
    if let Some(now) = find(Some(next), types::DEGRADED)
        && now.status == "True"
    {
        let same = before.as_ref().is_some_and(|b| {
            b.status == now.status && b.reason == now.reason && b.message == now.message
        });
        if !same && let Some(reason) = events::for_condition(&now.reason) {
            out.push((reason, now.message.clone()));
        }
    }
    for t in [types::CERTIFICATE_READY, types::MONITORING_READY] {
        let before = find(previous, t);
        if let Some(now) = find(Some(next), t)
            && now.reason == Reason::CrdMissing.as_str()
            && before.as_ref().is_none_or(|b| b.reason != now.reason)
        {
            out.push((Reason::CrdMissing, now.message.clone()));
        }
    }
    // Backups: one Warning when BackupHealthy turns False or its reason changes while False
    // (not on every message change, e.g. each new failed attempt of the same kind).
    let before = find(previous, types::BACKUP_HEALTHY);
    if let Some(now) = find(Some(next), types::BACKUP_HEALTHY)
        && now.status == "False"
        && before
            .as_ref()
            .is_none_or(|b| b.status != now.status || b.reason != now.reason)
        && let Some(reason) = events::for_condition(&now.reason)
    {
        out.push((reason, now.message.clone()));
    }
    let was_ready = find(previous, types::READY).is_some_and(|c| c.status == "True");
    if let Some(now) = find(Some(next), types::READY)
        && now.status == "True"
        && !was_ready
    {
        out.push((Reason::Serving, now.message.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::Color;
    use crate::resources::ColorTarget;
    use crate::resources::certificate::CertificateCondition;
    use pretty_assertions::assert_eq;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn plan() -> ColorPlan {
        let target = |v: &str, r| ColorTarget {
            version: v.into(),
            image: format!("i:{v}"),
            config: String::new(),
            replicas: Some(r),
        };
        ColorPlan {
            active: Color::Blue,
            serving: true,
            pre_migration_backup: None,
            migration: None,
            blue: target("1.4.2", 3),
            green: target("1.4.1", 0),
        }
    }

    fn view(ready: i32) -> DeploymentView {
        DeploymentView {
            name: "prod-blue".into(),
            desired: 3,
            ready,
            updated: 3,
            available: ready,
            current: true,
            deadline_exceeded: false,
            image: "i:1.4.2".into(),
            config: String::new(),
        }
    }

    /// Blue serves 1.4.2, nothing under way.
    fn steady() -> RolloutState {
        RolloutState {
            active: Some(ColorStatus {
                color: Color::Blue,
                version: "1.4.2".into(),
                image: String::new(),
                config: String::new(),
                ready_replicas: 0,
            }),
            preview: Some(ColorStatus {
                color: Color::Green,
                version: "1.4.1".into(),
                image: String::new(),
                config: String::new(),
                ready_replicas: 0,
            }),
            ..RolloutState::default()
        }
    }

    fn observed(outcome: Outcome, active: Option<DeploymentView>) -> Observed {
        Observed {
            outcome,
            plan: Some(plan()),
            active,
            preview: None,
            certificate: None,
            monitoring_wanted: false,
            paused: false,
            rollout: Some(steady()),
            desired_version: "1.4.2".into(),
            backup: None,
            notifications: None,
            endpoints: None,
        }
    }

    fn condition<'a>(s: &'a FootballPredictionStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    fn applied() -> Outcome {
        Outcome::Applied {
            errors: vec![],
            missing_crds: vec![],
        }
    }

    fn backup_observation(outcomes: Vec<JobOutcome>) -> BackupObservation {
        BackupObservation {
            outcomes,
            spec: serde_json::from_value(serde_json::json!({"schedule": "0 3 * * *"})).unwrap(),
            created: t("2026-01-01T00:00:00Z"),
        }
    }

    fn backup_job(succeeded: bool, at: &str, summary: &str) -> JobOutcome {
        JobOutcome {
            command: backup_health::Command::Backup,
            succeeded,
            finished_at: t(at),
            summary: serde_json::from_str(summary).ok(),
            job_reason: None,
            other_message: None,
        }
    }

    #[test]
    fn backup_results_reach_status_condition_and_one_event() {
        let ok = backup_job(
            true,
            "2026-01-02T03:01:00Z",
            r#"{"command":"backup","ok":true,"id":"20260102T030000Z","destinations":[{"ok":true,"count":2,"bytes":2048}]}"#,
        );
        let mut first = observed(applied(), Some(view(3)));
        first.backup = Some(backup_observation(vec![ok.clone()]));
        let s1 = compute(None, Some(1), &first, t("2026-01-02T04:00:00Z"));
        let backup = s1.backup.clone().unwrap();
        assert_eq!(backup.last_backup_id.as_deref(), Some("20260102T030000Z"));
        assert_eq!((backup.count, backup.bytes), (Some(2), Some(2048)));
        assert_eq!(condition(&s1, "BackupHealthy").status, "True");

        // A wrong password the next night: False with the program's reason, one Warning event.
        let denied = backup_job(
            false,
            "2026-01-03T03:00:30Z",
            r#"{"command":"backup","ok":false,"reason":"DatabaseUnavailable","error":"password authentication failed for user \"fp\""}"#,
        );
        let mut second = observed(applied(), Some(view(3)));
        second.backup = Some(backup_observation(vec![ok.clone(), denied.clone()]));
        let s2 = compute(Some(&s1), Some(1), &second, t("2026-01-03T04:00:00Z"));
        let healthy = condition(&s2, "BackupHealthy");
        assert_eq!(
            (healthy.status.as_str(), healthy.reason.as_str()),
            ("False", "BackupFailed")
        );
        assert!(healthy.message.contains("password authentication failed"));
        let events = transition_events(Some(&s1), &s2);
        assert!(
            events
                .iter()
                .any(|(r, m)| *r == Reason::BackupFailed && m.contains("DatabaseUnavailable")),
            "{events:?}"
        );
        // The same situation an hour later: no status change, no second event.
        let s3 = compute(Some(&s2), Some(1), &second, t("2026-01-03T05:00:00Z"));
        assert_eq!(s3, s2);
        assert!(transition_events(Some(&s2), &s3).is_empty());

        // The Jobs aged out of history: the status keeps what they said.
        let mut later = observed(applied(), Some(view(3)));
        later.backup = Some(backup_observation(vec![]));
        let s4 = compute(Some(&s3), Some(1), &later, t("2026-01-03T06:00:00Z"));
        assert_eq!(s4.backup, s3.backup);

        // Backups removed from the spec: status.backup and the condition go.
        let s5 = compute(
            Some(&s4),
            Some(2),
            &observed(applied(), Some(view(3))),
            t("2026-01-03T07:00:00Z"),
        );
        assert_eq!(s5.backup, None);
        assert!(s5.conditions.iter().all(|c| c.type_ != "BackupHealthy"));
    }

    #[test]
    fn ready_when_every_active_pod_is_available() {
        let s = compute(
            None,
            Some(7),
            &observed(applied(), Some(view(3))),
            t("2026-01-01T00:00:00Z"),
        );
        let ready = condition(&s, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "Serving")
        );
        assert_eq!(ready.message, "3/3 pods of 1.4.2 (blue) ready");
        assert_eq!(ready.observed_generation, Some(7));
        assert_eq!(condition(&s, "Progressing").status, "False");
        assert_eq!(condition(&s, "Degraded").reason, "Healthy");
        assert_eq!(s.observed_generation, Some(7));
        assert_eq!(s.phase, Some(Phase::Healthy));
        assert_eq!(
            s.active,
            Some(ColorStatus {
                color: Color::Blue,
                version: "1.4.2".into(),
                image: String::new(),
                config: String::new(),
                ready_replicas: 3
            })
        );
        assert_eq!(
            s.preview.as_ref().map(|p| (p.color, p.version.as_str())),
            Some((Color::Green, "1.4.1"))
        );
    }

    #[test]
    fn notification_failures_show_in_a_condition() {
        let mut o = observed(applied(), Some(view(3)));
        o.notifications = Some(DeliveryState {
            last_error: Some("webhook answered 500 after 4 attempts".into()),
            failed_deliveries: 1,
            ..DeliveryState::default()
        });
        let s = compute(None, Some(1), &o, t("2026-01-01T00:00:00Z"));
        let c = condition(&s, "NotificationsDelivered");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str(), c.message.as_str()),
            (
                "False",
                "DeliveryFailed",
                "webhook answered 500 after 4 attempts"
            )
        );
        assert_eq!(
            s.phase,
            Some(Phase::Healthy),
            "a webhook never degrades the platform"
        );
        o.notifications = Some(DeliveryState {
            delivered: 2,
            ..DeliveryState::default()
        });
        let s = compute(None, Some(1), &o, t("2026-01-01T00:00:00Z"));
        assert_eq!(condition(&s, "NotificationsDelivered").status, "True");
        o.notifications = None;
        let s = compute(None, Some(1), &o, t("2026-01-01T00:00:00Z"));
        assert!(
            s.conditions
                .iter()
                .all(|c| c.type_ != "NotificationsDelivered")
        );
    }

    #[test]
    fn a_paused_change_is_not_ready_and_says_what_waits() {
        let mut o = observed(applied(), Some(view(3)));
        o.paused = true;
        o.desired_version = "1.5.0".into();
        let s = compute(None, Some(2), &o, t("2026-01-01T00:00:00Z"));
        let ready = condition(&s, "Ready");
        assert_eq!(
            (
                ready.status.as_str(),
                ready.reason.as_str(),
                ready.message.as_str()
            ),
            (
                "False",
                "Paused",
                "spec.rollout.paused: 1.5.0 waits, 1.4.2 serves"
            )
        );
        assert_eq!(s.phase, Some(Phase::Paused));
        o.desired_version = "1.4.2".into();
        let s = compute(None, Some(2), &o, t("2026-01-01T00:00:00Z"));
        assert_eq!(
            condition(&s, "Ready").status,
            "True",
            "paused with nothing to do"
        );
        assert_eq!(s.phase, Some(Phase::Healthy));
    }

    #[test]
    fn progressing_while_pods_come_up() {
        let s = compute(
            None,
            Some(1),
            &observed(applied(), Some(view(1))),
            t("2026-01-01T00:00:00Z"),
        );
        let ready = condition(&s, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Deploying")
        );
        assert_eq!(ready.message, "1/3 pods of 1.4.2 (blue) ready");
        assert_eq!(condition(&s, "Progressing").status, "True");
        assert_eq!(s.phase, Some(Phase::Progressing));
        let stale = DeploymentView {
            current: false,
            ..view(3)
        };
        let s = compute(
            None,
            Some(1),
            &observed(applied(), Some(stale)),
            t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(
            condition(&s, "Ready").status,
            "False",
            "an old generation does not count"
        );
    }

    #[test]
    fn invalid_specs_and_missing_dependencies_are_degraded_with_the_field() {
        let s = compute(
            None,
            Some(2),
            &observed(
                Outcome::MissingDependency(vec![
                    "spec.database.urlSecretRef: Secret db not found in namespace football".into(),
                ]),
                None,
            ),
            t("2026-01-01T00:00:00Z"),
        );
        let ready = condition(&s, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "MissingDependency")
        );
        assert_eq!(
            ready.message,
            "spec.database.urlSecretRef: Secret db not found in namespace football"
        );
        assert_eq!(condition(&s, "Degraded").status, "True");
        assert_eq!(s.phase, Some(Phase::Degraded));
        let s = compute(
            None,
            Some(2),
            &observed(
                Outcome::InvalidSpec(vec!["a: x".into(), "b: y".into()]),
                None,
            ),
            t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(condition(&s, "Ready").reason, "InvalidSpec");
        assert_eq!(condition(&s, "Ready").message, "a: x (and 1 more: b: y)");
    }

    #[test]
    fn transition_time_only_moves_when_the_status_flips() {
        let t0 = t("2026-01-01T00:00:00Z");
        let t1 = t("2026-01-01T00:05:00Z");
        let first = compute(None, Some(1), &observed(applied(), Some(view(3))), t0);
        let again = compute(
            Some(&first),
            Some(1),
            &observed(applied(), Some(view(3))),
            t1,
        );
        assert_eq!(
            again, first,
            "a steady state computes an identical status (no write)"
        );
        let down = compute(
            Some(&first),
            Some(1),
            &observed(applied(), Some(view(2))),
            t1,
        );
        assert_eq!(condition(&down, "Ready").last_transition_time, Time(t1));
        assert_eq!(
            condition(&down, "Degraded").last_transition_time,
            Time(t0),
            "Degraded stayed False"
        );
    }

    #[test]
    fn apply_failures_and_stalled_rollouts_degrade() {
        let outcome = Outcome::Applied {
            errors: vec!["Ingress prod: forbidden".into()],
            missing_crds: vec![],
        };
        let s = compute(
            None,
            Some(1),
            &observed(outcome, Some(view(3))),
            t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(condition(&s, "Degraded").reason, "ApplyFailed");
        assert_eq!(condition(&s, "Ready").status, "True", "still serving");
        assert_eq!(s.phase, Some(Phase::Degraded));
        let stalled = DeploymentView {
            deadline_exceeded: true,
            ..view(1)
        };
        let s = compute(
            None,
            Some(1),
            &observed(applied(), Some(stalled)),
            t("2026-01-01T00:00:00Z"),
        );
        assert_eq!(condition(&s, "Degraded").reason, "ProgressDeadlineExceeded");
        assert_eq!(
            condition(&s, "Degraded").message,
            "Deployment prod-blue did not become available within its progress deadline"
        );
    }

    #[test]
    fn optional_crds_get_their_own_conditions() {
        let mut o = observed(
            Outcome::Applied {
                errors: vec![],
                missing_crds: vec!["servicemonitors.monitoring.coreos.com"],
            },
            Some(view(3)),
        );
        o.monitoring_wanted = true;
        o.certificate = Some(CertificateObservation::CrdMissing);
        let s = compute(None, Some(1), &o, t("2026-01-01T00:00:00Z"));
        let m = condition(&s, "MonitoringReady");
        assert_eq!(
            (m.status.as_str(), m.reason.as_str()),
            ("False", "CrdMissing")
        );
        assert_eq!(
            m.message,
            "servicemonitors.monitoring.coreos.com not served: install prometheus-operator's CRDs; the rest is reconciled"
        );
        assert_eq!(
            condition(&s, "CertificateReady").message,
            "certificates.cert-manager.io not served: install cert-manager; the rest is reconciled"
        );
        assert_eq!(condition(&s, "Ready").status, "True", "the rest reconciles");
        o.certificate = Some(CertificateObservation::Reported(CertificateState {
            conditions: vec![CertificateCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: None,
                message: Some("Certificate is up to date".into()),
            }],
            not_after: Some(Time(t("2026-04-01T00:00:00Z"))),
        }));
        let s = compute(None, Some(1), &o, t("2026-01-01T00:00:00Z"));
        assert_eq!(condition(&s, "CertificateReady").reason, "Issued");
        assert_eq!(
            s.certificate.unwrap().not_after,
            Some(Time(t("2026-04-01T00:00:00Z")))
        );
    }

    #[test]
    fn the_rollout_state_is_written_and_kept_when_nothing_was_applied() {
        let entry = |v: &str| crate::crd::HistoryEntry {
            version: v.into(),
            promoted_at: Time(t("2025-12-01T00:00:00Z")),
            backup_id: None,
        };
        let previous = FootballPredictionStatus {
            history: vec![entry("1.4.1")],
            ..FootballPredictionStatus::default()
        };
        let mut o = observed(applied(), Some(view(3)));
        o.rollout.as_mut().unwrap().history = vec![entry("1.4.2"), entry("1.4.1")];
        let s = compute(Some(&previous), Some(1), &o, t("2026-01-01T00:00:00Z"));
        assert_eq!(s.history, vec![entry("1.4.2"), entry("1.4.1")]);
        let invalid = Outcome::InvalidSpec(vec!["bad".into()]);
        let mut o = observed(invalid, None);
        o.rollout = None;
        o.plan = None;
        let s = compute(Some(&previous), Some(1), &o, t("2026-01-01T00:00:00Z"));
        assert_eq!(s.history, previous.history);
    }

    #[test]
    fn events_fire_once_per_new_failure_and_on_return_to_service() {
        let t0 = t("2026-01-01T00:00:00Z");
        let bad = compute(
            None,
            Some(1),
            &observed(Outcome::InvalidSpec(vec!["x: y".into()]), None),
            t0,
        );
        assert_eq!(
            transition_events(None, &bad),
            [(Reason::InvalidSpec, "x: y".to_owned())]
        );
        assert!(
            transition_events(Some(&bad), &bad).is_empty(),
            "an unchanged failure is not re-announced"
        );
        let other = compute(
            Some(&bad),
            Some(2),
            &observed(Outcome::InvalidSpec(vec!["z: w".into()]), None),
            t0,
        );
        assert_eq!(
            transition_events(Some(&bad), &other),
            [(Reason::InvalidSpec, "z: w".to_owned())]
        );
        let good = compute(
            Some(&other),
            Some(3),
            &observed(applied(), Some(view(3))),
            t0,
        );
        assert_eq!(
            transition_events(Some(&other), &good),
            [(Reason::Serving, "3/3 pods of 1.4.2 (blue) ready".to_owned())]
        );
        assert!(transition_events(Some(&good), &good).is_empty());
    }
}
