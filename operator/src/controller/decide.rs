//! The reconcile's decisions, as pure functions of what [`super::observe`] read: the rollout's
//! step and the children to apply ([`decide`]), what a rejected spec gets ([`rejection`]), and
//! after the apply what the status is computed from and when to look again ([`conclude`]).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

use super::Error;
use super::apply::ApplyReport;
use super::observe::{Snapshot, typed};
use super::rollout::{self, DeploymentView, Effect, State};
use super::status::{CertificateObservation, Observed, Outcome};
use crate::crd::{Color, Endpoints, FootballPrediction, RolloutCommand};
use crate::metrics::ReconcileResult;
use crate::resources::Kind;
use crate::resources::certificate::{CRD as CERTIFICATE_CRD, Certificate};
use crate::resources::colors::ColorPlan;
use crate::resources::service::service_url;
use crate::resources::{Child, Entropy, LiveInputs, build};
use crate::validate::Validated;

/// An invalid spec only changes when someone edits it, which triggers a reconcile anyway.
pub const INVALID_SPEC_REQUEUE: Duration = Duration::from_secs(300);
/// A missing Secret may be created at any time; look again, slowly.
pub const MISSING_DEPENDENCY_REQUEUE: Duration = Duration::from_secs(30);
/// While pods come up (watch events on the Deployments also trigger reconciles).
pub const PROGRESSING_REQUEUE: Duration = Duration::from_secs(30);
/// In a steady state: re-check drift and key rotation now and then.
pub const STEADY_REQUEUE: Duration = Duration::from_secs(300);
/// After a rollout transition: one transition per step, so take the next one right away.
pub const NEXT_TRANSITION_REQUEUE: Duration = Duration::from_millis(100);

/// A spec that cannot be applied: the status says why, and the reconcile looks again later.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub outcome: Outcome,
    pub requeue: Duration,
    pub result: ReconcileResult,
}

pub fn rejection(outcome: Outcome) -> Rejection {
    let (requeue, result) = match outcome {
        Outcome::InvalidSpec(_) => (INVALID_SPEC_REQUEUE, ReconcileResult::InvalidSpec),
        Outcome::MissingDependency(_) => (
            MISSING_DEPENDENCY_REQUEUE,
            ReconcileResult::MissingDependency,
        ),
        Outcome::Applied { .. } => (PROGRESSING_REQUEUE, ReconcileResult::Success),
    };
    Rejection {
        outcome,
        requeue,
        result,
    }
}

/// What to change: the rollout's next state and effects, and every child to apply.
#[derive(Debug)]
pub struct Decision {
    pub after: State,
    pub effects: Vec<Effect>,
    pub plan: ColorPlan,
    /// Command annotations acted on (they are removed once the status is written).
    pub commands: Vec<RolloutCommand>,
    pub children: Vec<Child>,
}

/// One rollout step from the snapshot, the colors it plans, and the children built for them.
/// `entropy` makes the keys and passwords of Secrets that do not exist yet.
pub fn decide(
    fp: &FootballPrediction,
    s: &Snapshot,
    entropy: Entropy<'_>,
) -> Result<Decision, Error> {
    let v = &s.v;
    let frame = &s.frame;
    let before = &frame.before;
    let view_of = |color: Color| {
        s.live
            .deployment(v, color)
            .map(DeploymentView::from_deployment)
    };
    let target_view = before.rollout.target_color.and_then(view_of);
    let commands = RolloutCommand::pending(fp.annotations());
    // The previous version, with today's configuration (a configuration alone is not kept in
    // history: the previous configuration is the one to restore by reverting the spec).
    let previous = crate::crd::rollback_target(before.active.as_ref(), &before.history).map(|h| {
        rollout::Release {
            image: v.image_for(&h.version),
            version: h.version.clone(),
            config: frame.desired.config.clone(),
        }
    });
    let (after, effects) = rollout::step(
        before,
        &rollout::Inputs {
            now: s.now,
            desired: frame.desired.clone(),
            settings: &frame.settings,
            target_view: target_view.as_ref(),
            migration: s.migration.clone(),
            backup: s.backup_job.clone(),
            round: s.round.clone(),
            commands: &commands,
            previous,
            stuck: &s.stuck,
        },
    );
    let plan = rollout::plan_colors(
        &after,
        &frame.settings,
        &frame.desired,
        v.spec.autoscaling.is_some(),
        v.spec.rollout.keep_failed_pods,
    );
    let secret_data = |name: &str| s.live.secrets.get(name).and_then(|s| s.data.as_ref());
    let config_maps: BTreeMap<String, BTreeMap<String, String>> = s
        .live
        .config_maps
        .iter()
        .map(|(name, cm)| (name.clone(), cm.data.clone().unwrap_or_default()))
        .collect();
    let template = |color| s.live.deployment(v, color).map(|d| &d.spec.template);
    let children = build(
        v,
        &plan,
        LiveInputs {
            jwt_keys: secret_data(v.signing_keys.secret()),
            admin_password: secret_data(&v.admin_password.name),
            blue_template: template(Color::Blue),
            green_template: template(Color::Green),
            config_maps: Some(&config_maps),
            secret_versions: &frame.secret_versions,
        },
        s.now,
        entropy,
    )
    .into_children()?;
    Ok(Decision {
        after,
        effects,
        plan,
        commands,
        children,
    })
}

