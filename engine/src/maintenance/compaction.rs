//! Epoch index maintenance (kopia `internal/epoch/epoch_manager.go`, FORMAT.md §9.3).
//!
//! Kopia facts this follows (v0.23.1):
//! * *compact single epoch*: the oldest epoch not covered by the range chain or a run of `xs`
//!   sets after it; only when settled (`≤ writeEpoch − 2`); all its `xn` blobs are merged
//!   (winners only, deleted entries kept) into `xs<E>_<hash>-s<16 hex>-c<N>`;
//! * *advance*: the `xn` blobs of `writeEpoch` span at least `MinEpochDuration` (oldest to newest
//!   storage timestamp) and number ≥ `EpochAdvanceOnCountThreshold` or total ≥
//!   `EpochAdvanceOnTotalSizeBytesThreshold` → write `xe<writeEpoch+1>` = `epoch-marker`;
//! * *range checkpoint*: `latestSettled = writeEpoch − 2`, `first` = one past the chain (0 if
//!   none); when `latestSettled − first ≥ FullCheckpointFrequency`, the complete index set of
//!   `first..=latestSettled` (per epoch: its `xs` set if settled and present, else its `xn`
//!   blobs) is merged into `xr<first>_<latestSettled>_…`;
//! * *cleanup markers*: `xe<E>` for `E < writeEpoch − 1`; `xw` blobs other than the current
//!   watermark older than `maxTime − CleanupSafetyMargin`;
//! * *delete superseded*: every `xn<E>_` blob of an epoch whose `xs<E>` set's newest blob is
//!   older than `maxTime − CleanupSafetyMargin`; `maxTime` = newest storage timestamp of the
//!   `xn` blobs of epochs `writeEpoch−1..=writeEpoch+1`. `xs`/`xr` blobs are never deleted.

use arkiv_format::encryption;
use arkiv_format::ids::BlobId;
use arkiv_format::index::{self, Info};
use arkiv_format::indexblob::epoch::{self, BlobListing, EpochState};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt, TryStreamExt};

use crate::blob::BlobMetadata;
use crate::content::{IndexSet, load_index_blob};
use crate::repo::Repository;
use crate::{Error, Result, cpu};

/// Epoch parameters of the repository, as durations.
#[derive(Debug, Clone, Copy)]
pub struct EpochParams {
    /// Minimum epoch length.
    pub min_epoch_duration: TimeDelta,
    /// Advance on this many index blobs...
    pub count_threshold: usize,
    /// ... or this many bytes.
    pub size_threshold: u64,
    /// Age a replacement must reach before what it supersedes is deleted.
    pub cleanup_margin: TimeDelta,
    /// Settled epochs between range checkpoints.
    pub full_checkpoint_frequency: u64,
}

impl EpochParams {
    /// From the repository config (nanosecond fields).
    pub fn of(repo: &Repository) -> Self {
        let p = &repo.config().epoch_parameters;
        EpochParams {
            min_epoch_duration: TimeDelta::nanoseconds(p.min_epoch_duration),
            count_threshold: usize::try_from(p.epoch_advance_on_count_threshold).unwrap_or(20),
            size_threshold: u64::try_from(p.epoch_advance_on_total_size_bytes_threshold)
                .unwrap_or(10 << 20),
            cleanup_margin: TimeDelta::nanoseconds(p.cleanup_safety_margin),
            full_checkpoint_frequency: u64::try_from(p.full_checkpoint_frequency).unwrap_or(7),
        }
    }
}

fn to_listing(m: BlobMetadata) -> BlobListing {
    BlobListing {
        id: m.id,
        length: m.length,
        timestamp: m.timestamp,
    }
}

/// Lists the `x` prefix and computes the epoch state.
pub async fn epoch_state(repo: &Repository) -> Result<EpochState> {
    let listing: Vec<BlobListing> = repo
        .storage()
        .list(epoch::UBER_PREFIX)
        .await?
        .into_iter()
        .map(to_listing)
        .collect();
    Ok(EpochState::from_listing(&listing))
}

/// The epoch to compact and its `xn` blobs, if one is eligible.
pub fn plan_compact_single(st: &EpochState) -> Option<(u64, Vec<BlobListing>)> {
    let e = st.oldest_uncompacted_epoch();
    if !st.is_settled(e) {
        return None;
    }
    let blobs = st.uncompacted_blobs(e);
    (!blobs.is_empty()).then(|| (e, blobs.to_vec()))
}

