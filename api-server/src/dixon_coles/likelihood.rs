//! The Dixon-Coles likelihood and its analytic gradient over precomputed match arrays.
//!
//! Goals: X ~ Poisson(lambda), Y ~ Poisson(mu) with
//! `ln lambda = intercept + home + attack[home] - defence[away]` and
//! `ln mu = intercept + attack[away] - defence[home]`, joined by the low-score correction
//! tau(x, y) of Dixon and Coles (1997): `1 - lambda mu rho` for 0-0, `1 + lambda rho` for 0-1,
//! `1 + mu rho` for 1-0, `1 - rho` for 1-1 and 1 otherwise. Higher defence = fewer goals against.

/// Index of the intercept, home advantage and rho in the parameter vector; the attack ratings
/// follow, then the defence ratings.
pub(crate) const INTERCEPT: usize = 0;
pub(crate) const HOME: usize = 1;
pub(crate) const RHO: usize = 2;
pub(crate) const FIRST_TEAM: usize = 3;

/// Low-score cell of a match, precomputed so the hot loop branches on a small integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum LowScore {
    NilNil,
    NilOne,
    OneNil,
    OneOne,
    Other,
}

impl LowScore {
    pub(crate) fn of(home_goals: u8, away_goals: u8) -> Self {
        match (home_goals, away_goals) {
            (0, 0) => Self::NilNil,
            (0, 1) => Self::NilOne,
            (1, 0) => Self::OneNil,
            (1, 1) => Self::OneOne,
            _ => Self::Other,
        }
    }
}

/// The correction factor tau(x, y).
pub(crate) fn tau(home_goals: usize, away_goals: usize, lambda: f64, mu: f64, rho: f64) -> f64 {
    match (home_goals, away_goals) {
        (0, 0) => 1.0 - lambda * mu * rho,
        (0, 1) => 1.0 + lambda * rho,
        (1, 0) => 1.0 + mu * rho,
        (1, 1) => 1.0 - rho,
        _ => 1.0,
    }
}

/// Matches of one fit as flat arrays (structure of arrays, built once per fit).
#[derive(Debug, Clone, Default)]
pub(crate) struct TrainingData {
    pub teams: usize,
    pub home: Vec<u32>,
    pub away: Vec<u32>,
    pub home_goals: Vec<f64>,
    pub away_goals: Vec<f64>,
    pub low_score: Vec<LowScore>,
    /// Time-decay weights divided by their sum, so the objective is a weighted mean.
    pub weight: Vec<f64>,
    /// Sum of the raw weights (scales the prior against the likelihood).
    pub total_weight: f64,
}

impl TrainingData {
    pub(crate) fn parameter_count(&self) -> usize {
        FIRST_TEAM + 2 * self.teams
    }

    pub(crate) fn len(&self) -> usize {
        self.home.len()
    }
}

