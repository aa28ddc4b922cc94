//! `FootballPredictionSpec`: what a platform team asks for. Every part but `version` is optional and
//! has a documented default; rules the API server can check live here as OpenAPI constraints and CEL.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::monitoring::MonitoringSpec;
use super::status::FootballPredictionStatus;

/// Release names: a container image tag.
pub const VERSION_PATTERN: &str = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$";
/// An OCI manifest digest, the only algorithm the images are built with.
pub const IMAGE_DIGEST_PATTERN: &str = r"^sha256:[0-9a-f]{64}$";
/// Image repository, optionally with a registry host and port.
pub const IMAGE_REPOSITORY_PATTERN: &str =
    r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$";
/// Go-style durations of whole units, as Kubernetes writes them: `500ms`, `15m`, `1h30m`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";
/// Five-field cron expressions or the `@daily`-style macros CronJobs accept.
pub const CRON_PATTERN: &str =
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$";
/// DNS host names, optionally a leading wildcard label.
pub const HOST_PATTERN: &str =
    r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Names of namespaced objects (DNS-1123 subdomain).
pub const OBJECT_NAME_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Keys of a Secret's data.
pub const SECRET_KEY_PATTERN: &str = r"^[-._a-zA-Z0-9]+$";
/// IANA time zone names such as `UTC` or `Europe/London`.
pub const TIME_ZONE_PATTERN: &str = r"^[A-Za-z]+(/[A-Za-z0-9_+-]+)*$";
/// Absolute HTTP paths.
pub const HTTP_PATH_PATTERN: &str = r"^/[^\s]*$";
/// IPv4 or IPv6 CIDR blocks.
pub const CIDR_PATTERN: &str =
    r"^([0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}|[0-9a-fA-F:]+/[0-9]{1,3})$";
/// Kubernetes resource quantities (the same expression controller-gen emits).
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// The FootballPrediction platform: the API server's blue/green Deployments and Services, Ingress and
/// Certificate, migration Job, backup CronJobs, alert rules, ServiceMonitor and dashboards.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "footballprediction.io",
    version = "v1alpha1",
    kind = "FootballPrediction",
    plural = "footballpredictions",
    shortname = "fp",
    category = "footballprediction",
    namespaced,
    status = "FootballPredictionStatus",
    derive = "PartialEq",
    doc = "FootballPrediction runs the football prediction platform: API server, routing, TLS, migrations, backups and monitoring.",
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version", description = "Desired release"),
    printcolumn(name = "Active", type_ = "string", json_path = ".status.active.color", description = "Color serving traffic"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Stage", type_ = "string", json_path = ".status.rollout.stage", description = "Step of the blue-green rollout (Idle when none runs)"),
    printcolumn(name = "Target", type_ = "string", json_path = ".status.rollout.targetVersion", description = "Release the rollout is about", priority = 1),
    printcolumn(name = "Last Backup", type_ = "date", json_path = ".status.backup.lastSuccessfulAt"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter): it names Services"),
    validation = Rule::new("size(self.metadata.name) <= 36").message("metadata.name must be at most 36 characters: child names add suffixes such as -backup-frequent"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.autoscaling) || self.autoscaling.minReplicas <= self.autoscaling.maxReplicas").message("spec.autoscaling.minReplicas must be less than or equal to spec.autoscaling.maxReplicas"),
    validation = Rule::new("!has(self.tls) || !has(self.ingress) || self.ingress.host in self.tls.dnsNames").message("spec.tls.dnsNames must include spec.ingress.host"),
    validation = Rule::new("!has(self.tls) || has(self.ingress)").message("spec.tls requires spec.ingress: the certificate is served by the Ingress"),
    validation = Rule::new("!has(self.ingress) || has(self.tls) || (has(self.ingress.allowInsecureHttp) && self.ingress.allowInsecureHttp)").message("spec.ingress needs spec.tls (a cert-manager Certificate for the host), or spec.ingress.allowInsecureHttp: true to serve plain HTTP on purpose"),
)]
pub struct FootballPredictionSpec {
    /// Release of the API server to run, e.g. `1.4.2`. It is the image tag unless `image.tag` is set.
    #[schemars(length(min = 1, max = 128), pattern(VERSION_PATTERN))]
    pub version: String,

    /// Container image of the API server.
    #[serde(default)]
    pub image: ImageSpec,

