//! Turning one data row into a [`MatchRecord`], collecting every problem in the row.

use csv::ByteRecord;

use super::error::{Problem, RowError};
use super::fields;
use super::header::{Column, Columns};
use super::types::{MatchRecord, MatchStats, Odds1x2, OverUnder25, ScoreLine};
use super::{collapse_whitespace, normalise_team_name};

/// Reads cells of one row; problems are collected, never returned early.
struct RowReader<'r> {
    record: &'r ByteRecord,
    line: u64,
    errors: Vec<RowError>,
    /// Problems that drop an odds quote but keep the match (see [`ParsedRow::warnings`]).
    warnings: Vec<RowError>,
}

impl<'r> RowReader<'r> {
    fn fail(&mut self, column: Option<&Column>, problem: Problem) {
        self.errors.push(RowError::new(
            self.line,
            column.map(|c| c.name.as_str()),
            problem,
        ));
    }

    /// The trimmed cell, `None` when the row is too short or the cell is empty or not UTF-8
    /// (that last case is reported).
    fn text(&mut self, column: &Column) -> Option<&'r str> {
        let bytes = self.record.get(column.index)?.trim_ascii();
        if bytes.is_empty() {
            return None;
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(_) => {
                self.fail(Some(column), Problem::InvalidUtf8);
                None
            }
        }
    }

    /// Free text where a bad byte is better shown as U+FFFD than rejected (referee names).
    fn lossy_text(&self, column: Option<&Column>) -> Option<String> {
        let bytes = self.record.get(column?.index)?.trim_ascii();
        (!bytes.is_empty()).then(|| collapse_whitespace(&String::from_utf8_lossy(bytes)))
    }

    fn required<T>(
        &mut self,
        column: &Column,
        parse: impl FnOnce(&str) -> Result<T, Problem>,
    ) -> Option<T> {
        let errors_before = self.errors.len();
        match self.text(column) {
            Some(text) => parse(text).map_err(|p| self.fail(Some(column), p)).ok(),
            None => {
                if self.errors.len() == errors_before {
                    self.fail(Some(column), Problem::MissingValue);
                }
                None
            }
        }
    }

    fn optional<T>(
        &mut self,
        column: Option<&Column>,
        parse: impl FnOnce(&str) -> Result<T, Problem>,
    ) -> Option<T> {
        let column = column?;
        let text = self.text(column)?;
        parse(text).map_err(|p| self.fail(Some(column), p)).ok()
    }

    /// A score from two goal cells and a result cell: `None` when all are empty (not played).
    fn score(
        &mut self,
        home: Option<&Column>,
        away: Option<&Column>,
        result: Option<&Column>,
    ) -> Option<ScoreLine> {
        let errors_before = self.errors.len();
        let home_goals = self.optional(home, fields::parse_goals);
        let away_goals = self.optional(away, fields::parse_goals);
        let outcome = self.optional(result, fields::parse_outcome);
        if self.errors.len() != errors_before {
            return None;
        }
        match (home_goals, away_goals) {
            (Some(h), Some(a)) => {
                let score = ScoreLine::new(h, a);
                match outcome {
                    Some(given) if given != score.outcome => {
                        self.fail(
                            result,
                            Problem::ResultContradictsScore {
                                given: given.code(),
                                home: h,
                                away: a,
                            },
                        );
                        None
                    }
                    _ => Some(score),
                }
            }
            (None, None) => {
                if outcome.is_some() {
                    self.fail(result, Problem::ResultWithoutScore);
                }
                None
            }
            (Some(_), None) => {
                self.fail(away, Problem::IncompleteScore);
                None
            }
            (None, Some(_)) => {
                self.fail(home, Problem::IncompleteScore);
                None
            }
        }
    }

    fn warn(&mut self, column: &Column, problem: Problem) {
        self.warnings.push(RowError::new(
            self.line,
            Some(column.name.as_str()),
            problem,
        ));
    }

    /// Reads a quote's cells: `None` when all are empty (a `0` counts as empty: football-data's
    /// placeholder for a missing price). A partly filled quote or a bad price is a warning and
    /// drops the quote: a bookmaker's glitch must not block the match result.
    fn prices<const N: usize>(&mut self, columns: &[Column; N]) -> Option<[f64; N]> {
        let texts: [Option<&str>; N] = std::array::from_fn(|i| {
            self.text(&columns[i])
                .filter(|t| fields::parse_count(t) != Ok(0))
        });
        let present = texts.iter().position(Option::is_some)?;
        if let Some(missing) = texts.iter().position(Option::is_none) {
            self.warn(
                &columns[missing],
                Problem::IncompleteOdds {
                    present: columns[present].name.clone(),
                    missing: columns[missing].name.clone(),
                },
            );
            return None;
        }
        let mut prices = [0.0; N];
        let mut ok = true;
        for (i, text) in texts.iter().enumerate() {
            match text.map(fields::parse_odds) {
                Some(Ok(price)) => prices[i] = price,
                Some(Err(problem)) => {
                    self.warn(&columns[i], problem);
                    ok = false;
                }
                None => ok = false,
            }
        }
        ok.then_some(prices)
    }
}

