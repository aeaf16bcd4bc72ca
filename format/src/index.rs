//! Content indexes: the sorted tables that map content IDs to their place in pack blobs
//! (FORMAT.md §8; kopia `repo/content/index/`).
//!
//! An index body starts with a version byte (`0x01` or `0x02`); both versions are a fixed-size
//! header, a table of fixed-size `(key, value)` entries sorted by key bytes, a few small tables
//! (v2 only), and "extra data" holding the pack blob IDs as strings. Readers follow offsets only,
//! so anything after the extra data (the 32 random bytes of [`RANDOM_SUFFIX_LEN`]) is ignored.
//!
//! * [`IndexReader`] wraps the raw bytes and decodes entries on demand: repositories hold
//!   millions of contents, so nothing is materialised up front. `parse` checks that every table
//!   lies inside the buffer, after which lookups are a binary search over fixed-size entries.
//! * [`build_v1`], [`build_v2`] and [`build_shards`] reproduce kopia's builders byte for byte
//!   (same sort, same deduplication, same entry-size and table-numbering rules).
//! * [`entry_wins`], [`pick_winner`] and [`MergedIndex`] implement §8.4: which entry wins when
//!   the same content ID appears in several indexes, and the deletion-watermark filter.
//!
//! Layouts are documented in [`v1`] and [`v2`].

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

use chrono::{DateTime, Utc};

use crate::ids::{BlobId, ContentId, MAX_HASH_LEN};
use crate::{Error, Result};

pub mod v1;
pub mod v2;

/// Number of random bytes kopia appends after an index built with `Builder.Build` (local
/// indexes in packs, legacy v0 compactions) to make the blob unique.
pub const RANDOM_SUFFIX_LEN: usize = 32;

/// Largest number of entries kopia puts in one index blob before sharding
/// (`DefaultIndexShardSize`).
pub const DEFAULT_SHARD_SIZE: usize = 16_000_000;

/// Pack blob ID reported for an entry whose pack reference is out of range.
pub const INVALID_PACK_BLOB_ID: &str = "---invalid---";

/// Largest key (`prefixByte || hash`) this implementation can represent.
pub const MAX_KEY_LEN: usize = 1 + MAX_HASH_LEN;

/// What an index says about one content (kopia `index.Info`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Info {
    /// The content.
    pub content_id: ContentId,
    /// Pack blob holding the payload (still set for deleted entries).
    pub pack_blob_id: BlobId,
    /// Byte offset of the payload in the pack, counted from the pack start.
    pub pack_offset: u32,
    /// Length of the stored (compressed, encrypted) payload.
    pub packed_length: u32,
    /// Length of the plaintext before compression.
    pub original_length: u32,
    /// Unix seconds when this entry was written; decides which entry wins (§8.4).
    pub timestamp_seconds: i64,
    /// Tombstone flag.
    pub deleted: bool,
    /// Repository format version at write time (1, 2 or 3).
    pub format_version: u8,
    /// Compression header ID (FORMAT.md §6), 0 for none.
    pub compression_header_id: u32,
    /// Reserved, always 0 in kopia-written repositories.
    pub encryption_key_id: u8,
}

impl Info {
    /// The entry's timestamp as a UTC time (`None` if out of chrono's range).
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.timestamp_seconds, 0)
    }
}

/// Which version-specific table layout an [`IndexReader`] found.
#[derive(Clone, Copy, Debug)]
enum Layout {
    V1(v1::Header),
    V2(v2::Header),
}

/// A parsed view over the bytes of one index (v1 or v2), decoding entries on demand.
///
/// `B` is whatever owns the bytes (`Vec<u8>`, `&[u8]`, `bytes::Bytes`, an mmap...).
/// Apart from the header nothing is copied: each lookup decodes one entry and allocates only
/// the pack blob ID string of the returned [`Info`].
#[derive(Clone)]
pub struct IndexReader<B> {
    data: B,
    layout: Layout,
}

