//! Container environment as kubelet builds it: `envFrom`, then `env` in order, with `$(VAR)`
//! expansion over the variables defined so far and the service variables; `valueFrom` reads
//! Secrets, ConfigMaps and the downward API. Pure: objects come through [`ObjectSource`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

use super::downward::{self, DownwardError, PodRuntimeFacts};

/// Key → bytes of a Secret (`data`) or a ConfigMap (`data` and `binaryData`).
pub type ObjectData = BTreeMap<String, Vec<u8>>;

/// Secrets and ConfigMaps of the pod's namespace, by name. `None` means "does not exist".
pub trait ObjectSource {
    fn secret(&self, name: &str) -> Option<ObjectData>;
    fn config_map(&self, name: &str) -> Option<ObjectData>;
}

pub fn secret_data(secret: &Secret) -> ObjectData {
    let mut data: ObjectData = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    // stringData is write-only on the server, but a hand-built object may still carry it.
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    data
}

pub fn config_map_data(config_map: &ConfigMap) -> ObjectData {
    let mut data: ObjectData = config_map
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in config_map.data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    data
}

/// Why a container cannot be configured (kubelet's `CreateContainerConfigError`). Messages name
/// objects and keys, never values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("secret {0:?} not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in Secret {name}")]
    SecretKeyNotFound { name: String, key: String },
    #[error("configmap {0:?} not found")]
    ConfigMapNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {name}")]
    ConfigMapKeyNotFound { name: String, key: String },
    #[error("env {name}: {source}")]
    Downward { name: String, source: DownwardError },
}

/// Kubernetes `$(VAR)` expansion: `$$` escapes a `$`, references to unknown variables and
/// unterminated `$(` stay as written.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.extend_from_slice(&bytes[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match bytes[cursor + 1] {
                b'$' => {
                    out.push(b'$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match lookup(name) {
                            Some(value) => out.extend_from_slice(value.as_bytes()),
                            None => out.extend_from_slice(format!("$({name})").as_bytes()),
                        }
                        close + 1
                    }
                    None => {
                        out.push(b'$');
                        out.extend_from_slice(rest.as_bytes());
                        rest.len()
                    }
                },
                other => {
                    out.push(b'$');
                    out.push(other);
                    1
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < bytes.len() {
        out.extend_from_slice(&bytes[checkpoint..]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An ordered environment where a later definition replaces an earlier one in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvList(Vec<(String, String)>);

impl EnvList {
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name, value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// `other`'s entries override ours.
    pub fn overlay(&mut self, other: &EnvList) {
        for (name, value) in other.iter() {
            self.set(name, value);
        }
    }
}

/// Everything env resolution needs besides the container.
pub struct EnvContext<'a> {
    pub pod: &'a Pod,
    pub facts: &'a PodRuntimeFacts,
    pub objects: &'a dyn ObjectSource,
    /// Variables kubelet adds for Services (here: only the API server's `KUBERNETES_*`).
    pub service_env: &'a EnvList,
    /// Rewrites a literal value that starts with a volume mountPath (see `paths`).
    pub rewrite_path: &'a dyn Fn(&str) -> String,
}

/// The container's own environment (`envFrom` + `env` + service variables), in kubelet's order.
pub fn container_env(container: &Container, ctx: &EnvContext<'_>) -> Result<EnvList, EnvError> {
    let mut env = EnvList::default();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or("");
        let data = if let Some(cm) = &source.config_map_ref {
            match ctx.objects.config_map(&cm.name) {
                Some(data) => data,
                None if cm.optional == Some(true) => continue,
                None => return Err(EnvError::ConfigMapNotFound(cm.name.clone())),
            }
        } else if let Some(secret) = &source.secret_ref {
            match ctx.objects.secret(&secret.name) {
                Some(data) => data,
                None if secret.optional == Some(true) => continue,
                None => return Err(EnvError::SecretNotFound(secret.name.clone())),
            }
        } else {
            continue;
        };
        for (key, value) in data {
            let name = format!("{prefix}{key}");
            // Kubelet skips keys that cannot be variable names.
            if name.is_empty() || name.contains('=') {
                continue;
            }
            env.set(name, String::from_utf8_lossy(&value).into_owned());
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(source)) => match value_from(var.name.as_str(), source, container, ctx)? {
                Some(value) => value,
                None => continue,
            },
            (Some(literal), None) => {
                let rewritten = (ctx.rewrite_path)(literal);
                let lookup = |name: &str| {
                    env.get(name)
                        .or_else(|| ctx.service_env.get(name))
                        .map(str::to_string)
                };
                expand(&rewritten, &lookup)
            }
            (None, None) => String::new(),
        };
        env.set(var.name.clone(), value);
    }
    for (name, value) in ctx.service_env.iter() {
        if env.get(name).is_none() {
            env.set(name, value);
        }
    }
    Ok(env)
}