/// What one row yields: the match (when the row has no errors), its errors and its warnings.
pub(super) struct ParsedRow {
    pub record: Result<MatchRecord, Vec<RowError>>,
    pub warnings: Vec<RowError>,
}

/// Parses one non-blank data row.
pub(super) fn parse_row(record: &ByteRecord, line: u64, columns: &Columns) -> ParsedRow {
    let mut row = RowReader {
        record,
        line,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let parsed = read_match(&mut row, columns);
    ParsedRow {
        record: parsed,
        warnings: row.warnings,
    }
}

fn read_match(row: &mut RowReader<'_>, columns: &Columns) -> Result<MatchRecord, Vec<RowError>> {
    let line = row.line;
    if row
        .record
        .iter()
        .any(|f| f.contains(&b'\n') || f.contains(&b'\r'))
    {
        row.fail(None, Problem::MultilineField);
        return Err(std::mem::take(&mut row.errors));
    }

    let division = row.required(&columns.division, |t| Ok(t.to_owned()));
    let date = row.required(&columns.date, fields::parse_date);
    let time = row.optional(columns.time.as_ref(), fields::parse_time);
    let home_team = row.required(&columns.home_team, |t| Ok(collapse_whitespace(t)));
    let away_team = row.required(&columns.away_team, |t| Ok(collapse_whitespace(t)));

    let full_time = row.score(
        columns.full_time_home.as_ref(),
        columns.full_time_away.as_ref(),
        columns.full_time_result.as_ref(),
    );
    let half_time = row.score(
        columns.half_time_home.as_ref(),
        columns.half_time_away.as_ref(),
        columns.half_time_result.as_ref(),
    );
    if let (Some(ht), Some(ft)) = (half_time, full_time)
        && (ht.home_goals > ft.home_goals || ht.away_goals > ft.away_goals)
    {
        row.fail(
            columns.half_time_home.as_ref(),
            Problem::HalfTimeExceedsFullTime {
                ht_home: ht.home_goals,
                ht_away: ht.away_goals,
                ft_home: ft.home_goals,
                ft_away: ft.away_goals,
            },
        );
    }

    let [hs, as_, hst, ast, hf, af, hc, ac, hy, ay, hr, ar] =
        std::array::from_fn(|i| row.optional(columns.stats[i].as_ref(), fields::parse_stat));
    let stats = MatchStats {
        home_shots: hs,
        away_shots: as_,
        home_shots_on_target: hst,
        away_shots_on_target: ast,
        home_fouls: hf,
        away_fouls: af,
        home_corners: hc,
        away_corners: ac,
        home_yellow_cards: hy,
        away_yellow_cards: ay,
        home_red_cards: hr,
        away_red_cards: ar,
    };
    let referee = row.lossy_text(columns.referee.as_ref());
    let attendance = row.optional(columns.attendance.as_ref(), fields::parse_count);

    let odds_1x2 = columns
        .odds_1x2
        .iter()
        .filter_map(|quote| {
            let [home, draw, away] = row.prices(&quote.columns)?;
            Some(Odds1x2 {
                bookmaker: quote.bookmaker,
                kind: quote.kind,
                home,
                draw,
                away,
            })
        })
        .collect();
    let over_under_25 = columns
        .over_under_25
        .iter()
        .filter_map(|quote| {
            let [over, under] = row.prices(&quote.columns)?;
            Some(OverUnder25 {
                bookmaker: quote.bookmaker,
                kind: quote.kind,
                over,
                under,
            })
        })
        .collect();

    let (Some(division), Some(date), Some(home_team), Some(away_team)) =
        (division, date, home_team, away_team)
    else {
        return Err(std::mem::take(&mut row.errors));
    };
    let (home_key, away_key) = (
        normalise_team_name(&home_team),
        normalise_team_name(&away_team),
    );
    if home_key == away_key {
        row.fail(Some(&columns.away_team), Problem::SameTeams);
    }
    if !row.errors.is_empty() {
        return Err(std::mem::take(&mut row.errors));
    }
    Ok(MatchRecord {
        line,
        division,
        date,
        time,
        home_team,
        away_team,
        home_key,
        away_key,
        full_time,
        half_time,
        stats,
        referee,
        attendance,
        odds_1x2,
        over_under_25,
    })
}
