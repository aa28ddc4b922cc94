//! Deterministic synthetic leagues drawn from a Dixon-Coles process: for tests (parameter
//! recovery), benchmarks without the shared data, and a zero-setup demo league.
//!
//! The random numbers come from SplitMix64 implemented here, so a seed gives the same league
//! on every platform and with every version of the `rand` crate.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::predict::ScoreGrid;
use super::types::MatchResult;

/// True parameters of a synthetic league.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticLeague {
    /// (name, attack, defence); attack and defence should each average zero.
    pub teams: Vec<(String, f64, f64)>,
    pub intercept: f64,
    pub home_advantage: f64,
    pub rho: f64,
}

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // in (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

impl SyntheticLeague {
    /// `teams` clubs with ratings drawn from N(0, spread^2) and centred, typical European
    /// league constants (about 2.7 goals a match, home advantage 0.25, rho -0.1).
    pub fn random(teams: usize, spread: f64, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut ratings: Vec<(String, f64, f64)> = (0..teams)
            .map(|i| {
                let attack = spread * rng.normal();
                let defence = spread * rng.normal();
                (format!("Team {:02}", i + 1), attack, defence)
            })
            .collect();
        let n = teams.max(1) as f64;
        let (mean_attack, mean_defence) = (
            ratings.iter().map(|t| t.1).sum::<f64>() / n,
            ratings.iter().map(|t| t.2).sum::<f64>() / n,
        );
        for t in &mut ratings {
            t.1 -= mean_attack;
            t.2 -= mean_defence;
        }
        Self {
            teams: ratings,
            intercept: 0.15,
            home_advantage: 0.25,
            rho: -0.1,
        }
    }

    /// The expected goals of a fixture.
    pub fn rates(&self, home: usize, away: usize) -> (f64, f64) {
        let (h, a) = (&self.teams[home], &self.teams[away]);
        (
            (self.intercept + self.home_advantage + h.1 - a.2).exp(),
            (self.intercept + a.1 - h.2).exp(),
        )
    }

    /// Fixtures of `seasons` double round robins, one matchday a week from `first_kickoff`, a
    /// ten-week break between seasons: (kickoff, home index, away index).
    pub fn schedule(
        &self,
        seasons: usize,
        first_kickoff: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, usize, usize)> {
        let rounds = round_robin(self.teams.len());
        let mut fixtures = Vec::new();
        let mut kickoff = first_kickoff;
        for _ in 0..seasons {
            for swap in [false, true] {
                for round in &rounds {
                    for &(home, away) in round {
                        let (h, a) = if swap { (away, home) } else { (home, away) };
                        fixtures.push((kickoff, h, a));
                    }
                    kickoff += Duration::weeks(1);
                }
            }
            kickoff += Duration::weeks(10);
        }
        fixtures
    }

    /// Plays `seasons` seasons (see [`schedule`](Self::schedule)) with scores drawn from the
    /// Dixon-Coles joint distribution.
    pub fn play(
        &self,
        seasons: usize,
        first_kickoff: DateTime<Utc>,
        seed: u64,
    ) -> Vec<MatchResult> {
        let mut rng = SplitMix64::new(seed);
        self.schedule(seasons, first_kickoff)
            .into_iter()
            .map(|(kickoff, home, away)| {
                let (lambda, mu) = self.rates(home, away);
                let (home_goals, away_goals) =
                    draw_score(&ScoreGrid::new(lambda, mu, self.rho), &mut rng);
                MatchResult {
                    home: self.teams[home].0.clone(),
                    away: self.teams[away].0.clone(),
                    kickoff,
                    home_goals,
                    away_goals,
                }
            })
            .collect()
    }
}

/// Draws a score by inverting the cumulative distribution of the grid.
fn draw_score(grid: &ScoreGrid, rng: &mut SplitMix64) -> (u8, u8) {
    let u = rng.uniform();
    let mut cumulative = 0.0;
    let mut last = (0, 0);
    for (x, row) in grid.grid.iter().enumerate() {
        for (y, p) in row.iter().enumerate() {
            cumulative += p;
            last = (x as u8, y as u8);
            if u < cumulative {
                return last;
            }
        }
    }
    last
}

/// Rounds of a single round robin by the circle method (a bye when the count is odd); home
/// and away alternate for the fixed team.
fn round_robin(teams: usize) -> Vec<Vec<(usize, usize)>> {
    if teams < 2 {
        return Vec::new();
    }
    let slots = teams + teams % 2;
    let mut order: Vec<usize> = (0..slots).collect();
    let mut rounds = Vec::with_capacity(slots - 1);
    for r in 0..slots - 1 {
        let mut round = Vec::with_capacity(slots / 2);
        for i in 0..slots / 2 {
            let (a, b) = (order[i], order[slots - 1 - i]);
            if a >= teams || b >= teams {
                continue; // bye
            }
            let swap = if i == 0 { r % 2 == 1 } else { i % 2 == 1 };
            round.push(if swap { (b, a) } else { (a, b) });
        }
        rounds.push(round);
        // Rotate every slot but the first.
        order[1..].rotate_right(1);
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn round_robin_pairs_every_team_once() {
        for teams in [2, 5, 20] {
            let rounds = round_robin(teams);
            let mut pairs = HashSet::new();
            for round in &rounds {
                let mut seen = HashSet::new();
                for &(h, a) in round {
                    assert!(seen.insert(h) && seen.insert(a), "team twice in a round");
                    assert!(pairs.insert((h.min(a), h.max(a))), "pair twice");
                }
            }
            assert_eq!(pairs.len(), teams * (teams - 1) / 2);
        }
    }

    #[test]
    fn same_seed_same_league_and_goal_rate_is_plausible() {
        let league = SyntheticLeague::random(20, 0.3, 7);
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let a = league.play(1, start, 11);
        assert_eq!(a, league.play(1, start, 11));
        assert_ne!(a, league.play(1, start, 12));
        assert_eq!(a.len(), 380);
        let goals: f64 = a
            .iter()
            .map(|m| f64::from(m.home_goals + m.away_goals))
            .sum::<f64>()
            / 380.0;
        assert!((2.0..3.6).contains(&goals), "{goals}");
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut rng = SplitMix64::new(1);
        let n = 100_000;
        let (mut sum, mut sq) = (0.0, 0.0);
        for _ in 0..n {
            let z = rng.normal();
            sum += z;
            sq += z * z;
        }
        assert!((sum / n as f64).abs() < 0.02);
        assert!((sq / n as f64 - 1.0).abs() < 0.02);
    }
}
