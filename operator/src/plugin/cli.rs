//! The plugin's command line and its API calls. kubectl runs `kubectl-fp` for `kubectl fp …`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use super::rollout::{
    RequestPlan, exit_codes, outcome, plan_request, render_history, request_id, request_patch,
    request_taken, still_pending_text,
};
use super::{job_from_cronjob, manual_job_name, render_status};
use crate::crd::{FootballPrediction, RolloutCommand};
use crate::validate::Names;

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
    /// Promote a preview that passed analysis (stage AwaitingPromotion, `autoPromote: false`)
    Promote(RequestArgs),
    /// Stop the rollout in flight; traffic stays on (or goes back to) the last good color
    Abort(RequestArgs),
    /// Roll out spec.version again after its rollout was aborted
    Retry(RequestArgs),
    /// Go back to the previous good release (instantly while the old color still runs)
    Rollback(RequestArgs),
    /// Promoted releases, newest first, and the last rollback
    History { name: String },
    /// Print the alert rules a manifest generates, as a Prometheus rule file (no cluster needed;
    /// check them with `promtool check rules`)
    Alerts {
        /// The FootballPrediction manifest (YAML), or `-` for standard input
        #[arg(short = 'f', long)]
        file: std::path::PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct RequestArgs {
    name: String,
    /// How long to wait for the operator to take the request; 0 returns once it is sent
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    wait: Duration,
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

async fn get_footballprediction(
    api: &Api<FootballPrediction>,
    namespace: &str,
    name: &str,
) -> anyhow::Result<FootballPrediction> {
    api.get_opt(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("FootballPrediction {namespace}/{name} not found"))
}

/// Conflicting writes (the operator updates the object often) before giving up on sending.
const SEND_ATTEMPTS: u32 = 5;

/// `kubectl fp promote|abort|retry|rollback`: checks the command applies, adds its annotation
/// (unless the same request is already pending) and waits for the operator to take it. Exit codes:
/// 0 taken, [`exit_codes::REFUSED`] does not apply now, [`exit_codes::STILL_PENDING`] not taken
/// within `--wait`.
async fn request(
    client: &Client,
    namespace: &str,
    command: RolloutCommand,
    args: &RequestArgs,
) -> anyhow::Result<ExitCode> {
    let api: Api<FootballPrediction> = Api::namespaced(client.clone(), namespace);
    let name = args.name.as_str();
    let key = command.annotation();
    let mut attempt = 1;
    let (before, id) = loop {
        let fp = get_footballprediction(&api, namespace, name).await?;
        match plan_request(command, &fp) {
            RequestPlan::Refused { reason } => {
                eprintln!("{command} does not apply to {namespace}/{name}: {reason}");
                return Ok(ExitCode::from(exit_codes::REFUSED));
            }
            RequestPlan::AlreadyPending { request_id } => {
                eprintln!(
                    "a {command} request is already pending ({key}={request_id}); waiting for it"
                );
                break (fp, request_id);
            }
            RequestPlan::Send => {
                let id = request_id(chrono::Utc::now());
                let patch = request_patch(command, &id, fp.metadata.resource_version.as_deref());
                match api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {
                        eprintln!("{command} requested: {key}={id}");
                        break (fp, id);
                    }
                    // Changed since read: judge `applies` again on the new state.
                    Err(kube::Error::Api(status))
                        if status.is_conflict() && attempt < SEND_ATTEMPTS =>
                    {
                        attempt += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    };
    if args.wait.is_zero() {
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    loop {
        let fp = get_footballprediction(&api, namespace, name).await?;
        if request_taken(command, &id, &fp) {
            print!(
                "{}",
                outcome(command, before.status.as_ref(), fp.status.as_ref())
            );
            return Ok(ExitCode::SUCCESS);
        }
        if started.elapsed() >= args.wait {
            eprintln!(
                "{}",
                still_pending_text(command, namespace, name, &id, args.wait)
            );
            return Ok(ExitCode::from(exit_codes::STILL_PENDING));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `kubectl fp alerts`: offline, so it works without a kubeconfig.
fn print_alerts(file: &std::path::Path, namespace: Option<&str>) -> anyhow::Result<ExitCode> {
    let path = file.display().to_string();
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("reading {path}: {e}"))?
    };
    let rules = super::alerts::rule_file_for(&path, &text, namespace.unwrap_or("default"))?;
    print!("{rules}");
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Alerts { file } = &cli.command {
        return print_alerts(file, cli.namespace.as_deref());
    }
    let (client, namespace) = client(&cli).await?;
    match &cli.command {
        Command::Status { name } => {
            let api: Api<FootballPrediction> = Api::namespaced(client, &namespace);
            let fp = get_footballprediction(&api, &namespace, name).await?;
            print!("{}", render_status(&fp));
            Ok(ExitCode::SUCCESS)
        }
        // Answered above, before connecting.
        Command::Alerts { file } => print_alerts(file, Some(&namespace)),
        Command::History { name } => {
            let api: Api<FootballPrediction> = Api::namespaced(client, &namespace);
            let fp = get_footballprediction(&api, &namespace, name).await?;
            print!("{}", render_history(&fp));
            Ok(ExitCode::SUCCESS)
        }
        Command::Promote(args) => request(&client, &namespace, RolloutCommand::Promote, args).await,
        Command::Abort(args) => request(&client, &namespace, RolloutCommand::Abort, args).await,
        Command::Retry(args) => request(&client, &namespace, RolloutCommand::Retry, args).await,
        Command::Rollback(args) => {
            request(&client, &namespace, RolloutCommand::Rollback, args).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_commands_take_a_name_and_wait_30s_by_default() {
        for (word, command) in [
            ("promote", RolloutCommand::Promote),
            ("abort", RolloutCommand::Abort),
            ("retry", RolloutCommand::Retry),
            ("rollback", RolloutCommand::Rollback),
        ] {
            let cli = Cli::try_parse_from(["kubectl-fp", word, "prod"]).unwrap();
            let (parsed, args) = match &cli.command {
                Command::Promote(args) => (RolloutCommand::Promote, args),
                Command::Abort(args) => (RolloutCommand::Abort, args),
                Command::Retry(args) => (RolloutCommand::Retry, args),
                Command::Rollback(args) => (RolloutCommand::Rollback, args),
                other => panic!("{word} parsed as {other:?}"),
            };
            assert_eq!(parsed, command);
            assert_eq!(args.name, "prod");
            assert_eq!(args.wait, Duration::from_secs(30));
        }
    }

    #[test]
    fn wait_takes_human_durations_and_global_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "kubectl-fp",
            "promote",
            "prod",
            "--wait",
            "2m 30s",
            "-n",
            "football",
        ])
        .unwrap();
        assert_eq!(cli.namespace.as_deref(), Some("football"));
        let Command::Promote(args) = cli.command else {
            panic!("not promote: {:?}", cli.command);
        };
        assert_eq!(args.wait, Duration::from_secs(150));
        let no_wait = Cli::try_parse_from(["kubectl-fp", "abort", "prod", "--wait", "0s"]).unwrap();
        let Command::Abort(args) = no_wait.command else {
            panic!("not abort: {:?}", no_wait.command);
        };
        assert!(args.wait.is_zero());
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for argv in [
            &["kubectl-fp", "promote"][..],
            &["kubectl-fp", "rollback", "prod", "--wait", "soon"],
            &["kubectl-fp", "history"],
            &["kubectl-fp", "history", "prod", "--wait", "1s"],
            &["kubectl-fp", "undo", "prod"],
        ] {
            let error = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{argv:?}: {error}");
        }
    }

    #[test]
    fn history_takes_a_name() {
        let cli = Cli::try_parse_from(["kubectl-fp", "history", "prod"]).unwrap();
        assert!(matches!(cli.command, Command::History { name } if name == "prod"));
    }

    #[test]
    fn exit_codes_are_distinct_from_success_errors_and_usage() {
        let codes = [0, 1, 2, exit_codes::REFUSED, exit_codes::STILL_PENDING];
        let mut unique = codes.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
    }
}
