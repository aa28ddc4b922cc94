//! Dixon-Coles football model: fit per league, forecast per match, evaluate out of sample.
//!
//! **Model** (Dixon & Coles 1997). Home goals X ~ Poisson(lambda), away goals Y ~ Poisson(mu),
//! `ln lambda = intercept + home_advantage + attack[home] - defence[away]`,
//! `ln mu = intercept + attack[away] - defence[home]`, with the low-score correction tau
//! (parameter rho) on 0-0, 1-0, 0-1 and 1-1. Attack and defence are each constrained to mean
//! zero (identifiability); higher defence means fewer goals conceded.
//!
//! **Fit** ([`fit`], [`Fitter`]): maximum likelihood with each match weighted by
//! `exp(-xi * age_in_days)` (`xi = ln 2 / half_life_days`), using only matches that kicked off
//! before the fit time and within the history window. Analytic gradients and a hand-written
//! L-BFGS with a strong-Wolfe line search ([`lbfgs`]); the training data are flat arrays of team
//! indices, goals and weights built once per fit, and the optimiser allocates nothing per
//! iteration.
//!
//! **Fallback** ([`RatingSource`]): a team absent from the history window (a promoted team) gets
//! the mean ratings of the weakest third (by attack + defence) of the teams with full history;
//! a team with fewer than `min_effective_matches` decay-weighted matches gets its fitted
//! ratings blended with that prior in proportion to its match count. Every prediction names
//! the source of both teams' ratings.
//!
//! **Evaluation** ([`walk_forward`]): each finished match is forecast by a fit on the matches
//! that kicked off before its day (or week) began; ranked probability score, log loss, Brier
//! and accuracy, next to a constant (0.45, 0.25, 0.30) forecast and the closing odds with the
//! margin removed proportionally.

mod config;
mod evaluation;
mod fit;
pub mod lbfgs;
mod likelihood;
mod predict;
pub mod synthetic;
mod types;

pub use config::FitConfig;
pub use evaluation::{
    CLOSING_ODDS_PREFERENCE, DecimalOdds, Evaluation, EvaluationError, EvaluationTarget, Metrics,
    MetricsAccumulator, OddsComparison, RefitSchedule, brier_score, log_loss,
    preferred_closing_odds, ranked_probability_score, walk_forward,
};
pub use fit::{FitError, Fitter, fit};
pub use predict::{MAX_GOALS, ScoreGrid};
pub use types::{
    FallbackRatings, FitDiagnostics, FittedModel, MatchOutcome, MatchResult, Prediction,
    Probabilities, RatingSource, ScoreProbability, TeamRating,
};

/// Name of this model in the API (`/api/v1/models/{name}`).
pub const MODEL_NAME: &str = "dixon-coles";

/// Bumped whenever a code change can change fitted parameters; part of every model version.
pub const ALGORITHM_REVISION: u32 = 1;

#[cfg(test)]
mod tests;
