//! Writing contents: one write session, its pack blobs and its index blobs.
//!
//! The session is split in two halves that meet at a bounded channel:
//!
//! * the CPU half is synchronous and thread-safe: rayon workers (which split, hash, compress
//!   and encrypt) call [`ContentWriter::write_content`] directly. It seals contents, appends
//!   them to the open data or metadata pack and, when a pack is full, finishes it (local
//!   index, padding, postamble). It never touches storage;
//! * the I/O half is one tokio task per session. It receives finished packs over a bounded
//!   channel, writes them with bounded concurrency, records the entries of packs that are
//!   durable, and on flush writes the index blob naming exactly those.
//!
//! A worker that finishes a pack hands it to the I/O task and waits until its put has
//! settled, so each worker holds at most one finished pack, as when workers wrote their own
//! packs; the flush's last packs wait in the channel (`QUEUED_PACKS`) or in a put
//! (`PUT_CONCURRENCY`). Threads outside the runtime hand packs over with a blocking send and
//! wait on oneshots (the `*_async` methods are for async
//! callers); nothing calls `Handle::block_on`.
//!
//! The first storage failure fails the session: the CPU half stops accepting contents and
//! every later call returns a copy of that error (kind and message preserved), so the
//! caller fails as if it had written the pack itself.
//!
//! Order of durability (FORMAT.md §14.4):
//! 1. the session marker `s<hash>-<sessionID>` is written before the first pack;
//! 2. packs are written (temp + fsync + rename on filesystems) as they fill up;
//! 3. on flush, the remaining packs, then (once every pack put has finished) the index blob
//!    `xn<E>_<hash>-<sessionID>-c1` naming only packs already durable; 4. the session marker
//!    is deleted.
//!
//! A process killed anywhere leaves at worst unreferenced packs (kopia's GC removes them
//! after 24 h, protected meanwhile by the marker) and never an index naming a missing pack.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arkiv_format::compression::{self, CompressionAlgorithm};
use arkiv_format::encryption;
use arkiv_format::ids::{BlobId, ContentId};
use arkiv_format::index::{self, Info};
use arkiv_format::indexblob::epoch;
use arkiv_format::pack::PackBuilder;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use crate::blob::BlobStorage;
use crate::content::{ContentReader, IndexSet, LoadedIndex, metapacks};
use crate::repo::Repository;
use crate::{Error, Result, cpu};

/// Finished packs waiting for the I/O task while [`PUT_CONCURRENCY`] puts are running.
const QUEUED_PACKS: usize = 1;
/// Pack puts running at once.
const PUT_CONCURRENCY: usize = 1;

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
    /// Pack blobs written (durable).
    pub packs_written: AtomicU64,
}

struct PendingPack {
    id: BlobId,
    builder: PackBuilder,
    entries: Vec<Info>,
}

/// A pack ready to be written: its bytes and the entries it holds.
struct FinishedPack {
    id: BlobId,
    data: Bytes,
    entries: Vec<Info>,
}

/// What the CPU half sends to the I/O task.
enum Msg {
    /// A pack to put; the sender, if any, hears when the put has ended (either way).
    Pack(FinishedPack, Option<oneshot::Sender<()>>),
    /// Wait for every pack sent before, write the index blob, answer.
    Flush(oneshot::Sender<Result<Option<BlobId>>>),
}

#[derive(Default)]
struct SessionState {
    data: Option<PendingPack>,
    meta: Option<PendingPack>,
    /// Every content this session wrote (pending or committed), for dedup.
    written: HashMap<ContentId, Info>,
}

/// State shared by both halves.
#[derive(Default)]
struct Shared {
    /// Entries of durable packs (and deletion entries), waiting for the next index flush.
    committed: Mutex<Vec<Info>>,
    /// Set with `error` on the first storage failure.
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    stats: Arc<WriteStats>,
}

impl Shared {
    fn fail(&self, e: Error) {
        let mut slot = lock(&self.error);
        if slot.is_none() {
            tracing::debug!("content writer failed: {e}");
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::Release);
    }

