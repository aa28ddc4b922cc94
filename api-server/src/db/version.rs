//! The data version: one counter bumped in the same transaction as every write that changes
//! what the API serves. Replicas poll it (one indexed single-row read) to invalidate caches.

use super::{Db, DbResult, now_unix, with_db};

pub async fn current(db: &Db) -> DbResult<i64> {
    let version: i64 = with_db!(db, pool => {
        sqlx::query_scalar("SELECT version FROM data_version WHERE id = 1")
            .fetch_one(pool)
            .await?
    });
    Ok(version)
}

/// The SQL that bumps the counter; run it inside the transaction of the write it announces.
pub const BUMP_SQL: &str =
    "UPDATE data_version SET version = version + 1, updated_at = $1 WHERE id = 1 RETURNING version";

/// Bumps the counter on its own (for writes that are not in a larger transaction).
pub async fn bump(db: &Db) -> DbResult<i64> {
    let now = now_unix();
    let version: i64 = with_db!(db, pool => {
        sqlx::query_scalar(BUMP_SQL).bind(now).fetch_one(pool).await?
    });
    Ok(version)
}
