//! Admission tests: every spec rule with an invalid fixture and the exact message, plus the drift
//! checks of crds/ and docs/crd-reference.md.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::admission::admit;
use super::*;

fn workspace_file(relative: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn minimal() -> Value {
    json!({
        "apiVersion": "footballprediction.io/v1alpha1",
        "kind": "FootballPrediction",
        "metadata": {"name": "prod", "namespace": "football"},
        "spec": {"version": "1.4.2"}
    })
}

fn full() -> Value {
    json!({
        "apiVersion": "footballprediction.io/v1alpha1",
        "kind": "FootballPrediction",
        "metadata": {"name": "prod", "namespace": "football"},
        "spec": {
            "version": "1.4.2",
            "image": {"repository": "registry.example:5000/fp-api-server", "pullPolicy": "Always", "pullSecrets": ["regcred"]},
            "replicas": 3,
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            "autoscaling": {"minReplicas": 3, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70},
            "service": {"port": 80},
            "database": {"urlSecretRef": {"name": "fp-database", "key": "url"}, "migrations": {"enabled": true}},
            "auth": {
                "signingKeysSecretRef": {"name": "fp-jwt"},
                "accessTokenTtl": "15m", "refreshTokenTtl": "168h",
                "keyRotation": {"interval": "720h", "gracePeriod": "24h"},
                "adminPasswordSecretRef": {"name": "fp-admin", "key": "password"}
            },
            "ingress": {"host": "api.football.example", "className": "nginx", "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}},
            "tls": {"issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}, "dnsNames": ["api.football.example"], "duration": "2160h", "renewBefore": "360h"},
            "rollout": {
                "autoPromote": true, "paused": false, "previewReplicas": 1,
                "progressDeadlineSeconds": 300, "scaleDownDelaySeconds": 30,
                "analysis": {
                    "interval": "2s", "count": 5, "failureLimit": 2, "timeout": "1s",
                    "checks": [
                        {"name": "ready", "httpGet": {"path": "/health/ready", "expectStatus": 200}},
                        {"name": "predictions-answer", "httpGet": {"path": "/api/v1/leagues", "expectStatus": 401}}
                    ],
                    "maxErrorRatio": 0.05
                },
                "postPromotion": {"duration": "60s"}
            },
            "backup": {
                "schedule": "0 3 * * *", "frequentSchedule": "0 */6 * * *", "timeZone": "Europe/London",
                "retention": {"keepLast": 30, "maxAge": "720h"},
                "storage": {
                    "pvc": {"size": "20Gi", "storageClassName": "standard"},
                    "s3": {"endpoint": "https://s3.example", "bucket": "fp-backups", "prefix": "prod/", "credentialsSecretRef": {"name": "fp-s3"}}
                },
                "verify": {"schedule": "0 5 * * 0"}, "beforeMigration": true, "suspend": false
            },
            "monitoring": {
                "prometheusRule": {"enabled": true, "labels": {"release": "kube-prometheus-stack"}, "thresholds": {"errorRatio": 0.05, "p95LatencySeconds": 0.2}},
                "serviceMonitor": {"enabled": true},
                "dashboards": {"enabled": true}
            },
            "networkPolicy": {"ingressNamespaces": ["ingress-nginx"], "monitoringNamespaces": ["monitoring"], "database": {"port": 5432, "cidrs": ["10.0.0.0/8"]}},
            "notifications": {"webhookSecretRef": {"name": "fp-slack", "key": "url"}, "events": ["RolloutStarted", "RolledBack"]}
        }
    })
}

/// Sets the value at a JSON pointer, creating objects on the way; `Value::Null` removes the field.
fn with(mut doc: Value, pointer: &str, value: Value) -> Value {
    let mut parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let last = parts.pop().unwrap_or_default();
    let mut node = &mut doc;
    for part in parts {
        node = node
            .as_object_mut()
            .expect("pointer walks objects")
            .entry(part.to_owned())
            .or_insert_with(|| json!({}));
    }
    let map = node.as_object_mut().expect("parent is an object");
    if value.is_null() {
        map.remove(last);
    } else {
        map.insert(last.to_owned(), value);
    }
    doc
}

fn rejected(doc: Value) -> Vec<String> {
    match admit(&doc) {
        Ok(_) => panic!("admitted an invalid manifest: {doc}"),
        Err(messages) => messages,
    }
}

#[test]
fn crds_directory_matches_crdgen_output() {
    let generated = crd_yaml().expect("CRD renders");
    let committed = workspace_file("crds/footballprediction.yaml");
    assert!(
        committed == generated,
        "crds/footballprediction.yaml is stale: run `cargo run -p fp-operator --bin crdgen > crds/footballprediction.yaml`"
    );
}

#[test]
fn helm_chart_ships_the_same_crd() {
    let generated = crd_yaml().expect("CRD renders");
    let chart = workspace_file("charts/fp-operator/crds/footballprediction.yaml");
    assert!(
        chart == generated,
        "charts/fp-operator/crds/footballprediction.yaml is stale: copy crds/footballprediction.yaml there"
    );
}

#[test]
fn crd_reference_doc_matches_the_types() {
    let committed = workspace_file("docs/crd-reference.md");
    assert!(
        committed == render_reference(),
        "docs/crd-reference.md is stale: run `cargo run -p fp-operator --bin crdgen -- --reference > docs/crd-reference.md`"
    );
}

#[test]
fn crd_names_columns_and_subresources() {
    use kube::CustomResourceExt;
    let crd = FootballPrediction::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some(CRD_NAME));
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["fp".to_owned()]));
    let version = &crd.spec.versions[0];
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Version",
            "Active",
            "Ready",
            "Phase",
            "Stage",
            "Target",
            "Last Backup",
            "Age"
        ]
    );
    let yaml = crd_yaml().expect("CRD renders");
    assert!(
        !yaml.contains("x-kubernetes-preserve-unknown-fields"),
        "the schema must stay fully structural"
    );
}