/// The new write epoch, if the current one should end.
pub fn plan_advance(st: &EpochState, p: &EpochParams) -> Option<u64> {
    let blobs = st.uncompacted_blobs(st.write_epoch);
    let min = blobs.iter().map(|b| b.timestamp).min()?;
    let max = blobs.iter().map(|b| b.timestamp).max()?;
    if max - min < p.min_epoch_duration {
        return None;
    }
    let total: u64 = blobs.iter().map(|b| b.length).sum();
    (blobs.len() >= p.count_threshold || total >= p.size_threshold).then_some(st.write_epoch + 1)
}

/// The range checkpoint to generate (`first`, `latestSettled`, inputs), if due.
pub fn plan_range(st: &EpochState, p: &EpochParams) -> Option<(u64, u64, Vec<BlobListing>)> {
    let latest = st.last_settled_epoch()?;
    let first = st
        .longest_range_checkpoints
        .last()
        .map_or(0, |r| r.max_epoch + 1);
    if latest < first || latest - first < p.full_checkpoint_frequency {
        return None;
    }
    let mut inputs = Vec::new();
    for e in first..=latest {
        match st.single_epoch_compactions.get(&e) {
            Some(set) => inputs.extend(set.iter().cloned()),
            None => inputs.extend(st.uncompacted_blobs(e).iter().cloned()),
        }
    }
    (!inputs.is_empty()).then_some((first, latest, inputs))
}

/// Newest storage time of the `xn` blobs of epochs `writeEpoch−1..=writeEpoch+1`.
fn max_uncompacted_time(st: &EpochState) -> Option<DateTime<Utc>> {
    let lo = st.write_epoch.saturating_sub(1);
    (lo..=st.write_epoch + 1)
        .flat_map(|e| st.uncompacted_blobs(e).iter().map(|b| b.timestamp))
        .max()
}

/// Epoch markers and stale deletion watermarks to delete.
pub fn plan_cleanup_markers(st: &EpochState, p: &EpochParams) -> Vec<BlobId> {
    let mut out: Vec<BlobId> = st
        .epoch_markers
        .iter()
        .filter(|m| {
            epoch::epoch_number_from_blob_id(m.id.as_str()).is_some_and(|e| e + 1 < st.write_epoch)
        })
        .map(|m| m.id.clone())
        .collect();
    if let Some(max_time) = max_uncompacted_time(st) {
        let current = st
            .deletion_watermark
            .map(|w| epoch::deletion_watermark_id(w.timestamp()));
        out.extend(
            st.deletion_watermark_blobs
                .iter()
                .filter(|b| Some(&b.id) != current.as_ref())
                .filter(|b| b.timestamp < max_time - p.cleanup_margin)
                .map(|b| b.id.clone()),
        );
    }
    out
}

/// `xn` blobs superseded by an `xs` set older than the safety margin.
pub fn plan_delete_superseded(st: &EpochState, p: &EpochParams) -> Vec<BlobId> {
    let Some(max_time) = max_uncompacted_time(st) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (e, set) in &st.single_epoch_compactions {
        let Some(newest) = set.iter().map(|b| b.timestamp).max() else {
            continue;
        };
        if newest < max_time - p.cleanup_margin {
            out.extend(st.uncompacted_blobs(*e).iter().map(|b| b.id.clone()));
        }
    }
    out
}

/// Loads index blobs and merges them (winner per content, deleted entries kept, no watermark).
pub async fn merge_index_blobs(repo: &Repository, blobs: &[BlobId]) -> Result<Vec<Info>> {
    let storage = repo.storage().clone();
    let cipher = repo.content_reader().cipher().clone();
    let loaded = futures::stream::iter(blobs.iter().cloned())
        .map(|id| {
            let storage = storage.clone();
            let cipher = cipher.clone();
            async move { load_index_blob(storage.as_ref(), &cipher, id, None, None).await }
        })
        .buffered(4)
        .try_collect::<Vec<_>>()
        .await?;
    let set = IndexSet::from_indexes(loaded, None);
    set.iter(true).collect()
}