impl<B: AsRef<[u8]>> std::fmt::Debug for IndexReader<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexReader")
            .field("version", &self.version())
            .field("len", &self.len())
            .field("bytes", &self.data.as_ref().len())
            .finish()
    }
}

impl<B: AsRef<[u8]>> IndexReader<B> {
    /// Validates the header and that the entry table and every other table (plus every pack
    /// blob ID string of a v2 index) lie inside `data`.
    ///
    /// Errors: [`Error::Corrupt`] for truncated or inconsistent bytes, [`Error::Unsupported`]
    /// for an unknown version byte.
    pub fn parse(data: B) -> Result<Self> {
        let bytes = data.as_ref();
        let layout = match bytes.first() {
            None => return Err(Error::corrupt("index", "empty index blob")),
            Some(1) => Layout::V1(v1::Header::parse(bytes)?),
            Some(2) => Layout::V2(v2::Header::parse(bytes)?),
            Some(v) => return Err(Error::unsupported("index version", v.to_string())),
        };
        Ok(IndexReader { data, layout })
    }

    /// The index format version (1 or 2).
    pub fn version(&self) -> u8 {
        match self.layout {
            Layout::V1(_) => 1,
            Layout::V2(_) => 2,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match &self.layout {
            Layout::V1(h) => h.entry_count,
            Layout::V2(h) => h.entry_count,
        }
    }

    /// True when the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8] {
        self.data.as_ref()
    }

    /// Gives back the raw bytes.
    pub fn into_inner(self) -> B {
        self.data
    }

    fn key_size(&self) -> usize {
        match &self.layout {
            Layout::V1(h) => h.key_size,
            Layout::V2(h) => h.key_size,
        }
    }

    fn what(&self) -> &'static str {
        match self.layout {
            Layout::V1(_) => v1::WHAT,
            Layout::V2(_) => v2::WHAT,
        }
    }

    /// Key and value bytes of entry `i`.
    fn entry(&self, i: usize) -> Result<(&[u8], &[u8])> {
        let (start, stride) = match &self.layout {
            Layout::V1(h) => (h.entry_offset(i), h.stride()),
            Layout::V2(h) => (h.entry_offset(i), h.stride()),
        };
        let e = start
            .and_then(|s| self.bytes().get(s..s.checked_add(stride)?))
            .ok_or_else(|| Error::corrupt(self.what(), format!("entry {i} out of range")))?;
        e.split_at_checked(self.key_size())
            .ok_or_else(|| Error::corrupt(self.what(), "entry shorter than key"))
    }

    /// The content ID of entry `i` (entries are in ascending key order).
    pub fn id_at(&self, i: usize) -> Result<ContentId> {
        let (key, _) = self.entry(i)?;
        key_to_id(self.what(), key)
    }

    /// The full entry `i`.
    pub fn info_at(&self, i: usize) -> Result<Info> {
        let (key, value) = self.entry(i)?;
        let id = key_to_id(self.what(), key)?;
        self.decode(id, value)
    }

    fn decode(&self, id: ContentId, value: &[u8]) -> Result<Info> {
        match &self.layout {
            Layout::V1(h) => h.decode(self.bytes(), id, value),
            Layout::V2(h) => h.decode(self.bytes(), id, value),
        }
    }

    /// Position of the first entry whose key is `>= key`.
    fn lower_bound(&self, key: &[u8]) -> Result<usize> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (k, _) = self.entry(mid)?;
            if k < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Looks `id` up by binary search. An ID whose key length differs from this index's key
    /// size cannot be in it and gives `Ok(None)` (kopia reports an error there instead).
    pub fn get(&self, id: &ContentId) -> Result<Option<Info>> {
        // The key on the stack: a lookup runs once per index blob per content.
        let (buf, key_len) = id.key_array();
        let Some(key) = buf.get(..key_len) else {
            return Ok(None);
        };
        if self.is_empty() || key.len() != self.key_size() {
            return Ok(None);
        }
        let pos = self.lower_bound(key)?;
        if pos >= self.len() {
            return Ok(None);
        }
        let (k, value) = self.entry(pos)?;
        if k != key {
            return Ok(None);
        }
        self.decode(*id, value).map(Some)
    }

    /// All entries in key order. A corrupt entry yields one `Err` item; iteration continues
    /// with the next entry if the caller keeps pulling.
    pub fn iter(&self) -> impl Iterator<Item = Result<Info>> + '_ {
        (0..self.len()).map(move |i| self.info_at(i))
    }

    /// Entries with keys `>= start`, in key order.
    pub fn iter_from(&self, start: &ContentId) -> Result<impl Iterator<Item = Result<Info>> + '_> {
        let pos = self.lower_bound(&start.key())?;
        Ok((pos..self.len()).map(move |i| self.info_at(i)))
    }

    /// All content IDs in key order, without decoding the values.
    pub fn iter_ids(&self) -> impl Iterator<Item = Result<ContentId>> + '_ {
        (0..self.len()).map(move |i| self.id_at(i))
    }
}

