//! Progress lines on stderr for long work (stdout carries only the final JSON summary).
//! Every line is redacted.

use std::fmt::Display;
use std::io::Write;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::redact::redact;

#[derive(Debug)]
pub struct Progress {
    command: &'static str,
    /// `None` = silent (tests, `--quiet`).
    interval: Option<Duration>,
    started: Instant,
    last_report: Mutex<Option<Instant>>,
}

impl Progress {
    pub fn stderr(command: &'static str, interval: Duration) -> Self {
        Self {
            command,
            interval: Some(interval),
            started: Instant::now(),
            last_report: Mutex::new(None),
        }
    }

    pub fn silent(command: &'static str) -> Self {
        Self {
            command,
            interval: None,
            started: Instant::now(),
            last_report: Mutex::new(None),
        }
    }

    /// A step worth telling the operator about, printed at once.
    pub fn note(&self, message: impl Display) {
        if self.interval.is_some() {
            let line = format!("{}: {}", self.command, redact(&message.to_string()));
            // A closed stderr must not fail the backup.
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }

    /// Bytes moved so far; printed at most once per interval.
    pub fn throughput(&self, verb: &str, done: u64, total: Option<u64>) {
        let Some(interval) = self.interval else {
            return;
        };
        {
            let mut last = self.last_report.lock();
            let now = Instant::now();
            if last.is_some_and(|at| now.duration_since(at) < interval) {
                return;
            }
            *last = Some(now);
        }
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = mib(done) / elapsed;
        let message = match total {
            Some(total) if total > 0 => format!(
                "{verb} {:.1} of {:.1} MiB ({:.0}%), {rate:.1} MiB/s",
                mib(done),
                mib(total),
                100.0 * done as f64 / total as f64
            ),
            _ => format!("{verb} {:.1} MiB, {rate:.1} MiB/s", mib(done)),
        };
        self.note(message);
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
