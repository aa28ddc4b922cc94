//! Health, readiness, metrics, fallbacks and schema refusal, on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{TestApp, TestDatabase, Which};
use fp_api_server::server::{ServeError, open_checked};

on_both_backends!(
    live_and_ready_answer_on_a_migrated_database,
    unknown_routes_and_methods_answer_json_errors,
    metrics_use_route_templates_and_contract_names,
    readiness_fails_while_shutting_down,
    serve_refuses_older_and_newer_schemas_saying_which,
    readiness_waits_for_a_model_when_leagues_have_results,
);

async fn live_and_ready_answer_on_a_migrated_database(which: Which) {
    let app = TestApp::new(which).await;
    let live = app.get("/health/live", None).await;
    live.expect(StatusCode::OK);
    assert_eq!(live.json()["status"], "ok");
    let ready = app.get("/health/ready", None).await;
    ready.expect(StatusCode::OK);
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(ready.json()["schema_version"], app.state.schema_version);
    assert_eq!(
        ready.json()["release"],
        app.state.settings.release_version.as_str()
    );
    assert!(!app.state.settings.release_version.is_empty());
    assert_eq!(ready.headers["x-content-type-options"], "nosniff");
    assert_eq!(ready.headers["x-frame-options"], "DENY");
    assert!(ready.headers.contains_key("content-security-policy"));
    assert!(ready.headers.contains_key("x-request-id"));
}

async fn unknown_routes_and_methods_answer_json_errors(which: Which) {
    let app = TestApp::new(which).await;
    let missing = app.get("/no/such/thing", None).await;
    missing.expect(StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["code"], "not_found");
    let wrong = app
        .post_json("/health/live", None, serde_json::json!({}))
        .await;
    wrong.expect(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.json()["code"], "method_not_allowed");
}

async fn metrics_use_route_templates_and_contract_names(which: Which) {
    let app = TestApp::new(which).await;
    app.get("/health/ready", None).await;
    app.get("/secret/raw/path/123", None).await;
    let metrics = app.get("/metrics", None).await;
    metrics.expect(StatusCode::OK);
    let text = metrics.text();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/health/ready",status="200"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(
        !text.contains("/secret/raw"),
        "raw paths must never become labels"
    );
    for name in [
        "http_request_duration_seconds_bucket",
        "fp_db_pool_connections",
        "fp_db_pool_max_connections",
        "fp_predictions_served_total",
        "fp_build_info{version=",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
}

async fn readiness_fails_while_shutting_down(which: Which) {
    let app = TestApp::new(which).await;
    app.get("/health/ready", None).await.expect(StatusCode::OK);
    app.state.begin_shutdown();
    let ready = app.get("/health/ready", None).await;
    ready.expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["reason"], "shutting_down");
    app.get("/health/live", None).await.expect(StatusCode::OK);
}

async fn serve_refuses_older_and_newer_schemas_saying_which(which: Which) {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create(&which, dir.path()).await;
    // A configured database without --migrate: refused as older.
    let plain = common::settings(&which, dir.path(), &database.url, &[]);
    let mut no_migrate = plain.clone();
    no_migrate.migrate_on_start = false;
    match open_checked(&no_migrate).await {
        Err(ServeError::Schema(message)) => {
            assert!(
                message.contains("older") && message.contains("--migrate"),
                "{message}"
            )
        }
        other => panic!("expected a schema refusal, got {:?}", other.map(|_| ())),
    }
    // Migrated, then a newer release's migration appears: refused as newer.
    let db = open_checked(&plain).await.unwrap();
    let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES (99990101000000, 'from the future', TRUE, $1, 0)";
    match &db {
        fp_api_server::db::Db::Postgres(pool) => {
            sqlx::query(insert)
                .bind(vec![0u8; 4])
                .execute(pool)
                .await
                .unwrap();
        }
        fp_api_server::db::Db::Sqlite(pool) => {
            sqlx::query(insert)
                .bind(vec![0u8; 4])
                .execute(pool)
                .await
                .unwrap();
        }
    }
    db.close().await;
    match open_checked(&plain).await {
        Err(ServeError::Schema(message)) => {
            assert!(
                message.contains("newer") && message.contains("99990101000000"),
                "{message}"
            )
        }
        other => panic!("expected a schema refusal, got {:?}", other.map(|_| ())),
    }
}

async fn readiness_waits_for_a_model_when_leagues_have_results(which: Which) {
    let app = TestApp::new(which).await;
    app.get("/health/ready", None).await.expect(StatusCode::OK);
    // Results arrive without a fit (as an import on another replica, before its refit lands).
    let csv = common::season_csv(2023, 6, 10);
    fp_api_server::import::import_file(
        &app.state.db,
        "E0",
        "2023-2024",
        csv.as_bytes(),
        "t",
        (None, "t"),
    )
    .await
    .unwrap();
    app.state.sync_now().await.unwrap();
    let ready = app.get("/health/ready", None).await;
    ready.expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["reason"], "model_not_fitted");
    assert!(ready.json()["message"].as_str().unwrap().contains("E0"));
    app.state
        .models
        .ensure_fitted(&app.state.db, &app.state.metrics)
        .await
        .unwrap();
    app.get("/health/ready", None).await.expect(StatusCode::OK);
}
