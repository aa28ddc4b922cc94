//! Deployments `<name>-blue` and `<name>-green` of the API server, from the color plan.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, KeyToPath, PodSpec, PodTemplateSpec, Probe,
    SecretVolumeSource, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::colors::ColorTarget;
use super::common::{
    API_PORT, API_PORT_NAME, Component, api_selector_labels, child_labels, child_meta,
    config_volume, container_security_context, contract, env, env_from_field, env_from_secret,
    image_pull_secrets, pod_security_context, resource_requirements, short_hash, tmp_volume,
};
use super::config_map::{DRAIN_DELAY_SECONDS, SHUTDOWN_TIMEOUT_SECONDS};
use crate::crd::{Color, annotations, labels};
use crate::validate::Validated;

/// Old ReplicaSets kept per Deployment (rollbacks use the other color, not ReplicaSet history).
const REVISION_HISTORY: i32 = 3;

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(API_PORT_NAME.into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        success_threshold: Some(1),
        ..Probe::default()
    }
}

/// The API container: the `serve` subcommand wired to the contract in docs/architecture.md.
fn api_container(v: &Validated, target: &ColorTarget) -> (Container, Vec<Volume>) {
    let (tmp, tmp_mount) = tmp_volume();
    let (config, config_mount) = config_volume(v);
    let jwt = Volume {
        name: "jwt-keys".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(v.signing_keys.secret().to_owned()),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    };
    let admin = Volume {
        name: "admin-password".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(v.admin_password.name.clone()),
            default_mode: Some(0o440),
            items: Some(vec![KeyToPath {
                key: v.admin_password.key.clone(),
                path: "password".into(),
                ..KeyToPath::default()
            }]),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    };
    let read_only = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    };
    let container = Container {
        name: "api".into(),
        image: Some(target.image.clone()),
        image_pull_policy: Some(v.spec.image.pull_policy.as_str().into()),
        args: Some(vec!["serve".into()]),
        ports: Some(vec![ContainerPort {
            name: Some(API_PORT_NAME.into()),
            container_port: API_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: Some(vec![
            env_from_field("POD_IP", "status.podIP"),
            env("FP_LISTEN", format!("$(POD_IP):{API_PORT}")),
            env_from_secret("FP_DATABASE_URL", &v.database_url),
            env("FP_JWT_KEYS_DIR", contract::JWT_DIR),
            env("FP_ADMIN_PASSWORD_FILE", contract::ADMIN_PASSWORD_FILE),
            env("FP_CONFIG", contract::CONFIG_FILE),
            env("FP_RELEASE_VERSION", target.version.clone()),
        ]),
        resources: Some(resource_requirements(v)),
        security_context: Some(container_security_context()),
        // Up to two minutes for start-up (migrations check, cache warm-up) before liveness applies.
        startup_probe: Some(probe("/health/live", 2, 60)),
        liveness_probe: Some(probe("/health/live", 10, 3)),
        readiness_probe: Some(probe("/health/ready", 5, 2)),
        volume_mounts: Some(vec![
            read_only("jwt-keys", contract::JWT_DIR),
            read_only("admin-password", contract::ADMIN_DIR),
            config_mount,
            tmp_mount,
        ]),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    };
    (container, vec![jwt, admin, config, tmp])
}

/// The configuration revision of the spec's release: a hash of the pod template it renders (the
/// version and image left out: they are parts of the release of their own) and of the versions of
/// the Secrets the pods read. A new revision is rolled out like a new version.
pub fn config_revision(v: &Validated, secret_versions: &[(String, String)]) -> String {
    let placeholder = ColorTarget {
        version: String::new(),
        image: String::new(),
        config: String::new(),
        replicas: None,
    };
    let template = deployment(v, Color::Blue, &placeholder, "", None)
        .spec
        .template;
    let mut bytes = serde_json::to_vec(&template).unwrap_or_default();
    for (name, version) in secret_versions {
        bytes.extend_from_slice(format!("\nsecret {name} {version}").as_bytes());
    }
    short_hash(&bytes)
}

/// The Deployment of one color, its pod template rendered from the spec (configuration revision
/// `revision`) unless `frozen`: the live pod template of a color that runs another
/// configuration than the spec's (the serving color while a new one rolls out, or the old color
/// kept for a switch back): it is kept as it is, only the replicas change.
pub fn deployment(
    v: &Validated,
    color: Color,
    target: &ColorTarget,
    revision: &str,
    frozen: Option<&PodTemplateSpec>,
) -> Deployment {
    let selector = api_selector_labels(v, color);
    let mut meta = child_meta(v, v.names.deployment(color), Component::Api);
    let mut meta_labels = meta.labels.take().unwrap_or_default();
    meta_labels.insert(labels::COLOR.to_owned(), color.as_str().to_owned());
    meta_labels.insert(labels::VERSION.to_owned(), target.version.clone());
    meta.labels = Some(meta_labels);

    let mut pod_labels = child_labels(v, Component::Api);
    pod_labels.extend(selector.clone());
    pod_labels.insert(labels::VERSION.to_owned(), target.version.clone());
    let (container, volumes) = api_container(v, target);

    Deployment {
        metadata: meta,
        spec: DeploymentSpec {
            replicas: target.replicas,
            revision_history_limit: Some(REVISION_HISTORY),
            progress_deadline_seconds: Some(v.spec.rollout.progress_deadline_seconds),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".into())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: frozen.cloned().unwrap_or_else(|| PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        annotations::RELEASE_CONFIG.to_owned(),
                        revision.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(v.names.service_account()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(
                        DRAIN_DELAY_SECONDS + SHUTDOWN_TIMEOUT_SECONDS + 10,
                    ),
                    security_context: Some(pod_security_context()),
                    image_pull_secrets: image_pull_secrets(v),
                    topology_spread_constraints: Some(vec![TopologySpreadConstraint {
                        max_skew: 1,
                        topology_key: "kubernetes.io/hostname".into(),
                        when_unsatisfiable: "ScheduleAnyway".into(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector),
                            ..LabelSelector::default()
                        }),
                        ..TopologySpreadConstraint::default()
                    }]),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            }),
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn target(replicas: Option<i32>) -> ColorTarget {
        ColorTarget {
            version: "1.4.2".into(),
            image: "footballprediction/fp-api-server:1.4.2".into(),
            config: String::new(),
            replicas,
        }
    }

    fn pod(d: &Deployment) -> &PodSpec {
        d.spec.template.spec.as_ref().unwrap()
    }

    fn env_map(c: &Container) -> BTreeMap<String, serde_json::Value> {
        c.env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), serde_json::to_value(e).unwrap()))
            .collect()
    }

    #[test]
    fn names_selects_and_scales_by_color() {
        let v = validated(json!({"version": "1.4.2"}));
        let d = deployment(&v, Color::Green, &target(Some(3)), "abc", None);
        assert_eq!(d.metadata.name.as_deref(), Some("prod-green"));
        let spec = &d.spec;
        assert_eq!(spec.replicas, Some(3));
        let selector = spec.selector.match_labels.as_ref().unwrap();
        assert_eq!(selector["footballprediction.io/color"], "green");
        assert_eq!(selector["app.kubernetes.io/instance"], "prod");
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        for (k, value) in selector {
            assert_eq!(&pod_labels[k], value, "pod labels must match the selector");
        }
        assert_eq!(pod_labels["app.kubernetes.io/version"], "1.4.2");
        let annotations = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap();
        assert_eq!(annotations["footballprediction.io/release-config"], "abc");
    }

    #[test]
    fn autoscaled_color_leaves_replicas_unset() {
        let v = validated(json!({"version": "1.4.2"}));
        let d = deployment(&v, Color::Blue, &target(None), "abc", None);
        let value = serde_json::to_value(&d).unwrap();
        assert!(
            value["spec"].get("replicas").is_none(),
            "replicas must not be applied: {value}"
        );
    }

    #[test]
    fn container_follows_the_api_server_contract() {
        let v = validated(
            json!({"version": "1.4.2", "database": {"urlSecretRef": {"name": "db", "key": "uri"}}}),
        );
        let d = deployment(&v, Color::Blue, &target(Some(2)), "abc", None);
        let c = &pod(&d).containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some("footballprediction/fp-api-server:1.4.2")
        );
        assert_eq!(c.args, Some(vec!["serve".to_owned()]));
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("http"), 8080)
        );
        let env = env_map(c);
        assert_eq!(env["FP_LISTEN"]["value"], "$(POD_IP):8080");
        assert_eq!(
            env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"],
            "status.podIP"
        );
        assert_eq!(
            env["FP_DATABASE_URL"]["valueFrom"]["secretKeyRef"],
            json!({"name": "db", "key": "uri", "optional": false})
        );
        assert!(
            env["FP_DATABASE_URL"].get("value").is_none(),
            "the URL is never inlined"
        );
        assert_eq!(env["FP_JWT_KEYS_DIR"]["value"], "/etc/fp/jwt");
        assert_eq!(
            env["FP_ADMIN_PASSWORD_FILE"]["value"],
            "/etc/fp/admin/password"
        );
        assert_eq!(env["FP_CONFIG"]["value"], "/etc/fp/config/config.toml");
        assert_eq!(env["FP_RELEASE_VERSION"]["value"], "1.4.2");
        // Env vars referenced by $(…) must be defined before use.
        let names: Vec<&str> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert!(
            names.iter().position(|n| *n == "POD_IP")
                < names.iter().position(|n| *n == "FP_LISTEN")
        );

        let mounts: BTreeMap<&str, (&str, Option<bool>)> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), (m.mount_path.as_str(), m.read_only)))
            .collect();
        assert_eq!(mounts["jwt-keys"], ("/etc/fp/jwt", Some(true)));
        assert_eq!(mounts["admin-password"], ("/etc/fp/admin", Some(true)));
        assert_eq!(mounts["config"], ("/etc/fp/config", Some(true)));
        let volumes: BTreeMap<&str, serde_json::Value> = pod(&d)
            .volumes
            .iter()
            .flatten()
            .map(|vol| (vol.name.as_str(), serde_json::to_value(vol).unwrap()))
            .collect();
        assert_eq!(volumes["jwt-keys"]["secret"]["secretName"], "prod-jwt");
        assert_eq!(
            volumes["admin-password"]["secret"]["items"],
            json!([{"key": "password", "path": "password"}])
        );
        assert_eq!(
            volumes["config"]["configMap"]["name"],
            format!("prod-config-{}", super::super::config_map::config_hash(&v))
        );
    }

    #[test]
    fn probes_resources_and_restricted_security() {
        let v = validated(
            json!({"version": "1.4.2", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}}),
        );
        let d = deployment(&v, Color::Blue, &target(Some(2)), "abc", None);
        let c = &pod(&d).containers[0];
        let path = |p: &Option<Probe>| {
            p.as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .path
                .clone()
                .unwrap()
        };
        assert_eq!(path(&c.liveness_probe), "/health/live");
        assert_eq!(path(&c.readiness_probe), "/health/ready");
        assert_eq!(path(&c.startup_probe), "/health/live");
        let resources = serde_json::to_value(c.resources.as_ref().unwrap()).unwrap();
        assert_eq!(
            resources,
            json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}})
        );
        let sc = serde_json::to_value(c.security_context.as_ref().unwrap()).unwrap();
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
        let psc = serde_json::to_value(pod(&d).security_context.as_ref().unwrap()).unwrap();
        assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
        assert_eq!(psc["runAsNonRoot"], true);
        assert_eq!(pod(&d).automount_service_account_token, Some(false));
        let spread = &pod(&d).topology_spread_constraints.as_ref().unwrap()[0];
        assert_eq!(spread.topology_key, "kubernetes.io/hostname");
    }

    #[test]
    fn referenced_keys_and_passwords_are_mounted_from_their_secrets() {
        let v = validated(
            json!({"version": "1", "auth": {"signingKeysSecretRef": {"name": "keys"},
            "adminPasswordSecretRef": {"name": "adm", "key": "pw"}}, "image": {"pullSecrets": ["regcred"]}}),
        );
        let d = deployment(&v, Color::Blue, &target(Some(2)), "abc", None);
        let volumes: BTreeMap<&str, serde_json::Value> = pod(&d)
            .volumes
            .iter()
            .flatten()
            .map(|vol| (vol.name.as_str(), serde_json::to_value(vol).unwrap()))
            .collect();
        assert_eq!(volumes["jwt-keys"]["secret"]["secretName"], "keys");
        assert_eq!(volumes["admin-password"]["secret"]["secretName"], "adm");
        assert_eq!(
            volumes["admin-password"]["secret"]["items"],
            json!([{"key": "pw", "path": "password"}])
        );
        assert_eq!(
            pod(&d).image_pull_secrets.as_ref().unwrap()[0].name,
            "regcred"
        );
    }
}
