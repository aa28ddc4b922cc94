//! Pod status from the agent's view of its containers, computed as kubelet does (phase rules of
//! kubelet's `getPhase`, conditions with stable transition times). Pure.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub const PHASE_PENDING: &str = "Pending";
pub const PHASE_RUNNING: &str = "Running";
pub const PHASE_SUCCEEDED: &str = "Succeeded";
pub const PHASE_FAILED: &str = "Failed";

/// A finished container run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Timestamp,
    pub container_id: Option<String>,
}

impl Termination {
    /// `Completed` for exit 0, else `Error`, like container runtimes.
    pub fn reason_for(exit_code: i32) -> &'static str {
        if exit_code == 0 { "Completed" } else { "Error" }
    }

    pub fn succeeded(&self) -> bool {
        self.exit_code == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
        container_id: String,
    },
    Terminated(Termination),
}

/// What the agent knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRuntime {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub state: RunState,
    pub last_termination: Option<Termination>,
    pub restart_count: i32,
    /// The startup probe has succeeded (or there is none) since the current start.
    pub started: bool,
    /// The readiness probe reports ready (or there is none) and the container runs.
    pub ready: bool,
}

impl ContainerRuntime {
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.to_string(),
            image: image.to_string(),
            image_id: String::new(),
            state: RunState::Waiting {
                reason: "ContainerCreating".to_string(),
                message: None,
            },
            last_termination: None,
            restart_count: 0,
            started: false,
            ready: false,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, RunState::Running { .. })
    }

    pub fn succeeded(&self) -> bool {
        matches!(&self.state, RunState::Terminated(t) if t.succeeded())
    }

    pub fn to_status(&self) -> ContainerStatus {
        let running = self.is_running();
        let container_id = match &self.state {
            RunState::Running { container_id, .. } => Some(container_id.clone()),
            RunState::Terminated(t) => t.container_id.clone(),
            RunState::Waiting { .. } => None,
        };
        ContainerStatus {
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            container_id,
            ready: running && self.ready,
            restart_count: self.restart_count,
            started: Some(running && self.started),
            state: Some(state_of(&self.state)),
            last_state: Some(
                self.last_termination
                    .as_ref()
                    .map(|t| ContainerState {
                        terminated: Some(terminated_of(t)),
                        ..Default::default()
                    })
                    .unwrap_or_default(),
            ),
            ..Default::default()
        }
    }
}

fn state_of(state: &RunState) -> ContainerState {
    match state {
        RunState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        RunState::Running { started_at, .. } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..Default::default()
        },
        RunState::Terminated(t) => ContainerState {
            terminated: Some(terminated_of(t)),
            ..Default::default()
        },
    }
}

fn terminated_of(t: &Termination) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(Time),
        finished_at: Some(Time(t.finished_at)),
        container_id: t.container_id.clone(),
    }
}

/// The pod phase, following kubelet's `getPhase`. `pod_is_terminal` is set once the pod is being
/// deleted and all its containers have stopped: then even `Always` pods end Succeeded/Failed.
pub fn pod_phase(
    restart_policy: &str,
    init: &[ContainerRuntime],
    main: &[ContainerRuntime],
    pod_is_terminal: bool,
) -> &'static str {
    let init_failed = init.iter().any(|c| {
        matches!(&c.state, RunState::Terminated(t) if !t.succeeded())
            || (matches!(c.state, RunState::Waiting { .. })
                && c.last_termination.as_ref().is_some_and(|t| !t.succeeded()))
    });
    if init_failed && restart_policy == "Never" {
        return PHASE_FAILED;
    }
    if init.iter().any(|c| !c.succeeded()) {
        return if pod_is_terminal && init_failed {
            PHASE_FAILED
        } else {
            PHASE_PENDING
        };
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for container in main {
        match &container.state {
            RunState::Running { .. } => running += 1,
            RunState::Terminated(t) => {
                stopped += 1;
                if t.succeeded() {
                    succeeded += 1;
                }
            }
            RunState::Waiting { .. } if container.last_termination.is_some() => stopped += 1,
            RunState::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        return PHASE_PENDING;
    }
    if running > 0 {
        return PHASE_RUNNING;
    }
    if stopped > 0 {
        if pod_is_terminal {
            return if stopped == succeeded {
                PHASE_SUCCEEDED
            } else {
                PHASE_FAILED
            };
        }
        if restart_policy == "Always" {
            return PHASE_RUNNING;
        }
        if stopped == succeeded {
            return PHASE_SUCCEEDED;
        }
        if restart_policy == "Never" {
            return PHASE_FAILED;
        }
        return PHASE_RUNNING;
    }
    PHASE_PENDING
}

pub fn is_terminal_phase(phase: &str) -> bool {
    phase == PHASE_SUCCEEDED || phase == PHASE_FAILED
}

/// The agent's view of a pod, everything the status depends on.
pub struct PodView<'a> {
    pub pod: &'a Pod,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    pub init: &'a [ContainerRuntime],
    pub main: &'a [ContainerRuntime],
    pub phase: &'a str,
    /// Set once the sandbox (IP, pod directory) exists.
    pub sandbox_ready: bool,
    pub now: Timestamp,
}

