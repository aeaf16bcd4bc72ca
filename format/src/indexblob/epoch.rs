//! The epoch index manager of format v2/v3 repositories (FORMAT.md §9.3; kopia
//! `internal/epoch/epoch_manager.go`, `epoch_utils.go`, `epoch_range.go`,
//! `internal/completeset/complete_set.go`).
//!
//! Blob names (E, E1, E2 decimal epoch numbers):
//!
//! ```text
//! xn<E>_<hash>-<sessionID>-c<N>        uncompacted index shard written during epoch E
//! xs<E>_<hash>-s<16 hex>-c<N>          single-epoch compaction of epoch E
//! xr<E1>_<E2>_<hash>-s<16 hex>-c<N>    range checkpoint of epochs E1..=E2
//! xe<E>                                epoch marker ("epoch-marker"): epoch E has started
//! xw<unix seconds>                     deletion watermark ("deletion-watermark")
//! ```
//!
//! Multi-blob outputs form *complete sets*: `-s<set>-c<count>` names are complete once
//! `count` blobs share the set ID; other names are single-blob sets.
//!
//! [`EpochState::from_listing`] computes kopia's `CurrentSnapshot` from one listing of the `x`
//! prefix, and [`EpochState::live_index_blobs`] the complete index set to read.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

pub use super::BlobListing;
use crate::ids::BlobId;

/// Prefix of every epoch-manager blob.
pub const UBER_PREFIX: &str = "x";
/// Prefix of epoch markers.
pub const EPOCH_MARKER_PREFIX: &str = "xe";
/// Prefix of uncompacted index blobs.
pub const UNCOMPACTED_PREFIX: &str = "xn";
/// Prefix of single-epoch compactions.
pub const SINGLE_EPOCH_COMPACTION_PREFIX: &str = "xs";
/// Prefix of range checkpoints.
pub const RANGE_CHECKPOINT_PREFIX: &str = "xr";
/// Prefix of deletion watermarks.
pub const DELETION_WATERMARK_PREFIX: &str = "xw";
/// Content of an epoch marker blob (stored unencrypted).
pub const EPOCH_MARKER_CONTENT: &[u8] = b"epoch-marker";
/// Content of a deletion watermark blob (stored unencrypted).
pub const DELETION_WATERMARK_CONTENT: &[u8] = b"deletion-watermark";
/// Epochs `writeEpoch − 1` and later are unsettled; `≤ writeEpoch − 2` are settled.
pub const NUM_UNSETTLED_EPOCHS: u64 = 2;

/// Unix seconds of 2000-01-01T00:00:00Z, the origin of session epoch numbers.
const SESSION_EPOCH_START_UNIX: i64 = 946_684_800;
/// Length of one session epoch (30 days) in nanoseconds.
const SESSION_EPOCH_NANOS: i64 = 30 * 24 * 3600 * 1_000_000_000;

/// Epoch number of a blob named `<non-digits><digits>[_<anything>]` (kopia
/// `epochNumberFromBlobID`): leading non-digit characters are skipped, and everything up to
/// the first `_` must be decimal digits.
pub fn epoch_number_from_blob_id(id: &str) -> Option<u64> {
    let head = id.split('_').next().unwrap_or_default();
    let digits = head.trim_start_matches(|c: char| !c.is_ascii_digit());
    // Go's Atoi: decimal, fits in a (64-bit) int.
    digits
        .parse::<i64>()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
}

/// Epoch range of a range-checkpoint name `<non-digits><E1>_<E2>_<anything>` (kopia
/// `epochRangeFromBlobID`). Ranges whose end lies before their start are rejected.
pub fn epoch_range_from_blob_id(id: &str) -> Option<(u64, u64)> {
    let mut parts = id.split('_');
    let (first, second, _third) = (parts.next()?, parts.next()?, parts.next()?);
    let first = first.trim_start_matches(|c: char| !c.is_ascii_digit());
    let lo = u64::try_from(first.parse::<i64>().ok()?).ok()?;
    let hi = u64::try_from(second.parse::<i64>().ok()?).ok()?;
    (lo <= hi).then_some((lo, hi))
}

