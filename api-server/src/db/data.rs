//! Reads of football data: leagues, teams, matches (filtered, keyset-paginated), odds.

use super::binds::{Bind, bind_all};
use super::{Db, DbResult, with_db};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LeagueRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub country: String,
    pub matches: i64,
    pub teams: i64,
}

pub async fn leagues(db: &Db) -> DbResult<Vec<LeagueRow>> {
    let rows = with_db!(db, pool => {
        sqlx::query_as(
            "SELECT l.id, l.code, l.name, l.country, \
                    (SELECT COUNT(*) FROM matches m WHERE m.league_id = l.id) AS matches, \
                    (SELECT COUNT(*) FROM teams t WHERE t.league_id = l.id) AS teams \
             FROM leagues l ORDER BY l.code",
        )
        .fetch_all(pool)
        .await?
    });
    Ok(rows)
}

/// `(league id, season name)` ordered by league and start year.
pub async fn seasons(db: &Db) -> DbResult<Vec<(i64, String)>> {
    let rows = with_db!(db, pool => {
        sqlx::query_as("SELECT league_id, name FROM seasons ORDER BY league_id, start_year")
            .fetch_all(pool)
            .await?
    });
    Ok(rows)
}

pub async fn league_id_by_code(db: &Db, code: &str) -> DbResult<Option<i64>> {
    let id = with_db!(db, pool => {
        sqlx::query_scalar("SELECT id FROM leagues WHERE code = $1").bind(code).fetch_optional(pool).await?
    });
    Ok(id)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TeamRow {
    pub id: i64,
    pub league_id: i64,
    pub league: String,
    pub name: String,
}

const TEAM_SELECT: &str = "SELECT t.id, t.league_id, l.code AS league, t.name FROM teams t JOIN leagues l ON l.id = t.league_id";

pub async fn teams(db: &Db, league_id: Option<i64>) -> DbResult<Vec<TeamRow>> {
    let rows = with_db!(db, pool => {
        match league_id {
            Some(id) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{TEAM_SELECT} WHERE t.league_id = $1 ORDER BY t.normalized_name"
            )))
            .bind(id)
            .fetch_all(pool)
            .await?,
            None => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{TEAM_SELECT} ORDER BY l.code, t.normalized_name"
            )))
            .fetch_all(pool)
            .await?,
        }
    });
    Ok(rows)
}

pub async fn team(db: &Db, id: i64) -> DbResult<Option<TeamRow>> {
    let row = with_db!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{TEAM_SELECT} WHERE t.id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await?
    });
    Ok(row)
}

/// A finished match from one team's point of view is computed from these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ResultRow {
    pub home_team_id: i64,
    pub away_team_id: i64,
    pub home_goals: i32,
    pub away_goals: i32,
    pub kickoff_at: i64,
}

/// A team's finished matches, oldest first, optionally in one season (by name).
pub async fn team_results(db: &Db, team_id: i64, season: Option<&str>) -> DbResult<Vec<ResultRow>> {
    let mut sql = String::from(
        "SELECT home_team_id, away_team_id, home_goals, away_goals, kickoff_at FROM matches \
         WHERE (home_team_id = $1 OR away_team_id = $1) AND status = 'finished'",
    );
    let mut binds = vec![Bind::I64(team_id)];
    if let Some(season) = season {
        sql.push_str(" AND season_id IN (SELECT id FROM seasons WHERE name = $2)");
        binds.push(Bind::Text(season.to_string()));
    }
    sql.push_str(" ORDER BY kickoff_at, id");
    let rows = with_db!(db, pool => {
        bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), binds).fetch_all(pool).await?
    });
    Ok(rows)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MatchRow {
    pub id: i64,
    pub league_id: i64,
    pub league: String,
    pub season_id: i64,
    pub season: String,
    pub kickoff_at: i64,
    pub kickoff_time_known: bool,
    pub status: String,
    pub home_team_id: i64,
    pub home_team: String,
    pub away_team_id: i64,
    pub away_team: String,
    pub home_goals: Option<i32>,
    pub away_goals: Option<i32>,
    pub half_time_home_goals: Option<i32>,
    pub half_time_away_goals: Option<i32>,
    pub referee: Option<String>,
    pub attendance: Option<i32>,
    pub home_shots: Option<i32>,
    pub away_shots: Option<i32>,
    pub home_shots_on_target: Option<i32>,
    pub away_shots_on_target: Option<i32>,
    pub home_fouls: Option<i32>,
    pub away_fouls: Option<i32>,
    pub home_corners: Option<i32>,
    pub away_corners: Option<i32>,
    pub home_yellow_cards: Option<i32>,
    pub away_yellow_cards: Option<i32>,
    pub home_red_cards: Option<i32>,
    pub away_red_cards: Option<i32>,
}