/// The status the agent owns (phase, IPs, start time, its conditions, container statuses), to be
/// sent as a strategic merge patch: conditions merge by type, so conditions owned by others
/// (PodScheduled, readiness gates, DisruptionTarget) stay untouched.
pub fn pod_status(view: &PodView<'_>) -> PodStatus {
    let previous = view.pod.status.as_ref();
    let generation = view.pod.metadata.generation;
    let terminal = is_terminal_phase(view.phase);
    let condition = |type_: &str, status: bool, reason: Option<&str>, message: Option<String>| {
        let status = if status { "True" } else { "False" };
        let earlier = previous
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
        // Keep the transition time while the status does not change.
        let last_transition_time = match earlier {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => Some(Time(view.now)),
        };
        PodCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.map(str::to_string),
            message,
            last_transition_time,
            last_probe_time: None,
            observed_generation: generation,
        }
    };

    let initialized = view.init.iter().all(ContainerRuntime::succeeded)
        || view
            .main
            .iter()
            .any(|c| c.is_running() || c.last_termination.is_some());
    let uninitialized: Vec<&str> = view
        .init
        .iter()
        .filter(|c| !c.succeeded())
        .map(|c| c.name.as_str())
        .collect();
    let unready: Vec<&str> = view
        .main
        .iter()
        .filter(|c| !(c.is_running() && c.ready))
        .map(|c| c.name.as_str())
        .collect();
    let containers_ready = unready.is_empty() && !terminal;
    let gates_pending = readiness_gates_pending(view.pod);
    let ready = containers_ready && gates_pending.is_empty();

    let (containers_reason, containers_message) = if terminal {
        (Some("PodCompleted"), None)
    } else if containers_ready {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let (ready_reason, ready_message) = if terminal {
        (Some("PodCompleted"), None)
    } else if !containers_ready {
        (containers_reason, containers_message.clone())
    } else if !gates_pending.is_empty() {
        (
            Some("ReadinessGatesNotReady"),
            Some(format!(
                "corresponding condition of pod readiness gate {} does not exist or is not True",
                gates_pending.join(", ")
            )),
        )
    } else {
        (None, None)
    };
    let (init_reason, init_message) = if initialized {
        (
            if terminal && !view.init.is_empty() {
                Some("PodCompleted")
            } else {
                None
            },
            None,
        )
    } else {
        (
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                uninitialized.join(" ")
            )),
        )
    };
    let conditions = vec![
        condition(
            "PodReadyToStartContainers",
            view.sandbox_ready && !terminal,
            None,
            None,
        ),
        condition("Initialized", initialized, init_reason, init_message),
        condition(
            "ContainersReady",
            containers_ready,
            containers_reason,
            containers_message,
        ),
        condition("Ready", ready, ready_reason, ready_message),
    ];

    let start_time = previous
        .and_then(|s| s.start_time.clone())
        .or(Some(Time(view.now)));
    let has_ip = !view.pod_ip.is_empty();
    PodStatus {
        phase: Some(view.phase.to_string()),
        observed_generation: generation,
        host_ip: Some(view.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: view.host_ip.to_string(),
        }]),
        pod_ip: has_ip.then(|| view.pod_ip.to_string()),
        pod_ips: has_ip.then(|| {
            vec![PodIP {
                ip: view.pod_ip.to_string(),
            }]
        }),
        start_time,
        conditions: Some(conditions),
        init_container_statuses: (!view.init.is_empty())
            .then(|| view.init.iter().map(ContainerRuntime::to_status).collect()),
        container_statuses: Some(view.main.iter().map(ContainerRuntime::to_status).collect()),
        ..Default::default()
    }
}

