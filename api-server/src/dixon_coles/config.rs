//! Fit configuration.

use serde::{Deserialize, Serialize};

/// How a league's model is fitted. Every field has a default (see [`FitConfig::default`]); the
/// whole struct is part of the model version, so changing it yields a new version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitConfig {
    /// Half-life of the exponential time decay in days: a match this long before the fit time
    /// counts half as much as one just before it (Dixon and Coles' xi = ln 2 / half-life).
    pub half_life_days: f64,
    /// Matches older than this many days before the fit time are not used (their weight would be
    /// negligible; leaving them out keeps the fit fast).
    pub max_history_days: f64,
    /// A team whose decay-weighted match count is below this gets the fallback ratings blended in
    /// (fully for a team with no matches at all), see [`RatingSource`](super::RatingSource).
    pub min_effective_matches: f64,
    /// Precision of a zero-mean Gaussian prior on the attack and defence ratings (a ridge penalty
    /// per unit of match weight); 0 gives the plain maximum-likelihood fit.
    pub ratings_prior_precision: f64,
    /// Fewest matches (inside the history window) needed to fit at all.
    pub min_matches: usize,
    /// Optimiser limits.
    pub max_iterations: usize,
    /// Stop when the largest gradient component (of the mean weighted log-likelihood) is below this.
    pub gradient_tolerance: f64,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            half_life_days: 300.0,
            max_history_days: 3.0 * 365.25,
            min_effective_matches: 15.0,
            ratings_prior_precision: 2.0,
            min_matches: 20,
            max_iterations: 500,
            gradient_tolerance: 1e-7,
        }
    }
}

impl FitConfig {
    /// Decay rate per day (xi).
    pub fn decay_per_day(&self) -> f64 {
        std::f64::consts::LN_2 / self.half_life_days
    }

    /// Checks the values are usable; returns the offending field's name.
    pub fn validate(&self) -> Result<(), &'static str> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.half_life_days) {
            return Err("half_life_days");
        }
        if !positive(self.max_history_days) {
            return Err("max_history_days");
        }
        if !(self.min_effective_matches.is_finite() && self.min_effective_matches >= 0.0) {
            return Err("min_effective_matches");
        }
        if !(self.ratings_prior_precision.is_finite() && self.ratings_prior_precision >= 0.0) {
            return Err("ratings_prior_precision");
        }
        if self.max_iterations == 0 {
            return Err("max_iterations");
        }
        if !positive(self.gradient_tolerance) {
            return Err("gradient_tolerance");
        }
        Ok(())
    }
}
