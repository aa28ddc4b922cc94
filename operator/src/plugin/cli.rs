//! The plugin's command line and its API calls. kubectl runs `kubectl-fp` for `kubectl fp …`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use super::{job_from_cronjob, manual_job_name, render_status};
use crate::crd::FootballPrediction;
use crate::resources::Names;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl fp",
    version,
    about = "Inspect and operate FootballPrediction resources (fp-operator's kubectl plugin)"
)]
struct Cli {
    /// Namespace (default: the kubeconfig context's)
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Kubeconfig context
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A readable tree of the status: colors, versions, conditions, backups
    Status { name: String },
    /// Run a backup now from `<name>-backup` and follow it to the end
    Backup(RunArgs),
    /// Run the restore drill now from `<name>-backup-verify` and follow it to the end
    Verify(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    name: String,
    /// Start the Job and return without following it
    #[arg(long)]
    no_wait: bool,
    /// Give up following after this long (the Job keeps its own activeDeadlineSeconds)
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

async fn client(cli: &Cli) -> anyhow::Result<(Client, String)> {
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match Kubeconfig::read() {
        Ok(kubeconfig) => Config::from_custom_kubeconfig(kubeconfig, &options).await?,
        Err(_) => Config::infer().await?,
    };
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    Ok((Client::try_from(config)?, namespace))
}

/// Creates a Job from the CronJob and, unless told not to, follows it: pod phases as they
/// change, then the program's JSON summary. Exits with the program's exit code.
async fn run_job(
    client: &Client,
    namespace: &str,
    cronjob_name: &str,
    args: &RunArgs,
) -> anyhow::Result<ExitCode> {
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), namespace);
    let cronjob = cronjobs.get_opt(cronjob_name).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "CronJob {namespace}/{cronjob_name} not found: is spec.backup set on FootballPrediction {}?",
            args.name
        )
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let job_name = manual_job_name(cronjob_name, i64::try_from(now).unwrap_or_default());
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    jobs.create(
        &PostParams::default(),
        &job_from_cronjob(&cronjob, &job_name),
    )
    .await?;
    eprintln!("job {namespace}/{job_name} created from cronjob {cronjob_name}");
    if args.no_wait {
        println!("{job_name}");
        return Ok(ExitCode::SUCCESS);
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let selector = format!("batch.kubernetes.io/job-name={job_name}");
    let started = Instant::now();
    let mut last_seen = String::new();
    loop {
        let job = jobs.get(&job_name).await?;
        let pod_list = pods.list(&ListParams::default().labels(&selector)).await?;
        let phases: Vec<String> = pod_list
            .items
            .iter()
            .map(|p| {
                format!(
                    "{} {}",
                    p.metadata.name.as_deref().unwrap_or_default(),
                    p.status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .unwrap_or("Pending")
                )
            })
            .collect();
        let seen = phases.join(", ");
        if seen != last_seen && !seen.is_empty() {
            eprintln!("{:>6.1}s pods: {seen}", started.elapsed().as_secs_f64());
            last_seen = seen;
        }
        if let Some(outcome) = crate::controller::backup_health::job_outcome(&job, &pod_list.items)
        {
            let exit_code = pod_list
                .items
                .iter()
                .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
                .flatten()
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
                .map(|t| t.exit_code)
                .next_back();
            match &outcome.summary {
                Some(summary) if summary.ok => eprintln!("{} succeeded", summary.command),
                _ => eprintln!("failed: {}", outcome.failure_text()),
            }
            // The summary line as the program printed it, for scripts.
            if let Some(message) = pod_list
                .items
                .iter()
                .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
                .flatten()
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
                .next_back()
            {
                println!("{}", message.trim());
            }
            let code = if outcome.succeeded {
                0
            } else {
                exit_code.filter(|c| *c != 0).unwrap_or(1)
            };
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        if started.elapsed() > args.timeout {
            anyhow::bail!(
                "job {job_name} still running after {}; it goes on (kubectl get job {job_name} -n {namespace})",
                humantime::format_duration(args.timeout)
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (client, namespace) = client(&cli).await?;
    match &cli.command {
        Command::Status { name } => {
            let api: Api<FootballPrediction> = Api::namespaced(client, &namespace);
            let fp = api.get_opt(name).await?.ok_or_else(|| {
                anyhow::anyhow!("FootballPrediction {namespace}/{name} not found")
            })?;
            print!("{}", render_status(&fp));
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup(args) => {
            let cronjob = Names::new(args.name.as_str()).backup_cronjob();
            run_job(&client, &namespace, &cronjob, args).await
        }
        Command::Verify(args) => {
            let cronjob = Names::new(args.name.as_str()).verify_cronjob();
            run_job(&client, &namespace, &cronjob, args).await
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
