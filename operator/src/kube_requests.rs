//! Counting the operator's own Kubernetes API requests: a tower layer on the kube client's service
//! stack that labels each request with the Kubernetes verb and resource type it is for, so
//! `fp_operator_kube_requests_total` tells reads (get, list, watch) from writes and a steady state
//! can be checked for writes. The label values come from the request line, not from guesses in
//! the reconcile code: whatever the client sends is counted, including the requests kube-runtime
//! makes (watches) and the leader election's Lease updates.

use std::task::{Context, Poll};

use http::{Method, Request, Uri};
use prometheus::IntCounterVec;
use tower::{Layer, Service};

/// The Kubernetes API verb of a request (as in RBAC and the API server's audit log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
    Other,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Watch => "watch",
            Self::Create => "create",
            Self::Update => "update",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::DeleteCollection => "deletecollection",
            Self::Other => "other",
        }
    }

    /// Whether the request changes something in the cluster.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Self::Create | Self::Update | Self::Patch | Self::Delete | Self::DeleteCollection
        )
    }
}

/// Label value for requests outside the resource API (`/version`, `/openapi/v2`, …).
pub const NON_RESOURCE: &str = "nonresource";
/// Label value for a resource segment that is not a plausible resource name.
const OTHER_RESOURCE: &str = "other";

/// A resource type name as the API server spells it (lower-case letters, digits, `-` and `.`),
/// so a label value can never carry anything else.
fn plausible_resource(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= 63
        && segment
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn is_watch(query: Option<&str>) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .any(|pair| matches!(pair.split_once('='), Some(("watch", "true" | "1"))))
}

/// The verb and resource (`pods`, `footballpredictions/status`, …) of a request to the API
/// server, from its method and URI, the way the API server itself derives them: a GET of a
/// collection is a list (a watch with `watch=true`), of a named object a get; a DELETE of a
/// collection is a deletecollection. Object names and namespaces never appear in the result.
pub fn classify(method: &Method, uri: &Uri) -> (Verb, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[][..],
    };
    // Namespaced resources: namespaces/{ns}/{resource}/…; `namespaces` and `namespaces/{name}`
    // (and its subresources such as `namespaces/{name}/status`) are the Namespace resource itself.
    let rest = match rest {
        ["namespaces", _namespace, resource, tail @ ..]
            if !is_namespace_subresource(resource, tail) =>
        {
            &rest[2..]
        }
        _ => rest,
    };
    let (resource, name, subresource) = match rest {
        [] => (None, None, None),
        [resource] => (Some(*resource), None, None),
        [resource, name] => (Some(*resource), Some(*name), None),
        [resource, name, subresource, ..] => (Some(*resource), Some(*name), Some(*subresource)),
    };
    let label = match (resource, subresource) {
        (None, _) => NON_RESOURCE.to_owned(),
        (Some(r), _) if !plausible_resource(r) => OTHER_RESOURCE.to_owned(),
        (Some(r), None) => r.to_owned(),
        (Some(r), Some(s)) if plausible_resource(s) => format!("{r}/{s}"),
        (Some(r), Some(_)) => format!("{r}/{OTHER_RESOURCE}"),
    };
    let named = name.is_some();
    let verb = match *method {
        Method::GET | Method::HEAD if resource.is_none() => Verb::Get,
        Method::GET | Method::HEAD if is_watch(uri.query()) => Verb::Watch,
        Method::GET | Method::HEAD if named => Verb::Get,
        Method::GET | Method::HEAD => Verb::List,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE if named => Verb::Delete,
        Method::DELETE => Verb::DeleteCollection,
        _ => Verb::Other,
    };
    (verb, label)
}

/// `namespaces/{name}/status` and `namespaces/{name}/finalize` address the Namespace object.
fn is_namespace_subresource(segment: &str, tail: &[&str]) -> bool {
    tail.is_empty() && matches!(segment, "status" | "finalize")
}

/// Counts every request passing through it in `fp_operator_kube_requests_total{verb,resource}`.
#[derive(Clone)]
pub struct CountRequestsLayer {
    counter: IntCounterVec,
}

impl CountRequestsLayer {
    /// `counter` must have the labels `verb` and `resource`, in that order.
    pub fn new(counter: IntCounterVec) -> Self {
        Self { counter }
    }
}

impl<S> Layer<S> for CountRequestsLayer {
    type Service = CountRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequests {
            inner,
            counter: self.counter.clone(),
        }
    }
}

/// The service [`CountRequestsLayer`] wraps around the client's stack.
#[derive(Clone)]
pub struct CountRequests<S> {
    inner: S,
    counter: IntCounterVec,
}

