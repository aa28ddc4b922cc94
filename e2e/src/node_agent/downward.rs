//! The downward API: pod fields and container resources as strings, shared by `env.valueFrom`
//! and `downwardAPI` volumes. Pure: the pod IP comes from the agent's allocation because the
//! status may not be written yet when a container starts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::quantity::Quantity;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DownwardError {
    #[error("unsupported fieldRef path {0:?}")]
    UnsupportedField(String),
    #[error("unsupported resourceFieldRef resource {0:?}")]
    UnsupportedResource(String),
    #[error("resourceFieldRef names container {0:?}, which the pod does not have")]
    UnknownContainer(String),
    #[error("resourceFieldRef: {0}")]
    BadQuantity(String),
}

/// What the downward API can see besides the pod object itself.
#[derive(Debug, Clone, Default)]
pub struct PodRuntimeFacts {
    pub pod_ip: String,
    pub host_ip: String,
    /// The node's allocatable resources: the default for unset limits, as in kubelet.
    pub node_allocatable: BTreeMap<String, String>,
}

/// Resolves a `fieldRef.fieldPath`.
pub fn field_value(
    pod: &Pod,
    facts: &PodRuntimeFacts,
    path: &str,
) -> Result<String, DownwardError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    if let Some(key) = bracketed_key(path, "metadata.labels") {
        return Ok(lookup(meta.labels.as_ref(), key));
    }
    if let Some(key) = bracketed_key(path, "metadata.annotations") {
        return Ok(lookup(meta.annotations.as_ref(), key));
    }
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => render_map(meta.labels.as_ref()),
        "metadata.annotations" => render_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        other => return Err(DownwardError::UnsupportedField(other.to_string())),
    };
    Ok(value)
}

fn bracketed_key<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?.strip_prefix("['")?;
    rest.strip_suffix("']")
}

fn lookup(map: Option<&BTreeMap<String, String>>, key: &str) -> String {
    map.and_then(|m| m.get(key)).cloned().unwrap_or_default()
}

/// `key="value"` lines, sorted, as kubelet writes labels and annotations files.
fn render_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

/// Resolves a `resourceFieldRef` for `container_name` (the referencing container when empty).
pub fn resource_value(
    pod: &Pod,
    facts: &PodRuntimeFacts,
    referencing_container: &str,
    container_name: Option<&str>,
    resource: &str,
    divisor: Option<&str>,
) -> Result<String, DownwardError> {
    let name = container_name
        .filter(|n| !n.is_empty())
        .unwrap_or(referencing_container);
    let container = find_container(pod, name)
        .ok_or_else(|| DownwardError::UnknownContainer(name.to_string()))?;
    let (kind, resource_name) = resource
        .split_once('.')
        .ok_or_else(|| DownwardError::UnsupportedResource(resource.to_string()))?;
    if !matches!(resource_name, "cpu" | "memory" | "ephemeral-storage") {
        return Err(DownwardError::UnsupportedResource(resource.to_string()));
    }
    let resources = container.resources.as_ref();
    let declared = match kind {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => return Err(DownwardError::UnsupportedResource(resource.to_string())),
    }
    .and_then(|m| m.get(resource_name))
    .map(|q| q.0.clone());
    // Unset limits default to the node's allocatable; unset requests are zero.
    let text = match (declared, kind) {
        (Some(text), _) => text,
        (None, "limits") => facts
            .node_allocatable
            .get(resource_name)
            .cloned()
            .unwrap_or_else(|| "0".to_string()),
        (None, _) => "0".to_string(),
    };
    let value = Quantity::parse(&text).map_err(|e| DownwardError::BadQuantity(e.to_string()))?;
    let divisor_text = divisor.filter(|d| !d.is_empty()).unwrap_or("1");
    let divisor =
        Quantity::parse(divisor_text).map_err(|e| DownwardError::BadQuantity(e.to_string()))?;
    let rendered = value
        .ceil_div(divisor)
        .ok_or_else(|| DownwardError::BadQuantity("divisor is zero".to_string()))?;
    Ok(rendered.to_string())
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
    use kube::api::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("api-0".into()),
                namespace: Some("fp".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([
                    ("app".into(), "api".into()),
                    ("color".into(), "blue".into()),
                ])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("fp-node-0".into()),
                service_account_name: Some("fp-api".into()),
                containers: vec![Container {
                    name: "api".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some(BTreeMap::from([(
                            "memory".into(),
                            K8sQuantity("256Mi".into()),
                        )])),
                        requests: Some(BTreeMap::from([(
                            "cpu".into(),
                            K8sQuantity("250m".into()),
                        )])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }

    fn facts() -> PodRuntimeFacts {
        PodRuntimeFacts {
            pod_ip: "127.0.3.4".into(),
            host_ip: "127.0.0.1".into(),
            node_allocatable: BTreeMap::from([("cpu".into(), "16".into())]),
        }
    }

    #[test]
    fn resolves_pod_fields() {
        let pod = pod();
        let facts = facts();
        let get = |path| field_value(&pod, &facts, path).unwrap();
        assert_eq!(get("metadata.name"), "api-0");
        assert_eq!(get("metadata.namespace"), "fp");
        assert_eq!(get("spec.nodeName"), "fp-node-0");
        assert_eq!(get("spec.serviceAccountName"), "fp-api");
        assert_eq!(get("status.podIP"), "127.0.3.4");
        assert_eq!(get("status.hostIP"), "127.0.0.1");
        assert_eq!(get("metadata.labels['color']"), "blue");
        assert_eq!(get("metadata.labels"), "app=\"api\"\ncolor=\"blue\"");
        assert!(matches!(
            field_value(&pod, &facts, "spec.bogus"),
            Err(DownwardError::UnsupportedField(_))
        ));
    }

    #[test]
    fn resolves_resources_with_defaults_and_divisors() {
        let pod = pod();
        let facts = facts();
        let get = |resource, divisor| resource_value(&pod, &facts, "api", None, resource, divisor);
        assert_eq!(get("limits.memory", Some("1Mi")).unwrap(), "256");
        assert_eq!(get("requests.cpu", None).unwrap(), "1");
        assert_eq!(get("requests.cpu", Some("1m")).unwrap(), "250");
        assert_eq!(get("limits.cpu", None).unwrap(), "16");
        assert_eq!(get("requests.memory", None).unwrap(), "0");
        assert!(get("limits.gpu", None).is_err());
        assert!(matches!(
            resource_value(&pod, &facts, "api", Some("nope"), "limits.cpu", None),
            Err(DownwardError::UnknownContainer(_))
        ));
    }
}
