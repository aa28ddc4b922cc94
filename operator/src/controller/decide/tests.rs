//! Table tests of the reconcile's branches, on snapshots built without a cluster.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;
use crate::controller::observe::{LiveChildren, frame};
use crate::controller::rollout::JobState;
use crate::crd::{ColorStatus, FootballPredictionStatus, RolloutStage};
use crate::test_support::{fp_from, validated};

const VERSION: &str = "1.4.2";

fn now() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

/// What one reconcile of `spec` would see, with `status` on the object and `live` children.
fn snapshot(
    spec: &Value,
    status: Option<&FootballPredictionStatus>,
    live: LiveChildren,
) -> Snapshot {
    let v = validated(spec.clone());
    let frame = frame(&v, status, &live, &BTreeMap::new());
    Snapshot {
        v,
        now: now(),
        served: BTreeSet::from([certificate_crd(), prometheus_crd(), monitor_crd()]),
        live,
        frame,
        migration: JobState::Missing,
        backup_job: JobState::Missing,
        stuck: Vec::new(),
        round: None,
        backups: None,
        notifications: None,
    }
}

fn certificate_crd() -> &'static str {
    CERTIFICATE_CRD
}

fn prometheus_crd() -> &'static str {
    Kind::PrometheusRule.required_crd().unwrap()
}

fn monitor_crd() -> &'static str {
    Kind::ServiceMonitor.required_crd().unwrap()
}

fn decide_for(fp: &FootballPrediction, s: &Snapshot) -> Decision {
    decide(
        fp,
        s,
        Entropy {
            signing_key: &mut || [7; 32],
            password: &mut || "generated".into(),
        },
    )
    .unwrap()
}

fn spec() -> Value {
    json!({"version": VERSION, "replicas": 2})
}

/// The object with the status a settled rollout of `VERSION` leaves on blue.
fn settled() -> (FootballPrediction, FootballPredictionStatus) {
    let fp = fp_from(spec());
    let s = snapshot(&spec(), None, LiveChildren::default());
    let status = FootballPredictionStatus {
        active: Some(ColorStatus {
            color: Color::Blue,
            version: VERSION.into(),
            image: s.frame.desired.image.clone(),
            config: s.frame.desired.config.clone(),
            ready_replicas: 2,
        }),
        ..FootballPredictionStatus::default()
    };
    let mut fp = fp;
    fp.status = Some(status.clone());
    (fp, status)
}

/// The built Deployment of `name`, as the API server reports it once `available` pods are up.
fn as_rolled_out(decision: &Decision, name: &str, available: i32) -> Deployment {
    let child = decision
        .children
        .iter()
        .find(|c| c.kind == Kind::Deployment && c.name == name)
        .unwrap();
    let mut deployment: Deployment = serde_json::from_value(child.object.clone()).unwrap();
    deployment.metadata.generation = Some(1);
    deployment.status = Some(
        serde_json::from_value(json!({
            "observedGeneration": 1, "replicas": available, "readyReplicas": available,
            "updatedReplicas": available, "availableReplicas": available
        }))
        .unwrap(),
    );
    deployment
}

fn applied(deployments: Vec<Deployment>) -> Applied {
    Applied {
        report: ApplyReport::default(),
        deployments: deployments
            .into_iter()
            .map(|d| (d.metadata.name.clone().unwrap(), d))
            .collect(),
        certificate: None,
    }
}

fn names(decision: &Decision, kind: Kind) -> Vec<String> {
    decision
        .children
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| c.name.clone())
        .collect()
}

#[test]
fn rejected_specs_requeue_by_what_can_change_them() {
    let rows = [
        (
            Outcome::InvalidSpec(vec!["spec.version: Required value".into()]),
            INVALID_SPEC_REQUEUE,
            ReconcileResult::InvalidSpec,
        ),
        (
            Outcome::MissingDependency(vec!["Secret football/db: not found".into()]),
            MISSING_DEPENDENCY_REQUEUE,
            ReconcileResult::MissingDependency,
        ),
    ];
    for (outcome, requeue, result) in rows {
        let r = rejection(outcome.clone());
        assert_eq!((r.outcome, r.requeue, r.result), (outcome, requeue, result));
    }
}

#[test]
fn requeue_follows_transition_then_schedule_then_readiness() {
    let in_5s = Some(Duration::from_secs(5));
    let rows = [
        (true, in_5s, true, NEXT_TRANSITION_REQUEUE),
        (true, None, false, NEXT_TRANSITION_REQUEUE),
        (false, in_5s, true, Duration::from_secs(5)),
        (false, None, true, STEADY_REQUEUE),
        (false, None, false, PROGRESSING_REQUEUE),
    ];
    for (transitioned, next_step, ready, expected) in rows {
        assert_eq!(
            requeue(transitioned, next_step, ready),
            expected,
            "transitioned={transitioned} next_step={next_step:?} ready={ready}"
        );
    }
}

#[test]
fn a_first_deploy_starts_a_rollout_and_builds_every_child_at_once() {
    let fp = fp_from(spec());
    let s = snapshot(&spec(), None, LiveChildren::default());
    let d = decide_for(&fp, &s);
    assert!(
        matches!(d.effects.first(), Some(Effect::Started { from: None, to, rollback: false }) if to == VERSION),
        "{:?}",
        d.effects
    );
    assert_eq!(d.after.rollout.target_version, VERSION);
    assert_eq!(d.after.rollout.stage, RolloutStage::Migrating);
    assert_eq!(names(&d, Kind::Deployment), ["prod-blue", "prod-green"]);
    assert_eq!(names(&d, Kind::Job).len(), 1, "the migration Job");
    let c = conclude(&s, &d, &applied(Vec::new()));
    assert_eq!(c.requeue, NEXT_TRANSITION_REQUEUE);
    assert_eq!(c.observed.rollout.as_ref(), Some(&d.after));
}

