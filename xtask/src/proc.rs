//! Long-running processes: started detached with their output in a log file, recorded in a
//! pid file, and stopped by that pid only after checking it still runs the same program.
use std::ffi::OsString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

/// Runs a short command to its end (stdin closed) and returns what it printed; a failure says
/// the command line, its exit status and what it wrote to stderr.
pub fn stdout_of(program: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow::anyhow!("running {program}: {e}"))?;
    if !out.status.success() {
        let line: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        anyhow::bail!(
            "`{program} {}` failed ({}): {}",
            line.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        name: String,
        program: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed pid file {path}: {reason}")]
    PidFile { path: String, reason: &'static str },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ProcError + '_ {
    move |source| ProcError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, OsString)>,
    /// Signal that asks the program for a clean, prompt shutdown.
    pub stop_signal: Signal,
    /// Run with this uid/gid (e.g. PostgreSQL refuses to run as root).
    pub run_as: Option<(u32, u32)>,
}

impl DaemonSpec {
    pub fn new(name: &str, program: &Path) -> Self {
        Self {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            stop_signal: Signal::SIGTERM,
            run_as: None,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// The content of a pid file: which process, running which executable, stopped how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidRecord {
    pub name: String,
    pub pid: i32,
    pub exe: PathBuf,
    pub stop_signal: Signal,
}

impl PidRecord {
    pub fn render(&self) -> String {
        format!(
            "name={}\npid={}\nexe={}\nsignal={}\n",
            self.name,
            self.pid,
            self.exe.display(),
            self.stop_signal.as_str()
        )
    }

    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .map(str::to_string)
        };
        let name = field("name").ok_or("missing name")?;
        let pid = field("pid")
            .ok_or("missing pid")?
            .parse::<i32>()
            .map_err(|_| "bad pid")?;
        if pid <= 1 {
            return Err("pid out of range");
        }
        let exe = PathBuf::from(field("exe").ok_or("missing exe")?);
        let stop_signal = field("signal")
            .ok_or("missing signal")?
            .parse::<Signal>()
            .map_err(|_| "bad signal")?;
        Ok(Self {
            name,
            pid,
            exe,
            stop_signal,
        })
    }
}

/// Starts `spec` in its own process group (a terminal's Ctrl-C reaches xtask, which then stops
/// it in order), appends its output to `log`, and writes `pid_file`.
pub fn start(spec: &DaemonSpec, log: &Path, pid_file: &Path) -> Result<PidRecord, ProcError> {
    let program = fs::canonicalize(&spec.program).map_err(io_err(&spec.program))?;
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err(log))?;
    let err = out.try_clone().map_err(io_err(log))?;
    let mut cmd = Command::new(&program);
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    if let Some((uid, gid)) = spec.run_as {
        cmd.uid(uid).gid(gid);
    }
    let child = cmd.spawn().map_err(|source| ProcError::Spawn {
        name: spec.name.clone(),
        program: program.display().to_string(),
        source,
    })?;
    let pid = i32::try_from(child.id()).map_err(|_| ProcError::PidFile {
        path: pid_file.display().to_string(),
        reason: "pid does not fit in i32",
    })?;
    let record = PidRecord {
        name: spec.name.clone(),
        pid,
        exe: program,
        stop_signal: spec.stop_signal,
    };
    if let Some(dir) = pid_file.parent() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    fs::write(pid_file, record.render()).map_err(io_err(pid_file))?;
    Ok(record)
}

pub fn read_pid_file(path: &Path) -> Result<PidRecord, ProcError> {
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    PidRecord::parse(&text).map_err(|reason| ProcError::PidFile {
        path: path.display().to_string(),
        reason,
    })
}

/// True while `record.pid` is alive (not a zombie) and still runs `record.exe`, so a pid that
/// the kernel reused for another program is never signalled.
pub fn is_running(record: &PidRecord) -> bool {
    reap(record.pid);
    let proc_dir = PathBuf::from(format!("/proc/{}", record.pid));
    let Ok(stat) = fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    if stat_state(&stat) == Some('Z') {
        return false;
    }
    match fs::read_link(proc_dir.join("exe")) {
        Ok(exe) => same_executable(&exe, &record.exe),
        Err(_) => false,
    }
}

/// Collects the exit status if the process is our own child (no-op otherwise).
fn reap(pid: i32) {
    let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

/// The state letter of `/proc/<pid>/stat` (the field after the parenthesised command name).
fn stat_state(stat: &str) -> Option<char> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.trim_start().chars().next()
}

/// `/proc/<pid>/exe` ends in " (deleted)" when the binary was replaced after start.
fn same_executable(link: &Path, recorded: &Path) -> bool {
    let link = link.to_string_lossy();
    let link = link.strip_suffix(" (deleted)").unwrap_or(&link);
    Path::new(link) == recorded
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    WasNotRunning,
    Gracefully,
    Killed,
}

/// Sends the record's stop signal, waits up to `grace`, then SIGKILL.
pub fn stop(record: &PidRecord, grace: Duration) -> Stopped {
    if !is_running(record) {
        return Stopped::WasNotRunning;
    }
    let pid = Pid::from_raw(record.pid);
    let _ = kill(pid, record.stop_signal);
    if wait_until_gone(record, grace) {
        return Stopped::Gracefully;
    }
    if is_running(record) {
        let _ = kill(pid, Signal::SIGKILL);
    }
    wait_until_gone(record, Duration::from_secs(5));
    Stopped::Killed
}

fn wait_until_gone(record: &PidRecord, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if !is_running(record) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Pid files in `dir` named `NN-name.pid`, in start order.
pub fn pid_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "pid"))
        .collect();
    files.sort();
    files
}

