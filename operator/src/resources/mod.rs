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
    ConfigMap, PersistentVolumeClaim, PodTemplateSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

pub use colors::{ColorPlan, ColorTarget};
pub use kind::Kind;

use crate::crd::Color;
use crate::validate::Validated;
use crate::validate::key_ids::KEY_BYTES;
use certificate::Certificate;
use prometheus_rule::PrometheusRule;
use service_monitor::ServiceMonitor;

/// What the builders read from the cluster: the generated Secrets' current data, so keys and
/// passwords are kept rather than regenerated; the colors' pod templates and config ConfigMaps, so
/// a color running another configuration than the spec's keeps it; the referenced Secrets' versions.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveInputs<'a> {
    pub jwt_keys: Option<&'a BTreeMap<String, ByteString>>,
    pub admin_password: Option<&'a BTreeMap<String, ByteString>>,
    pub blue_template: Option<&'a PodTemplateSpec>,
    pub green_template: Option<&'a PodTemplateSpec>,
    /// Data of the live ConfigMaps of this instance, by name.
    pub config_maps: Option<&'a BTreeMap<String, BTreeMap<String, String>>>,
    /// `(name, resourceVersion)` of the Secrets the API pods read (see
    /// [`deployment::config_revision`]).
    pub secret_versions: &'a [(String, String)],
}

impl LiveInputs<'_> {
    fn template(&self, color: Color) -> Option<&PodTemplateSpec> {
        match color {
            Color::Blue => self.blue_template,
            Color::Green => self.green_template,
        }
    }
}

/// Sources of randomness for generated secrets (injected so builders stay pure and testable).
pub struct Entropy<'a> {
    pub signing_key: &'a mut dyn FnMut() -> [u8; KEY_BYTES],
    pub password: &'a mut dyn FnMut() -> String,
}

