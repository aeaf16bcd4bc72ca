//! Index blob management: which index blobs are live, and how new ones are named
//! (FORMAT.md §9; kopia `repo/content/indexblob/`, `internal/epoch/`,
//! `internal/completeset/`).
//!
//! Pure logic over blob listings: the caller lists storage (and, for legacy repositories,
//! decrypts compaction logs) and these functions decide which blobs form the complete index
//! set. Nothing here reads a clock; times come from the listings.
//!
//! * [`epoch`]: the epoch index manager of format v2/v3 repositories (`xn`/`xs`/`xr`/`xe`/`xw`
//!   blobs).
//! * [`v0`]: the legacy manager of format v1 repositories (`n` index blobs, `m` compaction
//!   logs).

use chrono::{DateTime, Utc};

use crate::ids::BlobId;

pub mod epoch;
pub mod v0;

/// One blob of a storage listing: what kopia calls `blob.Metadata`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlobListing {
    /// Blob ID.
    pub id: BlobId,
    /// Length in bytes.
    pub length: u64,
    /// Storage timestamp (modification time).
    pub timestamp: DateTime<Utc>,
}

impl AsRef<str> for BlobListing {
    fn as_ref(&self) -> &str {
        self.id.as_str()
    }
}
