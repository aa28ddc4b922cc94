//! Installing missing Debian packages non-interactively.
use std::process::Command;
use std::time::Duration;

use crate::steps;

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error("packages are missing and only root can install them: run `apt-get install -y {}`", .missing.join(" "))]
    NotRoot { missing: Vec<String> },
    #[error(transparent)]
    Step(#[from] steps::StepError),
}

pub fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && installed_status(&String::from_utf8_lossy(&o.stdout)))
}

/// `dpkg-query -f=${Status}` prints e.g. "install ok installed".
pub fn installed_status(status: &str) -> bool {
    status.trim().ends_with(" installed") && !status.contains("not-installed")
}

fn apt_get(args: &[&str]) -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        // Another process may hold the dpkg lock for a while; wait for it instead of failing.
        .args(["-o", "DPkg::Lock::Timeout=300"]);
    cmd
}

/// /proc/self belongs to the process's effective uid.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Installs whichever of `packages` is missing (running `apt-get update` first).
pub fn ensure(packages: &[&str]) -> Result<(), AptError> {
    let missing: Vec<String> = packages
        .iter()
        .filter(|p| !is_installed(p))
        .map(|p| p.to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !running_as_root() {
        return Err(AptError::NotRoot { missing });
    }
    eprintln!("[apt] installing {}", missing.join(" "));
    steps::run(&mut apt_get(&["update", "-q"]))?;
    let mut install = apt_get(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(&missing);
    // A concurrent apt run can still win the race for the lock; try again once.
    if steps::run(&mut install).is_err() {
        std::thread::sleep(Duration::from_secs(10));
        let mut again = apt_get(&["install", "-y", "-q", "--no-install-recommends"]);
        again.args(&missing);
        steps::run(&mut again)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dpkg_status() {
        assert!(installed_status("install ok installed"));
        assert!(!installed_status("deinstall ok config-files"));
        assert!(!installed_status("unknown ok not-installed"));
        assert!(!installed_status(""));
    }
}
