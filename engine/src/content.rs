//! Contents: the live index set and verified content reads.
//!
//! The index set is the merge of every live index blob (FORMAT.md §9): for epoch repositories
//! the complete index set of the latest epoch state, for format-version-1 repositories the
//! legacy `n` blobs minus the inputs of valid compaction logs. Index blobs are kept as raw
//! decrypted bytes and searched in place, so millions of entries cost their bytes only.
//!
//! Reading a content: look up the winning entry (§8.4), fetch its byte range from the pack,
//! decrypt and authenticate it, and decompress as the entry says. Any failure names the
//! content and the pack.
//!
//! Authentication is what proves a payload is the content it claims to be: the AEAD key of a
//! content is `HMAC-SHA256(KDS, content ID)`, so a payload that opens under it was sealed for
//! that very ID by a holder of the master key. Kopia relies on exactly this on every read
//! (`repo/content/committed_read_manager.go`, `decryptAndVerify`: "already verified") and
//! does not re-hash. A reader made [`ContentReader::with_hash_check`] (what `verify` uses)
//! also re-hashes the plaintext and compares it with the content ID, which catches a writer
//! that sealed other bytes than it hashed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use arkiv_format::compression;
use arkiv_format::encryption::{self, ContentCipher};
use arkiv_format::hashing::Hasher;
use arkiv_format::ids::{BlobId, ContentId};
use arkiv_format::index::{self, IndexReader, Info};
use arkiv_format::indexblob::epoch::{BlobListing, EpochState};
use arkiv_format::indexblob::v0;
use futures::{StreamExt, TryStreamExt};

use crate::blob::{BlobMetadata, BlobStorage};
use crate::cache::Cache;
use crate::{Error, ErrorKind, Result, cpu};

pub mod metapacks;
pub mod recover;
pub mod writer;

/// How many index blobs are fetched at once while loading.
const INDEX_LOAD_PARALLELISM: usize = 8;

/// One loaded index blob.
#[derive(Debug)]
pub struct LoadedIndex {
    /// The blob it came from.
    pub blob_id: BlobId,
    /// Its decrypted bytes, searched in place.
    pub reader: IndexReader<Vec<u8>>,
    /// Which content IDs it may hold: most of a lookup's index blobs are ruled out here.
    filter: KeyFilter,
}

impl LoadedIndex {
    /// Wraps a parsed index blob (and builds its lookup filter).
    pub fn new(blob_id: BlobId, reader: IndexReader<Vec<u8>>) -> Self {
        let filter = KeyFilter::build(&reader);
        LoadedIndex {
            blob_id,
            reader,
            filter,
        }
    }
}

/// A Bloom filter over the content IDs of one index blob (about 12 bits per entry, three
/// probes: under 1 % false positives). A lookup must search every index blob, since any of
/// them may hold the winning entry; a repository between compactions has dozens, and each
/// binary search costs a few hundred nanoseconds. IDs are keyed hashes, so their own bytes
/// serve as the probe positions. An index whose IDs cannot be read gets a filter that
/// passes everything (the lookup then reports the damage).
#[derive(Debug)]
struct KeyFilter {
    /// Empty: everything may be present.
    bits: Vec<u64>,
    mask: u32,
}

impl KeyFilter {
    fn build(reader: &IndexReader<Vec<u8>>) -> Self {
        let n = reader.len();
        let nbits = (n.saturating_mul(12)).next_power_of_two().max(64);
        let Ok(mask) = u32::try_from(nbits - 1) else {
            return KeyFilter {
                bits: Vec::new(),
                mask: 0,
            };
        };
        let mut f = KeyFilter {
            bits: vec![0; nbits / 64],
            mask,
        };
        for id in reader.iter_ids() {
            let Ok(id) = id else {
                f.bits.clear();
                return f;
            };
            for p in f.probes(&id) {
                f.bits[(p / 64) as usize] |= 1 << (p % 64);
            }
        }
        f
    }

