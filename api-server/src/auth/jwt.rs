//! Access tokens: HS256 JWTs carrying the user id, the role and a `kid` header naming the key.
//! A token that verified is remembered by its key set (see [`VerifiedTokens`]): a client sends
//! the same token with every request, and decoding it again each time was about a fifth of the
//! server's CPU on the cached prediction read (docs/performance.md).

use std::collections::HashMap;
use std::sync::RwLock;

use jsonwebtoken::{
    Algorithm, Header, Validation, decode, decode_header, encode, get_current_timestamp,
};
use serde::{Deserialize, Serialize};

use super::Role;
use super::keys::KeySet;

/// The `typ` claim of access tokens: a token of any other type is refused.
pub const ACCESS_TOKEN_TYPE: &str = "access";
pub const ISSUER: &str = "fp-api-server";
/// The audience of a server that was given none (the operator names each instance).
pub const DEFAULT_AUDIENCE: &str = crate::config::DEFAULT_JWT_AUDIENCE;

#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id, as text (RFC 7519).
    pub sub: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub typ: String,
    pub iss: String,
    /// Which server the token is for: a token of another instance (another FootballPrediction
    /// that happens to share signing keys) is refused.
    pub aud: String,
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

/// Signs an access token for `audience` valid from `now` (Unix seconds) for `ttl_secs`.
pub fn issue(
    keys: &KeySet,
    audience: &Audience,
    user_id: i64,
    role: Role,
    now: i64,
    ttl_secs: i64,
) -> Result<String, TokenError> {
    let (kid, signing_key) = keys.signing_key(now);
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    let claims = AccessClaims {
        sub: user_id.to_string(),
        role,
        iat: now,
        exp: now + ttl_secs,
        typ: ACCESS_TOKEN_TYPE.to_string(),
        iss: ISSUER.to_string(),
        aud: audience.name.clone(),
    };
    encode(&header, &claims, signing_key).map_err(|_| TokenError::Signing)
}

/// Seconds an access token is still accepted after its `exp` (clock skew between replicas).
const LEEWAY_SECS: u64 = 5;

/// This server's audience (`aud`) and the validation that requires it.
#[derive(Clone, Debug)]
pub struct Audience {
    name: String,
    validation: Validation,
}

impl Audience {
    pub fn new(name: &str) -> Self {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = LEEWAY_SECS;
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[name]);
        v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        Self {
            name: name.to_owned(),
            validation: v,
        }
    }
}

/// The expiry rule jsonwebtoken applies, for remembered tokens (`exp` and `now` in Unix seconds).
fn is_expired(exp: u64, now: u64) -> bool {
    exp < now.saturating_sub(LEEWAY_SECS)
}

/// A token that passed [`verify`], and when it expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Verified {
    principal: Principal,
    exp: u64,
}

/// At most this many remembered tokens per key set (about 250 bytes each); when full, the
/// memory starts over, which only costs the next requests a full verification.
const MAX_REMEMBERED: usize = 4096;

/// Tokens one key set verified. Only tokens that passed every check are remembered, keyed by
/// their full text (a changed byte is another key, verified from scratch); a hit still applies
/// the expiry check. It lives in the [`KeySet`], so a reloaded key set (a key removed) starts
/// empty. Session revocation is checked by the caller on every request, hit or not.
#[derive(Debug, Default)]
pub struct VerifiedTokens {
    by_token: RwLock<HashMap<Box<str>, Verified>>,
}

impl VerifiedTokens {
    /// The outcome for a remembered token at `now`, or `None` when it is not remembered.
    fn recall(&self, token: &str, now: u64) -> Option<Result<Principal, TokenError>> {
        let seen = *self.by_token.read().ok()?.get(token)?;
        Some(if is_expired(seen.exp, now) {
            Err(TokenError::Expired)
        } else {
            Ok(seen.principal)
        })
    }

    fn remember(&self, token: &str, verified: Verified) {
        // A poisoned lock only means a panic elsewhere; not remembering is always safe.
        if let Ok(mut map) = self.by_token.write() {
            if map.len() >= MAX_REMEMBERED {
                map.clear();
            }
            map.insert(token.into(), verified);
        }
    }

