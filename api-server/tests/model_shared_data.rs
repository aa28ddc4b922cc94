//! The CSV parser and the model on the real football-data.co.uk files in the shared data
//! folder (`FP_FOOTBALL_DATA`, else `../shared/football-data` next to the workspace). Skips with
//! a message when the folder is absent. Data: Football-Data.co.uk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use chrono::NaiveTime;
use fp_api_server::csvdata::{self, Bookmaker, MatchRecord, OddsKind};
use fp_api_server::dixon_coles::{
    self, DecimalOdds, EvaluationTarget, FitConfig, MatchResult, MetricsAccumulator, Probabilities,
    RefitSchedule,
};

/// README reference figures: (league, season, matches, closing-odds RPS, constant RPS).
const REFERENCE: [(&str, &str, usize, &str, &str); 7] = [
    ("E0", "2021-2022", 380, "0.1890", "0.2356"),
    ("E0", "2022-2023", 380, "0.1975", "0.2278"),
    ("E0", "2023-2024", 380, "0.1805", "0.2340"),
    ("D1", "2023-2024", 306, "0.1843", "0.2276"),
    ("SP1", "2023-2024", 380, "0.1830", "0.2240"),
    ("I1", "2023-2024", 380, "0.1841", "0.2245"),
    ("F1", "2023-2024", 306, "0.2068", "0.2345"),
];

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FP_FOOTBALL_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/football-data"),
        PathBuf::from,
    );
    if dir.join("E0").is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "skipped: shared football data not found at {} (set FP_FOOTBALL_DATA)",
            dir.display()
        );
        None
    }
}

fn csv_files(dir: &Path) -> Vec<(String, String, PathBuf)> {
    let mut files = Vec::new();
    for league in std::fs::read_dir(dir).unwrap() {
        let league = league.unwrap().path();
        if !league.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&league).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "csv") {
                files.push((
                    league.file_name().unwrap().to_string_lossy().into_owned(),
                    file.file_stem().unwrap().to_string_lossy().into_owned(),
                    file,
                ));
            }
        }
    }
    files.sort();
    files
}

/// Data rows counted independently of the parser: lines after the header with any cell content.
fn count_data_rows(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes)
        .lines()
        .skip(1)
        .filter(|line| line.chars().any(|c| c != ',' && !c.is_whitespace()))
        .count()
}

fn season(dir: &Path, league: &str, season: &str) -> Vec<MatchRecord> {
    let bytes = std::fs::read(dir.join(league).join(format!("{season}.csv"))).unwrap();
    let parsed = csvdata::parse(&bytes);
    assert!(parsed.is_ok(), "{league} {season}: {:?}", parsed.errors);
    parsed.matches
}

fn result(m: &MatchRecord) -> Option<MatchResult> {
    let score = m.full_time?;
    let time = m.time.unwrap_or(NaiveTime::from_hms_opt(15, 0, 0).unwrap());
    Some(MatchResult {
        home: m.home_key.clone(),
        away: m.away_key.clone(),
        kickoff: m.date.and_time(time).and_utc(),
        home_goals: score.home_goals,
        away_goals: score.away_goals,
    })
}

#[test]
fn every_shared_file_parses_with_row_counts_equal_to_its_data_rows() {
    let Some(dir) = data_dir() else { return };
    let files = csv_files(&dir);
    assert!(
        files.len() >= 67,
        "expected the 67 shared files, found {}",
        files.len()
    );
    for (league, season, path) in files {
        let bytes = std::fs::read(&path).unwrap();
        let parsed = csvdata::parse(&bytes);
        let expected = count_data_rows(&bytes);
        assert!(parsed.is_ok(), "{league} {season}: {:?}", parsed.errors);
        assert_eq!(parsed.data_rows, expected, "{league} {season}");
        assert_eq!(parsed.matches.len(), expected, "{league} {season}");
        let expected_matches = match (league.as_str(), season.as_str()) {
            ("E0", "1993-1994" | "1994-1995") => 462,
            ("F1", "2019-2020") => 279,
            ("D1", _) | ("F1", "2023-2024") => 306,
            _ => 380,
        };
        assert_eq!(parsed.matches.len(), expected_matches, "{league} {season}");
        // Finished seasons: every match has a result, in the file's division.
        assert!(
            parsed
                .matches
                .iter()
                .all(|m| m.full_time.is_some() && m.division == league)
        );
        // At most the one known bad price (D1 2019-20, AvgC>2.5 = 0.42) is dropped as a warning.
        assert!(
            parsed.warning_count <= 1,
            "{league} {season}: {:?}",
            parsed.warnings
        );
    }
}

