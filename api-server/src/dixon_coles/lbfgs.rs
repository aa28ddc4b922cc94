//! Limited-memory BFGS with a strong-Wolfe line search (Nocedal & Wright, algorithms 7.4, 3.5
//! and 3.6), written for this model instead of taken from a crate: all work buffers are
//! allocated once per problem size and reused across iterations and across fits (the
//! walk-forward evaluation runs hundreds of fits), the objective may return +inf for an
//! infeasible point (the Dixon-Coles correction must stay positive) and the line search simply
//! backs off from it, and there is no generic-math layer between the loop and the `f64` slices.

/// Why the optimiser stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The largest gradient component fell below the tolerance.
    GradientSmall,
    /// The objective stopped changing (relative change below machine precision scale).
    NoProgress,
    /// The iteration limit was reached.
    MaxIterations,
    /// No step along a descent direction satisfied the Wolfe conditions.
    LineSearchFailed,
    /// The objective was not finite at the starting point.
    NonFiniteStart,
}

/// Summary of one minimisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub stop: Stop,
    pub iterations: usize,
    pub evaluations: usize,
    pub value: f64,
    pub gradient_inf_norm: f64,
}

impl Summary {
    /// True when the result is a (numerically) stationary point.
    pub fn converged(&self) -> bool {
        matches!(self.stop, Stop::GradientSmall | Stop::NoProgress)
    }
}

const MEMORY: usize = 10;
/// Sufficient-decrease and curvature constants of the strong Wolfe conditions.
const C1: f64 = 1e-4;
const C2: f64 = 0.9;
const MAX_LINE_SEARCH_STEPS: usize = 40;
/// Relative change of the objective treated as no progress.
const RELATIVE_FTOL: f64 = 1e-14;

/// Reusable L-BFGS workspace for problems of one dimension.
#[derive(Debug, Clone)]
pub struct Lbfgs {
    n: usize,
    /// Ring buffers of the last `MEMORY` steps s = x_{k+1} - x_k and gradient changes y.
    s: Vec<f64>,
    y: Vec<f64>,
    rho: [f64; MEMORY],
    alpha: [f64; MEMORY],
    stored: usize,
    newest: usize,
    gradient: Vec<f64>,
    direction: Vec<f64>,
    trial_x: Vec<f64>,
    trial_gradient: Vec<f64>,
    evaluations: usize,
}

struct LineSearchResult {
    step: f64,
    value: f64,
}

impl Lbfgs {
    pub fn new(n: usize) -> Self {
        Self {
            n,
            s: vec![0.0; MEMORY * n],
            y: vec![0.0; MEMORY * n],
            rho: [0.0; MEMORY],
            alpha: [0.0; MEMORY],
            stored: 0,
            newest: 0,
            gradient: vec![0.0; n],
            direction: vec![0.0; n],
            trial_x: vec![0.0; n],
            trial_gradient: vec![0.0; n],
            evaluations: 0,
        }
    }

    pub fn dimension(&self) -> usize {
        self.n
    }