    pub fn len(&self) -> usize {
        self.by_token.read().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Verifies signature (with the key its `kid` names), expiry, issuer, audience and type; a token
/// this key set verified before is only checked for expiry (a process has one audience).
pub fn verify(keys: &KeySet, audience: &Audience, token: &str) -> Result<Principal, TokenError> {
    if let Some(outcome) = keys.verified().recall(token, get_current_timestamp()) {
        return outcome;
    }
    let verified = verify_signed(keys, audience, token)?;
    keys.verified().remember(token, verified);
    Ok(verified.principal)
}

/// The full check: header, key, signature, claims.
fn verify_signed(keys: &KeySet, audience: &Audience, token: &str) -> Result<Verified, TokenError> {
    let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::Invalid);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let key = keys.verifying_key(&kid).ok_or(TokenError::UnknownKey)?;
    let data = decode::<AccessClaims>(token, key, &audience.validation).map_err(|e| {
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
    // jsonwebtoken refuses an `exp` that is not a u64, so this never fails on a verified token.
    let exp = u64::try_from(claims.exp).map_err(|_| TokenError::Invalid)?;
    Ok(Verified {
        principal: Principal {
            user_id,
            role: claims.role,
            issued_at: claims.iat,
        },
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aud() -> Audience {
        Audience::new(DEFAULT_AUDIENCE)
    }

    fn keys(kid: &str, byte: u8) -> KeySet {
        KeySet::from_keys(&[(kid.to_string(), vec![byte; 32])]).unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn round_trip() {
        let k = keys("k20240101T000000Z", 1);
        let token = issue(&k, &aud(), 42, Role::Analyst, now(), 60).unwrap();
        let p = verify(&k, &aud(), &token).unwrap();
        assert_eq!((p.user_id, p.role), (42, Role::Analyst));
    }

    #[test]
    fn rejects_expired_tampered_and_unknown_key() {
        let k = keys("k20240101T000000Z", 1);
        let expired = issue(&k, &aud(), 1, Role::Viewer, now() - 3600, 60).unwrap();
        assert_eq!(verify(&k, &aud(), &expired), Err(TokenError::Expired));

        let token = issue(&k, &aud(), 1, Role::Viewer, now(), 60).unwrap();
        // Swap the payload for one claiming admin: the signature no longer matches.
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = AccessClaims {
            sub: "1".into(),
            role: Role::Admin,
            iat: now(),
            exp: now() + 60,
            typ: "access".into(),
            iss: ISSUER.into(),
            aud: DEFAULT_AUDIENCE.into(),
        };
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&forged_claims).unwrap());
        let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert_eq!(verify(&k, &aud(), &tampered), Err(TokenError::Invalid));

        let other = keys("k20250101T000000Z", 2);
        assert_eq!(verify(&other, &aud(), &token), Err(TokenError::UnknownKey));
        // Same kid, different secret: a signature failure, not an unknown key.
        let impostor = keys("k20240101T000000Z", 3);
        assert_eq!(verify(&impostor, &aud(), &token), Err(TokenError::Invalid));
        assert_eq!(verify(&k, &aud(), "not-a-jwt"), Err(TokenError::Malformed));
    }

    #[test]
    fn a_token_for_another_instance_is_refused() {
        // Two FootballPredictions that share signing keys (one Secret named by both) must not
        // accept each other's tokens.
        let k = keys("k20240101T000000Z", 1);
        let theirs = Audience::new("football/staging");
        let ours = Audience::new("football/prod");
        let token = issue(&k, &theirs, 1, Role::Admin, now(), 60).unwrap();
        assert_eq!(verify(&k, &ours, &token), Err(TokenError::Invalid));
        assert_eq!(verify(&k, &theirs, &token).unwrap().role, Role::Admin);
    }

    #[test]
    fn remembered_tokens_expire_by_the_same_rule() {
        // jsonwebtoken's rule, which a remembered token repeats: expired once exp < now - leeway.
        assert!(!is_expired(100, 105));
        assert!(is_expired(100, 106));
        assert!(!is_expired(100, 0));
        let k = keys("k20240101T000000Z", 1);
        // Expired 2 s ago, inside the leeway: accepted fresh and from memory.
        let nearly = issue(&k, &aud(), 3, Role::Viewer, now() - 62, 60).unwrap();
        assert_eq!(verify(&k, &aud(), &nearly).unwrap().user_id, 3);
        assert_eq!(k.verified().len(), 1);
        assert_eq!(verify(&k, &aud(), &nearly).unwrap().user_id, 3);
        // The same token a minute later: refused from memory, as a full check would.
        let later = get_current_timestamp() + 60;
        assert_eq!(
            k.verified().recall(&nearly, later),
            Some(Err(TokenError::Expired))
        );
    }

    #[test]
    fn only_tokens_that_passed_are_remembered() {
        let k = keys("k20240101T000000Z", 1);
        let token = issue(&k, &aud(), 5, Role::Analyst, now(), 60).unwrap();
        assert!(k.verified().is_empty());
        assert_eq!(verify(&k, &aud(), &token).unwrap().role, Role::Analyst);
        assert_eq!(k.verified().len(), 1);
        // One signature character changed: another text, so a full check, which fails.
        let mut chars: Vec<char> = token.chars().collect();
        let i = chars.len() - 10;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert!(verify(&k, &aud(), &tampered).is_err());
        let expired = issue(&k, &aud(), 5, Role::Viewer, now() - 3600, 60).unwrap();
        assert_eq!(verify(&k, &aud(), &expired), Err(TokenError::Expired));
        assert_eq!(k.verified().len(), 1);
        // A reloaded set without the key starts empty: the remembered token does not carry over.
        let reloaded = keys("k20250101T000000Z", 2);
        assert_eq!(
            verify(&reloaded, &aud(), &token),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn memory_is_bounded() {
        let memory = VerifiedTokens::default();
        let seen = Verified {
            principal: Principal {
                user_id: 1,
                role: Role::Viewer,
                issued_at: 0,
            },
            exp: u64::MAX,
        };
        for i in 0..=MAX_REMEMBERED {
            memory.remember(&format!("t{i}"), seen);
        }
        assert!(memory.len() <= MAX_REMEMBERED);
        assert_eq!(
            memory.recall(&format!("t{MAX_REMEMBERED}"), 0),
            Some(Ok(seen.principal))
        );
        assert_eq!(memory.recall("unknown", 0), None);
    }

    #[test]
    fn rotation_keeps_old_tokens_valid() {
        let old = keys("k20240101T000000Z", 1);
        let token = issue(&old, &aud(), 7, Role::Viewer, now(), 60).unwrap();
        let rotated = KeySet::from_keys(&[
            ("k20240101T000000Z".to_string(), vec![1; 32]),
            ("k20250101T000000Z".to_string(), vec![2; 32]),
        ])
        .unwrap();
        assert_eq!(verify(&rotated, &aud(), &token).unwrap().user_id, 7);
        let fresh = issue(&rotated, &aud(), 7, Role::Viewer, now(), 60).unwrap();
        assert_eq!(
            decode_header(&fresh).unwrap().kid.as_deref(),
            Some("k20250101T000000Z")
        );
    }
}
