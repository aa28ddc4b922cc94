//! The rollout's edge: turns the status and the live children into the state machine's inputs,
//! runs the analysis round the machine asks for, and performs the effects of a step (events,
//! metrics). Everything it decides is decided by the pure [`super::rollout`] functions.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};

use super::Context;
use super::analysis;
use super::backup_health;
use super::events;
use super::rollout::{self, Effect, JobState, Release, RolloutSettings, Round, State};
use crate::crd::{
    Color, FootballPrediction, FootballPredictionStatus, NotificationEvent, RolloutCommand,
    RolloutStage,
};
use crate::notify::Notification;
use crate::reason::Reason;
use crate::resources::common::{API_PORT, api_selector_labels, short_hash};
use crate::resources::{ColorTarget, deployment, migration_job};
use crate::validate::Validated;

const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// Longest Job failure text kept in the status.
const MAX_JOB_MESSAGE: usize = 300;

/// The spec's rollout settings, resolved.
/// `serving_replicas` is what the serving color's Deployment asks for now: with autoscaling, the
/// autoscaler's size, which the new color is promoted at and the old color is kept at until the
/// scale-down (a switch back then lands on as many pods as served before).
pub fn settings(v: &Validated, serving_replicas: Option<i32>) -> RolloutSettings {
    let r = &v.spec.rollout;
    let replicas = v.spec.autoscaling.as_ref().map_or(v.spec.replicas, |a| {
        serving_replicas
            .unwrap_or(a.min_replicas)
            .clamp(a.min_replicas, a.max_replicas.max(a.min_replicas))
    });
    RolloutSettings {
        auto_promote: r.auto_promote,
        paused: r.paused,
        preview_replicas: r.preview_replicas,
        replicas,
        progress_deadline: Duration::from_secs(
            u64::try_from(r.progress_deadline_seconds).unwrap_or(0),
        ),
        scale_down_delay: Duration::from_secs(
            u64::try_from(r.scale_down_delay_seconds).unwrap_or(0),
        ),
        interval: v.durations.analysis_interval,
        count: r.analysis.count,
        failure_limit: r.analysis.failure_limit,
        post_promotion: v.durations.post_promotion,
        migrations: v.spec.database.migrations.enabled,
        backup_before_migration: v.spec.backup.as_ref().is_some_and(|b| b.before_migration),
        start_failure_grace: Duration::from_secs(
            u64::try_from(r.start_failure_grace_seconds).unwrap_or(0),
        ),
    }
}

/// The release the spec asks for, with the versions of the Secrets its pods read.
pub fn desired(v: &Validated, secret_versions: &[(String, String)]) -> Release {
    Release {
        version: v.spec.version.clone(),
        image: v.image_for(&v.spec.version),
        config: deployment::config_revision(v, secret_versions),
    }
}

/// `(name, resourceVersion)` of the user's Secrets the API pods read (the database URL, and the
/// signing keys and admin password when the spec names them): editing one is a new release.
pub fn pod_secret_versions(
    v: &Validated,
    found: &BTreeMap<String, Option<Secret>>,
) -> Vec<(String, String)> {
    crate::validate::pod_secret_names(&v.spec, &v.names)
        .into_iter()
        .map(|name| {
            let version = found
                .get(&name)
                .and_then(Option::as_ref)
                .and_then(|s| s.metadata.resource_version.clone())
                .unwrap_or_default();
            (name, version)
        })
        .collect()
}

/// The machine's part of the status.
pub fn state(status: Option<&FootballPredictionStatus>) -> State {
    let Some(s) = status else {
        return State::default();
    };
    State {
        rollout: s.rollout.clone().unwrap_or_default(),
        active: s.active.clone().filter(|a| !a.version.is_empty()),
        preview: s.preview.clone().filter(|p| !p.version.is_empty()),
        history: s.history.clone(),
        last_rollback: s.last_rollback.clone(),
    }
}