/// The time of a deletion watermark blob `xw<unix seconds>`.
pub fn deletion_watermark_from_blob_id(id: &str) -> Option<DateTime<Utc>> {
    let s = id.strip_prefix(DELETION_WATERMARK_PREFIX).unwrap_or(id);
    DateTime::from_timestamp(s.parse::<i64>().ok()?, 0)
}

/// Prefix of the uncompacted index blobs of `epoch`: `xn<E>_`.
pub fn uncompacted_blob_prefix(epoch: u64) -> String {
    format!("{UNCOMPACTED_PREFIX}{epoch}_")
}

/// Prefix of the single-epoch compaction of `epoch`: `xs<E>_`.
pub fn single_epoch_compaction_prefix(epoch: u64) -> String {
    format!("{SINGLE_EPOCH_COMPACTION_PREFIX}{epoch}_")
}

/// Prefix of the range checkpoint of `min..=max`: `xr<min>_<max>_`.
pub fn range_checkpoint_prefix(min: u64, max: u64) -> String {
    format!("{RANGE_CHECKPOINT_PREFIX}{min}_{max}_")
}

/// The marker written when epoch `epoch` starts: `xe<E>`.
pub fn epoch_marker_id(epoch: u64) -> BlobId {
    BlobId::new(format!("{EPOCH_MARKER_PREFIX}{epoch}"))
}

/// A deletion watermark at `unix_secs`: `xw<unix seconds>`.
pub fn deletion_watermark_id(unix_secs: i64) -> BlobId {
    BlobId::new(format!("{DELETION_WATERMARK_PREFIX}{unix_secs}"))
}

/// A write session ID (FORMAT.md §9.1): `"s" + hex(random8) + %x(epoch)` where epoch is the
/// number of whole 30-day periods since 2000-01-01T00:00:00Z (Go's duration arithmetic:
/// saturating at ±292 years, truncating toward zero, `-` sign for times before 2000).
pub fn session_id(random8: [u8; 8], now: DateTime<Utc>) -> String {
    let since = now.timestamp() as i128 - i128::from(SESSION_EPOCH_START_UNIX);
    let nanos = since * 1_000_000_000 + i128::from(now.timestamp_subsec_nanos());
    let nanos = nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    let epoch = nanos / SESSION_EPOCH_NANOS;
    let sign = if epoch < 0 { "-" } else { "" };
    format!("s{}{sign}{:x}", hex::encode(random8), epoch.unsigned_abs())
}

/// Suffix of the index blobs a session flush writes as one set of `shards` blobs:
/// `<sessionID>-c<N>` (the blob ID is `xn<E>_<hash>-<suffix>`).
pub fn session_set_suffix(session_id: &str, shards: usize) -> String {
    format!("{session_id}-c{shards}")
}

/// Suffix of the blobs of one compaction output set: `s<16 hex>-c<N>` with 8 fresh random
/// bytes (the blob ID is `<prefix><hash>-<suffix>`).
pub fn compaction_set_suffix(random8: [u8; 8], shards: usize) -> String {
    format!("s{}-c{shards}", hex::encode(random8))
}

/// Every complete set among `items`, in the order in which they became complete while
/// scanning `items` in order (kopia `completeset.FindAll`). A name
/// `<anything>-s<set>-c<count>[-...]` joins set `s<set>`, complete when `count` members have
/// been seen; a name without that shape (fewer than three `-`-separated parts, second not
/// starting with `s`, third not `c<integer>`) is a single-blob set of its own.
pub fn find_all_complete_sets<T: AsRef<str>>(items: &[T]) -> Vec<Vec<&T>> {
    let mut pending: HashMap<&str, Vec<&T>> = HashMap::new();
    let mut complete = Vec::new();
    for item in items {
        let mut parts = item.as_ref().split('-');
        let (_, set, count) = (parts.next(), parts.next(), parts.next());
        let parsed = match (set, count) {
            (Some(set), Some(count)) if set.starts_with('s') => count
                .strip_prefix('c')
                .and_then(|c| c.parse::<i64>().ok())
                .map(|c| (set, c)),
            _ => None,
        };
        let Some((set, count)) = parsed else {
            complete.push(vec![item]);
            continue;
        };
        let members = pending.entry(set).or_default();
        members.push(item);
        if i64::try_from(members.len()).is_ok_and(|n| n == count) {
            complete.push(members.clone());
        }
    }
    complete
}

