//! One reconcile: validate → check dependencies → list live children → build → apply → status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::core::error_boundary::{DeserializeGuard, InvalidObject};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::apply::{self, ApplyContext, ApplyReport};
use super::backup_health;
use super::events;
use super::rollout;
use super::rollout_io;
use super::status::{
    self, BackupObservation, CertificateObservation, DeploymentView, Observed, Outcome,
};
use super::{Context, Error};
use crate::crd::{
    BackupSpec, Color, Endpoints, FIELD_MANAGER, FootballPrediction, FootballPredictionStatus,
    RolloutCommand, labels,
};
use crate::metrics::ReconcileResult;
use crate::reason::Reason;
use crate::resources::certificate::Certificate;
use crate::resources::common::Component;
use crate::resources::service::service_url;
use crate::resources::{Entropy, Kind, LiveInputs, build};
use crate::validate::key_ids::KEY_BYTES;
use crate::validate::{SecretRequirement, check_secrets, secret_requirements, validate};

/// An invalid spec only changes when someone edits it, which triggers a reconcile anyway.
pub const INVALID_SPEC_REQUEUE: Duration = Duration::from_secs(300);
/// A missing Secret may be created at any time; look again, slowly.
pub const MISSING_DEPENDENCY_REQUEUE: Duration = Duration::from_secs(30);
/// While pods come up (watch events on the Deployments also trigger reconciles).
pub const PROGRESSING_REQUEUE: Duration = Duration::from_secs(30);
/// In a steady state: re-check drift and key rotation now and then.
pub const STEADY_REQUEUE: Duration = Duration::from_secs(300);

/// Entry point for the controller: handles objects that do not even deserialise.
pub async fn reconcile(
    guard: Arc<DeserializeGuard<FootballPrediction>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let (result, outcome) = match &guard.0 {
        Ok(fp) => match reconcile_valid(fp, &ctx).await {
            Ok((action, outcome)) => (Ok(action), outcome),
            Err(e) => (Err(e), ReconcileResult::Error),
        },
        Err(invalid) => (
            report_undecodable(invalid, &ctx)
                .await
                .map(|()| Action::await_change()),
            ReconcileResult::InvalidSpec,
        ),
    };
    ctx.metrics.reconciled(outcome, started.elapsed());
    if result.is_ok()
        && let Some(uid) = guard.meta().uid.as_deref()
    {
        ctx.reset_failures(uid);
    }
    result
}

/// An object that does not match the types (e.g. stored under an older schema): say so once in
/// its status and an event, and wait for it to change.
async fn report_undecodable(invalid: &InvalidObject, ctx: &Context) -> Result<(), Error> {
    let uid = invalid.metadata.uid.clone().unwrap_or_default();
    if !ctx.first_report_of(&uid, &invalid.error) {
        return Ok(());
    }
    let (Some(name), Some(namespace)) = (
        invalid.metadata.name.clone(),
        invalid.metadata.namespace.clone(),
    ) else {
        return Ok(());
    };
    let message = format!(
        "the object does not match the FootballPrediction schema: {}",
        invalid.error
    );
    tracing::warn!(%namespace, %name, error = %invalid.error, "cannot decode FootballPrediction");
    let now = Timestamp::now();
    let condition = |type_: &str, status: &str| {
        json!({"type": type_, "status": status, "reason": Reason::InvalidSpec.as_str(), "message": message,
               "observedGeneration": invalid.metadata.generation, "lastTransitionTime": now.to_string()})
    };
    let body = json!({
        "apiVersion": FootballPrediction::api_version(&()),
        "kind": FootballPrediction::kind(&()),
        "status": {
            "observedGeneration": invalid.metadata.generation,
            "phase": "Degraded",
            "conditions": [condition("Ready", "False"), condition("Degraded", "True")],
        }
    });
    let api: Api<FootballPrediction> = Api::namespaced(ctx.client.clone(), &namespace);
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(Error::Status)?;
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(FootballPrediction::api_version(&()).into_owned()),
        kind: Some(FootballPrediction::kind(&()).into_owned()),
        name: Some(name),
        namespace: Some(namespace),
        uid: invalid.metadata.uid.clone(),
        ..Default::default()
    };
    events::publish(
        &ctx.recorder,
        &ctx.metrics,
        &reference,
        None,
        Reason::InvalidSpec,
        message,
    )
    .await;
    Ok(())
}

