//! Malformed input to every endpoint answers 4xx with a JSON `{code, message}`, never 5xx:
//! wrong types, huge numbers, bad UTF-8, oversized bodies, unknown fields, wrong media types.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{TestApp, Which};

on_both_backends!(malformed_input_is_4xx_everywhere);

fn raw(
    method: Method,
    uri: &str,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(Body::from(body)).unwrap()
}

async fn malformed_input_is_4xx_everywhere(which: Which) {
    let app = TestApp::with_args(
        which,
        &["--demo-data", "on", "--import-max-body-bytes", "100000"],
    )
    .await;
    let token = app.admin().await.access;
    let json_endpoints = [
        (Method::POST, "/api/v1/auth/register"),
        (Method::POST, "/api/v1/auth/login"),
        (Method::POST, "/api/v1/auth/refresh"),
        (Method::POST, "/api/v1/auth/logout"),
        (Method::POST, "/api/v1/predictions/batch"),
        (Method::POST, "/api/v1/admin/models/refit"),
        (Method::PATCH, "/api/v1/admin/users/1"),
    ];
    let oversized = format!("{{\"username\":\"{}\"}}", "a".repeat(70_000)).into_bytes();
    let bodies: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
        ("truncated", Some("application/json"), b"{".to_vec()),
        ("not an object", Some("application/json"), b"\"text\"".to_vec()),
        ("array", Some("application/json"), b"[]".to_vec()),
        ("unknown field", Some("application/json"), br#"{"surprise": 1}"#.to_vec()),
        ("wrong types", Some("application/json"), br#"{"username": 1, "password": [], "match_ids": "x", "refresh_token": {}, "role": 5, "league": 9}"#.to_vec()),
        ("huge numbers", Some("application/json"), br#"{"match_ids": [1e400, 99999999999999999999999], "active": 1e999}"#.to_vec()),
        ("bad utf-8", Some("application/json"), b"{\"username\": \"\xff\xfe\xfd\", \"password\": \"\xc3\x28\"}".to_vec()),
        ("nul bytes", Some("application/json"), b"{\"username\": \"a\x00b\"}".to_vec()),
        ("oversized", Some("application/json"), oversized),
        ("wrong media type", Some("text/plain"), b"{}".to_vec()),
        ("no media type", None, b"{}".to_vec()),
        ("empty", Some("application/json"), Vec::new()),
        ("deep nesting", Some("application/json"), format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes()),
    ];
    let mut checked = 0;
    for (method, path) in &json_endpoints {
        for (what, ct, body) in &bodies {
            // The refit endpoint accepts an empty body (refit everything): skip that one case.
            if *path == "/api/v1/admin/models/refit" && *what == "empty" {
                continue;
            }
            let r = app
                .send(raw(method.clone(), path, &token, *ct, body.clone()))
                .await;
            assert!(
                r.status.is_client_error(),
                "{method} {path} with {what}: {} {}",
                r.status,
                r.text()
            );
            assert!(
                serde_json::from_slice::<serde_json::Value>(&r.body)
                    .is_ok_and(|v| v["code"].is_string()),
                "{method} {path} with {what}: {}",
                r.text()
            );
            checked += 1;
        }
    }
    assert!(checked > 80);

    let bad_paths = [
        "/api/v1/teams/abc",
        "/api/v1/teams/99999999999999999999999",
        "/api/v1/teams/1.5/stats",
        "/api/v1/matches/%FF%FE",
        "/api/v1/matches/-1/odds",
        "/api/v1/predictions/NaN",
        "/api/v1/predictions/0x10",
        "/api/v1/admin/users/%00",
        "/api/v1/models/%FF/evaluation?league=DEMO",
        "/api/v1/matches?limit=1e3",
        "/api/v1/matches?league=%FF",
        "/api/v1/matches?team=1&team=2",
        "/api/v1/matches?from=2024-13-45",
        "/api/v1/matches?to=%00",
        "/api/v1/teams?league=E0&extra=1",
        "/api/v1/predictions?upcoming=maybe",
        "/api/v1/predictions?limit=-5",
        "/api/v1/admin/users?limit=1000",
        "/api/v1/admin/users?cursor=abc",
        "/api/v1/models/dixon-coles/evaluation",
        "/api/v1/models/dixon-coles/evaluation?league=DEMO&season=20x0-2021",
    ];
    for path in bad_paths {
        let r = app
            .send(raw(Method::GET, path, &token, None, Vec::new()))
            .await;
        assert!(
            r.status.is_client_error(),
            "GET {path}: {} {}",
            r.status,
            r.text()
        );
        assert!(r.json()["code"].is_string(), "{path}");
    }

    // Imports: binary garbage, an oversized file, a broken multipart body.
    let import = "/api/v1/admin/import?league=E0&season=2023-2024";
    let garbage = app
        .send(raw(
            Method::POST,
            import,
            &token,
            Some("text/csv"),
            vec![0xff, 0xfe, 0, 1, 2, b'\n', 0x80],
        ))
        .await;
    assert_eq!(
        garbage.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        garbage.text()
    );
    let huge = app
        .send(raw(
            Method::POST,
            import,
            &token,
            Some("text/csv"),
            vec![b'a'; 200_000],
        ))
        .await;
    assert_eq!(
        huge.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        huge.text()
    );
    let broken = app
        .send(raw(
            Method::POST,
            "/api/v1/admin/import",
            &token,
            Some("multipart/form-data; boundary=zzz"),
            b"--zzz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno end".to_vec(),
        ))
        .await;
    assert!(
        broken.status.is_client_error(),
        "{} {}",
        broken.status,
        broken.text()
    );
    let no_boundary = app
        .send(raw(
            Method::POST,
            "/api/v1/admin/import",
            &token,
            Some("multipart/form-data"),
            b"x".to_vec(),
        ))
        .await;
    assert!(
        no_boundary.status.is_client_error(),
        "{}",
        no_boundary.text()
    );

    // Nothing above disturbed the server.
    app.get("/health/ready", None).await.expect(StatusCode::OK);
    let metrics = app.get("/metrics", None).await.text();
    assert!(!metrics.contains("status=\"500\""), "{metrics}");
}