    fn probes(&self, id: &ContentId) -> [u32; 3] {
        let h = id.hash();
        let word = |i: usize| {
            h.get(i..i + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        // The prefix letter mixes in, so equal hashes under different prefixes differ.
        let p = u32::from(id.prefix().unwrap_or(0)).wrapping_mul(0x9e37_79b9);
        [
            (word(0) ^ p) & self.mask,
            (word(4) ^ p) & self.mask,
            (word(8) ^ p) & self.mask,
        ]
    }

    fn may_contain(&self, id: &ContentId) -> bool {
        self.bits.is_empty()
            || self
                .probes(id)
                .iter()
                .all(|&p| self.bits[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }
}

/// The merged view of every live index blob.
#[derive(Debug, Default)]
pub struct IndexSet {
    indexes: Vec<LoadedIndex>,
    /// Deleted entries with a timestamp at or before this (unix seconds) are invisible.
    deletion_watermark: Option<i64>,
}

fn to_listing(m: &BlobMetadata) -> BlobListing {
    BlobListing {
        id: m.id.clone(),
        length: m.length,
        timestamp: m.timestamp,
    }
}

impl IndexSet {
    /// Builds a set from already-loaded indexes (tests, and the writer's own pending indexes).
    pub fn from_indexes(indexes: Vec<LoadedIndex>, deletion_watermark: Option<i64>) -> Self {
        IndexSet {
            indexes,
            deletion_watermark,
        }
    }

    /// Finds and loads the live index blobs of a repository.
    pub async fn load(
        storage: &dyn BlobStorage,
        epoch_enabled: bool,
        cipher: &ContentCipher,
        cache: Option<&Cache>,
    ) -> Result<Self> {
        let (live, watermark) = if epoch_enabled {
            let listing: Vec<BlobListing> =
                storage.list("x").await?.iter().map(to_listing).collect();
            let state = EpochState::from_listing(&listing);
            (
                state.live_index_blobs(),
                state.deletion_watermark.map(|t| t.timestamp()),
            )
        } else {
            let n: Vec<BlobListing> = storage
                .list("n")
                .await?
                .iter()
                .filter(|m| !m.id.as_str().contains("repository_unreadable"))
                .map(to_listing)
                .collect();
            let mut logs = Vec::new();
            for m in storage.list("m").await? {
                let data = storage.get(&m.id, None).await?;
                let plain = encryption::decrypt_blob(cipher, m.id.as_str(), &data)
                    .map_err(|e| Error::format(format!("compaction log {}", m.id), e))?;
                logs.push(
                    v0::CompactionLog::parse(&plain)
                        .map_err(|e| Error::format(format!("compaction log {}", m.id), e))?,
                );
            }
            (v0::active_index_blobs(&n, &logs), None)
        };
        let cached = match cache {
            Some(c) => {
                let ids: Vec<&str> = live.iter().map(BlobId::as_str).collect();
                c.retain_index_blobs(&ids);
                c.get_index_blobs(&ids)
            }
            None => vec![None; live.len()],
        };
        let indexes = futures::stream::iter(live.into_iter().zip(cached))
            .map(|(id, plain)| load_index_blob(storage, cipher, id, plain, cache))
            .buffered(INDEX_LOAD_PARALLELISM)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(IndexSet {
            indexes,
            deletion_watermark: watermark,
        })
    }

    /// Number of index blobs in the set.
    pub fn blob_count(&self) -> usize {
        self.indexes.len()
    }

    /// The loaded indexes.
    pub fn indexes(&self) -> &[LoadedIndex] {
        &self.indexes
    }

    /// The deletion watermark in unix seconds, if any.
    pub fn deletion_watermark(&self) -> Option<i64> {
        self.deletion_watermark
    }

    fn hidden_by_watermark(&self, info: &Info) -> bool {
        info.deleted
            && self
                .deletion_watermark
                .is_some_and(|w| info.timestamp_seconds <= w)
    }

    /// The winning entry for a content, deleted or not (a deleted winner hidden by the
    /// deletion watermark counts as absent).
    pub fn lookup(&self, id: &ContentId) -> Result<Option<Info>> {
        Ok(self
            .lookup_raw(id)?
            .filter(|i| !self.hidden_by_watermark(i)))
    }

    /// Whether any index blob holds an entry for `id` at all: live, deleted, or hidden by the
    /// deletion watermark. A content a pack holds but no index blob lists is what a lost
    /// index blob leaves behind (see [`recover`]).
    pub fn knows(&self, id: &ContentId) -> Result<bool> {
        Ok(self.lookup_raw(id)?.is_some())
    }

    fn lookup_raw(&self, id: &ContentId) -> Result<Option<Info>> {
        let mut best: Option<Info> = None;
        for idx in &self.indexes {
            if !idx.filter.may_contain(id) {
                continue;
            }
            let found = idx
                .reader
                .get(id)
                .map_err(|e| Error::format(format!("index blob {}", idx.blob_id), e))?;
            if let Some(info) = found {
                best = match best {
                    Some(b) if !index::entry_wins(&info, &b) => Some(b),
                    _ => Some(info),
                };
            }
        }
        Ok(best)
    }

    /// Iterates winning entries in content-ID order, merging all indexes without holding
    /// them in memory. Deleted winners are skipped unless `include_deleted`.
    pub fn iter(&self, include_deleted: bool) -> MergedIter<'_> {
        let mut iters: Vec<Box<dyn Iterator<Item = arkiv_format::Result<Info>> + '_>> =
            Vec::with_capacity(self.indexes.len());
        let mut heap = BinaryHeap::new();
        let mut error = None;
        for (i, idx) in self.indexes.iter().enumerate() {
            let mut it: Box<dyn Iterator<Item = arkiv_format::Result<Info>> + '_> =
                Box::new(idx.reader.iter());
            match it.next() {
                Some(Ok(info)) => heap.push(HeapItem { info, source: i }),
                Some(Err(e)) => {
                    error.get_or_insert(Error::format(format!("index blob {}", idx.blob_id), e));
                }
                None => {}
            }
            iters.push(it);
        }
        MergedIter {
            set: self,
            iters,
            heap,
            include_deleted,
            error,
        }
    }
}

/// Loads one index blob: from `cached` (its bytes the local cache held) when that parses
/// (index blobs are immutable by name; the caller only asks for blobs the storage still
/// lists), else from storage (decrypt, parse, then remember it in `cache`).
pub(crate) async fn load_index_blob(
    storage: &dyn BlobStorage,
    cipher: &ContentCipher,
    id: BlobId,
    cached: Option<Vec<u8>>,
    cache: Option<&Cache>,
) -> Result<LoadedIndex> {
    if let Some(plain) = cached {
        if let Ok(reader) = IndexReader::parse(plain) {
            return Ok(LoadedIndex::new(id, reader));
        }
    }
    let data = storage.get(&id, None).await?;
    let cipher = cipher.clone();
    let loaded = cpu::run(move || {
        let plain = encryption::decrypt_blob(&cipher, id.as_str(), &data)
            .map_err(|e| Error::format(format!("index blob {id}"), e))?;
        let reader =
            IndexReader::parse(plain).map_err(|e| Error::format(format!("index blob {id}"), e))?;
        Ok(LoadedIndex::new(id, reader))
    })
    .await?;
    if let Some(c) = cache {
        c.put_index_blob(loaded.blob_id.as_str(), loaded.reader.bytes());
    }
    Ok(loaded)
}

struct HeapItem {
    info: Info,
    source: usize,
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    // BinaryHeap is a max-heap: reverse so the smallest content ID pops first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .info
            .content_id
            .cmp(&self.info.content_id)
            .then_with(|| other.source.cmp(&self.source))
    }
}

/// Iterator over winning index entries in content-ID order.
pub struct MergedIter<'a> {
    set: &'a IndexSet,
    iters: Vec<Box<dyn Iterator<Item = arkiv_format::Result<Info>> + 'a>>,
    heap: BinaryHeap<HeapItem>,
    include_deleted: bool,
    error: Option<Error>,
}

impl MergedIter<'_> {
    fn advance(&mut self, source: usize) {
        if let Some(it) = self.iters.get_mut(source) {
            match it.next() {
                Some(Ok(info)) => self.heap.push(HeapItem { info, source }),
                Some(Err(e)) => {
                    let blob = self
                        .set
                        .indexes
                        .get(source)
                        .map(|i| i.blob_id.to_string())
                        .unwrap_or_default();
                    self.error
                        .get_or_insert(Error::format(format!("index blob {blob}"), e));
                }
                None => {}
            }
        }
    }
}