/// Stops every process recorded in `dir`, newest first, and removes the pid files.
/// Returns a line per process for the caller to print.
pub fn stop_all(dir: &Path, grace: Duration) -> Vec<String> {
    let mut report = Vec::new();
    for file in pid_files(dir).into_iter().rev() {
        match read_pid_file(&file) {
            Ok(record) => {
                let outcome = stop(&record, grace);
                report.push(format!("{} (pid {}): {outcome:?}", record.name, record.pid));
            }
            Err(e) => report.push(format!("skipped {e}")),
        }
        let _ = fs::remove_file(&file);
    }
    report
}

/// The pid file for the `seq`-th process started under `dir`.
pub fn pid_file_path(dir: &Path, seq: usize, name: &str) -> PathBuf {
    dir.join(format!("{seq:02}-{name}.pid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_record_round_trips() {
        let rec = PidRecord {
            name: "etcd".into(),
            pid: 4242,
            exe: PathBuf::from("/cache/bin/etcd"),
            stop_signal: Signal::SIGINT,
        };
        assert_eq!(PidRecord::parse(&rec.render()), Ok(rec));
    }

    #[test]
    fn pid_record_rejects_garbage() {
        assert_eq!(PidRecord::parse("pid=12\n"), Err("missing name"));
        assert_eq!(
            PidRecord::parse("name=a\npid=x\nexe=/a\nsignal=SIGTERM"),
            Err("bad pid")
        );
        assert_eq!(
            PidRecord::parse("name=a\npid=1\nexe=/a\nsignal=SIGTERM"),
            Err("pid out of range")
        );
        assert_eq!(
            PidRecord::parse("name=a\npid=9\nexe=/a\nsignal=NOPE"),
            Err("bad signal")
        );
    }

    #[test]
    fn stat_state_handles_spaces_and_parens_in_names() {
        assert_eq!(stat_state("123 (kube apiserver) S 1 2 3"), Some('S'));
        assert_eq!(stat_state("77 (a) b)) Z 1"), Some('Z'));
        assert_eq!(stat_state("garbage"), None);
    }

    #[test]
    fn deleted_binaries_still_match() {
        assert!(same_executable(
            Path::new("/b/etcd (deleted)"),
            Path::new("/b/etcd")
        ));
        assert!(!same_executable(
            Path::new("/usr/bin/sleep"),
            Path::new("/b/etcd")
        ));
    }

    #[test]
    fn starts_and_stops_a_real_process_by_pid() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = pid_file_path(dir.path(), 1, "sleeper");
        let spec = DaemonSpec::new("sleeper", Path::new("/bin/sleep")).args(["30"]);
        let rec = start(&spec, &dir.path().join("sleeper.log"), &pid_file).unwrap();
        assert!(is_running(&rec));
        assert_eq!(read_pid_file(&pid_file).unwrap(), rec);
        // The grace is a limit, not a wait: `sleep` ends on SIGTERM at once, and a busy machine
        // must not turn "Gracefully" into "Killed" by being slow to reap it.
        let report = stop_all(dir.path(), Duration::from_secs(120));
        assert_eq!(
            report,
            vec![format!("sleeper (pid {}): Gracefully", rec.pid)]
        );
        assert!(!is_running(&rec));
        assert!(pid_files(dir.path()).is_empty());
    }

    #[test]
    fn a_reused_pid_running_another_program_is_left_alone() {
        let me = PidRecord {
            name: "impostor".into(),
            pid: i32::try_from(std::process::id()).unwrap(),
            exe: PathBuf::from("/nonexistent/etcd"),
            stop_signal: Signal::SIGKILL,
        };
        assert!(!is_running(&me));
        assert_eq!(stop(&me, Duration::from_millis(10)), Stopped::WasNotRunning);
    }
}
