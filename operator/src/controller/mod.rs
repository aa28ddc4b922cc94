//! The reconcile pipeline: validate (pure) → build (pure) → apply → status (pure computation, one
//! patch); the Controller wiring, error policy, and leader-elected run loop.

pub mod analysis;
pub mod apply;
pub mod backup_health;
pub mod capabilities;
pub mod decide;
pub mod events;
pub mod observe;
pub mod reconcile;
pub mod rollout;
pub mod rollout_io;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::PartialObjectMeta;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::admin::{Readiness, Role};
use crate::crd::{Color, FootballPrediction, FootballPredictionStatus, labels};
use crate::leader::{LeaderElector, LeaseConfig};
use crate::metrics::Metrics;
use crate::resources::ChildError;
use crate::resources::certificate::Certificate;
use crate::resources::prometheus_rule::PrometheusRule;
use crate::resources::service_monitor::ServiceMonitor;
use crate::validate::Settings;
use capabilities::Capabilities;

/// Failures of one reconcile, each with a fixed category for metrics.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading referenced Secrets: {0}")]
    SecretLookup(#[source] kube::Error),
    #[error("listing children: {0}")]
    ListChildren(#[source] kube::Error),
    #[error("building children: {0}")]
    Build(#[from] ChildError),
    #[error("{0} children could not be applied (see the Degraded condition)")]
    Apply(usize),
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
    #[error("reading a child: {0}")]
    Decode(String),
}

impl Error {
    pub fn category(&self) -> &'static str {
        match self {
            Self::SecretLookup(_) => "secret_lookup",
            Self::ListChildren(_) => "list_children",
            Self::Build(_) => "build",
            Self::Apply(_) => "apply",
            Self::Status(_) => "status",
            Self::Decode(_) => "decode",
        }
    }
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub memo: apply::Memo,
    pub capabilities: Capabilities,
    store: Store<DeserializeGuard<FootballPrediction>>,
    failures: Mutex<HashMap<String, u32>>,
    undecodable: Mutex<HashMap<String, String>>,
    /// HTTP client of the rollout analysis (pods are probed directly).
    pub probe_client: reqwest::Client,
    /// Webhook deliveries, in the background, never blocking a reconcile.
    pub notifier: crate::notify::Notifier,
    /// Request counters scraped at the previous analysis round, per (uid, color).
    request_counts: Mutex<HashMap<(String, Color), analysis::RequestCounts>>,
    /// The status this replica wrote last, per uid: the watch cache can lag behind our own write,
    /// and the rollout must step from the state it wrote, not an older one.
    written: Mutex<HashMap<String, FootballPredictionStatus>>,
}

impl Context {
    fn new(
        client: Client,
        config: &RunConfig,
        metrics: Arc<Metrics>,
        capabilities: Capabilities,
        store: Store<DeserializeGuard<FootballPrediction>>,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), config.reporter.clone()),
            client,
            metrics,
            settings: config.settings.clone(),
            memo: apply::Memo::default(),
            capabilities,
            store,
            failures: Mutex::new(HashMap::new()),
            undecodable: Mutex::new(HashMap::new()),
            probe_client: config.probe_client.clone(),
            notifier: crate::notify::Notifier::spawn(
                config.webhook_client.clone(),
                crate::notify::RetryPolicy {
                    allow_internal_addresses: config.allow_internal_webhooks,
                    ..crate::notify::RetryPolicy::default()
                },
            ),
            request_counts: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// A context around `client` (a fake API server in tests), with fresh memos and metrics.
    #[cfg(test)]
    pub(crate) fn for_tests(client: Client) -> Self {
        let config = RunConfig {
            namespace: None,
            settings: Settings {
                operator_namespace: Some("fp-system".into()),
                pinned_api_image: None,
            },
            leader: None,
            concurrency: 1,
            reporter: Reporter {
                controller: "fp-operator".into(),
                instance: None,
            },
            probe_client: reqwest::Client::new(),
            webhook_client: reqwest::Client::new(),
            allow_internal_webhooks: false,
        };
        let metrics = Arc::new(Metrics::new().expect("metrics register once per registry"));
        let store = kube::runtime::reflector::store().0;
        Self::new(client, &config, metrics, Capabilities::default(), store)
    }

    fn store(&self) -> Vec<Arc<DeserializeGuard<FootballPrediction>>> {
        self.store.state()
    }

    /// Stores the counters of this round and returns those of the previous one.
    fn request_counts(
        &self,
        key: &(String, Color),
        now: analysis::RequestCounts,
    ) -> Option<analysis::RequestCounts> {
        let mut counts = self.request_counts.lock().ok()?;
        counts.insert(key.clone(), now)
    }

    fn remember_status(&self, uid: &str, status: &FootballPredictionStatus) {
        if let Ok(mut w) = self.written.lock() {
            w.insert(uid.to_owned(), status.clone());
        }
        self.forget_deleted();
    }

    /// Drops what the per-object memos hold for objects no longer in the cache: deleted objects
    /// get no reconcile to clean up after themselves.
    fn forget_deleted(&self) {
        let live: HashSet<String> = self
            .store()
            .iter()
            .filter_map(|guard| guard.meta().uid.clone())
            .collect();
        if let Ok(mut w) = self.written.lock() {
            retain_live(&mut w, &live, |uid| uid);
        }
        if let Ok(mut counts) = self.request_counts.lock() {
            retain_live(&mut counts, &live, |(uid, _)| uid);
        }
        if let Ok(mut f) = self.failures.lock() {
            retain_live(&mut f, &live, |uid| uid);
        }
        if let Ok(mut seen) = self.undecodable.lock() {
            retain_live(&mut seen, &live, |uid| uid);
        }
    }

    /// The status to step from: what this replica wrote last, when the cache has not caught up.
    fn latest_status(&self, fp: &FootballPrediction) -> Option<FootballPredictionStatus> {
        let uid = fp.metadata.uid.as_deref()?;
        let written = self.written.lock().ok()?.get(uid).cloned();
        written.or_else(|| fp.status.clone())
    }

    fn reset_failures(&self, uid: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(uid);
        }
    }

    /// Counts a failure and returns how many happened in a row.
    fn count_failure(&self, uid: &str) -> u32 {
        let Ok(mut f) = self.failures.lock() else {
            return 1;
        };
        let n = f.entry(uid.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// True the first time this decode error is seen for this object.
    fn first_report_of(&self, uid: &str, error: &str) -> bool {
        let Ok(mut seen) = self.undecodable.lock() else {
            return true;
        };
        seen.insert(uid.to_owned(), error.to_owned()).as_deref() != Some(error)
    }
}

/// The instances in `namespace` whose API pods read Secret `name`.
fn instances_reading_secret(
    instances: &[Arc<DeserializeGuard<FootballPrediction>>],
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<DeserializeGuard<FootballPrediction>>> {
    instances
        .iter()
        .filter_map(|guard| guard.0.as_ref().ok())
        .filter(|fp| fp.namespace().as_deref() == Some(namespace))
        .filter(|fp| {
            let names = crate::validate::Names::new(fp.name_any());
            crate::validate::pod_secret_names(&fp.spec, &names)
                .iter()
                .any(|n| n == name)
        })
        .map(|fp| ObjectRef::new(&fp.name_any()).within(namespace))
        .collect()
}

/// Keeps the entries whose object (by uid) is still live.
fn retain_live<K, V>(
    memo: &mut HashMap<K, V>,
    live: &HashSet<String>,
    uid_of: impl Fn(&K) -> &String,
) {
    memo.retain(|key, _| live.contains(uid_of(key)));
}

/// Exponential backoff per object: 5s, 10s, 20s … capped at 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    (Duration::from_secs(5) * 2u32.pow(exponent)).min(Duration::from_secs(300))
}

fn error_policy(
    guard: Arc<DeserializeGuard<FootballPrediction>>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.failed(error.category());
    let uid = guard.meta().uid.clone().unwrap_or_default();
    let delay = backoff(ctx.count_failure(&uid));
    tracing::warn!(
        namespace = guard.meta().namespace.as_deref().unwrap_or_default(),
        name = guard.meta().name.as_deref().unwrap_or_default(),
        category = error.category(),
        error = %error,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// How the operator runs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    pub settings: Settings,
    /// Leader election; `None` runs as the only replica.
    pub leader: Option<LeaseConfig>,
    /// Reconciles at once.
    pub concurrency: u16,
    /// Name in events (`reportingController`) and its instance.
    pub reporter: Reporter,
    /// HTTP client of the rollout analysis.
    pub probe_client: reqwest::Client,
    /// HTTP client of the webhook notifications (TLS to the outside world; `notify::webhook_client`).
    pub webhook_client: reqwest::Client,
    /// Webhooks may also be loopback, link-local or metadata addresses (off: SSRF).
    pub allow_internal_webhooks: bool,
}

/// Why [`run`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop (SIGTERM): finished in-flight reconciles and released the lease.
    Stopped,
    /// Another replica took the lease or it could not be renewed: stop at once.
    LostLeadership,
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until `stop` becomes true or leadership is lost.
pub async fn run(
    client: Client,
    config: RunConfig,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    stop: watch::Receiver<bool>,
) -> Exit {
    let mut elector = config
        .leader
        .clone()
        .map(|cfg| LeaderElector::new(client.clone(), cfg));
    if let Some(elector) = elector.as_mut() {
        readiness.set_role(Role::Standby);
        tracing::info!(lease = %elector.config().name, identity = %elector.config().identity, "waiting for the leader lease");
        if !elector.acquire(&stop).await {
            return Exit::Stopped;
        }
        tracing::info!("acquired the leader lease");
    }
    metrics.set_leader(true);
    readiness.set_role(Role::Leader);

    let controller = tokio::spawn(run_controller(
        client,
        config,
        metrics.clone(),
        readiness.clone(),
        stop.clone(),
    ));
    let exit = match elector.as_mut() {
        None => {
            let _ = controller.await;
            Exit::Stopped
        }
        Some(elector) => {
            let mut controller = controller;
            tokio::select! {
                _ = &mut controller => {
                    elector.release().await;
                    Exit::Stopped
                }
                still_held = elector.hold(&stop) => {
                    if still_held {
                        // Stopping: let in-flight reconciles finish, then hand the lease over.
                        let _ = controller.await;
                        elector.release().await;
                        Exit::Stopped
                    } else {
                        controller.abort();
                        Exit::LostLeadership
                    }
                }
            }
        }
    };
    metrics.set_leader(false);
    exit
}

async fn run_controller(
    client: Client,
    config: RunConfig,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    stop: watch::Receiver<bool>,
) {
    let capabilities = Capabilities::default();
    let served = capabilities.served(&client).await;
    let controller = controller(&client, config.namespace.as_deref(), &served, &config);
    let store = controller.store();
    report_synced(store.clone(), readiness);
    let ctx = Arc::new(Context::new(client, &config, metrics, capabilities, store));
    let mut stop = stop;
    controller
        .graceful_shutdown_on(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(namespace = ?object.namespace, name = %object.name, "reconciled"),
                Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
                Err(e) => tracing::warn!(error = %e, "controller"),
            }
        })
        .await;
    tracing::info!("controller stopped");
}

