use chrono::{DateTime, Duration, Utc};

use super::synthetic::SyntheticLeague;
use super::*;

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_600_000_000, 0).unwrap()
}

/// 20 teams, `seasons` seasons, fitted just after the last match.
fn fitted(seasons: usize, config: &FitConfig) -> (SyntheticLeague, Vec<MatchResult>, FittedModel) {
    let league = SyntheticLeague::random(20, 0.3, 42);
    let matches = league.play(seasons, start(), 4242);
    let as_of = matches.last().unwrap().kickoff + Duration::days(1);
    let model = fit("SYN", &matches, as_of, config).unwrap();
    (league, matches, model)
}

fn flat_weights() -> FitConfig {
    FitConfig {
        half_life_days: 1e6,
        max_history_days: 1e4,
        ..FitConfig::default()
    }
}

#[test]
fn recovers_known_parameters_from_a_dixon_coles_process() {
    let (league, _, model) = fitted(6, &flat_weights());
    assert!(model.diagnostics.converged, "{:?}", model.diagnostics);
    assert_eq!(model.diagnostics.matches, 6 * 380);
    // Standard errors with 2280 matches: about 0.03 for home advantage and intercept, 0.04 for
    // rho and 0.09 per team rating; the tolerances are about three of them.
    assert!(
        (model.home_advantage - league.home_advantage).abs() < 0.08,
        "home {}",
        model.home_advantage
    );
    assert!(
        (model.intercept - league.intercept).abs() < 0.08,
        "intercept {}",
        model.intercept
    );
    assert!((model.rho - league.rho).abs() < 0.1, "rho {}", model.rho);
    let mut squared = 0.0;
    for (name, attack, defence) in &league.teams {
        let t = model.teams.iter().find(|t| &t.team == name).unwrap();
        assert_eq!(t.source, RatingSource::Fitted);
        assert!(
            (t.attack - attack).abs() < 0.3,
            "{name} attack {} vs {attack}",
            t.attack
        );
        assert!(
            (t.defence - defence).abs() < 0.3,
            "{name} defence {} vs {defence}",
            t.defence
        );
        squared += (t.attack - attack).powi(2) + (t.defence - defence).powi(2);
    }
    let rms = (squared / 40.0).sqrt();
    assert!(rms < 0.12, "rms rating error {rms}");
    // The identifiability constraint holds.
    let mean_attack: f64 = model.teams.iter().map(|t| t.attack).sum::<f64>() / 20.0;
    let mean_defence: f64 = model.teams.iter().map(|t| t.defence).sum::<f64>() / 20.0;
    assert!(mean_attack.abs() < 1e-9 && mean_defence.abs() < 1e-9);
}

#[test]
fn the_gradient_vanishes_at_the_fitted_point() {
    let (_, _, model) = fitted(3, &FitConfig::default());
    assert!(model.diagnostics.converged);
    assert!(
        model.diagnostics.gradient_inf_norm < 1e-6,
        "{:?}",
        model.diagnostics
    );
    assert!(model.diagnostics.iterations < 200);
}

#[test]
fn probabilities_sum_to_one_and_markets_are_consistent() {
    let (league, _, model) = fitted(2, &FitConfig::default());
    for (home, ..) in &league.teams {
        for (away, ..) in &league.teams {
            if home == away {
                continue;
            }
            let p = model.predict(home, away);
            let sum = p.home_win + p.draw + p.away_win;
            assert!((sum - 1.0).abs() < 1e-9, "{home} v {away}: {sum}");
            assert!((0.0..=1.0).contains(&p.over_2_5) && (0.0..=1.0).contains(&p.both_teams_score));
            let best = p.most_likely_score;
            let implied = MatchOutcome::from_score(best.home, best.away);
            assert!(best.probability > 0.0 && best.probability <= p.probabilities().of(implied));
            assert_eq!(p.confidence, p.probabilities().of(p.predicted_outcome));
            assert!(p.confidence >= p.home_win.min(p.draw).min(p.away_win));
            assert_eq!(p.model, MODEL_NAME);
            assert_eq!(p.model_version, model.version);
        }
    }
}

#[test]
fn stronger_attack_raises_win_probability() {
    let (_, _, model) = fitted(2, &FitConfig::default());
    let (a, b) = (model.teams[0].team.clone(), model.teams[1].team.clone());
    let before_home = model.predict(&a, &b);
    let before_away = model.predict(&b, &a);
    let mut stronger = model.clone();
    stronger.teams[0].attack += 0.3;
    let after_home = stronger.predict(&a, &b);
    let after_away = stronger.predict(&b, &a);
    assert!(after_home.home_win > before_home.home_win);
    assert!(after_home.expected_home_goals > before_home.expected_home_goals);
    assert!(after_away.away_win > before_away.away_win);
    // A better defence lowers the opponent's scoring and win chance.
    let mut tighter = model.clone();
    tighter.teams[0].defence += 0.3;
    assert!(tighter.predict(&a, &b).away_win < before_home.away_win);
}