#[test]
fn closing_odds_and_constant_rps_match_the_reference_figures() {
    let Some(dir) = data_dir() else { return };
    for (league, season_name, count, odds_rps, constant_rps) in REFERENCE {
        let matches = season(&dir, league, season_name);
        let (mut odds, mut constant) =
            (MetricsAccumulator::default(), MetricsAccumulator::default());
        for m in &matches {
            let outcome = m.full_time.unwrap().outcome;
            let quote = m.odds(Bookmaker::Pinnacle, OddsKind::Closing).unwrap();
            let implied = DecimalOdds {
                home: quote.home,
                draw: quote.draw,
                away: quote.away,
            }
            .remove_margin_proportional()
            .unwrap();
            odds.add(implied, outcome);
            constant.add(Probabilities::CONSTANT_REFERENCE, outcome);
        }
        let (odds, constant) = (odds.finish().unwrap(), constant.finish().unwrap());
        assert_eq!(odds.count, count, "{league} {season_name}");
        assert_eq!(
            format!("{:.4}", odds.rps),
            odds_rps,
            "{league} {season_name}"
        );
        assert_eq!(
            format!("{:.4}", constant.rps),
            constant_rps,
            "{league} {season_name}"
        );
    }
}

#[test]
fn out_of_sample_model_beats_the_constant_forecast_on_every_reference_season() {
    let Some(dir) = data_dir() else { return };
    let config = FitConfig::default();
    for (league, season_name, count, odds_rps, _) in REFERENCE {
        // History: the three seasons before and the evaluated season itself (the walk-forward
        // only ever uses matches that kicked off before each refit).
        let first_year: i32 = season_name[..4].parse().unwrap();
        let mut history = Vec::new();
        for year in first_year - 3..=first_year {
            let name = format!("{year}-{}", year + 1);
            if dir.join(league).join(format!("{name}.csv")).exists() {
                history.extend(season(&dir, league, &name).iter().filter_map(result));
            }
        }
        let targets: Vec<EvaluationTarget> = season(&dir, league, season_name)
            .iter()
            .map(|m| EvaluationTarget {
                result: result(m).unwrap(),
                closing_odds: dixon_coles::preferred_closing_odds(&m.odds_1x2),
            })
            .collect();
        let evaluation =
            dixon_coles::walk_forward(league, &history, &targets, &config, RefitSchedule::Weekly)
                .unwrap();
        let metrics = evaluation.metrics.unwrap();
        let constant = evaluation.constant_reference.unwrap();
        let odds = evaluation.closing_odds.unwrap();
        eprintln!(
            "{league} {season_name}: model RPS {:.4} (log loss {:.4}, Brier {:.4}, accuracy {:.3}), \
             constant {:.4}, closing odds {:.4}, {} refits",
            metrics.rps,
            metrics.log_loss,
            metrics.brier,
            metrics.accuracy,
            constant.rps,
            odds.closing_odds.rps,
            evaluation.refits
        );
        assert_eq!(
            (metrics.count, evaluation.skipped),
            (count, 0),
            "{league} {season_name}"
        );
        assert!(
            evaluation.refits >= 30,
            "weekly refits: {}",
            evaluation.refits
        );
        assert!(metrics.rps < constant.rps, "{league} {season_name}");
        assert_eq!(format!("{:.4}", odds.closing_odds.rps), odds_rps);
        // The market is sharper, but a sound model is not far behind it.
        assert!(
            metrics.rps - odds.closing_odds.rps < 0.015,
            "{league} {season_name}"
        );
        assert!(metrics.log_loss < 1.06, "{league} {season_name}");
    }
}
