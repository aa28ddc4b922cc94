//! The reconcile against a fake API server: what it reads and writes, and in which order.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kube::Client;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;
use crate::controller::decide::{MISSING_DEPENDENCY_REQUEUE, NEXT_TRANSITION_REQUEUE};
use crate::test_support::fp_from;

/// One request the fake API server answered.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    /// Path and query.
    uri: String,
    body: Value,
}

impl Seen {
    fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    fn is_write(&self) -> bool {
        self.method != Method::GET
    }

    fn is_status(&self) -> bool {
        self.method == Method::PATCH && self.path().ends_with("/status")
    }

    fn is_event(&self) -> bool {
        self.path().contains("/events")
    }

    /// A server-side apply of a child: `(plural, name)`.
    fn applied_child(&self) -> Option<(&str, &str)> {
        if self.method != Method::PATCH || self.is_status() || !self.uri.contains("force=true") {
            return None;
        }
        let mut segments = self.path().rsplit('/');
        let name = segments.next()?;
        let plural = segments.next()?;
        Some((plural, name))
    }
}

/// Answers like an API server holding `objects` (by path) and nothing else: GETs of what it
/// holds, empty lists, applies and status patches echoed back, events accepted.
struct FakeApi {
    objects: BTreeMap<String, Value>,
    /// Returned by every list of this plural.
    listed: BTreeMap<&'static str, Vec<Value>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeApi {
    fn new() -> Self {
        Self {
            objects: BTreeMap::new(),
            listed: BTreeMap::new(),
            seen: Arc::default(),
        }
    }

    fn with_secret(mut self, name: &str, data: Value) -> Self {
        self.objects.insert(
            format!("/api/v1/namespaces/football/secrets/{name}"),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": name, "namespace": "football", "resourceVersion": "11"},
                   "data": data}),
        );
        self
    }

    fn answer(&self, method: &Method, path: &str, body: &Value) -> (StatusCode, Value) {
        let after_namespace = path
            .split_once("/namespaces/football/")
            .map_or(0, |(_, rest)| rest.split('/').count());
        match (method, after_namespace) {
            (&Method::GET, 1) => {
                let plural = path.rsplit('/').next().unwrap_or_default();
                let items = self.listed.get(plural).cloned().unwrap_or_default();
                (
                    StatusCode::OK,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            (&Method::GET, _) => match self.objects.get(path) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => (
                    StatusCode::NOT_FOUND,
                    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                           "reason": "NotFound", "code": 404, "message": "not found"}),
                ),
            },
            (&Method::PATCH, _) if path.ends_with("/status") => {
                // The server answers a status patch with the whole object, spec included.
                let held = path.trim_end_matches("/status");
                let mut object = self.objects.get(held).cloned().unwrap_or(Value::Null);
                object["status"] = body["status"].clone();
                (StatusCode::OK, object)
            }
            (&Method::PATCH, _) | (&Method::POST, _) => {
                let mut echoed = body.clone();
                echoed["metadata"]["resourceVersion"] = json!("2");
                (StatusCode::OK, echoed)
            }
            _ => (
                StatusCode::OK,
                json!({"apiVersion": "v1", "kind": "Status", "status": "Success"}),
            ),
        }
    }

    fn client(self) -> (Client, Arc<Mutex<Vec<Seen>>>) {
        let seen = self.seen.clone();
        let api = Arc::new(self);
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let api = api.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let uri = parts.uri.to_string();
                let path = uri.split('?').next().unwrap_or_default().to_owned();
                let (status, answer) = api.answer(&parts.method, &path, &body);
                api.seen.lock().unwrap().push(Seen {
                    method: parts.method,
                    uri,
                    body,
                });
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::<Bytes>::from(answer.to_string()))
                        .unwrap(),
                )
            }
        });
        (Client::new(service, "football"), seen)
    }
}

fn database_secret() -> Value {
    json!({"url": "c3FsaXRlOi8vL2RhdGEvZnAuZGI="})
}

async fn reconcile_once(
    mut api: FakeApi,
    spec: Value,
) -> (Result<(Action, ReconcileResult), Error>, Vec<Seen>) {
    let fp = fp_from(spec);
    let path = format!(
        "{}/{}",
        FootballPrediction::url_path(&(), fp.metadata.namespace.as_deref()),
        fp.name_any()
    );
    api.objects.insert(path, serde_json::to_value(&fp).unwrap());
    let (client, seen) = api.client();
    let ctx = Context::for_tests(client);
    let result = reconcile_valid(&fp, &ctx).await;
    let seen = seen.lock().unwrap().clone();
    (result, seen)
}

