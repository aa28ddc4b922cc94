//! fp-node-agent: kubelet and container runtime stand-in for the local control plane.

use std::io::IsTerminal;

use clap::Parser;
use fp_e2e::node_agent::{agent, cli::Cli};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // kube and reqwest bring different rustls providers; pick one for the process, as the
    // operator does (an error only means one is installed already).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    agent::run(cli.options(), shutdown_signal()).await?;
    Ok(())
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stopping");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
