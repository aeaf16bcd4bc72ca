//! Snapshot upload: walk a directory, write file data, directory listings and the snapshot
//! manifest exactly as kopia's uploader would (same chunks, content IDs, object IDs and
//! listing JSON), in parallel.
//!
//! Kopia behaviours reproduced (kopia `snapshot/upload/upload.go`,
//! `snapshot/snapshotfs/dir_manifest_builder.go`):
//! * A non-directory whose size, mtime, mode and owner equal the entry of the same name in
//!   the previous snapshot's listing is not read again; its object ID is reused ("cached").
//! * Stats: `fileCount` counts files actually hashed, `cachedFiles`/`nonCachedFiles` the split,
//!   `totalSize` the size of both; `dirCount` every directory including the root.
//! * Directory summaries: entry counts, sizes, newest mtime of any entry (directories
//!   included) or child summary; an empty directory's `maxTime` is its own mtime; failed
//!   entries sorted by path and, like kopia 0.20–0.23, not truncated
//!   (`arkiv_format::snapshot::DirManifestBuilder`).
//! * Unreadable files and subdirectories are recorded as failed entries (fatal errors) and
//!   the snapshot completes; an unreadable root fails the snapshot.
//! * Sockets, FIFOs and devices are skipped silently (kopia's `ignoreUnknownTypes` default);
//!   with `ignoreUnknownTypes: false` they are failed entries.
//! * The snapshot applies the source's policy tree ([`crate::policy::PolicyTree`]) like kopia:
//!   ignore rules, dot-ignore files, `maxFileSize`, `oneFileSystem`, `CACHEDIR.TAG`
//!   ([`super::ignore`]); per-file compression (`compressorName`, `onlyCompress` /
//!   `neverCompress`, `minSize` / `maxSize`) and splitter from the file's node; each
//!   listing's metadata compressor from its directory's node; `errorHandling`
//!   (`ignoreFileErrors` from the directory's node, `ignoreDirectoryErrors` and
//!   `ignoreUnknownTypes` from the entry's node: ignored errors are recorded as ignored
//!   failed entries and do not count as errors).
//! * `excludedFileCount` / `excludedDirCount` / `excludedTotalSize` count what kopia's ignore
//!   callback counts: one per rule level that concluded "ignore" and one per cache directory,
//!   never a size or device exclusion. kopia 0.20.1 runs that callback in its size-estimation
//!   pass too and so records twice these numbers (repo-c: 64 / 26); arkiv has no estimation
//!   pass and records them once.
//!
//! Parallelism: a dedicated rayon pool (`parallel` threads) processes entries of each
//! directory with `par_iter` (nested directories included); the async caller awaits it
//! through a oneshot. Storage stays on tokio: the workers hand full packs to the content
//! writer's I/O task over its bounded channel, and ask for previous listings with a
//! request spawned on the runtime whose answer comes back on a oneshot (no `block_on`).
//! Results are collected in order, so listings are deterministic. The snapshot manifest is
//! written with plain async calls once the tree is done.
//!
//! Cancellation: [`UploadOptions::cancel`] is checked before every entry and on every read
//! of file data; a cancelled upload fails as [`Error::Cancelled`] after making what it
//! wrote reusable (its packs are indexed).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io::{Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arkiv_format::compression::CompressionAlgorithm;
use arkiv_format::gojson::go_string_lossy;
use arkiv_format::ids::{ManifestId, ObjectId};
use arkiv_format::snapshot::{
    DirEntry, DirManifest, DirManifestBuilder, EntryType, SnapshotManifest, SnapshotStats,
    SourceInfo, go_mode_from_posix,
};
use arkiv_format::splitter::SplitterKind;
use chrono::{DateTime, Utc};
use rayon::prelude::*;
use tokio::sync::oneshot;
/// The token that stops an upload ([`UploadOptions::cancel`]).
pub use tokio_util::sync::CancellationToken;

use super::ignore::{self, Level, Reason};
use super::tree::Ancestors;
use crate::content::writer::ContentWriter;
use crate::manifest::ManifestBatch;
use crate::object::{ObjectWriteOptions, write_file_object, write_object_bytes};
use crate::policy::PolicyTree;
use crate::repo::Repository;
use crate::{Error, Result};

