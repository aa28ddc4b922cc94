//! Running a foreground step (cargo, apt-get, …) with its output on the terminal, timed, and
//! stopped by pid when xtask is interrupted.
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::interrupt;

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed: {status}")]
    Failed { command: String, status: ExitStatus },
    #[error("`{command}` stopped: {source}")]
    Interrupted {
        command: String,
        source: interrupt::Interrupted,
    },
    #[error("`{command}` stopped after {}s", limit.as_secs())]
    TimedOut { command: String, limit: Duration },
}

pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs `cmd` to completion; on interrupt sends it SIGTERM (then SIGKILL after 10 s).
pub fn run(cmd: &mut Command) -> Result<Duration, StepError> {
    run_inner(cmd, None)
}

/// Like [`run`], but stops the command and everything it started (its own process group) once
/// `limit` has passed: for steps that may hang on the network (a fetch with no route out).
pub fn run_within(cmd: &mut Command, limit: Duration) -> Result<Duration, StepError> {
    cmd.process_group(0);
    run_inner(cmd, Some(limit))
}

fn run_inner(cmd: &mut Command, limit: Option<Duration>) -> Result<Duration, StepError> {
    let command = describe(cmd);
    eprintln!("==> {command}");
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(|source| StepError::Spawn {
        command: command.clone(),
        source,
    })?;
    let mut term_sent: Option<Instant> = None;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => return Err(StepError::Spawn { command, source }),
        }
        if !timed_out && limit.is_some_and(|l| t0.elapsed() > l) {
            timed_out = true;
        }
        if interrupt::interrupted() || timed_out {
            // With a limit the child leads its own process group: signal all of it (git under
            // cargo-deny, …) so nothing is left behind.
            let pid = i32::try_from(child.id()).map(|p| match limit {
                Some(_) => Pid::from_raw(-p),
                None => Pid::from_raw(p),
            });
            match (term_sent, pid) {
                (None, Ok(pid)) => {
                    let _ = kill(pid, Signal::SIGTERM);
                    term_sent = Some(Instant::now());
                }
                (Some(at), Ok(pid)) if at.elapsed() > Duration::from_secs(10) => {
                    let _ = kill(pid, Signal::SIGKILL);
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if let (true, Some(limit)) = (timed_out, limit) {
        return Err(StepError::TimedOut { command, limit });
    }
    if term_sent.is_some() {
        return Err(StepError::Interrupted {
            command,
            source: interrupt::Interrupted,
        });
    }
    if !status.success() {
        return Err(StepError::Failed { command, status });
    }
    Ok(t0.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_over_its_limit_is_stopped_with_what_it_started() {
        // The shell's child `sleep` is in the same process group and must go too.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30; echo done"]);
        let t0 = Instant::now();
        let err = run_within(&mut cmd, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, StepError::TimedOut { .. }), "{err}");
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t0.elapsed()
        );
        assert!(
            run_within(&mut Command::new("true"), Duration::from_secs(10)).is_ok(),
            "a quick command passes"
        );
    }
}
