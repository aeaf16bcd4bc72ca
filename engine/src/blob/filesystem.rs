//! Filesystem (and NFS) blob storage with Kopia's on-disk layout (FORMAT.md §1.1).
//!
//! Layout facts (kopia `repo/blob/sharded/`, `repo/blob/filesystem/` at v0.23.1):
//! * The root holds `.shards`, JSON `{"default":[1,3],"maxNonShardedLength":20}` for
//!   repositories created by current kopia (`overrides` optional: first prefix match wins).
//! * A missing `.shards` in an existing repository means the legacy layout: shards `[3,3]`
//!   with `maxNonShardedLength` 20. Kopia then writes the file; we never write on open, so a
//!   read-only share stays untouched.
//! * A blob ID no longer than `maxNonShardedLength` lives at the root; otherwise, for each
//!   shard length `k` while the remaining ID is longer than `k`, the first `k` characters
//!   become a directory. The file name is the remainder plus `.f`.
//! * Only files ending in `.f` are blobs; anything else (temp files, `.shards`) is ignored.
//!
//! Writes go to `<path>.tmp.<16 hex>` (mode 0600, directories 0700 like kopia), are fsync'd,
//! renamed over the final name, and the directory is fsync'd, so a crash never exposes a
//! partial blob. This is also what keeps NFS readers safe: rename is atomic on NFS.

use arkiv_format::ids::BlobId;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{BlobMetadata, BlobStorage};
use crate::direct_io::{self, AlignedBuf, Switch};
use crate::error::io_kind;
use crate::{Error, ErrorKind, Result};

/// The youngest temporary file [`remove_stale_temporaries`] removes, whatever the margin.
pub const MIN_TEMPORARY_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// A missing `.shards` means kopia's legacy layout (three-character shard directories). A root
/// with one-character shard directories (`p/`, `q/`, `x/`: the current layout) but no
/// `.shards` has lost the file: reading it as legacy would report every blob as missing, so
/// the problem is named instead (corrupt, exit 5), with the fix.
fn check_shards_not_lost(root: &Path) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Ok(());
    };
    let current_layout = rd
        .flatten()
        .any(|e| e.file_name().len() == 1 && e.file_type().is_ok_and(|t| t.is_dir()));
    if !current_layout {
        return Ok(());
    }
    let default = ShardParameters::kopia_default().to_file_bytes();
    Err(Error::Storage {
        storage: describe(root),
        op: "open",
        target: SHARDS_FILE.into(),
        kind: ErrorKind::Corrupt,
        message: format!(
            "the sharding file is missing, but the directory has kopia's current layout \
             (one-character shard directories), so no blob can be found; recreate {} with \
             the content {} (kopia's default), then run `arkiv verify`",
            root.join(SHARDS_FILE).display(),
            String::from_utf8_lossy(&default).trim_end()
        ),
    })
}

/// Removes temporary files (`*.tmp.*`, what [`FilesystemStorage`] writes before its rename)
/// under `root` whose last modification is older than `margin`, and never younger than
/// [`MIN_TEMPORARY_AGE`]: the leftovers of writers that were killed between writing and
/// renaming. Younger ones may belong to a writer still running (whose rename would fail) and
/// stay. Returns how many were removed. Full maintenance calls this with its blob-deletion
/// safety margin.
pub fn remove_stale_temporaries(
    root: &Path,
    margin: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<usize> {
    let min_age = margin.max(MIN_TEMPORARY_AGE);
    let mut removed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| storage_err(root, "clean", "", &e))?;
        for e in rd {
            let e = e.map_err(|err| storage_err(root, "clean", "", &err))?;
            let Ok(ft) = e.file_type() else { continue };
            let path = e.path();
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            let name = e.file_name();
            if !ft.is_file() || !name.to_string_lossy().contains(".tmp.") {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| (now - DateTime::<Utc>::from(t)).to_std().ok())
                .is_some_and(|age| age >= min_age);
            if old {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                    Err(err) => {
                        let target = path
                            .strip_prefix(root)
                            .unwrap_or(&path)
                            .display()
                            .to_string();
                        return Err(storage_err(root, "clean", &target, &err));
                    }
                }
            }
        }
    }
    Ok(removed)
}

