//! Every endpoint × every role: allowed or denied as documented; every kind of bad token
//! refused everywhere; and the OpenAPI document lists exactly the routed endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{TestApp, Which};
use fp_api_server::auth::Role;
use fp_api_server::auth::jwt;
use fp_api_server::auth::keys::KeySet;
use serde_json::json;

on_both_backends!(every_endpoint_and_role, bad_tokens_everywhere);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    Public,
    Viewer,
    Analyst,
    Admin,
}

struct Endpoint {
    method: Method,
    /// The route template, as in the OpenAPI document.
    template: &'static str,
    /// The concrete path to call.
    path: String,
    body: Option<(&'static str, Vec<u8>)>,
    need: Need,
}

fn ep(method: Method, template: &'static str, path: impl Into<String>, need: Need) -> Endpoint {
    Endpoint {
        method,
        template,
        path: path.into(),
        body: None,
        need,
    }
}

fn with_json(mut e: Endpoint, v: serde_json::Value) -> Endpoint {
    e.body = Some(("application/json", serde_json::to_vec(&v).unwrap()));
    e
}

/// Every route of the API, with real ids from the demo league.
fn endpoints(match_id: i64, team_id: i64, user_id: i64) -> Vec<Endpoint> {
    use Need::*;
    let csv = "Div,Date,HomeTeam,AwayTeam,FTHG,FTAG,FTR\nE1,10/08/2023,North,South,1,0,H\n";
    let mut import = ep(
        Method::POST,
        "/api/v1/admin/import",
        "/api/v1/admin/import?league=E1&season=2023-2024",
        Analyst,
    );
    import.body = Some(("text/csv", csv.as_bytes().to_vec()));
    vec![
        ep(Method::GET, "/health/live", "/health/live", Public),
        ep(Method::GET, "/health/ready", "/health/ready", Public),
        ep(Method::GET, "/metrics", "/metrics", Public),
        with_json(
            ep(
                Method::POST,
                "/api/v1/auth/register",
                "/api/v1/auth/register",
                Public,
            ),
            json!({"username": "matrixuser", "password": "a-good-password"}),
        ),
        with_json(
            ep(
                Method::POST,
                "/api/v1/auth/login",
                "/api/v1/auth/login",
                Public,
            ),
            json!({"username": "admin", "password": common::ADMIN_PASSWORD}),
        ),
        with_json(
            ep(
                Method::POST,
                "/api/v1/auth/refresh",
                "/api/v1/auth/refresh",
                Public,
            ),
            json!({"refresh_token": "x"}),
        ),
        with_json(
            ep(
                Method::POST,
                "/api/v1/auth/logout",
                "/api/v1/auth/logout",
                Public,
            ),
            json!({"refresh_token": "x"}),
        ),
        ep(Method::GET, "/api/v1/auth/me", "/api/v1/auth/me", Viewer),
        ep(Method::GET, "/api/v1/leagues", "/api/v1/leagues", Viewer),
        ep(
            Method::GET,
            "/api/v1/teams",
            "/api/v1/teams?league=DEMO",
            Viewer,
        ),
        ep(
            Method::GET,
            "/api/v1/teams/{id}",
            format!("/api/v1/teams/{team_id}"),
            Viewer,
        ),
        ep(
            Method::GET,
            "/api/v1/teams/{id}/stats",
            format!("/api/v1/teams/{team_id}/stats"),
            Viewer,
        ),
        ep(
            Method::GET,
            "/api/v1/matches",
            "/api/v1/matches?league=DEMO",
            Viewer,
        ),
        ep(
            Method::GET,
            "/api/v1/matches/{id}",
            format!("/api/v1/matches/{match_id}"),
            Viewer,
        ),
        ep(
            Method::GET,
            "/api/v1/matches/{id}/odds",
            format!("/api/v1/matches/{match_id}/odds"),
            Viewer,
        ),
        ep(
            Method::GET,
            "/api/v1/predictions",
            "/api/v1/predictions?league=DEMO",
            Viewer,
        ),
        ep(
            Method::GET,
            "/api/v1/predictions/{match_id}",
            format!("/api/v1/predictions/{match_id}"),
            Viewer,
        ),
        with_json(
            ep(
                Method::POST,
                "/api/v1/predictions/batch",
                "/api/v1/predictions/batch",
                Viewer,
            ),
            json!({"match_ids": [match_id]}),
        ),
        ep(Method::GET, "/api/v1/models", "/api/v1/models", Viewer),
        ep(
            Method::GET,
            "/api/v1/models/{name}/evaluation",
            "/api/v1/models/dixon-coles/evaluation?league=DEMO",
            Analyst,
        ),
        import,
        with_json(
            ep(
                Method::POST,
                "/api/v1/admin/models/refit",
                "/api/v1/admin/models/refit",
                Analyst,
            ),
            json!({"league": "DEMO"}),
        ),
        ep(
            Method::GET,
            "/api/v1/admin/users",
            "/api/v1/admin/users",
            Admin,
        ),
        with_json(
            ep(
                Method::PATCH,
                "/api/v1/admin/users/{id}",
                format!("/api/v1/admin/users/{user_id}"),
                Admin,
            ),
            json!({"active": true}),
        ),
    ]
}

fn build(e: &Endpoint, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(e.method.clone()).uri(&e.path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match &e.body {
        Some((kind, bytes)) => b
            .header(header::CONTENT_TYPE, *kind)
            .body(Body::from(bytes.clone()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

async fn demo(which: Which) -> (TestApp, i64, i64) {
    let app = TestApp::with_args(which, &["--demo-data", "on"]).await;
    let admin = app.admin().await.access;
    let m = app
        .get(
            "/api/v1/matches?league=DEMO&status=finished&limit=1",
            Some(&admin),
        )
        .await
        .json();
    let match_id = m["items"][0]["id"].as_i64().unwrap();
    let team_id = m["items"][0]["home_team"]["id"].as_i64().unwrap();
    (app, match_id, team_id)
}

async fn every_endpoint_and_role(which: Which) {
    let (app, match_id, team_id) = demo(which).await;
    let viewer = app.user_with_role("matrix-viewer", "viewer").await;
    let analyst = app.user_with_role("matrix-analyst", "analyst").await;
    let admin = app.admin().await;
    let roles: [(Option<&str>, Option<Need>); 4] = [
        (None, None),
        (Some(&viewer.access), Some(Need::Viewer)),
        (Some(&analyst.access), Some(Need::Analyst)),
        (Some(&admin.access), Some(Need::Admin)),
    ];
    let mut checked = 0;
    for e in endpoints(match_id, team_id, viewer.user_id) {
        for (token, role) in &roles {
            let r = app.send(build(&e, *token)).await;
            let status = r.status;
            let context = format!("{} {} as {role:?}: {status} {}", e.method, e.path, r.text());
            assert!(!status.is_server_error(), "{context}");
            // Every id used exists, so a 404 could only mean the route is missing.
            assert_ne!(status, StatusCode::NOT_FOUND, "{context}");
            let allowed = e.need == Need::Public || role.is_some_and(|r| r >= e.need);
            if allowed {
                // Public endpoints may still refuse bad credentials (401 invalid_refresh_token)
                // but never for want of an access token or a role.
                let code = serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| v["code"].as_str().map(str::to_string))
                    .unwrap_or_default();
                assert!(
                    status != StatusCode::FORBIDDEN
                        && ![
                            "missing_token",
                            "invalid_token",
                            "token_expired",
                            "forbidden"
                        ]
                        .contains(&code.as_str()),
                    "should be allowed: {context}"
                );
            } else if role.is_none() {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{context}");
                assert_eq!(r.json()["code"], "missing_token", "{context}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{context}");
                assert_eq!(r.json()["code"], "forbidden", "{context}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 24 * 4);

    // The OpenAPI document describes exactly these endpoints.
    let doc = app.get("/api-docs/openapi.json", None).await.json();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "patch", "put", "delete"].contains(&k.as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = endpoints(1, 1, 1)
        .iter()
        .map(|e| (e.method.to_string(), e.template.to_string()))
        .collect();
    assert_eq!(documented, routed);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

async fn bad_tokens_everywhere(which: Which) {
    let (app, match_id, team_id) = demo(which).await;
    let user = app.register("tokenuser").await;
    let keys = app.state.auth.keys.current();
    let now = chrono::Utc::now().timestamp();
    let expired = jwt::issue(
        &keys,
        app.state.auth.audience(),
        user.user_id,
        Role::Admin,
        now - 7200,
        900,
    )
    .unwrap();
    let mut tampered = jwt::issue(
        &keys,
        app.state.auth.audience(),
        user.user_id,
        Role::Viewer,
        now,
        900,
    )
    .unwrap();
    tampered.replace_range(tampered.len() - 3.., "AAA");
    let stranger = KeySet::from_keys(&[("k20990101T000000Z".to_string(), vec![7u8; 32])]).unwrap();
    let wrong_kid = jwt::issue(
        &stranger,
        app.state.auth.audience(),
        user.user_id,
        Role::Admin,
        now,
        900,
    )
    .unwrap();
    let forged = KeySet::from_keys(&[(keys.signing_kid(now).to_owned(), vec![7u8; 32])]).unwrap();
    let forged = jwt::issue(
        &forged,
        app.state.auth.audience(),
        user.user_id,
        Role::Admin,
        now,
        900,
    )
    .unwrap();
    let bad = [
        ("expired", expired.as_str()),
        ("tampered", tampered.as_str()),
        ("wrong kid", wrong_kid.as_str()),
        ("forged", forged.as_str()),
        ("refresh as access", user.refresh.as_str()),
        ("garbage", "a.b.c"),
    ];
    for e in endpoints(match_id, team_id, user.user_id)
        .into_iter()
        .filter(|e| e.need != Need::Public)
    {
        for (kind, token) in bad {
            let r = app.send(build(&e, Some(token))).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{} {} with {kind}: {}",
                e.method,
                e.path,
                r.text()
            );
        }
    }
}
