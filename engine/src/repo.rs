//! An open repository: format, keys, live indexes, and verified reads of contents, objects,
//! manifests and snapshots.

use std::collections::BTreeMap;
use std::sync::Arc;

use arkiv_format::compression;
use arkiv_format::encryption::ContentCipher;
use arkiv_format::hashing::Hasher;
use arkiv_format::ids::{BlobId, ContentId, ManifestId, ObjectId};
use arkiv_format::index::Info;
use arkiv_format::indirect::IndirectObject;
use arkiv_format::manifest::{self, ManifestEntry};
use arkiv_format::repo_format::{self, OpenedFormat, RepositoryConfig};
use arkiv_format::snapshot::{DirManifest, SnapshotManifest};

use crate::blob::BlobStorage;
use crate::cache::Cache;
use crate::clock::{SharedClock, SystemClock};
use crate::content::metapacks::{self, MetadataPacks};
use crate::content::{ContentReader, IndexSet};
use crate::{Error, ErrorKind, Result, cpu};

/// Name of the format blob.
pub const FORMAT_BLOB_ID: &str = "kopia.repository";
/// Name of the blob-retention config blob.
pub const BLOBCFG_BLOB_ID: &str = "kopia.blobcfg";
/// Largest object-level (`Z`) decompressed chunk we accept (splitter max is 16 MiB).
const MAX_Z_CHUNK: usize = 64 << 20;
/// Objects larger than this are not read into memory whole.
pub const MAX_IN_MEMORY_OBJECT: u64 = 256 << 20;

/// Options for opening a repository.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Clock used for timestamps and ages.
    pub clock: SharedClock,
    /// Directory of the disposable local cache (`None`: no cache).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Size bounds of the local cache.
    pub cache_limits: crate::cache::CacheLimits,
    /// How long listings of the index prefixes are kept in the local cache (kopia's
    /// `maxListCacheDuration`; see [`crate::blob::listcache`]). Zero (the default, as for
    /// a repository kopia opens through its API) caches none.
    pub list_cache_duration: std::time::Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            clock: Arc::new(SystemClock),
            cache_dir: None,
            cache_limits: crate::cache::CacheLimits::default(),
            list_cache_duration: std::time::Duration::ZERO,
        }
    }
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repository {
    storage: Arc<dyn BlobStorage>,
    format: Arc<OpenedFormat>,
    contents: ContentReader,
    indexes: Arc<IndexSet>,
    clock: SharedClock,
    cache: Option<Arc<Cache>>,
    /// Set once a writer on this index view folded the manifest contents into one
    /// ([`crate::manifest::compact_into`]): the view does not see that content, so a second
    /// writer on it would fold the same contents again. A refresh clears it.
    manifests_compacted: Arc<std::sync::atomic::AtomicBool>,
}

/// One chunk of an object, resolved through indirection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Offset of the chunk in the object.
    pub start: u64,
    /// Length of the chunk's data.
    pub length: u64,
    /// The chunk's object ID (direct: a content, possibly `Z`).
    pub object: ObjectId,
}

/// Manifest contents read at once ([`Repository::manifests_in`]); kopia's
/// `manifestLoadParallelism` (`repo/manifest/committed_manifest_manager.go`) is 8 as well.
pub const MANIFEST_LOAD_PARALLELISM: usize = 8;

/// A snapshot manifest with its manifest ID.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The manifest ID (what `snapshot list` prints as ID).
    pub id: ManifestId,
    /// The manifest payload.
    pub manifest: SnapshotManifest,
    /// The manifest entry's labels.
    pub labels: BTreeMap<String, String>,
}