/// Knobs of a snapshot.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UploadOptions {
    /// The source identity recorded in the manifest.
    pub source: SourceInfo,
    /// Free-form description.
    pub description: String,
    /// Tags (`tag:key` → value).
    pub tags: BTreeMap<String, String>,
    /// Compression of file data (`None` = none), for every file unless
    /// `compression_from_policy`.
    pub compression: Option<CompressionAlgorithm>,
    /// Compression of directory listings and chunk lists, for every listing unless
    /// `compression_from_policy`.
    pub metadata_compression: Option<CompressionAlgorithm>,
    /// Take each file's compressor and each listing's metadata compressor from the policy
    /// tree, like kopia (a name arkiv cannot write falls back to `zstd-fastest` with a
    /// warning). `false`: `compression` and `metadata_compression` everywhere.
    pub compression_from_policy: bool,
    /// The policy tree to apply; `None`: the source's tree, read from the repository.
    pub policy_tree: Option<PolicyTree>,
    /// Worker threads (split, hash, compress, encrypt, read).
    pub parallel: usize,
    /// Username written into the session marker.
    pub username: String,
    /// Hostname written into the session marker.
    pub hostname: String,
    /// Share (0–100) of unchanged files re-hashed anyway (kopia's `--force-hash`).
    pub force_hash_percent: f64,
    /// Cancel to stop the upload early (SIGTERM): the snapshot fails as cancelled.
    pub cancel: CancellationToken,
}

impl UploadOptions {
    /// Defaults for a source: no data compression, zstd-fastest metadata, one worker per CPU.
    pub fn new(source: SourceInfo) -> Self {
        UploadOptions {
            username: source.user_name.clone(),
            hostname: source.host.clone(),
            source,
            description: String::new(),
            tags: BTreeMap::new(),
            compression: None,
            metadata_compression: Some(CompressionAlgorithm::ZstdFastest),
            compression_from_policy: false,
            policy_tree: None,
            parallel: std::thread::available_parallelism().map_or(2, |n| n.get()),
            force_hash_percent: 0.0,
            cancel: CancellationToken::new(),
        }
    }
}

/// Live counters, readable while the upload runs (for progress lines).
#[derive(Debug, Default)]
pub struct UploadProgress {
    /// Files hashed (read) so far.
    pub hashed_files: AtomicU64,
    /// Bytes hashed so far.
    pub hashed_bytes: AtomicU64,
    /// Files reused from the previous snapshot.
    pub cached_files: AtomicU64,
    /// Bytes of those files.
    pub cached_bytes: AtomicU64,
    /// Directories finished.
    pub dirs: AtomicU64,
    /// Entries that could not be read.
    pub errors: AtomicU64,
}

/// What a finished snapshot produced.
#[derive(Debug, Clone)]
pub struct UploadResult {
    /// The snapshot's manifest ID.
    pub manifest_id: ManifestId,
    /// The manifest as written.
    pub manifest: SnapshotManifest,
    /// New contents written (not deduplicated).
    pub new_contents: u64,
    /// Plaintext bytes of new contents.
    pub new_bytes: u64,
    /// Encrypted bytes added to packs.
    pub packed_bytes: u64,
    /// Pack blobs written.
    pub packs: u64,
    /// What the policies left out, sorted by path (entries inside an excluded directory are
    /// not listed).
    pub excluded: Vec<Exclusion>,
}

/// One entry the policies left out.
#[derive(Debug, Clone)]
pub struct Exclusion {
    /// Path relative to the snapshot root.
    pub path: String,
    /// File, directory or symlink.
    pub entry_type: EntryType,
    /// `lstat` size.
    pub size: i64,
    /// Why.
    pub reason: Reason,
}

