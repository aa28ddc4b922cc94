//! The `FootballPrediction` custom resource: spec, status, CEL rules and the names every part of the
//! operator shares (group, field manager, labels).

mod command;
mod monitoring;
mod reference;
mod schema;
mod spec;
mod status;

pub use command::RolloutCommand;
pub use monitoring::*;
pub use reference::render_reference;
pub use schema::{CrdYamlError, crd_yaml};
pub use spec::*;
pub use status::*;

/// API group of the custom resource.
pub const GROUP: &str = "footballprediction.io";
/// API version of the custom resource.
pub const VERSION: &str = "v1alpha1";
/// Name of the CustomResourceDefinition (`<plural>.<group>`).
pub const CRD_NAME: &str = "footballpredictions.footballprediction.io";
/// Server-side apply field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "fp-operator";
/// Default image repository of the API server.
pub const DEFAULT_API_IMAGE: &str = "footballprediction/fp-api-server";
/// Default image repository of the operator itself.
pub const DEFAULT_OPERATOR_IMAGE: &str = "footballprediction/fp-operator";

/// Longest allowed `metadata.name`: children append suffixes up to `-backup-frequent` (16
/// characters) and CronJob names may have at most 52.
pub const MAX_NAME_LENGTH: usize = 36;

/// Recommended labels and the operator's own label keys.
pub mod labels {
    pub const NAME: &str = "app.kubernetes.io/name";
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    pub const VERSION: &str = "app.kubernetes.io/version";
    /// The blue/green color of an API pod, Deployment or Service selector.
    pub const COLOR: &str = "footballprediction.io/color";
    /// Value of `app.kubernetes.io/name` on every child.
    pub const NAME_VALUE: &str = "footballprediction";
    /// Value of `app.kubernetes.io/part-of` on every child.
    pub const PART_OF_VALUE: &str = "footballprediction";
    /// Value of `app.kubernetes.io/managed-by` on every child.
    pub const MANAGED_BY_VALUE: &str = "fp-operator";
    /// Grafana's sidecar picks up ConfigMaps carrying this label.
    pub const GRAFANA_DASHBOARD: &str = "grafana_dashboard";
}

/// Annotation keys the operator writes.
pub mod annotations {
    /// Hash of the desired child as last built; lets the operator skip writes that change nothing.
    pub const SPEC_HASH: &str = "footballprediction.io/spec-hash";
    /// Configuration revision of the release a pod template runs (`status.active.config`).
    pub const RELEASE_CONFIG: &str = "footballprediction.io/release-config";
}

/// Annotations a person (or `kubectl fp`) sets on a FootballPrediction to steer its rollout. The
/// operator acts on one, records the outcome in `status.rollout.message` and an event, and removes it.
/// [`RolloutCommand`] says which applies when.
pub mod commands {
    pub const PROMOTE: &str = "footballprediction.io/promote";
    pub const ABORT: &str = "footballprediction.io/abort";
    pub const RETRY: &str = "footballprediction.io/retry";
    pub const ROLLBACK: &str = "footballprediction.io/rollback";
}

#[cfg(test)]
mod admission;
#[cfg(test)]
mod tests;
