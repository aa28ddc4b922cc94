//! Forecast metrics and the walk-forward (out-of-sample) evaluation.

use chrono::{DateTime, Datelike, Duration, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::MODEL_NAME;
use super::config::FitConfig;
use super::fit::{FitError, Fitter};
use super::types::{FittedModel, MatchOutcome, MatchResult, Probabilities};
use crate::csvdata::{Bookmaker, Odds1x2, OddsKind};

/// Ranked probability score of one forecast (0 is perfect, lower is better):
/// half the sum of squared differences of the cumulative home / home-or-draw probabilities.
pub fn ranked_probability_score(p: Probabilities, outcome: MatchOutcome) -> f64 {
    let o = indicator(outcome);
    let first = p.home - o[0];
    let second = p.home + p.draw - o[0] - o[1];
    (first * first + second * second) / 2.0
}

/// Natural-log loss of the probability given to what happened (probabilities below 1e-15 count
/// as 1e-15 so a confident miss costs a lot, not infinity).
pub fn log_loss(p: Probabilities, outcome: MatchOutcome) -> f64 {
    -p.of(outcome).max(1e-15).ln()
}

/// Multi-class Brier score: the sum over the three outcomes of squared errors (0..2).
pub fn brier_score(p: Probabilities, outcome: MatchOutcome) -> f64 {
    let o = indicator(outcome);
    [p.home, p.draw, p.away]
        .iter()
        .zip(o)
        .map(|(p, o)| (p - o) * (p - o))
        .sum()
}

fn indicator(outcome: MatchOutcome) -> [f64; 3] {
    match outcome {
        MatchOutcome::HomeWin => [1.0, 0.0, 0.0],
        MatchOutcome::Draw => [0.0, 1.0, 0.0],
        MatchOutcome::AwayWin => [0.0, 0.0, 1.0],
    }
}

/// Decimal 1X2 odds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DecimalOdds {
    pub home: f64,
    pub draw: f64,
    pub away: f64,
}

impl DecimalOdds {
    /// Implied probabilities with the bookmaker's margin removed proportionally (each inverse
    /// price divided by their sum); `None` unless every price is finite and above 1.
    pub fn remove_margin_proportional(self) -> Option<Probabilities> {
        let prices = [self.home, self.draw, self.away];
        if prices.iter().any(|o| !o.is_finite() || *o <= 1.0) {
            return None;
        }
        let total: f64 = prices.iter().map(|o| 1.0 / o).sum();
        Some(Probabilities {
            home: 1.0 / self.home / total,
            draw: 1.0 / self.draw / total,
            away: 1.0 / self.away / total,
        })
    }
}

/// Which closing prices stand for "the bookmakers' closing odds", best first: Pinnacle (the
/// sharpest, and what the reference figures use), then the market average, then Bet365.
pub const CLOSING_ODDS_PREFERENCE: [Bookmaker; 3] = [
    Bookmaker::Pinnacle,
    Bookmaker::MarketAverage,
    Bookmaker::Bet365,
];

/// The preferred closing 1X2 quote among `quotes` (see [`CLOSING_ODDS_PREFERENCE`]).
pub fn preferred_closing_odds(quotes: &[Odds1x2]) -> Option<DecimalOdds> {
    CLOSING_ODDS_PREFERENCE.iter().find_map(|&bookmaker| {
        quotes
            .iter()
            .find(|q| q.bookmaker == bookmaker && q.kind == OddsKind::Closing)
            .map(|q| DecimalOdds {
                home: q.home,
                draw: q.draw,
                away: q.away,
            })
    })
}

/// Mean scores over a set of forecasts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub count: usize,
    /// Share of matches whose most probable outcome happened.
    pub accuracy: f64,
    pub rps: f64,
    pub log_loss: f64,
    pub brier: f64,
}

/// Accumulates forecasts into [`Metrics`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsAccumulator {
    count: usize,
    correct: usize,
    rps: f64,
    log_loss: f64,
    brier: f64,
}

impl MetricsAccumulator {
    pub fn add(&mut self, p: Probabilities, outcome: MatchOutcome) {
        self.count += 1;
        self.correct += usize::from(p.most_likely() == outcome);
        self.rps += ranked_probability_score(p, outcome);
        self.log_loss += log_loss(p, outcome);
        self.brier += brier_score(p, outcome);
    }