    /// Minimises `objective` from `x` (updated in place to the result). `objective(x, grad)`
    /// returns f(x) and writes its gradient; it may return +inf (or NaN) for infeasible points.
    pub fn minimise<F>(
        &mut self,
        x: &mut [f64],
        max_iterations: usize,
        gradient_tolerance: f64,
        mut objective: F,
    ) -> Summary
    where
        F: FnMut(&[f64], &mut [f64]) -> f64,
    {
        if x.len() != self.n {
            *self = Self::new(x.len());
        }
        self.stored = 0;
        self.evaluations = 1;
        let mut value = objective(x, &mut self.gradient);
        let summary = |stop, iterations, evaluations, value, g: &[f64]| Summary {
            stop,
            iterations,
            evaluations,
            value,
            gradient_inf_norm: inf_norm(g),
        };
        if !value.is_finite() || self.gradient.iter().any(|g| !g.is_finite()) {
            return summary(Stop::NonFiniteStart, 0, 1, value, &self.gradient);
        }
        for iteration in 0..max_iterations {
            if inf_norm(&self.gradient) <= gradient_tolerance {
                return summary(
                    Stop::GradientSmall,
                    iteration,
                    self.evaluations,
                    value,
                    &self.gradient,
                );
            }
            self.compute_direction();
            let mut slope = dot(&self.direction, &self.gradient);
            if slope >= 0.0 || !slope.is_finite() {
                // The quasi-Newton model went bad: restart from steepest descent.
                self.stored = 0;
                self.compute_direction();
                slope = dot(&self.direction, &self.gradient);
            }
            let mut found = self.line_search(x, value, slope, &mut objective);
            if found.is_none() && self.stored > 0 {
                self.stored = 0;
                self.compute_direction();
                slope = dot(&self.direction, &self.gradient);
                found = self.line_search(x, value, slope, &mut objective);
            }
            let Some(LineSearchResult {
                step,
                value: new_value,
            }) = found
            else {
                return summary(
                    Stop::LineSearchFailed,
                    iteration,
                    self.evaluations,
                    value,
                    &self.gradient,
                );
            };
            self.remember_step(step);
            x.copy_from_slice(&self.trial_x);
            self.gradient.copy_from_slice(&self.trial_gradient);
            let previous = value;
            value = new_value;
            if (previous - value).abs() <= RELATIVE_FTOL * previous.abs().max(value.abs()).max(1.0)
            {
                let stop = if inf_norm(&self.gradient) <= gradient_tolerance {
                    Stop::GradientSmall
                } else {
                    Stop::NoProgress
                };
                return summary(stop, iteration + 1, self.evaluations, value, &self.gradient);
            }
        }
        let stop = if inf_norm(&self.gradient) <= gradient_tolerance {
            Stop::GradientSmall
        } else {
            Stop::MaxIterations
        };
        summary(
            stop,
            max_iterations,
            self.evaluations,
            value,
            &self.gradient,
        )
    }

    /// direction = -H g by the two-loop recursion over the stored pairs.
    fn compute_direction(&mut self) {
        let n = self.n;
        self.direction.copy_from_slice(&self.gradient);
        for k in 0..self.stored {
            let slot = (self.newest + MEMORY - k) % MEMORY;
            let s = &self.s[slot * n..(slot + 1) * n];
            let y = &self.y[slot * n..(slot + 1) * n];
            let a = self.rho[slot] * dot(s, &self.direction);
            self.alpha[slot] = a;
            axpy(-a, y, &mut self.direction);
        }
        let gamma = if self.stored > 0 {
            let slot = self.newest;
            let s = &self.s[slot * n..(slot + 1) * n];
            let y = &self.y[slot * n..(slot + 1) * n];
            dot(s, y) / dot(y, y)
        } else {
            // First step: a unit-length move, or shorter when the gradient is tiny.
            1.0 / dot(&self.gradient, &self.gradient).sqrt().max(1.0)
        };
        self.direction.iter_mut().for_each(|d| *d *= gamma);
        for k in (0..self.stored).rev() {
            let slot = (self.newest + MEMORY - k) % MEMORY;
            let s = &self.s[slot * n..(slot + 1) * n];
            let y = &self.y[slot * n..(slot + 1) * n];
            let beta = self.rho[slot] * dot(y, &self.direction);
            axpy(self.alpha[slot] - beta, s, &mut self.direction);
        }
        self.direction.iter_mut().for_each(|d| *d = -*d);
    }

    /// Stores s = step * direction and y = g_trial - g when the curvature is positive.
    fn remember_step(&mut self, step: f64) {
        let n = self.n;
        let slot = if self.stored == 0 {
            0
        } else {
            (self.newest + 1) % MEMORY
        };
        let (s, y) = (
            &mut self.s[slot * n..(slot + 1) * n],
            &mut self.y[slot * n..(slot + 1) * n],
        );
        for i in 0..n {
            s[i] = step * self.direction[i];
            y[i] = self.trial_gradient[i] - self.gradient[i];
        }
        let sy = dot(s, y);
        if sy > 1e-12 * dot(y, y).max(f64::MIN_POSITIVE) && sy.is_finite() {
            self.rho[slot] = 1.0 / sy;
            self.newest = slot;
            self.stored = (self.stored + 1).min(MEMORY);
        }
    }

