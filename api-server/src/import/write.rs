//! Writes an [`ImportPlan`] in one transaction: league, season and teams upserted, matches
//! upserted on their natural key (season, home, away) so a second import updates instead of
//! duplicating, the odds of those matches replaced, the import recorded and audited, and the
//! data version bumped. Any failure rolls the whole file back.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::ImportPlan;
use crate::db::auth::{AUDIT_SQL, AuditEntry};
use crate::db::binds::{Bind, bind_all, chunk_rows, values_list};
use crate::db::{Db, DbError, DbResult, now_unix, version, with_db};

/// What an import did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ImportSummary {
    pub league: String,
    #[serde(skip)]
    pub league_id: i64,
    pub season: String,
    /// Match rows in the file (all written).
    pub matches: usize,
    /// Matches that did not exist before this import.
    pub created: i64,
    pub teams: usize,
    /// 1X2 and over/under quotes written.
    pub odds: usize,
    /// Unix seconds.
    pub imported_at: i64,
}

const MATCH_COLUMNS: &str = "league_id, season_id, home_team_id, away_team_id, kickoff_at, \
    kickoff_time_known, status, home_goals, away_goals, half_time_home_goals, half_time_away_goals, \
    referee, attendance, home_shots, away_shots, home_shots_on_target, away_shots_on_target, \
    home_fouls, away_fouls, home_corners, away_corners, home_yellow_cards, away_yellow_cards, \
    home_red_cards, away_red_cards, updated_at";
const MATCH_COLUMN_COUNT: usize = 26;

fn match_upsert_sql(rows: usize) -> String {
    let updates: Vec<String> = MATCH_COLUMNS
        .split(',')
        .map(str::trim)
        .filter(|c| {
            !matches!(
                *c,
                "league_id" | "season_id" | "home_team_id" | "away_team_id"
            )
        })
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO matches ({MATCH_COLUMNS}) VALUES {} \
         ON CONFLICT (season_id, home_team_id, away_team_id) DO UPDATE SET {} \
         RETURNING id, home_team_id, away_team_id",
        values_list(rows, MATCH_COLUMN_COUNT, 1),
        updates.join(", ")
    )
}

