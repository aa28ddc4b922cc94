//! What each alert watches. The expressions read the API pods' own series (scraped through the
//! active Service by the ServiceMonitor), the operator's per-instance series (`fp_namespace`,
//! `fp_name`), kube-state-metrics, the kubelet and cert-manager. Every threshold comes from
//! `spec.monitoring.prometheusRule.thresholds`.

use crate::crd::{Alert, BackupSpec, Color, Severity};
use crate::cron::{expected_interval, longest_interval};
use crate::quantity;
use crate::resources::backup::backup_claim_name;
use crate::validate::Validated;

/// One alert before the user's overrides.
pub struct Draft {
    pub alert: Alert,
    pub expr: String,
    pub for_: &'static str,
    pub severity: Severity,
    pub summary: String,
    pub description: String,
}

// Prometheus templates, expanded when the alert fires.
const VALUE: &str = "{{ $value | humanize }}";
const VALUE_PERCENT: &str = "{{ $value | humanizePercentage }}";
const VALUE_DURATION: &str = "{{ $value | humanizeDuration }}";
const VALUE_PLAIN: &str = "{{ $value }}";
const VALUE_2DP: &str = "{{ $value | printf \"%.2f\" }}";
const VALUE_4DP: &str = "{{ $value | printf \"%.4f\" }}";
const LEAGUE: &str = "{{ $labels.league }}";

/// A fixed Monday: the rendered rules depend on the schedules only, never on when they are built.
const INTERVAL_ANCHOR: &str = "2026-01-05T00:00:00Z";

struct Selectors {
    /// The active Service's pods as the ServiceMonitor's targets.
    target: String,
    /// The operator's series of this instance.
    instance: String,
    who: String,
}

pub fn drafts(v: &Validated) -> Vec<Draft> {
    let s = Selectors {
        target: format!(
            "namespace=\"{}\",service=\"{}\"",
            v.namespace,
            v.names.active_service()
        ),
        instance: format!("fp_namespace=\"{}\",fp_name=\"{}\"", v.namespace, v.name),
        who: format!("FootballPrediction {}/{}", v.namespace, v.name),
    };
    let mut drafts = traffic(v, &s);
    drafts.extend(database(v, &s));
    drafts.push(cache(v, &s));
    if v.spec.tls.is_some() {
        drafts.push(certificate(v, &s));
    }
    drafts.extend(rollouts(v, &s));
    if let Some(backup) = v.spec.backup.as_ref().filter(|b| !b.suspend) {
        drafts.extend(backups(v, backup, &s));
    }
    drafts.extend(model(&s));
    drafts
}

fn traffic(v: &Validated, s: &Selectors) -> Vec<Draft> {
    let t = &v.spec.monitoring.prometheus_rule.thresholds;
    let (target, who) = (&s.target, &s.who);
    let deployments = format!(
        "namespace=\"{}\",deployment=~\"{}|{}\"",
        v.namespace,
        v.names.deployment(Color::Blue),
        v.names.deployment(Color::Green)
    );
    vec![
        Draft {
            alert: Alert::HighErrorRatio,
            expr: format!(
                "sum(rate(http_requests_total{{{target},status=~\"5..\"}}[5m])) / sum(rate(http_requests_total{{{target}}}[5m])) > {}",
                t.error_ratio
            ),
            for_: "5m",
            severity: Severity::Critical,
            summary: format!(
                "{who}: more than {}% of requests fail",
                t.error_ratio * 100.0
            ),
            description: format!(
                "{VALUE_PERCENT} of the active API pods' answers over 5 minutes are 5xx (threshold {}). Check the last rollout (kubectl fp status) and the API logs.",
                t.error_ratio
            ),
        },
        Draft {
            alert: Alert::HighLatency,
            expr: format!(
                "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{target}}}[5m]))) > {}",
                t.p95_latency_seconds
            ),
            for_: "10m",
            severity: Severity::Warning,
            summary: format!(
                "{who}: 95th percentile latency above {}s",
                t.p95_latency_seconds
            ),
            description: format!(
                "The 95th percentile of request latency is {VALUE}s. Check database latency, the cache hit ratio and CPU throttling."
            ),
        },
        Draft {
            alert: Alert::Down,
            expr: format!("sum(up{{{target}}}) == 0 or absent(up{{{target}}})"),
            for_: "2m",
            severity: Severity::Critical,
            summary: format!("{who}: no API pod is being scraped"),
            description:
                "No pod behind the active Service answers /metrics: the API is likely down.".into(),
        },
        Draft {
            alert: Alert::ReplicasUnavailable,
            expr: format!(
                "kube_deployment_spec_replicas{{{deployments}}} - kube_deployment_status_replicas_available{{{deployments}}} > 0"
            ),
            for_: "15m",
            severity: Severity::Warning,
            summary: format!("{who}: API replicas unavailable"),
            description: format!(
                "Deployment {{{{ $labels.deployment }}}} has {VALUE_PLAIN} fewer available replicas than desired (from kube-state-metrics)."
            ),
        },
    ]
}

