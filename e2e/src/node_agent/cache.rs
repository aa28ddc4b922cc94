//! Watch-based caches of Secrets and ConfigMaps, as kubelet's watching object manager keeps
//! them: env and volumes resolve from memory, and every change bumps a counter so pod workers
//! refresh their Secret/ConfigMap volumes at once (a rotated JWT key shows up in seconds).

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use super::env::{ObjectData, ObjectSource, config_map_data, secret_data};

#[derive(Clone)]
pub struct ObjectCache {
    secrets: Store<Secret>,
    config_maps: Store<ConfigMap>,
    changes: watch::Receiver<u64>,
}

impl ObjectCache {
    /// Starts both watches; they run until the runtime stops.
    pub fn start(client: &Client) -> Self {
        let (changes_tx, changes) = watch::channel(0u64);
        let secrets = spawn_reflector::<Secret>(Api::all(client.clone()), changes_tx.clone());
        let config_maps = spawn_reflector::<ConfigMap>(Api::all(client.clone()), changes_tx);
        Self {
            secrets,
            config_maps,
            changes,
        }
    }

    /// Waits for the initial lists so a missing object really is missing.
    pub async fn wait_until_ready(&self) -> bool {
        self.secrets.wait_until_ready().await.is_ok()
            && self.config_maps.wait_until_ready().await.is_ok()
    }

    /// A receiver whose value changes whenever any cached object changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    pub fn namespace(&self, namespace: &str) -> NamespacedObjects<'_> {
        NamespacedObjects {
            cache: self,
            namespace: namespace.to_string(),
        }
    }
}

fn spawn_reflector<K>(api: Api<K>, changes: watch::Sender<u64>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                // Every event, including the end of a relist when the store is swapped.
                Ok(_) => {
                    changes.send_modify(|n| *n = n.wrapping_add(1));
                }
                Err(error) => {
                    tracing::warn!(kind = K::kind(&()).as_ref(), %error, "watch failed; retrying");
                }
            }
        }
    });
    reader
}

/// The cache seen from one namespace.
pub struct NamespacedObjects<'a> {
    cache: &'a ObjectCache,
    namespace: String,
}

impl ObjectSource for NamespacedObjects<'_> {
    fn secret(&self, name: &str) -> Option<ObjectData> {
        let key = ObjectRef::new(name).within(&self.namespace);
        self.cache.secrets.get(&key).map(|s| secret_data(&s))
    }

    fn config_map(&self, name: &str) -> Option<ObjectData> {
        let key = ObjectRef::new(name).within(&self.namespace);
        self.cache
            .config_maps
            .get(&key)
            .map(|c| config_map_data(&c))
    }
}
