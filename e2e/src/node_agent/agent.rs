//! Start-up, the pod watches, the dispatcher that runs one worker per pod, node heartbeats and
//! the clean shutdown.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::cache::ObjectCache;
use super::command::HostLookup;
use super::context::AgentContext;
use super::image::{ImageConfigError, ImageTable};
use super::ipam::{IpAllocator, IpRange, IpamError};
use super::kubeconfig::{ApiServerEndpoint, KubeconfigError};
use super::logs::{self, LogServerError};
use super::node::{self, NodeError, NodeSettings};
use super::probe::Prober;
use super::process::{ProcessIdentity, kill_recorded_orphans};
use super::restart::BackoffPolicy;
use super::worker::{PodWorker, WorkerExit};

/// How often the Lease is renewed (kubelet: every 10 s of a 40 s lease).
const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// Node status is re-posted every this many lease renewals.
const STATUS_EVERY_RENEWALS: u32 = 3;
const FIELD_MANAGER_COMPONENT: &str = "fp-node-agent";

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error(transparent)]
    Endpoint(#[from] KubeconfigError),
    #[error("building the API client: {0}")]
    Client(#[source] kube::Error),
    #[error(transparent)]
    Images(#[from] ImageConfigError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building the probe HTTP client: {0}")]
    Prober(#[source] reqwest::Error),
    #[error("cannot read this process's identity from /proc")]
    Identity,
    #[error("the Secret/ConfigMap caches did not sync within {0:?}")]
    CacheSync(Duration),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Logs(#[from] LogServerError),
}

/// Everything the command line configures.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub kubeconfig: PathBuf,
    pub state_dir: PathBuf,
    pub images: Option<PathBuf>,
    pub nodes: usize,
    pub node_name_prefix: String,
    pub apiserver_url: Option<String>,
    pub pod_cidr: String,
    pub ip_lease_dir: PathBuf,
    pub backoff: BackoffPolicy,
    pub node_settings: NodeSettings,
    pub shutdown_grace: Duration,
}

impl AgentOptions {
    /// The same options with every path made absolute against the current directory.
    pub fn absolute(mut self) -> std::io::Result<Self> {
        self.kubeconfig = std::path::absolute(&self.kubeconfig)?;
        self.state_dir = std::path::absolute(&self.state_dir)?;
        self.ip_lease_dir = std::path::absolute(&self.ip_lease_dir)?;
        self.images = self.images.map(std::path::absolute).transpose()?;
        Ok(self)
    }
}

/// Runs the agent until `shutdown` resolves, then stops every pod process and marks the nodes
/// NotReady.
pub async fn run(
    options: AgentOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    // Pod processes run in their own directories: every path handed to them must be absolute.
    let options = options.absolute().map_err(|source| AgentError::StateDir {
        path: PathBuf::from("."),
        source,
    })?;
    let kubeconfig =
        Kubeconfig::read_from(&options.kubeconfig).map_err(|source| AgentError::Kubeconfig {
            path: options.kubeconfig.clone(),
            source,
        })?;
    let kubeconfig_dir = options
        .kubeconfig
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    // The agent's own connection must stay on loopback too.
    let own_endpoint = ApiServerEndpoint::from_kubeconfig(&kubeconfig, &kubeconfig_dir)?;
    let endpoint = match &options.apiserver_url {
        Some(url) => ApiServerEndpoint::new(url, own_endpoint.ca.clone())?,
        None => own_endpoint,
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| AgentError::Kubeconfig {
            path: options.kubeconfig.clone(),
            source,
        })?;
    let client = Client::try_from(config).map_err(AgentError::Client)?;

    let pods_dir = options.state_dir.join("pods");
    prepare_state_dir(&pods_dir)?;
    let images = ImageTable::load(options.images.as_deref())?;
    let owner = ProcessIdentity::current().ok_or(AgentError::Identity)?;
    let ipam = IpAllocator::new(
        IpRange::parse_cidr(&options.pod_cidr)?,
        &options.ip_lease_dir,
        owner,
    )?;

    let cache = ObjectCache::start(&client);
    let sync_timeout = Duration::from_secs(60);
    match tokio::time::timeout(sync_timeout, cache.wait_until_ready()).await {
        Ok(true) => {}
        _ => return Err(AgentError::CacheSync(sync_timeout)),
    }

    // The log endpoint's port is what the Nodes report as their kubelet endpoint.
    let requested_port = u16::try_from(options.node_settings.kubelet_port).unwrap_or(0);
    let log_port = logs::start(requested_port, pods_dir.clone()).await?;
    let mut options = options;
    options.node_settings.kubelet_port = i32::from(log_port);

    let node_names = node::node_names(&options.node_name_prefix, options.nodes.max(1));
    let mut registered = Vec::new();
    for name in &node_names {
        registered.push(register_with_retry(&client, name, &options.node_settings).await?);
    }
    let recorders: BTreeMap<String, Recorder> = node_names
        .iter()
        .map(|name| {
            let reporter = Reporter {
                controller: FIELD_MANAGER_COMPONENT.to_string(),
                instance: Some(name.clone()),
            };
            (name.clone(), Recorder::new(client.clone(), reporter))
        })
        .collect();
    let ctx = Arc::new(AgentContext {
        client: client.clone(),
        cache,
        images,
        lookup: HostLookup::from_environment(),
        prober: Prober::new().map_err(AgentError::Prober)?,
        ipam: Mutex::new(ipam),
        endpoint,
        node_settings: options.node_settings.clone(),
        pods_dir,
        persistent_dir: options.state_dir.join("persistent"),
        backoff: options.backoff,
        shutdown_grace: options.shutdown_grace,
        recorders,
    });
    tracing::info!(nodes = ?node_names, pod_cidr = %options.pod_cidr, "fp-node-agent ready");

    let heartbeat = tokio::spawn(heartbeat_loop(
        client.clone(),
        registered,
        options.node_settings.clone(),
    ));
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let watches: Vec<JoinHandle<()>> = node_names
        .iter()
        .map(|name| tokio::spawn(watch_pods(client.clone(), name.clone(), events_tx.clone())))
        .collect();
    drop(events_tx);

    let mut dispatcher = Dispatcher::new(ctx.clone(), node_names.len());
    dispatcher.run(events_rx, shutdown).await;

    for task in watches {
        task.abort();
    }
    heartbeat.abort();
    let finish_within = options.shutdown_grace + Duration::from_secs(15);
    dispatcher.stop_all(finish_within).await;
    for name in &node_names {
        if let Err(error) = node::mark_not_ready(
            &client,
            name,
            &options.node_settings,
            "fp-node-agent stopped",
        )
        .await
        {
            tracing::warn!(node = %name, %error, "cannot mark node NotReady");
        }
    }
    ctx.ipam().release_all();
    tracing::info!("fp-node-agent stopped");
    Ok(())
}

/// Stops processes a crashed earlier run left behind. Pod directories stay (emptyDir content
/// survives an agent restart, as with kubelet); those of pods that are gone are removed once the
/// first pod lists are in.
fn prepare_state_dir(pods_dir: &Path) -> Result<(), AgentError> {
    let killed = kill_recorded_orphans(pods_dir);
    if killed > 0 {
        tracing::warn!(
            killed,
            "stopped container processes left by an earlier agent run"
        );
    }
    std::fs::create_dir_all(pods_dir).map_err(|source| AgentError::StateDir {
        path: pods_dir.to_path_buf(),
        source,
    })
}

/// The pod UID a pod directory (`<namespace>_<name>_<uid>`) belongs to.
pub fn pod_dir_uid(dir_name: &str) -> Option<&str> {
    dir_name
        .rsplit_once('_')
        .map(|(_, uid)| uid)
        .filter(|uid| !uid.is_empty())
}

/// Removes the directories of pods not in `live` (deleted while no agent ran).
fn remove_stale_pod_dirs(pods_dir: &Path, live: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(pods_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if pod_dir_uid(&name).is_none_or(|uid| !live.contains(uid)) {
            tracing::info!(dir = %name, "removing the directory of a pod that no longer exists");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

async fn register_with_retry(
    client: &Client,
    name: &str,
    settings: &NodeSettings,
) -> Result<Node, AgentError> {
    let mut attempt = 0;
    loop {
        match node::register(client, name, settings).await {
            Ok(node) => {
                tracing::info!(node = %name, "node registered");
                return Ok(node);
            }
            Err(error) if attempt < 15 => {
                tracing::warn!(node = %name, %error, "node registration failed; retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

async fn heartbeat_loop(client: Client, mut nodes: Vec<Node>, settings: NodeSettings) {
    let mut ticks = tokio::time::interval(LEASE_RENEW_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renewals: u32 = 0;
    loop {
        ticks.tick().await;
        renewals = renewals.wrapping_add(1);
        for node in &mut nodes {
            let name = node.name_any();
            if renewals.is_multiple_of(STATUS_EVERY_RENEWALS) {
                let posted = match node::post_status(&client, &name, &settings, true, "").await {
                    Ok(updated) => node::make_schedulable(&client, updated).await,
                    Err(error) => Err(error),
                };
                match posted {
                    Ok(updated) => *node = updated,
                    Err(error) => {
                        tracing::warn!(node = %name, %error, "node status update failed; re-registering");
                        if let Ok(updated) = node::register(&client, &name, &settings).await {
                            *node = updated;
                        }
                    }
                }
            }
            if let Err(error) = node::renew_lease(&client, node).await {
                tracing::warn!(node = %name, %error, "lease renewal failed");
            }
        }
    }
}

/// Pods bound to one node, forever (the watcher retries with back-off).
async fn watch_pods(
    client: Client,
    node: String,
    events: mpsc::UnboundedSender<(String, watcher::Event<Pod>)>,
) {
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut stream = std::pin::pin!(watcher(pods, config).default_backoff());
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                if events.send((node.clone(), event)).is_err() {
                    return;
                }
            }
            Err(error) => tracing::warn!(node = %node, %error, "pod watch failed; retrying"),
        }
    }
}

struct WorkerHandle {
    node: String,
    pod: watch::Sender<Option<Pod>>,
    task: JoinHandle<()>,
}

/// Routes pod events to one worker per pod UID.
struct Dispatcher {
    ctx: Arc<AgentContext>,
    workers: HashMap<String, WorkerHandle>,
    /// Pods whose worker finished (deleted by us, object still there for finalizers).
    finished: HashSet<String>,
    /// UIDs seen during the current relist of each node.
    relisting: HashMap<String, HashSet<String>>,
    /// Nodes whose first pod list is complete; stale pod directories go once all are.
    listed_nodes: HashSet<String>,
    node_count: usize,
    stale_dirs_removed: bool,
    shutdown: watch::Sender<bool>,
    done_tx: mpsc::UnboundedSender<(String, WorkerExit)>,
    done_rx: mpsc::UnboundedReceiver<(String, WorkerExit)>,
}

impl Dispatcher {
    fn new(ctx: Arc<AgentContext>, node_count: usize) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            ctx,
            workers: HashMap::new(),
            finished: HashSet::new(),
            relisting: HashMap::new(),
            listed_nodes: HashSet::new(),
            node_count,
            stale_dirs_removed: false,
            shutdown: watch::channel(false).0,
            done_tx,
            done_rx,
        }
    }

    async fn run(
        &mut self,
        mut events: mpsc::UnboundedReceiver<(String, watcher::Event<Pod>)>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                Some((node, event)) = events.recv() => self.handle(&node, event),
                Some((uid, exit)) = self.done_rx.recv() => self.worker_done(uid, exit),
            }
        }
    }

    fn handle(&mut self, node: &str, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => {
                self.relisting.insert(node.to_string(), HashSet::new());
            }
            watcher::Event::InitApply(pod) => {
                if let Some(uid) = pod.uid() {
                    self.relisting
                        .entry(node.to_string())
                        .or_default()
                        .insert(uid);
                }
                self.apply(node, pod);
            }
            watcher::Event::Apply(pod) => self.apply(node, pod),
            watcher::Event::Delete(pod) => {
                let uid = pod.uid().unwrap_or_default();
                self.finished.remove(&uid);
                if let Some(worker) = self.workers.get(&uid) {
                    worker.pod.send_replace(None);
                }
            }
            watcher::Event::InitDone => {
                let seen = self.relisting.remove(node).unwrap_or_default();
                for (uid, worker) in &self.workers {
                    if worker.node == node && !seen.contains(uid) {
                        worker.pod.send_replace(None);
                    }
                }
                self.finished.retain(|uid| seen.contains(uid));
                self.listed_nodes.insert(node.to_string());
                if !self.stale_dirs_removed && self.listed_nodes.len() >= self.node_count {
                    self.stale_dirs_removed = true;
                    let live: HashSet<String> = self.workers.keys().cloned().collect();
                    remove_stale_pod_dirs(&self.ctx.pods_dir, &live);
                }
            }
        }
    }

    fn apply(&mut self, node: &str, pod: Pod) {
        let Some(uid) = pod.uid() else {
            return;
        };
        if self.finished.contains(&uid) {
            return;
        }
        if let Some(worker) = self.workers.get(&uid) {
            worker.pod.send_replace(Some(pod));
            return;
        }
        tracing::info!(pod = %format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any()), node, "pod bound to this node");
        let (pod_tx, pod_rx) = watch::channel(Some(pod.clone()));
        let worker = PodWorker::new(self.ctx.clone(), pod, node.to_string());
        let shutdown = self.shutdown.subscribe();
        let done = self.done_tx.clone();
        let worker_uid = uid.clone();
        let task = tokio::spawn(async move {
            let exit = worker.run(pod_rx, shutdown).await;
            let _ = done.send((worker_uid, exit));
        });
        self.workers.insert(
            uid,
            WorkerHandle {
                node: node.to_string(),
                pod: pod_tx,
                task,
            },
        );
    }

    fn worker_done(&mut self, uid: String, exit: WorkerExit) {
        self.workers.remove(&uid);
        if exit == WorkerExit::PodGone {
            self.finished.insert(uid);
        }
    }

    /// Tells every worker to stop its processes and waits for them (bounded).
    async fn stop_all(&mut self, within: Duration) {
        self.shutdown.send_replace(true);
        let tasks: Vec<JoinHandle<()>> = self.workers.drain().map(|(_, w)| w.task).collect();
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!("some pod workers did not stop in time");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_dirs_name_their_uid() {
        assert_eq!(
            pod_dir_uid("fp_api-7d9f_5b0c1e2a-0000-4000-8000-000000000001"),
            Some("5b0c1e2a-0000-4000-8000-000000000001")
        );
        assert_eq!(pod_dir_uid("garbage"), None);
    }

    #[test]
    fn stale_pod_dirs_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["ns_a_uid-1", "ns_b_uid-2", "junk"] {
            std::fs::create_dir_all(dir.path().join(name).join("logs")).unwrap();
        }
        let live = HashSet::from(["uid-1".to_string()]);
        remove_stale_pod_dirs(dir.path(), &live);
        assert!(dir.path().join("ns_a_uid-1").exists());
        assert!(!dir.path().join("ns_b_uid-2").exists());
        assert!(!dir.path().join("junk").exists());
    }
}
