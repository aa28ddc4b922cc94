//! Prometheus metrics of the operator. Every label comes from a fixed set (results, error categories,
//! child kinds, event reasons), never from error text. The per-instance series (`instance.rs`)
//! are the exception that names objects, removed when their FootballPrediction is deleted.

mod instance;

pub use instance::{InstanceSeries, failure_reason_label};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

#[cfg(test)]
use crate::crd::{BackupStatus, RollbackRecord, RolloutStatus};
use crate::kube_requests::CountRequestsLayer;
use crate::reason::Reason;
use crate::resources::Kind;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("registering metrics: {0}")]
    Register(#[from] prometheus::Error),
}

/// Outcome of one reconcile, a fixed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcileResult {
    Success,
    InvalidSpec,
    MissingDependency,
    Error,
}

impl ReconcileResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::InvalidSpec => "invalid_spec",
            Self::MissingDependency => "missing_dependency",
            Self::Error => "error",
        }
    }
}

/// What happened to one child during apply, a fixed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyResult {
    Created,
    Updated,
    Unchanged,
    Failed,
}

impl ApplyResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Failed => "failed",
        }
    }
}

pub struct Metrics {
    pub registry: Registry,
    reconciles: IntCounterVec,
    failures: IntCounterVec,
    duration: HistogramVec,
    applies: IntCounterVec,
    deletes: IntCounterVec,
    status_patches: IntCounterVec,
    events: IntCounterVec,
    rollouts: IntCounterVec,
    managed: IntGaugeVec,
    leader: IntGauge,
    kube_requests: IntCounterVec,
    /// Children per FootballPrediction (by uid), summed into `managed`.
    managed_by_instance: Mutex<HashMap<String, BTreeMap<Kind, i64>>>,
    /// Series per FootballPrediction (backups, rollouts).
    pub instances: InstanceSeries,
}