/// The first complete set among `items` scanned in order (kopia `completeset.FindFirst`).
pub fn first_complete_set<T: AsRef<str>>(items: &[T]) -> Option<Vec<&T>> {
    find_all_complete_sets(items).into_iter().next()
}

/// A complete range checkpoint covering epochs `min_epoch..=max_epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeCheckpoint {
    /// First epoch covered.
    pub min_epoch: u64,
    /// Last epoch covered.
    pub max_epoch: u64,
    /// The blobs of its complete set.
    pub blobs: Vec<BlobListing>,
}

/// The state of the epoch manager as seen in one listing (kopia `CurrentSnapshot`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochState {
    /// Highest `xe<E>` marker, 0 without markers.
    pub write_epoch: u64,
    /// Highest `xw<T>` watermark; deleted entries not newer than it are invisible.
    pub deletion_watermark: Option<DateTime<Utc>>,
    /// Storage time of the first listed marker of each epoch.
    pub epoch_start_times: BTreeMap<u64, DateTime<Utc>>,
    /// First complete `xs<E>_` set of each epoch that has one.
    pub single_epoch_compactions: BTreeMap<u64, Vec<BlobListing>>,
    /// The chain of range checkpoints from epoch 0 reaching the highest epoch (fewest ranges
    /// among equals).
    pub longest_range_checkpoints: Vec<RangeCheckpoint>,
    /// Every `xn<E>_` blob, by epoch, complete sets or not. (Kopia's snapshot keeps only
    /// `writeEpoch−1..=writeEpoch+1` and lists older epochs on demand; with one listing of
    /// `x` everything is at hand.)
    pub uncompacted: BTreeMap<u64, Vec<BlobListing>>,
    /// All `xe` blobs.
    pub epoch_markers: Vec<BlobListing>,
    /// All `xw` blobs, including malformed ones.
    pub deletion_watermark_blobs: Vec<BlobListing>,
}

/// Epoch of an uncompacted blob, exactly when `id` starts with [`uncompacted_blob_prefix`]
/// of that epoch (so `xn05_…` and `xn5…` belong to no epoch, as with kopia's prefix listings).
fn uncompacted_epoch(id: &str) -> Option<u64> {
    let rest = id.strip_prefix(UNCOMPACTED_PREFIX)?;
    let (digits, _) = rest.split_once('_')?;
    let e: u64 = digits.parse().ok()?;
    (digits.bytes().all(|b| b.is_ascii_digit()) && e.to_string() == digits).then_some(e)
}

