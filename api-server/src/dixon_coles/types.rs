//! Inputs and outputs of the model.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::FitConfig;
pub use crate::csvdata::MatchOutcome;

/// A finished match, as the model sees it. Team identifiers are opaque: use one scheme
/// consistently (the normalised team key, or a database id as text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchResult {
    pub home: String,
    pub away: String,
    pub kickoff: DateTime<Utc>,
    pub home_goals: u8,
    pub away_goals: u8,
}

impl MatchResult {
    pub fn outcome(&self) -> MatchOutcome {
        MatchOutcome::from_score(self.home_goals, self.away_goals)
    }
}

/// Where a team's ratings in a prediction come from: the fallback for too little history is
/// named here and in every prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatingSource {
    /// Fitted from enough of the team's own matches.
    Fitted,
    /// Few recent matches: the fitted ratings blended with the promoted-team prior in proportion
    /// to the team's decay-weighted match count (see `FitConfig::min_effective_matches`).
    PartialHistoryBlend,
    /// No matches in the history window (typically a promoted team): the mean ratings of the
    /// weakest third of the league's established teams.
    PromotedTeamPrior,
}

/// A team's ratings. `attack` and `defence` are what predictions use; `fitted_*` are the raw
/// maximum-likelihood values (equal when `source` is `Fitted`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamRating {
    pub team: String,
    pub attack: f64,
    pub defence: f64,
    pub fitted_attack: f64,
    pub fitted_defence: f64,
    /// Matches in the history window, and their decay-weighted count.
    pub matches: u32,
    pub effective_matches: f64,
    pub source: RatingSource,
}

/// The ratings given to teams without history, and which teams they were averaged from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FallbackRatings {
    pub attack: f64,
    pub defence: f64,
    /// Always `"weakest_third"`: the mean over the weakest third (by attack + defence) of teams
    /// with full history.
    pub method: String,
    pub from_teams: Vec<String>,
}

/// How the fit went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitDiagnostics {
    pub matches: usize,
    pub teams: usize,
    pub first_kickoff: DateTime<Utc>,
    pub last_kickoff: DateTime<Utc>,
    pub iterations: usize,
    pub evaluations: usize,
    pub converged: bool,
    /// Why the optimiser stopped (`gradient_small`, `no_progress`, `max_iterations`, ...).
    pub stop: String,
    /// Weighted mean log-likelihood per match (without the constant log-factorial terms).
    pub mean_log_likelihood: f64,
    pub gradient_inf_norm: f64,
}

/// Fitted Dixon-Coles parameters of one league: serialise it (serde) to store it, load it on
/// every replica, and call [`predict`](FittedModel::predict).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedModel {
    /// [`MODEL_NAME`](super::MODEL_NAME).
    pub model: String,
    /// Identifies the parameters and the data they saw: a hash of the algorithm revision, the
    /// configuration, the fit time, every match used and the resulting parameters.
    pub version: String,
    pub league: String,
    /// Only matches that kicked off before this instant were used; decay is measured from it.
    pub as_of: DateTime<Utc>,
    pub config: FitConfig,
    /// ln of the expected goals of an average away team against an average home team.
    pub intercept: f64,
    pub home_advantage: f64,
    pub rho: f64,
    /// Sorted by `team`.
    pub teams: Vec<TeamRating>,
    pub fallback: FallbackRatings,
    pub diagnostics: FitDiagnostics,
}

/// The most likely exact score and its probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreProbability {
    pub home: u8,
    pub away: u8,
    pub probability: f64,
}

/// One match's forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub model: String,
    pub model_version: String,
    pub home_win: f64,
    pub draw: f64,
    pub away_win: f64,
    pub expected_home_goals: f64,
    pub expected_away_goals: f64,
    pub most_likely_score: ScoreProbability,
    /// P(3 or more goals in total).
    pub over_2_5: f64,
    /// P(both teams score).
    pub both_teams_score: f64,
    /// The most probable of home win, draw and away win.
    pub predicted_outcome: MatchOutcome,
    /// The probability of `predicted_outcome`.
    pub confidence: f64,
    pub home_rating_source: RatingSource,
    pub away_rating_source: RatingSource,
}

impl Prediction {
    pub fn probabilities(&self) -> Probabilities {
        Probabilities {
            home: self.home_win,
            draw: self.draw,
            away: self.away_win,
        }
    }
}

/// Home-win, draw and away-win probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Probabilities {
    pub home: f64,
    pub draw: f64,
    pub away: f64,
}

impl Probabilities {
    /// The constant reference forecast of the evaluation: (0.45, 0.25, 0.30).
    pub const CONSTANT_REFERENCE: Self = Self {
        home: 0.45,
        draw: 0.25,
        away: 0.30,
    };

    pub fn of(self, outcome: MatchOutcome) -> f64 {
        match outcome {
            MatchOutcome::HomeWin => self.home,
            MatchOutcome::Draw => self.draw,
            MatchOutcome::AwayWin => self.away,
        }
    }

    /// The most probable outcome (ties go to home, then draw).
    pub fn most_likely(self) -> MatchOutcome {
        if self.home >= self.draw && self.home >= self.away {
            MatchOutcome::HomeWin
        } else if self.draw >= self.away {
            MatchOutcome::Draw
        } else {
            MatchOutcome::AwayWin
        }
    }
}
