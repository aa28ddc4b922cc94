//! Pod volumes as files in the pod directory. Secret, ConfigMap, downwardAPI and projected
//! volumes are computed as file sets (pure) and written the way kubelet's atomic writer does —
//! a timestamped directory, a `..data` symlink swapped atomically, and one top-level symlink per
//! entry — so readers see either the old or the new content, never a mix, and updates to the
//! Secret (rotated JWT keys) appear in place. emptyDir is a plain directory, hostPath the host
//! path itself.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, DownwardAPIVolumeFile, KeyToPath, Pod, SecretProjection, Volume,
};

use super::downward::{self, DownwardError, PodRuntimeFacts};
use super::env::{ObjectData, ObjectSource};

const DEFAULT_MODE: u32 = 0o644;
const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;
const MIN_TOKEN_EXPIRATION_SECONDS: i64 = 600;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VolumeError {
    #[error("volume {volume}: secret {name:?} not found")]
    SecretNotFound { volume: String, name: String },
    #[error("volume {volume}: configmap {name:?} not found")]
    ConfigMapNotFound { volume: String, name: String },
    #[error("volume {volume}: couldn't find key {key} in {kind} {name}")]
    KeyNotFound {
        volume: String,
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("volume {volume}: path {path:?} must be relative without '..'")]
    BadPath { volume: String, path: String },
    #[error("volume {volume}: {source}")]
    Downward {
        volume: String,
        source: DownwardError,
    },
    #[error("volume {volume}: service account token not available yet")]
    TokenPending { volume: String },
    #[error("volume {volume}: {kind} volumes are not supported by fp-node-agent")]
    Unsupported { volume: String, kind: String },
}

/// One file of an atomically written volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// Relative path → content.
pub type FileSet = BTreeMap<String, FileContent>;

/// What a volume becomes on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumePlan {
    Files(FileSet),
    EmptyDir,
    HostPath(PathBuf),
}

/// A service account token a projected volume needs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenSpec {
    /// Empty: the API server's own audience.
    pub audience: String,
    pub expiration_seconds: i64,
}

/// Tokens fetched by the agent, by spec.
pub type Tokens = BTreeMap<TokenSpec, String>;

/// The tokens the pod's projected volumes need.
pub fn token_specs(pod: &Pod) -> BTreeSet<TokenSpec> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|s| s.service_account_token.as_ref())
        .map(|t| TokenSpec {
            audience: t.audience.clone().unwrap_or_default(),
            expiration_seconds: t
                .expiration_seconds
                .unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS)
                .max(MIN_TOKEN_EXPIRATION_SECONDS),
        })
        .collect()
}

/// Names of the Secrets and ConfigMaps a pod references anywhere (volumes, env, envFrom).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct References {
    pub secrets: BTreeSet<String>,
    pub config_maps: BTreeSet<String>,
}

pub fn references(pod: &Pod) -> References {
    let mut refs = References::default();
    let Some(spec) = pod.spec.as_ref() else {
        return refs;
    };
    for volume in spec.volumes.iter().flatten() {
        if let Some(s) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            refs.secrets.insert(s);
        }
        if let Some(cm) = &volume.config_map {
            refs.config_maps.insert(cm.name.clone());
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(s) = &source.secret {
                refs.secrets.insert(s.name.clone());
            }
            if let Some(cm) = &source.config_map {
                refs.config_maps.insert(cm.name.clone());
            }
        }
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for container in containers {
        for from in container.env_from.iter().flatten() {
            if let Some(s) = &from.secret_ref {
                refs.secrets.insert(s.name.clone());
            }
            if let Some(cm) = &from.config_map_ref {
                refs.config_maps.insert(cm.name.clone());
            }
        }
        for var in container.env.iter().flatten() {
            let source = var.value_from.as_ref();
            if let Some(s) = source.and_then(|s| s.secret_key_ref.as_ref()) {
                refs.secrets.insert(s.name.clone());
            }
            if let Some(cm) = source.and_then(|s| s.config_map_key_ref.as_ref()) {
                refs.config_maps.insert(cm.name.clone());
            }
        }
    }
    refs
}

