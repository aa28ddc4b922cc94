//! Backup ids: the UTC start time of the backup, `YYYYMMDDTHHMMSSZ`, so that lexical order is age
//! order in every listing (file names, S3 keys) and an id alone tells how old a backup is.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};

const FORMAT: &str = "%Y%m%dT%H%M%SZ";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("invalid backup id {0:?}: expected a UTC timestamp like 20261128T030000Z")]
    Invalid(String),
}

/// A backup's id; ordered by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupId(DateTime<Utc>);

impl BackupId {
    /// The id for a backup starting at `at` (sub-second precision is dropped).
    pub fn from_time(at: DateTime<Utc>) -> Self {
        Self(at.trunc_subsecs(0))
    }

    pub fn time(&self) -> DateTime<Utc> {
        self.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format(FORMAT))
    }
}

impl FromStr for BackupId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The fixed width rejects forms chrono would otherwise accept (e.g. missing zero padding).
        if s.len() != 16 || !s.is_ascii() {
            return Err(IdError::Invalid(s.to_owned()));
        }
        NaiveDateTime::parse_from_str(s, FORMAT)
            .map(|naive| Self(naive.and_utc()))
            .map_err(|_| IdError::Invalid(s.to_owned()))
    }
}

impl serde::Serialize for BackupId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for BackupId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which backup a command acts on: `latest` or an explicit id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupSelector {
    Latest,
    Id(BackupId),
}

impl FromStr for BackupSelector {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("latest") {
            Ok(Self::Latest)
        } else {
            s.parse().map(Self::Id)
        }
    }
}

impl fmt::Display for BackupSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("latest"),
            Self::Id(id) => id.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_and_parses_round_trip() {
        let at = Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap();
        let id = BackupId::from_time(at);
        assert_eq!(id.to_string(), "20261128T030000Z");
        assert_eq!("20261128T030000Z".parse::<BackupId>().unwrap(), id);
        assert_eq!(id.time(), at);
    }

    #[test]
    fn drops_subseconds_so_ids_are_stable() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
            + chrono::Duration::milliseconds(999);
        assert_eq!(BackupId::from_time(at).to_string(), "20260102T030405Z");
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "latest-ish",
            "20261128T030000",
            "20261128T030000z ",
            "20261328T030000Z",
            "20261128T250000Z",
            "2026-11-28T03:00:00Z",
            "20261128 030000Z",
            "2026112T8030000Z",
        ] {
            assert!(bad.parse::<BackupId>().is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn lexical_order_is_time_order() {
        let ids = ["20261128T030000Z", "20251231T235959Z", "20261128T030001Z"];
        let mut by_text = ids.to_vec();
        by_text.sort();
        let mut by_time: Vec<BackupId> = ids.iter().map(|s| s.parse().unwrap()).collect();
        by_time.sort();
        let by_time: Vec<String> = by_time.iter().map(ToString::to_string).collect();
        assert_eq!(by_text, by_time);
    }

    #[test]
    fn selector_accepts_latest_and_ids() {
        assert_eq!(
            "latest".parse::<BackupSelector>().unwrap(),
            BackupSelector::Latest
        );
        assert_eq!(
            "LATEST".parse::<BackupSelector>().unwrap(),
            BackupSelector::Latest
        );
        assert!(matches!(
            "20261128T030000Z".parse::<BackupSelector>().unwrap(),
            BackupSelector::Id(_)
        ));
        assert!("newest".parse::<BackupSelector>().is_err());
    }

    #[test]
    fn serde_uses_the_text_form() {
        let id: BackupId = "20261128T030000Z".parse().unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"20261128T030000Z\"");
        let back: BackupId = serde_json::from_str("\"20261128T030000Z\"").unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<BackupId>("\"x\"").is_err());
    }
}
