//! OWASP API Security Top 10 (2023), API2 "Broken Authentication": the tokens an attacker makes
//! for himself. A viewer who knows the token format (and, worst case, the signing key's id)
//! forges admin tokens every way JWT libraries have been fooled before; every one must be a 401
//! on an admin route, while the same claims signed properly are accepted, so the test would
//! notice a server that refused everything. Also a replayed refresh token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use fp_api_server::auth::jwt::{ACCESS_TOKEN_TYPE, ISSUER};
use fp_api_server::cli::{Cli, Command};
use fp_api_server::config::{FileConfig, resolve_serve};
use fp_api_server::faults::Faults;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower::ServiceExt;

const KID: &str = "k20240101T000000Z";
const KEY: [u8; 32] = [7; 32];
const AUDIENCE: &str = "football/prod";

struct App {
    router: axum::Router,
    _dir: tempfile::TempDir,
}

impl App {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::create_dir(&keys).unwrap();
        std::fs::write(keys.join(KID), KEY).unwrap();
        let data = dir.path().join("data");
        let argv = [
            "fp-api-server",
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--jwt-keys-dir",
            keys.to_str().unwrap(),
            "--jwt-audience",
            AUDIENCE,
            "--key-publish-delay",
            "0s",
            "--demo-data",
            "off",
            "--background-evaluation",
            "false",
            "--password-hash-memory-kib",
            "1024",
            "--password-hash-iterations",
            "1",
            "--rate-limit-per-second",
            "0",
            "--auth-rate-limit-per-minute",
            "0",
        ];
        let Some(Command::Serve(args)) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not serve")
        };
        let settings = resolve_serve(
            &FileConfig::default(),
            &args,
            Some("an-admin-password".into()),
        )
        .unwrap();
        let db = fp_api_server::server::open_checked(&settings)
            .await
            .unwrap();
        let state = fp_api_server::server::build_state(settings, db, Faults::disabled())
            .await
            .unwrap();
        Self {
            router: fp_api_server::http::router(state),
            _dir: dir,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Registers `username` (a viewer) and returns the token response.
    async fn register(&self, username: &str) -> Value {
        let credentials = json!({"username": username, "password": format!("{username}-password")});
        let (status, body) = self
            .call("POST", "/api/v1/auth/register", None, Some(credentials))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        let body = json!({"refresh_token": refresh_token});
        self.call("POST", "/api/v1/auth/refresh", None, Some(body))
            .await
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Admin claims for `user_id`, as the server would write them.
fn admin_claims(user_id: i64) -> Value {
    json!({
        "sub": user_id.to_string(), "role": "admin", "iat": now(), "exp": now() + 600,
        "typ": ACCESS_TOKEN_TYPE, "iss": ISSUER, "aud": AUDIENCE,
    })
}

fn signed(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &[u8]) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key).unwrap()).unwrap()
}