/// `Ok(None)` when an optional reference is missing: the variable is left unset.
fn value_from(
    name: &str,
    source: &k8s_openapi::api::core::v1::EnvVarSource,
    container: &Container,
    ctx: &EnvContext<'_>,
) -> Result<Option<String>, EnvError> {
    if let Some(selector) = &source.secret_key_ref {
        let optional = selector.optional == Some(true);
        return match ctx.objects.secret(&selector.name) {
            Some(data) => match data.get(&selector.key) {
                Some(bytes) => Ok(Some(String::from_utf8_lossy(bytes).into_owned())),
                None if optional => Ok(None),
                None => Err(EnvError::SecretKeyNotFound {
                    name: selector.name.clone(),
                    key: selector.key.clone(),
                }),
            },
            None if optional => Ok(None),
            None => Err(EnvError::SecretNotFound(selector.name.clone())),
        };
    }
    if let Some(selector) = &source.config_map_key_ref {
        let optional = selector.optional == Some(true);
        return match ctx.objects.config_map(&selector.name) {
            Some(data) => match data.get(&selector.key) {
                Some(bytes) => Ok(Some(String::from_utf8_lossy(bytes).into_owned())),
                None if optional => Ok(None),
                None => Err(EnvError::ConfigMapKeyNotFound {
                    name: selector.name.clone(),
                    key: selector.key.clone(),
                }),
            },
            None if optional => Ok(None),
            None => Err(EnvError::ConfigMapNotFound(selector.name.clone())),
        };
    }
    let downward_error = |source| EnvError::Downward {
        name: name.to_string(),
        source,
    };
    if let Some(field) = &source.field_ref {
        return downward::field_value(ctx.pod, ctx.facts, &field.field_path)
            .map(Some)
            .map_err(downward_error);
    }
    if let Some(resource) = &source.resource_field_ref {
        return downward::resource_value(
            ctx.pod,
            ctx.facts,
            &container.name,
            resource.container_name.as_deref(),
            &resource.resource,
            resource.divisor.as_ref().map(|d| d.0.as_str()),
        )
        .map(Some)
        .map_err(downward_error);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, PodSpec, SecretKeySelector,
    };
    use kube::api::ObjectMeta;
    use pretty_assertions::assert_eq;

    #[derive(Default)]
    struct Objects {
        secrets: BTreeMap<String, ObjectData>,
        config_maps: BTreeMap<String, ObjectData>,
    }

    impl ObjectSource for Objects {
        fn secret(&self, name: &str) -> Option<ObjectData> {
            self.secrets.get(name).cloned()
        }
        fn config_map(&self, name: &str) -> Option<ObjectData> {
            self.config_maps.get(name).cloned()
        }
    }

    fn vars(map: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = map
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let lookup = vars(&[("POD_IP", "127.0.2.3"), ("EMPTY", "")]);
        let cases = [
            ("$(POD_IP):8080", "127.0.2.3:8080"),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(POD_IP)", "$(POD_IP)"),
            ("$$$(POD_IP)", "$127.0.2.3"),
            ("a$(EMPTY)b", "ab"),
            ("$(POD_IP", "$(POD_IP"),
            ("cost $5", "cost $5"),
            ("trailing $", "trailing $"),
            ("$", "$"),
            ("", ""),
            ("é$(POD_IP)ü", "é127.0.2.3ü"),
            ("$é", "$é"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, &lookup), expected, "{input}");
        }
    }

    fn env_var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn env_from(name: &str, source: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(source),
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("api-0".into()),
                namespace: Some("fp".into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: None,
        }
    }

    fn resolve(container: &Container, objects: &Objects) -> Result<EnvList, EnvError> {
        let pod = pod();
        let facts = PodRuntimeFacts {
            pod_ip: "127.0.2.3".into(),
            host_ip: "127.0.0.1".into(),
            ..Default::default()
        };
        let mut service_env = EnvList::default();
        service_env.set("KUBERNETES_SERVICE_HOST", "127.0.0.1");
        let rewrite = |value: &str| match value.strip_prefix("/etc/fp/jwt") {
            Some(rest) => format!("/state/pod/volumes/jwt{rest}"),
            None => value.to_string(),
        };
        let ctx = EnvContext {
            pod: &pod,
            facts: &facts,
            objects,
            service_env: &service_env,
            rewrite_path: &rewrite,
        };
        container_env(container, &ctx)
    }

    fn objects() -> Objects {
        Objects {
            secrets: BTreeMap::from([(
                "db".into(),
                BTreeMap::from([("url".into(), b"postgres://u@127.0.0.1/db".to_vec())]),
            )]),
            config_maps: BTreeMap::from([(
                "settings".into(),
                BTreeMap::from([
                    ("LEVEL".into(), b"debug".to_vec()),
                    ("MODE".into(), b"fast".to_vec()),
                ]),
            )]),
        }
    }

    #[test]
    fn builds_environment_in_kubelet_order() {
        let container = Container {
            name: "api".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "settings".into(),
                    optional: None,
                }),
                prefix: Some("CFG_".into()),
                secret_ref: None,
            }]),
            env: Some(vec![
                env_from(
                    "POD_IP",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "status.podIP".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    },
                ),
                env_var("FP_LISTEN", "$(POD_IP):8080"),
                env_var("LATER", "$(DEFINED_AFTER)"),
                env_var("DEFINED_AFTER", "x"),
                env_var("FP_JWT_KEYS_DIR", "/etc/fp/jwt"),
                env_var("API_HOST", "$(KUBERNETES_SERVICE_HOST)"),
                env_var("CFG_MODE", "$(CFG_MODE)-override"),
                env_from(
                    "FP_DATABASE_URL",
                    EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "db".into(),
                            key: "url".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                ),
            ]),
            ..Default::default()
        };
        let env = resolve(&container, &objects()).unwrap();
        let got: Vec<(&str, &str)> = env.iter().collect();
        assert_eq!(
            got,
            vec![
                ("CFG_LEVEL", "debug"),
                ("CFG_MODE", "fast-override"),
                ("POD_IP", "127.0.2.3"),
                ("FP_LISTEN", "127.0.2.3:8080"),
                ("LATER", "$(DEFINED_AFTER)"),
                ("DEFINED_AFTER", "x"),
                ("FP_JWT_KEYS_DIR", "/state/pod/volumes/jwt"),
                ("API_HOST", "127.0.0.1"),
                ("FP_DATABASE_URL", "postgres://u@127.0.0.1/db"),
                ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
            ]
        );
    }

    #[test]
    fn missing_references_fail_unless_optional() {
        let secret_ref = |name: &str, key: &str, optional| {
            env_from(
                "V",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: name.into(),
                        key: key.into(),
                        optional,
                    }),
                    ..Default::default()
                },
            )
        };
        let config_map_ref = |name: &str, key: &str, optional| {
            env_from(
                "V",
                EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: name.into(),
                        key: key.into(),
                        optional,
                    }),
                    ..Default::default()
                },
            )
        };
        let with = |var: EnvVar| Container {
            name: "c".into(),
            env: Some(vec![var]),
            ..Default::default()
        };
        let objects = objects();
        assert_eq!(
            resolve(&with(secret_ref("nope", "url", None)), &objects),
            Err(EnvError::SecretNotFound("nope".into()))
        );
        assert_eq!(
            resolve(&with(secret_ref("db", "nokey", Some(false))), &objects),
            Err(EnvError::SecretKeyNotFound {
                name: "db".into(),
                key: "nokey".into()
            })
        );
        assert_eq!(
            resolve(&with(config_map_ref("nope", "k", None)), &objects),
            Err(EnvError::ConfigMapNotFound("nope".into()))
        );
        assert_eq!(
            resolve(&with(config_map_ref("settings", "k", None)), &objects),
            Err(EnvError::ConfigMapKeyNotFound {
                name: "settings".into(),
                key: "k".into()
            })
        );
        for optional in [
            secret_ref("nope", "url", Some(true)),
            secret_ref("db", "nokey", Some(true)),
            config_map_ref("nope", "k", Some(true)),
            config_map_ref("settings", "k", Some(true)),
        ] {
            let env = resolve(&with(optional), &objects).unwrap();
            assert_eq!(env.get("V"), None);
        }
        // The error message names the object, never a value.
        let message = EnvError::SecretKeyNotFound {
            name: "db".into(),
            key: "url".into(),
        }
        .to_string();
        assert!(!message.contains("postgres"));
    }
}
