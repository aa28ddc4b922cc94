//! The `backup`, `restore`, `verify` and `backups` subcommands: flags, environment, the one-line
//! JSON summary on stdout (also written to --summary-file, e.g. the Job's termination log) and
//! the exit code (see [`Failure::exit_code`]).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use super::create::{BackupRequest, run_backup};
use super::destination::Destination;
use super::id::BackupSelector;
use super::list::{ListRequest, render_table, run_list};
use super::outcome::{CommandError, Failure};
use super::postgres::{DumpOptions, PgTarget, PgTools};
use super::progress::Progress;
use super::restore::{RestoreRequest, run_restore};
use super::retention::{RetentionPolicy, parse_duration};
use super::store::{DEFAULT_PART_SIZE, MIN_PART_SIZE, S3Credentials, S3Settings};
use super::verify::{VerifyRequest, run_verify};

const EXIT_CODES_HELP: &str = "\
Exit codes: 0 ok, 2 invalid arguments, 3 database/pg_dump/pg_restore failed, 4 storage failed
(access denied, unreachable, upload verification), 5 pruning failed (the backup itself is fine),
6 verification failed (checksum, restore, migration version, row counts), 7 restore target not
empty (use --force), 8 backup not found, 9 --timeout exceeded.
stdout: one line of JSON (command, ok, reason, error, ...); progress goes to stderr.
S3 credentials: FP_S3_ACCESS_KEY_ID / FP_S3_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY); endpoint: --s3-endpoint, FP_S3_ENDPOINT or s3://bucket/prefix?endpoint=URL.";

