//! A real OCI registry on loopback (Debian's `docker-registry`, the CNCF distribution
//! registry) for checking pushes and pulls; stopped by pid when dropped.
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::proc::{self, DaemonSpec, PidRecord};

const PROGRAM: &str = "/usr/bin/docker-registry";

pub struct Registry {
    /// `127.0.0.1:PORT`
    pub address: String,
    record: Option<PidRecord>,
    dir: PathBuf,
}

/// The registry's configuration: filesystem storage under `storage`, loopback only, and with
/// `read_only` every write refused (what a registry in maintenance or without push rights does).
pub fn config(address: &str, storage: &Path, read_only: bool) -> String {
    format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n    readonly:\n      enabled: {read_only}\n\
         http:\n  addr: {address}\n  secret: fp-image-check\n",
        storage.display()
    )
}

/// A free port on 127.0.0.1 (free when asked; the registry binds it right after).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `GET /v2/` answered with 200: the registry serves the distribution API.
fn serves(address: &str) -> bool {
    let Ok(addr) = address.parse::<SocketAddr>() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

impl Registry {
    /// Starts a registry with its storage and log under `dir`.
    pub fn start(dir: &Path, read_only: bool) -> anyhow::Result<Self> {
        crate::apt::ensure(&["docker-registry"])?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let address = format!("127.0.0.1:{}", free_port()?);
        let config_path = dir.join("config.yml");
        std::fs::write(
            &config_path,
            config(&address, &dir.join("storage"), read_only),
        )?;
        let spec = DaemonSpec::new("docker-registry", Path::new(PROGRAM)).args([
            std::ffi::OsString::from("serve"),
            config_path.into_os_string(),
        ]);
        let record = proc::start(
            &spec,
            &dir.join("registry.log"),
            &proc::pid_file_path(&dir.join("pids"), 1, "registry"),
        )?;
        let registry = Self {
            address,
            record: Some(record),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !serves(&registry.address) {
            let running = registry.record.as_ref().is_some_and(proc::is_running);
            if !running || Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
                bail!(
                    "docker-registry on {} did not serve /v2/ ({}): {}",
                    registry.address,
                    if running { "timed out" } else { "exited" },
                    log.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(registry)
    }

    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(record) = self.record.take() {
            proc::stop(&record, Duration::from_secs(10));
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_binds_loopback_and_can_refuse_writes() {
        let c = config("127.0.0.1:5000", Path::new("/s"), true);
        assert!(c.contains("addr: 127.0.0.1:5000"));
        assert!(c.contains("rootdirectory: /s"));
        assert!(c.contains("readonly:\n      enabled: true"));
        assert!(config("127.0.0.1:5000", Path::new("/s"), false).contains("enabled: false\nhttp"));
    }

    #[test]
    fn nothing_listening_does_not_serve() {
        let port = free_port().unwrap();
        assert!(!serves(&format!("127.0.0.1:{port}")));
        assert!(!serves("not an address"));
    }
}