    /// The means, or `None` when nothing was added.
    pub fn finish(&self) -> Option<Metrics> {
        (self.count > 0).then(|| {
            let n = self.count as f64;
            Metrics {
                count: self.count,
                accuracy: self.correct as f64 / n,
                rps: self.rps / n,
                log_loss: self.log_loss / n,
                brier: self.brier / n,
            }
        })
    }
}

/// A finished match to score, with the closing odds when the data has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationTarget {
    pub result: MatchResult,
    pub closing_odds: Option<DecimalOdds>,
}

/// How often the walk-forward evaluation refits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefitSchedule {
    /// Before every calendar day (UTC) with matches: each day's matches are forecast from a fit
    /// on everything that kicked off before that day began.
    #[default]
    Daily,
    /// Before every ISO week (Monday 00:00 UTC) with matches.
    Weekly,
}

/// Model and closing-odds scores on the same matches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OddsComparison {
    pub closing_odds: Metrics,
    pub model: Metrics,
}

/// Result of [`walk_forward`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub model: String,
    pub league: String,
    pub refit: RefitSchedule,
    pub refits: usize,
    /// Targets that could not be forecast because too few earlier matches existed.
    pub skipped: usize,
    /// The model on every forecast target.
    pub metrics: Option<Metrics>,
    /// The constant (0.45, 0.25, 0.30) forecast on the same targets.
    pub constant_reference: Option<Metrics>,
    /// Closing odds (margin removed) and the model, on the targets that have closing odds.
    pub closing_odds: Option<OddsComparison>,
}

/// Why an evaluation could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvaluationError {
    #[error(transparent)]
    Fit(#[from] FitError),
}

/// Out-of-sample evaluation: every target is forecast by a fit on `history` matches that kicked
/// off strictly before it (before the start of its day or week, see [`RefitSchedule`]).
/// `history` may include the targets themselves; nothing at or after a refit time is used.
pub fn walk_forward(
    league: &str,
    history: &[MatchResult],
    targets: &[EvaluationTarget],
    config: &FitConfig,
    refit: RefitSchedule,
) -> Result<Evaluation, EvaluationError> {
    let mut order: Vec<&EvaluationTarget> = targets.iter().collect();
    order.sort_by_key(|t| t.result.kickoff);

    let mut fitter = Fitter::default();
    // The latest successful fit (also the warm start of the next), the refit time last tried,
    // and whether that attempt succeeded.
    let mut fitted: Option<FittedModel> = None;
    let mut last_cutoff: Option<DateTime<Utc>> = None;
    let mut usable = false;
    let (mut refits, mut skipped) = (0, 0);
    let (mut model, mut constant) = (MetricsAccumulator::default(), MetricsAccumulator::default());
    let (mut odds, mut model_with_odds) =
        (MetricsAccumulator::default(), MetricsAccumulator::default());

    for target in order {
        let cutoff = refit_time(target.result.kickoff, refit);
        if last_cutoff != Some(cutoff) {
            last_cutoff = Some(cutoff);
            match fitter.fit(league, history, cutoff, config, fitted.as_ref()) {
                Ok(fit) => {
                    refits += 1;
                    fitted = Some(fit);
                    usable = true;
                }
                Err(FitError::NotEnoughMatches { .. } | FitError::NoSolution(_)) => usable = false,
                Err(e) => return Err(e.into()),
            }
        }
        let Some(fitted) = fitted.as_ref().filter(|_| usable) else {
            skipped += 1;
            continue;
        };
        let outcome = target.result.outcome();
        let forecast = fitted
            .predict(&target.result.home, &target.result.away)
            .probabilities();
        model.add(forecast, outcome);
        constant.add(Probabilities::CONSTANT_REFERENCE, outcome);
        if let Some(implied) = target
            .closing_odds
            .and_then(DecimalOdds::remove_margin_proportional)
        {
            odds.add(implied, outcome);
            model_with_odds.add(forecast, outcome);
        }
    }
    Ok(Evaluation {
        model: MODEL_NAME.to_owned(),
        league: league.to_owned(),
        refit,
        refits,
        skipped,
        metrics: model.finish(),
        constant_reference: constant.finish(),
        closing_odds: odds
            .finish()
            .zip(model_with_odds.finish())
            .map(|(closing_odds, model)| OddsComparison {
                closing_odds,
                model,
            }),
    })
}