struct Ctx {
    cw: Arc<ContentWriter>,
    rt: tokio::runtime::Handle,
    repo: Repository,
    file_opts: ObjectWriteOptions,
    meta_opts: ObjectWriteOptions,
    symlink_opts: ObjectWriteOptions,
    progress: Arc<UploadProgress>,
    stats: Stats,
    force_hash_percent: f64,
    cancel: CancellationToken,
    from_policy: bool,
    excluded: std::sync::Mutex<Vec<Exclusion>>,
    warned: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

#[derive(Default)]
struct Stats {
    total_size: AtomicU64,
    file_count: AtomicU64,
    cached_files: AtomicU64,
    non_cached_files: AtomicU64,
    dir_count: AtomicU64,
    error_count: AtomicU64,
    ignored_error_count: AtomicU64,
    excluded_files: AtomicU64,
    excluded_dirs: AtomicU64,
    excluded_size: AtomicU64,
}

enum Child {
    Entry(DirEntry),
    Failed {
        path: String,
        error: String,
        ignored: bool,
    },
    Skipped,
}

/// Snapshots `dir` into `repo`; `previous` is the root entry of the previous snapshot of the
/// same source (for incremental reuse). The manifest and everything it references are
/// durable when this returns.
pub async fn snapshot_directory(
    repo: &Repository,
    dir: &Path,
    previous: Option<DirEntry>,
    opts: UploadOptions,
    progress: Arc<UploadProgress>,
) -> Result<UploadResult> {
    let rt = tokio::runtime::Handle::current();
    let cfg = repo.config();
    let default_splitter: SplitterKind = cfg
        .splitter_name()
        .parse()
        .map_err(|e| Error::format("repository splitter", e))?;
    let tree = match &opts.policy_tree {
        Some(t) => t.clone(),
        None => crate::policy::policy_tree(repo, &opts.source).await?,
    };
    for u in &tree.effective().unreadable {
        tracing::warn!(
            "policy of {}: unreadable section {u}; treated as empty",
            opts.source
        );
    }
    let cw = ContentWriter::new(repo.clone(), rt.clone(), &opts.username, &opts.hostname)?;
    let base = ObjectWriteOptions {
        prefix: None,
        compression: opts.compression,
        metadata_compression: opts.metadata_compression,
        splitter: default_splitter,
        default_splitter,
    };
    let ctx = Arc::new(Ctx {
        cw: cw.clone(),
        rt: rt.clone(),
        repo: repo.clone(),
        file_opts: base,
        meta_opts: ObjectWriteOptions {
            prefix: Some(b'k'),
            compression: opts.metadata_compression,
            ..base
        },
        symlink_opts: ObjectWriteOptions {
            compression: None,
            ..base
        },
        progress,
        stats: Stats::default(),
        force_hash_percent: opts.force_hash_percent,
        cancel: opts.cancel.clone(),
        from_policy: opts.compression_from_policy,
        excluded: std::sync::Mutex::new(Vec::new()),
        warned: std::sync::Mutex::new(std::collections::BTreeSet::new()),
    });
    let start_time = repo.clock().now();
    let dir = dir.to_path_buf();
    let parallel = opts.parallel.max(1);
    let ctx2 = ctx.clone();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(parallel)
        .thread_name(|i| format!("arkiv-upload-{i}"))
        .build()
        .map_err(|e| Error::Config(format!("cannot start worker threads: {e}")))?;
    let (tx, rx) = oneshot::channel();
    pool.spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            upload_root(&ctx2, &dir, previous, &tree)
        }))
        .unwrap_or_else(|_| {
            Err(Error::Cancelled(
                "upload task failed: a worker panicked".into(),
            ))
        });
        let _ = tx.send(r);
    });
    let root = rx.await.unwrap_or_else(|_| {
        Err(Error::Cancelled(
            "upload task failed: workers stopped".into(),
        ))
    });
    drop(pool);

    let root = match root {
        Ok(r) => r,
        Err(e) => {
            // Make what was written reusable by the next run, then report the failure.
            let _ = cw.flush_async().await;
            return Err(e);
        }
    };
    let end_time = repo.clock().now();
    let s = &ctx.stats;
    let load = |a: &AtomicU64| i32::try_from(a.load(Ordering::Relaxed)).unwrap_or(i32::MAX);
    let manifest = SnapshotManifest {
        id: ManifestId::default(),
        source: opts.source.clone(),
        description: opts.description.clone(),
        start_time,
        end_time,
        stats: SnapshotStats {
            total_size: i64::try_from(s.total_size.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
            excluded_total_size: i64::try_from(s.excluded_size.load(Ordering::Relaxed))
                .unwrap_or(i64::MAX),
            file_count: load(&s.file_count),
            cached_files: load(&s.cached_files),
            non_cached_files: load(&s.non_cached_files),
            dir_count: load(&s.dir_count),
            excluded_file_count: load(&s.excluded_files),
            excluded_dir_count: load(&s.excluded_dirs),
            ignored_error_count: load(&s.ignored_error_count),
            error_count: load(&s.error_count),
        },
        incomplete: String::new(),
        root_entry: Some(root),
        tags: opts.tags.clone(),
        storage_stats: None,
        pins: Vec::new(),
    };
    let payload = arkiv_format::gojson::to_go_json(&manifest)
        .map_err(|e| Error::format("snapshot manifest", e))?;
    let labels = arkiv_format::snapshot::snapshot_labels(&opts.source, &opts.tags);
    let modified = repo.clock().now();
    let mut batch = ManifestBatch::default();
    let manifest_id = batch.put(labels, &payload, modified)?;
    // Kopia's manifest auto-compaction. It saves requests, it is not needed for this
    // snapshot: a manifest content that cannot be read leaves the others as they are.
    let replaced = match crate::manifest::compact_into(repo, &mut batch).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("manifest contents not compacted: {e}");
            Vec::new()
        }
    };
    batch.commit_async(&cw).await?;
    crate::manifest::retire(&cw, &replaced)?;
    cw.flush_async().await?;
    let mut manifest = manifest;
    manifest.id = manifest_id.clone();
    let mut excluded = std::mem::take(
        &mut *ctx
            .excluded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    excluded.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(UploadResult {
        manifest_id,
        manifest,
        new_contents: cw.stats.contents_written.load(Ordering::Relaxed),
        new_bytes: cw.stats.bytes_written.load(Ordering::Relaxed),
        packed_bytes: cw.stats.packed_bytes.load(Ordering::Relaxed),
        packs: cw.stats.packs_written.load(Ordering::Relaxed),
        excluded,
    })
}

