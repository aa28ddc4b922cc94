//! Data, predictions, import and model endpoints on both backends, on the seeded demo league
//! and small generated football-data files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{TestApp, Which};
use serde_json::{Value, json};

on_both_backends!(
    demo_league_is_seeded_with_a_fitted_model,
    match_lists_filter_and_page_without_gaps,
    team_stats_add_up,
    predictions_are_cached_and_consistent,
    batch_predictions,
    csv_import_is_idempotent_and_refits,
    malformed_csv_writes_nothing,
    multipart_import_and_odds,
    evaluation_scores_out_of_sample,
    replicas_pick_up_a_refit,
    cached_lists_with_a_league_filter_need_no_database,
    cache_memory_is_bounded_however_requests_are_spelled,
    ids_that_do_not_exist_cost_one_query,
);

async fn demo_app(which: Which) -> (TestApp, String) {
    let app = TestApp::with_args(which, &["--demo-data", "on"]).await;
    let token = app.admin().await.access;
    (app, token)
}

async fn demo_app_with(which: Which, extra: &[&str]) -> (TestApp, String) {
    let mut args = vec!["--demo-data", "on"];
    args.extend_from_slice(extra);
    let app = TestApp::with_args(which, &args).await;
    let token = app.admin().await.access;
    (app, token)
}

/// A cache hit must not touch the database, also not to resolve a league code: with the pool
/// closed, repeated filtered lists still answer; anything new is a 503.
async fn cached_lists_with_a_league_filter_need_no_database(which: Which) {
    let (app, token) = demo_app(which).await;
    let paths = [
        "/api/v1/matches?league=DEMO&limit=5",
        "/api/v1/teams?league=DEMO",
        "/api/v1/predictions?league=DEMO&limit=3",
    ];
    let mut first = Vec::new();
    for path in paths {
        let r = app.get(path, Some(&token)).await;
        r.expect(StatusCode::OK);
        first.push(r.text());
    }
    // An unknown league is a 404, and errors are not cached: the same answer twice.
    for _ in 0..2 {
        let r = app.get("/api/v1/matches?league=XX9", Some(&token)).await;
        r.expect(StatusCode::NOT_FOUND);
        assert_eq!(r.json()["message"], "no league XX9");
    }
    match &app.state.db {
        fp_api_server::db::Db::Postgres(pool) => pool.close().await,
        fp_api_server::db::Db::Sqlite(pool) => pool.close().await,
    }
    for (path, body) in paths.iter().zip(&first) {
        let r = app.get(path, Some(&token)).await;
        r.expect(StatusCode::OK);
        assert_eq!(&r.text(), body, "{path}");
    }
    app.get("/api/v1/matches?league=DEMO&limit=6", Some(&token))
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE);
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().unwrap()
}

async fn demo_league_is_seeded_with_a_fitted_model(which: Which) {
    let (app, token) = demo_app(which).await;
    app.get("/health/ready", None).await.expect(StatusCode::OK);
    let leagues = app.get("/api/v1/leagues", Some(&token)).await;
    leagues.expect(StatusCode::OK);
    let leagues = leagues.json();
    let demo = &items(&leagues)[0];
    assert_eq!(demo["code"], "DEMO");
    assert_eq!(demo["teams"], 20);
    assert_eq!(demo["matches"], 380);
    let models = app.get("/api/v1/models", Some(&token)).await.json();
    let fit = &models["items"][0]["leagues"][0];
    assert_eq!(fit["league"], "DEMO");
    assert_eq!(fit["matches_used"], 190);
    assert!(fit["version"].as_str().unwrap().len() > 8);
}

