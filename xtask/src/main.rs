//! `cargo xtask …`: the project's command contract (see README and docs/local-cluster.md).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
mod alerts;
mod answers;
mod apt;
mod bench;
mod bench_operator;
mod bench_platform;
mod bench_rollout;
mod bench_soak;
mod cargo;
mod cluster;
mod deny;
mod dist;
mod gobuild;
mod images;
mod interrupt;
mod kubeconfig;
mod kubectl;
mod paths;
mod pki;
mod platform;
mod postgres;
mod proc;
mod procfs;
mod prom;
mod schemathesis;
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
    /// The whole platform on this machine: control plane and a real node (or an existing
    /// cluster), PostgreSQL, the operator (Helm chart) and docs/samples/local.yaml, waited for
    /// until Ready.
    Up {
        /// Also import football-data.co.uk CSVs (LEAGUE/SEASON.csv below DIR) once Ready.
        #[arg(long, value_name = "DIR")]
        import: Option<std::path::PathBuf>,
        /// Install into the existing cluster of this kubeconfig's current context instead of
        /// starting a control plane; `down` then removes only what `up` created there.
        #[arg(long, value_name = "PATH")]
        kubeconfig: Option<std::path::PathBuf>,
    },
    /// Stop everything `up` started and remove its state (an existing cluster keeps running).
    Down,
    /// Benchmarks (docs/performance.md).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Everything CI runs: install what is missing, fmt check, clippy with warnings denied, the
    /// dependency audit, unit and integration tests (real PostgreSQL), the images, e2e tests on
    /// the local control plane with a real node (needs root).
    Test {
        /// Only the e2e scenarios (and what they need: the cluster, PostgreSQL, the dev images),
        /// for working on one; CI runs everything
        #[arg(long)]
        e2e_only: bool,
        /// With --e2e-only: these e2e test targets (e.g. `monitoring`) instead of all
        #[arg(long = "test", value_name = "TARGET", requires = "e2e_only")]
        tests: Vec<String>,
    },
    /// The alert rules of docs/samples/*.yaml and of the chart, checked and unit-tested by
    /// promtool (operator/tests/alerts/; docs/ops/monitoring.md).
    Alerts,
    /// The dependency audit: cargo-deny's advisories, licenses, bans and sources checks of
    /// Cargo.lock against deny.toml, with the live RustSec database or, when it cannot be
    /// fetched, the offline snapshot (FP_ADVISORY_DB, else ../shared/advisory-db); says which
    /// (docs/security.md#dependency-audit).
    Deny,
    /// The API attacked through its own OpenAPI document by schemathesis (installed once from
    /// PyPI into the cache), as anonymous, viewer, analyst and admin: no 5xx, every answer as
    /// documented, what the document allows accepted, no role answered above its rights
    /// (docs/security.md#schema-driven-api-attacks).
    Schemathesis {
        /// Hypothesis seed (the test command uses 1; another explores other requests)
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Examples per operation and phase
        #[arg(long, default_value_t = 40)]
        max_examples: u32,
    },
    /// OCI images of fp-api-server and fp-operator, built without a container engine from
    /// the binaries and Debian packages, into target/images/ (docs/images.md).
    Images {
        /// After building, push each image to REGISTRY/footballprediction/<name>:<version>
        /// (e.g. 127.0.0.1:5000 or registry.example.com/team).
        #[arg(long, value_name = "REGISTRY")]
        push: Option<String>,
        /// Binaries: release (what ships) or dev (the test command's debug binaries with debug
        /// info stripped, into target/images/dev/; for checking the recipe, not for shipping).
        #[arg(long, value_enum, default_value = "release")]
        profile: images::Profile,
        /// Prove the images: skopeo inspect, umoci unpack, runc runs as uid 65532 on a
        /// read-only root without capabilities, a push/pull through a loopback registry.
        #[arg(long)]
        check: bool,
        /// Build a second time (release: the binaries too, from an empty target directory) and
        /// fail unless the digests are the same.
        #[arg(long)]
        reproducible: bool,
    },
    /// Release artifacts into target/dist/ (docs/install.md): kubectl-fp and fp-api-server
    /// tarballs, the CRD, the chart packaged with the operator image's digest, SHA256SUMS.
    Dist {
        /// Output directory (replaced whole when it holds a previous dist) [default:
        /// target/dist/, target/dist-dev/ for --profile dev]
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        /// Binaries: release (what ships) or dev (the debug binaries, stripped; for checking
        /// the recipe, not for shipping).
        #[arg(long, value_enum, default_value = "release")]
        profile: images::Profile,
        /// The images' images.json and layouts [default: target/images/, target/images/dev/
        /// for --profile dev]
        #[arg(long, value_name = "DIR")]
        images: Option<std::path::PathBuf>,
        /// Package the chart without an image digest (by tag) when no images were built;
        /// without this flag a missing images.json is an error.
        #[arg(long)]
        without_digests: bool,
    },
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
        /// FootballPredictions created at once (two pods each during a rollout: 40 leave room
        /// on the local node, whose kubelet admits 110 pods)
        #[arg(long, default_value_t = 40)]
        count: usize,
        /// Length of the steady-state window in which nothing changes
        #[arg(long, default_value = "60s", value_parser = bench::parse_duration)]
        steady: std::time::Duration,
        /// Longest wait of one phase [default: 300s + 6s per FootballPrediction]
        #[arg(long, value_parser = bench::parse_duration)]
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
        /// Length of each run (e.g. 10s, 2m)
        #[arg(long, default_value = "10s", value_parser = bench::parse_duration)]
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
    /// fp-api-server under the mixed profile at a constant rate for minutes (vegeta), sampling
    /// RSS, open fds and PostgreSQL connections; judges zero errors, RSS growth under 5% and no
    /// fd or connection growth after the warm-up (non-zero exit when missed); table on stdout,
    /// JSON under target/bench/.
    Soak(bench_soak::SoakOptions),
}

