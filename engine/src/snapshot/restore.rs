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
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::tree::validate_listing;
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
    let ctx = Arc::new(Ctx {
        repo: repo.clone(),
        opts,
        counters: Counters::default(),
        root: target.to_path_buf(),
    });
    match entry.entry_type {
        EntryType::Directory => {
            tokio::fs::create_dir_all(target)
                .await
                .map_err(|e| Error::io(target, e))?;
            restore_dir(ctx.clone(), entry.clone(), target.to_path_buf()).await?;
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

/// Makes sure `path` is a real directory we can write into (never a symlink).
async fn ensure_dir(ctx: &Ctx, path: &Path) -> Result<()> {
    match tokio::fs::symlink_metadata(path).await {
        Ok(m) if m.file_type().is_symlink() => Err(Error::Config(format!(
            "refusing to restore into {}: it is a symlink in the target",
            path.display()
        ))),
        Ok(m) if m.is_dir() => {
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
) -> futures::future::BoxFuture<'static, Result<()>> {
    Box::pin(async move {
        ensure_dir(&ctx, &path).await?;
        let listing = ctx.repo.read_dir(&entry.object).await?;
        validate_listing(&listing)?;
        let (dirs, others): (Vec<DirEntry>, Vec<DirEntry>) = listing
            .entries
            .iter()
            .cloned()
            .partition(|e| e.entry_type == EntryType::Directory);
        futures::stream::iter(others.into_iter().map(|e| {
            let ctx = ctx.clone();
            let p = path.join(&e.name);
            async move {
                match e.entry_type {
                    EntryType::File => restore_file(&ctx, &e, &p).await,
                    EntryType::Symlink => restore_symlink(&ctx, &e, &p).await,
                    _ => {
                        tracing::warn!(
                            "skipping {}: entry type kopia does not restore",
                            p.display()
                        );
                        Ok(())
                    }
                }
            }
        }))
        .buffer_unordered(ctx.opts.parallel_files.max(1))
        .try_collect::<()>()
        .await?;
        for d in dirs {
            let p = path.join(&d.name);
            restore_dir(ctx.clone(), d, p).await?;
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
                    "{} is a directory in the target but not in the snapshot (use delete-extra to replace it)",
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
    let tmp = temp_name(dir, &entry.name);
    let result = write_file_data(ctx, entry, &tmp).await;
    let result = match result {
        Ok(()) => apply_metadata(ctx, entry, &tmp, false).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    replace_with(ctx, &tmp, path).await?;
    ctx.counters.files.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

async fn write_file_data(ctx: &Ctx, entry: &DirEntry, tmp: &Path) -> Result<()> {
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .await
        .map_err(|e| Error::io(tmp, e))?;
    let chunks = ctx.repo.object_chunks(&entry.object).await?;
    let total: u64 = chunks.iter().map(|c| c.length).sum();
    if i64::try_from(total).ok() != Some(entry.size) && entry.size != 0 {
        tracing::warn!(
            "{}: listing says {} bytes, object holds {total}",
            entry.name,
            entry.size
        );
    }
    let repo = ctx.repo.clone();
    let mut stream = futures::stream::iter(chunks.into_iter().map(move |c| {
        let repo = repo.clone();
        async move { repo.read_chunk(&c).await }
    }))
    .buffered(ctx.opts.chunk_prefetch.max(1));
    let mut pos: u64 = 0;
    let mut written_end: u64 = 0;
    while let Some(data) = stream.next().await {
        let data = data?;
        let len = data.len() as u64;
        ctx.counters.bytes.fetch_add(len, Ordering::Relaxed);
        if data.iter().all(|&b| b == 0) {
            pos += len;
            continue;
        }
        if pos != written_end {
            f.seek(std::io::SeekFrom::Start(pos))
                .await
                .map_err(|e| Error::io(tmp, e))?;
        }
        f.write_all(&data).await.map_err(|e| Error::io(tmp, e))?;
        pos += len;
        written_end = pos;
    }
    if pos != written_end {
        f.set_len(pos).await.map_err(|e| Error::io(tmp, e))?;
    }
    f.flush().await.map_err(|e| Error::io(tmp, e))?;
    Ok(())
}
