//! Typed records produced by the parser.

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};

use super::bookmaker::Bookmaker;

/// Outcome of a match (or of its first half) from the home side's view: `H`, `D` or `A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatchOutcome {
    #[serde(rename = "H")]
    HomeWin,
    #[serde(rename = "D")]
    Draw,
    #[serde(rename = "A")]
    AwayWin,
}

impl MatchOutcome {
    /// The outcome a score implies.
    pub fn from_score(home_goals: u8, away_goals: u8) -> Self {
        match home_goals.cmp(&away_goals) {
            std::cmp::Ordering::Greater => Self::HomeWin,
            std::cmp::Ordering::Equal => Self::Draw,
            std::cmp::Ordering::Less => Self::AwayWin,
        }
    }

    /// The letter football-data uses (`H`, `D`, `A`).
    pub fn code(self) -> &'static str {
        match self {
            Self::HomeWin => "H",
            Self::Draw => "D",
            Self::AwayWin => "A",
        }
    }
}

/// Goals scored by each side, with the outcome they imply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreLine {
    pub home_goals: u8,
    pub away_goals: u8,
    pub outcome: MatchOutcome,
}

impl ScoreLine {
    pub fn new(home_goals: u8, away_goals: u8) -> Self {
        Self {
            home_goals,
            away_goals,
            outcome: MatchOutcome::from_score(home_goals, away_goals),
        }
    }
}

/// Basic match statistics; each is `None` when the file has no such column or the cell is empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchStats {
    pub home_shots: Option<u16>,
    pub away_shots: Option<u16>,
    pub home_shots_on_target: Option<u16>,
    pub away_shots_on_target: Option<u16>,
    pub home_fouls: Option<u16>,
    pub away_fouls: Option<u16>,
    pub home_corners: Option<u16>,
    pub away_corners: Option<u16>,
    pub home_yellow_cards: Option<u16>,
    pub away_yellow_cards: Option<u16>,
    pub home_red_cards: Option<u16>,
    pub away_red_cards: Option<u16>,
}

impl MatchStats {
    /// True when no statistic is present.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Whether a price was taken early (football-data's "pre-match" columns) or at kick-off ("closing").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OddsKind {
    Opening,
    Closing,
}

impl OddsKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Opening => "opening",
            Self::Closing => "closing",
        }
    }
}

/// Decimal 1X2 odds from one bookmaker (or a market aggregate such as the average).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Odds1x2 {
    pub bookmaker: Bookmaker,
    pub kind: OddsKind,
    pub home: f64,
    pub draw: f64,
    pub away: f64,
}

/// Decimal odds for more / fewer than 2.5 goals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OverUnder25 {
    pub bookmaker: Bookmaker,
    pub kind: OddsKind,
    pub over: f64,
    pub under: f64,
}

/// One data row of a football-data.co.uk file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchRecord {
    /// 1-based physical line of the row in the file (the header is line 1).
    pub line: u64,
    /// The `Div` column, e.g. `E0`.
    pub division: String,
    pub date: NaiveDate,
    /// Kick-off time as given (football-data gives UK local time); present from 2019-20.
    pub time: Option<NaiveTime>,
    /// Team names as given, trimmed and with inner whitespace collapsed.
    pub home_team: String,
    pub away_team: String,
    /// [`normalise_team_name`](super::normalise_team_name) of the names: the key to match teams on.
    pub home_key: String,
    pub away_key: String,
    /// Full-time score; `None` for a fixture not yet played (import it as scheduled).
    pub full_time: Option<ScoreLine>,
    pub half_time: Option<ScoreLine>,
    pub stats: MatchStats,
    pub referee: Option<String>,
    pub attendance: Option<u32>,
    pub odds_1x2: Vec<Odds1x2>,
    pub over_under_25: Vec<OverUnder25>,
}

impl MatchRecord {
    /// The 1X2 quote of one bookmaker and kind, if the row has it.
    pub fn odds(&self, bookmaker: Bookmaker, kind: OddsKind) -> Option<&Odds1x2> {
        self.odds_1x2
            .iter()
            .find(|o| o.bookmaker == bookmaker && o.kind == kind)
    }
}
