//! Model benchmarks (issue 7 targets): fitting one league on three seasons (< 200 ms) and one
//! prediction from fitted parameters (< 50 µs).
//!
//! `cargo bench -p fp-api-server --bench model`. Uses E0 2021-22 .. 2023-24 from the shared
//! football data (`FP_FOOTBALL_DATA`, else `../shared/football-data` next to the workspace;
//! data: Football-Data.co.uk) and falls back to a synthetic 20-team league of the same size.
//! A single likelihood-sized reference (scoring one season with the constant forecast) runs in
//! the same process so results can be read as ratios on a noisy machine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use fp_api_server::csvdata;
use fp_api_server::dixon_coles::{
    self, FitConfig, Fitter, MatchResult, MetricsAccumulator, Probabilities, synthetic,
};

const SEASONS: [&str; 3] = ["2021-2022", "2022-2023", "2023-2024"];

/// Three seasons of one league and a label saying where they came from.
fn three_seasons() -> (Vec<MatchResult>, String) {
    let dir = std::env::var_os("FP_FOOTBALL_DATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/football-data"),
        PathBuf::from,
    );
    let mut matches = Vec::new();
    for season in SEASONS {
        let Ok(bytes) = std::fs::read(dir.join("E0").join(format!("{season}.csv"))) else {
            break;
        };
        let parsed = csvdata::parse(&bytes);
        matches.extend(parsed.matches.iter().filter_map(|m| {
            let score = m.full_time?;
            let time = m.time.unwrap_or(NaiveTime::from_hms_opt(15, 0, 0)?);
            Some(MatchResult {
                home: m.home_key.clone(),
                away: m.away_key.clone(),
                kickoff: m.date.and_time(time).and_utc(),
                home_goals: score.home_goals,
                away_goals: score.away_goals,
            })
        }));
    }
    if matches.len() == 3 * 380 {
        return (matches, "E0 2021-24 (shared data)".to_owned());
    }
    eprintln!(
        "shared football data not found at {}: using a synthetic league",
        dir.display()
    );
    let league = synthetic::SyntheticLeague::random(20, 0.3, 42);
    let start = DateTime::<Utc>::from_timestamp(1_629_000_000, 0).unwrap();
    (
        league.play(3, start, 7),
        "synthetic 20-team league".to_owned(),
    )
}

fn benches(c: &mut Criterion) {
    let (matches, source) = three_seasons();
    let as_of = matches.iter().map(|m| m.kickoff).max().unwrap() + Duration::days(1);
    let config = FitConfig::default();
    let fitted = dixon_coles::fit("E0", &matches, as_of, &config).unwrap();
    eprintln!(
        "{source}: {} matches, {} teams; cold fit: {} iterations, {} evaluations, stop {}",
        fitted.diagnostics.matches,
        fitted.diagnostics.teams,
        fitted.diagnostics.iterations,
        fitted.diagnostics.evaluations,
        fitted.diagnostics.stop
    );

    let mut group = c.benchmark_group("model");
    group.bench_function(
        format!("fit, 3 seasons, cold ({} matches)", matches.len()),
        |b| b.iter(|| dixon_coles::fit("E0", black_box(&matches), as_of, &config).unwrap()),
    );
    // A refit after one more week of results, warm-started from the previous fit: what the
    // server does after an import.
    let week_before = dixon_coles::fit("E0", &matches, as_of - Duration::days(7), &config).unwrap();
    let mut fitter = Fitter::default();
    group.bench_function("fit, 3 seasons, warm refit a week later", |b| {
        b.iter(|| {
            fitter
                .fit(
                    "E0",
                    black_box(&matches),
                    as_of,
                    &config,
                    Some(&week_before),
                )
                .unwrap()
        })
    });
    let (home, away) = (fitted.teams[0].team.clone(), fitted.teams[1].team.clone());
    group.bench_function("predict one match", |b| {
        b.iter(|| fitted.predict(black_box(&home), black_box(&away)))
    });
    group.bench_function("reference: score 380 constant forecasts", |b| {
        b.iter(|| {
            let mut acc = MetricsAccumulator::default();
            for m in black_box(&matches[..380]) {
                acc.add(Probabilities::CONSTANT_REFERENCE, m.outcome());
            }
            acc.finish()
        })
    });
    group.finish();
}

criterion_group!(model_benches, benches);
criterion_main!(model_benches);
