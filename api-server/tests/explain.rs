//! The hot queries' PostgreSQL plans use indexes. Sequential scans are disabled for the session
//! so the planner picks an index whenever one can serve the query; a query no index serves
//! still shows a `Seq Scan`, and the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestApp;
use fp_api_server::db::Db;
use fp_api_server::db::binds::Bind;
use fp_api_server::db::data::{MATCH_SELECT, MatchFilter, match_list_query};
use sqlx::Row;

async fn plan(pool: &sqlx::PgPool, sql: &str, binds: Vec<Bind>) -> String {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")));
    for b in binds {
        query = match b {
            Bind::I64(v) => query.bind(v),
            Bind::OptI32(v) => query.bind(v),
            Bind::F64(v) => query.bind(v),
            Bind::Bool(v) => query.bind(v),
            Bind::Text(v) => query.bind(v),
            Bind::OptText(v) => query.bind(v),
            Bind::Str(v) => query.bind(v),
        };
    }
    let rows = query.fetch_all(&mut *conn).await.unwrap();
    rows.iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_queries_use_indexes() {
    let Some(which) = common::postgres() else {
        return;
    };
    let app = TestApp::with_args(which, &["--demo-data", "on"]).await;
    let Db::Postgres(pool) = &app.state.db else {
        unreachable!()
    };
    // More leagues, so filters are as selective as in production and the planner has choices.
    for code in [
        "X1", "X2", "X3", "X4", "X5", "X6", "X7", "X8", "X9", "Y1", "Y2",
    ] {
        let mut plan = fp_api_server::demo::plan(chrono::Utc::now().date_naive());
        plan.league = fp_api_server::import::league_meta(code);
        let entry = fp_api_server::db::auth::AuditEntry {
            actor_id: None,
            actor: "test".into(),
            action: "data.import",
            target: code.into(),
            details: serde_json::json!({}),
        };
        fp_api_server::import::write::write(&app.state.db, &plan, "test", "", &entry)
            .await
            .unwrap();
    }
    sqlx::query("ANALYZE").execute(pool).await.unwrap();
    let f = |filter: MatchFilter| {
        match_list_query(&MatchFilter {
            limit: 20,
            ..filter
        })
    };
    let cases: Vec<(&str, String, Vec<Bind>, &str)> = vec![
        {
            let (sql, b) = f(MatchFilter { league_id: Some(1), season: Some("2026-2027".into()), ..Default::default() });
            ("matches by league and season", sql, b, "matches_league_season_kickoff")
        },
        {
            let (sql, b) = f(MatchFilter { league_id: Some(1), status: Some("scheduled"), from: Some(0), ..Default::default() });
            ("upcoming matches of a league", sql, b, "matches_league_status_kickoff")
        },
        {
            let (sql, b) = f(MatchFilter { team_id: Some(3), ..Default::default() });
            ("matches by team", sql, b, "matches_home_team_kickoff")
        },
        {
            let (sql, b) = f(MatchFilter { from: Some(0), to: Some(i64::MAX / 2), after: Some((5, 5)), ..Default::default() });
            ("matches by date, next page", sql, b, "matches_kickoff")
        },
        {
            let (sql, b) = f(MatchFilter { status: Some("finished"), ..Default::default() });
            ("matches by status", sql, b, "matches_status_kickoff")
        },
        (
            "match by id",
            format!("{MATCH_SELECT} WHERE m.id = $1"),
            vec![Bind::I64(7)],
            "matches_pkey",
        ),
        (
            "prediction by match",
            "SELECT body FROM predictions WHERE match_id = $1 AND model = $2 AND model_version = $3".into(),
            vec![Bind::I64(7), Bind::Str("dixon-coles"), Bind::Str("v")],
            "predictions_pkey",
        ),
        (
            "odds by match",
            "SELECT bookmaker, kind, home, draw, away FROM odds_1x2 WHERE match_id = $1 ORDER BY kind, bookmaker".into(),
            vec![Bind::I64(7)],
            "odds_1x2_pkey",
        ),
        (
            "team results",
            "SELECT home_team_id, away_team_id, home_goals, away_goals, kickoff_at FROM matches \
             WHERE (home_team_id = $1 OR away_team_id = $1) AND status = 'finished' ORDER BY kickoff_at, id"
                .into(),
            vec![Bind::I64(3)],
            "matches_away_team_kickoff",
        ),
        (
            "refresh token by hash",
            "SELECT id FROM refresh_tokens WHERE token_hash = $1".into(),
            vec![Bind::Text("x".into())],
            "refresh_tokens_token_hash_key",
        ),
        (
            "current fit of a league",
            "SELECT f2.id FROM model_fits f2 WHERE f2.league_id = $1 AND f2.model = $2 \
             ORDER BY f2.fitted_at DESC, f2.id DESC LIMIT 1"
                .into(),
            vec![Bind::I64(1), Bind::Str("dixon-coles")],
            "model_fits_league_model_fitted",
        ),
    ];
    let mut failures = Vec::new();
    for (name, sql, binds, index) in cases {
        let text = plan(pool, &sql, binds).await;
        let seq = [
            "matches",
            "predictions",
            "odds_1x2",
            "refresh_tokens",
            "model_fits",
        ]
        .iter()
        .any(|table| text.contains(&format!("Seq Scan on {table}")));
        if seq || !text.contains(index) {
            failures.push(format!(
                "{name}: expected {index} and no sequential scan\n{text}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
