//! Host processes for containers. Each container process leads its own process group so the
//! whole container (a shell and its children) can be signalled at once, always by the pid the
//! agent itself spawned. Pids are recorded in the pod directory with their start time so an
//! agent that crashed can have its orphans stopped by the next run without killing a stranger.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::str::FromStr;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::env::EnvList;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("opening log file {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting {executable}: {source}")]
    Spawn {
        executable: PathBuf,
        source: std::io::Error,
    },
    #[error("started {0} but it exited before its identity could be read")]
    Vanished(PathBuf),
}

/// A pid plus its start time in clock ticks since boot: unique for the machine's uptime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: u32,
    pub start_ticks: u64,
}

impl ProcessIdentity {
    pub fn current() -> Option<Self> {
        Self::of(std::process::id())
    }

    /// Reads `/proc/<pid>/stat`; `None` when the process is gone or a zombie.
    pub fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (state, start_ticks) = parse_stat(&stat)?;
        (state != 'Z' && state != 'X').then_some(Self { pid, start_ticks })
    }

    /// Whether this very process (not merely this pid) still runs.
    pub fn is_alive(&self) -> bool {
        Self::of(self.pid).is_some_and(|now| now.start_ticks == self.start_ticks)
    }
}

/// State and start time from a `/proc/<pid>/stat` line. The command name may contain spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 (state) is fields[0]; field 22 (starttime) is fields[19].
    let state = fields.first()?.chars().next()?;
    let start_ticks = fields.get(19)?.parse().ok()?;
    Some((state, start_ticks))
}

impl fmt::Display for ProcessIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.pid, self.start_ticks)
    }
}

impl FromStr for ProcessIdentity {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split_whitespace();
        let pid = parts.next().ok_or(())?.parse().map_err(|_| ())?;
        let start_ticks = parts.next().ok_or(())?.parse().map_err(|_| ())?;
        Ok(Self { pid, start_ticks })
    }
}

/// How a container process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit code as a container runtime reports it: the code, or 128 + signal number.
    pub exit_code: i32,
    pub signal: Option<i32>,
}

impl From<ExitStatus> for ExitInfo {
    fn from(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => Self {
                exit_code: code,
                signal: None,
            },
            (None, Some(signal)) => Self {
                exit_code: 128 + signal,
                signal: Some(signal),
            },
            (None, None) => Self {
                exit_code: 128,
                signal: None,
            },
        }
    }
}

/// Everything needed to start one container process.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub executable: PathBuf,
    pub args: Vec<String>,
    pub env: EnvList,
    pub working_dir: PathBuf,
    pub log_path: PathBuf,
}

/// Starts the process in its own process group with stdout and stderr appended to the log file.
pub fn spawn(spec: &SpawnSpec) -> Result<(ProcessIdentity, tokio::process::Child), ProcessError> {
    let log_error = |source| ProcessError::Log {
        path: spec.log_path.clone(),
        source,
    };
    if let Some(dir) = spec.log_path.parent() {
        std::fs::create_dir_all(dir).map_err(log_error)?;
    }
    let stdout = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_path)
        .map_err(log_error)?;
    let stderr = stdout.try_clone().map_err(log_error)?;
    let mut command = tokio::process::Command::new(&spec.executable);
    command
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter())
        .current_dir(&spec.working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .process_group(0);
    let child = command.spawn().map_err(|source| ProcessError::Spawn {
        executable: spec.executable.clone(),
        source,
    })?;
    let pid = child
        .id()
        .ok_or_else(|| ProcessError::Vanished(spec.executable.clone()))?;
    // A process that exits at once still has a (zombie) stat entry until we reap it; fall back
    // to start time 0, which is only used for orphan recovery.
    let identity = ProcessIdentity::of(pid).unwrap_or(ProcessIdentity {
        pid,
        start_ticks: 0,
    });
    Ok((identity, child))
}

/// Signals the process group led by `pid`. Errors (the group is already gone) are ignored.
pub fn signal_group(pid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(raw), signal);
    }
}

/// Where a running container's process identity is recorded.
pub fn pid_record_path(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("pids").join(container)
}