async fn fetch_secrets(
    ctx: &Context,
    namespace: &str,
    requirements: &[SecretRequirement],
) -> Result<BTreeMap<String, Option<Secret>>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let mut found = BTreeMap::new();
    for req in requirements {
        if !found.contains_key(&req.secret) {
            let secret = api
                .get_opt(&req.secret)
                .await
                .map_err(Error::SecretLookup)?;
            found.insert(req.secret.clone(), secret);
        }
    }
    Ok(found)
}

fn random_key() -> [u8; KEY_BYTES] {
    let mut key = [0u8; KEY_BYTES];
    rand::fill(&mut key);
    key
}

fn random_password() -> String {
    let mut bytes = [0u8; 20];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

/// A live child as its typed form. Listed items may lack apiVersion/kind, which typed custom
/// resources require, so they are filled in from the kind.
fn typed<T: DeserializeOwned>(kind: Kind, object: Option<&DynamicObject>) -> Option<T> {
    let mut object = object?.clone();
    if object.types.is_none() {
        let ar = kind.api_resource();
        object.types = Some(kube::core::TypeMeta {
            api_version: ar.api_version,
            kind: ar.kind,
        });
    }
    serde_json::to_value(object)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

async fn reconcile_valid(
    fp: &FootballPrediction,
    ctx: &Context,
) -> Result<(Action, ReconcileResult), Error> {
    if fp.meta().deletion_timestamp.is_some() {
        // Children go with their ownerReferences; nothing outside the cluster needs cleaning up.
        return Ok((Action::await_change(), ReconcileResult::Success));
    }
    // Step from the status this replica wrote last (the cache may still hold an older one).
    let mut latest = fp.clone();
    latest.status = ctx.latest_status(fp);
    let fp = &latest;
    let now = Timestamp::now();
    let namespace = fp.namespace().unwrap_or_default();
    let v = match validate(fp, &ctx.settings) {
        Ok(v) => v,
        Err(errors) => {
            let messages = errors.iter().map(ToString::to_string).collect();
            write_status(
                fp,
                ctx,
                &Observed::failed(Outcome::InvalidSpec(messages), fp),
                now,
            )
            .await?;
            return Ok((
                Action::requeue(INVALID_SPEC_REQUEUE),
                ReconcileResult::InvalidSpec,
            ));
        }
    };
    let requirements = secret_requirements(&v);
    let found = fetch_secrets(ctx, &namespace, &requirements).await?;
    let missing = check_secrets(&namespace, &requirements, &found);
    if !missing.is_empty() {
        let messages = missing.iter().map(ToString::to_string).collect();
        write_status(
            fp,
            ctx,
            &Observed::failed(Outcome::MissingDependency(messages), fp),
            now,
        )
        .await?;
        return Ok((
            Action::requeue(MISSING_DEPENDENCY_REQUEUE),
            ReconcileResult::MissingDependency,
        ));
    }

    let served = ctx.capabilities.served(&ctx.client).await;
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| k.required_crd().is_none_or(|crd| served.contains(crd)))
        .collect();
    let live = apply::list_children(&ctx.client, &namespace, &v.name, &kinds)
        .await
        .map_err(Error::ListChildren)?;
    let secret_data = |name: &str| {
        live.get(&Kind::Secret)
            .and_then(|secrets| secrets.iter().find(|s| s.name_any() == name))
            .and_then(|s| typed::<Secret>(Kind::Secret, Some(s)))
            .and_then(|s| s.data)
    };
    let jwt_keys = secret_data(v.signing_keys.secret());
    let admin_password = secret_data(&v.admin_password.name);
    // The rollout: observe, maybe run one analysis round, take one step, plan the colors.
    let secret_versions = rollout_io::pod_secret_versions(&v, &found);
    let desired = rollout_io::desired(&v, &secret_versions);
    let before = rollout_io::state(fp.status.as_ref());
    let live_deployment = |color: Color| {
        live.get(&Kind::Deployment)
            .and_then(|ds| {
                ds.iter()
                    .find(|d| d.name_any() == v.names.deployment(color))
            })
            .and_then(|d| typed::<Deployment>(Kind::Deployment, Some(d)))
    };
    let (blue_live, green_live) = (live_deployment(Color::Blue), live_deployment(Color::Green));
    let view_of = |color: Color| {
        match color {
            Color::Blue => blue_live.as_ref(),
            Color::Green => green_live.as_ref(),
        }
        .map(DeploymentView::from_deployment)
    };
    let serving_replicas = before
        .active
        .as_ref()
        .and_then(|a| view_of(a.color))
        .map(|d| d.desired);
    let rollout_settings = rollout_io::settings(&v, serving_replicas);
    let target_view = before.rollout.target_color.and_then(view_of);
    let migration = rollout_io::migration_state(ctx, &v, &before, live.get(&Kind::Job)).await;
    let backup =
        rollout_io::pre_migration_backup_state(ctx, &v, &before, live.get(&Kind::Job)).await;
    let stuck = rollout_io::stuck_containers(ctx, &v, &before, live.get(&Kind::Job)).await;
    let round = match rollout::machine::round_due(&before, &rollout_settings, now) {
        Some(color) => Some(rollout_io::run_round(ctx, &v, color).await),
        None => None,
    };
    let annotations = fp.annotations().clone();
    let commands = RolloutCommand::pending(&annotations);
    // The previous version, with today's configuration (a configuration alone is not kept in
    // history: the previous configuration is the one to restore by reverting the spec).
    let previous = crate::crd::rollback_target(before.active.as_ref(), &before.history).map(|h| {
        rollout::Release {
            image: v.image_for(&h.version),
            version: h.version.clone(),
            config: desired.config.clone(),
        }
    });
    let config_maps: BTreeMap<String, BTreeMap<String, String>> = live
        .get(&Kind::ConfigMap)
        .into_iter()
        .flatten()
        .filter_map(|cm| typed::<ConfigMap>(Kind::ConfigMap, Some(cm)))
        .filter_map(|cm| Some((cm.metadata.name?, cm.data.unwrap_or_default())))
        .collect();
    let (after, effects) = rollout::step(
        &before,
        &rollout::Inputs {
            now,
            desired: desired.clone(),
            settings: &rollout_settings,
            target_view: target_view.as_ref(),
            migration,
            backup,
            round,
            commands: &commands,
            previous,
            stuck: &stuck,
        },
    );
    let plan = rollout::plan_colors(
        &after,
        &rollout_settings,
        &desired,
        v.spec.autoscaling.is_some(),
        v.spec.rollout.keep_failed_pods,
    );
    let set = build(
        &v,
        &plan,
        LiveInputs {
            jwt_keys: jwt_keys.as_ref(),
            admin_password: admin_password.as_ref(),
            blue_template: blue_live.as_ref().map(|d| &d.spec.template),
            green_template: green_live.as_ref().map(|d| &d.spec.template),
            config_maps: Some(&config_maps),
            secret_versions: &secret_versions,
        },
        now,
        Entropy {
            signing_key: &mut random_key,
            password: &mut random_password,
        },
    );
    let children = set.into_children()?;
    let apply_ctx = ApplyContext {
        client: &ctx.client,
        memo: &ctx.memo,
        metrics: &ctx.metrics,
        namespace: &namespace,
        owner_uid: &v.owner.uid,
        served: &served,
    };
    let report = apply::sync(&apply_ctx, children, &live).await;
    announce_changes(fp, ctx, &report).await;

    let deployment = |color| {
        typed::<Deployment>(
            Kind::Deployment,
            report
                .current
                .get(&(Kind::Deployment, v.names.deployment(color))),
        )
        .map(|d| DeploymentView::from_deployment(&d))
    };
    let certificate = v.spec.tls.as_ref().map(|_| {
        if !served.contains(crate::resources::certificate::CRD) {
            return CertificateObservation::CrdMissing;
        }
        typed::<Certificate>(
            Kind::Certificate,
            report
                .current
                .get(&(Kind::Certificate, v.names.certificate())),
        )
        .and_then(|c| c.status)
        .map_or(
            CertificateObservation::Pending,
            CertificateObservation::Reported,
        )
    });
    let backup = match &v.spec.backup {
        Some(spec) => {
            Some(observe_backups(ctx, &namespace, &v.name, live.get(&Kind::Job), spec, fp).await)
        }
        None => None,
    };
    let monitoring = &v.spec.monitoring;
    let observed = Observed {
        outcome: Outcome::Applied {
            errors: report.errors.clone(),
            missing_crds: report.missing_crds.clone(),
        },
        active: deployment(plan.active),
        preview: deployment(plan.preview()),
        plan: Some(plan),
        certificate,
        monitoring_wanted: monitoring.prometheus_rule.enabled || monitoring.service_monitor.enabled,
        paused: v.spec.rollout.paused,
        rollout: Some(after.clone()),
        desired_version: v.spec.version.clone(),
        backup,
        notifications: v.spec.notifications.as_ref().map(|_| {
            ctx.notifier
                .delivery_state(&namespace, &v.name)
                .unwrap_or_default()
        }),
        endpoints: Some(Endpoints {
            active: service_url(&v, &v.names.active_service()),
            preview: service_url(&v, &v.names.preview_service()),
        }),
    };
    let ready = observed
        .active
        .as_ref()
        .is_some_and(DeploymentView::rolled_out);
    write_status(fp, ctx, &observed, now).await?;
    rollout_io::perform(fp, ctx, &effects).await;
    rollout_io::clear_commands(ctx, fp, &commands).await?;
    let alive: Vec<String> = ctx
        .store()
        .iter()
        .filter_map(|o| o.meta().uid.clone())
        .collect();
    ctx.metrics
        .set_managed(&v.owner.uid, report.counts.clone(), &alive);
    let alive_instances: Vec<(String, String)> = ctx
        .store()
        .iter()
        .map(|o| (o.namespace().unwrap_or_default(), o.name_any()))
        .collect();
    ctx.metrics.retain_backups(&alive_instances);
    if !report.errors.is_empty() {
        return Err(Error::Apply(report.errors.len()));
    }
    let requeue = if !effects.is_empty() {
        // One transition per step: take the next one right away.
        Duration::from_millis(100)
    } else if let Some(wait) = rollout::machine::next_step_in(&after, &rollout_settings, now) {
        wait
    } else if ready {
        STEADY_REQUEUE
    } else {
        PROGRESSING_REQUEUE
    };
    Ok((Action::requeue(requeue), ReconcileResult::Success))
}

/// The finished backup and drill Jobs (listed with the other children: the CronJobs' templates
/// carry our labels) with their pods' termination messages, which hold the program's summary.
async fn observe_backups(
    ctx: &Context,
    namespace: &str,
    name: &str,
    jobs: Option<&Vec<DynamicObject>>,
    spec: &BackupSpec,
    fp: &FootballPrediction,
) -> BackupObservation {
    let is_backup = |o: &&DynamicObject| {
        o.labels().get(labels::COMPONENT).map(String::as_str) == Some(Component::Backup.as_str())
    };
    let jobs: Vec<Job> = jobs
        .into_iter()
        .flatten()
        .filter(is_backup)
        .filter_map(|o| typed::<Job>(Kind::Job, Some(o)))
        .collect();
    let pods = if jobs.is_empty() {
        Vec::new()
    } else {
        let selector = format!(
            "{}={name},{}={}",
            labels::INSTANCE,
            labels::COMPONENT,
            Component::Backup.as_str()
        );
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
        match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items,
            Err(error) => {
                // Results are then read from the Jobs alone (no backup id, no failure text).
                tracing::warn!(%error, "listing backup pods failed");
                Vec::new()
            }
        }
    };
    BackupObservation {
        outcomes: jobs
            .iter()
            .filter_map(|job| backup_health::job_outcome(job, &pods))
            .collect(),
        spec: spec.clone(),
        created: fp
            .meta()
            .creation_timestamp
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0),
    }
}