#[test]
fn symmetric_teams_differ_only_by_home_advantage() {
    let (_, _, mut model) = fitted(2, &FitConfig::default());
    let (a, b) = (model.teams[0].team.clone(), model.teams[1].team.clone());
    model.teams[1].attack = model.teams[0].attack;
    model.teams[1].defence = model.teams[0].defence;
    let with_home = model.predict(&a, &b);
    assert!(model.home_advantage > 0.0);
    assert!(with_home.home_win > with_home.away_win);
    assert_eq!(with_home, model.predict(&b, &a));

    model.home_advantage = 0.0;
    let neutral = model.predict(&a, &b);
    assert!((neutral.home_win - neutral.away_win).abs() < 1e-12);
    assert!((neutral.expected_home_goals - neutral.expected_away_goals).abs() < 1e-12);
}

#[test]
fn teams_without_history_get_the_weakest_third_prior() {
    let config = FitConfig::default();
    let league = SyntheticLeague::random(20, 0.3, 42);
    let mut matches = league.play(2, start(), 4242);
    let as_of = matches.last().unwrap().kickoff + Duration::days(1);
    // A newcomer with two recent matches.
    for (k, opponent) in ["Team 01", "Team 02"].iter().enumerate() {
        matches.push(MatchResult {
            home: "Newcomer".into(),
            away: (*opponent).into(),
            kickoff: as_of - Duration::days(3 + k as i64),
            home_goals: 3,
            away_goals: 0,
        });
    }
    let model = fit("SYN", &matches, as_of, &config).unwrap();

    let promoted = model.predict("Promoted FC", "Team 01");
    assert_eq!(promoted.home_rating_source, RatingSource::PromotedTeamPrior);
    assert_eq!(promoted.away_rating_source, RatingSource::Fitted);
    assert_eq!(model.ratings("Promoted FC").0, model.fallback.attack);
    assert_eq!(model.fallback.method, "weakest_third");
    assert_eq!(model.fallback.from_teams.len(), 7); // ceil(20 / 3) established teams
    assert!(
        model.fallback.attack + model.fallback.defence < 0.0,
        "prior must be below average"
    );

    let newcomer = model.teams.iter().find(|t| t.team == "Newcomer").unwrap();
    assert_eq!(newcomer.source, RatingSource::PartialHistoryBlend);
    assert_eq!(newcomer.matches, 2);
    // Two big wins pull it above the prior but the blend keeps it below its raw fit.
    assert!(newcomer.attack > model.fallback.attack && newcomer.attack < newcomer.fitted_attack);
    let p = model.predict("Newcomer", "Team 03");
    assert_eq!(p.home_rating_source, RatingSource::PartialHistoryBlend);
    assert!((p.home_win + p.draw + p.away_win - 1.0).abs() < 1e-9);
}

#[test]
fn fitted_parameters_round_trip_through_json() {
    let (_, _, model) = fitted(2, &FitConfig::default());
    let json = serde_json::to_string(&model).unwrap();
    let back: FittedModel = serde_json::from_str(&json).unwrap();
    assert_eq!(back, model);
    let (a, b) = (&model.teams[3].team, &model.teams[7].team);
    assert_eq!(back.predict(a, b), model.predict(a, b));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["model"], "dixon-coles");
    assert_eq!(value["teams"][0]["source"], "fitted");
}

#[test]
fn version_identifies_data_and_ignores_input_order_and_the_future() {
    let config = FitConfig::default();
    let league = SyntheticLeague::random(20, 0.3, 42);
    let matches = league.play(2, start(), 4242);
    let as_of = matches[600].kickoff;
    let base = fit("SYN", &matches, as_of, &config).unwrap();
    assert!(
        base.version.starts_with("dc1-") && base.version.len() == 20,
        "{}",
        base.version
    );

    let mut reversed = matches.clone();
    reversed.reverse();
    assert_eq!(fit("SYN", &reversed, as_of, &config).unwrap(), base);

    // Matches at or after the fit time are not seen.
    let mut with_future = matches.clone();
    with_future[700].home_goals = 9;
    with_future[600].home_goals = 9; // kicks off exactly at as_of
    assert_eq!(
        fit("SYN", &with_future, as_of, &config).unwrap().version,
        base.version
    );

    let mut changed = matches.clone();
    changed[10].home_goals += 1;
    let other = fit("SYN", &changed, as_of, &config).unwrap();
    assert_ne!(other.version, base.version);
    assert_ne!(other.teams, base.teams);
}