fn database(v: &Validated, s: &Selectors) -> Vec<Draft> {
    let t = &v.spec.monitoring.prometheus_rule.thresholds;
    let (target, who) = (&s.target, &s.who);
    vec![
        Draft {
            alert: Alert::DatabaseNotReady,
            expr: format!("max(fp_db_ready{{{target}}}) == 0"),
            for_: "2m",
            severity: Severity::Critical,
            summary: format!("{who}: the database does not answer"),
            description: "No API pod reached the database in its last readiness check; the pods report not ready (reason database_unreachable).".into(),
        },
        Draft {
            alert: Alert::DatabasePoolSaturated,
            expr: format!(
                "max by (pod) (fp_db_pool_connections{{{target},state=\"in_use\"}}) / max by (pod) (fp_db_pool_max_connections{{{target}}}) > {}",
                t.pool_saturation
            ),
            for_: "10m",
            severity: Severity::Warning,
            summary: format!("{who}: database pool nearly exhausted"),
            description: format!("Pod {{{{ $labels.pod }}}} uses {VALUE_PERCENT} of its database connections (threshold {})."
            , t.pool_saturation),
        },
        Draft {
            alert: Alert::DatabaseAcquireTimeouts,
            expr: format!("sum(rate(fp_db_pool_acquire_timeouts_total{{{target}}}[5m])) > 0"),
            for_: "5m",
            severity: Severity::Warning,
            summary: format!("{who}: requests wait out the database pool"),
            description: format!("{VALUE_2DP} connection acquires a second time out: requests fail with 503 while the pool is exhausted or the database is slow."),
        },
    ]
}

fn cache(v: &Validated, s: &Selectors) -> Draft {
    let t = &v.spec.monitoring.prometheus_rule.thresholds;
    let (target, who) = (&s.target, &s.who);
    let lookups = format!("sum by (cache) (rate(fp_cache_requests_total{{{target}}}[15m]))");
    Draft {
        alert: Alert::CacheHitRatioLow,
        expr: format!(
            "sum by (cache) (rate(fp_cache_requests_total{{{target},result=\"hit\"}}[15m])) / {lookups} < {} and {lookups} > 0.1",
            t.cache_hit_ratio
        ),
        for_: "15m",
        severity: Severity::Warning,
        summary: format!("{who}: cache hit ratio low"),
        description: format!(
            "Cache {{{{ $labels.cache }}}} answers {VALUE_PERCENT} of lookups (threshold {}); misses go to the database.",
            t.cache_hit_ratio
        ),
    }
}