fn check_cancel(ctx: &Ctx) -> Result<()> {
    if ctx.cancel.is_cancelled() {
        return Err(Error::Cancelled("snapshot interrupted".into()));
    }
    Ok(())
}

impl Ctx {
    /// Reads a previous snapshot's listing from a worker thread: the read runs on the
    /// runtime and its result comes back on a oneshot.
    fn read_previous_listing(&self, oid: ObjectId) -> Result<DirManifest> {
        let (tx, rx) = oneshot::channel();
        let repo = self.repo.clone();
        self.rt.spawn(async move {
            let _ = tx.send(repo.read_dir(&oid).await);
        });
        rx.blocking_recv()
            .map_err(|_| Error::Cancelled("previous listing read was dropped".into()))?
    }
}

fn upload_root(
    ctx: &Ctx,
    dir: &Path,
    previous: Option<DirEntry>,
    tree: &PolicyTree,
) -> Result<DirEntry> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::Config(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let name = dir
        .file_name()
        .map(|n| go_string_lossy(n.as_bytes()))
        .unwrap_or_else(|| "/".to_owned());
    let prev = previous.filter(|p| p.entry_type == EntryType::Directory);
    upload_dir(
        ctx,
        dir,
        ".",
        &name,
        &meta,
        prev.as_ref(),
        &Ancestors::default(),
        tree,
        &Level::root(),
    )
}

fn mtime_of(m: &std::fs::Metadata) -> DateTime<Utc> {
    DateTime::from_timestamp(m.mtime(), u32::try_from(m.mtime_nsec()).unwrap_or(0))
        .unwrap_or_default()
}

fn base_entry(name: String, entry_type: EntryType, m: &std::fs::Metadata) -> DirEntry {
    DirEntry {
        name,
        entry_type,
        mode: go_mode_from_posix(m.mode() & 0o7777),
        size: 0,
        mtime: mtime_of(m),
        uid: m.uid(),
        gid: m.gid(),
        object: ObjectId::EMPTY,
        summary: None,
    }
}