    /// Evaluates phi(step) = f(x + step * d) into the trial buffers; returns (phi, phi').
    fn evaluate<F>(&mut self, x: &[f64], step: f64, objective: &mut F) -> (f64, f64)
    where
        F: FnMut(&[f64], &mut [f64]) -> f64,
    {
        for ((t, xi), di) in self.trial_x.iter_mut().zip(x).zip(&self.direction) {
            *t = xi + step * di;
        }
        self.evaluations += 1;
        let value = objective(&self.trial_x, &mut self.trial_gradient);
        if value.is_finite() {
            (value, dot(&self.trial_gradient, &self.direction))
        } else {
            (f64::INFINITY, f64::NAN)
        }
    }

    /// Strong-Wolfe line search along `self.direction`; on success the trial buffers hold the
    /// accepted point and its gradient.
    fn line_search<F>(
        &mut self,
        x: &[f64],
        value0: f64,
        slope0: f64,
        objective: &mut F,
    ) -> Option<LineSearchResult>
    where
        F: FnMut(&[f64], &mut [f64]) -> f64,
    {
        if slope0 >= 0.0 || !slope0.is_finite() {
            return None;
        }
        let armijo = |step: f64, value: f64| value <= value0 + C1 * step * slope0;
        let curvature_ok = |slope: f64| slope.abs() <= -C2 * slope0;
        let (mut previous_step, mut previous_value, mut previous_slope) = (0.0, value0, slope0);
        let mut step = 1.0;
        for i in 0..MAX_LINE_SEARCH_STEPS {
            let (value, slope) = self.evaluate(x, step, objective);
            if !armijo(step, value) || (i > 0 && value >= previous_value) {
                return self.zoom(
                    x,
                    (previous_step, previous_value, previous_slope),
                    (step, value),
                    (value0, slope0),
                    objective,
                );
            }
            if curvature_ok(slope) {
                return Some(LineSearchResult { step, value });
            }
            if slope >= 0.0 {
                return self.zoom(
                    x,
                    (step, value, slope),
                    (previous_step, previous_value),
                    (value0, slope0),
                    objective,
                );
            }
            (previous_step, previous_value, previous_slope) = (step, value, slope);
            step *= 2.0;
        }
        None
    }