async fn match_lists_filter_and_page_without_gaps(which: Which) {
    let (app, token) = demo_app(which).await;
    let mut seen = HashSet::new();
    let mut url = "/api/v1/matches?league=DEMO&limit=100".to_string();
    let mut last_kickoff = String::new();
    loop {
        let page = app.get(&url, Some(&token)).await;
        page.expect(StatusCode::OK);
        let body = page.json();
        for m in items(&body) {
            assert!(seen.insert(m["id"].as_i64().unwrap()), "duplicate {m}");
            let kickoff = m["kickoff"].as_str().unwrap().to_string();
            assert!(kickoff >= last_kickoff, "kick-off order");
            last_kickoff = kickoff;
        }
        match body["next_cursor"].as_str() {
            Some(cursor) => url = format!("/api/v1/matches?league=DEMO&limit=100&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 380);

    let finished = app
        .get("/api/v1/matches?status=finished&limit=100", Some(&token))
        .await
        .json();
    assert!(
        items(&finished)
            .iter()
            .all(|m| m["status"] == "finished" && m["score"].is_object())
    );
    let team = items(&finished)[0]["home_team"]["id"].as_i64().unwrap();
    let by_team = app
        .get(
            &format!("/api/v1/matches?team={team}&limit=100"),
            Some(&token),
        )
        .await
        .json();
    assert_eq!(items(&by_team).len(), 38);
    assert!(
        items(&by_team)
            .iter()
            .all(|m| m["home_team"]["id"] == team || m["away_team"]["id"] == team)
    );
    let first_date = items(&finished)[0]["date"].as_str().unwrap().to_string();
    let day = app
        .get(
            &format!("/api/v1/matches?from={first_date}&to={first_date}"),
            Some(&token),
        )
        .await
        .json();
    assert_eq!(items(&day).len(), 10, "one round on the first day");
    let one = app
        .get(
            &format!("/api/v1/matches/{}", items(&day)[0]["id"]),
            Some(&token),
        )
        .await;
    one.expect(StatusCode::OK);
    assert_eq!(one.json()["league"], "DEMO");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("status=done", "status"),
        ("team=-3", "team"),
        ("team=99999999999999999999999", "team"),
        ("from=yesterday", "from"),
        ("season=2020", "season"),
        ("season=2019-2021", "season"),
        ("league=e0", "league"),
        ("cursor=%FF%FE", "cursor"),
        ("cursor=MTcwMDAwMDAwMDo0Mg", "cursor"),
        ("limit=", "limit"),
        ("league=", "league"),
    ] {
        let r = app
            .get(&format!("/api/v1/matches?{query}"), Some(&token))
            .await;
        r.expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.json()["field"], field, "{query}");
    }
    let r = app.get("/api/v1/matches?colour=red", Some(&token)).await;
    r.expect(StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["field"], "colour");
    // An unknown league is a 404 like an unknown id; `to` before `from` is an empty range.
    app.get("/api/v1/matches?league=XX9", Some(&token))
        .await
        .expect(StatusCode::NOT_FOUND);
    let empty = app
        .get(
            "/api/v1/matches?from=2024-02-01&to=2024-01-01",
            Some(&token),
        )
        .await;
    empty.expect(StatusCode::OK);
    assert_eq!(empty.json()["items"], serde_json::json!([]));
    app.get("/api/v1/matches/999999", Some(&token))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.get("/api/v1/matches/abc", Some(&token))
        .await
        .expect(StatusCode::BAD_REQUEST);
}

async fn team_stats_add_up(which: Which) {
    let (app, token) = demo_app(which).await;
    let teams = app
        .get("/api/v1/teams?league=DEMO", Some(&token))
        .await
        .json();
    assert_eq!(items(&teams).len(), 20);
    let mut points = 0;
    for team in items(&teams) {
        let id = team["id"].as_i64().unwrap();
        app.get(&format!("/api/v1/teams/{id}"), Some(&token))
            .await
            .expect(StatusCode::OK);
        let stats = app
            .get(&format!("/api/v1/teams/{id}/stats"), Some(&token))
            .await
            .json();
        let overall = &stats["overall"];
        assert_eq!(overall["played"], 19, "half a double round robin");
        assert_eq!(
            overall["played"].as_i64().unwrap(),
            stats["home"]["played"].as_i64().unwrap() + stats["away"]["played"].as_i64().unwrap()
        );
        assert_eq!(
            overall["points"].as_i64().unwrap(),
            3 * overall["wins"].as_i64().unwrap() + overall["draws"].as_i64().unwrap()
        );
        assert_eq!(stats["form"].as_str().unwrap().len(), 5);
        points += overall["points"].as_i64().unwrap();
    }
    // Every match hands out 3 points (win) or 2 (draw): 190 matches, between 380 and 570.
    assert!((380..=570).contains(&points), "{points}");
    app.get("/api/v1/teams/424242", Some(&token))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.get("/api/v1/teams/1/stats?season=nope", Some(&token))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
}

async fn predictions_are_cached_and_consistent(which: Which) {
    let (app, token) = demo_app(which).await;
    let upcoming = app
        .get(
            "/api/v1/predictions?league=DEMO&upcoming=true&limit=100",
            Some(&token),
        )
        .await;
    upcoming.expect(StatusCode::OK);
    let list = upcoming.json();
    assert_eq!(items(&list).len(), 100);
    assert!(list["next_cursor"].is_string());
    for p in items(&list) {
        assert_eq!(p["status"], "scheduled");
        let sum = p["probabilities"]["home"].as_f64().unwrap()
            + p["probabilities"]["draw"].as_f64().unwrap()
            + p["probabilities"]["away"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-6, "{sum}");
        assert_eq!(p["rating_sources"]["home"], "fitted");
    }
    let id = items(&list)[0]["match_id"].as_i64().unwrap();
    let first = app
        .get(&format!("/api/v1/predictions/{id}"), Some(&token))
        .await;
    first.expect(StatusCode::OK);
    let second = app
        .get(&format!("/api/v1/predictions/{id}"), Some(&token))
        .await;
    assert_eq!(first.body, second.body);
    assert_eq!(
        first.json()["probabilities"],
        items(&list)[0]["probabilities"]
    );
    let metrics = app.get("/metrics", None).await.text();
    assert!(
        metrics.contains(r#"fp_cache_requests_total{cache="predictions",result="hit"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"fp_cache_requests_total{cache="predictions",result="miss"} 1"#));
    assert!(metrics.contains(r#"route="/api/v1/predictions/{match_id}""#));
    assert!(metrics.contains("fp_model_fit_timestamp_seconds{league=\"DEMO\"}"));
    // A finished match gets a forecast too, with its result alongside.
    let finished = app
        .get("/api/v1/matches?status=finished&limit=1", Some(&token))
        .await
        .json();
    let fid = items(&finished)[0]["id"].as_i64().unwrap();
    let p = app
        .get(&format!("/api/v1/predictions/{fid}"), Some(&token))
        .await
        .json();
    assert!(p["result"].is_object());
    app.get("/api/v1/predictions/987654", Some(&token))
        .await
        .expect(StatusCode::NOT_FOUND);
}

async fn batch_predictions(which: Which) {
    let (app, token) = demo_app(which).await;
    let list = app
        .get("/api/v1/predictions?league=DEMO&limit=3", Some(&token))
        .await
        .json();
    let ids: Vec<i64> = items(&list)
        .iter()
        .map(|p| p["match_id"].as_i64().unwrap())
        .collect();
    // One of them cached first, so the batch mixes hits and misses.
    app.get(&format!("/api/v1/predictions/{}", ids[1]), Some(&token))
        .await
        .expect(StatusCode::OK);
    let r = app
        .post_json(
            "/api/v1/predictions/batch",
            Some(&token),
            json!({"match_ids": [ids[0], ids[1], 999999, ids[2]]}),
        )
        .await;
    r.expect(StatusCode::OK);
    let body = r.json();
    let got: Vec<i64> = items(&body)
        .iter()
        .map(|p| p["match_id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, ids);
    assert_eq!(body["missing"], json!([999999]));
    let too_many: Vec<i64> = (1..=101).collect();
    for bad in [
        json!({"match_ids": []}),
        json!({"match_ids": too_many}),
        json!({"match_ids": [1, 1]}),
    ] {
        let r = app
            .post_json("/api/v1/predictions/batch", Some(&token), bad)
            .await;
        r.expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.json()["field"], "match_ids");
    }
}

fn csv_request(path: &str, token: &str, body: String) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "text/csv")
        .body(Body::from(body))
        .unwrap()
}

async fn csv_import_is_idempotent_and_refits(which: Which) {
    let app = TestApp::new(which).await;
    let token = app.admin().await.access;
    let csv = common::season_csv(2023, 8, 10);
    let r = app
        .send(csv_request(
            "/api/v1/admin/import?league=E0&season=2023-2024",
            &token,
            csv.clone(),
        ))
        .await;
    r.expect(StatusCode::OK);
    let body = r.json();
    assert_eq!(body["import"]["matches"], 56);
    assert_eq!(body["import"]["created"], 56);
    assert_eq!(body["import"]["teams"], 8);
    assert_eq!(body["refit"]["league"], "E0");
    let version = body["refit"]["model_version"].as_str().unwrap().to_string();
    // Again: updates, never duplicates; the same data gives a fit of the same data.
    let again = app
        .send(csv_request(
            "/api/v1/admin/import?league=E0&season=2023-2024",
            &token,
            csv,
        ))
        .await;
    again.expect(StatusCode::OK);
    assert_eq!(again.json()["import"]["created"], 0);
    let leagues = app.get("/api/v1/leagues", Some(&token)).await.json();
    assert_eq!(items(&leagues)[0]["matches"], 56);
    // More results: a new model version, served at once by this replica.
    let more = common::season_csv(2023, 8, 12);
    let r = app
        .send(csv_request(
            "/api/v1/admin/import?league=E0&season=2023-2024",
            &token,
            more,
        ))
        .await;
    r.expect(StatusCode::OK);
    let new_version = r.json()["refit"]["model_version"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(version, new_version);
    let upcoming = app
        .get("/api/v1/predictions?league=E0&upcoming=false", Some(&token))
        .await
        .json();
    assert_eq!(items(&upcoming)[0]["model_version"], new_version.as_str());
    let metrics = app.get("/metrics", None).await.text();
    assert!(metrics.contains("fp_last_import_timestamp_seconds{league=\"E0\"}"));
    // Refit on request (analyst or admin).
    let r = app
        .post_json(
            "/api/v1/admin/models/refit",
            Some(&token),
            json!({"league": "E0"}),
        )
        .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.json()["fits"][0]["league"], "E0");
    app.post_json(
        "/api/v1/admin/models/refit",
        Some(&token),
        json!({"league": "ZZ"}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    // An explicit null is not "absent": the document does not allow it.
    let null = app
        .post_json(
            "/api/v1/admin/models/refit",
            Some(&token),
            json!({"league": null}),
        )
        .await;
    null.expect(StatusCode::UNPROCESSABLE_ENTITY);
}

async fn malformed_csv_writes_nothing(which: Which) {
    let app = TestApp::new(which).await;
    let token = app.admin().await.access;
    let mut csv = common::season_csv(2023, 6, 10);
    // Break two rows deep in the file: a non-numeric score and an impossible date.
    let mut lines: Vec<Vec<String>> = csv
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    lines[5][5] = "x".into(); // FTHG of physical line 6
    lines[9][1] = "31/02/2024".into(); // Date of physical line 10
    csv = lines
        .iter()
        .map(|l| l.join(","))
        .collect::<Vec<_>>()
        .join("\n");
    let r = app
        .send(csv_request(
            "/api/v1/admin/import?league=E0&season=2023-2024",
            &token,
            csv,
        ))
        .await;
    r.expect(StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.json();
    assert_eq!(body["code"], "invalid_csv");
    let lines: Vec<i64> = body["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, vec![6, 10]);
    assert_eq!(body["details"]["error_count"], 2);
    // Nothing written: no league, no match.
    let leagues = app.get("/api/v1/leagues", Some(&token)).await.json();
    assert!(items(&leagues).is_empty());
    // Wrong parameters and media types are 4xx too.
    let ok = common::season_csv(2023, 6, 10);
    for (path, field) in [
        ("/api/v1/admin/import?league=e0&season=2023-2024", "league"),
        ("/api/v1/admin/import?league=E0&season=2023", "season"),
        ("/api/v1/admin/import?league=E0", "season"),
        ("/api/v1/admin/import?league=E0&season=2019-2020", "file"),
    ] {
        let r = app.send(csv_request(path, &token, ok.clone())).await;
        r.expect(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.json()["field"], field, "{path}");
    }
    let r = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/admin/import?league=E0&season=2023-2024")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::CONTENT_TYPE, "application/pdf")
                .body(Body::from("%PDF"))
                .unwrap(),
        )
        .await;
    r.expect(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

async fn multipart_import_and_odds(which: Which) {
    let app = TestApp::new(which).await;
    let token = app.admin().await.access;
    let csv = common::season_csv(2022, 6, 4);
    let boundary = "XyZboundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"league\"\r\n\r\nE0\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"season\"\r\n\r\n2022-2023\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"2022-2023.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n"
    );
    let r = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/admin/import")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    r.expect(StatusCode::OK);
    let summary = r.json();
    assert_eq!(summary["import"]["matches"], 30);
    // 12 played matches with two quotes each, 18 fixtures with one.
    assert_eq!(summary["import"]["odds"], 12 * 2 + 18);
    let finished = app
        .get(
            "/api/v1/matches?league=E0&status=finished&limit=1",
            Some(&token),
        )
        .await
        .json();
    let id = items(&finished)[0]["id"].as_i64().unwrap();
    let odds = app
        .get(&format!("/api/v1/matches/{id}/odds"), Some(&token))
        .await;
    odds.expect(StatusCode::OK);
    let odds = odds.json();
    let kinds: HashSet<(String, String)> = odds["one_x_two"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["bookmaker"].as_str().unwrap().to_string(),
                o["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        HashSet::from([
            ("B365".into(), "opening".into()),
            ("PS".into(), "closing".into())
        ])
    );
    let implied = &odds["one_x_two"][0]["implied"];
    let sum = implied["home"].as_f64().unwrap()
        + implied["draw"].as_f64().unwrap()
        + implied["away"].as_f64().unwrap();
    assert!((sum - 1.0).abs() < 1e-9);
    // Too few results to fit yet: the import still succeeds, without a refit.
    assert!(summary["refit"].is_null());
}

async fn evaluation_scores_out_of_sample(which: Which) {
    let (app, admin) = demo_app(which).await;
    let viewer = app.register("viewer1").await.access;
    app.get(
        "/api/v1/models/dixon-coles/evaluation?league=DEMO",
        Some(&viewer),
    )
    .await
    .expect(StatusCode::FORBIDDEN);
    let r = app
        .get(
            "/api/v1/models/dixon-coles/evaluation?league=DEMO",
            Some(&admin),
        )
        .await;
    r.expect(StatusCode::OK);
    let report = r.json();
    let count = report["metrics"]["count"].as_i64().unwrap();
    let skipped = report["skipped"].as_i64().unwrap();
    assert_eq!(
        count + skipped,
        190,
        "every finished match is forecast or skipped"
    );
    assert!(count > 100, "{report}");
    assert!(report["refits"].as_i64().unwrap() >= 10);
    assert_eq!(report["refit"], "weekly");
    let rps = report["metrics"]["rps"].as_f64().unwrap();
    assert!(rps > 0.0 && rps < 0.5, "{rps}");
    assert!(report["constant_reference"]["rps"].is_number());
    let metrics = app.get("/metrics", None).await.text();
    assert!(
        metrics.contains("fp_model_evaluation{league=\"DEMO\",metric=\"rps\"}"),
        "{metrics}"
    );
    for (query, status) in [
        ("league=DEMO&season=1999-2000", StatusCode::NOT_FOUND),
        ("league=NOPE", StatusCode::NOT_FOUND),
        ("season=2026-2027", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        app.get(
            &format!("/api/v1/models/dixon-coles/evaluation?{query}"),
            Some(&admin),
        )
        .await
        .expect(status);
    }
    app.get("/api/v1/models/elo/evaluation?league=DEMO", Some(&admin))
        .await
        .expect(StatusCode::NOT_FOUND);
}

async fn replicas_pick_up_a_refit(which: Which) {
    let (a, token) = demo_app_with(which.clone(), &["--version-poll-interval", "100ms"]).await;
    // A second replica on the same database.
    let settings = common::settings(
        &which,
        a.dir.path(),
        &a.database.url,
        &["--version-poll-interval", "100ms"],
    );
    let db = fp_api_server::server::open_checked(&settings)
        .await
        .unwrap();
    let b_state =
        fp_api_server::server::build_state(settings, db, fp_api_server::faults::Faults::disabled())
            .await
            .unwrap();
    fp_api_server::server::spawn_background(&b_state);
    let b = fp_api_server::http::router(b_state.clone());
    let ask_b = |path: String| {
        let b = b.clone();
        let token = token.clone();
        async move {
            use http_body_util::BodyExt;
            use tower::ServiceExt;
            let resp = b
                .oneshot(common::request(Method::GET, &path, Some(&token), None))
                .await
                .unwrap();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    let upcoming = a
        .get("/api/v1/predictions?league=DEMO&limit=1", Some(&token))
        .await
        .json();
    let id = items(&upcoming)[0]["match_id"].as_i64().unwrap();
    let before = ask_b(format!("/api/v1/predictions/{id}")).await["model_version"].clone();
    // A refit on unchanged data reproduces the version replica B already serves.
    let r = a
        .post_json("/api/v1/admin/models/refit", Some(&token), json!({}))
        .await;
    r.expect(StatusCode::OK);
    let refit_version = r.json()["fits"][0]["model_version"].clone();
    assert_eq!(refit_version, before, "same data, same version");
    // Change a result directly in the database, then refit on A.
    let update = "UPDATE matches SET home_goals = home_goals + 3, updated_at = updated_at + 1 \
                  WHERE id = (SELECT MIN(id) FROM matches WHERE status = 'finished')";
    match &a.state.db {
        fp_api_server::db::Db::Postgres(p) => {
            sqlx::query(update).execute(p).await.unwrap();
        }
        fp_api_server::db::Db::Sqlite(p) => {
            sqlx::query(update).execute(p).await.unwrap();
        }
    }
    let r = a
        .post_json(
            "/api/v1/admin/models/refit",
            Some(&token),
            json!({"league": "DEMO"}),
        )
        .await;
    r.expect(StatusCode::OK);
    let new_version = r.json()["fits"][0]["model_version"].clone();
    assert_ne!(new_version, before);
    // B polls the version every 100 ms, so on an idle machine this takes a fraction of a second.
    // How fast is not judged here (a busy machine polls late); that B picks it up at all is,
    // within a generous limit.
    let started = std::time::Instant::now();
    loop {
        let seen = ask_b(format!("/api/v1/predictions/{id}")).await["model_version"].clone();
        if seen == new_version {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(300),
            "replica B still serves {seen} after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    eprintln!("replica B served the refit after {:?}", started.elapsed());
}

/// The value of one series in a text exposition (`name{labels}` as printed).
fn series(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} not in {metrics}"))
        .trim()
        .parse()
        .unwrap()
}

/// Spellings of one request share a cache entry, parameters an endpoint ignores make none, and
/// distinct large pages never hold more than the byte budget (`--cache-max-bytes`): a client
/// cannot grow the pod's memory by varying a URL.
async fn cache_memory_is_bounded_however_requests_are_spelled(which: Which) {
    let (app, token) = demo_app_with(which, &["--cache-max-bytes", "65536"]).await;
    for i in 0..50 {
        app.get(&format!("/api/v1/leagues?ignored={i}"), Some(&token))
            .await
            .expect(StatusCode::OK);
    }
    let mut bodies = HashSet::new();
    for path in [
        "/api/v1/matches?league=DEMO&limit=5",
        "/api/v1/matches?limit=5&league=DEMO",
        "/api/v1/matches?limit=05&league=DEMO",
        "/api/v1/matches?league=%44EMO&limit=5",
    ] {
        let r = app.get(path, Some(&token)).await;
        r.expect(StatusCode::OK);
        bodies.insert(r.text());
    }
    assert_eq!(bodies.len(), 1, "one answer for one request");
    let metrics = app.get("/metrics", None).await.text();
    assert_eq!(
        series(&metrics, r#"fp_cache_entries{cache="responses"}"#),
        2.0,
        "one entry for the leagues, one for the matches"
    );

    // Distinct pages of 100 matches (tens of kB each) against a 64 KiB budget.
    let teams = app.get("/api/v1/teams?league=DEMO", Some(&token)).await;
    teams.expect(StatusCode::OK);
    let ids: Vec<i64> = items(&teams.json())
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    let mut largest = 0;
    for id in &ids {
        let r = app
            .get(
                &format!("/api/v1/matches?team={id}&limit=100"),
                Some(&token),
            )
            .await;
        r.expect(StatusCode::OK);
        largest = largest.max(r.body.len());
    }
    let metrics = app.get("/metrics", None).await.text();
    let bytes = series(&metrics, r#"fp_cache_bytes{cache="responses"}"#);
    let entries = series(&metrics, r#"fp_cache_entries{cache="responses"}"#);
    assert!(
        largest * ids.len() > 2 * 65536,
        "the pages ({} of up to {largest} bytes) exceed the budget",
        ids.len()
    );
    assert!(
        bytes <= 65536.0,
        "{bytes} bytes cached in {entries} entries"
    );
    assert!(
        entries >= 1.0 && entries < ids.len() as f64,
        "{entries} entries"
    );
}

/// Cache penetration: asking for an id that does not exist again and again is answered from a
/// short-lived memory of the miss, without a query (here: with the database gone, still a 404).
async fn ids_that_do_not_exist_cost_one_query(which: Which) {
    // A TTL no stall of this machine reaches: the miss must still be remembered below.
    let (app, token) = demo_app_with(which, &["--cache-miss-ttl", "10m"]).await;
    for path in ["/api/v1/matches/99999999", "/api/v1/matches/99999999/odds"] {
        app.get(path, Some(&token))
            .await
            .expect(StatusCode::NOT_FOUND);
    }
    match &app.state.db {
        fp_api_server::db::Db::Postgres(pool) => pool.close().await,
        fp_api_server::db::Db::Sqlite(pool) => pool.close().await,
    }
    for path in ["/api/v1/matches/99999999", "/api/v1/matches/99999999/odds"] {
        let r = app.get(path, Some(&token)).await;
        r.expect(StatusCode::NOT_FOUND);
        assert_eq!(r.json()["code"], "not_found");
    }
    // Another id still needs the database.
    app.get("/api/v1/matches/99999998", Some(&token))
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE);
}
