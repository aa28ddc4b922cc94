//! The auth service: token checks on the hot path, and the login / register / refresh /
//! logout flows on top of the key store, the password hasher and the database.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::http::HeaderValue;

use super::backoff::LoginBackoff;
use super::jwt::{self, Principal, TokenError};
use super::keys::KeyStore;
use super::password::{PasswordError, PasswordHasher};
use super::{CredentialError, Role, refresh, validate_password, validate_username};
use crate::config::AuthSettings;
use crate::db::auth::{self as users, RefreshOutcome, UserRow};
use crate::db::{Db, DbError, now_unix};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("account is deactivated")]
    Inactive,
    #[error("too many failed logins for this account; retry in {0:?}")]
    Backoff(std::time::Duration),
    #[error("username is taken")]
    UsernameTaken,
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("refresh token is not valid: {0}")]
    Refresh(&'static str),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What login, register and refresh hand out.
#[derive(Clone, Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub access_expires_in: i64,
    pub refresh_token: String,
    pub refresh_expires_in: i64,
    pub user: UserRow,
}

pub struct AuthService {
    pub keys: KeyStore,
    pub passwords: PasswordHasher,
    /// user id -> Unix second before which that user's access tokens are refused.
    session_floors: ArcSwap<HashMap<i64, i64>>,
    access_ttl: i64,
    refresh_ttl: i64,
    /// A refresh family's lifetime from its login, however often it is refreshed.
    session_max_lifetime: i64,
    /// The `aud` of every token this server issues and accepts.
    audience: jwt::Audience,
    login_backoff: LoginBackoff,
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl AuthService {
    pub fn new(keys: KeyStore, passwords: PasswordHasher, settings: &AuthSettings) -> Self {
        Self {
            keys,
            passwords,
            session_floors: ArcSwap::from_pointee(HashMap::new()),
            access_ttl: secs(settings.access_token_ttl),
            refresh_ttl: secs(settings.refresh_token_ttl),
            session_max_lifetime: secs(settings.session_max_lifetime),
            audience: jwt::Audience::new(&settings.jwt_audience),
            login_backoff: LoginBackoff::new(
                settings.login_backoff_after,
                settings.login_backoff_max,
            ),
        }
    }

    /// Periodic: forgets failed logins too old to count.
    pub fn housekeeping(&self) {
        self.login_backoff.housekeeping(Instant::now());
    }

    pub fn audience(&self) -> &jwt::Audience {
        &self.audience
    }

    pub fn access_ttl_secs(&self) -> i64 {
        self.access_ttl
    }

    /// The hot path: `Authorization: Bearer <jwt>` to a principal, with no database access.
    pub fn authenticate(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<Principal, TokenError> {
        let value = authorization.ok_or(TokenError::Missing)?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::Malformed)?;
        let principal = jwt::verify(&self.keys.current(), &self.audience, token)?;
        // A floor ends every token issued in its second too (`<=`): tokens issued after it in
        // that second carry the next second as their issue time (see `issued_at`).
        if let Some(floor) = self.session_floors.load().get(&principal.user_id)
            && principal.issued_at <= *floor
        {
            return Err(TokenError::Revoked);
        }
        Ok(principal)
    }

    /// Reloads the users whose sessions ended recently enough that their tokens may still be
    /// unexpired (called on every data-version change and at start-up).
    pub async fn reload_session_floors(&self, db: &Db) -> Result<(), DbError> {
        let since = now_unix() - self.access_ttl - 60;
        let floors: HashMap<i64, i64> = users::session_floors(db, since)
            .await?
            .into_iter()
            .collect();
        self.session_floors.store(Arc::new(floors));
        Ok(())
    }

    /// Records a floor locally at once (the replica that made the change need not wait).
    pub fn end_sessions_locally(&self, user_id: i64, from: i64) {
        let mut floors = HashMap::clone(&self.session_floors.load());
        floors.insert(user_id, from);
        self.session_floors.store(Arc::new(floors));
    }

    /// The issue time of a token for `user`: now, or the second after the user's session floor
    /// when that is this second, so a token issued right after a revocation is not revoked too.
    fn issued_at(user: &UserRow, now: i64) -> i64 {
        now.max(user.sessions_valid_from + 1).min(now + 1)
    }

    fn access_token(&self, user: &UserRow, role: Role, now: i64) -> Result<String, TokenError> {
        let issued_at = Self::issued_at(user, now);
        jwt::issue(
            &self.keys.current(),
            &self.audience,
            user.id,
            role,
            issued_at,
            self.access_ttl,
        )
    }

    async fn issue_pair(
        &self,
        db: &Db,
        user: UserRow,
        family: &str,
    ) -> Result<TokenPair, AuthError> {
        let role = user.role()?;
        let now = now_unix();
        let access_token = self.access_token(&user, role, now)?;
        let refresh_token = refresh::generate();
        users::insert_refresh_token(
            db,
            user.id,
            family,
            &refresh::hash(&refresh_token),
            now + self.refresh_ttl,
        )
        .await?;
        Ok(TokenPair {
            access_token,
            access_expires_in: self.access_ttl,
            refresh_token,
            refresh_expires_in: self.refresh_ttl,
            user,
        })
    }

    pub async fn login(
        &self,
        db: &Db,
        username: &str,
        password: String,
    ) -> Result<TokenPair, AuthError> {
        let username = username.trim().to_ascii_lowercase();
        // Judged before the password: a name under back-off costs no hashing and no query.
        self.login_backoff
            .check(&username, Instant::now())
            .map_err(AuthError::Backoff)?;
        let failed = || {
            self.login_backoff.failed(&username, Instant::now());
            AuthError::InvalidCredentials
        };
        // An over-long password cannot match (registration refuses it): skip the hashing work.
        if password.chars().count() > 128 {
            return Err(failed());
        }
        let user = users::user_by_username(db, &username).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        // Unknown users still cost one verification, so timing does not reveal who exists.
        if !self.passwords.verify(password, stored).await? {
            return Err(failed());
        }
        let user = user.ok_or_else(failed)?;
        self.login_backoff.succeeded(&username);
        if !user.active {
            return Err(AuthError::Inactive);
        }
        self.issue_pair(db, user, &users::new_family(now_unix()))
            .await
    }

    /// Registration always creates a viewer.
    pub async fn register(
        &self,
        db: &Db,
        username: &str,
        password: String,
    ) -> Result<TokenPair, AuthError> {
        // Not trimmed: what the document's pattern refuses, registration refuses.
        let username = username.to_ascii_lowercase();
        validate_username(&username)?;
        validate_password(&password)?;
        if users::user_by_username(db, &username).await?.is_some() {
            return Err(AuthError::UsernameTaken);
        }
        let hash = self.passwords.hash(password).await?;
        let user = match users::create_user(db, &username, &hash, Role::Viewer).await {
            Ok(user) => user,
            Err(DbError::Conflict(_)) => return Err(AuthError::UsernameTaken),
            Err(e) => return Err(e.into()),
        };
        self.issue_pair(db, user, &users::new_family(now_unix()))
            .await
    }

    pub async fn refresh(&self, db: &Db, token: &str) -> Result<TokenPair, AuthError> {
        if !refresh::looks_valid(token) {
            return Err(AuthError::Refresh("unknown token"));
        }
        let new_token = refresh::generate();
        let now = now_unix();
        let outcome = users::rotate_refresh_token(
            db,
            &refresh::hash(token),
            &refresh::hash(&new_token),
            now + self.refresh_ttl,
            self.session_max_lifetime,
        )
        .await?;
        let (user_id, expires_at) = match outcome {
            RefreshOutcome::Rotated {
                user_id,
                expires_at,
            } => (user_id, expires_at),
            RefreshOutcome::LifetimeOver => {
                return Err(AuthError::Refresh(
                    "the session reached its maximum lifetime; log in again",
                ));
            }
            RefreshOutcome::Reused => {
                tracing::warn!("refresh token reuse detected; its family is revoked");
                return Err(AuthError::Refresh(
                    "token reuse detected; all sessions of this login are revoked",
                ));
            }
            RefreshOutcome::Expired => return Err(AuthError::Refresh("token expired")),
            RefreshOutcome::Unknown => return Err(AuthError::Refresh("unknown token")),
            RefreshOutcome::Inactive => return Err(AuthError::Inactive),
        };
        let user = users::user_by_id(db, user_id)
            .await?
            .ok_or(AuthError::Refresh("unknown user"))?;
        let role = user.role()?;
        let access_token = self.access_token(&user, role, now)?;
        Ok(TokenPair {
            access_token,
            access_expires_in: self.access_ttl,
            refresh_token: new_token,
            refresh_expires_in: expires_at - now,
            user,
        })
    }

    /// Revokes the presented refresh token's family; unknown tokens are not an error (idempotent).
    pub async fn logout(&self, db: &Db, token: &str) -> Result<(), AuthError> {
        if refresh::looks_valid(token) {
            users::revoke_family_of(db, &refresh::hash(token)).await?;
        }
        Ok(())
    }
}