#[test]
fn a_settled_release_changes_nothing_and_rests_once_rolled_out() {
    let (fp, status) = settled();
    let s = snapshot(&spec(), Some(&status), LiveChildren::default());
    let d = decide_for(&fp, &s);
    assert_eq!(d.effects, []);
    assert_eq!(d.after.rollout.stage, RolloutStage::Idle);
    assert_eq!(names(&d, Kind::Job), Vec::<String>::new(), "no migration");
    let rested = conclude(&s, &d, &applied(vec![as_rolled_out(&d, "prod-blue", 2)]));
    assert_eq!(rested.requeue, STEADY_REQUEUE);
    assert!(rested.observed.active.unwrap().rolled_out());
    let coming_up = conclude(&s, &d, &applied(vec![as_rolled_out(&d, "prod-blue", 1)]));
    assert_eq!(coming_up.requeue, PROGRESSING_REQUEUE);
}

#[test]
fn a_new_version_on_a_settled_release_starts_from_the_serving_color() {
    let (_, status) = settled();
    let next = json!({"version": "1.5.0", "replicas": 2});
    let mut fp = fp_from(next.clone());
    fp.status = Some(status.clone());
    let s = snapshot(&next, Some(&status), LiveChildren::default());
    let d = decide_for(&fp, &s);
    assert!(
        matches!(d.effects.first(), Some(Effect::Started { from: Some(from), to, .. }) if from == VERSION && to == "1.5.0"),
        "{:?}",
        d.effects
    );
    assert_eq!(d.after.rollout.target_color, Some(Color::Green));
    assert_eq!(d.plan.active, Color::Blue, "blue serves until the switch");
}

#[test]
fn live_secrets_are_kept_and_missing_ones_generated() {
    let fp = fp_from(spec());
    let generated = decide_for(&fp, &snapshot(&spec(), None, LiveChildren::default()));
    let secret_data = |d: &Decision, name: &str| {
        let child = d
            .children
            .iter()
            .find(|c| c.kind == Kind::Secret && c.name == name)
            .unwrap();
        child.object["data"].clone()
    };
    assert_ne!(secret_data(&generated, "prod-admin"), Value::Null);
    let live_admin = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("prod-admin".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_owned(),
            ByteString(b"kept-from-before".to_vec()),
        )])),
        ..Default::default()
    };
    let live = LiveChildren {
        secrets: BTreeMap::from([("prod-admin".to_owned(), live_admin)]),
        ..LiveChildren::default()
    };
    let kept = decide_for(&fp, &snapshot(&spec(), None, live));
    assert_eq!(
        secret_data(&kept, "prod-admin")["password"],
        json!("a2VwdC1mcm9tLWJlZm9yZQ==")
    );
}

#[test]
fn pending_commands_are_passed_to_the_machine_and_reported_for_removal() {
    let (mut fp, status) = settled();
    fp.metadata.annotations = Some(BTreeMap::from([(
        RolloutCommand::Promote.annotation().to_owned(),
        "true".to_owned(),
    )]));
    let d = decide_for(
        &fp,
        &snapshot(&spec(), Some(&status), LiveChildren::default()),
    );
    assert_eq!(d.commands, [RolloutCommand::Promote]);
}

#[test]
fn the_certificate_condition_reads_what_is_served_and_reported() {
    let tls = json!({"version": VERSION, "ingress": {"host": "api.example"},
        "tls": {"issuerRef": {"name": "le", "kind": "ClusterIssuer"}, "dnsNames": ["api.example"]}});
    let fp = fp_from(tls.clone());
    let mut s = snapshot(&tls, None, LiveChildren::default());
    let d = decide_for(&fp, &s);
    assert_eq!(names(&d, Kind::Certificate), ["prod"]);
    let pending = conclude(&s, &d, &applied(Vec::new()));
    assert_eq!(
        pending.observed.certificate,
        Some(CertificateObservation::Pending)
    );
    s.served.remove(CERTIFICATE_CRD);
    let missing = conclude(&s, &d, &applied(Vec::new()));
    assert_eq!(
        missing.observed.certificate,
        Some(CertificateObservation::CrdMissing)
    );
    let without_tls = snapshot(&spec(), None, LiveChildren::default());
    let plain = conclude(
        &without_tls,
        &decide_for(&fp_from(spec()), &without_tls),
        &applied(Vec::new()),
    );
    assert_eq!(plain.observed.certificate, None);
}

#[test]
fn apply_errors_and_skipped_kinds_reach_the_status_outcome() {
    let fp = fp_from(spec());
    let s = snapshot(&spec(), None, LiveChildren::default());
    let d = decide_for(&fp, &s);
    let mut a = applied(Vec::new());
    a.report.errors = vec!["Service prod: forbidden".into()];
    a.report.missing_crds = vec![prometheus_crd()];
    let c = conclude(&s, &d, &a);
    assert_eq!(
        c.observed.outcome,
        Outcome::Applied {
            errors: vec!["Service prod: forbidden".into()],
            missing_crds: vec![prometheus_crd()],
        }
    );
}
