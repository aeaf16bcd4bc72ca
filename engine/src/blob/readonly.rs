//! A decorator that makes a storage read-only, for restore-only paths.
//!
//! Reads pass through unchanged; `put` and `delete` fail with
//! [`ErrorKind::PermissionDenied`] before reaching the inner storage, so a bug in a restore
//! path can never modify the repository.

use std::ops::Range;

use arkiv_format::ids::BlobId;
use async_trait::async_trait;
use bytes::Bytes;

use super::{BlobMetadata, BlobStorage};
use crate::{Error, ErrorKind, Result};

/// Read-only view of `S`.
#[derive(Debug, Clone)]
pub struct ReadOnlyStorage<S> {
    inner: S,
}

impl<S: BlobStorage> ReadOnlyStorage<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        ReadOnlyStorage { inner }
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn refuse(&self, op: &'static str, id: &BlobId) -> Error {
        Error::Storage {
            storage: self.describe(),
            op,
            target: id.to_string(),
            kind: ErrorKind::PermissionDenied,
            message: "storage is open read-only; writes are refused".to_owned(),
        }
    }
}

#[async_trait]
impl<S: BlobStorage> BlobStorage for ReadOnlyStorage<S> {
    async fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Bytes> {
        self.inner.get(id, range).await
    }

    async fn get_metadata(&self, id: &BlobId) -> Result<BlobMetadata> {
        self.inner.get_metadata(id).await
    }

    async fn put(&self, id: &BlobId, _data: Bytes) -> Result<()> {
        Err(self.refuse("put", id))
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        Err(self.refuse("delete", id))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        self.inner.list(prefix).await
    }

    fn describe(&self) -> String {
        format!("{} (read-only)", self.inner.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::memory::MemoryStorage;

    #[tokio::test]
    async fn reads_pass_writes_refused() {
        let mem = MemoryStorage::default();
        let id = BlobId::new("kopia.repository");
        mem.put(&id, Bytes::from_static(b"{}")).await.expect("put");
        let ro = ReadOnlyStorage::new(mem.clone());

        assert_eq!(ro.get(&id, None).await.expect("get"), &b"{}"[..]);
        assert_eq!(ro.list("").await.expect("list").len(), 1);

        let e = ro
            .put(&BlobId::new("p1"), Bytes::from_static(b"x"))
            .await
            .expect_err("put refused");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert_eq!(
            e.to_string(),
            "memory:// (read-only): put p1: storage is open read-only; writes are refused"
        );
        let e = ro.delete(&id).await.expect_err("delete refused");
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        assert_eq!(mem.len(), 1, "inner storage untouched");
    }
}
