//! A decorator that keeps the listings of the index prefixes in the local cache for a short
//! time, as kopia's `internal/listcache` does.
//!
//! Kopia wraps its storage (`committed_read_manager.go`, `newListCache`) so that a `list` of
//! one of the index prefixes (`n`, `m`, `l`, `xn`, `xe`, `xs`, `xr`; exact prefixes only) is
//! answered from a file in the cache directory while it has not expired; the entry carries
//! an HMAC and an expiry time. `kopia repository connect` sets the expiry to 30 s
//! (`--max-list-cache-duration`); a repository opened through the API without it gets 0,
//! which caches nothing. Every `put` or `delete` of a blob under a cached prefix drops that
//! prefix's entry, so a process always sees its own writes.
//!
//! Here the entries live in the cache's `kv` table (HMAC-checked like every row) under
//! `list:<prefix>`, as JSON with the expiry in Unix milliseconds. Besides kopia's prefixes
//! the engine's own epoch listing (`x`, all index blobs in one request) is cached. A stale
//! listing can only name a blob that is gone (the index loader then drops the cached
//! listings and lists again, as kopia flushes its list cache and retries) or miss a blob
//! another process wrote during the expiry window (the same window kopia accepts).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use arkiv_format::ids::BlobId;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{BlobMetadata, BlobStorage};
use crate::Result;
use crate::cache::Cache;
use crate::clock::SharedClock;

/// Prefixes whose listings are cached: kopia's `cachedIndexBlobPrefixes` plus `x`.
pub const CACHED_PREFIXES: [&str; 8] = ["n", "m", "l", "x", "xn", "xe", "xs", "xr"];

/// Key prefix of the cached listings in the cache's `kv` table.
pub const KV_PREFIX: &str = "list:";

/// The expiry `kopia repository connect` gives cached listings (`--max-list-cache-duration`).
pub const KOPIA_CONNECT_DEFAULT: Duration = Duration::from_secs(30);

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    #[serde(rename = "expireAfter")]
    expire_after_ms: i64,
    blobs: Vec<Listed>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Listed {
    id: String,
    length: u64,
    #[serde(rename = "timestampMs")]
    timestamp_ms: i64,
}

/// `inner` with the listings of [`CACHED_PREFIXES`] kept in `cache` for `ttl`.
#[derive(Debug)]
pub struct ListCachingStorage {
    inner: Arc<dyn BlobStorage>,
    cache: Arc<Cache>,
    clock: SharedClock,
    ttl: Duration,
}

