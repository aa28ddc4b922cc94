//! Maximum-likelihood fitting of one league.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::config::FitConfig;
use super::lbfgs::{Lbfgs, Stop};
use super::likelihood::{self, FIRST_TEAM, HOME, INTERCEPT, LowScore, RHO, TrainingData};
use super::types::{
    FallbackRatings, FitDiagnostics, FittedModel, MatchResult, RatingSource, TeamRating,
};
use super::{ALGORITHM_REVISION, MODEL_NAME};

/// Why a fit failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("invalid fit configuration: {0} is out of range")]
    InvalidConfig(&'static str),
    #[error("not enough matches to fit: {found} in the history window, at least {required} needed")]
    NotEnoughMatches { found: usize, required: usize },
    #[error("the optimiser produced no usable parameters ({0})")]
    NoSolution(String),
}

/// Fits one league on the matches that kicked off before `as_of` (and within the configured
/// history window). The result does not depend on the order of `matches`.
pub fn fit(
    league: &str,
    matches: &[MatchResult],
    as_of: DateTime<Utc>,
    config: &FitConfig,
) -> Result<FittedModel, FitError> {
    Fitter::default().fit(league, matches, as_of, config, None)
}

/// Reusable fitting workspace: keeps the training arrays and the optimiser's buffers between
/// fits (the walk-forward evaluation fits hundreds of times).
#[derive(Debug, Default)]
pub struct Fitter {
    data: TrainingData,
    optimiser: Option<Lbfgs>,
    params: Vec<f64>,
}

struct Selected<'m> {
    matches: Vec<(&'m MatchResult, f64)>,
    teams: Vec<&'m str>,
}

impl Fitter {
    /// Like [`fit`]; `start` (a previous fit of the same league) is used as the starting point,
    /// which makes refits faster without changing what they converge to.
    pub fn fit(
        &mut self,
        league: &str,
        matches: &[MatchResult],
        as_of: DateTime<Utc>,
        config: &FitConfig,
        start: Option<&FittedModel>,
    ) -> Result<FittedModel, FitError> {
        config.validate().map_err(FitError::InvalidConfig)?;
        let selected = select(matches, as_of, config);
        if selected.matches.len() < config.min_matches.max(1) {
            return Err(FitError::NotEnoughMatches {
                found: selected.matches.len(),
                required: config.min_matches.max(1),
            });
        }
        self.load(&selected);
        self.initialise(&selected.teams, start);

        let n_params = self.data.parameter_count();
        let optimiser = match self.optimiser.take() {
            Some(o) if o.dimension() == n_params => o,
            _ => Lbfgs::new(n_params),
        };
        let mut optimiser = optimiser;
        let precision = config.ratings_prior_precision;
        let mut run = |fitter: &mut Self| {
            let data = &fitter.data;
            optimiser.minimise(
                &mut fitter.params,
                config.max_iterations,
                config.gradient_tolerance,
                |p, g| likelihood::objective(p, data, precision, g),
            )
        };
        let mut summary = run(self);
        if summary.stop == Stop::NonFiniteStart && start.is_some() {
            // A warm start can be infeasible for new data (rho out of range): start cold.
            self.initialise(&selected.teams, None);
            summary = run(self);
        }
        self.optimiser = Some(optimiser);
        if summary.stop == Stop::NonFiniteStart || self.params.iter().any(|p| !p.is_finite()) {
            return Err(FitError::NoSolution(format!("{:?}", summary.stop)));
        }
        centre(&mut self.params, self.data.teams);

        let ratings = self.team_ratings(&selected, config);
        let (teams, fallback) = ratings;
        let diagnostics = FitDiagnostics {
            matches: selected.matches.len(),
            teams: selected.teams.len(),
            first_kickoff: selected.matches.first().map_or(as_of, |m| m.0.kickoff),
            last_kickoff: selected.matches.last().map_or(as_of, |m| m.0.kickoff),
            iterations: summary.iterations,
            evaluations: summary.evaluations,
            converged: summary.converged(),
            stop: stop_name(summary.stop).to_owned(),
            mean_log_likelihood: -summary.value,
            gradient_inf_norm: summary.gradient_inf_norm,
        };
        let mut model = FittedModel {
            model: MODEL_NAME.to_owned(),
            version: String::new(),
            league: league.to_owned(),
            as_of,
            config: config.clone(),
            intercept: self.params[INTERCEPT],
            home_advantage: self.params[HOME],
            rho: self.params[RHO],
            teams,
            fallback,
            diagnostics,
        };
        model.version = version(&model, &selected);
        Ok(model)
    }