fn certificate(v: &Validated, s: &Selectors) -> Draft {
    let days = v
        .spec
        .monitoring
        .prometheus_rule
        .thresholds
        .certificate_expiry_days;
    Draft {
        alert: Alert::CertificateExpiring,
        expr: format!(
            "certmanager_certificate_expiration_timestamp_seconds{{namespace=\"{}\",name=\"{}\"}} - time() < {}",
            v.namespace,
            v.names.certificate(),
            i64::from(days) * 86_400
        ),
        for_: "1h",
        severity: Severity::Warning,
        summary: format!(
            "{}: TLS certificate expires in less than {days} days",
            s.who
        ),
        description: format!(
            "Certificate {{{{ $labels.name }}}} expires in {VALUE_DURATION}: cert-manager has not renewed it (from cert-manager's metrics)."
        ),
    }
}

fn rollouts(v: &Validated, s: &Selectors) -> Vec<Draft> {
    let minutes = v
        .spec
        .monitoring
        .prometheus_rule
        .thresholds
        .rollout_stuck_minutes;
    let (instance, who) = (&s.instance, &s.who);
    vec![
        Draft {
            alert: Alert::RolledBack,
            expr: format!(
                "time() - max(fp_rollout_last_rollback_timestamp_seconds{{{instance}}}) < 3600"
            ),
            for_: "0m",
            severity: Severity::Warning,
            summary: format!("{who}: a rollout was rolled back"),
            description: format!(
                "The newest rollback was {VALUE_DURATION} ago; `kubectl fp history` says why. The alert resolves an hour after it."
            ),
        },
        Draft {
            alert: Alert::RolloutStuck,
            expr: format!(
                "time() - max(fp_rollout_started_timestamp_seconds{{{instance}}}) > {}",
                i64::from(minutes) * 60
            ),
            for_: "5m",
            severity: Severity::Warning,
            summary: format!("{who}: a rollout has run for more than {minutes} minutes"),
            description: format!(
                "The rollout started {VALUE_DURATION} ago and has not finished; `kubectl fp status` shows its stage (AwaitingPromotion waits for `kubectl fp promote`)."
            ),
        },
    ]
}

/// 1.5× the longest gap between runs, in whole seconds (the BackupHealthy rule, for Prometheus).
fn overdue_after(schedule_interval: Option<std::time::Duration>) -> Option<u64> {
    schedule_interval.map(|i| i.mul_f64(1.5).as_secs())
}

fn backups(v: &Validated, backup: &BackupSpec, s: &Selectors) -> Vec<Draft> {
    let anchor = INTERVAL_ANCHOR.parse().unwrap_or_default();
    let (instance, who) = (&s.instance, &s.who);
    let mut drafts = vec![
        Draft {
            alert: Alert::BackupFailed,
            expr: format!(
                "max(fp_backup_last_failure_timestamp_seconds{{{instance}}}) > max(fp_backup_last_success_timestamp_seconds{{{instance}}} or vector(0))"
            ),
            for_: "0m",
            severity: Severity::Warning,
            summary: format!("{who}: the newest backup failed"),
            description: "The newest backup Job failed and none succeeded since; `kubectl get fp -o yaml` shows status.backup.lastFailureReason. Resolves when a backup succeeds.".into(),
        },
        Draft {
            alert: Alert::RestoreDrillFailed,
            expr: format!("max(fp_backup_last_verify_passed{{{instance}}}) == 0"),
            for_: "0m",
            severity: Severity::Critical,
            summary: format!("{who}: the newest restore drill failed"),
            description: "The newest restore drill could not restore the newest backup: the backups are not proven restorable (status.backup.lastVerifyResult).".into(),
        },
    ];
    if let Some(seconds) = overdue_after(expected_interval(backup, anchor)) {
        drafts.push(Draft {
            alert: Alert::BackupStale,
            expr: format!("time() - max(fp_backup_last_success_timestamp_seconds{{{instance}}}) > {seconds}"),
            for_: "5m",
            severity: Severity::Critical,
            summary: format!("{who}: no successful backup for more than {seconds}s"),
            description: format!("The newest successful backup is {VALUE_DURATION} old, more than 1.5 schedule intervals (BackupHealthy=False, BackupStale)."),
        });
    }
    if let Some(seconds) = overdue_after(longest_interval(&backup.verify.schedule, anchor)) {
        drafts.push(Draft {
            alert: Alert::RestoreDrillStale,
            expr: format!("time() - max(fp_backup_last_verify_success_timestamp_seconds{{{instance}}}) > {seconds}"),
            for_: "5m",
            severity: Severity::Warning,
            summary: format!("{who}: no passed restore drill for more than {seconds}s"),
            description: format!("The newest passed restore drill is {VALUE_DURATION} old: the backups are not proven restorable."),
        });
    }
    if let Some(claim) = backup_claim_name(v, backup) {
        drafts.push(backup_volume(v, backup, &claim, s));
    }
    drafts
}