fn record_backup_metrics(
    ctx: &Context,
    fp: &FootballPrediction,
    previous: Option<&FootballPredictionStatus>,
    next: &FootballPredictionStatus,
) {
    let namespace = fp.namespace().unwrap_or_default();
    let name = fp.name_any();
    let backup = next.backup.as_ref();
    ctx.metrics.set_backup(&namespace, &name, backup);
    let failed_before = previous
        .and_then(|p| p.backup.as_ref())
        .and_then(|b| b.last_failed_at.as_ref());
    if let Some(backup) = backup
        && backup.last_failed_at.is_some()
        && backup.last_failed_at.as_ref() != failed_before
    {
        let reason = backup.last_failure_reason.as_deref().unwrap_or_default();
        ctx.metrics.backup_failed(&namespace, &name, reason);
    }
}

/// Normal events for children created, updated and deleted.
async fn announce_changes(fp: &FootballPrediction, ctx: &Context, report: &ApplyReport) {
    let reference = fp.object_ref(&());
    for (reason, keys) in [
        (Reason::Created, &report.created),
        (Reason::Updated, &report.updated),
        (Reason::Deleted, &report.deleted),
    ] {
        for (kind, name) in keys {
            let note = format!("{} {} {name}", reason.as_str(), kind.as_str());
            let ar = kind.api_resource();
            let related = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some(ar.api_version),
                kind: Some(ar.kind),
                name: Some(name.clone()),
                namespace: reference.namespace.clone(),
                ..Default::default()
            };
            events::publish(
                &ctx.recorder,
                &ctx.metrics,
                &reference,
                Some(related),
                reason,
                note,
            )
            .await;
        }
    }
}

