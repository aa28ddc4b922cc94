//! Test-only fault switch (see docs/architecture.md): off unless `FP_TEST_FAULTS=enabled`, and
//! only in builds with the `test-faults` feature (the test command and the dev images; never a
//! release build): elsewhere setting the switch is refused, so no production binary can be made
//! to fail on purpose. The rollout e2e tests use it to stand in for a broken release.
//!
//! - `FP_TEST_FAULT_READY_FAIL_AFTER` (a duration, `0s` = from the start): `/health/ready`
//!   answers 503 once the process has run that long.
//! - `FP_TEST_FAULT_ERROR_RATIO` (0..1): that share of `/api/*` requests answers 500. The share is
//!   exact and deterministic (an error whenever the running count crosses the next multiple).
//! - `FP_TEST_FAULT_MIGRATE=fail`: `migrate` refuses to run (a release whose migration fails).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const SWITCH_ENV: &str = "FP_TEST_FAULTS";
pub const READY_FAIL_AFTER_ENV: &str = "FP_TEST_FAULT_READY_FAIL_AFTER";
pub const ERROR_RATIO_ENV: &str = "FP_TEST_FAULT_ERROR_RATIO";
pub const MIGRATE_ENV: &str = "FP_TEST_FAULT_MIGRATE";

/// Whether this binary was built with the fault switch (the `test-faults` feature).
pub const BUILT_IN: bool = cfg!(feature = "test-faults");

/// Whether the switch is on (read through `lookup`, the process environment in production); an
/// error when it is set in a build without it.
fn switched_on(
    lookup: &impl Fn(&str) -> Option<String>,
    built_in: bool,
) -> Result<bool, FaultConfigError> {
    match lookup(SWITCH_ENV).as_deref() {
        Some("enabled") if built_in => Ok(true),
        Some("enabled") => Err(FaultConfigError::NotBuiltIn),
        _ => Ok(false),
    }
}

/// Whether the fault switch makes `migrate` fail.
pub fn migration_fails(lookup: impl Fn(&str) -> Option<String>) -> Result<bool, FaultConfigError> {
    migration_fails_in(&lookup, BUILT_IN)
}

fn migration_fails_in(
    lookup: &impl Fn(&str) -> Option<String>,
    built_in: bool,
) -> Result<bool, FaultConfigError> {
    Ok(switched_on(lookup, built_in)? && lookup(MIGRATE_ENV).as_deref() == Some("fail"))
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultConfigError {
    #[error(
        "{SWITCH_ENV}=enabled, but this binary has no test fault switch (it is only in builds with \
         the test-faults feature, never in a release): unset it"
    )]
    NotBuiltIn,
    #[error("{READY_FAIL_AFTER_ENV}={0:?} is not a duration (e.g. 0s, 30s, 2m)")]
    ReadyFailAfter(String),
    #[error("{ERROR_RATIO_ENV}={0:?} is not a number between 0 and 1")]
    ErrorRatio(String),
}

#[derive(Debug, Default)]
pub struct Faults {
    ready_fail_after: Option<Duration>,
    error_ratio: f64,
    requests: AtomicU64,
}

impl Faults {
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Reads the switch through `lookup` (the process environment in production).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, FaultConfigError> {
        Self::from_lookup_in(lookup, BUILT_IN)
    }

