//! The series that name one FootballPrediction (`fp_namespace`, `fp_name`): the alert rules judge
//! each instance's backups and rollouts by them. They are removed when the instance is deleted,
//! so the operator's memory and the scrape stay bounded by the instances that exist.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::crd::{BackupStatus, RollbackRecord, RolloutStatus};
use crate::reason::Reason;

const LABELS: [&str; 2] = ["fp_namespace", "fp_name"];
const LABELS_AND_REASON: [&str; 3] = ["fp_namespace", "fp_name", "reason"];

/// The failure class at the start of `lastFailureReason` ("StorageAccessDenied: …"), a fixed set
/// (the backup program's reasons and the Job controller's); anything else is "Other".
pub fn failure_reason_label(reason: &str) -> &str {
    let head = reason.split(':').next().unwrap_or_default();
    let camel = head.len() <= 40
        && head.starts_with(|c: char| c.is_ascii_uppercase())
        && head.chars().all(|c| c.is_ascii_alphanumeric());
    if camel { head } else { "Other" }
}

/// The reasons counted for one instance, so its counters can be removed with it.
#[derive(Default)]
struct Counted {
    backup_failures: BTreeSet<String>,
    rollbacks: BTreeSet<String>,
}

pub struct InstanceSeries {
    backup_last_success: GaugeVec,
    backup_last_failure: GaugeVec,
    backup_last_verify_success: GaugeVec,
    backup_last_verify_passed: IntGaugeVec,
    backup_bytes: IntGaugeVec,
    backup_failures: IntCounterVec,
    rollbacks: IntCounterVec,
    rollout_started: GaugeVec,
    last_rollback: GaugeVec,
    known: Mutex<BTreeMap<(String, String), Counted>>,
}

fn seconds(t: &Time) -> f64 {
    t.0.as_millisecond() as f64 / 1000.0
}