impl Observed {
    /// What is observed when the spec could not be applied at all.
    fn failed(outcome: Outcome, fp: &FootballPrediction) -> Self {
        Self {
            outcome,
            plan: None,
            active: None,
            preview: None,
            certificate: None,
            monitoring_wanted: false,
            paused: fp.spec.rollout.paused,
            rollout: None,
            desired_version: fp.spec.version.clone(),
            backup: None,
            notifications: None,
            endpoints: None,
        }
    }
}

/// Computes the status, writes it only when it changed (one server-side apply of the status
/// subresource), and publishes the events the change deserves.
async fn write_status(
    fp: &FootballPrediction,
    ctx: &Context,
    observed: &Observed,
    now: Timestamp,
) -> Result<(), Error> {
    let previous = fp.status.as_ref();
    let next = status::compute(previous, fp.meta().generation, observed, now);
    let changed = previous != Some(&next);
    ctx.metrics.status_patched(changed);
    if changed {
        let api: Api<FootballPrediction> =
            Api::namespaced(ctx.client.clone(), &fp.namespace().unwrap_or_default());
        let body = json!({
            "apiVersion": FootballPrediction::api_version(&()),
            "kind": FootballPrediction::kind(&()),
            "status": next,
        });
        api.patch_status(
            &fp.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map_err(Error::Status)?;
        if let Some(uid) = fp.metadata.uid.as_deref() {
            ctx.remember_status(uid, &next);
        }
    }
    record_backup_metrics(ctx, fp, previous, &next);
    let reference = fp.object_ref(&());
    for (reason, note) in status::transition_events(previous, &next) {
        events::publish(&ctx.recorder, &ctx.metrics, &reference, None, reason, note).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_items_without_type_meta_convert_to_typed_custom_resources() {
        let listed: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "prod", "namespace": "football"},
            "spec": {"secretName": "prod-tls", "dnsNames": ["a.example"], "issuerRef": {"name": "le", "kind": "Issuer", "group": "cert-manager.io"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "notAfter": "2026-04-01T00:00:00Z"}
        }))
        .unwrap();
        assert!(listed.types.is_none());
        let cert: Certificate = typed(Kind::Certificate, Some(&listed)).unwrap();
        assert_eq!(cert.status.unwrap().conditions[0].status, "True");
        let deployment: Option<Deployment> = typed(Kind::Deployment, Some(&listed));
        assert!(
            deployment.is_some(),
            "unknown fields are ignored, type meta is filled in"
        );
    }
}