fn rel_join(parent: &str, name: &str) -> String {
    if parent == "." {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

/// `rel` (`.`, `a/b`) as kopia's rule paths write directories: `""` for the root, `/a/b`.
fn rule_dir(rel: &str) -> String {
    if rel == "." {
        String::new()
    } else {
        format!("/{rel}")
    }
}

impl Ctx {
    fn exclude(&self, rel: &str, entry_type: EntryType, size: i64, reason: Reason) {
        tracing::debug!("excluded {rel}: {reason}");
        self.excluded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Exclusion {
                path: rel.to_owned(),
                entry_type,
                size,
                reason,
            });
    }

    /// kopia's `Stats.AddExcluded`, called `times` times.
    fn count_excluded(&self, is_dir: bool, size: u64, times: u32) {
        let n = u64::from(times);
        if is_dir {
            self.stats.excluded_dirs.fetch_add(n, Ordering::Relaxed);
        } else {
            self.stats.excluded_files.fetch_add(n, Ordering::Relaxed);
            self.stats
                .excluded_size
                .fetch_add(size.saturating_mul(n), Ordering::Relaxed);
        }
    }

    fn warn_once(&self, key: String, msg: impl FnOnce() -> String) {
        let mut w = self
            .warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.insert(key) {
            tracing::warn!("{}", msg());
        }
    }

    /// A compressor name from a policy: `""`/`none` → none; a name arkiv cannot write (or
    /// does not know) → `zstd-fastest`, with one warning per name.
    fn compressor(&self, name: &str, origin: &str) -> Option<CompressionAlgorithm> {
        if name.is_empty() || name == arkiv_format::compression::NONE_NAME {
            return None;
        }
        match CompressionAlgorithm::from_name(name) {
            Some(a) if a.is_supported() => Some(a),
            known => {
                self.warn_once(format!("compressor {name}"), || {
                    let what = if known.is_some() {
                        "a Kopia compressor arkiv cannot write yet"
                    } else {
                        "not a compressor arkiv knows"
                    };
                    format!("policy {origin} names compressor {name:?}, {what}; using zstd-fastest")
                });
                Some(CompressionAlgorithm::ZstdFastest)
            }
        }
    }

    /// Write options of a file `name` of `size` bytes whose policy node is `node`.
    fn file_opts_for(&self, node: &PolicyTree, name: &str, size: i64) -> ObjectWriteOptions {
        if !self.from_policy {
            return self.file_opts;
        }
        let eff = node.effective();
        let mut o = self.file_opts;
        o.compression = self.compressor(
            eff.compression.compressor_for_file(name, size),
            node.origin(),
        );
        o.metadata_compression = self.compressor(
            effective_metadata_name(&eff.metadata_compression),
            node.origin(),
        );
        if !eff.splitter.is_empty() {
            match eff.splitter.parse::<SplitterKind>() {
                Ok(k) => o.splitter = k,
                Err(e) => self.warn_once(format!("splitter {}", eff.splitter), || {
                    format!(
                        "policy {} names splitter {:?} ({e}); using the repository's",
                        node.origin(),
                        eff.splitter
                    )
                }),
            }
        }
        o
    }

    /// Write options of the listing of a directory whose node is `node`.
    fn listing_opts_for(&self, node: &PolicyTree) -> ObjectWriteOptions {
        if !self.from_policy {
            return self.meta_opts;
        }
        let c = self.compressor(
            effective_metadata_name(&node.effective().metadata_compression),
            node.origin(),
        );
        ObjectWriteOptions {
            compression: c,
            metadata_compression: c,
            ..self.meta_opts
        }
    }
}

/// kopia's `MetadataCompressor`: `none` is no compression.
fn effective_metadata_name(name: &str) -> &str {
    if name == arkiv_format::compression::NONE_NAME {
        ""
    } else {
        name
    }
}

#[allow(clippy::too_many_arguments)]
fn upload_dir(
    ctx: &Ctx,
    path: &Path,
    rel: &str,
    name: &str,
    meta: &std::fs::Metadata,
    prev: Option<&DirEntry>,
    prev_parents: &Ancestors,
    node: &PolicyTree,
    parent_level: &Arc<Level>,
) -> Result<DirEntry> {
    check_cancel(ctx)?;
    // The previous tree is walked along the source tree, so a cycle in it cannot loop
    // forever, but it is damage all the same (and could pair files with the wrong entries):
    // named as corrupt data, like every other tree walk.
    let prev_ancestors = match prev {
        Some(p) => prev_parents
            .descend(&p.object, rel)
            .map_err(|e| Error::Corrupt(format!("previous snapshot of this source: {e}")))?,
        None => Ancestors::default(),
    };
    ctx.stats.dir_count.fetch_add(1, Ordering::Relaxed);
    let cache_dir =
        node.effective().files.ignore_cache_dirs.unwrap_or(true) && ignore::is_cache_dir(path);
    let (names, level): (Vec<OsString>, Arc<Level>) = if cache_dir {
        // kopia reports the directory itself as ignored and stores it with no entries
        ctx.count_excluded(true, meta.len(), 1);
        ctx.exclude(rel, EntryType::Directory, 0, Reason::CacheDir);
        (Vec::new(), parent_level.clone())
    } else {
        let level = Level::for_directory(parent_level, node, path, &rule_dir(rel))?;
        let mut names: Vec<OsString> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(path, e))?;
        names.sort();
        (names, level)
    };
    let prev_listing: Option<DirManifest> = match prev {
        Some(p) if !names.is_empty() => match ctx.read_previous_listing(p.object) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!("previous listing of {rel} unreadable, re-hashing: {e}");
                None
            }
        },
        _ => None,
    };
    // By name: a linear search per child is quadratic in large directories.
    // (The first entry of a name wins, as the search did.)
    let mut prev_by_name: HashMap<&str, &DirEntry> = HashMap::new();
    for e in prev_listing.iter().flat_map(|l| &l.entries) {
        prev_by_name.entry(e.name.as_str()).or_insert(e);
    }
    let dir_dev = ignore::device(meta);
    let children: Vec<Result<Child>> = names
        .par_iter()
        .map(|n| {
            let child_path = path.join(n);
            let child_name = go_string_lossy(n.as_bytes());
            let child_rel = rel_join(rel, &child_name);
            let prev_child = prev_by_name.get(child_name.as_str()).copied();
            check_cancel(ctx)?;
            let meta = match std::fs::symlink_metadata(&child_path) {
                Ok(m) => m,
                Err(e) => {
                    let ignored = node
                        .effective()
                        .error_handling
                        .ignore_file_errors
                        .unwrap_or(false);
                    return Ok(record_failure(
                        ctx,
                        &child_rel,
                        &child_path,
                        "lstat",
                        &Error::io(&child_path, e),
                        ignored,
                    ));
                }
            };
            if let Some(c) = excluded(ctx, &level, &child_rel, &meta, dir_dev) {
                return Ok(c);
            }
            process_entry(
                ctx,
                &child_path,
                &child_rel,
                child_name,
                &meta,
                prev_child,
                &prev_ancestors,
                node,
                &level,
            )
        })
        .collect();

    let mut builder = DirManifestBuilder::new();
    for c in children {
        match c? {
            Child::Entry(e) => builder.add_entry(e),
            Child::Failed {
                path,
                error,
                ignored,
            } => builder.add_failed_entry(&path, ignored, &error),
            Child::Skipped => {}
        }
    }
    let own = base_entry(name.to_owned(), EntryType::Directory, meta);
    let listing = builder.build(own.mtime, "");
    let summary = listing.summary.clone().unwrap_or_default();
    let bytes = listing
        .encode()
        .map_err(|e| Error::format("directory listing", e))?;
    let oid = write_object_bytes(&ctx.cw, &bytes, &ctx.listing_opts_for(node))?;
    ctx.progress.dirs.fetch_add(1, Ordering::Relaxed);
    Ok(DirEntry {
        object: oid,
        summary: Some(summary),
        ..own
    })
}