#[test]
fn minimal_manifest_is_admitted_with_documented_defaults() {
    let fp = admit(&minimal()).expect("minimal manifest is valid");
    let spec = &fp.spec;
    assert_eq!(spec.replicas, 2);
    assert_eq!(spec.image.repository, DEFAULT_API_IMAGE);
    assert_eq!(spec.image.pull_policy, PullPolicy::IfNotPresent);
    assert_eq!(spec.service.port, 8080);
    assert!(spec.database.migrations.enabled);
    assert_eq!(spec.auth.access_token_ttl, "15m");
    assert_eq!(spec.auth.key_rotation.grace_period, "24h");
    assert_eq!(
        spec.rollout.analysis.checks[0].http_get.path,
        "/health/ready"
    );
    assert_eq!(spec.rollout.analysis.count, 5);
    assert!(spec.monitoring.prometheus_rule.enabled);
    assert!(spec.ingress.is_none() && spec.tls.is_none() && spec.backup.is_none());
}

#[test]
fn full_manifest_from_the_sketch_is_admitted() {
    let fp = admit(&full()).expect("full manifest is valid");
    assert_eq!(
        fp.spec
            .autoscaling
            .as_ref()
            .map(|a| a.target_cpu_utilization_percentage),
        Some(70)
    );
    assert_eq!(
        fp.spec.tls.as_ref().map(|t| t.issuer_ref.kind),
        Some(IssuerKind::ClusterIssuer)
    );
    assert_eq!(
        fp.spec.backup.as_ref().map(|b| b.retention.keep_last),
        Some(30)
    );
}

#[test]
fn sample_manifests_in_docs_are_admitted() {
    for sample in [
        "docs/samples/footballprediction.yaml",
        "docs/samples/local.yaml",
    ] {
        let text = workspace_file(sample);
        let mut count = 0;
        for document in serde_norway::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(document).expect("sample is YAML");
            if value.get("kind").and_then(Value::as_str) != Some("FootballPrediction") {
                continue;
            }
            admit(&value).unwrap_or_else(|e| panic!("{sample} refused: {e:?}"));
            count += 1;
        }
        assert!(count >= 1, "{sample} holds no FootballPrediction");
    }
}

#[test]
fn unknown_fields_are_refused() {
    assert_eq!(
        rejected(with(minimal(), "/spec/replica", json!(3))),
        ["unknown field \"spec.replica\""]
    );
    assert_eq!(
        rejected(with(full(), "/spec/backup/storage/pvc/sizeGi", json!(20))),
        ["unknown field \"spec.backup.storage.pvc.sizeGi\""]
    );
    assert_eq!(
        rejected(with(minimal(), "/status/colour", json!("blue"))),
        ["unknown field \"status.colour\""]
    );
}

