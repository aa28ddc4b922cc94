//! Prometheus metrics of the operator. Every label comes from a fixed set (results, error categories,
//! child kinds, event reasons), never from object names or error text.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

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
    managed: IntGaugeVec,
    leader: IntGauge,
    /// Children per FootballPrediction (by uid), summed into `managed`.
    managed_by_instance: Mutex<HashMap<String, BTreeMap<Kind, i64>>>,
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
        for c in [
            &reconciles,
            &failures,
            &applies,
            &deletes,
            &status_patches,
            &events,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
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
            managed,
            leader,
            managed_by_instance: Mutex::new(HashMap::new()),
        })
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

    pub fn event(&self, reason: &'static str) {
        self.events.with_label_values(&[reason]).inc();
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
        map.retain(|k, _| alive.iter().any(|a| a == k));
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