/// Merges `inputs` and writes them as one complete compaction set under `prefix`
/// (`xs<E>_` or `xr<a>_<b>_`). Returns the written blob IDs.
pub async fn write_compaction(
    repo: &Repository,
    inputs: &[BlobId],
    prefix: &str,
) -> Result<Vec<BlobId>> {
    let entries = merge_index_blobs(repo, inputs).await?;
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let hasher = repo.content_reader().hasher().clone();
    let cipher = repo.content_reader().cipher().clone();
    let prefix = prefix.to_owned();
    let blobs = cpu::run(move || -> Result<Vec<(BlobId, Vec<u8>)>> {
        let shards = index::build_v2_shards(entries, index::DEFAULT_SHARD_SIZE)
            .map_err(|e| Error::format("compacted index", e))?;
        let suffix = epoch::compaction_set_suffix(rand::random(), shards.len());
        shards
            .iter()
            .map(|plain| {
                encryption::encrypt_blob(
                    &hasher,
                    &cipher,
                    &prefix,
                    Some(&suffix),
                    plain,
                    rand::random(),
                )
                .map_err(|e| Error::format("compacted index", e))
            })
            .collect()
    })
    .await?;
    let mut ids = Vec::with_capacity(blobs.len());
    for (id, data) in blobs {
        repo.storage().put(&id, Bytes::from(data)).await?;
        ids.push(id);
    }
    Ok(ids)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn l(id: &str, len: u64, h: i64) -> BlobListing {
        BlobListing {
            id: BlobId::from(id),
            length: len,
            timestamp: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + TimeDelta::hours(h),
        }
    }

    fn params() -> EpochParams {
        EpochParams {
            min_epoch_duration: TimeDelta::hours(24),
            count_threshold: 3,
            size_threshold: 1000,
            cleanup_margin: TimeDelta::hours(4),
            full_checkpoint_frequency: 2,
        }
    }

    #[test]
    fn advance_needs_duration_and_count_or_size() {
        let p = params();
        let st = EpochState::from_listing(&[l("xn0_a-s1-c1", 1, 0), l("xn0_b-s2-c1", 1, 30)]);
        assert_eq!(plan_advance(&st, &p), None, "two small blobs");
        let st = EpochState::from_listing(&[l("xn0_a-s1-c1", 1, 0), l("xn0_b-s2-c1", 2000, 30)]);
        assert_eq!(plan_advance(&st, &p), Some(1), "size threshold");
        let st = EpochState::from_listing(&[
            l("xn0_a-s1-c1", 1, 0),
            l("xn0_b-s2-c1", 1, 1),
            l("xn0_c-s3-c1", 1, 2),
        ]);
        assert_eq!(
            plan_advance(&st, &p),
            None,
            "count reached but epoch too short"
        );
    }

    #[test]
    fn compaction_range_and_cleanup() {
        let p = params();
        let listing = vec![
            l("xe1", 12, 24),
            l("xe2", 12, 48),
            l("xe3", 12, 72),
            l("xe4", 12, 96),
            l("xn0_a-s1-c1", 10, 1),
            l("xn1_b-s2-c1", 10, 25),
            l("xn2_c-s3-c1", 10, 50),
            l("xn4_d-s4-c1", 10, 100),
            l("xs0_e-s5-c1", 10, 60),
            l("xw100", 18, 10),
            l("xw200", 18, 20),
        ];
        let st = EpochState::from_listing(&listing);
        assert_eq!(st.write_epoch, 4);
        // epoch 0 has xs; epoch 1 is the oldest uncompacted and settled (≤ 2)
        let (e, inputs) = plan_compact_single(&st).unwrap();
        assert_eq!(e, 1);
        assert_eq!(inputs[0].id.as_str(), "xn1_b-s2-c1");
        // range: first 0, latest settled 2 → 2 - 0 ≥ 2
        let (a, b, inputs) = plan_range(&st, &p).unwrap();
        assert_eq!((a, b), (0, 2));
        let ids: Vec<&str> = inputs.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["xs0_e-s5-c1", "xn1_b-s2-c1", "xn2_c-s3-c1"]);
        // markers below writeEpoch-1 and the older watermark go
        let gone = plan_cleanup_markers(&st, &p);
        let gone: Vec<&str> = gone.iter().map(|b| b.as_str()).collect();
        assert_eq!(gone, ["xe1", "xe2", "xw100"]);
        // xn0 is superseded by xs0 (written at h60 < maxTime h100 - 4 h)
        let sup = plan_delete_superseded(&st, &p);
        assert_eq!(sup, [BlobId::from("xn0_a-s1-c1")]);
    }
}
