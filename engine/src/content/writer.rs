//! Writing contents: one write session, its pack blobs and its index blobs.
//!
//! The core is synchronous and thread-safe so rayon workers (which split, hash, compress and
//! encrypt) can call [`ContentWriter::write_content`] directly; storage I/O is driven through
//! a tokio runtime handle (`Handle::block_on` from non-runtime threads only).
//!
//! Order of durability (FORMAT.md §14.4):
//! 1. the session marker `s<hash>-<sessionID>` is written before the first pack;
//! 2. packs are written (temp + fsync + rename on filesystems) as they fill up;
//! 3. on flush, the remaining packs, then the index blob `xn<E>_<hash>-<sessionID>-c1`
//!    naming only packs already durable; 4. the session marker is deleted.
//!
//! A process killed anywhere leaves at worst unreferenced packs (kopia's GC removes them
//! after 24 h, protected meanwhile by the marker) and never an index naming a missing pack.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use arkiv_format::compression::{self, CompressionAlgorithm};
use arkiv_format::encryption;
use arkiv_format::ids::{BlobId, ContentId};
use arkiv_format::index::{self, Info};
use arkiv_format::indexblob::epoch;
use arkiv_format::pack::PackBuilder;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::content::{ContentReader, IndexSet, LoadedIndex};
use crate::repo::Repository;
use crate::{Error, Result};

/// Counters of what a session wrote.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Contents written (not deduplicated).
    pub contents_written: AtomicU64,
    /// Contents found already present.
    pub contents_deduped: AtomicU64,
    /// Plaintext bytes of written contents.
    pub bytes_written: AtomicU64,
    /// Encrypted bytes of written contents (what lands in packs).
    pub packed_bytes: AtomicU64,
    /// Pack blobs written.
    pub packs_written: AtomicU64,
}

struct PendingPack {
    id: BlobId,
    builder: PackBuilder,
    entries: Vec<Info>,
}

#[derive(Default)]
struct SessionState {
    marker_written: bool,
    data: Option<PendingPack>,
    meta: Option<PendingPack>,
    /// Entries of packs already written, waiting for the next index flush.
    committed: Vec<Info>,
    /// Every content this session wrote (pending or committed), for dedup.
    written: HashMap<ContentId, Info>,
}

/// A write session against a repository.
pub struct ContentWriter {
    repo: Repository,
    rt: tokio::runtime::Handle,
    session_id: String,
    session_start: DateTime<Utc>,
    username: String,
    hostname: String,
    max_pack_size: usize,
    format_version: u8,
    state: Mutex<SessionState>,
    flush_lock: Mutex<()>,
    /// Statistics of this session.
    pub stats: WriteStats,
}

