//! Retention: which backups a prune removes. Pure; the store carries the plan out.
//!
//! Rules, applied to the backups that have a manifest, newest first:
//! - `max_age A` is the rule: a backup whose id (its start time) is older than A expires;
//! - `keep_last N` with it is a floor: the N newest are kept whatever their age, so a schedule
//!   that stopped (or failed for weeks) never leaves fewer than N. "Keep 30 days" means 30 days
//!   however many backups a day the schedules take;
//! - `keep_last N` alone is a count: the N newest are kept, older ones expire;
//! - the newest complete backup is never removed, whatever its age;
//! - a prune that was interrupted (PRUNING marker present) is always finished;
//! - a dump without manifest (a backup that died) is removed once it is older than the grace
//!   period, which must exceed the longest a backup may run (so a running one is never touched).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::id::BackupId;
use super::layout::{CatalogEntry, EntryState, latest_complete};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetentionError {
    #[error("--keep-last must be at least 1 (the newest backup is always kept)")]
    KeepLastZero,
    #[error("invalid duration {value:?}: {reason} (examples: 30d, 720h, 90m)")]
    BadDuration { value: String, reason: String },
    #[error("duration {0:?} must be longer than zero")]
    ZeroDuration(String),
}

/// Parses a human duration such as `30d`, `720h` or `1week`.
pub fn parse_duration(value: &str) -> Result<Duration, RetentionError> {
    let duration =
        humantime::parse_duration(value.trim()).map_err(|err| RetentionError::BadDuration {
            value: value.to_owned(),
            reason: err.to_string(),
        })?;
    if duration.is_zero() {
        return Err(RetentionError::ZeroDuration(value.to_owned()));
    }
    Ok(duration)
}

/// How long a dump without manifest is left alone by default. The backup Jobs' deadline must be
/// shorter (the operator sets activeDeadlineSeconds well below a day).
pub const DEFAULT_INCOMPLETE_GRACE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    keep_last: Option<usize>,
    max_age: Option<Duration>,
    incomplete_grace: Duration,
}

impl RetentionPolicy {
    pub fn new(
        keep_last: Option<usize>,
        max_age: Option<Duration>,
        incomplete_grace: Duration,
    ) -> Result<Self, RetentionError> {
        if keep_last == Some(0) {
            return Err(RetentionError::KeepLastZero);
        }
        Ok(Self {
            keep_last,
            max_age,
            incomplete_grace,
        })
    }

    pub fn keep_last(&self) -> Option<usize> {
        self.keep_last
    }

    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }
}

/// Why a backup's objects are removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneReason {
    /// `rank` 0 is the newest backup with a manifest.
    BeyondKeepLast {
        keep_last: usize,
        rank: usize,
    },
    OlderThanMaxAge {
        max_age: Duration,
        age: Duration,
    },
    ResumeInterruptedPrune,
    AbandonedIncomplete {
        age: Duration,
    },
}

