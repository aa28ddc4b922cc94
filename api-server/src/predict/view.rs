//! The prediction response (pure): a match, the forecast and which model made it.

use serde::Serialize;
use utoipa::ToSchema;

use crate::db::data::MatchRow;
use crate::dixon_coles::{MatchOutcome, Prediction, RatingSource};
use crate::views::{MatchView, Score, TeamRef, rfc3339};

#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct OutcomeProbabilities {
    pub home: f64,
    pub draw: f64,
    pub away: f64,
}

#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct ExpectedGoals {
    pub home: f64,
    pub away: f64,
}

#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct LikelyScore {
    pub home: u8,
    pub away: u8,
    pub probability: f64,
}

/// Where each team's ratings came from; anything but `fitted` is the documented fallback for
/// too little history (`partial_history_blend`, `promoted_team_prior`).
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct RatingSources {
    #[schema(value_type = String)]
    pub home: RatingSource,
    #[schema(value_type = String)]
    pub away: RatingSource,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PredictionView {
    pub match_id: i64,
    pub league: String,
    pub season: String,
    pub date: String,
    pub kickoff: Option<String>,
    pub status: String,
    pub home_team: TeamRef,
    pub away_team: TeamRef,
    /// The final score when the match is finished.
    pub result: Option<Score>,
    pub model: String,
    /// Identifies the fitted parameters and the data they saw.
    pub model_version: String,
    /// RFC 3339 time of the fit.
    pub fitted_at: String,
    pub probabilities: OutcomeProbabilities,
    pub expected_goals: ExpectedGoals,
    pub most_likely_score: LikelyScore,
    /// P(3 or more goals).
    pub over_2_5: f64,
    /// P(both teams score).
    pub both_teams_score: f64,
    /// `home`, `draw` or `away`.
    pub predicted_outcome: &'static str,
    /// Probability of the predicted outcome.
    pub confidence: f64,
    pub rating_sources: RatingSources,
    /// True when either team's ratings are a fallback rather than fitted.
    pub uses_fallback: bool,
}

pub fn outcome_label(o: MatchOutcome) -> &'static str {
    match o {
        MatchOutcome::HomeWin => "home",
        MatchOutcome::Draw => "draw",
        MatchOutcome::AwayWin => "away",
    }
}

impl PredictionView {
    pub fn new(m: &MatchRow, p: &Prediction, fitted_at: i64) -> Self {
        let base = MatchView::from_row(m);
        Self {
            match_id: m.id,
            league: base.league,
            season: base.season,
            date: base.date,
            kickoff: base.kickoff,
            status: base.status,
            home_team: base.home_team,
            away_team: base.away_team,
            result: base.score.filter(|_| m.status == "finished"),
            model: p.model.clone(),
            model_version: p.model_version.clone(),
            fitted_at: rfc3339(fitted_at),
            probabilities: OutcomeProbabilities {
                home: p.home_win,
                draw: p.draw,
                away: p.away_win,
            },
            expected_goals: ExpectedGoals {
                home: p.expected_home_goals,
                away: p.expected_away_goals,
            },
            most_likely_score: LikelyScore {
                home: p.most_likely_score.home,
                away: p.most_likely_score.away,
                probability: p.most_likely_score.probability,
            },
            over_2_5: p.over_2_5,
            both_teams_score: p.both_teams_score,
            predicted_outcome: outcome_label(p.predicted_outcome),
            confidence: p.confidence,
            rating_sources: RatingSources {
                home: p.home_rating_source,
                away: p.away_rating_source,
            },
            uses_fallback: p.home_rating_source != RatingSource::Fitted
                || p.away_rating_source != RatingSource::Fitted,
        }
    }
}