/// Start of the kickoff's day or ISO week (UTC).
fn refit_time(kickoff: DateTime<Utc>, schedule: RefitSchedule) -> DateTime<Utc> {
    let day = kickoff.date_naive();
    let start = match schedule {
        RefitSchedule::Daily => day,
        RefitSchedule::Weekly => {
            day - Duration::days(i64::from(day.weekday().num_days_from_monday()))
        }
    };
    start.and_time(NaiveTime::MIN).and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: MatchOutcome = MatchOutcome::HomeWin;
    const D: MatchOutcome = MatchOutcome::Draw;
    const A: MatchOutcome = MatchOutcome::AwayWin;

    fn p(home: f64, draw: f64, away: f64) -> Probabilities {
        Probabilities { home, draw, away }
    }

    #[test]
    fn rps_by_hand() {
        // Constant forecast: home win -> ((0.45-1)^2 + (0.70-1)^2)/2 = (0.3025+0.09)/2.
        let c = Probabilities::CONSTANT_REFERENCE;
        assert!((ranked_probability_score(c, H) - 0.19625).abs() < 1e-12);
        // draw -> (0.45^2 + 0.30^2)/2 = (0.2025 + 0.09)/2
        assert!((ranked_probability_score(c, D) - 0.14625).abs() < 1e-12);
        // away -> (0.45^2 + 0.70^2)/2 = (0.2025 + 0.49)/2
        assert!((ranked_probability_score(c, A) - 0.34625).abs() < 1e-12);
        assert_eq!(ranked_probability_score(p(1.0, 0.0, 0.0), H), 0.0);
        // RPS punishes a distant miss more than a near one.
        assert!(
            ranked_probability_score(p(1.0, 0.0, 0.0), A)
                > ranked_probability_score(p(1.0, 0.0, 0.0), D)
        );
    }

    #[test]
    fn brier_log_loss_and_accuracy() {
        let mut acc = MetricsAccumulator::default();
        acc.add(p(0.5, 0.3, 0.2), H);
        acc.add(p(0.2, 0.3, 0.5), D);
        let m = acc.finish().unwrap();
        assert_eq!(m.count, 2);
        assert!((m.accuracy - 0.5).abs() < 1e-12);
        let brier = ((0.25 + 0.09 + 0.04) + (0.04 + 0.49 + 0.25)) / 2.0;
        assert!((m.brier - brier).abs() < 1e-12);
        let ll = (-(0.5f64.ln()) - 0.3f64.ln()) / 2.0;
        assert!((m.log_loss - ll).abs() < 1e-12);
        assert!(MetricsAccumulator::default().finish().is_none());
    }

    #[test]
    fn margin_removal_is_proportional() {
        let odds = DecimalOdds {
            home: 2.0,
            draw: 3.2,
            away: 4.0,
        };
        let implied = odds.remove_margin_proportional().unwrap();
        let overround = 0.5 + 1.0 / 3.2 + 0.25;
        assert!((implied.home - 0.5 / overround).abs() < 1e-12);
        assert!((implied.home + implied.draw + implied.away - 1.0).abs() < 1e-12);
        assert!(
            DecimalOdds {
                home: 1.0,
                draw: 3.0,
                away: 4.0
            }
            .remove_margin_proportional()
            .is_none()
        );
    }

    #[test]
    fn refit_times_are_day_and_week_starts() {
        let kickoff = chrono::NaiveDate::from_ymd_opt(2024, 5, 19) // a Sunday
            .unwrap()
            .and_hms_opt(15, 0, 0)
            .unwrap()
            .and_utc();
        assert_eq!(
            refit_time(kickoff, RefitSchedule::Daily).to_rfc3339(),
            "2024-05-19T00:00:00+00:00"
        );
        assert_eq!(
            refit_time(kickoff, RefitSchedule::Weekly).to_rfc3339(),
            "2024-05-13T00:00:00+00:00"
        );
    }

    #[test]
    fn preferred_closing_odds_order() {
        let quote = |bookmaker, kind, home| Odds1x2 {
            bookmaker,
            kind,
            home,
            draw: 3.0,
            away: 4.0,
        };
        let quotes = [
            quote(Bookmaker::Bet365, OddsKind::Closing, 2.1),
            quote(Bookmaker::Pinnacle, OddsKind::Opening, 2.2),
            quote(Bookmaker::MarketAverage, OddsKind::Closing, 2.3),
        ];
        assert_eq!(preferred_closing_odds(&quotes).unwrap().home, 2.3);
        assert_eq!(preferred_closing_odds(&quotes[..2]).unwrap().home, 2.1);
        assert!(preferred_closing_odds(&quotes[1..2]).is_none());
    }
}
