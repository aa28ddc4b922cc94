//! `cargo xtask …`: the project's command contract (see README and docs/local-cluster.md).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod apt;
mod bench;
mod bench_operator;
mod bench_platform;
mod bench_rollout;
mod cargo;
mod cluster;
mod gobuild;
mod interrupt;
mod kubeconfig;
mod kubectl;
mod paths;
mod pki;
mod platform;
mod postgres;
mod proc;
mod prom;
mod steps;
mod testcmd;
mod tools;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "FootballPrediction project commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole platform on this machine: control plane and node agent, PostgreSQL, the
    /// operator (Helm chart) and docs/samples/local.yaml, waited for until Ready.
    Up {
        /// Also import football-data.co.uk CSVs (LEAGUE/SEASON.csv below DIR) once Ready.
        #[arg(long, value_name = "DIR")]
        import: Option<std::path::PathBuf>,
    },
    /// Stop everything `up` started and remove its state.
    Down,
    /// Benchmarks (docs/performance.md).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Everything CI runs: install what is missing, fmt check, clippy with warnings denied,
    /// unit and integration tests (real PostgreSQL), e2e tests on the local control plane.
    Test,
    /// The local Kubernetes control plane built from source.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Blue-green rollouts with the default settings on the platform `cargo xtask up` started:
    /// healthy rollouts and releases failing after promotion; table on stdout, JSON under
    /// target/bench/.
    Rollout {
        /// Runs (each a healthy rollout and a rolled-back one)
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// The operator under many FootballPredictions on the platform `cargo xtask up` started:
    /// time until all are Ready, then concurrent rollouts of all, then a steady state that must
    /// not write; reconcile latency, API requests per reconcile and the operator's peak RSS from
    /// its own metrics and process; table on stdout, JSON under target/bench/.
    Operator {
        /// FootballPredictions created at once
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Length of the steady-state window in which nothing changes
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        steady: std::time::Duration,
        /// Longest wait of one phase [default: 300s + 6s per FootballPrediction]
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<std::time::Duration>,
    },
    /// fp-api-server under wrk on SQLite and PostgreSQL with the shared data, next to a bare
    /// axum ceiling; table on stdout, JSON under target/bench/.
    Api {
        /// Seconds instead of minutes: one run, 1 s, 16 connections, SQLite, one season, dev build
        #[arg(long)]
        smoke: bool,
        /// Runs per row (the median is reported)
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Length of each run
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        duration: std::time::Duration,
        /// Concurrent connections, comma-separated
        #[arg(long, value_delimiter = ',', default_values_t = [64, 256, 1000])]
        connections: Vec<u32>,
        /// Storage backends, comma-separated
        #[arg(long = "backend", value_delimiter = ',', default_values = ["sqlite", "postgres"])]
        backends: Vec<bench::Backend>,
        /// The football-data folder (default: FP_FOOTBALL_DATA, else ../shared/football-data)
        #[arg(long, value_name = "DIR")]
        data: Option<std::path::PathBuf>,
        /// Only these scenarios, comma-separated: cached, spread, list, batch, login, mixed,
        /// cached+logins (default: all)
        #[arg(long, value_delimiter = ',')]
        scenarios: Vec<String>,
    },
}

fn parse_duration(value: &str) -> Result<std::time::Duration, String> {
    let secs = value.strip_suffix('s').unwrap_or(value);
    secs.parse::<u64>()
        .map(std::time::Duration::from_secs)
        .map_err(|e| format!("{value:?}: expected seconds such as 10s ({e})"))
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Build (or reuse) the binaries and start etcd, kube-apiserver, kube-controller-manager
    /// and kube-scheduler on 127.0.0.1; install the CRDs; start the node agent; write a
    /// kubeconfig.
    Up {
        /// Nodes the node agent registers (0: no node agent).
        #[arg(long, default_value_t = 2)]
        nodes: usize,
    },
    /// Print `export KUBECONFIG=…` (and PATH with our kubectl/helm) for a running cluster.
    Env,
    /// Stop every process `up` started and remove the cluster's state.
    Down,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    interrupt::install()?;
    match cli.command {
        Command::Up { import } => platform::up(&platform::UpOptions { import }),
        Command::Down => platform::down(),
        Command::Bench {
            what:
                BenchCommand::Api {
                    smoke,
                    runs,
                    duration,
                    connections,
                    backends,
                    data,
                    scenarios,
                },
        } => {
            let options = if smoke {
                bench::ApiOptions {
                    data,
                    ..bench::ApiOptions::smoke()
                }
            } else {
                bench::ApiOptions {
                    smoke,
                    runs,
                    duration,
                    connections,
                    backends,
                    data,
                    scenarios,
                }
            };
            bench::api(&options)
        }
        Command::Bench {
            what: BenchCommand::Rollout { runs },
        } => bench_rollout::rollout(&bench_rollout::RolloutOptions { runs }),
        Command::Bench {
            what:
                BenchCommand::Operator {
                    count,
                    steady,
                    timeout,
                },
        } => bench_operator::operator(&bench_operator::OperatorOptions {
            count,
            steady,
            timeout,
        }),
        Command::Test => testcmd::run(),
        Command::Cluster {
            action: ClusterAction::Up { nodes },
        } => cluster::up(cluster::UpOptions { nodes }).map(|_| ()),
        Command::Cluster {
            action: ClusterAction::Env,
        } => cluster::env(),
        Command::Cluster {
            action: ClusterAction::Down,
        } => cluster::down(),
    }
}

fn main() -> std::process::ExitCode {
    // Errors carry their context chain; a backtrace of xtask itself helps nobody here.
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