pub fn record_pid(
    pod_dir: &Path,
    container: &str,
    identity: ProcessIdentity,
) -> std::io::Result<()> {
    let path = pid_record_path(pod_dir, container);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, identity.to_string())
}

pub fn forget_pid(pod_dir: &Path, container: &str) {
    let _ = std::fs::remove_file(pid_record_path(pod_dir, container));
}

/// Kills the process groups recorded under `pods_dir/*/pids/*` whose leaders still run with the
/// recorded start time (orphans of a crashed agent). Returns how many were killed.
pub fn kill_recorded_orphans(pods_dir: &Path) -> usize {
    let Ok(pods) = std::fs::read_dir(pods_dir) else {
        return 0;
    };
    let mut killed = 0;
    for pod in pods.flatten() {
        let Ok(records) = std::fs::read_dir(pod.path().join("pids")) else {
            continue;
        };
        for record in records.flatten() {
            let identity = std::fs::read_to_string(record.path())
                .ok()
                .and_then(|s| s.parse::<ProcessIdentity>().ok());
            if let Some(identity) = identity.filter(ProcessIdentity::is_alive) {
                signal_group(identity.pid, Signal::SIGKILL);
                killed += 1;
            }
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_awkward_names() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    98765 1000 100 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(('S', 98765)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn identity_round_trips_and_detects_liveness() {
        let me = ProcessIdentity::current().unwrap();
        assert!(me.is_alive());
        assert_eq!(me.to_string().parse::<ProcessIdentity>(), Ok(me));
        let impostor = ProcessIdentity {
            pid: me.pid,
            start_ticks: me.start_ticks + 1,
        };
        assert!(!impostor.is_alive());
        assert!("x y".parse::<ProcessIdentity>().is_err());
    }

    #[test]
    fn exit_codes_follow_runtime_conventions() {
        assert_eq!(
            ExitInfo::from(ExitStatus::from_raw(3 << 8)),
            ExitInfo {
                exit_code: 3,
                signal: None
            }
        );
        assert_eq!(
            ExitInfo::from(ExitStatus::from_raw(15)),
            ExitInfo {
                exit_code: 143,
                signal: Some(15)
            }
        );
    }

    #[tokio::test]
    async fn spawns_with_clean_env_and_logs_output() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = EnvList::default();
        env.set("GREETING", "hello");
        env.set("PATH", "/usr/bin:/bin");
        let spec = SpawnSpec {
            executable: PathBuf::from("/bin/sh"),
            args: vec![
                "-c".into(),
                "echo $GREETING; echo err >&2; echo ${HOME:-nohome}; pwd; exit 7".into(),
            ],
            env,
            working_dir: dir.path().to_path_buf(),
            log_path: dir.path().join("logs/c/0.log"),
        };
        let (identity, mut child) = spawn(&spec).unwrap();
        assert!(identity.pid > 0);
        let status = child.wait().await.unwrap();
        assert_eq!(ExitInfo::from(status).exit_code, 7);
        let log = std::fs::read_to_string(&spec.log_path).unwrap();
        let expected = format!("hello\nerr\nnohome\n{}\n", dir.path().display());
        assert_eq!(log, expected);
    }

    #[tokio::test]
    async fn signals_reach_the_whole_group_and_orphans_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let pod_dir = dir.path().join("pods/ns_p_u");
        let spec = SpawnSpec {
            executable: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), "sleep 30 & sleep 30; wait".into()],
            env: EnvList::default(),
            working_dir: dir.path().to_path_buf(),
            log_path: pod_dir.join("logs/c/0.log"),
        };
        let (identity, mut child) = spawn(&spec).unwrap();
        record_pid(&pod_dir, "c", identity).unwrap();
        let killed = kill_recorded_orphans(&dir.path().join("pods"));
        assert_eq!(killed, 1);
        let status = child.wait().await.unwrap();
        assert_eq!(ExitInfo::from(status).signal, Some(9));
        // The leader is reaped; nothing recorded is alive any more.
        assert_eq!(kill_recorded_orphans(&dir.path().join("pods")), 0);
        forget_pid(&pod_dir, "c");
        assert!(!pid_record_path(&pod_dir, "c").exists());
    }
}
