//! A reconcile's reads: every request the decision depends on, made before anything is decided
//! or written, and gathered into one [`Observation`]. Which Jobs and pods are worth reading
//! depends on the rollout's state, so the pure [`Frame`] is derived first and kept for `decide`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::backup_health;
use super::rollout::{
    self, DeploymentView, JobState, Release, RolloutSettings, Round, State, StuckContainer,
};
use super::rollout_io;
use super::status::{BackupObservation, Outcome};
use super::{Context, Error, apply};
use crate::crd::{BackupSpec, Color, FootballPrediction, FootballPredictionStatus, labels};
use crate::notify::DeliveryState;
use crate::resources::Kind;
use crate::resources::common::Component;
use crate::validate::{Validated, check_secrets, secret_requirements, validate};

/// What one reconcile read.
#[derive(Debug)]
pub enum Observation {
    /// The spec breaks a rule, or names Secrets that are not there: nothing else was read.
    Rejected(Outcome),
    Valid(Box<Snapshot>),
}

/// The cluster as one reconcile of a valid spec saw it.
#[derive(Debug)]
pub struct Snapshot {
    pub v: Validated,
    pub now: Timestamp,
    /// Optional CRDs served now; children of other optional kinds are neither listed nor built.
    pub served: BTreeSet<&'static str>,
    pub live: LiveChildren,
    pub frame: Frame,
    /// The rollout's migration Job, when it has one.
    pub migration: JobState,
    /// The backup Job the rollout runs before its migration, while it runs one.
    pub backup_job: JobState,
    /// Containers in trouble among the pods the rollout's stage starts.
    pub stuck: Vec<StuckContainer>,
    /// The analysis round the machine asked for, run against the pods.
    pub round: Option<Round>,
    /// `None` when `spec.backup` is not set.
    pub backups: Option<BackupObservation>,
    /// Webhook deliveries so far; `None` when `spec.notifications` is not set.
    pub notifications: Option<DeliveryState>,
}

/// The live children: as listed (the apply compares against these) and, for the kinds the
/// decision reads, typed.
#[derive(Debug, Default)]
pub struct LiveChildren {
    pub listed: BTreeMap<Kind, Vec<DynamicObject>>,
    pub deployments: BTreeMap<String, Deployment>,
    pub jobs: BTreeMap<String, Job>,
    pub secrets: BTreeMap<String, Secret>,
    pub config_maps: BTreeMap<String, ConfigMap>,
}

impl LiveChildren {
    /// Types the kinds the decision reads. An object that does not convert is an error, not a
    /// missing child: deciding as if it were missing would rebuild or re-run it.
    pub fn from_listed(listed: BTreeMap<Kind, Vec<DynamicObject>>) -> Result<Self, Error> {
        Ok(Self {
            deployments: typed_by_name(Kind::Deployment, listed.get(&Kind::Deployment))?,
            jobs: typed_by_name(Kind::Job, listed.get(&Kind::Job))?,
            secrets: typed_by_name(Kind::Secret, listed.get(&Kind::Secret))?,
            config_maps: typed_by_name(Kind::ConfigMap, listed.get(&Kind::ConfigMap))?,
            listed,
        })
    }

    pub fn deployment(&self, v: &Validated, color: Color) -> Option<&Deployment> {
        self.deployments.get(&v.names.deployment(color))
    }
}

/// A listed object as its typed form. Listed items carry no apiVersion and kind, which typed
/// resources require, so they are filled in from `kind`.
pub fn typed<T: DeserializeOwned>(kind: Kind, object: &DynamicObject) -> Result<T, Error> {
    let mut object = object.clone();
    if object.types.is_none() {
        let ar = kind.api_resource();
        object.types = Some(kube::core::TypeMeta {
            api_version: ar.api_version,
            kind: ar.kind,
        });
    }
    let name = object.name_any();
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(|e| Error::Decode(format!("{} {name}: {e}", kind.as_str())))
}

fn typed_by_name<T: DeserializeOwned>(
    kind: Kind,
    objects: Option<&Vec<DynamicObject>>,
) -> Result<BTreeMap<String, T>, Error> {
    objects
        .into_iter()
        .flatten()
        .map(|o| Ok((o.name_any(), typed(kind, o)?)))
        .collect()
}

/// The rollout's starting point: the state the status holds, the settings and the release the
/// spec asks for. The reads (which Jobs, which round) and the decision both start from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub before: State,
    pub settings: RolloutSettings,
    pub desired: Release,
    /// `(name, resourceVersion)` of the user's Secrets the API pods read.
    pub secret_versions: Vec<(String, String)>,
}

pub fn frame(
    v: &Validated,
    status: Option<&FootballPredictionStatus>,
    live: &LiveChildren,
    found: &BTreeMap<String, Option<Secret>>,
) -> Frame {
    let secret_versions = rollout_io::pod_secret_versions(v, found);
    let desired = rollout_io::desired(v, &secret_versions);
    let before = rollout_io::state(status);
    let serving_replicas = before
        .active
        .as_ref()
        .and_then(|a| live.deployment(v, a.color))
        .map(|d| DeploymentView::from_deployment(d).desired);
    Frame {
        settings: rollout_io::settings(v, serving_replicas),
        before,
        desired,
        secret_versions,
    }
}

