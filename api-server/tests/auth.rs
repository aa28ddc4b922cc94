//! Auth flows on both backends: register/login/me, refresh rotation and reuse detection,
//! logout, role changes and deactivation ending sessions, key rotation, and every kind of bad
//! token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{ADMIN_PASSWORD, TestApp, Which};
use fp_api_server::auth::Role;
use fp_api_server::auth::jwt;
use fp_api_server::auth::keys::KeySet;
use serde_json::json;

on_both_backends!(
    register_login_and_me,
    registration_and_login_reject_bad_input,
    refresh_rotates_and_reuse_revokes_the_family,
    logout_revokes_the_refresh_token,
    role_change_ends_sessions_and_refresh_carries_the_new_role,
    deactivation_blocks_login_refresh_and_tokens,
    key_rotation_keeps_users_logged_in,
    bad_tokens_are_refused,
    login_is_rate_limited_with_retry_after,
    first_admin_follows_the_configured_password,
    a_password_change_ends_every_session,
    refreshing_never_extends_a_session_past_its_lifetime,
    registration_can_be_closed,
    restoring_the_configured_admin_is_audited,
    concurrent_refreshes_of_one_token_rotate_once,
    failed_logins_back_off_per_account,
);

async fn register_login_and_me(which: Which) {
    let app = TestApp::new(which).await;
    let r = app
        .post_json(
            "/api/v1/auth/register",
            None,
            json!({"username": "Alice", "password": "a-good-password"}),
        )
        .await;
    r.expect(StatusCode::CREATED);
    let body = r.json();
    assert_eq!(body["user"]["username"], "alice");
    assert_eq!(body["user"]["role"], "viewer");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(r.headers["cache-control"], "no-store");
    let session = app.login("ALICE", "a-good-password").await;
    let me = app.get("/api/v1/auth/me", Some(&session.access)).await;
    me.expect(StatusCode::OK);
    assert_eq!(me.json()["username"], "alice");
    let admin = app.admin().await;
    let me = app.get("/api/v1/auth/me", Some(&admin.access)).await;
    assert_eq!(me.json()["role"], "admin");
}

async fn registration_and_login_reject_bad_input(which: Which) {
    let app = TestApp::new(which).await;
    app.register("bob").await;
    let dup = app
        .post_json(
            "/api/v1/auth/register",
            None,
            json!({"username": "BOB", "password": "another-password"}),
        )
        .await;
    dup.expect(StatusCode::CONFLICT);
    assert_eq!(dup.json()["field"], "username");
    let bad_name = app
        .post_json(
            "/api/v1/auth/register",
            None,
            json!({"username": "b o b", "password": "a-good-password"}),
        )
        .await;
    bad_name.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_name.json()["field"], "username");
    let short = app
        .post_json(
            "/api/v1/auth/register",
            None,
            json!({"username": "carol", "password": "short"}),
        )
        .await;
    short.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(short.json()["field"], "password");
    let sneaky = app
        .post_json(
            "/api/v1/auth/register",
            None,
            json!({"username": "dave", "password": "a-good-password", "role": "admin"}),
        )
        .await;
    sneaky.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(sneaky.json()["field"], "role");
    let wrong = app
        .post_json(
            "/api/v1/auth/login",
            None,
            json!({"username": "bob", "password": "wrong-password"}),
        )
        .await;
    wrong.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["code"], "invalid_credentials");
    let nobody = app
        .post_json(
            "/api/v1/auth/login",
            None,
            json!({"username": "nobody", "password": "wrong-password"}),
        )
        .await;
    nobody.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(nobody.json()["code"], "invalid_credentials");
}

async fn refresh_rotates_and_reuse_revokes_the_family(which: Which) {
    let app = TestApp::new(which).await;
    let first = app.register("erin").await;
    let r = app
        .post_json(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": first.refresh}),
        )
        .await;
    r.expect(StatusCode::OK);
    let second = r.json()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, first.refresh);
    app.get(
        "/api/v1/auth/me",
        Some(r.json()["access_token"].as_str().unwrap()),
    )
    .await
    .expect(StatusCode::OK);
    // The rotated token again: reuse. It fails and takes the whole family with it.
    let reuse = app
        .post_json(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": first.refresh}),
        )
        .await;
    reuse.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(reuse.json()["code"], "invalid_refresh_token");
    app.post_json(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": second}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    // Another login is another family and still works.
    let other = app.login("erin", "a-good-password").await;
    app.post_json(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": other.refresh}),
    )
    .await
    .expect(StatusCode::OK);
}

