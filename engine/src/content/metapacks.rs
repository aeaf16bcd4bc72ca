//! Whole metadata (`q`) packs, read once and kept while the process reads metadata.
//!
//! Directory listings, chunk lists and manifests live in `q` packs, a few hundred bytes
//! each. Reading them one range request at a time costs a storage round trip per directory
//! (a blocking-pool hop on the filesystem, an HTTP request on S3). Like kopia's metadata
//! cache, a `q` pack is instead fetched whole on first use and the contents are cut from it:
//!
//! * in memory, least recently used first out, within a byte budget (a pack larger than
//!   the budget is never held; its contents are read by range as before);
//! * on disk in the local cache's `metadata_packs` table when a cache is open, so the next
//!   run (the next backup of the same volume) does not download the pack again;
//! * one fetch per pack even when many readers want it at once.
//!
//! Packs are immutable by name, so a held copy is never stale. Nothing here is trusted:
//! every content cut from a pack is still decrypted and authenticated by the caller,
//! exactly as a range read would be.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use arkiv_format::ids::BlobId;
use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::Result;
use crate::blob::BlobStorage;
use crate::cache::Cache;

/// Default in-memory budget: a full 20 MiB pack and then some.
pub const DEFAULT_MEMORY_BYTES: usize = 32 << 20;

/// Shared cache of whole `q` packs.
#[derive(Debug)]
pub struct MetadataPacks {
    budget: usize,
    disk: Option<Arc<Cache>>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    held: HashMap<BlobId, Held>,
    bytes: usize,
    tick: u64,
    /// One cell per pack being fetched: later readers wait on the first one's fetch.
    loading: HashMap<BlobId, Arc<OnceCell<Bytes>>>,
    /// Packs found larger than the budget: read by range from then on, never fetched whole
    /// again.
    oversized: std::collections::HashSet<BlobId>,
    fetches: u64,
}

#[derive(Debug)]
struct Held {
    data: Bytes,
    last_use: u64,
}

/// What a lookup did (for tests and debug logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataPackStats {
    /// Packs fetched from storage or the disk cache.
    pub fetches: u64,
    /// Packs held in memory now.
    pub held: usize,
    /// Their bytes.
    pub bytes: usize,
}

/// True for blob IDs of metadata packs.
pub fn is_metadata_pack(id: &BlobId) -> bool {
    id.as_str().starts_with('q')
}

