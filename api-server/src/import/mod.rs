//! Importing football-data.co.uk files: a pure planning step turns parsed CSV records into the
//! rows to write (or a list of line errors that rejects the whole file), then
//! [`write::write`] writes the plan in one transaction.

pub mod cli;
mod leagues;
mod plan;
mod time;
pub mod write;

pub use leagues::{
    DEMO_LEAGUE_CODE, DEMO_LEAGUE_NAME, LeagueMeta, league_meta, validate_league_code,
};
pub use plan::{
    ImportPlan, ImportRejection, LineError, MatchSpec, OddsSpec, OverUnderSpec, SeasonName,
    TeamSpec, plan, season_of,
};
pub use time::{kickoff_utc, uk_offset_hours};

use sha2::{Digest, Sha256};

use crate::db::auth::AuditEntry;
use crate::db::{Db, DbError};
use crate::import::write::ImportSummary;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file is rejected")]
    Rejected(ImportRejection),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Parses, checks and writes one file (one transaction). `actor` names who imported it (audit).
pub async fn import_file(
    db: &Db,
    league: &str,
    season: &str,
    bytes: &[u8],
    source: &str,
    actor: (Option<i64>, &str),
) -> Result<ImportSummary, ImportError> {
    // Parsing a large file takes milliseconds of CPU: off the async workers.
    let owned = bytes.to_vec();
    let parsed = tokio::task::spawn_blocking(move || crate::csvdata::parse(&owned))
        .await
        .map_err(|e| DbError::Corrupt(format!("parser task failed: {e}")))?;
    let plan = plan(league, season, &parsed).map_err(ImportError::Rejected)?;
    let sha256 = hex::encode(Sha256::digest(bytes));
    let entry = AuditEntry {
        actor_id: actor.0,
        actor: actor.1.to_string(),
        action: "data.import",
        target: format!("{}/{}", plan.league.code, plan.season.name),
        details: serde_json::json!({
            "source": source,
            "sha256": sha256,
            "matches": plan.matches.len(),
        }),
    };
    Ok(crate::import::write::write(db, &plan, source, &sha256, &entry).await?)
}