/// A token written by hand: any header, any claims, any signature bytes.
fn raw(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(header),
        part(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn with(claims: &Value, key: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    match value {
        Value::Null => {
            claims.as_object_mut().unwrap().remove(key);
        }
        other => claims[key] = other,
    }
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_access_tokens_are_refused() {
    let app = App::start().await;
    let id = app.register("mallory").await["user"]["id"]
        .as_i64()
        .unwrap();
    let admin_route = "/api/v1/admin/users";
    let claims = admin_claims(id);

    // The control: the same claims, signed as the server signs, are an admin's token. If this
    // were refused, every refusal below would prove nothing.
    let genuine = signed(Algorithm::HS256, Some(KID), &claims, &KEY);
    let (status, _) = app.call("GET", admin_route, Some(&genuine), None).await;
    assert_eq!(status, StatusCode::OK, "the genuine token");

    let hs256_header = json!({"alg": "HS256", "typ": "JWT", "kid": KID});
    let forgeries: Vec<(&str, String)> = vec![
        (
            "alg none, no signature",
            raw(
                &json!({"alg": "none", "typ": "JWT", "kid": KID}),
                &claims,
                b"",
            ),
        ),
        (
            "alg None (capitalised)",
            raw(&json!({"alg": "None", "kid": KID}), &claims, b""),
        ),
        (
            "HS512 with the real key",
            signed(Algorithm::HS512, Some(KID), &claims, &KEY),
        ),
        (
            "HS384 with the real key",
            signed(Algorithm::HS384, Some(KID), &claims, &KEY),
        ),
        // Key confusion: an RS256 header with an HMAC signature made with the key bytes.
        ("RS256 header, HMAC signature", {
            let token = signed(Algorithm::HS256, Some(KID), &claims, &KEY);
            let signature = token.rsplit('.').next().unwrap().to_owned();
            let header = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": KID}).to_string());
            let body = token.split('.').nth(1).unwrap().to_owned();
            format!("{header}.{body}.{signature}")
        }),
        (
            "another key",
            signed(Algorithm::HS256, Some(KID), &claims, &[8; 32]),
        ),
        ("an empty key", raw(&hs256_header, &claims, b"")),
        ("no kid", signed(Algorithm::HS256, None, &claims, &KEY)),
        (
            "unknown kid",
            signed(Algorithm::HS256, Some("k20990101T000000Z"), &claims, &KEY),
        ),
        (
            "kid as a path",
            signed(Algorithm::HS256, Some("../../etc/passwd"), &claims, &KEY),
        ),
        (
            "wrong issuer",
            signed(
                Algorithm::HS256,
                Some(KID),
                &with(&claims, "iss", json!("someone-else")),
                &KEY,
            ),
        ),
        (
            "no issuer",
            signed(
                Algorithm::HS256,
                Some(KID),
                &with(&claims, "iss", Value::Null),
                &KEY,
            ),
        ),
        (
            "another instance's audience",
            signed(
                Algorithm::HS256,
                Some(KID),
                &with(&claims, "aud", json!("football/staging")),
                &KEY,
            ),
        ),
        (
            "an audience list with ours elsewhere",
            signed(
                Algorithm::HS256,
                Some(KID),
                &with(&claims, "aud", json!(["football/staging"])),
                &KEY,
            ),
        ),
        (
            "no audience",
            signed(
                Algorithm::HS256,
                Some(KID),
                &with(&claims, "aud", Value::Null),
                &KEY,
            ),
        ),
        (
            "expired",
            signed(
                Algorithm::HS256,
                Some(KID),
                &with(
                    &with(&claims, "exp", json!(now() - 3600)),
                    "iat",
                    json!(now() - 7200),
                ),
                &KEY,
            ),
        ),
        (
            "no expiry",
            signed(
                Algorithm::HS256,
                Some(KID),
                &with(&claims, "exp", Value::Null),
                &KEY,
            ),
        ),
        (
            "a refresh-type token",
            signed(
                Algorithm::HS256,
                Some(KID),
                &with(&claims, "typ", json!("refresh")),
                &KEY,
            ),
        ),
        (
            "no type",
            signed(
                Algorithm::HS256,
                Some(KID),
                &with(&claims, "typ", Value::Null),
                &KEY,
            ),
        ),
        (
            "a subject that is no id",
            signed(
                Algorithm::HS256,
                Some(KID),
                &with(&claims, "sub", json!("admin")),
                &KEY,
            ),
        ),
        (
            "an unknown role",
            signed(
                Algorithm::HS256,
                Some(KID),
                &with(&claims, "role", json!("root")),
                &KEY,
            ),
        ),
        (
            "a truncated signature",
            genuine[..genuine.len() - 4].to_owned(),
        ),
        ("two tokens glued", format!("{genuine}.{genuine}")),
    ];
    let mut accepted = Vec::new();
    for (what, token) in &forgeries {
        let (status, body) = app.call("GET", admin_route, Some(token), None).await;
        if status != StatusCode::UNAUTHORIZED {
            accepted.push(format!("{what}: {status} {body}"));
        } else {
            assert!(body["code"].is_string(), "{what}: {body}");
        }
    }
    assert!(
        accepted.is_empty(),
        "forged tokens not refused with 401:\n{}",
        accepted.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_refresh_token_ends_the_login() {
    let app = App::start().await;
    let login = app.register("victim").await;
    let stolen = login["refresh_token"].as_str().unwrap();
    // The victim refreshes; the attacker replays the copy he stole.
    let (status, victims) = app.refresh(stolen).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.refresh(stolen).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // Reuse revokes the whole family: the victim's current token is dead too, so whoever holds
    // a copy must log in again with the password.
    let current = victims["refresh_token"].as_str().unwrap();
    let (status, _) = app.refresh(current).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