impl Iterator for MergedIter<'_> {
    type Item = Result<Info>;

    fn next(&mut self) -> Option<Result<Info>> {
        loop {
            if let Some(e) = self.error.take() {
                self.heap.clear();
                return Some(Err(e));
            }
            let first = self.heap.pop()?;
            let id = first.info.content_id;
            self.advance(first.source);
            let mut best = first.info;
            while self
                .heap
                .peek()
                .is_some_and(|top| top.info.content_id == id)
            {
                let Some(item) = self.heap.pop() else { break };
                self.advance(item.source);
                if index::entry_wins(&item.info, &best) {
                    best = item.info;
                }
            }
            if self.set.hidden_by_watermark(&best) {
                continue;
            }
            if best.deleted && !self.include_deleted {
                continue;
            }
            return Some(Ok(best));
        }
    }
}

/// Reads and verifies contents.
#[derive(Debug, Clone)]
pub struct ContentReader {
    storage: Arc<dyn BlobStorage>,
    hasher: Hasher,
    cipher: ContentCipher,
    /// Whole `q` packs (see [`metapacks`]); `None` reads every content by range.
    metadata: Option<Arc<metapacks::MetadataPacks>>,
    /// The local cache for data contents ([`ContentReader::read`] and restore batches);
    /// `None` (verify, a cache with no content limit) reads them from storage every time.
    content_cache: Option<Arc<crate::cache::Cache>>,
    /// Re-hash every plaintext and compare with the content ID (on top of the AEAD).
    hash_check: bool,
}