/// The pods of Job `name` (empty when listing fails: the Job's own status still decides).
async fn job_pods(ctx: &Context, namespace: &str, name: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    api.list(&ListParams::default().labels(&format!("{JOB_NAME_LABEL}={name}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

fn shorten(text: &str) -> String {
    let line = text.trim().lines().last().unwrap_or_default().trim();
    if line.chars().count() <= MAX_JOB_MESSAGE {
        return line.to_owned();
    }
    let mut out: String = line.chars().take(MAX_JOB_MESSAGE - 1).collect();
    out.push('…');
    out
}

/// The name of the rollout's migration Job, when the rollout has a target and migrations are on.
fn migration_job_name(v: &Validated, state: &State) -> Option<String> {
    let r = &state.rollout;
    if r.target_version.is_empty() {
        return None;
    }
    let target = ColorTarget {
        version: r.target_version.clone(),
        image: r.target_image.clone(),
        config: r.target_config.clone(),
        replicas: None,
    };
    migration_job::migration_job(v, &target).and_then(|j| j.metadata.name)
}

/// The name of the backup Job of this rollout (one per rollout, a retry takes another).
fn pre_migration_backup_job_name(v: &Validated, state: &State) -> String {
    let key = rollout::plan::rollout_key(state);
    v.names
        .pre_migration_backup_job(&short_hash(key.as_bytes()))
}

/// The outcome of the rollout's migration Job, with the last line its pod wrote when it failed.
pub async fn migration_state(
    ctx: &Context,
    v: &Validated,
    state: &State,
    jobs: &BTreeMap<String, Job>,
) -> JobState {
    let Some(name) = migration_job_name(v, state) else {
        return JobState::Missing;
    };
    let Some(job) = jobs.get(&name) else {
        return JobState::Missing;
    };
    let status = job.status.clone().unwrap_or_default();
    let failed = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    if status.succeeded.unwrap_or(0) > 0 {
        return JobState::Succeeded { backup_id: None };
    }
    let Some(failed) = failed else {
        return JobState::Running;
    };
    let reason = failed
        .message
        .clone()
        .or(failed.reason.clone())
        .unwrap_or_else(|| "the Job failed".into());
    let said = job_pods(ctx, &v.namespace, &name)
        .await
        .iter()
        .find_map(|p| {
            p.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .iter()
                .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
        })
        .filter(|m| !m.trim().is_empty())
        // The log tail lands in status, readable by whoever may read the resource.
        .map(|m| fp_contract::redact::redact(&m));
    JobState::Failed(match said {
        Some(said) => format!("{} ({})", shorten(&said), shorten(&reason)),
        None => shorten(&reason),
    })
}

/// The outcome of the backup Job the rollout runs before its migration, with the backup id from
/// the program's summary.
pub async fn pre_migration_backup_state(
    ctx: &Context,
    v: &Validated,
    state: &State,
    jobs: &BTreeMap<String, Job>,
) -> JobState {
    if state.rollout.stage != RolloutStage::BackingUp {
        return JobState::Missing;
    }
    let name = pre_migration_backup_job_name(v, state);
    let Some(job) = jobs.get(&name) else {
        return JobState::Missing;
    };
    let pods = job_pods(ctx, &v.namespace, &name).await;
    match backup_health::job_outcome(job, &pods) {
        None => JobState::Running,
        Some(outcome) if outcome.succeeded => JobState::Succeeded {
            backup_id: outcome.summary.and_then(|s| s.id),
        },
        Some(outcome) => JobState::Failed(outcome.failure_text()),
    }
}

/// The containers in trouble among the pods the rollout's stage starts: the pre-migration backup
/// Job's, the migration Job's, or the target color's pods of the target release. Empty when the
/// stage starts none or the pods cannot be listed (the progress deadline still applies).
pub async fn stuck_containers(
    ctx: &Context,
    v: &Validated,
    state: &State,
    jobs: &BTreeMap<String, Job>,
) -> Vec<rollout::StuckContainer> {
    let r = &state.rollout;
    if !r.stage.starts_pods() {
        return Vec::new();
    }
    let pods: Vec<Pod> = match r.stage {
        RolloutStage::BackingUp => {
            job_pods(ctx, &v.namespace, &pre_migration_backup_job_name(v, state)).await
        }
        RolloutStage::Migrating => match migration_job_name(v, state) {
            Some(name) if jobs.contains_key(&name) => job_pods(ctx, &v.namespace, &name).await,
            _ => Vec::new(),
        },
        _ => {
            let Some(color) = r.target_color else {
                return Vec::new();
            };
            let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &v.namespace);
            let selector = label_selector(&api_selector_labels(v, color));
            match api.list(&ListParams::default().labels(&selector)).await {
                Ok(list) => list
                    .items
                    .into_iter()
                    .filter(|p| rollout::stuck::runs_release(p, &r.target_image, &r.target_config))
                    .collect(),
                Err(error) => {
                    tracing::warn!(%error, color = color.as_str(), "listing the target color's pods failed");
                    Vec::new()
                }
            }
        }
    };
    rollout::stuck_containers(&pods)
}

fn label_selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, val)| format!("{k}={val}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One analysis round against the running pods of `color`: the HTTP checks, and with
/// `maxErrorRatio` the 5xx share of the requests the pods served since the previous round. Pods
/// that are running but not Ready are probed too: a pod whose readiness turns bad must count as a
/// failure, not silently leave the set being analysed.
pub async fn run_round(ctx: &Context, v: &Validated, color: Color) -> Round {
    let selector = label_selector(&api_selector_labels(v, color));
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &v.namespace);
    let pods = match api.list(&ListParams::default().labels(&selector)).await {
        Ok(list) => list.items,
        Err(error) => {
            return Round {
                passed: false,
                error: format!("listing the {} pods failed: {error}", color.as_str()),
                answered: false,
            };
        }
    };
    let port = u16::try_from(API_PORT).unwrap_or(8080);
    let addresses = analysis::running_pod_addresses(&pods, port);
    let analysis_spec = &v.spec.rollout.analysis;
    let timeout = v.durations.analysis_timeout;
    let result = analysis::probe_round(
        &ctx.probe_client,
        &addresses,
        &analysis_spec.checks,
        timeout,
    )
    .await;
    let mut failures = result.failures.clone();
    if let Some(max) = analysis_spec.max_error_ratio {
        let key = (v.owner.uid.clone(), color);
        match analysis::scrape_counts(&ctx.probe_client, &addresses, timeout).await {
            Ok(now) => {
                let before = ctx.request_counts(&key, now);
                if let Some(ratio) = before.and_then(|b| analysis::error_ratio(&b, &now))
                    && ratio > max
                {
                    failures.push(format!(
                        "5xx share of http_requests_total was {ratio:.3} since the previous round (maxErrorRatio {max})"
                    ));
                }
            }
            Err(error) => failures.push(format!("scraping /metrics failed: {error}")),
        }
    }
    if addresses.is_empty() && failures.is_empty() {
        failures.push(format!("no running {} pods to probe", color.as_str()));
    }
    Round {
        passed: failures.is_empty(),
        error: failures.join("; "),
        answered: result.answered_failures > 0,
    }
}

/// The webhook notification an effect deserves, if any.
fn notification(fp: &FootballPrediction, effect: &Effect) -> Option<Notification> {
    let namespace = fp.namespace().unwrap_or_default();
    let name = fp.name_any();
    let who = format!("{namespace}/{name}");
    let (event, text, fields) = match effect {
        Effect::Started { from, to, rollback } => (
            NotificationEvent::RolloutStarted,
            format!(
                "{who}: {} of {to} started",
                if *rollback { "rollback" } else { "rollout" }
            ),
            vec![(
                "From".to_owned(),
                from.clone().unwrap_or_else(|| "(first deploy)".into()),
            )],
        ),
        Effect::Succeeded { version } => (
            NotificationEvent::RolloutSucceeded,
            format!("{who}: {version} passed post-promotion analysis and serves"),
            Vec::new(),
        ),
        Effect::RolledBack { reason, record } => (
            NotificationEvent::RolledBack,
            format!(
                "{who}: {} rolled back ({reason}): {}",
                record.from_version, record.message
            ),
            vec![
                ("Rejected".to_owned(), record.from_version.clone()),
                (
                    "Serving".to_owned(),
                    if record.to_version.is_empty() {
                        "nothing".to_owned()
                    } else {
                        record.to_version.clone()
                    },
                ),
                ("Reason".to_owned(), reason.to_string()),
            ],
        ),
        _ => return None,
    };
    Some(Notification {
        event,
        namespace,
        name,
        text,
        fields,
    })
}

/// Queues the webhook notifications of a step (delivery happens in the background).
async fn notify(fp: &FootballPrediction, ctx: &Context, effects: &[Effect]) {
    let Some(spec) = &fp.spec.notifications else {
        return;
    };
    let wanted: Vec<Notification> = effects
        .iter()
        .filter_map(|e| notification(fp, e))
        .filter(|n| crate::notify::wanted(spec, n.event))
        .collect();
    if wanted.is_empty() {
        return;
    }
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &fp.namespace().unwrap_or_default());
    let reference = &spec.webhook_secret_ref;
    let url = match secrets.get_opt(&reference.name).await {
        Ok(secret) => secret
            .and_then(|s| s.data)
            .and_then(|d| d.get(&reference.key).cloned())
            .and_then(|v| String::from_utf8(v.0).ok())
            .map(|u| u.trim().to_owned()),
        Err(error) => {
            tracing::warn!(%error, secret = %reference.name, "reading the webhook Secret failed");
            None
        }
    };
    let Some(url) = url else {
        return;
    };
    for n in wanted {
        ctx.notifier.send(url.clone(), n);
    }
}

/// Events, metrics and notifications for the effects of a step.
pub async fn perform(fp: &FootballPrediction, ctx: &Context, effects: &[Effect]) {
    notify(fp, ctx, effects).await;
    let reference = fp.object_ref(&());
    let name = format!("{}/{}", fp.namespace().unwrap_or_default(), fp.name_any());
    for effect in effects {
        let (reason, note) = match effect {
            Effect::Started { from, to, rollback } => {
                ctx.metrics.rollout("started");
                let kind = if *rollback { "rollback" } else { "rollout" };
                let from = from.as_deref().unwrap_or("nothing (first deploy)");
                (
                    Reason::RolloutStarted,
                    format!("{kind} of {to} started, serving {from}"),
                )
            }
            Effect::Stage { stage, message } => (
                Reason::RolloutStage,
                format!("{}: {message}", stage.as_str()),
            ),
            Effect::Switched { color, version } => (
                Reason::Promoted,
                format!("active Service switched to {} ({version})", color.as_str()),
            ),
            Effect::Succeeded { version } => {
                ctx.metrics.rollout("succeeded");
                (
                    Reason::RolloutSucceeded,
                    format!("{version} passed post-promotion analysis"),
                )
            }
            Effect::Command {
                command,
                applied,
                message,
            } => {
                let reason = if *applied {
                    Reason::CommandApplied
                } else {
                    Reason::CommandRefused
                };
                (reason, format!("{}: {message}", command.as_str()))
            }
            Effect::RolledBack { reason, record } => {
                ctx.metrics.rolled_back(
                    &fp.namespace().unwrap_or_default(),
                    &fp.name_any(),
                    *reason,
                );
                let to = if record.to_version.is_empty() {
                    "no release (nothing serves)"
                } else {
                    record.to_version.as_str()
                };
                (
                    Reason::RolledBack,
                    format!(
                        "{reason}: {} stopped, serving {to}: {}",
                        record.from_version, record.message
                    ),
                )
            }
        };
        tracing::info!(instance = %name, reason = reason.as_str(), %note, "rollout");
        events::publish(&ctx.recorder, &ctx.metrics, &reference, None, reason, note).await;
    }
}

/// Removes the command annotations acted on (after the status holds the outcome), so each request
/// is handled once.
pub async fn clear_commands(
    ctx: &Context,
    fp: &FootballPrediction,
    commands: &[RolloutCommand],
) -> Result<(), super::Error> {
    if commands.is_empty() {
        return Ok(());
    }
    let annotations: serde_json::Map<String, serde_json::Value> = commands
        .iter()
        .map(|c| (c.annotation().to_owned(), serde_json::Value::Null))
        .collect();
    let api: Api<FootballPrediction> =
        Api::namespaced(ctx.client.clone(), &fp.namespace().unwrap_or_default());
    api.patch(
        &fp.name_any(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"annotations": annotations}})),
    )
    .await
    .map_err(super::Error::Status)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;
    use serde_json::json;

    #[test]
    fn without_autoscaling_colors_run_spec_replicas() {
        let v = validated(json!({"version": "1", "replicas": 4}));
        assert_eq!(settings(&v, None).replicas, 4);
        assert_eq!(settings(&v, Some(9)).replicas, 4);
    }

    #[test]
    fn with_autoscaling_colors_follow_the_autoscalers_size_within_its_bounds() {
        let v = validated(json!({"version": "1", "autoscaling":
            {"minReplicas": 2, "maxReplicas": 8, "targetCPUUtilizationPercentage": 70}}));
        // Nothing serves yet: the autoscaler's floor.
        assert_eq!(settings(&v, None).replicas, 2);
        // Scaled out under load: the new color is promoted at that size, the old one kept at it.
        assert_eq!(settings(&v, Some(6)).replicas, 6);
        // A Deployment edited outside the bounds does not drag the rollout with it.
        assert_eq!(settings(&v, Some(0)).replicas, 2);
        assert_eq!(settings(&v, Some(30)).replicas, 8);
    }
}
