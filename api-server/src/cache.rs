//! In-process caches of serialised responses: bounded by bytes (key + body, moka's weigher), not
//! by entries, so a client cannot fill memory with large responses; TTL with per-entry jitter
//! (entries made together do not expire together), one computation for concurrent misses of a
//! key (moka's `try_get_with`), hit/miss counters. Keys carry the data version, so an entry computed
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

/// What a key costs in memory beside its entry's body.
pub trait KeyBytes {
    fn key_bytes(&self) -> usize;
}

impl KeyBytes for String {
    fn key_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.len()
    }
}

macro_rules! fixed_size_keys {
    ($($t:ty),*) => {$(
        impl KeyBytes for $t {
            fn key_bytes(&self) -> usize {
                std::mem::size_of::<Self>()
            }
        }
    )*};
}
fixed_size_keys!(u64, (i64, i64), (i64, i64, i64));

/// Bookkeeping moka and the map hold per entry, beside key and body (an estimate: what matters
/// is that a million tiny entries are not free).
const ENTRY_OVERHEAD_BYTES: usize = 128;

/// An entry's weight in bytes, saturated at what moka can count.
fn weight(key_bytes: usize, body: &Bytes) -> u32 {
    u32::try_from(key_bytes + body.len() + ENTRY_OVERHEAD_BYTES).unwrap_or(u32::MAX)
}

pub struct BytesCache<K> {
    inner: moka::future::Cache<K, Bytes>,
    counters: CacheCounters,
}

impl<K: KeyBytes + Hash + Eq + Send + Sync + 'static> BytesCache<K> {
    pub fn new(name: CacheName, settings: &CacheSettings, metrics: &Metrics) -> Self {
        let inner = moka::future::Cache::builder()
            .max_capacity(settings.max_bytes)
            .weigher(|key: &K, body: &Bytes| weight(key.key_bytes(), body))
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

    /// Entries and their bytes (key, body and overhead) after moka's pending evictions ran.
    pub async fn usage(&self) -> (u64, u64) {
        self.inner.run_pending_tasks().await;
        (self.inner.entry_count(), self.inner.weighted_size())
    }
}

/// The misses' budget: keys are short, so this holds tens of thousands.
const MISS_MAX_BYTES: u64 = 4 << 20;

/// The caches of one replica.
pub struct Caches {
    /// `(data version, match id)` -> a prediction's JSON.
    pub predictions: BytesCache<(i64, i64)>,
    /// `data version|path?query` -> a read endpoint's JSON.
    pub responses: BytesCache<String>,
    /// `(data version, league id, season id)` -> an evaluation report's JSON.
    pub evaluations: BytesCache<(i64, i64, i64)>,
    /// Response keys whose answer was a 404, for `--cache-miss-ttl` (long enough that a client
    /// asking for ids that do not exist in a loop costs one query per id, short enough that
    /// nobody waits for a new one): answered without a query after the first (cache
    /// penetration).
    pub misses: moka::future::Cache<String, ApiError>,
}

impl Caches {
    pub fn new(settings: &CacheSettings, metrics: &Metrics) -> Self {
        Self {
            predictions: BytesCache::new(CacheName::Predictions, settings, metrics),
            responses: BytesCache::new(CacheName::Responses, settings, metrics),
            evaluations: BytesCache::new(CacheName::Evaluations, settings, metrics),
            misses: moka::future::Cache::builder()
                .max_capacity(MISS_MAX_BYTES)
                .weigher(|key: &String, _: &ApiError| weight(key.key_bytes(), &Bytes::new()))
                .time_to_live(settings.miss_ttl)
                .build(),
        }
    }

    pub fn invalidate_all(&self) {
        self.predictions.invalidate_all();
        self.responses.invalidate_all();
        self.evaluations.invalidate_all();
        self.misses.invalidate_all();
    }

    /// Sets `fp_cache_entries` and `fp_cache_bytes` of every cache (at scrape time).
    pub async fn observe(&self, metrics: &Metrics) {
        let usage = [
            (CacheName::Predictions, self.predictions.usage().await),
            (CacheName::Responses, self.responses.usage().await),
            (CacheName::Evaluations, self.evaluations.usage().await),
        ];
        for (name, (entries, bytes)) in usage {
            metrics.set_cache_usage(name, entries, bytes);
        }
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
            max_bytes: 1 << 20,
            miss_ttl: Duration::from_secs(5),
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

    #[tokio::test]
    async fn the_byte_budget_bounds_memory_however_many_entries_arrive() {
        // 70 kB bodies, as a large page of matches: 100 of them are 7 MB, over a 1 MiB budget.
        let metrics = Metrics::new("t").unwrap();
        let long_lived = CacheSettings {
            ttl: Duration::from_secs(600),
            ..settings()
        };
        let cache = BytesCache::<String>::new(CacheName::Responses, &long_lived, &metrics);
        let body = Bytes::from(vec![b'x'; 70_000]);
        for i in 0..100 {
            cache.insert(format!("key-{i}"), body.clone()).await;
        }
        let (entries, bytes) = cache.usage().await;
        assert!(bytes <= 1 << 20, "{bytes} bytes in {entries} entries");
        assert!(entries >= 10, "the budget is used: {entries} entries");
        assert!(entries < 100, "{entries} entries");
    }

    #[test]
    fn a_key_and_its_body_are_weighed() {
        let body = Bytes::from_static(b"0123456789");
        let key = "k".repeat(100);
        let w = weight(key.key_bytes(), &body);
        assert!(w as usize >= 110 + ENTRY_OVERHEAD_BYTES, "{w}");
        assert_eq!(weight(usize::MAX / 2, &body), u32::MAX);
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