/// The largest original length a content may claim (index v2 lengths are < 2^28).
const MAX_CONTENT_LEN: usize = 1 << 28;

impl ContentReader {
    /// A reader over `storage` with the repository's hash and cipher.
    pub fn new(storage: Arc<dyn BlobStorage>, hasher: Hasher, cipher: ContentCipher) -> Self {
        ContentReader {
            storage,
            hasher,
            cipher,
            metadata: None,
            content_cache: None,
            hash_check: false,
        }
    }

    /// Keeps the data contents it reads in `cache` (when the cache has a content limit) and
    /// looks them up there first; `None` turns that off.
    pub fn with_content_cache(mut self, cache: Option<Arc<crate::cache::Cache>>) -> Self {
        self.content_cache = cache.filter(|c| c.caches_contents());
        self
    }

    /// Cached raw payloads of `infos` (data contents only; `None` for a miss, a metadata
    /// content, or a cached payload of the wrong length). Empty when no content cache is in use.
    pub async fn cached_payloads(&self, infos: &[Info]) -> Vec<Option<Vec<u8>>> {
        let Some(cache) = self.content_cache.clone() else {
            return Vec::new();
        };
        let wanted: Vec<(Option<String>, u32)> = infos
            .iter()
            .map(|i| {
                let data = !metapacks::is_metadata_pack(&i.pack_blob_id);
                (data.then(|| i.content_id.to_string()), i.packed_length)
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            // One lookup batch for the data contents; metadata contents stay misses.
            let keys: Vec<&str> = wanted.iter().filter_map(|(k, _)| k.as_deref()).collect();
            let mut found = cache.get_contents(&keys).into_iter();
            wanted
                .iter()
                .map(|(key, len)| {
                    key.as_ref()
                        .and_then(|_| found.next().flatten())
                        .filter(|p| p.len() as u64 == u64::from(*len))
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Stores raw payloads of data contents in the content cache (metadata contents and
    /// everything when no content cache is in use are skipped).
    pub async fn cache_payloads(&self, items: Vec<(Info, bytes::Bytes)>) {
        let Some(cache) = self.content_cache.clone() else {
            return;
        };
        let items: Vec<(String, bytes::Bytes)> = items
            .into_iter()
            .filter(|(i, _)| !metapacks::is_metadata_pack(&i.pack_blob_id))
            .map(|(i, b)| (i.content_id.to_string(), b))
            .collect();
        if items.is_empty() {
            return;
        }
        let _ = tokio::task::spawn_blocking(move || {
            let rows: Vec<(String, &[u8])> =
                items.iter().map(|(k, b)| (k.clone(), b.as_ref())).collect();
            cache.put_contents(&rows);
        })
        .await;
    }

    /// Also re-hashes each plaintext and compares it with its content ID (see the module
    /// documentation; costs a BLAKE2b/SHA pass over everything read).
    pub fn with_hash_check(mut self, on: bool) -> Self {
        self.hash_check = on;
        self
    }

    /// Reads contents of `q` packs through `packs` (whole packs, fetched once).
    pub fn with_metadata_packs(mut self, packs: Option<Arc<metapacks::MetadataPacks>>) -> Self {
        self.metadata = packs;
        self
    }

    /// The metadata pack cache in use, if any.
    pub fn metadata_packs(&self) -> Option<&Arc<metapacks::MetadataPacks>> {
        self.metadata.as_ref()
    }

    /// The repository hasher.
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// The content cipher.
    pub fn cipher(&self) -> &ContentCipher {
        &self.cipher
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn BlobStorage> {
        &self.storage
    }

    /// Fetches the encrypted payload of an index entry from its pack.
    pub async fn fetch_payload(&self, info: &Info) -> Result<bytes::Bytes> {
        let start = u64::from(info.pack_offset);
        let end = start + u64::from(info.packed_length);
        let from_whole_pack = match &self.metadata {
            Some(m) if metapacks::is_metadata_pack(&info.pack_blob_id) => {
                m.get(self.storage.as_ref(), &info.pack_blob_id, start..end)
                    .await
            }
            _ => Ok(None),
        };
        let fetched = match from_whole_pack {
            Ok(Some(b)) if b.len() as u64 == end - start => Ok(b),
            Ok(Some(b)) => Err(Error::Storage {
                storage: self.storage.describe(),
                op: "get",
                target: info.pack_blob_id.to_string(),
                kind: ErrorKind::Corrupt,
                message: format!(
                    "truncated blob: range {start}..{end} requested but only {} bytes of it exist",
                    b.len()
                ),
            }),
            Ok(None) => self.storage.get(&info.pack_blob_id, Some(start..end)).await,
            Err(e) => Err(e),
        };
        match fetched {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::Corrupt(format!(
                "pack blob {} holding content {} is missing",
                info.pack_blob_id, info.content_id
            ))),
            Err(e) if e.kind() == ErrorKind::Corrupt => Err(Error::Corrupt(format!(
                "pack blob {} holding content {} is truncated: {e}",
                info.pack_blob_id, info.content_id
            ))),
            Err(e) => Err(e),
        }
    }

    /// Reads one content described by `info`, verifying MAC and hash. A data content comes
    /// from the content cache when it holds it (and goes into it when read from storage);
    /// either way it is decrypted and authenticated here.
    pub async fn read(&self, info: &Info) -> Result<Vec<u8>> {
        let cached = self
            .cached_payloads(std::slice::from_ref(info))
            .await
            .into_iter()
            .next()
            .flatten();
        let payload = match cached {
            Some(p) => p,
            None => {
                let fetched = self.fetch_payload(info).await?;
                if self.content_cache.is_some() {
                    self.cache_payloads(vec![(info.clone(), fetched.clone())])
                        .await;
                }
                // The storage hands over its own buffer (no other reference when nothing
                // was cached): decrypt in place.
                Vec::from(fetched)
            }
        };
        let this = self.clone();
        let info = info.clone();
        cpu::run(move || this.decode_owned_payload(&info, payload)).await
    }

    /// [`decode_payload`](Self::decode_payload) of an owned buffer, decrypted in place.
    pub fn decode_owned_payload(&self, info: &Info, payload: Vec<u8>) -> Result<Vec<u8>> {
        self.check_key(info)?;
        let plain = self
            .cipher
            .decrypt_in_place(info.content_id.iv(), payload)
            .map_err(|e| Error::format(self.describe(info), e))?;
        self.finish_decode(info, plain)
    }

    /// Decrypts, decompresses and verifies a payload (CPU only; call from rayon).
    pub fn decode_payload(&self, info: &Info, payload: &[u8]) -> Result<Vec<u8>> {
        self.check_key(info)?;
        let plain = self
            .cipher
            .decrypt(info.content_id.iv(), payload)
            .map_err(|e| Error::format(self.describe(info), e))?;
        self.finish_decode(info, plain)
    }

    fn describe(&self, info: &Info) -> String {
        format!("content {} in pack {}", info.content_id, info.pack_blob_id)
    }

    fn check_key(&self, info: &Info) -> Result<()> {
        if info.encryption_key_id != 0 {
            return Err(Error::Unsupported(format!(
                "{}: encryption key ID {}",
                self.describe(info),
                info.encryption_key_id
            )));
        }
        Ok(())
    }

    /// Decompresses a decrypted payload and verifies its hash.
    fn finish_decode(&self, info: &Info, plain: Vec<u8>) -> Result<Vec<u8>> {
        let id = info.content_id;
        let data = if info.compression_header_id != 0 {
            let max = usize::try_from(info.original_length)
                .unwrap_or(MAX_CONTENT_LEN)
                .min(MAX_CONTENT_LEN);
            compression::decompress(&plain, Some(info.compression_header_id), max)
                .map_err(|e| Error::format(self.describe(info), e))?
        } else {
            plain
        };
        if !self.hash_check {
            return Ok(data);
        }
        let actual = self.hasher.hash(&data);
        if actual.as_slice() != id.hash() {
            return Err(Error::format(
                self.describe(info),
                arkiv_format::Error::HashMismatch {
                    what: format!("content {id}"),
                    expected: hex::encode(id.hash()),
                    actual: hex::encode(actual.as_slice()),
                },
            ));
        }
        Ok(data)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::blob::memory::MemoryStorage;
    use arkiv_format::encryption::EncryptionAlgorithm;
    use arkiv_format::hashing::HashAlgorithm;

    /// A pack holding one payload sealed under `id`, and its index entry.
    async fn sealed(
        storage: &MemoryStorage,
        cipher: &ContentCipher,
        id: ContentId,
        plain: &[u8],
    ) -> Info {
        let payload = cipher.encrypt(id.iv(), plain, [9; 12]).unwrap();
        let pack = BlobId::from("p0123456789abcdef");
        storage
            .put(&pack, bytes::Bytes::from(payload.clone()))
            .await
            .unwrap();
        Info {
            content_id: id,
            pack_blob_id: pack,
            pack_offset: 0,
            packed_length: payload.len() as u32,
            original_length: plain.len() as u32,
            timestamp_seconds: 0,
            deleted: false,
            format_version: 2,
            compression_header_id: 0,
            encryption_key_id: 0,
        }
    }

    #[tokio::test]
    async fn reads_authenticate_and_verification_also_rehashes() {
        let storage = Arc::new(MemoryStorage::default());
        let hasher = Hasher::new(HashAlgorithm::Blake2b256_128, b"hmac secret").unwrap();
        let cipher =
            ContentCipher::new(EncryptionAlgorithm::Aes256GcmHmacSha256, &[7; 32]).unwrap();
        let reader = ContentReader::new(storage.clone(), hasher.clone(), cipher.clone());

        // An honest content: both readers return it.
        let good = b"the bytes that were hashed";
        let id = ContentId::from_hash(None, hasher.hash(good).as_slice()).unwrap();
        let info = sealed(&storage, &cipher, id, good).await;
        assert_eq!(reader.read(&info).await.unwrap(), good);
        let checking = reader.clone().with_hash_check(true);
        assert_eq!(checking.read(&info).await.unwrap(), good);

        // A writer bug: other bytes sealed under that ID. The AEAD cannot tell (the key is
        // right); only the re-hash does.
        let info = sealed(&storage, &cipher, id, b"other bytes than were hashed").await;
        assert_eq!(
            reader.read(&info).await.unwrap(),
            b"other bytes than were hashed"
        );
        let err = checking.read(&info).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("hash"), "{err}");

        // A payload sealed for another ID, or tampered with, fails authentication in both.
        let other = ContentId::from_hash(None, hasher.hash(b"x").as_slice()).unwrap();
        let mut info = sealed(&storage, &cipher, other, good).await;
        info.content_id = id;
        for r in [&reader, &checking] {
            let err = r.read(&info).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        }
    }

    fn random_id(seed: u64, prefix: Option<u8>) -> ContentId {
        let hash = Hasher::new(HashAlgorithm::Blake2b256_128, b"filter test key")
            .unwrap()
            .hash(&seed.to_le_bytes());
        ContentId::from_hash(prefix, hash.as_slice()).unwrap()
    }

    fn entry(id: ContentId, blob: u64, timestamp_seconds: i64, deleted: bool) -> Info {
        Info {
            content_id: id,
            pack_blob_id: BlobId::new(format!("p{blob:032x}")),
            pack_offset: 0,
            packed_length: 100,
            original_length: 60,
            timestamp_seconds,
            deleted,
            format_version: 2,
            compression_header_id: 0,
            encryption_key_id: 0,
        }
    }

    fn loaded(blob: u64, entries: Vec<Info>) -> LoadedIndex {
        let bytes = arkiv_format::index::build_v2(entries, None).unwrap();
        LoadedIndex::new(
            BlobId::new(format!("xn0_{blob:032x}")),
            IndexReader::parse(bytes).unwrap(),
        )
    }

    #[test]
    fn key_filter_has_no_false_negatives_and_few_false_positives() {
        let ids: Vec<ContentId> = (0..5000)
            .map(|i| random_id(i, (i % 7 == 0).then_some(b'k')))
            .collect();
        let idx = loaded(1, ids.iter().map(|&id| entry(id, 1, 10, false)).collect());
        assert!(ids.iter().all(|id| idx.filter.may_contain(id)));
        let false_positives = (100_000..110_000)
            .filter(|&i| idx.filter.may_contain(&random_id(i, None)))
            .count();
        assert!(
            false_positives < 300,
            "{false_positives} of 10000 absent IDs passed the filter"
        );
        // The same hash under another prefix is another content.
        let k = random_id(7, Some(b'k'));
        let plain = ContentId::from_hash(None, k.hash()).unwrap();
        assert!(idx.filter.may_contain(&k));
        assert_eq!(
            IndexSet::from_indexes(vec![idx], None)
                .lookup(&plain)
                .unwrap(),
            None
        );
    }

    #[test]
    fn lookups_across_many_filtered_indexes_find_the_winner() {
        // 40 index blobs of 100 entries; content 0..4000 once each, plus one content
        // written in three blobs (a later deletion, then a rewrite) whose newest wins.
        let twice = random_id(999_999, None);
        let mut indexes: Vec<LoadedIndex> = (0..40u64)
            .map(|b| {
                let mut entries: Vec<Info> = (b * 100..(b + 1) * 100)
                    .map(|i| entry(random_id(i, None), b, 10, false))
                    .collect();
                match b {
                    3 => entries.push(entry(twice, b, 10, false)),
                    17 => entries.push(entry(twice, b, 20, true)),
                    29 => entries.push(entry(twice, b, 30, false)),
                    _ => {}
                }
                loaded(b, entries)
            })
            .collect();
        indexes.reverse();
        let set = IndexSet::from_indexes(indexes, None);
        for i in (0..4000).step_by(37) {
            let found = set.lookup(&random_id(i, None)).unwrap().unwrap();
            assert_eq!(
                found.pack_blob_id,
                BlobId::new(format!("p{:032x}", i / 100))
            );
        }
        let won = set.lookup(&twice).unwrap().unwrap();
        assert_eq!((won.timestamp_seconds, won.deleted), (30, false));
        assert_eq!(set.lookup(&random_id(5000, None)).unwrap(), None);
    }
}
