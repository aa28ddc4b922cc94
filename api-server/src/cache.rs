//! In-process caches of serialised responses: TTL with per-entry jitter (entries made together
//! do not expire together), one computation for concurrent misses of a key (moka's
//! `try_get_with`), hit/miss counters. Keys carry the data version, so an entry computed
//! before an import or refit can never be served after this replica has seen the new version;
//! on a version change the old entries are also dropped to free memory.

use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::CacheSettings;
use crate::error::ApiError;
use crate::metrics::{CacheCounters, CacheName, Metrics};

struct JitteredTtl {
    ttl: Duration,
    jitter: f64,
}

impl JitteredTtl {
    fn pick(&self) -> Duration {
        self.ttl.mul_f64(1.0 + self.jitter * rand::random::<f64>())
    }
}

impl<K, V> moka::Expiry<K, V> for JitteredTtl {
    fn expire_after_create(&self, _key: &K, _value: &V, _created_at: Instant) -> Option<Duration> {
        Some(self.pick())
    }
}

pub struct BytesCache<K> {
    inner: moka::future::Cache<K, Bytes>,
    counters: CacheCounters,
}

impl<K: Hash + Eq + Send + Sync + 'static> BytesCache<K> {
    pub fn new(name: CacheName, settings: &CacheSettings, metrics: &Metrics) -> Self {
        let inner = moka::future::Cache::builder()
            .max_capacity(settings.capacity)
            .expire_after(JitteredTtl {
                ttl: settings.ttl,
                jitter: settings.ttl_jitter,
            })
            .build();
        Self {
            inner,
            counters: metrics.cache_counters(name),
        }
    }

    /// The cached bytes of `key` (a hit), or `compute`'s result, computed once however many
    /// requests miss at the same time. Errors are not cached.
    pub async fn get_or_compute<F>(&self, key: K, compute: F) -> Result<Bytes, ApiError>
    where
        F: Future<Output = Result<Bytes, ApiError>>,
    {
        if let Some(bytes) = self.inner.get(&key).await {
            self.counters.hit.inc();
            return Ok(bytes);
        }
        self.counters.miss.inc();
        self.inner
            .try_get_with(key, compute)
            .await
            .map_err(|e: Arc<ApiError>| ApiError::clone(&e))
    }

    /// Only a lookup (counted as a hit or a miss).
    pub async fn get(&self, key: &K) -> Option<Bytes> {
        let found = self.inner.get(key).await;
        if found.is_some() {
            self.counters.hit.inc();
        } else {
            self.counters.miss.inc();
        }
        found
    }

    pub async fn insert(&self, key: K, bytes: Bytes) {
        self.inner.insert(key, bytes).await;
    }

    pub fn invalidate_all(&self) {
        self.inner.invalidate_all();
    }
}

/// The caches of one replica.
pub struct Caches {
    /// `(data version, match id)` -> a prediction's JSON.
    pub predictions: BytesCache<(i64, i64)>,
    /// `data version|path?query` -> a read endpoint's JSON.
    pub responses: BytesCache<String>,
    /// `(data version, league id, season id)` -> an evaluation report's JSON.
    pub evaluations: BytesCache<(i64, i64, i64)>,
}

impl Caches {
    pub fn new(settings: &CacheSettings, metrics: &Metrics) -> Self {
        Self {
            predictions: BytesCache::new(CacheName::Predictions, settings, metrics),
            responses: BytesCache::new(CacheName::Responses, settings, metrics),
            evaluations: BytesCache::new(CacheName::Evaluations, settings, metrics),
        }
    }

    pub fn invalidate_all(&self) {
        self.predictions.invalidate_all();
        self.responses.invalidate_all();
        self.evaluations.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn settings() -> CacheSettings {
        CacheSettings {
            ttl: Duration::from_millis(200),
            ttl_jitter: 0.5,
            capacity: 100,
            version_poll_interval: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn concurrent_misses_compute_once_and_hits_are_counted() {
        let metrics = Metrics::new("t").unwrap();
        // The entry must still be there for the hit at the end: a TTL no stall reaches (expiry
        // has its own test).
        let long_lived = CacheSettings {
            ttl: Duration::from_secs(600),
            ..settings()
        };
        let cache = Arc::new(BytesCache::<u64>::new(
            CacheName::Predictions,
            &long_lived,
            &metrics,
        ));
        let computed = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = cache.clone();
            let computed = computed.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute(1, async {
                        computed.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(Bytes::from_static(b"x"))
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Bytes::from_static(b"x"));
        }
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        cache
            .get_or_compute(1, async { Ok(Bytes::new()) })
            .await
            .unwrap();
        let counters = metrics.cache_counters(CacheName::Predictions);
        assert_eq!(counters.miss.get(), 20);
        assert_eq!(counters.hit.get(), 1);
    }

    #[tokio::test]
    async fn entries_expire_within_ttl_plus_jitter_and_errors_are_not_cached() {
        let metrics = Metrics::new("t").unwrap();
        let cache = BytesCache::<u64>::new(CacheName::Responses, &settings(), &metrics);
        let before_insert = Instant::now();
        cache.insert(1, Bytes::from_static(b"a")).await;
        let present = cache.get(&1).await.is_some();
        // The entry lives at least the TTL: judge its presence only when the lookup came within
        // the TTL (a machine stalled longer than that has nothing to say about it).
        let looked_after = before_insert.elapsed();
        if looked_after < settings().ttl {
            assert!(present, "present {looked_after:?} after the insert");
        } else {
            eprintln!("presence not judged: the lookup came {looked_after:?} after the insert");
        }
        // A lower bound: past ttl * (1 + jitter) = 300 ms; a busy machine only waits longer.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(
            cache.get(&1).await.is_none(),
            "expired after ttl * (1 + jitter)"
        );
        let err = cache
            .get_or_compute(2, async { Err(ApiError::not_found("nope")) })
            .await
            .unwrap_err();
        assert_eq!(err.code, "not_found");
        let ok = cache
            .get_or_compute(2, async { Ok(Bytes::from_static(b"b")) })
            .await
            .unwrap();
        assert_eq!(ok, Bytes::from_static(b"b"));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let t = JitteredTtl {
            ttl: Duration::from_secs(10),
            jitter: 0.2,
        };
        let picks: Vec<Duration> = (0..200).map(|_| t.pick()).collect();
        assert!(
            picks
                .iter()
                .all(|d| *d >= Duration::from_secs(10) && *d <= Duration::from_secs(12))
        );
        assert!(picks.iter().any(|d| *d != picks[0]), "jitter varies");
    }
}
