//! Cron schedule maths: how far apart a schedule's runs are. Pure; used by backup health (when
//! is a backup stale) and the alert rules built from the same schedules.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::crd::BackupSpec;

fn to_chrono(at: Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(at.as_second(), 0)
}

/// The longest gap between consecutive runs of `schedule` in the eight days after `after` (so a
/// weekday-only schedule allows for the weekend; rarer schedules use their next three runs).
/// Time zones shift runs by at most an hour, which the stale factor absorbs.
pub fn longest_interval(schedule: &str, after: Timestamp) -> Option<Duration> {
    const WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(8);
    const MAX_RUNS: usize = 20_000;
    let cron = schedule.parse::<croner::Cron>().ok()?;
    let start = to_chrono(after)?;
    // Every run up to the first one past the window, so the gap that crosses its end counts.
    let mut runs = Vec::new();
    for run in cron.iter_after(start).take(MAX_RUNS) {
        let past_window = run - start > WINDOW;
        runs.push(run);
        if runs.len() >= 3 && past_window {
            break;
        }
    }
    runs.windows(2)
        .filter_map(|w| (w[1] - w[0]).to_std().ok())
        .max()
}

/// How often a successful backup is expected: the more frequent of the two schedules.
pub fn expected_interval(spec: &BackupSpec, after: Timestamp) -> Option<Duration> {
    // (Alert rules pass a fixed Monday so the rendered rule never changes by itself.)
    std::iter::once(spec.schedule.as_str())
        .chain(spec.frequent_schedule.as_deref())
        .filter_map(|s| longest_interval(s, after))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn spec(value: serde_json::Value) -> BackupSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn intervals_follow_the_schedules() {
        let after = ts("2026-11-27T12:00:00Z"); // a Friday
        assert_eq!(
            longest_interval("0 3 * * *", after),
            Some(Duration::from_secs(86_400))
        );
        // Weekdays only: the weekend gap counts.
        assert_eq!(
            longest_interval("0 3 * * 1-5", after),
            Some(Duration::from_secs(3 * 86_400))
        );
        // Hourly on weekdays: still the weekend.
        assert_eq!(
            longest_interval("0 * * * 1-5", after),
            Some(Duration::from_secs(49 * 3600))
        );
        assert_eq!(
            longest_interval("0 0 1 * *", after),
            Some(Duration::from_secs(31 * 86_400))
        );
        let both = spec(json!({"schedule": "0 3 * * *", "frequentSchedule": "0 */6 * * *"}));
        assert_eq!(
            expected_interval(&both, after),
            Some(Duration::from_secs(6 * 3600))
        );
    }
}