impl InstanceSeries {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| GaugeVec::new(Opts::new(name, help), &LABELS);
        let int_gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &LABELS);
        let counter =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &LABELS_AND_REASON);
        let series = Self {
            backup_last_success: gauge(
                "fp_backup_last_success_timestamp_seconds",
                "End of the newest successful backup, per FootballPrediction",
            )?,
            backup_last_failure: gauge(
                "fp_backup_last_failure_timestamp_seconds",
                "End of the newest failed backup, per FootballPrediction",
            )?,
            backup_last_verify_success: gauge(
                "fp_backup_last_verify_success_timestamp_seconds",
                "End of the newest passed restore drill seen by this process",
            )?,
            backup_last_verify_passed: int_gauge(
                "fp_backup_last_verify_passed",
                "1 when the newest restore drill passed, 0 when it failed",
            )?,
            backup_bytes: int_gauge(
                "fp_backup_bytes",
                "Size of the kept backups at the first destination",
            )?,
            backup_failures: counter(
                "fp_backup_failures_total",
                "Failed backup Jobs seen, by reason",
            )?,
            rollbacks: counter(
                "fp_operator_rollbacks_total",
                "Rollouts stopped with traffic kept on (or returned to) the last good color, by reason",
            )?,
            rollout_started: gauge(
                "fp_rollout_started_timestamp_seconds",
                "Start of the rollout in flight; absent while none runs",
            )?,
            last_rollback: gauge(
                "fp_rollout_last_rollback_timestamp_seconds",
                "When the newest rollback happened (status.lastRollback.at)",
            )?,
            known: Mutex::new(BTreeMap::new()),
        };
        registry.register(Box::new(series.backup_last_success.clone()))?;
        registry.register(Box::new(series.backup_last_failure.clone()))?;
        registry.register(Box::new(series.backup_last_verify_success.clone()))?;
        registry.register(Box::new(series.backup_last_verify_passed.clone()))?;
        registry.register(Box::new(series.backup_bytes.clone()))?;
        registry.register(Box::new(series.backup_failures.clone()))?;
        registry.register(Box::new(series.rollbacks.clone()))?;
        registry.register(Box::new(series.rollout_started.clone()))?;
        registry.register(Box::new(series.last_rollback.clone()))?;
        Ok(series)
    }

    fn counted(&self, namespace: &str, name: &str, record: impl FnOnce(&mut Counted)) {
        if let Ok(mut known) = self.known.lock() {
            record(
                known
                    .entry((namespace.to_owned(), name.to_owned()))
                    .or_default(),
            );
        }
    }

    /// Publishes one instance's backup status (`None`: backups off, its backup gauges go).
    pub fn set_backup(&self, namespace: &str, name: &str, status: Option<&BackupStatus>) {
        let labels = [namespace, name];
        let Some(status) = status else {
            self.remove_backup_gauges(&labels);
            return;
        };
        self.counted(namespace, name, |_| {});
        if let Some(at) = &status.last_successful_at {
            self.backup_last_success
                .with_label_values(&labels)
                .set(seconds(at));
        }
        if let Some(at) = &status.last_failed_at {
            self.backup_last_failure
                .with_label_values(&labels)
                .set(seconds(at));
        }
        match status.last_verify_result.as_deref() {
            Some("Passed") => {
                if let Some(at) = &status.last_verified_at {
                    self.backup_last_verify_success
                        .with_label_values(&labels)
                        .set(seconds(at));
                }
                self.backup_last_verify_passed
                    .with_label_values(&labels)
                    .set(1);
            }
            Some(_) => self
                .backup_last_verify_passed
                .with_label_values(&labels)
                .set(0),
            None => {}
        }
        if let Some(bytes) = status.bytes {
            self.backup_bytes.with_label_values(&labels).set(bytes);
        }
    }

    /// Publishes the start of the rollout in flight (removed when none runs) and the time of
    /// the newest rollback.
    pub fn set_rollout(
        &self,
        namespace: &str,
        name: &str,
        rollout: Option<&RolloutStatus>,
        last_rollback: Option<&RollbackRecord>,
    ) {
        let labels = [namespace, name];
        self.counted(namespace, name, |_| {});
        match rollout
            .filter(|r| r.stage.in_progress())
            .and_then(|r| r.started_at.as_ref())
        {
            Some(at) => self
                .rollout_started
                .with_label_values(&labels)
                .set(seconds(at)),
            None => {
                let _ = self.rollout_started.remove_label_values(&labels);
            }
        }
        if let Some(record) = last_rollback {
            self.last_rollback
                .with_label_values(&labels)
                .set(seconds(&record.at));
        }
    }

    /// Counts a newly recorded backup failure.
    pub fn backup_failed(&self, namespace: &str, name: &str, reason: &str) {
        let label = failure_reason_label(reason);
        self.counted(namespace, name, |c| {
            c.backup_failures.insert(label.to_owned());
        });
        self.backup_failures
            .with_label_values(&[namespace, name, label])
            .inc();
    }

    /// Counts a rollout stopped with traffic on the last good color.
    pub fn rolled_back(&self, namespace: &str, name: &str, reason: Reason) {
        self.counted(namespace, name, |c| {
            c.rollbacks.insert(reason.as_str().to_owned());
        });
        self.rollbacks
            .with_label_values(&[namespace, name, reason.as_str()])
            .inc();
    }

    /// Removes the series of instances that no longer exist.
    pub fn retain(&self, alive: &[(String, String)]) {
        let alive: HashSet<&(String, String)> = alive.iter().collect();
        let gone: Vec<((String, String), Counted)> = match self.known.lock() {
            Ok(mut known) => {
                let keys: Vec<(String, String)> = known
                    .keys()
                    .filter(|k| !alive.contains(k))
                    .cloned()
                    .collect();
                keys.into_iter()
                    .filter_map(|k| known.remove(&k).map(|c| (k, c)))
                    .collect()
            }
            Err(_) => return,
        };
        for ((namespace, name), counted) in gone {
            let labels = [namespace.as_str(), name.as_str()];
            self.remove_backup_gauges(&labels);
            let _ = self.rollout_started.remove_label_values(&labels);
            let _ = self.last_rollback.remove_label_values(&labels);
            for reason in counted.backup_failures {
                let _ = self
                    .backup_failures
                    .remove_label_values(&[&namespace, &name, &reason]);
            }
            for reason in counted.rollbacks {
                let _ = self
                    .rollbacks
                    .remove_label_values(&[&namespace, &name, &reason]);
            }
        }
    }

    fn remove_backup_gauges(&self, labels: &[&str; 2]) {
        let _ = self.backup_last_success.remove_label_values(labels);
        let _ = self.backup_last_failure.remove_label_values(labels);
        let _ = self.backup_last_verify_success.remove_label_values(labels);
        let _ = self.backup_last_verify_passed.remove_label_values(labels);
        let _ = self.backup_bytes.remove_label_values(labels);
    }
}