    /// As [`Self::from_lookup`], for a build with (`built_in`) or without the switch.
    fn from_lookup_in(
        lookup: impl Fn(&str) -> Option<String>,
        built_in: bool,
    ) -> Result<Self, FaultConfigError> {
        if !switched_on(&lookup, built_in)? {
            return Ok(Self::disabled());
        }
        let ready_fail_after = match lookup(READY_FAIL_AFTER_ENV).filter(|v| !v.trim().is_empty()) {
            Some(text) => Some(
                humantime::parse_duration(text.trim())
                    .map_err(|_| FaultConfigError::ReadyFailAfter(text.clone()))?,
            ),
            None => None,
        };
        let error_ratio = match lookup(ERROR_RATIO_ENV).filter(|v| !v.trim().is_empty()) {
            Some(text) => match text.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => return Err(FaultConfigError::ErrorRatio(text)),
            },
            None => 0.0,
        };
        Ok(Self {
            ready_fail_after,
            error_ratio,
            requests: AtomicU64::new(0),
        })
    }

    pub fn from_env() -> Result<Self, FaultConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn is_active(&self) -> bool {
        self.ready_fail_after.is_some() || self.error_ratio > 0.0
    }

    /// Whether readiness must fail, for a process started at `started`.
    pub fn ready_fails(&self, started: Instant, now: Instant) -> bool {
        self.ready_fail_after
            .is_some_and(|after| now.saturating_duration_since(started) >= after)
    }

    /// Whether this `/api/*` request must fail: exactly `ratio` of all requests do.
    pub fn request_fails(&self) -> bool {
        if self.error_ratio <= 0.0 {
            return false;
        }
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        // Fail request n when floor((n+1)·r) passes floor(n·r): spreads failures evenly.
        #[allow(clippy::cast_precision_loss)]
        let (before, after) = (
            n as f64 * self.error_ratio,
            (n + 1) as f64 * self.error_ratio,
        );
        after.floor() > before.floor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn faults(vars: &[(&str, &str)]) -> Result<Faults, FaultConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Faults::from_lookup_in(|k| map.get(k).cloned(), true)
    }

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn a_build_without_the_switch_refuses_it_and_ignores_the_rest() {
        let on = lookup(&[(SWITCH_ENV, "enabled"), (ERROR_RATIO_ENV, "1")]);
        assert_eq!(
            Faults::from_lookup_in(&on, false).unwrap_err(),
            FaultConfigError::NotBuiltIn
        );
        assert_eq!(switched_on(&on, false), Err(FaultConfigError::NotBuiltIn));
        let off = lookup(&[(ERROR_RATIO_ENV, "1"), (MIGRATE_ENV, "fail")]);
        assert!(!Faults::from_lookup_in(&off, false).unwrap().is_active());
        assert_eq!(switched_on(&off, false), Ok(false));
        assert_eq!(migration_fails_in(&off, false), Ok(false));
        assert!(
            FaultConfigError::NotBuiltIn
                .to_string()
                .contains("test-faults")
        );
    }

    #[test]
    fn this_build_has_the_switch_exactly_when_the_feature_is_on() {
        assert_eq!(BUILT_IN, cfg!(feature = "test-faults"));
        let on = lookup(&[(SWITCH_ENV, "enabled"), (MIGRATE_ENV, "fail")]);
        assert_eq!(migration_fails(&on).is_ok(), BUILT_IN);
    }

    #[test]
    fn off_unless_explicitly_enabled() {
        let f = faults(&[(ERROR_RATIO_ENV, "1"), (READY_FAIL_AFTER_ENV, "0s")]).unwrap();
        assert!(!f.is_active());
        assert!(!f.request_fails());
        let f = faults(&[(SWITCH_ENV, "true"), (ERROR_RATIO_ENV, "1")]).unwrap();
        assert!(!f.is_active());
    }

    #[test]
    fn migration_fault_needs_the_switch() {
        let fails = |pairs| migration_fails_in(&lookup(pairs), true);
        assert_eq!(
            fails(&[(SWITCH_ENV, "enabled"), (MIGRATE_ENV, "fail")]),
            Ok(true)
        );
        assert_eq!(fails(&[(MIGRATE_ENV, "fail")]), Ok(false));
        assert_eq!(
            fails(&[(SWITCH_ENV, "enabled"), (MIGRATE_ENV, "no")]),
            Ok(false)
        );
        assert_eq!(migration_fails(lookup(&[(MIGRATE_ENV, "fail")])), Ok(false));
    }

    #[test]
    fn error_ratio_is_an_exact_share() {
        let f = faults(&[(SWITCH_ENV, "enabled"), (ERROR_RATIO_ENV, "0.25")]).unwrap();
        let failed = (0..1000).filter(|_| f.request_fails()).count();
        assert_eq!(failed, 250);
        let f = faults(&[(SWITCH_ENV, "enabled"), (ERROR_RATIO_ENV, "1")]).unwrap();
        assert!((0..10).all(|_| f.request_fails()));
    }

    #[test]
    fn ready_fails_after_the_delay() {
        let f = faults(&[(SWITCH_ENV, "enabled"), (READY_FAIL_AFTER_ENV, "10s")]).unwrap();
        let start = Instant::now();
        assert!(!f.ready_fails(start, start + Duration::from_secs(9)));
        assert!(f.ready_fails(start, start + Duration::from_secs(10)));
        let f = faults(&[(SWITCH_ENV, "enabled"), (READY_FAIL_AFTER_ENV, "0s")]).unwrap();
        assert!(f.ready_fails(start, start));
    }

    #[test]
    fn bad_values_are_rejected() {
        assert_eq!(
            faults(&[(SWITCH_ENV, "enabled"), (ERROR_RATIO_ENV, "2")]).unwrap_err(),
            FaultConfigError::ErrorRatio("2".into())
        );
        assert!(faults(&[(SWITCH_ENV, "enabled"), (READY_FAIL_AFTER_ENV, "soon")]).is_err());
    }
}