/// Name of the sharding parameters file at the repository root.
pub const SHARDS_FILE: &str = ".shards";
/// Suffix of complete blob files.
pub const BLOB_SUFFIX: &str = ".f";
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

/// Sharding parameters (`.shards`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardParameters {
    /// Directory-name lengths applied in order.
    #[serde(rename = "default")]
    pub default_shards: Vec<usize>,
    /// Blob IDs up to this length are never sharded.
    #[serde(rename = "maxNonShardedLength")]
    pub max_non_sharded_length: usize,
    /// Per-prefix shard overrides; the first matching prefix wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<ShardOverride>,
}

/// One prefix override in `.shards`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardOverride {
    /// Blob ID prefix.
    pub prefix: String,
    /// Shard lengths for IDs with that prefix.
    pub shards: Vec<usize>,
}

impl ShardParameters {
    /// What current kopia writes for new repositories: `[1,3]`, 20.
    pub fn kopia_default() -> Self {
        ShardParameters {
            default_shards: vec![1, 3],
            max_non_sharded_length: 20,
            overrides: Vec::new(),
        }
    }

    /// Assumed when `.shards` is missing (repositories made by old kopia versions).
    pub fn legacy() -> Self {
        ShardParameters {
            default_shards: vec![3, 3],
            max_non_sharded_length: 20,
            overrides: Vec::new(),
        }
    }

    fn shards_for(&self, id: &str) -> &[usize] {
        self.overrides
            .iter()
            .find(|o| id.starts_with(&o.prefix))
            .map_or(&self.default_shards, |o| &o.shards)
    }

    /// Relative directory components and file name of a blob.
    pub fn relative_path(&self, id: &str) -> PathBuf {
        let mut path = PathBuf::new();
        let mut rest = id;
        if id.len() > self.max_non_sharded_length {
            for &k in self.shards_for(id) {
                if rest.len() <= k {
                    break;
                }
                // Blob IDs are validated ASCII, so byte indexing is on char boundaries.
                let (dir, tail) = rest.split_at(k);
                path.push(dir);
                rest = tail;
            }
        }
        path.push(format!("{rest}{BLOB_SUFFIX}"));
        path
    }

    /// The `.shards` file contents as kopia writes them (`json.Encoder`: compact + newline).
    pub fn to_file_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

/// Blobs at least this long whose bytes start on a [`direct_io::ALIGN`] address (the packs
/// the content writer builds) are written with `O_DIRECT`.
pub const DIRECT_IO_MIN: usize = 1 << 20;

/// Knobs of a [`FilesystemStorage`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilesystemOptions {
    /// Write large aligned blobs (packs) with `O_DIRECT` where the filesystem allows it
    /// (default); off: buffered writes only.
    pub direct_io: bool,
    /// Modes and owner of the files and directories this storage creates.
    pub permissions: Permissions,
}

impl Default for FilesystemOptions {
    fn default() -> Self {
        FilesystemOptions {
            direct_io: true,
            permissions: Permissions::default(),
        }
    }
}

/// Modes and owner of newly created files and directories: kopia's filesystem options
/// `--file-mode`, `--dir-mode`, `--owner-uid`, `--owner-gid` (kopia
/// `repo/blob/filesystem/filesystem_options.go`: `fileMode`, `dirMode`, `uid`, `gid`).
///
/// Same semantics as kopia, with one difference said here: kopia passes the modes to
/// `open`/`mkdir`, so the process umask still removes bits (a container's umask 022 turns
/// 0660 into 0640); arkiv sets the modes exactly (`fchmod`/`chmod` after creating), which is
/// what a repository shared by several uids needs. As in kopia, the owner is changed only
/// when both ids are given and the process runs as root; a failed `chown` is logged, not
/// fatal. Existing files and directories are never changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    /// Mode of new files (kopia's default 0600).
    pub file_mode: u32,
    /// Mode of new directories (kopia's default 0700).
    pub dir_mode: u32,
    /// Owner uid of new files and directories.
    pub owner_uid: Option<u32>,
    /// Owner gid of new files and directories.
    pub owner_gid: Option<u32>,
}

