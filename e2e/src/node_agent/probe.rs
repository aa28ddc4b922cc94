//! Startup, readiness and liveness probes as kubelet runs them: httpGet (2xx/3xx = success,
//! redirects not followed), tcpSocket and exec, with thresholds. The threshold logic is pure;
//! the probe itself only ever connects to loopback addresses.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::env::EnvList;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

impl ProbeKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Startup => "Startup",
            Self::Readiness => "Readiness",
            Self::Liveness => "Liveness",
        }
    }
}

/// Timing and thresholds with the API server's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeTiming {
    pub fn of(probe: &Probe) -> Self {
        let secs = |value: Option<i32>, default: u64| {
            Duration::from_secs(value.and_then(|v| u64::try_from(v).ok()).unwrap_or(default))
        };
        let count = |value: Option<i32>, default: u32| {
            value
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Self {
            initial_delay: secs(probe.initial_delay_seconds, 0),
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

/// The result kubelet keeps per probe: consecutive counts decide when it flips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTracker {
    /// `None` until the first decision (startup probes), then the current result.
    pub result: Option<bool>,
    successes: u32,
    failures: u32,
}

impl ProbeTracker {
    /// Readiness starts "not ready", liveness "alive", startup undecided.
    pub fn new(kind: ProbeKind) -> Self {
        let result = match kind {
            ProbeKind::Readiness => Some(false),
            ProbeKind::Liveness => Some(true),
            ProbeKind::Startup => None,
        };
        Self {
            result,
            successes: 0,
            failures: 0,
        }
    }

    /// Records one probe outcome; returns the new result when it changed.
    pub fn observe(&mut self, success: bool, timing: &ProbeTiming) -> Option<bool> {
        if success {
            self.successes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.successes = 0;
        }
        let decided = if success {
            self.successes >= timing.success_threshold
        } else {
            self.failures >= timing.failure_threshold
        };
        if decided && self.result != Some(success) {
            self.result = Some(success);
            Some(success)
        } else {
            None
        }
    }
}

/// One probe attempt's outcome, with a message for events and container status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub success: bool,
    pub message: String,
}

impl ProbeOutcome {
    fn failure(message: impl Into<String>) -> Self {
        Self {
            success: false,
            message: message.into(),
        }
    }
}

/// A probe action with ports resolved and the target checked to be on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    Http {
        url: String,
        https: bool,
        headers: Vec<(String, String)>,
    },
    Tcp {
        address: SocketAddr,
    },
    Exec {
        command: Vec<String>,
    },
    /// A probe this agent cannot run (gRPC, a non-loopback host): it always fails, visibly.
    Unsupported(String),
}

/// Resolves the probe's action against the container (named ports) and the pod IP.
pub fn probe_action(probe: &Probe, container: &Container, pod_ip: &str) -> ProbeAction {
    let host_ip = |host: Option<&String>| -> Result<IpAddr, String> {
        let host = host
            .map(String::as_str)
            .filter(|h| !h.is_empty())
            .unwrap_or(pod_ip);
        let ip: IpAddr = host
            .parse()
            .map_err(|_| format!("probe host {host:?} is not an IP address"))?;
        if ip.is_loopback() {
            Ok(ip)
        } else {
            Err(format!("probe host {ip} is not a loopback address"))
        }
    };
    if let Some(http) = &probe.http_get {
        let ip = match host_ip(http.host.as_ref()) {
            Ok(ip) => ip,
            Err(message) => return ProbeAction::Unsupported(message),
        };
        let port = match resolve_port(&http.port, container) {
            Ok(port) => port,
            Err(message) => return ProbeAction::Unsupported(message),
        };
        let https = http.scheme.as_deref() == Some("HTTPS");
        let path = http.path.as_deref().unwrap_or("/");
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let scheme = if https { "https" } else { "http" };
        return ProbeAction::Http {
            url: format!("{scheme}://{}{path}", SocketAddr::new(ip, port)),
            https,
            headers: http
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        return match (
            host_ip(tcp.host.as_ref()),
            resolve_port(&tcp.port, container),
        ) {
            (Ok(ip), Ok(port)) => ProbeAction::Tcp {
                address: SocketAddr::new(ip, port),
            },
            (Err(message), _) | (_, Err(message)) => ProbeAction::Unsupported(message),
        };
    }
    if let Some(exec) = &probe.exec {
        return match exec.command.as_ref().filter(|c| !c.is_empty()) {
            Some(command) => ProbeAction::Exec {
                command: command.clone(),
            },
            None => ProbeAction::Unsupported("exec probe without a command".into()),
        };
    }
    if probe.grpc.is_some() {
        return ProbeAction::Unsupported("gRPC probes are not supported by fp-node-agent".into());
    }
    ProbeAction::Unsupported("probe has no handler".into())
}

fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid probe port {n}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok())
            .ok_or_else(|| format!("probe port {name:?} names no container port")),
    }
}

