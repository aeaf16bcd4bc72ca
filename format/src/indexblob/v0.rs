//! The legacy (v0) index blob manager of format-version-1 repositories (FORMAT.md §9.2;
//! kopia `repo/content/indexblob/index_blob_manager_v0.go`).
//!
//! Index blobs are `n<hash>-<sessionID>` (session flushes) and `n<hash>` (compactions). A
//! compaction writes its output, then a compaction log `m<hash>` (blob-encrypted JSON):
//!
//! ```text
//! {"inputMetadata":[M,...],"outputMetadata":[M,...]}
//! M = {"id":"<blob ID>","length":<bytes>,"timestamp":"<RFC 3339, Go style>"}
//! ```
//!
//! The active set is every `n` blob minus the inputs of every *valid* log (one whose outputs
//! all exist). Cleanup blobs `l<hash>` = `{"blobIDs":[...],"cleanupScheduleTime":"<RFC 3339>"}`
//! schedule the deletion of superseded blobs and logs.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::BlobListing;
use crate::gojson::{self, null_default};
use crate::ids::BlobId;
use crate::{Error, Result};

/// Prefix of legacy index blobs.
pub const INDEX_BLOB_PREFIX: &str = "n";
/// Prefix of legacy compaction logs.
pub const COMPACTION_LOG_PREFIX: &str = "m";
/// Prefix of legacy cleanup blobs.
pub const CLEANUP_PREFIX: &str = "l";
/// The plain-text blob written after upgrading to epoch indexes, so that old clients fail.
/// It is not an index and is never part of the active set.
pub const LEGACY_INDEX_POISON_BLOB_ID: &str = "n00000000000000000000000000000000-repository_unreadable_by_this_kopia_version_upgrade_required";

/// One blob's metadata as recorded in a compaction log (kopia `blob.Metadata`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// Blob ID.
    #[serde(serialize_with = "ser_blob_id", deserialize_with = "de_blob_id")]
    pub id: BlobId,
    /// Length in bytes.
    pub length: i64,
    /// Storage timestamp.
    #[serde(with = "gojson::time")]
    pub timestamp: DateTime<Utc>,
}

impl From<&BlobListing> for BlobMeta {
    fn from(b: &BlobListing) -> Self {
        BlobMeta {
            id: b.id.clone(),
            length: i64::try_from(b.length).unwrap_or(i64::MAX),
            timestamp: b.timestamp,
        }
    }
}

/// A compaction log (kopia `compactionLogEntry`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionLog {
    /// Index blobs merged by the compaction.
    #[serde(rename = "inputMetadata", deserialize_with = "null_default")]
    pub input_metadata: Vec<BlobMeta>,
    /// Index blobs it produced.
    #[serde(rename = "outputMetadata", deserialize_with = "null_default")]
    pub output_metadata: Vec<BlobMeta>,
}

impl CompactionLog {
    /// Decodes the (decrypted) JSON of a compaction log. Unknown fields are ignored and
    /// `null` lists are empty, as with Go's decoder.
    pub fn parse(json: &[u8]) -> Result<Self> {
        serde_json::from_slice(json).map_err(|e| Error::json("compaction log", e))
    }

    /// Encodes the JSON exactly as Go's `json.Marshal` does.
    pub fn encode(&self) -> Result<Vec<u8>> {
        gojson::to_go_json_text(self, "compaction log")
    }
}

/// A cleanup blob (kopia `cleanupEntry`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupEntry {
    /// Blobs to delete.
    #[serde(rename = "blobIDs", deserialize_with = "null_default")]
    pub blob_ids: Vec<String>,
    /// When the cleanup was scheduled.
    #[serde(rename = "cleanupScheduleTime", with = "gojson::time")]
    pub cleanup_schedule_time: DateTime<Utc>,
}

impl CleanupEntry {
    /// Decodes the (decrypted) JSON of a cleanup blob.
    pub fn parse(json: &[u8]) -> Result<Self> {
        serde_json::from_slice(json).map_err(|e| Error::json("cleanup entry", e))
    }

    /// Encodes the JSON exactly as Go's `json.Marshal` does.
    pub fn encode(&self) -> Result<Vec<u8>> {
        gojson::to_go_json_text(self, "cleanup entry")
    }
}

/// The active legacy index blobs: all `n` blobs of the listing (except the upgrade poison
/// blob) minus the inputs of every compaction log whose outputs are all listed. Sorted by ID.
pub fn active_index_blob_listings(
    n_blobs: &[BlobListing],
    logs: &[CompactionLog],
) -> Vec<BlobListing> {
    let listed: HashSet<&str> = n_blobs
        .iter()
        .map(|b| b.id.as_str())
        .filter(|id| id.starts_with(INDEX_BLOB_PREFIX) && *id != LEGACY_INDEX_POISON_BLOB_ID)
        .collect();
    // Validity is judged against the full listing, before any input is removed.
    let superseded: HashSet<&str> = logs
        .iter()
        .filter(|l| {
            l.output_metadata
                .iter()
                .all(|o| listed.contains(o.id.as_str()))
        })
        .flat_map(|l| l.input_metadata.iter().map(|i| i.id.as_str()))
        .collect();
    let mut out: Vec<BlobListing> = n_blobs
        .iter()
        .filter(|b| listed.contains(b.id.as_str()) && !superseded.contains(b.id.as_str()))
        .cloned()
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out.dedup_by(|a, b| a.id == b.id);
    out
}