    /// A copy of the session's failure, if it failed.
    fn check(&self) -> Result<()> {
        if !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(lock(&self.error).as_ref().map_or_else(
            || Error::Cancelled("content writer failed".into()),
            duplicate,
        ))
    }
}

/// A write session against a repository.
pub struct ContentWriter {
    repo: Repository,
    rt: tokio::runtime::Handle,
    session_id: String,
    max_pack_size: usize,
    format_version: u8,
    state: Mutex<SessionState>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Msg>,
    /// Serialises flushes (each covers every pack handed over before it).
    flush_lock: tokio::sync::Mutex<()>,
    /// Statistics of this session.
    pub stats: Arc<WriteStats>,
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

fn writer_stopped() -> Error {
    Error::Cancelled("the content writer's I/O task stopped".into())
}

impl ContentWriter {
    /// Starts a session (nothing is written until the first pack is full or a flush).
    ///
    /// `rt` must be a handle of the runtime driving `repo`'s storage: the session's I/O task
    /// runs there. The synchronous methods must be called from threads outside that runtime
    /// (rayon or `spawn_blocking`), and not from the [`cpu`] pool; async callers use the
    /// `*_async` methods.
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
        let stats = Arc::new(WriteStats::default());
        let shared = Arc::new(Shared {
            stats: stats.clone(),
            ..Shared::default()
        });
        let (tx, rx) = mpsc::channel(QUEUED_PACKS);
        let io = IoTask {
            repo: repo.clone(),
            storage: repo.storage().clone(),
            shared: shared.clone(),
            session_id: session_id.clone(),
            session_start: now,
            username: username.to_owned(),
            hostname: hostname.to_owned(),
            marker_written: false,
        };
        rt.spawn(io.run(rx));
        Ok(Arc::new(ContentWriter {
            max_pack_size: usize::try_from(cfg.effective_max_pack_size()).unwrap_or(20 << 20),
            format_version: u8::try_from(cfg.version).unwrap_or(3),
            repo,
            rt,
            session_id,
            state: Mutex::new(SessionState::default()),
            shared,
            tx,
            flush_lock: tokio::sync::Mutex::new(()),
            stats,
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
    /// strictly smaller. Returns its ID. CPU work runs on the calling thread, which waits
    /// when it fills a pack and the I/O task is busy (call from outside the runtime).
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
        if let Some(pack) = self.write_core(id, data, compression)? {
            self.hand_over_blocking(pack)?;
        }
        Ok(())
    }

    /// [`write_content`](Self::write_content) for async callers: the CPU work runs on the
    /// [`cpu`] pool, a full pack is handed over with an async send.
    pub async fn write_content_async(
        self: &Arc<Self>,
        data: Vec<u8>,
        prefix: Option<u8>,
        compression: Option<CompressionAlgorithm>,
    ) -> Result<ContentId> {
        let this = self.clone();
        let (id, full) = cpu::run(move || {
            let id = this.content_id(prefix, &data)?;
            let full = this.write_core(id, &data, compression)?;
            Ok((id, full))
        })
        .await?;
        if let Some(pack) = full {
            self.hand_over(pack).await?;
        }
        Ok(id)
    }

    /// Seals and appends one content; returns the pack it filled, if any (to hand over).
    fn write_core(
        &self,
        id: ContentId,
        data: &[u8],
        compression: Option<CompressionAlgorithm>,
    ) -> Result<Option<FinishedPack>> {
        self.shared.check()?;
        // Dedup against this session and live index entries; a deleted winner means "write
        // again" with a timestamp newer than the tombstone.
        let mut min_timestamp = 0i64;
        if lock(&self.state).written.contains_key(&id) {
            self.stats.contents_deduped.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        match self.repo.indexes().lookup(&id)? {
            Some(info) if !info.deleted => {
                self.stats.contents_deduped.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
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

    /// Appends a sealed payload to the session's open pack; returns the pack when that
    /// filled it (finished, ready to hand over).
    fn append_sealed(
        &self,
        id: ContentId,
        data_len: usize,
        payload: &[u8],
        header: u32,
        min_timestamp: i64,
    ) -> Result<Option<FinishedPack>> {
        let original_length = u32::try_from(data_len)
            .map_err(|_| Error::Config(format!("content {id} too large ({data_len} bytes)")))?;
        let packed_length = u32::try_from(payload.len())
            .map_err(|_| Error::Config(format!("content {id} too large")))?;
        let now = self.repo.clock().now().timestamp();
        let timestamp_seconds = now.max(min_timestamp);

        let full_pack = {
            let mut st = lock(&self.state);
            if st.written.contains_key(&id) {
                // another worker wrote it meanwhile
                self.stats.contents_deduped.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
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
        full_pack
            .map(|p| finish_pack(self.reader(), p))
            .transpose()
            .map(Option::flatten)
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
        lock(&self.state).written.remove(&info.content_id);
        lock(&self.shared.committed).push(entry);
        Ok(())
    }

    /// Queues index entries recovered from packs' local indexes (kopia
    /// `RecoverIndexFromPackBlob` with commit): they go out unchanged, pack and timestamp
    /// included, with the next index flush. No pack data is written.
    pub fn add_recovered_entries(&self, entries: impl IntoIterator<Item = Info>) {
        lock(&self.shared.committed).extend(entries);
    }

    /// Copies a content into a pack of this session: its encrypted payload is fetched from
    /// `info`'s pack, verified (MAC and hash), and appended verbatim (the IV depends only on
    /// the content ID, so the payload stays valid). The new entry keeps the lengths and
    /// compression of `info`, gets a timestamp newer than `info`'s and is live unless
    /// `deleted`. Used by content rewrite (compacting short packs) and undelete.
    ///
    /// Blocking: the fetch runs on the runtime and is awaited through a oneshot; call from
    /// outside the runtime (see [`copy_content_async`](Self::copy_content_async)).
    pub fn copy_content(&self, info: &Info, deleted: bool) -> Result<()> {
        let reader = self.reader().clone();
        let i2 = info.clone();
        let (tx, rx) = oneshot::channel();
        self.rt.spawn(async move {
            let _ = tx.send(reader.fetch_payload(&i2).await);
        });
        let payload = rx.blocking_recv().map_err(|_| writer_stopped())??;
        if let Some(pack) = self.copy_core(info, &payload, deleted)? {
            self.hand_over_blocking(pack)?;
        }
        Ok(())
    }

    /// [`copy_content`](Self::copy_content) for async callers.
    pub async fn copy_content_async(self: &Arc<Self>, info: &Info, deleted: bool) -> Result<()> {
        let payload = self.reader().fetch_payload(info).await?;
        let this = self.clone();
        let info = info.clone();
        let full = cpu::run(move || this.copy_core(&info, &payload, deleted)).await?;
        if let Some(pack) = full {
            self.hand_over(pack).await?;
        }
        Ok(())
    }

    fn copy_core(
        &self,
        info: &Info,
        payload: &[u8],
        deleted: bool,
    ) -> Result<Option<FinishedPack>> {
        self.shared.check()?;
        self.reader().decode_payload(info, payload)?;
        let id = info.content_id;
        let now = self.repo.clock().now().timestamp();
        let timestamp_seconds = now.max(info.timestamp_seconds + 1);
        let full_pack = {
            let mut st = lock(&self.state);
            let is_meta = id.has_prefix();
            let slot = if is_meta { &mut st.meta } else { &mut st.data };
            let pack = slot.get_or_insert_with(|| self.new_pack(is_meta));
            let offset = pack.builder.append(payload);
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
        full_pack
            .map(|p| finish_pack(self.reader(), p))
            .transpose()
            .map(Option::flatten)
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

    /// Entries waiting for the next index flush (packs not yet durable excluded).
    pub fn pending_index_entries(&self) -> usize {
        lock(&self.shared.committed).len()
    }

    /// Hands a finished pack to the I/O task and waits until its put has settled, so a worker
    /// holds at most one finished pack (the memory bound of a writer that puts its own
    /// packs); a failed put is reported by the next call.
    fn hand_over_blocking(&self, pack: FinishedPack) -> Result<()> {
        self.shared.check()?;
        let (done, ended) = oneshot::channel();
        self.send_blocking(Msg::Pack(pack, Some(done)))?;
        let _ = ended.blocking_recv();
        Ok(())
    }

    async fn hand_over(&self, pack: FinishedPack) -> Result<()> {
        self.shared.check()?;
        let (done, ended) = oneshot::channel();
        self.send(Msg::Pack(pack, Some(done))).await?;
        let _ = ended.await;
        Ok(())
    }

    fn send_blocking(&self, msg: Msg) -> Result<()> {
        self.tx.blocking_send(msg).map_err(|_| writer_stopped())
    }

    async fn send(&self, msg: Msg) -> Result<()> {
        self.tx.send(msg).await.map_err(|_| writer_stopped())
    }

    /// The open packs, taken for a flush.
    fn take_open_packs(&self) -> [Option<PendingPack>; 2] {
        let mut st = lock(&self.state);
        [st.data.take(), st.meta.take()]
    }

    /// Writes pending packs and an index blob for everything written so far, then deletes
    /// the session marker. Returns the index blob ID (None when nothing was written).
    ///
    /// Blocking: waits for the I/O task through a oneshot; call from outside the runtime
    /// (see [`flush_async`](Self::flush_async)).
    pub fn flush(&self) -> Result<Option<BlobId>> {
        let _g = self.flush_lock.blocking_lock();
        for p in self.take_open_packs().into_iter().flatten() {
            if self.shared.failed.load(Ordering::Acquire) {
                break; // a failed session writes no more packs (the flush reports why)
            }
            if let Some(pack) = finish_pack(self.reader(), p)? {
                self.send_blocking(Msg::Pack(pack, None))?;
            }
        }
        let (reply, rx) = oneshot::channel();
        self.send_blocking(Msg::Flush(reply))?;
        rx.blocking_recv().map_err(|_| writer_stopped())?
    }

    /// [`flush`](Self::flush) for async callers.
    pub async fn flush_async(&self) -> Result<Option<BlobId>> {
        let _g = self.flush_lock.lock().await;
        for p in self.take_open_packs().into_iter().flatten() {
            if self.shared.failed.load(Ordering::Acquire) {
                break; // a failed session writes no more packs (the flush reports why)
            }
            let reader = self.reader().clone();
            if let Some(pack) = cpu::run(move || finish_pack(&reader, p)).await? {
                self.send(Msg::Pack(pack, None)).await?;
            }
        }
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Flush(reply)).await?;
        rx.await.map_err(|_| writer_stopped())?
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

/// Finishes a pack (CPU only): local index, padding, postamble. `None` for an empty pack.
fn finish_pack(reader: &ContentReader, pack: PendingPack) -> Result<Option<FinishedPack>> {
    let PendingPack {
        id,
        builder,
        entries,
    } = pack;
    if entries.is_empty() {
        return Ok(None);
    }
    let suffix: [u8; 32] = rand::random();
    let local_index = index::build_v2(entries.iter().cloned(), Some(&suffix))
        .map_err(|e| Error::format(format!("local index of pack {id}"), e))?;
    let iv = reader.hasher().hash(&local_index);
    let encrypted_index = reader
        .cipher()
        .encrypt(iv.as_slice(), &local_index, rand::random())
        .map_err(|e| Error::format(format!("local index of pack {id}"), e))?;
    let mut padding = vec![0u8; 4096];
    rand::Rng::fill(&mut rand::thread_rng(), padding.as_mut_slice());
    let (buf, lead) = builder.finish_aligned(&padding, &encrypted_index, iv.as_slice());
    Ok(Some(FinishedPack {
        id,
        data: Bytes::from(buf).slice(lead..),
        entries,
    }))
}

/// The I/O half of a session (see the module documentation).
struct IoTask {
    repo: Repository,
    storage: Arc<dyn BlobStorage>,
    shared: Arc<Shared>,
    session_id: String,
    session_start: DateTime<Utc>,
    username: String,
    hostname: String,
    marker_written: bool,
}

/// A finished put: the pack's index entries, its outcome, and who waits for it to settle.
type PutResult = (Vec<Info>, Result<()>, Option<oneshot::Sender<()>>);

impl IoTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut puts: JoinSet<PutResult> = JoinSet::new();
        loop {
            // A put slot first, then the next message: at most QUEUED_PACKS packs wait in
            // the channel and PUT_CONCURRENCY are being written.
            while puts.len() >= PUT_CONCURRENCY {
                if let Some(r) = puts.join_next().await {
                    self.settle(r);
                }
            }
            let msg = tokio::select! {
                biased;
                Some(r) = puts.join_next(), if !puts.is_empty() => {
                    self.settle(r);
                    continue;
                }
                msg = rx.recv() => msg,
            };
            match msg {
                Some(Msg::Pack(pack, done)) => self.start_put(&mut puts, pack, done).await,
                Some(Msg::Flush(reply)) => {
                    while let Some(r) = puts.join_next().await {
                        self.settle(r);
                    }
                    let _ = reply.send(self.flush().await);
                }
                None => break,
            }
        }
        // The writer is gone: let running puts finish (their packs stay unreferenced).
        while let Some(r) = puts.join_next().await {
            self.settle(r);
        }
    }

    async fn start_put(
        &mut self,
        puts: &mut JoinSet<PutResult>,
        pack: FinishedPack,
        done: Option<oneshot::Sender<()>>,
    ) {
        if self.shared.failed.load(Ordering::Acquire) {
            return; // the session failed: nothing more is written
        }
        if !self.marker_written {
            if let Err(e) = self.write_marker().await {
                self.shared.fail(e);
                return;
            }
            self.marker_written = true;
        }
        let storage = self.storage.clone();
        // A `q` pack is also kept in the local cache once durable: the next run reads the
        // directories and manifests it holds without a GET (kopia fetches it back instead;
        // see `crate::cache`). Every content cut from it is still authenticated on use.
        let cache = self
            .repo
            .cache()
            .filter(|_| metapacks::is_metadata_pack(&pack.id))
            .cloned();
        puts.spawn(async move {
            let keep = cache.map(|c| (c, pack.id.to_string(), pack.data.clone()));
            let r = storage.put(&pack.id, pack.data).await;
            if let (Ok(()), Some((c, key, data))) = (&r, keep) {
                // Best effort: a cache that cannot store costs a GET next time.
                let _ = tokio::task::spawn_blocking(move || c.put_metadata_pack(&key, &data)).await;
            }
            (pack.entries, r, done)
        });
    }

    /// Records a finished put: its entries become indexable, or the session fails.
    fn settle(&self, r: std::result::Result<PutResult, tokio::task::JoinError>) {
        // The waiting worker resumes only after the outcome is recorded, so its next call
        // sees a failure. (A panicked put drops its sender, which also wakes the worker.)
        match r {
            Ok((entries, Ok(()), done)) => {
                self.shared
                    .stats
                    .packs_written
                    .fetch_add(1, Ordering::Relaxed);
                lock(&self.shared.committed).extend(entries);
                if let Some(d) = done {
                    let _ = d.send(());
                }
            }
            Ok((_, Err(e), done)) => {
                self.shared.fail(e);
                if let Some(d) = done {
                    let _ = d.send(());
                }
            }
            Err(e) => self
                .shared
                .fail(Error::Cancelled(format!("pack write failed: {e}"))),
        }
    }

    async fn write_marker(&self) -> Result<()> {
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
        let reader = self.repo.content_reader();
        let (blob_id, data) = encryption::encrypt_blob(
            reader.hasher(),
            reader.cipher(),
            "s",
            Some(&self.session_id),
            &plain,
            rand::random(),
        )
        .map_err(|e| Error::format("session marker", e))?;
        self.storage.put(&blob_id, Bytes::from(data)).await
    }

    /// Every pack sent before the flush is settled: writes the index blob of the durable
    /// ones, then deletes the marker. A failed session still indexes what is durable (so
    /// the next run reuses it), keeps its marker and reports the failure.
    async fn flush(&mut self) -> Result<Option<BlobId>> {
        let entries = std::mem::take(&mut *lock(&self.shared.committed));
        let written = if entries.is_empty() {
            Ok(None)
        } else {
            self.write_index(entries).await.map(Some)
        };
        self.shared.check()?;
        let blob_id = written?;
        if blob_id.is_some() && self.marker_written {
            self.delete_marker().await?;
            self.marker_written = false;
        }
        Ok(blob_id)
    }

    async fn write_index(&self, entries: Vec<Info>) -> Result<BlobId> {
        let reader = self.repo.content_reader().clone();
        let session_id = self.session_id.clone();
        let (name, data, plain) = cpu::run(move || {
            let plain =
                index::build_v2(entries, None).map_err(|e| Error::format("session index", e))?;
            let (name, data) = encryption::encrypt_blob(
                reader.hasher(),
                reader.cipher(),
                "",
                Some(&format!("{session_id}-c1")),
                &plain,
                rand::random(),
            )
            .map_err(|e| Error::format("session index", e))?;
            Ok((name, data, plain))
        })
        .await?;
        let write_epoch = self.current_write_epoch().await?;
        let blob_id = BlobId::new(format!(
            "{}{name}",
            epoch::uncompacted_blob_prefix(write_epoch)
        ));
        self.storage.put(&blob_id, Bytes::from(data)).await?;
        // Like kopia (`committedContentIndex.addIndexBlob` after a flush), the index blob
        // just written goes into the local cache: the next run lists it and needs no GET.
        if let Some(c) = self.repo.cache().cloned() {
            let key = blob_id.to_string();
            let _ = tokio::task::spawn_blocking(move || c.put_index_blob(&key, &plain)).await;
        }
        Ok(blob_id)
    }

    async fn current_write_epoch(&self) -> Result<u64> {
        let markers = self.storage.list("xe").await?;
        Ok(markers
            .iter()
            .filter_map(|m| epoch::epoch_number_from_blob_id(m.id.as_str()))
            .max()
            .unwrap_or(0))
    }

    async fn delete_marker(&self) -> Result<()> {
        let suffix = format!("-{}", self.session_id);
        for m in self.storage.list("s").await? {
            if m.id.as_str().ends_with(&suffix) {
                self.storage.delete(&m.id).await?;
            }
        }
        Ok(())
    }
}

/// A copy of a session failure for every caller that observes it (errors are not `Clone`):
/// the same variant where it can be rebuilt, else the same kind and message.
fn duplicate(e: &Error) -> Error {
    match e {
        Error::Storage {
            storage,
            op,
            target,
            kind,
            message,
        } => Error::Storage {
            storage: storage.clone(),
            op,
            target: target.clone(),
            kind: *kind,
            message: message.clone(),
        },
        Error::Io { path, source } => Error::Io {
            path: path.clone(),
            source: match source.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(source.kind(), source.to_string()),
            },
        },
        Error::BlobNotFound { storage, id } => Error::BlobNotFound {
            storage: storage.clone(),
            id: id.clone(),
        },
        Error::Cancelled(m) => Error::Cancelled(m.clone()),
        Error::Corrupt(m) => Error::Corrupt(m.clone()),
        Error::Config(m) => Error::Config(m.clone()),
        Error::NotFound(m) => Error::NotFound(m.clone()),
        Error::AlreadyExists(m) => Error::AlreadyExists(m.clone()),
        Error::Unsupported(m) => Error::Unsupported(m.clone()),
        other => Error::Storage {
            storage: "content writer".into(),
            op: "put",
            target: String::new(),
            kind: other.kind(),
            message: other.to_string(),
        },
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::blob::faulty::{FaultyStorage, Op};
    use crate::blob::memory::MemoryStorage;
    use crate::clock::SystemClock;
    use crate::initialize::{CreateOptions, create_repository};
    use crate::repo::OpenOptions;
    use rayon::prelude::*;

    const PW: &str = "writer-test";

    async fn setup() -> (Arc<FaultyStorage<MemoryStorage>>, Repository) {
        let storage = Arc::new(FaultyStorage::new(MemoryStorage::new(Arc::new(
            SystemClock,
        ))));
        let mut opts = CreateOptions::new("u", "h");
        opts.max_pack_size = 1 << 20;
        let repo = create_repository(storage.clone(), PW, &opts, OpenOptions::default())
            .await
            .unwrap();
        (storage, repo)
    }

    fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
        use rand::{RngCore, SeedableRng};
        let mut v = vec![0u8; len];
        rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
        v
    }

    async fn ids(storage: &MemoryStorage, prefix: &str) -> Vec<BlobId> {
        storage
            .list(prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn packs_from_many_workers_are_indexed_after_they_are_durable() {
        let (storage, repo) = setup().await;
        let cw =
            ContentWriter::new(repo.clone(), tokio::runtime::Handle::current(), "u", "h").unwrap();
        let cw2 = cw.clone();
        // ~6 MiB of incompressible contents from rayon workers: several full packs.
        let written: Vec<(ContentId, Vec<u8>)> = tokio::task::spawn_blocking(move || {
            (0..96u64)
                .into_par_iter()
                .map(|i| {
                    let data = random_bytes(i, 64 << 10);
                    let id = cw2.write_content(&data, None, None).unwrap();
                    (id, data)
                })
                .collect()
        })
        .await
        .unwrap();
        let meta = cw
            .write_content_async(b"a listing".to_vec(), Some(b'k'), None)
            .await
            .unwrap();
        let index = cw.flush_async().await.unwrap().unwrap();
        assert!(index.as_str().starts_with("xn"), "{index}");

        let inner = storage.inner();
        let packs = ids(inner, "p").await;
        assert!(packs.len() >= 5, "{packs:?}");
        // One metadata pack from `create` (its manifests), one from this session.
        assert_eq!(ids(inner, "q").await.len(), 2);
        assert_eq!(
            cw.stats.packs_written.load(Ordering::Relaxed),
            packs.len() as u64 + 1
        );
        assert!(ids(inner, "s").await.is_empty(), "session marker left");

        let reopened = Repository::open(storage.clone(), PW, OpenOptions::default())
            .await
            .unwrap();
        for (id, data) in &written {
            assert_eq!(&reopened.read_content(id).await.unwrap(), data);
        }
        assert_eq!(reopened.read_content(&meta).await.unwrap(), b"a listing");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_pack_put_fails_the_writers_and_the_flush() {
        let (storage, repo) = setup().await;
        let indexes_before = ids(storage.inner(), "xn").await;
        storage.fail_permanently(Op::Put, "p", ErrorKind::Other);
        let cw =
            ContentWriter::new(repo.clone(), tokio::runtime::Handle::current(), "u", "h").unwrap();
        let cw2 = cw.clone();
        let err = tokio::task::spawn_blocking(move || {
            for i in 0..1000u64 {
                cw2.write_content(&random_bytes(i, 64 << 10), None, None)?;
            }
            Ok::<(), Error>(())
        })
        .await
        .unwrap()
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other, "{err}");
        assert!(err.to_string().contains("injected Other fault"), "{err}");

        let err = cw.flush_async().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Other, "{err}");
        // Nothing became durable: no index blob names the failed packs.
        assert_eq!(ids(storage.inner(), "xn").await, indexes_before);
        assert!(ids(storage.inner(), "p").await.is_empty());
    }
}