impl Default for Permissions {
    fn default() -> Self {
        Permissions {
            file_mode: FILE_MODE,
            dir_mode: DIR_MODE,
            owner_uid: None,
            owner_gid: None,
        }
    }
}

impl Permissions {
    /// True when the modes differ from kopia's defaults or an owner is given: the modes are
    /// then set explicitly (a default-mode repository keeps kopia's exact behaviour).
    fn explicit(&self) -> bool {
        *self != Permissions::default()
    }

    /// Applies mode and owner to a file or directory this storage just created.
    fn apply(&self, path: &Path, mode: u32) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if self.explicit() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        if let (Some(uid), Some(gid)) = (self.owner_uid, self.owner_gid) {
            if nix::unistd::geteuid().is_root() {
                if let Err(e) = std::os::unix::fs::chown(path, Some(uid), Some(gid)) {
                    tracing::warn!("cannot change the owner of {}: {e}", path.display());
                }
            }
        }
        Ok(())
    }

    /// Creates `dir` and its missing parents under `root` with [`Permissions::dir_mode`].
    fn create_dirs(&self, root: &Path, dir: &Path) -> std::io::Result<()> {
        let mut missing = Vec::new();
        let mut cur = dir;
        while !cur.exists() {
            missing.push(cur.to_path_buf());
            match cur.parent() {
                Some(p) if cur != root => cur = p,
                _ => break,
            }
        }
        for d in missing.iter().rev() {
            match std::fs::DirBuilder::new().mode(self.dir_mode).create(d) {
                Ok(()) => self.apply(d, self.dir_mode)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Blob storage in a local or NFS-mounted directory.
///
/// Packs are written with `O_DIRECT` where the filesystem allows it (see
/// [`crate::direct_io`]): a backup then does not copy every pack into the page cache, and
/// the fsync that follows has little left to flush. A filesystem that refuses direct I/O
/// (tmpfs, some FUSE mounts) gets ordinary buffered writes from then on;
/// [`FilesystemOptions::direct_io`] off asks for buffered writes from the start.
#[derive(Debug, Clone)]
pub struct FilesystemStorage {
    root: PathBuf,
    params: ShardParameters,
    /// Off once direct I/O was refused (shared by clones) or when turned off.
    direct_io: Switch,
    /// Modes and owner of what this storage creates.
    perms: Permissions,
}

impl FilesystemStorage {
    /// Opens an existing directory with default options. Reads `.shards` (legacy `[3,3]`
    /// if absent); writes nothing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        Self::open_with(root, &FilesystemOptions::default())
    }

    /// [`Self::open`] with `opts`.
    pub fn open_with(root: impl Into<PathBuf>, opts: &FilesystemOptions) -> Result<Self> {
        let root = root.into();
        let meta = std::fs::metadata(&root).map_err(|e| storage_err(&root, "open", "", &e))?;
        if !meta.is_dir() {
            return Err(Error::Storage {
                storage: describe(&root),
                op: "open",
                target: String::new(),
                kind: ErrorKind::Config,
                message: "not a directory".into(),
            });
        }
        let params = match std::fs::read(root.join(SHARDS_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Storage {
                storage: describe(&root),
                op: "open",
                target: SHARDS_FILE.into(),
                kind: ErrorKind::Corrupt,
                message: format!("invalid sharding parameters: {e}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                check_shards_not_lost(&root)?;
                ShardParameters::legacy()
            }
            Err(e) => return Err(storage_err(&root, "open", SHARDS_FILE, &e)),
        };
        Ok(FilesystemStorage {
            root,
            params,
            direct_io: Switch::new(opts.direct_io),
            perms: opts.permissions,
        })
    }

    /// Turns direct I/O for large aligned blobs on or off (as the options say at first;
    /// it also goes off by itself when the filesystem refuses it).
    pub fn set_direct_io(&self, on: bool) {
        self.direct_io.set(on);
    }

    /// Whether large aligned blobs are (still) written with direct I/O.
    pub fn direct_io(&self) -> bool {
        self.direct_io.is_on()
    }

    /// Creates the directory (and parents) if missing and writes `.shards` with kopia's
    /// current defaults unless one exists already; default options.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        Self::create_with(root, &FilesystemOptions::default())
    }

    /// [`Self::create`] with `opts`.
    pub fn create_with(root: impl Into<PathBuf>, opts: &FilesystemOptions) -> Result<Self> {
        let root = root.into();
        let perms = &opts.permissions;
        if perms.explicit() {
            perms.create_dirs(Path::new("/"), &root)
        } else {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(&root)
        }
        .map_err(|e| storage_err(&root, "create", "", &e))?;
        let shards = root.join(SHARDS_FILE);
        if !shards.exists() {
            let params = ShardParameters::kopia_default();
            write_atomic_with(&root, &shards, &params.to_file_bytes(), None, perms)
                .map_err(|e| storage_err(&root, "create", SHARDS_FILE, &e))?;
        }
        Self::open_with(root, opts)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sharding parameters in use.
    pub fn shard_parameters(&self) -> &ShardParameters {
        &self.params
    }

    /// Absolute path of a blob's file.
    pub fn blob_path(&self, id: &BlobId) -> Result<PathBuf> {
        validate_blob_id(id).map_err(|m| Error::Storage {
            storage: self.describe(),
            op: "path",
            target: id.to_string(),
            kind: ErrorKind::Config,
            message: m,
        })?;
        Ok(self.root.join(self.params.relative_path(id.as_str())))
    }

    /// Sets a blob's modification time (used by tests that simulate time).
    pub fn set_timestamp(&self, id: &BlobId, t: DateTime<Utc>) -> Result<()> {
        let path = self.blob_path(id)?;
        let f = std::fs::File::options()
            .write(true)
            .open(&path)
            .map_err(|e| self.err("touch", id.as_str(), &e))?;
        f.set_modified(t.into())
            .map_err(|e| self.err("touch", id.as_str(), &e))
    }

    fn err(&self, op: &'static str, target: &str, e: &std::io::Error) -> Error {
        storage_err(&self.root, op, target, e)
    }

    /// Writes a plain file at `rel` (slash-separated, relative to the root), atomically and
    /// with this storage's permissions: for objects outside kopia's blob namespace, such as
    /// arkiv's source markers. The name must not end in `.f` and no component may start with
    /// `.`, so neither kopia's listing nor arkiv's ever takes it for a blob.
    pub async fn put_file(&self, rel: &str, data: Bytes) -> Result<()> {
        let bad = rel.is_empty()
            || rel.ends_with(BLOB_SUFFIX)
            || rel
                .split('/')
                .any(|c| c.is_empty() || c.starts_with('.') || c.contains('\\'));
        if bad {
            return Err(Error::Storage {
                storage: self.describe(),
                op: "put_file",
                target: rel.to_owned(),
                kind: ErrorKind::Config,
                message: "not a plain relative file name outside the blob namespace".into(),
            });
        }
        let path = self.root.join(rel);
        let this = self.clone();
        let rel = rel.to_owned();
        blocking(move || {
            write_atomic_with(&this.root, &path, &data, None, &this.perms)
                .map_err(|e| this.err("put_file", &rel, &e))
        })
        .await
    }
}

fn describe(root: &Path) -> String {
    format!("filesystem://{}", root.display())
}

fn storage_err(root: &Path, op: &'static str, target: &str, e: &std::io::Error) -> Error {
    Error::Storage {
        storage: describe(root),
        op,
        target: target.to_owned(),
        kind: io_kind(e),
        message: e.to_string(),
    }
}

/// Blob IDs are kopia names: printable ASCII without path separators.
fn validate_blob_id(id: &BlobId) -> std::result::Result<(), String> {
    let s = id.as_str();
    if s.is_empty() {
        return Err("empty blob ID".into());
    }
    if s.starts_with('.') {
        return Err("blob ID must not start with '.'".into());
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
    {
        return Err("blob ID must be printable ASCII without path separators".into());
    }
    Ok(())
}

fn to_utc(t: std::io::Result<std::time::SystemTime>) -> DateTime<Utc> {
    t.map(DateTime::<Utc>::from).unwrap_or_default()
}

fn random_suffix() -> String {
    let r: [u8; 8] = rand::random();
    hex::encode(r)
}

/// Writes `data` to `path` atomically: temp file in the same directory, fsync, rename,
/// fsync of the directory. Creates missing parent directories (`perms`: mode 0700 unless
/// set otherwise). With `O_DIRECT` when `direct` is given and on, `data` is long enough
/// and starts on an aligned address. A refusal (`EINVAL`: the filesystem or the
/// alignment) turns `direct` off and the blob is written again, buffered.
fn write_atomic_with(
    root: &Path,
    path: &Path,
    data: &[u8],
    direct: Option<&Switch>,
    perms: &Permissions,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(root);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!("{file_name}.tmp.{}", random_suffix()));
    let direct = direct.filter(|d| {
        d.is_on()
            && data.len() >= DIRECT_IO_MIN
            && (data.as_ptr().align_offset(direct_io::ALIGN) == 0 || force_direct())
    });
    let open = |p: &Path, direct: bool| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(perms.file_mode)
            .custom_flags(direct_io::open_flags(direct))
            .open(p)
    };
    let opened = match open(&tmp, direct.is_some()) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if perms.explicit() {
                perms.create_dirs(root, dir)?;
            } else {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(dir)?;
            }
            open(&tmp, direct.is_some())
        }
        r => r,
    };
    let mut f = match (opened, direct) {
        (Ok(f), _) => f,
        (Err(e), Some(switch)) if direct_io::is_refusal(&e) => {
            switch.refused(&e);
            return write_atomic_with(root, path, data, None, perms);
        }
        (Err(e), _) => return Err(e),
    };
    let result = (|| {
        if direct.is_some() {
            write_direct(&f, data)?;
        } else {
            f.write_all(data)?;
        }
        perms.apply(&tmp, perms.file_mode)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    match (result, direct) {
        (Ok(()), _) => Ok(()),
        (Err(e), Some(switch)) if direct_io::is_refusal(&e) => {
            let _ = std::fs::remove_file(&tmp);
            switch.refused(&e);
            write_atomic_with(root, path, data, None, perms)
        }
        (Err(e), _) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Tests only: take the direct path even for an unaligned buffer (which the kernel
    /// then refuses), to exercise the fallback.
    static FORCE_DIRECT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
fn force_direct() -> bool {
    FORCE_DIRECT.get()
}

#[cfg(not(test))]
fn force_direct() -> bool {
    false
}

/// Writes `data` (aligned address) to a new file opened with `O_DIRECT`: the aligned
/// body in place, then the last partial block through a small aligned buffer padded with
/// zeros, then the file is cut back to `data.len()`.
fn write_direct(f: &std::fs::File, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let body = data.len() - data.len() % direct_io::ALIGN;
    let (head, tail) = data.split_at(body);
    f.write_all_at(head, 0)?;
    if !tail.is_empty() {
        let mut buf = AlignedBuf::zeroed(direct_io::ALIGN);
        let block = buf.as_mut_slice();
        block
            .get_mut(..tail.len())
            .ok_or_else(|| std::io::Error::other("last block longer than the alignment"))?
            .copy_from_slice(tail);
        f.write_all_at(block, body as u64)?;
        f.set_len(data.len() as u64)?;
    }
    Ok(())
}

fn read_range(path: &Path, range: Option<Range<u64>>) -> std::io::Result<Vec<u8>> {
    match range {
        None => std::fs::read(path),
        Some(r) => {
            let len = r.end.checked_sub(r.start).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "range end before start")
            })?;
            let mut f = std::fs::File::open(path)?;
            let size = f.metadata()?.len();
            if r.end > size {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "truncated blob: range {}..{} requested but the blob has {size} bytes",
                        r.start, r.end
                    ),
                ));
            }
            f.seek(SeekFrom::Start(r.start))?;
            let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
            f.read_exact(&mut buf)?;
            Ok(buf)
        }
    }
}

