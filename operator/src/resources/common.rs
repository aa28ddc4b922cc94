//! Labels, metadata, hashes and pod building blocks shared by the builders.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, EmptyDirVolumeSource, EnvVar, EnvVarSource, LocalObjectReference,
    ObjectFieldSelector, PodSecurityContext, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use sha2::{Digest, Sha256};

use crate::crd::{Color, ResourceAmounts, SecretKeyRef, labels};
use crate::validate::Validated;

/// Port the API server listens on in every pod (the architecture contract).
pub const API_PORT: i32 = 8080;
/// Name of that port.
pub const API_PORT_NAME: &str = "http";
/// UID/GID the API server runs as (any non-root id works; 65532 is the "nonroot" convention).
pub const RUN_AS: i64 = 65532;

/// Mount points and environment variables of the API server contract (docs/architecture.md).
pub mod contract {
    pub const JWT_DIR: &str = "/etc/fp/jwt";
    pub const ADMIN_DIR: &str = "/etc/fp/admin";
    pub const ADMIN_PASSWORD_FILE: &str = "/etc/fp/admin/password";
    pub const CONFIG_DIR: &str = "/etc/fp/config";
    pub const CONFIG_FILE: &str = "/etc/fp/config/config.toml";
    pub const CONFIG_KEY: &str = "config.toml";
    pub const TMP_DIR: &str = "/tmp";
    pub const BACKUP_DIR: &str = "/var/lib/fp/backups";
}

/// The parts a child plays, as `app.kubernetes.io/component`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Api,
    Config,
    Auth,
    Routing,
    Migration,
    Backup,
    Monitoring,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Config => "config",
            Self::Auth => "auth",
            Self::Routing => "routing",
            Self::Migration => "migration",
            Self::Backup => "backup",
            Self::Monitoring => "monitoring",
        }
    }
}

/// Labels that identify a FootballPrediction's children; the operator lists children by these.
pub fn instance_labels(v: &Validated) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), labels::NAME_VALUE.to_owned()),
        (labels::INSTANCE.to_owned(), v.name.clone()),
        (
            labels::MANAGED_BY.to_owned(),
            labels::MANAGED_BY_VALUE.to_owned(),
        ),
    ])
}

/// The label selector string matching every child of a FootballPrediction.
pub fn instance_selector(name: &str) -> String {
    format!(
        "{}={},{}={}",
        labels::INSTANCE,
        name,
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE
    )
}

/// All recommended labels of a child.
pub fn child_labels(v: &Validated, component: Component) -> BTreeMap<String, String> {
    let mut l = instance_labels(v);
    l.insert(labels::COMPONENT.to_owned(), component.as_str().to_owned());
    l.insert(labels::PART_OF.to_owned(), labels::PART_OF_VALUE.to_owned());
    l
}

/// Labels that select the API pods of one color (stable: Deployment selectors are immutable).
pub fn api_selector_labels(v: &Validated, color: Color) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), labels::NAME_VALUE.to_owned()),
        (labels::INSTANCE.to_owned(), v.name.clone()),
        (
            labels::COMPONENT.to_owned(),
            Component::Api.as_str().to_owned(),
        ),
        (labels::COLOR.to_owned(), color.as_str().to_owned()),
    ])
}

/// Labels that select the API pods of both colors.
pub fn api_pods_selector(v: &Validated) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([
            (labels::NAME.to_owned(), labels::NAME_VALUE.to_owned()),
            (labels::INSTANCE.to_owned(), v.name.clone()),
            (
                labels::COMPONENT.to_owned(),
                Component::Api.as_str().to_owned(),
            ),
        ])),
        ..LabelSelector::default()
    }
}

/// Metadata of a namespaced child with labels and the controller ownerReference.
pub fn child_meta(v: &Validated, name: impl Into<String>, component: Component) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(v.namespace.clone()),
        labels: Some(child_labels(v, component)),
        owner_references: Some(vec![v.owner.clone()]),
        ..ObjectMeta::default()
    }
}

/// A short, stable hex digest (first 10 hex digits of SHA-256).
pub fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    hex::encode(digest)[..10].to_owned()
}

/// Pod-level restricted security context.
pub fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..PodSecurityContext::default()
    }
}

/// Container-level restricted security context (Pod Security Standards "restricted").
pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        localhost_profile: None,
    }
}

/// A plain environment variable.
pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// An environment variable read from a Secret key, so the value never appears in a manifest.
pub fn env_from_secret(name: &str, secret: &SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// An environment variable from the downward API.
pub fn env_from_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// Requests and limits of the API container.
pub fn resource_requirements(v: &Validated) -> ResourceRequirements {
    fn amounts(a: &ResourceAmounts) -> Option<BTreeMap<String, Quantity>> {
        let mut m = BTreeMap::new();
        if let Some(cpu) = &a.cpu {
            m.insert("cpu".to_owned(), Quantity(cpu.clone()));
        }
        if let Some(memory) = &a.memory {
            m.insert("memory".to_owned(), Quantity(memory.clone()));
        }
        (!m.is_empty()).then_some(m)
    }
    ResourceRequirements {
        requests: amounts(&v.spec.resources.requests),
        limits: amounts(&v.spec.resources.limits),
        claims: None,
    }
}

/// Image pull secrets of the API image.
pub fn image_pull_secrets(v: &Validated) -> Option<Vec<LocalObjectReference>> {
    let secrets = &v.spec.image.pull_secrets;
    (!secrets.is_empty()).then(|| {
        secrets
            .iter()
            .map(|name| LocalObjectReference { name: name.clone() })
            .collect()
    })
}

/// A writable scratch directory (the root filesystem is read-only).
pub fn tmp_volume() -> (Volume, VolumeMount) {
    (
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: contract::TMP_DIR.into(),
            ..VolumeMount::default()
        },
    )
}

/// Name of the pod volume holding the API server's config file.
pub const CONFIG_VOLUME: &str = "config";

/// The API server's configuration ConfigMap (of the spec's current content), mounted read-only.
pub fn config_volume(v: &Validated) -> (Volume, VolumeMount) {
    (
        Volume {
            name: CONFIG_VOLUME.into(),
            config_map: Some(k8s_openapi::api::core::v1::ConfigMapVolumeSource {
                name: v.names.config_map(&super::config_map::config_hash(v)),
                ..Default::default()
            }),
            ..Volume::default()
        },
        VolumeMount {
            name: CONFIG_VOLUME.into(),
            mount_path: contract::CONFIG_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    )
}