impl Repository {
    /// Opens the repository stored in `storage` with `password`.
    ///
    /// Errors: [`Error::RepositoryNotFound`] when there is no `kopia.repository`,
    /// [`Error::WrongPassword`], `Unsupported` for ECC, unknown versions or algorithms, and
    /// `Corrupt` for unreadable format or index blobs.
    pub async fn open(
        storage: Arc<dyn BlobStorage>,
        password: &str,
        options: OpenOptions,
    ) -> Result<Repository> {
        let location = storage.describe();
        let format_bytes = match storage.get(&BlobId::from(FORMAT_BLOB_ID), None).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::RepositoryNotFound {
                    location,
                    detail: format!(
                        "no {FORMAT_BLOB_ID} blob (not a kopia repository, or not initialised)"
                    ),
                });
            }
            Err(e) => return Err(e),
        };
        let password = password.to_owned();
        let loc = location.clone();
        let format = cpu::run(move || {
            repo_format::open_format(&format_bytes, &password).map_err(|e| match e {
                arkiv_format::Error::WrongPassword => Error::WrongPassword { location: loc },
                e => Error::format(FORMAT_BLOB_ID, e),
            })
        })
        .await?;
        format
            .config
            .validate()
            .map_err(|e| Error::format(format!("repository at {location}"), e))?;
        let cfg = &format.config;
        let hasher = Hasher::new(
            cfg.hash_algorithm()
                .map_err(|e| Error::format("repository hash", e))?,
            &cfg.hmac_secret,
        )
        .map_err(|e| Error::format("repository hash", e))?;
        let cipher = ContentCipher::new(
            cfg.encryption_algorithm()
                .map_err(|e| Error::format("repository encryption", e))?,
            &cfg.master_key,
        )
        .map_err(|e| Error::format("repository encryption", e))?;
        let cache = options
            .cache_dir
            .as_deref()
            .and_then(|dir| open_cache(dir, &format, options.cache_limits));
        let storage: Arc<dyn BlobStorage> = match &cache {
            Some(c) if !options.list_cache_duration.is_zero() => {
                Arc::new(crate::blob::listcache::ListCachingStorage::new(
                    storage,
                    c.clone(),
                    options.clock.clone(),
                    options.list_cache_duration,
                ))
            }
            _ => storage,
        };
        let epochs = cfg.epoch_parameters.enabled;
        let indexes =
            match IndexSet::load(storage.as_ref(), epochs, &cipher, cache.as_deref()).await {
                // A cached listing may name an index blob that maintenance has since removed:
                // drop the cached listings and list again (kopia flushes its list cache and
                // retries the same way).
                Err(e) if e.kind() == ErrorKind::NotFound && cache.is_some() => {
                    forget_listings(cache.as_deref());
                    IndexSet::load(storage.as_ref(), epochs, &cipher, cache.as_deref()).await?
                }
                r => r?,
            };
        let metadata_packs = Arc::new(MetadataPacks::new(
            metapacks::DEFAULT_MEMORY_BYTES,
            cache.clone(),
        ));
        Ok(Repository {
            contents: ContentReader::new(storage.clone(), hasher, cipher)
                .with_metadata_packs(Some(metadata_packs))
                .with_content_cache(cache.clone()),
            storage,
            format: Arc::new(format),
            indexes: Arc::new(indexes),
            clock: options.clock,
            cache,
            manifests_compacted: Arc::default(),
        })
    }

    /// Re-reads the index set (after another writer or maintenance changed it).
    pub async fn refresh(&mut self) -> Result<()> {
        // A refresh exists to see what others wrote: never from a cached listing.
        forget_listings(self.cache.as_deref());
        let idx = IndexSet::load(
            self.storage.as_ref(),
            self.config().epoch_parameters.enabled,
            self.contents.cipher(),
            self.cache.as_deref(),
        )
        .await?;
        self.indexes = Arc::new(idx);
        self.manifests_compacted = Arc::default();
        Ok(())
    }

    /// This repository as `verify` reads it: metadata packs from storage only (held in
    /// memory for this handle, never taken from the local cache: verify must see the
    /// repository's bytes, not a local copy), data contents from storage only, and every plaintext re-hashed against its
    /// content ID on top of the AEAD check.
    pub fn for_verification(&self) -> Repository {
        let mut r = self.clone();
        r.contents = r
            .contents
            .clone()
            .with_metadata_packs(Some(Arc::new(MetadataPacks::new(
                metapacks::DEFAULT_MEMORY_BYTES,
                None,
            ))))
            .with_content_cache(None)
            .with_hash_check(true);
        r
    }

    /// The content reader (storage, hash, cipher and metadata pack cache).
    pub fn contents(&self) -> &ContentReader {
        &self.contents
    }

    /// The local cache, when one could be opened.
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.cache.as_ref()
    }

    /// The storage backend.
    pub fn storage(&self) -> &Arc<dyn BlobStorage> {
        &self.storage
    }

    /// The decrypted repository configuration.
    pub fn config(&self) -> &RepositoryConfig {
        &self.format.config
    }

    /// The format blob and derived format key.
    pub fn format(&self) -> &OpenedFormat {
        &self.format
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The content reader (hasher, cipher, storage).
    pub fn content_reader(&self) -> &ContentReader {
        &self.contents
    }

    /// The merged index set.
    pub fn indexes(&self) -> &IndexSet {
        &self.indexes
    }

    /// The winning index entry of a content (`None` if absent).
    pub fn content_info(&self, id: &ContentId) -> Result<Option<Info>> {
        self.indexes.lookup(id)
    }

    /// Reads and verifies a content.
    pub async fn read_content(&self, id: &ContentId) -> Result<Vec<u8>> {
        let info = self
            .indexes
            .lookup(id)?
            .ok_or(Error::ContentNotFound(*id))?;
        self.contents.read(&info).await
    }

    /// Reads the data of a direct object (one content; `Z` decompressed).
    async fn read_direct(&self, oid: &ObjectId) -> Result<Vec<u8>> {
        let data = self.read_content(&oid.content_id()).await?;
        if oid.is_compressed() {
            let oid = *oid;
            cpu::run(move || {
                compression::decompress(&data, None, MAX_Z_CHUNK)
                    .map_err(|e| Error::format(format!("object {oid}"), e))
            })
            .await
        } else {
            Ok(data)
        }
    }

    /// Resolves an object into its chunks (following every level of indirection).
    pub async fn object_chunks(&self, oid: &ObjectId) -> Result<Vec<Chunk>> {
        let Some(list_oid) = oid.index_object() else {
            // A direct object: one chunk whose length we only learn by reading it; use the
            // index entry's original length (exact for content-level compression; for `Z`
            // chunks the reader checks the real length).
            let len = if oid.is_compressed() {
                self.read_direct(oid).await?.len() as u64
            } else {
                let info = self
                    .indexes
                    .lookup(&oid.content_id())?
                    .ok_or(Error::ContentNotFound(oid.content_id()))?;
                u64::from(info.original_length)
            };
            return Ok(vec![Chunk {
                start: 0,
                length: len,
                object: *oid,
            }]);
        };
        let list_bytes = Box::pin(self.read_object(&list_oid)).await?;
        let list = IndirectObject::parse(&list_bytes)
            .map_err(|e| Error::format(format!("indirect object {oid}"), e))?;
        let mut chunks = Vec::with_capacity(list.entries.len());
        for e in &list.entries {
            if e.object.indirection() > 0 {
                // Nested indirect entries (concatenated objects) expand in place.
                let inner = Box::pin(self.object_chunks(&e.object)).await?;
                let inner_len: u64 = inner.iter().map(|c| c.length).sum();
                if inner_len != e.length {
                    return Err(Error::Corrupt(format!(
                        "object {oid}: entry {} claims {} bytes but holds {inner_len}",
                        e.object, e.length
                    )));
                }
                chunks.extend(inner.into_iter().map(|c| Chunk {
                    start: c.start + e.start,
                    ..c
                }));
            } else {
                chunks.push(Chunk {
                    start: e.start,
                    length: e.length,
                    object: e.object,
                });
            }
        }
        Ok(chunks)
    }

    /// Reads one chunk and checks its length.
    pub async fn read_chunk(&self, chunk: &Chunk) -> Result<Vec<u8>> {
        let data = self.read_direct(&chunk.object).await?;
        if data.len() as u64 != chunk.length {
            return Err(Error::Corrupt(format!(
                "chunk {} has {} bytes, its object list says {}",
                chunk.object,
                data.len(),
                chunk.length
            )));
        }
        Ok(data)
    }

    /// Reads a whole object into memory (directory listings, chunk lists, small files).
    pub async fn read_object(&self, oid: &ObjectId) -> Result<Vec<u8>> {
        if oid.indirection() == 0 {
            return self.read_direct(oid).await;
        }
        let chunks = self.object_chunks(oid).await?;
        let total: u64 = chunks.iter().map(|c| c.length).sum();
        if total > MAX_IN_MEMORY_OBJECT {
            return Err(Error::Unsupported(format!(
                "object {oid} is {total} bytes, too large to read into memory"
            )));
        }
        let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for c in &chunks {
            out.extend_from_slice(&self.read_chunk(c).await?);
        }
        Ok(out)
    }

    /// Reads and decodes a directory listing.
    pub async fn read_dir(&self, oid: &ObjectId) -> Result<DirManifest> {
        let bytes = self.read_object(oid).await?;
        DirManifest::parse(&bytes).map_err(|e| Error::format(format!("directory {oid}"), e))
    }

    /// Loads every live manifest (merged by ID, tombstones applied).
    pub async fn manifests(&self) -> Result<BTreeMap<ManifestId, ManifestEntry>> {
        let infos = self.manifest_contents()?;
        self.manifests_in(&infos).await
    }

    /// The index entries of the live manifest contents (`m` prefix, not deleted).
    pub fn manifest_contents(&self) -> Result<Vec<Info>> {
        self.indexes
            .iter(false)
            .filter(|r| {
                r.as_ref()
                    .map_or(true, |i| i.content_id.prefix() == Some(b'm'))
            })
            .collect()
    }

    /// Claims the one manifest compaction this index view allows; false when a writer on it
    /// already did it.
    pub(crate) fn claim_manifest_compaction(&self) -> bool {
        !self
            .manifests_compacted
            .swap(true, std::sync::atomic::Ordering::SeqCst)
    }

    /// The live manifests held in `infos` (merged by ID, tombstones applied). The contents
    /// are read [`MANIFEST_LOAD_PARALLELISM`] at a time, like kopia's manifest manager: on a
    /// cold cache each one may be a request of its own.
    pub async fn manifests_in(
        &self,
        infos: &[Info],
    ) -> Result<BTreeMap<ManifestId, ManifestEntry>> {
        use futures::StreamExt;
        let decoded: Vec<Vec<ManifestEntry>> = futures::stream::iter(infos)
            .map(|info| async move {
                let plain = self.contents.read(info).await?;
                manifest::decode_manifest_content(&plain)
                    .map_err(|e| Error::format(format!("manifest content {}", info.content_id), e))
            })
            .buffered(MANIFEST_LOAD_PARALLELISM)
            .collect::<Vec<Result<_>>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        Ok(manifest::merge_entries(decoded.into_iter().flatten()))
    }

    /// Every snapshot manifest, sorted by start time then ID.
    pub async fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let manifests = self.manifests().await?;
        let mut out = Vec::new();
        for (id, entry) in manifests {
            let labels = entry.labels.clone().unwrap_or_default();
            if labels.get("type").map(String::as_str) != Some("snapshot") {
                continue;
            }
            let Some(data) = entry.data.as_ref() else {
                continue;
            };
            let mut manifest = SnapshotManifest::parse(data.get().as_bytes())
                .map_err(|e| Error::format(format!("snapshot manifest {id}"), e))?;
            manifest.id = id.clone();
            out.push(Snapshot {
                id,
                manifest,
                labels,
            });
        }
        out.sort_by(|a, b| {
            a.manifest
                .start_time
                .cmp(&b.manifest.start_time)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }
}

/// Drops the listings cached by [`crate::blob::listcache`].
fn forget_listings(cache: Option<&Cache>) {
    if let Some(c) = cache {
        c.remove_kv_prefix(crate::blob::listcache::KV_PREFIX);
    }
}

/// Opens the repository's local cache; any failure means "run uncached" (logged).
fn open_cache(
    dir: &std::path::Path,
    format: &OpenedFormat,
    limits: crate::cache::CacheLimits,
) -> Option<Arc<Cache>> {
    let blob = &format.blob;
    let key = arkiv_format::encryption::derive_key32(
        &format.config.hmac_secret,
        &blob.unique_id,
        b"arkiv-local-cache-integrity",
    )
    .ok()?;
    match Cache::open(dir, &hex::encode(&blob.unique_id), limits, key) {
        Ok(c) => {
            if c.rebuilt() {
                tracing::info!(
                    "local cache at {} was stale and has been rebuilt",
                    dir.display()
                );
            }
            Some(Arc::new(c))
        }
        Err(e) => {
            tracing::warn!("running without the local cache ({}): {e}", dir.display());
            None
        }
    }
}