fn type_of(m: &std::fs::Metadata) -> EntryType {
    let ft = m.file_type();
    if ft.is_dir() {
        EntryType::Directory
    } else if ft.is_symlink() {
        EntryType::Symlink
    } else {
        EntryType::File
    }
}

/// The policy verdict on one entry (kopia's `maybeWrappedChildEntry`): name rules, then size,
/// then device. `Some` when the entry is left out.
fn excluded(
    ctx: &Ctx,
    level: &Level,
    rel: &str,
    meta: &std::fs::Metadata,
    dir_dev: u64,
) -> Option<Child> {
    let is_dir = meta.is_dir();
    let size = i64::try_from(meta.len()).unwrap_or(i64::MAX);
    let v = level.judge(&format!("/{rel}"), is_dir);
    if v.levels_ignoring > 0 {
        ctx.count_excluded(is_dir, meta.len(), v.levels_ignoring);
    }
    let reason = v
        .ignored_by
        .or_else(|| level.size_verdict(size))
        .or_else(|| {
            (level.one_file_system() && ignore::device(meta) != dir_dev)
                .then_some(Reason::OtherFileSystem)
        })?;
    ctx.exclude(rel, type_of(meta), size, reason);
    Some(Child::Skipped)
}

/// Errors that concern the source entry (recorded) vs the repository (abort).
fn is_source_error(e: &Error) -> bool {
    matches!(e, Error::Io { .. })
}

