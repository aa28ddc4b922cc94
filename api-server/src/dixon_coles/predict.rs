//! Forecasts from fitted parameters.

use super::likelihood::tau;
use super::types::{FittedModel, Prediction, Probabilities, RatingSource, ScoreProbability};

/// Scores up to this many goals per side are enumerated; the mass beyond (under 1e-4 even for
/// 5 expected goals) is dropped and the grid renormalised.
pub const MAX_GOALS: usize = 15;
const SIDE: usize = MAX_GOALS + 1;

/// Joint probabilities of every score up to [`MAX_GOALS`]: `grid[home][away]`, summing to 1.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreGrid {
    pub grid: [[f64; SIDE]; SIDE],
}

impl ScoreGrid {
    /// The Dixon-Coles joint distribution for rates `lambda` (home) and `mu` (away).
    pub fn new(lambda: f64, mu: f64, rho: f64) -> Self {
        let home = poisson_pmf(lambda);
        let away = poisson_pmf(mu);
        let mut grid = [[0.0; SIDE]; SIDE];
        let mut total = 0.0;
        for (x, row) in grid.iter_mut().enumerate() {
            for (y, cell) in row.iter_mut().enumerate() {
                // tau can only go negative for rates far outside football (a rho fitted on real
                // data keeps it positive); clamp so the grid stays a distribution.
                *cell = (home[x] * away[y] * tau(x, y, lambda, mu, rho)).max(0.0);
                total += *cell;
            }
        }
        if total > 0.0 {
            grid.iter_mut().flatten().for_each(|c| *c /= total);
        }
        Self { grid }
    }

    pub fn outcome_probabilities(&self) -> Probabilities {
        let (mut home, mut draw, mut away) = (0.0, 0.0, 0.0);
        for (x, row) in self.grid.iter().enumerate() {
            for (y, p) in row.iter().enumerate() {
                match x.cmp(&y) {
                    std::cmp::Ordering::Greater => home += p,
                    std::cmp::Ordering::Equal => draw += p,
                    std::cmp::Ordering::Less => away += p,
                }
            }
        }
        Probabilities { home, draw, away }
    }

    pub fn most_likely_score(&self) -> ScoreProbability {
        let mut best = ScoreProbability {
            home: 0,
            away: 0,
            probability: -1.0,
        };
        for (x, row) in self.grid.iter().enumerate() {
            for (y, &p) in row.iter().enumerate() {
                if p > best.probability {
                    best = ScoreProbability {
                        home: x as u8,
                        away: y as u8,
                        probability: p,
                    };
                }
            }
        }
        best
    }

    /// P(total goals >= 3).
    pub fn over_2_5(&self) -> f64 {
        let mut at_most_two = 0.0;
        for x in 0..3 {
            for y in 0..(3 - x) {
                at_most_two += self.grid[x][y];
            }
        }
        (1.0 - at_most_two).max(0.0)
    }

    /// P(both sides score at least once).
    pub fn both_teams_score(&self) -> f64 {
        self.grid[1..].iter().flat_map(|row| &row[1..]).sum()
    }
}

fn poisson_pmf(rate: f64) -> [f64; SIDE] {
    let mut pmf = [0.0; SIDE];
    pmf[0] = (-rate).exp();
    for k in 1..SIDE {
        pmf[k] = pmf[k - 1] * rate / k as f64;
    }
    pmf
}

impl FittedModel {
    /// A team's (attack, defence) and where they come from; unknown teams get the fallback.
    pub fn ratings(&self, team: &str) -> (f64, f64, RatingSource) {
        match self.teams.binary_search_by(|t| t.team.as_str().cmp(team)) {
            Ok(i) => {
                let t = &self.teams[i];
                (t.attack, t.defence, t.source)
            }
            Err(_) => (
                self.fallback.attack,
                self.fallback.defence,
                RatingSource::PromotedTeamPrior,
            ),
        }
    }

    /// Expected goals (home, away) for a match.
    pub fn expected_goals(&self, home: &str, away: &str) -> (f64, f64) {
        let (home_attack, home_defence, _) = self.ratings(home);
        let (away_attack, away_defence, _) = self.ratings(away);
        (
            (self.intercept + self.home_advantage + home_attack - away_defence).exp(),
            (self.intercept + away_attack - home_defence).exp(),
        )
    }

    /// The full forecast for `home` against `away` at `home`'s ground.
    pub fn predict(&self, home: &str, away: &str) -> Prediction {
        let (home_attack, home_defence, home_source) = self.ratings(home);
        let (away_attack, away_defence, away_source) = self.ratings(away);
        let lambda = (self.intercept + self.home_advantage + home_attack - away_defence).exp();
        let mu = (self.intercept + away_attack - home_defence).exp();
        let grid = ScoreGrid::new(lambda, mu, self.rho);
        let probabilities = grid.outcome_probabilities();
        let predicted_outcome = probabilities.most_likely();
        Prediction {
            model: self.model.clone(),
            model_version: self.version.clone(),
            home_win: probabilities.home,
            draw: probabilities.draw,
            away_win: probabilities.away,
            // The tau correction leaves both marginal means unchanged.
            expected_home_goals: lambda,
            expected_away_goals: mu,
            most_likely_score: grid.most_likely_score(),
            over_2_5: grid.over_2_5(),
            both_teams_score: grid.both_teams_score(),
            predicted_outcome,
            confidence: probabilities.of(predicted_outcome),
            home_rating_source: home_source,
            away_rating_source: away_source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_a_distribution_with_the_poisson_margins() {
        let (lambda, mu) = (1.7, 1.1);
        let grid = ScoreGrid::new(lambda, mu, -0.12);
        let total: f64 = grid.grid.iter().flatten().sum();
        assert!((total - 1.0).abs() < 1e-12);
        let mean_home: f64 = grid
            .grid
            .iter()
            .enumerate()
            .map(|(x, row)| x as f64 * row.iter().sum::<f64>())
            .sum();
        assert!((mean_home - lambda).abs() < 1e-6, "{mean_home}");
        let p = grid.outcome_probabilities();
        assert!((p.home + p.draw + p.away - 1.0).abs() < 1e-12);
    }

    #[test]
    fn negative_rho_raises_draws_and_nil_nil() {
        let independent = ScoreGrid::new(1.4, 1.2, 0.0);
        let corrected = ScoreGrid::new(1.4, 1.2, -0.1);
        assert!(corrected.grid[0][0] > independent.grid[0][0]);
        assert!(corrected.grid[1][1] > independent.grid[1][1]);
        assert!(corrected.outcome_probabilities().draw > independent.outcome_probabilities().draw);
    }

    #[test]
    fn markets_agree_with_hand_computed_poisson_values() {
        // Independent Poisson (rho = 0), lambda = mu = 1: P(0-0) = e^-2,
        // P(both score) = (1 - e^-1)^2, P(under 2.5) = e^-2 (1 + 2 + 2).
        let grid = ScoreGrid::new(1.0, 1.0, 0.0);
        let e2 = (-2.0f64).exp();
        assert!((grid.grid[0][0] - e2).abs() < 1e-9);
        assert!((grid.both_teams_score() - (1.0 - (-1.0f64).exp()).powi(2)).abs() < 1e-9);
        assert!((grid.over_2_5() - (1.0 - 5.0 * e2)).abs() < 1e-9);
        let best = grid.most_likely_score();
        // 0-0, 1-0, 0-1 and 1-1 tie at e^-2; the first found wins.
        assert_eq!((best.home, best.away), (0, 0));
    }
}
