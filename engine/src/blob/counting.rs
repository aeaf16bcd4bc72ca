//! A decorator that counts the requests made to a storage and the bytes moved, for the
//! run summaries ("how many requests did this backup cost, how many came from the local
//! cache") and for tests that assert which blobs a run read.
//!
//! Counting is lock-free (relaxed atomics); the optional read log (blob IDs of every `get`)
//! takes a mutex and is meant for tests.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arkiv_format::ids::BlobId;
use async_trait::async_trait;
use bytes::Bytes;

use super::{BlobMetadata, BlobStorage};
use crate::Result;

/// Counters shared by every clone of one [`CountingStorage`] (and by whoever holds the
/// `Arc`, e.g. a summary printer).
#[derive(Debug, Default)]
pub struct StorageCounters {
    gets: AtomicU64,
    get_bytes: AtomicU64,
    metadata: AtomicU64,
    lists: AtomicU64,
    puts: AtomicU64,
    put_bytes: AtomicU64,
    deletes: AtomicU64,
    read_log: Option<Mutex<Vec<BlobId>>>,
}

/// A snapshot of [`StorageCounters`]. Failed requests count too (they cost a round trip);
/// bytes count only what was returned or accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageCounts {
    /// `get` requests (whole blobs and ranges).
    pub gets: u64,
    /// Bytes returned by `get`.
    pub get_bytes: u64,
    /// `get_metadata` requests.
    pub metadata: u64,
    /// `list` requests (one per call; a backend may page internally).
    pub lists: u64,
    /// `put` requests.
    pub puts: u64,
    /// Bytes written by `put`.
    pub put_bytes: u64,
    /// `delete` requests.
    pub deletes: u64,
}

impl StorageCounters {
    /// Counters without a read log.
    pub fn new() -> Arc<StorageCounters> {
        Arc::new(StorageCounters::default())
    }

    /// Counters that also remember the ID of every blob read by `get` (for tests).
    pub fn with_read_log() -> Arc<StorageCounters> {
        Arc::new(StorageCounters {
            read_log: Some(Mutex::new(Vec::new())),
            ..StorageCounters::default()
        })
    }

    /// The counts so far.
    pub fn counts(&self) -> StorageCounts {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StorageCounts {
            gets: l(&self.gets),
            get_bytes: l(&self.get_bytes),
            metadata: l(&self.metadata),
            lists: l(&self.lists),
            puts: l(&self.puts),
            put_bytes: l(&self.put_bytes),
            deletes: l(&self.deletes),
        }
    }

    /// IDs of the blobs read by `get` so far, in order (empty without a read log).
    pub fn read_ids(&self) -> Vec<BlobId> {
        self.read_log
            .as_ref()
            .map(|l| l.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Counting view of `S`: every call passes through unchanged.
#[derive(Debug, Clone)]
pub struct CountingStorage<S> {
    inner: S,
    counters: Arc<StorageCounters>,
}

impl<S: BlobStorage> CountingStorage<S> {
    /// Wraps `inner`, counting into `counters`.
    pub fn new(inner: S, counters: Arc<StorageCounters>) -> Self {
        CountingStorage { inner, counters }
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<StorageCounters> {
        &self.counters
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: BlobStorage> BlobStorage for CountingStorage<S> {
    async fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Bytes> {
        let c = &self.counters;
        StorageCounters::add(&c.gets, 1);
        if let Some(log) = &c.read_log {
            log.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(id.clone());
        }
        let data = self.inner.get(id, range).await?;
        StorageCounters::add(&c.get_bytes, data.len() as u64);
        Ok(data)
    }

    async fn get_metadata(&self, id: &BlobId) -> Result<BlobMetadata> {
        StorageCounters::add(&self.counters.metadata, 1);
        self.inner.get_metadata(id).await
    }

    async fn put(&self, id: &BlobId, data: Bytes) -> Result<()> {
        let c = &self.counters;
        StorageCounters::add(&c.puts, 1);
        let len = data.len() as u64;
        self.inner.put(id, data).await?;
        StorageCounters::add(&c.put_bytes, len);
        Ok(())
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        StorageCounters::add(&self.counters.deletes, 1);
        self.inner.delete(id).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        StorageCounters::add(&self.counters.lists, 1);
        self.inner.list(prefix).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::blob::memory::MemoryStorage;

    #[tokio::test]
    async fn counts_requests_and_bytes() {
        let counters = StorageCounters::with_read_log();
        let clock: crate::clock::SharedClock = std::sync::Arc::new(crate::clock::SystemClock);
        let s = CountingStorage::new(MemoryStorage::new(clock), counters.clone());
        let a = BlobId::from("qa");
        s.put(&a, Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(&s.get(&a, None).await.unwrap()[..], b"hello");
        assert_eq!(&s.get(&a, Some(1..3)).await.unwrap()[..], b"el");
        assert!(s.get(&BlobId::from("qmissing"), None).await.is_err());
        s.get_metadata(&a).await.unwrap();
        assert_eq!(s.list("q").await.unwrap().len(), 1);
        s.delete(&a).await.unwrap();
        assert_eq!(
            counters.counts(),
            StorageCounts {
                gets: 3,
                get_bytes: 7,
                metadata: 1,
                lists: 1,
                puts: 1,
                put_bytes: 5,
                deletes: 1,
            }
        );
        let ids: Vec<String> = counters.read_ids().iter().map(|i| i.to_string()).collect();
        assert_eq!(ids, ["qa", "qa", "qmissing"]);
    }
}
