//! Users, refresh tokens and the audit log.

use serde::Serialize;

use super::{Db, DbError, DbResult, now_unix, version, with_db};
use crate::accounts::Role;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub active: bool,
    pub sessions_valid_from: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl UserRow {
    pub fn role(&self) -> DbResult<Role> {
        Role::parse(&self.role).map_err(|e| DbError::Corrupt(e.to_string()))
    }
}

const USER_COLUMNS: &str =
    "id, username, password_hash, role, active, sessions_valid_from, created_at, updated_at";

/// One audited action of an analyst or admin.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub actor_id: Option<i64>,
    pub actor: String,
    pub action: &'static str,
    pub target: String,
    pub details: serde_json::Value,
}

pub const AUDIT_SQL: &str = "INSERT INTO audit_log (at, actor_id, actor, action, target, details) \
                             VALUES ($1, $2, $3, $4, $5, $6)";

/// Revokes every refresh token of a user (deactivation, password change).
macro_rules! revoke_user_tokens_sql {
    ($exec:expr, $now:expr, $user:expr) => {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind($now)
        .bind($user)
        .execute($exec)
    };
}

/// Runs [`AUDIT_SQL`] for `$entry` on executor `$exec` (inside the caller's transaction).
macro_rules! audit {
    ($exec:expr, $now:expr, $entry:expr) => {
        sqlx::query($crate::db::auth::AUDIT_SQL)
            .bind($now)
            .bind($entry.actor_id)
            .bind($entry.actor.as_str())
            .bind($entry.action)
            .bind($entry.target.as_str())
            .bind($entry.details.to_string())
            .execute($exec)
    };
}

pub async fn record_audit(db: &Db, entry: &AuditEntry) -> DbResult<()> {
    let now = now_unix();
    with_db!(db, pool => { audit!(pool, now, entry).await?; });
    Ok(())
}

/// Creates a user; a taken username is [`DbError::Conflict`].
pub async fn create_user(
    db: &Db,
    username: &str,
    password_hash: &str,
    role: Role,
) -> DbResult<UserRow> {
    let now = now_unix();
    let sql = format!(
        "INSERT INTO users (username, password_hash, role, active, sessions_valid_from, created_at, updated_at) \
         VALUES ($1, $2, $3, TRUE, 0, $4, $4) RETURNING {USER_COLUMNS}"
    );
    let row: UserRow = with_db!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(username)
            .bind(password_hash)
            .bind(role.as_str())
            .bind(now)
            .fetch_one(pool)
            .await?
    });
    Ok(row)
}

pub async fn user_by_username(db: &Db, username: &str) -> DbResult<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
    let row = with_db!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(username).fetch_optional(pool).await?
    });
    Ok(row)
}

pub async fn user_by_id(db: &Db, id: i64) -> DbResult<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row = with_db!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
    });
    Ok(row)
}

/// Users with id greater than `after`, by id (keyset pagination).
pub async fn list_users(db: &Db, after: i64, limit: i64) -> DbResult<Vec<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2");
    let rows = with_db!(db, pool => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(after).bind(limit).fetch_all(pool).await?
    });
    Ok(rows)
}

/// Replaces a user's password and ends every session that user has: access tokens issued up to
/// now are refused (every replica learns via the data version) and every refresh token is
/// revoked, so whoever knew the old password keeps nothing.
pub async fn set_password(db: &Db, id: i64, password_hash: &str) -> DbResult<()> {
    let now = now_unix();
    with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        sqlx::query(
            "UPDATE users SET password_hash = $1, sessions_valid_from = $2, updated_at = $2 WHERE id = $3",
        )
        .bind(password_hash)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        revoke_user_tokens_sql!(&mut *tx, now, id).await?;
        sqlx::query(version::BUMP_SQL).bind(now).fetch_one(&mut *tx).await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Creates the first admin unless the username exists (concurrent replicas: first one wins).
/// Returns whether this call created it.
pub async fn create_admin_if_missing(
    db: &Db,
    username: &str,
    password_hash: &str,
) -> DbResult<bool> {
    let now = now_unix();
    let created = with_db!(db, pool => {
        sqlx::query(
            "INSERT INTO users (username, password_hash, role, active, sessions_valid_from, created_at, updated_at) \
             VALUES ($1, $2, 'admin', TRUE, 0, $3, $3) ON CONFLICT (username) DO NOTHING",
        )
        .bind(username)
        .bind(password_hash)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()
    });
    Ok(created == 1)
}

/// Makes sure the configured admin has the admin role and is active (it is the way back in when
/// every other admin is gone). Returns whether it had to restore it; that is audited as
/// `admin_restored` with what the account was, so it is never silent.
pub async fn ensure_admin_role(db: &Db, user: &UserRow) -> DbResult<bool> {
    let now = now_unix();
    let entry = AuditEntry {
        actor_id: None,
        actor: "start-up".to_owned(),
        action: "admin_restored",
        target: user.username.clone(),
        details: serde_json::json!({"role": user.role, "active": user.active}),
    };
    let restored = with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        let changed = sqlx::query(
            "UPDATE users SET role = 'admin', active = TRUE, updated_at = $1 \
             WHERE id = $2 AND (role <> 'admin' OR active = FALSE)",
        )
        .bind(now)
        .bind(user.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            audit!(&mut *tx, now, &entry).await?;
        }
        tx.commit().await?;
        changed == 1
    });
    Ok(restored)
}

