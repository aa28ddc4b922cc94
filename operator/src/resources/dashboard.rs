//! ConfigMap `<name>-dashboard`: a Grafana dashboard of the API (label `grafana_dashboard`, picked up
//! by Grafana's dashboard sidecar).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

use super::common::{Component, child_meta, short_hash};
use crate::crd::labels;
use crate::validate::Validated;

fn panel(id: u32, title: &str, unit: &str, x: u32, y: u32, targets: &[(&str, String)]) -> Value {
    json!({
        "id": id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": targets.iter().enumerate().map(|(i, (legend, expr))| json!({
            "refId": char::from(b'A' + u8::try_from(i).unwrap_or(0)).to_string(),
            "expr": expr,
            "legendFormat": legend,
        })).collect::<Vec<_>>(),
    })
}

/// The dashboard JSON model.
pub fn dashboard_json(v: &Validated) -> Value {
    let active = format!(
        "namespace=\"{}\",service=\"{}\"",
        v.namespace,
        v.names.active_service()
    );
    let both = format!(
        "namespace=\"{}\",service=~\"{}|{}\"",
        v.namespace,
        v.names.active_service(),
        v.names.preview_service()
    );
    json!({
        "uid": format!("fp-{}", short_hash(format!("{}/{}", v.namespace, v.name).as_bytes())),
        "title": format!("FootballPrediction {}/{}", v.namespace, v.name),
        "tags": ["footballprediction"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"}]},
        "panels": [
            panel(1, "Requests per second by status", "reqps", 0, 0, &[
                ("{{status}}", format!("sum by (status) (rate(http_requests_total{{{active}}}[5m]))")),
            ]),
            panel(2, "Error ratio (5xx)", "percentunit", 12, 0, &[
                // `or vector(0)`: without a 5xx in the window the share is 0, not "no data".
                ("5xx share", format!("(sum(rate(http_requests_total{{{active},status=~\"5..\"}}[5m])) or vector(0)) / sum(rate(http_requests_total{{{active}}}[5m]))")),
            ]),
            panel(3, "Latency", "s", 0, 8, &[
                ("p50", format!("histogram_quantile(0.5, sum by (le) (rate(http_request_duration_seconds_bucket{{{active}}}[5m])))")),
                ("p95", format!("histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{active}}}[5m])))")),
                ("p99", format!("histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{{{active}}}[5m])))")),
            ]),
            panel(4, "Pods by release", "short", 12, 8, &[
                ("{{version}}", format!("sum by (version) (fp_build_info{{{both}}})")),
            ]),
            panel(5, "Cache hit ratio", "percentunit", 0, 16, &[
                ("{{cache}}", format!("sum by (cache) (rate(fp_cache_requests_total{{{active},result=\"hit\"}}[5m])) / sum by (cache) (rate(fp_cache_requests_total{{{active}}}[5m]))")),
            ]),
            panel(6, "Database pool connections", "short", 12, 16, &[
                ("{{state}}", format!("sum by (state) (fp_db_pool_connections{{{active}}})")),
            ]),
        ],
    })
}

/// The dashboard ConfigMap, or `None` when disabled.
pub fn dashboard(v: &Validated) -> Option<ConfigMap> {
    if !v.spec.monitoring.dashboards.enabled {
        return None;
    }
    let mut meta = child_meta(v, v.names.dashboard_config_map(), Component::Monitoring);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(labels::GRAFANA_DASHBOARD.to_owned(), "1".to_owned());
    let body = serde_json::to_string_pretty(&dashboard_json(v)).unwrap_or_default();
    Some(ConfigMap {
        metadata: meta,
        data: Some(BTreeMap::from([(
            format!("footballprediction-{}-{}.json", v.namespace, v.name),
            body,
        )])),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::validated;
    use pretty_assertions::assert_eq;

    #[test]
    fn dashboard_configmap_is_labelled_for_grafana_and_holds_valid_json() {
        let v = validated(json!({"version": "1"}));
        let cm = dashboard(&v).unwrap();
        assert_eq!(cm.metadata.name.as_deref(), Some("prod-dashboard"));
        assert_eq!(
            cm.metadata.labels.as_ref().unwrap()["grafana_dashboard"],
            "1"
        );
        let data = cm.data.unwrap();
        let parsed: Value =
            serde_json::from_str(&data["footballprediction-football-prod.json"]).unwrap();
        assert_eq!(parsed["title"], "FootballPrediction football/prod");
        let panels = parsed["panels"].as_array().unwrap();
        assert_eq!(panels.len(), 6);
        assert_eq!(panels[2]["targets"][1]["refId"], "B");
        assert!(
            panels[1]["targets"][0]["expr"]
                .as_str()
                .unwrap()
                .contains("service=\"prod\"")
        );
        assert!(
            parsed["uid"].as_str().unwrap().len() <= 40,
            "Grafana uids are at most 40 characters"
        );
    }

    #[test]
    fn can_be_disabled() {
        let v =
            validated(json!({"version": "1", "monitoring": {"dashboards": {"enabled": false}}}));
        assert!(dashboard(&v).is_none());
    }
}
