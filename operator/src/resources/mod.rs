//! Pure builders, one file per kind: `(&Validated, inputs) -> k8s object`. They need no client, no
//! async and no clock or randomness of their own (time and entropy are passed in).

pub mod admin_secret;
pub mod backup;
pub mod certificate;
pub mod colors;
pub mod common;
pub mod config_map;
pub mod dashboard;
pub mod deployment;
pub mod hpa;
pub mod ingress;
pub mod jwt_secret;
pub mod kind;
pub mod migration_job;
mod names;
pub mod network_policy;
pub mod pdb;
pub mod prometheus_rule;
pub mod service;
pub mod service_account;
pub mod service_monitor;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

pub use colors::{ColorPlan, ColorTarget};
pub use kind::Kind;
pub use names::Names;

use crate::controller::validate::Validated;
use crate::crd::Color;
use certificate::Certificate;
use prometheus_rule::PrometheusRule;
use service_monitor::ServiceMonitor;

/// What the builders read from the cluster: the generated Secrets' current data, so keys and
/// passwords are kept rather than regenerated.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveInputs<'a> {
    pub jwt_keys: Option<&'a BTreeMap<String, ByteString>>,
    pub admin_password: Option<&'a BTreeMap<String, ByteString>>,
}

/// Sources of randomness for generated secrets (injected so builders stay pure and testable).
pub struct Entropy<'a> {
    pub signing_key: &'a mut dyn FnMut() -> [u8; jwt_secret::KEY_BYTES],
    pub password: &'a mut dyn FnMut() -> String,
}

/// Every child of one FootballPrediction. Each kind is a named field, so adding a kind without
/// handling it in [`ChildSet::into_children`] does not compile.
#[derive(Clone, Debug)]
pub struct ChildSet {
    pub service_account: ServiceAccount,
    pub config_map: ConfigMap,
    pub jwt_secret: Option<Secret>,
    pub admin_secret: Option<Secret>,
    pub blue: Deployment,
    pub green: Deployment,
    pub active_service: Service,
    pub preview_service: Service,
    pub ingress: Option<Ingress>,
    pub certificate: Option<Certificate>,
    pub pdb: PodDisruptionBudget,
    pub hpa: Option<HorizontalPodAutoscaler>,
    pub network_policy: Option<NetworkPolicy>,
    pub migration_job: Option<Job>,
    pub pre_migration_backup: Option<Job>,
    pub backup_pvc: Option<PersistentVolumeClaim>,
    pub backup_cronjobs: Vec<CronJob>,
    pub prometheus_rule: Option<PrometheusRule>,
    pub service_monitor: Option<ServiceMonitor>,
    pub dashboard: Option<ConfigMap>,
}

/// One desired child in the generic form apply works with.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub kind: Kind,
    pub name: String,
    pub object: Value,
}

/// Serialising a built object failed (only possible for a malformed builder output).
#[derive(Debug, thiserror::Error)]
#[error("cannot serialise the {kind} {name}: {source}")]
pub struct ChildError {
    kind: &'static str,
    name: String,
    source: serde_json::Error,
}

fn child<T: Serialize + kube::Resource>(kind: Kind, object: &T) -> Result<Child, ChildError> {
    let name = object.meta().name.clone().unwrap_or_default();
    let object = serde_json::to_value(object).map_err(|source| ChildError {
        kind: kind.as_str(),
        name: name.clone(),
        source,
    })?;
    Ok(Child { kind, name, object })
}