pub const MATCH_SELECT: &str = "SELECT m.id, m.league_id, l.code AS league, m.season_id, s.name AS season, \
    m.kickoff_at, m.kickoff_time_known, m.status, m.home_team_id, hm.name AS home_team, \
    m.away_team_id, aw.name AS away_team, m.home_goals, m.away_goals, m.half_time_home_goals, \
    m.half_time_away_goals, m.referee, m.attendance, m.home_shots, m.away_shots, \
    m.home_shots_on_target, m.away_shots_on_target, m.home_fouls, m.away_fouls, m.home_corners, \
    m.away_corners, m.home_yellow_cards, m.away_yellow_cards, m.home_red_cards, m.away_red_cards \
    FROM matches m JOIN leagues l ON l.id = m.league_id JOIN seasons s ON s.id = m.season_id \
    JOIN teams hm ON hm.id = m.home_team_id JOIN teams aw ON aw.id = m.away_team_id";

pub async fn match_by_id(db: &Db, id: i64) -> DbResult<Option<MatchRow>> {
    let row = with_db!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{MATCH_SELECT} WHERE m.id = $1")))
            .bind(id)
            .fetch_optional(pool)
            .await?
    });
    Ok(row)
}

/// Several matches by id (for prediction batches), in no particular order.
pub async fn matches_by_ids(db: &Db, ids: &[i64]) -> DbResult<Vec<MatchRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = (1..=ids.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("{MATCH_SELECT} WHERE m.id IN ({list})");
    let rows = with_db!(db, pool => {
        bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), ids.iter().map(|id| Bind::I64(*id)))
            .fetch_all(pool)
            .await?
    });
    Ok(rows)
}

/// The filters of `GET /api/v1/matches`, already validated.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MatchFilter {
    pub league_id: Option<i64>,
    pub season: Option<String>,
    pub team_id: Option<i64>,
    pub status: Option<&'static str>,
    /// Kick-off at or after (Unix seconds).
    pub from: Option<i64>,
    /// Kick-off before (Unix seconds).
    pub to: Option<i64>,
    /// Keyset cursor: rows strictly after this (kickoff, id).
    pub after: Option<(i64, i64)>,
    pub limit: i64,
}

