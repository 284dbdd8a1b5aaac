//! The query cache: answers kept for a short while, in this process's memory or, with
//! `PINGTOWER_REDIS_URL`, in Redis, so that several API processes share them.
//!
//! A cached answer is keyed by the tenant, the query, the current minute and the tenant's
//! *generation*. The generation goes up whenever events land in a minute that is already
//! complete (late events), in every process at once when it lives in Redis; events of the
//! current minute do not bump it. So a cached answer is never older than the newest complete
//! bucket: complete minutes are the same as in the store, and only the current, incomplete
//! minute may lag, by under a minute.
//!
//! Redis is a cache, never a store: when it does not answer, queries go to the store (and say
//! so in the log); no event and no finished count lives only there.

use pingtower_core::TenantId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an answer is kept.
pub const TTL: Duration = Duration::from_secs(120);

#[async_trait::async_trait]
pub trait QueryCache: Send + Sync {
    async fn get(&self, key: &str) -> Option<String>;
    async fn put(&self, key: &str, value: &str);
    /// The tenant's generation; `None` when it cannot be read (then nothing is cached).
    async fn generation(&self, tenant: TenantId) -> Option<u64>;
    /// Events landed in a complete minute: cached answers of the tenant are stale.
    async fn bump(&self, tenant: TenantId);
}

/// The cache key of a query (its canonical JSON) for `tenant` at `minute` in `generation`.
pub fn key(tenant: TenantId, generation: u64, minute: i64, kind: &str, body: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!(
        "pt:q:{tenant}:{generation}:{minute}:{kind}:{:016x}:{}",
        h.finish(),
        body.len()
    )
}

/// This process's memory (one API process, or tests).
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (Instant, String)>>,
    generations: Mutex<HashMap<TenantId, u64>>,
}

/// Answers kept in memory at most.
const MAX_ENTRIES: usize = 10_000;

impl Default for MemoryCache {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            generations: Mutex::new(HashMap::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait::async_trait]
impl QueryCache for MemoryCache {
    async fn get(&self, key: &str) -> Option<String> {
        let entries = lock(&self.entries);
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, v)| v.clone())
    }

    async fn put(&self, key: &str, value: &str) {
        let mut entries = lock(&self.entries);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key.to_owned(), (Instant::now(), value.to_owned()));
    }

    async fn generation(&self, tenant: TenantId) -> Option<u64> {
        Some(lock(&self.generations).get(&tenant).copied().unwrap_or(0))
    }

    async fn bump(&self, tenant: TenantId) {
        *lock(&self.generations).entry(tenant).or_default() += 1;
    }
}

/// Redis (`PINGTOWER_REDIS_URL`): shared by every API process of an installation.
pub struct RedisCache {
    conn: redis::aio::ConnectionManager,
}

#[derive(Debug, thiserror::Error)]
#[error("Redis at PINGTOWER_REDIS_URL: {0}")]
pub struct RedisError(String);

impl RedisCache {
    /// Connects (and reconnects by itself later) to `url`.
    pub async fn connect(url: &str) -> Result<Self, RedisError> {
        let client = redis::Client::open(url).map_err(|e| RedisError(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(1));
        let conn = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| RedisError(e.to_string()))?;
        Ok(Self { conn })
    }
}

fn generation_key(tenant: TenantId) -> String {
    format!("pt:gen:{tenant}")
}

#[async_trait::async_trait]
impl QueryCache for RedisCache {
    async fn get(&self, key: &str) -> Option<String> {
        let mut c = self.conn.clone();
        match redis::cmd("GET")
            .arg(key)
            .query_async::<Option<String>>(&mut c)
            .await
        {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "the query cache (Redis) did not answer; asking the store");
                None
            }
        }
    }

    async fn put(&self, key: &str, value: &str) {
        let mut c = self.conn.clone();
        if let Err(e) = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("EX")
            .arg(TTL.as_secs())
            .query_async::<()>(&mut c)
            .await
        {
            tracing::warn!(error = %e, "keeping an answer in the query cache (Redis) failed");
        }
    }

    async fn generation(&self, tenant: TenantId) -> Option<u64> {
        let mut c = self.conn.clone();
        match redis::cmd("GET")
            .arg(generation_key(tenant))
            .query_async::<Option<u64>>(&mut c)
            .await
        {
            Ok(v) => Some(v.unwrap_or(0)),
            Err(e) => {
                tracing::warn!(error = %e, "the query cache (Redis) did not answer; asking the store");
                None
            }
        }
    }

    async fn bump(&self, tenant: TenantId) {
        let mut c = self.conn.clone();
        if let Err(e) = redis::cmd("INCR")
            .arg(generation_key(tenant))
            .query_async::<u64>(&mut c)
            .await
        {
            // A bump that did not happen would leave stale answers for up to their TTL.
            tracing::error!(error = %e, "marking cached answers stale in Redis failed");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn behaves(cache: &dyn QueryCache) {
        let t = TenantId::new();
        let g = cache.generation(t).await.unwrap();
        let k = key(t, g, 60_000, "query", "{}");
        assert_eq!(cache.get(&k).await, None);
        cache.put(&k, "answer").await;
        assert_eq!(cache.get(&k).await.as_deref(), Some("answer"));
        cache.bump(t).await;
        let g2 = cache.generation(t).await.unwrap();
        assert!(g2 > g);
        assert_eq!(cache.get(&key(t, g2, 60_000, "query", "{}")).await, None);
        // Another tenant's generation is its own.
        assert_eq!(cache.generation(TenantId::new()).await, Some(0));
    }

    #[tokio::test]
    async fn memory_and_redis_caches_behave_alike() {
        behaves(&MemoryCache::default()).await;
        let url = std::env::var("PINGTOWER_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
        let redis = RedisCache::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{e} (scripts/test.sh starts Redis)"));
        behaves(&redis).await;
    }
}