    /// Pods of the active color when autoscaling is off.
    #[serde(default = "defaults::replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,

    /// Compute resources of each API pod.
    #[serde(default)]
    pub resources: ResourcesSpec,

    /// HorizontalPodAutoscaler of the active color; when set it owns the replica count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// The in-cluster Service in front of the API pods.
    #[serde(default)]
    pub service: ServiceSpec,

    /// PostgreSQL connection and schema migrations.
    #[serde(default)]
    pub database: DatabaseSpec,

    /// JWT signing keys, token lifetimes, key rotation and the admin password.
    #[serde(default)]
    pub auth: AuthSpec,

    /// Public HTTP routing; no Ingress is created when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// A cert-manager Certificate for the Ingress; plain HTTP when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Blue-green rollout settings.
    #[serde(default)]
    pub rollout: RolloutSpec,

    /// Scheduled database backups and restore drills; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,

    /// PrometheusRule, ServiceMonitor and Grafana dashboards.
    #[serde(default)]
    pub monitoring: MonitoringSpec,

    /// The NetworkPolicy that isolates the API pods.
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,

    /// Webhook notifications about rollouts and backups; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationsSpec>,
}

/// Container image of the API server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// Image repository.
    #[serde(default = "defaults::image_repository")]
    #[schemars(length(min = 1, max = 255), pattern(IMAGE_REPOSITORY_PATTERN))]
    pub repository: String,

    /// Image tag; `spec.version` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), pattern(VERSION_PATTERN))]
    pub tag: Option<String>,

    /// Manifest digest (`sha256:…`) the image of `spec.version` is pinned to: the pods run
    /// `repository@digest`, so a tag pushed again cannot change what runs. Like `tag`, it names
    /// `spec.version`'s image only; a rollback to an older version pulls that version's tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(IMAGE_DIGEST_PATTERN))]
    pub digest: Option<String>,

    /// When the kubelet pulls the image.
    #[serde(default)]
    pub pull_policy: PullPolicy,

    /// Names of Secrets in the namespace used to pull the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))
    )]
    pub pull_secrets: Vec<String>,
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self {
            repository: defaults::image_repository(),
            tag: None,
            digest: None,
            pull_policy: PullPolicy::default(),
            pull_secrets: Vec::new(),
        }
    }
}

/// Image pull policy of the API pods.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The value Kubernetes expects in `imagePullPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Requests and limits of each API pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesSpec {
    /// Guaranteed resources; default cpu 250m, memory 256Mi.
    #[serde(default = "defaults::requests")]
    pub requests: ResourceAmounts,
    /// Upper bounds; default memory 512Mi and no CPU limit (CPU limits throttle latency).
    #[serde(default = "defaults::limits")]
    pub limits: ResourceAmounts,
}

impl Default for ResourcesSpec {
    fn default() -> Self {
        Self {
            requests: defaults::requests(),
            limits: defaults::limits(),
        }
    }
}

/// CPU and memory quantities, e.g. `250m` and `256Mi`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    /// CPU quantity, e.g. `250m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), pattern(QUANTITY_PATTERN))]
    pub cpu: Option<String>,
    /// Memory quantity, e.g. `256Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32), pattern(QUANTITY_PATTERN))]
    pub memory: Option<String>,
}

/// HorizontalPodAutoscaler settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Fewest pods; default 2.
    #[serde(default = "defaults::min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most pods.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU utilisation (percent of requests) the autoscaler aims for; default 70.
    #[serde(
        default = "defaults::target_cpu",
        rename = "targetCPUUtilizationPercentage"
    )]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

/// The in-cluster Service in front of the API pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Port of the Services `<name>` and `<name>-preview`; default 8080. The pods always listen on 8080.
    #[serde(default = "defaults::service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            port: defaults::service_port(),
        }
    }
}

/// A key of a Secret in the FootballPrediction's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253), pattern(SECRET_KEY_PATTERN))]
    pub key: String,
}

/// A whole Secret in the FootballPrediction's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub name: String,
}

/// PostgreSQL connection and schema migrations.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// Secret key holding the PostgreSQL URL (`postgres://…`); default Secret `<name>-database`, key `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
    /// Schema migrations.
    #[serde(default)]
    pub migrations: MigrationsSpec,
}