/// The list query for `filter` (pure): every filter adds an indexed predicate, rows come in
/// (kickoff, id) order, and `limit + 1` rows are fetched to know whether a next page exists.
pub fn match_list_query(filter: &MatchFilter) -> (String, Vec<Bind>) {
    let mut conditions: Vec<String> = Vec::new();
    let mut binds: Vec<Bind> = Vec::new();
    let next = |binds: &mut Vec<Bind>, value: Bind| {
        binds.push(value);
        format!("${}", binds.len())
    };
    if let Some(id) = filter.league_id {
        let p = next(&mut binds, Bind::I64(id));
        conditions.push(format!("m.league_id = {p}"));
    }
    match (&filter.season, filter.league_id) {
        // One league's season is one id: an equality the (league, season, kickoff) index serves
        // in kick-off order.
        (Some(season), Some(league)) => {
            let l = next(&mut binds, Bind::I64(league));
            let p = next(&mut binds, Bind::Text(season.clone()));
            conditions.push(format!(
                "m.season_id = (SELECT id FROM seasons WHERE league_id = {l} AND name = {p})"
            ));
        }
        (Some(season), None) => {
            let p = next(&mut binds, Bind::Text(season.clone()));
            conditions.push(format!(
                "m.season_id IN (SELECT id FROM seasons WHERE name = {p})"
            ));
        }
        (None, _) => {}
    }
    if let Some(team) = filter.team_id {
        let p = next(&mut binds, Bind::I64(team));
        conditions.push(format!("(m.home_team_id = {p} OR m.away_team_id = {p})"));
    }
    if let Some(status) = filter.status {
        let p = next(&mut binds, Bind::Str(status));
        conditions.push(format!("m.status = {p}"));
    }
    if let Some(from) = filter.from {
        let p = next(&mut binds, Bind::I64(from));
        conditions.push(format!("m.kickoff_at >= {p}"));
    }
    if let Some(to) = filter.to {
        let p = next(&mut binds, Bind::I64(to));
        conditions.push(format!("m.kickoff_at < {p}"));
    }
    if let Some((kickoff, id)) = filter.after {
        let k = next(&mut binds, Bind::I64(kickoff));
        let i = next(&mut binds, Bind::I64(id));
        conditions.push(format!(
            "(m.kickoff_at > {k} OR (m.kickoff_at = {k} AND m.id > {i}))"
        ));
    }
    let mut sql = String::from(MATCH_SELECT);
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    let p = next(&mut binds, Bind::I64(filter.limit + 1));
    sql.push_str(&format!(" ORDER BY m.kickoff_at, m.id LIMIT {p}"));
    (sql, binds)
}

pub async fn list_matches(db: &Db, filter: &MatchFilter) -> DbResult<Vec<MatchRow>> {
    let (sql, binds) = match_list_query(filter);
    let rows = with_db!(db, pool => {
        bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), binds).fetch_all(pool).await?
    });
    Ok(rows)
}

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct OddsRow {
    pub bookmaker: String,
    pub kind: String,
    pub home: f64,
    pub draw: f64,
    pub away: f64,
}

#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct OverUnderRow {
    pub bookmaker: String,
    pub kind: String,
    pub over_price: f64,
    pub under_price: f64,
}

pub async fn odds(db: &Db, match_id: i64) -> DbResult<(Vec<OddsRow>, Vec<OverUnderRow>)> {
    let result = with_db!(db, pool => {
        let one_x_two: Vec<OddsRow> = sqlx::query_as(
            "SELECT bookmaker, kind, home, draw, away FROM odds_1x2 WHERE match_id = $1 ORDER BY kind, bookmaker",
        )
        .bind(match_id)
        .fetch_all(pool)
        .await?;
        let totals: Vec<OverUnderRow> = sqlx::query_as(
            "SELECT bookmaker, kind, over_price, under_price FROM odds_over_under_25 \
             WHERE match_id = $1 ORDER BY kind, bookmaker",
        )
        .bind(match_id)
        .fetch_all(pool)
        .await?;
        (one_x_two, totals)
    });
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_numbers_parameters_and_orders_for_keyset_paging() {
        let (sql, binds) = match_list_query(&MatchFilter {
            league_id: Some(1),
            team_id: Some(7),
            after: Some((100, 5)),
            limit: 20,
            ..MatchFilter::default()
        });
        assert!(sql.contains("m.league_id = $1"), "{sql}");
        assert!(
            sql.contains("(m.home_team_id = $2 OR m.away_team_id = $2)"),
            "{sql}"
        );
        assert!(
            sql.contains("(m.kickoff_at > $3 OR (m.kickoff_at = $3 AND m.id > $4))"),
            "{sql}"
        );
        assert!(
            sql.ends_with("ORDER BY m.kickoff_at, m.id LIMIT $5"),
            "{sql}"
        );
        assert_eq!(binds.len(), 5);
        assert_eq!(binds[4], Bind::I64(21));
        let (sql, binds) = match_list_query(&MatchFilter {
            limit: 10,
            ..MatchFilter::default()
        });
        assert!(!sql.contains("WHERE"));
        assert_eq!(binds, vec![Bind::I64(11)]);
    }
}
