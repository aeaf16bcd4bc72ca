//! Restoring a snapshot (or a subtree) into a local directory.
//!
//! Guarantees:
//! * Nothing is ever written outside the target: entry names are validated (no empty name,
//!   `.`, `..`, `/` or NUL; no duplicates), and the restore never writes through a symlink —
//!   a symlink where the snapshot has a directory is refused with an error.
//! * Files and symlinks are written under a temporary name in their final directory and
//!   renamed into place, so a crash leaves either the old or the new entry.
//! * Modes (setuid/setgid/sticky included), mtimes (nanoseconds, symlinks too), and owners
//!   (when running as root) are restored; directories get theirs after their children.
//!   Directories get the mtime stored in their parent's listing (the source's real mtime;
//!   kopia's own restore shows the subtree's newest mtime instead).
//! * Runs of zero bytes in files are skipped with a seek, so sparse files stay sparse.
//! * With `delete_extra`, entries in the target that the snapshot does not have are removed,
//!   except the names in `keep_in_root` directly under the target (e.g. `lost+found`).
//! * With `ignore_permission_errors` (kopia's `--ignore-permission-errors`), a permission
//!   error while applying an owner, mode or mtime is logged and skipped: a mover restoring
//!   into a volume root it does not own still restores the contents.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arkiv_format::snapshot::{DirEntry, EntryType, posix_mode_from_go};
use filetime::FileTime;
use futures::{FutureExt, StreamExt};

use super::direct::{DataWriter, DirectPolicy};
use super::tree::{Ancestors, validate_listing};
use crate::direct_io;
use crate::repo::Repository;
use crate::{Error, Result};

/// Knobs of a restore.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreOptions {
    /// Remove files and directories in the target that are not in the snapshot.
    pub delete_extra: bool,
    /// Restore uid/gid (default: when running as root).
    pub restore_owners: bool,
    /// Files restored concurrently within a directory.
    pub parallel_files: usize,
    /// Chunks fetched ahead within one file.
    pub chunk_prefetch: usize,
    /// Names directly under the target that `delete_extra` never removes.
    pub keep_in_root: Vec<String>,
    /// Skip (with a warning) permission errors when applying owners, modes and mtimes.
    pub ignore_permission_errors: bool,
    /// Write large files with `O_DIRECT` when the target is a local block filesystem
    /// (ext4, XFS, btrfs; default); off: buffered writes only.
    pub direct_io: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            delete_extra: false,
            restore_owners: nix::unistd::geteuid().is_root(),
            parallel_files: 8,
            chunk_prefetch: 4,
            keep_in_root: Vec::new(),
            ignore_permission_errors: false,
            direct_io: true,
        }
    }
}

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RestoreStats {
    /// Regular files written.
    pub files: u64,
    /// Directories restored (including the root).
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// File bytes written.
    pub bytes: u64,
    /// Extra entries removed (`delete_extra`).
    pub deleted: u64,
}

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    bytes: AtomicU64,
    deleted: AtomicU64,
}

struct Ctx {
    repo: Repository,
    opts: RestoreOptions,
    counters: Counters,
    root: PathBuf,
    /// Files and symlinks restored at once, across all directories.
    files: tokio::sync::Semaphore,
    /// KiB of chunk data fetched but not yet written, across all files (bounds memory).
    budget: Arc<tokio::sync::Semaphore>,
    /// Set on the first error: no new work starts, running work finishes.
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Whether large files are written with direct I/O.
    direct: DirectPolicy,
}

