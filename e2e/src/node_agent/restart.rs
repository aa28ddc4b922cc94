//! Restart decisions and crash-loop back-off, as kubelet makes them. Pure.

use std::time::Duration;

/// Whether a container that exited with `exit_code` is started again under `restart_policy`.
pub fn should_restart(restart_policy: &str, exit_code: i32) -> bool {
    match restart_policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// Kubelet's crash-loop back-off: the first restart is immediate, then `base`, `2·base`, … up to
/// `max`. A container that ran longer than `2·max` before exiting starts a fresh series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

impl BackoffPolicy {
    /// The wait before the next start, given how many restarts the current series already
    /// made and how long the last run lasted. Returns the wait and the series length after it.
    pub fn next_delay(&self, restarts_in_series: u32, last_run: Duration) -> (Duration, u32) {
        let series = if last_run > self.max * 2 {
            0
        } else {
            restarts_in_series
        };
        let delay = if series == 0 {
            Duration::ZERO
        } else {
            let factor = 1u32.checked_shl(series - 1).unwrap_or(u32::MAX);
            self.base.saturating_mul(factor).min(self.max)
        };
        (delay, series + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy_decides() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("Always", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(should_restart("OnFailure", 2));
        assert!(!should_restart("Never", 1));
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_long_run() {
        let policy = BackoffPolicy::default();
        let short = Duration::from_secs(1);
        let mut series = 0;
        let mut delays = Vec::new();
        for _ in 0..8 {
            let (delay, next) = policy.next_delay(series, short);
            delays.push(delay.as_secs());
            series = next;
        }
        assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        let (delay, next) = policy.next_delay(series, Duration::from_secs(601));
        assert_eq!((delay, next), (Duration::ZERO, 1));
        let (delay, _) = policy.next_delay(40, short);
        assert_eq!(delay, Duration::from_secs(300));
    }
}