/// The free share of the backup claim. The kubelet measures a volume only while a pod mounts
/// it, here only while a backup Job runs, so its numbers are taken over a day; for a claim the
/// operator created (its size known) the kept backups' bytes against that size count too, and
/// they are known all the time.
fn backup_volume(v: &Validated, backup: &BackupSpec, claim: &str, s: &Selectors) -> Draft {
    let free_ratio = v
        .spec
        .monitoring
        .prometheus_rule
        .thresholds
        .backup_volume_free_ratio;
    let volume = format!(
        "namespace=\"{}\",persistentvolumeclaim=\"{claim}\"",
        v.namespace
    );
    let measured = format!(
        "min(min_over_time(kubelet_volume_stats_available_bytes{{{volume}}}[1d]) / max_over_time(kubelet_volume_stats_capacity_bytes{{{volume}}}[1d])) < {free_ratio}"
    );
    let capacity = backup
        .storage
        .pvc
        .as_ref()
        .filter(|pvc| pvc.existing_claim.is_none())
        .and_then(|pvc| quantity::parse(&pvc.size));
    let expr = match capacity {
        Some(bytes) => format!(
            "1 - max(fp_backup_bytes{{{}}}) / {bytes} < {free_ratio} or {measured}",
            s.instance
        ),
        None => measured,
    };
    Draft {
        alert: Alert::BackupVolumeFull,
        expr,
        for_: "0m",
        severity: Severity::Warning,
        summary: format!("{}: backup volume nearly full", s.who),
        description: format!(
            "Only {VALUE_PERCENT} of claim {claim} is free (threshold {free_ratio}); the next backups may fail. Grow the claim or shorten retention."
        ),
    }
}

fn model(s: &Selectors) -> Vec<Draft> {
    let (target, who) = (&s.target, &s.who);
    vec![
        Draft {
            alert: Alert::ModelNotRefitted,
            expr: format!(
                "max by (league) (fp_last_import_timestamp_seconds{{{target}}}) - max by (league) (fp_model_fit_timestamp_seconds{{{target}}}) > 0"
            ),
            for_: "1h",
            severity: Severity::Warning,
            summary: format!("{who}: model not refitted after an import"),
            description: format!(
                "League {LEAGUE} got new data {VALUE_DURATION} after its served model was fitted, and no refit followed within an hour."
            ),
        },
        Draft {
            alert: Alert::ModelWorseThanConstant,
            expr: format!(
                "max by (league) (fp_model_evaluation{{{target},metric=\"rps\"}}) - max by (league) (fp_model_evaluation{{{target},metric=\"rps_constant\"}}) > 0"
            ),
            for_: "1h",
            severity: Severity::Warning,
            summary: format!("{who}: model forecasts worse than a constant"),
            description: format!(
                "In league {LEAGUE} the served model's ranked probability score is {VALUE_4DP} worse than the constant (0.45, 0.25, 0.30) forecast on the same matches."
            ),
        },
    ]
}