impl ChildSet {
    /// The children in apply order ([`Kind::ALL`]).
    pub fn into_children(self) -> Result<Vec<Child>, ChildError> {
        let Self {
            service_account,
            config_map,
            jwt_secret,
            admin_secret,
            blue,
            green,
            active_service,
            preview_service,
            ingress,
            certificate,
            pdb,
            hpa,
            network_policy,
            migration_job,
            pre_migration_backup,
            backup_pvc,
            backup_cronjobs,
            prometheus_rule,
            service_monitor,
            dashboard,
        } = self;
        let mut out = vec![
            child(Kind::ServiceAccount, &service_account)?,
            child(Kind::ConfigMap, &config_map)?,
        ];
        for cm in dashboard.iter() {
            out.push(child(Kind::ConfigMap, cm)?);
        }
        for secret in jwt_secret.iter().chain(admin_secret.iter()) {
            out.push(child(Kind::Secret, secret)?);
        }
        for pvc in backup_pvc.iter() {
            out.push(child(Kind::PersistentVolumeClaim, pvc)?);
        }
        for job in migration_job.iter().chain(pre_migration_backup.iter()) {
            out.push(child(Kind::Job, job)?);
        }
        out.push(child(Kind::Deployment, &blue)?);
        out.push(child(Kind::Deployment, &green)?);
        out.push(child(Kind::Service, &active_service)?);
        out.push(child(Kind::Service, &preview_service)?);
        for i in ingress.iter() {
            out.push(child(Kind::Ingress, i)?);
        }
        for c in certificate.iter() {
            out.push(child(Kind::Certificate, c)?);
        }
        out.push(child(Kind::PodDisruptionBudget, &pdb)?);
        for h in hpa.iter() {
            out.push(child(Kind::HorizontalPodAutoscaler, h)?);
        }
        for n in network_policy.iter() {
            out.push(child(Kind::NetworkPolicy, n)?);
        }
        for c in &backup_cronjobs {
            out.push(child(Kind::CronJob, c)?);
        }
        for r in prometheus_rule.iter() {
            out.push(child(Kind::PrometheusRule, r)?);
        }
        for m in service_monitor.iter() {
            out.push(child(Kind::ServiceMonitor, m)?);
        }
        out.sort_by_key(|c| Kind::ALL.iter().position(|k| *k == c.kind));
        Ok(out)
    }
}