impl Ctx {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Chunk data in flight (fetched, decoded, not yet written), in KiB.
const CHUNK_BUDGET_KIB: u32 = 16 << 10;

/// Entries of one directory processed at once (files also wait for `Ctx::files`).
const DIR_FANOUT: usize = 8;

fn closed(_: tokio::sync::AcquireError) -> Error {
    Error::Cancelled("restore stopped".into())
}

/// Restores `entry` (a snapshot root or any entry inside one) to `target`.
///
/// For a directory, `target` becomes that directory (created if absent) and gets the
/// entry's mode and mtime. For a file or symlink, `target` is the path written.
pub async fn restore_entry(
    repo: &Repository,
    entry: &DirEntry,
    target: &Path,
    opts: RestoreOptions,
) -> Result<RestoreStats> {
    let dir = match entry.entry_type {
        EntryType::Directory => {
            tokio::fs::create_dir_all(target)
                .await
                .map_err(|e| Error::io(target, e))?;
            target
        }
        _ => target.parent().unwrap_or(Path::new(".")),
    };
    let direct = DirectPolicy::for_target(dir, opts.direct_io);
    let ctx = Arc::new(Ctx {
        repo: repo.clone(),
        direct,
        files: tokio::sync::Semaphore::new(opts.parallel_files.max(1)),
        budget: Arc::new(tokio::sync::Semaphore::new(CHUNK_BUDGET_KIB as usize)),
        stop: Arc::default(),
        opts,
        counters: Counters::default(),
        root: target.to_path_buf(),
    });
    match entry.entry_type {
        EntryType::Directory => {
            let ancestors = Ancestors::default().descend(&entry.object, &entry.name)?;
            restore_dir(ctx.clone(), entry.clone(), target.to_path_buf(), ancestors).await?;
        }
        EntryType::File => restore_file(&ctx, entry, target).await?,
        EntryType::Symlink => restore_symlink(&ctx, entry, target).await?,
        _ => {
            return Err(Error::Unsupported(format!(
                "cannot restore entry {:?} of unknown type",
                entry.name
            )));
        }
    }
    let c = &ctx.counters;
    Ok(RestoreStats {
        files: c.files.load(Ordering::Relaxed),
        dirs: c.dirs.load(Ordering::Relaxed),
        symlinks: c.symlinks.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        deleted: c.deleted.load(Ordering::Relaxed),
    })
}

fn file_time(entry: &DirEntry) -> FileTime {
    FileTime::from_unix_time(
        entry.mtime.timestamp(),
        entry.mtime.timestamp_subsec_nanos(),
    )
}

fn temp_name(dir: &Path, name: &str) -> PathBuf {
    let r: u64 = rand::random();
    // Keep the temp name short enough for NAME_MAX even for long entry names.
    let short: String = name.chars().take(100).collect();
    dir.join(format!(".{short}.arkiv-tmp-{r:016x}"))
}

fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".arkiv-tmp-")
}

