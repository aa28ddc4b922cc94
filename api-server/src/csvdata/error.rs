//! Row errors: where (1-based line, column) and why.

use serde::{Serialize, Serializer};

/// Why a row (or the header) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("the file has no header row")]
    EmptyFile,
    #[error("required column {0} is missing from the header")]
    MissingColumn(&'static str),
    #[error("missing value")]
    MissingValue,
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    #[error("invalid date {0:?}: expected dd/mm/yy or dd/mm/yyyy")]
    InvalidDate(String),
    #[error("invalid time {0:?}: expected HH:MM")]
    InvalidTime(String),
    #[error("invalid number {0:?}: expected a whole number")]
    InvalidCount(String),
    #[error("{0} goals is not plausible (at most 30)")]
    ImplausibleGoals(u32),
    #[error("invalid result {0:?}: expected H, D or A")]
    InvalidResult(String),
    #[error("result {given} contradicts the score {home}-{away}")]
    ResultContradictsScore {
        given: &'static str,
        home: u8,
        away: u8,
    },
    #[error("a result is given without a complete score")]
    ResultWithoutScore,
    #[error("only one side's goals are given")]
    IncompleteScore,
    #[error("half-time score {ht_home}-{ht_away} exceeds the full-time score {ft_home}-{ft_away}")]
    HalfTimeExceedsFullTime {
        ht_home: u8,
        ht_away: u8,
        ft_home: u8,
        ft_away: u8,
    },
    #[error("invalid odds {0:?}: expected a decimal price above 1")]
    InvalidOdds(String),
    #[error("incomplete odds: {present} is given but {missing} is empty")]
    IncompleteOdds { present: String, missing: String },
    #[error("home and away team are the same")]
    SameTeams,
    #[error("duplicate match {home} v {away}: already on line {first_line}")]
    DuplicateMatch {
        home: String,
        away: String,
        first_line: u64,
    },
    #[error("a field spans several lines (unbalanced quote?)")]
    MultilineField,
    #[error("unreadable CSV: {0}")]
    Csv(String),
}

/// One rejected row (or header): the 1-based physical line (the header is line 1), the column
/// when one is to blame, and the reason. Serialises as `{line, column, reason}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub line: u64,
    pub column: Option<String>,
    #[serde(rename = "reason", serialize_with = "display")]
    pub problem: Problem,
}

impl RowError {
    pub(crate) fn new(line: u64, column: Option<&str>, problem: Problem) -> Self {
        Self {
            line,
            column: column.map(str::to_owned),
            problem,
        }
    }

    /// The reason as text.
    pub fn reason(&self) -> String {
        self.problem.to_string()
    }
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(column) => write!(f, "line {}, column {}: {}", self.line, column, self.problem),
            None => write!(f, "line {}: {}", self.line, self.problem),
        }
    }
}

fn display<S: Serializer>(problem: &Problem, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_line_column_and_reason() {
        let e = RowError::new(7, Some("FTHG"), Problem::InvalidCount("x".into()));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"line": 7, "column": "FTHG", "reason": "invalid number \"x\": expected a whole number"})
        );
        assert_eq!(
            e.to_string(),
            "line 7, column FTHG: invalid number \"x\": expected a whole number"
        );
    }
}
