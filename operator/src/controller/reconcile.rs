//! One reconcile: [`observe`] reads, [`decide`] chooses (pure), and this module acts: applies the
//! children, writes the status, and performs the rollout's effects.

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::core::error_boundary::{DeserializeGuard, InvalidObject};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::apply::{self, ApplyContext, ApplyReport};
use super::decide::{self, Applied};
use super::events;
use super::observe::{Observation, Snapshot, observe};
use super::rollout_io;
use super::status::{self, Observed, Outcome};
use super::{Context, Error};
use crate::crd::{FIELD_MANAGER, FootballPrediction, FootballPredictionStatus};
use crate::metrics::ReconcileResult;
use crate::reason::Reason;
use crate::resources::{Child, Entropy};
use crate::validate::key_ids::KEY_BYTES;

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

/// observe → decide → act. Only `decide` and `conclude` choose anything; the rest reads or writes.
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
    let snapshot = match observe(fp, ctx, now).await? {
        Observation::Rejected(outcome) => {
            let rejection = decide::rejection(outcome);
            write_status(fp, ctx, &Observed::failed(rejection.outcome, fp), now).await?;
            return Ok((Action::requeue(rejection.requeue), rejection.result));
        }
        Observation::Valid(snapshot) => snapshot,
    };
    let mut decision = decide::decide(
        fp,
        &snapshot,
        Entropy {
            signing_key: &mut random_key,
            password: &mut random_password,
        },
    )?;
    let applied =
        apply_children(fp, ctx, &snapshot, std::mem::take(&mut decision.children)).await?;
    let conclusion = decide::conclude(&snapshot, &decision, &applied);
    write_status(fp, ctx, &conclusion.observed, now).await?;
    rollout_io::perform(fp, ctx, &decision.effects).await;
    rollout_io::clear_commands(ctx, fp, &decision.commands).await?;
    record_counts(ctx, &snapshot.v.owner.uid, &applied.report);
    if !applied.report.errors.is_empty() {
        return Err(Error::Apply(applied.report.errors.len()));
    }
    Ok((
        Action::requeue(conclusion.requeue),
        ReconcileResult::Success,
    ))
}

/// Applies the decided children, announces what changed, and types what the status reads.
async fn apply_children(
    fp: &FootballPrediction,
    ctx: &Context,
    snapshot: &Snapshot,
    children: Vec<Child>,
) -> Result<Applied, Error> {
    let apply_ctx = ApplyContext {
        client: &ctx.client,
        memo: &ctx.memo,
        metrics: &ctx.metrics,
        namespace: &snapshot.v.namespace,
        owner_uid: &snapshot.v.owner.uid,
        served: &snapshot.served,
    };
    let report = apply::sync(&apply_ctx, children, &snapshot.live.listed).await;
    announce_changes(fp, ctx, &report).await;
    Applied::from_report(&snapshot.v, report)
}

/// The per-instance gauges, pruned to the instances that still exist.
fn record_counts(ctx: &Context, uid: &str, report: &ApplyReport) {
    let alive: Vec<String> = ctx
        .store()
        .iter()
        .filter_map(|o| o.meta().uid.clone())
        .collect();
    ctx.metrics.set_managed(uid, report.counts.clone(), &alive);
    let alive_instances: Vec<(String, String)> = ctx
        .store()
        .iter()
        .map(|o| (o.namespace().unwrap_or_default(), o.name_any()))
        .collect();
    ctx.metrics.instances.retain(&alive_instances);
}

fn record_instance_metrics(
    ctx: &Context,
    fp: &FootballPrediction,
    previous: Option<&FootballPredictionStatus>,
    next: &FootballPredictionStatus,
) {
    let namespace = fp.namespace().unwrap_or_default();
    let name = fp.name_any();
    let backup = next.backup.as_ref();
    ctx.metrics.instances.set_backup(&namespace, &name, backup);
    ctx.metrics.instances.set_rollout(
        &namespace,
        &name,
        next.rollout.as_ref(),
        next.last_rollback.as_ref(),
    );
    let failed_before = previous
        .and_then(|p| p.backup.as_ref())
        .and_then(|b| b.last_failed_at.as_ref());
    if let Some(backup) = backup
        && backup.last_failed_at.is_some()
        && backup.last_failed_at.as_ref() != failed_before
    {
        let reason = backup.last_failure_reason.as_deref().unwrap_or_default();
        ctx.metrics
            .instances
            .backup_failed(&namespace, &name, reason);
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
    record_instance_metrics(ctx, fp, previous, &next);
    let reference = fp.object_ref(&());
    for (reason, note) in status::transition_events(previous, &next) {
        events::publish(&ctx.recorder, &ctx.metrics, &reference, None, reason, note).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