/// Makes sure `path` is a real directory we can write into (never a symlink, never
/// followed). A directory that was there already is cleared of the temporary names an
/// earlier, killed restore left behind.
async fn ensure_dir(ctx: &Ctx, path: &Path) -> Result<()> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(m) if m.file_type().is_symlink() => {
            // The target root itself is the caller's choice and never replaced.
            if ctx.opts.delete_extra && path != ctx.root {
                // Removes the link itself; what it points to is never touched.
                tokio::fs::remove_file(path)
                    .await
                    .map_err(|e| Error::io(path, e))?;
                ctx.counters.deleted.fetch_add(1, Ordering::Relaxed);
                create_dir(path).await
            } else {
                Err(Error::Config(format!(
                    "{} is a symlink in the target where the snapshot has a directory; it is \
                     never followed: enable file deletion (--delete-extra, or \
                     KOPIA_ENABLE_FILE_DELETION=true for the mover) to replace it, or remove it",
                    path.display()
                )))
            }
        }
        Ok(m) if m.is_dir() => {
            remove_leftover_temps(path).await?;
            use std::os::unix::fs::PermissionsExt;
            // A previous restore may have left a read-only directory: make it writable
            // until its final mode is applied after its children.
            if m.permissions().mode() & 0o300 != 0o300 {
                let mode = m.permissions().mode() | 0o700;
                tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .await
                    .map_err(|e| Error::io(path, e))?;
            }
            Ok(())
        }
        Ok(_) => {
            if ctx.opts.delete_extra {
                tokio::fs::remove_file(path)
                    .await
                    .map_err(|e| Error::io(path, e))?;
                ctx.counters.deleted.fetch_add(1, Ordering::Relaxed);
                create_dir(path).await
            } else {
                Err(Error::Config(format!(
                    "{} exists and is not a directory (use delete-extra to replace it)",
                    path.display()
                )))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_dir(path).await,
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Removes `.NAME.arkiv-tmp-*` files (never directories) an earlier restore that was killed
/// left in `dir`. Called before this restore writes anything into `dir`.
async fn remove_leftover_temps(dir: &Path) -> Result<()> {
    let d = dir.to_path_buf();
    blocking(move || -> Result<()> {
        let rd = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for e in rd {
            let e = e.map_err(|err| Error::io(&d, err))?;
            let leftover = e.file_name().to_str().is_some_and(is_temp_name)
                && e.file_type().is_ok_and(|t| !t.is_dir());
            if leftover {
                let p = e.path();
                match std::fs::remove_file(&p) {
                    Ok(()) => {
                        tracing::info!("removed {} (left by an earlier restore)", p.display())
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => return Err(Error::io(&p, err)),
                }
            }
        }
        Ok(())
    })
    .await?
}

async fn create_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::DirBuilder::new().mode(0o700).create(&p))
        .await
        .map_err(|e| Error::Cancelled(e.to_string()))?
        .map_err(|e| Error::io(path, e))
}

fn restore_dir(
    ctx: Arc<Ctx>,
    entry: DirEntry,
    path: PathBuf,
    ancestors: Ancestors,
) -> futures::future::BoxFuture<'static, Result<()>> {
    Box::pin(async move {
        ensure_dir(&ctx, &path).await?;
        let listing = ctx.repo.read_dir(&entry.object).await?;
        validate_listing(&listing)?;
        // Small files are restored in batches cut from one read of their pack (below);
        // everything else one entry at a time.
        let (batches, single) = small_file_batches(&ctx.repo, &listing.entries);
        let mut jobs: Vec<futures::future::BoxFuture<'static, Result<()>>> =
            Vec::with_capacity(batches.len() + single.len());
        for b in batches {
            let ctx = ctx.clone();
            let dir = path.clone();
            jobs.push(
                async move {
                    let _permit = ctx.files.acquire().await.map_err(closed)?;
                    if ctx.stopped() {
                        return Ok(());
                    }
                    restore_batch(&ctx, b, &dir).await
                }
                .boxed(),
            );
        }
        // Subdirectories run concurrently with the files (a tree of many small directories
        // would otherwise restore one directory at a time); `ctx.files` bounds the work.
        for e in single {
            let ctx = ctx.clone();
            let ancestors = ancestors.clone();
            let p = path.join(&e.name);
            jobs.push(
                async move {
                    if ctx.stopped() {
                        return Ok(());
                    }
                    match e.entry_type {
                        EntryType::Directory => {
                            let below = ancestors.descend(&e.object, &p.display().to_string())?;
                            restore_dir(ctx, e, p, below).await
                        }
                        EntryType::File => {
                            let _permit = ctx.files.acquire().await.map_err(closed)?;
                            if ctx.stopped() {
                                return Ok(());
                            }
                            restore_file(&ctx, &e, &p).await
                        }
                        EntryType::Symlink => {
                            let _permit = ctx.files.acquire().await.map_err(closed)?;
                            if ctx.stopped() {
                                return Ok(());
                            }
                            restore_symlink(&ctx, &e, &p).await
                        }
                        _ => {
                            tracing::warn!(
                                "skipping {}: entry type kopia does not restore",
                                p.display()
                            );
                            Ok(())
                        }
                    }
                }
                .boxed(),
            );
        }
        // On the first error, stop starting new work but let what runs finish: a file
        // being written then completes or removes its temporary name, instead of being
        // abandoned half-written when the restore returns.
        let mut running = futures::stream::iter(jobs).buffer_unordered(DIR_FANOUT);
        let mut first_error = None;
        while let Some(r) = running.next().await {
            if let Err(e) = r {
                ctx.stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if ctx.opts.delete_extra {
            let mut keep: HashSet<&str> = listing.entries.iter().map(|e| e.name.as_str()).collect();
            if path == ctx.root {
                keep.extend(ctx.opts.keep_in_root.iter().map(String::as_str));
            }
            delete_extra(&ctx, &path, &keep).await?;
        }
        apply_metadata(&ctx, &entry, &path, false).await?;
        ctx.counters.dirs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })
}

/// Files up to this packed size are restored in batches.
const SMALL_FILE_MAX: u32 = 256 << 10;
/// Longest pack range read for one batch.
const BATCH_SPAN_MAX: u64 = 4 << 20;
/// Largest gap between two contents of a batch (read and thrown away: cheaper than
/// another request).
const BATCH_GAP_MAX: u64 = 256 << 10;
/// Most files in one batch.
const BATCH_FILES_MAX: usize = 256;

/// Small files of one directory whose contents sit close together in one pack: one
/// storage read for all of them and one blocking call that decodes and writes them all,
/// instead of three thread hand-offs and a range request per file.
struct SmallBatch {
    pack: arkiv_format::ids::BlobId,
    range: std::ops::Range<u64>,
    files: Vec<(DirEntry, arkiv_format::index::Info)>,
}

/// Splits a listing into batches of small files and the entries restored one by one.
/// A small file is a regular file whose object is a single content of a non-deleted
/// index entry up to [`SMALL_FILE_MAX`] packed bytes.
fn small_file_batches(repo: &Repository, entries: &[DirEntry]) -> (Vec<SmallBatch>, Vec<DirEntry>) {
    let mut small = Vec::new();
    let mut single = Vec::new();
    for e in entries {
        let info = (e.entry_type == EntryType::File
            && e.object.indirection() == 0
            && !e.object.is_compressed())
        .then(|| repo.indexes().lookup(&e.object.content_id()).ok().flatten())
        .flatten()
        .filter(|i| !i.deleted && i.packed_length <= SMALL_FILE_MAX);
        match info {
            Some(i) => small.push((e.clone(), i)),
            None => single.push(e.clone()),
        }
    }
    small.sort_by(|(_, a), (_, b)| {
        (&a.pack_blob_id, a.pack_offset).cmp(&(&b.pack_blob_id, b.pack_offset))
    });
    let mut batches: Vec<SmallBatch> = Vec::new();
    for (e, i) in small {
        let start = u64::from(i.pack_offset);
        let end = start + u64::from(i.packed_length);
        match batches.last_mut() {
            Some(b)
                if b.pack == i.pack_blob_id
                    && b.files.len() < BATCH_FILES_MAX
                    && start <= b.range.end + BATCH_GAP_MAX
                    && end.max(b.range.end) - b.range.start <= BATCH_SPAN_MAX =>
            {
                b.range.end = b.range.end.max(end);
                b.files.push((e, i));
            }
            _ => batches.push(SmallBatch {
                pack: i.pack_blob_id.clone(),
                range: start..end,
                files: vec![(e, i)],
            }),
        }
    }
    (batches, single)
}

/// The payloads of a batch: one range of its pack, or each content from the local cache.
enum BatchPayloads {
    Range(bytes::Bytes),
    Each(Vec<Vec<u8>>),
}

async fn restore_batch(ctx: &Ctx, batch: SmallBatch, dir: &Path) -> Result<()> {
    let kib = u32::try_from((batch.range.end - batch.range.start).div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, CHUNK_BUDGET_KIB);
    let permit = ctx
        .budget
        .clone()
        .acquire_many_owned(kib)
        .await
        .map_err(closed)?;
    let Some((_, first)) = batch.files.first() else {
        return Ok(());
    };
    // The whole range, described as one entry for the reader's checks and messages.
    let probe = arkiv_format::index::Info {
        pack_offset: u32::try_from(batch.range.start).unwrap_or(u32::MAX),
        packed_length: u32::try_from(batch.range.end - batch.range.start).unwrap_or(u32::MAX),
        ..first.clone()
    };
    let reader = ctx.repo.contents().clone();
    let infos: Vec<_> = batch.files.iter().map(|(_, i)| i.clone()).collect();
    // From the local content cache when it holds every file of the batch; else one range
    // read, whose contents then go into the cache.
    let cached: Option<Vec<Vec<u8>>> = reader.cached_payloads(&infos).await.into_iter().collect();
    let payloads = match cached {
        Some(p) if !p.is_empty() => BatchPayloads::Each(p),
        _ => {
            let bytes = reader.fetch_payload(&probe).await?;
            let base = batch.range.start;
            let slices: Vec<_> = infos
                .iter()
                .filter_map(|i| {
                    let from = usize::try_from(u64::from(i.pack_offset) - base).ok()?;
                    let to = from.checked_add(i.packed_length as usize)?;
                    (to <= bytes.len()).then(|| (i.clone(), bytes.slice(from..to)))
                })
                .collect();
            reader.cache_payloads(slices).await;
            BatchPayloads::Range(bytes)
        }
    };
    let metas: Vec<FileMeta> = batch
        .files
        .iter()
        .map(|(e, _)| FileMeta::of(ctx, e))
        .collect();
    let dir = dir.to_path_buf();
    let base = batch.range.start;
    let stop = ctx.stop.clone();
    let (written, done, deleted) = blocking(move || -> Result<(u64, u64, u64)> {
        let (mut written, mut done, mut deleted) = (0, 0, 0);
        for (n, ((entry, info), meta)) in batch.files.iter().zip(&metas).enumerate() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let payload = match &payloads {
                BatchPayloads::Each(p) => p.get(n).map(Vec::as_slice),
                BatchPayloads::Range(bytes) => {
                    let from =
                        usize::try_from(u64::from(info.pack_offset) - base).unwrap_or(usize::MAX);
                    let to = from.saturating_add(info.packed_length as usize);
                    bytes.get(from..to)
                }
            };
            let payload = payload.ok_or_else(|| {
                Error::Corrupt(format!(
                    "pack blob {} holding content {} is truncated",
                    info.pack_blob_id, info.content_id
                ))
            })?;
            let data = reader.decode_payload(info, payload)?;
            if i64::try_from(data.len()).ok() != Some(entry.size) && entry.size != 0 {
                tracing::warn!(
                    "{}: listing says {} bytes, object holds {}",
                    entry.name,
                    entry.size,
                    data.len()
                );
            }
            let dst = dir.join(&entry.name);
            let mut out = OutFile::buffered(temp_name(&dir, &entry.name));
            let r = out
                .write(&data)
                .map_err(|e| Error::io(&dst, e))
                .and_then(|()| out.finish(meta, &dst));
            match r {
                Ok(d) => {
                    deleted += u64::from(d);
                    written += data.len() as u64;
                    done += 1;
                }
                Err(e) => {
                    if out.file.is_some() || out.tmp.exists() {
                        let _ = std::fs::remove_file(&out.tmp);
                    }
                    return Err(e);
                }
            }
        }
        Ok((written, done, deleted))
    })
    .await??;
    drop(permit);
    let c = &ctx.counters;
    c.files.fetch_add(done, Ordering::Relaxed);
    c.bytes.fetch_add(written, Ordering::Relaxed);
    c.deleted.fetch_add(deleted, Ordering::Relaxed);
    Ok(())
}

async fn delete_extra(ctx: &Ctx, dir: &Path, keep: &HashSet<&str>) -> Result<()> {
    let mut rd = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| Error::io(dir, e))?;
    while let Some(e) = rd.next_entry().await.map_err(|e| Error::io(dir, e))? {
        let name = e.file_name();
        let name_str = name.to_string_lossy();
        if keep.contains(name_str.as_ref()) && name.to_str().is_some() {
            continue;
        }
        let p = e.path();
        let ft = e.file_type().await.map_err(|err| Error::io(&p, err))?;
        if ft.is_dir() {
            tokio::fs::remove_dir_all(&p).await
        } else {
            tokio::fs::remove_file(&p).await
        }
        .map_err(|err| Error::io(&p, err))?;
        if !is_temp_name(&name_str) {
            ctx.counters.deleted.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Mode, owner and mtime. For symlinks only owner and mtime (their mode is meaningless).
async fn apply_metadata(ctx: &Ctx, entry: &DirEntry, path: &Path, symlink: bool) -> Result<()> {
    let p = path.to_path_buf();
    let owners = ctx.opts.restore_owners;
    let (uid, gid) = (entry.uid, entry.gid);
    let mode = posix_mode_from_go(entry.mode);
    let mtime = file_time(entry);
    let ignore_perm = ctx.opts.ignore_permission_errors;
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let tolerate = |what: &str, r: std::io::Result<()>| match r {
            Err(e) if ignore_perm && e.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::warn!("{}: cannot set {what}: {e} (ignored)", p.display());
                Ok(())
            }
            r => r,
        };
        if owners {
            // chown before chmod: chown clears setuid/setgid bits.
            tolerate("owner", std::os::unix::fs::lchown(&p, Some(uid), Some(gid)))?;
        }
        if symlink {
            tolerate("mtime", filetime::set_symlink_file_times(&p, mtime, mtime))?;
        } else {
            tolerate(
                "mode",
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)),
            )?;
            tolerate("mtime", filetime::set_file_times(&p, mtime, mtime))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::Cancelled(e.to_string()))?
    .map_err(|e| Error::io(path, e))
}