/// Negative weighted mean log-likelihood (without the constant log-factorials) plus the ratings
/// prior; writes the gradient. Returns +inf where some tau is not positive (rho out of range).
pub(crate) fn objective(
    params: &[f64],
    data: &TrainingData,
    prior_precision: f64,
    gradient: &mut [f64],
) -> f64 {
    let n = data.teams;
    gradient.iter_mut().for_each(|g| *g = 0.0);
    let (intercept, home_adv, rho) = (params[INTERCEPT], params[HOME], params[RHO]);
    let attack = &params[FIRST_TEAM..FIRST_TEAM + n];
    let defence = &params[FIRST_TEAM + n..FIRST_TEAM + 2 * n];
    let mut log_likelihood = 0.0;
    let (mut g_intercept, mut g_home, mut g_rho) = (0.0, 0.0, 0.0);

    for k in 0..data.len() {
        let (i, j) = (data.home[k] as usize, data.away[k] as usize);
        let (x, y, w) = (data.home_goals[k], data.away_goals[k], data.weight[k]);
        let eta_home = intercept + home_adv + attack[i] - defence[j];
        let eta_away = intercept + attack[j] - defence[i];
        let (lambda, mu) = (eta_home.exp(), eta_away.exp());
        // tau and its derivatives with respect to ln lambda, ln mu and rho.
        let (t, dt_home, dt_away, dt_rho) = match data.low_score[k] {
            LowScore::NilNil => {
                let lm = lambda * mu;
                (1.0 - lm * rho, -lm * rho, -lm * rho, -lm)
            }
            LowScore::NilOne => (1.0 + lambda * rho, lambda * rho, 0.0, lambda),
            LowScore::OneNil => (1.0 + mu * rho, 0.0, mu * rho, mu),
            LowScore::OneOne => (1.0 - rho, 0.0, 0.0, -1.0),
            LowScore::Other => (1.0, 0.0, 0.0, 0.0),
        };
        if t <= 0.0 || !t.is_finite() {
            return f64::INFINITY;
        }
        let log_tau = if data.low_score[k] == LowScore::Other {
            0.0
        } else {
            t.ln()
        };
        log_likelihood += w * (x * eta_home - lambda + y * eta_away - mu + log_tau);
        let g_eta_home = w * (x - lambda + dt_home / t);
        let g_eta_away = w * (y - mu + dt_away / t);
        g_intercept += g_eta_home + g_eta_away;
        g_home += g_eta_home;
        g_rho += w * dt_rho / t;
        gradient[FIRST_TEAM + i] -= g_eta_home;
        gradient[FIRST_TEAM + n + j] += g_eta_home;
        gradient[FIRST_TEAM + j] -= g_eta_away;
        gradient[FIRST_TEAM + n + i] += g_eta_away;
    }
    gradient[INTERCEPT] = -g_intercept;
    gradient[HOME] = -g_home;
    gradient[RHO] = -g_rho;

    let mut value = -log_likelihood;
    if prior_precision > 0.0 {
        let scale = prior_precision / data.total_weight;
        for (p, g) in params[FIRST_TEAM..].iter().zip(&mut gradient[FIRST_TEAM..]) {
            value += 0.5 * scale * p * p;
            *g += scale * p;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_data() -> TrainingData {
        let matches = [
            (0u32, 1u32, 0u8, 0u8, 1.0),
            (1, 2, 0, 1, 0.8),
            (2, 0, 1, 0, 0.9),
            (0, 2, 1, 1, 0.5),
            (2, 1, 3, 2, 0.7),
            (1, 0, 2, 0, 1.0),
        ];
        let total: f64 = matches.iter().map(|m| m.4).sum();
        TrainingData {
            teams: 3,
            home: matches.iter().map(|m| m.0).collect(),
            away: matches.iter().map(|m| m.1).collect(),
            home_goals: matches.iter().map(|m| f64::from(m.2)).collect(),
            away_goals: matches.iter().map(|m| f64::from(m.3)).collect(),
            low_score: matches.iter().map(|m| LowScore::of(m.2, m.3)).collect(),
            weight: matches.iter().map(|m| m.4 / total).collect(),
            total_weight: total,
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let data = sample_data();
        let params = [0.1, 0.25, -0.08, 0.3, -0.1, -0.2, 0.05, 0.15, -0.2];
        for precision in [0.0, 2.0] {
            let mut grad = vec![0.0; params.len()];
            objective(&params, &data, precision, &mut grad);
            let mut scratch = vec![0.0; params.len()];
            for i in 0..params.len() {
                let h = 1e-6;
                let (mut up, mut down) = (params, params);
                up[i] += h;
                down[i] -= h;
                let numeric = (objective(&up, &data, precision, &mut scratch)
                    - objective(&down, &data, precision, &mut scratch))
                    / (2.0 * h);
                assert!(
                    (numeric - grad[i]).abs() < 1e-7,
                    "param {i}: analytic {} numeric {numeric}",
                    grad[i]
                );
            }
        }
    }

    #[test]
    fn infeasible_rho_gives_infinity() {
        let data = sample_data();
        let mut grad = vec![0.0; 9];
        // rho = 1.5 makes tau(1,1) = 1 - rho negative.
        let params = [0.0, 0.0, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(objective(&params, &data, 0.0, &mut grad), f64::INFINITY);
    }

    #[test]
    fn tau_preserves_total_probability() {
        // Sum over the 2x2 corner of tau * p(x) * p(y) equals the uncorrected sum.
        let (lambda, mu, rho) = (1.4_f64, 1.1_f64, -0.13);
        // Poisson probabilities of 0 and 1 (0! = 1! = 1).
        let p = |k: usize, m: f64| (-m).exp() * if k == 0 { 1.0 } else { m };
        let mut corrected = 0.0;
        let mut plain = 0.0;
        for x in 0..2 {
            for y in 0..2 {
                corrected += tau(x, y, lambda, mu, rho) * p(x, lambda) * p(y, mu);
                plain += p(x, lambda) * p(y, mu);
            }
        }
        assert!((corrected - plain).abs() < 1e-15);
    }
}