fn list_dir(
    dir: &Path,
    current: &str,
    prefix: &str,
    out: &mut Vec<BlobMetadata>,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !current.is_empty() => {
            return Ok(()); // shard directory removed while listing
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let ft = match entry.file_type() {
            Ok(ft) => ft,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let full = format!("{current}{name}");
        if ft.is_dir() {
            let matches = if prefix.len() > full.len() {
                prefix.starts_with(&full)
            } else {
                full.starts_with(prefix)
            };
            if matches {
                list_dir(&entry.path(), &full, prefix, out)?;
            }
            continue;
        }
        let Some(id) = full.strip_suffix(BLOB_SUFFIX) else {
            continue;
        };
        if !id.starts_with(prefix) || name.starts_with('.') {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.push(BlobMetadata {
            id: BlobId::new(id),
            length: meta.len(),
            timestamp: to_utc(meta.modified()),
        });
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Cancelled(format!("blocking task failed: {e}")))?
}

#[async_trait]
impl BlobStorage for FilesystemStorage {
    async fn get(&self, id: &BlobId, range: Option<Range<u64>>) -> Result<Bytes> {
        let path = self.blob_path(id)?;
        let this = self.clone();
        let id = id.clone();
        blocking(move || match read_range(&path, range) {
            Ok(v) => Ok(Bytes::from(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::BlobNotFound {
                storage: this.describe(),
                id,
            }),
            Err(e) => Err(this.err("get", id.as_str(), &e)),
        })
        .await
    }

    async fn get_metadata(&self, id: &BlobId) -> Result<BlobMetadata> {
        let path = self.blob_path(id)?;
        let this = self.clone();
        let id = id.clone();
        blocking(move || match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(BlobMetadata {
                id,
                length: m.len(),
                timestamp: to_utc(m.modified()),
            }),
            Ok(_) => Err(Error::BlobNotFound {
                storage: this.describe(),
                id,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::BlobNotFound {
                storage: this.describe(),
                id,
            }),
            Err(e) => Err(this.err("stat", id.as_str(), &e)),
        })
        .await
    }

    async fn put(&self, id: &BlobId, data: Bytes) -> Result<()> {
        let path = self.blob_path(id)?;
        let this = self.clone();
        let id = id.clone();
        blocking(move || {
            write_atomic_with(&this.root, &path, &data, Some(&this.direct_io), &this.perms)
                .map_err(|e| this.err("put", id.as_str(), &e))
        })
        .await
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        let path = self.blob_path(id)?;
        let this = self.clone();
        let id = id.clone();
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(this.err("delete", id.as_str(), &e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let this = self.clone();
        let prefix = prefix.to_owned();
        blocking(move || {
            let mut out = Vec::new();
            list_dir(&this.root, "", &prefix, &mut out)
                .map_err(|e| this.err("list", &prefix, &e))?;
            out.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(out)
        })
        .await
    }

    fn describe(&self) -> String {
        describe(&self.root)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn sharding_matches_kopia() {
        let p = ShardParameters::kopia_default();
        let id = "p0123abcdef0123456789abcdef012345-s0123456789abcdef142";
        assert_eq!(
            p.relative_path(id),
            PathBuf::from("p/012/3abcdef0123456789abcdef012345-s0123456789abcdef142.f")
        );
        assert_eq!(
            p.relative_path("kopia.repository"),
            PathBuf::from("kopia.repository.f")
        );
        let legacy = ShardParameters::legacy();
        assert_eq!(
            legacy.relative_path("n0123456789abcdef0123456789abcdef"),
            PathBuf::from("n01/234/56789abcdef0123456789abcdef.f")
        );
        assert_eq!(
            String::from_utf8(p.to_file_bytes()).unwrap(),
            "{\"default\":[1,3],\"maxNonShardedLength\":20}\n"
        );
    }

    #[test]
    fn fixture_shards_file_parses() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/kopia/fixtures/repo-a");
        let bytes = std::fs::read(root.join(SHARDS_FILE)).unwrap();
        let p: ShardParameters = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(p, ShardParameters::kopia_default());
        assert_eq!(p.to_file_bytes(), bytes);
    }

    #[tokio::test]
    async fn roundtrip_and_listing() {
        let dir = tempfile::tempdir().unwrap();
        let s = FilesystemStorage::create(dir.path().join("repo")).unwrap();
        let ids = [
            "p0123456789abcdef0123456789abcdef-s0123456789abcdef142",
            "q0123456789abcdef0123456789abcdef-s0123456789abcdef142",
            "xn0_5afa384d109a8c693f821e95fb361402-s0123456789abcdef142-c1",
            "kopia.repository",
        ];
        for (i, id) in ids.iter().enumerate() {
            s.put(&BlobId::from(*id), Bytes::from(vec![i as u8; 10 + i]))
                .await
                .unwrap();
        }
        let all = s.list("").await.unwrap();
        let mut want: Vec<&str> = ids.to_vec();
        want.sort();
        assert_eq!(all.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), want);
        let xn = s.list("xn0_").await.unwrap();
        assert_eq!(xn.len(), 1);
        assert_eq!(xn[0].length, 12);
        let got = s.get(&BlobId::from(ids[1]), Some(2..5)).await.unwrap();
        assert_eq!(&got[..], &[1, 1, 1]);
        let err = s
            .get(&BlobId::from(ids[1]), Some(5..100))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        let missing = s.get(&BlobId::from("pdeadbeef"), None).await.unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        s.delete(&BlobId::from(ids[0])).await.unwrap();
        s.delete(&BlobId::from(ids[0])).await.unwrap();
        assert_eq!(s.list("p").await.unwrap().len(), 0);
        assert!(s.blob_path(&BlobId::from("../etc")).is_err());
    }

    /// `len` bytes of a pattern, starting `skew` bytes after a 4096-aligned address.
    fn pattern(len: usize, skew: usize) -> Bytes {
        let mut v = vec![0u8; len + direct_io::ALIGN + skew];
        let at = v.as_ptr().align_offset(direct_io::ALIGN) + skew;
        for (i, b) in v[at..at + len].iter_mut().enumerate() {
            *b = (i * 7 + i / 4093) as u8;
        }
        Bytes::from(v).slice(at..at + len)
    }

    fn leftovers(root: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().contains(".tmp.") {
                    out.push(p);
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn large_aligned_blobs_round_trip_with_and_without_direct_io() {
        let dir = tempfile::tempdir().unwrap();
        let s = FilesystemStorage::create(dir.path().join("repo")).unwrap();
        let cases = [
            // (length, skew from alignment): tail block, exact blocks, unaligned, small
            (3 * DIRECT_IO_MIN + 123, 0),
            (DIRECT_IO_MIN, 0),
            (2 * DIRECT_IO_MIN + 1, 1),
            (DIRECT_IO_MIN - 1, 0),
        ];
        for direct in [true, false] {
            s.set_direct_io(direct);
            for (n, &(len, skew)) in cases.iter().enumerate() {
                let id = BlobId::new(format!("p{direct}{n:030}"));
                let data = pattern(len, skew);
                assert_eq!(data.as_ptr().align_offset(direct_io::ALIGN) == 0, skew == 0);
                s.put(&id, data.clone()).await.unwrap();
                let path = s.blob_path(&id).unwrap();
                assert_eq!(std::fs::metadata(&path).unwrap().len(), len as u64);
                assert!(s.get(&id, None).await.unwrap() == data, "{direct} {len}");
                let tail = (len - 5) as u64..len as u64;
                assert_eq!(s.get(&id, Some(tail)).await.unwrap(), data.slice(len - 5..));
                // Replacing a blob works the same way.
                s.put(&id, data.clone()).await.unwrap();
                assert!(s.get(&id, None).await.unwrap() == data);
            }
        }
        assert!(leftovers(s.root()).is_empty());
    }

    #[test]
    fn refused_direct_io_falls_back_to_buffered_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = FilesystemStorage::create(dir.path().join("repo")).unwrap();
        // An address one byte past alignment: filesystems that support O_DIRECT refuse
        // the write with EINVAL, and the blob must then be written buffered.
        let data = pattern(2 * DIRECT_IO_MIN + 77, 1);
        let path = s.blob_path(&BlobId::from("pfallback0123456789")).unwrap();
        let switch = Switch::new(true);
        FORCE_DIRECT.set(true);
        let r = write_atomic_with(
            s.root(),
            &path,
            &data,
            Some(&switch),
            &Permissions::default(),
        );
        FORCE_DIRECT.set(false);
        r.unwrap();
        assert!(std::fs::read(&path).unwrap() == data[..]);
        assert!(leftovers(s.root()).is_empty());
        eprintln!(
            "direct I/O still on after an unaligned write: {} (off means the fallback ran)",
            switch.is_on()
        );
    }

    #[test]
    fn direct_io_switch() {
        let dir = tempfile::tempdir().unwrap();
        let s = FilesystemStorage::create(dir.path().join("repo")).unwrap();
        assert!(s.direct_io(), "on by default");
        s.set_direct_io(false);
        assert!(!s.direct_io());
        // Clones share the switch (the fallback turns it off for every user).
        let c = s.clone();
        c.set_direct_io(true);
        assert!(s.direct_io());
        let off = FilesystemOptions {
            direct_io: false,
            ..FilesystemOptions::default()
        };
        let o = FilesystemStorage::open_with(s.root(), &off).unwrap();
        assert!(!o.direct_io());
        let o = FilesystemStorage::create_with(dir.path().join("other"), &off).unwrap();
        assert!(!o.direct_io());
    }

    #[tokio::test]
    async fn permissions_apply_to_new_files_and_directories() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let mut opts = FilesystemOptions::default();
        opts.permissions.file_mode = 0o660;
        opts.permissions.dir_mode = 0o2770;
        let root = dir.path().join("shared/repo");
        let s = FilesystemStorage::create_with(&root, &opts).unwrap();
        assert_eq!(mode(&root), 0o2770);
        assert_eq!(mode(&dir.path().join("shared")), 0o2770);
        assert_eq!(mode(&root.join(SHARDS_FILE)), 0o660);
        let id = BlobId::from("p0123456789abcdef0123456789abcdef");
        s.put(&id, Bytes::from_static(b"pack")).await.unwrap();
        let path = s.blob_path(&id).unwrap();
        assert_eq!(mode(&path), 0o660, "exact mode, whatever the umask");
        assert_eq!(mode(path.parent().unwrap()), 0o2770);
        assert_eq!(mode(path.parent().unwrap().parent().unwrap()), 0o2770);

        // Defaults stay kopia's 0600/0700.
        let d = FilesystemStorage::create(dir.path().join("plain")).unwrap();
        d.put(&id, Bytes::from_static(b"pack")).await.unwrap();
        assert_eq!(mode(&d.blob_path(&id).unwrap()) & 0o077, 0);
    }

    #[tokio::test]
    async fn plain_files_stay_outside_the_blob_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let s = FilesystemStorage::create(dir.path().join("repo")).unwrap();
        s.put_file("arkiv-sources/app@media", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(s.root().join("arkiv-sources/app@media")).unwrap(),
            b"{}"
        );
        assert!(s.list("").await.unwrap().is_empty(), "not a blob");
        for bad in ["", "a/.hidden", "x/../y", "a//b", "p1234.f", "/abs"] {
            let e = s.put_file(bad, Bytes::new()).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad:?}");
        }
    }
}