/// Schema migrations, run by a Job (`fp-api-server migrate`) for each release.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationsSpec {
    /// Run the migration Job; default true.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Seconds a migration may run before it is stopped; default 600.
    #[serde(default = "defaults::migration_deadline")]
    #[schemars(range(min = 30, max = 86400))]
    pub active_deadline_seconds: i64,
}

impl Default for MigrationsSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            active_deadline_seconds: defaults::migration_deadline(),
        }
    }
}

/// JWT signing keys, token lifetimes, key rotation and the admin password.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!self.accessTokenTtl.matches('^([0-9]+(ms|s|m|h))+$') || !self.keyRotation.gracePeriod.matches('^([0-9]+(ms|s|m|h))+$') || !self.keyRotation.publishDelay.matches('^([0-9]+(ms|s|m|h))+$') || duration(self.keyRotation.gracePeriod) > duration(self.accessTokenTtl) + duration(self.keyRotation.publishDelay)").message("spec.auth.keyRotation.gracePeriod must be longer than spec.auth.accessTokenTtl plus keyRotation.publishDelay, or retiring a key logs users out"),
)]
pub struct AuthSpec {
    /// Secret holding the JWT signing keys (one data key per key id `kYYYYMMDDTHHMMSSZ`, values of at
    /// least 32 random bytes). When absent the operator creates `<name>-jwt` and rotates its keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_keys_secret_ref: Option<SecretRef>,
    /// Lifetime of access tokens; default 15m.
    #[serde(default = "defaults::access_ttl")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub access_token_ttl: String,
    /// Lifetime of refresh tokens; default 168h.
    #[serde(default = "defaults::refresh_ttl")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub refresh_token_ttl: String,
    /// Rotation of operator-generated signing keys.
    #[serde(default)]
    pub key_rotation: KeyRotationSpec,
    /// Secret key holding the initial admin password; when absent the operator creates
    /// `<name>-admin` with a random password under key `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password_secret_ref: Option<SecretKeyRef>,
    /// Whether anyone may create an account (a viewer) with `POST /api/v1/auth/register`; when
    /// false only admins add users. Default true; a public production service usually wants false.
    #[serde(default = "defaults::yes")]
    pub allow_registration: bool,
}

impl Default for AuthSpec {
    fn default() -> Self {
        Self {
            signing_keys_secret_ref: None,
            access_token_ttl: defaults::access_ttl(),
            refresh_token_ttl: defaults::refresh_ttl(),
            key_rotation: KeyRotationSpec::default(),
            admin_password_secret_ref: None,
            allow_registration: true,
        }
    }
}

/// Rotation of operator-generated signing keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRotationSpec {
    /// A new signing key is added this long after the newest one; default 720h.
    #[serde(default = "defaults::rotation_interval")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub interval: String,
    /// A key is removed once a newer key has existed this long; default 24h. Must exceed the
    /// access-token lifetime so that no signed-in user is logged out.
    #[serde(default = "defaults::rotation_grace")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub grace_period: String,
    /// A new key (generated, or added to a Secret you provide) verifies at once but signs only
    /// after each API pod has seen it this long, so every replica has loaded it first (Secret
    /// updates reach pods up to about a minute apart); default 2m.
    #[serde(default = "defaults::key_publish_delay")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub publish_delay: String,
}

impl Default for KeyRotationSpec {
    fn default() -> Self {
        Self {
            interval: defaults::rotation_interval(),
            grace_period: defaults::rotation_grace(),
            publish_delay: defaults::key_publish_delay(),
        }
    }
}

/// Public HTTP routing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name the API is served on.
    #[schemars(length(min = 1, max = 253), pattern(HOST_PATTERN))]
    pub host: String,
    /// IngressClass; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub class_name: Option<String>,
    /// Extra annotations for the ingress controller, from an allow-list (docs/operator.md):
    /// body size, timeouts, rate limits, source ranges, Traefik middlewares, external-dns. Keys
    /// that inject controller configuration (ingress-nginx `*-snippet`, …) are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Serve the API over plain HTTP without `spec.tls`. Off by default: tokens and passwords
    /// must not cross networks in clear text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
    /// Addresses or CIDRs of the proxies in front of the API (the ingress controller's pods):
    /// only their `X-Forwarded-For` names the client that rate limits and the login back-off
    /// count. Default: the private ranges; narrow it to the ingress controller's pods, or any
    /// pod the API's NetworkPolicy admits can pose as any client.
    #[serde(default = "defaults::trusted_proxies")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 43)))]
    pub trusted_proxies: Vec<String>,
}

