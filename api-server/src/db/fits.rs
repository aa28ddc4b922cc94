//! Fitted model parameters (with their version), the predictions each fit made, evaluations.

use super::binds::{Bind, bind_all, chunk_rows, values_list};
use super::{Db, DbResult, now_unix, version, with_db};

/// `(home team id, away team id, home goals, away goals, kickoff)` of a finished match.
pub type ResultTuple = (i64, i64, i32, i32, i64);

/// Finished matches of a league that kicked off at or after `since`.
pub async fn finished_results(db: &Db, league_id: i64, since: i64) -> DbResult<Vec<ResultTuple>> {
    let rows = with_db!(db, pool => {
        sqlx::query_as(
            "SELECT home_team_id, away_team_id, home_goals, away_goals, kickoff_at FROM matches \
             WHERE league_id = $1 AND status = 'finished' AND kickoff_at >= $2 ORDER BY kickoff_at, id",
        )
        .bind(league_id)
        .bind(since)
        .fetch_all(pool)
        .await?
    });
    Ok(rows)
}

/// A fingerprint of everything stored about a league's matches: changes with any import.
pub async fn data_stamp(db: &Db, league_id: i64) -> DbResult<String> {
    let (count, updated, max_id, finished): (i64, Option<i64>, Option<i64>, i64) = with_db!(db, pool => {
        sqlx::query_as(
            "SELECT COUNT(*), MAX(updated_at), MAX(id), \
                    COALESCE(SUM(CASE WHEN status = 'finished' THEN 1 ELSE 0 END), 0) \
             FROM matches WHERE league_id = $1",
        )
        .bind(league_id)
        .fetch_one(pool)
        .await?
    });
    Ok(format!(
        "{count}:{finished}:{}:{}",
        updated.unwrap_or(0),
        max_id.unwrap_or(0)
    ))
}

/// Leagues with at least `min_finished` finished matches: `(id, code)`.
pub async fn leagues_with_results(db: &Db, min_finished: i64) -> DbResult<Vec<(i64, String)>> {
    let rows = with_db!(db, pool => {
        sqlx::query_as(
            "SELECT l.id, l.code FROM leagues l \
             WHERE (SELECT COUNT(*) FROM matches m WHERE m.league_id = l.id AND m.status = 'finished') >= $1 \
             ORDER BY l.code",
        )
        .bind(min_finished)
        .fetch_all(pool)
        .await?
    });
    Ok(rows)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FitRow {
    pub id: i64,
    pub league_id: i64,
    pub league: String,
    pub model: String,
    pub version: String,
    pub fitted_at: i64,
    pub matches_used: i32,
    pub data_stamp: String,
    pub params: String,
}

/// The newest fit of `model` for every league.
pub async fn current_fits(db: &Db, model: &str) -> DbResult<Vec<FitRow>> {
    let rows = with_db!(db, pool => {
        sqlx::query_as(
            "SELECT f.id, f.league_id, l.code AS league, f.model, f.version, f.fitted_at, f.matches_used, \
                    f.data_stamp, f.params \
             FROM model_fits f JOIN leagues l ON l.id = f.league_id \
             WHERE f.model = $1 AND f.id = (SELECT f2.id FROM model_fits f2 \
                 WHERE f2.league_id = f.league_id AND f2.model = f.model \
                 ORDER BY f2.fitted_at DESC, f2.id DESC LIMIT 1) \
             ORDER BY l.code",
        )
        .bind(model)
        .fetch_all(pool)
        .await?
    });
    Ok(rows)
}

/// Scheduled matches of a league, with what a prediction response shows about them.
pub async fn scheduled_matches(db: &Db, league_id: i64) -> DbResult<Vec<super::data::MatchRow>> {
    let sql = format!(
        "{} WHERE m.league_id = $1 AND m.status = 'scheduled' ORDER BY m.kickoff_at, m.id",
        super::data::MATCH_SELECT
    );
    let rows = with_db!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(league_id).fetch_all(pool).await?
    });
    Ok(rows)
}

/// One prediction a fit makes for a scheduled match, ready to store.
#[derive(Clone, Debug)]
pub struct StoredPrediction {
    pub match_id: i64,
    pub home_win: f64,
    pub draw: f64,
    pub away_win: f64,
    pub expected_home_goals: f64,
    pub expected_away_goals: f64,
    pub body: String,
}

/// A new fit to store: the parameters and the predictions it makes.
pub struct NewFit<'a> {
    pub league_id: i64,
    pub model: &'a str,
    pub version: &'a str,
    pub matches_used: i32,
    pub data_stamp: &'a str,
    pub params: &'a str,
    pub predictions: &'a [StoredPrediction],
}