async fn replace_with(ctx: &Ctx, tmp: &Path, dst: &Path) -> Result<()> {
    if let Ok(m) = tokio::fs::symlink_metadata(dst).await {
        if m.is_dir() {
            if ctx.opts.delete_extra {
                tokio::fs::remove_dir_all(dst)
                    .await
                    .map_err(|e| Error::io(dst, e))?;
                ctx.counters.deleted.fetch_add(1, Ordering::Relaxed);
            } else {
                let _ = tokio::fs::remove_file(tmp).await;
                return Err(Error::Config(format!(
                    "{} is a directory in the target where the snapshot has a file or symlink (use delete-extra to replace it)",
                    dst.display()
                )));
            }
        }
    }
    tokio::fs::rename(tmp, dst)
        .await
        .map_err(|e| Error::io(dst, e))
}

async fn restore_symlink(ctx: &Ctx, entry: &DirEntry, path: &Path) -> Result<()> {
    let target_bytes = ctx.repo.read_object(&entry.object).await?;
    let target: std::ffi::OsString = std::os::unix::ffi::OsStringExt::from_vec(target_bytes);
    if target.is_empty() || target.as_encoded_bytes().contains(&0) {
        return Err(Error::Corrupt(format!(
            "symlink {:?} has an empty or NUL-containing target",
            entry.name
        )));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_name(dir, &entry.name);
    tokio::fs::symlink(&target, &tmp)
        .await
        .map_err(|e| Error::io(&tmp, e))?;
    if let Err(e) = apply_metadata(ctx, entry, &tmp, true).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    replace_with(ctx, &tmp, path).await?;
    ctx.counters.symlinks.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn restore_file(ctx: &Ctx, entry: &DirEntry, path: &Path) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let size = u64::try_from(entry.size).unwrap_or(0);
    let mut out = OutFile::new(temp_name(dir, &entry.name), size, &ctx.direct);
    let result = write_file(ctx, entry, path, &mut out).await;
    if result.is_err() && out.file.is_some() {
        let _ = tokio::fs::remove_file(&out.tmp).await;
    }
    result?;
    ctx.counters.files.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// A file being written under its temporary name. All its filesystem work runs in a few
/// blocking calls (one per chunk, the last one also finishing the file), not one per
/// syscall: on trees of small files the hand-offs cost more than the writes.
struct OutFile {
    file: Option<std::fs::File>,
    tmp: PathBuf,
    data: DataWriter,
    /// Until the file is opened: the policy, when the file is to be written with direct I/O.
    direct: Option<DirectPolicy>,
}

impl OutFile {
    fn buffered(tmp: PathBuf) -> Self {
        OutFile {
            file: None,
            tmp,
            data: DataWriter::buffered(),
            direct: None,
        }
    }

    /// A file written with direct I/O when `policy` wants it for `size` bytes.
    fn new(tmp: PathBuf, size: u64, policy: &DirectPolicy) -> Self {
        OutFile {
            direct: policy.wants(size).then(|| policy.clone()),
            ..OutFile::buffered(tmp)
        }
    }

    fn open(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        if self.file.is_some() {
            return Ok(());
        }
        let open = |flags| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(flags)
                .open(&self.tmp)
        };
        let f = match self.direct.take() {
            None => open(direct_io::open_flags(false))?,
            Some(policy) => match open(direct_io::open_flags(true)) {
                Ok(f) => {
                    self.data = DataWriter::direct(policy);
                    f
                }
                Err(e) if direct_io::is_refusal(&e) => {
                    policy.refused(&e);
                    open(direct_io::open_flags(false))?
                }
                Err(e) => return Err(e),
            },
        };
        self.file = Some(f);
        Ok(())
    }

    /// Writes the next chunk; runs of zeros become holes.
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.open()?;
        match &self.file {
            Some(f) => self.data.write(f, data),
            None => Err(std::io::Error::other("file not open")),
        }
    }

    /// Sets the length, mode, owner and mtime, and renames the file into place.
    fn finish(&mut self, meta: &FileMeta, dst: &Path) -> Result<bool> {
        // Errors name the file being restored, not its temporary name.
        let io_tmp = |e| Error::io(dst, e);
        self.open().map_err(io_tmp)?;
        let Some(f) = &self.file else {
            return Err(io_tmp(std::io::Error::other("file not open")));
        };
        self.data.finish(f).map_err(io_tmp)?;
        meta.apply_to_file(f).map_err(io_tmp)?;
        self.file = None;
        let r = replace_with_blocking(meta.delete_extra, &self.tmp, dst);
        if r.is_err() {
            // Not renamed: do not leave the temporary name behind.
            let _ = std::fs::remove_file(&self.tmp);
        }
        r
    }
}