#[test]
fn warm_start_converges_to_the_same_fit() {
    let config = FitConfig::default();
    let league = SyntheticLeague::random(20, 0.3, 42);
    let matches = league.play(3, start(), 4242);
    let first = fit("SYN", &matches, matches[700].kickoff, &config).unwrap();
    let as_of = matches[720].kickoff;
    let cold = fit("SYN", &matches, as_of, &config).unwrap();
    let mut fitter = Fitter::default();
    let warm = fitter
        .fit("SYN", &matches, as_of, &config, Some(&first))
        .unwrap();
    assert!(warm.diagnostics.iterations < cold.diagnostics.iterations);
    assert!((warm.home_advantage - cold.home_advantage).abs() < 1e-5);
    assert!((warm.rho - cold.rho).abs() < 1e-5);
    for (w, c) in warm.teams.iter().zip(&cold.teams) {
        assert!((w.attack - c.attack).abs() < 1e-5 && (w.defence - c.defence).abs() < 1e-5);
    }
}

#[test]
fn errors_for_too_little_data_and_bad_configuration() {
    let league = SyntheticLeague::random(20, 0.3, 42);
    let matches = league.play(1, start(), 1);
    let config = FitConfig::default();
    assert_eq!(
        fit("SYN", &matches, matches[5].kickoff, &config),
        Err(FitError::NotEnoughMatches {
            found: 0,
            required: 20
        })
    );
    let bad = FitConfig {
        half_life_days: 0.0,
        ..config
    };
    assert_eq!(
        fit("SYN", &matches, matches[300].kickoff, &bad),
        Err(FitError::InvalidConfig("half_life_days"))
    );
}

#[test]
fn walk_forward_uses_only_the_past_and_beats_the_constant_forecast() {
    let league = SyntheticLeague::random(20, 0.35, 9);
    let matches = league.play(3, start(), 99);
    let targets: Vec<EvaluationTarget> = matches[760..]
        .iter()
        .map(|m| {
            let (lambda, mu) = league.rates(
                league.teams.iter().position(|t| t.0 == m.home).unwrap(),
                league.teams.iter().position(|t| t.0 == m.away).unwrap(),
            );
            let truth = ScoreGrid::new(lambda, mu, league.rho).outcome_probabilities();
            // Fair odds of the true process, with a 5% margin spread proportionally.
            let odds = |p: f64| 1.0 / (p * 1.05);
            EvaluationTarget {
                result: m.clone(),
                closing_odds: Some(DecimalOdds {
                    home: odds(truth.home),
                    draw: odds(truth.draw),
                    away: odds(truth.away),
                }),
            }
        })
        .collect();
    let config = FitConfig::default();
    let evaluation =
        walk_forward("SYN", &matches, &targets, &config, RefitSchedule::Weekly).unwrap();
    let model = evaluation.metrics.unwrap();
    let constant = evaluation.constant_reference.unwrap();
    let odds = evaluation.closing_odds.unwrap();
    assert_eq!(model.count, 380);
    assert_eq!(evaluation.refits, 38, "one refit per weekly matchday");
    assert!(
        model.rps < constant.rps,
        "model {} constant {}",
        model.rps,
        constant.rps
    );
    // The true probabilities are the best possible forecast; the model comes close.
    assert!(odds.closing_odds.rps <= odds.model.rps + 0.002);
    assert!(odds.model.rps - odds.closing_odds.rps < 0.01);

    // Leakage check: a forecast must not change when later results change.
    let mut altered = matches.clone();
    for m in &mut altered[1000..] {
        m.home_goals = 7;
    }
    let first_week: Vec<EvaluationTarget> = targets[..20].to_vec();
    let a = walk_forward("SYN", &matches, &first_week, &config, RefitSchedule::Daily).unwrap();
    let b = walk_forward("SYN", &altered, &first_week, &config, RefitSchedule::Daily).unwrap();
    assert_eq!(a, b);
}

#[test]
fn walk_forward_skips_matches_without_enough_earlier_results() {
    let league = SyntheticLeague::random(20, 0.3, 5);
    let matches = league.play(1, start(), 6);
    let targets: Vec<EvaluationTarget> = matches[..60]
        .iter()
        .map(|m| EvaluationTarget {
            result: m.clone(),
            closing_odds: None,
        })
        .collect();
    let config = FitConfig::default();
    let evaluation =
        walk_forward("SYN", &matches, &targets, &config, RefitSchedule::Weekly).unwrap();
    // Weeks 1 and 2 have 0 and 10 earlier matches (< 20): skipped; weeks 3..6 are forecast.
    assert_eq!(evaluation.skipped, 20);
    assert_eq!(evaluation.refits, 4);
    assert_eq!(evaluation.metrics.unwrap().count, 40);
    assert!(evaluation.closing_odds.is_none());
}