impl Metrics {
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("fp_operator_reconciliations_total", "Reconciles by result"),
            &["result"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "fp_operator_reconcile_failures_total",
                "Failed reconciles by error category",
            ),
            &["category"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "fp_operator_reconcile_duration_seconds",
                "Time of one reconcile",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["result"],
        )?;
        let applies = IntCounterVec::new(
            Opts::new(
                "fp_operator_applies_total",
                "Children considered for server-side apply, by kind and result",
            ),
            &["kind", "result"],
        )?;
        let deletes = IntCounterVec::new(
            Opts::new(
                "fp_operator_deletes_total",
                "Children deleted because they are no longer built, by kind",
            ),
            &["kind"],
        )?;
        let status_patches = IntCounterVec::new(
            Opts::new(
                "fp_operator_status_patches_total",
                "Status writes, by whether the status changed",
            ),
            &["result"],
        )?;
        let events = IntCounterVec::new(
            Opts::new(
                "fp_operator_events_total",
                "Kubernetes events published, by reason",
            ),
            &["reason"],
        )?;
        let rollouts = IntCounterVec::new(
            Opts::new(
                "fp_operator_rollouts_total",
                "Rollouts by result: started, succeeded, rolled_back",
            ),
            &["result"],
        )?;
        let managed = IntGaugeVec::new(
            Opts::new(
                "fp_operator_managed_objects",
                "Children the operator manages, by kind",
            ),
            &["kind"],
        )?;
        let leader = IntGauge::new(
            "fp_operator_leader",
            "1 while this replica holds the leader lease",
        )?;
        let kube_requests = IntCounterVec::new(
            Opts::new(
                "fp_operator_kube_requests_total",
                "Requests this process sent to the Kubernetes API server, by verb and resource type",
            ),
            &["verb", "resource"],
        )?;
        for c in [
            &kube_requests,
            &reconciles,
            &failures,
            &applies,
            &deletes,
            &status_patches,
            &events,
            &rollouts,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        let instances = InstanceSeries::register(&registry)?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(managed.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            failures,
            duration,
            applies,
            deletes,
            status_patches,
            events,
            rollouts,
            managed,
            leader,
            kube_requests,
            managed_by_instance: Mutex::new(HashMap::new()),
            instances,
        })
    }

    /// The layer that counts the kube client's requests into `fp_operator_kube_requests_total`.
    pub fn kube_request_layer(&self) -> CountRequestsLayer {
        CountRequestsLayer::new(self.kube_requests.clone())
    }

    pub fn reconciled(&self, result: ReconcileResult, took: Duration) {
        self.reconciles.with_label_values(&[result.as_str()]).inc();
        self.duration
            .with_label_values(&[result.as_str()])
            .observe(took.as_secs_f64());
    }

    pub fn failed(&self, category: &'static str) {
        self.failures.with_label_values(&[category]).inc();
    }

    pub fn applied(&self, kind: Kind, result: ApplyResult) {
        self.applies
            .with_label_values(&[kind.as_str(), result.as_str()])
            .inc();
    }

    pub fn deleted(&self, kind: Kind) {
        self.deletes.with_label_values(&[kind.as_str()]).inc();
    }

    pub fn status_patched(&self, changed: bool) {
        self.status_patches
            .with_label_values(&[if changed { "patched" } else { "unchanged" }])
            .inc();
    }

    /// A rollout of `namespace/name` stopped, and why.
    pub fn rolled_back(&self, namespace: &str, name: &str, reason: Reason) {
        self.instances.rolled_back(namespace, name, reason);
        self.rollouts.with_label_values(&["rolled_back"]).inc();
    }

    /// A rollout started or succeeded.
    pub fn rollout(&self, result: &'static str) {
        self.rollouts.with_label_values(&[result]).inc();
    }

    pub fn event(&self, reason: Reason) {
        self.events.with_label_values(&[reason.as_str()]).inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Records the children of one FootballPrediction and forgets instances not in `alive`.
    pub fn set_managed(&self, uid: &str, counts: BTreeMap<Kind, i64>, alive: &[String]) {
        let Ok(mut map) = self.managed_by_instance.lock() else {
            return;
        };
        map.insert(uid.to_owned(), counts);
        // A set: every reconcile passes all instances, so a list scan here would be quadratic.
        let alive: HashSet<&str> = alive.iter().map(String::as_str).collect();
        map.retain(|k, _| alive.contains(k.as_str()));
        let mut totals: BTreeMap<Kind, i64> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
        for counts in map.values() {
            for (kind, n) in counts {
                *totals.entry(*kind).or_default() += n;
            }
        }
        for (kind, n) in totals {
            self.managed.with_label_values(&[kind.as_str()]).set(n);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_renders_with_bounded_labels() {
        let m = Metrics::new().unwrap();
        m.reconciled(ReconcileResult::Success, Duration::from_millis(20));
        m.failed("apply");
        m.applied(Kind::Deployment, ApplyResult::Unchanged);
        m.set_leader(true);
        let text = m.render();
        assert!(
            text.contains("fp_operator_reconciliations_total{result=\"success\"} 1"),
            "{text}"
        );
        assert!(text.contains("fp_operator_reconcile_failures_total{category=\"apply\"} 1"));
        assert!(
            text.contains("fp_operator_applies_total{kind=\"Deployment\",result=\"unchanged\"} 1")
        );
        assert!(text.contains(
            "fp_operator_reconcile_duration_seconds_bucket{result=\"success\",le=\"0.025\"} 1"
        ));
        assert!(text.contains("fp_operator_leader 1"));
    }

    #[tokio::test]
    async fn kube_requests_are_registered_and_rendered() {
        use tower::{Layer, ServiceExt};
        let m = Metrics::new().unwrap();
        let server = tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(()))
        });
        let service = m.kube_request_layer().layer(server);
        let request = http::Request::get("/api/v1/namespaces/football/pods?labelSelector=x")
            .body(())
            .unwrap();
        service.oneshot(request).await.unwrap();
        let text = m.render();
        assert!(
            text.contains("fp_operator_kube_requests_total{resource=\"pods\",verb=\"list\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn backup_series_per_instance_and_removed_with_it() {
        let m = Metrics::new().unwrap();
        let status: BackupStatus = serde_json::from_value(serde_json::json!({
            "lastSuccessfulAt": "2026-11-29T03:00:00Z", "bytes": 2048,
            "lastFailedAt": "2026-11-29T09:00:00Z",
            "lastVerifiedAt": "2026-11-30T05:00:00Z", "lastVerifyResult": "Passed"}))
        .unwrap();
        m.instances.set_backup("football", "prod", Some(&status));
        m.instances.backup_failed(
            "football",
            "prod",
            "StorageAccessDenied: s3://b rejected the credentials",
        );
        m.instances
            .backup_failed("football", "prod", "the Job failed without a summary");
        let text = m.render();
        assert!(
            text.contains("fp_backup_last_success_timestamp_seconds{fp_name=\"prod\",fp_namespace=\"football\"} 1795921200"),
            "{text}"
        );
        assert!(text.contains("fp_backup_bytes{fp_name=\"prod\",fp_namespace=\"football\"} 2048"));
        assert!(text.contains("fp_backup_last_failure_timestamp_seconds{fp_name=\"prod\",fp_namespace=\"football\"} 1795942800"));
        assert!(text.contains("fp_backup_last_verify_success_timestamp_seconds{fp_name=\"prod\",fp_namespace=\"football\"} 1796014800"));
        assert!(text.contains("reason=\"StorageAccessDenied\"} 1"), "{text}");
        assert!(text.contains("reason=\"Other\"} 1"), "{text}");
        assert!(text.contains(
            "fp_backup_last_verify_passed{fp_name=\"prod\",fp_namespace=\"football\"} 1"
        ));

        let rollout: RolloutStatus = serde_json::from_value(serde_json::json!({
            "stage": "Analysing", "startedAt": "2026-11-30T05:00:00Z"}))
        .unwrap();
        let record: RollbackRecord = serde_json::from_value(serde_json::json!({
            "at": "2026-11-30T05:10:00Z", "fromVersion": "2", "toVersion": "1",
            "reason": "AnalysisFailed"}))
        .unwrap();
        m.instances
            .set_rollout("football", "prod", Some(&rollout), Some(&record));
        m.rolled_back("football", "prod", Reason::AnalysisFailed);
        let text = m.render();
        assert!(text.contains(
            "fp_rollout_started_timestamp_seconds{fp_name=\"prod\",fp_namespace=\"football\"} 1796014800"
        ));
        assert!(text.contains("fp_operator_rollbacks_total{fp_name=\"prod\",fp_namespace=\"football\",reason=\"AnalysisFailed\"} 1"), "{text}");
        assert!(text.contains("fp_operator_rollouts_total{result=\"rolled_back\"} 1"));
        // The rollout ended: its start goes.
        let idle = RolloutStatus::default();
        m.instances
            .set_rollout("football", "prod", Some(&idle), Some(&record));
        let text = m.render();
        assert!(!text.contains("fp_rollout_started_timestamp_seconds{"));
        assert!(text.contains("fp_rollout_last_rollback_timestamp_seconds{fp_name=\"prod\",fp_namespace=\"football\"} 1796015400"), "{text}");
        m.instances
            .set_rollout("football", "prod", Some(&rollout), None);

        m.instances
            .retain(&[("football".to_owned(), "other".to_owned())]);
        let text = m.render();
        assert!(!text.contains("fp_name=\"prod\""), "{text}");
    }

    #[test]
    fn failure_reasons_are_a_bounded_set() {
        assert_eq!(
            failure_reason_label("DatabaseUnavailable: x"),
            "DatabaseUnavailable"
        );
        assert_eq!(failure_reason_label("DeadlineExceeded"), "DeadlineExceeded");
        assert_eq!(failure_reason_label("segfault at 0x0"), "Other");
        assert_eq!(failure_reason_label("Weird reason: x"), "Other");
    }

    #[test]
    fn managed_objects_sum_over_live_instances_only() {
        let m = Metrics::new().unwrap();
        m.set_managed("a", BTreeMap::from([(Kind::Deployment, 2)]), &["a".into()]);
        m.set_managed(
            "b",
            BTreeMap::from([(Kind::Deployment, 2), (Kind::Service, 2)]),
            &["a".into(), "b".into()],
        );
        assert!(
            m.render()
                .contains("fp_operator_managed_objects{kind=\"Deployment\"} 4")
        );
        // "a" was deleted: its children no longer count.
        m.set_managed("b", BTreeMap::from([(Kind::Deployment, 2)]), &["b".into()]);
        let text = m.render();
        assert!(
            text.contains("fp_operator_managed_objects{kind=\"Deployment\"} 2"),
            "{text}"
        );
        assert!(text.contains("fp_operator_managed_objects{kind=\"Service\"} 0"));
    }
}