/// What [`apply_metadata`] sets, for use on blocking threads.
#[derive(Clone)]
struct FileMeta {
    owners: Option<(u32, u32)>,
    mode: u32,
    mtime: FileTime,
    delete_extra: bool,
}

impl FileMeta {
    fn of(ctx: &Ctx, entry: &DirEntry) -> Self {
        FileMeta {
            owners: ctx.opts.restore_owners.then_some((entry.uid, entry.gid)),
            mode: posix_mode_from_go(entry.mode),
            mtime: file_time(entry),
            delete_extra: ctx.opts.delete_extra,
        }
    }

    /// Owner, mode and mtime through the open file (no path lookups).
    fn apply_to_file(&self, f: &std::fs::File) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if let Some((uid, gid)) = self.owners {
            // chown before chmod: chown clears setuid/setgid bits.
            std::os::unix::fs::fchown(f, Some(uid), Some(gid))?;
        }
        f.set_permissions(std::fs::Permissions::from_mode(self.mode))?;
        filetime::set_file_handle_times(f, Some(self.mtime), Some(self.mtime))
    }
}

/// [`replace_with`] on a blocking thread; returns whether a directory was deleted.
fn replace_with_blocking(delete_extra: bool, tmp: &Path, dst: &Path) -> Result<bool> {
    // The common case (nothing there, or a file) needs no look first: rename replaces a
    // file and fails on a directory.
    let Err(rename_error) = std::fs::rename(tmp, dst) else {
        return Ok(false);
    };
    match std::fs::symlink_metadata(dst) {
        Ok(m) if m.is_dir() => {
            if delete_extra {
                std::fs::remove_dir_all(dst).map_err(|e| Error::io(dst, e))?;
                std::fs::rename(tmp, dst).map_err(|e| Error::io(dst, e))?;
                Ok(true)
            } else {
                let _ = std::fs::remove_file(tmp);
                Err(Error::Config(format!(
                    "{} is a directory in the target where the snapshot has a file or symlink (use delete-extra to replace it)",
                    dst.display()
                )))
            }
        }
        _ => Err(Error::io(dst, rename_error)),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Cancelled(e.to_string()))
}