impl<S, B> Service<Request<B>> for CountRequests<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Counted when sent, whatever the answer: a refused write is still a write attempt.
        let (verb, resource) = classify(request.method(), request.uri());
        self.counter
            .with_label_values(&[verb.as_str(), resource.as_str()])
            .inc();
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    use axum::body::Bytes;
    use http_body_util::Full;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
    use prometheus::Opts;

    fn check(method: Method, uri: &str) -> (Verb, String) {
        classify(&method, &uri.parse::<Uri>().unwrap())
    }

    #[test]
    fn verbs_and_resources_from_the_request_line() {
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/football/pods/prod-blue-1",
                Verb::Get,
                "pods",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/football/pods?labelSelector=a%3Db",
                Verb::List,
                "pods",
            ),
            (
                Method::GET,
                "/api/v1/pods?watch=true&resourceVersion=12",
                Verb::Watch,
                "pods",
            ),
            (
                Method::GET,
                "/apis/apps/v1/deployments?watch=1",
                Verb::Watch,
                "deployments",
            ),
            (
                Method::GET,
                "/apis/apps/v1/deployments?watchy=true",
                Verb::List,
                "deployments",
            ),
            (
                Method::POST,
                "/apis/events.k8s.io/v1/namespaces/football/events",
                Verb::Create,
                "events",
            ),
            (
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/fp-system/leases/fp-operator",
                Verb::Update,
                "leases",
            ),
            (
                Method::PATCH,
                "/apis/footballprediction.io/v1alpha1/namespaces/football/footballpredictions/prod/status?fieldManager=fp-operator&force=true",
                Verb::Patch,
                "footballpredictions/status",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/football/services/prod-old",
                Verb::Delete,
                "services",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/football/pods",
                Verb::DeleteCollection,
                "pods",
            ),
            (
                Method::GET,
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/footballpredictions.footballprediction.io",
                Verb::Get,
                "customresourcedefinitions",
            ),
            (Method::GET, "/api/v1/namespaces", Verb::List, "namespaces"),
            (
                Method::GET,
                "/api/v1/namespaces/football",
                Verb::Get,
                "namespaces",
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/football/finalize",
                Verb::Update,
                "namespaces/finalize",
            ),
            (Method::GET, "/version", Verb::Get, NON_RESOURCE),
            (Method::GET, "/apis", Verb::Get, NON_RESOURCE),
            (Method::OPTIONS, "/api/v1/pods", Verb::Other, "pods"),
        ];
        for (method, uri, verb, resource) in cases {
            assert_eq!(
                check(method.clone(), uri),
                (verb, resource.to_owned()),
                "{method} {uri}"
            );
        }
    }

    #[test]
    fn names_and_odd_segments_never_become_labels() {
        // A name in the resource position (not a valid resource token) is replaced.
        assert_eq!(
            check(Method::GET, "/api/v1/Weird_Name"),
            (Verb::List, OTHER_RESOURCE.to_owned())
        );
        assert_eq!(
            check(Method::GET, "/api/v1/namespaces/a/pods/p/LOGS"),
            (Verb::Get, format!("pods/{OTHER_RESOURCE}"))
        );
        let (_, label) = check(Method::GET, "/api/v1/namespaces/secret-ns/pods/secret-name");
        assert!(!label.contains("secret"), "{label}");
    }

    #[test]
    fn write_verbs_are_the_mutating_ones() {
        let writes: Vec<&str> = [
            Verb::Get,
            Verb::List,
            Verb::Watch,
            Verb::Create,
            Verb::Update,
            Verb::Patch,
            Verb::Delete,
            Verb::DeleteCollection,
            Verb::Other,
        ]
        .into_iter()
        .filter(|v| v.is_write())
        .map(Verb::as_str)
        .collect();
        assert_eq!(
            writes,
            ["create", "update", "patch", "delete", "deletecollection"]
        );
    }

    fn counter() -> IntCounterVec {
        IntCounterVec::new(Opts::new("requests", "test"), &["verb", "resource"]).unwrap()
    }

    /// A kube client whose requests go through the layer to a fake API server that answers every
    /// request with the same object.
    fn fake_client(counter: &IntCounterVec, answer: serde_json::Value) -> kube::Client {
        let body = answer.to_string();
        let server = tower::service_fn(move |_request: Request<kube::client::Body>| {
            let body = body.clone();
            async move {
                Ok::<_, Infallible>(
                    http::Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::<Bytes>::from(body))
                        .unwrap(),
                )
            }
        });
        let service = CountRequestsLayer::new(counter.clone()).layer(server);
        kube::Client::new(service, "default")
    }

    #[tokio::test]
    async fn the_layer_counts_what_a_kube_client_sends() {
        let counter = counter();
        let config_map = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "football", "resourceVersion": "1"}});
        let api: Api<ConfigMap> =
            Api::namespaced(fake_client(&counter, config_map.clone()), "football");
        api.get("c").await.unwrap();
        api.get("c").await.unwrap();
        api.patch(
            "c",
            &PatchParams::apply("fp-operator"),
            &Patch::Apply(&config_map),
        )
        .await
        .unwrap();
        api.create(
            &PostParams::default(),
            &serde_json::from_value(config_map).unwrap(),
        )
        .await
        .unwrap();
        api.delete("c", &DeleteParams::default()).await.unwrap();

        let pod_list = serde_json::json!({"apiVersion": "v1", "kind": "PodList",
            "metadata": {"resourceVersion": "5"}, "items": []});
        let pods: Api<Pod> = Api::all(fake_client(&counter, pod_list));
        pods.list(&ListParams::default().labels("a=b"))
            .await
            .unwrap();

        let count = |verb: &str, resource: &str| counter.with_label_values(&[verb, resource]).get();
        assert_eq!(count("get", "configmaps"), 2);
        assert_eq!(count("patch", "configmaps"), 1);
        assert_eq!(count("create", "configmaps"), 1);
        assert_eq!(count("delete", "configmaps"), 1);
        assert_eq!(count("list", "pods"), 1);
        assert_eq!(count("list", "configmaps"), 0);
    }
}