/// Reads everything one reconcile of `fp` decides on. `fp` carries the status to step from.
pub async fn observe(
    fp: &FootballPrediction,
    ctx: &Context,
    now: Timestamp,
) -> Result<Observation, Error> {
    let v = match validate(fp, &ctx.settings) {
        Ok(v) => v,
        Err(errors) => {
            let messages = errors.iter().map(ToString::to_string).collect();
            return Ok(Observation::Rejected(Outcome::InvalidSpec(messages)));
        }
    };
    let requirements = secret_requirements(&v);
    let found = fetch_secrets(ctx, &v.namespace, &requirements).await?;
    let missing = check_secrets(&v.namespace, &requirements, &found);
    if !missing.is_empty() {
        let messages = missing.iter().map(ToString::to_string).collect();
        return Ok(Observation::Rejected(Outcome::MissingDependency(messages)));
    }
    let served = ctx.capabilities.served(&ctx.client).await;
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| k.required_crd().is_none_or(|crd| served.contains(crd)))
        .collect();
    let listed = apply::list_children(&ctx.client, &v.namespace, &v.name, &kinds)
        .await
        .map_err(Error::ListChildren)?;
    let live = LiveChildren::from_listed(listed)?;
    let frame = frame(&v, fp.status.as_ref(), &live, &found);
    let before = &frame.before;
    let migration = rollout_io::migration_state(ctx, &v, before, &live.jobs).await;
    let backup_job = rollout_io::pre_migration_backup_state(ctx, &v, before, &live.jobs).await;
    let stuck = rollout_io::stuck_containers(ctx, &v, before, &live.jobs).await;
    let round = match rollout::machine::round_due(before, &frame.settings, now) {
        Some(color) => Some(rollout_io::run_round(ctx, &v, color).await),
        None => None,
    };
    let backups = match &v.spec.backup {
        Some(spec) => Some(observe_backups(ctx, &v, &live.jobs, spec, fp).await),
        None => None,
    };
    let notifications = v.spec.notifications.as_ref().map(|_| {
        ctx.notifier
            .delivery_state(&v.namespace, &v.name)
            .unwrap_or_default()
    });
    Ok(Observation::Valid(Box::new(Snapshot {
        v,
        now,
        served,
        live,
        frame,
        migration,
        backup_job,
        stuck,
        round,
        backups,
        notifications,
    })))
}

async fn fetch_secrets(
    ctx: &Context,
    namespace: &str,
    requirements: &[crate::validate::SecretRequirement],
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

/// The finished backup and drill Jobs (listed with the other children: the CronJobs' templates
/// carry our labels) with their pods' termination messages, which hold the program's summary.
async fn observe_backups(
    ctx: &Context,
    v: &Validated,
    jobs: &BTreeMap<String, Job>,
    spec: &BackupSpec,
    fp: &FootballPrediction,
) -> BackupObservation {
    let jobs: Vec<&Job> = jobs
        .values()
        .filter(|j| {
            j.labels().get(labels::COMPONENT).map(String::as_str)
                == Some(Component::Backup.as_str())
        })
        .collect();
    let pods = if jobs.is_empty() {
        Vec::new()
    } else {
        let selector = format!(
            "{}={},{}={}",
            labels::INSTANCE,
            v.name,
            labels::COMPONENT,
            Component::Backup.as_str()
        );
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &v.namespace);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::certificate::Certificate;
    use serde_json::json;

    #[test]
    fn listed_items_without_type_meta_convert_to_typed_custom_resources() {
        let listed: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "prod", "namespace": "football"},
            "spec": {"secretName": "prod-tls", "dnsNames": ["a.example"], "issuerRef": {"name": "le", "kind": "Issuer", "group": "cert-manager.io"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "notAfter": "2026-04-01T00:00:00Z"}
        }))
        .unwrap();
        assert!(listed.types.is_none());
        let cert: Certificate = typed(Kind::Certificate, &listed).unwrap();
        assert_eq!(cert.status.unwrap().conditions[0].status, "True");
        let deployment: Result<Deployment, _> = typed(Kind::Deployment, &listed);
        assert!(
            deployment.is_ok(),
            "unknown fields are ignored, type meta is filled in"
        );
    }

    #[test]
    fn a_child_that_does_not_convert_is_an_error_naming_it() {
        let listed: DynamicObject = serde_json::from_value(json!({
            "metadata": {"name": "prod-blue", "namespace": "football"},
            "spec": {"replicas": "three"}
        }))
        .unwrap();
        let error = LiveChildren::from_listed(BTreeMap::from([(Kind::Deployment, vec![listed])]))
            .unwrap_err();
        assert_eq!(error.category(), "decode");
        assert!(
            error.to_string().contains("Deployment prod-blue"),
            "{error}"
        );
    }
}
