//! Which CustomResourceDefinitions are served: our own (for readiness) and the optional ones
//! (cert-manager, prometheus-operator) whose children are applied only when their CRD exists.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};

use crate::resources::Kind;

/// How long a discovery result is reused.
const CACHE_FOR: Duration = Duration::from_secs(60);

/// Whether a CRD exists and the API server reports it Established (its endpoints serve).
pub fn is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// Looks a CRD up by name.
pub async fn crd_served(client: &Client, name: &str) -> Result<bool, kube::Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    Ok(api
        .get_opt(name)
        .await?
        .as_ref()
        .is_some_and(is_established))
}

/// The optional CRDs the child kinds need.
pub fn optional_crds() -> BTreeSet<&'static str> {
    Kind::ALL.iter().filter_map(|k| k.required_crd()).collect()
}

/// Cached answers to "which optional CRDs are served now".
#[derive(Debug, Default)]
pub struct Capabilities {
    cache: Mutex<Option<(Instant, BTreeSet<&'static str>)>>,
}

impl Capabilities {
    /// The served optional CRDs. A failed lookup counts as not served (the kind is skipped and
    /// retried on a later reconcile) rather than failing the whole reconcile.
    pub async fn served(&self, client: &Client) -> BTreeSet<&'static str> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, served)) = cache.as_ref()
            && at.elapsed() < CACHE_FOR
        {
            return served.clone();
        }
        let mut served = BTreeSet::new();
        for crd in optional_crds() {
            match crd_served(client, crd).await {
                Ok(true) => {
                    served.insert(crd);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(crd, error = %e, "looking up an optional CRD failed"),
            }
        }
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((Instant::now(), served.clone()));
        }
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionCondition, CustomResourceDefinitionStatus,
    };

    fn crd(conditions: Vec<(&str, &str)>) -> CustomResourceDefinition {
        CustomResourceDefinition {
            status: Some(CustomResourceDefinitionStatus {
                conditions: Some(
                    conditions
                        .into_iter()
                        .map(|(t, s)| CustomResourceDefinitionCondition {
                            type_: t.into(),
                            status: s.into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn served_means_established() {
        assert!(is_established(&crd(vec![
            ("NamesAccepted", "True"),
            ("Established", "True")
        ])));
        assert!(!is_established(&crd(vec![
            ("NamesAccepted", "True"),
            ("Established", "False")
        ])));
        assert!(!is_established(&CustomResourceDefinition::default()));
    }

    #[test]
    fn the_optional_crds_are_cert_manager_and_prometheus_operator() {
        assert_eq!(
            optional_crds().into_iter().collect::<Vec<_>>(),
            [
                "certificates.cert-manager.io",
                "prometheusrules.monitoring.coreos.com",
                "servicemonitors.monitoring.coreos.com"
            ]
        );
    }
}