impl std::fmt::Display for PruneReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BeyondKeepLast { keep_last, rank } => {
                write!(
                    f,
                    "number {} of the newest, beyond keepLast {keep_last}",
                    rank + 1
                )
            }
            Self::OlderThanMaxAge { max_age, age } => write!(
                f,
                "{} old, beyond maxAge {}",
                humantime::format_duration(*age),
                humantime::format_duration(*max_age)
            ),
            Self::ResumeInterruptedPrune => f.write_str("finishing an interrupted prune"),
            Self::AbandonedIncomplete { age } => write!(
                f,
                "dump without manifest, {} old: a backup that did not finish",
                humantime::format_duration(*age)
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneAction {
    pub id: BackupId,
    pub reason: PruneReason,
}

fn age(id: BackupId, now: DateTime<Utc>) -> Duration {
    // A backup from the future (clock skew) has age zero and never expires by age.
    (now - id.time()).to_std().unwrap_or(Duration::ZERO)
}

/// The backups to remove, oldest first.
pub fn plan_prune(
    entries: &[CatalogEntry],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Vec<PruneAction> {
    let protected = latest_complete(entries).map(|entry| entry.id);
    let mut with_manifest: Vec<&CatalogEntry> = entries
        .iter()
        .filter(|entry| entry.has_manifest())
        .collect();
    with_manifest.sort_by_key(|entry| std::cmp::Reverse(entry.id));

    let mut actions = Vec::new();
    for (rank, entry) in with_manifest.iter().enumerate() {
        if Some(entry.id) == protected {
            continue;
        }
        let entry_age = age(entry.id, now);
        let within_floor = policy.keep_last.is_some_and(|keep_last| rank < keep_last);
        let reason = match (policy.keep_last, policy.max_age) {
            (_, Some(max_age)) if entry_age > max_age && !within_floor => {
                Some(PruneReason::OlderThanMaxAge {
                    max_age,
                    age: entry_age,
                })
            }
            (Some(keep_last), None) if rank >= keep_last => {
                Some(PruneReason::BeyondKeepLast { keep_last, rank })
            }
            _ => None,
        };
        if let Some(reason) = reason {
            actions.push(PruneAction {
                id: entry.id,
                reason,
            });
        }
    }
    for entry in entries {
        match entry.state() {
            EntryState::Pruning => actions.push(PruneAction {
                id: entry.id,
                reason: PruneReason::ResumeInterruptedPrune,
            }),
            EntryState::Incomplete if age(entry.id, now) > policy.incomplete_grace => {
                actions.push(PruneAction {
                    id: entry.id,
                    reason: PruneReason::AbandonedIncomplete {
                        age: age(entry.id, now),
                    },
                })
            }
            EntryState::Complete | EntryState::DumpMissing | EntryState::Incomplete => {}
        }
    }
    actions.sort_by_key(|action| action.id);
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::layout::catalog;
    use chrono::TimeZone;

    const DAY: Duration = Duration::from_secs(86_400);

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap()
    }

    /// Complete backups taken `days_ago` days before `now()` at 03:00.
    fn complete_days_ago(days_ago: &[i64]) -> Vec<CatalogEntry> {
        let keys: Vec<String> = days_ago
            .iter()
            .flat_map(|days| {
                let at = Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap()
                    - chrono::Duration::days(*days);
                let id = BackupId::from_time(at);
                [format!("{id}/database.dump"), format!("{id}/manifest.json")]
            })
            .collect();
        catalog(keys.iter().map(|key| (key.as_str(), 1)))
    }

    fn pruned_days(actions: &[PruneAction]) -> Vec<i64> {
        let base = Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap();
        actions
            .iter()
            .map(|action| (base - action.id.time()).num_days())
            .collect()
    }

    fn policy(keep_last: Option<usize>, max_age: Option<Duration>) -> RetentionPolicy {
        RetentionPolicy::new(keep_last, max_age, DEFAULT_INCOMPLETE_GRACE).unwrap()
    }

    #[test]
    fn keep_last_keeps_exactly_the_newest_n() {
        let entries = complete_days_ago(&[0, 1, 2, 3, 4, 5]);
        let actions = plan_prune(&entries, &policy(Some(4), None), now());
        assert_eq!(pruned_days(&actions), vec![5, 4]);
        assert!(matches!(
            actions[0].reason,
            PruneReason::BeyondKeepLast {
                keep_last: 4,
                rank: 5
            }
        ));
    }

    #[test]
    fn max_age_removes_only_older_backups() {
        let entries = complete_days_ago(&[0, 10, 29, 31, 45]);
        let actions = plan_prune(&entries, &policy(None, Some(30 * DAY)), now());
        assert_eq!(pruned_days(&actions), vec![45, 31]);
    }

    #[test]
    fn max_age_is_the_rule_and_keep_last_a_floor() {
        // Age decides: day 5 is younger than 10 days and stays although it is the 4th newest.
        let entries = complete_days_ago(&[0, 1, 2, 5, 12]);
        let actions = plan_prune(&entries, &policy(Some(3), Some(10 * DAY)), now());
        assert_eq!(pruned_days(&actions), vec![12]);
        assert!(matches!(
            actions[0].reason,
            PruneReason::OlderThanMaxAge { .. }
        ));
        // The floor: the 3 newest stay however old they are (backups stopped for weeks).
        let entries = complete_days_ago(&[20, 21, 22, 23, 40]);
        let actions = plan_prune(&entries, &policy(Some(3), Some(15 * DAY)), now());
        assert_eq!(pruned_days(&actions), vec![40, 23]);
    }

    /// The production sample (`docs/samples/footballprediction.yaml`): a daily backup at 03:00
    /// and one every 6 hours, `keepLast: 30`, `maxAge: 720h`, each backup followed by its prune
    /// as the CronJobs run them, for 45 days. What is left is exactly the last 30 days.
    #[test]
    fn the_samples_schedules_keep_exactly_thirty_days() {
        let start = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let sample = policy(Some(30), Some(30 * DAY));
        let mut taken: Vec<BackupId> = Vec::new();
        let mut kept: Vec<String> = Vec::new();
        let mut last_prune = start;
        for hour in 0..45 * 24 {
            let now = start + chrono::Duration::hours(hour);
            let hour_of_day = hour % 24;
            // "0 */6 * * *" and "0 3 * * *".
            if hour_of_day % 6 != 0 && hour_of_day != 3 {
                continue;
            }
            let id = BackupId::from_time(now);
            taken.push(id);
            kept.extend([format!("{id}/database.dump"), format!("{id}/manifest.json")]);
            let entries = catalog(kept.iter().map(|key| (key.as_str(), 1)));
            let pruned: Vec<String> = plan_prune(&entries, &sample, now)
                .iter()
                .map(|action| action.id.to_string())
                .collect();
            kept.retain(|key| !pruned.iter().any(|id| key.starts_with(id.as_str())));
            last_prune = now;
        }
        let remaining: Vec<BackupId> = catalog(kept.iter().map(|key| (key.as_str(), 1)))
            .iter()
            .map(|entry| entry.id)
            .collect();
        let last_30_days: Vec<BackupId> = taken
            .iter()
            .copied()
            .filter(|id| age(*id, last_prune) <= 30 * DAY)
            .collect();
        assert_eq!(remaining, last_30_days);
        // Five a day: the count is the days, not keepLast (which kept about 6 days before).
        assert!(remaining.len() >= 30 * 5, "{}", remaining.len());
    }

    #[test]
    fn newest_complete_backup_is_never_removed() {
        // Backups stopped 90 days ago: everything is past maxAge, the newest survives.
        let entries = complete_days_ago(&[90, 91, 92]);
        let actions = plan_prune(&entries, &policy(Some(1), Some(30 * DAY)), now());
        assert_eq!(pruned_days(&actions), vec![92, 91]);
    }

    #[test]
    fn a_damaged_newer_backup_does_not_protect_itself_or_displace_the_good_one() {
        let mut keys = vec![
            "20261101T030000Z/database.dump".to_owned(),
            "20261101T030000Z/manifest.json".to_owned(),
        ];
        keys.push("20261120T030000Z/manifest.json".to_owned()); // dump missing
        let entries = catalog(keys.iter().map(|key| (key.as_str(), 1)));
        let actions = plan_prune(&entries, &policy(Some(1), None), now());
        // The damaged entry ranks first; the good one is protected though beyond keepLast.
        assert!(actions.is_empty(), "{actions:?}");
        let actions = plan_prune(&entries, &policy(None, Some(5 * DAY)), now());
        assert_eq!(
            actions.iter().map(|a| a.id.to_string()).collect::<Vec<_>>(),
            vec!["20261120T030000Z"]
        );
    }

    #[test]
    fn no_rules_remove_nothing_complete() {
        let entries = complete_days_ago(&[0, 100, 1000]);
        assert!(plan_prune(&entries, &policy(None, None), now()).is_empty());
    }

    #[test]
    fn interrupted_prunes_are_resumed_whatever_the_policy() {
        let entries = catalog([
            ("20261127T030000Z/database.dump", 1),
            ("20261127T030000Z/manifest.json", 1),
            ("20261126T030000Z/PRUNING", 0),
            ("20261126T030000Z/database.dump", 1),
        ]);
        let actions = plan_prune(&entries, &policy(None, None), now());
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].reason, PruneReason::ResumeInterruptedPrune);
    }

    #[test]
    fn incomplete_dumps_are_removed_only_after_the_grace_period() {
        let entries = catalog([
            ("20261128T110000Z/database.dump", 1), // one hour old: maybe still running
            ("20261126T030000Z/database.dump", 1), // two days old: abandoned
        ]);
        let actions = plan_prune(&entries, &policy(Some(1), None), now());
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].id.to_string(), "20261126T030000Z");
        assert!(matches!(
            actions[0].reason,
            PruneReason::AbandonedIncomplete { .. }
        ));
    }

    #[test]
    fn backups_from_the_future_have_age_zero() {
        let future: BackupId = "20261201T000000Z".parse().unwrap();
        assert_eq!(age(future, now()), Duration::ZERO);
        let past: BackupId = "20261128T110000Z".parse().unwrap();
        assert_eq!(age(past, now()), Duration::from_secs(3600));
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * DAY);
        assert_eq!(parse_duration("720h").unwrap(), 30 * DAY);
        assert!(matches!(
            parse_duration("0s"),
            Err(RetentionError::ZeroDuration(_))
        ));
        assert!(matches!(
            parse_duration("thirty days"),
            Err(RetentionError::BadDuration { .. })
        ));
        assert_eq!(
            RetentionPolicy::new(Some(0), None, DAY),
            Err(RetentionError::KeepLastZero)
        );
    }
}