/// Inputs for computing volume content.
pub struct VolumeContext<'a> {
    pub pod: &'a Pod,
    pub facts: &'a PodRuntimeFacts,
    pub objects: &'a dyn ObjectSource,
    pub tokens: &'a Tokens,
}

pub fn volume_plan(volume: &Volume, ctx: &VolumeContext<'_>) -> Result<VolumePlan, VolumeError> {
    let name = volume.name.as_str();
    if volume.empty_dir.is_some() {
        return Ok(VolumePlan::EmptyDir);
    }
    if let Some(host) = &volume.host_path {
        return Ok(VolumePlan::HostPath(PathBuf::from(&host.path)));
    }
    let mut files = FileSet::new();
    if let Some(secret) = &volume.secret {
        let mode = mode_of(secret.default_mode);
        let secret_name = secret.secret_name.clone().unwrap_or_default();
        let data = ctx.objects.secret(&secret_name);
        if data.is_none() && secret.optional != Some(true) {
            return Err(VolumeError::SecretNotFound {
                volume: name.into(),
                name: secret_name,
            });
        }
        add_keys(
            &mut files,
            name,
            "Secret",
            &secret_name,
            data,
            secret.items.as_deref(),
            mode,
            secret.optional == Some(true),
        )?;
        return Ok(VolumePlan::Files(files));
    }
    if let Some(cm) = &volume.config_map {
        let mode = mode_of(cm.default_mode);
        let data = ctx.objects.config_map(&cm.name);
        if data.is_none() && cm.optional != Some(true) {
            return Err(VolumeError::ConfigMapNotFound {
                volume: name.into(),
                name: cm.name.clone(),
            });
        }
        add_keys(
            &mut files,
            name,
            "ConfigMap",
            &cm.name,
            data,
            cm.items.as_deref(),
            mode,
            cm.optional == Some(true),
        )?;
        return Ok(VolumePlan::Files(files));
    }
    if let Some(api) = &volume.downward_api {
        let mode = mode_of(api.default_mode);
        add_downward(
            &mut files,
            name,
            api.items.as_deref().unwrap_or_default(),
            mode,
            ctx,
        )?;
        return Ok(VolumePlan::Files(files));
    }
    if let Some(projected) = &volume.projected {
        let mode = mode_of(projected.default_mode);
        for source in projected.sources.iter().flatten() {
            if let Some(s) = &source.secret {
                add_secret_projection(&mut files, name, s, mode, ctx)?;
            } else if let Some(cm) = &source.config_map {
                add_config_map_projection(&mut files, name, cm, mode, ctx)?;
            } else if let Some(api) = &source.downward_api {
                add_downward(
                    &mut files,
                    name,
                    api.items.as_deref().unwrap_or_default(),
                    mode,
                    ctx,
                )?;
            } else if let Some(token) = &source.service_account_token {
                let spec = TokenSpec {
                    audience: token.audience.clone().unwrap_or_default(),
                    expiration_seconds: token
                        .expiration_seconds
                        .unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS)
                        .max(MIN_TOKEN_EXPIRATION_SECONDS),
                };
                let value = ctx
                    .tokens
                    .get(&spec)
                    .ok_or_else(|| VolumeError::TokenPending {
                        volume: name.into(),
                    })?;
                insert(
                    &mut files,
                    name,
                    &token.path,
                    value.clone().into_bytes(),
                    mode,
                )?;
            } else {
                return Err(VolumeError::Unsupported {
                    volume: name.into(),
                    kind: "projected clusterTrustBundle/podCertificate".into(),
                });
            }
        }
        return Ok(VolumePlan::Files(files));
    }
    Err(VolumeError::Unsupported {
        volume: name.into(),
        kind: volume_kind(volume),
    })
}

