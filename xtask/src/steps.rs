//! Running a foreground step (cargo, apt-get, …) with its output on the terminal, timed, and
//! stopped by pid when xtask is interrupted.
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
}

pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs `cmd` to completion; on interrupt sends it SIGTERM (then SIGKILL after 10 s).
pub fn run(cmd: &mut Command) -> Result<Duration, StepError> {
    let command = describe(cmd);
    eprintln!("==> {command}");
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(|source| StepError::Spawn {
        command: command.clone(),
        source,
    })?;
    let mut term_sent: Option<Instant> = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => return Err(StepError::Spawn { command, source }),
        }
        if interrupt::interrupted() {
            let pid = i32::try_from(child.id()).map(Pid::from_raw);
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