/// A cert-manager Certificate for the Ingress host.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!self.duration.matches('^([0-9]+(ms|s|m|h))+$') || !self.renewBefore.matches('^([0-9]+(ms|s|m|h))+$') || duration(self.renewBefore) < duration(self.duration)").message("spec.tls.renewBefore must be shorter than spec.tls.duration"),
)]
pub struct TlsSpec {
    /// The cert-manager issuer that signs the certificate.
    pub issuer_ref: IssuerRef,
    /// Names the certificate covers; must include `ingress.host`.
    #[schemars(
        length(min = 1, max = 32),
        inner(length(min = 1, max = 253), pattern(HOST_PATTERN))
    )]
    pub dns_names: Vec<String>,
    /// Requested certificate lifetime; default 2160h (90 days).
    #[serde(default = "defaults::cert_duration")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub duration: String,
    /// Renew this long before expiry; default 360h (15 days).
    #[serde(default = "defaults::cert_renew_before")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub renew_before: String,
    /// Secret the certificate is stored in; default `<name>-tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub secret_name: Option<String>,
}

/// A cert-manager Issuer or ClusterIssuer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// Issuer name.
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub name: String,
    /// `Issuer` (namespaced) or `ClusterIssuer`; default Issuer.
    #[serde(default)]
    pub kind: IssuerKind,
    /// API group of the issuer; default `cert-manager.io`.
    #[serde(default = "defaults::issuer_group")]
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub group: String,
}

/// Kind of a cert-manager issuer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum IssuerKind {
    #[default]
    Issuer,
    ClusterIssuer,
}

impl IssuerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issuer => "Issuer",
            Self::ClusterIssuer => "ClusterIssuer",
        }
    }
}

/// Blue-green rollout settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Promote automatically once the preview passes analysis; default true.
    #[serde(default = "defaults::yes")]
    pub auto_promote: bool,
    /// Hold any rollout at its current stage; default false.
    #[serde(default)]
    pub paused: bool,
    /// Pods of the new color during preview and analysis; default 1.
    #[serde(default = "defaults::preview_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub preview_replicas: i32,
    /// Seconds a color may take to become available before the rollout aborts; default 300.
    #[serde(default = "defaults::progress_deadline")]
    #[schemars(range(min = 10, max = 86400))]
    pub progress_deadline_seconds: i32,
    /// Seconds a container of the rollout's pods (the backup and migration Jobs, the new color) may
    /// wait in ErrImagePull, ImagePullBackOff, InvalidImageName, CreateContainerConfigError,
    /// CreateContainerError, RunContainerError or CrashLoopBackOff before the rollout aborts; default 30.
    #[serde(default = "defaults::start_failure_grace")]
    #[schemars(range(min = 0, max = 3600))]
    pub start_failure_grace_seconds: i32,
    /// Keep a failed release's pods at `previewReplicas` after an abort, for debugging; default false (scaled to zero).
    #[serde(default)]
    pub keep_failed_pods: bool,
    /// Seconds the old color keeps running after promotion; default 30.
    #[serde(default = "defaults::scale_down_delay")]
    #[schemars(range(min = 0, max = 86400))]
    pub scale_down_delay_seconds: i32,
    /// Health analysis of the new color before and after promotion.
    #[serde(default)]
    pub analysis: AnalysisSpec,
    /// Analysis after the switch, while the old color still runs.
    #[serde(default)]
    pub post_promotion: PostPromotionSpec,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        Self {
            auto_promote: true,
            paused: false,
            keep_failed_pods: false,
            preview_replicas: defaults::preview_replicas(),
            progress_deadline_seconds: defaults::progress_deadline(),
            start_failure_grace_seconds: defaults::start_failure_grace(),
            scale_down_delay_seconds: defaults::scale_down_delay(),
            analysis: AnalysisSpec::default(),
            post_promotion: PostPromotionSpec::default(),
        }
    }
}