/// Clients retry and tabs race: a token presented several times at once rotates exactly once and
/// the others are refused as reuse. Each answer is a 200 or a 401, never a server error (SQLite
/// once gave 500s here: two read transactions cannot both upgrade to write).
async fn concurrent_refreshes_of_one_token_rotate_once(which: Which) {
    let app = TestApp::new(which).await;
    for round in 0..5 {
        let session = app.register(&format!("racer{round}")).await;
        let body = json!({"refresh_token": session.refresh});
        let answers = futures::future::join_all(
            (0..6).map(|_| app.post_json("/api/v1/auth/refresh", None, body.clone())),
        )
        .await;
        let statuses: Vec<StatusCode> = answers.iter().map(|r| r.status).collect();
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
            "round {round}: {statuses:?}"
        );
        assert!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count() <= 1,
            "round {round}: one token rotated twice: {statuses:?}"
        );
    }
}

async fn logout_revokes_the_refresh_token(which: Which) {
    let app = TestApp::new(which).await;
    let s = app.register("frank").await;
    app.post_json(
        "/api/v1/auth/logout",
        None,
        json!({"refresh_token": s.refresh}),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    app.post_json(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": s.refresh}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    // Idempotent.
    app.post_json(
        "/api/v1/auth/logout",
        None,
        json!({"refresh_token": s.refresh}),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
}

async fn role_change_ends_sessions_and_refresh_carries_the_new_role(which: Which) {
    let app = TestApp::new(which).await;
    let user = app.register("grace").await;
    let admin = app.admin().await;
    // No pause: a change in the second the token was issued in ends it too.
    let r = app
        .patch_json(
            &format!("/api/v1/admin/users/{}", user.user_id),
            Some(&admin.access),
            json!({"role": "analyst"}),
        )
        .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.json()["role"], "analyst");
    let old = app.get("/api/v1/auth/me", Some(&user.access)).await;
    old.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(old.json()["code"], "session_revoked");
    let r = app
        .post_json(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": user.refresh}),
        )
        .await;
    r.expect(StatusCode::OK);
    assert_eq!(r.json()["user"]["role"], "analyst");
    let me = app
        .get(
            "/api/v1/auth/me",
            Some(r.json()["access_token"].as_str().unwrap()),
        )
        .await;
    me.expect(StatusCode::OK);
    assert_eq!(me.json()["role"], "analyst");
    // Admins cannot lock themselves out.
    app.patch_json(
        &format!("/api/v1/admin/users/{}", admin.user_id),
        Some(&admin.access),
        json!({"role": "viewer"}),
    )
    .await
    .expect(StatusCode::CONFLICT);
    app.patch_json(
        "/api/v1/admin/users/999999",
        Some(&admin.access),
        json!({"active": false}),
    )
    .await
    .expect(StatusCode::NOT_FOUND);
}

async fn deactivation_blocks_login_refresh_and_tokens(which: Which) {
    let app = TestApp::new(which).await;
    let user = app.register("heidi").await;
    let admin = app.admin().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.patch_json(
        &format!("/api/v1/admin/users/{}", user.user_id),
        Some(&admin.access),
        json!({"active": false}),
    )
    .await
    .expect(StatusCode::OK);
    let login = app
        .post_json(
            "/api/v1/auth/login",
            None,
            json!({"username": "heidi", "password": "a-good-password"}),
        )
        .await;
    login.expect(StatusCode::FORBIDDEN);
    assert_eq!(login.json()["code"], "account_inactive");
    app.post_json(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": user.refresh}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    app.get("/api/v1/auth/me", Some(&user.access))
        .await
        .expect(StatusCode::UNAUTHORIZED);
    let list = app.get("/api/v1/admin/users", Some(&admin.access)).await;
    list.expect(StatusCode::OK);
    let heidi = list.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "heidi")
        .cloned()
        .unwrap();
    assert_eq!(heidi["active"], false);
}

async fn key_rotation_keeps_users_logged_in(which: Which) {
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("k20240101T000000Z"), [1u8; 32]).unwrap();
    let dir = keys.path().to_str().unwrap().to_string();
    // The default publish delay (2 minutes): a new key verifies at once, signs later.
    let app = TestApp::with_args(which, &["--jwt-keys-dir", &dir]).await;
    let before = app.register("ivan").await;
    std::fs::write(keys.path().join("k20250101T000000Z"), [2u8; 32]).unwrap();
    assert!(app.state.auth.keys.reload());
    app.get("/api/v1/auth/me", Some(&before.access))
        .await
        .expect(StatusCode::OK);
    let during = app.login("ivan", "a-good-password").await;
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    assert_eq!(
        kid(&during.access),
        "k20240101T000000Z",
        "not yet published"
    );
    // A replica that has published the new key already: its tokens are accepted here.
    let other_replica =
        KeySet::from_keys(&[("k20250101T000000Z".to_string(), vec![2u8; 32])]).unwrap();
    let now = chrono::Utc::now().timestamp();
    let theirs = jwt::issue(
        &other_replica,
        app.state.auth.audience(),
        before.user_id,
        Role::Viewer,
        now,
        900,
    )
    .unwrap();
    app.get("/api/v1/auth/me", Some(&theirs))
        .await
        .expect(StatusCode::OK);
    // The grace period ends: the old key goes, tokens it signed stop working, the new key signs.
    std::fs::remove_file(keys.path().join("k20240101T000000Z")).unwrap();
    assert!(app.state.auth.keys.reload());
    for old in [&before.access, &during.access] {
        let r = app.get("/api/v1/auth/me", Some(old)).await;
        r.expect(StatusCode::UNAUTHORIZED);
        assert_eq!(r.json()["code"], "invalid_token");
    }
    let after = app.login("ivan", "a-good-password").await;
    assert_eq!(kid(&after.access), "k20250101T000000Z");
    app.get("/api/v1/auth/me", Some(&after.access))
        .await
        .expect(StatusCode::OK);
}

async fn bad_tokens_are_refused(which: Which) {
    let app = TestApp::new(which).await;
    let s = app.register("judy").await;
    let keys = app.state.auth.keys.current();
    let now = chrono::Utc::now().timestamp();
    let expired = jwt::issue(
        &keys,
        app.state.auth.audience(),
        s.user_id,
        Role::Viewer,
        now - 7200,
        900,
    )
    .unwrap();
    let r = app.get("/api/v1/auth/me", Some(&expired)).await;
    r.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["code"], "token_expired");

    let mut tampered = s.access.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    app.get("/api/v1/auth/me", Some(&tampered))
        .await
        .expect(StatusCode::UNAUTHORIZED);

    let stranger = KeySet::from_keys(&[("k20990101T000000Z".to_string(), vec![9u8; 32])]).unwrap();
    let wrong_kid = jwt::issue(
        &stranger,
        app.state.auth.audience(),
        s.user_id,
        Role::Admin,
        now,
        900,
    )
    .unwrap();
    app.get("/api/v1/auth/me", Some(&wrong_kid))
        .await
        .expect(StatusCode::UNAUTHORIZED);

    // Same kid as the server's key but a different secret: a forgery.
    let forged_set =
        KeySet::from_keys(&[(keys.signing_kid(now).to_owned(), vec![9u8; 32])]).unwrap();
    let forged = jwt::issue(
        &forged_set,
        app.state.auth.audience(),
        s.user_id,
        Role::Admin,
        now,
        900,
    )
    .unwrap();
    app.get("/api/v1/auth/me", Some(&forged))
        .await
        .expect(StatusCode::UNAUTHORIZED);

    // The server's own key and a valid signature, but another instance's audience.
    let elsewhere = jwt::Audience::new("football/staging");
    let theirs = jwt::issue(&keys, &elsewhere, s.user_id, Role::Admin, now, 900).unwrap();
    let r = app.get("/api/v1/auth/me", Some(&theirs)).await;
    r.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["code"], "invalid_token");

    let r = app.get("/api/v1/auth/me", Some(&s.refresh)).await;
    r.expect(StatusCode::UNAUTHORIZED);
    let r = app.get("/api/v1/auth/me", None).await;
    r.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["code"], "missing_token");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    // An access token is not a refresh token either.
    app.post_json(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": s.access}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
}