/// The controller and what it watches: FootballPredictions, the children it owns, the optional
/// kinds whose CRD is `served` at start-up, and the user's Secrets the API pods read.
fn controller(
    client: &Client,
    ns: Option<&str>,
    served: &std::collections::BTreeSet<&'static str>,
    config: &RunConfig,
) -> Controller<DeserializeGuard<FootballPrediction>> {
    let main: Api<DeserializeGuard<FootballPrediction>> = api(client, ns);
    // Children are watched only if we manage them: keeps the caches small.
    let children = watcher::Config::default().labels(&format!(
        "{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE
    ));
    let controller_config = ControllerConfig::default()
        .debounce(Duration::from_millis(500))
        .concurrency(config.concurrency);
    let mut controller = Controller::new(main, watcher::Config::default().any_semantic())
        .with_config(controller_config)
        .owns(api::<ServiceAccount>(client, ns), children.clone())
        .owns(api::<ConfigMap>(client, ns), children.clone())
        .owns(api::<Secret>(client, ns), children.clone())
        .owns(api::<Deployment>(client, ns), children.clone())
        .owns(api::<Service>(client, ns), children.clone())
        .owns(api::<Ingress>(client, ns), children.clone())
        .owns(api::<PodDisruptionBudget>(client, ns), children.clone())
        .owns(api::<HorizontalPodAutoscaler>(client, ns), children.clone())
        .owns(api::<NetworkPolicy>(client, ns), children.clone())
        // By instance label rather than ownerReference: backup Jobs belong to their CronJobs,
        // and their results feed status.backup.
        .watches(api::<Job>(client, ns), children.clone(), |job: Job| {
            let instance = job.labels().get(labels::INSTANCE)?.clone();
            Some(ObjectRef::new(&instance).within(&job.namespace()?))
        })
        .owns(api::<CronJob>(client, ns), children.clone());
    // Optional kinds are watched only if their CRD is served at start-up (a watch on a missing
    // resource would fail forever); they are still reconciled periodically when added later.
    if served.contains(crate::resources::certificate::CRD) {
        controller = controller.owns(api::<Certificate>(client, ns), children.clone());
    }
    if served.contains(crate::resources::prometheus_rule::CRD) {
        controller = controller.owns(api::<PrometheusRule>(client, ns), children.clone());
    }
    if served.contains(crate::resources::service_monitor::CRD) {
        controller = controller.owns(api::<ServiceMonitor>(client, ns), children.clone());
    }
    // An edit of a user's Secret the API pods read (e.g. the database URL) is a new release: map
    // it to the instances of its namespace that name it. Watched as metadata only (the
    // resourceVersion tells an edit): no Secret's data is streamed to or held by the operator,
    // however many and however large the namespace's Secrets (Helm keeps releases in them).
    let referencing = controller.store();
    controller.watches(
        api::<PartialObjectMeta<Secret>>(client, ns),
        watcher::Config::default(),
        move |secret: PartialObjectMeta<Secret>| {
            let (Some(namespace), Some(name)) = (secret.namespace(), secret.metadata.name) else {
                return Vec::new();
            };
            instances_reading_secret(&referencing.state(), &namespace, &name)
        },
    )
}

