//! `fp-operator`: runs the FootballPrediction controller with its admin server.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use fp_operator::admin::{self, AdminState, Readiness};
use fp_operator::controller::{self, Exit, RunConfig, capabilities};
use fp_operator::crd::CRD_NAME;
use fp_operator::leader::LeaseConfig;
use fp_operator::metrics::Metrics;
use fp_operator::telemetry::{self, LogFormat};
use fp_operator::validate::{PinnedImage, Settings, parse_duration};
use kube::runtime::events::Reporter;
use tokio::sync::watch;

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).ok_or_else(|| format!("{text:?} is not a duration such as 15s or 1m"))
}

/// Kubernetes operator for the FootballPrediction platform.
#[derive(Debug, Parser)]
#[command(name = "fp-operator", version)]
struct Args {
    /// Watch FootballPredictions (and their children) in this namespace only [default: all namespaces]
    #[arg(long, env = "FP_OPERATOR_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Namespace the operator runs in (API pods accept its probes; default lease namespace)
    #[arg(long, env = "POD_NAMESPACE")]
    operator_namespace: Option<String>,
    /// Address of the admin server (/livez, /readyz, /metrics)
    #[arg(
        long,
        env = "FP_OPERATOR_ADMIN_ADDRESS",
        default_value = "0.0.0.0:8081"
    )]
    admin_address: SocketAddr,
    /// Elect a leader through a coordination.k8s.io Lease (run more than one replica safely)
    #[arg(long, env = "FP_OPERATOR_LEADER_ELECTION", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    leader_election: bool,
    /// Name of the Lease
    #[arg(long, env = "FP_OPERATOR_LEASE_NAME", default_value = "fp-operator")]
    lease_name: String,
    /// Namespace of the Lease [default: --operator-namespace]
    #[arg(long, env = "FP_OPERATOR_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// A lease not renewed for this long may be taken over
    #[arg(long, env = "FP_OPERATOR_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    lease_duration: Duration,
    /// The leader stops when it could not renew for this long
    #[arg(long, env = "FP_OPERATOR_RENEW_DEADLINE", default_value = "10s", value_parser = duration)]
    renew_deadline: Duration,
    /// How often a standby replica tries to acquire the lease
    #[arg(long, env = "FP_OPERATOR_RETRY_PERIOD", default_value = "2s", value_parser = duration)]
    retry_period: Duration,
    /// This replica's identity in the lease and in events [default: POD_NAME or the host name]
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// FootballPredictions reconciled at once
    #[arg(long, env = "FP_OPERATOR_CONCURRENCY", default_value_t = 4)]
    concurrency: u16,
    /// Let notification webhooks be loopback, link-local or cloud-metadata addresses. Off: the
    /// Secret's writer must not make the operator post to its own ports or to instance metadata
    #[arg(long, env = "FP_OPERATOR_ALLOW_INTERNAL_WEBHOOKS")]
    allow_internal_webhooks: bool,
    /// The API image this release was tested with, as `repository:tag@sha256:…`: a
    /// FootballPrediction that would run exactly `repository:tag` runs it by digest (`cargo xtask
    /// dist` writes it into the packaged chart)
    #[arg(long, env = "FP_OPERATOR_PINNED_API_IMAGE")]
    pinned_api_image: Option<PinnedImage>,
    /// Log line format
    #[arg(
        long,
        env = "FP_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    log_format: LogFormat,
    /// Log filter (tracing env-filter syntax)
    #[arg(long, env = "FP_OPERATOR_LOG", default_value = "info,kube=warn")]
    log: String,
}

fn identity(args: &Args) -> String {
    let base = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "fp-operator".into());
    // A suffix keeps a restarted process from mistaking its predecessor's lease for its own.
    let mut suffix = [0u8; 4];
    rand::fill(&mut suffix);
    format!("{base}-{}", hex::encode(suffix))
}

