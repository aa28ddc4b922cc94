//! `fp-api-server import`: one file with `--league --season FILE`, or a whole
//! `LEAGUE/SEASON.csv` tree with `--dir`. Each file is its own transaction; the touched leagues
//! are refitted once at the end, and running servers pick the new data and fits up through the
//! data version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{ImportError, ImportRejection, import_file};
use crate::config::StorageSettings;
use crate::db::{Db, schema};

/// `(league, season, path)` of every `LEAGUE/SEASON.csv` under `dir`, sorted.
pub fn discover(dir: &Path) -> anyhow::Result<Vec<(String, String, PathBuf)>> {
    let mut files = Vec::new();
    for league in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let league = league?;
        if !league.file_type()?.is_dir() {
            continue;
        }
        let code = league.file_name().to_string_lossy().into_owned();
        if super::validate_league_code(&code).is_err() {
            continue;
        }
        for file in std::fs::read_dir(league.path())? {
            let path = file?.path();
            let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            if path.extension().is_some_and(|e| e == "csv")
                && super::SeasonName::parse(&stem).is_ok()
            {
                files.push((code.clone(), stem, path));
            }
        }
    }
    files.sort();
    Ok(files)
}

fn describe(rejection: &ImportRejection) -> String {
    match rejection {
        ImportRejection::Parameter { field, message } => format!("{field}: {message}"),
        ImportRejection::Empty => "the file holds no match".to_string(),
        ImportRejection::Rows {
            errors,
            error_count,
        } => {
            let mut text = format!("{error_count} malformed row(s); nothing was imported");
            for e in errors.iter().take(20) {
                text.push_str(&format!(
                    "\n  line {}{}: {}",
                    e.line,
                    e.column
                        .as_deref()
                        .map(|c| format!(", column {c}"))
                        .unwrap_or_default(),
                    e.reason
                ));
            }
            text
        }
    }
}

/// Imports `files` (`(league, season, path)`, each its own transaction) and, with `refit`, refits
/// the leagues they touched.
pub async fn run(
    storage: &StorageSettings,
    files: &[(String, String, PathBuf)],
    refit: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(!files.is_empty(), "no LEAGUE/SEASON.csv files found");
    let db = Db::connect(storage).await?;
    let state = schema::state(&db).await?;
    if !matches!(state, schema::SchemaState::Current { .. }) {
        anyhow::bail!("{}", state.describe());
    }
    let mut touched: BTreeMap<i64, String> = BTreeMap::new();
    let mut failed = 0usize;
    for (league, season, path) in files {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let source = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        match import_file(&db, league, season, &bytes, &source, (None, "cli")).await {
            Ok(summary) => {
                println!(
                    "{}/{}: {} matches ({} new), {} teams, {} odds",
                    summary.league,
                    summary.season,
                    summary.matches,
                    summary.created,
                    summary.teams,
                    summary.odds
                );
                touched.insert(summary.league_id, summary.league);
            }
            Err(ImportError::Rejected(r)) => {
                failed += 1;
                eprintln!(
                    "{} ({league} {season}) rejected: {}",
                    path.display(),
                    describe(&r)
                );
            }
            Err(ImportError::Db(e)) => return Err(e.into()),
        }
    }
    if refit {
        let metrics = crate::metrics::Metrics::new("cli")?;
        let models = crate::predict::ModelService::default();
        for (league_id, code) in &touched {
            match models.refit_league(&db, &metrics, *league_id, code).await {
                Ok(outcome) => println!(
                    "{}: fitted {} on {} matches",
                    outcome.league, outcome.model_version, outcome.matches_used
                ),
                Err(e) => eprintln!("{code}: not refitted: {e}"),
            }
        }
    }
    db.close().await;
    anyhow::ensure!(failed == 0, "{failed} file(s) rejected");
    Ok(())
}