/// Marks the readiness endpoint once the FootballPrediction cache has synced.
fn report_synced(synced: Store<DeserializeGuard<FootballPrediction>>, readiness: Arc<Readiness>) {
    tokio::spawn(async move {
        // The store's ready signal wakes only its most recent waiter (the controller's runner), so
        // look again every second rather than wait once.
        loop {
            match tokio::time::timeout(Duration::from_secs(1), synced.wait_until_ready()).await {
                Ok(Ok(())) => {
                    readiness.set_caches_synced(true);
                    tracing::info!("FootballPrediction cache synced");
                    return;
                }
                Ok(Err(_)) => return,
                Err(_) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(7), Duration::from_secs(300));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn memos_of_deleted_objects_are_dropped() {
        let live = HashSet::from(["a".to_owned()]);
        let mut by_uid = HashMap::from([("a".to_owned(), 1), ("gone".to_owned(), 2)]);
        retain_live(&mut by_uid, &live, |uid| uid);
        assert_eq!(by_uid, HashMap::from([("a".to_owned(), 1)]));
        let mut by_color = HashMap::from([
            (("a".to_owned(), Color::Blue), 1),
            (("gone".to_owned(), Color::Green), 2),
        ]);
        retain_live(&mut by_color, &live, |(uid, _)| uid);
        assert_eq!(by_color.len(), 1);
        assert!(by_color.contains_key(&("a".to_owned(), Color::Blue)));
    }

    #[test]
    fn an_edited_secret_wakes_the_instances_whose_pods_read_it() {
        let instance = |namespace: &str, name: &str, spec: serde_json::Value| {
            let fp: FootballPrediction = serde_json::from_value(serde_json::json!({
                "apiVersion": "footballprediction.io/v1alpha1", "kind": "FootballPrediction",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec}))
            .unwrap();
            Arc::new(DeserializeGuard(Ok(fp)))
        };
        let all = [
            // Reads the default `<name>-database`.
            instance("football", "prod", serde_json::json!({"version": "1"})),
            instance(
                "football",
                "staging",
                serde_json::json!({"version": "1",
                    "database": {"urlSecretRef": {"name": "shared-db", "key": "url"}},
                    "auth": {"adminPasswordSecretRef": {"name": "admins", "key": "pw"}}}),
            ),
            instance("other", "prod", serde_json::json!({"version": "1"})),
        ];
        let names = |secret: &str| -> Vec<String> {
            instances_reading_secret(&all, "football", secret)
                .iter()
                .map(|r| r.name.clone())
                .collect()
        };
        assert_eq!(names("prod-database"), ["prod"]);
        assert_eq!(names("shared-db"), ["staging"]);
        assert_eq!(names("admins"), ["staging"]);
        assert!(
            names("staging-database").is_empty(),
            "staging names its own"
        );
        assert!(names("unrelated").is_empty());
    }

    #[test]
    fn error_categories_are_a_fixed_set() {
        let e = Error::Apply(2);
        assert_eq!(e.category(), "apply");
        assert_eq!(
            e.to_string(),
            "2 children could not be applied (see the Degraded condition)"
        );
    }
}
