//! A pod's directory on the host: its volumes (kept in sync with Secrets, ConfigMaps and
//! service account tokens), the per-pod kubeconfig and the mount path translations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount,
};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, PostParams};

use super::context::AgentContext;
use super::downward::PodRuntimeFacts;
use super::kubeconfig::pod_kubeconfig_yaml;
use super::paths::MountTranslation;
use super::volumes::{
    FileSet, TokenSpec, Tokens, VolumeContext, VolumePlan, token_specs, volume_plan, write_atomic,
};

/// A token and when to replace it (kubelet: after 80% of its lifetime).
#[derive(Debug, Clone)]
struct IssuedToken {
    token: String,
    refresh_at: Instant,
}

#[derive(Debug)]
pub struct Sandbox {
    pub pod_dir: PathBuf,
    volumes_dir: PathBuf,
    plans: BTreeMap<String, VolumePlan>,
    tokens: BTreeMap<TokenSpec, IssuedToken>,
    claim_paths: BTreeMap<String, PathBuf>,
    kubeconfig: Option<PathBuf>,
    /// Why the volumes are not (all) in place; `None` once they are.
    pub problem: Option<String>,
    pub synced_once: bool,
}

impl Sandbox {
    pub fn new(pod_dir: PathBuf) -> Self {
        Self {
            volumes_dir: pod_dir.join("volumes"),
            pod_dir,
            plans: BTreeMap::new(),
            tokens: BTreeMap::new(),
            claim_paths: BTreeMap::new(),
            kubeconfig: None,
            problem: Some("volumes not yet prepared".to_string()),
            synced_once: false,
        }
    }