async fn write_file(ctx: &Ctx, entry: &DirEntry, dst: &Path, out: &mut OutFile) -> Result<()> {
    let chunks = ctx.repo.object_chunks(&entry.object).await?;
    let total: u64 = chunks.iter().map(|c| c.length).sum();
    if i64::try_from(total).ok() != Some(entry.size) && entry.size != 0 {
        tracing::warn!(
            "{}: listing says {} bytes, object holds {total}",
            entry.name,
            entry.size
        );
    }
    let count = chunks.len();
    let (repo, budget) = (ctx.repo.clone(), ctx.budget.clone());
    // Budget permits are taken in chunk order, so a file's first unwritten chunk always
    // holds its permits before its later ones: the budget cannot deadlock.
    let stream = futures::stream::iter(chunks)
        .then(move |c| {
            let budget = budget.clone();
            async move {
                let kib = u32::try_from(c.length.div_ceil(1024))
                    .unwrap_or(u32::MAX)
                    .clamp(1, CHUNK_BUDGET_KIB);
                let permit = budget.acquire_many_owned(kib).await.map_err(closed)?;
                Ok::<_, Error>((c, permit))
            }
        })
        .map(move |r| {
            let repo = repo.clone();
            async move {
                let (c, permit) = r?;
                Ok::<_, Error>((repo.read_chunk(&c).await?, permit))
            }
        })
        .buffered(ctx.opts.chunk_prefetch.max(1));
    let mut stream = std::pin::pin!(stream);
    let meta = FileMeta::of(ctx, entry);
    let mut file = std::mem::replace(out, OutFile::buffered(PathBuf::new()));
    let dst = dst.to_path_buf();
    let mut n = 0;
    let mut finished = false;
    let mut result = Ok(());
    while let Some(item) = stream.next().await {
        let (data, permit) = match item {
            Ok(x) => x,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        n += 1;
        let last = n == count;
        ctx.counters
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let meta = last.then(|| meta.clone());
        let dst = dst.clone();
        let (f, r) = blocking(move || {
            let mut file = file;
            let r = file
                .write(&data)
                .map_err(|e| Error::io(&dst, e))
                .and_then(|()| match &meta {
                    Some(m) => file.finish(m, &dst),
                    None => Ok(false),
                });
            drop(data);
            (file, r)
        })
        .await?;
        drop(permit);
        file = f;
        match r {
            Ok(deleted) => {
                if deleted {
                    ctx.counters.deleted.fetch_add(1, Ordering::Relaxed);
                }
                finished = last;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() && !finished {
        // An empty object (no chunks): create the empty file and finish it.
        let (f, r) = blocking(move || {
            let mut file = file;
            let r = file.finish(&meta, &dst);
            (file, r)
        })
        .await?;
        file = f;
        result = r.map(|deleted| {
            if deleted {
                ctx.counters.deleted.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    *out = file;
    result
}