/// Builds every child from the validated spec and the color plan.
pub fn build(
    v: &Validated,
    plan: &ColorPlan,
    live: LiveInputs<'_>,
    now: Timestamp,
    entropy: Entropy<'_>,
) -> ChildSet {
    let config_hash = config_map::config_hash(v);
    let active = plan.target(plan.active);
    ChildSet {
        service_account: service_account::service_account(v),
        config_map: config_map::config_map(v),
        jwt_secret: jwt_secret::jwt_secret(v, live.jwt_keys, now, entropy.signing_key),
        admin_secret: admin_secret::admin_secret(v, live.admin_password, entropy.password),
        blue: deployment::deployment(v, Color::Blue, plan.target(Color::Blue), &config_hash),
        green: deployment::deployment(v, Color::Green, plan.target(Color::Green), &config_hash),
        active_service: service::active_service(v, plan),
        preview_service: service::preview_service(v, plan),
        ingress: ingress::ingress(v),
        certificate: certificate::certificate(v),
        pdb: pdb::pdb(v),
        hpa: hpa::hpa(v, plan),
        network_policy: network_policy::network_policy(v),
        migration_job: plan
            .migration
            .as_ref()
            .and_then(|release| migration_job::migration_job(v, release)),
        pre_migration_backup: plan
            .pre_migration_backup
            .as_deref()
            .and_then(|key| backup::pre_migration_backup_job(v, active, key)),
        backup_pvc: backup::backup_pvc(v),
        backup_cronjobs: backup::backup_cronjobs(v, active),
        prometheus_rule: prometheus_rule::prometheus_rule(v),
        service_monitor: service_monitor::service_monitor(v),
        dashboard: dashboard::dashboard(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::validate::tests::validated;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn plan() -> ColorPlan {
        ColorPlan {
            active: Color::Blue,
            serving: true,
            pre_migration_backup: None,
            migration: Some(ColorTarget {
                version: "1.4.2".into(),
                image: "footballprediction/fp-api-server:1.4.2".into(),
                replicas: None,
            }),
            blue: ColorTarget {
                version: "1.4.2".into(),
                image: "footballprediction/fp-api-server:1.4.2".into(),
                replicas: Some(2),
            },
            green: ColorTarget {
                version: "1.4.2".into(),
                image: "footballprediction/fp-api-server:1.4.2".into(),
                replicas: Some(0),
            },
        }
    }

    fn children(spec: Value) -> Vec<(Kind, String)> {
        let v = validated(spec);
        let set = build(
            &v,
            &plan(),
            LiveInputs::default(),
            "2026-01-01T00:00:00Z".parse().unwrap(),
            Entropy {
                signing_key: &mut || [7; 32],
                password: &mut || "pw".into(),
            },
        );
        set.into_children()
            .unwrap()
            .into_iter()
            .map(|c| (c.kind, c.name))
            .collect()
    }

    #[test]
    fn minimal_spec_builds_the_core_platform() {
        let names: Vec<(Kind, String)> = children(json!({"version": "1.4.2"}));
        let expected: Vec<(Kind, &str)> = vec![
            (Kind::ServiceAccount, "prod-api"),
            (Kind::ConfigMap, "prod-config"),
            (Kind::ConfigMap, "prod-dashboard"),
            (Kind::Secret, "prod-jwt"),
            (Kind::Secret, "prod-admin"),
            (
                Kind::Job,
                names
                    .iter()
                    .find(|(k, _)| *k == Kind::Job)
                    .unwrap()
                    .1
                    .as_str(),
            ),
            (Kind::Deployment, "prod-blue"),
            (Kind::Deployment, "prod-green"),
            (Kind::Service, "prod"),
            (Kind::Service, "prod-preview"),
            (Kind::PodDisruptionBudget, "prod-api"),
            (Kind::NetworkPolicy, "prod-api"),
            (Kind::PrometheusRule, "prod"),
            (Kind::ServiceMonitor, "prod"),
        ];
        let expected: Vec<(Kind, String)> = expected
            .into_iter()
            .map(|(k, n)| (k, n.to_owned()))
            .collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn full_spec_builds_every_kind() {
        let names = children(json!({"version": "1.4.2",
            "autoscaling": {"maxReplicas": 5},
            "auth": {"signingKeysSecretRef": {"name": "keys"}, "adminPasswordSecretRef": {"name": "adm", "key": "pw"}},
            "ingress": {"host": "api.example"},
            "tls": {"issuerRef": {"name": "le"}, "dnsNames": ["api.example"]},
            "backup": {"frequentSchedule": "0 */6 * * *"}}));
        let kinds: std::collections::BTreeSet<Kind> = names.iter().map(|(k, _)| *k).collect();
        let missing: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| !kinds.contains(k))
            .collect();
        assert_eq!(
            missing,
            [Kind::Secret],
            "referenced secrets are not generated; every other kind is built"
        );
        let order: Vec<usize> = names
            .iter()
            .map(|(k, _)| Kind::ALL.iter().position(|x| x == k).unwrap())
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] <= w[1]),
            "children come in apply order"
        );
    }

    #[test]
    fn children_carry_apiversion_kind_and_the_owner() {
        let v = validated(json!({"version": "1.4.2"}));
        let set = build(
            &v,
            &plan(),
            LiveInputs::default(),
            "2026-01-01T00:00:00Z".parse().unwrap(),
            Entropy {
                signing_key: &mut || [7; 32],
                password: &mut || "pw".into(),
            },
        );
        for c in set.into_children().unwrap() {
            assert_eq!(c.object["kind"], c.kind.as_str());
            assert_eq!(c.object["apiVersion"], c.kind.api_resource().api_version);
            assert_eq!(c.object["metadata"]["namespace"], "football");
            assert_eq!(
                c.object["metadata"]["labels"]["app.kubernetes.io/instance"],
                "prod"
            );
            let owned = c.object["metadata"].get("ownerReferences").is_some();
            assert_eq!(
                owned,
                c.kind != Kind::PersistentVolumeClaim,
                "{} {}",
                c.kind.as_str(),
                c.name
            );
        }
    }
}