#[derive(Subcommand)]
enum ClusterAction {
    /// Build (or reuse) the binaries and start etcd, kube-apiserver, kube-controller-manager
    /// and kube-scheduler; install the CRDs; start one real node (kubelet, containerd, runc, CNI
    /// bridge in 198.18.0.0/15, kube-proxy, CoreDNS, images from a loopback registry; needs
    /// root); write a kubeconfig.
    Up,
    /// Print `export KUBECONFIG=…` (and PATH with our kubectl/helm) for a running cluster.
    Env,
    /// Stop every process `up` started and remove the cluster's state.
    Down,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    interrupt::install()?;
    match cli.command {
        Command::Up { import, kubeconfig } => {
            platform::up(&platform::UpOptions { import, kubeconfig })
        }
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
            what: BenchCommand::Soak(options),
        } => bench_soak::soak(&if options.smoke {
            bench_soak::SoakOptions {
                data: options.data,
                ..bench_soak::SoakOptions::smoke()
            }
        } else {
            options
        }),
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
        Command::Test { e2e_only, tests } => testcmd::run(&testcmd::Scope { e2e_only, tests }),
        Command::Alerts => alerts::check(),
        Command::Deny => deny::check(),
        Command::Schemathesis { seed, max_examples } => {
            schemathesis::run(&schemathesis::Options { seed, max_examples })
        }
        Command::Images {
            push,
            profile,
            check,
            reproducible,
        } => images::build(&images::Options {
            profile,
            push,
            check,
            reproducible,
        })
        .map(|_| ()),
        Command::Dist {
            out,
            profile,
            images,
            without_digests,
        } => dist::run(&dist::Options {
            profile,
            out,
            images,
            without_digests,
        })
        .map(|_| ()),
        Command::Cluster {
            action: ClusterAction::Up,
        } => cluster::up().map(|_| ()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn up(args: &[&str]) -> Result<Option<PathBuf>, clap::Error> {
        let mut argv = vec!["cargo xtask", "up"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Up { kubeconfig, .. } => Ok(kubeconfig),
            _ => unreachable!("parsed as up"),
        }
    }

    use std::path::PathBuf;

    #[test]
    fn up_takes_a_kubeconfig_and_nothing_chooses_a_node_agent_any_more() {
        assert_eq!(up(&[]).unwrap(), None);
        assert_eq!(
            up(&["--kubeconfig", "k.yaml"]).unwrap(),
            Some(PathBuf::from("k.yaml"))
        );
        for retired in [
            &["--node", "agent"][..],
            &["--kubeconfig", "k", "--node-agent", "always"][..],
        ] {
            let error = up(retired).unwrap_err();
            assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
        }
        let test = Cli::try_parse_from(["cargo xtask", "test", "--node", "agent"]);
        assert!(
            test.is_err(),
            "the test command always runs on the real node"
        );
    }

    #[test]
    fn dist_knows_two_profiles_and_defaults_to_release() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["cargo xtask", "dist"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).map(|cli| match cli.command {
                Command::Dist {
                    out,
                    profile,
                    without_digests,
                    ..
                } => (out, profile, without_digests),
                _ => unreachable!("parsed as dist"),
            })
        };
        assert_eq!(parse(&[]).unwrap(), (None, images::Profile::Release, false));
        assert_eq!(
            parse(&["--profile", "dev", "--out", "d", "--without-digests"]).unwrap(),
            (Some(PathBuf::from("d")), images::Profile::Dev, true)
        );
        let bad = parse(&["--profile", "debug"]).unwrap_err();
        assert_eq!(bad.kind(), clap::error::ErrorKind::InvalidValue);
        assert!(bad.to_string().contains("release, dev"), "{bad}");
    }
}