/// Runs probes; one instance serves the whole agent.
#[derive(Debug, Clone)]
pub struct Prober {
    http: reqwest::Client,
    https_insecure: reqwest::Client,
}

impl Prober {
    pub fn new() -> Result<Self, reqwest::Error> {
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent("kube-probe/1.37")
        };
        Ok(Self {
            http: builder().build()?,
            // Kubelet does not verify certificates of HTTPS probes.
            https_insecure: builder().tls_danger_accept_invalid_certs(true).build()?,
        })
    }

    /// Runs one attempt. `env` and `working_dir` are the container's, for exec probes.
    pub async fn run(
        &self,
        action: &ProbeAction,
        timeout: Duration,
        env: &EnvList,
        working_dir: &std::path::Path,
    ) -> ProbeOutcome {
        match action {
            ProbeAction::Http {
                url,
                https,
                headers,
            } => {
                let client = if *https {
                    &self.https_insecure
                } else {
                    &self.http
                };
                let mut request = client.get(url).timeout(timeout).header("Accept", "*/*");
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                match request.send().await {
                    Ok(response) => {
                        let code = response.status().as_u16();
                        ProbeOutcome {
                            success: (200..400).contains(&code),
                            message: format!("HTTP probe failed with statuscode: {code}"),
                        }
                    }
                    Err(error) => {
                        ProbeOutcome::failure(format!("Get {url:?}: {}", error_chain(&error)))
                    }
                }
            }
            ProbeAction::Tcp { address } => {
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
                    Ok(Ok(_)) => ProbeOutcome {
                        success: true,
                        message: String::new(),
                    },
                    Ok(Err(error)) => ProbeOutcome::failure(format!("dial tcp {address}: {error}")),
                    Err(_) => ProbeOutcome::failure(format!("dial tcp {address}: i/o timeout")),
                }
            }
            ProbeAction::Exec { command } => exec_probe(command, timeout, env, working_dir).await,
            ProbeAction::Unsupported(message) => ProbeOutcome::failure(message.clone()),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn exec_probe(
    command: &[String],
    timeout: Duration,
    env: &EnvList,
    working_dir: &std::path::Path,
) -> ProbeOutcome {
    let Some((program, args)) = command.split_first() else {
        return ProbeOutcome::failure("exec probe without a command");
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter())
        .current_dir(working_dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(timeout, cmd.output()).await {
        Ok(Ok(output)) if output.status.success() => ProbeOutcome {
            success: true,
            message: String::new(),
        },
        Ok(Ok(output)) => ProbeOutcome::failure(format!(
            "command {command:?} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim()
        )),
        Ok(Err(error)) => ProbeOutcome::failure(format!("command {command:?}: {error}")),
        Err(_) => ProbeOutcome::failure(format!("command {command:?} timed out after {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerPort, GRPCAction, HTTPGetAction, HTTPHeader, TCPSocketAction,
    };

    fn timing(success_threshold: u32, failure_threshold: u32) -> ProbeTiming {
        ProbeTiming {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold,
            failure_threshold,
        }
    }

    #[test]
    fn thresholds_decide_flips() {
        let t = timing(2, 3);
        let mut readiness = ProbeTracker::new(ProbeKind::Readiness);
        assert_eq!(readiness.result, Some(false));
        assert_eq!(readiness.observe(true, &t), None);
        assert_eq!(readiness.observe(true, &t), Some(true));
        assert_eq!(readiness.observe(false, &t), None);
        assert_eq!(
            readiness.observe(true, &t),
            None,
            "one success resets failures"
        );
        assert_eq!(readiness.observe(false, &t), None);
        assert_eq!(readiness.observe(false, &t), None);
        assert_eq!(readiness.observe(false, &t), Some(false));

        let mut liveness = ProbeTracker::new(ProbeKind::Liveness);
        assert_eq!(liveness.result, Some(true));
        assert_eq!(liveness.observe(true, &t), None);

        let mut startup = ProbeTracker::new(ProbeKind::Startup);
        assert_eq!(startup.result, None);
        assert_eq!(startup.observe(true, &timing(1, 3)), Some(true));
    }

    #[test]
    fn timing_fills_api_defaults() {
        let t = ProbeTiming::of(&Probe::default());
        assert_eq!(
            t,
            ProbeTiming {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
    }

    fn container() -> Container {
        Container {
            name: "api".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn actions_resolve_named_ports_and_stay_on_loopback() {
        let http = Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/health/ready".into()),
                port: IntOrString::String("http".into()),
                http_headers: Some(vec![HTTPHeader {
                    name: "X-Probe".into(),
                    value: "1".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            probe_action(&http, &container(), "127.0.2.5"),
            ProbeAction::Http {
                url: "http://127.0.2.5:8080/health/ready".into(),
                https: false,
                headers: vec![("X-Probe".into(), "1".into())],
            }
        );
        let remote = Probe {
            tcp_socket: Some(TCPSocketAction {
                host: Some("10.0.0.1".into()),
                port: IntOrString::Int(80),
            }),
            ..Default::default()
        };
        assert!(matches!(
            probe_action(&remote, &container(), "127.0.2.5"),
            ProbeAction::Unsupported(m) if m.contains("not a loopback")
        ));
        let bad_port = Probe {
            tcp_socket: Some(TCPSocketAction {
                host: None,
                port: IntOrString::String("metrics".into()),
            }),
            ..Default::default()
        };
        assert!(matches!(
            probe_action(&bad_port, &container(), "127.0.2.5"),
            ProbeAction::Unsupported(_)
        ));
        let grpc = Probe {
            grpc: Some(GRPCAction {
                port: 9000,
                service: None,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(matches!(
            probe_action(&grpc, &container(), "127.0.2.5"),
            ProbeAction::Unsupported(_)
        ));
    }

    #[tokio::test]
    async fn probes_really_probe() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // A tiny HTTP server: /ok answers 200, anything else 503.
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 1024];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let status = if request.starts_with("GET /ok ") {
                    "200 OK"
                } else {
                    "503 Service Unavailable"
                };
                let response =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        let prober = Prober::new().unwrap();
        let env = EnvList::default();
        let dir = std::env::temp_dir();
        // Probes that must succeed get a timeout a busy machine cannot reach (spawning the exec
        // probes' shell is slow under load); the one that must time out gets 1 ms against a
        // command that would run for ten minutes (killed when the probe gives up).
        let t = Duration::from_secs(60);
        let http = |path: &str| ProbeAction::Http {
            url: format!("http://{address}{path}"),
            https: false,
            headers: vec![],
        };
        assert!(prober.run(&http("/ok"), t, &env, &dir).await.success);
        let failed = prober.run(&http("/bad"), t, &env, &dir).await;
        assert!(!failed.success);
        assert!(failed.message.contains("503"), "{}", failed.message);
        assert!(
            prober
                .run(&ProbeAction::Tcp { address }, t, &env, &dir)
                .await
                .success
        );

        // A port nobody listens on (bound then dropped).
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(
            !prober
                .run(&ProbeAction::Tcp { address: closed }, t, &env, &dir)
                .await
                .success
        );

        let exec = |script: &str| ProbeAction::Exec {
            command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        };
        let mut env_with = EnvList::default();
        env_with.set("HEALTHY", "yes");
        assert!(
            prober
                .run(&exec("test \"$HEALTHY\" = yes"), t, &env_with, &dir)
                .await
                .success
        );
        assert!(
            !prober
                .run(&exec("exit 1"), t, &env_with, &dir)
                .await
                .success
        );
        let slow = prober
            .run(
                &exec("exec sleep 600"),
                Duration::from_millis(1),
                &env,
                &dir,
            )
            .await;
        assert!(!slow.success && slow.message.contains("timed out"));
    }
}
