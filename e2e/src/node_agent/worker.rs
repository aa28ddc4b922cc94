//! One task per pod: sets up its sandbox, runs its containers as host processes, probes them,
//! restarts them per restartPolicy, writes the pod status, and on deletion stops the processes
//! (SIGTERM, SIGKILL after the grace period) and removes the pod.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::{Resource, ResourceExt};
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::command::{NotRunnable, resolve_program};
use super::context::AgentContext;
use super::downward::PodRuntimeFacts;
use super::env::{EnvContext, EnvList, container_env, expand};
use super::node::NODE_IP;
use super::paths::{MountTranslation, rewrite_paths_in, rewrite_wildcard_addresses, working_dir};
use super::probe::{ProbeAction, ProbeKind, ProbeOutcome, ProbeTiming, ProbeTracker, probe_action};
use super::process::{ExitInfo, SpawnSpec, forget_pid, record_pid, signal_group, spawn};
use super::restart::should_restart;
use super::sandbox::Sandbox;
use super::status::{
    ContainerRuntime, PHASE_RUNNING, PodView, RunState, Termination, is_terminal_phase, pod_phase,
    pod_status,
};

/// How often a container that cannot be configured yet is retried.
const CONFIG_RETRY: Duration = Duration::from_secs(2);
/// How often an unmapped image is looked up again (the mapping file may point at a binary that
/// is still being built).
const NOT_MAPPED_RETRY: Duration = Duration::from_secs(10);
/// How long to wait for processes to be reaped after SIGKILL.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of log tail used as termination message with `FallbackToLogsOnError`.
const TERMINATION_MESSAGE_BYTES: usize = 2048;
/// Bytes of the termination message file kubelet reads.
const TERMINATION_FILE_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SlotId {
    init: bool,
    index: usize,
}

#[derive(Debug)]
enum WorkerEvent {
    Exited {
        slot: SlotId,
        generation: u64,
        exit: ExitInfo,
    },
    Probe {
        slot: SlotId,
        generation: u64,
        kind: ProbeKind,
        outcome: ProbeOutcome,
    },
    KillDeadline {
        slot: SlotId,
        generation: u64,
    },
}

/// A running process of a container.
#[derive(Debug)]
struct Running {
    pid: u32,
    started: Instant,
    generation: u64,
    env: EnvList,
    working_dir: PathBuf,
    /// Set once the agent decided to stop it (liveness failure, deletion): the reason shown in
    /// the terminated state's message.
    stopping: Option<String>,
}

#[derive(Debug)]
struct Slot {
    spec: Container,
    id: SlotId,
    runtime: ContainerRuntime,
    running: Option<Running>,
    probe_tasks: Vec<AbortHandle>,
    startup: ProbeTracker,
    readiness: ProbeTracker,
    liveness: ProbeTracker,
    next_start: Option<Instant>,
    backoff_series: u32,
    generation: u64,
    has_run: bool,
}

impl Slot {
    fn new(spec: Container, id: SlotId) -> Self {
        let runtime = ContainerRuntime::new(&spec.name, spec.image.as_deref().unwrap_or_default());
        Self {
            spec,
            id,
            runtime,
            running: None,
            probe_tasks: Vec::new(),
            startup: ProbeTracker::new(ProbeKind::Startup),
            readiness: ProbeTracker::new(ProbeKind::Readiness),
            liveness: ProbeTracker::new(ProbeKind::Liveness),
            next_start: None,
            backoff_series: 0,
            generation: 0,
            has_run: false,
        }
    }

    fn stop_probes(&mut self) {
        for task in self.probe_tasks.drain(..) {
            task.abort();
        }
    }

    fn probe(&self, kind: ProbeKind) -> Option<&k8s_openapi::api::core::v1::Probe> {
        match kind {
            ProbeKind::Startup => self.spec.startup_probe.as_ref(),
            ProbeKind::Readiness => self.spec.readiness_probe.as_ref(),
            ProbeKind::Liveness => self.spec.liveness_probe.as_ref(),
        }
    }

    fn due(&self, now: Instant) -> bool {
        self.next_start.is_none_or(|at| at <= now)
    }
}

/// How a pod worker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// The pod was deleted (by us after termination, or by someone else).
    PodGone,
    /// The agent is shutting down; the pod stays bound.
    AgentStopped,
}

pub struct PodWorker {
    ctx: Arc<AgentContext>,
    pod: Pod,
    node: String,
    pod_ip: String,
    ip_lease: Option<Ipv4Addr>,
    sandbox: Sandbox,
    init: Vec<Slot>,
    main: Vec<Slot>,
    events_tx: mpsc::UnboundedSender<WorkerEvent>,
    events_rx: mpsc::UnboundedReceiver<WorkerEvent>,
    volumes_dirty: bool,
    last_status: Option<Value>,
    status_retry: Option<Instant>,
    terminal: bool,
    /// Set when the pod is being deleted and its containers have all stopped.
    pod_is_terminal: bool,
    terminating: bool,
    /// Terminal before this agent run: its status is final and never rewritten.
    adopted_terminal: bool,
}