fn volume_kind(volume: &Volume) -> String {
    serde_json::to_value(volume)
        .ok()
        .and_then(|v| {
            v.as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn mode_of(mode: Option<i32>) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok())
        .map_or(DEFAULT_MODE, |m| m & 0o777)
}

fn add_secret_projection(
    files: &mut FileSet,
    volume: &str,
    source: &SecretProjection,
    mode: u32,
    ctx: &VolumeContext<'_>,
) -> Result<(), VolumeError> {
    let optional = source.optional == Some(true);
    let data = ctx.objects.secret(&source.name);
    if data.is_none() && !optional {
        return Err(VolumeError::SecretNotFound {
            volume: volume.into(),
            name: source.name.clone(),
        });
    }
    add_keys(
        files,
        volume,
        "Secret",
        &source.name,
        data,
        source.items.as_deref(),
        mode,
        optional,
    )
}

fn add_config_map_projection(
    files: &mut FileSet,
    volume: &str,
    source: &ConfigMapProjection,
    mode: u32,
    ctx: &VolumeContext<'_>,
) -> Result<(), VolumeError> {
    let optional = source.optional == Some(true);
    let data = ctx.objects.config_map(&source.name);
    if data.is_none() && !optional {
        return Err(VolumeError::ConfigMapNotFound {
            volume: volume.into(),
            name: source.name.clone(),
        });
    }
    add_keys(
        files,
        volume,
        "ConfigMap",
        &source.name,
        data,
        source.items.as_deref(),
        mode,
        optional,
    )
}

#[allow(clippy::too_many_arguments)]
fn add_keys(
    files: &mut FileSet,
    volume: &str,
    kind: &'static str,
    object: &str,
    data: Option<ObjectData>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    optional: bool,
) -> Result<(), VolumeError> {
    let data = data.unwrap_or_default();
    match items {
        None => {
            for (key, bytes) in data {
                insert(files, volume, &key, bytes, mode)?;
            }
        }
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(bytes) => {
                        let item_mode = item.mode.map_or(mode, |m| mode_of(Some(m)));
                        insert(files, volume, &item.path, bytes.clone(), item_mode)?;
                    }
                    None if optional => {}
                    None => {
                        return Err(VolumeError::KeyNotFound {
                            volume: volume.into(),
                            kind,
                            name: object.into(),
                            key: item.key.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

fn add_downward(
    files: &mut FileSet,
    volume: &str,
    items: &[DownwardAPIVolumeFile],
    mode: u32,
    ctx: &VolumeContext<'_>,
) -> Result<(), VolumeError> {
    let wrap = |source| VolumeError::Downward {
        volume: volume.into(),
        source,
    };
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            downward::field_value(ctx.pod, ctx.facts, &field.field_path).map_err(wrap)?
        } else if let Some(resource) = &item.resource_field_ref {
            let container = resource.container_name.clone().unwrap_or_default();
            downward::resource_value(
                ctx.pod,
                ctx.facts,
                &container,
                Some(&container),
                &resource.resource,
                resource.divisor.as_ref().map(|d| d.0.as_str()),
            )
            .map_err(wrap)?
        } else {
            continue;
        };
        let item_mode = item.mode.map_or(mode, |m| mode_of(Some(m)));
        insert(files, volume, &item.path, value.into_bytes(), item_mode)?;
    }
    Ok(())
}

fn insert(
    files: &mut FileSet,
    volume: &str,
    path: &str,
    bytes: Vec<u8>,
    mode: u32,
) -> Result<(), VolumeError> {
    let safe = !path.is_empty()
        && !path.starts_with("..")
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !safe {
        return Err(VolumeError::BadPath {
            volume: volume.into(),
            path: path.into(),
        });
    }
    files.insert(path.to_string(), FileContent { bytes, mode });
    Ok(())
}

const DATA_LINK: &str = "..data";

/// Writes `files` into `dir` atomically (kubelet's layout). Existing content is replaced as a
/// whole; top-level entries that disappeared are removed.
pub fn write_atomic(dir: &Path, files: &FileSet, stamp: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let version_name = format!("..{stamp}");
    let version_dir = dir.join(&version_name);
    if version_dir.exists() {
        std::fs::remove_dir_all(&version_dir)?;
    }
    std::fs::create_dir(&version_dir)?;
    for (path, content) in files {
        let target = version_dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &content.bytes)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(content.mode))?;
    }
    let previous = std::fs::read_link(dir.join(DATA_LINK)).ok();
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&version_name, &tmp_link)?;
    std::fs::rename(&tmp_link, dir.join(DATA_LINK))?;

    let top_level: BTreeSet<String> = files
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for name in &top_level {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_LINK).join(name), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if !name.starts_with("..") && is_link && !top_level.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    if let Some(previous) = previous.filter(|p| p.as_os_str() != version_name.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(previous));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, DownwardAPIProjection, EmptyDirVolumeSource, ObjectFieldSelector,
        PersistentVolumeClaimVolumeSource, PodSpec, ProjectedVolumeSource, SecretVolumeSource,
        ServiceAccountTokenProjection, VolumeProjection,
    };
    use kube::api::ObjectMeta;

    struct Objects;

    impl ObjectSource for Objects {
        fn secret(&self, name: &str) -> Option<ObjectData> {
            (name == "jwt").then(|| {
                BTreeMap::from([
                    ("k20260101T000000Z".into(), b"old-key".to_vec()),
                    ("k20260201T000000Z".into(), b"new-key".to_vec()),
                ])
            })
        }
        fn config_map(&self, name: &str) -> Option<ObjectData> {
            match name {
                "config" => Some(BTreeMap::from([(
                    "config.toml".into(),
                    b"a = 1\n".to_vec(),
                )])),
                "kube-root-ca.crt" => Some(BTreeMap::from([("ca.crt".into(), b"PEM".to_vec())])),
                _ => None,
            }
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("api-0".into()),
                namespace: Some("fp".into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: None,
        }
    }

    fn plan(volume: Volume, tokens: &Tokens) -> Result<VolumePlan, VolumeError> {
        let pod = pod();
        let facts = PodRuntimeFacts::default();
        volume_plan(
            &volume,
            &VolumeContext {
                pod: &pod,
                facts: &facts,
                objects: &Objects,
                tokens,
            },
        )
    }

    fn files(plan: VolumePlan) -> Vec<(String, String, u32)> {
        match plan {
            VolumePlan::Files(files) => files
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8(v.bytes).unwrap(), v.mode))
                .collect(),
            other => panic!("not files: {other:?}"),
        }
    }

    #[test]
    fn secret_volumes_hold_every_key_or_the_chosen_items() {
        let all = Volume {
            name: "jwt".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("jwt".into()),
                default_mode: Some(0o400),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            files(plan(all, &Tokens::new()).unwrap()),
            vec![
                ("k20260101T000000Z".into(), "old-key".into(), 0o400),
                ("k20260201T000000Z".into(), "new-key".into(), 0o400),
            ]
        );
        let items = Volume {
            name: "admin".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("jwt".into()),
                items: Some(vec![KeyToPath {
                    key: "k20260201T000000Z".into(),
                    path: "nested/current".into(),
                    mode: Some(0o600),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            files(plan(items, &Tokens::new()).unwrap()),
            vec![("nested/current".into(), "new-key".into(), 0o600)]
        );
    }

    #[test]
    fn missing_objects_and_keys_are_errors_unless_optional() {
        let missing = |optional| Volume {
            name: "v".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "nope".into(),
                optional,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            plan(missing(None), &Tokens::new()),
            Err(VolumeError::ConfigMapNotFound {
                volume: "v".into(),
                name: "nope".into()
            })
        );
        assert_eq!(
            plan(missing(Some(true)), &Tokens::new()),
            Ok(VolumePlan::Files(FileSet::new()))
        );
        let missing_key = Volume {
            name: "v".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "config".into(),
                items: Some(vec![KeyToPath {
                    key: "other".into(),
                    path: "other".into(),
                    mode: None,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            plan(missing_key, &Tokens::new()),
            Err(VolumeError::KeyNotFound { .. })
        ));
        let escape = Volume {
            name: "v".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "config".into(),
                items: Some(vec![KeyToPath {
                    key: "config.toml".into(),
                    path: "../escape".into(),
                    mode: None,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            plan(escape, &Tokens::new()),
            Err(VolumeError::BadPath { .. })
        ));
    }

    fn service_account_volume() -> Volume {
        let source = |s: VolumeProjection| s;
        Volume {
            name: "kube-api-access".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o644),
                sources: Some(vec![
                    source(VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            path: "token".into(),
                            expiration_seconds: Some(3607),
                            audience: None,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    source(VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "kube-root-ca.crt".into(),
                            items: Some(vec![KeyToPath {
                                key: "ca.crt".into(),
                                path: "ca.crt".into(),
                                mode: None,
                                ..Default::default()
                            }]),
                            optional: None,
                        }),
                        ..Default::default()
                    }),
                    source(VolumeProjection {
                        downward_api: Some(DownwardAPIProjection {
                            items: Some(vec![DownwardAPIVolumeFile {
                                path: "namespace".into(),
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.namespace".into(),
                                    api_version: None,
                                }),
                                ..Default::default()
                            }]),
                        }),
                        ..Default::default()
                    }),
                ]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn projected_service_account_volume_like_kubelet() {
        let volume = service_account_volume();
        let mut pod = pod();
        pod.spec.as_mut().unwrap().volumes = Some(vec![volume.clone()]);
        let specs = token_specs(&pod);
        let spec = TokenSpec {
            audience: String::new(),
            expiration_seconds: 3607,
        };
        assert_eq!(specs, BTreeSet::from([spec.clone()]));
        assert_eq!(
            plan(volume.clone(), &Tokens::new()),
            Err(VolumeError::TokenPending {
                volume: "kube-api-access".into()
            })
        );
        let tokens = Tokens::from([(spec, "eyJtoken".to_string())]);
        assert_eq!(
            files(plan(volume, &tokens).unwrap()),
            vec![
                ("ca.crt".into(), "PEM".into(), 0o644),
                ("namespace".into(), "fp".into(), 0o644),
                ("token".into(), "eyJtoken".into(), 0o644),
            ]
        );
    }

    #[test]
    fn other_volume_kinds() {
        let empty = Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        };
        assert_eq!(plan(empty, &Tokens::new()), Ok(VolumePlan::EmptyDir));
        let pvc = Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: "data".into(),
                read_only: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            plan(pvc, &Tokens::new()),
            Err(VolumeError::Unsupported {
                volume: "data".into(),
                kind: "persistentVolumeClaim".into()
            })
        );
    }

    #[test]
    fn references_cover_volumes_and_env() {
        let mut pod = pod();
        let spec = pod.spec.as_mut().unwrap();
        spec.volumes = Some(vec![
            service_account_volume(),
            Volume {
                name: "jwt".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some("jwt".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]);
        let refs = references(&pod);
        assert_eq!(refs.secrets, BTreeSet::from(["jwt".to_string()]));
        assert_eq!(
            refs.config_maps,
            BTreeSet::from(["kube-root-ca.crt".to_string()])
        );
    }

    fn file(bytes: &str) -> FileContent {
        FileContent {
            bytes: bytes.as_bytes().to_vec(),
            mode: 0o644,
        }
    }

    #[test]
    fn atomic_writes_swap_content_and_drop_stale_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("jwt");
        let first = FileSet::from([
            ("k1".to_string(), file("one")),
            ("sub/inner".to_string(), file("deep")),
        ]);
        write_atomic(&dir, &first, "v1").unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("k1")).unwrap(), "one");
        assert_eq!(
            std::fs::read_to_string(dir.join("sub/inner")).unwrap(),
            "deep"
        );
        assert!(
            std::fs::symlink_metadata(dir.join("k1"))
                .unwrap()
                .file_type()
                .is_symlink()
        );

        let second = FileSet::from([("k2".to_string(), file("two"))]);
        write_atomic(&dir, &second, "v2").unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("k2")).unwrap(), "two");
        assert!(std::fs::symlink_metadata(dir.join("k1")).is_err());
        assert!(std::fs::symlink_metadata(dir.join("sub")).is_err());
        assert!(!dir.join("..v1").exists(), "old version removed");
        let visible: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(".."))
            .collect();
        assert_eq!(visible, BTreeSet::from(["k2".to_string()]));
    }
}