/// Go's text for an OS error (`permission denied`), as kopia's messages carry it.
fn go_errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let d = nix::errno::Errno::from_raw(code).desc();
            let mut c = d.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => e.to_string(),
            }
        }
        None => e.to_string(),
    }
}

/// Records a failed entry with a kopia-like message (`unable to open file: open PATH: …`);
/// `ignored` (the policy's `errorHandling`) records it as an ignored error.
fn record_failure(ctx: &Ctx, rel: &str, path: &Path, op: &str, e: &Error, ignored: bool) -> Child {
    if ignored {
        ctx.stats
            .ignored_error_count
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!("{rel}: {e} (ignored by the error-handling policy)");
    } else {
        ctx.stats.error_count.fetch_add(1, Ordering::Relaxed);
        ctx.progress.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("{rel}: {e}");
    }
    let msg = match e {
        Error::Io { source, .. } => format!("{op} {}: {}", path.display(), go_errno_text(source)),
        other => other.to_string(),
    };
    Child::Failed {
        path: rel.to_owned(),
        error: msg,
        ignored,
    }
}

#[allow(clippy::too_many_arguments)]
fn process_entry(
    ctx: &Ctx,
    path: &Path,
    rel: &str,
    name: String,
    meta: &std::fs::Metadata,
    prev: Option<&DirEntry>,
    prev_parents: &Ancestors,
    dir_node: &PolicyTree,
    level: &Arc<Level>,
) -> Result<Child> {
    let node = dir_node.child(&name);
    let file_errors_ignored = dir_node
        .effective()
        .error_handling
        .ignore_file_errors
        .unwrap_or(false);
    let ft = meta.file_type();
    if ft.is_dir() {
        let prev_dir = prev.filter(|p| p.entry_type == EntryType::Directory);
        return match upload_dir(
            ctx,
            path,
            rel,
            &name,
            meta,
            prev_dir,
            prev_parents,
            &node,
            level,
        ) {
            Ok(e) => Ok(Child::Entry(e)),
            Err(e) if is_source_error(&e) => {
                let ignored = node
                    .effective()
                    .error_handling
                    .ignore_directory_errors
                    .unwrap_or(false);
                Ok(record_failure(ctx, rel, path, "open", &e, ignored))
            }
            Err(e) => Err(e),
        };
    }
    let entry_type = if ft.is_symlink() {
        EntryType::Symlink
    } else if ft.is_file() {
        EntryType::File
    } else {
        // sockets, FIFOs, devices: skipped unless the policy says not to ignore unknown types
        let eh = &node.effective().error_handling;
        if eh.ignore_unknown_types.unwrap_or(true) {
            return Ok(Child::Skipped);
        }
        ctx.stats.error_count.fetch_add(1, Ordering::Relaxed);
        ctx.progress.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("{rel}: unknown or unsupported entry type");
        return Ok(Child::Failed {
            path: rel.to_owned(),
            error: "unknown or unsupported entry type".to_owned(),
            ignored: false,
        });
    };
    let mut entry = base_entry(name.clone(), entry_type.clone(), meta);
    entry.size = i64::try_from(meta.len()).unwrap_or(i64::MAX);
    // kopia reuses any non-directory (symlinks too) whose metadata equals the previous
    // snapshot's entry, and counts it as a cached file.
    let force_hash = ctx.force_hash_percent >= 100.0
        || (ctx.force_hash_percent > 0.0 && rand::random::<f64>() * 100.0 < ctx.force_hash_percent);
    if let Some(p) = prev.filter(|_| !force_hash) {
        if p.entry_type == entry.entry_type
            && p.mtime == entry.mtime
            && p.mode == entry.mode
            && p.uid == entry.uid
            && p.gid == entry.gid
            && p.size == entry.size
            && !p.object.is_empty()
        {
            entry.object = p.object;
            ctx.stats.cached_files.fetch_add(1, Ordering::Relaxed);
            ctx.stats
                .total_size
                .fetch_add(meta.len(), Ordering::Relaxed);
            ctx.progress.cached_files.fetch_add(1, Ordering::Relaxed);
            ctx.progress
                .cached_bytes
                .fetch_add(meta.len(), Ordering::Relaxed);
            return Ok(Child::Entry(entry));
        }
    }
    if entry_type == EntryType::Symlink {
        let target = match std::fs::read_link(path) {
            Ok(t) => t,
            Err(e) => {
                return Ok(record_failure(
                    ctx,
                    rel,
                    path,
                    "readlink",
                    &Error::io(path, e),
                    file_errors_ignored,
                ));
            }
        };
        let bytes = target.as_os_str().as_bytes();
        entry.object = write_object_bytes(&ctx.cw, bytes, &ctx.symlink_opts)?;
        entry.size = bytes.len() as i64;
        return Ok(Child::Entry(entry));
    }
    ctx.stats.non_cached_files.fetch_add(1, Ordering::Relaxed);
    let opts = ctx.file_opts_for(&node, &name, entry.size);
    let p: PathBuf = path.to_path_buf();
    let mut open_at = |offset: u64| -> std::io::Result<Box<dyn Read>> {
        let mut f = std::fs::File::open(&p)?;
        if offset > 0 {
            f.seek(std::io::SeekFrom::Start(offset))?;
        }
        Ok(Box::new(CountingReader {
            inner: f,
            progress: ctx.progress.clone(),
            cancel: ctx.cancel.clone(),
        }))
    };
    match write_file_object(&ctx.cw, meta.len(), &mut open_at, &opts) {
        Ok((oid, len)) => {
            entry.object = oid;
            entry.size = i64::try_from(len).unwrap_or(i64::MAX);
            ctx.stats.file_count.fetch_add(1, Ordering::Relaxed);
            ctx.stats.total_size.fetch_add(len, Ordering::Relaxed);
            ctx.progress.hashed_files.fetch_add(1, Ordering::Relaxed);
            Ok(Child::Entry(entry))
        }
        Err(e) if is_source_error(&e) => {
            let op = match &e {
                Error::Io { path, .. } if path == "(file)" => "unable to open file: open",
                _ => "read",
            };
            Ok(record_failure(ctx, rel, path, op, &e, file_errors_ignored))
        }
        Err(e) => Err(e),
    }
}