/// The children as the apply left them, typed where the status reads them.
#[derive(Debug, Default)]
pub struct Applied {
    pub report: ApplyReport,
    pub deployments: BTreeMap<String, Deployment>,
    pub certificate: Option<Certificate>,
}

impl Applied {
    /// Types what the status reads among the children the apply left.
    pub fn from_report(v: &Validated, report: ApplyReport) -> Result<Self, Error> {
        let mut deployments = BTreeMap::new();
        for color in [Color::Blue, Color::Green] {
            let name = v.names.deployment(color);
            if let Some(object) = report.current.get(&(Kind::Deployment, name.clone())) {
                deployments.insert(name, typed(Kind::Deployment, object)?);
            }
        }
        let certificate = report
            .current
            .get(&(Kind::Certificate, v.names.certificate()))
            .map(|object| typed(Kind::Certificate, object))
            .transpose()?;
        Ok(Self {
            report,
            deployments,
            certificate,
        })
    }
}

/// What the status is computed from after the apply, and when to reconcile again.
#[derive(Debug)]
pub struct Conclusion {
    pub observed: Observed,
    pub requeue: Duration,
}

pub fn conclude(s: &Snapshot, decision: &Decision, applied: &Applied) -> Conclusion {
    let v = &s.v;
    let deployment = |color| {
        applied
            .deployments
            .get(&v.names.deployment(color))
            .map(DeploymentView::from_deployment)
    };
    let certificate = v.spec.tls.as_ref().map(|_| {
        if !s.served.contains(CERTIFICATE_CRD) {
            return CertificateObservation::CrdMissing;
        }
        applied
            .certificate
            .as_ref()
            .and_then(|c| c.status.clone())
            .map_or(
                CertificateObservation::Pending,
                CertificateObservation::Reported,
            )
    });
    let monitoring = &v.spec.monitoring;
    let observed = Observed {
        outcome: Outcome::Applied {
            errors: applied.report.errors.clone(),
            missing_crds: applied.report.missing_crds.clone(),
        },
        active: deployment(decision.plan.active),
        preview: deployment(decision.plan.preview()),
        plan: Some(decision.plan.clone()),
        certificate,
        monitoring_wanted: monitoring.prometheus_rule.enabled || monitoring.service_monitor.enabled,
        paused: v.spec.rollout.paused,
        rollout: Some(decision.after.clone()),
        desired_version: v.spec.version.clone(),
        backup: s.backups.clone(),
        notifications: s.notifications.clone(),
        endpoints: Some(Endpoints {
            active: service_url(v, &v.names.active_service()),
            preview: service_url(v, &v.names.preview_service()),
        }),
    };
    let ready = observed
        .active
        .as_ref()
        .is_some_and(DeploymentView::rolled_out);
    let next_step = rollout::machine::next_step_in(&decision.after, &s.frame.settings, s.now);
    Conclusion {
        requeue: requeue(!decision.effects.is_empty(), next_step, ready),
        observed,
    }
}

/// When to reconcile again after an apply: at once after a transition, when the machine's next
/// step is due, else slowly once the serving color is rolled out.
pub fn requeue(transitioned: bool, next_step: Option<Duration>, ready: bool) -> Duration {
    if transitioned {
        NEXT_TRANSITION_REQUEUE
    } else if let Some(wait) = next_step {
        wait
    } else if ready {
        STEADY_REQUEUE
    } else {
        PROGRESSING_REQUEUE
    }
}

#[cfg(test)]
mod tests;
