//! The alerts proven the way an on-call engineer meets them: a real Prometheus discovers the API
//! pods and the operator from the ServiceMonitors the operator and the chart created, evaluates
//! the PrometheusRules they created, and a real Alertmanager posts to a webhook receiver here.
//! The database of a running instance refuses connections → DatabaseNotReady reaches the
//! receiver; a backup Job fails meanwhile → BackupFailed (from the operator's series); the
//! database comes back → DatabaseNotReady resolves; a backup succeeds → BackupFailed resolves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::monitoring::{Job, Monitoring, jobs, labels, targets};
use common::platform::{
    condition, create_fp, fp_api, fp_status, install_with, kubectl_fp, psql, run, wait_for,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serde_json::{Value, json};

const INSTANCE: &str = "watched";

fn sql(server: &str, statement: &str) {
    run(&psql(), &[server, "-v", "ON_ERROR_STOP=1", "-c", statement]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_in_a_real_prometheus_and_reach_the_receiver() {
    let Some(client) = common::admin_client().await else {
        return;
    };
    let installed = install_with(
        "e2e-mon",
        INSTANCE,
        &[
            "metrics.serviceMonitor.enabled=true",
            "metrics.serviceMonitor.interval=2s",
            "metrics.prometheusRule.enabled=true",
        ],
    );
    let namespace = installed.namespace.clone();
    let operator_namespace = installed.cleanup.operator_namespace.clone();
    let fps = fp_api(&client, &namespace);
    create_fp(
        &fps,
        json!({
            "apiVersion": "footballprediction.io/v1alpha1",
            "kind": "FootballPrediction",
            "metadata": {"name": INSTANCE, "namespace": namespace},
            "spec": {
                "version": env!("CARGO_PKG_VERSION"),
                "replicas": 1,
                "database": {"migrations": {"enabled": true}},
                "rollout": {"postPromotion": {"duration": "5s"}, "scaleDownDelaySeconds": 5},
                "backup": {"storage": {"pvc": {"size": "1Gi"}}},
                "monitoring": {
                    "serviceMonitor": {"interval": "2s"},
                    "prometheusRule": {
                        "alertLabels": {"team": "e2e"},
                        "overrides": [{"alert": "FootballPredictionDatabaseNotReady", "for": "0s"}],
                    },
                },
            },
        }),
    )
    .await;
    wait_for("fp Ready", async || {
        let status = fp_status(&fps, INSTANCE).await;
        let ready = condition(&status, "Ready");
        ((ready["status"] == "True").then_some(()), ready.to_string())
    })
    .await;

    let monitoring = Monitoring::start(&[&namespace, &operator_namespace]).await;

    // The rules as the operator and the chart generated them, loaded by Prometheus itself.
    let groups = monitoring.rule_groups().await;
    let instance_group = format!("footballprediction-{namespace}-{INSTANCE}");
    assert!(groups.contains(&instance_group), "{groups:?}");
    assert!(
        groups.iter().any(|g| g.starts_with("fp-operator-")),
        "{groups:?}"
    );

    // Targets found through the ServiceMonitors, labelled as the rules select them.
    let api = monitoring
        .wait_series(
            "the API pod scraped through the ServiceMonitor",
            &format!("fp_db_ready{{namespace=\"{namespace}\",service=\"{INSTANCE}\"}} == 1"),
        )
        .await;
    assert!(labels(&api[0])["pod"].starts_with(INSTANCE), "{api:?}");
    monitoring
        .wait_series(
            "the operator scraped through the chart's ServiceMonitor",
            &format!("fp_operator_leader{{namespace=\"{operator_namespace}\"}} == 1"),
        )
        .await;
    monitoring
        .wait_series(
            "the operator's backup series of the instance",
            &format!(
                "fp_backup_last_success_timestamp_seconds{{fp_namespace=\"{namespace}\",fp_name=\"{INSTANCE}\"}}"
            ),
        )
        .await;
    // Every panel of the dashboard the operator generated returns data from this Prometheus,
    // once a user has asked for something (the caches count lookups only when there are some).
    let pod_address = labels(&api[0])["instance"].clone();
    use_the_api(&client, &namespace, &pod_address).await;
    dashboard_panels_return_data(&client, &namespace, &monitoring).await;

    // Nothing is down once both are scraped (until their first scrape the `absent` branches
    // hold the alerts pending): the operator alert selects the chart's real Service, the API
    // alert the active Service.
    for alert in ["FootballPredictionOperatorDown", "FootballPredictionDown"] {
        wait_for(&format!("{alert} neither pending nor firing"), async || {
            let active = monitoring
                .query(&format!("ALERTS{{alertname=\"{alert}\"}}"))
                .await;
            (active.is_empty().then_some(()), format!("{active:?}"))
        })
        .await;
    }

    // The database refuses connections.
    let server = installed.server.clone();
    let database = installed.database.clone();
    sql(
        &server,
        &format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false"),
    );
    sql(
        &server,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
        ),
    );
    let fired = monitoring
        .wait_notified("FootballPredictionDatabaseNotReady", "firing")
        .await;
    assert_eq!(fired["labels"]["severity"], "critical", "{fired}");
    assert_eq!(fired["labels"]["team"], "e2e", "{fired}");
    assert_eq!(
        fired["annotations"]["summary"],
        format!("FootballPrediction {namespace}/{INSTANCE}: the database does not answer")
    );
    assert!(
        fired["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .ends_with("/docs/ops/runbooks/FootballPredictionDatabaseNotReady.md"),
        "{fired}"
    );

    // A backup meanwhile fails; the operator's series carry it to the alert.
    let (code, output) = kubectl_fp(&["backup", INSTANCE, "-n", &namespace]);
    assert_ne!(code, 0, "a backup without its database must fail: {output}");
    let failed = monitoring
        .wait_notified("FootballPredictionBackupFailed", "firing")
        .await;
    assert_eq!(failed["labels"]["severity"], "warning", "{failed}");

    // The database is back: its alert resolves; the next backup resolves the other.
    sql(
        &server,
        &format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"),
    );
    monitoring
        .wait_notified("FootballPredictionDatabaseNotReady", "resolved")
        .await;
    let (code, output) = kubectl_fp(&["backup", INSTANCE, "-n", &namespace]);
    assert_eq!(code, 0, "{output}");
    monitoring
        .wait_notified("FootballPredictionBackupFailed", "resolved")
        .await;
    drop(monitoring);
    drop(installed);
}

/// Logs in as the generated admin and lists the leagues twice.
async fn use_the_api(client: &kube::Client, namespace: &str, pod_address: &str) {
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let secret = secrets.get(&format!("{INSTANCE}-admin")).await.unwrap();
    let password = String::from_utf8(secret.data.unwrap()["password"].0.clone()).unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{pod_address}/api/v1");
    let login: Value = http
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": "admin", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().expect("an access token");
    // The response cache: a miss, then a hit (an instance without imported data has leagues
    // to list but no match to predict).
    for _ in 0..2 {
        let answer = http
            .get(format!("{base}/leagues"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
}

/// Runs every target of every panel of the `<name>-dashboard` ConfigMap against Prometheus.
async fn dashboard_panels_return_data(
    client: &kube::Client,
    namespace: &str,
    monitoring: &Monitoring,
) {
    let maps: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), namespace);
    let map = maps.get(&format!("{INSTANCE}-dashboard")).await.unwrap();
    let text = map
        .data
        .unwrap()
        .into_values()
        .next()
        .expect("the dashboard JSON");
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            monitoring
                .wait_series(&format!("panel {:?} has data", panel["title"]), expr)
                .await;
        }
    }
}

#[test]
fn service_monitors_become_scrape_jobs_and_endpoint_slices_their_targets() {
    let monitor: Value = json!({
        "metadata": {"namespace": "football", "name": "prod"},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/instance": "prod"}},
            "namespaceSelector": {"matchNames": ["football"]},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "5s"}],
        },
    });
    assert_eq!(
        jobs(&monitor),
        [Job {
            name: "serviceMonitor/football/prod/0".into(),
            interval: "5s".into(),
            path: "/metrics".into(),
            port: "http".into(),
            namespaces: vec!["football".into()],
            selector: "app.kubernetes.io/instance=prod".into(),
        }]
    );
    let slices = [json!({
        "ports": [{"name": "admin", "port": 9000}, {"name": "http", "port": 8080}],
        "endpoints": [
            {"addresses": ["198.18.0.7"], "conditions": {"ready": true},
             "targetRef": {"kind": "Pod", "name": "prod-blue-1"}},
            {"addresses": ["198.18.0.8"], "conditions": {"ready": false},
             "targetRef": {"kind": "Pod", "name": "prod-blue-2"}},
        ],
    })];
    assert_eq!(
        targets("football", "prod", "http", &slices),
        [
            json!({"targets": ["198.18.0.7:8080"], "labels": {"namespace": "football", "service": "prod", "pod": "prod-blue-1", "job": "prod"}}),
            json!({"targets": ["198.18.0.8:8080"], "labels": {"namespace": "football", "service": "prod", "pod": "prod-blue-2", "job": "prod"}}),
        ]
    );
    assert!(targets("football", "prod", "metrics", &slices).is_empty());
}