impl MetadataPacks {
    /// A cache holding at most `budget` bytes in memory, backed by `disk` when given.
    pub fn new(budget: usize, disk: Option<Arc<Cache>>) -> Self {
        MetadataPacks {
            budget,
            disk,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counters.
    pub fn stats(&self) -> MetadataPackStats {
        let inner = self.lock();
        MetadataPackStats {
            fetches: inner.fetches,
            held: inner.held.len(),
            bytes: inner.bytes,
        }
    }

    /// `range` of pack `id`, cut from the whole pack. `None` when the pack is not worth
    /// holding (larger than the budget; its length is learnt on the first fetch) — the
    /// caller then reads the range itself. A range past the end of the pack is returned
    /// short, like a truncated blob, for the caller's checks to report.
    pub async fn get(
        &self,
        storage: &dyn BlobStorage,
        id: &BlobId,
        range: Range<u64>,
    ) -> Result<Option<Bytes>> {
        if range.end > self.budget as u64 {
            // The pack is at least that long: more than we would hold.
            return Ok(None);
        }
        let cell = {
            let mut inner = self.lock();
            if inner.oversized.contains(id) {
                return Ok(None);
            }
            inner.tick += 1;
            let tick = inner.tick;
            if let Some(h) = inner.held.get_mut(id) {
                h.last_use = tick;
                return Ok(Some(cut(&h.data, range)));
            }
            inner
                .loading
                .entry(id.clone())
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .clone()
        };
        let fetched = cell
            .get_or_try_init(|| async {
                let data = self.fetch(storage, id).await?;
                let mut inner = self.lock();
                inner.fetches += 1;
                if data.len() <= self.budget {
                    inner.tick += 1;
                    let last_use = inner.tick;
                    inner.bytes += data.len();
                    let old = inner.held.insert(
                        id.clone(),
                        Held {
                            data: data.clone(),
                            last_use,
                        },
                    );
                    if let Some(old) = old {
                        inner.bytes -= old.data.len();
                    }
                    evict(&mut inner, self.budget);
                } else {
                    inner.oversized.insert(id.clone());
                }
                inner.loading.remove(id);
                Ok::<_, crate::Error>(data)
            })
            .await;
        match fetched {
            Ok(data) if data.len() <= self.budget => Ok(Some(cut(data, range))),
            Ok(_) => Ok(None),
            Err(e) => {
                // Let the next reader try again rather than wait on a failed cell.
                self.lock().loading.remove(id);
                Err(e)
            }
        }
    }

    /// The whole pack: from the disk cache, else from storage (then written to the cache).
    async fn fetch(&self, storage: &dyn BlobStorage, id: &BlobId) -> Result<Bytes> {
        if let Some(disk) = &self.disk {
            let (disk, key) = (disk.clone(), id.to_string());
            let hit = tokio::task::spawn_blocking(move || disk.get_metadata_pack(&key))
                .await
                .ok()
                .flatten();
            if let Some(v) = hit {
                return Ok(Bytes::from(v));
            }
        }
        let data = storage.get(id, None).await?;
        if let Some(disk) = &self.disk {
            let (disk, key, copy) = (disk.clone(), id.to_string(), data.clone());
            // Best effort: a cache that cannot store is a miss next time, nothing more.
            let _ = tokio::task::spawn_blocking(move || disk.put_metadata_pack(&key, &copy)).await;
        }
        Ok(data)
    }
}

/// `range` of a held pack, short (possibly empty) where the pack is shorter than the range
/// says: a zero-length or truncated pack, or a range that starts past its end, is the
/// caller's to report as truncated, never a panic.
fn cut(data: &Bytes, range: Range<u64>) -> Bytes {
    let len = data.len() as u64;
    let start = range.start.min(len);
    let end = range.end.min(len).max(start);
    // Both are at most `len`, a `usize`.
    data.slice(start as usize..end as usize)
}

fn evict(inner: &mut Inner, budget: usize) {
    while inner.bytes > budget {
        let Some(oldest) = inner
            .held
            .iter()
            .min_by_key(|(_, h)| h.last_use)
            .map(|(id, _)| id.clone())
        else {
            break;
        };
        if let Some(h) = inner.held.remove(&oldest) {
            inner.bytes -= h.data.len();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::blob::memory::MemoryStorage;

    async fn storage_with(packs: &[(&str, usize)]) -> MemoryStorage {
        let s = MemoryStorage::default();
        for (i, (id, len)) in packs.iter().enumerate() {
            let data: Vec<u8> = (0..*len).map(|j| (i * 31 + j) as u8).collect();
            s.put(&BlobId::from(*id), Bytes::from(data)).await.unwrap();
        }
        s
    }

    #[tokio::test]
    async fn one_fetch_per_pack_and_ranges_cut_from_it() {
        let s = storage_with(&[("qa", 1000), ("qb", 500)]).await;
        let m = MetadataPacks::new(10_000, None);
        let want = s.get(&BlobId::from("qa"), Some(10..20)).await.unwrap();
        for _ in 0..5 {
            let got = m.get(&s, &BlobId::from("qa"), 10..20).await.unwrap();
            assert_eq!(got.unwrap(), want);
        }
        let tail = m.get(&s, &BlobId::from("qb"), 490..500).await.unwrap();
        assert_eq!(
            tail.unwrap(),
            s.get(&BlobId::from("qb"), Some(490..500)).await.unwrap()
        );
        // Past the end: short, for the caller to report as truncated.
        let short = m.get(&s, &BlobId::from("qb"), 495..510).await.unwrap();
        assert_eq!(short.unwrap().len(), 5);
        // Starting past the end (a zero-length or truncated pack): empty, no panic.
        let beyond = m.get(&s, &BlobId::from("qb"), 600..700).await.unwrap();
        assert_eq!(beyond.unwrap().len(), 0);
        assert_eq!(
            m.stats(),
            MetadataPackStats {
                fetches: 2,
                held: 2,
                bytes: 1500
            }
        );
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_fetch() {
        let s = Arc::new(storage_with(&[("qa", 4096)]).await);
        let m = Arc::new(MetadataPacks::new(10_000, None));
        let tasks: Vec<_> = (0..16u64)
            .map(|i| {
                let (s, m) = (s.clone(), m.clone());
                tokio::spawn(async move {
                    m.get(s.as_ref(), &BlobId::from("qa"), i * 10..i * 10 + 10)
                        .await
                        .unwrap()
                        .unwrap()
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let got = t.await.unwrap();
            let i = i as u64;
            let want = s
                .get(&BlobId::from("qa"), Some(i * 10..i * 10 + 10))
                .await
                .unwrap();
            assert_eq!(got, want);
        }
        assert_eq!(m.stats().fetches, 1);
    }

    #[tokio::test]
    async fn budget_evicts_least_recently_used_and_skips_oversized_packs() {
        let s = storage_with(&[("qa", 400), ("qb", 400), ("qc", 400), ("qbig", 2000)]).await;
        let m = MetadataPacks::new(1000, None);
        for id in ["qa", "qb", "qa", "qc"] {
            m.get(&s, &BlobId::from(id), 0..4).await.unwrap().unwrap();
        }
        // qb was least recently used when qc arrived.
        let st = m.stats();
        assert_eq!((st.fetches, st.held, st.bytes), (3, 2, 800));
        m.get(&s, &BlobId::from("qa"), 0..4).await.unwrap().unwrap();
        assert_eq!(m.stats().fetches, 3);
        m.get(&s, &BlobId::from("qb"), 0..4).await.unwrap().unwrap();
        assert_eq!(m.stats().fetches, 4);
        // Larger than the budget: not held, the caller reads the range; fetched whole once
        // only, and not at all when the range already lies beyond the budget.
        for _ in 0..3 {
            assert!(
                m.get(&s, &BlobId::from("qbig"), 0..4)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert_eq!(m.stats().fetches, 5);
        assert!(
            m.get(&s, &BlobId::from("qfar"), 1500..1504)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(m.stats().fetches, 5);
        assert!(m.stats().bytes <= 1000);
    }

    #[tokio::test]
    async fn missing_pack_is_an_error_and_can_be_retried() {
        let s = storage_with(&[]).await;
        let m = MetadataPacks::new(1000, None);
        let e = m.get(&s, &BlobId::from("qx"), 0..4).await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        s.put(&BlobId::from("qx"), Bytes::from_static(b"abcdef"))
            .await
            .unwrap();
        let got = m.get(&s, &BlobId::from("qx"), 1..3).await.unwrap().unwrap();
        assert_eq!(&got[..], b"bc");
    }

    #[tokio::test]
    async fn disk_cache_serves_the_next_process() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            Arc::new(
                Cache::open(
                    dir.path(),
                    "repo",
                    crate::cache::CacheLimits::default(),
                    [7; 32],
                )
                .unwrap(),
            )
        };
        let s = storage_with(&[("qa", 3000)]).await;
        let want = s.get(&BlobId::from("qa"), Some(100..200)).await.unwrap();
        let first = MetadataPacks::new(10_000, Some(open()));
        assert_eq!(
            first.get(&s, &BlobId::from("qa"), 100..200).await.unwrap(),
            Some(want.clone())
        );
        // The pack is gone from storage; a new process still reads it from the cache.
        s.delete(&BlobId::from("qa")).await.unwrap();
        let second = MetadataPacks::new(10_000, Some(open()));
        assert_eq!(
            second.get(&s, &BlobId::from("qa"), 100..200).await.unwrap(),
            Some(want)
        );
    }
}