async fn login_is_rate_limited_with_retry_after(which: Which) {
    let app = TestApp::with_args(
        which,
        &[
            "--auth-rate-limit-per-minute",
            "2",
            "--auth-rate-limit-burst",
            "2",
        ],
    )
    .await;
    let attempt = || {
        app.post_json(
            "/api/v1/auth/login",
            None,
            json!({"username": "x-user", "password": "wrong-password"}),
        )
    };
    attempt().await.expect(StatusCode::UNAUTHORIZED);
    attempt().await.expect(StatusCode::UNAUTHORIZED);
    let limited = attempt().await;
    limited.expect(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json()["code"], "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Reads are on the general budget and unaffected.
    app.get("/health/live", None).await.expect(StatusCode::OK);
}

/// Two failures of one username and it waits, whatever address asks (the per-address limit is
/// off here) and even with the right password; other names are untouched; the wait ends and the
/// right password clears the count.
async fn failed_logins_back_off_per_account(which: Which) {
    let app = TestApp::with_args(which, &["--login-backoff-after", "2"]).await;
    let attempt = |username: String, password: &'static str| {
        app.post_json(
            "/api/v1/auth/login",
            None,
            json!({"username": username, "password": password}),
        )
    };
    // The first wait is one second: a stall longer than that between the second failure and
    // the next attempt cannot be judged, so another name tries (a back-off that never refuses
    // fails every round).
    let mut judged = None;
    for round in 0..20 {
        let name = format!("guessed{round}");
        app.register(&name).await;
        attempt(name.clone(), "wrong-password-1")
            .await
            .expect(StatusCode::UNAUTHORIZED);
        attempt(name.clone(), "wrong-password-2")
            .await
            .expect(StatusCode::UNAUTHORIZED);
        let failed_at = std::time::Instant::now();
        let refused = attempt(name.clone(), "a-good-password").await;
        if failed_at.elapsed() >= std::time::Duration::from_millis(800) {
            eprintln!(
                "{name}: not judged, the attempt took {:?}",
                failed_at.elapsed()
            );
            continue;
        }
        refused.expect(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.json()["code"], "login_backoff");
        assert_eq!(refused.headers["retry-after"], "1");
        judged = Some(name);
        break;
    }
    let name = judged.expect("every round stalled past the first wait");
    // Unknown names back off the same way: the answer does not tell who exists.
    for password in ["wrong-password-1", "wrong-password-2"] {
        attempt("nobody-here".into(), password)
            .await
            .expect(StatusCode::UNAUTHORIZED);
    }
    let failed_at = std::time::Instant::now();
    let unknown = attempt("nobody-here".into(), "wrong-password-3").await;
    if failed_at.elapsed() < std::time::Duration::from_millis(800) {
        unknown.expect(StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(unknown.json()["code"], "login_backoff");
    }
    app.register("bystander").await;
    app.login("bystander", "a-good-password").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.login(&name, "a-good-password").await;
    // Success cleared the count: one more failure is judged, not refused.
    attempt(name.clone(), "wrong-password-3")
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

async fn first_admin_follows_the_configured_password(which: Which) {
    let app = TestApp::new(which).await;
    app.login("admin", ADMIN_PASSWORD).await;
    let r = app
        .post_json(
            "/api/v1/auth/login",
            None,
            json!({"username": "admin", "password": "not-the-password"}),
        )
        .await;
    r.expect(StatusCode::UNAUTHORIZED);
}

/// The configured admin password changes (the Secret was rotated, a replica restarts): every
/// session of the admin ends at once, access and refresh tokens alike; the new password logs in
/// and its token works within the same second.
async fn a_password_change_ends_every_session(which: Which) {
    let app = TestApp::new(which).await;
    let before = app.admin().await;
    let mut auth = app.state.settings.auth.clone();
    auth.admin_password = fp_api_server::config::AdminPasswordSource::Env(
        fp_api_server::config::Secret::new("a-new-password-2026".to_owned()),
    );
    fp_api_server::auth::bootstrap::ensure_first_admin(
        &app.state.db,
        &app.state.auth.passwords,
        &auth,
    )
    .await
    .unwrap();
    // What every replica does when the data version moves.
    app.state
        .auth
        .reload_session_floors(&app.state.db)
        .await
        .unwrap();
    let old = app.get("/api/v1/auth/me", Some(&before.access)).await;
    old.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(old.json()["code"], "session_revoked");
    app.post_json(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": before.refresh}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    app.post_json(
        "/api/v1/auth/login",
        None,
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    let after = app.login("admin", "a-new-password-2026").await;
    app.get("/api/v1/auth/me", Some(&after.access))
        .await
        .expect(StatusCode::OK);
}

/// Each refresh used to grant a full TTL again, so a chain of refreshes never ended: the new
/// token now expires when the login's lifetime does, whichever comes first.
async fn refreshing_never_extends_a_session_past_its_lifetime(which: Which) {
    let app = TestApp::with_args(
        which,
        &[
            "--access-token-ttl",
            "1s",
            "--refresh-token-ttl",
            "60s",
            "--session-max-lifetime",
            "60s",
        ],
    )
    .await;
    let user = app.register("ivan").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = app
        .post_json(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": user.refresh}),
        )
        .await;
    r.expect(StatusCode::OK);
    // At least a second passed since the login (the pause above), so the capped token has less
    // than the full 60 s left; uncapped it would have exactly 60 again. Not judged against the
    // test's own clock: a stall after the server answered would make that look late.
    let left = r.json()["refresh_expires_in"].as_i64().unwrap();
    assert!(
        (1..60).contains(&left),
        "{left} s left after a refresh, more than a second into a 60 s lifetime"
    );
}

/// `--allow-registration false` (the production sample's `spec.auth.allowRegistration: false`):
/// nobody creates an account; logins work as before.
async fn registration_can_be_closed(which: Which) {
    let app = TestApp::with_args(which, &["--allow-registration", "false"]).await;
    let r = app
        .post_json(
            "/api/v1/auth/register",
            None,
            json!({"username": "mallory", "password": "a-good-password"}),
        )
        .await;
    r.expect(StatusCode::FORBIDDEN);
    assert_eq!(r.json()["code"], "registration_closed");
    app.post_json(
        "/api/v1/auth/login",
        None,
        json!({"username": "mallory", "password": "a-good-password"}),
    )
    .await
    .expect(StatusCode::UNAUTHORIZED);
    app.admin().await;
}

/// The configured admin deactivated (here straight in the database, as a second admin would):
/// the next start-up makes it an active admin again, and says so in the audit log.
async fn restoring_the_configured_admin_is_audited(which: Which) {
    let app = TestApp::new(which).await;
    let admin = app.admin().await;
    let db = &app.state.db;
    let count = async || -> i64 {
        let sql = "SELECT COUNT(*) FROM audit_log WHERE action = 'admin_restored'";
        match db {
            fp_api_server::db::Db::Postgres(pool) => {
                sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
            }
            fp_api_server::db::Db::Sqlite(pool) => {
                sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
            }
        }
    };
    let entry = fp_api_server::db::auth::AuditEntry {
        actor_id: None,
        actor: "test".to_owned(),
        action: "user_updated",
        target: "admin".to_owned(),
        details: json!({}),
    };
    fp_api_server::db::auth::update_user(
        db,
        admin.user_id,
        fp_api_server::db::auth::UserChange {
            role: None,
            active: Some(false),
        },
        &entry,
    )
    .await
    .unwrap();
    assert_eq!(count().await, 0);
    let auth = &app.state.settings.auth;
    fp_api_server::auth::bootstrap::ensure_first_admin(db, &app.state.auth.passwords, auth)
        .await
        .unwrap();
    assert_eq!(count().await, 1, "the restoration is audited");
    app.login("admin", ADMIN_PASSWORD).await;
    // Nothing to restore the next time: nothing audited.
    fp_api_server::auth::bootstrap::ensure_first_admin(db, &app.state.auth.passwords, auth)
        .await
        .unwrap();
    assert_eq!(count().await, 1);
}
