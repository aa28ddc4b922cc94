//! From parsed CSV records to the rows to write, or the reasons the file is rejected (pure).

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use utoipa::ToSchema;

use super::leagues::{LeagueMeta, league_meta, validate_league_code};
use super::time::kickoff_utc;
use crate::csvdata::{MatchRecord, ParsedCsv, RowError};

/// A season as named in the shared data: `2019-2020`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeasonName {
    pub name: String,
    pub start_year: i32,
}

impl SeasonName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let err = || format!("season must look like 2019-2020 (consecutive years), got {text:?}");
        let (a, b) = text.split_once('-').ok_or_else(err)?;
        if a.len() != 4 || b.len() != 4 {
            return Err(err());
        }
        let start: i32 = a.parse().map_err(|_| err())?;
        let end: i32 = b.parse().map_err(|_| err())?;
        if end != start + 1 || !(1850..=2200).contains(&start) {
            return Err(err());
        }
        Ok(Self {
            name: text.to_string(),
            start_year: start,
        })
    }

    /// Matches of a season are played between July of its first year and August of its second
    /// (the COVID-stretched 2019-20 seasons ended in August 2020).
    pub fn contains(&self, date: NaiveDate) -> bool {
        let first = NaiveDate::from_ymd_opt(self.start_year, 7, 1);
        let last = NaiveDate::from_ymd_opt(self.start_year + 1, 8, 31);
        matches!((first, last), (Some(f), Some(l)) if date >= f && date <= l)
    }
}

/// One reason a file is rejected, as the 422 body lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct LineError {
    /// 1-based physical line (the header is line 1).
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub reason: String,
}