impl PodWorker {
    pub fn new(ctx: Arc<AgentContext>, pod: Pod, node: String) -> Self {
        let uid = pod.uid().unwrap_or_default();
        let dir_name = format!(
            "{}_{}_{}",
            pod.namespace().unwrap_or_default(),
            pod.name_any(),
            uid
        );
        let sandbox = Sandbox::new(ctx.pods_dir.join(dir_name));
        let spec = pod.spec.clone().unwrap_or_default();
        let init = spec
            .init_containers
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, c)| Slot::new(c, SlotId { init: true, index }))
            .collect();
        let main = spec
            .containers
            .into_iter()
            .enumerate()
            .map(|(index, c)| Slot::new(c, SlotId { init: false, index }))
            .collect();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut worker = Self {
            ctx,
            pod,
            node,
            pod_ip: String::new(),
            ip_lease: None,
            sandbox,
            init,
            main,
            events_tx,
            events_rx,
            volumes_dirty: true,
            last_status: None,
            status_retry: None,
            terminal: false,
            pod_is_terminal: false,
            terminating: false,
            adopted_terminal: false,
        };
        worker.adopt_previous_status();
        worker
    }

    fn label(&self) -> String {
        format!(
            "{}/{}",
            self.pod.namespace().unwrap_or_default(),
            self.pod.name_any()
        )
    }

    fn restart_policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".to_string())
    }

    fn host_network(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    }

    /// Picks up where an earlier agent run left off: terminal pods stay terminal, restart
    /// counts continue, and a process that was running when that run ended shows as an unknown
    /// termination (exit 137), which the restart policy then handles like any other exit.
    fn adopt_previous_status(&mut self) {
        let Some(status) = self.pod.status.clone() else {
            return;
        };
        if status.phase.as_deref().is_some_and(is_terminal_phase) {
            self.terminal = true;
            self.adopted_terminal = true;
        }
        adopt_slots(
            &mut self.init,
            status
                .init_container_statuses
                .as_deref()
                .unwrap_or_default(),
        );
        adopt_slots(
            &mut self.main,
            status.container_statuses.as_deref().unwrap_or_default(),
        );
        // Once any main container ran, initialisation was complete.
        if self.main.iter().any(|s| s.has_run) {
            for slot in &mut self.init {
                if !slot.runtime.succeeded() {
                    slot.runtime.state = RunState::Terminated(Termination {
                        exit_code: 0,
                        signal: None,
                        reason: "Completed".to_string(),
                        message: None,
                        started_at: None,
                        finished_at: Timestamp::now(),
                        container_id: None,
                    });
                }
            }
        }
    }

    /// Runs until the pod is gone or the agent stops.
    pub async fn run(
        mut self,
        mut pod_rx: watch::Receiver<Option<Pod>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> WorkerExit {
        let mut changes = self.ctx.cache.subscribe();
        if !self.terminal
            && let Err(problem) = self.setup()
        {
            tracing::error!(pod = %self.label(), %problem, "cannot set up pod sandbox");
        }
        let mut stop_requested = false;
        loop {
            if stop_requested || *shutdown.borrow() {
                self.stop_everything(self.ctx.shutdown_grace, "fp-node-agent is stopping")
                    .await;
                self.post_not_ready().await;
                self.release();
                return WorkerExit::AgentStopped;
            }
            let gone = pod_rx.borrow().is_none();
            if gone {
                let grace = self.deletion_grace().min(Duration::from_secs(2));
                self.stop_everything(grace, "the pod was removed from the API server")
                    .await;
                self.cleanup();
                return WorkerExit::PodGone;
            }
            if self.pod.metadata.deletion_timestamp.is_some() {
                self.terminate_and_delete().await;
                self.cleanup();
                return WorkerExit::PodGone;
            }
            self.step().await;
            let wake = self.next_wake();
            tokio::select! {
                changed = shutdown.changed() => stop_requested = changed.is_err(),
                changed = pod_rx.changed() => {
                    match changed {
                        Ok(()) => {
                            if let Some(pod) = pod_rx.borrow_and_update().clone() {
                                self.update_pod(pod);
                            }
                        }
                        // The dispatcher dropped us: treat as removal.
                        Err(_) => return self.forget_after_dispatcher_loss().await,
                    }
                }
                Some(event) = self.events_rx.recv() => self.handle_event(event).await,
                _ = changed_or_pending(&mut changes) => self.volumes_dirty = true,
                _ = sleep_until(wake) => {}
            }
        }
    }

    async fn forget_after_dispatcher_loss(mut self) -> WorkerExit {
        self.stop_everything(self.ctx.shutdown_grace, "fp-node-agent is stopping")
            .await;
        self.release();
        WorkerExit::AgentStopped
    }

    fn update_pod(&mut self, pod: Pod) {
        if pod.metadata.generation != self.pod.metadata.generation
            || pod.metadata.deletion_timestamp != self.pod.metadata.deletion_timestamp
        {
            self.last_status = None;
        }
        // Labels and annotations feed downward API volumes.
        if pod.metadata.labels != self.pod.metadata.labels
            || pod.metadata.annotations != self.pod.metadata.annotations
        {
            self.volumes_dirty = true;
        }
        self.pod = pod;
    }

    fn setup(&mut self) -> Result<(), String> {
        self.sandbox
            .create_dirs()
            .map_err(|e| format!("creating {}: {e}", self.sandbox.pod_dir.display()))?;
        if self.host_network() {
            self.pod_ip = NODE_IP.to_string();
            return Ok(());
        }
        let preferred = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        let ip = self
            .ctx
            .ipam()
            .allocate(preferred)
            .map_err(|e| e.to_string())?;
        self.ip_lease = Some(ip);
        self.pod_ip = ip.to_string();
        Ok(())
    }

    fn facts(&self) -> PodRuntimeFacts {
        PodRuntimeFacts {
            pod_ip: self.pod_ip.clone(),
            host_ip: NODE_IP.to_string(),
            node_allocatable: self.ctx.node_settings.allocatable_strings(),
        }
    }

    /// One reconciliation pass: volumes, container starts, status.
    async fn step(&mut self) {
        if self.terminal {
            if !self.adopted_terminal {
                self.post_status().await;
            }
            return;
        }
        if self.pod_ip.is_empty()
            && let Err(problem) = self.setup()
        {
            self.set_waiting_all("ContainerCreating", &problem);
            self.post_status().await;
            return;
        }
        let token_due = self
            .sandbox
            .next_token_refresh()
            .is_some_and(|at| at <= Instant::now());
        if self.volumes_dirty || token_due || self.sandbox.problem.is_some() {
            self.volumes_dirty = false;
            let facts = self.facts();
            let pod = self.pod.clone();
            let ctx = self.ctx.clone();
            if !self.sandbox.sync(&ctx, &pod, &facts).await {
                let problem = self.sandbox.problem.clone().unwrap_or_default();
                tracing::debug!(pod = %self.label(), %problem, "volumes not ready");
                if !self.sandbox.synced_once {
                    self.set_waiting_all("ContainerCreating", &problem);
                }
            }
        }
        if self.sandbox.synced_once {
            self.start_due_containers().await;
        }
        let phase = self.phase();
        if is_terminal_phase(phase) {
            self.terminal = true;
            for slot in self.init.iter_mut().chain(self.main.iter_mut()) {
                slot.stop_probes();
            }
            self.sandbox.remove_volumes();
            // The sandbox is gone with the processes; its address can serve another pod.
            self.release();
        }
        self.post_status().await;
    }

    fn set_waiting_all(&mut self, reason: &str, message: &str) {
        for slot in self.init.iter_mut().chain(self.main.iter_mut()) {
            if matches!(slot.runtime.state, RunState::Waiting { .. }) {
                slot.runtime.state = RunState::Waiting {
                    reason: reason.to_string(),
                    message: Some(message.to_string()),
                };
            }
        }
    }

    fn phase(&self) -> &'static str {
        pod_phase(
            &self.restart_policy(),
            &self
                .init
                .iter()
                .map(|s| s.runtime.clone())
                .collect::<Vec<_>>(),
            &self
                .main
                .iter()
                .map(|s| s.runtime.clone())
                .collect::<Vec<_>>(),
            self.pod_is_terminal,
        )
    }

    async fn start_due_containers(&mut self) {
        let now = Instant::now();
        let policy = self.restart_policy();
        // Init containers run one at a time, in order, each to success.
        if let Some(index) = self.init.iter().position(|s| !s.runtime.succeeded()) {
            let slot = &self.init[index];
            let failed_for_good = policy == "Never"
                && matches!(&slot.runtime.state, RunState::Terminated(t) if !t.succeeded());
            if slot.running.is_none() && !failed_for_good && slot.due(now) {
                self.start(SlotId { init: true, index }).await;
            }
            return;
        }
        for index in 0..self.main.len() {
            let slot = &self.main[index];
            let wants_start = match &slot.runtime.state {
                RunState::Running { .. } => false,
                RunState::Terminated(t) => should_restart(&policy, t.exit_code),
                RunState::Waiting { .. } => true,
            };
            if slot.running.is_none() && wants_start && slot.due(now) {
                self.start(SlotId { init: false, index }).await;
            }
        }
    }

    fn slot_mut(&mut self, id: SlotId) -> &mut Slot {
        if id.init {
            &mut self.init[id.index]
        } else {
            &mut self.main[id.index]
        }
    }

    fn slot(&self, id: SlotId) -> &Slot {
        if id.init {
            &self.init[id.index]
        } else {
            &self.main[id.index]
        }
    }

    /// The variables kubelet adds for the `kubernetes` Service, pointing at the real API
    /// server on loopback.
    fn service_env(&self) -> EnvList {
        let mut env = EnvList::default();
        let host = &self.ctx.endpoint.host;
        let port = self.ctx.endpoint.port.to_string();
        env.set("KUBERNETES_SERVICE_HOST", host.as_str());
        env.set("KUBERNETES_SERVICE_PORT", port.as_str());
        env.set("KUBERNETES_SERVICE_PORT_HTTPS", port.as_str());
        env.set("KUBERNETES_PORT", format!("tcp://{host}:{port}"));
        env.set(
            format!("KUBERNETES_PORT_{port}_TCP"),
            format!("tcp://{host}:{port}"),
        );
        env.set(format!("KUBERNETES_PORT_{port}_TCP_PROTO"), "tcp");
        env.set(format!("KUBERNETES_PORT_{port}_TCP_PORT"), port.as_str());
        env.set(format!("KUBERNETES_PORT_{port}_TCP_ADDR"), host.as_str());
        env
    }

    /// Everything about starting a container that can fail before a process exists.
    fn prepare(&self, id: SlotId) -> Result<(SpawnSpec, EnvList), Prepared> {
        let slot = self.slot(id);
        let container = &slot.spec;
        let translations: Vec<MountTranslation> = self.sandbox.translations(container);
        // Literal values see the pod's filesystem and network as a container would.
        let rewrite = |value: &str| {
            rewrite_wildcard_addresses(&rewrite_paths_in(value, &translations), &self.pod_ip)
        };
        let facts = self.facts();
        let namespace = self.pod.namespace().unwrap_or_default();
        let objects = self.ctx.cache.namespace(&namespace);
        let service_env = self.service_env();
        let env_ctx = EnvContext {
            pod: &self.pod,
            facts: &facts,
            objects: &objects,
            service_env: &service_env,
            rewrite_path: &rewrite,
        };
        let container_vars =
            container_env(container, &env_ctx).map_err(|e| Prepared::ConfigError(e.to_string()))?;
        let lookup = |name: &str| container_vars.get(name).map(str::to_string);
        let expand_all = |items: &Option<Vec<String>>| {
            items.as_ref().map(|items| {
                items
                    .iter()
                    .map(|item| expand(&rewrite(item), &lookup))
                    .collect::<Vec<_>>()
            })
        };
        let command = expand_all(&container.command);
        let args = expand_all(&container.args);
        let image = container.image.clone().unwrap_or_default();
        let mapping = self.ctx.images.lookup(&image);
        let program = resolve_program(
            &image,
            command.as_deref(),
            args.as_deref(),
            mapping,
            &self.ctx.lookup,
        )
        .map_err(Prepared::NotRunnable)?;

        // The process environment: a minimal base, the image's env, in-cluster access, then the
        // container's own variables, which win.
        let mut env = EnvList::default();
        if let Ok(path) = std::env::var("PATH") {
            env.set("PATH", path);
        }
        env.set("HOSTNAME", self.pod.name_any());
        env.set("HOME", self.sandbox.home_dir().display().to_string());
        for (name, value) in mapping.iter().flat_map(|m| m.env.iter()) {
            env.set(name.as_str(), value.as_str());
        }
        if let Some(kubeconfig) = self.sandbox.kubeconfig_for(&self.pod, container) {
            env.set("KUBECONFIG", kubeconfig.display().to_string());
        }
        env.overlay(&container_vars);

        let working_dir = working_dir(
            container.working_dir.as_deref(),
            &translations,
            &self.sandbox.home_dir(),
        );
        let log_path = self
            .sandbox
            .pod_dir
            .join("logs")
            .join(&container.name)
            .join(format!(
                "{}.log",
                slot.runtime.restart_count + i32::from(slot.has_run)
            ));
        Ok((
            SpawnSpec {
                executable: program.executable,
                args: program.args,
                env: env.clone(),
                working_dir,
                log_path,
            },
            env,
        ))
    }

    async fn start(&mut self, id: SlotId) {
        let prepared = self.prepare(id);
        let now = Timestamp::now();
        let (spec, env) = match prepared {
            Ok(ok) => ok,
            Err(Prepared::ConfigError(message)) => {
                let slot = self.slot_mut(id);
                slot.runtime.state = RunState::Waiting {
                    reason: "CreateContainerConfigError".to_string(),
                    message: Some(message.clone()),
                };
                slot.next_start = Some(Instant::now() + CONFIG_RETRY);
                self.event(
                    EventType::Warning,
                    "Failed",
                    "Start",
                    &format!("Error: {message}"),
                )
                .await;
                return;
            }
            Err(Prepared::NotRunnable(reason @ NotRunnable::ImageNotMapped { .. })) => {
                let first_time = {
                    let slot = self.slot_mut(id);
                    let first = !matches!(&slot.runtime.state, RunState::Waiting { reason: r, .. } if r == reason.reason());
                    slot.runtime.state = RunState::Waiting {
                        reason: reason.reason().to_string(),
                        message: Some(reason.message().to_string()),
                    };
                    slot.next_start = Some(Instant::now() + NOT_MAPPED_RETRY);
                    first
                };
                if first_time {
                    self.event(EventType::Warning, "Failed", "Pull", reason.message())
                        .await;
                }
                return;
            }
            Err(Prepared::NotRunnable(reason)) => {
                self.record_start_failure(id, reason.reason(), reason.message(), now)
                    .await;
                return;
            }
        };
        // Each run starts with an empty termination message file, as kubelet mounts a new one.
        let termination_file =
            Sandbox::termination_file(&self.sandbox.pod_dir, &self.slot(id).spec.name);
        if let Some(dir) = termination_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&termination_file, b"");
        let spawned = spawn(&spec);
        let (identity, mut child) = match spawned {
            Ok(ok) => ok,
            Err(error) => {
                self.record_start_failure(id, "StartError", &error.to_string(), now)
                    .await;
                return;
            }
        };
        if let Err(error) = record_pid(&self.sandbox.pod_dir, &self.slot(id).spec.name, identity) {
            tracing::warn!(pod = %self.label(), %error, "cannot record container pid");
        }
        let events = self.events_tx.clone();
        let generation = {
            let slot = self.slot_mut(id);
            slot.generation += 1;
            slot.generation
        };
        tokio::spawn(async move {
            let exit = match child.wait().await {
                Ok(status) => ExitInfo::from(status),
                Err(_) => ExitInfo {
                    exit_code: 128,
                    signal: None,
                },
            };
            let _ = events.send(WorkerEvent::Exited {
                slot: id,
                generation,
                exit,
            });
        });
        let image_id = format!("fp-node-agent://{}", spec.executable.display());
        let name = {
            let slot = self.slot_mut(id);
            if slot.has_run {
                slot.runtime.restart_count += 1;
                if let RunState::Terminated(previous) = &slot.runtime.state {
                    slot.runtime.last_termination = Some(previous.clone());
                }
            }
            slot.has_run = true;
            slot.next_start = None;
            slot.runtime.image_id = image_id;
            slot.runtime.state = RunState::Running {
                started_at: now,
                container_id: format!("fp-node-agent://{}", identity.pid),
            };
            slot.running = Some(Running {
                pid: identity.pid,
                started: Instant::now(),
                generation,
                env,
                working_dir: spec.working_dir.clone(),
                stopping: None,
            });
            slot.startup = ProbeTracker::new(ProbeKind::Startup);
            slot.readiness = ProbeTracker::new(ProbeKind::Readiness);
            slot.liveness = ProbeTracker::new(ProbeKind::Liveness);
            slot.runtime.started = slot.spec.startup_probe.is_none();
            slot.runtime.ready = slot.runtime.started && slot.spec.readiness_probe.is_none();
            slot.spec.name.clone()
        };
        tracing::info!(pod = %self.label(), container = %name, pid = identity.pid, executable = %spec.executable.display(), "started container");
        self.event(
            EventType::Normal,
            "Started",
            "Start",
            &format!("Started container {name} (pid {})", identity.pid),
        )
        .await;
        if self.slot(id).spec.startup_probe.is_some() {
            self.spawn_probe(id, ProbeKind::Startup);
        } else {
            self.spawn_probe(id, ProbeKind::Readiness);
            self.spawn_probe(id, ProbeKind::Liveness);
        }
    }

    /// A container whose process could not be started: terminated with exit code 128, as a
    /// runtime reports it, and subject to the restart policy like any other exit.
    async fn record_start_failure(
        &mut self,
        id: SlotId,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) {
        let termination = Termination {
            exit_code: 128,
            signal: None,
            reason: reason.to_string(),
            message: Some(message.to_string()),
            started_at: None,
            finished_at: now,
            container_id: None,
        };
        self.event(
            EventType::Warning,
            "Failed",
            "Start",
            &format!("Error: {message}"),
        )
        .await;
        self.after_exit(id, termination, Duration::ZERO);
    }

    fn spawn_probe(&mut self, id: SlotId, kind: ProbeKind) {
        let pod_ip = self.pod_ip.clone();
        let prober = self.ctx.prober.clone();
        let events = self.events_tx.clone();
        let translations = self.sandbox.translations(&self.slot(id).spec);
        let slot = self.slot_mut(id);
        let Some(probe) = slot.probe(kind).cloned() else {
            return;
        };
        let Some(running) = slot.running.as_ref() else {
            return;
        };
        let timing = ProbeTiming::of(&probe);
        let mut action: ProbeAction = probe_action(&probe, &slot.spec, &pod_ip);
        // Exec probes see the container's paths and variables like its command does.
        if let ProbeAction::Exec { command } = &mut action {
            let lookup = |name: &str| running.env.get(name).map(str::to_string);
            for item in command.iter_mut() {
                let translated =
                    rewrite_wildcard_addresses(&rewrite_paths_in(item, &translations), &pod_ip);
                *item = expand(&translated, &lookup);
            }
        }
        let generation = running.generation;
        let env = running.env.clone();
        let dir = running.working_dir.clone();
        let first_at = running.started + timing.initial_delay;
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(first_at.into()).await;
            let mut ticks = tokio::time::interval(timing.period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let outcome = prober.run(&action, timing.timeout, &env, &dir).await;
                let sent = events.send(WorkerEvent::Probe {
                    slot: id,
                    generation,
                    kind,
                    outcome,
                });
                if sent.is_err() {
                    return;
                }
            }
        });
        slot.probe_tasks.push(task.abort_handle());
    }

    async fn handle_event(&mut self, event: WorkerEvent) {
        match event {
            WorkerEvent::Exited {
                slot,
                generation,
                exit,
            } => self.handle_exit(slot, generation, exit).await,
            WorkerEvent::Probe {
                slot,
                generation,
                kind,
                outcome,
            } => self.handle_probe(slot, generation, kind, outcome).await,
            WorkerEvent::KillDeadline { slot, generation } => {
                let s = self.slot(slot);
                if let Some(running) = s.running.as_ref().filter(|r| r.generation == generation) {
                    signal_group(running.pid, Signal::SIGKILL);
                }
            }
        }
    }

    async fn handle_exit(&mut self, id: SlotId, generation: u64, exit: ExitInfo) {
        let pod_dir = self.sandbox.pod_dir.clone();
        let (termination, ran_for, name) = {
            let slot = self.slot_mut(id);
            let Some(running) = slot.running.take().filter(|r| r.generation == generation) else {
                return;
            };
            // Whatever the leader left behind in its group goes with it, as with a container.
            signal_group(running.pid, Signal::SIGKILL);
            slot.stop_probes();
            forget_pid(&pod_dir, &slot.spec.name);
            let started_at = match &slot.runtime.state {
                RunState::Running { started_at, .. } => Some(*started_at),
                _ => None,
            };
            let message = running.stopping.clone().or_else(|| {
                termination_message(
                    &slot.spec,
                    &pod_dir,
                    slot.runtime.restart_count,
                    exit.exit_code,
                )
            });
            let termination = Termination {
                exit_code: exit.exit_code,
                signal: exit.signal,
                reason: Termination::reason_for(exit.exit_code).to_string(),
                message,
                started_at,
                finished_at: Timestamp::now(),
                container_id: Some(format!("fp-node-agent://{}", running.pid)),
            };
            (
                termination,
                running.started.elapsed(),
                slot.spec.name.clone(),
            )
        };
        tracing::info!(pod = %self.label(), container = %name, exit_code = termination.exit_code, "container exited");
        self.after_exit(id, termination, ran_for);
    }

    /// Records a termination and schedules the restart the policy asks for.
    fn after_exit(&mut self, id: SlotId, termination: Termination, ran_for: Duration) {
        let policy = self.restart_policy();
        let terminating = self.terminating;
        let backoff = self.ctx.backoff;
        let pod_label = format!(
            "{}_{}",
            self.pod.name_any(),
            self.pod.namespace().unwrap_or_default()
        );
        let slot = self.slot_mut(id);
        slot.runtime.ready = false;
        slot.runtime.started = false;
        let restart = !terminating
            && if id.init {
                !termination.succeeded() && policy != "Never"
            } else {
                should_restart(&policy, termination.exit_code)
            };
        if !restart {
            slot.runtime.state = RunState::Terminated(termination);
            slot.next_start = None;
            return;
        }
        let (delay, series) = backoff.next_delay(slot.backoff_series, ran_for);
        slot.backoff_series = series;
        slot.next_start = Some(Instant::now() + delay);
        if delay.is_zero() {
            slot.runtime.state = RunState::Terminated(termination);
        } else {
            slot.runtime.last_termination = Some(termination);
            slot.runtime.state = RunState::Waiting {
                reason: "CrashLoopBackOff".to_string(),
                message: Some(format!(
                    "back-off {} restarting failed container={} pod={pod_label}",
                    humantime::format_duration(delay),
                    slot.spec.name
                )),
            };
        }
    }

    async fn handle_probe(
        &mut self,
        id: SlotId,
        generation: u64,
        kind: ProbeKind,
        outcome: ProbeOutcome,
    ) {
        let (changed, name) = {
            let slot = self.slot_mut(id);
            if slot
                .running
                .as_ref()
                .is_none_or(|r| r.generation != generation)
            {
                return;
            }
            let Some(probe) = slot.probe(kind) else {
                return;
            };
            let timing = ProbeTiming::of(probe);
            let tracker = match kind {
                ProbeKind::Startup => &mut slot.startup,
                ProbeKind::Readiness => &mut slot.readiness,
                ProbeKind::Liveness => &mut slot.liveness,
            };
            (
                tracker.observe(outcome.success, &timing),
                slot.spec.name.clone(),
            )
        };
        if !outcome.success {
            tracing::debug!(pod = %self.label(), container = %name, probe = kind.name(), message = %outcome.message, "probe failed");
        }
        match (kind, changed) {
            (ProbeKind::Startup, Some(true)) => {
                let slot = self.slot_mut(id);
                slot.runtime.started = true;
                slot.runtime.ready = slot.spec.readiness_probe.is_none();
                slot.stop_probes();
                self.spawn_probe(id, ProbeKind::Readiness);
                self.spawn_probe(id, ProbeKind::Liveness);
            }
            (ProbeKind::Startup | ProbeKind::Liveness, Some(false)) => {
                let message = format!("{} probe failed: {}", kind.name(), outcome.message);
                self.event(EventType::Warning, "Unhealthy", "Probe", &message)
                    .await;
                self.event(
                    EventType::Normal,
                    "Killing",
                    "Kill",
                    &format!(
                        "Container {name} failed {} probe, will be restarted",
                        kind.name().to_lowercase()
                    ),
                )
                .await;
                let grace = self.probe_grace(id, kind);
                self.stop_container(id, grace, &message);
            }
            (ProbeKind::Readiness, Some(ready)) => {
                self.slot_mut(id).runtime.ready = ready;
                if !ready {
                    let message = format!("Readiness probe failed: {}", outcome.message);
                    self.event(EventType::Warning, "Unhealthy", "Probe", &message)
                        .await;
                }
            }
            _ => {}
        }
    }

    fn probe_grace(&self, id: SlotId, kind: ProbeKind) -> Duration {
        self.slot(id)
            .probe(kind)
            .and_then(|p| p.termination_grace_period_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map_or_else(|| self.pod_grace(), Duration::from_secs)
    }

    fn pod_grace(&self) -> Duration {
        let seconds = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
    }

    fn deletion_grace(&self) -> Duration {
        self.pod
            .metadata
            .deletion_grace_period_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or_else(|| self.pod_grace(), Duration::from_secs)
    }

    /// SIGTERM now, SIGKILL after `grace` if the process is still there.
    fn stop_container(&mut self, id: SlotId, grace: Duration, reason: &str) {
        let events = self.events_tx.clone();
        let slot = self.slot_mut(id);
        slot.runtime.ready = false;
        let Some(running) = slot.running.as_mut() else {
            return;
        };
        if running.stopping.is_none() {
            running.stopping = Some(reason.to_string());
        }
        let generation = running.generation;
        if grace.is_zero() {
            signal_group(running.pid, Signal::SIGKILL);
            return;
        }
        signal_group(running.pid, Signal::SIGTERM);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = events.send(WorkerEvent::KillDeadline {
                slot: id,
                generation,
            });
        });
    }

    /// Stops every process: SIGTERM, SIGKILL after `grace`, then waits for them to be reaped.
    async fn stop_everything(&mut self, grace: Duration, reason: &str) {
        self.terminating = true;
        let ids: Vec<SlotId> = self
            .init
            .iter()
            .chain(self.main.iter())
            .filter(|s| s.running.is_some())
            .map(|s| s.id)
            .collect();
        if ids.is_empty() {
            return;
        }
        for id in &ids {
            if grace.is_zero() {
                self.stop_container(*id, Duration::ZERO, reason);
            } else {
                let slot = self.slot_mut(*id);
                slot.runtime.ready = false;
                if let Some(running) = slot.running.as_mut() {
                    running.stopping.get_or_insert_with(|| reason.to_string());
                    signal_group(running.pid, Signal::SIGTERM);
                }
            }
        }
        let term_deadline = Instant::now() + grace;
        self.wait_for_exits(term_deadline).await;
        let survivors: Vec<u32> = self
            .init
            .iter()
            .chain(self.main.iter())
            .filter_map(|s| s.running.as_ref().map(|r| r.pid))
            .collect();
        for pid in survivors {
            signal_group(pid, Signal::SIGKILL);
        }
        self.wait_for_exits(Instant::now() + REAP_TIMEOUT).await;
    }

    async fn wait_for_exits(&mut self, deadline: Instant) {
        while self
            .init
            .iter()
            .chain(self.main.iter())
            .any(|s| s.running.is_some())
        {
            tokio::select! {
                Some(event) = self.events_rx.recv() => {
                    if let WorkerEvent::Exited { slot, generation, exit } = event {
                        self.handle_exit(slot, generation, exit).await;
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => return,
            }
        }
    }

    /// Graceful deletion as kubelet does it: stop the containers within the grace period, write
    /// the final status, then delete the pod object with grace 0 so the deletion completes.
    async fn terminate_and_delete(&mut self) {
        let grace = self.deletion_grace();
        tracing::info!(pod = %self.label(), grace_seconds = grace.as_secs(), "pod deleted; stopping containers");
        let had_processes = self
            .init
            .iter()
            .chain(self.main.iter())
            .any(|s| s.running.is_some());
        if had_processes {
            let names: Vec<String> = self
                .main
                .iter()
                .filter(|s| s.running.is_some())
                .map(|s| s.spec.name.clone())
                .collect();
            self.event(
                EventType::Normal,
                "Killing",
                "Kill",
                &format!("Stopping container(s) {}", names.join(", ")),
            )
            .await;
        }
        self.stop_everything(grace, "the pod is being deleted")
            .await;
        if !self.terminal {
            self.pod_is_terminal = true;
            self.terminal = true;
            // A terminated pod has no waiting containers: kubelet reports those as terminated
            // with an unknown status.
            for slot in self.init.iter_mut().chain(self.main.iter_mut()) {
                slot.stop_probes();
                if matches!(slot.runtime.state, RunState::Waiting { .. }) {
                    slot.runtime.state = RunState::Terminated(Termination {
                        exit_code: 137,
                        signal: None,
                        reason: "ContainerStatusUnknown".to_string(),
                        message: Some(
                            "The container could not be located when the pod was terminated"
                                .to_string(),
                        ),
                        started_at: None,
                        finished_at: Timestamp::now(),
                        container_id: None,
                    });
                }
            }
            self.last_status = None;
            self.post_status().await;
        }
        let pods: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            &self.pod.namespace().unwrap_or_default(),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: self.pod.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match pods.delete(&self.pod.name_any(), &params).await {
            Ok(_) => tracing::info!(pod = %self.label(), "pod removed"),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(error) => tracing::warn!(pod = %self.label(), %error, "final pod delete failed"),
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let slots = self
            .init
            .iter()
            .chain(self.main.iter())
            .filter(|s| s.running.is_none())
            .filter_map(|s| s.next_start);
        let volumes = if self.sandbox.problem.is_some() {
            Some(Instant::now() + CONFIG_RETRY)
        } else {
            None
        };
        slots
            .chain(volumes)
            .chain(self.sandbox.next_token_refresh())
            .chain(self.status_retry)
            .min()
    }

    /// Sends the status when it differs from what was last sent.
    async fn post_status(&mut self) {
        let phase = self.phase();
        let init: Vec<ContainerRuntime> = self.init.iter().map(|s| s.runtime.clone()).collect();
        let main: Vec<ContainerRuntime> = self.main.iter().map(|s| s.runtime.clone()).collect();
        let status = pod_status(&PodView {
            pod: &self.pod,
            pod_ip: &self.pod_ip,
            host_ip: NODE_IP,
            init: &init,
            main: &main,
            phase,
            sandbox_ready: !self.pod_ip.is_empty(),
            now: Timestamp::now(),
        });
        let Ok(mut body) = serde_json::to_value(&status) else {
            return;
        };
        explicit_nulls(&mut body);
        if self.last_status.as_ref() == Some(&body) {
            return;
        }
        let pods: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            &self.pod.namespace().unwrap_or_default(),
        );
        let patch = serde_json::json!({ "status": body });
        match pods
            .patch_status(
                &self.pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(updated) => {
                self.pod.status = updated.status;
                self.last_status = Some(body);
                self.status_retry = None;
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                self.last_status = Some(body);
            }
            Err(error) => {
                tracing::warn!(pod = %self.label(), %error, "status update failed; will retry");
                self.status_retry = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }

    /// On agent shutdown the processes are gone but the pod is not finished: report the
    /// containers as they are (terminated) and the pod as not ready, without a final phase.
    async fn post_not_ready(&mut self) {
        if self.terminal {
            return;
        }
        let init: Vec<ContainerRuntime> = self.init.iter().map(|s| s.runtime.clone()).collect();
        let main: Vec<ContainerRuntime> = self.main.iter().map(|s| s.runtime.clone()).collect();
        let full = pod_status(&PodView {
            pod: &self.pod,
            pod_ip: &self.pod_ip,
            host_ip: NODE_IP,
            init: &init,
            main: &main,
            phase: PHASE_RUNNING,
            sandbox_ready: false,
            now: Timestamp::now(),
        });
        let now = Time(Timestamp::now());
        let condition = |type_: &str| {
            serde_json::json!({
                "type": type_,
                "status": "False",
                "reason": "NodeAgentStopped",
                "message": "fp-node-agent stopped; the pod's processes were stopped",
                "lastTransitionTime": now,
            })
        };
        let mut body = serde_json::json!({
            "conditions": [condition("ContainersReady"), condition("Ready")],
            "containerStatuses": full.container_statuses,
        });
        if let Some(init) = full.init_container_statuses {
            body["initContainerStatuses"] = serde_json::json!(init);
        }
        explicit_nulls(&mut body);
        let patch = serde_json::json!({ "status": body });
        let pods: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            &self.pod.namespace().unwrap_or_default(),
        );
        if let Err(error) = pods
            .patch_status(
                &self.pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            tracing::debug!(pod = %self.label(), %error, "cannot mark pod not ready");
        }
    }

    async fn event(&self, type_: EventType, reason: &str, action: &str, note: &str) {
        let Some(recorder) = self.ctx.recorders.get(&self.node) else {
            return;
        };
        let event = KubeEvent {
            type_,
            reason: reason.to_string(),
            note: Some(note.to_string()),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, &self.pod.object_ref(&())).await {
            tracing::debug!(pod = %self.label(), %error, "cannot publish event");
        }
    }

    /// Gives back the pod IP; the pod directory stays for a later agent run.
    fn release(&mut self) {
        if let Some(ip) = self.ip_lease.take() {
            self.ctx.ipam().release(ip);
        }
    }

    /// The pod is gone: remove its volumes and pid records, keep its logs.
    fn cleanup(&mut self) {
        self.release();
        self.sandbox.remove_volumes();
        let _ = std::fs::remove_dir_all(self.sandbox.pod_dir.join("pids"));
    }
}

fn adopt_slots(slots: &mut [Slot], statuses: &[k8s_openapi::api::core::v1::ContainerStatus]) {
    for slot in slots {
        let Some(previous) = statuses.iter().find(|s| s.name == slot.spec.name) else {
            continue;
        };
        slot.runtime.restart_count = previous.restart_count;
        let state = previous.state.clone().unwrap_or_default();
        let from_api = |t: k8s_openapi::api::core::v1::ContainerStateTerminated| Termination {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: t.reason.unwrap_or_default(),
            message: t.message,
            started_at: t.started_at.map(|t| t.0),
            finished_at: t.finished_at.map_or_else(Timestamp::now, |t| t.0),
            container_id: t.container_id,
        };
        let termination = if let Some(t) = state.terminated {
            Some(from_api(t))
        } else if state.running.is_some() {
            Some(Termination {
                exit_code: 137,
                signal: None,
                reason: "ContainerStatusUnknown".to_string(),
                message: Some(
                    "the process was stopped when an earlier fp-node-agent run ended".to_string(),
                ),
                started_at: None,
                finished_at: Timestamp::now(),
                container_id: previous.container_id.clone(),
            })
        } else {
            previous
                .last_state
                .clone()
                .and_then(|s| s.terminated)
                .map(from_api)
        };
        match termination {
            Some(termination) => {
                slot.runtime.state = RunState::Terminated(termination);
                slot.has_run = true;
            }
            None => slot.has_run = previous.restart_count > 0,
        }
    }
}

enum Prepared {
    ConfigError(String),
    NotRunnable(NotRunnable),
}

/// Resolves on the next change; never, once the sender is gone.
async fn changed_or_pending(rx: &mut watch::Receiver<u64>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The termination message as kubelet reads it: the container's terminationMessagePath file
/// (at most 4 KiB), else with `FallbackToLogsOnError` the tail of a failed run's log.
fn termination_message(
    container: &Container,
    pod_dir: &std::path::Path,
    restart_count: i32,
    exit_code: i32,
) -> Option<String> {
    let file = Sandbox::termination_file(pod_dir, &container.name);
    if let Ok(bytes) = std::fs::read(file)
        && !bytes.is_empty()
    {
        let head = &bytes[..bytes.len().min(TERMINATION_FILE_BYTES)];
        return Some(String::from_utf8_lossy(head).into_owned());
    }
    if exit_code == 0
        || container.termination_message_policy.as_deref() != Some("FallbackToLogsOnError")
    {
        return None;
    }
    let log = pod_dir
        .join("logs")
        .join(&container.name)
        .join(format!("{restart_count}.log"));
    let bytes = std::fs::read(log).ok()?;
    let tail = &bytes[bytes.len().saturating_sub(TERMINATION_MESSAGE_BYTES)..];
    let text = String::from_utf8_lossy(tail).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Strategic merge keeps keys the patch leaves out, so the fields a condition or container state
/// no longer has must be sent as explicit nulls (a ready condition must lose its old reason, a
/// running container its old `waiting`).
fn explicit_nulls(status: &mut Value) {
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for condition in conditions {
            for key in ["reason", "message"] {
                if condition.get(key).is_none() {
                    condition[key] = Value::Null;
                }
            }
        }
    }
    for list in ["containerStatuses", "initContainerStatuses"] {
        if let Some(statuses) = status.get_mut(list).and_then(Value::as_array_mut) {
            for container in statuses {
                for state in ["state", "lastState"] {
                    if let Some(object) = container.get_mut(state).and_then(Value::as_object_mut) {
                        for key in ["waiting", "running", "terminated"] {
                            object.entry(key).or_insert(Value::Null);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nulls_clear_stale_fields() {
        let mut status = json!({
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "a", "state": {"running": {}}, "lastState": {}}],
        });
        explicit_nulls(&mut status);
        assert_eq!(
            status,
            json!({
                "conditions": [{"type": "Ready", "status": "True", "reason": null, "message": null}],
                "containerStatuses": [{
                    "name": "a",
                    "state": {"running": {}, "waiting": null, "terminated": null},
                    "lastState": {"running": null, "waiting": null, "terminated": null},
                }],
            })
        );
    }

    fn container_status(
        name: &str,
        state: serde_json::Value,
        last: serde_json::Value,
        restarts: i32,
    ) -> k8s_openapi::api::core::v1::ContainerStatus {
        serde_json::from_value(json!({
            "name": name, "image": "img", "imageID": "", "ready": false,
            "restartCount": restarts, "state": state, "lastState": last,
        }))
        .unwrap()
    }

    #[test]
    fn adoption_continues_where_the_earlier_run_stopped() {
        let slot = |name: &str, index| {
            Slot::new(
                Container {
                    name: name.into(),
                    ..Default::default()
                },
                SlotId { init: false, index },
            )
        };
        let mut slots = vec![
            slot("running", 0),
            slot("crashing", 1),
            slot("done", 2),
            slot("new", 3),
        ];
        let statuses = vec![
            container_status(
                "running",
                json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
                json!({}),
                2,
            ),
            container_status(
                "crashing",
                json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
                5,
            ),
            container_status(
                "done",
                json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
                json!({}),
                0,
            ),
            container_status(
                "new",
                json!({"waiting": {"reason": "ContainerCreating"}}),
                json!({}),
                0,
            ),
        ];
        adopt_slots(&mut slots, &statuses);
        let terminated = |slot: &Slot| match &slot.runtime.state {
            RunState::Terminated(t) => Some((t.exit_code, t.reason.clone())),
            _ => None,
        };
        assert_eq!(
            terminated(&slots[0]),
            Some((137, "ContainerStatusUnknown".into()))
        );
        assert_eq!(slots[0].runtime.restart_count, 2);
        assert!(slots[0].has_run);
        assert_eq!(terminated(&slots[1]), Some((1, "Error".into())));
        assert_eq!(slots[1].runtime.restart_count, 5);
        assert_eq!(terminated(&slots[2]), Some((0, "Completed".into())));
        assert_eq!(terminated(&slots[3]), None);
        assert!(!slots[3].has_run);
    }

    #[test]
    fn termination_message_falls_back_to_log_tail_on_error_only() {
        let dir = tempfile::tempdir().unwrap();
        let log_dir = dir.path().join("logs/job");
        std::fs::create_dir_all(&log_dir).unwrap();
        std::fs::write(
            log_dir.join("0.log"),
            "starting\nfatal: database unreachable\n",
        )
        .unwrap();
        let mut container = Container {
            name: "job".into(),
            ..Default::default()
        };
        assert_eq!(termination_message(&container, dir.path(), 0, 1), None);
        container.termination_message_policy = Some("FallbackToLogsOnError".into());
        assert_eq!(
            termination_message(&container, dir.path(), 0, 1).as_deref(),
            Some("starting\nfatal: database unreachable")
        );
        assert_eq!(termination_message(&container, dir.path(), 0, 0), None);

        // A message the process wrote wins, whatever the exit code.
        let file = Sandbox::termination_file(dir.path(), "job");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "{\"backup\":\"ok\"}").unwrap();
        assert_eq!(
            termination_message(&container, dir.path(), 0, 0).as_deref(),
            Some("{\"backup\":\"ok\"}")
        );
    }
}
