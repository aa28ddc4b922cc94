//! A throwaway PostgreSQL (Debian's package) on a free loopback port, run as user postgres
//! and stopped by pid.
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use sha2::{Digest, Sha256};

use crate::proc::{self, DaemonSpec, PidRecord};
use crate::{apt, interrupt};

pub const DEBIAN_PACKAGE: &str = "postgresql";

/// uid and gid of `user` from /etc/passwd-formatted text.
pub fn passwd_ids(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == user).then_some(())?;
        let _password = f.next()?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}

/// The newest `/usr/lib/postgresql/<major>/bin` that has both initdb and postgres.
pub fn newest_bin_dir(majors: &[String]) -> Option<PathBuf> {
    let mut numeric: Vec<(u32, &String)> = majors
        .iter()
        .filter_map(|m| m.parse().ok().map(|n| (n, m)))
        .collect();
    numeric.sort();
    numeric
        .into_iter()
        .rev()
        .map(|(_, m)| Path::new("/usr/lib/postgresql").join(m).join("bin"))
        .find(|bin| bin.join("initdb").is_file() && bin.join("postgres").is_file())
}

fn installed_bin_dir() -> Option<PathBuf> {
    let majors: Vec<String> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    newest_bin_dir(&majors)
}

/// A running server and where it keeps its files.
pub struct Postgres {
    pub url: String,
    /// pg_dump / pg_restore of the same major as the server (for the backup tests).
    pub bin_dir: PathBuf,
    port: u16,
    password: String,
    state: PathBuf,
    data_root: PathBuf,
    record: PidRecord,
}

/// Data lives outside the workspace so the postgres user can reach it wherever the
/// checkout is (e.g. below a 0700 home); the name is derived from the state directory so a
/// later run finds and removes what a crashed one left.
fn data_root_for(state: &Path) -> PathBuf {
    let digest = Sha256::digest(state.as_os_str().as_encoded_bytes());
    std::env::temp_dir().join(format!("fp-postgres-{}", hex::encode(&digest[..6])))
}

fn random_password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 18];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(hex::encode(bytes))
}

fn pid_file(state: &Path) -> PathBuf {
    proc::pid_file_path(&state.join("pids"), 1, "postgres")
}

fn database_url(password: &str, port: u16, database: &str) -> String {
    format!("postgres://postgres:{password}@127.0.0.1:{port}/{database}")
}

/// `url` (one of ours, on 127.0.0.1) with another host.
pub fn url_with_host(url: &str, host: &str) -> String {
    url.replacen("@127.0.0.1:", &format!("@{host}:"), 1)
}

/// Stops a server an earlier run left behind and removes its files.
pub fn clean(state: &Path) -> anyhow::Result<()> {
    for line in proc::stop_all(&state.join("pids"), Duration::from_secs(20)) {
        eprintln!("[postgres] stopped leftover {line}");
    }
    let data_root = data_root_for(state);
    if data_root.exists() {
        std::fs::remove_dir_all(&data_root)
            .with_context(|| format!("removing {}", data_root.display()))?;
    }
    if state.exists() {
        std::fs::remove_dir_all(state).with_context(|| format!("removing {}", state.display()))?;
    }
    Ok(())
}

/// How long `start` waits for the new server to accept connections.
const START_LIMIT: Duration = Duration::from_secs(300);

/// Installs PostgreSQL if needed, initialises a fresh cluster and starts it on 127.0.0.1.
pub fn start(state: &Path) -> anyhow::Result<Postgres> {
    start_listening(state, None)
}

/// A second address the server listens on, and the clients it lets in there: pods of the real
/// node reach the host at the bridge's address (never anything off the machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlsoListen<'a> {
    pub address: &'a str,
    pub clients: &'a str,
}

/// `listen_addresses`: loopback, plus `also`'s address.
fn listen_addresses(also: Option<AlsoListen>) -> String {
    match also {
        None => "127.0.0.1".to_owned(),
        Some(a) => format!("127.0.0.1,{}", a.address),
    }
}

/// The `pg_hba.conf` line that lets `also`'s clients in with a password.
fn hba_line(also: AlsoListen) -> String {
    format!("host all all {} scram-sha-256\n", also.clients)
}