/// Readiness gates whose condition is missing or not True.
fn readiness_gates_pending(pod: &Pod) -> Vec<String> {
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .into_iter()
        .flatten()
        .filter(|gate| {
            !conditions
                .iter()
                .any(|c| c.type_ == gate.condition_type && c.status == "True")
        })
        .map(|gate| format!("{:?}", gate.condition_type))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodReadinessGate, PodSpec};
    use kube::api::ObjectMeta;

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn running(name: &str, ready: bool) -> ContainerRuntime {
        ContainerRuntime {
            state: RunState::Running {
                started_at: ts(0),
                container_id: format!("fp-node-agent://{name}"),
            },
            started: true,
            ready,
            ..ContainerRuntime::new(name, "img")
        }
    }

    fn exited(name: &str, exit_code: i32) -> ContainerRuntime {
        ContainerRuntime {
            state: RunState::Terminated(termination(exit_code)),
            ..ContainerRuntime::new(name, "img")
        }
    }

    fn termination(exit_code: i32) -> Termination {
        Termination {
            exit_code,
            signal: None,
            reason: Termination::reason_for(exit_code).to_string(),
            message: None,
            started_at: Some(ts(0)),
            finished_at: ts(5),
            container_id: None,
        }
    }

    fn crash_looping(name: &str) -> ContainerRuntime {
        ContainerRuntime {
            state: RunState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: None,
            },
            last_termination: Some(termination(1)),
            restart_count: 2,
            ..ContainerRuntime::new(name, "img")
        }
    }

    fn waiting(name: &str) -> ContainerRuntime {
        ContainerRuntime::new(name, "img")
    }

    #[test]
    fn phase_follows_kubelet_rules() {
        // (restart policy, init containers, containers, pod is terminal, expected phase)
        type Case = (
            &'static str,
            Vec<ContainerRuntime>,
            Vec<ContainerRuntime>,
            bool,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            ("Always", vec![], vec![waiting("a")], false, PHASE_PENDING),
            (
                "Always",
                vec![],
                vec![running("a", false)],
                false,
                PHASE_RUNNING,
            ),
            (
                "Always",
                vec![],
                vec![crash_looping("a")],
                false,
                PHASE_RUNNING,
            ),
            ("Always", vec![], vec![exited("a", 0)], false, PHASE_RUNNING),
            (
                "Always",
                vec![],
                vec![exited("a", 0)],
                true,
                PHASE_SUCCEEDED,
            ),
            ("Always", vec![], vec![exited("a", 143)], true, PHASE_FAILED),
            (
                "Never",
                vec![],
                vec![exited("a", 0)],
                false,
                PHASE_SUCCEEDED,
            ),
            ("Never", vec![], vec![exited("a", 1)], false, PHASE_FAILED),
            (
                "Never",
                vec![],
                vec![exited("a", 1), running("b", true)],
                false,
                PHASE_RUNNING,
            ),
            (
                "Never",
                vec![],
                vec![exited("a", 0), exited("b", 2)],
                false,
                PHASE_FAILED,
            ),
            (
                "OnFailure",
                vec![],
                vec![exited("a", 1)],
                false,
                PHASE_RUNNING,
            ),
            (
                "OnFailure",
                vec![],
                vec![crash_looping("a")],
                false,
                PHASE_RUNNING,
            ),
            (
                "OnFailure",
                vec![],
                vec![exited("a", 0)],
                false,
                PHASE_SUCCEEDED,
            ),
            (
                "Always",
                vec![running("init", false)],
                vec![waiting("a")],
                false,
                PHASE_PENDING,
            ),
            (
                "Always",
                vec![exited("init", 0)],
                vec![running("a", true)],
                false,
                PHASE_RUNNING,
            ),
            (
                "Never",
                vec![exited("init", 1)],
                vec![waiting("a")],
                false,
                PHASE_FAILED,
            ),
            (
                "OnFailure",
                vec![crash_looping("init")],
                vec![waiting("a")],
                false,
                PHASE_PENDING,
            ),
            (
                "Always",
                vec![crash_looping("init")],
                vec![waiting("a")],
                true,
                PHASE_FAILED,
            ),
        ];
        for (policy, init, main, terminal, expected) in cases {
            assert_eq!(
                pod_phase(policy, &init, &main, terminal),
                expected,
                "policy {policy}, init {init:?}, main {main:?}, terminal {terminal}"
            );
        }
    }

    fn pod_with(previous: Option<PodStatus>, gates: &[&str]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(PodSpec {
                readiness_gates: (!gates.is_empty()).then(|| {
                    gates
                        .iter()
                        .map(|g| PodReadinessGate {
                            condition_type: g.to_string(),
                        })
                        .collect()
                }),
                ..Default::default()
            }),
            status: previous,
        }
    }

    fn condition<'a>(status: &'a PodStatus, type_: &str) -> &'a PodCondition {
        status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap()
    }

    fn view<'a>(
        pod: &'a Pod,
        main: &'a [ContainerRuntime],
        phase: &'a str,
        now: i64,
    ) -> PodView<'a> {
        PodView {
            pod,
            pod_ip: "127.0.2.7",
            host_ip: "127.0.0.1",
            init: &[],
            main,
            phase,
            sandbox_ready: true,
            now: ts(now),
        }
    }

    #[test]
    fn ready_needs_every_container_ready() {
        let pod = pod_with(None, &[]);
        let main = [running("api", true), running("sidecar", false)];
        let status = pod_status(&view(&pod, &main, PHASE_RUNNING, 10));
        let ready = condition(&status, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [sidecar]")
        );
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(status.pod_ip.as_deref(), Some("127.0.2.7"));
        assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "127.0.2.7");
        assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(condition(&status, "Initialized").status, "True");

        let main = [running("api", true), running("sidecar", true)];
        let status = pod_status(&view(&pod, &main, PHASE_RUNNING, 10));
        assert_eq!(condition(&status, "Ready").status, "True");
        assert_eq!(condition(&status, "ContainersReady").status, "True");
        let statuses = status.container_statuses.unwrap();
        assert!(statuses.iter().all(|s| s.ready && s.started == Some(true)));
    }

    #[test]
    fn transition_times_only_move_on_change() {
        let pod = pod_with(None, &[]);
        let main = [running("api", false)];
        let first = pod_status(&view(&pod, &main, PHASE_RUNNING, 10));
        let pod = pod_with(Some(first.clone()), &[]);
        let same = pod_status(&view(&pod, &main, PHASE_RUNNING, 20));
        assert_eq!(
            condition(&same, "Ready").last_transition_time,
            Some(Time(ts(10)))
        );
        assert_eq!(same.start_time, Some(Time(ts(10))));
        let main = [running("api", true)];
        let changed = pod_status(&view(&pod, &main, PHASE_RUNNING, 30));
        assert_eq!(
            condition(&changed, "Ready").last_transition_time,
            Some(Time(ts(30)))
        );
        assert_eq!(
            condition(&changed, "Initialized").last_transition_time,
            Some(Time(ts(10)))
        );
    }

    #[test]
    fn readiness_gates_hold_ready_back() {
        let pod = pod_with(None, &["example.com/lb"]);
        let main = [running("api", true)];
        let status = pod_status(&view(&pod, &main, PHASE_RUNNING, 0));
        assert_eq!(condition(&status, "ContainersReady").status, "True");
        let ready = condition(&status, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ReadinessGatesNotReady"));

        let mut with_gate = status.clone();
        with_gate.conditions.as_mut().unwrap().push(PodCondition {
            type_: "example.com/lb".into(),
            status: "True".into(),
            ..Default::default()
        });
        let pod = pod_with(Some(with_gate), &["example.com/lb"]);
        let status = pod_status(&view(&pod, &main, PHASE_RUNNING, 0));
        assert_eq!(condition(&status, "Ready").status, "True");
    }

    #[test]
    fn completed_pods_are_not_ready() {
        let pod = pod_with(None, &[]);
        let main = [exited("job", 0)];
        let status = pod_status(&view(&pod, &main, PHASE_SUCCEEDED, 0));
        assert_eq!(status.phase.as_deref(), Some(PHASE_SUCCEEDED));
        let ready = condition(&status, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("PodCompleted"))
        );
        let terminated = status.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(terminated.exit_code, 0);
        assert_eq!(terminated.reason.as_deref(), Some("Completed"));
    }

    #[test]
    fn init_containers_gate_initialized() {
        let pod = pod_with(None, &[]);
        let init = [running("migrate", false)];
        let main = [waiting("api")];
        let status = pod_status(&PodView {
            init: &init,
            ..view(&pod, &main, PHASE_PENDING, 0)
        });
        let initialized = condition(&status, "Initialized");
        assert_eq!(initialized.status, "False");
        assert_eq!(
            initialized.message.as_deref(),
            Some("containers with incomplete status: [migrate]")
        );
        assert_eq!(status.init_container_statuses.unwrap().len(), 1);
        let waiting = status.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
    }

    #[test]
    fn crash_loops_report_last_state_and_restarts() {
        let status = crash_looping("api").to_status();
        assert_eq!(status.restart_count, 2);
        assert!(!status.ready);
        assert_eq!(status.started, Some(false));
        let last = status.last_state.unwrap().terminated.unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
        assert_eq!(
            status.state.unwrap().waiting.unwrap().reason.as_deref(),
            Some("CrashLoopBackOff")
        );
    }
}