/// A change an admin makes to a user.
#[derive(Clone, Copy, Debug, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub active: Option<bool>,
}

/// Applies `change`; a role change or deactivation ends the user's sessions at once: access
/// tokens issued before now are refused (every replica learns via the data version) and, on
/// deactivation, refresh tokens are revoked. Audited in the same transaction.
pub async fn update_user(
    db: &Db,
    id: i64,
    change: UserChange,
    audit_entry: &AuditEntry,
) -> DbResult<Option<UserRow>> {
    let now = now_unix();
    let select = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    let row: Option<UserRow> = with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        let current: Option<UserRow> = sqlx::query_as(sqlx::AssertSqlSafe(select.clone()))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        match current {
            None => None,
            Some(user) => {
                let role = change.role.map_or(user.role.clone(), |r| r.as_str().to_string());
                let active = change.active.unwrap_or(user.active);
                let ends_sessions = role != user.role || (user.active && !active);
                let valid_from = if ends_sessions { now } else { user.sessions_valid_from };
                sqlx::query(
                    "UPDATE users SET role = $1, active = $2, sessions_valid_from = $3, updated_at = $4 WHERE id = $5",
                )
                .bind(&role)
                .bind(active)
                .bind(valid_from)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if user.active && !active {
                    revoke_user_tokens_sql!(&mut *tx, now, id).await?;
                }
                audit!(&mut *tx, now, audit_entry).await?;
                if ends_sessions {
                    sqlx::query(version::BUMP_SQL).bind(now).fetch_one(&mut *tx).await?;
                }
                let updated: UserRow = sqlx::query_as(sqlx::AssertSqlSafe(select))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Some(updated)
            }
        }
    });
    Ok(row)
}

/// Users whose sessions were ended after `since`: `(user id, sessions_valid_from)`.
pub async fn session_floors(db: &Db, since: i64) -> DbResult<Vec<(i64, i64)>> {
    let rows = with_db!(db, pool => {
        sqlx::query_as("SELECT id, sessions_valid_from FROM users WHERE sessions_valid_from > $1")
            .bind(since)
            .fetch_all(pool)
            .await?
    });
    Ok(rows)
}

pub async fn insert_refresh_token(
    db: &Db,
    user_id: i64,
    family_id: &str,
    token_hash: &str,
    expires_at: i64,
) -> DbResult<()> {
    let now = now_unix();
    with_db!(db, pool => {
        sqlx::query(
            "INSERT INTO refresh_tokens (user_id, family_id, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user_id)
        .bind(family_id)
        .bind(token_hash)
        .bind(now)
        .bind(expires_at)
        .execute(pool)
        .await?;
    });
    Ok(())
}

macro_rules! revoke_family_sql {
    ($exec:expr, $now:expr, $family:expr) => {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind($now)
        .bind($family)
        .execute($exec)
    };
}

/// A new refresh family's id: when it started (Unix seconds, hex) and 16 random bytes. The start
/// bounds how long rotation can extend the family, however often it is refreshed.
pub fn new_family(now: i64) -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    format!("{now:x}-{}", hex::encode(bytes))
}