/// Every child of one FootballPrediction. Each kind is a named field, so adding a kind without
/// handling it in [`ChildSet::into_children`] does not compile.
#[derive(Clone, Debug)]
pub struct ChildSet {
    pub service_account: ServiceAccount,
    /// The spec's config, then those colors still mount.
    pub config_maps: Vec<ConfigMap>,
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
    pub jobs_network_policy: Option<NetworkPolicy>,
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
            config_maps,
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
            jobs_network_policy,
            migration_job,
            pre_migration_backup,
            backup_pvc,
            backup_cronjobs,
            prometheus_rule,
            service_monitor,
            dashboard,
        } = self;
        let mut out = vec![child(Kind::ServiceAccount, &service_account)?];
        for cm in config_maps.iter().chain(dashboard.iter()) {
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
        for n in network_policy.iter().chain(jobs_network_policy.iter()) {
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
    let revision = deployment::config_revision(v, live.secret_versions);
    // A color planned with another configuration than the spec's keeps its live pod template.
    let frozen = |color: Color| {
        (plan.target(color).config != revision)
            .then(|| live.template(color))
            .flatten()
    };
    let color_deployment = |color: Color| {
        deployment::deployment(v, color, plan.target(color), &revision, frozen(color))
    };
    let current = config_map::config_map(v);
    let mut config_maps = vec![current.clone()];
    for template in [frozen(Color::Blue), frozen(Color::Green)]
        .into_iter()
        .flatten()
    {
        let Some(name) = mounted_config_map(template) else {
            continue;
        };
        let live_data = live.config_maps.and_then(|all| all.get(&name));
        if let Some(data) = live_data
            && !config_maps
                .iter()
                .any(|cm| cm.metadata.name.as_ref() == Some(&name))
        {
            config_maps.push(config_map::kept_config_map(v, &name, data.clone()));
        }
    }
    let active = plan.target(plan.active);
    ChildSet {
        service_account: service_account::service_account(v),
        config_maps,
        jwt_secret: jwt_secret::jwt_secret(v, live.jwt_keys, now, entropy.signing_key),
        admin_secret: admin_secret::admin_secret(v, live.admin_password, entropy.password),
        blue: color_deployment(Color::Blue),
        green: color_deployment(Color::Green),
        active_service: service::active_service(v, plan),
        preview_service: service::preview_service(v, plan),
        ingress: ingress::ingress(v),
        certificate: certificate::certificate(v),
        pdb: pdb::pdb(v),
        hpa: hpa::hpa(v, plan),
        network_policy: network_policy::network_policy(v),
        jobs_network_policy: network_policy::jobs_network_policy(v),
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

/// The ConfigMap a pod template mounts as the API server's config file.
fn mounted_config_map(template: &PodTemplateSpec) -> Option<String> {
    template
        .spec
        .as_ref()?
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == common::CONFIG_VOLUME)?
        .config_map
        .as_ref()
        .map(|c| c.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::annotations;
    use crate::test_support::validated;
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
                config: String::new(),
                replicas: None,
            }),
            blue: ColorTarget {
                version: "1.4.2".into(),
                image: "footballprediction/fp-api-server:1.4.2".into(),
                config: String::new(),
                replicas: Some(2),
            },
            green: ColorTarget {
                version: "1.4.2".into(),
                image: "footballprediction/fp-api-server:1.4.2".into(),
                config: String::new(),
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
        let config = format!(
            "prod-config-{}",
            config_map::config_hash(&validated(json!({"version": "1.4.2"})))
        );
        let expected: Vec<(Kind, &str)> = vec![
            (Kind::ServiceAccount, "prod-api"),
            (Kind::ConfigMap, &config),
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
            (Kind::NetworkPolicy, "prod-jobs"),
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

    fn build_with(v: &Validated, plan: &ColorPlan, live: LiveInputs<'_>) -> ChildSet {
        build(
            v,
            plan,
            live,
            "2026-01-01T00:00:00Z".parse().unwrap(),
            Entropy {
                signing_key: &mut || [7; 32],
                password: &mut || "pw".into(),
            },
        )
    }

    #[test]
    fn the_configuration_revision_follows_what_pods_run_but_not_the_release_version() {
        let revision = |spec: Value, secrets: &[(String, String)]| {
            deployment::config_revision(&validated(spec), secrets)
        };
        let base = revision(json!({"version": "1"}), &[]);
        assert_eq!(
            base,
            revision(json!({"version": "2"}), &[]),
            "version is its own part"
        );
        assert_eq!(
            base,
            revision(json!({"version": "1", "replicas": 7}), &[]),
            "replicas are not configuration"
        );
        assert_ne!(
            base,
            revision(
                json!({"version": "1", "auth": {"accessTokenTtl": "5m"}}),
                &[]
            ),
            "the config file"
        );
        assert_ne!(
            base,
            revision(
                json!({"version": "1", "resources": {"limits": {"memory": "1Gi"}}}),
                &[]
            ),
            "the pod template"
        );
        let db = |rv: &str| vec![("prod-database".to_owned(), rv.to_owned())];
        assert_ne!(
            revision(json!({"version": "1"}), &db("41")),
            revision(json!({"version": "1"}), &db("42")),
            "an edited Secret"
        );
    }

    #[test]
    fn a_color_on_another_configuration_keeps_its_live_template_and_config_map() {
        let old_spec = validated(json!({"version": "1.4.2"}));
        let new_spec = validated(json!({"version": "1.4.2", "auth": {"accessTokenTtl": "5m"}}));
        let old_revision = deployment::config_revision(&old_spec, &[]);
        let new_revision = deployment::config_revision(&new_spec, &[]);
        // What blue runs today, built from the old spec.
        let old_blue = deployment::deployment(
            &old_spec,
            Color::Blue,
            &ColorTarget {
                config: old_revision.clone(),
                ..plan().blue
            },
            &old_revision,
            None,
        );
        let old_config = config_map::config_map(&old_spec);
        let old_name = old_config.metadata.name.clone().unwrap();
        let live_config_maps =
            BTreeMap::from([(old_name.clone(), old_config.data.clone().unwrap())]);
        // The new configuration rolls out on green while blue serves the old one.
        let mut plan = plan();
        plan.blue.config = old_revision.clone();
        plan.green.config = new_revision.clone();
        plan.green.replicas = Some(1);
        let live = LiveInputs {
            blue_template: Some(&old_blue.spec.template),
            config_maps: Some(&live_config_maps),
            ..LiveInputs::default()
        };
        let set = build_with(&new_spec, &plan, live);
        assert_eq!(
            set.blue.spec.template, old_blue.spec.template,
            "blue untouched"
        );
        assert_eq!(set.blue.spec.replicas, Some(2), "only scaled");
        let green_annotations = set
            .green
            .spec
            .template
            .metadata
            .clone()
            .unwrap()
            .annotations
            .unwrap();
        assert_eq!(green_annotations[annotations::RELEASE_CONFIG], new_revision);
        let names: Vec<String> = set
            .config_maps
            .iter()
            .map(|cm| cm.metadata.name.clone().unwrap())
            .collect();
        let new_name = config_map::config_map(&new_spec).metadata.name.unwrap();
        assert_eq!(
            names,
            [new_name.clone(), old_name.clone()],
            "blue's file is kept"
        );
        assert_eq!(set.config_maps[1].data, old_config.data);

        // Once no color runs the old configuration, its ConfigMap is no longer built (and so pruned).
        plan.blue.config = new_revision.clone();
        let set = build_with(&new_spec, &plan, live);
        let names: Vec<String> = set
            .config_maps
            .iter()
            .map(|cm| cm.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, [new_name]);
        assert_ne!(
            set.blue.spec.template, old_blue.spec.template,
            "re-rendered"
        );
    }
}