fn in_list(count: usize) -> String {
    (1..=count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn write(
    db: &Db,
    plan: &ImportPlan,
    source: &str,
    sha256: &str,
    actor: &AuditEntry,
) -> DbResult<ImportSummary> {
    let now = now_unix();
    let team_sql = format!(
        "INSERT INTO teams (league_id, name, normalized_name) VALUES {} \
         ON CONFLICT (league_id, normalized_name) DO UPDATE SET normalized_name = excluded.normalized_name \
         RETURNING id, normalized_name",
        values_list(plan.teams.len(), 3, 1)
    );
    let summary = with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        let league_id: i64 = sqlx::query_scalar(
            "INSERT INTO leagues (code, name, country, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, country = excluded.country RETURNING id",
        )
        .bind(&plan.league.code)
        .bind(&plan.league.name)
        .bind(&plan.league.country)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let season_id: i64 = sqlx::query_scalar(
            "INSERT INTO seasons (league_id, name, start_year) VALUES ($1, $2, $3) \
             ON CONFLICT (league_id, name) DO UPDATE SET start_year = excluded.start_year RETURNING id",
        )
        .bind(league_id)
        .bind(&plan.season.name)
        .bind(plan.season.start_year)
        .fetch_one(&mut *tx)
        .await?;

        let team_binds = plan.teams.iter().flat_map(|t| {
            [Bind::I64(league_id), Bind::Text(t.name.clone()), Bind::Text(t.key.clone())]
        });
        let team_rows: Vec<(i64, String)> =
            bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(team_sql.clone())), team_binds)
                .fetch_all(&mut *tx)
                .await?;
        let team_ids: HashMap<String, i64> = team_rows.into_iter().map(|(id, key)| (key, id)).collect();
        let team_id = |key: &str| {
            team_ids
                .get(key)
                .copied()
                .ok_or_else(|| DbError::Corrupt(format!("team {key:?} was not upserted")))
        };

        let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM matches WHERE season_id = $1")
            .bind(season_id)
            .fetch_one(&mut *tx)
            .await?;

        // Matches, in chunks; remember each one's id by (home, away).
        let mut match_ids: HashMap<(i64, i64), i64> = HashMap::with_capacity(plan.matches.len());
        for chunk in plan.matches.chunks(chunk_rows(MATCH_COLUMN_COUNT)) {
            let mut binds = Vec::with_capacity(chunk.len() * MATCH_COLUMN_COUNT);
            for m in chunk {
                binds.extend([
                    Bind::I64(league_id),
                    Bind::I64(season_id),
                    Bind::I64(team_id(&m.home_key)?),
                    Bind::I64(team_id(&m.away_key)?),
                    Bind::I64(m.kickoff_at),
                    Bind::Bool(m.kickoff_time_known),
                    Bind::Str(m.status),
                    Bind::OptI32(m.home_goals),
                    Bind::OptI32(m.away_goals),
                    Bind::OptI32(m.half_time_home_goals),
                    Bind::OptI32(m.half_time_away_goals),
                    Bind::OptText(m.referee.clone()),
                    Bind::OptI32(m.attendance),
                ]);
                binds.extend(m.stats.iter().map(|s| Bind::OptI32(*s)));
                binds.push(Bind::I64(now));
            }
            let rows: Vec<(i64, i64, i64)> =
                bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(match_upsert_sql(chunk.len()))), binds)
                    .fetch_all(&mut *tx)
                    .await?;
            for (id, home, away) in rows {
                match_ids.insert((home, away), id);
            }
        }
        let mut ids_in_file = Vec::with_capacity(plan.matches.len());
        for m in &plan.matches {
            let key = (team_id(&m.home_key)?, team_id(&m.away_key)?);
            let id = match_ids
                .get(&key)
                .copied()
                .ok_or_else(|| DbError::Corrupt(format!("match on line {} was not upserted", m.line)))?;
            ids_in_file.push((id, m));
        }

        // The file is the truth for its matches' odds: replace them.
        for chunk in ids_in_file.chunks(500) {
            for table in ["odds_1x2", "odds_over_under_25"] {
                let sql = format!("DELETE FROM {table} WHERE match_id IN ({})", in_list(chunk.len()));
                bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql)), chunk.iter().map(|(id, _)| Bind::I64(*id)))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let odds: Vec<Vec<Bind>> = ids_in_file
            .iter()
            .flat_map(|(id, m)| {
                m.odds.iter().map(move |o| {
                    vec![Bind::I64(*id), Bind::Str(o.bookmaker), Bind::Str(o.kind), Bind::F64(o.home), Bind::F64(o.draw), Bind::F64(o.away)]
                })
            })
            .collect();
        for chunk in odds.chunks(chunk_rows(6)) {
            let sql = format!(
                "INSERT INTO odds_1x2 (match_id, bookmaker, kind, home, draw, away) VALUES {}",
                values_list(chunk.len(), 6, 1)
            );
            bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql)), chunk.iter().flatten().cloned())
                .execute(&mut *tx)
                .await?;
        }
        let totals: Vec<Vec<Bind>> = ids_in_file
            .iter()
            .flat_map(|(id, m)| {
                m.over_under.iter().map(move |o| {
                    vec![Bind::I64(*id), Bind::Str(o.bookmaker), Bind::Str(o.kind), Bind::F64(o.over), Bind::F64(o.under)]
                })
            })
            .collect();
        for chunk in totals.chunks(chunk_rows(5)) {
            let sql = format!(
                "INSERT INTO odds_over_under_25 (match_id, bookmaker, kind, over_price, under_price) VALUES {}",
                values_list(chunk.len(), 5, 1)
            );
            bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql)), chunk.iter().flatten().cloned())
                .execute(&mut *tx)
                .await?;
        }

        let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM matches WHERE season_id = $1")
            .bind(season_id)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO imports (league_id, season_id, source, sha256, row_count, actor, imported_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(league_id)
        .bind(season_id)
        .bind(source)
        .bind(sha256)
        .bind(i64::try_from(plan.matches.len()).unwrap_or(i64::MAX))
        .bind(actor.actor.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(AUDIT_SQL)
            .bind(now)
            .bind(actor.actor_id)
            .bind(actor.actor.as_str())
            .bind(actor.action)
            .bind(actor.target.as_str())
            .bind(actor.details.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(version::BUMP_SQL).bind(now).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        ImportSummary {
            league: plan.league.code.clone(),
            league_id,
            season: plan.season.name.clone(),
            matches: plan.matches.len(),
            created: after - before,
            teams: plan.teams.len(),
            odds: plan.odds_rows(),
            imported_at: now,
        }
    });
    Ok(summary)
}

/// The last import time of each league, for `fp_last_import_timestamp_seconds`.
pub async fn last_import_times(db: &Db) -> DbResult<Vec<(String, i64)>> {
    let rows = with_db!(db, pool => {
        sqlx::query_as(
            "SELECT l.code, MAX(i.imported_at) FROM imports i JOIN leagues l ON l.id = i.league_id GROUP BY l.code",
        )
        .fetch_all(pool)
        .await?
    });
    Ok(rows)
}