    /// Narrows [lo, hi] (lo satisfies sufficient decrease) until a step meets both conditions.
    fn zoom<F>(
        &mut self,
        x: &[f64],
        lo: (f64, f64, f64),
        hi: (f64, f64),
        origin: (f64, f64),
        objective: &mut F,
    ) -> Option<LineSearchResult>
    where
        F: FnMut(&[f64], &mut [f64]) -> f64,
    {
        let (value0, slope0) = origin;
        let (mut lo_step, mut lo_value, mut lo_slope) = lo;
        let (mut hi_step, mut hi_value) = hi;
        for _ in 0..MAX_LINE_SEARCH_STEPS {
            let width = hi_step - lo_step;
            if width.abs() <= 1e-14 * lo_step.abs().max(1e-10) {
                break;
            }
            // Minimiser of the quadratic through (lo, lo', hi), kept inside the interval.
            let curvature = (hi_value - lo_value - lo_slope * width) / (width * width);
            let mut step = if hi_value.is_finite() && curvature > 0.0 {
                lo_step - lo_slope / (2.0 * curvature)
            } else {
                lo_step + 0.5 * width
            };
            let (a, b) = (lo_step + 0.1 * width, hi_step - 0.1 * width);
            let (low, high) = if a < b { (a, b) } else { (b, a) };
            if !step.is_finite() {
                step = lo_step + 0.5 * width;
            }
            step = step.clamp(low, high);

            let (value, slope) = self.evaluate(x, step, objective);
            if value > value0 + C1 * step * slope0 || value >= lo_value {
                (hi_step, hi_value) = (step, value);
            } else {
                if slope.abs() <= -C2 * slope0 {
                    return Some(LineSearchResult { step, value });
                }
                if slope * (hi_step - lo_step) >= 0.0 {
                    (hi_step, hi_value) = (lo_step, lo_value);
                }
                (lo_step, lo_value, lo_slope) = (step, value, slope);
            }
        }
        // The interval collapsed: accept the best point with sufficient decrease, if any.
        if lo_step > 0.0 && lo_value < value0 {
            let (value, _) = self.evaluate(x, lo_step, objective);
            if value.is_finite() {
                return Some(LineSearchResult {
                    step: lo_step,
                    value,
                });
            }
        }
        None
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    y.iter_mut().zip(x).for_each(|(yi, xi)| *yi += a * xi);
}

fn inf_norm(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rosenbrock(x: &[f64], g: &mut [f64]) -> f64 {
        let n = x.len();
        let mut f = 0.0;
        g.iter_mut().for_each(|v| *v = 0.0);
        for i in 0..n - 1 {
            let a = x[i + 1] - x[i] * x[i];
            let b = 1.0 - x[i];
            f += 100.0 * a * a + b * b;
            g[i] += -400.0 * x[i] * a - 2.0 * b;
            g[i + 1] += 200.0 * a;
        }
        f
    }

    #[test]
    fn minimises_rosenbrock_in_many_dimensions() {
        let mut x = vec![-1.2; 30];
        let mut opt = Lbfgs::new(30);
        let summary = opt.minimise(&mut x, 2000, 1e-9, rosenbrock);
        assert!(summary.converged(), "{summary:?}");
        for xi in &x {
            assert!((xi - 1.0).abs() < 1e-6, "{x:?}");
        }
    }

    #[test]
    fn backs_off_from_infeasible_points() {
        // f(x) = x - ln(x) is defined only for x > 0 (+inf elsewhere) with its minimum at 1;
        // from 50 the quasi-Newton steps overshoot below 0 and must be cut back.
        let objective = |x: &[f64], g: &mut [f64]| {
            if x[0] <= 0.0 {
                return f64::INFINITY;
            }
            g[0] = 1.0 - 1.0 / x[0];
            x[0] - x[0].ln()
        };
        for start in [0.05, 0.5, 3.0, 50.0] {
            let mut x = vec![start];
            let summary = Lbfgs::new(1).minimise(&mut x, 200, 1e-10, objective);
            assert!(summary.converged(), "{start}: {summary:?}");
            assert!((x[0] - 1.0).abs() < 1e-8, "{start}: {x:?}");
        }
    }

    #[test]
    fn reports_a_non_finite_start() {
        let mut x = vec![0.0];
        let summary = Lbfgs::new(1).minimise(&mut x, 10, 1e-8, |_, _| f64::NAN);
        assert_eq!(summary.stop, Stop::NonFiniteStart);
        assert!(!summary.converged());
    }

    #[test]
    fn quadratic_is_solved_exactly_and_workspace_is_reusable() {
        let mut opt = Lbfgs::new(3);
        for shift in [1.0, -2.0] {
            let mut x = vec![0.0; 3];
            let summary = opt.minimise(&mut x, 100, 1e-12, |x, g| {
                let scales = [1.0, 10.0, 100.0];
                let mut f = 0.0;
                for i in 0..3 {
                    let d = x[i] - shift * (i as f64 + 1.0);
                    f += 0.5 * scales[i] * d * d;
                    g[i] = scales[i] * d;
                }
                f
            });
            assert!(summary.converged(), "{summary:?}");
            for (i, xi) in x.iter().enumerate() {
                assert!((xi - shift * (i as f64 + 1.0)).abs() < 1e-9);
            }
        }
    }
}