impl EpochState {
    /// Computes the state from a listing of the `x` prefix (other blobs are ignored).
    ///
    /// Complete sets depend on listing order; the listing is sorted by blob ID first, which is
    /// the order kopia's backends list in.
    pub fn from_listing(listing: &[BlobListing]) -> Self {
        let mut sorted: Vec<&BlobListing> = listing.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));

        let mut st = EpochState::default();
        let mut compactions: BTreeMap<u64, Vec<&BlobListing>> = BTreeMap::new();
        let mut ranges: BTreeMap<(u64, u64), Vec<&BlobListing>> = BTreeMap::new();
        for b in sorted {
            let id = b.id.as_str();
            if id.starts_with(EPOCH_MARKER_PREFIX) {
                st.epoch_markers.push(b.clone());
                if let Some(e) = epoch_number_from_blob_id(id) {
                    st.epoch_start_times.entry(e).or_insert(b.timestamp);
                    st.write_epoch = st.write_epoch.max(e);
                }
            } else if id.starts_with(DELETION_WATERMARK_PREFIX) {
                st.deletion_watermark_blobs.push(b.clone());
                if let Some(t) = deletion_watermark_from_blob_id(id) {
                    if st.deletion_watermark.is_none_or(|w| t > w) {
                        st.deletion_watermark = Some(t);
                    }
                }
            } else if id.starts_with(SINGLE_EPOCH_COMPACTION_PREFIX) {
                if let Some(e) = epoch_number_from_blob_id(id) {
                    compactions.entry(e).or_default().push(b);
                }
            } else if id.starts_with(RANGE_CHECKPOINT_PREFIX) {
                if let Some(r) = epoch_range_from_blob_id(id) {
                    ranges.entry(r).or_default().push(b);
                }
            } else if let Some(e) = uncompacted_epoch(id) {
                st.uncompacted.entry(e).or_default().push(b.clone());
            }
        }
        for (e, blobs) in compactions {
            if let Some(set) = first_complete_set(&blobs) {
                st.single_epoch_compactions
                    .insert(e, set.into_iter().map(|b| (*b).clone()).collect());
            }
        }
        let complete_ranges: Vec<RangeCheckpoint> = ranges
            .into_iter()
            .filter_map(|((lo, hi), blobs)| {
                let set = first_complete_set(&blobs)?;
                Some(RangeCheckpoint {
                    min_epoch: lo,
                    max_epoch: hi,
                    blobs: set.into_iter().map(|b| (*b).clone()).collect(),
                })
            })
            .collect();
        st.longest_range_checkpoints = longest_range_chain(complete_ranges);
        st
    }

    /// The last settled epoch (`writeEpoch − 2`), if any.
    pub fn last_settled_epoch(&self) -> Option<u64> {
        self.write_epoch.checked_sub(NUM_UNSETTLED_EPOCHS)
    }

    /// True when `epoch ≤ writeEpoch − 2`: no client writes into it any more.
    pub fn is_settled(&self, epoch: u64) -> bool {
        self.last_settled_epoch().is_some_and(|s| epoch <= s)
    }

    /// The uncompacted blobs of `epoch` (empty if none).
    pub fn uncompacted_blobs(&self, epoch: u64) -> &[BlobListing] {
        self.uncompacted.get(&epoch).map_or(&[], Vec::as_slice)
    }

    /// The complete index set to read (kopia `GetCompleteIndexSet(LatestEpoch)`), with
    /// storage metadata: the blobs of the range chain, then for each epoch from one past the
    /// chain up to `writeEpoch + 1` its complete `xs` set if the epoch is settled and has
    /// one, else all its `xn` blobs.
    pub fn live_index_blob_listings(&self) -> Vec<BlobListing> {
        let mut out = Vec::new();
        let mut start = 0u64;
        for r in &self.longest_range_checkpoints {
            // Kopia skips a range that does not go beyond the current start.
            if r.max_epoch > start {
                out.extend(r.blobs.iter().cloned());
                start = r.max_epoch.saturating_add(1);
            }
        }
        let end = self.write_epoch.saturating_add(1);
        if start > end {
            return out;
        }
        // Only epochs that have blobs contribute, so visit those rather than every number in
        // `start..=end`: one stray marker name such as `xe99999999999` would otherwise mean
        // billions of iterations (found by the `epoch_listing` fuzz target).
        let epochs: BTreeSet<u64> = self
            .uncompacted
            .range(start..=end)
            .chain(self.single_epoch_compactions.range(start..=end))
            .map(|(&e, _)| e)
            .collect();
        for e in epochs {
            match self.single_epoch_compactions.get(&e) {
                Some(set) if self.is_settled(e) => out.extend(set.iter().cloned()),
                _ => out.extend(self.uncompacted_blobs(e).iter().cloned()),
            }
        }
        out
    }

    /// IDs of [`EpochState::live_index_blob_listings`].
    pub fn live_index_blobs(&self) -> Vec<BlobId> {
        self.live_index_blob_listings()
            .into_iter()
            .map(|b| b.id)
            .collect()
    }

    /// The oldest epoch covered neither by the range chain nor by a run of single-epoch
    /// compactions following it (kopia `oldestUncompactedEpoch`); maintenance compacts it
    /// when it is settled.
    pub fn oldest_uncompacted_epoch(&self) -> u64 {
        let mut e = self
            .longest_range_checkpoints
            .last()
            .map_or(0, |r| r.max_epoch.saturating_add(1));
        while self.single_epoch_compactions.contains_key(&e) {
            e = e.saturating_add(1);
        }
        e
    }

    /// Index blobs this state implies but the listing lacks, one sentence each:
    /// * an epoch `E` that was closed (marker `xe<E+1>` present) yet has no index blob at all:
    ///   covered by no range checkpoint, no complete single-epoch compaction, no `xn<E>_`
    ///   blob. An epoch is only advanced once it holds index blobs (kopia `shouldAdvance`,
    ///   the engine's `plan_advance`), so its blobs were lost;
    /// * an uncompacted set `-s<set>-c<N>` of which fewer than `N` blobs are present.
    ///
    /// Only epochs with a marker are checked (markers of old epochs may have been cleaned
    /// up), so a hostile marker number costs nothing.
    pub fn missing_index_blobs(&self) -> Vec<String> {
        let mut out = Vec::new();
        let covered_to = self.longest_range_checkpoints.last().map(|r| r.max_epoch);
        for &next in self.epoch_start_times.keys() {
            let Some(e) = next.checked_sub(1) else {
                continue;
            };
            let covered = covered_to.is_some_and(|m| e <= m)
                || self.single_epoch_compactions.contains_key(&e)
                || !self.uncompacted_blobs(e).is_empty();
            if !covered {
                out.push(format!(
                    "epoch {e} has no index blob (no {}…, no complete {}… set, no range checkpoint), though epoch {next} was started: its index blobs are missing",
                    uncompacted_blob_prefix(e),
                    single_epoch_compaction_prefix(e)
                ));
            }
        }
        for (e, blobs) in &self.uncompacted {
            let mut sets: BTreeMap<&str, (usize, i64)> = BTreeMap::new();
            for b in blobs {
                let mut parts = b.id.as_str().split('-');
                let (_, set, count) = (parts.next(), parts.next(), parts.next());
                let (Some(set), Some(count)) = (set, count) else {
                    continue;
                };
                let Some(n) = count.strip_prefix('c').and_then(|c| c.parse::<i64>().ok()) else {
                    continue;
                };
                if set.starts_with('s') {
                    let slot = sets.entry(set).or_insert((0, n));
                    slot.0 += 1;
                }
            }
            for (set, (have, want)) in sets {
                if i64::try_from(have).is_ok_and(|h| h < want) {
                    out.push(format!(
                        "index blob set {}…-{set}-c{want} of epoch {e}: {have} of {want} blobs present, the others are missing",
                        uncompacted_blob_prefix(*e)
                    ));
                }
            }
        }
        out
    }
}

