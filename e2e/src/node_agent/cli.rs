//! The command line of `fp-node-agent`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::agent::AgentOptions;
use super::node::NodeSettings;
use super::restart::BackoffPolicy;

/// Stands in for kubelet and a container runtime: registers Nodes and runs the pods bound to
/// them as host processes on loopback pod IPs.
#[derive(Debug, Clone, Parser)]
#[command(name = "fp-node-agent", version)]
pub struct Cli {
    /// Kubeconfig of the agent's identity; its server must be a loopback address.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: PathBuf,
    /// Directory for per-pod state (volumes, logs, kubeconfigs); emptied on start.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Image mapping file (docs/node-agent.md); the built-in defaults apply without one.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// How many Nodes to register.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Node names are `<prefix>-0`, `<prefix>-1`, …
    #[arg(long, default_value = "fp-node")]
    pub node_name_prefix: String,
    /// API server URL written into pods' kubeconfigs; defaults to the agent's own server.
    #[arg(long)]
    pub apiserver_url: Option<String>,
    /// Loopback range pod IPs come from (127.0.0.0/24 and 127.0.1.0/24 are never used).
    #[arg(long, default_value = "127.0.0.0/16")]
    pub pod_cidr: String,
    /// Machine-wide directory of pod IP leases, shared by all agents on this machine.
    #[arg(long, default_value = "/tmp/fp-node-agent/ip-leases")]
    pub ip_lease_dir: PathBuf,
    /// First crash-loop back-off delay (kubelet: 10s).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub restart_backoff_base: Duration,
    /// Longest crash-loop back-off delay (kubelet: 5m).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub restart_backoff_max: Duration,
    /// How long pod processes get after SIGTERM when the agent stops.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// CPU capacity each Node reports.
    #[arg(long, default_value = "16")]
    pub node_cpu: String,
    /// Memory capacity each Node reports.
    #[arg(long, default_value = "32Gi")]
    pub node_memory: String,
    /// Pod capacity each Node reports.
    #[arg(long, default_value = "110")]
    pub max_pods: String,
    /// Ephemeral storage each Node reports.
    #[arg(long, default_value = "100Gi")]
    pub node_ephemeral_storage: String,
    /// Port of the kubelet log endpoint (`kubectl logs`) on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    pub kubelet_port: u16,
    /// kubeletVersion each Node reports.
    #[arg(long, default_value = "v1.37.2")]
    pub kubelet_version: String,
}

impl Cli {
    pub fn options(&self) -> AgentOptions {
        AgentOptions {
            kubeconfig: self.kubeconfig.clone(),
            state_dir: self.state_dir.clone(),
            images: self.config.clone(),
            nodes: self.nodes,
            node_name_prefix: self.node_name_prefix.clone(),
            apiserver_url: self.apiserver_url.clone(),
            pod_cidr: self.pod_cidr.clone(),
            ip_lease_dir: self.ip_lease_dir.clone(),
            backoff: BackoffPolicy {
                base: self.restart_backoff_base,
                max: self.restart_backoff_max,
            },
            node_settings: NodeSettings {
                cpu: self.node_cpu.clone(),
                memory: self.node_memory.clone(),
                pods: self.max_pods.clone(),
                ephemeral_storage: self.node_ephemeral_storage.clone(),
                kubelet_version: self.kubelet_version.clone(),
                kubelet_port: i32::from(self.kubelet_port),
            },
            shutdown_grace: self.shutdown_grace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_command_line() {
        let cli = Cli::try_parse_from([
            "fp-node-agent",
            "--kubeconfig",
            "/c/kubeconfig",
            "--state-dir",
            "/s",
            "--config",
            "/c/images.yaml",
            "--nodes",
            "3",
            "--node-name-prefix",
            "worker",
            "--restart-backoff-base",
            "1s",
        ])
        .unwrap();
        let options = cli.options();
        assert_eq!(options.nodes, 3);
        assert_eq!(options.node_name_prefix, "worker");
        assert_eq!(options.images, Some(PathBuf::from("/c/images.yaml")));
        assert_eq!(options.backoff.base, Duration::from_secs(1));
        assert_eq!(options.backoff.max, Duration::from_secs(300));
        assert_eq!(options.pod_cidr, "127.0.0.0/16");
    }
}
