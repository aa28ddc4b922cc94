//! Validation the API server cannot do, and the resolved inputs every builder needs. Pure: the
//! referenced Secrets are passed in by the caller.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use crate::crd::{FootballPrediction, FootballPredictionSpec, MAX_NAME_LENGTH, SecretKeyRef};
use crate::quantity;

pub mod key_ids;
mod names;

use key_ids::{KEY_BYTES, is_key_id};
pub use names::Names;

/// Operator-wide inputs that are not part of any FootballPrediction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Namespace the operator runs in: API pods accept its probes through the NetworkPolicy.
    pub operator_namespace: Option<String>,
    /// The API image the operator's release pins (`--pinned-api-image`).
    pub pinned_api_image: Option<PinnedImage>,
}

/// An image reference a release pins to its digest: a FootballPrediction that would run exactly
/// `reference` (`repository:tag`) runs `repository@digest`, the image the release was tested
/// with, whatever the tag points at by now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedImage {
    /// `repository:tag`
    pub reference: String,
    /// `sha256:…`
    pub digest: String,
}

impl std::str::FromStr for PinnedImage {
    type Err = String;

    /// `repository:tag@sha256:<64 hex>`, as `cargo xtask dist` writes it into the chart.
    fn from_str(text: &str) -> Result<Self, String> {
        let (reference, digest) = text
            .split_once('@')
            .ok_or_else(|| format!("{text:?} is not repository:tag@sha256:<digest>"))?;
        let tagged = reference
            .rsplit_once(':')
            .is_some_and(|(repository, tag)| !repository.is_empty() && !tag.contains('/'));
        if !tagged {
            return Err(format!(
                "{reference:?} has no tag (repository:tag@sha256:<digest>)"
            ));
        }
        if !is_image_digest(digest) {
            return Err(format!(
                "{digest:?} is not a sha256 digest (sha256:<64 hex digits>)"
            ));
        }
        Ok(Self {
            reference: reference.to_owned(),
            digest: digest.to_owned(),
        })
    }
}

/// `sha256:` and 64 lower-case hex digits (the CRD's `IMAGE_DIGEST_PATTERN`).
fn is_image_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// One problem with a spec, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

impl SpecError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Where the JWT signing keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigningKeys {
    /// The operator creates and rotates this Secret.
    Generated { secret: String },
    /// A Secret the user manages.
    Provided { secret: String },
}

impl SigningKeys {
    pub fn secret(&self) -> &str {
        match self {
            Self::Generated { secret } | Self::Provided { secret } => secret,
        }
    }
}

/// Parsed durations the operator acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durations {
    pub key_rotation_interval: Duration,
    pub key_rotation_grace: Duration,
    pub key_publish_delay: Duration,
    pub analysis_interval: Duration,
    pub analysis_timeout: Duration,
    pub post_promotion: Duration,
}

/// A FootballPrediction that passed validation, with everything the builders need resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Validated {
    pub name: String,
    pub namespace: String,
    pub generation: Option<i64>,
    pub owner: OwnerReference,
    pub spec: FootballPredictionSpec,
    pub names: Names,
    /// Secret key of the database URL (the documented default when the spec names none).
    pub database_url: SecretKeyRef,
    pub signing_keys: SigningKeys,
    /// Secret key of the admin password, and whether the operator generates it.
    pub admin_password: SecretKeyRef,
    pub admin_password_generated: bool,
    pub durations: Durations,
    pub operator_namespace: Option<String>,
    pub pinned_api_image: Option<PinnedImage>,
}

impl Validated {
    /// Image of a release: `repository:tag`, the tag being `image.tag` for the spec's own
    /// version; `repository@digest` when `image.digest` pins the spec's version, or when the
    /// operator's release pins exactly that `repository:tag`.
    pub fn image_for(&self, version: &str) -> String {
        let image = &self.spec.image;
        let own_version = version == self.spec.version;
        let tag = match &image.tag {
            Some(tag) if own_version => tag.as_str(),
            _ => version,
        };
        let reference = format!("{}:{tag}", image.repository);
        let digest = match (&image.digest, &self.pinned_api_image) {
            (Some(digest), _) if own_version => Some(digest),
            (_, Some(pinned)) if pinned.reference == reference => Some(&pinned.digest),
            _ => None,
        };
        match digest {
            Some(digest) => format!("{}@{digest}", image.repository),
            None => reference,
        }
    }
}

