//! What the rollout reads of one color's Deployment: a view that the machine, the plan and the
//! status share, so none of them reads Deployment objects.

use k8s_openapi::api::apps::v1::Deployment;

/// The rollout state of one color's Deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentView {
    pub name: String,
    /// Pods wanted (`spec.replicas`, which the autoscaler may own).
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    /// The Deployment controller has seen the latest spec.
    pub current: bool,
    /// The Deployment's own Progressing condition says ProgressDeadlineExceeded.
    pub deadline_exceeded: bool,
    /// Image of the API container in the pod template.
    pub image: String,
    /// Configuration revision of the pod template (empty when it has none).
    pub config: String,
}

impl DeploymentView {
    pub fn from_deployment(d: &Deployment) -> Self {
        let status = d.status.clone().unwrap_or_default();
        let generation = d.metadata.generation.unwrap_or(0);
        let deadline_exceeded = status.conditions.iter().flatten().any(|c| {
            c.type_.as_deref() == Some("Progressing")
                && c.status.as_deref() == Some("False")
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        Self {
            name: d.metadata.name.clone().unwrap_or_default(),
            desired: d.spec.replicas.unwrap_or(1),
            ready: status.ready_replicas.unwrap_or(0),
            updated: status.updated_replicas.unwrap_or(0),
            available: status.available_replicas.unwrap_or(0),
            current: status.observed_generation.unwrap_or(0) >= generation,
            deadline_exceeded,
            image: d
                .spec
                .template
                .spec
                .as_ref()
                .and_then(|p| p.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default(),
            config: d
                .spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(crate::crd::annotations::RELEASE_CONFIG))
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Every wanted pod runs the current template and is available.
    pub fn rolled_out(&self) -> bool {
        self.current
            && self.desired > 0
            && self.updated >= self.desired
            && self.available >= self.desired
            && self.ready >= self.desired
    }
}