/// Health analysis: every `interval`, each check runs against every ready pod, `count` times.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.failureLimit < self.count").message("spec.rollout.analysis.failureLimit must be less than spec.rollout.analysis.count"),
    validation = Rule::new("self.checks.all(c, self.checks.exists_one(d, d.name == c.name))").message("spec.rollout.analysis.checks names must be unique"),
)]
pub struct AnalysisSpec {
    /// Time between analysis rounds; default 2s.
    #[serde(default = "defaults::analysis_interval")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub interval: String,
    /// Rounds of analysis; default 5.
    #[serde(default = "defaults::analysis_count")]
    #[schemars(range(min = 1, max = 1000))]
    pub count: i32,
    /// Failed rounds tolerated; default 2. Must be less than `count`.
    #[serde(default = "defaults::failure_limit")]
    #[schemars(range(min = 0, max = 1000))]
    pub failure_limit: i32,
    /// Timeout of each probe; default 1s.
    #[serde(default = "defaults::analysis_timeout")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub timeout: String,
    /// HTTP checks; default one check `ready`: `GET /health/ready` expecting 200.
    #[serde(default = "defaults::checks")]
    #[schemars(length(min = 1, max = 16))]
    pub checks: Vec<AnalysisCheck>,
    /// Highest tolerated share of 5xx responses among user requests (the pods' `http_requests_total`, without `/health` and `/metrics`); no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_ratio: Option<f64>,
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        Self {
            interval: defaults::analysis_interval(),
            count: defaults::analysis_count(),
            failure_limit: defaults::failure_limit(),
            timeout: defaults::analysis_timeout(),
            checks: defaults::checks(),
            max_error_ratio: None,
        }
    }
}

/// One named HTTP check against each pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisCheck {
    /// Name shown in status and events.
    #[schemars(length(min = 1, max = 63), pattern(OBJECT_NAME_PATTERN))]
    pub name: String,
    /// The request and the expected answer.
    pub http_get: HttpGetCheck,
}

/// A GET request to the pod's HTTP port and the status it must answer with.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpGetCheck {
    /// Absolute path, e.g. `/health/ready`.
    #[schemars(length(min = 1, max = 1024), pattern(HTTP_PATH_PATTERN))]
    pub path: String,
    /// HTTP status the pod must answer with; default 200.
    #[serde(default = "defaults::expect_status")]
    #[schemars(range(min = 100, max = 599))]
    pub expect_status: i32,
    /// JSON pointer (RFC 6901, e.g. `/status` or `/items/0/id`) that must exist in the JSON body; not checked when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), pattern(r"^/.*$"))]
    pub expect_json_field: Option<String>,
}

/// Analysis after promotion.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostPromotionSpec {
    /// How long the now-active color is analysed; default 60s.
    #[serde(default = "defaults::post_promotion")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub duration: String,
}

impl Default for PostPromotionSpec {
    fn default() -> Self {
        Self {
            duration: defaults::post_promotion(),
        }
    }
}

/// Scheduled database backups and restore drills.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Cron schedule of full backups; default `0 3 * * *` (daily at 03:00).
    #[serde(default = "defaults::backup_schedule")]
    #[schemars(length(min = 1, max = 128), pattern(CRON_PATTERN))]
    pub schedule: String,
    /// Cron schedule of additional, more frequent backups; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), pattern(CRON_PATTERN))]
    pub frequent_schedule: Option<String>,
    /// Time zone of the schedules, e.g. `Europe/London`; the controller manager's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(TIME_ZONE_PATTERN))]
    pub time_zone: Option<String>,
    /// Which backups are kept.
    #[serde(default)]
    pub retention: RetentionSpec,
    /// Where backups are written: a PVC and/or an S3-compatible bucket.
    #[serde(default)]
    pub storage: BackupStorageSpec,
    /// Scheduled restore drills.
    #[serde(default)]
    pub verify: VerifySpec,
    /// Back up before each migration; default true.
    #[serde(default = "defaults::yes")]
    pub before_migration: bool,
    /// Suspend the schedules; default false.
    #[serde(default)]
    pub suspend: bool,
    /// Seconds a backup or drill may run before it is stopped; default 3600.
    #[serde(default = "defaults::backup_deadline")]
    #[schemars(range(min = 60, max = 86400))]
    pub active_deadline_seconds: i64,
}

/// Which backups are kept: those younger than `maxAge`, and never fewer than `keepLast`; the
/// newest successful backup is never removed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// The floor: the newest this many backups are kept however old they are; default 30.
    #[serde(default = "defaults::keep_last")]
    #[schemars(range(min = 1, max = 10000))]
    pub keep_last: i32,
    /// The rule: backups older than this are removed (above the floor); default 720h (30 days).
    #[serde(default = "defaults::max_age")]
    #[schemars(length(max = 32), pattern(DURATION_PATTERN))]
    pub max_age: String,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        Self {
            keep_last: defaults::keep_last(),
            max_age: defaults::max_age(),
        }
    }
}