async fn wait_for_signal(stop: watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for signals");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    let _ = stop.send(true);
}

/// Polls whether the FootballPrediction CRD is served, for readiness.
async fn watch_crd(
    client: kube::Client,
    readiness: Arc<Readiness>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match capabilities::crd_served(&client, CRD_NAME).await {
            Ok(served) => readiness.set_crd_served(served),
            Err(e) => {
                readiness.set_crd_served(false);
                tracing::warn!(error = %e, "cannot look up the FootballPrediction CRD");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn run(args: Args) -> anyhow::Result<Exit> {
    let metrics = Arc::new(Metrics::new()?);
    // kube's default stack plus a counter of every request (fp_operator_kube_requests_total).
    let client = kube::client::ClientBuilder::try_from(kube::Config::infer().await?)?
        .with_layer(&metrics.kube_request_layer())
        .build();
    let readiness = Arc::new(Readiness::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(wait_for_signal(stop_tx));

    let admin_state = AdminState {
        readiness: readiness.clone(),
        metrics: metrics.clone(),
    };
    let mut admin_stop = stop_rx.clone();
    let admin = tokio::spawn(admin::serve(args.admin_address, admin_state, async move {
        let _ = admin_stop.wait_for(|s| *s).await;
    }));
    tokio::spawn(watch_crd(
        client.clone(),
        readiness.clone(),
        stop_rx.clone(),
    ));

    let identity = identity(&args);
    let leader = if args.leader_election {
        let namespace = args
            .lease_namespace
            .clone()
            .or_else(|| args.operator_namespace.clone())
            .ok_or_else(|| {
                anyhow::anyhow!("leader election needs --lease-namespace or POD_NAMESPACE")
            })?;
        Some(LeaseConfig {
            namespace,
            name: args.lease_name.clone(),
            identity: identity.clone(),
            lease_duration: args.lease_duration,
            renew_deadline: args.renew_deadline,
            retry_period: args.retry_period,
        })
    } else {
        None
    };
    let config = RunConfig {
        namespace: args.watch_namespace.clone(),
        settings: Settings {
            operator_namespace: args.operator_namespace.clone(),
            pinned_api_image: args.pinned_api_image.clone(),
        },
        leader,
        concurrency: args.concurrency.max(1),
        reporter: Reporter {
            controller: "fp-operator".into(),
            instance: Some(identity),
        },
        probe_client: fp_operator::controller::analysis::probe_client()
            .map_err(|e| anyhow::anyhow!("building the rollout analysis HTTP client: {e}"))?,
        webhook_client: fp_operator::notify::webhook_client(args.allow_internal_webhooks)
            .map_err(|e| anyhow::anyhow!("building the webhook HTTP client: {e}"))?,
        allow_internal_webhooks: args.allow_internal_webhooks,
    };
    tracing::info!(
        namespace = config.namespace.as_deref().unwrap_or("<all>"),
        leader_election = args.leader_election,
        pinned_api_image = args
            .pinned_api_image
            .as_ref()
            .map(|p| format!("{}@{}", p.reference, p.digest))
            .unwrap_or_default(),
        admin = %args.admin_address,
        "starting fp-operator {}",
        env!("CARGO_PKG_VERSION")
    );
    let exit = controller::run(client, config, metrics, readiness, stop_rx).await;
    if exit == Exit::Stopped {
        match admin.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "admin server"),
            Err(e) => tracing::warn!(error = %e, "admin server task"),
            Ok(Ok(())) => {}
        }
    }
    Ok(exit)
}

fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.log_format, &args.log);
    // Exactly one TLS provider for the process, whatever features other crates enable.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fp-operator: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(Exit::Stopped) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Ok(Exit::LostLeadership) => {
            tracing::error!("lost the leader lease: exiting so a fresh process rejoins as standby");
            ExitCode::from(3)
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "fatal");
            ExitCode::FAILURE
        }
    }
}