impl std::fmt::Debug for ContentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentWriter")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ContentWriter {
    /// Starts a session (nothing is written until the first content).
    ///
    /// `rt` must be a handle of the runtime driving `repo`'s storage; methods of the writer
    /// must be called from threads outside that runtime (rayon or `spawn_blocking`).
    pub fn new(
        repo: Repository,
        rt: tokio::runtime::Handle,
        username: &str,
        hostname: &str,
    ) -> Result<Arc<Self>> {
        let cfg = repo.config();
        if !cfg.epoch_parameters.enabled || cfg.effective_index_version() < 2 {
            return Err(Error::Unsupported(
                "writing into a format-version-1 repository (legacy index, no epoch manager) is not supported; it can be read, or upgraded with `kopia repository upgrade`".into(),
            ));
        }
        let now = repo.clock().now();
        let session_id = epoch::session_id(rand::random(), now);
        Ok(Arc::new(ContentWriter {
            max_pack_size: usize::try_from(cfg.effective_max_pack_size()).unwrap_or(20 << 20),
            format_version: u8::try_from(cfg.version).unwrap_or(3),
            repo,
            rt,
            session_id,
            session_start: now,
            username: username.to_owned(),
            hostname: hostname.to_owned(),
            state: Mutex::new(SessionState::default()),
            flush_lock: Mutex::new(()),
            stats: WriteStats::default(),
        }))
    }

    /// The session ID (`s` + 16 hex + epoch month).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The repository this session writes into.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    fn reader(&self) -> &ContentReader {
        self.repo.content_reader()
    }

    /// Hashes `data` into its content ID.
    pub fn content_id(&self, prefix: Option<u8>, data: &[u8]) -> Result<ContentId> {
        self.reader()
            .hasher()
            .content_id(prefix, data)
            .map_err(|e| Error::format("content ID", e))
    }

    /// Whether a live (non-deleted) copy of `id` exists, in the repository or this session.
    pub fn exists(&self, id: &ContentId) -> Result<bool> {
        if lock(&self.state).written.contains_key(id) {
            return Ok(true);
        }
        Ok(matches!(self.repo.indexes().lookup(id)?, Some(i) if !i.deleted))
    }

    /// Writes one content (dedup'd), compressing it with `compression` when that makes it
    /// strictly smaller. Returns its ID. CPU work runs on the calling thread.
    pub fn write_content(
        &self,
        data: &[u8],
        prefix: Option<u8>,
        compression: Option<CompressionAlgorithm>,
    ) -> Result<ContentId> {
        let id = self.content_id(prefix, data)?;
        self.write_content_with_id(id, data, compression)?;
        Ok(id)
    }

    /// Like [`write_content`](Self::write_content) with a precomputed ID.
    pub fn write_content_with_id(
        &self,
        id: ContentId,
        data: &[u8],
        compression: Option<CompressionAlgorithm>,
    ) -> Result<()> {
        // Dedup against this session and live index entries; a deleted winner means "write
        // again" with a timestamp newer than the tombstone.
        let mut min_timestamp = 0i64;
        if lock(&self.state).written.contains_key(&id) {
            self.stats.contents_deduped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        match self.repo.indexes().lookup(&id)? {
            Some(info) if !info.deleted => {
                self.stats.contents_deduped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Some(info) => min_timestamp = info.timestamp_seconds + 1,
            None => {}
        }

        // Compression and encryption write into this thread's scratch buffers (allocating
        // and faulting in a fresh multi-MiB buffer per chunk cost system time and left the
        // allocator holding memory); incompressible data is encrypted straight from `data`.
        let mut scratch = SCRATCH.with(std::cell::Cell::take);
        let sealed = self.seal(id, data, compression, &mut scratch);
        let result = sealed.and_then(|header| {
            self.append_sealed(id, data.len(), &scratch.sealed, header, min_timestamp)
        });
        scratch.trim();
        SCRATCH.with(|c| c.set(scratch));
        result
    }

    /// Compresses (when that makes `data` strictly smaller) and encrypts `data` into
    /// `scratch.sealed` (in place: one buffer per thread); returns the compression header
    /// ID used (0 = none).
    fn seal(
        &self,
        id: ContentId,
        data: &[u8],
        compression: Option<CompressionAlgorithm>,
        scratch: &mut Scratch,
    ) -> Result<u32> {
        let buf = &mut scratch.sealed;
        buf.clear();
        buf.resize(encryption::NONCE_LEN, 0);
        let header = match compression {
            Some(alg) => {
                compression::compress_append(alg, data, buf)
                    .map_err(|e| Error::format(format!("compressing content {id}"), e))?;
                if buf.len() - encryption::NONCE_LEN < data.len() {
                    alg.header_id()
                } else {
                    buf.truncate(encryption::NONCE_LEN);
                    buf.extend_from_slice(data);
                    0
                }
            }
            None => {
                buf.extend_from_slice(data);
                0
            }
        };
        self.reader()
            .cipher()
            .encrypt_in_place(id.iv(), buf, rand::random())
            .map_err(|e| Error::format(format!("encrypting content {id}"), e))?;
        Ok(header)
    }

    /// Appends a sealed payload to the session's open pack (writing the pack when full).
    fn append_sealed(
        &self,
        id: ContentId,
        data_len: usize,
        payload: &[u8],
        header: u32,
        min_timestamp: i64,
    ) -> Result<()> {
        let original_length = u32::try_from(data_len)
            .map_err(|_| Error::Config(format!("content {id} too large ({data_len} bytes)")))?;
        let packed_length = u32::try_from(payload.len())
            .map_err(|_| Error::Config(format!("content {id} too large")))?;
        let now = self.repo.clock().now().timestamp();
        let timestamp_seconds = now.max(min_timestamp);

        self.ensure_marker()?;
        let full_pack = {
            let mut st = lock(&self.state);
            if st.written.contains_key(&id) {
                // another worker wrote it meanwhile
                self.stats.contents_deduped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let is_meta = id.has_prefix();
            let slot = if is_meta { &mut st.meta } else { &mut st.data };
            let pack = slot.get_or_insert_with(|| self.new_pack(is_meta));
            let offset = pack.builder.append(payload);
            let info = Info {
                content_id: id,
                pack_blob_id: pack.id.clone(),
                pack_offset: offset,
                packed_length,
                original_length,
                timestamp_seconds,
                deleted: false,
                format_version: self.format_version,
                compression_header_id: header,
                encryption_key_id: 0,
            };
            pack.entries.push(info.clone());
            let full = pack.builder.len() >= self.max_pack_size;
            let taken = if full { slot.take() } else { None };
            st.written.insert(id, info);
            taken
        };
        self.stats.contents_written.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_written
            .fetch_add(data_len as u64, Ordering::Relaxed);
        self.stats
            .packed_bytes
            .fetch_add(u64::from(packed_length), Ordering::Relaxed);
        if let Some(pack) = full_pack {
            self.write_pack(pack)?;
        }
        Ok(())
    }

    /// Records a deletion of `info`'s content: an entry with the same pack location,
    /// `deleted = true` and a timestamp newer than `info`'s (FORMAT.md §8.4). No pack data is
    /// written; the entry goes out with the next index flush.
    pub fn mark_deleted(&self, info: &Info) -> Result<()> {
        let now = self.repo.clock().now().timestamp();
        let entry = Info {
            deleted: true,
            timestamp_seconds: now.max(info.timestamp_seconds + 1),
            ..info.clone()
        };
        let mut st = lock(&self.state);
        st.written.remove(&info.content_id);
        st.committed.push(entry);
        Ok(())
    }

    /// Copies a content into a pack of this session: its encrypted payload is fetched from
    /// `info`'s pack, verified (MAC and hash), and appended verbatim (the IV depends only on
    /// the content ID, so the payload stays valid). The new entry keeps the lengths and
    /// compression of `info`, gets a timestamp newer than `info`'s and is live unless
    /// `deleted`. Used by content rewrite (compacting short packs) and undelete.
    pub fn copy_content(&self, info: &Info, deleted: bool) -> Result<()> {
        let reader = self.reader().clone();
        let i2 = info.clone();
        let payload = self
            .rt
            .block_on(async move { reader.fetch_payload(&i2).await })?;
        self.reader().decode_payload(info, &payload)?;
        let id = info.content_id;
        let now = self.repo.clock().now().timestamp();
        let timestamp_seconds = now.max(info.timestamp_seconds + 1);
        self.ensure_marker()?;
        let full_pack = {
            let mut st = lock(&self.state);
            let is_meta = id.has_prefix();
            let slot = if is_meta { &mut st.meta } else { &mut st.data };
            let pack = slot.get_or_insert_with(|| self.new_pack(is_meta));
            let offset = pack.builder.append(&payload);
            let entry = Info {
                pack_blob_id: pack.id.clone(),
                pack_offset: offset,
                timestamp_seconds,
                deleted,
                ..info.clone()
            };
            // Not recorded in `written`: maintenance sessions do not deduplicate, and
            // remembering every copied entry would hold them all in memory.
            pack.entries.push(entry);
            let full = pack.builder.len() >= self.max_pack_size;
            if full { slot.take() } else { None }
        };
        self.stats.contents_written.fetch_add(1, Ordering::Relaxed);
        self.stats
            .packed_bytes
            .fetch_add(u64::from(info.packed_length), Ordering::Relaxed);
        if let Some(pack) = full_pack {
            self.write_pack(pack)?;
        }
        Ok(())
    }

    fn new_pack(&self, meta: bool) -> PendingPack {
        let r: [u8; 16] = rand::random();
        let prefix = if meta { 'q' } else { 'p' };
        // Reserved up front (the pages are only touched as payloads arrive): growing by
        // doubling would copy the pack several times and overshoot to 32 MiB. Aligned so
        // the filesystem backend can write it with direct I/O.
        let builder = PackBuilder::aligned(
            rand::random(),
            self.max_pack_size + SCRATCH_KEEP,
            crate::direct_io::ALIGN,
        );
        PendingPack {
            id: BlobId::new(format!("{prefix}{}-{}", hex::encode(r), self.session_id)),
            builder,
            entries: Vec::new(),
        }
    }

    /// Entries waiting for the next index flush (pending packs excluded).
    pub fn pending_index_entries(&self) -> usize {
        lock(&self.state).committed.len()
    }

    fn ensure_marker(&self) -> Result<()> {
        if lock(&self.state).marker_written {
            return Ok(());
        }
        let _g = lock(&self.flush_lock);
        if lock(&self.state).marker_written {
            return Ok(());
        }
        let now = self.repo.clock().now();
        let marker = serde_json::json!({
            "id": self.session_id,
            "startTime": arkiv_format::gojson::time::format(&self.session_start),
            "checkpointTime": arkiv_format::gojson::time::format(&now),
            "username": self.username,
            "hostname": self.hostname,
        });
        let plain = serde_json::to_vec(&marker)
            .map_err(|e| Error::Config(format!("session marker: {e}")))?;
        let (blob_id, data) = encryption::encrypt_blob(
            self.reader().hasher(),
            self.reader().cipher(),
            "s",
            Some(&self.session_id),
            &plain,
            rand::random(),
        )
        .map_err(|e| Error::format("session marker", e))?;
        self.put_blob(blob_id, Bytes::from(data))?;
        lock(&self.state).marker_written = true;
        Ok(())
    }

    fn put_blob(&self, id: BlobId, data: Bytes) -> Result<()> {
        let storage = self.repo.storage().clone();
        self.rt
            .block_on(async move { storage.put(&id, data).await })
    }

    /// Finishes a pack: local index, padding, postamble; writes it; records its entries.
    fn write_pack(&self, pack: PendingPack) -> Result<()> {
        let PendingPack {
            id,
            builder,
            entries,
        } = pack;
        if entries.is_empty() {
            return Ok(());
        }
        let suffix: [u8; 32] = rand::random();
        let local_index = index::build_v2(entries.iter().cloned(), Some(&suffix))
            .map_err(|e| Error::format(format!("local index of pack {id}"), e))?;
        let iv = self.reader().hasher().hash(&local_index);
        let encrypted_index = self
            .reader()
            .cipher()
            .encrypt(iv.as_slice(), &local_index, rand::random())
            .map_err(|e| Error::format(format!("local index of pack {id}"), e))?;
        let mut padding = vec![0u8; 4096];
        rand::Rng::fill(&mut rand::thread_rng(), padding.as_mut_slice());
        let (buf, lead) = builder.finish_aligned(&padding, &encrypted_index, iv.as_slice());
        self.put_blob(id, Bytes::from(buf).slice(lead..))?;
        self.stats.packs_written.fetch_add(1, Ordering::Relaxed);
        lock(&self.state).committed.extend(entries);
        Ok(())
    }

    /// Writes pending packs and an index blob for everything written so far, then deletes
    /// the session marker. Returns the index blob ID (None when nothing was written).
    pub fn flush(&self) -> Result<Option<BlobId>> {
        let _g = lock(&self.flush_lock);
        let (data, meta) = {
            let mut st = lock(&self.state);
            (st.data.take(), st.meta.take())
        };
        for p in [data, meta].into_iter().flatten() {
            self.write_pack(p)?;
        }
        let (entries, marker) = {
            let mut st = lock(&self.state);
            (std::mem::take(&mut st.committed), st.marker_written)
        };
        if entries.is_empty() {
            return Ok(None);
        }
        let plain = index::build_v2(entries.iter().cloned(), None)
            .map_err(|e| Error::format("session index", e))?;
        let write_epoch = self.current_write_epoch()?;
        let (name, data) = encryption::encrypt_blob(
            self.reader().hasher(),
            self.reader().cipher(),
            "",
            Some(&format!("{}-c1", self.session_id)),
            &plain,
            rand::random(),
        )
        .map_err(|e| Error::format("session index", e))?;
        let blob_id = BlobId::new(format!(
            "{}{name}",
            epoch::uncompacted_blob_prefix(write_epoch)
        ));
        self.put_blob(blob_id.clone(), Bytes::from(data))?;
        if marker {
            self.delete_marker()?;
        }
        Ok(Some(blob_id))
    }

    fn current_write_epoch(&self) -> Result<u64> {
        let storage = self.repo.storage().clone();
        let markers = self.rt.block_on(async move { storage.list("xe").await })?;
        Ok(markers
            .iter()
            .filter_map(|m| epoch::epoch_number_from_blob_id(m.id.as_str()))
            .max()
            .unwrap_or(0))
    }

    fn delete_marker(&self) -> Result<()> {
        let storage = self.repo.storage().clone();
        let suffix = format!("-{}", self.session_id);
        self.rt.block_on(async move {
            for m in storage.list("s").await? {
                if m.id.as_str().ends_with(&suffix) {
                    storage.delete(&m.id).await?;
                }
            }
            Ok::<(), Error>(())
        })?;
        lock(&self.state).marker_written = false;
        Ok(())
    }

    /// The entries this session has written (for tests and to extend an index view).
    pub fn written_entries(&self) -> Vec<Info> {
        lock(&self.state).written.values().cloned().collect()
    }

    /// An index set of the repository plus this session's written contents, for readers
    /// that must see what the session wrote (e.g. after flush, before re-opening).
    pub fn merged_index_hint(&self) -> Option<IndexSet> {
        let entries = self.written_entries();
        if entries.is_empty() {
            return None;
        }
        let bytes = index::build_v2(entries, None).ok()?;
        let reader = index::IndexReader::parse(bytes).ok()?;
        Some(IndexSet::from_indexes(
            vec![LoadedIndex::new(BlobId::from("(session)"), reader)],
            None,
        ))
    }
}

/// Per-thread buffers of [`ContentWriter::write_content_with_id`].
#[derive(Default)]
struct Scratch {
    sealed: Vec<u8>,
}

/// Scratch capacity kept between contents: enough for kopia's largest chunks (8 MiB with
/// `DYNAMIC-4M-BUZHASH`) plus compression and encryption overhead; a rare larger content's
/// buffer is released afterwards.
const SCRATCH_KEEP: usize = (8 << 20) + (64 << 10);

impl Scratch {
    fn trim(&mut self) {
        if self.sealed.capacity() > SCRATCH_KEEP {
            self.sealed = Vec::new();
        }
    }
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}
