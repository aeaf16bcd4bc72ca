//! In-memory blob storage: the test double every engine test builds on.
//!
//! It keeps the full [`BlobStorage`] contract (atomic put, read-after-write, sorted prefix
//! listing, idempotent delete, `Corrupt` for ranges past the end) so the conformance suite runs
//! against it unchanged. Timestamps come from an injected [`SharedClock`], and
//! [`MemoryStorage::set_timestamp`] back-dates a single blob, so maintenance and safety-margin
//! tests can simulate weeks without sleeping.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

use arkiv_format::ids::BlobId;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{BlobMetadata, BlobStorage};
use crate::clock::{SharedClock, SystemClock};
use crate::{Error, ErrorKind, Result};

#[derive(Debug, Clone)]
struct Entry {
    data: Bytes,
    timestamp: DateTime<Utc>,
}

/// Blobs held in a `BTreeMap` behind a mutex (never held across `.await`).
///
/// Cloning is cheap and shares the contents, so a test can keep a handle for inspection
/// while the engine owns another.
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    blobs: Arc<Mutex<BTreeMap<String, Entry>>>,
    clock: SharedClock,
    name: String,
}

impl Default for MemoryStorage {
    /// A store on the real wall clock.
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}

impl MemoryStorage {
    /// An empty store whose `put` stamps blobs with `clock.now()`.
    pub fn new(clock: SharedClock) -> Self {
        MemoryStorage {
            blobs: Arc::new(Mutex::new(BTreeMap::new())),
            clock,
            name: "memory://".to_owned(),
        }
    }

    /// Same, with a name shown by [`BlobStorage::describe`] (useful with several stores).
    pub fn named(clock: SharedClock, name: &str) -> Self {
        MemoryStorage {
            name: format!("memory://{name}"),
            ..Self::new(clock)
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding the lock cannot leave a half-written entry (every mutation
        // is a single map operation), so a poisoned map is still consistent.
        self.blobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Overrides the timestamp of an existing blob (simulates an old blob).
    ///
    /// Fails with `NotFound` if the blob does not exist.
    pub fn set_timestamp(&self, id: &BlobId, timestamp: DateTime<Utc>) -> Result<()> {
        match self.lock().get_mut(id.as_str()) {
            Some(e) => {
                e.timestamp = timestamp;
                Ok(())
            }
            None => Err(self.not_found(id)),
        }
    }

    /// Number of blobs stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no blob is stored.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Sum of all blob lengths.
    pub fn total_bytes(&self) -> u64 {
        self.lock().values().map(|e| e.data.len() as u64).sum()
    }

    fn not_found(&self, id: &BlobId) -> Error {
        Error::BlobNotFound {
            storage: self.describe(),
            id: id.clone(),
        }
    }
}

/// Cuts `range` out of a whole blob, enforcing the trait's range contract: a start after the
/// end is a caller bug (`Config`), a range reaching past the end of the blob means the blob
/// is shorter than the caller's index says (`Corrupt`).
pub(crate) fn slice_range(
    storage: &str,
    id: &BlobId,
    data: Bytes,
    range: Option<Range<u64>>,
) -> Result<Bytes> {
    let Some(r) = range else { return Ok(data) };
    check_range(storage, id, &r, data.len() as u64)?;
    // Both bounds are <= data.len() (checked above), so they fit in usize.
    Ok(data.slice(r.start as usize..r.end as usize))
}

/// Checks `range` against a blob of `len` bytes (see [`slice_range`]).
pub(crate) fn check_range(storage: &str, id: &BlobId, r: &Range<u64>, len: u64) -> Result<()> {
    if r.start > r.end {
        return Err(Error::Storage {
            storage: storage.to_owned(),
            op: "get",
            target: id.to_string(),
            kind: ErrorKind::Config,
            message: format!("invalid range {}..{}: start after end", r.start, r.end),
        });
    }
    if r.end > len {
        return Err(Error::Storage {
            storage: storage.to_owned(),
            op: "get",
            target: id.to_string(),
            kind: ErrorKind::Corrupt,
            message: format!(
                "range {}..{} reaches past the end of the blob ({len} bytes)",
                r.start, r.end
            ),
        });
    }
    Ok(())
}

#[async_trait]
impl BlobStorage for MemoryStorage {
    async fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Bytes> {
        let data = match self.lock().get(id.as_str()) {
            Some(e) => e.data.clone(),
            None => return Err(self.not_found(id)),
        };
        slice_range(&self.name, id, data, range)
    }

    async fn get_metadata(&self, id: &BlobId) -> Result<BlobMetadata> {
        match self.lock().get(id.as_str()) {
            Some(e) => Ok(BlobMetadata {
                id: id.clone(),
                length: e.data.len() as u64,
                timestamp: e.timestamp,
            }),
            None => Err(self.not_found(id)),
        }
    }

    async fn put(&self, id: &BlobId, data: Bytes) -> Result<()> {
        let timestamp = self.clock.now();
        self.lock()
            .insert(id.as_str().to_owned(), Entry { data, timestamp });
        Ok(())
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        self.lock().remove(id.as_str());
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        Ok(self
            .lock()
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, e)| BlobMetadata {
                id: BlobId::new(k.clone()),
                length: e.data.len() as u64,
                timestamp: e.timestamp,
            })
            .collect())
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date")
    }

    #[tokio::test]
    async fn timestamps_follow_the_injected_clock() {
        let clock = ManualClock::new(t0());
        let s = MemoryStorage::new(Arc::new(clock.clone()));
        let a = BlobId::new("pa");
        s.put(&a, Bytes::from_static(b"x")).await.expect("put");
        clock.advance(chrono::Duration::hours(5));
        let b = BlobId::new("pb");
        s.put(&b, Bytes::from_static(b"yy")).await.expect("put");

        assert_eq!(s.get_metadata(&a).await.expect("meta").timestamp, t0());
        let mb = s.get_metadata(&b).await.expect("meta");
        assert_eq!(mb.timestamp, t0() + chrono::Duration::hours(5));
        assert_eq!(mb.length, 2);

        let old = t0() - chrono::Duration::days(30);
        s.set_timestamp(&b, old).expect("set");
        let listed = s.list("p").await.expect("list");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].timestamp, old);

        let err = s
            .set_timestamp(&BlobId::new("nope"), old)
            .expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn clones_share_contents() {
        let s = MemoryStorage::default();
        let s2 = s.clone();
        s.put(&BlobId::new("a"), Bytes::from_static(b"abc"))
            .await
            .expect("put");
        assert_eq!(s2.len(), 1);
        assert_eq!(s2.total_bytes(), 3);
    }

    #[test]
    fn range_checks() {
        let id = BlobId::new("b");
        let data = Bytes::from_static(b"0123456789");
        assert_eq!(
            slice_range("m", &id, data.clone(), Some(2..5)).expect("ok"),
            Bytes::from_static(b"234")
        );
        assert_eq!(
            slice_range("m", &id, data.clone(), Some(10..10))
                .expect("ok")
                .len(),
            0
        );
        let past = slice_range("m", &id, data.clone(), Some(5..11)).expect_err("past end");
        assert_eq!(past.kind(), ErrorKind::Corrupt);
        #[expect(clippy::reversed_empty_ranges, reason = "the invalid input under test")]
        let backwards = slice_range("m", &id, data, Some(5..4)).expect_err("backwards");
        assert_eq!(backwards.kind(), ErrorKind::Config);
    }
}
