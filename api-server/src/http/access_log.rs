//! The access log: one line per request (method, route template, status, duration, request id,
//! the authenticated user's id), never the query string, headers, tokens or bodies. A per-second
//! budget keeps a busy or attacked pod from drowning its log pipeline: requests over it are
//! counted, and the count is logged with the next line that fits.

use std::sync::{Arc, Mutex, OnceLock};

/// The user a request was authenticated as: the auth extractor fills it, the access log reads it
/// after the handler (the response cannot carry it back through the extractor).
#[derive(Clone, Debug, Default)]
pub struct Caller(Arc<OnceLock<i64>>);

impl Caller {
    pub fn set(&self, user_id: i64) {
        let _ = self.0.set(user_id);
    }

    pub fn user_id(&self) -> Option<i64> {
        self.0.get().copied()
    }
}

/// What to do with one request's line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Log it; `skipped` requests before it were over the budget and not logged.
    Log { skipped: u64 },
    /// Over this second's budget: count it only.
    Skip,
}

/// At most `max_per_second` lines per wall-clock second (0: none).
#[derive(Debug)]
pub struct AccessLogBudget {
    max_per_second: u32,
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    second: u64,
    logged: u32,
    skipped: u64,
}

impl AccessLogBudget {
    pub fn new(max_per_second: u32) -> Self {
        Self {
            max_per_second,
            window: Mutex::new(Window::default()),
        }
    }

    /// The decision for a request ending in `second` (seconds since any fixed origin).
    pub fn admit(&self, second: u64) -> Admission {
        if self.max_per_second == 0 {
            return Admission::Skip;
        }
        let mut w = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.second != second {
            w.second = second;
            w.logged = 0;
        }
        if w.logged < self.max_per_second {
            w.logged += 1;
            Admission::Log {
                skipped: std::mem::take(&mut w.skipped),
            }
        } else {
            w.skipped += 1;
            Admission::Skip
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_over_the_budget_are_counted_and_reported_with_the_next_line() {
        let budget = AccessLogBudget::new(2);
        assert_eq!(budget.admit(10), Admission::Log { skipped: 0 });
        assert_eq!(budget.admit(10), Admission::Log { skipped: 0 });
        assert_eq!(budget.admit(10), Admission::Skip);
        assert_eq!(budget.admit(10), Admission::Skip);
        // A new second: a fresh budget, and the first line carries what was skipped.
        assert_eq!(budget.admit(11), Admission::Log { skipped: 2 });
        assert_eq!(budget.admit(11), Admission::Log { skipped: 0 });
        assert_eq!(budget.admit(11), Admission::Skip);
        assert_eq!(budget.admit(15), Admission::Log { skipped: 1 });
    }

    #[test]
    fn a_zero_budget_logs_nothing() {
        let budget = AccessLogBudget::new(0);
        assert_eq!(budget.admit(1), Admission::Skip);
        assert_eq!(budget.admit(2), Admission::Skip);
    }

    #[test]
    fn the_caller_is_set_once() {
        let caller = Caller::default();
        assert_eq!(caller.user_id(), None);
        let seen_by_the_log = caller.clone();
        caller.set(7);
        caller.set(8);
        assert_eq!(seen_by_the_log.user_id(), Some(7));
    }
}
