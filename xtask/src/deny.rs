//! `cargo xtask deny`: cargo-deny's advisories, licenses, bans and sources checks of Cargo.lock
//! against deny.toml. The RustSec database is fetched live when the network allows (within
//! [`LIVE_FETCH_LIMIT`]); otherwise the offline snapshot (`../shared/advisory-db`, plain files
//! from one commit) is turned into the git checkout cargo-deny expects and checked against.
//! Which database was used is always printed.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use chrono::NaiveDate;

use crate::{paths, proc, steps, tools};

/// Environment variable naming the offline snapshot folder (default `../shared/advisory-db`).
pub const SNAPSHOT_ENV: &str = "FP_ADVISORY_DB";
/// Read by deny.toml's `db-path`: the folder holding the database checkout.
const DB_ROOT_ENV: &str = "FP_ADVISORY_DB_ROOT";
/// A fetch of the live database takes seconds; where there is no route out it must not take
/// minutes of every test run.
const LIVE_FETCH_LIMIT: Duration = Duration::from_secs(30);
/// The folder cargo-deny checks the default database out into below `db-path`: the URL's last
/// segment and an xxhash64 of the lower-cased URL (cargo-deny's `url_to_db_path`; fixed for its
/// default URL, which deny.toml keeps).
const DB_DIR: &str = "advisory-db-3157b0e258782691";

/// The commit and the date the snapshot's README states it was exported from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotVersion {
    pub commit: String,
    pub date: NaiveDate,
}

impl SnapshotVersion {
    fn short(&self) -> &str {
        self.commit.get(..7).unwrap_or(&self.commit)
    }
}

/// "… from commit <40 hex> (committed YYYY-MM-DD) …", as the snapshot's README says it.
pub fn snapshot_version(readme: &str) -> Option<SnapshotVersion> {
    let words: Vec<&str> = readme.split_whitespace().collect();
    let commit = words
        .windows(2)
        .find(|w| w[0] == "commit" && w[1].len() == 40)
        .map(|w| w[1])
        .filter(|c| c.chars().all(|ch| ch.is_ascii_hexdigit()))?;
    let date = words
        .windows(2)
        .find(|w| w[0] == "(committed")
        .map(|w| w[1].trim_end_matches([')', ',', '.']))
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())?;
    Some(SnapshotVersion {
        commit: commit.to_ascii_lowercase(),
        date,
    })
}

/// The snapshot folder: `$FP_ADVISORY_DB`, else `../shared/advisory-db` beside the workspace.
pub fn snapshot_dir(env: Option<&str>, workspace: &Path) -> PathBuf {
    env.filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("../shared/advisory-db"))
}

/// The database a check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// Fetched just now into this `db-path`.
    Live { root: PathBuf },
    /// The offline snapshot, because the live fetch failed for `why`.
    Snapshot {
        dir: PathBuf,
        version: SnapshotVersion,
        why: String,
    },
}

/// The live database when its fetch worked, else the snapshot; neither is an error naming both
/// causes (an audit against no database must not pass).
pub fn choose(
    live: Result<PathBuf, String>,
    snapshot: Result<(PathBuf, SnapshotVersion), String>,
) -> anyhow::Result<Database> {
    match (live, snapshot) {
        (Ok(root), _) => Ok(Database::Live { root }),
        (Err(why), Ok((dir, version))) => Ok(Database::Snapshot { dir, version, why }),
        (Err(live), Err(snapshot)) => anyhow::bail!(
            "no advisory database: the live one could not be fetched ({live}) and the offline \
             snapshot is unusable ({snapshot}; set {SNAPSHOT_ENV} to its folder)"
        ),
    }
}

/// A snapshot older than this is still used, with a warning that it misses newer advisories.
const STALE_AFTER_DAYS: i64 = 90;

/// The line that says which database the check used.
pub fn describe(db: &Database, today: NaiveDate) -> String {
    match db {
        Database::Live { root } => {
            format!(
                "[deny] advisory database: live, fetched now into {}",
                root.display()
            )
        }
        Database::Snapshot { dir, version, why } => {
            let age = (today - version.date).num_days();
            let mut line = format!(
                "[deny] advisory database: offline snapshot {} (commit {}, {}, {age} days old); \
                 the live one could not be fetched: {why}",
                dir.display(),
                version.short(),
                version.date,
            );
            if age > STALE_AFTER_DAYS {
                line.push_str(&format!(
                    "\n[deny] WARNING: the snapshot is over {STALE_AFTER_DAYS} days old: advisories \
                     published since are not checked; refresh it"
                ));
            }
            line
        }
    }
}