    /// Fills the flat training arrays.
    fn load(&mut self, selected: &Selected<'_>) {
        let d = &mut self.data;
        d.teams = selected.teams.len();
        d.home.clear();
        d.away.clear();
        d.home_goals.clear();
        d.away_goals.clear();
        d.low_score.clear();
        d.weight.clear();
        let index = |name: &str| {
            // Selected teams are sorted and contain every team of the selected matches.
            selected.teams.binary_search(&name).unwrap_or_default() as u32
        };
        let total: f64 = selected.matches.iter().map(|(_, w)| w).sum();
        for (m, w) in &selected.matches {
            d.home.push(index(&m.home));
            d.away.push(index(&m.away));
            d.home_goals.push(f64::from(m.home_goals));
            d.away_goals.push(f64::from(m.away_goals));
            d.low_score.push(LowScore::of(m.home_goals, m.away_goals));
            d.weight.push(w / total);
        }
        d.total_weight = total;
    }

    /// Starting point: the previous fit's values where it knows the team, else league averages.
    fn initialise(&mut self, teams: &[&str], start: Option<&FittedModel>) {
        let n = teams.len();
        self.params.clear();
        self.params.resize(FIRST_TEAM + 2 * n, 0.0);
        let d = &self.data;
        let mean = |goals: &[f64]| goals.iter().zip(&d.weight).map(|(g, w)| g * w).sum::<f64>();
        let (home_mean, away_mean) = (mean(&d.home_goals).max(0.05), mean(&d.away_goals).max(0.05));
        self.params[INTERCEPT] = away_mean.ln();
        self.params[HOME] = (home_mean / away_mean).ln();
        self.params[RHO] = 0.0;
        if let Some(previous) = start {
            self.params[INTERCEPT] = previous.intercept;
            self.params[HOME] = previous.home_advantage;
            self.params[RHO] = previous.rho;
            for (i, team) in teams.iter().enumerate() {
                if let Ok(k) = previous
                    .teams
                    .binary_search_by(|t| t.team.as_str().cmp(team))
                {
                    self.params[FIRST_TEAM + i] = previous.teams[k].fitted_attack;
                    self.params[FIRST_TEAM + n + i] = previous.teams[k].fitted_defence;
                }
            }
        }
    }

    /// Ratings per team, with the weakest-third fallback for teams with little history.
    fn team_ratings(
        &self,
        selected: &Selected<'_>,
        config: &FitConfig,
    ) -> (Vec<TeamRating>, FallbackRatings) {
        let n = selected.teams.len();
        let mut effective = vec![0.0; n];
        let mut counts = vec![0u32; n];
        for (k, (_, w)) in selected.matches.iter().enumerate() {
            for team in [self.data.home[k], self.data.away[k]] {
                effective[team as usize] += w;
                counts[team as usize] += 1;
            }
        }
        let attack = |i: usize| self.params[FIRST_TEAM + i];
        let defence = |i: usize| self.params[FIRST_TEAM + n + i];
        let established: Vec<usize> = (0..n)
            .filter(|&i| effective[i] >= config.min_effective_matches)
            .collect();
        let mut pool = if established.is_empty() {
            (0..n).collect()
        } else {
            established
        };
        pool.sort_by(|&a, &b| (attack(a) + defence(a)).total_cmp(&(attack(b) + defence(b))));
        pool.truncate(pool.len().div_ceil(3));
        let size = pool.len().max(1) as f64;
        let fallback = FallbackRatings {
            attack: pool.iter().map(|&i| attack(i)).sum::<f64>() / size,
            defence: pool.iter().map(|&i| defence(i)).sum::<f64>() / size,
            method: "weakest_third".to_owned(),
            from_teams: pool.iter().map(|&i| selected.teams[i].to_owned()).collect(),
        };
        let teams = (0..n)
            .map(|i| {
                let share = if config.min_effective_matches > 0.0 {
                    (effective[i] / config.min_effective_matches).min(1.0)
                } else {
                    1.0
                };
                let blend = |fitted: f64, prior: f64| share * fitted + (1.0 - share) * prior;
                TeamRating {
                    team: selected.teams[i].to_owned(),
                    attack: blend(attack(i), fallback.attack),
                    defence: blend(defence(i), fallback.defence),
                    fitted_attack: attack(i),
                    fitted_defence: defence(i),
                    matches: counts[i],
                    effective_matches: effective[i],
                    source: if share >= 1.0 {
                        RatingSource::Fitted
                    } else {
                        RatingSource::PartialHistoryBlend
                    },
                }
            })
            .collect();
        (teams, fallback)
    }
}