/// IDs of [`active_index_blob_listings`].
pub fn active_index_blobs(n_blobs: &[BlobListing], logs: &[CompactionLog]) -> Vec<BlobId> {
    active_index_blob_listings(n_blobs, logs)
        .into_iter()
        .map(|b| b.id)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// serde details

fn ser_blob_id<S: Serializer>(id: &BlobId, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(id.as_str())
}

fn de_blob_id<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<BlobId, D::Error> {
    String::deserialize(d).map(BlobId::new)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn t(secs: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, nanos).unwrap()
    }

    fn listing(id: &str) -> BlobListing {
        BlobListing {
            id: BlobId::new(id),
            length: 100,
            timestamp: t(1_700_000_000, 0),
        }
    }

    fn meta(id: &str) -> BlobMeta {
        BlobMeta::from(&listing(id))
    }

    #[test]
    fn compaction_log_json() {
        let log = CompactionLog {
            input_metadata: vec![
                BlobMeta {
                    id: BlobId::new("n1-s1"),
                    length: 10,
                    timestamp: t(1_714_979_289, 120_000_000),
                },
                BlobMeta {
                    id: BlobId::new("n2-s1"),
                    length: 20,
                    timestamp: t(1_714_979_289, 0),
                },
            ],
            output_metadata: vec![BlobMeta {
                id: BlobId::new("n3"),
                length: 30,
                timestamp: t(1_714_979_289, 6),
            }],
        };
        let json = String::from_utf8(log.encode().unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"inputMetadata":[{"id":"n1-s1","length":10,"timestamp":"2024-05-06T07:08:09.12Z"},{"id":"n2-s1","length":20,"timestamp":"2024-05-06T07:08:09Z"}],"outputMetadata":[{"id":"n3","length":30,"timestamp":"2024-05-06T07:08:09.000000006Z"}]}"#
        );
        assert_eq!(CompactionLog::parse(json.as_bytes()).unwrap(), log);
        // Offsets, nulls and unknown fields as Go writes/accepts them.
        let other = br#"{"inputMetadata":null,"outputMetadata":[{"id":"n3","length":30,"timestamp":"2024-05-06T09:08:09.000000006+02:00","extra":1}]}"#;
        let parsed = CompactionLog::parse(other).unwrap();
        assert!(parsed.input_metadata.is_empty());
        assert_eq!(parsed.output_metadata, log.output_metadata);
        assert!(matches!(
            CompactionLog::parse(b"{\"inputMetadata\":5}"),
            Err(Error::Json { .. })
        ));
    }

    #[test]
    fn cleanup_entry_json() {
        let c = CleanupEntry {
            blob_ids: vec!["n1".into(), "m<&>".into()],
            cleanup_schedule_time: t(1_714_979_289, 0),
        };
        let json = String::from_utf8(c.encode().unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"blobIDs":["n1","m\u003c\u0026\u003e"],"cleanupScheduleTime":"2024-05-06T07:08:09Z"}"#
        );
        assert_eq!(CleanupEntry::parse(json.as_bytes()).unwrap(), c);
    }

    #[test]
    fn active_set() {
        let n = [
            listing("n1-s1"),
            listing("n2-s1"),
            listing("n3"),
            listing("n4-s2"),
            listing("n5-s3"),
            listing(LEGACY_INDEX_POISON_BLOB_ID),
        ];
        let ids = |v: Vec<BlobId>| v.into_iter().map(|b| b.into_string()).collect::<Vec<_>>();
        // No logs: everything but the poison blob.
        assert_eq!(
            ids(active_index_blobs(&n, &[])),
            ["n1-s1", "n2-s1", "n3", "n4-s2", "n5-s3"]
        );
        // A valid log (output n3 exists) hides its inputs.
        let valid = CompactionLog {
            input_metadata: vec![meta("n1-s1"), meta("n2-s1")],
            output_metadata: vec![meta("n3")],
        };
        // An invalid log (output n9 missing) hides nothing.
        let invalid = CompactionLog {
            input_metadata: vec![meta("n4-s2")],
            output_metadata: vec![meta("n3"), meta("n9")],
        };
        assert_eq!(
            ids(active_index_blobs(&n, &[valid.clone(), invalid.clone()])),
            ["n3", "n4-s2", "n5-s3"]
        );
        // Chained compactions: n3 + n4 → n6, n6 listed → n3 and n4 drop, inputs of the first
        // log stay dropped even though its output is now superseded too.
        let mut n2 = n.to_vec();
        n2.push(listing("n6"));
        let second = CompactionLog {
            input_metadata: vec![meta("n3"), meta("n4-s2")],
            output_metadata: vec![meta("n6")],
        };
        assert_eq!(
            ids(active_index_blobs(&n2, &[valid, invalid, second])),
            ["n5-s3", "n6"]
        );
        // A log whose outputs are only inputs of a valid log elsewhere still counts as valid.
        let listings = active_index_blob_listings(&n, &[]);
        assert_eq!(listings.len(), 5);
    }
}