/// Backup destinations; at least one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.pvc) || has(self.s3)").message("spec.backup.storage needs pvc, s3 or both"))]
pub struct BackupStorageSpec {
    /// A PersistentVolumeClaim; default a 10Gi claim `<name>-backups` created by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc: Option<PvcStorageSpec>,
    /// An S3-compatible bucket (the off-site copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3StorageSpec>,
}

impl Default for BackupStorageSpec {
    fn default() -> Self {
        Self {
            pvc: Some(PvcStorageSpec::default()),
            s3: None,
        }
    }
}

/// A PersistentVolumeClaim for backups.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcStorageSpec {
    /// Use this existing claim instead of creating `<name>-backups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub existing_claim: Option<String>,
    /// Size of the created claim; default 10Gi.
    #[serde(default = "defaults::pvc_size")]
    #[schemars(length(min = 1, max = 32), pattern(QUANTITY_PATTERN))]
    pub size: String,
    /// StorageClass of the created claim; the cluster default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(OBJECT_NAME_PATTERN))]
    pub storage_class_name: Option<String>,
}

impl Default for PvcStorageSpec {
    fn default() -> Self {
        Self {
            existing_claim: None,
            size: defaults::pvc_size(),
            storage_class_name: None,
        }
    }
}

/// An S3-compatible bucket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3StorageSpec {
    /// Endpoint URL, e.g. `https://s3.eu-west-1.amazonaws.com`.
    #[schemars(length(min = 1, max = 2048), pattern(r"^https?://[^\s]+$"))]
    pub endpoint: String,
    /// Bucket name.
    #[schemars(length(min = 3, max = 63), pattern(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"))]
    pub bucket: String,
    /// Key prefix of this platform's backups, e.g. `prod/`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 512))]
    pub prefix: String,
    /// Region; `us-east-1` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region: Option<String>,
    /// Secret with keys `accessKeyId` and `secretAccessKey`.
    pub credentials_secret_ref: SecretRef,
}

/// Scheduled restore drills into a scratch database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifySpec {
    /// Cron schedule of the drill; default `0 5 * * 0` (Sundays at 05:00).
    #[serde(default = "defaults::verify_schedule")]
    #[schemars(length(min = 1, max = 128), pattern(CRON_PATTERN))]
    pub schedule: String,
}

impl Default for VerifySpec {
    fn default() -> Self {
        Self {
            schedule: defaults::verify_schedule(),
        }
    }
}

/// The NetworkPolicy that isolates the API pods: ingress only from the listed namespaces (and the
/// operator's, which probes pods during rollouts); egress only to DNS and the database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create the NetworkPolicy; default true.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Namespaces of the ingress controller; default `ingress-nginx`.
    #[serde(default = "defaults::ingress_namespaces")]
    #[schemars(
        length(max = 16),
        inner(length(min = 1, max = 63), pattern(OBJECT_NAME_PATTERN))
    )]
    pub ingress_namespaces: Vec<String>,
    /// Namespaces of Prometheus; default `monitoring`.
    #[serde(default = "defaults::monitoring_namespaces")]
    #[schemars(
        length(max = 16),
        inner(length(min = 1, max = 63), pattern(OBJECT_NAME_PATTERN))
    )]
    pub monitoring_namespaces: Vec<String>,
    /// Where the database is reached.
    #[serde(default)]
    pub database: DatabaseEgressSpec,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            ingress_namespaces: defaults::ingress_namespaces(),
            monitoring_namespaces: defaults::monitoring_namespaces(),
            database: DatabaseEgressSpec::default(),
        }
    }
}

/// Egress to the database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseEgressSpec {
    /// TCP port of PostgreSQL; default 5432.
    #[serde(default = "defaults::database_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Address blocks of the database; any address when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(length(min = 1, max = 64), pattern(CIDR_PATTERN))
    )]
    pub cidrs: Vec<String>,
}

impl Default for DatabaseEgressSpec {
    fn default() -> Self {
        Self {
            port: defaults::database_port(),
            cidrs: Vec::new(),
        }
    }
}