    pub fn create_dirs(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.volumes_dir)?;
        std::fs::create_dir_all(self.pod_dir.join("logs"))?;
        std::fs::create_dir_all(self.pod_dir.join("home"))
    }

    pub fn home_dir(&self) -> PathBuf {
        self.pod_dir.join("home")
    }

    pub fn volume_dir(&self, volume: &str) -> PathBuf {
        self.volumes_dir.join(volume)
    }

    /// When the earliest token needs replacing.
    pub fn next_token_refresh(&self) -> Option<Instant> {
        self.tokens.values().map(|t| t.refresh_at).min()
    }

    /// Brings every volume up to date. Returns whether all volumes are in place; on failure the
    /// reason is kept in `problem` (no secret values in it).
    pub async fn sync(&mut self, ctx: &AgentContext, pod: &Pod, facts: &PodRuntimeFacts) -> bool {
        match self.try_sync(ctx, pod, facts).await {
            Ok(()) => {
                self.problem = None;
                self.synced_once = true;
                true
            }
            Err(problem) => {
                self.problem = Some(problem);
                false
            }
        }
    }

    async fn try_sync(
        &mut self,
        ctx: &AgentContext,
        pod: &Pod,
        facts: &PodRuntimeFacts,
    ) -> Result<(), String> {
        self.refresh_tokens(ctx, pod).await?;
        let tokens: Tokens = self
            .tokens
            .iter()
            .map(|(spec, issued)| (spec.clone(), issued.token.clone()))
            .collect();
        let namespace = pod.namespace().unwrap_or_default();
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        // A claim's binding never changes, so each is resolved once.
        for volume in &volumes {
            if let Some(claim) = &volume.persistent_volume_claim
                && !self.claim_paths.contains_key(&volume.name)
            {
                let path = claim_path(ctx, &namespace, &volume.name, &claim.claim_name).await?;
                self.claim_paths.insert(volume.name.clone(), path);
            }
        }
        let claim_paths = self.claim_paths.clone();
        let objects = ctx.cache.namespace(&namespace);
        let volume_ctx = VolumeContext {
            pod,
            facts,
            objects: &objects,
            tokens: &tokens,
        };
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        for volume in &volumes {
            let plan = match claim_paths.get(&volume.name) {
                Some(path) => VolumePlan::HostPath(path.clone()),
                None => volume_plan(volume, &volume_ctx).map_err(|e| e.to_string())?,
            };
            if self.plans.get(&volume.name) == Some(&plan) {
                continue;
            }
            let dir = self.volume_dir(&volume.name);
            match &plan {
                VolumePlan::Files(files) => write_files(&dir, files)
                    .map_err(|e| format!("volume {}: writing files: {e}", volume.name))?,
                VolumePlan::EmptyDir => std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("volume {}: {e}", volume.name))?,
                VolumePlan::HostPath(_) => {}
            }
            self.plans.insert(volume.name.clone(), plan);
        }
        self.write_kubeconfig(ctx, pod)?;
        Ok(())
    }

    async fn refresh_tokens(&mut self, ctx: &AgentContext, pod: &Pod) -> Result<(), String> {
        let now = Instant::now();
        let service_account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let namespace = pod.namespace().unwrap_or_default();
        for spec in token_specs(pod) {
            if self.tokens.get(&spec).is_some_and(|t| t.refresh_at > now) {
                continue;
            }
            let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &namespace);
            let request = TokenRequest {
                spec: Some(TokenRequestSpec {
                    audiences: (!spec.audience.is_empty()).then(|| vec![spec.audience.clone()]),
                    expiration_seconds: Some(spec.expiration_seconds),
                    bound_object_ref: Some(BoundObjectReference {
                        api_version: Some("v1".to_string()),
                        kind: Some("Pod".to_string()),
                        name: pod.metadata.name.clone(),
                        uid: pod.metadata.uid.clone(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let issued = api
                .create_token_request(&service_account, &PostParams::default(), &request)
                .await
                .map_err(|e| {
                    format!(
                        "requesting a token for service account {namespace}/{service_account}: {e}"
                    )
                })?;
            let status = issued.status.unwrap_or_default();
            let token = status.token.ok_or_else(|| {
                format!("token request for {namespace}/{service_account} returned no token")
            })?;
            let lifetime = status
                .expiration_timestamp
                .map(|t| t.0.duration_since(Timestamp::now()))
                .and_then(|span| Duration::try_from(span).ok())
                .unwrap_or(Duration::from_secs(
                    u64::try_from(spec.expiration_seconds).unwrap_or(600),
                ));
            self.tokens.insert(
                spec,
                IssuedToken {
                    token,
                    refresh_at: now + lifetime.mul_f64(0.8),
                },
            );
        }
        Ok(())
    }

    /// The pod's kubeconfig when it has an API-audience service account token volume.
    fn write_kubeconfig(&mut self, ctx: &AgentContext, pod: &Pod) -> Result<(), String> {
        let Some(token_file) = self.api_token_file(pod) else {
            self.kubeconfig = None;
            return Ok(());
        };
        let yaml = pod_kubeconfig_yaml(
            &ctx.endpoint,
            &token_file,
            &pod.namespace().unwrap_or_default(),
        )
        .map_err(|e| e.to_string())?;
        let path = self.pod_dir.join("kubeconfig");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
            std::fs::write(&path, yaml).map_err(|e| format!("writing pod kubeconfig: {e}"))?;
        }
        self.kubeconfig = Some(path);
        Ok(())
    }

    /// The first projected volume holding a token for the API server's own audience, and the
    /// name of that volume.
    fn api_token_volume(pod: &Pod) -> Option<(String, String)> {
        pod.spec
            .as_ref()?
            .volumes
            .iter()
            .flatten()
            .find_map(|volume| {
                let projected = volume.projected.as_ref()?;
                projected.sources.iter().flatten().find_map(|source| {
                    let token = source.service_account_token.as_ref()?;
                    token
                        .audience
                        .as_deref()
                        .is_none_or(str::is_empty)
                        .then(|| (volume.name.clone(), token.path.clone()))
                })
            })
    }

    fn api_token_file(&self, pod: &Pod) -> Option<PathBuf> {
        let (volume, path) = Self::api_token_volume(pod)?;
        Some(self.volume_dir(&volume).join(path))
    }

    /// `KUBECONFIG` for a container: only when it mounts the token volume, as only then would
    /// it have in-cluster credentials in a real cluster.
    pub fn kubeconfig_for(&self, pod: &Pod, container: &Container) -> Option<PathBuf> {
        let (volume, _) = Self::api_token_volume(pod)?;
        let mounts_it = container
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == volume);
        mounts_it.then(|| self.kubeconfig.clone()).flatten()
    }

    /// Where a container's terminationMessagePath (default `/dev/termination-log`) lives.
    pub fn termination_file(pod_dir: &Path, container: &str) -> PathBuf {
        pod_dir.join("termination").join(container)
    }

    /// mountPath → host path for each of the container's volume mounts, plus its
    /// terminationMessagePath.
    pub fn translations(&self, container: &Container) -> Vec<MountTranslation> {
        let message_path = container
            .termination_message_path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/dev/termination-log".to_string());
        let termination = MountTranslation::new(
            &message_path,
            Self::termination_file(&self.pod_dir, &container.name),
        );
        container
            .volume_mounts
            .iter()
            .flatten()
            .map(|mount| {
                let base = match self.plans.get(&mount.name) {
                    Some(VolumePlan::HostPath(path)) => path.clone(),
                    _ => self.volume_dir(&mount.name),
                };
                let host = match mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
                    Some(sub) => base.join(sub),
                    None => base,
                };
                MountTranslation::new(&mount.mount_path, host)
            })
            .chain(std::iter::once(termination))
            .collect()
    }

    /// Removes volumes (secrets on disk), tokens and the kubeconfig; logs stay.
    pub fn remove_volumes(&mut self) {
        let _ = std::fs::remove_dir_all(&self.volumes_dir);
        let _ = std::fs::remove_file(self.pod_dir.join("kubeconfig"));
        let _ = std::fs::remove_dir_all(self.pod_dir.join("home"));
        self.plans.clear();
        self.tokens.clear();
        self.kubeconfig = None;
    }
}

/// The host directory behind a PersistentVolumeClaim: the bound PV's hostPath or local path, else
/// a directory for that PV under the agent's state directory (kept across pods, as a PV is).
async fn claim_path(
    ctx: &AgentContext,
    namespace: &str,
    volume: &str,
    claim: &str,
) -> Result<PathBuf, String> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
    let pvc = claims
        .get_opt(claim)
        .await
        .map_err(|e| format!("volume {volume}: reading PersistentVolumeClaim {claim}: {e}"))?
        .ok_or_else(|| format!("volume {volume}: PersistentVolumeClaim {claim:?} not found"))?;
    // The scheduler only places pods whose claims it considers bound; the claim names its PV.
    let pv_name = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| format!("volume {volume}: PersistentVolumeClaim {claim:?} is not bound"))?;
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let pv = volumes
        .get(&pv_name)
        .await
        .map_err(|e| format!("volume {volume}: reading PersistentVolume {pv_name}: {e}"))?;
    let spec = pv.spec.unwrap_or_default();
    let path = match (spec.host_path, spec.local) {
        (Some(host), _) => PathBuf::from(host.path),
        (None, Some(local)) => PathBuf::from(local.path),
        (None, None) => ctx.persistent_dir.join(&pv_name),
    };
    std::fs::create_dir_all(&path)
        .map_err(|e| format!("volume {volume}: creating {}: {e}", path.display()))?;
    Ok(path)
}

fn write_files(dir: &Path, files: &FileSet) -> std::io::Result<()> {
    let stamp = Timestamp::now()
        .strftime("%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    write_atomic(dir, files, &stamp)
}
