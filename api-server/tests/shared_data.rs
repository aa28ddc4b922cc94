//! Importing every file of the shared football-data folder, on both backends: per-season match
//! counts equal the files' data rows, a second import changes nothing, and every league gets a
//! fitted model. Skips with a message when the folder is absent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::{TestApp, Which};
use fp_api_server::db::Db;
use fp_api_server::import::import_file;

on_both_backends!(
    every_shared_file_imports_with_exact_counts,
    evaluation_through_the_api_matches_the_reference_figures,
);

fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("FP_FOOTBALL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/football-data")
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: football data not found at {} (set FP_FOOTBALL_DATA)",
            dir.display()
        );
        None
    }
}

/// Data rows of a file counted independently of the importer: CSV records with a home team.
fn file_rows(bytes: &[u8]) -> i64 {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = reader.byte_headers().unwrap().clone();
    let home = headers.iter().position(|h| h == b"HomeTeam").unwrap();
    reader
        .byte_records()
        .map(Result::unwrap)
        .filter(|r| r.get(home).is_some_and(|v| !v.is_empty()))
        .count() as i64
}

async fn season_count(db: &Db, league: &str, season: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM matches m JOIN leagues l ON l.id = m.league_id \
               JOIN seasons s ON s.id = m.season_id WHERE l.code = $1 AND s.name = $2";
    match db {
        Db::Postgres(p) => sqlx::query_scalar(sql)
            .bind(league)
            .bind(season)
            .fetch_one(p)
            .await
            .unwrap(),
        Db::Sqlite(p) => sqlx::query_scalar(sql)
            .bind(league)
            .bind(season)
            .fetch_one(p)
            .await
            .unwrap(),
    }
}

async fn every_shared_file_imports_with_exact_counts(which: Which) {
    let Some(dir) = shared_data() else {
        return;
    };
    let app = TestApp::new(which).await;
    let files = fp_api_server::import::cli::discover(&dir).unwrap();
    assert!(files.len() >= 60, "{} files", files.len());
    let started = std::time::Instant::now();
    let mut total = 0;
    for (league, season, path) in &files {
        let bytes = std::fs::read(path).unwrap();
        let summary = import_file(
            &app.state.db,
            league,
            season,
            &bytes,
            "test",
            (None, "test"),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        let expected = file_rows(&bytes);
        assert_eq!(summary.matches as i64, expected, "{league} {season}");
        assert_eq!(
            season_count(&app.state.db, league, season).await,
            expected,
            "{league} {season}"
        );
        total += expected;
    }
    eprintln!(
        "imported {} files, {total} matches in {:?}",
        files.len(),
        started.elapsed()
    );
    assert!(total > 24_000, "{total}");
    // Idempotent: a second import of a file creates nothing.
    let (league, season, path) = &files[files.len() - 1];
    let again = import_file(
        &app.state.db,
        league,
        season,
        &std::fs::read(path).unwrap(),
        "test",
        (None, "test"),
    )
    .await
    .unwrap();
    assert_eq!(again.created, 0);
    // Every league fits (on its latest seasons) and is ready.
    app.state
        .models
        .ensure_fitted(&app.state.db, &app.state.metrics)
        .await
        .unwrap();
    let leagues: Vec<String> = app
        .state
        .models
        .all()
        .iter()
        .map(|m| m.league.clone())
        .collect();
    assert_eq!(leagues, ["D1", "E0", "F1", "I1", "SP1"]);
    assert!(app.state.models.readiness_gap().is_none());
}

/// Import E0 2021-22 to 2023-24, then ask the API for the 2023-24 evaluation: the model beats
/// the constant forecast out of sample, and the closing odds read back from the database score
/// exactly the README's reference RPS (so odds survive the round trip).
async fn evaluation_through_the_api_matches_the_reference_figures(which: Which) {
    let Some(dir) = shared_data() else {
        return;
    };
    let app = TestApp::new(which).await;
    for season in ["2021-2022", "2022-2023", "2023-2024"] {
        let bytes = std::fs::read(dir.join("E0").join(format!("{season}.csv"))).unwrap();
        import_file(&app.state.db, "E0", season, &bytes, "test", (None, "test"))
            .await
            .unwrap();
    }
    app.state
        .models
        .ensure_fitted(&app.state.db, &app.state.metrics)
        .await
        .unwrap();
    app.state.sync_now().await.unwrap();
    let token = app.admin().await.access;
    let r = app
        .get(
            "/api/v1/models/dixon-coles/evaluation?league=E0&season=2023-2024",
            Some(&token),
        )
        .await;
    r.expect(axum::http::StatusCode::OK);
    let report = r.json();
    let model = report["metrics"]["rps"].as_f64().unwrap();
    let constant = report["constant_reference"]["rps"].as_f64().unwrap();
    let odds = report["closing_odds"]["closing_odds"]["rps"]
        .as_f64()
        .unwrap();
    eprintln!(
        "E0 2023-24 via the API: model {model:.4}, constant {constant:.4}, closing odds {odds:.4}"
    );
    assert_eq!(report["metrics"]["count"], 380);
    assert_eq!(format!("{constant:.4}"), "0.2340");
    assert_eq!(format!("{odds:.4}"), "0.1805");
    assert!(model < constant, "model {model} vs constant {constant}");
}