/// Webhook notifications.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsSpec {
    /// Secret key holding the webhook URL (Slack-compatible JSON is posted to it).
    pub webhook_secret_ref: SecretKeyRef,
    /// Which events are sent; default all.
    #[serde(default = "defaults::notification_events")]
    #[schemars(length(min = 1, max = 16))]
    pub events: Vec<NotificationEvent>,
}

/// Events that can be sent to the webhook.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum NotificationEvent {
    RolloutStarted,
    RolloutSucceeded,
    RolledBack,
    BackupFailed,
    RestoreVerifyFailed,
}

/// Documented defaults, shared by serde, the schema and the reference docs.
pub mod defaults {
    use super::{AnalysisCheck, HttpGetCheck, NotificationEvent, ResourceAmounts};

    pub fn yes() -> bool {
        true
    }
    pub fn replicas() -> i32 {
        2
    }
    pub fn image_repository() -> String {
        super::super::DEFAULT_API_IMAGE.to_owned()
    }
    pub fn requests() -> ResourceAmounts {
        ResourceAmounts {
            cpu: Some("250m".into()),
            memory: Some("256Mi".into()),
        }
    }
    pub fn limits() -> ResourceAmounts {
        ResourceAmounts {
            cpu: None,
            memory: Some("512Mi".into()),
        }
    }
    pub fn min_replicas() -> i32 {
        2
    }
    pub fn target_cpu() -> i32 {
        70
    }
    pub fn service_port() -> i32 {
        8080
    }
    pub fn migration_deadline() -> i64 {
        600
    }
    pub fn access_ttl() -> String {
        "15m".into()
    }
    pub fn refresh_ttl() -> String {
        "168h".into()
    }
    pub fn rotation_interval() -> String {
        "720h".into()
    }
    pub fn rotation_grace() -> String {
        "24h".into()
    }
    /// The API server's own default (`--key-publish-delay`).
    pub fn key_publish_delay() -> String {
        "2m".into()
    }
    pub fn issuer_group() -> String {
        "cert-manager.io".into()
    }
    /// RFC 1918, the carrier-grade NAT range some clusters use for pods, and IPv6 ULA.
    pub fn trusted_proxies() -> Vec<String> {
        [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "fc00::/7",
        ]
        .map(String::from)
        .to_vec()
    }
    pub fn cert_duration() -> String {
        "2160h".into()
    }
    pub fn cert_renew_before() -> String {
        "360h".into()
    }
    pub fn preview_replicas() -> i32 {
        1
    }
    pub fn progress_deadline() -> i32 {
        300
    }
    pub fn scale_down_delay() -> i32 {
        30
    }
    pub fn start_failure_grace() -> i32 {
        30
    }
    pub fn analysis_interval() -> String {
        "2s".into()
    }
    pub fn analysis_count() -> i32 {
        5
    }
    pub fn failure_limit() -> i32 {
        2
    }
    pub fn analysis_timeout() -> String {
        "1s".into()
    }
    pub fn checks() -> Vec<AnalysisCheck> {
        vec![AnalysisCheck {
            name: "ready".into(),
            http_get: HttpGetCheck {
                path: "/health/ready".into(),
                expect_status: 200,
                expect_json_field: None,
            },
        }]
    }
    pub fn expect_status() -> i32 {
        200
    }
    pub fn post_promotion() -> String {
        "60s".into()
    }
    pub fn backup_schedule() -> String {
        "0 3 * * *".into()
    }
    pub fn verify_schedule() -> String {
        "0 5 * * 0".into()
    }
    pub fn keep_last() -> i32 {
        30
    }
    pub fn max_age() -> String {
        "720h".into()
    }
    pub fn pvc_size() -> String {
        "10Gi".into()
    }
    pub fn backup_deadline() -> i64 {
        3600
    }
    pub fn ingress_namespaces() -> Vec<String> {
        vec!["ingress-nginx".into()]
    }
    pub fn monitoring_namespaces() -> Vec<String> {
        vec!["monitoring".into()]
    }
    pub fn database_port() -> i32 {
        5432
    }
    pub fn notification_events() -> Vec<NotificationEvent> {
        vec![
            NotificationEvent::RolloutStarted,
            NotificationEvent::RolloutSucceeded,
            NotificationEvent::RolledBack,
            NotificationEvent::BackupFailed,
            NotificationEvent::RestoreVerifyFailed,
        ]
    }
}