/// The backup subcommands, flattened into the server's command enum.
#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// Dump the database (pg_dump -Fc) to one or more destinations, write a manifest, prune
    #[command(after_help = EXIT_CODES_HELP)]
    Backup(BackupArgs),
    /// Restore a backup into a database (verifies the checksum first)
    #[command(after_help = EXIT_CODES_HELP)]
    Restore(RestoreArgs),
    /// Restore drill: restore into a scratch database and compare with the manifest
    #[command(after_help = EXIT_CODES_HELP)]
    Verify(VerifyArgs),
    /// List the backups at a destination with their checksum status
    #[command(after_help = EXIT_CODES_HELP)]
    Backups(ListArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct S3Args {
    /// S3 endpoint URL for s3:// destinations without ?endpoint=
    #[arg(long, env = "FP_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    #[arg(long, env = "FP_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Time allowed to connect to S3
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub s3_connect_timeout: Duration,
    /// Longest a single S3 request (one part, one range) may take
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub s3_request_timeout: Duration,
    /// Total time spent retrying one failing S3 request
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub s3_retry_timeout: Duration,
    /// Multipart upload part size in MiB (at least 5)
    #[arg(long, default_value_t = DEFAULT_PART_SIZE / (1024 * 1024))]
    pub s3_part_size_mib: usize,
}

impl S3Args {
    fn settings(&self) -> Result<S3Settings, CommandError> {
        if self.s3_part_size_mib * 1024 * 1024 < MIN_PART_SIZE {
            return Err(CommandError::new(
                Failure::InvalidArguments,
                "--s3-part-size-mib must be at least 5 (the S3 minimum)",
            ));
        }
        Ok(S3Settings {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            credentials: S3Credentials::from_env(),
            connect_timeout: self.s3_connect_timeout,
            read_timeout: self.s3_request_timeout.min(Duration::from_secs(60)),
            request_timeout: self.s3_request_timeout,
            retry_timeout: self.s3_retry_timeout,
            part_size: self.s3_part_size_mib * 1024 * 1024,
        })
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Directory of pg_dump / pg_restore (default: found on PATH)
    #[arg(long, env = "FP_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    /// Time allowed to connect to PostgreSQL
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub connect_timeout: Duration,
    /// Deadline for the whole command; past it the command stops with exit code 9
    #[arg(long, default_value = "6h", value_parser = duration)]
    pub timeout: Duration,
    /// How often progress is reported on stderr
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub progress_interval: Duration,
    /// No progress on stderr
    #[arg(long)]
    pub quiet: bool,
    /// Also write the JSON summary to this file (e.g. /dev/termination-log)
    #[arg(long, env = "FP_BACKUP_SUMMARY_FILE")]
    pub summary_file: Option<PathBuf>,
}

impl CommonArgs {
    fn progress(&self, command: &'static str) -> Progress {
        if self.quiet {
            Progress::silent(command)
        } else {
            Progress::stderr(command, self.progress_interval)
        }
    }

    fn tools(&self) -> PgTools {
        PgTools {
            bin_dir: self.pg_bin_dir.clone(),
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Database to back up
    #[arg(long, env = "FP_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// file:///path or s3://bucket/prefix; repeat for several (e.g. a volume and an off-site bucket)
    #[arg(long = "destination", required = true)]
    pub destinations: Vec<String>,
    /// With --max-age: never fewer than this many backups, however old (a floor). Alone: keep
    /// at most this many (the newest complete one is always kept)
    #[arg(long)]
    pub keep_last: Option<usize>,
    /// Remove backups older than this, e.g. 30d or 720h (the rule; --keep-last is its floor)
    #[arg(long)]
    pub max_age: Option<String>,
    /// A dump without manifest older than this is a dead backup and is removed; must exceed
    /// the longest a backup may run
    #[arg(long, default_value = "24h")]
    pub incomplete_grace: String,
    /// Skip per-table content digests in the manifest (row counts are always recorded)
    #[arg(long)]
    pub no_content_digests: bool,
    /// How long pg_dump waits for a table lock before failing
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub lock_wait_timeout: Duration,
    /// gzip level of the custom-format dump (0-9)
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub compress: u8,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// Where the backup is: file:///path or s3://bucket/prefix
    #[arg(long)]
    pub destination: String,
    /// `latest` or a backup id such as 20261128T030000Z
    #[arg(long, visible_alias = "from", default_value = "latest")]
    pub backup: String,
    /// Database to restore into (never taken from FP_DATABASE_URL: name the target explicitly)
    #[arg(long, env = "FP_RESTORE_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Restore even if the target has tables (objects in the backup are dropped and recreated)
    #[arg(long)]
    pub force: bool,
    /// Create the target database if it does not exist
    #[arg(long)]
    pub create: bool,
    /// Where the dump is downloaded before restoring (default: the system temp directory)
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    #[arg(long)]
    pub destination: String,
    /// `latest` or a backup id
    #[arg(long, default_value = "latest")]
    pub backup: String,
    /// A server where a scratch database may be created (needs CREATEDB)
    #[arg(long, env = "FP_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    pub destination: String,
    /// Download every dump and recompute its sha256 (otherwise sizes are compared)
    #[arg(long)]
    pub checksums: bool,
    /// `table` for people, `json` for programs
    #[arg(long, short = 'o', default_value = "table", value_parser = ["table", "json"])]
    pub output: String,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn duration(value: &str) -> Result<Duration, String> {
    parse_duration(value).map_err(|err| err.to_string())
}

fn usage(err: impl std::fmt::Display) -> CommandError {
    CommandError::new(Failure::InvalidArguments, err)
}

pub fn backup_request(args: &BackupArgs) -> Result<BackupRequest, CommandError> {
    let destinations = args
        .destinations
        .iter()
        .map(|text| Destination::parse(text).map_err(usage))
        .collect::<Result<Vec<_>, _>>()?;
    let max_age = args
        .max_age
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(usage)?;
    let grace = parse_duration(&args.incomplete_grace).map_err(usage)?;
    Ok(BackupRequest {
        database: PgTarget::parse(&args.database_url)?,
        destinations,
        s3: args.s3.settings()?,
        tools: args.common.tools(),
        dump: DumpOptions {
            lock_wait_timeout: args.lock_wait_timeout,
            connect_timeout: args.common.connect_timeout,
            compress_level: args.compress,
        },
        retention: RetentionPolicy::new(args.keep_last, max_age, grace).map_err(usage)?,
        content_digests: !args.no_content_digests,
        connect_timeout: args.common.connect_timeout,
    })
}

pub fn restore_request(args: &RestoreArgs) -> Result<RestoreRequest, CommandError> {
    Ok(RestoreRequest {
        destination: Destination::parse(&args.destination).map_err(usage)?,
        s3: args.s3.settings()?,
        selector: args.backup.parse::<BackupSelector>().map_err(usage)?,
        target: PgTarget::parse(&args.database_url)?,
        force: args.force,
        create: args.create,
        tools: args.common.tools(),
        connect_timeout: args.common.connect_timeout,
        work_dir: args.work_dir.clone(),
    })
}

pub fn verify_request(args: &VerifyArgs) -> Result<VerifyRequest, CommandError> {
    Ok(VerifyRequest {
        destination: Destination::parse(&args.destination).map_err(usage)?,
        s3: args.s3.settings()?,
        selector: args.backup.parse::<BackupSelector>().map_err(usage)?,
        server: PgTarget::parse(&args.database_url)?,
        tools: args.common.tools(),
        connect_timeout: args.common.connect_timeout,
        work_dir: args.work_dir.clone(),
    })
}

pub fn list_request(args: &ListArgs) -> Result<ListRequest, CommandError> {
    Ok(ListRequest {
        destination: Destination::parse(&args.destination).map_err(usage)?,
        s3: args.s3.settings()?,
        verify_checksums: args.checksums,
    })
}

/// The summary printed when a command could not even start or ran out of time.
#[derive(Serialize)]
struct ErrorSummary<'a> {
    command: &'a str,
    ok: bool,
    reason: Failure,
    error: &'a str,
}

fn emit(common: &CommonArgs, json: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{json}");
    let _ = stdout.flush();
    if let Some(path) = &common.summary_file
        && let Err(err) = std::fs::write(path, format!("{json}\n"))
    {
        eprintln!("cannot write the summary to {}: {err}", path.display());
    }
}

fn finish<T: Serialize>(
    command: &str,
    common: &CommonArgs,
    result: Result<Option<T>, CommandError>,
    failure_of: impl Fn(&T) -> Option<Failure>,
) -> ExitCode {
    let (json, failure) = match result {
        Ok(Some(summary)) => {
            let failure = failure_of(&summary);
            (serde_json::to_string(&summary), failure)
        }
        Ok(None) => {
            let err = CommandError::new(
                Failure::DeadlineExceeded,
                format!(
                    "{command} did not finish within --timeout {}",
                    humantime::format_duration(common.timeout)
                ),
            );
            (
                serde_json::to_string(&ErrorSummary {
                    command,
                    ok: false,
                    reason: err.failure,
                    error: &err.message,
                }),
                Some(err.failure),
            )
        }
        Err(err) => (
            serde_json::to_string(&ErrorSummary {
                command,
                ok: false,
                reason: err.failure,
                error: &err.message,
            }),
            Some(err.failure),
        ),
    };
    match json {
        Ok(json) => emit(common, &json),
        Err(err) => eprintln!("cannot encode the summary: {err}"),
    }
    if let Some(failure) = failure {
        eprintln!("{command} failed: {failure}");
    }
    ExitCode::from(failure.map_or(0, Failure::exit_code))
}

/// Runs one backup subcommand to the end and returns its exit code.
pub async fn run(command: BackupCommand) -> ExitCode {
    match command {
        BackupCommand::Backup(args) => {
            let progress = args.common.progress("backup");
            let result = match backup_request(&args) {
                Ok(request) => Ok(tokio::time::timeout(
                    args.common.timeout,
                    run_backup(&request, &progress),
                )
                .await
                .ok()),
                Err(err) => Err(err),
            };
            finish("backup", &args.common, result, |s| s.reason)
        }
        BackupCommand::Restore(args) => {
            let progress = args.common.progress("restore");
            let result = match restore_request(&args) {
                Ok(request) => Ok(tokio::time::timeout(
                    args.common.timeout,
                    run_restore(&request, &progress),
                )
                .await
                .ok()),
                Err(err) => Err(err),
            };
            finish("restore", &args.common, result, |s| s.reason)
        }
        BackupCommand::Verify(args) => {
            let progress = args.common.progress("verify");
            let result = match verify_request(&args) {
                Ok(request) => Ok(tokio::time::timeout(
                    args.common.timeout,
                    run_verify(&request, &progress),
                )
                .await
                .ok()),
                Err(err) => Err(err),
            };
            finish("verify", &args.common, result, |s| s.reason)
        }
        BackupCommand::Backups(args) => {
            let progress = args.common.progress("backups");
            let request = match list_request(&args) {
                Ok(request) => request,
                Err(err) => return finish::<()>("backups", &args.common, Err(err), |_| None),
            };
            let Ok(summary) =
                tokio::time::timeout(args.common.timeout, run_list(&request, &progress)).await
            else {
                return finish::<()>("backups", &args.common, Ok(None), |_| None);
            };
            if args.output == "table" && summary.ok {
                print!("{}", render_table(&summary));
                return ExitCode::SUCCESS;
            }
            finish("backups", &args.common, Ok(Some(summary)), |s| s.reason)
        }
    }
}