#[test]
fn required_fields_are_refused_when_missing() {
    assert_eq!(
        rejected(with(minimal(), "/spec/version", Value::Null)),
        ["spec.version: Required value"]
    );
    assert_eq!(
        rejected(with(full(), "/spec/autoscaling/maxReplicas", Value::Null)),
        ["spec.autoscaling.maxReplicas: Required value"]
    );
    assert_eq!(
        rejected(with(full(), "/spec/tls/dnsNames", Value::Null)),
        ["spec.tls.dnsNames: Required value"]
    );
    assert_eq!(
        rejected(with(
            full(),
            "/spec/backup/storage/s3/credentialsSecretRef",
            Value::Null
        )),
        ["spec.backup.storage.s3.credentialsSecretRef: Required value"]
    );
}

/// (JSON pointer, invalid value, the exact messages).
type Case = (&'static str, Value, Vec<String>);

fn field_cases() -> Vec<Case> {
    let pattern = |path: &str, value: &str, pattern: &str| {
        vec![format!(
            "{path}: Invalid value: \"{value}\": {path} in body should match '{pattern}'"
        )]
    };
    vec![
        ("/spec/version", json!("1.4 beta"), pattern("spec.version", "1.4 beta", VERSION_PATTERN)),
        ("/spec/version", json!(""), vec![
            "spec.version: Invalid value: \"\": spec.version in body should be at least 1 chars long".into(),
            format!("spec.version: Invalid value: \"\": spec.version in body should match '{VERSION_PATTERN}'"),
        ]),
        ("/spec/version", json!(142), vec![
            "spec.version: Invalid value: \"integer\": spec.version in body must be of type string: \"integer\"".into(),
        ]),
        ("/spec/image/repository", json!("Registry/FP"), pattern("spec.image.repository", "Registry/FP", IMAGE_REPOSITORY_PATTERN)),
        ("/spec/image/pullPolicy", json!("Sometimes"), vec![
            "spec.image.pullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"".into(),
        ]),
        ("/spec/replicas", json!(0), vec![
            "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1".into(),
        ]),
        ("/spec/replicas", json!(1001), vec![
            "spec.replicas: Invalid value: 1001: spec.replicas in body should be less than or equal to 1000".into(),
        ]),
        ("/spec/resources/requests/memory", json!("lots"), pattern("spec.resources.requests.memory", "lots", QUANTITY_PATTERN)),
        ("/spec/autoscaling/targetCPUUtilizationPercentage", json!(101), vec![
            "spec.autoscaling.targetCPUUtilizationPercentage: Invalid value: 101: spec.autoscaling.targetCPUUtilizationPercentage in body should be less than or equal to 100".into(),
        ]),
        ("/spec/service/port", json!(70000), vec![
            "spec.service.port: Invalid value: 70000: spec.service.port in body should be less than or equal to 65535".into(),
        ]),
        ("/spec/service/port", json!(0), vec![
            "spec.service.port: Invalid value: 0: spec.service.port in body should be greater than or equal to 1".into(),
        ]),
        ("/spec/networkPolicy/database/port", json!(0), vec![
            "spec.networkPolicy.database.port: Invalid value: 0: spec.networkPolicy.database.port in body should be greater than or equal to 1".into(),
        ]),
        ("/spec/networkPolicy/database/cidrs", json!(["10.0.0.0"]), pattern("spec.networkPolicy.database.cidrs[0]", "10.0.0.0", CIDR_PATTERN)),
        ("/spec/database/urlSecretRef/key", json!("url?"), pattern("spec.database.urlSecretRef.key", "url?", SECRET_KEY_PATTERN)),
        ("/spec/auth/accessTokenTtl", json!("15 minutes"), pattern("spec.auth.accessTokenTtl", "15 minutes", DURATION_PATTERN)),
        ("/spec/auth/keyRotation/interval", json!("30d"), pattern("spec.auth.keyRotation.interval", "30d", DURATION_PATTERN)),
        ("/spec/ingress/host", json!("API.example"), pattern("spec.ingress.host", "API.example", HOST_PATTERN)),
        ("/spec/tls/dnsNames", json!([]), vec![
            "spec.tls.dnsNames: Invalid value: 0: spec.tls.dnsNames in body should have at least 1 items".into(),
        ]),
        ("/spec/tls/issuerRef/kind", json!("Vault"), vec![
            "spec.tls.issuerRef.kind: Unsupported value: \"Vault\": supported values: \"Issuer\", \"ClusterIssuer\"".into(),
        ]),
        ("/spec/rollout/previewReplicas", json!(0), vec![
            "spec.rollout.previewReplicas: Invalid value: 0: spec.rollout.previewReplicas in body should be greater than or equal to 1".into(),
        ]),
        ("/spec/rollout/progressDeadlineSeconds", json!(5), vec![
            "spec.rollout.progressDeadlineSeconds: Invalid value: 5: spec.rollout.progressDeadlineSeconds in body should be greater than or equal to 10".into(),
        ]),
        ("/spec/rollout/analysis/interval", json!("2"), pattern("spec.rollout.analysis.interval", "2", DURATION_PATTERN)),
        ("/spec/rollout/analysis/maxErrorRatio", json!(1.5), vec![
            "spec.rollout.analysis.maxErrorRatio: Invalid value: 1.5: spec.rollout.analysis.maxErrorRatio in body should be less than or equal to 1".into(),
        ]),
        ("/spec/rollout/analysis/checks", json!([{"name": "ready", "httpGet": {"path": "health", "expectStatus": 200}}]),
            pattern("spec.rollout.analysis.checks[0].httpGet.path", "health", HTTP_PATH_PATTERN)),
        ("/spec/rollout/analysis/checks", json!([{"name": "ready", "httpGet": {"path": "/", "expectStatus": 600}}]), vec![
            "spec.rollout.analysis.checks[0].httpGet.expectStatus: Invalid value: 600: spec.rollout.analysis.checks[0].httpGet.expectStatus in body should be less than or equal to 599".into(),
        ]),
        ("/spec/rollout/analysis/checks", json!([{"name": "ready", "httpGet": {"path": "/", "port": 80}}]), vec![
            "unknown field \"spec.rollout.analysis.checks[0].httpGet.port\"".into(),
        ]),
        ("/spec/backup/schedule", json!("daily"), pattern("spec.backup.schedule", "daily", CRON_PATTERN)),
        ("/spec/backup/frequentSchedule", json!("*/5 * *"), pattern("spec.backup.frequentSchedule", "*/5 * *", CRON_PATTERN)),
        ("/spec/backup/verify/schedule", json!("@sometimes"), pattern("spec.backup.verify.schedule", "@sometimes", CRON_PATTERN)),
        ("/spec/backup/timeZone", json!("Europe London"), pattern("spec.backup.timeZone", "Europe London", TIME_ZONE_PATTERN)),
        ("/spec/backup/retention/keepLast", json!(0), vec![
            "spec.backup.retention.keepLast: Invalid value: 0: spec.backup.retention.keepLast in body should be greater than or equal to 1".into(),
        ]),
        ("/spec/backup/retention/maxAge", json!("30d"), pattern("spec.backup.retention.maxAge", "30d", DURATION_PATTERN)),
        ("/spec/backup/storage/s3/endpoint", json!("s3.example"), pattern("spec.backup.storage.s3.endpoint", "s3.example", r"^https?://[^\s]+$")),
        ("/spec/monitoring/prometheusRule/thresholds/errorRatio", json!(-0.1), vec![
            "spec.monitoring.prometheusRule.thresholds.errorRatio: Invalid value: -0.1: spec.monitoring.prometheusRule.thresholds.errorRatio in body should be greater than or equal to 0".into(),
        ]),
        ("/spec/notifications/events", json!(["RolloutStarted", "Deployed"]), vec![
            "spec.notifications.events[1]: Unsupported value: \"Deployed\": supported values: \"RolloutStarted\", \"RolloutSucceeded\", \"RolledBack\", \"BackupFailed\", \"RestoreVerifyFailed\"".into(),
        ]),
        ("/spec/image/pullSecrets", json!(vec!["s"; 17]), vec![
            "spec.image.pullSecrets: Too many: 17: must have at most 16 items".into(),
        ]),
        ("/spec/version", json!("v".repeat(129)), vec![
            "spec.version: Too long: may not be more than 128 bytes".into(),
        ]),
    ]
}

#[test]
fn every_field_constraint_refuses_its_invalid_fixture_with_the_exact_message() {
    for (pointer, value, expected) in field_cases() {
        let messages = rejected(with(full(), pointer, value.clone()));
        assert_eq!(messages, expected, "fixture {pointer} = {value}");
    }
}

fn cel_cases() -> Vec<(Value, &'static str)> {
    vec![
        (
            with(
                with(full(), "/spec/autoscaling/minReplicas", json!(5)),
                "/spec/autoscaling/maxReplicas",
                json!(4),
            ),
            "spec: Invalid value: spec.autoscaling.minReplicas must be less than or equal to spec.autoscaling.maxReplicas",
        ),
        (
            with(
                full(),
                "/spec/tls/dnsNames",
                json!(["www.football.example"]),
            ),
            "spec: Invalid value: spec.tls.dnsNames must include spec.ingress.host",
        ),
        (
            with(full(), "/spec/ingress", Value::Null),
            "spec: Invalid value: spec.tls requires spec.ingress: the certificate is served by the Ingress",
        ),
        (
            with(full(), "/spec/auth/keyRotation/gracePeriod", json!("10m")),
            "spec.auth: Invalid value: spec.auth.keyRotation.gracePeriod must be longer than spec.auth.accessTokenTtl plus keyRotation.publishDelay, or retiring a key logs users out",
        ),
        (
            // Longer than the access-token lifetime, but not by the (default, 2m) publish delay.
            with(full(), "/spec/auth/keyRotation/gracePeriod", json!("16m")),
            "spec.auth: Invalid value: spec.auth.keyRotation.gracePeriod must be longer than spec.auth.accessTokenTtl plus keyRotation.publishDelay, or retiring a key logs users out",
        ),
        (
            with(full(), "/spec/tls/renewBefore", json!("2160h")),
            "spec.tls: Invalid value: spec.tls.renewBefore must be shorter than spec.tls.duration",
        ),
        (
            with(full(), "/spec/rollout/analysis/failureLimit", json!(5)),
            "spec.rollout.analysis: Invalid value: spec.rollout.analysis.failureLimit must be less than spec.rollout.analysis.count",
        ),
        (
            with(
                full(),
                "/spec/rollout/analysis/checks",
                json!([{"name": "ready", "httpGet": {"path": "/a"}}, {"name": "ready", "httpGet": {"path": "/b"}}]),
            ),
            "spec.rollout.analysis: Invalid value: spec.rollout.analysis.checks names must be unique",
        ),
        (
            with(full(), "/spec/backup/storage", json!({})),
            "spec.backup.storage: Invalid value: spec.backup.storage needs pvc, s3 or both",
        ),
        (
            with(minimal(), "/metadata/name", json!("9prod")),
            "<nil>: Invalid value: metadata.name must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter): it names Services",
        ),
        (
            with(minimal(), "/metadata/name", json!("a".repeat(37))),
            "<nil>: Invalid value: metadata.name must be at most 36 characters: child names add suffixes such as -backup-frequent",
        ),
    ]
}

#[test]
fn every_cel_rule_refuses_its_invalid_fixture_with_the_exact_message() {
    for (doc, expected) in cel_cases() {
        assert_eq!(
            rejected(doc.clone()),
            [expected.to_owned()],
            "fixture {doc}"
        );
    }
}

#[test]
fn cel_rules_accept_the_boundaries() {
    let equal = with(
        with(full(), "/spec/autoscaling/minReplicas", json!(4)),
        "/spec/autoscaling/maxReplicas",
        json!(4),
    );
    admit(&equal).expect("min == max is allowed");
    let limit = with(full(), "/spec/rollout/analysis/failureLimit", json!(4));
    admit(&limit).expect("failureLimit = count - 1 is allowed");
    admit(&with(minimal(), "/metadata/name", json!("a".repeat(36))))
        .expect("36 characters are allowed");
    admit(&with(full(), "/spec/backup/schedule", json!("@daily")))
        .expect("cron macros are allowed");
    admit(&with(full(), "/spec/backup/storage", json!({"s3": {"endpoint": "http://127.0.0.1:9000", "bucket": "fp-backups", "credentialsSecretRef": {"name": "s3"}}})))
        .expect("s3 alone is enough");
}