fn key_to_id(what: &'static str, key: &[u8]) -> Result<ContentId> {
    ContentId::from_key(key).map_err(|e| Error::corrupt(what, e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Building

/// Deduplicates `entries` by content ID (the winner of §8.4 stays, as in kopia's
/// `Builder.Add`) and sorts them by key.
fn sorted_unique(entries: impl IntoIterator<Item = Info>) -> Vec<Info> {
    let mut map: BTreeMap<ContentId, Info> = BTreeMap::new();
    for e in entries {
        match map.entry(e.content_id) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(e);
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                if entry_wins(&e, o.get()) {
                    o.insert(e);
                }
            }
        }
    }
    map.into_values().collect()
}

fn append_suffix(mut out: Vec<u8>, random_suffix: Option<&[u8; RANDOM_SUFFIX_LEN]>) -> Vec<u8> {
    if let Some(s) = random_suffix {
        out.extend_from_slice(s);
    }
    out
}

/// Builds a v2 index exactly as kopia does (FORMAT.md §8.2).
///
/// Duplicate content IDs keep the winning entry (§8.4). `random_suffix` is appended after the
/// index (kopia `Build` for local pack indexes; `None` for the stable session/compaction path).
///
/// Errors ([`Error::Invalid`]): no entries, an empty content ID, content IDs of different
/// lengths, a length `>= 2^28`, a pack offset `>= 2^30`, more than 2^24 packs or 255 format
/// tuples, a pack blob ID longer than 255 bytes, a timestamp outside `0..2^32`, or an index
/// larger than 4 GiB.
pub fn build_v2(
    entries: impl IntoIterator<Item = Info>,
    random_suffix: Option<&[u8; RANDOM_SUFFIX_LEN]>,
) -> Result<Vec<u8>> {
    let sorted = sorted_unique(entries);
    v2::build_sorted(&sorted).map(|out| append_suffix(out, random_suffix))
}

/// Builds a v1 index exactly as kopia does (FORMAT.md §8.1).
///
/// Unlike v2, an empty v1 index can be built (header only, key size `0xFF`).
///
/// Errors ([`Error::Invalid`]): an empty content ID, content IDs of different lengths, an entry
/// with compression or a non-zero key ID, an empty or over-long pack blob ID, a pack offset
/// `>= 2^31`, a timestamp outside `0..2^48`, or an index larger than 4 GiB.
pub fn build_v1(
    entries: impl IntoIterator<Item = Info>,
    random_suffix: Option<&[u8; RANDOM_SUFFIX_LEN]>,
) -> Result<Vec<u8>> {
    let sorted = sorted_unique(entries);
    v1::build_sorted(&sorted).map(|out| append_suffix(out, random_suffix))
}

/// FNV-1a, 32-bit (Go's `hash/fnv.New32a`).
pub fn fnv1a32(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Builds the index shards of one flush or compaction (kopia `Builder.BuildShards` with
/// `stable = true`: no random suffix; append [`RANDOM_SUFFIX_LEN`] random bytes to each shard
/// yourself for the unstable legacy path).
///
/// With at most `shard_size` unique entries there is one shard (none for no entries). Otherwise
/// there are `ceil(n / shard_size)` buckets, an entry goes to bucket
/// `FNV-1a-32(contentID string) mod buckets`, and the non-empty buckets are returned in bucket
/// order. `version` is 1 or 2.
pub fn build_shards(
    entries: impl IntoIterator<Item = Info>,
    version: u8,
    shard_size: usize,
) -> Result<Vec<Vec<u8>>> {
    if shard_size == 0 {
        return Err(Error::invalid("index shard size", "must be positive"));
    }
    let build = |sorted: &[Info]| match version {
        1 => v1::build_sorted(sorted),
        2 => v2::build_sorted(sorted),
        v => Err(Error::unsupported("index version", v.to_string())),
    };
    let sorted = sorted_unique(entries);
    let n_shards = sorted.len().div_ceil(shard_size);
    if n_shards <= 1 {
        if sorted.is_empty() {
            return Ok(Vec::new());
        }
        return Ok(vec![build(&sorted)?]);
    }
    let mut buckets: Vec<Vec<Info>> = vec![Vec::new(); n_shards];
    let modulus = u32::try_from(n_shards)
        .map_err(|_| Error::invalid("index shard size", "too many shards"))?;
    for e in sorted {
        let h = fnv1a32(e.content_id.to_string().as_bytes()) % modulus;
        if let Some(b) = buckets.get_mut(h as usize) {
            b.push(e);
        }
    }
    // Each bucket is a subsequence of a sorted list, so it is sorted too.
    buckets
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| build(b))
        .collect()
}

/// [`build_shards`] for index v2, the format of every epoch-managed repository.
pub fn build_v2_shards(
    entries: impl IntoIterator<Item = Info>,
    shard_size: usize,
) -> Result<Vec<Vec<u8>>> {
    build_shards(entries, 2, shard_size)
}

// ---------------------------------------------------------------------------------------------
// Merging (FORMAT.md §8.4)

/// True when `a` beats `b` for the same content ID (kopia `contentInfoGreaterThanStruct`):
/// the later timestamp wins; at equal timestamps a live entry beats a deleted one; otherwise
/// the greater pack blob ID (string order) wins.
pub fn entry_wins(a: &Info, b: &Info) -> bool {
    if a.timestamp_seconds != b.timestamp_seconds {
        return a.timestamp_seconds > b.timestamp_seconds;
    }
    if a.deleted != b.deleted {
        return !a.deleted;
    }
    a.pack_blob_id > b.pack_blob_id
}

/// The winning entry among candidates for one content ID (the first of exact ties stays).
pub fn pick_winner(candidates: impl IntoIterator<Item = Info>) -> Option<Info> {
    candidates.into_iter().fold(None, |best, c| match best {
        Some(b) if !entry_wins(&c, &b) => Some(b),
        _ => Some(c),
    })
}

/// True when a winning entry must be treated as absent: it is deleted and its timestamp is not
/// after the deletion watermark (kopia `shouldIgnore`). `None` = no watermark (legacy v0
/// repositories, epoch repositories without `xw` blobs).
pub fn hidden_by_watermark(info: &Info, watermark: Option<DateTime<Utc>>) -> bool {
    match watermark {
        // The timestamp is whole seconds, so `ts <= wm` iff `ts <= floor(wm)`.
        Some(wm) => info.deleted && info.timestamp_seconds <= wm.timestamp(),
        None => false,
    }
}

/// Picks the winner, then drops it if the watermark hides it. Never falls back to an older
/// candidate: a hidden deleted winner hides the content completely.
pub fn resolve(
    candidates: impl IntoIterator<Item = Info>,
    watermark: Option<DateTime<Utc>>,
) -> Option<Info> {
    pick_winner(candidates).filter(|w| !hidden_by_watermark(w, watermark))
}

/// A view of the complete index set: many indexes read as one (kopia `index.Merged` plus the
/// deletion-watermark filter of the committed content index).
///
/// Deleted winners are still returned (callers decide whether to include them), except those
/// hidden by the watermark.
pub struct MergedIndex<'a, B> {
    indexes: &'a [IndexReader<B>],
    watermark: Option<DateTime<Utc>>,
}

impl<'a, B: AsRef<[u8]>> MergedIndex<'a, B> {
    /// Merges `indexes`, hiding deleted winners not newer than `watermark`.
    pub fn new(indexes: &'a [IndexReader<B>], watermark: Option<DateTime<Utc>>) -> Self {
        MergedIndex { indexes, watermark }
    }

    /// The winning entry for `id`, or `None` if absent or hidden by the watermark.
    pub fn get(&self, id: &ContentId) -> Result<Option<Info>> {
        let mut found = Vec::new();
        for ndx in self.indexes {
            if let Some(i) = ndx.get(id)? {
                found.push(i);
            }
        }
        Ok(resolve(found, self.watermark))
    }

    /// Winning entries of all content IDs, in key order (a k-way merge). Stops after the
    /// first error.
    pub fn iter(&self) -> MergedIter<'a, B> {
        let mut it = MergedIter {
            indexes: self.indexes,
            positions: vec![0; self.indexes.len()],
            heap: BinaryHeap::new(),
            watermark: self.watermark,
            failed: false,
            pending_error: None,
        };
        for n in 0..self.indexes.len() {
            it.push_next(n);
        }
        it
    }
}