/// Kopia's `findLongestRangeCheckpoint`: among chains of ranges starting at epoch 0 where each
/// range starts one past the previous end, the one reaching the highest epoch, with fewer
/// ranges winning ties. As in kopia, a chain must end beyond epoch 0 to be chosen. Computed
/// bottom-up (no recursion, so hostile listings cannot overflow the stack).
fn longest_range_chain(ranges: Vec<RangeCheckpoint>) -> Vec<RangeCheckpoint> {
    // Ranges with min == s, in (min, max) order (the input comes from an ordered map).
    let mut by_min: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, r) in ranges.iter().enumerate() {
        by_min.entry(r.min_epoch).or_default().push(i);
    }
    // best[s] = (highest epoch reached, number of ranges, first range) of the best chain from s.
    let mut best: HashMap<u64, (u64, usize, usize)> = HashMap::new();
    for (&start, candidates) in by_min.iter().rev() {
        let mut chosen: Option<(u64, usize, usize)> = None;
        for &i in candidates {
            let Some(r) = ranges.get(i) else { continue };
            let tail = r.max_epoch.checked_add(1).and_then(|n| best.get(&n));
            let (reach, len) = match tail {
                Some(&(reach, len, _)) => (reach, len + 1),
                None => (r.max_epoch, 1),
            };
            let (best_reach, best_len) = chosen.map_or((0, 0), |(m, l, _)| (m, l));
            if reach > best_reach || (reach == best_reach && len < best_len) {
                chosen = Some((reach, len, i));
            }
        }
        if let Some(c) = chosen {
            best.insert(start, c);
        }
    }
    let mut chain = Vec::new();
    let mut at = best.get(&0).copied();
    while let Some((_, _, i)) = at {
        let Some(r) = ranges.get(i) else { break };
        chain.push(r.clone());
        at = r
            .max_epoch
            .checked_add(1)
            .and_then(|n| best.get(&n).copied());
    }
    chain
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests;