fn condition(status_patch: &Seen, type_: &str) -> Value {
    status_patch.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn a_first_reconcile_reads_everything_then_applies_every_child_then_writes_the_status() {
    let api = FakeApi::new().with_secret("prod-database", database_secret());
    let (result, seen) = reconcile_once(api, json!({"version": "1.4.2"})).await;
    let (action, outcome) = result.unwrap();
    assert_eq!(outcome, ReconcileResult::Success);
    assert_eq!(
        action,
        Action::requeue(NEXT_TRANSITION_REQUEUE),
        "a rollout started"
    );

    let first_write = seen.iter().position(Seen::is_write).unwrap();
    assert!(
        seen[first_write..]
            .iter()
            .all(|s| s.is_write() || s.is_event()),
        "every read comes before the first write: {:#?}",
        seen.iter()
            .map(|s| format!("{} {}", s.method, s.uri))
            .collect::<Vec<_>>()
    );
    let applied: Vec<(&str, &str)> = seen.iter().filter_map(Seen::applied_child).collect();
    for expected in [
        ("deployments", "prod-blue"),
        ("deployments", "prod-green"),
        ("services", "prod"),
        ("services", "prod-preview"),
        ("secrets", "prod-jwt"),
        ("secrets", "prod-admin"),
        ("networkpolicies", "prod-api"),
        ("networkpolicies", "prod-jobs"),
    ] {
        assert!(
            applied.contains(&expected),
            "{expected:?} not in {applied:?}"
        );
    }
    assert!(
        !applied
            .iter()
            .any(|(plural, _)| *plural == "prometheusrules"),
        "optional kinds whose CRD is not served are skipped"
    );
    let status_at = seen.iter().position(Seen::is_status).unwrap();
    let last_apply = seen
        .iter()
        .rposition(|s| s.applied_child().is_some())
        .unwrap();
    assert!(
        status_at > last_apply,
        "the status is written after the applies"
    );
    assert_eq!(seen.iter().filter(|s| s.is_status()).count(), 1);
    let status = &seen[status_at];
    assert_eq!(status.body["status"]["rollout"]["targetVersion"], "1.4.2");
    assert_eq!(condition(status, "Ready")["status"], "False");
    let created_events = seen
        .iter()
        .filter(|s| s.is_event() && s.body["reason"] == "Created")
        .count();
    assert_eq!(
        created_events,
        applied.len(),
        "one Created event per new child"
    );
}

#[tokio::test]
async fn a_missing_secret_writes_only_the_status_and_looks_again_soon() {
    let (result, seen) = reconcile_once(FakeApi::new(), json!({"version": "1.4.2"})).await;
    assert_eq!(
        result.unwrap(),
        (
            Action::requeue(MISSING_DEPENDENCY_REQUEUE),
            ReconcileResult::MissingDependency
        )
    );
    let writes: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.is_write() && !s.is_event())
        .collect();
    assert_eq!(writes.len(), 1, "{writes:#?}");
    assert!(writes[0].is_status());
    let ready = condition(writes[0], "Ready");
    assert_eq!(ready["reason"], "MissingDependency");
    assert!(
        ready["message"].as_str().unwrap().contains("prod-database"),
        "{ready}"
    );
}

#[tokio::test]
async fn a_child_that_does_not_read_as_its_type_stops_the_reconcile_before_any_write() {
    let mut api = FakeApi::new().with_secret("prod-database", database_secret());
    api.listed.insert(
        "deployments",
        vec![
            json!({"metadata": {"name": "prod-blue", "namespace": "football"},
                     "spec": {"replicas": "three"}}),
        ],
    );
    let (result, seen) = reconcile_once(api, json!({"version": "1.4.2"})).await;
    let error = result.unwrap_err();
    assert_eq!(error.category(), "decode");
    assert!(
        error.to_string().contains("Deployment prod-blue"),
        "{error}"
    );
    assert!(!seen.iter().any(Seen::is_write), "nothing was written");
}

#[tokio::test]
async fn a_deleted_object_is_left_to_garbage_collection() {
    let (client, seen) = FakeApi::new().client();
    let ctx = Context::for_tests(client);
    let mut fp = fp_from(json!({"version": "1.4.2"}));
    fp.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::now(),
    ));
    let result = reconcile_valid(&fp, &ctx).await.unwrap();
    assert_eq!(result, (Action::await_change(), ReconcileResult::Success));
    assert!(seen.lock().unwrap().is_empty(), "not one request");
}