/// Iterator of [`MergedIndex::iter`].
pub struct MergedIter<'a, B> {
    indexes: &'a [IndexReader<B>],
    positions: Vec<usize>,
    /// (next ID, index number) of every index that has entries left.
    heap: BinaryHeap<Reverse<(ContentId, usize)>>,
    watermark: Option<DateTime<Utc>>,
    failed: bool,
    pending_error: Option<Error>,
}

impl<B: AsRef<[u8]>> MergedIter<'_, B> {
    fn push_next(&mut self, n: usize) {
        let (Some(ndx), Some(pos)) = (self.indexes.get(n), self.positions.get(n).copied()) else {
            return;
        };
        if pos >= ndx.len() {
            return;
        }
        match ndx.id_at(pos) {
            Ok(id) => self.heap.push(Reverse((id, n))),
            Err(e) => {
                if self.pending_error.is_none() {
                    self.pending_error = Some(e);
                }
            }
        }
    }

    fn take(&mut self, n: usize) -> Result<Info> {
        let pos = self.positions.get(n).copied().unwrap_or(usize::MAX);
        let info = self
            .indexes
            .get(n)
            .ok_or_else(|| Error::corrupt("index", "merge bookkeeping"))?
            .info_at(pos)?;
        if let Some(p) = self.positions.get_mut(n) {
            *p += 1;
        }
        self.push_next(n);
        Ok(info)
    }
}

impl<B: AsRef<[u8]>> Iterator for MergedIter<'_, B> {
    type Item = Result<Info>;

    fn next(&mut self) -> Option<Result<Info>> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(e) = self.pending_error.take() {
                self.failed = true;
                return Some(Err(e));
            }
            let Reverse((id, n)) = self.heap.pop()?;
            let mut winner = match self.take(n) {
                Ok(i) => i,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            while let Some(Reverse((next_id, m))) = self.heap.peek().copied() {
                if next_id.cmp(&id) != Ordering::Equal {
                    break;
                }
                self.heap.pop();
                match self.take(m) {
                    Ok(c) => {
                        if entry_wins(&c, &winner) {
                            winner = c;
                        }
                    }
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                }
            }
            if !hidden_by_watermark(&winner, self.watermark) {
                return Some(Ok(winner));
            }
        }
    }
}

#[cfg(test)]
mod tests;