/// When the family started, from its id (`None` for ids made before the start was part of them).
pub fn family_started_at(family_id: &str) -> Option<i64> {
    let (start, random) = family_id.split_once('-')?;
    (random.len() == 32)
        .then(|| i64::from_str_radix(start, 16).ok())
        .flatten()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current: it is now used and `new_hash` replaces it in its family, valid
    /// until `expires_at` (the TTL, or less where the session's lifetime ends first).
    Rotated {
        user_id: i64,
        expires_at: i64,
    },
    /// The family is older than the session's maximum lifetime: it is now revoked.
    LifetimeOver,
    /// The token was already used or revoked: its whole family is now revoked.
    Reused,
    Expired,
    Unknown,
    /// The user was deactivated.
    Inactive,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    user_id: i64,
    family_id: String,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
    active: bool,
}

/// Rotates a refresh token atomically. The conditional `UPDATE … WHERE used_at IS NULL` makes
/// two concurrent uses of one token end with exactly one rotation and a revoked family. The new
/// token expires at `expires_at` or when the family is `max_lifetime` seconds old, if sooner.
pub async fn rotate_refresh_token(
    db: &Db,
    old_hash: &str,
    new_hash: &str,
    expires_at: i64,
    max_lifetime: i64,
) -> DbResult<RefreshOutcome> {
    let now = now_unix();
    let outcome = with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT t.id, t.user_id, t.family_id, t.expires_at, t.used_at, t.revoked_at, u.active \
             FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match row {
            None => RefreshOutcome::Unknown,
            Some(t) if t.used_at.is_some() || t.revoked_at.is_some() => {
                revoke_family_sql!(&mut *tx, now, &t.family_id).await?;
                RefreshOutcome::Reused
            }
            Some(t) if t.expires_at <= now => RefreshOutcome::Expired,
            Some(t) if !t.active => RefreshOutcome::Inactive,
            Some(t) => {
                let started = match family_started_at(&t.family_id) {
                    Some(started) => started,
                    None => {
                        let oldest: Option<i64> = sqlx::query_scalar(
                            "SELECT MIN(created_at) FROM refresh_tokens WHERE family_id = $1",
                        )
                        .bind(&t.family_id)
                        .fetch_one(&mut *tx)
                        .await?;
                        oldest.unwrap_or(now)
                    }
                };
                let deadline = started.saturating_add(max_lifetime);
                if deadline <= now {
                    revoke_family_sql!(&mut *tx, now, &t.family_id).await?;
                    tx.commit().await?;
                    return Ok(RefreshOutcome::LifetimeOver);
                }
                let expires_at = expires_at.min(deadline);
                let claimed = sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(t.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if claimed == 1 {
                    sqlx::query(
                        "INSERT INTO refresh_tokens (user_id, family_id, token_hash, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(t.user_id)
                    .bind(&t.family_id)
                    .bind(new_hash)
                    .bind(now)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?;
                    RefreshOutcome::Rotated {
                        user_id: t.user_id,
                        expires_at,
                    }
                } else {
                    revoke_family_sql!(&mut *tx, now, &t.family_id).await?;
                    RefreshOutcome::Reused
                }
            }
        };
        tx.commit().await?;
        outcome
    });
    Ok(outcome)
}

/// Logout: revokes the family of the presented token. Returns whether the token was known.
pub async fn revoke_family_of(db: &Db, token_hash: &str) -> DbResult<bool> {
    let now = now_unix();
    let known = with_db!(db, pool => {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        let family: Option<String> =
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(family) = &family {
            revoke_family_sql!(&mut *tx, now, family).await?;
        }
        tx.commit().await?;
        family.is_some()
    });
    Ok(known)
}

/// Deletes refresh tokens that expired more than a day ago (housekeeping).
pub async fn purge_expired_refresh_tokens(db: &Db) -> DbResult<u64> {
    let cutoff = now_unix() - 24 * 3600;
    let n = with_db!(db, pool => {
        sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
            .bind(cutoff)
            .execute(pool)
            .await?
            .rows_affected()
    });
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_id_records_when_its_login_was() {
        let id = new_family(1_764_000_000);
        assert_eq!(family_started_at(&id), Some(1_764_000_000));
        assert_ne!(new_family(1), new_family(1), "random beside the start");
        // Ids made before the start was recorded: 32 hex digits, no start.
        assert_eq!(family_started_at("0123456789abcdef0123456789abcdef"), None);
        assert_eq!(
            family_started_at("zz-0123456789abcdef0123456789abcdef"),
            None
        );
        assert_eq!(family_started_at("10-short"), None);
    }
}
