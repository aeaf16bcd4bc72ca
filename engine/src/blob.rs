//! Blob storage: a flat namespace of immutable, named byte strings.
//!
//! Contract every implementation keeps (checked by the conformance suite in
//! `engine/tests/blob_conformance.rs`):
//! * `put` is atomic: a reader sees the old blob, the new one, or none — never a partial one.
//!   After `put` returns, the blob is durable (fsync'd, or acknowledged by the object store).
//! * Read-after-write: `get`, `get_metadata` and `list` see a blob once `put` returned.
//! * `get` of a missing blob fails with [`ErrorKind::NotFound`](crate::ErrorKind::NotFound).
//!   A range that reaches past the end of the blob fails with `Corrupt` (a truncated blob).
//! * `delete` of a missing blob succeeds (deletes are idempotent).
//! * `list` returns every blob whose ID starts with the prefix, sorted by ID.
//!
//! Blob IDs are Kopia's (see FORMAT.md §1); layout on the backend (sharding, `.f`, key
//! prefixes) is each implementation's business.

use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;

use arkiv_format::ids::BlobId;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::Result;

pub mod b2;
pub mod cloud;
pub mod counting;
pub mod faulty;
pub mod filesystem;
pub mod listcache;
pub mod memory;
pub mod proxy;
pub mod rclone;
pub mod readonly;
pub mod s3;
pub mod sftp;
pub mod webdav;

/// What storage knows about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMetadata {
    /// The blob's ID.
    pub id: BlobId,
    /// Length in bytes.
    pub length: u64,
    /// Storage timestamp (modification time / last-modified), used by safety margins.
    pub timestamp: DateTime<Utc>,
}

/// The narrow core every backend implements.
#[async_trait]
pub trait BlobStorage: Send + Sync + Debug {
    /// Reads a whole blob, or `range` of it.
    async fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Bytes>;

    /// Length and timestamp of one blob.
    async fn get_metadata(&self, id: &BlobId) -> Result<BlobMetadata>;

    /// Writes a blob atomically and durably, replacing any blob of the same ID.
    async fn put(&self, id: &BlobId, data: Bytes) -> Result<()>;

    /// Deletes a blob; succeeds if it does not exist.
    async fn delete(&self, id: &BlobId) -> Result<()>;

    /// Lists blobs whose ID starts with `prefix` (all blobs for `""`), sorted by ID.
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>>;

    /// A human description of the location (`filesystem:///path`, `s3://bucket/prefix`).
    fn describe(&self) -> String;
}

/// Shared handle to a storage backend.
pub type DynStorage = Arc<dyn BlobStorage>;

#[async_trait]
impl<T: BlobStorage + ?Sized> BlobStorage for Arc<T> {
    async fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Bytes> {
        (**self).get(id, range).await
    }
    async fn get_metadata(&self, id: &BlobId) -> Result<BlobMetadata> {
        (**self).get_metadata(id).await
    }
    async fn put(&self, id: &BlobId, data: Bytes) -> Result<()> {
        (**self).put(id, data).await
    }
    async fn delete(&self, id: &BlobId) -> Result<()> {
        (**self).delete(id).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        (**self).list(prefix).await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}
