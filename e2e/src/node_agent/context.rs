//! What every pod worker shares: the API client, caches, configuration and allocators.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Recorder;

use super::cache::ObjectCache;
use super::command::HostLookup;
use super::image::ImageTable;
use super::ipam::IpAllocator;
use super::kubeconfig::ApiServerEndpoint;
use super::node::NodeSettings;
use super::probe::Prober;
use super::restart::BackoffPolicy;

pub struct AgentContext {
    pub client: Client,
    pub cache: ObjectCache,
    pub images: ImageTable,
    pub lookup: HostLookup,
    pub prober: Prober,
    pub ipam: Mutex<IpAllocator>,
    pub endpoint: ApiServerEndpoint,
    pub node_settings: NodeSettings,
    /// `<state-dir>/pods`: one directory per pod.
    pub pods_dir: PathBuf,
    /// `<state-dir>/persistent`: data of PersistentVolumes without a host path, kept across pods.
    pub persistent_dir: PathBuf,
    pub backoff: BackoffPolicy,
    /// How long processes get after SIGTERM when the agent itself stops.
    pub shutdown_grace: Duration,
    /// Event recorders by node name (kubelet reports events as its node).
    pub recorders: BTreeMap<String, Recorder>,
}

impl AgentContext {
    /// The allocator; a panic elsewhere while holding the lock leaves it usable.
    pub fn ipam(&self) -> MutexGuard<'_, IpAllocator> {
        self.ipam
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
