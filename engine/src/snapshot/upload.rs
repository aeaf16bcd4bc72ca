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
//! * Sockets, FIFOs and devices are skipped silently (kopia's `ignoreUnknownTypes` default).
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

use crate::content::writer::ContentWriter;
use crate::manifest::ManifestBatch;
use crate::object::{ObjectWriteOptions, write_file_object, write_object_bytes};
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
    /// Compression of file data (`None` = none).
    pub compression: Option<CompressionAlgorithm>,
    /// Compression of directory listings and chunk lists.
    pub metadata_compression: Option<CompressionAlgorithm>,
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
}

#[derive(Default)]
struct Stats {
    total_size: AtomicU64,
    file_count: AtomicU64,
    cached_files: AtomicU64,
    non_cached_files: AtomicU64,
    dir_count: AtomicU64,
    error_count: AtomicU64,
}

enum Child {
    Entry(DirEntry),
    Failed { path: String, error: String },
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
            upload_root(&ctx2, &dir, previous)
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
            excluded_total_size: 0,
            file_count: load(&s.file_count),
            cached_files: load(&s.cached_files),
            non_cached_files: load(&s.non_cached_files),
            dir_count: load(&s.dir_count),
            excluded_file_count: 0,
            excluded_dir_count: 0,
            ignored_error_count: 0,
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
    batch.commit_async(&cw).await?;
    cw.flush_async().await?;
    let mut manifest = manifest;
    manifest.id = manifest_id.clone();
    Ok(UploadResult {
        manifest_id,
        manifest,
        new_contents: cw.stats.contents_written.load(Ordering::Relaxed),
        new_bytes: cw.stats.bytes_written.load(Ordering::Relaxed),
        packed_bytes: cw.stats.packed_bytes.load(Ordering::Relaxed),
        packs: cw.stats.packs_written.load(Ordering::Relaxed),
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

fn upload_root(ctx: &Ctx, dir: &Path, previous: Option<DirEntry>) -> Result<DirEntry> {
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
    upload_dir(ctx, dir, ".", &name, &meta, prev.as_ref())
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

fn upload_dir(
    ctx: &Ctx,
    path: &Path,
    rel: &str,
    name: &str,
    meta: &std::fs::Metadata,
    prev: Option<&DirEntry>,
) -> Result<DirEntry> {
    check_cancel(ctx)?;
    ctx.stats.dir_count.fetch_add(1, Ordering::Relaxed);
    let mut names: Vec<OsString> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(path, e))?;
    names.sort();
    let prev_listing: Option<DirManifest> = match prev {
        Some(p) => match ctx.read_previous_listing(p.object) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!("previous listing of {rel} unreadable, re-hashing: {e}");
                None
            }
        },
        None => None,
    };
    // By name: a linear search per child is quadratic in large directories.
    // (The first entry of a name wins, as the search did.)
    let mut prev_by_name: HashMap<&str, &DirEntry> = HashMap::new();
    for e in prev_listing.iter().flat_map(|l| &l.entries) {
        prev_by_name.entry(e.name.as_str()).or_insert(e);
    }
    let children: Vec<Result<Child>> = names
        .par_iter()
        .map(|n| {
            let child_path = path.join(n);
            let child_name = go_string_lossy(n.as_bytes());
            let child_rel = rel_join(rel, &child_name);
            let prev_child = prev_by_name.get(child_name.as_str()).copied();
            process_entry(ctx, &child_path, &child_rel, child_name.clone(), prev_child)
        })
        .collect();

    let mut builder = DirManifestBuilder::new();
    for c in children {
        match c? {
            Child::Entry(e) => builder.add_entry(e),
            Child::Failed { path, error } => builder.add_failed_entry(&path, false, &error),
            Child::Skipped => {}
        }
    }
    let own = base_entry(name.to_owned(), EntryType::Directory, meta);
    let listing = builder.build(own.mtime, "");
    let summary = listing.summary.clone().unwrap_or_default();
    let bytes = listing
        .encode()
        .map_err(|e| Error::format("directory listing", e))?;
    let oid = write_object_bytes(&ctx.cw, &bytes, &ctx.meta_opts)?;
    ctx.progress.dirs.fetch_add(1, Ordering::Relaxed);
    Ok(DirEntry {
        object: oid,
        summary: Some(summary),
        ..own
    })
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

/// Records a failed entry with a kopia-like message (`unable to open file: open PATH: …`).
fn record_failure(ctx: &Ctx, rel: &str, path: &Path, op: &str, e: &Error) -> Child {
    ctx.stats.error_count.fetch_add(1, Ordering::Relaxed);
    ctx.progress.errors.fetch_add(1, Ordering::Relaxed);
    tracing::warn!("{rel}: {e}");
    let msg = match e {
        Error::Io { source, .. } => format!("{op} {}: {}", path.display(), go_errno_text(source)),
        other => other.to_string(),
    };
    Child::Failed {
        path: rel.to_owned(),
        error: msg,
    }
}

fn process_entry(
    ctx: &Ctx,
    path: &Path,
    rel: &str,
    name: String,
    prev: Option<&DirEntry>,
) -> Result<Child> {
    check_cancel(ctx)?;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Ok(record_failure(ctx, rel, path, "lstat", &Error::io(path, e))),
    };
    let ft = meta.file_type();
    if ft.is_dir() {
        let prev_dir = prev.filter(|p| p.entry_type == EntryType::Directory);
        return match upload_dir(ctx, path, rel, &name, &meta, prev_dir) {
            Ok(e) => Ok(Child::Entry(e)),
            Err(e) if is_source_error(&e) => Ok(record_failure(ctx, rel, path, "open", &e)),
            Err(e) => Err(e),
        };
    }
    let entry_type = if ft.is_symlink() {
        EntryType::Symlink
    } else if ft.is_file() {
        EntryType::File
    } else {
        // sockets, FIFOs, devices: kopia ignores unknown types by default
        return Ok(Child::Skipped);
    };
    let mut entry = base_entry(name, entry_type.clone(), &meta);
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
                ));
            }
        };
        let bytes = target.as_os_str().as_bytes();
        entry.object = write_object_bytes(&ctx.cw, bytes, &ctx.symlink_opts)?;
        entry.size = bytes.len() as i64;
        return Ok(Child::Entry(entry));
    }
    ctx.stats.non_cached_files.fetch_add(1, Ordering::Relaxed);
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
    match write_file_object(&ctx.cw, meta.len(), &mut open_at, &ctx.file_opts) {
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
            Ok(record_failure(ctx, rel, path, op, &e))
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