/// Stores a fit (an identical version is refreshed, not duplicated) with its predictions and
/// bumps the data version so every replica loads it. Returns the fit time.
pub async fn store_fit(db: &Db, fit: &NewFit<'_>) -> DbResult<i64> {
    let now = now_unix();
    with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        sqlx::query(
            "INSERT INTO model_fits (league_id, model, version, fitted_at, matches_used, data_stamp, params) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (league_id, model, version) DO UPDATE SET fitted_at = excluded.fitted_at, \
                 data_stamp = excluded.data_stamp",
        )
        .bind(fit.league_id)
        .bind(fit.model)
        .bind(fit.version)
        .bind(now)
        .bind(fit.matches_used)
        .bind(fit.data_stamp)
        .bind(fit.params)
        .execute(&mut *tx)
        .await?;
        for chunk in fit.predictions.chunks(chunk_rows(10)) {
            let sql = format!(
                "INSERT INTO predictions (match_id, model, model_version, home_win, draw, away_win, \
                 expected_home_goals, expected_away_goals, body, generated_at) VALUES {} \
                 ON CONFLICT (match_id, model, model_version) DO UPDATE SET body = excluded.body, \
                 generated_at = excluded.generated_at",
                values_list(chunk.len(), 10, 1)
            );
            let binds = chunk.iter().flat_map(|p| {
                [
                    Bind::I64(p.match_id),
                    Bind::Text(fit.model.to_string()),
                    Bind::Text(fit.version.to_string()),
                    Bind::F64(p.home_win),
                    Bind::F64(p.draw),
                    Bind::F64(p.away_win),
                    Bind::F64(p.expected_home_goals),
                    Bind::F64(p.expected_away_goals),
                    Bind::Text(p.body.clone()),
                    Bind::I64(now),
                ]
            });
            bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql)), binds).execute(&mut *tx).await?;
        }
        sqlx::query(version::BUMP_SQL).bind(now).fetch_one(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(now)
}

/// The prediction a fit stored for a match (the hot path's miss reads this by primary key).
pub async fn stored_prediction(
    db: &Db,
    match_id: i64,
    model: &str,
    model_version: &str,
) -> DbResult<Option<String>> {
    let body = with_db!(db, pool => {
        sqlx::query_scalar(
            "SELECT body FROM predictions WHERE match_id = $1 AND model = $2 AND model_version = $3",
        )
        .bind(match_id)
        .bind(model)
        .bind(model_version)
        .fetch_optional(pool)
        .await?
    });
    Ok(body)
}

/// A stored evaluation report, if it was computed on the same data.
pub async fn evaluation(
    db: &Db,
    league_id: i64,
    season_id: i64,
    model: &str,
    stamp: &str,
) -> DbResult<Option<String>> {
    let report = with_db!(db, pool => {
        sqlx::query_scalar(
            "SELECT report FROM model_evaluations \
             WHERE league_id = $1 AND season_id = $2 AND model = $3 AND data_stamp = $4",
        )
        .bind(league_id)
        .bind(season_id)
        .bind(model)
        .bind(stamp)
        .fetch_optional(pool)
        .await?
    });
    Ok(report)
}

pub async fn store_evaluation(
    db: &Db,
    league_id: i64,
    season_id: i64,
    model: &str,
    stamp: &str,
    report: &str,
) -> DbResult<()> {
    let now = now_unix();
    with_db!(db, pool => {
        sqlx::query(
            "INSERT INTO model_evaluations (league_id, season_id, model, data_stamp, report, computed_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (league_id, season_id, model) DO UPDATE SET data_stamp = excluded.data_stamp, \
                 report = excluded.report, computed_at = excluded.computed_at",
        )
        .bind(league_id)
        .bind(season_id)
        .bind(model)
        .bind(stamp)
        .bind(report)
        .bind(now)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// The newest stored evaluation per league: `(league code, report)`.
pub async fn latest_evaluations(db: &Db, model: &str) -> DbResult<Vec<(String, String)>> {
    let rows = with_db!(db, pool => {
        sqlx::query_as(
            "SELECT l.code, e.report FROM model_evaluations e JOIN leagues l ON l.id = e.league_id \
             JOIN seasons s ON s.id = e.season_id \
             WHERE e.model = $1 AND s.start_year = (SELECT MAX(s2.start_year) FROM model_evaluations e2 \
                 JOIN seasons s2 ON s2.id = e2.season_id WHERE e2.league_id = e.league_id AND e2.model = e.model)",
        )
        .bind(model)
        .fetch_all(pool)
        .await?
    });
    Ok(rows)
}

/// `(season id, closing odds rows)` helpers for the evaluation: finished matches of one season
/// with their 1X2 quotes. Returns `(match id, home, away, hg, ag, kickoff)`.
pub async fn season_results(
    db: &Db,
    league_id: i64,
    season_id: i64,
) -> DbResult<Vec<(i64, i64, i64, i32, i32, i64)>> {
    let rows = with_db!(db, pool => {
        sqlx::query_as(
            "SELECT id, home_team_id, away_team_id, home_goals, away_goals, kickoff_at FROM matches \
             WHERE league_id = $1 AND season_id = $2 AND status = 'finished' ORDER BY kickoff_at, id",
        )
        .bind(league_id)
        .bind(season_id)
        .fetch_all(pool)
        .await?
    });
    Ok(rows)
}

/// Closing 1X2 quotes of a season's matches: `(match id, bookmaker, home, draw, away)`.
pub async fn season_closing_odds(
    db: &Db,
    league_id: i64,
    season_id: i64,
) -> DbResult<Vec<(i64, String, f64, f64, f64)>> {
    let rows = with_db!(db, pool => {
        sqlx::query_as(
            "SELECT o.match_id, o.bookmaker, o.home, o.draw, o.away FROM odds_1x2 o \
             JOIN matches m ON m.id = o.match_id \
             WHERE m.league_id = $1 AND m.season_id = $2 AND o.kind = 'closing'",
        )
        .bind(league_id)
        .bind(season_id)
        .fetch_all(pool)
        .await?
    });
    Ok(rows)
}

/// `(season id, name)` of a league's season by name.
pub async fn season_id(db: &Db, league_id: i64, name: &str) -> DbResult<Option<i64>> {
    let id = with_db!(db, pool => {
        sqlx::query_scalar("SELECT id FROM seasons WHERE league_id = $1 AND name = $2")
            .bind(league_id)
            .bind(name)
            .fetch_optional(pool)
            .await?
    });
    Ok(id)
}
