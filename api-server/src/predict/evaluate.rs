//! Out-of-sample evaluation of a league season (walk-forward, weekly refits), stored with the
//! data fingerprint it was computed on so it is recomputed only when the data changes.

use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ModelError, ModelService};
use crate::csvdata::{Bookmaker, Odds1x2, OddsKind};
use crate::db::fits;
use crate::db::{Db, now_unix};
use crate::dixon_coles::{self, EvaluationTarget, MatchResult, RefitSchedule};
use crate::metrics::Metrics;
use crate::views::{rfc3339, utc};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
pub struct Scores {
    pub count: usize,
    pub accuracy: f64,
    /// Ranked probability score (lower is better).
    pub rps: f64,
    pub log_loss: f64,
    pub brier: f64,
}

impl From<dixon_coles::Metrics> for Scores {
    fn from(m: dixon_coles::Metrics) -> Self {
        Self {
            count: m.count,
            accuracy: m.accuracy,
            rps: m.rps,
            log_loss: m.log_loss,
            brier: m.brier,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
pub struct ClosingOddsComparison {
    /// The bookmakers' closing odds with the margin removed proportionally.
    pub closing_odds: Scores,
    /// The model on the same matches.
    pub model: Scores,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EvaluationReport {
    pub model: String,
    pub league: String,
    pub season: String,
    /// Each finished match is forecast by a fit on matches strictly before the start of its
    /// ISO week (UTC): `weekly`.
    pub refit: String,
    pub refits: usize,
    /// Matches that could not be forecast (too little earlier data).
    pub skipped: usize,
    pub metrics: Option<Scores>,
    /// The constant (0.45, 0.25, 0.30) forecast on the same matches.
    pub constant_reference: Option<Scores>,
    pub closing_odds: Option<ClosingOddsComparison>,
    pub computed_at: String,
}

fn closing_quotes(rows: &[(i64, String, f64, f64, f64)], match_id: i64) -> Vec<Odds1x2> {
    rows.iter()
        .filter(|r| r.0 == match_id)
        .filter_map(|(_, code, home, draw, away)| {
            Some(Odds1x2 {
                bookmaker: Bookmaker::from_code(code)?,
                kind: OddsKind::Closing,
                home: *home,
                draw: *draw,
                away: *away,
            })
        })
        .collect()
}

/// The stored report for (league, season) when current, else computes and stores it.
pub async fn season_report(
    service: &ModelService,
    db: &Db,
    metrics: &Metrics,
    league_id: i64,
    league: &str,
    season_id: i64,
    season: &str,
) -> Result<EvaluationReport, ModelError> {
    let stamp = fits::data_stamp(db, league_id).await?;
    if let Some(text) =
        fits::evaluation(db, league_id, season_id, dixon_coles::MODEL_NAME, &stamp).await?
        && let Ok(report) = serde_json::from_str::<EvaluationReport>(&text)
    {
        return Ok(report);
    }
    let targets_rows = fits::season_results(db, league_id, season_id).await?;
    let Some(first) = targets_rows.first().map(|r| r.5) else {
        return Err(ModelError::Fit(dixon_coles::FitError::NotEnoughMatches {
            found: 0,
            required: 1,
        }));
    };
    #[allow(clippy::cast_possible_truncation)]
    let since =
        first - Duration::days(service.config().max_history_days.ceil() as i64 + 7).num_seconds();
    let to_result = |&(home, away, hg, ag, kickoff): &(i64, i64, i32, i32, i64)| MatchResult {
        home: home.to_string(),
        away: away.to_string(),
        kickoff: utc(kickoff),
        home_goals: u8::try_from(hg.clamp(0, 255)).unwrap_or(u8::MAX),
        away_goals: u8::try_from(ag.clamp(0, 255)).unwrap_or(u8::MAX),
    };
    let history: Vec<MatchResult> = fits::finished_results(db, league_id, since)
        .await?
        .iter()
        .map(to_result)
        .collect();
    let odds = fits::season_closing_odds(db, league_id, season_id).await?;
    let targets: Vec<EvaluationTarget> = targets_rows
        .iter()
        .map(|&(id, home, away, hg, ag, kickoff)| EvaluationTarget {
            result: to_result(&(home, away, hg, ag, kickoff)),
            closing_odds: dixon_coles::preferred_closing_odds(&closing_quotes(&odds, id)),
        })
        .collect();
    let config = service.config().clone();
    let code = league.to_string();
    let evaluation = tokio::task::spawn_blocking(move || {
        dixon_coles::walk_forward(&code, &history, &targets, &config, RefitSchedule::Weekly)
    })
    .await
    .map_err(|e| ModelError::Task(e.to_string()))?
    .map_err(|dixon_coles::EvaluationError::Fit(e)| ModelError::Fit(e))?;
    let report = EvaluationReport {
        model: evaluation.model,
        league: league.to_string(),
        season: season.to_string(),
        refit: "weekly".to_string(),
        refits: evaluation.refits,
        skipped: evaluation.skipped,
        metrics: evaluation.metrics.map(Scores::from),
        constant_reference: evaluation.constant_reference.map(Scores::from),
        closing_odds: evaluation.closing_odds.map(|c| ClosingOddsComparison {
            closing_odds: c.closing_odds.into(),
            model: c.model.into(),
        }),
        computed_at: rfc3339(now_unix()),
    };
    let text = serde_json::to_string(&report).map_err(|e| ModelError::Task(e.to_string()))?;
    fits::store_evaluation(
        db,
        league_id,
        season_id,
        dixon_coles::MODEL_NAME,
        &stamp,
        &text,
    )
    .await?;
    publish(metrics, &report);
    Ok(report)
}

/// Sets `fp_model_evaluation{league, metric}` from a report.
pub fn publish(metrics: &Metrics, report: &EvaluationReport) {
    let Some(scores) = report.metrics else {
        return;
    };
    #[allow(clippy::cast_precision_loss)]
    for (name, value) in [
        ("rps", scores.rps),
        ("log_loss", scores.log_loss),
        ("brier", scores.brier),
        ("accuracy", scores.accuracy),
        ("count", scores.count as f64),
    ] {
        metrics
            .model_evaluation
            .with_label_values(&[report.league.as_str(), name])
            .set(value);
    }
    // The alert "worse than the constant forecast" compares these two on the same matches.
    if let Some(constant) = report.constant_reference {
        metrics
            .model_evaluation
            .with_label_values(&[report.league.as_str(), "rps_constant"])
            .set(constant.rps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(rps: f64) -> Scores {
        Scores {
            count: 380,
            accuracy: 0.5,
            rps,
            log_loss: 0.98,
            brier: 0.58,
        }
    }

    #[test]
    fn publishes_the_model_beside_the_constant_forecast() {
        let metrics = Metrics::new("1.0.0").unwrap();
        let report = EvaluationReport {
            model: "dixon-coles".into(),
            league: "E0".into(),
            season: "2024-2025".into(),
            refit: "weekly".into(),
            refits: 38,
            skipped: 0,
            metrics: Some(scores(0.1966)),
            constant_reference: Some(scores(0.2254)),
            closing_odds: None,
            computed_at: "2026-12-03T00:00:00Z".into(),
        };
        publish(&metrics, &report);
        let text = metrics.render(None);
        assert!(text.contains(r#"fp_model_evaluation{league="E0",metric="rps"} 0.1966"#));
        assert!(
            text.contains(r#"fp_model_evaluation{league="E0",metric="rps_constant"} 0.2254"#),
            "{text}"
        );
    }
}
