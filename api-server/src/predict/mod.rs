//! Serving the Dixon-Coles model: fitted parameters loaded from the database (every replica
//! serves the newest stored fit of each league), refits after imports and on request, and the
//! forecast for any match.

pub mod evaluate;
pub mod view;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::Duration;

use crate::db::data::MatchRow;
use crate::db::fits::{self, NewFit, StoredPrediction};
use crate::db::{Db, DbError};
use crate::dixon_coles::{self, FitConfig, FitError, FittedModel, MatchResult, Prediction};
use crate::metrics::Metrics;
use crate::views::utc;
pub use view::PredictionView;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("fit failed: {0}")]
    Fit(#[from] FitError),
    #[error("stored parameters of {league} do not load: {message}")]
    Stored { league: String, message: String },
    #[error("model task failed: {0}")]
    Task(String),
}

/// One league's served model.
#[derive(Debug)]
pub struct LeagueModel {
    pub league_id: i64,
    pub league: String,
    pub fitted_at: i64,
    pub matches_used: i32,
    pub data_stamp: String,
    pub fitted: FittedModel,
}

impl LeagueModel {
    pub fn predict(&self, home_team_id: i64, away_team_id: i64) -> Prediction {
        self.fitted
            .predict(&home_team_id.to_string(), &away_team_id.to_string())
    }

    pub fn view(&self, m: &MatchRow) -> PredictionView {
        PredictionView::new(
            m,
            &self.predict(m.home_team_id, m.away_team_id),
            self.fitted_at,
        )
    }

    /// The view from the forecast this fit stored for the match, when it stored one.
    pub fn view_of_stored(&self, m: &MatchRow, body: &str) -> Option<PredictionView> {
        let p: Prediction = serde_json::from_str(body).ok()?;
        (p.model_version == self.fitted.version).then(|| PredictionView::new(m, &p, self.fitted_at))
    }
}

/// What a refit did, for responses and logs.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FitOutcome {
    pub league: String,
    pub model_version: String,
    pub matches_used: usize,
    pub teams: usize,
    pub predictions_stored: usize,
    /// RFC 3339 time of the fit.
    pub fitted_at: String,
    pub converged: bool,
}

pub struct ModelService {
    config: FitConfig,
    loaded: ArcSwap<HashMap<i64, Arc<LeagueModel>>>,
    /// Leagues that have enough results to need a model: `(id, code)`.
    expected: ArcSwap<Vec<(i64, String)>>,
    /// One fit at a time per process: fits are CPU-bound and run on a blocking thread.
    fit_lock: tokio::sync::Mutex<()>,
}

/// Pure rule of [`ModelService::readiness_gap`].
pub fn readiness_gap(expected: &[(i64, String)], loaded: usize) -> Option<String> {
    if expected.is_empty() || loaded > 0 {
        return None;
    }
    let codes: Vec<&str> = expected.iter().map(|(_, code)| code.as_str()).collect();
    Some(format!(
        "no fitted model yet (leagues with results: {})",
        codes.join(", ")
    ))
}

impl Default for ModelService {
    fn default() -> Self {
        Self::new(FitConfig::default())
    }
}