impl ListCachingStorage {
    /// Wraps `inner`; a zero `ttl` caches nothing (every listing goes to storage).
    pub fn new(
        inner: Arc<dyn BlobStorage>,
        cache: Arc<Cache>,
        clock: SharedClock,
        ttl: Duration,
    ) -> Self {
        ListCachingStorage {
            inner,
            cache,
            clock,
            ttl,
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    fn cached(&self, prefix: &str) -> Option<Vec<BlobMetadata>> {
        let raw = self.cache.get_kv(&format!("{KV_PREFIX}{prefix}"))?;
        let entry: Entry = serde_json::from_slice(&raw).ok()?;
        if self.now_ms() >= entry.expire_after_ms {
            return None;
        }
        entry
            .blobs
            .into_iter()
            .map(|b| {
                Some(BlobMetadata {
                    id: BlobId::new(b.id),
                    length: b.length,
                    timestamp: DateTime::<Utc>::from_timestamp_millis(b.timestamp_ms)?,
                })
            })
            .collect()
    }

    fn remember(&self, prefix: &str, blobs: &[BlobMetadata]) {
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        let entry = Entry {
            expire_after_ms: self.now_ms().saturating_add(ttl_ms),
            blobs: blobs
                .iter()
                .map(|b| Listed {
                    id: b.id.to_string(),
                    length: b.length,
                    timestamp_ms: b.timestamp.timestamp_millis(),
                })
                .collect(),
        };
        if let Ok(json) = serde_json::to_vec(&entry) {
            self.cache.put_kv(&format!("{KV_PREFIX}{prefix}"), &json);
        }
    }

    /// Drops the cached listings `id` falls under (after a write or delete of `id`).
    fn invalidate(&self, id: &BlobId) {
        for p in CACHED_PREFIXES {
            if id.as_str().starts_with(p) {
                self.cache.remove_kv(&format!("{KV_PREFIX}{p}"));
            }
        }
    }
}

#[async_trait]
impl BlobStorage for ListCachingStorage {
    async fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Bytes> {
        self.inner.get(id, range).await
    }

    async fn get_metadata(&self, id: &BlobId) -> Result<BlobMetadata> {
        self.inner.get_metadata(id).await
    }

    async fn put(&self, id: &BlobId, data: Bytes) -> Result<()> {
        let r = self.inner.put(id, data).await;
        self.invalidate(id);
        r
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        let r = self.inner.delete(id).await;
        self.invalidate(id);
        r
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        if self.ttl.is_zero() || !CACHED_PREFIXES.contains(&prefix) {
            return self.inner.list(prefix).await;
        }
        if let Some(hit) = self.cached(prefix) {
            return Ok(hit);
        }
        let listed = self.inner.list(prefix).await?;
        self.remember(prefix, &listed);
        Ok(listed)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::blob::counting::{CountingStorage, StorageCounters};
    use crate::blob::memory::MemoryStorage;
    use crate::cache::CacheLimits;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn listings_are_cached_until_they_expire_or_a_write_touches_them() {
        let tmp = tempfile::tempdir().unwrap();
        let cache =
            Arc::new(Cache::open(tmp.path(), "r", CacheLimits::default(), [7; 32]).unwrap());
        let counters = StorageCounters::new();
        let start = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = ManualClock::new(start);
        let mem = Arc::new(MemoryStorage::new(Arc::new(clock.clone())));
        let counted: Arc<dyn BlobStorage> =
            Arc::new(CountingStorage::new(mem.clone(), counters.clone()));
        let s = ListCachingStorage::new(
            counted,
            cache.clone(),
            Arc::new(clock.clone()),
            KOPIA_CONNECT_DEFAULT,
        );
        mem.put(&BlobId::new("xn0_a"), Bytes::from_static(b"1"))
            .await
            .unwrap();

        let first = s.list("x").await.unwrap();
        assert_eq!(first.len(), 1);
        // Within the expiry: served from the cache, even across handles of the cache.
        let again = s.list("x").await.unwrap();
        assert_eq!(again, first);
        assert_eq!(counters.counts().lists, 1);
        // A prefix kopia does not cache always goes to storage.
        s.list("p").await.unwrap();
        s.list("p").await.unwrap();
        assert_eq!(counters.counts().lists, 3);

        // Another writer's blob is not seen until expiry (kopia's window) ...
        mem.put(&BlobId::new("xn0_b"), Bytes::from_static(b"2"))
            .await
            .unwrap();
        assert_eq!(s.list("x").await.unwrap().len(), 1);
        clock.advance(chrono::Duration::seconds(31));
        assert_eq!(s.list("x").await.unwrap().len(), 2);
        assert_eq!(counters.counts().lists, 4);

        // ... but an own write is seen at once.
        s.put(&BlobId::new("xn0_c"), Bytes::from_static(b"3"))
            .await
            .unwrap();
        assert_eq!(s.list("x").await.unwrap().len(), 3);
        assert_eq!(counters.counts().lists, 5);
        s.delete(&BlobId::new("xn0_a")).await.unwrap();
        assert_eq!(s.list("x").await.unwrap().len(), 2);

        // An expired entry is a miss.
        cache.put_kv("list:x", b"{\"expireAfter\":0,\"blobs\":[]}");
        let n = counters.counts().lists;
        assert_eq!(s.list("x").await.unwrap().len(), 2);
        assert_eq!(counters.counts().lists, n + 1);

        // A zero expiry caches nothing.
        let counted: Arc<dyn BlobStorage> = Arc::new(CountingStorage::new(mem, counters.clone()));
        let off = ListCachingStorage::new(counted, cache, Arc::new(clock), Duration::ZERO);
        let n = counters.counts().lists;
        off.list("x").await.unwrap();
        off.list("x").await.unwrap();
        assert_eq!(counters.counts().lists, n + 2);
    }
}