/// Checks what the schema cannot and resolves the builders' inputs.
pub fn validate(fp: &FootballPrediction, settings: &Settings) -> Result<Validated, Vec<SpecError>> {
    let mut errors = Vec::new();
    let name = fp.name_any();
    if name.len() > MAX_NAME_LENGTH {
        errors.push(SpecError::new(
            "metadata.name",
            format!(
                "{name:?} is {} characters; at most {MAX_NAME_LENGTH} are allowed",
                name.len()
            ),
        ));
    }
    let namespace = fp.namespace().unwrap_or_default();
    if namespace.is_empty() {
        errors.push(SpecError::new("metadata.namespace", "is empty"));
    }
    let owner = fp.controller_owner_ref(&());
    if owner.is_none() {
        errors.push(SpecError::new(
            "metadata.uid",
            "is empty: the object was not read from the API server",
        ));
    }
    let spec = &fp.spec;

    let e = &mut errors;
    let durations = Durations {
        key_rotation_interval: duration(
            e,
            "spec.auth.keyRotation.interval",
            &spec.auth.key_rotation.interval,
        ),
        key_rotation_grace: duration(
            e,
            "spec.auth.keyRotation.gracePeriod",
            &spec.auth.key_rotation.grace_period,
        ),
        // Zero is allowed: one replica has nobody to wait for.
        key_publish_delay: parse_duration(&spec.auth.key_rotation.publish_delay).unwrap_or_else(
            || {
                e.push(SpecError::new(
                    "spec.auth.keyRotation.publishDelay",
                    format!(
                        "{:?} is not a duration such as 2m or 90s",
                        spec.auth.key_rotation.publish_delay
                    ),
                ));
                Duration::ZERO
            },
        ),
        analysis_interval: duration(
            e,
            "spec.rollout.analysis.interval",
            &spec.rollout.analysis.interval,
        ),
        analysis_timeout: duration(
            e,
            "spec.rollout.analysis.timeout",
            &spec.rollout.analysis.timeout,
        ),
        post_promotion: duration(
            e,
            "spec.rollout.postPromotion.duration",
            &spec.rollout.post_promotion.duration,
        ),
    };
    for (field, text) in [
        (
            "spec.auth.accessTokenTtl",
            spec.auth.access_token_ttl.as_str(),
        ),
        (
            "spec.auth.refreshTokenTtl",
            spec.auth.refresh_token_ttl.as_str(),
        ),
        (
            "spec.monitoring.serviceMonitor.interval",
            spec.monitoring.service_monitor.interval.as_str(),
        ),
    ] {
        duration(&mut errors, field, text);
    }
    // A retired key's last tokens were signed up to the publish delay after its successor
    // appeared; they must expire before it goes (the CRD's CEL rule says the same).
    if let Some(access) = parse_duration(&spec.auth.access_token_ttl)
        && !durations.key_rotation_grace.is_zero()
        && durations.key_rotation_grace <= access + durations.key_publish_delay
    {
        errors.push(SpecError::new(
            "spec.auth.keyRotation.gracePeriod",
            "must be longer than spec.auth.accessTokenTtl plus keyRotation.publishDelay, or \
             retiring a key logs users out",
        ));
    }
    if let Some(backup) = &spec.backup {
        duration(
            &mut errors,
            "spec.backup.retention.maxAge",
            &backup.retention.max_age,
        );
        check_cron(&mut errors, "spec.backup.schedule", &backup.schedule);
        if let Some(frequent) = &backup.frequent_schedule {
            check_cron(&mut errors, "spec.backup.frequentSchedule", frequent);
        }
        check_cron(
            &mut errors,
            "spec.backup.verify.schedule",
            &backup.verify.schedule,
        );
    }
    if let Some(tls) = &spec.tls {
        duration(&mut errors, "spec.tls.duration", &tls.duration);
        duration(&mut errors, "spec.tls.renewBefore", &tls.renew_before);
    }
    if let Some(ingress) = &spec.ingress {
        check_ingress(&mut errors, ingress, spec.tls.is_some());
    }
    check_requests_within_limits(&mut errors, spec);
    check_alerts(&mut errors, &spec.monitoring.prometheus_rule);

    if !errors.is_empty() {
        return Err(errors);
    }
    let names = Names::new(&name);
    let database_url = spec
        .database
        .url_secret_ref
        .clone()
        .unwrap_or_else(|| SecretKeyRef {
            name: names.database_secret(),
            key: "url".into(),
        });
    let signing_keys = match &spec.auth.signing_keys_secret_ref {
        Some(r) => SigningKeys::Provided {
            secret: r.name.clone(),
        },
        None => SigningKeys::Generated {
            secret: names.jwt_secret(),
        },
    };
    let (admin_password, admin_password_generated) = match &spec.auth.admin_password_secret_ref {
        Some(r) => (r.clone(), false),
        None => (
            SecretKeyRef {
                name: names.admin_secret(),
                key: "password".into(),
            },
            true,
        ),
    };
    Ok(Validated {
        name,
        namespace,
        generation: fp.meta().generation,
        owner: owner.unwrap_or_default(),
        spec: spec.clone(),
        names,
        database_url,
        signing_keys,
        admin_password,
        admin_password_generated,
        durations,
        operator_namespace: settings.operator_namespace.clone(),
        pinned_api_image: settings.pinned_api_image.clone(),
    })
}

