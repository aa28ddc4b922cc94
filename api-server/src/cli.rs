//! The command line: `serve` (the default), `migrate`, `import`, and the backup commands
//! (`backup`, `restore`, `verify`, `backups`, see [`crate::backup::cli`]). Each subcommand is one
//! enum variant with its own `Args` struct and one arm in [`run`].

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{self, FileConfig, ServeArgs, StorageArgs};

const SERVE_AFTER_HELP: &str = "\
Precedence: defaults < config file (--config/FP_CONFIG) < environment (FP_*) < flags.

Secrets: FP_DATABASE_URL and the admin password come from the environment or files, never from a
config file you would commit. FP_ADMIN_PASSWORD holds the first admin's password when no
--admin-password-file is given; with neither, a password is generated into
<data-dir>/admin-password (mode 0600) and never printed.

Test-only fault switch (never set in production): FP_TEST_FAULTS=enabled turns it on; then
FP_TEST_FAULT_READY_FAIL_AFTER=<duration> makes /health/ready answer 503 after that long (0s =
from the start) and FP_TEST_FAULT_ERROR_RATIO=<0..1> makes that share of /api/* requests answer 500.";

#[derive(Debug, Parser)]
#[command(
    name = "fp-api-server",
    version,
    // A repeated option: the last one wins (wrappers can append overrides).
    args_override_self = true,
    about = "FootballPrediction API server: football data, Dixon-Coles predictions, JWT auth, health and metrics"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default without a subcommand)
    #[command(after_long_help = SERVE_AFTER_HELP, after_help = SERVE_AFTER_HELP)]
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit (the operator's migration Job runs this)
    Migrate(MigrateArgs),
    /// Import football-data.co.uk CSV files (one transaction per file) and refit the model
    Import(ImportArgs),
    #[command(flatten)]
    Backup(crate::backup::cli::BackupCommand),
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// League code of FILE, e.g. E0
    #[arg(long, requires = "season")]
    pub league: Option<String>,
    /// Season of FILE, e.g. 2019-2020
    #[arg(long, requires = "league")]
    pub season: Option<String>,
    /// Import every LEAGUE/SEASON.csv under DIR (e.g. the shared football-data folder) instead
    #[arg(long, value_name = "DIR", conflicts_with_all = ["league", "season", "file"])]
    pub dir: Option<PathBuf>,
    /// Do not refit the model after importing
    #[arg(long)]
    pub no_refit: bool,
    /// The CSV file (with --league and --season)
    #[arg(
        value_name = "FILE",
        required_unless_present = "dir",
        requires = "league"
    )]
    pub file: Option<PathBuf>,
}

fn storage_settings(args: &StorageArgs) -> Result<config::StorageSettings, config::ConfigError> {
    let file = FileConfig::load(args.config.as_deref())?;
    config::resolve_storage(&file, args)
}

/// Parses the command line and runs it on a multi-threaded runtime.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or_else(|| {
        // No subcommand: `serve` with flags absent, so environment and config file still apply.
        match Cli::parse_from(["fp-api-server", "serve"]).command {
            Some(command) => command,
            None => Command::Serve(Box::default()),
        }
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The backup commands have their own exit codes and JSON summary.
    if let Command::Backup(backup) = command {
        return runtime.block_on(crate::backup::cli::run(backup));
    }
    match runtime.block_on(run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let file = FileConfig::load(args.storage.config.as_deref())?;
            let admin_password_env = std::env::var(config::ADMIN_PASSWORD_ENV).ok();
            let settings = config::resolve_serve(&file, &args, admin_password_env)?;
            crate::telemetry::init(&settings.storage.log);
            crate::server::run(settings).await?;
        }
        Command::Migrate(args) => {
            let storage = storage_settings(&args.storage)?;
            crate::telemetry::init(&storage.log);
            if crate::faults::migration_fails(|name| std::env::var(name).ok())? {
                anyhow::bail!(
                    "test fault {}=fail: this release's migration refuses to run",
                    crate::faults::MIGRATE_ENV
                );
            }
            let db = crate::db::Db::connect(&storage).await?;
            let before = crate::db::schema::state(&db).await?;
            if let crate::db::schema::SchemaState::Newer { .. }
            | crate::db::schema::SchemaState::Dirty { .. } = before
            {
                anyhow::bail!("{}", before.describe());
            }
            crate::db::schema::migrate(&db).await?;
            let after = crate::db::schema::state(&db).await?;
            tracing::info!(before = %before.describe(), after = %after.describe(), "migrations applied");
            println!("{}", after.describe());
            db.close().await;
        }
        Command::Import(args) => {
            let storage = storage_settings(&args.storage)?;
            crate::telemetry::init(&storage.log);
            crate::import::cli::run(&storage, &import_files(&args)?, !args.no_refit).await?;
        }
        Command::Backup(backup) => {
            let code = crate::backup::cli::run(backup).await;
            if code != ExitCode::SUCCESS {
                anyhow::bail!("backup command failed (see its JSON summary)");
            }
        }
    }
    Ok(())
}

/// The files `import` reads: the one named with `--league --season FILE`, or every
/// `LEAGUE/SEASON.csv` under `--dir`.
fn import_files(args: &ImportArgs) -> anyhow::Result<Vec<(String, String, PathBuf)>> {
    match (&args.dir, &args.file, &args.league, &args.season) {
        (Some(dir), _, _, _) => crate::import::cli::discover(dir),
        (None, Some(file), Some(league), Some(season)) => {
            Ok(vec![(league.clone(), season.clone(), file.clone())])
        }
        _ => anyhow::bail!("give --league, --season and FILE, or --dir DIR"),
    }
}