/// cargo-deny's global options: the workspace, its deny.toml and the lock file as it is.
fn global_args(workspace: &Path) -> Vec<String> {
    let path = |p: &str| workspace.join(p).display().to_string();
    vec![
        "--manifest-path".into(),
        path("Cargo.toml"),
        "--config".into(),
        path("deny.toml"),
        "--locked".into(),
    ]
}

/// Fetches the live database into deny.toml's `db-path` (nothing else).
pub fn fetch_args(workspace: &Path) -> Vec<String> {
    let mut args = global_args(workspace);
    args.extend(["fetch".into(), "db".into()]);
    args
}

/// Checks everything against the database already in `db-path`: `--offline` makes cargo-deny
/// open it as it is and fetch nothing.
/// Inclusion graphs are left out: the duplicate warnings would print thousands of lines
/// (`cargo tree -i CRATE@VERSION --target all --all-features` shows who pulls a crate in).
pub fn check_args(workspace: &Path) -> Vec<String> {
    let mut args = global_args(workspace);
    args.extend([
        "--offline".into(),
        "check".into(),
        "--hide-inclusion-graph".into(),
    ]);
    args
}

/// Turns the snapshot's plain files into the git checkout cargo-deny opens: `<root>/DB_DIR`,
/// one commit dated as the snapshot and a HEAD with that time, so cargo-deny's staleness check
/// sees the snapshot's real age (it takes the newer of HEAD's commit and file times). Built
/// beside and renamed into place, so a half-built copy is never used; kept for later runs.
pub fn prepare_snapshot(
    snapshot: &Path,
    version: &SnapshotVersion,
    root: &Path,
) -> anyhow::Result<()> {
    if root.join(DB_DIR).join(".git").join("HEAD").is_file() {
        return Ok(());
    }
    // Something else in the way (not a finished copy): made anew.
    if root.exists() {
        std::fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    }
    let partial = root.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    let db = partial.join(DB_DIR);
    copy_tree(snapshot, &db)
        .with_context(|| format!("copying {} to {}", snapshot.display(), db.display()))?;
    let stamp = format!("{}T00:00:00Z", version.date);
    let message = format!(
        "RustSec advisory database {} (offline snapshot)",
        version.commit
    );
    let git = |args: &[&str]| -> anyhow::Result<()> {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(&db)
            .args(["-c", "user.name=cargo xtask deny"])
            .args(["-c", "user.email=xtask@localhost"])
            .args([
                "-c",
                "commit.gpgsign=false",
                "-c",
                "core.hooksPath=/dev/null",
            ])
            .args(args)
            .env("GIT_AUTHOR_DATE", &stamp)
            .env("GIT_COMMITTER_DATE", &stamp)
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE");
        let out = cmd.output().context("running git")?;
        anyhow::ensure!(
            out.status.success(),
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    };
    git(&["init", "-q", "-b", "main"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", &message])?;
    let when = version
        .date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .context("snapshot date out of range")?;
    std::fs::File::options()
        .write(true)
        .open(db.join(".git/HEAD"))
        .and_then(|f| f.set_modified(SystemTime::from(when)))
        .context("dating .git/HEAD")?;
    if let Some(parent) = root.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(&partial, root)
        .or_else(|e| {
            // Another run finished the same copy first: theirs is as good.
            if root.join(DB_DIR).join(".git").is_dir() {
                let _ = std::fs::remove_dir_all(&partial);
                Ok(())
            } else {
                Err(e)
            }
        })
        .with_context(|| format!("moving {} to {}", partial.display(), root.display()))
}

/// Copies files and folders (not symlinks, not a `.git` the source might have).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(&name))?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

fn locate_snapshot() -> Result<(PathBuf, SnapshotVersion), String> {
    let dir = snapshot_dir(
        std::env::var(SNAPSHOT_ENV).ok().as_deref(),
        &paths::workspace_root(),
    );
    let readme = dir.join("README.md");
    let text =
        std::fs::read_to_string(&readme).map_err(|e| format!("{}: {e}", readme.display()))?;
    let version = snapshot_version(&text).ok_or_else(|| {
        format!(
            "{} names no `commit <sha> (committed YYYY-MM-DD)`",
            readme.display()
        )
    })?;
    // Tidy the `..` away for the line that names it.
    let dir = dir.canonicalize().unwrap_or(dir);
    Ok((dir, version))
}

/// Why the live fetch failed, short: cargo-deny has printed git's own words just above.
fn fetch_failure(e: &steps::StepError) -> String {
    match e {
        steps::StepError::Failed { status, .. } => format!("`cargo deny fetch db` {status}"),
        steps::StepError::TimedOut { limit, .. } => {
            format!("no answer within {}s", limit.as_secs())
        }
        other => other.to_string(),
    }
}

/// `cargo xtask deny`.
pub fn check() -> anyhow::Result<()> {
    let deny = tools::cargo_deny()?;
    let workspace = paths::workspace_root();
    let dbs = paths::cache_dir().join("advisory-dbs");

    // `--offline` below needs every crate of the lock file (all targets) on disk; cargo fetches
    // only what is missing.
    steps::run(&mut crate::cargo::command(&["fetch", "--locked"]))?;

    let live_root = dbs.join("live");
    let mut fetch = Command::new(&deny);
    fetch
        .args(fetch_args(&workspace))
        .env(DB_ROOT_ENV, &live_root)
        // git must fail, not ask for credentials or wait on a stalled transfer.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_HTTP_LOW_SPEED_LIMIT", "1000")
        .env("GIT_HTTP_LOW_SPEED_TIME", "10");
    let live = match steps::run_within(&mut fetch, LIVE_FETCH_LIMIT) {
        Ok(_) => Ok(live_root.clone()),
        // Ctrl-C means stop, not "use the snapshot".
        Err(e @ steps::StepError::Interrupted { .. }) => return Err(e.into()),
        Err(e) => Err(fetch_failure(&e)),
    };

    let db = choose(live, locate_snapshot())?;
    let root = match &db {
        Database::Live { root } => root.clone(),
        Database::Snapshot { dir, version, .. } => {
            let root = dbs.join(format!("snapshot-{}", version.short()));
            prepare_snapshot(dir, version, &root)?;
            root
        }
    };
    eprintln!("{}", describe(&db, chrono::Utc::now().date_naive()));
    if let Database::Live { root } = &db
        && let Ok(head) = proc::stdout_of(
            "git",
            &[
                "-C".as_ref(),
                root.join(DB_DIR).as_os_str(),
                "log".as_ref(),
                "-1".as_ref(),
                "--format=%h %cs".as_ref(),
            ],
        )
    {
        eprintln!(
            "[deny] live database at commit {}",
            String::from_utf8_lossy(&head).trim()
        );
    }

    let mut cmd = Command::new(&deny);
    cmd.args(check_args(&workspace)).env(DB_ROOT_ENV, &root);
    steps::run(&mut cmd).context(
        "the dependency audit failed (deny.toml; docs/security.md#dependency-audit says how to \
         upgrade or add a dated exception)",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "# RustSec advisory database (offline snapshot)\n\n\
        The `crates/` folder of the public RustSec advisory database,\n\
        exported without git history from commit bf5c0d245a92671908518d7e765914d437954ed6\n\
        (committed 2026-08-21). One Markdown file per advisory.\n";

    fn bf5c() -> SnapshotVersion {
        SnapshotVersion {
            commit: "bf5c0d245a92671908518d7e765914d437954ed6".into(),
            date: NaiveDate::from_ymd_opt(2026, 8, 21).unwrap(),
        }
    }

    #[test]
    fn reads_commit_and_date_from_the_snapshot_readme() {
        assert_eq!(snapshot_version(README), Some(bf5c()));
        assert_eq!(
            snapshot_version("commit bf5c0d2 (committed 2026-08-21)"),
            None
        );
        assert_eq!(
            snapshot_version("commit bf5c0d245a92671908518d7e765914d437954ed6, no date"),
            None
        );
    }

    #[test]
    fn the_snapshot_sits_beside_the_workspace_unless_overridden() {
        let ws = Path::new("/work/main");
        assert_eq!(
            snapshot_dir(None, ws),
            PathBuf::from("/work/main/../shared/advisory-db")
        );
        assert_eq!(snapshot_dir(Some(""), ws), snapshot_dir(None, ws));
        assert_eq!(snapshot_dir(Some("/db"), ws), PathBuf::from("/db"));
    }

    #[test]
    fn live_wins_snapshot_is_the_fallback_and_neither_fails() {
        let snap = || Ok((PathBuf::from("/s"), bf5c()));
        assert_eq!(
            choose(Ok(PathBuf::from("/live")), snap()).unwrap(),
            Database::Live {
                root: PathBuf::from("/live")
            }
        );
        let db = choose(Err("could not resolve host".into()), snap()).unwrap();
        assert_eq!(
            db,
            Database::Snapshot {
                dir: PathBuf::from("/s"),
                version: bf5c(),
                why: "could not resolve host".into()
            }
        );
        let fresh = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
        assert_eq!(
            describe(&db, fresh),
            "[deny] advisory database: offline snapshot /s (commit bf5c0d2, 2026-08-21, 11 \
             days old); the live one could not be fetched: could not resolve host"
        );
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        assert!(
            describe(&db, today).ends_with(
                "104 days old); the live one could not be fetched: could not resolve host\n\
                 [deny] WARNING: the snapshot is over 90 days old: advisories published since \
                 are not checked; refresh it"
            ),
            "{}",
            describe(&db, today)
        );
        let neither = choose(Err("timed out".into()), Err("no README".into())).unwrap_err();
        let text = neither.to_string();
        assert!(
            text.contains("timed out") && text.contains("no README"),
            "{text}"
        );
    }

    #[test]
    fn fetch_touches_only_the_database_and_check_reads_it_offline() {
        let ws = Path::new("/w");
        assert_eq!(
            fetch_args(ws).join(" "),
            "--manifest-path /w/Cargo.toml --config /w/deny.toml --locked fetch db"
        );
        assert_eq!(
            check_args(ws).join(" "),
            "--manifest-path /w/Cargo.toml --config /w/deny.toml --locked --offline check \
             --hide-inclusion-graph"
        );
    }

    #[test]
    fn deny_toml_reads_the_database_root_xtask_sets() {
        let toml = std::fs::read_to_string(paths::workspace_root().join("deny.toml")).unwrap();
        assert!(
            toml.contains(&format!("db-path = \"${{{DB_ROOT_ENV}:-")),
            "deny.toml's db-path must expand ${DB_ROOT_ENV}"
        );
        // The checkout folder name is cargo-deny's for its default URL: no db-urls override.
        assert!(
            !toml.contains("db-urls"),
            "DB_DIR assumes the default database URL"
        );
    }

    /// The snapshot as cargo-deny sees it, and a real failure: a scratch crate on rsa 0.10.0
    /// (RUSTSEC-2023-0071, in our lock file, so already downloaded) must fail the check with
    /// that id. Needs the built cargo-deny and the snapshot: `cargo xtask test` has both and
    /// sets FP_REQUIRE_DENY=1; elsewhere it skips when either is missing.
    #[test]
    fn cargo_deny_fails_on_a_known_vulnerable_crate_with_the_snapshot() {
        let required = std::env::var("FP_REQUIRE_DENY").as_deref() == Ok("1");
        let (Some(deny), Ok((snapshot, version))) =
            (tools::cargo_deny_if_built(), locate_snapshot())
        else {
            assert!(
                !required,
                "FP_REQUIRE_DENY=1 but cargo-deny or the snapshot is missing"
            );
            eprintln!("skipped: cargo-deny not built or no advisory snapshot");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("dbs");
        prepare_snapshot(&snapshot, &version, &root).unwrap();
        prepare_snapshot(&snapshot, &version, &root).unwrap(); // a second run reuses it
        let head = proc::stdout_of(
            "git",
            &[
                "-C".as_ref(),
                root.join(DB_DIR).as_os_str(),
                "log".as_ref(),
                "-1".as_ref(),
                "--format=%cs".as_ref(),
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&head).trim(),
            version.date.to_string()
        );

        let krate = dir.path().join("scratch");
        std::fs::create_dir_all(krate.join("src")).unwrap();
        std::fs::write(
            krate.join("Cargo.toml"),
            "[package]\nname = \"scratch\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
             publish = false\n\n[dependencies]\n\
             rsa = { version = \"=0.10.0\", default-features = false }\n\n[workspace]\n",
        )
        .unwrap();
        std::fs::write(krate.join("src/lib.rs"), "").unwrap();
        // Our lock file: the scratch crate resolves to versions already on disk.
        std::fs::copy(
            paths::workspace_root().join("Cargo.lock"),
            krate.join("Cargo.lock"),
        )
        .unwrap();
        std::fs::write(
            krate.join("deny.toml"),
            format!(
                "[advisories]\ndb-path = \"{}\"\nmaximum-db-staleness = \"P3650D\"\n",
                root.display()
            ),
        )
        .unwrap();
        let out = Command::new(&deny)
            .current_dir(&krate)
            .args(["--offline", "--color", "never", "check", "advisories"])
            .output()
            .unwrap();
        // Diagnostics go to stderr, the summary line to stdout.
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            !out.status.success(),
            "cargo-deny passed rsa 0.10.0:\n{said}"
        );
        assert!(said.contains("ID: RUSTSEC-2023-0071"), "{said}");
        assert!(said.contains("advisories FAILED"), "{said}");
    }
}