/// A positive duration, or an error naming the field (and zero, so validation can go on).
fn duration(errors: &mut Vec<SpecError>, field: &str, text: &str) -> Duration {
    match parse_duration(text) {
        Some(d) if !d.is_zero() => d,
        _ => {
            errors.push(SpecError::new(
                field,
                format!("{text:?} is not a positive duration such as 15m or 1h30m"),
            ));
            Duration::ZERO
        }
    }
}

/// Parses a Go-style duration (`15m`, `1h30m`, `500ms`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    text.parse::<kube::core::Duration>().ok().map(Into::into)
}

/// Prometheus label names; `severity` and `alertname` are the rules' own.
fn check_alerts(errors: &mut Vec<SpecError>, rule: &crate::crd::PrometheusRuleSpec) {
    let field = "spec.monitoring.prometheusRule";
    for key in rule.alert_labels.keys() {
        let mut chars = key.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !key.starts_with("__");
        if !valid {
            errors.push(SpecError::new(
                format!("{field}.alertLabels"),
                format!(
                    "{key:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)"
                ),
            ));
        } else if key == "severity" || key == "alertname" {
            errors.push(SpecError::new(
                format!("{field}.alertLabels"),
                format!(
                    "{key:?} is set by each alert; change a severity with overrides[].severity"
                ),
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for o in &rule.overrides {
        if !seen.insert(o.alert) {
            errors.push(SpecError::new(
                format!("{field}.overrides"),
                format!("{} is listed more than once", o.alert.name()),
            ));
        }
    }
}

/// Ingress annotations a FootballPrediction may set: tuning and routing of its own traffic.
/// Anything else (ingress-nginx `*-snippet` keys inject controller configuration, auth and
/// rewrite keys change who reaches what) is refused, so the right to create a FootballPrediction
/// is not the right to configure the cluster's ingress controller.
pub const ALLOWED_INGRESS_ANNOTATIONS: &[&str] = &[
    "nginx.ingress.kubernetes.io/proxy-body-size",
    "nginx.ingress.kubernetes.io/proxy-connect-timeout",
    "nginx.ingress.kubernetes.io/proxy-read-timeout",
    "nginx.ingress.kubernetes.io/proxy-send-timeout",
    "nginx.ingress.kubernetes.io/proxy-buffer-size",
    "nginx.ingress.kubernetes.io/limit-rps",
    "nginx.ingress.kubernetes.io/limit-rpm",
    "nginx.ingress.kubernetes.io/limit-connections",
    "nginx.ingress.kubernetes.io/whitelist-source-range",
    "nginx.ingress.kubernetes.io/denylist-source-range",
    "traefik.ingress.kubernetes.io/router.middlewares",
    "traefik.ingress.kubernetes.io/router.entrypoints",
    "external-dns.alpha.kubernetes.io/hostname",
    "external-dns.alpha.kubernetes.io/ttl",
];

fn check_ingress(errors: &mut Vec<SpecError>, ingress: &crate::crd::IngressSpec, tls: bool) {
    if !tls && !ingress.allow_insecure_http {
        errors.push(SpecError::new(
            "spec.ingress.allowInsecureHttp",
            "an Ingress without spec.tls serves tokens and passwords in clear text: set spec.tls, \
             or allowInsecureHttp: true to do so on purpose",
        ));
    }
    for (i, proxy) in ingress.trusted_proxies.iter().enumerate() {
        let parsed =
            proxy.parse::<ipnet::IpNet>().is_ok() || proxy.parse::<std::net::IpAddr>().is_ok();
        if !parsed {
            errors.push(SpecError::new(
                format!("spec.ingress.trustedProxies[{i}]"),
                format!("{proxy:?} is neither an address nor a CIDR such as 10.0.0.0/8"),
            ));
        }
    }
    for key in ingress.annotations.keys() {
        if !ALLOWED_INGRESS_ANNOTATIONS.contains(&key.as_str()) {
            errors.push(SpecError::new(
                format!("spec.ingress.annotations[{key:?}]"),
                "is not on the allow-list of Ingress annotations (docs/operator.md#ingress)",
            ));
        }
    }
}

fn check_cron(errors: &mut Vec<SpecError>, field: &str, schedule: &str) {
    if let Err(e) = schedule.parse::<croner::Cron>() {
        errors.push(SpecError::new(
            field,
            format!("{schedule:?} is not a valid cron schedule: {e}"),
        ));
    }
}

fn check_requests_within_limits(errors: &mut Vec<SpecError>, spec: &FootballPredictionSpec) {
    let (requests, limits) = (&spec.resources.requests, &spec.resources.limits);
    for (resource, request, limit) in [
        ("cpu", &requests.cpu, &limits.cpu),
        ("memory", &requests.memory, &limits.memory),
    ] {
        if let (Some(request), Some(limit)) = (request, limit)
            && let (Some(r), Some(l)) = (quantity::parse(request), quantity::parse(limit))
            && r > l
        {
            errors.push(SpecError::new(
                format!("spec.resources.requests.{resource}"),
                format!("{request} exceeds spec.resources.limits.{resource} ({limit})"),
            ));
        }
    }
}

/// What a referenced Secret must contain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretNeed {
    /// These data keys.
    Keys(Vec<String>),
    /// At least one signing key: a data key `kYYYYMMDDTHHMMSSZ` of at least 32 bytes.
    SigningKey,
}

/// A Secret the platform cannot run without, and the spec field that names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRequirement {
    pub field: String,
    pub secret: String,
    pub need: SecretNeed,
}

/// Names of the user's Secrets the API pods read: the database URL's, and the signing keys' and
/// admin password's when the spec names them (generated ones are the operator's own).
pub fn pod_secret_names(spec: &FootballPredictionSpec, names: &Names) -> Vec<String> {
    let mut out = vec![
        spec.database
            .url_secret_ref
            .as_ref()
            .map_or_else(|| names.database_secret(), |r| r.name.clone()),
    ];
    out.extend(
        spec.auth
            .signing_keys_secret_ref
            .iter()
            .map(|r| r.name.clone()),
    );
    out.extend(
        spec.auth
            .admin_password_secret_ref
            .iter()
            .map(|r| r.name.clone()),
    );
    out.sort();
    out.dedup();
    out
}

/// The user-managed Secrets this FootballPrediction references (generated ones are not listed).
pub fn secret_requirements(v: &Validated) -> Vec<SecretRequirement> {
    let spec = &v.spec;
    let database_field = if spec.database.url_secret_ref.is_some() {
        "spec.database.urlSecretRef".to_owned()
    } else {
        "spec.database.urlSecretRef (default)".to_owned()
    };
    let mut needs = vec![SecretRequirement {
        field: database_field,
        secret: v.database_url.name.clone(),
        need: SecretNeed::Keys(vec![v.database_url.key.clone()]),
    }];
    if let SigningKeys::Provided { secret } = &v.signing_keys {
        needs.push(SecretRequirement {
            field: "spec.auth.signingKeysSecretRef".into(),
            secret: secret.clone(),
            need: SecretNeed::SigningKey,
        });
    }
    if !v.admin_password_generated {
        needs.push(SecretRequirement {
            field: "spec.auth.adminPasswordSecretRef".into(),
            secret: v.admin_password.name.clone(),
            need: SecretNeed::Keys(vec![v.admin_password.key.clone()]),
        });
    }
    if let Some(s3) = spec.backup.as_ref().and_then(|b| b.storage.s3.as_ref()) {
        needs.push(SecretRequirement {
            field: "spec.backup.storage.s3.credentialsSecretRef".into(),
            secret: s3.credentials_secret_ref.name.clone(),
            need: SecretNeed::Keys(vec!["accessKeyId".into(), "secretAccessKey".into()]),
        });
    }
    if let Some(notifications) = &spec.notifications {
        needs.push(SecretRequirement {
            field: "spec.notifications.webhookSecretRef".into(),
            secret: notifications.webhook_secret_ref.name.clone(),
            need: SecretNeed::Keys(vec![notifications.webhook_secret_ref.key.clone()]),
        });
    }
    needs
}

/// Checks the fetched Secrets (`None` = not found) against the requirements; never reads values
/// beyond their length, and never puts one into a message.
pub fn check_secrets(
    namespace: &str,
    requirements: &[SecretRequirement],
    found: &BTreeMap<String, Option<Secret>>,
) -> Vec<SpecError> {
    let mut errors = Vec::new();
    for req in requirements {
        let Some(Some(secret)) = found.get(&req.secret) else {
            errors.push(SpecError::new(
                &req.field,
                format!("Secret {} not found in namespace {namespace}", req.secret),
            ));
            continue;
        };
        let data = secret_data_lengths(secret);
        match &req.need {
            SecretNeed::Keys(keys) => {
                let missing: Vec<&str> = keys
                    .iter()
                    .filter(|k| data.get(k.as_str()).is_none_or(|len| *len == 0))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    errors.push(SpecError::new(
                        &req.field,
                        format!(
                            "Secret {} has no non-empty key {}",
                            req.secret,
                            missing.join(", ")
                        ),
                    ));
                }
            }
            SecretNeed::SigningKey => {
                if !data
                    .iter()
                    .any(|(k, len)| is_key_id(k) && *len >= KEY_BYTES)
                {
                    errors.push(SpecError::new(
                        &req.field,
                        format!(
                            "Secret {} holds no signing key (a data key named kYYYYMMDDTHHMMSSZ with at least 32 bytes)",
                            req.secret
                        ),
                    ));
                }
            }
        }
    }
    errors
}

fn secret_data_lengths(secret: &Secret) -> BTreeMap<&str, usize> {
    let mut lengths: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        lengths.insert(k, v.0.len());
    }
    for (k, v) in secret.string_data.iter().flatten() {
        lengths.insert(k, v.len());
    }
    lengths
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::BackupSpec;
    use crate::test_support::{fp_from, validated};
    use k8s_openapi::ByteString;
    use pretty_assertions::assert_eq;

    fn errors(fp: &FootballPrediction) -> Vec<String> {
        validate(fp, &Settings::default())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn secret(pairs: &[(&str, &[u8])]) -> Option<Secret> {
        let data = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec())))
            .collect();
        Some(Secret {
            data: Some(data),
            ..Secret::default()
        })
    }

    #[test]
    fn resolves_defaults_for_references_and_images() {
        let v = validated(serde_json::json!({"version": "1.4.2"}));
        assert_eq!(
            v.database_url,
            SecretKeyRef {
                name: "prod-database".into(),
                key: "url".into()
            }
        );
        assert_eq!(
            v.signing_keys,
            SigningKeys::Generated {
                secret: "prod-jwt".into()
            }
        );
        assert_eq!(
            v.admin_password,
            SecretKeyRef {
                name: "prod-admin".into(),
                key: "password".into()
            }
        );
        assert!(v.admin_password_generated);
        assert_eq!(
            v.image_for("1.4.2"),
            "footballprediction/fp-api-server:1.4.2"
        );
        assert_eq!(v.owner.kind, "FootballPrediction");
        assert_eq!(v.owner.controller, Some(true));
        assert_eq!(
            v.durations.key_rotation_interval,
            Duration::from_secs(720 * 3600)
        );
    }

    #[test]
    fn image_tag_overrides_only_the_spec_version() {
        let v = validated(
            serde_json::json!({"version": "1.4.2", "image": {"repository": "r.example/fp", "tag": "1.4.2-hotfix"}}),
        );
        assert_eq!(v.image_for("1.4.2"), "r.example/fp:1.4.2-hotfix");
        assert_eq!(v.image_for("1.4.1"), "r.example/fp:1.4.1");
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_digest_pins_only_the_spec_version() {
        let v = validated(serde_json::json!({"version": "1.4.2",
            "image": {"repository": "r.example/fp", "tag": "1.4.2-hotfix", "digest": DIGEST}}));
        assert_eq!(v.image_for("1.4.2"), format!("r.example/fp@{DIGEST}"));
        assert_eq!(v.image_for("1.4.1"), "r.example/fp:1.4.1");
    }

    #[test]
    fn the_release_pin_applies_to_exactly_its_reference() {
        let other = DIGEST.replace('0', "f");
        let settings = Settings {
            pinned_api_image: Some(
                format!("footballprediction/fp-api-server:1.4.2@{DIGEST}")
                    .parse()
                    .unwrap(),
            ),
            ..Settings::default()
        };
        let with = |spec: serde_json::Value| validate(&fp_from(spec), &settings).unwrap();
        // The default repository at the pinned tag: by digest, also as a rollback target.
        let v = with(serde_json::json!({"version": "1.4.2"}));
        assert_eq!(
            v.image_for("1.4.2"),
            format!("footballprediction/fp-api-server@{DIGEST}")
        );
        assert_eq!(
            v.image_for("1.4.1"),
            "footballprediction/fp-api-server:1.4.1"
        );
        let v = with(serde_json::json!({"version": "1.4.3"}));
        assert_eq!(
            v.image_for("1.4.2"),
            format!("footballprediction/fp-api-server@{DIGEST}")
        );
        assert_eq!(
            v.image_for("1.4.3"),
            "footballprediction/fp-api-server:1.4.3"
        );
        // Another repository or tag: not what the release tested.
        let v =
            with(serde_json::json!({"version": "1.4.2", "image": {"repository": "r.example/fp"}}));
        assert_eq!(v.image_for("1.4.2"), "r.example/fp:1.4.2");
        let v = with(serde_json::json!({"version": "1.4.2", "image": {"tag": "1.4.2-hotfix"}}));
        assert_eq!(
            v.image_for("1.4.2"),
            "footballprediction/fp-api-server:1.4.2-hotfix"
        );
        // The spec's own digest wins.
        let v = with(serde_json::json!({"version": "1.4.2", "image": {"digest": other}}));
        assert_eq!(
            v.image_for("1.4.2"),
            format!("footballprediction/fp-api-server@{other}")
        );
    }

    #[test]
    fn pinned_images_parse_strictly() {
        let pinned: PinnedImage = format!("registry.local:5000/fp/api:0.1.0@{DIGEST}")
            .parse()
            .unwrap();
        assert_eq!(pinned.reference, "registry.local:5000/fp/api:0.1.0");
        assert_eq!(pinned.digest, DIGEST);
        for bad in [
            "footballprediction/fp-api-server:0.1.0".to_owned(),
            format!("footballprediction/fp-api-server@{DIGEST}"),
            format!("registry.local:5000/fp/api@{DIGEST}"),
            "footballprediction/fp-api-server:0.1.0@sha256:abc".to_owned(),
            format!(
                "footballprediction/fp-api-server:0.1.0@{}",
                DIGEST.to_uppercase()
            ),
        ] {
            assert!(bad.parse::<PinnedImage>().is_err(), "{bad}");
        }
    }

    #[test]
    fn alert_labels_and_overrides_are_checked() {
        let fp = fp_from(
            serde_json::json!({"version": "1", "monitoring": {"prometheusRule": {
            "alertLabels": {"team": "payments", "severity": "low", "9lives": "x"},
            "overrides": [
                {"alert": "FootballPredictionDown", "for": "1m"},
                {"alert": "FootballPredictionDown", "enabled": false}]}}}),
        );
        assert_eq!(
            errors(&fp),
            [
                "spec.monitoring.prometheusRule.alertLabels: \"9lives\" is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)",
                "spec.monitoring.prometheusRule.alertLabels: \"severity\" is set by each alert; change a severity with overrides[].severity",
                "spec.monitoring.prometheusRule.overrides: FootballPredictionDown is listed more than once",
            ]
        );
    }

    #[test]
    fn an_ingress_needs_tls_or_an_explicit_opt_out_and_allowed_annotations() {
        let plain = fp_from(serde_json::json!({"version": "1", "ingress": {"host": "a.example"}}));
        assert_eq!(
            errors(&plain),
            [
                "spec.ingress.allowInsecureHttp: an Ingress without spec.tls serves tokens and \
              passwords in clear text: set spec.tls, or allowInsecureHttp: true to do so on purpose"
            ]
        );
        let snippet = fp_from(serde_json::json!({"version": "1", "ingress": {
            "host": "a.example", "allowInsecureHttp": true, "annotations": {
                "nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers \"X: y\";",
                "nginx.ingress.kubernetes.io/proxy-body-size": "8m"}}}));
        assert_eq!(
            errors(&snippet),
            [
                "spec.ingress.annotations[\"nginx.ingress.kubernetes.io/configuration-snippet\"]: \
              is not on the allow-list of Ingress annotations (docs/operator.md#ingress)"
            ]
        );
        let tls = fp_from(
            serde_json::json!({"version": "1", "ingress": {"host": "a.example"},
            "tls": {"issuerRef": {"name": "le"}, "dnsNames": ["a.example"]}}),
        );
        assert!(validate(&tls, &Settings::default()).is_ok());
        let proxies = fp_from(serde_json::json!({"version": "1", "ingress": {
            "host": "a.example", "allowInsecureHttp": true,
            "trustedProxies": ["10.244.0.0/16", "192.0.2.7", "ingress-nginx"]}}));
        assert_eq!(
            errors(&proxies),
            [
                "spec.ingress.trustedProxies[2]: \"ingress-nginx\" is neither an address nor a \
              CIDR such as 10.0.0.0/8"
            ]
        );
    }

    #[test]
    fn the_grace_period_outlasts_the_access_tokens_signed_before_publication() {
        let spec = |grace: &str, delay: &str| {
            fp_from(
                serde_json::json!({"version": "1", "auth": {"accessTokenTtl": "15m",
                "keyRotation": {"gracePeriod": grace, "publishDelay": delay}}}),
            )
        };
        assert!(validate(&spec("18m", "2m"), &Settings::default()).is_ok());
        assert!(validate(&spec("16m", "0s"), &Settings::default()).is_ok());
        assert_eq!(
            errors(&spec("16m", "2m")),
            [
                "spec.auth.keyRotation.gracePeriod: must be longer than spec.auth.accessTokenTtl \
              plus keyRotation.publishDelay, or retiring a key logs users out"
            ]
        );
        assert_eq!(
            errors(&spec("24h", "soon")),
            ["spec.auth.keyRotation.publishDelay: \"soon\" is not a duration such as 2m or 90s"]
        );
    }

    #[test]
    fn invalid_cron_schedules_name_the_field() {
        let mut fp = fp_from(serde_json::json!({"version": "1"}));
        let mut backup: BackupSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        backup.schedule = "61 * * * *".into();
        backup.frequent_schedule = Some("0 */6 * * *".into());
        fp.spec.backup = Some(backup);
        let messages = errors(&fp);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0]
                .starts_with("spec.backup.schedule: \"61 * * * *\" is not a valid cron schedule: "),
            "{messages:?}"
        );
    }

    #[test]
    fn zero_or_unparsable_durations_name_the_field() {
        let mut fp = fp_from(serde_json::json!({"version": "1"}));
        fp.spec.rollout.analysis.interval = "0s".into();
        fp.spec.auth.access_token_ttl = "soon".into();
        assert_eq!(
            errors(&fp),
            [
                "spec.rollout.analysis.interval: \"0s\" is not a positive duration such as 15m or 1h30m",
                "spec.auth.accessTokenTtl: \"soon\" is not a positive duration such as 15m or 1h30m",
            ]
        );
    }

    #[test]
    fn requests_above_limits_are_refused() {
        let fp = fp_from(serde_json::json!({"version": "1", "resources": {
            "requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "1500m", "memory": "512Mi"}}}));
        assert_eq!(
            errors(&fp),
            [
                "spec.resources.requests.cpu: 2 exceeds spec.resources.limits.cpu (1500m)",
                "spec.resources.requests.memory: 1Gi exceeds spec.resources.limits.memory (512Mi)",
            ]
        );
    }

    #[test]
    fn objects_not_read_from_the_api_server_are_refused() {
        let mut fp = fp_from(serde_json::json!({"version": "1"}));
        fp.metadata.uid = None;
        fp.metadata.namespace = None;
        assert_eq!(
            errors(&fp),
            [
                "metadata.namespace: is empty",
                "metadata.uid: is empty: the object was not read from the API server",
            ]
        );
    }

    #[test]
    fn overlong_names_are_refused_even_if_the_installed_crd_is_older() {
        let mut fp = fp_from(serde_json::json!({"version": "1"}));
        fp.metadata.name = Some("a".repeat(40));
        assert_eq!(
            errors(&fp),
            [format!(
                "metadata.name: \"{}\" is 40 characters; at most 36 are allowed",
                "a".repeat(40)
            )]
        );
    }

    #[test]
    fn lists_every_referenced_secret() {
        let v = validated(serde_json::json!({
            "version": "1",
            "auth": {"signingKeysSecretRef": {"name": "keys"}, "adminPasswordSecretRef": {"name": "adm", "key": "pw"}},
            "backup": {"storage": {"s3": {"endpoint": "http://127.0.0.1:9000", "bucket": "fpb", "credentialsSecretRef": {"name": "s3"}}}},
            "notifications": {"webhookSecretRef": {"name": "hook", "key": "url"}}
        }));
        let requirements = secret_requirements(&v);
        let secrets: Vec<(&str, &str)> = requirements
            .iter()
            .map(|r| (r.field.as_str(), r.secret.as_str()))
            .collect();
        assert_eq!(
            secrets,
            [
                ("spec.database.urlSecretRef (default)", "prod-database"),
                ("spec.auth.signingKeysSecretRef", "keys"),
                ("spec.auth.adminPasswordSecretRef", "adm"),
                ("spec.backup.storage.s3.credentialsSecretRef", "s3"),
                ("spec.notifications.webhookSecretRef", "hook"),
            ]
        );
    }

    #[test]
    fn missing_secrets_keys_and_signing_keys_are_reported_per_field() {
        let v = validated(serde_json::json!({
            "version": "1",
            "database": {"urlSecretRef": {"name": "db", "key": "url"}},
            "auth": {"signingKeysSecretRef": {"name": "keys"}, "adminPasswordSecretRef": {"name": "adm", "key": "pw"}}
        }));
        let requirements = secret_requirements(&v);
        let mut found = BTreeMap::new();
        found.insert("db".to_owned(), secret(&[("uri", b"postgres://x")]));
        found.insert(
            "keys".to_owned(),
            secret(&[("k20260101T000000Z", b"too-short"), ("main", &[7u8; 32])]),
        );
        found.insert("adm".to_owned(), None);
        let messages: Vec<String> = check_secrets("football", &requirements, &found)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            messages,
            [
                "spec.database.urlSecretRef: Secret db has no non-empty key url",
                "spec.auth.signingKeysSecretRef: Secret keys holds no signing key (a data key named kYYYYMMDDTHHMMSSZ with at least 32 bytes)",
                "spec.auth.adminPasswordSecretRef: Secret adm not found in namespace football",
            ]
        );
        found.insert("db".to_owned(), secret(&[("url", b"postgres://x")]));
        found.insert(
            "keys".to_owned(),
            secret(&[("k20260101T000000Z", &[1u8; 32])]),
        );
        found.insert("adm".to_owned(), secret(&[("pw", b"secret")]));
        assert!(check_secrets("football", &requirements, &found).is_empty());
    }
}