/// Matches inside the window, sorted (so the fit is independent of input order), with their
/// decay weights, and the sorted team list.
fn select<'m>(
    matches: &'m [MatchResult],
    as_of: DateTime<Utc>,
    config: &FitConfig,
) -> Selected<'m> {
    let xi = config.decay_per_day();
    let mut chosen: Vec<(&MatchResult, f64)> = matches
        .iter()
        .filter(|m| m.kickoff < as_of && m.home != m.away)
        .filter_map(|m| {
            let age_days = (as_of - m.kickoff).num_seconds() as f64 / 86_400.0;
            (age_days <= config.max_history_days).then(|| (m, (-xi * age_days).exp()))
        })
        .collect();
    chosen.sort_by(|a, b| {
        (a.0.kickoff, &a.0.home, &a.0.away).cmp(&(b.0.kickoff, &b.0.home, &b.0.away))
    });
    let mut teams: Vec<&str> = chosen
        .iter()
        .flat_map(|(m, _)| [m.home.as_str(), m.away.as_str()])
        .collect();
    teams.sort_unstable();
    teams.dedup();
    Selected {
        matches: chosen,
        teams,
    }
}

/// Shifts attack and defence to mean zero, moving the difference into the intercept; the
/// likelihood is unchanged (both rates depend on attack - defence + intercept).
fn centre(params: &mut [f64], n: usize) {
    if n == 0 {
        return;
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / n as f64;
    let attack_mean = mean(&params[FIRST_TEAM..FIRST_TEAM + n]);
    let defence_mean = mean(&params[FIRST_TEAM + n..FIRST_TEAM + 2 * n]);
    params[FIRST_TEAM..FIRST_TEAM + n]
        .iter_mut()
        .for_each(|a| *a -= attack_mean);
    params[FIRST_TEAM + n..FIRST_TEAM + 2 * n]
        .iter_mut()
        .for_each(|d| *d -= defence_mean);
    params[INTERCEPT] += attack_mean - defence_mean;
}

fn stop_name(stop: Stop) -> &'static str {
    match stop {
        Stop::GradientSmall => "gradient_small",
        Stop::NoProgress => "no_progress",
        Stop::MaxIterations => "max_iterations",
        Stop::LineSearchFailed => "line_search_failed",
        Stop::NonFiniteStart => "non_finite_start",
    }
}

/// `dc<revision>-<16 hex digits>`: a SHA-256 over everything that determines the parameters
/// (algorithm revision, league, configuration, fit time, each match used) and the parameters.
fn version(model: &FittedModel, selected: &Selected<'_>) -> String {
    fn text(h: &mut Sha256, s: &str) {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    }
    let mut h = Sha256::new();
    text(&mut h, MODEL_NAME);
    h.update(ALGORITHM_REVISION.to_le_bytes());
    text(&mut h, &model.league);
    text(
        &mut h,
        &serde_json::to_string(&model.config).unwrap_or_default(),
    );
    h.update(model.as_of.timestamp_micros().to_le_bytes());
    for (m, _) in &selected.matches {
        text(&mut h, &m.home);
        text(&mut h, &m.away);
        h.update(m.kickoff.timestamp_micros().to_le_bytes());
        h.update([m.home_goals, m.away_goals]);
    }
    for p in [model.intercept, model.home_advantage, model.rho]
        .into_iter()
        .chain(model.teams.iter().flat_map(|t| [t.attack, t.defence]))
    {
        h.update(p.to_bits().to_le_bytes());
    }
    let digest = h.finalize();
    format!("dc{ALGORITHM_REVISION}-{}", hex::encode(&digest[..8]))
}