struct CountingReader {
    inner: std::fs::File,
    progress: Arc<UploadProgress>,
    cancel: CancellationToken,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(std::io::Error::other("snapshot interrupted"));
        }
        let n = self.inner.read(buf)?;
        self.progress
            .hashed_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::blob::memory::MemoryStorage;
    use crate::clock::SystemClock;
    use crate::initialize::{CreateOptions, create_repository};
    use crate::repo::OpenOptions;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_upload_fails_as_cancelled_and_a_later_one_completes() {
        let storage = Arc::new(MemoryStorage::new(Arc::new(SystemClock)));
        let repo = create_repository(
            storage,
            "pw",
            &CreateOptions::new("u", "h"),
            OpenOptions::default(),
        )
        .await
        .unwrap();
        let src = tempfile::tempdir().unwrap();
        for i in 0..20 {
            std::fs::write(src.path().join(format!("f{i}")), format!("file {i}")).unwrap();
        }
        let source = SourceInfo {
            host: "h".into(),
            user_name: "u".into(),
            path: "/src".into(),
        };
        let opts = UploadOptions::new(source.clone());
        opts.cancel.cancel();
        let progress = Arc::new(UploadProgress::default());
        let err = snapshot_directory(&repo, src.path(), None, opts, progress)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");

        let progress = Arc::new(UploadProgress::default());
        let done = snapshot_directory(
            &repo,
            src.path(),
            None,
            UploadOptions::new(source),
            progress,
        )
        .await
        .unwrap();
        assert_eq!(done.manifest.stats.file_count, 20);
    }
}
