//! Per-account back-off after failed logins, beside the per-address rate limit: an attacker
//! rotating addresses (a botnet, an IPv6 /48) still gets one guess per doubling wait at any one
//! username. Keyed by the normalised username whether or not the account exists, so the answer
//! does not tell who exists. In memory, per replica: N replicas allow N times the attempts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Usernames tracked at most; past it new names are not tracked (the per-address limit still
/// applies), so a spray of names cannot grow the map without bound.
const MAX_TRACKED: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Failures {
    count: u32,
    last: Instant,
}

pub struct LoginBackoff {
    /// Failures allowed before the first wait; 0 disables the back-off.
    after: u32,
    max: Duration,
    failures: Mutex<HashMap<String, Failures>>,
}

/// How long after the last failure the next attempt must wait, having failed `count` times:
/// nothing for the first `after` failures, then 1 s doubling per failure up to `max` (pure).
pub fn wait_after(count: u32, after: u32, max: Duration) -> Duration {
    if after == 0 || count < after {
        return Duration::ZERO;
    }
    let doublings = (count - after).min(31);
    Duration::from_secs(1u64 << doublings).min(max)
}

impl LoginBackoff {
    pub fn new(after: u32, max: Duration) -> Self {
        Self {
            after,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while `username` must still wait before another attempt is judged.
    pub fn check(&self, username: &str, now: Instant) -> Result<(), Duration> {
        let failures = self.failures.lock();
        let Some(f) = failures.get(username) else {
            return Ok(());
        };
        let until = f.last + wait_after(f.count, self.after, self.max);
        match until.checked_duration_since(now) {
            Some(left) if !left.is_zero() => Err(left),
            _ => Ok(()),
        }
    }

    pub fn failed(&self, username: &str, now: Instant) {
        if self.after == 0 {
            return;
        }
        let mut failures = self.failures.lock();
        if let Some(f) = failures.get_mut(username) {
            f.count = f.count.saturating_add(1);
            f.last = now;
        } else if failures.len() < MAX_TRACKED {
            failures.insert(
                username.to_owned(),
                Failures {
                    count: 1,
                    last: now,
                },
            );
        }
    }

    /// The right password ends the back-off.
    pub fn succeeded(&self, username: &str) {
        self.failures.lock().remove(username);
    }

    /// Forgets names whose last failure is older than the longest wait: their next attempt is
    /// judged anyway, and a failure that old should not count towards a new wait.
    pub fn housekeeping(&self, now: Instant) {
        let keep = self.max.max(Duration::from_secs(60));
        self.failures
            .lock()
            .retain(|_, f| now.saturating_duration_since(f.last) < keep);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.failures.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_starts_after_the_allowance_and_doubles_up_to_the_cap() {
        let max = Duration::from_secs(900);
        let waits: Vec<u64> = (0..=16).map(|n| wait_after(n, 5, max).as_secs()).collect();
        assert_eq!(
            waits,
            [
                0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900
            ]
        );
        assert_eq!(wait_after(u32::MAX, 5, max), max);
        assert_eq!(wait_after(100, 0, max), Duration::ZERO, "0 disables");
    }

    #[test]
    fn failures_of_one_name_make_it_wait_and_success_clears_it() {
        let backoff = LoginBackoff::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        backoff.failed("alice", t0);
        assert_eq!(backoff.check("alice", t0), Ok(()));
        backoff.failed("alice", t0);
        assert_eq!(backoff.check("alice", t0), Err(Duration::from_secs(1)));
        assert_eq!(
            backoff.check("bob", t0),
            Ok(()),
            "other names are not affected"
        );
        let later = t0 + Duration::from_secs(1);
        assert_eq!(backoff.check("alice", later), Ok(()));
        backoff.failed("alice", later);
        assert_eq!(backoff.check("alice", later), Err(Duration::from_secs(2)));
        backoff.succeeded("alice");
        assert_eq!(backoff.check("alice", later), Ok(()));
    }

    #[test]
    fn housekeeping_forgets_old_failures_and_the_map_is_bounded() {
        let backoff = LoginBackoff::new(1, Duration::from_secs(120));
        let t0 = Instant::now();
        backoff.failed("old", t0);
        backoff.failed("recent", t0 + Duration::from_secs(100));
        backoff.housekeeping(t0 + Duration::from_secs(150));
        assert_eq!(backoff.tracked(), 1);
        assert_eq!(
            backoff.check("recent", t0 + Duration::from_secs(100)),
            Err(Duration::from_secs(1))
        );
        for i in 0..MAX_TRACKED + 10 {
            backoff.failed(&format!("spray{i}"), t0);
        }
        assert_eq!(backoff.tracked(), MAX_TRACKED);
    }
}
