//! Access tokens: HS256 JWTs carrying the user id, the role and a `kid` header naming the key.

use jsonwebtoken::{Algorithm, Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};

use super::Role;
use super::keys::KeySet;

/// The `typ` claim of access tokens: a token of any other type is refused.
pub const ACCESS_TOKEN_TYPE: &str = "access";
pub const ISSUER: &str = "fp-api-server";

#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id, as text (RFC 7519).
    pub sub: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub typ: String,
    pub iss: String,
}

/// Who made an authenticated request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: i64,
    pub role: Role,
    pub issued_at: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token signed with an unknown key")]
    UnknownKey,
    #[error("invalid token signature or claims")]
    Invalid,
    #[error("token expired")]
    Expired,
    #[error("not an access token")]
    WrongType,
    #[error("session revoked; log in again")]
    Revoked,
    #[error("token signing failed")]
    Signing,
}

impl TokenError {
    /// The `code` of the 401 body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing_token",
            Self::Expired => "token_expired",
            Self::Revoked => "session_revoked",
            _ => "invalid_token",
        }
    }
}

/// Signs an access token valid from `now` (Unix seconds) for `ttl_secs`.
pub fn issue(
    keys: &KeySet,
    user_id: i64,
    role: Role,
    now: i64,
    ttl_secs: i64,
) -> Result<String, TokenError> {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(keys.signing_kid.clone());
    let claims = AccessClaims {
        sub: user_id.to_string(),
        role,
        iat: now,
        exp: now + ttl_secs,
        typ: ACCESS_TOKEN_TYPE.to_string(),
        iss: ISSUER.to_string(),
    };
    encode(&header, &claims, keys.signing_key()).map_err(|_| TokenError::Signing)
}

fn validation() -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.leeway = 5;
    v.validate_aud = false;
    v.set_issuer(&[ISSUER]);
    v.set_required_spec_claims(&["exp", "sub", "iss"]);
    v
}

static VALIDATION: std::sync::LazyLock<Validation> = std::sync::LazyLock::new(validation);

/// Verifies signature (with the key its `kid` names), expiry, issuer and type.
pub fn verify(keys: &KeySet, token: &str) -> Result<Principal, TokenError> {
    let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::Invalid);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let key = keys.verifying_key(&kid).ok_or(TokenError::UnknownKey)?;
    let data = decode::<AccessClaims>(token, key, &VALIDATION).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_) => TokenError::Malformed,
            _ => TokenError::Invalid,
        }
    })?;
    let claims = data.claims;
    if claims.typ != ACCESS_TOKEN_TYPE {
        return Err(TokenError::WrongType);
    }
    let user_id = claims.sub.parse().map_err(|_| TokenError::Invalid)?;
    Ok(Principal {
        user_id,
        role: claims.role,
        issued_at: claims.iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(kid: &str, byte: u8) -> KeySet {
        KeySet::from_keys(&[(kid.to_string(), vec![byte; 32])]).unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn round_trip() {
        let k = keys("k20240101T000000Z", 1);
        let token = issue(&k, 42, Role::Analyst, now(), 60).unwrap();
        let p = verify(&k, &token).unwrap();
        assert_eq!((p.user_id, p.role), (42, Role::Analyst));
    }

    #[test]
    fn rejects_expired_tampered_and_unknown_key() {
        let k = keys("k20240101T000000Z", 1);
        let expired = issue(&k, 1, Role::Viewer, now() - 3600, 60).unwrap();
        assert_eq!(verify(&k, &expired), Err(TokenError::Expired));

        let token = issue(&k, 1, Role::Viewer, now(), 60).unwrap();
        // Swap the payload for one claiming admin: the signature no longer matches.
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = AccessClaims {
            sub: "1".into(),
            role: Role::Admin,
            iat: now(),
            exp: now() + 60,
            typ: "access".into(),
            iss: ISSUER.into(),
        };
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&forged_claims).unwrap());
        let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert_eq!(verify(&k, &tampered), Err(TokenError::Invalid));

        let other = keys("k20250101T000000Z", 2);
        assert_eq!(verify(&other, &token), Err(TokenError::UnknownKey));
        // Same kid, different secret: a signature failure, not an unknown key.
        let impostor = keys("k20240101T000000Z", 3);
        assert_eq!(verify(&impostor, &token), Err(TokenError::Invalid));
        assert_eq!(verify(&k, "not-a-jwt"), Err(TokenError::Malformed));
    }

    #[test]
    fn rotation_keeps_old_tokens_valid() {
        let old = keys("k20240101T000000Z", 1);
        let token = issue(&old, 7, Role::Viewer, now(), 60).unwrap();
        let rotated = KeySet::from_keys(&[
            ("k20240101T000000Z".to_string(), vec![1; 32]),
            ("k20250101T000000Z".to_string(), vec![2; 32]),
        ])
        .unwrap();
        assert_eq!(verify(&rotated, &token).unwrap().user_id, 7);
        let fresh = issue(&rotated, 7, Role::Viewer, now(), 60).unwrap();
        assert_eq!(
            decode_header(&fresh).unwrap().kid.as_deref(),
            Some("k20250101T000000Z")
        );
    }
}