impl From<&RowError> for LineError {
    fn from(e: &RowError) -> Self {
        Self {
            line: e.line,
            column: e.column.clone(),
            reason: e.problem.to_string(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ImportRejection {
    /// The league or season parameter is not acceptable.
    Parameter {
        field: &'static str,
        message: String,
    },
    /// Rows are malformed: nothing from the file may be written.
    Rows {
        errors: Vec<LineError>,
        error_count: usize,
    },
    /// The file parsed but holds no match.
    Empty,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamSpec {
    pub key: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OddsSpec {
    pub bookmaker: &'static str,
    pub kind: &'static str,
    pub home: f64,
    pub draw: f64,
    pub away: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct OverUnderSpec {
    pub bookmaker: &'static str,
    pub kind: &'static str,
    pub over: f64,
    pub under: f64,
}

/// One match row to upsert (integers as the database stores them).
#[derive(Clone, Debug, PartialEq)]
pub struct MatchSpec {
    pub line: u64,
    pub home_key: String,
    pub away_key: String,
    pub kickoff_at: i64,
    pub kickoff_time_known: bool,
    pub status: &'static str,
    pub home_goals: Option<i32>,
    pub away_goals: Option<i32>,
    pub half_time_home_goals: Option<i32>,
    pub half_time_away_goals: Option<i32>,
    pub referee: Option<String>,
    pub attendance: Option<i32>,
    /// home/away shots, shots on target, fouls, corners, yellow cards, red cards.
    pub stats: [Option<i32>; 12],
    pub odds: Vec<OddsSpec>,
    pub over_under: Vec<OverUnderSpec>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ImportPlan {
    pub league: LeagueMeta,
    pub season: SeasonName,
    pub teams: Vec<TeamSpec>,
    pub matches: Vec<MatchSpec>,
}

impl ImportPlan {
    pub fn odds_rows(&self) -> usize {
        self.matches
            .iter()
            .map(|m| m.odds.len() + m.over_under.len())
            .sum()
    }
}

fn stat(v: Option<u16>) -> Option<i32> {
    v.map(i32::from)
}

fn match_spec(r: &MatchRecord) -> MatchSpec {
    let (kickoff, known) = kickoff_utc(r.date, r.time);
    let s = &r.stats;
    MatchSpec {
        line: r.line,
        home_key: r.home_key.clone(),
        away_key: r.away_key.clone(),
        kickoff_at: kickoff.timestamp(),
        kickoff_time_known: known,
        status: if r.full_time.is_some() {
            "finished"
        } else {
            "scheduled"
        },
        home_goals: r.full_time.map(|f| i32::from(f.home_goals)),
        away_goals: r.full_time.map(|f| i32::from(f.away_goals)),
        half_time_home_goals: r.half_time.map(|h| i32::from(h.home_goals)),
        half_time_away_goals: r.half_time.map(|h| i32::from(h.away_goals)),
        referee: r.referee.clone(),
        attendance: r.attendance.and_then(|a| i32::try_from(a).ok()),
        stats: [
            stat(s.home_shots),
            stat(s.away_shots),
            stat(s.home_shots_on_target),
            stat(s.away_shots_on_target),
            stat(s.home_fouls),
            stat(s.away_fouls),
            stat(s.home_corners),
            stat(s.away_corners),
            stat(s.home_yellow_cards),
            stat(s.away_yellow_cards),
            stat(s.home_red_cards),
            stat(s.away_red_cards),
        ],
        odds: r
            .odds_1x2
            .iter()
            .map(|o| OddsSpec {
                bookmaker: o.bookmaker.code(),
                kind: o.kind.code(),
                home: o.home,
                draw: o.draw,
                away: o.away,
            })
            .collect(),
        over_under: r
            .over_under_25
            .iter()
            .map(|o| OverUnderSpec {
                bookmaker: o.bookmaker.code(),
                kind: o.kind.code(),
                over: o.over,
                under: o.under,
            })
            .collect(),
    }
}

/// Checks the parameters and every row; any problem rejects the whole file.
pub fn plan(league: &str, season: &str, parsed: &ParsedCsv) -> Result<ImportPlan, ImportRejection> {
    validate_league_code(league).map_err(|message| ImportRejection::Parameter {
        field: "league",
        message,
    })?;
    let season = SeasonName::parse(season).map_err(|message| ImportRejection::Parameter {
        field: "season",
        message,
    })?;
    let mut errors: Vec<LineError> = parsed.errors.iter().map(LineError::from).collect();
    let mut error_count = parsed.error_count;
    for record in &parsed.matches {
        if record.division != league {
            error_count += 1;
            errors.push(LineError {
                line: record.line,
                column: Some("Div".into()),
                reason: format!(
                    "division {:?} does not match the league {league}",
                    record.division
                ),
            });
        }
        if !season.contains(record.date) {
            error_count += 1;
            errors.push(LineError {
                line: record.line,
                column: Some("Date".into()),
                reason: format!("{} is outside season {}", record.date, season.name),
            });
        }
    }
    if error_count > 0 {
        errors.sort_by_key(|e| e.line);
        errors.truncate(crate::csvdata::MAX_REPORTED_ERRORS);
        return Err(ImportRejection::Rows {
            errors,
            error_count,
        });
    }
    if parsed.matches.is_empty() {
        return Err(ImportRejection::Empty);
    }
    // The first spelling of a team in the file is its display name.
    let mut teams: Vec<TeamSpec> = Vec::new();
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for r in &parsed.matches {
        for (key, name) in [(&r.home_key, &r.home_team), (&r.away_key, &r.away_team)] {
            if seen.insert(key.as_str(), ()).is_none() {
                teams.push(TeamSpec {
                    key: key.clone(),
                    name: name.clone(),
                });
            }
        }
    }
    Ok(ImportPlan {
        league: league_meta(league),
        season,
        teams,
        matches: parsed.matches.iter().map(match_spec).collect(),
    })
}

/// The season a date most likely belongs to (July starts a season), for generated data.
pub fn season_of(date: NaiveDate) -> SeasonName {
    let start = if date.month() >= 7 {
        date.year()
    } else {
        date.year() - 1
    };
    SeasonName {
        name: format!("{start}-{}", start + 1),
        start_year: start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csvdata::parse;

    const FILE: &[u8] = b"Div,Date,Time,HomeTeam,AwayTeam,FTHG,FTAG,FTR,B365H,B365D,B365A\n\
        E0,11/08/2023,20:00,Burnley,Man City,0,3,A,8,5.5,1.33\n\
        E0,12/08/2023,15:00,Arsenal,Nott'm Forest,2,1,H,1.18,7,15\n\
        E0,20/05/2024,16:00,Man City,Burnley,,,,,,\n";

    #[test]
    fn plans_matches_teams_odds_and_fixtures() {
        let plan = plan("E0", "2023-2024", &parse(FILE)).unwrap();
        assert_eq!(plan.league.name, "Premier League");
        assert_eq!(plan.teams.len(), 4);
        assert_eq!(
            plan.teams[0],
            TeamSpec {
                key: "burnley".into(),
                name: "Burnley".into()
            }
        );
        assert_eq!(plan.matches.len(), 3);
        let first = &plan.matches[0];
        assert_eq!(first.status, "finished");
        assert_eq!((first.home_goals, first.away_goals), (Some(0), Some(3)));
        assert_eq!(first.kickoff_at, 1_691_780_400); // 2023-08-11T19:00:00Z
        assert_eq!(first.odds.len(), 1);
        assert_eq!(first.odds[0].bookmaker, "B365");
        assert_eq!(plan.matches[2].status, "scheduled");
        assert_eq!(plan.matches[2].home_goals, None);
        assert_eq!(plan.odds_rows(), 2);
    }

    #[test]
    fn wrong_division_or_season_rejects_with_lines() {
        match plan("D1", "2023-2024", &parse(FILE)) {
            Err(ImportRejection::Rows {
                errors,
                error_count,
            }) => {
                assert_eq!(error_count, 3);
                assert_eq!(errors[0].line, 2);
                assert_eq!(errors[0].column.as_deref(), Some("Div"));
            }
            other => panic!("{other:?}"),
        }
        match plan("E0", "2019-2020", &parse(FILE)) {
            Err(ImportRejection::Rows { errors, .. }) => {
                assert!(errors[0].reason.contains("outside season"), "{errors:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_rows_and_parameters_reject() {
        let bad = b"Div,Date,HomeTeam,AwayTeam,FTHG,FTAG,FTR\nE0,11/08/2023,A,B,x,1,A\nE0,99/99/2023,C,D,1,1,D\n";
        match plan("E0", "2023-2024", &parse(bad)) {
            Err(ImportRejection::Rows {
                errors,
                error_count,
            }) => {
                assert_eq!(error_count, 2);
                assert_eq!(
                    errors.iter().map(|e| e.line).collect::<Vec<_>>(),
                    vec![2, 3]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan("e0", "2023-2024", &parse(FILE)),
            Err(ImportRejection::Parameter {
                field: "league",
                ..
            })
        ));
        assert!(matches!(
            plan("E0", "2023-2025", &parse(FILE)),
            Err(ImportRejection::Parameter {
                field: "season",
                ..
            })
        ));
        assert_eq!(
            plan(
                "E0",
                "2023-2024",
                &parse(b"Div,Date,HomeTeam,AwayTeam,FTHG,FTAG,FTR\n")
            ),
            Err(ImportRejection::Empty)
        );
    }

    #[test]
    fn seasons() {
        let s = SeasonName::parse("2019-2020").unwrap();
        assert!(s.contains(NaiveDate::from_ymd_opt(2020, 8, 23).unwrap()));
        assert!(!s.contains(NaiveDate::from_ymd_opt(2020, 9, 1).unwrap()));
        assert!(SeasonName::parse("2019-20").is_err());
        assert_eq!(
            season_of(NaiveDate::from_ymd_opt(2024, 2, 1).unwrap()).name,
            "2023-2024"
        );
    }
}