impl ModelService {
    pub fn new(config: FitConfig) -> Self {
        Self {
            config,
            loaded: ArcSwap::from_pointee(HashMap::new()),
            expected: ArcSwap::from_pointee(Vec::new()),
            fit_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn config(&self) -> &FitConfig {
        &self.config
    }

    pub fn get(&self, league_id: i64) -> Option<Arc<LeagueModel>> {
        self.loaded.load().get(&league_id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<LeagueModel>> {
        let mut v: Vec<Arc<LeagueModel>> = self.loaded.load().values().cloned().collect();
        v.sort_by(|a, b| a.league.cmp(&b.league));
        v
    }

    /// `None` when the replica can serve predictions; else why not. Start-up fits every league
    /// before serving, so this only bites when no model is loaded although leagues have results.
    /// A league that gains results later (an import on another replica, its fit still running)
    /// must not take every replica out of rotation: it is served once its fit lands.
    pub fn readiness_gap(&self) -> Option<String> {
        readiness_gap(&self.expected.load(), self.loaded.load().len())
    }

    /// Loads the newest stored fit of every league (after a data-version change or at start).
    pub async fn reload(&self, db: &Db, metrics: &Metrics) -> Result<(), ModelError> {
        let expected = fits::leagues_with_results(db, self.min_matches()).await?;
        let rows = fits::current_fits(db, dixon_coles::MODEL_NAME).await?;
        let current = self.loaded.load();
        let mut next = HashMap::with_capacity(rows.len());
        for row in rows {
            if let Some(existing) = current.get(&row.league_id)
                && existing.fitted.version == row.version
                && existing.fitted_at == row.fitted_at
            {
                next.insert(row.league_id, existing.clone());
                continue;
            }
            let fitted: FittedModel =
                serde_json::from_str(&row.params).map_err(|e| ModelError::Stored {
                    league: row.league.clone(),
                    message: e.to_string(),
                })?;
            #[allow(clippy::cast_precision_loss)]
            metrics
                .model_fit_timestamp
                .with_label_values(&[row.league.as_str()])
                .set(row.fitted_at as f64);
            next.insert(
                row.league_id,
                Arc::new(LeagueModel {
                    league_id: row.league_id,
                    league: row.league,
                    fitted_at: row.fitted_at,
                    matches_used: row.matches_used,
                    data_stamp: row.data_stamp,
                    fitted,
                }),
            );
        }
        self.loaded.store(Arc::new(next));
        self.expected.store(Arc::new(expected));
        Ok(())
    }

    fn min_matches(&self) -> i64 {
        i64::try_from(self.config.min_matches.max(1)).unwrap_or(i64::MAX)
    }

    /// Refits the leagues whose stored fit is missing or saw different data; returns what it did.
    pub async fn ensure_fitted(
        &self,
        db: &Db,
        metrics: &Metrics,
    ) -> Result<Vec<FitOutcome>, ModelError> {
        self.reload(db, metrics).await?;
        let mut outcomes = Vec::new();
        for (league_id, code) in fits::leagues_with_results(db, self.min_matches()).await? {
            let stamp = fits::data_stamp(db, league_id).await?;
            let fresh = self.get(league_id).is_some_and(|m| m.data_stamp == stamp);
            if !fresh {
                outcomes.push(self.refit_league(db, metrics, league_id, &code).await?);
            }
        }
        Ok(outcomes)
    }

    /// Fits one league on its finished matches, stores the fit and its predictions for the
    /// scheduled matches, and serves it.
    pub async fn refit_league(
        &self,
        db: &Db,
        metrics: &Metrics,
        league_id: i64,
        code: &str,
    ) -> Result<FitOutcome, ModelError> {
        let _guard = self.fit_lock.lock().await;
        let stamp = fits::data_stamp(db, league_id).await?;
        // Everything in the history window of the newest result; older matches would weigh
        // next to nothing.
        let latest = fits::finished_results(db, league_id, i64::MIN).await?;
        let Some(last_kickoff) = latest.last().map(|r| r.4) else {
            return Err(ModelError::Fit(FitError::NotEnoughMatches {
                found: 0,
                required: self.config.min_matches,
            }));
        };
        // Fit as of just after the newest result: deterministic for the same data, and the
        // decay weights relative to it are what a fit "now" would use.
        let as_of = utc(last_kickoff + 1);
        #[allow(clippy::cast_possible_truncation)]
        let window_start = as_of - Duration::days(self.config.max_history_days.ceil() as i64);
        let results: Vec<MatchResult> = latest
            .iter()
            .filter(|r| r.4 >= window_start.timestamp())
            .map(|&(home, away, hg, ag, kickoff)| MatchResult {
                home: home.to_string(),
                away: away.to_string(),
                kickoff: utc(kickoff),
                home_goals: u8::try_from(hg.clamp(0, 255)).unwrap_or(u8::MAX),
                away_goals: u8::try_from(ag.clamp(0, 255)).unwrap_or(u8::MAX),
            })
            .collect();
        let config = self.config.clone();
        let league = code.to_string();
        let fitted = tokio::task::spawn_blocking(move || {
            dixon_coles::fit(&league, &results, as_of, &config)
        })
        .await
        .map_err(|e| ModelError::Task(e.to_string()))??;

        let scheduled = fits::scheduled_matches(db, league_id).await?;
        let predictions: Vec<StoredPrediction> = scheduled
            .iter()
            .map(|m| {
                let p = fitted.predict(&m.home_team_id.to_string(), &m.away_team_id.to_string());
                // The forecast itself; responses add the match as it is when read.
                let body = serde_json::to_string(&p).unwrap_or_default();
                StoredPrediction {
                    match_id: m.id,
                    home_win: p.home_win,
                    draw: p.draw,
                    away_win: p.away_win,
                    expected_home_goals: p.expected_home_goals,
                    expected_away_goals: p.expected_away_goals,
                    body,
                }
            })
            .collect();
        let params = serde_json::to_string(&fitted).map_err(|e| ModelError::Task(e.to_string()))?;
        let matches_used = fitted.diagnostics.matches;
        let fitted_at = fits::store_fit(
            db,
            &NewFit {
                league_id,
                model: dixon_coles::MODEL_NAME,
                version: &fitted.version,
                matches_used: i32::try_from(matches_used).unwrap_or(i32::MAX),
                data_stamp: &stamp,
                params: &params,
                predictions: &predictions,
            },
        )
        .await?;
        let outcome = FitOutcome {
            league: code.to_string(),
            model_version: fitted.version.clone(),
            matches_used,
            teams: fitted.teams.len(),
            predictions_stored: predictions.len(),
            fitted_at: crate::views::rfc3339(fitted_at),
            converged: fitted.diagnostics.converged,
        };
        tracing::info!(league = code, version = %outcome.model_version, matches = matches_used, "model fitted");
        drop(_guard);
        self.reload(db, metrics).await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::readiness_gap;

    #[test]
    fn ready_once_any_model_serves() {
        assert_eq!(readiness_gap(&[], 0), None);
        let expected = vec![(1, "E0".to_string()), (2, "D1".to_string())];
        let gap = readiness_gap(&expected, 0).unwrap();
        assert!(gap.contains("E0") && gap.contains("D1"), "{gap}");
        assert_eq!(readiness_gap(&expected, 1), None);
    }
}