/// Like [`start`], also listening on `also.address` for `also.clients`.
pub fn start_listening(state: &Path, also: Option<AlsoListen>) -> anyhow::Result<Postgres> {
    let t0 = Instant::now();
    clean(state)?;
    if installed_bin_dir().is_none() {
        apt::ensure(&[DEBIAN_PACKAGE])?;
    }
    let bin =
        installed_bin_dir().context("PostgreSQL binaries not found in /usr/lib/postgresql")?;
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let (uid, gid) = passwd_ids(&passwd, "postgres").context("no `postgres` user")?;

    let data_root = data_root_for(state);
    let data = data_root.join("data");
    std::fs::create_dir_all(&data_root)?;
    std::os::unix::fs::chown(&data_root, Some(uid), Some(gid))?;
    std::fs::set_permissions(&data_root, std::fs::Permissions::from_mode(0o700))?;
    std::fs::create_dir_all(state.join("logs"))?;

    let password = random_password()?;
    let pwfile = data_root.join("pwfile");
    std::fs::write(&pwfile, &password)?;
    std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))?;
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))?;

    let log = state.join("logs").join("postgres.log");
    let out = std::fs::File::create(&log)?;
    let initdb = Command::new(bin.join("initdb"))
        .uid(uid)
        .gid(gid)
        .arg("-D")
        .arg(&data)
        .args([
            "--auth=scram-sha-256",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("running initdb")?;
    std::fs::remove_file(&pwfile)?;
    if !initdb.success() {
        bail!("initdb failed ({initdb}); see {}", log.display());
    }
    if let Some(also) = also {
        let hba = data.join("pg_hba.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&hba)
            .with_context(|| format!("opening {}", hba.display()))?;
        std::io::Write::write_all(&mut file, hba_line(also).as_bytes())?;
    }

    let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port();
    let mut spec = DaemonSpec::new("postgres", &bin.join("postgres")).args([
        "-D".into(),
        data.display().to_string(),
        "-p".into(),
        port.to_string(),
        "-k".into(),
        data_root.display().to_string(),
        "-c".into(),
        format!("listen_addresses={}", listen_addresses(also)),
        // Test data: skip durability work.
        "-c".into(),
        "fsync=off".into(),
        "-c".into(),
        "synchronous_commit=off".into(),
        "-c".into(),
        "full_page_writes=off".into(),
        // Every API pod keeps a connection or two; `bench operator` runs 400 of them at once.
        "-c".into(),
        "max_connections=1000".into(),
    ]);
    // SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for clients to leave.
    spec.stop_signal = Signal::SIGINT;
    spec.run_as = Some((uid, gid));
    let record = proc::start(
        &spec,
        &state.join("logs").join("postgres.log"),
        &pid_file(state),
    )?;

    let pg_isready = bin.join("pg_isready");
    // Measured from the server's start, not from `t0` (which includes an apt install on a fresh
    // machine and initdb); generous, since a busy machine starts it late; a server that exits
    // fails at once.
    let launched = Instant::now();
    loop {
        interrupt::check()?;
        let ready = Command::new(&pg_isready)
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            break;
        }
        if !proc::is_running(&record) {
            bail!("postgres exited during start; see {}", log.display());
        }
        if launched.elapsed() > START_LIMIT {
            proc::stop(&record, Duration::from_secs(10));
            bail!(
                "postgres did not accept connections within {}s; see {}",
                START_LIMIT.as_secs(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "[postgres] ready on {}:{port} (pid {}) after {:.1}s ({:.1}s after its start)",
        listen_addresses(also),
        record.pid,
        t0.elapsed().as_secs_f64(),
        launched.elapsed().as_secs_f64()
    );
    Ok(Postgres {
        url: database_url(&password, port, "postgres"),
        bin_dir: bin.clone(),
        port,
        password: password.clone(),
        state: state.to_path_buf(),
        data_root,
        record,
    })
}

impl Postgres {
    /// The superuser URL of database `name` on this server.
    pub fn url_for(&self, name: &str) -> String {
        database_url(&self.password, self.port, name)
    }

    /// The URL of database `name` for clients that reach the server at `host` (pods of the
    /// real node: the address given to [`start_listening`]).
    pub fn url_at(&self, host: &str, name: &str) -> String {
        url_with_host(&database_url(&self.password, self.port, name), host)
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        anyhow::ensure!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "database name {name:?} must be lowercase letters and underscores"
        );
        self.query(&format!("CREATE DATABASE {name}"))
            .with_context(|| format!("creating database {name}"))?;
        Ok(self.url_for(name))
    }

    /// Runs `sql` as the superuser in database `postgres` and returns psql's unaligned output
    /// (the password travels in the environment, never on a command line).
    pub fn query(&self, sql: &str) -> anyhow::Result<String> {
        let out = Command::new(self.bin_dir.join("psql"))
            .env("PGPASSWORD", &self.password)
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-A",
                "-t",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .output()
            .context("running psql")?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    pub fn stop(self) -> anyhow::Result<()> {
        let outcome = proc::stop(&self.record, Duration::from_secs(20));
        eprintln!("[postgres] stopped pid {}: {outcome:?}", self.record.pid);
        std::fs::remove_dir_all(&self.data_root)
            .with_context(|| format!("removing {}", self.data_root.display()))?;
        std::fs::remove_dir_all(&self.state)
            .with_context(|| format!("removing {}", self.state.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_point_at_loopback() {
        assert_eq!(
            database_url("pw", 5433, "football"),
            "postgres://postgres:pw@127.0.0.1:5433/football"
        );
    }

    #[test]
    fn a_second_address_is_listened_on_and_only_its_clients_let_in() {
        assert_eq!(listen_addresses(None), "127.0.0.1");
        let pods = AlsoListen {
            address: "198.18.0.1",
            clients: "198.18.0.0/24",
        };
        assert_eq!(listen_addresses(Some(pods)), "127.0.0.1,198.18.0.1");
        assert_eq!(hba_line(pods), "host all all 198.18.0.0/24 scram-sha-256\n");
        assert_eq!(
            url_with_host(
                "postgres://postgres:pw@127.0.0.1:5433/football",
                "198.18.0.1"
            ),
            "postgres://postgres:pw@198.18.0.1:5433/football"
        );
    }

    #[test]
    fn finds_the_postgres_user() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\npostgres:x:104:110:PostgreSQL:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(passwd_ids(passwd, "postgres"), Some((104, 110)));
        assert_eq!(passwd_ids(passwd, "post"), None);
        assert_eq!(passwd_ids("postgres:x:bad:1:::", "postgres"), None);
    }

    #[test]
    fn data_root_is_stable_per_state_dir_and_distinct_between_them() {
        let a = data_root_for(Path::new("/w1/target/fp-state/postgres"));
        assert_eq!(a, data_root_for(Path::new("/w1/target/fp-state/postgres")));
        assert_ne!(a, data_root_for(Path::new("/w2/target/fp-state/postgres")));
        assert!(
            a.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("fp-postgres-")
        );
    }
}
